use serde::{Deserialize, Serialize};
use std::fmt;

/// How bad a [`Problem`] is. An `Error` keeps the task out of the catalogue (its last good
/// version stays); a `Warning` is reported and the task is still accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "warning" => Some(Severity::Warning),
            "error" => Some(Severity::Error),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing wrong with one task (or with a source), with enough context to fix it.
///
/// `code` is stable (`json.invalid`, `metadata.version_not_semver`, …) so that scripts and
/// configuration can refer to it; `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Problem {
    pub code: String,
    pub severity: Severity,
    /// The file inside the task, relative to the task folder (`tests/one.json`).
    pub file: Option<String>,
    /// A JSON pointer into `file`, where one applies.
    pub pointer: Option<String>,
    /// 1-based line and column in `file`, where known exactly (a syntax error).
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub message: String,
}

impl Problem {
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        Problem {
            code: code.to_owned(),
            severity: Severity::Error,
            file: None,
            pointer: None,
            line: None,
            column: None,
            message: message.into(),
        }
    }

    pub fn warning(code: &str, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(code, message)
        }
    }

    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    pub fn at_pointer(mut self, pointer: impl Into<String>) -> Self {
        self.pointer = Some(pointer.into());
        self
    }

    pub fn at_position(mut self, line: u32, column: u32) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]: {}", self.severity, self.code, self.message)?;
        if let Some(file) = &self.file {
            write!(f, " (in {file}")?;
            if let (Some(line), Some(column)) = (self.line, self.column) {
                write!(f, " at {line}:{column}")?;
            }
            if let Some(pointer) = &self.pointer {
                write!(f, " at {pointer}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}
