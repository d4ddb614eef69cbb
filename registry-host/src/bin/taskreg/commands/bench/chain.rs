//! A second registry syncing from `taskreg serve` over loopback: its cold sync next to the
//! local cold sync of the same tree, and its unchanged re-poll (one request, answered
//! `304` with the kept `ETag`).

use super::measure::{Expect, Timing, median_timing, run_sync};
use super::ms;
use anyhow::Context;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The chained registry's figures (medians).
pub struct ChainFigures {
    /// A cold sync of every task from the server.
    pub cold: Timing,
    /// A re-poll of the unchanged server.
    pub unchanged: Timing,
}

impl ChainFigures {
    pub fn json(&self, local_cold: Duration) -> serde_json::Value {
        serde_json::json!({
            "cold_sync_ms": ms(self.cold.wall),
            "cold_sync_ratio_to_local": self.cold.wall.as_secs_f64() / local_cold.as_secs_f64(),
            "unchanged_repoll_ms": ms(self.unchanged.wall),
            "peak_rss_mb": self.cold.peak_rss_bytes as f64 / 1e6,
        })
    }
}

/// Serves the catalogue at `url` and times `runs` cold syncs and re-polls of a second
/// registry (SQLite, in `dir`) from it.
pub fn chain_figures(exe: &Path, dir: &Path, url: &str, runs: usize) -> anyhow::Result<ChainFigures> {
    use std::io::BufRead;
    let mut server = Command::new(exe)
        .args(["--database", url, "serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    let mut banner = String::new();
    std::io::BufReader::new(server.stderr.take().context("the server's stderr")?).read_line(&mut banner)?;
    let base = banner.trim().rsplit(" on ").next().unwrap_or_default().to_owned();
    let database = dir.join("bench-chain.db");
    let config = dir.join("bench-chain.toml");
    let measured = (|| {
        std::fs::write(
            &config,
            format!(
                "database = {}\n\n[[sources]]\nname = \"upstream\"\ntype = \"http\"\nurl = {}\n",
                serde_json::to_string(&format!("sqlite://{}", database.display()))?,
                serde_json::to_string(&base)?
            ),
        )?;
        let (mut colds, mut unchanged) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            for suffix in ["", "-wal", "-shm", "-lock"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
            }
            colds.push(run_sync(
                Command::new(exe).arg("--config").arg(&config).arg("sync"),
                Expect::Added,
            )?);
            unchanged.push(run_sync(
                Command::new(exe).arg("--config").arg(&config).arg("sync"),
                Expect::Nothing,
            )?);
        }
        Ok(ChainFigures {
            cold: median_timing(colds),
            unchanged: median_timing(unchanged),
        })
    })();
    let _ = server.kill();
    let _ = server.wait();
    measured
}
