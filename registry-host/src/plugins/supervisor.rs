//! The host side of an isolated plugin library: one child process at a time, started
//! when the library is loaded and again, after a death, by the next call.
//!
//! Calls are blocking (the adapter runs them on the blocking pool, as in-process calls
//! are): each writes its request and waits for the reply the child's reader thread hands
//! over. A child that dies fails every call in progress with what happened to it (exit
//! status or signal, and its last line on stderr); a call past its timeout kills the
//! child. Sources are opened again in each new child, from the request they were opened
//! with. A child that keeps dying is restarted after a growing pause, and calls in the
//! pause fail at once instead of starting child after child.

use super::protocol::{self, CallId, FromChild, Hello, SourceId, ToChild};
use super::{ChildOptions, PluginLoadError, record_plugin_log, without_sigpipe};
use registry_plugin_api::{PluginError, PluginInfo};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How long a new child may take to load its library and say so.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The child's stderr lines kept for a crash report.
const STDERR_TAIL_LINES: usize = 20;

/// Variables every child gets from the host's environment when they are set: what
/// programs need to run (find `git`, a home folder, a locale, temporary files, CA
/// certificates). Anything else must be named in the library's `env`.
const BASE_ENVIRONMENT: [&str; 11] = [
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "SYSTEMROOT",
];

/// What `taskreg plugins` shows of an isolated library's child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ChildStatus {
    /// The running child's process id; `None` after it died, until the next call.
    pub pid: Option<u32>,
    /// Children started after the first one.
    pub restarts: u32,
}

/// Runs one library in child processes.
pub(crate) struct Supervisor {
    library: PathBuf,
    options: ChildOptions,
    state: Mutex<State>,
    next_call: AtomicU64,
    /// Every source opened, by [`SourceId`]: reopened in each new child.
    sources: Mutex<Vec<OpenRequest>>,
}

#[derive(Clone)]
struct OpenRequest {
    name: String,
    request: String,
}

#[derive(Default)]
struct State {
    child: Option<Arc<Child>>,
    started: u32,
    deaths_in_a_row: u32,
    last_death: Option<(Instant, String)>,
}

/// One child process.
struct Child {
    pid: u32,
    input: Mutex<ChildStdin>,
    shared: Arc<Shared>,
    /// The sources opened in this child; held while one is being opened.
    opened: Mutex<HashSet<SourceId>>,
}

/// What the child's reader thread shares with the callers.
struct Shared {
    pending: Mutex<HashMap<CallId, mpsc::Sender<Result<FromChild, String>>>>,
    /// Set once, when the child is gone: what happened to it.
    death: OnceLock<String>,
    /// Why the host killed it, if it did.
    kill_reason: Mutex<Option<String>>,
    stderr_tail: Mutex<VecDeque<String>>,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, HashMap<CallId, mpsc::Sender<Result<FromChild, String>>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Dropping `input` closes the child's stdin, which ends it; a child that hangs
        // in a call does not read it, so it is killed too.
        if self.shared.death.get().is_none() {
            kill(self.pid);
        }
    }
}

