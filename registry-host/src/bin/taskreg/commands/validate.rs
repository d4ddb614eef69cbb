//! `taskreg validate PATH…`: parse and check task folders and archives without a database.

use super::Globals;
use serde_json::{Value, json};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub async fn run(globals: &Globals, paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let report = globals.builder()?.validate(paths).await?;
    if globals.json {
        let rows: Vec<Value> = report
            .findings
            .iter()
            .map(|f| {
                let p = &f.problem;
                json!({
                    "path": f.path.display().to_string(), "locator": f.locator, "severity": p.severity,
                    "code": p.code, "message": p.message, "file": p.file, "pointer": p.pointer,
                    "line": p.line, "column": p.column,
                })
            })
            .collect();
        super::print_json(&rows)?;
    } else {
        let color = std::io::stdout().is_terminal();
        for finding in &report.findings {
            let shown = finding.shown();
            print!(
                "{}",
                registry_host::diagnostics::render(&finding.problem, Path::new(&shown), &shown, color)
            );
        }
        println!(
            "{} valid task(s), {} invalid; {} error(s), {} warning(s)",
            report.valid,
            report.invalid,
            report.errors(),
            report.warnings()
        );
    }
    Ok(if report.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
