//! The answers to SHOW and DESCRIBE (see `show`): schemas and tables from the catalog's
//! `information_schema`, the `system` catalog's fixed tables, the catalogs, the session's
//! properties, a table's columns with Trino's type names, and a prepared statement's
//! parameters and columns from its plan.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::logical_expr::{Documentation, Signature, Volatility};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::ObjectName;
use shoal_proto::client::QueryError;

use crate::catalog::provider::CATALOG;
use crate::catalog::{self, system, Reads};
use crate::protocol::types::{signature, sql_name};
use crate::protocol::{errors, prepared};
use crate::query::session_properties;
use crate::query::show::{rows_frame, schemas_sql, stats_sql, tables_sql, Show};
use crate::query::statements::{catalog_error, plan, reads_only, Prepared, StatementContext};

/// A row of SHOW FUNCTIONS. DataFusion's signatures do not give return types: that column
/// stays empty.
fn function_row(
    name: &str,
    kind: &str,
    signature: &Signature,
    documentation: Option<&Documentation>,
) -> Vec<String> {
    vec![
        name.to_string(),
        String::new(),
        signature.type_signature.to_string_repr().join(" | "),
        kind.to_string(),
        (signature.volatility == Volatility::Immutable).to_string(),
        documentation
            .map(|d| d.description.clone())
            .unwrap_or_default(),
    ]
}

fn frame_of(batch: RecordBatch) -> Result<Prepared, QueryError> {
    SessionContext::new()
        .read_batch(batch)
        .map(Prepared::Query)
        .map_err(|e| errors::from_datafusion(&e, ""))
}

fn catalog_not_found(catalog: &str) -> QueryError {
    errors::not_found(
        "CATALOG_NOT_FOUND",
        format!("Catalog '{catalog}' does not exist"),
    )
}

impl StatementContext {
    pub(crate) async fn show(&self, show: Show) -> Result<Prepared, QueryError> {
        let frame = match show {
            Show::Columns(name) => return self.describe(&name).await,
            Show::Functions { like } => {
                let context = self.session_context(&Reads::default()).await?;
                let state = context.state();
                let mut rows = Vec::new();
                for (name, f) in state.scalar_functions() {
                    rows.push(function_row(
                        name,
                        "scalar",
                        f.signature(),
                        f.documentation(),
                    ));
                }
                for (name, f) in state.aggregate_functions() {
                    rows.push(function_row(
                        name,
                        "aggregate",
                        f.signature(),
                        f.documentation(),
                    ));
                }
                for (name, f) in state.window_functions() {
                    rows.push(function_row(
                        name,
                        "window",
                        f.signature(),
                        f.documentation(),
                    ));
                }
                let names = [
                    "Function",
                    "Return Type",
                    "Argument Types",
                    "Function Type",
                    "Deterministic",
                    "Description",
                ];
                rows_frame(&names, rows, &like).await?
            }
            Show::Stats(name) => {
                let (schema, table) = self.table_name(&name)?;
                let record = self.table_record(&schema, &table).await?;
                let columns: Vec<(String, String)> = record
                    .arrow_schema
                    .fields()
                    .iter()
                    .map(|f| (f.name().clone(), sql_name(&signature(f.data_type()))))
                    .collect();
                let sql = stats_sql(&schema, &table, &columns);
                let context = self.query_context(&sql).await?;
                plan(&context, &sql).await?
            }
            Show::CreateView(name) => {
                let ddl = self.create_view_text(&name).await?;
                rows_frame(&["Create View"], vec![vec![ddl]], &None).await?
            }
            Show::CreateTable(name) => {
                let ddl = self.create_table_text(&name).await?;
                rows_frame(&["Create Table"], vec![vec![ddl]], &None).await?
            }
            Show::Input(statement) => return self.describe_input(&statement).await,
            Show::Output(statement) => return self.describe_output(&statement).await,
            Show::Catalogs { like } => {
                let rows = system::CATALOGS
                    .iter()
                    .map(|c| vec![c.to_string()])
                    .collect();
                rows_frame(&["Catalog"], rows, &like).await?
            }
            Show::Session { like } => {
                let rows = session_properties::show(&self.session.properties, &self.node.config)
                    .into_iter()
                    .map(Vec::from)
                    .collect();
                let names = ["Name", "Value", "Default", "Type", "Description"];
                rows_frame(&names, rows, &like).await?
            }
            Show::Schemas { catalog, like } => {
                match catalog.unwrap_or_else(|| self.current_catalog()).as_str() {
                    CATALOG => self.over_catalog(&schemas_sql(&like)).await?,
                    "system" => {
                        let rows = system::SCHEMAS
                            .iter()
                            .map(|(schema, _)| vec![schema.to_string()])
                            .collect();
                        rows_frame(&["Schema"], rows, &like).await?
                    }
                    other => return Err(catalog_not_found(other)),
                }
            }
            Show::Tables {
                catalog,
                schema,
                like,
            } => {
                let catalog = catalog.unwrap_or_else(|| self.current_catalog());
                let schema = schema.unwrap_or_else(|| self.current_schema());
                match catalog.as_str() {
                    CATALOG => self.over_catalog(&tables_sql(&schema, &like)).await?,
                    "system" => {
                        let Some((_, tables)) = system::SCHEMAS.iter().find(|(s, _)| *s == schema)
                        else {
                            return Err(errors::not_found(
                                "SCHEMA_NOT_FOUND",
                                format!("Schema 'system.{schema}' does not exist"),
                            ));
                        };
                        let rows = tables.iter().map(|t| vec![t.to_string()]).collect();
                        rows_frame(&["Table"], rows, &like).await?
                    }
                    other => return Err(catalog_not_found(other)),
                }
            }
        };
        Ok(Prepared::Query(frame))
    }

