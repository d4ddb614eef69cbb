//! ZipSource against archives built in each test, hostile ones included.

use registry_core::{Bundle, Severity, Source, SourceError, parse_bundle};
use std::fs;
use std::io::Write;
use std::path::Path;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};
use zip_source::{ArchiveLimits, ZipSource};

const METADATA: &str = r#"{"name":"addition","version":"1.0.0","label":"Addition","description":"adds"}"#;
const SCRIPT: &str = "(function (input) { return { sum: input.a + input.b }; })";

fn options() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(CompressionMethod::Deflated)
}

fn write_zip(path: &Path, entries: &[(&str, &[u8])]) {
    let mut writer = ZipWriter::new(fs::File::create(path).unwrap());
    for (name, bytes) in entries {
        writer.start_file(*name, options()).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap();
}

fn task_entries(prefix: &str, name: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        (
            format!("{prefix}metadata.json"),
            METADATA.replace("addition", name).into_bytes(),
        ),
        (format!("{prefix}main.js"), SCRIPT.as_bytes().to_vec()),
        (
            format!("{prefix}tests/one.json"),
            br#"{"input":{"a":1,"b":2},"expected_output":{"sum":3}}"#.to_vec(),
        ),
    ]
}

fn write_tasks(path: &Path, tasks: &[(&str, &str)]) {
    let entries: Vec<(String, Vec<u8>)> = tasks
        .iter()
        .flat_map(|(prefix, name)| task_entries(prefix, name))
        .collect();
    let borrowed: Vec<(&str, &[u8])> = entries.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    write_zip(path, &borrowed);
}

#[tokio::test]
async fn a_root_task_wins_over_its_copy_one_folder_down_and_the_copy_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("tasks.zip");
    write_tasks(&archive, &[("", "addition"), ("addition/", "addition")]);
    let source = ZipSource::new("z", &archive);
    let scan = source.scan().await.unwrap();
    assert!(scan.complete);
    let locators: Vec<&str> = scan.entries.iter().map(|e| e.locator.as_str()).collect();
    assert_eq!(locators, ["tasks.zip"]);
    assert_eq!(scan.issues.len(), 1);
    assert_eq!(
        (scan.issues[0].code, scan.issues[0].severity),
        ("zip.duplicate_task", Severity::Warning)
    );
    assert_eq!(scan.issues[0].locator, "tasks.zip/addition");

    let bundle = source.load(&scan.entries[0]).await.unwrap();
    let files: Vec<&str> = bundle.files.keys().map(String::as_str).collect();
    assert_eq!(
        files,
        ["main.js", "metadata.json", "tests/one.json"],
        "only the root copy's files"
    );
}

#[tokio::test]
async fn a_folder_of_archives_offers_every_task_one_folder_down() {
    let dir = tempfile::tempdir().unwrap();
    write_tasks(&dir.path().join("a.zip"), &[("one/", "one"), ("two/", "two")]);
    write_tasks(&dir.path().join("b.ZIP"), &[("three/", "three")]);
    fs::write(dir.path().join("notes.txt"), "not an archive").unwrap();
    let source = ZipSource::new("z", dir.path());
    let scan = source.scan().await.unwrap();
    let locators: Vec<&str> = scan.entries.iter().map(|e| e.locator.as_str()).collect();
    assert_eq!(locators, ["a.zip/one", "a.zip/two", "b.ZIP/three"]);
    let bundle = source.load(&scan.entries[2]).await.unwrap();
    assert_eq!(bundle.folder_name.as_deref(), Some("three"));
    assert_eq!(parse_bundle(&bundle).unwrap().task.name, "three");
}

