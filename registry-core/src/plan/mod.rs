//! From scans and loads to a [`ChangeSet`] against a [`Snapshot`] of the store.
//!
//! The rules users rely on live here, as plain functions:
//! - only a complete scan of a source can make that source's tasks missing; a failed or
//!   partial scan removes nothing;
//! - a version is available while at least one origin (a source and locator) offers it;
//! - a broken task is a problem keyed by (source, locator) and its last good version stays
//!   offered; the problem clears when the task is fixed or removed;
//! - different content for one version is a conflict decided by the [`ConflictStrategy`],
//!   except an author's edit in place (one origin's own content changed, nobody offers the
//!   old one), which is an update unless the strategy treats edits as conflicts;
//! - content signed by a trusted key is never replaced by unsigned or untrusted content
//!   for the same version, whatever the strategy; the attempt is recorded as a conflict;
//! - nothing unchanged is written, so an unchanged resync writes no row.

use crate::digest::Digest;
use crate::keys::{OriginKey, VersionKey};
use crate::merge::{Candidate, ConflictDecision, ConflictDetail, ConflictOffer, ConflictRecord, ConflictStrategy};
use crate::problem::Problem;
use crate::signature::{KeyId, SignaturePolicy, TaskSignature};
use crate::source::{Entry, Scan, ScanScope};
use crate::task::TaskDefinition;
use crate::validate::LoadOutcome;
mod claims;

pub use claims::check_cross_task;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    pub digest: Digest,
    pub available: bool,
    /// The trusted key that signed the stored content, as last verified.
    pub signer: Option<KeyId>,
}

/// What the store knows of one `(source, locator)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrigin {
    pub fingerprint: String,
    pub name: String,
    pub version: String,
    pub digest: Digest,
    /// The trusted key whose signature of this content verified, when one did.
    pub signer: Option<KeyId>,
    /// The [`SignaturePolicy::identity`] the signature was judged under: judged under
    /// another policy (a key added or removed), the entry is loaded and judged again.
    pub judged_under: String,
}

/// The part of the catalogue a plan is computed against. Holds no task content.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub versions: HashMap<VersionKey, StoredVersion>,
    pub origins: HashMap<OriginKey, StoredOrigin>,
    /// The UUID of every task name ever stored. Needed only when something was loaded (a
    /// plan with no loads adds no task and claims no UUID), so a store may leave it empty then.
    pub task_uuids: HashMap<String, Uuid>,
    /// Current problems, in the order they were reported.
    pub problems: HashMap<OriginKey, Vec<Problem>>,
    /// Current conflicts, as [`ConflictDetail::to_json`].
    pub conflicts: HashMap<VersionKey, String>,
    /// For each broken task's problems: what they were found at ([`problem_fingerprint`]).
    pub problem_fingerprints: HashMap<OriginKey, String>,
}

/// How a plan treats removals and conflicts.
#[derive(Clone, Copy)]
pub struct PlanOptions<'s> {
    pub strategy: &'s dyn ConflictStrategy,
    /// A complete scan that would make more than this share of a source's stored tasks
    /// missing removes nothing from that source and raises a problem instead.
    pub max_removal_share: f64,
    /// Lifts the mass-removal guard for this run.
    pub allow_mass_removal: bool,
    /// What the loads are checked with ([`Validation::identity`](crate::Validation::identity)):
    /// a broken task is loaded again when this changes.
    pub checked_with: &'s str,
}

impl PlanOptions<'static> {
    pub const DEFAULT_MAX_REMOVAL_SHARE: f64 = 0.5;
}

impl<'s> PlanOptions<'s> {
    pub fn new(strategy: &'s dyn ConflictStrategy) -> Self {
        PlanOptions {
            strategy,
            max_removal_share: PlanOptions::DEFAULT_MAX_REMOVAL_SHARE,
            allow_mass_removal: false,
            checked_with: "",
        }
    }
}

/// Problem codes of a load that may well go away by themselves (the file could not be
/// read, the check crashed): such a task is loaded again on every run.
pub const RETRIED_PROBLEM_CODES: &[&str] = &["file.unreadable", "task.load_failed", "task.check_crashed"];

/// What a broken task's problems were found at: the entry's fingerprint and the rules it
/// was checked with. While both stay the same, the task is not loaded again.
pub fn problem_fingerprint(fingerprint: &str, checked_with: &str) -> String {
    format!("{fingerprint}#{checked_with}")
}

/// What a source's tasks are checked with: the rules, and the source's trust policy.
fn checks_of(checked_with: &str, scan: &SourceScan) -> String {
    match scan.signatures.identity() {
        "" => checked_with.to_owned(),
        policy => format!("{checked_with}+{policy}"),
    }
}

/// The scan of one source, in priority order (the first has the highest priority).
#[derive(Debug)]
pub struct SourceScan {
    pub name: String,
    /// `Err` carries the message of a failed scan.
    pub result: Result<Scan, String>,
    /// The part of the source the scan covers.
    pub scope: ScanScope,
    /// The source is retired (no process scanned it for the grace period, or an operator
    /// forgot it): its every origin goes, past the per-source mass-removal guard, which
    /// the host applies to the catalogue as a whole before retiring.
    pub retired: bool,
    /// The trust policy the source's signatures are judged under.
    pub signatures: Arc<SignaturePolicy>,
}

