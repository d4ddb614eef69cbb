//! `/ui/`: every task with its newest available version, counts at the top, search by
//! name, tag and text, and filters for problematic and unavailable tasks.
//!
//! Listing a catalogue means reading all of it (every version, its metadata, the
//! problems), so the rows are built once per catalogue generation and kept: paging,
//! searching and live refreshes of an unchanged catalogue only filter them.

use super::{PageResult, Shell, page_in, task_href};
use crate::serve::ServeState;
use crate::store::{Store, StoreError, VersionSummary};
use axum::extract::{Query, State};
use maud::html;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The search form's fields.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct Filter {
    /// Words that must each appear in the name, label, description, category or a tag.
    #[serde(default)]
    q: String,
    /// Which tasks: all, those with problems, or those without an available version.
    #[serde(default)]
    show: Show,
    /// The page of the listing, from 1.
    #[serde(default)]
    page: Option<usize>,
}

/// The catalogue's filter by state (`?show=`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Show {
    /// Tasks with problems.
    Problems,
    /// Tasks without an available version.
    Unavailable,
    /// Every task (`show=` empty, or any other value).
    #[default]
    #[serde(other)]
    All,
}

impl Show {
    /// The value in the form and in links.
    fn as_str(self) -> &'static str {
        match self {
            Show::All => "",
            Show::Problems => "problems",
            Show::Unavailable => "unavailable",
        }
    }

    fn admits(self, row: &Row) -> bool {
        match self {
            Show::All => true,
            Show::Problems => row.errors + row.warnings > 0,
            Show::Unavailable => !row.available,
        }
    }
}

/// Tasks per page: the page stays small enough to render and read at 100k tasks.
const PAGE_ROWS: usize = 200;

impl Filter {
    /// This filter's listing at page `page`.
    fn href(&self, page: usize) -> String {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &self.q)
            .append_pair("show", self.show.as_str())
            .append_pair("page", &page.to_string())
            .finish();
        format!("/ui/?{query}")
    }
}

/// One task as the catalogue lists it.
struct Row {
    name: String,
    /// The newest available version, else the newest seen.
    version: String,
    available: bool,
    versions: usize,
    sources: Vec<String>,
    signed_by: Option<String>,
    label: String,
    category: String,
    tags: Vec<String>,
    /// What a search looks in, lower case: name, label, description, category, tags.
    searched: String,
    errors: usize,
    warnings: usize,
}

impl Row {
    /// Whether each of `words` (lower case, without spaces) is in what a search looks in.
    fn matches(&self, words: &[String]) -> bool {
        words.iter().all(|w| self.searched.contains(w.as_str()))
    }
}

/// The catalogue as the page lists it, at one generation.
pub(crate) struct Listing {
    generation: i64,
    rows: Vec<Row>,
    versions: usize,
    errors: usize,
    warnings: usize,
    conflicts: usize,
    /// Problems at places that hold no stored task (a task that never loaded).
    unattached: usize,
}

/// The latest [`Listing`], rebuilt when the catalogue's generation moves. One build at a
/// time: requests that arrive meanwhile wait for it rather than read the catalogue too.
#[derive(Default)]
pub(crate) struct ListingCache(tokio::sync::Mutex<Option<Arc<Listing>>>);

impl ListingCache {
    async fn at(&self, store: &mut Store, generation: i64) -> Result<Arc<Listing>, StoreError> {
        let mut kept = self.0.lock().await;
        if let Some(listing) = kept.as_ref().filter(|l| l.generation == generation) {
            return Ok(listing.clone());
        }
        let listing = Arc::new(Listing::read(store, generation).await?);
        *kept = Some(listing.clone());
        Ok(listing)
    }
}

