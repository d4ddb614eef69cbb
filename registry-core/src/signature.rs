//! Who published a task version: minisign (Ed25519) signatures over a statement that binds
//! the task's name, version and digest, and the trust policy that judges them.
//!
//! A publisher signs the [`statement`] of a version, not its files: the digest already
//! stands for every file, and naming the task and version in the signed text means a
//! signature made for one task or version never verifies for another. The signature lives
//! in [`SIGNATURE_FILE`] beside the task's files and is not part of the digest (signing a
//! task does not change its content). `docs/signing.md` is the reference.

use crate::digest::Digest;
use crate::problem::Problem;
use base64::Engine as _;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The file holding a task's signature, in the task's folder.
pub const SIGNATURE_FILE: &str = "signature.minisig";

/// The first line of every signed statement; names the statement's format.
pub const STATEMENT_HEADER: &str = "taskreg task signature v1";

/// The text a publisher signs for one version of a task:
///
/// ```text
/// taskreg task signature v1
/// name: addition
/// version: 1.0.0
/// digest: sha256:…
/// ```
///
/// Each line ends with `\n`, the last included.
pub fn statement(name: &str, version: &str, digest: &Digest) -> String {
    format!("{STATEMENT_HEADER}\nname: {name}\nversion: {version}\ndigest: {digest}\n")
}

/// A minisign key id: 8 bytes, shown as minisign shows them (16 upper-case hex digits of
/// the little-endian number).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

impl KeyId {
    fn from_slice(bytes: &[u8]) -> KeyId {
        let mut id = [0u8; 8];
        id.copy_from_slice(&bytes[..8]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for KeyId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let number = u64::from_str_radix(text, 16).map_err(|e| format!("key id `{text}` is not 16 hex digits: {e}"))?;
        if text.len() != 16 {
            return Err(format!("key id `{text}` is not 16 hex digits"));
        }
        Ok(KeyId(number.to_le_bytes()))
    }
}

/// Whether signatures are checked, and whether a task must have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureMode {
    /// Signatures are not read: every task is unsigned to the catalogue.
    Off,
    /// A signature that does not verify is an error; an unsigned task is accepted, and one
    /// signed by a key not trusted is accepted as unverified (with a warning).
    #[default]
    Verify,
    /// Every task must carry a signature by a trusted key.
    Require,
}

impl SignatureMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureMode::Off => "off",
            SignatureMode::Verify => "verify",
            SignatureMode::Require => "require",
        }
    }
}

impl FromStr for SignatureMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "off" => Ok(SignatureMode::Off),
            "verify" => Ok(SignatureMode::Verify),
            "require" => Ok(SignatureMode::Require),
            other => Err(format!("`{other}` is not a signature mode (off, verify, require)")),
        }
    }
}

/// A public key a policy trusts.
#[derive(Clone)]
pub struct TrustedKey {
    id: KeyId,
    /// The key as minisign writes it on its own line (base64).
    base64: String,
    key: minisign_verify::PublicKey,
}

impl fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustedKey({})", self.id)
    }
}

impl TrustedKey {
    /// A key from a minisign public key file's text (comment line, key line) or from the
    /// key line alone.
    pub fn parse(text: &str) -> Result<TrustedKey, String> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or("no public key in the text")?;
        let key =
            minisign_verify::PublicKey::from_base64(line).map_err(|e| format!("not a minisign public key: {e}"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(line)
            .map_err(|e| format!("not a minisign public key: {e}"))?;
        Ok(TrustedKey {
            id: KeyId::from_slice(&bytes[2..10]),
            base64: line.to_owned(),
            key,
        })
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The key line (base64), as `trusted_keys` may hold it.
    pub fn base64(&self) -> &str {
        &self.base64
    }
}

/// A task's signature as read and judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSignature {
    /// The signature file's text, as published.
    pub text: String,
    /// The key that made it (as the signature names it).
    pub key_id: KeyId,
    /// It verified against a key the policy trusts.
    pub trusted: bool,
}

impl TaskSignature {
    /// The key of a verified signature.
    pub fn signer(&self) -> Option<KeyId> {
        self.trusted.then_some(self.key_id)
    }
}

/// What the host trusts: a [`SignatureMode`] and the keys that may sign. The default
/// verifies signatures and trusts no key.
#[derive(Debug, Clone)]
pub struct SignaturePolicy {
    pub mode: SignatureMode,
    keys: Vec<TrustedKey>,
    identity: Arc<str>,
}

/// What [`SignaturePolicy::judge`] made of one task's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Nothing to record: unsigned (and allowed), or the policy is off.
    Unsigned,
    /// Signed; verified when the signature's key is trusted. Warnings travel with it.
    Signed(TaskSignature, Option<Problem>),
    /// The version is refused from this source.
    Refused(Problem),
}

