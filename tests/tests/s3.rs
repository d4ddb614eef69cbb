//! The S3 source plugin loaded for real: the `cdylib` built from this workspace, loaded by
//! the `taskreg` binary, syncing buckets of a real S3-protocol server (moto) on loopback.

use std::path::Path;
use taskreg_test_support::{S3Credentials, S3Server, S3Writer};
use taskreg_tests::{Run, Taskreg, available_versions, plugin_library, workspace, write_named_task};

const BUCKET: &str = "tasks";

/// Writes the config: the plugin and one `s3` source named `published` with `settings`.
fn configure(taskreg: &Taskreg, server: &S3Server, settings: &str) {
    let library = serde_json::to_string(&plugin_library("s3-source").display().to_string()).unwrap();
    std::fs::write(
        taskreg.dir.join("taskreg.toml"),
        format!(
            "[[plugins]]\npath = {library}\n\n[[sources]]\nname = \"published\"\ntype = \"s3\"\nbucket = \"{BUCKET}\"\n\
             prefix = \"team\"\nendpoint = \"{}\"\nallow_http = true\n{settings}",
            server.endpoint()
        ),
    )
    .unwrap();
}

/// Uploads task `name` at `version` to `team/FOLDER/` through a folder written here.
fn publish(writer: &S3Writer, scratch: &Path, folder: &str, name: &str, version: &str, seed: usize) {
    let dir = scratch.join(format!("publish-{folder}-{version}"));
    write_named_task(&dir, name, version, seed).unwrap();
    writer.put_folder(&format!("team/{folder}"), &dir, 8);
}

fn source_report(report: &serde_json::Value) -> &serde_json::Value {
    &report["sources"][0]
}

/// GETs of objects (not listings) since request number `since`.
fn object_gets(server: &S3Server, since: usize) -> Vec<String> {
    server
        .requests()
        .into_iter()
        .skip(since)
        .filter(|r| r.method == "GET" && !r.target.contains("list-type=2"))
        .map(|r| r.target)
        .collect()
}

fn sync(taskreg: &Taskreg) -> serde_json::Value {
    taskreg.run(&["--json", "sync"]).assert_code(0).json()
}

#[test]
fn a_bucket_syncs_and_resyncs_download_only_what_changed_and_deleted_tasks_go_missing() {
    let (work, taskreg) = workspace();
    let server = S3Server::start();
    assert_eq!(server.request("PUT", &format!("/{BUCKET}"), &[], b"").0, 200);
    let writer = server.writer(BUCKET, &S3Credentials::any());
    publish(&writer, work.path(), "addition", "addition", "1.0.0", 1);
    publish(&writer, work.path(), "weather", "weather", "1.0.0", 2);
    publish(&writer, work.path(), "legacy/report", "report", "0.3.0", 3);
    configure(
        &taskreg,
        &server,
        "access_key_id = \"test\"\nsecret_access_key = \"test\"\n",
    );

    let first = sync(&taskreg);
    assert_eq!(source_report(&first)["status"], "ok", "{first:#}");
    assert_eq!(source_report(&first)["location"], "s3://tasks/team");
    assert_eq!(
        available_versions(&taskreg),
        ["addition@1.0.0", "report@0.3.0", "weather@1.0.0"]
    );

    // Nothing changed: one listing, no object downloaded, nothing written.
    let before = server.requests().len();
    let again = sync(&taskreg);
    assert_eq!(again["loaded"], 0, "{again:#}");
    assert_eq!(again["written"], false);
    assert_eq!(object_gets(&server, before), Vec::<String>::new());

    // One task republished: its files alone are downloaded.
    publish(&writer, work.path(), "weather", "weather", "1.1.0", 4);
    let before = server.requests().len();
    let changed = sync(&taskreg);
    assert_eq!(changed["loaded"], 1, "{changed:#}");
    let gets = object_gets(&server, before);
    assert!(
        !gets.is_empty() && gets.iter().all(|g| g.starts_with("/tasks/team/weather/")),
        "{gets:?}"
    );
    assert!(available_versions(&taskreg).contains(&"weather@1.1.0".to_string()));

    // A task deleted from the bucket goes missing after a complete scan.
    for file in ["metadata.json", "main.js", "input.schema.json", "output.schema.json"] {
        writer.delete(&format!("team/legacy/report/{file}"));
    }
    let removed = sync(&taskreg);
    assert_eq!(removed["missing"], 1, "{removed:#}");
    assert!(!available_versions(&taskreg).iter().any(|v| v.starts_with("report@")));
}

