//! `taskreg.toml`: where the catalogue lives and which sources feed it.
//!
//! ```toml
//! database = "sqlite://taskreg.db"   # optional; relative to this file's folder
//!
//! [[sources]]                        # in priority order: the first wins conflicts
//! name = "examples"
//! type = "filesystem"
//! path = "tasks"                     # relative to this file's folder
//!
//! [conflicts]
//! strategy = "source-priority"       # or immutable, newest, reject
//!
//! [lifecycle]
//! max_removal_share = 0.5            # the mass-removal guard
//!
//! [validation]
//! strict = false                     # true: warnings fail `validate` and `sync --strict`
//! schemas = "warn"                   # per rule: error (default), warn or off
//!
//! [validation.limits]
//! max_file_bytes = 1048576
//!
//! [signatures]
//! mode = "verify"                    # off, verify (default) or require
//! trusted_keys = ["keys/release.pub"]  # minisign public keys: files, or the key text
//! ```

use registry_core::SourceSpec;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a configuration file cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        reason: String,
    },
    /// The file is not a valid configuration (every check of [`Config::load`]).
    #[error("invalid config {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        reason: String,
    },
}

/// A `taskreg.toml`, as read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Database URL; the command line and `TASKREG_DATABASE_URL` take precedence.
    pub database: Option<String>,
    /// `[[sources]]`, in priority order.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    /// `[conflicts]`.
    #[serde(default)]
    pub conflicts: ConflictsConfig,
    /// `[lifecycle]`.
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
    /// `[validation]`.
    #[serde(default)]
    pub validation: ValidationConfig,
    /// `[serve]`.
    #[serde(default)]
    pub serve: ServeConfig,
    /// `[watch]`.
    #[serde(default)]
    pub watch: WatchConfig,
    /// `[signatures]`.
    #[serde(default)]
    pub signatures: SignaturesConfig,
    /// Plugin libraries to load (`[[plugins]]` with `path` or `dir`).
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// Where plugin sources keep files between runs (default `.taskreg-cache` next to
    /// this file); each source gets a folder of its own inside.
    pub cache_dir: Option<PathBuf>,
    /// The folder relative paths are resolved against (the config file's folder).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[conflicts]`: how different contents offered for one version are decided.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConflictsConfig {
    /// A registered `ConflictStrategy` name.
    #[serde(default = "default_strategy")]
    pub strategy: String,
}

impl Default for ConflictsConfig {
    fn default() -> Self {
        ConflictsConfig {
            strategy: default_strategy(),
        }
    }
}

fn default_strategy() -> String {
    "source-priority".into()
}

/// `[serve]`: defaults for `taskreg serve` (the command line takes precedence).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// The address to listen on (default 127.0.0.1:8080).
    pub listen: Option<std::net::SocketAddr>,
    /// Require `Authorization: Bearer <token>` on `/v1` and `/metrics`.
    pub token: Option<String>,
    /// The token read from a file (trailing whitespace dropped), so that it appears in no
    /// config and no process list. Relative to the config file's folder.
    pub token_file: Option<PathBuf>,
    /// Serve `/metrics` without the token.
    #[serde(default)]
    pub metrics_public: bool,
    /// Connections served at once (default 1024); more wait, unaccepted.
    pub max_connections: Option<usize>,
    /// The time a client has to send a request's headers (default 10s).
    #[serde(default, deserialize_with = "interval")]
    pub header_read_timeout: Option<std::time::Duration>,
    /// Catalogue connections requests read through at once (default 8).
    pub pool_size: Option<usize>,
}

/// `[signatures]`: whose signatures tasks are judged by (see `docs/signing.md`). A source
/// may set its own `signatures` and `trusted_keys`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignaturesConfig {
    /// `off`, `verify` (default: a bad signature is an error, a missing one is fine) or
    /// `require` (unsigned is an error too).
    #[serde(default)]
    pub mode: registry_core::SignatureMode,
    /// Public keys that may sign: minisign public key files (relative to the config file's
    /// folder) or the key itself (`RWQ…`).
    #[serde(default)]
    pub trusted_keys: Vec<String>,
}

