//! The built-in `zip` source: tasks inside ZIP archives, read in memory and never extracted.
//!
//! ```text
//! tasks.zip                        an archive with one task at its root …
//! ├── metadata.json
//! ├── main.js
//! └── addition/metadata.json       … and a copy one folder down: the root copy wins,
//!                                  the copy is reported (`zip.duplicate_task`)
//! bundle.zip                       an archive of several tasks, one folder down each
//! ├── addition/…
//! └── weather-api/…
//! ```
//!
//! An archive of task-like files (a `main.js`, a `task.json`, …) with no task in it is
//! reported as `layout.unrecognized`, not passed over.
//!
//! `path` is one `.zip` file or a folder of them. Locators are `ARCHIVE` for a task at the
//! archive's root and `ARCHIVE/FOLDER` for one a folder down; the fingerprint is the
//! archive's size and mtime.
//!
//! An archive is read whole into memory (up to a cap) and checked entry by entry before
//! any content is used, once per scan: the loads of its tasks share what the scan read
//! while the file is unchanged. Two entries with one name make the archive hostile. An archive with an absolute or `..` path, a symlink entry, an
//! encrypted entry, too many entries, an entry or a total over the size caps, a compression
//! ratio over the cap (a zip bomb), or a corrupt structure is refused as a whole: it is
//! reported with the archive and the entry named, and the scan is partial, so nothing that
//! archive offered before is removed. Entries are decompressed through a reader capped at
//! the declared size limit, so a header that lies about sizes costs nothing either.

use async_trait::async_trait;
use registry_core::layout::unrecognized_message;
use registry_core::{Bundle, Entry, Limits, Scan, ScanIssue, Source, SourceError, SourceKind, SourceSpec};
use registry_plugin_api::ReadLimits;
use registry_plugin_api::archive::{CheckedArchive, ReadError, Refusal, TaskFolders};
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

inventory::submit! {
    SourceKind {
        name: "zip",
        description: "tasks inside ZIP archives (`path`: one .zip file or a folder of them)",
        settings_schema: || serde_json::to_value(schemars::schema_for!(ZipSettings)).unwrap_or_default(),
        build: ZipSource::from_spec,
    }
}

pub use registry_plugin_api::archive::ArchiveLimits;

/// A source reading the tasks of one archive or of a folder of archives.
#[derive(Debug, Clone)]
pub struct ZipSource {
    name: String,
    path: Arc<PathBuf>,
    archives: ArchiveSet,
}

/// Task archives read with every check of this crate. The archives a scan read and
/// checked are kept by path: loads take them from here while the file's size and mtime
/// are unchanged, so an archive is read once and not once per task it holds. The `zip`
/// source is one archive or a folder of them; the filesystem source hands it the archives
/// lying in its tree.
#[derive(Debug, Clone, Default)]
pub struct ArchiveSet {
    limits: ArchiveLimits,
    /// What one task's load reads at most (the registry's read limits).
    read: Limits,
    opened: Arc<Mutex<HashMap<PathBuf, Opened>>>,
}

/// An archive read and checked, with the stamp of the file it was read from.
#[derive(Debug, Clone)]
struct Opened {
    stamp: String,
    archive: CheckedArchive,
}

/// The `[[sources]]` settings of a `zip` source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZipSettings {
    /// One `.zip` file or a folder of them; relative to the config file's folder.
    pub path: PathBuf,
    #[serde(default)]
    pub limits: ArchiveLimits,
}

