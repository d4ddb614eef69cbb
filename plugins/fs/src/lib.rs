//! The built-in `filesystem` source: every task folder below a root directory.
//!
//! ```text
//! tasks/                      the root (`path` in the config)
//! ├── addition/               a task: a folder with metadata.json (not descended into)
//! │   ├── metadata.json
//! │   ├── main.js
//! │   └── tests/one.json
//! ├── weather/                a task in Ratchet's current layout: meta.yaml + its script
//! │   ├── meta.yaml
//! │   └── task.js
//! ├── drafts/sketch/          main.js, no metadata: reported as `layout.unrecognized`
//! ├── releases/weather.zip    a task archive: its task (at its root or one folder down)
//! │                           is `releases/weather.zip` or `releases/weather.zip/FOLDER`
//! ├── team-a/
//! │   └── weather/            tasks may sit at any depth
//! ├── .git/                   hidden folders are skipped
//! └── node_modules/           and so is node_modules
//! ```
//!
//! A scan stats files and reads none: the fingerprint of a task is made of the sizes and
//! modification times of its task files, so a resync of an unchanged tree reads no file
//! contents. A root that does not exist or cannot be read fails the scan (it is not an empty
//! complete scan, which would make every task of the source missing). Symlinked folders are
//! not followed, and a symlinked file is read only when it resolves inside the root.
//!
//! Registered with `inventory` as the `filesystem` kind; settings: `path` (relative paths
//! are relative to the config file's folder), nothing else.
//!
//! A `.zip` anywhere in the tree (outside task folders) is a task archive, read in memory
//! with every check of the `zip` source ([`zip_source::ArchiveSet`]) and fingerprinted by
//! its size and mtime; a refused archive is an error of its locator and makes the scan
//! partial, so nothing it offered before is removed.
//!
//! A load reads regular files only (a FIFO, socket or device named like a task file is
//! that task's problem, never a hang) and at most the read limits: a file's size is
//! checked before it is read, and one that grows while read is cut at the cap and refused.
//!
//! ```no_run
//! # async fn demo() -> Result<(), registry_core::SourceError> {
//! use fs_source::FsSource;
//! use registry_core::Source;
//!
//! let source = FsSource::new("examples", "examples/tasks");
//! let scan = source.scan().await?;
//! for entry in &scan.entries {
//!     let bundle = source.load(entry).await?;
//!     println!("{}: {} files", entry.locator, bundle.files.len());
//! }
//! # Ok(()) }
//! ```

use async_trait::async_trait;
mod folder;
mod repository;

use folder::{Child, ChildKind, Folder};
use rayon::prelude::*;
use registry_core::layout::{is_task_marker, task_like_files, unrecognized_message};
use registry_core::{
    Bundle, Entry, Limits, ReadBudget, Scan, ScanIssue, ScanScope, Source, SourceError, SourceKind, SourceSpec,
    is_task_file, task_files,
};
use repository::Repository;
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use zip_source::{ArchiveLimits, ArchiveSet};

inventory::submit! {
    SourceKind {
        name: "filesystem",
        description: "task folders below a root directory (`path`)",
        settings_schema: || serde_json::to_value(schemars::schema_for!(FsSettings)).unwrap_or_default(),
        build: FsSource::from_spec,
    }
}

/// The `[[sources]]` settings of a `filesystem` source.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FsSettings {
    /// The root folder; relative to the config file's folder.
    pub path: PathBuf,
}

/// A source reading task folders below `root`.
#[derive(Debug, Clone)]
pub struct FsSource {
    name: String,
    root: Arc<PathBuf>,
    limits: Limits,
    /// The task archives found in the tree, kept between a scan and its loads.
    archives: ArchiveSet,
    /// `.ratchet/` as the latest scan read it, for that scan's loads.
    repository: Arc<std::sync::Mutex<Arc<Repository>>>,
}

impl FsSource {
    pub fn new(name: impl Into<String>, root: impl Into<PathBuf>) -> Self {
        FsSource {
            name: name.into(),
            root: Arc::new(root.into()),
            limits: Limits::default(),
            archives: ArchiveSet::default(),
            repository: Arc::default(),
        }
    }

