//! Views expanded at planning: every relation of a query that names a view becomes the view's
//! query, as written, in parentheses, with the view's name as its alias. The statement's
//! text is changed only at those names (as prepared parameters are), so everything else
//! stays as the client wrote it; nested views expand in further passes.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{
    CreateView, ObjectName, Query, Spanned, Statement, Visit, Visitor,
};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use shoal_engine::dialect::TrinoDialect;
use shoal_proto::client::QueryError;
use shoal_state_store::ReadConsistency;

use crate::catalog::provider::CATALOG;
use crate::catalog::views::{self, ViewRecord, ViewSecurity};
use crate::protocol::errors;
use crate::protocol::types::{signature, sql_name};
use crate::query::access::Change;
use crate::query::show::{identifier, parts};
use crate::query::source_text::{create_view_query, offset};
use crate::query::statements::{catalog_error, plan, update, Prepared, StatementContext};

/// How deep views may nest.
pub(crate) const MAX_DEPTH: usize = 8;

#[derive(Default)]
struct Relations {
    names: Vec<ObjectName>,
    ctes: HashSet<String>,
}

impl Visitor for Relations {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.clone());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        self.names.push(relation.clone());
        ControlFlow::Continue(())
    }
}

/// Whether an alias follows the name that ends at byte `end` of `sql`.
fn aliased(sql: &str, end: usize) -> bool {
    let Ok(tokens) = Tokenizer::new(&TrinoDialect, &sql[end..]).tokenize() else {
        return false;
    };
    let next = tokens
        .into_iter()
        .find(|t| !matches!(t, Token::Whitespace(_)));
    matches!(next, Some(Token::Word(w)) if w.keyword == Keyword::AS || w.keyword == Keyword::NoKeyword)
}

impl StatementContext {
    /// `sql` with the views it reads expanded.
    pub(crate) async fn expand_views(&self, sql: &str) -> Result<String, QueryError> {
        let mut text = sql.to_string();
        for depth in 0..MAX_DEPTH {
            match self.expand_once(&text).await? {
                Some(expanded) => {
                    // It reads a view: whose privileges read what.
                    if depth == 0 {
                        self.authorize_views(sql).await?;
                    }
                    text = expanded;
                }
                None => return Ok(text),
            }
        }
        Err(errors::user(format!(
            "views nest more than {MAX_DEPTH} deep (or a view reads itself)"
        )))
    }

    /// One pass of expansion; None when `sql` reads no view.
    async fn expand_once(&self, sql: &str) -> Result<Option<String>, QueryError> {
        let Ok(mut statements) = DFParser::parse_sql_with_dialect(sql, &TrinoDialect) else {
            return Ok(None);
        };
        let (Some(statement), true) = (statements.pop_front(), statements.is_empty()) else {
            return Ok(None);
        };
        // EXPLAIN [ANALYZE] shows the plan of the statement it names, views expanded.
        let statement = match statement {
            DfStatement::Statement(statement) => statement,
            DfStatement::Explain(explain) => match *explain.statement {
                DfStatement::Statement(statement) => statement,
                _ => return Ok(None),
            },
            _ => return Ok(None),
        };
        let reads = match statement.as_ref() {
            Statement::Query(_)
            | Statement::Insert(_)
            | Statement::Delete(_)
            | Statement::Update(_)
            | Statement::Merge(_) => true,
            Statement::CreateTable(create) => create.query.is_some(),
            _ => false,
        };
        if !reads {
            return Ok(None);
        }
        let mut relations = Relations::default();
        let _ = statement.visit(&mut relations);
        let mut candidates = Vec::new();
        for name in &relations.names {
            let (schema, view) = match parts(name).as_slice() {
                [one] if relations.ctes.contains(one) => continue,
                [one] => (self.current_schema(), one.clone()),
                [schema, view] => (schema.clone(), view.clone()),
                [catalog, schema, view] if catalog == CATALOG => (schema.clone(), view.clone()),
                _ => continue,
            };
            if self.current_catalog() != CATALOG && parts(name).len() < 3 {
                continue;
            }
            let table = views::table_here(&self.store, &schema, &view)
                .await
                .map_err(catalog_error)?;
            if !table {
                candidates.push((name, schema, view));
            }
        }
        if candidates.is_empty() {
            return Ok(None);
        }
        // A view created anywhere is seen here from now on.
        self.store
            .revision(ReadConsistency::Linearizable)
            .await
            .map_err(|e| catalog_error(e.into()))?;
        let mut places = Vec::new();
        for (name, schema, view) in candidates {
            let Some(record) = views::view(&self.store, &schema, &view, ReadConsistency::Local)
                .await
                .map_err(catalog_error)?
            else {
                continue;
            };
            let span = name.span();
            let (start, end) = (offset(sql, span.start), offset(sql, span.end));
            let alias = if aliased(sql, end) {
                String::new()
            } else {
                format!(" AS {}", identifier(&view))
            };
            places.push((start, end, format!("({}){alias}", record.sql)));
        }
        if places.is_empty() {
            return Ok(None);
        }
        places.sort_by_key(|p| p.0);
        let mut expanded = String::with_capacity(sql.len());
        let mut from = 0;
        for (start, end, replacement) in places {
            if start < from {
                continue;
            }
            expanded.push_str(&sql[from..start]);
            expanded.push_str(&replacement);
            from = end;
        }
        expanded.push_str(&sql[from..]);
        Ok(Some(expanded))
    }
}

