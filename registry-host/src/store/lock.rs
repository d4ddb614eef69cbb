//! One writer at a time per catalogue, across every process and host that shares it.
//!
//! A sync plans outside any lock (scanning, loading and checking are where its time goes,
//! and they run in parallel on every host); it takes the catalogue's write lock only to
//! check that the catalogue is still the one it planned against (re-planning against what
//! is stored now when it is not), apply, and record its sources' status. Migrations take a
//! lock of their own, so that processes starting at once on an empty database queue
//! instead of creating the same tables twice.
//!
//! - PostgreSQL: session-level advisory locks keyed by the catalogue's schema
//!   (`pg_advisory_lock(key, hashtext(current_schema()))`), so catalogues in different
//!   schemas of one database do not wait for each other. The server releases them when
//!   the connection ends, a crashed process included.
//! - SQLite: an exclusive lock on `<catalogue>-lock` beside the file (`flock` on Unix,
//!   `LockFileEx` on Windows), which the operating system releases when the process ends.
//!   SQLite's own `BEGIN IMMEDIATE` and busy timeout still guard every transaction.
//!
//! Both are waited for without a deadline (a holder applies one run and lets go); a wait
//! that does not end at once is said in the log, so an operator sees who waits for what.

use super::{Connection, Store, StoreError};
use diesel::sql_types::Integer;
use diesel_async::RunQueryDsl;
use std::fs::File;
use std::path::{Path, PathBuf};

/// What a lock serialises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockPurpose {
    /// Applying a run (and recording its sources' status).
    Write,
    /// Bringing the schema up to date.
    Migrate,
}

impl LockPurpose {
    /// The advisory lock's first key: "tr" and a number, shared by every taskreg.
    fn key(self) -> i32 {
        match self {
            LockPurpose::Write => 0x7472_0001,
            LockPurpose::Migrate => 0x7472_0002,
        }
    }

    fn doing(self) -> &'static str {
        match self {
            LockPurpose::Write => "writing",
            LockPurpose::Migrate => "migrating",
        }
    }
}

/// The file a SQLite catalogue's writers lock: `<catalogue>-lock`, beside its `-wal`.
pub(crate) fn sqlite_lock_path(catalogue: &Path) -> PathBuf {
    let mut name = catalogue.as_os_str().to_owned();
    name.push("-lock");
    PathBuf::from(name)
}

/// Opens (creating it if need be) the lock file of a SQLite catalogue.
pub(crate) fn open_lock_file(catalogue: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(sqlite_lock_path(catalogue))
}

/// Takes the exclusive lock on `file`, waiting on the blocking pool when another process
/// holds it.
pub(crate) async fn lock_file(file: &File, purpose: LockPurpose, catalogue: &str) -> std::io::Result<()> {
    match file.try_lock() {
        Ok(()) => return Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    tracing::info!(
        "another process is {} the catalogue {catalogue}; waiting for it",
        purpose.doing()
    );
    // A second handle on the same open file: the lock belongs to the open file, not the handle.
    let handle = file.try_clone()?;
    tokio::task::spawn_blocking(move || handle.lock())
        .await
        .map_err(std::io::Error::other)?
}

/// Takes the advisory lock for `purpose` on a PostgreSQL connection.
pub(crate) async fn lock_advisory(
    conn: &mut diesel_async::AsyncPgConnection,
    purpose: LockPurpose,
    catalogue: &str,
) -> diesel::QueryResult<()> {
    #[derive(diesel::QueryableByName)]
    struct Taken {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        taken: bool,
    }
    let tried: Taken = diesel::sql_query("SELECT pg_try_advisory_lock($1, hashtext(current_schema())) AS taken")
        .bind::<Integer, _>(purpose.key())
        .get_result(conn)
        .await?;
    if tried.taken {
        return Ok(());
    }
    tracing::info!(
        "another process is {} the catalogue {catalogue}; waiting for it",
        purpose.doing()
    );
    diesel::sql_query("SELECT pg_advisory_lock($1, hashtext(current_schema()))")
        .bind::<Integer, _>(purpose.key())
        .execute(conn)
        .await
        .map(drop)
}

async fn unlock_advisory(conn: &mut diesel_async::AsyncPgConnection, purpose: LockPurpose) -> diesel::QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_unlock($1, hashtext(current_schema()))")
        .bind::<Integer, _>(purpose.key())
        .execute(conn)
        .await
        .map(drop)
}

/// Takes `purpose`'s lock for `conn` (a SQLite catalogue locks `file`).
pub(crate) async fn lock(
    conn: &mut Connection,
    file: Option<&File>,
    purpose: LockPurpose,
    catalogue: &str,
) -> Result<(), String> {
    match conn {
        Connection::Sqlite(_) => match file {
            Some(file) => lock_file(file, purpose, catalogue)
                .await
                .map_err(|e| format!("cannot lock the catalogue's lock file: {e}")),
            None => Ok(()),
        },
        Connection::Postgres(conn) => lock_advisory(conn, purpose, catalogue).await.map_err(|e| e.to_string()),
    }
}

/// Lets `purpose`'s lock go. A failure is only logged: the lock goes with the connection
/// (PostgreSQL) or the process (SQLite) anyway.
pub(crate) async fn unlock(conn: &mut Connection, file: Option<&File>, purpose: LockPurpose) {
    let result = match conn {
        Connection::Sqlite(_) => file.map_or(Ok(()), |f| f.unlock().map_err(|e| e.to_string())),
        Connection::Postgres(conn) => unlock_advisory(conn, purpose).await.map_err(|e| e.to_string()),
    };
    if let Err(e) = result {
        tracing::warn!("cannot release the catalogue's {} lock: {e}", purpose.doing());
    }
}

impl Store {
    /// Takes the catalogue's write lock: until [`Store::unlock_writes`], no other process
    /// applies a run to this catalogue.
    pub async fn lock_writes(&mut self) -> Result<(), StoreError> {
        lock(&mut self.conn, self.lock_file.as_ref(), LockPurpose::Write, &self.url)
            .await
            .map_err(|reason| StoreError::Lock {
                url: self.url.clone(),
                reason,
            })
    }

    /// Lets the write lock go.
    pub async fn unlock_writes(&mut self) {
        unlock(&mut self.conn, self.lock_file.as_ref(), LockPurpose::Write).await;
    }
}
