//! `/ui/sources`: each source's latest scan (time, duration, result, completeness, error,
//! failures in a row) and a chart of its scan durations over the recent runs, drawn by the
//! server as SVG.

use super::{PageResult, Shell, page_in, time};
use crate::serve::ServeState;
use axum::extract::State;
use maud::{Markup, html};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Runs the chart looks back over.
const RECENT_RUNS: usize = 30;

pub(super) async fn list(State(state): State<Arc<ServeState>>) -> PageResult {
    let mut store = state.store().await?;
    let status = store.status().await?;
    let runs = store.recent_runs(RECENT_RUNS).await?;
    drop(store);
    // Each source's scan times, oldest run first.
    let mut durations: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (_, sources) in runs.iter().rev() {
        let reports: Vec<serde_json::Value> = serde_json::from_str(sources).unwrap_or_default();
        for report in reports {
            if let (Some(name), Some(ms)) = (report["name"].as_str(), report["scan_ms"].as_u64()) {
                durations.entry(name.to_owned()).or_default().push(ms);
            }
        }
    }
    Ok(page_in(
        Shell::of(&state),
        "Sources",
        html! {
            h1 { "Sources" }
            @if status.sources.is_empty() { p { "No source was scanned yet." } }
            table {
                thead { tr { th { "Source" } th { "Kind" } th { "Latest scan" } th { "Took" } th { "Result" } th { "Tasks" } th { "Failures in a row" } th { "Recent scans" } } }
                tbody {
                    @for source in &status.sources {
                        tr {
                            td { code { (source.name) } br; span.muted { (source.location) } }
                            td { (source.kind) }
                            td { (time(source.scanned_at)) }
                            td { (source.duration_ms) " ms" }
                            td {
                                @if source.status.is_ok() {
                                    "ok" @if !source.complete { " " span.severity-warning { "(incomplete)" } }
                                } @else {
                                    span.severity-error { "failed" }
                                    @if let Some(error) = &source.error { br; (error) }
                                }
                            }
                            td { (source.tasks) }
                            td {
                                @if source.failures > 0 { span.severity-error { (source.failures) } } @else { "0" }
                                @if let (Some(error), Some(at)) = (&source.last_error, source.last_error_at) {
                                    br; span.muted { "last: " (time(at)) ": " (error) }
                                }
                            }
                            td { (chart(durations.get(&source.name).map(Vec::as_slice).unwrap_or(&[]))) }
                        }
                    }
                }
            }
        },
    ))
}

/// Scan durations as a small SVG line, scaled to the slowest; its title says the figures.
fn chart(durations: &[u64]) -> Markup {
    const W: f64 = 160.0;
    const H: f64 = 32.0;
    let Some(&max) = durations.iter().max() else {
        return html! { span.muted { "—" } };
    };
    let max = max.max(1) as f64;
    let step = if durations.len() > 1 {
        W / (durations.len() - 1) as f64
    } else {
        0.0
    };
    let points: Vec<String> = durations
        .iter()
        .enumerate()
        .map(|(i, ms)| format!("{:.1},{:.1}", i as f64 * step, H - 2.0 - (*ms as f64 / max) * (H - 4.0)))
        .collect();
    let label = format!(
        "scan durations of the last {} runs, oldest first: {} ms",
        durations.len(),
        durations.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
    );
    html! {
        svg width=(W) height=(H) viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(label) {
            title { (label) }
            polyline fill="none" stroke="currentColor" stroke-width="1.5" points=(points.join(" ")) {}
        }
    }
}
