//! The store against real databases: every case runs on SQLite and on PostgreSQL.

use fs_source::FsSource;
use registry_core::{Snapshot, Source, SourcePriority};
use registry_host::generate::{write_named_task, write_tree};
use registry_host::store::{DatabaseUrl, ScanStatus, Store};
use registry_host::sync::{Rescan, SyncOptions, SyncReport, apply_run, plan_run, sync, sync_rescan};
use std::fs;
use std::path::Path;
use taskreg_test_support::TestDatabase;

use taskreg_test_support::on_both_backends;

on_both_backends!(
    an_unchanged_resync_reads_no_task_and_writes_no_row,
    every_run_leaves_the_store_equal_to_the_reference_model,
    a_source_whose_root_vanishes_keeps_its_tasks_while_others_sync,
    a_failing_apply_leaves_the_catalogue_as_it_was,
    removed_versions_stay_as_history_and_come_back,
    show_picks_the_newest_available_version_by_semver,
    broken_tasks_are_problems_with_the_file_named_and_the_rest_syncs,
    a_content_change_without_a_version_bump_is_a_recorded_conflict,
    each_conflict_strategy_decides_between_two_sources,
    the_mass_removal_guard_keeps_a_source_that_lost_most_of_its_tasks,
    validation_problems_are_stored_with_their_place_and_a_bad_edit_keeps_the_good_version,
    a_rescan_of_the_changed_folders_lands_where_a_full_sync_lands,
    text_with_a_nul_byte_never_fails_a_run,
    two_runs_planned_at_once_never_store_one_uuid_for_two_names,
    versions_differing_only_in_build_metadata_are_one_version,
    a_run_whose_write_another_process_beat_is_planned_again,
    paged_reads_return_what_whole_reads_do_and_never_split_a_name,
);

async fn open(db: &TestDatabase) -> Store {
    Store::open(&DatabaseUrl::parse(&db.url, "".as_ref()).unwrap())
        .await
        .expect("open the test database")
}

fn source(name: &str, root: &Path) -> Box<dyn Source> {
    Box::new(FsSource::new(name, root))
}

async fn run(store: &mut Store, sources: &[Box<dyn Source>]) -> SyncReport {
    sync(store, sources, &SourcePriority, &SyncOptions::default())
        .await
        .expect("sync runs")
}

/// The snapshot with the task UUIDs, which `Store::snapshot` leaves out.
async fn full_snapshot(store: &mut Store) -> Snapshot {
    let mut snapshot = store.snapshot().await.unwrap().core;
    snapshot.task_uuids = store.task_uuids().await.unwrap();
    snapshot
}

async fn an_unchanged_resync_reads_no_task_and_writes_no_row(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let mut store = open(&db).await;
    let root = tempfile::tempdir().unwrap();
    write_tree(root.path(), 250).unwrap();
    let sources = [source("tree", root.path())];

    let first = run(&mut store, &sources).await;
    assert_eq!((first.counts.added, first.loaded, first.written), (250, 250, true));
    let counts = store.table_counts().await.unwrap();
    assert_eq!(counts["task_versions"], 250);
    assert_eq!(counts["origins"], 250);
    assert_eq!(counts["sync_runs"], 1);

    let second = run(&mut store, &sources).await;
    assert_eq!(
        (second.counts.unchanged, second.loaded, second.written),
        (250, 0, false)
    );
    assert_eq!(store.table_counts().await.unwrap(), counts, "no row written");
}

async fn every_run_leaves_the_store_equal_to_the_reference_model(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let mut store = open(&db).await;
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sources = [source("one", one.path()), source("two", two.path())];
    let steps: Vec<Box<dyn Fn()>> = vec![
        Box::new(|| {
            for i in 0..5 {
                write_named_task(&one.path().join(format!("t{i}")), &format!("t{i}"), "1.0.0", i).unwrap();
            }
            write_named_task(&two.path().join("t0"), "t0", "1.0.0", 0).unwrap(); // same content: two origins
        }),
        Box::new(|| write_named_task(&two.path().join("t1"), "t1", "1.0.0", 99).unwrap()), // conflict
        Box::new(|| fs::remove_dir_all(one.path().join("t2")).unwrap()),                   // missing
        Box::new(|| fs::write(one.path().join("t3/metadata.json"), "{ not json").unwrap()), // broken
        Box::new(|| write_named_task(&one.path().join("t2"), "t2", "1.0.0", 2).unwrap()),  // revived
        Box::new(|| write_named_task(&one.path().join("t3"), "t3", "1.1.0", 3).unwrap()),  // fixed, new version
        Box::new(|| fs::remove_dir_all(one.path()).unwrap()), // source fails: nothing removed
    ];
    for (step, change) in steps.iter().enumerate() {
        change();
        let before = full_snapshot(&mut store).await;
        let report = run(&mut store, &sources).await;
        let mut model: Snapshot = before;
        model.apply(&report.changes);
        let after = full_snapshot(&mut store).await;
        assert_eq!(after, model, "step {step}: the store differs from the model");
    }
    let problems = store.problems().await.unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.source == "one" && p.problem.code == "source.scan_failed")
    );
    assert!(
        store.list_versions(false).await.unwrap().iter().any(|v| v.name == "t4"),
        "failed source keeps t4"
    );
}

