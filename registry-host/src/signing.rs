//! Signing and verifying task versions: the host's side of `registry_core::signature`.
//!
//! - A sync judges each loaded task's `signature.minisig` by its source's trust policy
//!   ([`judge_outcome`]): a refused signature makes the task broken from that source.
//! - Publishers make keys ([`KeyPair::generate`]) and sign task folders
//!   ([`sign_paths`]), in minisign's formats, so the standard `minisign` tool works too.
//! - [`verify_paths`] checks folders and archives without a catalogue.
//!
//! `docs/signing.md` describes the statement that is signed and the policy.

use crate::config::path_source_spec;
use crate::registry::Finding;
use crate::sources::SourceBuilder;
use registry_core::{
    Bundle, Judgement, LoadOutcome, Problem, SIGNATURE_FILE, SignaturePolicy, SourceKind, Validation, statement,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why keys could not be made or read, or a task not signed.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// A key file cannot be read or written.
    #[error("{path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// minisign refused (a wrong password, a damaged key).
    #[error("{0}")]
    Minisign(String),
    /// A path cannot be scanned.
    #[error("cannot read {path}: {reason}")]
    Scan {
        /// The path given.
        path: PathBuf,
        /// What the source said.
        reason: String,
    },
}

fn minisign_error(e: minisign::PError) -> SigningError {
    SigningError::Minisign(e.to_string())
}

/// Judges the signature of a loaded task by `policy`: records it on the task, adds an
/// untrusted key's warning, or makes the task broken (`signature.*`).
pub fn judge_outcome(outcome: LoadOutcome, bundle: &Bundle, policy: &SignaturePolicy) -> LoadOutcome {
    let LoadOutcome::Parsed {
        mut task,
        mut warnings,
        modified,
    } = outcome
    else {
        return outcome;
    };
    let signature = bundle.files.get(SIGNATURE_FILE).map(Vec::as_slice);
    match policy.judge(&task.name, &task.version.to_string(), &task.digest, signature) {
        Judgement::Unsigned => {}
        Judgement::Signed(signature, warning) => {
            // A task from the check cache is shared: the copy is made only then.
            Arc::make_mut(&mut task).signature = Some(Arc::new(signature));
            warnings.extend(warning);
        }
        Judgement::Refused(problem) => {
            warnings.push(problem);
            return LoadOutcome::Broken(warnings);
        }
    }
    LoadOutcome::Parsed {
        task,
        warnings,
        modified,
    }
}

/// A minisign key pair: the secret key signs, the public key goes into `trusted_keys`.
pub struct KeyPair {
    secret: minisign::SecretKey,
    public: minisign::PublicKey,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPair({})", self.key_id())
    }
}

/// The key files of a new pair, as minisign writes them.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    /// The key's id, as minisign prints it.
    pub key_id: registry_core::KeyId,
    /// The secret key file's text (encrypted with the password, when one was given).
    pub secret: String,
    /// The public key file's text.
    pub public: String,
}

/// How a secret key is protected.
#[derive(Debug, Clone)]
pub enum KeyPassword {
    /// Not encrypted (for automation).
    None,
    /// Encrypted with this password.
    Given(String),
    /// Encrypted with a password asked for on the terminal.
    Ask,
}

impl KeyPassword {
    fn into_minisign(self) -> Option<String> {
        match self {
            KeyPassword::Given(password) => Some(password),
            KeyPassword::None | KeyPassword::Ask => None,
        }
    }
}

impl KeyPair {
    /// The files of a new key pair; the secret key is encrypted unless `password` is
    /// [`KeyPassword::None`].
    pub fn generate(password: KeyPassword) -> Result<KeyFiles, SigningError> {
        let pair = match password {
            KeyPassword::None => minisign::KeyPair::generate_unencrypted_keypair(),
            other => minisign::KeyPair::generate_encrypted_keypair(other.into_minisign()),
        }
        .map_err(minisign_error)?;
        let secret = pair
            .sk
            .to_box(Some("taskreg secret key"))
            .map_err(minisign_error)?
            .to_string();
        let public = pair.pk.to_box().map_err(minisign_error)?.to_string();
        let key_id = registry_core::TrustedKey::parse(&public)
            .map_err(SigningError::Minisign)?
            .id();
        Ok(KeyFiles { key_id, secret, public })
    }

