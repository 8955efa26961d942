//! Shared storage on a real S3-compatible server (s3s-fs on loopback): a cluster of 3
//! coordinators and 2 workers whose warehouse and seeds are in a bucket forms, creates, fills,
//! reads, rewrites and drops tables, and every byte of them lives in the bucket; a bootstrap
//! claim whose claimant died before initialising expires and the others form the cluster; a
//! large result survives its driver through the spool in the bucket, and the Python client
//! reads results as segments spooled there.

use std::time::Duration;

use shoal_tests::process::ProcessCluster;
use shoal_tests::s3::S3Server;
use shoal_tests::trino::{get_json, post_statement, query_info, TrinoClient, TrinoError};
use shoal_tests::{wait_for, wait_until};

const BUCKET: &str = "shoal-lake";

fn s3_cluster(server: &S3Server) -> ProcessCluster {
    let mut cluster = ProcessCluster::new(3);
    cluster.warehouse = Some(format!("s3://{BUCKET}/warehouse"));
    cluster.external_locations = vec![format!("s3://{BUCKET}/external")];
    cluster
        .etc_files
        .push(("filesystem/lake.properties".into(), server.profile(BUCKET)));
    cluster.seed_profile = Some(("lake".into(), "seeds".into()));
    cluster
}

/// The newest bootstrap claim in the bucket: its generation and claimant.
fn newest_claim(server: &S3Server) -> Option<(u64, u64)> {
    server
        .keys(BUCKET, "seeds/test/bootstrap.claim")
        .iter()
        .filter_map(|key| {
            let text = std::fs::read_to_string(server.bucket_dir(BUCKET).join(key)).ok()?;
            let claim: serde_json::Value = serde_json::from_str(&text).ok()?;
            Some((claim["generation"].as_u64()?, claim["by"].as_u64()?))
        })
        .max()
}

#[test]
fn tables_live_in_the_bucket() {
    let server = S3Server::start(&[BUCKET]);
    let mut cluster = s3_cluster(&server);
    cluster.start_joined(3);
    cluster.start_workers_seen(&["w1", "w2"], 3);
    // The cluster formed and the workers found it through seeds in the bucket.
    let seeds = server.keys(BUCKET, "seeds/test/");
    for seed in [
        "bootstrap.claim",
        "coordinator-1.json",
        "coordinator-3.json",
    ] {
        assert!(seeds.contains(&format!("seeds/test/{seed}")), "{seeds:?}");
    }
    assert!(!cluster.seed_dir().exists());
    let mut client = TrinoClient::new(cluster.client_urls(3), "lake");
    client.execute("CREATE SCHEMA lake").expect("schema");
    client
        .execute("CREATE TABLE lake.t (id BIGINT, v VARCHAR)")
        .expect("create");
    for values in ["(1, 'a'), (2, 'b')", "(3, 'c'), (4, 'd')", "(5, 'e')"] {
        client
            .execute(&format!("INSERT INTO lake.t VALUES {values}"))
            .expect("insert");
    }
    assert_eq!(
        client.sorted_rows("SELECT id, v FROM lake.t"),
        ["1 a", "2 b", "3 c", "4 d", "5 e"]
    );
    let created = client
        .execute(
            "CREATE TABLE lake.big AS SELECT x AS id, x % 7 AS k, 'row ' || CAST(x AS VARCHAR) AS v \
             FROM UNNEST(sequence(1, 30000)) AS n(x)",
        )
        .expect("ctas");
    assert_eq!(created.update_count, Some(30000));
    // Read through every coordinator: the drivers and stages on the workers read the bucket.
    for id in 1..=3 {
        let mut one = TrinoClient::new(vec![cluster.client_url(id)], "lake");
        assert_eq!(
            one.sorted_rows("SELECT k, count(*), sum(id) FROM lake.big GROUP BY k"),
            (0..7)
                .map(|k| {
                    let ids: Vec<i64> = (1..=30000).filter(|x| x % 7 == k).collect();
                    format!("{k} {} {}", ids.len(), ids.iter().sum::<i64>())
                })
                .collect::<Vec<_>>()
        );
    }
    // Copy-on-write rewrites in the bucket.
    let deleted = client
        .execute("DELETE FROM lake.t WHERE id = 4")
        .expect("delete");
    assert_eq!(deleted.update_count, Some(1));
    let updated = client
        .execute("UPDATE lake.t SET v = 'z' WHERE id IN (1, 5)")
        .expect("update");
    assert_eq!(updated.update_count, Some(2));
    assert_eq!(
        client.sorted_rows("SELECT id, v FROM lake.t"),
        ["1 z", "2 b", "3 c", "5 z"]
    );
    // Every file is an object in the bucket; nothing went to a local warehouse.
    let keys = server.keys(BUCKET, "warehouse/");
    assert!(
        keys.iter().filter(|k| k.ends_with(".parquet")).count() >= 5,
        "{keys:?}"
    );
    assert!(!cluster.dir.path().join("warehouse").exists());
    // An external table over objects the operator allowed.
    let external = server.bucket_dir(BUCKET).join("external/cities");
    std::fs::create_dir_all(&external).expect("external dir");
    std::fs::write(external.join("part-1.csv"), "id,name\n1,Lisbon\n2,Oslo\n").expect("csv");
    client
        .execute(
            "CREATE TABLE lake.cities (id BIGINT, name VARCHAR) \
             WITH (format = 'CSV', location = 's3://shoal-lake/external/cities/')",
        )
        .expect("external table");
    assert_eq!(
        client.sorted_rows("SELECT id, name FROM lake.cities"),
        ["1 Lisbon", "2 Oslo"]
    );
    let refused = client
        .execute(
            "CREATE TABLE lake.peek (id BIGINT) \
             WITH (format = 'PARQUET', location = 's3://shoal-lake/warehouse/')",
        )
        .expect_err("the warehouse is not an external location");
    assert!(
        matches!(&refused, TrinoError::Query { name, .. } if name == "PERMISSION_DENIED"),
        "{refused:?}"
    );
    // Dropped tables leave the bucket once nothing reads them.
    let before = server.keys(BUCKET, "warehouse/").len();
    client.execute("DROP TABLE lake.big").expect("drop");
    client.execute("DROP TABLE lake.t").expect("drop");
    shoal_tests::wait_until(
        Duration::from_secs(60),
        "the dropped tables' objects are removed",
        || server.keys(BUCKET, "warehouse/").is_empty(),
    );
    assert!(before > 0);
    assert_eq!(
        server.keys(BUCKET, "external/"),
        ["external/cities/part-1.csv"],
        "an external table's files are never removed"
    );
}

