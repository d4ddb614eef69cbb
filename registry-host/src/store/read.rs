//! Reading the catalogue: the snapshot a sync plans against, and what `list`, `show` and
//! `problems` print.

use super::schema::{
    conflicts, origins, problems, replaced_contents, sources, sync_runs, task_versions, tasks, version_signatures,
};
use super::{LoadAll, Store, StoreError};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use registry_core::{Digest, Problem, Severity, Snapshot, StoredOrigin, StoredVersion};
use registry_core::{OriginKey, VersionKey};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// The core snapshot plus what the host itself keeps about sources.
#[derive(Debug, Clone, Default)]
pub struct StoreSnapshot {
    /// What the core plans against.
    pub core: Snapshot,
    /// name → (kind, location) of every source ever stored.
    pub sources: HashMap<String, (String, String)>,
}

/// A version's identity and state, without content.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = task_versions)]
pub struct VersionRow {
    /// The task's name.
    pub name: String,
    /// The semver version.
    pub version: String,
    /// The content's digest.
    pub digest: String,
    /// Whether some source offers it now.
    pub available: bool,
    /// The trusted key whose signature of the content verified (16 hex digits).
    #[diesel(select_expression = version_signatures::signer_key_id.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<version_signatures::signer_key_id>)]
    pub signer_key_id: Option<String>,
    /// When that signature was verified (Unix milliseconds).
    #[diesel(select_expression = version_signatures::verified_at.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<version_signatures::verified_at>)]
    pub signature_verified_at: Option<i64>,
}

/// The versions with their signatures (a version without a signature row is unsigned):
/// what [`VersionRow`] is selected from.
type SignedVersions = diesel::dsl::LeftJoinOn<
    task_versions::table,
    version_signatures::table,
    diesel::dsl::And<
        diesel::dsl::Eq<version_signatures::name, task_versions::name>,
        diesel::dsl::Eq<version_signatures::version, task_versions::version>,
    >,
>;

fn signed_versions() -> SignedVersions {
    task_versions::table.left_join(
        version_signatures::table.on(version_signatures::name
            .eq(task_versions::name)
            .and(version_signatures::version.eq(task_versions::version))),
    )
}

/// One version in `list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionSummary {
    /// The task's name.
    pub name: String,
    /// The semver version.
    pub version: String,
    /// The content's digest.
    pub digest: String,
    /// Whether some source offers it now.
    pub available: bool,
    /// Names of the sources offering it now.
    pub sources: Vec<String>,
    /// The trusted key that signed it (`null`: unsigned, or not verified).
    pub signed_by: Option<String>,
    /// When the signature was verified (Unix milliseconds).
    pub signature_verified_at: Option<i64>,
}

/// Where a version is offered: a source and the locator inside it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OriginRef {
    /// The source's name.
    pub source: String,
    /// Where in the source.
    pub locator: String,
    /// The digest this origin offers (it may lose a conflict).
    pub digest: String,
}

/// One stored version in full, as `show` prints it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = task_versions)]
pub struct StoredTask {
    /// The task's name.
    pub name: String,
    /// The semver version.
    pub version: String,
    /// The content's digest.
    pub digest: String,
    /// The task's UUID.
    pub uuid: String,
    /// `metadata.json`, canonical JSON.
    pub metadata: String,
    /// `main.js`, as published.
    pub script: String,
    /// `input.schema.json`, canonical JSON, when the task has one.
    pub input_schema: Option<String>,
    /// `output.schema.json`, canonical JSON, when the task has one.
    pub output_schema: Option<String>,
    /// The test cases as a JSON array of `{file, case}`.
    pub tests: String,
    /// Whether some source offers it now.
    pub available: bool,
    /// When it was first stored (Unix milliseconds).
    pub first_seen: i64,
    /// When a scan last found it (Unix milliseconds).
    pub last_seen: i64,
    /// Since when no source offers it (Unix milliseconds).
    pub missing_since: Option<i64>,
    /// When its content last changed (Unix milliseconds).
    pub content_updated_at: i64,
    /// The author's files (path → contents, as JSON) for layouts whose files are not the
    /// columns above (`meta.yaml`); `None` for `metadata.json` tasks.
    pub published_files: Option<String>,
    /// Who signed the content, when it came signed.
    #[diesel(embed)]
    pub signature: VersionSignature,
}

