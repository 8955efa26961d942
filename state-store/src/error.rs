//! Errors of the state store, each with a stable wire code.

use shoal_proto::{ErrorCode, ServiceError};

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no leader is known after waiting {waited_ms} ms; retry later")]
    NoLeader { waited_ms: u64 },

    #[error("the store did not answer within {timeout_ms} ms: {operation}")]
    Timeout { operation: String, timeout_ms: u64 },

    #[error("the outcome of the write is unknown: {reason}")]
    OutcomeUnknown { reason: String },

    #[error("revision {requested} has been compacted; the oldest available is {oldest}")]
    Compacted { requested: u64, oldest: u64 },

    #[error("corrupt value in key space {keyspace} at key {key}: {reason}")]
    Corrupt {
        keyspace: &'static str,
        key: String,
        reason: String,
    },

    #[error("storage error in {keyspace}: {source}")]
    Sled {
        keyspace: &'static str,
        #[source]
        source: sled::Error,
    },

    #[error(
        "the data directory {path} was written by on-disk format version {found}; \
         this build reads version {supported} and older"
    )]
    FormatTooNew {
        path: String,
        found: u32,
        supported: u32,
    },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    #[error("refused by {target}: the cluster secret is missing or wrong")]
    Unauthorized { target: String },

    #[error("rpc to {target} failed: {reason}")]
    Rpc { target: String, reason: String },

    #[error("raft: {0}")]
    Raft(String),

    #[error("the store is shutting down")]
    ShuttingDown,

    #[error("{0}")]
    Remote(ServiceError),
}

impl StoreError {
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::NoLeader { .. } | StoreError::Rpc { .. } | StoreError::ShuttingDown => {
                ErrorCode::Unavailable
            }
            StoreError::Timeout { .. } | StoreError::OutcomeUnknown { .. } => ErrorCode::Timeout,
            StoreError::Compacted { .. } => ErrorCode::Compacted,
            StoreError::Corrupt { .. }
            | StoreError::Sled { .. }
            | StoreError::FormatTooNew { .. } => ErrorCode::Storage,
            StoreError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            StoreError::Unauthorized { .. } => ErrorCode::Unauthorized,
            StoreError::Raft(_) => ErrorCode::Internal,
            StoreError::Remote(e) => e.code,
        }
    }

    /// Whether the same call may succeed later (no leader yet, a node unreachable, ...).
    pub fn is_retryable(&self) -> bool {
        self.code().is_retryable()
    }

    pub fn to_service_error(&self) -> ServiceError {
        match self {
            StoreError::Remote(e) => e.clone(),
            other => ServiceError::new(other.code(), other.to_string()),
        }
    }

    /// A copy of this error for each caller of a batch that failed as a whole.
    pub fn duplicate(&self) -> StoreError {
        match self {
            StoreError::NoLeader { waited_ms } => StoreError::NoLeader {
                waited_ms: *waited_ms,
            },
            StoreError::Timeout {
                operation,
                timeout_ms,
            } => StoreError::Timeout {
                operation: operation.clone(),
                timeout_ms: *timeout_ms,
            },
            StoreError::OutcomeUnknown { reason } => StoreError::OutcomeUnknown {
                reason: reason.clone(),
            },
            StoreError::Unauthorized { target } => StoreError::Unauthorized {
                target: target.clone(),
            },
            StoreError::ShuttingDown => StoreError::ShuttingDown,
            StoreError::Remote(e) => StoreError::Remote(e.clone()),
            other => StoreError::Remote(other.to_service_error()),
        }
    }

    pub(crate) fn sled(keyspace: &'static str, source: sled::Error) -> Self {
        StoreError::Sled { keyspace, source }
    }
}

impl From<ServiceError> for StoreError {
    fn from(e: ServiceError) -> Self {
        StoreError::Remote(e)
    }
}
