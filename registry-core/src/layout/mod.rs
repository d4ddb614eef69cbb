//! The task layouts Ratchet has shipped, and what a folder must hold to be read as one.
//!
//! ```text
//! addition/                    metadata.json layout (legacy and full)
//! ├── metadata.json            name, uuid, version, label, description, …
//! ├── main.js
//! ├── input.schema.json        (optional)
//! ├── output.schema.json       (optional)
//! └── tests/*.json             {"input": …, "expected_output": …}
//!
//! addition/                    meta.yaml layout (Ratchet's current one)
//! ├── meta.yaml                name, version, description, runtime, entrypoint, inputs/outputs
//! │                            or input_schema/output_schema, test_cases, …
//! └── task.js                  the entrypoint (CommonJS `module.exports = { main }` or IIFE)
//! ```
//!
//! A folder is a task when it holds a layout's marker file (`metadata.json` or
//! `meta.yaml`); both present, `metadata.json` is read and the other reported. The digest
//! is over each file in canonical form ([`canonical_text`]): JSON and YAML documents as
//! canonical JSON, scripts byte for byte, so reformatting a document never changes it.

pub(crate) mod meta_yaml;
pub mod repository;

use crate::digest::{Digest, canonical_json};
use crate::task::task_files;
use serde_json::Value;
use std::borrow::Cow;

/// How a task's files are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// `metadata.json`, `main.js`, `*.schema.json`, `tests/*.json`.
    MetadataJson,
    /// `meta.yaml` and the script it names (`entrypoint`, default `task.js`).
    MetaYaml,
}

impl Layout {
    /// The layout of a folder holding files named as `has` says, by its marker file.
    pub fn detect(has: impl Fn(&str) -> bool) -> Option<Layout> {
        if has(task_files::METADATA) {
            Some(Layout::MetadataJson)
        } else if has(task_files::META_YAML) {
            Some(Layout::MetaYaml)
        } else {
            None
        }
    }

    /// The file that makes a folder a task of this layout.
    pub fn marker(self) -> &'static str {
        match self {
            Layout::MetadataJson => task_files::METADATA,
            Layout::MetaYaml => task_files::META_YAML,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Layout::MetadataJson => "metadata.json",
            Layout::MetaYaml => "meta.yaml",
        }
    }
}

/// Whether a file of this name makes its folder a task folder.
pub fn is_task_marker(name: &str) -> bool {
    name == task_files::METADATA || name == task_files::META_YAML
}

/// Whether `name` (a file directly in a task folder) can be a task's script: `*.js`,
/// `*.mjs` or `*.cjs`, not hidden.
pub fn is_script_name(name: &str) -> bool {
    !name.starts_with('.')
        && !name.contains('/')
        && [".js", ".mjs", ".cjs"]
            .iter()
            .any(|ext| name.len() > ext.len() && name.ends_with(ext))
}

/// Files that suggest a task in a folder that has no layout marker: reported as
/// `layout.unrecognized` rather than passed over in silence.
pub const TASK_LIKE_FILES: [&str; 7] = [
    "main.js",
    "task.js",
    "task.json",
    "meta.yml",
    "metadata.yaml",
    "input.schema.json",
    "output.schema.json",
];

/// What a folder without a marker file looks like: the task-like files it holds, if any.
pub fn task_like_files<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    names.into_iter().filter(|n| TASK_LIKE_FILES.contains(n)).collect()
}

/// The message of `layout.unrecognized` for a folder holding `found` and no marker.
pub fn unrecognized_message(found: &[&str]) -> String {
    format!(
        "looks like a task ({} found) but has neither metadata.json nor meta.yaml, so it cannot be read as one",
        found.join(", ")
    )
}

/// A task file in the form its digest is taken over: JSON documents canonical, `meta.yaml`
/// as canonical JSON of its YAML, anything else (scripts) as written.
pub fn canonical_text<'a>(path: &str, text: &'a str) -> Result<Cow<'a, str>, String> {
    if path == task_files::META_YAML {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let value = meta_yaml::parse_document(text).map_err(|e| format!("{path}: {}", e.message))?;
        return Ok(Cow::Owned(canonical_json(&value)));
    }
    if path.ends_with(".json") {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let value: Value = serde_json::from_str(text).map_err(|e| format!("{path}: invalid JSON: {e}"))?;
        return Ok(Cow::Owned(canonical_json(&value)));
    }
    Ok(Cow::Borrowed(text))
}

/// The digest of a task's files as published (a bundle served over HTTP, a stored
/// version's files): each in canonical form, so the same task hashes the same whichever
/// way its documents were formatted.
pub fn digest_of_published<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Digest, String> {
    let canonical = files
        .into_iter()
        .map(|(path, text)| canonical_text(path, text).map(|c| (path, c)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Digest::of_files(canonical.iter().map(|(p, c)| (*p, c.as_bytes()))))
}