#[test]
fn a_wrong_secret_is_reported_as_misconfigured_and_removes_nothing() {
    let (work, taskreg) = workspace();
    let (server, credentials) = S3Server::start_checking_signatures(&[BUCKET]);
    let writer = server.writer(BUCKET, &credentials);
    publish(&writer, work.path(), "addition", "addition", "1.0.0", 1);
    configure(&taskreg, &server, "");

    // Credentials from the standard environment variables.
    let with_env = |secret: &str| -> Run {
        taskreg
            .command(&["--json", "sync"])
            .env("AWS_ACCESS_KEY_ID", &credentials.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .output()
            .expect("run taskreg")
            .into()
    };
    let first = with_env(&credentials.secret_access_key).assert_code(0).json();
    assert_eq!(source_report(&first)["status"], "ok", "{first:#}");
    assert_eq!(available_versions(&taskreg), ["addition@1.0.0"]);

    let denied = with_env("not-the-secret").json();
    let report = source_report(&denied);
    assert_eq!(report["status"], "misconfigured", "{denied:#}");
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("source `published` is misconfigured") && error.contains("denied"),
        "{error}"
    );
    assert_eq!(available_versions(&taskreg), ["addition@1.0.0"], "nothing removed");
    // `status` keeps it, and exits 1 as for any source whose latest scan failed.
    let status = taskreg.run(&["--json", "status"]).assert_code(1).json();
    assert_eq!(status["sources"][0]["status"], "misconfigured", "{status:#}");
}

#[test]
fn a_server_that_went_away_fails_the_source_and_keeps_the_catalogue_whole() {
    let (work, taskreg) = workspace();
    let mut server = S3Server::start();
    assert_eq!(server.request("PUT", &format!("/{BUCKET}"), &[], b"").0, 200);
    let writer = server.writer(BUCKET, &S3Credentials::any());
    publish(&writer, work.path(), "addition", "addition", "1.0.0", 1);
    publish(&writer, work.path(), "weather", "weather", "1.0.0", 2);
    configure(
        &taskreg,
        &server,
        "access_key_id = \"test\"\nsecret_access_key = \"test\"\n",
    );
    sync(&taskreg);

    server.stop();
    let report = taskreg.run(&["--json", "sync"]).json();
    let source = source_report(&report);
    assert_eq!(source["status"], "failed", "{report:#}");
    assert_eq!(source["complete"], false);
    assert!(
        source["error"]
            .as_str()
            .unwrap()
            .contains("cannot list s3://tasks/team"),
        "{source:#}"
    );
    assert_eq!(available_versions(&taskreg), ["addition@1.0.0", "weather@1.0.0"]);
}

#[test]
fn watch_does_not_retry_a_misconfigured_source_before_its_next_poll() {
    use std::io::BufRead as _;
    let (_work, taskreg) = workspace();
    let (server, credentials) = S3Server::start_checking_signatures(&[BUCKET]);
    configure(
        &taskreg,
        &server,
        &format!(
            "access_key_id = \"{}\"\nsecret_access_key = \"not-the-secret\"\npoll_interval = \"1h\"\n",
            credentials.access_key_id
        ),
    );
    let mut watch = taskreg
        .command(&["--json", "watch"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let (send, runs) = std::sync::mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(run) = serde_json::from_str(&line) {
                let _ = send.send(run);
            }
        }
    });
    let first = runs
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the initial sync");
    assert_eq!(first["sources"][0]["status"], "misconfigured", "{first:#}");
    // A failed source is retried after 1 s, then 2 s (backoff); a misconfigured one waits
    // for its poll interval, an hour here.
    let retried = runs.recv_timeout(std::time::Duration::from_secs(5));
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(retried.is_err(), "a run came before the poll interval: {retried:?}");
}

