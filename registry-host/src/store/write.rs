//! Writing one sync run: a [`ChangeSet`] applied in a single transaction.

use super::schema::{
    catalogue_events, catalogue_state, conflicts, origins, problems, replaced_contents, sources, sync_runs,
    task_versions, tasks, version_signatures,
};
use super::staging::{StagedContents, VersionContents, staged_versions};
use super::{InsertMany, RunStatus, SourceReport, Store, StoreError, now_millis, storable};
use diesel::IntoSql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable};
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use registry_core::{
    ChangeSet, OriginRow, Problem, RunCounts, SignatureChange, TaskDefinition, VersionWrite, WriteKind,
};
use registry_core::{OriginKey, VersionKey};
use std::collections::HashMap;

/// Rows per multi-row INSERT: far below SQLite's and PostgreSQL's bind-parameter limits
/// with our widest table (14 columns).
const INSERT_CHUNK: usize = 500;

/// The run itself, recorded with its changes.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The run's id (UUIDv7).
    pub id: String,
    /// When it started (Unix milliseconds).
    pub started_at: i64,
    /// Whether every scanned source answered.
    pub status: RunStatus,
    /// What it changed.
    pub counts: RunCounts,
    /// Per-source results as JSON.
    pub sources_json: String,
    /// The process that applies it ([`ProcessIdentity::id`](super::ProcessIdentity)), kept
    /// with its events so that `serve` replicas relay only what others wrote.
    pub writer: Option<String>,
}

/// How long the events of a run are kept for `serve` replicas to relay.
pub const EVENT_RETENTION: std::time::Duration = std::time::Duration::from_secs(3600);

// Rows are owned: SQLite's multi-row insert runs on the blocking pool (see `InsertMany`).
super::unnest::insertable_rows! {
    struct NewVersion for task_versions {
        name: String,
        version: String,
        digest: String,
        uuid: String,
        metadata: String,
        script: String,
        input_schema: Option<String>,
        output_schema: Option<String>,
        tests: String,
        available: bool,
        first_seen: i64,
        last_seen: i64,
        missing_since: Option<i64>,
        content_updated_at: i64,
        published_files: Option<String>,
    }
}

super::unnest::insertable_rows! {
    struct NewSignature for version_signatures {
        name: String,
        version: String,
        signature: String,
        signer_key_id: Option<String>,
        verified_at: Option<i64>,
    }
}

super::unnest::insertable_rows! {
    struct NewOrigin for origins {
        source: String,
        locator: String,
        fingerprint: String,
        name: String,
        version: String,
        digest: String,
        first_seen: i64,
        last_seen: i64,
        signer_key_id: Option<String>,
        judged_under: String,
    }
}

super::unnest::insertable_rows! {
    struct NewProblem for problems {
        source: String,
        locator: String,
        seq: i32,
        severity: &'static str,
        code: String,
        message: String,
        file: Option<String>,
        pointer: Option<String>,
        first_seen: i64,
        line: Option<i32>,
        col: Option<i32>,
        fingerprint: Option<String>,
    }
}

super::unnest::insertable_rows! {
    struct NewTask for tasks {
        name: String,
        uuid: String,
        first_seen: i64,
    }
}

/// Splits `rows` into owned chunks of at most `INSERT_CHUNK`.
fn chunked<R>(rows: Vec<R>) -> Vec<Vec<R>> {
    let mut chunks = Vec::with_capacity(rows.len() / INSERT_CHUNK + 1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        chunks.push(rows.by_ref().take(INSERT_CHUNK).collect());
    }
    chunks
}

/// The rows of an added version: the version, and its signature when it came signed.
fn new_version(write: &VersionWrite, t: &TaskDefinition, now: i64) -> (NewVersion, Option<NewSignature>) {
    let contents = VersionContents::of(t, now);
    let signature = new_signature(&write.key, &contents);
    let version = NewVersion {
        name: write.key.name.clone(),
        version: write.key.version.clone(),
        digest: contents.digest,
        uuid: contents.uuid,
        metadata: contents.metadata,
        script: contents.script,
        input_schema: contents.input_schema,
        output_schema: contents.output_schema,
        tests: contents.tests,
        published_files: contents.published_files,
        available: true,
        first_seen: now,
        last_seen: now,
        missing_since: None,
        content_updated_at: now,
    };
    (version, signature)
}