/// A version's signature as the catalogue keeps it (all `None`: unsigned).
#[derive(Debug, Clone, Default, PartialEq, Eq, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = version_signatures)]
pub struct VersionSignature {
    /// The publisher's signature (`signature.minisig`), as published.
    #[diesel(select_expression = version_signatures::signature.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<version_signatures::signature>)]
    #[serde(skip)]
    pub text: Option<String>,
    /// The trusted key it verified against (16 hex digits); `None` with a signature: signed
    /// by a key the policy does not trust.
    #[diesel(select_expression = version_signatures::signer_key_id.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<version_signatures::signer_key_id>)]
    pub signed_by: Option<String>,
    /// When that signature was verified (Unix milliseconds).
    #[diesel(select_expression = version_signatures::verified_at.nullable())]
    #[diesel(select_expression_type = diesel::dsl::Nullable<version_signatures::verified_at>)]
    pub verified_at: Option<i64>,
}

impl VersionSignature {
    /// Whether the content came with a signature (verified or not).
    pub fn is_signed(&self) -> bool {
        self.text.is_some()
    }
}

impl StoredTask {
    /// The version's files as published (JSON canonical; `meta.yaml` and scripts as the
    /// author wrote them): hashing them in canonical form gives the stored digest (checked:
    /// a row that does not is reported, never served).
    pub fn files(&self) -> Result<BTreeMap<String, String>, String> {
        let (files, digest) = match &self.published_files {
            Some(json) => {
                let files: BTreeMap<String, String> =
                    serde_json::from_str(json).map_err(|e| format!("stored files are not JSON: {e}"))?;
                let digest = registry_core::digest_of_published(files.iter().map(|(p, c)| (p.as_str(), c.as_str())))?;
                (files, digest)
            }
            None => {
                let files = registry_core::files_from_stored(
                    &self.metadata,
                    &self.script,
                    self.input_schema.as_deref(),
                    self.output_schema.as_deref(),
                    &self.tests,
                )?;
                let digest = Digest::of_files(files.iter().map(|(p, c)| (p.as_str(), c.as_bytes())));
                (files, digest)
            }
        };
        if digest.to_string() != self.digest {
            return Err(format!(
                "the stored files of {}@{} do not hash to its digest",
                self.name, self.version
            ));
        }
        Ok(files)
    }
}

/// A current conflict, as `taskreg conflicts` prints it.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = conflicts)]
pub struct ConflictRow {
    /// The task's name.
    pub name: String,
    /// The semver version.
    pub version: String,
    /// The strategy that decided.
    pub strategy: String,
    /// The content the catalogue holds, if any.
    pub kept_digest: Option<String>,
    /// The offers and the decision.
    #[diesel(deserialize_as = String)]
    pub detail: registry_core::ConflictDetail,
    /// When the conflict was first seen (Unix milliseconds).
    pub first_seen: i64,
    /// When a run last saw it (Unix milliseconds).
    pub last_seen: i64,
}

/// One version of a task's history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryRow {
    /// The semver version.
    pub version: String,
    /// The content's digest.
    pub digest: String,
    /// Whether some source offers it now.
    pub available: bool,
    /// When it was first stored (Unix milliseconds).
    pub first_seen: i64,
    /// When a scan last found it (Unix milliseconds).
    pub last_seen: i64,
    /// Since when no source offers it (Unix milliseconds).
    pub missing_since: Option<i64>,
    /// When its content last changed (Unix milliseconds).
    pub content_updated_at: i64,
    /// Contents it had before, newest first: each digest and when it was replaced.
    pub replaced: Vec<ReplacedContent>,
    /// The trusted key that signed the content (`null`: unsigned, or not verified).
    pub signed_by: Option<String>,
    /// When the signature was verified (Unix milliseconds).
    pub signature_verified_at: Option<i64>,
}

/// Content a version had before an update replaced it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, serde::Serialize)]
pub struct ReplacedContent {
    /// The digest of the replaced content.
    pub digest: String,
    /// When it was replaced (Unix milliseconds).
    pub replaced_at: i64,
}

