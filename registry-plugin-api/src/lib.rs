//! The stable ABI between the taskreg host and third-party source plugins.
//!
//! A third-party source (git, S3, anything) is shipped as a `cdylib` that depends on this
//! crate only, never on `registry-core` or the host: the host and a plugin may be built by
//! different compilers at different times, so nothing but `abi_stable`'s FFI-safe types
//! cross between them ([`ffi`]), and the host checks their layout when it loads a library.
//! Bytes cross the boundary; the host parses them.
//!
//! An author writes plain Rust: a [`SourcePlugin`] that describes the plugin and opens
//! sources, and a [`PluginSource`] that scans and loads, then exports them with
//! [`export_source_plugin!`]. The macro converts to and from the FFI types and runs every
//! call inside `catch_unwind`, so a panic in the plugin reaches the host as a
//! [`PluginError`] with code `panic`, never as an unwinding across the boundary.
//!
//! ```
//! use registry_plugin_api::*;
//!
//! struct Empty;
//!
//! impl SourcePlugin for Empty {
//!     fn info() -> PluginInfo {
//!         PluginInfo::new("empty", "1.0.0").kind(KindInfo::new("empty", "a source with no tasks"))
//!     }
//!     fn open(request: SourceRequest, _host: Host) -> Result<Box<dyn PluginSource>, PluginError> {
//!         Ok(Box::new(EmptySource(request.name)))
//!     }
//! }
//!
//! struct EmptySource(String);
//!
//! impl PluginSource for EmptySource {
//!     fn location(&self) -> String { format!("nowhere ({})", self.0) }
//!     fn scan(&self, _host: &Host) -> Result<Scan, PluginError> { Ok(Scan::complete(Vec::new())) }
//!     fn load(&self, locator: &str, _host: &Host) -> Result<Bundle, PluginError> {
//!         Err(PluginError::new("not_found", format!("no task at {locator}")))
//!     }
//! }
//!
//! export_source_plugin!(Empty);
//! ```
//!
//! # Versions
//! [`PROTOCOL_VERSION`] is this crate's version and the interface's. The host refuses a
//! library built against another major version (for 0.x, another minor), and one built
//! against an older minor version than its own; `docs/plugins.md` has the rules.

#[cfg(feature = "archive")]
pub mod archive;
pub mod ffi;
mod guard;
pub mod layout;

#[doc(hidden)]
pub use abi_stable;
pub use serde_json;

use abi_stable::std_types::{ROption, RString, RVec};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Version of the plugin interface described by this crate: its package version, which
/// `abi_stable` compares when the host loads a library.
pub const PROTOCOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a plugin library is and which kinds of source it provides.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub kinds: Vec<KindInfo>,
}

impl PluginInfo {
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            kinds: Vec::new(),
        }
    }

    pub fn kind(mut self, kind: KindInfo) -> Self {
        self.kinds.push(kind);
        self
    }
}

/// A kind of source (the `type` of a `[[sources]]` entry) and the JSON Schema its
/// settings must satisfy; the host checks a source's settings against it before `open`.
#[derive(Debug, Clone, PartialEq)]
pub struct KindInfo {
    pub name: String,
    pub description: String,
    pub config_schema: serde_json::Value,
}

impl KindInfo {
    /// A kind that accepts any settings; see [`KindInfo::schema`].
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        KindInfo {
            name: name.into(),
            description: description.into(),
            config_schema: serde_json::json!({ "type": "object" }),
        }
    }

    pub fn schema(mut self, config_schema: serde_json::Value) -> Self {
        self.config_schema = config_schema;
        self
    }
}

/// What the host asks a plugin to open: one `[[sources]]` entry. Sent as JSON, so the
/// host can add fields without breaking older plugins.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SourceRequest {
    /// The entry's `type`, one of the plugin's kinds.
    pub kind: String,
    /// The entry's `name`, unique within the registry.
    pub name: String,
    /// The entry's other settings, already checked against the kind's schema.
    pub config: serde_json::Value,
    /// The config file's folder: relative paths in `config` are relative to it.
    pub base_dir: PathBuf,
    /// A folder this source may keep files in between runs (clones, downloads). It is the
    /// same for the same source name and database, and may be deleted by the user.
    pub cache_dir: PathBuf,
    /// What one load may read at most: check sizes before reading a file (a blob's
    /// header, an object's listed size) and refuse past them with
    /// [`PluginError::too_large`]. Appended in 0.1: a host that does not send it leaves
    /// the defaults.
    #[serde(default)]
    pub read_limits: ReadLimits,
}

