//! `taskreg watch`: the real binary following real file changes.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use taskreg_tests::{Server, Taskreg, workspace, write_named_task, write_tree};

/// A running `taskreg --json watch …`, its run reports arriving on a channel.
struct Watcher {
    child: Child,
    runs: mpsc::Receiver<serde_json::Value>,
}

impl Watcher {
    fn start(taskreg: &Taskreg, args: &[&str]) -> Watcher {
        let mut all = vec!["--json", "watch", "--debounce-ms", "50"];
        all.extend_from_slice(args);
        let mut child = taskreg.command(&all).stdout(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, runs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(run) = serde_json::from_str(&line) {
                    let _ = send.send(run);
                }
            }
        });
        let watcher = Watcher { child, runs };
        let first = watcher
            .runs
            .recv_timeout(Duration::from_secs(30))
            .expect("the initial sync");
        assert_eq!(first["trigger"], "start");
        watcher
    }
}

impl Watcher {
    /// Sends SIGTERM and waits for the process to end, for at most `within`.
    fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc_kill(self.child.id() as i32, 15) };
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < within, "watch did not stop within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it holds, for at most thirty seconds (a deadline for a loaded CI
/// machine, not a measure of speed: a check that holds returns at once).
#[track_caller]
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what} did not happen within 30 s");
}

fn show(taskreg: &Taskreg, task: &str) -> Option<serde_json::Value> {
    let run = taskreg.run(&["--json", "show", task]);
    (run.code == 0).then(|| run.json())
}

#[test]
fn edits_saves_additions_deletions_renames_and_bad_edits_reach_the_catalogue() {
    let (work, taskreg) = workspace();
    let tasks = work.path().join("tasks");
    let folders = write_tree(&tasks, 6).unwrap();
    let watcher = Watcher::start(&taskreg, &["tasks"]);
    let digest = |task: &str| show(&taskreg, task).map(|t| t["digest"].as_str().unwrap().to_owned());

    // An edit in place.
    let original = fs::read(folders[0].join("main.js")).unwrap();
    let before = digest("task-00000").unwrap();
    fs::write(
        folders[0].join("main.js"),
        "(function (input) { return { sum: 0 }; })\n",
    )
    .unwrap();
    eventually("the edit", || digest("task-00000").is_some_and(|d| d != before));

    // An editor's save: write a temporary file, rename it over the original.
    let before = digest("task-00001").unwrap();
    fs::write(folders[1].join(".main.js.swp"), "swap").unwrap();
    fs::write(
        folders[1].join("main.js.tmp"),
        "(function (input) { return { sum: 1 }; })\n",
    )
    .unwrap();
    fs::rename(folders[1].join("main.js.tmp"), folders[1].join("main.js")).unwrap();
    eventually("the atomic save", || digest("task-00001").is_some_and(|d| d != before));

    // A new task, copied in.
    write_named_task(&tasks.join("fresh"), "fresh", "1.0.0", 42).unwrap();
    eventually("the addition", || digest("fresh").is_some());

    // A deleted task becomes unavailable, kept as history.
    fs::remove_dir_all(&folders[2]).unwrap();
    eventually("the deletion", || show(&taskreg, "task-00002").is_none());
    assert_eq!(
        taskreg.run(&["--json", "history", "task-00002"]).json()[0]["available"],
        false
    );

    // A renamed folder: same version, new locator.
    fs::rename(&folders[3], tasks.join("renamed")).unwrap();
    eventually("the rename", || {
        show(&taskreg, "task-00003").is_some_and(|t| t["sources"][0]["locator"] == "renamed")
    });

    // Only what changed was rescanned: the latest run looked at the renamed folder's parent.
    let last = watcher.runs.try_iter().last().expect("a run per change");
    assert!(last["sources"][0]["rescanned"].is_array(), "{last}");
    assert!(last["loaded"].as_u64() <= Some(1), "{last}");

    // A bad edit: the last good version stays, the problem is listed.
    let good = digest("task-00004").unwrap();
    fs::write(folders[4].join("metadata.json"), "{ broken").unwrap();
    eventually("the problem", || {
        taskreg
            .run(&["--json", "problems"])
            .json()
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["code"] == "json.invalid")
    });
    assert_eq!(
        digest("task-00004"),
        Some(good),
        "the last good version is still served"
    );

    // An edit undone: content checked before is answered by the cache, not checked again.
    let hits_so_far = watcher
        .runs
        .try_iter()
        .filter_map(|r| r["cache_hits"].as_u64())
        .max()
        .unwrap_or(0);
    fs::write(folders[0].join("main.js"), original).unwrap();
    eventually("a cache hit", || {
        watcher
            .runs
            .try_iter()
            .any(|r| r["cache_hits"].as_u64() > Some(hits_so_far))
    });
}

