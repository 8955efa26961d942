//! Chaos test of queries: clients, each statement through a random coordinator, run INSERTs
//! of unique ids into a few tables, UPDATEs that increment a counter of their own, CREATE TABLE AS, streaming SELECTs (no ORDER BY, read at a
//! slow pace) over a table of several files whose multiset is known, and aggregates with known
//! results, while a nemesis, one fault at a time, kills (`kill -9`) and restarts at once
//! coordinators (the Raft leader among them, and one that restarted less than a second ago)
//! and workers, restarts a coordinator after a while, pauses one (SIGSTOP/SIGCONT), and cuts
//! one off the others (a network partition). After
//! healing: every acknowledged INSERT's id is there exactly once, a definitely failed one's is
//! not, one of unknown outcome at most once; each counter counts its acknowledged increments
//! once, unknown ones at most once, failed ones never; every completed stream returned exactly its
//! multiset and every aggregate its known value; every acknowledged CTAS table is there; no
//! query stays QUEUED, DISPATCHING or RUNNING; the admission counters are back to zero.
//!
//! About 40 s of faults in the test command; `SHOAL_QUERY_CHAOS_SECONDS` makes a longer run,
//! `SHOAL_QUERY_CHAOS_SEED` repeats a schedule. A partition cuts one coordinator off every
//! other node while its clients still reach it: each coordinator runs in a network namespace
//! of its own, and the link that carries its internal traffic is taken down (see
//! `shoal_tests::netns`; the test needs root).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use shoal_tests::chaos::{env_number, seed, Rng};
use shoal_tests::process::ProcessCluster;
use shoal_tests::trino::TrinoClient;
use shoal_tests::wait_for;

const COORDINATORS: u64 = 3;
const WORKERS: [&str; 2] = ["w1", "w2"];
const TABLES: u64 = 3;
/// `chaos.numbers` holds 1..=FILES*PER_FILE, one file per statement that wrote it.
const FILES: i64 = 4;
const PER_FILE: i64 = 25_000;
const TOTAL: i64 = FILES * PER_FILE;
const CTAS_ROWS: i64 = 100;
const CLIENTS: usize = 4;

/// How a statement ended, as its client can tell.
#[derive(Debug, Clone)]
enum Answer {
    Rows(Vec<Value>),
    /// The cluster answered with an error: the statement did not take effect.
    Failed(String),
    /// No coordinator answered in time: it may or may not have taken effect.
    Unknown(String),
    /// The cluster kept answering without ever ending the statement.
    Hung(String),
}

/// Run `sql` through a random coordinator, following its pages over any coordinator that
/// answers (as `shoal sql` and the Python client do), waiting `pace` between pages.
/// `started(query id)` is called once the statement was accepted.
fn run(
    urls: &[String],
    rng: &mut Rng,
    sql: &str,
    pace: Duration,
    started: &dyn Fn(&str),
) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut current = rng.below(urls.len() as u64) as usize;
    let first = agent
        .post(format!("{}/v1/statement", urls[current]))
        .header("X-Trino-User", "chaos")
        .send(sql);
    let mut page: Value = match first.and_then(|mut r| r.body_mut().read_json()) {
        Ok(page) => page,
        Err(e) => return Answer::Unknown(format!("submit to {}: {e}", urls[current])),
    };
    if let Some(id) = page["id"].as_str() {
        started(id);
    }
    let give_up = Instant::now() + Duration::from_secs(90);
    // No statement here takes long: one that never ends is a fault of the cluster.
    let must_end = Instant::now() + Duration::from_secs(150);
    let mut rows = Vec::new();
    loop {
        if Instant::now() >= must_end {
            return Answer::Hung(format!("{sql} did not end within 150 s"));
        }
        if let Some(error) = page.get("error") {
            return Answer::Failed(format!("{}: {}", error["errorName"], error["message"]));
        }
        rows.extend(page["data"].as_array().cloned().unwrap_or_default());
        let Some(next) = page["nextUri"].as_str() else {
            return Answer::Rows(rows);
        };
        let path = next.splitn(4, '/').nth(3).unwrap_or_default().to_string();
        if !pace.is_zero() && page.get("data").is_some() {
            // A slow reader: load shaping, not synchronisation.
            std::thread::sleep(pace);
        }
        page = loop {
            let answer = agent
                .get(format!("{}/{path}", urls[current]))
                .header("X-Trino-User", "chaos")
                .call()
                .and_then(|mut r| r.body_mut().read_json::<Value>());
            match answer {
                Ok(page) => break page,
                Err(e) if Instant::now() >= give_up => {
                    return Answer::Unknown(format!("page {path}: {e}"));
                }
                Err(_) => {
                    current = (current + 1) % urls.len();
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
    }
}

/// What one operation did, for the report of a violation.
#[derive(Debug, Clone)]
struct Op {
    client: usize,
    at: Duration,
    sql: String,
    answer: String,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "client {} at {:?}: {} -> {}",
            self.client, self.at, self.sql, self.answer
        )
    }
}

