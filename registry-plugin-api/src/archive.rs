//! Task archives (`.zip`) checked before anything in them is used: the hardening of the
//! built-in `zip` source, for every source that finds archives (the filesystem and ZIP
//! sources, the S3 plugin). Feature `archive`.
//!
//! An archive is held in memory and never extracted. [`CheckedArchive::check`] refuses, as
//! a whole, an archive over the size cap, with a corrupt structure, two entries of one
//! name, too many entries, an absolute or `..` path, a symlink or encrypted entry, an
//! entry or a total over the size caps, or an entry whose compression ratio is over the
//! cap (a zip bomb). [`CheckedArchive::read_task`] then reads one task's files through
//! readers capped at the declared limits, so a header that lies about sizes costs nothing.
//!
//! Tasks lie at the archive's root or one folder down; when the root is a task, the
//! folders below it are duplicates, reported by the caller (`zip.duplicate_task`).

use crate::ReadLimits;
use crate::layout::{is_task_file, is_task_marker, task_like_files};
use std::io::{Cursor, Read};
use std::path::{Component, Path};
use std::sync::Arc;
use zip::ZipArchive;

/// Caps that keep a hostile archive from costing more than a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
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

/// Why an archive is refused: a stable code (`zip.…`) and a message naming the archive
/// and the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &'static str, message: String) -> Self {
        Refusal { code, message }
    }

    fn corrupt(archive: &str, e: impl std::fmt::Display) -> Self {
        Refusal::new("zip.corrupt", format!("{archive} is not a readable ZIP archive: {e}"))
    }

    /// An archive of `size` bytes over `limits`' archive cap, before it is read.
    pub fn too_large(archive: &str, size: u64, limits: &ArchiveLimits) -> Option<Self> {
        (size > limits.max_archive_bytes).then(|| {
            Refusal::new(
                "zip.too_large",
                format!("{archive} is {size} bytes; the cap is {}", limits.max_archive_bytes),
            )
        })
    }
}

/// Why reading one task out of a checked archive stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// A file (`file` named) or the task (`file` empty) is over the read limits.
    TooLarge { file: String, size: u64, cap: u64 },
    /// An entry could not be read (corrupt data, more bytes than its header said).
    Entry { file: String, reason: String },
}

/// An archive's bytes, shared by every clone of a [`CheckedArchive`].
#[derive(Debug, Clone)]
struct SharedBytes(Arc<[u8]>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// An archive in memory whose every entry passed the checks; cloning it shares the bytes
/// and the parsed directory.
#[derive(Debug, Clone)]
pub struct CheckedArchive {
    archive: ZipArchive<Cursor<SharedBytes>>,
    limits: ArchiveLimits,
}

/// The task folders of an archive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFolders {
    /// `""` for a task at the root, else the top-level folders holding a task, sorted.
    pub tasks: Vec<String>,
    /// Folders holding a task below a root task: ignored, worth a warning.
    pub duplicates: Vec<String>,
}

impl CheckedArchive {
    /// Checks the archive `bytes` (shown as `shown` in refusals) against `limits`, entry by
    /// entry, before anything uses it.
    pub fn check(shown: &str, bytes: impl Into<Arc<[u8]>>, limits: ArchiveLimits) -> Result<Self, Refusal> {
        let bytes: Arc<[u8]> = bytes.into();
        if let Some(refusal) = Refusal::too_large(shown, bytes.len() as u64, &limits) {
            return Err(refusal);
        }
        let mut archive = ZipArchive::new(Cursor::new(SharedBytes(bytes))).map_err(|e| Refusal::corrupt(shown, e))?;
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
            let entry = archive.by_index_raw(index).map_err(|e| Refusal::corrupt(shown, e))?;
            let name = entry
                .name()
                .map(|n| n.into_owned())
                .map_err(|e| Refusal::corrupt(shown, e))?;
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
        Ok(CheckedArchive { archive, limits })
    }

    /// The archive's task folders: its root, or the top-level folders with a marker.
    pub fn task_folders(&self) -> TaskFolders {
        let mut root = false;
        let mut folders = Vec::new();
        // Names were checked by `check`; one that cannot be read is not a task file.
        for name in self.archive.file_names().flatten() {
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
            TaskFolders {
                tasks: vec![String::new()],
                duplicates: folders,
            }
        } else {
            TaskFolders {
                tasks: folders,
                duplicates: Vec::new(),
            }
        }
    }

    /// The task-like files (a `main.js`, a `task.json`, …) at the root or one folder down,
    /// sorted and once each: what an archive without a task holds that says it meant to
    /// hold one (`layout.unrecognized`).
    pub fn task_like_files(&self) -> Vec<String> {
        let names: Vec<_> = self.archive.file_names().flatten().collect();
        let mut found: Vec<String> = task_like_files(
            names
                .iter()
                .map(|n| n.split_once('/').map_or(n.as_ref(), |(_, rest)| rest))
                .filter(|n| !n.contains('/')),
        )
        .into_iter()
        .map(str::to_owned)
        .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// The task files of the task in `folder` (`""`: the root), within `read` and this
    /// archive's per-entry cap. Sizes are checked from the headers first, then every read
    /// is capped whatever the header says.
    pub fn read_task(&self, folder: &str, read: ReadLimits) -> Result<Vec<(String, Vec<u8>)>, ReadError> {
        let mut archive = self.archive.clone();
        let prefix = if folder.is_empty() {
            String::new()
        } else {
            format!("{folder}/")
        };
        let entry_cap = self.limits.max_entry_bytes;
        let mut files = Vec::new();
        let mut used = 0u64;
        for index in 0..archive.len() {
            let mut entry = archive.by_index(index).map_err(|e| ReadError::Entry {
                file: folder.to_owned(),
                reason: e.to_string(),
            })?;
            let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
            let Some(relative) = name.strip_prefix(&prefix) else {
                continue;
            };
            if entry.is_dir() || !is_task_file(relative) {
                continue;
            }
            let too_large = |size: u64, used: u64| {
                if size > read.max_file_bytes {
                    Some(ReadError::TooLarge {
                        file: relative.to_owned(),
                        size,
                        cap: read.max_file_bytes,
                    })
                } else if used.saturating_add(size) > read.max_task_bytes {
                    Some(ReadError::TooLarge {
                        file: String::new(),
                        size: used.saturating_add(size),
                        cap: read.max_task_bytes,
                    })
                } else {
                    None
                }
            };
            if let Some(refused) = too_large(entry.size(), used) {
                return Err(refused);
            }
            // Past `cap` is past one of the caps; which one is said below.
            let cap = read.max_file_bytes.min(read.max_task_bytes - used).min(entry_cap);
            let mut bytes = Vec::with_capacity(entry.size().min(cap) as usize + 1);
            (&mut entry)
                .take(cap.saturating_add(1))
                .read_to_end(&mut bytes)
                .map_err(|e| ReadError::Entry {
                    file: relative.to_owned(),
                    reason: e.to_string(),
                })?;
            let size = bytes.len() as u64;
            if let Some(refused) = too_large(size, used) {
                return Err(refused);
            }
            if size > entry_cap {
                return Err(ReadError::Entry {
                    file: relative.to_owned(),
                    reason: format!("more than {entry_cap} bytes uncompressed"),
                });
            }
            used += size;
            files.push((relative.to_owned(), bytes));
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(files)
    }
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
