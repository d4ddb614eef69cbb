//! Source plugins loaded from `cdylib`s, and the adapter that makes each of their sources a
//! core [`Source`].
//!
//! Every library is loaded with its own `lib_header_from_path(…).init_root_module()`, so
//! several plugins load side by side, and is never unloaded (abi_stable's rule: a source
//! object may outlive any handle to its library). A library that is not a taskreg plugin,
//! or was built for an interface this host cannot use, is refused with one line naming
//! the file and both versions; the host goes on without it.
//!
//! A library runs in the host's process (the default), or, with
//! [`Isolation::Process`], in a child process of its own that the host can lose: the
//! same library, loaded by `taskreg plugin-host` ([`plugin_host_main`]) and called over a
//! framed protocol on its stdin and stdout. A child that aborts, segfaults, exits or is
//! killed fails the calls in progress, never the host; the next call starts a new one.
//!
//! A plugin's calls run on the blocking pool, never on the async workers, each with the
//! source's timeout. An error, a panic (caught inside the plugin by
//! `export_source_plugin!`) or a timeout fails that call only: a failed scan removes
//! nothing, a failed load reports the task and keeps what the catalogue had.

use abi_stable::library::{LibraryError, lib_header_from_path};
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, RResult, RStr};
use async_trait::async_trait;
use registry_core::{Bundle, Entry, Scan, ScanIssue, Source, SourceError, SourceSpec};
use registry_plugin_api::ffi::{self, SourcePluginModuleRef};
use registry_plugin_api::{KindInfo, PluginError, PluginInfo, SourceRequest};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use thiserror::Error;

mod child;
mod protocol;
mod supervisor;

pub use child::{PLUGIN_HOST_ARGUMENT, plugin_host_main};
pub use supervisor::ChildStatus;
use supervisor::Supervisor;

/// Scan issue codes a plugin reports with the host's meaning (see `docs/plugins.md`).
const SHARED_ISSUE_CODES: [&str; 1] = ["layout.unrecognized"];

/// How long a plugin call may take when the source sets no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The interface version this host speaks (the `registry-plugin-api` it was built with).
pub const HOST_INTERFACE_VERSION: &str = registry_plugin_api::PROTOCOL_VERSION;

/// Why a library was refused. Each names the file.
#[derive(Debug, Error, serde::Serialize, serde::Deserialize)]
pub enum PluginLoadError {
    /// The file is not a shared library this system can load.
    #[error("{path}: cannot open the library: {reason}")]
    Open {
        /// The library (or folder).
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A shared library without a taskreg root module.
    #[error("{path}: not a taskreg plugin (it exports no abi_stable root module)")]
    NotAPlugin {
        /// The library (or folder).
        path: PathBuf,
    },
    /// Built for an interface this host cannot load.
    #[error(
        "{path}: built for plugin interface {plugin_interface}, which this taskreg (interface {HOST_INTERFACE_VERSION}) cannot load; rebuild the plugin against registry-plugin-api {HOST_INTERFACE_VERSION}"
    )]
    IncompatibleInterface {
        /// The library (or folder).
        path: PathBuf,
        /// The interface version the library was built for.
        plugin_interface: String,
    },
    /// The interface version fits but the types do not.
    #[error(
        "{path}: built for plugin interface {plugin_interface} but its types do not match this taskreg's (interface {HOST_INTERFACE_VERSION}): {summary}"
    )]
    LayoutMismatch {
        /// The library.
        path: PathBuf,
        /// The interface version it declares.
        plugin_interface: String,
        /// abi_stable's report, in one paragraph.
        summary: String,
    },
    /// The plugin's `info` failed or panicked.
    #[error("{path}: the plugin failed to start: {reason}")]
    Failed {
        /// The library (or folder).
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A kind a built-in or an earlier library provides already.
    #[error("{path}: source kind `{kind}` is already provided by {other}")]
    DuplicateKind {
        /// The library (or folder).
        path: PathBuf,
        /// The kind both provide.
        kind: String,
        /// Who provides it already (built-in, or a library path).
        other: String,
    },
    /// A `dir` entry that cannot be listed.
    #[error("plugin folder {path}: {reason}")]
    Folder {
        /// The library (or folder).
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// A loaded plugin library.
pub struct PluginLibrary {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// What it says of itself: name, version, kinds.
    pub info: PluginInfo,
    /// The interface version the library was built against.
    pub interface_version: String,
    runner: Runner,
}

/// Where a library's code runs.
enum Runner {
    InProcess(SourcePluginModuleRef),
    Isolated(Arc<Supervisor>),
}

/// Where a plugin library runs: in the host's process, or in a child process of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Loaded into the host: the fastest calls, but a crash in the plugin is the host's.
    #[default]
    InProcess,
    /// Loaded by a child process that the host can lose.
    Process(ChildOptions),
}

/// How an isolated library's child runs: its limits, its environment, its program.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildOptions {
    /// The most address space the child may map (`RLIMIT_AS`), in bytes. Leave room: the
    /// child's own code, thread stacks and allocator arenas count too.
    pub max_memory: Option<u64>,
    /// The CPU seconds a call may use before the kernel ends the child (`RLIMIT_CPU`,
    /// renewed whenever a call starts).
    pub max_cpu_seconds: Option<u64>,
    /// Environment variables the child gets from the host besides the basic ones
    /// (`PATH`, `HOME`, locale, `TMPDIR`, CA certificate locations). Nothing else
    /// reaches it: not the database URL, not the host's credentials.
    pub env: Vec<String>,
    /// The plugin host program, started with the argument `plugin-host`: by default
    /// `$TASKREG_PLUGIN_HOST`, else this executable (which must then call
    /// [`plugin_host_main`] first thing, as `taskreg` does).
    pub program: Option<PathBuf>,
}

