//! [`RegistryBuilder`]: everything a [`Registry`] is made of, from a `taskreg.toml` or in code.

use super::{Registry, RegistryError, SourceEntry};
use crate::config::{Config, path_source_spec};
use crate::serve::ServeOptions;
use crate::sync::SyncObserver;
use crate::watch::{IgnoreRules, WatchOptions};
use registry_core::{
    ConflictStrategy, Limits, RuleLevel, Source, SourceKind, SourceSpec, Validation, ValidationContext, Validator,
};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The catalogue's database when nothing else names one.
pub const DEFAULT_DATABASE: &str = "sqlite://taskreg.db";

/// Builds a [`Registry`]: where its catalogue lives, which sources feed it, which rules
/// check the tasks, how conflicts are decided. Start from [`Registry::builder`] (all
/// defaults: `./taskreg.db`, no sources) or [`Registry::from_config_file`], change what you
/// need, then [`open`](RegistryBuilder::open).
///
/// ```no_run
/// # async fn demo() -> Result<(), registry_host::RegistryError> {
/// use registry_host::Registry;
///
/// let registry = Registry::builder()
///     .database("sqlite://catalogue.db")
///     .path_source("examples/tasks")
///     .open()
///     .await?;
/// registry.sync().await?;
/// # Ok(()) }
/// ```
#[must_use]
pub struct RegistryBuilder {
    pub(super) config: Option<Config>,
    /// The URL text and the folder a relative SQLite path is relative to.
    pub(super) database: (String, PathBuf),
    pub(super) sources: Vec<SourceEntry>,
    pub(super) plugins: Vec<crate::plugins::PluginLocation>,
    pub(super) kinds: Vec<SourceKind>,
    pub(super) timeouts: HashMap<String, Duration>,
    pub(super) cache_dir: PathBuf,
    pub(super) strategy: &'static dyn ConflictStrategy,
    pub(super) rules: BTreeMap<String, RuleLevel>,
    pub(super) validators: Vec<&'static dyn Validator>,
    pub(super) limits: Limits,
    pub(super) strict: bool,
    pub(super) max_removal_share: f64,
    pub(super) allow_mass_removal: bool,
    pub(super) retire_sources_after: Option<std::time::Duration>,
    pub(super) concurrency: Option<usize>,
    pub(super) cache_capacity_bytes: u64,
    pub(super) contents_in_memory: usize,
    pub(super) observer: Option<Arc<dyn SyncObserver>>,
    pub(super) watch: WatchOptions,
    pub(super) serve: ServeOptions,
    pub(super) serve_token_file: Option<PathBuf>,
    pub(super) read_only: bool,
    pub(super) signatures: crate::sync::SignaturePolicies,
}

impl Default for RegistryBuilder {
    fn default() -> Self {
        RegistryBuilder {
            config: None,
            database: (DEFAULT_DATABASE.to_owned(), PathBuf::new()),
            sources: Vec::new(),
            plugins: Vec::new(),
            kinds: Vec::new(),
            timeouts: HashMap::new(),
            cache_dir: PathBuf::from(".taskreg-cache"),
            strategy: &registry_core::SourcePriority,
            rules: BTreeMap::new(),
            validators: Vec::new(),
            limits: Limits::default(),
            strict: false,
            max_removal_share: registry_core::PlanOptions::DEFAULT_MAX_REMOVAL_SHARE,
            allow_mass_removal: false,
            retire_sources_after: Some(crate::sync::DEFAULT_RETIREMENT_GRACE),
            concurrency: None,
            cache_capacity_bytes: crate::cache::DEFAULT_CAPACITY_BYTES,
            contents_in_memory: crate::sync::DEFAULT_CONTENTS_IN_MEMORY,
            observer: None,
            watch: WatchOptions::default(),
            serve: ServeOptions::default(),
            serve_token_file: None,
            read_only: false,
            signatures: crate::sync::SignaturePolicies::default(),
        }
    }
}

