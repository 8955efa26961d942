//! Live workers as this coordinator hears them: each worker sends a heartbeat to every
//! coordinator; one silent for longer than `worker.timeout` is taken as dead and gets no work.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shoal_proto::cluster::WorkerHeartbeat;

#[derive(Debug, Clone)]
pub struct LiveWorker {
    pub heartbeat: WorkerHeartbeat,
    pub last_seen: Instant,
    /// A driver could not reach it: no work until its next heartbeat.
    pub unreachable: bool,
}

pub struct Workers {
    timeout: Duration,
    known: Mutex<HashMap<String, LiveWorker>>,
    /// Woken by every heartbeat.
    heard: tokio::sync::Notify,
}

impl Workers {
    pub fn new(timeout: Duration) -> Self {
        Workers {
            timeout,
            known: Mutex::new(HashMap::new()),
            heard: tokio::sync::Notify::new(),
        }
    }

    /// Take a heartbeat; a worker seen for the first time (or again after being lost) is logged.
    pub fn heard(&self, heartbeat: WorkerHeartbeat) {
        self.heard_at(heartbeat, Instant::now());
    }

    fn heard_at(&self, heartbeat: WorkerHeartbeat, now: Instant) {
        self.note(heartbeat, now);
        self.heard.notify_waiters();
    }

    fn note(&self, heartbeat: WorkerHeartbeat, now: Instant) {
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        let returning = known
            .get(&heartbeat.id)
            .is_none_or(|w| now.duration_since(w.last_seen) > self.timeout);
        if returning {
            tracing::info!(worker = %heartbeat.id, url = %heartbeat.internal_url, cores = heartbeat.cores, "worker joined");
        }
        known.insert(
            heartbeat.id.clone(),
            LiveWorker {
                heartbeat,
                last_seen: now,
                unreachable: false,
            },
        );
    }

    /// A driver could not reach the workers at `urls`: give them no work until they are heard
    /// from again, instead of waiting for their silence to reach the timeout.
    pub fn unreachable(&self, urls: &[String]) {
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        for worker in known.values_mut() {
            if urls.contains(&worker.heartbeat.internal_url) {
                tracing::info!(worker = %worker.heartbeat.id, "a driver could not reach the worker; no work for it until it is heard from again");
                worker.unreachable = true;
            }
        }
    }

    /// Workers heard from within the timeout, by id; workers silent for long are forgotten.
    pub fn live(&self) -> Vec<LiveWorker> {
        self.live_at(Instant::now())
    }

    /// [`Workers::live`], waiting until `until` for a first heartbeat while none is live: a
    /// coordinator that just started has not heard from the workers yet, and would otherwise
    /// run their queries itself (and lose them with its own death).
    pub async fn live_by(&self, until: Instant) -> Vec<LiveWorker> {
        let until = tokio::time::Instant::from_std(until);
        loop {
            let heard = self.heard.notified();
            let live = self.live();
            if !live.is_empty() || tokio::time::Instant::now() >= until {
                return live;
            }
            let _ = tokio::time::timeout_at(until, heard).await;
        }
    }

    fn live_at(&self, now: Instant) -> Vec<LiveWorker> {
        let Ok(mut known) = self.known.lock() else {
            return Vec::new();
        };
        known.retain(|id, w| {
            let keep = now.duration_since(w.last_seen) <= self.timeout * 10;
            if !keep {
                tracing::info!(worker = %id, "forgetting a worker silent for long");
            }
            keep
        });
        let mut live: Vec<LiveWorker> = known
            .values()
            .filter(|w| !w.unreachable && now.duration_since(w.last_seen) <= self.timeout)
            .cloned()
            .collect();
        live.sort_by(|a, b| a.heartbeat.id.cmp(&b.heartbeat.id));
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(id: &str) -> WorkerHeartbeat {
        WorkerHeartbeat {
            id: id.into(),
            internal_url: format!("http://{id}"),
            cores: 2,
            memory_bytes: 1,
            started_at_ms: 0,
            version: "0".into(),
            running_queries: 0,
        }
    }

    #[test]
    fn silent_workers_are_dead() {
        let workers = Workers::new(Duration::from_secs(5));
        let start = Instant::now();
        workers.heard_at(beat("a"), start);
        workers.heard_at(beat("b"), start);
        assert_eq!(workers.live_at(start + Duration::from_secs(4)).len(), 2);
        workers.heard_at(beat("b"), start + Duration::from_secs(4));
        let live: Vec<String> = workers
            .live_at(start + Duration::from_secs(6))
            .into_iter()
            .map(|w| w.heartbeat.id)
            .collect();
        assert_eq!(live, vec!["b".to_string()]);
    }

    #[tokio::test]
    async fn a_coordinator_waits_a_while_for_the_first_heartbeat() {
        let workers = Workers::new(Duration::from_secs(5));
        // Nobody there: the wait ends at its deadline, empty.
        let started = Instant::now();
        let none = workers.live_by(started + Duration::from_millis(100)).await;
        assert!(none.is_empty() && started.elapsed() >= Duration::from_millis(100));
        // While no worker is live the wait is pending; the first heartbeat ends it.
        let waiting = workers.live_by(Instant::now() + Duration::from_secs(30));
        tokio::pin!(waiting);
        assert!(futures::poll!(&mut waiting).is_pending());
        workers.heard(beat("a"));
        let live = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the heartbeat ends the wait");
        assert_eq!(live.len(), 1);
    }
}
