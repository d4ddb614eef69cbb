//! `taskreg index PATH [--check]`: write the tree's `.ratchet/index.json` from its tasks,
//! or say how the index it has differs from them.

use super::Globals;
use registry_core::layout::repository::RepositoryIndex;
use registry_host::BuiltIndex;
use std::path::Path;
use std::process::ExitCode;

pub async fn run(globals: &Globals, root: &Path, check: bool) -> anyhow::Result<ExitCode> {
    let built = globals.builder()?.index(root).await?;
    for finding in &built.findings {
        eprintln!(
            "{}: {}[{}]: {}",
            finding.shown(),
            finding.problem.severity,
            finding.problem.code,
            finding.problem.message
        );
    }
    let file = BuiltIndex::file(root);
    if check {
        let existing = match std::fs::read_to_string(&file) {
            Ok(text) => RepositoryIndex::parse(&text).map_err(anyhow::Error::msg)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!(
                    "{} does not exist: run `taskreg index {}`",
                    file.display(),
                    root.display()
                );
                return Ok(ExitCode::from(1));
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", file.display()))),
        };
        let differences = built.differences(&existing);
        if globals.json {
            super::print_json(&differences)?;
        } else {
            for d in &differences {
                println!("{}: {}", d.path, d.difference);
            }
            if differences.is_empty() {
                println!(
                    "{} lists the {} task(s) of the tree",
                    file.display(),
                    built.index.tasks.len()
                );
            }
        }
        return Ok(if differences.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    if let Some(folder) = file.parent() {
        std::fs::create_dir_all(folder)?;
    }
    let mut text = serde_json::to_string_pretty(&built.index)?;
    text.push('\n');
    std::fs::write(&file, text)?;
    if globals.json {
        super::print_json(&built.index)?;
    } else {
        println!("wrote {} ({} task(s))", file.display(), built.index.tasks.len());
    }
    Ok(ExitCode::SUCCESS)
}
