//! Statements that change the client's session, answered by the coordinator at once with the
//! header that tells the client its new session (the client sends it with every request
//! after, so any coordinator honours it): `SET SESSION name = 'value'`,
//! `RESET SESSION name`, `SET TIME ZONE 'zone' | LOCAL` (the `time_zone_id` property, as in
//! Trino) and `USE [catalog.]schema`.

use datafusion::sql::sqlparser::ast::{Expr, Statement, Use, Value};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use shoal_engine::dialect::TrinoDialect;
use shoal_proto::client::QueryError;

use crate::catalog::provider::CATALOG;
use crate::catalog::system;
use crate::protocol::errors;
use crate::protocol::prepared::first_keyword;
use crate::query::session_properties;
use crate::query::show::{expect_end, parts};

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

/// `USE schema` or `USE catalog.schema`: the session's new catalog and schema (the catalog
/// stays the session's, `shoal` by default, when only a schema is named); None for any other
/// statement.
pub fn use_target(
    sql: &str,
    session_catalog: Option<&str>,
) -> Result<Option<(String, String)>, QueryError> {
    if first_keyword(sql) != Some(Keyword::USE) {
        return Ok(None);
    }
    let statement = Parser::new(&TrinoDialect)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_statement())
        .map_err(syntax)?;
    let name = match statement {
        Statement::Use(Use::Object(name) | Use::Schema(name) | Use::Database(name)) => name,
        other => {
            return Err(errors::syntax(
                format!("USE expects schema or catalog.schema, found {other}"),
                None,
            ))
        }
    };
    let (catalog, schema) = match parts(&name).as_slice() {
        [schema] => (
            session_catalog.unwrap_or(CATALOG).to_string(),
            schema.clone(),
        ),
        [catalog, schema] => (catalog.clone(), schema.clone()),
        _ => {
            return Err(errors::syntax(
                format!("USE expects schema or catalog.schema, found {name}"),
                None,
            ))
        }
    };
    if !system::CATALOGS.contains(&catalog.as_str()) {
        return Err(errors::not_found(
            "CATALOG_NOT_FOUND",
            format!("Catalog '{catalog}' does not exist"),
        ));
    }
    Ok(Some((catalog, schema)))
}

/// `START TRANSACTION`, `COMMIT` or `ROLLBACK`, as Trino answers them for catalogs without
/// transactions: each statement commits on its own, a transaction only reads (a write in one
/// fails, see [`write_in_transaction`]), and the client is told its transaction id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionChange {
    Start,
    /// COMMIT or ROLLBACK: the update type.
    End(&'static str),
}

impl TransactionChange {
    pub fn update_type(&self) -> &'static str {
        match self {
            TransactionChange::Start => "START TRANSACTION",
            TransactionChange::End(update_type) => update_type,
        }
    }
}

/// `sql` as a transaction statement; None for any other. `in_transaction` is whether the
/// client names a transaction (`X-Trino-Transaction-Id`).
pub fn transaction(
    sql: &str,
    in_transaction: bool,
) -> Result<Option<TransactionChange>, QueryError> {
    if !matches!(
        first_keyword(sql),
        Some(Keyword::START | Keyword::BEGIN | Keyword::COMMIT | Keyword::ROLLBACK)
    ) {
        return Ok(None);
    }
    let statement = Parser::new(&TrinoDialect)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_statement())
        .map_err(syntax)?;
    let change = match statement {
        Statement::StartTransaction { .. } if in_transaction => {
            return Err(errors::not_supported("Nested transactions not supported"))
        }
        Statement::StartTransaction { .. } => TransactionChange::Start,
        Statement::Commit { .. } => TransactionChange::End("COMMIT"),
        Statement::Rollback { .. } => TransactionChange::End("ROLLBACK"),
        _ => return Ok(None),
    };
    if matches!(change, TransactionChange::End(_)) && !in_transaction {
        return Err(errors::user("No transaction in progress"));
    }
    Ok(Some(change))
}

/// The error for a statement that writes inside a transaction: Shoal's catalog commits every
/// write on its own, as Trino's catalogs without transactions do.
pub fn write_in_transaction() -> QueryError {
    errors::not_supported("Catalog only supports writes using autocommit: shoal")
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
    let mut parser = Parser::new(&TrinoDialect)
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
        let property = session_properties::find(&name)?;
        parser.expect_token(&Token::Eq).map_err(syntax)?;
        let expr = parser.parse_expr().map_err(syntax)?;
        let wanted = property.sql_type();
        let value = match wanted {
            "integer" => integer_of(&expr),
            _ => text_of(&expr),
        }
        .ok_or_else(|| {
            errors::invalid_session_property(format!(
                "Unable to set session property '{name}' to '{expr}': Cannot cast type {} to {wanted}",
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
    expect_end(&mut parser)?;
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

fn integer_of(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::Number(text, _) if text.chars().all(|c| c.is_ascii_digit()) => {
                Some(text.clone())
            }
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
            Value::SingleQuotedString(_) => "varchar(n)",
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
    fn transactions_start_and_end_once() {
        assert_eq!(transaction("SELECT 1", false).unwrap(), None);
        assert_eq!(
            transaction("START TRANSACTION READ ONLY", false).unwrap(),
            Some(TransactionChange::Start)
        );
        assert_eq!(
            transaction("commit", true)
                .unwrap()
                .map(|c| c.update_type()),
            Some("COMMIT")
        );
        assert_eq!(
            transaction("ROLLBACK", true)
                .unwrap()
                .map(|c| c.update_type()),
            Some("ROLLBACK")
        );
        assert!(transaction("COMMIT", false).is_err(), "none in progress");
        assert!(transaction("START TRANSACTION", true).is_err(), "nested");
    }

    #[test]
    fn use_reads_quoted_names_whole() {
        assert_eq!(use_target("SELECT 1", None).unwrap(), None);
        assert_eq!(
            use_target("USE \"my schema\"", None).unwrap(),
            Some(("shoal".into(), "my schema".into()))
        );
        assert_eq!(
            use_target("use system.runtime;", Some("shoal")).unwrap(),
            Some(("system".into(), "runtime".into()))
        );
        assert_eq!(
            use_target("USE s", Some("system")).unwrap(),
            Some(("system".into(), "s".into()))
        );
        let missing = use_target("USE nowhere.s", None).unwrap_err();
        assert_eq!(missing.error_name, "CATALOG_NOT_FOUND");
        assert!(use_target("USE a.b.c", None).is_err());
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