    /// Reads a secret key file; an encrypted one is opened with `password` (asked for on
    /// the terminal with [`KeyPassword::Ask`]). The public key is derived from it.
    pub fn from_secret_key_file(path: &Path, password: KeyPassword) -> Result<KeyPair, SigningError> {
        let key_file_error = |reason: String| SigningError::KeyFile {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| key_file_error(e.to_string()))?;
        let read_box = || {
            minisign::SecretKeyBox::from_string(&text)
                .map_err(|e| key_file_error(format!("not a minisign secret key: {e}")))
        };
        let secret = match read_box()?.into_unencrypted_secret_key() {
            Ok(secret) => secret,
            Err(_) if matches!(password, KeyPassword::None) => {
                return Err(key_file_error(
                    "the secret key is encrypted: give its password (TASKREG_KEY_PASSWORD)".into(),
                ));
            }
            Err(_) => read_box()?
                .into_secret_key(password.into_minisign())
                .map_err(|e| key_file_error(e.to_string()))?,
        };
        let public = minisign::PublicKey::from_secret_key(&secret).map_err(minisign_error)?;
        Ok(KeyPair { secret, public })
    }

    /// The key id, as minisign prints it.
    pub fn key_id(&self) -> registry_core::KeyId {
        // minisign's key numbers are 8 bytes by its format.
        registry_core::KeyId::from_bytes(self.public.keynum().try_into().unwrap_or_default())
    }

    /// The public key as `trusted_keys` takes it.
    pub fn public_key_base64(&self) -> String {
        self.public.to_base64()
    }

    /// The signature file of the task `name` `version` with `digest`: minisign's text.
    pub fn sign(&self, name: &str, version: &str, digest: &registry_core::Digest) -> Result<String, SigningError> {
        let text = statement(name, version, digest);
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let trusted = format!("timestamp:{timestamp}\ttask:{name}@{version}");
        let signature = minisign::sign(
            Some(&self.public),
            &self.secret,
            text.as_bytes(),
            Some(&trusted),
            Some("signature from taskreg secret key"),
        )
        .map_err(minisign_error)?;
        Ok(signature.to_string())
    }
}

/// What [`sign_paths`] did with one task.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The task's folder as people write it.
    pub shown: String,
    /// The task's name and version, when it parsed.
    pub task: Option<(String, String)>,
    /// Where its signature was written (`None`: refused, see the findings).
    pub written: Option<PathBuf>,
}

/// What [`sign_paths`] and [`verify_paths`] found.
#[derive(Debug, Clone, Default)]
pub struct SigningReport {
    /// Every task, in path order.
    pub tasks: Vec<Signed>,
    /// Every problem (a task that does not pass its checks is not signed).
    pub findings: Vec<Finding>,
}

impl SigningReport {
    /// Whether anything failed: a refused task or a bad or missing signature.
    pub fn failed(&self) -> bool {
        self.findings.iter().any(|f| f.problem.is_error())
    }
}

/// Checks every task under `paths` with `validation` and writes the signature of each one
/// that passes into its folder (`signature.minisig`). Tasks inside archives are refused:
/// sign the folder, then archive it.
pub async fn sign_paths(
    key: &KeyPair,
    paths: &[PathBuf],
    validation: &Validation,
    kinds: &[SourceKind],
) -> Result<SigningReport, SigningError> {
    let off = SignaturePolicy::new(registry_core::SignatureMode::Off, Vec::new());
    let (mut report, checked) = check_all(paths, validation, off, kinds).await?;
    for (entry, (path, locator, task)) in report.tasks.iter_mut().zip(checked) {
        let Some(task) = task else { continue };
        let Some(folder) = task_folder(&path, &locator) else {
            report.findings.push(Finding {
                path,
                locator,
                problem: Problem::error(
                    "signature.not_written",
                    "the task is inside an archive: sign its folder, then archive it",
                ),
            });
            continue;
        };
        let text = key.sign(&task.name, &task.version.to_string(), &task.digest)?;
        let file = folder.join(SIGNATURE_FILE);
        std::fs::write(&file, text).map_err(|e| SigningError::KeyFile {
            path: file.clone(),
            reason: e.to_string(),
        })?;
        entry.written = Some(file);
    }
    Ok(report)
}

