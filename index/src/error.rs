//! The index crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the index layer.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// From the storage layer (I/O with path, corruption with file and offset).
    #[error(transparent)]
    Storage(#[from] quiver_storage::StorageError),
    /// A malformed input file: names the file, and the byte offset or row.
    #[error("{path}: {what}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong and where (offset or row).
        what: String,
    },
    /// A vector of the wrong dimension.
    #[error("{what}: dimension {got}, expected {expected}")]
    Dimension {
        /// Which vector (e.g. "query", "row 17 of base.fbin").
        what: String,
        /// Expected dimension.
        expected: usize,
        /// Dimension given.
        got: usize,
    },
    /// A NaN or infinite component.
    #[error("{what}: component {index} is {value} (vectors must be finite)")]
    NonFinite {
        /// Which vector.
        what: String,
        /// Position in the vector.
        index: usize,
        /// The value found.
        value: f32,
    },
    /// A parameter out of range, an unsupported combination, etc.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The index directory's manifest is unusable.
    #[error("{path}: {what}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
}

/// Result alias for the index crate.
pub type Result<T, E = IndexError> = std::result::Result<T, E>;

impl IndexError {
    /// Wraps an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>, e: std::io::Error) -> Self {
        IndexError::Storage(quiver_storage::StorageError::io(path, e))
    }

    /// A malformed-file error.
    pub fn bad_file(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        IndexError::BadFile {
            path: path.into(),
            what: what.into(),
        }
    }
}
