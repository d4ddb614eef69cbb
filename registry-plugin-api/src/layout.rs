//! Which folders are tasks and which files belong to one: the rules the built-in
//! filesystem source follows, for plugins that walk trees of their own (git, S3).
//! `docs/task-format.md` is the reference.

/// The file that makes a folder a task folder.
pub const METADATA: &str = "metadata.json";

/// Whether a walk skips a folder of this name: hidden folders and `node_modules`.
pub fn is_skipped_folder(name: &str) -> bool {
    name.starts_with('.') || name == "node_modules"
}

/// Whether `path` (relative to the task folder, `/`-separated) is one of the task's files.
/// The host ignores other files, so sending them only costs bytes.
pub fn is_task_file(path: &str) -> bool {
    match path {
        METADATA | "main.js" | "input.schema.json" | "output.schema.json" => true,
        _ => path
            .strip_prefix("tests/")
            .is_some_and(|rest| rest.ends_with(".json") && !rest.contains('/') && !rest.starts_with('.')),
    }
}
