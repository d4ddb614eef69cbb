//! Pluggable validation: which rules a task is checked against, and how hard each counts.
//!
//! A rule is a [`Validator`] registered with `inventory`:
//!
//! ```
//! use registry_core::{ParsedTask, Problem, RegisteredValidator, ValidationContext, Validator};
//!
//! struct NoTodo;
//!
//! impl Validator for NoTodo {
//!     fn rule(&self) -> &'static str { "no-todo" }
//!     fn description(&self) -> &'static str { "main.js has no TODO left" }
//!     fn check(&self, task: &ParsedTask, _: &ValidationContext, out: &mut Vec<Problem>) {
//!         if task.task.script().contains("TODO") {
//!             out.push(Problem::warning("no-todo.found", "main.js still has a TODO").in_file("main.js"));
//!         }
//!     }
//! }
//!
//! inventory::submit!(RegisteredValidator(&NoTodo));
//! ```
//!
//! Built-in rules:
//! - `metadata` — name format, label and description;
//! - `schemas` — both schemas are valid JSON Schema for their draft and compile (local
//!   `$ref`s only: remote and file references are refused, never fetched); a missing one is
//!   a warning;
//! - `tests` — every test case has `input` and `expected_output`, valid against the schemas
//!   (a case that cannot be checked because its schema does not compile is reported, never
//!   a pass); `warn` by default;
//! - `script` — the script parses as JavaScript and is a function expression or defines or
//!   exports `main`;
//! - `uuid` — the `uuid` is a UUID (else the UUIDv5 of the name is used); `warn` by default;
//! - `limits` — per-file and per-task size caps and a file-count cap, checked before parsing.
//!
//! The configuration sets each rule to `error` (findings count as reported), `warn` (errors
//! become warnings: the task is accepted) or `off`. A rule not configured runs at its
//! [`Validator::default_level`]; `strict` runs every rule not configured at `error`.

mod limits;
mod metadata;
mod schemas;
mod script;
mod test_cases;
mod uuid;

pub use metadata::{MetadataValidator, check_metadata};

use crate::CoreError;
use crate::problem::{Problem, Severity};
use crate::source::{Bundle, Limits};
use crate::task::TaskDefinition;
use crate::task::{ParsedTask, parse_bundle};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

/// What every validator may consult besides the task.
#[derive(Debug, Clone, Default)]
pub struct ValidationContext {
    pub limits: Limits,
}

/// One rule. Both hooks do nothing by default: implement the one the rule needs.
pub trait Validator: Send + Sync {
    /// The rule's name in the configuration and in problem codes (`schemas`).
    fn rule(&self) -> &'static str;
    fn description(&self) -> &'static str;
    /// The level the rule runs at when the configuration does not set one (and `strict`
    /// is off). Rules whose findings do not stop a task from running default to `warn`.
    fn default_level(&self) -> RuleLevel {
        RuleLevel::Error
    }
    /// Looks at the raw files before anything is parsed (sizes, counts).
    fn check_bundle(&self, _bundle: &Bundle, _context: &ValidationContext, _out: &mut Vec<Problem>) {}
    /// Looks at the parsed task.
    fn check(&self, _task: &ParsedTask, _context: &ValidationContext, _out: &mut Vec<Problem>) {}
}

/// A validator made available to configurations.
pub struct RegisteredValidator(pub &'static dyn Validator);

inventory::collect!(RegisteredValidator);

/// Every registered validator, sorted by rule name.
pub fn validators() -> Vec<&'static dyn Validator> {
    let mut all: Vec<&'static dyn Validator> = inventory::iter::<RegisteredValidator>
        .into_iter()
        .map(|r| r.0)
        .collect();
    all.sort_by_key(|v| v.rule());
    all
}

/// How much a rule's findings count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleLevel {
    /// As the rule reports them: errors keep the task out of the catalogue.
    Error,
    /// Errors become warnings: reported, and the task is accepted.
    Warn,
    /// Not run.
    Off,
}

/// The configured rules. Cheap to clone and share between loads.
#[derive(Clone)]
pub struct Validation {
    rules: Arc<Vec<(&'static dyn Validator, RuleLevel)>>,
    pub context: ValidationContext,
    /// Every rule not configured runs at `error`, and warnings fail `taskreg validate`.
    pub strict: bool,
}

impl Default for Validation {
    fn default() -> Self {
        Validation::configure(&BTreeMap::new(), ValidationContext::default(), false).expect("no levels to reject")
    }
}

impl std::fmt::Debug for Validation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rules: Vec<(&str, RuleLevel)> = self.rules.iter().map(|(v, l)| (v.rule(), *l)).collect();
        f.debug_struct("Validation")
            .field("rules", &rules)
            .field("strict", &self.strict)
            .finish()
    }
}

impl Validation {
    /// Every registered rule, at `levels[rule]`, else its default level (`error` for all
    /// when `strict`). A level for a rule nobody
    /// registered is refused, so a typo cannot switch a rule off silently.
    pub fn configure(
        levels: &BTreeMap<String, RuleLevel>,
        context: ValidationContext,
        strict: bool,
    ) -> Result<Self, CoreError> {
        Validation::configure_with(levels, context, strict, &[])
    }