async fn a_source_whose_root_vanishes_keeps_its_tasks_while_others_sync(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let mut store = open(&db).await;
    let (doomed, healthy) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_tree(doomed.path(), 3).unwrap();
    write_named_task(&healthy.path().join("h"), "healthy", "1.0.0", 7).unwrap();
    let sources = [source("doomed", doomed.path()), source("healthy", healthy.path())];
    run(&mut store, &sources).await;

    let doomed_path = doomed.path().to_owned();
    drop(doomed);
    assert!(!doomed_path.exists());
    write_named_task(&healthy.path().join("h2"), "healthy-two", "1.0.0", 8).unwrap();
    let report = run(&mut store, &sources).await;
    assert_eq!(report.sources[0].status, ScanStatus::Failed);
    assert_eq!(report.sources[1].status, ScanStatus::Ok);
    assert_eq!((report.counts.missing, report.counts.added), (0, 1));
    let available: Vec<String> = store
        .list_versions(false)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(
        available,
        ["healthy", "healthy-two", "task-00000", "task-00001", "task-00002"]
    );
}

async fn a_failing_apply_leaves_the_catalogue_as_it_was(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let mut store = open(&db).await;
    let root = tempfile::tempdir().unwrap();
    write_tree(root.path(), 20).unwrap();
    run(&mut store, &[source("tree", root.path())]).await;
    let before = (
        store.snapshot().await.unwrap().core,
        store.table_counts().await.unwrap(),
    );

    // A run that adds versions and then writes an origin whose version does not exist: the
    // database refuses the origin after the versions were inserted, inside the transaction.
    write_tree(&root.path().join("more"), 30).unwrap();
    let more = [source("tree", root.path())];
    let planned = plan_run(&mut store, &more, &SourcePriority, &SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(planned.changes.counts.added, 10, "task-00020 to task-00029 are new");
    let mut poisoned = planned.changes.clone();
    let mut bad = poisoned.origin_upserts[0].clone();
    bad.locator = "no/such/task".into();
    bad.origin.version = "9.9.9".into();
    poisoned.origin_upserts.push(bad);
    let run_record = registry_host::store::RunRecord {
        id: "poisoned".into(),
        started_at: 0,
        status: registry_host::store::RunStatus::Ok,
        counts: poisoned.counts,
        sources_json: "[]".into(),
        writer: None,
    };
    let rows = [registry_host::store::SourceReport {
        name: "tree".into(),
        kind: "filesystem".into(),
        location: "x".into(),
        status: registry_host::store::ScanStatus::Ok,
        complete: true,
        tasks: 1,
        error: None,
        scan_ms: 0,
        rescanned: None,
    }];
    let error = store
        .apply(&run_record, &rows, &poisoned)
        .await
        .expect_err("the foreign key refuses the origin");
    assert!(error.to_string().to_lowercase().contains("foreign key"), "{error}");
    let after = (
        store.snapshot().await.unwrap().core,
        store.table_counts().await.unwrap(),
    );
    assert_eq!(after, before, "nothing of the failed run may remain");

    // The same run without the poison applies whole.
    let report = apply_run(&mut store, planned).await.expect("the clean run applies");
    assert!(report.written);
    assert_eq!(store.table_counts().await.unwrap()["task_versions"], 30);
    assert_eq!(store.table_counts().await.unwrap()["origins"], 50);
}

async fn removed_versions_stay_as_history_and_come_back(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let mut store = open(&db).await;
    let root = tempfile::tempdir().unwrap();
    write_named_task(&root.path().join("a"), "alpha", "1.0.0", 1).unwrap();
    write_named_task(&root.path().join("b"), "beta", "1.0.0", 2).unwrap();
    let sources = [source("s", root.path())];
    run(&mut store, &sources).await;

    let parked = tempfile::tempdir().unwrap();
    fs::rename(root.path().join("a"), parked.path().join("a")).unwrap();
    let report = run(&mut store, &sources).await;
    assert_eq!(report.counts.missing, 1);
    assert_eq!(store.list_versions(false).await.unwrap().len(), 1);
    let all = store.list_versions(true).await.unwrap();
    assert_eq!((all.len(), all[0].name.as_str(), all[0].available), (2, "alpha", false));
    let (task, origins) = store
        .show("alpha", Some("1.0.0"))
        .await
        .unwrap()
        .expect("kept as history");
    assert!(!task.available && task.missing_since.is_some() && origins.is_empty());
    assert!(
        store.show("alpha", None).await.unwrap().is_none(),
        "no available version"
    );

    fs::rename(parked.path().join("a"), root.path().join("a")).unwrap();
    let report = run(&mut store, &sources).await;
    assert_eq!(report.counts.revived, 1);
    let (task, _) = store.show("alpha", None).await.unwrap().unwrap();
    assert!(task.available && task.missing_since.is_none());

    write_named_task(&root.path().join("a"), "alpha", "1.1.0", 1).unwrap();
    run(&mut store, &sources).await;
    let history = store.history("alpha").await.unwrap();
    let versions: Vec<(&str, bool)> = history.iter().map(|h| (h.version.as_str(), h.available)).collect();
    assert_eq!(
        versions,
        [("1.1.0", true), ("1.0.0", false)],
        "every version ever seen, newest first"
    );
    assert!(store.history("never").await.unwrap().is_empty());
}

async fn show_picks_the_newest_available_version_by_semver(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let mut store = open(&db).await;
    let root = tempfile::tempdir().unwrap();
    for (folder, version) in [("a", "1.2.0"), ("b", "1.10.0"), ("c", "1.9.9")] {
        write_named_task(&root.path().join(folder), "calc", version, 1).unwrap();
    }
    run(&mut store, &[source("s", root.path())]).await;
    let (task, origins) = store.show("calc", None).await.unwrap().unwrap();
    assert_eq!(task.version, "1.10.0");
    assert_eq!(origins[0].locator, "b");
    let listed: Vec<String> = store
        .list_versions(false)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(listed, ["1.10.0", "1.9.9", "1.2.0"]);
    let metadata: serde_json::Value = serde_json::from_str(&task.metadata).unwrap();
    assert_eq!(metadata["ratchet_version"], "0.4.0", "unknown fields are kept");
}

async fn broken_tasks_are_problems_with_the_file_named_and_the_rest_syncs(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let mut store = open(&db).await;
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    write_named_task(&r.join("good"), "good", "1.0.0", 1).unwrap();
    write_named_task(&r.join("bad-json"), "bad-json", "1.0.0", 2).unwrap();
    fs::write(r.join("bad-json/input.schema.json"), "{ \"type\": ").unwrap();
    write_named_task(&r.join("no-script"), "no-script", "1.0.0", 3).unwrap();
    fs::remove_file(r.join("no-script/main.js")).unwrap();
    write_named_task(&r.join("latin1"), "latin1", "1.0.0", 4).unwrap();
    fs::write(r.join("latin1/main.js"), b"// caf\xe9\n(function () {})").unwrap();
    write_named_task(&r.join("not-semver"), "not-semver", "1.0", 5).unwrap();
    write_named_task(&r.join("unreadable"), "unreadable", "1.0.0", 6).unwrap();
    fs::remove_file(r.join("unreadable/output.schema.json")).unwrap();
    std::os::unix::fs::symlink(r.join("nowhere.json"), r.join("unreadable/output.schema.json")).unwrap();

    let report = run(&mut store, &[source("s", r)]).await;
    assert_eq!((report.counts.added, report.counts.invalid), (1, 5));
    let problems = store.problems().await.unwrap();
    let found: Vec<(&str, &str, Option<&str>)> = problems
        .iter()
        .map(|p| (p.locator.as_str(), p.problem.code.as_str(), p.problem.file.as_deref()))
        .collect();
    for expected in [
        ("bad-json", "json.invalid", Some("input.schema.json")),
        ("no-script", "task.script_missing", Some("main.js")),
        ("latin1", "file.not_utf8", Some("main.js")),
        ("not-semver", "metadata.version_not_semver", Some("metadata.json")),
        ("unreadable", "file.unreadable", Some("output.schema.json")),
    ] {
        assert!(found.contains(&expected), "{expected:?} missing from {found:?}");
    }

    // Fixing one task clears its problem at the next sync and leaves the others.
    write_named_task(&r.join("not-semver"), "not-semver", "1.0.0", 5).unwrap();
    run(&mut store, &[source("s", r)]).await;
    let problems = store.problems().await.unwrap();
    assert!(!problems.iter().any(|p| p.locator == "not-semver"));
    assert_eq!(problems.iter().filter(|p| p.problem.is_error()).count(), 4);

    // One task's problems, read by its name (a task page): a broken edit of a stored task
    // is found through the task's origin, and no other task's problem comes with it.
    fs::write(r.join("good/output.schema.json"), "{").unwrap();
    run(&mut store, &[source("s", r)]).await;
    let of_good: Vec<(String, String)> = store
        .problems_of_task("good")
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.locator, p.problem.code))
        .collect();
    assert_eq!(of_good, [("good".to_owned(), "json.invalid".to_owned())]);
    // Which task each problem concerns: only `good` has an origin; the others never loaded.
    assert_eq!(
        store.problem_origin_names().await.unwrap(),
        [("s".to_owned(), "good".to_owned(), "good".to_owned())]
    );
    assert!(store.problems_of_task("not-semver").await.unwrap().is_empty());
}