#[test]
fn the_bootstrap_claim_of_a_claimant_that_died_expires() {
    let server = S3Server::start(&[BUCKET]);
    let mut cluster = s3_cluster(&server);
    cluster.bootstrap_expect = 2;
    // Coordinator 1 (the smallest id, so the claimant) stalls right after claiming.
    cluster.coordinator_env = vec![(
        "SHOAL_FAILPOINTS".into(),
        "bootstrap-claimed=sleep(600000)".into(),
    )];
    cluster.start(1);
    cluster.coordinator_env.clear();
    cluster.start(2);
    cluster.start(3);
    wait_for(
        Duration::from_secs(30),
        "coordinator 1 claims the bootstrap",
        || newest_claim(&server).filter(|claim| *claim == (1, 1)),
    );
    cluster.kill(1);

    // The others wait out the claim (three heartbeat timeouts of 1 s), then 2 claims anew.
    for id in [2, 3] {
        wait_for(
            Duration::from_secs(60),
            "coordinators 2 and 3 form the cluster",
            || cluster.joined_state(id),
        );
    }
    assert_eq!(newest_claim(&server), Some((2, 2)));
    let mut client = TrinoClient::new(cluster.client_urls(3)[1..].to_vec(), "lake");
    client.execute("CREATE SCHEMA formed").expect("schema");

    // The old claimant comes back with its empty store and joins the cluster that formed.
    cluster.start(1);
    wait_for(Duration::from_secs(60), "coordinator 1 joins", || {
        cluster.joined_state(1)
    });
    let mut one = TrinoClient::new(vec![cluster.client_url(1)], "lake");
    assert_eq!(one.sorted_rows("SHOW SCHEMAS LIKE 'formed'"), ["formed"]);
    assert_eq!(newest_claim(&server), Some((2, 2)), "no third claim");
}

