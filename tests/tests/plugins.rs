//! Plugins loaded for real: `cdylib`s built from this workspace (and from the plugin guide)
//! by cargo, loaded by the `taskreg` binary, fed by git repositories made in the test.

use std::path::{Path, PathBuf};
use taskreg_tests::{
    GitHttpServer, Run, available_versions, build_cdylib, copy_folder, git, plugin_library, repository_root,
    source_report, toml_path, workspace, write_named_task,
};

/// The error of a source that must have failed in `report`.
#[track_caller]
fn failure_of(report: &serde_json::Value, name: &str) -> String {
    let source = source_report(report, name);
    assert_eq!(source["status"], "failed", "{source:#}");
    source["error"].as_str().unwrap().to_string()
}

/// A repository with two tasks below `tasks/` on `main`, tagged `v1`.
fn task_repository(dir: &Path) -> PathBuf {
    let repo = dir.join("upstream");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    write_named_task(&repo.join("tasks/alpha"), "alpha", "1.0.0", 1).unwrap();
    write_named_task(&repo.join("tasks/group/beta"), "beta", "1.0.0", 2).unwrap();
    std::fs::write(repo.join("README.md"), "not a task\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "two tasks"]);
    git(&repo, &["tag", "v1"]);
    repo
}

fn git_config(git_library: &Path, isolation: &str, sources: &str) -> String {
    format!(
        "[[plugins]]\npath = {}\nisolation = \"{isolation}\"\n\n{sources}",
        toml_path(git_library)
    )
}

/// Each git test runs with the plugin in the host's process and isolated in a child
/// process: the same library must behave the same both ways.
macro_rules! in_both_modes {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                #[test]
                fn in_process() {
                    super::$test("in-process")
                }
                #[test]
                fn isolated() {
                    super::$test("process")
                }
            }
        )*
    };
}

in_both_modes!(
    a_git_source_syncs_commits_and_loads_only_the_tasks_a_commit_changed,
    a_git_source_follows_a_branch_a_tag_or_the_remote_default,
    git_settings_are_checked_against_the_plugins_schema,
    a_git_source_over_http_fetches_and_offers_only_its_own_token_never_in_clear_text,
    a_git_source_over_https_authenticates_with_its_own_token_and_trusts_its_ca_file,
);

fn a_git_source_syncs_commits_and_loads_only_the_tasks_a_commit_changed(isolation: &str) {
    let (work, taskreg) = workspace();
    let repo = task_repository(work.path());
    taskreg.configure(&git_config(
        &plugin_library("git-source"),
        isolation,
        &format!(
            "[[sources]]\nname = \"team\"\ntype = \"git\"\nurl = {}\nsubdirectory = \"tasks\"\n",
            toml_path(&repo)
        ),
    ));

    let first = taskreg.run(&["--json", "sync"]).assert_code(0).json();
    assert_eq!(source_report(&first, "team")["status"], "ok", "{first:#}");
    assert_eq!(available_versions(&taskreg), ["alpha@1.0.0", "beta@1.0.0"]);
    assert!(
        work.path().join(".taskreg-cache").is_dir(),
        "the clone lives in the cache folder"
    );

    // Same commit: the fingerprints (tree ids) are unchanged, so nothing is loaded.
    let again = taskreg.run(&["--json", "sync"]).assert_code(0).json();
    assert_eq!(again["loaded"], 0, "{again:#}");
    assert_eq!(again["written"], false);

    // A commit that changes one task: only that task is loaded, and the catalogue follows.
    write_named_task(&repo.join("tasks/alpha"), "alpha", "1.1.0", 3).unwrap();
    git(&repo, &["commit", "-q", "-am", "alpha 1.1.0"]);
    let changed = taskreg.run(&["--json", "sync"]).assert_code(0).json();
    assert_eq!(changed["loaded"], 1, "only alpha's tree changed: {changed:#}");
    assert_eq!(changed["added"], 1, "{changed:#}");
    assert!(available_versions(&taskreg).contains(&"alpha@1.1.0".to_string()));

    // A task removed in a commit goes missing, as a folder removed from disk would.
    git(&repo, &["rm", "-q", "-r", "tasks/group"]);
    git(&repo, &["commit", "-q", "-m", "drop beta"]);
    let removed = taskreg.run(&["--json", "sync"]).assert_code(0).json();
    assert_eq!(removed["missing"], 1, "{removed:#}");
    assert!(!available_versions(&taskreg).iter().any(|v| v.starts_with("beta@")));
}