impl SourceScan {
    /// A source that is no more: a complete scan that found nothing, guarded by the caller.
    pub fn retired(name: impl Into<String>) -> Self {
        SourceScan {
            name: name.into(),
            result: Ok(Scan {
                entries: Vec::new(),
                complete: true,
                issues: Vec::new(),
            }),
            scope: ScanScope::Whole,
            retired: true,
            signatures: Arc::default(),
        }
    }

    /// A source not scanned in this run: its stored origins are offered as they were, so
    /// conflicts with the scanned sources are still decided at its priority.
    pub fn unscanned(name: impl Into<String>) -> Self {
        SourceScan {
            name: name.into(),
            result: Ok(Scan {
                entries: Vec::new(),
                complete: true,
                issues: Vec::new(),
            }),
            scope: ScanScope::Within(Vec::new()),
            retired: false,
            signatures: Arc::default(),
        }
    }
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
    pub origin_deletes: Vec<OriginKey>,
    /// Replaces all problems at a key; an empty list clears them.
    pub problem_sets: Vec<(OriginKey, Vec<Problem>)>,
    /// What the broken tasks among `problem_sets` were found at ([`problem_fingerprint`]).
    pub problem_fingerprints: HashMap<OriginKey, String>,
    pub conflicts: Vec<ConflictRecord>,
    pub conflicts_cleared: Vec<VersionKey>,
    /// Stored versions whose content stays but whose signature changes: signed by an
    /// origin now, or no longer verified after a key left the policy.
    pub signatures: Vec<SignatureUpdate>,
    pub counts: RunCounts,
}

/// A new signature record for a stored version whose content stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureUpdate {
    pub key: VersionKey,
    pub change: SignatureChange,
}

/// How a stored version's signature record changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureChange {
    /// The version's signature is this one now (`None`: unsigned).
    Replaced(Option<Arc<TaskSignature>>),
    /// The stored signature stays, no longer verified: its key left the trust policy and
    /// the version went unavailable with it (`require`).
    Unverified,
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
            && self.signatures.is_empty()
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
                    let digest = write
                        .task
                        .as_ref()
                        .expect("content for added and changed versions")
                        .digest;
                    let version = StoredVersion {
                        digest,
                        available: true,
                        signer: write
                            .task
                            .as_ref()
                            .and_then(|t| t.signature.as_ref())
                            .and_then(|s| s.signer()),
                    };
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
        for update in &changes.signatures {
            if let Some(version) = self.versions.get_mut(&update.key) {
                version.signer = match &update.change {
                    SignatureChange::Replaced(signature) => signature.as_ref().and_then(|s| s.signer()),
                    SignatureChange::Unverified => None,
                };
            }
        }
        for k in &changes.origin_deletes {
            self.origins.remove(k);
        }
        for row in &changes.origin_upserts {
            self.origins
                .insert(OriginKey::new(&row.source, &row.locator), row.origin.clone());
        }
        for (k, problems) in &changes.problem_sets {
            if problems.is_empty() {
                self.problems.remove(k);
            } else {
                self.problems.insert(k.clone(), problems.clone());
            }
            match changes.problem_fingerprints.get(k) {
                Some(found_at) if !problems.is_empty() => {
                    self.problem_fingerprints.insert(k.clone(), found_at.clone());
                }
                _ => {
                    self.problem_fingerprints.remove(k);
                }
            }
        }
        for k in &changes.conflicts_cleared {
            self.conflicts.remove(k);
        }
        for record in &changes.conflicts {
            self.conflicts
                .insert(VersionKey::new(&record.name, &record.version), record.detail.to_json());
        }
    }
}

/// A borrowed `(String, String)` key: lookups during a plan allocate nothing.
type Ref<'a> = (&'a str, &'a str);

fn index_versions<V>(map: &HashMap<VersionKey, V>) -> HashMap<Ref<'_>, &V> {
    map.iter().map(|(k, v)| (k.parts(), v)).collect()
}

fn index_origins<V>(map: &HashMap<OriginKey, V>) -> HashMap<Ref<'_>, &V> {
    map.iter().map(|(k, v)| (k.parts(), v)).collect()
}

/// What one entry offers: from this run's load, or from the store when unchanged.
struct Offer<'a> {
    name: &'a str,
    version: &'a str,
    digest: Digest,
    task: Option<&'a Arc<TaskDefinition>>,
    signer: Option<KeyId>,
}

fn candidate<'c>(
    rank: usize,
    source: &'c str,
    locator: &'c str,
    fingerprint: &'c str,
    offer: &Offer<'c>,
    modified: Option<SystemTime>,
) -> Candidate<'c> {
    Candidate {
        rank,
        source,
        locator,
        fingerprint,
        name: offer.name,
        version: offer.version,
        digest: offer.digest,
        uuid: offer.task.map(|t| t.uuid),
        task: offer.task,
        modified,
        signer: offer.signer,
    }
}

/// The inputs of a run, indexed once for borrowed lookups.
struct RunIndex<'a> {
    stored_origins: HashMap<Ref<'a>, &'a StoredOrigin>,
    stored_versions: HashMap<Ref<'a>, &'a StoredVersion>,
    loaded: HashMap<Ref<'a>, &'a LoadOutcome>,
    /// Version text of each parsed load (`semver::Version` is not text).
    loaded_versions: HashMap<Ref<'a>, String>,
}

