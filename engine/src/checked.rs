//! A table whose data must be there: before a scan is planned, every data file of the resolved
//! version (or the location of an external table) is looked up, so a missing or unreadable file
//! fails the query with the table's and the file's name instead of reading as an empty table.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{ScanArgs, ScanResult, Session};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::TableProviderFilterPushDown;
use datafusion::object_store::ObjectStoreExt;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::Expr;
use futures::future::try_join_all;

/// What must exist for a table to be read.
#[derive(Debug, Clone)]
pub enum Required {
    /// Each of these data files (a managed table's version).
    Files(Vec<ListingTableUrl>),
    /// A directory or file of existing data (an external table).
    Location(ListingTableUrl),
}

/// `inner`, checked against `required` whenever a scan of it is planned.
#[derive(Debug)]
pub struct CheckedTable {
    /// `shoal.schema.table`, for messages.
    name: String,
    required: Required,
    inner: Arc<dyn TableProvider>,
}

impl CheckedTable {
    pub fn new(name: String, required: Required, inner: Arc<dyn TableProvider>) -> Self {
        CheckedTable {
            name,
            required,
            inner,
        }
    }

    fn missing(
        &self,
        what: &str,
        url: &ListingTableUrl,
        reason: impl std::fmt::Display,
    ) -> DataFusionError {
        DataFusionError::Execution(format!(
            "table {} cannot be read: {what} {} is missing or unreadable ({reason})",
            self.name,
            url.as_str()
        ))
    }

    async fn check(&self, state: &dyn Session) -> Result<()> {
        match &self.required {
            Required::Files(files) => {
                try_join_all(files.iter().map(|url| async move {
                    let store = state.runtime_env().object_store(url)?;
                    store
                        .head(url.prefix())
                        .await
                        .map(|_| ())
                        .map_err(|e| self.missing("data file", url, e))
                }))
                .await?;
                Ok(())
            }
            Required::Location(url) if url.scheme() != "file" => {
                // An object store holds no directories: something must be under the prefix.
                let store = state.runtime_env().object_store(url)?;
                let mut listed = store.list(Some(url.prefix()));
                match futures::StreamExt::next(&mut listed).await {
                    Some(Ok(_)) => Ok(()),
                    Some(Err(e)) => Err(self.missing("location", url, e)),
                    None => Err(self.missing("location", url, "nothing is stored there")),
                }
            }
            Required::Location(url) => {
                let path = url
                    .get_url()
                    .to_file_path()
                    .map_err(|()| self.missing("location", url, "not a local path"))?;
                std::fs::metadata(&path)
                    .map(|_| ())
                    .map_err(|e| self.missing("location", url, e))
            }
        }
    }
}

#[async_trait]
impl TableProvider for CheckedTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.check(state).await?;
        self.inner.scan(state, projection, filters, limit).await
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> Result<ScanResult> {
        self.check(state).await?;
        self.inner.scan_with_args(state, args).await
    }
}
