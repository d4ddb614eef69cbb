//! `taskreg sign --secret-key FILE PATH…`: check each task, then write its signature
//! (`signature.minisig`) next to it.

use super::Globals;
use registry_host::signing::{KeyPair, KeyPassword, SigningReport};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub async fn run(globals: &Globals, secret: &Path, paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let password = match std::env::var("TASKREG_KEY_PASSWORD") {
        Ok(password) if !password.is_empty() => KeyPassword::Given(password),
        _ => KeyPassword::Ask,
    };
    let key = KeyPair::from_secret_key_file(secret, password)?;
    let builder = globals.builder()?;
    let report = registry_host::signing::sign_paths(&key, paths, &builder.validation()?, &[]).await?;
    print(globals, &report, |signed| match &signed.written {
        Some(file) => format!("signed by key {}: {}", key.key_id(), file.display()),
        None => "not signed".to_owned(),
    })?;
    Ok(if report.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints a signing report: each task with what `line` says of it, then its findings.
pub fn print(
    globals: &Globals,
    report: &SigningReport,
    line: impl Fn(&registry_host::signing::Signed) -> String,
) -> anyhow::Result<()> {
    if globals.json {
        let tasks: Vec<_> = report
            .tasks
            .iter()
            .map(|t| {
                let problems: Vec<_> = report
                    .findings
                    .iter()
                    .filter(|f| f.shown() == t.shown)
                    .map(|f| json!({"severity": f.problem.severity, "code": f.problem.code, "message": f.problem.message, "file": f.problem.file}))
                    .collect();
                json!({
                    "path": t.shown,
                    "name": t.task.as_ref().map(|(n, _)| n),
                    "version": t.task.as_ref().map(|(_, v)| v),
                    "signature": t.written.as_ref().map(|w| w.display().to_string()),
                    "problems": problems,
                })
            })
            .collect();
        return super::print_json(&tasks);
    }
    for task in &report.tasks {
        let what = task
            .task
            .as_ref()
            .map(|(name, version)| format!("{name}@{version}"))
            .unwrap_or_else(|| "(not a valid task)".into());
        println!("{}: {what}: {}", task.shown, line(task));
        for finding in report.findings.iter().filter(|f| f.shown() == task.shown) {
            let p = &finding.problem;
            let file = p.file.as_deref().map(|f| format!(" [{f}]")).unwrap_or_default();
            println!("  {} {}{file}: {}", p.severity, p.code, p.message);
        }
    }
    let failed = report.tasks.iter().filter(|t| {
        report
            .findings
            .iter()
            .any(|f| f.shown() == t.shown && f.problem.is_error())
    });
    println!("{} task(s), {} failed", report.tasks.len(), failed.count());
    Ok(())
}
