//! Syntax highlighting of task scripts on the server, with tree-sitter's JavaScript grammar:
//! the page is coloured without running JavaScript in the browser, and tree-sitter's HTML
//! renderer escapes the script's text.

use maud::{Markup, PreEscaped, html};
use std::sync::LazyLock;
use tree_sitter_highlight::{HighlightConfiguration, Highlighter, HtmlRenderer};

/// The captures the stylesheet colours (class `hl-NAME`, dots as dashes); tree-sitter maps
/// each of the grammar's captures to the longest of these it starts with.
const NAMES: [&str; 14] = [
    "comment",
    "constant",
    "constructor",
    "function",
    "function.builtin",
    "keyword",
    "number",
    "operator",
    "property",
    "punctuation",
    "string",
    "string.special",
    "variable",
    "variable.builtin",
];

/// Scripts longer than this are shown plain: a page is for reading, not for megabytes.
const MAX_HIGHLIGHTED: usize = 1 << 20;

/// `class="hl-…"` for each of [`NAMES`], as the renderer writes them.
static CLASSES: LazyLock<Vec<String>> = LazyLock::new(|| {
    NAMES
        .iter()
        .map(|name| format!("class=\"hl-{}\"", name.replace('.', "-")))
        .collect()
});

/// The grammar's queries, compiled once.
static JAVASCRIPT: LazyLock<Option<HighlightConfiguration>> = LazyLock::new(|| {
    let mut config = HighlightConfiguration::new(
        tree_sitter_javascript::LANGUAGE.into(),
        "javascript",
        tree_sitter_javascript::HIGHLIGHT_QUERY,
        tree_sitter_javascript::INJECTIONS_QUERY,
        tree_sitter_javascript::LOCALS_QUERY,
    )
    .map_err(|e| tracing::warn!("the JavaScript highlighting queries do not compile: {e}"))
    .ok()?;
    config.configure(&NAMES);
    Some(config)
});

/// `script` as HTML with highlighting spans, or as plain escaped text when it cannot be
/// highlighted (too long, or the grammar failed).
pub(super) fn javascript(script: &str) -> Markup {
    highlighted(script).map_or_else(|| html! { (script) }, PreEscaped)
}

fn highlighted(script: &str) -> Option<String> {
    if script.len() > MAX_HIGHLIGHTED {
        return None;
    }
    let config = JAVASCRIPT.as_ref()?;
    let mut highlighter = Highlighter::new();
    let events = highlighter
        .highlight(config, script.as_bytes(), None, None, |_| None)
        .ok()?;
    let mut renderer = HtmlRenderer::new();
    renderer
        .render(events, script.as_bytes(), &|highlight, out: &mut Vec<u8>| {
            out.extend_from_slice(CLASSES[highlight.0].as_bytes());
        })
        .ok()?;
    // The renderer ends every line with a newline, the script's last one included.
    let mut html = String::from_utf8(renderer.html).ok()?;
    if !script.ends_with('\n') && html.ends_with('\n') {
        html.pop();
    }
    Some(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_strings_and_comments_get_classes_and_markup_in_the_script_is_escaped() {
        let html =
            javascript("// <b>note</b>\n(function (input) { return { s: \"</script>\" + input.a }; })").into_string();
        assert!(
            html.contains("<span class=\"hl-comment\">// &lt;b&gt;note&lt;/b&gt;</span>"),
            "{html}"
        );
        assert!(html.contains("<span class=\"hl-keyword\">function</span>"), "{html}");
        assert!(html.contains("<span class=\"hl-keyword\">return</span>"), "{html}");
        assert!(
            html.contains("<span class=\"hl-string\">&quot;&lt;/script&gt;&quot;</span>"),
            "{html}"
        );
        assert!(!html.contains("</script>"), "{html}");
        assert!(!html.ends_with('\n'));
    }

    #[test]
    fn a_script_too_long_to_highlight_is_shown_plain_and_escaped() {
        let long = format!("var a = \"<i>\";{}", " ".repeat(MAX_HIGHLIGHTED));
        let html = javascript(&long).into_string();
        assert!(
            html.starts_with("var a = &quot;&lt;i&gt;&quot;;") && !html.contains("<span"),
            "{}",
            &html[..40]
        );
    }
}
