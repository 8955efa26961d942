//! Prepared statements, Trino's way: `PREPARE name FROM statement`, `EXECUTE name USING …`,
//! `EXECUTE IMMEDIATE '…' USING …`, `DEALLOCATE PREPARE name`, and `DESCRIBE INPUT name` /
//! `DESCRIBE OUTPUT name` (run as `DESCRIBE INPUT (statement)`, see `query::show`). The
//! client keeps its prepared statements and sends them with every request
//! (`X-Trino-Prepared-Statement`), so any coordinator can execute them. Parameters are typed literal values: each `?` token of the
//! parsed statement becomes one literal written here from the parsed value (its quotes
//! escaped), so no value can change what the statement is.

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::ast::{
    CastKind, Expr, ObjectName, Statement, UnaryOperator, Value,
};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use shoal_engine::dialect::TrinoDialect;
use shoal_proto::client::QueryError;

use crate::protocol::errors;
use crate::query::source_text::offset;

/// What a statement asks of the prepared statements.
#[derive(Debug, PartialEq, Eq)]
pub enum Prepared {
    /// `PREPARE name FROM statement`: the client is to keep `statement` as `name`.
    Add { name: String, statement: String },
    /// `DEALLOCATE PREPARE name`: the client is to forget `name`.
    Deallocate { name: String },
    /// `EXECUTE …`: this statement, its parameters bound, is what runs.
    Run(String),
    /// A statement that is none of these.
    Other,
}

fn syntax(e: ParserError) -> QueryError {
    errors::syntax(e.to_string(), None)
}

/// Read `sql` as a statement about prepared statements, with `prepared` the statements the
/// client keeps.
pub fn interpret(sql: &str, prepared: &BTreeMap<String, String>) -> Result<Prepared, QueryError> {
    let keyword = match first_keyword(sql) {
        Some(
            keyword @ (Keyword::PREPARE
            | Keyword::EXECUTE
            | Keyword::DEALLOCATE
            | Keyword::DESCRIBE),
        ) => keyword,
        _ => return Ok(Prepared::Other),
    };
    let mut parser = Parser::new(&TrinoDialect)
        .try_with_sql(sql)
        .map_err(syntax)?;
    match keyword {
        Keyword::PREPARE => {
            parser.next_token();
            let name = parser.parse_identifier().map_err(syntax)?.value;
            parser.expect_keyword(Keyword::FROM).map_err(syntax)?;
            let text = sql[offset(sql, parser.peek_token().span.start)..]
                .trim()
                .trim_end_matches(';')
                .trim();
            let statement = parser.parse_statement().map_err(syntax)?;
            if matches!(
                statement,
                Statement::Prepare { .. }
                    | Statement::Execute { .. }
                    | Statement::Deallocate { .. }
            ) {
                return Err(errors::syntax(
                    "a prepared statement cannot itself be PREPARE, EXECUTE or DEALLOCATE",
                    None,
                ));
            }
            Ok(Prepared::Add {
                name,
                statement: text.to_string(),
            })
        }
        Keyword::DESCRIBE => {
            parser.next_token();
            let Some(kind) = parser.parse_one_of_keywords(&[Keyword::INPUT, Keyword::OUTPUT])
            else {
                return Ok(Prepared::Other);
            };
            if parser.peek_token().token == Token::LParen {
                // The statement itself, as `query::show` reads it.
                return Ok(Prepared::Other);
            }
            let name = parser.parse_identifier().map_err(syntax)?.value;
            let statement = find(prepared, &name)?;
            let kind = if kind == Keyword::INPUT {
                "INPUT"
            } else {
                "OUTPUT"
            };
            // Answered by `query::show` as a query over the statement's plan.
            Ok(Prepared::Run(format!("DESCRIBE {kind} ({statement})")))
        }
        Keyword::DEALLOCATE => match parser.parse_statement().map_err(syntax)? {
            Statement::Deallocate { name, .. } => {
                let name = name.value;
                find(prepared, &name)?;
                Ok(Prepared::Deallocate { name })
            }
            _ => Ok(Prepared::Other),
        },
        Keyword::EXECUTE => match parser.parse_statement().map_err(syntax)? {
            Statement::Execute {
                name: Some(name),
                parameters,
                using,
                ..
            } => {
                let values = using.into_iter().map(|p| p.expr).collect();
                // The generic dialect reads `EXECUTE IMMEDIATE 'statement'` as a statement
                // named IMMEDIATE with the text as its argument.
                let immediate = matches!(name.0.as_slice(), [part] if part
                    .as_ident()
                    .is_some_and(|i| i.quote_style.is_none() && i.value.eq_ignore_ascii_case("immediate")));
                if immediate {
                    let statement = match parameters.as_slice() {
                        [Expr::Value(value)] => match &value.value {
                            Value::SingleQuotedString(text) => text.clone(),
                            _ => return Err(immediate_text()),
                        },
                        _ => return Err(immediate_text()),
                    };
                    return bind(&statement, values).map(Prepared::Run);
                }
                if !parameters.is_empty() {
                    return Err(errors::syntax(
                        "EXECUTE takes its parameters after USING",
                        None,
                    ));
                }
                let statement = find(prepared, &object_name(&name))?;
                bind(statement, values).map(Prepared::Run)
            }
            _ => Ok(Prepared::Other),
        },
        _ => Ok(Prepared::Other),
    }
}