#[test]
fn a_server_stopped_while_tasks_load_leaves_every_task_at_one_whole_version() {
    let (work, taskreg) = workspace();
    let mut server = S3Server::start();
    assert_eq!(server.request("PUT", &format!("/{BUCKET}"), &[], b"").0, 200);
    let writer = server.writer(BUCKET, &S3Credentials::any());
    let names: Vec<String> = (0..60).map(|i| format!("task-{i:03}")).collect();
    let publish_all = |version: &str| {
        let tree = work.path().join(format!("tree-{version}"));
        for (seed, name) in names.iter().enumerate() {
            write_named_task(&tree.join(name), name, version, seed).unwrap();
        }
        writer.put_folder("team", &tree, 16);
    };
    publish_all("1.0.0");
    configure(
        &taskreg,
        &server,
        "access_key_id = \"test\"\nsecret_access_key = \"test\"\n",
    );
    sync(&taskreg);
    assert_eq!(available_versions(&taskreg).len(), 60);

    // Every task republished; the server goes away once the run has started loading.
    publish_all("2.0.0");
    let before = server.requests().len();
    let run = taskreg
        .command(&["--json", "sync"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while object_gets(&server, before).is_empty() {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "no load began");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.stop();
    let output = run.wait_with_output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    assert_eq!(
        report["sources"][0]["status"], "ok",
        "the listing was whole: {report:#}"
    );

    // Every task is still there: at 1.0.0 where its load failed, at 2.0.0 where it loaded.
    let versions = available_versions(&taskreg);
    let mut by_name: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for version in &versions {
        let (name, number) = version.split_once('@').unwrap();
        by_name.entry(name.to_owned()).or_default().push(number.to_owned());
    }
    assert_eq!(by_name.len(), 60, "{versions:?}");
    let updated = versions.iter().filter(|v| v.ends_with("@2.0.0")).count();
    assert!(updated < 60, "the stop came before every load: {report:#}");
    assert!(
        report["problems"].to_string().contains("unavailable") || report.to_string().contains("unavailable"),
        "the failed loads are reported: {report:#}"
    );
}

/// Signed tasks published to a bucket: the plugin carries `signature.minisig` with the
/// task's files, the host verifies it, refuses an unsigned task under `require`, and keeps
/// the signed version when its files are replaced in the bucket without signing again.
#[test]
fn signed_tasks_in_a_bucket_are_verified_and_a_tampered_copy_is_refused() {
    let (work, taskreg) = workspace();
    let server = S3Server::start();
    assert_eq!(server.request("PUT", &format!("/{BUCKET}"), &[], b"").0, 200);
    let writer = server.writer(BUCKET, &S3Credentials::any());
    let (secret, public, key_id) = taskreg.keygen(work.path(), "release");
    let signed = work.path().join("publish-alpha");
    write_named_task(&signed, "alpha", "1.0.0", 1).unwrap();
    taskreg
        .run(&[
            "sign",
            "--secret-key",
            secret.to_str().unwrap(),
            signed.to_str().unwrap(),
        ])
        .assert_code(0);
    assert!(signed.join("signature.minisig").exists());
    writer.put_folder("team/alpha", &signed, 8);
    publish(&writer, work.path(), "beta", "beta", "1.0.0", 2);
    configure(
        &taskreg,
        &server,
        &format!(
            "access_key_id = \"test\"\nsecret_access_key = \"test\"\n\n[signatures]\nmode = \"require\"\ntrusted_keys = [{}]\n",
            taskreg_tests::toml_path(&public)
        ),
    );

    let first = sync(&taskreg);
    assert_eq!(source_report(&first)["status"], "ok", "{first:#}");
    assert_eq!(
        available_versions(&taskreg),
        ["alpha@1.0.0"],
        "unsigned beta is refused"
    );
    let shown = taskreg.run(&["--json", "show", "alpha"]).assert_code(0).json();
    assert_eq!(shown["signed_by"], key_id.as_str(), "{shown:#}");
    let digest = shown["digest"].clone();
    assert_has_problem(&taskreg, "beta", "signature.missing");

    // The script replaced in the bucket, the old signature left beside it.
    writer.put(
        "team/alpha/main.js",
        "(function (input) { return { sum: 0 }; })\n".as_bytes().to_vec(),
    );
    sync(&taskreg);
    let kept = taskreg.run(&["--json", "show", "alpha"]).assert_code(0).json();
    assert_eq!(kept["digest"], digest, "the signed version stays: {kept:#}");
    assert_eq!(kept["signed_by"], key_id.as_str());
    assert_has_problem(&taskreg, "alpha", "signature.invalid");
}

/// Asserts that `taskreg problems` lists `code` at `locator`.
#[track_caller]
fn assert_has_problem(taskreg: &Taskreg, locator: &str, code: &str) {
    let problems = taskreg.run(&["--json", "problems"]).json();
    assert!(
        problems
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["locator"] == locator && p["code"] == code),
        "no {code} at {locator}: {problems:#}"
    );
}
