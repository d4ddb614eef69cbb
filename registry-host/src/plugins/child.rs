//! The child side of an isolated plugin library: `taskreg plugin-host` (or any program
//! that calls [`plugin_host_main`] first thing). It loads one library exactly as the host
//! would in process, then answers the host's calls over stdin and stdout
//! ([`protocol`](super::protocol)), each call on a thread of its own.
//!
//! Before the library is loaded, stdout is moved out of the way (file descriptor 1 then
//! points at stderr), so that a plugin printing to stdout cannot corrupt the frames, and
//! the limits the host asked for are applied to this process: `RLIMIT_AS`, `RLIMIT_CPU`,
//! and no core files.

use super::protocol::{self, FromChild, Hello, SourceId, ToChild};
use super::{LoadedModule, without_sigpipe};
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, RStr};
use registry_plugin_api::ffi;
use rustix::process::{Resource, Rlimit};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};

/// The first argument that makes a program a plugin host.
pub const PLUGIN_HOST_ARGUMENT: &str = "plugin-host";

/// Runs this process as the child of an isolated plugin library when its first argument
/// is `plugin-host`, and returns its exit code; `None` otherwise. A host application that
/// embeds the registry and isolates plugins calls this first thing in `main` (or points
/// the `program` of [`ChildOptions`](super::ChildOptions) at a `taskreg` binary):
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     if let Some(code) = registry_host::plugins::plugin_host_main() {
///         return code;
///     }
///     // … the application …
///     std::process::ExitCode::SUCCESS
/// }
/// ```
pub fn plugin_host_main() -> Option<ExitCode> {
    if std::env::args_os().nth(1).as_deref() != Some(OsStr::new(PLUGIN_HOST_ARGUMENT)) {
        return None;
    }
    Some(match serve() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("taskreg plugin host: {e}");
            ExitCode::from(2)
        }
    })
}

/// The frames' way out, shared by every call's thread.
type Output = Arc<Mutex<BufWriter<File>>>;

fn send(out: &Output, message: &FromChild) {
    let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
    if protocol::write_frame(&mut *out, message).is_err() {
        // The host is gone: nobody is left to answer.
        std::process::exit(0);
    }
}

fn serve() -> std::io::Result<()> {
    let out: Output = Arc::new(Mutex::new(BufWriter::new(protocol_stdout()?)));
    let mut input = BufReader::new(std::io::stdin().lock());
    let version: Option<u32> = protocol::read_frame(&mut input)?;
    {
        let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
        protocol::write_frame(&mut *out, &protocol::PROTOCOL_VERSION)?;
    }
    if version != Some(protocol::PROTOCOL_VERSION) {
        return Err(std::io::Error::other(format!(
            "the host speaks protocol {version:?}, this plugin host {}",
            protocol::PROTOCOL_VERSION
        )));
    }
    let Some(ToChild::Hello(hello)) = protocol::read_frame(&mut input)? else {
        return Err(std::io::Error::other("the host's first message is not a hello"));
    };
    apply_limits(&hello);
    let module = match super::load_module(&hello.library) {
        Ok(LoadedModule {
            module,
            info,
            interface_version,
        }) => {
            send(
                &out,
                &FromChild::Ready {
                    interface_version,
                    info: (&info).into(),
                },
            );
            module
        }
        Err(refused) => {
            send(&out, &FromChild::Refused(refused));
            return Ok(());
        }
    };
    let sources: Arc<RwLock<HashMap<SourceId, Arc<Opened>>>> = Arc::default();
    let cpu = CpuBudget(hello.max_cpu_seconds);
    let workers = Workers::default();
    while let Some(request) = protocol::read_frame::<ToChild>(&mut input)? {
        cpu.renew();
        let (out, sources, max_level) = (out.clone(), sources.clone(), hello.max_log_level);
        workers.run(Box::new(move || {
            let reply = answer(module, request, &sources, &out, max_level);
            if let Some(reply) = reply {
                send(&out, &reply);
            }
        }));
    }
    // The host closed our stdin: it is done with us (or gone). Calls still running end here.
    std::process::exit(0);
}

/// A call to run.
type Job = Box<dyn FnOnce() + Send>;

/// The threads that run calls: as many as there are calls in flight (the host bounds
/// them), each kept for a later call when its call is done, since starting a thread per
/// call costs more than a small load.
struct Workers {
    jobs: mpsc::Sender<Job>,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    /// Workers waiting for a job and not yet claimed by one.
    idle: Arc<AtomicUsize>,
}

impl Default for Workers {
    fn default() -> Self {
        let (jobs, queue) = mpsc::channel();
        Workers {
            jobs,
            queue: Arc::new(Mutex::new(queue)),
            idle: Arc::default(),
        }
    }
}

impl Workers {
    /// Runs `job` on an idle worker, or on a new one when none is idle: a call never waits
    /// behind another (a hanging call must not hold up the rest).
    fn run(&self, job: Job) {
        let claimed = self
            .idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |idle| idle.checked_sub(1))
            .is_ok();
        if !claimed {
            let (queue, idle) = (self.queue.clone(), self.idle.clone());
            std::thread::spawn(move || {
                loop {
                    let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(job) = job else { return };
                    job();
                    idle.fetch_add(1, Ordering::AcqRel);
                }
            });
        }
        let _ = self.jobs.send(job);
    }
}

