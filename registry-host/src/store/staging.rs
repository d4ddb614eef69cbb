//! Task contents staged in the database while a large run loads, so that the run's memory
//! is bounded by its budget, not by the tree.
//!
//! A run keeps the contents of the tasks it loads in memory up to a budget
//! ([`SyncOptions::contents_in_memory`](crate::sync::SyncOptions)); beyond it, each loaded
//! task's contents go, in batches, to a temporary table of the run's own connection, and
//! the run keeps only the task's identity. Applying the run copies the contents of the
//! versions it adds from that table into the catalogue, in the run's one transaction.
//!
//! A temporary table is private to its connection and not part of the catalogue: writing
//! it takes no catalogue lock (other hosts keep writing while this one loads), and a crash
//! leaves nothing behind.

use super::{InsertMany, Store, StoreError};
use diesel::prelude::*;
use diesel_async::SimpleAsyncConnection;
use registry_core::{Digest, TaskDefinition};
use std::collections::HashMap;

diesel::table! {
    /// The staged contents of one run (a temporary table of the run's connection).
    staged_versions (id) {
        id -> BigInt,
        name -> Text,
        version -> Text,
        digest -> Text,
        uuid -> Text,
        metadata -> Text,
        script -> Text,
        input_schema -> Nullable<Text>,
        output_schema -> Nullable<Text>,
        tests -> Text,
        published_files -> Nullable<Text>,
        signature -> Nullable<Text>,
        signer_key_id -> Nullable<Text>,
        signature_verified_at -> Nullable<BigInt>,
    }
}

/// Rows per staging insert (14 columns: far below both backends' bind limits).
const STAGE_CHUNK: usize = 500;

const CREATE_TABLE: &str = "CREATE TEMPORARY TABLE staged_versions (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    digest TEXT NOT NULL,
    uuid TEXT NOT NULL,
    metadata TEXT NOT NULL,
    script TEXT NOT NULL,
    input_schema TEXT,
    output_schema TEXT,
    tests TEXT NOT NULL,
    published_files TEXT,
    signature TEXT,
    signer_key_id TEXT,
    signature_verified_at BIGINT
)";

/// The contents one run has staged, by task name and digest (a legacy task's name comes
/// from its folder, so the digest alone does not make the row).
#[derive(Debug, Default)]
pub struct StagedContents {
    ids: HashMap<(String, Digest), i64>,
    /// The connection holds a staging table of this run.
    created: bool,
}

impl StagedContents {
    /// Whether anything was staged.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Tasks staged.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// The staged row of `task`, when its contents were staged.
    pub(crate) fn id_of(&self, task: &TaskDefinition) -> Option<i64> {
        // Building the key allocates; most runs stage nothing.
        if self.ids.is_empty() {
            return None;
        }
        self.ids.get(&(task.name.clone(), task.digest)).copied()
    }
}

super::unnest::insertable_rows! {
    struct StagedRow for staged_versions {
        id: i64,
        name: String,
        version: String,
        digest: String,
        uuid: String,
        metadata: String,
        script: String,
        input_schema: Option<String>,
        output_schema: Option<String>,
        tests: String,
        published_files: Option<String>,
        signature: Option<String>,
        signer_key_id: Option<String>,
        signature_verified_at: Option<i64>,
    }
}

/// The contents of one version as the catalogue stores them.
#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = staged_versions)]
pub(crate) struct VersionContents {
    pub digest: String,
    pub uuid: String,
    pub metadata: String,
    pub script: String,
    pub input_schema: Option<String>,
    pub output_schema: Option<String>,
    pub tests: String,
    pub published_files: Option<String>,
    /// The signature's text, when the task has one.
    pub signature: Option<String>,
    /// The trusted key it verified against.
    pub signer_key_id: Option<String>,
    /// When it verified (`now` of the run that loaded it).
    pub signature_verified_at: Option<i64>,
}

impl VersionContents {
    /// The contents of `task`, whose signature (if any) was judged at `now`.
    pub(crate) fn of(task: &TaskDefinition, now: i64) -> Self {
        let signer = task.signature.as_ref().and_then(|s| s.signer());
        VersionContents {
            digest: task.digest.to_string(),
            uuid: task.uuid.to_string(),
            metadata: task.metadata_json().to_owned(),
            script: task.script().to_owned(),
            input_schema: task.input_schema().map(str::to_owned),
            output_schema: task.output_schema().map(str::to_owned),
            tests: task.tests_json(),
            published_files: task.published_files_json(),
            signature: task.signature.as_ref().map(|s| s.text.clone()),
            signer_key_id: signer.map(|k| k.to_string()),
            signature_verified_at: signer.map(|_| now),
        }
    }
}

impl Store {
    /// Stages the contents of `tasks` for this run (see the module's documentation); the
    /// first batch of a run starts the connection's staging table afresh.
    pub async fn stage_contents(
        &mut self,
        staged: &mut StagedContents,
        tasks: &[&TaskDefinition],
    ) -> Result<(), StoreError> {
        if !staged.created {
            self.drop_staged_contents().await;
            with_conn!(&mut self.conn, |c| c.batch_execute(CREATE_TABLE).await)?;
            staged.created = true;
        }
        let now = super::now_millis();
        for chunk in tasks.chunks(STAGE_CHUNK) {
            let mut rows = Vec::with_capacity(chunk.len());
            for task in chunk {
                let key = (task.name.clone(), task.digest);
                if staged.ids.contains_key(&key) {
                    continue; // the same content offered twice is staged once
                }
                let id = staged.ids.len() as i64;
                staged.ids.insert(key, id);
                let contents = VersionContents::of(task, now);
                rows.push(StagedRow {
                    id,
                    name: task.name.clone(),
                    version: task.version.to_string(),
                    digest: contents.digest,
                    uuid: contents.uuid,
                    metadata: contents.metadata,
                    script: contents.script,
                    input_schema: contents.input_schema,
                    output_schema: contents.output_schema,
                    tests: contents.tests,
                    published_files: contents.published_files,
                    signature: contents.signature,
                    signer_key_id: contents.signer_key_id,
                    signature_verified_at: contents.signature_verified_at,
                });
            }
            if !rows.is_empty() {
                with_conn!(&mut self.conn, |c| c.insert_many(staged_versions::table, rows).await)?;
            }
        }
        Ok(())
    }

    /// Drops the connection's staging table, if any: after a run is applied (or given up),
    /// so that its contents do not outlive it. Failing only costs temporary space.
    pub async fn drop_staged_contents(&mut self) {
        // Qualified, so that nothing but a temporary table can be dropped.
        let dropped = match &mut self.conn {
            super::Connection::Sqlite(c) => c.batch_execute("DROP TABLE IF EXISTS temp.staged_versions").await,
            super::Connection::Postgres(c) => c.batch_execute("DROP TABLE IF EXISTS pg_temp.staged_versions").await,
        };
        if let Err(e) = dropped {
            tracing::debug!("cannot drop the staging table: {e}");
        }
    }
}