/// The keys `entries` name: each a minisign public key as text, or a file holding one
/// (relative to `base_dir`).
pub fn trusted_keys(entries: &[String], base_dir: &Path) -> Result<Vec<registry_core::TrustedKey>, String> {
    entries
        .iter()
        .map(|entry| {
            if let Ok(key) = registry_core::TrustedKey::parse(entry) {
                return Ok(key);
            }
            let path = base_dir.join(entry.trim());
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "trusted key `{entry}` is neither a minisign public key nor a readable file ({}: {e})",
                    path.display()
                )
            })?;
            registry_core::TrustedKey::parse(&text).map_err(|e| format!("trusted key file {}: {e}", path.display()))
        })
        .collect()
}

/// `[watch]`: what `taskreg watch` does not react to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    /// Globs of changes that start no run, added to the defaults (hidden files, `*~`, …).
    #[serde(default)]
    pub ignore: Vec<String>,
}

/// `[validation]`: `strict`, the limits, and a level per rule (`schemas = "warn"`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "RawValidationConfig")]
pub struct ValidationConfig {
    /// Warnings fail `taskreg validate` (and `sync --strict`) too.
    pub strict: bool,
    /// `[validation.limits]`: the sizes and counts a task may reach.
    pub limits: registry_core::Limits,
    /// `error`, `warn` or `off` per rule; rules not named run at `error`.
    pub rules: std::collections::BTreeMap<String, registry_core::RuleLevel>,
}

/// `[validation]` as written. `limits` is both a rule and the table of its caps, and TOML
/// takes a key once: `limits = "warn"` sets the rule's level, and a `[validation.limits]`
/// table sets the caps and, with `level = "warn"`, the level too.
#[derive(Deserialize)]
struct RawValidationConfig {
    #[serde(default)]
    strict: bool,
    #[serde(default)]
    limits: Option<toml::Value>,
    #[serde(flatten)]
    rules: std::collections::BTreeMap<String, registry_core::RuleLevel>,
}

impl TryFrom<RawValidationConfig> for ValidationConfig {
    type Error = String;

    fn try_from(raw: RawValidationConfig) -> Result<Self, String> {
        let mut config = ValidationConfig {
            strict: raw.strict,
            limits: registry_core::Limits::default(),
            rules: raw.rules,
        };
        let level = |value: toml::Value| {
            value
                .try_into::<registry_core::RuleLevel>()
                .map_err(|e| format!("`limits`: {}", e.message()))
        };
        match raw.limits {
            None => {}
            Some(toml::Value::Table(mut table)) => {
                if let Some(value) = table.remove("level") {
                    config.rules.insert("limits".into(), level(value)?);
                }
                config.limits = toml::Value::Table(table)
                    .try_into()
                    .map_err(|e| format!("[validation.limits]: {}", e.message()))?;
            }
            Some(value @ toml::Value::String(_)) => {
                config.rules.insert("limits".into(), level(value)?);
            }
            Some(other) => {
                return Err(format!(
                    "`limits` is a level (\"error\", \"warn\", \"off\") or a [validation.limits] table, not a {}",
                    other.type_str()
                ));
            }
        }
        Ok(config)
    }
}

/// `[lifecycle]`: the guard against a source that suddenly looks empty.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    /// A complete scan that would make more than this share of a source's tasks missing
    /// removes nothing (see `taskreg sync --allow-mass-removal`).
    #[serde(default = "default_max_removal_share")]
    pub max_removal_share: f64,
    /// A source in the catalogue that no process has scanned for this long (it was removed
    /// from every configuration) is retired: its tasks go missing unless another source
    /// offers them (default 7 days).
    #[serde(default, deserialize_with = "interval")]
    pub retire_sources_after: Option<std::time::Duration>,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            max_removal_share: default_max_removal_share(),
            retire_sources_after: None,
        }
    }
}

fn default_max_removal_share() -> f64 {
    registry_core::PlanOptions::DEFAULT_MAX_REMOVAL_SHARE
}

/// One `[[plugins]]` entry: a library file, or a folder whose every library is loaded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// A library file, relative to the config file's folder.
    pub path: Option<PathBuf>,
    /// A folder of libraries, relative to the config file's folder.
    pub dir: Option<PathBuf>,
    /// Where its libraries run (default `in-process`).
    #[serde(default)]
    pub isolation: IsolationSetting,
    /// With `isolation = "process"`: the most address space the child may map, in bytes
    /// (`536870912`) or with a unit (`"512MiB"`, `"2GiB"`, `"300MB"`).
    #[serde(default, deserialize_with = "byte_size")]
    pub max_memory: Option<u64>,
    /// With `isolation = "process"`: the CPU seconds one call may use.
    pub max_cpu_seconds: Option<u64>,
    /// With `isolation = "process"`: environment variables the child gets besides the
    /// basic ones.
    #[serde(default)]
    pub env: Vec<String>,
}

