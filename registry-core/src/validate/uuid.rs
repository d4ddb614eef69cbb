//! `uuid`: the metadata's `uuid` is a UUID. A task whose `uuid` is not one still runs, and
//! is stored under the UUIDv5 of its name (stable on every machine); this rule says so.
//! A warning by default; `strict` or `uuid = "error"` refuses such a task instead.

use super::{RegisteredValidator, RuleLevel, ValidationContext, Validator};
use crate::problem::Problem;
use crate::task::ParsedTask;

pub struct UuidValidator;

inventory::submit!(RegisteredValidator(&UuidValidator));

impl Validator for UuidValidator {
    fn rule(&self) -> &'static str {
        "uuid"
    }

    fn description(&self) -> &'static str {
        "the metadata's `uuid` is a UUID (else the task gets the UUIDv5 of its name)"
    }

    fn default_level(&self) -> RuleLevel {
        RuleLevel::Warn
    }

    fn check(&self, task: &ParsedTask, _: &ValidationContext, out: &mut Vec<Problem>) {
        if let Some(written) = &task.uuid_not_a_uuid {
            out.push(
                Problem::error(
                    "metadata.uuid_invalid",
                    format!(
                        "`uuid` {written} is not a UUID; the task is stored with the UUIDv5 of its name, {}",
                        task.task.uuid
                    ),
                )
                .in_file(task.metadata_file())
                .at_pointer("/uuid"),
            );
        }
    }
}
