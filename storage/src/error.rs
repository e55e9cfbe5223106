//! The storage crate's one error type. Corruption is its own variant carrying file and offset.

use std::path::PathBuf;

/// Everything that can go wrong below the index layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Bytes on disk are not what was written: checksum, magic or structure mismatch.
    #[error("{path}: corrupt at byte offset {offset}: {what}")]
    Corrupt {
        /// The file involved.
        path: PathBuf,
        /// Byte offset of the damaged structure.
        offset: u64,
        /// What was wrong.
        what: String,
    },
    /// The file is shorter than its own metadata says.
    #[error("{path}: truncated: needed {needed} bytes at offset {offset}, file has {len}")]
    Truncated {
        /// The file involved.
        path: PathBuf,
        /// Where the missing bytes start.
        offset: u64,
        /// How many bytes were needed there.
        needed: u64,
        /// The file's actual length.
        len: u64,
    },
    /// A file written by a newer, incompatible major format version.
    #[error("{path}: format version {found_major}.{found_minor} is not supported (this build reads {supported_major}.x); upgrade quiver")]
    UnsupportedVersion {
        /// The file involved.
        path: PathBuf,
        /// Major version found in the file.
        found_major: u16,
        /// Minor version found in the file.
        found_minor: u16,
        /// The major version this build reads.
        supported_major: u16,
    },
    /// A caller asked for something the file does not hold (unknown section, block out of range).
    #[error("{path}: {what}")]
    OutOfRange {
        /// The file involved.
        path: PathBuf,
        /// What was asked for.
        what: String,
    },
    /// A misuse of the API that a caller can fix (bad parameter).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Result alias for the storage crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl StorageError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            source,
        }
    }

    /// A corruption report.
    pub fn corrupt(path: impl Into<PathBuf>, offset: u64, what: impl Into<String>) -> Self {
        StorageError::Corrupt {
            path: path.into(),
            offset,
            what: what.into(),
        }
    }
}