/// `uri` asked of the coordinator at `base` instead of the one it names.
fn on(base: &str, uri: &str) -> String {
    let path = uri.splitn(4, '/').nth(3).expect("an absolute URI");
    format!("{base}/{path}")
}

#[test]
fn a_large_select_on_s3_survives_the_kill_of_its_driver_after_the_first_page() {
    let server = S3Server::start(&[BUCKET]);
    let mut cluster = s3_cluster(&server);
    cluster.extra_config = "worker.timeout=2s\n".into();
    cluster.worker_extra_config = "query.max-buffer-memory=1048576\n".into();
    cluster.start_joined(3);
    cluster.start_workers_seen(&["w1", "w2"], 3);
    let mut client = TrinoClient::new(cluster.client_urls(3), "lake");
    client.execute("CREATE SCHEMA lake").expect("schema");
    client
        .execute(
            "CREATE TABLE lake.numbers AS SELECT value AS n, 'row ' || CAST(value AS VARCHAR) AS s \
             FROM generate_series(1, 30000) AS t(value)",
        )
        .expect("ctas");

    // Read the first page through coordinator 1, then wait until the driver has produced
    // every page: the record says FINISHED and names the spool in the bucket.
    let base = cluster.client_url(1);
    let mut page = post_statement(&base, "lake", "SELECT n, s FROM lake.numbers");
    let id = page["id"].as_str().expect("an id").to_string();
    let mut rows: Vec<(i64, String)> = Vec::new();
    let take = |page: &serde_json::Value, rows: &mut Vec<(i64, String)>| {
        for row in page["data"].as_array().cloned().unwrap_or_default() {
            rows.push((
                row[0].as_i64().expect("n"),
                row[1].as_str().expect("s").to_string(),
            ));
        }
    };
    while rows.is_empty() {
        assert!(page.get("error").is_none(), "{page}");
        take(&page, &mut rows);
        if rows.is_empty() {
            let next = page["nextUri"].as_str().expect("more").to_string();
            page = get_json(&on(&base, &next));
        }
    }
    let record = wait_for(
        Duration::from_secs(60),
        "the query's record says FINISHED",
        || {
            let info = query_info(&cluster.client_url(2), &id, "lake");
            (info["state"] == "FINISHED").then_some(info)
        },
    );
    let spool = record["resultSpool"].as_str().expect("a spool").to_string();
    assert!(
        spool.starts_with(&format!("s3://{BUCKET}/warehouse/_spool/")),
        "{spool}"
    );
    let spooled = server.keys(BUCKET, "warehouse/_spool/");
    assert!(
        spooled.iter().any(|k| k.ends_with("page-1.json")),
        "{spooled:?}"
    );
    let driver = record["driver"].as_str().expect("a driver").to_string();
    let nodes = client
        .execute("SELECT node_id, http_uri FROM system.runtime.nodes WHERE NOT coordinator")
        .expect("nodes")
        .rows;
    let worker = nodes
        .iter()
        .find(|row| row[1] == driver.as_str())
        .and_then(|row| row[0].as_str())
        .unwrap_or_else(|| panic!("the driver {driver} is not a worker: {nodes:?}"))
        .to_string();
    cluster.kill_worker(&worker);

    // The rest through coordinator 2, from the spool: every row exactly once.
    let other = cluster.client_url(2);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while let Some(next) = page["nextUri"].as_str().map(str::to_string) {
        assert!(
            std::time::Instant::now() < deadline,
            "query {id} did not end"
        );
        page = get_json(&on(&other, &next));
        assert!(page.get("error").is_none(), "query {id} failed: {page}");
        take(&page, &mut rows);
    }
    rows.sort();
    let expected: Vec<(i64, String)> = (1..=30000).map(|n| (n, format!("row {n}"))).collect();
    assert!(
        rows == expected,
        "query {id}: {} rows, every row of 1..=30000 exactly once expected",
        rows.len()
    );
    wait_until(
        Duration::from_secs(30),
        "the spool leaves the bucket",
        || server.keys(BUCKET, "warehouse/_spool/").is_empty(),
    );

    // The Python client reads large results as segments spooled in the bucket.
    let urls = cluster.client_urls(3).join(",");
    shoal_tests::python::run_pytest(
        "python/test_spooling.py",
        &[("SHOAL_COORDINATORS", urls.as_ref())],
        &[],
    );
}
