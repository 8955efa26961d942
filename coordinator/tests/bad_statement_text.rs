//! Property tests of what a statement body and credentials go through before a query runs:
//! any text is classified (reads only, SHOW and DESCRIBE) without a panic, names given to
//! SHOW cannot inject SQL into the statement it becomes, and any `Authorization` header or
//! password file text gives an answer or an error.

use axum::http::HeaderValue;
use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use proptest::prelude::*;
use shoal_coordinator::auth::{basic_credentials, parse_password_file};
use shoal_coordinator::query::show::{self, Like};
use shoal_coordinator::query::statements::reads_only;

/// Words and symbols statements are made of, so generated text gets past the first token.
fn sql_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("SELECT".to_string()),
        Just("FROM".to_string()),
        Just("SHOW".to_string()),
        Just("TABLES".to_string()),
        Just("SCHEMAS".to_string()),
        Just("DESCRIBE".to_string()),
        Just("COLUMNS".to_string()),
        Just("INSERT INTO".to_string()),
        Just("CREATE TABLE".to_string()),
        Just("EXPLAIN".to_string()),
        Just("WITH".to_string()),
        Just("USE".to_string()),
        Just(";".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("--".to_string()),
        "[a-z0-9_.]{1,8}",
    ]
}

/// `sql` parses as exactly one statement, and that statement only reads.
fn one_reading_statement(sql: &str) -> bool {
    DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
        .is_ok_and(|statements| statements.len() == 1)
        && reads_only(sql)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_is_classified_without_a_panic(sql in any::<String>()) {
        let _ = reads_only(&sql);
        let _ = show::parse(&sql);
    }

    #[test]
    fn statement_like_text_is_classified_without_a_panic(
        pieces in prop::collection::vec(sql_piece(), 0..16)
    ) {
        let sql = pieces.join(" ");
        let _ = reads_only(&sql);
        let _ = show::parse(&sql);
    }

    #[test]
    fn a_schema_or_pattern_named_in_show_cannot_inject_sql(
        schema in any::<String>(),
        pattern in any::<String>(),
        escape in proptest::option::of(any::<String>()),
    ) {
        let like = Some(Like { pattern, escape });
        for sql in [show::tables_sql(&schema, &like), show::schemas_sql(&like), show::tables_sql(&schema, &None)] {
            prop_assert!(one_reading_statement(&sql), "{sql}");
        }
    }

    #[test]
    fn names_in_show_stats_cannot_inject_sql(
        schema in any::<String>(),
        table in any::<String>(),
        column in any::<String>(),
    ) {
        let columns = vec![(column, "varchar".to_string()), ("x".to_string(), "bigint".to_string())];
        let sql = show::stats_sql(&schema, &table, &columns);
        prop_assert!(one_reading_statement(&sql), "{sql}");
    }

    #[test]
    fn a_quoted_schema_in_show_tables_is_read_whole(schema in "[a-z .;']{1,20}") {
        let quoted = schema.replace('"', "\"\"");
        match show::parse(&format!("SHOW TABLES FROM \"{quoted}\"")) {
            Ok(Some(show::Show::Tables { schema: Some(read), .. })) => prop_assert_eq!(read, schema),
            other => prop_assert!(false, "{other:?}"),
        }
    }

    #[test]
    fn any_authorization_header_gives_credentials_or_none(
        bytes in prop::collection::vec(any::<u8>(), 0..120)
    ) {
        let mut header = b"Basic ".to_vec();
        header.extend_from_slice(&bytes);
        for value in [HeaderValue::from_bytes(&bytes), HeaderValue::from_bytes(&header)]
            .into_iter()
            .flatten()
        {
            if let Some((user, _)) = basic_credentials(&value) {
                prop_assert!(!user.contains(':'));
            }
        }
    }

    #[test]
    fn any_password_file_text_gives_users_or_an_error(text in any::<String>()) {
        match parse_password_file("password.db", &text) {
            Ok(users) => prop_assert!(users.keys().all(|u| !u.is_empty())),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