impl<'a> RunIndex<'a> {
    fn new(snapshot: &'a Snapshot, loaded: &'a HashMap<OriginKey, LoadOutcome>) -> Self {
        let loaded_versions = loaded
            .iter()
            .filter_map(|(k, o)| match o {
                LoadOutcome::Parsed { task, .. } => Some((k.parts(), task.version.to_string())),
                LoadOutcome::Broken(_) => None,
            })
            .collect();
        RunIndex {
            stored_origins: index_origins(&snapshot.origins),
            stored_versions: index_versions(&snapshot.versions),
            loaded: index_origins(loaded),
            loaded_versions,
        }
    }

    /// `(locator, fingerprint)` of the stored origins of `source` that `scope` does not
    /// cover: offered as they were, as if scanned unchanged.
    fn unscanned_origins<'s>(
        &'s self,
        source: &'s str,
        scope: &'s ScanScope,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 's {
        let scoped = *scope != ScanScope::Whole;
        self.stored_origins
            .iter()
            .filter(move |((s, l), _)| scoped && *s == source && !scope.covers(l))
            .map(|((_, l), o)| (*l, o.fingerprint.as_str()))
    }

    /// The stored origins of sources `scans` did not scan (absent from the run, or whose
    /// scan failed), with their rank: a failed source keeps its place, others come after
    /// every source of the run.
    fn origins_outside<'s>(
        &'s self,
        scans: &'s [SourceScan],
    ) -> impl Iterator<Item = (Ref<'a>, &'a StoredOrigin, usize)> + 's {
        let ranks: HashMap<&str, (usize, bool)> = scans
            .iter()
            .enumerate()
            .map(|(rank, scan)| (scan.name.as_str(), (rank, scan.result.is_ok())))
            .collect();
        self.stored_origins
            .iter()
            .filter_map(move |(&k, &origin)| match ranks.get(k.0) {
                Some((_, true)) => None,
                Some((rank, false)) => Some((k, origin, *rank)),
                None => Some((k, origin, scans.len())),
            })
    }

    fn stored_offer(&self, k: Ref<'_>) -> Option<Offer<'a>> {
        self.stored_origins.get(&k).map(|o| Offer {
            name: &o.name,
            version: &o.version,
            digest: o.digest,
            task: None,
            signer: o.signer,
        })
    }

    /// The offer of a parsed load.
    fn loaded_offer(&self, k: Ref<'a>, task: &'a Arc<TaskDefinition>) -> Offer<'_> {
        Offer {
            name: &task.name,
            version: &self.loaded_versions[&k],
            digest: task.digest,
            task: Some(task),
            signer: task.signature.as_ref().and_then(|s| s.signer()),
        }
    }
}

/// The entries to load next, as `(index into scans, entry)`; call again after loading them
/// until it returns nothing (at most two rounds in practice).
///
/// First round: entries whose fingerprint is new or changed, or that had an error (a broken
/// task is retried until it is fixed). Second round: unloaded entries of versions offered
/// with different contents, so that the conflict strategy sees every candidate in full. Only
/// versions touched by this run's loads or already in conflict can be offered with
/// different contents, so only those are looked at.
pub fn entries_to_load(
    snapshot: &Snapshot,
    scans: &[SourceScan],
    loaded: &HashMap<OriginKey, LoadOutcome>,
    checked_with: &str,
) -> Vec<(usize, Entry)> {
    let run = RunIndex::new(snapshot, loaded);
    let ok_scans = || {
        scans
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.result.as_ref().ok().map(|scan| (i, s.name.as_str(), scan)))
    };
    let erroneous: HashSet<Ref<'_>> = snapshot
        .problems
        .iter()
        .filter(|(_, ps)| ps.iter().any(Problem::is_error))
        .map(|(k, _)| k.parts())
        .collect();
    let mut changed = Vec::new();
    for (i, source, scan) in ok_scans() {
        let checks = checks_of(checked_with, &scans[i]);
        let policy = scans[i].signatures.identity();
        for entry in &scan.entries {
            let k = (source, entry.locator.as_str());
            if run.loaded.contains_key(&k) {
                continue;
            }
            // Changed content, or a signature judged under another trust policy.
            let stale = run
                .stored_origins
                .get(&k)
                .is_none_or(|o| o.fingerprint != entry.fingerprint || o.judged_under != policy);
            // A broken task found broken at this very fingerprint, with these rules, would
            // be found broken again: it is not read.
            let known_broken = || {
                snapshot
                    .problem_fingerprints
                    .get(&OriginKey::new(k.0, k.1))
                    .is_some_and(|found_at| *found_at == problem_fingerprint(&entry.fingerprint, &checks))
            };
            if (stale || erroneous.contains(&k)) && !known_broken() {
                changed.push((i, entry.clone()));
            }
        }
    }
    if !changed.is_empty() {
        return changed;
    }

    let mut contested: HashMap<Ref<'_>, HashSet<Digest>> = HashMap::new();
    for VersionKey { name, version } in snapshot.conflicts.keys() {
        contested.entry((name.as_str(), version.as_str())).or_default();
    }
    for (k, outcome) in &run.loaded {
        if let LoadOutcome::Parsed { task, .. } = outcome {
            let offer = run.loaded_offer(*k, task);
            contested
                .entry((offer.name, offer.version))
                .or_default()
                .insert(offer.digest);
        }
    }
    if contested.is_empty() {
        return Vec::new();
    }
    let mut unloaded_members: Vec<(Ref<'_>, usize, Entry)> = Vec::new();
    for (i, source, scan) in ok_scans() {
        let scanned = scan
            .entries
            .iter()
            .map(|e| (e.locator.as_str(), e.fingerprint.as_str()));
        for (locator, fingerprint) in scanned.chain(run.unscanned_origins(source, &scans[i].scope)) {
            let k = (source, locator);
            if run.loaded.contains_key(&k) {
                continue;
            }
            if let Some(offer) = run.stored_offer(k)
                && let Some(digests) = contested.get_mut(&(offer.name, offer.version))
            {
                digests.insert(offer.digest);
                let entry = Entry {
                    locator: locator.to_owned(),
                    fingerprint: fingerprint.to_owned(),
                };
                unloaded_members.push(((offer.name, offer.version), i, entry));
            }
        }
    }
    for (version, digests) in &mut contested {
        if let Some(stored) = run.stored_versions.get(version) {
            digests.insert(stored.digest);
        }
    }
    // What sources outside the run offer counts too (see `offers_from_outside`).
    for (_, origin, _) in run.origins_outside(scans) {
        if let Some(digests) = contested.get_mut(&(origin.name.as_str(), origin.version.as_str())) {
            digests.insert(origin.digest);
        }
    }
    unloaded_members
        .into_iter()
        .filter(|(version, _, _)| contested[version].len() > 1)
        .map(|(_, i, entry)| (i, entry))
        .collect()
}

