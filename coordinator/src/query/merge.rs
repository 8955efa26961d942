//! MERGE as copy-on-write SQL (see `dml`). The target's rows are joined with the source on
//! the statement's condition: a probe per file counts joined pairs, matched target rows and
//! the rows a WHEN MATCHED clause acts on (a row matching two source rows is Trino's
//! MERGE_TARGET_ROW_MULTIPLE_MATCHES); the files with such rows are rewritten by a LEFT JOIN
//! that numbers the first clause that holds for each row and picks the clause's new values
//! (or drops the row for DELETE); the source rows that match no target row go through the
//! WHEN NOT MATCHED clauses into new rows.

use datafusion::sql::sqlparser::ast::{
    Expr, Merge, MergeAction, MergeClauseKind, MergeInsertExpr, MergeInsertKind, TableAlias,
    TableFactor,
};
use shoal_proto::client::QueryError;

use crate::catalog::TableRecord;
use crate::protocol::errors;
use crate::query::access::Change;
use crate::query::dml::{assigned, column_index, quote, target_of, CopyOnWrite, Probe, Target};
use crate::query::statements::{Prepared, StatementContext};

const SOURCE_MARK: &str = "\"__shoal_source\"";
const TARGET_MARK: &str = "\"__shoal_target\"";
const ROW: &str = "\"__shoal_row\"";
const ACTION: &str = "\"__shoal_action\"";

/// What a WHEN MATCHED clause does.
enum Matched {
    /// New values by column position (None: the column keeps its value).
    Update(Vec<Option<String>>),
    Delete,
}

/// The source relation marked, and the name the statement gives it (its column aliases go
/// on the relation inside).
fn source_of(source: &TableFactor) -> Result<(String, String), QueryError> {
    let columns = |alias: &TableAlias| {
        if alias.columns.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = alias.columns.iter().map(|c| c.name.to_string()).collect();
            format!("({})", names.join(", "))
        }
    };
    let (from, alias) = match source {
        TableFactor::Table { name, alias, .. } => {
            let (alias, inner) = match alias {
                Some(alias) => (alias.name.to_string(), columns(alias)),
                None => (
                    name.0
                        .last()
                        .and_then(|part| part.as_ident())
                        .map(ToString::to_string)
                        .ok_or_else(|| errors::syntax(format!("{name} is no table name"), None))?,
                    String::new(),
                ),
            };
            (format!("{name} AS \"__shoal_rows\"{inner}"), alias)
        }
        TableFactor::Derived {
            subquery,
            alias: Some(alias),
            lateral: false,
            ..
        } => (
            format!("({subquery}) AS \"__shoal_rows\"{}", columns(alias)),
            alias.name.to_string(),
        ),
        other => {
            return Err(errors::not_supported(format!(
                "MERGE reads a table or a query with an alias, not {other}"
            )))
        }
    };
    Ok((
        format!("(SELECT *, true AS {SOURCE_MARK} FROM {from}) AS {alias}"),
        alias,
    ))
}

fn condition(predicate: &Option<Expr>) -> String {
    predicate
        .as_ref()
        .map_or_else(|| "true".to_string(), |p| format!("({p})"))
}

/// `value` as the type of the table's column `at`.
fn typed(record: &TableRecord, at: usize, value: &str) -> String {
    let data_type = record.arrow_schema.field(at).data_type().to_string();
    format!("arrow_cast({value}, '{}')", data_type.replace('\'', "''"))
}

