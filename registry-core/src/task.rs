//! The task model, and how a [`Bundle`] becomes a [`TaskDefinition`] whatever its
//! [`Layout`] (see [`crate::layout`]).

use crate::digest::{Digest, canonical_json};
use crate::layout::{Layout, is_script_name, meta_yaml};
use crate::problem::Problem;
use crate::schema::{Compiled, compile_shared};
use crate::signature::{SIGNATURE_FILE, TaskSignature};
use crate::source::Bundle;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

pub const METADATA_FILE: &str = task_files::METADATA;
pub const SCRIPT_FILE: &str = task_files::SCRIPT;
pub const INPUT_SCHEMA_FILE: &str = task_files::INPUT_SCHEMA;
pub const OUTPUT_SCHEMA_FILE: &str = task_files::OUTPUT_SCHEMA;

/// The file names of the task layouts, relative to a task folder.
pub mod task_files {
    pub const METADATA: &str = "metadata.json";
    pub const SCRIPT: &str = "main.js";
    pub const INPUT_SCHEMA: &str = "input.schema.json";
    pub const OUTPUT_SCHEMA: &str = "output.schema.json";
    /// Test cases are `tests/*.json`.
    pub const TESTS_DIR: &str = "tests";
    /// The `meta.yaml` layout's document.
    pub const META_YAML: &str = "meta.yaml";
    /// The `meta.yaml` layout's script when `entrypoint` does not name one.
    pub const DEFAULT_ENTRYPOINT: &str = "task.js";
}

/// Namespace of the UUIDv5 given to a task whose metadata has no `uuid`: the same name
/// always gets the same UUID, on every machine.
pub const TASK_UUID_NAMESPACE: Uuid = Uuid::from_u128(0x7a5c_2f1e_9b3d_4c8a_a6e0_5d4f_3b2a_1c0e);

/// Whether `path` (relative to a task folder, `/`-separated) can be part of a task of any
/// layout. Sources read only these files, and only a layout's own files count towards the
/// digest, so an editor's backup file or a README next to the task changes nothing.
/// Scripts directly in the folder are read because `meta.yaml` may name any of them, and
/// the task's signature ([`SIGNATURE_FILE`]) because the host checks it (it is not part of
/// the digest either).
pub fn is_task_file(path: &str) -> bool {
    match path {
        METADATA_FILE
        | SCRIPT_FILE
        | INPUT_SCHEMA_FILE
        | OUTPUT_SCHEMA_FILE
        | task_files::META_YAML
        | SIGNATURE_FILE => true,
        _ if !path.contains('/') => is_script_name(path),
        _ => path
            .strip_prefix("tests/")
            .is_some_and(|rest| rest.ends_with(".json") && !rest.contains('/') && !rest.starts_with('.')),
    }
}

/// Whether `path` is one of the files of a `metadata.json`-layout task.
fn is_metadata_json_file(path: &str) -> bool {
    match path {
        METADATA_FILE | SCRIPT_FILE | INPUT_SCHEMA_FILE | OUTPUT_SCHEMA_FILE => true,
        _ => path.starts_with("tests/") && is_task_file(path),
    }
}

/// One file of a task as stored: JSON canonicalised; `meta.yaml` and scripts as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFile {
    pub path: String,
    pub contents: String,
}

/// A parsed, accepted task: what the store keeps. JSON documents are held as canonical
/// text, not as `serde_json::Value`, because a catalogue of thousands of tasks is held in
/// memory during a sync and a `Value` costs several times its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDefinition {
    pub name: String,
    pub version: semver::Version,
    pub uuid: Uuid,
    pub digest: Digest,
    /// `updated_at` from the metadata, as written.
    pub updated_at: Option<String>,
    /// How the author laid the task out.
    pub layout: Layout,
    /// Every task file as published, sorted by path: enough to rebuild the task with the
    /// same digest.
    pub files: Vec<TaskFile>,
    /// The catalogue's layout-independent views of a task whose files are not already
    /// them (`meta.yaml`): its metadata, schemas and test cases as JSON.
    views: Option<Arc<CatalogueViews>>,
    /// The task's signature as the source's trust policy judged it (set by the host after
    /// the checks; `None`: unsigned, or signatures are off). Not part of the digest.
    pub signature: Option<Arc<TaskSignature>>,
}

