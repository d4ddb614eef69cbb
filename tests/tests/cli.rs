//! The `taskreg` command-line contract, through the real binary.

use std::fs;
use taskreg_tests::{Taskreg, TestDatabase, repository_root, workspace, write_named_task, write_tree, zip_folder};

/// What the shipped examples report: the broken task's error, the legacy task's warnings.
const EXAMPLE_PROBLEMS: [&str; 4] = [
    "metadata.version_not_semver",
    "metadata.legacy_format",
    "schema.missing",
    "schema.missing",
];

/// The `code` of every problem in a JSON array of problems.
fn codes_of(problems: &serde_json::Value) -> Vec<&str> {
    problems
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect()
}

fn examples_config() -> String {
    repository_root().join("examples/taskreg.toml").display().to_string()
}

/// Syncs the shipped examples and checks the summary; shared by both backends.
fn sync_the_examples(taskreg: &Taskreg) {
    let config = examples_config();
    let run = taskreg.run(&["--config", &config, "--json", "sync"]);
    run.assert_code(0);
    let report = run.json();
    for field in [
        "added",
        "updated",
        "unchanged",
        "missing",
        "revived",
        "invalid",
        "conflicts",
    ] {
        assert!(report[field].is_u64(), "`{field}` is a number: {report}");
    }
    assert_eq!(
        (report["added"].as_u64(), report["invalid"].as_u64()),
        (Some(3), Some(1)),
        "{report}"
    );
    let source = &report["sources"][0];
    assert_eq!(source["name"], "examples");
    assert_eq!(source["status"], "ok");
    assert_eq!(source["complete"], true);
    assert_eq!(source["tasks"], 4);

    let list = taskreg.run(&["--json", "list"]);
    list.assert_code(0);
    let list = list.json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["addition", "legacy-greeting", "weather-api"]);
    let item = &list[0];
    for field in ["name", "version", "digest", "available", "sources"] {
        assert!(!item[field].is_null(), "`{field}` in {item}");
    }

    let show = taskreg.run(&["--json", "show", "weather-api"]);
    show.assert_code(0);
    let task = show.json();
    assert_eq!(task["version"], "2.0.1");
    assert_eq!(
        task["metadata"]["network"]["hosts"][0], "api.weather.example",
        "unknown fields are kept"
    );
    assert_eq!(task["tests"][0]["case"]["mock"]["http"]["method"], "GET");
    assert!(task["script"].as_str().unwrap().contains("fetch("));
    assert_eq!(task["input_schema"]["required"][0], "city");
    assert_eq!(task["sources"][0]["source"], "examples");
    for field in ["name", "uuid", "digest", "output_schema"] {
        assert!(!task[field].is_null(), "`{field}` in {task}");
    }

    let problems = taskreg.run(&["--json", "problems"]).json();
    let codes = codes_of(&problems);
    assert_eq!(codes, EXAMPLE_PROBLEMS);
    assert_eq!(problems[0]["locator"], "broken-version");
    assert_eq!(problems[0]["severity"], "error");
}

#[test]
fn syncs_the_shipped_examples_into_sqlite() {
    let db = TestDatabase::sqlite();
    sync_the_examples(&Taskreg::new(&db.url, repository_root()));
}

#[tokio::test(flavor = "multi_thread")]
async fn syncs_the_shipped_examples_into_postgres() {
    let db = TestDatabase::postgres().await;
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || sync_the_examples(&Taskreg::new(url, repository_root())))
        .await
        .unwrap();
}

#[test]
fn strict_fails_on_errors_and_a_resync_reports_them_again_without_writing() {
    let db = TestDatabase::sqlite();
    let taskreg = Taskreg::new(&db.url, repository_root());
    let config = examples_config();
    taskreg.run(&["--config", &config, "sync", "--strict"]).assert_code(1);
    let again = taskreg.run(&["--config", &config, "--json", "sync", "--strict"]);
    again.assert_code(1);
    let report = again.json();
    assert_eq!(report["written"], false);
    assert_eq!(
        report["problems"][0]["code"], "metadata.version_not_semver",
        "still reported: {report}"
    );
}

