//! Statements that change the client's session, answered by the coordinator at once with the
//! header that tells the client its new session (the client sends it with every request
//! after, so any coordinator honours it): `SET SESSION name = 'value'`,
//! `RESET SESSION name`, and `SET TIME ZONE 'zone' | LOCAL` (the `time_zone_id` property,
//! as in Trino).

use datafusion::sql::sqlparser::ast::{Expr, Value};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use shoal_proto::client::QueryError;

use crate::protocol::errors;
use crate::protocol::prepared::first_keyword;
use crate::query::session_properties;
use crate::query::show::parts;

const TIME_ZONE: &str = "time_zone_id";

/// A change of the client's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionChange {
    /// The statement's update type, as Trino reports it.
    pub update_type: &'static str,
    pub name: String,
    /// The new value; None clears the property.
    pub value: Option<String>,
}

impl SessionChange {
    /// The response header (without its `X-Trino-` prefix) and its value.
    pub fn header(&self) -> (&'static str, String) {
        match &self.value {
            Some(value) => (
                "Set-Session",
                format!(
                    "{}={}",
                    self.name,
                    utf8_percent_encode(value, NON_ALPHANUMERIC)
                ),
            ),
            None => ("Clear-Session", self.name.clone()),
        }
    }
}

fn syntax(e: ParserError) -> QueryError {
    errors::syntax(e.to_string(), None)
}

/// `sql` as a change of the session; None for any other statement.
pub fn interpret(sql: &str) -> Result<Option<SessionChange>, QueryError> {
    let keyword = match first_keyword(sql) {
        Some(keyword @ (Keyword::SET | Keyword::RESET)) => keyword,
        _ => return Ok(None),
    };
    let mut parser = Parser::new(&GenericDialect {})
        .try_with_sql(sql)
        .map_err(syntax)?;
    parser.next_token();
    let change = if keyword == Keyword::RESET {
        parser.expect_keyword(Keyword::SESSION).map_err(syntax)?;
        let name = property_name(&mut parser)?;
        session_properties::find(&name)?;
        SessionChange {
            update_type: "RESET SESSION",
            name,
            value: None,
        }
    } else if parser.parse_keyword(Keyword::SESSION) {
        let name = property_name(&mut parser)?;
        session_properties::find(&name)?;
        parser.expect_token(&Token::Eq).map_err(syntax)?;
        let expr = parser.parse_expr().map_err(syntax)?;
        let value = text_of(&expr).ok_or_else(|| {
            errors::invalid_session_property(format!(
                "Unable to set session property '{name}' to '{expr}': Cannot cast type {} to varchar",
                type_of(&expr)
            ))
        })?;
        session_properties::check(&name, &value)?;
        SessionChange {
            update_type: "SET SESSION",
            name,
            value: Some(value),
        }
    } else if parser.parse_keywords(&[Keyword::TIME, Keyword::ZONE]) {
        let value = if parser.parse_keyword(Keyword::LOCAL) {
            None
        } else {
            let expr = parser.parse_expr().map_err(syntax)?;
            let zone = text_of(&expr).ok_or_else(|| {
                errors::not_supported(format!(
                    "SET TIME ZONE takes a zone name as a string or LOCAL, not {expr}"
                ))
            })?;
            session_properties::check_time_zone(&zone)?;
            Some(zone)
        };
        SessionChange {
            update_type: "SET TIME ZONE",
            name: TIME_ZONE.into(),
            value,
        }
    } else {
        return Ok(None);
    };
    let _ = parser.consume_token(&Token::SemiColon);
    if parser.peek_token().token != Token::EOF {
        return Err(errors::syntax(
            format!("unexpected {} after the statement", parser.peek_token()),
            None,
        ));
    }
    Ok(Some(change))
}

/// A property name: `name`, or `catalog.name` for a catalog's property (Shoal's catalogs
/// have none, so such a name does not exist).
fn property_name(parser: &mut Parser) -> Result<String, QueryError> {
    let name = parser.parse_object_name(false).map_err(syntax)?;
    Ok(parts(&name).join("."))
}

fn text_of(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(text) => Some(text.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn type_of(expr: &Expr) -> &'static str {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::Number(text, _) if text.contains('.') => "decimal",
            Value::Number(_, _) => "integer",
            Value::Boolean(_) => "boolean",
            _ => "unknown",
        },
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(sql: &str) -> SessionChange {
        interpret(sql).expect("valid").expect("a session change")
    }

    #[test]
    fn set_reset_and_time_zone_become_headers() {
        assert_eq!(interpret("SELECT 1").unwrap(), None);
        let set = change("SET SESSION query_max_run_time = '10s'");
        assert_eq!(set.update_type, "SET SESSION");
        assert_eq!(
            set.header(),
            ("Set-Session", "query_max_run_time=10s".into())
        );
        let reset = change("reset session query_max_run_time;");
        assert_eq!(
            reset.header(),
            ("Clear-Session", "query_max_run_time".into())
        );
        let zone = change("SET TIME ZONE 'America/New_York'");
        assert_eq!(
            zone.header(),
            ("Set-Session", "time_zone_id=America%2FNew%5FYork".into())
        );
        assert_eq!(
            change("SET TIME ZONE LOCAL").header(),
            ("Clear-Session", "time_zone_id".into())
        );
    }

    #[test]
    fn unknown_properties_and_values_of_another_type_are_refused() {
        let unknown = interpret("SET SESSION no_such_property = 'x'").unwrap_err();
        assert_eq!(unknown.error_name, "INVALID_SESSION_PROPERTY");
        assert!(interpret("RESET SESSION no_such_property").is_err());
        assert!(interpret("SET SESSION shoal.anything = 'x'").is_err());
        let typed = interpret("SET SESSION query_max_run_time = 10").unwrap_err();
        assert!(
            typed
                .message
                .contains("Cannot cast type integer to varchar"),
            "{typed:?}"
        );
        assert!(interpret("SET SESSION query_max_run_time = 'soon'").is_err());
        assert!(interpret("SET TIME ZONE 'Nowhere/Land'").is_err());
        assert!(interpret("SET SESSION query_max_run_time = '1s' extra").is_err());
    }
}
