//! A real S3-protocol server for tests: `moto_server` (PyPI's `moto`) on a free loopback
//! port, started for one test and stopped when dropped.
//!
//! The server comes from `TASKREG_TEST_MOTO_SERVER` (a `moto_server` executable) or from
//! the virtual environment `bash .ci/moto` installs at `target/moto-venv`. A missing
//! server fails the test with that instruction; S3 tests never skip silently.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long moto (a Python process) may take to answer its first request.
const STARTUP: Duration = Duration::from_secs(60);

/// A running `moto_server`; killed when dropped.
pub struct S3Server {
    child: Child,
    address: SocketAddr,
    /// moto's request log (werkzeug writes a line per request to stderr).
    log: tempfile::NamedTempFile,
    sentinels: std::sync::atomic::AtomicUsize,
}

/// One request the server answered, as its log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    /// The path with its query string.
    pub target: String,
    pub status: u16,
}

/// An access key of a server that checks signatures ([`S3Server::start_checking_signatures`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl S3Credentials {
    /// Any key: what a server that does not check signatures accepts.
    pub fn any() -> S3Credentials {
        S3Credentials {
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
        }
    }
}

/// A real S3 client writing to one bucket of a test server, with its own runtime (for
/// tests that are not async themselves).
pub struct S3Writer {
    store: object_store::aws::AmazonS3,
    runtime: tokio::runtime::Runtime,
}

impl S3Writer {
    /// Puts one object.
    pub fn put(&self, key: &str, bytes: impl Into<Vec<u8>>) {
        use object_store::ObjectStoreExt as _;
        let location = object_store::path::Path::parse(key).unwrap_or_else(|e| panic!("key {key}: {e}"));
        self.runtime
            .block_on(self.store.put(&location, bytes.into().into()))
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
    }

    /// Deletes one object.
    pub fn delete(&self, key: &str) {
        use object_store::ObjectStoreExt as _;
        let location = object_store::path::Path::parse(key).unwrap_or_else(|e| panic!("key {key}: {e}"));
        self.runtime
            .block_on(self.store.delete(&location))
            .unwrap_or_else(|e| panic!("delete {key}: {e}"));
    }