fn a_git_source_follows_a_branch_a_tag_or_the_remote_default(isolation: &str) {
    let (work, taskreg) = workspace();
    let repo = task_repository(work.path());
    // `feature` has a third task; `main` moves on after the tag.
    git(&repo, &["checkout", "-q", "-b", "feature"]);
    write_named_task(&repo.join("tasks/gamma"), "gamma", "0.1.0", 4).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "gamma"]);
    git(&repo, &["checkout", "-q", "main"]);
    write_named_task(&repo.join("tasks/alpha"), "alpha", "2.0.0", 5).unwrap();
    git(&repo, &["commit", "-q", "-am", "alpha 2"]);
    let file_url = format!("file://{}", repo.display());
    let source = |name: &str, reference: Option<&str>| {
        let reference = reference.map(|r| format!("ref = \"{r}\"\n")).unwrap_or_default();
        format!(
            "[[sources]]\nname = \"{name}\"\ntype = \"git\"\nurl = \"{file_url}\"\nsubdirectory = \"tasks\"\n{reference}\n"
        )
    };
    let sources = [
        source("default", None),
        source("feature", Some("feature")),
        source("tagged", Some("v1")),
    ]
    .concat();
    taskreg.configure(&git_config(&plugin_library("git-source"), isolation, &sources));

    let report = taskreg.run(&["--json", "sync"]).assert_code(0).json();
    let versions_of = |name: &str| -> Vec<String> {
        let history = taskreg.run(&["--json", "list", "--all"]).assert_code(0).json();
        let mut found: Vec<String> = history
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["sources"].as_array().unwrap().iter().any(|s| s == name))
            .map(|v| format!("{}@{}", v["name"].as_str().unwrap(), v["version"].as_str().unwrap()))
            .collect();
        found.sort();
        found
    };
    for name in ["default", "feature", "tagged"] {
        assert_eq!(source_report(&report, name)["status"], "ok", "{report:#}");
    }
    assert_eq!(
        versions_of("default"),
        ["alpha@2.0.0", "beta@1.0.0"],
        "the remote's HEAD is main"
    );
    assert_eq!(versions_of("feature"), ["alpha@1.0.0", "beta@1.0.0", "gamma@0.1.0"]);
    assert_eq!(versions_of("tagged"), ["alpha@1.0.0", "beta@1.0.0"]);

    // A ref that does not exist fails that source's scan; nothing of it is removed.
    let broken = source("feature", Some("no-such-branch"));
    taskreg.configure(&git_config(
        &plugin_library("git-source"),
        isolation,
        &[source("default", None), broken].concat(),
    ));
    let report = taskreg.run(&["--json", "sync"]).assert_code(0).json();
    let feature = source_report(&report, "feature");
    assert_eq!(feature["status"], "failed");
    assert!(
        feature["error"].as_str().unwrap().contains("no-such-branch"),
        "{feature:#}"
    );
    assert_eq!(versions_of("feature"), ["alpha@1.0.0", "beta@1.0.0", "gamma@0.1.0"]);
}

fn git_settings_are_checked_against_the_plugins_schema(isolation: &str) {
    let (work, taskreg) = workspace();
    taskreg.configure(&git_config(
        &plugin_library("git-source"),
        isolation,
        "[[sources]]\nname = \"team\"\ntype = \"git\"\nbranch = \"main\"\n",
    ));
    let run = taskreg.run(&["sync"]);
    run.assert_code(2);
    assert!(run.stderr.contains("source `team` is misconfigured"), "{}", run.stderr);
    assert!(run.stderr.contains("\"url\" is a required property"), "{}", run.stderr);
    assert!(
        run.stderr.contains("branch"),
        "the unknown key is named: {}",
        run.stderr
    );
    drop(work);
}

