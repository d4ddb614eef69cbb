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
use registry_core::{Bundle, Entry, Scan, ScanIssue, Source, SourceError, SourceKind, SourceSpec, is_task_file, task_files};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use walkdir::WalkDir;

const TOP_LEVEL_FILES: [&str; 4] = [task_files::METADATA, task_files::SCRIPT, task_files::INPUT_SCHEMA, task_files::OUTPUT_SCHEMA];

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
        // Listing the root proves it is readable; an unreadable root must fail the scan.
        fs::read_dir(root).map_err(|e| self.unavailable(e))?;

        let mut scan = Scan {
            complete: true,
            ..Scan::default()
        };
        let mut walker = WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || (e.file_type().is_dir() && !is_skipped_dir(e.file_name())));
        while let Some(item) = walker.next() {
            let dir = match item {
                Ok(dir) => dir,
                Err(e) => {
                    let locator = e.path().map(|p| locator_of(root, p)).unwrap_or_default();
                    scan.complete = false;
                    scan.issues.push(ScanIssue {
                        locator,
                        message: format!("cannot read folder: {}", e.io_error().map_or(e.to_string(), ToString::to_string)),
                    });
                    continue;
                }
            };
            let path = dir.path();
            if !path.join(task_files::METADATA).is_file() {
                continue;
            }
            if dir.depth() > 0 {
                walker.skip_current_dir();
            }
            scan.entries.push(Entry {
                locator: locator_of(root, path),
                fingerprint: fingerprint(path),
            });
            if dir.depth() == 0 {
                // The root itself is a task: nothing below it is another task.
                break;
            }
        }
        Ok(scan)
    }
}

fn is_skipped_dir(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
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

/// The task files of a folder, as `(relative path, absolute path)`, sorted.
fn task_files(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::with_capacity(6);
    for name in TOP_LEVEL_FILES {
        let path = dir.join(name);
        if path.symlink_metadata().is_ok() {
            files.push((name.to_owned(), path));
        }
    }
    let tests = dir.join(task_files::TESTS_DIR);
    match fs::read_dir(&tests) {
        Ok(listing) => {
            for item in listing {
                let item = item?;
                let relative = format!("tests/{}", item.file_name().to_string_lossy());
                if is_task_file(&relative) {
                    files.push((relative, item.path()));
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory => {}
        Err(e) => return Err(e),
    }
    files.sort();
    Ok(files)
}

/// Sizes and mtimes of the task files. Never fails: what cannot be read is hashed as an
/// error marker, so the task is still listed and its load reports the file by name.
fn fingerprint(dir: &Path) -> String {
    let mut hasher = Sha256::new();
    match task_files(dir) {
        Ok(files) => {
            for (relative, path) in files {
                hasher.update(relative.as_bytes());
                match path.metadata().and_then(|m| Ok((m.len(), m.modified()?))) {
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
    let dir = if locator == "." { root.to_path_buf() } else { root.join(locator) };
    let file_error = |file: &str, e: &dyn std::fmt::Display| SourceError::File {
        file: file.to_owned(),
        reason: e.to_string(),
    };
    let canonical_root = root.canonicalize().map_err(|e| file_error(".", &e))?;
    let mut files = BTreeMap::new();
    let mut modified: Option<SystemTime> = None;
    for (relative, path) in task_files(&dir).map_err(|e| file_error(locator, &e))? {
        if path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
            let target = path.canonicalize().map_err(|e| file_error(&relative, &e))?;
            if !target.starts_with(&canonical_root) {
                return Err(file_error(&relative, &"symbolic link pointing outside the source root"));
            }
        }
        let bytes = fs::read(&path).map_err(|e| file_error(&relative, &e))?;
        if let Ok(time) = path.metadata().and_then(|m| m.modified()) {
            modified = modified.max(Some(time));
        }
        files.insert(relative, bytes);
    }
    let folder_name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
    Ok(Bundle {
        files,
        folder_name,
        modified,
    })
}
