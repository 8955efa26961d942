//! SHOW and DESCRIBE statements in Trino's shape, read from sqlparser's tokens (DataFusion's
//! parser knows few of Trino's forms): `SHOW CATALOGS`, `SHOW SCHEMAS [FROM catalog]`,
//! `SHOW TABLES [FROM [catalog.]schema]` and `SHOW SESSION`, each with an optional
//! `LIKE pattern [ESCAPE 'c']`; `SHOW FUNCTIONS [LIKE …]`; `SHOW COLUMNS FROM table`,
//! `DESCRIBE table`, `SHOW CREATE TABLE table` and `SHOW STATS FOR table`.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::sqlparser::ast::ObjectName;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;
use shoal_engine::dialect::TrinoDialect;
use shoal_proto::client::QueryError;

use crate::protocol::errors;
use crate::protocol::prepared::first_keyword;
use crate::query::source_text::offset;

/// `LIKE pattern [ESCAPE 'c']`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Like {
    pub pattern: String,
    pub escape: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Show {
    Catalogs {
        like: Option<Like>,
    },
    Schemas {
        catalog: Option<String>,
        like: Option<Like>,
    },
    Tables {
        catalog: Option<String>,
        schema: Option<String>,
        like: Option<Like>,
    },
    /// `SHOW COLUMNS FROM t` or `DESCRIBE t`.
    Columns(ObjectName),
    /// `DESCRIBE INPUT (statement)`: the parameters of a prepared statement.
    Input(String),
    /// `DESCRIBE OUTPUT (statement)`: the columns a prepared statement answers with.
    Output(String),
    Session {
        like: Option<Like>,
    },
    /// `SHOW CREATE TABLE t`: the table's DDL as Trino prints it.
    CreateTable(ObjectName),
    /// `SHOW CREATE VIEW v`.
    CreateView(ObjectName),
    /// `SHOW FUNCTIONS [LIKE pattern]`.
    Functions {
        like: Option<Like>,
    },
    /// `SHOW STATS FOR t`: per-column statistics, computed over the table's rows.
    Stats(ObjectName),
}

fn syntax(e: ParserError) -> QueryError {
    errors::syntax(e.to_string(), None)
}

