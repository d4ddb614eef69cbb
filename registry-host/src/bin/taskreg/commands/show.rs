//! `taskreg show NAME[@VERSION|@REQUIREMENT]`: one task version in full. A version names
//! exactly one; a requirement as Cargo writes them (`^1.2`, `~1`, `>=1, <2`) resolves to
//! the newest available match; no suffix means the newest available version.

use super::Globals;
use crate::output::{print_task, task_json};
use std::process::ExitCode;

/// What `NAME@…` asks for, decided once.
enum Wanted<'a> {
    /// No suffix: the newest available version.
    Newest,
    /// A version (build metadata dropped): exactly that one.
    Exact(String),
    /// A requirement: the newest available match.
    Matching(&'a str),
    /// Neither: no task version can have it.
    Unknown(&'a str),
}

impl<'a> Wanted<'a> {
    fn parse(suffix: Option<&'a str>) -> Self {
        match suffix {
            None => Wanted::Newest,
            Some(text) => match registry_core::parse_version(text) {
                Ok(version) => Wanted::Exact(version.to_string()),
                Err(_) if semver::VersionReq::parse(text.trim()).is_ok() => Wanted::Matching(text),
                Err(_) => Wanted::Unknown(text),
            },
        }
    }
}

pub async fn run(globals: &Globals, task: &str) -> anyhow::Result<ExitCode> {
    let registry = globals.reader().await?;
    let (name, suffix) = match task.split_once('@') {
        Some((name, suffix)) => (name, Some(suffix)),
        None => (task, None),
    };
    let wanted = Wanted::parse(suffix);
    let found = match &wanted {
        Wanted::Newest => registry.show(name, None).await?,
        Wanted::Exact(version) => registry.show(name, Some(version)).await?,
        Wanted::Matching(requirement) => registry.resolve(name, requirement).await?,
        Wanted::Unknown(_) => None,
    };
    let Some(found) = found else {
        let what = match wanted {
            Wanted::Newest => format!("no available version of task `{name}`"),
            Wanted::Exact(version) => format!("no task `{name}@{version}`"),
            Wanted::Matching(requirement) => {
                format!("no available version of task `{name}` matches `{requirement}`")
            }
            Wanted::Unknown(text) => format!("no task `{name}@{text}`"),
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