#[test]
fn show_picks_a_version_and_reports_unknown_tasks() {
    let (work, taskreg) = workspace();
    let tasks = work.path().join("tasks");
    write_named_task(&tasks.join("old"), "calc", "1.9.0", 1).unwrap();
    write_named_task(&tasks.join("new"), "calc", "1.10.0", 2).unwrap();
    taskreg.run(&["sync", "tasks"]).assert_code(0);
    assert_eq!(taskreg.run(&["--json", "show", "calc"]).json()["version"], "1.10.0");
    assert_eq!(
        taskreg.run(&["--json", "show", "calc@1.9.0"]).json()["version"],
        "1.9.0"
    );
    let missing = taskreg.run(&["show", "nope"]);
    missing.assert_code(1);
    assert!(
        missing.stderr.contains("no available version of task `nope`"),
        "{}",
        missing.stderr
    );
}

#[test]
fn show_resolves_a_semver_requirement_to_the_newest_available_match() {
    let (work, taskreg) = workspace();
    let tasks = work.path().join("tasks");
    for (folder, version) in [("a", "1.2.0"), ("b", "1.10.3"), ("c", "2.0.0"), ("d", "1.11.0-beta.1")] {
        write_named_task(&tasks.join(folder), "calc", version, version.len()).unwrap();
    }
    taskreg.run(&["sync", "tasks"]).assert_code(0);
    let version_of = |task: &str| taskreg.run(&["--json", "show", task]).assert_code(0).json()["version"].clone();
    // Newest by semver, not by text; a pre-release only when the requirement names one.
    assert_eq!(version_of("calc@^1"), "1.10.3");
    assert_eq!(version_of("calc@~1.2"), "1.2.0");
    assert_eq!(version_of("calc@>=1.3, <3"), "2.0.0");
    assert_eq!(version_of("calc@*"), "2.0.0");
    assert_eq!(version_of("calc@>=1.11.0-beta.0, <2"), "1.11.0-beta.1");
    // An exact version still names exactly that version.
    assert_eq!(version_of("calc@1.2.0"), "1.2.0");

    let none = taskreg.run(&["show", "calc@^3"]);
    none.assert_code(1);
    assert!(
        none.stderr.contains("no available version of task `calc` matches `^3`"),
        "{}",
        none.stderr
    );
    // A version that is gone from every source no longer resolves.
    std::fs::remove_dir_all(tasks.join("b")).unwrap();
    taskreg.run(&["sync", "tasks"]).assert_code(0);
    assert_eq!(version_of("calc@^1"), "1.2.0");
}

#[test]
fn the_same_task_has_one_digest_whatever_its_folder_and_formatting() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    write_named_task(&a.join("t"), "same", "1.0.0", 5).unwrap();
    write_named_task(&b.join("nested/deeper/t"), "same", "1.0.0", 5).unwrap();
    // Reformat one copy's JSON: other indentation, other key order.
    let metadata: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(b.join("nested/deeper/t/metadata.json")).unwrap()).unwrap();
    let mut entries: Vec<(String, serde_json::Value)> = metadata.as_object().unwrap().clone().into_iter().collect();
    entries.reverse();
    let reordered = entries
        .iter()
        .map(|(k, v)| format!("{k:?}:{v}"))
        .collect::<Vec<_>>()
        .join(",\n\t");
    fs::write(
        b.join("nested/deeper/t/metadata.json"),
        format!("{{\n\t{reordered}\n}}"),
    )
    .unwrap();

    let taskreg = Taskreg::new(format!("sqlite://{}", work.path().join("c.db").display()), work.path());
    let report = taskreg.run(&["--json", "sync", "a", "b"]);
    report.assert_code(0);
    assert_eq!(
        (report.json()["added"].as_u64(), report.json()["conflicts"].as_u64()),
        (Some(1), Some(0))
    );
    let list = taskreg.run(&["--json", "list"]).json();
    assert_eq!(
        list[0]["sources"].as_array().unwrap().len(),
        2,
        "one version, two origins: {list}"
    );
}

