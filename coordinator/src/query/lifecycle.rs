//! The query lifecycle: every change of a query's record is one of these transitions, applied
//! by compare-and-set on the record and checked against the attempt, owner and driver it was
//! decided on, so a stale owner or driver cannot act.
//!
//! QUEUED (owner: coordinator and incarnation) → DISPATCHING (admitted: it holds a slot, when
//! `query.max-concurrent` limits the cluster) → RUNNING (driver: URL and incarnation, here or
//! on a worker; `delivered` once rows reached the client) → FINISHED or FAILED (a cancelled
//! query fails with USER_CANCELED, as in Trino). A driver is named in the record before it is
//! sent the query, so a query the record names no driver for runs nowhere: when its owner is
//! gone it is adopted as the next attempt. A query whose driver died before rows were
//! delivered is run again as the next attempt, else it fails.

use shoal_engine::drive::ProgressReport;
use shoal_engine::driver::Outcome;
use shoal_proto::client::QueryError;
use shoal_state_store::StateStore;

use crate::error::Result;
use crate::query::record::{self, now_ms, QueryRecord, QueryState};

/// One change of a query's record, and what it must find there to apply.
#[derive(Debug)]
pub enum Transition<'a> {
    /// `attempt`, owned by `owner`, took an admission slot.
    Admitted { attempt: u32, owner: (u64, u64) },
    /// The owner's own driver runs `attempt`.
    RunHere {
        attempt: u32,
        owner: (u64, u64),
        driver: (&'a str, u64),
    },
    /// `attempt` goes to a worker's driver: recorded before the driver is sent the query, so
    /// that a stale owner's attempt never runs unrecorded.
    HandedTo {
        attempt: u32,
        owner: (u64, u64),
        driver: (&'a str, u64),
    },
    /// The worker named by `HandedTo` did not take `attempt` (as far as its owner knows): the
    /// record names no driver again and goes `back_to` the state it had, unless the worker
    /// has reported since.
    NotTaken {
        attempt: u32,
        driver: (&'a str, u64),
        back_to: QueryState,
    },
    /// A driver reports progress.
    Progress(&'a ProgressReport),
    /// The first rows of `attempt`, driven at `driver_url`, leave for the client.
    Delivered { attempt: u32, driver_url: &'a str },
    /// `attempt`, driven at `driver_url` (empty: it never started), ended with `outcome`.
    Ended {
        attempt: u32,
        driver_url: &'a str,
        outcome: &'a Outcome,
    },
    /// The write of `attempt` was settled after its driver died: `outcome` says whether it
    /// committed. Applies to a finished record too, whose last page (the update count) died
    /// with the driver: the record then answers alone.
    WriteSettled { attempt: u32, outcome: &'a Outcome },
    /// `attempt` failed with `error`: its driver is gone.
    DriverLost { attempt: u32, error: &'a QueryError },
    /// `attempt`, not yet ended, was killed (`system.runtime.kill_query`) with `error`.
    Killed { attempt: u32, error: &'a QueryError },
    /// `attempt` lost its driver `driver_url` before rows were delivered: the next attempt
    /// waits, owned by `owner`.
    Retried {
        attempt: u32,
        driver_url: &'a str,
        owner: (u64, u64),
    },
    /// A query no driver has, whose owner `from` is gone, is taken over by `owner` as its
    /// next attempt: whatever the old owner still does with its attempt is refused. Nothing of
    /// the old attempt ran (its driver would be in the record), so its client holds no page
    /// of it but the first, which is served from the current attempt.
    Adopted { from: (u64, u64), owner: (u64, u64) },
}

impl Transition<'_> {
    /// Apply the transition to `r` if it finds what it was decided on; false leaves `r` as
    /// it is.
    pub fn apply(&self, r: &mut QueryRecord) -> bool {
        match *self {
            Transition::Admitted { attempt, owner } => {
                if r.attempt != attempt || r.state != QueryState::Queued || !owned_by(r, owner) {
                    return false;
                }
                r.state = QueryState::Dispatching;
                true
            }
            Transition::RunHere {
                attempt,
                owner,
                driver,
            } => {
                if r.attempt != attempt || r.state.is_done() || !owned_by(r, owner) {
                    return false;
                }
                r.state = QueryState::Running;
                r.driver_url = driver.0.to_string();
                r.driver_incarnation = driver.1;
                true
            }
            Transition::HandedTo {
                attempt,
                owner,
                driver,
            } => {
                if r.attempt != attempt
                    || r.state.is_done()
                    || !r.driver_url.is_empty()
                    || !owned_by(r, owner)
                {
                    return false;
                }
                r.state = QueryState::Running;
                r.driver_url = driver.0.to_string();
                r.driver_incarnation = driver.1;
                true
            }
            Transition::NotTaken {
                attempt,
                driver,
                back_to,
            } => {
                if r.attempt != attempt
                    || r.state != QueryState::Running
                    || !driven_by(r, driver)
                    || r.delivered
                    || r.rows > 0
                {
                    return false;
                }
                r.state = back_to;
                r.driver_url.clear();
                r.driver_incarnation = 0;
                true
            }
            Transition::Progress(report) => {
                let driver = (report.driver_url.as_str(), report.driver_incarnation);
                if r.attempt != report.attempt || r.state.is_done() || !driven_by(r, driver) {
                    return false;
                }
                if r.rows == report.rows && r.state == QueryState::Running {
                    return false;
                }
                r.state = QueryState::Running;
                r.rows = report.rows;
                r.bytes = report.bytes;
                true
            }
            Transition::Delivered {
                attempt,
                driver_url,
            } => {
                if r.attempt != attempt || r.driver_url != driver_url || r.delivered {
                    return false;
                }
                r.delivered = true;
                true
            }
            Transition::Ended {
                attempt,
                driver_url,
                outcome,
            } => {
                // Only the driver the record names ends an attempt; one that names none (the
                // query never started) is ended by its owner.
                if r.attempt != attempt || r.state.is_done() || r.driver_url != driver_url {
                    return false;
                }
                r.state = if outcome.error.is_some() {
                    QueryState::Failed
                } else {
                    QueryState::Finished
                };
                r.ended_ms = Some(now_ms());
                r.rows = outcome.rows;
                r.bytes = outcome.bytes;
                r.pages = outcome.pages;
                r.spool = outcome.spool.clone();
                r.error = outcome.error.clone();
                true
            }
            Transition::WriteSettled { attempt, outcome } => {
                if r.attempt != attempt || r.state == QueryState::Failed {
                    return false;
                }
                if r.state == QueryState::Finished && r.pages == 0 {
                    return false;
                }
                r.state = if outcome.error.is_some() {
                    QueryState::Failed
                } else {
                    QueryState::Finished
                };
                r.ended_ms = r.ended_ms.or(Some(now_ms()));
                r.rows = outcome.rows;
                r.pages = 0;
                r.error = outcome.error.clone();
                true
            }
            Transition::DriverLost { attempt, error } => {
                if r.attempt != attempt || r.state == QueryState::Failed {
                    return false;
                }
                r.state = QueryState::Failed;
                r.ended_ms = Some(now_ms());
                r.error = Some(error.clone());
                true
            }
            Transition::Killed { attempt, error } => {
                if r.attempt != attempt || r.state.is_done() {
                    return false;
                }
                r.state = QueryState::Failed;
                r.ended_ms = Some(now_ms());
                r.error = Some(error.clone());
                true
            }
            Transition::Retried {
                attempt,
                driver_url,
                owner,
            } => {
                if r.attempt != attempt || r.driver_url != driver_url {
                    return false;
                }
                // A finished query whose pages died with its driver runs again too.
                if r.state == QueryState::Failed || r.delivered {
                    return false;
                }
                r.attempt += 1;
                r.driver_url.clear();
                r.driver_incarnation = 0;
                r.state = QueryState::Queued;
                r.ended_ms = None;
                (r.coordinator, r.owner_incarnation) = owner;
                true
            }
            Transition::Adopted { from, owner } => {
                if !r.driver_url.is_empty() || r.state.is_done() || !owned_by(r, from) {
                    return false;
                }
                r.attempt += 1;
                r.state = QueryState::Queued;
                (r.coordinator, r.owner_incarnation) = owner;
                true
            }
        }
    }
}

/// Whether `r` is owned by `owner` (coordinator, incarnation); records of an older version
/// name no incarnation, and then the coordinator alone counts.
fn owned_by(r: &QueryRecord, owner: (u64, u64)) -> bool {
    r.coordinator == owner.0 && (r.owner_incarnation == 0 || r.owner_incarnation == owner.1)
}

/// Whether `r` names `driver` (URL, incarnation) as its driver; a record of an older version
/// names no incarnation, and then the URL alone counts.
fn driven_by(r: &QueryRecord, driver: (&str, u64)) -> bool {
    r.driver_url == driver.0 && (r.driver_incarnation == 0 || r.driver_incarnation == driver.1)
}

/// Apply `transition` to query `id`'s record by compare-and-set. Returns the record as
/// written, or None when the record does not exist or the transition did not apply.
pub async fn apply(
    store: &StateStore,
    id: &str,
    transition: Transition<'_>,
) -> Result<Option<QueryRecord>> {
    let applied = record::update(store, id, |r| transition.apply(r)).await;
    if let Ok(None) = applied {
        tracing::debug!(query = %id, ?transition, "a query transition did not apply");
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued() -> QueryRecord {
        record::sample("q")
    }

    #[test]
    fn a_stale_owner_cannot_dispatch_an_adopted_query() {
        let mut r = queued();
        assert!(Transition::Adopted {
            from: (1, 100),
            owner: (2, 200)
        }
        .apply(&mut r));
        assert_eq!(
            (r.attempt, r.coordinator),
            (1, 2),
            "adoption is the next attempt"
        );
        let run_here = |attempt, owner| Transition::RunHere {
            attempt,
            owner,
            driver: ("http://c1", 100),
        };
        let handed = |attempt, owner| Transition::HandedTo {
            attempt,
            owner,
            driver: ("http://w1", 7),
        };
        // The old owner, with its attempt or the new one, acts on nothing.
        for attempt in [0, 1] {
            assert!(!run_here(attempt, (1, 100)).apply(&mut r.clone()));
            assert!(!handed(attempt, (1, 100)).apply(&mut r.clone()));
        }
        // Nor does a restarted one (same id, a later start).
        let mut restarted = queued();
        assert!(!run_here(0, (1, 150)).apply(&mut restarted));
        assert!(
            !handed(0, (2, 200)).apply(&mut r.clone()),
            "the old attempt"
        );
        assert!(handed(1, (2, 200)).apply(&mut r));
        assert_eq!(
            (r.state, r.driver_url.as_str()),
            (QueryState::Running, "http://w1")
        );
    }

    #[test]
    fn admission_is_recorded_once_by_the_owner_and_an_admitted_query_can_be_adopted() {
        let mut r = queued();
        let admitted = |attempt, owner| Transition::Admitted { attempt, owner };
        assert!(
            !admitted(0, (1, 50)).apply(&mut r.clone()),
            "an earlier start"
        );
        assert!(
            !admitted(1, (1, 100)).apply(&mut r.clone()),
            "another attempt"
        );
        assert!(admitted(0, (1, 100)).apply(&mut r));
        assert_eq!(r.state, QueryState::Dispatching);
        assert!(!admitted(0, (1, 100)).apply(&mut r.clone()), "once");
        // Its owner died while dispatching: adopted as the next attempt, it queues again.
        let mut adopted = r.clone();
        assert!(Transition::Adopted {
            from: (1, 100),
            owner: (2, 200)
        }
        .apply(&mut adopted));
        assert_eq!((adopted.state, adopted.attempt), (QueryState::Queued, 1));
        // Or it runs.
        assert!(Transition::RunHere {
            attempt: 0,
            owner: (1, 100),
            driver: ("http://c1", 100)
        }
        .apply(&mut r));
        assert_eq!(r.state, QueryState::Running);
    }

    #[test]
    fn a_stale_attempt_or_driver_cannot_end_or_retry_a_query() {
        let mut r = queued();
        assert!(Transition::RunHere {
            attempt: 0,
            owner: (1, 100),
            driver: ("http://c1", 100)
        }
        .apply(&mut r));
        assert!(Transition::Retried {
            attempt: 0,
            driver_url: "http://c1",
            owner: (2, 200)
        }
        .apply(&mut r));
        assert_eq!(
            (r.attempt, r.coordinator, r.state),
            (1, 2, QueryState::Queued)
        );
        let outcome = Outcome {
            rows: 1,
            bytes: 1,
            pages: 1,
            error: None,
            spool: None,
        };
        let ended = |attempt, driver_url| Transition::Ended {
            attempt,
            driver_url,
            outcome: &outcome,
        };
        assert!(
            !ended(0, "http://c1").apply(&mut r.clone()),
            "the old attempt's end"
        );
        assert!(
            !ended(1, "http://c1").apply(&mut r.clone()),
            "the old driver"
        );
        assert!(Transition::RunHere {
            attempt: 1,
            owner: (2, 200),
            driver: ("http://c2", 200)
        }
        .apply(&mut r));
        assert!(!ended(0, "http://c2").apply(&mut r.clone()));
        assert!(ended(1, "http://c2").apply(&mut r));
        assert_eq!(r.state, QueryState::Finished);
        assert!(
            !ended(1, "http://c2").apply(&mut r),
            "an end is recorded once"
        );
    }

    #[test]
    fn a_query_that_delivered_rows_is_never_run_again() {
        let mut r = queued();
        assert!(Transition::HandedTo {
            attempt: 0,
            owner: (1, 100),
            driver: ("http://w1", 7)
        }
        .apply(&mut r));
        assert!(Transition::Delivered {
            attempt: 0,
            driver_url: "http://w1"
        }
        .apply(&mut r));
        assert!(!Transition::Retried {
            attempt: 0,
            driver_url: "http://w1",
            owner: (2, 200)
        }
        .apply(&mut r));
        let error = crate::protocol::errors::driver_lost("gone");
        assert!(Transition::DriverLost {
            attempt: 0,
            error: &error
        }
        .apply(&mut r));
        assert_eq!(r.state, QueryState::Failed);
    }

    #[test]
    fn a_settled_write_whose_last_page_died_answers_alone() {
        let mut r = queued();
        r.state = QueryState::Finished;
        r.driver_url = "http://w1".into();
        r.pages = 1;
        let outcome = Outcome {
            rows: 1,
            bytes: 0,
            pages: 0,
            error: None,
            spool: None,
        };
        let settled = Transition::WriteSettled {
            attempt: 0,
            outcome: &outcome,
        };
        assert!(settled.apply(&mut r));
        assert_eq!((r.state, r.pages, r.rows), (QueryState::Finished, 0, 1));
        assert!(!settled.apply(&mut r), "settled once");
    }
    fn progress(driver: &str, incarnation: u64, rows: u64) -> ProgressReport {
        ProgressReport {
            query_id: "q".into(),
            attempt: 0,
            driver_url: driver.into(),
            driver_incarnation: incarnation,
            state: shoal_engine::drive::DriveState::Running,
            rows,
            bytes: rows,
            pages: 0,
            elapsed_ms: 1,
            error: None,
            unreachable: Vec::new(),
            spool: None,
        }
    }

    #[test]
    fn only_the_driver_the_record_names_reports_and_one_that_did_not_take_it_is_let_go() {
        let mut r = queued();
        let handed = |url| Transition::HandedTo {
            attempt: 0,
            owner: (1, 100),
            driver: (url, 7),
        };
        // Before the driver is named, no driver acts on the record.
        assert!(!Transition::Progress(&progress("http://w1", 7, 5)).apply(&mut r.clone()));
        assert!(handed("http://w1").apply(&mut r));
        assert!(!handed("http://w2").apply(&mut r.clone()), "named once");
        assert!(
            !Transition::Progress(&progress("http://w2", 9, 5)).apply(&mut r.clone()),
            "another driver"
        );
        assert!(
            !Transition::Progress(&progress("http://w1", 8, 5)).apply(&mut r.clone()),
            "a later start of the named driver"
        );
        let outcome = Outcome {
            rows: 1,
            bytes: 1,
            pages: 1,
            error: None,
            spool: None,
        };
        assert!(!Transition::Ended {
            attempt: 0,
            driver_url: "http://w2",
            outcome: &outcome
        }
        .apply(&mut r.clone()));
        // The drive request failed: the query is taken back, and goes to another worker.
        let not_taken = |url| Transition::NotTaken {
            attempt: 0,
            driver: (url, 7),
            back_to: QueryState::Queued,
        };
        let mut taken_back = r.clone();
        assert!(!not_taken("http://w2").apply(&mut taken_back.clone()));
        assert!(not_taken("http://w1").apply(&mut taken_back));
        assert_eq!(
            (taken_back.state, taken_back.driver_url.as_str()),
            (QueryState::Queued, "")
        );
        assert!(handed("http://w2").apply(&mut taken_back));
        // Unless it reported rows meanwhile: then it has the query.
        assert!(Transition::Progress(&progress("http://w1", 7, 5)).apply(&mut r));
        assert!(!not_taken("http://w1").apply(&mut r));
        assert_eq!((r.rows, r.driver_url.as_str()), (5, "http://w1"));
    }
}
