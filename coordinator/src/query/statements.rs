//! Turning one SQL statement into work: catalog statements (CREATE/DROP SCHEMA, CREATE TABLE
//! over existing files or as a select, INSERT, DROP TABLE; see `ddl`) change the replicated
//! catalog; everything else is a DataFusion query over the catalog versions it reads.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::TableReference;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::ast::{
    Ident, ObjectName, ObjectNamePart, ObjectType, SchemaName, Statement, TableObject,
};
use shoal_engine::dialect::TrinoDialect;
use shoal_proto::client::QueryError;
use shoal_state_store::StateStore;

pub use shoal_engine::Prepared;

use crate::catalog::provider::{self, listing_options, CATALOG};
use crate::catalog::system;
use crate::catalog::views::ViewSecurity;
use crate::catalog::{self, CatalogError, Reads, TableFormat, DEFAULT_SCHEMA};
use crate::node::Coordinator;
use crate::protocol::errors;
use crate::protocol::session::ClientSession;
use crate::query::access::Change;
use crate::query::show;
use crate::query::table_options::TableOptions;

/// Everything a statement needs from its coordinator.
#[derive(Clone)]
pub struct StatementContext {
    pub node: Arc<Coordinator>,
    pub store: StateStore,
    pub query_id: String,
    /// Which run of the query this is (its writes are keyed by query and attempt).
    pub attempt: u32,
    pub session: ClientSession,
    /// The tables the statement reads through SECURITY DEFINER views only: checked for the
    /// views' owners when the views were expanded, not for the statement's user.
    pub definer_reads: Arc<Mutex<BTreeSet<(String, String)>>>,
}

