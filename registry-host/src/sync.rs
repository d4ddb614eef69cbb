//! The sync driver: one run of the pipeline, top-down.
//!
//! scan every source (concurrently) → load the entries whose fingerprint changed (bounded
//! concurrency, parse and check on the blocking pool so both cores work) → plan against
//! the store's snapshot → apply in one transaction. Nothing is written to the catalogue
//! when nothing changed; each scanned source's status row is, after the catalogue's
//! transaction. A run may scan only part of the sources ([`Rescan`]); see `watch`.

pub use crate::store::SourceReport;
use crate::store::{RunRecord, RunStatus, ScanStatus, StagedContents, Store, StoreError, now_millis};
use futures::StreamExt;
use registry_core::{
    ChangeSet, ConflictStrategy, Entry, LoadOutcome, OriginKey, PlanOptions, Problem, RunCounts, Scan, ScanScope,
    SignaturePolicy, Snapshot, Source, SourceError, SourceScan, TaskDefinition, Validation, check_bundle,
    entries_to_load, plan,
};
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How a run loads, checks and plans.
#[derive(Clone)]
pub struct SyncOptions {
    /// Loads in flight at once.
    pub concurrency: usize,
    /// Hears how the run goes (a progress bar); the library itself draws nothing.
    pub observer: Option<std::sync::Arc<dyn SyncObserver>>,
    /// See [`PlanOptions::max_removal_share`].
    pub max_removal_share: f64,
    /// Lets a scan remove more than `max_removal_share` of a source's tasks.
    pub allow_mass_removal: bool,
    /// The rules every loaded task is checked against.
    pub validation: Validation,
    /// Checked tasks kept between runs of a long-lived process.
    pub cache: Option<std::sync::Arc<crate::cache::CheckCache>>,
    /// The catalogue's snapshot kept between runs of a long-lived process.
    pub snapshot_cache: Option<std::sync::Arc<SnapshotCache>>,
    /// The sources' states as last read from or written to the catalogue.
    pub source_states: std::sync::Arc<SourceStates>,
    /// The process applying the runs ([`ProcessIdentity::id`](crate::store::ProcessIdentity)),
    /// recorded with their events.
    pub writer: Option<String>,
    /// How long a source of the catalogue may go unscanned by every process before a run
    /// retires it (`None`: only `forget` retires); see `retirement`.
    pub retire_after: Option<Duration>,
    /// Bytes of loaded task contents a run holds in memory; the contents of the tasks it
    /// loads beyond them are staged in the database until it applies (see
    /// [`StagedContents`]), so that a run's memory is bounded
    /// by this, not by the tree.
    pub contents_in_memory: usize,
    /// Whose signatures each source's tasks are judged by.
    pub signatures: SignaturePolicies,
}

/// The trust policy of every source: one for all, and the sources' own where configured.
#[derive(Debug, Clone, Default)]
pub struct SignaturePolicies {
    /// The policy of sources without one of their own (`[signatures]`).
    pub default: std::sync::Arc<SignaturePolicy>,
    /// Sources' own policies, by source name.
    pub by_source: HashMap<String, std::sync::Arc<SignaturePolicy>>,
}

impl SignaturePolicies {
    /// One policy for every source.
    pub fn uniform(policy: SignaturePolicy) -> Self {
        SignaturePolicies {
            default: std::sync::Arc::new(policy),
            by_source: HashMap::new(),
        }
    }

    /// The policy the source called `name` is judged by.
    pub fn of(&self, name: &str) -> &std::sync::Arc<SignaturePolicy> {
        self.by_source.get(name).unwrap_or(&self.default)
    }
}

/// The contents a run holds in memory unless configured otherwise: a cold sync of 10,000
/// generated tasks (two schemas and two tests each) stays below it and stages nothing.
pub const DEFAULT_CONTENTS_IN_MEMORY: usize = 16 << 20;

/// Tasks staged in the database at a time once a run is over its memory budget.
const STAGE_BATCH: usize = 256;

/// Sources unscanned for a week are retired unless configured otherwise.
pub const DEFAULT_RETIREMENT_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// What each source keeps between processes ([`Source::saved_state`]), as last read from or
/// written to the catalogue: each is read once per process, before the source's first
/// scan, and written only when it changed.
#[derive(Debug, Default)]
pub struct SourceStates {
    known: std::sync::Mutex<HashMap<String, Option<String>>>,
}

