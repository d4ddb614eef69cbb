//! Every task layout Ratchet has shipped, in one repository built the way real ones are:
//! folders at the root and under `tasks/`, legacy and full `metadata.json`, `meta.yaml`
//! with an `inputs` map and with inline schemas, CommonJS and IIFE scripts, deliberately
//! failing test cases, an odd uuid, and folders that look like tasks and are not. The real
//! `taskreg` binary syncs it on SQLite; the same task then arrives by ZIP, HTTP and git
//! with the same digest.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use taskreg_tests::{Server, Taskreg, git, plugin_library, toml_path, workspace, zip_folder};

const ADDITION_YAML: &str = "\
# Ratchet's current layout: meta.yaml and a CommonJS script.
name: addition
description: Simple addition task for testing
version: 1.0.0
runtime: nodejs
entrypoint: task.js
inputs:
  a:
    type: number
    description: First number
    required: true
  b:
    type: number
    description: Second number
    required: true
outputs:
  result:
    type: number
    description: Sum of a and b
test_cases:
  - name: small numbers
    input: { a: 1, b: 2 }
    expected_output: { result: 3 }
";

const ADDITION_JS: &str =
    "function main(inputs) {\n  return { result: inputs.a + inputs.b };\n}\n\nmodule.exports = { main };\n";

const ORIGIN_YAML: &str = "\
name: httpbin_get_origin
description: Calls httpbin.org/get and returns the origin IP address
version: 1.0.0
author: Ratchet Examples
category: example
tags: [http, api]
input_schema:
  type: object
  properties: {}
  additionalProperties: false
output_schema:
  type: object
  properties:
    origin: { type: string }
  required: [origin]
test_cases:
  - name: basic_execution
    input: {}
    expected_output: { origin: string }
  - name: network down (deliberately failing)
    input: {}
    expected_output: { error: network unreachable }
";

fn write(root: &Path, path: &str, contents: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

/// A repository as Ratchet users have them, every layout mixed.
fn ratchet_repository(root: &Path) {
    write(root, "tasks/addition/meta.yaml", ADDITION_YAML);
    write(root, "tasks/addition/task.js", ADDITION_JS);
    write(root, "tasks/addition/README.md", "# addition\n");
    write(root, "httpbin-get-origin/meta.yaml", ORIGIN_YAML);
    write(
        root,
        "httpbin-get-origin/task.js",
        "(function (input) {\n  return { origin: '127.0.0.1' };\n})\n",
    );
    // The legacy metadata.json: no name (the folder's is used), no uuid.
    write(
        root,
        "tasks/weather/metadata.json",
        r#"{"version": "0.2.0", "label": "Weather", "description": "Reads the weather"}"#,
    );
    write(
        root,
        "tasks/weather/main.js",
        "(function (input) { return { temp: 21 }; })",
    );
    write(
        root,
        "tasks/weather/output.schema.json",
        r#"{"type": "object", "properties": {"temp": {"type": "number"}}, "required": ["temp"]}"#,
    );
    // A case without expected_output, as some samples have.
    write(
        root,
        "tasks/weather/tests/test-001.json",
        r#"{"input": {"city": "Oslo"}}"#,
    );
    // The full metadata.json with an odd uuid.
    write(
        root,
        "tasks/echo/metadata.json",
        r#"{"name": "echo", "uuid": "task-0001", "version": "1.2.0", "label": "Echo", "description": "Returns its input",
            "tags": ["util"], "ratchet_version": "0.4.0"}"#,
    );
    write(root, "tasks/echo/main.js", "(function (input) { return input; })");
    // Task-like folders that are not tasks.
    write(root, "drafts/sketch/main.js", "(function (input) { return input; })");
    write(
        root,
        "tasks/python-task/meta.yaml",
        "name: py\nversion: 1.0.0\nruntime: python3\n",
    );
    write(root, "tasks/python-task/task.js", "module.exports = { main: () => 1 };");
    write(root, "tasks/no-script/meta.yaml", "name: lonely\nversion: 1.0.0\n");
    // Skipped without a word, as node would: dependencies and hidden folders.
    write(root, "node_modules/left-pad/main.js", "module.exports = 1;");
    write(root, ".git-old/main.js", "x");
}

