//! One candidate per `(name, version)`: merging what every source offers.
//!
//! Several sources offering the same name, version *and digest* is not a conflict: it is
//! one version with several origins. Different digests for one version are a conflict; a
//! [`ConflictStrategy`] decides which content the catalogue keeps, and the conflict is
//! recorded so that nobody's content changes silently.

use crate::digest::Digest;
use crate::signature::KeyId;
use crate::task::TaskDefinition;
use std::sync::Arc;
use std::time::SystemTime;
use uuid::Uuid;

/// One source's offer of one task version. Borrows from the run's inputs: a plan builds
/// one per entry of every scan, so it must not allocate.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// Position of the source in the configuration: 0 is the highest priority. Sources the
    /// run does not sync (another host's) rank after all of its own.
    pub rank: usize,
    pub source: &'a str,
    pub locator: &'a str,
    pub fingerprint: &'a str,
    pub name: &'a str,
    pub version: &'a str,
    pub digest: Digest,
    pub uuid: Option<Uuid>,
    /// The loaded task, or `None` when the entry was unchanged and is known from the store.
    pub task: Option<&'a Arc<TaskDefinition>>,
    pub modified: Option<SystemTime>,
    /// The trusted key whose signature of this content verified, when one did.
    pub signer: Option<KeyId>,
}

/// What a strategy decided for a conflicting version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictDecision {
    /// The catalogue holds this content.
    Take(Digest),
    /// The content already stored stays (or, with nothing stored, the version is not added).
    KeepStored,
}

/// Decides between different contents offered for one version. Register an implementation
/// with `inventory::submit!(RegisteredStrategy(&MyStrategy))` and choose it with
/// `[conflicts] strategy = "…"`.
pub trait ConflictStrategy: Send + Sync {
    /// The name used in the configuration (`source-priority`).
    fn name(&self) -> &'static str;
    /// One line for `taskreg` to show.
    fn description(&self) -> &'static str;
    /// `candidates` are sorted by source rank, highest priority first, and offer at least
    /// two digests between them and `stored`. Loaded candidates carry their task.
    fn decide(&self, stored: Option<Digest>, candidates: &[&Candidate<'_>]) -> ConflictDecision;
    /// Whether an author's edit in place is a conflict too: one origin offering new
    /// content for the version it stored, and no origin still offering the old content.
    /// `false` (the default): it is an update, as an author saving a file expects.
    fn edits_are_conflicts(&self) -> bool {
        false
    }
}

/// A conflict strategy made available to configurations.
pub struct RegisteredStrategy(pub &'static dyn ConflictStrategy);

inventory::collect!(RegisteredStrategy);
inventory::submit!(RegisteredStrategy(&SourcePriority));
inventory::submit!(RegisteredStrategy(&Immutable));
inventory::submit!(RegisteredStrategy(&Newest));
inventory::submit!(RegisteredStrategy(&Reject));

/// The registered strategy called `name`.
pub fn find_strategy(name: &str) -> Option<&'static dyn ConflictStrategy> {
    inventory::iter::<RegisteredStrategy>
        .into_iter()
        .map(|r| r.0)
        .find(|s| s.name() == name)
}

/// Every registered strategy, sorted by name.
pub fn strategies() -> Vec<&'static dyn ConflictStrategy> {
    let mut all: Vec<&'static dyn ConflictStrategy> =
        inventory::iter::<RegisteredStrategy>.into_iter().map(|r| r.0).collect();
    all.sort_by_key(|s| s.name());
    all
}

fn first(candidates: &[&Candidate<'_>]) -> ConflictDecision {
    candidates
        .first()
        .map_or(ConflictDecision::KeepStored, |c| ConflictDecision::Take(c.digest))
}

/// The default: the order of `[[sources]]` is the priority; the first source offering the
/// version wins, even over what is stored.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourcePriority;

impl ConflictStrategy for SourcePriority {
    fn name(&self) -> &'static str {
        "source-priority"
    }

    fn description(&self) -> &'static str {
        "the first source in the configuration wins"
    }

    fn decide(&self, _stored: Option<Digest>, candidates: &[&Candidate<'_>]) -> ConflictDecision {
        first(candidates)
    }
}

/// The content first stored for a version wins forever; a new version offered with
/// different contents in its first run goes to the highest-priority source.
#[derive(Debug, Clone, Copy, Default)]
pub struct Immutable;

impl ConflictStrategy for Immutable {
    fn name(&self) -> &'static str {
        "immutable"
    }