impl SourceStates {
    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<String>>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands each source about to be scanned for the first time in this process the state
    /// it left in the catalogue. A state that cannot be read is worth a warning only.
    async fn restore(&self, store: &mut Store, sources: &[Box<dyn Source>], rescans: &[Rescan]) {
        for (source, rescan) in sources.iter().zip(rescans) {
            if *rescan == Rescan::Skip || !source.keeps_state() || self.known().contains_key(source.name()) {
                continue;
            }
            match store.source_state(source.name()).await {
                Ok(state) => {
                    if let Some(state) = &state {
                        source.restore_state(state);
                    }
                    self.known().insert(source.name().to_owned(), state);
                }
                Err(e) => tracing::warn!(source = source.name(), "cannot read the source's kept state: {e}"),
            }
        }
    }

    /// Stores the state of every source whose scan answered, when it changed.
    async fn save(&self, store: &mut Store, sources: &[Box<dyn Source>], reports: &[SourceReport]) {
        for source in sources.iter().filter(|s| s.keeps_state()) {
            let answered = reports.iter().any(|r| r.name == source.name() && r.status.is_ok());
            let Some(state) = source.saved_state().filter(|_| answered) else {
                continue;
            };
            if self
                .known()
                .get(source.name())
                .is_some_and(|k| k.as_ref() == Some(&state))
            {
                continue;
            }
            match store.save_source_state(source.name(), &state).await {
                Ok(()) => {
                    self.known().insert(source.name().to_owned(), Some(state));
                }
                Err(e) => tracing::warn!(source = source.name(), "cannot keep the source's state: {e}"),
            }
        }
    }
}

/// The snapshot a long-lived process planned its last run against, brought up to date
/// with what that run wrote. It is used only while the catalogue's generation is the one
/// this process wrote last: a write by anyone else (another host on the same PostgreSQL, a
/// `taskreg sync` beside `watch`) makes the next run read the store again.
#[derive(Debug, Default)]
pub struct SnapshotCache {
    kept: std::sync::Mutex<Option<(i64, Snapshot)>>,
}

impl SnapshotCache {
    fn take(&self, generation: i64) -> Option<Snapshot> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        match kept.take() {
            Some((g, snapshot)) if g == generation => Some(snapshot),
            _ => None,
        }
    }

    fn keep(&self, generation: i64, mut snapshot: Snapshot) {
        // A run reads the UUIDs it needs afresh.
        snapshot.task_uuids.clear();
        *self.kept.lock().unwrap_or_else(|e| e.into_inner()) = Some((generation, snapshot));
    }
}

impl std::fmt::Debug for SyncOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncOptions")
            .field("concurrency", &self.concurrency)
            .field("observed", &self.observer.is_some())
            .field("max_removal_share", &self.max_removal_share)
            .field("allow_mass_removal", &self.allow_mass_removal)
            .field("validation", &self.validation)
            .finish()
    }
}

/// Hears how a run goes, to show progress: the CLI draws a bar on a terminal with it.
/// Every method does nothing by default; they are called from the run's own task, so
/// they must return quickly.
pub trait SyncObserver: Send + Sync {
    /// `count` more tasks are to be loaded in this run (called once per loading round).
    fn loading(&self, count: usize) {
        let _ = count;
    }
    /// One task was loaded and checked.
    fn loaded(&self) {}
    /// Loading is over; the run is planned and applied next.
    fn finished(&self) {}
}

impl SyncOptions {
    fn plan<'s>(&self, strategy: &'s dyn ConflictStrategy, checked_with: &'s str) -> PlanOptions<'s> {
        PlanOptions {
            strategy,
            max_removal_share: self.max_removal_share,
            allow_mass_removal: self.allow_mass_removal,
            checked_with,
        }
    }
}

impl Default for SyncOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        SyncOptions {
            concurrency: cores * 4,
            observer: None,
            max_removal_share: PlanOptions::DEFAULT_MAX_REMOVAL_SHARE,
            allow_mass_removal: false,
            validation: Validation::default(),
            cache: None,
            snapshot_cache: None,
            source_states: std::sync::Arc::default(),
            writer: None,
            retire_after: Some(DEFAULT_RETIREMENT_GRACE),
            contents_in_memory: DEFAULT_CONTENTS_IN_MEMORY,
            signatures: SignaturePolicies::default(),
        }
    }
}

