//! [`Registry`]: the one entry point a host application embeds, and the `taskreg` CLI uses.
//!
//! A registry owns its catalogue's connections, its sources (built on the first run), its
//! caches and its event stream. Every operation is async and takes `&self`, so one registry
//! can be shared (`Arc<Registry>`) by a server, a watcher and the application's own calls.

mod builder;
mod error;
mod index;
mod validate;

pub use builder::{DEFAULT_DATABASE, RegistryBuilder};
pub use error::RegistryError;
pub use index::{BuiltIndex, IndexDifference};
pub(crate) use validate::load_all;
pub use validate::{Finding, ValidationReport};

use crate::cache::CheckCache;
use crate::events::{RegistryEvent, events_of};
use crate::presence::Presence;
use crate::serve::{ServeOptions, ServeState};
use crate::sources::{SharedSource, SourceBuilder};
use crate::store::{
    ConflictRow, DatabaseUrl, HistoryRow, OriginRef, ProblemRow, ProcessIdentity, ProcessRole, Status, Store,
    StoredTask, VersionSummary,
};
use crate::sync::{SnapshotCache, SyncError, SyncOptions, SyncReport, sync};
use crate::watch::{Trigger, WatchOptions};
use registry_core::{ConflictStrategy, Source, SourceKind, SourceSpec, Validation};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{Mutex, OnceCell, broadcast};

/// Events a subscriber may fall behind by before it misses some.
const EVENT_BUFFER: usize = 1024;

/// A source as added to the builder: a specification built on the first run, or an object
/// the application built.
pub(crate) enum SourceEntry {
    Spec(SourceSpec),
    Object(Arc<dyn Source>),
}

/// The configured sources, built once, with the plugin libraries that were refused.
struct BuiltSources {
    sources: Vec<Box<dyn Source>>,
    refused: Vec<String>,
}

/// Task names per page of [`Registry::list_pages`].
const LIST_PAGE_NAMES: usize = 500;

/// Problems per page of [`Registry::problem_pages`].
const PROBLEMS_PAGE: usize = 1000;

/// Where a paged read is.
enum Cursor<K> {
    Start,
    After(K),
    Done,
}

/// The pages `fetch` answers, each read after the key the one before it ended at, until a
/// page is empty or names no next key.
fn paged<K, T, F, Fut>(fetch: F) -> impl futures::Stream<Item = Result<Vec<T>, RegistryError>>
where
    F: Fn(Option<K>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<K>), RegistryError>>,
{
    futures::stream::try_unfold((Cursor::Start, fetch), |(cursor, fetch)| async move {
        let after = match cursor {
            Cursor::Start => None,
            Cursor::After(key) => Some(key),
            Cursor::Done => return Ok(None),
        };
        let (items, next) = fetch(after).await?;
        if items.is_empty() {
            return Ok(None);
        }
        Ok(Some((items, (next.map_or(Cursor::Done, Cursor::After), fetch))))
    })
}

/// Which versions [`Registry::list`] returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Unavailable versions too (removed from every source, kept for history).
    pub include_unavailable: bool,
}

impl ListFilter {
    /// Available versions only (the default).
    pub fn available() -> Self {
        ListFilter::default()
    }

    /// Every version ever seen.
    pub fn all() -> Self {
        ListFilter {
            include_unavailable: true,
        }
    }
}

/// One stored version in full, with the sources offering it now.
#[derive(Debug, Clone)]
pub struct TaskDetails {
    /// The version as stored: metadata, script, schemas, tests, dates.
    pub task: StoredTask,
    /// Where it is offered now, by source and locator.
    pub origins: Vec<OriginRef>,
}

