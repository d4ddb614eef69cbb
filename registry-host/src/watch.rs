//! `taskreg watch`: an initial sync, then the catalogue kept current until stopped.
//!
//! Local sources (folders, archives) are followed with `notify`, debounced by
//! `notify-debouncer-full`: an editor's write-then-rename, a bulk copy or a storm of
//! changes becomes one run. That run rescans only the folders the changes concern
//! ([`Source::scan_changed`]); every other source is offered as stored, so conflicts are
//! still decided with every source at its priority. Remote sources are polled, each at its
//! own `poll_interval`; every source is rescanned whole every `full_rescan_interval` as a
//! backstop for lost events, and whenever the watcher reports an overflow.
//!
//! A source whose scan fails keeps its tasks and is retried with exponential backoff
//! (1 s doubling up to its poll interval) until it answers again.
//! SIGINT or SIGTERM ends the loop after the run in flight has been applied.

use crate::store::{ScanStatus, Store};
use crate::sync::{Rescan, SyncOptions, SyncReport, sync_rescan};
use backon::{BackoffBuilder, ExponentialBuilder};
use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use registry_core::{ConflictStrategy, Source};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

/// How `watch` reacts and how often it polls.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Quiet time before changes are acted on.
    pub debounce: Duration,
    /// How often sources without a local path are polled, unless `poll_intervals` names them.
    pub poll_interval: Duration,
    /// A source's own `poll_interval`, by source name.
    pub poll_intervals: HashMap<String, Duration>,
    /// How often every source is rescanned whatever the events said.
    pub full_rescan_interval: Duration,
    /// File changes that do not start a run.
    pub ignore: IgnoreRules,
    /// How each run loads, checks and plans.
    pub sync: SyncOptions,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_millis(100),
            poll_interval: Duration::from_secs(30),
            poll_intervals: HashMap::new(),
            full_rescan_interval: Duration::from_secs(600),
            ignore: IgnoreRules::default(),
            sync: SyncOptions::default(),
        }
    }
}

impl WatchOptions {
    fn poll_interval_of(&self, source: &str) -> Duration {
        self.poll_intervals.get(source).copied().unwrap_or(self.poll_interval)
    }
}

/// Why a run was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The initial sync.
    Start,
    /// Files changed.
    Changes,
    /// A remote source's poll interval passed.
    Poll,
    /// A source that failed is tried again.
    Retry,
    /// The periodic rescan of everything.
    FullRescan,
}

/// When each source is next scanned on a timer: remote sources at their poll interval,
/// failed ones sooner, with backoff.
struct Timers {
    due: Vec<Option<Instant>>,
    retrying: Vec<Option<backon::ExponentialBackoff>>,
    intervals: Vec<Option<Duration>>,
}

impl Timers {
    fn new(sources: &[Box<dyn Source>], options: &WatchOptions) -> Self {
        let intervals: Vec<Option<Duration>> = sources
            .iter()
            .map(|s| s.watch_path().is_none().then(|| options.poll_interval_of(s.name())))
            .collect();
        let now = Instant::now();
        Timers {
            due: intervals.iter().map(|i| i.map(|i| now + i)).collect(),
            retrying: sources.iter().map(|_| None).collect(),
            intervals,
        }
    }

    fn next(&self) -> Option<Instant> {
        self.due.iter().flatten().min().copied()
    }

    /// The sources due now, as a run's rescans, and whether any is a retry.
    fn take_due(&mut self) -> (Vec<Rescan>, bool) {
        let now = Instant::now();
        let mut retry = false;
        let rescans = self
            .due
            .iter_mut()
            .zip(&self.retrying)
            .map(|(due, retrying)| match due {
                Some(at) if *at <= now => {
                    retry |= retrying.is_some();
                    *due = None;
                    Rescan::Whole
                }
                _ => Rescan::Skip,
            })
            .collect();
        (rescans, retry)
    }

    /// Schedules the next scan of each source that `report` scanned.
    fn after(&mut self, sources: &[Box<dyn Source>], report: &SyncReport) {
        let now = Instant::now();
        for scanned in &report.sources {
            let Some(i) = sources.iter().position(|s| s.name() == scanned.name) else {
                continue;
            };
            let interval = self.intervals[i];
            if scanned.status.is_ok() {
                self.retrying[i] = None;
                self.due[i] = interval.map(|i| now + i);
            } else if scanned.status == ScanStatus::Misconfigured {
                // Retrying sooner cannot help: the next poll (or a change to the source's
                // files) tries again, and the failure was reported with this run.
                self.retrying[i] = None;
                self.due[i] = interval.map(|i| now + i);
            } else {
                let cap = interval.unwrap_or(Duration::from_secs(300));
                let backoff = self.retrying[i].get_or_insert_with(|| {
                    ExponentialBuilder::default()
                        .with_min_delay(Duration::from_secs(1))
                        .with_max_delay(cap)
                        .without_max_times()
                        .build()
                });
                let delay = backoff.next().unwrap_or(cap);
                tracing::info!(source = scanned.name, "retrying in {delay:?}");
                self.due[i] = Some(now + delay);
            }
        }
    }
}