impl ZipSource {
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        ZipSource {
            name: name.into(),
            path: Arc::new(path.into()),
            archives: ArchiveSet::default(),
        }
    }

    pub fn with_limits(mut self, limits: ArchiveLimits) -> Self {
        self.archives = ArchiveSet::new(limits, self.archives.read);
        self
    }

    /// Caps what one task's load reads (default: [`Limits::default`]).
    pub fn with_read_limits(mut self, read: Limits) -> Self {
        self.archives = ArchiveSet::new(self.archives.limits, read);
        self
    }

    /// Builds the source from a `[[sources]]` entry with `type = "zip"`.
    pub fn from_spec(spec: &SourceSpec) -> Result<Box<dyn Source>, SourceError> {
        let settings: ZipSettings = serde_json::from_value(spec.settings.clone()).map_err(|e| SourceError::Config {
            source_name: spec.name.clone(),
            reason: e.to_string(),
        })?;
        let source = ZipSource::new(spec.name.clone(), spec.base_dir.join(settings.path))
            .with_limits(settings.limits)
            .with_read_limits(spec.limits);
        Ok(Box::new(source))
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> SourceError {
        SourceError::Unavailable {
            source_name: self.name.clone(),
            reason: format!("{}: {reason}", self.path.display()),
        }
    }

    /// The archives of the source, with the name their locators start with.
    fn archives(&self) -> Result<Vec<(String, PathBuf)>, SourceError> {
        let meta = fs::metadata(self.path.as_path()).map_err(|e| self.unavailable(e))?;
        if meta.is_file() {
            let name = self
                .path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            return Ok(vec![(name, self.path.to_path_buf())]);
        }
        let mut archives = Vec::new();
        for item in fs::read_dir(self.path.as_path()).map_err(|e| self.unavailable(e))? {
            let item = item.map_err(|e| self.unavailable(e))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name.to_ascii_lowercase().ends_with(".zip") && !name.starts_with('.') {
                archives.push((name, item.path()));
            }
        }
        archives.sort();
        Ok(archives)
    }

    fn scan_blocking(&self) -> Result<Scan, SourceError> {
        let archives = self.archives()?;
        let mut scan = self.archives.scan(&archives);
        // Only this scan's archives are kept: a removed archive's memory is freed.
        self.archives.retain(|path| archives.iter().any(|(_, p)| p == path));
        scan.entries.sort_by(|a, b| a.locator.cmp(&b.locator));
        Ok(scan)
    }

    fn load_blocking(&self, locator: &str) -> Result<Bundle, SourceError> {
        let archives = self.archives()?;
        let (archive_name, path, folder) = archives
            .iter()
            .find_map(|(name, path)| {
                let rest = locator.strip_prefix(name.as_str())?;
                match rest.strip_prefix('/') {
                    Some(folder) => Some((name, path, folder)),
                    None if rest.is_empty() => Some((name, path, "")),
                    None => None,
                }
            })
            .ok_or_else(|| SourceError::File {
                file: locator.to_owned(),
                reason: "no such archive".into(),
            })?;
        self.archives.load(archive_name, path, folder)
    }
}

impl ArchiveSet {
    /// Archives checked against `limits`, their tasks read within `read`.
    pub fn new(limits: ArchiveLimits, read: Limits) -> Self {
        ArchiveSet {
            limits,
            read,
            opened: Arc::default(),
        }
    }

    /// The tasks of `archives` (`(locator, path)`): an entry `LOCATOR` for a task at an
    /// archive's root, `LOCATOR/FOLDER` for one a folder down. A refused archive is an
    /// error issue under its locator and makes the scan partial. An archive whose size and
    /// mtime are those of the copy kept is not read again.
    pub fn scan(&self, archives: &[(String, PathBuf)]) -> Scan {
        let mut scan = Scan {
            complete: true,
            ..Scan::default()
        };
        for (archive_name, path) in archives {
            match self.open(path) {
                Ok((stamp, archive)) => {
                    let TaskFolders {
                        tasks: folders,
                        duplicates,
                    } = archive.task_folders();
                    if folders.is_empty() {
                        // An archive of task-like files that holds no task: said, not passed over.
                        let found = archive.task_like_files();
                        if !found.is_empty() {
                            let found: Vec<&str> = found.iter().map(String::as_str).collect();
                            scan.issues.push(ScanIssue::warning(
                                archive_name.clone(),
                                "layout.unrecognized",
                                unrecognized_message(&found),
                            ));
                        }
                    }
                    for folder in folders {
                        let mut hasher = Sha256::new();
                        hasher.update(stamp.as_bytes());
                        hasher.update(folder.as_bytes());
                        let locator = if folder.is_empty() {
                            archive_name.clone()
                        } else {
                            format!("{archive_name}/{folder}")
                        };
                        scan.entries.push(Entry {
                            locator,
                            fingerprint: hex::encode(&hasher.finalize()[..16]),
                        });
                    }
                    for folder in duplicates {
                        scan.issues.push(ScanIssue::warning(
                            format!("{archive_name}/{folder}"),
                            "zip.duplicate_task",
                            format!("{archive_name} has a task at its root and another in `{folder}/`: the root copy is used"),
                        ));
                    }
                }
                Err(refusal) => {
                    scan.complete = false;
                    scan.issues
                        .push(ScanIssue::error(archive_name.clone(), refusal.code, refusal.message));
                }
            }
        }
        scan
    }

