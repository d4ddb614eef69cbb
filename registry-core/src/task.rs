//! The Ratchet task format and how a [`Bundle`] becomes a [`TaskDefinition`].
//!
//! ```text
//! addition/
//! ├── metadata.json        name, uuid, version, label, description, … (every field kept)
//! ├── main.js              the task: a function expression, or a script defining `main`
//! ├── input.schema.json    JSON Schema of the input (optional)
//! ├── output.schema.json   JSON Schema of the output (optional)
//! └── tests/
//!     └── *.json           {"input": …, "expected_output": …, "mock": …}
//! ```

use crate::digest::{Digest, canonical_json};
use crate::problem::Problem;
use crate::schema::{Compiled, compile};
use crate::source::Bundle;
use serde_json::Value;
use uuid::Uuid;

pub const METADATA_FILE: &str = task_files::METADATA;
pub const SCRIPT_FILE: &str = task_files::SCRIPT;
pub const INPUT_SCHEMA_FILE: &str = task_files::INPUT_SCHEMA;
pub const OUTPUT_SCHEMA_FILE: &str = task_files::OUTPUT_SCHEMA;

/// The file names of the task format, relative to a task folder.
pub mod task_files {
    pub const METADATA: &str = "metadata.json";
    pub const SCRIPT: &str = "main.js";
    pub const INPUT_SCHEMA: &str = "input.schema.json";
    pub const OUTPUT_SCHEMA: &str = "output.schema.json";
    /// Test cases are `tests/*.json`.
    pub const TESTS_DIR: &str = "tests";
}

/// Namespace of the UUIDv5 given to a task whose metadata has no `uuid`: the same name
/// always gets the same UUID, on every machine.
pub const TASK_UUID_NAMESPACE: Uuid = Uuid::from_u128(0x7a5c_2f1e_9b3d_4c8a_a6e0_5d4f_3b2a_1c0e);

/// Whether `path` (relative to a task folder, `/`-separated) is part of a task. Sources read
/// only these files, and only these count towards the digest, so an editor's backup file or
/// a README next to the task changes nothing.
pub fn is_task_file(path: &str) -> bool {
    match path {
        METADATA_FILE | SCRIPT_FILE | INPUT_SCHEMA_FILE | OUTPUT_SCHEMA_FILE => true,
        _ => path
            .strip_prefix("tests/")
            .is_some_and(|rest| rest.ends_with(".json") && !rest.contains('/') && !rest.starts_with('.')),
    }
}

/// One file of a task in canonical form: JSON canonicalised, `main.js` as written.
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
    /// Every task file, sorted by path. Enough to rebuild the task with the same digest.
    pub files: Vec<TaskFile>,
}

