//! Generated task trees: the data `taskreg bench` measures on, for anyone measuring a
//! registry. Realistic tasks (metadata, script, both schemas, two tests), a hundred per
//! group folder, written in code.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Writes task number `index` (name `task-NNNNN`, version `1.0.0`) into `dir`.
pub fn write_task(dir: &Path, index: usize) -> io::Result<()> {
    write_named_task(dir, &format!("task-{index:05}"), "1.0.0", index)
}

/// Writes a complete valid task called `name` at `version` into `dir`; `seed` varies the
/// content so that tasks differ.
pub fn write_named_task(dir: &Path, name: &str, version: &str, seed: usize) -> io::Result<()> {
    fs::create_dir_all(dir.join("tests"))?;
    fs::write(
        dir.join("metadata.json"),
        format!(
            r#"{{
  "name": "{name}",
  "version": "{version}",
  "label": "Generated task {seed}",
  "description": "Adds {seed} to the sum of two numbers.",
  "tags": ["generated", "math"],
  "category": "benchmark",
  "author": "taskreg fixtures",
  "license": "MIT",
  "ratchet_version": "0.4.0",
  "created_at": "2026-01-01T00:00:00Z",
  "updated_at": "2026-01-02T00:00:00Z"
}}
"#
        ),
    )?;
    fs::write(
        dir.join("main.js"),
        format!(
            "(function (input) {{\n  // generated task {seed}\n  const {{ a, b }} = input;\n  return {{ sum: a + b + {seed} }};\n}})\n"
        ),
    )?;
    fs::write(
        dir.join("input.schema.json"),
        r#"{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "properties": { "a": { "type": "number" }, "b": { "type": "number" } },
  "required": ["a", "b"]
}
"#,
    )?;
    fs::write(
        dir.join("output.schema.json"),
        r#"{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "properties": { "sum": { "type": "number" } },
  "required": ["sum"]
}
"#,
    )?;
    for (case, (a, b)) in [(1, 2), (10, 20)].into_iter().enumerate() {
        fs::write(
            dir.join(format!("tests/test-{:03}.json", case + 1)),
            format!(
                r#"{{ "input": {{ "a": {a}, "b": {b} }}, "expected_output": {{ "sum": {} }} }}"#,
                a + b + seed
            ),
        )?;
    }
    Ok(())
}

/// Writes `count` tasks below `root`, a hundred per group folder, and returns the folders.
pub fn write_tree(root: &Path, count: usize) -> io::Result<Vec<PathBuf>> {
    (0..count)
        .map(|i| {
            let dir = root.join(format!("group-{:03}", i / 100)).join(format!("task-{i:05}"));
            write_task(&dir, i).map(|()| dir)
        })
        .collect()
}
