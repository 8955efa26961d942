//! Turning one SQL statement into work: catalog statements (CREATE/DROP SCHEMA, CREATE TABLE
//! over existing files or as a select, INSERT, DROP TABLE) change the replicated catalog;
//! everything else is a DataFusion query over a snapshot of it.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    Ident, ObjectName, ObjectNamePart, ObjectType, SchemaName, Statement, TableObject,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use shoal_proto::client::QueryError;
use shoal_state_store::StateStore;

pub use shoal_engine::Prepared;

use crate::catalog::provider::{self, listing_options, CATALOG};
use crate::catalog::system;
use crate::catalog::writer::{conform, table_dir, write_parquet};
use crate::catalog::{self, TableFormat, TableRecord, DEFAULT_SCHEMA};
use crate::error::CoordinatorError;
use crate::node::Coordinator;
use crate::protocol::errors;
use crate::protocol::session::ClientSession;
use crate::query::show::{describe_target, show_statement};
use crate::query::table_options::TableOptions;

/// Everything a statement needs from its coordinator.
#[derive(Clone)]
pub struct StatementContext {
    pub node: Arc<Coordinator>,
    pub store: StateStore,
    pub warehouse: PathBuf,
    pub query_id: String,
    pub session: ClientSession,
}

fn catalog_error(e: CoordinatorError) -> QueryError {
    match e {
        CoordinatorError::NotFound(message) => {
            let kind = if message.starts_with("Schema") {
                "SCHEMA_NOT_FOUND"
            } else {
                "TABLE_NOT_FOUND"
            };
            errors::not_found(kind, message)
        }
        CoordinatorError::InvalidArgument(message) => {
            if message.contains("already exists") {
                let kind = if message.starts_with("Schema") {
                    "SCHEMA_ALREADY_EXISTS"
                } else {
                    "TABLE_ALREADY_EXISTS"
                };
                errors::already_exists(kind, message)
            } else {
                errors::user(message)
            }
        }
        other => errors::unavailable(other.to_string()),
    }
}

pub(crate) fn name_of(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

fn parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => name_of(ident),
            other => other.to_string(),
        })
        .collect()
}

impl StatementContext {
    /// The session's catalog: `shoal` unless the client chose `system`.
    pub(crate) fn current_catalog(&self) -> String {
        match self.session.catalog.as_deref() {
            Some("system") => "system".into(),
            _ => CATALOG.into(),
        }
    }

    pub(crate) fn current_schema(&self) -> String {
        if self.current_catalog() == "system" {
            return self
                .session
                .schema
                .clone()
                .unwrap_or_else(|| "runtime".into());
        }
        self.session
            .schema
            .clone()
            .unwrap_or_else(|| DEFAULT_SCHEMA.into())
    }

    fn check_catalog(catalog: &str) -> Result<(), QueryError> {
        if catalog == CATALOG {
            Ok(())
        } else {
            Err(errors::not_found(
                "CATALOG_NOT_FOUND",
                format!("Catalog '{catalog}' does not exist or is read-only"),
            ))
        }
    }

    /// `[schema.]table` (or `shoal.schema.table`) resolved against the session.
    fn table_name(&self, name: &ObjectName) -> Result<(String, String), QueryError> {
        match parts(name).as_slice() {
            [table] => Ok((self.current_schema(), table.clone())),
            [schema, table] => Ok((schema.clone(), table.clone())),
            [catalog, schema, table] => {
                Self::check_catalog(catalog)?;
                Ok((schema.clone(), table.clone()))
            }
            _ => Err(errors::syntax(format!("invalid table name {name}"), None)),
        }
    }

    fn schema_name(&self, name: &ObjectName) -> Result<String, QueryError> {
        match parts(name).as_slice() {
            [schema] => Ok(schema.clone()),
            [catalog, schema] => {
                Self::check_catalog(catalog)?;
                Ok(schema.clone())
            }
            _ => Err(errors::syntax(format!("invalid schema name {name}"), None)),
        }
    }

    async fn session_context(&self) -> Result<SessionContext, QueryError> {
        let snapshot = catalog::snapshot(&self.store)
            .await
            .map_err(catalog_error)?;
        provider::session(&snapshot, &self.current_catalog(), &self.current_schema())
            .map_err(|e| errors::from_datafusion(&e, ""))
    }

