//! Helpers for the end-to-end tests: run the real `taskreg` binary and read its output.
//!
//! The binary is the one `cargo test --workspace` builds next to this crate's tests
//! (`target/<profile>/taskreg`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use registry_host::generate::{write_named_task, write_tree};
pub use taskreg_test_support::{TestDatabase, postgres_server_url};

/// The `taskreg` binary of this build.
pub fn taskreg_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/taskreg
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let binary = profile_dir.join(format!("taskreg{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: run the suite with `cargo test --workspace`, which builds it",
        binary.display()
    );
    // `cargo test -p taskreg-tests` rebuilds the host library but not its binary: refuse a
    // binary older than the sources it is built from rather than test yesterday's code.
    // (Sources, not the library's rlib: builds with other feature sets leave rlibs of their
    // own, newer than a binary that is up to date.)
    let modified = |path: &Path| path.metadata().and_then(|m| m.modified()).ok();
    let root = repository_root();
    let newest_source = [
        "registry-host/src",
        "registry-core/src",
        "registry-plugin-api/src",
        "plugins/fs/src",
        "plugins/zip/src",
        "plugins/http/src",
    ]
    .iter()
    .flat_map(|dir| rust_files(&root.join(dir)))
    .filter_map(|file| modified(&file).map(|time| (time, file)))
    .max();
    if let (Some((source_time, source)), Some(binary_time)) = (newest_source, modified(&binary)) {
        assert!(
            binary_time >= source_time,
            "{} is older than {}: run `cargo test --workspace` (or `cargo build -p registry-host`)",
            binary.display(),
            source.display()
        );
    }
    binary
}

/// An example program of this build (`target/<profile>/examples/NAME`), which
/// `cargo test --workspace` builds.
pub fn example_binary(name: &str) -> PathBuf {
    let binary = taskreg_binary()
        .parent()
        .expect("target/<profile>")
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: run the suite with `cargo test --workspace`, which builds the examples",
        binary.display()
    );
    binary
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The repository root, for the shipped examples.
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// What one run of `taskreg` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// A temporary working folder with a `taskreg` bound to the SQLite catalogue `c.db` in it
/// and run from it.
pub fn workspace() -> (tempfile::TempDir, Taskreg) {
    let work = tempfile::tempdir().expect("temporary folder");
    let taskreg = Taskreg::new(format!("sqlite://{}", work.path().join("c.db").display()), work.path());
    (work, taskreg)
}

/// `name@version` of every available task version in `taskreg`'s catalogue, sorted.
pub fn available_versions(taskreg: &Taskreg) -> Vec<String> {
    let mut versions: Vec<String> = taskreg
        .run(&["--json", "list"])
        .assert_code(0)
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| format!("{}@{}", v["name"].as_str().unwrap(), v["version"].as_str().unwrap()))
        .collect();
    versions.sort();
    versions
}

/// A `taskreg` command bound to one database, run in `dir`.
pub struct Taskreg {
    pub database_url: String,
    pub dir: PathBuf,
}

