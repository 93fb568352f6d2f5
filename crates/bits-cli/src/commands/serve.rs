//! `bits serve`: serves a directory over HTTP (the IIS side of BITS), with
//! HEAD, Range, ETag and Last-Modified, until SIGINT or SIGTERM.
//!
//! The server itself is `bits-server`; this command checks the directory,
//! binds the socket (so that a busy port is reported before anything is
//! printed), announces the address and turns signals into a shutdown.

use std::path::Path;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::args::ServeArgs;
use crate::failure::Failure;

/// Runs `bits serve`.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let root = check_dir(&args.dir)?;
    let listener = match TcpListener::bind(&args.listen).await {
        Ok(listener) => listener,
        // `--listen nonsense` is a bad argument; a busy port is not.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            return Err(
                Failure::Usage(format!("--listen {}: not an ADDR:PORT ({e})", args.listen)).into(),
            )
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot listen on {}", args.listen)))
        }
    };
    let addr = listener
        .local_addr()
        .context("cannot read the address listened on")?;

    let shutdown = CancellationToken::new();
    let mut terminate =
        signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut interrupt =
        signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("signal received, shutting down");
        on_signal.cancel();
    });

    // With `--listen 127.0.0.1:0` this line tells the caller the real port.
    eprintln!("Serving {} on http://{addr}/", args.dir.display());
    let mut config = bits_server::ServeConfig::new(root);
    config.upload = upload_config(&args)?;
    bits_server::serve(listener, config, shutdown)
        .await
        .with_context(|| format!("serving {} failed", args.dir.display()))
}

/// The upload side of the server, from the `--upload` options.
fn upload_config(args: &ServeArgs) -> anyhow::Result<Option<bits_server::UploadConfig>> {
    if !args.upload {
        return Ok(None);
    }
    let mut up = bits_server::UploadConfig {
        max_upload_size: args.max_upload_size,
        allow_overwrite: args.allow_overwrite,
        host_id: args.host_id.clone(),
        host_id_fallback_timeout: args.host_id_fallback_timeout,
        ..Default::default()
    };
    if let Some(s) = args.session_timeout {
        up.session_timeout = std::time::Duration::from_secs(s);
    }
    if let Some(n) = args.max_sessions {
        up.max_sessions = n as usize;
    }
    if let Some(url) = &args.notify_url {
        if !url.to_ascii_lowercase().starts_with("http://") {
            return Err(Failure::Usage(format!(
                "--notify-url {url}: the server application must be an http:// URL"
            ))
            .into());
        }
        up.notify = Some(bits_server::Notify {
            url: url.clone(),
            kind: match args.notify_type {
                crate::args::NotifyType::File => bits_server::NotifyKind::File,
                crate::args::NotifyType::Location => bits_server::NotifyKind::Location,
            },
        });
    }
    Ok(Some(up))
}

/// The directory to serve, absolute and with symlinks resolved, or a usage
/// error saying what is wrong with it.
fn check_dir(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(Failure::Usage(format!("{shown} is not a directory")).into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::Usage(format!("directory {shown} does not exist")).into())
        }
        Err(e) => return Err(Failure::Usage(format!("cannot use directory {shown}: {e}")).into()),
    }
    std::fs::canonicalize(dir).with_context(|| format!("cannot resolve the directory {shown}"))
}
