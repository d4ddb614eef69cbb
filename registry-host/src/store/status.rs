//! What `taskreg status` reads: the latest scan of each source, the processes that keep the
//! catalogue current, and the catalogue's generation. Written by every run, also one that
//! changes nothing in the catalogue, outside the catalogue's transaction.

use super::schema::{catalogue_events, catalogue_state, processes, source_states, source_status};
use super::{Store, StoreError, now_millis};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use serde::Serialize;
use std::collections::HashMap;

/// How a source's latest scan went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanStatus {
    /// The scan answered (it may still be partial: see `complete`).
    Ok,
    /// The scan failed: nothing of the source was removed.
    Failed,
    /// The source's settings, credentials or permissions are wrong (a bad key, a missing
    /// bucket): nothing was removed, and trying again before they change cannot help, so
    /// `watch` waits for the next poll instead of retrying with backoff.
    Misconfigured,
}

impl ScanStatus {
    /// As stored and printed: `ok`, `failed` or `misconfigured`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Ok => "ok",
            ScanStatus::Failed => "failed",
            ScanStatus::Misconfigured => "misconfigured",
        }
    }

    /// Whether the scan answered.
    pub fn is_ok(self) -> bool {
        self == ScanStatus::Ok
    }
}

impl From<String> for ScanStatus {
    /// Stored text: anything but `ok` and `misconfigured` is a failure.
    fn from(text: String) -> Self {
        match text.as_str() {
            "ok" => ScanStatus::Ok,
            "misconfigured" => ScanStatus::Misconfigured,
            _ => ScanStatus::Failed,
        }
    }
}

impl std::fmt::Display for ScanStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run went as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Every scanned source answered.
    Ok,
    /// Some source failed; the others were applied.
    Partial,
}

impl RunStatus {
    /// As stored: `ok` or `partial`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Partial => "partial",
        }
    }
}

/// How one source fared in a run: what `taskreg sync` reports and `taskreg status` keeps.
#[derive(Debug, Clone, Serialize)]
pub struct SourceReport {
    /// The source's name.
    pub name: String,
    /// The source's kind.
    pub kind: String,
    /// Where it points.
    pub location: String,
    /// Whether the scan answered.
    pub status: ScanStatus,
    /// Whether the scan covered everything the source has.
    pub complete: bool,
    /// Entries the scan found.
    pub tasks: usize,
    /// Why the scan failed.
    pub error: Option<String>,
    /// How long the scan took.
    pub scan_ms: u64,
    /// The folders rescanned, when the scan covered only part of the source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rescanned: Option<Vec<String>>,
}

/// The latest scan of one source and its record of failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Queryable, Selectable)]
#[diesel(table_name = source_status)]
pub struct SourceStatus {
    /// The source's name.
    pub name: String,
    /// The source's kind.
    pub kind: String,
    /// Where it points.
    pub location: String,
    /// Unix milliseconds.
    pub scanned_at: i64,
    /// Whether the latest scan answered.
    #[diesel(deserialize_as = String)]
    pub status: ScanStatus,
    /// Whether the latest scan covered everything the source has.
    pub complete: bool,
    /// JSON array of the folders rescanned, as stored; `None` for a scan of the whole
    /// source. Serialized as the array itself.
    #[serde(serialize_with = "as_folders")]
    pub rescanned: Option<String>,
    /// How long the latest scan took.
    pub duration_ms: i64,
    /// Entries found by the latest scan (in the part it covered).
    pub tasks: i64,
    /// Why the latest scan failed.
    pub error: Option<String>,
    /// When a scan last succeeded (Unix milliseconds).
    pub last_ok_at: Option<i64>,
    /// Failed scans in a row.
    pub failures: i64,
    /// The most recent failure, also after the source recovered.
    pub last_error: Option<String>,
    /// When that failure was (Unix milliseconds).
    pub last_error_at: Option<i64>,
}

impl SourceStatus {
    /// The folders the latest scan covered, when it covered only part of the source.
    pub fn rescanned_folders(&self) -> Option<Vec<String>> {
        folders(&self.rescanned)
    }
}

fn folders(stored: &Option<String>) -> Option<Vec<String>> {
    stored.as_deref().and_then(|r| serde_json::from_str(r).ok())
}

fn as_folders<S: serde::Serializer>(stored: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&folders(stored), serializer)
}