#[tokio::test]
async fn a_task_from_a_zip_has_the_digest_of_the_same_task_in_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("t.zip");
    write_tasks(&archive, &[("addition/", "addition")]);
    let source = ZipSource::new("z", &archive);
    let scan = source.scan().await.unwrap();
    let from_zip = parse_bundle(&source.load(&scan.entries[0]).await.unwrap())
        .unwrap()
        .task;
    // The same task as a folder would hand it over, its JSON pretty-printed.
    let pretty = serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(METADATA).unwrap()).unwrap();
    let from_folder = parse_bundle(&Bundle::from_files([
        ("metadata.json", pretty.into_bytes()),
        ("main.js", SCRIPT.as_bytes().to_vec()),
        (
            "tests/one.json",
            b"{ \"expected_output\": { \"sum\": 3 }, \"input\": { \"b\": 2, \"a\": 1 } }".to_vec(),
        ),
    ]))
    .unwrap()
    .task;
    assert_eq!(from_zip.digest, from_folder.digest);
}

#[tokio::test]
async fn rewriting_an_archive_changes_its_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("t.zip");
    write_tasks(&archive, &[("a/", "a")]);
    let source = ZipSource::new("z", &archive);
    let before = source.scan().await.unwrap().entries[0].fingerprint.clone();
    assert_eq!(source.scan().await.unwrap().entries[0].fingerprint, before);
    std::thread::sleep(std::time::Duration::from_millis(10));
    write_tasks(&archive, &[("a/", "a"), ("b/", "b")]);
    assert_ne!(source.scan().await.unwrap().entries[0].fingerprint, before);
}

#[tokio::test]
async fn a_missing_path_fails_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let result = ZipSource::new("z", dir.path().join("gone.zip")).scan().await;
    assert!(matches!(result, Err(SourceError::Unavailable { .. })), "{result:?}");
}

/// Scans a folder holding one good archive and `hostile.zip`; the hostile one must be
/// refused with `code`, naming the archive (and the entry, where given), and the good
/// one still read.
async fn assert_refused(dir: &Path, code: &str, entry: Option<&str>, limits: ArchiveLimits) {
    write_tasks(&dir.join("good.zip"), &[("good/", "good")]);
    let scan = ZipSource::new("z", dir).with_limits(limits).scan().await.unwrap();
    assert!(!scan.complete, "a refused archive makes the scan partial");
    let issue = scan
        .issues
        .iter()
        .find(|i| i.locator == "hostile.zip")
        .expect("hostile.zip reported");
    assert_eq!(
        (issue.code, issue.severity),
        (code, Severity::Error),
        "{}",
        issue.message
    );
    assert!(issue.message.contains("hostile.zip"), "{}", issue.message);
    if let Some(entry) = entry {
        assert!(issue.message.contains(entry), "{}", issue.message);
    }
    let locators: Vec<&str> = scan.entries.iter().map(|e| e.locator.as_str()).collect();
    assert_eq!(locators, ["good.zip/good"]);
}

#[tokio::test]
async fn zip_slip_and_absolute_paths_are_refused_and_nothing_is_written() {
    for name in ["../evil/metadata.json", "/abs/metadata.json", "ok/../../evil.js"] {
        let dir = tempfile::tempdir().unwrap();
        let tasks = dir.path().join("tasks");
        fs::create_dir(&tasks).unwrap();
        write_zip(&tasks.join("hostile.zip"), &[(name, METADATA.as_bytes())]);
        assert_refused(&tasks, "zip.unsafe_path", Some(name), ArchiveLimits::default()).await;
        let outside: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(outside, ["tasks"], "nothing written next to the archives");
    }
}

#[tokio::test]
async fn a_symlink_entry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = ZipWriter::new(fs::File::create(dir.path().join("hostile.zip")).unwrap());
    writer.add_symlink("t/main.js", "/etc/passwd", options()).unwrap();
    writer.finish().unwrap();
    assert_refused(dir.path(), "zip.symlink", Some("t/main.js"), ArchiveLimits::default()).await;
}

