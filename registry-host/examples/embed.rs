//! A minimal host application that embeds taskreg.
//!
//! Run with `cargo run --release -p registry-host --example embed [DATABASE_URL]`.
//!
//! It builds a [`Registry`] in code, with two sources: the repository's example tasks on
//! disk, and a source kind of its own that keeps tasks in memory (the way an application
//! would offer tasks from its own store). It subscribes to the registry's events, syncs,
//! prints each event as one line of JSON, then resolves `addition@^1`.
//!
//! The catalogue goes to DATABASE_URL (`sqlite://…` or `postgres://…`), by default a fresh
//! SQLite file in the system's temporary folder, removed at the end.

use registry_core::{Bundle, Entry, Scan, Source, SourceError, SourceKind, SourceSpec};
use registry_host::{Registry, RegistryError};
use std::collections::BTreeMap;

/// A source kind of the application's own: tasks held in memory, keyed by locator.
struct MemorySource {
    name: String,
    tasks: BTreeMap<String, Vec<(&'static str, Vec<u8>)>>,
}

#[async_trait::async_trait]
impl Source for MemorySource {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &str {
        "in-memory"
    }
    fn location(&self) -> String {
        format!("memory:{}", self.name)
    }
    async fn scan(&self) -> Result<Scan, SourceError> {
        let entries = self
            .tasks
            .iter()
            .map(|(locator, files)| Entry {
                locator: locator.clone(),
                // The content itself is cheap to fingerprint when it is in memory.
                fingerprint: registry_core::Digest::of_files(files.iter().map(|(p, b)| (*p, b.as_slice()))).to_string(),
            })
            .collect();
        Ok(Scan {
            entries,
            complete: true,
            issues: Vec::new(),
        })
    }
    async fn load(&self, entry: &Entry) -> Result<Bundle, SourceError> {
        let files = self.tasks.get(&entry.locator).ok_or_else(|| SourceError::File {
            file: entry.locator.clone(),
            reason: "no longer in memory".into(),
        })?;
        Ok(Bundle::from_files(files.iter().map(|(p, b)| (*p, b.clone()))))
    }
}

/// The kind's settings: `greeting`, the word the one in-memory task answers with.
fn memory_settings_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": { "greeting": { "type": "string" } },
        "required": ["greeting"],
        "additionalProperties": false,
    })
}

fn build_memory_source(spec: &SourceSpec) -> Result<Box<dyn Source>, SourceError> {
    let greeting = spec.settings["greeting"].as_str().unwrap_or("hello").to_owned();
    let metadata = serde_json::json!({
        "name": "greet",
        "version": "1.0.0",
        "label": "Greet",
        "description": "Greets whoever is named.",
    });
    let script = format!("(function (input) {{ return {{ text: \"{greeting}, \" + input.name }}; }})\n");
    let mut tasks = BTreeMap::new();
    tasks.insert(
        "greet".to_owned(),
        vec![
            (
                "metadata.json",
                serde_json::to_vec_pretty(&metadata).expect("static JSON"),
            ),
            ("main.js", script.into_bytes()),
        ],
    );
    Ok(Box::new(MemorySource {
        name: spec.name.clone(),
        tasks,
    }))
}

const MEMORY_KIND: SourceKind = SourceKind {
    name: "in-memory",
    description: "Tasks the application keeps in memory",
    settings_schema: memory_settings_schema,
    build: build_memory_source,
};

#[tokio::main]
async fn main() -> Result<(), RegistryError> {
    let scratch = std::env::temp_dir().join(format!("taskreg-embed-{}.db", std::process::id()));
    let database = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("sqlite://{}", scratch.display()));
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/tasks");

    let registry = Registry::builder()
        .database(database)
        .path_source(examples)
        .source_kind(MEMORY_KIND)
        .source(SourceSpec::new(
            "memory",
            "in-memory",
            serde_json::json!({ "greeting": "hello" }),
        ))
        .cache_capacity(0)
        .open()
        .await?;

    let mut events = registry.subscribe();
    let report = registry.sync().await?;
    while let Ok(event) = events.try_recv() {
        println!("{}", serde_json::to_string(&event).expect("events serialize"));
    }
    eprintln!(
        "synced: {} added, {} problem(s)",
        report.counts.added,
        report.problems.len()
    );

    match registry.resolve("addition", "^1").await? {
        Some(found) => println!("resolved addition@^1 -> {}", found.task.version),
        None => println!("resolved addition@^1 -> nothing"),
    }
    drop(registry);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", scratch.display()));
    }
    Ok(())
}
