//! The `Registry` as a host application embeds it: built in code, extended at run time,
//! against real databases (every case runs on SQLite and on PostgreSQL).

use registry_core::{
    Bundle, Candidate, ConflictDecision, ConflictStrategy, Digest, Entry, ParsedTask, Problem, Scan, Source,
    SourceError, SourceKind, SourceSpec, ValidationContext, Validator,
};
use registry_host::generate::write_named_task;
use registry_host::{BuildError, ListFilter, Registry, RegistryError, RegistryEvent};
use std::sync::Arc;
use std::time::Duration;
use taskreg_test_support::TestDatabase;

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $case() { super::$case(taskreg_test_support::TestDatabase::sqlite()).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $case() { super::$case(taskreg_test_support::TestDatabase::postgres().await).await })*
        }
    };
}

on_both_backends!(
    a_registry_built_in_code_syncs_its_own_sources_and_rules_and_tells_subscribers,
    resolve_answers_the_newest_available_match_of_a_requirement,
    a_read_only_registry_reads_and_refuses_to_write,
    watch_publishes_every_run_to_subscribers,
    two_watchers_on_one_host_each_have_their_row_and_a_gone_process_ages_out,
    a_strategy_given_in_code_decides_and_a_kind_submitted_with_inventory_builds,
    the_observer_the_caller_passes_hears_every_load,
    a_run_over_its_memory_budget_stages_contents_and_stores_the_same_catalogue,
    a_source_whose_loads_wait_on_the_network_gets_more_in_flight,
    signed_tasks_staged_beyond_the_memory_budget_keep_their_signatures,
    a_version_signed_later_or_unverified_tells_subscribers_without_an_update,
);

/// Tasks the application holds in memory: one per `(name, version)`.
struct MemorySource {
    name: String,
    tasks: Vec<(String, String, String)>,
}

impl MemorySource {
    fn files(name: &str, version: &str, script: &str) -> Vec<(&'static str, Vec<u8>)> {
        let metadata =
            format!(r#"{{"name":"{name}","version":"{version}","label":"{name}","description":"in memory"}}"#);
        vec![
            ("metadata.json", metadata.into_bytes()),
            ("main.js", script.as_bytes().to_vec()),
        ]
    }
}

#[async_trait::async_trait]
impl Source for MemorySource {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &str {
        "memory"
    }
    fn location(&self) -> String {
        "memory".into()
    }
    async fn scan(&self) -> Result<Scan, SourceError> {
        Ok(Scan {
            entries: self
                .tasks
                .iter()
                .map(|(name, version, script)| Entry {
                    locator: format!("{name}@{version}"),
                    fingerprint: format!("{}", script.len()),
                })
                .collect(),
            complete: true,
            issues: Vec::new(),
        })
    }
    async fn load(&self, entry: &Entry) -> Result<Bundle, SourceError> {
        let (name, version, script) = self
            .tasks
            .iter()
            .find(|(n, v, _)| format!("{n}@{v}") == entry.locator)
            .expect("a scanned entry");
        Ok(Bundle::from_files(MemorySource::files(name, version, script)))
    }
}

/// A rule of the application's own: no `TODO` left in a script.
struct NoTodo;

impl Validator for NoTodo {
    fn rule(&self) -> &'static str {
        "no-todo"
    }
    fn description(&self) -> &'static str {
        "Scripts have no TODO left"
    }
    fn check(&self, task: &ParsedTask, _: &ValidationContext, out: &mut Vec<Problem>) {
        if task.task.file("main.js").is_some_and(|s| s.contains("TODO")) {
            out.push(Problem::error("no-todo.found", "main.js still has a TODO").in_file("main.js"));
        }
    }
}

static NO_TODO: NoTodo = NoTodo;