    /// The session for a query: the user catalog, and `system` if the query may read it.
    async fn query_context(&self, sql: &str) -> Result<SessionContext, QueryError> {
        let context = self.session_context().await?;
        let user = &self.session.user;
        system::register(&context, &self.node, sql, &self.current_catalog(), user)
            .await
            .map_err(|e| errors::from_datafusion(&e, sql))?;
        Ok(context)
    }
    /// The session for the query of an INSERT or CREATE TABLE AS: its stages spread over the
    /// live workers (the coordinator writes the files), unless it reads the `system` catalog,
    /// which only coordinators have.
    fn write_context(
        &self,
        snapshot: &catalog::CatalogSnapshot,
        query: &str,
    ) -> Result<SessionContext, QueryError> {
        let distribution = if query.to_ascii_lowercase().contains("system") {
            None
        } else {
            self.node.distribution()
        };
        provider::session_on(
            snapshot,
            &self.current_catalog(),
            &self.current_schema(),
            distribution,
        )
        .map_err(|e| errors::from_datafusion(&e, query))
    }

    /// `DESCRIBE t` and `SHOW COLUMNS FROM t`: Trino's columns (Column, Type, Extra, Comment)
    /// with Trino's type names.
    async fn describe(&self, table: &str) -> Result<Prepared, QueryError> {
        let name: Vec<Ident> = table
            .split('.')
            .map(
                |part| match part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
                    Some(quoted) => Ident::with_quote('"', quoted),
                    None => Ident::new(part),
                },
            )
            .collect();
        let (schema, table) = self.table_name(&ObjectName::from(name))?;
        let snapshot = catalog::snapshot(&self.store)
            .await
            .map_err(catalog_error)?;
        let Some(record) = snapshot.tables.get(&(schema.clone(), table.clone())) else {
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

    /// Whether `sql` is a plain query over catalog `shoal` that a driver on a worker can run:
    /// not a catalog change, not SHOW or DESCRIBE, and not reading the `system` catalog, which
    /// only coordinators have.
    pub fn runs_on_workers(&self, sql: &str) -> bool {
        if self.current_catalog() != CATALOG
            || describe_target(sql).is_some()
            || show_statement(sql, &self.current_schema()).is_some()
            || sql.to_ascii_lowercase().contains("system")
        {
            return false;
        }
        match DFParser::parse_sql_with_dialect(sql, &GenericDialect {}) {
            Ok(statements) => {
                statements.len() == 1 && statements.front().is_some_and(is_plain_query)
            }
            Err(_) => false,
        }
    }

    /// Do (or plan) `sql`.
    pub async fn prepare(&self, sql: &str) -> Result<Prepared, QueryError> {
        if let Some(table) = describe_target(sql) {
            return self.describe(&table).await;
        }
        if let Some(rewritten) = show_statement(sql, &self.current_schema()) {
            let context = self.session_context().await?;
            return plan(&context, &rewritten).await.map(Prepared::Query);
        }
        let mut statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
            .map_err(|e| errors::from_datafusion(&e, sql))?;
        if statements.len() != 1 {
            return Err(errors::syntax("expected exactly one statement", None));
        }
        let Some(statement) = statements.pop_front() else {
            return Err(errors::syntax("expected a statement", None));
        };
        match statement {
            DfStatement::Statement(statement) => self.prepare_sql(*statement, sql).await,
            DfStatement::CreateExternalTable(_) | DfStatement::CopyTo(_) => Err(errors::not_supported(
                "use CREATE TABLE ... WITH (format = ..., location = ...) to read existing files",
            )),
            _ => {
                let context = self.query_context(sql).await?;
                plan(&context, sql).await.map(Prepared::Query)
            }
        }
    }

    async fn prepare_sql(&self, statement: Statement, sql: &str) -> Result<Prepared, QueryError> {
        match statement {
            Statement::CreateSchema {
                schema_name,
                if_not_exists,
                ..
            } => {
                let SchemaName::Simple(name) = schema_name else {
                    return Err(errors::not_supported(
                        "schema authorization is not supported",
                    ));
                };
                let schema = self.schema_name(&name)?;
                catalog::create_schema(&self.store, &schema, if_not_exists)
                    .await
                    .map_err(catalog_error)?;
                Ok(update("CREATE SCHEMA", None))
            }
            Statement::Drop {
                object_type: ObjectType::Schema,
                names,
                if_exists,
                ..
            } => {
                for name in &names {
                    let schema = self.schema_name(name)?;
                    catalog::drop_schema(&self.store, &schema, if_exists)
                        .await
                        .map_err(catalog_error)?;
                }
                Ok(update("DROP SCHEMA", None))
            }
            Statement::Drop {
                object_type: ObjectType::Table,
                names,
                if_exists,
                ..
            } => {
                for name in &names {
                    self.drop_table(name, if_exists).await?;
                }
                Ok(update("DROP TABLE", None))
            }
            Statement::CreateTable(create) => {
                let (schema, table) = self.table_name(&create.name)?;
                let options = TableOptions::from(&create.table_options)?;
                match create.query {
                    Some(query) => {
                        self.create_table_as(
                            &schema,
                            &table,
                            &query.to_string(),
                            create.if_not_exists,
                            options,
                        )
                        .await
                    }
                    None => {
                        self.create_table(
                            &schema,
                            &table,
                            &create.columns,
                            create.if_not_exists,
                            options,
                        )
                        .await
                    }
                }
            }
            Statement::Insert(insert) => {
                let TableObject::TableName(name) = &insert.table else {
                    return Err(errors::not_supported(
                        "INSERT into a table function is not supported",
                    ));
                };
                if !insert.columns.is_empty() {
                    return Err(errors::not_supported(
                        "INSERT with a column list is not supported yet",
                    ));
                }
                let Some(source) = &insert.source else {
                    return Err(errors::syntax("INSERT needs a query or VALUES", None));
                };
                let (schema, table) = self.table_name(name)?;
                self.insert(&schema, &table, &source.to_string()).await
            }
            Statement::CreateView { .. }
            | Statement::CreateIndex(_)
            | Statement::AlterTable { .. } => {
                Err(errors::not_supported("this statement is not supported"))
            }
            Statement::Update { .. } | Statement::Delete(_) | Statement::Merge { .. } => Err(
                errors::not_supported("UPDATE, DELETE and MERGE are not supported"),
            ),
            _ => {
                let context = self.query_context(sql).await?;
                plan(&context, sql).await.map(Prepared::Query)
            }
        }
    }

    async fn drop_table(&self, name: &ObjectName, if_exists: bool) -> Result<(), QueryError> {
        let (schema, table) = self.table_name(name)?;
        match catalog::drop_table(&self.store, &schema, &table)
            .await
            .map_err(catalog_error)?
        {
            Some(record) if record.managed => {
                let dir = PathBuf::from(&record.location);
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a dropped table's files");
                }
                Ok(())
            }
            Some(_) => Ok(()),
            None if if_exists => Ok(()),
            None => Err(errors::not_found(
                "TABLE_NOT_FOUND",
                format!("Table 'shoal.{schema}.{table}' does not exist"),
            )),
        }
    }

