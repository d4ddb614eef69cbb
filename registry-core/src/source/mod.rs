//! Where tasks come from.
//!
//! Built-in kinds of source:
//! - `filesystem` — task folders below a root directory (`plugins/fs`, `FsSource`);
//! - `zip` — tasks inside ZIP archives, read in memory (`plugins/zip`, `ZipSource`);
//! - `http` — another registry over HTTP, served or static (`plugins/http`, `HttpSource`).
//!
//! Every kind implements [`Source`] and registers a [`SourceKind`] with
//! `inventory::submit!`, so the host finds it without a central list. A source only reports
//! what it has; what becomes of it (merge, conflicts, removal) is decided by the pipeline.

mod limits;

pub use limits::{Limits, ReadBudget, file_too_large, task_too_large};

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;
use thiserror::Error;

/// One task as a source sees it, before anything is read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Where the task lives inside the source (a relative folder path, an archive entry, a
    /// URL path). Stable across scans: it keys the task's origin and problems.
    pub locator: String,
    /// Cheap to compute and changes whenever the task's content may have changed (sizes and
    /// mtimes, an ETag, a git tree id). An unchanged fingerprint means the task is not loaded.
    pub fingerprint: String,
}

/// Something a scan found wrong, reported against a locator of the source: a folder it
/// could not read (an error, and the scan is then partial), or a duplicate it skipped (a
/// warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanIssue {
    pub locator: String,
    pub code: &'static str,
    pub severity: crate::Severity,
    pub message: String,
}

impl ScanIssue {
    pub fn error(locator: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        ScanIssue {
            locator: locator.into(),
            code,
            severity: crate::Severity::Error,
            message: message.into(),
        }
    }

    pub fn warning(locator: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        ScanIssue {
            severity: crate::Severity::Warning,
            ..ScanIssue::error(locator, code, message)
        }
    }
}

/// The result of scanning one source.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub entries: Vec<Entry>,
    /// True when `entries` is everything the source has. Only a complete scan may make a
    /// task of this source missing; a partial one (a subfolder could not be read) only adds
    /// and updates.
    pub complete: bool,
    pub issues: Vec<ScanIssue>,
}

/// The files of one task as bytes, keyed by path relative to the task folder with `/`
/// separators. The host and core parse them; a source never interprets content.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    pub files: BTreeMap<String, Vec<u8>>,
    /// The task folder's own name, used as the name of a legacy task without `name`.
    pub folder_name: Option<String>,
    /// The newest modification time of the files, where the source knows it.
    pub modified: Option<SystemTime>,
    /// What the repository's index says of this task, where the source has one
    /// (`.ratchet/index.json`): checked against the task's own metadata.
    pub indexed: Option<crate::layout::repository::Indexed>,
}

impl Bundle {
    pub fn from_files<P: Into<String>>(files: impl IntoIterator<Item = (P, Vec<u8>)>) -> Self {
        Bundle {
            files: files.into_iter().map(|(p, b)| (p.into(), b)).collect(),
            ..Bundle::default()
        }
    }
}

/// Why a source could not scan or load. Carries the context a user needs to act.
#[derive(Debug, Error)]
pub enum SourceError {
    /// The source as a whole cannot be read (root missing, server unreachable): the scan
    /// fails and nothing of this source is removed.
    #[error("source `{source_name}` is unavailable: {reason}")]
    Unavailable { source_name: String, reason: String },
    /// One file of a task could not be read.
    #[error("cannot read `{file}`: {reason}")]
    File { file: String, reason: String },
    /// The source's configuration is wrong.
    #[error("source `{source_name}` is misconfigured: {reason}")]
    Config { source_name: String, reason: String },
    /// A task file (or the task) is larger than the read cap: refused before it is read,
    /// or cut off at the cap when it grew while being read.
    #[error("`{file}` is {size} bytes or more; the cap is {cap}")]
    TooLarge { file: String, size: u64, cap: u64 },
}

/// A place tasks live in. Implementations are cheap to call again: `scan` is called on
/// every sync, `load` only for entries whose fingerprint changed.
#[async_trait]
pub trait Source: Send + Sync {
    /// The configured name of this source, unique within a registry.
    fn name(&self) -> &str;
    /// The kind (`filesystem`, `zip`, …).
    fn kind(&self) -> &str;
    /// Where the source points, for people (a path, a URL).
    fn location(&self) -> String;
    async fn scan(&self) -> Result<Scan, SourceError>;
    async fn load(&self, entry: &Entry) -> Result<Bundle, SourceError>;

