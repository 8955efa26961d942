//! Running queries survive node deaths: `kill -9` of the coordinator a client reads from (the
//! Raft leader, then a follower) while a query streams; a driver killed before the first page
//! makes the query run again; a queued query of a dead coordinator is adopted and runs; with
//! a majority of coordinators gone a running query still finishes and new ones are refused
//! until the majority is back.

use std::time::Duration;

use serde_json::Value;
use shoal_tests::process::ProcessCluster;
use shoal_tests::trino::{get_json, post_statement, query_info, TrinoClient};
use shoal_tests::{poll, wait_for, wait_until};

const ROWS: i64 = 100_000;
const SORTED: &str = "SELECT n FROM numbers ORDER BY n";

/// Three coordinators and two workers, every coordinator seeing both workers, and table
/// `numbers` holding 1..=ROWS.
fn cluster(extra_config: &str) -> (ProcessCluster, TrinoClient) {
    let mut cluster = ProcessCluster::new(3);
    cluster.extra_config = extra_config.into();
    // Queries nobody reads hold little: 1 MiB of pages in memory, 1 MiB in spill files.
    // Scans are cut finely, so even this small table is read by tasks on both workers.
    cluster.worker_extra_config = "query.max-buffer-memory=1048576\nquery.max-spill=1048576\n\
         query.scan-bytes-per-task=65536\n"
        .into();
    cluster.start_joined(3);
    cluster.start_workers_seen(&["w1", "w2"], 3);
    let mut client = TrinoClient::new(cluster.client_urls(3), "failover");
    client
        .execute(&format!(
            "CREATE TABLE numbers AS SELECT value AS n FROM generate_series(1, {ROWS}) AS t(value)"
        ))
        .expect("create numbers");
    (cluster, client)
}

/// `uri` with its scheme and authority replaced by `base`: the same request to another
/// coordinator.
fn on(base: &str, uri: &str) -> String {
    let path = uri
        .splitn(4, '/')
        .nth(3)
        .expect("an absolute URI with a path");
    format!("{base}/{path}")
}

/// A query as its client sees it: the next URI to ask and the rows so far.
struct Reader {
    id: String,
    next: Option<String>,
    rows: Vec<i64>,
    pages: usize,
}

impl Reader {
    fn submit(base: &str, sql: &str) -> Reader {
        let first = post_statement(base, "failover", sql);
        Reader {
            id: first["id"].as_str().expect("an id").to_string(),
            next: first["nextUri"].as_str().map(str::to_string),
            rows: Vec::new(),
            pages: 0,
        }
    }

    /// Follow `nextUri` on `base` until `pages` pages with rows arrived or the query ended.
    fn read(&mut self, base: &str, pages: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        let target = self.pages.saturating_add(pages);
        while let Some(uri) = self.next.clone() {
            if self.pages >= target {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "query {} did not progress within 90 s",
                self.id
            );
            let page = get_json(&on(base, &uri));
            assert!(
                page.get("error").is_none(),
                "query {} failed: {page}",
                self.id
            );
            if let Some(data) = page["data"].as_array() {
                self.pages += 1;
                self.rows
                    .extend(data.iter().map(|row| row[0].as_i64().expect("a number")));
            }
            self.next = page["nextUri"].as_str().map(str::to_string);
        }
    }

    fn assert_complete(&self) {
        assert!(self.next.is_none(), "query {} did not end", self.id);
        assert_eq!(self.rows.len() as i64, ROWS, "query {}: row count", self.id);
        assert!(
            self.rows.iter().copied().eq(1..=ROWS),
            "query {}: rows missing, repeated or out of order",
            self.id
        );
    }
}

fn info(base: &str, id: &str) -> Value {
    query_info(base, id, "failover")
}

fn leader(cluster: &ProcessCluster, ids: &[u64]) -> u64 {
    wait_for(Duration::from_secs(30), "a leader", || {
        ids.iter()
            .find_map(|id| cluster.joined_state(*id)?["leader"].as_u64())
            .filter(|leader| ids.contains(leader))
    })
}

