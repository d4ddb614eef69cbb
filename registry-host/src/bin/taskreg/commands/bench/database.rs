//! The catalogue `taskreg bench` measures: a SQLite file in its own folder, or, given
//! `--database postgres://…`, a database of its own on that PostgreSQL server, made
//! afresh for each cold run and dropped at the end. The database the URL names is only
//! connected to, to create and drop the benchmark's own.

use anyhow::Context;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use registry_host::store::DatabaseUrl;
use std::path::{Path, PathBuf};

/// Where the measured catalogue lives.
pub enum BenchDatabase {
    /// A SQLite file of the benchmark's.
    Sqlite(PathBuf),
    /// A database of the benchmark's on a PostgreSQL server.
    Postgres {
        /// The URL given, to create and drop the benchmark's database through.
        server: String,
        /// The benchmark's database.
        url: String,
        /// Its name.
        name: String,
    },
}

impl BenchDatabase {
    /// The catalogue for a benchmark in `dir`, on the server `given` names when it is a
    /// PostgreSQL URL. A SQLite URL is not used: each cold run deletes the file.
    pub fn new(dir: &Path, given: Option<&str>) -> anyhow::Result<Self> {
        let sqlite = BenchDatabase::Sqlite(dir.join("bench.db"));
        let Some(given) = given else { return Ok(sqlite) };
        match DatabaseUrl::parse(given, Path::new("."))? {
            DatabaseUrl::Postgres(server) => {
                let name = format!("taskreg_bench_{}", std::process::id());
                let mut url = url::Url::parse(&server).context("the PostgreSQL URL does not parse")?;
                url.set_path(&name);
                Ok(BenchDatabase::Postgres {
                    server,
                    url: url.to_string(),
                    name,
                })
            }
            DatabaseUrl::Sqlite(_) => {
                eprintln!(
                    "note: taskreg bench measures SQLite in a file of its own ({}); the SQLite database given is not used",
                    dir.join("bench.db").display()
                );
                Ok(sqlite)
            }
        }
    }

    /// The URL `taskreg` is run with.
    pub fn url(&self) -> String {
        match self {
            BenchDatabase::Sqlite(path) => format!("sqlite://{}", path.display()),
            BenchDatabase::Postgres { url, .. } => url.clone(),
        }
    }

    /// The backend's name, for the figures.
    pub fn backend(&self) -> &'static str {
        match self {
            BenchDatabase::Sqlite(_) => "SQLite",
            BenchDatabase::Postgres { .. } => "PostgreSQL",
        }
    }

    /// Empties the catalogue for a cold run.
    pub fn reset(&self) -> anyhow::Result<()> {
        match self {
            BenchDatabase::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm", "-lock"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                Ok(())
            }
            BenchDatabase::Postgres { name, .. } => self.on_server(&format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE); CREATE DATABASE {name}"
            )),
        }
    }

    /// Removes the benchmark's PostgreSQL database (a SQLite file goes with the folder).
    pub fn remove(&self) {
        if let BenchDatabase::Postgres { name, .. } = self
            && let Err(e) = self.on_server(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        {
            eprintln!("warning: cannot drop the benchmark's database {name}: {e:#}");
        }
    }

    /// Runs `statements` (one at a time: `CREATE DATABASE` cannot run in a transaction)
    /// through the server's given database.
    fn on_server(&self, statements: &str) -> anyhow::Result<()> {
        let BenchDatabase::Postgres { server, .. } = self else {
            return Ok(());
        };
        let shown = DatabaseUrl::Postgres(server.clone()).display();
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                let mut conn = AsyncPgConnection::establish(server)
                    .await
                    .with_context(|| format!("cannot connect to {shown}"))?;
                for statement in statements.split("; ") {
                    conn.batch_execute(statement)
                        .await
                        .with_context(|| format!("`{statement}` failed on {shown}"))?;
                }
                Ok(())
            })
        })
    }
}
