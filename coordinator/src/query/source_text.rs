//! Statement text as the client wrote it, by the parser's token locations. The parser's printer
//! is no substitute: it leaves doubled quotes inside a string as it found them, so a value
//! holding `''` would come back as one quote.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

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
        Tokenizer::new(&GenericDialect {}, sql)
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
}
