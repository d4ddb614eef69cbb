//! Test support for taskreg's crates, kept out of the product: databases for tests, a
//! fresh SQLite file or a fresh schema in the PostgreSQL server, and a real S3-protocol
//! server ([`S3Server`]).
//!
//! PostgreSQL tests always run: set `TASKREG_TEST_POSTGRES_URL` to point them elsewhere
//! (default `postgres://postgres@127.0.0.1:5432/test`). An unreachable server fails them;
//! they never skip silently.

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

mod s3;
pub use s3::{LoggedRequest, S3Credentials, S3Server, S3Writer};

/// Instantiates each `async fn case(backend: &str)` once per backend, as
/// `sqlite::case` and `postgres::case` (multi-threaded runtimes: migrations need one).
#[macro_export]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $case() { super::$case("sqlite").await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $case() { super::$case("postgres").await })*
        }
    };
}

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server URL the PostgreSQL tests use.
pub fn postgres_server_url() -> String {
    std::env::var("TASKREG_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// A database that exists for one test and is removed after it.
pub struct TestDatabase {
    pub url: String,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
    schema: Option<String>,
}

impl TestDatabase {
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = format!("sqlite://{}", dir.path().join("catalogue.db").display());
        TestDatabase {
            url,
            backend: "sqlite",
            _dir: Some(dir),
            schema: None,
        }
    }

    /// A new schema in the test server; connections to `url` use it through `search_path`.
    pub async fn postgres() -> TestDatabase {
        let server = postgres_server_url();
        let schema = format!("taskreg_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = AsyncPgConnection::establish(&server)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {server} is required for these tests: {e}"));
        conn.batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("create schema");
        let separator = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{separator}options=-c%20search_path%3D{schema}");
        TestDatabase {
            url,
            backend: "postgres",
            _dir: None,
            schema: Some(schema),
        }
    }

    /// Runs `sql` on this PostgreSQL database (in its schema), as an operator's `psql` would.
    pub async fn execute_postgres(&self, sql: &str) {
        assert_eq!(
            self.backend, "postgres",
            "execute_postgres on a {} database",
            self.backend
        );
        let mut conn = AsyncPgConnection::establish(&self.url)
            .await
            .expect("connect to the test database");
        conn.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Whether the PostgreSQL server holds a database called `name`.
    pub async fn postgres_database_exists(name: &str) -> bool {
        let server = postgres_server_url();
        let mut conn = AsyncPgConnection::establish(&server)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {server} is required for these tests: {e}"));
        // A statement that fails exactly when the database exists (no row type needed).
        let probe = format!(
            "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_database WHERE datname = '{}') THEN RAISE EXCEPTION 'exists'; END IF; END $$",
            name.replace('\'', "''")
        );
        conn.batch_execute(&probe).await.is_err()
    }

    pub async fn for_backend(backend: &str) -> TestDatabase {
        match backend {
            "sqlite" => TestDatabase::sqlite(),
            "postgres" => TestDatabase::postgres().await,
            other => panic!("unknown backend {other}"),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(schema) = self.schema.take() else { return };
        // Drop runs inside a test's runtime, which cannot be blocked on: use a thread.
        let server = postgres_server_url();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = AsyncPgConnection::establish(&server).await.ok()?;
                conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}
