//! TPC-H at a small scale factor: all 22 queries through three coordinators (and two workers)
//! give the same results as single-process DataFusion over the same Parquet files.

use std::path::Path;

use datafusion::prelude::SessionContext;
use serde_json::Value;
use shoal_coordinator::protocol::values::batch_rows;
use shoal_tests::process::ProcessCluster;
use shoal_tests::tpch::{create_tables, generate, register_tables, QUERIES};
use shoal_tests::trino::{TrinoClient, TrinoError};

const SCALE_FACTOR: f64 = 0.01;

fn datafusion_rows(data: &Path, sql: &str) -> Vec<Vec<Value>> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let context = SessionContext::new();
        register_tables(&context, data).await.expect("register");
        let batches = context
            .sql(sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run");
        batches
            .iter()
            .flat_map(|b| batch_rows(b).expect("encode"))
            .collect()
    })
}

/// Numbers (and decimals, which travel as strings) equal within a relative 1e-9.
fn same_value(a: &Value, b: &Value) -> bool {
    let number = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        _ => None,
    };
    match (number(a), number(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => a == b,
    }
}

fn sorted(mut rows: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
    rows.sort_by_key(|row| serde_json::to_string(row).unwrap_or_default());
    rows
}

#[test]
fn all_22_tpch_queries_match_single_process_datafusion() {
    let mut cluster = ProcessCluster::new(3);
    cluster.extra_config = "query.scan-bytes-per-task=262144\n".into();
    cluster.start_joined(3);
    // Small scans per task, so the small data set is still cut into stages over both workers.
    cluster.worker_extra_config = "query.scan-bytes-per-task=262144\n".into();
    cluster.start_workers_seen(&["w1", "w2"], 3);
    let data = cluster.external_dir().join("tpch-data");
    generate(&data, SCALE_FACTOR).expect("generate TPC-H data");

    let mut client = TrinoClient::new(cluster.client_urls(3), "tpch");
    create_tables(&mut client, &data).expect("the TPC-H tables");
    client.execute("USE tpch").expect("use");

    let mut mismatches = Vec::new();
    let mut answered = 0;
    for (name, sql) in QUERIES {
        let expected = datafusion_rows(&data, sql);
        let actual = match client.execute(sql) {
            Ok(result) => result.rows,
            Err(e) => {
                mismatches.push(format!("{name}: failed: {e}"));
                continue;
            }
        };
        if !actual.is_empty() {
            answered += 1;
        }
        eprintln!("{name}: {} rows", actual.len());
        let (expected, actual) = (sorted(expected), sorted(actual));
        let equal = expected.len() == actual.len()
            && expected
                .iter()
                .zip(&actual)
                .all(|(e, a)| e.len() == a.len() && e.iter().zip(a).all(|(x, y)| same_value(x, y)));
        if !equal {
            mismatches.push(format!(
                "{name}: {} rows expected, {} returned; first expected {:?}, first returned {:?}",
                expected.len(),
                actual.len(),
                expected.first(),
                actual.first()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "TPC-H mismatches:\n{}",
        mismatches.join("\n")
    );
    assert!(
        answered >= 18,
        "most queries return rows at this scale ({answered} of 22 did)"
    );

    // Every TPC-H query was driven by a worker, and plans are cut into stages over both.
    let coordinators: Vec<String> = cluster
        .coordinators
        .values()
        .map(|c| c.internal_url.clone())
        .collect();
    let drivers = client
        .execute(
            "SELECT driver, query FROM system.runtime.queries \
             WHERE query NOT LIKE 'CREATE%' AND query NOT LIKE '%system.runtime%' \
             AND (query LIKE '%lineitem%' OR query LIKE '%orders%')",
        )
        .expect("query records");
    assert!(drivers.rows.len() >= 15, "{:?}", drivers.rows);
    for row in &drivers.rows {
        let driver = row[0].as_str().unwrap_or_default();
        assert!(
            !driver.is_empty() && !coordinators.iter().any(|c| c == driver),
            "a TPC-H query was not driven by a worker: {row:?}"
        );
    }
    // The query of a CREATE TABLE AS runs over the workers too; its result is the same.
    let summary = "SELECT l_returnflag, count(*) AS lines, sum(l_quantity) AS quantity \
                   FROM lineitem GROUP BY l_returnflag";
    client
        .execute(&format!("CREATE TABLE flags AS {summary}"))
        .expect("create table as");
    let written = client
        .execute("SELECT * FROM flags")
        .expect("read the written table")
        .rows;
    let expected = datafusion_rows(&data, summary);
    assert_eq!(written.len(), expected.len());
    for (w, e) in sorted(written).iter().zip(&sorted(expected)) {
        assert!(
            w.iter().zip(e).all(|(a, b)| same_value(a, b)),
            "{w:?} != {e:?}"
        );
    }

    // Trino's map_agg runs in the stages too (its partial states merge across workers): each
    // group's map has one key per distinct line number.
    let maps = client
        .execute(
            "SELECT l_returnflag, cardinality(map_keys(map_agg(l_linenumber, l_quantity))) \
             FROM lineitem GROUP BY l_returnflag",
        )
        .expect("map_agg")
        .rows;
    let expected = datafusion_rows(
        &data,
        "SELECT l_returnflag, count(DISTINCT l_linenumber) FROM lineitem GROUP BY l_returnflag",
    );
    assert_eq!(sorted(maps), sorted(expected));

    // A lambda runs in the stages as well.
    let matched = client
        .execute(
            "SELECT l_returnflag, count(*) FROM lineitem \
             WHERE any_match(transform(ARRAY[l_linenumber, l_quantity], x -> x * 2), x -> x > 90) \
             GROUP BY l_returnflag",
        )
        .expect("lambdas over lineitem")
        .rows;
    let expected = datafusion_rows(
        &data,
        "SELECT l_returnflag, count(*) FROM lineitem \
         WHERE l_linenumber * 2 > 90 OR l_quantity * 2 > 90 GROUP BY l_returnflag",
    );
    assert_eq!(sorted(matched), sorted(expected));

    // So do Shoal's own higher-order functions (reduce, all_match, none_match, and try, whose
    // expression fails for every first line of an order).
    let folded = client
        .execute(
            "SELECT l_returnflag, \
             sum(CASE WHEN reduce(ARRAY[l_linenumber, l_orderkey], 0, (s, x) -> s + x, s -> s * 2) > 100000 THEN 1 ELSE 0 END), \
             sum(CASE WHEN all_match(ARRAY[l_linenumber, l_quantity], x -> x > 3) THEN 1 ELSE 0 END), \
             sum(CASE WHEN none_match(ARRAY[l_linenumber, l_quantity], x -> x > 40) THEN 1 ELSE 0 END), \
             count(try(l_orderkey / (l_linenumber - 1))) \
             FROM lineitem GROUP BY l_returnflag",
        )
        .expect("reduce, all_match, none_match and try over lineitem")
        .rows;
    let expected = datafusion_rows(
        &data,
        "SELECT l_returnflag, \
         sum(CASE WHEN (l_linenumber + l_orderkey) * 2 > 100000 THEN 1 ELSE 0 END), \
         sum(CASE WHEN l_linenumber > 3 AND l_quantity > 3 THEN 1 ELSE 0 END), \
         sum(CASE WHEN NOT (l_linenumber > 40 OR l_quantity > 40) THEN 1 ELSE 0 END), \
         sum(CASE WHEN l_linenumber <> 1 THEN 1 ELSE 0 END) \
         FROM lineitem GROUP BY l_returnflag",
    );
    assert_eq!(sorted(folded), sorted(expected));

    // A query's memory limit holds on the workers that run its stages, not only at its
    // driver: a GROUP BY's final aggregation runs in a stage of its own, over both workers.
    let grouped = "SELECT l_orderkey, count(*) FROM lineitem GROUP BY l_orderkey";
    let mut limited = TrinoClient::new(cluster.client_urls(3), "tpch");
    limited.execute("USE tpch").expect("use");
    let stages = limited
        .execute(&format!("EXPLAIN ANALYZE {grouped}"))
        .expect("explain the GROUP BY")
        .rows
        .iter()
        .flat_map(|row| row.iter().filter_map(Value::as_str).map(str::to_string))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        stages.contains("[Stage 2] => NetworkCoalesceExec"),
        "the GROUP BY's aggregation is not in a stage of its own:\n{stages}"
    );
    limited.set_session("query_max_memory_per_node", "64kB");
    match limited.execute(grouped) {
        Err(TrinoError::Query { name, message }) => {
            assert_eq!(name, "EXCEEDED_LOCAL_MEMORY_LIMIT", "{message}");
            assert!(message.contains("HashAggregateStream"), "{message}");
        }
        other => panic!("a GROUP BY over 64kB per node: {other:?}"),
    }
    limited.set_session("query_max_memory_per_node", "1GB");
    assert_eq!(
        limited
            .execute(grouped)
            .expect("the GROUP BY with room")
            .rows
            .len(),
        15_000
    );

    let plan = client
        .execute(&format!("EXPLAIN ANALYZE {}", QUERIES[2].1))
        .expect("explain q03");
    let text: String = plan
        .rows
        .iter()
        .flat_map(|row| row.iter().filter_map(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("Network"),
        "the plan of q03 has no network stage:\n{text}"
    );
}
