//! `taskreg`: the command line, a thin client of [`registry_host::Registry`].
//!
//! Each command is one file in `commands/` that calls the registry and formats the result
//! (`output.rs`). Exit codes: `0` the command did its job (a sync was applied, even with
//! problems); `1` the input has errors (`validate`, or `sync --strict`), or what was asked
//! for is not there; `2` the command could not run (bad configuration, unreachable
//! database), reported as one line on stderr.

mod args;
mod commands;
mod output;
mod progress;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    restore_default_sigpipe();
    // `taskreg plugin-host`, not in `--help`: the child process of an isolated plugin
    // library, speaking to its host over stdin and stdout.
    if let Some(code) = registry_host::plugins::plugin_host_main() {
        return code;
    }
    let cli = args::Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    };
    // A plugin call that timed out may still be running on a blocking thread; the
    // process does not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}

/// `taskreg list | head` must end quietly when `head` stops reading, as other Unix tools
/// do, instead of panicking on the broken pipe (Rust ignores SIGPIPE by default).
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TASKREG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
