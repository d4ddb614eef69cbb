//! `.zip` objects: downloaded once per version into the source's cache folder, checked
//! with the ZIP source's hardening, and kept in memory for the loads of the scan that read
//! them. A scan must know an archive's task folders to list its tasks, so the cache is what
//! lets an unchanged rescan download nothing, also in a new process.

use crate::bucket::Bucket;
use crate::layout::Listed;
use registry_plugin_api::PluginError;
use registry_plugin_api::archive::{ArchiveLimits, CheckedArchive, Refusal};
use sha2::{Digest as _, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Archives on disk, one file per object version.
pub struct ArchiveCache {
    dir: PathBuf,
    limits: ArchiveLimits,
}

/// Why an archive object gave no tasks this scan.
pub enum ArchiveFailure {
    /// The archive is refused as it is (hostile, corrupt, too large): a `zip.…` code.
    Refused(Refusal),
    /// Reading it failed; it may work next time.
    Unreadable(PluginError),
}

impl ArchiveCache {
    pub fn new(source_cache: &Path, limits: ArchiveLimits) -> Self {
        ArchiveCache {
            dir: source_cache.join("archives"),
            limits,
        }
    }

    /// The cache file of one version of an object: named by its key, size and ETag.
    fn file_of(&self, archive: &Listed) -> PathBuf {
        let mut hasher = Sha256::new();
        hasher.update(archive.key.as_bytes());
        hasher.update([0]);
        hasher.update(archive.size.to_le_bytes());
        hasher.update(archive.etag.as_deref().unwrap_or("").as_bytes());
        self.dir.join(format!("{}.zip", hex::encode(&hasher.finalize()[..16])))
    }

    /// The checked archive of `archive`'s listed version: from the cache when it holds
    /// that version, else downloaded (`If-Match` on the listed ETag) and cached.
    pub async fn open(&self, bucket: &Bucket, archive: &Listed) -> Result<CheckedArchive, ArchiveFailure> {
        let shown = archive.key.as_str();
        if let Some(refusal) = Refusal::too_large(shown, archive.size, &self.limits) {
            return Err(ArchiveFailure::Refused(refusal));
        }
        let file = self.file_of(archive);
        // A version without an ETag cannot be told from the next one: never cached.
        let cacheable = archive.etag.is_some();
        if cacheable
            && let Ok(bytes) = std::fs::read(&file)
            && bytes.len() as u64 == archive.size
        {
            return CheckedArchive::check(shown, bytes, self.limits).map_err(ArchiveFailure::Refused);
        }
        let bytes = bucket
            .get(archive, self.limits.max_archive_bytes)
            .await
            .map_err(|e| match e.code.as_str() {
                "too_large" => ArchiveFailure::Refused(Refusal::new("zip.too_large", e.message)),
                _ => ArchiveFailure::Unreadable(e),
            })?;
        let checked = CheckedArchive::check(shown, bytes.clone(), self.limits).map_err(ArchiveFailure::Refused)?;
        if cacheable {
            // Best effort: a cache that cannot be written costs a download next time.
            let _ = self.write(&file, &bytes);
        }
        Ok(checked)
    }

    fn write(&self, file: &Path, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let partial = file.with_extension("partial");
        std::fs::write(&partial, bytes)?;
        std::fs::rename(&partial, file)
    }

    /// Removes the cached versions no object of `listed` is.
    pub fn keep_only(&self, listed: &[Listed]) {
        let keep: HashSet<PathBuf> = listed.iter().map(|a| self.file_of(a)).collect();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            if !keep.contains(&entry.path()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}
