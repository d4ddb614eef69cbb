//! `taskreg bench`: sync speed on a generated tree, next to `tar` reading the same tree.
//!
//! Every figure is the median of `--runs` runs of the real `taskreg` binary as a child
//! process (so start-up, migrations and the database are counted), into SQLite or, with
//! `--database postgres://…`, a PostgreSQL database of the benchmark's own, with the
//! page cache warm for both `tar` and `taskreg`. Each sync is timed right after a `tar` of
//! the same tree, and its ratio is taken to that `tar`; the ratios reported are the
//! medians of those pairs. Wall and CPU time and peak memory are each child's own
//! (`wait4`). `--scale` measures several tree sizes, for the cost per task.

mod chain;
mod database;
mod git;
mod measure;
mod pages;
mod s3;
mod scale;
mod signed;

use crate::args::BenchArgs;
use anyhow::{Context, bail};
use database::BenchDatabase;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs the measurements and prints them, as one JSON object with `json`.
pub async fn run(args: &BenchArgs, database: Option<&str>, json: bool) -> anyhow::Result<()> {
    let _scratch;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            _scratch = Scratch::new()?;
            _scratch.0.clone()
        }
    };
    let database = BenchDatabase::new(&dir, database)?;
    let measured = if args.scale.is_empty() {
        measure_one(args, &dir, &database, json).await
    } else {
        scale::run(args, &dir, &database, json)
    };
    database.remove();
    measured
}

