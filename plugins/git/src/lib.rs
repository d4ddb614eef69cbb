//! The `git` source: task folders in a git repository, read from git objects with
//! [`gix`](https://docs.rs/gix), built as a plugin library (`cdylib`) that depends on
//! `registry-plugin-api` only, exactly as an outside author's plugin would.
//!
//! ```toml
//! [[plugins]]
//! path = "target/release/libgit_source.so"
//!
//! [[sources]]
//! name = "team-tasks"
//! type = "git"
//! url = "https://git.example.com/team/tasks.git"   # or a local path, or file://
//! ref = "release"                                   # branch, tag or commit; default: the remote's HEAD
//! subdirectory = "tasks"                            # optional
//! token = "…"                                       # https only, optional; or token_file
//! ca_file = "company-ca.pem"                        # https only, optional: extra trusted roots
//! ```
//!
//! The repository is fetched into a bare clone in the source's cache folder (cloned the
//! first time, fetched afterwards; no working tree is checked out). A scan walks the tree
//! of the chosen commit below `subdirectory`; task folders are the ones the filesystem
//! source recognises (a folder with `metadata.json`; hidden folders and `node_modules`
//! skipped). The fingerprint of a task is the git tree id of its folder, so a commit that
//! does not touch a task loads nothing of it, and a load reads exactly the tree the scan
//! saw.
//!
//! Credentials are per source: `token` (or `token_file`) with an optional `username`
//! (default `x-access-token`) answer the server's authentication request for this source
//! only. Nothing is read from the process environment, the user's git configuration or
//! credential helpers, and nothing ever prompts.