/// The events one run wrote to the catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenEvents {
    /// The generation the run made.
    pub generation: i64,
    /// The process that applied it, when it said.
    pub writer: Option<String>,
    /// What changed.
    pub events: Vec<crate::events::RegistryEvent>,
}

/// How often a long-lived process refreshes its row (and after every run it applies).
pub const PROCESS_REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

/// A row not refreshed for this long belongs to a process that is gone (killed, or its
/// host lost): `status` leaves it out and the next report removes it.
pub const PROCESS_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// What a long-lived process does for the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessRole {
    /// `watch` (or `serve --watch`): keeps the catalogue current.
    Watch,
    /// `serve`: answers the catalogue over HTTP.
    Serve,
}

impl ProcessRole {
    /// As stored and printed: `watch` or `serve`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessRole::Watch => "watch",
            ProcessRole::Serve => "serve",
        }
    }
}

impl From<String> for ProcessRole {
    fn from(text: String) -> Self {
        if text == "serve" {
            ProcessRole::Serve
        } else {
            ProcessRole::Watch
        }
    }
}

/// Who a process is: one identity per process start, so that two processes on one host
/// (or one host's process restarted) never take each other's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessIdentity {
    /// A UUIDv7 made when the process started.
    pub id: String,
    /// The machine it runs on.
    pub host: String,
    /// Its process id on that machine.
    pub pid: i64,
    /// When it started (Unix milliseconds).
    pub started_at: i64,
}

impl ProcessIdentity {
    /// This process, named now.
    pub fn current() -> ProcessIdentity {
        ProcessIdentity {
            id: uuid::Uuid::now_v7().to_string(),
            host: host_name(),
            pid: i64::from(std::process::id()),
            started_at: now_millis(),
        }
    }
}

/// The machine's name, for people reading `taskreg status`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// A long-lived process in one role, and its cache of checked tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Queryable, Selectable)]
#[diesel(table_name = processes)]
pub struct ProcessStatus {
    /// The process's identity ([`ProcessIdentity::id`]).
    pub process_id: String,
    /// What it does.
    #[diesel(deserialize_as = String)]
    pub role: ProcessRole,
    /// The machine it runs on.
    pub host: String,
    /// Its process id.
    pub pid: i64,
    /// When it started (Unix milliseconds).
    pub started_at: i64,
    /// When it last reported (Unix milliseconds).
    pub updated_at: i64,
    /// Checks answered from its cache.
    pub cache_hits: i64,
    /// Checks done afresh.
    pub cache_misses: i64,
    /// Checked tasks its cache holds.
    pub cache_entries: i64,
}

/// Everything `taskreg status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Bumped by every run that writes the catalogue.
    pub generation: i64,
    /// Each source's latest scan.
    pub sources: Vec<SourceStatus>,
    /// The long-lived processes (`watch`, `serve`) that use the catalogue now.
    pub processes: Vec<ProcessStatus>,
}

impl Store {
    /// Bumped by every run that writes the catalogue.
    pub async fn generation(&mut self) -> Result<i64, StoreError> {
        Ok(with_conn!(&mut self.conn, |c| catalogue_state::table
            .select(catalogue_state::generation)
            .first::<i64>(c)
            .await)?)
    }