/// What the catalogue stores of a task beside its files, when the layout does not hold it
/// as separate JSON files.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CatalogueViews {
    metadata: String,
    script_path: String,
    input_schema: Option<String>,
    output_schema: Option<String>,
    /// `(JSON pointer into the document, canonical case)`.
    tests: Vec<(String, String)>,
}

impl TaskDefinition {
    pub fn file(&self, path: &str) -> Option<&str> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| self.files[i].contents.as_str())
    }

    /// The metadata as canonical JSON (for `meta.yaml`, its document without the schemas
    /// and test cases, which have columns of their own).
    pub fn metadata_json(&self) -> &str {
        match &self.views {
            Some(views) => &views.metadata,
            None => self.file(METADATA_FILE).unwrap_or("{}"),
        }
    }

    /// The script's file name (`main.js`, or the `meta.yaml` entrypoint).
    pub fn script_path(&self) -> &str {
        self.views.as_ref().map_or(SCRIPT_FILE, |v| v.script_path.as_str())
    }

    pub fn script(&self) -> &str {
        self.file(self.script_path()).unwrap_or("")
    }

    /// The input schema as canonical JSON, when the task has one.
    pub fn input_schema(&self) -> Option<&str> {
        match &self.views {
            Some(views) => views.input_schema.as_deref(),
            None => self.file(INPUT_SCHEMA_FILE),
        }
    }

    /// The same task without its contents (files and catalogue views): its name, version,
    /// UUID, digest, `updated_at` and layout. A run that loads many tasks keeps the ones
    /// beyond its memory budget this way once their contents are staged in the database.
    pub fn without_contents(&self) -> TaskDefinition {
        TaskDefinition {
            name: self.name.clone(),
            version: self.version.clone(),
            uuid: self.uuid,
            digest: self.digest,
            updated_at: self.updated_at.clone(),
            layout: self.layout,
            files: Vec::new(),
            views: None,
            signature: self.signature.clone(),
        }
    }

    /// Whether the task holds its files (a parsed task always has some; see
    /// [`without_contents`](Self::without_contents)).
    pub fn holds_contents(&self) -> bool {
        !self.files.is_empty()
    }

    /// Roughly the bytes of text the task holds: its files and catalogue views.
    pub fn contents_len(&self) -> usize {
        let files: usize = self.files.iter().map(|f| f.path.len() + f.contents.len()).sum();
        let views = self.views.as_ref().map_or(0, |v| {
            v.metadata.len()
                + v.input_schema.as_ref().map_or(0, String::len)
                + v.output_schema.as_ref().map_or(0, String::len)
                + v.tests
                    .iter()
                    .map(|(pointer, case)| pointer.len() + case.len())
                    .sum::<usize>()
        });
        files + views
    }

    /// The output schema as canonical JSON, when the task has one.
    pub fn output_schema(&self) -> Option<&str> {
        match &self.views {
            Some(views) => views.output_schema.as_deref(),
            None => self.file(OUTPUT_SCHEMA_FILE),
        }
    }

    /// The test cases as a JSON array of `{"file": …, "case": …}` (inline cases also carry
    /// the `pointer` to them), in file order.
    pub fn tests_json(&self) -> String {
        let mut out = String::from("[");
        let mut push = |i: usize, file: &str, pointer: Option<&str>, case: &str| {
            if i > 0 {
                out.push(',');
            }
            out.push_str(r#"{"case":"#);
            out.push_str(case);
            out.push_str(r#","file":"#);
            out.push_str(&Value::String(file.to_owned()).to_string());
            if let Some(pointer) = pointer {
                out.push_str(r#","pointer":"#);
                out.push_str(&Value::String(pointer.to_owned()).to_string());
            }
            out.push('}');
        };
        match &self.views {
            Some(views) => {
                for (i, (pointer, case)) in views.tests.iter().enumerate() {
                    push(i, self.layout.marker(), Some(pointer), case);
                }
            }
            None => {
                for (i, file) in self.test_files().enumerate() {
                    push(i, &file.path, None, &file.contents);
                }
            }
        }
        out.push(']');
        out
    }

    pub fn test_files(&self) -> impl Iterator<Item = &TaskFile> {
        self.files.iter().filter(|f| f.path.starts_with("tests/"))
    }

    /// The files as published, as a JSON object (path → contents), for layouts whose files
    /// are not the catalogue's columns; `None` for `metadata.json` tasks, which the columns
    /// rebuild ([`files_from_stored`]).
    pub fn published_files_json(&self) -> Option<String> {
        if self.layout == Layout::MetadataJson {
            return None;
        }
        let files: BTreeMap<&str, &str> = self
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.contents.as_str()))
            .collect();
        serde_json::to_string(&files).ok()
    }
}