fn wait_finished(base: &str, id: &str) -> Value {
    let mut last = Value::Null;
    poll(Duration::from_secs(30), || {
        last = info(base, id);
        (last["state"] == "FINISHED").then(|| last.clone())
    })
    .unwrap_or_else(|| panic!("query {id}: its record does not say FINISHED within 30 s: {last}"))
}

#[test]
fn a_streaming_query_survives_kill_of_its_coordinator_leader_or_follower() {
    let (mut cluster, _client) = cluster("");

    // The client reads from the Raft leader, which dies mid-stream.
    let first_leader = leader(&cluster, &[1, 2, 3]);
    let other = if first_leader == 1 { 2 } else { 1 };
    let mut reader = Reader::submit(&cluster.client_url(first_leader), SORTED);
    reader.read(&cluster.client_url(first_leader), 3);
    let driver = info(&cluster.client_url(other), &reader.id)["driver"].clone();
    assert!(
        driver
            .as_str()
            .is_some_and(|d| !cluster.coordinators.values().any(|c| c.internal_url == d)),
        "the query is driven by a worker, not a coordinator: {driver}"
    );
    cluster.kill(first_leader);
    reader.read(&cluster.client_url(other), usize::MAX);
    reader.assert_complete();
    wait_finished(&cluster.client_url(other), &reader.id);

    cluster.start(first_leader);
    wait_until(Duration::from_secs(30), "the old leader rejoins", || {
        cluster.joined_state(first_leader).is_some()
    });

    // The client reads from a follower, which dies mid-stream.
    let ids = [1, 2, 3];
    let current_leader = leader(&cluster, &ids);
    let follower = *ids
        .iter()
        .find(|id| **id != current_leader)
        .expect("a follower");
    let survivor = *ids
        .iter()
        .find(|id| **id != current_leader && **id != follower)
        .expect("a third coordinator");
    let mut reader = Reader::submit(&cluster.client_url(follower), SORTED);
    reader.read(&cluster.client_url(follower), 3);
    cluster.kill(follower);
    reader.read(&cluster.client_url(survivor), usize::MAX);
    reader.assert_complete();
    wait_finished(&cluster.client_url(survivor), &reader.id);
}

/// The worker (by name) whose internal URL is `url`.
fn worker_named(client: &mut TrinoClient, url: &str) -> String {
    let nodes = client
        .execute("SELECT node_id, http_uri FROM system.runtime.nodes WHERE NOT coordinator")
        .expect("nodes");
    nodes
        .rows
        .iter()
        .find(|row| row[1] == url)
        .and_then(|row| row[0].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no worker has URL {url}: {:?}", nodes.rows))
}

#[test]
fn a_query_runs_again_when_its_driver_dies_before_the_first_page() {
    let (mut cluster, mut client) = cluster("worker.timeout=2s\n");
    let mut reader = Reader::submit(&cluster.client_url(1), SORTED);
    let driver = wait_for(Duration::from_secs(30), "a driver for the query", || {
        info(&cluster.client_url(2), &reader.id)["driver"]
            .as_str()
            .map(str::to_string)
    });
    let worker = worker_named(&mut client, &driver);
    cluster.kill_worker(&worker);
    reader.read(&cluster.client_url(2), usize::MAX);
    reader.assert_complete();
    let record = wait_finished(&cluster.client_url(3), &reader.id);
    assert_eq!(record["attempt"], 1, "{record}");
    assert_ne!(record["driver"], Value::from(driver), "{record}");
}

#[test]
fn a_queued_query_of_a_dead_coordinator_is_adopted_and_runs() {
    let (mut cluster, _client) = cluster("query.max-concurrent=1\n");
    // Holds the only slot: its client reads nothing, so its driver soon waits.
    let long = post_statement(
        &cluster.client_url(1),
        "failover",
        "SELECT value FROM generate_series(1, 1000000000) AS t(value)",
    );
    let long_id = long["id"].as_str().expect("id").to_string();
    wait_until(Duration::from_secs(30), "the long query runs", || {
        info(&cluster.client_url(1), &long_id)["state"] == "RUNNING"
    });
    let mut waiting = Reader::submit(&cluster.client_url(2), SORTED);
    wait_until(Duration::from_secs(10), "the second query waits", || {
        info(&cluster.client_url(3), &waiting.id)["state"] == "QUEUED"
    });
    cluster.kill(2);
    let cancel = on(
        &cluster.client_url(1),
        long["nextUri"].as_str().expect("nextUri"),
    );
    ureq::delete(&cancel)
        .header("X-Trino-User", "failover")
        .call()
        .expect("cancel the long query");
    waiting.read(&cluster.client_url(3), usize::MAX);
    waiting.assert_complete();
    let record = wait_finished(&cluster.client_url(3), &waiting.id);
    assert_ne!(record["coordinator"], 2, "{record}");
}

/// Follow `uri` on `base` until the query ends; the rows, or the error.
fn outcome(base: &str, first: &Value) -> Result<Vec<Value>, Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut rows = Vec::new();
    let mut page = first.clone();
    loop {
        if let Some(error) = page.get("error") {
            return Err(error.clone());
        }
        rows.extend(page["data"].as_array().cloned().unwrap_or_default());
        let Some(next) = page["nextUri"].as_str() else {
            return Ok(rows);
        };
        assert!(
            std::time::Instant::now() < deadline,
            "query {} did not end within 60 s",
            first["id"]
        );
        page = get_json(&on(base, next));
    }
}

