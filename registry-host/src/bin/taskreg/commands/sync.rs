//! `taskreg sync [PATH…]`: scan the sources and bring the catalogue up to date.

use super::Globals;
use crate::output::print_sync_report;
use std::path::PathBuf;
use std::process::ExitCode;

pub async fn run(
    globals: &Globals,
    paths: &[PathBuf],
    strict: bool,
    concurrency: Option<usize>,
    allow_mass_removal: bool,
) -> anyhow::Result<ExitCode> {
    let mut builder = globals
        .builder()?
        .allow_mass_removal(allow_mass_removal)
        // One run per process: nothing is worth keeping for a next one.
        .cache_capacity(0);
    // `--strict` is `[validation] strict = true` for this run: what is tolerated by
    // default (test cases against their schemas, an odd uuid) refuses the task, and any
    // problem left fails the run.
    if strict {
        builder = builder.strict(true);
    }
    if let Some(loads) = concurrency {
        builder = builder.concurrency(loads);
    }
    if let Some(observer) = crate::progress::observer(globals.json) {
        builder = builder.observer(observer);
    }
    let registry = builder.open().await?;
    let (report, refused) = if paths.is_empty() {
        let refused = registry.load_sources().await?;
        super::report_refused(&refused);
        (registry.sync().await?, refused)
    } else {
        (registry.sync_paths(paths).await?, Vec::new())
    };
    if globals.json {
        super::print_json(&report)?;
    } else {
        print_sync_report(&report);
    }
    let failing = if registry.validation().strict {
        report.problems.len()
    } else {
        report.error_count()
    };
    Ok(if (strict && failing > 0) || !refused.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
