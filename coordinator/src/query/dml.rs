//! DELETE, UPDATE and MERGE on managed tables, copy-on-write. The statement becomes SQL over
//! one file of the table at a time (the file registered under an internal name next to the
//! table, the table itself still whole for subqueries): a probe counts the rows it changes in
//! each file, the files with changes are rewritten by queries over just them, and the next
//! version drops those files and adds the new ones in one commit, only if the table is still
//! at the version read (otherwise the statement runs again on the new one), under the query's
//! commit marker like every write, so it applies exactly once.

use datafusion::arrow::array::Array;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::TableReference;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, Delete, FromTable, Ident, ObjectName, TableFactor,
    TableWithJoins, Update,
};
use shoal_proto::client::QueryError;

use crate::catalog::provider::CATALOG;
use crate::catalog::rewrite::{rewrite, Rewrite, Rewritten};
use crate::catalog::writer::{conform, write_parquet};
use crate::catalog::{self, DataFile, FileBatch, Reads, TableRecord};
use crate::protocol::errors;
use crate::query::access::Change;
use crate::query::statements::{catalog_error, plan, update, Prepared, StatementContext};

/// The name a statement's files are registered under, in the table's schema.
const FILES: &str = "__shoal_rewrite_files";
/// How often a statement runs again when another write changed its table meanwhile.
const ATTEMPTS: usize = 5;

/// `name` as a quoted SQL identifier.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The table a statement changes and the name its columns are qualified by.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub schema: String,
    pub table: String,
    pub alias: Ident,
}

impl Target {
    /// The files being worked on.
    pub fn files_only(&self) -> String {
        format!(
            "{}.{}.{}",
            quote(CATALOG),
            quote(&self.schema),
            quote(FILES)
        )
    }

    /// The files being worked on, with the target's alias.
    pub fn files(&self) -> String {
        format!("{} AS {}", self.files_only(), self.alias)
    }

    /// The whole table.
    pub fn whole_only(&self) -> String {
        format!(
            "{}.{}.{}",
            quote(CATALOG),
            quote(&self.schema),
            quote(&self.table)
        )
    }
}

/// How a probe's counts read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// One count: the rows the statement changes.
    Changed,
    /// MERGE: joined pairs, target rows matched, target rows a clause acts on.
    Matches,
}

/// A copy-on-write statement as SQL over the files of its target.
#[derive(Debug, Clone)]
pub(crate) struct CopyOnWrite {
    pub kind: &'static str,
    pub target: Target,
    pub probe: String,
    pub probe_kind: Probe,
    /// Queries whose rows, together, replace the files with changes.
    pub rewrite: Vec<String>,
    /// Rows the statement adds besides (MERGE's inserts), over the whole table.
    pub added: Option<String>,
}

/// The one plain table of `relation`, and the name its columns are qualified by.
pub(crate) fn target_of(
    context: &StatementContext,
    relation: &TableFactor,
    kind: &str,
) -> Result<(Target, ObjectName), QueryError> {
    let TableFactor::Table { name, alias, .. } = relation else {
        return Err(errors::not_supported(format!(
            "{kind} works on a table, not on {relation}"
        )));
    };
    if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
        return Err(errors::not_supported(format!(
            "{kind} does not take column aliases for its table"
        )));
    }
    let (schema, table) = context.table_name(name)?;
    let alias = match alias {
        Some(alias) => alias.name.clone(),
        None => match name.0.last().and_then(|part| part.as_ident()) {
            Some(ident) => ident.clone(),
            None => return Err(errors::syntax(format!("{name} is no table name"), None)),
        },
    };
    Ok((
        Target {
            schema,
            table,
            alias,
        },
        name.clone(),
    ))
}

fn single_table<'a>(
    tables: &'a [TableWithJoins],
    kind: &str,
) -> Result<&'a TableFactor, QueryError> {
    match tables {
        [only] if only.joins.is_empty() => Ok(&only.relation),
        _ => Err(errors::not_supported(format!(
            "{kind} works on exactly one table"
        ))),
    }
}