/// The versions a run with scoped scans can change: those offered by what it loaded or
/// scanned, and those in conflict. `None` when every scan is whole (nothing is skipped).
fn touched_versions<'a>(
    run: &'a RunIndex<'a>,
    scans: &'a [SourceScan],
    snapshot: &'a Snapshot,
) -> Option<HashSet<Ref<'a>>> {
    if scans.iter().all(|s| s.scope == ScanScope::Whole) {
        return None;
    }
    let mut touched: HashSet<Ref<'a>> = snapshot.conflicts.keys().map(VersionKey::parts).collect();
    for (k, outcome) in &run.loaded {
        if let LoadOutcome::Parsed { task, .. } = outcome {
            touched.insert((task.name.as_str(), run.loaded_versions[k].as_str()));
        }
    }
    for scan in scans {
        for entry in scan.result.iter().flat_map(|r| &r.entries) {
            if let Some(origin) = run.stored_origins.get(&(scan.name.as_str(), entry.locator.as_str())) {
                touched.insert((origin.name.as_str(), origin.version.as_str()));
            }
        }
    }
    Some(touched)
}

/// Plans one run: what to write so that the catalogue reflects `scans` and `loaded`.
///
/// The phases, each a function of this module, in order: `claim_uuids` (one UUID per
/// name, in `claims.rs`), `collect_candidates` of every source (with the removal guard),
/// `decide_versions` (conflicts included), `reconcile_origins`, `mark_missing` (what no
/// source offers any more) and `diff_problems` (only the problem sets that changed).
pub fn plan(
    snapshot: &Snapshot,
    scans: &[SourceScan],
    loaded: &HashMap<OriginKey, LoadOutcome>,
    options: &PlanOptions<'_>,
) -> ChangeSet {
    let run = RunIndex::new(snapshot, loaded);
    let rejected = claims::claim_uuids(loaded.values(), &snapshot.task_uuids);
    let collected = collect_candidates(&run, snapshot, scans, &rejected, options);
    let mut counts = collected.counts;
    counts.unchanged += collected.untouched.len();
    let mut changes = ChangeSet::default();
    let added = decide_versions(
        &run,
        snapshot,
        &collected.candidates,
        options.strategy,
        scans.len(),
        &mut changes,
        &mut counts,
    );
    let offered = reconcile_origins(&run, &collected, &added, &mut changes);
    let withheld: HashSet<Ref<'_>> = collected
        .withheld
        .iter()
        .filter_map(|k| run.stored_origins.get(k))
        .map(|o| (o.name.as_str(), o.version.as_str()))
        .collect();
    mark_missing(&run, &offered, &withheld, &mut changes, &mut counts);
    // Keys are unique: unstable sorts, which need no buffer of half the vector.
    changes.versions.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    changes.new_tasks.sort_unstable();
    changes
        .conflicts
        .sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    changes.conflicts_cleared.sort();

    changes.problem_sets = diff_problems(snapshot, collected.problem_sets, &collected.problem_fingerprints);
    changes.problem_fingerprints = collected
        .problem_fingerprints
        .into_iter()
        .filter(|(k, _)| changes.problem_sets.iter().any(|(changed, _)| changed == k))
        .collect();
    changes.counts = counts;
    changes
}

/// What every source offers in this run, before versions are decided.
struct Collected<'r> {
    candidates: Vec<Candidate<'r>>,
    /// Origins that complete scans no longer found.
    removed: HashSet<Ref<'r>>,
    /// Origins whose stored offer the source's trust policy no longer admits (a key left
    /// the policy under `require`): kept, but offering nothing.
    withheld: HashSet<Ref<'r>>,
    /// Origins loaded in this run: their fingerprint, the trust policy their signature was
    /// judged under, and their offer.
    offered_now: HashMap<Ref<'r>, (&'r str, &'r str, Offer<'r>)>,
    problem_sets: BTreeMap<OriginKey, Vec<Problem>>,
    /// What this run's broken tasks were found at.
    problem_fingerprints: HashMap<OriginKey, String>,
    /// Versions offered only from outside every scope and touched by nothing in this run:
    /// unchanged by definition, counted without being grouped.
    untouched: HashSet<Ref<'r>>,
    counts: RunCounts,
}

