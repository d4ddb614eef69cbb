//! `taskreg keygen --secret-key FILE --public-key FILE [--no-password]`: a minisign key pair
//! for signing tasks.

use super::Globals;
use anyhow::{Context, bail};
use registry_host::signing::{KeyPair, KeyPassword};
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

pub fn run(
    globals: &Globals,
    secret: &Path,
    public: &Path,
    no_password: bool,
    force: bool,
) -> anyhow::Result<ExitCode> {
    for path in [secret, public] {
        if path.exists() && !force {
            bail!("{} exists: keep it, or replace it with --force", path.display());
        }
    }
    let password = match std::env::var("TASKREG_KEY_PASSWORD") {
        _ if no_password => KeyPassword::None,
        Ok(password) if !password.is_empty() => KeyPassword::Given(password),
        _ => KeyPassword::Ask,
    };
    let files = KeyPair::generate(password)?;
    write_private(secret, &files.secret)?;
    std::fs::write(public, &files.public).with_context(|| format!("cannot write {}", public.display()))?;
    if globals.json {
        super::print_json(&json!({
            "key_id": files.key_id.to_string(),
            "secret_key": secret.display().to_string(),
            "public_key": public.display().to_string(),
        }))?;
    } else {
        println!(
            "key {}: secret key in {}, public key in {} (add it to `trusted_keys`)",
            files.key_id,
            secret.display(),
            public.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the secret key readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
