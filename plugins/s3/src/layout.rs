//! Which listed objects make which tasks: task folders (a `metadata.json` or `meta.yaml`
//! object and the task files beside it), `.zip` objects (task archives), and folders of
//! task-like objects with no marker (reported, never passed over). The rules are the
//! filesystem source's, applied to keys.

use registry_plugin_api::{ScanIssue, layout};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

/// One object of a listing, its key relative to the source's prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    /// Compared as an opaque string: a multipart upload's ETag is not an MD5.
    pub etag: Option<String>,
    pub modified: SystemTime,
}

/// One object of a task folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskObject {
    /// The path inside the task folder (`main.js`, `tests/one.json`).
    pub relative: String,
    pub object: Listed,
}

/// What a listing holds, grouped.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Grouped {
    /// Task folders by locator (`.` for the prefix itself), each with its task files.
    pub folders: BTreeMap<String, Vec<TaskObject>>,
    /// `.zip` objects outside task folders.
    pub archives: Vec<Listed>,
    pub issues: Vec<ScanIssue>,
}

/// Groups a listing. Folder markers (`key/`, which object_store lists without the slash
/// and with size 0) are no task file, so they fall out; hidden folders and
/// `node_modules` are skipped; a task folder inside another belongs to the outer one.
pub fn group(objects: Vec<Listed>) -> Grouped {
    let visible: Vec<Listed> = objects
        .into_iter()
        .filter(|o| !o.key.split('/').rev().skip(1).any(layout::is_skipped_folder))
        .collect();
    // Task folders: the parent of every marker, except one inside another task folder.
    // Lookups walk a key's ancestors, so grouping costs O(keys × depth), not
    // O(keys × tasks).
    let markers: HashSet<&str> = visible
        .iter()
        .map(|o| split_key(&o.key))
        .filter(|(_, name)| layout::is_task_marker(name))
        .map(|(folder, _)| folder)
        .collect();
    let task_folders: HashSet<&str> = markers
        .iter()
        .copied()
        .filter(|folder| !ancestors(folder).any(|outer| outer != *folder && markers.contains(outer)))
        .collect();
    let mut grouped = Grouped::default();
    let mut loose: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for object in &visible {
        let (folder, name) = split_key(&object.key);
        let owner = ancestors(folder).find(|candidate| task_folders.contains(candidate));
        match owner {
            Some(task) => {
                let relative = if task.is_empty() {
                    object.key.as_str()
                } else {
                    &object.key[task.len() + 1..]
                };
                if layout::is_task_file(relative) {
                    grouped.folders.entry(locator_of(task)).or_default().push(TaskObject {
                        relative: relative.to_owned(),
                        object: object.clone(),
                    });
                }
            }
            None if name.to_ascii_lowercase().ends_with(".zip") && !name.starts_with('.') => {
                grouped.archives.push(object.clone())
            }
            None => loose.entry(folder).or_default().push(name),
        }
    }
    for (folder, names) in loose {
        let found = layout::task_like_files(names);
        if !found.is_empty() {
            grouped.issues.push(ScanIssue {
                locator: locator_of(folder),
                code: "layout.unrecognized".to_owned(),
                message: layout::unrecognized_message(&found),
                is_error: false,
            });
        }
    }
    for objects in grouped.folders.values_mut() {
        objects.sort_by(|a, b| a.relative.cmp(&b.relative));
    }
    grouped
}

/// The fingerprint of a task folder: its task files' paths, sizes and ETags.
pub fn folder_fingerprint(objects: &[TaskObject]) -> String {
    let mut hasher = Sha256::new();
    for task_object in objects {
        hasher.update(task_object.relative.as_bytes());
        hasher.update([0]);
        stamp(&mut hasher, &task_object.object);
    }
    format!("s3:{}", hex::encode(&hasher.finalize()[..16]))
}

/// The fingerprint of the task in `folder` of an archive object.
pub fn archive_fingerprint(archive: &Listed, folder: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(archive.key.as_bytes());
    hasher.update([0]);
    stamp(&mut hasher, archive);
    hasher.update(folder.as_bytes());
    format!("s3:{}", hex::encode(&hasher.finalize()[..16]))
}

