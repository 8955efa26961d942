//! Chaos test of the replicated state store: clients read, write and compare-and-set keys
//! through every coordinator's key-value API while a nemesis kills (`kill -9`) and restarts
//! coordinators and pauses them (SIGSTOP/SIGCONT); the recorded history must be
//! linearizable per key and every acknowledged write must be there at the end.
//!
//! The CI version runs for about 20 s. `SHOAL_CHAOS_SECONDS` (e.g. 600) and
//! `SHOAL_CHAOS_OPS` make a longer run; `SHOAL_CHAOS_SEED` repeats a schedule.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal_tests::chaos::{env_number, seed, Rng};
use shoal_tests::kv::{KvClient, KvError};
use shoal_tests::linearizability::{check, Operation, RegisterOp, Verdict};
use shoal_tests::process::ProcessCluster;

const COORDINATORS: u64 = 3;
const CLIENTS: usize = 6;
const KEYS: usize = 4;
const CHECK_BUDGET: u64 = 50_000_000;

/// How long and how hard the run is.
struct Settings {
    seconds: u64,
    max_ops: usize,
    seed: u64,
}

fn settings() -> Settings {
    Settings {
        seconds: env_number("SHOAL_CHAOS_SECONDS").unwrap_or(20),
        max_ops: env_number("SHOAL_CHAOS_OPS").unwrap_or(30_000) as usize,
        seed: seed("SHOAL_CHAOS_SEED"),
    }
}

/// A history of one key, and the durable writes acknowledged to clients.
#[derive(Default)]
struct Recorded {
    per_key: BTreeMap<String, Vec<Operation>>,
    durable: Vec<(String, String)>,
    unknown: usize,
    refused: Vec<String>,
}

struct Shared {
    start: Instant,
    urls: Vec<String>,
    secret: String,
    stop: AtomicBool,
    started_ops: AtomicUsize,
    max_ops: usize,
    recorded: Mutex<Recorded>,
}

fn register_key(index: u64) -> String {
    format!("chaos/register-{index}")
}

/// One client: random operations against random coordinators until told to stop.
fn client(shared: Arc<Shared>, id: usize, seed: u64) {
    let kv = KvClient::new(&shared.secret, Duration::from_secs(3));
    let mut rng = Rng(seed);
    let mut last_seen: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut sequence = 0u64;
    while !shared.stop.load(Ordering::Relaxed)
        && shared.started_ops.fetch_add(1, Ordering::Relaxed) < shared.max_ops
    {
        sequence += 1;
        let url = &shared.urls[rng.below(shared.urls.len() as u64) as usize];
        let value = format!("c{id}-{sequence}");
        let choice = rng.below(100);
        if choice < 10 {
            let key = format!("chaos/durable/{value}");
            let answer = kv.put(url, &key, &value);
            let mut recorded = shared.recorded.lock().expect("history");
            match answer {
                Ok(()) => recorded.durable.push((key, value)),
                Err(KvError::Refused(e)) => recorded.refused.push(e),
                Err(KvError::NotSent(_)) => {}
                Err(KvError::Unknown(_)) => recorded.unknown += 1,
            }
            continue;
        }
        let key = register_key(rng.below(KEYS as u64));
        let invoked = shared.start.elapsed();
        let (op, answer) = if choice < 50 {
            let answer = kv.get(url, &key);
            if let Ok(saw) = &answer {
                last_seen.insert(key.clone(), saw.clone());
            }
            let saw = answer.as_ref().ok().cloned().flatten();
            (RegisterOp::Read { saw }, answer.map(|_| None))
        } else if choice < 75 {
            let answer = kv.put(url, &key, &value);
            (RegisterOp::Write { value }, answer.map(|_| None))
        } else {
            let expected = last_seen.get(&key).cloned().flatten();
            let answer = kv.compare_and_set(url, &key, expected.as_deref(), &value);
            let op = RegisterOp::Cas {
                expected,
                new: value,
                succeeded: None,
            };
            (op, answer.map(Some))
        };
        let completed = shared.start.elapsed();
        record(&shared, id, key, op, invoked, completed, answer);
    }
}

fn record(
    shared: &Shared,
    client: usize,
    key: String,
    mut op: RegisterOp,
    invoked: Duration,
    completed: Duration,
    answer: Result<Option<bool>, KvError>,
) {
    let mut recorded = shared.recorded.lock().expect("history");
    let completed = match (answer, &mut op) {
        (Ok(swapped), RegisterOp::Cas { succeeded, .. }) => {
            *succeeded = swapped;
            Some(completed)
        }
        (Ok(_), _) => Some(completed),
        // A failed read, or a request that never left, changed nothing.
        (Err(_), RegisterOp::Read { .. }) | (Err(KvError::NotSent(_)), _) => return,
        (Err(KvError::Refused(e)), _) => {
            recorded.refused.push(e);
            return;
        }
        (Err(KvError::Unknown(_)), _) => {
            recorded.unknown += 1;
            None
        }
    };
    recorded.per_key.entry(key).or_default().push(Operation {
        client,
        op,
        invoked,
        completed,
    });
}

