//! Signed task versions: `keygen`, `sign` and `verify` through the real binary, the trust
//! policy at sync time, signatures carried by every kind of source, and the rule that
//! signed content is never replaced by unsigned content.

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use taskreg_tests::{
    Server, Taskreg, TestDatabase, available_versions, copy_folder, git, plugin_library, repository_root, toml_path,
    workspace, write_named_task, zip_folder,
};

fn sign(taskreg: &Taskreg, secret: &Path, path: &Path) -> Value {
    taskreg
        .run(&[
            "--json",
            "sign",
            "--secret-key",
            secret.to_str().unwrap(),
            path.to_str().unwrap(),
        ])
        .json()
}

/// The shipped examples, copied: three good tasks (one legacy) and a broken one.
fn example_tasks(dir: &Path) -> PathBuf {
    let tasks = dir.join("tasks");
    copy_folder(&repository_root().join("examples/tasks"), &tasks);
    tasks
}

fn config(sources: &str, mode: &str, keys: &[&Path]) -> String {
    let keys: Vec<String> = keys.iter().map(|k| toml_path(k)).collect();
    format!(
        "{sources}\n[signatures]\nmode = \"{mode}\"\ntrusted_keys = [{}]\n",
        keys.join(", ")
    )
}

fn folder_source(name: &str, path: &Path) -> String {
    format!(
        "[[sources]]\nname = \"{name}\"\ntype = \"filesystem\"\npath = {}\n",
        toml_path(path)
    )
}

fn show(taskreg: &Taskreg, task: &str) -> Value {
    taskreg.run(&["--json", "show", task]).assert_code(0).json()
}

