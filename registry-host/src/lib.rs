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
pub mod serve;
pub mod store;
pub mod sync;
#[doc(hidden)]
pub mod testing;
pub mod watch;

use registry_core::{CoreError, Source, SourceError, SourceSpec};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    UnknownKind(#[from] CoreError),
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Builds every configured source with its registered kind, in order.
pub fn build_sources(specs: &[SourceSpec]) -> Result<Vec<Box<dyn Source>>, BuildError> {
    specs
        .iter()
        .map(|spec| {
            let kind = registry_core::find_kind(&spec.kind).ok_or_else(|| CoreError::UnknownSourceKind {
                source_name: spec.name.clone(),
                kind: spec.kind.clone(),
                known: registry_core::kinds()
                    .iter()
                    .map(|k| k.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
            Ok((kind.build)(spec)?)
        })
        .collect()
}