/// A task's files from the form the catalogue stores them in (`metadata_json`, the
/// script, the schemas and [`TaskDefinition::tests_json`]): the inverse of that encoding,
/// so the files hash to the stored digest again.
pub fn files_from_stored(
    metadata: &str,
    script: &str,
    input_schema: Option<&str>,
    output_schema: Option<&str>,
    tests_json: &str,
) -> Result<BTreeMap<String, String>, String> {
    let mut files = BTreeMap::new();
    files.insert(METADATA_FILE.to_owned(), metadata.to_owned());
    files.insert(SCRIPT_FILE.to_owned(), script.to_owned());
    if let Some(schema) = input_schema {
        files.insert(INPUT_SCHEMA_FILE.to_owned(), schema.to_owned());
    }
    if let Some(schema) = output_schema {
        files.insert(OUTPUT_SCHEMA_FILE.to_owned(), schema.to_owned());
    }
    let tests: Vec<Value> = serde_json::from_str(tests_json).map_err(|e| format!("stored tests are not JSON: {e}"))?;
    for test in tests {
        let file = test["file"].as_str().ok_or("a stored test has no file")?.to_owned();
        files.insert(file, canonical_json(&test["case"]));
    }
    Ok(files)
}

/// One test case of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskTest {
    /// The file holding it (`tests/one.json`, or `meta.yaml` for inline cases).
    pub file: String,
    /// Where in that file: `""` for a file of its own, `/test_cases/0` inline.
    pub pointer: String,
    pub case: Value,
}

impl TaskTest {
    /// A problem about this case at `pointer` (relative to the case).
    pub fn problem_at(&self, problem: Problem, pointer: &str) -> Problem {
        problem
            .in_file(&self.file)
            .at_pointer(format!("{}{pointer}", self.pointer))
    }
}

/// A task as parsed, with its JSON documents as values for the checks to look at. Dropped
/// once checked; only [`TaskDefinition`] is kept.
#[derive(Debug, Clone)]
pub struct ParsedTask {
    pub task: TaskDefinition,
    /// The metadata document (for `meta.yaml`, the whole document).
    pub metadata: Value,
    pub input_schema: Option<Value>,
    pub output_schema: Option<Value>,
    pub tests: Vec<TaskTest>,
    /// True when the metadata has no `name` and the folder name was used (legacy format).
    pub legacy_name: bool,
    /// The `uuid` as written when it is not a UUID (the task then has the UUIDv5 of its
    /// name; the `uuid` rule reports it).
    pub uuid_not_a_uuid: Option<String>,
    /// Problems found while parsing that do not stop the task (all warnings).
    pub warnings: Vec<Problem>,
    /// The schemas compiled on first use, shared by every rule that needs them.
    compiled: [std::sync::OnceLock<Option<Compiled>>; 2],
}

impl ParsedTask {
    /// The input schema compiled (`None` when the task has none).
    pub fn input_validator(&self) -> Option<&Compiled> {
        self.compiled[0]
            .get_or_init(|| self.input_schema.as_ref().map(compile_shared))
            .as_ref()
    }

