//! The S3 source called directly (as the host's adapter would), against a real
//! S3-protocol server (moto) on loopback, filled through a real S3 client in each test.

use registry_plugin_api::{Bundle, Host, PluginError, PluginSource, Scan, SourceRequest};
use s3_source::S3Source;
use std::io::Write as _;
use std::path::Path;
use taskreg_test_support::{S3Credentials, S3Server, S3Writer};

const BUCKET: &str = "tasks";

/// A bucket in a fresh server, and a client that writes to it.
struct Bucket {
    server: S3Server,
    writer: S3Writer,
    cache: tempfile::TempDir,
}

impl Bucket {
    fn new() -> Bucket {
        let server = S3Server::start();
        assert_eq!(server.request("PUT", &format!("/{BUCKET}"), &[], b"").0, 200);
        Bucket::on(server, S3Credentials::any())
    }

    fn on(server: S3Server, credentials: S3Credentials) -> Bucket {
        Bucket {
            writer: server.writer(BUCKET, &credentials),
            server,
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn put(&self, key: &str, bytes: impl Into<Vec<u8>>) {
        self.writer.put(key, bytes);
    }

    fn delete(&self, key: &str) {
        self.writer.delete(key);
    }

    /// A folder task `name` under `folder/`.
    fn put_task(&self, folder: &str, name: &str, version: &str) {
        for (file, bytes) in task_files(name, version) {
            self.put(&format!("{folder}/{file}"), bytes);
        }
    }

    fn source(&self, settings: serde_json::Value) -> Result<S3Source, PluginError> {
        let mut config = serde_json::json!({
            "bucket": BUCKET,
            "endpoint": self.server.endpoint(),
            "allow_http": true,
            "access_key_id": "test",
            "secret_access_key": "test",
        });
        for (key, value) in settings.as_object().unwrap() {
            if value.is_null() {
                config.as_object_mut().unwrap().remove(key);
            } else {
                config[key] = value.clone();
            }
        }
        S3Source::new(SourceRequest {
            kind: "s3".into(),
            name: "published".into(),
            config,
            base_dir: self.cache.path().to_path_buf(),
            cache_dir: self.cache.path().join("cache"),
            read_limits: Default::default(),
        })
    }

    /// `(method, path)` of the requests after the first `skip`, marker requests left out.
    fn requests_since(&self, skip: usize) -> Vec<(String, String)> {
        self.server
            .requests()
            .into_iter()
            .skip(skip)
            .filter(|r| r.method != "HEAD")
            .map(|r| (r.method, r.target))
            .collect()
    }

    fn request_count(&self) -> usize {
        self.server.requests().len()
    }
}

fn task_files(name: &str, version: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "metadata.json".into(),
            format!(r#"{{"name":"{name}","version":"{version}","label":"{name}","description":"adds"}}"#).into_bytes(),
        ),
        (
            "main.js".into(),
            format!("(function (input) {{ return {{ sum: input.a + input.b }}; }}) // {version}").into_bytes(),
        ),
        (
            "tests/one.json".into(),
            br#"{"input":{"a":1,"b":2},"expected_output":{"sum":3}}"#.to_vec(),
        ),
    ]
}

/// A ZIP of `tasks` (`(folder inside the archive, name)`).
fn zip_of(tasks: &[(&str, &str)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (folder, name) in tasks {
        for (file, bytes) in task_files(name, "1.0.0") {
            let path = if folder.is_empty() {
                file
            } else {
                format!("{folder}/{file}")
            };
            writer
                .start_file(path, zip::write::SimpleFileOptions::default())
                .unwrap();
            writer.write_all(&bytes).unwrap();
        }
    }
    writer.finish().unwrap().into_inner()
}

fn scan(source: &S3Source) -> Scan {
    source.scan(&Host::standalone()).expect("scan")
}

fn locators(scan: &Scan) -> Vec<&str> {
    scan.entries.iter().map(|e| e.locator.as_str()).collect()
}

fn fingerprint<'a>(scan: &'a Scan, locator: &str) -> &'a str {
    &scan
        .entries
        .iter()
        .find(|e| e.locator == locator)
        .unwrap_or_else(|| panic!("no {locator} in {scan:?}"))
        .fingerprint
}

