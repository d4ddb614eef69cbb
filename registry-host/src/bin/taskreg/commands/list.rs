//! `taskreg list [--all]`: the available task versions (with `--all`, unavailable ones too),
//! printed a page at a time, so that listing a catalogue of any size takes flat memory.

use super::{Globals, JsonArray};
use futures::TryStreamExt;
use registry_host::ListFilter;
use std::process::ExitCode;

pub async fn run(globals: &Globals, all: bool) -> anyhow::Result<ExitCode> {
    let filter = if all {
        ListFilter::all()
    } else {
        ListFilter::available()
    };
    let registry = globals.reader().await?;
    let mut pages = std::pin::pin!(registry.list_pages(filter));
    if globals.json {
        let mut array = JsonArray::start()?;
        while let Some(page) = pages.try_next().await? {
            for version in &page {
                array.push(version)?;
            }
        }
        array.finish()?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut listed = false;
    while let Some(page) = pages.try_next().await? {
        listed = true;
        // Aligned within a page (500 names): the list is never held whole.
        let width = page.iter().map(|v| v.name.len()).max().unwrap_or(4).max(4);
        for v in &page {
            let state = if v.available { "" } else { "  (unavailable)" };
            let short = v.digest.get(..19).unwrap_or(&v.digest);
            let signed = v
                .signed_by
                .as_ref()
                .map(|k| format!("  signed by {k}"))
                .unwrap_or_default();
            println!(
                "{:width$}  {:10}  {short}  {}{signed}{state}",
                v.name,
                v.version,
                v.sources.join(", ")
            );
        }
    }
    if !listed {
        println!("no tasks (run `taskreg sync` first)");
    }
    Ok(ExitCode::SUCCESS)
}