use registry_plugin_api::{
    Bundle, Entry, Host, KindInfo, PluginError, PluginInfo, PluginSource, ReadLimits, Scan, ScanIssue, SourcePlugin,
    SourceRequest, export_source_plugin, layout, with_causes,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub struct GitPlugin;

impl SourcePlugin for GitPlugin {
    fn info() -> PluginInfo {
        PluginInfo::new("git", env!("CARGO_PKG_VERSION")).kind(
            KindInfo::new(
                "git",
                "task folders in a git repository (`url`, optional `ref` and `subdirectory`)",
            )
            .schema(serde_json::json!({
                "type": "object",
                "required": ["url"],
                "properties": {
                    "url": { "type": "string", "minLength": 1 },
                    "ref": { "type": "string", "minLength": 1 },
                    "subdirectory": { "type": "string" },
                    "username": { "type": "string" },
                    "token": { "type": "string" },
                    "token_file": { "type": "string" },
                    "ca_file": { "type": "string" }
                },
                "additionalProperties": false
            })),
        )
    }

    fn open(request: SourceRequest, _host: Host) -> Result<Box<dyn PluginSource>, PluginError> {
        Ok(Box::new(GitSource::new(request)?))
    }
}

export_source_plugin!(GitPlugin);

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GitConfig {
    url: String,
    #[serde(rename = "ref")]
    reference: Option<String>,
    subdirectory: Option<String>,
    username: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
}

/// One `git` source: a remote, a ref, a subdirectory and the bare clone that mirrors it.
pub struct GitSource {
    url: String,
    reference: Option<String>,
    subdirectory: String,
    credentials: Option<gix::sec::identity::Account>,
    /// Extra roots for https (`ca_file`), for servers with a private certificate authority.
    extra_roots: Vec<reqwest::Certificate>,
    clone_dir: PathBuf,
    repository: Mutex<Option<gix::ThreadSafeRepository>>,
    /// The tree id of every task of the latest scan, so that a load reads what was scanned.
    scanned: Mutex<HashMap<String, gix::ObjectId>>,
    /// What one load reads at most; blob sizes are checked from their headers first.
    read_limits: ReadLimits,
}

fn config_error(message: impl Into<String>) -> PluginError {
    PluginError::config(message)
}

fn git_error(code: &str, context: &str, error: impl std::fmt::Display) -> PluginError {
    PluginError::new(code, format!("{context}: {error}"))
}

impl GitSource {
    pub fn new(request: SourceRequest) -> Result<GitSource, PluginError> {
        let read_limits = request.read_limits;
        let config: GitConfig =
            serde_json::from_value(request.config).map_err(|e| config_error(format!("invalid settings: {e}")))?;
        let token = match (&config.token, &config.token_file) {
            (Some(_), Some(_)) => return Err(config_error("set `token` or `token_file`, not both")),
            (Some(token), None) => Some(token.clone()),
            (None, Some(file)) => {
                let file = request.base_dir.join(file);
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| config_error(format!("cannot read token_file {}: {e}", file.display())))?;
                Some(text.trim().to_string())
            }
            (None, None) => None,
        };
        let subdirectory = config
            .subdirectory
            .as_deref()
            .unwrap_or("")
            .split('/')
            .filter(|part| !part.is_empty() && *part != ".")
            .collect::<Vec<_>>()
            .join("/");
        if subdirectory.split('/').any(|part| part == "..") {
            return Err(config_error("`subdirectory` may not leave the repository (`..`)"));
        }
        let extra_roots = match &config.ca_file {
            Some(file) => {
                let file = request.base_dir.join(file);
                let pem = std::fs::read(&file)
                    .map_err(|e| config_error(format!("cannot read ca_file {}: {e}", file.display())))?;
                let roots = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| config_error(format!("ca_file {} is not PEM certificates: {e}", file.display())))?;
                if roots.is_empty() {
                    return Err(config_error(format!("ca_file {} holds no certificate", file.display())));
                }
                roots
            }
            None => Vec::new(),
        };
        // reqwest is built without a TLS provider of its own; this library's copy of rustls
        // gets ring (process-wide within this library only, and only if none is set).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(GitSource {
            url: resolve_url(&config.url, &request.base_dir),
            reference: config.reference,
            subdirectory,
            extra_roots,
            credentials: token.map(|password| gix::sec::identity::Account {
                username: config.username.unwrap_or_else(|| "x-access-token".into()),
                password,
                oauth_refresh_token: None,
            }),
            clone_dir: request.cache_dir.join("repository.git"),
            repository: Mutex::new(None),
            scanned: Mutex::new(HashMap::new()),
            read_limits,
        })
    }

    /// The bare clone, created on first use. Opened isolated: the user's git
    /// configuration and environment do not change what this source reads.
    fn repository(&self) -> Result<gix::Repository, PluginError> {
        let mut slot = self.repository.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(repository) = slot.as_ref() {
            return Ok(repository.to_thread_local());
        }
        let options = gix::open::Options::isolated();
        let repository = if self.clone_dir.join("HEAD").is_file() {
            gix::ThreadSafeRepository::open_opts(&self.clone_dir, options).map_err(|e| {
                git_error(
                    "cache",
                    &format!("cannot open the clone at {}", self.clone_dir.display()),
                    e,
                )
            })?
        } else {
            std::fs::create_dir_all(&self.clone_dir)
                .map_err(|e| git_error("cache", &format!("cannot create {}", self.clone_dir.display()), e))?;
            gix::ThreadSafeRepository::init_opts(
                &self.clone_dir,
                gix::create::Kind::Bare,
                gix::create::Options::default(),
                options,
            )
            .map_err(|e| {
                git_error(
                    "cache",
                    &format!("cannot create a clone at {}", self.clone_dir.display()),
                    e,
                )
            })?
        };
        *slot = Some(repository.clone());
        Ok(repository.to_thread_local())
    }

    /// Brings the clone up to date with the remote: every branch, every tag, and the
    /// remote's HEAD (its default branch).
    fn fetch(&self, repository: &gix::Repository, host: &Host) -> Result<(), PluginError> {
        let unreachable = |e: gix::Error| {
            git_error("fetch_failed", &format!("cannot fetch {}", self.url), with_causes(&e)).retryable()
        };
        let remote = repository
            .remote_at(self.url.as_str())
            .map_err(|e| config_error(format!("`url` {} is not a git URL: {e}", self.url)))?
            .with_refspecs(
                [
                    "+refs/heads/*:refs/remotes/origin/*",
                    "+refs/tags/*:refs/tags/*",
                    "+HEAD:refs/remotes/origin/HEAD",
                ],
                gix::remote::Direction::Fetch,
            )
            .map_err(|e| config_error(e.to_string()))?
            .with_fetch_tags(gix::remote::fetch::Tags::None);
        let credentials = self.credentials.clone();
        let connection = remote
            .connect(gix::remote::Direction::Fetch)
            .map_err(unreachable)?
            // Only this source's own credentials, and never a prompt.
            .with_credentials(move |action| match action {
                gix::credentials::helper::Action::Get(context) => {
                    Ok(credentials.clone().map(|identity| gix::credentials::protocol::Outcome {
                        identity,
                        next: context.into(),
                    }))
                }
                _ => Ok(None),
            });
        // gix watches an AtomicBool while it receives a pack; a helper thread raises it
        // when the host cancels the call (a timeout), so a long fetch stops early.
        let connection = if self.extra_roots.is_empty() {
            connection
        } else {
            connection.with_transport_options(Box::new(self.http_options(repository)?))
        };
        let interrupt = AtomicBool::new(false);
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    if host.is_cancelled() {
                        interrupt.store(true, Ordering::Relaxed);
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
            let fetched = connection
                .prepare_fetch(gix::progress::Discard, Default::default())
                .map_err(unreachable)
                .and_then(|prepared| {
                    prepared
                        .receive(gix::progress::Discard, &interrupt)
                        .map_err(unreachable)
                });
            done.store(true, Ordering::Relaxed);
            fetched.map(|_| ())
        })
    }

    /// HTTP options as the repository's configuration makes them, with this source's
    /// extra roots added to the client gix builds.
    fn http_options(
        &self,
        repository: &gix::Repository,
    ) -> Result<gix::protocol::transport::client::blocking_io::http::Options, PluginError> {
        use gix::protocol::transport::client::blocking_io::http;
        let mut options = repository
            .transport_options(self.url.as_str(), None)
            .map_err(|e| config_error(format!("`url` {}: {e}", self.url)))?
            .and_then(|o| o.downcast::<http::Options>().ok())
            .map(|o| *o)
            .unwrap_or_default();
        let roots = self.extra_roots.clone();
        let backend = http::reqwest::Options {
            configure_client: Some(Box::new(move |builder| Ok(builder.tls_certs_merge(roots.clone())))),
            configure_request: None,
        };
        options.backend = Some(std::sync::Arc::new(std::sync::Mutex::new(backend)));
        Ok(options)
    }

    /// The tree of the configured ref (the remote's HEAD when none is set) at
    /// `subdirectory`.
    fn root_tree<'r>(&self, repository: &'r gix::Repository) -> Result<gix::Tree<'r>, PluginError> {
        let candidates: Vec<String> = match &self.reference {
            None => vec!["refs/remotes/origin/HEAD".into()],
            Some(name) => vec![
                format!("refs/remotes/origin/{name}"),
                format!("refs/tags/{name}"),
                name.clone(),
            ],
        };
        let shown = self.reference.as_deref().unwrap_or("HEAD");
        let commit = candidates
            .iter()
            .find_map(|spec| repository.rev_parse_single(spec.as_str()).ok())
            .ok_or_else(|| {
                PluginError::new(
                    "ref_not_found",
                    format!("{} has no branch, tag or commit `{shown}`", self.url),
                )
            })?;
        let tree = commit
            .object()
            .and_then(|o| o.peel_to_commit())
            .and_then(|c| c.tree())
            .map_err(|e| git_error("ref_not_a_commit", &format!("`{shown}` of {}", self.url), e))?;
        if self.subdirectory.is_empty() {
            return Ok(tree);
        }
        let entry = tree
            .lookup_entry_by_path(&self.subdirectory)
            .map_err(|e| git_error("corrupt", "reading the tree", e))?
            .filter(|e| e.mode().is_tree())
            .ok_or_else(|| {
                PluginError::new(
                    "subdirectory_not_found",
                    format!("`{shown}` of {} has no folder `{}`", self.url, self.subdirectory),
                )
            })?;
        repository
            .find_tree(entry.object_id())
            .map_err(|e| git_error("corrupt", "reading the tree", e))
    }
}