fn load(source: &S3Source, locator: &str) -> Bundle {
    source.load(locator, &Host::standalone()).expect("load")
}

fn file<'a>(bundle: &'a Bundle, path: &str) -> &'a str {
    let bytes = &bundle
        .files
        .iter()
        .find(|(p, _)| p == path)
        .unwrap_or_else(|| {
            panic!(
                "no {path} in {:?}",
                bundle.files.iter().map(|f| &f.0).collect::<Vec<_>>()
            )
        })
        .1;
    std::str::from_utf8(bytes).unwrap()
}

fn object_gets(requests: &[(String, String)]) -> Vec<&str> {
    requests
        .iter()
        .filter(|(method, target)| method == "GET" && !target.contains("list-type=2"))
        .map(|(_, target)| target.as_str())
        .collect()
}

fn listings(requests: &[(String, String)]) -> usize {
    requests
        .iter()
        .filter(|(method, target)| method == "GET" && target.contains("list-type=2"))
        .count()
}

#[test]
fn a_bucket_of_folders_and_archives_offers_every_task_and_reports_what_is_not_one() {
    let bucket = Bucket::new();
    bucket.put_task("team/addition", "addition", "1.0.0");
    bucket.put("team/addition/notes.md", "not a task file");
    bucket.put(
        "team/legacy/weather/meta.yaml",
        "name: weather\nversion: 2.0.0\nscript: task.js\n",
    );
    bucket.put("team/legacy/weather/task.js", "(function () { return {}; })");
    bucket.put("team/bundles/", ""); // a folder marker
    bucket.put(
        "team/bundles/two.zip",
        zip_of(&[("first", "first"), ("second", "second")]),
    );
    bucket.put("team/single.zip", zip_of(&[("", "single")]));
    bucket.put("team/drafts/main.js", "(function () {})");
    bucket.put("team/.hidden/metadata.json", "{}");
    bucket.put("elsewhere/metadata.json", "{}");
    let source = bucket.source(serde_json::json!({ "prefix": "/team/" })).unwrap();
    assert_eq!(source.location(), "s3://tasks/team");

    let scan = scan(&source);
    assert!(scan.complete, "{scan:?}");
    assert_eq!(
        locators(&scan),
        [
            "addition",
            "bundles/two.zip/first",
            "bundles/two.zip/second",
            "legacy/weather",
            "single.zip"
        ]
    );
    let unrecognized: Vec<(&str, &str)> = scan
        .issues
        .iter()
        .map(|i| (i.locator.as_str(), i.code.as_str()))
        .collect();
    assert_eq!(unrecognized, [("drafts", "layout.unrecognized")]);

    let addition = load(&source, "addition");
    let mut paths: Vec<&str> = addition.files.iter().map(|(p, _)| p.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        ["main.js", "metadata.json", "tests/one.json"],
        "notes.md is no task file"
    );
    assert!(file(&addition, "metadata.json").contains(r#""name":"addition""#));
    assert_eq!(addition.folder_name.as_deref(), Some("addition"));
    assert!(addition.modified.is_some());

    let weather = load(&source, "legacy/weather");
    assert!(file(&weather, "meta.yaml").contains("weather"));
    let second = load(&source, "bundles/two.zip/second");
    assert!(file(&second, "metadata.json").contains(r#""name":"second""#));
    assert_eq!(second.folder_name.as_deref(), Some("second"));
    let single = load(&source, "single.zip");
    assert!(file(&single, "metadata.json").contains(r#""name":"single""#));
    assert_eq!(single.folder_name.as_deref(), Some("single"));
}

#[test]
fn an_unchanged_rescan_makes_one_listing_and_downloads_nothing_also_in_a_new_process() {
    let bucket = Bucket::new();
    bucket.put_task("addition", "addition", "1.0.0");
    bucket.put("bundle.zip", zip_of(&[("a", "a"), ("b", "b")]));
    let first = scan(&bucket.source(serde_json::json!({})).unwrap());
    assert_eq!(first.entries.len(), 3);

    // A new source over the same cache folder: what a second `taskreg sync` opens.
    let before = bucket.request_count();
    let again = scan(&bucket.source(serde_json::json!({})).unwrap());
    let requests = bucket.requests_since(before);
    assert_eq!(again, first, "same entries and fingerprints");
    assert_eq!(listings(&requests), 1, "{requests:?}");
    assert_eq!(
        object_gets(&requests),
        Vec::<&str>::new(),
        "the archive comes from the cache"
    );
}

#[test]
fn one_changed_object_changes_the_fingerprint_of_its_task_only() {
    let bucket = Bucket::new();
    bucket.put_task("addition", "addition", "1.0.0");
    bucket.put_task("weather", "weather", "1.0.0");
    bucket.put("bundle.zip", zip_of(&[("a", "a")]));
    let source = bucket.source(serde_json::json!({})).unwrap();
    let before = scan(&source);
    bucket.put("weather/main.js", "(function () { return { changed: true }; })");
    bucket.put("weather/README.md", "not a task file: changes nothing");
    let after = scan(&source);
    assert_eq!(fingerprint(&before, "addition"), fingerprint(&after, "addition"));
    assert_eq!(
        fingerprint(&before, "bundle.zip/a"),
        fingerprint(&after, "bundle.zip/a")
    );
    assert_ne!(fingerprint(&before, "weather"), fingerprint(&after, "weather"));

    let start = bucket.request_count();
    let weather = load(&source, "weather");
    assert!(file(&weather, "main.js").contains("changed"));
    let requests = bucket.requests_since(start);
    assert_eq!(
        object_gets(&requests).len(),
        3,
        "the three task files of one task: {requests:?}"
    );
}

#[test]
fn a_deleted_task_leaves_the_listing_and_a_listing_of_many_pages_is_followed() {
    let bucket = Bucket::new();
    for i in 0..7 {
        bucket.put_task(&format!("task-{i}"), &format!("task-{i}"), "1.0.0");
    }
    let source = bucket.source(serde_json::json!({ "page_size": 4 })).unwrap();
    let start = bucket.request_count();
    let all = scan(&source);
    assert_eq!(all.entries.len(), 7);
    // 21 objects, 4 keys a page: 6 pages.
    assert_eq!(listings(&bucket.requests_since(start)), 6);

    for (file, _) in task_files("task-3", "1.0.0") {
        bucket.delete(&format!("task-3/{file}"));
    }
    let after = scan(&source);
    assert!(after.complete);
    assert!(!locators(&after).contains(&"task-3"), "{after:?}");
    assert_eq!(after.entries.len(), 6);
}

#[test]
fn an_object_replaced_after_the_listing_fails_the_load_instead_of_mixing_versions() {
    let bucket = Bucket::new();
    bucket.put_task("addition", "addition", "1.0.0");
    let source = bucket.source(serde_json::json!({})).unwrap();
    scan(&source);
    // The publisher uploads the next version in pieces while the scan's loads run: the
    // script first, the metadata later.
    bucket.put("addition/main.js", "(function () { return 2; }) // 2.0.0");
    let error = source.load("addition", &Host::standalone()).unwrap_err();
    assert_eq!(error.code, "changed", "{error}");
    assert!(error.retryable, "the next run sees the new version: {error}");
    assert!(error.message.contains("addition/main.js"), "{error}");

    // The next scan reads what is there now, all of one listing.
    bucket.put(
        "addition/metadata.json",
        r#"{"name":"addition","version":"2.0.0","label":"a","description":"adds"}"#,
    );
    scan(&source);
    let bundle = load(&source, "addition");
    assert!(file(&bundle, "main.js").contains("2.0.0"));
    assert!(file(&bundle, "metadata.json").contains("2.0.0"));
}

#[test]
fn an_archive_replaced_after_the_listing_is_not_read_in_its_new_version() {
    let bucket = Bucket::new();
    bucket.put("bundle.zip", zip_of(&[("a", "a")]));
    let source = bucket.source(serde_json::json!({})).unwrap();
    let first = scan(&source);
    assert_eq!(locators(&first), ["bundle.zip/a"]);
    // A new version between two scans is downloaded once, under its own ETag.
    bucket.put("bundle.zip", zip_of(&[("a", "a"), ("b", "b")]));
    let start = bucket.request_count();
    let second = scan(&source);
    assert_eq!(locators(&second), ["bundle.zip/a", "bundle.zip/b"]);
    assert_ne!(
        fingerprint(&first, "bundle.zip/a"),
        fingerprint(&second, "bundle.zip/a")
    );
    assert_eq!(object_gets(&bucket.requests_since(start)), ["/tasks/bundle.zip"]);
    let cached = std::fs::read_dir(bucket.cache.path().join("cache/archives"))
        .unwrap()
        .count();
    assert_eq!(cached, 1, "the old version's copy is removed");
}

#[test]
fn a_hostile_archive_is_refused_and_makes_the_scan_partial() {
    let bucket = Bucket::new();
    bucket.put_task("addition", "addition", "1.0.0");
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer
        .start_file("../escape/metadata.json", zip::write::SimpleFileOptions::default())
        .unwrap();
    writer.write_all(b"{}").unwrap();
    bucket.put("evil.zip", writer.finish().unwrap().into_inner());
    bucket.put("broken.zip", "not a zip at all");
    let scan = scan(&bucket.source(serde_json::json!({})).unwrap());
    assert!(!scan.complete, "nothing the archives offered before may be removed");
    assert_eq!(locators(&scan), ["addition"]);
    let mut refused: Vec<(&str, &str, bool)> = scan
        .issues
        .iter()
        .map(|i| (i.locator.as_str(), i.code.as_str(), i.is_error))
        .collect();
    refused.sort();
    assert_eq!(
        refused,
        [
            ("broken.zip", "zip.corrupt", true),
            ("evil.zip", "zip.unsafe_path", true)
        ]
    );
}

#[test]
fn objects_over_the_caps_are_refused_before_they_are_downloaded() {
    let bucket = Bucket::new();
    bucket.put_task("big", "big", "1.0.0");
    bucket.put("big/main.js", vec![b' '; 2 * 1024 * 1024]);
    bucket.put_task("many", "many", "1.0.0");
    bucket.put("many/tests/two.json", "{}");
    bucket.put("huge.zip", vec![0u8; 4096]);
    let source = bucket
        .source(serde_json::json!({
            "max_objects_per_task": 3,
            "archive_limits": { "max_archive_bytes": 1024 }
        }))
        .unwrap();
    let start = bucket.request_count();
    let scan = scan(&source);
    assert!(
        scan.issues
            .iter()
            .any(|i| i.locator == "huge.zip" && i.code == "zip.too_large")
    );
    let big = source.load("big", &Host::standalone()).unwrap_err();
    assert_eq!(big.code, "too_large", "{big}");
    assert!(big.message.contains("main.js"), "{big}");
    let many = source.load("many", &Host::standalone()).unwrap_err();
    assert_eq!(many.code, "too_many_objects", "{many}");
    assert_eq!(object_gets(&bucket.requests_since(start)), Vec::<&str>::new());
}

#[test]
fn a_wrong_secret_or_a_missing_bucket_is_a_configuration_error() {
    let (server, credentials) = S3Server::start_checking_signatures(&[BUCKET]);
    let bucket = Bucket::on(server, credentials.clone());
    bucket.put_task("addition", "addition", "1.0.0");
    let signed = |secret: &str, name: &str| {
        bucket
            .source(serde_json::json!({
                "bucket": name,
                "access_key_id": credentials.access_key_id,
                "secret_access_key": secret,
            }))
            .unwrap()
    };
    assert_eq!(
        locators(&scan(&signed(&credentials.secret_access_key, BUCKET))),
        ["addition"]
    );

    let denied = signed("not-the-secret", BUCKET).scan(&Host::standalone()).unwrap_err();
    assert!(denied.is_config(), "{denied}");
    assert!(!denied.retryable, "{denied}");
    assert!(
        denied.message.contains("denied") && denied.message.contains("s3://tasks"),
        "{denied}"
    );
    assert!(denied.message.contains("SignatureDoesNotMatch"), "{denied}");

    let missing = signed(&credentials.secret_access_key, "no-such-bucket")
        .scan(&Host::standalone())
        .unwrap_err();
    assert!(missing.is_config(), "{missing}");
    assert!(missing.message.contains("does not exist"), "{missing}");
}

#[test]
fn a_server_that_stops_fails_scans_and_loads_as_retryable() {
    let mut bucket = Bucket::new();
    bucket.put_task("addition", "addition", "1.0.0");
    let source = bucket.source(serde_json::json!({})).unwrap();
    scan(&source);
    bucket.server.stop();
    let load = source.load("addition", &Host::standalone()).unwrap_err();
    assert!(load.retryable && !load.is_config(), "{load}");
    let scan = source.scan(&Host::standalone()).unwrap_err();
    assert!(scan.retryable && !scan.is_config(), "{scan}");
    assert_eq!(scan.code, "unavailable");
}

#[test]
fn a_public_bucket_is_read_anonymously() {
    let bucket = Bucket::new();
    for (file, bytes) in task_files("open", "1.0.0") {
        let (status, _) = bucket.server.request(
            "PUT",
            &format!("/{BUCKET}/open/{file}"),
            &[("x-amz-acl", "public-read")],
            &bytes,
        );
        assert_eq!(status, 200);
    }
    let source = bucket
        .source(serde_json::json!({
            "anonymous": true,
            "access_key_id": null,
            "secret_access_key": null,
        }))
        .unwrap();
    let scan = scan(&source);
    assert_eq!(locators(&scan), ["open"]);
    assert!(file(&load(&source, "open"), "metadata.json").contains("open"));
}

#[test]
fn settings_that_contradict_each_other_are_refused_before_any_request() {
    let bucket = Bucket::new();
    let refused = |settings: serde_json::Value| match bucket.source(settings) {
        Ok(_) => panic!("accepted"),
        Err(e) => {
            assert!(e.is_config(), "{e}");
            e.message
        }
    };
    assert!(refused(serde_json::json!({ "allow_http": false })).contains("allow_http = true"));
    assert!(
        refused(serde_json::json!({ "endpoint": "https://s3.example.com", "allow_http": true }))
            .contains("only for an `http://` endpoint")
    );
    assert!(refused(serde_json::json!({ "anonymous": true })).contains("anonymous"));
    assert!(refused(serde_json::json!({ "secret_access_key": null })).contains("secret_access_key"));
    assert!(refused(serde_json::json!({ "prefix": "a/../b" })).contains("prefix"));
    let key_file = bucket.cache.path().join("key-id");
    std::fs::write(&key_file, "test\n").unwrap();
    assert!(
        refused(serde_json::json!({ "access_key_id_file": key_file })).contains("not both"),
        "a value and a file for one credential"
    );
    // Files are read and trimmed.
    let secret_file = bucket.cache.path().join("secret");
    std::fs::write(&secret_file, "test\n").unwrap();
    bucket
        .source(serde_json::json!({
            "access_key_id": null,
            "secret_access_key": null,
            "access_key_id_file": "key-id",
            "secret_access_key_file": secret_file,
        }))
        .expect("credentials from files");
    assert!(Path::new(&secret_file).exists());
}