#[tokio::test]
async fn an_encrypted_entry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.zip");
    write_zip(&path, &[("t/metadata.json", METADATA.as_bytes())]);
    // Set the "encrypted" bit of the general-purpose flags in both headers.
    let mut bytes = fs::read(&path).unwrap();
    for (signature, flags_at) in [(b"PK\x03\x04", 6), (b"PK\x01\x02", 8)] {
        let at = bytes.windows(4).position(|w| w == signature).unwrap();
        bytes[at + flags_at] |= 1;
    }
    fs::write(&path, bytes).unwrap();
    assert_refused(
        dir.path(),
        "zip.encrypted",
        Some("t/metadata.json"),
        ArchiveLimits::default(),
    )
    .await;
}

#[tokio::test]
async fn a_zip_bomb_is_refused_by_its_compression_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let zeros = vec![0u8; 4 * 1024 * 1024];
    write_zip(
        &dir.path().join("hostile.zip"),
        &[("t/metadata.json", METADATA.as_bytes()), ("t/tests/bomb.json", &zeros)],
    );
    assert_refused(
        dir.path(),
        "zip.compression_ratio",
        Some("t/tests/bomb.json"),
        ArchiveLimits::default(),
    )
    .await;
}

#[tokio::test]
async fn too_many_entries_and_oversized_entries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..20).map(|i| format!("t/tests/{i}.json")).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), b"{}".as_slice())).collect();
    write_zip(&dir.path().join("hostile.zip"), &entries);
    let limits = ArchiveLimits {
        max_entries: 10,
        ..ArchiveLimits::default()
    };
    assert_refused(dir.path(), "zip.too_many_entries", None, limits).await;

    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    write_zip(&dir.path().join("hostile.zip"), &[("t/main.js", &big)]);
    let limits = ArchiveLimits {
        max_entry_bytes: 100_000,
        ..ArchiveLimits::default()
    };
    assert_refused(dir.path(), "zip.entry_too_large", Some("t/main.js"), limits).await;
}

#[tokio::test]
async fn a_truncated_archive_is_refused_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.zip");
    write_tasks(&path, &[("t/", "t")]);
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert_refused(dir.path(), "zip.corrupt", None, ArchiveLimits::default()).await;
}

#[tokio::test]
async fn an_archive_expanding_past_the_total_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let part: Vec<u8> = (0..30_000u32).flat_map(|i| i.to_le_bytes()).collect();
    write_zip(
        &dir.path().join("hostile.zip"),
        &[
            ("t/main.js", &part),
            ("t/tests/a.json", &part),
            ("t/tests/b.json", &part),
        ],
    );
    let limits = ArchiveLimits {
        max_total_bytes: 250_000,
        ..ArchiveLimits::default()
    };
    assert_refused(dir.path(), "zip.total_too_large", None, limits).await;
}

/// Replaces every occurrence of `from` by `to` (same length) in a file's bytes.
fn patch(path: &Path, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut bytes = fs::read(path).unwrap();
    let mut at = 0;
    let mut count = 0;
    while let Some(offset) = bytes[at..].windows(from.len()).position(|w| w == from) {
        let start = at + offset;
        bytes[start..start + to.len()].copy_from_slice(to);
        at = start + to.len();
        count += 1;
    }
    assert!(count >= 2, "the name is in the local header and the central directory");
    fs::write(path, bytes).unwrap();
}

/// Issue 10, item 7: two entries of one name, and the last one won silently.
#[tokio::test]
async fn an_archive_with_two_entries_of_one_name_is_refused_as_hostile() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("twins.zip");
    let evil = "(function () { return 'evil'; })";
    write_zip(
        &archive,
        &[
            ("metadata.json", METADATA.as_bytes()),
            ("main.js", SCRIPT.as_bytes()),
            ("main.jx", evil.as_bytes()),
        ],
    );
    patch(&archive, b"main.jx", b"main.js");
    let scan = ZipSource::new("z", &archive).scan().await.unwrap();
    assert!(!scan.complete, "a refused archive makes the scan partial");
    assert!(scan.entries.is_empty());
    assert_eq!(scan.issues.len(), 1, "{:?}", scan.issues);
    assert_eq!(scan.issues[0].code, "zip.duplicate_entry");
    assert_eq!(scan.issues[0].severity, Severity::Error);
    assert!(
        scan.issues[0].message.contains("twins.zip"),
        "{}",
        scan.issues[0].message
    );
}