    /// The output schema compiled (`None` when the task has none).
    pub fn output_validator(&self) -> Option<&Compiled> {
        self.compiled[1]
            .get_or_init(|| self.output_schema.as_ref().map(compile_shared))
            .as_ref()
    }

    /// The file that holds the metadata (`metadata.json` or `meta.yaml`).
    pub fn metadata_file(&self) -> &'static str {
        self.task.layout.marker()
    }

    /// Where a spot of the input (or output) schema is written: the file, and `pointer`
    /// (into the schema) as a pointer into that file. For `meta.yaml` that is under
    /// `/input_schema`, or under `/inputs` for a schema built from the field map.
    pub fn schema_location(&self, output: bool, pointer: &str) -> (&'static str, String) {
        match self.task.layout {
            Layout::MetadataJson => {
                let file = if output { OUTPUT_SCHEMA_FILE } else { INPUT_SCHEMA_FILE };
                (file, pointer.to_owned())
            }
            Layout::MetaYaml => {
                let (inline, fields) = if output {
                    ("output_schema", "outputs")
                } else {
                    ("input_schema", "inputs")
                };
                let pointer = match self.metadata.get(inline) {
                    Some(v) if !v.is_null() => format!("/{inline}{pointer}"),
                    _ => format!("/{fields}{}", pointer.strip_prefix("/properties").unwrap_or(pointer)),
                };
                (task_files::META_YAML, pointer)
            }
        }
    }
}

/// Parses a bundle into a task, whatever its layout. Every problem found is reported at
/// once (not only the first), each naming its file; `Err` holds at least one error.
pub fn parse_bundle(bundle: &Bundle) -> Result<ParsedTask, Vec<Problem>> {
    let mut problems = Vec::new();
    let texts = decode_texts(bundle, &mut problems);
    let layout = Layout::detect(|name| bundle.files.contains_key(name));
    match layout {
        Some(Layout::MetadataJson) => {
            if bundle.files.contains_key(task_files::META_YAML) {
                problems.push(
                    Problem::warning(
                        "layout.ambiguous",
                        "the folder has both metadata.json and meta.yaml; metadata.json is read, meta.yaml ignored",
                    )
                    .in_file(task_files::META_YAML),
                );
            }
            parse_metadata_json(bundle, &texts, problems)
        }
        Some(Layout::MetaYaml) => meta_yaml::parse(&texts, problems),
        None => {
            problems.push(
                Problem::error("task.metadata_missing", "the task has no metadata.json (or meta.yaml)")
                    .in_file(METADATA_FILE),
            );
            if !bundle.files.contains_key(SCRIPT_FILE) {
                problems.push(Problem::error("task.script_missing", "the task has no main.js").in_file(SCRIPT_FILE));
            }
            Err(problems)
        }
    }
}

/// The task files of `bundle` as text; a file that is not UTF-8 or holds a NUL byte is a
/// problem of that file and left out.
fn decode_texts<'b>(bundle: &'b Bundle, problems: &mut Vec<Problem>) -> BTreeMap<&'b str, &'b str> {
    let mut texts = BTreeMap::new();
    for (path, bytes) in bundle.files.iter().filter(|(p, _)| is_task_file(p)) {
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                problems.push(
                    Problem::error(
                        "file.not_utf8",
                        format!("not UTF-8 text (invalid byte at offset {})", e.valid_up_to()),
                    )
                    .in_file(path),
                );
                continue;
            }
        };
        // A NUL byte is not text any database column can hold (PostgreSQL refuses it in
        // TEXT), and no task needs one: the task is refused the same way everywhere.
        if let Some(offset) = text.find('\0') {
            problems.push(
                Problem::error(
                    "file.nul_byte",
                    format!("contains a NUL byte (offset {offset}); task files are text"),
                )
                .in_file(path),
            );
            continue;
        }
        texts.insert(path.as_str(), text);
    }
    texts
}