/// What identifies one version of an object: its size and ETag.
fn stamp(hasher: &mut Sha256, object: &Listed) {
    hasher.update(object.size.to_le_bytes());
    hasher.update(object.etag.as_deref().unwrap_or("").as_bytes());
    hasher.update([0]);
}

/// `(folder, name)` of a key; the folder of a top-level key is `""`.
fn split_key(key: &str) -> (&str, &str) {
    key.rsplit_once('/').unwrap_or(("", key))
}

/// `folder` and the folders above it, outermost first: `""`, `a`, `a/b` for `a/b`.
fn ancestors(folder: &str) -> impl Iterator<Item = &str> {
    let inner = (!folder.is_empty()).then(|| {
        folder
            .match_indices('/')
            .map(|(at, _)| &folder[..at])
            .chain(std::iter::once(folder))
    });
    std::iter::once("").chain(inner.into_iter().flatten())
}

/// The locator of a folder: its path, `.` for the prefix itself.
fn locator_of(folder: &str) -> String {
    if folder.is_empty() {
        ".".to_owned()
    } else {
        folder.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(key: &str, size: u64, etag: &str) -> Listed {
        Listed {
            key: key.to_owned(),
            size,
            etag: Some(etag.to_owned()),
            modified: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn keys_are_grouped_into_task_folders_archives_and_reported_folders() {
        let grouped = group(vec![
            listed("addition", 0, "marker"),
            listed("addition/metadata.json", 10, "a"),
            listed("addition/main.js", 20, "b"),
            listed("addition/tests/one.json", 5, "c"),
            listed("addition/notes.md", 5, "d"),
            listed("addition/inner/metadata.json", 5, "nested"),
            listed("legacy/weather/meta.yaml", 5, "e"),
            listed("legacy/weather/task.js", 5, "f"),
            listed("bundles/tasks.zip", 500, "g"),
            listed("addition.zip", 500, "h"),
            listed("drafts/main.js", 5, "i"),
            listed(".hidden/metadata.json", 5, "j"),
            listed("node_modules/x/metadata.json", 5, "k"),
            listed("README.md", 5, "l"),
        ]);
        let folders: Vec<(&str, Vec<&str>)> = grouped
            .folders
            .iter()
            .map(|(locator, objects)| (locator.as_str(), objects.iter().map(|o| o.relative.as_str()).collect()))
            .collect();
        assert_eq!(
            folders,
            [
                ("addition", vec!["main.js", "metadata.json", "tests/one.json"]),
                ("legacy/weather", vec!["meta.yaml", "task.js"]),
            ]
        );
        let archives: Vec<&str> = grouped.archives.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(archives, ["bundles/tasks.zip", "addition.zip"]);
        assert_eq!(grouped.issues.len(), 1, "{:?}", grouped.issues);
        assert_eq!(grouped.issues[0].locator, "drafts");
        assert_eq!(grouped.issues[0].code, "layout.unrecognized");
    }

    #[test]
    fn ancestors_run_from_the_prefix_down_to_the_folder() {
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), ["", "a", "a/b", "a/b/c"]);
        assert_eq!(ancestors("").collect::<Vec<_>>(), [""]);
    }

    #[test]
    fn a_task_at_the_prefix_itself_owns_every_key() {
        let grouped = group(vec![listed("metadata.json", 1, "a"), listed("main.js", 1, "b")]);
        assert_eq!(grouped.folders.keys().collect::<Vec<_>>(), ["."]);
        assert_eq!(grouped.folders["."].len(), 2);
    }

    #[test]
    fn a_fingerprint_changes_with_any_size_or_etag_and_with_nothing_else() {
        let task = |etag: &str, size: u64, modified: u64| {
            vec![TaskObject {
                relative: "main.js".into(),
                object: Listed {
                    modified: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(modified),
                    ..listed("t/main.js", size, etag)
                },
            }]
        };
        let base = folder_fingerprint(&task("\"abc\"", 10, 1));
        assert_eq!(
            base,
            folder_fingerprint(&task("\"abc\"", 10, 99)),
            "the date is not content"
        );
        assert_ne!(base, folder_fingerprint(&task("\"abd\"", 10, 1)));
        assert_ne!(base, folder_fingerprint(&task("\"abc\"", 11, 1)));
        // A multipart ETag is compared as it is.
        assert_ne!(base, folder_fingerprint(&task("\"abc-2\"", 10, 1)));
    }
}
