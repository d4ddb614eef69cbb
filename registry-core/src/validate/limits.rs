//! `limits`: size and count caps, checked on the raw files before anything is parsed, so a
//! runaway file costs a problem and not the memory to parse it.

use super::{RegisteredValidator, ValidationContext, Validator};
use crate::problem::Problem;
use crate::source::{Bundle, file_too_large, task_too_large};
use crate::task::is_task_file;

pub struct LimitsValidator;

inventory::submit!(RegisteredValidator(&LimitsValidator));

impl Validator for LimitsValidator {
    fn rule(&self) -> &'static str {
        "limits"
    }

    fn description(&self) -> &'static str {
        "per-file and per-task size caps and a file-count cap"
    }

    fn check_bundle(&self, bundle: &Bundle, context: &ValidationContext, out: &mut Vec<Problem>) {
        let limits = &context.limits;
        let files: Vec<(&String, &Vec<u8>)> = bundle.files.iter().filter(|(p, _)| is_task_file(p)).collect();
        if files.len() > limits.max_files {
            out.push(Problem::error(
                "limits.too_many_files",
                format!("the task has {} files; the cap is {}", files.len(), limits.max_files),
            ));
        }
        let mut total = 0u64;
        for (path, bytes) in files {
            let size = bytes.len() as u64;
            total += size;
            if size > limits.max_file_bytes {
                out.push(file_too_large(path, size, limits.max_file_bytes));
            }
        }
        if total > limits.max_task_bytes {
            out.push(task_too_large(total, limits.max_task_bytes));
        }
    }
}
