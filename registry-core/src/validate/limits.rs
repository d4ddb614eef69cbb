//! `limits`: size and count caps, checked on the raw files before anything is parsed, so a
//! runaway file costs a problem and not the memory to parse it.

use super::{RegisteredValidator, ValidationContext, Validator};
use crate::problem::Problem;
use crate::source::Bundle;
use crate::task::is_task_file;
use serde::Deserialize;

/// The caps, `[validation.limits]` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_file_bytes: u64,
    pub max_task_bytes: u64,
    pub max_files: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 1024 * 1024,
            max_task_bytes: 8 * 1024 * 1024,
            max_files: 200,
        }
    }
}

impl Limits {
    /// What sources read at most when the `limits` rule is not an error (`warn` or `off`):
    /// an oversized task is then accepted, but reading stays bounded.
    pub const READ_CEILING: Limits = Limits {
        max_file_bytes: 64 * 1024 * 1024,
        max_task_bytes: 256 * 1024 * 1024,
        max_files: 10_000,
    };

    /// Reads `reader` to its end, refusing it past `cap` bytes: `expected` (the size the
    /// file's metadata announced, as a capacity hint) is checked by the caller first; this
    /// also refuses a file that grew while being read.
    pub fn read_capped(reader: impl std::io::Read, expected: u64, cap: u64) -> std::io::Result<Result<Vec<u8>, u64>> {
        use std::io::Read as _;
        let mut bytes = Vec::with_capacity(expected.min(cap) as usize + 1);
        reader.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
        let size = bytes.len() as u64;
        Ok(if size > cap { Err(size) } else { Ok(bytes) })
    }
}

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
                out.push(
                    Problem::error(
                        "limits.file_too_large",
                        format!("{size} bytes; the cap per file is {}", limits.max_file_bytes),
                    )
                    .in_file(path),
                );
            }
        }
        if total > limits.max_task_bytes {
            out.push(Problem::error(
                "limits.task_too_large",
                format!(
                    "the task's files add up to {total} bytes; the cap is {}",
                    limits.max_task_bytes
                ),
            ));
        }
    }
}