fn parse_metadata_json(
    bundle: &Bundle,
    texts: &BTreeMap<&str, &str>,
    mut problems: Vec<Problem>,
) -> Result<ParsedTask, Vec<Problem>> {
    let mut files = Vec::new();
    let mut metadata = None;
    let mut input_schema = None;
    let mut output_schema = None;
    let mut tests = Vec::new();

    for (&path, &text) in texts.iter().filter(|(p, _)| is_metadata_json_file(p)) {
        if path == SCRIPT_FILE {
            files.push(TaskFile {
                path: path.to_owned(),
                contents: text.to_owned(),
            });
            continue;
        }
        // Editors on some platforms write a byte-order mark; it is not part of the JSON.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(e) => {
                problems.push(
                    Problem::error("json.invalid", format!("invalid JSON: {e}"))
                        .in_file(path)
                        .at_position(e.line() as u32, e.column() as u32),
                );
                continue;
            }
        };
        files.push(TaskFile {
            path: path.to_owned(),
            contents: canonical_json(&value),
        });
        match path {
            METADATA_FILE => metadata = Some(value),
            INPUT_SCHEMA_FILE => input_schema = Some(value),
            OUTPUT_SCHEMA_FILE => output_schema = Some(value),
            _ => tests.push(TaskTest {
                file: path.to_owned(),
                pointer: String::new(),
                case: value,
            }),
        }
    }

    if !bundle.files.contains_key(SCRIPT_FILE) {
        problems.push(Problem::error("task.script_missing", "the task has no main.js").in_file(SCRIPT_FILE));
    }

    let identity = metadata
        .as_ref()
        .map(|m| identity_from_metadata(m, METADATA_FILE, bundle.folder_name.as_deref(), &mut problems));
    let mut warnings: Vec<Problem> = Vec::new();
    match identity {
        Some(Some(identity)) if !problems.iter().any(Problem::is_error) => {
            if identity.legacy_name {
                warnings.push(
                    Problem::warning(
                        "metadata.legacy_format",
                        format!(
                            "metadata.json has no `name` (legacy format); using the folder name `{}`",
                            identity.name
                        ),
                    )
                    .in_file(METADATA_FILE),
                );
            }
            warnings.extend(problems);
            files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
            let digest = Digest::of_files(files.iter().map(|f| (f.path.as_str(), f.contents.as_bytes())));
            let metadata = metadata.unwrap_or(Value::Null);
            tests.sort_by(|a, b| a.file.cmp(&b.file));
            Ok(ParsedTask {
                task: TaskDefinition {
                    updated_at: updated_at(&metadata),
                    name: identity.name,
                    version: identity.version,
                    uuid: identity.uuid,
                    digest,
                    layout: Layout::MetadataJson,
                    files,
                    views: None,
                    signature: None,
                },
                metadata,
                input_schema,
                output_schema,
                tests,
                legacy_name: identity.legacy_name,
                uuid_not_a_uuid: identity.uuid_not_a_uuid,
                warnings,
                compiled: Default::default(),
            })
        }
        _ => Err(problems),
    }
}

fn updated_at(metadata: &Value) -> Option<String> {
    metadata.get("updated_at").and_then(Value::as_str).map(str::to_owned)
}

/// The parts a layout other than `metadata.json` hands to [`assemble`].
pub(crate) struct LayoutParts {
    pub layout: Layout,
    pub identity: Identity,
    pub metadata: Value,
    /// The metadata as the catalogue's `metadata` column holds it.
    pub metadata_view: Value,
    pub script_path: String,
    pub input_schema: Option<Value>,
    pub output_schema: Option<Value>,
    pub tests: Vec<TaskTest>,
    /// `(path, as published, canonical)` of every file of the task.
    pub files: Vec<(String, String, String)>,
    pub warnings: Vec<Problem>,
}