/// `sql` as one of the SHOW statements answered here; None for any other statement.
pub fn parse(sql: &str) -> Result<Option<Show>, QueryError> {
    if !matches!(
        first_keyword(sql),
        Some(Keyword::SHOW | Keyword::DESCRIBE | Keyword::DESC)
    ) {
        return Ok(None);
    }
    let mut parser = Parser::new(&TrinoDialect)
        .try_with_sql(sql)
        .map_err(syntax)?;
    let show = if parser
        .parse_one_of_keywords(&[Keyword::DESCRIBE, Keyword::DESC])
        .is_some()
    {
        match parser.parse_one_of_keywords(&[Keyword::INPUT, Keyword::OUTPUT]) {
            Some(kind) => {
                // `DESCRIBE INPUT name` is turned into this form where the client's prepared
                // statements are known (see `protocol::prepared`).
                let open = parser.expect_token(&Token::LParen).map_err(syntax)?;
                let start = offset(sql, open.span.end);
                let end = sql.trim_end().trim_end_matches(';').trim_end().len();
                let statement = match sql
                    .get(start..end)
                    .and_then(|inner| inner.trim_end().strip_suffix(')'))
                {
                    Some(inner) => inner.trim().to_string(),
                    _ => {
                        return Err(errors::syntax(
                            "DESCRIBE INPUT and OUTPUT take a prepared statement's name",
                            None,
                        ))
                    }
                };
                return Ok(Some(if kind == Keyword::INPUT {
                    Show::Input(statement)
                } else {
                    Show::Output(statement)
                }));
            }
            None => Show::Columns(parser.parse_object_name(false).map_err(syntax)?),
        }
    } else {
        parser.expect_keyword(Keyword::SHOW).map_err(syntax)?;
        if parser.parse_keyword(Keyword::CATALOGS) {
            Show::Catalogs {
                like: like(&mut parser)?,
            }
        } else if parser.parse_keyword(Keyword::SCHEMAS) {
            let catalog = match from(&mut parser)? {
                Some(name) => match parts(&name).as_slice() {
                    [catalog] => Some(catalog.clone()),
                    _ => return Err(errors::syntax("SHOW SCHEMAS FROM takes a catalog", None)),
                },
                None => None,
            };
            Show::Schemas {
                catalog,
                like: like(&mut parser)?,
            }
        } else if parser.parse_keyword(Keyword::TABLES) {
            let (catalog, schema) = match from(&mut parser)? {
                Some(name) => match parts(&name).as_slice() {
                    [schema] => (None, Some(schema.clone())),
                    [catalog, schema] => (Some(catalog.clone()), Some(schema.clone())),
                    _ => return Err(errors::syntax("SHOW TABLES FROM takes a schema", None)),
                },
                None => (None, None),
            };
            Show::Tables {
                catalog,
                schema,
                like: like(&mut parser)?,
            }
        } else if parser.parse_keyword(Keyword::COLUMNS) {
            parser
                .expect_one_of_keywords(&[Keyword::FROM, Keyword::IN])
                .map_err(syntax)?;
            Show::Columns(parser.parse_object_name(false).map_err(syntax)?)
        } else if parser.parse_keyword(Keyword::FUNCTIONS) {
            Show::Functions {
                like: like(&mut parser)?,
            }
        } else if matches!(&parser.peek_token().token, Token::Word(w) if w.value.eq_ignore_ascii_case("stats"))
        {
            // STATS is no keyword of sqlparser's.
            parser.next_token();
            parser.expect_keyword(Keyword::FOR).map_err(syntax)?;
            Show::Stats(parser.parse_object_name(false).map_err(syntax)?)
        } else if parser.parse_keywords(&[Keyword::CREATE, Keyword::VIEW]) {
            Show::CreateView(parser.parse_object_name(false).map_err(syntax)?)
        } else if parser.parse_keywords(&[Keyword::CREATE, Keyword::TABLE]) {
            Show::CreateTable(parser.parse_object_name(false).map_err(syntax)?)
        } else if parser.parse_keyword(Keyword::SESSION) {
            Show::Session {
                like: like(&mut parser)?,
            }
        } else {
            return Ok(None);
        }
    };
    expect_end(&mut parser)?;
    Ok(Some(show))
}

/// Nothing but a `;` may follow a statement read by hand from the parser's tokens.
pub fn expect_end(parser: &mut Parser) -> Result<(), QueryError> {
    let _ = parser.consume_token(&Token::SemiColon);
    if parser.peek_token().token != Token::EOF {
        return Err(errors::syntax(
            format!("unexpected {} after the statement", parser.peek_token()),
            None,
        ));
    }
    Ok(())
}

/// The parts of `name`, unquoted.
pub fn parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .filter_map(|part| part.as_ident().map(|ident| ident.value.clone()))
        .collect()
}

fn from(parser: &mut Parser) -> Result<Option<ObjectName>, QueryError> {
    if parser
        .parse_one_of_keywords(&[Keyword::FROM, Keyword::IN])
        .is_none()
    {
        return Ok(None);
    }
    parser.parse_object_name(false).map(Some).map_err(syntax)
}

fn like(parser: &mut Parser) -> Result<Option<Like>, QueryError> {
    if !parser.parse_keyword(Keyword::LIKE) {
        return Ok(None);
    }
    let pattern = parser.parse_literal_string().map_err(syntax)?;
    let escape = if parser.parse_keyword(Keyword::ESCAPE) {
        Some(parser.parse_literal_string().map_err(syntax)?)
    } else {
        None
    };
    Ok(Some(Like { pattern, escape }))
}

