//! The git source called directly (as the host's adapter would), on repositories made
//! with the `git` command line in each test.

use git_source::GitSource;
use registry_plugin_api::{Host, PluginSource, SourceRequest};
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A repository with a task at the root of `tasks/solo`, a README beside it, extra files
/// inside it, and a hidden folder holding something task-shaped.
fn repository(dir: &Path) -> std::path::PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "trunk"]);
    write(
        &repo.join("tasks/solo/metadata.json"),
        r#"{"name": "solo", "version": "1.0.0"}"#,
    );
    write(&repo.join("tasks/solo/main.js"), "(function (input) { return input; })");
    write(
        &repo.join("tasks/solo/tests/one.json"),
        r#"{"input": {}, "output": {}}"#,
    );
    write(&repo.join("tasks/solo/notes.md"), "not part of the task");
    write(&repo.join("tasks/solo/tests/deep/two.json"), "{}");
    write(
        &repo.join("tasks/.drafts/hidden/metadata.json"),
        r#"{"name": "hidden", "version": "1.0.0"}"#,
    );
    write(&repo.join("README.md"), "readme");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "solo"]);
    repo
}

fn source(dir: &Path, config: serde_json::Value) -> Result<GitSource, registry_plugin_api::PluginError> {
    GitSource::new(SourceRequest {
        kind: "git".into(),
        name: "test".into(),
        config,
        base_dir: dir.to_owned(),
        cache_dir: dir.join("cache"),
        read_limits: Default::default(),
    })
}

#[test]
fn a_scan_finds_task_folders_and_a_load_reads_only_task_files() {
    let dir = tempfile::tempdir().unwrap();
    repository(dir.path());
    // A relative `url` is relative to the config's folder (`base_dir`).
    let git_source = source(
        dir.path(),
        serde_json::json!({ "url": "repo", "subdirectory": "tasks/" }),
    )
    .unwrap();
    let host = Host::standalone();
    let scan = git_source.scan(&host).unwrap();
    let locators: Vec<&str> = scan.entries.iter().map(|e| e.locator.as_str()).collect();
    assert_eq!(locators, ["solo"], "hidden folders are skipped");
    assert!(scan.complete);
    assert!(scan.entries[0].fingerprint.starts_with("git:"));

    let bundle = git_source.load("solo", &host).unwrap();
    let mut paths: Vec<&str> = bundle.files.iter().map(|(p, _)| p.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["main.js", "metadata.json", "tests/one.json"]);
    assert_eq!(bundle.folder_name.as_deref(), Some("solo"));
}

#[test]
fn a_commit_id_is_a_ref_and_a_missing_subdirectory_fails_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repository(dir.path());
    let first = git(&repo, &["rev-parse", "HEAD"]);
    write(
        &repo.join("tasks/solo/metadata.json"),
        r#"{"name": "solo", "version": "2.0.0"}"#,
    );
    git(&repo, &["commit", "-q", "-am", "solo 2"]);
    let host = Host::standalone();

    let pinned = source(
        dir.path(),
        serde_json::json!({ "url": "repo", "ref": first, "subdirectory": "tasks" }),
    )
    .unwrap();
    let latest = source(
        dir.path(),
        serde_json::json!({ "url": "repo", "subdirectory": "tasks" }),
    )
    .unwrap();
    let pinned_scan = pinned.scan(&host).unwrap();
    let latest_scan = latest.scan(&host).unwrap();
    assert_ne!(pinned_scan.entries[0].fingerprint, latest_scan.entries[0].fingerprint);
    let metadata = |bundle: registry_plugin_api::Bundle| {
        bundle
            .files
            .into_iter()
            .find(|(p, _)| p == "metadata.json")
            .map(|(_, b)| String::from_utf8(b).unwrap())
    };
    assert!(metadata(pinned.load("solo", &host).unwrap()).unwrap().contains("1.0.0"));
    assert!(metadata(latest.load("solo", &host).unwrap()).unwrap().contains("2.0.0"));

    let nowhere = source(dir.path(), serde_json::json!({ "url": "repo", "subdirectory": "nope" })).unwrap();
    let error = nowhere.scan(&host).unwrap_err();
    assert_eq!(error.code, "subdirectory_not_found");
    assert!(!error.retryable);
}

#[test]
fn settings_that_cannot_work_are_refused_when_the_source_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let both = source(
        dir.path(),
        serde_json::json!({ "url": "repo", "token": "a", "token_file": "b" }),
    );
    assert!(both.err().unwrap().message.contains("not both"));
    let escape = source(
        dir.path(),
        serde_json::json!({ "url": "repo", "subdirectory": "../elsewhere" }),
    );
    assert!(escape.err().unwrap().message.contains("may not leave the repository"));
    let unreadable = source(
        dir.path(),
        serde_json::json!({ "url": "repo", "token_file": "missing" }),
    );
    assert!(unreadable.err().unwrap().message.contains("cannot read token_file"));
}

#[test]
fn an_unreachable_remote_fails_the_scan_as_retryable() {
    let dir = tempfile::tempdir().unwrap();
    let gone = source(dir.path(), serde_json::json!({ "url": "does-not-exist" })).unwrap();
    let error = gone.scan(&Host::standalone()).unwrap_err();
    assert_eq!(error.code, "fetch_failed", "{error}");
    assert!(error.retryable);
}

/// Issue 10, item 5: a blob over the read limits is refused by its size, read from the
/// object's header, before its content is read.
#[test]
fn a_blob_over_the_read_limits_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repository(dir.path());
    write(
        &repo.join("tasks/big/metadata.json"),
        r#"{"name": "big", "version": "1.0.0"}"#,
    );
    write(&repo.join("tasks/big/main.js"), &format!("// {}\n", "x".repeat(20_000)));
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "big"]);
    let limited = GitSource::new(SourceRequest {
        kind: "git".into(),
        name: "test".into(),
        config: serde_json::json!({ "url": "repo", "subdirectory": "tasks" }),
        base_dir: dir.path().to_owned(),
        cache_dir: dir.path().join("cache"),
        read_limits: registry_plugin_api::ReadLimits {
            max_file_bytes: 10_000,
            max_task_bytes: 100_000,
        },
    })
    .unwrap();
    let host = Host::standalone();
    limited.scan(&host).unwrap();
    let error = limited.load("big", &host).unwrap_err();
    assert_eq!(error.code, "too_large");
    assert!(
        error.message.contains("`main.js` is 20004 bytes; the cap is 10000"),
        "{}",
        error.message
    );
    // The small task of the same commit loads.
    assert!(limited.load("solo", &host).is_ok());
}
