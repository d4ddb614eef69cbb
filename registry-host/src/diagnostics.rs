//! Problems rendered like compiler diagnostics: the offending line of the file, a caret
//! under the spot, the code and the message (miette's graphical report).

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource, Report};
use registry_core::{Problem, Severity};
use std::path::Path;

/// The most of a file read to show its offending line: past it, the problem is shown
/// without the excerpt (an oversized file is itself the problem).
const MAX_SHOWN_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A file's bytes for an excerpt: a regular file, not too large, read without blocking (a
/// FIFO named `main.js` is reported, never waited on).
fn read_shown_file(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    #[cfg(not(unix))]
    if !std::fs::metadata(path).ok()?.is_file() {
        return None;
    }
    let file = options.open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_SHOWN_FILE_BYTES {
        return None;
    }
    let mut text = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_SHOWN_FILE_BYTES).read_to_end(&mut text).ok()?;
    Some(text)
}

/// Renders `problem`, found in the task folder `folder` (shown as `shown`).
pub fn render(problem: &Problem, folder: &Path, shown: &str, color: bool) -> String {
    let mut diagnostic = MietteDiagnostic::new(problem.message.clone())
        .with_code(problem.code.clone())
        .with_severity(match problem.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        });
    let source = problem.file.as_ref().and_then(|file| {
        let text = read_shown_file(&folder.join(file))?;
        Some((file, String::from_utf8_lossy(&text).into_owned()))
    });
    let report = match source {
        Some((file, text)) => {
            match offset_of(problem, &text) {
                Some(offset) => {
                    let label = problem
                        .pointer
                        .as_deref()
                        .filter(|p| !p.is_empty())
                        .map(|p| format!("at {p}"));
                    diagnostic = diagnostic.with_label(LabeledSpan::new(label, offset, span_length(&text, offset)));
                }
                None => diagnostic = diagnostic.with_help(format!("in {shown}/{file}")),
            }
            Report::new(diagnostic).with_source_code(NamedSource::new(format!("{shown}/{file}"), text))
        }
        None => {
            let at = problem
                .file
                .as_ref()
                .map_or_else(|| shown.to_owned(), |f| format!("{shown}/{f}"));
            Report::new(diagnostic.with_help(format!("in {at}")))
        }
    };
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let mut out = String::new();
    let _ = GraphicalReportHandler::new_themed(theme).render_report(&mut out, report.as_ref());
    out
}

/// Where in `text` the problem is: its exact line and column, else the JSON pointer's key.
fn offset_of(problem: &Problem, text: &str) -> Option<usize> {
    if let (Some(line), Some(column)) = (problem.line, problem.column) {
        let start = text
            .split_inclusive('\n')
            .take(line.saturating_sub(1) as usize)
            .map(str::len)
            .sum::<usize>();
        let in_line = text[start..]
            .chars()
            .take(column.saturating_sub(1) as usize)
            .map(char::len_utf8)
            .sum::<usize>();
        return Some((start + in_line).min(text.len()));
    }
    problem
        .pointer
        .as_deref()
        .and_then(|pointer| locate_pointer(text, pointer))
}

/// The byte offset of the last object key of `pointer` found in `text`, searching each
/// key after the previous one. A display aid, not a JSON parser: it is right for the way
/// task files are written, and falls back to the last key it found.
pub fn locate_pointer(text: &str, pointer: &str) -> Option<usize> {
    let mut from = 0;
    let mut found = None;
    for segment in pointer.split('/').skip(1) {
        let key = segment.replace("~1", "/").replace("~0", "~");
        if key.parse::<usize>().is_ok() {
            continue; // an array index: the key search goes on inside the array
        }
        let quoted = serde_json::Value::String(key).to_string();
        let mut search = from;
        let at = loop {
            let position = search + text.get(search..)?.find(&quoted)?;
            let after = text[position + quoted.len()..].trim_start();
            if after.starts_with(':') {
                break position;
            }
            search = position + quoted.len();
        };
        found = Some(at);
        from = at + quoted.len();
    }
    found
}

/// Underline to the end of the token: the rest of the line, at most 40 characters.
fn span_length(text: &str, offset: usize) -> usize {
    let rest = &text[offset..];
    let line = rest.split('\n').next().unwrap_or("").trim_end();
    line.chars().take(40).map(char::len_utf8).sum::<usize>().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_are_found_key_by_key_and_keys_inside_values_are_skipped() {
        let text = "{\n  \"label\": \"version\",\n  \"version\": \"one\",\n  \"nested\": { \"version\": 2 }\n}";
        assert_eq!(locate_pointer(text, "/version"), text.find("\"version\":"));
        let nested = text.find("{ \"version\"").unwrap() + 2;
        assert_eq!(locate_pointer(text, "/nested/version"), Some(nested));
        assert_eq!(locate_pointer(text, "/missing"), None);
        assert_eq!(locate_pointer("{\"a\": [{\"b\": 1}]}", "/a/0/b"), Some(8));
    }

    #[test]
    fn a_rendered_problem_shows_the_line_and_the_code() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.js"), "(function (input) {\n  const x = ;\n})\n").unwrap();
        let problem = Problem::error("script.syntax", "Unexpected token")
            .in_file("main.js")
            .at_position(2, 13);
        let out = render(&problem, dir.path(), "tasks/t", false);
        assert!(out.contains("script.syntax"), "{out}");
        assert!(out.contains("tasks/t/main.js:2:13"), "{out}");
        assert!(out.contains("const x = ;"), "{out}");
    }
}