/// The keyword `sql` begins with. Every statement passes here, so only its first few hundred
/// bytes are tokenized, unless they end inside a string or comment or hold a single token
/// (which the end may have cut).
pub(crate) fn first_keyword(sql: &str) -> Option<Keyword> {
    const PREFIX_BYTES: usize = 256;
    let mut end = sql.len().min(PREFIX_BYTES);
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    let meaningful = |text: &str| -> Option<Vec<Token>> {
        let tokens = Tokenizer::new(&TrinoDialect, text).tokenize().ok()?;
        Some(
            tokens
                .into_iter()
                .filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF))
                .collect(),
        )
    };
    let tokens = meaningful(&sql[..end])
        .filter(|tokens| end == sql.len() || tokens.len() > 1)
        .or_else(|| meaningful(sql))?;
    match tokens.first()? {
        Token::Word(word) => Some(word.keyword),
        _ => None,
    }
}

fn immediate_text() -> QueryError {
    errors::syntax(
        "EXECUTE IMMEDIATE expects the statement as a string literal",
        None,
    )
}

fn object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .filter_map(|part| part.as_ident().map(|ident| ident.value.clone()))
        .collect::<Vec<_>>()
        .join(".")
}

/// The statement the client keeps as `name` (names match as Trino's identifiers do: exactly,
/// else ignoring case).
fn find<'a>(prepared: &'a BTreeMap<String, String>, name: &str) -> Result<&'a String, QueryError> {
    prepared
        .get(name)
        .or_else(|| {
            prepared
                .iter()
                .find(|(kept, _)| kept.eq_ignore_ascii_case(name))
                .map(|(_, statement)| statement)
        })
        .ok_or_else(|| {
            errors::not_found("NOT_FOUND", format!("Prepared statement not found: {name}"))
        })
}

/// `value` as SQL text: a literal of the kinds clients send (numbers, strings, booleans,
/// NULL, `DATE '…'` and other typed strings, `X'…'`, arrays, casts), written here, not by
/// the parser's printer (which leaves doubled quotes and backslashes as it found them).
fn render(value: &Expr) -> Result<String, QueryError> {
    let not_literal = || {
        errors::invalid_parameter_usage(format!("a parameter must be a literal value, not {value}"))
    };
    let quoted = |text: &str| format!("'{}'", text.replace('\'', "''"));
    // Type names are words, digits and punctuation of sizes: nothing that quotes or comments.
    let type_name = |data_type: &dyn std::fmt::Display| {
        let name = data_type.to_string();
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || " _(),".contains(c))
            .then_some(name)
            .ok_or_else(not_literal)
    };
    Ok(match value {
        Expr::Value(value) => match &value.value {
            Value::Number(number, _) => number.clone(),
            Value::SingleQuotedString(text) => quoted(text),
            Value::Boolean(true) => "TRUE".into(),
            Value::Boolean(false) => "FALSE".into(),
            Value::Null => "NULL".into(),
            Value::HexStringLiteral(hex) if hex.chars().all(|c| c.is_ascii_hexdigit()) => {
                format!("X'{hex}'")
            }
            _ => return Err(not_literal()),
        },
        Expr::UnaryOp {
            op: op @ (UnaryOperator::Minus | UnaryOperator::Plus),
            expr,
        } => format!("{op}{}", render(expr)?),
        Expr::TypedString(typed) => match &typed.value.value {
            Value::SingleQuotedString(text) => {
                format!("{} {}", type_name(&typed.data_type)?, quoted(text))
            }
            _ => return Err(not_literal()),
        },
        Expr::Cast {
            kind: CastKind::Cast,
            expr,
            data_type,
            format: None,
            ..
        } => format!("CAST({} AS {})", render(expr)?, type_name(data_type)?),
        Expr::Array(array) => {
            let elements: Result<Vec<String>, QueryError> = array.elem.iter().map(render).collect();
            format!("ARRAY[{}]", elements?.join(", "))
        }
        Expr::Nested(inner) => format!("({})", render(inner)?),
        _ => return Err(not_literal()),
    })
}