    /// Puts every file below `dir` under `prefix/` (`in_flight` at a time), returning how
    /// many.
    pub fn put_folder(&self, prefix: &str, dir: &std::path::Path, in_flight: usize) -> usize {
        use futures::StreamExt as _;
        use object_store::ObjectStoreExt as _;
        let mut files = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(folder) = pending.pop() {
            for entry in std::fs::read_dir(&folder).expect("read the folder") {
                let path = entry.expect("a folder entry").path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        let count = files.len();
        let puts = futures::stream::iter(files).map(|path| async move {
            let relative = path
                .strip_prefix(dir)
                .expect("below dir")
                .to_string_lossy()
                .replace('\\', "/");
            let key = if prefix.is_empty() {
                relative
            } else {
                format!("{prefix}/{relative}")
            };
            let bytes = std::fs::read(&path).expect("read a file");
            let location = object_store::path::Path::parse(&key).unwrap_or_else(|e| panic!("key {key}: {e}"));
            self.store
                .put(&location, bytes.into())
                .await
                .unwrap_or_else(|e| panic!("put {key}: {e}"));
        });
        self.runtime
            .block_on(puts.buffer_unordered(in_flight.max(1)).collect::<Vec<()>>());
        count
    }
}

impl S3Server {
    /// Starts a server that checks request signatures, with `buckets` created and one
    /// user allowed everything, whose access key is returned. moto answers its first
    /// requests unchecked (`INITIAL_NO_AUTH_ACTION_COUNT`): exactly the ones made here.
    pub fn start_checking_signatures(buckets: &[&str]) -> (S3Server, S3Credentials) {
        let unchecked = (3 + buckets.len()).to_string();
        let server = S3Server::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", unchecked.as_str())]);
        // moto routes by the credential scope of the Authorization header; unchecked
        // requests need one naming IAM, not a valid signature.
        let iam = [
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=setup/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
            ),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        let policy = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C\
                      %22Action%22%3A%22*%22%2C%22Resource%22%3A%22*%22%7D%5D%7D";
        for action in [
            "Action=CreateUser&UserName=tests&Version=2010-05-08".to_owned(),
            format!("Action=PutUserPolicy&UserName=tests&PolicyName=all&PolicyDocument={policy}&Version=2010-05-08"),
        ] {
            let (status, body) = server.request("POST", "/", &iam, action.as_bytes());
            assert_eq!(status, 200, "{action}: {}", String::from_utf8_lossy(&body));
        }
        let (status, body) = server.request(
            "POST",
            "/",
            &iam,
            b"Action=CreateAccessKey&UserName=tests&Version=2010-05-08",
        );
        let body = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 200, "CreateAccessKey: {body}");
        let element = |name: &str| {
            let (_, rest) = body
                .split_once(&format!("<{name}>"))
                .unwrap_or_else(|| panic!("no {name} in {body}"));
            rest.split_once('<').map_or(rest, |(value, _)| value).to_owned()
        };
        let credentials = S3Credentials {
            access_key_id: element("AccessKeyId"),
            secret_access_key: element("SecretAccessKey"),
        };
        for bucket in buckets {
            let (status, body) = server.request("PUT", &format!("/{bucket}"), &[], b"");
            assert_eq!(status, 200, "create {bucket}: {}", String::from_utf8_lossy(&body));
        }
        (server, credentials)
    }

    /// A client writing to `bucket` with `credentials`.
    pub fn writer(&self, bucket: &str, credentials: &S3Credentials) -> S3Writer {
        // reqwest comes without a TLS provider of its own (the workspace's choice): ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id(&credentials.access_key_id)
            .with_secret_access_key(&credentials.secret_access_key)
            .build()
            .expect("an S3 client for the test server");
        S3Writer {
            store,
            runtime: tokio::runtime::Runtime::new().expect("a runtime for the S3 client"),
        }
    }

    /// Starts a server on a free loopback port and waits until it answers.
    pub fn start() -> S3Server {
        S3Server::start_with_env(&[])
    }

    /// Starts a server with extra environment variables (for example
    /// `INITIAL_NO_AUTH_ACTION_COUNT=0`, which makes moto check request signatures).
    pub fn start_with_env(env: &[(&str, &str)]) -> S3Server {
        let program = moto_server();
        // The port is picked free and then handed to moto; another process taking it in
        // between fails the start, so a few ports are tried.
        let mut last_error = String::new();
        for _ in 0..3 {
            let address = free_loopback_port();
            let log = tempfile::NamedTempFile::new().expect("a file for moto's log");
            let stderr = log.reopen().expect("reopen moto's log");
            let child = Command::new(&program)
                .args(["-H", "127.0.0.1", "-p", &address.port().to_string()])
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
            let mut server = S3Server {
                child,
                address,
                log,
                sentinels: Default::default(),
            };
            match server.wait_until_ready() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("moto_server did not start: {last_error}");
    }

    /// The endpoint URL to give an S3 client (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The server's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops the server now (a test of a server that goes away mid-run).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends one unsigned HTTP/1.1 request and returns the status code and body: enough
    /// to create buckets and put objects in a server that does not check signatures.
    /// (moto treats an unsigned request as anonymous: reading an object back this way
    /// needs `x-amz-acl: public-read` on its `PUT`.)
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Vec<u8>) {
        let mut stream = TcpStream::connect(self.address).expect("connect to moto_server");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.address,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("send the request");
        stream.write_all(body).expect("send the body");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("read the response");
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP response head");
        let status_line = String::from_utf8_lossy(&response[..split]).into_owned();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status in {status_line:?}"));
        // Connection: close and no chunking asked for: the rest is the body (moto sends a
        // Content-Length).
        (status, response[split + 4..].to_vec())
    }

    /// Every request answered so far, oldest first: what a test counts to show that a
    /// run made no `GET` of an object, say. A marker request is sent first and waited for,
    /// so that the log holds every request answered before this call.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        let n = self.sentinels.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let marker = format!("/taskreg-log-marker-{n}");
        self.request("HEAD", &marker, &[], b"");
        let started = Instant::now();
        loop {
            let logged = self.logged();
            if let Some(at) = logged.iter().position(|r| r.target == marker) {
                let mut before = logged[..at].to_vec();
                before.retain(|r| !r.target.starts_with("/taskreg-log-marker-"));
                return before;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "moto never logged {marker}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Parses the log's request lines: `127.0.0.1 - - [date] "GET /path HTTP/1.1" 200 -`,
    /// some wrapped in terminal colour codes.
    fn logged(&self) -> Vec<LoggedRequest> {
        let text = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let (_, rest) = line.split_once('"')?;
                let (request, rest) = rest.split_once('"')?;
                let request = strip_colours(request);
                let mut parts = request.split_whitespace();
                let (method, target) = (parts.next()?, parts.next()?);
                let status = rest.split_whitespace().next()?.parse().ok()?;
                Some(LoggedRequest {
                    method: method.to_owned(),
                    target: target.to_owned(),
                    status,
                })
            })
            .collect()
    }

    fn wait_until_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < STARTUP {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("it exited with {status}"));
            }
            if TcpStream::connect_timeout(&self.address, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.stop();
        Err(format!("nothing answered on {} within {STARTUP:?}", self.address))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `text` without ANSI escape sequences (`ESC [ … m`).
fn strip_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// The `moto_server` executable (see the module's documentation).
fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("TASKREG_TEST_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let installed = workspace.join("target/moto-venv/bin/moto_server");
    if installed.is_file() {
        return installed;
    }
    panic!(
        "the S3 tests need moto_server: run `bash .ci/moto` (installs it into target/moto-venv) \
         or set TASKREG_TEST_MOTO_SERVER"
    );
}

fn free_loopback_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("its address")
}