/// A task from the parts of a layout whose files are not the catalogue's columns.
pub(crate) fn assemble(parts: LayoutParts) -> ParsedTask {
    let mut files = parts.files;
    files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let digest = Digest::of_files(
        files
            .iter()
            .map(|(path, _, canonical)| (path.as_str(), canonical.as_bytes())),
    );
    let views = CatalogueViews {
        metadata: canonical_json(&parts.metadata_view),
        script_path: parts.script_path,
        input_schema: parts.input_schema.as_ref().map(canonical_json),
        output_schema: parts.output_schema.as_ref().map(canonical_json),
        tests: parts
            .tests
            .iter()
            .map(|t| (t.pointer.clone(), canonical_json(&t.case)))
            .collect(),
    };
    ParsedTask {
        task: TaskDefinition {
            updated_at: updated_at(&parts.metadata),
            name: parts.identity.name,
            version: parts.identity.version,
            uuid: parts.identity.uuid,
            digest,
            layout: parts.layout,
            files: files
                .into_iter()
                .map(|(path, contents, _)| TaskFile { path, contents })
                .collect(),
            views: Some(Arc::new(views)),
            signature: None,
        },
        metadata: parts.metadata,
        input_schema: parts.input_schema,
        output_schema: parts.output_schema,
        tests: parts.tests,
        legacy_name: parts.identity.legacy_name,
        uuid_not_a_uuid: parts.identity.uuid_not_a_uuid,
        warnings: parts.warnings,
        compiled: Default::default(),
    }
}

pub(crate) struct Identity {
    pub name: String,
    pub version: semver::Version,
    pub uuid: Uuid,
    pub legacy_name: bool,
    pub uuid_not_a_uuid: Option<String>,
}

/// A task version as the catalogue keys it. Build metadata does not make another version
/// (semver §10, as Cargo treats it): `1.0.0+a` and `1.0.0+b` are both `1.0.0`, and
/// different contents for it are a conflict; the metadata keeps what the author wrote.
pub fn parse_version(text: &str) -> Result<semver::Version, semver::Error> {
    let mut version = semver::Version::parse(text.trim())?;
    version.build = semver::BuildMetadata::EMPTY;
    Ok(version)
}