/// `isolation` of a `[[plugins]]` entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IsolationSetting {
    /// Loaded into the host's process.
    #[default]
    InProcess,
    /// Loaded by a child process of its own.
    Process,
}

impl PluginConfig {
    fn check(&self) -> Result<(), String> {
        if self.path.is_some() == self.dir.is_some() {
            return Err("a [[plugins]] entry needs exactly one of `path` or `dir`".into());
        }
        let child_settings = self.max_memory.is_some() || self.max_cpu_seconds.is_some() || !self.env.is_empty();
        if self.isolation == IsolationSetting::InProcess && child_settings {
            return Err(
                "a [[plugins]] entry sets `max_memory`, `max_cpu_seconds` or `env`, which apply to an isolated library: add `isolation = \"process\"`"
                    .into(),
            );
        }
        if self.max_cpu_seconds == Some(0) {
            return Err("`max_cpu_seconds` must be at least 1".into());
        }
        if self.max_memory.is_some_and(|bytes| bytes < 16 * 1024 * 1024) {
            return Err("`max_memory` must be at least 16MiB (the plugin host itself needs room)".into());
        }
        Ok(())
    }

    fn isolation(&self) -> crate::plugins::Isolation {
        match self.isolation {
            IsolationSetting::InProcess => crate::plugins::Isolation::InProcess,
            IsolationSetting::Process => crate::plugins::Isolation::Process(crate::plugins::ChildOptions {
                max_memory: self.max_memory,
                max_cpu_seconds: self.max_cpu_seconds,
                env: self.env.clone(),
                program: None,
            }),
        }
    }
}

/// A size in bytes: a number, or text with a unit (`"512MiB"`, `"2 GiB"`, `"300MB"`, `"64k"`).
fn byte_size<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Bytes(u64),
        Text(String),
    }
    match Form::deserialize(deserializer)? {
        Form::Bytes(bytes) => Ok(Some(bytes)),
        Form::Text(text) => parse_byte_size(&text)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("`{text}` is not a size such as \"512MiB\" or \"2GiB\""))),
    }
}

fn parse_byte_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// One `[[sources]]` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct SourceConfig {
    /// Unique within the file; keys the source's tasks and problems in the catalogue.
    pub name: String,
    /// The source kind (`type = "filesystem"`).
    #[serde(rename = "type")]
    pub kind: String,
    /// How often `watch` polls this source when it is not local (`"30s"`, `"5m"`, or seconds).
    #[serde(default, deserialize_with = "interval")]
    pub poll_interval: Option<std::time::Duration>,
    /// How long one call into a plugin source may take (plugin kinds only; default 120s).
    #[serde(default, deserialize_with = "interval")]
    pub timeout: Option<std::time::Duration>,
    /// This source's signature mode, instead of `[signatures]`'s.
    #[serde(default)]
    pub signatures: Option<registry_core::SignatureMode>,
    /// This source's trusted keys, instead of `[signatures]`'s.
    #[serde(default)]
    pub trusted_keys: Option<Vec<String>>,
    /// Everything else in the entry, handed to the source kind.
    #[serde(flatten)]
    pub settings: toml::Table,
}

/// A duration as seconds (`90`) or as text (`"90s"`, `"5m"`, `"1h 30m"`); at least a second.
fn interval<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<std::time::Duration>, D::Error> {
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Seconds(u64),
        Text(String),
    }
    let duration = match Form::deserialize(deserializer)? {
        Form::Seconds(seconds) => std::time::Duration::from_secs(seconds),
        Form::Text(text) => text
            .parse::<jiff::SignedDuration>()
            .ok()
            .and_then(|d| std::time::Duration::try_from(d).ok())
            .ok_or_else(|| D::Error::custom(format!("`{text}` is not a duration such as \"30s\" or \"5m\"")))?,
    };
    if duration < std::time::Duration::from_secs(1) {
        return Err(D::Error::custom("a poll interval must be at least one second"));
    }
    Ok(Some(duration))
}