/// A version's row of [`HistoryRow`], as selected.
#[derive(Queryable, Selectable)]
#[diesel(table_name = task_versions)]
struct VersionHistory {
    version: String,
    digest: String,
    available: bool,
    first_seen: i64,
    last_seen: i64,
    missing_since: Option<i64>,
    content_updated_at: i64,
    #[diesel(embed)]
    signature: VersionSignature,
}

/// A current problem with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemRow {
    /// The source's name.
    pub source: String,
    /// Where in the source.
    pub locator: String,
    /// What is wrong.
    pub problem: Problem,
    /// For a broken task: the entry's fingerprint and the rules it was found broken at.
    pub found_at: Option<String>,
}

/// Task names per page of [`Store::list_versions`].
const LIST_PAGE_NAMES: usize = 500;

/// Problems per page of [`Store::problems`].
const PROBLEMS_PAGE: usize = 1000;

/// One page of the version list ([`Store::list_page`]).
#[derive(Debug, Clone)]
pub struct ListPage {
    /// The page's versions, by name, newest version first.
    pub versions: Vec<VersionSummary>,
    /// The name to read the next page after, when more may follow.
    pub next: Option<String>,
}

/// Where a page of problems ends ([`Store::problems_page`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemKey {
    /// The source's name.
    pub source: String,
    /// The locator.
    pub locator: String,
    /// The problem's position among the locator's.
    pub seq: i32,
}

/// One page of problems ([`Store::problems_page`]).
#[derive(Debug, Clone)]
pub struct ProblemsPage {
    /// The page's problems.
    pub problems: Vec<ProblemRow>,
    /// The key to read the next page after, when more may follow.
    pub next: Option<ProblemKey>,
}

fn digest(text: &str) -> Result<Digest, StoreError> {
    text.parse().map_err(StoreError::Corrupt)
}

fn key_id(text: Option<&str>) -> Result<Option<registry_core::KeyId>, StoreError> {
    text.map(|t| t.parse().map_err(StoreError::Corrupt)).transpose()
}

/// What a plan needs of one origin row.
#[derive(Queryable, Selectable)]
#[diesel(table_name = origins)]
struct OriginRow {
    source: String,
    locator: String,
    fingerprint: String,
    name: String,
    version: String,
    digest: String,
    signer_key_id: Option<String>,
    judged_under: String,
}

fn problem_from(row: ProblemRecord) -> Result<ProblemRow, StoreError> {
    let ProblemRecord {
        source,
        locator,
        severity,
        code,
        message,
        file,
        pointer,
        line,
        col,
        fingerprint,
    } = row;
    let severity = Severity::parse(&severity).ok_or_else(|| StoreError::Corrupt(format!("severity `{severity}`")))?;
    Ok(ProblemRow {
        source,
        locator,
        problem: Problem {
            code,
            severity,
            file,
            pointer,
            line: line.map(|l| l as u32),
            column: col.map(|c| c as u32),
            message,
        },
        found_at: fingerprint,
    })
}

fn by_semver_descending(a: &str, b: &str) -> std::cmp::Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => b.cmp(&a),
        _ => b.cmp(a),
    }
}

impl Store {
    /// Everything a plan needs, and no task content, except the task UUIDs: a plan needs
    /// those only when something was loaded, so they come separately from [`Store::task_uuids`].
    pub async fn snapshot(&mut self) -> Result<StoreSnapshot, StoreError> {
        let versions = self.version_rows().await?;
        let (origin_rows, conflict_rows, source_rows) = with_conn!(&mut self.conn, |c| {
            let origin_rows: Vec<OriginRow> = c.load_all(origins::table.select(OriginRow::as_select())).await?;
            let conflict_rows: Vec<(String, String, String)> = conflicts::table
                .select((conflicts::name, conflicts::version, conflicts::detail))
                .load(c)
                .await?;
            let source_rows: Vec<(String, String, String)> = sources::table
                .select((sources::name, sources::kind, sources::location))
                .load(c)
                .await?;
            Ok::<_, diesel::result::Error>((origin_rows, conflict_rows, source_rows))
        })?;

        let mut snapshot = StoreSnapshot::default();
        let core = &mut snapshot.core;
        core.versions.reserve(versions.len());
        for row in versions {
            let version = StoredVersion {
                digest: digest(&row.digest)?,
                available: row.available,
                signer: key_id(row.signer_key_id.as_deref())?,
            };
            core.versions.insert(VersionKey::new(row.name, row.version), version);
        }
        core.origins.reserve(origin_rows.len());
        for row in origin_rows {
            let origin = StoredOrigin {
                digest: digest(&row.digest)?,
                signer: key_id(row.signer_key_id.as_deref())?,
                fingerprint: row.fingerprint,
                name: row.name,
                version: row.version,
                judged_under: row.judged_under,
            };
            core.origins.insert(OriginKey::new(row.source, row.locator), origin);
        }
        for row in self.problems().await? {
            let key = OriginKey::new(row.source, row.locator);
            if let Some(found_at) = row.found_at {
                core.problem_fingerprints.insert(key.clone(), found_at);
            }
            core.problems.entry(key).or_default().push(row.problem);
        }
        for (name, version, detail) in conflict_rows {
            core.conflicts.insert(VersionKey::new(name, version), detail);
        }
        for (name, kind, location) in source_rows {
            snapshot.sources.insert(name, (kind, location));
        }
        Ok(snapshot)
    }

