//! Many hosts on one catalogue (issue 13), with the real binary: processes syncing
//! overlapping sources at once, round after round, with edits between rounds.

use std::fs;
use std::path::{Path, PathBuf};
use taskreg_tests::{Taskreg, TestDatabase, write_named_task, write_tree};

/// Three trees that overlap: `a` holds tasks 0–119, `b` 80–199 (80–119 byte for byte the
/// same as `a`'s), `c` 180–259 (180–199 the same as `b`'s).
struct Trees {
    _root: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
    c: PathBuf,
}

fn task(dir: &Path, index: usize, seed: usize) {
    write_named_task(dir, &format!("task-{index:05}"), "1.0.0", seed).unwrap();
}

fn trees() -> Trees {
    let root = tempfile::tempdir().unwrap();
    let (a, b, c) = (root.path().join("a"), root.path().join("b"), root.path().join("c"));
    write_tree(&a, 120).unwrap();
    for i in 80..200 {
        task(&b.join(format!("t{i}")), i, i);
    }
    for i in 180..260 {
        task(&c.join(format!("t{i}")), i, i);
    }
    Trees { _root: root, a, b, c }
}

/// Round `r`'s edits, each to a task only one tree holds (which content wins when two
/// sources disagree is the conflict strategy's business, not this test's): a task of `a`
/// changes in place, one of `b` goes and a new one comes, one of `c` gains a version.
fn edit(trees: &Trees, round: usize) {
    let in_a = round % 80;
    task(&trees.a.join(format!("group-000/task-{in_a:05}")), in_a, 1000 + round);
    fs::remove_dir_all(trees.b.join(format!("t{}", 120 + round))).unwrap();
    write_named_task(
        &trees.b.join(format!("new-{round}")),
        &format!("new-{round}"),
        "1.0.0",
        round,
    )
    .unwrap();
    write_named_task(
        &trees.c.join(format!("v2-{round}")),
        &format!("task-{:05}", 200 + round),
        "2.0.0",
        round,
    )
    .unwrap();
}

/// A config in its own folder naming some of the trees, always under the same names.
fn config(dir: &Path, trees: &[(&str, &Path)]) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let mut text = String::new();
    for (name, path) in trees {
        text.push_str(&format!(
            "[[sources]]\nname = \"{name}\"\ntype = \"filesystem\"\npath = \"{}\"\n\n",
            path.display()
        ));
    }
    let file = dir.join("taskreg.toml");
    fs::write(&file, text).unwrap();
    file
}

/// What the catalogue holds, as the CLI prints it: every version (digest, availability,
/// sources), the problems and the conflicts.
fn catalogue(taskreg: &Taskreg) -> [serde_json::Value; 3] {
    ["list --all", "problems", "conflicts"].map(|command| {
        let mut args = vec!["--json"];
        args.extend(command.split(' '));
        taskreg.run(&args).assert_code(0).json()
    })
}

fn four_processes_syncing_overlapping_sources_agree_with_one(shared: &str, reference: &str, rounds: usize) {
    let trees = trees();
    let work = tempfile::tempdir().unwrap();
    let configs = [
        config(&work.path().join("p0"), &[("a", &trees.a), ("b", &trees.b)]),
        config(&work.path().join("p1"), &[("b", &trees.b), ("c", &trees.c)]),
        config(&work.path().join("p2"), &[("a", &trees.a), ("c", &trees.c)]),
        config(
            &work.path().join("p3"),
            &[("a", &trees.a), ("b", &trees.b), ("c", &trees.c)],
        ),
    ];
    let shared = Taskreg::new(shared, work.path());
    let reference = Taskreg::new(reference, work.path());
    for round in 0..=rounds {
        if round > 0 {
            edit(&trees, round);
        }
        // The first round also starts on an empty database: every process migrates it.
        let running: Vec<_> = configs
            .iter()
            .map(|file| {
                let file = file.to_str().unwrap();
                shared
                    .command(&["--config", file, "--json", "sync"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for (process, child) in running.into_iter().enumerate() {
            let run: taskreg_tests::Run = child.wait_with_output().unwrap().into();
            assert_eq!(
                run.code, 0,
                "round {round}, process {process} failed:\n{}\n{}",
                run.stdout, run.stderr
            );
        }
        // The reference: one process syncing every source once per round.
        reference
            .run(&["--config", configs[3].to_str().unwrap(), "--json", "sync"])
            .assert_code(0);
    }
    let (shared, reference) = (catalogue(&shared), catalogue(&reference));
    let versions = shared[0].as_array().unwrap();
    assert_eq!(
        versions.len(),
        260 + 2 * rounds,
        "every version, the removed ones as history"
    );
    let unavailable = versions.iter().filter(|v| v["available"] == false).count();
    assert_eq!(unavailable, rounds, "one task of b removed per round");
    assert_eq!(shared, reference);
}

/// Issue 13: twelve syncs from four processes into one fresh PostgreSQL database failed 9
/// times out of 12. Four processes, twenty rounds, edits between them: every run succeeds,
/// and the catalogue is the one a single process syncing the same sources makes.
#[tokio::test(flavor = "multi_thread")]
async fn four_processes_syncing_overlapping_sources_into_postgres_agree_with_one() {
    let (shared, reference) = (TestDatabase::postgres().await, TestDatabase::postgres().await);
    four_processes_syncing_overlapping_sources_agree_with_one(&shared.url, &reference.url, 20);
}

/// The same on SQLite, where writers queue on the catalogue's lock file.
#[test]
fn four_processes_syncing_overlapping_sources_into_sqlite_agree_with_one() {
    let (shared, reference) = (TestDatabase::sqlite(), TestDatabase::sqlite());
    four_processes_syncing_overlapping_sources_agree_with_one(&shared.url, &reference.url, 10);
}
