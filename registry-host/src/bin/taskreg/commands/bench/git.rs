//! `taskreg bench --git-plugin LIB`: the tree committed to a git repository and synced
//! through the git plugin, loaded into the host and isolated in a child process, the two
//! interleaved run by run; then the cost of one `load` call each way.

use super::ms;
use anyhow::bail;
use registry_host::plugins::{ChildOptions, Isolation, PluginLocation, PluginSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The two ways a library runs, as `[[plugins]] isolation` names them.
const MODES: [&str; 2] = ["in-process", "process"];

/// Loads timed per mode for the round trip, in blocks interleaved between the modes.
const ROUND_TRIP_LOADS: usize = 400;
const ROUND_TRIP_BLOCK: usize = 50;

pub struct GitFigures {
    /// Per mode, in [`MODES`] order.
    modes: Vec<ModeFigures>,
    /// The median time of one `load` of one task, per mode.
    load_round_trip: Vec<Duration>,
}

struct ModeFigures {
    cold: Duration,
    resync: Duration,
    one_change: Duration,
}

impl GitFigures {
    pub fn json(&self) -> serde_json::Value {
        let mode = |m: &ModeFigures, trip: Duration| {
            serde_json::json!({
                "cold_sync_ms": ms(m.cold),
                "resync_ms": ms(m.resync),
                "one_task_commit_ms": ms(m.one_change),
                "load_round_trip_us": trip.as_secs_f64() * 1e6,
            })
        };
        serde_json::json!({
            "in_process": mode(&self.modes[0], self.load_round_trip[0]),
            "isolated": mode(&self.modes[1], self.load_round_trip[1]),
        })
    }

    pub fn print(&self) {
        let [local, isolated] = [&self.modes[0], &self.modes[1]];
        println!("  git plugin                in process       isolated");
        for (label, a, b) in [
            ("cold sync", local.cold, isolated.cold),
            ("resync", local.resync, isolated.resync),
            ("one commit", local.one_change, isolated.one_change),
        ] {
            println!("    {label:<14} {:>12.1} ms {:>12.1} ms", ms(a), ms(b));
        }
        println!(
            "    {:<14} {:>12.1} µs {:>12.1} µs   (one `load` of one task)",
            "load call",
            self.load_round_trip[0].as_secs_f64() * 1e6,
            self.load_round_trip[1].as_secs_f64() * 1e6
        );
    }
}

/// Commits the tree into a repository beside it (the tree itself stays free of `.git`, so
/// `tar` and the filesystem figures are unchanged) and times syncs through the git plugin
/// in both modes.
pub async fn git_figures(
    exe: &Path,
    dir: &Path,
    tree: &Path,
    plugin: &Path,
    runs: usize,
) -> anyhow::Result<GitFigures> {
    let repository = dir.join("upstream.git");
    let git = |args: &[&str]| -> anyhow::Result<()> {
        let status = Command::new("git")
            .arg("--git-dir")
            .arg(&repository)
            .arg("--work-tree")
            .arg(tree)
            .args(["-c", "user.name=bench", "-c", "user.email=bench@taskreg.invalid"])
            .args(args)
            .status()?;
        if !status.success() {
            bail!("git {args:?} failed");
        }
        Ok(())
    };
    if !repository.exists() {
        git(&["init", "-q", "-b", "main"])?;
        git(&["add", "-A"])?;
        git(&["commit", "-q", "-m", "generated tasks"])?;
    }
    let plugin = std::path::absolute(plugin)?;
    let configs = MODES
        .iter()
        .map(|mode| {
            let config = dir.join(format!("bench-git-{mode}.toml"));
            std::fs::write(
                &config,
                format!(
                    "database = \"sqlite://bench-git-{mode}.db\"\ncache_dir = \"bench-git-{mode}-cache\"\n\n[[plugins]]\npath = {}\nisolation = \"{mode}\"\n\n[[sources]]\nname = \"git\"\ntype = \"git\"\nurl = {}\ntimeout = \"10m\"\n",
                    serde_json::to_string(&plugin.display().to_string())?,
                    serde_json::to_string(&repository.display().to_string())?
                ),
            )?;
            Ok(config)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sync = |mode: usize, expect_loaded: Option<u64>| -> anyhow::Result<Duration> {
        let start = Instant::now();
        let output = Command::new(exe)
            .arg("--json")
            .arg("--config")
            .arg(&configs[mode])
            .arg("sync")
            .output()?;
        let elapsed = start.elapsed();
        if !output.status.success() {
            bail!(
                "git sync ({}) failed: {}",
                MODES[mode],
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        if report["sources"][0]["status"] != "ok" {
            bail!("the git source ({}) failed: {report}", MODES[mode]);
        }
        if let Some(expected) = expect_loaded
            && report["loaded"].as_u64() != Some(expected)
        {
            bail!("expected {expected} loads: {report}");
        }
        Ok(elapsed)
    };
    let mut times: Vec<[Vec<Duration>; 3]> = MODES.iter().map(|_| Default::default()).collect();
    // Interleaved run by run, so that the machine's noise falls on both modes alike.
    for _ in 0..runs {
        for mode in 0..MODES.len() {
            let _ = std::fs::remove_dir_all(dir.join(format!("bench-git-{}-cache", MODES[mode])));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!(
                    "{}{suffix}",
                    dir.join(format!("bench-git-{}.db", MODES[mode])).display()
                ));
            }
            times[mode][0].push(sync(mode, None)?);
        }
    }
    for _ in 0..runs {
        for (mode, times) in times.iter_mut().enumerate() {
            times[1].push(sync(mode, Some(0))?);
        }
    }
    // Each run commits a new version of the first task's script, then syncs both.
    let script = tree.join("group-000/task-00001/main.js");
    let script_arg = script.display().to_string();
    for edit in 1..=runs {
        let mut text = std::fs::read_to_string(&script)?;
        text.push_str(&format!("\n// bench edit {edit}\n"));
        std::fs::write(&script, text)?;
        git(&["commit", "-q", "-m", "bench edit", "--", &script_arg])?;
        for (mode, times) in times.iter_mut().enumerate() {
            times[2].push(sync(mode, Some(1))?);
        }
    }
    let modes = times
        .into_iter()
        .map(|[cold, resync, one_change]| ModeFigures {
            cold: median_of(cold),
            resync: median_of(resync),
            one_change: median_of(one_change),
        })
        .collect();
    let load_round_trip = load_round_trip(dir, &plugin, &repository).await?;
    Ok(GitFigures { modes, load_round_trip })
}

/// The median time of one `load` call, in process and isolated: the same git source of
/// the same library, one task loaded again and again, block by block in turn.
async fn load_round_trip(dir: &Path, plugin: &Path, repository: &Path) -> anyhow::Result<Vec<Duration>> {
    let sources = MODES
        .iter()
        .map(|mode| {
            let isolation = match *mode {
                "process" => Isolation::Process(ChildOptions::default()),
                _ => Isolation::InProcess,
            };
            let plugins = PluginSet::load(&[PluginLocation::library(plugin).isolated(isolation)]);
            if let Some(refused) = plugins.refused.first() {
                bail!("{refused}");
            }
            let builder = registry_host::sources::SourceBuilder {
                plugins,
                cache_dir: dir.join(format!("bench-git-{mode}-cache")),
                ..Default::default()
            };
            let spec = registry_core::SourceSpec::new(
                "git",
                "git",
                serde_json::json!({ "url": repository.display().to_string() }),
            );
            Ok((builder.build_one(&spec)?, builder))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut entries = Vec::new();
    for (source, _) in &sources {
        let scan = source.scan().await?;
        entries.push(
            scan.entries
                .into_iter()
                .next()
                .ok_or_else(|| anyhow::anyhow!("no task in the repository"))?,
        );
    }
    let mut per_load: Vec<Vec<Duration>> = sources.iter().map(|_| Vec::new()).collect();
    for _ in 0..ROUND_TRIP_LOADS / ROUND_TRIP_BLOCK {
        for (mode, (source, _)) in sources.iter().enumerate() {
            for _ in 0..ROUND_TRIP_BLOCK {
                let start = Instant::now();
                source.load(&entries[mode]).await?;
                per_load[mode].push(start.elapsed());
            }
        }
    }
    Ok(per_load.into_iter().map(median_of).collect())
}

fn median_of(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
