//! DELETE, UPDATE and MERGE on managed tables, copy-on-write. The statement becomes SQL over
//! one file of the table at a time (the file registered under an internal name next to the
//! table, the table itself still whole for subqueries): a probe counts the rows it changes in
//! each file, the files with changes are rewritten by queries over just them, and the next
//! version drops those files and adds the new ones in one commit (see `copy_on_write`), under
//! the query's commit marker like every write, so it applies exactly once. This module makes
//! DELETE's and UPDATE's SQL; `merge` makes MERGE's.

use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, Delete, FromTable, Ident, ObjectName, TableFactor,
    TableWithJoins, Update,
};
use shoal_proto::client::QueryError;

use crate::catalog::provider::CATALOG;
use crate::catalog::{self, Reads, TableRecord};
use crate::protocol::errors;
use crate::query::access::Change;
use crate::query::statements::{catalog_error, Prepared, StatementContext};

/// The name a statement's files are registered under, in the table's schema.
pub(crate) const FILES: &str = "__shoal_rewrite_files";

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
}
