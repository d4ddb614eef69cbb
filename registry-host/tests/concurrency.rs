//! Many processes on one catalogue (issue 13): migrations at once, syncs at once, and a
//! long-lived process's kept snapshot after another process wrote. Every case runs on
//! SQLite and on PostgreSQL; each `Store` is its own connection, as another process's is.

use fs_source::FsSource;
use registry_core::{Source, SourcePriority};
use registry_host::generate::{write_named_task, write_tree};
use registry_host::store::{DatabaseUrl, Store};
use registry_host::sync::{Rescan, SnapshotCache, SyncOptions, SyncReport, sync, sync_rescan};
use std::fs;
use std::path::Path;
use std::sync::Arc;
use taskreg_test_support::TestDatabase;

use taskreg_test_support::on_both_backends;

on_both_backends!(
    processes_opening_an_empty_catalogue_at_once_all_migrate_it,
    syncs_of_the_same_sources_at_once_all_succeed_and_store_each_version_once,
    a_kept_snapshot_is_read_again_after_another_process_wrote,
    a_conflict_with_another_hosts_source_stands_through_every_run,
);

fn url(db: &TestDatabase) -> DatabaseUrl {
    DatabaseUrl::parse(&db.url, "".as_ref()).unwrap()
}

async fn open(db: &TestDatabase) -> Store {
    Store::open(&url(db)).await.expect("open the test database")
}

fn source(name: &str, root: &Path) -> Box<dyn Source> {
    Box::new(FsSource::new(name, root))
}

/// What a catalogue holds, without times: every version with its digest and availability,
/// and every origin.
async fn catalogue(store: &mut Store) -> (Vec<(String, String, String, bool)>, usize) {
    let mut versions: Vec<(String, String, String, bool)> = store
        .list_versions(true)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.name, v.version, v.digest, v.available))
        .collect();
    versions.sort();
    let origins = store.table_counts().await.unwrap()["origins"];
    (versions, origins as usize)
}

/// Issue 13: processes starting at once on an empty database collided ("table sources
/// already exists", a duplicate `pg_type` row). They now queue on the migration lock.
async fn processes_opening_an_empty_catalogue_at_once_all_migrate_it(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let opening: Vec<_> = (0..6)
        .map(|_| {
            let url = url(&db);
            tokio::spawn(async move { Store::open(&url).await.map(|_| ()) })
        })
        .collect();
    for opened in futures::future::join_all(opening).await {
        opened.unwrap().expect("every process opens and migrates the catalogue");
    }
    let mut store = open(&db).await;
    assert_eq!(store.generation().await.unwrap(), 0, "migrated once, written never");
}

/// Issue 13: two syncs of the same source at once failed on a unique key (0 of 5 trials
/// succeeded). Four at once, over two overlapping sources, now all succeed, and the
/// catalogue is the one a single sync makes: each version stored once, by one of them.
async fn syncs_of_the_same_sources_at_once_all_succeed_and_store_each_version_once(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_tree(a.path(), 150).unwrap();
    // b offers the last 50 of a's tasks, byte for byte, and 50 of its own.
    for i in 100..150 {
        write_named_task(&b.path().join(format!("t{i}")), &format!("task-{i:05}"), "1.0.0", i).unwrap();
    }
    for i in 150..200 {
        write_named_task(&b.path().join(format!("t{i}")), &format!("task-{i:05}"), "1.0.0", i).unwrap();
    }
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(open(&db).await);
    }
    let runs = stores.into_iter().enumerate().map(|(i, mut store)| {
        let (a, b) = (a.path().to_owned(), b.path().to_owned());
        tokio::spawn(async move {
            // Two processes sync both sources, one each only a or only b.
            let sources = match i {
                0 | 1 => vec![source("a", &a), source("b", &b)],
                2 => vec![source("a", &a)],
                _ => vec![source("b", &b)],
            };
            sync(&mut store, &sources, &SourcePriority, &SyncOptions::default()).await
        })
    });
    let reports: Vec<SyncReport> = futures::future::join_all(runs)
        .await
        .into_iter()
        .map(|joined| joined.unwrap().expect("no run fails because another ran"))
        .collect();
    let added: usize = reports.iter().map(|r| r.counts.added).sum();
    assert_eq!(added, 200, "each version added by exactly one run");
    assert!(reports.iter().all(|r| r.problems.is_empty()));

    let reference_db = TestDatabase::for_backend(backend).await;
    let mut reference = open(&reference_db).await;
    let both = [source("a", a.path()), source("b", b.path())];
    sync(&mut reference, &both, &SourcePriority, &SyncOptions::default())
        .await
        .unwrap();
    let mut shared = open(&db).await;
    let (shared_catalogue, reference_catalogue) = (catalogue(&mut shared).await, catalogue(&mut reference).await);
    assert_eq!(shared_catalogue.0.len(), 200);
    assert_eq!(shared_catalogue.1, 250, "150 origins in a, 100 in b");
    assert_eq!(shared_catalogue, reference_catalogue);
}