/// A task registry: sources feeding one catalogue.
///
/// ```no_run
/// # async fn demo() -> Result<(), registry_host::RegistryError> {
/// use registry_host::Registry;
///
/// let registry = Registry::from_config_file("taskreg.toml".as_ref())?.open().await?;
/// let report = registry.sync().await?;
/// println!("{} added, {} problems", report.counts.added, report.problems.len());
/// if let Some(found) = registry.resolve("addition", "^1").await? {
///     println!("addition@^1 is {}", found.task.version);
/// }
/// # Ok(()) }
/// ```
pub struct Registry {
    database: DatabaseUrl,
    /// Reads: `list`, `show`, … Opened with the registry when read-only, else on the first
    /// read (a process that only syncs never opens it).
    reader: OnceCell<Mutex<Store>>,
    /// `sync()`'s connection; `None` when read-only. `watch` and `serve` open their own.
    writer: Option<Mutex<Store>>,
    entries: std::sync::Mutex<Vec<SourceEntry>>,
    built: OnceCell<BuiltSources>,
    plugins: Vec<crate::plugins::PluginLocation>,
    /// The isolated libraries' children, once the sources are built (for `/metrics`).
    plugin_children: Arc<std::sync::OnceLock<Vec<crate::plugins::ChildWatch>>>,
    kinds: Vec<SourceKind>,
    timeouts: std::collections::HashMap<String, std::time::Duration>,
    cache_dir: PathBuf,
    strategy: &'static dyn ConflictStrategy,
    validation: Validation,
    sync_options: SyncOptions,
    watch_options: WatchOptions,
    serve_options: ServeOptions,
    serve_token_file: Option<PathBuf>,
    events: broadcast::Sender<RegistryEvent>,
    /// Who this process is in the catalogue's `processes` (while it watches or serves).
    process: ProcessIdentity,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("database", &self.database.display())
            .field("strategy", &self.strategy.name())
            .field("read_only", &self.writer.is_none())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A builder with every default: the catalogue in `./taskreg.db`, no sources.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// A builder with what the `taskreg.toml` at `path` says.
    pub fn from_config_file(path: &Path) -> Result<RegistryBuilder, RegistryError> {
        RegistryBuilder::from_config(crate::config::Config::load(path)?)
    }

    async fn open(builder: RegistryBuilder) -> Result<Registry, RegistryError> {
        let validation = builder.validation()?;
        let database = DatabaseUrl::parse(&builder.database.0, &builder.database.1)?;
        let reader = OnceCell::new();
        let writer = if builder.read_only {
            let _ = reader.set(Mutex::new(Store::open_for_reading(&database).await?));
            None
        } else {
            // Opening the writer migrates the catalogue.
            Some(Mutex::new(Store::open(&database).await?))
        };
        let keep_between_runs = builder.cache_capacity_bytes > 0 && !builder.read_only;
        let mut sync_options = SyncOptions {
            observer: builder.observer.clone(),
            max_removal_share: builder.max_removal_share,
            allow_mass_removal: builder.allow_mass_removal,
            retire_after: builder.retire_sources_after,
            contents_in_memory: builder.contents_in_memory,
            validation: validation.clone(),
            cache: keep_between_runs.then(|| Arc::new(CheckCache::new(builder.cache_capacity_bytes))),
            snapshot_cache: keep_between_runs.then(|| Arc::new(SnapshotCache::default())),
            signatures: builder.signatures.clone(),
            ..SyncOptions::default()
        };
        if let Some(loads) = builder.concurrency {
            sync_options.concurrency = loads;
        }
        let process = ProcessIdentity::current();
        sync_options.writer = Some(process.id.clone());
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Ok(Registry {
            database,
            reader,
            writer,
            entries: std::sync::Mutex::new(builder.sources),
            built: OnceCell::new(),
            plugins: builder.plugins,
            plugin_children: Arc::default(),
            kinds: builder.kinds,
            timeouts: builder.timeouts,
            cache_dir: builder.cache_dir,
            strategy: builder.strategy,
            validation,
            sync_options,
            watch_options: builder.watch,
            serve_options: builder.serve,
            serve_token_file: builder.serve_token_file,
            events,
            process,
        })
    }

    /// Who this process is in `taskreg status` while it watches or serves: a UUIDv7 made
    /// when the registry was opened, with the host name and process id.
    pub fn process(&self) -> &ProcessIdentity {
        &self.process
    }

    /// The catalogue's database, for messages (any password hidden).
    pub fn database(&self) -> String {
        self.database.display()
    }