/// What a run scans of one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rescan {
    /// Everything: a one-shot sync, a poll, the periodic full rescan.
    Whole,
    /// What changes at these paths concern, when the source can tell (else everything).
    Changed(Vec<std::path::PathBuf>),
    /// Nothing: the source's stored tasks are offered as they were.
    Skip,
}

/// The outcome of one run, as `taskreg sync` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// The run's id (UUIDv7).
    pub run_id: String,
    #[serde(flatten)]
    /// What it added, updated, removed, and the problems and conflicts.
    pub counts: RunCounts,
    /// Whether the run wrote anything (an unchanged resync does not).
    pub written: bool,
    /// Entries loaded and parsed in this run.
    pub loaded: usize,
    /// Loaded tasks whose contents were staged in the database beyond the run's memory
    /// budget ([`SyncOptions::contents_in_memory`]).
    #[serde(skip_serializing_if = "is_zero")]
    pub staged: usize,
    /// How each scanned source fared.
    pub sources: Vec<SourceReport>,
    /// Problems found in this run, with where they are.
    pub problems: Vec<ReportedProblem>,
    /// How long the run took.
    pub duration_ms: u64,
    /// Sources retired by this run (see `retirement`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
    /// What the run applied (empty when nothing changed).
    #[serde(skip)]
    pub changes: ChangeSet,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Serialize)]
/// A problem of the run, with where it is.
pub struct ReportedProblem {
    /// The source's name.
    pub source: String,
    /// Where in the source.
    pub locator: String,
    #[serde(flatten)]
    /// What is wrong.
    pub problem: Problem,
}

impl SyncReport {
    /// Error-severity problems.
    pub fn error_count(&self) -> usize {
        self.problems.iter().filter(|p| p.problem.is_error()).count()
    }
}

#[derive(Debug, thiserror::Error)]
/// Why a run could not be done (broken tasks and failing sources are not errors: they
/// are in the report).
pub enum SyncError {
    /// The catalogue could not be read or written; nothing of the run was applied.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another process wrote the catalogue after this run was planned: nothing of the run
    /// was applied ([`apply_run`] only; [`sync`] plans again instead).
    #[error(
        "the catalogue changed since this run was planned (generation {planned}, now {current}): nothing was applied; plan it again"
    )]
    CatalogueChanged {
        /// The generation planned against.
        planned: i64,
        /// The generation found when applying.
        current: i64,
    },
}

/// A run planned and not yet applied: what [`apply_run`] will write.
#[derive(Debug)]
pub struct PlannedRun {
    /// The run's id (UUIDv7).
    pub run_id: String,
    /// When it started, for its duration.
    pub started: Instant,
    /// When it started (Unix milliseconds).
    pub started_at: i64,
    /// How each scanned source fared.
    pub sources: Vec<SourceReport>,
    /// Entries loaded and parsed.
    pub loaded: usize,
    /// The problems of the scanned sources once applied.
    pub problems: Vec<ReportedProblem>,
    /// What applying it writes.
    pub changes: ChangeSet,
    /// The catalogue's generation the plan was made against.
    pub generation: i64,
    /// What the plan was made of, to plan again when the catalogue changed meanwhile.
    scans: Vec<SourceScan>,
    outcomes: HashMap<OriginKey, LoadOutcome>,
    /// The snapshot planned against, when the caller keeps it between runs.
    kept: Option<(std::sync::Arc<SnapshotCache>, Snapshot)>,
    /// The process that will apply it.
    writer: Option<String>,
    /// The sources it retires.
    pub retired: Vec<String>,
    /// Sources it retires whatever the clock says (`forget`).
    forced: Vec<String>,
    /// When each source was last scanned, for retirements.
    last_scans: HashMap<String, i64>,
    /// The loaded contents the run holds, and those it staged beyond its budget.
    staging: Staging,
}

/// What a run holds of the contents it loaded.
#[derive(Debug, Default)]
struct Staging {
    /// Bytes of contents held in memory.
    held: usize,
    /// The contents staged in the database beyond [`SyncOptions::contents_in_memory`].
    staged: StagedContents,
}

/// Above this many loads, a run reads every task's UUID in one query instead of asking for
/// the loaded ones.
const TARGETED_UUID_READ_MAX: usize = 500;

/// Runs one sync of `sources` (in priority order) into `store`.
pub async fn sync(
    store: &mut Store,
    sources: &[Box<dyn Source>],
    strategy: &dyn ConflictStrategy,
    options: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let whole = vec![Rescan::Whole; sources.len()];
    sync_rescan(store, sources, &whole, strategy, options).await
}

