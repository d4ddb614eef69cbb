//! The `s3` source: tasks in an S3 bucket or any S3-compatible object store, read with
//! [`object_store`](https://docs.rs/object_store), built as a plugin library (`cdylib`)
//! that depends on `registry-plugin-api` only, exactly as an outside author's plugin would.
//!
//! ```toml
//! [[plugins]]
//! path = "target/release/libs3_source.so"
//!
//! [[sources]]
//! name = "published"
//! type = "s3"
//! bucket = "team-tasks"
//! prefix = "tasks"                          # optional
//! region = "eu-west-1"                      # default us-east-1
//! endpoint = "https://minio.example.com"    # optional: any S3-compatible service
//! access_key_id_file = "/run/secrets/s3-key-id"
//! secret_access_key_file = "/run/secrets/s3-secret"
//! ```
//!
//! Under the prefix, a task is a folder (`tasks/addition/metadata.json`, `main.js`, …, or
//! the `meta.yaml` layout) or a `.zip` object (a task at its root or one folder down, read
//! with the ZIP source's hardening). Folder markers (`key/`, size 0) are ignored; hidden
//! folders and `node_modules` are skipped; a folder of task-like files without a marker
//! is reported (`layout.unrecognized`).
//!
//! A scan is one listing of the prefix, pages followed. A task folder's fingerprint is
//! made of its task files' keys, sizes and ETags, so an unchanged rescan downloads
//! nothing. A load fetches the listed objects with `If-Match` on the listed ETags: an
//! object replaced between the listing and the load fails that load (retryable), so a
//! bundle never mixes old and new files. Archives are downloaded once per version into
//! the source's cache folder: their task folders are known without a download afterwards.
//!
//! Bad credentials, access denied and a missing bucket are configuration errors
//! ([`registry_plugin_api::CONFIG_ERROR_CODE`]); network errors, timeouts, 5xx and 429
//! are retryable and remove nothing.

mod archives;
mod bucket;
mod failure;
mod layout;
mod settings;

use archives::{ArchiveCache, ArchiveFailure};
use bucket::{Bucket, GETS_IN_FLIGHT};
use futures::{StreamExt as _, TryStreamExt as _};
use layout::{Listed, TaskObject};
use registry_plugin_api::archive::{CheckedArchive, ReadError};
use registry_plugin_api::{
    Bundle, Entry, Host, KindInfo, PluginError, PluginInfo, PluginSource, ReadLimits, Scan, ScanIssue, SourcePlugin,
    SourceRequest, export_source_plugin,
};
pub use settings::S3Settings;
use std::collections::HashMap;
use std::sync::Mutex;

pub struct S3Plugin;

impl SourcePlugin for S3Plugin {
    fn info() -> PluginInfo {
        let schema = serde_json::to_value(schemars::schema_for!(S3Settings)).unwrap_or(serde_json::Value::Bool(false));
        PluginInfo::new("s3", env!("CARGO_PKG_VERSION")).kind(
            KindInfo::new(
                "s3",
                "tasks in an S3 bucket or S3-compatible object store (`bucket`, optional `prefix`, `endpoint`)",
            )
            .schema(schema),
        )
    }

    fn open(request: SourceRequest, _host: Host) -> Result<Box<dyn PluginSource>, PluginError> {
        Ok(Box::new(S3Source::new(request)?))
    }
}

export_source_plugin!(S3Plugin);

/// What the latest scan saw: the loads read exactly that.
#[derive(Default)]
struct Scanned {
    folders: HashMap<String, Vec<TaskObject>>,
    /// Checked archives by their locator (the key relative to the prefix).
    archives: HashMap<String, CheckedArchive>,
}

/// One `s3` source.
pub struct S3Source {
    bucket: Bucket,
    archives: ArchiveCache,
    max_objects_per_task: usize,
    read_limits: ReadLimits,
    scanned: Mutex<Scanned>,
}