fn misbehaving(name: &str, does: &str, call: &str) -> String {
    format!(
        "[[sources]]\nname = \"{name}\"\ntype = \"misbehaving\"\ndoes = \"{does}\"\nin = \"{call}\"\ntimeout = \"2s\"\n\n"
    )
}

/// A config with the misbehaving plugin, `sources`, and a filesystem source `local` with one task.
fn with_misbehaving(work: &Path, sources: &str) -> String {
    write_named_task(&work.join("local/solid"), "solid", "1.0.0", 1).unwrap();
    format!(
        "[[plugins]]\npath = {}\n\n{sources}[[sources]]\nname = \"local\"\ntype = \"filesystem\"\npath = \"local\"\n",
        toml_path(&plugin_library("misbehaving-plugin"))
    )
}

#[test]
fn a_plugin_that_panics_fails_its_source_only_and_keeps_its_tasks() {
    let (work, taskreg) = workspace();
    taskreg.configure(&with_misbehaving(work.path(), &misbehaving("odd", "work", "scan")));
    taskreg.run(&["sync"]).assert_code(0);
    assert_eq!(available_versions(&taskreg), ["misbehaving-task@1.0.0", "solid@1.0.0"]);

    // Now it panics inside `scan`: the host survives, the source fails, nothing is removed,
    // and the other source syncs.
    write_named_task(&work.path().join("local/second"), "second", "1.0.0", 2).unwrap();
    taskreg.configure(&with_misbehaving(work.path(), &misbehaving("odd", "panic", "scan")));
    let run = taskreg.run(&["--json", "sync"]);
    run.assert_code(0);
    let report = run.json();
    let odd = source_report(&report, "odd");
    assert_eq!(odd["status"], "failed");
    let error = odd["error"].as_str().unwrap();
    assert!(
        error.contains("panicked in `scan`") && error.contains("scan panicked on purpose"),
        "{error}"
    );
    assert!(
        error.contains("tests/plugins/misbehaving/src/lib.rs:"),
        "the panic's location: {error}"
    );
    assert!(
        !run.stderr.contains("stack backtrace"),
        "no backtrace on the host's stderr: {}",
        run.stderr
    );
    assert_eq!(source_report(&report, "local")["status"], "ok");
    assert_eq!(
        available_versions(&taskreg),
        ["misbehaving-task@1.0.0", "second@1.0.0", "solid@1.0.0"]
    );

    // A panic inside `load` is a problem of that task; the stored version stays.
    taskreg.configure(&with_misbehaving(work.path(), &misbehaving("fresh", "panic", "load")));
    let report = taskreg.run(&["--json", "sync"]).assert_code(0).json();
    let problems = report["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["source"] == "fresh" && p["message"].as_str().unwrap().contains("panicked in `load`")),
        "{report:#}"
    );
}

#[test]
fn a_plugin_call_that_hangs_times_out_and_the_run_goes_on() {
    let (work, taskreg) = workspace();
    taskreg.configure(&with_misbehaving(work.path(), &misbehaving("stuck", "hang", "scan")));
    let run = taskreg.run(&["--json", "-v", "sync"]);
    run.assert_code(0);
    let report = run.json();
    let stuck = source_report(&report, "stuck");
    assert_eq!(stuck["status"], "failed");
    assert!(
        stuck["error"].as_str().unwrap().contains("no answer within 2s"),
        "{stuck:#}"
    );
    assert_eq!(available_versions(&taskreg), ["solid@1.0.0"]);
}

