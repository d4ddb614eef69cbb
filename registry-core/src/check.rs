//! Checks on parsed tasks: a task that parses can still be wrong.

use crate::problem::Problem;
use crate::task::{METADATA_FILE, ParsedTask};
use crate::validate::{RegisteredValidator, ValidationContext, Validator};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

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

/// Rules across tasks: one UUID belongs to one name, and a name keeps its UUID.
///
/// `claims` are the `(name, uuid)` pairs of the tasks loaded in this run; `stored` maps each
/// UUID already in the catalogue to its name, and `stored_uuids` each stored name to its
/// UUID. A UUID already stored for another name stays with that name; among new
/// claimants, the smallest name keeps it. A stored name keeps its stored UUID; a new name
/// claimed with several UUIDs keeps the smallest. Returns the `(name, uuid)` claims that
/// lose, with the problem to report.
pub fn check_cross_task<'a>(
    claims: impl IntoIterator<Item = (&'a str, Uuid)>,
    stored: &HashMap<Uuid, String>,
    stored_uuids: &HashMap<String, Uuid>,
) -> HashMap<(String, Uuid), Problem> {
    let mut by_uuid: BTreeMap<Uuid, Vec<&str>> = BTreeMap::new();
    let mut by_name: BTreeMap<&str, Vec<Uuid>> = BTreeMap::new();
    for (name, uuid) in claims {
        let names = by_uuid.entry(uuid).or_default();
        if !names.contains(&name) {
            names.push(name);
        }
        let uuids = by_name.entry(name).or_default();
        if !uuids.contains(&uuid) {
            uuids.push(uuid);
        }
    }
    let at_uuid =
        |code: &str, message: String| Problem::error(code, message).in_file(METADATA_FILE).at_pointer("/uuid");
    let mut rejected = HashMap::new();
    for (uuid, mut names) in by_uuid {
        names.sort_unstable();
        let owner = stored.get(&uuid).map(String::as_str).unwrap_or(names[0]);
        for name in names.into_iter().filter(|n| *n != owner) {
            rejected.insert(
                (name.to_owned(), uuid),
                at_uuid(
                    "metadata.uuid_duplicate",
                    format!("uuid {uuid} already belongs to task `{owner}`"),
                ),
            );
        }
    }
    for (name, mut uuids) in by_name {
        uuids.sort_unstable();
        let kept = stored_uuids.get(name).copied().unwrap_or(uuids[0]);
        for uuid in uuids.into_iter().filter(|u| *u != kept) {
            rejected.entry((name.to_owned(), uuid)).or_insert_with(|| {
                at_uuid(
                    "metadata.uuid_changed",
                    format!("task `{name}` has uuid {kept}; a task keeps its uuid for good (this one says {uuid})"),
                )
            });
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
    fn a_missing_label_is_a_warning() {
        let p = parsed(r#"{"name":"t","version":"1.0.0","description":"d"}"#, &[]);
        let problems = check_metadata(&p);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].code == "metadata.field_missing" && !problems[0].is_error());
        assert_eq!(problems[0].pointer.as_deref(), Some("/label"));
    }

    #[test]
    fn a_uuid_stays_with_its_stored_name_and_new_claims_are_decided_by_name() {
        let u1 = Uuid::from_u128(1);
        let u2 = Uuid::from_u128(2);
        let stored = HashMap::from([(u1, "zeta".to_string())]);
        let stored_uuids = HashMap::from([("zeta".to_string(), u1)]);
        let rejected = check_cross_task(
            [("alpha", u1), ("zeta", u1), ("b", u2), ("a", u2), ("a", u2)],
            &stored,
            &stored_uuids,
        );
        let mut names: Vec<&str> = rejected.keys().map(|(n, _)| n.as_str()).collect();
        names.sort();
        assert_eq!(names, ["alpha", "b"]);
        assert!(rejected[&("alpha".to_string(), u1)].message.contains("zeta"));
    }

    #[test]
    fn a_name_keeps_its_stored_uuid_and_a_new_name_claimed_twice_keeps_the_smallest() {
        let (u1, u2, u3) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let stored_uuids = HashMap::from([("gamma".to_string(), u2)]);
        let rejected = check_cross_task(
            [("gamma", u2), ("gamma", u3), ("delta", u3), ("delta", u1)],
            &HashMap::new(),
            &stored_uuids,
        );
        let mut lost: Vec<(&str, Uuid)> = rejected.keys().map(|(n, u)| (n.as_str(), *u)).collect();
        lost.sort();
        // gamma keeps u2 (stored); delta keeps u1 (smallest); u3 goes to the smaller name,
        // delta, by the one-uuid-one-name rule, so gamma's u3 claim loses twice over.
        assert_eq!(lost, [("delta", u3), ("gamma", u3)]);
        assert_eq!(rejected[&("gamma".to_string(), u3)].code, "metadata.uuid_duplicate");
        assert_eq!(rejected[&("delta".to_string(), u3)].code, "metadata.uuid_changed");
    }
}