/// The most one load reads: per file and for the whole task, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReadLimits {
    pub max_file_bytes: u64,
    pub max_task_bytes: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_file_bytes: 1024 * 1024,
            max_task_bytes: 8 * 1024 * 1024,
        }
    }
}

/// One task as a source sees it, before anything is read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// Where the task lives inside the source; stable across scans.
    pub locator: String,
    /// Changes whenever the task's content may have changed; an unchanged fingerprint
    /// means the host does not load the task again.
    pub fingerprint: String,
}

/// Something a scan found wrong at a locator. An error makes the scan partial.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanIssue {
    pub locator: String,
    pub code: String,
    pub message: String,
    pub is_error: bool,
}

/// What one scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scan {
    pub entries: Vec<Entry>,
    /// True when `entries` is everything the source has; only a complete scan can make a
    /// task of this source disappear from the catalogue.
    pub complete: bool,
    pub issues: Vec<ScanIssue>,
}

impl Scan {
    pub fn complete(entries: Vec<Entry>) -> Self {
        Scan {
            entries,
            complete: true,
            issues: Vec::new(),
        }
    }
}

/// The files of one task, paths relative to the task folder with `/` separators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bundle {
    pub files: Vec<(String, Vec<u8>)>,
    /// The task folder's own name (the name of a legacy task without `name`).
    pub folder_name: Option<String>,
    pub modified: Option<SystemTime>,
}

/// The [`PluginError::code`] of a source whose settings, credentials or permissions are
/// wrong (a bad key, a missing bucket, access denied). The host reports the source as
/// misconfigured and does not retry it before its next poll: trying again sooner cannot
/// help. Any other code is a plain failure.
pub const CONFIG_ERROR_CODE: &str = "config";

/// A failed call, as a value. `retryable` says whether trying again later may help (a
/// network error) or not (a bad setting).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PluginError {
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

impl PluginError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        PluginError {
            code: code.into(),
            message: message.into(),
            retryable: false,
        }
    }

    /// An error with code [`CONFIG_ERROR_CODE`]: the source's settings, credentials or
    /// permissions are wrong.
    pub fn config(message: impl Into<String>) -> Self {
        PluginError::new(CONFIG_ERROR_CODE, message)
    }

    /// Whether this is a [`PluginError::config`] error.
    pub fn is_config(&self) -> bool {
        self.code == CONFIG_ERROR_CODE
    }

    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }

    /// A task file (or, with `file` empty, the whole task) over the request's
    /// [`ReadLimits`]: refused before it is read.
    pub fn too_large(file: &str, size: u64, cap: u64) -> Self {
        let what = if file.is_empty() {
            "the task".to_owned()
        } else {
            format!("`{file}`")
        };
        PluginError::new("too_large", format!("{what} is {size} bytes; the cap is {cap}"))
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]", self.message, self.code)
    }
}

impl std::error::Error for PluginError {}

/// An error and its causes on one line, each said once: a client's top-level message
/// ("error sending request") says what failed, the causes say why (a refused
/// connection, a 403). For [`PluginError`] messages.
pub fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let message = next.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        cause = next.source();
    }
    text
}

/// A plugin: its description and how to open one of its sources. Implemented on a type
/// that is never instantiated; exported with [`export_source_plugin!`].
pub trait SourcePlugin {
    fn info() -> PluginInfo;
    /// Opens the source `request` describes. Called once per `[[sources]]` entry; cheap
    /// work only (no network): the host calls it for commands that never scan.
    fn open(request: SourceRequest, host: Host) -> Result<Box<dyn PluginSource>, PluginError>;
}

/// A source of a plugin. Calls run on the host's blocking threads, possibly several at a
/// time (loads), and may be abandoned by the host after its timeout: check
/// [`Host::is_cancelled`] in long loops.
pub trait PluginSource: Send + Sync {
    fn location(&self) -> String;
    fn scan(&self, host: &Host) -> Result<Scan, PluginError>;
    fn load(&self, locator: &str, host: &Host) -> Result<Bundle, PluginError>;
}