/// `name@version` → digest of every available version.
fn catalogue(taskreg: &Taskreg) -> BTreeMap<String, String> {
    taskreg
        .run(&["--json", "list"])
        .assert_code(0)
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                format!("{}@{}", v["name"].as_str().unwrap(), v["version"].as_str().unwrap()),
                v["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `(locator, severity, code)` of every current problem.
fn problems(taskreg: &Taskreg) -> BTreeSet<(String, String, String)> {
    taskreg
        .run(&["--json", "problems"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["locator"].as_str().unwrap().to_owned(),
                p["severity"].as_str().unwrap().to_owned(),
                p["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `(locator, severity, code)` of everything `taskreg validate ROOT` reports.
fn validated(taskreg: &Taskreg, root: &Path) -> BTreeSet<(String, String, String)> {
    taskreg
        .run(&["--json", "validate", root.to_str().unwrap()])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            entry(
                p["locator"].as_str().unwrap(),
                p["severity"].as_str().unwrap(),
                p["code"].as_str().unwrap(),
            )
        })
        .collect()
}

fn entry(locator: &str, severity: &str, code: &str) -> (String, String, String) {
    (locator.to_owned(), severity.to_owned(), code.to_owned())
}

fn repository_in(work: &Path) -> PathBuf {
    let repo = work.join("ratchet-tasks");
    ratchet_repository(&repo);
    repo
}

#[test]
fn every_layout_in_one_repository_syncs_with_its_problems_and_nothing_skipped_silently() {
    let (work, taskreg) = workspace();
    let repo = repository_in(work.path());
    taskreg.configure(&format!(
        "[[sources]]\nname = \"repo\"\ntype = \"filesystem\"\npath = {}\n",
        toml_path(&repo)
    ));
    taskreg.run(&["sync"]).assert_code(0);

    let listed: Vec<String> = catalogue(&taskreg).into_keys().collect();
    assert_eq!(
        listed,
        [
            "addition@1.0.0",
            "echo@1.2.0",
            "httpbin_get_origin@1.0.0",
            "weather@0.2.0"
        ]
    );
    let expected: BTreeSet<_> = [
        // Accepted with warnings: what Ratchet runs is not refused.
        entry("tasks/weather", "warning", "metadata.legacy_format"),
        entry("tasks/weather", "warning", "tests.field_missing"),
        entry("tasks/weather", "warning", "schema.missing"),
        entry("tasks/echo", "warning", "metadata.uuid_invalid"),
        entry("tasks/echo", "warning", "schema.missing"),
        entry("httpbin-get-origin", "warning", "tests.output_invalid"),
        // Said, never passed over.
        entry("drafts/sketch", "warning", "layout.unrecognized"),
        entry("tasks/python-task", "error", "layout.unrecognized"),
        entry("tasks/no-script", "error", "layout.unrecognized"),
    ]
    .into_iter()
    .collect();
    assert_eq!(problems(&taskreg), expected);

    // The stored bundle is what the author published; the catalogue's columns are JSON.
    let shown = taskreg.run(&["--json", "show", "addition"]).assert_code(0).json();
    assert_eq!(shown["files"]["meta.yaml"], ADDITION_YAML);
    assert_eq!(shown["files"]["task.js"], ADDITION_JS);
    assert_eq!(shown["files"].as_object().unwrap().len(), 2, "no README: {shown:#}");
    assert_eq!(shown["input_schema"]["required"], serde_json::json!(["a", "b"]));
    assert_eq!(shown["tests"][0]["case"]["expected_output"]["result"], 3);
    assert_eq!(shown["metadata"]["description"], "Simple addition task for testing");
    let echo = taskreg.run(&["--json", "show", "echo"]).assert_code(0).json();
    assert_eq!(
        echo["uuid"],
        uuid::Uuid::new_v5(&registry_core::TASK_UUID_NAMESPACE, b"echo").to_string()
    );

    // `validate` says what `sync` stored.
    assert_eq!(validated(&taskreg, &repo), expected);

    // Strict refuses what is only tolerated by default (on a fresh catalogue: a refused
    // task keeps its last good version, and unchanged tasks are not read again).
    let (_strict_work, strict) = workspace();
    strict.configure(&format!(
        "[[sources]]\nname = \"repo\"\ntype = \"filesystem\"\npath = {}\n",
        toml_path(&repo)
    ));
    let run = strict.run(&["--json", "sync", "--strict"]);
    run.assert_code(1);
    let listed: Vec<String> = catalogue(&strict).into_keys().collect();
    assert_eq!(listed, ["addition@1.0.0"], "{}", run.stdout);
    assert!(problems(&strict).contains(&entry("tasks/echo", "error", "metadata.uuid_invalid")));
}

#[test]
fn a_meta_yaml_task_has_one_digest_by_folder_archive_http_and_git() {
    let (work, taskreg) = workspace();
    let repo = repository_in(work.path());
    let archive = work.path().join("addition.zip");
    zip_folder(&repo.join("tasks/addition"), "", &archive);
    taskreg.configure(&format!(
        "[[sources]]\nname = \"folder\"\ntype = \"filesystem\"\npath = {}\n\n\
             [[sources]]\nname = \"archive\"\ntype = \"zip\"\npath = {}\n",
        toml_path(&repo.join("tasks/addition")),
        toml_path(&archive)
    ));
    taskreg.run(&["sync"]).assert_code(0);
    let folder_digest = catalogue(&taskreg)["addition@1.0.0"].clone();
    let shown = taskreg.run(&["--json", "show", "addition"]).assert_code(0).json();
    let sources: BTreeSet<&str> = shown["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["source"].as_str().unwrap())
        .collect();
    assert_eq!(
        sources,
        BTreeSet::from(["archive", "folder"]),
        "one version, two origins"
    );
    assert!(
        taskreg
            .run(&["--json", "conflicts"])
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Served over HTTP and synced back by a second registry.
    let server = Server::start(&taskreg, &[]);
    let downstream_dir = work.path().join("downstream");
    fs::create_dir_all(&downstream_dir).unwrap();
    let downstream = Taskreg::new(
        format!("sqlite://{}", downstream_dir.join("c.db").display()),
        &downstream_dir,
    );
    downstream.configure(&format!(
        "[[sources]]\nname = \"up\"\ntype = \"http\"\nurl = \"{}/v1/tasks\"\n",
        server.base
    ));
    downstream.run(&["sync"]).assert_code(0);
    assert_eq!(catalogue(&downstream)["addition@1.0.0"], folder_digest);
    let served = downstream.run(&["--json", "show", "addition"]).assert_code(0).json();
    assert_eq!(
        served["files"]["meta.yaml"], ADDITION_YAML,
        "the author's text survives the trip"
    );

    // From a git repository, through the git plugin.
    let upstream = work.path().join("git-upstream");
    fs::create_dir_all(&upstream).unwrap();
    git(&upstream, &["init", "-q", "-b", "main"]);
    ratchet_repository(&upstream);
    git(&upstream, &["add", "-A"]);
    git(&upstream, &["commit", "-q", "-m", "every layout"]);
    let by_git_dir = work.path().join("by-git");
    fs::create_dir_all(&by_git_dir).unwrap();
    let by_git = Taskreg::new(format!("sqlite://{}", by_git_dir.join("c.db").display()), &by_git_dir);
    by_git.configure(&format!(
        "[[plugins]]\npath = {}\n\n[[sources]]\nname = \"team\"\ntype = \"git\"\nurl = {}\n",
        toml_path(&plugin_library("git-source")),
        toml_path(&upstream)
    ));
    by_git.run(&["sync"]).assert_code(0);
    let from_git = catalogue(&by_git);
    assert_eq!(from_git["addition@1.0.0"], folder_digest);
    let from_folder = {
        let (_w, all) = workspace();
        all.configure(&format!(
            "[[sources]]\nname = \"repo\"\ntype = \"filesystem\"\npath = {}\n",
            toml_path(&repo)
        ));
        all.run(&["sync"]).assert_code(0);
        catalogue(&all)
    };
    assert_eq!(
        from_git, from_folder,
        "every layout reads the same from git as from a folder"
    );
    let git_problems = problems(&by_git);
    for expected in [
        entry("drafts/sketch", "warning", "layout.unrecognized"),
        entry("tasks/no-script", "error", "layout.unrecognized"),
    ] {
        assert!(git_problems.contains(&expected), "{expected:?} in {git_problems:#?}");
    }
}

#[test]
fn saving_a_task_in_place_is_an_update_with_its_history_not_a_conflict() {
    let (work, taskreg) = workspace();
    let repo = repository_in(work.path());
    taskreg.configure(&format!(
        "[[sources]]\nname = \"repo\"\ntype = \"filesystem\"\npath = {}\n",
        toml_path(&repo)
    ));
    taskreg.run(&["sync"]).assert_code(0);
    let before = catalogue(&taskreg)["addition@1.0.0"].clone();
    write(
        &repo,
        "tasks/addition/task.js",
        &ADDITION_JS.replace("inputs.a + inputs.b", "inputs.b + inputs.a"),
    );
    let report = taskreg.run(&["--json", "sync"]).assert_code(0).json();
    assert_eq!(
        (report["updated"].as_u64(), report["conflicts"].as_u64()),
        (Some(1), Some(0)),
        "{report:#}"
    );
    let after = catalogue(&taskreg)["addition@1.0.0"].clone();
    assert_ne!(after, before);
    assert!(
        taskreg
            .run(&["--json", "conflicts"])
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
    let history = taskreg.run(&["--json", "history", "addition"]).assert_code(0).json();
    assert_eq!(history[0]["digest"], after.as_str());
    assert_eq!(history[0]["replaced"][0]["digest"], before.as_str(), "{history:#}");

    // Under `immutable` the same save is a conflict and the stored content stays.
    fs::write(
        taskreg.dir.join("taskreg.toml"),
        format!(
            "[conflicts]\nstrategy = \"immutable\"\n\n[[sources]]\nname = \"repo\"\ntype = \"filesystem\"\npath = {}\n",
            toml_path(&repo)
        ),
    )
    .unwrap();
    write(&repo, "tasks/addition/task.js", ADDITION_JS);
    let report = taskreg.run(&["--json", "sync"]).assert_code(0).json();
    assert_eq!(
        (report["updated"].as_u64(), report["conflicts"].as_u64()),
        (Some(0), Some(1)),
        "{report:#}"
    );
    assert_eq!(catalogue(&taskreg)["addition@1.0.0"], after);
}

#[test]
fn archives_beside_folders_are_tasks_of_the_filesystem_source() {
    let (work, taskreg) = workspace();
    let repo = repository_in(work.path());
    let releases = repo.join("releases");
    fs::create_dir_all(&releases).unwrap();
    // The same task as its folder: one version, two origins.
    zip_folder(&repo.join("tasks/addition"), "", &releases.join("addition-1.0.0.zip"));
    // A copy at the root and one folder down: the root copy, the other reported.
    let staging = work.path().join("staging");
    write(
        &staging,
        "metadata.json",
        r#"{"name": "echo", "uuid": "task-0001", "version": "1.2.0", "label": "Echo", "description": "Returns its input",
            "tags": ["util"], "ratchet_version": "0.4.0"}"#,
    );
    write(&staging, "main.js", "(function (input) { return input; })");
    write(
        &staging,
        "echo/metadata.json",
        r#"{"name": "echo", "version": "9.9.9"}"#,
    );
    write(&staging, "echo/main.js", "(function (input) { return input; })");
    zip_folder(&staging, "", &releases.join("echo.zip"));
    // The weather task with different content for its version: a conflict.
    let edited = work.path().join("weather-edited");
    write(
        &edited,
        "metadata.json",
        r#"{"version": "0.2.0", "label": "Weather", "description": "Reads the weather, edited"}"#,
    );
    write(&edited, "main.js", "(function (input) { return { temp: 22 }; })");
    zip_folder(&edited, "weather/", &releases.join("weather.zip"));
    // Not an archive at all: refused, and the scan is partial (nothing removed).
    write(&repo, "releases/broken.zip", "this is not a zip file");
    taskreg.configure(&format!(
        "[[sources]]\nname = \"repo\"\ntype = \"filesystem\"\npath = {}\n",
        toml_path(&repo)
    ));
    let report = taskreg.run(&["--json", "sync"]).assert_code(0).json();
    assert_eq!(report["sources"][0]["complete"], false, "{report:#}");

    let listed: Vec<String> = catalogue(&taskreg).into_keys().collect();
    assert_eq!(
        listed,
        [
            "addition@1.0.0",
            "echo@1.2.0",
            "httpbin_get_origin@1.0.0",
            "weather@0.2.0"
        ],
        "the nested echo@9.9.9 is the duplicate, not a task"
    );
    let shown = taskreg.run(&["--json", "show", "addition"]).assert_code(0).json();
    let origins: BTreeSet<&str> = shown["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["locator"].as_str().unwrap())
        .collect();
    assert_eq!(
        origins,
        BTreeSet::from(["releases/addition-1.0.0.zip", "tasks/addition"])
    );
    let found = problems(&taskreg);
    for expected in [
        entry("releases/echo.zip/echo", "warning", "zip.duplicate_task"),
        entry("releases/broken.zip", "error", "zip.corrupt"),
        entry("releases/echo.zip", "warning", "metadata.uuid_invalid"),
    ] {
        assert!(found.contains(&expected), "{expected:?} in {found:#?}");
    }
    assert_eq!(validated(&taskreg, &repo), found, "validate says what sync stored");
    let conflicts = taskreg.run(&["--json", "conflicts"]).json();
    assert_eq!(conflicts.as_array().unwrap().len(), 1, "{conflicts:#}");
    assert_eq!(conflicts[0]["name"], "weather");

    // The archive goes: its origin goes, the folder keeps the version.
    fs::remove_file(releases.join("addition-1.0.0.zip")).unwrap();
    fs::remove_file(releases.join("broken.zip")).unwrap();
    taskreg.run(&["sync"]).assert_code(0);
    let shown = taskreg.run(&["--json", "show", "addition"]).assert_code(0).json();
    assert_eq!(shown["sources"].as_array().unwrap().len(), 1, "{shown:#}");
    assert!(shown["available"].as_bool().unwrap());
}

#[test]
fn a_repository_index_and_registry_yaml_are_honoured_checked_and_written() {
    let (work, taskreg) = workspace();
    let repo = repository_in(work.path());
    // As Ratchet's sample repository writes it, with its own paths.
    write(
        &repo,
        ".ratchet/registry.yaml",
        "name: \"Sample Task Repository\"\nversion: \"1.0.0\"\nmaintainers:\n  - name: \"Contributors\"\n\
         discovery:\n  auto_index: true\n  include_patterns:\n    - \"tasks/**\"\n    - \"httpbin-get-origin/**\"\n\
         \x20 exclude_patterns:\n    - \"**/node_modules/**\"\n    - \"**/*.zip\"\n    - \"**/python-task/**\"\n",
    );
    zip_folder(&repo.join("tasks/addition"), "", &repo.join("tasks/addition-copy.zip"));
    let root = repo.to_str().unwrap();

    // Adopting an index: written from the tasks, then checked clean.
    taskreg.run(&["index", root]).assert_code(0);
    let index: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(repo.join(".ratchet/index.json")).unwrap()).unwrap();
    let paths: Vec<&str> = index["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["httpbin-get-origin", "tasks/addition", "tasks/echo", "tasks/weather"],
        "discovery's patterns decide; refused tasks are not indexed"
    );
    assert_eq!(index["repository"]["name"], "Sample Task Repository");
    assert_eq!(index["statistics"]["total_tasks"], 4);
    assert_eq!(index["tasks"][1]["name"], "addition");
    taskreg.run(&["index", "--check", root]).assert_code(0);

    // The index drifts from the tree, as real ones do.
    let mut drifted = index.clone();
    let tasks = drifted["tasks"].as_array_mut().unwrap();
    tasks.retain(|t| t["path"] != "tasks/echo");
    for task in tasks.iter_mut() {
        if task["path"] == "tasks/weather" {
            task["version"] = "0.1.0".into();
        }
    }
    tasks.push(serde_json::json!({"path": "./tasks/gone/", "name": "gone", "version": "1.0.0"}));
    fs::write(
        repo.join(".ratchet/index.json"),
        serde_json::to_string_pretty(&drifted).unwrap(),
    )
    .unwrap();
    let check = taskreg.run(&["--json", "index", "--check", root]);
    check.assert_code(1);
    let differences: BTreeSet<String> = check
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        differences,
        BTreeSet::from([
            "tasks/echo".to_owned(),
            "tasks/gone".to_owned(),
            "tasks/weather".to_owned()
        ])
    );

    taskreg.configure(&format!(
        "[[sources]]\nname = \"repo\"\ntype = \"filesystem\"\npath = {}\n",
        toml_path(&repo)
    ));
    taskreg.run(&["sync"]).assert_code(0);
    // The task's own files win, and nothing is hidden.
    let listed: Vec<String> = catalogue(&taskreg).into_keys().collect();
    assert_eq!(
        listed,
        [
            "addition@1.0.0",
            "echo@1.2.0",
            "httpbin_get_origin@1.0.0",
            "weather@0.2.0"
        ]
    );
    let shown = taskreg.run(&["--json", "show", "addition"]).assert_code(0).json();
    assert_eq!(
        shown["sources"].as_array().unwrap().len(),
        1,
        "the excluded archive is not an origin"
    );
    let found = problems(&taskreg);
    for expected in [
        entry("tasks/weather", "warning", "index.mismatch"),
        entry("tasks/echo", "warning", "index.unlisted"),
        entry("tasks/gone", "warning", "index.stale_entry"),
    ] {
        assert!(found.contains(&expected), "{expected:?} in {found:#?}");
    }
    assert!(
        !found
            .iter()
            .any(|(l, _, _)| l == "drafts/sketch" || l == "tasks/python-task"),
        "outside discovery's patterns: {found:#?}"
    );
    let mismatch = taskreg.run(&["--json", "problems"]).json();
    let message = mismatch
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == "index.mismatch")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("0.1.0") && message.contains("0.2.0"), "{message}");
    assert_eq!(validated(&taskreg, &repo), found, "validate says what sync stored");

    // Fixed by writing the index again: the warnings clear at the next sync.
    taskreg.run(&["index", root]).assert_code(0);
    taskreg.run(&["sync"]).assert_code(0);
    let left = problems(&taskreg);
    assert!(!left.iter().any(|(_, _, code)| code.starts_with("index.")), "{left:#?}");
}