/// Runs one sync that scans each source as `rescans` (one per source) says.
///
/// The run is planned without any lock, so that runs on several hosts scan and load at
/// once; it then takes the catalogue's write lock, and when another process wrote the
/// catalogue since it was read, plans again against what is stored now (loading only
/// what that write made necessary) before applying. No run fails because another ran,
/// and the catalogue after concurrent runs is the one they would have made one by one.
pub async fn sync_rescan(
    store: &mut Store,
    sources: &[Box<dyn Source>],
    rescans: &[Rescan],
    strategy: &dyn ConflictStrategy,
    options: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    run(store, sources, rescans, strategy, options, &[]).await
}

/// Retires the source `name` now, whatever the clock says (`taskreg forget NAME --yes`):
/// its origins go, the versions only it offered go missing (history kept), and the
/// catalogue forgets its status and state. Configured again, it comes back with its next
/// scan.
pub async fn forget_source(
    store: &mut Store,
    name: &str,
    strategy: &dyn ConflictStrategy,
    options: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    run(store, &[], &[], strategy, options, &[name.to_owned()]).await
}

async fn run(
    store: &mut Store,
    sources: &[Box<dyn Source>],
    rescans: &[Rescan],
    strategy: &dyn ConflictStrategy,
    options: &SyncOptions,
    forced: &[String],
) -> Result<SyncReport, SyncError> {
    options.source_states.restore(store, sources, rescans).await;
    let planned = plan_with(store, sources, rescans, strategy, options, forced).await?;
    store.lock_writes().await?;
    let applied = async {
        let current = store.generation().await?;
        let planned = if current == planned.generation {
            planned
        } else {
            tracing::info!(
                "another process wrote the catalogue while this run was planned (generation {} → {current}); planning it again against what is stored now",
                planned.generation
            );
            replan(store, planned, sources, strategy, options).await?
        };
        apply_locked(store, planned).await
    }
    .await;
    store.unlock_writes().await;
    if let Ok(report) = &applied {
        options.source_states.save(store, sources, &report.sources).await;
    }
    applied
}

/// Scans every source whole, loads and plans, writing nothing.
pub async fn plan_run(
    store: &mut Store,
    sources: &[Box<dyn Source>],
    strategy: &dyn ConflictStrategy,
    options: &SyncOptions,
) -> Result<PlannedRun, SyncError> {
    let whole = vec![Rescan::Whole; sources.len()];
    plan_rescan(store, sources, &whole, strategy, options).await
}

/// Scans one source as `rescan` says; `None` when it is skipped.
async fn scan_source(source: &dyn Source, rescan: &Rescan) -> Option<Result<(ScanScope, Scan), SourceError>> {
    let whole = |scan: Scan| (ScanScope::Whole, scan);
    Some(match rescan {
        Rescan::Skip => return None,
        Rescan::Whole => source.scan().await.map(whole),
        Rescan::Changed(paths) => match source.scan_changed(paths).await {
            Some(Ok(scoped)) => Ok(scoped),
            Some(Err(e)) => {
                tracing::warn!(
                    source = source.name(),
                    "rescan of the changed folders failed ({e}); scanning all of it"
                );
                source.scan().await.map(whole)
            }
            None => source.scan().await.map(whole),
        },
    })
}

/// Scans each source as `rescans` says, loads and plans, writing nothing.
pub async fn plan_rescan(
    store: &mut Store,
    sources: &[Box<dyn Source>],
    rescans: &[Rescan],
    strategy: &dyn ConflictStrategy,
    options: &SyncOptions,
) -> Result<PlannedRun, SyncError> {
    plan_with(store, sources, rescans, strategy, options, &[]).await
}