/// A long-lived process keeps the snapshot it planned against; another process's write
/// (a task removed, here) must make it read the catalogue again, or it would never put
/// back what that write took away.
async fn a_kept_snapshot_is_read_again_after_another_process_wrote(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let tree = tempfile::tempdir().unwrap();
    write_tree(tree.path(), 10).unwrap();
    let (mut watcher, mut other) = (open(&db).await, open(&db).await);
    let kept = SyncOptions {
        snapshot_cache: Some(Arc::new(SnapshotCache::default())),
        ..SyncOptions::default()
    };
    let sources = [source("tree", tree.path())];
    sync(&mut watcher, &sources, &SourcePriority, &kept).await.unwrap();

    // Another process syncs the tree while task-00003 is away: it goes missing.
    let task = tree.path().join("group-000/task-00003");
    let parked = tempfile::tempdir().unwrap();
    fs::rename(&task, parked.path().join("t")).unwrap();
    let report = sync(&mut other, &sources, &SourcePriority, &SyncOptions::default())
        .await
        .unwrap();
    assert_eq!(report.counts.missing, 1);

    // Back in place, the watcher's next run revives it: its kept snapshot (where the task
    // was still available) was not trusted after the foreign write.
    fs::rename(parked.path().join("t"), &task).unwrap();
    let report = sync(&mut watcher, &sources, &SourcePriority, &kept).await.unwrap();
    assert_eq!(report.counts.revived, 1, "{:?}", report.counts);
    let available = watcher.list_versions(false).await.unwrap();
    assert_eq!(available.len(), 10);
}

/// Two hosts on one catalogue, each with its own source, offer different content for one
/// version. The conflict is recorded by whichever syncs second, and stays, with the first
/// stored content, through every later run of either: a watcher's partial rescan of the
/// task (an unchanged fingerprint) must not take it for agreed and clear it.
async fn a_conflict_with_another_hosts_source_stands_through_every_run(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let work = tempfile::tempdir().unwrap();
    let (here, elsewhere) = (work.path().join("here"), work.path().join("elsewhere"));
    write_named_task(&elsewhere.join("shared"), "shared", "1.0.0", 1).unwrap();
    write_named_task(&here.join("shared"), "shared", "1.0.0", 2).unwrap();
    let (mut watcher, mut other) = (open(&db).await, open(&db).await);
    let kept = SyncOptions {
        snapshot_cache: Some(Arc::new(SnapshotCache::default())),
        ..SyncOptions::default()
    };
    let (ours, theirs) = ([source("here", &here)], [source("elsewhere", &elsewhere)]);
    let plain = SyncOptions::default();
    sync(&mut other, &theirs, &SourcePriority, &plain).await.unwrap();
    let first = other.list_versions(false).await.unwrap()[0].digest.clone();

    let changed = [Rescan::Changed(vec![here.join("shared")])];
    let report = sync_rescan(&mut watcher, &ours, &changed, &SourcePriority, &kept)
        .await
        .unwrap();
    assert_eq!((report.counts.conflicts, report.counts.updated), (1, 0));
    let recorded = other.conflicts().await.unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].detail.offers.len(), 2, "{:?}", recorded[0].detail);

    for _ in 0..2 {
        let report = sync_rescan(&mut watcher, &ours, &changed, &SourcePriority, &kept)
            .await
            .unwrap();
        assert_eq!(report.counts.conflicts, 1);
        assert!(!report.written, "a standing conflict is not written again");
        let report = sync(&mut other, &theirs, &SourcePriority, &plain).await.unwrap();
        assert!(!report.written, "the other host rewrote the standing conflict");
    }
    assert_eq!(other.conflicts().await.unwrap().len(), 1);
    let stored = other.list_versions(false).await.unwrap();
    assert_eq!(stored[0].digest, first, "the first stored content stays");
}