#[test]
fn a_write_by_another_process_is_seen_by_the_next_watch_run() {
    let (work, taskreg) = workspace();
    let tasks = work.path().join("tasks");
    write_tree(&tasks, 3).unwrap();
    let _watcher = Watcher::start(&taskreg, &["tasks"]);
    // Another process stores `shared@1.0.0` from elsewhere while `watch` keeps its snapshot.
    write_named_task(&work.path().join("elsewhere/shared"), "shared", "1.0.0", 1).unwrap();
    taskreg.run(&["sync", "elsewhere"]).assert_code(0);
    // The watched tree now offers different content for that version: a conflict to
    // record, which a run planned against a stale snapshot would take for a new version
    // and fail to insert.
    write_named_task(&tasks.join("shared"), "shared", "1.0.0", 2).unwrap();
    // Waited for by its outcome: a run may first see the folder half written (its
    // metadata without its script), which writes only a problem.
    eventually("the conflict recorded", || {
        let conflicts = taskreg.run(&["--json", "conflicts"]).json();
        conflicts.as_array().unwrap().len() == 1
    });
    assert!(show(&taskreg, "shared").is_some());

    // The watcher reports itself, with its cache figures, to `status` (after each run).
    eventually("the watcher's report of its cache", || {
        let status = taskreg.run(&["--json", "status"]).json();
        let processes = status["processes"].as_array().unwrap();
        processes.len() == 1 && processes[0]["role"] == "watch" && processes[0]["cache_misses"].as_u64() >= Some(4)
    });
    let status = taskreg.run(&["--json", "status"]).json();
    let watched = status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str().unwrap().ends_with("/tasks"))
        .unwrap();
    assert_eq!(watched["rescanned"], serde_json::json!(["shared"]), "{status}");
}

#[test]
fn changes_under_configured_ignore_globs_start_no_run() {
    let (work, taskreg) = workspace();
    let tasks = work.path().join("tasks");
    write_tree(&tasks, 2).unwrap();
    fs::write(
        work.path().join("taskreg.toml"),
        "[[sources]]\nname = \"local\"\ntype = \"filesystem\"\npath = \"tasks\"\n\n[watch]\nignore = [\"drafts/\"]\n",
    )
    .unwrap();
    let watcher = Watcher::start(&taskreg, &[]);
    write_named_task(&tasks.join("drafts/idea"), "idea", "1.0.0", 1).unwrap();
    // Well past the 50 ms debounce: a run for the draft would have happened by now.
    std::thread::sleep(Duration::from_millis(400));
    write_named_task(&tasks.join("real"), "real", "1.0.0", 2).unwrap();
    eventually("the real task", || show(&taskreg, "real").is_some());
    assert!(show(&taskreg, "idea").is_none(), "the ignored change started a run");
    assert!(
        watcher
            .runs
            .try_iter()
            .all(|r| r["sources"][0]["rescanned"] != serde_json::json!(["drafts/idea"]))
    );
}

#[test]
fn sigterm_ends_watch_cleanly() {
    let (work, taskreg) = workspace();
    write_tree(&work.path().join("tasks"), 3).unwrap();
    let mut watcher = Watcher::start(&taskreg, &["tasks"]);
    let status = watcher.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert_eq!(taskreg.run(&["--json", "list"]).json().as_array().unwrap().len(), 3);
}