#[test]
fn a_dead_drivers_slot_is_released_and_its_delivered_query_fails() {
    let (mut cluster, mut client) = cluster("query.max-concurrent=1\nworker.timeout=2s\n");
    let workers = client
        .execute("SELECT node_id, http_uri FROM system.runtime.nodes WHERE NOT coordinator")
        .expect("nodes")
        .rows;
    let long = Reader::submit(
        &cluster.client_url(1),
        "SELECT value FROM generate_series(1, 1000000000) AS t(value)",
    );
    let mut long = long;
    long.read(&cluster.client_url(1), 1);
    let driver = info(&cluster.client_url(2), &long.id)["driver"]
        .as_str()
        .expect("a driver")
        .to_string();
    let worker = workers
        .iter()
        .find(|row| row[1] == driver.as_str())
        .and_then(|row| row[0].as_str())
        .unwrap_or_else(|| panic!("no worker has URL {driver}: {workers:?}"))
        .to_string();
    cluster.kill_worker(&worker);

    // The only slot was the dead driver's; it is released and a new query runs.
    let next = post_statement(&cluster.client_url(3), "failover", "SELECT 42");
    let rows = outcome(&cluster.client_url(3), &next).expect("a new query runs");
    assert_eq!(rows, vec![Value::from(vec![Value::from(42)])]);

    // Rows of the long query were delivered, so it is not run again: it fails, saying why.
    let error = outcome(
        &cluster.client_url(2),
        &serde_json::json!({"id": long.id, "nextUri": long.next}),
    )
    .expect_err("the long query cannot complete");
    assert_eq!(error["errorName"], "REMOTE_HOST_GONE", "{error}");
    let record = info(&cluster.client_url(3), &long.id);
    assert_eq!(record["state"], "FAILED", "{record}");
    assert_eq!(record["attempt"], 0, "{record}");
}

#[test]
fn a_query_runs_again_when_a_worker_of_its_stages_dies_before_the_first_page() {
    let (mut cluster, _client) = cluster("worker.timeout=2s\n");
    // Killed just now, so the coordinators still count it among the live workers for a while:
    // the query is planned over both workers, and its stages on this one fail.
    cluster.kill_worker("w2");
    let mut reader = Reader::submit(&cluster.client_url(1), SORTED);
    reader.read(&cluster.client_url(2), usize::MAX);
    reader.assert_complete();
    let record = wait_finished(&cluster.client_url(3), &reader.id);
    assert_eq!(record["attempt"], 1, "the query ran again: {record}");
}

