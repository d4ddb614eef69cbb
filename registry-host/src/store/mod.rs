//! The catalogue in a database: SQLite (embedded default) or PostgreSQL, one code path.
//!
//! Both backends are diesel-async connections: `SyncConnectionWrapper<SqliteConnection>`
//! (bundled SQLite) and `AsyncPgConnection` (pure Rust, no libpq, no OpenSSL). Every query
//! is written once and compiled for both by the `with_conn!` macro; the embedded migrations use
//! SQL both understand.
//!
//! Error policy: a database error is a [`StoreError`] with the context a user needs (the
//! URL, with any password hidden); nothing here panics on bad data in the database, it
//! reports it as [`StoreError::Corrupt`].
//!
//! SQLite runs in WAL mode with a busy timeout, so `list` and `show` read while another
//! process (`watch`, `serve`) writes, and writers take the lock up front
//! (`BEGIN IMMEDIATE`) so that two writers queue instead of failing.

use diesel::SqliteConnection;
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use futures::future::BoxFuture;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Runs `$body` with `$c` bound to the backend's connection; the body is compiled once per
/// backend, so it is one code path with each backend's own types.
macro_rules! with_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::store::Connection::Sqlite($c) => $body,
            $crate::store::Connection::Postgres(conn) => {
                let $c = &mut **conn;
                $body
            }
        }
    };
}

/// Runs `$body` in one transaction (`BEGIN IMMEDIATE` on SQLite); an error rolls it back.
macro_rules! in_transaction {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::store::Connection::Sqlite(conn) => conn.immediate_transaction(async |$c| $body).await,
            $crate::store::Connection::Postgres(conn) => {
                diesel_async::AsyncConnection::transaction(&mut **conn, async |$c| $body).await
            }
        }
    };
}

mod lock;
mod pool;
mod read;
pub(crate) mod schema;
mod staging;
mod status;
mod unnest;
mod write;

pub use pool::{PooledStore, ReaderManager, StorePool, reader_pool};
pub use read::{
    CatalogueCounts, ConflictRow, HistoryRow, ListPage, OriginRef, ProblemKey, ProblemRow, ProblemsPage,
    ReplacedContent, StoreSnapshot, StoredTask, VersionRow, VersionSignature, VersionSummary,
};
pub use staging::StagedContents;
pub use status::{
    PROCESS_REPORT_INTERVAL, PROCESS_STALE_AFTER, ProcessIdentity, ProcessRole, ProcessStatus, RunStatus, ScanStatus,
    SourceReport, SourceStatus, Status,
};
pub use write::{EVENT_RETENTION, RunRecord};

/// The catalogue's schema, embedded: applied by [`Store::open`].
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// How long a SQLite writer waits for another one before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;

/// Why the catalogue could not be opened, read or written.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Neither `sqlite://` nor `postgres://`.
    #[error("unsupported database URL `{0}`: expected sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// The database cannot be reached or opened.
    #[error("cannot open database {url}: {reason}")]
    Open {
        /// The database, password hidden.
        url: String,
        /// What the driver said.
        reason: String,
    },
    /// The schema could not be brought up to date.
    #[error("cannot migrate database {url}: {reason}")]
    Migrate {
        /// The database, password hidden.
        url: String,
        /// What failed.
        reason: String,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    /// The disk (or the database's quota) is full. The transaction was rolled back: the
    /// catalogue is as it was before the run.
    #[error(
        "the disk holding the catalogue {url} is full: nothing of this run was written, the catalogue is intact ({detail})"
    )]
    DiskFull {
        /// The database, password hidden.
        url: String,
        /// What the database said.
        detail: String,
    },
    /// A read-only catalogue that has migrations this taskreg would apply.
    #[error(
        "the catalogue {url} is read-only and older than this taskreg ({pending} migration(s) to apply): open it once with write access"
    )]
    ReadOnlyOutdated {
        /// The database, password hidden.
        url: String,
        /// Migrations this taskreg would apply.
        pending: usize,
    },
    /// The catalogue's write or migration lock could not be taken.
    #[error("cannot lock the catalogue {url}: {reason}")]
    Lock {
        /// The database, password hidden.
        url: String,
        /// What failed.
        reason: String,
    },
    /// A run's version holds no contents and none were staged on this connection: a
    /// planned run must be applied with the store that planned it.
    #[error(
        "the contents of {name} {version} were not staged on this connection: apply a planned run with the store that planned it"
    )]
    ContentsNotStaged {
        /// The task's name.
        name: String,
        /// Its version.
        version: String,
    },
    /// A stored value this taskreg cannot read.
    #[error("the catalogue holds a malformed value: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// A unique key of the catalogue refused a write: another process stored the same
    /// name (or UUID) after this run read the catalogue. The write was rolled back whole.
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            StoreError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

