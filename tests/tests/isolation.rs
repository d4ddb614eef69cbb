//! Plugin libraries isolated in a child process (`isolation = "process"`): the misbehaving
//! test plugin aborts, segfaults, exits, runs out of memory or spins, in `scan` and in
//! `load`, and the `taskreg` binary that loaded it lives on, syncs its other sources,
//! removes nothing of the failed one and says what happened.

use std::path::Path;
use std::time::{Duration, Instant};
use taskreg_tests::{
    Server, Taskreg, available_versions, plugin_library, source_report, toml_path, workspace, write_named_task,
};

/// A config with the misbehaving plugin (isolated unless `isolation` says otherwise, with
/// `limits` on its entry), the misbehaving source `name`, and a filesystem source `local`.
fn config(work: &Path, isolation: &str, limits: &str, name: &str, does: &str, call: &str) -> String {
    std::fs::create_dir_all(work.join("local")).unwrap();
    format!(
        "[[plugins]]\npath = {}\nisolation = \"{isolation}\"\n{limits}\n\n\
         [[sources]]\nname = \"{name}\"\ntype = \"misbehaving\"\ndoes = \"{does}\"\nin = \"{call}\"\ntimeout = \"3s\"\n\n\
         [[sources]]\nname = \"local\"\ntype = \"filesystem\"\npath = \"local\"\n",
        toml_path(&plugin_library("misbehaving-plugin"))
    )
}

/// What each way of dying must be reported as: the signal or the exit status, or the
/// timeout that made the host kill the child.
const DEATHS: [(&str, &[&str]); 5] = [
    ("abort", &["killed by signal 6 (SIGABRT)"]),
    ("segfault", &["killed by signal 11 (SIGSEGV)"]),
    ("exit", &["exited with status 3"]),
    ("oom", &["killed by signal 6 (SIGABRT)", "memory allocation of"]),
    ("spin", &["gave no answer within 3s", "stopped the plugin process"]),
];

/// Room for the child itself, too little for the plugin's hoard.
const LIMITS: &str = "max_memory = \"512MiB\"\nmax_cpu_seconds = 60";

#[test]
fn a_child_that_dies_in_scan_fails_its_source_only_and_the_next_run_starts_afresh() {
    let (work, taskreg) = workspace();
    write_named_task(&work.path().join("local/solid"), "solid", "1.0.0", 1).unwrap();
    taskreg.configure(&config(work.path(), "process", LIMITS, "odd", "work", "scan"));
    taskreg.run(&["sync"]).assert_code(0);
    assert_eq!(available_versions(&taskreg), ["misbehaving-task@1.0.0", "solid@1.0.0"]);

    for (round, (does, report)) in DEATHS.iter().enumerate() {
        let added = format!("added-{round}");
        write_named_task(&work.path().join("local").join(&added), &added, "1.0.0", round + 10).unwrap();
        taskreg.configure(&config(work.path(), "process", LIMITS, "odd", does, "scan"));
        let run = taskreg.run(&["--json", "sync"]);
        run.assert_code(0);
        let sync = run.json();
        let odd = source_report(&sync, "odd");
        assert_eq!(odd["status"], "failed", "{does}: {odd:#}");
        let error = odd["error"].as_str().unwrap();
        for words in *report {
            assert!(error.contains(words), "{does}: `{words}` not in: {error}");
        }
        assert_eq!(source_report(&sync, "local")["status"], "ok", "{does}: {sync:#}");
        let versions = available_versions(&taskreg);
        assert!(
            versions.contains(&"misbehaving-task@1.0.0".to_owned()),
            "{does}: the failed source removed its task: {versions:?}"
        );
        assert!(versions.contains(&format!("{added}@1.0.0")), "{does}: {versions:?}");

        // Working again: a new child, and the source syncs.
        taskreg.configure(&config(work.path(), "process", LIMITS, "odd", "work", "scan"));
        let again = taskreg.run(&["--json", "sync"]).assert_code(0).json();
        assert_eq!(source_report(&again, "odd")["status"], "ok", "{does}: {again:#}");
    }
}

