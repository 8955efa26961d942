//! Shoal's query engine, shared by coordinators and workers: the catalog records a query
//! resolves, DataFusion sessions over them (in one process or spread over workers), Trino
//! types, values and errors, and the driver that runs a statement and buffers its pages.

pub mod catalog;
pub mod checked;
pub mod classify;
pub mod dialect;
pub mod distributed;
pub mod drive;
pub mod driver;
pub mod errors;
pub mod functions;
pub mod information_schema;
pub mod naming;
pub mod options;
pub mod page_json;
pub mod pages;
pub mod provider;
pub mod spool;
pub mod types;
pub mod values;

use datafusion::prelude::DataFrame;

/// What a statement amounts to.
pub enum Prepared {
    /// Rows to stream to the client.
    Query(DataFrame),
    /// A change that is already done: its kind and, for writes, the rows written.
    Update {
        update_type: String,
        rows: Option<u64>,
    },
}