impl Default for SignaturePolicy {
    fn default() -> Self {
        SignaturePolicy::new(SignatureMode::default(), Vec::new())
    }
}

impl SignaturePolicy {
    /// A policy trusting `keys`; the same key twice counts once.
    pub fn new(mode: SignatureMode, mut keys: Vec<TrustedKey>) -> SignaturePolicy {
        keys.sort_by(|a, b| a.base64.cmp(&b.base64));
        keys.dedup_by(|a, b| a.base64 == b.base64);
        let identity = match mode {
            SignatureMode::Off => String::new(),
            _ => {
                use sha2::Digest as _;
                let text: Vec<&str> = keys.iter().map(|k| k.base64.as_str()).collect();
                let hash = sha2::Sha256::digest(text.join(",").as_bytes());
                format!("{}:{}", mode.as_str(), hex::encode(&hash[..6]))
            }
        };
        SignaturePolicy {
            mode,
            keys,
            identity: identity.into(),
        }
    }

    /// What a judgement under this policy depends on, as a short text (`""` when off):
    /// signatures checked under another identity are checked again.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    /// Whether `key` is trusted.
    pub fn trusts(&self, key: KeyId) -> bool {
        self.keys.iter().any(|k| k.id == key)
    }

    /// Whether content whose verified signer is `signer` may be offered under this policy
    /// (under `require`, only content signed by a key still trusted).
    pub fn admits(&self, signer: Option<KeyId>) -> bool {
        self.mode != SignatureMode::Require || signer.is_some_and(|k| self.trusts(k))
    }

    /// Judges the signature file (`signature`, its bytes if the task has one) of the task
    /// `name` `version` with `digest`.
    pub fn judge(&self, name: &str, version: &str, digest: &Digest, signature: Option<&[u8]>) -> Judgement {
        let in_file = |p: Problem| p.in_file(SIGNATURE_FILE);
        if self.mode == SignatureMode::Off {
            return Judgement::Unsigned;
        }
        let Some(bytes) = signature else {
            return match self.mode {
                SignatureMode::Require => Judgement::Refused(in_file(Problem::error(
                    "signature.missing",
                    format!("the task is not signed ({SIGNATURE_FILE} is missing) and signatures are required"),
                ))),
                _ => Judgement::Unsigned,
            };
        };
        let invalid = |why: String| Judgement::Refused(in_file(Problem::error("signature.invalid", why)));
        let Ok(text) = std::str::from_utf8(bytes) else {
            return invalid(format!("{SIGNATURE_FILE} is not text, so not a minisign signature"));
        };
        let decoded = match minisign_verify::Signature::decode(text) {
            Ok(decoded) => decoded,
            Err(e) => return invalid(format!("{SIGNATURE_FILE} is not a minisign signature ({e})")),
        };
        let key_id = match signature_key_id(text) {
            Some(id) => id,
            None => return invalid(format!("{SIGNATURE_FILE} names no key")),
        };
        let signed = |trusted| TaskSignature {
            text: text.to_owned(),
            key_id,
            trusted,
        };
        let Some(key) = self.keys.iter().find(|k| k.id == key_id) else {
            let message = format!("signed by key {key_id}, which is not among the trusted keys");
            return match self.mode {
                SignatureMode::Require => {
                    Judgement::Refused(in_file(Problem::error("signature.untrusted_key", message)))
                }
                _ => Judgement::Signed(
                    signed(false),
                    Some(in_file(Problem::warning("signature.untrusted_key", message))),
                ),
            };
        };
        match key
            .key
            .verify(statement(name, version, digest).as_bytes(), &decoded, false)
        {
            Ok(()) => Judgement::Signed(signed(true), None),
            Err(e) => invalid(format!(
                "the signature by key {key_id} does not verify for {name} {version} with digest {digest} ({e}): \
                 the task changed after it was signed, or the signature was made for another task or version"
            )),
        }
    }
}