impl Taskreg {
    pub fn new(database_url: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        Taskreg {
            database_url: database_url.into(),
            dir: dir.into(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(taskreg_binary());
        command
            .args(args)
            .current_dir(&self.dir)
            .env("TASKREG_DATABASE_URL", &self.database_url)
            .env_remove("TASKREG_LOG");
        command
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.command(args).output().expect("run taskreg").into()
    }

    /// A key pair made by `taskreg keygen --no-password` in `dir`: (secret, public, key id).
    pub fn keygen(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
        let secret = dir.join(format!("{name}.key"));
        let public = dir.join(format!("{name}.pub"));
        let made = self
            .run(&[
                "--json",
                "keygen",
                "--no-password",
                "--secret-key",
                secret.to_str().expect("a UTF-8 path"),
                "--public-key",
                public.to_str().expect("a UTF-8 path"),
            ])
            .assert_code(0)
            .json();
        let id = made["key_id"].as_str().expect("a key id").to_owned();
        assert_eq!(id.len(), 16, "{made}");
        (secret, public, id)
    }

    /// Writes `taskreg.toml` in its folder.
    pub fn configure(&self, config: &str) {
        std::fs::write(self.dir.join("taskreg.toml"), config).expect("write the config");
    }
}

/// Copies the folder `from` to `to`, recursively (a fixture tree into a test's folder).
pub fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy's folder");
    for entry in std::fs::read_dir(from).expect("read the folder to copy") {
        let entry = entry.expect("a folder entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("an entry's type").is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// A path as a TOML string.
pub fn toml_path(path: &Path) -> String {
    serde_json::to_string(&path.display().to_string()).expect("a path as JSON")
}

/// The entry of source `name` in a `sync --json` report.
#[track_caller]
pub fn source_report<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["sources"]
        .as_array()
        .expect("a sources array")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no source `{name}` in {report:#}"))
}

/// Zips `folder`'s files under `prefix` into `archive`, as someone packing a task would.
pub fn zip_folder(folder: &Path, prefix: &str, archive: &Path) {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(std::fs::File::create(archive).expect("create the archive"));
    let options = zip::write::SimpleFileOptions::default();
    let mut stack = vec![folder.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read the folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(folder)
                .expect("below the folder")
                .to_string_lossy()
                .replace('\\', "/");
            writer
                .start_file(format!("{prefix}{relative}"), options)
                .expect("start an entry");
            writer
                .write_all(&std::fs::read(&path).expect("read a file"))
                .expect("write an entry");
        }
    }
    writer.finish().expect("finish the archive");
}

/// A `taskreg serve …` child on a free loopback port, stopped on drop.
pub struct Server {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// What it wrote to stderr after its banner, read as it comes (so that its logging
    /// never meets a closed pipe).
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// Starts `taskreg serve --listen 127.0.0.1:0 EXTRA…` and reads the bound address from
    /// its first line on stderr.
    pub fn start(taskreg: &Taskreg, extra: &[&str]) -> Server {
        Server::start_on(taskreg, "127.0.0.1:0", extra)
    }

    /// Starts `taskreg serve --listen LISTEN EXTRA…`.
    pub fn start_on(taskreg: &Taskreg, listen: &str, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--listen", listen];
        args.extend_from_slice(extra);
        Server::spawn(taskreg.command(&args))
    }

    /// Starts `taskreg serve --listen 127.0.0.1:0 EXTRA…` allowed at most `files` open
    /// file descriptors (through `prlimit`), as a loaded server meets its limit.
    pub fn start_with_file_limit(taskreg: &Taskreg, files: u32, extra: &[&str]) -> Server {
        let served = taskreg.command(&[]);
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={files}:{files}"))
            .arg(served.get_program())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .current_dir(&taskreg.dir)
            .env("TASKREG_DATABASE_URL", &taskreg.database_url)
            .env_remove("TASKREG_LOG");
        Server::spawn(command)
    }

    fn spawn(mut command: Command) -> Server {
        use std::io::BufRead;
        let mut child = command
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start taskreg serve");
        let mut line = String::new();
        let mut errors = std::io::BufReader::new(child.stderr.take().expect("stderr"));
        errors.read_line(&mut line).expect("the banner");
        let base = line.trim().rsplit(" on ").next().unwrap_or_default().to_owned();
        assert!(base.starts_with("http://127.0.0.1:"), "unexpected banner: {line}");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let collected = stderr.clone();
        std::thread::spawn(move || {
            for line in errors.lines().map_while(Result::ok) {
                let mut collected = collected.lock().unwrap_or_else(|e| e.into_inner());
                collected.push_str(&line);
                collected.push('\n');
            }
        });
        Server { child, base, stderr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `target/<profile>` folder this test binary was built into.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_owned()
}

/// Builds a `cdylib` with cargo into this build's target folder and returns the library's
/// path. `cargo test` does not build the `cdylib`s of workspace members, so plugin tests
/// build them (a no-op when they are fresh); `selection` says what cargo builds and
/// `target_name` which library of it is wanted.
pub fn build_cdylib(selection: &[&str], target_name: &str) -> PathBuf {
    // One cargo at a time from this process; cargo's own lock orders the others.
    static CARGO: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = CARGO.lock().unwrap_or_else(|e| e.into_inner());
    let profile = profile_dir();
    let target = profile.parent().expect("target folder");
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .arg("build")
        .args(selection)
        .args(["--message-format", "json-render-diagnostics", "--target-dir"])
        .arg(target)
        .current_dir(repository_root());
    // What cargo set for this test process is not the builder's environment: ring's build
    // script watches CARGO_MANIFEST_DIR, and a value from here would rebuild ring and all
    // that depends on it, once here and once more at the next plain `cargo build`.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_MANIFEST_")
            || name.starts_with("CARGO_PKG_")
            || name == "CARGO_CRATE_NAME"
            || name == "CARGO_PRIMARY_PACKAGE"
        {
            command.env_remove(name.as_ref());
        }
    }
    if profile.file_name().is_some_and(|n| n == "release") {
        command.arg("--release");
    }
    let output = command.output().expect("run cargo build");
    assert!(
        output.status.success(),
        "cargo build {selection:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact" && message["target"]["name"] == target_name)
        .filter(|message| {
            message["target"]["crate_types"]
                .as_array()
                .is_some_and(|types| types.iter().any(|t| t == "cdylib"))
        })
        .flat_map(|message| message["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|file| file.as_str().map(PathBuf::from))
        .find(|path| path.extension().is_some_and(|e| e == std::env::consts::DLL_EXTENSION))
        .unwrap_or_else(|| panic!("cargo build {selection:?} produced no cdylib"))
}

/// The library of a plugin package of this workspace, built if needed.
///
/// `-p NAME`, not `--workspace --lib`: the latter would also rebuild the host library
/// (a build resolves features without dev-dependencies), making the `taskreg` binary look
/// stale. The price: `-p git-source` resolves gix's dependencies with other features than
/// the suite, so a clean run compiles gix a second time here (about two minutes on two cores).
pub fn plugin_library(package: &str) -> PathBuf {
    build_cdylib(&["-p", package], &package.replace('-', "_"))
}

/// Runs `git` in `dir` with a fixed identity and no user or system configuration.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "taskreg tests")
        .env("GIT_AUTHOR_EMAIL", "tests@taskreg.invalid")
        .env("GIT_COMMITTER_NAME", "taskreg tests")
        .env("GIT_COMMITTER_EMAIL", "tests@taskreg.invalid")
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A git smart-HTTP server on loopback: `git http-backend` behind a small axum server.
/// Paths below `/private/` demand HTTP Basic credentials, for testing a source's own
/// credentials; others are public.
pub struct GitHttpServer {
    pub url: String,
    _runtime: tokio::runtime::Runtime,
}

impl GitHttpServer {
    /// Serves the repositories below `root` at `http://127.0.0.1:PORT/<name>`, and again at
    /// `/private/<name>`, where it answers 401 to any request whose `Authorization` header
    /// is not `authorization`.
    pub fn start(root: &Path, authorization: &str) -> GitHttpServer {
        GitHttpServer::serve(root, authorization, None)
    }

    /// The same over https, with a certificate for `localhost` issued by a certificate
    /// authority made for this server; returns the server and the authority's PEM.
    pub fn start_https(root: &Path, authorization: &str) -> (GitHttpServer, String) {
        let (authority, tls) = test_tls_config();
        (GitHttpServer::serve(root, authorization, Some(tls)), authority)
    }

    fn serve(root: &Path, authorization: &str, tls: Option<tokio_rustls::rustls::ServerConfig>) -> GitHttpServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind loopback");
        let port = listener.local_addr().unwrap().port();
        let (root, authorization) = (root.to_owned(), authorization.to_owned());
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let (root, authorization) = (root.clone(), authorization.clone());
            async move { git_http_backend(&root, &authorization, request).await }
        });
        let Some(tls) = tls else {
            runtime.spawn(async move { axum::serve(listener, app).await });
            return GitHttpServer {
                url: format!("http://127.0.0.1:{port}"),
                _runtime: runtime,
            };
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls));
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else { return };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        GitHttpServer {
            url: format!("https://localhost:{port}"),
            _runtime: runtime,
        }
    }
}

/// A certificate authority and a server configuration whose certificate (for
/// `localhost`) it issued.
fn test_tls_config() -> (String, tokio_rustls::rustls::ServerConfig) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let authority_key = KeyPair::generate().expect("a key");
    let mut authority = CertificateParams::new(Vec::<String>::new()).expect("parameters");
    authority.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    authority
        .distinguished_name
        .push(DnType::CommonName, "taskreg test authority");
    authority.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let authority_pem = authority.self_signed(&authority_key).expect("the authority").pem();
    let issuer = Issuer::new(authority, authority_key);
    let server_key = KeyPair::generate().expect("a key");
    let server = CertificateParams::new(vec!["localhost".to_string()])
        .expect("parameters")
        .signed_by(&server_key, &issuer)
        .expect("the server certificate");
    let key = tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![server.der().clone()], key)
    .expect("a server configuration");
    (authority_pem, config)
}

