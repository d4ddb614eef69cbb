//! Claiming UUIDs, the first phase of a plan: one UUID belongs to one name, and a name
//! keeps its UUID, across the tasks of a run and the catalogue.

use super::LoadOutcome;
use crate::problem::Problem;
use crate::task::METADATA_FILE;
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

/// The claims of the tasks loaded in a run that lose, with the problem each reports.
pub(super) fn claim_uuids<'a>(
    loaded: impl Iterator<Item = &'a LoadOutcome>,
    stored_uuids: &HashMap<String, Uuid>,
) -> HashMap<(String, Uuid), Problem> {
    let claims: Vec<(&str, Uuid)> = loaded
        .filter_map(|o| match o {
            LoadOutcome::Parsed { task, .. } => Some((task.name.as_str(), task.uuid)),
            LoadOutcome::Broken(_) => None,
        })
        .collect();
    let claimed: HashSet<Uuid> = claims.iter().map(|(_, u)| *u).collect();
    let stored_owners: HashMap<Uuid, String> = stored_uuids
        .iter()
        .filter(|(_, u)| claimed.contains(u))
        .map(|(n, u)| (*u, n.clone()))
        .collect();
    check_cross_task(claims, &stored_owners, stored_uuids)
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
