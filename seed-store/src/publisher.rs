//! Keeps a member's seed fresh: rewrites it every heartbeat with an incremented counter and
//! removes it on clean shutdown.

use std::time::{SystemTime, UNIX_EPOCH};

use shoal_storage::StorageError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::seed::{Seed, SeedStore};

/// A running publisher; [`SeedPublisher::stop`] removes the seed file.
pub struct SeedPublisher {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl SeedPublisher {
    /// Publish `seed` now and keep refreshing it.
    pub async fn start(store: SeedStore, mut seed: Seed) -> Result<Self, StorageError> {
        store.publish(&seed).await?;
        tracing::info!(name = %store.name_of(seed.role, seed.id), "published seed");
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(store.config().heartbeat);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stopped.changed() => break,
                }
                seed.heartbeat += 1;
                // A refresh slower than the heartbeat timeout is of no use to readers any more.
                let patience = store.config().heartbeat_timeout;
                let refresh = tokio::time::timeout(patience, store.publish(&seed));
                match refresh.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot refresh the seed"),
                    Err(_) => {
                        tracing::warn!("the seed refresh took longer than the heartbeat timeout")
                    }
                }
            }
            if let Err(e) = store.remove(seed.role, seed.id).await {
                tracing::warn!(error = %e, "cannot remove the seed file");
            } else {
                tracing::info!("removed seed");
            }
        });
        Ok(SeedPublisher { stop, task })
    }

    /// Stop refreshing and remove the seed file.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