#[test]
fn a_child_that_dies_in_load_is_that_tasks_problem_and_the_stored_version_stays() {
    let (work, taskreg) = workspace();
    write_named_task(&work.path().join("local/solid"), "solid", "1.0.0", 1).unwrap();
    for (round, (does, report)) in DEATHS.iter().enumerate() {
        // A source name of its own each round, so that its task is loaded (not known yet).
        let name = format!("fresh-{does}");
        let added = format!("added-{round}");
        write_named_task(&work.path().join("local").join(&added), &added, "1.0.0", round + 10).unwrap();
        taskreg.configure(&config(work.path(), "process", LIMITS, &name, does, "load"));
        let run = taskreg.run(&["--json", "sync"]);
        run.assert_code(0);
        let sync = run.json();
        let problem = sync["problems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["source"] == name.as_str())
            .unwrap_or_else(|| panic!("{does}: no problem of `{name}`: {sync:#}"));
        let message = problem["message"].as_str().unwrap();
        assert!(
            message.contains("`load` failed") || *does == "spin",
            "{does}: {message}"
        );
        for words in *report {
            assert!(message.contains(words), "{does}: `{words}` not in: {message}");
        }
        assert!(
            available_versions(&taskreg).contains(&format!("{added}@1.0.0")),
            "{does}: the other source synced"
        );
    }
    // The task itself was stored once (by nobody): every load failed, and no run removed
    // the filesystem source's tasks.
    assert_eq!(available_versions(&taskreg).len(), 1 + DEATHS.len());
}

#[test]
fn the_child_sees_only_the_basic_environment_and_what_its_entry_names() {
    let (work, taskreg) = workspace();
    let environment_seen = |isolation: &str, limits: &str| -> String {
        taskreg.configure(&config(work.path(), isolation, limits, "nosy", "env", "scan"));
        let mut command = taskreg.command(&["--json", "sync"]);
        command
            .env("TASKREG_TEST_SECRET", "hunter2")
            .env("AWS_SECRET_ACCESS_KEY", "key");
        let run: taskreg_tests::Run = command.output().unwrap().into();
        run.assert_code(0);
        source_report(&run.json(), "nosy")["error"].as_str().unwrap().to_owned()
    };
    // In process, the plugin sees all of the host's environment, the database URL too.
    let shared = environment_seen("in-process", "");
    assert!(
        shared.contains("TASKREG_TEST_SECRET") && shared.contains("TASKREG_DATABASE_URL"),
        "{shared}"
    );

    let isolated = environment_seen("process", "");
    let names: Vec<&str> = isolated
        .split("environment: ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert!(names.contains(&"PATH"), "{isolated}");
    for secret in ["TASKREG_TEST_SECRET", "AWS_SECRET_ACCESS_KEY", "TASKREG_DATABASE_URL"] {
        assert!(!names.contains(&secret), "`{secret}` reached the child: {isolated}");
    }

    let named = environment_seen("process", "env = [\"TASKREG_TEST_SECRET\"]");
    assert!(named.contains("TASKREG_TEST_SECRET"), "{named}");
    assert!(!named.contains("AWS_SECRET_ACCESS_KEY"), "{named}");
}

#[test]
fn plugins_shows_where_each_library_runs_and_an_isolated_ones_child() {
    let (work, taskreg) = workspace();
    taskreg.configure(&config(work.path(), "process", LIMITS, "odd", "work", "scan"));
    let listed = taskreg.run(&["--json", "plugins"]).assert_code(0).json();
    let kind = |listed: &serde_json::Value| {
        listed["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kind"] == "misbehaving")
            .cloned()
            .unwrap()
    };
    let isolated = kind(&listed);
    assert_eq!(isolated["isolation"], "process", "{listed:#}");
    assert!(
        isolated["child"]["pid"].as_u64().is_some_and(|pid| pid > 1),
        "{isolated:#}"
    );
    assert_eq!(isolated["child"]["restarts"], 0, "{isolated:#}");
    let filesystem = listed["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "filesystem")
        .unwrap();
    assert_eq!(filesystem["isolation"], "in-process");

    taskreg.configure(&config(work.path(), "in-process", "", "odd", "work", "scan"));
    let in_process = kind(&taskreg.run(&["--json", "plugins"]).assert_code(0).json());
    assert_eq!(in_process["isolation"], "in-process");
    assert!(in_process["child"].is_null(), "{in_process:#}");
}

#[test]
fn a_library_refused_in_a_child_is_refused_with_the_in_process_words() {
    let (work, taskreg) = workspace();
    let not_a_plugin = work.path().join("libnot_a_plugin.so");
    std::fs::write(&not_a_plugin, "not an ELF file").unwrap();
    let refusal = |isolation: &str| -> Vec<String> {
        taskreg.configure(&format!(
            "[[plugins]]\npath = {}\nisolation = \"{isolation}\"\n",
            toml_path(&not_a_plugin)
        ));
        let listed = taskreg.run(&["--json", "plugins"]).assert_code(1).json();
        listed["refused"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect()
    };
    let in_process = refusal("in-process");
    assert_eq!(in_process.len(), 1, "{in_process:?}");
    assert!(in_process[0].contains("cannot open the library"), "{in_process:?}");
    assert_eq!(refusal("process"), in_process);
}

#[test]
fn what_an_isolated_plugin_prints_goes_to_the_hosts_log_not_into_the_protocol() {
    let (work, taskreg) = workspace();
    taskreg.configure(&config(work.path(), "process", "", "chatty", "print", "scan"));
    let run = taskreg.run(&["--json", "sync"]);
    run.assert_code(0);
    assert_eq!(source_report(&run.json(), "chatty")["status"], "ok", "{}", run.stderr);
    assert!(
        run.stderr.contains("misbehaving prints to stdout in scan")
            && run.stderr.contains("misbehaving prints to stderr in scan")
            && run.stderr.contains("libmisbehaving_plugin.so"),
        "the child's output, attributed to its library: {}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_watch_keeps_answering_while_an_isolated_plugin_crashes_on_every_poll() {
    let work = tempfile::tempdir().unwrap();
    write_named_task(&work.path().join("local/solid"), "solid", "1.0.0", 1).unwrap();
    let taskreg = Taskreg::new(format!("sqlite://{}", work.path().join("c.db").display()), work.path());
    let crashing = config(work.path(), "process", "", "odd", "segfault", "scan")
        .replace("timeout = \"3s\"", "timeout = \"3s\"\npoll_interval = \"1s\"");
    taskreg.configure(&crashing);
    let server = Server::start(&taskreg, &["--watch", "--debounce-ms", "50"]);
    let _ = rustls::crypto::ring::default_provider().install_default();

    let deadline = Instant::now() + Duration::from_secs(90);
    while reqwest::get(format!("{}/v1/tasks/solid", server.base))
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(Instant::now() < deadline, "the first sync never stored `solid`");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut answered = 0;
    let mut failed_scans = std::collections::BTreeSet::new();
    loop {
        let response = reqwest::get(format!("{}/v1/tasks/solid", server.base)).await.unwrap();
        assert_eq!(response.status(), 200, "while the plugin crashes");
        answered += 1;
        let status = taskreg.run(&["--json", "status"]).json();
        let odd = status["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "odd")
            .cloned();
        if let Some(odd) = odd.filter(|o| o["status"] == "failed") {
            let error = odd["last_error"].as_str().unwrap_or_default();
            assert!(error.contains("SIGSEGV"), "{odd:#}");
            failed_scans.insert(odd["scanned_at"].to_string());
        }
        if failed_scans.len() >= 3 && answered >= 10 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} failed scans seen: {failed_scans:?}\n{}",
            failed_scans.len(),
            server.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // `/metrics` counts the children started after the first.
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let restarts: u64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("taskreg_plugin_child_restarts_total{library=") && l.contains("libmisbehaving_plugin.so")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no restarts counted: {metrics}"));
    assert!(restarts >= 1, "{metrics}");
    assert!(metrics.contains("taskreg_plugin_child_up{library="), "{metrics}");
    // The host is still the same process, and a new task still reaches the catalogue.
    assert!(server.child.id() > 0);
    write_named_task(&work.path().join("local/late"), "late", "1.0.0", 2).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{}/v1/tasks/late", server.base))
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(Instant::now() < deadline, "`late` never arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(server);
}

/// Through the library, as an embedding application runs it: one host process, a child
/// that dies, the next call in a new child, and a pause once it keeps dying.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_child_is_replaced_by_the_next_call_and_one_that_keeps_dying_waits() {
    use registry_host::plugins::{ChildOptions, Isolation, PluginLocation, PluginSet};
    let work = tempfile::tempdir().unwrap();
    let plugins =
        PluginSet::load(&[
            PluginLocation::library(plugin_library("misbehaving-plugin")).isolated(Isolation::Process(ChildOptions {
                program: Some(taskreg_tests::taskreg_binary()),
                ..ChildOptions::default()
            })),
        ]);
    assert!(plugins.refused.is_empty(), "{:?}", plugins.refused);
    let first_pid = plugins.libraries[0]
        .child_status()
        .unwrap()
        .pid
        .expect("a running child");
    let builder = registry_host::sources::SourceBuilder {
        plugins,
        cache_dir: work.path().to_owned(),
        ..Default::default()
    };
    let source = |name: &str, does: &str| {
        let settings = serde_json::json!({ "does": does, "in": "load" });
        builder
            .build_one(&registry_core::SourceSpec::new(name, "misbehaving", settings))
            .unwrap()
    };
    let (working, crashing) = (source("working", "work"), source("crashing", "segfault"));
    let status = || builder.plugins.libraries[0].child_status().unwrap();

    let entry = working.scan().await.unwrap().entries.remove(0);
    assert!(working.load(&entry).await.is_ok());
    let died = crashing.load(&entry).await.unwrap_err().to_string();
    assert!(died.contains("SIGSEGV"), "{died}");
    assert_eq!(status().pid, None, "the child is gone");

    // The next call starts a new child, which opens the working source again.
    assert!(working.load(&entry).await.is_ok());
    let second = status();
    assert_eq!(second.restarts, 1);
    assert!(second.pid.is_some_and(|pid| pid != first_pid), "{second:?}");

    // Two deaths in a row: the third call comes before the pause is over and fails at
    // once, without starting a child.
    assert!(crashing.load(&entry).await.unwrap_err().to_string().contains("SIGSEGV"));
    assert!(crashing.load(&entry).await.unwrap_err().to_string().contains("SIGSEGV"));
    let restarts = status().restarts;
    let paused = working.load(&entry).await.unwrap_err().to_string();
    assert!(paused.contains("died 2 times in a row"), "{paused}");
    assert_eq!(status().restarts, restarts, "no child started in the pause");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(working.load(&entry).await.is_ok(), "after the pause, a new child");
    assert_eq!(status().restarts, restarts + 1);
}

#[test]
fn a_call_that_burns_its_cpu_budget_is_ended_by_the_kernel_before_its_timeout() {
    let (work, taskreg) = workspace();
    taskreg.configure(
        &config(work.path(), "process", "max_cpu_seconds = 1", "busy", "spin", "scan")
            .replace("timeout = \"3s\"", "timeout = \"60s\""),
    );
    let started = Instant::now();
    let sync = taskreg.run(&["--json", "sync"]).assert_code(0).json();
    let error = source_report(&sync, "busy")["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("SIGXCPU") && error.contains("max_cpu_seconds"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "ended by the CPU limit, not the timeout"
    );
}

#[test]
fn a_plugin_host_that_cannot_start_or_speaks_another_protocol_is_named_in_the_refusal() {
    let (work, taskreg) = workspace();
    taskreg.configure(&config(work.path(), "process", "", "odd", "work", "scan"));
    let refusal = |program: &Path| -> String {
        let mut command = taskreg.command(&["--json", "plugins"]);
        command.env("TASKREG_PLUGIN_HOST", program);
        let run: taskreg_tests::Run = command.output().unwrap().into();
        run.assert_code(1);
        run.json()["refused"][0].as_str().unwrap().to_owned()
    };
    let missing = refusal(&work.path().join("no-such-program"));
    assert!(
        missing.contains("cannot start the plugin host") && missing.contains("no-such-program"),
        "{missing}"
    );

    // A program that answers with protocol 9: one frame of one byte, then goes away.
    let other = work.path().join("other-host");
    std::fs::write(&other, "#!/bin/sh\nprintf '\\001\\000\\000\\000\\011'\n").unwrap();
    let mut permissions = std::fs::metadata(&other).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&other, permissions).unwrap();
    let mismatch = refusal(&other);
    assert!(mismatch.contains("speaks protocol 9, this taskreg 1"), "{mismatch}");
}
