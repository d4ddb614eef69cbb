//! `bench --pages`: how long the web pages take on the synced catalogue, one request at a
//! time (a person browsing), each page's median over rounds that visit every page in turn,
//! and its first fetch on its own (the catalogue's rows are built then, and kept until the
//! catalogue changes).

use super::{ms, start_serve};
use std::path::Path;
use std::time::{Duration, Instant};

/// Rounds over the pages: enough for a median on a noisy machine.
const MIN_ROUNDS: usize = 7;

/// One page's figures.
pub struct PageFigure {
    pub page: &'static str,
    pub path: String,
    pub median: Duration,
    /// The first fetch, on a server that had served nothing yet.
    pub first: Duration,
    pub bytes: usize,
}

pub async fn page_figures(
    exe: &Path,
    dir: &Path,
    url: &str,
    tasks: usize,
    runs: usize,
) -> anyhow::Result<Vec<PageFigure>> {
    let (mut child, base) = start_serve(exe, dir, url, 8)?;
    let last_page = tasks.div_ceil(200).max(1);
    let pages: Vec<(&'static str, String)> = vec![
        ("catalogue", "/ui/".to_owned()),
        ("search (one word)", "/ui/?q=task-0004".to_owned()),
        ("last catalogue page", format!("/ui/?page={last_page}")),
        ("task", format!("/ui/tasks/task-{:05}", tasks / 2)),
        ("problems", "/ui/problems".to_owned()),
        ("sources", "/ui/sources".to_owned()),
    ];
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); pages.len()];
    let mut bytes = vec![0; pages.len()];
    let measured = async {
        for _ in 0..runs.max(MIN_ROUNDS) {
            for (at, (_, path)) in pages.iter().enumerate() {
                let started = Instant::now();
                let response = client.get(format!("{base}{path}")).send().await?.error_for_status()?;
                bytes[at] = response.bytes().await?.len();
                times[at].push(started.elapsed());
            }
        }
        anyhow::Ok(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    measured?;
    Ok(pages
        .into_iter()
        .zip(times)
        .zip(bytes)
        .map(|(((page, path), mut times), bytes)| {
            let first = times[0];
            times.sort();
            PageFigure {
                page,
                path,
                first,
                median: times[times.len() / 2],
                bytes,
            }
        })
        .collect())
}

pub fn json(figures: &[PageFigure]) -> serde_json::Value {
    figures
        .iter()
        .map(|f| {
            serde_json::json!({
                "page": f.page,
                "path": f.path,
                "median_ms": ms(f.median),
                "first_ms": ms(f.first),
                "bytes": f.bytes,
            })
        })
        .collect()
}

pub fn print(figures: &[PageFigure]) {
    for f in figures {
        println!(
            "  page {:<20}{:>9.1} ms   (first {:.1} ms) {:>8} bytes  {}",
            f.page,
            ms(f.median),
            ms(f.first),
            f.bytes,
            f.path
        );
    }
}