    /// Table `schema.table`'s record, if the user may read it.
    async fn table_record(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<catalog::TableRecord, QueryError> {
        self.authorize_reads(&Reads {
            tables: vec![(schema.to_string(), table.to_string())],
            ..Reads::default()
        })?;
        catalog::table(&self.store, schema, table)
            .await
            .map_err(|e| catalog_error(e.into()))?
            .ok_or_else(|| {
                errors::not_found(
                    "TABLE_NOT_FOUND",
                    format!("Table 'shoal.{schema}.{table}' does not exist"),
                )
            })
    }

    /// The DDL of table `name` as Trino prints it: its columns with Trino's type names and
    /// its properties (format; an external table's location).
    async fn create_table_text(&self, name: &ObjectName) -> Result<String, QueryError> {
        let (schema, table) = self.table_name(name)?;
        let record = self.table_record(&schema, &table).await?;
        let quote = |name: &str| {
            let plain = name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if plain {
                name.to_string()
            } else {
                format!("\"{}\"", name.replace('"', "\"\""))
            }
        };
        let columns: Vec<String> = record
            .arrow_schema
            .fields()
            .iter()
            .map(|f| {
                let not_null = if f.is_nullable() { "" } else { " NOT NULL" };
                format!(
                    "   {} {}{not_null}",
                    quote(f.name()),
                    sql_name(&signature(f.data_type()))
                )
            })
            .collect();
        let mut properties = vec![format!(
            "   format = '{}'",
            format!("{:?}", record.format).to_ascii_uppercase()
        )];
        if !record.managed {
            properties.push(format!(
                "   external_location = '{}'",
                record.location.replace('\'', "''")
            ));
            if record.csv_header {
                properties.push("   skip_header_line_count = 1".into());
            }
        }
        Ok(format!(
            "CREATE TABLE shoal.{}.{} (\n{}\n)\nWITH (\n{}\n)",
            quote(&schema),
            quote(&table),
            columns.join(",\n"),
            properties.join(",\n")
        ))
    }

    /// `DESCRIBE INPUT`: each parameter's position and the type the statement's plan gives
    /// it (`unknown` where the plan does not tell).
    async fn describe_input(&self, statement: &str) -> Result<Prepared, QueryError> {
        let (numbered, count) = prepared::numbered(statement)?;
        let types = if count == 0 {
            Default::default()
        } else {
            let context = self.query_context(&numbered).await?;
            let plan = context
                .state()
                .create_logical_plan(&numbered)
                .await
                .map_err(|e| errors::planning_error(&context, &e, &numbered))?;
            plan.get_parameter_types()
                .map_err(|e| errors::from_datafusion(&e, statement))?
        };
        let positions: Vec<i64> = (0..count as i64).collect();
        let names: Vec<String> = (1..=count)
            .map(|n| match types.get(&format!("${n}")) {
                Some(Some(data_type)) => sql_name(&signature(data_type)),
                _ => "unknown".to_string(),
            })
            .collect();
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("Position", DataType::Int64, false),
                Field::new("Type", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(Int64Array::from(positions)) as ArrayRef,
                Arc::new(StringArray::from(names)),
            ],
        )
        .map_err(|e| errors::internal(&e.to_string()))?;
        frame_of(batch)
    }

