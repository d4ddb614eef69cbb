//! The plugin interface carries its own copy of the task-folder rules
//! (`registry_plugin_api::layout`), because plugins may not depend on `registry-core`. The
//! host links both, so it checks here that the copy says what the core says.

use registry_plugin_api::layout;

#[test]
fn the_plugin_layout_rules_agree_with_the_core_and_the_filesystem_source() {
    let paths = [
        "metadata.json",
        "main.js",
        "input.schema.json",
        "output.schema.json",
        "tests/one.json",
        "tests/.hidden.json",
        "tests/deep/two.json",
        "tests/notes.md",
        "README.md",
        "main.js.bak",
        "sub/metadata.json",
        "meta.yaml",
        "meta.yml",
        "task.js",
        "helper.cjs",
        "module.mjs",
        ".hidden.js",
        ".js",
        "lib/util.js",
        "signature.minisig",
        "tests/signature.minisig",
    ];
    for path in paths {
        assert_eq!(
            layout::is_task_file(path),
            registry_core::is_task_file(path),
            "`{path}` is judged differently"
        );
    }
    assert_eq!(layout::METADATA, registry_core::task_files::METADATA);
    assert_eq!(layout::META_YAML, registry_core::task_files::META_YAML);
    assert_eq!(layout::SIGNATURE, registry_core::SIGNATURE_FILE);
    for name in ["metadata.json", "meta.yaml", "meta.yml", "main.js"] {
        assert_eq!(
            layout::is_task_marker(name),
            registry_core::layout::is_task_marker(name),
            "{name}"
        );
    }
    assert_eq!(layout::TASK_LIKE_FILES, registry_core::layout::TASK_LIKE_FILES);
    assert_eq!(
        layout::unrecognized_message(&["main.js"]),
        registry_core::layout::unrecognized_message(&["main.js"])
    );

    // The filesystem source skips hidden folders and node_modules: a tree holding a task in
    // each folder below shows which ones it walks, and the plugin rule must skip the same.
    let root = tempfile::tempdir().unwrap();
    let folders = [
        ".git",
        ".drafts",
        "node_modules",
        "visible",
        "node_modules_old",
        "_private",
    ];
    for folder in folders {
        registry_host::generate::write_named_task(&root.path().join(folder).join("t"), folder, "1.0.0", 1).unwrap();
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let scan = runtime
        .block_on(registry_core::Source::scan(&fs_source::FsSource::new(
            "layout",
            root.path(),
        )))
        .unwrap();
    for folder in folders {
        let walked = scan.entries.iter().any(|e| e.locator == format!("{folder}/t"));
        assert_eq!(walked, !layout::is_skipped_folder(folder), "`{folder}`");
    }
}
