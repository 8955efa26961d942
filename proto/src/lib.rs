//! Wire types shared by every Shoal role; no role depends on another role, only on this crate.

pub mod client;
pub mod cluster;
pub mod error;
pub mod properties;
pub mod segments;

pub use error::{ErrorCode, ServiceError};

/// HTTP header that carries the cluster's shared secret on every internal request.
pub const CLUSTER_SECRET_HEADER: &str = "x-shoal-cluster-secret";

/// Compare a presented secret with the expected one without an early exit, so timing does not
/// reveal how much of a guess was right.
pub fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}
