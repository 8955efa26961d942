//! Wire types shared by every Shoal role; no role depends on another role, only on this crate.

pub mod client;
pub mod error;
pub mod properties;

pub use error::{ErrorCode, ServiceError};

/// HTTP header that carries the cluster's shared secret on every internal request.
pub const CLUSTER_SECRET_HEADER: &str = "x-shoal-cluster-secret";
