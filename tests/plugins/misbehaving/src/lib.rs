//! A source plugin built to misbehave on request, for the host's end-to-end tests.
//!
//! Kind `misbehaving`; settings: `in` (`scan` or `load`, default `scan`) and `does`
//! (default `work`). Working, it offers one task, `misbehaving-task` 1.0.0. Otherwise:
//! - `fail`: returns an error; `panic`: panics;
//! - `hang`: sleeps until the host cancels the call, and logs that it noticed;
//! - `abort`, `segfault` (a write through a null pointer), `exit` (status 3): end the
//!   process, which only an isolated library survives;
//! - `oom`: allocates and touches memory until an allocation fails (then aborts), giving
//!   up with an error past 4 GiB so that a run without a limit does not take the machine;
//! - `spin`: a busy loop that never checks for cancellation;
//! - `env`: fails with the names of the environment variables it can see, sorted;
//! - `print`: prints to stdout and stderr, then works.

use registry_plugin_api::*;
use std::time::Duration;

struct Misbehaving;

impl SourcePlugin for Misbehaving {
    fn info() -> PluginInfo {
        PluginInfo::new("misbehaving", env!("CARGO_PKG_VERSION")).kind(
            KindInfo::new("misbehaving", "one task, or a failure on request").schema(serde_json::json!({
                "type": "object",
                "properties": {
                    "in": { "enum": ["scan", "load"] },
                    "does": { "enum": ["work", "fail", "panic", "hang", "abort", "segfault", "exit", "oom", "spin", "env", "print"] }
                },
                "additionalProperties": false
            })),
        )
    }

    fn open(request: SourceRequest, _host: Host) -> Result<Box<dyn PluginSource>, PluginError> {
        let setting = |key: &str, default: &str| {
            request
                .config
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or(default)
                .to_string()
        };
        Ok(Box::new(MisbehavingSource {
            call: setting("in", "scan"),
            does: setting("does", "work"),
        }))
    }
}

struct MisbehavingSource {
    call: String,
    does: String,
}

impl MisbehavingSource {
    fn act(&self, call: &str, host: &Host) -> Result<(), PluginError> {
        if self.call != call {
            return Ok(());
        }
        match self.does.as_str() {
            "fail" => Err(PluginError::new("broken", format!("{call} failed on purpose")).retryable()),
            "panic" => panic!("{call} panicked on purpose"),
            "hang" => {
                while !host.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(10));
                }
                host.warn(&format!("{call} noticed the cancellation"));
                Err(host.cancelled_error())
            }
            "abort" => std::process::abort(),
            "segfault" => {
                // SAFETY: none; crashing the process is the point.
                unsafe { std::ptr::null_mut::<u8>().write_volatile(1) };
                Ok(())
            }
            "exit" => std::process::exit(3),
            "oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                while hoard.len() < 64 {
                    hoard.push(vec![1u8; 64 << 20]);
                }
                Err(PluginError::new(
                    "oom",
                    format!("{} MiB allocated and nobody stopped me", hoard.len() * 64),
                ))
            }
            "spin" => loop {
                std::hint::spin_loop();
            },
            "env" => {
                let mut names: Vec<String> = std::env::vars_os()
                    .map(|(k, _)| k.to_string_lossy().into_owned())
                    .collect();
                names.sort();
                Err(PluginError::new("env", format!("environment: {}", names.join(" "))))
            }
            "print" => {
                println!("misbehaving prints to stdout in {call}");
                eprintln!("misbehaving prints to stderr in {call}");
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl PluginSource for MisbehavingSource {
    fn location(&self) -> String {
        format!("does `{}` in `{}`", self.does, self.call)
    }

    fn scan(&self, host: &Host) -> Result<Scan, PluginError> {
        self.act("scan", host)?;
        Ok(Scan::complete(vec![Entry {
            locator: "misbehaving-task".into(),
            fingerprint: "1".into(),
        }]))
    }

    fn load(&self, _locator: &str, host: &Host) -> Result<Bundle, PluginError> {
        self.act("load", host)?;
        let metadata = serde_json::json!({ "name": "misbehaving-task", "version": "1.0.0" });
        Ok(Bundle {
            files: vec![
                ("metadata.json".into(), metadata.to_string().into_bytes()),
                ("main.js".into(), b"(function (input) { return input; })".to_vec()),
                ("input.schema.json".into(), br#"{"type": "object"}"#.to_vec()),
                ("output.schema.json".into(), br#"{"type": "object"}"#.to_vec()),
            ],
            folder_name: Some("misbehaving-task".into()),
            modified: None,
        })
    }
}

export_source_plugin!(Misbehaving);