/// A source kind handed over at run time: `count` generated tasks named `kind-N`.
fn counted_kind() -> SourceKind {
    fn schema() -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "properties": { "count": { "type": "integer", "minimum": 0 } },
            "required": ["count"],
            "additionalProperties": false,
        })
    }
    fn build(spec: &SourceSpec) -> Result<Box<dyn Source>, SourceError> {
        let count = spec.settings["count"].as_u64().unwrap_or(0);
        Ok(Box::new(MemorySource {
            name: spec.name.clone(),
            tasks: (0..count)
                .map(|i| {
                    (
                        format!("kind-{i}"),
                        "1.0.0".into(),
                        "(function (input) { return input; })".into(),
                    )
                })
                .collect(),
        }))
    }
    SourceKind {
        name: "counted",
        description: "generated in memory",
        settings_schema: schema,
        build,
    }
}

fn added(events: &mut tokio::sync::broadcast::Receiver<RegistryEvent>) -> Vec<String> {
    let mut added = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let RegistryEvent::TaskAdded { name, version, .. } = event {
            added.push(format!("{name}@{version}"));
        }
    }
    added.sort();
    added
}

async fn a_registry_built_in_code_syncs_its_own_sources_and_rules_and_tells_subscribers(db: TestDatabase) {
    let folder = tempfile::tempdir().unwrap();
    write_named_task(&folder.path().join("on-disk"), "on-disk", "1.0.0", 1).unwrap();
    let memory = MemorySource {
        name: "app".into(),
        tasks: vec![
            (
                "clean".into(),
                "2.0.0".into(),
                "(function (input) { return input; })".into(),
            ),
            (
                "unfinished".into(),
                "1.0.0".into(),
                "(function (input) { /* TODO */ return input; })".into(),
            ),
        ],
    };
    let registry = Registry::builder()
        .database(&db.url)
        .path_source(folder.path())
        .source_object(memory)
        .source_kind(counted_kind())
        .source(SourceSpec::new(
            "generated",
            "counted",
            serde_json::json!({ "count": 2 }),
        ))
        .validator(&NO_TODO)
        .open()
        .await
        .unwrap();
    let shared = Arc::new(registry);
    assert_send_sync(&shared);
    let mut events = shared.subscribe();

    let report = shared.sync().await.unwrap();
    assert_eq!(
        (report.counts.added, report.counts.invalid),
        (4, 1),
        "{:?}",
        report.counts
    );
    assert_eq!(
        added(&mut events),
        ["clean@2.0.0", "kind-0@1.0.0", "kind-1@1.0.0", "on-disk@1.0.0"]
    );
    // The application's rule refused the unfinished task, with where it is.
    let refused: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.problem.is_error())
        .map(|p| (p.source.as_str(), p.locator.as_str(), p.problem.code.as_str()))
        .collect();
    assert_eq!(refused, [("app", "unfinished@1.0.0", "no-todo.found")]);
    let stored = shared.problems().await.unwrap();
    assert_eq!(stored.iter().filter(|p| p.problem.is_error()).count(), 1);

    let listed: Vec<String> = shared
        .list(ListFilter::available())
        .await
        .unwrap()
        .iter()
        .map(|v| format!("{}@{}", v.name, v.version))
        .collect();
    assert_eq!(listed, ["clean@2.0.0", "kind-0@1.0.0", "kind-1@1.0.0", "on-disk@1.0.0"]);
    let shown = shared.show("clean", None).await.unwrap().expect("clean is stored");
    assert_eq!(shown.origins.len(), 1);
    assert_eq!(shown.origins[0].source, "app");

    // A second, unchanged run applies nothing and tells nobody anything.
    let again = shared.sync().await.unwrap();
    assert!(!again.written);
    assert!(added(&mut events).is_empty());
}

fn assert_send_sync<T: Send + Sync>(_: &T) {}

