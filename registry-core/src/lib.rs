//! The domain and the pipeline of taskreg, with no side effects of its own.
//!
//! A registry run reads top-down: every [`Source`] is *scanned* for entries (a locator and
//! a cheap fingerprint), the entries whose fingerprint changed are *loaded* as a
//! [`Bundle`] of files, each bundle is *parsed* into a [`TaskDefinition`] with its
//! canonical [`Digest`] and *checked*, the candidates of all sources are *merged* by
//! `(name, version)`, and the result is *planned* against a [`Snapshot`] of the store as a
//! [`ChangeSet`]. This crate does all of that as plain functions of their inputs.
//!
//! What it must not do: talk to a database, the network, or the filesystem beyond what a
//! `Source` implementation hands it. The host (`registry-host`) owns every side effect,
//! which keeps this crate's tests fast and exhaustive.
//!
//! ```
//! use registry_core::{Bundle, parse_bundle};
//!
//! let bundle = Bundle::from_files([
//!     ("metadata.json", br#"{"name":"addition","version":"1.0.0","uuid":"9c8f7e4e-1b0a-4c8e-9d0e-6a2f3b5c7d11"}"#.to_vec()),
//!     ("main.js", b"(function (input) { return { sum: input.a + input.b }; })".to_vec()),
//! ]);
//! let parsed = parse_bundle(&bundle).expect("a valid task");
//! assert_eq!(parsed.task.name, "addition");
//! assert!(parsed.task.digest.to_string().starts_with("sha256:"));
//! ```

mod digest;
mod error;
mod keys;
pub mod layout;
mod merge;
mod plan;
mod problem;
pub mod protocol;
mod schema;
pub mod signature;
mod source;
mod task;
mod validate;

pub use digest::{Digest, canonical_json};
pub use error::CoreError;
pub use keys::{OriginKey, VersionKey};
pub use layout::{Layout, digest_of_published};
pub use merge::{
    Candidate, ConflictDecision, ConflictDetail, ConflictOffer, ConflictRecord, ConflictStrategy, Immutable, Newest,
    RegisteredStrategy, Reject, SourcePriority, find_strategy, strategies,
};
pub use plan::{
    ChangeSet, OriginRow, PlanOptions, RETRIED_PROBLEM_CODES, RunCounts, SignatureChange, SignatureUpdate, Snapshot,
    SourceScan, StoredOrigin, StoredVersion, VersionWrite, WriteKind, check_cross_task, entries_to_load, plan,
    problem_fingerprint,
};
pub use problem::{Problem, Severity};
pub use schema::{Compiled, SchemaError, compile, compile_shared};
pub use signature::{
    Judgement, KeyId, SIGNATURE_FILE, SignatureMode, SignaturePolicy, TaskSignature, TrustedKey, statement,
};
pub use source::{
    Bundle, Entry, Limits, ReadBudget, Scan, ScanIssue, ScanScope, Source, SourceError, SourceKind, SourceSpec,
    file_too_large, find_kind, kinds, task_too_large,
};
pub use task::{
    ParsedTask, TASK_UUID_NAMESPACE, TaskDefinition, TaskFile, TaskTest, files_from_stored, is_task_file, parse_bundle,
    parse_version, task_files,
};
pub use validate::{
    LoadOutcome, MetadataValidator, RegisteredValidator, RuleLevel, Validation, ValidationContext, Validator,
    check_bundle, check_metadata, validators,
};