    /// The connection reads go through, opened on first use.
    async fn reader(&self) -> Result<tokio::sync::MutexGuard<'_, Store>, RegistryError> {
        let reader = self
            .reader
            .get_or_try_init(|| async { Store::open(&self.database).await.map(Mutex::new) })
            .await?;
        Ok(reader.lock().await)
    }

    /// The cache of checked tasks kept between runs (`None` with a capacity of 0).
    pub fn check_cache(&self) -> Option<&Arc<CheckCache>> {
        self.sync_options.cache.as_ref()
    }

    /// The validation rules every task is checked against.
    pub fn validation(&self) -> &Validation {
        &self.validation
    }

    /// Builds the configured sources (loading plugin libraries) unless done already, and
    /// returns the plugin libraries that were refused, one line each. A source whose kind
    /// a refused library may have provided fails its scans; the others sync.
    ///
    /// ```no_run
    /// # async fn demo(registry: registry_host::Registry) -> Result<(), registry_host::RegistryError> {
    /// for refused in registry.load_sources().await? {
    ///     eprintln!("plugin refused: {refused}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn load_sources(&self) -> Result<Vec<String>, RegistryError> {
        Ok(self.sources().await?.refused.clone())
    }

    async fn sources(&self) -> Result<&BuiltSources, RegistryError> {
        self.built
            .get_or_try_init(|| async {
                let entries = std::mem::take(&mut *self.entries.lock().unwrap_or_else(|e| e.into_inner()));
                let result = self.build_entries(&entries);
                if result.is_err() {
                    // Kept for the next attempt: the error may be fixed by then (a plugin installed).
                    *self.entries.lock().unwrap_or_else(|e| e.into_inner()) = entries;
                }
                result
            })
            .await
    }

    fn build_entries(&self, entries: &[SourceEntry]) -> Result<BuiltSources, RegistryError> {
        let has_specs = entries.iter().any(|e| matches!(e, SourceEntry::Spec(_)));
        let builder = SourceBuilder {
            // No library is loaded for a registry whose sources are all objects.
            plugins: if has_specs {
                crate::plugins::PluginSet::load(&self.plugins)
            } else {
                Default::default()
            },
            kinds: self.kinds.clone(),
            timeouts: self.timeouts.clone(),
            cache_dir: self.cache_dir.clone(),
        };
        let sources = entries
            .iter()
            .map(|entry| match entry {
                SourceEntry::Spec(spec) => builder.build_one(spec),
                SourceEntry::Object(source) => Ok(Box::new(SharedSource(source.clone())) as Box<dyn Source>),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let _ = self.plugin_children.set(builder.plugins.children());
        Ok(BuiltSources {
            sources,
            refused: builder.plugins.refused.iter().map(ToString::to_string).collect(),
        })
    }

    /// Ad-hoc sources for paths: filesystem folders and ZIP archives.
    fn path_sources(&self, paths: &[PathBuf]) -> Result<Vec<Box<dyn Source>>, RegistryError> {
        if paths.is_empty() {
            return Err(RegistryError::NoSources);
        }
        let builder = SourceBuilder {
            kinds: self.kinds.clone(),
            ..SourceBuilder::default()
        };
        Ok(builder.build(&validate::path_specs(paths, &self.validation))?)
    }

    /// Scans every configured source and brings the catalogue up to date in one
    /// transaction. Broken tasks and failing sources are in the report, not errors.
    ///
    /// ```no_run
    /// # async fn demo(registry: registry_host::Registry) -> Result<(), registry_host::RegistryError> {
    /// let report = registry.sync().await?;
    /// for problem in &report.problems {
    ///     eprintln!("{}:{}: {}", problem.source, problem.locator, problem.problem.message);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn sync(&self) -> Result<SyncReport, RegistryError> {
        let built = self.sources().await?;
        if built.sources.is_empty() {
            return Err(RegistryError::NoSources);
        }
        self.run_sync(&built.sources).await
    }

    /// Syncs folders and archives given as paths instead of the configured sources, each
    /// an ad-hoc source named after its absolute path.
    ///
    /// ```no_run
    /// # async fn demo(registry: registry_host::Registry) -> Result<(), registry_host::RegistryError> {
    /// let report = registry.sync_paths(&["examples/tasks".into()]).await?;
    /// println!("{} task(s) added", report.counts.added);
    /// # Ok(()) }
    /// ```
    pub async fn sync_paths(&self, paths: &[PathBuf]) -> Result<SyncReport, RegistryError> {
        let sources = self.path_sources(paths)?;
        self.run_sync(&sources).await
    }

    async fn run_sync(&self, sources: &[Box<dyn Source>]) -> Result<SyncReport, RegistryError> {
        let writer = self.writer.as_ref().ok_or(RegistryError::ReadOnly("sync"))?;
        let mut store = writer.lock().await;
        let report = sync(&mut store, sources, self.strategy, &self.sync_options).await?;
        self.publish(&report);
        Ok(report)
    }

    /// Sends a run's events to every subscriber (having none is not an error).
    fn publish(&self, report: &SyncReport) {
        for event in events_of(&report.changes) {
            let _ = self.events.send(event);
        }
    }

    /// Checks the tasks at `paths` with this registry's rules without touching the
    /// catalogue: what `taskreg validate` prints.
    ///
    /// ```no_run
    /// # async fn demo(registry: registry_host::Registry) -> Result<(), registry_host::RegistryError> {
    /// let report = registry.validate(&["my-task".into()]).await?;
    /// assert!(!report.failed(), "{} error(s)", report.errors());
    /// # Ok(()) }
    /// ```
    pub async fn validate(&self, paths: &[PathBuf]) -> Result<ValidationReport, RegistryError> {
        validate::validate_paths(
            paths,
            &self.validation,
            &self.sync_options.signatures.default,
            &self.kinds,
        )
        .await
    }

    /// Task versions by name, newest version first.
    ///
    /// ```no_run
    /// # async fn demo(registry: registry_host::Registry) -> Result<(), registry_host::RegistryError> {
    /// use registry_host::ListFilter;
    /// for version in registry.list(ListFilter::available()).await? {
    ///     println!("{}@{} from {}", version.name, version.version, version.sources.join(", "));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list(&self, filter: ListFilter) -> Result<Vec<VersionSummary>, RegistryError> {
        Ok(self.reader().await?.list_versions(filter.include_unavailable).await?)
    }

    /// What [`list`](Self::list) answers, a page at a time (up to 500 task names, each with
    /// all its versions): for printing a catalogue of any size in flat memory. Each page is
    /// read by its key, so a write between pages makes no version skipped or repeated.
    ///
    /// ```no_run
    /// # async fn demo(registry: registry_host::Registry) -> Result<(), registry_host::RegistryError> {
    /// use futures::TryStreamExt;
    /// let mut pages = std::pin::pin!(registry.list_pages(registry_host::ListFilter::all()));
    /// while let Some(page) = pages.try_next().await? {
    ///     for version in page {
    ///         println!("{}@{}", version.name, version.version);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn list_pages(
        &self,
        filter: ListFilter,
    ) -> impl futures::Stream<Item = Result<Vec<VersionSummary>, RegistryError>> + Send + '_ {
        paged(move |after: Option<String>| async move {
            let page = self
                .reader()
                .await?
                .list_page(filter.include_unavailable, after.as_deref(), LIST_PAGE_NAMES)
                .await?;
            Ok((page.versions, page.next))
        })
    }

    /// The available versions of one task, newest first (empty when none is).
    ///
    /// ```no_run
    /// # async fn demo(registry: registry_host::Registry) -> Result<(), registry_host::RegistryError> {
    /// let newest = registry.versions("addition").await?.first().map(|v| v.version.clone());
    /// # Ok(()) }
    /// ```
    pub async fn versions(&self, name: &str) -> Result<Vec<VersionSummary>, RegistryError> {
        let mut versions = self.reader().await?.list_versions_of(name).await?;
        versions.retain(|v| v.available);
        Ok(versions)
    }

    /// The newest available version of `name` that matches a semver requirement as Cargo
    /// writes them (`^1.2`, `~1.2.3`, `>=1, <3`, `1.*`); pre-releases match only a
    /// requirement that names one. `None` when nothing matches.
    ///
    /// ```no_run
    /// # async fn demo(registry: registry_host::Registry) -> Result<(), registry_host::RegistryError> {
    /// if let Some(found) = registry.resolve("addition", "^1").await? {
    ///     println!("addition@^1 -> {}", found.task.version);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn resolve(&self, name: &str, requirement: &str) -> Result<Option<TaskDetails>, RegistryError> {
        let requirement = parse_requirement(requirement)?;
        let found = self.reader().await?.resolve(name, &requirement).await?;
        Ok(found.map(|(task, origins)| TaskDetails { task, origins }))
    }

    /// One version in full: `version` exactly (build metadata ignored), or the newest
    /// available one when `None`.
    ///
    /// ```no_run
    /// # async fn demo(registry: registry_host::Registry) -> Result<(), registry_host::RegistryError> {
    /// if let Some(found) = registry.show("addition", Some("1.0.0")).await? {
    ///     println!("{}", found.task.script);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn show(&self, name: &str, version: Option<&str>) -> Result<Option<TaskDetails>, RegistryError> {
        // `1.2.0+build` is version `1.2.0`: build metadata names no other version.
        let version = version.map(|v| registry_core::parse_version(v).map_or_else(|_| v.to_owned(), |v| v.to_string()));
        let found = self.reader().await?.show(name, version.as_deref()).await?;
        Ok(found.map(|(task, origins)| TaskDetails { task, origins }))
    }

    /// Every version of a task ever seen, with availability and dates (empty when the
    /// name was never seen).
    ///
    /// ```no_run
    /// # async fn demo(registry: registry_host::Registry) -> Result<(), registry_host::RegistryError> {
    /// for row in registry.history("addition").await? {
    ///     println!("{} available: {}", row.version, row.available);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn history(&self, name: &str) -> Result<Vec<HistoryRow>, RegistryError> {
        Ok(self.reader().await?.history(name).await?)
    }

    /// The current problems, by source and locator.
    ///
    /// ```no_run
    /// # async fn demo(registry: registry_host::Registry) -> Result<(), registry_host::RegistryError> {
    /// let errors = registry.problems().await?.iter().filter(|p| p.problem.is_error()).count();
    /// # Ok(()) }
    /// ```
    pub async fn problems(&self) -> Result<Vec<ProblemRow>, RegistryError> {
        Ok(self.reader().await?.problems().await?)
    }

    /// What [`problems`](Self::problems) answers, a page at a time (up to 1,000 problems),
    /// for printing every problem of a large catalogue in flat memory.
    pub fn problem_pages(&self) -> impl futures::Stream<Item = Result<Vec<ProblemRow>, RegistryError>> + Send + '_ {
        paged(move |after: Option<crate::store::ProblemKey>| async move {
            let page = self
                .reader()
                .await?
                .problems_page(after.as_ref(), PROBLEMS_PAGE)
                .await?;
            Ok((page.problems, page.next))
        })
    }

    /// The current conflicts: versions offered with different contents, and what the
    /// strategy decided.
    ///
    /// ```no_run
    /// # async fn demo(registry: registry_host::Registry) -> Result<(), registry_host::RegistryError> {
    /// for conflict in registry.conflicts().await? {
    ///     println!("{}@{} decided by {}", conflict.name, conflict.version, conflict.strategy);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn conflicts(&self) -> Result<Vec<ConflictRow>, RegistryError> {
        Ok(self.reader().await?.conflicts().await?)
    }

    /// Retires the source `source` from the catalogue, as if removed from every
    /// configuration past the grace period: its origins go, the versions only it offers go
    /// missing (their history stays), and its status is forgotten. Without `confirmed`,
    /// nothing changes: the report says what would become unavailable. A source that is
    /// still configured somewhere comes back with its next scan.
    ///
    /// ```no_run
    /// # async fn demo(registry: registry_host::Registry) -> Result<(), registry_host::RegistryError> {
    /// let preview = registry.forget("old-share", false).await?;
    /// println!("{} version(s) would become unavailable", preview.unavailable.len());
    /// registry.forget("old-share", true).await?;
    /// # Ok(()) }
    /// ```
    pub async fn forget(&self, source: &str, confirmed: bool) -> Result<ForgetReport, RegistryError> {
        let snapshot = self.reader().await?.snapshot().await?.core;
        let known = snapshot.origins.keys().any(|k| k.source == source);
        let unavailable = crate::retirement::only_offered_by(&snapshot, source);
        let configured_here = self
            .sources()
            .await
            .map(|built| built.sources.iter().any(|s| s.name() == source))
            .unwrap_or(false);
        let mut report = ForgetReport {
            source: source.to_owned(),
            known,
            unavailable,
            configured_here,
            applied: None,
        };
        if confirmed && known {
            let writer = self.writer.as_ref().ok_or(RegistryError::ReadOnly("forget a source"))?;
            let mut store = writer.lock().await;
            let applied = crate::sync::forget_source(&mut store, source, self.strategy, &self.sync_options).await?;
            self.publish(&applied);
            report.applied = Some(applied);
        }
        Ok(report)
    }

    /// How each source's latest scan went, and the long-lived processes' caches.
    ///
    /// ```no_run
    /// # async fn demo(registry: registry_host::Registry) -> Result<(), registry_host::RegistryError> {
    /// let status = registry.status().await?;
    /// let failing: Vec<_> = status.sources.iter().filter(|s| !s.status.is_ok()).map(|s| &s.name).collect();
    /// # Ok(()) }
    /// ```
    pub async fn status(&self) -> Result<Status, RegistryError> {
        Ok(self.reader().await?.status().await?)
    }

    /// A receiver of every change this registry applies, whoever started the run:
    /// [`sync`](Registry::sync), [`watch`](Registry::watch) or one of its polls. A receiver
    /// that falls more than 1,024 events behind misses the oldest (`RecvError::Lagged`).
    ///
    /// ```no_run
    /// # async fn demo(registry: registry_host::Registry) -> Result<(), registry_host::RegistryError> {
    /// let mut events = registry.subscribe();
    /// registry.sync().await?;
    /// while let Ok(event) = events.try_recv() {
    ///     println!("{}", serde_json::to_string(&event).unwrap());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.events.subscribe()
    }

    /// Syncs, then keeps the catalogue current as files change and remote sources move,
    /// until `shutdown` resolves (the run in flight is applied first).
    ///
    /// ```no_run
    /// # async fn demo(registry: registry_host::Registry) -> Result<(), registry_host::RegistryError> {
    /// registry.watch(async { tokio::signal::ctrl_c().await.ok(); }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn watch(&self, shutdown: impl Future<Output = ()>) -> Result<(), RegistryError> {
        self.watch_with(shutdown, |_, _| {}).await
    }

    /// [`watch`](Registry::watch), telling `on_run` how every run went and why it ran.
    ///
    /// ```no_run
    /// # async fn demo(registry: registry_host::Registry) -> Result<(), registry_host::RegistryError> {
    /// registry
    ///     .watch_with(async { tokio::signal::ctrl_c().await.ok(); }, |trigger, result| match result {
    ///         Ok(report) => println!("{trigger:?}: {} added", report.counts.added),
    ///         Err(e) => eprintln!("{trigger:?} run failed: {e}"),
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn watch_with(
        &self,
        shutdown: impl Future<Output = ()>,
        on_run: impl FnMut(Trigger, &Result<SyncReport, SyncError>),
    ) -> Result<(), RegistryError> {
        let built = self.sources().await?;
        if built.sources.is_empty() {
            return Err(RegistryError::NoSources);
        }
        self.run_watch(&built.sources, shutdown, on_run).await
    }

    /// [`watch_with`](Registry::watch_with) on folders and archives given as paths
    /// instead of the configured sources.
    ///
    /// ```no_run
    /// # async fn demo(registry: registry_host::Registry) -> Result<(), registry_host::RegistryError> {
    /// let stop = async { tokio::signal::ctrl_c().await.ok(); };
    /// registry.watch_paths_with(&["tasks".into()], stop, |_, _| {}).await?;
    /// # Ok(()) }
    /// ```
    pub async fn watch_paths_with(
        &self,
        paths: &[PathBuf],
        shutdown: impl Future<Output = ()>,
        on_run: impl FnMut(Trigger, &Result<SyncReport, SyncError>),
    ) -> Result<(), RegistryError> {
        let sources = self.path_sources(paths)?;
        self.run_watch(&sources, shutdown, on_run).await
    }

    async fn run_watch(
        &self,
        sources: &[Box<dyn Source>],
        shutdown: impl Future<Output = ()>,
        mut on_run: impl FnMut(Trigger, &Result<SyncReport, SyncError>),
    ) -> Result<(), RegistryError> {
        if self.writer.is_none() {
            return Err(RegistryError::ReadOnly("watch"));
        }
        // A connection of its own: `sync()` and the readers are not held up by the loop.
        let mut store = Store::open(&self.database).await?;
        let options = WatchOptions {
            sync: self.sync_options.clone(),
            ..self.watch_options.clone()
        };
        let presence = Presence::start(
            self.database.clone(),
            self.process.clone(),
            ProcessRole::Watch,
            self.sync_options.cache.clone(),
        );
        let watched = crate::watch::watch(
            &mut store,
            sources,
            self.strategy,
            &options,
            shutdown,
            |trigger, result| {
                if let Ok(report) = result {
                    self.publish(report);
                }
                presence.nudge();
                on_run(trigger, result);
            },
        )
        .await;
        presence.end().await;
        watched?;
        Ok(())
    }

    /// Serves the catalogue over HTTP on `listener` until `shutdown` resolves (see
    /// `docs/http-protocol.md`); `/v1/events` relays this registry's events. Run it beside
    /// [`watch`](Registry::watch) (for example with `tokio::join!`) to serve a catalogue
    /// that stays current.
    ///
    /// ```no_run
    /// # async fn demo(registry: registry_host::Registry) -> Result<(), Box<dyn std::error::Error>> {
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    /// registry.serve(listener, async { tokio::signal::ctrl_c().await.ok(); }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RegistryError> {
        let mut options = self.serve_options.clone();
        if options.token.is_none()
            && let Some(file) = &self.serve_token_file
        {
            options.token = Some(read_token_file(file)?);
        }
        // Brought up to date (when it can be written) before any request reads it; then
        // requests read through a pool of read-only connections.
        let opened = if self.writer.is_some() {
            Store::open(&self.database).await?
        } else {
            Store::open_for_reading(&self.database).await?
        };
        drop(opened);
        let pool = crate::store::reader_pool(&self.database, options.pool_size);
        let state = ServeState::new(pool, &options, self.events.clone());
        let _ = state.own_process.set(self.process.id.clone());
        if let Some(cache) = &self.sync_options.cache {
            let _ = state.check_cache.set(cache.clone());
        }
        let _ = state.plugin_children.set(self.plugin_children.clone());
        let presence = Presence::start(
            self.database.clone(),
            self.process.clone(),
            ProcessRole::Serve,
            self.sync_options.cache.clone(),
        );
        let served = crate::serve::serve(listener, state, &options, shutdown).await;
        presence.end().await;
        served.map_err(|e| RegistryError::Serve(format!("cannot serve: {e}")))
    }
}

