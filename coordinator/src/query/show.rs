//! `SHOW SCHEMAS`, `SHOW TABLES`, `SHOW COLUMNS` and `DESCRIBE` in Trino's shape.

/// The table of `DESCRIBE t` or `SHOW COLUMNS FROM t`.
pub fn describe_target(sql: &str) -> Option<String> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    match lower.as_slice() {
        ["describe" | "desc", _] => Some(words[1].to_string()),
        ["show", "columns", "from" | "in", _] => Some(words[3].to_string()),
        _ => None,
    }
}

/// `SHOW SCHEMAS [FROM shoal]` and `SHOW TABLES [FROM schema]`, in Trino's shape.
pub fn show_statement(sql: &str, current_schema: &str) -> Option<String> {
    let words: Vec<String> = sql.split_whitespace().map(|w| w.to_lowercase()).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let quote = |s: &str| s.trim_matches('"').replace('\'', "''");
    match words.as_slice() {
        ["show", "schemas"] | ["show", "schemas", "from" | "in", "shoal"] => Some(
            "SELECT schema_name AS \"Schema\" FROM information_schema.schemata WHERE catalog_name = 'shoal' ORDER BY 1".into(),
        ),
        ["show", "tables"] => Some(format!(
            "SELECT table_name AS \"Table\" FROM information_schema.tables WHERE table_catalog = 'shoal' AND table_schema = '{}' ORDER BY 1",
            quote(current_schema)
        )),
        ["show", "tables", "from" | "in", schema] => {
            let schema = schema.strip_prefix("shoal.").unwrap_or(schema);
            Some(format!(
                "SELECT table_name AS \"Table\" FROM information_schema.tables WHERE table_catalog = 'shoal' AND table_schema = '{}' ORDER BY 1",
                quote(schema)
            ))
        }
        _ => None,
    }
}
