//! Messages between coordinators and drivers: handing a query to a driver, fetching its
//! pages, cancelling it, and the driver's reports of progress and outcome.

use serde::{Deserialize, Serialize};
use shoal_proto::client::QueryError;

use crate::catalog::{CatalogSnapshot, SchemaRecord, TableRecord};

/// Internal routes (bincode bodies, cluster secret) on every node that drives queries.
pub mod paths {
    /// Start driving a query (a [`super::DriveRequest`] as JSON text).
    pub const DRIVE: &str = "/query/v1/drive";
    pub const PAGE: &str = "/query/v1/page";
    pub const CANCEL: &str = "/query/v1/cancel";
    /// Which attempt of each of the given queries a driver has: a `Vec<String>` of query
    /// ids in, a `Vec<Option<u32>>` out, in the same order.
    pub const DRIVING: &str = "/query/v1/driving";
    /// On coordinators: a driver's [`super::ProgressReport`].
    pub const PROGRESS: &str = "/query/v1/progress";
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    pub query_id: String,
    pub token: u64,
}

/// A query handed to a driver: the statement, the catalog versions it resolved against, the
/// workers it may use and the coordinators to report to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriveRequest {
    pub query_id: String,
    /// Which run of the query this is; a re-run after a driver died has a higher attempt.
    pub attempt: u32,
    pub sql: String,
    pub catalog: String,
    pub schema: String,
    pub schemas: Vec<SchemaRecord>,
    pub tables: Vec<TableRecord>,
    /// Internal URLs of the workers the query's stages may run on.
    pub workers: Vec<String>,
    /// Internal URLs of the coordinators, any of which takes progress reports.
    pub coordinators: Vec<String>,
    /// Release the results when no client asked for a page for this long.
    pub client_timeout_ms: u64,
    /// What the client's session changes about how the query runs.
    #[serde(default)]
    pub options: crate::options::QueryOptions,
    /// When the query was submitted (milliseconds since the epoch): its run time counts
    /// from then.
    #[serde(default)]
    pub submitted_ms: u64,
    /// Where this attempt spools its result pages (a directory or `s3://` prefix on the
    /// cluster's shared storage); None spools nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool: Option<String>,
    /// The client reads the result as segments of this encoding (Trino's spooling
    /// protocol); None for a `data` array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<shoal_proto::segments::Encoding>,
}

impl DriveRequest {
    pub fn snapshot(&self) -> CatalogSnapshot {
        CatalogSnapshot::from_parts(self.schemas.clone(), self.tables.clone())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DriveState {
    Running,
    Finished,
    Failed,
    /// Failed on a node's loss (an internal error) before any row left the driver: the query
    /// may run again.
    Lost,
}

/// What a driver tells a coordinator about a query it drives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressReport {
    pub query_id: String,
    pub attempt: u32,
    pub driver_url: String,
    /// The driver's incarnation (its start time): a report of an earlier start of the same
    /// node is told apart. 0 where unknown.
    #[serde(default)]
    pub driver_incarnation: u64,
    pub state: DriveState,
    pub rows: u64,
    pub bytes: u64,
    /// Pages of results produced so far (at the end: all of them).
    #[serde(default)]
    pub pages: u64,
    pub elapsed_ms: u64,
    pub error: Option<QueryError>,
    /// With [`DriveState::Lost`]: the query's workers the driver could not reach.
    #[serde(default)]
    pub unreachable: Vec<String>,
    /// With [`DriveState::Finished`]: the spool holding every page, when the result was
    /// spooled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool: Option<String>,
}