    fn managed_record(&self, schema: &str, table: &str, arrow_schema: Schema) -> TableRecord {
        TableRecord {
            schema: schema.to_string(),
            name: table.to_string(),
            format: TableFormat::Parquet,
            location: table_dir(&self.warehouse, schema, table)
                .display()
                .to_string(),
            managed: true,
            csv_header: false,
            arrow_schema,
            files: Vec::new(),
            version: 0,
            rows: 0,
            bytes: 0,
            created_ms: shoal_seed_store::publisher::now_ms(),
        }
    }

    async fn create_table_as(
        &self,
        schema: &str,
        table: &str,
        query: &str,
        if_not_exists: bool,
        options: TableOptions,
    ) -> Result<Prepared, QueryError> {
        if options.location.is_some() || options.format.is_some_and(|f| f != TableFormat::Parquet) {
            return Err(errors::not_supported("CREATE TABLE AS writes Parquet into the warehouse; format and location cannot be chosen"));
        }
        let snapshot = catalog::snapshot(&self.store)
            .await
            .map_err(catalog_error)?;
        let context = self.write_context(&snapshot, query)?;
        let frame = plan(&context, query).await?;
        let arrow_schema = nullable(frame.schema().as_arrow());
        let record = self.managed_record(schema, table, arrow_schema);
        if !catalog::create_table(&self.store, &record, if_not_exists)
            .await
            .map_err(catalog_error)?
        {
            return Ok(update("CREATE TABLE", Some(0)));
        }
        match self.write_and_commit(&record, frame).await {
            Ok(rows) => Ok(update("CREATE TABLE", Some(rows))),
            Err(error) => {
                let _ = catalog::drop_table(&self.store, schema, table).await;
                Err(error)
            }
        }
    }