#[test]
fn a_library_that_is_not_a_plugin_is_refused_and_the_rest_syncs() {
    let (work, taskreg) = workspace();
    let not_a_plugin = plugin_library("not-a-plugin");
    let garbage = work.path().join("garbage.so");
    std::fs::write(&garbage, "this is not a shared library").unwrap();
    write_named_task(&work.path().join("local/solid"), "solid", "1.0.0", 1).unwrap();
    taskreg.configure(&format!(
            "[[plugins]]\npath = {}\n[[plugins]]\npath = {}\n\n[[sources]]\nname = \"local\"\ntype = \"filesystem\"\npath = \"local\"\n\n[[sources]]\nname = \"remote\"\ntype = \"git\"\nurl = \"https://example.invalid/tasks.git\"\n",
            toml_path(&not_a_plugin),
            toml_path(&garbage)
        ),
    );

    let plugins = taskreg.run(&["plugins"]);
    plugins.assert_code(1);
    let refusal = format!("{}: not a taskreg plugin", not_a_plugin.display());
    assert!(plugins.stderr.contains(&refusal), "{}", plugins.stderr);
    assert!(
        plugins
            .stderr
            .contains(&format!("{}: cannot open the library", garbage.display()))
    );
    assert!(plugins.stdout.contains("filesystem"), "built-in kinds are still listed");

    let sync = taskreg.run(&["--json", "sync"]);
    sync.assert_code(1);
    assert!(sync.stderr.contains(&refusal), "{}", sync.stderr);
    let report = sync.json();
    assert_eq!(
        source_report(&report, "remote")["status"],
        "failed",
        "its kind is not loaded"
    );
    assert_eq!(available_versions(&taskreg), ["solid@1.0.0"]);
}

/// The files of the plugin guide (`docs/plugins.md`), written to `dir` as the guide says,
/// with its dependency on `registry-plugin-api` pointed at `api`.
fn write_guide_example(dir: &Path, api: &Path, package: &str) {
    let guide = std::fs::read_to_string(repository_root().join("docs/plugins.md")).expect("read the guide");
    let mut written = 0;
    for block in guide.split("<!-- guide-file: ").skip(1) {
        let (name, rest) = block.split_once(" -->").expect("a file name");
        let code = rest.split("```").nth(1).expect("a fenced block after the file name");
        let code = code.split_once('\n').map(|(_, body)| body).unwrap_or(code);
        let code = code
            .replace(
                "{ path = \"../taskreg/registry-plugin-api\" }",
                &format!("{{ path = {} }}", toml_path(api)),
            )
            .replace("name = \"greeting-source\"", &format!("name = \"{package}\""));
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, code).unwrap();
        written += 1;
    }
    assert_eq!(written, 2, "the guide shows Cargo.toml and src/lib.rs");
    // Outside the workspace, with the workspace's lock file and dependency profile so
    // that the dependencies it shares with the workspace are not compiled again.
    let mut manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    manifest.push_str("\n[workspace]\n\n[profile.dev.package.\"*\"]\nopt-level = 2\ndebug = false\n");
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(repository_root().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
}

fn build_outside(dir: &Path, package: &str) -> PathBuf {
    let manifest = dir.join("Cargo.toml");
    build_cdylib(
        &["--offline", "--manifest-path", manifest.to_str().unwrap()],
        &package.replace('-', "_"),
    )
}

