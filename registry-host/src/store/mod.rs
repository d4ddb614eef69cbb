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

mod read;
pub mod schema;
mod status;
mod write;

pub use read::{
    CatalogueCounts, ConflictRow, HistoryRow, OriginRef, ProblemRow, StoreSnapshot, StoredTask, VersionRow,
    VersionSummary,
};
pub use status::{ScanOutcome, SourceStatus, Status, WatcherStatus};
pub use write::{RunRecord, SourceRow};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// How long a SQLite writer waits for another one before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 10_000;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("unsupported database URL `{0}`: expected sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    #[error("cannot open database {url}: {reason}")]
    Open { url: String, reason: String },
    #[error("cannot migrate database {url}: {reason}")]
    Migrate { url: String, reason: String },
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
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
    Sqlite(PathBuf),
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

/// Hides the password of `scheme://user:password@host`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
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
}

impl Store {
    /// Opens the database and runs pending migrations. Needs a multi-threaded tokio
    /// runtime (the migration harness blocks in place).
    pub async fn open(url: &DatabaseUrl) -> Result<Store, StoreError> {
        let shown = url.display();
        let open_error = |reason: String| StoreError::Open {
            url: shown.clone(),
            reason,
        };
        let conn = match url {
            DatabaseUrl::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
                    && !parent.is_dir()
                {
                    return Err(open_error(format!("folder {} does not exist", parent.display())));
                }
                let path_text = path.to_str().ok_or_else(|| open_error("path is not UTF-8".into()))?;
                let mut conn = SyncConnectionWrapper::<SqliteConnection>::establish(path_text)
                    .await
                    .map_err(|e| open_error(e.to_string()))?;
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
                ))
                .await
                .map_err(|e| open_error(e.to_string()))?;
                Connection::Sqlite(conn)
            }
            DatabaseUrl::Postgres(text) => {
                let conn = AsyncPgConnection::establish(text)
                    .await
                    .map_err(|e| open_error(e.to_string()))?;
                Connection::Postgres(Box::new(conn))
            }
        };
        let conn = migrate(conn).map_err(|reason| StoreError::Migrate {
            url: shown.clone(),
            reason,
        })?;
        Ok(Store { conn, url: shown })
    }

    /// The database URL, password hidden.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> &'static str {
        match self.conn {
            Connection::Sqlite(_) => "sqlite",
            Connection::Postgres(_) => "postgres",
        }
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
/// goes through diesel-async. Everything else is the one shared code path.
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
    T: diesel::Table + Send + 'static,
    R: Send + 'static,
    Vec<R>: diesel::Insertable<T>,
    diesel::query_builder::InsertStatement<T, <Vec<R> as diesel::Insertable<T>>::Values>:
        diesel_async::methods::ExecuteDsl<AsyncPgConnection> + Send + 'static,
{
    fn insert_many(&mut self, table: T, rows: Vec<R>) -> BoxFuture<'_, diesel::QueryResult<usize>> {
        Box::pin(diesel_async::RunQueryDsl::execute(
            diesel::insert_into(table).values(rows),
            self,
        ))
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
    }
}