#[derive(Default)]
struct Recorded {
    /// INSERTed id → its table and how the INSERT ended.
    inserts: BTreeMap<i64, (u64, Answer, Op)>,
    ctas: Vec<(String, Answer, Op)>,
    /// Each client's increments of its own counter (an UPDATE, copy-on-write).
    updates: Vec<(usize, Answer, Op)>,
    streams_complete: usize,
    streams_failed: Vec<String>,
    aggregates: usize,
    violations: Vec<String>,
}

struct Shared {
    start: Instant,
    urls: Vec<String>,
    stop: AtomicBool,
    next_id: AtomicU64,
    recorded: Mutex<Recorded>,
    /// The query id of each client's stream being read now.
    streaming: Mutex<BTreeMap<usize, String>>,
}

fn op(shared: &Shared, client: usize, sql: &str, answer: &Answer) -> Op {
    let answer = match answer {
        Answer::Rows(rows) => format!("{} rows", rows.len()),
        Answer::Failed(e) => format!("failed: {e}"),
        Answer::Unknown(e) => format!("unknown: {e}"),
        Answer::Hung(e) => format!("hung: {e}"),
    };
    Op {
        client,
        at: shared.start.elapsed(),
        sql: sql.chars().take(120).collect(),
        answer,
    }
}

fn numbers(rows: &[Value]) -> Vec<i64> {
    rows.iter().filter_map(|r| r[0].as_i64()).collect()
}

/// One client: a mix of statements until told to stop.
fn client(shared: Arc<Shared>, index: usize, seed: u64) {
    let mut rng = Rng(seed);
    while !shared.stop.load(Ordering::Relaxed) {
        match rng.below(10) {
            0..=3 => {
                let id = shared.next_id.fetch_add(1, Ordering::Relaxed) as i64;
                let table = rng.below(TABLES);
                let sql = format!("INSERT INTO chaos.t{table} VALUES ({id})");
                let answer = run(&shared.urls, &mut rng, &sql, Duration::ZERO, &|_| {});
                let op = op(&shared, index, &sql, &answer);
                let mut recorded = shared.recorded.lock().expect("recorded");
                recorded.inserts.insert(id, (table, answer, op));
            }
            4 => {
                let sql = format!("UPDATE chaos.counters SET n = n + 1 WHERE client = {index}");
                let answer = run(&shared.urls, &mut rng, &sql, Duration::ZERO, &|_| {});
                let op = op(&shared, index, &sql, &answer);
                let mut recorded = shared.recorded.lock().expect("recorded");
                recorded.updates.push((index, answer, op));
            }
            5 => {
                let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                let name = format!("chaos.c{id}");
                let sql = format!(
                    "CREATE TABLE {name} AS SELECT value FROM generate_series(1, {CTAS_ROWS}) AS t(value)"
                );
                let answer = run(&shared.urls, &mut rng, &sql, Duration::ZERO, &|_| {});
                let op = op(&shared, index, &sql, &answer);
                shared
                    .recorded
                    .lock()
                    .expect("recorded")
                    .ctas
                    .push((name, answer, op));
            }
            6..=7 => {
                let sql = "SELECT value FROM chaos.numbers";
                let pace = rng.millis(20, 80);
                let reading = |id: &str| {
                    if let Ok(mut streaming) = shared.streaming.lock() {
                        streaming.insert(index, id.to_string());
                    }
                };
                let answer = run(&shared.urls, &mut rng, sql, pace, &reading);
                if let Ok(mut streaming) = shared.streaming.lock() {
                    streaming.remove(&index);
                }
                let op = op(&shared, index, sql, &answer);
                let mut recorded = shared.recorded.lock().expect("recorded");
                match answer {
                    Answer::Rows(rows) => {
                        let mut got = numbers(&rows);
                        got.sort_unstable();
                        if got.iter().copied().eq(1..=TOTAL) {
                            recorded.streams_complete += 1;
                        } else {
                            let mut distinct = got.clone();
                            distinct.dedup();
                            recorded.violations.push(format!(
                                "a stream completed with {} rows ({} distinct) instead of 1..={TOTAL}: {op}",
                                got.len(),
                                distinct.len()
                            ));
                        }
                    }
                    Answer::Failed(e) | Answer::Unknown(e) => recorded.streams_failed.push(e),
                    Answer::Hung(e) => recorded.violations.push(e),
                }
            }
            _ => {
                let sql = "SELECT count(*), sum(value) FROM chaos.numbers";
                let answer = run(&shared.urls, &mut rng, sql, Duration::ZERO, &|_| {});
                let op = op(&shared, index, sql, &answer);
                if let Answer::Hung(e) = &answer {
                    shared
                        .recorded
                        .lock()
                        .expect("recorded")
                        .violations
                        .push(e.clone());
                }
                if let Answer::Rows(rows) = &answer {
                    let mut recorded = shared.recorded.lock().expect("recorded");
                    let want = (TOTAL, TOTAL * (TOTAL + 1) / 2);
                    let got = rows
                        .first()
                        .map(|r| (r[0].as_i64().unwrap_or(-1), r[1].as_i64().unwrap_or(-1)));
                    if got == Some(want) {
                        recorded.aggregates += 1;
                    } else {
                        recorded
                            .violations
                            .push(format!("an aggregate gave {got:?}, not {want:?}: {op}"));
                    }
                }
            }
        }
    }
}

