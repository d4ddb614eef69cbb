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
    /// The id of minisign's key number `bytes` (as stored in its key and signature files).
    pub fn from_bytes(bytes: [u8; 8]) -> KeyId {
        KeyId(bytes)
    }

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
    key: ed25519_dalek::VerifyingKey,
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
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(line)
            .map_err(|e| format!("not a minisign public key: {e}"))?;
        // "Ed", the key id, the Ed25519 key: 2 + 8 + 32 bytes.
        if bytes.len() != 42 || bytes[..2] != *b"Ed" {
            return Err("not a minisign public key (expected `Ed`, a key id and an Ed25519 key)".into());
        }
        let key_bytes: [u8; 32] = bytes[10..42].try_into().expect("32 bytes");
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key_bytes)
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
        let decoded = match MinisignSignature::decode(text) {
            Ok(decoded) => decoded,
            Err(why) => return invalid(format!("{SIGNATURE_FILE} is not a minisign signature: {why}")),
        };
        let key_id = decoded.key_id;
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
        match decoded.verify(key, statement(name, version, digest).as_bytes()) {
            Ok(()) => Judgement::Signed(signed(true), None),
            Err(why) => invalid(format!(
                "the signature by key {key_id} does not verify for {name} {version} with digest {digest} ({why}): \
                 the task changed after it was signed, or the signature was made for another task or version"
            )),
        }
    }
}

/// A minisign signature file, decoded: an untrusted comment line, the signature line
/// (base64 of the algorithm, the key id and the Ed25519 signature of the message's
/// BLAKE2b-512 hash), the trusted comment line and the global signature (over the signature
/// and the trusted comment). Only prehashed signatures (`ED`, what minisign has made by
/// default since 0.8) are accepted.
struct MinisignSignature {
    key_id: KeyId,
    signature: ed25519_dalek::Signature,
    trusted_comment: String,
    global: ed25519_dalek::Signature,
}

impl MinisignSignature {
    fn decode(text: &str) -> Result<MinisignSignature, String> {
        let base64 = |line: Option<&str>, what: &str| {
            let line = line.ok_or_else(|| format!("it has no {what} line"))?;
            base64::engine::general_purpose::STANDARD
                .decode(line.trim())
                .map_err(|e| format!("its {what} line is not base64 ({e})"))
        };
        let mut lines = text.lines();
        lines.next().ok_or("it is empty")?; // the untrusted comment
        let signed = base64(lines.next(), "signature")?;
        if signed.len() != 74 {
            return Err(format!("its signature line holds {} bytes, not 74", signed.len()));
        }
        match &signed[..2] {
            b"ED" => {}
            b"Ed" => {
                return Err("it is a legacy signature (not prehashed): sign again with minisign 0.8 or later".into());
            }
            _ => return Err("its signature algorithm is unknown".into()),
        }
        let trusted_comment = lines
            .next()
            .and_then(|line| line.strip_prefix("trusted comment: "))
            .ok_or("it has no `trusted comment:` line")?
            .to_owned();
        let global = base64(lines.next(), "global signature")?;
        let global: [u8; 64] = global
            .try_into()
            .map_err(|g: Vec<u8>| format!("its global signature holds {} bytes, not 64", g.len()))?;
        Ok(MinisignSignature {
            key_id: KeyId::from_slice(&signed[2..10]),
            signature: ed25519_dalek::Signature::from_bytes(signed[10..74].try_into().expect("64 bytes")),
            trusted_comment,
            global: ed25519_dalek::Signature::from_bytes(&global),
        })
    }

    /// Checks the signature of `message` and of the trusted comment with `key`, as
    /// minisign does.
    fn verify(&self, key: &TrustedKey, message: &[u8]) -> Result<(), &'static str> {
        use blake2::Digest as _;
        let hash = blake2::Blake2b512::digest(message);
        key.key
            .verify_strict(&hash, &self.signature)
            .map_err(|_| "the signature does not match")?;
        let mut global = self.signature.to_bytes().to_vec();
        global.extend_from_slice(self.trusted_comment.as_bytes());
        key.key
            .verify_strict(&global, &self.global)
            .map_err(|_| "the trusted comment's signature does not match")
    }
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

    /// A signature of `test` made by the minisign tool (minisign-verify's documentation).
    #[test]
    fn a_signature_made_by_the_minisign_tool_verifies_and_a_changed_message_does_not() {
        let key = TrustedKey::parse("RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3").unwrap();
        let text = "untrusted comment: signature from minisign secret key
RUQf6LRCGA9i559r3g7V1qNyJDApGip8MfqcadIgT9CuhV3EMhHoN1mGTkUidF/z7SrlQgXdy8ofjb7bNJJylDOocrCo8KLzZwo=
trusted comment: timestamp:1633700835\tfile:test\tprehashed
wLMDjy9FLAuxZ3q4NlEvkgtyhrr0gtTu6KC4KBJdITbbOeAi1zBIYo0v4iTgt8jJpIidRJnp94ABQkJAgAooBQ==
";
        let signature = MinisignSignature::decode(text).unwrap();
        assert_eq!(signature.key_id, key.id());
        assert_eq!(signature.verify(&key, b"test"), Ok(()));
        assert!(signature.verify(&key, b"tesT").is_err());
        let forged = MinisignSignature::decode(&text.replace("file:test", "file:other")).unwrap();
        assert_eq!(
            forged.verify(&key, b"test"),
            Err("the trusted comment's signature does not match")
        );
        let legacy = text.replace("RUQf", "RWQf");
        assert!(MinisignSignature::decode(&legacy).err().unwrap().contains("legacy"));
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