    /// The UUID of every task name ever stored.
    pub async fn task_uuids(&mut self) -> Result<HashMap<String, Uuid>, StoreError> {
        let rows: Vec<(String, String)> = with_conn!(&mut self.conn, |c| tasks::table
            .select((tasks::name, tasks::uuid))
            .load(c)
            .await)?;
        parse_uuids(rows)
    }

    /// The UUIDs stored for these names or claimed by these UUIDs: all a plan needs to know
    /// of task identity when it loaded only a few tasks.
    pub async fn task_uuids_of(
        &mut self,
        names: Vec<String>,
        uuids: Vec<String>,
    ) -> Result<HashMap<String, Uuid>, StoreError> {
        let rows: Vec<(String, String)> = with_conn!(&mut self.conn, |c| tasks::table
            .select((tasks::name, tasks::uuid))
            .filter(tasks::name.eq_any(&names).or(tasks::uuid.eq_any(&uuids)))
            .load(c)
            .await)?;
        parse_uuids(rows)
    }

    /// Every version's identity and state, without content: what a plan, the served index
    /// and the metrics need. Unordered.
    pub async fn version_rows(&mut self) -> Result<Vec<VersionRow>, StoreError> {
        let rows = with_conn!(&mut self.conn, |c| c
            .load_all(signed_versions().select(VersionRow::as_select()))
            .await)?;
        Ok(rows)
    }

    /// One page of the served index: at most `limit` versions ordered by name, then version
    /// text, after the key `after` (a keyset cursor: a write between two pages never makes
    /// a version skipped or repeated), read straight through the table's primary key, so
    /// a page costs the same in a catalogue of any size. The second value says whether
    /// more versions follow.
    pub async fn index_page(
        &mut self,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<(Vec<VersionRow>, bool), StoreError> {
        let take = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        let mut rows: Vec<VersionRow> = with_conn!(&mut self.conn, |c| {
            let query = signed_versions()
                .select(VersionRow::as_select())
                .order((task_versions::name, task_versions::version))
                .limit(take)
                .into_boxed();
            let query = match after {
                Some((name, version)) => query.filter(
                    task_versions::name.gt(name.to_owned()).or(task_versions::name
                        .eq(name.to_owned())
                        .and(task_versions::version.gt(version.to_owned()))),
                ),
                None => query,
            };
            query.load(c).await
        })?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        Ok((rows, more))
    }

    /// Versions sorted by name, newest version first; unavailable ones only with `all`.
    /// Read a page at a time ([`list_page`](Self::list_page)); a caller printing a large
    /// catalogue should take the pages itself, so that its memory stays flat.
    pub async fn list_versions(&mut self, all: bool) -> Result<Vec<VersionSummary>, StoreError> {
        let mut list = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.list_page(all, after.as_deref(), LIST_PAGE_NAMES).await?;
            list.extend(page.versions);
            match page.next {
                Some(name) => after = Some(name),
                None => return Ok(list),
            }
        }
    }