/// The key id a minisign signature's text names (its second line, bytes 2..10).
pub fn signature_key_id(text: &str) -> Option<KeyId> {
    let line = text.lines().nth(1)?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(line.trim()).ok()?;
    (bytes.len() >= 10).then(|| KeyId::from_slice(&bytes[2..10]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_read_and_print_as_minisign_prints_them() {
        let id: KeyId = "E72E6A08A2BBA51F".parse().unwrap();
        assert_eq!(id.to_string(), "E72E6A08A2BBA51F");
        assert!("E72E".parse::<KeyId>().is_err());
        // The key of minisign-verify's documentation: its id as minisign prints it.
        let key = TrustedKey::parse("RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3").unwrap();
        assert_eq!(key.id().to_string(), "E7620F1842B4E81F");
    }

    #[test]
    fn the_statement_names_the_task_the_version_and_the_digest() {
        let digest = Digest::of_files([("main.js", b"x".as_slice())]);
        assert_eq!(
            statement("addition", "1.0.0", &digest),
            format!("taskreg task signature v1\nname: addition\nversion: 1.0.0\ndigest: {digest}\n")
        );
    }

    #[test]
    fn a_policy_identity_changes_with_its_mode_and_keys_not_their_order() {
        let a = TrustedKey::parse("RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3").unwrap();
        let off = SignaturePolicy::new(SignatureMode::Off, vec![a.clone()]);
        let verify = SignaturePolicy::new(SignatureMode::Verify, vec![a.clone()]);
        let verify_twice = SignaturePolicy::new(SignatureMode::Verify, vec![a.clone(), a.clone()]);
        let require = SignaturePolicy::new(SignatureMode::Require, vec![a]);
        let none = SignaturePolicy::new(SignatureMode::Verify, vec![]);
        assert_eq!(off.identity(), "");
        assert_eq!(verify.identity(), verify_twice.identity());
        assert_ne!(verify.identity(), require.identity());
        assert_ne!(verify.identity(), none.identity());
    }

    #[test]
    fn missing_and_malformed_signatures_are_judged_by_the_mode() {
        let digest = Digest::of_files([("main.js", b"x".as_slice())]);
        let verify = SignaturePolicy::new(SignatureMode::Verify, vec![]);
        let require = SignaturePolicy::new(SignatureMode::Require, vec![]);
        let off = SignaturePolicy::new(SignatureMode::Off, vec![]);
        assert_eq!(verify.judge("t", "1.0.0", &digest, None), Judgement::Unsigned);
        assert_eq!(off.judge("t", "1.0.0", &digest, Some(b"junk")), Judgement::Unsigned);
        let Judgement::Refused(missing) = require.judge("t", "1.0.0", &digest, None) else {
            panic!("an unsigned task under `require` is refused")
        };
        assert_eq!(missing.code, "signature.missing");
        let Judgement::Refused(junk) = verify.judge("t", "1.0.0", &digest, Some(b"untrusted comment: x\nAAAA\n"))
        else {
            panic!("a malformed signature is refused")
        };
        assert_eq!(junk.code, "signature.invalid");
        assert_eq!(junk.file.as_deref(), Some(SIGNATURE_FILE));
    }
}
