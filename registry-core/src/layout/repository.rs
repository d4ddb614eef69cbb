//! A repository's own description of itself, as Ratchet writes it under `.ratchet/`:
//!
//! ```text
//! repository/
//! └── .ratchet/
//!     ├── registry.yaml    name, version, maintainers, discovery.include_patterns /
//!     │                    exclude_patterns (globs over paths relative to the repository)
//!     └── index.json       tasks: [{name, uuid, version, label, description, category,
//!                          tags, path, …}], repository, collections, templates,
//!                          statistics, generated_at
//! ```
//!
//! Discovery honours the patterns. The index is checked against the tree, never trusted
//! over it: a task listed but absent, present but unlisted, or whose name, uuid or version
//! differ from its own metadata is a warning naming both values, and the task's own files
//! win. A malformed index or registry file is a warning too; it never hides a task.

use crate::problem::Problem;
use crate::task::ParsedTask;
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The index, relative to the repository root.
pub const INDEX_FILE: &str = ".ratchet/index.json";
/// The repository description, relative to the repository root.
pub const REGISTRY_FILE: &str = ".ratchet/registry.yaml";

/// `.ratchet/registry.yaml`: what taskreg uses of it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RegistryFile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub version: Option<Value>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub discovery: DiscoverySettings,
}

/// `discovery:` of `registry.yaml`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DiscoverySettings {
    #[serde(default)]
    pub include_patterns: Vec<String>,
    #[serde(default)]
    pub exclude_patterns: Vec<String>,
}

impl RegistryFile {
    pub fn parse(text: &str) -> Result<RegistryFile, String> {
        yaml_serde::from_str(text).map_err(|e| format!("{REGISTRY_FILE} is not readable: {e}"))
    }
}

/// Which paths of a repository discovery looks at.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl Discovery {
    /// The patterns of `settings`; an invalid glob is refused with its text.
    pub fn new(settings: &DiscoverySettings) -> Result<Discovery, String> {
        let build = |patterns: &[String]| -> Result<Option<GlobSet>, String> {
            if patterns.is_empty() {
                return Ok(None);
            }
            let mut set = GlobSetBuilder::new();
            for pattern in patterns {
                set.add(Glob::new(pattern).map_err(|e| format!("pattern `{pattern}`: {e}"))?);
            }
            set.build().map(Some).map_err(|e| e.to_string())
        };
        Ok(Discovery {
            include: build(&settings.include_patterns)?,
            exclude: build(&settings.exclude_patterns)?,
        })
    }

    /// Whether discovery takes the task (or archive) at `path`, relative to the root. A
    /// pattern ending in `/**` covers the folder itself too.
    pub fn admits(&self, path: &str) -> bool {
        let matches = |set: &GlobSet| set.is_match(path) || set.is_match(format!("{path}/_"));
        self.include.as_ref().is_none_or(matches) && !self.exclude.as_ref().is_some_and(matches)
    }
}

/// `.ratchet/index.json`, read leniently: every field but `tasks` is kept as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RepositoryIndex {
    #[serde(default)]
    pub tasks: Vec<IndexedTask>,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, Value>,
}

/// One task of the index. Only `path` is needed to match it to a folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IndexedTask {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(flatten)]
    pub rest: serde_json::Map<String, Value>,
}

impl RepositoryIndex {
    pub fn parse(text: &str) -> Result<RepositoryIndex, String> {
        let mut index: RepositoryIndex =
            serde_json::from_str(text).map_err(|e| format!("{INDEX_FILE} is not readable: {e}"))?;
        for task in &mut index.tasks {
            task.path = normalize_path(&task.path);
        }
        Ok(index)
    }

    /// The entry for the task at `locator`.
    pub fn find(&self, locator: &str) -> Option<&IndexedTask> {
        self.tasks.iter().find(|t| t.path == locator)
    }
}