/// The current problems of `locator` (its last path segment), as `(code, file)`.
fn problems_of(taskreg: &Taskreg, locator: &str) -> Vec<(String, Option<String>)> {
    let problems = taskreg.run(&["--json", "problems"]).json();
    problems
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["locator"]
                .as_str()
                .is_some_and(|l| l.rsplit('/').next() == Some(locator))
        })
        .map(|p| {
            (
                p["code"].as_str().unwrap().to_owned(),
                p["file"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[track_caller]
fn assert_signature_problem(taskreg: &Taskreg, locator: &str, code: &str) {
    let problems = problems_of(taskreg, locator);
    assert!(
        problems.contains(&(code.to_owned(), Some("signature.minisig".to_owned()))),
        "{locator}: expected {code} on signature.minisig, found {problems:?}"
    );
}

#[test]
fn signed_tasks_verify_and_every_tampering_is_refused_while_the_last_good_version_stays() {
    let (work, taskreg) = workspace();
    let tasks = example_tasks(work.path());
    let (secret, public, key) = taskreg.keygen(work.path(), "release");
    let signed = sign(&taskreg, &secret, &tasks);
    let written: Vec<&str> = signed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["signature"].as_str())
        .collect();
    assert_eq!(
        written.len(),
        3,
        "the broken task is checked and not signed: {signed:#}"
    );
    assert!(!tasks.join("broken-version/signature.minisig").exists());
    taskreg.configure(&config(&folder_source("local", &tasks), "verify", &[&public]));
    taskreg.run(&["sync"]);
    for task in ["addition", "legacy-greeting", "weather-api"] {
        let shown = show(&taskreg, task);
        assert_eq!(shown["signed_by"], key.as_str(), "{task}: {shown:#}");
        assert!(shown["signature_verified_at"].is_i64(), "{shown:#}");
    }
    let listed = taskreg.run(&["--json", "list"]).json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["signed_by"] == key.as_str()),
        "{listed:#}"
    );
    let good_digest = show(&taskreg, "addition")["digest"].clone();

    // A tampered script, with the same version: refused, and the signed version stays.
    let script = tasks.join("addition/main.js");
    let original = fs::read_to_string(&script).unwrap();
    fs::write(&script, original.replace("num1 + num2", "num1 + num2 + 1")).unwrap();
    taskreg.run(&["sync"]);
    assert_signature_problem(&taskreg, "addition", "signature.invalid");
    let kept = show(&taskreg, "addition");
    assert_eq!(
        (&kept["digest"], &kept["signed_by"]),
        (&good_digest, &Value::from(key.clone()))
    );
    fs::write(&script, &original).unwrap();
    taskreg.run(&["sync"]);
    assert!(
        problems_of(&taskreg, "addition").is_empty(),
        "restored, the problem clears"
    );

    // Tampered metadata: the digest covers it, so the signature no longer verifies.
    let metadata = tasks.join("weather-api/metadata.json");
    let text = fs::read_to_string(&metadata).unwrap();
    fs::write(&metadata, text.replacen("\"label\": \"", "\"label\": \"Tampered ", 1)).unwrap();
    taskreg.run(&["sync"]);
    assert_signature_problem(&taskreg, "weather-api", "signature.invalid");
    fs::write(&metadata, &text).unwrap();

    // A valid signature moved onto another task does not verify for it.
    fs::copy(
        tasks.join("addition/signature.minisig"),
        tasks.join("legacy-greeting/signature.minisig"),
    )
    .unwrap();
    // …nor onto another version of the same task.
    copy_folder(&tasks.join("addition"), &tasks.join("addition-next"));
    let next = tasks.join("addition-next/metadata.json");
    fs::write(
        &next,
        fs::read_to_string(&next).unwrap().replace("\"1.2.0\"", "\"1.3.0\""),
    )
    .unwrap();
    // …and a truncated signature file is no signature at all.
    let weather = tasks.join("weather-api/signature.minisig");
    let full = fs::read_to_string(&weather).unwrap();
    fs::write(&weather, &full[..full.len() / 2]).unwrap();
    taskreg.run(&["sync"]);
    assert_signature_problem(&taskreg, "legacy-greeting", "signature.invalid");
    assert_signature_problem(&taskreg, "addition-next", "signature.invalid");
    assert_signature_problem(&taskreg, "weather-api", "signature.invalid");
    let versions = available_versions(&taskreg);
    assert!(!versions.contains(&"addition@1.3.0".to_owned()), "{versions:?}");
    assert!(
        versions.contains(&"weather-api@2.0.1".to_owned()),
        "the last good version stays"
    );
    assert_eq!(show(&taskreg, "legacy-greeting")["signed_by"], key.as_str());

    // `verify` says the same without a database, and exits 1.
    let verified = taskreg.run(&[
        "verify",
        "--public-key",
        public.to_str().unwrap(),
        tasks.to_str().unwrap(),
    ]);
    verified.assert_code(1);
    assert!(verified.stdout.contains("signature.invalid"), "{}", verified.stdout);
    let clean = taskreg.run(&[
        "verify",
        "--public-key",
        public.to_str().unwrap(),
        tasks.join("addition").to_str().unwrap(),
    ]);
    clean.assert_code(0);
    assert!(clean.stdout.contains("addition@1.2.0: verified"), "{}", clean.stdout);
}

/// The statement as `docs/signing.md` documents it, written out here on purpose: a
/// publisher using plain `minisign` builds exactly this text.
fn documented_statement(name: &str, version: &str, digest: &str) -> String {
    format!("taskreg task signature v1\nname: {name}\nversion: {version}\ndigest: {digest}\n")
}

#[test]
fn a_signature_made_with_the_minisign_crate_over_the_documented_statement_verifies() {
    let (work, taskreg) = workspace();
    let tasks = example_tasks(work.path());
    let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let public = work.path().join("minisign.pub");
    fs::write(&public, pair.pk.to_box().unwrap().to_string()).unwrap();
    taskreg.configure(&config(&folder_source("local", &tasks), "verify", &[&public]));
    taskreg.run(&["sync"]);
    let unsigned = show(&taskreg, "weather-api");
    assert!(unsigned["signed_by"].is_null(), "{unsigned:#}");

    // Signed afterwards: the content is unchanged, its record gains the signer.
    let digest = unsigned["digest"].as_str().unwrap();
    let statement = documented_statement("weather-api", "2.0.1", digest);
    let signature = minisign::sign(Some(&pair.pk), &pair.sk, statement.as_bytes(), None, None).unwrap();
    fs::write(tasks.join("weather-api/signature.minisig"), signature.to_string()).unwrap();
    let run = taskreg.run(&["--json", "sync"]).assert_code(0).json();
    assert_eq!(run["updated"], 0, "a signature is not new content: {run:#}");
    let signed = show(&taskreg, "weather-api");
    assert_eq!(signed["digest"], digest);
    let expected = format!("{:016X}", u64::from_le_bytes(pair.pk.keynum().try_into().unwrap()));
    assert_eq!(signed["signed_by"], expected.as_str(), "{signed:#}");
}

async fn untrusted_keys_rotation_and_require(backend: &str) {
    let db = TestDatabase::for_backend(backend).await;
    let work = tempfile::tempdir().unwrap();
    let taskreg = Taskreg::new(db.url.clone(), work.path());
    let tasks = work.path().join("tasks");
    write_named_task(&tasks.join("alpha"), "alpha", "1.0.0", 1).unwrap();
    write_named_task(&tasks.join("beta"), "beta", "1.0.0", 2).unwrap();
    write_named_task(&tasks.join("unsigned"), "gamma", "1.0.0", 3).unwrap();
    let (old_secret, old_public, old_key) = taskreg.keygen(work.path(), "old");
    let (new_secret, new_public, new_key) = taskreg.keygen(work.path(), "new");
    sign(&taskreg, &old_secret, &tasks.join("alpha"));
    sign(&taskreg, &old_secret, &tasks.join("beta"));
    let sources = folder_source("local", &tasks);
    let run = |taskreg: &Taskreg| taskreg.run(&["--json", "sync"]).json();

    // Verify, trusting only the new key: signed by an unknown key is a warning; the
    // versions are available and unverified.
    taskreg.configure(&config(&sources, "verify", &[&new_public]));
    run(&taskreg);
    assert_eq!(
        available_versions(&taskreg),
        ["alpha@1.0.0", "beta@1.0.0", "gamma@1.0.0"]
    );
    let problems = problems_of(&taskreg, "alpha");
    assert_eq!(
        problems,
        [("signature.untrusted_key".into(), Some("signature.minisig".into()))]
    );
    assert!(show(&taskreg, "alpha")["signed_by"].is_null());

    // Both keys trusted: the same content is verified now, without being loaded as new.
    taskreg.configure(&config(&sources, "verify", &[&new_public, &old_public]));
    let both = run(&taskreg);
    assert_eq!(both["updated"], 0, "{both:#}");
    assert_eq!(show(&taskreg, "alpha")["signed_by"], old_key.as_str());
    assert!(problems_of(&taskreg, "alpha").is_empty());

    // Rotation: beta re-signed with the new key; then the old key leaves the policy under
    // `require`. Alpha, signed by the old key alone, goes unavailable and unverified;
    // beta stays; the unsigned task is refused.
    sign(&taskreg, &new_secret, &tasks.join("beta"));
    run(&taskreg);
    assert_eq!(show(&taskreg, "beta")["signed_by"], new_key.as_str());
    taskreg.configure(&config(&sources, "require", &[&new_public]));
    run(&taskreg);
    assert_eq!(available_versions(&taskreg), ["beta@1.0.0"]);
    assert_signature_problem(&taskreg, "alpha", "signature.untrusted_key");
    assert_signature_problem(&taskreg, "unsigned", "signature.missing");
    let alpha = taskreg.run(&["--json", "show", "alpha@1.0.0"]).assert_code(0).json();
    assert_eq!(alpha["available"], false);
    assert!(alpha["signed_by"].is_null(), "no longer verified: {alpha:#}");
    assert_eq!(alpha["signed"], true, "its signature is kept");
    let again = run(&taskreg);
    assert_eq!(again["written"], false, "a second run changes nothing: {again:#}");

    // The old key trusted again: alpha comes back verified.
    taskreg.configure(&config(&sources, "require", &[&new_public, &old_public]));
    run(&taskreg);
    assert_eq!(available_versions(&taskreg), ["alpha@1.0.0", "beta@1.0.0"]);
    assert_eq!(show(&taskreg, "alpha")["signed_by"], old_key.as_str());

    // A source may have a policy of its own: signatures off for it.
    taskreg.configure(&format!(
        "[[sources]]\nname = \"local\"\ntype = \"filesystem\"\npath = {}\nsignatures = \"off\"\n\n[signatures]\nmode = \"require\"\ntrusted_keys = [{}]\n",
        toml_path(&tasks),
        toml_path(&new_public)
    ));
    run(&taskreg);
    assert_eq!(
        available_versions(&taskreg),
        ["alpha@1.0.0", "beta@1.0.0", "gamma@1.0.0"]
    );
    assert!(
        show(&taskreg, "beta")["signed_by"].is_null(),
        "off: nothing is verified"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn untrusted_keys_rotation_and_require_on_sqlite() {
    untrusted_keys_rotation_and_require("sqlite").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn untrusted_keys_rotation_and_require_on_postgres() {
    untrusted_keys_rotation_and_require("postgres").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_task_keeps_its_verified_status_through_folder_zip_http_and_git() {
    let work = tempfile::tempdir().unwrap();
    let publisher = Taskreg::new(format!("sqlite://{}", work.path().join("p.db").display()), work.path());
    let (secret, public, key) = publisher.keygen(work.path(), "release");
    let folder = work.path().join("folder/weather");
    write_named_task(&folder, "weather", "2.0.1", 7).unwrap();
    sign(&publisher, &secret, &folder);
    zip_folder(&folder, "weather/", &work.path().join("weather.zip"));
    let repo = work.path().join("repo");
    copy_folder(&folder, &repo.join("tasks/weather"));
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "signed weather"]);

    // The publisher serves its catalogue (synced from the folder).
    publisher.configure(&config(
        &folder_source("folder", &work.path().join("folder")),
        "require",
        &[&public],
    ));
    publisher.run(&["sync"]).assert_code(0);
    let server = Server::start(&publisher, &[]);

    let sources = [
        ("folder", folder_source("folder", &work.path().join("folder"))),
        (
            "zip",
            format!(
                "[[sources]]\nname = \"zip\"\ntype = \"zip\"\npath = {}\n",
                toml_path(&work.path().join("weather.zip"))
            ),
        ),
        (
            "http",
            format!(
                "[[sources]]\nname = \"http\"\ntype = \"http\"\nurl = \"{}/v1/tasks\"\n",
                server.base
            ),
        ),
        (
            "git",
            format!(
                "[[plugins]]\npath = {}\n\n[[sources]]\nname = \"git\"\ntype = \"git\"\nurl = {}\nsubdirectory = \"tasks\"\n",
                toml_path(&plugin_library("git-source")),
                toml_path(&repo)
            ),
        ),
    ];
    let mut digests = Vec::new();
    for (name, source) in sources {
        let dir = work.path().join(format!("host-{name}"));
        fs::create_dir_all(&dir).unwrap();
        let host = Taskreg::new(format!("sqlite://{}", dir.join("c.db").display()), &dir);
        host.configure(&config(&source, "require", &[&public]));
        let run = tokio::task::spawn_blocking(move || {
            let report = host.run(&["--json", "sync"]);
            (host.run(&["--json", "show", "weather"]), report)
        })
        .await
        .unwrap();
        let (shown, report) = run;
        report.assert_code(0);
        let shown = shown.assert_code(0).json();
        assert_eq!(shown["signed_by"], key.as_str(), "through {name}: {shown:#}");
        digests.push(shown["digest"].clone());
    }
    assert!(
        digests.windows(2).all(|d| d[0] == d[1]),
        "one content everywhere: {digests:?}"
    );

    // The served index says who signed each version, and the bundle carries the signature.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let index: Value = client
        .get(format!("{}/v1/tasks", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(index["items"][0]["signed_by"], key.as_str(), "{index:#}");
    let bundle: Value = client
        .get(format!("{}/v1/tasks/weather/2.0.1", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        bundle["signature"].as_str(),
        Some(fs::read_to_string(folder.join("signature.minisig")).unwrap().as_str())
    );
    assert!(
        bundle["files"].get("signature.minisig").is_none(),
        "not one of the digested files"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsigned_http_copy_of_a_signed_version_is_refused_as_a_conflict() {
    let work = tempfile::tempdir().unwrap();
    // Upstream offers its own, unsigned copy of weather@2.0.1 with different content.
    let upstream_dir = work.path().join("upstream");
    write_named_task(&upstream_dir.join("tasks/weather"), "weather", "2.0.1", 666).unwrap();
    let upstream = Taskreg::new(
        format!("sqlite://{}", work.path().join("u.db").display()),
        &upstream_dir,
    );
    upstream.run(&["sync", "tasks"]).assert_code(0);
    let server = Server::start(&upstream, &[]);

    let dir = work.path().join("host");
    let host = Taskreg::new(format!("sqlite://{}", dir.join("c.db").display()), &dir);
    let local = dir.join("tasks");
    write_named_task(&local.join("weather"), "weather", "2.0.1", 7).unwrap();
    let (secret, public, key) = host.keygen(work.path(), "release");
    sign(&host, &secret, &local.join("weather"));
    let http = format!(
        "[[sources]]\nname = \"upstream\"\ntype = \"http\"\nurl = \"{}/v1/tasks\"\n",
        server.base
    );
    // Local first: the signed content is stored.
    host.configure(&config(&folder_source("local", &local), "verify", &[&public]));
    let result = tokio::task::spawn_blocking(move || {
        host.run(&["sync"]).assert_code(0);
        let signed = host.run(&["--json", "show", "weather"]).json();
        // Then the upstream registry, at the highest priority: source-priority would take
        // its content, but it is unsigned.
        host.configure(&config(
            &format!("{http}\n{}", folder_source("local", &local)),
            "verify",
            &[&public],
        ));
        let run = host.run(&["--json", "sync"]).json();
        let after = host.run(&["--json", "show", "weather"]).json();
        let conflicts = host.run(&["--json", "conflicts"]).json();
        (signed, run, after, conflicts)
    })
    .await
    .unwrap();
    let (signed, run, after, conflicts) = result;
    assert_eq!(signed["signed_by"], key.as_str());
    assert_eq!(run["conflicts"], 1, "{run:#}");
    assert_eq!(after["digest"], signed["digest"], "the signed content stays");
    assert_eq!(after["signed_by"], key.as_str());
    let conflict = &conflicts[0];
    assert_eq!(conflict["name"], "weather");
    let decision = conflict["detail"]["decision"].as_str().unwrap();
    assert!(decision.contains("unsigned or untrusted"), "{conflict:#}");
    let offers = conflict["detail"]["offers"].as_array().unwrap();
    let signed_offer = offers.iter().find(|o| o["source"] == "local").unwrap();
    assert_eq!(signed_offer["signed_by"], key.as_str(), "{conflict:#}");
    assert!(offers.iter().find(|o| o["source"] == "upstream").unwrap()["signed_by"].is_null());
}

#[test]
fn a_password_protected_key_signs_with_its_password_only() {
    let (work, taskreg) = workspace();
    let secret = work.path().join("protected.key");
    let public = work.path().join("protected.pub");
    let made = taskreg
        .command(&[
            "keygen",
            "--secret-key",
            secret.to_str().unwrap(),
            "--public-key",
            public.to_str().unwrap(),
        ])
        .env("TASKREG_KEY_PASSWORD", "correct horse")
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
    let again = taskreg.run(&[
        "keygen",
        "--no-password",
        "--secret-key",
        secret.to_str().unwrap(),
        "--public-key",
        public.to_str().unwrap(),
    ]);
    assert_ne!(again.code, 0, "an existing key is not replaced without --force");

    let task = work.path().join("addition");
    copy_folder(&repository_root().join("examples/tasks/addition"), &task);
    let with = |password: &str| {
        taskreg
            .command(&["sign", "--secret-key", secret.to_str().unwrap(), task.to_str().unwrap()])
            .env("TASKREG_KEY_PASSWORD", password)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let wrong = with("wrong horse");
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr)
            .to_lowercase()
            .contains("password"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    assert!(!task.join("signature.minisig").exists());
    assert!(with("correct horse").status.success());
    taskreg
        .run(&[
            "verify",
            "--public-key",
            public.to_str().unwrap(),
            task.to_str().unwrap(),
        ])
        .assert_code(0);
}

#[test]
fn an_edit_in_place_without_a_signature_does_not_replace_the_signed_version_and_a_signed_one_does() {
    let (work, taskreg) = workspace();
    let tasks = work.path().join("tasks");
    write_named_task(&tasks.join("alpha"), "alpha", "1.0.0", 1).unwrap();
    let (secret, public, key) = taskreg.keygen(work.path(), "release");
    sign(&taskreg, &secret, &tasks.join("alpha"));
    taskreg.configure(&config(&folder_source("local", &tasks), "verify", &[&public]));
    taskreg.run(&["sync"]).assert_code(0);
    let signed = show(&taskreg, "alpha");

    // The author edits the script and drops the signature: the same version, unsigned.
    let script = tasks.join("alpha/main.js");
    fs::write(&script, fs::read_to_string(&script).unwrap().replace("+ 1", "+ 2")).unwrap();
    fs::remove_file(tasks.join("alpha/signature.minisig")).unwrap();
    let run = taskreg.run(&["--json", "sync"]).assert_code(0).json();
    assert_eq!(
        (run["updated"].as_u64(), run["conflicts"].as_u64()),
        (Some(0), Some(1)),
        "{run:#}"
    );
    let kept = show(&taskreg, "alpha");
    assert_eq!(
        (&kept["digest"], &kept["signed_by"]),
        (&signed["digest"], &Value::from(key.clone()))
    );

    // Signed again, the signed edit is taken (recorded against the stored content, as the
    // standing conflict is decided), and the conflict clears once nothing disagrees.
    sign(&taskreg, &secret, &tasks.join("alpha"));
    let run = taskreg.run(&["--json", "sync"]).assert_code(0).json();
    assert_eq!(run["updated"], 1, "{run:#}");
    let updated = show(&taskreg, "alpha");
    assert_ne!(updated["digest"], signed["digest"]);
    assert_eq!(updated["signed_by"], key.as_str());
    taskreg.run(&["sync"]).assert_code(0);
    assert_eq!(taskreg.run(&["--json", "conflicts"]).json(), serde_json::json!([]));
}
