//! `.ratchet/index.json` for a task tree: built from the tasks themselves (what `taskreg
//! index` writes), and compared with the index a repository has (`--check`).

use super::RegistryError;
use super::validate::{Finding, path_specs};
use crate::sources::SourceBuilder;
use registry_core::layout::repository::{INDEX_FILE, IndexedTask, REGISTRY_FILE, RegistryFile, RepositoryIndex};
use registry_core::{LoadOutcome, Problem, Source, SourceKind, TaskDefinition, Validation};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// An index built from a tree, and what kept tasks out of it.
#[derive(Debug, Clone)]
pub struct BuiltIndex {
    /// The index, tasks sorted by path.
    pub index: RepositoryIndex,
    /// Tasks refused (not indexed) and the scan's findings, as `validate` reports them.
    pub findings: Vec<Finding>,
}

/// One way the index a repository has differs from its tree.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IndexDifference {
    /// The task's path.
    pub path: String,
    /// What differs, in words.
    pub difference: String,
}

impl BuiltIndex {
    /// Where the index of the tree at `root` lives.
    pub fn file(root: &Path) -> PathBuf {
        root.join(INDEX_FILE)
    }

    /// How `existing` differs from this index in what a sync checks: which paths are
    /// listed, and each one's name, uuid and version.
    pub fn differences(&self, existing: &RepositoryIndex) -> Vec<IndexDifference> {
        let mut differences = Vec::new();
        let by_path = |index: &RepositoryIndex| -> BTreeMap<String, IndexedTask> {
            index.tasks.iter().map(|t| (t.path.clone(), t.clone())).collect()
        };
        let (built, had) = (by_path(&self.index), by_path(existing));
        for (path, task) in &built {
            match had.get(path) {
                None => differences.push(IndexDifference {
                    path: path.clone(),
                    difference: format!("not listed ({})", describe(task)),
                }),
                Some(listed) => {
                    for (field, want, have) in [
                        ("name", &task.name, &listed.name),
                        ("uuid", &task.uuid, &listed.uuid),
                        ("version", &task.version, &listed.version),
                    ] {
                        if want != have {
                            differences.push(IndexDifference {
                                path: path.clone(),
                                difference: format!(
                                    "{field} is `{}` in the index, `{}` in the task",
                                    have.as_deref().unwrap_or("(none)"),
                                    want.as_deref().unwrap_or("(none)")
                                ),
                            });
                        }
                    }
                }
            }
        }
        for (path, listed) in had {
            if !built.contains_key(&path) {
                differences.push(IndexDifference {
                    difference: format!("listed ({}) but no task is there", describe(&listed)),
                    path,
                });
            }
        }
        differences
    }
}

fn describe(task: &IndexedTask) -> String {
    format!(
        "{}@{}",
        task.name.as_deref().unwrap_or("?"),
        task.version.as_deref().unwrap_or("?")
    )
}

/// The index entry of a stored-to-be task: identity and description from its metadata.
fn entry_of(path: &str, task: &TaskDefinition) -> IndexedTask {
    let metadata: Value = serde_json::from_str(task.metadata_json()).unwrap_or(Value::Null);
    let mut rest = Map::new();
    for field in ["label", "description", "category", "tags", "author"] {
        if let Some(value) = metadata.get(field).filter(|v| !v.is_null()) {
            rest.insert(field.to_owned(), value.clone());
        }
    }
    IndexedTask {
        path: path.to_owned(),
        name: Some(task.name.clone()),
        uuid: Some(task.uuid.to_string()),
        version: Some(task.version.to_string()),
        rest,
    }
}

pub(super) async fn build_index(
    root: &Path,
    validation: &Validation,
    kinds: &[SourceKind],
) -> Result<BuiltIndex, RegistryError> {
    let paths = [root.to_path_buf()];
    let builder = SourceBuilder {
        kinds: kinds.to_vec(),
        ..SourceBuilder::default()
    };
    let sources = builder.build(&path_specs(&paths, validation))?;
    let source: &dyn Source = sources[0].as_ref();
    let finding = |locator: &str, problem: Problem| Finding {
        path: root.to_path_buf(),
        locator: locator.to_owned(),
        problem,
    };
    let scan = source
        .scan()
        .await
        .map_err(|e| RegistryError::Index(format!("{}: {e}", root.display())))?;
    let mut findings: Vec<Finding> = scan
        .issues
        .iter()
        // The current index's own complaints are about the file being replaced.
        .filter(|i| !i.code.starts_with("index."))
        .map(|i| {
            finding(
                &i.locator,
                Problem {
                    severity: i.severity,
                    ..Problem::error(i.code, i.message.clone())
                },
            )
        })
        .collect();
    // An index describes tasks, not who signed them.
    let unjudged = std::sync::Arc::new(registry_core::SignaturePolicy::new(
        registry_core::SignatureMode::Off,
        Vec::new(),
    ));
    let outcomes = super::validate::load_all(source, &scan.entries, validation, &unjudged).await;
    let mut tasks = Vec::new();
    let mut categories: BTreeMap<String, u64> = BTreeMap::new();
    for (locator, outcome) in outcomes {
        match outcome {
            LoadOutcome::Parsed { task, .. } => {
                let entry = entry_of(&locator, &task);
                if let Some(category) = entry.rest.get("category").and_then(Value::as_str) {
                    *categories.entry(category.to_owned()).or_default() += 1;
                }
                tasks.push(entry);
            }
            LoadOutcome::Broken(problems) => findings.extend(
                problems
                    .into_iter()
                    .filter(Problem::is_error)
                    .map(|p| finding(&locator, p)),
            ),
        }
    }
    tasks.sort_by(|a, b| a.path.cmp(&b.path));

    // What the repository already says of itself is kept: its description from
    // registry.yaml, and the index's collections and templates.
    let existing = std::fs::read_to_string(root.join(INDEX_FILE))
        .ok()
        .and_then(|text| RepositoryIndex::parse(&text).ok());
    let registry = std::fs::read_to_string(root.join(REGISTRY_FILE))
        .ok()
        .and_then(|text| RegistryFile::parse(&text).ok());
    let mut rest = Map::new();
    if let Some(registry) = registry {
        rest.insert(
            "repository".into(),
            json!({"name": registry.name, "version": registry.version, "description": registry.description}),
        );
    }
    for kept in ["collections", "templates"] {
        let value = existing
            .as_ref()
            .and_then(|e| e.rest.get(kept).cloned())
            .unwrap_or_else(|| json!([]));
        rest.insert(kept.into(), value);
    }
    rest.insert(
        "statistics".into(),
        json!({"total_tasks": tasks.len(), "categories": categories}),
    );
    rest.insert("generated_at".into(), json!(jiff::Timestamp::now().to_string()));
    rest.insert(
        "generator".into(),
        json!(format!("taskreg {}", env!("CARGO_PKG_VERSION"))),
    );
    Ok(BuiltIndex {
        index: RepositoryIndex { tasks, rest },
        findings,
    })
}