/// Issue 10, item 7: an archive was read (and checked) again for every task it holds: a
/// 47 MB archive of 300 tasks took 8.6 s. The loads now use what the scan read, while the
/// file is unchanged. Shown here by garbling the file behind the scan's back with its size
/// and mtime kept: a load that read the file again would fail.
#[tokio::test]
async fn the_loads_of_one_scan_use_the_archive_the_scan_read() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("bundle.zip");
    let tasks: Vec<(String, String)> = (0..50).map(|i| (format!("t{i}/"), format!("t{i}"))).collect();
    let borrowed: Vec<(&str, &str)> = tasks.iter().map(|(p, n)| (p.as_str(), n.as_str())).collect();
    write_tasks(&archive, &borrowed);
    let source = ZipSource::new("z", &archive);
    let scan = source.scan().await.unwrap();
    assert_eq!(scan.entries.len(), 50);

    let mtime = filetime::FileTime::from_last_modification_time(&fs::metadata(&archive).unwrap());
    let size = fs::metadata(&archive).unwrap().len() as usize;
    fs::write(&archive, vec![0u8; size]).unwrap();
    filetime::set_file_mtime(&archive, mtime).unwrap();
    for entry in &scan.entries {
        let bundle = source.load(entry).await.unwrap();
        assert_eq!(
            parse_bundle(&bundle).unwrap().task.name,
            entry.locator.trim_start_matches("bundle.zip/")
        );
    }

    // A changed archive (another size or mtime) is read again, never served stale.
    write_tasks(&archive, &[("t0/", "renamed")]);
    filetime::set_file_mtime(
        &archive,
        filetime::FileTime::from_unix_time(mtime.unix_seconds() + 10, 0),
    )
    .unwrap();
    let entry = scan.entries.iter().find(|e| e.locator == "bundle.zip/t0").unwrap();
    let bundle = source.load(entry).await.unwrap();
    assert_eq!(parse_bundle(&bundle).unwrap().task.name, "renamed");
}

/// Issue 10, item 5: an entry whose header announces more than the read cap is refused
/// before it is decompressed.
#[tokio::test]
async fn an_entry_over_the_read_cap_is_refused_by_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("big.zip");
    let big = vec![b' '; 300_000];
    write_zip(
        &archive,
        &[("metadata.json", METADATA.as_bytes()), ("main.js", big.as_slice())],
    );
    let read = registry_core::Limits {
        max_file_bytes: 100_000,
        ..registry_core::Limits::default()
    };
    let limits = ArchiveLimits {
        max_ratio: 100_000,
        ..ArchiveLimits::default()
    };
    let source = ZipSource::new("z", &archive).with_limits(limits).with_read_limits(read);
    let entry = source.scan().await.unwrap().entries.remove(0);
    match source.load(&entry).await {
        Err(SourceError::TooLarge { file, size, cap }) => {
            assert_eq!((file.as_str(), size, cap), ("main.js", 300_000, 100_000));
        }
        other => panic!("expected a refusal by size, got {other:?}"),
    }
}

#[tokio::test]
async fn an_archive_of_task_like_files_without_a_task_is_reported_not_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("scripts.zip");
    write_zip(
        &archive,
        &[
            ("tool/main.js", SCRIPT.as_bytes()),
            ("tool/input.schema.json", b"{}"),
            ("README.md", b"x"),
        ],
    );
    let scan = ZipSource::new("z", &archive).scan().await.unwrap();
    assert!(scan.entries.is_empty());
    assert!(scan.complete, "a warning, not a refusal");
    assert_eq!(scan.issues.len(), 1, "{:?}", scan.issues);
    assert_eq!(
        (
            scan.issues[0].locator.as_str(),
            scan.issues[0].code,
            scan.issues[0].severity
        ),
        ("scripts.zip", "layout.unrecognized", Severity::Warning)
    );
    assert!(scan.issues[0].message.contains("main.js"), "{}", scan.issues[0].message);
}