#[test]
fn sigterm_while_a_change_is_applied_finishes_that_run_and_exits_cleanly() {
    let (work, taskreg) = workspace();
    let tasks = work.path().join("tasks");
    write_tree(&tasks, 3).unwrap();
    // Staged outside the watched tree and moved in at once: one event, one big run.
    let staged = work.path().join("staged");
    let added = 1500;
    for i in 0..added {
        let name = format!("batch-{i:04}");
        write_named_task(&staged.join(&name), &name, "1.0.0", i).unwrap();
    }
    let mut watcher = Watcher::start(&taskreg, &["tasks"]);
    fs::rename(&staged, tasks.join("batch")).unwrap();
    // Past the 50 ms debounce: the run that loads 1,500 tasks is under way.
    std::thread::sleep(Duration::from_millis(150));
    let status = watcher.terminate(Duration::from_secs(60));
    assert!(status.success(), "killed instead of stopping: {status:?}");
    // The process has ended: its reader thread hands over every line it printed, then stops.
    let reported: Vec<_> = watcher.runs.iter().collect();
    let listed = taskreg.run(&["--json", "list"]).json().as_array().unwrap().len();
    if reported.iter().any(|r| r["trigger"] == "changes") {
        assert_eq!(
            listed,
            3 + added,
            "the run in flight was reported, so it was applied whole"
        );
    } else {
        assert_eq!(listed, 3, "no run was reported, so nothing of it may be stored");
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

/// Registry `a`, synced from three tasks in `upstream/`.
fn upstream(work: &Path) -> Taskreg {
    write_tree(&work.join("upstream"), 3).unwrap();
    let a = Taskreg::new(format!("sqlite://{}", work.join("a.db").display()), work);
    a.run(&["sync", "upstream"]).assert_code(0);
    a
}

/// Registry `b`, whose one source is the `http` registry at `url` with `settings` added.
fn downstream(work: &Path, url: &str, settings: &str) -> Taskreg {
    let dir = work.join("b");
    fs::create_dir(&dir).unwrap();
    fs::write(
        dir.join("taskreg.toml"),
        format!("[[sources]]\nname = \"a\"\ntype = \"http\"\nurl = \"{url}\"\n{settings}\n"),
    )
    .unwrap();
    Taskreg::new(format!("sqlite://{}", work.join("b.db").display()), &dir)
}

#[test]
fn an_http_source_changing_upstream_is_picked_up_by_polling() {
    let work = tempfile::tempdir().unwrap();
    let a = upstream(work.path());
    let server = Server::start(&a, &[]);
    let b = downstream(
        work.path(),
        &format!("{}/v1/tasks", server.base),
        "backoff_ms = 10\npoll_interval = \"1s\"",
    );
    // The source's own poll_interval wins over the default of an hour.
    let watcher = Watcher::start(&b, &["--poll-secs", "3600"]);
    assert_eq!(b.run(&["--json", "list"]).json().as_array().unwrap().len(), 3);

    write_named_task(&work.path().join("upstream/late"), "late", "1.0.0", 9).unwrap();
    a.run(&["sync", "upstream"]).assert_code(0);
    // A run's report is printed after it is applied: wait for the report of the poll that
    // brought the addition, and see that nothing but polls ran meanwhile.
    let mut runs = Vec::new();
    eventually("a poll that adds the upstream addition", || {
        runs.extend(watcher.runs.try_iter());
        runs.iter().any(|r| r["added"] == 1)
    });
    assert!(runs.iter().all(|r| r["trigger"] == "poll"), "{runs:?}");
    assert!(show(&b, "late").is_some());
    drop(server);
}

#[test]
fn a_failing_remote_source_is_retried_with_backoff_long_before_its_poll_interval() {
    let work = tempfile::tempdir().unwrap();
    let a = upstream(work.path());
    // A port nobody listens on yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let b = downstream(
        work.path(),
        &format!("http://127.0.0.1:{port}/v1/tasks"),
        "retries = 0\npoll_interval = \"1h\"",
    );
    let watcher = Watcher::start(&b, &[]);
    let status = b.run(&["--json", "status"]).json();
    assert_eq!(status["sources"][0]["status"], "failed", "{status}");

    let server = Server::start_on(&a, &format!("127.0.0.1:{port}"), &[]);
    // A run's report is printed after it is applied: wait for the report, not the tasks.
    eventually("a retry that succeeds", || {
        watcher
            .runs
            .try_iter()
            .any(|r| r["trigger"] == "retry" && r["sources"][0]["status"] == "ok")
    });
    assert_eq!(b.run(&["--json", "list"]).json().as_array().unwrap().len(), 3);
    let status = b.run(&["--json", "status"]).json();
    assert_eq!(status["sources"][0]["status"], "ok", "{status}");
    assert!(status["sources"][0]["last_error"].is_string(), "{status}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_watch_streams_changes_as_server_sent_events() {
    use futures_lite_stream::next_chunk;
    let work = tempfile::tempdir().unwrap();
    write_tree(&work.path().join("tasks"), 3).unwrap();
    fs::write(
        work.path().join("taskreg.toml"),
        "[[sources]]\nname = \"local\"\ntype = \"filesystem\"\npath = \"tasks\"\n",
    )
    .unwrap();
    let taskreg = Taskreg::new(format!("sqlite://{}", work.path().join("c.db").display()), work.path());
    let server = Server::start(&taskreg, &["--watch", "--debounce-ms", "50"]);
    let base = server.base.clone();

    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut response = reqwest::get(format!("{base}/v1/events")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    // Let the initial sync finish before changing anything.
    eventually("the initial sync", || {
        taskreg
            .run(&["--json", "list"])
            .json()
            .as_array()
            .is_some_and(|l| l.len() == 3)
    });

    write_named_task(&work.path().join("tasks/fresh"), "fresh", "1.0.0", 5).unwrap();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(seen.contains("event: task_added") && seen.contains("\"name\":\"fresh\"")) {
        assert!(Instant::now() < deadline, "no task_added event: {seen}");
        seen.push_str(&next_chunk(&mut response).await);
    }
    fs::write(work.path().join("tasks/fresh/main.js"), "(function (input) { return ; ").unwrap();
    while !seen.contains("event: problem_raised") {
        assert!(Instant::now() < deadline, "no problem_raised event: {seen}");
        seen.push_str(&next_chunk(&mut response).await);
    }
    assert!(seen.contains("\"code\":\"script.syntax\""), "{seen}");
    drop(server);
}

mod futures_lite_stream {
    /// The next chunk of a streaming body as text, waiting at most two seconds.
    pub async fn next_chunk(response: &mut reqwest::Response) -> String {
        match tokio::time::timeout(std::time::Duration::from_secs(2), response.chunk()).await {
            Ok(Ok(Some(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
            _ => String::new(),
        }
    }
}

#[test]
fn an_archive_dropped_into_a_watched_tree_is_followed_like_a_folder() {
    let (work, taskreg) = workspace();
    let tasks = work.path().join("tasks");
    write_tree(&tasks, 2).unwrap();
    fs::create_dir_all(tasks.join("releases")).unwrap();
    let _watcher = Watcher::start(&taskreg, &["tasks"]);

    // Packed elsewhere and moved in whole, as a download or a copy lands.
    let packed = work.path().join("packed");
    write_named_task(&packed.join("zipped"), "zipped", "1.0.0", 7).unwrap();
    let staged = work.path().join("zipped.zip");
    taskreg_tests::zip_folder(&packed.join("zipped"), "", &staged);
    fs::rename(&staged, tasks.join("releases/zipped.zip")).unwrap();
    eventually("the archive's task", || show(&taskreg, "zipped").is_some());
    let shown = show(&taskreg, "zipped").unwrap();
    assert_eq!(shown["sources"][0]["locator"], "releases/zipped.zip");

    // A new release replaces the archive: its new version arrives.
    write_named_task(&packed.join("zipped"), "zipped", "1.1.0", 8).unwrap();
    taskreg_tests::zip_folder(&packed.join("zipped"), "", &staged);
    fs::rename(&staged, tasks.join("releases/zipped.zip")).unwrap();
    eventually("the new release", || {
        show(&taskreg, "zipped").is_some_and(|t| t["version"] == "1.1.0")
    });

    // The archive removed: its task goes missing.
    fs::remove_file(tasks.join("releases/zipped.zip")).unwrap();
    eventually("the removal", || show(&taskreg, "zipped").is_none());
}