async fn resolve_answers_the_newest_available_match_of_a_requirement(db: TestDatabase) {
    let folder = tempfile::tempdir().unwrap();
    for version in ["1.2.0", "1.10.0", "2.0.0", "1.11.0-rc.1"] {
        write_named_task(&folder.path().join(version), "calc", version, version.len()).unwrap();
    }
    let registry = Registry::builder().database(&db.url).open().await.unwrap();
    registry.sync_paths(&[folder.path().to_owned()]).await.unwrap();

    let resolved = |requirement: &'static str| {
        let registry = &registry;
        async move {
            registry
                .resolve("calc", requirement)
                .await
                .unwrap()
                .map(|found| found.task.version)
        }
    };
    assert_eq!(resolved("^1").await.as_deref(), Some("1.10.0"));
    assert_eq!(resolved("~1.2").await.as_deref(), Some("1.2.0"));
    assert_eq!(resolved(">=1.11.0-rc.0, <2").await.as_deref(), Some("1.11.0-rc.1"));
    assert_eq!(resolved("^3").await, None);
    assert!(matches!(
        registry.resolve("calc", "banana").await,
        Err(RegistryError::Requirement { .. })
    ));
    let versions: Vec<String> = registry
        .versions("calc")
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, ["2.0.0", "1.11.0-rc.1", "1.10.0", "1.2.0"]);
    assert_eq!(registry.history("calc").await.unwrap().len(), 4);
}

async fn a_read_only_registry_reads_and_refuses_to_write(db: TestDatabase) {
    let folder = tempfile::tempdir().unwrap();
    write_named_task(&folder.path().join("t"), "t", "1.0.0", 1).unwrap();
    let writer = Registry::builder().database(&db.url).open().await.unwrap();
    writer.sync_paths(&[folder.path().to_owned()]).await.unwrap();

    let reader = Registry::builder().database(&db.url).read_only().open().await.unwrap();
    assert_eq!(reader.list(ListFilter::all()).await.unwrap().len(), 1);
    assert!(matches!(
        reader.sync_paths(&[folder.path().to_owned()]).await,
        Err(RegistryError::ReadOnly(_))
    ));
    // Errors are typed: a caller can tell a misconfigured source from anything else.
    let unknown = Registry::builder()
        .database(&db.url)
        .source(SourceSpec::new("odd", "no-such-kind", serde_json::json!({})))
        .open()
        .await
        .unwrap();
    assert!(matches!(
        unknown.sync().await,
        Err(RegistryError::Source(BuildError::UnknownKind(_)))
    ));
    assert!(matches!(
        Registry::builder().database(&db.url).open().await.unwrap().sync().await,
        Err(RegistryError::NoSources)
    ));
}

/// Waits for the first `task_added` of `name` on `events`.
async fn wait_for_added(events: &mut tokio::sync::broadcast::Receiver<RegistryEvent>, name: &str) {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(RegistryEvent::TaskAdded { name: added, .. }) = events.recv().await
                && added == name
            {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no task_added event for {name}"));
}

async fn watch_publishes_every_run_to_subscribers(db: TestDatabase) {
    let folder = tempfile::tempdir().unwrap();
    write_named_task(&folder.path().join("first"), "first", "1.0.0", 1).unwrap();
    let registry = Registry::builder()
        .database(&db.url)
        .path_source(folder.path())
        .watch_timing(
            Duration::from_millis(50),
            Duration::from_secs(30),
            Duration::from_secs(600),
        )
        .open()
        .await
        .unwrap();
    let mut events = registry.subscribe();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watching = registry.watch(async {
        let _ = stopped.await;
    });
    let editing = async {
        wait_for_added(&mut events, "first").await;
        write_named_task(&folder.path().join("second"), "second", "1.0.0", 2).unwrap();
        wait_for_added(&mut events, "second").await;
        let _ = stop.send(());
    };
    let (watched, ()) = tokio::join!(watching, editing);
    watched.unwrap();
    // The watch loop's runs are the catalogue's: a plain read sees them.
    let names: Vec<String> = registry
        .list(ListFilter::available())
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, ["first", "second"]);
}

/// A strategy of the application's own: the last source in priority order wins.
struct LastSourceWins;

