//! Checking task folders and archives without a database: the same load, parse and
//! checks as a sync, reported instead of stored.

use super::RegistryError;
use crate::config::path_source_spec;
use crate::sources::SourceBuilder;
use crate::sync::{SyncOptions, load_and_check};
use futures::StreamExt;
use registry_core::{LoadOutcome, Problem, SignaturePolicy, Source, SourceKind, SourceSpec, Validation};
use std::path::PathBuf;
use std::sync::Arc;

/// One problem `validate` found, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The path as given.
    pub path: PathBuf,
    /// The task's locator inside it (`.` or empty for the path itself).
    pub locator: String,
    /// What is wrong.
    pub problem: Problem,
}

impl Finding {
    /// The task's folder as people write it: the path, then the locator inside it.
    pub fn shown(&self) -> String {
        let path = self.path.display().to_string();
        if self.locator.is_empty() || self.locator == "." {
            path
        } else {
            format!("{path}/{}", self.locator)
        }
    }
}

/// What [`Registry::validate`](super::Registry::validate) found.
#[derive(Debug, Clone, Default)]
pub struct ValidationReport {
    /// Tasks that parsed and passed every error-level rule.
    pub valid: usize,
    /// Tasks refused, and paths that could not be scanned.
    pub invalid: usize,
    /// Every problem, errors and warnings, in path order.
    pub findings: Vec<Finding>,
    /// Whether warnings count as failures (the rules' `strict`).
    pub strict: bool,
}

impl ValidationReport {
    /// Error-severity findings.
    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.problem.is_error()).count()
    }

    /// Warning-severity findings.
    pub fn warnings(&self) -> usize {
        self.findings.len() - self.errors()
    }

    /// Whether the paths fail validation: any error, or any finding when strict.
    pub fn failed(&self) -> bool {
        if self.strict {
            !self.findings.is_empty()
        } else {
            self.errors() > 0
        }
    }
}

/// Ad-hoc sources for paths (a folder, or a `.zip`), reading at most what `validation` allows.
pub(super) fn path_specs(paths: &[PathBuf], validation: &Validation) -> Vec<SourceSpec> {
    paths
        .iter()
        .map(|p| SourceSpec {
            limits: validation.read_limits(),
            ..path_source_spec(p)
        })
        .collect()
}

pub(super) async fn validate_paths(
    paths: &[PathBuf],
    validation: &Validation,
    signatures: &Arc<SignaturePolicy>,
    kinds: &[SourceKind],
) -> Result<ValidationReport, RegistryError> {
    let specs = path_specs(paths, validation);
    let builder = SourceBuilder {
        kinds: kinds.to_vec(),
        ..SourceBuilder::default()
    };
    let sources = builder.build(&specs)?;
    let mut report = ValidationReport {
        strict: validation.strict,
        ..ValidationReport::default()
    };
    for (path, source) in paths.iter().zip(&sources) {
        let scan = match source.scan().await {
            Ok(scan) => scan,
            Err(e) => {
                report.invalid += 1;
                report.findings.push(Finding {
                    path: path.clone(),
                    locator: String::new(),
                    problem: Problem::error("source.scan_failed", e.to_string()),
                });
                continue;
            }
        };
        // What the scan said about the tree (a folder that looks like a task and is not
        // one, an unreadable folder): reported as `sync` stores it.
        for issue in &scan.issues {
            if issue.severity == registry_core::Severity::Error {
                report.invalid += 1;
            }
            report.findings.push(Finding {
                path: path.clone(),
                locator: issue.locator.clone(),
                problem: Problem {
                    severity: issue.severity,
                    ..Problem::error(issue.code, issue.message.clone())
                },
            });
        }
        for (locator, outcome) in load_all(source.as_ref(), &scan.entries, validation, signatures).await {
            let problems = match outcome {
                LoadOutcome::Parsed { warnings, .. } => {
                    report.valid += 1;
                    warnings
                }
                LoadOutcome::Broken(problems) => {
                    report.invalid += 1;
                    problems
                }
            };
            report.findings.extend(problems.into_iter().map(|problem| Finding {
                path: path.clone(),
                locator: locator.clone(),
                problem,
            }));
        }
    }
    Ok(report)
}

/// Loads and checks every entry (a sync's loads, without a cache), as `(locator, outcome)`.
pub(crate) async fn load_all(
    source: &dyn Source,
    entries: &[registry_core::Entry],
    validation: &Validation,
    signatures: &Arc<SignaturePolicy>,
) -> Vec<(String, LoadOutcome)> {
    futures::stream::iter(entries)
        .map(|entry| async move {
            (
                entry.locator.clone(),
                load_and_check(source, entry, validation, signatures, None).await,
            )
        })
        .buffered(SyncOptions::default().concurrency)
        .collect()
        .await
}
