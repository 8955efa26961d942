//! Running a copy-on-write statement (see `dml`): the probe over each file, the rewrite of
//! the files with changes into the attempt's write directory, and the commit of the next
//! version through `catalog::rewrite`, again on a newer version after a conflict.

use datafusion::arrow::array::Array;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::TableReference;
use datafusion::prelude::SessionContext;
use shoal_proto::client::QueryError;

use crate::catalog::provider::CATALOG;
use crate::catalog::rewrite::{rewrite, Rewrite, Rewritten};
use crate::catalog::writer::{conform, write_parquet};
use crate::catalog::{self, DataFile, FileBatch, Reads, TableRecord};
use crate::protocol::errors;
use crate::query::dml::{CopyOnWrite, Probe, FILES};
use crate::query::statements::{catalog_error, plan, update, Prepared, StatementContext};

/// How often a statement runs when other writes keep replacing its files meanwhile.
const ATTEMPTS: usize = 10;

impl StatementContext {
    /// Run `statement`, again on the new version while other writes change the table.
    pub(crate) async fn copy_on_write(
        &self,
        statement: &CopyOnWrite,
        reads: &Reads,
    ) -> Result<Prepared, QueryError> {
        for attempt in 0..ATTEMPTS {
            if let Some(rows) = self.rewrite_once(statement, reads).await? {
                return Ok(update(statement.kind, Some(rows)));
            }
            // Two statements rewriting the same files would collide again at once: each
            // waits a random while, growing, before it runs again.
            let ceiling = 50u64 << attempt.min(5);
            let pause = crate::query::id::random_below(ceiling);
            tracing::info!(query = %self.query_id, kind = statement.kind, pause_ms = pause, "table changed meanwhile; running the statement again");
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
        Err(errors::named_user_error(
            "TRANSACTION_CONFLICT",
            format!(
                "{} on shoal.{}.{} gave up: other writes changed the table {ATTEMPTS} times while it ran",
                statement.kind, statement.target.schema, statement.target.table
            ),
        ))
    }

    /// One run on the table's current version: Some(update count), None after a conflict.
    async fn rewrite_once(
        &self,
        statement: &CopyOnWrite,
        reads: &Reads,
    ) -> Result<Option<u64>, QueryError> {
        let (snapshot, record) = self.target_record(&statement.target, reads).await?;
        let context = self.write_context(&snapshot, reads, &statement.probe)?;
        let mut replaced = Vec::new();
        let mut replaced_rows = 0;
        let mut changed = 0;
        for file in &record.files {
            register_files(&context, &record, vec![file.clone()])?;
            let counts = counts(&context, &statement.probe).await?;
            let rows = match (statement.probe_kind, counts.as_slice()) {
                (Probe::Changed, [rows]) => *rows,
                (Probe::Matches, [pairs, matched, acted]) => {
                    if pairs > matched {
                        return Err(errors::named_user_error(
                            "MERGE_TARGET_ROW_MULTIPLE_MATCHES",
                            "One MERGE target table row matched more than one source row",
                        ));
                    }
                    *acted
                }
                _ => return Err(errors::internal("a probe gave an unexpected row")),
            };
            if rows > 0 {
                changed += rows as u64;
                replaced_rows += counts_of(
                    &context,
                    &format!("SELECT count(*) FROM {}", statement.target.files()),
                )
                .await?;
                replaced.push(file.clone());
            }
        }
        if replaced.is_empty() && statement.added.is_none() {
            return Ok(Some(0));
        }
        register_files(&context, &record, replaced.clone())?;
        let warehouse = &self.node.warehouse;
        let dir = warehouse
            .write_dir(&record.id, &self.query_id, self.attempt)
            .map_err(|e| errors::internal(&e.to_string()))?;
        let remove = |why: &'static str| warehouse.discard(&dir, why);
        // What an earlier run of this attempt left.
        remove("a fresh start").await;
        let written = self
            .write_rewrite(&context, statement, &record, !replaced.is_empty(), &dir)
            .await;
        let (files, rows, added) = match written {
            Ok(written) => written,
            Err(error) => {
                remove("write failed").await;
                return Err(error);
            }
        };
        if replaced.is_empty() && added == 0 {
            remove("nothing changed").await;
            return Ok(Some(0));
        }
        let change = Rewrite {
            schema: record.schema.clone(),
            name: record.name.clone(),
            table_id: record.id.clone(),
            base_version: record.version,
            replaced,
            replaced_rows,
            batch: FileBatch {
                version: record.version + 1,
                query_id: self.query_id.clone(),
                attempt: self.attempt,
                bytes: files.iter().map(|f| f.bytes).sum(),
                files,
                rows,
                removed: Vec::new(),
                removed_collected: false,
            },
            affected: changed + added,
        };
        let writer = crate::catalog::commit::Writer {
            query_id: self.query_id.clone(),
            attempt: self.attempt,
        };
        match rewrite(&self.store, &change, &writer).await {
            Ok(Rewritten::Applied { rows }) => Ok(Some(rows)),
            Ok(Rewritten::Conflict) => {
                remove("the table changed meanwhile").await;
                Ok(None)
            }
            Err(e @ catalog::CatalogError::OutcomeUnknown { .. }) => Err(catalog_error(e)),
            Err(e) => {
                remove("commit refused").await;
                Err(catalog_error(e))
            }
        }
    }

    /// Write the rows replacing the files with changes, then the added ones, into `dir`:
    /// every file there, the rows written, and how many of them were added.
    async fn write_rewrite(
        &self,
        context: &SessionContext,
        statement: &CopyOnWrite,
        record: &TableRecord,
        rewrite_files: bool,
        dir: &shoal_storage::Location,
    ) -> Result<(Vec<DataFile>, u64, u64), QueryError> {
        let mut files = Vec::new();
        let mut rows = 0;
        let mut added = 0;
        let queries = statement
            .rewrite
            .iter()
            .filter(|_| rewrite_files)
            .map(|sql| (sql, false))
            .chain(statement.added.iter().map(|sql| (sql, true)));
        for (sql, adds) in queries {
            let frame = conform(plan(context, sql).await?, record)?;
            let (listed, written) = write_parquet(frame, &self.node.warehouse, dir).await?;
            files = listed;
            rows += written;
            if adds {
                added += written;
            }
        }
        Ok((files, rows, added))
    }
}

/// Register `files` of `record` under the internal name, replacing what was there.
fn register_files(
    context: &SessionContext,
    record: &TableRecord,
    files: Vec<DataFile>,
) -> Result<(), QueryError> {
    let reference = TableReference::full(CATALOG, record.schema.clone(), FILES);
    context
        .deregister_table(reference.clone())
        .map_err(|e| errors::from_datafusion(&e, ""))?;
    let mut part = record.clone();
    part.files = files;
    let provider = shoal_engine::provider::table_provider(&part)
        .map_err(|e| errors::from_datafusion(&e, ""))?;
    context
        .register_table(reference, provider)
        .map_err(|e| errors::from_datafusion(&e, ""))?;
    Ok(())
}

/// The one row of counts `sql` answers.
async fn counts(context: &SessionContext, sql: &str) -> Result<Vec<i64>, QueryError> {
    let batches = plan(context, sql)
        .await?
        .collect()
        .await
        .map_err(|e| errors::from_datafusion(&e, sql))?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Err(errors::internal("a count gave no row"));
    };
    let mut out = Vec::with_capacity(batch.num_columns());
    for column in batch.columns() {
        let column =
            cast(column, &DataType::Int64).map_err(|e| errors::internal(&e.to_string()))?;
        let values = column
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .ok_or_else(|| errors::internal("a count is no number"))?;
        out.push(if values.is_null(0) {
            0
        } else {
            values.value(0)
        });
    }
    Ok(out)
}

async fn counts_of(context: &SessionContext, sql: &str) -> Result<u64, QueryError> {
    Ok(counts(context, sql)
        .await?
        .first()
        .copied()
        .unwrap_or(0)
        .max(0) as u64)
}