/// Where the catalogue lives, parsed from a database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL, as given.
    Postgres(String),
}

impl DatabaseUrl {
    /// `sqlite://PATH` (`sqlite:///abs/path` for an absolute one, `sqlite:PATH` too) or
    /// `postgres://…` / `postgresql://…`. A relative SQLite path is taken relative to `base`.
    pub fn parse(url: &str, base: &Path) -> Result<Self, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(StoreError::UnsupportedUrl(url.to_owned()));
            }
            return Ok(DatabaseUrl::Sqlite(base.join(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(url.to_owned()));
        }
        Err(StoreError::UnsupportedUrl(redact(url)))
    }

    /// The URL for messages, with any password replaced by `***`.
    pub fn display(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => redact(url),
        }
    }
}

/// Hides every password of a database URL: the userinfo's (`user:pa@ss@host` included:
/// the URL parser takes the last `@`) and a `password=` query parameter. A URL that does
/// not parse is hidden whole after its scheme, since where its password is cannot be told.
fn redact(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return match url.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://***"),
            None => "***".to_owned(),
        };
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query_pairs().any(|(k, _)| k.eq_ignore_ascii_case("password")) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let hidden = k.eq_ignore_ascii_case("password");
                (k.into_owned(), if hidden { "***".to_owned() } else { v.into_owned() })
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    // `***` is kept readable rather than percent-encoded.
    parsed.to_string().replace("%2A%2A%2A", "***")
}

pub(crate) enum Connection {
    Sqlite(SyncConnectionWrapper<SqliteConnection>),
    // Boxed: the PostgreSQL connection is five times the size of the SQLite one.
    Postgres(Box<AsyncPgConnection>),
}

/// An open, migrated catalogue.
pub struct Store {
    conn: Connection,
    url: String,
    /// The SQLite file, to tell a full disk from other write failures.
    sqlite_path: Option<PathBuf>,
    /// What a SQLite catalogue's writers lock (see `lock`); `None` when read-only.
    lock_file: Option<std::fs::File>,
}

impl Store {
    fn opened(conn: Connection, shown: String, url: &DatabaseUrl, lock_file: Option<std::fs::File>) -> Store {
        Store {
            conn,
            url: shown,
            lock_file,
            sqlite_path: match url {
                DatabaseUrl::Sqlite(path) => Some(path.clone()),
                DatabaseUrl::Postgres(_) => None,
            },
        }
    }
}

/// Whether a database's refusal means it cannot be written (a read-only file, folder or
/// mount; a PostgreSQL standby or a read-only transaction).
fn is_read_only_refusal(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    reason.contains("readonly") || reason.contains("read-only") || reason.contains("read only")
}

