//! `taskreg bench --scale 1000,10000,100000`: the same measurements on trees of several
//! sizes, to show what a task costs as the tree grows (the cost per task should not).

use super::database::BenchDatabase;
use super::measure::{Paired, SyncFigures, sizes_figures};
use super::ms;
use crate::args::BenchArgs;
use anyhow::Context;
use std::path::Path;
use std::time::Duration;

/// Picks one measurement out of a size's figures.
type FiguresOf = fn(&SyncFigures) -> &Paired;

/// Measures each size of `--scale` in turn, smallest first, and prints the figures.
pub fn run(args: &BenchArgs, dir: &Path, database: &BenchDatabase, json: bool) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the taskreg binary")?;
    let mut sizes = args.scale.clone();
    sizes.sort();
    sizes.dedup();
    let runs = args.runs.max(1);
    let mut measured: Vec<(usize, SyncFigures)> = Vec::new();
    for &tasks in &sizes {
        let tree = dir.join(format!("tasks-{tasks}"));
        if !tree.exists() {
            eprintln!("generating {tasks} tasks in {} …", tree.display());
            registry_host::generate::write_tree(&tree, tasks)?;
        }
        eprintln!("measuring {tasks} tasks ({runs} runs of each) …");
        measured.push((tasks, sizes_figures(&exe, database, &tree, runs)?));
    }
    let per_task = |d: Duration, tasks: usize| d.as_secs_f64() * 1e6 / tasks.max(1) as f64;
    let pick: [(&str, FiguresOf); 3] = [
        ("cold sync", |f| &f.cold),
        ("no-change resync", |f| &f.resync),
        ("one-edit resync", |f| &f.one_edit),
    ];
    if json {
        let report: Vec<serde_json::Value> = measured
            .iter()
            .map(|(tasks, f)| {
                serde_json::json!({
                    "tasks": tasks,
                    "database": database.backend(),
                    "tar_ms": ms(f.cold.tar),
                    "cold_sync": f.cold.json(*tasks),
                    "resync": f.resync.json(*tasks),
                    "one_edit_resync": f.one_edit.json(*tasks),
                    "peak_rss_mb": f.peak_rss_bytes as f64 / 1e6,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "taskreg bench --scale: into {}, median of {runs} runs each",
        database.backend()
    );
    for (label, figures_of) in pick {
        println!("  {label}:");
        for (tasks, f) in &measured {
            let p = figures_of(f);
            println!(
                "    {tasks:>7} tasks {:>10.1} ms  {:.2}x tar  {:>7.1} µs/task wall  {:>7.1} µs/task CPU  peak {:>6.1} MB",
                ms(p.time.wall),
                p.ratio,
                per_task(p.time.wall, *tasks),
                per_task(p.time.cpu, *tasks),
                p.time.peak_rss_bytes as f64 / 1e6
            );
        }
        if let (Some((small, first)), Some((large, last))) = (measured.first(), measured.last()) {
            let (a, b) = (figures_of(first), figures_of(last));
            println!(
                "    µs/task at {large} over {small}: {:.2}x wall, {:.2}x CPU (target ≤ 1.2x)",
                per_task(b.time.wall, *large) / per_task(a.time.wall, *small),
                per_task(b.time.cpu, *large) / per_task(a.time.cpu, *small)
            );
        }
    }
    Ok(())
}
