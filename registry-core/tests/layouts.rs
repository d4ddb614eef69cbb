//! Every task layout Ratchet has shipped, read from bundles made in code.

use registry_core::{
    Bundle, Layout, LoadOutcome, Problem, Severity, Validation, check_bundle, digest_of_published, parse_bundle,
};
use serde_json::{Value, json};

fn bundle(files: &[(&str, &str)]) -> Bundle {
    Bundle::from_files(files.iter().map(|(p, c)| (p.to_string(), c.as_bytes().to_vec())))
}

/// Ratchet's current layout as its sample repository writes it: an `inputs`/`outputs` map
/// and a CommonJS script.
const ADDITION_YAML: &str = "\
name: addition
description: Simple addition task for testing
version: 1.0.0
runtime: nodejs
entrypoint: task.js
author: Ratchet Examples
category: math
tags: [math, example]
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
    description: adds two small numbers
    input: { a: 1, b: 2 }
    expected_output: { result: 3 }
";

const COMMONJS: &str =
    "function main(inputs) {\n  return { result: inputs.a + inputs.b };\n}\n\nmodule.exports = { main };\n";

/// Inline schemas, no entrypoint (so `task.js`), a deliberately failing case.
const ORIGIN_YAML: &str = r#"
name: httpbin_get_origin
description: Calls httpbin.org/get and returns the origin IP address
version: 1.0.0
author: Ratchet Examples
category: example
tags:
  - http
input_schema:
  type: object
  properties: {}
  additionalProperties: false
output_schema:
  type: object
  properties:
    origin:
      type: string
  required:
    - origin
test_cases:
  - name: basic_execution
    input: {}
    expected_output:
      origin: string
  - name: deliberately failing
    input: {}
    expected_output:
      error: "network unreachable"
"#;

const IIFE: &str = "(function (input) { return { origin: '127.0.0.1' }; })";

fn accepted(bundle: &Bundle) -> (std::sync::Arc<registry_core::TaskDefinition>, Vec<Problem>) {
    match check_bundle(bundle, &Validation::default()) {
        LoadOutcome::Parsed { task, warnings, .. } => (task, warnings),
        LoadOutcome::Broken(problems) => panic!("refused: {problems:#?}"),
    }
}

fn codes(problems: &[Problem]) -> Vec<(&str, Option<&str>, Option<&str>)> {
    problems
        .iter()
        .map(|p| (p.code.as_str(), p.file.as_deref(), p.pointer.as_deref()))
        .collect()
}

#[test]
fn a_meta_yaml_task_with_an_inputs_map_and_a_commonjs_script_is_read() {
    let (task, warnings) = accepted(&bundle(&[("meta.yaml", ADDITION_YAML), ("task.js", COMMONJS)]));
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert_eq!(
        (task.name.as_str(), task.version.to_string().as_str()),
        ("addition", "1.0.0")
    );
    assert_eq!(task.layout, Layout::MetaYaml);
    assert_eq!(task.script_path(), "task.js");
    assert_eq!(task.script(), COMMONJS);
    // The author's files, as written.
    assert_eq!(task.file("meta.yaml"), Some(ADDITION_YAML));
    // The catalogue's views: JSON Schema built from the map, metadata without the rest.
    let input: Value = serde_json::from_str(task.input_schema().unwrap()).unwrap();
    assert_eq!(
        input,
        json!({"type": "object", "required": ["a", "b"], "properties": {
            "a": {"type": "number", "description": "First number"},
            "b": {"type": "number", "description": "Second number"}}})
    );
    let metadata: Value = serde_json::from_str(task.metadata_json()).unwrap();
    assert_eq!(metadata["category"], "math");
    assert!(metadata.get("inputs").is_none() && metadata.get("test_cases").is_none());
    let tests: Value = serde_json::from_str(&task.tests_json()).unwrap();
    assert_eq!(tests[0]["file"], "meta.yaml");
    assert_eq!(tests[0]["pointer"], "/test_cases/0");
    assert_eq!(tests[0]["case"]["expected_output"]["result"], 3);
    // The UUID is derived from the name, as for a metadata.json without one.
    assert_eq!(task.uuid.get_version_num(), 5);
}

#[test]
fn the_meta_yaml_digest_ignores_formatting_and_comments_and_is_checkable_from_the_published_files() {
    let (task, _) = accepted(&bundle(&[("meta.yaml", ADDITION_YAML), ("task.js", COMMONJS)]));
    let reformatted = ADDITION_YAML
        .replace(
            "tags: [math, example]",
            "# tagged for the catalogue\ntags:\n  - math\n  - example",
        )
        .replace("input: { a: 1, b: 2 }", "input:\n      b: 2\n      a: 1");
    let (again, _) = accepted(&bundle(&[("meta.yaml", &reformatted), ("task.js", COMMONJS)]));
    assert_eq!(again.digest, task.digest);
    assert_ne!(again.files, task.files, "the files are kept as written");
    let published: Vec<(&str, &str)> = task
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.contents.as_str()))
        .collect();
    assert_eq!(digest_of_published(published).unwrap(), task.digest);
    // A README or a helper script beside the task is not part of it.
    let (with_extras, _) = accepted(&bundle(&[
        ("meta.yaml", ADDITION_YAML),
        ("task.js", COMMONJS),
        ("helper.js", "module.exports = 1;"),
        ("README.md", "notes"),
    ]));
    assert_eq!(with_extras.digest, task.digest);
    // Editing the script or a value changes it.
    let (edited, _) = accepted(&bundle(&[
        ("meta.yaml", &ADDITION_YAML.replace("Sum of a and b", "The sum")),
        ("task.js", COMMONJS),
    ]));
    assert_ne!(edited.digest, task.digest);
}