#[test]
fn without_a_majority_running_queries_finish_and_new_ones_fail_until_it_is_back() {
    let (mut cluster, _client) = cluster("");
    let survivor = cluster.client_url(3);
    let mut reader = Reader::submit(&survivor, SORTED);
    reader.read(&survivor, 3);
    cluster.kill(1);
    cluster.kill(2);
    reader.read(&survivor, usize::MAX);
    reader.assert_complete();

    let mut client = TrinoClient::new(vec![survivor.clone()], "failover");
    let started = std::time::Instant::now();
    let refused = client.execute("SELECT 1");
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("state store is unavailable")),
        "a new query without a majority: {refused:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refused promptly, not after {:?}",
        started.elapsed()
    );

    cluster.start(1);
    wait_until(
        Duration::from_secs(60),
        "new queries are taken again once a majority is back",
        || client.execute("SELECT 1").is_ok(),
    );
}

/// The rows of `first` and the pages after it, read on `base`, as numbers.
fn numbers_after(base: &str, id: &str, next: Option<String>) -> Result<Vec<i64>, Value> {
    let rows = outcome(base, &serde_json::json!({"id": id, "nextUri": next}))?;
    Ok(rows
        .iter()
        .map(|row| row[0].as_i64().expect("a number"))
        .collect())
}

/// A stream either completes with exactly its rows or fails with an error; `read` were the
/// rows delivered before the fault, `rest` what reading on gave.
fn exactly_or_an_error(id: &str, read: &[i64], rest: Result<Vec<i64>, Value>, count: i64) {
    match rest {
        Ok(rest) => {
            let mut all: Vec<i64> = read.iter().chain(rest.iter()).copied().collect();
            all.sort_unstable();
            let mut distinct = all.clone();
            distinct.dedup();
            assert!(
                all.iter().copied().eq(1..=count),
                "query {id} ended without an error but with {} rows, {} distinct, of 1..={count}",
                all.len(),
                distinct.len()
            );
        }
        Err(error) => assert_eq!(error["errorName"], "REMOTE_HOST_GONE", "{error}"),
    }
}

/// Submit a query of about five pages, read its first page, wait until its driver has
/// produced every page (the record says FINISHED), and kill the driver: the reader, the
/// record and what reading on through another coordinator gives.
fn driver_dies_after_the_first_page(
    cluster: &mut ProcessCluster,
    client: &mut TrinoClient,
) -> (Reader, Value, Result<Vec<i64>, Value>) {
    let workers = client
        .execute("SELECT node_id, http_uri FROM system.runtime.nodes WHERE NOT coordinator")
        .expect("nodes")
        .rows;
    let mut reader = Reader::submit(
        &cluster.client_url(1),
        "SELECT n FROM numbers WHERE n <= 20000",
    );
    reader.read(&cluster.client_url(1), 1);
    assert_eq!(reader.pages, 1);
    let record = wait_finished(&cluster.client_url(2), &reader.id);
    let driver = record["driver"].as_str().expect("a driver").to_string();
    let worker = workers
        .iter()
        .find(|row| row[1] == driver.as_str())
        .and_then(|row| row[0].as_str())
        .unwrap_or_else(|| panic!("the driver {driver} is not a worker: {workers:?}"))
        .to_string();
    cluster.kill_worker(&worker);
    let rest = numbers_after(&cluster.client_url(2), &reader.id, reader.next.clone());
    (reader, record, rest)
}

#[test]
fn a_finished_query_whose_driver_dies_mid_stream_fails_instead_of_ending_short() {
    // Without a result spool the pages die with their driver.
    let (mut cluster, mut client) = cluster("worker.timeout=2s\nquery.result-spool=none\n");
    let (reader, _, rest) = driver_dies_after_the_first_page(&mut cluster, &mut client);
    assert!(rest.is_err(), "the pages died with their driver: {rest:?}");
    exactly_or_an_error(&reader.id, &reader.rows, rest, 20_000);
}

