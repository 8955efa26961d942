//! Watches: every change under a prefix from a revision, in order, exactly once. History comes
//! from the retained event key space, then live events from the apply path's broadcast.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::{broadcast, mpsc};

use crate::error::{StoreError, StoreResult};
use crate::state_machine::SmShared;
use crate::types::Event;

const LIVE_CAPACITY: usize = 4096;
const STREAM_CAPACITY: usize = 1024;

/// What the apply path publishes: the events of one applied batch, or a reset after a snapshot
/// replaced the whole state (history before it is gone).
#[derive(Debug, Clone)]
pub(crate) enum Published {
    Events(Arc<Vec<Event>>),
    Reset { revision: u64 },
}

/// Fan-out of applied events to live watchers.
pub(crate) struct WatchHub {
    tx: broadcast::Sender<Published>,
}

impl WatchHub {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(LIVE_CAPACITY);
        WatchHub { tx }
    }

    pub fn publish(&self, events: Vec<Event>) {
        if !events.is_empty() {
            let _ = self.tx.send(Published::Events(Arc::new(events)));
        }
    }

    pub fn reset(&self, revision: u64) {
        let _ = self.tx.send(Published::Reset { revision });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.tx.subscribe()
    }

    /// Watchers alive now.
    pub fn watchers(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// A stream of events under one prefix. Ends with an error if the watch cannot continue without
/// a gap (its history was compacted or replaced by a snapshot); dropping it stops the watch.
pub struct WatchStream {
    rx: mpsc::Receiver<StoreResult<Event>>,
}

impl Stream for WatchStream {
    type Item = StoreResult<Event>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Start a watch of `prefix` delivering events with revision `from_revision` and later;
/// `from_revision == 0` means only changes after now.
pub(crate) fn start(
    sm: Arc<SmShared>,
    prefix: String,
    from_revision: u64,
) -> StoreResult<WatchStream> {
    let live = sm.hub.subscribe();
    let current = sm.applied_revision();
    let start = if from_revision == 0 {
        current + 1
    } else {
        from_revision
    };
    let oldest = sm.oldest_event_revision()?;
    if start < oldest && start <= current {
        return Err(StoreError::Compacted {
            requested: start,
            oldest,
        });
    }
    let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
    let watcher = Watcher {
        sm,
        prefix,
        next: start,
        tx,
    };
    tokio::spawn(watcher.run(live, current));
    Ok(WatchStream { rx })
}

struct Watcher {
    sm: Arc<SmShared>,
    prefix: String,
    /// The lowest revision not yet delivered.
    next: u64,
    tx: mpsc::Sender<StoreResult<Event>>,
}

impl Watcher {
    async fn run(mut self, mut live: broadcast::Receiver<Published>, mut stored_upto: u64) {
        loop {
            if self.deliver_stored(stored_upto).await.is_err() {
                return;
            }
            match self.follow_live(&mut live).await {
                LiveEnd::Lagged => stored_upto = self.sm.applied_revision(),
                LiveEnd::Finished => return,
            }
        }
    }

    /// Deliver retained events from `self.next` up to `upto`.
    async fn deliver_stored(&mut self, upto: u64) -> Result<(), ()> {
        if self.next > upto {
            return Ok(());
        }
        let events = match self.sm.events_between(self.next, upto) {
            Ok(events) => events,
            Err(e) => {
                let _ = self.tx.send(Err(e)).await;
                return Err(());
            }
        };
        for event in events {
            self.send(event).await?;
        }
        self.next = self.next.max(upto + 1);
        Ok(())
    }

    async fn follow_live(&mut self, live: &mut broadcast::Receiver<Published>) -> LiveEnd {
        loop {
            // A dropped stream ends its watcher at once, also when nothing under its prefix
            // changes any more (the watcher would otherwise take every applied batch forever).
            let received = tokio::select! {
                _ = self.tx.closed() => return LiveEnd::Finished,
                received = live.recv() => received,
            };
            match received {
                Ok(Published::Events(events)) => {
                    for event in events.iter() {
                        if event.revision() >= self.next && self.send(event.clone()).await.is_err()
                        {
                            return LiveEnd::Finished;
                        }
                    }
                    if let Some(last) = events.last() {
                        self.next = self.next.max(last.revision() + 1);
                    }
                }
                Ok(Published::Reset { revision }) => {
                    let error = StoreError::Compacted {
                        requested: self.next,
                        oldest: revision + 1,
                    };
                    let _ = self.tx.send(Err(error)).await;
                    return LiveEnd::Finished;
                }
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::debug!(skipped, prefix = %self.prefix, "watch lagged; reading retained events");
                    return LiveEnd::Lagged;
                }
                Err(broadcast::error::RecvError::Closed) => return LiveEnd::Finished,
            }
        }
    }

    async fn send(&mut self, event: Event) -> Result<(), ()> {
        if !event.kv.key.starts_with(&self.prefix) {
            return Ok(());
        }
        self.tx.send(Ok(event)).await.map_err(|_| ())
    }
}

enum LiveEnd {
    Lagged,
    Finished,
}