/// A source this child opened, with the name its log records go under.
struct Opened {
    name: String,
    object: ffi::SourceBox,
}

fn answer(
    module: ffi::SourcePluginModuleRef,
    request: ToChild,
    sources: &RwLock<HashMap<SourceId, Arc<Opened>>>,
    out: &Output,
    max_level: u8,
) -> Option<FromChild> {
    let host = |name: &str| {
        ffi::HostCallbacks_TO::from_ptr(
            RArc::new(ChildHost {
                source_name: name.to_owned(),
                out: out.clone(),
                max_level,
            }),
            TD_Opaque,
        )
    };
    let find = |source: SourceId| sources.read().unwrap_or_else(|e| e.into_inner()).get(&source).cloned();
    let not_open = |call, source| FromChild::Failed {
        call,
        error: registry_plugin_api::PluginError::new("protocol", format!("source {source} is not open in this child")),
    };
    Some(match request {
        ToChild::Hello(_) => return None,
        ToChild::Open {
            call,
            source,
            source_name,
            request,
        } => {
            let opened =
                without_sigpipe(|| (module.open())(RStr::from_str(&request), host(&source_name)).into_result());
            match opened {
                Ok(object) => {
                    let location = object.location().into_string();
                    sources.write().unwrap_or_else(|e| e.into_inner()).insert(
                        source,
                        Arc::new(Opened {
                            name: source_name,
                            object,
                        }),
                    );
                    FromChild::Opened { call, location }
                }
                Err(error) => FromChild::Failed {
                    call,
                    error: error.into(),
                },
            }
        }
        ToChild::Scan { call, source } => match find(source) {
            None => not_open(call, source),
            Some(opened) => match without_sigpipe(|| opened.object.scan(host(&opened.name)).into_result()) {
                Ok(scan) => FromChild::Scanned {
                    call,
                    scan: scan.into(),
                },
                Err(error) => FromChild::Failed {
                    call,
                    error: error.into(),
                },
            },
        },
        ToChild::Load { call, source, locator } => match find(source) {
            None => not_open(call, source),
            Some(opened) => {
                let loaded = without_sigpipe(|| {
                    opened
                        .object
                        .load(RStr::from_str(&locator), host(&opened.name))
                        .into_result()
                });
                match loaded {
                    Ok(bundle) => FromChild::Loaded {
                        call,
                        bundle: registry_plugin_api::Bundle::from(bundle).into(),
                    },
                    Err(error) => FromChild::Failed {
                        call,
                        error: error.into(),
                    },
                }
            }
        },
    })
}

/// A call's host callbacks in the child: never cancelled (the host kills the child
/// instead), log records sent to the host.
struct ChildHost {
    source_name: String,
    out: Output,
    max_level: u8,
}

impl ffi::HostCallbacks for ChildHost {
    fn is_cancelled(&self) -> bool {
        false
    }

    fn log(&self, level: ffi::LogLevel, message: RStr<'_>) {
        if level.0 <= self.max_level {
            send(
                &self.out,
                &FromChild::Log {
                    source_name: self.source_name.clone(),
                    level: level.0,
                    message: message.as_str().to_owned(),
                },
            );
        }
    }
}

/// The protocol's stdout: a duplicate of file descriptor 1, which then points at stderr
/// so that anything else printed to stdout lands with the plugin's other output.
fn protocol_stdout() -> std::io::Result<File> {
    use std::os::fd::AsFd;
    let protocol = rustix::io::dup(std::io::stdout().as_fd())?;
    rustix::stdio::dup2_stdout(std::io::stderr().as_fd())?;
    Ok(File::from(protocol))
}

fn apply_limits(hello: &Hello) {
    // A crashing plugin must not leave core files in the host's folder.
    let _ = rustix::process::setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    let Some(bytes) = hello.max_memory else { return };
    let limit = Rlimit {
        current: Some(bytes),
        maximum: Some(bytes),
    };
    if let Err(e) = rustix::process::setrlimit(Resource::As, limit) {
        eprintln!("taskreg plugin host: cannot limit the address space to {bytes} bytes: {e}");
    }
}

/// `max_cpu_seconds` as `RLIMIT_CPU`'s soft limit, moved to "the CPU used so far plus the
/// budget" whenever a call starts: the kernel sends `SIGXCPU`, which ends this process,
/// when a call (or the calls running beside it) burn the budget without another call
/// starting.
struct CpuBudget(Option<u64>);

impl CpuBudget {
    fn renew(&self) {
        let Some(budget) = self.0 else { return };
        let used = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        let used_seconds = u64::try_from(used.tv_sec).unwrap_or(0) + 1;
        let _ = rustix::process::setrlimit(
            Resource::Cpu,
            Rlimit {
                current: Some(used_seconds + budget),
                maximum: rustix::process::getrlimit(Resource::Cpu).maximum,
            },
        );
    }
}