impl PluginSource for GitSource {
    fn location(&self) -> String {
        let mut location = self.url.clone();
        if let Some(reference) = &self.reference {
            location.push_str(&format!(" @ {reference}"));
        }
        if !self.subdirectory.is_empty() {
            location.push_str(&format!(" / {}", self.subdirectory));
        }
        location
    }

    fn scan(&self, host: &Host) -> Result<Scan, PluginError> {
        let repository = self.repository()?;
        self.fetch(&repository, host)?;
        if host.is_cancelled() {
            return Err(host.cancelled_error());
        }
        let root = self.root_tree(&repository)?;
        let mut tasks = Vec::new();
        let mut issues = Vec::new();
        find_tasks(&repository, &root, "", &mut tasks, &mut issues, host)?;
        tasks.sort();
        host.debug(&format!("{} task folder(s) in {}", tasks.len(), self.location()));
        let entries = tasks
            .iter()
            .map(|(locator, tree)| Entry {
                locator: locator.clone(),
                fingerprint: format!("git:{tree}"),
            })
            .collect();
        *self.scanned.lock().unwrap_or_else(|e| e.into_inner()) = tasks.into_iter().collect();
        Ok(Scan {
            issues,
            ..Scan::complete(entries)
        })
    }

    fn load(&self, locator: &str, host: &Host) -> Result<Bundle, PluginError> {
        let tree_id = self
            .scanned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(locator)
            .copied()
            .ok_or_else(|| PluginError::new("not_found", format!("no task at `{locator}` in the latest scan")))?;
        let repository = self.repository()?;
        let read = |e: &dyn std::fmt::Display| git_error("corrupt", &format!("reading `{locator}`"), e);
        let tree = repository.find_tree(tree_id).map_err(|e| read(&e))?;
        let mut files = Vec::new();
        let mut total = 0u64;
        read_task_files(&repository, &tree, "", &mut files, &mut total, self.read_limits).map_err(|e| match e {
            Read::Git(e) => read(&e),
            Read::TooLarge(e) => e,
        })?;
        if host.is_cancelled() {
            return Err(host.cancelled_error());
        }
        let folder_name = match locator {
            "." => Path::new(&self.subdirectory)
                .file_name()
                .or_else(|| Path::new(self.url.trim_end_matches('/').trim_end_matches(".git")).file_name())
                .map(|n| n.to_string_lossy().into_owned()),
            _ => locator.rsplit('/').next().map(str::to_string),
        };
        Ok(Bundle {
            files,
            folder_name,
            modified: None,
        })
    }
}

