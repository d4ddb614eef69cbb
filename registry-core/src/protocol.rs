//! The HTTP protocol's documents (see `docs/http-protocol.md`), defined once: `taskreg
//! serve` writes them and the `http` source reads them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The protocol version a [`ServiceDocument`] names.
pub const PROTOCOL_VERSION: &str = "1";

/// `GET /` of a registry (or `taskreg.json` beside a static one): where its parts are, so
/// that a client needs only the registry's address, as Cargo's sparse registries publish
/// `config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDocument {
    /// The protocol's version (`"1"`).
    pub protocol: String,
    /// The index's first page, relative to the document (`/v1/tasks`).
    pub index: String,
    /// The server-sent events stream, when the registry has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<String>,
}

/// One page of `GET /v1/tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPage {
    /// Versions, ordered by name then version text.
    pub items: Vec<IndexItem>,
    /// The next page's URL, absent on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// One version in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexItem {
    /// The task's name.
    pub name: String,
    /// The semver version.
    pub version: String,
    /// The content's digest (`sha256:…`).
    pub digest: String,
    /// Whether the registry offers it now (absent: available, as static registries write it).
    #[serde(default = "available")]
    pub available: bool,
    /// Where its bundle is, relative to the index.
    pub href: String,
    /// The trusted key whose signature of the content the registry verified (16 hex
    /// digits), when one did. A client judges the signature itself, by its own policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// When the registry verified it (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_verified_at: Option<i64>,
}

/// `GET /v1/tasks/{name}`: every version of one task ever seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskVersions {
    /// The task's name.
    pub name: String,
    /// Its versions.
    pub versions: Vec<VersionItem>,
}

/// One version of [`TaskVersions`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionItem {
    /// The semver version.
    pub version: String,
    /// The content's digest.
    pub digest: String,
    /// Whether the registry offers it now.
    pub available: bool,
    /// Where its bundle is.
    pub href: String,
    /// The trusted key whose signature the registry verified, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    /// When the registry verified it (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_verified_at: Option<i64>,
}

/// `GET /v1/tasks/{name}/{version}`: a version's files, canonical, so that hashing them
/// gives `digest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleDocument {
    /// The task's name.
    pub name: String,
    /// The semver version.
    pub version: String,
    /// The content's digest.
    pub digest: String,
    /// Relative path → contents.
    pub files: BTreeMap<String, String>,
    /// The publisher's signature (`signature.minisig`), when the content came signed: not
    /// one of `files`, since it is not part of the digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

fn available() -> bool {
    true
}
