//! The `taskreg` command line.
//!
//! Exit codes: `0` the command did its job (a sync was applied, even with problems); `1`
//! the input has errors (`validate`, or `sync --strict`); `2` the command could not run
//! (bad configuration, unreachable database), reported as one line on stderr.

use crate::config::{Config, path_source_spec};
use crate::store::{DatabaseUrl, ProblemRow, Store, StoredTask};
use crate::sync::{SyncOptions, SyncReport, load_and_check, sync};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use registry_core::{LoadOutcome, Problem, Source, SourceSpec};
use serde_json::{Value, json};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const DEFAULT_DATABASE: &str = "sqlite://taskreg.db";
const DEFAULT_CONFIG: &str = "taskreg.toml";

#[derive(Debug, Parser)]
#[command(
    name = "taskreg",
    version,
    about = "A registry of Ratchet JavaScript tasks: find, check and catalogue them"
)]
pub struct Cli {
    /// Database URL: sqlite://PATH (default ./taskreg.db) or postgres://USER@HOST/DB.
    #[arg(long, env = "TASKREG_DATABASE_URL", global = true)]
    database: Option<String>,
    /// Configuration file (default ./taskreg.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Machine-readable output on stdout; logs stay on stderr.
    #[arg(long, global = true)]
    json: bool,
    /// More logging on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct WatchTiming {
    /// Quiet time before file changes are acted on.
    #[arg(long, default_value_t = 100)]
    debounce_ms: u64,
    /// How often remote sources are polled.
    #[arg(long, default_value_t = 30)]
    poll_secs: u64,
    /// How often every source is rescanned as a backstop.
    #[arg(long, default_value_t = 600)]
    full_rescan_secs: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scan the sources and bring the catalogue up to date.
    Sync {
        /// Folders to sync as ad-hoc filesystem sources instead of the configured sources.
        paths: Vec<PathBuf>,
        /// Exit 1 when any error-severity problem remains.
        #[arg(long)]
        strict: bool,
        /// Loads in flight at once (default: 4 per core).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Let a scan remove more than `lifecycle.max_removal_share` of a source's tasks.
        #[arg(long)]
        allow_mass_removal: bool,
    },
    /// List the available task versions (with --all, unavailable ones too).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Show one task version: NAME for the newest available, or NAME@VERSION.
    Show { task: String },
    /// Parse and check task folders without a database.
    Validate {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// List the current problems.
    Problems,
    /// List the current conflicts: versions offered with different contents.
    Conflicts,
    /// Every version of a task ever seen, with availability and digests.
    History { name: String },
    /// How each source's latest scan went, and the watchers' caches. Exit 1 when a
    /// source's latest scan failed.
    Status,
    /// Sync, then keep the catalogue current as files change and remote sources move.
    Watch {
        /// Folders or archives to watch instead of the configured sources.
        paths: Vec<PathBuf>,
        #[command(flatten)]
        timing: WatchTiming,
    },
    /// Serve the catalogue over HTTP (see docs/http-protocol.md).
    Serve {
        /// Keep the catalogue current while serving, as `taskreg watch` does.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        timing: WatchTiming,
        /// Address to listen on (default: `[serve] listen`, else 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Require `Authorization: Bearer TOKEN` on /v1 and /metrics.
        #[arg(long, env = "TASKREG_SERVE_TOKEN", conflicts_with = "token_file")]
        token: Option<String>,
        /// Read the token from this file (it then appears in no process list).
        #[arg(long)]
        token_file: Option<std::path::PathBuf>,
    },
    /// List every source kind: built in, or from which plugin library, with versions.
    /// Exit 1 when a configured plugin library was refused.
    Plugins,
    /// Measure sync speed on a generated tree against `tar` reading the same tree.
    Bench(crate::bench::BenchArgs),
}

/// Runs the command line and turns every failure into an exit code and one line on stderr.
pub fn main() -> ExitCode {
    restore_default_sigpipe();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    };
    // A plugin call that timed out may still be running on a blocking thread; the
    // process does not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}

/// `taskreg list | head` must end quietly when `head` stops reading, as other Unix tools
/// do, instead of panicking on the broken pipe (Rust ignores SIGPIPE by default).
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TASKREG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Bench(args) = &cli.command {
        return crate::bench::run(args, cli.json).await.map(|()| ExitCode::SUCCESS);
    }
    let config = load_config(cli.config.as_deref())?;
    let validation = config.validation()?;
    if let Command::Validate { paths } = &cli.command {
        return validate(paths, &validation, cli.json).await;
    }
    if let Command::Plugins = &cli.command {
        return plugins(&config, cli.json);
    }
    let url = database_url(cli.database.as_deref(), &config)?;
    // Commands that only read work on a catalogue they cannot write (see open_for_reading).
    let writes = matches!(
        cli.command,
        Command::Sync { .. } | Command::Watch { .. } | Command::Serve { watch: true, .. }
    );
    let mut store = if writes {
        Store::open(&url).await?
    } else {
        Store::open_for_reading(&url).await?
    };
    match cli.command {
        Command::Sync {
            paths,
            strict,
            concurrency,
            allow_mass_removal,
        } => {
            let builder = source_builder(&config, &paths);
            let sources = builder.build(&source_specs(&config, &paths)?)?;
            let mut options = SyncOptions {
                progress: !cli.json && std::io::stderr().is_terminal(),
                max_removal_share: config.lifecycle.max_removal_share,
                allow_mass_removal,
                validation: validation.clone(),
                ..SyncOptions::default()
            };
            if let Some(n) = concurrency {
                options.concurrency = n;
            }
            let report = sync(&mut store, &sources, config.strategy(), &options).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_sync_report(&report);
            }
            let failing = if validation.strict {
                report.problems.len()
            } else {
                report.error_count()
            };
            Ok(if (strict && failing > 0) || !builder.plugins.refused.is_empty() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::List { all } => {
            let versions = store.list_versions(all).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&versions)?);
            } else if versions.is_empty() {
                println!("no tasks (run `taskreg sync` first)");
            } else {
                let width = versions.iter().map(|v| v.name.len()).max().unwrap_or(4).max(4);
                for v in &versions {
                    let state = if v.available { "" } else { "  (unavailable)" };
                    let short = v.digest.get(..19).unwrap_or(&v.digest);
                    println!(
                        "{:width$}  {:10}  {short}  {}{state}",
                        v.name,
                        v.version,
                        v.sources.join(", ")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { task } => {
            let (name, version) = match task.split_once('@') {
                Some((name, version)) => (name, Some(version)),
                None => (task.as_str(), None),
            };
            // `1.2.0+build` is version `1.2.0`: build metadata names no other version.
            let version =
                version.map(|v| registry_core::parse_version(v).map_or_else(|_| v.to_owned(), |v| v.to_string()));
            let version = version.as_deref();
            let Some((stored, origins)) = store.show(name, version).await? else {
                let what = version.map_or(format!("no available version of task `{name}`"), |v| {
                    format!("no task `{name}@{v}`")
                });
                eprintln!("error: {what}");
                return Ok(ExitCode::from(1));
            };
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&task_json(&stored, &origins)?)?);
            } else {
                print_task(&stored, &origins);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Problems => {
            let problems = store.problems().await?;
            if cli.json {
                let rows: Vec<Value> = problems.iter().map(problem_row_json).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if problems.is_empty() {
                println!("no problems");
            } else {
                for row in &problems {
                    print_problem(&row.problem, &location(&row.source, &row.locator, &row.problem));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Watch { paths, timing } => {
            let shutdown = shutdown_signal();
            let sources = source_builder(&config, &paths).build(&source_specs(&config, &paths)?)?;
            let options = watch_options(&timing, &config, &validation, cli.json);
            let (json, cache) = (cli.json, options.sync.cache.clone());
            crate::watch::watch(
                &mut store,
                &sources,
                config.strategy(),
                &options,
                shutdown,
                |trigger, result| report_run(trigger, result, cache.as_deref(), json),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            listen,
            token,
            token_file,
            watch,
            timing,
        } => {
            let shutdown = shutdown_signal();
            let listen = listen.or(config.serve.listen).unwrap_or(([127, 0, 0, 1], 8080).into());
            let token_file = token_file.or_else(|| config.serve.token_file.as_ref().map(|f| config.base_dir.join(f)));
            let token = match (token.or_else(|| config.serve.token.clone()), token_file) {
                (Some(token), _) => Some(token),
                (None, Some(file)) => Some(read_token_file(&file)?),
                (None, None) => None,
            };
            let defaults = crate::serve::ServeOptions::default();
            let serve_options = crate::serve::ServeOptions {
                token,
                metrics_public: config.serve.metrics_public,
                max_connections: config.serve.max_connections.unwrap_or(defaults.max_connections),
                header_read_timeout: config.serve.header_read_timeout.unwrap_or(defaults.header_read_timeout),
            };
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            // Watching needs its own connection: the server's is shared by its requests.
            let watcher_store = if watch { Some(Store::open(&url).await?) } else { None };
            eprintln!("serving {} on http://{}", store.url(), listener.local_addr()?);
            let state = crate::serve::ServeState::new(store, &serve_options);
            let events = state.events.clone();
            let for_metrics = state.clone();
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let server = crate::serve::serve(listener, state, &serve_options, {
                let mut stopped = stopped.clone();
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                }
            });
            let watching = async {
                let Some(mut watcher_store) = watcher_store else {
                    return Ok(());
                };
                let sources = source_builder(&config, &[]).build(&config.source_specs())?;
                let options = watch_options(&timing, &config, &validation, cli.json);
                let (json, cache) = (cli.json, options.sync.cache.clone());
                if let Some(cache) = &cache {
                    let _ = for_metrics.check_cache.set(cache.clone());
                }
                let mut stopped = stopped.clone();
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                crate::watch::watch(
                    &mut watcher_store,
                    &sources,
                    config.strategy(),
                    &options,
                    shutdown,
                    |t, r| {
                        report_run(t, r, cache.as_deref(), json);
                        if let Ok(report) = r {
                            for event in crate::events::events_of(&report.changes) {
                                // No subscriber is not an error.
                                let _ = events.send(event);
                            }
                        }
                    },
                )
                .await
            };
            let signal = async {
                shutdown.await;
                let _ = stop.send(true);
            };
            let (served, watched, ()) = tokio::join!(server, watching, signal);
            served?;
            watched?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => {
            let status = store.status().await?;
            let failing = status.sources.iter().any(|s| s.status != "ok");
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
            Ok(if failing { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Conflicts => {
            let conflicts = store.conflicts().await?;
            if cli.json {
                let rows: Vec<Value> = conflicts
                    .iter()
                    .map(|c| {
                        let mut row = serde_json::to_value(c).unwrap_or_default();
                        row["detail"] = serde_json::from_str(&c.detail).unwrap_or(Value::Null);
                        row
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if conflicts.is_empty() {
                println!("no conflicts");
            } else {
                for c in &conflicts {
                    let detail: Value = serde_json::from_str(&c.detail).unwrap_or(Value::Null);
                    println!(
                        "{}@{} ({}): {}",
                        c.name,
                        c.version,
                        c.strategy,
                        detail["decision"].as_str().unwrap_or("?")
                    );
                    for offer in detail["offers"].as_array().into_iter().flatten() {
                        println!(
                            "  {}:{}  {}",
                            offer["source"].as_str().unwrap_or("?"),
                            offer["locator"].as_str().unwrap_or("?"),
                            offer["digest"].as_str().unwrap_or("?")
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::History { name } => {
            let history = store.history(&name).await?;
            if history.is_empty() {
                eprintln!("error: task `{name}` was never seen");
                return Ok(ExitCode::from(1));
            }
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&history)?);
            } else {
                for v in &history {
                    let state = match v.missing_since {
                        None if v.available => "available".to_owned(),
                        Some(since) => format!("unavailable since {}", format_millis(since)),
                        None => "unavailable".to_owned(),
                    };
                    println!(
                        "{name}@{}  {}  first seen {}  last seen {}  {state}",
                        v.version,
                        v.digest.get(..19).unwrap_or(&v.digest),
                        format_millis(v.first_seen),
                        format_millis(v.last_seen)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { .. } | Command::Bench(_) | Command::Plugins => {
            unreachable!("handled before opening the store")
        }
    }
}

/// The PATHs as ad-hoc sources, else the configured ones.
/// The builder for the configured sources, or for ad-hoc paths (built-in kinds only).
/// Each refused plugin library is reported on stderr.
fn source_builder(config: &Config, paths: &[PathBuf]) -> crate::SourceBuilder {
    if !paths.is_empty() {
        return crate::SourceBuilder::default();
    }
    let builder = crate::SourceBuilder::from_config(config);
    for refused in &builder.plugins.refused {
        eprintln!("error: plugin refused: {refused}");
    }
    builder
}

/// `taskreg plugins`: every kind this configuration can build, and where it comes from.
fn plugins(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    #[derive(serde::Serialize)]
    struct KindRow {
        kind: String,
        description: String,
        origin: String,
        plugin: String,
        plugin_version: String,
        interface_version: Option<String>,
    }
    let builder = crate::SourceBuilder::from_config(config);
    let mut rows: Vec<KindRow> = registry_core::kinds()
        .iter()
        .map(|k| KindRow {
            kind: k.name.to_string(),
            description: k.description.to_string(),
            origin: "built-in".into(),
            plugin: "taskreg".into(),
            plugin_version: env!("CARGO_PKG_VERSION").into(),
            interface_version: None,
        })
        .collect();
    for library in &builder.plugins.libraries {
        rows.extend(library.info.kinds.iter().map(|k| KindRow {
            kind: k.name.clone(),
            description: k.description.clone(),
            origin: library.path.display().to_string(),
            plugin: library.info.name.clone(),
            plugin_version: library.info.version.clone(),
            interface_version: Some(library.interface_version.clone()),
        }));
    }
    let refused: Vec<String> = builder.plugins.refused.iter().map(ToString::to_string).collect();
    if json {
        let out = serde_json::json!({
            "host_interface_version": crate::plugins::HOST_INTERFACE_VERSION,
            "kinds": rows,
            "refused": refused,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("plugin interface {}", crate::plugins::HOST_INTERFACE_VERSION);
        for row in &rows {
            let interface = row
                .interface_version
                .as_deref()
                .map(|v| format!(", interface {v}"))
                .unwrap_or_default();
            println!(
                "{:<12} {} {} ({}{interface})",
                row.kind, row.plugin, row.plugin_version, row.origin
            );
            println!("{:<12} {}", "", row.description);
        }
        for line in &refused {
            eprintln!("error: plugin refused: {line}");
        }
    }
    Ok(if refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn source_specs(config: &Config, paths: &[PathBuf]) -> anyhow::Result<Vec<SourceSpec>> {
    let specs: Vec<SourceSpec> = if paths.is_empty() {
        config.source_specs()
    } else {
        paths
            .iter()
            .map(|p| SourceSpec {
                limits: config.read_limits(),
                ..path_source_spec(p)
            })
            .collect()
    };
    if specs.is_empty() {
        bail!("nothing to sync: give folders or archives (`taskreg sync PATH…`) or a config with [[sources]]");
    }
    Ok(specs)
}

fn watch_options(
    timing: &WatchTiming,
    config: &Config,
    validation: &registry_core::Validation,
    json: bool,
) -> crate::watch::WatchOptions {
    crate::watch::WatchOptions {
        debounce: std::time::Duration::from_millis(timing.debounce_ms),
        poll_interval: std::time::Duration::from_secs(timing.poll_secs.max(1)),
        poll_intervals: config.poll_intervals(),
        ignore: crate::watch::IgnoreRules::new(&config.watch.ignore).unwrap_or_default(),
        full_rescan_interval: std::time::Duration::from_secs(timing.full_rescan_secs.max(1)),
        sync: SyncOptions {
            progress: !json && std::io::stderr().is_terminal(),
            max_removal_share: config.lifecycle.max_removal_share,
            validation: validation.clone(),
            cache: Some(std::sync::Arc::new(crate::cache::CheckCache::new(
                crate::cache::DEFAULT_CAPACITY_BYTES,
            ))),
            snapshot_cache: Some(Default::default()),
            ..SyncOptions::default()
        },
    }
}

/// One line per run of `watch`: a JSON object with `--json`, a summary otherwise.
fn report_run(
    trigger: crate::watch::Trigger,
    result: &Result<SyncReport, crate::sync::SyncError>,
    cache: Option<&crate::cache::CheckCache>,
    json: bool,
) {
    match result {
        Ok(report) if json => {
            let mut line = serde_json::to_value(report).unwrap_or_default();
            line["trigger"] = json!(format!("{trigger:?}").to_lowercase());
            if let Some(cache) = cache {
                line["cache_hits"] = json!(cache.hits());
                line["cache_misses"] = json!(cache.misses());
            }
            println!("{line}");
        }
        Ok(report) => {
            let c = &report.counts;
            println!(
                "{:?}: {} added, {} updated, {} missing, {} revived, {} invalid in {} ms{}",
                trigger,
                c.added,
                c.updated,
                c.missing,
                c.revived,
                c.invalid,
                report.duration_ms,
                if report.written { "" } else { " (nothing to write)" }
            );
        }
        Err(e) => eprintln!("error: {trigger:?} run failed: {e}"),
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
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

fn print_status(status: &crate::store::Status) {
    if status.sources.is_empty() {
        println!("no source scanned yet");
    }
    for s in &status.sources {
        let part = s
            .rescanned_folders()
            .map(|r| format!(" (rescanned {})", r.join(", ")))
            .unwrap_or_default();
        println!(
            "{} [{}] {}: {} at {}, {} ms, {} task(s){}{}",
            s.name,
            s.kind,
            s.location,
            s.status,
            format_millis(s.scanned_at),
            s.duration_ms,
            s.tasks,
            if s.complete { "" } else { ", incomplete" },
            part
        );
        if let Some(error) = &s.error {
            println!("  failing {} time(s) in a row: {error}", s.failures);
        } else if let (Some(error), Some(at)) = (&s.last_error, s.last_error_at) {
            println!("  last failure {}: {error}", format_millis(at));
        }
    }
    for w in &status.watchers {
        println!(
            "watcher {} (pid {}) since {}, last run {}: cache {} hit(s), {} miss(es), {} task(s) held",
            w.host,
            w.pid,
            format_millis(w.started_at),
            format_millis(w.updated_at),
            w.cache_hits,
            w.cache_misses,
            w.cache_entries
        );
    }
}

/// Unix milliseconds as an RFC 3339 time, for people.
fn format_millis(millis: i64) -> String {
    jiff::Timestamp::from_millisecond(millis).map_or_else(
        |_| millis.to_string(),
        |t| t.round(jiff::Unit::Second).unwrap_or(t).to_string(),
    )
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(path) => Ok(Config::load(path)?),
        None if Path::new(DEFAULT_CONFIG).is_file() => Ok(Config::load(Path::new(DEFAULT_CONFIG))?),
        None => Ok(Config::default()),
    }
}

/// `--database` or the environment, else the config's `database` (relative to the config
/// file), else `./taskreg.db`.
fn database_url(flag: Option<&str>, config: &Config) -> anyhow::Result<DatabaseUrl> {
    let (text, base) = match (flag, &config.database) {
        (Some(url), _) => (url, Path::new("")),
        (None, Some(url)) => (url.as_str(), config.base_dir.as_path()),
        (None, None) => (DEFAULT_DATABASE, Path::new("")),
    };
    Ok(DatabaseUrl::parse(text, base)?)
}

fn print_sync_report(report: &SyncReport) {
    let c = &report.counts;
    println!(
        "synced {} source(s) in {} ms: {} added, {} updated, {} unchanged, {} missing, {} revived, {} invalid, {} conflicts{}",
        report.sources.len(),
        report.duration_ms,
        c.added,
        c.updated,
        c.unchanged,
        c.missing,
        c.revived,
        c.invalid,
        c.conflicts,
        if report.written { "" } else { " (nothing to write)" }
    );
    for source in &report.sources {
        match &source.error {
            Some(error) => println!("  source {}: FAILED, its tasks are kept: {error}", source.name),
            None => println!(
                "  source {}: {} task(s){}",
                source.name,
                source.tasks,
                if source.complete {
                    ""
                } else {
                    " (partial scan: nothing removed)"
                }
            ),
        }
    }
    for p in &report.problems {
        print_problem(&p.problem, &location(&p.source, &p.locator, &p.problem));
    }
}

/// `source:locator/file#pointer`, the way a stored problem is located for people.
fn location(source: &str, locator: &str, problem: &Problem) -> String {
    let folder = if locator.is_empty() {
        source.to_owned()
    } else {
        format!("{source}:{locator}")
    };
    within(folder, problem)
}

/// `folder/file#pointer`.
fn within(mut at: String, problem: &Problem) -> String {
    if let Some(file) = &problem.file {
        at.push('/');
        at.push_str(file);
    }
    if let Some(pointer) = problem.pointer.as_deref().filter(|p| !p.is_empty()) {
        at.push('#');
        at.push_str(pointer);
    }
    at
}

fn print_problem(problem: &Problem, at: &str) {
    println!(
        "{}[{}]: {}\n  --> {at}",
        problem.severity, problem.code, problem.message
    );
}

fn problem_row_json(row: &ProblemRow) -> Value {
    json!({
        "source": row.source,
        "locator": row.locator,
        "severity": row.problem.severity,
        "code": row.problem.code,
        "message": row.problem.message,
        "file": row.problem.file,
        "pointer": row.problem.pointer,
    })
}

fn parse_stored(what: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("stored {what} is not JSON"))
}

fn task_json(task: &StoredTask, origins: &[crate::store::OriginRef]) -> anyhow::Result<Value> {
    let optional = |what: &str, text: &Option<String>| text.as_deref().map(|t| parse_stored(what, t)).transpose();
    Ok(json!({
        "name": task.name,
        "version": task.version,
        "uuid": task.uuid,
        "digest": task.digest,
        "available": task.available,
        "metadata": parse_stored("metadata", &task.metadata)?,
        "script": task.script,
        "input_schema": optional("input schema", &task.input_schema)?,
        "output_schema": optional("output schema", &task.output_schema)?,
        "tests": parse_stored("tests", &task.tests)?,
        "sources": origins,
        "first_seen": task.first_seen,
        "last_seen": task.last_seen,
        "missing_since": task.missing_since,
        "content_updated_at": task.content_updated_at,
    }))
}

fn print_task(task: &StoredTask, origins: &[crate::store::OriginRef]) {
    let metadata: Value = serde_json::from_str(&task.metadata).unwrap_or(Value::Null);
    let text = |key: &str| metadata.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    let tests: Vec<Value> = serde_json::from_str(&task.tests).unwrap_or_default();
    println!(
        "{} {}{}",
        task.name,
        task.version,
        if task.available { "" } else { " (unavailable)" }
    );
    println!("  label:       {}", text("label"));
    println!("  description: {}", text("description"));
    println!("  uuid:        {}", task.uuid);
    println!("  digest:      {}", task.digest);
    println!(
        "  schemas:     input {}, output {}",
        yes_no(&task.input_schema),
        yes_no(&task.output_schema)
    );
    println!("  tests:       {}", tests.len());
    for origin in origins {
        println!("  source:      {} ({})", origin.source, origin.locator);
    }
    println!("--- main.js ---\n{}", task.script.trim_end());
}

fn yes_no(value: &Option<String>) -> &'static str {
    if value.is_some() { "yes" } else { "no" }
}

/// `taskreg validate`: the same parse and checks as a sync, with no database.
async fn validate(
    paths: &[PathBuf],
    validation: &registry_core::Validation,
    json_output: bool,
) -> anyhow::Result<ExitCode> {
    let specs: Vec<SourceSpec> = paths
        .iter()
        .map(|p| SourceSpec {
            limits: validation.read_limits(),
            ..path_source_spec(p)
        })
        .collect();
    let sources = crate::build_sources(&specs)?;
    let mut findings: Vec<(String, String, Problem)> = Vec::new();
    let mut valid = 0usize;
    let mut invalid = 0usize;
    for (path, source) in paths.iter().zip(&sources) {
        let shown = path.display().to_string();
        let scan = match source.scan().await {
            Ok(scan) => scan,
            Err(e) => {
                invalid += 1;
                findings.push((
                    shown,
                    String::new(),
                    Problem::error("source.scan_failed", e.to_string()),
                ));
                continue;
            }
        };
        let source: &dyn Source = source.as_ref();
        let outcomes: Vec<(String, LoadOutcome)> = futures::stream::iter(&scan.entries)
            .map(|entry| async move {
                (
                    entry.locator.clone(),
                    load_and_check(source, entry, validation, None).await,
                )
            })
            .buffered(SyncOptions::default().concurrency)
            .collect()
            .await;
        for (locator, outcome) in outcomes {
            let problems = match outcome {
                LoadOutcome::Parsed { warnings, .. } => {
                    valid += 1;
                    warnings
                }
                LoadOutcome::Broken(problems) => {
                    invalid += 1;
                    problems
                }
            };
            findings.extend(problems.into_iter().map(|p| (shown.clone(), locator.clone(), p)));
        }
    }
    let errors = findings.iter().filter(|f| f.2.is_error()).count();
    if json_output {
        let rows: Vec<Value> = findings
            .iter()
            .map(|(path, locator, p)| {
                json!({
                    "path": path, "locator": locator, "severity": p.severity, "code": p.code,
                    "message": p.message, "file": p.file, "pointer": p.pointer,
                    "line": p.line, "column": p.column,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let color = std::io::stdout().is_terminal();
        for (path, locator, problem) in &findings {
            let shown = if locator.is_empty() || locator == "." {
                path.clone()
            } else {
                format!("{path}/{locator}")
            };
            print!(
                "{}",
                crate::diagnostics::render(problem, Path::new(&shown), &shown, color)
            );
        }
        let warnings = findings.len() - errors;
        println!("{valid} valid task(s), {invalid} invalid; {errors} error(s), {warnings} warning(s)");
    }
    let failing = if validation.strict { findings.len() } else { errors };
    Ok(if failing > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A token kept in a file: its first line, without surrounding whitespace.
fn read_token_file(path: &std::path::Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the token file {}", path.display()))?;
    let token = text.lines().next().unwrap_or_default().trim().to_owned();
    if token.is_empty() {
        bail!("the token file {} is empty", path.display());
    }
    Ok(token)
}
