//! Checks on parsed tasks: a task that parses can still be wrong.

use crate::plan::LoadOutcome;
use crate::problem::Problem;
use crate::source::Bundle;
use crate::task::{METADATA_FILE, ParsedTask, parse_bundle};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use uuid::Uuid;

const MAX_NAME_LEN: usize = 128;

/// Parses and checks one bundle: the step between load and merge, and all that
/// `taskreg validate` does. Any error makes the task `Broken`; warnings travel with it.
pub fn check_bundle(bundle: &Bundle) -> LoadOutcome {
    match parse_bundle(bundle) {
        Err(problems) => LoadOutcome::Broken(problems),
        Ok(parsed) => {
            let mut problems = check_metadata(&parsed);
            problems.splice(0..0, parsed.warnings);
            if problems.iter().any(Problem::is_error) {
                LoadOutcome::Broken(problems)
            } else {
                LoadOutcome::Parsed {
                    task: Arc::new(parsed.task),
                    warnings: problems,
                    modified: bundle.modified,
                }
            }
        }
    }
}

/// Metadata rules: the name format, the fields every task should describe itself with, and
/// the shape of its test cases.
pub fn check_metadata(parsed: &ParsedTask) -> Vec<Problem> {
    let mut problems = Vec::new();
    let name = &parsed.task.name;
    if let Err(reason) = check_name(name) {
        let pointer = if parsed.legacy_name { "" } else { "/name" };
        problems.push(
            Problem::error("metadata.name_invalid", format!("task name `{name}` {reason}"))
                .in_file(METADATA_FILE)
                .at_pointer(pointer),
        );
    }
    for field in ["label", "description"] {
        match parsed.metadata.get(field) {
            Some(Value::String(text)) if !text.trim().is_empty() => {}
            Some(Value::String(_)) | None => problems.push(
                Problem::warning("metadata.field_missing", format!("`{field}` is missing or empty"))
                    .in_file(METADATA_FILE)
                    .at_pointer(format!("/{field}")),
            ),
            Some(other) => problems.push(
                Problem::error(
                    "metadata.field_invalid",
                    format!("`{field}` must be a string, found {other}"),
                )
                .in_file(METADATA_FILE)
                .at_pointer(format!("/{field}")),
            ),
        }
    }
    for test in &parsed.tests {
        for field in ["input", "expected_output"] {
            if test.case.get(field).is_none() {
                problems.push(
                    Problem::error("tests.field_missing", format!("test case has no `{field}`"))
                        .in_file(&test.file)
                        .at_pointer(format!("/{field}")),
                );
            }
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

/// Rules across tasks: one UUID belongs to one name.
///
/// `claims` are the `(name, uuid)` pairs of the tasks loaded in this run; `stored` maps each
/// UUID already in the catalogue to its name. A UUID already stored for another name stays
/// with that name; among new claimants, the smallest name keeps it. Returns the names that
/// lose their claim, with the problem to report.
pub fn check_cross_task<'a>(
    claims: impl IntoIterator<Item = (&'a str, Uuid)>,
    stored: &HashMap<Uuid, String>,
) -> HashMap<String, Problem> {
    let mut by_uuid: BTreeMap<Uuid, Vec<&str>> = BTreeMap::new();
    for (name, uuid) in claims {
        let names = by_uuid.entry(uuid).or_default();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let mut rejected = HashMap::new();
    for (uuid, mut names) in by_uuid {
        names.sort_unstable();
        let owner = stored.get(&uuid).map(String::as_str).unwrap_or(names[0]);
        for name in names.into_iter().filter(|n| *n != owner) {
            rejected.insert(
                name.to_owned(),
                Problem::error(
                    "metadata.uuid_duplicate",
                    format!("uuid {uuid} already belongs to task `{owner}`"),
                )
                .in_file(METADATA_FILE)
                .at_pointer("/uuid"),
            );
        }
    }
    rejected
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
    fn missing_label_is_a_warning_and_a_test_without_expected_output_an_error() {
        let p = parsed(
            r#"{"name":"t","version":"1.0.0","description":"d"}"#,
            &[("tests/a.json", r#"{"input":{}}"#)],
        );
        let problems = check_metadata(&p);
        assert!(
            problems
                .iter()
                .any(|p| p.code == "metadata.field_missing" && !p.is_error())
        );
        let test_problem = problems.iter().find(|p| p.code == "tests.field_missing").unwrap();
        assert!(test_problem.is_error());
        assert_eq!(test_problem.file.as_deref(), Some("tests/a.json"));
        assert_eq!(test_problem.pointer.as_deref(), Some("/expected_output"));
    }

    #[test]
    fn a_uuid_stays_with_its_stored_name_and_new_claims_are_decided_by_name() {
        let u1 = Uuid::from_u128(1);
        let u2 = Uuid::from_u128(2);
        let stored = HashMap::from([(u1, "zeta".to_string())]);
        let rejected = check_cross_task([("alpha", u1), ("zeta", u1), ("b", u2), ("a", u2), ("a", u2)], &stored);
        let mut names: Vec<&String> = rejected.keys().collect();
        names.sort();
        assert_eq!(names, ["alpha", "b"]);
        assert!(rejected["alpha"].message.contains("zeta"));
    }
}