/// The coordinator the others agree leads, if any answers.
fn leader(cluster: &ProcessCluster) -> Option<u64> {
    (1..=COORDINATORS).find_map(|id| cluster.joined_state(id)?["leader"].as_u64())
}

/// Wait until every coordinator has joined and sees both workers again.
fn healed(cluster: &ProcessCluster) {
    for id in 1..=COORDINATORS {
        wait_for(
            Duration::from_secs(60),
            &format!("coordinator {id} rejoined"),
            || cluster.joined_state(id),
        );
    }
}

/// A stream a client is reading now: the coordinator that accepted it and its driver's URL,
/// or why there is none to aim at.
fn a_running_stream(
    cluster: &ProcessCluster,
    shared: &Shared,
    rng: &mut Rng,
) -> Result<(u64, String), String> {
    let ids: Vec<String> = shared
        .streaming
        .lock()
        .map_err(|_| "poisoned".to_string())?
        .values()
        .cloned()
        .collect();
    let id = ids
        .get(rng.below(ids.len() as u64) as usize)
        .ok_or("no stream is being read")?;
    let mut client = TrinoClient::new(cluster.client_urls(COORDINATORS), "check");
    let rows = client
        .execute(&format!(
            "SELECT coordinator, driver FROM system.runtime.queries WHERE query_id = '{id}'"
        ))
        .map_err(|e| format!("cannot look up stream {id}: {e}"))?
        .rows;
    let row = rows.first().ok_or(format!("stream {id} has no record"))?;
    match (row[0].as_u64(), row[1].as_str()) {
        (Some(coordinator), Some(driver)) => Ok((coordinator, driver.to_string())),
        _ => Err(format!("stream {id} has no driver yet: {row:?}")),
    }
}

