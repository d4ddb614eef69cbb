//! How results look: one line per thing for people, JSON with `--json`. Commands call
//! these; nothing here talks to the registry.

use anyhow::Context;
use registry_core::Problem;
use registry_host::store::{OriginRef, ProblemRow, StoredTask};
use registry_host::sync::{SyncError, SyncReport};
use registry_host::watch::Trigger;
use serde_json::{Value, json};

/// One line per run of `watch`: a JSON object with `--json`, a summary otherwise.
pub fn report_run(
    trigger: Trigger,
    result: &Result<SyncReport, SyncError>,
    cache: Option<&registry_host::cache::CheckCache>,
    json: bool,
) {
    match result {
        Ok(report) if json => {
            let mut line = serde_json::to_value(report).unwrap_or_default();
            line["trigger"] = json!(format!("{trigger:?}").to_lowercase());
            if let Some(cache) = cache {
                line["cache_hits"] = json!(cache.hits());
                line["cache_misses"] = json!(cache.misses());
            }
            println!("{line}");
        }
        Ok(report) => {
            let c = &report.counts;
            println!(
                "{:?}: {} added, {} updated, {} missing, {} revived, {} invalid in {} ms{}",
                trigger,
                c.added,
                c.updated,
                c.missing,
                c.revived,
                c.invalid,
                report.duration_ms,
                if report.written { "" } else { " (nothing to write)" }
            );
        }
        Err(e) => eprintln!("error: {trigger:?} run failed: {e}"),
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

pub fn print_status(status: &registry_host::store::Status) {
    if status.sources.is_empty() {
        println!("no source scanned yet");
    }
    for s in &status.sources {
        let part = s
            .rescanned_folders()
            .map(|r| format!(" (rescanned {})", r.join(", ")))
            .unwrap_or_default();
        println!(
            "{} [{}] {}: {} at {}, {} ms, {} task(s){}{}",
            s.name,
            s.kind,
            s.location,
            s.status,
            format_millis(s.scanned_at),
            s.duration_ms,
            s.tasks,
            if s.complete { "" } else { ", incomplete" },
            part
        );
        if let Some(error) = &s.error {
            println!("  failing {} time(s) in a row: {error}", s.failures);
        } else if let (Some(error), Some(at)) = (&s.last_error, s.last_error_at) {
            println!("  last failure {}: {error}", format_millis(at));
        }
    }
    for p in &status.processes {
        print!(
            "{} on {} (pid {}) since {}, last report {}",
            p.role.as_str(),
            p.host,
            p.pid,
            format_millis(p.started_at),
            format_millis(p.updated_at),
        );
        if p.cache_hits + p.cache_misses + p.cache_entries > 0 {
            print!(
                ": cache {} hit(s), {} miss(es), {} task(s) held",
                p.cache_hits, p.cache_misses, p.cache_entries
            );
        }
        println!();
    }
}

/// Unix milliseconds as an RFC 3339 time, for people.
pub fn format_millis(millis: i64) -> String {
    jiff::Timestamp::from_millisecond(millis).map_or_else(
        |_| millis.to_string(),
        |t| t.round(jiff::Unit::Second).unwrap_or(t).to_string(),
    )
}

pub fn print_sync_report(report: &SyncReport) {
    let c = &report.counts;
    println!(
        "synced {} source(s) in {} ms: {} added, {} updated, {} unchanged, {} missing, {} revived, {} invalid, {} conflicts{}",
        report.sources.len(),
        report.duration_ms,
        c.added,
        c.updated,
        c.unchanged,
        c.missing,
        c.revived,
        c.invalid,
        c.conflicts,
        if report.written { "" } else { " (nothing to write)" }
    );
    for source in &report.sources {
        match &source.error {
            Some(error) => println!("  source {}: FAILED, its tasks are kept: {error}", source.name),
            None => println!(
                "  source {}: {} task(s){}",
                source.name,
                source.tasks,
                if source.complete {
                    ""
                } else {
                    " (partial scan: nothing removed)"
                }
            ),
        }
    }
    for p in &report.problems {
        print_problem(&p.problem, &location(&p.source, &p.locator, &p.problem));
    }
}

/// `source:locator/file#pointer`, the way a stored problem is located for people.
pub fn location(source: &str, locator: &str, problem: &Problem) -> String {
    let folder = if locator.is_empty() {
        source.to_owned()
    } else {
        format!("{source}:{locator}")
    };
    within(folder, problem)
}

/// `folder/file#pointer`.
pub fn within(mut at: String, problem: &Problem) -> String {
    if let Some(file) = &problem.file {
        at.push('/');
        at.push_str(file);
    }
    if let Some(pointer) = problem.pointer.as_deref().filter(|p| !p.is_empty()) {
        at.push('#');
        at.push_str(pointer);
    }
    at
}

pub fn print_problem(problem: &Problem, at: &str) {
    println!(
        "{}[{}]: {}\n  --> {at}",
        problem.severity, problem.code, problem.message
    );
}

pub fn problem_row_json(row: &ProblemRow) -> Value {
    json!({
        "source": row.source,
        "locator": row.locator,
        "severity": row.problem.severity,
        "code": row.problem.code,
        "message": row.problem.message,
        "file": row.problem.file,
        "pointer": row.problem.pointer,
    })
}

pub fn parse_stored(what: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("stored {what} is not JSON"))
}

pub fn task_json(task: &StoredTask, origins: &[OriginRef]) -> anyhow::Result<Value> {
    let optional = |what: &str, text: &Option<String>| text.as_deref().map(|t| parse_stored(what, t)).transpose();
    Ok(json!({
        "name": task.name,
        "version": task.version,
        "uuid": task.uuid,
        "digest": task.digest,
        "available": task.available,
        "metadata": parse_stored("metadata", &task.metadata)?,
        "script": task.script,
        "input_schema": optional("input schema", &task.input_schema)?,
        "output_schema": optional("output schema", &task.output_schema)?,
        "tests": parse_stored("tests", &task.tests)?,
        "files": task.files().map_err(anyhow::Error::msg)?,
        "sources": origins,
        "first_seen": task.first_seen,
        "last_seen": task.last_seen,
        "missing_since": task.missing_since,
        "content_updated_at": task.content_updated_at,
        "signed": task.signature.is_signed(),
        "signed_by": task.signature.signed_by,
        "signature_verified_at": task.signature.verified_at,
    }))
}

pub fn print_task(task: &StoredTask, origins: &[OriginRef]) {
    let metadata: Value = serde_json::from_str(&task.metadata).unwrap_or(Value::Null);
    let text = |key: &str| metadata.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    let tests: Vec<Value> = serde_json::from_str(&task.tests).unwrap_or_default();
    println!(
        "{} {}{}",
        task.name,
        task.version,
        if task.available { "" } else { " (unavailable)" }
    );
    println!("  label:       {}", text("label"));
    println!("  description: {}", text("description"));
    println!("  uuid:        {}", task.uuid);
    println!("  digest:      {}", task.digest);
    println!(
        "  schemas:     input {}, output {}",
        yes_no(&task.input_schema),
        yes_no(&task.output_schema)
    );
    println!("  tests:       {}", tests.len());
    let signature = &task.signature;
    match (&signature.signed_by, signature.verified_at) {
        (Some(key), Some(at)) => println!("  signed by:   key {key} (verified {})", format_millis(at)),
        (Some(key), None) => println!("  signed by:   key {key}"),
        (None, _) if signature.is_signed() => println!("  signed by:   a key that is not trusted (unverified)"),
        (None, _) => println!("  signed by:   unsigned"),
    }
    for origin in origins {
        println!("  source:      {} ({})", origin.source, origin.locator);
    }
    println!("--- main.js ---\n{}", task.script.trim_end());
}

pub fn yes_no(value: &Option<String>) -> &'static str {
    if value.is_some() { "yes" } else { "no" }
}