/// Walks every source's scan in rank order: each entry offers what it loaded (or, broken
/// or unchanged, its last good version); a complete scan removes what it no longer found,
/// unless the mass-removal guard holds it back.
fn collect_candidates<'r>(
    run: &'r RunIndex<'r>,
    snapshot: &'r Snapshot,
    scans: &'r [SourceScan],
    rejected: &HashMap<(String, Uuid), Problem>,
    options: &PlanOptions<'_>,
) -> Collected<'r> {
    let mut counts = RunCounts::default();
    let mut removed: HashSet<Ref<'_>> = HashSet::new();
    let mut withheld: HashSet<Ref<'_>> = HashSet::new();
    // Sized up front: one candidate per entry at most, and a doubling vector of many
    // entries would hold up to twice that at the run's peak.
    let entries: usize = scans
        .iter()
        .filter_map(|scan| scan.result.as_ref().ok())
        .map(|result| result.entries.len())
        .sum();
    let mut offered_now: HashMap<Ref<'_>, (&str, &str, Offer<'_>)> = HashMap::with_capacity(run.loaded.len());
    let mut problem_sets: BTreeMap<OriginKey, Vec<Problem>> = BTreeMap::new();
    let mut problem_fingerprints: HashMap<OriginKey, String> = HashMap::new();
    let mut candidates: Vec<Candidate<'_>> = Vec::with_capacity(entries);
    let touched = touched_versions(run, scans, snapshot);
    let mut untouched: HashSet<Ref<'_>> = HashSet::new();

    for (rank, scan) in scans.iter().enumerate() {
        let source = scan.name.as_str();
        let policy = &scan.signatures;
        let checks = checks_of(options.checked_with, scan);
        let result = match &scan.result {
            Err(message) => {
                problem_sets.insert(
                    OriginKey::source(source),
                    vec![Problem::error("source.scan_failed", message.clone())],
                );
                continue;
            }
            Ok(result) => result,
        };
        let whole = scan.scope == ScanScope::Whole;
        if whole {
            problem_sets.insert(OriginKey::source(source), Vec::new());
        }
        for issue in &result.issues {
            problem_sets
                .entry(OriginKey::new(source, &issue.locator))
                .or_default()
                .push(Problem {
                    severity: issue.severity,
                    ..Problem::error(issue.code, issue.message.clone())
                });
        }
        let scanned = result
            .entries
            .iter()
            .map(|e| (e.locator.as_str(), e.fingerprint.as_str()));
        let outside = run.unscanned_origins(source, &scan.scope).filter(|(locator, _)| {
            let k = (source, *locator);
            if run.loaded.contains_key(&k) {
                return true;
            }
            let origin = run.stored_origins[&k];
            let version = (origin.name.as_str(), origin.version.as_str());
            let skip = touched.as_ref().is_some_and(|t| !t.contains(&version))
                && run.stored_versions.get(&version).is_some_and(|v| v.available);
            if skip {
                untouched.insert(version);
            }
            !skip
        });
        for (locator, fingerprint) in scanned.chain(outside) {
            let k = (source, locator);
            // What the store says this entry offers: its last good version, as long as the
            // trust policy admits it (under `require`, only while its signer is trusted).
            let admitted = |offer: &Offer<'_>| {
                let admitted = policy.admits(offer.signer);
                if !admitted {
                    withheld.insert(k);
                }
                admitted
            };
            let last_good = run.stored_offer(k).filter(admitted).map(|offer| {
                let fingerprint = &run.stored_origins[&k].fingerprint;
                let mut last_good = candidate(rank, source, locator, fingerprint, &offer, None);
                last_good.signer = last_good.signer.filter(|key| policy.trusts(*key));
                last_good
            });
            match run.loaded.get(&k) {
                Some(LoadOutcome::Parsed {
                    task,
                    warnings,
                    modified,
                }) => {
                    if let Some(problem) = rejected.get(&(task.name.clone(), task.uuid)) {
                        let mut problems = warnings.clone();
                        problems.push(problem.clone());
                        problem_sets.insert(OriginKey::new(k.0, k.1), problems);
                        counts.invalid += 1;
                        candidates.extend(last_good);
                        continue;
                    }
                    // A clean task with nothing stored to clear needs no entry: a cold
                    // run of many tasks would hold one per task until it is diffed away.
                    let key = OriginKey::new(k.0, k.1);
                    if !warnings.is_empty() || snapshot.problems.contains_key(&key) {
                        problem_sets.insert(key, warnings.clone());
                    }
                    let offer = run.loaded_offer(k, task);
                    candidates.push(candidate(rank, source, locator, fingerprint, &offer, *modified));
                    offered_now.insert(k, (fingerprint, policy.identity(), offer));
                }
                Some(LoadOutcome::Broken(problems)) => {
                    // Content that fails stays failing until it changes (or the rules do):
                    // kept with what it was found at, so that it is not loaded again.
                    if !problems
                        .iter()
                        .any(|p| RETRIED_PROBLEM_CODES.contains(&p.code.as_str()))
                    {
                        problem_fingerprints
                            .insert(OriginKey::new(k.0, k.1), problem_fingerprint(fingerprint, &checks));
                    }
                    problem_sets.insert(OriginKey::new(k.0, k.1), problems.clone());
                    counts.invalid += 1;
                    // A broken task keeps offering its last good version.
                    candidates.extend(last_good);
                }
                None => {
                    // Not read: unchanged, or known broken at this fingerprint (still counted).
                    if snapshot
                        .problems
                        .get(&OriginKey::new(k.0, k.1))
                        .is_some_and(|set| set.iter().any(Problem::is_error))
                    {
                        counts.invalid += 1;
                    }
                    candidates.extend(last_good);
                }
            }
        }
        if result.complete {
            let seen: HashSet<&str> = result.entries.iter().map(|e| e.locator.as_str()).collect();
            let stored_here = run.stored_origins.keys().filter(|(s, _)| *s == source).count();
            let vanished: Vec<Ref<'_>> = run
                .stored_origins
                .keys()
                .filter(|(s, l)| *s == source && scan.scope.covers(l) && !seen.contains(l))
                .copied()
                .collect();
            if !options.allow_mass_removal
                && !scan.retired
                && !vanished.is_empty()
                && vanished.len() as f64 > options.max_removal_share * stored_here as f64
            {
                // A source that suddenly lost most of its tasks is more likely broken (an
                // unmounted share, a bad checkout) than emptied on purpose.
                let message = format!(
                    "this scan would remove {} of the source's {stored_here} tasks, more than {:.0}%: nothing was removed; \
                     run `taskreg sync --allow-mass-removal` if the removal is intended",
                    vanished.len(),
                    options.max_removal_share * 100.0
                );
                problem_sets.insert(
                    OriginKey::source(source),
                    vec![Problem::error("source.mass_removal_blocked", message)],
                );
                continue;
            }
            removed.extend(vanished);
            for OriginKey { source: s, locator: l } in snapshot.problems.keys() {
                if s == source && !l.is_empty() && scan.scope.covers(l) && !seen.contains(l.as_str()) {
                    problem_sets.entry(OriginKey::new(s, l)).or_default();
                }
            }
        }
    }

    offers_from_outside(run, scans, &mut candidates);

    Collected {
        candidates,
        removed,
        withheld,
        offered_now,
        problem_sets,
        problem_fingerprints,
        untouched,
        counts,
    }
}