/// One fault, chosen by `rng`; returns what it did.
fn fault(
    cluster: &mut ProcessCluster,
    rng: &mut Rng,
    last_restarted: &mut Option<(u64, Instant)>,
    shared: &Shared,
) -> String {
    match rng.below(10) {
        8 | 9 => {
            // A partition: the leader or another coordinator cut off the other members.
            let id = match leader(cluster) {
                Some(leader) if rng.below(2) == 0 => leader,
                _ => 1 + rng.below(COORDINATORS),
            };
            let held = rng.millis(1000, 3000);
            if let Err(e) = cluster.cut(id, true) {
                return e;
            }
            std::thread::sleep(held);
            // Reconnecting must not fail: a coordinator left cut off would fail the run.
            let mut reconnected = cluster.cut(id, false);
            for _ in 0..20 {
                if reconnected.is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
                reconnected = cluster.cut(id, false);
            }
            reconnected.expect("reconnect a coordinator after a partition");
            format!("coordinator {id} cut off the others for {held:?}")
        }
        6 => {
            let (_, driver) = match a_running_stream(cluster, shared, rng) {
                Ok(stream) => stream,
                Err(why) => return format!("no stream to aim at: {why}"),
            };
            // Workers' URLs change when they restart: ask the cluster for today's.
            let mut client = TrinoClient::new(cluster.client_urls(COORDINATORS), "check");
            let workers: Vec<(String, String)> = client
                .execute("SELECT node_id, http_uri FROM system.runtime.nodes WHERE NOT coordinator")
                .map(|r| r.rows)
                .unwrap_or_default()
                .iter()
                .filter_map(|row| {
                    Some((row[0].as_str()?.to_string(), row[1].as_str()?.to_string()))
                })
                .collect();
            if let Some((name, _)) = workers.iter().find(|(_, url)| *url == driver) {
                cluster.kill_worker(name);
                cluster.start_worker(name);
                return format!(
                    "kill -9 worker {name}, driving a running stream, restarted at once"
                );
            }
            let coordinator = cluster
                .coordinators
                .values()
                .find(|c| c.internal_url == driver)
                .map(|c| c.id);
            let Some(id) = coordinator else {
                return format!("the driver {driver} of a running stream is no node here");
            };
            cluster.kill(id);
            cluster.start(id);
            *last_restarted = Some((id, Instant::now()));
            format!("kill -9 coordinator {id}, driving a running stream, restarted at once")
        }
        7 => {
            let (id, _) = match a_running_stream(cluster, shared, rng) {
                Ok(stream) => stream,
                Err(why) => return format!("no stream to aim at: {why}"),
            };
            cluster.kill(id);
            cluster.start(id);
            *last_restarted = Some((id, Instant::now()));
            format!("kill -9 coordinator {id}, which accepted a running stream, restarted at once")
        }
        0 => {
            let Some(id) = leader(cluster) else {
                return "no leader to kill".into();
            };
            cluster.kill(id);
            cluster.start(id);
            *last_restarted = Some((id, Instant::now()));
            format!("kill -9 leader {id}, restarted at once")
        }
        1 => match *last_restarted {
            Some((id, at)) if at.elapsed() < Duration::from_secs(1) => {
                cluster.kill(id);
                cluster.start(id);
                *last_restarted = Some((id, Instant::now()));
                format!("kill -9 coordinator {id} again, restarted less than a second before")
            }
            _ => {
                let id = 1 + rng.below(COORDINATORS);
                cluster.kill(id);
                cluster.start(id);
                *last_restarted = Some((id, Instant::now()));
                format!("kill -9 coordinator {id}, restarted at once")
            }
        },
        2 => {
            let id = 1 + rng.below(COORDINATORS);
            let down = rng.millis(500, 2000);
            cluster.kill(id);
            std::thread::sleep(down);
            cluster.start(id);
            *last_restarted = Some((id, Instant::now()));
            format!("kill -9 coordinator {id}, restarted after {down:?}")
        }
        3 | 4 => {
            let name = WORKERS[rng.below(WORKERS.len() as u64) as usize];
            cluster.kill_worker(name);
            cluster.start_worker(name);
            format!("kill -9 worker {name}, restarted at once")
        }
        _ => {
            let id = 1 + rng.below(COORDINATORS);
            let held = rng.millis(500, 2000);
            cluster.pause(id);
            std::thread::sleep(held);
            cluster.resume(id);
            format!("SIGSTOP coordinator {id} for {held:?}")
        }
    }
}

