//! What a source may read of one task: the caps of `[validation.limits]`, applied before
//! reading (announced sizes) and while reading (what actually arrives), the same way by
//! every source.

use super::SourceError;
use crate::problem::Problem;
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

    /// Reads `reader` to its end, refusing it past `cap` bytes (`Err` holds what was read
    /// by then): a file that grew after its size was checked is cut at the cap.
    /// `expected` (the announced size) only sizes the buffer.
    pub fn read_capped(reader: impl std::io::Read, expected: u64, cap: u64) -> std::io::Result<Result<Vec<u8>, u64>> {
        use std::io::Read as _;
        let mut bytes = Vec::with_capacity(expected.min(cap) as usize + 1);
        reader.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
        let size = bytes.len() as u64;
        Ok(if size > cap { Err(size) } else { Ok(bytes) })
    }
}

/// What one load may still read of a task: every source keeps one while it reads a task's
/// files, so that the per-file and per-task caps are applied the same way everywhere,
/// before reading (announced sizes) and while reading (what actually arrives).
#[derive(Debug, Clone, Copy)]
pub struct ReadBudget {
    limits: Limits,
    used: u64,
}

impl ReadBudget {
    pub fn new(limits: Limits) -> Self {
        ReadBudget { limits, used: 0 }
    }

    /// Why `size` more bytes of `file` break a cap: the file's (naming it) or the task's
    /// (`file` empty); `None` when they fit.
    fn refusal(&self, file: &str, size: u64) -> Option<SourceError> {
        let total = self.used.saturating_add(size);
        if size > self.limits.max_file_bytes {
            Some(SourceError::TooLarge {
                file: file.to_owned(),
                size,
                cap: self.limits.max_file_bytes,
            })
        } else if total > self.limits.max_task_bytes {
            Some(SourceError::TooLarge {
                file: String::new(),
                size: total,
                cap: self.limits.max_task_bytes,
            })
        } else {
            None
        }
    }

    /// Accepts `size` more bytes of `file`, or says which cap they break.
    pub fn admit(&mut self, file: &str, size: u64) -> Result<(), SourceError> {
        match self.refusal(file, size) {
            Some(refused) => Err(refused),
            None => {
                self.used += size;
                Ok(())
            }
        }
    }

    /// Reads one file whose size was announced as `announced`: refused by that size
    /// before a byte is read, then read with the cap, so a file that grows (or a header
    /// that lies) is cut there and refused too.
    pub fn read(
        &mut self,
        file: &str,
        reader: impl std::io::Read,
        announced: u64,
    ) -> std::io::Result<Result<Vec<u8>, SourceError>> {
        if let Some(refused) = self.refusal(file, announced) {
            return Ok(Err(refused));
        }
        let cap = self.limits.max_file_bytes.min(self.limits.max_task_bytes - self.used);
        // Past `cap` is past one of the two caps, so `admit` names which.
        Ok(match Limits::read_capped(reader, announced, cap)? {
            Ok(bytes) => self.admit(file, bytes.len() as u64).map(|()| bytes),
            Err(size) => self.admit(file, size).map(|()| Vec::new()),
        })
    }
}

/// `limits.file_too_large`: one file over the per-file cap.
pub fn file_too_large(file: &str, size: u64, cap: u64) -> Problem {
    Problem::error(
        "limits.file_too_large",
        format!("{size} bytes; the cap per file is {cap}"),
    )
    .in_file(file)
}

/// `limits.task_too_large`: the task's files together over the per-task cap.
pub fn task_too_large(size: u64, cap: u64) -> Problem {
    Problem::error(
        "limits.task_too_large",
        format!("the task's files add up to {size} bytes; the cap is {cap}"),
    )
}
