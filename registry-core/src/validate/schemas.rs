//! `schemas`: the input and output schemas (`*.schema.json`, or in `meta.yaml`) must be valid JSON Schema for the
//! draft they declare (jsonschema's meta-validation), not merely JSON, and must compile:
//! every `pattern` a valid regex, every `$ref` resolvable inside the schema (remote and
//! file references are refused, never fetched).

use super::{RegisteredValidator, ValidationContext, Validator};
use crate::problem::Problem;
use crate::task::ParsedTask;
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
        for (output, schema, compiled, what) in [
            (false, &task.input_schema, task.input_validator(), "inputs"),
            (true, &task.output_schema, task.output_validator(), "outputs"),
        ] {
            let (file, _) = task.schema_location(output, "");
            match schema {
                None => {
                    let which = match (task.task.layout, output) {
                        (crate::Layout::MetadataJson, _) => file,
                        (_, false) => "`input_schema` or `inputs`",
                        (_, true) => "`output_schema` or `outputs`",
                    };
                    out.push(
                        Problem::warning(
                            "schema.missing",
                            format!("no {which}: the task's {what} cannot be checked"),
                        )
                        .in_file(file),
                    )
                }
                Some(schema) => {
                    let before = out.len();
                    check_schema(schema, out);
                    // Valid for its meta-schema yet not compilable: an invalid regex, a
                    // `$ref` to nothing or to a document outside the schema.
                    let meta_valid = !out[before..].iter().any(Problem::is_error);
                    if let (true, Some(Err(error))) = (meta_valid, compiled) {
                        out.push(Problem::error(
                            "schema.uncompilable",
                            format!("the schema does not compile: {}", error.message),
                        ));
                        out.last_mut().unwrap().pointer = Some(error.pointer.clone());
                    }
                    // Each problem located in the file the schema is written in.
                    for problem in &mut out[before..] {
                        let (file, pointer) = task.schema_location(output, problem.pointer.as_deref().unwrap_or(""));
                        problem.file = Some(file.to_owned());
                        problem.pointer = Some(pointer);
                    }
                }
            }
        }
    }
}

fn check_schema(schema: &Value, out: &mut Vec<Problem>) {
    if !schema.is_object() && !schema.is_boolean() {
        out.push(Problem::error(
            "schema.invalid",
            "a JSON Schema is an object or a boolean",
        ));
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
            out.push(problem.at_pointer("/$schema"));
            return;
        }
        Err(_) => {
            out.push(Problem::error(
                "schema.invalid",
                "the schema's draft cannot be determined",
            ));
            return;
        }
    };
    for error in validator.iter_errors(schema) {
        out.push(
            Problem::error("schema.invalid", format!("not valid JSON Schema: {error}"))
                .at_pointer(error.instance_path().as_str()),
        );
    }
}
