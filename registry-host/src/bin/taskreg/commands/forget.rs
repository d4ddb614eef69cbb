//! `taskreg forget SOURCE [--yes]`: retire a source from the catalogue now, instead of
//! waiting for its grace period. Without `--yes` it says what would become unavailable and
//! changes nothing (exit 1).

use super::Globals;
use std::process::ExitCode;

pub async fn run(globals: &Globals, source: &str, yes: bool) -> anyhow::Result<ExitCode> {
    let registry = if yes {
        globals.builder()?.open().await?
    } else {
        globals.reader().await?
    };
    let report = registry.forget(source, yes).await?;
    if globals.json {
        super::print_json(&report)?;
    } else if !report.known {
        println!("the catalogue has no task of a source named `{source}`: nothing to forget");
    } else {
        let versions: Vec<String> = report
            .unavailable
            .iter()
            .map(|v| format!("{}@{}", v.name, v.version))
            .collect();
        let what = if versions.is_empty() {
            "no version becomes unavailable (other sources offer all it offers)".to_owned()
        } else {
            format!(
                "{} version(s) become unavailable: {}",
                versions.len(),
                versions.join(", ")
            )
        };
        match &report.applied {
            Some(run) => println!(
                "forgot `{source}`: {} version(s) now missing; {what}",
                run.counts.missing
            ),
            None => println!("forgetting `{source}`: {what}. Nothing was changed: run again with --yes to do it"),
        }
        if report.configured_here {
            println!("note: this configuration still names `{source}`: its next sync brings it back");
        }
    }
    Ok(if report.known && report.applied.is_none() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
