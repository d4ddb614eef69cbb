//! `taskreg list [--all]`: the available task versions (with `--all`, unavailable ones too).

use super::Globals;
use registry_host::ListFilter;
use std::process::ExitCode;

pub async fn run(globals: &Globals, all: bool) -> anyhow::Result<ExitCode> {
    let filter = if all {
        ListFilter::all()
    } else {
        ListFilter::available()
    };
    let versions = globals.reader().await?.list(filter).await?;
    if globals.json {
        super::print_json(&versions)?;
    } else if versions.is_empty() {
        println!("no tasks (run `taskreg sync` first)");
    } else {
        let width = versions.iter().map(|v| v.name.len()).max().unwrap_or(4).max(4);
        for v in &versions {
            let state = if v.available { "" } else { "  (unavailable)" };
            let short = v.digest.get(..19).unwrap_or(&v.digest);
            println!(
                "{:width$}  {:10}  {short}  {}{state}",
                v.name,
                v.version,
                v.sources.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
