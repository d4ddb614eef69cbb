//! The one error type of [`Registry`](super::Registry)'s operations.
//!
//! Error policy: every variant is something a caller can act on, and carries the context a
//! person needs (which file, which source, which database — passwords hidden). A broken
//! task or a failing source is *not* an error: it is a problem in the run's report, and
//! the run goes on.

use crate::config::ConfigError;
use crate::sources::BuildError;
use crate::store::StoreError;
use crate::sync::SyncError;
use crate::watch::WatchError;

/// Why a registry operation could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The configuration file cannot be read or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The validation settings name a rule nobody registered.
    #[error("invalid validation settings: {0}")]
    Validation(registry_core::CoreError),
    /// The catalogue's database cannot be opened, read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A planned run could not be applied as planned (the catalogue changed meanwhile).
    #[error(transparent)]
    Sync(SyncError),
    /// A configured source cannot be built (unknown kind, refused settings).
    #[error(transparent)]
    Source(#[from] BuildError),
    /// There is nothing to sync: no configured source and no path given.
    #[error("nothing to sync: give folders or archives (`taskreg sync PATH…`) or a config with [[sources]]")]
    NoSources,
    /// The registry was opened read-only ([`RegistryBuilder::read_only`](super::RegistryBuilder::read_only)).
    #[error("this registry was opened read-only: it cannot {0}")]
    ReadOnly(&'static str),
    /// A version requirement is not one Cargo would accept.
    #[error("`{requirement}` is not a version requirement: {reason}")]
    Requirement {
        /// The text given.
        requirement: String,
        /// What semver said.
        reason: String,
    },
    /// The file watcher could not be started.
    #[error(transparent)]
    Watch(WatchError),
    /// `serve` could not accept connections, or its token file cannot be read.
    #[error("{0}")]
    Serve(String),
    /// A tree could not be indexed (its root cannot be read).
    #[error("cannot index {0}")]
    Index(String),
}

impl From<SyncError> for RegistryError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Store(e) => RegistryError::Store(e),
            other => RegistryError::Sync(other),
        }
    }
}

impl From<WatchError> for RegistryError {
    fn from(e: WatchError) -> Self {
        match e {
            WatchError::Sync(e) => e.into(),
            other => RegistryError::Watch(other),
        }
    }
}
