//! A long-lived process's row in `processes`: written when it starts, refreshed every
//! [`PROCESS_REPORT_INTERVAL`] and after each run it applies, removed when it ends. It has
//! a connection of its own, so a long run does not make the process look gone.

use crate::cache::CheckCache;
use crate::store::{
    DatabaseUrl, PROCESS_REPORT_INTERVAL, PROCESS_STALE_AFTER, ProcessIdentity, ProcessRole, ProcessStatus, Store,
    now_millis,
};
use std::sync::Arc;
use tokio::sync::{Notify, oneshot};

/// The running report of one process in one role; [`Presence::end`] removes its row.
pub(crate) struct Presence {
    nudge: Arc<Notify>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Presence {
    /// Starts reporting `identity` in `role` to the catalogue at `database`. A catalogue
    /// that cannot be written (read-only) gets no row; the process runs all the same.
    pub(crate) fn start(
        database: DatabaseUrl,
        identity: ProcessIdentity,
        role: ProcessRole,
        cache: Option<Arc<CheckCache>>,
    ) -> Presence {
        let nudge = Arc::new(Notify::new());
        let (stop, mut stopped) = oneshot::channel();
        let nudged = nudge.clone();
        let task = tokio::spawn(async move {
            let mut store = match Store::open(&database).await {
                Ok(store) => store,
                Err(e) => {
                    tracing::debug!("this process is not listed in `taskreg status`: {e}");
                    return;
                }
            };
            let mut ticks = tokio::time::interval(PROCESS_REPORT_INTERVAL);
            loop {
                report(&mut store, &identity, role, cache.as_deref()).await;
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = ticks.tick() => {}
                    () = nudged.notified() => {}
                }
            }
            if let Err(e) = store.forget_process(&identity.id, role).await {
                tracing::debug!("cannot remove this process from `taskreg status`: {e}");
            }
        });
        Presence {
            nudge,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Reports now (after a run, so that `status` shows the cache as it is).
    pub(crate) fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// Removes the row and waits until it is gone.
    pub(crate) async fn end(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        // Not ended (the future holding it was dropped): stop the reports; the row ages out.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn report(store: &mut Store, identity: &ProcessIdentity, role: ProcessRole, cache: Option<&CheckCache>) {
    let now = now_millis();
    let row = ProcessStatus {
        process_id: identity.id.clone(),
        role,
        host: identity.host.clone(),
        pid: identity.pid,
        started_at: identity.started_at,
        updated_at: now,
        cache_hits: cache.map_or(0, |c| c.hits() as i64),
        cache_misses: cache.map_or(0, |c| c.misses() as i64),
        cache_entries: cache.map_or(0, |c| c.entries() as i64),
    };
    let stale_before = now - PROCESS_STALE_AFTER.as_millis() as i64;
    if let Err(e) = store.record_process(&row, stale_before).await {
        tracing::warn!("cannot record this process in the catalogue's status: {e}");
    }
}