impl S3Source {
    /// Checks the settings and makes the client; no request is sent.
    pub fn new(request: SourceRequest) -> Result<S3Source, PluginError> {
        // reqwest is built without a TLS provider of its own; this library's copy of rustls
        // gets ring (process-wide within this library only, and only if none is set).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let resolved = S3Settings::resolve(request.config, &request.base_dir)?;
        let store = resolved.client()?;
        Ok(S3Source {
            archives: ArchiveCache::new(&request.cache_dir, resolved.settings.archive_limits),
            max_objects_per_task: resolved.max_objects_per_task(),
            read_limits: request.read_limits,
            scanned: Mutex::new(Scanned::default()),
            bucket: Bucket {
                store,
                page_size: resolved.page_size(),
                name: resolved.settings.bucket.clone(),
                prefix: resolved.prefix,
            },
        })
    }

    async fn scan_async(&self) -> Result<Scan, PluginError> {
        let grouped = layout::group(self.bucket.list().await?);
        let mut entries: Vec<Entry> = grouped
            .folders
            .iter()
            .map(|(locator, objects)| Entry {
                locator: locator.clone(),
                fingerprint: layout::folder_fingerprint(objects),
            })
            .collect();
        let mut issues = grouped.issues;
        let mut complete = true;
        let opened: Vec<(Listed, Result<CheckedArchive, ArchiveFailure>)> =
            futures::stream::iter(grouped.archives.iter().cloned())
                .map(|archive| async move {
                    let opened = self.archives.open(&self.bucket, &archive).await;
                    (archive, opened)
                })
                .buffer_unordered(GETS_IN_FLIGHT)
                .collect()
                .await;
        let mut checked = HashMap::new();
        for (archive, opened) in opened {
            match opened {
                Ok(contents) => {
                    let folders = contents.task_folders();
                    if folders.tasks.is_empty() {
                        let found = contents.task_like_files();
                        if !found.is_empty() {
                            let found: Vec<&str> = found.iter().map(String::as_str).collect();
                            issues.push(issue(
                                &archive.key,
                                "layout.unrecognized",
                                registry_plugin_api::layout::unrecognized_message(&found),
                                false,
                            ));
                        }
                    }
                    for folder in &folders.tasks {
                        entries.push(Entry {
                            locator: if folder.is_empty() {
                                archive.key.clone()
                            } else {
                                format!("{}/{folder}", archive.key)
                            },
                            fingerprint: layout::archive_fingerprint(&archive, folder),
                        });
                    }
                    for folder in folders.duplicates {
                        issues.push(issue(
                            &format!("{}/{folder}", archive.key),
                            "zip.duplicate_task",
                            format!(
                                "{} has a task at its root and another in `{folder}/`: the root copy is used",
                                archive.key
                            ),
                            false,
                        ));
                    }
                    checked.insert(archive.key.clone(), contents);
                }
                Err(ArchiveFailure::Refused(refusal)) => {
                    complete = false;
                    issues.push(issue(&archive.key, refusal.code, refusal.message, true));
                }
                Err(ArchiveFailure::Unreadable(error)) => {
                    complete = false;
                    issues.push(issue(&archive.key, "source.unreadable", error.to_string(), true));
                }
            }
        }
        if complete {
            self.archives.keep_only(&grouped.archives);
        }
        entries.sort_by(|a, b| a.locator.cmp(&b.locator));
        *self.scanned.lock().unwrap_or_else(|e| e.into_inner()) = Scanned {
            folders: grouped.folders.into_iter().collect(),
            archives: checked,
        };
        Ok(Scan {
            entries,
            complete,
            issues,
        })
    }

