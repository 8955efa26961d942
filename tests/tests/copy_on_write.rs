//! DELETE, UPDATE and MERGE rewrite only the files with changed rows, apply exactly once when
//! the reply of their commit is lost, and never lose or double a concurrent writer's rows.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use shoal_tests::process::ProcessCluster;
use shoal_tests::trino::TrinoClient;

/// Every Parquet file under `dir`, recursively.
fn parquet_files(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(next) = todo.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.insert(path);
            }
        }
    }
    out
}

fn rows_in(file: &Path) -> i64 {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(file).expect("open parquet"))
        .expect("a parquet file");
    reader.metadata().file_metadata().num_rows()
}

#[test]
fn only_the_files_with_changed_rows_are_rewritten() {
    let mut cluster = ProcessCluster::new(1);
    cluster.start_joined(1);
    let mut client = TrinoClient::new(cluster.client_urls(1), "cow");
    client
        .execute("CREATE TABLE t (id BIGINT, v VARCHAR)")
        .expect("create");
    for values in [
        "(1, 'a'), (2, 'b')",
        "(3, 'c'), (4, 'd'), (5, 'e')",
        "(6, 'f')",
    ] {
        client
            .execute(&format!("INSERT INTO t VALUES {values}"))
            .expect("insert");
    }
    let warehouse = cluster.dir.path().join("warehouse");
    let before = parquet_files(&warehouse);
    let deleted = client
        .execute("DELETE FROM t WHERE id = 4")
        .expect("delete");
    assert_eq!(deleted.update_count, Some(1));
    let after = parquet_files(&warehouse);
    assert!(after.is_superset(&before), "no file is changed in place");
    let new: Vec<&PathBuf> = after.difference(&before).collect();
    let written: i64 = new.iter().map(|f| rows_in(f)).sum();
    assert_eq!(
        written, 2,
        "only the file of the second insert is rewritten, less the deleted row: {new:?}"
    );
    assert_eq!(
        client.sorted_rows("SELECT id, v FROM t"),
        ["1 a", "2 b", "3 c", "5 e", "6 f"]
    );
    // Once nothing reads the old version, the cleanup removes the file it replaced.
    let gone = shoal_tests::wait_for(
        Duration::from_secs(30),
        "the replaced file is removed",
        || {
            let now = parquet_files(&warehouse);
            let gone: Vec<PathBuf> = before.difference(&now).cloned().collect();
            (!gone.is_empty()).then_some(gone)
        },
    );
    assert_eq!(gone.len(), 1, "only the replaced file goes: {gone:?}");
    assert_eq!(
        client.sorted_rows("SELECT id, v FROM t"),
        ["1 a", "2 b", "3 c", "5 e", "6 f"]
    );
    let after = parquet_files(&warehouse);

    let before = after;
    let updated = client
        .execute("UPDATE t SET v = upper(v) WHERE id IN (1, 6)")
        .expect("update");
    assert_eq!(updated.update_count, Some(2));
    let after = parquet_files(&warehouse);
    let written: i64 = after.difference(&before).map(|f| rows_in(f)).sum();
    assert_eq!(written, 3, "the first and the third insert's files, whole");
    assert_eq!(
        client.sorted_rows("SELECT id, v FROM t"),
        ["1 A", "2 b", "3 c", "5 e", "6 F"]
    );
    shoal_tests::wait_for(
        Duration::from_secs(30),
        "the two replaced files are removed",
        || (before.difference(&parquet_files(&warehouse)).count() == 2).then_some(()),
    );
    assert_eq!(
        client.sorted_rows("SELECT id, v FROM t"),
        ["1 A", "2 b", "3 c", "5 e", "6 F"]
    );
}

