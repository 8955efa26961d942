//! Errors that cross the network: a stable code, a message and whether a retry may succeed.

use serde::{Deserialize, Serialize};

/// Stable error codes. The numeric value is part of the wire format: never renumber a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The request is malformed or names something invalid.
    InvalidArgument,
    /// The caller did not present the cluster secret, or presented a wrong one.
    Unauthorized,
    /// A key, node or object does not exist.
    NotFound,
    /// The service cannot answer now (no leader, no quorum, shutting down); retry later.
    Unavailable,
    /// The operation did not complete within its deadline; it may or may not have taken effect.
    Timeout,
    /// A requested revision has been compacted away.
    Compacted,
    /// Reading or writing local storage failed, or stored data is corrupt.
    Storage,
    /// An internal invariant failed.
    Internal,
}

impl ErrorCode {
    /// The stable numeric value of the code.
    pub fn as_u16(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 1001,
            ErrorCode::Unauthorized => 1002,
            ErrorCode::NotFound => 1003,
            ErrorCode::Unavailable => 2001,
            ErrorCode::Timeout => 2002,
            ErrorCode::Compacted => 3001,
            ErrorCode::Storage => 4001,
            ErrorCode::Internal => 5001,
        }
    }

    /// Whether an identical request may succeed if sent again later.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorCode::Unavailable | ErrorCode::Timeout)
    }

    /// The HTTP status this code is answered with on internal endpoints.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::NotFound => 404,
            ErrorCode::Compacted => 410,
            ErrorCode::Unavailable => 503,
            ErrorCode::Timeout => 504,
            ErrorCode::Storage | ErrorCode::Internal => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}({})", self, self.as_u16())
    }
}

/// An error as it travels between processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ServiceError {
    pub code: ErrorCode,
    pub message: String,
}

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ServiceError {
            code,
            message: message.into(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.code.is_retryable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_stable() {
        let all = [
            ErrorCode::InvalidArgument,
            ErrorCode::Unauthorized,
            ErrorCode::NotFound,
            ErrorCode::Unavailable,
            ErrorCode::Timeout,
            ErrorCode::Compacted,
            ErrorCode::Storage,
            ErrorCode::Internal,
        ];
        let mut numbers: Vec<u16> = all.iter().map(|c| c.as_u16()).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), all.len());
        assert_eq!(ErrorCode::Unavailable.as_u16(), 2001);
    }

    #[test]
    fn service_error_round_trips_as_json() {
        let err = ServiceError::new(ErrorCode::Unavailable, "no leader");
        let text = serde_json::to_string(&err).unwrap();
        assert!(text.contains("\"UNAVAILABLE\""));
        let back: ServiceError = serde_json::from_str(&text).unwrap();
        assert_eq!(back, err);
        assert!(back.is_retryable());
    }
}
