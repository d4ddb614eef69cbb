//! The `meta.yaml` layout, Ratchet's current one: one YAML document describing the task,
//! and the script it names.
//!
//! ```yaml
//! name: addition
//! version: 1.0.0
//! description: Adds two numbers
//! runtime: nodejs            # optional; a JavaScript runtime
//! entrypoint: task.js        # optional; default task.js
//! inputs:                    # or input_schema: <a JSON Schema>
//!   a: { type: number, description: First number, required: true }
//! outputs:                   # or output_schema: <a JSON Schema>
//!   result: { type: number }
//! test_cases:
//!   - name: small numbers
//!     input: { a: 1, b: 2 }
//!     expected_output: { result: 3 }
//! ```
//!
//! The stored task keeps the author's `meta.yaml` and script as written; the digest is
//! taken over the document as canonical JSON, so reformatting the YAML or its comments
//! changes nothing.

use crate::digest::canonical_json;
use crate::layout::{Layout, is_script_name};
use crate::problem::Problem;
use crate::task::{LayoutParts, ParsedTask, TaskTest, assemble, identity_from_metadata, task_files};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

const FILE: &str = task_files::META_YAML;

/// Runtimes whose tasks are JavaScript, as Ratchet writes them.
const JAVASCRIPT_RUNTIMES: [&str; 5] = ["javascript", "js", "nodejs", "node", "boa"];

/// Fields whose content the catalogue keeps in columns of its own.
const NOT_METADATA: [&str; 5] = ["inputs", "outputs", "input_schema", "output_schema", "test_cases"];