#[test]
fn a_change_whose_commit_reply_was_lost_applies_exactly_once() {
    let mut cluster = ProcessCluster::new(1);
    // The two inserts' commits go through (CREATE TABLE commits without a marker); the
    // replies of the next three (the DELETE, the UPDATE, the MERGE) are lost after they
    // applied.
    cluster.coordinator_env = vec![(
        "SHOAL_FAILPOINTS".into(),
        "catalog-commit-reply-lost=2*off->3*return".into(),
    )];
    cluster.start_joined(1);
    let mut client = TrinoClient::new(cluster.client_urls(1), "cow");
    for sql in [
        "CREATE TABLE t (id BIGINT, v VARCHAR)",
        "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
        "INSERT INTO t VALUES (3, 'c'), (4, 'd')",
    ] {
        client.execute(sql).expect(sql);
    }
    let counts: Vec<Option<i64>> = [
        "DELETE FROM t WHERE id = 1",
        "UPDATE t SET v = 'B' WHERE id = 2",
        "MERGE INTO t USING (VALUES (3, 'C'), (5, 'e')) AS s(id, v) ON t.id = s.id \
         WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, s.v)",
    ]
    .iter()
    .map(|sql| client.execute(sql).expect(sql).update_count)
    .collect();
    assert_eq!(counts, [Some(1), Some(1), Some(2)]);
    let log = cluster.coordinators[&1].log_text();
    assert_eq!(
        log.matches("commit settled: it applied").count(),
        3,
        "each of the three replies was lost and settled"
    );
    assert_eq!(
        client.sorted_rows("SELECT id, v FROM t"),
        ["2 B", "3 C", "4 d", "5 e"]
    );
}

#[test]
fn concurrent_inserts_and_updates_neither_lose_nor_double_a_row_or_an_increment() {
    let mut cluster = ProcessCluster::new(3);
    cluster.start_joined(3);
    let urls = cluster.client_urls(3);
    let mut client = TrinoClient::new(vec![urls[0].clone()], "cow");
    client
        .execute("CREATE TABLE t (id BIGINT, v BIGINT)")
        .expect("create");
    let inserter = {
        let url = urls[1].clone();
        std::thread::spawn(move || {
            let mut client = TrinoClient::new(vec![url], "cow");
            for id in 1..=30 {
                client
                    .execute(&format!("INSERT INTO t VALUES ({id}, 0)"))
                    .expect("insert");
            }
        })
    };
    // Every UPDATE adds one to each row it saw; its count says how many that were. Two of
    // them at once rewrite the same files: one of each pair runs again.
    let updaters: Vec<_> = [urls[2].clone(), urls[0].clone()]
        .into_iter()
        .map(|url| {
            std::thread::spawn(move || {
                let mut updater = TrinoClient::new(vec![url], "cow");
                let mut increments = 0;
                let mut conflicts = 0;
                for _ in 0..8 {
                    match updater.execute("UPDATE t SET v = v + 1") {
                        Ok(updated) => increments += updated.update_count.expect("an update count"),
                        // Gave up after other writes kept replacing its files: it changed
                        // nothing (the sum below says so).
                        Err(shoal_tests::trino::TrinoError::Query { name, .. })
                            if name == "TRANSACTION_CONFLICT" =>
                        {
                            conflicts += 1
                        }
                        Err(e) => panic!("update: {e:?}"),
                    }
                }
                assert!(conflicts < 8, "some update of each updater commits");
                increments
            })
        })
        .collect();
    let increments: i64 = updaters
        .into_iter()
        .map(|u| u.join().expect("an updater"))
        .sum();
    inserter.join().expect("the inserter");
    let ids = client.sorted_rows("SELECT id FROM t");
    let mut expected: Vec<String> = (1..=30).map(|id: i64| id.to_string()).collect();
    expected.sort();
    assert_eq!(ids, expected, "every inserted row, once");
    let total = client.execute("SELECT sum(v) FROM t").expect("sum").rows[0][0]
        .as_i64()
        .unwrap_or(0);
    assert_eq!(
        total, increments,
        "the increments in the table are the ones the updates reported"
    );
}