#[test]
fn every_query_survives_every_single_fault_exactly_once() {
    let seconds = env_number("SHOAL_QUERY_CHAOS_SECONDS").unwrap_or(40);
    let seed = seed("SHOAL_QUERY_CHAOS_SEED");
    eprintln!(
        "query chaos: seed {seed} for {seconds} s (SHOAL_QUERY_CHAOS_SEED={seed} repeats it)"
    );
    let mut rng = Rng(seed);

    let mut cluster = ProcessCluster::new(COORDINATORS);
    cluster.use_network_namespaces();
    // `check` reads every client's queries in `system.runtime.queries`.
    cluster.extra_config =
        "query.client.timeout=5s\nworker.timeout=2s\nquery.admin-users=check\n".into();
    cluster.start_joined(COORDINATORS);
    cluster.start_workers_seen(&WORKERS, COORDINATORS);
    let urls = cluster.client_urls(COORDINATORS);
    let mut setup = TrinoClient::new(urls.clone(), "chaos");
    setup.execute("CREATE SCHEMA chaos").expect("schema");
    setup
        .execute(&format!(
            "CREATE TABLE chaos.numbers AS SELECT value FROM generate_series(1, {PER_FILE}) AS t(value)"
        ))
        .expect("numbers");
    for file in 1..FILES {
        let (low, high) = (file * PER_FILE + 1, (file + 1) * PER_FILE);
        setup
            .execute(&format!(
                "INSERT INTO chaos.numbers SELECT value FROM generate_series({low}, {high}) AS t(value)"
            ))
            .expect("more numbers");
    }
    for table in 0..TABLES {
        setup
            .execute(&format!("CREATE TABLE chaos.t{table} (id BIGINT)"))
            .expect("table");
    }
    // A counter per client, each in a file of its own (so that clients do not rewrite the
    // same file and conflict).
    setup
        .execute("CREATE TABLE chaos.counters (client BIGINT, n BIGINT)")
        .expect("counters");
    for index in 0..CLIENTS {
        setup
            .execute(&format!("INSERT INTO chaos.counters VALUES ({index}, 0)"))
            .expect("a counter");
    }

    let shared = Arc::new(Shared {
        start: Instant::now(),
        urls: urls.clone(),
        stop: AtomicBool::new(false),
        next_id: AtomicU64::new(1),
        recorded: Mutex::new(Recorded::default()),
        streaming: Mutex::new(BTreeMap::new()),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|index| {
            let shared = shared.clone();
            let seed = rng.next_u64();
            std::thread::spawn(move || client(shared, index, seed))
        })
        .collect();

    let mut faults = Vec::new();
    let mut last_restarted = None;
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        std::thread::sleep(rng.millis(1000, 2500));
        let what = fault(&mut cluster, &mut rng, &mut last_restarted, &shared);
        faults.push(format!("{:?}: {what}", shared.start.elapsed()));
    }
    shared.stop.store(true, Ordering::Relaxed);
    healed(&cluster);
    for client in clients {
        client.join().expect("a client panicked");
    }
    let recorded = std::mem::take(&mut *shared.recorded.lock().expect("recorded"));
    let report = |problem: &str| -> String {
        format!(
            "{problem}\nseed {seed}; faults:\n  {}\nnode logs are in the cluster's directory",
            faults.join("\n  ")
        )
    };

    // Every table's ids: acknowledged exactly once, failed never, unknown at most once.
    let mut check = TrinoClient::new(urls.clone(), "check");
    let mut present: BTreeMap<i64, (u64, usize)> = BTreeMap::new();
    for table in 0..TABLES {
        let mut last_error = String::new();
        let read = shoal_tests::poll(Duration::from_secs(30), || {
            match check.execute(&format!("SELECT id FROM chaos.t{table}")) {
                Ok(result) => Some(result.rows),
                Err(e) => {
                    last_error = e.to_string();
                    None
                }
            }
        });
        let Some(rows) = read else {
            panic!(
                "{}",
                report(&format!(
                    "chaos.t{table} cannot be read for 30 s: {last_error}"
                ))
            );
        };
        for id in rows.iter().filter_map(|r| r[0].as_i64()) {
            let entry = present.entry(id).or_insert((table, 0));
            entry.1 += 1;
        }
    }
    let mut problems = recorded.violations.clone();
    for (id, (table, answer, op)) in &recorded.inserts {
        let count = present.get(id).map_or(0, |(_, n)| *n);
        let wrong = match answer {
            Answer::Rows(_) => count != 1,
            // The cluster says so when it could not settle a write's outcome.
            Answer::Failed(error) if error.contains("unknown") => count > 1,
            Answer::Failed(_) => count != 0,
            Answer::Unknown(_) => count > 1,
            Answer::Hung(_) => true,
        };
        if wrong {
            problems.push(format!(
                "id {id} (table t{table}) is there {count} times after {op}"
            ));
        }
    }
    for id in present.keys() {
        if !recorded.inserts.contains_key(id) {
            problems.push(format!("id {id} is there but was never inserted"));
        }
    }
    for (name, answer, op) in &recorded.ctas {
        if let Answer::Hung(e) = answer {
            problems.push(format!("{e}: {op}"));
        }
        if let Answer::Rows(_) = answer {
            let counted = check
                .execute(&format!("SELECT count(*) FROM {name}"))
                .map(|r| r.rows[0][0].as_i64());
            if counted.as_ref().ok().copied().flatten() != Some(CTAS_ROWS) {
                problems.push(format!("acknowledged {name} reads {counted:?}: {op}"));
            }
        }
    }
    // Every counter holds one row, and its value counts each acknowledged increment once,
    // each of unknown outcome at most once, and no failed one.
    let counters = check
        .execute("SELECT client, n FROM chaos.counters")
        .map(|r| r.rows)
        .unwrap_or_else(|e| panic!("{}", report(&format!("the counters cannot be read: {e}"))));
    for index in 0..CLIENTS {
        let values: Vec<i64> = counters
            .iter()
            .filter(|r| r[0].as_i64() == Some(index as i64))
            .filter_map(|r| r[1].as_i64())
            .collect();
        let mine: Vec<&(usize, Answer, Op)> = recorded
            .updates
            .iter()
            .filter(|(c, _, _)| *c == index)
            .collect();
        let acked = mine
            .iter()
            .filter(|(_, a, _)| matches!(a, Answer::Rows(_)))
            .count() as i64;
        let unsure = mine
            .iter()
            .filter(|(_, a, _)| match a {
                Answer::Unknown(_) => true,
                Answer::Failed(error) => error.contains("unknown"),
                _ => false,
            })
            .count() as i64;
        for (_, answer, op) in &mine {
            if let Answer::Hung(e) = answer {
                problems.push(format!("{e}: {op}"));
            }
        }
        match values.as_slice() {
            [n] if (acked..=acked + unsure).contains(n) => {}
            _ => problems.push(format!(
                "client {index}'s counter reads {values:?} after {acked} acknowledged and {unsure} \
                 unsure increments:\n    {}",
                mine.iter().map(|(_, _, op)| op.to_string()).collect::<Vec<_>>().join("\n    ")
            )),
        }
    }
    if counters.len() != CLIENTS {
        problems.push(format!(
            "the counters table has {} rows: {counters:?}",
            counters.len()
        ));
    }
    assert!(problems.is_empty(), "{}", report(&problems.join("\n")));

    // No query stays QUEUED or RUNNING once the cluster healed and the client timeout passed.
    let mut unsettled = || {
        check
            .execute(
                "SELECT query_id, state, query FROM system.runtime.queries \
                 WHERE state IN ('QUEUED', 'DISPATCHING', 'RUNNING') AND \"user\" = 'chaos'",
            )
            .ok()
            .map(|r| r.rows)
    };
    let settled = shoal_tests::poll(Duration::from_secs(60), || {
        unsettled().filter(|rows| rows.is_empty())
    });
    if settled.is_none() {
        let stuck = unsettled().unwrap_or_default();
        let mut said = Vec::new();
        for row in &stuck {
            let id = row[0].as_str().unwrap_or_default();
            for coordinator in cluster.coordinators.values() {
                for line in coordinator.log_text().lines().filter(|l| l.contains(id)) {
                    said.push(format!("coordinator {}: {line}", coordinator.id));
                }
            }
        }
        panic!(
            "{}\n{}",
            report(&format!("queries never settled: {stuck:?}")),
            said.join("\n")
        );
    }
    // And the admission counters are back to zero on every coordinator.
    for url in &urls {
        let metrics = wait_for(Duration::from_secs(10), "metrics", || {
            ureq::get(format!("{url}/metrics"))
                .call()
                .ok()?
                .body_mut()
                .read_to_string()
                .ok()
        });
        for line in metrics
            .lines()
            .filter(|l| l.starts_with("shoal_admission_"))
        {
            assert!(
                line.ends_with(" 0"),
                "{}",
                report(&format!("{url}: {line}"))
            );
        }
    }
    let inserts = recorded.inserts.len();
    let acked = recorded
        .inserts
        .values()
        .filter(|(_, a, _)| matches!(a, Answer::Rows(_)))
        .count();
    let mut stream_errors: BTreeMap<String, usize> = BTreeMap::new();
    for error in &recorded.streams_failed {
        let name = error.split(':').next().unwrap_or_default().to_string();
        *stream_errors.entry(name).or_default() += 1;
    }
    let updated = recorded
        .updates
        .iter()
        .filter(|(_, a, _)| matches!(a, Answer::Rows(_)))
        .count();
    eprintln!(
        "query chaos: {} faults; {inserts} INSERTs ({acked} acknowledged); {} UPDATEs ({updated} acknowledged); {} CTAS; {} streams complete, {} failed {stream_errors:?}; {} aggregates\n  {}",
        faults.len(),
        recorded.updates.len(),
        recorded.ctas.len(),
        recorded.streams_complete,
        recorded.streams_failed.len(),
        recorded.aggregates,
        faults.join("\n  ")
    );
    assert!(
        acked > 0 && recorded.streams_complete > 0,
        "{}",
        report("the clients made no progress")
    );
}