/// A catalog outcome as the client sees it, by kind.
pub(crate) fn catalog_error(e: CatalogError) -> QueryError {
    let message = e.to_string();
    match e {
        CatalogError::SchemaNotFound(_) => errors::not_found("SCHEMA_NOT_FOUND", message),
        CatalogError::TableNotFound(..) => errors::not_found("TABLE_NOT_FOUND", message),
        CatalogError::SchemaExists(_) => errors::already_exists("SCHEMA_ALREADY_EXISTS", message),
        CatalogError::TableExists(..) => errors::already_exists("TABLE_ALREADY_EXISTS", message),
        CatalogError::SchemaNotEmpty(_)
        | CatalogError::DefaultSchema
        | CatalogError::DroppedWhileWriting(..)
        | CatalogError::Invalid(_) => errors::user(message),
        CatalogError::OutcomeUnknown { .. } | CatalogError::Store(_) => {
            errors::unavailable(message)
        }
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
    pub(crate) fn table_name(&self, name: &ObjectName) -> Result<(String, String), QueryError> {
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

    /// The tables `statement` reads, resolved against the session's catalog and schema:
    /// `information_schema` means every table's record; other catalogs (`system`) are not
    /// the replicated catalog's business.
    pub(crate) fn reads_of(&self, statement: &DfStatement) -> Reads {
        let Ok((tables, _)) = resolve_table_references(statement, true) else {
            return Reads::everything();
        };
        let mut reads = Reads::default();
        let session_catalog = self.current_catalog();
        for reference in tables {
            let (catalog, schema, table) = match &reference {
                TableReference::Bare { table } => (session_catalog.as_str(), None, table),
                TableReference::Partial { schema, table } => {
                    (session_catalog.as_str(), Some(schema.to_string()), table)
                }
                TableReference::Full {
                    catalog,
                    schema,
                    table,
                } => (catalog.as_ref(), Some(schema.to_string()), table),
            };
            if catalog != CATALOG {
                reads.system = true;
                continue;
            }
            let schema = schema.unwrap_or_else(|| self.current_schema());
            if schema == "information_schema" {
                reads.all_tables = true;
            } else {
                reads.tables.push((schema, table.to_string()));
            }
        }
        reads
    }

    /// The tables `sql` reads; everything if it does not parse (its error comes later).
    pub(crate) fn reads_of_sql(&self, sql: &str) -> Reads {
        match DFParser::parse_sql_with_dialect(sql, &TrinoDialect) {
            Ok(statements) if statements.len() == 1 => statements
                .front()
                .map_or_else(Reads::everything, |s| self.reads_of(s)),
            _ => Reads::everything(),
        }
    }

    /// The catalog versions `reads` names, as far as the statement may read them.
    pub(crate) async fn resolve(
        &self,
        reads: &Reads,
    ) -> Result<catalog::CatalogSnapshot, QueryError> {
        let snapshot = catalog::resolve(&self.store, reads)
            .await
            .map_err(|e| catalog_error(e.into()))?;
        Ok(self.readable(snapshot))
    }

    pub(crate) async fn session_context(
        &self,
        reads: &Reads,
    ) -> Result<SessionContext, QueryError> {
        let snapshot = self.resolve(reads).await?;
        provider::session(
            &snapshot,
            &self.current_catalog(),
            &self.current_schema(),
            &self.options(),
            &self.node.stores,
            &self.definer_reads(),
        )
        .map_err(|e| errors::from_datafusion(&e, ""))
    }

    /// The session for a query: the tables it reads, and `system` if the query may read it.
    pub(crate) async fn query_context(&self, sql: &str) -> Result<SessionContext, QueryError> {
        let reads = self.reads_of_sql(sql);
        self.authorize_reads(&reads)?;
        let context = self.session_context(&reads).await?;
        if reads.system {
            // system.jdbc lists what the user may see.
            let everything = catalog::resolve(&self.store, &Reads::everything())
                .await
                .map_err(|e| catalog_error(e.into()))?;
            let everything = self.visible(everything);
            system::register(&context, &self.node, &self.session.user, &everything)
                .await
                .map_err(|e| errors::from_datafusion(&e, sql))?;
        }
        Ok(context)
    }
    /// The session for the query of an INSERT or CREATE TABLE AS: its stages spread over the
    /// live workers (the coordinator writes the files), unless it reads the `system` catalog,
    /// which only coordinators have.
    pub(crate) fn write_context(
        &self,
        snapshot: &catalog::CatalogSnapshot,
        reads: &Reads,
        query: &str,
    ) -> Result<SessionContext, QueryError> {
        let distribution = if reads.system {
            None
        } else {
            self.node.distribution()
        };
        provider::session_on(
            snapshot,
            &self.current_catalog(),
            &self.current_schema(),
            distribution,
            &self.options(),
            &self.node.stores,
        )
        .map_err(|e| errors::from_datafusion(&e, query))
    }

    /// What the client's session makes of how the query runs.
    pub(crate) fn options(&self) -> shoal_engine::options::QueryOptions {
        crate::query::session_properties::options(
            &self.session.properties,
            self.session.time_zone.as_deref(),
            &self.session.user,
            &self.node.config,
        )
    }

    /// Whether `sql` is a plain query over catalog `shoal` that a driver on a worker can run:
    /// not a catalog change, not SHOW or DESCRIBE, and not reading the `system` catalog, which
    /// only coordinators have.
    pub fn runs_on_workers(&self, sql: &str) -> bool {
        if self.current_catalog() != CATALOG || !matches!(show::parse(sql), Ok(None)) {
            return false;
        }
        match DFParser::parse_sql_with_dialect(sql, &TrinoDialect) {
            Ok(statements) => {
                statements.len() == 1
                    && statements.front().is_some_and(|s| {
                        // information_schema is made from the whole catalog, which the
                        // coordinator has: such metadata queries run here.
                        let reads = self.reads_of(s);
                        is_plain_query(s) && !reads.system && !reads.all_tables
                    })
            }
            Err(_) => false,
        }
    }

    /// Do (or plan) `sql`.
    pub async fn prepare(&self, sql: &str) -> Result<Prepared, QueryError> {
        if let Some(show) = show::parse(sql)? {
            return self.show(show).await;
        }
        let (mut statements, without_security) =
            match DFParser::parse_sql_with_dialect(sql, &TrinoDialect) {
                Ok(statements) => (statements, None),
                // Only a statement that did not parse is looked at again: a view's SECURITY
                // clause, which the parser does not know.
                Err(e) => match crate::query::source_text::without_view_security(sql) {
                    Some((stripped, security)) => (
                        DFParser::parse_sql_with_dialect(&stripped, &TrinoDialect)
                            .map_err(|e| errors::from_datafusion(&e, &stripped))?,
                        Some((stripped, security)),
                    ),
                    None => return Err(errors::from_datafusion(&e, sql)),
                },
            };
        let security = without_security.as_ref().map(|(_, security)| *security);
        let sql = without_security
            .as_ref()
            .map_or(sql, |(stripped, _)| stripped);
        if statements.len() != 1 {
            return Err(errors::syntax("expected exactly one statement", None));
        }
        let Some(statement) = statements.pop_front() else {
            return Err(errors::syntax("expected a statement", None));
        };
        match statement {
            DfStatement::Statement(statement) => match (*statement, security) {
                (Statement::CreateView(create), Some(security)) => {
                    self.create_view(&create, sql, security).await
                }
                (statement, _) => self.prepare_sql(statement, sql).await,
            },
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
                self.authorize(Change::CreateSchema(&schema))?;
                catalog::commit::create_schema(&self.store, &schema, if_not_exists)
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
                    self.authorize(Change::DropSchema(&schema))?;
                    catalog::commit::drop_schema(&self.store, &schema, if_exists)
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
            Statement::AlterTable(alter) => self.alter_table(&alter).await,
            Statement::CreateTable(create) => {
                let (schema, table) = self.table_name(&create.name)?;
                self.authorize(Change::CreateTable(&schema, &table))?;
                let options = TableOptions::from(&create.table_options)?;
                match create.query {
                    Some(query) => {
                        // The query as the client wrote it (see the INSERT below).
                        let query = crate::query::source_text::create_table_query(sql)
                            .map_or_else(|| query.to_string(), str::to_string);
                        self.create_table_as(&schema, &table, &query, create.if_not_exists, options)
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
                let Some(source) = &insert.source else {
                    return Err(errors::syntax("INSERT needs a query or VALUES", None));
                };
                let (schema, table) = self.table_name(name)?;
                self.authorize(Change::Insert(&schema, &table))?;
                let mut columns = Vec::with_capacity(insert.columns.len());
                for column in &insert.columns {
                    match column.0.as_slice() {
                        [part] => match part.as_ident() {
                            Some(ident) => columns.push(ident.clone()),
                            None => {
                                return Err(errors::syntax(
                                    format!("{column} is no column name"),
                                    None,
                                ))
                            }
                        },
                        _ => {
                            return Err(errors::syntax(format!("{column} is no column name"), None))
                        }
                    }
                }
                // The source as the client wrote it: the printer would turn `''` in a
                // string into one quote.
                let source = crate::query::source_text::insert_source(sql, !columns.is_empty())
                    .map_or_else(|| source.to_string(), str::to_string);
                self.insert(&schema, &table, &source, &columns).await
            }
            Statement::CreateView(create) => {
                self.create_view(&create, sql, ViewSecurity::default())
                    .await
            }
            Statement::Drop {
                object_type: ObjectType::View,
                names,
                if_exists,
                ..
            } => {
                for name in &names {
                    self.drop_view(name, if_exists).await?;
                }
                Ok(update("DROP VIEW", None))
            }
            Statement::CreateIndex(_) => {
                Err(errors::not_supported("this statement is not supported"))
            }
            Statement::Delete(delete) => self.delete(&delete, sql).await,
            Statement::Update(update) => self.update_table(&update, sql).await,
            Statement::Merge(merge) => self.merge(&merge, sql).await,
            _ => {
                let context = self.query_context(sql).await?;
                plan(&context, sql).await.map(Prepared::Query)
            }
        }
    }
}

/// Whether `sql` only reads (a query, EXPLAIN, SHOW, DESCRIBE): running it again cannot change
/// anything, so it may be re-run when its driver died.
pub fn reads_only(sql: &str) -> bool {
    if matches!(show::parse(sql), Ok(Some(_))) {
        return true;
    }
    DFParser::parse_sql_with_dialect(sql, &TrinoDialect).is_ok_and(|statements| {
        statements.len() == 1 && statements.front().is_some_and(is_plain_query)
    })
}

/// An INSERT, DELETE, UPDATE, MERGE or CREATE TABLE AS: a statement whose change commits
/// with a marker of its query (so its outcome can be settled after its driver died).
pub fn writes_with_marker(sql: &str) -> bool {
    DFParser::parse_sql_with_dialect(sql, &TrinoDialect).is_ok_and(|statements| {
        statements.len() == 1
            && statements.front().is_some_and(|statement| match statement {
                DfStatement::Statement(statement) => match &**statement {
                    Statement::Insert(_)
                    | Statement::Delete(_)
                    | Statement::Update(_)
                    | Statement::Merge(_) => true,
                    Statement::CreateTable(create) => create.query.is_some(),
                    _ => false,
                },
                _ => false,
            })
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

pub(crate) fn update(kind: &str, rows: Option<u64>) -> Prepared {
    Prepared::Update {
        update_type: kind.to_string(),
        rows,
    }
}

/// Plan `sql` with Trino's result column names.
pub(crate) async fn plan(context: &SessionContext, sql: &str) -> Result<DataFrame, QueryError> {
    shoal_engine::naming::plan_sql(context, sql)
        .await
        .map_err(|e| errors::planning_error(context, &e, sql))
}

pub(crate) fn nullable(schema: &Schema) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), f.data_type().clone(), true))
            .collect::<Vec<_>>(),
    )
}

pub(crate) async fn infer_schema(
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
