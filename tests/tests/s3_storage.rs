//! Shared storage on a real S3-compatible server (s3s-fs on loopback): a cluster of 3
//! coordinators and 2 workers whose warehouse and seeds are in a bucket forms, creates, fills,
//! reads, rewrites and drops tables, and every byte of them lives in the bucket; a bootstrap
//! claim whose claimant died before initialising expires and the others form the cluster.

use std::time::Duration;

use shoal_tests::process::ProcessCluster;
use shoal_tests::s3::S3Server;
use shoal_tests::trino::{TrinoClient, TrinoError};
use shoal_tests::wait_for;

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
