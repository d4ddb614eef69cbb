//! `script`: the script (`main.js`, or the `meta.yaml` entrypoint) parses as JavaScript
//! (oxc) and is a function expression — `(function (input) { … })` — assigns one to
//! `module.exports`, exports an object with `main` (CommonJS `module.exports = { main }`),
//! or defines or exports `main`.

use super::{RegisteredValidator, ValidationContext, Validator};
use crate::problem::Problem;
use crate::task::ParsedTask;
use oxc_allocator::Allocator;
use oxc_ast::ast::{BindingPatternKind, Declaration, Expression, Statement};
use oxc_parser::Parser;
use oxc_span::SourceType;

pub struct ScriptValidator;

inventory::submit!(RegisteredValidator(&ScriptValidator));

impl Validator for ScriptValidator {
    fn rule(&self) -> &'static str {
        "script"
    }

    fn description(&self) -> &'static str {
        "the script parses as JavaScript and is a function expression or defines or exports `main`"
    }

    fn check(&self, task: &ParsedTask, _: &ValidationContext, out: &mut Vec<Problem>) {
        let source = task.task.script();
        let file = task.task.script_path();
        let allocator = Allocator::default();
        // Modules are strict and allow import/export; plain scripts are what most tasks are.
        let looks_like_module = file.ends_with(".mjs")
            || (!file.ends_with(".cjs") && (source.contains("export ") || source.contains("import ")));
        let source_type = if looks_like_module {
            SourceType::mjs()
        } else {
            SourceType::cjs()
        };
        let parsed = Parser::new(&allocator, source, source_type).parse();
        if let Some(error) = parsed.errors.first() {
            let offset = error.labels.as_ref().and_then(|l| l.first()).map_or(0, |l| l.offset());
            let (line, column) = line_and_column(source, offset);
            let more = match parsed.errors.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            out.push(
                Problem::error("script.syntax", format!("{}{more}", error.message))
                    .in_file(file)
                    .at_position(line, column),
            );
            return;
        }
        if !parsed.program.body.iter().any(is_entry_point) {
            out.push(
                Problem::error(
                    "script.no_entry_point",
                    format!(
                        "{file} is neither a function expression `(function (input) {{ … }})` nor defines or exports `main`"
                    ),
                )
                .in_file(file),
            );
        }
    }
}

fn is_entry_point(statement: &Statement<'_>) -> bool {
    match statement {
        Statement::ExpressionStatement(e) => match e.expression.without_parentheses() {
            // `module.exports = function (input) { … }`, `exports.main = …`, and CommonJS
            // `module.exports = { main }` / `{ main: function … }`.
            Expression::AssignmentExpression(a) => {
                a.left.is_member_expression()
                    && (is_function(a.right.without_parentheses()) || exports_main(a.right.without_parentheses()))
            }
            expression => is_function(expression),
        },
        Statement::FunctionDeclaration(f) => f.id.as_ref().is_some_and(|id| id.name == "main"),
        Statement::VariableDeclaration(v) => v.declarations.iter().any(|d| binds_main(&d.id.kind)),
        Statement::ExportNamedDeclaration(e) => match &e.declaration {
            Some(Declaration::FunctionDeclaration(f)) => f.id.as_ref().is_some_and(|id| id.name == "main"),
            Some(Declaration::VariableDeclaration(v)) => v.declarations.iter().any(|d| binds_main(&d.id.kind)),
            _ => e.specifiers.iter().any(|s| s.exported.name() == "main"),
        },
        Statement::ExportDefaultDeclaration(_) => true,
        _ => false,
    }
}

/// An object literal with a `main` property: `{ main }`, `{ main: run }`.
fn exports_main(expression: &Expression<'_>) -> bool {
    let Expression::ObjectExpression(object) = expression else {
        return false;
    };
    object.properties.iter().any(|property| match property {
        oxc_ast::ast::ObjectPropertyKind::ObjectProperty(p) => p.key.static_name().is_some_and(|n| n == "main"),
        oxc_ast::ast::ObjectPropertyKind::SpreadProperty(_) => false,
    })
}

fn is_function(expression: &Expression<'_>) -> bool {
    matches!(
        expression,
        Expression::FunctionExpression(_) | Expression::ArrowFunctionExpression(_)
    )
}

fn binds_main(pattern: &BindingPatternKind<'_>) -> bool {
    matches!(pattern, BindingPatternKind::BindingIdentifier(id) if id.name == "main")
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_and_column(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line as u32, column as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters_from_one() {
        assert_eq!(line_and_column("ab\ncé\nx", 0), (1, 1));
        assert_eq!(line_and_column("ab\ncé\nx", 3), (2, 1));
        assert_eq!(line_and_column("ab\ncé\nx", "ab\ncé\n".len()), (3, 1));
        assert_eq!(line_and_column("ab\ncé", "ab\ncé".len()), (2, 3));
    }
}
