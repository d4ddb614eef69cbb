//! `taskreg watch [PATH…]`: sync, then keep the catalogue current until SIGINT or SIGTERM.

use super::Globals;
use crate::args::WatchTiming;
use registry_host::{Registry, RegistryBuilder};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub async fn run(globals: &Globals, paths: &[PathBuf], timing: &WatchTiming) -> anyhow::Result<ExitCode> {
    let shutdown = super::shutdown_signal();
    let registry = writer(globals, timing)?.open().await?;
    if paths.is_empty() {
        watch_configured(&registry, globals.json, shutdown).await?;
    } else {
        let cache = registry.check_cache().cloned();
        registry
            .watch_paths_with(paths, shutdown, |trigger, result| {
                crate::output::report_run(trigger, result, cache.as_deref(), globals.json)
            })
            .await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The registry of a long-lived process that keeps the catalogue current.
pub fn writer(globals: &Globals, timing: &WatchTiming) -> anyhow::Result<RegistryBuilder> {
    let mut builder = globals.builder()?.watch_timing(
        Duration::from_millis(timing.debounce_ms),
        Duration::from_secs(timing.poll_secs),
        Duration::from_secs(timing.full_rescan_secs),
    );
    if let Some(observer) = crate::progress::observer(globals.json) {
        builder = builder.observer(observer);
    }
    Ok(builder)
}

/// Watches the configured sources, printing one line per run.
pub async fn watch_configured(
    registry: &Registry,
    json: bool,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), registry_host::RegistryError> {
    let cache = registry.check_cache().cloned();
    super::report_refused(&registry.load_sources().await?);
    registry
        .watch_with(shutdown, |trigger, result| {
            crate::output::report_run(trigger, result, cache.as_deref(), json)
        })
        .await
}