/// A problem with the YAML text itself.
pub(crate) struct YamlError {
    pub message: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

/// The document as JSON. Anchors and aliases are expanded (with the parser's own budget
/// against expansion bombs); a key that is not a string is refused.
pub(crate) fn parse_document(text: &str) -> Result<Value, YamlError> {
    yaml_serde::from_str::<Value>(text).map_err(|e| {
        let location = e.location();
        YamlError {
            message: format!("invalid YAML: {e}"),
            line: location.as_ref().map(|l| l.line() as u32),
            column: location.as_ref().map(|l| l.column() as u32),
        }
    })
}

pub(crate) fn parse(texts: &BTreeMap<&str, &str>, mut problems: Vec<Problem>) -> Result<ParsedTask, Vec<Problem>> {
    let Some(&raw) = texts.get(FILE) else {
        // Not UTF-8 or a NUL byte: already reported.
        return Err(problems);
    };
    let text = raw.strip_prefix('\u{feff}').unwrap_or(raw);
    let document = match parse_document(text) {
        Ok(document) => document,
        Err(e) => {
            let mut problem = Problem::error("yaml.invalid", e.message).in_file(FILE);
            if let (Some(line), Some(column)) = (e.line, e.column) {
                problem = problem.at_position(line, column);
            }
            problems.push(problem);
            return Err(problems);
        }
    };
    let identity = identity_from_metadata(&document, FILE, None, &mut problems);
    let Some(object) = document.as_object() else {
        return Err(problems);
    };

    check_runtime(object, &mut problems);
    let script_path = entrypoint(object, &mut problems);
    let script = script_path.as_deref().and_then(|path| match texts.get(path) {
        Some(&script) => Some((path.to_owned(), script)),
        None => {
            let found: Vec<&str> = texts.keys().copied().collect();
            problems.push(
                Problem::error(
                    "layout.unrecognized",
                    format!(
                        "meta.yaml names the script `{path}`, which is not in the folder (found: {}); \
                         without it the task cannot run",
                        found.join(", ")
                    ),
                )
                .in_file(FILE)
                .at_pointer(if object.contains_key("entrypoint") {
                    "/entrypoint"
                } else {
                    ""
                }),
            );
            None
        }
    });
    let input_schema = schema(object, "input_schema", "inputs", &mut problems);
    let output_schema = schema(object, "output_schema", "outputs", &mut problems);
    let tests = test_cases(object, &mut problems);

    let (Some(identity), Some((script_path, script))) = (identity, script) else {
        return Err(problems);
    };
    if problems.iter().any(Problem::is_error) {
        return Err(problems);
    }
    let metadata_view: Map<String, Value> = object
        .iter()
        .filter(|(key, _)| !NOT_METADATA.contains(&key.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let files = vec![
        (FILE.to_owned(), text.to_owned(), canonical_json(&document)),
        (script_path.clone(), script.to_owned(), script.to_owned()),
    ];
    Ok(assemble(LayoutParts {
        layout: Layout::MetaYaml,
        identity,
        metadata_view: Value::Object(metadata_view),
        metadata: document,
        script_path,
        input_schema,
        output_schema,
        tests,
        files,
        warnings: problems,
    }))
}

fn check_runtime(object: &Map<String, Value>, problems: &mut Vec<Problem>) {
    let runtime = match object.get("runtime") {
        None | Some(Value::Null) => return,
        Some(Value::String(runtime)) if JAVASCRIPT_RUNTIMES.contains(&runtime.trim().to_ascii_lowercase().as_str()) => {
            return;
        }
        Some(Value::String(runtime)) => runtime.clone(),
        Some(other) => other.to_string(),
    };
    problems.push(
        Problem::error(
            "layout.unrecognized",
            format!(
                "runtime `{runtime}` is not one taskreg reads: tasks are JavaScript (runtime {})",
                JAVASCRIPT_RUNTIMES.join(", ")
            ),
        )
        .in_file(FILE)
        .at_pointer("/runtime"),
    );
}

/// The script's file name: `entrypoint`, or `task.js`. It must be a script directly
/// beside `meta.yaml`, which is what sources read.
fn entrypoint(object: &Map<String, Value>, problems: &mut Vec<Problem>) -> Option<String> {
    match object.get("entrypoint") {
        None | Some(Value::Null) => Some(task_files::DEFAULT_ENTRYPOINT.to_owned()),
        Some(Value::String(path)) => {
            let path = path.strip_prefix("./").unwrap_or(path);
            if is_script_name(path) {
                Some(path.to_owned())
            } else {
                problems.push(
                    Problem::error(
                        "layout.unrecognized",
                        format!(
                            "entrypoint `{path}` is not a script beside meta.yaml (a `.js`, `.mjs` or `.cjs` \
                             file in the same folder)"
                        ),
                    )
                    .in_file(FILE)
                    .at_pointer("/entrypoint"),
                );
                None
            }
        }
        Some(other) => {
            problems.push(
                Problem::error(
                    "metadata.field_invalid",
                    format!("`entrypoint` must be a file name, found {other}"),
                )
                .in_file(FILE)
                .at_pointer("/entrypoint"),
            );
            None
        }
    }
}

/// The JSON Schema at `inline` (`input_schema`), or built from the field map at `fields`
/// (`inputs`): each field's keywords as its property, `required: true` fields required.
fn schema(object: &Map<String, Value>, inline: &str, fields: &str, problems: &mut Vec<Problem>) -> Option<Value> {
    if let Some(schema) = object.get(inline).filter(|v| !v.is_null()) {
        if object.get(fields).is_some_and(|v| !v.is_null()) {
            problems.push(
                Problem::warning(
                    "metadata.schema_ambiguous",
                    format!("both `{inline}` and `{fields}` are given; `{inline}` is used"),
                )
                .in_file(FILE)
                .at_pointer(format!("/{fields}")),
            );
        }
        return Some(schema.clone());
    }
    let map = match object.get(fields)? {
        Value::Null => return None,
        Value::Object(map) => map,
        other => {
            problems.push(
                Problem::error(
                    "metadata.field_invalid",
                    format!("`{fields}` must map each field to its type and description, found {other}"),
                )
                .in_file(FILE)
                .at_pointer(format!("/{fields}")),
            );
            return None;
        }
    };
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (field, spec) in map {
        let pointer = format!("/{fields}/{}", escape_pointer(field));
        let mut property = match spec {
            Value::Object(spec) => spec.clone(),
            // `a: number` is the short form of `a: { type: number }`.
            Value::String(kind) => Map::from_iter([("type".to_owned(), Value::String(kind.clone()))]),
            other => {
                problems.push(
                    Problem::error(
                        "metadata.field_invalid",
                        format!("field `{field}` must be a mapping (type, description, required), found {other}"),
                    )
                    .in_file(FILE)
                    .at_pointer(pointer),
                );
                continue;
            }
        };
        match property.remove("required") {
            None | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) => required.push(Value::String(field.clone())),
            Some(other) => problems.push(
                Problem::error(
                    "metadata.field_invalid",
                    format!("`required` of `{field}` must be true or false, found {other}"),
                )
                .in_file(FILE)
                .at_pointer(format!("{pointer}/required")),
            ),
        }
        properties.insert(field.clone(), Value::Object(property));
    }
    let mut schema = Map::new();
    schema.insert("type".into(), Value::String("object".into()));
    schema.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), Value::Array(required));
    }
    Some(Value::Object(schema))
}

fn test_cases(object: &Map<String, Value>, problems: &mut Vec<Problem>) -> Vec<TaskTest> {
    match object.get("test_cases") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(cases)) => cases
            .iter()
            .enumerate()
            .map(|(i, case)| TaskTest {
                file: FILE.to_owned(),
                pointer: format!("/test_cases/{i}"),
                case: case.clone(),
            })
            .collect(),
        Some(other) => {
            problems.push(
                Problem::error(
                    "metadata.field_invalid",
                    format!("`test_cases` must be a list of cases, found {other}"),
                )
                .in_file(FILE)
                .at_pointer("/test_cases"),
            );
            Vec::new()
        }
    }
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