impl ChildOptions {
    pub(crate) fn program(&self) -> PathBuf {
        self.program
            .clone()
            .or_else(|| std::env::var_os("TASKREG_PLUGIN_HOST").map(PathBuf::from))
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("taskreg"))
    }
}

/// A `[[plugins]]` entry: a library file or a folder of them, and where they run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginLocation {
    /// The library, or the folder.
    pub path: PathBuf,
    /// Whether `path` is a folder whose every library is loaded.
    pub is_folder: bool,
    /// Where its libraries run.
    pub isolation: Isolation,
}

impl PluginLocation {
    /// A library loaded into the host.
    pub fn library(path: impl Into<PathBuf>) -> Self {
        PluginLocation {
            path: path.into(),
            is_folder: false,
            isolation: Isolation::InProcess,
        }
    }

    /// Every library in a folder, loaded into the host.
    pub fn folder(path: impl Into<PathBuf>) -> Self {
        PluginLocation {
            is_folder: true,
            ..PluginLocation::library(path)
        }
    }

    /// The same libraries, run as `isolation` says.
    pub fn isolated(self, isolation: Isolation) -> Self {
        PluginLocation { isolation, ..self }
    }
}

/// A library loaded into this process, with what it says of itself.
pub(crate) struct LoadedModule {
    pub(crate) module: SourcePluginModuleRef,
    pub(crate) info: PluginInfo,
    pub(crate) interface_version: String,
}

impl std::fmt::Debug for PluginLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginLibrary")
            .field("path", &self.path)
            .field("info", &self.info)
            .field("interface_version", &self.interface_version)
            .finish()
    }
}

impl PluginLibrary {
    /// Loads the plugin at `path` into this process.
    pub fn load(path: &Path) -> Result<PluginLibrary, PluginLoadError> {
        PluginLibrary::load_as(path, &Isolation::InProcess)
    }

    /// Loads the plugin at `path` into this process, or starts its child process.
    pub fn load_as(path: &Path, isolation: &Isolation) -> Result<PluginLibrary, PluginLoadError> {
        match isolation {
            Isolation::InProcess => {
                let LoadedModule {
                    module,
                    info,
                    interface_version,
                } = load_module(path)?;
                Ok(PluginLibrary {
                    path: path.to_path_buf(),
                    info,
                    interface_version,
                    runner: Runner::InProcess(module),
                })
            }
            Isolation::Process(options) => {
                let (supervisor, info, interface_version) = Supervisor::start(path, options.clone())?;
                Ok(PluginLibrary {
                    path: path.to_path_buf(),
                    info,
                    interface_version,
                    runner: Runner::Isolated(Arc::new(supervisor)),
                })
            }
        }
    }

    /// Whether the library runs isolated, and its child's state when it does.
    pub fn child_status(&self) -> Option<ChildStatus> {
        match &self.runner {
            Runner::InProcess(_) => None,
            Runner::Isolated(supervisor) => Some(supervisor.status()),
        }
    }

    fn kind(&self, name: &str) -> Option<&KindInfo> {
        self.info.kinds.iter().find(|k| k.name == name)
    }
}

