//! The built-in `filesystem` source: every task folder below a root directory.
//!
//! ```text
//! tasks/                      the root (`path` in the config)
//! ├── addition/               a task: a folder with metadata.json (not descended into)
//! │   ├── metadata.json
//! │   ├── main.js
//! │   └── tests/one.json
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
//! are relative to the config file's folder).
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
use rayon::prelude::*;
use registry_core::{
    Bundle, Entry, Scan, ScanIssue, Source, SourceError, SourceKind, SourceSpec, is_task_file, task_files,
};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const TOP_LEVEL_FILES: [&str; 4] = [
    task_files::METADATA,
    task_files::SCRIPT,
    task_files::INPUT_SCHEMA,
    task_files::OUTPUT_SCHEMA,
];

inventory::submit! {
    SourceKind {
        name: "filesystem",
        description: "task folders below a root directory (`path`)",
        build: FsSource::from_spec,
    }
}

/// A source reading task folders below `root`.
#[derive(Debug, Clone)]
pub struct FsSource {
    name: String,
    root: Arc<PathBuf>,
}

impl FsSource {
    pub fn new(name: impl Into<String>, root: impl Into<PathBuf>) -> Self {
        FsSource {
            name: name.into(),
            root: Arc::new(root.into()),
        }
    }

    /// Builds the source from a `[[sources]]` entry with `type = "filesystem"`.
    pub fn from_spec(spec: &SourceSpec) -> Result<Box<dyn Source>, SourceError> {
        let path = spec
            .settings
            .get("path")
            .and_then(|p| p.as_str())
            .ok_or_else(|| SourceError::Config {
                source_name: spec.name.clone(),
                reason: "`path` (a string) is required".into(),
            })?;
        Ok(Box::new(FsSource::new(spec.name.clone(), spec.base_dir.join(path))))
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

    async fn scan(&self) -> Result<Scan, SourceError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.scan_blocking())
            .await
            .map_err(|e| self.unavailable(format!("scan task failed: {e}")))?
    }

    async fn load(&self, entry: &Entry) -> Result<Bundle, SourceError> {
        let root = self.root.clone();
        let locator = entry.locator.clone();
        tokio::task::spawn_blocking(move || load_task(&root, &locator))
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
        let listing = list(root).map_err(|e| self.unavailable(e))?;
        let found = visit(root, root, listing);
        let mut scan = Scan {
            complete: found.issues.is_empty(),
            entries: found.entries,
            issues: found.issues,
        };
        scan.entries.sort_unstable_by(|a, b| a.locator.cmp(&b.locator));
        Ok(scan)
    }
}

/// What a walk below one folder found.
#[derive(Default)]
struct Found {
    entries: Vec<Entry>,
    issues: Vec<ScanIssue>,
}

impl Found {
    fn merge(mut self, mut other: Found) -> Found {
        self.entries.append(&mut other.entries);
        self.issues.append(&mut other.issues);
        self
    }
}

/// One child of a folder, from a single directory listing. `DirEntry::metadata` stats
/// relative to the open folder, which is markedly cheaper than a stat by full path.
struct Child {
    name: String,
    kind: ChildKind,
    entry: fs::DirEntry,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ChildKind {
    Dir,
    File,
    Symlink,
    Other,
}

impl Child {
    fn path(&self) -> PathBuf {
        self.entry.path()
    }

