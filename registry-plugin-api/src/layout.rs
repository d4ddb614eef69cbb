//! Which folders are tasks and which files belong to one: the rules the built-in
//! filesystem source follows, for plugins that walk trees of their own (git, S3).
//! `docs/task-format.md` is the reference.

/// The file that makes a folder a task folder of the `metadata.json` layout.
pub const METADATA: &str = "metadata.json";

/// The file that makes a folder a task folder of the `meta.yaml` layout.
pub const META_YAML: &str = "meta.yaml";

/// Whether a file of this name makes its folder a task folder (either layout).
pub fn is_task_marker(name: &str) -> bool {
    name == METADATA || name == META_YAML
}

/// Files that suggest a task in a folder without a marker: the host reports such a folder
/// (`layout.unrecognized`) instead of passing over it; a plugin can do the same with
/// [`task_like_files`].
pub const TASK_LIKE_FILES: [&str; 7] = [
    "main.js",
    "task.js",
    "task.json",
    "meta.yml",
    "metadata.yaml",
    "input.schema.json",
    "output.schema.json",
];

/// The message of `layout.unrecognized` for a folder holding `found` and no marker, as the
/// host words it.
pub fn unrecognized_message(found: &[&str]) -> String {
    format!(
        "looks like a task ({} found) but has neither metadata.json nor meta.yaml, so it cannot be read as one",
        found.join(", ")
    )
}

/// The task-like files among a folder's file names.
pub fn task_like_files<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    names.into_iter().filter(|n| TASK_LIKE_FILES.contains(n)).collect()
}

/// Whether a walk skips a folder of this name: hidden folders and `node_modules`.
pub fn is_skipped_folder(name: &str) -> bool {
    name.starts_with('.') || name == "node_modules"
}

/// The task's minisign signature, which the host verifies (not part of the digest).
pub const SIGNATURE: &str = "signature.minisig";

/// Whether `path` (relative to the task folder, `/`-separated) is one of the task's files.
/// The host ignores other files, so sending them only costs bytes.
/// Scripts directly in the folder are task files because `meta.yaml` may name any of them;
/// the signature ([`SIGNATURE`]) is sent so that the host can check who published the task.
pub fn is_task_file(path: &str) -> bool {
    match path {
        METADATA | META_YAML | SIGNATURE | "main.js" | "input.schema.json" | "output.schema.json" => true,
        _ if !path.contains('/') => {
            !path.starts_with('.')
                && [".js", ".mjs", ".cjs"]
                    .iter()
                    .any(|ext| path.len() > ext.len() && path.ends_with(ext))
        }
        _ => path
            .strip_prefix("tests/")
            .is_some_and(|rest| rest.ends_with(".json") && !rest.contains('/') && !rest.starts_with('.')),
    }
}
