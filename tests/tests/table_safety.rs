//! Tables are safe: table names that look like paths (absolute, `..`, `a/b`, unicode) reach no
//! file outside the warehouse; external tables read only where the operator allows; a dropped
//! table's files stay while a query reads them and go afterwards; missing files are an error,
//! not an empty table; a commit whose reply was lost is settled and lands exactly once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use shoal_tests::process::ProcessCluster;
use shoal_tests::trino::{get_json, post_statement, TrinoClient, TrinoError};
use shoal_tests::{holds_for, wait_until};

fn cluster(coordinators: u64, workers: &[&str]) -> (ProcessCluster, TrinoClient) {
    let mut cluster = ProcessCluster::new(coordinators);
    cluster.worker_extra_config = "query.max-buffer-memory=262144\nquery.max-spill=262144\n".into();
    cluster.start_joined(coordinators);
    if !workers.is_empty() {
        cluster.start_workers_seen(workers, coordinators);
    }
    let client = TrinoClient::new(cluster.client_urls(coordinators), "safety");
    (cluster, client)
}

fn warehouse(cluster: &ProcessCluster) -> PathBuf {
    cluster.dir.path().join("warehouse")
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(next) = todo.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn ints(rows: &[Vec<Value>]) -> Vec<i64> {
    let mut values: Vec<i64> = rows
        .iter()
        .map(|r| r[0].as_i64().expect("an integer"))
        .collect();
    values.sort_unstable();
    values
}

fn error_of(result: Result<shoal_tests::trino::StatementResult, TrinoError>) -> (String, String) {
    match result {
        Err(TrinoError::Query { name, message }) => (name, message),
        other => panic!("expected a query error, got {other:?}"),
    }
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[test]
fn table_names_are_data_never_paths() {
    let (cluster, mut client) = cluster(1, &["w1"]);
    // A directory of someone else's, outside the warehouse, and the cluster's own data.
    let precious = cluster.dir.path().join("precious");
    std::fs::create_dir_all(&precious).expect("sentinel dir");
    std::fs::write(precious.join("keep.txt"), "mine").expect("sentinel file");
    let data_dir = cluster.dir.path().join("coordinator-1").join("data");
    assert!(data_dir.is_dir());
    let names = [
        precious.display().to_string(),
        "..".to_string(),
        "../..".to_string(),
        "../../..".to_string(),
        "a/b".to_string(),
        ".".to_string(),
        "Grüße 🐟".to_string(),
        "Upper Case".to_string(),
    ];
    client.execute("CREATE SCHEMA pt").expect("schema");
    client
        .execute(&format!("CREATE SCHEMA {}", quoted("..")))
        .expect("schema ..");
    for schema in ["pt", ".."] {
        for name in &names {
            let table = format!("{}.{}", quoted(schema), quoted(name));
            client
                .execute(&format!("CREATE TABLE {table} (a INTEGER)"))
                .unwrap_or_else(|e| panic!("create {table}: {e}"));
            client
                .execute(&format!("INSERT INTO {table} VALUES (1), (2), (2)"))
                .unwrap_or_else(|e| panic!("insert into {table}: {e}"));
            let rows = client
                .execute(&format!("SELECT a FROM {table}"))
                .unwrap_or_else(|e| panic!("select from {table}: {e}"));
            assert_eq!(ints(&rows.rows), vec![1, 2, 2], "{table}");
        }
    }
    // Names that look alike are different tables.
    let count = |client: &mut TrinoClient, table: &str| {
        ints(
            &client
                .execute(&format!("SELECT count(*) FROM {table}"))
                .expect("count")
                .rows,
        )
    };
    assert_eq!(count(&mut client, "pt.\"a/b\""), vec![3]);
    // Every file Shoal wrote is inside the warehouse, under a table id.
    let written = files_under(&warehouse(&cluster));
    assert!(!written.is_empty());
    for file in &written {
        let relative = file.strip_prefix(warehouse(&cluster)).expect("inside");
        let id = relative.components().next().expect("a table id");
        let id = id.as_os_str().to_string_lossy();
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{}",
            file.display()
        );
    }
    for schema in ["pt", ".."] {
        for name in &names {
            let table = format!("{}.{}", quoted(schema), quoted(name));
            client
                .execute(&format!("DROP TABLE {table}"))
                .unwrap_or_else(|e| panic!("drop {table}: {e}"));
        }
    }
    // The files of the dropped tables go, and nothing else does.
    wait_until(
        Duration::from_secs(30),
        "dropped tables' files removed",
        || files_under(&warehouse(&cluster)).is_empty(),
    );
    assert_eq!(
        std::fs::read_to_string(precious.join("keep.txt"))
            .ok()
            .as_deref(),
        Some("mine")
    );
    assert!(
        data_dir.is_dir(),
        "the coordinator's data directory survives"
    );
    assert!(cluster
        .dir
        .path()
        .join("coordinator-1")
        .join("etc")
        .is_dir());
    assert_eq!(
        ints(
            &client
                .execute("SELECT 1")
                .expect("the cluster still serves")
                .rows
        ),
        vec![1]
    );
    // Names no table may have are refused with a clear error.
    let (name, message) = error_of(client.execute("CREATE TABLE pt.\"a\u{0}b\" (a INTEGER)"));
    assert!(message.contains("NUL"), "{name}: {message}");
    let long = "x".repeat(256);
    let (_, message) = error_of(client.execute(&format!("CREATE TABLE pt.{long} (a INTEGER)")));
    assert!(message.contains("at most 255 bytes"), "{message}");
}

#[test]
fn external_tables_read_only_where_the_operator_allows() {
    let (cluster, mut client) = cluster(1, &[]);
    let allowed = cluster.external_dir().join("cities");
    std::fs::create_dir_all(&allowed).expect("external dir");
    std::fs::write(allowed.join("part-1.csv"), "city,population\nOslo,700000\n").expect("csv");
    let outside = cluster.dir.path().join("secret");
    std::fs::create_dir_all(&outside).expect("dir");
    std::fs::write(outside.join("part-1.csv"), "city,population\nHidden,1\n").expect("csv");

    for location in [
        outside.display().to_string(),
        format!("{}/../../secret", allowed.display()),
        warehouse(&cluster).display().to_string(),
        "/etc".to_string(),
    ] {
        let (name, message) = error_of(client.execute(&format!(
            "CREATE TABLE leak WITH (format = 'CSV', location = '{location}/')"
        )));
        assert_eq!(name, "PERMISSION_DENIED", "{location}: {message}");
        assert!(message.contains("catalog.external-locations"), "{message}");
    }
    client
        .execute(&format!(
            "CREATE TABLE cities WITH (format = 'CSV', location = '{}/')",
            allowed.display()
        ))
        .expect("inside the allowed location");
    let rows = client.execute("SELECT city FROM cities").expect("read");
    assert_eq!(rows.rows, vec![vec![Value::from("Oslo")]]);
    client.execute("DROP TABLE cities").expect("drop");
    // Dropping an external table never deletes its files, not even after a cleanup round.
    holds_for(Duration::from_secs(3), "external files kept", || {
        allowed.join("part-1.csv").is_file()
    });
}

#[test]
fn missing_data_files_are_an_error_naming_table_and_file() {
    let (cluster, mut client) = cluster(1, &["w1"]);
    client
        .execute("CREATE TABLE t AS SELECT value AS v FROM generate_series(1, 10) AS s(value)")
        .expect("ctas");
    assert_eq!(
        ints(
            &client
                .execute("SELECT count(*) FROM t")
                .expect("count")
                .rows
        ),
        vec![10]
    );
    let files = files_under(&warehouse(&cluster));
    assert!(!files.is_empty());
    for file in &files {
        std::fs::remove_file(file).expect("remove a data file");
    }
    let (name, message) = error_of(client.execute("SELECT count(*) FROM t"));
    assert!(message.contains("shoal.default.t"), "{name}: {message}");
    let file_name = files[0].file_name().and_then(|n| n.to_str()).expect("name");
    assert!(message.contains(file_name), "{name}: {message}");
}

/// Rows of a streaming query, read page by page from `base`.
struct Stream {
    base: String,
    next: Option<String>,
    rows: Vec<i64>,
}

impl Stream {
    fn start(base: &str, sql: &str) -> Self {
        let first = post_statement(base, "safety", sql);
        assert!(first.get("error").is_none(), "{first}");
        let mut stream = Stream {
            base: base.to_string(),
            next: first["nextUri"].as_str().map(str::to_string),
            rows: Vec::new(),
        };
        stream.take(&first);
        stream
    }

    fn take(&mut self, page: &Value) {
        assert!(page.get("error").is_none(), "query failed: {page}");
        for row in page["data"].as_array().into_iter().flatten() {
            self.rows.push(row[0].as_i64().expect("an integer"));
        }
    }

    /// Follow `nextUri` until some rows arrived (or the query ended).
    fn read_some(&mut self) {
        let before = self.rows.len();
        while self.rows.len() == before {
            let Some(next) = self.next.take() else { return };
            let path = next.splitn(4, '/').nth(3).unwrap_or_default().to_string();
            let page = get_json(&format!("{}/{path}", self.base));
            self.take(&page);
            self.next = page["nextUri"].as_str().map(str::to_string);
        }
    }

    fn finish(&mut self) {
        while self.next.is_some() {
            self.read_some();
        }
    }
}

/// Rows of each of the five INSERTs into table `big` (1 to 5 * PER_INSERT).
const PER_INSERT: i64 = 40_000;

/// Table `big` of the numbers 1 to 5 * PER_INSERT, written by five INSERTs.
fn big_table(client: &mut TrinoClient) {
    client
        .execute("CREATE TABLE big (n BIGINT)")
        .expect("create");
    for i in 0..5 {
        client
            .execute(&format!(
                "INSERT INTO big SELECT value FROM generate_series({}, {}) AS s(value)",
                i * PER_INSERT + 1,
                (i + 1) * PER_INSERT
            ))
            .expect("insert");
    }
}

#[test]
fn drop_waits_for_queries_reading_the_table() {
    let (cluster, mut client) = cluster(1, &["w1"]);
    big_table(&mut client);
    let before: BTreeSet<PathBuf> = files_under(&warehouse(&cluster)).into_iter().collect();
    assert!(before.len() >= 5, "{before:?}");
    let mut stream = Stream::start(&cluster.client_url(1), "SELECT n FROM big");
    stream.read_some();
    assert!(!stream.rows.is_empty());
    client.execute("DROP TABLE big").expect("drop while read");
    assert!(
        client.execute("SELECT count(*) FROM big").is_err(),
        "the table is gone"
    );
    // Cleanup runs every second; while the query runs, no file of the table goes.
    holds_for(
        Duration::from_secs(3),
        "the read table's files kept",
        || before.iter().all(|f| f.is_file()),
    );
    stream.finish();
    stream.rows.sort_unstable();
    let expected: Vec<i64> = (1..=5 * PER_INSERT).collect();
    assert!(
        stream.rows == expected,
        "got {} rows, not 1..={}",
        stream.rows.len(),
        5 * PER_INSERT
    );
    wait_until(
        Duration::from_secs(30),
        "the dropped table's files removed",
        || before.iter().all(|f| !f.exists()),
    );
    // A new table of the same name is another table, with files of its own.
    client
        .execute("CREATE TABLE big AS SELECT 7 AS n")
        .expect("again");
    assert_eq!(
        ints(&client.execute("SELECT n FROM big").expect("read").rows),
        vec![7]
    );
}

#[test]
fn a_commit_whose_reply_was_lost_lands_exactly_once() {
    let mut cluster = ProcessCluster::new(1);
    // The first commit applies but its reply is lost; later, one commit request is lost
    // before it reaches the store.
    cluster.coordinator_env = vec![(
        "SHOAL_FAILPOINTS".into(),
        "catalog-commit-reply-lost=1*return;catalog-commit-request-lost=2*off->1*return".into(),
    )];
    cluster.start_joined(1);
    let mut client = TrinoClient::new(cluster.client_urls(1), "safety");
    client
        .execute("CREATE TABLE t (a INTEGER)")
        .expect("create");
    let inserted = client
        .execute("INSERT INTO t VALUES (1), (2)")
        .expect("the applied commit is reported as applied");
    assert_eq!(inserted.update_count, Some(2));
    assert_eq!(
        ints(&client.execute("SELECT a FROM t").expect("read").rows),
        vec![1, 2]
    );
    let log = cluster.coordinators[&1].log_text();
    assert!(
        log.contains("commit settled: it applied"),
        "the failpoint was hit"
    );

    // A commit lost on its way: settled as not applied, the client is told, and no file of
    // it stays behind.
    let files_before = files_under(&warehouse(&cluster)).len();
    client
        .execute("INSERT INTO t VALUES (3)")
        .expect("an ordinary commit");
    let (name, message) = error_of(client.execute("INSERT INTO t VALUES (4)"));
    assert!(message.contains("did not commit"), "{name}: {message}");
    assert_eq!(
        ints(&client.execute("SELECT a FROM t").expect("read").rows),
        vec![1, 2, 3]
    );
    assert_eq!(files_under(&warehouse(&cluster)).len(), files_before + 1);
}

#[test]
fn files_a_rewrite_replaced_stay_while_an_older_query_reads_them() {
    let (cluster, mut client) = cluster(1, &["w1"]);
    big_table(&mut client);
    let before: BTreeSet<PathBuf> = files_under(&warehouse(&cluster)).into_iter().collect();
    let mut stream = Stream::start(&cluster.client_url(1), "SELECT n FROM big");
    stream.read_some();
    assert!(!stream.rows.is_empty());
    let deleted = client
        .execute(&format!("DELETE FROM big WHERE n <= {PER_INSERT}"))
        .expect("delete while read");
    assert_eq!(deleted.update_count, Some(PER_INSERT));
    // Cleanup runs every second; while the older query runs, the replaced file stays.
    holds_for(
        Duration::from_secs(3),
        "the files the older query reads kept",
        || before.iter().all(|f| f.is_file()),
    );
    stream.finish();
    stream.rows.sort_unstable();
    let expected: Vec<i64> = (1..=5 * PER_INSERT).collect();
    assert!(
        stream.rows == expected,
        "the older query read its version whole: {} rows",
        stream.rows.len()
    );
    wait_until(
        Duration::from_secs(30),
        "the replaced files removed once nothing reads them",
        || before.iter().any(|f| !f.exists()),
    );
    // They are the first insert's files, all of them; no other goes.
    let gone: BTreeSet<&Path> = before
        .iter()
        .filter(|f| !f.exists())
        .filter_map(|f| f.parent())
        .collect();
    assert_eq!(gone.len(), 1, "files of one write went: {gone:?}");
    let dir = gone.iter().next().copied().expect("a directory");
    assert!(
        before
            .iter()
            .filter(|f| f.parent() == Some(dir))
            .all(|f| !f.exists()),
        "every file of the first insert went"
    );
    let count = client
        .execute("SELECT count(*), min(n) FROM big")
        .expect("read");
    assert_eq!(
        count.rows,
        vec![vec![
            Value::from(4 * PER_INSERT),
            Value::from(PER_INSERT + 1)
        ]]
    );
}