/// The position of the table's column that an assignment or insert list names.
pub(crate) fn column_index(record: &TableRecord, name: &ObjectName) -> Result<usize, QueryError> {
    let Some(ident) = name.0.last().and_then(|part| part.as_ident()) else {
        return Err(errors::syntax(format!("{name} is no column name"), None));
    };
    let matches = |field: &str| match ident.quote_style {
        Some(_) => field == ident.value,
        None => field.eq_ignore_ascii_case(&ident.value),
    };
    record
        .arrow_schema
        .fields()
        .iter()
        .position(|f| matches(f.name()))
        .ok_or_else(|| {
            errors::not_found(
                "COLUMN_NOT_FOUND",
                format!("Column '{}' cannot be resolved", ident.value),
            )
        })
}

/// The new value of each of the table's columns `assignments` sets, by position.
pub(crate) fn assigned(
    record: &TableRecord,
    assignments: &[Assignment],
) -> Result<Vec<Option<String>>, QueryError> {
    let mut values = vec![None; record.arrow_schema.fields().len()];
    for assignment in assignments {
        let AssignmentTarget::ColumnName(name) = &assignment.target else {
            return Err(errors::not_supported(
                "assigning to a tuple of columns is not supported",
            ));
        };
        let at = column_index(record, name)?;
        if values[at]
            .replace(format!("({})", assignment.value))
            .is_some()
        {
            return Err(errors::user(format!(
                "Multiple updates to the same column: {}",
                record.arrow_schema.field(at).name()
            )));
        }
    }
    Ok(values)
}

impl StatementContext {
    /// The table record the statement changes, as its snapshot has it.
    pub(crate) async fn target_record(
        &self,
        target: &Target,
        reads: &Reads,
    ) -> Result<(catalog::CatalogSnapshot, TableRecord), QueryError> {
        let snapshot = self.resolve(reads).await?;
        let Some(record) = snapshot
            .tables
            .get(&(target.schema.clone(), target.table.clone()))
            .cloned()
        else {
            return Err(catalog_error(catalog::CatalogError::TableNotFound(
                target.schema.clone(),
                target.table.clone(),
            )));
        };
        if !record.managed {
            return Err(errors::not_supported(format!(
                "table shoal.{}.{} reads existing files and cannot be written",
                target.schema, target.table
            )));
        }
        Ok((snapshot, record))
    }

    /// The tables `sql` reads; the target needs SELECT only when a condition reads it.
    pub(crate) fn dml_reads(
        &self,
        sql: &str,
        target: &Target,
        reads_target: bool,
    ) -> Result<Reads, QueryError> {
        let mut reads = self.reads_of_sql(sql);
        let key = (target.schema.clone(), target.table.clone());
        reads.tables.retain(|t| *t != key);
        self.authorize_reads(&reads)?;
        if reads_target {
            self.authorize_reads(&Reads {
                tables: vec![key.clone()],
                ..Reads::default()
            })?;
        }
        reads.tables.push(key);
        Ok(reads)
    }