impl ConflictStrategy for LastSourceWins {
    fn name(&self) -> &'static str {
        "last-source-wins"
    }
    fn description(&self) -> &'static str {
        "the lowest-priority source wins"
    }
    fn decide(&self, _stored: Option<Digest>, candidates: &[&Candidate<'_>]) -> ConflictDecision {
        ConflictDecision::Take(candidates.last().expect("at least two candidates").digest)
    }
}

static LAST_SOURCE_WINS: LastSourceWins = LastSourceWins;

fn echo_schema() -> serde_json::Value {
    serde_json::json!({ "type": "object", "properties": { "script": { "type": "string" } }, "additionalProperties": false })
}

/// One task `shared@1.0.0` whose script is the `script` setting.
fn build_echo(spec: &SourceSpec) -> Result<Box<dyn Source>, SourceError> {
    let script = spec.settings["script"]
        .as_str()
        .unwrap_or("(function (input) { return input; })");
    Ok(Box::new(MemorySource {
        name: spec.name.clone(),
        tasks: vec![("shared".into(), "1.0.0".into(), script.into())],
    }))
}

// Registered for every registry of this test binary, as an application's crate would.
inventory::submit!(SourceKind {
    name: "echo-submitted",
    description: "one task whose script is a setting",
    settings_schema: echo_schema,
    build: build_echo,
});

async fn a_strategy_given_in_code_decides_and_a_kind_submitted_with_inventory_builds(db: TestDatabase) {
    let spec =
        |name: &str, script: &str| SourceSpec::new(name, "echo-submitted", serde_json::json!({ "script": script }));
    let registry = Registry::builder()
        .database(&db.url)
        .source(spec("first", "(function (input) { return 1; })"))
        .source(spec("second", "(function (input) { return 2; })"))
        .conflict_strategy(&LAST_SOURCE_WINS)
        .open()
        .await
        .unwrap();
    let report = registry.sync().await.unwrap();
    assert_eq!((report.counts.added, report.counts.conflicts), (1, 1));
    let stored = registry.show("shared", Some("1.0.0")).await.unwrap().unwrap();
    assert!(stored.task.script.contains("return 2"), "{}", stored.task.script);
    let conflicts = registry.conflicts().await.unwrap();
    assert_eq!(conflicts[0].strategy, "last-source-wins");
    assert_eq!(conflicts[0].detail.offers.len(), 2);
}

/// Counts what a run tells its observer.
#[derive(Default)]
struct CountingObserver {
    announced: std::sync::atomic::AtomicUsize,
    loaded: std::sync::atomic::AtomicUsize,
    finished: std::sync::atomic::AtomicUsize,
}