/// Loads the library at `path` into this process: its root module, checked by abi_stable.
pub(crate) fn load_module(path: &Path) -> Result<LoadedModule, PluginLoadError> {
    let path_buf = path.to_path_buf();
    let header = lib_header_from_path(path).map_err(|e| match e {
        LibraryError::GetSymbolError { .. } => PluginLoadError::NotAPlugin { path: path_buf.clone() },
        LibraryError::OpenError { err, .. } => PluginLoadError::Open {
            path: path_buf.clone(),
            reason: err.to_string(),
        },
        other => PluginLoadError::Failed {
            path: path_buf.clone(),
            reason: summary(&other),
        },
    })?;
    let plugin_interface = header.version_strings().version.to_string();
    let module = header
        .init_root_module::<SourcePluginModuleRef>()
        .map_err(|e| match e {
            LibraryError::IncompatibleVersionNumber { .. } | LibraryError::ParseVersionError(_) => {
                PluginLoadError::IncompatibleInterface {
                    path: path_buf.clone(),
                    plugin_interface: plugin_interface.clone(),
                }
            }
            LibraryError::AbiInstability(_) => PluginLoadError::LayoutMismatch {
                path: path_buf.clone(),
                plugin_interface: plugin_interface.clone(),
                summary: summary(&e),
            },
            other => PluginLoadError::Failed {
                path: path_buf.clone(),
                reason: summary(&other),
            },
        })?;
    let info = match (module.info())() {
        RResult::ROk(info) => PluginInfo::from(info),
        RResult::RErr(e) => {
            return Err(PluginLoadError::Failed {
                path: path_buf,
                reason: PluginError::from(e).to_string(),
            });
        }
    };
    Ok(LoadedModule {
        module,
        info,
        interface_version: plugin_interface,
    })
}

/// abi_stable's layout errors run to hundreds of lines; one line of it is what a user can
/// act on.
fn summary(error: &LibraryError) -> String {
    let text = error.to_string();
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let first = lines.first().copied().unwrap_or("unknown error");
    if lines.len() > 1 {
        format!("{first} (… {} more lines of detail)", lines.len() - 1)
    } else {
        first.to_string()
    }
}

/// An isolated library's child processes, seen from outside.
#[derive(Clone)]
pub struct ChildWatch {
    /// The library the child runs.
    pub library: PathBuf,
    supervisor: Arc<Supervisor>,
}

impl ChildWatch {
    /// Its child's process id (if one runs) and restarts so far.
    pub fn status(&self) -> ChildStatus {
        self.supervisor.status()
    }
}

impl std::fmt::Debug for ChildWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildWatch")
            .field("library", &self.library)
            .field("status", &self.status())
            .finish()
    }
}

/// Every plugin library of a configuration, and the ones that were refused.
#[derive(Debug, Default)]
pub struct PluginSet {
    /// The libraries loaded, in load order.
    pub libraries: Vec<PluginLibrary>,
    /// The libraries refused, with why.
    pub refused: Vec<PluginLoadError>,
}

impl PluginSet {
    /// Loads every library of `locations`: the files first, then every `.so`, `.dylib`
    /// or `.dll` of each folder, in name order, each where its location says. A refused
    /// library is recorded and skipped.
    pub fn load(locations: &[PluginLocation]) -> PluginSet {
        let mut set = PluginSet::default();
        let mut candidates: Vec<(PathBuf, &Isolation)> = locations
            .iter()
            .filter(|l| !l.is_folder)
            .map(|l| (l.path.clone(), &l.isolation))
            .collect();
        for folder in locations.iter().filter(|l| l.is_folder) {
            match library_files(&folder.path) {
                Ok(found) => candidates.extend(found.into_iter().map(|path| (path, &folder.isolation))),
                Err(e) => set.refused.push(PluginLoadError::Folder {
                    path: folder.path.clone(),
                    reason: e.to_string(),
                }),
            }
        }
        for (path, isolation) in candidates {
            match PluginLibrary::load_as(&path, isolation) {
                Ok(library) => {
                    let taken = library.info.kinds.iter().find_map(|k| {
                        let other = if registry_core::find_kind(&k.name).is_some() {
                            Some("a built-in kind".to_string())
                        } else {
                            set.libraries
                                .iter()
                                .find(|l| l.kind(&k.name).is_some())
                                .map(|l| l.path.display().to_string())
                        };
                        other.map(|other| (k.name.clone(), other))
                    });
                    match taken {
                        Some((kind, other)) => set.refused.push(PluginLoadError::DuplicateKind { path, kind, other }),
                        None => set.libraries.push(library),
                    }
                }
                Err(e) => set.refused.push(e),
            }
        }
        set
    }