impl TaskDefinition {
    pub fn file(&self, path: &str) -> Option<&str> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| self.files[i].contents.as_str())
    }

    pub fn metadata_json(&self) -> &str {
        self.file(METADATA_FILE).unwrap_or("{}")
    }

    pub fn script(&self) -> &str {
        self.file(SCRIPT_FILE).unwrap_or("")
    }

    /// The test cases as a JSON array of `{"file": …, "case": …}`, sorted by file.
    pub fn tests_json(&self) -> String {
        let mut out = String::from("[");
        for (i, file) in self.test_files().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(r#"{"case":"#);
            out.push_str(&file.contents);
            out.push_str(r#","file":"#);
            out.push_str(&Value::String(file.path.clone()).to_string());
            out.push('}');
        }
        out.push(']');
        out
    }

    pub fn test_files(&self) -> impl Iterator<Item = &TaskFile> {
        self.files.iter().filter(|f| f.path.starts_with("tests/"))
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
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut files = std::collections::BTreeMap::new();
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
    pub file: String,
    pub case: Value,
}

/// A task as parsed, with its JSON documents as values for the checks to look at. Dropped
/// once checked; only [`TaskDefinition`] is kept.
#[derive(Debug, Clone)]
pub struct ParsedTask {
    pub task: TaskDefinition,
    pub metadata: Value,
    pub input_schema: Option<Value>,
    pub output_schema: Option<Value>,
    pub tests: Vec<TaskTest>,
    /// True when the metadata has no `name` and the folder name was used (legacy format).
    pub legacy_name: bool,
    /// Problems found while parsing that do not stop the task (all warnings).
    pub warnings: Vec<Problem>,
    /// The schemas compiled on first use, shared by every rule that needs them.
    compiled: [std::sync::OnceLock<Option<Compiled>>; 2],
}

impl ParsedTask {
    /// The input schema compiled (`None` when the task has none).
    pub fn input_validator(&self) -> Option<&Compiled> {
        self.compiled[0]
            .get_or_init(|| self.input_schema.as_ref().map(compile))
            .as_ref()
    }

    /// The output schema compiled (`None` when the task has none).
    pub fn output_validator(&self) -> Option<&Compiled> {
        self.compiled[1]
            .get_or_init(|| self.output_schema.as_ref().map(compile))
            .as_ref()
    }
}

/// Parses a bundle into a task. Every problem found is reported at once (not only the
/// first), each naming its file; `Err` holds at least one error.
pub fn parse_bundle(bundle: &Bundle) -> Result<ParsedTask, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    let mut metadata = None;
    let mut input_schema = None;
    let mut output_schema = None;
    let mut tests = Vec::new();

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
        if path == SCRIPT_FILE {
            files.push(TaskFile {
                path: path.clone(),
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
            path: path.clone(),
            contents: canonical_json(&value),
        });
        match path.as_str() {
            METADATA_FILE => metadata = Some(value),
            INPUT_SCHEMA_FILE => input_schema = Some(value),
            OUTPUT_SCHEMA_FILE => output_schema = Some(value),
            _ => tests.push(TaskTest {
                file: path.clone(),
                case: value,
            }),
        }
    }

    if !bundle.files.contains_key(METADATA_FILE) {
        problems.push(Problem::error("task.metadata_missing", "the task has no metadata.json").in_file(METADATA_FILE));
    }
    if !bundle.files.contains_key(SCRIPT_FILE) {
        problems.push(Problem::error("task.script_missing", "the task has no main.js").in_file(SCRIPT_FILE));
    }

    let identity = metadata
        .as_ref()
        .map(|m| identity_from_metadata(m, bundle.folder_name.as_deref(), &mut problems));
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
            let updated_at = metadata.get("updated_at").and_then(Value::as_str).map(str::to_owned);
            tests.sort_by(|a, b| a.file.cmp(&b.file));
            Ok(ParsedTask {
                task: TaskDefinition {
                    name: identity.name,
                    version: identity.version,
                    uuid: identity.uuid,
                    digest,
                    updated_at,
                    files,
                },
                metadata,
                input_schema,
                output_schema,
                tests,
                legacy_name: identity.legacy_name,
                warnings,
                compiled: Default::default(),
            })
        }
        _ => Err(problems),
    }
}

struct Identity {
    name: String,
    version: semver::Version,
    uuid: Uuid,
    legacy_name: bool,
}

/// A task version as the catalogue keys it. Build metadata does not make another version
/// (semver §10, as Cargo treats it): `1.0.0+a` and `1.0.0+b` are both `1.0.0`, and
/// different contents for it are a conflict; the metadata keeps what the author wrote.
pub fn parse_version(text: &str) -> Result<semver::Version, semver::Error> {
    let mut version = semver::Version::parse(text.trim())?;
    version.build = semver::BuildMetadata::EMPTY;
    Ok(version)
}

/// Name, version and UUID: what a task cannot be stored without.
fn identity_from_metadata(
    metadata: &Value,
    folder_name: Option<&str>,
    problems: &mut Vec<Problem>,
) -> Option<Identity> {
    let at = |code: &str, pointer: &str, message: String| {
        Problem::error(code, message).in_file(METADATA_FILE).at_pointer(pointer)
    };
    let Some(object) = metadata.as_object() else {
        problems.push(at(
            "metadata.not_object",
            "",
            "metadata.json must be a JSON object".into(),
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
                problems.push(at(
                    "metadata.name_missing",
                    "/name",
                    "`name` is missing and there is no folder name to use".into(),
                ));
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
                format!("`version` must be a semver string, found {other}"),
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
    let uuid = match object.get("uuid") {
        Some(Value::String(text)) => match Uuid::parse_str(text) {
            Ok(uuid) => Some(uuid),
            Err(e) => {
                problems.push(at(
                    "metadata.uuid_invalid",
                    "/uuid",
                    format!("`uuid` `{text}` is not a UUID: {e}"),
                ));
                None
            }
        },
        Some(other) => {
            problems.push(at(
                "metadata.uuid_invalid",
                "/uuid",
                format!("`uuid` must be a string, found {other}"),
            ));
            None
        }
        None => name
            .as_deref()
            .map(|n| Uuid::new_v5(&TASK_UUID_NAMESPACE, n.as_bytes())),
    };
    Some(Identity {
        name: name?,
        version: version?,
        uuid: uuid?,
        legacy_name,
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