#[test]
fn inline_schemas_and_a_deliberately_failing_case_are_a_warning_at_its_pointer() {
    let (task, warnings) = accepted(&bundle(&[("meta.yaml", ORIGIN_YAML), ("task.js", IIFE)]));
    assert_eq!(task.name, "httpbin_get_origin");
    assert_eq!(
        codes(&warnings),
        [(
            "tests.output_invalid",
            Some("meta.yaml"),
            Some("/test_cases/1/expected_output")
        )]
    );
    assert_eq!(warnings[0].severity, Severity::Warning);
    let output: Value = serde_json::from_str(task.output_schema().unwrap()).unwrap();
    assert_eq!(output["required"], json!(["origin"]));
    // Strict refuses it.
    let strict = Validation::configure(&Default::default(), Default::default(), true).unwrap();
    let refused = check_bundle(&bundle(&[("meta.yaml", ORIGIN_YAML), ("task.js", IIFE)]), &strict);
    assert!(matches!(refused, LoadOutcome::Broken(_)));
}

#[test]
fn a_schema_problem_in_meta_yaml_points_into_meta_yaml() {
    let yaml = ORIGIN_YAML.replace("additionalProperties: false", "additionalProperties: 12");
    let outcome = check_bundle(
        &bundle(&[("meta.yaml", &yaml), ("task.js", IIFE)]),
        &Validation::default(),
    );
    let LoadOutcome::Broken(problems) = outcome else {
        panic!("accepted an invalid schema");
    };
    assert!(
        codes(&problems).contains(&(
            "schema.invalid",
            Some("meta.yaml"),
            Some("/input_schema/additionalProperties")
        )),
        "{problems:#?}"
    );
}

#[test]
fn what_cannot_run_is_refused_as_an_unrecognized_layout_naming_what_is_missing() {
    let refused = |files: &[(&str, &str)]| parse_bundle(&bundle(files)).unwrap_err();
    let no_script = refused(&[("meta.yaml", ADDITION_YAML)]);
    assert_eq!(
        codes(&no_script),
        [("layout.unrecognized", Some("meta.yaml"), Some("/entrypoint"))]
    );
    assert!(no_script[0].message.contains("task.js"), "{}", no_script[0].message);

    let python = refused(&[
        (
            "meta.yaml",
            &ADDITION_YAML.replace("runtime: nodejs", "runtime: python3"),
        ),
        ("task.js", COMMONJS),
    ]);
    assert_eq!(
        codes(&python),
        [("layout.unrecognized", Some("meta.yaml"), Some("/runtime"))]
    );
    assert!(python[0].message.contains("python3"));

    let bad_yaml = refused(&[("meta.yaml", "name: [unclosed\n"), ("task.js", COMMONJS)]);
    assert_eq!(bad_yaml[0].code, "yaml.invalid");
    assert!(bad_yaml[0].line.is_some());

    let float_version = refused(&[("meta.yaml", "name: t\nversion: 1.0\n"), ("task.js", COMMONJS)]);
    assert_eq!(
        codes(&float_version),
        [("metadata.version_not_semver", Some("meta.yaml"), Some("/version"))]
    );

    let no_name = refused(&[("meta.yaml", "version: 1.0.0\n"), ("task.js", COMMONJS)]);
    assert_eq!(
        codes(&no_name),
        [("metadata.name_missing", Some("meta.yaml"), Some("/name"))]
    );
}

#[test]
fn both_layouts_in_one_folder_read_metadata_json_and_say_so() {
    let parsed = parse_bundle(&bundle(&[
        ("metadata.json", r#"{"name":"t","version":"2.0.0"}"#),
        ("main.js", IIFE),
        ("meta.yaml", ADDITION_YAML),
        ("task.js", COMMONJS),
    ]))
    .unwrap();
    assert_eq!(parsed.task.layout, Layout::MetadataJson);
    assert_eq!(parsed.task.name, "t");
    assert_eq!(codes(&parsed.warnings), [("layout.ambiguous", Some("meta.yaml"), None)]);
}

#[test]
fn commonjs_and_iife_scripts_pass_the_script_check_in_both_layouts() {
    for script in [
        COMMONJS,
        "const run = (input) => input;\nmodule.exports = { main: run };\n",
        "module.exports = { main: function (input) { return input; } };",
        IIFE,
    ] {
        let (_, warnings) = accepted(&bundle(&[("meta.yaml", ADDITION_YAML), ("task.js", script)]));
        assert!(warnings.iter().all(|p| !p.code.starts_with("script")), "{script}");
        let json = bundle(&[
            (
                "metadata.json",
                r#"{"name":"t","version":"1.0.0","label":"T","description":"d"}"#,
            ),
            ("main.js", script),
        ]);
        assert!(
            matches!(check_bundle(&json, &Validation::default()), LoadOutcome::Parsed { .. }),
            "{script}"
        );
    }
    let outcome = check_bundle(
        &bundle(&[
            ("meta.yaml", ADDITION_YAML),
            ("task.js", "module.exports = { run: 1 };"),
        ]),
        &Validation::default(),
    );
    let LoadOutcome::Broken(problems) = outcome else {
        panic!("a script without main was accepted");
    };
    assert_eq!(codes(&problems), [("script.no_entry_point", Some("task.js"), None)]);
}