async fn a_content_change_without_a_version_bump_is_a_recorded_conflict(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let mut store = open(&db).await;
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_named_task(&first.path().join("x"), "shared", "1.0.0", 1).unwrap();
    write_named_task(&second.path().join("x"), "shared", "1.0.0", 2).unwrap();
    let sources = [source("first", first.path()), source("second", second.path())];
    let report = run(&mut store, &sources).await;
    assert_eq!((report.counts.added, report.counts.conflicts), (1, 1));
    let (task, origins) = store.show("shared", None).await.unwrap().unwrap();
    assert!(task.script.contains("+ 1 }"), "the first source wins: {}", task.script);
    assert_eq!(origins.len(), 2, "both sources offer the version");
    assert_ne!(origins[0].digest, origins[1].digest);
    assert_eq!(store.table_counts().await.unwrap()["conflicts"], 1);
    let of_shared = store.conflicts_of_task("shared").await.unwrap();
    assert_eq!((of_shared.len(), of_shared[0].version.as_str()), (1, "1.0.0"));
    assert!(store.conflicts_of_task("other").await.unwrap().is_empty());

    // The losing source withdraws: the conflict clears.
    fs::remove_dir_all(second.path().join("x")).unwrap();
    run(&mut store, &sources).await;
    assert_eq!(store.table_counts().await.unwrap()["conflicts"], 0);
}

