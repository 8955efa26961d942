//! Query history lives in the replicated store: it survives the death of the coordinator that
//! ran a query and a restart of the whole cluster; a DDL is visible everywhere once it returned.

use std::time::Duration;

use serde_json::Value;
use shoal_tests::process::ProcessCluster;
use shoal_tests::trino::{get_json, post_statement, query_info, TrinoClient};
use shoal_tests::wait_for;

fn state_of(client: &mut TrinoClient, query_id: &str) -> Option<String> {
    let result = client
        .execute(&format!(
            "SELECT state FROM system.runtime.queries WHERE query_id = '{query_id}'"
        ))
        .ok()?;
    result
        .rows
        .first()
        .and_then(|row| row[0].as_str().map(str::to_string))
}

#[test]
fn history_survives_a_dead_coordinator_and_a_full_restart() {
    let mut cluster = ProcessCluster::new(3);
    cluster.start_joined(3);
    let mut on_first = TrinoClient::new(vec![cluster.client_url(1)], "history");
    on_first
        .execute("CREATE TABLE kept AS SELECT 7 AS x")
        .expect("ctas");
    let mut query_id = String::new();
    let mut everywhere = TrinoClient::new(
        (1..=3).map(|id| cluster.client_url(id)).collect(),
        "history",
    );
    let rows = everywhere
        .execute(
            "SELECT query_id FROM system.runtime.queries WHERE query LIKE 'CREATE TABLE kept%'",
        )
        .expect("history");
    if let Some(Value::String(id)) = rows.rows.first().and_then(|r| r.first()) {
        query_id = id.clone();
    }
    assert!(!query_id.is_empty(), "the CTAS is in the history: {rows:?}");

    cluster.kill(1);
    let mut survivors = TrinoClient::new(
        vec![cluster.client_url(2), cluster.client_url(3)],
        "history",
    );
    let state = wait_for(
        Duration::from_secs(20),
        "history readable without its coordinator",
        || state_of(&mut survivors, &query_id),
    );
    assert_eq!(state, "FINISHED");

    for id in 2..=3 {
        cluster.stop(id);
    }
    for id in 1..=3 {
        cluster.start(id);
    }
    for id in 1..=3 {
        wait_for(
            Duration::from_secs(30),
            &format!("coordinator {id} rejoins"),
            || cluster.joined_state(id),
        );
    }
    let mut restarted = TrinoClient::new(
        (1..=3).map(|id| cluster.client_url(id)).collect(),
        "history",
    );
    let state = wait_for(
        Duration::from_secs(20),
        "history after a full restart",
        || state_of(&mut restarted, &query_id),
    );
    assert_eq!(state, "FINISHED");
    let kept = restarted
        .execute("SELECT x FROM kept")
        .expect("table after restart");
    assert_eq!(kept.rows, vec![vec![Value::from(7)]]);
}

#[test]
fn history_is_bounded_and_abandoned_queries_are_released() {
    let mut cluster = ProcessCluster::new(1);
    cluster.extra_config = "query.max-history=3\nquery.client.timeout=3s\n".into();
    cluster.start(1);
    wait_for(Duration::from_secs(30), "coordinator joins", || {
        cluster.joined_state(1)
    });
    let url = cluster.client_url(1);

    // A client that reads one page and goes away: its query is abandoned and released.
    let first: Value = post_statement(
        &url,
        "gone",
        "SELECT value FROM generate_series(1, 100000000) AS t(value)",
    );
    let id = first["id"].as_str().expect("id").to_string();
    let next = first["nextUri"].as_str().expect("nextUri").to_string();
    let page: Value = get_json(&next);
    assert_eq!(page["stats"]["state"], "RUNNING");
    let info = wait_for(Duration::from_secs(20), "the abandoned query fails", || {
        let info = query_info(&url, &id, "gone");
        (info["state"] == "FAILED").then_some(info)
    });
    assert_eq!(info["errorCode"]["name"], "ABANDONED_QUERY", "{info}");

    let mut client = TrinoClient::new(vec![url.clone()], "bounded");
    for i in 0..6 {
        client.execute(&format!("SELECT {i}")).expect("query");
    }
    let finished = client
        .execute(
            "SELECT query FROM system.runtime.queries WHERE state <> 'RUNNING' ORDER BY created",
        )
        .expect("history");
    let kept: Vec<String> = finished
        .rows
        .iter()
        .map(|r| r[0].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        kept.len() <= 3,
        "at most query.max-history finished queries are kept: {kept:?}"
    );
    assert_eq!(
        kept.last().map(String::as_str),
        Some("SELECT 5"),
        "the newest are kept: {kept:?}"
    );
}

/// Read on from `page` to the end of its query; the numbers in the first column, or the error.
fn numbers_from(mut page: Value, numbers: &mut Vec<i64>) -> Result<(), Value> {
    loop {
        if let Some(error) = page.get("error") {
            return Err(error.clone());
        }
        for row in page["data"].as_array().cloned().unwrap_or_default() {
            numbers.push(row[0].as_i64().expect("a number"));
        }
        let Some(next) = page["nextUri"].as_str() else {
            return Ok(());
        };
        page = get_json(next);
    }
}

#[test]
fn trimming_the_history_never_cuts_a_slow_reader() {
    let mut cluster = ProcessCluster::new(1);
    cluster.extra_config = "query.max-history=3\n".into();
    cluster.start(1);
    wait_for(Duration::from_secs(30), "coordinator joins", || {
        cluster.joined_state(1)
    });
    let url = cluster.client_url(1);

    // A stream of many pages whose client reads slowly: its query finishes (every page waits
    // at its driver) long before its client is done.
    const COUNT: i64 = 300_000;
    let first = post_statement(
        &url,
        "slow",
        &format!("SELECT value FROM generate_series(1, {COUNT}) AS t(value)"),
    );
    let id = first["id"].as_str().expect("id").to_string();
    let mut page = first;
    let mut numbers = Vec::new();
    while numbers.is_empty() {
        let next = page["nextUri"].as_str().expect("more pages").to_string();
        page = get_json(&next);
        for row in page["data"].as_array().cloned().unwrap_or_default() {
            numbers.push(row[0].as_i64().expect("a number"));
        }
    }
    assert!(
        page["nextUri"].is_string(),
        "the first rows are not all of them"
    );
    wait_for(
        Duration::from_secs(30),
        "the query finished at its driver",
        || (query_info(&url, &id, "slow")["state"] == "FINISHED").then_some(()),
    );

    // Meanwhile other queries end, many times query.max-history: the history is trimmed.
    let mut client = TrinoClient::new(vec![url.clone()], "busy");
    for i in 0..40 {
        client.execute(&format!("SELECT {i}")).expect("query");
    }
    let kept = client
        .execute("SELECT count(*) FROM system.runtime.queries WHERE \"user\" = 'busy'")
        .expect("history");
    assert!(
        kept.rows[0][0].as_i64().unwrap_or(i64::MAX) <= 10,
        "the finished queries were trimmed: {:?}",
        kept.rows
    );

    // The slow client reads on and gets every row exactly once.
    let next = page["nextUri"].as_str().expect("more pages").to_string();
    let rest = numbers_from(get_json(&next), &mut numbers);
    assert!(rest.is_ok(), "the slow reader was cut: {rest:?}");
    numbers.sort_unstable();
    assert!(
        numbers.iter().copied().eq(1..=COUNT),
        "{} rows instead of 1..={COUNT}",
        numbers.len()
    );
}