    pub(crate) async fn delete(&self, delete: &Delete, sql: &str) -> Result<Prepared, QueryError> {
        let tables = match &delete.from {
            FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables) => tables,
        };
        if !delete.tables.is_empty()
            || delete.using.is_some()
            || delete.returning.is_some()
            || delete.limit.is_some()
            || !delete.order_by.is_empty()
        {
            return Err(errors::not_supported(
                "DELETE takes one table and a WHERE clause",
            ));
        }
        let (target, _) = target_of(self, single_table(tables, "DELETE")?, "DELETE")?;
        self.authorize(Change::Delete(&target.schema, &target.table))?;
        let reads = self.dml_reads(sql, &target, delete.selection.is_some())?;
        let files = target.files();
        let (probe, rewrite) = match &delete.selection {
            Some(condition) => (
                format!("SELECT count(*) FROM {files} WHERE {condition}"),
                vec![format!(
                    "SELECT * FROM {files} WHERE NOT coalesce(({condition}), false)"
                )],
            ),
            None => (format!("SELECT count(*) FROM {files}"), Vec::new()),
        };
        let statement = CopyOnWrite {
            kind: "DELETE",
            target,
            probe,
            probe_kind: Probe::Changed,
            rewrite,
            added: None,
        };
        self.copy_on_write(&statement, &reads).await
    }

    pub(crate) async fn update_table(
        &self,
        update_statement: &Update,
        sql: &str,
    ) -> Result<Prepared, QueryError> {
        if update_statement.from.is_some()
            || update_statement.returning.is_some()
            || update_statement.limit.is_some()
            || !update_statement.order_by.is_empty()
            || update_statement.or.is_some()
        {
            return Err(errors::not_supported(
                "UPDATE takes one table, SET and a WHERE clause",
            ));
        }
        let relation = single_table(std::slice::from_ref(&update_statement.table), "UPDATE")?;
        let (target, _) = target_of(self, relation, "UPDATE")?;
        self.authorize(Change::Update(&target.schema, &target.table))?;
        let reads = self.dml_reads(sql, &target, true)?;
        let (_, record) = self.target_record(&target, &reads).await?;
        let values = assigned(&record, &update_statement.assignments)?;
        let files = target.files();
        let columns: Vec<String> = record
            .arrow_schema
            .fields()
            .iter()
            .zip(&values)
            .map(|(field, value)| {
                let column = quote(field.name());
                match value {
                    Some(value) => format!("{value} AS {column}"),
                    None => format!("{}.{column} AS {column}", target.alias),
                }
            })
            .collect();
        let set = columns.join(", ");
        let (probe, rewrite) = match &update_statement.selection {
            Some(condition) => (
                format!("SELECT count(*) FROM {files} WHERE {condition}"),
                vec![
                    format!("SELECT {set} FROM {files} WHERE {condition}"),
                    format!("SELECT * FROM {files} WHERE NOT coalesce(({condition}), false)"),
                ],
            ),
            None => (
                format!("SELECT count(*) FROM {files}"),
                vec![format!("SELECT {set} FROM {files}")],
            ),
        };
        let statement = CopyOnWrite {
            kind: "UPDATE",
            target,
            probe,
            probe_kind: Probe::Changed,
            rewrite,
            added: None,
        };
        self.copy_on_write(&statement, &reads).await
    }

    /// Run `statement`, again on the new version while other writes change the table.
    pub(crate) async fn copy_on_write(
        &self,
        statement: &CopyOnWrite,
        reads: &Reads,
    ) -> Result<Prepared, QueryError> {
        for _ in 0..ATTEMPTS {
            if let Some(rows) = self.rewrite_once(statement, reads).await? {
                return Ok(update(statement.kind, Some(rows)));
            }
            tracing::info!(query = %self.query_id, kind = statement.kind, "table changed meanwhile; running the statement again");
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
        let remove = |why: &str| {
            if let Err(e) = warehouse.remove_dir(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, why, "cannot remove the files of a write");
            }
        };
        if dir.exists() {
            remove("a fresh start");
        }
        let written = self
            .write_rewrite(&context, statement, &record, !replaced.is_empty(), &dir)
            .await;
        let (files, rows, added) = match written {
            Ok(written) => written,
            Err(error) => {
                remove("write failed");
                return Err(error);
            }
        };
        if replaced.is_empty() && added == 0 {
            remove("nothing changed");
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
                remove("the table changed meanwhile");
                Ok(None)
            }
            Err(e @ catalog::CatalogError::OutcomeUnknown { .. }) => Err(catalog_error(e)),
            Err(e) => {
                remove("commit refused");
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
        dir: &std::path::Path,
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
