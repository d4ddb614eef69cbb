//! The validation rules, one promise per test, on bundles made in code.

use registry_core::{
    Bundle, LoadOutcome, ParsedTask, Problem, RegisteredValidator, RuleLevel, Validation, ValidationContext, Validator,
    check_bundle,
};
use std::collections::BTreeMap;

const METADATA: &str = r#"{"name":"t","version":"1.0.0","label":"T","description":"d"}"#;
const SCHEMA: &str = r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"n":{"type":"number"}},"required":["n"]}"#;
const SCRIPT: &str = "(function (input) { return input; })";

fn bundle(extra: &[(&str, &str)]) -> Bundle {
    let mut files: BTreeMap<String, Vec<u8>> = [
        ("metadata.json", METADATA),
        ("main.js", SCRIPT),
        ("input.schema.json", SCHEMA),
        ("output.schema.json", SCHEMA),
    ]
    .into_iter()
    .map(|(p, c)| (p.to_owned(), c.as_bytes().to_vec()))
    .collect();
    for (path, content) in extra {
        files.insert(path.to_string(), content.as_bytes().to_vec());
    }
    Bundle {
        files,
        ..Bundle::default()
    }
}

fn problems(bundle: &Bundle, validation: &Validation) -> (bool, Vec<Problem>) {
    match check_bundle(bundle, validation) {
        LoadOutcome::Parsed { warnings, .. } => (true, warnings),
        LoadOutcome::Broken(problems) => (false, problems),
    }
}

fn codes(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.code.as_str()).collect()
}