#[test]
fn a_finished_query_whose_driver_dies_mid_stream_is_read_to_the_end_from_its_spool() {
    let (mut cluster, mut client) = cluster("worker.timeout=2s\n");
    let (reader, record, rest) = driver_dies_after_the_first_page(&mut cluster, &mut client);
    let rest = rest.unwrap_or_else(|e| panic!("query {}: {e}", reader.id));
    let mut all: Vec<i64> = reader.rows.iter().chain(rest.iter()).copied().collect();
    all.sort_unstable();
    assert!(
        all.iter().copied().eq(1..=20_000),
        "query {}: {} rows, every row of 1..=20000 exactly once expected",
        reader.id,
        all.len()
    );
    // The spool was under the warehouse, and goes once the client has read the end.
    let spools = cluster.dir.path().join("warehouse").join("_spool");
    assert!(
        record["resultSpool"].is_string(),
        "the record names the spool: {record}"
    );
    wait_until(Duration::from_secs(30), "the spool is removed", || {
        std::fs::read_dir(&spools).map_or(true, |mut dir| dir.next().is_none())
    });
}

#[test]
fn a_query_sent_to_a_just_restarted_coordinator_survives_its_death_exactly_once() {
    let (mut cluster, mut client) = cluster("worker.timeout=2s\n");
    let workers = client
        .execute("SELECT node_id, http_uri FROM system.runtime.nodes WHERE NOT coordinator")
        .expect("nodes")
        .rows;
    // A round: coordinator 3 restarts and at once takes a query, which dies with it after
    // two pages; the client gets every row exactly once, or an error, never fewer rows.
    let round = |cluster: &mut ProcessCluster, label: &str| -> bool {
        cluster.kill(3);
        cluster.start(3);
        let mut reader = wait_for(
            Duration::from_secs(30),
            "the restarted coordinator takes a query",
            || {
                let first = shoal_tests::trino::try_post_statement(
                    &cluster.client_url(3),
                    "failover",
                    "SELECT n FROM numbers",
                )?;
                first.get("error").is_none().then(|| Reader {
                    id: first["id"].as_str().expect("an id").to_string(),
                    next: first["nextUri"].as_str().map(str::to_string),
                    rows: Vec::new(),
                    pages: 0,
                })
            },
        );
        reader.read(&cluster.client_url(3), 2);
        let driver = info(&cluster.client_url(1), &reader.id)["driver"].clone();
        let by_a_worker = workers.iter().any(|row| row[1] == driver);
        cluster.kill(3);
        if !by_a_worker {
            // Driven inside the dead coordinator: let the leader's sweep act on the record
            // first (run it again, or fail it), which is when delivered rows could be lost.
            wait_for(
                Duration::from_secs(30),
                "the sweep settles the query",
                || {
                    let now = info(&cluster.client_url(1), &reader.id);
                    let settled = now["state"] == "FAILED" || now["state"] == "FINISHED";
                    (now["attempt"] != 0 || settled).then_some(())
                },
            );
        }
        let rest = numbers_after(&cluster.client_url(1), &reader.id, reader.next.clone());
        eprintln!(
            "{label}: driver {driver} (a worker: {by_a_worker}), rest {}",
            rest.as_ref()
                .map_or_else(|e| e.to_string(), |r| r.len().to_string())
        );
        exactly_or_an_error(&reader.id, &reader.rows, rest, ROWS);
        by_a_worker
    };
    // With the workers alive, the restarted coordinator waits for their heartbeats and
    // hands the query on (mostly: the wait is bounded, so either driver must be safe).
    for n in 0..3 {
        round(&mut cluster, &format!("round {n}"));
        cluster.start(3);
        wait_for(Duration::from_secs(30), "coordinator 3 joins again", || {
            cluster.joined_state(3)
        });
    }
    // With no worker alive, the restarted coordinator drives the query itself: the case
    // that lost rows.
    let names: Vec<String> = cluster.workers.keys().cloned().collect();
    for name in &names {
        cluster.kill_worker(name);
    }
    assert!(
        !round(&mut cluster, "no workers"),
        "no worker is alive, yet one drove the query"
    );
}

/// Median time of `runs` runs of `sql` through `client`.
fn median_latency(client: &mut TrinoClient, sql: &str, runs: usize) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = std::time::Instant::now();
            client.execute(sql).expect("query");
            started.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

