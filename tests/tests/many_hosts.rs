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

/// Reads `response`'s event stream until `seen` holds `wanted`, for at most 30 s.
async fn read_events_until(response: &mut reqwest::Response, seen: &mut String, wanted: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !seen.contains(wanted) {
        assert!(
            std::time::Instant::now() < deadline,
            "no `{wanted}` in the stream: {seen}"
        );
        if let Ok(Ok(Some(bytes))) = tokio::time::timeout(std::time::Duration::from_secs(1), response.chunk()).await {
            seen.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
}

/// Issue 13: `/v1/events` relayed only the runs of its own process, so a replica that did
/// not write an edit never told its clients. Two `serve --watch` replicas and a `watch`,
/// each syncing its own tree into one PostgreSQL catalogue: an edit synced by any of them
/// reaches both replicas' streams, once each.
#[tokio::test(flavor = "multi_thread")]
async fn an_edit_synced_by_any_host_reaches_every_replica_s_event_stream() {
    let db = TestDatabase::postgres().await;
    let work = tempfile::tempdir().unwrap();
    let tree = |name: &str, seed: usize| {
        let dir = work.path().join(name);
        write_named_task(
            &dir.join(format!("{name}-task")),
            &format!("{name}-task"),
            "1.0.0",
            seed,
        )
        .unwrap();
        dir
    };
    let (shared, r1_tree, r2_tree) = (tree("shared", 1), tree("r1", 2), tree("r2", 3));
    let r1_config = config(&work.path().join("r1-config"), &[("r1", &r1_tree)]);
    let r2_config = config(&work.path().join("r2-config"), &[("r2", &r2_tree)]);
    let taskreg = Taskreg::new(db.url.clone(), work.path());
    let replica = |file: &Path| {
        taskreg_tests::Server::start(
            &taskreg,
            &["--config", file.to_str().unwrap(), "--watch", "--debounce-ms", "50"],
        )
    };
    let (r1, r2) = (replica(&r1_config), replica(&r2_config));
    let mut watcher = taskreg
        .command(&["watch", "--debounce-ms", "50", shared.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Every process's first sync is in before anything changes.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while taskreg.run(&["--json", "list"]).json().as_array().map(Vec::len) != Some(3) {
        assert!(std::time::Instant::now() < deadline, "the first syncs did not land");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut r1_events = reqwest::get(format!("{}/v1/events", r1.base)).await.unwrap();
    let mut r2_events = reqwest::get(format!("{}/v1/events", r2.base)).await.unwrap();
    let (mut r1_seen, mut r2_seen) = (String::new(), String::new());

    // An edit the `watch` process syncs: neither replica wrote it.
    write_named_task(&shared.join("fresh"), "fresh", "1.0.0", 4).unwrap();
    let fresh = "\"name\":\"fresh\"";
    read_events_until(&mut r1_events, &mut r1_seen, fresh).await;
    read_events_until(&mut r2_events, &mut r2_seen, fresh).await;
    // An edit replica 1 syncs itself: replica 2 hears it through the catalogue, replica 1
    // directly, and not a second time through the catalogue.
    write_named_task(&r1_tree.join("own"), "own", "1.0.0", 5).unwrap();
    let own = "\"name\":\"own\"";
    read_events_until(&mut r2_events, &mut r2_seen, own).await;
    read_events_until(&mut r1_events, &mut r1_seen, own).await;
    // A later edit, so that a duplicate of `own` would have arrived before it.
    write_named_task(&shared.join("later"), "later", "1.0.0", 6).unwrap();
    let later = "\"name\":\"later\"";
    read_events_until(&mut r1_events, &mut r1_seen, later).await;
    read_events_until(&mut r2_events, &mut r2_seen, later).await;
    for seen in [&r1_seen, &r2_seen] {
        for name in [fresh, own, later] {
            let added = seen
                .split("\n\n")
                .filter(|e| e.contains("event: task_added") && e.contains(name))
                .count();
            assert_eq!(added, 1, "{name} once in: {seen}");
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
}

/// Issue 13: a source removed from the configuration kept its tasks available forever.
/// Now its tasks go missing once no process has scanned it for the grace period (or at
/// once with `taskreg forget SOURCE --yes`, which first says what it takes), a version
/// another source offers stays, and the source comes back when configured again.
#[test]
fn a_removed_source_retires_after_its_grace_period_or_when_forgotten_and_comes_back() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    for (tree, name, seed) in [
        (&a, "a1", 1),
        (&a, "a2", 2),
        (&a, "shared", 9),
        (&b, "b1", 3),
        (&b, "shared", 9),
    ] {
        write_named_task(&tree.join(name), name, "1.0.0", seed).unwrap();
    }
    let grace = "[lifecycle]\nretire_sources_after = \"2s\"\n\n";
    let with_config = |dir: &str, sources: &[(&str, &Path)], lifecycle: &str| {
        let file = config(&work.path().join(dir), sources);
        let text = fs::read_to_string(&file).unwrap();
        fs::write(&file, format!("{lifecycle}{text}")).unwrap();
        file
    };
    let both = with_config("both", &[("a", &a), ("b", &b)], grace);
    let only_a = with_config("only-a", &[("a", &a)], grace);
    let db = TestDatabase::sqlite();
    let taskreg = Taskreg::new(db.url.clone(), work.path());
    let sync = |file: &Path| {
        let run = taskreg.run(&["--config", file.to_str().unwrap(), "--json", "sync"]);
        run.assert_code(0);
        run.json()
    };
    let available = || -> Vec<String> {
        let mut names: Vec<String> = taskreg
            .run(&["--json", "list"])
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    sync(&both);
    assert_eq!(available(), ["a1", "a2", "b1", "shared"]);

    // Removed from the configuration: within the grace period, nothing goes.
    let report = sync(&only_a);
    assert!(report.get("retired").is_none(), "{report}");
    assert_eq!(available(), ["a1", "a2", "b1", "shared"]);
    std::thread::sleep(std::time::Duration::from_millis(2_500));
    let report = sync(&only_a);
    assert_eq!(report["retired"], serde_json::json!(["b"]), "{report}");
    assert_eq!(available(), ["a1", "a2", "shared"], "shared is still offered by a");
    let history = taskreg.run(&["--json", "history", "b1"]).json();
    assert_eq!(history[0]["available"], false, "b1 is kept as history: {history}");

    // Configured again, it comes back.
    sync(&both);
    assert_eq!(available(), ["a1", "a2", "b1", "shared"]);

    // Forgotten at once: first what it takes, nothing changed, exit 1; then with --yes.
    let config_a = only_a.to_str().unwrap();
    let preview = taskreg.run(&["--config", config_a, "forget", "b"]);
    preview.assert_code(1);
    assert!(
        preview.stdout.contains("b1@1.0.0") && !preview.stdout.contains("shared@"),
        "{}",
        preview.stdout
    );
    assert_eq!(available(), ["a1", "a2", "b1", "shared"]);
    taskreg
        .run(&["--config", config_a, "forget", "b", "--yes"])
        .assert_code(0);
    assert_eq!(available(), ["a1", "a2", "shared"]);
    let status = taskreg.run(&["--json", "status"]).json();
    let names: Vec<&str> = status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a"], "a forgotten source leaves `status`: {status}");
    sync(&both);
    assert_eq!(available(), ["a1", "a2", "b1", "shared"]);
}
