//! A repository's `.ratchet/registry.yaml` and `.ratchet/index.json`, read at each scan:
//! discovery's include/exclude patterns, and the index checked against the tree.

use registry_core::layout::repository::{
    Discovery, INDEX_FILE, Indexed, REGISTRY_FILE, RegistryFile, RepositoryIndex, listed_but_absent,
};
use registry_core::{Entry, ScanIssue, ScanScope};
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// The most of either file read: they describe a repository, they are not tasks.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// What the repository says of itself; empty when it says nothing.
#[derive(Debug, Default)]
pub struct Repository {
    pub discovery: Discovery,
    pub index: Option<RepositoryIndex>,
    /// Position of each index task by path: every entry of a scan looks itself up.
    by_path: HashMap<String, usize>,
    /// Files that could not be read: warnings, never a reason to hide a task.
    pub issues: Vec<ScanIssue>,
}

impl Repository {
    /// Reads `.ratchet/` below `root` (nothing there is fine).
    pub fn read(root: &Path) -> Arc<Repository> {
        let mut repository = Repository::default();
        let warn = |message: String| ScanIssue::warning(".ratchet", "index.invalid", message);
        match read_text(&root.join(REGISTRY_FILE)) {
            Ok(None) => {}
            Ok(Some(text)) => match RegistryFile::parse(&text).and_then(|r| Discovery::new(&r.discovery)) {
                Ok(discovery) => repository.discovery = discovery,
                Err(e) => repository.issues.push(warn(format!(
                    "{e}; every task is discovered as if there were no {REGISTRY_FILE}"
                ))),
            },
            Err(e) => repository.issues.push(warn(format!("{REGISTRY_FILE}: {e}"))),
        }
        match read_text(&root.join(INDEX_FILE)) {
            Ok(None) => {}
            Ok(Some(text)) => match RepositoryIndex::parse(&text) {
                Ok(index) => {
                    repository.by_path = index
                        .tasks
                        .iter()
                        .enumerate()
                        .map(|(i, t)| (t.path.clone(), i))
                        .collect();
                    repository.index = Some(index);
                }
                Err(e) => repository
                    .issues
                    .push(warn(format!("{e}; the tree is read without it"))),
            },
            Err(e) => repository.issues.push(warn(format!("{INDEX_FILE}: {e}"))),
        }
        Arc::new(repository)
    }

    /// What the index says of the task at `locator`, when there is an index.
    pub fn indexed(&self, locator: &str) -> Option<Indexed> {
        let index = self.index.as_ref()?;
        Some(match self.by_path.get(locator) {
            Some(&i) => Indexed::Listed(index.tasks[i].clone()),
            None => Indexed::Unlisted,
        })
    }

    /// Entries with what the index says of each folded into their fingerprint (an edited
    /// index re-checks the task), plus the tasks the index lists within `scope` that the
    /// scan did not find, and the repository files' own issues.
    pub fn apply(&self, entries: &mut [Entry], issues: &mut Vec<ScanIssue>, scope: &ScanScope) {
        issues.extend(self.issues.iter().cloned());
        let Some(index) = &self.index else {
            return;
        };
        for entry in entries.iter_mut() {
            if let Some(indexed) = self.indexed(&entry.locator) {
                let mut hasher = Sha256::new();
                hasher.update(entry.fingerprint.as_bytes());
                hasher.update(indexed.fingerprint().as_bytes());
                entry.fingerprint = hex::encode(&hasher.finalize()[..16]);
            }
        }
        let found: HashSet<&str> = entries.iter().map(|e| e.locator.as_str()).collect();
        for task in &index.tasks {
            if !found.contains(task.path.as_str()) && scope.covers(&task.path) {
                let problem = listed_but_absent(task);
                issues.push(ScanIssue::warning(
                    task.path.clone(),
                    "index.stale_entry",
                    problem.message,
                ));
            }
        }
    }
}

/// A regular file's text, `None` when it does not exist.
fn read_text(path: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read as _;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "{} bytes, more than the {MAX_FILE_BYTES} read for it",
            meta.len()
        )));
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES).read_to_string(&mut text)?;
    Ok(Some(text))
}