async fn each_conflict_strategy_decides_between_two_sources(backend: &str) {
    use registry_core::{ConflictStrategy, Immutable, Newest, Reject};
    // `second` has the later updated_at; `first` has priority; `first` then edits without a bump.
    fn offer(dir: &Path, seed: usize, updated_at: &str) {
        write_named_task(dir, "shared", "1.0.0", seed).unwrap();
        let path = dir.join("metadata.json");
        let text = fs::read_to_string(&path)
            .unwrap()
            .replace("2026-01-02T00:00:00Z", updated_at);
        fs::write(path, text).unwrap();
    }
    let cases: [(&dyn ConflictStrategy, Option<usize>, Option<usize>); 4] = [
        (&SourcePriority, Some(1), Some(3)),
        (&Immutable, Some(1), Some(1)),
        (&Newest, Some(2), Some(3)),
        (&Reject, None, None),
    ];
    for (strategy, after_first_run, after_edit) in cases {
        let db = TestDatabase::for_backend(backend).await;
        let mut store = open(&db).await;
        let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        offer(&first.path().join("x"), 1, "2026-01-01T00:00:00Z");
        offer(&second.path().join("x"), 2, "2026-06-01T00:00:00Z");
        let sources = [source("first", first.path()), source("second", second.path())];
        let seed_of = |script: &str| (1..=3).find(|seed| script.contains(&format!("+ {seed} }}")));
        let mut stored = Vec::new();
        for step in 0..2 {
            if step == 1 {
                offer(&first.path().join("x"), 3, "2026-12-01T00:00:00Z");
            }
            let report = sync(&mut store, &sources, strategy, &SyncOptions::default())
                .await
                .unwrap();
            assert_eq!(report.counts.conflicts, 1, "{}", strategy.name());
            stored.push(
                store
                    .show("shared", Some("1.0.0"))
                    .await
                    .unwrap()
                    .map(|(t, _)| seed_of(&t.script).unwrap()),
            );
        }
        assert_eq!(stored, [after_first_run, after_edit], "strategy {}", strategy.name());
        let conflicts = store.conflicts().await.unwrap();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].strategy, strategy.name());
        let detail = &conflicts[0].detail;
        assert_eq!(detail.offers.len(), 2);
        assert_eq!(detail.strategy, strategy.name());
        assert!(!detail.decision.is_empty());
    }
}

async fn the_mass_removal_guard_keeps_a_source_that_lost_most_of_its_tasks(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let mut store = open(&db).await;
    let root = tempfile::tempdir().unwrap();
    let folders = write_tree(root.path(), 10).unwrap();
    let sources = [source("s", root.path())];
    run(&mut store, &sources).await;
    for folder in &folders[..6] {
        fs::remove_dir_all(folder).unwrap();
    }
    let report = run(&mut store, &sources).await;
    assert_eq!(report.counts.missing, 0);
    assert_eq!(store.list_versions(false).await.unwrap().len(), 10);
    let problems = store.problems().await.unwrap();
    assert_eq!(problems[0].problem.code, "source.mass_removal_blocked");
    assert!(
        problems[0].problem.message.contains("6 of the source's 10 tasks"),
        "{}",
        problems[0].problem.message
    );

    let allow = SyncOptions {
        allow_mass_removal: true,
        ..SyncOptions::default()
    };
    let report = sync(&mut store, &sources, &SourcePriority, &allow).await.unwrap();
    assert_eq!(report.counts.missing, 6);
    assert_eq!(store.list_versions(false).await.unwrap().len(), 4);
    assert!(store.problems().await.unwrap().is_empty());
}

