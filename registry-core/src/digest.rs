use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// The content identity of a task: sha256 over its canonical bundle.
///
/// The canonical bundle is the task's files sorted by relative path, with every JSON file
/// in canonical form ([`canonical_json`]) and every other file as its bytes. So the digest
/// is the same whether the task came from a folder, a ZIP or HTTP, and reformatting a JSON
/// file (whitespace, key order) does not change it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Digest of `(relative path, canonical bytes)` pairs; the order of `files` does not matter.
    pub fn of_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Digest {
        let mut files: Vec<(&str, &[u8])> = files.into_iter().collect();
        files.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut hasher = Sha256::new();
        for (path, bytes) in files {
            // Length-prefixing makes the encoding unambiguous: no two bundles hash the same
            // concatenation.
            hasher.update((path.len() as u64).to_be_bytes());
            hasher.update(path.as_bytes());
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        }
        Digest(hasher.finalize().into())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let hex_part = text
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("digest `{text}` does not start with `sha256:`"))?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut bytes).map_err(|e| format!("digest `{text}` is not 64 hex digits: {e}"))?;
        Ok(Digest(bytes))
    }
}

/// Writes `value` as canonical JSON: no insignificant whitespace, object keys sorted by
/// their UTF-8 bytes, strings escaped the way `serde_json` escapes them.
///
/// Sorting is done here rather than relied on from `serde_json::Map`, because any crate in
/// the build enabling serde_json's `preserve_order` would silently change the order.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

impl serde::Serialize for Digest {
    /// As its text, `sha256:<hex>`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_and_drops_whitespace() {
        let a: Value = serde_json::from_str(r#"{ "b": 1, "a": { "y": [1, 2], "x": "é\n" } }"#).unwrap();
        assert_eq!(canonical_json(&a), r#"{"a":{"x":"é\n","y":[1,2]},"b":1}"#);
    }

    #[test]
    fn digest_ignores_file_order_but_not_paths_or_content() {
        let one = Digest::of_files([("a", b"1".as_slice()), ("b", b"2".as_slice())]);
        let two = Digest::of_files([("b", b"2".as_slice()), ("a", b"1".as_slice())]);
        assert_eq!(one, two);
        assert_ne!(one, Digest::of_files([("a", b"1".as_slice()), ("c", b"2".as_slice())]));
        assert_ne!(one, Digest::of_files([("a", b"1".as_slice()), ("b", b"3".as_slice())]));
        // Moving a byte from a path into the content must change the digest.
        assert_ne!(
            Digest::of_files([("ab", b"".as_slice())]),
            Digest::of_files([("a", b"b".as_slice())])
        );
    }

    #[test]
    fn digest_round_trips_through_its_text_form() {
        let digest = Digest::of_files([("x", json!(1).to_string().as_bytes())]);
        let text = digest.to_string();
        assert_eq!(text.len(), "sha256:".len() + 64);
        assert_eq!(text.parse::<Digest>().unwrap(), digest);
        assert!("md5:00".parse::<Digest>().is_err());
    }
}
