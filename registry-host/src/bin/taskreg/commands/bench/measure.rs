//! Timing `taskreg sync` runs: each child's own wall time, CPU time and peak memory, each
//! run paired with a `tar` of the same tree right before it.

use super::database::BenchDatabase;
use super::{ms, tar_command, time_command};
use anyhow::bail;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one run cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    /// Wall-clock time.
    pub wall: Duration,
    /// User and system CPU time of the child.
    pub cpu: Duration,
    /// The child's peak resident set.
    pub peak_rss_bytes: u64,
}

/// A measurement interleaved with `tar`: the medians of the times, of `tar`'s, and of the
/// ratios each run makes with the `tar` right before it.
pub struct Paired {
    /// Median wall and CPU times (and the largest peak memory).
    pub time: Timing,
    /// Median `tar` time.
    pub tar: Duration,
    /// Median of the runs' ratios to their `tar`.
    pub ratio: f64,
}

impl Paired {
    /// The figures as JSON, per task too.
    pub fn json(&self, tasks: usize) -> serde_json::Value {
        let per_task = |d: Duration| d.as_secs_f64() * 1e6 / tasks.max(1) as f64;
        serde_json::json!({
            "ms": ms(self.time.wall),
            "cpu_ms": ms(self.time.cpu),
            "ratio_to_tar": self.ratio,
            "us_per_task": per_task(self.time.wall),
            "cpu_us_per_task": per_task(self.time.cpu),
            "peak_rss_mb": self.time.peak_rss_bytes as f64 / 1e6,
        })
    }
}

pub fn paired(
    runs: usize,
    tar: &dyn Fn() -> anyhow::Result<Duration>,
    mut measure: impl FnMut() -> anyhow::Result<Timing>,
) -> anyhow::Result<Paired> {
    let (mut walls, mut cpus, mut tars, mut ratios, mut peak) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0);
    for _ in 0..runs {
        let floor = tar()?;
        let timing = measure()?;
        ratios.push(timing.wall.as_secs_f64() / floor.as_secs_f64());
        walls.push(timing.wall);
        cpus.push(timing.cpu);
        tars.push(floor);
        peak = peak.max(timing.peak_rss_bytes);
    }
    ratios.sort_by(f64::total_cmp);
    Ok(Paired {
        time: Timing {
            wall: median_of(walls),
            cpu: median_of(cpus),
            peak_rss_bytes: peak,
        },
        tar: median_of(tars),
        ratio: ratios[ratios.len() / 2],
    })
}

/// The run of median wall time.
pub fn median_timing(mut runs: Vec<Timing>) -> Timing {
    runs.sort_by_key(|t| t.wall);
    runs[runs.len() / 2]
}

fn median_of(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// What a measured sync must have done, checked so that a figure never measures a run
/// that did something else.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// Added tasks (a cold sync).
    Added,
    /// Wrote nothing (a no-change resync).
    Nothing,
    /// Loaded exactly one task and updated it.
    OneUpdate,
}

/// Times one `taskreg sync` of `tree` into `url` and checks it did what `expect` says.
pub fn time_sync(exe: &Path, url: &str, tree: &Path, expect: Expect) -> anyhow::Result<Timing> {
    let mut command = Command::new(exe);
    command.args(["--database", url]);
    run_sync(command.arg("sync").arg(tree), expect)
}

/// Times `command` (`taskreg` with its global options and `sync …`, run with `--json`)
/// and checks it did what `expect` says.
pub fn run_sync(command: &mut Command, expect: Expect) -> anyhow::Result<Timing> {
    // `--json` is global: it may follow the subcommand.
    command.arg("--json");
    let (timing, stdout) = run_measured(command)?;
    let report: serde_json::Value = serde_json::from_slice(&stdout)?;
    let (written, added, updated, loaded) = (
        report["written"].as_bool(),
        report["added"].as_u64(),
        report["updated"].as_u64(),
        report["loaded"].as_u64(),
    );
    let as_expected = match expect {
        Expect::Added => added.is_some_and(|n| n > 0),
        Expect::Nothing => written == Some(false),
        Expect::OneUpdate => updated == Some(1) && loaded == Some(1),
    };
    if !as_expected {
        bail!("the sync did not do what it measures ({expect:?}): {report}");
    }
    Ok(timing)
}

/// Runs `command` to its end, with its own resource usage (`wait4`), and returns its
/// standard output; a failure is an error with its standard error.
fn run_measured(command: &mut Command) -> anyhow::Result<(Timing, Vec<u8>)> {
    let start = Instant::now();
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });
    let mut stdout = Vec::new();
    child.stdout.take().expect("piped").read_to_end(&mut stdout)?;
    let pid = child.id() as libc::pid_t;
    let (mut status, mut usage): (libc::c_int, libc::rusage) = (0, unsafe { std::mem::zeroed() });
    // SAFETY: wait4 writes only into the two out-parameters; the child is ours and not
    // waited for elsewhere (`Child::wait` is never called on it).
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    if waited != pid {
        bail!("cannot wait for {command:?}: {}", std::io::Error::last_os_error());
    }
    let errors = errors.join().unwrap_or_default();
    let status = std::process::ExitStatus::from_raw(status);
    if !status.success() {
        bail!("{command:?} failed ({status}): {}", String::from_utf8_lossy(&errors));
    }
    let time = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    let timing = Timing {
        wall,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        peak_rss_bytes: usage.ru_maxrss as u64 * 1024, // kilobytes on Linux
    };
    Ok((timing, stdout))
}

/// The sync figures of one tree: cold, no-change resync and one-edit resync.
pub struct SyncFigures {
    pub cold: Paired,
    pub resync: Paired,
    pub one_edit: Paired,
    /// The largest peak memory of any of the runs.
    pub peak_rss_bytes: u64,
}

/// Measures cold syncs, no-change resyncs and one-edit resyncs of `tree`, `runs` of each.
pub fn sizes_figures(exe: &Path, database: &BenchDatabase, tree: &Path, runs: usize) -> anyhow::Result<SyncFigures> {
    let url = database.url();
    let read_tree = || time_command(Command::new("sh").arg("-c").arg(tar_command(tree)));
    read_tree()?; // warm the page cache
    // Each run is timed right after `tar` reads the tree, and its ratio is taken to that
    // `tar`: a busy moment of the machine weighs on both sides of each ratio alike.
    let cold = paired(runs, &read_tree, || {
        database.reset()?;
        time_sync(exe, &url, tree, Expect::Added)
    })?;
    let resync = paired(runs, &read_tree, || time_sync(exe, &url, tree, Expect::Nothing))?;
    let script = first_script(tree)?;
    let original = std::fs::read_to_string(&script)?;
    let mut edits = 0;
    let one_edit = paired(runs, &read_tree, || {
        edits += 1;
        std::fs::write(&script, format!("{original}// bench edit {edits}\n"))?;
        time_sync(exe, &url, tree, Expect::OneUpdate)
    });
    std::fs::write(&script, original)?;
    let one_edit = one_edit?;
    let peak_rss_bytes = [&cold, &resync, &one_edit]
        .iter()
        .map(|p| p.time.peak_rss_bytes)
        .max()
        .unwrap_or(0);
    Ok(SyncFigures {
        cold,
        resync,
        one_edit,
        peak_rss_bytes,
    })
}

/// The script of the first generated task.
fn first_script(tree: &Path) -> anyhow::Result<std::path::PathBuf> {
    let script = tree.join("group-000/task-00000/main.js");
    if !script.exists() {
        bail!("{} is not a tree `taskreg bench` generated", tree.display());
    }
    Ok(script)
}
