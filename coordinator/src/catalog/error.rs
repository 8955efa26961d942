//! What a catalog change can end in, as a typed error: the statement layer maps each kind to
//! Trino's error name without looking at any message.

use shoal_state_store::StoreError;

use crate::error::CoordinatorError;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("Schema 'shoal.{0}' does not exist")]
    SchemaNotFound(String),
    #[error("Schema 'shoal.{0}' already exists")]
    SchemaExists(String),
    #[error("Cannot drop non-empty schema 'shoal.{0}'")]
    SchemaNotEmpty(String),
    #[error("the default schema cannot be dropped")]
    DefaultSchema,
    #[error("Table 'shoal.{0}.{1}' does not exist")]
    TableNotFound(String, String),
    #[error("Table 'shoal.{0}.{1}' already exists")]
    TableExists(String, String),
    /// The table the write started on was dropped (and maybe created again) before it committed.
    #[error("Table 'shoal.{0}.{1}' was dropped while being written; nothing was written")]
    DroppedWhileWriting(String, String),
    /// A bad name or another mistake of the statement.
    #[error("{0}")]
    Invalid(String),
    /// Neither commit nor failure could be established before giving up.
    #[error("the outcome of the commit of query {query} is unknown: {reason}")]
    OutcomeUnknown { query: String, reason: String },
    #[error("{0}")]
    Store(#[from] CoordinatorError),
}

impl From<StoreError> for CatalogError {
    fn from(e: StoreError) -> Self {
        CatalogError::Store(CoordinatorError::Store(e))
    }
}

pub type CatalogResult<T> = std::result::Result<T, CatalogError>;