    /// As [`Validation::configure`], with rules a host application adds at run time on
    /// top of the registered ones (a rule of the same name replaces the registered one).
    pub fn configure_with(
        levels: &BTreeMap<String, RuleLevel>,
        context: ValidationContext,
        strict: bool,
        extra: &[&'static dyn Validator],
    ) -> Result<Self, CoreError> {
        let mut all = validators();
        all.retain(|v| !extra.iter().any(|e| e.rule() == v.rule()));
        all.extend_from_slice(extra);
        all.sort_by_key(|v| v.rule());
        if let Some(unknown) = levels
            .keys()
            .find(|rule| !all.iter().any(|v| v.rule() == rule.as_str()))
        {
            return Err(CoreError::UnknownRule {
                rule: unknown.clone(),
                known: all.iter().map(|v| v.rule()).collect::<Vec<_>>().join(", "),
            });
        }
        let rules = all
            .into_iter()
            .map(|v| {
                let default = if strict { RuleLevel::Error } else { v.default_level() };
                (v, levels.get(v.rule()).copied().unwrap_or(default))
            })
            .filter(|(_, level)| *level != RuleLevel::Off)
            .collect();
        Ok(Validation {
            rules: Arc::new(rules),
            context,
            strict,
        })
    }

    /// What a check with these rules depends on, as a short text: the rules and their
    /// levels, the limits, `strict`, and this crate's version (a new taskreg may check
    /// differently). Two validations with the same identity find the same problems.
    pub fn identity(&self) -> String {
        use sha2::Digest as _;
        let rules: Vec<String> = self
            .rules
            .iter()
            .map(|(rule, level)| format!("{}={level:?}", rule.rule()))
            .collect();
        let text = format!(
            "{}|{}|strict={}|{:?}",
            env!("CARGO_PKG_VERSION"),
            rules.join(","),
            self.strict,
            self.context.limits
        );
        hex::encode(&sha2::Sha256::digest(text.as_bytes())[..8])
    }

    /// The most a source may read of one task. With the `limits` rule at `error` that is
    /// the configured limits (a larger file could only be refused after reading); at `warn`
    /// or `off` it is [`Limits::READ_CEILING`], so an oversized task is still read and
    /// accepted, and reading stays bounded either way.
    pub fn read_limits(&self) -> Limits {
        let enforced = self
            .rules
            .iter()
            .any(|(v, level)| v.rule() == "limits" && *level == RuleLevel::Error);
        if enforced {
            self.context.limits
        } else {
            Limits::READ_CEILING
        }
    }

    /// The rules that run, with their levels.
    pub fn rules(&self) -> impl Iterator<Item = (&'static dyn Validator, RuleLevel)> + '_ {
        self.rules.iter().copied()
    }

    fn run(&self, mut hook: impl FnMut(&dyn Validator, &mut Vec<Problem>), out: &mut Vec<Problem>) {
        for (validator, level) in self.rules.iter() {
            let start = out.len();
            hook(*validator, out);
            if *level == RuleLevel::Warn {
                for problem in &mut out[start..] {
                    problem.severity = Severity::Warning;
                }
            }
        }
    }
}

/// Parses and checks one bundle: the step between load and merge, and all that
/// `taskreg validate` does. Any error makes the task `Broken`; warnings travel with it.
pub fn check_bundle(bundle: &Bundle, validation: &Validation) -> LoadOutcome {
    let mut problems = Vec::new();
    validation.run(|v, out| v.check_bundle(bundle, &validation.context, out), &mut problems);
    if problems.iter().any(Problem::is_error) {
        return LoadOutcome::Broken(problems);
    }
    match parse_bundle(bundle) {
        Err(parse_problems) => {
            problems.extend(parse_problems);
            LoadOutcome::Broken(problems)
        }
        Ok(parsed) => {
            problems.extend(parsed.warnings.iter().cloned());
            // The repository's index is a description, never the truth: warnings only.
            if let Some(indexed) = &bundle.indexed {
                problems.extend(crate::layout::repository::check_indexed(indexed, &parsed));
            }
            validation.run(|v, out| v.check(&parsed, &validation.context, out), &mut problems);
            if problems.iter().any(Problem::is_error) {
                LoadOutcome::Broken(problems)
            } else {
                LoadOutcome::Parsed {
                    task: Arc::new(parsed.task),
                    warnings: problems,
                    modified: bundle.modified,
                }
            }
        }
    }
}

/// What loading, parsing and checking one entry gave.
#[derive(Debug, Clone)]
pub enum LoadOutcome {
    Parsed {
        task: Arc<TaskDefinition>,
        /// Warnings only: a task with an error is `Broken`.
        warnings: Vec<Problem>,
        modified: Option<SystemTime>,
    },
    Broken(Vec<Problem>),
}