    /// A handle on each isolated library's child, for watching it from elsewhere (`serve`'s
    /// `/metrics`) while the sources use it.
    pub fn children(&self) -> Vec<ChildWatch> {
        self.libraries
            .iter()
            .filter_map(|l| match &l.runner {
                Runner::Isolated(supervisor) => Some(ChildWatch {
                    library: l.path.clone(),
                    supervisor: supervisor.clone(),
                }),
                Runner::InProcess(_) => None,
            })
            .collect()
    }

    fn provider(&self, kind: &str) -> Option<(&PluginLibrary, &KindInfo)> {
        self.libraries.iter().find_map(|l| Some((l, l.kind(kind)?)))
    }
}

fn library_files(folder: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(folder)?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "so" || x == "dylib" || x == "dll"))
        .collect();
    found.sort();
    Ok(found)
}

/// Where and how a plugin source runs, beyond its spec.
#[derive(Debug, Clone)]
pub struct PluginSourceOptions {
    /// How long one call into the plugin may take.
    pub timeout: Duration,
    /// The source's own folder for files kept between runs.
    pub cache_dir: PathBuf,
}

/// Builds the source `spec` describes with the plugin that provides its kind, after
/// checking its settings against the kind's schema. `None` when no loaded plugin
/// provides the kind.
pub fn build_plugin_source(
    plugins: &PluginSet,
    spec: &SourceSpec,
    options: &PluginSourceOptions,
) -> Option<Result<Box<dyn Source>, SourceError>> {
    let (library, kind) = plugins.provider(&spec.kind)?;
    Some(open(library, kind, spec, options))
}

fn open(
    library: &PluginLibrary,
    kind: &KindInfo,
    spec: &SourceSpec,
    options: &PluginSourceOptions,
) -> Result<Box<dyn Source>, SourceError> {
    let misconfigured = |reason: String| SourceError::Config {
        source_name: spec.name.clone(),
        reason,
    };
    check_settings(&kind.config_schema, &spec.settings).map_err(&misconfigured)?;
    let request = SourceRequest {
        kind: spec.kind.clone(),
        name: spec.name.clone(),
        config: spec.settings.clone(),
        base_dir: spec.base_dir.clone(),
        cache_dir: options.cache_dir.clone(),
        read_limits: registry_plugin_api::ReadLimits {
            max_file_bytes: spec.limits.max_file_bytes,
            max_task_bytes: spec.limits.max_task_bytes,
        },
    };
    let request = serde_json::to_string(&request).map_err(|e| misconfigured(e.to_string()))?;
    let refused = |e: PluginError| {
        misconfigured(format!(
            "plugin `{}` ({}) refused it: {e}",
            library.info.name,
            library.path.display(),
        ))
    };
    let (backend, location) = match &library.runner {
        Runner::InProcess(module) => {
            let host = host_callbacks(&spec.name, Arc::new(AtomicBool::new(false)));
            let object = (module.open())(RStr::from_str(&request), host)
                .into_result()
                .map_err(|e| refused(e.into()))?;
            let location = object.location().into_string();
            (Backend::InProcess(Arc::new(object)), location)
        }
        Runner::Isolated(supervisor) => {
            let (source, opened) = supervisor.open(&spec.name, request, options.timeout);
            let location = match opened {
                Ok(location) => location,
                // The child died or hung: the source is opened again by its first call,
                // in a new child, and fails that call if it still cannot be.
                Err(e) if e.code == "crashed" || e.code == "timeout" => {
                    format!("{} (not opened yet: {e})", library.path.display())
                }
                Err(e) => return Err(refused(e)),
            };
            let backend = Backend::Isolated {
                supervisor: supervisor.clone(),
                source,
            };
            (backend, location)
        }
    };
    Ok(Box::new(PluginSource {
        name: spec.name.clone(),
        kind: spec.kind.clone(),
        location,
        backend,
        timeout: options.timeout,
    }))
}