    /// Caps what one load reads (default: [`Limits::default`]).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self.archives = ArchiveSet::new(ArchiveLimits::default(), limits);
        self
    }

    /// Builds the source from a `[[sources]]` entry with `type = "filesystem"`.
    pub fn from_spec(spec: &SourceSpec) -> Result<Box<dyn Source>, SourceError> {
        let settings: FsSettings = serde_json::from_value(spec.settings.clone()).map_err(|e| SourceError::Config {
            source_name: spec.name.clone(),
            reason: e.to_string(),
        })?;
        let source = FsSource::new(spec.name.clone(), spec.base_dir.join(settings.path)).with_limits(spec.limits);
        Ok(Box::new(source))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> SourceError {
        SourceError::Unavailable {
            source_name: self.name.clone(),
            reason: format!("{}: {reason}", self.root.display()),
        }
    }
}

#[async_trait]
impl Source for FsSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "filesystem"
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn watch_path(&self) -> Option<PathBuf> {
        Some(self.root.to_path_buf())
    }

    async fn scan(&self) -> Result<Scan, SourceError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.scan_blocking())
            .await
            .map_err(|e| self.unavailable(format!("scan task failed: {e}")))?
    }

    async fn scan_changed(&self, changed: &[PathBuf]) -> Option<Result<(ScanScope, Scan), SourceError>> {
        let this = self.clone();
        let changed = changed.to_vec();
        let scanned = tokio::task::spawn_blocking(move || this.scan_changed_blocking(&changed))
            .await
            .map_err(|e| self.unavailable(format!("scan task failed: {e}")));
        Some(scanned.and_then(|r| r))
    }

    async fn load(&self, entry: &Entry) -> Result<Bundle, SourceError> {
        let root = self.root.clone();
        let locator = entry.locator.clone();
        let limits = self.limits;
        let archives = self.archives.clone();
        let indexed = self.repository().indexed(&entry.locator);
        tokio::task::spawn_blocking(move || {
            let bundle = match archive_of(&root, &locator) {
                Some((archive, folder)) => archives.load(archive, &root.join(archive), folder),
                None => load_task(&root, &locator, limits),
            };
            bundle.map(|bundle| Bundle { indexed, ..bundle })
        })
        .await
        .map_err(|e| SourceError::File {
            file: entry.locator.clone(),
            reason: format!("load task failed: {e}"),
        })?
    }
}

impl FsSource {
    fn scan_blocking(&self) -> Result<Scan, SourceError> {
        let root = self.root.as_path();
        let meta = fs::metadata(root).map_err(|e| self.unavailable(e))?;
        if !meta.is_dir() {
            return Err(self.unavailable("not a directory"));
        }
        // The root's own listing must succeed: an unreadable root fails the scan.
        let folder = Folder::open(root).map_err(|e| self.unavailable(e))?;
        let repository = self.read_repository(root);
        let mut found = visit(root, &folder, &self.walk(&repository));
        // Archives no longer in the tree are forgotten (and their memory freed).
        self.archives.retain(|path| found.archives.iter().any(|a| a == path));
        repository.apply(&mut found.entries, &mut found.issues, &ScanScope::Whole);
        Ok(scan_of(found))
    }

    /// Reads `.ratchet/` and keeps it for the loads of this scan.
    fn read_repository(&self, root: &Path) -> Arc<Repository> {
        let repository = Repository::read(root);
        if let Ok(mut kept) = self.repository.lock() {
            *kept = repository.clone();
        }
        repository
    }

