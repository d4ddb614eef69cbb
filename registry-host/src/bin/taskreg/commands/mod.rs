//! One file per command: each builds what it needs from the [`Registry`], calls it, and
//! formats the result with `crate::output`.

mod conflicts;
mod forget;
mod history;
mod index;
mod keygen;
mod list;
mod plugins;
mod problems;
mod serve;
mod show;
mod sign;
mod status;
mod sync;
mod validate;
mod verify;
mod watch;

pub mod bench;

use crate::args::{Cli, Command};
use registry_host::config::Config;
use registry_host::{Registry, RegistryBuilder};
use std::path::Path;
use std::process::ExitCode;

const DEFAULT_CONFIG: &str = "taskreg.toml";

/// The flags every command shares.
pub struct Globals {
    /// Machine-readable output on stdout.
    pub json: bool,
    database: Option<String>,
    config: Option<std::path::PathBuf>,
}

impl Globals {
    /// The registry this invocation describes: the config file (`--config`, else
    /// `./taskreg.toml` when present), then `--database` or `TASKREG_DATABASE_URL` over the
    /// config's `database`, else `./taskreg.db`.
    pub fn builder(&self) -> anyhow::Result<RegistryBuilder> {
        let config = match self.config.as_deref() {
            Some(path) => Config::load(path)?,
            None if Path::new(DEFAULT_CONFIG).is_file() => Config::load(Path::new(DEFAULT_CONFIG))?,
            None => Config::default(),
        };
        let mut builder = RegistryBuilder::from_config(config)?;
        if let Some(url) = &self.database {
            builder = builder.database(url.clone());
        }
        Ok(builder)
    }

    /// The registry opened for reading only: commands that only read work on a catalogue
    /// they cannot write.
    pub async fn reader(&self) -> anyhow::Result<Registry> {
        Ok(self.builder()?.read_only().open().await?)
    }
}

/// Runs one command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let globals = Globals {
        json: cli.json,
        database: cli.database,
        config: cli.config,
    };
    match cli.command {
        Command::Sync {
            paths,
            strict,
            concurrency,
            allow_mass_removal,
        } => sync::run(&globals, &paths, strict, concurrency, allow_mass_removal).await,
        Command::List { all } => list::run(&globals, all).await,
        Command::Show { task } => show::run(&globals, &task).await,
        Command::Validate { paths } => validate::run(&globals, &paths).await,
        Command::Index { path, check } => index::run(&globals, &path, check).await,
        Command::Keygen {
            secret_key,
            public_key,
            no_password,
            force,
        } => keygen::run(&globals, &secret_key, &public_key, no_password, force),
        Command::Sign { secret_key, paths } => sign::run(&globals, &secret_key, &paths).await,
        Command::Verify { public_keys, paths } => verify::run(&globals, &public_keys, &paths).await,
        Command::Problems => problems::run(&globals).await,
        Command::Conflicts => conflicts::run(&globals).await,
        Command::History { name } => history::run(&globals, &name).await,
        Command::Status => status::run(&globals).await,
        Command::Forget { source, yes } => forget::run(&globals, &source, yes).await,
        Command::Watch { paths, timing } => watch::run(&globals, &paths, &timing).await,
        Command::Serve {
            watch,
            timing,
            listen,
            token,
            token_file,
        } => {
            serve::run(
                &globals,
                serve::Flags {
                    watch,
                    timing,
                    listen,
                    token,
                    token_file,
                },
            )
            .await
        }
        Command::Plugins => plugins::run(&globals),
        Command::Bench(args) => {
            // A PostgreSQL server given is measured in a database of the benchmark's own.
            bench::run(&args, globals.database.as_deref(), globals.json)
                .await
                .map(|()| ExitCode::SUCCESS)
        }
    }
}

/// Prints what a plugin library refused says, one line each.
fn report_refused(refused: &[String]) {
    for line in refused {
        eprintln!("error: plugin refused: {line}");
    }
}

/// A JSON array printed on stdout one element at a time (pretty, like [`print_json`]), so
/// that a list of any length is never held whole.
struct JsonArray {
    out: std::io::BufWriter<std::io::Stdout>,
    empty: bool,
}

impl JsonArray {
    fn start() -> anyhow::Result<Self> {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(std::io::stdout());
        write!(out, "[")?;
        Ok(JsonArray { out, empty: true })
    }

    fn push(&mut self, value: &impl serde::Serialize) -> anyhow::Result<()> {
        use std::io::Write;
        let text = serde_json::to_string_pretty(value)?;
        write!(self.out, "{}\n  ", if self.empty { "" } else { "," })?;
        self.out.write_all(text.replace('\n', "\n  ").as_bytes())?;
        self.empty = false;
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        use std::io::Write;
        writeln!(self.out, "{}]", if self.empty { "" } else { "\n" })?;
        self.out.flush()?;
        Ok(())
    }
}

/// Prints `value` as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled: a signal that arrives during the initial sync must end the
/// loop after that run, not kill the process with the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = signal(SignalKind::interrupt()).and_then(|i| Ok((i, signal(SignalKind::terminate())?)));
        async move {
            match handlers {
                Ok((mut interrupt, mut terminate)) => tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                },
                Err(e) => {
                    tracing::warn!("cannot install signal handlers: {e}");
                    std::future::pending::<()>().await
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