    /// The local path whose changes `taskreg watch` should follow (a folder or an archive),
    /// for sources that live on this machine. Others are polled.
    fn watch_path(&self) -> Option<std::path::PathBuf> {
        None
    }

    /// Rescans only what a change at `changed` (absolute paths below [`Source::watch_path`])
    /// can have affected, returning the part scanned and what it holds. `None` (the
    /// default) means the source can only be scanned whole, and `watch` calls `scan`.
    async fn scan_changed(&self, changed: &[std::path::PathBuf]) -> Option<Result<(ScanScope, Scan), SourceError>> {
        let _ = changed;
        None
    }

    /// How many of this source's loads the host keeps in flight at once. `None` (the
    /// default) leaves it to the host (four per core: right for files on this machine); a
    /// source whose loads wait on the network, not on the machine, asks for more. The host
    /// never keeps fewer in flight than it is configured to.
    fn loads_in_flight(&self) -> Option<usize> {
        None
    }

    /// Whether this source keeps state between processes ([`Source::saved_state`]); the
    /// host reads a stored state only for such a source.
    fn keeps_state(&self) -> bool {
        false
    }

    /// What this source keeps between processes, as text opaque to the host (the `http`
    /// source: its index's `ETag` and the listing it stands for). The host stores it in the
    /// catalogue after a scan that answered, and hands it back with
    /// [`Source::restore_state`] before a new process's first scan, so that a one-shot
    /// sync against an unchanged registry costs one `304`.
    fn saved_state(&self) -> Option<String> {
        None
    }

    /// Takes back what [`Source::saved_state`] gave, in another process. A state the
    /// source cannot use (another version's, another URL's) is ignored.
    fn restore_state(&self, state: &str) {
        let _ = state;
    }
}

/// A configured source before it is built: the `[[sources]]` entry of the config.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub name: String,
    pub kind: String,
    /// The entry's other keys (`path`, `url`, …) as JSON, the same form plugins receive.
    pub settings: serde_json::Value,
    /// Relative paths in `settings` are relative to this folder (the config file's folder).
    pub base_dir: PathBuf,
    /// The most a load may read of one task: checked against sizes before reading, and
    /// enforced while reading (see [`crate::Validation::read_limits`]).
    pub limits: Limits,
}

impl SourceSpec {
    pub fn new(name: impl Into<String>, kind: impl Into<String>, settings: serde_json::Value) -> Self {
        SourceSpec {
            name: name.into(),
            kind: kind.into(),
            settings,
            base_dir: PathBuf::new(),
            limits: Limits::default(),
        }
    }
}

/// A kind of source: built in and registered with `inventory::submit!`, or handed to the
/// host at run time (`RegistryBuilder::source_kind` in `registry-host`).
#[derive(Clone, Copy)]
pub struct SourceKind {
    pub name: &'static str,
    pub description: &'static str,
    /// The JSON Schema of the kind's settings, the same form plugins declare: the host
    /// checks every `[[sources]]` entry against it (unknown keys refused) before `build`.
    pub settings_schema: fn() -> serde_json::Value,
    pub build: fn(&SourceSpec) -> Result<Box<dyn Source>, SourceError>,
}

inventory::collect!(SourceKind);

/// Every built-in kind linked into this binary, sorted by name.
pub fn kinds() -> Vec<&'static SourceKind> {
    let mut kinds: Vec<&'static SourceKind> = inventory::iter::<SourceKind>.into_iter().collect();
    kinds.sort_by_key(|k| k.name);
    kinds
}

/// The built-in kind called `name`.
pub fn find_kind(name: &str) -> Option<&'static SourceKind> {
    inventory::iter::<SourceKind>.into_iter().find(|k| k.name == name)
}

/// Which part of a source a scan looked at. `taskreg watch` rescans only the folders that
/// changed; everything the store holds outside them is taken as unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ScanScope {
    /// Everything the source has.
    #[default]
    Whole,
    /// The locators equal to or below these prefixes (`""` covers the whole source). The
    /// scan's `complete` speaks for this part only; the source's own problems (a failed or
    /// guarded scan) are left as they were.
    Within(Vec<String>),
}

impl ScanScope {
    pub fn covers(&self, locator: &str) -> bool {
        match self {
            ScanScope::Whole => true,
            ScanScope::Within(prefixes) => prefixes.iter().any(|p| {
                p.is_empty()
                    || locator
                        .strip_prefix(p.as_str())
                        .is_some_and(|r| r.is_empty() || r.starts_with('/'))
            }),
        }
    }
}