impl std::fmt::Debug for RegistryBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryBuilder")
            .field("database", &self.database.0)
            .field("sources", &self.sources.len())
            .field("strategy", &self.strategy.name())
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl RegistryBuilder {
    /// Everything a `taskreg.toml` says: database, sources, plugins, conflict strategy,
    /// validation, lifecycle guard, watch and serve settings. Relative paths in it are
    /// relative to the file's folder.
    pub fn from_config(config: Config) -> Result<Self, RegistryError> {
        let mut builder = RegistryBuilder {
            sources: config.source_specs().into_iter().map(SourceEntry::Spec).collect(),
            plugins: config.plugin_locations(),
            timeouts: config.timeouts(),
            cache_dir: config.cache_dir(),
            strategy: config.strategy(),
            rules: config.validation.rules.clone(),
            limits: config.validation.limits,
            strict: config.validation.strict,
            max_removal_share: config.lifecycle.max_removal_share,
            retire_sources_after: Some(
                config
                    .lifecycle
                    .retire_sources_after
                    .unwrap_or(crate::sync::DEFAULT_RETIREMENT_GRACE),
            ),
            ..RegistryBuilder::default()
        };
        if let Some(url) = &config.database {
            builder.database = (url.clone(), config.base_dir.clone());
        }
        builder.watch.poll_intervals = config.poll_intervals();
        builder.watch.ignore = IgnoreRules::new(&config.watch.ignore).unwrap_or_default();
        let serve = &config.serve;
        builder.serve.token = serve.token.clone();
        builder.serve.metrics_public = serve.metrics_public;
        if let Some(max) = serve.max_connections {
            builder.serve.max_connections = max;
        }
        if let Some(timeout) = serve.header_read_timeout {
            builder.serve.header_read_timeout = timeout;
        }
        if let Some(size) = serve.pool_size {
            builder.serve.pool_size = size;
        }
        builder.serve_token_file = serve.token_file.as_ref().map(|f| config.base_dir.join(f));
        builder.signatures = config
            .signature_policies()
            .map_err(|reason| crate::config::ConfigError::Invalid {
                path: config.base_dir.join("taskreg.toml"),
                reason,
            })?;
        builder.config = Some(config);
        Ok(builder)
    }

    /// The configuration this builder was made from, if any.
    pub fn config(&self) -> Option<&Config> {
        self.config.as_ref()
    }

    /// The catalogue's database: `sqlite://PATH` (relative to the working folder) or
    /// `postgres://USER@HOST/DB`. Takes precedence over the configuration's `database`.
    pub fn database(mut self, url: impl Into<String>) -> Self {
        self.database = (url.into(), PathBuf::new());
        self
    }

    /// Adds a source after those already added (earlier sources win conflicts under the
    /// default strategy). Its kind is looked up when the registry first syncs.
    pub fn source(mut self, spec: SourceSpec) -> Self {
        self.sources.push(SourceEntry::Spec(spec));
        self
    }

    /// Adds a source object the application built itself.
    pub fn source_object(mut self, source: impl Source + 'static) -> Self {
        self.sources.push(SourceEntry::Object(Arc::new(source)));
        self
    }

    /// Adds a filesystem source on a folder (or a ZIP source on a `.zip` file), named
    /// after its absolute path, as `taskreg sync PATH` does.
    pub fn path_source(self, path: impl AsRef<Path>) -> Self {
        let spec = path_source_spec(path.as_ref());
        self.source(spec)
    }

    /// Drops every source added so far (those of the configuration included).
    pub fn clear_sources(mut self) -> Self {
        self.sources.clear();
        self
    }

    /// Makes a source kind available to [`source`](RegistryBuilder::source) entries and
    /// configured `[[sources]]`; it takes precedence over a built-in kind of the same name.
    /// (A kind can also be registered for every registry with `inventory::submit!`.)
    pub fn source_kind(mut self, kind: SourceKind) -> Self {
        self.kinds.push(kind);
        self
    }

    /// Loads a plugin library (`.so`, `.dylib`, `.dll`) when the registry first syncs.
    pub fn plugin_library(mut self, path: impl Into<PathBuf>) -> Self {
        self.plugins.push(crate::plugins::PluginLocation::library(path));
        self
    }

    /// Loads every plugin library in a folder, in name order.
    pub fn plugin_folder(mut self, path: impl Into<PathBuf>) -> Self {
        self.plugins.push(crate::plugins::PluginLocation::folder(path));
        self
    }

    /// Loads plugin libraries as `location` says: a file or a folder, in the host's process
    /// or each in a child process of its own.
    ///
    /// ```no_run
    /// use registry_host::plugins::{ChildOptions, Isolation, PluginLocation};
    ///
    /// let builder = registry_host::Registry::builder().plugin(
    ///     PluginLocation::library("plugins/libgit_source.so").isolated(Isolation::Process(ChildOptions {
    ///         max_memory: Some(1 << 30),
    ///         ..ChildOptions::default()
    ///     })),
    /// );
    /// ```
    pub fn plugin(mut self, location: crate::plugins::PluginLocation) -> Self {
        self.plugins.push(location);
        self
    }

    /// Where plugin sources keep files between runs (default `.taskreg-cache`).
    pub fn plugin_cache_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.cache_dir = path.into();
        self
    }

    /// How different contents offered for one version are decided (default
    /// source priority). Any [`ConflictStrategy`], registered or not.
    pub fn conflict_strategy(mut self, strategy: &'static dyn ConflictStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// A rule's level: `error` (the default), `warn` or `off`.
    pub fn rule_level(mut self, rule: impl Into<String>, level: RuleLevel) -> Self {
        self.rules.insert(rule.into(), level);
        self
    }

    /// Adds a validation rule of the application's own, run on every task with the
    /// registered ones (a rule of the same name replaces the registered one).
    pub fn validator(mut self, validator: &'static dyn Validator) -> Self {
        self.validators.push(validator);
        self
    }

    /// The sizes and counts a task may reach (see `docs/validation.md`).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether warnings count as failures for `validate` and a strict sync.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// The share of a source's tasks one complete scan may remove before the run keeps
    /// them instead (default 0.5): the guard against a source that suddenly looks empty.
    pub fn max_removal_share(mut self, share: f64) -> Self {
        self.max_removal_share = share;
        self
    }

    /// Lets scans remove more than [`max_removal_share`](RegistryBuilder::max_removal_share)
    /// of a source's tasks.
    pub fn allow_mass_removal(mut self, allow: bool) -> Self {
        self.allow_mass_removal = allow;
        self
    }

    /// How long a source may go unscanned by every process before it is retired (default
    /// 7 days; `None`: never): its tasks go missing unless another source offers them,
    /// history kept. A retirement that would take away more than
    /// [`max_removal_share`](RegistryBuilder::max_removal_share) of the catalogue's
    /// available versions waits for `taskreg forget` instead.
    pub fn retire_sources_after(mut self, grace: Option<std::time::Duration>) -> Self {
        self.retire_sources_after = grace;
        self
    }

    /// Loads in flight at once during a run (default four per core).
    pub fn concurrency(mut self, loads: usize) -> Self {
        self.concurrency = Some(loads.max(1));
        self
    }

    /// Bytes of loaded task contents a run holds in memory (default 16 MiB); the run
    /// stages the contents of the tasks it loads beyond them in the database until it
    /// applies, so that a sync of any number of tasks runs in bounded memory. `0` stages
    /// every loaded task.
    pub fn contents_in_memory(mut self, bytes: usize) -> Self {
        self.contents_in_memory = bytes;
        self
    }

    /// Bytes of checked tasks kept in memory between runs (default 256 MiB). `0` keeps
    /// nothing between runs, neither checked tasks nor the catalogue's snapshot: right for
    /// a process that syncs once.
    pub fn cache_capacity(mut self, bytes: u64) -> Self {
        self.cache_capacity_bytes = bytes;
        self
    }

    /// Hears how every run goes, to show progress.
    pub fn observer(mut self, observer: Arc<dyn SyncObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Debounce, poll and full-rescan intervals of [`Registry::watch`]. The per-source
    /// poll intervals and ignore rules of the configuration are kept.
    pub fn watch_timing(mut self, debounce: Duration, poll_interval: Duration, full_rescan: Duration) -> Self {
        self.watch.debounce = debounce;
        self.watch.poll_interval = poll_interval.max(Duration::from_secs(1));
        self.watch.full_rescan_interval = full_rescan.max(Duration::from_secs(1));
        self
    }

    /// How [`Registry::serve`] answers: token, public metrics, connection bounds.
    pub fn serve_options(mut self, options: ServeOptions) -> Self {
        self.serve = options;
        self.serve_token_file = None;
        self
    }

    /// Requires this bearer token on `/v1` (and `/metrics` unless public).
    pub fn serve_token(mut self, token: impl Into<String>) -> Self {
        self.serve.token = Some(token.into());
        self
    }

    /// Reads the serve token from this file's first line when serving starts (a token
    /// set with [`serve_token`](RegistryBuilder::serve_token) takes precedence).
    pub fn serve_token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.serve_token_file = Some(path.into());
        self
    }

    /// Opens the catalogue for reading only: no migration, no sync. Works on a database
    /// whose file or folder cannot be written.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// The trust policy every source's signatures are judged by (`[signatures]`), unless a
    /// source has its own ([`source_signature_policy`](Self::source_signature_policy)).
    pub fn signature_policy(mut self, policy: registry_core::SignaturePolicy) -> Self {
        self.signatures.default = Arc::new(policy);
        self
    }

    /// The trust policy of the source called `name` (a source's `signatures` and
    /// `trusted_keys`).
    pub fn source_signature_policy(mut self, name: impl Into<String>, policy: registry_core::SignaturePolicy) -> Self {
        self.signatures.by_source.insert(name.into(), Arc::new(policy));
        self
    }

    /// The trust policies this builder describes.
    pub fn signature_policies(&self) -> &crate::sync::SignaturePolicies {
        &self.signatures
    }

    /// The validation rules this builder describes.
    pub fn validation(&self) -> Result<Validation, RegistryError> {
        Validation::configure_with(
            &self.rules,
            ValidationContext { limits: self.limits },
            self.strict,
            &self.validators,
        )
        .map_err(RegistryError::Validation)
    }

    /// Checks the tasks at `paths` with this builder's rules, without any database: what
    /// `taskreg validate` does.
    pub async fn validate(&self, paths: &[PathBuf]) -> Result<super::ValidationReport, RegistryError> {
        super::validate::validate_paths(paths, &self.validation()?, &self.signatures.default, &self.kinds).await
    }

    /// The `.ratchet/index.json` of the task tree at `root`, built from its tasks with this
    /// builder's rules (refused tasks are left out and reported): what `taskreg index`
    /// writes, or compares with the repository's own index under `--check`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), registry_host::RegistryError> {
    /// let built = registry_host::Registry::builder().index(std::path::Path::new("tasks")).await?;
    /// println!("{} tasks indexed", built.index.tasks.len());
    /// # Ok(()) }
    /// ```
    pub async fn index(&self, root: &std::path::Path) -> Result<super::BuiltIndex, RegistryError> {
        super::index::build_index(root, &self.validation()?, &self.kinds).await
    }

    /// A source builder with this registry's plugin libraries loaded and run-time kinds:
    /// what `taskreg plugins` lists.
    pub fn source_builder(&self) -> crate::sources::SourceBuilder {
        crate::sources::SourceBuilder {
            plugins: crate::plugins::PluginSet::load(&self.plugins),
            kinds: self.kinds.clone(),
            timeouts: self.timeouts.clone(),
            cache_dir: self.cache_dir.clone(),
        }
    }

    /// Opens the catalogue (creating and migrating it unless read-only) and returns the
    /// registry. Sources are built when it first syncs.
    pub async fn open(self) -> Result<Registry, RegistryError> {
        Registry::open(self).await
    }
}
