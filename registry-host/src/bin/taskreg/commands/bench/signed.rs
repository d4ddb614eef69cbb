//! What verifying signatures costs: cold syncs of a tree whose every task is signed (judged
//! by a policy trusting the key), interleaved with cold syncs of the same tree unsigned.

use super::database::BenchDatabase;
use super::measure::{Expect, Timing, median_timing, run_sync};
use super::ms;
use registry_host::signing::{KeyPair, KeyPassword};
use std::path::Path;
use std::process::Command;

/// Medians of the interleaved cold syncs.
pub struct SignedFigures {
    pub unsigned: Timing,
    pub signed: Timing,
    pub tasks: usize,
}

impl SignedFigures {
    fn per_task_us(&self, extra: std::time::Duration) -> f64 {
        extra.as_secs_f64() * 1e6 / self.tasks.max(1) as f64
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "unsigned_cold_sync_ms": ms(self.unsigned.wall),
            "signed_cold_sync_ms": ms(self.signed.wall),
            "ratio": self.signed.wall.as_secs_f64() / self.unsigned.wall.as_secs_f64(),
            "unsigned_cpu_ms": ms(self.unsigned.cpu),
            "signed_cpu_ms": ms(self.signed.cpu),
            "verification_cpu_us_per_task": self.per_task_us(self.signed.cpu.saturating_sub(self.unsigned.cpu)),
        })
    }

    pub fn print(&self) {
        println!(
            "  signed cold sync       {:>9.1} ms   {:.2}x the unsigned {:.1} ms; CPU {:.1} ms vs {:.1} ms ({:.1} µs/task to verify)",
            ms(self.signed.wall),
            self.signed.wall.as_secs_f64() / self.unsigned.wall.as_secs_f64(),
            ms(self.unsigned.wall),
            ms(self.signed.cpu),
            ms(self.unsigned.cpu),
            self.per_task_us(self.signed.cpu.saturating_sub(self.unsigned.cpu))
        );
    }
}

/// Signs a copy of `tree` (in `dir`) with a new key and times `runs` cold syncs of each
/// copy, the unsigned and the signed one in turn.
pub async fn signed_figures(
    exe: &Path,
    dir: &Path,
    tree: &Path,
    tasks: usize,
    database: &BenchDatabase,
    runs: usize,
) -> anyhow::Result<SignedFigures> {
    let signed_tree = dir.join("signed-tasks");
    let secret = dir.join("bench-signing.key");
    let public = dir.join("bench-signing.pub");
    if !signed_tree.exists() {
        eprintln!("signing a copy of the tree in {} …", signed_tree.display());
        registry_host::generate::write_tree(&signed_tree, tasks)?;
        let files = KeyPair::generate(KeyPassword::None)?;
        std::fs::write(&secret, &files.secret)?;
        std::fs::write(&public, &files.public)?;
        let key = KeyPair::from_secret_key_file(&secret, KeyPassword::None)?;
        let validation = registry_core::Validation::default();
        let report =
            registry_host::signing::sign_paths(&key, std::slice::from_ref(&signed_tree), &validation, &[]).await?;
        anyhow::ensure!(!report.failed(), "signing the generated tree failed");
    }
    let config = dir.join("bench-signed.toml");
    std::fs::write(
        &config,
        format!(
            "[signatures]\nmode = \"require\"\ntrusted_keys = [{}]\n",
            serde_json::to_string(&public.display().to_string())?
        ),
    )?;
    let url = database.url();
    let (mut unsigned, mut signed) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        database.reset()?;
        unsigned.push(run_sync(
            Command::new(exe).args(["--database", &url, "sync"]).arg(tree),
            Expect::Added,
        )?);
        database.reset()?;
        signed.push(run_sync(
            Command::new(exe)
                .args(["--database", &url, "--config"])
                .arg(&config)
                .arg("sync")
                .arg(&signed_tree),
            Expect::Added,
        )?);
    }
    Ok(SignedFigures {
        unsigned: median_timing(unsigned),
        signed: median_timing(signed),
        tasks,
    })
}