impl Config {
    /// Reads and checks a configuration file: sources named once each, plugins with one
    /// location, a known conflict strategy and rules, a valid serve and watch section.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let invalid = |reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let mut config: Config = toml::from_str(&text).map_err(|e| invalid(e.message().to_owned()))?;
        let mut names = HashSet::new();
        for source in &config.sources {
            if source.name.trim().is_empty() {
                return Err(invalid("a [[sources]] entry has an empty `name`".into()));
            }
            if !names.insert(source.name.as_str()) {
                return Err(invalid(format!("two [[sources]] entries are named `{}`", source.name)));
            }
        }
        for plugin in &config.plugins {
            plugin.check().map_err(&invalid)?;
        }
        if registry_core::find_strategy(&config.conflicts.strategy).is_none() {
            let known: Vec<&str> = registry_core::strategies().iter().map(|s| s.name()).collect();
            return Err(invalid(format!(
                "unknown conflict strategy `{}` (known: {})",
                config.conflicts.strategy,
                known.join(", ")
            )));
        }
        config.validation().map_err(|e| invalid(e.to_string()))?;
        if config.serve.token.is_some() && config.serve.token_file.is_some() {
            return Err(invalid("[serve] sets `token` and `token_file`: set one".into()));
        }
        if config.serve.max_connections == Some(0) {
            return Err(invalid("[serve] `max_connections` must be at least 1".into()));
        }
        crate::watch::IgnoreRules::new(&config.watch.ignore).map_err(|e| invalid(format!("`watch.ignore`: {e}")))?;
        let share = config.lifecycle.max_removal_share;
        if !(0.0..=1.0).contains(&share) {
            return Err(invalid(format!(
                "`lifecycle.max_removal_share` must be between 0 and 1, not {share}"
            )));
        }
        // Absolute, so that sources say where they are and file events (absolute) match them.
        let folder = path.parent().map(Path::to_path_buf).unwrap_or_default();
        config.base_dir = std::path::absolute(&folder).unwrap_or(folder);
        config.signature_policies().map_err(invalid)?;
        Ok(config)
    }

    /// The trust policy of every source: `[signatures]`, and a source's own `signatures`
    /// and `trusted_keys` where it sets them (each falls back to `[signatures]`'s).
    pub fn signature_policies(&self) -> Result<crate::sync::SignaturePolicies, String> {
        use registry_core::SignaturePolicy;
        use std::sync::Arc;
        let keys =
            trusted_keys(&self.signatures.trusted_keys, &self.base_dir).map_err(|e| format!("[signatures]: {e}"))?;
        let mut policies =
            crate::sync::SignaturePolicies::uniform(SignaturePolicy::new(self.signatures.mode, keys.clone()));
        for source in &self.sources {
            if source.signatures.is_none() && source.trusted_keys.is_none() {
                continue;
            }
            let keys = match &source.trusted_keys {
                Some(entries) => {
                    trusted_keys(entries, &self.base_dir).map_err(|e| format!("source `{}`: {e}", source.name))?
                }
                None => keys.clone(),
            };
            let mode = source.signatures.unwrap_or(self.signatures.mode);
            policies
                .by_source
                .insert(source.name.clone(), Arc::new(SignaturePolicy::new(mode, keys)));
        }
        Ok(policies)
    }

    /// The configured conflict strategy (checked when the file was loaded).
    pub fn strategy(&self) -> &'static dyn registry_core::ConflictStrategy {
        registry_core::find_strategy(&self.conflicts.strategy).unwrap_or(&registry_core::SourcePriority)
    }

    /// The configured validation rules (checked when the file was loaded).
    pub fn validation(&self) -> Result<registry_core::Validation, registry_core::CoreError> {
        let context = registry_core::ValidationContext {
            limits: self.validation.limits,
        };
        registry_core::Validation::configure(&self.validation.rules, context, self.validation.strict)
    }

    /// The `poll_interval` of each source that sets one, by name.
    pub fn poll_intervals(&self) -> std::collections::HashMap<String, std::time::Duration> {
        self.sources
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.poll_interval?)))
            .collect()
    }

    /// The `timeout` of each source that sets one, by name.
    pub fn timeouts(&self) -> std::collections::HashMap<String, std::time::Duration> {
        self.sources
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.timeout?)))
            .collect()
    }

    /// The plugin libraries and folders to load, resolved against this file's folder,
    /// each with where it runs.
    pub fn plugin_locations(&self) -> Vec<crate::plugins::PluginLocation> {
        self.plugins
            .iter()
            .filter_map(|p| {
                let (path, is_folder) = match (&p.path, &p.dir) {
                    (Some(path), _) => (path, false),
                    (None, Some(dir)) => (dir, true),
                    (None, None) => return None,
                };
                Some(crate::plugins::PluginLocation {
                    path: self.base_dir.join(path),
                    is_folder,
                    isolation: p.isolation(),
                })
            })
            .collect()
    }

    /// The folder plugin sources keep their files in.
    pub fn cache_dir(&self) -> PathBuf {
        self.base_dir
            .join(self.cache_dir.as_deref().unwrap_or(Path::new(".taskreg-cache")))
    }

    /// The configured sources, in priority order.
    pub fn source_specs(&self) -> Vec<SourceSpec> {
        self.sources
            .iter()
            .map(|s| SourceSpec {
                name: s.name.clone(),
                kind: s.kind.clone(),
                settings: serde_json::to_value(&s.settings).unwrap_or_default(),
                base_dir: self.base_dir.clone(),
                limits: self.read_limits(),
            })
            .collect()
    }

    /// What a source reads at most of one task (see `Validation::read_limits`).
    pub fn read_limits(&self) -> registry_core::Limits {
        self.validation()
            .map(|v| v.read_limits())
            .unwrap_or(registry_core::Limits::READ_CEILING)
    }
}

