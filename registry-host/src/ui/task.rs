//! `/ui/tasks/{name}[/{version}]`: one version in full — metadata, description, schemas as
//! tables of fields (raw JSON a click away), the script, test cases, every version with
//! availability and digest, the origins, and the task's problems and conflicts.

use super::{PageError, PageResult, Shell, page_in, task_href, time};
use crate::serve::ServeState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use maud::{Markup, html};
use serde_json::Value;
use std::sync::Arc;

pub(super) async fn newest(State(state): State<Arc<ServeState>>, Path(name): Path<String>) -> PageResult {
    render(&state, &name, None).await
}

pub(super) async fn version(
    State(state): State<Arc<ServeState>>,
    Path((name, version)): Path<(String, String)>,
) -> PageResult {
    render(&state, &name, Some(&version)).await
}

async fn render(state: &ServeState, name: &str, version: Option<&str>) -> PageResult {
    let mut store = state.store().await?;
    let history = store.history(name).await?;
    if history.is_empty() {
        return Err(PageError(
            StatusCode::NOT_FOUND,
            format!("No task `{name}` was ever seen."),
        ));
    }
    // The newest available version, else the newest seen.
    let wanted = match version {
        Some(version) => version.to_owned(),
        None => history
            .iter()
            .find(|v| v.available)
            .unwrap_or(&history[0])
            .version
            .clone(),
    };
    let Some((task, origins)) = store.show(name, Some(&wanted)).await? else {
        return Err(PageError(
            StatusCode::NOT_FOUND,
            format!("No version {wanted} of `{name}`."),
        ));
    };
    let problems = store.problems_of_task(name).await?;
    let conflicts = store.conflicts_of_task(name).await?;
    drop(store);

    let metadata: Value = serde_json::from_str(&task.metadata).unwrap_or(Value::Null);
    let text = |key: &str| metadata.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    let tests: Vec<Value> = serde_json::from_str(&task.tests).unwrap_or_default();
    let schema = |text: &Option<String>| text.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok());
    let title = format!("{} {}", task.name, task.version);
    Ok(page_in(
        Shell::of(state),
        &title,
        html! {
            h1 { (task.name) " " span.muted { (task.version) } }
            @if !task.available { p.error { "This version is unavailable: no source offers it now." } }
            @if !text("label").is_empty() { p { strong { (text("label")) } } }
            p { (text("description")) }
            table aria-label="Metadata" {
                tbody {
                    tr { th scope="row" { "UUID" } td { code { (task.uuid) } } }
                    tr { th scope="row" { "Digest" } td { code { (task.digest) } } }
                    tr { th scope="row" { "Signature" } td { (signature(&task.signature)) } }
                    @if !text("category").is_empty() { tr { th scope="row" { "Category" } td { (text("category")) } } }
                    tr { th scope="row" { "First seen" } td { (time(task.first_seen)) } }
                    tr { th scope="row" { "Content updated" } td { (time(task.content_updated_at)) } }
                }
            }
            h2 { "Origins" }
            @if origins.is_empty() { p.muted { "No source offers it now." } }
            ul { @for origin in &origins { li { code { (origin.source) } " at " code { (origin.locator) } } } }
            @if !problems.is_empty() {
                h2 { "Problems" }
                table {
                    thead { tr { th { "Severity" } th { "Code" } th { "Where" } th { "What" } } }
                    tbody {
                        @for row in &problems {
                            tr {
                                td class={ "severity-" (row.problem.severity) } { (row.problem.severity) }
                                td { code { (row.problem.code) } }
                                td {
                                    (row.source) ":" (row.locator)
                                    @if let Some(file) = &row.problem.file { "/" (file) }
                                    @if let Some(pointer) = &row.problem.pointer { " #" (pointer) }
                                    @if let Some(line) = row.problem.line { " line " (line) }
                                }
                                td { (row.problem.message) }
                            }
                        }
                    }
                }
            }
            @if !conflicts.is_empty() {
                h2 { "Conflicts" }
                @for conflict in &conflicts {
                    p { (conflict.version) " (" (conflict.strategy) "): " (conflict.detail.decision) }
                    ul {
                        @for offer in &conflict.detail.offers {
                            li { (offer.source) ":" (offer.locator) " " code { (offer.digest) }
                                 @if let Some(key) = &offer.signed_by { " " span.signed { "signed by " (key) } } }
                        }
                    }
                }
            }
            h2 { "Input" }
            (schema_table(schema(&task.input_schema)))
            h2 { "Output" }
            (schema_table(schema(&task.output_schema)))
            h2 { "Script" }
            pre.script { code.language-javascript { (super::highlight::javascript(&task.script)) } }
            h2 { "Test cases (" (tests.len()) ")" }
            @for test in &tests {
                details {
                    summary { (test["file"].as_str().unwrap_or("")) }
                    pre { code { (serde_json::to_string_pretty(&test["case"]).unwrap_or_default()) } }
                }
            }
            h2 { "Versions" }
            table {
                thead { tr { th { "Version" } th { "Availability" } th { "Digest" } th { "Signed" } th { "First seen" } } }
                tbody {
                    @for v in &history {
                        tr {
                            td { a href=(task_href(&task.name, Some(&v.version))) { (v.version) } }
                            td { @if v.available { "available" } @else { span.muted { "unavailable" } } }
                            td { code { (v.digest.get(..19).unwrap_or(&v.digest)) } }
                            td { @if let Some(key) = &v.signed_by { span.signed { (key) } } }
                            td { (time(v.first_seen)) }
                        }
                    }
                }
            }
        },
    ))
}

fn signature(signature: &crate::store::VersionSignature) -> Markup {
    html! {
        @match (&signature.signed_by, signature.verified_at) {
            (Some(key), Some(at)) => span.signed { "signed by key " code { (key) } ", verified " (time(at)) },
            (Some(key), None) => span.signed { "signed by key " code { (key) } },
            (None, _) if signature.is_signed() => span.severity-warning { "signed by a key that is not trusted (unverified)" },
            (None, _) => span.muted { "unsigned" },
        }
    }
}

/// A JSON Schema's top-level properties as a table (name, type, required, description),
/// with the raw schema a click away.
fn schema_table(schema: Option<Value>) -> Markup {
    let Some(schema) = schema else {
        return html! { p.muted { "No schema." } };
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let properties = schema.get("properties").and_then(Value::as_object);
    let kind = |field: &Value| match field.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(types)) => types.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" | "),
        _ => String::new(),
    };
    html! {
        @if let Some(properties) = properties {
            table {
                thead { tr { th { "Field" } th { "Type" } th { "Required" } th { "Description" } } }
                tbody {
                    @for (name, field) in properties {
                        tr {
                            td { code { (name) } }
                            td { (kind(field)) }
                            td { @if required.contains(&name.as_str()) { "yes" } }
                            td { (field.get("description").and_then(Value::as_str).unwrap_or("")) }
                        }
                    }
                }
            }
        }
        details {
            summary { "Raw JSON" }
            pre { code { (serde_json::to_string_pretty(&schema).unwrap_or_default()) } }
        }
    }
}