async fn validation_problems_are_stored_with_their_place_and_a_bad_edit_keeps_the_good_version(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let mut store = open(&db).await;
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for (folder, seed) in [("good", 1), ("not-a-schema", 2), ("bad-case", 3), ("bad-script", 4)] {
        write_named_task(&r.join(folder), folder, "1.0.0", seed).unwrap();
    }
    fs::write(r.join("not-a-schema/input.schema.json"), r#"{"type": 12345}"#).unwrap();
    fs::write(
        r.join("bad-case/tests/test-001.json"),
        r#"{"input": {"a": "one", "b": 2}, "expected_output": {"sum": 3}}"#,
    )
    .unwrap();
    fs::write(
        r.join("bad-script/main.js"),
        "(function (input) {\n  return input.a +;\n})\n",
    )
    .unwrap();
    let sources = [source("s", r)];
    let report = run(&mut store, &sources).await;
    // A test case against its schema is a warning by default: `bad-case` is stored.
    assert_eq!((report.counts.added, report.counts.invalid), (2, 2));

    let problems = store.problems().await.unwrap();
    let find = |code: &str| {
        problems
            .iter()
            .find(|p| p.problem.code == code)
            .unwrap_or_else(|| panic!("{code} in {problems:?}"))
    };
    let schema = find("schema.invalid");
    assert_eq!(
        (
            schema.locator.as_str(),
            schema.problem.file.as_deref(),
            schema.problem.pointer.as_deref()
        ),
        ("not-a-schema", Some("input.schema.json"), Some("/type"))
    );
    let case = find("tests.input_invalid");
    assert_eq!(
        (case.problem.file.as_deref(), case.problem.pointer.as_deref()),
        (Some("tests/test-001.json"), Some("/input/a"))
    );
    assert_eq!(case.problem.severity, registry_core::Severity::Warning);
    let script = find("script.syntax");
    assert_eq!(
        (script.problem.line, script.problem.column),
        (Some(2), Some(19)),
        "line and column survive the database"
    );

    // A bad edit to the good task: the catalogue keeps serving the good content.
    let before = store.show("good", None).await.unwrap().unwrap().0;
    fs::write(r.join("good/output.schema.json"), r#"{"type": "objekt"}"#).unwrap();
    let report = run(&mut store, &sources).await;
    assert_eq!(report.counts.invalid, 3);
    let after = store.show("good", None).await.unwrap().unwrap().0;
    assert!(after.available);
    assert_eq!(after.digest, before.digest);
    assert!(
        store
            .problems()
            .await
            .unwrap()
            .iter()
            .any(|p| p.locator == "good" && p.problem.code == "schema.invalid")
    );

    // Fixed: the problem clears.
    write_named_task(&r.join("good"), "good", "1.0.0", 1).unwrap();
    run(&mut store, &sources).await;
    assert!(!store.problems().await.unwrap().iter().any(|p| p.locator == "good"));
}

async fn a_rescan_of_the_changed_folders_lands_where_a_full_sync_lands(backend: &str) {
    let (full_db, scoped_db) = (
        TestDatabase::for_backend(backend).await,
        TestDatabase::for_backend(backend).await,
    );
    let (mut by_full, mut by_scope) = (open(&full_db).await, open(&scoped_db).await);
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (one_root, two_root) = (
        std::path::absolute(one.path()).unwrap(),
        std::path::absolute(two.path()).unwrap(),
    );
    for i in 0..4 {
        write_named_task(&one_root.join(format!("g/t{i}")), &format!("t{i}"), "1.0.0", i).unwrap();
    }
    write_named_task(&two_root.join("t1"), "t1", "1.0.0", 1).unwrap();
    let sources = [source("one", &one_root), source("two", &two_root)];
    run(&mut by_full, &sources).await;
    run(&mut by_scope, &sources).await;
    let t0_uuid = full_snapshot(&mut by_full).await.task_uuids["t0"];

    // An edit in place (now a conflict with `two`), a deletion, and a new task that claims
    // t0's UUID (refused, a problem).
    write_named_task(&one_root.join("g/t1"), "t1", "1.0.0", 100).unwrap();
    fs::remove_dir_all(one_root.join("g/t2")).unwrap();
    fs::create_dir_all(one_root.join("g/thief")).unwrap();
    fs::write(
        one_root.join("g/thief/metadata.json"),
        format!(r#"{{"name":"thief","version":"1.0.0","uuid":"{t0_uuid}","label":"l","description":"d"}}"#),
    )
    .unwrap();
    fs::write(one_root.join("g/thief/main.js"), "(function (input) { return input; })").unwrap();

    let full = run(&mut by_full, &sources).await;
    let changed = vec![
        one_root.join("g/t1/main.js"),
        one_root.join("g/t2"),
        one_root.join("g/thief/metadata.json"),
    ];
    let scoped = sync_rescan(
        &mut by_scope,
        &sources,
        &[Rescan::Changed(changed), Rescan::Skip],
        &SourcePriority,
        &SyncOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(scoped.counts, full.counts);
    assert_eq!(scoped.sources.len(), 1, "the skipped source was not scanned");
    // The deletion shows only in the folder above the deleted one, which covers the rest.
    assert_eq!(scoped.sources[0].rescanned, Some(vec!["g".to_owned()]));
    assert_eq!(full_snapshot(&mut by_scope).await, full_snapshot(&mut by_full).await);
    assert!(
        by_scope
            .problems()
            .await
            .unwrap()
            .iter()
            .any(|p| p.locator == "g/thief" && p.problem.code == "metadata.uuid_duplicate"),
        "{:?}",
        by_scope.problems().await.unwrap()
    );
}

/// A third-party rule whose message quotes a NUL byte, as a rule quoting a file's text
/// might. It speaks only about tasks named `quotes-nul`.
struct QuotesNul;

impl registry_core::Validator for QuotesNul {
    fn rule(&self) -> &'static str {
        "quotes-nul"
    }
    fn description(&self) -> &'static str {
        "test rule: a warning whose message holds a NUL byte"
    }
    fn check(
        &self,
        task: &registry_core::ParsedTask,
        _: &registry_core::ValidationContext,
        out: &mut Vec<registry_core::Problem>,
    ) {
        if task.task.name == "quotes-nul" {
            out.push(registry_core::Problem::warning("quotes-nul.found", "found `a\0b` here").in_file("main.js\0"));
        }
    }
}

inventory::submit!(registry_core::RegisteredValidator(&QuotesNul));

/// Issue 10, item 3: one `main.js` with a NUL byte (or a problem message quoting one) made
/// PostgreSQL refuse the whole transaction: the run was lost for every source, and
/// `status` said nothing. Now such text never reaches a query, and both backends agree.
async fn text_with_a_nul_byte_never_fails_a_run(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let mut store = open(&db).await;
    let root = tempfile::tempdir().unwrap();
    write_tree(root.path(), 3).unwrap();
    write_named_task(&root.path().join("nul-script"), "nul-script", "1.0.0", 1).unwrap();
    fs::write(root.path().join("nul-script/main.js"), "(function () { return 1; })\0").unwrap();
    write_named_task(&root.path().join("nul-name"), "nul-name", "1.0.0", 2).unwrap();
    fs::write(
        root.path().join("nul-name/metadata.json"),
        r#"{"name":"nul\u0000name","version":"1.0.0","label":"l","description":"d"}"#,
    )
    .unwrap();
    // An escaped NUL inside a JSON value is fine: stored as the escape it is.
    write_named_task(&root.path().join("nul-value"), "nul-value", "1.0.0", 3).unwrap();
    fs::write(
        root.path().join("nul-value/tests/nul.json"),
        r#"{"input":{"a":1,"b":2},"expected_output":{"sum":6},"note":"a\u0000b"}"#,
    )
    .unwrap();
    write_named_task(&root.path().join("quotes-nul"), "quotes-nul", "1.0.0", 4).unwrap();
    let report = run(&mut store, &[source("tree", root.path())]).await;
    assert!(report.written);
    assert_eq!(report.counts.added, 5, "three generated, nul-value and quotes-nul");

    let problems = store.problems().await.unwrap();
    let of = |locator: &str| -> Vec<String> {
        problems
            .iter()
            .filter(|p| p.locator == locator)
            .map(|p| p.problem.code.clone())
            .collect()
    };
    assert_eq!(of("nul-script"), ["file.nul_byte"]);
    assert_eq!(of("nul-name"), ["metadata.name_invalid"]);
    let quoted = problems
        .iter()
        .find(|p| p.locator == "quotes-nul")
        .expect("the warning is stored");
    assert_eq!(quoted.problem.message, "found `a\\0b` here", "kept visible, escaped");
    assert_eq!(quoted.problem.file.as_deref(), Some("main.js\\0"));
    let names: Vec<String> = store
        .list_versions(false)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert!(
        names.contains(&"nul-value".to_owned()) && names.contains(&"quotes-nul".to_owned()),
        "{names:?}"
    );

    // The same tree again: nothing changes, nothing fails.
    let again = run(&mut store, &[source("tree", root.path())]).await;
    assert!(!again.written, "{:?}", again.changes.counts);
}

/// Issue 10, item 4: two syncs planned at the same moment could both store one UUID for
/// two names (and one name with two UUIDs), and later syncs never noticed. Issue 13: a
/// plan is applied only against the catalogue it was made for; behind that, the
/// database's unique keys still refuse the clash.
async fn two_runs_planned_at_once_never_store_one_uuid_for_two_names(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let (mut first, mut second) = (open(&db).await, open(&db).await);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let uuid = "0b9c5a52-7f5e-4f7e-9a51-3c1d2b3a4f00";
    for (dir, name) in [(a.path(), "alpha"), (b.path(), "beta")] {
        write_named_task(&dir.join(name), name, "1.0.0", 1).unwrap();
        declare_uuid(&dir.join(name), uuid);
    }
    let (from_a, from_b) = ([source("a", a.path())], [source("b", b.path())]);
    let options = SyncOptions::default();
    // Both plan against the empty catalogue, then both apply.
    let planned_a = plan_run(&mut first, &from_a, &SourcePriority, &options).await.unwrap();
    let planned_b = plan_run(&mut second, &from_b, &SourcePriority, &options).await.unwrap();
    let stale_changes = planned_b.changes.clone();
    apply_run(&mut first, planned_a).await.expect("the first write lands");
    let refused = apply_run(&mut second, planned_b)
        .await
        .expect_err("a plan made against an older catalogue is not applied");
    assert!(
        matches!(
            refused,
            registry_host::sync::SyncError::CatalogueChanged { planned: 0, current: 1 }
        ),
        "{refused}"
    );
    // Written anyway, below the lock, the database's unique key refuses it whole.
    let record = registry_host::store::RunRecord {
        id: "stale".into(),
        started_at: 0,
        status: registry_host::store::RunStatus::Ok,
        counts: stale_changes.counts,
        sources_json: "[]".into(),
        writer: None,
    };
    let error = second.apply(&record, &[], &stale_changes).await.expect_err("refused");
    assert!(error.is_unique_violation(), "{error}");
    let owners: Vec<(String, String)> = first
        .task_uuids()
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, u)| u.to_string() == uuid)
        .map(|(n, u)| (n, u.to_string()))
        .collect();
    assert_eq!(owners, [("alpha".to_owned(), uuid.to_owned())]);

    // Planned again, the clash is a problem of the later name, and the run succeeds.
    let report = run(&mut second, &from_b).await;
    assert_eq!(problem_codes(&report, "beta"), ["metadata.uuid_duplicate"]);
    assert!(
        !second
            .list_versions(true)
            .await
            .unwrap()
            .iter()
            .any(|v| v.name == "beta")
    );
    assert_eq!(
        second
            .status()
            .await
            .unwrap()
            .sources
            .iter()
            .find(|s| s.name == "b")
            .unwrap()
            .status,
        ScanStatus::Ok
    );

    // One name, two UUIDs, planned at once: the second write is refused as well.
    let (c, d) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_named_task(&c.path().join("gamma"), "gamma", "1.0.0", 1).unwrap();
    write_named_task(&d.path().join("gamma"), "gamma", "2.0.0", 2).unwrap();
    declare_uuid(&d.path().join("gamma"), "5f0e8d5c-1b1a-4c55-8a70-9a4b7c2e1d00");
    let (from_c, from_d) = ([source("c", c.path())], [source("d", d.path())]);
    let planned_c = plan_run(&mut first, &from_c, &SourcePriority, &options).await.unwrap();
    let planned_d = plan_run(&mut second, &from_d, &SourcePriority, &options).await.unwrap();
    apply_run(&mut first, planned_c).await.unwrap();
    assert!(matches!(
        apply_run(&mut second, planned_d).await,
        Err(registry_host::sync::SyncError::CatalogueChanged { .. })
    ));
    let report = run(&mut second, &from_d).await;
    assert_eq!(problem_codes(&report, "gamma"), ["metadata.uuid_changed"]);
    // gamma keeps the UUID it was first stored with (UUIDv5 of its name), and 2.0.0, which
    // claims another, is not stored.
    let stored = second.task_uuids().await.unwrap();
    let first_uuid = {
        let entry = from_c[0].scan().await.unwrap().entries.remove(0);
        registry_core::parse_bundle(&from_c[0].load(&entry).await.unwrap())
            .unwrap()
            .task
            .uuid
    };
    assert_eq!(stored.get("gamma"), Some(&first_uuid));
    let gamma: Vec<String> = second
        .list_versions(true)
        .await
        .unwrap()
        .into_iter()
        .filter(|v| v.name == "gamma")
        .map(|v| v.version)
        .collect();
    assert_eq!(gamma, ["1.0.0"]);
}

