//! Trino's file-based access control on a cluster: `etc/access-control.properties` and a JSON
//! rules file; three users with different rights create, read, write and drop tables, on the
//! coordinator and through a worker's driver, and listings show each user only what they may
//! see.

use shoal_tests::process::ProcessCluster;
use shoal_tests::trino::{StatementResult, TrinoClient, TrinoError};

const RULES: &str = r#"{
  "schemas": [
    {"user": "alice", "owner": true},
    {"owner": false}
  ],
  "tables": [
    {"user": "alice", "privileges": ["SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP"]},
    {"user": "bob", "schema": "sales", "privileges": ["SELECT", "INSERT"]},
    {"user": "carol", "schema": "sales", "table": "orders|payroll.*", "privileges": ["SELECT"]}
  ],
  "queries": [
    {"user": "alice", "allow": ["execute", "view", "kill"]},
    {"allow": ["execute"]}
  ]
}"#;

/// The users whose queries `client` sees in `system.runtime.queries`.
fn query_owners(client: &mut TrinoClient) -> Vec<String> {
    let mut users: Vec<String> = client
        .execute("SELECT DISTINCT \"user\" FROM system.runtime.queries")
        .expect("queries")
        .rows
        .iter()
        .map(|r| r[0].as_str().expect("a user").to_string())
        .collect();
    users.sort();
    users
}

fn denied(result: Result<StatementResult, TrinoError>, message: &str) {
    match result {
        Err(TrinoError::Query { name, message: got }) => {
            assert_eq!(name, "PERMISSION_DENIED", "{got}");
            assert_eq!(got, format!("Access Denied: {message}"));
        }
        other => panic!("expected PERMISSION_DENIED ({message}), got {other:?}"),
    }
}

fn tables(client: &mut TrinoClient) -> Vec<String> {
    client
        .execute("SHOW TABLES FROM sales")
        .expect("show tables")
        .rows
        .iter()
        .map(|r| r[0].as_str().expect("a name").to_string())
        .collect()
}

