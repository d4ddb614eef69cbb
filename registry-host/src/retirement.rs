//! Sources that are no more: removed from every configuration, or forgotten by an operator.
//!
//! Several hosts share a catalogue with different configurations, so a source missing
//! from this run's configuration says nothing by itself. A source is retired when no
//! process has scanned it for the grace period (`[lifecycle] retire_sources_after`,
//! default 7 days), or at once with `taskreg forget SOURCE --yes`: its origins go, its
//! tasks go missing unless another source offers them, and their history stays. A
//! retirement that would take away more than `max_removal_share` of the catalogue's
//! available versions is not done by the clock: it is a problem of the source until an
//! operator forgets it (or allows mass removal). A source configured again comes back
//! with its next scan.

use registry_core::{OriginKey, Problem, Snapshot, SourceScan, VersionKey};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

/// What a run retires, and the retirements it holds back.
#[derive(Debug, Default)]
pub(crate) struct Retirements {
    /// One retired scan per source retired.
    pub scans: Vec<SourceScan>,
    /// Their names.
    pub retired: Vec<String>,
    /// Sources due for retirement that would take away too much: a problem each.
    pub blocked: Vec<(OriginKey, Vec<Problem>)>,
}

/// The policy a run applies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetirementPolicy {
    /// How long a source may go unscanned; `None`: sources retire only when forgotten.
    pub grace: Option<Duration>,
    /// The share of the catalogue's available versions a retirement by the clock may take.
    pub max_share: f64,
    /// Lifts that guard.
    pub allow_mass_removal: bool,
}

/// The available versions that only `source` offers: what retiring it takes away.
pub(crate) fn only_offered_by(snapshot: &Snapshot, source: &str) -> Vec<VersionKey> {
    let mut offered: HashMap<VersionKey, bool> = HashMap::new();
    for (key, origin) in &snapshot.origins {
        let only_here = offered
            .entry(VersionKey::new(&origin.name, &origin.version))
            .or_insert(true);
        *only_here &= key.source == source;
    }
    let mut taken: Vec<VersionKey> = offered
        .into_iter()
        .filter(|(version, only_here)| *only_here && snapshot.versions.get(version).is_some_and(|v| v.available))
        .map(|(version, _)| version)
        .collect();
    taken.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    taken
}

/// Which sources of the catalogue this run retires: those `forced` (forgotten), and those
/// not `configured` here that no process scanned within the grace period (`last_scans`,
/// Unix milliseconds; a source with no recorded scan is left alone).
pub(crate) fn retirements(
    snapshot: &Snapshot,
    configured: &HashSet<&str>,
    last_scans: &HashMap<String, i64>,
    now: i64,
    policy: RetirementPolicy,
    forced: &[String],
) -> Retirements {
    let stored: BTreeSet<&str> = snapshot.origins.keys().map(|k| k.source.as_str()).collect();
    let available = snapshot.versions.values().filter(|v| v.available).count();
    let mut decided = Retirements::default();
    for source in stored {
        let forgotten = forced.iter().any(|f| f == source);
        let overdue = policy.grace.is_some_and(|grace| {
            !configured.contains(source)
                && last_scans
                    .get(source)
                    .is_some_and(|at| now.saturating_sub(*at) > grace.as_millis() as i64)
        });
        if !forgotten && !overdue {
            continue;
        }
        let taken = only_offered_by(snapshot, source).len();
        if !forgotten && !policy.allow_mass_removal && taken as f64 > policy.max_share * available as f64 {
            let days = policy.grace.map_or(0.0, |g| g.as_secs_f64() / 86_400.0);
            let message = format!(
                "no process has scanned this source for over {days:.1} day(s), but retiring it would take away {taken} of the \
                 catalogue's {available} available versions, more than {:.0}%: nothing was removed; run \
                 `taskreg forget {source} --yes` to retire it, or configure it again",
                policy.max_share * 100.0
            );
            let problems = vec![Problem::error("source.retirement_blocked", message)];
            let key = OriginKey::source(source);
            if snapshot.problems.get(&key) != Some(&problems) {
                decided.blocked.push((key, problems));
            }
            continue;
        }
        decided.scans.push(SourceScan::retired(source));
        decided.retired.push(source.to_owned());
    }
    decided
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry_core::{Digest, StoredOrigin, StoredVersion};

    fn snapshot(origins: &[(&str, &str, &str)]) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for &(source, locator, name) in origins {
            let digest = Digest::of_files([("main.js", name.as_bytes())]);
            snapshot.origins.insert(
                OriginKey::new(source, locator),
                StoredOrigin {
                    fingerprint: "f".into(),
                    name: name.into(),
                    version: "1.0.0".into(),
                    digest,
                    signer: None,
                    judged_under: String::new(),
                },
            );
            snapshot.versions.insert(
                VersionKey::new(name, "1.0.0"),
                StoredVersion {
                    digest,
                    available: true,
                    signer: None,
                },
            );
        }
        snapshot
    }

    const DAY: i64 = 86_400_000;

    fn policy() -> RetirementPolicy {
        RetirementPolicy {
            grace: Some(Duration::from_secs(7 * 86_400)),
            max_share: 0.5,
            allow_mass_removal: false,
        }
    }

    #[test]
    fn only_an_unconfigured_source_unscanned_past_the_grace_period_retires() {
        let snapshot = snapshot(&[("here", "a", "a"), ("b", "b", "b"), ("c", "c", "c"), ("d", "d", "d")]);
        let now = 100 * DAY;
        let last = HashMap::from([
            ("here".to_owned(), now - 30 * DAY),
            ("b".to_owned(), now - 8 * DAY),
            ("c".to_owned(), now - 6 * DAY),
        ]);
        let configured = HashSet::from(["here"]);
        let decided = retirements(&snapshot, &configured, &last, now, policy(), &[]);
        // `here` is configured in this run, `c` was scanned by someone within the week,
        // `d` has no recorded scan at all.
        assert_eq!(decided.retired, ["b"]);
        assert!(decided.blocked.is_empty());
    }

    #[test]
    fn a_retirement_taking_most_of_the_catalogue_waits_for_forget() {
        let snapshot = snapshot(&[
            ("big", "a", "a"),
            ("big", "b", "b"),
            ("big", "c", "c"),
            ("small", "d", "d"),
        ]);
        let now = 100 * DAY;
        let last = HashMap::from([("big".to_owned(), 0), ("small".to_owned(), 0)]);
        let decided = retirements(&snapshot, &HashSet::new(), &last, now, policy(), &[]);
        assert_eq!(decided.retired, ["small"]);
        assert_eq!(decided.blocked.len(), 1);
        assert_eq!(decided.blocked[0].0, OriginKey::source("big"));
        assert_eq!(decided.blocked[0].1[0].code, "source.retirement_blocked");
        // Forgotten, it goes whatever it takes.
        let forced = ["big".to_owned()];
        let decided = retirements(&snapshot, &HashSet::new(), &last, now, policy(), &forced);
        assert_eq!(decided.retired, ["big", "small"]);
    }

    #[test]
    fn what_retiring_takes_is_what_no_other_source_offers() {
        let snapshot = snapshot(&[("a", "x", "shared"), ("b", "y", "shared"), ("b", "z", "own")]);
        assert_eq!(only_offered_by(&snapshot, "b"), [VersionKey::new("own", "1.0.0")]);
        assert!(only_offered_by(&snapshot, "a").is_empty());
    }
}