impl Store {
    /// Opens the catalogue for commands that only read (`list`, `show`, `status`, `serve`
    /// …): as [`Store::open`] when it can be written, else read-only, provided it needs no
    /// migration. A read-only catalogue (a mounted snapshot, a file of another user, a
    /// standby) is still listable.
    pub async fn open_for_reading(url: &DatabaseUrl) -> Result<Store, StoreError> {
        let error = match Store::open(url).await {
            Ok(store) => return Ok(store),
            Err(error) => error,
        };
        // SQLite says "readonly" for a file it may not write and "unable to open" on a
        // read-only mount (it cannot make its journal files): an existing file is worth a
        // read-only attempt either way. PostgreSQL names a standby "read-only".
        let worth_a_try = match (&error, url) {
            (StoreError::Open { .. } | StoreError::Migrate { .. }, DatabaseUrl::Sqlite(path)) => path.is_file(),
            (StoreError::Open { reason, .. } | StoreError::Migrate { reason, .. }, DatabaseUrl::Postgres(_)) => {
                is_read_only_refusal(reason)
            }
            _ => false,
        };
        if !worth_a_try {
            return Err(error);
        }
        tracing::debug!("the catalogue cannot be opened for writing ({error}); reading it read-only");
        match Store::open_read_only(url).await {
            Ok(store) => Ok(store),
            Err(outdated @ StoreError::ReadOnlyOutdated { .. }) => Err(outdated),
            Err(read_only) => {
                tracing::debug!("nor read-only: {read_only}");
                Err(error)
            }
        }
    }