impl StatementContext {
    /// `CREATE [OR REPLACE] VIEW v AS query`: the query, as written, is checked by planning
    /// it and stored with its columns in the replicated catalog.
    pub(crate) async fn create_view(
        &self,
        create: &CreateView,
        sql: &str,
        security: ViewSecurity,
    ) -> Result<Prepared, QueryError> {
        if create.materialized {
            return Err(errors::not_supported(
                "materialized views are not supported",
            ));
        }
        let (schema, name) = self.table_name(&create.name)?;
        self.authorize(Change::CreateTable(&schema, &name))?;
        let query = create_view_query(sql)
            .ok_or_else(|| errors::syntax("CREATE VIEW expects AS and a query", None))?;
        let expanded = self.expand_views(query).await?;
        let context = self.query_context(&expanded).await?;
        let frame = plan(&context, &expanded).await?;
        let columns = frame
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), sql_name(&signature(f.data_type()))))
            .collect();
        let record = ViewRecord {
            schema,
            name,
            sql: query.to_string(),
            columns,
            owner: self.session.user.clone(),
            created_ms: crate::query::record::now_ms(),
            security,
        };
        views::create_view(&self.store, &record, create.or_replace)
            .await
            .map_err(catalog_error)?;
        Ok(update("CREATE VIEW", None))
    }

    /// `DROP VIEW [IF EXISTS] v`.
    pub(crate) async fn drop_view(
        &self,
        name: &ObjectName,
        if_exists: bool,
    ) -> Result<(), QueryError> {
        let (schema, view) = self.table_name(name)?;
        self.authorize(Change::DropTable(&schema, &view))?;
        let dropped = views::drop_view(&self.store, &schema, &view)
            .await
            .map_err(catalog_error)?;
        if !dropped && !if_exists {
            return Err(errors::not_found(
                "TABLE_NOT_FOUND",
                format!("View 'shoal.{schema}.{view}' does not exist"),
            ));
        }
        Ok(())
    }

    /// The text of `SHOW CREATE VIEW v`.
    pub(crate) async fn create_view_text(&self, name: &ObjectName) -> Result<String, QueryError> {
        let (schema, view) = self.table_name(name)?;
        let record = views::view(&self.store, &schema, &view, ReadConsistency::Linearizable)
            .await
            .map_err(catalog_error)?
            .ok_or_else(|| {
                errors::not_found(
                    "TABLE_NOT_FOUND",
                    format!("View 'shoal.{schema}.{view}' does not exist"),
                )
            })?;
        let security = match record.security {
            ViewSecurity::Definer => "DEFINER",
            ViewSecurity::Invoker => "INVOKER",
        };
        Ok(format!(
            "CREATE VIEW shoal.{}.{} SECURITY {security} AS\n{}",
            identifier(&schema),
            identifier(&view),
            record.sql
        ))
    }
}