    /// The versions of at most `names` task names after `after` (by name), sorted like
    /// [`list_versions`](Self::list_versions): a keyset page read through the primary key,
    /// so each costs the same in a catalogue of any size, and a name's versions are never
    /// split between pages.
    pub async fn list_page(&mut self, all: bool, after: Option<&str>, names: usize) -> Result<ListPage, StoreError> {
        let limit = i64::try_from(names.max(1)).unwrap_or(i64::MAX);
        let (rows, origin_rows, full) = with_conn!(&mut self.conn, |c| async {
            let mut page_names = task_versions::table
                .select(task_versions::name)
                .distinct()
                .order(task_versions::name)
                .limit(limit)
                .into_boxed();
            if let Some(after) = after {
                page_names = page_names.filter(task_versions::name.gt(after.to_owned()));
            }
            if !all {
                page_names = page_names.filter(task_versions::available.eq(true));
            }
            let page_names: Vec<String> = page_names.load(c).await?;
            // Slice methods: diesel's `first` is in scope.
            let (Some(first), Some(last)) = (<[String]>::first(&page_names), <[String]>::last(&page_names)) else {
                return Ok::<_, diesel::result::Error>((Vec::new(), Vec::new(), false));
            };
            let in_page = task_versions::name
                .ge(first.clone())
                .and(task_versions::name.le(last.clone()));
            let mut rows = signed_versions()
                .select(VersionRow::as_select())
                .filter(in_page)
                .into_boxed();
            if !all {
                rows = rows.filter(task_versions::available.eq(true));
            }
            let rows: Vec<VersionRow> = rows.load(c).await?;
            let origin_rows: Vec<(String, String, String)> = origins::table
                .filter(origins::name.ge(first.clone()).and(origins::name.le(last.clone())))
                .select((origins::name, origins::version, origins::source))
                .load(c)
                .await?;
            Ok((rows, origin_rows, page_names.len() as i64 == limit))
        }
        .await)?;
        let mut offered: HashMap<(String, String), Vec<String>> = HashMap::new();
        for (name, version, source) in origin_rows {
            let sources = offered.entry((name, version)).or_default();
            if !sources.contains(&source) {
                sources.push(source);
            }
        }
        let mut versions: Vec<VersionSummary> = rows
            .into_iter()
            .map(
                |VersionRow {
                     name,
                     version,
                     digest,
                     available,
                     signer_key_id,
                     signature_verified_at,
                 }| {
                    let mut sources = offered.remove(&(name.clone(), version.clone())).unwrap_or_default();
                    sources.sort();
                    VersionSummary {
                        name,
                        version,
                        digest,
                        available,
                        sources,
                        signed_by: signer_key_id,
                        signature_verified_at,
                    }
                },
            )
            .collect();
        versions.sort_by(|a, b| {
            a.name
                .cmp(&b.name)
                .then_with(|| by_semver_descending(&a.version, &b.version))
        });
        let next = versions.last().filter(|_| full).map(|v| v.name.clone());
        Ok(ListPage { versions, next })
    }

    /// Every version of one task, newest first, with the sources offering each.
    pub async fn list_versions_of(&mut self, name: &str) -> Result<Vec<VersionSummary>, StoreError> {
        let (rows, origin_rows) = with_conn!(&mut self.conn, |c| {
            let rows: Vec<VersionRow> = signed_versions()
                .filter(task_versions::name.eq(name))
                .select(VersionRow::as_select())
                .load(c)
                .await?;
            let origin_rows: Vec<(String, String)> = origins::table
                .filter(origins::name.eq(name))
                .select((origins::version, origins::source))
                .load(c)
                .await?;
            Ok::<_, diesel::result::Error>((rows, origin_rows))
        })?;
        let mut list: Vec<VersionSummary> = rows
            .into_iter()
            .map(|row| {
                let mut sources: Vec<String> = origin_rows
                    .iter()
                    .filter(|(version, _)| *version == row.version)
                    .map(|(_, source)| source.clone())
                    .collect();
                sources.sort();
                sources.dedup();
                VersionSummary {
                    name: row.name,
                    version: row.version,
                    digest: row.digest,
                    available: row.available,
                    sources,
                    signed_by: row.signer_key_id,
                    signature_verified_at: row.signature_verified_at,
                }
            })
            .collect();
        list.sort_by(|a, b| by_semver_descending(&a.version, &b.version));
        Ok(list)
    }