/// `text` as a SQL string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// ` AND column LIKE pattern [ESCAPE e]`, or nothing without a pattern.
pub fn like_condition(column: &str, like: &Option<Like>) -> String {
    match like {
        Some(Like { pattern, escape }) => format!(
            " AND {column} LIKE {}{}",
            literal(pattern),
            escape
                .as_ref()
                .map(|e| format!(" ESCAPE {}", literal(e)))
                .unwrap_or_default()
        ),
        None => String::new(),
    }
}

/// The query of `SHOW SCHEMAS` over catalog `shoal`'s information_schema.
pub fn schemas_sql(like: &Option<Like>) -> String {
    format!(
        "SELECT schema_name AS \"Schema\" FROM information_schema.schemata WHERE catalog_name = 'shoal'{} ORDER BY 1",
        like_condition("schema_name", like)
    )
}

/// The query of `SHOW TABLES` of `schema` over catalog `shoal`'s information_schema.
pub fn tables_sql(schema: &str, like: &Option<Like>) -> String {
    format!(
        "SELECT table_name AS \"Table\" FROM information_schema.tables WHERE table_catalog = 'shoal' AND table_schema = {}{} ORDER BY 1",
        literal(schema),
        like_condition("table_name", like)
    )
}

/// `name` as a SQL identifier.
pub fn identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The query of `SHOW STATS FOR schema.table` over its `columns` (name and Trino type name),
/// in Trino's shape: per column its data size (text), distinct values (approximate), fraction
/// of NULLs and, for numbers and times, lowest and highest value; then a row of the row count.
pub fn stats_sql(schema: &str, table: &str, columns: &[(String, String)]) -> String {
    let from = format!("shoal.{}.{}", identifier(schema), identifier(table));
    let ordered = |type_name: &str| {
        let base = type_name.split('(').next().unwrap_or(type_name);
        matches!(
            base,
            "tinyint"
                | "smallint"
                | "integer"
                | "bigint"
                | "real"
                | "double"
                | "decimal"
                | "date"
                | "timestamp"
                | "time"
        )
    };
    let mut parts: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(position, (name, type_name))| {
            let column = identifier(name);
            let sized = type_name.starts_with("varchar") || type_name.starts_with("varbinary");
            let data_size = if sized {
                format!("CAST(sum(octet_length({column})) AS DOUBLE)")
            } else {
                "CAST(NULL AS DOUBLE)".into()
            };
            let (low, high) = if ordered(type_name) {
                (
                    format!("CAST(min({column}) AS VARCHAR)"),
                    format!("CAST(max({column}) AS VARCHAR)"),
                )
            } else {
                ("CAST(NULL AS VARCHAR)".into(), "CAST(NULL AS VARCHAR)".into())
            };
            format!(
                "SELECT {position} AS ord, {} AS column_name, {data_size} AS data_size, \
                 CAST(approx_distinct({column}) AS DOUBLE) AS distinct_values_count, \
                 CASE WHEN count(*) = 0 THEN CAST(NULL AS DOUBLE) ELSE CAST(count(*) - count({column}) AS DOUBLE) / CAST(count(*) AS DOUBLE) END AS nulls_fraction, \
                 CAST(NULL AS DOUBLE) AS row_count, {low} AS low_value, {high} AS high_value FROM {from}",
                literal(name)
            )
        })
        .collect();
    parts.push(format!(
        "SELECT {} AS ord, CAST(NULL AS VARCHAR) AS column_name, CAST(NULL AS DOUBLE) AS data_size, \
         CAST(NULL AS DOUBLE) AS distinct_values_count, CAST(NULL AS DOUBLE) AS nulls_fraction, \
         CAST(count(*) AS DOUBLE) AS row_count, CAST(NULL AS VARCHAR) AS low_value, CAST(NULL AS VARCHAR) AS high_value FROM {from}",
        columns.len()
    ));
    format!(
        "SELECT column_name, data_size, distinct_values_count, nulls_fraction, row_count, low_value, high_value FROM ({}) AS stats ORDER BY ord",
        parts.join(" UNION ALL ")
    )
}