/// Why `watch` stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The platform's file watcher could not be started.
    #[error("cannot follow file changes: {0}")]
    Notify(#[from] notify_debouncer_full::notify::Error),
    /// The initial sync failed (later runs that fail are reported to `on_run` and retried).
    #[error(transparent)]
    Sync(#[from] crate::sync::SyncError),
}

/// Watches until `shutdown` resolves; `on_run` hears about every run.
pub async fn watch(
    store: &mut Store,
    sources: &[Box<dyn Source>],
    strategy: &dyn ConflictStrategy,
    options: &WatchOptions,
    shutdown: impl std::future::Future<Output = ()>,
    mut on_run: impl FnMut(Trigger, &Result<SyncReport, crate::sync::SyncError>),
) -> Result<(), WatchError> {
    let (events, mut changes) = tokio::sync::mpsc::unbounded_channel::<DebounceEventResult>();
    let mut debouncer = new_debouncer(options.debounce, None, move |result: DebounceEventResult| {
        let _ = events.send(result);
    })?;
    // Events carry absolute paths: compare them with absolute roots.
    let mut watched: Vec<Option<PathBuf>> = Vec::with_capacity(sources.len());
    for path in sources
        .iter()
        .map(|s| s.watch_path().map(|p| std::path::absolute(&p).unwrap_or(p)))
    {
        let Some(path) = path else {
            watched.push(None);
            continue;
        };
        // An archive is watched through its folder: editors and copies replace the file.
        let target = if path.is_file() {
            path.parent().map(Path::to_path_buf).unwrap_or(path.clone())
        } else {
            path.clone()
        };
        match debouncer.watch(&target, RecursiveMode::Recursive) {
            Ok(()) => watched.push(Some(path)),
            Err(e) => {
                tracing::warn!(
                    "cannot watch {}: {e}; it is covered by the periodic rescan",
                    target.display()
                );
                watched.push(None);
            }
        }
    }
    let all = vec![Rescan::Whole; sources.len()];
    let mut timers = Timers::new(sources, options);

    tokio::pin!(shutdown);
    let first = sync_rescan(store, sources, &all, strategy, &options.sync).await;
    on_run(Trigger::Start, &first);
    timers.after(sources, &first?);

    let mut full = tokio::time::interval(options.full_rescan_interval);
    full.reset();
    loop {
        let next_timer = timers.next();
        let (trigger, rescans) = tokio::select! {
            // A signal that came during the last run ends the loop before anything else.
            biased;
            _ = &mut shutdown => break,
            Some(result) = changes.recv() => {
                let mut changed = ChangedPaths::new(sources.len());
                changed.add(&result, &watched, &options.ignore);
                // Coalesce whatever else arrived meanwhile into the same run.
                while let Ok(more) = changes.try_recv() {
                    changed.add(&more, &watched, &options.ignore);
                }
                match changed.rescans(&watched) {
                    Some(rescans) => (Trigger::Changes, rescans),
                    None => continue,
                }
            }
            _ = sleep_until(next_timer), if next_timer.is_some() => {
                let (rescans, retry) = timers.take_due();
                (if retry { Trigger::Retry } else { Trigger::Poll }, rescans)
            }
            _ = full.tick() => (Trigger::FullRescan, all.clone()),
        };
        let result = sync_rescan(store, sources, &rescans, strategy, &options.sync).await;
        on_run(trigger, &result);
        if let Ok(report) = &result {
            timers.after(sources, report);
        }
    }
    drop(debouncer);
    Ok(())
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The paths that debounced events changed, per watched source.
struct ChangedPaths {
    per_source: Vec<Vec<PathBuf>>,
    /// The watcher lost events: every watched source is rescanned whole.
    everything: bool,
}

impl ChangedPaths {
    fn new(sources: usize) -> Self {
        ChangedPaths {
            per_source: vec![Vec::new(); sources],
            everything: false,
        }
    }

    /// Takes in one debounced batch. Watcher errors (an overflowed queue, the platform's
    /// watch limit) make the run rescan everything.
    fn add(&mut self, result: &DebounceEventResult, watched: &[Option<PathBuf>], ignore: &IgnoreRules) {
        let events = match result {
            Err(errors) => {
                for error in errors {
                    tracing::warn!("file watcher: {error}; rescanning every watched source");
                }
                self.everything = true;
                return;
            }
            Ok(events) => events,
        };
        for event in events {
            if event.need_rescan() {
                tracing::warn!("file watcher lost events; rescanning every watched source");
                self.everything = true;
            }
            // Opening and reading are not changes: our own scan opens every folder, and
            // counting that would make each run trigger the next.
            if matches!(event.kind, EventKind::Access(_) | EventKind::Other) {
                continue;
            }
            for path in &event.paths {
                for (i, root) in watched.iter().enumerate() {
                    if let Some(root) = root
                        && concerns(root, path, ignore)
                        && !self.per_source[i].contains(path)
                    {
                        self.per_source[i].push(path.clone());
                    }
                }
            }
        }
    }

    /// The run these changes call for, or `None` when they concern no source.
    /// Remote sources are left to their polls, even when the watcher lost events.
    fn rescans(self, watched: &[Option<PathBuf>]) -> Option<Vec<Rescan>> {
        let rescans: Vec<Rescan> = self
            .per_source
            .into_iter()
            .zip(watched)
            .map(|(paths, root)| {
                if root.is_none() {
                    Rescan::Skip
                } else if self.everything {
                    Rescan::Whole
                } else if paths.is_empty() {
                    Rescan::Skip
                } else {
                    Rescan::Changed(paths)
                }
            })
            .collect();
        rescans.iter().any(|r| *r != Rescan::Skip).then_some(rescans)
    }
}

/// Whether a change at `path` concerns the source at `root` (a folder, or an archive in a
/// watched folder). Only the part below the root is judged, so a root that itself sits in
/// a hidden folder is still followed.
fn concerns(root: &Path, path: &Path, ignore: &IgnoreRules) -> bool {
    if root.is_file() || root.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip")) {
        return path == root;
    }
    match path.strip_prefix(root) {
        Ok(relative) => !ignore.is_ignored(relative),
        // The root itself, or a folder above it, was moved or removed.
        Err(_) => root.starts_with(path),
    }
}

/// Changes that are not changes to a task: hidden files and folders (`.git/`, an editor's
/// `.main.js.swp`), `node_modules`, editor droppings (`*~`, `*.swp`, `*.tmp`, vim's `4913`
/// probe), and the `[watch] ignore` globs of the config.
#[derive(Debug, Clone)]
pub struct IgnoreRules {
    globs: globset::GlobSet,
}

/// Always ignored; `[watch] ignore` adds to these.
pub const DEFAULT_IGNORE: [&str; 7] = [".*", "node_modules", "*~", "*.swp", "*.swx", "*.tmp", "4913"];

impl Default for IgnoreRules {
    fn default() -> Self {
        IgnoreRules::new(&[]).expect("the default globs are valid")
    }
}

impl IgnoreRules {
    /// The defaults and `extra`, gitignore-style: a glob without `/` matches a name at any
    /// depth, one with `/` matches from the source's root; `*` stops at `/`, `**` does not;
    /// a folder that matches ignores everything below it.
    pub fn new(extra: &[String]) -> Result<Self, globset::Error> {
        let mut builder = globset::GlobSetBuilder::new();
        for pattern in DEFAULT_IGNORE.iter().copied().chain(extra.iter().map(String::as_str)) {
            let pattern = pattern.trim_end_matches('/');
            let anchored = match pattern.strip_prefix('/') {
                Some(rooted) => rooted.to_owned(),
                None if pattern.contains('/') => pattern.to_owned(),
                None => format!("**/{pattern}"),
            };
            builder.add(globset::GlobBuilder::new(&anchored).literal_separator(true).build()?);
        }
        Ok(IgnoreRules {
            globs: builder.build()?,
        })
    }

    /// Whether a change at `relative` (below a source's root) is ignored: the path or one
    /// of the folders it is in matches.
    pub fn is_ignored(&self, relative: &Path) -> bool {
        let mut prefix = PathBuf::new();
        relative.components().any(|component| {
            if let Component::Normal(name) = component {
                prefix.push(name);
                self.globs.is_match(&prefix)
            } else {
                false
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_part_below_the_root_is_judged() {
        let root = Path::new("/home/me/.config/tasks");
        let ignore = IgnoreRules::default();
        assert!(concerns(root, Path::new("/home/me/.config/tasks/a/main.js"), &ignore));
        assert!(!concerns(root, Path::new("/home/me/.config/tasks/.git/index"), &ignore));
        assert!(
            concerns(root, Path::new("/home/me/.config"), &ignore),
            "the root's parent moved"
        );
        assert!(!concerns(root, Path::new("/home/me/other/main.js"), &ignore));
    }

    #[test]
    fn editor_droppings_and_hidden_paths_are_ignored() {
        let ignore = IgnoreRules::default();
        for ignored in [
            ".git/index",
            "a/.main.js.swp",
            "a/main.js~",
            "a/4913",
            "a/main.js.tmp",
            "node_modules/x/metadata.json",
        ] {
            assert!(ignore.is_ignored(Path::new(ignored)), "{ignored}");
        }
        for kept in ["a/main.js", "a/tests/one.json", "archive.zip", "a/4913b"] {
            assert!(!ignore.is_ignored(Path::new(kept)), "{kept}");
        }
    }

    #[test]
    fn configured_globs_match_names_anywhere_or_paths_from_the_root() {
        let ignore = IgnoreRules::new(&["*.bak".into(), "drafts/".into(), "team/*/scratch".into()]).unwrap();
        for ignored in [
            "a/main.js.bak",
            "drafts/t/main.js",
            "x/drafts/t/main.js",
            "team/a/scratch/t/main.js",
        ] {
            assert!(ignore.is_ignored(Path::new(ignored)), "{ignored}");
        }
        for kept in ["a/main.js", "team/a/b/scratch/main.js", "drafts-2/t/main.js"] {
            assert!(!ignore.is_ignored(Path::new(kept)), "{kept}");
        }
        assert!(IgnoreRules::new(&["a[".into()]).is_err());
    }
}