    /// The available versions of one task, as stored.
    async fn available_versions(&mut self, name: &str) -> Result<Vec<String>, StoreError> {
        Ok(with_conn!(&mut self.conn, |c| {
            task_versions::table
                .filter(task_versions::name.eq(name))
                .filter(task_versions::available.eq(true))
                .select(task_versions::version)
                .load(c)
                .await
        })?)
    }

    /// The newest available version of `name` that `requirement` accepts, in full.
    pub async fn resolve(
        &mut self,
        name: &str,
        requirement: &semver::VersionReq,
    ) -> Result<Option<(StoredTask, Vec<OriginRef>)>, StoreError> {
        match self.newest_matching(name, requirement).await? {
            Some(version) => self.show(name, Some(&version)).await,
            None => Ok(None),
        }
    }

    /// The newest available version of `name` that `requirement` accepts.
    async fn newest_matching(
        &mut self,
        name: &str,
        requirement: &semver::VersionReq,
    ) -> Result<Option<String>, StoreError> {
        let versions = self.available_versions(name).await?;
        Ok(versions
            .into_iter()
            .filter_map(|text| Some((semver::Version::parse(&text).ok()?, text)))
            .filter(|(version, _)| requirement.matches(version))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, text)| text))
    }

    /// One version in full: `version`, or the newest available one by semver.
    pub async fn show(
        &mut self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<(StoredTask, Vec<OriginRef>)>, StoreError> {
        let version = match version {
            Some(v) => v.to_owned(),
            None => {
                let candidates = self.available_versions(name).await?;
                match candidates.into_iter().min_by(|a, b| by_semver_descending(a, b)) {
                    Some(v) => v,
                    None => return Ok(None),
                }
            }
        };
        let found = with_conn!(&mut self.conn, |c| {
            let task: Option<StoredTask> = signed_versions()
                .filter(task_versions::name.eq(name))
                .filter(task_versions::version.eq(&version))
                .select(StoredTask::as_select())
                .first(c)
                .await
                .optional()?;
            let origin_rows: Vec<(String, String, String)> = origins::table
                .filter(origins::name.eq(name))
                .filter(origins::version.eq(&version))
                .select((origins::source, origins::locator, origins::digest))
                .order((origins::source, origins::locator))
                .load(c)
                .await?;
            Ok::<_, diesel::result::Error>((task, origin_rows))
        })?;
        Ok(found.0.map(|task| {
            let origins = found
                .1
                .into_iter()
                .map(|(source, locator, digest)| OriginRef {
                    source,
                    locator,
                    digest,
                })
                .collect();
            (task, origins)
        }))
    }

    /// `(name, version, metadata)` of every available version: what the catalogue page
    /// shows of each task beside its versions (label, tags, category).
    pub async fn available_metadata(&mut self) -> Result<Vec<(String, String, String)>, StoreError> {
        Ok(with_conn!(&mut self.conn, |c| {
            task_versions::table
                .filter(task_versions::available.eq(true))
                .select((task_versions::name, task_versions::version, task_versions::metadata))
                .load(c)
                .await
        })?)
    }

    /// `(started_at, sources)` of the latest `limit` recorded runs, newest first: `sources`
    /// is the JSON array of the run's [`SourceReport`](super::SourceReport)s (each source's
    /// scan time among them).
    pub async fn recent_runs(&mut self, limit: usize) -> Result<Vec<(i64, String)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Ok(with_conn!(&mut self.conn, |c| {
            sync_runs::table
                .select((sync_runs::started_at, sync_runs::sources))
                .order(sync_runs::started_at.desc())
                .limit(limit)
                .load(c)
                .await
        })?)
    }

    /// `(source, locator, task name)` of every origin that has a current problem: which
    /// task each problem concerns (a place with no origin held a task that never loaded).
    pub async fn problem_origin_names(&mut self) -> Result<Vec<(String, String, String)>, StoreError> {
        Ok(with_conn!(&mut self.conn, |c| {
            origins::table
                .inner_join(
                    problems::table.on(problems::source
                        .eq(origins::source)
                        .and(problems::locator.eq(origins::locator))),
                )
                .select((origins::source, origins::locator, origins::name))
                .distinct()
                .load(c)
                .await
        })?)
    }

    /// Current problems, by source and locator.
    pub async fn problems(&mut self) -> Result<Vec<ProblemRow>, StoreError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self.problems_page(after.as_ref(), PROBLEMS_PAGE).await?;
            all.extend(page.problems);
            match page.next {
                Some(key) => after = Some(key),
                None => return Ok(all),
            }
        }
    }

    /// At most `limit` problems after the key `after`, in the order of
    /// [`problems`](Self::problems): a keyset page, so that a caller printing every problem
    /// of a large catalogue holds one page at a time.
    pub async fn problems_page(
        &mut self,
        after: Option<&ProblemKey>,
        limit: usize,
    ) -> Result<ProblemsPage, StoreError> {
        let take = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let rows: Vec<(i32, ProblemRecord)> = with_conn!(&mut self.conn, |c| {
            let mut query = problems::table
                .order((problems::source, problems::locator, problems::seq))
                .select((problems::seq, ProblemRecord::as_select()))
                .limit(take)
                .into_boxed();
            if let Some(ProblemKey { source, locator, seq }) = after {
                query = query.filter(
                    problems::source
                        .gt(source.clone())
                        .or(problems::source.eq(source.clone()).and(
                            problems::locator
                                .gt(locator.clone())
                                .or(problems::locator.eq(locator.clone()).and(problems::seq.gt(*seq))),
                        )),
                );
            }
            query.load(c).await
        })?;
        let full = rows.len() as i64 == take;
        let next = rows.last().filter(|_| full).map(|(seq, record)| ProblemKey {
            source: record.source.clone(),
            locator: record.locator.clone(),
            seq: *seq,
        });
        let problems = rows
            .into_iter()
            .map(|(_, record)| problem_from(record))
            .collect::<Result<_, _>>()?;
        Ok(ProblemsPage { problems, next })
    }

    /// Current problems at the origins of task `name` (any of its versions), in the order
    /// of [`problems`](Self::problems): what one task's page shows, without reading the rest.
    pub async fn problems_of_task(&mut self, name: &str) -> Result<Vec<ProblemRow>, StoreError> {
        let records: Vec<ProblemRecord> = with_conn!(&mut self.conn, |c| {
            problems::table
                .inner_join(
                    origins::table.on(origins::source
                        .eq(problems::source)
                        .and(origins::locator.eq(problems::locator))),
                )
                .filter(origins::name.eq(name))
                .order((problems::source, problems::locator, problems::seq))
                .select(ProblemRecord::as_select())
                .load(c)
                .await
        })?;
        records.into_iter().map(problem_from).collect()
    }

    /// Current conflicts of task `name`, by version.
    pub async fn conflicts_of_task(&mut self, name: &str) -> Result<Vec<ConflictRow>, StoreError> {
        Ok(with_conn!(&mut self.conn, |c| {
            conflicts::table
                .filter(conflicts::name.eq(name))
                .order(conflicts::version)
                .select(ConflictRow::as_select())
                .load(c)
                .await
        })?)
    }

    /// Current conflicts, by name and version.
    pub async fn conflicts(&mut self) -> Result<Vec<ConflictRow>, StoreError> {
        let rows = with_conn!(&mut self.conn, |c| {
            conflicts::table
                .order((conflicts::name, conflicts::version))
                .select(ConflictRow::as_select())
                .load(c)
                .await
        })?;
        Ok(rows)
    }

    /// Every version of `name` ever stored, newest first by semver.
    pub async fn history(&mut self, name: &str) -> Result<Vec<HistoryRow>, StoreError> {
        let (versions, replaced) = with_conn!(&mut self.conn, |c| {
            let versions: Vec<VersionHistory> = signed_versions()
                .filter(task_versions::name.eq(name))
                .select(VersionHistory::as_select())
                .load(c)
                .await?;
            let replaced: Vec<(String, String, i64)> = replaced_contents::table
                .filter(replaced_contents::name.eq(name))
                .select((
                    replaced_contents::version,
                    replaced_contents::digest,
                    replaced_contents::replaced_at,
                ))
                .order(replaced_contents::replaced_at.desc())
                .load(c)
                .await?;
            Ok::<_, diesel::result::Error>((versions, replaced))
        })?;
        let mut rows: Vec<HistoryRow> = versions
            .into_iter()
            .map(|v| HistoryRow {
                replaced: replaced
                    .iter()
                    .filter(|(version, _, _)| *version == v.version)
                    .map(|(_, digest, replaced_at)| ReplacedContent {
                        digest: digest.clone(),
                        replaced_at: *replaced_at,
                    })
                    .collect(),
                version: v.version,
                digest: v.digest,
                available: v.available,
                first_seen: v.first_seen,
                last_seen: v.last_seen,
                missing_since: v.missing_since,
                content_updated_at: v.content_updated_at,
                signed_by: v.signature.signed_by,
                signature_verified_at: v.signature.verified_at,
            })
            .collect();
        rows.sort_by(|a, b| by_semver_descending(&a.version, &b.version));
        Ok(rows)
    }

    /// Row counts per table, for tests and the benchmark.
    pub async fn table_counts(&mut self) -> Result<BTreeMap<&'static str, i64>, StoreError> {
        let counts = with_conn!(&mut self.conn, |c| {
            let mut counts = BTreeMap::new();
            counts.insert("sources", sources::table.count().get_result::<i64>(c).await?);
            counts.insert("tasks", tasks::table.count().get_result::<i64>(c).await?);
            counts.insert(
                "task_versions",
                task_versions::table.count().get_result::<i64>(c).await?,
            );
            counts.insert("origins", origins::table.count().get_result::<i64>(c).await?);
            counts.insert(
                "sync_runs",
                super::schema::sync_runs::table.count().get_result::<i64>(c).await?,
            );
            counts.insert("problems", problems::table.count().get_result::<i64>(c).await?);
            counts.insert("conflicts", conflicts::table.count().get_result::<i64>(c).await?);
            counts.insert(
                "processes",
                super::schema::processes::table.count().get_result::<i64>(c).await?,
            );
            Ok::<_, diesel::result::Error>(counts)
        })?;
        Ok(counts)
    }
}

