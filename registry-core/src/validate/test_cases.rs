//! `tests`: every test case (`tests/*.json`, or `test_cases` in `meta.yaml`) has `input`
//! and `expected_output`, and each validates against the task's input and output schema.
//!
//! A warning by default: a task runs whatever its test cases say, and Ratchet's own
//! samples carry deliberate failure cases (an error output, an input the schema refuses).
//! `strict` or `tests = "error"` makes every finding refuse the task.

use super::{RegisteredValidator, RuleLevel, ValidationContext, Validator};
use crate::problem::Problem;
use crate::task::ParsedTask;

pub struct TestCasesValidator;

inventory::submit!(RegisteredValidator(&TestCasesValidator));

impl Validator for TestCasesValidator {
    fn rule(&self) -> &'static str {
        "tests"
    }

    fn description(&self) -> &'static str {
        "test cases have input and expected_output, valid against the schemas"
    }

    fn default_level(&self) -> RuleLevel {
        RuleLevel::Warn
    }

    fn check(&self, task: &ParsedTask, _: &ValidationContext, out: &mut Vec<Problem>) {
        // Compiled once per task and shared with the `schemas` rule. A case whose schema
        // does not compile cannot be checked, and is reported so, never passed.
        let (input, output) = (task.input_validator(), task.output_validator());
        for test in &task.tests {
            if !test.case.is_object() {
                out.push(test.problem_at(Problem::error("tests.not_object", "a test case is an object"), ""));
                continue;
            }
            for (field, schema, code) in [
                ("input", &input, "tests.input_invalid"),
                ("expected_output", &output, "tests.output_invalid"),
            ] {
                let Some(value) = test.case.get(field) else {
                    out.push(test.problem_at(
                        Problem::error("tests.field_missing", format!("test case has no `{field}`")),
                        &format!("/{field}"),
                    ));
                    continue;
                };
                let schema = match schema {
                    None => continue,
                    Some(Ok(schema)) => schema,
                    Some(Err(error)) => {
                        let schema_file = if field == "input" { "input" } else { "output" };
                        out.push(test.problem_at(
                            Problem::error(
                                "tests.unchecked",
                                format!(
                                    "`{field}` cannot be checked: the {schema_file} schema does not compile ({})",
                                    error.message
                                ),
                            ),
                            &format!("/{field}"),
                        ));
                        continue;
                    }
                };
                for error in schema.iter_errors(value) {
                    let schema_file = if field == "input" { "input" } else { "output" };
                    out.push(test.problem_at(
                        Problem::error(
                            code,
                            format!("`{field}` does not match the {schema_file} schema: {error}"),
                        ),
                        &format!("/{field}{}", error.instance_path().as_str()),
                    ));
                }
            }
        }
    }
}