impl registry_host::SyncObserver for CountingObserver {
    fn loading(&self, count: usize) {
        self.announced.fetch_add(count, std::sync::atomic::Ordering::SeqCst);
    }
    fn loaded(&self) {
        self.loaded.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn finished(&self) {
        self.finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn the_observer_the_caller_passes_hears_every_load(db: TestDatabase) {
    use std::sync::atomic::Ordering::SeqCst;
    let folder = tempfile::tempdir().unwrap();
    registry_host::generate::write_tree(folder.path(), 7).unwrap();
    let observer = Arc::new(CountingObserver::default());
    let registry = Registry::builder()
        .database(&db.url)
        .path_source(folder.path())
        .observer(observer.clone())
        .open()
        .await
        .unwrap();
    registry.sync().await.unwrap();
    assert_eq!(
        (
            observer.announced.load(SeqCst),
            observer.loaded.load(SeqCst),
            observer.finished.load(SeqCst)
        ),
        (7, 7, 1)
    );
    // An unchanged resync loads nothing, and says so.
    registry.sync().await.unwrap();
    assert_eq!((observer.loaded.load(SeqCst), observer.finished.load(SeqCst)), (7, 2));
}

/// Issue 13: `watchers` was keyed by host name, so two watchers on one host overwrote each
/// other's row. Each process (here: each registry, as two processes would be) now has its
/// own identity; its row goes when it ends, and a killed process's row ages out.
async fn two_watchers_on_one_host_each_have_their_row_and_a_gone_process_ages_out(db: TestDatabase) {
    use registry_host::store::{DatabaseUrl, PROCESS_STALE_AFTER, ProcessRole, ProcessStatus, Store};
    let folder = tempfile::tempdir().unwrap();
    write_named_task(&folder.path().join("first"), "first", "1.0.0", 1).unwrap();
    let open = || {
        Registry::builder()
            .database(&db.url)
            .path_source(folder.path())
            .watch_timing(
                Duration::from_millis(50),
                Duration::from_secs(30),
                Duration::from_secs(600),
            )
            .open()
    };
    let (one, two) = (open().await.unwrap(), open().await.unwrap());
    assert_ne!(one.process().id, two.process().id);
    assert_eq!(one.process().host, two.process().host);
    let (stop_one, stopped_one) = tokio::sync::oneshot::channel::<()>();
    let (stop_two, stopped_two) = tokio::sync::oneshot::channel::<()>();
    let watching_one = one.watch(async {
        let _ = stopped_one.await;
    });
    let watching_two = two.watch(async {
        let _ = stopped_two.await;
    });
    let watchers = |status: &registry_host::store::Status| -> Vec<String> {
        let mut ids: Vec<String> = status
            .processes
            .iter()
            .filter(|p| p.role == ProcessRole::Watch)
            .map(|p| p.process_id.clone())
            .collect();
        ids.sort();
        ids
    };
    let checking = async {
        let mut expected = vec![one.process().id.clone(), two.process().id.clone()];
        expected.sort();
        tokio::time::timeout(Duration::from_secs(20), async {
            while watchers(&one.status().await.unwrap()) != expected {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
        .await
        .expect("both watchers are listed, each under its own identity");
        // A process killed long ago left its row: status leaves it out, the next report
        // removes it.
        let mut store = Store::open(&DatabaseUrl::parse(&db.url, "".as_ref()).unwrap())
            .await
            .unwrap();
        let long_ago = registry_host::store::now_millis() - 10 * PROCESS_STALE_AFTER.as_millis() as i64;
        let killed = ProcessStatus {
            process_id: "killed".into(),
            role: ProcessRole::Watch,
            host: "gone".into(),
            pid: 1,
            started_at: long_ago,
            updated_at: long_ago,
            cache_hits: 0,
            cache_misses: 0,
            cache_entries: 0,
        };
        store.record_process(&killed, i64::MIN).await.unwrap();
        assert_eq!(
            watchers(&one.status().await.unwrap()),
            expected,
            "the stale row is not shown"
        );
        let _ = stop_one.send(());
        tokio::time::timeout(Duration::from_secs(20), async {
            while watchers(&two.status().await.unwrap()) != [two.process().id.clone()] {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
        .await
        .expect("a watcher that ends removes its own row, and only its own");
        let _ = stop_two.send(());
        store
    };
    let (watched_one, watched_two, mut store) = tokio::join!(watching_one, watching_two, checking);
    watched_one.unwrap();
    watched_two.unwrap();
    assert!(store.status().await.unwrap().processes.is_empty());
    // Any process's next report removes the stale row.
    let now = registry_host::store::now_millis();
    let alive = ProcessStatus {
        process_id: "alive".into(),
        role: ProcessRole::Serve,
        host: "here".into(),
        pid: 2,
        started_at: now,
        updated_at: now,
        cache_hits: 0,
        cache_misses: 0,
        cache_entries: 0,
    };
    store
        .record_process(&alive, now - PROCESS_STALE_AFTER.as_millis() as i64)
        .await
        .unwrap();
    assert_eq!(
        store.table_counts().await.unwrap()["processes"],
        1,
        "only the live row is left"
    );
}

const ADDITION_YAML: &str = "\
# meta.yaml: the author's text is stored as published.
name: yaml-addition
version: 1.0.0
description: Adds two numbers
runtime: nodejs
entrypoint: task.js
inputs:
  a: number
  b: number
outputs:
  result: number
test_cases:
  - input: { a: 1, b: 2 }
    expected_output: { result: 3 }
";

/// Everything the catalogue stores of each version, bar the times.
async fn stored_contents(registry: &Registry) -> Vec<String> {
    let mut stored = Vec::new();
    for summary in registry.list(ListFilter::all()).await.unwrap() {
        let details = registry
            .show(&summary.name, Some(&summary.version))
            .await
            .unwrap()
            .expect("a listed version is shown");
        let task = &details.task;
        let files = task.files().expect("the stored files match the digest");
        stored.push(format!(
            "{}@{} {} {} {} {} {:?} {:?} {} {:?} {:?}",
            task.name,
            task.version,
            task.digest,
            task.uuid,
            task.metadata,
            task.script,
            task.input_schema,
            task.output_schema,
            task.tests,
            task.published_files,
            files,
        ));
    }
    stored
}

async fn a_run_over_its_memory_budget_stages_contents_and_stores_the_same_catalogue(db: TestDatabase) {
    let reference_db = if db.backend == "sqlite" {
        TestDatabase::sqlite()
    } else {
        TestDatabase::postgres().await
    };
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for i in 0..40 {
        write_named_task(&first.path().join(format!("t{i}")), &format!("task-{i:02}"), "1.0.0", i).unwrap();
    }
    // A second source offers task-00 with other contents: a conflict decided between a
    // staged candidate and a held one.
    write_named_task(&second.path().join("t0"), "task-00", "1.0.0", 1000).unwrap();
    let yaml = first.path().join("yaml-addition");
    std::fs::create_dir_all(&yaml).unwrap();
    std::fs::write(yaml.join("meta.yaml"), ADDITION_YAML).unwrap();
    std::fs::write(
        yaml.join("task.js"),
        "function main(inputs) {\n  return { result: inputs.a + inputs.b };\n}\n\nmodule.exports = { main };\n",
    )
    .unwrap();
    let open = |url: String, budget: Option<usize>| {
        let (first, second) = (first.path().to_owned(), second.path().to_owned());
        async move {
            let builder = Registry::builder()
                .database(&url)
                .path_source(first)
                .path_source(second);
            let builder = match budget {
                Some(bytes) => builder.contents_in_memory(bytes),
                None => builder,
            };
            builder.open().await.unwrap()
        }
    };
    // Nothing held in memory: every loaded task is staged.
    let staged = open(db.url.clone(), Some(0)).await;
    let reference = open(reference_db.url.clone(), None).await;
    let (a, b) = (staged.sync().await.unwrap(), reference.sync().await.unwrap());
    assert_eq!((a.counts.added, a.counts.conflicts), (41, 1), "{:?}", a.counts);
    assert_eq!(a.counts, b.counts);
    // Each content once: task-00's two contents, the 40 others and the meta.yaml task.
    assert_eq!((a.staged, b.staged), (42, 0));
    let contents = stored_contents(&staged).await;
    assert_eq!(contents.len(), 41);
    assert!(
        contents.iter().any(|c| c.contains("# meta.yaml: the author's text")),
        "the author's meta.yaml is stored"
    );
    assert_eq!(contents, stored_contents(&reference).await);

    // An edit in place is an update whose new contents come from the staging table.
    std::fs::write(
        first.path().join("t5/main.js"),
        "(function (input) { return { sum: input.a + input.b }; })\n",
    )
    .unwrap();
    let (a, b) = (staged.sync().await.unwrap(), reference.sync().await.unwrap());
    assert_eq!((a.counts.updated, a.staged), (1, a.loaded), "{:?}", a.counts);
    assert_eq!((a.counts, a.loaded), (b.counts, b.loaded));
    let contents = stored_contents(&staged).await;
    assert!(contents.iter().any(|c| c.contains("return { sum: input.a + input.b }")));
    assert_eq!(contents, stored_contents(&reference).await);

    // The staging table goes with the run: the next one starts afresh.
    assert!(!staged.sync().await.unwrap().written);
}

/// A source whose loads wait (as on a network) and that asks for `wanted` in flight; it
/// records the most loads it ever had in flight at once (shared, for the test to read).
struct WaitingSource {
    inner: MemorySource,
    wanted: Option<usize>,
    in_flight: std::sync::atomic::AtomicUsize,
    most: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl Source for WaitingSource {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> &str {
        "waiting"
    }
    fn location(&self) -> String {
        "waiting".into()
    }
    async fn scan(&self) -> Result<Scan, SourceError> {
        self.inner.scan().await
    }
    async fn load(&self, entry: &Entry) -> Result<Bundle, SourceError> {
        use std::sync::atomic::Ordering;
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        // Long enough that every load the host starts at once is still waiting.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.inner.load(entry).await
    }
    fn loads_in_flight(&self) -> Option<usize> {
        self.wanted
    }
}

async fn a_source_whose_loads_wait_on_the_network_gets_more_in_flight(db: TestDatabase) {
    let tasks: Vec<(String, String, String)> = (0..40)
        .map(|i| {
            (
                format!("w{i:02}"),
                "1.0.0".into(),
                format!("(function (i) {{ return {i}; }})"),
            )
        })
        .collect();
    let mut most = Vec::new();
    for (wanted, database) in [(None, db.url.clone()), (Some(24), db.url.clone())] {
        let recorded = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let source = WaitingSource {
            inner: MemorySource {
                name: format!("waiting-{}", wanted.unwrap_or(0)),
                tasks: tasks.clone(),
            },
            wanted,
            in_flight: Default::default(),
            most: recorded.clone(),
        };
        let registry = Registry::builder()
            .database(&database)
            .concurrency(8)
            .source_object(source)
            .open()
            .await
            .unwrap();
        let report = registry.sync().await.unwrap();
        assert_eq!(report.loaded, 40);
        most.push(recorded.load(std::sync::atomic::Ordering::SeqCst));
    }
    assert_eq!(most, [8, 24], "the configured 8, then the 24 the source asked for");
}

/// An application signs its tasks with the library and requires signatures: contents
/// staged in the database (nothing held in memory) keep their signature, on add and on
/// update, on both backends' `INSERT … SELECT`.
async fn signed_tasks_staged_beyond_the_memory_budget_keep_their_signatures(db: TestDatabase) {
    use registry_core::{SignatureMode, SignaturePolicy, TrustedKey};
    use registry_host::signing::{KeyPair, KeyPassword, sign_paths};
    let dir = tempfile::tempdir().unwrap();
    let tasks = dir.path().join("tasks");
    for i in 0..30 {
        write_named_task(&tasks.join(format!("t{i}")), &format!("task-{i:02}"), "1.0.0", i).unwrap();
    }
    let files = KeyPair::generate(KeyPassword::None).unwrap();
    let secret = dir.path().join("release.key");
    std::fs::write(&secret, &files.secret).unwrap();
    let key = KeyPair::from_secret_key_file(&secret, KeyPassword::None).unwrap();
    let validation = registry_core::Validation::default();
    let signed = sign_paths(&key, std::slice::from_ref(&tasks), &validation, &[])
        .await
        .unwrap();
    assert_eq!(signed.tasks.iter().filter(|t| t.written.is_some()).count(), 30);
    let policy = SignaturePolicy::new(SignatureMode::Require, vec![TrustedKey::parse(&files.public).unwrap()]);
    let registry = Registry::builder()
        .database(&db.url)
        .path_source(&tasks)
        .contents_in_memory(0)
        .signature_policy(policy)
        .open()
        .await
        .unwrap();
    let report = registry.sync().await.unwrap();
    assert_eq!((report.counts.added, report.staged), (30, 30), "{:?}", report.counts);
    let key_id = files.key_id.to_string();
    let signers = |list: Vec<registry_host::store::VersionSummary>| -> Vec<Option<String>> {
        list.into_iter().map(|v| v.signed_by).collect()
    };
    assert_eq!(
        signers(registry.list(ListFilter::available()).await.unwrap()),
        vec![Some(key_id.clone()); 30]
    );

    // An edit signed again is an update whose contents and signature come from staging.
    let script = tasks.join("t3/main.js");
    std::fs::write(&script, "(function (input) { return { sum: input.a - input.b }; })\n").unwrap();
    sign_paths(&key, &[tasks.join("t3")], &validation, &[]).await.unwrap();
    let report = registry.sync().await.unwrap();
    assert_eq!((report.counts.updated, report.staged), (1, 1), "{:?}", report.counts);
    let shown = registry.show("task-03", Some("1.0.0")).await.unwrap().unwrap();
    assert!(shown.task.script.contains("input.a - input.b"));
    assert_eq!(shown.task.signature.signed_by.as_deref(), Some(key_id.as_str()));
    assert!(
        shown
            .task
            .signature
            .text
            .as_deref()
            .is_some_and(|t| t.starts_with("untrusted comment:"))
    );
    assert!(shown.task.signature.verified_at.is_some());
}

/// A signature added to unchanged content, and a key leaving the policy, are told to
/// subscribers (and `serve`'s event stream) though no content changed.
async fn a_version_signed_later_or_unverified_tells_subscribers_without_an_update(db: TestDatabase) {
    use registry_core::{SignatureMode, SignaturePolicy, TrustedKey};
    use registry_host::signing::{KeyPair, KeyPassword, sign_paths};
    let dir = tempfile::tempdir().unwrap();
    let tasks = dir.path().join("tasks");
    write_named_task(&tasks.join("a"), "alpha", "1.0.0", 1).unwrap();
    write_named_task(&tasks.join("b"), "beta", "1.0.0", 2).unwrap();
    let files = KeyPair::generate(KeyPassword::None).unwrap();
    let secret = dir.path().join("release.key");
    std::fs::write(&secret, &files.secret).unwrap();
    let key = KeyPair::from_secret_key_file(&secret, KeyPassword::None).unwrap();
    let trusting = |mode| SignaturePolicy::new(mode, vec![TrustedKey::parse(&files.public).unwrap()]);
    let open = |policy| {
        Registry::builder()
            .database(&db.url)
            .path_source(&tasks)
            .signature_policy(policy)
            .open()
    };
    let registry = open(trusting(SignatureMode::Verify)).await.unwrap();
    registry.sync().await.unwrap();
    let mut events = registry.subscribe();

    sign_paths(&key, &[tasks.join("a")], &registry_core::Validation::default(), &[])
        .await
        .unwrap();
    let report = registry.sync().await.unwrap();
    assert_eq!(report.counts.updated, 0, "{:?}", report.counts);
    let signed = RegistryEvent::SignatureChanged {
        name: "alpha".into(),
        version: "1.0.0".into(),
        signed_by: Some(files.key_id.to_string()),
    };
    assert_eq!(events.try_recv().ok(), Some(signed));
    assert!(events.try_recv().is_err(), "one event, for the signed version only");
    drop(registry);

    // The key leaves a policy that requires signatures: the version is no longer verified.
    let registry = open(SignaturePolicy::new(SignatureMode::Require, Vec::new()))
        .await
        .unwrap();
    let mut events = registry.subscribe();
    registry.sync().await.unwrap();
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    let unverified = RegistryEvent::SignatureChanged {
        name: "alpha".into(),
        version: "1.0.0".into(),
        signed_by: None,
    };
    assert!(seen.contains(&unverified), "{seen:?}");
}
