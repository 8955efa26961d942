//! Decision tests: users with different rights, rule order, whole-name matching, queries.

use crate::{AccessControl, AccessDenied, Identity};

/// alice (group admin) owns everything; bob may read and insert in `sales`; carol may only
/// read `sales.orders`; catalog `archive` is read-only for everyone but admins.
const RULES: &str = r#"{
  "catalogs": [
    {"group": "admin", "allow": "all"},
    {"catalog": "archive", "allow": "read-only"},
    {"catalog": "shoal", "allow": "all"},
    {"catalog": "legacy", "allow": true},
    {"catalog": "secret", "allow": false}
  ],
  "schemas": [
    {"group": "admin", "owner": true},
    {"user": "bob", "schema": "scratch", "owner": true}
  ],
  "tables": [
    {"group": "admin", "privileges": ["SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP"]},
    {"user": "bob", "schema": "sales", "privileges": ["SELECT", "insert"]},
    {"user": "carol", "schema": "sales", "table": "orders", "privileges": ["SELECT"],
     "columns": [{"name": "card", "allow": false}]},
    {"user": "dave", "privileges": []},
    {"catalog": "archive", "privileges": ["SELECT", "INSERT", "OWNERSHIP"]}
  ]
}"#;

fn control() -> AccessControl {
    AccessControl::from_rules_json(RULES).unwrap()
}

fn alice() -> Identity {
    Identity::new("alice", ["admin"])
}

fn user(name: &str) -> Identity {
    Identity::new(name, Vec::<String>::new())
}

fn denied(message: &str) -> Result<(), AccessDenied> {
    Err(AccessDenied(message.to_string()))
}

#[test]
fn admin_alice_may_do_everything() {
    let ac = control();
    let a = alice();
    assert_eq!(ac.check_can_access_catalog(&a, "anything"), Ok(()));
    assert_eq!(ac.check_can_create_schema(&a, "shoal", "s"), Ok(()));
    assert_eq!(ac.check_can_drop_schema(&a, "archive", "s"), Ok(()));
    assert_eq!(ac.check_can_create_table(&a, "shoal", "s", "t"), Ok(()));
    assert_eq!(ac.check_can_drop_table(&a, "shoal", "s", "t"), Ok(()));
    assert_eq!(
        ac.check_can_select_from_table(&a, "shoal", "sales", "orders"),
        Ok(())
    );
    assert_eq!(
        ac.check_can_insert_into_table(&a, "shoal", "s", "t"),
        Ok(())
    );
    assert_eq!(
        ac.check_can_delete_from_table(&a, "shoal", "s", "t"),
        Ok(())
    );
    assert_eq!(ac.check_can_update_table(&a, "shoal", "s", "t"), Ok(()));
    assert!(ac.can_see_schema(&a, "shoal", "hr"));
    assert!(ac.can_see_table(&a, "shoal", "hr", "pay"));
    // The same name without the group has none of it.
    assert_eq!(
        ac.check_can_create_schema(&user("alice"), "shoal", "s"),
        denied("Cannot create schema shoal.s")
    );
}

#[test]
fn bob_reads_and_inserts_in_sales_only() {
    let ac = control();
    let b = user("bob");
    assert_eq!(
        ac.check_can_select_from_table(&b, "shoal", "sales", "orders"),
        Ok(())
    );
    assert_eq!(
        ac.check_can_insert_into_table(&b, "shoal", "sales", "orders"),
        Ok(())
    );
    assert_eq!(
        ac.check_can_delete_from_table(&b, "shoal", "sales", "orders"),
        denied("Cannot delete from table shoal.sales.orders")
    );
    assert_eq!(
        ac.check_can_update_table(&b, "shoal", "sales", "orders"),
        denied("Cannot update table shoal.sales.orders")
    );
    assert_eq!(
        ac.check_can_drop_table(&b, "shoal", "sales", "orders"),
        denied("Cannot drop table shoal.sales.orders")
    );
    assert_eq!(
        ac.check_can_create_table(&b, "shoal", "sales", "new"),
        denied("Cannot create table shoal.sales.new")
    );
    assert_eq!(
        ac.check_can_select_from_table(&b, "shoal", "hr", "pay"),
        denied("Cannot select from table shoal.hr.pay")
    );
    // Owning schema scratch allows creating it, but tables there still need OWNERSHIP.
    assert_eq!(ac.check_can_create_schema(&b, "shoal", "scratch"), Ok(()));
    assert_eq!(
        ac.check_can_create_table(&b, "shoal", "scratch", "t"),
        denied("Cannot create table shoal.scratch.t")
    );
    assert_eq!(
        ac.check_can_drop_schema(&b, "shoal", "sales"),
        denied("Cannot drop schema shoal.sales")
    );
    assert!(ac.can_see_schema(&b, "shoal", "sales"));
    assert!(ac.can_see_schema(&b, "shoal", "scratch"));
    assert!(!ac.can_see_schema(&b, "shoal", "hr"));
    assert!(ac.can_see_table(&b, "shoal", "sales", "anything"));
    assert!(ac.can_see_table(&b, "shoal", "scratch", "anything"));
    assert!(!ac.can_see_table(&b, "shoal", "hr", "pay"));
}