/// Checks every task under `paths` and its signature by `policy`'s keys (a missing
/// signature is reported whatever the policy's mode): what `taskreg verify` prints.
pub async fn verify_paths(
    paths: &[PathBuf],
    policy: &SignaturePolicy,
    validation: &Validation,
    kinds: &[SourceKind],
) -> Result<SigningReport, SigningError> {
    let policy = SignaturePolicy::new(registry_core::SignatureMode::Require, policy.keys().to_vec());
    Ok(check_all(paths, validation, policy, kinds).await?.0)
}

/// What [`check_all`] found of one task: its path, locator and, when it passed, the task.
type Checked = (PathBuf, String, Option<Arc<registry_core::TaskDefinition>>);

/// Loads and checks every task under `paths` (signatures judged by `policy`): a report
/// with one entry per task and every problem, and the tasks that passed, in the same order.
async fn check_all(
    paths: &[PathBuf],
    validation: &Validation,
    policy: SignaturePolicy,
    kinds: &[SourceKind],
) -> Result<(SigningReport, Vec<Checked>), SigningError> {
    let policy = Arc::new(policy);
    let mut report = SigningReport::default();
    let mut checked = Vec::new();
    for path in paths {
        for (locator, outcome) in load_path(path, validation, &policy, kinds).await? {
            let finding = |problem: Problem| Finding {
                path: path.clone(),
                locator: locator.clone(),
                problem,
            };
            let (problems, task) = match outcome {
                LoadOutcome::Broken(problems) => (problems, None),
                LoadOutcome::Parsed { task, warnings, .. } => (warnings, Some(task)),
            };
            report.tasks.push(Signed {
                shown: finding(Problem::error("", "")).shown(),
                task: task.as_ref().map(|t| (t.name.clone(), t.version.to_string())),
                written: None,
            });
            report.findings.extend(problems.into_iter().map(finding));
            checked.push((path.clone(), locator, task));
        }
    }
    Ok((report, checked))
}

/// Loads and checks every task at `path` (a folder of tasks, a task folder, an archive).
async fn load_path(
    path: &Path,
    validation: &Validation,
    policy: &Arc<SignaturePolicy>,
    kinds: &[SourceKind],
) -> Result<Vec<(String, LoadOutcome)>, SigningError> {
    let scan_error = |reason: String| SigningError::Scan {
        path: path.to_owned(),
        reason,
    };
    let spec = registry_core::SourceSpec {
        limits: validation.read_limits(),
        ..path_source_spec(path)
    };
    let builder = SourceBuilder {
        kinds: kinds.to_vec(),
        ..SourceBuilder::default()
    };
    let source = builder.build_one(&spec).map_err(|e| scan_error(e.to_string()))?;
    let scan = source.scan().await.map_err(|e| scan_error(e.to_string()))?;
    let mut outcomes = crate::registry::load_all(source.as_ref(), &scan.entries, validation, policy).await;
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(outcomes)
}

/// The folder of the task at `locator` under `path`, unless it is inside an archive.
fn task_folder(path: &Path, locator: &str) -> Option<PathBuf> {
    if path.is_file() {
        return None;
    }
    let mut folder = path.to_owned();
    for part in locator.split('/').filter(|p| !p.is_empty() && *p != ".") {
        folder.push(part);
        if folder.is_file() {
            return None; // an archive inside the tree
        }
    }
    folder.is_dir().then_some(folder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_pairs_id_is_the_id_its_public_key_is_trusted_under() {
        let files = KeyPair::generate(KeyPassword::None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("key.sec");
        std::fs::write(&secret, &files.secret).unwrap();
        let pair = KeyPair::from_secret_key_file(&secret, KeyPassword::None).unwrap();
        assert_eq!(pair.key_id(), files.key_id);
        let trusted = registry_core::TrustedKey::parse(&pair.public_key_base64()).unwrap();
        assert_eq!(pair.key_id(), trusted.id());
        assert_eq!(format!("{pair:?}"), format!("KeyPair({})", files.key_id));
    }
}