fn kill(pid: u32) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Supervisor {
    /// Starts the first child and returns what the library says of itself, or why it
    /// was refused (the same refusals as in-process loading).
    pub(crate) fn start(
        library: &Path,
        options: ChildOptions,
    ) -> Result<(Supervisor, PluginInfo, String), PluginLoadError> {
        let supervisor = Supervisor {
            library: library.to_path_buf(),
            options,
            state: Mutex::default(),
            next_call: AtomicU64::new(1),
            sources: Mutex::default(),
        };
        let (child, info, interface_version) = supervisor.spawn()?;
        {
            let mut state = lock(&supervisor.state);
            state.child = Some(Arc::new(child));
            state.started = 1;
        }
        Ok((supervisor, info, interface_version))
    }

    pub(crate) fn status(&self) -> ChildStatus {
        let state = lock(&self.state);
        ChildStatus {
            pid: state
                .child
                .as_ref()
                .filter(|c| c.shared.death.get().is_none())
                .map(|c| c.pid),
            restarts: state.started.saturating_sub(1),
        }
    }

    /// Registers a source and opens it in the child; it is opened again in every later
    /// child. The id is the source's even when this first opening fails.
    pub(crate) fn open(
        &self,
        name: &str,
        request: String,
        timeout: Duration,
    ) -> (SourceId, Result<String, PluginError>) {
        let source = {
            let mut sources = lock(&self.sources);
            sources.push(OpenRequest {
                name: name.to_owned(),
                request,
            });
            SourceId::try_from(sources.len() - 1).unwrap_or(SourceId::MAX)
        };
        let opened = self.child().and_then(|child| {
            let mut opened = lock(&child.opened);
            self.open_in(&child, &mut opened, source, timeout)
        });
        (source, opened)
    }

    /// Scans a source.
    pub(crate) fn scan(&self, source: SourceId, timeout: Duration) -> Result<registry_plugin_api::Scan, PluginError> {
        match self.call(source, timeout, "scan", |call| ToChild::Scan { call, source })? {
            FromChild::Scanned { scan, .. } => Ok(scan),
            other => Err(unexpected(&other)),
        }
    }

    /// Loads a task of a source.
    pub(crate) fn load(
        &self,
        source: SourceId,
        locator: &str,
        timeout: Duration,
    ) -> Result<registry_plugin_api::Bundle, PluginError> {
        let call = |call| ToChild::Load {
            call,
            source,
            locator: locator.to_owned(),
        };
        match self.call(source, timeout, "load", call)? {
            FromChild::Loaded { bundle, .. } => Ok(bundle.into()),
            other => Err(unexpected(&other)),
        }
    }

    fn call(
        &self,
        source: SourceId,
        timeout: Duration,
        what: &str,
        request: impl FnOnce(CallId) -> ToChild,
    ) -> Result<FromChild, PluginError> {
        let child = self.child()?;
        {
            let mut opened = lock(&child.opened);
            if !opened.contains(&source) {
                self.open_in(&child, &mut opened, source, timeout)?;
            }
        }
        let reply = self.exchange(&child, timeout, what, request)?;
        lock(&self.state).deaths_in_a_row = 0;
        Ok(reply)
    }

    fn open_in(
        &self,
        child: &Child,
        opened: &mut HashSet<SourceId>,
        source: SourceId,
        timeout: Duration,
    ) -> Result<String, PluginError> {
        let OpenRequest { name, request } = lock(&self.sources)
            .get(source as usize)
            .cloned()
            .ok_or_else(|| PluginError::new("protocol", format!("no source {source}")))?;
        let reply = self.exchange(child, timeout, "open", |call| ToChild::Open {
            call,
            source,
            source_name: name,
            request,
        })?;
        match reply {
            FromChild::Opened { location, .. } => {
                opened.insert(source);
                Ok(location)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Sends one request and waits for its reply, the child's death, or the timeout
    /// (which kills the child).
    fn exchange(
        &self,
        child: &Child,
        timeout: Duration,
        what: &str,
        request: impl FnOnce(CallId) -> ToChild,
    ) -> Result<FromChild, PluginError> {
        let call = self.next_call.fetch_add(1, Ordering::Relaxed);
        let (reply_to, replies) = mpsc::channel();
        {
            let mut pending = child.shared.pending();
            if let Some(death) = child.shared.death.get() {
                return Err(crashed(what, death));
            }
            pending.insert(call, reply_to);
        }
        // A child that just died must not take the host with it: SIGPIPE is blocked
        // while writing, so a closed pipe is an error here (the reader reports the death).
        let request = request(call);
        let written = without_sigpipe(|| protocol::write_frame(&mut *lock(&child.input), &request));
        if written.is_err() {
            // The child is going away; its reader reports how.
            return match replies.recv_timeout(Duration::from_secs(5)) {
                Ok(Err(death)) => Err(crashed(what, &death)),
                _ => {
                    child.shared.pending().remove(&call);
                    Err(PluginError::new("crashed", format!("`{what}` could not reach the plugin process")).retryable())
                }
            };
        }
        match replies.recv_timeout(timeout) {
            Ok(Ok(FromChild::Failed { error, .. })) => Err(error),
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(death)) => Err(crashed(what, &death)),
            Err(_) => {
                child.shared.pending().remove(&call);
                let reason = format!(
                    "`{what}` gave no answer within {}s, so taskreg stopped the plugin process",
                    timeout.as_secs_f64()
                );
                lock(&child.shared.kill_reason).get_or_insert(reason.clone());
                kill(child.pid);
                Err(PluginError::new("timeout", reason).retryable())
            }
        }
    }

    /// The running child, or a new one when the last died (unless it keeps dying and
    /// its pause is not over).
    fn child(&self) -> Result<Arc<Child>, PluginError> {
        let mut state = lock(&self.state);
        if let Some(child) = &state.child {
            match child.shared.death.get() {
                None => return Ok(child.clone()),
                Some(death) => {
                    state.last_death = Some((Instant::now(), death.clone()));
                    state.deaths_in_a_row += 1;
                    state.child = None;
                }
            }
        }
        if let Some((at, death)) = &state.last_death {
            let pause = restart_pause(state.deaths_in_a_row);
            if at.elapsed() < pause {
                return Err(PluginError::new(
                    "crashed",
                    format!(
                        "the plugin process died {} times in a row (last: {death}); the next one starts {:.1}s after that",
                        state.deaths_in_a_row,
                        pause.as_secs_f64()
                    ),
                )
                .retryable());
            }
        }
        let (child, _, _) = match self.spawn() {
            Ok(started) => started,
            Err(e) => {
                // A child that cannot start counts as one more death: the pause grows.
                let why = format!("cannot restart the plugin process: {e}");
                state.last_death = Some((Instant::now(), why.clone()));
                state.deaths_in_a_row += 1;
                return Err(PluginError::new("crashed", why).retryable());
            }
        };
        let child = Arc::new(child);
        state.child = Some(child.clone());
        state.started += 1;
        tracing::info!(target: "taskreg::plugin", library = %self.library.display(), pid = child.pid, "plugin process restarted");
        Ok(child)
    }

    /// Starts a child, says hello and waits for its library to load.
    fn spawn(&self) -> Result<(Child, PluginInfo, String), PluginLoadError> {
        let failed = |reason: String| PluginLoadError::Failed {
            path: self.library.clone(),
            reason,
        };
        let program = self.options.program();
        let mut command = Command::new(&program);
        command
            .arg(super::child::PLUGIN_HOST_ARGUMENT)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for name in BASE_ENVIRONMENT
            .iter()
            .copied()
            .chain(self.options.env.iter().map(String::as_str))
        {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        let mut process = command
            .spawn()
            .map_err(|e| failed(format!("cannot start the plugin host `{}`: {e}", program.display())))?;
        let pid = process.id();
        let (Some(mut input), Some(output), Some(errors)) =
            (process.stdin.take(), process.stdout.take(), process.stderr.take())
        else {
            return Err(failed("the plugin host's pipes are missing".into()));
        };
        let hello = Hello {
            library: self.library.clone(),
            max_memory: self.options.max_memory,
            max_cpu_seconds: self.options.max_cpu_seconds,
            max_log_level: max_log_level(),
        };
        let said = without_sigpipe(|| {
            protocol::write_frame(&mut input, &protocol::PROTOCOL_VERSION)
                .and_then(|()| protocol::write_frame(&mut input, &ToChild::Hello(hello)))
        });
        let shared = Arc::new(Shared {
            pending: Mutex::default(),
            death: OnceLock::new(),
            kill_reason: Mutex::default(),
            stderr_tail: Mutex::default(),
        });
        let library_name = self
            .library
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let stderr_done = {
            let (shared, library_name) = (shared.clone(), library_name.clone());
            let (done, finished) = mpsc::channel::<()>();
            std::thread::spawn(move || {
                for line in BufReader::new(errors).lines() {
                    let Ok(line) = line else { break };
                    tracing::warn!(target: "taskreg::plugin", plugin = %library_name, pid, "{line}");
                    let mut tail = lock(&shared.stderr_tail);
                    if tail.len() == STDERR_TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
                let _ = done.send(());
            });
            finished
        };
        let (handshake_to, handshake) = mpsc::channel();
        {
            let shared = shared.clone();
            std::thread::spawn(move || read_replies(process, output, shared, handshake_to, stderr_done));
        }
        let child = Child {
            pid,
            input: Mutex::new(input),
            shared,
            opened: Mutex::default(),
        };
        // A failed hello means the child is already gone: its reader says how.
        let _ = said;
        match handshake.recv_timeout(HANDSHAKE_TIMEOUT) {
            Ok(Handshake::Ready {
                info,
                interface_version,
            }) => Ok((child, info, interface_version)),
            Ok(Handshake::Refused(refused)) => Err(refused),
            Ok(Handshake::Failed(reason)) => Err(failed(format!("the plugin host {reason}"))),
            Err(_) => Err(failed(format!(
                "the plugin host did not load the library within {}s",
                HANDSHAKE_TIMEOUT.as_secs()
            ))),
        }
    }
}

enum Handshake {
    Ready {
        info: PluginInfo,
        interface_version: String,
    },
    Refused(PluginLoadError),
    Failed(String),
}

/// The child's reader thread: the handshake, then every reply and log record until the
/// child's stdout ends; then what happened to the child, for every call still waiting.
fn read_replies(
    mut process: std::process::Child,
    output: std::process::ChildStdout,
    shared: Arc<Shared>,
    handshake: mpsc::Sender<Handshake>,
    stderr_done: mpsc::Receiver<()>,
) {
    let mut output = BufReader::new(output);
    let mut trouble = None;
    match protocol::read_frame::<u32>(&mut output) {
        Ok(Some(protocol::PROTOCOL_VERSION)) => match protocol::read_frame::<FromChild>(&mut output) {
            Ok(Some(FromChild::Ready {
                info,
                interface_version,
            })) => {
                let _ = handshake.send(Handshake::Ready {
                    info: info.into(),
                    interface_version,
                });
                trouble = dispatch(&mut output, &shared);
            }
            Ok(Some(FromChild::Refused(refused))) => {
                let _ = handshake.send(Handshake::Refused(refused));
            }
            Ok(_) => trouble = Some("said no hello".to_owned()),
            Err(e) => trouble = Some(format!("sent a hello this host cannot read: {e}")),
        },
        Ok(Some(other)) => {
            trouble = Some(format!(
                "speaks protocol {other}, this taskreg {}: use the plugin host of the same taskreg",
                protocol::PROTOCOL_VERSION
            ))
        }
        Ok(None) => {}
        Err(e) => trouble = Some(format!("sent something this host cannot read: {e}")),
    }
    // Its last words first: stderr ends when the process does (or soon after, when a
    // grandchild holds it).
    let _ = stderr_done.recv_timeout(Duration::from_millis(500));
    let status = process.wait();
    let mut death = match lock(&shared.kill_reason).clone() {
        Some(reason) => reason,
        None => match status {
            Ok(status) => describe_exit(status),
            Err(e) => format!("the plugin process ended in a way taskreg could not learn: {e}"),
        },
    };
    if let Some(trouble) = trouble {
        death = format!("{death}; it {trouble}");
    }
    let last_words = last_words(&lock(&shared.stderr_tail));
    if !last_words.is_empty() {
        death = format!("{death}; its last output: {last_words}");
    }
    let _ = handshake.send(Handshake::Failed(death.clone()));
    let _ = shared.death.set(death.clone());
    for (_, waiting) in shared.pending().drain() {
        let _ = waiting.send(Err(death.clone()));
    }
}

/// The child's last two lines on stderr that say something (Rust's hint about
/// `RUST_BACKTRACE` does not), joined.
fn last_words(tail: &VecDeque<String>) -> String {
    let mut words: Vec<&str> = tail
        .iter()
        .rev()
        .map(|line| line.trim())
        .filter(|line| !line.is_empty() && !line.starts_with("note: run with `RUST_BACKTRACE"))
        .take(2)
        .collect();
    words.reverse();
    words.join(" / ")
}

/// Hands each reply to its caller and records each log record, until the stream ends;
/// returns what was wrong with it, if something was.
fn dispatch(output: &mut impl std::io::Read, shared: &Shared) -> Option<String> {
    loop {
        match protocol::read_frame::<FromChild>(output) {
            Ok(None) => return None,
            Err(e) => return Some(format!("broke the protocol: {e}")),
            Ok(Some(FromChild::Log {
                source_name,
                level,
                message,
            })) => record_plugin_log(&source_name, level, &message),
            Ok(Some(reply)) => {
                if let Some(waiting) = reply.call().and_then(|call| shared.pending().remove(&call)) {
                    let _ = waiting.send(Ok(reply));
                }
            }
        }
    }
}

/// "the plugin process exited with status 3", "… was killed by signal 11 (SIGSEGV)".
fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    if let Some(signal) = status.signal() {
        let name = signal_name(signal).map(|n| format!(" ({n})")).unwrap_or_default();
        let hint = if signal == libc::SIGKILL {
            " (by the kernel's OOM killer or another process)"
        } else if signal == libc::SIGXCPU {
            " (its CPU budget, `max_cpu_seconds`, ran out)"
        } else {
            ""
        };
        format!("the plugin process was killed by signal {signal}{name}{hint}")
    } else {
        match status.code() {
            Some(code) => format!("the plugin process exited with status {code}"),
            None => "the plugin process ended".to_owned(),
        }
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGABRT => "SIGABRT",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        libc::SIGTRAP => "SIGTRAP",
        _ => return None,
    })
}

/// No pause before the first restart; then 0.5s, doubling up to a minute.
fn restart_pause(deaths_in_a_row: u32) -> Duration {
    if deaths_in_a_row <= 1 {
        return Duration::ZERO;
    }
    let doublings = (deaths_in_a_row - 2).min(7);
    (Duration::from_millis(500) * (1 << doublings)).min(Duration::from_secs(60))
}

fn crashed(what: &str, death: &str) -> PluginError {
    PluginError::new("crashed", format!("`{what}` failed: {death}")).retryable()
}

fn unexpected(reply: &FromChild) -> PluginError {
    PluginError::new(
        "protocol",
        format!("the plugin process answered out of turn: {reply:?}"),
    )
}

/// The host's `tracing` level as the plugin interface numbers levels (0 = off).
fn max_log_level() -> u8 {
    use tracing::level_filters::LevelFilter;
    match LevelFilter::current() {
        LevelFilter::OFF => 0,
        LevelFilter::ERROR => 1,
        LevelFilter::WARN => 2,
        LevelFilter::INFO => 3,
        LevelFilter::DEBUG => 4,
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_that_keeps_dying_waits_longer_each_time_up_to_a_minute() {
        assert_eq!(restart_pause(1), Duration::ZERO);
        assert_eq!(restart_pause(2), Duration::from_millis(500));
        assert_eq!(restart_pause(3), Duration::from_secs(1));
        assert_eq!(restart_pause(9), Duration::from_secs(60));
        assert_eq!(restart_pause(100), Duration::from_secs(60));
    }

    #[test]
    fn an_exit_is_described_by_its_status_or_its_signal() {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(
            describe_exit(std::process::ExitStatus::from_raw(3 << 8)),
            "the plugin process exited with status 3"
        );
        assert_eq!(
            describe_exit(std::process::ExitStatus::from_raw(libc::SIGSEGV)),
            "the plugin process was killed by signal 11 (SIGSEGV)"
        );
    }
}