#[test]
fn carol_reads_one_table_and_nothing_else() {
    let ac = control();
    let c = user("carol");
    assert_eq!(
        ac.check_can_select_from_table(&c, "shoal", "sales", "orders"),
        Ok(())
    );
    assert_eq!(
        ac.check_can_select_from_columns(&c, "shoal", "sales", "orders", &["id", "total"]),
        Ok(())
    );
    assert_eq!(
        ac.check_can_select_from_columns(&c, "shoal", "sales", "orders", &["id", "card"]),
        denied("Cannot select from table shoal.sales.orders")
    );
    assert_eq!(
        ac.check_can_select_from_table(&c, "shoal", "sales", "customers"),
        denied("Cannot select from table shoal.sales.customers")
    );
    assert_eq!(
        ac.check_can_insert_into_table(&c, "shoal", "sales", "orders"),
        denied("Cannot insert into table shoal.sales.orders")
    );
    assert_eq!(
        ac.check_can_create_schema(&c, "shoal", "x"),
        denied("Cannot create schema shoal.x")
    );
    assert!(ac.can_see_schema(&c, "shoal", "sales"));
    assert!(!ac.can_see_schema(&c, "shoal", "hr"));
    assert!(ac.can_see_table(&c, "shoal", "sales", "orders"));
    assert!(!ac.can_see_table(&c, "shoal", "sales", "customers"));
    assert_eq!(
        ac.check_can_access_catalog(&c, "secret"),
        denied("Cannot access catalog secret")
    );
    assert_eq!(
        ac.check_can_access_catalog(&c, "unlisted"),
        denied("Cannot access catalog unlisted")
    );
    assert_eq!(ac.check_can_access_catalog(&c, "legacy"), Ok(()));
}

#[test]
fn read_only_catalog_refuses_every_write() {
    let ac = control();
    let c = user("carol");
    // The table rule grants INSERT and OWNERSHIP in archive, but the catalog is read-only.
    assert_eq!(ac.check_can_access_catalog(&c, "archive"), Ok(()));
    assert_eq!(
        ac.check_can_select_from_table(&c, "archive", "s", "t"),
        Ok(())
    );
    assert_eq!(
        ac.check_can_insert_into_table(&c, "archive", "s", "t"),
        denied("Cannot insert into table archive.s.t")
    );
    assert_eq!(
        ac.check_can_create_table(&c, "archive", "s", "t"),
        denied("Cannot create table archive.s.t")
    );
    assert_eq!(
        ac.check_can_drop_table(&c, "archive", "s", "t"),
        denied("Cannot drop table archive.s.t")
    );
    assert_eq!(
        ac.check_can_create_schema(&c, "archive", "s"),
        denied("Cannot create schema archive.s")
    );
    assert!(ac.can_see_table(&c, "archive", "s", "t"));
    let ro = AccessControl::read_only();
    assert_eq!(
        ro.check_can_select_from_table(&c, "shoal", "s", "t"),
        Ok(())
    );
    assert_eq!(
        ro.check_can_delete_from_table(&c, "shoal", "s", "t"),
        denied("Cannot delete from table shoal.s.t")
    );
}

#[test]
fn first_matching_rule_wins() {
    let ac = AccessControl::from_rules_json(
        r#"{"tables": [
              {"user": "bob", "table": "t", "privileges": []},
              {"user": "bob", "privileges": ["SELECT"]}
           ],
           "schemas": [],
           "catalogs": [
              {"user": "bob", "catalog": "c", "allow": "none"},
              {"allow": "all"}
           ]}"#,
    )
    .unwrap();
    let b = user("bob");
    assert!(ac.check_can_select_from_table(&b, "x", "s", "t").is_err());
    assert!(ac.check_can_select_from_table(&b, "x", "s", "u").is_ok());
    // (Without a `schemas` section bob would own schema s and so see all its tables.)
    assert!(!ac.can_see_table(&b, "x", "s", "t"));
    assert!(ac.check_can_access_catalog(&b, "c").is_err());
    assert!(ac.check_can_access_catalog(&user("eve"), "c").is_ok());
    // A rule with no privileges still matches first: dave is denied everything.
    let dave = user("dave");
    assert!(control()
        .check_can_select_from_table(&dave, "archive", "s", "t")
        .is_err());
}

