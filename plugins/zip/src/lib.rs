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
use registry_core::layout::{is_task_marker, task_like_files, unrecognized_message};
use registry_core::{
    Bundle, Entry, Limits, ReadBudget, Scan, ScanIssue, Source, SourceError, SourceKind, SourceSpec, is_task_file,
};
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Cursor, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;
use zip::ZipArchive;

inventory::submit! {
    SourceKind {
        name: "zip",
        description: "tasks inside ZIP archives (`path`: one .zip file or a folder of them)",
        settings_schema: || serde_json::to_value(schemars::schema_for!(ZipSettings)).unwrap_or_default(),
        build: ZipSource::from_spec,
    }
}

/// Caps that keep a hostile archive from costing more than a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveLimits {
    /// The archive file itself.
    pub max_archive_bytes: u64,
    pub max_entries: usize,
    /// Uncompressed, per entry.
    pub max_entry_bytes: u64,
    /// Uncompressed, all entries together.
    pub max_total_bytes: u64,
    /// Uncompressed size over compressed size, per entry.
    pub max_ratio: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits {
            max_archive_bytes: 256 * 1024 * 1024,
            max_entries: 10_000,
            max_entry_bytes: 16 * 1024 * 1024,
            max_total_bytes: 512 * 1024 * 1024,
            max_ratio: 200,
        }
    }
}

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
    archive: InMemoryArchive,
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
                    let (folders, duplicates) = task_folders(&archive);
                    if folders.is_empty() {
                        // An archive of task-like files that holds no task: said, not passed over.
                        let names: Vec<String> = archive.file_names().flatten().map(|n| n.into_owned()).collect();
                        let task_like = task_like_files(
                            names
                                .iter()
                                .map(|n| n.split_once('/').map_or(n.as_str(), |(_, rest)| rest))
                                .filter(|n| !n.contains('/')),
                        );
                        if !task_like.is_empty() {
                            let mut found = task_like;
                            found.sort_unstable();
                            found.dedup();
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
    fn open(&self, path: &Path) -> Result<(String, InMemoryArchive), Refusal> {
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
        let (_, mut archive) = self.open(path).map_err(refused)?;
        let prefix = if folder.is_empty() {
            String::new()
        } else {
            format!("{folder}/")
        };
        let mut files = BTreeMap::new();
        let mut budget = ReadBudget::new(self.read);
        for index in 0..archive.len() {
            let mut entry = archive
                .by_index(index)
                .map_err(|e| refused(Refusal::corrupt(archive_name, e)))?;
            let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
            let Some(relative) = name.strip_prefix(&prefix) else {
                continue;
            };
            if entry.is_dir() || !is_task_file(relative) {
                continue;
            }
            // The header's size first; then the read is capped whatever the header says,
            // so a lying size costs at most the caps: the registry's and the archive's own.
            let announced = entry.size();
            let entry_cap = self.limits.max_entry_bytes;
            let bytes = budget
                .read(relative, (&mut entry).take(entry_cap + 1), announced)
                .map_err(|e| SourceError::File {
                    file: relative.to_owned(),
                    reason: format!("{archive_name}: {e}"),
                })??;
            if bytes.len() as u64 > entry_cap {
                return Err(SourceError::File {
                    file: relative.to_owned(),
                    reason: format!("{archive_name}: more than {entry_cap} bytes uncompressed"),
                });
            }
            files.insert(relative.to_owned(), bytes);
        }
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

/// An archive's bytes, shared by every load that reads it.
#[derive(Debug, Clone)]
struct SharedBytes(Arc<[u8]>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// An archive read whole into memory; cloning it shares the bytes and the directory.
type InMemoryArchive = ZipArchive<Cursor<SharedBytes>>;

/// An archive file's size and modification time.
fn stamp_of(meta: &fs::Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    format!("{}:{}", meta.len(), mtime.as_nanos())
}

/// Why an archive is refused: a stable code and a message naming the entry.
#[derive(Debug)]
struct Refusal {
    code: &'static str,
    message: String,
}

impl Refusal {
    fn new(code: &'static str, message: String) -> Self {
        Refusal { code, message }
    }

    fn corrupt(archive: &str, e: impl std::fmt::Display) -> Self {
        Refusal::new("zip.corrupt", format!("{archive} is not a readable ZIP archive: {e}"))
    }
}

/// Reads an archive into memory and checks every entry's header before anything uses it.
fn read_archive(path: &Path, limits: &ArchiveLimits) -> Result<Opened, Refusal> {
    let shown = path
        .file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let meta = fs::metadata(path).map_err(|e| Refusal::new("zip.unreadable", format!("{shown}: {e}")))?;
    if meta.len() > limits.max_archive_bytes {
        return Err(Refusal::new(
            "zip.too_large",
            format!(
                "{shown} is {} bytes; the cap is {}",
                meta.len(),
                limits.max_archive_bytes
            ),
        ));
    }
    let stamp = stamp_of(&meta);
    let file = fs::File::open(path).map_err(|e| Refusal::new("zip.unreadable", format!("{shown}: {e}")))?;
    // Capped while reading too: an archive growing after the size was checked is refused.
    let bytes = Limits::read_capped(file, meta.len(), limits.max_archive_bytes)
        .map_err(|e| Refusal::new("zip.unreadable", format!("{shown}: {e}")))?
        .map_err(|size| {
            Refusal::new(
                "zip.too_large",
                format!(
                    "{shown} grew to {size} bytes while read; the cap is {}",
                    limits.max_archive_bytes
                ),
            )
        })?;
    let shared = SharedBytes(bytes.into());
    let mut archive = ZipArchive::new(Cursor::new(shared)).map_err(|e| Refusal::corrupt(&shown, e))?;
    // Two entries of one name: which one a reader sees depends on the reader, so an
    // archive that has them is hostile (the zip crate would keep the last silently).
    if archive.has_duplicate_names() {
        return Err(Refusal::new(
            "zip.duplicate_entry",
            format!("{shown} holds two or more entries with the same name"),
        ));
    }
    if archive.len() > limits.max_entries {
        return Err(Refusal::new(
            "zip.too_many_entries",
            format!(
                "{shown} has {} entries; the cap is {}",
                archive.len(),
                limits.max_entries
            ),
        ));
    }
    let mut total = 0u64;
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(|e| Refusal::corrupt(&shown, e))?;
        let name = entry
            .name()
            .map(|n| n.into_owned())
            .map_err(|e| Refusal::corrupt(&shown, e))?;
        let refuse = |code: &'static str, why: String| Refusal::new(code, format!("{shown}: entry `{name}` {why}"));
        if !is_enclosed(&name) {
            return Err(refuse(
                "zip.unsafe_path",
                "has a path that leaves the archive (absolute or `..`)".into(),
            ));
        }
        if entry.is_symlink() {
            return Err(refuse("zip.symlink", "is a symbolic link".into()));
        }
        if entry.encrypted() {
            return Err(refuse("zip.encrypted", "is encrypted".into()));
        }
        let (size, compressed) = (entry.size(), entry.compressed_size());
        if size > limits.max_entry_bytes {
            return Err(refuse(
                "zip.entry_too_large",
                format!("is {size} bytes uncompressed; the cap is {}", limits.max_entry_bytes),
            ));
        }
        if size > limits.max_ratio.saturating_mul(compressed.max(1)) {
            return Err(refuse(
                "zip.compression_ratio",
                format!(
                    "expands {compressed} bytes to {size}: over the ratio cap of {}",
                    limits.max_ratio
                ),
            ));
        }
        total += size;
        if total > limits.max_total_bytes {
            return Err(Refusal::new(
                "zip.total_too_large",
                format!("{shown} expands to more than {} bytes", limits.max_total_bytes),
            ));
        }
    }
    Ok(Opened { stamp, archive })
}

/// A relative path with no `..`, no root, no drive and no backslash tricks.
fn is_enclosed(name: &str) -> bool {
    if name.starts_with('/') || name.starts_with('\\') || name.contains('\\') || name.contains('\0') {
        return false;
    }
    Path::new(name)
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// The task folders of an archive: `""` for the root, or top-level folder names. When the
/// root is a task, task folders below it are duplicates, returned second.
fn task_folders(archive: &InMemoryArchive) -> (Vec<String>, Vec<String>) {
    let mut root = false;
    let mut folders = Vec::new();
    // Names were checked by `read_archive`; one that cannot be read is not a task file.
    for name in archive.file_names().flatten() {
        match name.split_once('/') {
            None if is_task_marker(&name) => root = true,
            Some((folder, marker)) if is_task_marker(marker) && !folder.is_empty() && !folder.starts_with('.') => {
                folders.push(folder.to_owned())
            }
            _ => {}
        }
    }
    folders.sort();
    folders.dedup();
    if root {
        (vec![String::new()], folders)
    } else {
        (folders, Vec::new())
    }
}