/// What `/metrics` reports of the catalogue, counted by the database (no rows are read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CatalogueCounts {
    /// Versions some source offers.
    pub available_versions: i64,
    /// Versions kept for history only.
    pub unavailable_versions: i64,
    /// Current error problems.
    pub error_problems: i64,
    /// Current warnings.
    pub warning_problems: i64,
    /// Runs that wrote the catalogue.
    pub sync_runs: i64,
}

impl Store {
    /// The catalogue's figures for `/metrics`: a few `COUNT`s, whatever its size.
    pub async fn catalogue_counts(&mut self) -> Result<CatalogueCounts, StoreError> {
        let counts = with_conn!(&mut self.conn, |c| {
            let versions = task_versions::table.count().get_result::<i64>(c).await?;
            let available_versions = task_versions::table
                .filter(task_versions::available.eq(true))
                .count()
                .get_result::<i64>(c)
                .await?;
            let problems = problems::table.count().get_result::<i64>(c).await?;
            let error_problems = problems::table
                .filter(problems::severity.eq("error"))
                .count()
                .get_result::<i64>(c)
                .await?;
            let sync_runs = super::schema::sync_runs::table.count().get_result::<i64>(c).await?;
            Ok::<_, diesel::result::Error>(CatalogueCounts {
                available_versions,
                unavailable_versions: versions - available_versions,
                error_problems,
                warning_problems: problems - error_problems,
                sync_runs,
            })
        })?;
        Ok(counts)
    }
}

/// `(name, uuid)` rows as a map; a UUID that does not parse means the database was edited
/// by hand.
fn parse_uuids(rows: Vec<(String, String)>) -> Result<HashMap<String, Uuid>, StoreError> {
    rows.into_iter()
        .map(|(name, uuid)| match Uuid::parse_str(&uuid) {
            Ok(uuid) => Ok((name, uuid)),
            Err(e) => Err(StoreError::Corrupt(format!("uuid of task `{name}`: {e}"))),
        })
        .collect()
}

/// A `problems` row as read.
#[derive(Queryable, Selectable)]
#[diesel(table_name = problems)]
struct ProblemRecord {
    source: String,
    locator: String,
    severity: String,
    code: String,
    message: String,
    file: Option<String>,
    pointer: Option<String>,
    line: Option<i32>,
    col: Option<i32>,
    fingerprint: Option<String>,
}