/// A relative local path is relative to the config file's folder; URLs stay as they are.
fn resolve_url(url: &str, base_dir: &Path) -> String {
    if url.contains("://") || url.contains('@') {
        return url.to_string();
    }
    base_dir.join(url).to_string_lossy().into_owned()
}

/// Collects `(locator, tree id)` of every task folder below `tree`; `prefix` is the
/// locator of `tree` (empty for the root, whose own locator is `.`).
fn find_tasks(
    repository: &gix::Repository,
    tree: &gix::Tree<'_>,
    prefix: &str,
    tasks: &mut Vec<(String, gix::ObjectId)>,
    issues: &mut Vec<ScanIssue>,
    host: &Host,
) -> Result<(), PluginError> {
    let corrupt = |e: &dyn std::fmt::Display| git_error("corrupt", "reading the tree", e);
    let decoded = tree.decode().map_err(|e| corrupt(&e))?;
    let is_task = decoded
        .entries
        .iter()
        .any(|e| layout::is_task_marker(&e.filename.to_string()) && (e.mode.is_blob() || e.mode.is_link()));
    if is_task {
        let locator = if prefix.is_empty() {
            ".".to_string()
        } else {
            prefix.to_string()
        };
        tasks.push((locator, tree.id));
        return Ok(());
    }
    // Files that look like a task in a folder that is not one: said, never passed over.
    let names: Vec<String> = decoded
        .entries
        .iter()
        .filter(|e| !e.mode.is_tree())
        .map(|e| e.filename.to_string())
        .collect();
    let task_like = layout::task_like_files(names.iter().map(String::as_str));
    if !task_like.is_empty() {
        issues.push(ScanIssue {
            locator: if prefix.is_empty() {
                ".".to_owned()
            } else {
                prefix.to_owned()
            },
            code: "layout.unrecognized".to_owned(),
            message: layout::unrecognized_message(&task_like),
            is_error: false,
        });
    }
    let folders: Vec<(String, gix::ObjectId)> = decoded
        .entries
        .iter()
        .filter(|e| e.mode.is_tree())
        .map(|e| (e.filename.to_string(), e.oid.to_owned()))
        .filter(|(name, _)| !layout::is_skipped_folder(name))
        .collect();
    for (name, id) in folders {
        if host.is_cancelled() {
            return Err(host.cancelled_error());
        }
        let child = repository.find_tree(id).map_err(|e| corrupt(&e))?;
        let locator = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        find_tasks(repository, &child, &locator, tasks, issues, host)?;
    }
    Ok(())
}

/// Why reading a task's files stopped: git could not read it, or a blob is over the limits.
enum Read {
    Git(gix::Error),
    TooLarge(PluginError),
}

impl<E: Into<gix::Error>> From<E> for Read {
    fn from(e: E) -> Self {
        Read::Git(e.into())
    }
}

/// Reads the task files of a task folder's tree (regular files only: a symlink in git is
/// its target's path, not content). Each blob's size is read from its header before its
/// content, and a blob over the limits is refused unread.
fn read_task_files(
    repository: &gix::Repository,
    tree: &gix::Tree<'_>,
    prefix: &str,
    files: &mut Vec<(String, Vec<u8>)>,
    total: &mut u64,
    limits: ReadLimits,
) -> Result<(), Read> {
    let decoded = tree.decode()?;
    let children: Vec<(String, gix::ObjectId, bool)> = decoded
        .entries
        .iter()
        .map(|e| (format!("{prefix}{}", e.filename), e.oid.to_owned(), e.mode.is_tree()))
        .collect();
    for (path, id, is_tree) in children {
        if is_tree && path == "tests" {
            let subtree = repository.find_tree(id)?;
            read_task_files(repository, &subtree, "tests/", files, total, limits)?;
        } else if !is_tree && layout::is_task_file(&path) {
            let size = repository.find_header(id)?.size();
            if size > limits.max_file_bytes {
                return Err(Read::TooLarge(PluginError::too_large(
                    &path,
                    size,
                    limits.max_file_bytes,
                )));
            }
            *total += size;
            if *total > limits.max_task_bytes {
                return Err(Read::TooLarge(PluginError::too_large(
                    "",
                    *total,
                    limits.max_task_bytes,
                )));
            }
            let blob = repository.find_blob(id)?;
            files.push((path, blob.data.clone()));
        }
    }
    Ok(())
}
