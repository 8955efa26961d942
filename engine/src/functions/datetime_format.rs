//! Trino's two date format languages as chrono's, for DataFusion's `to_char`: MySQL's
//! (`date_format`: `%Y-%m-%d %H:%i:%s`) and Joda-Time's (`format_datetime`:
//! `yyyy-MM-dd HH:mm:ss`). A specifier chrono cannot express is an error naming it.

use datafusion::common::plan_err;
use datafusion::error::Result;

/// chrono's format for MySQL's `format`.
pub fn from_mysql(format: &str) -> Result<String> {
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            push_literal(&mut out, c);
            continue;
        }
        let Some(spec) = chars.next() else {
            // A lone % at the end stands for itself.
            out.push_str("%%");
            break;
        };
        let chrono = match spec {
            'a' => "%a",
            'b' => "%b",
            'c' => "%-m",
            'd' => "%d",
            'e' => "%-d",
            'f' => "%6f",
            'H' => "%H",
            'h' | 'I' => "%I",
            'i' => "%M",
            'j' => "%j",
            'k' => "%-H",
            'l' => "%-I",
            'M' => "%B",
            'm' => "%m",
            'p' => "%p",
            'r' => "%I:%M:%S %p",
            'S' | 's' => "%S",
            'T' => "%H:%M:%S",
            'U' => "%U",
            'u' => "%W",
            'V' | 'v' => "%V",
            'W' => "%A",
            'w' => "%w",
            'X' | 'x' => "%G",
            'Y' => "%Y",
            'y' => "%y",
            '%' => "%%",
            'D' => return plan_err!("date_format: %D (day with English suffix) is not supported"),
            // Any other character stands for itself.
            other => {
                push_literal(&mut out, other);
                continue;
            }
        };
        out.push_str(chrono);
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

/// chrono's format for Joda-Time's `pattern`.
pub fn from_joda(pattern: &str) -> Result<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        if c == '\'' {
            // 'text' is literal; '' is one quote.
            if chars.get(at + 1) == Some(&'\'') {
                out.push('\'');
                at += 2;
                continue;
            }
            let mut end = at + 1;
            loop {
                match chars.get(end) {
                    None => return plan_err!("format_datetime: unterminated quote in '{pattern}'"),
                    Some('\'') if chars.get(end + 1) == Some(&'\'') => {
                        out.push('\'');
                        end += 2;
                    }
                    Some('\'') => break,
                    Some(&literal) => {
                        push_literal(&mut out, literal);
                        end += 1;
                    }
                }
            }
            at = end + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            push_literal(&mut out, c);
            at += 1;
            continue;
        }
        let mut run = 1;
        while chars.get(at + run) == Some(&c) {
            run += 1;
        }
        at += run;
        let chrono = match (c, run) {
            ('y' | 'Y', 2) => "%y",
            ('y' | 'Y', _) => "%Y",
            ('x', 2) => "%g",
            ('x', _) => "%G",
            ('w', 1) => "%-V",
            ('w', _) => "%V",
            ('e', _) => "%u",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('D', 1) => "%-j",
            ('D', _) => "%j",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('a', _) => "%p",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('m', 1) => "%-M",
            ('m', _) => "%M",
            ('s', 1) => "%-S",
            ('s', _) => "%S",
            ('S', 3) => "%3f",
            ('S', 6) => "%6f",
            ('S', 9) => "%9f",
            ('z', 1..=3) => "%Z",
            ('Z', 1) => "%z",
            ('Z', 2) => "%:z",
            _ => {
                return plan_err!(
                    "format_datetime: the pattern letter {} is not supported",
                    c.to_string().repeat(run)
                )
            }
        };
        out.push_str(chrono);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_formats() {
        assert_eq!(
            from_mysql("%Y-%m-%d %H:%i:%s").unwrap(),
            "%Y-%m-%d %H:%M:%S"
        );
        assert_eq!(
            from_mysql("%W, %M %e %r").unwrap(),
            "%A, %B %-d %I:%M:%S %p"
        );
        assert_eq!(from_mysql("100%% %q").unwrap(), "100%% q");
        assert!(from_mysql("%D").is_err());
    }

    #[test]
    fn joda_patterns() {
        assert_eq!(
            from_joda("yyyy-MM-dd HH:mm:ss.SSS").unwrap(),
            "%Y-%m-%d %H:%M:%S.%3f"
        );
        assert_eq!(
            from_joda("EEEE, MMMM d 'at' h a ''yy").unwrap(),
            "%A, %B %-d at %-I %p '%y"
        );
        assert_eq!(from_joda("'100%' y").unwrap(), "100%% %Y");
        assert!(from_joda("kk").is_err());
        assert!(from_joda("'open").is_err());
    }
}
