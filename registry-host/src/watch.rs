//! `taskreg watch`: an initial sync, then the catalogue kept current until stopped.
//!
//! Local sources (folders, archives) are followed with `notify`, debounced by
//! `notify-debouncer-full`: an editor's write-then-rename, a bulk copy or a storm of
//! changes becomes one run. Remote sources are polled every `poll_interval`, and every
//! source is rescanned every `full_rescan_interval` as a backstop for lost events.
//!
//! Every trigger runs a sync of all sources. That keeps the conflict rules exact (a
//! partial run would not see the other sources' offers at their priority) and costs
//! little: unchanged tasks are not loaded, an unchanged HTTP registry answers `304`.
//! SIGINT or SIGTERM ends the loop after the run in flight has been applied.

use crate::store::Store;
use crate::sync::{SyncOptions, SyncReport, sync};
use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use registry_core::{ConflictStrategy, Source};
use std::path::{Component, Path};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Quiet time before changes are acted on.
    pub debounce: Duration,
    /// How often sources without a local path are polled.
    pub poll_interval: Duration,
    /// How often every source is rescanned whatever the events said.
    pub full_rescan_interval: Duration,
    pub sync: SyncOptions,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_millis(100),
            poll_interval: Duration::from_secs(30),
            full_rescan_interval: Duration::from_secs(600),
            sync: SyncOptions::default(),
        }
    }
}

/// Why a run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Start,
    Changes,
    Poll,
    FullRescan,
}

/// Watches until `shutdown` resolves; `on_run` hears about every run.
pub async fn watch(
    store: &mut Store,
    sources: &[Box<dyn Source>],
    strategy: &dyn ConflictStrategy,
    options: &WatchOptions,
    shutdown: impl std::future::Future<Output = ()>,
    mut on_run: impl FnMut(Trigger, &Result<SyncReport, crate::sync::SyncError>),
) -> anyhow::Result<()> {
    let (events, mut changes) = tokio::sync::mpsc::unbounded_channel::<DebounceEventResult>();
    let mut debouncer = new_debouncer(options.debounce, None, move |result: DebounceEventResult| {
        let _ = events.send(result);
    })?;
    let mut watched = Vec::new();
    // Events carry absolute paths: compare them with absolute roots.
    for path in sources
        .iter()
        .filter_map(|s| s.watch_path())
        .map(|p| std::path::absolute(&p).unwrap_or(p))
    {
        // An archive is watched through its folder: editors and copies replace the file.
        let target = if path.is_file() {
            path.parent().map(Path::to_path_buf).unwrap_or(path.clone())
        } else {
            path.clone()
        };
        match debouncer.watch(&target, RecursiveMode::Recursive) {
            Ok(()) => watched.push(path),
            Err(e) => tracing::warn!(
                "cannot watch {}: {e}; it is covered by the periodic rescan",
                target.display()
            ),
        }
    }
    let has_remote = sources.iter().any(|s| s.watch_path().is_none());

    let first = sync(store, sources, strategy, &options.sync).await;
    on_run(Trigger::Start, &first);
    first?;

    let mut poll = tokio::time::interval(options.poll_interval);
    let mut full = tokio::time::interval(options.full_rescan_interval);
    poll.reset();
    full.reset();
    tokio::pin!(shutdown);
    loop {
        let trigger = tokio::select! {
            // A signal that came during the last run ends the loop before anything else.
            biased;
            _ = &mut shutdown => break,
            Some(result) = changes.recv() => {
                let mut relevant = matters(&result, &watched);
                // Coalesce whatever else arrived meanwhile into the same run.
                while let Ok(more) = changes.try_recv() {
                    relevant |= matters(&more, &watched);
                }
                if !relevant {
                    continue;
                }
                Trigger::Changes
            }
            _ = poll.tick(), if has_remote => Trigger::Poll,
            _ = full.tick() => Trigger::FullRescan,
        };
        let result = sync(store, sources, strategy, &options.sync).await;
        on_run(trigger, &result);
    }
    drop(debouncer);
    Ok(())
}

/// Whether debounced events touch a watched path outside the ignored ones. Watcher errors
/// (an overflowed queue, the platform's watch limit) count: the run rescans everything.
fn matters(result: &DebounceEventResult, watched: &[std::path::PathBuf]) -> bool {
    match result {
        Err(errors) => {
            for error in errors {
                tracing::warn!("file watcher: {error}; rescanning everything");
            }
            true
        }
        Ok(events) => events.iter().any(|event| {
            // Opening and reading are not changes: our own scan opens every folder, and
            // counting that would make each run trigger the next.
            let changes = !matches!(event.kind, EventKind::Access(_) | EventKind::Other);
            event.need_rescan()
                || (changes
                    && event
                        .paths
                        .iter()
                        .any(|path| watched.iter().any(|root| concerns(root, path))))
        }),
    }
}

/// Whether a change at `path` concerns the source at `root` (a folder, or an archive in a
/// watched folder). Only the part below the root is judged, so a root that itself sits in
/// a hidden folder is still followed.
fn concerns(root: &Path, path: &Path) -> bool {
    if root.is_file() || root.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip")) {
        return path == root;
    }
    match path.strip_prefix(root) {
        Ok(relative) => !is_ignored(relative),
        // The root itself, or a folder above it, was moved or removed.
        Err(_) => root.starts_with(path),
    }
}

/// Editor droppings and hidden files: a change to them is not a change to a task.
pub fn is_ignored(path: &Path) -> bool {
    let hidden = path
        .components()
        .any(|c| matches!(c, Component::Normal(n) if n.to_string_lossy().starts_with('.') || n == "node_modules"));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    hidden
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".tmp")
        || name == "4913" // vim's write probe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_part_below_the_root_is_judged() {
        let root = Path::new("/home/me/.config/tasks");
        assert!(concerns(root, Path::new("/home/me/.config/tasks/a/main.js")));
        assert!(!concerns(root, Path::new("/home/me/.config/tasks/.git/index")));
        assert!(concerns(root, Path::new("/home/me/.config")), "the root's parent moved");
        assert!(!concerns(root, Path::new("/home/me/other/main.js")));
    }

    #[test]
    fn editor_droppings_and_hidden_paths_are_ignored() {
        for ignored in [
            "/t/.git/index",
            "/t/a/.main.js.swp",
            "/t/a/main.js~",
            "/t/a/4913",
            "/t/node_modules/x/metadata.json",
        ] {
            assert!(is_ignored(Path::new(ignored)), "{ignored}");
        }
        for kept in ["/t/a/main.js", "/t/a/tests/one.json", "/t/archive.zip"] {
            assert!(!is_ignored(Path::new(kept)), "{kept}");
        }
    }
}
