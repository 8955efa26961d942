//! Tests of prepared statements: the statements, the headers, and a property test that no
//! parameter value changes the statement it is bound into.

use super::*;
use datafusion::sql::sqlparser::ast::{BinaryOperator, SelectItem, SetExpr};
use proptest::prelude::*;

fn kept(name: &str, statement: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(name.to_string(), statement.to_string())])
}

#[test]
fn prepare_execute_and_deallocate() {
    let added = interpret(
        "PREPARE st_1 FROM SELECT name FROM t WHERE id = ?",
        &BTreeMap::new(),
    );
    assert_eq!(
        added,
        Ok(Prepared::Add {
            name: "st_1".into(),
            statement: "SELECT name FROM t WHERE id = ?".into()
        })
    );
    let prepared = kept("st_1", "SELECT name FROM t WHERE id = ?");
    assert_eq!(
        interpret("EXECUTE st_1 USING 2", &prepared),
        Ok(Prepared::Run("SELECT name FROM t WHERE id = 2".into()))
    );
    assert_eq!(
        interpret("DEALLOCATE PREPARE st_1", &prepared),
        Ok(Prepared::Deallocate {
            name: "st_1".into()
        })
    );
    let missing = interpret("EXECUTE st_2 USING 2", &prepared).unwrap_err();
    assert_eq!(
        (missing.error_name.as_str(), missing.message.as_str()),
        ("NOT_FOUND", "Prepared statement not found: st_2")
    );
    assert_eq!(interpret("SELECT 1", &prepared), Ok(Prepared::Other));
    assert_eq!(
        interpret(
            "EXECUTE IMMEDIATE 'SELECT ?' USING 'it''s'",
            &BTreeMap::new()
        ),
        Ok(Prepared::Run("SELECT 'it''s'".into()))
    );
}

#[test]
fn parameters_bind_in_the_order_of_the_text() {
    assert_eq!(
        bind(
            "INSERT INTO t (a, b) VALUES (?, ?)",
            vec![
                Expr::value(Value::Number("1".into(), false)),
                Expr::value(Value::SingleQuotedString("x".into()))
            ]
        ),
        Ok("INSERT INTO t (a, b) VALUES (1, 'x')".into())
    );
    // The statement's own text stays as written, comments and doubled quotes included.
    let prepared = kept("k", "SELECT '''' AS q, -- a comment with ?\n ? AS v");
    assert_eq!(
        interpret("EXECUTE k USING DATE '2024-01-02'", &prepared),
        Ok(Prepared::Run(
            "SELECT '''' AS q, -- a comment with ?\n DATE '2024-01-02' AS v".into()
        ))
    );
    let prepared = kept("q", "SELECT ? FROM t WHERE a > ? ORDER BY b LIMIT ?");
    assert_eq!(
        interpret("EXECUTE q USING 'p', 5, 10", &prepared),
        Ok(Prepared::Run(
            "SELECT 'p' FROM t WHERE a > 5 ORDER BY b LIMIT 10".into()
        ))
    );
    let wrong = interpret("EXECUTE q USING 1", &prepared).unwrap_err();
    assert_eq!(
        (wrong.error_name.as_str(), wrong.message.as_str()),
        (
            "INVALID_PARAMETER_USAGE",
            "Incorrect number of parameters: expected 3 but found 1"
        )
    );
}

#[test]
fn values_that_would_end_a_string_stay_in_it() {
    let prepared = kept("st", "SELECT * FROM t WHERE a = ?");
    for hostile in [
        r"\'; DROP TABLE t; --",
        "''",
        "'; DROP TABLE t; --",
        "a''b'",
    ] {
        let execute = format!("EXECUTE st USING {}", literal(hostile));
        let Ok(Prepared::Run(bound)) = interpret(&execute, &prepared) else {
            panic!("{hostile} did not bind");
        };
        let statements = Parser::parse_sql(&TrinoDialect, &bound).expect("parses");
        assert_eq!(statements.len(), 1, "{bound}");
        assert!(bound.ends_with(&literal(hostile)), "{bound}");
    }
    let not_literal = interpret("EXECUTE st USING (SELECT secret FROM s)", &prepared).unwrap_err();
    assert_eq!(not_literal.error_name, "INVALID_PARAMETER_USAGE");
}

#[test]
fn the_header_carries_url_encoded_pairs() {
    let statement = "SELECT 'a,b=c' + 1 FROM t WHERE x = ?";
    let header = added_header("st_1", statement);
    let (name, encoded) = header.split_once('=').expect("name=statement");
    assert_eq!(name, "st_1", "names are sent as they are");
    assert!(!encoded.contains([',', '=', ' ']), "{header}");
    let mut read = BTreeMap::new();
    parse_header(&format!("{header}, other=SELECT+1"), &mut read).expect("header");
    assert_eq!(read.get("st_1").map(String::as_str), Some(statement));
    assert_eq!(read.get("other").map(String::as_str), Some("SELECT 1"));
    assert!(parse_header("no-equals-sign", &mut read).is_err());
}

/// The string literal `text` as the Python client writes it.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

proptest! {
    #[test]
    fn no_parameter_value_changes_the_statement(text in any::<String>(), number in any::<i64>()) {
        let prepared = kept("st", "SELECT ? AS a, ? AS b FROM t WHERE c = ?");
        let execute = format!("EXECUTE st USING {}, {number}, {}", literal(&text), literal(&text));
        let Ok(Prepared::Run(bound)) = interpret(&execute, &prepared) else {
            panic!("{execute} did not bind");
        };
        let statements = Parser::parse_sql(&TrinoDialect, &bound).expect("bound statement parses");
        prop_assert_eq!(statements.len(), 1);
        let Statement::Query(query) = &statements[0] else { panic!("{bound} is no query") };
        let SetExpr::Select(select) = query.body.as_ref() else { panic!("{bound} is no select") };
        prop_assert_eq!(select.projection.len(), 2);
        let string_of = |expr: &Expr| match expr {
            Expr::Value(value) => match &value.value {
                Value::SingleQuotedString(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        };
        let SelectItem::ExprWithAlias { expr, alias } = &select.projection[0] else { panic!("{bound}") };
        prop_assert_eq!(string_of(expr), Some(text.clone()));
        prop_assert_eq!(alias.value.as_str(), "a");
        let SelectItem::ExprWithAlias { expr, .. } = &select.projection[1] else { panic!("{bound}") };
        prop_assert_eq!(expr.to_string(), number.to_string());
        let Some(Expr::BinaryOp { left, op: BinaryOperator::Eq, right }) = &select.selection else {
            panic!("{bound}")
        };
        prop_assert_eq!(left.to_string(), "c");
        prop_assert_eq!(string_of(right), Some(text.clone()));
        prop_assert_eq!(select.from.len(), 1);
    }
}

#[test]
fn only_the_start_of_a_statement_decides_whether_it_is_about_prepared_statements() {
    let padded = |start: &str| format!("{}{start} st_1 USING 1", " ".repeat(250));
    let prepared = kept("st_1", "SELECT ?");
    // The keyword cut by the end of the first bytes read is read whole.
    assert_eq!(
        interpret(&padded("EXECUTE"), &prepared),
        Ok(Prepared::Run("SELECT 1".into()))
    );
    let commented = format!("/* {} */ EXECUTE st_1 USING 2", "x".repeat(400));
    assert_eq!(
        interpret(&commented, &prepared),
        Ok(Prepared::Run("SELECT 2".into()))
    );
    let long_select = format!("SELECT '{}'", "y".repeat(10_000));
    assert_eq!(interpret(&long_select, &prepared), Ok(Prepared::Other));
}