/// The host's side of a call: cancellation and logging. The plugin's own `tracing` (if it
/// has one) is not the host's; log through this.
pub struct Host(ffi::HostBox);

impl Host {
    #[doc(hidden)]
    pub fn from_ffi(host: ffi::HostBox) -> Self {
        Host(host)
    }

    /// A host for a plugin's own tests and tools: it never cancels and logs to stderr.
    pub fn standalone() -> Self {
        Host(ffi::HostCallbacks_TO::from_ptr(
            abi_stable::std_types::RArc::new(StandaloneHost),
            abi_stable::sabi_trait::TD_Opaque,
        ))
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    pub fn error(&self, message: &str) {
        self.0.log(ffi::LogLevel::ERROR, message.into());
    }

    pub fn warn(&self, message: &str) {
        self.0.log(ffi::LogLevel::WARN, message.into());
    }

    pub fn info(&self, message: &str) {
        self.0.log(ffi::LogLevel::INFO, message.into());
    }

    pub fn debug(&self, message: &str) {
        self.0.log(ffi::LogLevel::DEBUG, message.into());
    }

    /// A [`PluginError`] with code `cancelled`, for a call that stops because
    /// [`Host::is_cancelled`] became true.
    pub fn cancelled_error(&self) -> PluginError {
        PluginError::new("cancelled", "the host cancelled the call")
    }
}

struct StandaloneHost;

impl ffi::HostCallbacks for StandaloneHost {
    fn is_cancelled(&self) -> bool {
        false
    }

