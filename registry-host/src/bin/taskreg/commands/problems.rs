//! `taskreg problems`: the current problems, by source and locator.

use super::Globals;
use crate::output::{location, print_problem, problem_row_json};
use serde_json::Value;
use std::process::ExitCode;

pub async fn run(globals: &Globals) -> anyhow::Result<ExitCode> {
    let problems = globals.reader().await?.problems().await?;
    if globals.json {
        let rows: Vec<Value> = problems.iter().map(problem_row_json).collect();
        super::print_json(&rows)?;
    } else if problems.is_empty() {
        println!("no problems");
    } else {
        for row in &problems {
            print_problem(&row.problem, &location(&row.source, &row.locator, &row.problem));
        }
    }
    Ok(ExitCode::SUCCESS)
}
