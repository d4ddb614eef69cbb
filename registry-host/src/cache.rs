//! A bounded in-memory cache of checked tasks for long-lived processes (`watch`,
//! `serve --watch`): content already parsed and validated is not checked again, such as a
//! broken task that every run retries, or a file touched without being changed.
//!
//! The key is sha256 over the bundle as loaded (paths and bytes), the folder name (a
//! legacy task is named after it) and what the repository's index says of the task. The configured validation is fixed for the cache's
//! life, so it is not part of the key.

use registry_core::{Bundle, LoadOutcome, Validation, check_bundle};
use sha2::{Digest as _, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of bundles the cache may hold by default.
pub const DEFAULT_CAPACITY_BYTES: u64 = 256 * 1024 * 1024;

/// Checked tasks by content, bounded by the bytes they hold; counts its hits and misses.
pub struct CheckCache {
    entries: moka::sync::Cache<[u8; 32], LoadOutcome>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for CheckCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckCache")
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish()
    }
}

impl CheckCache {
    /// An empty cache holding at most `capacity_bytes` of bundles.
    pub fn new(capacity_bytes: u64) -> Self {
        let entries = moka::sync::Cache::builder()
            .weigher(|_, outcome: &LoadOutcome| weight(outcome))
            .max_capacity(capacity_bytes)
            .build();
        CheckCache {
            entries,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The outcome of checking `bundle`, from the cache when this content was seen.
    pub fn check(&self, bundle: &Bundle, validation: &Validation) -> LoadOutcome {
        let key = key_of(bundle);
        if let Some(mut outcome) = self.entries.get(&key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            if let LoadOutcome::Parsed { modified, .. } = &mut outcome {
                *modified = bundle.modified; // the content is the same; its time is this load's
            }
            return outcome;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let outcome = check_bundle(bundle, validation);
        self.entries.insert(key, outcome.clone());
        outcome
    }

    /// Checks answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Checks done afresh.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Checked tasks held now.
    pub fn entries(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

fn key_of(bundle: &Bundle) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for (path, bytes) in &bundle.files {
        hasher.update((path.len() as u64).to_be_bytes());
        hasher.update(path.as_bytes());
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    }
    hasher.update(bundle.folder_name.as_deref().unwrap_or_default().as_bytes());
    hasher.update([0]);
    if let Some(indexed) = &bundle.indexed {
        hasher.update(indexed.fingerprint().as_bytes());
    }
    hasher.finalize().into()
}

/// Roughly the memory an outcome holds, for the capacity.
fn weight(outcome: &LoadOutcome) -> u32 {
    let bytes = match outcome {
        LoadOutcome::Parsed { task, .. } => task.contents_len(),
        LoadOutcome::Broken(problems) => problems.iter().map(|p| p.message.len() + 64).sum(),
    };
    u32::try_from(bytes + 256).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(script: &str, folder: &str) -> Bundle {
        let mut b = Bundle::from_files([
            (
                "metadata.json",
                br#"{"version":"1.0.0","label":"l","description":"d"}"#.to_vec(),
            ),
            ("main.js", script.as_bytes().to_vec()),
        ]);
        b.folder_name = Some(folder.into());
        b
    }

    #[test]
    fn the_same_content_is_checked_once_and_a_different_folder_or_script_is_not_a_hit() {
        let cache = CheckCache::new(DEFAULT_CAPACITY_BYTES);
        let validation = Validation::default();
        let first = cache.check(&bundle("(function (i) { return i; })", "a"), &validation);
        let again = cache.check(&bundle("(function (i) { return i; })", "a"), &validation);
        assert_eq!((cache.hits(), cache.misses()), (1, 1));
        match (first, again) {
            (LoadOutcome::Parsed { task: one, .. }, LoadOutcome::Parsed { task: two, .. }) => assert_eq!(one, two),
            other => panic!("expected two parsed outcomes, got {other:?}"),
        }
        // A legacy task is named after its folder: another folder is another task.
        cache.check(&bundle("(function (i) { return i; })", "b"), &validation);
        cache.check(&bundle("(function (i) { return 1; })", "a"), &validation);
        assert_eq!((cache.hits(), cache.misses()), (1, 3));
    }

    #[test]
    fn a_broken_task_is_cached_as_broken() {
        let cache = CheckCache::new(DEFAULT_CAPACITY_BYTES);
        let broken = bundle("(function (i) { return ; ", "a");
        for _ in 0..3 {
            assert!(matches!(
                cache.check(&broken, &Validation::default()),
                LoadOutcome::Broken(_)
            ));
        }
        assert_eq!((cache.hits(), cache.misses()), (2, 1));
    }
}