    fn log(&self, level: ffi::LogLevel, message: abi_stable::std_types::RStr<'_>) {
        eprintln!("[plugin log {}] {message}", level.0);
    }
}

/// Exports a [`SourcePlugin`] as this library's root module. Use once, in a `cdylib`.
#[macro_export]
macro_rules! export_source_plugin {
    ($plugin:ty) => {
        // The symbol `abi_stable::library::lib_header_from_path` looks for; what
        // `#[abi_stable::export_root_module]` would write, with paths through this crate
        // so that plugins need no direct `abi_stable` dependency.
        #[doc(hidden)]
        #[unsafe(export_name = "_1as_0lib_1header_0root_bmodule_bloader")]
        pub static TASKREG_SOURCE_PLUGIN_HEADER: $crate::abi_stable::library::LibHeader = {
            extern "C" fn erased_root_module() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader($crate::root_module::<$plugin>)
            }
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::ffi::SourcePluginModuleRef>(
                    erased_root_module,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

/// The root module of plugin `P`; used by [`export_source_plugin!`].
#[doc(hidden)]
pub fn root_module<P: SourcePlugin>() -> ffi::SourcePluginModuleRef {
    use abi_stable::prefix_type::PrefixTypeTrait;
    guard::install_panic_hook();
    ffi::SourcePluginModule {
        info: guard::info::<P>,
        open: guard::open::<P>,
    }
    .leak_into_prefix()
}

// Conversions between the author-facing types and the FFI ones, both ways: plugins
// convert results into FFI form, the host converts them back.

impl From<PluginError> for ffi::PluginError {
    fn from(e: PluginError) -> Self {
        ffi::PluginError {
            code: e.code.into(),
            message: e.message.into(),
            retryable: e.retryable,
        }
    }
}

impl From<ffi::PluginError> for PluginError {
    fn from(e: ffi::PluginError) -> Self {
        PluginError {
            code: e.code.into(),
            message: e.message.into(),
            retryable: e.retryable,
        }
    }
}

impl From<PluginInfo> for ffi::PluginInfo {
    fn from(info: PluginInfo) -> Self {
        ffi::PluginInfo {
            name: info.name.into(),
            version: info.version.into(),
            kinds: info
                .kinds
                .into_iter()
                .map(|k| ffi::KindInfo {
                    name: k.name.into(),
                    description: k.description.into(),
                    config_schema: k.config_schema.to_string().into(),
                })
                .collect(),
        }
    }
}

impl From<ffi::PluginInfo> for PluginInfo {
    fn from(info: ffi::PluginInfo) -> Self {
        PluginInfo {
            name: info.name.into(),
            version: info.version.into(),
            kinds: info
                .kinds
                .into_iter()
                .map(|k| KindInfo {
                    name: k.name.into(),
                    description: k.description.into(),
                    // A schema that is not JSON accepts nothing, so the mistake shows.
                    config_schema: serde_json::from_str(&k.config_schema).unwrap_or(serde_json::Value::Bool(false)),
                })
                .collect(),
        }
    }
}

impl From<Scan> for ffi::Scan {
    fn from(scan: Scan) -> Self {
        ffi::Scan {
            entries: scan
                .entries
                .into_iter()
                .map(|e| ffi::Entry {
                    locator: e.locator.into(),
                    fingerprint: e.fingerprint.into(),
                })
                .collect(),
            complete: scan.complete,
            issues: scan
                .issues
                .into_iter()
                .map(|i| ffi::ScanIssue {
                    locator: i.locator.into(),
                    code: i.code.into(),
                    message: i.message.into(),
                    severity: if i.is_error {
                        ffi::Severity::ERROR
                    } else {
                        ffi::Severity::WARNING
                    },
                })
                .collect(),
        }
    }
}

impl From<ffi::Scan> for Scan {
    fn from(scan: ffi::Scan) -> Self {
        Scan {
            entries: scan
                .entries
                .into_iter()
                .map(|e| Entry {
                    locator: e.locator.into(),
                    fingerprint: e.fingerprint.into(),
                })
                .collect(),
            complete: scan.complete,
            issues: scan
                .issues
                .into_iter()
                .map(|i| ScanIssue {
                    locator: i.locator.into(),
                    code: i.code.into(),
                    message: i.message.into(),
                    // A severity this host does not know is treated as the safe one.
                    is_error: i.severity != ffi::Severity::WARNING,
                })
                .collect(),
        }
    }
}

impl From<Bundle> for ffi::Bundle {
    fn from(bundle: Bundle) -> Self {
        ffi::Bundle {
            files: bundle
                .files
                .into_iter()
                .map(|(path, bytes)| ffi::File {
                    path: path.into(),
                    bytes: bytes.into(),
                })
                .collect(),
            folder_name: bundle.folder_name.map(RString::from).into(),
            modified_unix_ms: bundle
                .modified
                .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
                .and_then(|d| i64::try_from(d.as_millis()).ok())
                .into(),
        }
    }
}

impl From<ffi::Bundle> for Bundle {
    fn from(bundle: ffi::Bundle) -> Self {
        Bundle {
            files: bundle
                .files
                .into_iter()
                .map(|f| (f.path.into_string(), RVec::into_vec(f.bytes)))
                .collect(),
            folder_name: bundle.folder_name.map(RString::into_string).into_option(),
            modified: match bundle.modified_unix_ms {
                ROption::RSome(ms) if ms >= 0 => UNIX_EPOCH.checked_add(Duration::from_millis(ms as u64)),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exported_symbol_is_the_one_abi_stable_looks_for() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }

    #[test]
    fn protocol_version_is_semver() {
        let parts: Vec<u64> = PROTOCOL_VERSION
            .split('.')
            .map(|p| p.parse().expect("numeric component"))
            .collect();
        assert_eq!(parts.len(), 3);
    }

    #[test]
    fn results_survive_the_round_trip_through_ffi_types() {
        let scan = Scan {
            entries: vec![Entry {
                locator: "a/b".into(),
                fingerprint: "f1".into(),
            }],
            complete: false,
            issues: vec![ScanIssue {
                locator: "c".into(),
                code: "source.unreadable".into(),
                message: "denied".into(),
                is_error: true,
            }],
        };
        assert_eq!(Scan::from(ffi::Scan::from(scan.clone())), scan);
        let bundle = Bundle {
            files: vec![("metadata.json".into(), b"{}".to_vec())],
            folder_name: Some("b".into()),
            modified: Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
        };
        assert_eq!(Bundle::from(ffi::Bundle::from(bundle.clone())), bundle);
        let info = PluginInfo::new("p", "1.2.3")
            .kind(KindInfo::new("k", "d").schema(serde_json::json!({"required": ["url"]})));
        assert_eq!(PluginInfo::from(ffi::PluginInfo::from(info.clone())), info);
        let error = PluginError::new("net", "down").retryable();
        assert_eq!(PluginError::from(ffi::PluginError::from(error.clone())), error);
    }
}