    /// Records the scans of one run, keeping each source's failure record.
    pub async fn record_scans(&mut self, scans: &[SourceReport]) -> Result<(), StoreError> {
        if scans.is_empty() {
            return Ok(());
        }
        let now = now_millis();
        let names: Vec<&str> = scans.iter().map(|s| s.name.as_str()).collect();
        let previous: HashMap<String, SourceStatus> = with_conn!(&mut self.conn, |c| source_status::table
            .filter(source_status::name.eq_any(&names))
            .select(SourceStatus::as_select())
            .load(c)
            .await)?
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();
        let rows: Vec<SourceStatus> = scans
            .iter()
            .map(|scan| {
                let before = previous.get(&scan.name);
                SourceStatus {
                    name: scan.name.clone(),
                    kind: scan.kind.clone(),
                    location: scan.location.clone(),
                    scanned_at: now,
                    status: scan.status,
                    complete: scan.complete,
                    rescanned: scan
                        .rescanned
                        .as_ref()
                        .map(|r| serde_json::to_string(r).unwrap_or_default()),
                    duration_ms: scan.scan_ms as i64,
                    tasks: scan.tasks as i64,
                    error: scan.error.as_deref().map(super::storable),
                    last_ok_at: if scan.status.is_ok() {
                        Some(now)
                    } else {
                        before.and_then(|b| b.last_ok_at)
                    },
                    failures: if scan.status.is_ok() {
                        0
                    } else {
                        before.map_or(0, |b| b.failures) + 1
                    },
                    last_error: scan
                        .error
                        .as_deref()
                        .map(super::storable)
                        .or_else(|| before.and_then(|b| b.last_error.clone())),
                    last_error_at: if scan.status.is_ok() {
                        before.and_then(|b| b.last_error_at)
                    } else {
                        Some(now)
                    },
                }
            })
            .collect();
        in_transaction!(&mut self.conn, |c| {
            for row in &rows {
                diesel::insert_into(source_status::table)
                    .values((
                        source_status::name.eq(&row.name),
                        source_status::kind.eq(&row.kind),
                        source_status::location.eq(&row.location),
                        source_status::scanned_at.eq(row.scanned_at),
                        source_status::status.eq(row.status.as_str()),
                        source_status::complete.eq(row.complete),
                        source_status::rescanned.eq(&row.rescanned),
                        source_status::duration_ms.eq(row.duration_ms),
                        source_status::tasks.eq(row.tasks),
                        source_status::error.eq(&row.error),
                        source_status::last_ok_at.eq(row.last_ok_at),
                        source_status::failures.eq(row.failures),
                        source_status::last_error.eq(&row.last_error),
                        source_status::last_error_at.eq(row.last_error_at),
                    ))
                    .on_conflict(source_status::name)
                    .do_update()
                    .set((
                        source_status::kind.eq(excluded(source_status::kind)),
                        source_status::location.eq(excluded(source_status::location)),
                        source_status::scanned_at.eq(excluded(source_status::scanned_at)),
                        source_status::status.eq(excluded(source_status::status)),
                        source_status::complete.eq(excluded(source_status::complete)),
                        source_status::rescanned.eq(excluded(source_status::rescanned)),
                        source_status::duration_ms.eq(excluded(source_status::duration_ms)),
                        source_status::tasks.eq(excluded(source_status::tasks)),
                        source_status::error.eq(excluded(source_status::error)),
                        source_status::last_ok_at.eq(excluded(source_status::last_ok_at)),
                        source_status::failures.eq(excluded(source_status::failures)),
                        source_status::last_error.eq(excluded(source_status::last_error)),
                        source_status::last_error_at.eq(excluded(source_status::last_error_at)),
                    ))
                    .execute(c)
                    .await?;
            }
            Ok::<(), diesel::result::Error>(())
        })?;
        Ok(())
    }

    /// Records a long-lived process's state (keyed by its identity and role), and removes
    /// the rows of processes that stopped reporting before `stale_before` (Unix
    /// milliseconds): processes that were killed.
    pub async fn record_process(&mut self, process: &ProcessStatus, stale_before: i64) -> Result<(), StoreError> {
        in_transaction!(&mut self.conn, |c| {
            diesel::delete(processes::table.filter(processes::updated_at.lt(stale_before)))
                .execute(c)
                .await?;
            diesel::insert_into(processes::table)
                .values((
                    processes::process_id.eq(&process.process_id),
                    processes::role.eq(process.role.as_str()),
                    processes::host.eq(&process.host),
                    processes::pid.eq(process.pid),
                    processes::started_at.eq(process.started_at),
                    processes::updated_at.eq(process.updated_at),
                    processes::cache_hits.eq(process.cache_hits),
                    processes::cache_misses.eq(process.cache_misses),
                    processes::cache_entries.eq(process.cache_entries),
                ))
                .on_conflict((processes::process_id, processes::role))
                .do_update()
                .set((
                    processes::updated_at.eq(excluded(processes::updated_at)),
                    processes::cache_hits.eq(excluded(processes::cache_hits)),
                    processes::cache_misses.eq(excluded(processes::cache_misses)),
                    processes::cache_entries.eq(excluded(processes::cache_entries)),
                ))
                .execute(c)
                .await?;
            Ok::<(), diesel::result::Error>(())
        })?;
        Ok(())
    }

