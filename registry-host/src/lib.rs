//! The taskreg host, as a library: one [`Registry`] that host applications embed.
//!
//! `registry-core` decides what a sync means; this crate does it. A [`Registry`] is built
//! from a `taskreg.toml` ([`Registry::from_config_file`]) or entirely in code
//! ([`Registry::builder`]), then opened; it owns the catalogue (SQLite by default,
//! PostgreSQL for a catalogue shared by many hosts), the sources that feed it (built-in
//! kinds found through `inventory`, kinds handed over at run time, plugin libraries), the
//! caches of a long-lived process and a stream of [`RegistryEvent`]s. Its operations cover
//! the whole job: [`sync`](Registry::sync), [`validate`](Registry::validate),
//! [`list`](Registry::list), [`resolve`](Registry::resolve), [`show`](Registry::show),
//! [`history`](Registry::history), [`problems`](Registry::problems),
//! [`conflicts`](Registry::conflicts), [`status`](Registry::status),
//! [`subscribe`](Registry::subscribe), [`watch`](Registry::watch) and
//! [`serve`](Registry::serve). The `taskreg` command line is a thin client of it.
//!
//! What it must not do: draw anything (progress is a [`SyncObserver`] the caller passes),
//! exit the process, or lose a stored task because a source failed.
//!
//! ```no_run
//! # async fn demo() -> Result<(), registry_host::RegistryError> {
//! use registry_host::Registry;
//!
//! let registry = Registry::builder()
//!     .database("sqlite://taskreg.db")
//!     .path_source("examples/tasks")
//!     .open()
//!     .await?;
//! let mut events = registry.subscribe();
//! let report = registry.sync().await?;
//! println!("{} added", report.counts.added);
//! while let Ok(event) = events.try_recv() {
//!     println!("{event:?}");
//! }
//! if let Some(found) = registry.resolve("addition", "^1").await? {
//!     println!("addition@^1 -> {}", found.task.version);
//! }
//! # Ok(()) }
//! ```
//!
//! The modules below [`Registry`] are public for applications that need a lower level
//! (one store connection, one run planned and applied apart); `docs/architecture.md`
//! explains how they fit.

#![deny(missing_docs)]

// The built-in source kinds register themselves with `inventory`; naming the crates keeps
// the linker from dropping them.
use fs_source as _;
use http_source as _;
use zip_source as _;

pub mod cache;
pub mod config;
pub mod diagnostics;
pub mod events;
pub mod generate;
pub mod plugins;
mod presence;
mod registry;
mod retirement;
pub mod serve;
pub mod signing;
pub mod sources;
pub mod store;
pub mod sync;
mod ui;
pub mod watch;

pub use events::RegistryEvent;
pub use registry::{
    BuiltIndex, DEFAULT_DATABASE, Finding, ForgetReport, IndexDifference, ListFilter, Registry, RegistryBuilder,
    RegistryError, TaskDetails, ValidationReport,
};
pub use sources::{BuildError, SourceBuilder, build_sources};
pub use sync::{SyncObserver, SyncReport};
