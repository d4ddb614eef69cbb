//! One candidate per `(name, version)`: merging what every source offers.
//!
//! Several sources offering the same name, version *and digest* is not a conflict: it is
//! one version with several origins. Different digests for one version are a conflict; a
//! [`ConflictStrategy`] decides which content the catalogue keeps, and the conflict is
//! recorded so that nobody's content changes silently.

use crate::digest::Digest;
use crate::task::TaskDefinition;
use std::sync::Arc;
use std::time::SystemTime;
use uuid::Uuid;

/// One source's offer of one task version. Borrows from the run's inputs: a plan builds
/// one per entry of every scan, so it must not allocate.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// Position of the source in the configuration: 0 is the highest priority.
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
}

/// What a strategy decided for a conflicting version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictDecision {
    /// The catalogue holds this content.
    Take(Digest),
    /// The content already stored stays (or, with nothing stored, the version is not added).
    KeepStored,
}

/// Decides between different contents offered for one version.
pub trait ConflictStrategy: Send + Sync {
    /// The name used in the configuration (`source-priority`).
    fn name(&self) -> &'static str;
    /// `candidates` are sorted by source rank, highest priority first, and offer at least
    /// two digests between them and `stored`.
    fn decide(&self, stored: Option<Digest>, candidates: &[&Candidate<'_>]) -> ConflictDecision;
}

/// The default strategy: the order of `[[sources]]` is the priority, and the first source
/// offering the version wins.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourcePriority;

impl ConflictStrategy for SourcePriority {
    fn name(&self) -> &'static str {
        "source-priority"
    }

    fn decide(&self, _stored: Option<Digest>, candidates: &[&Candidate<'_>]) -> ConflictDecision {
        candidates
            .first()
            .map_or(ConflictDecision::KeepStored, |c| ConflictDecision::Take(c.digest))
    }
}

/// A conflict as recorded in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictRecord {
    pub name: String,
    pub version: String,
    pub strategy: String,
    pub stored: Option<Digest>,
    /// `(source, locator, digest)` of every candidate, highest priority first.
    pub offers: Vec<(String, String, Digest)>,
    /// The content the catalogue holds after the decision.
    pub kept: Option<Digest>,
}

impl ConflictRecord {
    /// The record as canonical JSON, for storage and for comparing with the stored record.
    /// `stored` is left out: it is the previous run's outcome, not part of the conflict.
    pub fn detail_json(&self) -> String {
        let offers: Vec<serde_json::Value> = self
            .offers
            .iter()
            .map(|(source, locator, digest)| {
                serde_json::json!({"source": source, "locator": locator, "digest": digest.to_string()})
            })
            .collect();
        crate::canonical_json(&serde_json::json!({
            "strategy": self.strategy,
            "offers": offers,
            "kept": self.kept.map(|d| d.to_string()),
        }))
    }
}
