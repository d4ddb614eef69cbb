//! A source plugin built to misbehave on request, for the host's end-to-end tests.
//!
//! Kind `misbehaving`; settings: `in` (`scan` or `load`, default `scan`) and `does`
//! (`work`, `fail`, `panic` or `hang`, default `work`). Working, it offers one task,
//! `misbehaving-task` 1.0.0. Hanging, it sleeps until the host cancels the call and logs
//! that it noticed.

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
                    "does": { "enum": ["work", "fail", "panic", "hang"] }
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