/// A frame of text columns `names` holding `rows`, filtered on its first column by `like`
/// and sorted by it.
pub async fn rows_frame(
    names: &[&str],
    rows: Vec<Vec<String>>,
    like: &Option<Like>,
) -> Result<DataFrame, QueryError> {
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let columns: Vec<ArrayRef> = (0..names.len())
        .map(|i| {
            Arc::new(StringArray::from(
                rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>(),
            )) as ArrayRef
        })
        .collect();
    let batch =
        RecordBatch::try_new(schema, columns).map_err(|e| errors::internal(&e.to_string()))?;
    let context = SessionContext::new();
    context
        .register_batch("shown", batch)
        .map_err(|e| errors::internal(&e.to_string()))?;
    let first = format!("\"{}\"", names[0]);
    let sql = format!(
        "SELECT * FROM shown WHERE true{} ORDER BY {first}",
        like_condition(&first, like)
    );
    context
        .sql(&sql)
        .await
        .map_err(|e| errors::from_datafusion(&e, &sql))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn like(pattern: &str) -> Option<Like> {
        Some(Like {
            pattern: pattern.into(),
            escape: None,
        })
    }

    #[test]
    fn trino_forms_are_read_from_tokens() {
        assert_eq!(parse("SELECT 1").unwrap(), None);
        assert_eq!(
            parse("show catalogs like 's%'").unwrap(),
            Some(Show::Catalogs { like: like("s%") })
        );
        assert_eq!(
            parse("SHOW SCHEMAS FROM shoal LIKE 'a\\_%' ESCAPE '\\'").unwrap(),
            Some(Show::Schemas {
                catalog: Some("shoal".into()),
                like: Some(Like {
                    pattern: "a\\_%".into(),
                    escape: Some("\\".into())
                })
            })
        );
        assert_eq!(
            parse("SHOW TABLES IN \"my schema\"").unwrap(),
            Some(Show::Tables {
                catalog: None,
                schema: Some("my schema".into()),
                like: None
            })
        );
        assert_eq!(
            parse("SHOW TABLES FROM shoal.s LIKE 't'").unwrap(),
            Some(Show::Tables {
                catalog: Some("shoal".into()),
                schema: Some("s".into()),
                like: like("t")
            })
        );
        let Some(Show::Columns(name)) = parse("DESCRIBE \"odd.name\"").unwrap() else {
            panic!("DESCRIBE");
        };
        assert_eq!(parts(&name), vec!["odd.name".to_string()]);
        assert_eq!(
            parse("SHOW SESSION LIKE 'query%';").unwrap(),
            Some(Show::Session {
                like: like("query%")
            })
        );
        assert_eq!(
            parse("DESCRIBE OUTPUT (SELECT (1) FROM t WHERE x = ?);").unwrap(),
            Some(Show::Output("SELECT (1) FROM t WHERE x = ?".into()))
        );
        assert_eq!(
            parse("describe input (INSERT INTO t VALUES (?))").unwrap(),
            Some(Show::Input("INSERT INTO t VALUES (?)".into()))
        );
        let Some(Show::CreateTable(name)) = parse("SHOW CREATE TABLE s.t").unwrap() else {
            panic!("SHOW CREATE TABLE");
        };
        assert_eq!(parts(&name), vec!["s".to_string(), "t".to_string()]);
        assert!(parse("SHOW TABLES FROM a.b.c").is_err());
        assert!(parse("SHOW CATALOGS garbage").is_err());
    }

    #[test]
    fn patterns_stay_string_literals() {
        assert_eq!(
            like_condition("x", &like("it's")),
            " AND x LIKE 'it''s'".to_string()
        );
    }
}