/// Name, version and UUID: what a task cannot be stored without. `file` is the document
/// they are read from; `folder_name` stands in for a missing name (the legacy format).
pub(crate) fn identity_from_metadata(
    metadata: &Value,
    file: &str,
    folder_name: Option<&str>,
    problems: &mut Vec<Problem>,
) -> Option<Identity> {
    let at =
        |code: &str, pointer: &str, message: String| Problem::error(code, message).in_file(file).at_pointer(pointer);
    let Some(object) = metadata.as_object() else {
        problems.push(at(
            "metadata.not_object",
            "",
            format!("{file} must hold an object (a mapping of fields)"),
        ));
        return None;
    };
    let (name, legacy_name) = match object.get("name") {
        // A name is an identity in every table and URL: control characters (a NUL that
        // PostgreSQL cannot store) are refused here, whatever rules are switched off.
        Some(Value::String(name)) if name.contains(char::is_control) => {
            problems.push(at(
                "metadata.name_invalid",
                "/name",
                format!("`name` {name:?} contains a control character"),
            ));
            (None, false)
        }
        Some(Value::String(name)) => (Some(name.clone()), false),
        Some(other) => {
            problems.push(at(
                "metadata.name_invalid",
                "/name",
                format!("`name` must be a string, found {other}"),
            ));
            (None, false)
        }
        None => match folder_name {
            Some(folder) => (Some(folder.to_owned()), true),
            None => {
                problems.push(at("metadata.name_missing", "/name", "`name` is missing".into()));
                (None, false)
            }
        },
    };
    let version = match object.get("version") {
        Some(Value::String(text)) => match parse_version(text) {
            Ok(version) => Some(version),
            Err(e) => {
                problems.push(at(
                    "metadata.version_not_semver",
                    "/version",
                    format!("version `{text}` is not semver: {e}"),
                ));
                None
            }
        },
        Some(other) => {
            problems.push(at(
                "metadata.version_not_semver",
                "/version",
                format!("`version` must be a semver string such as \"1.0.0\", found {other}"),
            ));
            None
        }
        None => {
            problems.push(at(
                "metadata.version_missing",
                "/version",
                "`version` is missing".into(),
            ));
            None
        }
    };
    // A `uuid` that is not one does not stop a task Ratchet runs: the task gets the
    // UUIDv5 of its name, and the `uuid` rule says so (an error only when configured).
    let derived = name
        .as_deref()
        .map(|n| Uuid::new_v5(&TASK_UUID_NAMESPACE, n.as_bytes()));
    let (uuid, uuid_not_a_uuid) = match object.get("uuid") {
        Some(Value::String(text)) => match Uuid::parse_str(text.trim()) {
            Ok(uuid) => (Some(uuid), None),
            Err(_) => (derived, Some(text.clone())),
        },
        Some(Value::Null) | None => (derived, None),
        Some(other) => (derived, Some(other.to_string())),
    };
    Some(Identity {
        name: name?,
        version: version?,
        uuid: uuid?,
        legacy_name,
        uuid_not_a_uuid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(files: &[(&str, &str)]) -> Bundle {
        let mut b = Bundle::from_files(files.iter().map(|(p, c)| (p.to_string(), c.as_bytes().to_vec())));
        b.folder_name = Some("legacy-folder".into());
        b
    }

    const SCRIPT: &str = "(function (input) { return input; })";

    #[test]
    fn digest_is_independent_of_json_formatting_and_key_order() {
        let a = parse_bundle(&bundle(&[
            ("metadata.json", r#"{"name":"t","version":"1.0.0","label":"T"}"#),
            ("main.js", SCRIPT),
            ("tests/one.json", r#"{"input":{"a":1},"expected_output":{"b":2}}"#),
        ]))
        .unwrap();
        let b = parse_bundle(&bundle(&[
            (
                "metadata.json",
                "\u{feff}{\n  \"label\": \"T\",\n  \"version\": \"1.0.0\",\n  \"name\": \"t\"\n}\n",
            ),
            ("main.js", SCRIPT),
            (
                "tests/one.json",
                "{ \"expected_output\": { \"b\": 2 }, \"input\": { \"a\": 1 } }",
            ),
        ]))
        .unwrap();
        assert_eq!(a.task.digest, b.task.digest);
        assert_eq!(a.task, b.task);
    }

    #[test]
    fn digest_changes_with_script_and_ignores_files_outside_the_format() {
        let base = [
            ("metadata.json", r#"{"name":"t","version":"1.0.0"}"#),
            ("main.js", SCRIPT),
        ];
        let a = parse_bundle(&bundle(&base)).unwrap();
        let mut with_readme = base.to_vec();
        with_readme.push(("README.md", "notes"));
        assert_eq!(parse_bundle(&bundle(&with_readme)).unwrap().task.digest, a.task.digest);
        let changed = parse_bundle(&bundle(&[base[0], ("main.js", "(function () { return 1; })")])).unwrap();
        assert_ne!(changed.task.digest, a.task.digest);
    }

    #[test]
    fn legacy_metadata_takes_the_folder_name_with_a_warning_and_a_stable_uuid() {
        let parsed = parse_bundle(&bundle(&[
            (
                "metadata.json",
                r#"{"version":"0.2.0","label":"Old","description":"old style"}"#,
            ),
            ("main.js", SCRIPT),
        ]))
        .unwrap();
        assert_eq!(parsed.task.name, "legacy-folder");
        assert!(parsed.legacy_name);
        assert_eq!(parsed.warnings.len(), 1);
        assert_eq!(parsed.warnings[0].code, "metadata.legacy_format");
        assert_eq!(parsed.task.uuid, Uuid::new_v5(&TASK_UUID_NAMESPACE, b"legacy-folder"));
        assert_eq!(parsed.task.uuid.get_version_num(), 5);
    }

    #[test]
    fn every_error_is_reported_with_its_file() {
        let problems = parse_bundle(&Bundle::from_files([
            ("metadata.json".to_string(), br#"{"name":"t","version":"one"}"#.to_vec()),
            ("main.js".to_string(), vec![0xff, 0xfe, b'x']),
            ("tests/bad.json".to_string(), b"{ nope".to_vec()),
        ]))
        .unwrap_err();
        let codes: Vec<(&str, Option<&str>)> = problems.iter().map(|p| (p.code.as_str(), p.file.as_deref())).collect();
        assert!(
            codes.contains(&("metadata.version_not_semver", Some("metadata.json"))),
            "{codes:?}"
        );
        assert!(codes.contains(&("file.not_utf8", Some("main.js"))), "{codes:?}");
        assert!(codes.contains(&("json.invalid", Some("tests/bad.json"))), "{codes:?}");
    }

    #[test]
    fn missing_script_and_missing_version_are_errors() {
        let problems = parse_bundle(&bundle(&[("metadata.json", r#"{"name":"t"}"#)])).unwrap_err();
        let codes: Vec<&str> = problems.iter().map(|p| p.code.as_str()).collect();
        assert_eq!(codes, ["task.script_missing", "metadata.version_missing"]);
    }

    #[test]
    fn versions_differing_only_in_build_metadata_are_one_version() {
        let version_of = |v: &str| {
            let metadata = format!(r#"{{"name":"t","version":"{v}"}}"#);
            parse_bundle(&bundle(&[("metadata.json", &metadata), ("main.js", SCRIPT)])).unwrap()
        };
        let (a, b, plain) = (
            version_of("1.0.0+build"),
            version_of("1.0.0+build2"),
            version_of("1.0.0"),
        );
        assert_eq!(a.task.version.to_string(), "1.0.0");
        assert_eq!(a.task.version, b.task.version);
        assert_eq!(a.task.version, plain.task.version);
        // The metadata keeps what the author wrote, so the contents differ: a conflict.
        assert_ne!(a.task.digest, b.task.digest);
        assert_eq!(version_of("1.0.0-alpha+x").task.version.to_string(), "1.0.0-alpha");
    }

    #[test]
    fn a_nul_byte_in_any_task_file_is_a_problem_of_that_file() {
        let problems = parse_bundle(&bundle(&[
            ("metadata.json", r#"{"name":"t","version":"1.0.0"}"#),
            ("main.js", "(function () { return '\0'; })\0"),
            // An escaped NUL in JSON is a character of a value, stored escaped: no problem.
            ("tests/a.json", r#"{"input":"\u0000","expected_output":1}"#),
        ]))
        .unwrap_err();
        let found: Vec<(&str, Option<&str>)> = problems.iter().map(|p| (p.code.as_str(), p.file.as_deref())).collect();
        assert_eq!(found, [("file.nul_byte", Some("main.js"))]);
    }

    #[test]
    fn task_files_are_the_format_files_only() {
        for yes in [
            "metadata.json",
            "main.js",
            "input.schema.json",
            "output.schema.json",
            "tests/a.json",
        ] {
            assert!(is_task_file(yes), "{yes}");
        }
        for no in [
            "README.md",
            "tests/a.txt",
            "tests/sub/a.json",
            "tests/.hidden.json",
            "lib/util.js",
        ] {
            assert!(!is_task_file(no), "{no}");
        }
    }

    #[test]
    fn tests_json_lists_cases_with_their_files() {
        let parsed = parse_bundle(&bundle(&[
            ("metadata.json", r#"{"name":"t","version":"1.0.0"}"#),
            ("main.js", SCRIPT),
            ("tests/b.json", r#"{"input":2,"expected_output":2}"#),
            ("tests/a.json", r#"{"input":1,"expected_output":1}"#),
        ]))
        .unwrap();
        let tests: Value = serde_json::from_str(&parsed.task.tests_json()).unwrap();
        assert_eq!(tests[0]["file"], "tests/a.json");
        assert_eq!(tests[1]["case"]["input"], 2);
    }
}