    /// Size and mtime of the file, following a symlink.
    fn file_metadata(&self) -> io::Result<fs::Metadata> {
        match self.kind {
            ChildKind::Symlink => fs::metadata(self.path()),
            _ => self.entry.metadata(),
        }
    }
}

fn list(dir: &Path) -> io::Result<Vec<Child>> {
    let mut children = Vec::new();
    for item in fs::read_dir(dir)? {
        let entry = item?;
        let kind = match entry.file_type()? {
            t if t.is_dir() => ChildKind::Dir,
            t if t.is_file() => ChildKind::File,
            t if t.is_symlink() => ChildKind::Symlink,
            _ => ChildKind::Other,
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        children.push(Child { name, kind, entry });
    }
    children.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(children)
}

fn is_task_folder(listing: &[Child]) -> bool {
    listing
        .iter()
        .any(|c| c.name == task_files::METADATA && matches!(c.kind, ChildKind::File | ChildKind::Symlink))
}

/// Walks below `dir` (already listed), subfolders in parallel. A task folder is not
/// descended into; symlinked folders are not followed.
fn visit(root: &Path, dir: &Path, listing: Vec<Child>) -> Found {
    if is_task_folder(&listing) {
        let fingerprint = fingerprint(dir, listing);
        return Found {
            entries: vec![Entry {
                locator: locator_of(root, dir),
                fingerprint,
            }],
            issues: Vec::new(),
        };
    }
    listing
        .into_par_iter()
        .filter(|c| c.kind == ChildKind::Dir && !is_skipped_dir(&c.name))
        .map(|child| {
            let path = child.path();
            match list(&path) {
                Ok(listing) => visit(root, &path, listing),
                Err(e) => Found {
                    entries: Vec::new(),
                    issues: vec![ScanIssue {
                        locator: locator_of(root, &path),
                        message: format!("cannot read folder: {e}"),
                    }],
                },
            }
        })
        .reduce(Found::default, Found::merge)
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

/// The task files of a folder, as `(relative path, child)`, sorted by relative path.
fn task_files(dir: &Path, listing: Vec<Child>) -> io::Result<Vec<(String, Child)>> {
    let mut files = Vec::with_capacity(8);
    for child in listing {
        if child.name == task_files::TESTS_DIR && child.kind == ChildKind::Dir {
            for test in list(&dir.join(task_files::TESTS_DIR))? {
                let relative = format!("{}/{}", task_files::TESTS_DIR, test.name);
                if test.kind != ChildKind::Dir && is_task_file(&relative) {
                    files.push((relative, test));
                }
            }
        } else if child.kind != ChildKind::Dir && TOP_LEVEL_FILES.contains(&child.name.as_str()) {
            files.push((child.name.clone(), child));
        }
    }
    files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// Sizes and mtimes of the task files. Never fails: what cannot be read is hashed as an
/// error marker, so the task is still listed and its load reports the file by name.
fn fingerprint(dir: &Path, listing: Vec<Child>) -> String {
    let mut hasher = Sha256::new();
    match task_files(dir, listing) {
        Ok(files) => {
            for (relative, child) in files {
                hasher.update(relative.as_bytes());
                match child.file_metadata().and_then(|m| Ok((m.len(), m.modified()?))) {
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

fn load_task(root: &Path, locator: &str) -> Result<Bundle, SourceError> {
    let dir = if locator == "." {
        root.to_path_buf()
    } else {
        root.join(locator)
    };
    let file_error = |file: &str, e: &dyn std::fmt::Display| SourceError::File {
        file: file.to_owned(),
        reason: e.to_string(),
    };
    let listing = list(&dir).map_err(|e| file_error(locator, &e))?;
    let mut files = BTreeMap::new();
    let mut modified: Option<SystemTime> = None;
    for (relative, child) in task_files(&dir, listing).map_err(|e| file_error(locator, &e))? {
        let path = child.path();
        if child.kind == ChildKind::Symlink {
            let canonical_root = root.canonicalize().map_err(|e| file_error(".", &e))?;
            let target = path.canonicalize().map_err(|e| file_error(&relative, &e))?;
            if !target.starts_with(&canonical_root) {
                return Err(file_error(&relative, &"symbolic link pointing outside the source root"));
            }
        }
        let (bytes, mtime) = read_file(&path).map_err(|e| file_error(&relative, &e))?;
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
    })
}

/// The file's bytes and modification time from one open.
fn read_file(path: &Path) -> io::Result<(Vec<u8>, Option<SystemTime>)> {
    let mut file = fs::File::open(path)?;
    let meta = file.metadata()?;
    let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
    file.read_to_end(&mut bytes)?;
    Ok((bytes, meta.modified().ok()))
}
