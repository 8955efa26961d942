//! Result column names as Trino gives them: an expression the query does not name is `_colN`
//! (N its position in the select list, from 0), a column keeps its name. The statement's AST
//! gets the aliases before DataFusion plans it. Statements parse in Shoal's dialect (see
//! `dialect`).

use datafusion::common::plan_err;
use datafusion::error::Result;
use datafusion::sql::parser::DFParser;

use crate::dialect::TrinoDialect;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Expr, Ident, Query, SelectItem, SetExpr, Statement};

/// Plan `sql` in `context` as `SessionContext::sql` does, with Trino's column names.
pub async fn plan_sql(context: &SessionContext, sql: &str) -> Result<DataFrame> {
    let state = context.state();
    let mut statements = DFParser::parse_sql_with_dialect(sql, &TrinoDialect)?;
    let (Some(mut statement), true) = (statements.pop_front(), statements.is_empty()) else {
        return plan_err!("expected exactly one statement");
    };
    name_columns(&mut statement);
    let plan = state.statement_to_plan(statement).await?;
    context.execute_logical_plan(plan).await
}

/// Give the unnamed expressions of `statement`'s result Trino's names.
pub fn name_columns(statement: &mut DfStatement) {
    let query = match statement {
        DfStatement::Statement(statement) => match statement.as_mut() {
            Statement::Query(query) => query,
            _ => return,
        },
        _ => return,
    };
    name_query(query);
}

fn name_query(query: &mut Query) {
    name_body(&mut query.body);
}

fn name_body(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            for (position, item) in select.projection.iter_mut().enumerate() {
                if let SelectItem::UnnamedExpr(expr) = item {
                    if !matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
                        *item = SelectItem::ExprWithAlias {
                            expr: expr.clone(),
                            alias: Ident::new(format!("_col{position}")),
                        };
                    }
                }
            }
        }
        SetExpr::Query(query) => name_query(query),
        // The first branch of a set operation names the result's columns.
        SetExpr::SetOperation { left, .. } => name_body(left),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::*;

    async fn names(sql: &str) -> Vec<String> {
        let context = SessionContext::new();
        let frame = plan_sql(&context, sql).await.expect("plans");
        frame
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    #[tokio::test]
    async fn unnamed_expressions_are_col_n_and_columns_keep_their_names() {
        assert_eq!(
            names("SELECT 1, 2 AS two, 1 + 1").await,
            ["_col0", "two", "_col2"]
        );
        assert_eq!(
            names("SELECT x, count(*) FROM (VALUES (1)) AS t(x) GROUP BY x ORDER BY count(*)")
                .await,
            ["x", "_col1"]
        );
        assert_eq!(
            names("SELECT t.x, upper('a') FROM (VALUES (1)) AS t(x) UNION ALL SELECT 2, 'b'").await,
            ["x", "_col1"]
        );
        assert_eq!(
            names("WITH c AS (SELECT 1 AS one) SELECT one * 2 FROM c").await,
            ["_col0"]
        );
    }
}