/// Adds the stored offers of sources this run did not scan (another host's, one no longer
/// configured, one whose scan failed) to the versions this run's scans offer: those sources
/// still offer what they stored, and without them a version two sources disagree on would
/// look agreed, and be overwritten, whenever only one of them syncs. They rank after every
/// source of the run (a failed one keeps its place).
fn offers_from_outside<'r>(run: &'r RunIndex<'r>, scans: &'r [SourceScan], candidates: &mut Vec<Candidate<'r>>) {
    // Usually none (one host, every source scanned): then nothing else is built.
    let outside: Vec<(Ref<'r>, &StoredOrigin, usize)> = run.origins_outside(scans).collect();
    if outside.is_empty() {
        return;
    }
    let version_of = |origin: &'r StoredOrigin| (origin.name.as_str(), origin.version.as_str());
    let outside_versions: HashSet<Ref<'r>> = outside.iter().map(|(_, origin, _)| version_of(origin)).collect();
    let offered: HashSet<Ref<'r>> = candidates
        .iter()
        .map(|c| (c.name, c.version))
        .filter(|v| outside_versions.contains(v))
        .collect();
    for (k, origin, rank) in outside {
        if offered.contains(&version_of(origin))
            && let Some(offer) = run.stored_offer(k)
        {
            candidates.push(candidate(rank, k.0, k.1, &origin.fingerprint, &offer, None));
        }
    }
}