/// The values of one WHEN NOT MATCHED clause by column position.
fn inserted(
    record: &TableRecord,
    insert: &MergeInsertExpr,
) -> Result<Vec<Option<String>>, QueryError> {
    let MergeInsertKind::Values(values) = &insert.kind else {
        return Err(errors::not_supported("MERGE inserts VALUES (...)"));
    };
    let [row] = values.rows.as_slice() else {
        return Err(errors::user(
            "MERGE inserts one row of VALUES per source row",
        ));
    };
    let width = record.arrow_schema.fields().len();
    let positions: Vec<usize> = if insert.columns.is_empty() {
        (0..width).collect()
    } else {
        insert
            .columns
            .iter()
            .map(|name| column_index(record, name))
            .collect::<Result<_, _>>()?
    };
    if positions.len() != row.content.len() {
        return Err(errors::user(format!(
            "MERGE INSERT lists {} columns and {} values",
            positions.len(),
            row.content.len()
        )));
    }
    let mut out = vec![None; width];
    for (at, value) in positions.into_iter().zip(&row.content) {
        if out[at].replace(format!("({value})")).is_some() {
            return Err(errors::user(format!(
                "Insert column name is specified more than once: {}",
                record.arrow_schema.field(at).name()
            )));
        }
    }
    Ok(out)
}

impl StatementContext {
    pub(crate) async fn merge(&self, merge: &Merge, sql: &str) -> Result<Prepared, QueryError> {
        if merge.output.is_some() {
            return Err(errors::not_supported("MERGE ... OUTPUT is not supported"));
        }
        let (target, _) = target_of(self, &merge.table, "MERGE")?;
        for clause in &merge.clauses {
            let change = match clause.action {
                MergeAction::Insert(_) => Change::Insert(&target.schema, &target.table),
                MergeAction::Update(_) => Change::Update(&target.schema, &target.table),
                MergeAction::Delete { .. } => Change::Delete(&target.schema, &target.table),
            };
            self.authorize(change)?;
        }
        let reads = self.dml_reads(sql, &target, true)?;
        let (_, record) = self.target_record(&target, &reads).await?;
        let mut matched = Vec::new();
        let mut not_matched = Vec::new();
        for clause in &merge.clauses {
            match (&clause.clause_kind, &clause.action) {
                (MergeClauseKind::Matched, MergeAction::Update(update)) => {
                    if update.update_predicate.is_some() || update.delete_predicate.is_some() {
                        return Err(errors::not_supported(
                            "UPDATE ... WHERE inside MERGE is not supported; use WHEN MATCHED AND",
                        ));
                    }
                    let values = assigned(&record, &update.assignments)?;
                    matched.push((condition(&clause.predicate), Matched::Update(values)));
                }
                (MergeClauseKind::Matched, MergeAction::Delete { .. }) => {
                    matched.push((condition(&clause.predicate), Matched::Delete));
                }
                (
                    MergeClauseKind::NotMatched | MergeClauseKind::NotMatchedByTarget,
                    MergeAction::Insert(insert),
                ) => not_matched.push((condition(&clause.predicate), inserted(&record, insert)?)),
                (MergeClauseKind::NotMatchedBySource, _) => {
                    return Err(errors::not_supported(
                        "WHEN NOT MATCHED BY SOURCE is not supported",
                    ))
                }
                _ => {
                    return Err(errors::syntax(
                        "WHEN MATCHED updates or deletes; WHEN NOT MATCHED inserts",
                        None,
                    ))
                }
            }
        }
        let statement = plan_merge(&target, &record, merge, &matched, &not_matched)?;
        self.copy_on_write(&statement, &reads).await
    }
}