    fn repository(&self) -> Arc<Repository> {
        self.repository.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn walk<'w>(&'w self, repository: &'w Repository) -> Walk<'w> {
        Walk {
            archives: &self.archives,
            repository,
        }
    }
}

impl FsSource {
    /// Walks only the folders `changed` can have affected (see [`scope_of`]). A change at
    /// the root itself, or above it, rescans everything.
    fn scan_changed_blocking(&self, changed: &[PathBuf]) -> Result<(ScanScope, Scan), SourceError> {
        let root = std::path::absolute(self.root.as_path()).map_err(|e| self.unavailable(e))?;
        let mut prefixes: Vec<String> = changed.iter().filter_map(|path| scope_of(&root, path)).collect();
        if prefixes.iter().any(String::is_empty) {
            return self.scan_blocking().map(|scan| (ScanScope::Whole, scan));
        }
        prefixes.sort();
        prefixes.dedup();
        // `a` covers `a/b`: walk each folder once. Sorted, a covering prefix comes first.
        let mut outer: Vec<String> = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            if !ScanScope::Within(outer.clone()).covers(&prefix) {
                outer.push(prefix);
            }
        }
        if !root.is_dir() {
            return Err(self.unavailable("not a directory"));
        }
        let repository = self.read_repository(&root);
        let walk = self.walk(&repository);
        let mut found = outer
            .par_iter()
            .map(|prefix| match Folder::open(&root.join(prefix)) {
                Ok(folder) => visit(&root, &folder, &walk),
                // Gone since the event (a deleted task folder): nothing is there.
                Err(e) if e.kind() == io::ErrorKind::NotFound => Found::default(),
                Err(e) => Found {
                    issues: vec![ScanIssue::error(
                        prefix.clone(),
                        "source.unreadable",
                        format!("cannot read folder: {e}"),
                    )],
                    ..Found::default()
                },
            })
            .reduce(Found::default, Found::merge);
        let scope = ScanScope::Within(outer);
        repository.apply(&mut found.entries, &mut found.issues, &scope);
        Ok((scope, scan_of(found)))
    }
}

/// The folder to rescan after a change at `path`, relative to `root` (`""` for all of it),
/// or `None` when a full scan would not look there (a hidden folder, `node_modules`).
///
/// Walking down from the root: the outermost task folder on the way (its files changed),
/// else the deepest folder that still exists (a task folder below it was deleted or
/// renamed), else the changed folder itself (something was added into it).
fn scope_of(root: &Path, path: &Path) -> Option<String> {
    let Ok(relative) = path.strip_prefix(root) else {
        // Above the root (the root or a parent was moved): everything.
        return Some(String::new());
    };
    let mut names = Vec::new();
    let mut folder = root.to_path_buf();
    if is_task_dir(&folder) {
        return Some(String::new());
    }
    // The repository's own description changed: discovery or the index may differ anywhere.
    if relative.starts_with(".ratchet") {
        return Some(String::new());
    }
    for component in relative.components() {
        let name = component.as_os_str().to_string_lossy().into_owned();
        if is_skipped_dir(&name) {
            return None;
        }
        folder.push(&name);
        match fs::symlink_metadata(&folder) {
            Ok(meta) if meta.is_dir() => {
                names.push(name);
                if is_task_dir(&folder) {
                    break;
                }
            }
            // A file, a symlink (never followed) or nothing: its folder is what changed.
            _ => break,
        }
    }
    Some(names.join("/"))
}

fn is_task_dir(folder: &Path) -> bool {
    [task_files::METADATA, task_files::META_YAML]
        .iter()
        .any(|marker| fs::symlink_metadata(folder.join(marker)).is_ok_and(|m| !m.is_dir()))
}

fn scan_of(found: Found) -> Scan {
    let mut scan = Scan {
        complete: !found
            .issues
            .iter()
            .any(|i| i.severity == registry_core::Severity::Error),
        entries: found.entries,
        issues: found.issues,
    };
    scan.entries.sort_unstable_by(|a, b| a.locator.cmp(&b.locator));
    scan
}

/// What a walk below one folder found.
#[derive(Default)]
struct Found {
    entries: Vec<Entry>,
    issues: Vec<ScanIssue>,
    /// The task archives walked past.
    archives: Vec<PathBuf>,
}

impl Found {
    fn merge(mut self, mut other: Found) -> Found {
        self.entries.append(&mut other.entries);
        self.issues.append(&mut other.issues);
        self.archives.append(&mut other.archives);
        self
    }
}

/// Whether a file of this name is a task archive.
fn is_archive_name(name: &str) -> bool {
    !name.starts_with('.') && name.len() > 4 && name.to_ascii_lowercase().ends_with(".zip")
}

/// The archive a locator points into, and the folder inside it: `a/b.zip/weather` is
/// `("a/b.zip", "weather")` when `a/b.zip` is a file below `root`.
fn archive_of<'l>(root: &Path, locator: &'l str) -> Option<(&'l str, &'l str)> {
    let mut end = 0;
    for component in locator.split('/') {
        end += component.len();
        if is_archive_name(component) && root.join(&locator[..end]).is_file() {
            let rest = locator.get(end + 1..).unwrap_or("");
            return Some((&locator[..end], rest));
        }
        end += 1;
    }
    None
}