#[test]
fn a_complete_task_passes_every_rule() {
    let (accepted, found) = problems(
        &bundle(&[("tests/a.json", r#"{"input":{"n":1},"expected_output":{"n":1}}"#)]),
        &Validation::default(),
    );
    assert!(accepted && found.is_empty(), "{found:?}");
}

#[test]
fn json_that_is_not_json_schema_is_refused_with_the_pointer() {
    let (accepted, found) = problems(
        &bundle(&[("input.schema.json", r#"{"type": 12345}"#)]),
        &Validation::default(),
    );
    assert!(!accepted);
    let problem = found
        .iter()
        .find(|p| p.code == "schema.invalid")
        .expect("schema.invalid");
    assert_eq!(problem.file.as_deref(), Some("input.schema.json"));
    assert_eq!(problem.pointer.as_deref(), Some("/type"));
}

#[test]
fn a_missing_schema_is_a_warning() {
    let mut b = bundle(&[]);
    b.files.remove("output.schema.json");
    let (accepted, found) = problems(&b, &Validation::default());
    assert!(accepted);
    assert_eq!(codes(&found), ["schema.missing"]);
    assert_eq!(found[0].file.as_deref(), Some("output.schema.json"));
}

fn strict() -> Validation {
    Validation::configure(&BTreeMap::new(), ValidationContext::default(), true).unwrap()
}

fn with_level(rule: &str, level: RuleLevel) -> Validation {
    let levels = BTreeMap::from([(rule.to_owned(), level)]);
    Validation::configure(&levels, ValidationContext::default(), false).unwrap()
}

#[test]
fn a_test_case_that_violates_its_schema_names_the_file_and_pointer() {
    let case = r#"{"input":{"n":"one"},"expected_output":{}}"#;
    // Ratchet's samples carry deliberate failure cases: by default a warning, the task
    // accepted; an error under `strict` or `tests = "error"`.
    let (accepted, warned) = problems(&bundle(&[("tests/bad.json", case)]), &Validation::default());
    assert!(accepted);
    assert!(warned.iter().all(|p| !p.is_error()), "{warned:?}");
    let refused = !problems(
        &bundle(&[("tests/bad.json", case)]),
        &with_level("tests", RuleLevel::Error),
    )
    .0;
    assert!(refused);
    let (accepted, found) = problems(&bundle(&[("tests/bad.json", case)]), &strict());
    assert!(!accepted);
    assert_eq!(codes(&found), codes(&warned));
    let input = found
        .iter()
        .find(|p| p.code == "tests.input_invalid")
        .expect("input problem");
    assert_eq!(
        (input.file.as_deref(), input.pointer.as_deref()),
        (Some("tests/bad.json"), Some("/input/n"))
    );
    let output = found
        .iter()
        .find(|p| p.code == "tests.output_invalid")
        .expect("output problem");
    assert_eq!(output.pointer.as_deref(), Some("/expected_output"));
    assert!(
        output.message.contains("\"n\" is a required property"),
        "{}",
        output.message
    );
}

#[test]
fn a_test_case_without_expected_output_is_a_warning_and_an_error_when_strict() {
    let task = bundle(&[("tests/a.json", r#"{"input":{"n":1}}"#)]);
    let (accepted, found) = problems(&task, &Validation::default());
    assert!(accepted);
    assert_eq!(codes(&found), ["tests.field_missing"]);
    assert!(!found[0].is_error());
    assert_eq!(found[0].pointer.as_deref(), Some("/expected_output"));
    let (accepted, found) = problems(&task, &strict());
    assert!(!accepted);
    assert_eq!(codes(&found), ["tests.field_missing"]);
}

#[test]
fn a_uuid_that_is_not_one_gives_the_name_s_uuidv5_with_a_warning() {
    let metadata = r#"{"name":"t","version":"1.0.0","label":"T","description":"d","uuid":"task-0001"}"#;
    let task = bundle(&[("metadata.json", metadata)]);
    let outcome = check_bundle(&task, &Validation::default());
    let LoadOutcome::Parsed {
        task: parsed, warnings, ..
    } = outcome
    else {
        panic!("refused: {outcome:?}");
    };
    assert_eq!(
        parsed.uuid,
        uuid::Uuid::new_v5(&registry_core::TASK_UUID_NAMESPACE, b"t")
    );
    assert_eq!(codes(&warnings), ["metadata.uuid_invalid"]);
    assert!(warnings[0].message.contains("task-0001") && warnings[0].message.contains(&parsed.uuid.to_string()));
    assert_eq!(warnings[0].pointer.as_deref(), Some("/uuid"));
    // Refused when the operator asks for it.
    assert!(!problems(&task, &strict()).0);
    assert!(!problems(&task, &with_level("uuid", RuleLevel::Error)).0);
    // A per-rule level beats `strict`.
    let levels = BTreeMap::from([("uuid".to_owned(), RuleLevel::Warn)]);
    let lenient = Validation::configure(&levels, ValidationContext::default(), true).unwrap();
    assert!(problems(&task, &lenient).0);
}

#[test]
fn a_syntax_error_in_main_js_has_its_line_and_column() {
    let script = "(function (input) {\n  const x = ;\n  return x;\n})";
    let (accepted, found) = problems(&bundle(&[("main.js", script)]), &Validation::default());
    assert!(!accepted);
    assert_eq!(codes(&found), ["script.syntax"]);
    assert_eq!((found[0].line, found[0].column), (Some(2), Some(13)));
}

#[test]
fn main_js_must_be_a_function_or_define_main() {
    let accepted = |script: &str| problems(&bundle(&[("main.js", script)]), &Validation::default()).0;
    assert!(accepted("(input) => input"));
    assert!(accepted("function main(input) { return input; }"));
    assert!(accepted("const main = (input) => input;"));
    assert!(accepted("export function main(input) { return input; }"));
    assert!(accepted("module.exports = function (input) { return input; };"));
    let (ok, found) = problems(
        &bundle(&[("main.js", "const helper = 1;\nconsole.log(helper);")]),
        &Validation::default(),
    );
    assert!(!ok);
    assert_eq!(codes(&found), ["script.no_entry_point"]);
}

#[test]
fn limits_refuse_before_parsing() {
    let huge = format!(
        "{{\"input\":\"{}\",\"expected_output\":1}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let (accepted, found) = problems(&bundle(&[("tests/huge.json", &huge)]), &Validation::default());
    assert!(!accepted);
    assert_eq!(codes(&found), ["limits.file_too_large"]);
    assert_eq!(found[0].file.as_deref(), Some("tests/huge.json"));
}

#[test]
fn levels_downgrade_or_switch_off_a_rule_and_unknown_rules_are_refused() {
    let broken_schema = bundle(&[("input.schema.json", r#"{"type": 12345}"#)]);
    let warn = Validation::configure(
        &BTreeMap::from([("schemas".into(), RuleLevel::Warn)]),
        ValidationContext::default(),
        false,
    )
    .unwrap();
    let (accepted, found) = problems(&broken_schema, &warn);
    assert!(accepted, "a rule at `warn` does not refuse the task");
    assert!(found.iter().all(|p| !p.is_error()) && found.iter().any(|p| p.code == "schema.invalid"));

    let off = Validation::configure(
        &BTreeMap::from([("script".into(), RuleLevel::Off)]),
        ValidationContext::default(),
        false,
    )
    .unwrap();
    let (accepted, found) = problems(&bundle(&[("main.js", "const x = ;")]), &off);
    assert!(accepted && found.is_empty(), "{found:?}");

    let error = Validation::configure(
        &BTreeMap::from([("shemas".into(), RuleLevel::Off)]),
        ValidationContext::default(),
        false,
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("shemas") && error.to_string().contains("schemas"),
        "{error}"
    );
}

/// A rule from outside registry-core, registered the way a third party would.
struct NoTodo;

impl Validator for NoTodo {
    fn rule(&self) -> &'static str {
        "no-todo"
    }

    fn description(&self) -> &'static str {
        "main.js has no TODO left"
    }

    fn check(&self, task: &ParsedTask, _: &ValidationContext, out: &mut Vec<Problem>) {
        if task.task.script().contains("TODO") {
            out.push(Problem::error("no-todo.found", "main.js still has a TODO").in_file("main.js"));
        }
    }
}

inventory::submit!(RegisteredValidator(&NoTodo));

#[test]
fn a_third_party_validator_registered_with_inventory_runs_and_can_be_configured() {
    assert!(registry_core::validators().iter().any(|v| v.rule() == "no-todo"));
    let todo = bundle(&[("main.js", "(function (input) { /* TODO */ return input; })")]);
    let (accepted, found) = problems(&todo, &Validation::default());
    assert!(!accepted);
    assert_eq!(codes(&found), ["no-todo.found"]);
    let off = Validation::configure(
        &BTreeMap::from([("no-todo".into(), RuleLevel::Off)]),
        ValidationContext::default(),
        false,
    )
    .unwrap();
    assert!(problems(&todo, &off).0);
}

/// Issue 10, item 8: schemas that are valid JSON yet cannot be compiled were passed, and
/// the test cases were then silently not checked (`42` passed against `type: object`).
#[test]
fn a_schema_that_does_not_compile_is_a_problem_and_its_cases_are_never_passed() {
    let cases = [
        (
            r#"{"type":"object","properties":{"s":{"type":"string","pattern":"(((("}}}"#,
            "/properties/s/pattern",
        ),
        (r##"{"type":"object","$ref":"#/definitions/missing"}"##, ""),
        (
            r#"{"type":"object","properties":{"s":{"$ref":"http://127.0.0.1:9/s.json"}}}"#,
            "",
        ),
        (
            r#"{"type":"object","properties":{"s":{"$ref":"file:///etc/passwd"}}}"#,
            "",
        ),
    ];
    for (schema, pointer) in cases {
        let (accepted, found) = problems(
            &bundle(&[
                ("input.schema.json", schema),
                ("tests/a.json", r#"{"input":42,"expected_output":{"n":1}}"#),
            ]),
            &Validation::default(),
        );
        assert!(!accepted, "{schema}");
        assert!(found.iter().any(|p| p.code == "schema.uncompilable" && p.is_error()));
        let uncompilable = found
            .iter()
            .find(|p| p.code == "schema.uncompilable")
            .unwrap_or_else(|| panic!("{schema}: {found:?}"));
        assert_eq!(uncompilable.file.as_deref(), Some("input.schema.json"));
        if !pointer.is_empty() {
            assert_eq!(uncompilable.pointer.as_deref(), Some(pointer), "{schema}");
        }
        let unchecked = found
            .iter()
            .find(|p| p.code == "tests.unchecked")
            .unwrap_or_else(|| panic!("{schema}: {found:?}"));
        assert_eq!(unchecked.file.as_deref(), Some("tests/a.json"));
        assert_eq!(unchecked.pointer.as_deref(), Some("/input"));
    }
    // With the schemas rule off, the cases still cannot pass unchecked: reported (an error
    // under `strict`).
    let task = bundle(&[
        ("input.schema.json", cases[0].0),
        ("tests/a.json", r#"{"input":42,"expected_output":{"n":1}}"#),
    ]);
    let (_, found) = problems(&task, &with_level("schemas", RuleLevel::Off));
    assert_eq!(codes(&found), ["tests.unchecked"]);
    let levels = BTreeMap::from([("schemas".to_owned(), RuleLevel::Off)]);
    let strict_without_schemas = Validation::configure(&levels, ValidationContext::default(), true).unwrap();
    let (accepted, found) = problems(&task, &strict_without_schemas);
    assert!(!accepted);
    assert_eq!(codes(&found), ["tests.unchecked"]);
}
