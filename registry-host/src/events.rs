//! What changed in the catalogue, as a stream: [`Registry::subscribe`](crate::Registry::subscribe)
//! hands it to the application, and `serve` sends it to clients as server-sent events at
//! `/v1/events`.

use registry_core::OriginKey;
use registry_core::{ChangeSet, Severity, SignatureChange, WriteKind};
use serde::{Deserialize, Serialize};

/// One change, as clients receive it (`event:` is the variant in snake case).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RegistryEvent {
    /// A version entered the catalogue.
    TaskAdded {
        /// The task's name.
        name: String,
        /// Its semver version.
        version: String,
        /// The content's digest (`sha256:…`).
        digest: String,
    },
    /// A stored version's content was replaced (a conflict decided for other content).
    TaskChanged {
        /// The task's name.
        name: String,
        /// Its semver version.
        version: String,
        /// The new content's digest.
        digest: String,
    },
    /// No source offers a version any more: it stays in the history, unavailable.
    TaskMissing {
        /// The task's name.
        name: String,
        /// Its semver version.
        version: String,
    },
    /// A missing version is offered again.
    TaskRevived {
        /// The task's name.
        name: String,
        /// Its semver version.
        version: String,
    },
    /// A stored version's signature record changed while its content stayed: signed
    /// later, or no longer verified after its key left the trust policy.
    SignatureChanged {
        /// The task's name.
        name: String,
        /// Its semver version.
        version: String,
        /// The key id of the trusted key that signed it now; none when it is unsigned or
        /// its signature is no longer verified.
        signed_by: Option<String>,
    },
    /// A task (or a part of a source) has a problem.
    ProblemRaised {
        /// The source's name.
        source: String,
        /// Where in the source (a folder, an archive entry, a URL path).
        locator: String,
        /// The problem's code (`metadata.version_invalid`).
        code: String,
        /// Error or warning.
        severity: Severity,
        /// What is wrong, for people.
        message: String,
    },
    /// The problems of a locator are gone (fixed or removed).
    ProblemCleared {
        /// The source's name.
        source: String,
        /// Where in the source.
        locator: String,
    },
}

impl RegistryEvent {
    /// The SSE event name.
    pub fn kind(&self) -> &'static str {
        match self {
            RegistryEvent::TaskAdded { .. } => "task_added",
            RegistryEvent::TaskChanged { .. } => "task_changed",
            RegistryEvent::TaskMissing { .. } => "task_missing",
            RegistryEvent::TaskRevived { .. } => "task_revived",
            RegistryEvent::SignatureChanged { .. } => "signature_changed",
            RegistryEvent::ProblemRaised { .. } => "problem_raised",
            RegistryEvent::ProblemCleared { .. } => "problem_cleared",
        }
    }
}

/// The events of one applied run.
pub fn events_of(changes: &ChangeSet) -> Vec<RegistryEvent> {
    each_event_of(changes).collect()
}

/// The events of one applied run, one at a time (a cold sync has one per task: they are
/// written to the catalogue's event log without being held all at once).
pub fn each_event_of(changes: &ChangeSet) -> impl Iterator<Item = RegistryEvent> + '_ {
    let versions = changes.versions.iter().map(|write| {
        let (name, version) = (write.key.name.clone(), write.key.version.clone());
        let digest = write.task.as_ref().map(|t| t.digest.to_string()).unwrap_or_default();
        match write.kind {
            WriteKind::Added => RegistryEvent::TaskAdded { name, version, digest },
            WriteKind::Changed => RegistryEvent::TaskChanged { name, version, digest },
            WriteKind::Missing => RegistryEvent::TaskMissing { name, version },
            WriteKind::Revived => RegistryEvent::TaskRevived { name, version },
        }
    });
    let signatures = changes.signatures.iter().map(|update| RegistryEvent::SignatureChanged {
        name: update.key.name.clone(),
        version: update.key.version.clone(),
        signed_by: match &update.change {
            SignatureChange::Replaced(signature) => signature.as_ref().and_then(|s| s.signer()),
            SignatureChange::Unverified => None,
        }
        .map(|key| key.to_string()),
    });
    let problems = changes
        .problem_sets
        .iter()
        .flat_map(|(OriginKey { source, locator }, problems)| {
            let cleared = problems.is_empty().then(|| RegistryEvent::ProblemCleared {
                source: source.clone(),
                locator: locator.clone(),
            });
            cleared
                .into_iter()
                .chain(problems.iter().map(|p| RegistryEvent::ProblemRaised {
                    source: source.clone(),
                    locator: locator.clone(),
                    code: p.code.clone(),
                    severity: p.severity,
                    message: p.message.clone(),
                }))
        });
    versions.chain(signatures).chain(problems)
}

/// A run's events as the JSON array the catalogue's event log keeps, written one by one.
pub(crate) fn events_json(changes: &ChangeSet) -> String {
    struct Each<'c>(&'c ChangeSet);
    impl Serialize for Each<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(each_event_of(self.0))
        }
    }
    serde_json::to_string(&Each(changes)).unwrap_or_else(|_| "[]".into())
}
