//! `taskreg history NAME`: every version of a task ever seen, with availability, digests
//! and the contents each version had before an update replaced them.

use super::Globals;
use crate::output::format_millis;
use std::process::ExitCode;

pub async fn run(globals: &Globals, name: &str) -> anyhow::Result<ExitCode> {
    let history = globals.reader().await?.history(name).await?;
    if history.is_empty() {
        eprintln!("error: task `{name}` was never seen");
        return Ok(ExitCode::from(1));
    }
    if globals.json {
        super::print_json(&history)?;
    } else {
        for v in &history {
            let state = match v.missing_since {
                None if v.available => "available".to_owned(),
                Some(since) => format!("unavailable since {}", format_millis(since)),
                None => "unavailable".to_owned(),
            };
            println!(
                "{name}@{}  {}  first seen {}  last seen {}  {state}",
                v.version,
                v.digest.get(..19).unwrap_or(&v.digest),
                format_millis(v.first_seen),
                format_millis(v.last_seen)
            );
            for replaced in &v.replaced {
                println!(
                    "    replaced {}  on {}",
                    replaced.digest.get(..19).unwrap_or(&replaced.digest),
                    format_millis(replaced.replaced_at)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