/// Adds `"uuid": UUID` to the metadata of the task folder `task`.
fn declare_uuid(task: &Path, uuid: &str) {
    let path = task.join("metadata.json");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replacen('{', &format!("{{\n  \"uuid\": \"{uuid}\","), 1)).unwrap();
}

/// The codes of the problems a run reports for `locator`.
fn problem_codes<'r>(report: &'r SyncReport, locator: &str) -> Vec<&'r str> {
    report
        .problems
        .iter()
        .filter(|p| p.locator == locator)
        .map(|p| p.problem.code.as_str())
        .collect()
}

/// Issue 10, item 10: `1.0.0+build` and `1.0.0+build2` were stored as two versions.
async fn versions_differing_only_in_build_metadata_are_one_version(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let mut store = open(&db).await;
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_named_task(&one.path().join("t"), "t", "1.0.0+build", 1).unwrap();
    write_named_task(&one.path().join("t-alpha"), "t", "1.0.0-alpha", 1).unwrap();
    write_named_task(&two.path().join("t"), "t", "1.0.0+build2", 1).unwrap();
    let report = run(&mut store, &[source("one", one.path()), source("two", two.path())]).await;
    let versions: Vec<String> = store
        .list_versions(true)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert!(versions.contains(&"1.0.0".to_owned()) && versions.contains(&"1.0.0-alpha".to_owned()));
    // Different metadata (the build tag) is different content: a recorded conflict.
    assert_eq!(report.counts.conflicts, 1);
    let conflicts = store.conflicts().await.unwrap();
    assert_eq!(conflicts.len(), 1);
}

