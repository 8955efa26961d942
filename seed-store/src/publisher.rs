//! Keeps a member's seed file fresh: rewrites it every heartbeat with an incremented counter and
//! removes it on clean shutdown.

use std::time::{SystemTime, UNIX_EPOCH};

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
    pub fn start(store: SeedStore, mut seed: Seed) -> std::io::Result<Self> {
        store.publish(&seed)?;
        tracing::info!(path = %store.path_of(seed.role, seed.id).display(), "published seed");
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
                let publishing = store.clone();
                let copy = seed.clone();
                let written = tokio::task::spawn_blocking(move || publishing.publish(&copy)).await;
                match written {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot refresh the seed file"),
                    Err(e) => tracing::warn!(error = %e, "seed refresh task failed"),
                }
            }
            if let Err(e) = store.remove(seed.role, seed.id) {
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