fn is_task_folder(folder: &Folder) -> bool {
    folder
        .children
        .iter()
        .any(|c| is_task_marker(&c.name) && matches!(c.kind, ChildKind::File | ChildKind::Symlink))
}

/// What a walk consults besides the tree.
struct Walk<'w> {
    archives: &'w ArchiveSet,
    repository: &'w Repository,
}

/// Walks below `folder`, subfolders in parallel. A task folder is not descended into;
/// symlinked folders are not followed; archives are read through `walk.archives`; what
/// the repository's discovery patterns leave out is not looked at.
fn visit(root: &Path, folder: &Folder, walk: &Walk<'_>) -> Found {
    let admitted = |locator: &str| walk.repository.discovery.admits(locator);
    if is_task_folder(folder) {
        if !admitted(&locator_of(root, &folder.path)) {
            return Found::default();
        }
        return Found {
            entries: vec![Entry {
                locator: locator_of(root, &folder.path),
                fingerprint: fingerprint(folder),
            }],
            ..Found::default()
        };
    }
    let in_archives: Vec<(String, PathBuf)> = folder
        .children
        .iter()
        .filter(|c| c.kind == ChildKind::File && is_archive_name(&c.name))
        .map(|c| (locator_of(root, &folder.child_path(c)), folder.child_path(c)))
        .filter(|(locator, _)| admitted(locator))
        .collect();
    let archived = (!in_archives.is_empty()).then(|| {
        let scan = walk.archives.scan(&in_archives);
        Found {
            entries: scan.entries,
            issues: scan.issues,
            archives: in_archives.into_iter().map(|(_, path)| path).collect(),
        }
    });
    // Files that look like a task in a folder that is not one: said, never passed over.
    let task_like = task_like_files(
        folder
            .children
            .iter()
            .filter(|c| c.kind != ChildKind::Dir)
            .map(|c| c.name.as_str()),
    );
    let here = locator_of(root, &folder.path);
    let unrecognized = (!task_like.is_empty() && admitted(&here)).then(|| {
        ScanIssue::warning(
            locator_of(root, &folder.path),
            "layout.unrecognized",
            unrecognized_message(&task_like),
        )
    });
    let found = folder
        .children
        .par_iter()
        .filter(|c| c.kind == ChildKind::Dir && !is_skipped_dir(&c.name))
        .map(|child| match folder.open_child(child) {
            Ok(sub) => visit(root, &sub, walk),
            Err(e) => Found {
                issues: vec![ScanIssue::error(
                    locator_of(root, &folder.child_path(child)),
                    "source.unreadable",
                    format!("cannot read folder: {e}"),
                )],
                ..Found::default()
            },
        })
        .reduce(Found::default, Found::merge);
    let found = match archived {
        Some(archived) => archived.merge(found),
        None => found,
    };
    match unrecognized {
        Some(issue) => Found {
            issues: vec![issue],
            ..Found::default()
        }
        .merge(found),
        None => found,
    }
}

fn is_skipped_dir(name: &str) -> bool {
    name.starts_with('.') || name == "node_modules"
}

/// The task folder's path relative to the root with `/` separators; `.` for the root.
fn locator_of(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    if relative.as_os_str().is_empty() {
        return ".".to_owned();
    }
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The `tests/` folder of a task, when it has one.
fn tests_folder(task: &Folder) -> io::Result<Option<Folder>> {
    match task.child(task_files::TESTS_DIR) {
        Some(child) if child.kind == ChildKind::Dir => task.open_child(child).map(Some),
        _ => Ok(None),
    }
}

/// The task files, as `(relative path, folder holding it, child)`, sorted by relative path.
fn task_files<'f>(task: &'f Folder, tests: Option<&'f Folder>) -> Vec<(String, &'f Folder, &'f Child)> {
    let mut files: Vec<(String, &Folder, &Child)> = task
        .children
        .iter()
        .filter(|c| c.kind != ChildKind::Dir && is_task_file(&c.name))
        .map(|c| (c.name.clone(), task, c))
        .collect();
    if let Some(tests) = tests {
        for child in tests.children.iter().filter(|c| c.kind != ChildKind::Dir) {
            let relative = format!("{}/{}", task_files::TESTS_DIR, child.name);
            if is_task_file(&relative) {
                files.push((relative, tests, child));
            }
        }
    }
    files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    files
}

