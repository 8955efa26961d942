//! `CALL` of the procedures Shoal has: `system.runtime.kill_query(query_id => …,
//! message => …)` (arguments by name or by position), as in Trino.

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Statement, Value,
};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use shoal_engine::dialect::TrinoDialect;
use shoal_proto::client::QueryError;

use crate::protocol::errors;
use crate::protocol::prepared::first_keyword;
use crate::query::show::parts;

/// A procedure call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    KillQuery {
        query_id: String,
        message: Option<String>,
    },
}

fn text(arg: &FunctionArgExpr) -> Option<Option<String>> {
    match arg {
        FunctionArgExpr::Expr(Expr::Value(value)) => match &value.value {
            Value::SingleQuotedString(text) => Some(Some(text.clone())),
            Value::Null => Some(None),
            _ => None,
        },
        _ => None,
    }
}

/// `sql` as a procedure call; None for any other statement.
pub fn interpret(sql: &str) -> Result<Option<Call>, QueryError> {
    if first_keyword(sql) != Some(Keyword::CALL) {
        return Ok(None);
    }
    let statement = Parser::new(&TrinoDialect)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_statement())
        .map_err(|e| errors::syntax(e.to_string(), None))?;
    let Statement::Call(function) = statement else {
        return Ok(None);
    };
    let name = parts(&function.name).join(".").to_ascii_lowercase();
    if name != "system.runtime.kill_query" {
        return Err(errors::not_found(
            "PROCEDURE_NOT_FOUND",
            format!("Procedure not registered: {name}"),
        ));
    }
    let args = match &function.args {
        FunctionArguments::List(list) => list.args.clone(),
        FunctionArguments::None => Vec::new(),
        FunctionArguments::Subquery(_) => {
            return Err(errors::user("kill_query takes query_id and message"))
        }
    };
    let (mut query_id, mut message) = (None, None);
    for (position, arg) in args.iter().enumerate() {
        let (name, value) = match arg {
            FunctionArg::Named { name, arg, .. } => (name.value.to_ascii_lowercase(), arg),
            FunctionArg::Unnamed(arg) => (
                ["query_id", "message"]
                    .get(position)
                    .unwrap_or(&"")
                    .to_string(),
                arg,
            ),
            FunctionArg::ExprNamed { .. } => {
                return Err(errors::user(
                    "kill_query takes query_id => '…', message => '…'",
                ))
            }
        };
        let value = text(value)
            .ok_or_else(|| errors::user("kill_query takes its arguments as string literals"))?;
        match name.as_str() {
            "query_id" => query_id = value,
            "message" => message = value,
            other => {
                return Err(errors::user(format!(
                    "kill_query has no argument {other:?}"
                )))
            }
        }
    }
    let query_id = query_id.ok_or_else(|| errors::user("kill_query needs query_id"))?;
    Ok(Some(Call::KillQuery { query_id, message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_query_by_name_or_position() {
        let kill = |id: &str, message: Option<&str>| {
            Some(Call::KillQuery {
                query_id: id.into(),
                message: message.map(str::to_string),
            })
        };
        assert_eq!(interpret("SELECT 1").unwrap(), None);
        assert_eq!(
            interpret("CALL system.runtime.kill_query(query_id => 'q1', message => 'too slow')")
                .unwrap(),
            kill("q1", Some("too slow"))
        );
        assert_eq!(
            interpret("call system.runtime.kill_query('q2')").unwrap(),
            kill("q2", None)
        );
        assert!(interpret("CALL system.runtime.nothing()").is_err());
        assert!(interpret("CALL system.runtime.kill_query(message => 'x')").is_err());
    }
}
