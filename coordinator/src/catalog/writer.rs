//! Writing query results as Parquet files into the warehouse on shared storage (a directory or
//! an S3 prefix):
//! each attempt of each write goes to a directory of its own inside the table's
//! (`<warehouse>/<table id>/<query id>.<attempt>/`), so concurrent writers never collide, and
//! its files become visible only when the new table version commits.

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::common::{Column, ScalarValue};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::logical_expr::cast;
use datafusion::prelude::{lit, DataFrame, Expr};
use datafusion::sql::sqlparser::ast::Ident;

use crate::catalog::warehouse::Warehouse;
use crate::catalog::{DataFile, TableRecord};
use crate::protocol::errors;
use shoal_engine::catalog::file_column;
use shoal_proto::client::QueryError;
use shoal_storage::Location;

/// Shape `frame` to `table`'s columns for its files: same count, cast by position, named as
/// the files name them.
pub fn conform(frame: DataFrame, table: &TableRecord) -> Result<DataFrame, QueryError> {
    let source = frame.schema().clone();
    let target = table.arrow_schema.fields();
    if source.fields().len() != target.len() {
        return Err(errors::user(format!(
            "Insert query has {} columns, but table shoal.{}.{} has {}",
            source.fields().len(),
            table.schema,
            table.name,
            target.len()
        )));
    }
    let expressions: Vec<Expr> = source
        .iter()
        .zip(target.iter())
        .map(|((qualifier, field), target)| {
            let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            // Files name the column as the table's record says (see FILE_COLUMN).
            cast(column, target.data_type().clone()).alias(file_column(target))
        })
        .collect();
    frame
        .select(expressions)
        .map_err(|e| errors::from_datafusion(&e, ""))
}

/// Spread the columns of `frame` over `table`'s as an INSERT's column list `columns` names
/// them (unquoted names match any case, quoted ones exactly); the table's other columns get
/// NULL, as in Trino.
pub fn by_columns(
    frame: DataFrame,
    table: &TableRecord,
    columns: &[Ident],
) -> Result<DataFrame, QueryError> {
    let source = frame.schema().columns();
    if source.len() != columns.len() {
        return Err(errors::user(format!(
            "Insert query has {} columns, but {} were listed",
            source.len(),
            columns.len()
        )));
    }
    let fields = table.arrow_schema.fields();
    let mut listed: Vec<Option<usize>> = vec![None; fields.len()];
    for (at, column) in columns.iter().enumerate() {
        let matches = |name: &str| match column.quote_style {
            Some(_) => name == column.value,
            None => name.eq_ignore_ascii_case(&column.value),
        };
        let Some(target) = fields.iter().position(|f| matches(f.name())) else {
            return Err(errors::not_found(
                "COLUMN_NOT_FOUND",
                format!(
                    "Insert column name does not exist in target table: {}",
                    column.value
                ),
            ));
        };
        if listed[target].replace(at).is_some() {
            return Err(errors::user(format!(
                "Insert column name is specified more than once: {}",
                column.value
            )));
        }
    }
    let mut expressions = Vec::with_capacity(fields.len());
    for (field, listed) in fields.iter().zip(listed) {
        let value = match listed {
            Some(at) => Expr::Column(source[at].clone()),
            None => lit(ScalarValue::try_from(field.data_type())
                .map_err(|e| errors::from_datafusion(&e, ""))?),
        };
        expressions.push(value.alias(field.name()));
    }
    frame
        .select(expressions)
        .map_err(|e| errors::from_datafusion(&e, ""))
}

/// Write `frame` as Parquet files into `dir` (a write directory inside the warehouse, local or
/// on S3, made ready for the write first); returns the files and rows.
pub async fn write_parquet(
    frame: DataFrame,
    warehouse: &Warehouse,
    dir: &Location,
) -> Result<(Vec<DataFile>, u64), QueryError> {
    warehouse
        .prepare_write(dir)
        .map_err(|e| errors::internal(&e.to_string()))?;
    let counts = frame
        .write_parquet(&dir.url(), DataFrameWriteOptions::new(), None)
        .await
        .map_err(|e| errors::from_datafusion(&e, ""))?;
    let mut rows = 0;
    for batch in &counts {
        if let Some(column) = batch.columns().first() {
            if let Some(values) = column.as_primitive_opt::<UInt64Type>() {
                rows += (0..values.len()).map(|i| values.value(i)).sum::<u64>();
            }
        }
    }
    let entries = dir
        .list()
        .await
        .map_err(|e| errors::internal(&format!("cannot list the written files: {e}")))?;
    let files = entries
        .into_iter()
        .filter(|e| e.name.ends_with(".parquet"))
        .map(|e| DataFile {
            path: e.full_name,
            bytes: e.size,
        })
        .collect();
    Ok((files, rows))
}
