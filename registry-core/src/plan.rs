//! From scans and loads to a [`ChangeSet`] against a [`Snapshot`] of the store.
//!
//! The rules users rely on live here, as plain functions:
//! - only a complete scan of a source can make that source's tasks missing; a failed or
//!   partial scan removes nothing;
//! - a version is available while at least one origin (a source and locator) offers it;
//! - a broken task is a problem keyed by (source, locator) and its last good version stays
//!   offered; the problem clears when the task is fixed or removed;
//! - different content for one version is a conflict decided by the [`ConflictStrategy`];
//! - nothing unchanged is written, so an unchanged resync writes no row.

use crate::check::check_cross_task;
use crate::digest::Digest;
use crate::merge::{Candidate, ConflictDecision, ConflictRecord, ConflictStrategy};
use crate::problem::Problem;
use crate::source::{Entry, Scan};
use crate::task::TaskDefinition;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;
use uuid::Uuid;

/// `(source, locator)`: where a task is offered; keys origins and problems. A problem of
/// the source as a whole has an empty locator.
pub type ProblemKey = (String, String);
/// `(name, version)`: a task version.
pub type VersionKey = (String, String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    pub digest: Digest,
    pub available: bool,
}

/// What the store knows of one `(source, locator)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrigin {
    pub fingerprint: String,
    pub name: String,
    pub version: String,
    pub digest: Digest,
}

/// The part of the catalogue a plan is computed against. Holds no task content.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub versions: HashMap<VersionKey, StoredVersion>,
    pub origins: HashMap<ProblemKey, StoredOrigin>,
    /// The UUID of every task name ever stored.
    pub task_uuids: HashMap<String, Uuid>,
    /// Current problems, in the order they were reported.
    pub problems: HashMap<ProblemKey, Vec<Problem>>,
    /// Current conflicts, as [`ConflictRecord::detail_json`].
    pub conflicts: HashMap<VersionKey, String>,
}

/// The scan of one source, in priority order (the first has the highest priority).
#[derive(Debug)]
pub struct SourceScan {
    pub name: String,
    /// `Err` carries the message of a failed scan.
    pub result: Result<Scan, String>,
}

/// What loading, parsing and checking one entry gave.
#[derive(Debug, Clone)]
pub enum LoadOutcome {
    Parsed {
        task: Arc<TaskDefinition>,
        /// Warnings only: a task with an error is `Broken`.
        warnings: Vec<Problem>,
        modified: Option<SystemTime>,
    },
    Broken(Vec<Problem>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// A version not stored before.
    Added,
    /// New content for a stored version (a decided conflict); makes it available.
    Changed,
    /// An unavailable version offered again with its stored content.
    Revived,
    /// Offered by no source any more: kept, marked unavailable.
    Missing,
}

#[derive(Debug, Clone)]
pub struct VersionWrite {
    pub key: VersionKey,
    pub kind: WriteKind,
    /// The content to store, for `Added` and `Changed`.
    pub task: Option<Arc<TaskDefinition>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginRow {
    pub source: String,
    pub locator: String,
    pub origin: StoredOrigin,
    /// Not in the store yet (an insert rather than an update).
    pub is_new: bool,
}

/// Counts of one run, as the summary reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunCounts {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub missing: usize,
    pub revived: usize,
    /// Entries that failed to parse or check in this run.
    pub invalid: usize,
    pub conflicts: usize,
}

/// Everything one sync run writes, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct ChangeSet {
    pub versions: Vec<VersionWrite>,
    /// Task names seen for the first time, with their UUID.
    pub new_tasks: Vec<(String, Uuid)>,
    pub origin_upserts: Vec<OriginRow>,
    pub origin_deletes: Vec<ProblemKey>,
    /// Replaces all problems at a key; an empty list clears them.
    pub problem_sets: Vec<(ProblemKey, Vec<Problem>)>,
    pub conflicts: Vec<ConflictRecord>,
    pub conflicts_cleared: Vec<VersionKey>,
    pub counts: RunCounts,
}

impl ChangeSet {
    /// True when applying it would write nothing.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
            && self.new_tasks.is_empty()
            && self.origin_upserts.is_empty()
            && self.origin_deletes.is_empty()
            && self.problem_sets.is_empty()
            && self.conflicts.is_empty()
            && self.conflicts_cleared.is_empty()
    }
}