type ByName<'k> = diesel::dsl::Filter<version_signatures::table, diesel::dsl::Eq<version_signatures::name, &'k String>>;
type SignatureRow<'k> = diesel::dsl::Filter<ByName<'k>, diesel::dsl::Eq<version_signatures::version, &'k String>>;

/// The signature row of one version.
fn signature_row(key: &VersionKey) -> SignatureRow<'_> {
    version_signatures::table
        .filter(version_signatures::name.eq(&key.name))
        .filter(version_signatures::version.eq(&key.version))
}

/// The signature row of a version whose content is `contents`, when it came signed.
fn new_signature(key: &VersionKey, contents: &VersionContents) -> Option<NewSignature> {
    Some(NewSignature {
        name: key.name.clone(),
        version: key.version.clone(),
        signature: contents.signature.clone()?,
        signer_key_id: contents.signer_key_id.clone(),
        verified_at: contents.signature_verified_at,
    })
}

fn new_origin(o: &OriginRow, now: i64) -> NewOrigin {
    NewOrigin {
        source: o.source.clone(),
        locator: o.locator.clone(),
        fingerprint: o.origin.fingerprint.clone(),
        name: o.origin.name.clone(),
        version: o.origin.version.clone(),
        digest: o.origin.digest.to_string(),
        first_seen: now,
        last_seen: now,
        signer_key_id: o.origin.signer.map(|k| k.to_string()),
        judged_under: o.origin.judged_under.clone(),
    }
}

