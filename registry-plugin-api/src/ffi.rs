//! What actually crosses the library boundary: `#[repr(C)]` types checked by `abi_stable`
//! when a plugin is loaded. Plugin authors do not use this module; the host and the
//! [`export_source_plugin!`](crate::export_source_plugin) macro do.
//!
//! # Evolution
//! Everything here is frozen except where a doc comment says "append-only": the root
//! module ([`SourcePluginModule`]) and the two object vtables ([`SourceObject`],
//! [`HostCallbacks`]) are prefix types, so later interface versions may add fields or
//! methods after the last one. Anything else extensible travels as JSON (the source
//! request).

// `#[sabi_trait]` generates impls inside a `const _` block.
#![allow(non_local_definitions)]

use abi_stable::library::RootModule;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RArc, RBox, ROption, RResult, RStr, RString, RVec};
use abi_stable::{StableAbi, declare_root_module_statics, package_version_strings, sabi_trait};

/// The root module a plugin library exports.
///
/// Append-only: a new interface version may add fields after `open`, never change or
/// remove one. A host reads a field added after its own version as absent.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = SourcePluginModuleRef)))]
#[sabi(missing_field(panic))]
pub struct SourcePluginModule {
    /// The plugin's name, version and source kinds.
    pub info: extern "C" fn() -> RResult<PluginInfo, PluginError>,
    /// Builds a source from a JSON [`SourceRequest`](crate::SourceRequest).
    #[sabi(last_prefix_field)]
    pub open: extern "C" fn(request: RStr<'_>, host: HostBox) -> RResult<SourceBox, PluginError>,
}

impl RootModule for SourcePluginModuleRef {
    declare_root_module_statics! {SourcePluginModuleRef}
    const BASE_NAME: &'static str = "taskreg_source_plugin";
    const NAME: &'static str = "taskreg source plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct PluginInfo {
    pub name: RString,
    pub version: RString,
    pub kinds: RVec<KindInfo>,
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct KindInfo {
    pub name: RString,
    pub description: RString,
    /// A JSON Schema (as JSON text) for the settings of a `[[sources]]` entry of this kind.
    pub config_schema: RString,
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct PluginError {
    pub code: RString,
    pub message: RString,
    pub retryable: bool,
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct Entry {
    pub locator: RString,
    pub fingerprint: RString,
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct ScanIssue {
    pub locator: RString,
    pub code: RString,
    pub message: RString,
    pub severity: Severity,
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct Scan {
    pub entries: RVec<Entry>,
    pub complete: bool,
    pub issues: RVec<ScanIssue>,
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct File {
    pub path: RString,
    pub bytes: RVec<u8>,
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct Bundle {
    pub files: RVec<File>,
    pub folder_name: ROption<RString>,
    /// Milliseconds since the Unix epoch.
    pub modified_unix_ms: ROption<i64>,
}

/// How bad a scan issue is. A struct around an integer, so that levels can be added.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Severity(pub u8);

impl Severity {
    pub const ERROR: Severity = Severity(0);
    pub const WARNING: Severity = Severity(1);
}

/// A log level, as `tracing` has them. A struct around an integer, so that levels can be added.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLevel(pub u8);

impl LogLevel {
    pub const ERROR: LogLevel = LogLevel(1);
    pub const WARN: LogLevel = LogLevel(2);
    pub const INFO: LogLevel = LogLevel(3);
    pub const DEBUG: LogLevel = LogLevel(4);
    pub const TRACE: LogLevel = LogLevel(5);
}

/// A source built by a plugin. Append-only: later versions add methods after `load`.
#[sabi_trait]
pub trait SourceObject: Send + Sync {
    /// Where the source points, for people.
    fn location(&self) -> RString;
    fn scan(&self, host: HostBox) -> RResult<Scan, PluginError>;
    #[sabi(last_prefix_field)]
    fn load(&self, locator: RStr<'_>, host: HostBox) -> RResult<Bundle, PluginError>;
}

/// What the host lends a plugin for one call. Append-only: later versions add methods
/// after `log`.
#[sabi_trait]
pub trait HostCallbacks: Send + Sync {
    /// True once the host has given up on the call (it timed out, or the host is stopping).
    fn is_cancelled(&self) -> bool;
    #[sabi(last_prefix_field)]
    fn log(&self, level: LogLevel, message: RStr<'_>);
}

pub type SourceBox = SourceObject_TO<'static, RBox<()>>;
pub type HostBox = HostCallbacks_TO<'static, RArc<()>>;