async fn plan_with(
    store: &mut Store,
    sources: &[Box<dyn Source>],
    rescans: &[Rescan],
    strategy: &dyn ConflictStrategy,
    options: &SyncOptions,
    forced: &[String],
) -> Result<PlannedRun, SyncError> {
    assert_eq!(sources.len(), rescans.len(), "one rescan per source");
    let started = Instant::now();
    let started_at = now_millis();
    // The snapshot is read while the sources are scanned: neither needs the other.
    let scanning = futures::future::join_all(sources.iter().zip(rescans).map(|(source, rescan)| async move {
        let clock = Instant::now();
        let result = scan_source(source.as_ref(), rescan).await;
        (result, clock.elapsed())
    }));
    let reading = async {
        // The generation first: a write in between makes the lock see a newer one and the
        // run plan again, never apply against an older catalogue than it thinks.
        let generation = store.generation().await?;
        let kept = options.snapshot_cache.as_ref().and_then(|cache| cache.take(generation));
        let snapshot = match kept {
            Some(snapshot) => snapshot,
            None => store.snapshot().await?.core,
        };
        Ok::<_, StoreError>((generation, snapshot, store.source_last_scans().await?))
    };
    let (snapshot, scanned) = futures::future::join(reading, scanning).await;
    let (generation, snapshot, last_scans) = snapshot?;
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        "read the catalogue and scanned {} source(s)",
        sources.len()
    );
    let mut reports = Vec::with_capacity(sources.len());
    let mut scans = Vec::with_capacity(sources.len());
    for (source, (result, elapsed)) in sources.iter().zip(scanned) {
        let Some(result) = result else {
            scans.push(SourceScan::unscanned(source.name()));
            continue;
        };
        reports.push(source_report(source.as_ref(), &result, elapsed));
        let (scope, result) = match result {
            Ok((scope, scan)) => (scope, Ok(refuse_unstorable_locators(scan))),
            Err(e) => {
                tracing::warn!(source = source.name(), "scan failed, keeping its tasks: {e}");
                (ScanScope::Whole, Err(e.to_string()))
            }
        };
        scans.push(SourceScan {
            name: source.name().to_owned(),
            result,
            scope,
            retired: false,
            signatures: options.signatures.of(source.name()).clone(),
        });
    }

    let mut planned = PlannedRun {
        run_id: uuid::Uuid::now_v7().to_string(),
        started,
        started_at,
        problems: Vec::new(),
        sources: reports,
        loaded: 0,
        changes: ChangeSet::default(),
        generation,
        scans,
        outcomes: HashMap::new(),
        kept: None,
        writer: options.writer.clone(),
        retired: Vec::new(),
        forced: forced.to_vec(),
        last_scans,
        staging: Staging::default(),
    };
    plan_against(store, snapshot, &mut planned, sources, strategy, options).await?;
    tracing::info!(ms = started.elapsed().as_millis() as u64, "planned");
    Ok(planned)
}

/// Decides retirements, loads what the plan needs that `planned` does not hold yet, and
/// plans against `snapshot`: the second half of a run's planning, and all of a re-plan.
async fn plan_against(
    store: &mut Store,
    mut snapshot: Snapshot,
    planned: &mut PlannedRun,
    sources: &[Box<dyn Source>],
    strategy: &dyn ConflictStrategy,
    options: &SyncOptions,
) -> Result<(), StoreError> {
    // Retirements are decided against this snapshot (again, for a re-plan).
    planned.scans.retain(|scan| !scan.retired);
    let retiring = retire(&snapshot, sources, &planned.last_scans, options, &planned.forced);
    planned.scans.extend(retiring.scans);
    planned.retired = retiring.retired;
    let checked_with = options.validation.identity();
    load_wanted(
        store,
        &snapshot,
        &planned.scans,
        &mut planned.outcomes,
        &mut planned.staging,
        sources,
        options,
        &checked_with,
    )
    .await?;
    tracing::info!(
        ms = planned.started.elapsed().as_millis() as u64,
        "loaded {} task(s)",
        planned.outcomes.len()
    );
    read_uuids(store, &planned.outcomes, &mut snapshot).await?;
    let mut changes = plan(
        &snapshot,
        &planned.scans,
        &planned.outcomes,
        &options.plan(strategy, &checked_with),
    );
    changes.problem_sets.extend(retiring.blocked);
    planned.problems = current_problems(&snapshot.problems, &planned.scans, &changes);
    planned.loaded = planned.outcomes.len();
    planned.changes = changes;
    planned.kept = options.snapshot_cache.clone().map(|cache| (cache, snapshot));
    Ok(())
}

/// The sources of the catalogue this run retires (see `retirement`).
fn retire(
    snapshot: &Snapshot,
    sources: &[Box<dyn Source>],
    last_scans: &HashMap<String, i64>,
    options: &SyncOptions,
    forced: &[String],
) -> crate::retirement::Retirements {
    let configured: std::collections::HashSet<&str> = sources.iter().map(|s| s.name()).collect();
    let policy = crate::retirement::RetirementPolicy {
        grace: options.retire_after,
        max_share: options.max_removal_share,
        allow_mass_removal: options.allow_mass_removal,
    };
    let decided = crate::retirement::retirements(snapshot, &configured, last_scans, now_millis(), policy, forced);
    for name in &decided.retired {
        tracing::info!(
            source = name.as_str(),
            "retiring the source: its tasks go missing unless another source offers them"
        );
    }
    decided
}

