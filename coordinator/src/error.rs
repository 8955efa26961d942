//! Coordinator errors, each with a stable wire code.

use shoal_proto::{ErrorCode, ServiceError};
use shoal_state_store::StoreError;

pub type Result<T> = std::result::Result<T, CoordinatorError>;

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("state store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("shared storage: {0}")]
    SharedStorage(#[from] shoal_storage::StorageError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoordinatorError {
    pub fn code(&self) -> ErrorCode {
        match self {
            CoordinatorError::Store(e) => e.code(),
            CoordinatorError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            CoordinatorError::NotFound(_) => ErrorCode::NotFound,
            CoordinatorError::Unavailable(_) => ErrorCode::Unavailable,
            CoordinatorError::Io(_) | CoordinatorError::SharedStorage(_) => ErrorCode::Storage,
            CoordinatorError::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn to_service_error(&self) -> ServiceError {
        match self {
            CoordinatorError::Store(e) => e.to_service_error(),
            other => ServiceError::new(other.code(), other.to_string()),
        }
    }
}

impl From<ServiceError> for CoordinatorError {
    fn from(e: ServiceError) -> Self {
        CoordinatorError::Store(StoreError::Remote(e))
    }
}