/// Faults until the deadline: kill -9 and restart, or SIGSTOP and SIGCONT, one coordinator at
/// a time (half of the time the Raft leader); a killed coordinator is back in the cluster
/// before the next fault.
fn nemesis(cluster: &mut ProcessCluster, rng: &mut Rng, until: Instant) -> Vec<String> {
    let mut faults = Vec::new();
    while Instant::now() < until {
        std::thread::sleep(rng.millis(200, 1_000));
        let leader = (1..=COORDINATORS)
            .find_map(|id| cluster.joined_state(id))
            .and_then(|state| state["leader"].as_u64());
        let victim = match leader {
            Some(leader) if rng.below(2) == 0 => leader,
            _ => 1 + rng.below(COORDINATORS),
        };
        if rng.below(2) == 0 {
            cluster.kill(victim);
            std::thread::sleep(rng.millis(100, 1_500));
            cluster.start(victim);
            faults.push(format!("kill -9 {victim}"));
        } else {
            cluster.pause(victim);
            std::thread::sleep(rng.millis(300, 3_000));
            cluster.resume(victim);
            faults.push(format!("pause {victim}"));
        }
        shoal_tests::wait_for(
            Duration::from_secs(60),
            &format!("coordinator {victim} back in the cluster"),
            || cluster.joined_state(victim),
        );
    }
    faults
}

/// A linearizable read of `key` through any coordinator, retried until one answers.
fn final_read(shared: &Shared, kv: &KvClient, key: &str) -> Operation {
    shoal_tests::wait_for(Duration::from_secs(30), "a final read", || {
        shared.urls.iter().find_map(|url| {
            let invoked = shared.start.elapsed();
            let saw = kv.get(url, key).ok()?;
            Some(Operation {
                client: CLIENTS,
                op: RegisterOp::Read { saw },
                invoked,
                completed: Some(shared.start.elapsed()),
            })
        })
    })
}

#[test]
fn the_state_store_stays_linearizable_under_kills_and_pauses() {
    let settings = settings();
    eprintln!(
        "chaos: seed {} for {} s, at most {} operations",
        settings.seed, settings.seconds, settings.max_ops
    );
    let begun = Instant::now();
    let mut cluster = ProcessCluster::new(COORDINATORS);
    cluster.start_joined(COORDINATORS);
    eprintln!("chaos: cluster formed after {:?}", begun.elapsed());
    let shared = Arc::new(Shared {
        start: Instant::now(),
        urls: cluster.client_urls(COORDINATORS),
        secret: cluster.secret.clone(),
        stop: AtomicBool::new(false),
        started_ops: AtomicUsize::new(0),
        max_ops: settings.max_ops,
        recorded: Mutex::new(Recorded::default()),
    });
    let mut rng = Rng(settings.seed);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let shared = shared.clone();
            let seed = rng.next_u64();
            std::thread::spawn(move || client(shared, id, seed))
        })
        .collect();

    let until = Instant::now() + Duration::from_secs(settings.seconds);
    let faults = nemesis(&mut cluster, &mut rng, until);
    shared.stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("a client thread");
    }

    let kv = KvClient::new(&cluster.secret, Duration::from_secs(3));
    let mut recorded = std::mem::take(&mut *shared.recorded.lock().expect("history"));
    for index in 0..KEYS as u64 {
        let key = register_key(index);
        let read = final_read(&shared, &kv, &key);
        recorded.per_key.entry(key).or_default().push(read);
    }
    eprintln!("chaos: history complete after {:?}", begun.elapsed());
    let operations: usize = recorded.per_key.values().map(Vec::len).sum();
    let answered = operations - recorded.unknown;
    eprintln!(
        "chaos: {} faults ({}), {operations} register operations ({} unknown), {} durable writes",
        faults.len(),
        faults.join(", "),
        recorded.unknown,
        recorded.durable.len()
    );
    assert!(
        recorded.refused.is_empty(),
        "requests refused: {:?}",
        recorded.refused
    );
    assert!(!faults.is_empty(), "the nemesis injected no fault");
    assert!(
        answered >= 200,
        "too few answered operations to say anything: {answered}"
    );

    let mut anomalies = Vec::new();
    for (key, history) in &recorded.per_key {
        let started = Instant::now();
        let verdict = check(history, CHECK_BUDGET);
        eprintln!(
            "chaos: {key}: {} operations, {verdict:?} in {:?}",
            history.len(),
            started.elapsed()
        );
        if verdict != Verdict::Linearizable {
            let file = std::env::temp_dir().join(format!(
                "shoal-chaos-{}-{}.txt",
                settings.seed,
                key.replace('/', "-")
            ));
            let _ = std::fs::write(&file, format!("{history:#?}"));
            anomalies.push(format!("{key}: {verdict:?}, history in {}", file.display()));
        }
    }
    assert!(
        anomalies.is_empty(),
        "histories that are not linearizable:\n{}",
        anomalies.join("\n")
    );

    let missing: Vec<&(String, String)> = recorded
        .durable
        .iter()
        .filter(|(key, value)| {
            let url = &shared.urls[0];
            shoal_tests::wait_for(Duration::from_secs(30), "a durable read", || {
                kv.get(url, key).ok()
            }) != Some(value.clone())
        })
        .collect();
    eprintln!("chaos: durable writes checked after {:?}", begun.elapsed());
    assert!(
        missing.is_empty(),
        "acknowledged writes missing at the end: {missing:?}"
    );
}