#[test]
fn the_guide_example_builds_loads_and_syncs() {
    let (work, taskreg) = workspace();
    let example = work.path().join("greeting-source");
    write_guide_example(
        &example,
        &repository_root().join("registry-plugin-api"),
        "guide-greeting-source",
    );
    let library = build_outside(&example, "guide-greeting-source");
    taskreg.configure(&format!(
        "[[plugins]]\npath = {}\n\n[[sources]]\nname = \"greetings\"\ntype = \"greeting\"\nword = \"Hello\"\n",
        toml_path(&library)
    ));

    let listed = taskreg.run(&["--json", "plugins"]).assert_code(0).json();
    let kind = listed["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "greeting")
        .unwrap_or_else(|| panic!("no greeting kind: {listed:#}"));
    assert_eq!(kind["origin"], library.display().to_string());
    assert_eq!(kind["plugin"], "greeting");
    assert_eq!(kind["interface_version"], listed["host_interface_version"]);
    let builtin = listed["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "filesystem")
        .unwrap();
    assert_eq!(builtin["origin"], "built-in");

    let report = taskreg.run(&["--json", "sync"]).assert_code(0).json();
    assert_eq!(report["added"], 1, "{report:#}");
    let shown = taskreg.run(&["--json", "show", "greeting"]).assert_code(0).json();
    assert!(shown.to_string().contains("Greets with Hello"), "{shown:#}");

    // The kind's schema is enforced before the plugin is called.
    taskreg.configure(&format!(
        "[[plugins]]\npath = {}\n\n[[sources]]\nname = \"greetings\"\ntype = \"greeting\"\n",
        toml_path(&library)
    ));
    let run: Run = taskreg.run(&["sync"]);
    run.assert_code(2);
    assert!(run.stderr.contains("\"word\" is a required property"), "{}", run.stderr);
}

#[test]
fn a_plugin_built_for_another_interface_version_is_refused() {
    let (work, taskreg) = workspace();
    // The same guide plugin, built against a copy of registry-plugin-api whose version
    // (the interface version abi_stable compares) is a major version ahead.
    let api = work.path().join("registry-plugin-api-1.0.0");
    copy_folder(&repository_root().join("registry-plugin-api"), &api);
    let manifest = std::fs::read_to_string(api.join("Cargo.toml")).unwrap();
    let mut bumped = manifest.replacen("version = \"0.1.0\"", "version = \"1.0.0\"", 1);
    assert_ne!(bumped, manifest, "the interface version is set in the manifest");
    // Outside the workspace, the `workspace = true` keys need values of their own.
    bumped = bumped
        .replace("edition.workspace = true", "edition = \"2024\"")
        .replace("rust-version.workspace = true", "")
        .replace("license.workspace = true", "")
        .replace("publish.workspace = true", "")
        .replace("abi_stable.workspace = true", "abi_stable = \"0.11.3\"")
        .replace(
            "serde.workspace = true",
            "serde = { version = \"1\", features = [\"derive\"] }",
        )
        .replace("serde_json.workspace = true", "serde_json = \"1\"")
        .replace(
            "zip = { workspace = true, optional = true }",
            "zip = { version = \"9\", default-features = false, optional = true }",
        )
        .replace(
            "schemars = { workspace = true, optional = true }",
            "schemars = { version = \"1\", optional = true }",
        );
    std::fs::write(api.join("Cargo.toml"), bumped).unwrap();
    let example = work.path().join("future-plugin");
    write_guide_example(&example, &api, "future-greeting-source");
    let library = build_outside(&example, "future-greeting-source");
    taskreg.configure(&format!(
        "[[plugins]]\npath = {}\n\n[[sources]]\nname = \"greetings\"\ntype = \"greeting\"\nword = \"Hi\"\n",
        toml_path(&library)
    ));

    let run = taskreg.run(&["plugins"]);
    run.assert_code(1);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("plugin refused"))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(line.contains(&library.display().to_string()), "{line}");
    assert!(
        line.contains("interface 1.0.0") && line.contains("interface 0.1.0"),
        "both versions: {line}"
    );
    assert!(!run.stdout.contains("greeting"), "the kind is not offered");

    // Loaded by a child process, the library is refused in the same words.
    taskreg.configure(&format!(
        "[[plugins]]\npath = {}\nisolation = \"process\"\n",
        toml_path(&library)
    ));
    let isolated = taskreg.run(&["plugins"]);
    isolated.assert_code(1);
    assert!(isolated.stderr.contains(line), "{}", isolated.stderr);
}

/// gix sends credentials over https only; over plain http (all a test can serve without
/// a certificate authority) it refuses, which shows that the source's own token reached
/// the transport, and that nothing else (environment, credential helpers, a prompt) did.
fn a_git_source_over_http_fetches_and_offers_only_its_own_token_never_in_clear_text(isolation: &str) {
    let (work, taskreg) = workspace();
    task_repository(work.path());
    // `Basic` with `x-access-token:s3cret-token`, the plugin's default user name.
    let server = GitHttpServer::start(work.path(), "Basic eC1hY2Nlc3MtdG9rZW46czNjcmV0LXRva2Vu");
    let source = |name: &str, path: &str, credentials: &str| {
        format!(
            "[[sources]]\nname = \"{name}\"\ntype = \"git\"\nurl = \"{}/{path}\"\nsubdirectory = \"tasks\"\n{credentials}\n",
            server.url
        )
    };
    let sources = [
        source("public", "upstream", ""),
        source("with-token", "private/upstream", "token = \"s3cret-token\"\n"),
        source("without-token", "private/upstream", ""),
    ]
    .concat();
    taskreg.configure(&git_config(&plugin_library("git-source"), isolation, &sources));

    let report = taskreg.run(&["--json", "sync"]).assert_code(0).json();
    assert_eq!(source_report(&report, "public")["status"], "ok", "{report:#}");
    assert_eq!(available_versions(&taskreg), ["alpha@1.0.0", "beta@1.0.0"]);
    let with_token = failure_of(&report, "with-token");
    assert!(
        with_token.contains("Will not send credentials in clear text"),
        "{with_token}"
    );
    let without_token = failure_of(&report, "without-token");
    assert!(
        without_token.contains("No credentials were returned"),
        "{without_token}"
    );
}

#[test]
fn a_plugin_folder_loads_every_library_in_it_and_refuses_a_second_provider_of_a_kind() {
    let (work, taskreg) = workspace();
    let folder = work.path().join("plugins");
    std::fs::create_dir_all(&folder).unwrap();
    let library = plugin_library("misbehaving-plugin");
    let extension = std::env::consts::DLL_EXTENSION;
    // Two copies of one plugin: both are libraries, and both offer the kind `misbehaving`.
    std::fs::copy(&library, folder.join(format!("a-first.{extension}"))).unwrap();
    std::fs::copy(&library, folder.join(format!("b-second.{extension}"))).unwrap();
    std::fs::write(folder.join("README.txt"), "not a library, not looked at").unwrap();
    taskreg.configure("[[plugins]]\ndir = \"plugins\"\n");

    let run = taskreg.run(&["--json", "plugins"]);
    run.assert_code(1);
    let listed = run.json();
    let misbehaving: Vec<&serde_json::Value> = listed["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kind"] == "misbehaving")
        .collect();
    assert_eq!(misbehaving.len(), 1, "{listed:#}");
    assert!(
        misbehaving[0]["origin"]
            .as_str()
            .unwrap()
            .ends_with(&format!("a-first.{extension}"))
    );
    let refused = listed["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{listed:#}");
    let refusal = refused[0].as_str().unwrap();
    assert!(
        refusal.contains(&format!("b-second.{extension}")) && refusal.contains("already provided by"),
        "{refusal}"
    );
}

