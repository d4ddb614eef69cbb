//! `taskreg status`: how each source's latest scan went, and the long-lived processes (watch, serve) with their caches. Exit 1
//! when a source's latest scan failed.

use super::Globals;
use crate::output::print_status;
use std::process::ExitCode;

pub async fn run(globals: &Globals) -> anyhow::Result<ExitCode> {
    let status = globals.reader().await?.status().await?;
    let failing = status.sources.iter().any(|s| !s.status.is_ok());
    if globals.json {
        super::print_json(&status)?;
    } else {
        print_status(&status);
    }
    Ok(if failing { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