/// An ad-hoc source for a path given on the command line: a `zip` source for a `.zip`
/// file, a `filesystem` source otherwise. Its name is the absolute path, so the same
/// folder is the same source however it was spelled.
pub fn path_source_spec(path: &Path) -> SourceSpec {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let absolute = absolute.canonicalize().unwrap_or(absolute);
    let is_zip = absolute.is_file() && absolute.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    SourceSpec {
        name: absolute.display().to_string(),
        kind: if is_zip { "zip" } else { "filesystem" }.into(),
        settings: serde_json::json!({ "path": absolute }),
        base_dir: PathBuf::new(),
        limits: registry_core::Limits::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taskreg.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn sources_keep_their_order_and_settings_resolve_against_the_config_folder() {
        let (dir, path) = write(
            "[[sources]]\nname = \"b\"\ntype = \"filesystem\"\npath = \"tasks\"\n\n[[sources]]\nname = \"a\"\ntype = \"zip\"\npath = \"x.zip\"\n",
        );
        let config = Config::load(&path).unwrap();
        let specs = config.source_specs();
        assert_eq!(specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(specs[0].settings["path"], "tasks");
        assert_eq!(specs[0].base_dir, std::path::absolute(dir.path()).unwrap());
    }

    #[test]
    fn duplicate_source_names_and_unknown_keys_are_refused_with_the_file_named() {
        let (_dir, path) = write(
            "[[sources]]\nname = \"a\"\ntype = \"filesystem\"\n[[sources]]\nname = \"a\"\ntype = \"filesystem\"\n",
        );
        let error = Config::load(&path).unwrap_err().to_string();
        assert!(error.contains("named `a`") && error.contains("taskreg.toml"), "{error}");
        let (_dir, path) = write("databse = \"sqlite://x.db\"\n");
        assert!(Config::load(&path).unwrap_err().to_string().contains("databse"));
    }

    #[test]
    fn a_poll_interval_is_read_for_the_host_and_kept_out_of_the_source_settings() {
        let (_dir, path) = write(
            "[[sources]]\nname = \"a\"\ntype = \"http\"\nurl = \"http://x\"\npoll_interval = \"5m\"\n\n[[sources]]\nname = \"b\"\ntype = \"http\"\nurl = \"http://y\"\npoll_interval = 90\n",
        );
        let config = Config::load(&path).unwrap();
        let intervals = config.poll_intervals();
        assert_eq!(intervals["a"], std::time::Duration::from_secs(300));
        assert_eq!(intervals["b"], std::time::Duration::from_secs(90));
        assert!(config.source_specs()[0].settings.get("poll_interval").is_none());
        for bad in ["\"soon\"", "0"] {
            let (_dir, path) = write(&format!(
                "[[sources]]\nname = \"a\"\ntype = \"http\"\npoll_interval = {bad}\n"
            ));
            let error = Config::load(&path).unwrap_err().to_string();
            assert!(error.contains("poll interval") || error.contains("duration"), "{error}");
        }
    }
}

#[cfg(test)]
mod plugin_tests {
    use super::*;
    use crate::plugins::{ChildOptions, Isolation};

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taskreg.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path)
    }

    #[test]
    fn an_isolated_library_carries_its_limits_and_environment() {
        let config = load(
            "[[plugins]]\npath = \"a.so\"\n\n[[plugins]]\ndir = \"more\"\nisolation = \"process\"\nmax_memory = \"512MiB\"\nmax_cpu_seconds = 30\nenv = [\"AWS_PROFILE\"]\n",
        )
        .unwrap();
        let locations = config.plugin_locations();
        assert_eq!(locations[0].isolation, Isolation::InProcess);
        assert!(!locations[0].is_folder && locations[1].is_folder);
        assert_eq!(
            locations[1].isolation,
            Isolation::Process(ChildOptions {
                max_memory: Some(512 << 20),
                max_cpu_seconds: Some(30),
                env: vec!["AWS_PROFILE".into()],
                program: None,
            })
        );
    }

    #[test]
    fn sizes_read_with_or_without_a_unit() {
        assert_eq!(parse_byte_size("536870912"), Some(536_870_912));
        assert_eq!(parse_byte_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_byte_size("300 MB"), Some(300_000_000));
        assert_eq!(parse_byte_size("64k"), Some(64_000));
        assert_eq!(parse_byte_size("lots"), None);
        assert_eq!(parse_byte_size("5 parsecs"), None);
    }

    #[test]
    fn child_limits_without_isolation_and_limits_too_small_are_refused() {
        let error = load("[[plugins]]\npath = \"a.so\"\nmax_memory = \"1GiB\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("isolation = \"process\""), "{error}");
        let error = load("[[plugins]]\npath = \"a.so\"\nisolation = \"process\"\nmax_memory = \"1MiB\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("at least 16MiB"), "{error}");
        let error = load("[[plugins]]\npath = \"a.so\"\nisolation = \"sandbox\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("sandbox"), "{error}");
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn strategy_and_guard_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taskreg.toml");
        std::fs::write(
            &path,
            "[conflicts]\nstrategy = \"newest\"\n[lifecycle]\nmax_removal_share = 0.2\n",
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        assert_eq!(config.strategy().name(), "newest");
        assert_eq!(config.lifecycle.max_removal_share, 0.2);
        assert_eq!(Config::default().strategy().name(), "source-priority");

        std::fs::write(&path, "[conflicts]\nstrategy = \"coin-toss\"\n").unwrap();
        let error = Config::load(&path).unwrap_err().to_string();
        assert!(
            error.contains("coin-toss") && error.contains("immutable, newest, reject"),
            "{error}"
        );
        std::fs::write(&path, "[lifecycle]\nmax_removal_share = 2.0\n").unwrap();
        assert!(Config::load(&path).unwrap_err().to_string().contains("between 0 and 1"));
    }
}

#[cfg(test)]
mod validation_tests {
    use super::*;

    #[test]
    fn rule_levels_limits_and_strict_are_read_and_unknown_rules_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taskreg.toml");
        std::fs::write(
            &path,
            "[validation]\nstrict = true\nscript = \"off\"\nschemas = \"warn\"\n[validation.limits]\nmax_files = 3\nlevel = \"warn\"\n",
        )
        .unwrap();
        let validation = Config::load(&path).unwrap().validation().unwrap();
        assert!(validation.strict);
        assert_eq!(validation.context.limits.max_files, 3);
        let rules: Vec<&str> = validation.rules().map(|(v, _)| v.rule()).collect();
        assert!(!rules.contains(&"script") && rules.contains(&"schemas"));
        let level_of = |validation: &registry_core::Validation, rule: &str| {
            validation
                .rules()
                .find(|(v, _)| v.rule() == rule)
                .map(|(_, level)| level)
        };
        assert_eq!(level_of(&validation, "limits"), Some(registry_core::RuleLevel::Warn));

        // The rule's level alone, as every other rule's is written.
        std::fs::write(&path, "[validation]\nlimits = \"off\"\n").unwrap();
        let validation = Config::load(&path).unwrap().validation().unwrap();
        assert_eq!(level_of(&validation, "limits"), None, "a rule that is off does not run");
        assert_eq!(validation.context.limits, registry_core::Limits::default());

        std::fs::write(&path, "[validation.limits]\nmax_filez = 3\n").unwrap();
        let error = Config::load(&path).unwrap_err().to_string();
        assert!(error.contains("max_filez"), "{error}");

        std::fs::write(&path, "[validation]\nscripts = \"off\"\n").unwrap();
        let error = Config::load(&path).unwrap_err().to_string();
        assert!(error.contains("unknown validation rule `scripts`"), "{error}");
    }
}
