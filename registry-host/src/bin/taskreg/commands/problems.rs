//! `taskreg problems`: the current problems, by source and locator, printed a page at a
//! time, so that a catalogue with many broken tasks is listed in flat memory.

use super::{Globals, JsonArray};
use crate::output::{location, print_problem, problem_row_json};
use futures::TryStreamExt;
use std::process::ExitCode;

pub async fn run(globals: &Globals) -> anyhow::Result<ExitCode> {
    let registry = globals.reader().await?;
    let mut pages = std::pin::pin!(registry.problem_pages());
    if globals.json {
        let mut array = JsonArray::start()?;
        while let Some(page) = pages.try_next().await? {
            for row in &page {
                array.push(&problem_row_json(row))?;
            }
        }
        array.finish()?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut any = false;
    while let Some(page) = pages.try_next().await? {
        any = true;
        for row in &page {
            print_problem(&row.problem, &location(&row.source, &row.locator, &row.problem));
        }
    }
    if !any {
        println!("no problems");
    }
    Ok(ExitCode::SUCCESS)
}