#[test]
fn a_paused_coordinator_adds_no_latency_to_queries_on_the_others() {
    let (cluster, _client) = cluster("");
    let leader = leader(&cluster, &[1, 2, 3]);
    // Pause a follower (a paused leader stops every write until an election), and query
    // through a coordinator that is not paused.
    let paused = [2, 3]
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    let via = [1, 2, 3]
        .into_iter()
        .find(|id| *id != paused)
        .expect("another coordinator");
    let mut client = TrinoClient::new(vec![cluster.client_url(via)], "failover");
    let sql = "SELECT count(*) FROM numbers";
    let before = median_latency(&mut client, sql, 5);
    cluster.pause(paused);
    let during = median_latency(&mut client, sql, 9);
    cluster.resume(paused);
    eprintln!("median before {before:?}, with coordinator {paused} paused {during:?}");
    assert!(
        during < before + Duration::from_millis(300),
        "a paused coordinator slowed queries on coordinator {via}: {before:?} before, {during:?} while paused"
    );
}

#[test]
fn a_reported_outcome_that_was_not_recorded_is_reported_again() {
    let mut cluster = ProcessCluster::new(1);
    // The first two outcomes a driver reports are not written to the record.
    cluster.coordinator_env = vec![(
        "SHOAL_FAILPOINTS".into(),
        "query-outcome-not-recorded=2*return".into(),
    )];
    cluster.start_joined(1);
    cluster.start_workers_seen(&["w1"], 1);
    let url = cluster.client_url(1);
    let first = post_statement(
        &url,
        "failover",
        "SELECT value FROM generate_series(1, 5000) AS t(value)",
    );
    let id = first["id"].as_str().expect("an id").to_string();
    let rows = outcome(&url, &first).expect("the query completes");
    assert_eq!(rows.len(), 5000);
    let record = wait_for(Duration::from_secs(30), "the record says FINISHED", || {
        let record = info(&url, &id);
        (record["state"] == "FINISHED").then_some(record)
    });
    assert_eq!(record["queryStats"]["outputPositions"], 5000, "{record}");
    let log = cluster.coordinators[&1].log_text();
    assert!(
        log.contains("failpoint query-outcome-not-recorded"),
        "the failpoint fired (the outcome was reported again after it): {record}"
    );
}

/// The owner named the worker in the record, then the drive request was lost (as when the
/// owner dies at that moment): the worker never has the query. Nobody reads it, so only the
/// leader's sweep can notice: it asks the driver, finds the query missing, and runs it again;
/// the client then reads every row once.
#[test]
fn a_query_whose_drive_request_was_lost_runs_again_with_every_row_once() {
    let mut cluster = ProcessCluster::new(3);
    // Only coordinator 1 loses its first drive request.
    cluster.coordinator_env = vec![(
        "SHOAL_FAILPOINTS".into(),
        "drive-request-lost=1*return".into(),
    )];
    cluster.start(1);
    cluster.coordinator_env.clear();
    cluster.start(2);
    cluster.start(3);
    for id in 1..=3 {
        wait_for(
            Duration::from_secs(60),
            &format!("coordinator {id} joins"),
            || cluster.joined_state(id),
        );
    }
    cluster.start_workers_seen(&["w1", "w2"], 3);
    let first = post_statement(
        &cluster.client_url(1),
        "failover",
        "SELECT value FROM generate_series(1, 50000) AS t(value) ORDER BY value",
    );
    let id = first["id"].as_str().expect("an id").to_string();
    let record = wait_for(
        Duration::from_secs(30),
        "the sweep runs the query again",
        || {
            let record = info(&cluster.client_url(2), &id);
            (record["attempt"] == 1).then_some(record)
        },
    );
    assert!(
        cluster.coordinators[&1]
            .log_text()
            .contains("failpoint drive-request-lost"),
        "the failpoint fired: {record}"
    );
    let rows = outcome(&cluster.client_url(3), &first).expect("the query completes");
    let values: Vec<i64> = rows
        .iter()
        .map(|row| row[0].as_i64().expect("a number"))
        .collect();
    assert!(
        values.iter().copied().eq(1..=50000),
        "every row once, in order"
    );
    let record = wait_finished(&cluster.client_url(2), &id);
    assert_eq!(record["attempt"], 1, "{record}");
}