impl Snapshot {
    /// Applies `changes` the way the store does: the reference model that the store's tests
    /// compare both databases against.
    pub fn apply(&mut self, changes: &ChangeSet) {
        for (name, uuid) in &changes.new_tasks {
            self.task_uuids.entry(name.clone()).or_insert(*uuid);
        }
        for write in &changes.versions {
            let entry = self.versions.get_mut(&write.key);
            match (write.kind, entry) {
                (WriteKind::Added | WriteKind::Changed, entry) => {
                    let digest = write.task.as_ref().expect("content for added and changed versions").digest;
                    let version = StoredVersion { digest, available: true };
                    match entry {
                        Some(existing) => *existing = version,
                        None => {
                            self.versions.insert(write.key.clone(), version);
                        }
                    }
                }
                (WriteKind::Revived, Some(existing)) => existing.available = true,
                (WriteKind::Missing, Some(existing)) => existing.available = false,
                (_, None) => panic!("{:?} of unknown version {:?}", write.kind, write.key),
            }
        }
        for k in &changes.origin_deletes {
            self.origins.remove(k);
        }
        for row in &changes.origin_upserts {
            self.origins.insert(key(&row.source, &row.locator), row.origin.clone());
        }
        for (k, problems) in &changes.problem_sets {
            if problems.is_empty() {
                self.problems.remove(k);
            } else {
                self.problems.insert(k.clone(), problems.clone());
            }
        }
        for k in &changes.conflicts_cleared {
            self.conflicts.remove(k);
        }
        for record in &changes.conflicts {
            self.conflicts.insert(key(&record.name, &record.version), record.detail_json());
        }
    }
}

