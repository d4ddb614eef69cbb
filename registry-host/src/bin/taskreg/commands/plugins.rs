//! `taskreg plugins`: every source kind this configuration can build, built in or from
//! which plugin library, with versions, and where each library runs (in process, or
//! isolated: its child's PID and restarts). Exit 1 when a configured library was refused.

use super::Globals;
use std::process::ExitCode;

/// `taskreg plugins`: every kind this configuration can build, and where it comes from.
pub fn run(globals: &Globals) -> anyhow::Result<ExitCode> {
    let json = globals.json;
    #[derive(serde::Serialize)]
    struct KindRow {
        kind: String,
        description: String,
        origin: String,
        plugin: String,
        plugin_version: String,
        interface_version: Option<String>,
        isolation: &'static str,
        child: Option<registry_host::plugins::ChildStatus>,
    }
    let builder = globals.builder()?.source_builder();
    let mut rows: Vec<KindRow> = builder
        .kinds
        .iter()
        .chain(registry_core::kinds())
        .map(|k| KindRow {
            kind: k.name.to_string(),
            description: k.description.to_string(),
            origin: "built-in".into(),
            plugin: "taskreg".into(),
            plugin_version: env!("CARGO_PKG_VERSION").into(),
            interface_version: None,
            isolation: "in-process",
            child: None,
        })
        .collect();
    for library in &builder.plugins.libraries {
        rows.extend(library.info.kinds.iter().map(|k| KindRow {
            kind: k.name.clone(),
            description: k.description.clone(),
            origin: library.path.display().to_string(),
            plugin: library.info.name.clone(),
            plugin_version: library.info.version.clone(),
            interface_version: Some(library.interface_version.clone()),
            isolation: if library.child_status().is_some() {
                "process"
            } else {
                "in-process"
            },
            child: library.child_status(),
        }));
    }
    let refused: Vec<String> = builder.plugins.refused.iter().map(ToString::to_string).collect();
    if json {
        let out = serde_json::json!({
            "host_interface_version": registry_host::plugins::HOST_INTERFACE_VERSION,
            "kinds": rows,
            "refused": refused,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("plugin interface {}", registry_host::plugins::HOST_INTERFACE_VERSION);
        for row in &rows {
            let interface = row
                .interface_version
                .as_deref()
                .map(|v| format!(", interface {v}"))
                .unwrap_or_default();
            let isolation = match row.child {
                Some(child) => format!(
                    ", isolated: pid {}, {} restart{}",
                    child.pid.map_or("none".to_owned(), |p| p.to_string()),
                    child.restarts,
                    if child.restarts == 1 { "" } else { "s" }
                ),
                None => String::new(),
            };
            println!(
                "{:<12} {} {} ({}{interface}{isolation})",
                row.kind, row.plugin, row.plugin_version, row.origin
            );
            println!("{:<12} {}", "", row.description);
        }
        for line in &refused {
            eprintln!("error: plugin refused: {line}");
        }
    }
    Ok(if refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