/// What [`Registry::forget`] found, and did when confirmed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ForgetReport {
    /// The source.
    pub source: String,
    /// Whether the catalogue has anything of it.
    pub known: bool,
    /// The available versions only it offers: what forgetting it makes unavailable.
    pub unavailable: Vec<registry_core::VersionKey>,
    /// Whether this registry's own configuration still names it (its next sync brings it
    /// back).
    pub configured_here: bool,
    /// The run that retired it, when confirmed.
    pub applied: Option<SyncReport>,
}

/// A requirement as Cargo writes them; `*` and an empty text mean any version.
fn parse_requirement(text: &str) -> Result<semver::VersionReq, RegistryError> {
    semver::VersionReq::parse(text.trim()).map_err(|e| RegistryError::Requirement {
        requirement: text.to_owned(),
        reason: e.to_string(),
    })
}

/// A token kept in a file: its first line, without surrounding whitespace.
fn read_token_file(path: &Path) -> Result<String, RegistryError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| RegistryError::Serve(format!("cannot read the token file {}: {e}", path.display())))?;
    let token = text.lines().next().unwrap_or_default().trim().to_owned();
    if token.is_empty() {
        return Err(RegistryError::Serve(format!(
            "the token file {} is empty",
            path.display()
        )));
    }
    Ok(token)
}
