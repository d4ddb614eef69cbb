//! What changed in the catalogue, as a stream: `serve --watch` sends it to clients as
//! server-sent events at `/v1/events`.

use registry_core::{ChangeSet, Severity, WriteKind};
use serde::Serialize;

/// One change, as clients receive it (`event:` is the variant in snake case).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RegistryEvent {
    TaskAdded {
        name: String,
        version: String,
        digest: String,
    },
    TaskChanged {
        name: String,
        version: String,
        digest: String,
    },
    TaskMissing {
        name: String,
        version: String,
    },
    TaskRevived {
        name: String,
        version: String,
    },
    ProblemRaised {
        source: String,
        locator: String,
        code: String,
        severity: Severity,
        message: String,
    },
    ProblemCleared {
        source: String,
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
            RegistryEvent::ProblemRaised { .. } => "problem_raised",
            RegistryEvent::ProblemCleared { .. } => "problem_cleared",
        }
    }
}

/// The events of one applied run.
pub fn events_of(changes: &ChangeSet) -> Vec<RegistryEvent> {
    let mut events = Vec::new();
    for write in &changes.versions {
        let (name, version) = (write.key.0.clone(), write.key.1.clone());
        let digest = write.task.as_ref().map(|t| t.digest.to_string()).unwrap_or_default();
        events.push(match write.kind {
            WriteKind::Added => RegistryEvent::TaskAdded { name, version, digest },
            WriteKind::Changed => RegistryEvent::TaskChanged { name, version, digest },
            WriteKind::Missing => RegistryEvent::TaskMissing { name, version },
            WriteKind::Revived => RegistryEvent::TaskRevived { name, version },
        });
    }
    for ((source, locator), problems) in &changes.problem_sets {
        if problems.is_empty() {
            events.push(RegistryEvent::ProblemCleared {
                source: source.clone(),
                locator: locator.clone(),
            });
        }
        for p in problems {
            events.push(RegistryEvent::ProblemRaised {
                source: source.clone(),
                locator: locator.clone(),
                code: p.code.clone(),
                severity: p.severity,
                message: p.message.clone(),
            });
        }
    }
    events
}
