//! Building sources: one [`Source`] per configured entry, of a built-in kind (found
//! through `inventory`), a kind the host application handed over at run time, or a kind a
//! plugin library provides.

use crate::plugins;
use registry_core::{CoreError, Source, SourceError, SourceKind, SourceSpec};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Why a source could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No built-in kind, run-time kind or plugin provides the entry's `type`.
    #[error(transparent)]
    UnknownKind(#[from] CoreError),
    /// The kind refused the entry's settings.
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Builds every source of `specs` with a built-in kind, in order.
pub fn build_sources(specs: &[SourceSpec]) -> Result<Vec<Box<dyn Source>>, BuildError> {
    SourceBuilder::default().build(specs)
}

/// Builds sources of built-in kinds, of the kinds given at run time and of the kinds a
/// configuration's plugins provide.
#[derive(Default)]
pub struct SourceBuilder {
    /// The plugin libraries loaded, and those refused.
    pub plugins: plugins::PluginSet,
    /// Kinds handed over in code; they take precedence over built-in kinds of the same name.
    pub kinds: Vec<SourceKind>,
    /// A plugin source's call timeout, by source name.
    pub timeouts: HashMap<String, Duration>,
    /// Where plugin sources keep their files; each gets a folder of its own inside.
    pub cache_dir: PathBuf,
}

impl std::fmt::Debug for SourceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceBuilder")
            .field("plugins", &self.plugins)
            .field("kinds", &self.kinds.iter().map(|k| k.name).collect::<Vec<_>>())
            .field("cache_dir", &self.cache_dir)
            .finish()
    }
}

impl SourceBuilder {
    /// Builds every source of `specs`, in order.
    pub fn build(&self, specs: &[SourceSpec]) -> Result<Vec<Box<dyn Source>>, BuildError> {
        specs.iter().map(|spec| self.build_one(spec)).collect()
    }

    /// The kind called `name` among those given at run time, then the built-in ones.
    fn find_kind(&self, name: &str) -> Option<SourceKind> {
        self.kinds
            .iter()
            .find(|k| k.name == name)
            .copied()
            .or_else(|| registry_core::find_kind(name).copied())
    }

    /// Builds one source.
    pub fn build_one(&self, spec: &SourceSpec) -> Result<Box<dyn Source>, BuildError> {
        if let Some(kind) = self.find_kind(&spec.kind) {
            // The same check as a plugin kind's: every failing field named, unknown keys refused.
            plugins::check_settings(&(kind.settings_schema)(), &spec.settings).map_err(|reason| {
                SourceError::Config {
                    source_name: spec.name.clone(),
                    reason,
                }
            })?;
            return Ok((kind.build)(spec)?);
        }
        let options = plugins::PluginSourceOptions {
            timeout: self
                .timeouts
                .get(&spec.name)
                .copied()
                .unwrap_or(plugins::DEFAULT_TIMEOUT),
            cache_dir: self.cache_dir.join(plugins::cache_folder_name(&spec.name)),
        };
        if let Some(built) = plugins::build_plugin_source(&self.plugins, spec, &options) {
            return Ok(built?);
        }
        if !self.plugins.refused.is_empty() {
            // The kind may be one a refused library provides: this source fails its scans
            // (so nothing of it is removed) and the others sync.
            return Ok(Box::new(plugins::UnavailableSource {
                name: spec.name.clone(),
                kind: spec.kind.clone(),
                reason: format!(
                    "no built-in kind or loaded plugin provides `{}`, and {} plugin librar{} could not be loaded",
                    spec.kind,
                    self.plugins.refused.len(),
                    if self.plugins.refused.len() == 1 { "y" } else { "ies" }
                ),
            }));
        }
        let mut known: Vec<String> = self.kinds.iter().map(|k| k.name.to_string()).collect();
        known.extend(registry_core::kinds().iter().map(|k| k.name.to_string()));
        known.extend(
            self.plugins
                .libraries
                .iter()
                .flat_map(|l| l.info.kinds.iter().map(|k| k.name.clone())),
        );
        known.sort();
        known.dedup();
        Err(CoreError::UnknownSourceKind {
            source_name: spec.name.clone(),
            kind: spec.kind.clone(),
            known: known.join(", "),
        }
        .into())
    }
}

/// A source the host application built itself, shared by every run of its registry: it
/// is the application's object, so the registry holds it by `Arc` and forwards each call.
pub(crate) struct SharedSource(pub(crate) Arc<dyn Source>);

#[async_trait::async_trait]
impl Source for SharedSource {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn kind(&self) -> &str {
        self.0.kind()
    }
    fn location(&self) -> String {
        self.0.location()
    }
    async fn scan(&self) -> Result<registry_core::Scan, SourceError> {
        self.0.scan().await
    }
    async fn load(&self, entry: &registry_core::Entry) -> Result<registry_core::Bundle, SourceError> {
        self.0.load(entry).await
    }
    fn watch_path(&self) -> Option<PathBuf> {
        self.0.watch_path()
    }
    fn keeps_state(&self) -> bool {
        self.0.keeps_state()
    }

    fn loads_in_flight(&self) -> Option<usize> {
        self.0.loads_in_flight()
    }

    fn saved_state(&self) -> Option<String> {
        self.0.saved_state()
    }

    fn restore_state(&self, state: &str) {
        self.0.restore_state(state);
    }

    async fn scan_changed(
        &self,
        changed: &[PathBuf],
    ) -> Option<Result<(registry_core::ScanScope, registry_core::Scan), SourceError>> {
        self.0.scan_changed(changed).await
    }
}