/// Sizes and mtimes of the task files. Never fails: what cannot be read is hashed as an
/// error marker, so the task is still listed and its load reports the file by name.
fn fingerprint(task: &Folder) -> String {
    let mut hasher = Sha256::new();
    match tests_folder(task) {
        Ok(tests) => {
            for (relative, folder, child) in task_files(task, tests.as_ref()) {
                hasher.update(relative.as_bytes());
                match folder.stamp(child) {
                    Ok((len, modified)) => {
                        let mtime = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
                        hasher.update([0]);
                        hasher.update(len.to_le_bytes());
                        hasher.update(mtime.as_nanos().to_le_bytes());
                    }
                    Err(e) => hasher.update(format!("\x01{:?}", e.kind())),
                }
            }
        }
        Err(e) => hasher.update(format!("\x02{:?}", e.kind())),
    }
    hex::encode(&hasher.finalize()[..16])
}

fn load_task(root: &Path, locator: &str, limits: Limits) -> Result<Bundle, SourceError> {
    let dir = if locator == "." {
        root.to_path_buf()
    } else {
        root.join(locator)
    };
    let file_error = |file: &str, e: &dyn std::fmt::Display| SourceError::File {
        file: file.to_owned(),
        reason: e.to_string(),
    };
    let task = Folder::open(&dir).map_err(|e| file_error(locator, &e))?;
    let tests = tests_folder(&task).map_err(|e| file_error(task_files::TESTS_DIR, &e))?;
    let mut files = BTreeMap::new();
    let mut modified: Option<SystemTime> = None;
    let mut budget = ReadBudget::new(limits);
    for (relative, folder, child) in task_files(&task, tests.as_ref()) {
        // Only regular files are task files: a FIFO would block the read forever, a device
        // may never end. Reported, not skipped: it looks like part of the task. (A FIFO
        // behind a symlink is caught by `read_file`.)
        if child.kind == ChildKind::Other {
            return Err(file_error(&relative, &NOT_A_REGULAR_FILE));
        }
        if child.kind == ChildKind::Symlink {
            let canonical_root = root.canonicalize().map_err(|e| file_error(".", &e))?;
            let target = folder
                .child_path(child)
                .canonicalize()
                .map_err(|e| file_error(&relative, &e))?;
            if !target.starts_with(&canonical_root) {
                return Err(file_error(&relative, &"symbolic link pointing outside the source root"));
            }
        }
        let (bytes, mtime) = read_file(folder, child, &relative, &mut budget)?;
        modified = modified.max(mtime);
        files.insert(relative, bytes);
    }
    let folder_name = match locator {
        "." => dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned())),
        _ => locator.rsplit('/').next().map(str::to_owned),
    };
    Ok(Bundle {
        files,
        folder_name,
        modified,
        indexed: None,
    })
}

const NOT_A_REGULAR_FILE: &str = "not a regular file (a FIFO, socket or device)";

/// The file's bytes and modification time from one open, within `budget`: the size is
/// checked before reading, and a file growing while it is read is cut at the cap. A FIFO
/// or device behind a symlink is refused without blocking (opened non-blocking, then
/// checked to be a regular file).
fn read_file(
    folder: &Folder,
    child: &Child,
    relative: &str,
    budget: &mut ReadBudget,
) -> Result<(Vec<u8>, Option<SystemTime>), SourceError> {
    let unreadable = |reason: &dyn std::fmt::Display| SourceError::File {
        file: relative.to_owned(),
        reason: reason.to_string(),
    };
    let file = folder.open_file(child).map_err(|e| unreadable(&e))?;
    let meta = file.metadata().map_err(|e| unreadable(&e))?;
    if !meta.is_file() {
        return Err(unreadable(&NOT_A_REGULAR_FILE));
    }
    let bytes = budget.read(relative, file, meta.len()).map_err(|e| unreadable(&e))??;
    Ok((bytes, meta.modified().ok()))
}