/// Groups the candidates by version and decides each: agreeing offers need no decision;
/// different contents are a conflict the strategy decides, recorded when new or changed.
/// Returns the versions added.
fn decide_versions<'r>(
    run: &RunIndex<'r>,
    snapshot: &Snapshot,
    candidates: &'r [Candidate<'r>],
    strategy: &dyn ConflictStrategy,
    outside_rank: usize,
    changes: &mut ChangeSet,
    counts: &mut RunCounts,
) -> HashSet<Ref<'r>> {
    let mut groups: HashMap<Ref<'_>, Vec<&Candidate<'_>>> = HashMap::new();
    for candidate in candidates {
        groups
            .entry((candidate.name, candidate.version))
            .or_default()
            .push(candidate);
    }
    let mut new_names: HashSet<&str> = HashSet::new();
    let mut added: HashSet<Ref<'_>> = HashSet::new();
    for (version, mut group) in groups {
        let stored = run.stored_versions.get(&version).copied();
        let stored_digest = stored.map(|s| s.digest);
        // Content a trusted key signed: nothing unsigned or untrusted replaces it.
        let protected = stored.is_some_and(|s| s.signer.is_some());
        let offers_agree = group.iter().all(|c| c.digest == group[0].digest);
        let agreed = offers_agree && stored_digest.is_none_or(|d| d == group[0].digest);
        // The author's loop: an origin that stored this version now offers new content,
        // and nothing offers the old content any more. An update, not a conflict (unless
        // the strategy says content never changes).
        let edited_in_place = !agreed
            && offers_agree
            && !strategy.edits_are_conflicts()
            && group.iter().all(|c| c.task.is_some())
            && group.iter().any(|c| {
                run.stored_origins.get(&(c.source, c.locator)).is_some_and(|o| {
                    (o.name.as_str(), o.version.as_str()) == version && Some(o.digest) == stored_digest
                })
            })
            && (!protected || group.iter().all(|c| c.signer.is_some()));
        let new_content = if edited_in_place {
            if snapshot.conflicts.contains_key(&VersionKey::new(version.0, version.1)) {
                changes.conflicts_cleared.push(VersionKey::new(version.0, version.1));
            }
            signed_first(&group, group[0].digest)
        } else if agreed {
            // The common case, and the whole of an unchanged resync: nothing to decide.
            if snapshot.conflicts.contains_key(&VersionKey::new(version.0, version.1)) {
                changes.conflicts_cleared.push(VersionKey::new(version.0, version.1));
            }
            if stored.is_none() {
                signed_first(&group, group[0].digest)
            } else {
                None
            }
        } else {
            group.sort_by(|a, b| (a.rank, a.source, a.locator).cmp(&(b.rank, b.source, b.locator)));
            counts.conflicts += 1;
            // Content a source outside the run offers stays: a host cannot rank sources it
            // does not sync, and letting each host's own sources win would flip the
            // content with every host's run. Across hosts, the first stored content wins
            // and the conflict stays recorded for people to settle.
            let held_from_outside =
                stored_digest.is_some_and(|d| group.iter().any(|c| c.rank == outside_rank && c.digest == d));
            // With content signed by a trusted key stored or offered, the strategy chooses
            // among the signed offers only: unsigned and untrusted ones are refused.
            let signed: Vec<&Candidate<'_>> = group.iter().copied().filter(|c| c.signer.is_some()).collect();
            let signed_rule = protected || !signed.is_empty();
            let decision = if held_from_outside {
                ConflictDecision::KeepStored
            } else if signed_rule {
                if signed.iter().all(|c| Some(c.digest) == stored_digest) {
                    ConflictDecision::KeepStored
                } else {
                    match strategy.decide(stored_digest, &signed) {
                        ConflictDecision::Take(digest) if signed.iter().any(|c| c.digest == digest) => {
                            ConflictDecision::Take(digest)
                        }
                        _ => ConflictDecision::KeepStored,
                    }
                }
            } else {
                strategy.decide(stored_digest, &group)
            };
            let new_content = match decision {
                ConflictDecision::Take(digest) if stored_digest != Some(digest) => signed_first(&group, digest),
                _ => None,
            };
            let kept = new_content.map(|t| t.digest).or(stored_digest);
            let mut decision = match (decision, kept) {
                (ConflictDecision::Take(digest), Some(k)) if k == digest => {
                    let winner = group.iter().find(|c| c.digest == digest).expect("taken from the group");
                    format!("took {digest} from {}:{}", winner.source, winner.locator)
                }
                (_, Some(k)) => format!("kept the stored {k}"),
                (_, None) => "not added: no offer was taken".to_owned(),
            };
            let refused = group
                .iter()
                .filter(|c| c.signer.is_none() && Some(c.digest) != kept)
                .count();
            if signed_rule && refused > 0 {
                decision.push_str(&format!(
                    "; content signed by a trusted key is not replaced by unsigned or untrusted content: \
                     {refused} such offer(s) refused"
                ));
            }
            let record = ConflictRecord {
                name: version.0.to_owned(),
                version: version.1.to_owned(),
                stored: stored_digest,
                detail: ConflictDetail {
                    strategy: strategy.name().to_owned(),
                    offers: group
                        .iter()
                        .map(|c| ConflictOffer {
                            source: c.source.to_owned(),
                            locator: c.locator.to_owned(),
                            digest: c.digest,
                            signed_by: c.signer.map(|k| k.to_string()),
                        })
                        .collect(),
                    kept,
                    decision,
                },
            };
            let standing = snapshot.conflicts.get(&VersionKey::new(version.0, version.1));
            if !standing.is_some_and(|stored| record.detail.stands_as(stored)) {
                changes.conflicts.push(record);
            }
            new_content
        };
        if new_content.is_none()
            && let Some(stored) = stored
            && let Some(update) = signature_update(version, stored, &group)
        {
            changes.signatures.push(update);
        }
        let (kind, counter) = match (stored, new_content) {
            (None, Some(_)) => (WriteKind::Added, &mut counts.added),
            // Nothing stored and nothing taken (a strategy refused every offer): not added.
            (None, None) => continue,
            (Some(_), Some(_)) => (WriteKind::Changed, &mut counts.updated),
            (Some(s), None) if !s.available => (WriteKind::Revived, &mut counts.revived),
            (Some(_), None) => {
                counts.unchanged += 1;
                continue;
            }
        };
        *counter += 1;
        if let (WriteKind::Added, Some(task)) = (kind, new_content) {
            added.insert(version);
            if !snapshot.task_uuids.contains_key(&task.name) && new_names.insert(version.0) {
                changes.new_tasks.push((task.name.clone(), task.uuid));
            }
        }
        changes.versions.push(VersionWrite {
            key: VersionKey::new(version.0, version.1),
            kind,
            task: new_content.cloned(),
        });
    }

    added
}