async fn git_http_backend(
    root: &Path,
    authorization: &str,
    request: axum::extract::Request,
) -> axum::response::Response<axum::body::Body> {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let private = request.uri().path().starts_with("/private/");
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == authorization.as_bytes());
    if private && !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"git\"")],
            "credentials required",
        )
            .into_response();
    }
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path().trim_start_matches("/private"))
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_USER", "tests")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    for (name, value) in &parts.headers {
        let variable = format!("HTTP_{}", name.as_str().to_uppercase().replace('-', "_"));
        command.env(variable, value.to_str().unwrap_or(""));
    }
    if let Some(kind) = parts.headers.get(header::CONTENT_TYPE) {
        command.env("CONTENT_TYPE", kind.to_str().unwrap_or(""));
    }
    let mut child = command.spawn().expect("start git http-backend");
    let mut stdin = child.stdin.take().unwrap();
    let writing = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(&body).await;
    });
    let output = child.wait_with_output().await.expect("run git http-backend");
    let _ = writing.await;
    // A CGI answer: headers, an empty line, the body.
    let split = output
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, 4))
        .or_else(|| output.stdout.windows(2).position(|w| w == b"\n\n").map(|at| (at, 2)))
        .unwrap_or((output.stdout.len(), 0));
    let head = String::from_utf8_lossy(&output.stdout[..split.0]).into_owned();
    let mut response = axum::response::Response::builder();
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .trim()
                .split(' ')
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
            response = response.status(code);
        } else {
            response = response.header(name.trim(), value.trim());
        }
    }
    response
        .body(axum::body::Body::from(output.stdout[split.0 + split.1..].to_vec()))
        .expect("a response")
}
