//! `taskreg bench --s3-plugin LIB --s3-endpoint URL`: the generated tree published to a
//! bucket of an S3-compatible server and synced through the S3 plugin (cold, unchanged
//! rescan, one changed task), each run interleaved with the same sync of the same tree
//! through the filesystem source, so that the machine's noise falls on both alike.
//!
//! The bench uploads with unsigned requests (objects marked `public-read-write`), which a
//! local test server accepts (moto, as the tests run it); the plugin signs its own
//! requests as usual.

use super::measure::{Expect, Timing, run_sync};
use anyhow::{Context, bail};
use futures::StreamExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BUCKET: &str = "taskreg-bench";
/// An object whose presence says the bucket holds the whole tree of this many tasks.
const COMPLETE_MARKER: &str = ".taskreg-bench-complete";

/// Medians of the S3 plugin's syncs and of the filesystem source's, run for run.
pub struct S3Figures {
    pub upload: Option<Duration>,
    pub objects: usize,
    pub cold: Timing,
    pub resync: Timing,
    pub one_change: Timing,
    pub fs_cold: Timing,
    pub fs_resync: Timing,
    pub fs_one_change: Timing,
}

pub async fn s3_figures(
    exe: &Path,
    dir: &Path,
    tree: &Path,
    tasks: usize,
    plugin: &Path,
    endpoint: &str,
    runs: usize,
) -> anyhow::Result<S3Figures> {
    let endpoint = endpoint.trim_end_matches('/');
    let (upload, objects) = publish(tree, tasks, endpoint).await?;
    let plugin = std::path::absolute(plugin)?;
    let s3_config = dir.join("bench-s3.toml");
    std::fs::write(
        &s3_config,
        format!(
            "database = \"sqlite://bench-s3.db\"\ncache_dir = \"bench-s3-cache\"\n\n[[plugins]]\npath = {}\n\n\
             [[sources]]\nname = \"s3\"\ntype = \"s3\"\nbucket = \"{BUCKET}\"\nendpoint = \"{endpoint}\"\n\
             allow_http = {}\naccess_key_id = \"bench\"\nsecret_access_key = \"bench\"\ntimeout = \"10m\"\n",
            serde_json::to_string(&plugin.display().to_string())?,
            endpoint.starts_with("http://"),
        ),
    )?;
    let fs_config = dir.join("bench-s3-fs.toml");
    std::fs::write(
        &fs_config,
        format!(
            "database = \"sqlite://bench-s3-fs.db\"\n\n[[sources]]\nname = \"fs\"\ntype = \"filesystem\"\npath = {}\n",
            serde_json::to_string(&tree.display().to_string())?
        ),
    )?;
    let sync = |config: &Path, expect: Expect| -> anyhow::Result<Timing> {
        run_sync(Command::new(exe).arg("--config").arg(config).arg("sync"), expect)
    };
    let forget = |name: &str| {
        let _ = std::fs::remove_dir_all(dir.join("bench-s3-cache"));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", dir.join(name).display()));
        }
    };
    let (mut cold, mut fs_cold) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        forget("bench-s3.db");
        cold.push(sync(&s3_config, Expect::Added)?);
        forget("bench-s3-fs.db");
        fs_cold.push(sync(&fs_config, Expect::Added)?);
    }
    let (mut resync, mut fs_resync) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        resync.push(sync(&s3_config, Expect::Nothing)?);
        fs_resync.push(sync(&fs_config, Expect::Nothing)?);
    }
    // Each run republishes the first task's script (in the tree and in the bucket).
    let script = "group-000/task-00001/main.js";
    let client = client()?;
    let (mut one_change, mut fs_one_change) = (Vec::new(), Vec::new());
    for edit in 1..=runs {
        let path = tree.join(script);
        let mut text = std::fs::read_to_string(&path)?;
        text.push_str(&format!("\n// bench edit {edit} {}\n", std::process::id()));
        std::fs::write(&path, &text)?;
        put(&client, &format!("{endpoint}/{BUCKET}/{script}"), text.into_bytes()).await?;
        one_change.push(sync(&s3_config, Expect::OneUpdate)?);
        fs_one_change.push(sync(&fs_config, Expect::OneUpdate)?);
    }
    Ok(S3Figures {
        upload,
        objects,
        cold: median(cold),
        resync: median(resync),
        one_change: median(one_change),
        fs_cold: median(fs_cold),
        fs_resync: median(fs_resync),
        fs_one_change: median(fs_one_change),
    })
}

/// The median wall and CPU times of `runs` (each sorted on its own).
fn median(runs: Vec<Timing>) -> Timing {
    let middle = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    Timing {
        wall: middle(runs.iter().map(|t| t.wall).collect()),
        cpu: middle(runs.iter().map(|t| t.cpu).collect()),
        peak_rss_bytes: runs.iter().map(|t| t.peak_rss_bytes).max().unwrap_or(0),
    }
}

fn client() -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder().build()?)
}

async fn put(client: &reqwest::Client, url: &str, body: Vec<u8>) -> anyhow::Result<()> {
    let response = client
        .put(url)
        .header("content-type", "application/octet-stream")
        // Unsigned requests are anonymous: an object an anonymous writer may replace
        // later (the one-change runs) must say so.
        .header("x-amz-acl", "public-read-write")
        .body(body)
        .send()
        .await
        .with_context(|| format!("PUT {url}"))?;
    if !response.status().is_success() {
        bail!("PUT {url}: {}", response.status());
    }
    Ok(())
}

/// Uploads the tree into the bench bucket unless it already holds it: how long that took
/// (`None` when skipped) and how many objects the tree has.
async fn publish(tree: &Path, tasks: usize, endpoint: &str) -> anyhow::Result<(Option<Duration>, usize)> {
    let client = client()?;
    let files = files_below(tree)?;
    let marker = format!("{endpoint}/{BUCKET}/{COMPLETE_MARKER}");
    if let Ok(response) = client.get(&marker).send().await
        && response.status().is_success()
        && response.text().await.ok().as_deref() == Some(tasks.to_string().as_str())
    {
        return Ok((None, files.len()));
    }
    let created = client.put(format!("{endpoint}/{BUCKET}")).send().await?;
    if !created.status().is_success() && created.status() != reqwest::StatusCode::CONFLICT {
        bail!("cannot create the bucket {BUCKET} at {endpoint}: {}", created.status());
    }
    eprintln!("uploading {} objects to {endpoint}/{BUCKET} …", files.len());
    let start = Instant::now();
    let uploads = futures::stream::iter(files.iter().map(|file| {
        let client = client.clone();
        async move {
            let relative = file.strip_prefix(tree)?.to_string_lossy().replace('\\', "/");
            let body = tokio::fs::read(file).await?;
            put(&client, &format!("{endpoint}/{BUCKET}/{relative}"), body).await
        }
    }))
    .buffer_unordered(32)
    .collect::<Vec<anyhow::Result<()>>>()
    .await;
    uploads.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let took = start.elapsed();
    put(&client, &marker, tasks.to_string().into_bytes()).await?;
    Ok((Some(took), files.len()))
}

fn files_below(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}