    async fn load_folder(&self, locator: &str, objects: Vec<TaskObject>) -> Result<Bundle, PluginError> {
        if objects.len() > self.max_objects_per_task {
            return Err(PluginError::new(
                "too_many_objects",
                format!(
                    "`{locator}` has {} task files; the cap is {} (`max_objects_per_task`)",
                    objects.len(),
                    self.max_objects_per_task
                ),
            ));
        }
        // Sizes as listed first: a task over the limits costs no download.
        let mut total = 0u64;
        for task_object in &objects {
            let size = task_object.object.size;
            if size > self.read_limits.max_file_bytes {
                return Err(PluginError::too_large(
                    &task_object.relative,
                    size,
                    self.read_limits.max_file_bytes,
                ));
            }
            total += size;
            if total > self.read_limits.max_task_bytes {
                return Err(PluginError::too_large("", total, self.read_limits.max_task_bytes));
            }
        }
        let cap = self.read_limits.max_file_bytes;
        let files: Vec<(String, Vec<u8>)> = futures::stream::iter(objects.iter())
            .map(|task_object| async move {
                let bytes = self.bucket.get(&task_object.object, cap).await?;
                Ok::<_, PluginError>((task_object.relative.clone(), bytes))
            })
            .buffered(GETS_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(Bundle {
            files,
            folder_name: Some(self.folder_name(locator)),
            modified: objects.iter().map(|o| o.object.modified).max(),
        })
    }

    fn load_archived(&self, locator: &str, archive_key: &str, archive: &CheckedArchive) -> Result<Bundle, PluginError> {
        let folder = locator
            .strip_prefix(archive_key)
            .map(|rest| rest.trim_start_matches('/'))
            .unwrap_or_default();
        let files = archive.read_task(folder, self.read_limits).map_err(|e| match e {
            ReadError::TooLarge { file, size, cap } => PluginError::too_large(&file, size, cap),
            ReadError::Entry { file, reason } => {
                PluginError::new("zip.corrupt", format!("{archive_key}: `{file}`: {reason}"))
            }
        })?;
        let folder_name = if folder.is_empty() {
            let name = archive_key.rsplit('/').next().unwrap_or(archive_key);
            name.get(..name.len().saturating_sub(4)).unwrap_or(name).to_owned()
        } else {
            folder.to_owned()
        };
        Ok(Bundle {
            files,
            folder_name: Some(folder_name),
            modified: None,
        })
    }

    /// The task folder's own name: the last part of its locator; for a task at the prefix
    /// itself, the prefix's last part or the bucket's name.
    fn folder_name(&self, locator: &str) -> String {
        match locator {
            "." => self
                .bucket
                .prefix
                .rsplit('/')
                .next()
                .filter(|p| !p.is_empty())
                .unwrap_or(&self.bucket.name)
                .to_owned(),
            _ => locator.rsplit('/').next().unwrap_or(locator).to_owned(),
        }
    }
}

fn issue(locator: &str, code: &str, message: String, is_error: bool) -> ScanIssue {
    ScanIssue {
        locator: locator.to_owned(),
        code: code.to_owned(),
        message,
        is_error,
    }
}

impl PluginSource for S3Source {
    fn location(&self) -> String {
        self.bucket.shown()
    }

    fn scan(&self, host: &Host) -> Result<Scan, PluginError> {
        let scan = bucket::run(host, self.scan_async())?;
        host.debug(&format!("{} task(s) in {}", scan.entries.len(), self.location()));
        Ok(scan)
    }

    fn load(&self, locator: &str, host: &Host) -> Result<Bundle, PluginError> {
        enum Found {
            Folder(Vec<TaskObject>),
            Archived(String, CheckedArchive),
        }
        let found = {
            let scanned = self.scanned.lock().unwrap_or_else(|e| e.into_inner());
            match scanned.folders.get(locator) {
                Some(objects) => Some(Found::Folder(objects.clone())),
                None => scanned
                    .archives
                    .iter()
                    .find(|(key, _)| {
                        locator
                            .strip_prefix(key.as_str())
                            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                    })
                    .map(|(key, archive)| Found::Archived(key.clone(), archive.clone())),
            }
        };
        match found {
            Some(Found::Folder(objects)) => bucket::run(host, self.load_folder(locator, objects)),
            Some(Found::Archived(key, archive)) => self.load_archived(locator, &key, &archive),
            None => Err(PluginError::new(
                "not_found",
                format!("no task at `{locator}` in the latest scan"),
            )),
        }
    }
}