fn key(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

fn has_error(problems: Option<&Vec<Problem>>) -> bool {
    problems.is_some_and(|ps| ps.iter().any(Problem::is_error))
}

/// The entries to load next, as `(index into scans, entry)`; call again after loading them
/// until it returns nothing (at most two rounds in practice).
///
/// First round: entries whose fingerprint is new or changed, or that had an error (a broken
/// task is retried until it is fixed). Second round: unloaded entries of versions offered
/// with different contents, so that the conflict strategy sees every candidate in full.
pub fn entries_to_load(snapshot: &Snapshot, scans: &[SourceScan], loaded: &HashMap<ProblemKey, LoadOutcome>) -> Vec<(usize, Entry)> {
    let ok_scans = || scans.iter().enumerate().filter_map(|(i, s)| s.result.as_ref().ok().map(|scan| (i, &s.name, scan)));
    let mut changed = Vec::new();
    for (i, source, scan) in ok_scans() {
        for entry in &scan.entries {
            let k = key(source, &entry.locator);
            if loaded.contains_key(&k) {
                continue;
            }
            let stale = snapshot.origins.get(&k).is_none_or(|o| o.fingerprint != entry.fingerprint);
            if stale || has_error(snapshot.problems.get(&k)) {
                changed.push((i, entry.clone()));
            }
        }
    }
    if !changed.is_empty() {
        return changed;
    }

    let mut groups: HashMap<VersionKey, (HashSet<Digest>, Vec<(usize, &Entry)>)> = HashMap::new();
    for (i, source, scan) in ok_scans() {
        for entry in &scan.entries {
            let k = key(source, &entry.locator);
            let (version, digest, unloaded) = match (loaded.get(&k), snapshot.origins.get(&k)) {
                (Some(LoadOutcome::Parsed { task, .. }), _) => (key(&task.name, &task.version.to_string()), task.digest, false),
                (Some(LoadOutcome::Broken(_)), _) | (None, None) => continue,
                (None, Some(origin)) => (key(&origin.name, &origin.version), origin.digest, true),
            };
            let (digests, members) = groups.entry(version).or_default();
            digests.insert(digest);
            if unloaded {
                members.push((i, entry));
            }
        }
    }
    let mut conflicting = Vec::new();
    for (version, (mut digests, members)) in groups {
        if let Some(stored) = snapshot.versions.get(&version) {
            digests.insert(stored.digest);
        }
        if digests.len() > 1 {
            conflicting.extend(members.into_iter().map(|(i, e)| (i, e.clone())));
        }
    }
    conflicting
}

/// Plans one run: what to write so that the catalogue reflects `scans` and `loaded`.
pub fn plan(snapshot: &Snapshot, scans: &[SourceScan], loaded: &HashMap<ProblemKey, LoadOutcome>, strategy: &dyn ConflictStrategy) -> ChangeSet {
    let mut counts = RunCounts::default();
    let stored_owners: HashMap<Uuid, String> = snapshot.task_uuids.iter().map(|(n, u)| (*u, n.clone())).collect();
    let claims = loaded.values().filter_map(|o| match o {
        LoadOutcome::Parsed { task, .. } => Some((task.name.as_str(), task.uuid)),
        LoadOutcome::Broken(_) => None,
    });
    let rejected = check_cross_task(claims, &stored_owners);

    let mut origins = snapshot.origins.clone();
    let mut problem_sets: BTreeMap<ProblemKey, Vec<Problem>> = BTreeMap::new();
    let mut candidates: Vec<Candidate> = Vec::new();

    for (rank, scan) in scans.iter().enumerate() {
        let source = scan.name.as_str();
        let from_store = |locator: &str| {
            snapshot.origins.get(&key(source, locator)).map(|o| Candidate {
                rank,
                source: source.to_owned(),
                locator: locator.to_owned(),
                fingerprint: o.fingerprint.clone(),
                name: o.name.clone(),
                version: o.version.clone(),
                digest: o.digest,
                uuid: None,
                task: None,
                modified: None,
            })
        };
        let result = match &scan.result {
            Err(message) => {
                problem_sets.insert(key(source, ""), vec![Problem::error("source.scan_failed", message.clone())]);
                continue;
            }
            Ok(result) => result,
        };
        problem_sets.insert(key(source, ""), Vec::new());
        for issue in &result.issues {
            problem_sets
                .entry(key(source, &issue.locator))
                .or_default()
                .push(Problem::error("source.unreadable", issue.message.clone()));
        }
        let mut seen: HashSet<&str> = HashSet::with_capacity(result.entries.len());
        for entry in &result.entries {
            seen.insert(entry.locator.as_str());
            let k = key(source, &entry.locator);
            match loaded.get(&k) {
                Some(LoadOutcome::Parsed { task, warnings, modified }) => {
                    if let Some(problem) = rejected.get(&task.name) {
                        let mut problems = warnings.clone();
                        problems.push(problem.clone());
                        problem_sets.insert(k, problems);
                        counts.invalid += 1;
                        candidates.extend(from_store(&entry.locator));
                        continue;
                    }
                    problem_sets.insert(k.clone(), warnings.clone());
                    let version = task.version.to_string();
                    origins.insert(
                        k,
                        StoredOrigin {
                            fingerprint: entry.fingerprint.clone(),
                            name: task.name.clone(),
                            version: version.clone(),
                            digest: task.digest,
                        },
                    );
                    candidates.push(Candidate {
                        rank,
                        source: source.to_owned(),
                        locator: entry.locator.clone(),
                        fingerprint: entry.fingerprint.clone(),
                        name: task.name.clone(),
                        version,
                        digest: task.digest,
                        uuid: Some(task.uuid),
                        task: Some(task.clone()),
                        modified: *modified,
                    });
                }
                Some(LoadOutcome::Broken(problems)) => {
                    problem_sets.insert(k, problems.clone());
                    counts.invalid += 1;
                    // The last good version of this task stays offered by its old origin.
                    candidates.extend(from_store(&entry.locator));
                }
                None => candidates.extend(from_store(&entry.locator)),
            }
        }
        if result.complete {
            origins.retain(|(s, l), _| s != source || seen.contains(l.as_str()));
            for (s, l) in snapshot.problems.keys() {
                if s == source && !l.is_empty() && !seen.contains(l.as_str()) {
                    problem_sets.entry(key(s, l)).or_default();
                }
            }
        }
    }

    let mut groups: BTreeMap<VersionKey, Vec<&Candidate>> = BTreeMap::new();
    for candidate in &candidates {
        groups.entry(key(&candidate.name, &candidate.version)).or_default().push(candidate);
    }
    let mut changes = ChangeSet::default();
    let mut new_names: HashSet<&str> = HashSet::new();
    let mut stored_after: HashSet<VersionKey> = snapshot.versions.keys().cloned().collect();
    for (version, mut group) in groups {
        group.sort_by(|a, b| (a.rank, &a.locator).cmp(&(b.rank, &b.locator)));
        let stored = snapshot.versions.get(&version);
        let stored_digest = stored.map(|s| s.digest);
        let mut digests: Vec<Digest> = group.iter().map(|c| c.digest).chain(stored_digest).collect();
        digests.sort_unstable();
        digests.dedup();
        let decision = if digests.len() > 1 {
            strategy.decide(stored_digest, &group)
        } else {
            ConflictDecision::Take(group[0].digest)
        };
        let new_content = match decision {
            ConflictDecision::Take(digest) if stored_digest != Some(digest) => {
                group.iter().find(|c| c.digest == digest).and_then(|c| c.task.clone())
            }
            _ => None,
        };
        let kept = new_content.as_ref().map(|t| t.digest).or(stored_digest);
        if digests.len() > 1 {
            counts.conflicts += 1;
            let record = ConflictRecord {
                name: version.0.clone(),
                version: version.1.clone(),
                strategy: strategy.name().to_owned(),
                stored: stored_digest,
                offers: group.iter().map(|c| (c.source.clone(), c.locator.clone(), c.digest)).collect(),
                kept,
            };
            if snapshot.conflicts.get(&version) != Some(&record.detail_json()) {
                changes.conflicts.push(record);
            }
        } else if snapshot.conflicts.contains_key(&version) {
            changes.conflicts_cleared.push(version.clone());
        }
        match (stored, new_content) {
            (None, Some(task)) => {
                counts.added += 1;
                if !snapshot.task_uuids.contains_key(&task.name) && new_names.insert(group[0].name.as_str()) {
                    changes.new_tasks.push((task.name.clone(), task.uuid));
                }
                stored_after.insert(version.clone());
                changes.versions.push(VersionWrite { key: version, kind: WriteKind::Added, task: Some(task) });
            }
            // Nothing stored and the strategy took nothing: the version is not added.
            (None, None) => {}
            (Some(_), Some(task)) => {
                counts.updated += 1;
                changes.versions.push(VersionWrite { key: version, kind: WriteKind::Changed, task: Some(task) });
            }
            (Some(s), None) if !s.available => {
                counts.revived += 1;
                changes.versions.push(VersionWrite { key: version, kind: WriteKind::Revived, task: None });
            }
            (Some(_), None) => counts.unchanged += 1,
        }
    }

    // An origin may only point at a version that exists after this run.
    origins.retain(|_, o| stored_after.contains(&(o.name.clone(), o.version.clone())));
    let offered: HashSet<(&str, &str)> = origins.values().map(|o| (o.name.as_str(), o.version.as_str())).collect();
    let mut missing: Vec<&VersionKey> = snapshot
        .versions
        .iter()
        .filter(|(k, v)| v.available && !offered.contains(&(k.0.as_str(), k.1.as_str())))
        .map(|(k, _)| k)
        .collect();
    missing.sort();
    for version in missing {
        counts.missing += 1;
        changes.versions.push(VersionWrite { key: version.clone(), kind: WriteKind::Missing, task: None });
    }

    let mut deletes: Vec<ProblemKey> = snapshot.origins.keys().filter(|k| !origins.contains_key(*k)).cloned().collect();
    deletes.sort();
    changes.origin_deletes = deletes;
    let mut upserts: Vec<OriginRow> = origins
        .into_iter()
        .filter_map(|(k, o)| match snapshot.origins.get(&k) {
            Some(old) if *old == o => None,
            old => Some(OriginRow { is_new: old.is_none(), source: k.0, locator: k.1, origin: o }),
        })
        .collect();
    upserts.sort_by(|a, b| (&a.source, &a.locator).cmp(&(&b.source, &b.locator)));
    changes.origin_upserts = upserts;

    changes.problem_sets = problem_sets
        .into_iter()
        .filter(|(k, set)| snapshot.problems.get(k).map_or(!set.is_empty(), |old| old != set))
        .collect();
    changes.counts = counts;
    changes
}

#[cfg(test)]
mod tests;