/// Checks a source's settings against its kind's JSON Schema, naming every failing field.
pub(crate) fn check_settings(schema: &serde_json::Value, settings: &serde_json::Value) -> Result<(), String> {
    let validator =
        jsonschema::validator_for(schema).map_err(|e| format!("the kind's settings schema is invalid: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(settings)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("`{}`: {e}", at.trim_start_matches('/').replace('/', "."))
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// A plugin's source as a core [`Source`].
struct PluginSource {
    name: String,
    kind: String,
    location: String,
    backend: Backend,
    timeout: Duration,
}

/// Where a plugin source's calls go.
enum Backend {
    InProcess(Arc<ffi::SourceBox>),
    Isolated {
        supervisor: Arc<Supervisor>,
        source: protocol::SourceId,
    },
}

impl PluginSource {
    /// Runs `call` on the blocking pool with this source's timeout. On a timeout the
    /// call's cancellation flag is raised and the thread is left to finish on its own.
    async fn call_in_process<T: Send + 'static>(
        &self,
        object: &Arc<ffi::SourceBox>,
        what: &'static str,
        call: impl FnOnce(&ffi::SourceBox, ffi::HostBox) -> RResult<T, ffi::PluginError> + Send + 'static,
    ) -> Result<T, PluginError> {
        let cancelled = Arc::new(AtomicBool::new(false));
        let host = host_callbacks(&self.name, cancelled.clone());
        let object = object.clone();
        let running = tokio::task::spawn_blocking(move || without_sigpipe(|| call(&object, host).into_result()));
        match tokio::time::timeout(self.timeout, running).await {
            Ok(Ok(result)) => result.map_err(PluginError::from),
            Ok(Err(e)) => Err(PluginError::new("crashed", format!("`{what}` did not finish: {e}"))),
            Err(_) => {
                cancelled.store(true, Ordering::Relaxed);
                Err(PluginError::new(
                    "timeout",
                    format!("`{what}` gave no answer within {}s", self.timeout.as_secs_f64()),
                )
                .retryable())
            }
        }
    }

    /// Runs an isolated call on the blocking pool: it waits for the child's reply, and
    /// kills the child itself when the call runs past the timeout.
    async fn call_isolated<T: Send + 'static>(
        &self,
        supervisor: &Arc<Supervisor>,
        call: impl FnOnce(&Supervisor, Duration) -> Result<T, PluginError> + Send + 'static,
    ) -> Result<T, PluginError> {
        let (supervisor, timeout) = (supervisor.clone(), self.timeout);
        tokio::task::spawn_blocking(move || call(&supervisor, timeout))
            .await
            .unwrap_or_else(|e| Err(PluginError::new("crashed", format!("the call did not finish: {e}"))))
    }

    async fn scan_plugin(&self) -> Result<registry_plugin_api::Scan, PluginError> {
        match &self.backend {
            Backend::InProcess(object) => self
                .call_in_process(object, "scan", |object, host| object.scan(host))
                .await
                .map(registry_plugin_api::Scan::from),
            Backend::Isolated { supervisor, source } => {
                let source = *source;
                self.call_isolated(supervisor, move |s, timeout| s.scan(source, timeout))
                    .await
            }
        }
    }

    async fn load_plugin(&self, locator: String) -> Result<registry_plugin_api::Bundle, PluginError> {
        match &self.backend {
            Backend::InProcess(object) => self
                .call_in_process(object, "load", move |object, host| {
                    object.load(RStr::from_str(&locator), host)
                })
                .await
                .map(registry_plugin_api::Bundle::from),
            Backend::Isolated { supervisor, source } => {
                let source = *source;
                self.call_isolated(supervisor, move |s, timeout| s.load(source, &locator, timeout))
                    .await
            }
        }
    }
}

#[async_trait]
impl Source for PluginSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        &self.kind
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    async fn scan(&self) -> Result<Scan, SourceError> {
        let scan = self.scan_plugin().await.map_err(|e| {
            if e.is_config() {
                SourceError::Config {
                    source_name: self.name.clone(),
                    reason: e.message,
                }
            } else {
                SourceError::Unavailable {
                    source_name: self.name.clone(),
                    reason: e.to_string(),
                }
            }
        })?;
        Ok(Scan {
            entries: scan
                .entries
                .into_iter()
                .map(|e| Entry {
                    locator: e.locator,
                    fingerprint: e.fingerprint,
                })
                .collect(),
            complete: scan.complete && !scan.issues.iter().any(|i| i.is_error),
            issues: scan
                .issues
                .into_iter()
                .map(|i| {
                    // The codes the host defines keep their meaning from a plugin (a
                    // task-like folder is `layout.unrecognized` wherever it lies); any
                    // other code is the plugin's own, kept in the message.
                    let (code, message) = match SHARED_ISSUE_CODES.iter().find(|c| **c == i.code) {
                        Some(code) => (*code, i.message),
                        None => ("source.plugin_issue", format!("{} [{}]", i.message, i.code)),
                    };
                    if i.is_error {
                        ScanIssue::error(i.locator, code, message)
                    } else {
                        ScanIssue::warning(i.locator, code, message)
                    }
                })
                .collect(),
        })
    }

    async fn load(&self, entry: &Entry) -> Result<Bundle, SourceError> {
        let bundle = self
            .load_plugin(entry.locator.clone())
            .await
            .map_err(|e| SourceError::File {
                file: entry.locator.clone(),
                reason: e.to_string(),
            })?;
        Ok(Bundle {
            files: bundle.files.into_iter().collect(),
            folder_name: bundle.folder_name,
            modified: bundle.modified,
            indexed: None,
        })
    }
}

