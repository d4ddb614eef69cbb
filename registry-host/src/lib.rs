//! The taskreg host: everything with side effects.
//!
//! `registry-core` decides what a sync means; this crate does it: it reads the
//! configuration, builds the sources (built-in kinds found through `inventory`), runs the
//! [`sync`] driver, persists the outcome in the [`store`] (SQLite by default, PostgreSQL
//! for a shared catalogue) and offers it all as the `taskreg` command line ([`cli`]).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use registry_host::store::{DatabaseUrl, Store};
//! use registry_host::sync::{SyncOptions, sync};
//!
//! let mut store = Store::open(&DatabaseUrl::parse("sqlite://taskreg.db", ".".as_ref())?).await?;
//! let sources = registry_host::build_sources(&[registry_host::config::path_source_spec("examples/tasks".as_ref())])?;
//! let report = sync(&mut store, &sources, &registry_core::SourcePriority, &SyncOptions::default()).await?;
//! println!("{} added", report.counts.added);
//! # Ok(()) }
//! ```

// The built-in source kinds register themselves with `inventory`; naming the crates keeps
// the linker from dropping them.
use fs_source as _;
use http_source as _;
use zip_source as _;

pub mod bench;
pub mod cache;
pub mod cli;
pub mod config;
pub mod diagnostics;
pub mod events;
pub mod fixtures;
pub mod plugins;
pub mod serve;
pub mod store;
pub mod sync;
#[doc(hidden)]
pub mod testing;
pub mod watch;

use registry_core::{CoreError, Source, SourceError, SourceSpec};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    UnknownKind(#[from] CoreError),
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Builds every configured source with its built-in kind (found through `inventory`) or
/// the plugin that provides it, in order.
pub fn build_sources(specs: &[SourceSpec]) -> Result<Vec<Box<dyn Source>>, BuildError> {
    SourceBuilder::default().build(specs)
}

/// Builds sources of built-in kinds and of the kinds a configuration's plugins provide.
#[derive(Debug, Default)]
pub struct SourceBuilder {
    pub plugins: plugins::PluginSet,
    timeouts: HashMap<String, Duration>,
    cache_dir: PathBuf,
}

impl SourceBuilder {
    /// Loads the configuration's plugins; a refused library is kept in
    /// `plugins.refused` and the sources of kinds it might have provided fail their scans.
    pub fn from_config(config: &config::Config) -> Self {
        let (files, folders) = config.plugin_locations();
        SourceBuilder {
            plugins: plugins::PluginSet::load(&files, &folders),
            timeouts: config.timeouts(),
            cache_dir: config.cache_dir(),
        }
    }

    pub fn build(&self, specs: &[SourceSpec]) -> Result<Vec<Box<dyn Source>>, BuildError> {
        specs.iter().map(|spec| self.build_one(spec)).collect()
    }

    fn build_one(&self, spec: &SourceSpec) -> Result<Box<dyn Source>, BuildError> {
        if let Some(kind) = registry_core::find_kind(&spec.kind) {
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
        let mut known: Vec<String> = registry_core::kinds().iter().map(|k| k.name.to_string()).collect();
        known.extend(
            self.plugins
                .libraries
                .iter()
                .flat_map(|l| l.info.kinds.iter().map(|k| k.name.clone())),
        );
        Err(CoreError::UnknownSourceKind {
            source_name: spec.name.clone(),
            kind: spec.kind.clone(),
            known: known.join(", "),
        }
        .into())
    }
}
