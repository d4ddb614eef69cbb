//! `metadata`: a task that parses can still be badly described.

use crate::layout::Layout;
use crate::problem::Problem;
use crate::task::ParsedTask;
use crate::validate::{RegisteredValidator, ValidationContext, Validator};
use serde_json::Value;

const MAX_NAME_LEN: usize = 128;

/// The `metadata` rule. Name, version and UUID are checked while parsing (a task cannot be
/// stored without them); this rule checks what a well-described task has.
pub struct MetadataValidator;

inventory::submit!(RegisteredValidator(&MetadataValidator));

impl Validator for MetadataValidator {
    fn rule(&self) -> &'static str {
        "metadata"
    }

    fn description(&self) -> &'static str {
        "name format, label and description (duplicate UUIDs are checked across tasks)"
    }

    fn check(&self, task: &ParsedTask, _: &ValidationContext, out: &mut Vec<Problem>) {
        out.extend(check_metadata(task));
    }
}

/// Metadata rules: the name format and the fields every task should describe itself with.
pub fn check_metadata(parsed: &ParsedTask) -> Vec<Problem> {
    let mut problems = Vec::new();
    let file = parsed.metadata_file();
    let name = &parsed.task.name;
    if let Err(reason) = check_name(name) {
        let pointer = if parsed.legacy_name { "" } else { "/name" };
        problems.push(
            Problem::error("metadata.name_invalid", format!("task name `{name}` {reason}"))
                .in_file(file)
                .at_pointer(pointer),
        );
    }
    // Ratchet's `meta.yaml` has no `label`: its `name` is the label.
    let described_by: &[&str] = match parsed.task.layout {
        Layout::MetadataJson => &["label", "description"],
        Layout::MetaYaml => &["description"],
    };
    for &field in described_by {
        match parsed.metadata.get(field) {
            Some(Value::String(text)) if !text.trim().is_empty() => {}
            Some(Value::String(_)) | None => problems.push(
                Problem::warning("metadata.field_missing", format!("`{field}` is missing or empty"))
                    .in_file(file)
                    .at_pointer(format!("/{field}")),
            ),
            Some(other) => problems.push(
                Problem::error(
                    "metadata.field_invalid",
                    format!("`{field}` must be a string, found {other}"),
                )
                .in_file(file)
                .at_pointer(format!("/{field}")),
            ),
        }
    }
    problems
}

fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err("must be 1 to 128 characters long");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("must start with a letter or a digit");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("may contain only ASCII letters, digits, `-`, `_` and `.`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Bundle;
    use crate::task::parse_bundle;

    fn parsed(metadata: &str, tests: &[(&str, &str)]) -> ParsedTask {
        let mut files = vec![
            ("metadata.json".to_string(), metadata.as_bytes().to_vec()),
            ("main.js".to_string(), b"(function(){})".to_vec()),
        ];
        files.extend(tests.iter().map(|(p, c)| (p.to_string(), c.as_bytes().to_vec())));
        parse_bundle(&Bundle::from_files(files)).unwrap()
    }

    #[test]
    fn names_with_spaces_or_slashes_are_errors() {
        for bad in ["has space", "a/b", "-lead", ""] {
            let p = parsed(
                &format!(r#"{{"name":"{bad}","version":"1.0.0","label":"l","description":"d"}}"#),
                &[],
            );
            let problems = check_metadata(&p);
            assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
            assert_eq!(problems[0].code, "metadata.name_invalid");
        }
        let good = parsed(
            r#"{"name":"http.get-v2_x","version":"1.0.0","label":"l","description":"d"}"#,
            &[],
        );
        assert!(check_metadata(&good).is_empty());
    }

    #[test]
    fn a_missing_label_is_a_warning() {
        let p = parsed(r#"{"name":"t","version":"1.0.0","description":"d"}"#, &[]);
        let problems = check_metadata(&p);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].code == "metadata.field_missing" && !problems[0].is_error());
        assert_eq!(problems[0].pointer.as_deref(), Some("/label"));
    }
}