    async fn create_table(
        &self,
        schema: &str,
        table: &str,
        columns: &[datafusion::sql::sqlparser::ast::ColumnDef],
        if_not_exists: bool,
        options: TableOptions,
    ) -> Result<Prepared, QueryError> {
        let context = self.session_context().await?;
        let declared = if columns.is_empty() {
            None
        } else {
            let select: Vec<String> = columns
                .iter()
                .map(|c| format!("CAST(NULL AS {}) AS \"{}\"", c.data_type, name_of(&c.name)))
                .collect();
            let frame = plan(&context, &format!("SELECT {}", select.join(", "))).await?;
            Some(nullable(frame.schema().as_arrow()))
        };
        let record = match options.location {
            None => {
                let Some(arrow_schema) = declared else {
                    return Err(errors::user(
                        "CREATE TABLE needs columns, a location, or AS SELECT",
                    ));
                };
                if options.format.is_some_and(|f| f != TableFormat::Parquet) {
                    return Err(errors::not_supported(
                        "tables Shoal writes are stored as Parquet",
                    ));
                }
                self.managed_record(schema, table, arrow_schema)
            }
            Some(location) => {
                let format = options.format.unwrap_or(TableFormat::Parquet);
                let arrow_schema = match declared {
                    Some(schema) => schema,
                    None => infer_schema(&context, &location, format, options.csv_header).await?,
                };
                TableRecord {
                    format,
                    location,
                    managed: false,
                    csv_header: options.csv_header,
                    ..self.managed_record(schema, table, arrow_schema)
                }
            }
        };
        catalog::create_table(&self.store, &record, if_not_exists)
            .await
            .map_err(catalog_error)?;
        Ok(update("CREATE TABLE", None))
    }

    async fn insert(&self, schema: &str, table: &str, query: &str) -> Result<Prepared, QueryError> {
        let snapshot = catalog::snapshot(&self.store)
            .await
            .map_err(catalog_error)?;
        let Some(record) = snapshot
            .tables
            .get(&(schema.to_string(), table.to_string()))
            .cloned()
        else {
            return Err(errors::not_found(
                "TABLE_NOT_FOUND",
                format!("Table 'shoal.{schema}.{table}' does not exist"),
            ));
        };
        if !record.managed {
            return Err(errors::not_supported(format!(
                "table shoal.{schema}.{table} reads existing files and cannot be written"
            )));
        }
        let context = self.write_context(&snapshot, query)?;
        let frame = conform(plan(&context, query).await?, &record)?;
        let rows = self.write_and_commit(&record, frame).await?;
        Ok(update("INSERT", Some(rows)))
    }

    /// Write `frame` into a directory of this query's own and commit its files to the table.
    async fn write_and_commit(
        &self,
        record: &TableRecord,
        frame: DataFrame,
    ) -> Result<u64, QueryError> {
        let dir = PathBuf::from(&record.location).join(&self.query_id);
        let (files, rows) = write_parquet(frame, &dir).await?;
        catalog::append_files(&self.store, &record.schema, &record.name, files, rows)
            .await
            .map_err(catalog_error)?;
        Ok(rows)
    }
}

/// Whether `sql` only reads (a query, EXPLAIN, SHOW, DESCRIBE): running it again cannot change
/// anything, so it may be re-run when its driver died.
pub fn reads_only(sql: &str) -> bool {
    if describe_target(sql).is_some() || show_statement(sql, DEFAULT_SCHEMA).is_some() {
        return true;
    }
    DFParser::parse_sql_with_dialect(sql, &GenericDialect {}).is_ok_and(|statements| {
        statements.len() == 1 && statements.front().is_some_and(is_plain_query)
    })
}

/// A query, or EXPLAIN of one (which then shows the distributed plan).
fn is_plain_query(statement: &DfStatement) -> bool {
    match statement {
        DfStatement::Statement(statement) => matches!(**statement, Statement::Query(_)),
        DfStatement::Explain(explain) => is_plain_query(&explain.statement),
        _ => false,
    }
}

fn update(kind: &str, rows: Option<u64>) -> Prepared {
    Prepared::Update {
        update_type: kind.to_string(),
        rows,
    }
}

async fn plan(context: &SessionContext, sql: &str) -> Result<DataFrame, QueryError> {
    context
        .sql(sql)
        .await
        .map_err(|e| errors::from_datafusion(&e, sql))
}

fn nullable(schema: &Schema) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), f.data_type().clone(), true))
            .collect::<Vec<_>>(),
    )
}

async fn infer_schema(
    context: &SessionContext,
    location: &str,
    format: TableFormat,
    header: bool,
) -> Result<Schema, QueryError> {
    let url = datafusion::datasource::listing::ListingTableUrl::parse(location)
        .map_err(|e| errors::user(e.to_string()))?;
    let state = context.state();
    let schema = listing_options(format, header)
        .infer_schema(&state, &url)
        .await
        .map_err(|e| errors::user(format!("cannot read a schema from {location}: {e}")))?;
    if schema.fields().is_empty() {
        return Err(errors::user(format!(
            "no {} files with columns at {location}",
            format.extension()
        )));
    }
    Ok(nullable(&schema))
}