    /// `DESCRIBE OUTPUT`: the columns a query answers with (none for other statements), with
    /// Trino's type names and sizes.
    async fn describe_output(&self, statement: &str) -> Result<Prepared, QueryError> {
        let (numbered, _) = prepared::numbered(statement)?;
        let fields: Vec<Field> = if reads_only(&numbered) {
            let context = self.query_context(&numbered).await?;
            let plan = context
                .state()
                .create_logical_plan(&numbered)
                .await
                .map_err(|e| errors::planning_error(&context, &e, &numbered))?;
            plan.schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect()
        } else {
            Vec::new()
        };
        let text = |values: Vec<String>| Arc::new(StringArray::from(values)) as ArrayRef;
        let empty = || text(vec![String::new(); fields.len()]);
        let sizes: Vec<i64> = fields
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => i64::from(i32::MAX),
                other => other.primitive_width().unwrap_or(0) as i64,
            })
            .collect();
        let names = ["Column Name", "Catalog", "Schema", "Table", "Type"];
        let mut schema: Vec<Field> = names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect();
        schema.push(Field::new("Type Size", DataType::Int64, false));
        schema.push(Field::new("Aliased", DataType::Boolean, false));
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(schema)),
            vec![
                text(fields.iter().map(|f| f.name().clone()).collect()),
                empty(),
                empty(),
                empty(),
                text(
                    fields
                        .iter()
                        .map(|f| sql_name(&signature(f.data_type())))
                        .collect(),
                ),
                Arc::new(Int64Array::from(sizes)),
                Arc::new(BooleanArray::from(vec![false; fields.len()])),
            ],
        )
        .map_err(|e| errors::internal(&e.to_string()))?;
        frame_of(batch)
    }

    /// `sql` over the whole catalog (its information_schema).
    async fn over_catalog(&self, sql: &str) -> Result<datafusion::prelude::DataFrame, QueryError> {
        let context = self.session_context(&Reads::everything()).await?;
        plan(&context, sql).await
    }

    /// `DESCRIBE t` and `SHOW COLUMNS FROM t`: Trino's columns (Column, Type, Extra, Comment)
    /// with Trino's type names.
    async fn describe(&self, name: &ObjectName) -> Result<Prepared, QueryError> {
        let (schema, table) = self.table_name(name)?;
        self.authorize_reads(&Reads {
            tables: vec![(schema.clone(), table.clone())],
            ..Reads::default()
        })?;
        let found = catalog::table(&self.store, &schema, &table)
            .await
            .map_err(|e| catalog_error(e.into()))?;
        let Some(record) = found.as_ref() else {
            return Err(errors::not_found(
                "TABLE_NOT_FOUND",
                format!("Table 'shoal.{schema}.{table}' does not exist"),
            ));
        };
        let fields = record.arrow_schema.fields();
        let names: Vec<String> = fields.iter().map(|f| f.name().clone()).collect();
        let types: Vec<String> = fields
            .iter()
            .map(|f| {
                crate::protocol::types::sql_name(&crate::protocol::types::signature(f.data_type()))
            })
            .collect();
        let empty: Vec<String> = vec![String::new(); fields.len()];
        let text = |values: Vec<String>| -> ArrayRef { Arc::new(StringArray::from(values)) };
        let schema = Arc::new(Schema::new(
            ["Column", "Type", "Extra", "Comment"]
                .iter()
                .map(|n| Field::new(*n, DataType::Utf8, false))
                .collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(
            schema,
            vec![text(names), text(types), text(empty.clone()), text(empty)],
        )
        .map_err(|e| errors::internal(&e.to_string()))?;
        let context = SessionContext::new();
        context
            .read_batch(batch)
            .map(Prepared::Query)
            .map_err(|e| errors::from_datafusion(&e, ""))
    }
}