/// `./tasks/addition/` → `tasks/addition`; `.` or empty → `.` (the root).
pub fn normalize_path(path: &str) -> String {
    let trimmed = path.trim().trim_start_matches("./").trim_end_matches('/');
    if trimmed.is_empty() || trimmed == "." {
        ".".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// What the index says about one task folder, as a source hands it to the checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Indexed {
    /// Listed, with what the index says of it.
    Listed(IndexedTask),
    /// The repository has an index, and it does not list this task.
    Unlisted,
}

impl Indexed {
    /// Text that changes whenever what the index says of the task changes, for the
    /// task's fingerprint (so that an edited index re-checks the task).
    pub fn fingerprint(&self) -> String {
        match self {
            Indexed::Listed(task) => serde_json::to_string(task).unwrap_or_default(),
            Indexed::Unlisted => "unlisted".to_owned(),
        }
    }
}

/// Warnings where the index disagrees with the task's own metadata (which wins).
pub fn check_indexed(indexed: &Indexed, parsed: &ParsedTask) -> Vec<Problem> {
    let task = &parsed.task;
    let listed = match indexed {
        Indexed::Unlisted => {
            return vec![
                Problem::warning(
                    "index.unlisted",
                    format!(
                        "{INDEX_FILE} does not list this task ({}@{}); run `taskreg index` to update it",
                        task.name, task.version
                    ),
                )
                .in_file(INDEX_FILE),
            ];
        }
        Indexed::Listed(listed) => listed,
    };
    let mut problems = Vec::new();
    let mut differs = |field: &str, indexed: Option<&str>, own: String| {
        if let Some(indexed) = indexed
            && indexed.trim() != own
        {
            problems.push(
                Problem::warning(
                    "index.mismatch",
                    format!(
                        "{INDEX_FILE} says {field} `{indexed}` for `{}`, the task's metadata says `{own}`; the metadata is used",
                        listed.path
                    ),
                )
                .in_file(INDEX_FILE),
            );
        }
    };
    differs("name", listed.name.as_deref(), task.name.clone());
    let version = listed
        .version
        .as_deref()
        .map(|v| crate::task::parse_version(v).map_or_else(|_| v.to_owned(), |v| v.to_string()));
    differs("version", version.as_deref(), task.version.to_string());
    // A `uuid` that is not one is stored as the name's UUIDv5: the index may say either.
    let indexed_uuid = listed.uuid.as_deref().map(|u| u.trim().to_ascii_lowercase());
    let as_written = parsed.uuid_not_a_uuid.as_deref().map(|u| u.trim().to_ascii_lowercase());
    if indexed_uuid.is_some() && indexed_uuid != as_written {
        differs("uuid", indexed_uuid.as_deref(), task.uuid.to_string());
    }
    problems
}

/// The warning for a task the index lists at `path` and the tree does not hold.
pub fn listed_but_absent(task: &IndexedTask) -> Problem {
    let what = match (&task.name, &task.version) {
        (Some(name), Some(version)) => format!("{name}@{version}"),
        (Some(name), None) => name.clone(),
        _ => "a task".to_owned(),
    };
    Problem::warning(
        "index.stale_entry",
        format!(
            "{INDEX_FILE} lists {what} at `{}`, and there is no task there",
            task.path
        ),
    )
    .in_file(INDEX_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratchets_patterns_admit_and_exclude_as_written() {
        let discovery = Discovery::new(&DiscoverySettings {
            include_patterns: vec!["tasks/**".into(), "collections/**".into()],
            exclude_patterns: vec!["**/node_modules/**".into(), "**/*.zip".into(), "**/tmp/**".into()],
        })
        .unwrap();
        assert!(discovery.admits("tasks/addition"));
        assert!(discovery.admits("tasks/group/weather"));
        assert!(!discovery.admits("httpbin-get-origin"));
        assert!(!discovery.admits("tasks/addition.zip"));
        assert!(!discovery.admits("tasks/tmp"));
        assert!(!discovery.admits("tasks/tmp/x"));
        assert!(Discovery::default().admits("anything"));
    }

    #[test]
    fn index_paths_are_normalised() {
        let index = RepositoryIndex::parse(
            r#"{"tasks":[{"path":"./tasks/addition/","name":"addition"}],"generated_at":"x","statistics":{}}"#,
        )
        .unwrap();
        assert_eq!(index.tasks[0].path, "tasks/addition");
        assert!(index.find("tasks/addition").is_some());
        assert_eq!(index.rest["generated_at"], "x");
    }
}