    /// Forgets the archives `keep` says no longer exist, freeing their memory.
    pub fn retain(&self, keep: impl Fn(&Path) -> bool) {
        if let Ok(mut kept) = self.opened.lock() {
            kept.retain(|path, _| keep(path));
        }
    }

    /// The stamp and contents of the archive at `path`: the copy kept while the file's
    /// size and mtime are unchanged, else read and checked again.
    fn open(&self, path: &Path) -> Result<(String, CheckedArchive), Refusal> {
        let kept = self.opened.lock().ok().and_then(|o| o.get(path).cloned());
        if let Some(kept) = kept
            && fs::metadata(path).is_ok_and(|m| stamp_of(&m) == kept.stamp)
        {
            return Ok((kept.stamp, kept.archive));
        }
        let opened = read_archive(path, &self.limits)?;
        let found = (opened.stamp.clone(), opened.archive.clone());
        if let Ok(mut kept) = self.opened.lock() {
            kept.insert(path.to_owned(), opened);
        }
        Ok(found)
    }

    /// The task in `folder` (`""`: the root) of the archive at `path`, shown as
    /// `archive_name` in errors.
    pub fn load(&self, archive_name: &str, path: &Path, folder: &str) -> Result<Bundle, SourceError> {
        let refused = |r: Refusal| SourceError::File {
            file: archive_name.to_owned(),
            reason: r.message,
        };
        let (_, archive) = self.open(path).map_err(refused)?;
        let read = ReadLimits {
            max_file_bytes: self.read.max_file_bytes,
            max_task_bytes: self.read.max_task_bytes,
        };
        let files = archive.read_task(folder, read).map_err(|e| match e {
            ReadError::TooLarge { file, size, cap } => SourceError::TooLarge { file, size, cap },
            ReadError::Entry { file, reason } => SourceError::File {
                file,
                reason: format!("{archive_name}: {reason}"),
            },
        })?;
        let files: BTreeMap<String, Vec<u8>> = files.into_iter().collect();
        let folder_name = match folder {
            "" => Path::new(archive_name)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned()),
            folder => Some(folder.to_owned()),
        };
        let modified = fs::metadata(path).and_then(|m| m.modified()).ok();
        Ok(Bundle {
            files,
            folder_name,
            modified,
            indexed: None,
        })
    }
}

#[async_trait]
impl Source for ZipSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "zip"
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn watch_path(&self) -> Option<PathBuf> {
        Some(self.path.to_path_buf())
    }

    async fn scan(&self) -> Result<Scan, SourceError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.scan_blocking())
            .await
            .map_err(|e| self.unavailable(format!("scan task failed: {e}")))?
    }

    async fn load(&self, entry: &Entry) -> Result<Bundle, SourceError> {
        let this = self.clone();
        let locator = entry.locator.clone();
        tokio::task::spawn_blocking(move || this.load_blocking(&locator))
            .await
            .map_err(|e| SourceError::File {
                file: entry.locator.clone(),
                reason: format!("load task failed: {e}"),
            })?
    }
}

/// An archive file's size and modification time.
fn stamp_of(meta: &fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    format!("{}:{}", meta.len(), mtime.as_nanos())
}

/// Reads an archive file into memory and checks every entry before anything uses it.
fn read_archive(path: &Path, limits: &ArchiveLimits) -> Result<Opened, Refusal> {
    let shown = path
        .file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let unreadable = |e: std::io::Error| Refusal::new("zip.unreadable", format!("{shown}: {e}"));
    let meta = fs::metadata(path).map_err(unreadable)?;
    if let Some(refusal) = Refusal::too_large(&shown, meta.len(), limits) {
        return Err(refusal);
    }
    let stamp = stamp_of(&meta);
    let file = fs::File::open(path).map_err(unreadable)?;
    // Capped while reading too: an archive growing after the size was checked is refused.
    let bytes = Limits::read_capped(file, meta.len(), limits.max_archive_bytes)
        .map_err(unreadable)?
        .map_err(|size| {
            Refusal::new(
                "zip.too_large",
                format!(
                    "{shown} grew to {size} bytes while read; the cap is {}",
                    limits.max_archive_bytes
                ),
            )
        })?;
    let archive = CheckedArchive::check(&shown, bytes, *limits)?;
    Ok(Opened { stamp, archive })
}
