//! The seed directory on shared storage (a local or NFS directory, or an S3 prefix) through
//! which coordinators and workers find each other: each coordinator publishes one small
//! object, refreshed every heartbeat; readers judge freshness by what they see change, never
//! by comparing clocks across hosts.

pub mod bootstrap;
pub mod config;
pub mod publisher;
pub mod seed;
pub mod watcher;

pub use bootstrap::{BootstrapClaim, ClaimOutcome};
pub use config::SeedStoreConfig;
pub use publisher::SeedPublisher;
pub use seed::{Seed, SeedRole, SeedStore};
pub use watcher::{LiveSeed, SeedWatcher};