/// Loads (and checks) every entry the plan needs that `outcomes` does not hold yet: those
/// whose fingerprint differs from the stored one, and those a claim brings in. Contents
/// beyond the run's memory budget are staged in the database as they come.
#[allow(clippy::too_many_arguments)]
async fn load_wanted(
    store: &mut Store,
    snapshot: &Snapshot,
    scans: &[SourceScan],
    outcomes: &mut HashMap<OriginKey, LoadOutcome>,
    staging: &mut Staging,
    sources: &[Box<dyn Source>],
    options: &SyncOptions,
    checked_with: &str,
) -> Result<(), StoreError> {
    let observer = options.observer.as_deref();
    // A network source may ask for more loads in flight than local files need.
    let in_flight = sources
        .iter()
        .filter_map(|s| s.loads_in_flight())
        .fold(options.concurrency.max(1), usize::max);
    loop {
        let wanted = entries_to_load(snapshot, scans, outcomes, checked_with);
        if wanted.is_empty() {
            break;
        }
        if let Some(observer) = observer {
            observer.loading(wanted.len());
        }
        // Grown once, not doubled (and rehashed) as the loads come in.
        outcomes.reserve(wanted.len());
        let mut loads = futures::stream::iter(wanted)
            .map(|(index, entry)| {
                let source = sources[index].as_ref();
                let (validation, cache) = (&options.validation, options.cache.clone());
                let policy = options.signatures.of(source.name()).clone();
                async move {
                    let outcome = load_and_check(source, &entry, validation, &policy, cache).await;
                    (OriginKey::new(source.name(), entry.locator), outcome)
                }
            })
            .buffer_unordered(in_flight);
        let mut to_stage: Vec<OriginKey> = Vec::new();
        while let Some((key, outcome)) = loads.next().await {
            if let Some(observer) = observer {
                observer.loaded();
            }
            if let LoadOutcome::Parsed { task, .. } = &outcome {
                let size = task.contents_len();
                if staging.held + size <= options.contents_in_memory {
                    staging.held += size;
                } else {
                    to_stage.push(key.clone());
                }
            }
            outcomes.insert(key, outcome);
            if to_stage.len() >= STAGE_BATCH {
                stage(store, staging, outcomes, std::mem::take(&mut to_stage)).await?;
            }
        }
        stage(store, staging, outcomes, to_stage).await?;
    }
    if let Some(observer) = observer {
        observer.finished();
    }
    Ok(())
}

/// Stages the contents of the tasks loaded at `keys` and keeps only their identity.
async fn stage(
    store: &mut Store,
    staging: &mut Staging,
    outcomes: &mut HashMap<OriginKey, LoadOutcome>,
    keys: Vec<OriginKey>,
) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let tasks: Vec<&TaskDefinition> = keys
        .iter()
        .filter_map(|key| match outcomes.get(key) {
            Some(LoadOutcome::Parsed { task, .. }) => Some(task.as_ref()),
            _ => None,
        })
        .collect();
    store.stage_contents(&mut staging.staged, &tasks).await?;
    for key in &keys {
        if let Some(LoadOutcome::Parsed { task, .. }) = outcomes.get_mut(key) {
            *task = std::sync::Arc::new(task.without_contents());
        }
    }
    Ok(())
}

/// Reads what a plan needs of the `tasks` table: the stored UUID of each loaded name and
/// the owner of each claimed UUID. A few loads (a watch run) ask for just those; many
/// read the whole table at once.
async fn read_uuids(
    store: &mut Store,
    outcomes: &HashMap<OriginKey, LoadOutcome>,
    snapshot: &mut Snapshot,
) -> Result<(), StoreError> {
    if outcomes.len() > TARGETED_UUID_READ_MAX {
        snapshot.task_uuids = store.task_uuids().await?;
    } else if !outcomes.is_empty() {
        let (names, uuids) = outcomes
            .values()
            .filter_map(|outcome| match outcome {
                LoadOutcome::Parsed { task, .. } => Some((task.name.clone(), task.uuid.to_string())),
                LoadOutcome::Broken(_) => None,
            })
            .unzip();
        snapshot.task_uuids = store.task_uuids_of(names, uuids).await?;
    }
    Ok(())
}