/// A filesystem source that, on its first load, lets another process sync first: the run
/// it belongs to was planned before that write.
struct Interloper {
    inner: FsSource,
    other: tokio::sync::Mutex<Option<(Store, Box<dyn Source>)>>,
}

#[async_trait::async_trait]
impl Source for Interloper {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> &str {
        self.inner.kind()
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn scan(&self) -> Result<registry_core::Scan, registry_core::SourceError> {
        self.inner.scan().await
    }
    async fn load(&self, entry: &registry_core::Entry) -> Result<registry_core::Bundle, registry_core::SourceError> {
        if let Some((mut store, source)) = self.other.lock().await.take() {
            run(&mut store, &[source]).await;
        }
        self.inner.load(entry).await
    }
}

/// Issue 10, item 4 and issue 13: a run whose plan another process overtook (it stored
/// the same version after this run read the catalogue) finds a newer generation under the
/// write lock, is planned again inside the same `sync` against what is stored now, and
/// succeeds.
async fn a_run_whose_write_another_process_beat_is_planned_again(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let (mut mine, theirs) = (open(&db).await, open(&db).await);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for dir in [a.path(), b.path()] {
        write_named_task(&dir.join("alpha"), "alpha", "1.0.0", 1).unwrap();
    }
    let interloper: Box<dyn Source> = Box::new(Interloper {
        inner: FsSource::new("b", b.path()),
        other: tokio::sync::Mutex::new(Some((theirs, source("a", a.path())))),
    });
    let report = run(&mut mine, &[interloper]).await;
    assert!(report.written && report.problems.is_empty(), "{:?}", report.problems);
    let (_, origins) = mine
        .show("alpha", Some("1.0.0"))
        .await
        .unwrap()
        .expect("alpha is stored");
    let mut sources: Vec<String> = origins.into_iter().map(|o| o.source).collect();
    sources.sort();
    assert_eq!(sources, ["a", "b"], "one version, offered by both");
    let status = mine.status().await.unwrap();
    assert!(status.sources.iter().all(|s| s.status == ScanStatus::Ok), "{status:?}");
}

async fn paged_reads_return_what_whole_reads_do_and_never_split_a_name(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let mut store = open(&db).await;
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    // Several versions per name (sorted by semver, not text: 10.0.0 after 9.0.0), one
    // name gone (unavailable), and broken tasks with several problems each.
    for (i, name) in ["alpha", "beta", "gamma", "delta", "epsilon"].iter().enumerate() {
        for version in ["1.0.0", "9.0.0", "10.0.0"] {
            write_named_task(&r.join(format!("{name}-{version}")), name, version, i).unwrap();
        }
    }
    write_named_task(&r.join("gone"), "gone", "1.0.0", 9).unwrap();
    for i in 0..4 {
        let broken = r.join(format!("broken-{i}"));
        write_named_task(&broken, &format!("broken-{i}"), "1.0", i).unwrap();
        fs::write(broken.join("input.schema.json"), "{ \"type\": ").unwrap();
    }
    run(&mut store, &[source("s", r)]).await;
    fs::remove_dir_all(r.join("gone")).unwrap();
    run(&mut store, &[source("s", r)]).await;

    for all in [false, true] {
        let whole = store.list_versions(all).await.unwrap();
        assert_eq!(whole.len(), 15 + usize::from(all));
        // Two names a page: every name's versions come in one page, newest first.
        let mut paged = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store.list_page(all, after.as_deref(), 2).await.unwrap();
            let names: std::collections::BTreeSet<&str> = page.versions.iter().map(|v| v.name.as_str()).collect();
            assert!(names.len() <= 2, "{names:?}");
            for name in &names {
                let versions: Vec<&str> = page
                    .versions
                    .iter()
                    .filter(|v| v.name == *name)
                    .map(|v| v.version.as_str())
                    .collect();
                if *name != "gone" {
                    assert_eq!(versions, ["10.0.0", "9.0.0", "1.0.0"], "{name}");
                }
            }
            paged.extend(page.versions);
            match page.next {
                Some(name) => after = Some(name),
                None => break,
            }
        }
        let key = |v: &registry_host::store::VersionSummary| {
            (v.name.clone(), v.version.clone(), v.digest.clone(), v.sources.clone())
        };
        assert_eq!(
            paged.iter().map(key).collect::<Vec<_>>(),
            whole.iter().map(key).collect::<Vec<_>>()
        );
    }

    let whole = store.problems().await.unwrap();
    assert!(whole.len() >= 8, "two problems or more per broken task: {whole:?}");
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.problems_page(after.as_ref(), 3).await.unwrap();
        assert!(page.problems.len() <= 3);
        paged.extend(page.problems);
        match page.next {
            Some(key) => after = Some(key),
            None => break,
        }
    }
    let key = |p: &registry_host::store::ProblemRow| (p.source.clone(), p.locator.clone(), p.problem.code.clone());
    assert_eq!(
        paged.iter().map(key).collect::<Vec<_>>(),
        whole.iter().map(key).collect::<Vec<_>>()
    );
}