fn new_problem(key: &OriginKey, seq: usize, p: &Problem, found_at: Option<&String>, now: i64) -> NewProblem {
    NewProblem {
        source: key.source.clone(),
        locator: storable(&key.locator),
        seq: count(seq),
        severity: p.severity.as_str(),
        code: storable(&p.code),
        message: storable(&p.message),
        file: p.file.as_deref().map(storable),
        pointer: p.pointer.as_deref().map(storable),
        first_seen: now,
        line: p.line.map(|l| l as i32),
        col: p.column.map(|c| c as i32),
        fingerprint: found_at.map(|f| storable(f)),
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl Store {
    /// Applies one run. All or nothing: after an error or a crash the catalogue is exactly
    /// what it was before.
    pub async fn apply(
        &mut self,
        run: &RunRecord,
        scanned: &[SourceReport],
        changes: &ChangeSet,
    ) -> Result<i64, StoreError> {
        self.apply_staged(run, scanned, changes, &StagedContents::default())
            .await
    }

    /// Applies one run whose tasks' contents are held in `changes` or, for the tasks that
    /// hold none ([`TaskDefinition::without_contents`]), were staged on this connection
    /// (see `staging`). All or nothing, like [`apply`](Self::apply).
    pub async fn apply_staged(
        &mut self,
        run: &RunRecord,
        scanned: &[SourceReport],
        changes: &ChangeSet,
        staged: &StagedContents,
    ) -> Result<i64, StoreError> {
        let now = now_millis();
        // The staged row of every version whose contents the run does not hold.
        let mut staged_rows: HashMap<&VersionKey, i64> = HashMap::new();
        for write in &changes.versions {
            let Some(task) = write.task.as_deref().filter(|t| !t.holds_contents()) else {
                continue;
            };
            let id = staged.id_of(task).ok_or_else(|| StoreError::ContentsNotStaged {
                name: write.key.name.clone(),
                version: write.key.version.clone(),
            })?;
            staged_rows.insert(&write.key, id);
        }
        // Rows are built a chunk at a time inside the transaction: a cold run of many
        // tasks would otherwise hold every task's contents twice at its peak.
        let added: Vec<(&VersionWrite, &TaskDefinition)> = changes
            .versions
            .iter()
            .filter(|w| w.kind == WriteKind::Added)
            .filter_map(|w| w.task.as_deref().map(|t| (w, t)))
            .filter(|(_, t)| t.holds_contents())
            .collect();
        let added_staged: Vec<i64> = changes
            .versions
            .iter()
            .filter(|w| w.kind == WriteKind::Added)
            .filter_map(|w| staged_rows.get(&w.key).copied())
            .collect();
        let new_origins: Vec<&OriginRow> = changes.origin_upserts.iter().filter(|o| o.is_new).collect();
        let problem_rows: Vec<(&OriginKey, usize, &Problem)> = changes
            .problem_sets
            .iter()
            .flat_map(|(key, set)| set.iter().enumerate().map(move |(seq, p)| (key, seq, p)))
            .collect();
        let new_tasks: Vec<NewTask> = changes
            .new_tasks
            .iter()
            .map(|(name, uuid)| NewTask {
                name: name.clone(),
                uuid: uuid.to_string(),
                first_seen: now,
            })
            .collect();
        let new_tasks = chunked(new_tasks);
        // JSON escapes control characters: a NUL a message quotes is stored as `\u0000`.
        let events = crate::events::events_json(changes);

        let written: Result<i64, diesel::result::Error> = in_transaction!(&mut self.conn, |c| {
            for source in scanned {
                diesel::insert_into(sources::table)
                    .values((
                        sources::name.eq(&source.name),
                        sources::kind.eq(&source.kind),
                        sources::location.eq(&source.location),
                        sources::first_seen.eq(now),
                        sources::last_scan_at.eq(now),
                        sources::last_status.eq(source.status.as_str()),
                    ))
                    .on_conflict(sources::name)
                    .do_update()
                    .set((
                        sources::kind.eq(excluded(sources::kind)),
                        sources::location.eq(excluded(sources::location)),
                        sources::last_scan_at.eq(excluded(sources::last_scan_at)),
                        sources::last_status.eq(excluded(sources::last_status)),
                    ))
                    .execute(c)
                    .await?;
            }
            for chunk in new_tasks {
                c.insert_many(tasks::table, chunk).await?;
            }
            for chunk in added.chunks(INSERT_CHUNK) {
                let (rows, signatures): (Vec<_>, Vec<_>) = chunk.iter().map(|(w, t)| new_version(w, t, now)).unzip();
                c.insert_many(task_versions::table, rows).await?;
                let signatures: Vec<NewSignature> = signatures.into_iter().flatten().collect();
                if !signatures.is_empty() {
                    c.insert_many(version_signatures::table, signatures).await?;
                }
            }
            for chunk in added_staged.chunks(INSERT_CHUNK) {
                let picked = staged_versions::table
                    .filter(staged_versions::id.eq_any(chunk.to_vec()))
                    .select((
                        staged_versions::name,
                        staged_versions::version,
                        staged_versions::digest,
                        staged_versions::uuid,
                        staged_versions::metadata,
                        staged_versions::script,
                        staged_versions::input_schema,
                        staged_versions::output_schema,
                        staged_versions::tests,
                        staged_versions::published_files,
                        true.into_sql::<Bool>(),
                        now.into_sql::<BigInt>(),
                        now.into_sql::<BigInt>(),
                        None::<i64>.into_sql::<Nullable<BigInt>>(),
                        now.into_sql::<BigInt>(),
                    ));
                diesel::insert_into(task_versions::table)
                    .values(picked)
                    .into_columns((
                        task_versions::name,
                        task_versions::version,
                        task_versions::digest,
                        task_versions::uuid,
                        task_versions::metadata,
                        task_versions::script,
                        task_versions::input_schema,
                        task_versions::output_schema,
                        task_versions::tests,
                        task_versions::published_files,
                        task_versions::available,
                        task_versions::first_seen,
                        task_versions::last_seen,
                        task_versions::missing_since,
                        task_versions::content_updated_at,
                    ))
                    .execute(c)
                    .await?;
                let signed = staged_versions::table
                    .filter(staged_versions::id.eq_any(chunk.to_vec()))
                    .filter(staged_versions::signature.is_not_null())
                    .select((
                        staged_versions::name,
                        staged_versions::version,
                        staged_versions::signature.assume_not_null(),
                        staged_versions::signer_key_id,
                        staged_versions::signature_verified_at,
                    ));
                diesel::insert_into(version_signatures::table)
                    .values(signed)
                    .into_columns((
                        version_signatures::name,
                        version_signatures::version,
                        version_signatures::signature,
                        version_signatures::signer_key_id,
                        version_signatures::verified_at,
                    ))
                    .execute(c)
                    .await?;
            }
            for write in &changes.versions {
                let row = task_versions::table
                    .filter(task_versions::name.eq(&write.key.name))
                    .filter(task_versions::version.eq(&write.key.version));
                match write.kind {
                    WriteKind::Added => {}
                    WriteKind::Changed => {
                        let Some(t) = write.task.as_ref() else { continue };
                        let contents = match staged_rows.get(&write.key) {
                            Some(id) => {
                                staged_versions::table
                                    .find(*id)
                                    .select(VersionContents::as_select())
                                    .first::<VersionContents>(c)
                                    .await?
                            }
                            None => VersionContents::of(t, now),
                        };
                        // The content being replaced stays in the version's history.
                        let old_digest: String = row.select(task_versions::digest).first(c).await?;
                        diesel::insert_into(replaced_contents::table)
                            .values((
                                replaced_contents::name.eq(&write.key.name),
                                replaced_contents::version.eq(&write.key.version),
                                replaced_contents::digest.eq(&old_digest),
                                replaced_contents::replaced_at.eq(now),
                            ))
                            .on_conflict((
                                replaced_contents::name,
                                replaced_contents::version,
                                replaced_contents::digest,
                            ))
                            .do_update()
                            .set(replaced_contents::replaced_at.eq(now))
                            .execute(c)
                            .await?;
                        diesel::update(row)
                            .set((
                                task_versions::digest.eq(&contents.digest),
                                task_versions::uuid.eq(&contents.uuid),
                                task_versions::metadata.eq(&contents.metadata),
                                task_versions::script.eq(&contents.script),
                                task_versions::input_schema.eq(&contents.input_schema),
                                task_versions::output_schema.eq(&contents.output_schema),
                                task_versions::tests.eq(&contents.tests),
                                task_versions::published_files.eq(&contents.published_files),
                                task_versions::available.eq(true),
                                task_versions::last_seen.eq(now),
                                task_versions::missing_since.eq(None::<i64>),
                                task_versions::content_updated_at.eq(now),
                            ))
                            .execute(c)
                            .await?;
                        diesel::delete(signature_row(&write.key)).execute(c).await?;
                        if let Some(row) = new_signature(&write.key, &contents) {
                            c.insert_many(version_signatures::table, vec![row]).await?;
                        }
                    }
                    WriteKind::Revived => {
                        diesel::update(row)
                            .set((
                                task_versions::available.eq(true),
                                task_versions::last_seen.eq(now),
                                task_versions::missing_since.eq(None::<i64>),
                            ))
                            .execute(c)
                            .await?;
                    }
                    WriteKind::Missing => {
                        diesel::update(row)
                            .set((
                                task_versions::available.eq(false),
                                task_versions::missing_since.eq(Some(now)),
                            ))
                            .execute(c)
                            .await?;
                    }
                }
            }
            for update in &changes.signatures {
                let signature = match &update.change {
                    SignatureChange::Unverified => {
                        diesel::update(signature_row(&update.key))
                            .set((
                                version_signatures::signer_key_id.eq(None::<String>),
                                version_signatures::verified_at.eq(None::<i64>),
                            ))
                            .execute(c)
                            .await?;
                        continue;
                    }
                    SignatureChange::Replaced(signature) => signature,
                };
                let row = signature.as_ref().map(|signature| {
                    let signer = signature.signer();
                    NewSignature {
                        name: update.key.name.clone(),
                        version: update.key.version.clone(),
                        signature: signature.text.clone(),
                        signer_key_id: signer.map(|k| k.to_string()),
                        verified_at: signer.map(|_| now),
                    }
                });
                diesel::delete(signature_row(&update.key)).execute(c).await?;
                if let Some(row) = row {
                    c.insert_many(version_signatures::table, vec![row]).await?;
                }
            }
            for OriginKey { source, locator } in &changes.origin_deletes {
                diesel::delete(
                    origins::table
                        .filter(origins::source.eq(source))
                        .filter(origins::locator.eq(locator)),
                )
                .execute(c)
                .await?;
            }
            for chunk in new_origins.chunks(INSERT_CHUNK) {
                let rows = chunk.iter().map(|o| new_origin(o, now)).collect::<Vec<_>>();
                c.insert_many(origins::table, rows).await?;
            }
            for row in changes.origin_upserts.iter().filter(|o| !o.is_new) {
                diesel::update(
                    origins::table
                        .filter(origins::source.eq(&row.source))
                        .filter(origins::locator.eq(&row.locator)),
                )
                .set((
                    origins::fingerprint.eq(&row.origin.fingerprint),
                    origins::name.eq(&row.origin.name),
                    origins::version.eq(&row.origin.version),
                    origins::digest.eq(row.origin.digest.to_string()),
                    origins::last_seen.eq(now),
                    origins::signer_key_id.eq(row.origin.signer.map(|k| k.to_string())),
                    origins::judged_under.eq(&row.origin.judged_under),
                ))
                .execute(c)
                .await?;
            }
            for (OriginKey { source, locator }, _) in &changes.problem_sets {
                diesel::delete(
                    problems::table
                        .filter(problems::source.eq(source))
                        .filter(problems::locator.eq(locator)),
                )
                .execute(c)
                .await?;
            }
            for chunk in problem_rows.chunks(INSERT_CHUNK) {
                let rows = chunk
                    .iter()
                    .map(|(key, seq, p)| new_problem(key, *seq, p, changes.problem_fingerprints.get(*key), now))
                    .collect::<Vec<_>>();
                c.insert_many(problems::table, rows).await?;
            }
            for VersionKey { name, version } in &changes.conflicts_cleared {
                diesel::delete(
                    conflicts::table
                        .filter(conflicts::name.eq(name))
                        .filter(conflicts::version.eq(version)),
                )
                .execute(c)
                .await?;
            }
            for record in &changes.conflicts {
                diesel::insert_into(conflicts::table)
                    .values((
                        conflicts::name.eq(&record.name),
                        conflicts::version.eq(&record.version),
                        conflicts::strategy.eq(&record.detail.strategy),
                        conflicts::kept_digest.eq(record.detail.kept.map(|d| d.to_string())),
                        conflicts::detail.eq(record.detail.to_json()),
                        conflicts::first_seen.eq(now),
                        conflicts::last_seen.eq(now),
                    ))
                    .on_conflict((conflicts::name, conflicts::version))
                    .do_update()
                    .set((
                        conflicts::strategy.eq(excluded(conflicts::strategy)),
                        conflicts::kept_digest.eq(excluded(conflicts::kept_digest)),
                        conflicts::detail.eq(excluded(conflicts::detail)),
                        conflicts::last_seen.eq(excluded(conflicts::last_seen)),
                    ))
                    .execute(c)
                    .await?;
            }
            let counts = &run.counts;
            diesel::insert_into(sync_runs::table)
                .values((
                    sync_runs::id.eq(&run.id),
                    sync_runs::started_at.eq(run.started_at),
                    sync_runs::finished_at.eq(now_millis()),
                    sync_runs::status.eq(run.status.as_str()),
                    sync_runs::added.eq(count(counts.added)),
                    sync_runs::updated.eq(count(counts.updated)),
                    sync_runs::unchanged.eq(count(counts.unchanged)),
                    sync_runs::missing.eq(count(counts.missing)),
                    sync_runs::revived.eq(count(counts.revived)),
                    sync_runs::invalid.eq(count(counts.invalid)),
                    sync_runs::conflicts.eq(count(counts.conflicts)),
                    sync_runs::sources.eq(&run.sources_json),
                ))
                .execute(c)
                .await?;
            diesel::update(catalogue_state::table)
                .set(catalogue_state::generation.eq(catalogue_state::generation + 1))
                .execute(c)
                .await?;
            let generation = catalogue_state::table
                .select(catalogue_state::generation)
                .first::<i64>(c)
                .await?;
            diesel::delete(
                catalogue_events::table
                    .filter(catalogue_events::written_at.lt(now - EVENT_RETENTION.as_millis() as i64)),
            )
            .execute(c)
            .await?;
            diesel::insert_into(catalogue_events::table)
                .values((
                    catalogue_events::generation.eq(generation),
                    catalogue_events::process_id.eq(&run.writer),
                    catalogue_events::written_at.eq(now),
                    catalogue_events::events.eq(&events),
                ))
                .execute(c)
                .await?;
            Ok(generation)
        });
        written.map_err(|e| self.write_error(e))
    }
}