/// Plans `planned` again against the catalogue as stored now, under the write lock: what
/// another process wrote meanwhile is taken into account, and only entries whose stored
/// fingerprint that write changed are loaded.
async fn replan(
    store: &mut Store,
    mut planned: PlannedRun,
    sources: &[Box<dyn Source>],
    strategy: &dyn ConflictStrategy,
    options: &SyncOptions,
) -> Result<PlannedRun, SyncError> {
    planned.generation = store.generation().await?;
    let snapshot = store.snapshot().await?.core;
    plan_against(store, snapshot, &mut planned, sources, strategy, options).await?;
    Ok(planned)
}

/// Applies a planned run in one transaction (an unchanged run writes nothing to the
/// catalogue), then records how each scanned source fared. A run that cannot be applied
/// is recorded as a failure of every source it scanned, so `taskreg status` shows it.
///
/// The plan is applied exactly as it is, or not at all: when another process wrote the
/// catalogue since it was planned, nothing is written and the answer is
/// [`SyncError::CatalogueChanged`] (plan again, or use [`sync`], which does).
pub async fn apply_run(store: &mut Store, planned: PlannedRun) -> Result<SyncReport, SyncError> {
    store.lock_writes().await?;
    let applied = async {
        let current = store.generation().await?;
        if current != planned.generation {
            return Err(SyncError::CatalogueChanged {
                planned: planned.generation,
                current,
            });
        }
        apply_locked(store, planned).await
    }
    .await;
    store.unlock_writes().await;
    applied
}

/// Applies `planned`; the caller holds the write lock and checked the generation.
async fn apply_locked(store: &mut Store, mut planned: PlannedRun) -> Result<SyncReport, SyncError> {
    // What a re-plan would need is no longer needed: let it go before the write's peak.
    planned.outcomes = HashMap::new();
    planned.scans = Vec::new();
    let written = !planned.changes.is_empty();
    if written {
        let all_ok = planned.sources.iter().all(|r| r.status.is_ok());
        let run = RunRecord {
            id: planned.run_id.clone(),
            started_at: planned.started_at,
            status: if all_ok { RunStatus::Ok } else { RunStatus::Partial },
            counts: planned.changes.counts,
            sources_json: serde_json::to_string(&planned.sources).unwrap_or_default(),
            writer: planned.writer.clone(),
        };
        let applied = store
            .apply_staged(&run, &planned.sources, &planned.changes, &planned.staging.staged)
            .await;
        if !planned.staging.staged.is_empty() {
            store.drop_staged_contents().await;
        }
        let generation = match applied {
            Ok(generation) => generation,
            Err(e) => {
                record_failed_apply(store, &planned.sources, &e).await;
                return Err(e.into());
            }
        };
        tracing::info!(ms = planned.started.elapsed().as_millis() as u64, "applied");
        if let Err(e) = store.forget_sources(&planned.retired).await {
            tracing::warn!("cannot remove the retired sources' status: {e}");
        }
        if let Some((cache, mut snapshot)) = planned.kept {
            snapshot.apply(&planned.changes);
            cache.keep(generation, snapshot);
        }
    } else {
        if !planned.staging.staged.is_empty() {
            store.drop_staged_contents().await;
        }
        if let Some((cache, snapshot)) = planned.kept {
            cache.keep(planned.generation, snapshot);
        }
    }
    // The run itself succeeded: a status that cannot be written is worth a warning only.
    if let Err(e) = store.record_scans(&planned.sources).await {
        tracing::warn!("cannot record the sources' status: {e}");
    }
    Ok(SyncReport {
        run_id: planned.run_id,
        counts: planned.changes.counts,
        written,
        loaded: planned.loaded,
        staged: planned.staging.staged.len(),
        sources: planned.sources,
        problems: planned.problems,
        duration_ms: planned.started.elapsed().as_millis() as u64,
        retired: planned.retired,
        changes: planned.changes,
    })
}

/// Entries whose locator has a control character (a NUL in an archive's entry name or a
/// served task name) cannot key a catalogue row on every backend: each becomes an error of
/// the scan under an escaped locator, and the scan is partial, so nothing is removed.
fn refuse_unstorable_locators(mut scan: Scan) -> Scan {
    if !scan.entries.iter().any(|e| e.locator.contains(char::is_control)) {
        return scan;
    }
    let (bad, good): (Vec<Entry>, Vec<Entry>) = scan
        .entries
        .into_iter()
        .partition(|e| e.locator.contains(char::is_control));
    scan.entries = good;
    scan.complete = false;
    for entry in bad {
        let escaped: String = entry.locator.escape_debug().collect();
        scan.issues.push(registry_core::ScanIssue::error(
            escaped.clone(),
            "source.locator_invalid",
            format!("`{escaped}` has a control character and cannot be stored; rename it"),
        ));
    }
    scan
}