    /// Opens a read-only connection to a catalogue that needs no migration: what `serve`'s
    /// pool holds. It never writes, so it never waits for a writer's lock.
    pub async fn open_read_only(url: &DatabaseUrl) -> Result<Store, StoreError> {
        let shown = url.display();
        let open_error = |reason: String| StoreError::Open {
            url: shown.clone(),
            reason,
        };
        let migrate_error = |reason: String| StoreError::Migrate {
            url: shown.clone(),
            reason,
        };
        let (conn, pending) = match url {
            DatabaseUrl::Sqlite(path) => {
                let absolute = std::path::absolute(path).map_err(|e| open_error(e.to_string()))?;
                let uri = url::Url::from_file_path(&absolute)
                    .map_err(|()| open_error("the path cannot be a file URI".into()))?;
                let read_only = |parameters: &'static str| {
                    let uri = format!("{uri}?{parameters}");
                    async move {
                        let mut conn = SyncConnectionWrapper::<SqliteConnection>::establish(&uri)
                            .await
                            .map_err(|e| e.to_string())?;
                        conn.batch_execute(&format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};"))
                            .await
                            .map_err(|e| e.to_string())?;
                        pending_migrations(Connection::Sqlite(conn)).await
                    }
                };
                match read_only("mode=ro").await {
                    Ok(opened) => opened,
                    // A WAL database whose folder cannot be written cannot get its shared-memory
                    // file. With no write-ahead log left over (every writer checkpointed and
                    // closed), the file alone is the catalogue: read it as immutable.
                    Err(_) if !has_pending_wal(&absolute) => read_only("immutable=1").await.map_err(migrate_error)?,
                    Err(reason) => return Err(migrate_error(reason)),
                }
            }
            DatabaseUrl::Postgres(text) => {
                let conn = AsyncPgConnection::establish(text)
                    .await
                    .map_err(|e| open_error(e.to_string()))?;
                pending_migrations(Connection::Postgres(Box::new(conn)))
                    .await
                    .map_err(migrate_error)?
            }
        };
        if pending > 0 {
            return Err(StoreError::ReadOnlyOutdated { url: shown, pending });
        }
        Ok(Store::opened(conn, shown, url, None))
    }

    /// Opens the database and runs pending migrations. Needs a multi-threaded tokio
    /// runtime (the migration harness blocks in place).
    pub async fn open(url: &DatabaseUrl) -> Result<Store, StoreError> {
        let shown = url.display();
        let open_error = |reason: String| StoreError::Open {
            url: shown.clone(),
            reason,
        };
        let mut lock_file = None;
        let conn = match url {
            DatabaseUrl::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
                    && !parent.is_dir()
                {
                    return Err(open_error(format!("folder {} does not exist", parent.display())));
                }
                let path_text = path.to_str().ok_or_else(|| open_error("path is not UTF-8".into()))?;
                // SQLite's own words for a folder it cannot write in are "unable to open".
                let explained = |e: String| match path.parent() {
                    Some(folder) if !is_writable(folder) => open_error(format!(
                        "{e} (the folder {} cannot be written: a writer needs it for the catalogue's journal)",
                        folder.display()
                    )),
                    _ => open_error(e),
                };
                // Locked before the first statement: turning a new file to WAL mode is refused
                // outright (no busy wait) while another process does the same.
                let file = lock::open_lock_file(path).map_err(|e| explained(e.to_string()))?;
                lock::lock_file(&file, lock::LockPurpose::Migrate, &shown)
                    .await
                    .map_err(|e| explained(e.to_string()))?;
                lock_file = Some(file);
                let mut conn = SyncConnectionWrapper::<SqliteConnection>::establish(path_text)
                    .await
                    .map_err(|e| explained(e.to_string()))?;
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
                ))
                .await
                .map_err(|e| explained(e.to_string()))?;
                Connection::Sqlite(conn)
            }
            DatabaseUrl::Postgres(text) => {
                let mut conn = AsyncPgConnection::establish(text)
                    .await
                    .map_err(|e| open_error(e.to_string()))?;
                lock::lock_advisory(&mut conn, lock::LockPurpose::Migrate, &shown)
                    .await
                    .map_err(|e| open_error(e.to_string()))?;
                Connection::Postgres(Box::new(conn))
            }
        };
        // Processes starting at once on an empty catalogue queue on the migration lock
        // (taken above) instead of creating the same tables twice; the last ones find
        // nothing to do.
        let migrate_error = |reason: String| StoreError::Migrate {
            url: shown.clone(),
            reason,
        };
        // A failed migration drops the connection, and the lock with it.
        let mut conn = migrate(conn).map_err(migrate_error)?;
        lock::unlock(&mut conn, lock_file.as_ref(), lock::LockPurpose::Migrate).await;
        Ok(Store::opened(conn, shown, url, lock_file))
    }

    /// Names a failed write for what it is. A full disk surfaces oddly: SQLite rolls the
    /// transaction back itself on `SQLITE_FULL`, and diesel's own rollback then reports
    /// "outside of a transaction", so the free space of the file's folder is checked too.
    /// The texts are matched because diesel (2.3) keeps no SQLite result code: it maps
    /// every code but the constraint ones to `DatabaseErrorKind::Unknown` and a message.
    pub(crate) fn write_error(&self, error: diesel::result::Error) -> StoreError {
        let detail = error.to_string();
        let lower = detail.to_ascii_lowercase();
        let says_full =
            lower.contains("disk is full") || lower.contains("no space left") || lower.contains("disk quota");
        // SQLite's own rollback leaves none for diesel's: "cannot rollback - no
        // transaction is active" (a database error) or `NotInTransaction`, by where it failed.
        let rollback_failed = matches!(
            error,
            diesel::result::Error::NotInTransaction
                | diesel::result::Error::RollbackErrorOnCommit { .. }
                | diesel::result::Error::RollbackTransaction
        ) || lower.contains("no transaction is active");
        let looks_full = says_full || rollback_failed && self.sqlite_path.as_deref().is_some_and(disk_is_full);
        if looks_full {
            StoreError::DiskFull {
                url: self.url.clone(),
                detail,
            }
        } else {
            StoreError::Query(error)
        }
    }

    /// The database URL, password hidden.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.conn {
            Connection::Sqlite(_) => "sqlite",
            Connection::Postgres(_) => "postgres",
        }
    }
}

/// Whether this process may create files in `folder` (a read-only mount, another user's
/// folder: no).
fn is_writable(folder: &Path) -> bool {
    let folder = if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    };
    #[cfg(unix)]
    {
        rustix::fs::access(folder, rustix::fs::Access::WRITE_OK).is_ok()
    }
    #[cfg(not(unix))]
    {
        !std::fs::metadata(folder).is_ok_and(|m| m.permissions().readonly())
    }
}

