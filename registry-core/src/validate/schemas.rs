//! `schemas`: `input.schema.json` and `output.schema.json` must be valid JSON Schema for the
//! draft they declare (jsonschema's meta-validation), not merely JSON, and must compile:
//! every `pattern` a valid regex, every `$ref` resolvable inside the schema (remote and
//! file references are refused, never fetched).

use super::{RegisteredValidator, ValidationContext, Validator};
use crate::problem::Problem;
use crate::task::{INPUT_SCHEMA_FILE, OUTPUT_SCHEMA_FILE, ParsedTask};
use serde_json::Value;

pub struct SchemasValidator;

inventory::submit!(RegisteredValidator(&SchemasValidator));

impl Validator for SchemasValidator {
    fn rule(&self) -> &'static str {
        "schemas"
    }

    fn description(&self) -> &'static str {
        "input and output schemas are valid JSON Schema; a missing one is a warning"
    }

    fn check(&self, task: &ParsedTask, _: &ValidationContext, out: &mut Vec<Problem>) {
        for (file, schema, compiled, what) in [
            (INPUT_SCHEMA_FILE, &task.input_schema, task.input_validator(), "inputs"),
            (
                OUTPUT_SCHEMA_FILE,
                &task.output_schema,
                task.output_validator(),
                "outputs",
            ),
        ] {
            match schema {
                None => out.push(
                    Problem::warning(
                        "schema.missing",
                        format!("no {file}: the task's {what} cannot be checked"),
                    )
                    .in_file(file),
                ),
                Some(schema) => {
                    let before = out.len();
                    check_schema(file, schema, out);
                    // Valid for its meta-schema yet not compilable: an invalid regex, a
                    // `$ref` to nothing or to a document outside the schema.
                    let meta_valid = !out[before..].iter().any(Problem::is_error);
                    if let (true, Some(Err(error))) = (meta_valid, compiled) {
                        out.push(
                            Problem::error(
                                "schema.uncompilable",
                                format!("the schema does not compile: {}", error.message),
                            )
                            .in_file(file)
                            .at_pointer(error.pointer.as_str()),
                        );
                    }
                }
            }
        }
    }
}

fn check_schema(file: &str, schema: &Value, out: &mut Vec<Problem>) {
    if !schema.is_object() && !schema.is_boolean() {
        out.push(Problem::error("schema.invalid", "a JSON Schema is an object or a boolean").in_file(file));
        return;
    }
    // Detecting the draft panics on some inputs in jsonschema; a panic must not take the
    // whole sync down, so it becomes this schema's problem.
    let meta = std::panic::catch_unwind(|| jsonschema::meta::validator_for(schema));
    let validator = match meta {
        Ok(Ok(validator)) => validator,
        Ok(Err(e)) => {
            let problem = Problem::warning(
                "schema.unknown_draft",
                format!("cannot check against its meta-schema: {e}"),
            );
            out.push(problem.in_file(file).at_pointer("/$schema"));
            return;
        }
        Err(_) => {
            out.push(Problem::error("schema.invalid", "the schema's draft cannot be determined").in_file(file));
            return;
        }
    };
    for error in validator.iter_errors(schema) {
        out.push(
            Problem::error("schema.invalid", format!("not valid JSON Schema: {error}"))
                .in_file(file)
                .at_pointer(error.instance_path().as_str()),
        );
    }
}