/// Marks every source of a run that could not be applied as failed, with the reason.
async fn record_failed_apply(store: &mut Store, sources: &[SourceReport], error: &StoreError) {
    let outcomes: Vec<SourceReport> = sources
        .iter()
        .map(|r| SourceReport {
            status: ScanStatus::Failed,
            error: Some(format!("the run could not be written to the catalogue: {error}")),
            ..r.clone()
        })
        .collect();
    // The database may be what failed (a full disk): then this cannot be written either.
    if let Err(e) = store.record_scans(&outcomes).await {
        tracing::warn!("cannot record the failed run in the sources' status: {e}");
    }
}

fn source_report(
    source: &dyn Source,
    result: &Result<(ScanScope, Scan), SourceError>,
    elapsed: Duration,
) -> SourceReport {
    let scan = result.as_ref().ok().map(|(_, scan)| scan);
    SourceReport {
        name: source.name().to_owned(),
        kind: source.kind().to_owned(),
        location: source.location(),
        status: match result {
            Ok(_) => ScanStatus::Ok,
            Err(SourceError::Config { .. }) => ScanStatus::Misconfigured,
            Err(_) => ScanStatus::Failed,
        },
        complete: scan.is_some_and(|s| s.complete),
        tasks: scan.map_or(0, |s| s.entries.len()),
        error: result.as_ref().err().map(ToString::to_string),
        scan_ms: elapsed.as_millis() as u64,
        rescanned: match result {
            Ok((ScanScope::Within(prefixes), _)) => Some(prefixes.clone()),
            _ => None,
        },
    }
}

/// Loads one entry and parses and checks it off the async workers.
pub async fn load_and_check(
    source: &dyn Source,
    entry: &Entry,
    validation: &Validation,
    signatures: &std::sync::Arc<SignaturePolicy>,
    cache: Option<std::sync::Arc<crate::cache::CheckCache>>,
) -> LoadOutcome {
    let validation = validation.clone();
    let signatures = signatures.clone();
    match source.load(entry).await {
        Ok(bundle) => tokio::task::spawn_blocking(move || {
            let outcome = match cache {
                Some(cache) => cache.check(&bundle, &validation),
                None => check_bundle(&bundle, &validation),
            };
            crate::signing::judge_outcome(outcome, &bundle, &signatures)
        })
        .await
        .unwrap_or_else(|e| LoadOutcome::Broken(vec![Problem::error("task.check_crashed", e.to_string())])),
        Err(SourceError::File { file, reason }) => LoadOutcome::Broken(vec![
            Problem::error("file.unreadable", format!("cannot read {file}: {reason}")).in_file(file),
        ]),
        // Refused before (or while) reading: the same problem the `limits` rule reports.
        Err(SourceError::TooLarge { file, size, cap }) if file.is_empty() => {
            LoadOutcome::Broken(vec![registry_core::task_too_large(size, cap)])
        }
        Err(SourceError::TooLarge { file, size, cap }) => {
            LoadOutcome::Broken(vec![registry_core::file_too_large(&file, size, cap)])
        }
        Err(other) => LoadOutcome::Broken(vec![Problem::error("task.load_failed", other.to_string())]),
    }
}

/// The problems of the scanned sources once this run is applied: the stored ones with
/// this run's replacements, so a task that stays broken is still reported.
fn current_problems(
    stored: &HashMap<OriginKey, Vec<Problem>>,
    scans: &[SourceScan],
    changes: &ChangeSet,
) -> Vec<ReportedProblem> {
    let mut current: std::collections::BTreeMap<&OriginKey, &Vec<Problem>> = stored
        .iter()
        .filter(|(key, _)| scans.iter().any(|s| s.name == key.source))
        .collect();
    for (key, set) in &changes.problem_sets {
        current.insert(key, set);
    }
    current
        .into_iter()
        .flat_map(|(OriginKey { source, locator }, set)| {
            set.iter().map(|p| ReportedProblem {
                source: source.clone(),
                locator: locator.clone(),
                problem: p.clone(),
            })
        })
        .collect()
}
