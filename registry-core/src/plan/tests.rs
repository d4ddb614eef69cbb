//! The lifecycle rules, driven through several runs against the reference model.

use super::*;
use crate::merge::{ConflictStrategy, Immutable, Newest, Reject, SourcePriority};
use crate::source::Bundle;
use crate::task::parse_bundle;

/// A source's content in a test: locator → (fingerprint, metadata, script).
type Tree = Vec<(&'static str, String, String)>;

fn task(locator: &'static str, name: &str, version: &str, script: &str) -> (&'static str, String, String) {
    let metadata = format!(r#"{{"name":"{name}","version":"{version}","label":"l","description":"d"}}"#);
    (locator, metadata, script.to_owned())
}

fn scan_of(name: &str, tree: &Tree) -> SourceScan {
    SourceScan {
        name: name.to_owned(),
        result: Ok(Scan {
            entries: tree
                .iter()
                .map(|(locator, metadata, script)| Entry {
                    locator: locator.to_string(),
                    fingerprint: format!("{}{}", metadata.len(), script),
                })
                .collect(),
            complete: true,
            issues: Vec::new(),
        }),
        scope: ScanScope::Whole,
        retired: false,
        signatures: Arc::default(),
    }
}

struct World {
    snapshot: Snapshot,
    loads: usize,
}

impl World {
    fn new() -> Self {
        World {
            snapshot: Snapshot::default(),
            loads: 0,
        }
    }

    /// One sync run: scan results given, loads done from `sources`, plan applied.
    fn sync(&mut self, scans: Vec<SourceScan>, sources: &[(&str, &Tree)]) -> ChangeSet {
        self.sync_with(&PlanOptions::new(&SourcePriority), scans, sources)
    }

    fn sync_with(&mut self, options: &PlanOptions<'_>, scans: Vec<SourceScan>, sources: &[(&str, &Tree)]) -> ChangeSet {
        let mut loaded = HashMap::new();
        loop {
            let wanted = entries_to_load(&self.snapshot, &scans, &loaded, options.checked_with);
            if wanted.is_empty() {
                break;
            }
            for (i, entry) in wanted {
                self.loads += 1;
                let tree = sources.iter().find(|(n, _)| *n == scans[i].name).unwrap().1;
                let (_, metadata, script) = tree.iter().find(|(l, _, _)| *l == entry.locator).unwrap();
                let bundle = Bundle::from_files([
                    ("metadata.json", metadata.as_bytes().to_vec()),
                    ("main.js", script.as_bytes().to_vec()),
                ]);
                let outcome = match parse_bundle(&bundle) {
                    Ok(parsed) => LoadOutcome::Parsed {
                        task: Arc::new(parsed.task),
                        warnings: parsed.warnings,
                        modified: None,
                    },
                    Err(problems) => LoadOutcome::Broken(problems),
                };
                loaded.insert(OriginKey::new(&scans[i].name, &entry.locator), outcome);
            }
        }
        let changes = plan(&self.snapshot, &scans, &loaded, options);
        self.snapshot.apply(&changes);
        changes
    }

    fn available(&self, name: &str, version: &str) -> bool {
        self.snapshot
            .versions
            .get(&VersionKey::new(name, version))
            .is_some_and(|v| v.available)
    }
}

fn failed(name: &str) -> SourceScan {
    SourceScan {
        name: name.to_owned(),
        result: Err("root does not exist".into()),
        scope: ScanScope::Whole,
        retired: false,
        signatures: Arc::default(),
    }
}

#[test]
fn first_sync_adds_and_an_unchanged_resync_loads_and_writes_nothing() {
    let mut world = World::new();
    let tree: Tree = vec![task("a", "alpha", "1.0.0", "1"), task("b", "beta", "2.0.0", "2")];
    let first = world.sync(vec![scan_of("s", &tree)], &[("s", &tree)]);
    assert_eq!(first.counts.added, 2);
    assert_eq!(first.new_tasks.len(), 2);
    assert_eq!(world.loads, 2);

    let second = world.sync(vec![scan_of("s", &tree)], &[("s", &tree)]);
    assert!(second.is_empty(), "{second:?}");
    assert_eq!(second.counts.unchanged, 2);
    assert_eq!(world.loads, 2, "an unchanged fingerprint must not be loaded");
}

#[test]
fn only_a_complete_scan_makes_tasks_missing_and_they_revive_when_back() {
    let mut world = World::new();
    let full: Tree = vec![task("a", "alpha", "1.0.0", "1"), task("b", "beta", "1.0.0", "2")];
    world.sync(vec![scan_of("s", &full)], &[("s", &full)]);

    let partial: Tree = vec![task("a", "alpha", "1.0.0", "1")];
    let mut incomplete = scan_of("s", &partial);
    incomplete.result.as_mut().unwrap().complete = false;
    let changes = world.sync(vec![incomplete], &[("s", &partial)]);
    assert_eq!(changes.counts.missing, 0);
    assert!(world.available("beta", "1.0.0"));

    let changes = world.sync(vec![failed("s")], &[]);
    assert_eq!(changes.counts.missing, 0);
    assert!(world.available("alpha", "1.0.0") && world.available("beta", "1.0.0"));
    assert_eq!(
        world.snapshot.problems[&OriginKey::new("s", "")][0].code,
        "source.scan_failed"
    );

    let changes = world.sync(vec![scan_of("s", &partial)], &[("s", &partial)]);
    assert_eq!(changes.counts.missing, 1);
    assert!(!world.available("beta", "1.0.0"));
    assert!(
        world.snapshot.versions.contains_key(&VersionKey::new("beta", "1.0.0")),
        "history is kept"
    );
    assert!(
        !world.snapshot.problems.contains_key(&OriginKey::new("s", "")),
        "the scan failure clears"
    );

    let changes = world.sync(vec![scan_of("s", &full)], &[("s", &full)]);
    assert_eq!(changes.counts.revived, 1);
    assert!(world.available("beta", "1.0.0"));
}

#[test]
fn a_version_stays_available_while_another_source_still_offers_it() {
    let mut world = World::new();
    let tree: Tree = vec![task("a", "alpha", "1.0.0", "1")];
    let empty: Tree = vec![];
    world.sync(
        vec![scan_of("one", &tree), scan_of("two", &tree)],
        &[("one", &tree), ("two", &tree)],
    );
    assert_eq!(world.snapshot.origins.len(), 2);
    let changes = world.sync(vec![scan_of("one", &empty), scan_of("two", &tree)], &[("two", &tree)]);
    assert_eq!(changes.counts.missing, 0);
    assert_eq!(changes.counts.conflicts, 0);
    assert!(world.available("alpha", "1.0.0"));
}

#[test]
fn a_broken_edit_keeps_the_last_good_version_until_fixed() {
    let mut world = World::new();
    let good: Tree = vec![task("a", "alpha", "1.0.0", "1")];
    world.sync(vec![scan_of("s", &good)], &[("s", &good)]);
    let good_digest = world.snapshot.versions[&VersionKey::new("alpha", "1.0.0")].digest;

    let broken: Tree = vec![("a", r#"{"name":"alpha","version":"one"}"#.into(), "1".into())];
    let changes = world.sync(vec![scan_of("s", &broken)], &[("s", &broken)]);
    assert_eq!(changes.counts.invalid, 1);
    assert!(world.available("alpha", "1.0.0"));
    assert_eq!(
        world.snapshot.versions[&VersionKey::new("alpha", "1.0.0")].digest,
        good_digest
    );
    assert_eq!(
        world.snapshot.problems[&OriginKey::new("s", "a")][0].code,
        "metadata.version_not_semver"
    );

    // Still broken: re-checked, but the same problem is not written again.
    let changes = world.sync(vec![scan_of("s", &broken)], &[("s", &broken)]);
    assert!(changes.is_empty(), "{changes:?}");

    let fixed: Tree = vec![task("a", "alpha", "1.0.1", "1")];
    world.sync(vec![scan_of("s", &fixed)], &[("s", &fixed)]);
    assert!(world.snapshot.problems.is_empty());
    assert!(world.available("alpha", "1.0.1"));
    assert!(!world.available("alpha", "1.0.0"), "the locator now offers 1.0.1 only");
}

#[test]
fn removing_a_broken_task_clears_its_problem() {
    let mut world = World::new();
    let broken: Tree = vec![("x", "{".into(), "1".into())];
    world.sync(vec![scan_of("s", &broken)], &[("s", &broken)]);
    assert!(world.snapshot.problems.contains_key(&OriginKey::new("s", "x")));
    let empty: Tree = vec![];
    world.sync(vec![scan_of("s", &empty)], &[]);
    assert!(world.snapshot.problems.is_empty());
}

#[test]
fn different_content_for_one_version_is_a_recorded_conflict_won_by_the_first_source() {
    let mut world = World::new();
    let one: Tree = vec![task("a", "alpha", "1.0.0", "one")];
    let two: Tree = vec![task("a", "alpha", "1.0.0", "two")];
    let changes = world.sync(
        vec![scan_of("second", &two), scan_of("first", &one)],
        &[("first", &one), ("second", &two)],
    );
    assert_eq!(changes.counts.conflicts, 1);
    assert_eq!(changes.counts.added, 1);
    let record = &changes.conflicts[0];
    assert_eq!(record.detail.offers[0].source, "second");
    assert_eq!(record.detail.kept, Some(record.detail.offers[0].digest));
    assert_eq!(
        world.snapshot.versions[&VersionKey::new("alpha", "1.0.0")].digest,
        record.detail.offers[0].digest
    );

    // The same conflict on the next run is counted but not written again.
    let loads = world.loads;
    let again = world.sync(
        vec![scan_of("second", &two), scan_of("first", &one)],
        &[("first", &one), ("second", &two)],
    );
    assert_eq!(again.counts.conflicts, 1);
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(world.loads, loads + 2, "both offers are loaded to decide");

    // The conflict clears when the sources agree.
    let changes = world.sync(
        vec![scan_of("second", &two), scan_of("first", &two)],
        &[("first", &two), ("second", &two)],
    );
    assert_eq!(changes.conflicts_cleared.len(), 1);
    assert!(world.snapshot.conflicts.is_empty());
}

#[test]
fn an_authors_edit_in_place_is_an_update_unless_the_strategy_forbids_changes() {
    for (strategy, is_conflict) in [
        (&SourcePriority as &dyn ConflictStrategy, false),
        (&Newest, false),
        (&Immutable, true),
        (&Reject, true),
    ] {
        let mut world = World::new();
        let options = PlanOptions::new(strategy);
        let before: Tree = vec![task("a", "alpha", "1.0.0", "before")];
        world.sync_with(&options, vec![scan_of("s", &before)], &[("s", &before)]);
        let old = world.snapshot.versions[&VersionKey::new("alpha", "1.0.0")].digest;
        let after: Tree = vec![task("a", "alpha", "1.0.0", "after!")];
        let changes = world.sync_with(&options, vec![scan_of("s", &after)], &[("s", &after)]);
        let stored = world.snapshot.versions[&VersionKey::new("alpha", "1.0.0")].digest;
        let name = strategy.name();
        if is_conflict {
            assert_eq!((changes.counts.updated, changes.counts.conflicts), (0, 1), "{name}");
            assert_eq!(stored, old, "{name}");
            assert_eq!(changes.conflicts[0].stored, Some(old), "{name}");
        } else {
            assert_eq!((changes.counts.updated, changes.counts.conflicts), (1, 0), "{name}");
            assert_ne!(stored, old, "{name}");
            assert!(world.snapshot.conflicts.is_empty(), "{name}");
            // The next resync writes nothing: the edit is settled, not a standing conflict.
            let again = world.sync_with(&options, vec![scan_of("s", &after)], &[("s", &after)]);
            assert!(again.is_empty(), "{name}: {again:?}");
        }
    }
}

#[test]
fn an_edit_while_another_origin_still_offers_the_old_content_is_a_conflict() {
    let mut world = World::new();
    let before: Tree = vec![task("a", "alpha", "1.0.0", "before")];
    world.sync(
        vec![scan_of("one", &before), scan_of("two", &before)],
        &[("one", &before), ("two", &before)],
    );
    let after: Tree = vec![task("a", "alpha", "1.0.0", "after!")];
    let changes = world.sync(
        vec![scan_of("one", &after), scan_of("two", &before)],
        &[("one", &after), ("two", &before)],
    );
    assert_eq!(changes.counts.conflicts, 1);
    assert_eq!(changes.conflicts[0].detail.offers.len(), 2);
}

#[test]
fn a_source_outside_the_run_still_offers_its_content_and_the_first_stored_stays() {
    let mut world = World::new();
    let elsewhere: Tree = vec![task("shared", "alpha", "1.0.0", "elsewhere")];
    let here: Tree = vec![task("shared", "alpha", "1.0.0", "here!!!!!")];
    world.sync(vec![scan_of("elsewhere", &elsewhere)], &[("elsewhere", &elsewhere)]);
    let first = world.snapshot.versions[&VersionKey::new("alpha", "1.0.0")].digest;

    // Another host syncs only `here`: a conflict with `elsewhere`'s stored offer, which it
    // cannot rank, so the stored content stays.
    let changes = world.sync(vec![scan_of("here", &here)], &[("here", &here)]);
    assert_eq!((changes.counts.conflicts, changes.counts.updated), (1, 0));
    let sources: Vec<&str> = changes.conflicts[0]
        .detail
        .offers
        .iter()
        .map(|o| o.source.as_str())
        .collect();
    assert_eq!(sources, ["here", "elsewhere"]);
    assert_eq!(
        world.snapshot.versions[&VersionKey::new("alpha", "1.0.0")].digest,
        first
    );

    // The conflict stands through either host's next run, and through a run of both
    // sources; nobody rewrites it.
    for scans in [vec!["here"], vec!["elsewhere"], vec!["elsewhere", "here"], vec!["here"]] {
        let trees = [("elsewhere", &elsewhere), ("here", &here)];
        let scans: Vec<SourceScan> = scans
            .iter()
            .map(|name| scan_of(name, trees.iter().find(|(n, _)| n == name).unwrap().1))
            .collect();
        let changes = world.sync(scans, &trees);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(changes.counts.conflicts, 1);
        assert_eq!(world.snapshot.conflicts.len(), 1);
    }
    assert_eq!(
        world.snapshot.versions[&VersionKey::new("alpha", "1.0.0")].digest,
        first
    );
}

#[test]
fn a_failed_source_keeps_its_place_in_a_conflict() {
    let mut world = World::new();
    let first: Tree = vec![task("a", "alpha", "1.0.0", "first")];
    let second: Tree = vec![task("a", "alpha", "1.0.0", "second")];
    world.sync(
        vec![scan_of("first", &first), scan_of("second", &second)],
        &[("first", &first), ("second", &second)],
    );
    let won = world.snapshot.versions[&VersionKey::new("alpha", "1.0.0")].digest;
    let changes = world.sync(
        vec![failed("first"), scan_of("second", &second)],
        &[("second", &second)],
    );
    assert_eq!(
        changes.counts.updated, 0,
        "the lower-priority source took over: {changes:?}"
    );
    assert!(changes.conflicts.is_empty(), "the standing conflict was rewritten");
    assert_eq!(world.snapshot.versions[&VersionKey::new("alpha", "1.0.0")].digest, won);
}

#[test]
fn a_uuid_claimed_by_a_second_name_is_a_problem_for_that_task_only() {
    let mut world = World::new();
    let uuid = "0f0e0d0c-0b0a-4908-8706-050403020100";
    let meta = |name: &str| format!(r#"{{"name":"{name}","version":"1.0.0","uuid":"{uuid}"}}"#);
    let tree: Tree = vec![("a", meta("alpha"), "1".into()), ("b", meta("beta"), "2".into())];
    let changes = world.sync(vec![scan_of("s", &tree)], &[("s", &tree)]);
    assert_eq!(changes.counts.added, 1);
    assert_eq!(changes.counts.invalid, 1);
    assert!(world.available("alpha", "1.0.0"));
    assert_eq!(
        world.snapshot.problems[&OriginKey::new("s", "b")].last().unwrap().code,
        "metadata.uuid_duplicate"
    );
}

fn with_updated_at(locator: &'static str, script: &str, updated_at: &str) -> (&'static str, String, String) {
    let metadata =
        format!(r#"{{"name":"alpha","version":"1.0.0","label":"l","description":"d","updated_at":"{updated_at}"}}"#);
    (locator, metadata, script.to_owned())
}

/// Two sources offer `alpha@1.0.0` with different content; returns the digest stored
/// after each of two runs, the second after the preferred source changes its content.
fn contest(strategy: &dyn ConflictStrategy) -> (World, [Option<Digest>; 2], ChangeSet) {
    let mut world = World::new();
    let options = PlanOptions::new(strategy);
    let first: Tree = vec![with_updated_at("a", "first", "2026-01-01T00:00:00Z")];
    let second: Tree = vec![with_updated_at("a", "second", "2026-06-01T00:00:00+02:00")];
    let changes = world.sync_with(
        &options,
        vec![scan_of("first", &first), scan_of("second", &second)],
        &[("first", &first), ("second", &second)],
    );
    let after_one = world
        .snapshot
        .versions
        .get(&VersionKey::new("alpha", "1.0.0"))
        .map(|v| v.digest);
    let edited: Tree = vec![with_updated_at("a", "first, edited", "2026-12-01T00:00:00Z")];
    world.sync_with(
        &options,
        vec![scan_of("first", &edited), scan_of("second", &second)],
        &[("first", &edited), ("second", &second)],
    );
    let after_two = world
        .snapshot
        .versions
        .get(&VersionKey::new("alpha", "1.0.0"))
        .map(|v| v.digest);
    (world, [after_one, after_two], changes)
}

fn digest_of(script: &str, updated_at: &str) -> Digest {
    let (_, metadata, script) = with_updated_at("a", script, updated_at);
    let bundle = Bundle::from_files([
        ("metadata.json", metadata.into_bytes()),
        ("main.js", script.into_bytes()),
    ]);
    parse_bundle(&bundle).unwrap().task.digest
}

#[test]
fn source_priority_takes_the_first_source_every_time() {
    let (_, [one, two], changes) = contest(&SourcePriority);
    assert_eq!(one, Some(digest_of("first", "2026-01-01T00:00:00Z")));
    assert_eq!(two, Some(digest_of("first, edited", "2026-12-01T00:00:00Z")));
    assert!(
        changes.conflicts[0].detail.decision.starts_with("took sha256:"),
        "{}",
        changes.conflicts[0].detail.decision
    );
}

#[test]
fn immutable_keeps_the_first_stored_content_forever() {
    let (world, [one, two], _) = contest(&Immutable);
    assert_eq!(one, Some(digest_of("first", "2026-01-01T00:00:00Z")));
    assert_eq!(two, one, "the edit is refused");
    let detail = &world.snapshot.conflicts[&VersionKey::new("alpha", "1.0.0")];
    assert!(detail.contains("kept the stored"), "{detail}");
}

#[test]
fn newest_takes_the_latest_updated_at_across_time_zones() {
    let (_, [one, two], _) = contest(&Newest);
    assert_eq!(
        one,
        Some(digest_of("second", "2026-06-01T00:00:00+02:00")),
        "June beats January"
    );
    assert_eq!(
        two,
        Some(digest_of("first, edited", "2026-12-01T00:00:00Z")),
        "December beats June"
    );
}

#[test]
fn reject_adds_nothing_disputed_and_keeps_what_is_stored() {
    let (world, [one, two], changes) = contest(&Reject);
    assert_eq!((one, two), (None, None), "a disputed new version is not added");
    assert_eq!(changes.counts.conflicts, 1);
    assert!(
        world.snapshot.origins.is_empty(),
        "no origin may point at a version that does not exist"
    );
    assert_eq!(changes.conflicts[0].detail.kept, None);

    // Stored content stays when a source later disagrees.
    let mut world = World::new();
    let options = PlanOptions::new(&Reject);
    let agreed: Tree = vec![task("a", "alpha", "1.0.0", "same")];
    world.sync_with(&options, vec![scan_of("s", &agreed)], &[("s", &agreed)]);
    let stored = world.snapshot.versions[&VersionKey::new("alpha", "1.0.0")].digest;
    let edited: Tree = vec![task("a", "alpha", "1.0.0", "edited")];
    world.sync_with(&options, vec![scan_of("s", &edited)], &[("s", &edited)]);
    assert_eq!(
        world.snapshot.versions[&VersionKey::new("alpha", "1.0.0")].digest,
        stored
    );
}

#[test]
fn a_scan_that_would_remove_most_of_a_source_removes_nothing_unless_allowed() {
    let mut world = World::new();
    let full: Tree = (0..4)
        .map(|i| task(["a", "b", "c", "d"][i], &format!("t{i}"), "1.0.0", "x"))
        .collect();
    world.sync(vec![scan_of("s", &full)], &[("s", &full)]);

    let two_left: Tree = full[..2].to_vec();
    let changes = world.sync(vec![scan_of("s", &two_left)], &[("s", &two_left)]);
    assert_eq!(changes.counts.missing, 2, "half is not more than half");
    world.sync(vec![scan_of("s", &full)], &[("s", &full)]);

    let one_left: Tree = full[..1].to_vec();
    let changes = world.sync(vec![scan_of("s", &one_left)], &[("s", &one_left)]);
    assert_eq!(changes.counts.missing, 0);
    assert_eq!(
        world.snapshot.problems[&OriginKey::new("s", "")][0].code,
        "source.mass_removal_blocked"
    );
    assert!(world.available("t3", "1.0.0"));

    let mut options = PlanOptions::new(&SourcePriority);
    options.allow_mass_removal = true;
    let changes = world.sync_with(&options, vec![scan_of("s", &one_left)], &[("s", &one_left)]);
    assert_eq!(changes.counts.missing, 3);
    assert!(
        !world.snapshot.problems.contains_key(&OriginKey::new("s", "")),
        "the guard's problem clears"
    );
}

/// The scan of `tree` limited to `prefixes`, as `taskreg watch` makes it after a change.
fn scoped_scan_of(name: &str, tree: &Tree, prefixes: &[&str]) -> SourceScan {
    let scope = ScanScope::Within(prefixes.iter().map(|p| p.to_string()).collect());
    let mut scan = scan_of(name, tree);
    if let Ok(result) = &mut scan.result {
        result.entries.retain(|e| scope.covers(&e.locator));
    }
    SourceScan { scope, ..scan }
}

#[test]
fn a_scope_covers_its_folders_and_nothing_that_merely_starts_alike() {
    let scope = ScanScope::Within(vec!["g1".into(), "x/y".into()]);
    assert!(scope.covers("g1") && scope.covers("g1/a") && scope.covers("x/y/z"));
    assert!(!scope.covers("g10/e") && !scope.covers("x") && !scope.covers("x/yz"));
    assert!(ScanScope::Within(vec![String::new()]).covers("anything"));
    assert!(!ScanScope::Within(Vec::new()).covers("anything"));
}

#[test]
fn a_scoped_rescan_ends_where_a_full_rescan_ends_but_loads_less() {
    let broken = ("g2/x", "{ not json".to_owned(), "0".to_owned());
    let before: Tree = vec![
        task("g1/a", "alpha", "1.0.0", "1"),
        task("g1/b", "beta", "1.0.0", "2"),
        task("g2/c", "gamma", "1.0.0", "3"),
        broken.clone(),
        task("g10/e", "epsilon", "1.0.0", "5"),
    ];
    let other: Tree = vec![task("o/a", "alpha", "1.0.0", "B1"), task("o/z", "zeta", "1.0.0", "z")];
    // In `g1`: alpha edited in place (a conflict with the stored content and with `b`'s
    // offer), beta deleted, nu added.
    let after: Tree = vec![
        task("g1/a", "alpha", "1.0.0", "1-edited"),
        task("g1/n", "nu", "1.0.0", "6"),
        task("g2/c", "gamma", "1.0.0", "3"),
        broken,
        task("g10/e", "epsilon", "1.0.0", "5"),
    ];
    let sources_before = [("a", &before), ("b", &other)];
    let sources_after = [("a", &after), ("b", &other)];
    let mut full = World::new();
    full.sync(vec![scan_of("a", &before), scan_of("b", &other)], &sources_before);
    let mut scoped = World {
        snapshot: full.snapshot.clone(),
        loads: 0,
    };
    full.loads = 0;
    assert!(full.snapshot.problems.contains_key(&OriginKey::new("a", "g2/x")));

    let by_full = full.sync(vec![scan_of("a", &after), scan_of("b", &other)], &sources_after);
    let by_scope = scoped.sync(
        vec![scoped_scan_of("a", &after, &["g1"]), SourceScan::unscanned("b")],
        &sources_after,
    );
    assert_eq!(scoped.snapshot, full.snapshot);
    assert_eq!(by_scope.counts.added, 1);
    assert_eq!(by_scope.counts.missing, 1);
    assert_eq!(by_scope.counts.conflicts, 1);
    assert_eq!(by_full.counts.conflicts, 1);
    assert!(scoped.available("alpha", "1.0.0") && !scoped.available("beta", "1.0.0"));
    assert!(
        scoped.snapshot.problems.contains_key(&OriginKey::new("a", "g2/x")),
        "a problem outside the scope stays"
    );
    // No more than the full rescan, which (since issue 14) does not read the unchanged
    // broken task outside the scope either.
    assert!(scoped.loads <= full.loads, "{} vs {}", scoped.loads, full.loads);

    // Fixing the broken task, seen by a rescan of its folder only.
    let fixed: Tree = after
        .iter()
        .map(|t| {
            if t.0 == "g2/x" {
                task("g2/x", "xi", "1.0.0", "7")
            } else {
                t.clone()
            }
        })
        .collect();
    let sources_fixed = [("a", &fixed), ("b", &other)];
    full.sync(vec![scan_of("a", &fixed), scan_of("b", &other)], &sources_fixed);
    let changes = scoped.sync(
        vec![scoped_scan_of("a", &fixed, &["g2/x"]), SourceScan::unscanned("b")],
        &sources_fixed,
    );
    assert_eq!(changes.counts.added, 1);
    assert_eq!(scoped.snapshot, full.snapshot);
}

#[test]
fn a_scoped_rescan_keeps_the_source_level_problem_and_obeys_the_removal_guard() {
    let tree: Tree = vec![
        task("g/a", "alpha", "1.0.0", "1"),
        task("g/b", "beta", "1.0.0", "2"),
        task("h/c", "gamma", "1.0.0", "3"),
    ];
    let mut world = World::new();
    world.sync(vec![scan_of("s", &tree)], &[("s", &tree)]);
    world.sync(vec![failed("s")], &[]);
    // Only a scan of the whole source can say the source as a whole is fine again.
    world.sync(vec![scoped_scan_of("s", &tree, &["h"])], &[("s", &tree)]);
    assert_eq!(
        world.snapshot.problems[&OriginKey::new("s", "")][0].code,
        "source.scan_failed"
    );
    // The folder `g` emptied: two of three tasks, more than the default half.
    let emptied: Tree = vec![task("h/c", "gamma", "1.0.0", "3")];
    let changes = world.sync(vec![scoped_scan_of("s", &emptied, &["g"])], &[("s", &emptied)]);
    assert_eq!(changes.counts.missing, 0);
    assert_eq!(
        world.snapshot.problems[&OriginKey::new("s", "")][0].code,
        "source.mass_removal_blocked"
    );
    assert!(world.available("alpha", "1.0.0"));

    let options = PlanOptions {
        allow_mass_removal: true,
        ..PlanOptions::new(&SourcePriority)
    };
    let changes = world.sync_with(
        &options,
        vec![scoped_scan_of("s", &emptied, &["g"])],
        &[("s", &emptied)],
    );
    assert_eq!(changes.counts.missing, 2);
    assert!(world.available("gamma", "1.0.0"));
}

#[test]
fn a_retired_source_takes_away_only_what_no_other_source_offers_and_comes_back_when_scanned() {
    let mut world = World::new();
    let kept: Tree = vec![task("a", "shared", "1.0.0", "x")];
    let leaving: Tree = vec![
        task("a", "shared", "1.0.0", "x"),
        task("b", "own", "1.0.0", "y"),
        task("c", "other", "1.0.0", "z"),
    ];
    world.sync(
        vec![scan_of("kept", &kept), scan_of("leaving", &leaving)],
        &[("kept", &kept), ("leaving", &leaving)],
    );

    // Retired: every origin goes, past the per-source guard (all of its tasks).
    let changes = world.sync(vec![SourceScan::retired("leaving")], &[]);
    assert_eq!(
        changes.counts.missing, 2,
        "own and other: shared is still offered by `kept`"
    );
    assert!(world.available("shared", "1.0.0"));
    assert!(!world.available("own", "1.0.0"));
    assert!(!world.snapshot.origins.keys().any(|k| k.source == "leaving"));

    // Configured again, it offers its tasks again: they come back.
    let changes = world.sync(vec![scan_of("leaving", &leaving)], &[("leaving", &leaving)]);
    assert_eq!(changes.counts.revived, 2);
    assert!(world.available("own", "1.0.0"));
}

#[test]
fn an_unchanged_broken_task_is_read_again_only_when_it_or_the_rules_change() {
    let mut world = World::new();
    let broken = task("x", "xi", "not-semver", "1");
    let tree: Tree = vec![task("a", "alpha", "1.0.0", "a"), broken.clone()];
    let changes = world.sync(vec![scan_of("s", &tree)], &[("s", &tree)]);
    assert_eq!(changes.counts.invalid, 1);
    assert_eq!(world.loads, 2);
    let found_at = world.snapshot.problem_fingerprints[&OriginKey::new("s", "x")].clone();

    // Unchanged: nothing read, nothing written, the problem stays.
    world.loads = 0;
    let changes = world.sync(vec![scan_of("s", &tree)], &[("s", &tree)]);
    assert_eq!(world.loads, 0, "the broken task is not read again");
    assert!(changes.is_empty());
    assert!(world.snapshot.problems.contains_key(&OriginKey::new("s", "x")));

    // Other rules: read again, and the problem is kept with what it was found at now.
    let mut options = PlanOptions::new(&SourcePriority);
    options.checked_with = "other rules";
    let changes = world.sync_with(&options, vec![scan_of("s", &tree)], &[("s", &tree)]);
    assert_eq!(world.loads, 1);
    assert_eq!(
        changes.problem_sets.len(),
        1,
        "same problems, found at another fingerprint"
    );
    assert_ne!(world.snapshot.problem_fingerprints[&OriginKey::new("s", "x")], found_at);

    // Edited (still broken): read again.
    world.loads = 0;
    let edited: Tree = vec![tree[0].clone(), task("x", "xi", "still-not-semver", "2")];
    world.sync_with(&options, vec![scan_of("s", &edited)], &[("s", &edited)]);
    assert_eq!(world.loads, 1);
    // Fixed: read, stored, and the problem (and what it was found at) is gone.
    let fixed: Tree = vec![tree[0].clone(), task("x", "xi", "1.0.0", "3")];
    world.sync_with(&options, vec![scan_of("s", &fixed)], &[("s", &fixed)]);
    assert!(world.available("xi", "1.0.0"));
    assert!(
        !world
            .snapshot
            .problem_fingerprints
            .contains_key(&OriginKey::new("s", "x"))
    );
}