/// The figures of one tree of `--tasks` tasks.
async fn measure_one(args: &BenchArgs, dir: &Path, database: &BenchDatabase, json: bool) -> anyhow::Result<()> {
    let tree = dir.join("tasks");
    if !tree.exists() {
        eprintln!("generating {} tasks in {} …", args.tasks, tree.display());
        registry_host::generate::write_tree(&tree, args.tasks)?;
    }
    let runs = args.runs.max(1);
    let exe = std::env::current_exe().context("cannot find the taskreg binary")?;
    let url = database.url();
    let figures = measure::sizes_figures(&exe, database, &tree, runs)?;
    let (cold, resync, one_edit) = (&figures.cold, &figures.resync, &figures.one_edit);
    let tar = cold.tar;
    let peak_rss = figures.peak_rss_bytes;
    let per_task_us = |d: Duration| d.as_secs_f64() * 1e6 / args.tasks.max(1) as f64;
    let in_order = if args.watch_edits > 0 {
        watch_edit_latencies(&exe, &url, &tree, args.watch_edits).await?
    } else {
        Vec::new()
    };
    let serving = if args.serve_requests > 0 {
        let mut figures = Vec::new();
        // Interleaved, so that the machine's noise falls on both alike.
        for _ in 0..runs.min(3) {
            for pool_size in [1, 8] {
                figures.push(
                    serve_load(
                        &exe,
                        dir,
                        &url,
                        args.tasks,
                        pool_size,
                        args.serve_requests,
                        args.serve_concurrency,
                    )
                    .await?,
                );
            }
        }
        Some(figures)
    } else {
        None
    };
    let chained = if args.chain {
        Some(chain::chain_figures(&exe, dir, &url, runs)?)
    } else {
        None
    };
    let pages = if args.pages {
        Some(pages::page_figures(&exe, dir, &url, args.tasks, runs).await?)
    } else {
        None
    };
    let signed = if args.signed {
        Some(signed::signed_figures(&exe, dir, &tree, args.tasks, database, runs).await?)
    } else {
        None
    };
    let git = match &args.git_plugin {
        Some(plugin) => Some(git::git_figures(&exe, dir, &tree, plugin, runs).await?),
        None => None,
    };
    let s3 = match (&args.s3_plugin, &args.s3_endpoint) {
        (Some(plugin), Some(endpoint)) => {
            Some(s3::s3_figures(&exe, dir, &tree, args.tasks, plugin, endpoint, runs).await?)
        }
        _ => None,
    };
    let mut latencies = in_order.clone();
    latencies.sort();
    let percentile = |p: f64| {
        (!latencies.is_empty())
            .then(|| ms(latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]))
    };
    if json {
        let report = serde_json::json!({
            "tasks": args.tasks,
            "runs": runs,
            "database": database.backend(),
            "tar_ms": ms(tar),
            "cold_sync": cold.json(args.tasks),
            "resync": resync.json(args.tasks),
            "one_edit_resync": one_edit.json(args.tasks),
            "cold_sync_ms": ms(cold.time.wall),
            "cold_sync_ratio": cold.ratio,
            "resync_ms": ms(resync.time.wall),
            "resync_ratio": resync.ratio,
            "peak_rss_mb": peak_rss as f64 / 1e6,
            "watch_edit_ms": {
                "median": percentile(0.5),
                "p95": percentile(0.95),
                "max": percentile(1.0),
                "in_order": in_order.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
            },
            "serve": serving.as_ref().map(|figures| serve_summary(figures)),
            "second_registry": chained.as_ref().map(|c| c.json(cold.time.wall)),
            "git_plugin": git.as_ref().map(git::GitFigures::json),
            "signed": signed.as_ref().map(signed::SignedFigures::json),
            "pages": pages.as_ref().map(|p| pages::json(p)),
            "s3_plugin": s3.as_ref().map(|f| serde_json::json!({
                "objects": f.objects,
                "upload_ms": f.upload.map(ms),
                "cold_sync": timing_json(&f.cold),
                "resync": timing_json(&f.resync),
                "one_change": timing_json(&f.one_change),
                "filesystem_cold_sync": timing_json(&f.fs_cold),
                "filesystem_resync": timing_json(&f.fs_resync),
                "filesystem_one_change": timing_json(&f.fs_one_change),
            })),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "taskreg bench: {} tasks into {}, median of {runs} runs",
        args.tasks,
        database.backend()
    );
    println!("  tar -cf - DIR | cat     {:>9.1} ms", ms(tar));
    for (label, figures, target) in [
        ("cold sync", cold, "(target ≤ 1.6x)"),
        ("no-change resync", resync, "(target ≤ 0.3x)"),
        ("one-edit resync", one_edit, "               "),
    ] {
        println!(
            "  {label:<22}{:>9.1} ms   {:.2}x tar   {target} {:.1} µs/task wall, {:.1} µs/task CPU",
            ms(figures.time.wall),
            figures.ratio,
            per_task_us(figures.time.wall),
            per_task_us(figures.time.cpu)
        );
    }
    println!(
        "  peak memory (RSS)       {:>9.1} MB              (target < 150 MB)",
        peak_rss as f64 / 1e6
    );
    if let (Some(median), Some(p95), Some(max)) = (percentile(0.5), percentile(0.95), percentile(1.0)) {
        println!(
            "  watch: edit to database  {median:>8.1} ms median, {p95:.1} ms p95, {max:.1} ms max over {} edits (target p95 < 200 ms)",
            latencies.len()
        );
    }
    if let Some(figures) = &serving {
        for (pool_size, summary) in serve_medians(figures) {
            println!(
                "  serve, pool of {pool_size}:        p50 {:.2} ms, p99 {:.2} ms, {:.0} requests/s, {} error(s) ({} requests, {} at a time)",
                summary.p50_ms,
                summary.p99_ms,
                summary.per_second,
                summary.errors,
                args.serve_requests,
                args.serve_concurrency
            );
        }
    }
    if let Some(chained) = &chained {
        println!(
            "  second registry, cold  {:>9.1} ms   {:.2}x the local cold sync (target ≤ 1.5x), from `serve` over loopback",
            ms(chained.cold.wall),
            chained.cold.wall.as_secs_f64() / cold.time.wall.as_secs_f64()
        );
        println!(
            "  second registry, re-poll {:>7.1} ms   (unchanged: one request, 304)",
            ms(chained.unchanged.wall)
        );
    }
    if let Some(pages) = &pages {
        pages::print(pages);
    }
    if let Some(signed) = &signed {
        signed.print();
    }
    if let Some(git) = &git {
        git.print();
    }
    if let Some(s3) = &s3 {
        if let Some(upload) = s3.upload {
            println!("  s3: upload {} objects  {:>9.1} ms", s3.objects, ms(upload));
        }
        for (label, plugin, filesystem, what) in [
            ("cold sync", s3.cold, s3.fs_cold, "list, download and load every task"),
            (
                "unchanged rescan",
                s3.resync,
                s3.fs_resync,
                "one listing, nothing downloaded",
            ),
            (
                "one changed task",
                s3.one_change,
                s3.fs_one_change,
                "list, download one task",
            ),
        ] {
            println!(
                "  s3 plugin {label:<17}{:>9.1} ms   {:.2}x the filesystem source's {:.1} ms; CPU {:.1} ms vs {:.1} ms ({what})",
                ms(plugin.wall),
                plugin.wall.as_secs_f64() / filesystem.wall.as_secs_f64(),
                ms(filesystem.wall),
                ms(plugin.cpu),
                ms(filesystem.cpu)
            );
        }
    }
    Ok(())
}

/// One load run against `taskreg serve`.
#[derive(Debug, Clone, Copy)]
struct LoadFigures {
    pool_size: usize,
    p50_ms: f64,
    p99_ms: f64,
    per_second: f64,
    errors: usize,
}

/// The median of each figure per pool size, over the interleaved runs.
fn serve_medians(figures: &[LoadFigures]) -> Vec<(usize, LoadFigures)> {
    let mut sizes: Vec<usize> = figures.iter().map(|f| f.pool_size).collect();
    sizes.sort();
    sizes.dedup();
    sizes
        .into_iter()
        .map(|size| {
            let runs: Vec<&LoadFigures> = figures.iter().filter(|f| f.pool_size == size).collect();
            let middle = |pick: fn(&LoadFigures) -> f64| {
                let mut values: Vec<f64> = runs.iter().map(|f| pick(f)).collect();
                values.sort_by(f64::total_cmp);
                values[values.len() / 2]
            };
            let summary = LoadFigures {
                pool_size: size,
                p50_ms: middle(|f| f.p50_ms),
                p99_ms: middle(|f| f.p99_ms),
                per_second: middle(|f| f.per_second),
                errors: runs.iter().map(|f| f.errors).sum(),
            };
            (size, summary)
        })
        .collect()
}

fn serve_summary(figures: &[LoadFigures]) -> serde_json::Value {
    serve_medians(figures)
        .into_iter()
        .map(|(size, f)| {
            serde_json::json!({
                "pool_size": size,
                "p50_ms": f.p50_ms,
                "p99_ms": f.p99_ms,
                "requests_per_second": f.per_second,
                "errors": f.errors,
            })
        })
        .collect()
}

/// Starts `taskreg serve` on the catalogue at `url` with `pool_size` connections; returns
/// the child and its base URL.
fn start_serve(exe: &Path, dir: &Path, url: &str, pool_size: usize) -> anyhow::Result<(std::process::Child, String)> {
    use std::io::BufRead;
    let config = dir.join(format!("bench-serve-{pool_size}.toml"));
    std::fs::write(
        &config,
        format!(
            "database = {}

[serve]
pool_size = {pool_size}
",
            serde_json::to_string(url)?
        ),
    )?;
    let mut child = Command::new(exe)
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let mut banner = String::new();
    std::io::BufReader::new(child.stderr.take().context("the server's stderr")?).read_line(&mut banner)?;
    let base = banner.trim().rsplit(" on ").next().unwrap_or_default().to_owned();
    Ok((child, base))
}

/// Starts `taskreg serve` on the synced catalogue with `pool_size` connections and sends it
/// `requests` requests, `concurrency` at a time: nine in ten bundles (by exact version or
/// by semver requirement), the rest task histories and index pages.
async fn serve_load(
    exe: &Path,
    dir: &Path,
    url: &str,
    tasks: usize,
    pool_size: usize,
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<LoadFigures> {
    use futures::StreamExt;
    let (mut child, base) = start_serve(exe, dir, url, pool_size)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let paths: Vec<String> = (0..requests)
        .map(|i| {
            let task = format!("task-{:05}", (i * 7919) % tasks.max(1));
            match i % 20 {
                0 => format!("/v1/tasks?limit=100&cursor=task-{:05}%401.0.0", (i * 31) % tasks.max(1)),
                1 => format!("/v1/tasks/{task}"),
                2..=5 => format!("/v1/tasks/{task}?req=%5E1"),
                _ => format!("/v1/tasks/{task}/1.0.0"),
            }
        })
        .collect();
    let started = Instant::now();
    let outcomes: Vec<(Duration, bool)> = futures::stream::iter(paths)
        .map(|path| {
            let (client, url) = (client.clone(), format!("{base}{path}"));
            async move {
                let start = Instant::now();
                let ok = match client.get(url).send().await {
                    Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                    Err(_) => false,
                };
                (start.elapsed(), ok)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let elapsed = started.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    let mut latencies: Vec<Duration> = outcomes.iter().map(|(d, _)| *d).collect();
    latencies.sort();
    let at = |p: f64| ms(latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]);
    Ok(LoadFigures {
        pool_size,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        per_second: requests as f64 / elapsed.as_secs_f64(),
        errors: outcomes.iter().filter(|(_, ok)| !ok).count(),
    })
}

/// Runs `taskreg watch` on the tree and times `edits` edits of one task's script until the
/// catalogue serves the new content, reading the database as another process would.
async fn watch_edit_latencies(exe: &Path, url: &str, tree: &Path, edits: usize) -> anyhow::Result<Vec<Duration>> {
    use std::io::BufRead;
    let mut child = Command::new(exe)
        .args(["--json", "--database", url, "watch"])
        .arg(tree)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut lines = std::io::BufReader::new(child.stdout.take().context("watch stdout")?).lines();
    lines.next().context("watch ended before its first sync")??;
    // Keep reading the watcher's reports so that its stdout never blocks it.
    std::thread::spawn(move || lines.for_each(drop));
    // Steady state: the initial sync opened every folder, and the watcher still works
    // through those ~20,000 access events for a moment (an edit then takes ~320 ms).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut store =
        registry_host::store::Store::open(&registry_host::store::DatabaseUrl::parse(url, "".as_ref())?).await?;
    let task = tree.join("group-000/task-00000");
    let mut latencies = Vec::with_capacity(edits);
    for edit in 0..edits {
        let before = store.show("task-00000", Some("1.0.0")).await?.map(|(t, _)| t.digest);
        let script = format!("(function (input) {{\n  return {{ sum: input.a + input.b + {edit} }};\n}})\n");
        let start = Instant::now();
        std::fs::write(task.join("main.js"), script)?;
        loop {
            let now = store.show("task-00000", Some("1.0.0")).await?.map(|(t, _)| t.digest);
            if now != before {
                break;
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                bail!("edit {edit} did not reach the database within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(start.elapsed());
        // Let the watcher settle so that edits are timed one by one, not coalesced.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(latencies)
}

fn tar_command(tree: &Path) -> String {
    format!("tar -C '{}' -cf - . | cat >/dev/null", tree.display())
}

/// Wall and CPU milliseconds and peak memory of one measured sync.
fn timing_json(timing: &measure::Timing) -> serde_json::Value {
    serde_json::json!({
        "wall_ms": ms(timing.wall),
        "cpu_ms": ms(timing.cpu),
        "peak_rss_mb": timing.peak_rss_bytes as f64 / 1e6,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn time_command(command: &mut Command) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let status = command.status()?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(start.elapsed())
}

/// A folder of the benchmark's own under the system's temporary folder, removed when the
/// benchmark ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("taskreg-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