#[test]
fn three_users_get_what_the_rules_allow() {
    let mut cluster = ProcessCluster::new(1);
    let etc = cluster.configure(1).etc.clone();
    std::fs::write(etc.join("rules.json"), RULES).expect("rules");
    std::fs::write(
        etc.join("access-control.properties"),
        format!(
            "access-control.name=file\nsecurity.config-file={}\nsecurity.refresh-period=1s\n",
            etc.join("rules.json").display()
        ),
    )
    .expect("access control");
    cluster.start_joined(1);
    cluster.start_workers_seen(&["w1"], 1);
    let urls = cluster.client_urls(1);
    let mut alice = TrinoClient::new(urls.clone(), "alice");
    let mut bob = TrinoClient::new(urls.clone(), "bob");
    let mut carol = TrinoClient::new(urls, "carol");

    alice
        .execute("CREATE SCHEMA sales")
        .expect("alice owns schemas");
    alice
        .execute(
            "CREATE TABLE sales.orders AS SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(id, item)",
        )
        .expect("alice creates");
    alice
        .execute("CREATE TABLE sales.secret (salary BIGINT)")
        .expect("alice creates");
    alice
        .execute("INSERT INTO sales.secret VALUES (100)")
        .expect("alice inserts");

    // bob reads and inserts in sales, and nothing else.
    assert_eq!(
        bob.execute("SELECT id FROM sales.orders ORDER BY id")
            .expect("bob reads")
            .rows
            .len(),
        2
    );
    bob.execute("INSERT INTO sales.orders VALUES (3, 'c')")
        .expect("bob inserts");
    denied(
        bob.execute("CREATE TABLE sales.mine (x INTEGER)"),
        "Cannot create table shoal.sales.mine",
    );
    denied(
        bob.execute("CREATE TABLE sales.copy AS SELECT * FROM sales.orders"),
        "Cannot create table shoal.sales.copy",
    );
    denied(
        bob.execute("DROP TABLE sales.orders"),
        "Cannot drop table shoal.sales.orders",
    );
    denied(
        bob.execute("CREATE SCHEMA bobs"),
        "Cannot create schema shoal.bobs",
    );
    denied(
        bob.execute("DROP SCHEMA sales"),
        "Cannot drop schema shoal.sales",
    );

    // carol reads one table, and does nothing else.
    let rows = carol
        .execute("SELECT count(*) FROM sales.orders")
        .expect("carol reads orders")
        .rows;
    assert_eq!(rows[0][0].as_i64(), Some(3));
    denied(
        carol.execute("SELECT * FROM sales.secret"),
        "Cannot select from table shoal.sales.secret",
    );
    denied(
        carol.execute("SELECT o.id FROM sales.orders o JOIN sales.secret s ON true"),
        "Cannot select from table shoal.sales.secret",
    );
    denied(
        carol.execute("INSERT INTO sales.orders VALUES (4, 'd')"),
        "Cannot insert into table shoal.sales.orders",
    );
    denied(
        carol.execute("INSERT INTO sales.orders SELECT salary, 'x' FROM sales.secret"),
        "Cannot insert into table shoal.sales.orders",
    );
    denied(
        carol.execute("DROP TABLE sales.orders"),
        "Cannot drop table shoal.sales.orders",
    );
    denied(
        carol.execute("CREATE TABLE sales.t (x INTEGER)"),
        "Cannot create table shoal.sales.t",
    );
    denied(
        carol.execute("DESCRIBE sales.secret"),
        "Cannot select from table shoal.sales.secret",
    );

    // Listings show what each may see.
    assert_eq!(tables(&mut alice), vec!["orders", "secret"]);
    assert_eq!(tables(&mut bob), vec!["orders", "secret"]);
    assert_eq!(tables(&mut carol), vec!["orders"]);

    // The queries rules: alice views everyone's queries, the others only their own.
    // (The harness waits for the cluster with queries of its own.)
    assert_eq!(
        query_owners(&mut alice),
        vec!["alice", "bob", "carol", "harness"]
    );
    assert_eq!(query_owners(&mut carol), vec!["carol"]);

    // A view runs with its owner's privileges (SECURITY DEFINER, Trino's default): carol may
    // read alice's view of the secret table, not the table; an INVOKER view checks carol's own
    // rights on what it reads, and a DEFINER view over it still runs as its owner. A table
    // carol names herself next to such a view is checked for her.
    alice
        .execute("CREATE VIEW sales.payroll AS SELECT salary FROM sales.secret")
        .expect("alice creates a view");
    alice
        .execute(
            "CREATE VIEW sales.payroll_invoker SECURITY INVOKER AS SELECT salary FROM sales.secret",
        )
        .expect("alice creates an invoker view");
    alice
        .execute("CREATE VIEW sales.payroll_over SECURITY DEFINER AS SELECT * FROM sales.payroll_invoker")
        .expect("alice creates a view of a view");
    alice
        .execute("CREATE VIEW sales.secret_view AS SELECT salary FROM sales.secret")
        .expect("alice creates a view carol may not read");
    for view in ["sales.payroll", "sales.payroll_over"] {
        let rows = carol
            .execute(&format!("SELECT salary FROM {view}"))
            .unwrap_or_else(|e| panic!("carol reads {view}: {e:?}"))
            .rows;
        assert_eq!(rows, vec![vec![serde_json::json!(100)]], "{view}");
    }
    denied(
        carol.execute("SELECT salary FROM sales.payroll_invoker"),
        "Cannot select from table shoal.sales.secret",
    );
    denied(
        carol.execute("SELECT * FROM sales.secret_view"),
        "Cannot select from table shoal.sales.secret_view",
    );
    denied(
        carol.execute("SELECT p.salary FROM sales.payroll p JOIN sales.secret s ON true"),
        "Cannot select from table shoal.sales.secret",
    );
    // Reading a DEFINER view shows its user nothing more in the listings.
    for listing in [
        "SELECT count(*) FROM sales.payroll, information_schema.tables WHERE table_name = 'secret'",
        "SELECT count(*) FROM sales.payroll, system.jdbc.tables WHERE table_name = 'secret'",
    ] {
        let rows = carol
            .execute(listing)
            .unwrap_or_else(|e| panic!("{listing}: {e:?}"))
            .rows;
        assert_eq!(rows, vec![vec![serde_json::json!(0)]], "{listing}");
    }
    let text = carol
        .execute("SHOW CREATE VIEW sales.payroll_invoker")
        .expect("show create view")
        .rows;
    assert!(
        text[0][0]
            .as_str()
            .unwrap_or_default()
            .contains("SECURITY INVOKER"),
        "{text:?}"
    );

    // Nothing denied changed anything.
    let rows = alice
        .execute("SELECT id FROM sales.orders ORDER BY id")
        .expect("alice reads")
        .rows;
    let ids: Vec<i64> = rows.iter().filter_map(|r| r[0].as_i64()).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    alice
        .execute("DROP TABLE sales.secret")
        .expect("alice drops");
}
