use thiserror::Error;

/// Errors of the core crate that are not task problems.
///
/// A broken task is never an error here: it is a [`crate::Problem`] attached to that task,
/// so that one bad file cannot stop a sync. Errors are reserved for misuse that the caller
/// can act on, such as configuring a source kind that does not exist.
#[derive(Debug, Error)]
pub enum CoreError {
    #[error("unknown source type `{kind}` for source `{source_name}` (known types: {known})")]
    UnknownSourceKind {
        source_name: String,
        kind: String,
        known: String,
    },
    #[error("unknown validation rule `{rule}` (known rules: {known})")]
    UnknownRule { rule: String, known: String },
}