fn a_git_source_over_https_authenticates_with_its_own_token_and_trusts_its_ca_file(isolation: &str) {
    let (work, taskreg) = workspace();
    task_repository(work.path());
    let (server, authority) = GitHttpServer::start_https(work.path(), "Basic eC1hY2Nlc3MtdG9rZW46czNjcmV0LXRva2Vu");
    std::fs::write(work.path().join("authority.pem"), authority).unwrap();
    std::fs::write(work.path().join("token"), "s3cret-token\n").unwrap();
    let source = |name: &str, settings: &str| {
        format!(
            "[[sources]]\nname = \"{name}\"\ntype = \"git\"\nurl = \"{}/private/upstream\"\nsubdirectory = \"tasks\"\n{settings}\n",
            server.url
        )
    };
    let sources = [
        source("trusted", "ca_file = \"authority.pem\"\ntoken_file = \"token\"\n"),
        source("no-token", "ca_file = \"authority.pem\"\n"),
        source("unknown-authority", "token = \"s3cret-token\"\n"),
    ]
    .concat();
    taskreg.configure(&git_config(&plugin_library("git-source"), isolation, &sources));

    let report = taskreg.run(&["--json", "sync"]).assert_code(0).json();
    assert_eq!(source_report(&report, "trusted")["status"], "ok", "{report:#}");
    assert_eq!(available_versions(&taskreg), ["alpha@1.0.0", "beta@1.0.0"]);
    let no_token = failure_of(&report, "no-token");
    assert!(no_token.contains("No credentials were returned"), "{no_token}");
    let unknown_authority = failure_of(&report, "unknown-authority");
    assert!(unknown_authority.contains("UnknownIssuer"), "{unknown_authority}");
}
