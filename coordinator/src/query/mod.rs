//! Queries: ids, records in the state store, drivers that run them and keep their pages, and
//! the registry that routes page requests to wherever a query's driver is.

pub mod access;
pub mod admission;
pub mod copy_on_write;
pub mod ddl;
pub mod dispatch;
pub mod dml;
pub mod history;
pub mod id;
pub mod lifecycle;
pub mod manager;
pub mod merge;
pub mod outcome;
pub mod record;
pub mod recovery;
pub mod replies;
pub mod session_properties;
pub mod show;
pub mod show_answers;
pub mod source_text;
pub mod spooled;
pub mod statements;
pub mod table_options;
pub mod unclaimed;
pub mod views;
