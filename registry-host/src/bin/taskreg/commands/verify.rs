//! `taskreg verify [--public-key FILE]… PATH…`: check each task's signature against the
//! keys given (default: the config's `[signatures] trusted_keys`), without a database.

use super::Globals;
use anyhow::{Context, bail};
use registry_core::{SignatureMode, SignaturePolicy, TrustedKey};
use std::path::PathBuf;
use std::process::ExitCode;

pub async fn run(globals: &Globals, public_keys: &[PathBuf], paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let builder = globals.builder()?;
    let keys = if public_keys.is_empty() {
        builder.signature_policies().default.keys().to_vec()
    } else {
        public_keys
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                TrustedKey::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    if keys.is_empty() {
        bail!("no public key to verify with: give --public-key FILE, or set `[signatures] trusted_keys`");
    }
    let policy = SignaturePolicy::new(SignatureMode::Require, keys);
    let report = registry_host::signing::verify_paths(paths, &policy, &builder.validation()?, &[]).await?;
    super::sign::print(globals, &report, |task| {
        let failed = report
            .findings
            .iter()
            .any(|f| f.shown() == task.shown && f.problem.is_error());
        if failed { "refused" } else { "verified" }.to_owned()
    })?;
    Ok(if report.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
