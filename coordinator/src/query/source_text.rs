//! Statement text as the client wrote it, by the parser's token locations (the source of an
//! INSERT, the query of a CREATE TABLE AS). The parser's printer
//! is no substitute: it leaves doubled quotes inside a string as it found them, so a value
//! holding `''` would come back as one quote.

use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};
use shoal_engine::dialect::TrinoDialect;

use crate::catalog::views::ViewSecurity;

/// The byte offset in `text` of `location` (1-based line and column, in characters).
pub fn offset(text: &str, location: Location) -> usize {
    let mut line_start = 0;
    for _ in 1..location.line {
        match text[line_start..].find('\n') {
            Some(end) => line_start += end + 1,
            None => return text.len(),
        }
    }
    text[line_start..]
        .char_indices()
        .nth(location.column.saturating_sub(1) as usize)
        .map_or(text.len(), |(i, _)| line_start + i)
}

fn meaningful(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .collect()
}

/// The source query of `INSERT INTO name [(columns)] source` as written in `sql`, when it can
/// be found by its tokens; `has_columns` says whether the statement lists columns.
pub fn insert_source(sql: &str, has_columns: bool) -> Option<&str> {
    let tokens = meaningful(
        Tokenizer::new(&TrinoDialect, sql)
            .tokenize_with_location()
            .ok()?,
    );
    let mut at = 0;
    let keyword =
        |t: &TokenWithSpan, k: Keyword| matches!(&t.token, Token::Word(w) if w.keyword == k);
    // INSERT [INTO] name
    if !keyword(tokens.get(at)?, Keyword::INSERT) {
        return None;
    }
    at += 1;
    if keyword(tokens.get(at)?, Keyword::INTO) {
        at += 1;
    }
    // The name: words joined by periods.
    loop {
        if !matches!(tokens.get(at)?.token, Token::Word(_)) {
            return None;
        }
        at += 1;
        if matches!(tokens.get(at).map(|t| &t.token), Some(Token::Period)) {
            at += 1;
        } else {
            break;
        }
    }
    if has_columns {
        if tokens.get(at)?.token != Token::LParen {
            return None;
        }
        let mut depth = 0usize;
        loop {
            match tokens.get(at)?.token {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                _ => {}
            }
            at += 1;
            if depth == 0 {
                break;
            }
        }
    }
    let start = offset(sql, tokens.get(at)?.span.start);
    Some(sql[start..].trim().trim_end_matches(';').trim_end())
}

/// The query of `CREATE TABLE … AS query` as written in `sql`: what follows the first `AS`
/// outside parentheses after `TABLE`.
pub fn create_table_query(sql: &str) -> Option<&str> {
    query_after(sql, Keyword::TABLE)
}

/// The query of `CREATE [OR REPLACE] VIEW … AS query` as written in `sql`.
pub fn create_view_query(sql: &str) -> Option<&str> {
    query_after(sql, Keyword::VIEW)
}

/// `CREATE [OR REPLACE] VIEW name ... SECURITY DEFINER|INVOKER AS query` without its
/// SECURITY clause, which the parser does not know (dbt-trino writes it), and the mode the
/// clause names; None for any other statement.
pub fn without_view_security(sql: &str) -> Option<(String, ViewSecurity)> {
    let tokens = meaningful(
        Tokenizer::new(&TrinoDialect, sql)
            .tokenize_with_location()
            .ok()?,
    );
    let word = |at: usize, text: &str| matches!(tokens.get(at).map(|t| &t.token), Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(text));
    if !word(0, "CREATE") {
        return None;
    }
    let mut at = 1;
    if word(at, "OR") && word(at + 1, "REPLACE") {
        at += 2;
    }
    if !word(at, "VIEW") {
        return None;
    }
    while at < tokens.len() && !word(at, "AS") {
        if word(at, "SECURITY") && (word(at + 1, "DEFINER") || word(at + 1, "INVOKER")) {
            let start = offset(sql, tokens[at].span.start);
            let end = offset(sql, tokens[at + 1].span.end);
            let security = if word(at + 1, "INVOKER") {
                ViewSecurity::Invoker
            } else {
                ViewSecurity::Definer
            };
            return Some((format!("{}{}", &sql[..start], &sql[end..]), security));
        }
        at += 1;
    }
    None
}

/// What follows the first `AS` outside parentheses after `after` in `sql`.
fn query_after(sql: &str, after: Keyword) -> Option<&str> {
    let tokens = meaningful(
        Tokenizer::new(&TrinoDialect, sql)
            .tokenize_with_location()
            .ok()?,
    );
    let keyword =
        |t: &TokenWithSpan, k: Keyword| matches!(&t.token, Token::Word(w) if w.keyword == k);
    let table = tokens.iter().position(|t| keyword(t, after))?;
    let mut depth = 0usize;
    for (at, token) in tokens.iter().enumerate().skip(table + 1) {
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.checked_sub(1)?,
            _ if depth == 0 && keyword(token, Keyword::AS) => {
                let start = offset(sql, tokens.get(at + 1)?.span.start);
                return Some(sql[start..].trim().trim_end_matches(';').trim_end());
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_of_an_insert_is_its_text() {
        let sql = "INSERT INTO s.\"t x\" (a, b) VALUES (1, 'a''''b'), (2, '-- no')";
        assert_eq!(
            insert_source(sql, true),
            Some("VALUES (1, 'a''''b'), (2, '-- no')")
        );
        assert_eq!(
            insert_source("insert into t\n  SELECT 1;", false),
            Some("SELECT 1")
        );
        assert_eq!(
            insert_source("INSERT INTO t (SELECT 1)", false),
            Some("(SELECT 1)")
        );
        assert_eq!(insert_source("SELECT 1", false), None);
    }

    #[test]
    fn a_view_loses_its_security_clause_and_nothing_else() {
        assert_eq!(
            without_view_security(
                "create or replace view s.\"v\" security definer as select 'security definer' AS x"
            )
            .map(|(sql, _)| sql)
            .as_deref(),
            Some("create or replace view s.\"v\"  as select 'security definer' AS x")
        );
        assert_eq!(
            without_view_security("CREATE VIEW v SECURITY INVOKER AS SELECT 1")
                .map(|(sql, _)| sql)
                .as_deref(),
            Some("CREATE VIEW v  AS SELECT 1")
        );
        assert_eq!(without_view_security("CREATE VIEW v AS SELECT 1"), None);
        assert_eq!(
            without_view_security("CREATE VIEW v SECURITY INVOKER AS SELECT 1").map(|(_, s)| s),
            Some(ViewSecurity::Invoker)
        );
        assert_eq!(
            without_view_security("CREATE VIEW v SECURITY DEFINER AS SELECT 1").map(|(_, s)| s),
            Some(ViewSecurity::Definer)
        );
        assert_eq!(without_view_security("SELECT 1"), None);
    }

    #[test]
    fn the_query_of_a_create_table_as_is_its_text() {
        let sql =
            "CREATE TABLE IF NOT EXISTS s.t WITH (format = 'PARQUET') AS SELECT 'a''''b' AS q";
        assert_eq!(create_table_query(sql), Some("SELECT 'a''''b' AS q"));
        assert_eq!(
            create_table_query("create table t as (select 1 as x);"),
            Some("(select 1 as x)")
        );
        assert_eq!(create_table_query("CREATE TABLE t (a BIGINT)"), None);
    }
}