fn plan_merge(
    target: &Target,
    record: &TableRecord,
    merge: &Merge,
    matched: &[(String, Matched)],
    not_matched: &[(String, Vec<Option<String>>)],
) -> Result<CopyOnWrite, QueryError> {
    let (source, source_alias) = source_of(&merge.source)?;
    let on = &merge.on;
    let alias = &target.alias;
    let fields = record.arrow_schema.fields();
    // The first WHEN MATCHED clause that holds, numbered from 1 (0: none).
    let mut first = String::from("CASE");
    for (k, (condition, _)) in matched.iter().enumerate() {
        first.push_str(&format!(" WHEN {condition} THEN {}", k + 1));
    }
    first.push_str(" ELSE 0 END");
    let first = if matched.is_empty() {
        "0".to_string()
    } else {
        first
    };
    let probe = format!(
        "SELECT count(*), count(DISTINCT {alias}.{ROW}), \
         count(DISTINCT CASE WHEN {first} > 0 THEN {alias}.{ROW} END) \
         FROM (SELECT row_number() OVER () AS {ROW}, * FROM {files}) AS {alias} \
         JOIN {source} ON ({on})",
        files = target.files_only(),
    );

    let mut inner = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        inner.push(format!(
            "{alias}.{} AS \"__shoal_t{i}\"",
            quote(field.name())
        ));
    }
    inner.push(format!(
        "CASE WHEN {source_alias}.{SOURCE_MARK} IS NULL THEN 0 ELSE {first} END AS {ACTION}"
    ));
    let mut outer = Vec::new();
    let mut deletes = Vec::new();
    for (k, (_, action)) in matched.iter().enumerate() {
        match action {
            Matched::Delete => deletes.push((k + 1).to_string()),
            Matched::Update(values) => {
                for (i, value) in values.iter().enumerate() {
                    if let Some(value) = value {
                        inner.push(format!(
                            "{} AS \"__shoal_u{}_{i}\"",
                            typed(record, i, value),
                            k + 1
                        ));
                    }
                }
            }
        }
    }
    for (i, field) in fields.iter().enumerate() {
        let mut column = String::from("CASE");
        for (k, (_, action)) in matched.iter().enumerate() {
            if let Matched::Update(values) = action {
                if values[i].is_some() {
                    column.push_str(&format!(
                        " WHEN {ACTION} = {} THEN \"__shoal_u{}_{i}\"",
                        k + 1,
                        k + 1
                    ));
                }
            }
        }
        let column = if column == "CASE" {
            format!("\"__shoal_t{i}\"")
        } else {
            format!("{column} ELSE \"__shoal_t{i}\" END")
        };
        outer.push(format!("{column} AS {}", quote(field.name())));
    }
    let filter = if deletes.is_empty() {
        String::new()
    } else {
        format!(" WHERE {ACTION} NOT IN ({})", deletes.join(", "))
    };
    let rewrite = format!(
        "SELECT {} FROM (SELECT {} FROM {} LEFT JOIN {source} ON ({on})) AS \"__shoal_merged\"{filter}",
        outer.join(", "),
        inner.join(", "),
        target.files(),
    );

    let added = if not_matched.is_empty() {
        None
    } else {
        let mut first = String::from("CASE");
        for (k, (condition, _)) in not_matched.iter().enumerate() {
            first.push_str(&format!(" WHEN {condition} THEN {}", k + 1));
        }
        first.push_str(" ELSE 0 END");
        let mut inner = vec![format!("{first} AS {ACTION}")];
        for (k, (_, values)) in not_matched.iter().enumerate() {
            for (i, value) in values.iter().enumerate() {
                if let Some(value) = value {
                    inner.push(format!(
                        "{} AS \"__shoal_v{}_{i}\"",
                        typed(record, i, value),
                        k + 1
                    ));
                }
            }
        }
        let mut outer = Vec::new();
        for (i, field) in fields.iter().enumerate() {
            let mut column = String::from("CASE");
            for (k, (_, values)) in not_matched.iter().enumerate() {
                if values[i].is_some() {
                    column.push_str(&format!(
                        " WHEN {ACTION} = {} THEN \"__shoal_v{}_{i}\"",
                        k + 1,
                        k + 1
                    ));
                }
            }
            let column = if column == "CASE" {
                typed(record, i, "NULL")
            } else {
                format!("{column} END")
            };
            outer.push(format!("{column} AS {}", quote(field.name())));
        }
        Some(format!(
            "SELECT {} FROM (SELECT {} FROM {source} LEFT JOIN \
             (SELECT true AS {TARGET_MARK}, * FROM {}) AS {alias} ON ({on}) \
             WHERE {alias}.{TARGET_MARK} IS NULL) AS \"__shoal_merged\" WHERE {ACTION} > 0",
            outer.join(", "),
            inner.join(", "),
            target.whole_only(),
        ))
    };
    Ok(CopyOnWrite {
        kind: "MERGE",
        target: target.clone(),
        probe,
        probe_kind: Probe::Matches,
        rewrite: vec![rewrite],
        added,
    })
}
