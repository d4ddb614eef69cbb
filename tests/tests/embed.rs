//! The embedding example (`registry-host/examples/embed.rs`) as a host application runs it.

use serde_json::Value;
use std::process::Command;
use taskreg_tests::{TestDatabase, example_binary};

async fn run_embed_example(db: &TestDatabase) {
    let output = Command::new(example_binary("embed"))
        .arg(&db.url)
        .output()
        .expect("run the embed example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "embed failed:\n{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let (last, events) = lines.split_last().expect("some output");
    assert_eq!(*last, "resolved addition@^1 -> 1.2.0", "{stdout}");
    let events: Vec<Value> = events
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON event per line ({e}): {line}")))
        .collect();
    let added: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "task_added")
        .map(|e| format!("{}@{}", e["name"].as_str().unwrap(), e["version"].as_str().unwrap()))
        .collect();
    // The filesystem source's tasks and the example's own in-memory source kind's.
    for expected in ["addition@1.2.0", "greet@1.0.0"] {
        assert!(added.iter().any(|a| a == expected), "{expected} not added: {added:?}");
    }
    // The deliberately broken example task is reported as a problem, not skipped.
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "problem_raised" && e["locator"].as_str().unwrap_or("").contains("broken-version")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_embed_example_syncs_its_own_source_kind_prints_events_and_resolves_on_sqlite() {
    run_embed_example(&TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_embed_example_syncs_its_own_source_kind_prints_events_and_resolves_on_postgres() {
    run_embed_example(&TestDatabase::postgres().await).await;
}