    /// The events of the runs that made generations after `after`, oldest first, with the
    /// process that wrote each (kept for [`EVENT_RETENTION`](super::EVENT_RETENTION)).
    pub async fn events_after(&mut self, after: i64) -> Result<Vec<WrittenEvents>, StoreError> {
        let rows: Vec<(i64, Option<String>, String)> = with_conn!(&mut self.conn, |c| catalogue_events::table
            .filter(catalogue_events::generation.gt(after))
            .order(catalogue_events::generation)
            .select((
                catalogue_events::generation,
                catalogue_events::process_id,
                catalogue_events::events
            ))
            .load(c)
            .await)?;
        rows.into_iter()
            .map(|(generation, writer, events)| {
                Ok(WrittenEvents {
                    generation,
                    writer,
                    events: serde_json::from_str(&events)
                        .map_err(|e| StoreError::Corrupt(format!("the events of generation {generation}: {e}")))?,
                })
            })
            .collect()
    }

    /// When each source in the catalogue was last scanned by any process (Unix
    /// milliseconds): its latest scan's time, else the last run that wrote for it.
    pub async fn source_last_scans(&mut self) -> Result<HashMap<String, i64>, StoreError> {
        use super::schema::sources;
        let written: Vec<(String, Option<i64>)> = with_conn!(&mut self.conn, |c| sources::table
            .select((sources::name, sources::last_scan_at))
            .load(c)
            .await)?;
        let scanned: Vec<(String, i64)> = with_conn!(&mut self.conn, |c| source_status::table
            .select((source_status::name, source_status::scanned_at))
            .load(c)
            .await)?;
        let mut last: HashMap<String, i64> = written
            .into_iter()
            .filter_map(|(name, at)| at.map(|at| (name, at)))
            .collect();
        for (name, at) in scanned {
            let entry = last.entry(name).or_insert(at);
            *entry = (*entry).max(at);
        }
        Ok(last)
    }

    /// Removes what `status` and the sources' states keep of retired sources.
    pub async fn forget_sources(&mut self, names: &[String]) -> Result<(), StoreError> {
        if names.is_empty() {
            return Ok(());
        }
        in_transaction!(&mut self.conn, |c| {
            diesel::delete(source_status::table.filter(source_status::name.eq_any(names)))
                .execute(c)
                .await?;
            diesel::delete(source_states::table.filter(source_states::name.eq_any(names)))
                .execute(c)
                .await?;
            Ok::<(), diesel::result::Error>(())
        })?;
        Ok(())
    }

    /// The state the source `name` left in the catalogue ([`registry_core::Source::saved_state`]).
    pub async fn source_state(&mut self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(with_conn!(&mut self.conn, |c| source_states::table
            .filter(source_states::name.eq(name))
            .select(source_states::state)
            .first::<String>(c)
            .await
            .optional())?)
    }

    /// Keeps the state of the source `name` for the next process.
    pub async fn save_source_state(&mut self, name: &str, state: &str) -> Result<(), StoreError> {
        with_conn!(&mut self.conn, |c| diesel::insert_into(source_states::table)
            .values((
                source_states::name.eq(name),
                source_states::state.eq(state),
                source_states::updated_at.eq(now_millis()),
            ))
            .on_conflict(source_states::name)
            .do_update()
            .set((
                source_states::state.eq(excluded(source_states::state)),
                source_states::updated_at.eq(excluded(source_states::updated_at)),
            ))
            .execute(c)
            .await)?;
        Ok(())
    }

    /// Removes a process's row in `role`: it ended.
    pub async fn forget_process(&mut self, process_id: &str, role: ProcessRole) -> Result<(), StoreError> {
        with_conn!(&mut self.conn, |c| diesel::delete(
            processes::table
                .filter(processes::process_id.eq(process_id))
                .filter(processes::role.eq(role.as_str()))
        )
        .execute(c)
        .await)?;
        Ok(())
    }

    /// Everything `taskreg status` shows.
    pub async fn status(&mut self) -> Result<Status, StoreError> {
        let generation = self.generation().await?;
        let sources = with_conn!(&mut self.conn, |c| source_status::table
            .select(SourceStatus::as_select())
            .order(source_status::name)
            .load(c)
            .await)?;
        let stale_before = now_millis() - PROCESS_STALE_AFTER.as_millis() as i64;
        let processes = with_conn!(&mut self.conn, |c| processes::table
            .filter(processes::updated_at.ge(stale_before))
            .select(ProcessStatus::as_select())
            .order((processes::host, processes::started_at, processes::role))
            .load(c)
            .await)?;
        Ok(Status {
            generation,
            sources,
            processes,
        })
    }
}
