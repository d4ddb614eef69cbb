//! `taskreg show NAME[@VERSION|@REQUIREMENT]`: one task version in full. A version names
//! exactly one; a requirement as Cargo writes them (`^1.2`, `~1`, `>=1, <2`) resolves to
//! the newest available match; no suffix means the newest available version.

use super::Globals;
use crate::output::{print_task, task_json};
use std::process::ExitCode;

pub async fn run(globals: &Globals, task: &str) -> anyhow::Result<ExitCode> {
    let registry = globals.reader().await?;
    let (name, wanted) = match task.split_once('@') {
        Some((name, wanted)) => (name, Some(wanted)),
        None => (task, None),
    };
    let found = match wanted {
        None => registry.show(name, None).await?,
        Some(version) if registry_core::parse_version(version).is_ok() => registry.show(name, Some(version)).await?,
        Some(requirement) if semver::VersionReq::parse(requirement.trim()).is_ok() => {
            registry.resolve(name, requirement).await?
        }
        // Neither a version nor a requirement: there is no such task version.
        Some(other) => registry.show(name, Some(other)).await?,
    };
    let Some(found) = found else {
        let what = match wanted {
            None => format!("no available version of task `{name}`"),
            Some(version) if registry_core::parse_version(version).is_ok() => {
                let version = registry_core::parse_version(version)
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                format!("no task `{name}@{version}`")
            }
            Some(requirement) if semver::VersionReq::parse(requirement.trim()).is_ok() => {
                format!("no available version of task `{name}` matches `{requirement}`")
            }
            Some(other) => format!("no task `{name}@{other}`"),
        };
        eprintln!("error: {what}");
        return Ok(ExitCode::from(1));
    };
    if globals.json {
        super::print_json(&task_json(&found.task, &found.origins)?)?;
    } else {
        print_task(&found.task, &found.origins);
    }
    Ok(ExitCode::SUCCESS)
}
