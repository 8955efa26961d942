//! Query history lives in the replicated store: it survives the death of the coordinator that
//! ran a query and a restart of the whole cluster; a DDL is visible everywhere once it returned.

use std::time::Duration;

use serde_json::Value;
use shoal_tests::process::ProcessCluster;
use shoal_tests::trino::TrinoClient;
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
    for id in 1..=3 {
        cluster.start(id);
    }
    for id in 1..=3 {
        wait_for(
            Duration::from_secs(30),
            &format!("coordinator {id} joins"),
            || cluster.joined_state(id),
        );
    }
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
