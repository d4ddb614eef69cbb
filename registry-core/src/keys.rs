//! The identities the catalogue is keyed by, as types: a task version, and the place a
//! source offers a task (which also keys that place's problems).

use std::fmt;

/// A task version: its name and its semver version as text (build metadata stripped).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct VersionKey {
    /// The task's name.
    pub name: String,
    /// The version, as `semver` writes it.
    pub version: String,
}

impl VersionKey {
    /// The key of `name@version`.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        VersionKey {
            name: name.into(),
            version: version.into(),
        }
    }

    /// Borrowed parts, for lookups that allocate nothing.
    pub fn parts(&self) -> (&str, &str) {
        (&self.name, &self.version)
    }
}

impl fmt::Display for VersionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// Where a source offers a task: the source's name and the task's locator in it. It keys
/// origins and problems; a problem of the source as a whole has an empty locator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OriginKey {
    /// The source's name.
    pub source: String,
    /// Where in the source (a folder, an archive entry, a URL path); empty for the source itself.
    pub locator: String,
}

impl OriginKey {
    /// The key of `locator` in `source`.
    pub fn new(source: impl Into<String>, locator: impl Into<String>) -> Self {
        OriginKey {
            source: source.into(),
            locator: locator.into(),
        }
    }

    /// The key of the source as a whole.
    pub fn source(source: impl Into<String>) -> Self {
        OriginKey::new(source, "")
    }

    /// Borrowed parts, for lookups that allocate nothing.
    pub fn parts(&self) -> (&str, &str) {
        (&self.source, &self.locator)
    }
}

impl fmt::Display for OriginKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.locator.is_empty() {
            f.write_str(&self.source)
        } else {
            write!(f, "{}:{}", self.source, self.locator)
        }
    }
}