/// Where `statement`'s `?` parameters are, in the order they appear in its text (byte
/// ranges), once it is known to be one statement.
fn parameter_places(statement: &str) -> Result<Vec<(usize, usize)>, QueryError> {
    let statements = Parser::parse_sql(&TrinoDialect, statement).map_err(syntax)?;
    if statements.len() != 1 {
        return Err(errors::syntax(
            "a prepared statement is one statement",
            None,
        ));
    }
    let tokens = Tokenizer::new(&TrinoDialect, statement)
        .tokenize_with_location()
        .map_err(|e| errors::syntax(e.to_string(), None))?;
    Ok(tokens
        .iter()
        .filter(|t| matches!(&t.token, Token::Placeholder(p) if p == "?"))
        .map(|t| {
            (
                offset(statement, t.span.start),
                offset(statement, t.span.end),
            )
        })
        .collect())
}

/// `statement` with the text at `places` replaced by `replacements`, in order.
fn splice(statement: &str, places: &[(usize, usize)], replacements: Vec<String>) -> String {
    let mut spliced = String::with_capacity(statement.len());
    let mut from = 0;
    for ((start, end), replacement) in places.iter().zip(replacements) {
        spliced.push_str(&statement[from..*start]);
        spliced.push_str(&replacement);
        from = *end;
    }
    spliced.push_str(&statement[from..]);
    spliced
}

/// `statement` with its `?` parameters, in the order they appear in its text, replaced by
/// `values`. The statement's own text is kept as the client wrote it; only the parameter
/// tokens are replaced, each by one literal.
pub fn bind(statement: &str, values: Vec<Expr>) -> Result<String, QueryError> {
    let places = parameter_places(statement)?;
    if places.len() != values.len() {
        return Err(errors::invalid_parameter_usage(format!(
            "Incorrect number of parameters: expected {} but found {}",
            places.len(),
            values.len()
        )));
    }
    let literals = values.iter().map(render).collect::<Result<Vec<_>, _>>()?;
    Ok(splice(statement, &places, literals))
}

/// `statement` with its `?` parameters numbered as DataFusion's placeholders (`$1`, `$2`, …),
/// for planning it without values (DESCRIBE INPUT and OUTPUT), and how many there are.
pub fn numbered(statement: &str) -> Result<(String, usize), QueryError> {
    let places = parameter_places(statement)?;
    let names = (1..=places.len()).map(|n| format!("${n}")).collect();
    Ok((splice(statement, &places, names), places.len()))
}

/// The prepared statements of an `X-Trino-Prepared-Statement` header value: comma-separated
/// `name=statement` pairs, each part URL-encoded.
pub fn parse_header(value: &str, into: &mut BTreeMap<String, String>) -> Result<(), String> {
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, statement) = pair
            .split_once('=')
            .ok_or_else(|| format!("prepared statement {pair:?} is not name=statement"))?;
        into.insert(decode(name.trim())?, decode(statement.trim())?);
    }
    Ok(())
}

/// `text` URL-decoded (as a form: `+` is a space).
pub(crate) fn decode(text: &str) -> Result<String, String> {
    percent_decode_str(&text.replace('+', " "))
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| format!("{text:?} is not URL-encoded UTF-8"))
}

/// What a name keeps as it is in a header: clients read names without decoding them.
const NAME_AS_IS: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-').remove(b'.');

/// `name=statement` as the `X-Trino-Added-Prepare` response header carries it.
pub fn added_header(name: &str, statement: &str) -> String {
    format!(
        "{}={}",
        utf8_percent_encode(name, NAME_AS_IS),
        utf8_percent_encode(statement, NON_ALPHANUMERIC)
    )
}

#[cfg(test)]
#[path = "prepared_tests.rs"]
mod tests;
