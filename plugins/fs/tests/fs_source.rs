//! FsSource against real folders made in each test.

use fs_source::FsSource;
use registry_core::{ScanScope, Source, SourceError, parse_bundle};
use std::fs;
use std::path::Path;

fn write_task(dir: &Path, name: &str) {
    fs::create_dir_all(dir.join("tests")).unwrap();
    fs::write(
        dir.join("metadata.json"),
        format!(r#"{{"name":"{name}","version":"1.0.0"}}"#),
    )
    .unwrap();
    fs::write(dir.join("main.js"), "(function (input) { return input; })").unwrap();
    fs::write(dir.join("tests/one.json"), r#"{"input":1,"expected_output":1}"#).unwrap();
}

#[tokio::test]
async fn finds_tasks_at_any_depth_and_skips_hidden_folders_node_modules_and_task_subfolders() {
    let root = tempfile::tempdir().unwrap();
    write_task(&root.path().join("addition"), "addition");
    write_task(&root.path().join("team/weather"), "weather");
    write_task(&root.path().join(".git/hidden"), "hidden");
    write_task(&root.path().join("node_modules/dep"), "dep");
    write_task(&root.path().join("addition/tests/nested"), "nested");
    let scan = FsSource::new("s", root.path()).scan().await.unwrap();
    let locators: Vec<&str> = scan.entries.iter().map(|e| e.locator.as_str()).collect();
    assert_eq!(locators, ["addition", "team/weather"]);
    assert!(scan.complete);
}

#[tokio::test]
async fn a_missing_root_fails_the_scan_instead_of_reporting_an_empty_tree() {
    let root = tempfile::tempdir().unwrap();
    let source = FsSource::new("gone", root.path().join("does-not-exist"));
    match source.scan().await {
        Err(SourceError::Unavailable { source_name, reason }) => {
            assert_eq!(source_name, "gone");
            assert!(reason.contains("does-not-exist"), "{reason}");
        }
        other => panic!("expected an unavailable source, got {other:?}"),
    }
}

#[tokio::test]
async fn fingerprint_changes_with_an_edit_and_not_with_an_unrelated_file() {
    let root = tempfile::tempdir().unwrap();
    let task = root.path().join("t");
    write_task(&task, "t");
    let source = FsSource::new("s", root.path());
    let before = source.scan().await.unwrap().entries[0].fingerprint.clone();
    fs::write(task.join("README.md"), "notes").unwrap();
    assert_eq!(source.scan().await.unwrap().entries[0].fingerprint, before);
    fs::write(task.join("main.js"), "(function (input) { return 2; })").unwrap();
    assert_ne!(source.scan().await.unwrap().entries[0].fingerprint, before);
    let edited = source.scan().await.unwrap().entries[0].fingerprint.clone();
    // Same size, new mtime: still noticed.
    fs::write(task.join("main.js"), "(function (input) { return 3; })").unwrap();
    filetime::set_file_mtime(task.join("main.js"), filetime::FileTime::from_unix_time(1, 0)).unwrap();
    assert_ne!(source.scan().await.unwrap().entries[0].fingerprint, edited);
}

#[tokio::test]
async fn a_root_that_is_itself_a_task_is_one_entry_named_after_its_folder() {
    let root = tempfile::tempdir().unwrap();
    let task = root.path().join("solo");
    write_task(&task, "solo");
    let source = FsSource::new("s", &task);
    let scan = source.scan().await.unwrap();
    assert_eq!(scan.entries.len(), 1);
    assert_eq!(scan.entries[0].locator, ".");
    let bundle = source.load(&scan.entries[0]).await.unwrap();
    assert_eq!(bundle.folder_name.as_deref(), Some("solo"));
    assert_eq!(parse_bundle(&bundle).unwrap().task.name, "solo");
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_out_of_the_root_is_refused_with_the_file_named() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret.js"), "secret").unwrap();
    let root = tempfile::tempdir().unwrap();
    let task = root.path().join("t");
    write_task(&task, "t");
    fs::remove_file(task.join("main.js")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.js"), task.join("main.js")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("linked-dir")).unwrap();
    let source = FsSource::new("s", root.path());
    let scan = source.scan().await.unwrap();
    assert_eq!(scan.entries.len(), 1, "a symlinked folder is not followed");
    match source.load(&scan.entries[0]).await {
        Err(SourceError::File { file, reason }) => {
            assert_eq!(file, "main.js");
            assert!(reason.contains("outside"), "{reason}");
        }
        other => panic!("expected a refused file, got {other:?}"),
    }
}

#[cfg(unix)]
#[tokio::test]
async fn an_unreadable_task_file_is_listed_and_its_load_names_the_file() {
    let root = tempfile::tempdir().unwrap();
    let task = root.path().join("t");
    write_task(&task, "t");
    fs::remove_file(task.join("main.js")).unwrap();
    std::os::unix::fs::symlink(task.join("missing-target.js"), task.join("main.js")).unwrap();
    let source = FsSource::new("s", root.path());
    let scan = source.scan().await.unwrap();
    assert!(scan.complete);
    assert_eq!(scan.entries.len(), 1);
    match source.load(&scan.entries[0]).await {
        Err(SourceError::File { file, .. }) => assert_eq!(file, "main.js"),
        other => panic!("expected an unreadable file, got {other:?}"),
    }
}

/// What a rescan after changes at `changed` (relative to the root) covers and finds.
async fn rescan(root: &Path, changed: &[&str]) -> (ScanScope, Vec<String>) {
    let paths: Vec<_> = changed.iter().map(|c| root.join(c)).collect();
    let (scope, scan) = FsSource::new("s", root).scan_changed(&paths).await.unwrap().unwrap();
    assert!(scan.complete);
    (scope, scan.entries.into_iter().map(|e| e.locator).collect())
}

fn within(prefixes: &[&str]) -> ScanScope {
    ScanScope::Within(prefixes.iter().map(|p| p.to_string()).collect())
}

#[tokio::test]
async fn a_rescan_after_changes_walks_only_the_folders_they_concern() {
    let dir = tempfile::tempdir().unwrap();
    let root = &std::path::absolute(dir.path()).unwrap();
    for locator in ["g1/a", "g1/b", "g10/c", "deep/er/d"] {
        write_task(&root.join(locator), "t");
    }
    // An edit deep inside a task: that task.
    assert_eq!(
        rescan(root, &["g1/a/tests/one.json"]).await,
        (within(&["g1/a"]), vec!["g1/a".into()])
    );
    // A deleted task folder: the deepest folder still there, where its absence shows.
    fs::remove_dir_all(root.join("g1/b")).unwrap();
    assert_eq!(rescan(root, &["g1/b"]).await, (within(&["g1"]), vec!["g1/a".into()]));
    // A rename: both ends, the covered one walked once; `g10` is not inside `g1`.
    fs::rename(root.join("g1/a"), root.join("g1/z")).unwrap();
    assert_eq!(
        rescan(root, &["g1/a", "g1/z", "g10/c/main.js"]).await,
        (within(&["g1", "g10/c"]), vec!["g1/z".into(), "g10/c".into()])
    );
    // A folder added with tasks inside: that folder.
    write_task(&root.join("new/x"), "x");
    assert_eq!(rescan(root, &["new"]).await, (within(&["new"]), vec!["new/x".into()]));
    // A task folder that lost its metadata.json is no task: walked, nothing found.
    fs::remove_file(root.join("deep/er/d/metadata.json")).unwrap();
    assert_eq!(
        rescan(root, &["deep/er/d/metadata.json"]).await,
        (within(&["deep/er/d"]), vec![])
    );
    // A change at the root itself rescans everything.
    let (scope, found) = rescan(root, &[""]).await;
    assert_eq!(scope, ScanScope::Whole);
    assert_eq!(found, ["g1/z", "g10/c", "new/x"]);
}

#[tokio::test]
async fn a_rescan_ignores_changes_a_full_scan_would_not_see() {
    let dir = tempfile::tempdir().unwrap();
    let root = &std::path::absolute(dir.path()).unwrap();
    write_task(&root.join("a"), "a");
    write_task(&root.join(".git/hidden"), "hidden");
    assert_eq!(rescan(root, &[".git/hidden/main.js"]).await, (within(&[]), vec![]));
}

/// Issue 10, item 6: a FIFO named `main.js` hung `sync` and `validate` forever.
#[cfg(unix)]
#[tokio::test]
async fn a_fifo_named_like_a_task_file_is_that_tasks_problem_and_never_blocks() {
    let root = tempfile::tempdir().unwrap();
    let task = root.path().join("piped");
    write_task(&task, "piped");
    fs::remove_file(task.join("main.js")).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(task.join("main.js"))
        .status()
        .unwrap();
    assert!(status.success());
    // And one behind a symlink, which the listing sees as a link, not as a FIFO.
    let linked = root.path().join("linked");
    write_task(&linked, "linked");
    fs::remove_file(linked.join("main.js")).unwrap();
    std::os::unix::fs::symlink(task.join("main.js"), linked.join("main.js")).unwrap();
    write_task(&root.path().join("fine"), "fine");

    let source = FsSource::new("s", root.path());
    let scan = tokio::time::timeout(std::time::Duration::from_secs(10), source.scan())
        .await
        .expect("the scan does not block")
        .unwrap();
    assert_eq!(scan.entries.len(), 3, "the FIFO task is listed, not skipped");
    for entry in &scan.entries {
        let loaded = tokio::time::timeout(std::time::Duration::from_secs(10), source.load(entry))
            .await
            .expect("a load never blocks on a FIFO");
        match (entry.locator.as_str(), loaded) {
            ("fine", Ok(_)) => {}
            ("piped" | "linked", Err(SourceError::File { file, reason })) => {
                assert_eq!(file, "main.js");
                assert!(reason.contains("not a regular file"), "{reason}");
            }
            (locator, other) => panic!("{locator}: {other:?}"),
        }
    }
}

/// Issue 10, item 5: a 2 GB sparse `main.js` was read whole (2.1 GB of memory) before
/// `max_file_bytes` refused it. Its size is now checked before a byte is read.
#[tokio::test]
async fn a_file_over_the_read_cap_is_refused_by_its_size_before_it_is_read() {
    let root = tempfile::tempdir().unwrap();
    let task = root.path().join("huge");
    write_task(&task, "huge");
    let file = fs::OpenOptions::new().write(true).open(task.join("main.js")).unwrap();
    file.set_len(2 * 1024 * 1024 * 1024).unwrap(); // sparse: costs no disk
    let limits = registry_core::Limits::default();
    let source = FsSource::new("s", root.path()).with_limits(limits);
    let entry = source.scan().await.unwrap().entries.remove(0);
    let started = std::time::Instant::now();
    match source.load(&entry).await {
        Err(SourceError::TooLarge { file, size, cap }) => {
            assert_eq!(file, "main.js");
            assert_eq!(size, 2 * 1024 * 1024 * 1024);
            assert_eq!(cap, limits.max_file_bytes);
        }
        other => panic!("expected a refusal by size, got {other:?}"),
    }
    // Reading 2 GB takes seconds; refusing by size takes none.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // Files each under the per-file cap that add up past the task cap are refused too.
    let many = root.path().join("many");
    write_task(&many, "many");
    for i in 0..3 {
        fs::write(many.join(format!("tests/{i}.json")), vec![b' '; 600]).unwrap();
    }
    let small = registry_core::Limits {
        max_file_bytes: 1000,
        max_task_bytes: 1500,
        max_files: 200,
    };
    let source = FsSource::new("s", root.path()).with_limits(small);
    let entry = source
        .scan()
        .await
        .unwrap()
        .entries
        .into_iter()
        .find(|e| e.locator == "many")
        .unwrap();
    match source.load(&entry).await {
        Err(SourceError::TooLarge { file, cap, .. }) => {
            assert_eq!(file, "", "the task as a whole");
            assert_eq!(cap, 1500);
        }
        other => panic!("expected the task to be refused, got {other:?}"),
    }
}

/// Issue 10, item 9: the filesystem kind accepted any key (`colour = "red"`).
#[test]
fn the_filesystem_kind_refuses_unknown_settings() {
    let spec = registry_core::SourceSpec::new("s", "filesystem", serde_json::json!({"path": ".", "colour": "red"}));
    match FsSource::from_spec(&spec) {
        Err(SourceError::Config { reason, .. }) => assert!(reason.contains("colour"), "{reason}"),
        Err(other) => panic!("expected a settings error, got {other}"),
        Ok(_) => panic!("expected a settings error, got a source"),
    }
    let kind = registry_core::find_kind("filesystem").unwrap();
    let schema = (kind.settings_schema)();
    assert_eq!(schema["additionalProperties"], false, "{schema}");
}