#[test]
fn patterns_match_whole_names() {
    let ac = control();
    let bobby = user("bobby");
    assert!(ac
        .check_can_select_from_table(&bobby, "shoal", "sales", "orders")
        .is_err());
    assert!(!ac.can_see_schema(&bobby, "shoal", "sales"));
    // `shoal` must not match `shoal2`, nor the group `admin` match `admins`.
    assert!(ac
        .check_can_access_catalog(&user("carol"), "shoal2")
        .is_err());
    let admins = Identity::new("x", ["admins", "staff"]);
    assert!(ac.check_can_drop_table(&admins, "shoal", "s", "t").is_err());
    // Alternatives are anchored as a whole.
    let ac =
        AccessControl::from_rules_json(r#"{"catalogs": [{"catalog": "a|b", "allow": "all"}]}"#)
            .unwrap();
    assert!(ac.check_can_access_catalog(&bobby, "b").is_ok());
    assert!(ac.check_can_access_catalog(&bobby, "ab").is_err());
    assert!(ac.check_can_access_catalog(&bobby, "xb").is_err());
}

#[test]
fn missing_sections_allow_everything() {
    let someone = user("someone");
    for ac in [
        AccessControl::allow_all(),
        AccessControl::from_rules_json("{}").unwrap(),
    ] {
        assert!(ac.check_can_access_catalog(&someone, "any").is_ok());
        assert!(ac.check_can_create_schema(&someone, "any", "s").is_ok());
        assert!(ac.check_can_drop_table(&someone, "any", "s", "t").is_ok());
        assert!(ac.check_can_update_table(&someone, "any", "s", "t").is_ok());
        assert!(ac.check_can_kill_query_owned_by(&someone, "other").is_ok());
        assert!(ac.can_see_catalog(&someone, "any"));
        assert!(ac.can_see_schema(&someone, "any", "s"));
    }
    // An empty section denies what it governs, and nothing else.
    let ac = AccessControl::from_rules_json(r#"{"schemas": []}"#).unwrap();
    assert!(ac.check_can_create_schema(&someone, "c", "s").is_err());
    assert!(ac.check_can_create_table(&someone, "c", "s", "t").is_ok());
}

#[test]
fn information_schema_and_system_catalog() {
    let ac = control();
    let c = user("carol");
    assert!(ac
        .check_can_select_from_table(&c, "shoal", "information_schema", "tables")
        .is_ok());
    assert!(ac.can_see_schema(&c, "shoal", "information_schema"));
    assert!(ac.can_see_table(&c, "shoal", "information_schema", "columns"));
    // The catalog rule still applies to information_schema.
    assert!(ac
        .check_can_select_from_table(&c, "secret", "information_schema", "tables")
        .is_err());
    // `system` is reachable by default once catalog rules exist, unless a rule says otherwise.
    assert!(ac.check_can_access_catalog(&c, "system").is_ok());
    let ac =
        AccessControl::from_rules_json(r#"{"catalogs": [{"catalog": "system", "allow": "none"}]}"#)
            .unwrap();
    assert_eq!(
        ac.check_can_access_catalog(&c, "system"),
        denied("Cannot access catalog system")
    );
}

#[test]
fn catalog_visibility_needs_something_inside() {
    let ac = AccessControl::from_rules_json(
        r#"{"catalogs": [{"allow": "read-only"}],
            "tables": [{"user": "bob", "catalog": "c1", "privileges": ["SELECT"]}],
            "schemas": [],
            "catalog_session_properties": []}"#,
    )
    .unwrap();
    assert!(ac.can_see_catalog(&user("bob"), "c1"));
    assert!(!ac.can_see_catalog(&user("bob"), "c2"));
    assert!(!ac.can_see_catalog(&user("carol"), "c1"));
    assert!(ac.check_can_access_catalog(&user("carol"), "c1").is_ok());
}

#[test]
fn query_rules() {
    let ac = AccessControl::from_rules_json(
        r#"{"queries": [
              {"group": "admin", "allow": ["execute", "view", "kill"]},
              {"user": "alice", "allow": ["execute", "kill"]},
              {"user": "bob", "queryOwner": "alice|dave", "allow": ["view"]},
              {"user": "bob", "allow": ["execute"]},
              {"user": "carol", "allow": []}
           ]}"#,
    )
    .unwrap();
    let (bob, carol) = (user("bob"), user("carol"));
    assert!(ac
        .check_can_execute_query(&Identity::new("root", ["admin"]))
        .is_ok());
    assert!(ac.check_can_execute_query(&user("alice")).is_ok());
    assert!(ac
        .check_can_kill_query_owned_by(&user("alice"), "bob")
        .is_ok());
    assert_eq!(
        ac.check_can_view_query_owned_by(&user("alice"), "bob"),
        denied("Cannot view query owned by bob")
    );
    // bob's queryOwner rule does not apply to running queries; the next rule does.
    assert!(ac.check_can_execute_query(&bob).is_ok());
    assert!(ac.check_can_view_query_owned_by(&bob, "dave").is_ok());
    assert_eq!(
        ac.check_can_kill_query_owned_by(&bob, "alice"),
        denied("Cannot kill query owned by alice")
    );
    assert_eq!(
        ac.check_can_execute_query(&carol),
        denied("Cannot execute query")
    );
    assert!(ac.check_can_execute_query(&user("eve")).is_err());
    // Own queries may always be viewed and killed.
    assert!(ac.check_can_view_query_owned_by(&carol, "carol").is_ok());
    assert!(ac.check_can_kill_query_owned_by(&carol, "carol").is_ok());
}