impl Listing {
    async fn read(store: &mut Store, generation: i64) -> Result<Listing, StoreError> {
        let versions = store.list_versions(true).await?;
        let metadata = store.available_metadata().await?;
        let origins = store.problem_origin_names().await?;
        let problems = store.problems().await?;
        let conflicts = store.conflicts().await?.len();

        let metadata: HashMap<(&str, &str), &str> = metadata
            .iter()
            .map(|(n, v, m)| ((n.as_str(), v.as_str()), m.as_str()))
            .collect();
        let task_of: HashMap<(&str, &str), &str> = origins
            .iter()
            .map(|(s, l, n)| ((s.as_str(), l.as_str()), n.as_str()))
            .collect();
        let mut problem_counts: HashMap<&str, (usize, usize)> = HashMap::new();
        let (mut errors, mut warnings, mut unattached) = (0, 0, 0);
        for row in &problems {
            let is_error = row.problem.is_error();
            if is_error {
                errors += 1;
            } else {
                warnings += 1;
            }
            if let Some(name) = task_of.get(&(row.source.as_str(), row.locator.as_str())) {
                let counts = problem_counts.entry(name).or_default();
                if is_error {
                    counts.0 += 1;
                } else {
                    counts.1 += 1;
                }
            } else if !row.locator.is_empty() {
                // A task that never loaded: no stored task to list it under. (An empty
                // locator is the source's own problem, shown on the sources page.)
                unattached += 1;
            }
        }
        let mut by_name: BTreeMap<&str, Vec<&VersionSummary>> = BTreeMap::new();
        for version in &versions {
            by_name.entry(version.name.as_str()).or_default().push(version);
        }
        let rows = by_name
            .iter()
            .map(|(name, versions)| {
                // Sorted newest first by the store.
                let newest_available = versions.iter().find(|v| v.available);
                let shown = newest_available.unwrap_or(&versions[0]);
                let metadata: Value = metadata
                    .get(&(shown.name.as_str(), shown.version.as_str()))
                    .and_then(|raw| serde_json::from_str(raw).ok())
                    .unwrap_or(Value::Null);
                let text = |key: &str| metadata.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
                let tags: Vec<String> = metadata
                    .get("tags")
                    .and_then(Value::as_array)
                    .map(|tags| tags.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default();
                let (label, category) = (text("label"), text("category"));
                let searched =
                    format!("{name} {label} {} {category} {}", text("description"), tags.join(" ")).to_lowercase();
                let (errors, warnings) = problem_counts.get(name).copied().unwrap_or_default();
                Row {
                    name: (*name).to_owned(),
                    version: shown.version.clone(),
                    available: newest_available.is_some(),
                    versions: versions.len(),
                    sources: shown.sources.clone(),
                    signed_by: shown.signed_by.clone(),
                    label,
                    category,
                    tags,
                    searched,
                    errors,
                    warnings,
                }
            })
            .collect();
        Ok(Listing {
            generation,
            rows,
            versions: versions.len(),
            errors,
            warnings,
            conflicts,
            unattached,
        })
    }
}

pub(super) async fn list(State(state): State<Arc<ServeState>>, Query(filter): Query<Filter>) -> PageResult {
    let mut store = state.store().await?;
    // The sources' health is not part of the generation: read each time (one small query).
    let status = store.status().await?;
    let listing = state.catalogue_listing.at(&mut store, status.generation).await?;
    drop(store);
    let failing = status.sources.iter().filter(|s| !s.status.is_ok()).count();
    let Listing {
        rows,
        versions,
        errors,
        warnings,
        conflicts,
        unattached,
        ..
    } = &*listing;
    let (errors, warnings, unattached) = (*errors, *warnings, *unattached);

    let words: Vec<String> = filter.q.split_whitespace().map(str::to_lowercase).collect();
    let listed: Vec<&Row> = rows
        .iter()
        .filter(|r| r.matches(&words))
        .filter(|r| filter.show.admits(r))
        .collect();
    let pages = listed.len().div_ceil(PAGE_ROWS).max(1);
    let current = filter.page.unwrap_or(1).clamp(1, pages);
    let first = (current - 1) * PAGE_ROWS;
    let shown = &listed[first..listed.len().min(first + PAGE_ROWS)];

    Ok(page_in(
        Shell::of(&state),
        "Catalogue",
        html! {
            h1 { "Catalogue" }
            ul.counts aria-label="Counts" {
                li { strong { (rows.len()) } "tasks" }
                li { strong { (versions) } "versions" }
                li.severity-error { strong { (errors) } "errors" }
                li.severity-warning { strong { (warnings) } "warnings" }
                li { strong { (conflicts) } "conflicts" }
                li class=[(failing > 0).then_some("severity-error")] {
                    a href="/ui/sources" { strong { (failing) } "sources failing" }
                }
            }
            form.search method="get" action="/ui/" role="search" {
                label for="q" { "Search" }
                input #q type="search" name="q" value=(filter.q) placeholder="name, tag or text";
                label for="show" { "Show" }
                select #show name="show" {
                    option value="" selected[filter.show == Show::All] { "all tasks" }
                    option value="problems" selected[filter.show == Show::Problems] { "tasks with problems" }
                    option value="unavailable" selected[filter.show == Show::Unavailable] { "unavailable tasks" }
                }
                button type="submit" { "Search" }
            }
            p.muted {
                (listed.len()) " of " (rows.len()) " tasks"
                @if pages > 1 { ", " (first + 1) "–" (first + shown.len()) " shown" }
            }
            table {
                thead { tr { th { "Task" } th { "Version" } th { "Label" } th { "Category" } th { "Tags" } th { "Sources" } th { "Signed" } th { "Problems" } } }
                tbody {
                    @for row in shown {
                        tr {
                            td { a href=(task_href(&row.name, None)) { (row.name) } }
                            td {
                                (row.version)
                                @if !row.available { " " span.muted { "(unavailable)" } }
                                @if row.versions > 1 { " " span.muted { "+" (row.versions - 1) } }
                            }
                            td { (row.label) }
                            td { (row.category) }
                            td { @for tag in &row.tags { span.tag { (tag) } } }
                            td { (row.sources.join(", ")) }
                            td {
                                @if let Some(key) = &row.signed_by { span.signed title={ "signed by key " (key) } { "✓ " (key) } }
                            }
                            td {
                                @if row.errors > 0 { span.severity-error { (super::count(row.errors, "error")) } " " }
                                @if row.warnings > 0 { span.severity-warning { (super::count(row.warnings, "warning")) } }
                            }
                        }
                    }
                }
            }
            @if pages > 1 {
                nav.pager aria-label="Pages" {
                    @if current > 1 { a rel="prev" href=(filter.href(current - 1)) { "← previous" } }
                    span { "page " (current) " of " (pages) }
                    @if current < pages { a rel="next" href=(filter.href(current + 1)) { "next →" } }
                }
            }
            @if unattached > 0 {
                p.hint {
                    (super::count(unattached, "problem"))
                    @if unattached == 1 { " is at a place that holds" } @else { " are at places that hold" }
                    " no stored task (a task that never loaded): see "
                    a href="/ui/problems" { "Problems" } "."
                }
            }
        },
    ))
}
