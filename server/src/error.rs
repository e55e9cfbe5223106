//! The server's error type and its mapping to gRPC status codes.

use quiver_index::IndexError;
use quiver_storage::StorageError;

/// What a request or the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The request is malformed (wrong dimension, NaN, bad filter, k out of range...).
    #[error("{0}")]
    InvalidArgument(String),
    /// No such collection.
    #[error("collection {0:?} not found")]
    NotFound(String),
    /// The collection exists already.
    #[error("collection {0:?} already exists")]
    AlreadyExists(String),
    /// A request over a configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// The index layer failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The storage layer failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Something else (a file we wrote is not what we wrote, a worker died).
    #[error("{0}")]
    Internal(String),
}

/// Result alias for the server crate.
pub type Result<T, E = ServerError> = std::result::Result<T, E>;

impl ServerError {
    /// An invalid-argument error.
    pub fn invalid(msg: impl Into<String>) -> Self {
        ServerError::InvalidArgument(msg.into())
    }

    /// An I/O error on a path, as a storage error.
    pub fn io(path: &std::path::Path, e: std::io::Error) -> Self {
        ServerError::Storage(StorageError::io(path, e))
    }
}

impl From<ServerError> for tonic::Status {
    fn from(e: ServerError) -> Self {
        let msg = e.to_string();
        match e {
            ServerError::InvalidArgument(_) => tonic::Status::invalid_argument(msg),
            ServerError::NotFound(_) => tonic::Status::not_found(msg),
            ServerError::AlreadyExists(_) => tonic::Status::already_exists(msg),
            ServerError::TooLarge(_) => tonic::Status::resource_exhausted(msg),
            ServerError::Index(
                IndexError::Dimension { .. }
                | IndexError::NonFinite { .. }
                | IndexError::InvalidArgument(_),
            ) => tonic::Status::invalid_argument(msg),
            _ => tonic::Status::internal(msg),
        }
    }
}