    fn edits_are_conflicts(&self) -> bool {
        true
    }

    fn description(&self) -> &'static str {
        "the content first stored for a version wins forever"
    }

    fn decide(&self, stored: Option<Digest>, candidates: &[&Candidate<'_>]) -> ConflictDecision {
        match stored {
            Some(_) => ConflictDecision::KeepStored,
            None => first(candidates),
        }
    }
}

/// The latest `updated_at` in the metadata wins, then the latest modification time at the
/// source, then source priority.
#[derive(Debug, Clone, Copy, Default)]
pub struct Newest;

impl ConflictStrategy for Newest {
    fn name(&self) -> &'static str {
        "newest"
    }

    fn description(&self) -> &'static str {
        "the latest `updated_at`, then the latest modification time, wins"
    }

    fn decide(&self, _stored: Option<Digest>, candidates: &[&Candidate<'_>]) -> ConflictDecision {
        let updated = |c: &Candidate<'_>| {
            c.task
                .and_then(|t| t.updated_at.as_deref())
                .and_then(|text| text.parse::<jiff::Timestamp>().ok())
        };
        // `max_by_key` keeps the last of equals; iterate in reverse so priority breaks ties.
        candidates
            .iter()
            .rev()
            .max_by_key(|c| (updated(c), c.modified))
            .map_or(ConflictDecision::KeepStored, |c| ConflictDecision::Take(c.digest))
    }
}

/// Neither new content wins: what is stored stays, and a version first offered with
/// different contents is not added until the sources agree.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reject;

impl ConflictStrategy for Reject {
    fn name(&self) -> &'static str {
        "reject"
    }

    fn edits_are_conflicts(&self) -> bool {
        true
    }

    fn description(&self) -> &'static str {
        "no new content wins: the stored content stays"
    }

    fn decide(&self, _stored: Option<Digest>, _candidates: &[&Candidate<'_>]) -> ConflictDecision {
        ConflictDecision::KeepStored
    }
}

/// A conflict as recorded in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictRecord {
    pub name: String,
    pub version: String,
    /// The content stored before this run's decision.
    pub stored: Option<Digest>,
    /// What was offered and decided.
    pub detail: ConflictDetail,
}

/// One offer of a conflicting version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConflictOffer {
    pub source: String,
    pub locator: String,
    pub digest: Digest,
    /// The trusted key that signed the offer, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
}

/// What is kept of a conflict: stored as canonical JSON, printed by `taskreg conflicts`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConflictDetail {
    /// The strategy that decided.
    pub strategy: String,
    /// Every candidate, highest priority first.
    pub offers: Vec<ConflictOffer>,
    /// The content the catalogue holds after the decision (`None`: the version was not added).
    pub kept: Option<Digest>,
    /// The decision in words: which offer was taken, or that the stored content stayed.
    pub decision: String,
}

impl ConflictDetail {
    /// As stored: canonical JSON, so an unchanged conflict compares equal to its record.
    pub fn to_json(&self) -> String {
        crate::canonical_json(&serde_json::to_value(self).expect("a conflict detail is JSON"))
    }

    /// Whether `stored` (a detail as stored) records the same standing conflict: the same
    /// strategy kept the same content among the same offers. The order of the offers and the
    /// decision's wording depend on which host's run decided (each ranks its own sources
    /// first), so they do not make a conflict new: hosts sharing a catalogue do not rewrite
    /// each other's record on every run.
    pub fn stands_as(&self, stored: &str) -> bool {
        let Ok(stored) = serde_json::from_str::<ConflictDetail>(stored) else {
            return false;
        };
        fn offers(detail: &ConflictDetail) -> Vec<(&str, &str, Digest)> {
            let mut offers: Vec<_> = detail
                .offers
                .iter()
                .map(|o| (o.source.as_str(), o.locator.as_str(), o.digest))
                .collect();
            offers.sort_unstable();
            offers
        }
        stored.strategy == self.strategy && stored.kept == self.kept && offers(&stored) == offers(self)
    }
}

impl TryFrom<String> for ConflictDetail {
    type Error = serde_json::Error;

    /// Reads a stored detail.
    fn try_from(text: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&text)
    }
}