/// Runs a plugin call with SIGPIPE blocked on its thread. The CLI restores SIGPIPE's
/// default action (so `taskreg list | head` ends quietly), but a plugin that talks to a
/// child process (git's `upload-pack`) must get `EPIPE` from a closed pipe, not have the
/// whole host killed. A SIGPIPE raised during the call is discarded before unblocking.
pub(crate) fn without_sigpipe<T>(call: impl FnOnce() -> T) -> T {
    #[cfg(unix)]
    // SAFETY: plain signal-mask calls on this thread, with sets initialised by sigemptyset.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut previous);
        let result = call();
        let no_wait = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        while libc::sigtimedwait(&pipe, std::ptr::null_mut(), &no_wait) == libc::SIGPIPE {}
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        result
    }
    #[cfg(not(unix))]
    call()
}

/// The host's side of one call: its cancellation flag, and logging into the host's
/// `tracing` under the source's name.
struct CallHost {
    source: String,
    cancelled: Arc<AtomicBool>,
}

impl ffi::HostCallbacks for CallHost {
    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    fn log(&self, level: ffi::LogLevel, message: RStr<'_>) {
        record_plugin_log(&self.source, level.0, message.as_str());
    }
}

/// A plugin's log record in the host's `tracing`, under its source's name; from a call
/// in process or from an isolated library's child.
pub(crate) fn record_plugin_log(source: &str, level: u8, message: &str) {
    match ffi::LogLevel(level) {
        ffi::LogLevel::ERROR => tracing::error!(target: "taskreg::plugin", source, "{message}"),
        ffi::LogLevel::WARN => tracing::warn!(target: "taskreg::plugin", source, "{message}"),
        ffi::LogLevel::INFO => tracing::info!(target: "taskreg::plugin", source, "{message}"),
        ffi::LogLevel::DEBUG => tracing::debug!(target: "taskreg::plugin", source, "{message}"),
        _ => tracing::trace!(target: "taskreg::plugin", source, "{message}"),
    }
}

fn host_callbacks(source: &str, cancelled: Arc<AtomicBool>) -> ffi::HostBox {
    ffi::HostCallbacks_TO::from_ptr(
        RArc::new(CallHost {
            source: source.to_string(),
            cancelled,
        }),
        TD_Opaque,
    )
}

/// A source whose kind no loaded plugin provides because a library was refused: every
/// scan fails, so the catalogue keeps what it has of it.
pub struct UnavailableSource {
    /// The configured name.
    pub name: String,
    /// The kind nobody provides.
    pub kind: String,
    /// Why, as every scan reports it.
    pub reason: String,
}

#[async_trait]
impl Source for UnavailableSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        &self.kind
    }

    fn location(&self) -> String {
        format!("(kind `{}` not loaded)", self.kind)
    }

    async fn scan(&self) -> Result<Scan, SourceError> {
        Err(SourceError::Unavailable {
            source_name: self.name.clone(),
            reason: self.reason.clone(),
        })
    }

    async fn load(&self, entry: &Entry) -> Result<Bundle, SourceError> {
        Err(SourceError::File {
            file: entry.locator.clone(),
            reason: self.reason.clone(),
        })
    }
}

/// The cache folder name of a source: its name made safe for a file name, with a short
/// hash of the name so that two names that clean up alike stay apart.
pub fn cache_folder_name(source: &str) -> String {
    use sha2::Digest as _;
    let clean: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    let hash = hex::encode(&sha2::Sha256::digest(source.as_bytes())[..4]);
    format!("{clean}-{hash}")
}
