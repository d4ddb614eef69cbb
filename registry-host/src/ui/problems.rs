//! `/ui/problems`: every current problem, grouped by source then task, with severity, code,
//! file and line, linked to the task.

use super::{PageResult, Shell, page_in, task_href};
use crate::serve::ServeState;
use axum::extract::State;
use maud::html;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub(super) async fn list(State(state): State<Arc<ServeState>>) -> PageResult {
    let mut store = state.store().await?;
    let problems = store.problems().await?;
    let origins = store.problem_origin_names().await?;
    drop(store);
    let task_of: HashMap<(&str, &str), &str> = origins
        .iter()
        .map(|(s, l, n)| ((s.as_str(), l.as_str()), n.as_str()))
        .collect();
    let mut by_source: BTreeMap<&str, BTreeMap<&str, Vec<&crate::store::ProblemRow>>> = BTreeMap::new();
    for row in &problems {
        by_source
            .entry(row.source.as_str())
            .or_default()
            .entry(row.locator.as_str())
            .or_default()
            .push(row);
    }
    Ok(page_in(
        Shell::of(&state),
        "Problems",
        html! {
            h1 { "Problems" }
            @if problems.is_empty() { p { "No current problems." } }
            @for (source, locators) in &by_source {
                h2 { "Source " code { (source) } }
                @for (locator, rows) in locators {
                    h3 {
                        @if locator.is_empty() { "the source itself" }
                        @else if let Some(name) = task_of.get(&(*source, *locator)) {
                            a href=(task_href(name, None)) { (name) } " " span.muted { "at " (locator) }
                        } @else { (locator) }
                    }
                    table {
                        thead { tr { th { "Severity" } th { "Code" } th { "File" } th { "What" } } }
                        tbody {
                            @for row in rows {
                                tr {
                                    td class={ "severity-" (row.problem.severity) } { (row.problem.severity) }
                                    td { code { (row.problem.code) } }
                                    td {
                                        @if let Some(file) = &row.problem.file { code { (file) } }
                                        @if let Some(line) = row.problem.line { " line " (line) }
                                        @if let Some(pointer) = &row.problem.pointer { " " code { (pointer) } }
                                    }
                                    td { (row.problem.message) }
                                }
                            }
                        }
                    }
                }
            }
        },
    ))
}
