//! `taskreg serve [--watch]`: the catalogue over HTTP (see docs/http-protocol.md), kept
//! current while serving with `--watch`.

use super::Globals;
use crate::args::WatchTiming;
use anyhow::Context;
use registry_host::RegistryError;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// The command's own flags.
pub struct Flags {
    pub watch: bool,
    pub timing: WatchTiming,
    pub listen: Option<SocketAddr>,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
}

pub async fn run(globals: &Globals, flags: Flags) -> anyhow::Result<ExitCode> {
    let shutdown = super::shutdown_signal();
    let mut builder = if flags.watch {
        super::watch::writer(globals, &flags.timing)?
    } else {
        globals.builder()?.read_only()
    };
    let configured = builder.config().and_then(|c| c.serve.listen);
    let listen = flags.listen.or(configured).unwrap_or(([127, 0, 0, 1], 8080).into());
    if let Some(token) = flags.token {
        builder = builder.serve_token(token);
    }
    if let Some(file) = flags.token_file {
        builder = builder.serve_token_file(file);
    }
    let registry = builder.open().await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    eprintln!("serving {} on http://{}", registry.database(), listener.local_addr()?);

    // One signal stops both the server and the watch loop.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let serving = registry.serve(listener, until_stopped());
    let watching = async {
        if !flags.watch {
            return Ok(());
        }
        match super::watch::watch_configured(&registry, globals.json, until_stopped()).await {
            Err(RegistryError::NoSources) => {
                tracing::warn!("serve --watch: no source is configured; serving without watching");
                Ok(())
            }
            other => other,
        }
    };
    let signal = async {
        shutdown.await;
        let _ = stop.send(true);
    };
    let (served, watched, ()) = tokio::join!(serving, watching, signal);
    served?;
    watched?;
    Ok(ExitCode::SUCCESS)
}
