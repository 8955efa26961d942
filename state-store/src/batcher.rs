//! Group commit: transactions that arrive together are packed into one log entry (one Raft
//! round trip, one fsync), with a few batches in flight at once.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::{StoreError, StoreResult};
use crate::forward::Forwarder;
use crate::types::{Command, TxnRequest, TxnResponse};

const QUEUE_CAPACITY: usize = 16 * 1024;

struct Pending {
    txn: TxnRequest,
    reply: oneshot::Sender<StoreResult<TxnResponse>>,
}

#[derive(Clone)]
pub(crate) struct Batcher {
    tx: mpsc::Sender<Pending>,
}

impl Batcher {
    pub fn start(forwarder: Forwarder, max_batch: usize, in_flight: usize) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(forwarder, rx, max_batch.max(1), in_flight.max(1)));
        Batcher { tx }
    }

    pub async fn submit(&self, txn: TxnRequest) -> StoreResult<TxnResponse> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending { txn, reply })
            .await
            .map_err(|_| StoreError::ShuttingDown)?;
        answer.await.map_err(|_| StoreError::ShuttingDown)?
    }
}

async fn run(
    forwarder: Forwarder,
    mut rx: mpsc::Receiver<Pending>,
    max_batch: usize,
    max_in_flight: usize,
) {
    let in_flight = Arc::new(Semaphore::new(max_in_flight));
    while let Some(first) = rx.recv().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        // Everything that queued up while we waited for a free slot joins this batch.
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let forwarder = forwarder.clone();
        tokio::spawn(async move {
            let (txns, replies): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|p| (p.txn, p.reply)).unzip();
            let count = txns.len();
            let result = forwarder.write(Command { txns }).await;
            drop(permit);
            match result {
                Ok(outcome) if outcome.responses.len() == count => {
                    for (reply, response) in replies.into_iter().zip(outcome.responses) {
                        let _ = reply.send(Ok(response));
                    }
                }
                Ok(outcome) => {
                    let message = format!(
                        "{count} transactions produced {} responses",
                        outcome.responses.len()
                    );
                    for reply in replies {
                        let _ = reply.send(Err(StoreError::Raft(message.clone())));
                    }
                }
                Err(error) => {
                    for reply in replies {
                        let _ = reply.send(Err(error.duplicate()));
                    }
                }
            }
        });
    }
}