/// Whether a SQLite database has a write-ahead log with content not yet in the file.
fn has_pending_wal(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal)).is_ok_and(|m| m.len() > 0)
}

/// A row of diesel's migration table.
#[derive(diesel::QueryableByName)]
struct AppliedMigration {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

/// How many migrations the database lacks, read without writing anything (diesel's
/// harness would create its table first, which a read-only database refuses).
async fn pending_migrations(mut conn: Connection) -> Result<(Connection, usize), String> {
    let pending = count_pending_migrations(&mut conn).await?;
    Ok((conn, pending))
}

async fn count_pending_migrations(conn: &mut Connection) -> Result<usize, String> {
    use diesel::migration::MigrationSource;
    // The versions only: the migrations themselves are not `Send` and cannot be held
    // across the query below.
    let known: Vec<String> = MigrationSource::<diesel::sqlite::Sqlite>::migrations(&MIGRATIONS)
        .map_err(|e| e.to_string())?
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    let query = "SELECT version FROM __diesel_schema_migrations";
    let applied: Vec<AppliedMigration> =
        with_conn!(conn, |c| diesel_async::RunQueryDsl::load(diesel::sql_query(query), c)
            .await)
        .map_err(|e| format!("cannot read which migrations were applied: {e}"))?;
    let applied: std::collections::HashSet<String> = applied.into_iter().map(|m| m.version).collect();
    Ok(known.iter().filter(|version| !applied.contains(*version)).count())
}

impl Store {
    /// How many of this taskreg's migrations the catalogue lacks (0: it is ready for it).
    pub async fn pending_migrations(&mut self) -> Result<usize, StoreError> {
        count_pending_migrations(&mut self.conn)
            .await
            .map_err(|reason| StoreError::Migrate {
                url: self.url.clone(),
                reason,
            })
    }
}

fn migrate(conn: Connection) -> Result<Connection, String> {
    let error = |e: Box<dyn std::error::Error + Send + Sync>| e.to_string();
    Ok(match conn {
        Connection::Sqlite(c) => {
            let mut harness = AsyncMigrationHarness::new(c);
            harness.run_pending_migrations(MIGRATIONS).map_err(error)?;
            Connection::Sqlite(harness.into_inner())
        }
        Connection::Postgres(c) => {
            let mut harness = AsyncMigrationHarness::new(*c);
            harness.run_pending_migrations(MIGRATIONS).map_err(error)?;
            Connection::Postgres(Box::new(harness.into_inner()))
        }
    })
}

/// A multi-row INSERT of owned rows. diesel builds SQLite's multi-row INSERT only through
/// the sync connection, so SQLite runs it on the blocking pool with sync diesel; PostgreSQL
/// goes through diesel-async with one array per column (`unnest.rs`). Everything else is
/// the one shared code path.
pub(crate) trait InsertMany<T, R> {
    fn insert_many(&mut self, table: T, rows: Vec<R>) -> BoxFuture<'_, diesel::QueryResult<usize>>;
}

impl<T, R> InsertMany<T, R> for SyncConnectionWrapper<SqliteConnection>
where
    T: diesel::Table + Send + 'static,
    R: Send + 'static,
    Vec<R>: diesel::Insertable<T>,
    diesel::query_builder::InsertStatement<T, <Vec<R> as diesel::Insertable<T>>::Values>:
        diesel::query_dsl::methods::ExecuteDsl<SqliteConnection>,
{
    fn insert_many(&mut self, table: T, rows: Vec<R>) -> BoxFuture<'_, diesel::QueryResult<usize>> {
        self.spawn_blocking(move |conn| diesel::RunQueryDsl::execute(diesel::insert_into(table).values(rows), conn))
    }
}

impl<T, R> InsertMany<T, R> for AsyncPgConnection
where
    R: unnest::UnnestRows,
{
    fn insert_many(&mut self, _table: T, rows: Vec<R>) -> BoxFuture<'_, diesel::QueryResult<usize>> {
        R::insert_unnest(rows, self)
    }
}

