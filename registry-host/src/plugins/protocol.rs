//! The framed protocol between the host and an isolated plugin's child process, over the
//! child's stdin and stdout: each message is a little-endian `u32` length and that many
//! bytes of `postcard`. Both sides first send [`PROTOCOL_VERSION`] alone, so that a
//! mismatch is reported as such, not as a garbled message.
//!
//! The host sends [`ToChild`]; calls carry a number the reply repeats, so that loads run
//! side by side in the child. The child sends [`FromChild`]: replies, and log records of
//! the calls in progress.

use super::PluginLoadError;
use registry_plugin_api::{Bundle, KindInfo, PluginError, PluginInfo, Scan};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::path::PathBuf;

/// The version of this protocol; both sides must speak the same.
pub const PROTOCOL_VERSION: u32 = 1;

/// Larger frames are refused: a reply holds one scan or one task (capped by the read
/// limits), far below this.
const MAX_FRAME_BYTES: u32 = 1 << 30;

/// A source opened in a child, numbered by the host.
pub type SourceId = u32;

/// A call in progress, numbered by the host.
pub type CallId = u64;

/// What the host sends.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToChild {
    /// The first message: which library to load, under which limits.
    Hello(Hello),
    /// Open a source from its JSON [`registry_plugin_api::SourceRequest`].
    Open {
        call: CallId,
        source: SourceId,
        source_name: String,
        request: String,
    },
    Scan {
        call: CallId,
        source: SourceId,
    },
    Load {
        call: CallId,
        source: SourceId,
        locator: String,
    },
}

/// How the child sets itself up before it loads the library.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub library: PathBuf,
    /// `RLIMIT_AS`, in bytes.
    pub max_memory: Option<u64>,
    /// CPU seconds a call may use (`RLIMIT_CPU`, renewed when a call starts).
    pub max_cpu_seconds: Option<u64>,
    /// The most verbose level the host records (a `tracing` level, 1 = error … 5 = trace);
    /// finer records are not sent.
    pub max_log_level: u8,
}

/// What the child sends.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromChild {
    /// The library is loaded: what it says of itself.
    Ready {
        interface_version: String,
        info: WireInfo,
    },
    /// The library was refused, as in-process loading would refuse it.
    Refused(PluginLoadError),
    Log {
        source_name: String,
        level: u8,
        message: String,
    },
    Opened {
        call: CallId,
        location: String,
    },
    Scanned {
        call: CallId,
        scan: Scan,
    },
    Loaded {
        call: CallId,
        bundle: WireBundle,
    },
    Failed {
        call: CallId,
        error: PluginError,
    },
}

impl FromChild {
    /// The call this message answers, if it answers one.
    pub fn call(&self) -> Option<CallId> {
        match self {
            FromChild::Opened { call, .. }
            | FromChild::Scanned { call, .. }
            | FromChild::Loaded { call, .. }
            | FromChild::Failed { call, .. } => Some(*call),
            _ => None,
        }
    }
}

/// A [`Bundle`] with each file's bytes as one byte string: `postcard` writes a plain
/// `Vec<u8>` element by element, which costs more than the rest of a load's round trip.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireBundle {
    files: Vec<WireFile>,
    folder_name: Option<String>,
    modified: Option<std::time::SystemTime>,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireFile {
    path: String,
    #[serde(with = "serde_bytes")]
    bytes: Vec<u8>,
}

impl From<Bundle> for WireBundle {
    fn from(bundle: Bundle) -> Self {
        WireBundle {
            files: bundle
                .files
                .into_iter()
                .map(|(path, bytes)| WireFile { path, bytes })
                .collect(),
            folder_name: bundle.folder_name,
            modified: bundle.modified,
        }
    }
}

impl From<WireBundle> for Bundle {
    fn from(bundle: WireBundle) -> Self {
        Bundle {
            files: bundle.files.into_iter().map(|f| (f.path, f.bytes)).collect(),
            folder_name: bundle.folder_name,
            modified: bundle.modified,
        }
    }
}