/// The offer of content `digest` to store: a signed one when there is one (the same content
/// may come signed from one origin and unsigned from another).
fn signed_first<'r>(group: &[&Candidate<'r>], digest: Digest) -> Option<&'r Arc<TaskDefinition>> {
    let mut offers = group.iter().filter(|c| c.digest == digest && c.task.is_some());
    let first = offers.clone().next();
    offers.find(|c| c.signer.is_some()).or(first).and_then(|c| c.task)
}

/// The new signature record of a stored version whose content stays, when this run's
/// offers of that content judge it differently: signed by a trusted key now, or no longer
/// verified by any origin (judged again by a load of this run).
fn signature_update(version: Ref<'_>, stored: &StoredVersion, group: &[&Candidate<'_>]) -> Option<SignatureUpdate> {
    let key = || VersionKey::new(version.0, version.1);
    let same = || group.iter().filter(|c| c.digest == stored.digest);
    match same().find(|c| c.signer.is_some()) {
        Some(c) if c.signer == stored.signer => None,
        // Only a load carries the signature's text; an unchanged origin vouches for the
        // record already stored.
        Some(c) => c
            .task
            .and_then(|t| t.signature.clone())
            .map(|signature| SignatureUpdate {
                key: key(),
                change: SignatureChange::Replaced(Some(signature)),
            }),
        None if stored.signer.is_none() => None,
        None => same().find_map(|c| c.task).map(|task| SignatureUpdate {
            key: key(),
            change: SignatureChange::Replaced(task.signature.clone()),
        }),
    }
}

/// Writes the origins of this run: an origin may only point at a version that exists
/// after it. Returns every version some origin offers after the run.
fn reconcile_origins<'r>(
    run: &'r RunIndex<'r>,
    collected: &Collected<'r>,
    added: &HashSet<Ref<'r>>,
    changes: &mut ChangeSet,
) -> HashSet<Ref<'r>> {
    let (removed, offered_now) = (&collected.removed, &collected.offered_now);
    // An origin may only point at a version that exists after this run.
    let exists = |name: &str, version: &str| {
        run.stored_versions.contains_key(&(name, version)) || added.contains(&(name, version))
    };
    let mut offered: HashSet<Ref<'_>> = HashSet::with_capacity(run.stored_origins.len());
    for (k, origin) in &run.stored_origins {
        if !removed.contains(k) && !offered_now.contains_key(k) && !collected.withheld.contains(k) {
            offered.insert((&origin.name, &origin.version));
        }
    }
    for (k, (fingerprint, judged_under, offer)) in offered_now {
        let stored = run.stored_origins.get(k);
        if !exists(offer.name, offer.version) {
            if stored.is_some() {
                changes.origin_deletes.push(OriginKey::new(k.0, k.1));
            }
            continue;
        }
        offered.insert((offer.name, offer.version));
        let origin = StoredOrigin {
            fingerprint: (*fingerprint).to_owned(),
            name: offer.name.to_owned(),
            version: offer.version.to_owned(),
            digest: offer.digest,
            signer: offer.signer,
            judged_under: (*judged_under).to_owned(),
        };
        if stored.is_none_or(|s| **s != origin) {
            changes.origin_upserts.push(OriginRow {
                source: k.0.to_owned(),
                locator: k.1.to_owned(),
                origin,
                is_new: stored.is_none(),
            });
        }
    }
    changes.origin_deletes.extend(
        removed
            .iter()
            .filter(|k| !offered_now.contains_key(*k))
            .map(|k| OriginKey::new(k.0, k.1)),
    );
    changes.origin_deletes.sort_unstable();
    changes
        .origin_upserts
        .sort_unstable_by(|a, b| (&a.source, &a.locator).cmp(&(&b.source, &b.locator)));

    offered
}

/// Makes every stored available version that no origin offers any more missing.
/// A version that goes because the trust policy withheld its offers (`withheld`) is no
/// longer verified either.
fn mark_missing(
    run: &RunIndex<'_>,
    offered: &HashSet<Ref<'_>>,
    withheld: &HashSet<Ref<'_>>,
    changes: &mut ChangeSet,
    counts: &mut RunCounts,
) {
    for (k, stored) in &run.stored_versions {
        if stored.available && !offered.contains(k) {
            if stored.signer.is_some() && withheld.contains(k) {
                changes.signatures.push(SignatureUpdate {
                    key: VersionKey::new(k.0, k.1),
                    change: SignatureChange::Unverified,
                });
            }
            counts.missing += 1;
            changes.versions.push(VersionWrite {
                key: VersionKey::new(k.0, k.1),
                kind: WriteKind::Missing,
                task: None,
            });
        }
    }
}

/// Keeps the problem sets that differ from the stored ones (an empty set clears a key), or
/// that were found at another fingerprint than the stored one says.
fn diff_problems(
    snapshot: &Snapshot,
    problem_sets: BTreeMap<OriginKey, Vec<Problem>>,
    fingerprints: &HashMap<OriginKey, String>,
) -> Vec<(OriginKey, Vec<Problem>)> {
    problem_sets
        .into_iter()
        .filter(|(k, set)| {
            snapshot.problems.get(k).map_or(!set.is_empty(), |old| old != set)
                || fingerprints
                    .get(k)
                    .is_some_and(|f| snapshot.problem_fingerprints.get(k) != Some(f))
        })
        .collect()
}

#[cfg(test)]
mod tests;