#[test]
fn validate_needs_no_database_and_fails_on_errors() {
    let work = tempfile::tempdir().unwrap();
    let taskreg = Taskreg::new("sqlite:///nonexistent-folder/never.db", work.path());
    let examples = repository_root().join("examples/tasks");
    let run = taskreg.run(&["validate", examples.to_str().unwrap()]);
    run.assert_code(1);
    // Rendered like a compiler: the code, the file with line and column, the line itself.
    assert!(run.stdout.contains("metadata.version_not_semver"), "{}", run.stdout);
    assert!(
        run.stdout.contains("broken-version/metadata.json:3:3"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(r#""version": "v1-final","#), "{}", run.stdout);
    let json = taskreg.run(&["--json", "validate", examples.to_str().unwrap()]);
    json.assert_code(1);
    let found = json.json();
    let codes = codes_of(&found);
    assert_eq!(codes, EXAMPLE_PROBLEMS);
    assert_eq!(found[0]["pointer"], "/version");

    let good = repository_root().join("examples/tasks/addition");
    taskreg.run(&["validate", good.to_str().unwrap()]).assert_code(0);
}

#[test]
fn a_database_that_cannot_be_opened_is_one_clear_line_and_exit_2() {
    let work = tempfile::tempdir().unwrap();
    for url in [
        "sqlite:///no/such/folder/x.db",
        "postgres://nobody@127.0.0.1:1/none",
        "mysql://x",
    ] {
        let run = Taskreg::new(url, work.path()).run(&["list"]);
        run.assert_code(2);
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line for {url}: {}", run.stderr);
        assert!(lines[0].starts_with("error: "), "{}", run.stderr);
        assert!(!run.stderr.contains("panicked"));
    }
}

#[test]
fn config_file_in_the_working_folder_is_used_and_its_database_is_relative_to_it() {
    let work = tempfile::tempdir().unwrap();
    write_tree(&work.path().join("tasks"), 3).unwrap();
    fs::write(
        work.path().join("taskreg.toml"),
        "database = \"sqlite://data/catalogue.db\"\n[[sources]]\nname = \"local\"\ntype = \"filesystem\"\npath = \"tasks\"\n",
    )
    .unwrap();
    fs::create_dir(work.path().join("data")).unwrap();
    let mut command = Taskreg::new("unused", work.path()).command(&["--json", "sync"]);
    command.env_remove("TASKREG_DATABASE_URL");
    let run: taskreg_tests::Run = command.output().unwrap().into();
    run.assert_code(0);
    assert_eq!(run.json()["added"], 3);
    assert!(work.path().join("data/catalogue.db").exists());

    fs::write(
        work.path().join("taskreg.toml"),
        "[[sources]]\nname = \"x\"\ntype = \"ftp\"\n",
    )
    .unwrap();
    let mut command = Taskreg::new("unused", work.path()).command(&["sync"]);
    command.env_remove("TASKREG_DATABASE_URL");
    let run: taskreg_tests::Run = command.output().unwrap().into();
    run.assert_code(2);
    assert!(
        run.stderr.contains("unknown source type `ftp`") && run.stderr.contains("filesystem"),
        "{}",
        run.stderr
    );
}

#[test]
fn list_reads_while_another_process_writes() {
    let (work, taskreg) = workspace();
    write_tree(&work.path().join("tasks"), 3000).unwrap();
    taskreg.run(&["list"]).assert_code(0); // create the catalogue
    let mut writer = taskreg
        .command(&["sync", "tasks"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut reads = 0;
    while writer.try_wait().unwrap().is_none() {
        taskreg.run(&["--json", "list"]).assert_code(0);
        reads += 1;
    }
    assert!(writer.wait().unwrap().success());
    assert!(reads > 0);
    assert_eq!(taskreg.run(&["--json", "list"]).json().as_array().unwrap().len(), 3000);
}

#[test]
fn a_sync_killed_mid_run_leaves_the_catalogue_whole() {
    let (work, taskreg) = workspace();
    write_tree(&work.path().join("tasks"), 4000).unwrap();
    taskreg.run(&["list"]).assert_code(0);
    // Kill at increasing delays: whatever the moment, the catalogue is empty or complete.
    for delay_ms in [50, 150, 300, 600] {
        let mut child = taskreg
            .command(&["sync", "tasks"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let count = taskreg.run(&["--json", "list"]).json().as_array().unwrap().len();
        assert!(
            count == 0 || count == 4000,
            "a partial catalogue of {count} tasks after a kill at {delay_ms} ms"
        );
    }
    let run = taskreg.run(&["--json", "sync", "tasks"]);
    run.assert_code(0);
    assert_eq!(taskreg.run(&["--json", "list"]).json().as_array().unwrap().len(), 4000);
}

#[test]
fn json_output_keeps_stdout_clean_and_shows_no_progress_without_a_terminal() {
    let (work, taskreg) = workspace();
    write_tree(&work.path().join("tasks"), 50).unwrap();
    let run = taskreg.run(&["--json", "sync", "tasks"]);
    run.assert_code(0);
    assert_eq!(run.json()["added"], 50);
    assert!(run.stderr.is_empty(), "nothing on stderr: {}", run.stderr);
    let human = taskreg.run(&["sync", "tasks"]);
    assert!(
        !human.stderr.contains("loading tasks"),
        "no progress bar without a terminal"
    );
}

#[test]
fn output_cut_short_by_a_closed_pipe_ends_quietly() {
    let (work, taskreg) = workspace();
    write_tree(&work.path().join("tasks"), 800).unwrap();
    taskreg.run(&["sync", "tasks"]).assert_code(0);
    // The reader goes away after the first bytes, as `taskreg list | head -1` does; the
    // listing (~150 KB) is larger than a pipe's buffer, so the writer meets the closed pipe.
    let mut child = taskreg
        .command(&["--json", "list"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn conflicts_history_and_the_mass_removal_guard_through_the_cli() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    write_named_task(&a.join("t"), "shared", "1.0.0", 1).unwrap();
    write_named_task(&b.join("t"), "shared", "1.0.0", 2).unwrap();
    for i in 0..3 {
        write_named_task(&a.join(format!("x{i}")), &format!("extra-{i}"), "1.0.0", 10 + i).unwrap();
    }
    fs::write(
        work.path().join("taskreg.toml"),
        "[[sources]]\nname = \"a\"\ntype = \"filesystem\"\npath = \"a\"\n\
         [[sources]]\nname = \"b\"\ntype = \"filesystem\"\npath = \"b\"\n\
         [conflicts]\nstrategy = \"immutable\"\n",
    )
    .unwrap();
    let taskreg = Taskreg::new(format!("sqlite://{}", work.path().join("c.db").display()), work.path());
    assert_eq!(taskreg.run(&["--json", "sync"]).json()["conflicts"], 1);
    let conflicts = taskreg.run(&["--json", "conflicts"]).json();
    assert_eq!(conflicts[0]["name"], "shared");
    assert_eq!(conflicts[0]["strategy"], "immutable");
    assert_eq!(conflicts[0]["detail"]["offers"].as_array().unwrap().len(), 2);
    assert!(
        taskreg
            .run(&["conflicts"])
            .stdout
            .contains("shared@1.0.0 (immutable): took sha256:")
    );

    // Three of a's four tasks disappear: blocked, then allowed.
    for i in 0..3 {
        fs::remove_dir_all(a.join(format!("x{i}"))).unwrap();
    }
    let blocked = taskreg.run(&["--json", "sync", "--strict"]);
    blocked.assert_code(1);
    assert_eq!(blocked.json()["missing"], 0);
    assert!(blocked.stdout.contains("source.mass_removal_blocked"));
    let allowed = taskreg.run(&["--json", "sync", "--allow-mass-removal"]);
    assert_eq!(allowed.json()["missing"], 3);

    let history = taskreg.run(&["--json", "history", "extra-0"]);
    history.assert_code(0);
    assert_eq!(history.json()[0]["available"], false);
    assert!(history.json()[0]["missing_since"].is_i64());
    taskreg.run(&["history", "never-seen"]).assert_code(1);
}

#[test]
fn a_zip_synced_ad_hoc_gives_the_folder_task_s_digest_and_a_hostile_one_is_a_listed_problem() {
    let (work, taskreg) = workspace();
    write_named_task(&work.path().join("tasks/calc"), "calc", "2.0.0", 4).unwrap();
    zip_folder(&work.path().join("tasks/calc"), "calc/", &work.path().join("calc.zip"));
    let report = taskreg.run(&["--json", "sync", "tasks", "calc.zip"]);
    report.assert_code(0);
    assert_eq!(
        (report.json()["added"].as_u64(), report.json()["conflicts"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(report.json()["sources"][1]["kind"], "zip");
    let task = taskreg.run(&["--json", "show", "calc"]).json();
    let mut locators: Vec<&str> = task["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["locator"].as_str().unwrap())
        .collect();
    locators.sort();
    assert_eq!(
        locators,
        ["calc", "calc.zip/calc"],
        "one version from the folder and the archive"
    );

    fs::write(
        work.path().join("calc.zip"),
        b"PK\x03\x04 definitely not a whole archive",
    )
    .unwrap();
    let report = taskreg.run(&["--json", "sync", "tasks", "calc.zip"]);
    report.assert_code(0);
    let json = report.json();
    assert_eq!(json["missing"], 0, "a refused archive removes nothing");
    let problem = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "zip.corrupt")
        .expect("zip.corrupt");
    assert_eq!(problem["locator"], "calc.zip");
    assert!(problem["message"].as_str().unwrap().contains("calc.zip"));
}

#[test]
fn status_shows_each_source_s_latest_scan_and_a_failing_one_exits_1() {
    let (work, taskreg) = workspace();
    write_tree(&work.path().join("good"), 3).unwrap();
    for name in ["f1", "f2"] {
        write_named_task(&work.path().join("flaky").join(name), name, "1.0.0", 7).unwrap();
    }
    taskreg.run(&["sync", "good", "flaky"]).assert_code(0);
    taskreg.run(&["status"]).assert_code(0);

    std::fs::rename(work.path().join("flaky"), work.path().join("gone")).unwrap();
    for _ in 0..2 {
        taskreg.run(&["sync", "good", "flaky"]);
    }
    let run = taskreg.run(&["--json", "status"]);
    run.assert_code(1);
    let status = run.json();
    let source = |suffix: &str| {
        status["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"].as_str().unwrap().ends_with(suffix))
            .unwrap()
            .clone()
    };
    let (good, flaky) = (source("/good"), source("/flaky"));
    assert_eq!((good["status"].as_str(), good["tasks"].as_u64()), (Some("ok"), Some(3)));
    assert_eq!(flaky["status"], "failed");
    assert_eq!(flaky["failures"], 2);
    assert!(flaky["error"].as_str().unwrap().contains("flaky"), "{flaky}");
    assert!(flaky["last_ok_at"].as_i64() < flaky["scanned_at"].as_i64());
    assert_eq!(
        taskreg.run(&["--json", "list"]).json().as_array().unwrap().len(),
        5,
        "the failing source keeps its tasks"
    );
    let text = taskreg.run(&["status"]).stdout;
    assert!(text.contains("failing 2 time(s) in a row"), "{text}");

    // Back again: ok, and the last failure is still told.
    std::fs::rename(work.path().join("gone"), work.path().join("flaky")).unwrap();
    taskreg.run(&["sync", "good", "flaky"]).assert_code(0);
    let flaky = taskreg.run(&["--json", "status"]).assert_code(0).json()["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str().unwrap().ends_with("/flaky"))
        .unwrap()
        .clone();
    assert_eq!(
        (flaky["status"].as_str(), flaky["failures"].as_u64()),
        (Some("ok"), Some(0))
    );
    assert!(flaky["last_error"].is_string());
}

/// Runs `script` with `sh` in a private mount namespace (`unshare -rm`: works as root and,
/// where user namespaces are allowed, as anyone), with `$TASKREG` the binary under test,
/// and returns what it printed. The script must end well (a failed mount exits 99).
fn in_mount_namespace(dir: &std::path::Path, script: &str) -> String {
    let output = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", script])
        .current_dir(dir)
        .env("TASKREG", taskreg_tests::taskreg_binary())
        .env_remove("TASKREG_DATABASE_URL")
        .env_remove("TASKREG_LOG")
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Issue 10: `list` against a read-only catalogue said "attempt to write a readonly
/// database". Read commands now work on a catalogue they cannot write (here a read-only
/// bind mount of its folder), and a sync says plainly why it cannot.
#[test]
fn read_commands_work_on_a_read_only_catalogue() {
    let work = tempfile::tempdir().unwrap();
    write_tree(&work.path().join("tasks"), 4).unwrap();
    fs::create_dir(work.path().join("db")).unwrap();
    let taskreg = Taskreg::new("sqlite://db/t.db", work.path());
    taskreg.run(&["sync", "tasks"]).assert_code(0);
    let stdout = in_mount_namespace(
        work.path(),
        r#"mount --bind db db && mount -o remount,bind,ro db || exit 99
           for command in list status problems "show task-00002" "history task-00001"; do
             $TASKREG --database sqlite://db/t.db $command >/dev/null || echo "failed: $command"
           done
           $TASKREG --database sqlite://db/t.db --json list
           $TASKREG --database sqlite://db/t.db sync tasks 2>&1 >/dev/null; echo "sync exit $?""#,
    );
    assert!(!stdout.contains("failed:"), "{stdout}");
    assert_eq!(stdout.matches("task-0000").count(), 4, "{stdout}");
    assert!(stdout.contains("sync exit 2"), "{stdout}");
    assert!(stdout.contains("cannot be written"), "a sync names the cause: {stdout}");
}

/// Issue 10: a full disk reported "Cannot perform this operation outside of a
/// transaction". It is now reported as a full disk, with the catalogue intact.
#[test]
fn a_full_disk_is_reported_as_such_and_the_catalogue_is_intact() {
    let work = tempfile::tempdir().unwrap();
    write_tree(&work.path().join("few"), 3).unwrap();
    // Tasks large enough together to fill a 512 KiB filesystem.
    for i in 0..300 {
        let dir = work.path().join(format!("many/big-{i}"));
        write_named_task(&dir, &format!("big-{i}"), "1.0.0", i).unwrap();
        let script = format!("(function (input) {{ return input; }})\n// {}\n", "x".repeat(4000));
        fs::write(dir.join("main.js"), script).unwrap();
    }
    fs::create_dir(work.path().join("small")).unwrap();
    let stdout = in_mount_namespace(
        work.path(),
        r#"mount -t tmpfs -o size=512k tmpfs small || exit 99
           $TASKREG --database sqlite://small/t.db sync few >/dev/null; echo "first exit $?"
           $TASKREG --database sqlite://small/t.db sync many >/dev/null 2>small-error.txt; echo "second exit $?"
           cp small-error.txt error.txt
           $TASKREG --database sqlite://small/t.db --json list"#,
    );
    assert!(
        stdout.contains("first exit 0") && stdout.contains("second exit 2"),
        "{stdout}"
    );
    let error = fs::read_to_string(work.path().join("error.txt")).unwrap();
    assert!(error.contains("is full") && error.contains("intact"), "{error}");
    assert_eq!(
        stdout.matches("\"name\"").count(),
        3,
        "the first sync's tasks, nothing else: {stdout}"
    );
}

/// Issue 10, item 9: a `filesystem` source with `colour = "red"` synced with exit 0,
/// although the docs promise unknown keys are refused.
#[test]
fn unknown_settings_of_a_built_in_source_are_refused() {
    let (dir, taskreg) = workspace();
    write_tree(&dir.path().join("tasks"), 1).unwrap();
    fs::write(
        dir.path().join("taskreg.toml"),
        "[[sources]]\nname = \"local\"\ntype = \"filesystem\"\npath = \"tasks\"\ncolour = \"red\"\n\n[[sources]]\nname = \"remote\"\ntype = \"http\"\nurl = \"http://127.0.0.1:9/\"\nretries = 1\ncolor = \"blue\"\n",
    )
    .unwrap();
    let run = taskreg.run(&["sync"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("local") && run.stderr.contains("colour"),
        "{}",
        run.stderr
    );
}

/// Issue 10, item 3: a `main.js` with a NUL byte lost the whole PostgreSQL run and
/// `status` said "no source scanned yet" with exit 0. Now the task is a problem, the rest
/// syncs, and the outcome is the same on both backends.
#[tokio::test(flavor = "multi_thread")]
async fn a_nul_byte_in_a_task_is_that_task_s_problem_on_both_backends() {
    let work = tempfile::tempdir().unwrap();
    write_tree(&work.path().join("tasks"), 3).unwrap();
    write_named_task(&work.path().join("tasks/nul"), "nul", "1.0.0", 9).unwrap();
    fs::write(
        work.path().join("tasks/nul/main.js"),
        b"(function () { return 1; })\0\0",
    )
    .unwrap();
    let postgres = TestDatabase::postgres().await;
    let sqlite = TestDatabase::sqlite();
    let dir = work.path().to_owned();
    let urls = [postgres.url.clone(), sqlite.url.clone()];
    let outcomes = tokio::task::spawn_blocking(move || {
        urls.map(|url| {
            let taskreg = Taskreg::new(url, &dir);
            taskreg.run(&["sync", "tasks"]).assert_code(0);
            taskreg.run(&["status"]).assert_code(0);
            let problems = taskreg.run(&["--json", "problems"]).json();
            let names: Vec<String> = taskreg
                .run(&["--json", "list"])
                .json()
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["name"].as_str().unwrap().to_owned())
                .collect();
            (
                codes_of(&problems).iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                names,
            )
        })
    })
    .await
    .unwrap();
    assert_eq!(outcomes[0], outcomes[1], "PostgreSQL and SQLite agree");
    assert_eq!(outcomes[0].0, ["file.nul_byte"]);
    assert_eq!(outcomes[0].1.len(), 3);
}

/// Issue 10, item 6: a FIFO named `main.js` hung `validate` forever (the load, and then
/// the excerpt of the offending line). It is that task's problem, reported at once.
#[cfg(unix)]
#[test]
fn validate_reports_a_fifo_named_main_js_instead_of_hanging() {
    let (dir, taskreg) = workspace();
    let task = dir.path().join("piped");
    write_named_task(&task, "piped", "1.0.0", 1).unwrap();
    fs::remove_file(task.join("main.js")).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(task.join("main.js"))
            .status()
            .unwrap()
            .success()
    );
    let mut child = taskreg
        .command(&["--json", "validate", "piped"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!("validate hangs on a FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("not a regular file"), "{stdout}");
}

/// Issue 14: an unchanged resync read every broken task again (88,000 of them at 100k
/// tasks: 9–10 s instead of 3.8 s). A broken task is now kept with the fingerprint and the
/// rules it was found broken at: an unchanged resync reads nothing, still reports it, and
/// a change of the rules reads it again.
#[test]
fn an_unchanged_resync_reads_no_broken_task_until_the_rules_change() {
    let (work, taskreg) = workspace();
    let tasks = work.path().join("tasks");
    write_tree(&tasks, 3).unwrap();
    write_named_task(&tasks.join("bad-version"), "bad-version", "one", 1).unwrap();
    write_named_task(&tasks.join("bad-script"), "bad-script", "1.0.0", 2).unwrap();
    fs::write(
        tasks.join("bad-script/main.js"),
        "(function (input) { return input.a +; })\n",
    )
    .unwrap();
    let config = |script_level: &str| {
        fs::write(
            work.path().join("taskreg.toml"),
            format!("[validation]\nscript = \"{script_level}\"\n\n[[sources]]\nname = \"t\"\ntype = \"filesystem\"\npath = \"tasks\"\n"),
        )
        .unwrap();
    };
    config("error");
    let sync = || taskreg.run(&["--json", "sync"]).json();
    let first = sync();
    assert_eq!(
        (first["loaded"].as_u64(), first["invalid"].as_u64()),
        (Some(5), Some(2)),
        "{first}"
    );

    let again = sync();
    assert_eq!(again["loaded"], 0, "nothing read, broken tasks included: {again}");
    assert_eq!(again["written"], false, "{again}");
    assert_eq!(again["invalid"], 2, "still counted: {again}");
    let codes: Vec<&str> = again["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"script.syntax") && codes.len() >= 2,
        "still reported: {again}"
    );

    // Other rules: the broken tasks are read again, and the script error is now a warning.
    config("warn");
    let relaxed = sync();
    assert_eq!(relaxed["loaded"], 2, "{relaxed}");
    assert_eq!(relaxed["added"], 1, "bad-script is stored with a warning: {relaxed}");
    assert_eq!(sync()["loaded"], 0, "and then not again");
}

/// `bench --database postgres://…` measures PostgreSQL, in a database of its own on that
/// server that it drops afterwards (and `--chain` a second registry syncing from it).
#[tokio::test(flavor = "multi_thread")]
async fn bench_measures_the_postgres_server_it_is_given_in_a_database_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = taskreg_tests::postgres_server_url();
    let child = std::process::Command::new(taskreg_tests::taskreg_binary())
        .args(["--json", "--database", &server, "bench", "--tasks", "30", "--runs", "1"])
        .args(["--watch-edits", "0", "--serve-requests", "0", "--chain", "--dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let own_database = format!("taskreg_bench_{}", child.id());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["database"], "PostgreSQL", "{report}");
    for measured in ["cold_sync", "resync", "one_edit_resync"] {
        assert!(report[measured]["ms"].as_f64().is_some_and(|ms| ms > 0.0), "{report}");
    }
    assert!(!dir.path().join("bench.db").exists(), "nothing was synced into SQLite");
    // The second registry synced every task from `serve` over loopback.
    assert!(
        report["second_registry"]["cold_sync_ms"]
            .as_f64()
            .is_some_and(|ms| ms > 0.0),
        "{report}"
    );
    assert!(
        !TestDatabase::postgres_database_exists(&own_database).await,
        "the benchmark's database is dropped"
    );
}