/// [`PluginInfo`] with each kind's schema as JSON text (`postcard` cannot carry a
/// free-form JSON value).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireInfo {
    pub name: String,
    pub version: String,
    pub kinds: Vec<(String, String, String)>,
}

impl From<&PluginInfo> for WireInfo {
    fn from(info: &PluginInfo) -> Self {
        WireInfo {
            name: info.name.clone(),
            version: info.version.clone(),
            kinds: info
                .kinds
                .iter()
                .map(|k| (k.name.clone(), k.description.clone(), k.config_schema.to_string()))
                .collect(),
        }
    }
}

impl From<WireInfo> for PluginInfo {
    fn from(info: WireInfo) -> Self {
        PluginInfo {
            name: info.name,
            version: info.version,
            kinds: info
                .kinds
                .into_iter()
                .map(|(name, description, schema)| KindInfo {
                    name,
                    description,
                    config_schema: serde_json::from_str(&schema).unwrap_or(serde_json::Value::Bool(false)),
                })
                .collect(),
        }
    }
}

/// Writes one frame. The length and the message go out in one write, so that frames
/// written under a lock by several threads never interleave.
pub fn write_frame(out: &mut impl Write, message: &impl Serialize) -> io::Result<()> {
    let mut frame = vec![0u8; 4];
    frame = postcard::to_extend(message, frame).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let length = u32::try_from(frame.len() - 4)
        .ok()
        .filter(|l| *l <= MAX_FRAME_BYTES)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a message over 1 GiB"))?;
    frame[..4].copy_from_slice(&length.to_le_bytes());
    out.write_all(&frame)?;
    out.flush()
}

/// Reads one frame; `None` at a clean end of the stream (between frames).
pub fn read_frame<T: serde::de::DeserializeOwned>(input: &mut impl Read) -> io::Result<Option<T>> {
    let mut length = [0u8; 4];
    match input.read_exact(&mut length) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let length = u32::from_le_bytes(length);
    if length > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {length} bytes, over the 1 GiB cap"),
        ));
    }
    let mut bytes = vec![0u8; length as usize];
    input.read_exact(&mut bytes)?;
    postcard::from_bytes(&bytes).map(Some).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a message this side cannot read: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_one_after_another_and_end_cleanly() {
        let mut stream = Vec::new();
        let bundle = Bundle {
            files: vec![("main.js".into(), vec![0, 1, 2, 255])],
            folder_name: Some("task".into()),
            modified: Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123)),
        };
        write_frame(&mut stream, &PROTOCOL_VERSION).unwrap();
        write_frame(
            &mut stream,
            &FromChild::Loaded {
                call: 7,
                bundle: bundle.clone().into(),
            },
        )
        .unwrap();
        let mut input = stream.as_slice();
        assert_eq!(read_frame::<u32>(&mut input).unwrap(), Some(PROTOCOL_VERSION));
        match read_frame::<FromChild>(&mut input).unwrap() {
            Some(FromChild::Loaded { call: 7, bundle: read }) => assert_eq!(Bundle::from(read), bundle),
            other => panic!("{other:?}"),
        }
        assert!(read_frame::<FromChild>(&mut input).unwrap().is_none());
    }

    #[test]
    fn a_frame_cut_short_is_an_error_not_an_end() {
        let mut stream = Vec::new();
        write_frame(
            &mut stream,
            &FromChild::Opened {
                call: 1,
                location: "x".repeat(100),
            },
        )
        .unwrap();
        let mut input = &stream[..stream.len() - 10];
        assert!(read_frame::<FromChild>(&mut input).is_err());
    }

    #[test]
    fn plugin_info_keeps_each_kinds_schema() {
        let info = PluginInfo::new("p", "1.0.0")
            .kind(KindInfo::new("k", "a kind").schema(serde_json::json!({"type": "object", "required": ["url"]})));
        assert_eq!(PluginInfo::from(WireInfo::from(&info)), info);
    }
}