/// Loads every row of a query. SQLite decodes rows directly on the blocking pool with sync
/// diesel, which reads a large snapshot about twice as fast as going through
/// `SyncConnectionWrapper`'s owned rows; PostgreSQL goes through diesel-async.
pub(crate) trait LoadAll<Q, U> {
    fn load_all(&mut self, query: Q) -> BoxFuture<'_, diesel::QueryResult<Vec<U>>>;
}

impl<Q, U> LoadAll<Q, U> for SyncConnectionWrapper<SqliteConnection>
where
    Q: diesel::query_dsl::LoadQuery<'static, SqliteConnection, U> + Send + 'static,
    U: Send + 'static,
{
    fn load_all(&mut self, query: Q) -> BoxFuture<'_, diesel::QueryResult<Vec<U>>> {
        self.spawn_blocking(move |conn| diesel::RunQueryDsl::load(query, conn))
    }
}

impl<Q, U> LoadAll<Q, U> for AsyncPgConnection
where
    Q: diesel_async::methods::LoadQuery<'static, AsyncPgConnection, U> + Send + 'static,
    U: Send + 'static,
{
    fn load_all(&mut self, query: Q) -> BoxFuture<'_, diesel::QueryResult<Vec<U>>> {
        Box::pin(diesel_async::RunQueryDsl::load(query, self))
    }
}

/// `text` as every backend can store it: PostgreSQL refuses a NUL byte in `TEXT`, so a
/// message quoting one (a task name, a file's line) keeps it visible as `\0` instead of
/// failing the whole run. Task content never reaches here with a NUL (the core refuses it).
pub(crate) fn storable(text: &str) -> String {
    text.replace('\0', "\\0")
}

/// Whether the filesystem holding `path` has (next to) no room left for a writer.
fn disk_is_full(path: &Path) -> bool {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    #[cfg(unix)]
    {
        // Less than 64 KiB free: SQLite could not have finished the transaction.
        rustix::fs::statvfs(folder).is_ok_and(|stat| stat.f_bavail.saturating_mul(stat.f_frsize) < 64 * 1024)
    }
    #[cfg(not(unix))]
    {
        let _ = folder;
        false
    }
}

/// Milliseconds since the Unix epoch, the unit of every time column.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sqlite_and_postgres_urls_and_refuses_others() {
        let base = Path::new("/work");
        assert_eq!(
            DatabaseUrl::parse("sqlite://taskreg.db", base).unwrap(),
            DatabaseUrl::Sqlite("/work/taskreg.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db", base).unwrap(),
            DatabaseUrl::Sqlite("/tmp/x.db".into())
        );
        assert!(matches!(
            DatabaseUrl::parse("postgres://u@h/db", base).unwrap(),
            DatabaseUrl::Postgres(_)
        ));
        assert!(
            matches!(DatabaseUrl::parse("mysql://u:secret@h/db", base), Err(StoreError::UnsupportedUrl(u)) if !u.contains("secret"))
        );
    }

    #[test]
    fn hides_passwords_in_urls_shown_to_people() {
        assert_eq!(redact("postgres://me:hunter2@db:5432/x"), "postgres://me:***@db:5432/x");
        assert_eq!(redact("postgres://me@db/x"), "postgres://me@db/x");
        // Issue 10: `u:pa@ss@h` showed `u:***@ss@h`, and `?password=` was not hidden.
        assert_eq!(redact("postgres://u:pa@ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(
            redact("postgres://u@h/db?sslmode=disable&password=hunter2"),
            "postgres://u@h/db?sslmode=disable&password=***"
        );
        assert_eq!(
            redact("postgres://u@h/db?PASSWORD=hunter2"),
            "postgres://u@h/db?PASSWORD=***"
        );
        assert!(!redact("postgres://u:hunter2@[::1/db").contains("hunter2"));
    }
}
