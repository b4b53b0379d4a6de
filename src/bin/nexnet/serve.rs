//! `nexnet serve`: a node and its HTTP API, until SIGINT or SIGTERM.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use nexnet::server::{FileServer, ServerConfig, ServerError};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::{
    UsageError,
    settings::{Resolved, Settings},
};

/// How long a shutdown waits for HTTP transfers in flight.
const DRAIN: Duration = Duration::from_secs(30);

/// Runs a node.
#[derive(Debug, Args)]
#[command(after_help = "\
The API serves on loopback by default. Binding it to another address \
requires --api-token: every request must then carry \
`Authorization: Bearer TOKEN`.

Durations are written like 30s, 10m, 1h30m or 2days.

Every setting but --data and --log-format may also come from the \
environment variable shown with it, or from DIR/nexnet.toml (keys listen, \
advertise, api, bootstrap, replicas, write_quorum, read_quorum, fsync, api_token, \
repair_interval, heartbeat, forget_after). A flag wins over its variable, \
the variable over the file.")]
pub struct ServeArgs {
    /// The node's data directory (see `nexnet init`).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    #[command(flatten)]
    settings: Settings,
    /// Log format on standard error (`RUST_LOG` sets the level).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub async fn run(args: ServeArgs) -> Result<()> {
    init_logs(args.log_format);
    let data = &args.data;
    if !data.join(nexnet::server::NODE_ID_FILE).exists() {
        let shown = data.display();
        bail!(UsageError(format!(
            "{shown} holds no node; create one with `nexnet init --data {shown}`"
        )));
    }
    // Flags and variables first, then the file; the defaults last.
    let settings = args.settings.or(Settings::from_file(data)?);
    let Resolved { node, api, token } = settings.resolve(data).await?;
    let api_listener = TcpListener::bind(api)
        .await
        .with_context(|| format!("cannot listen for the API on {api}"))?;
    let server = open(node).await?;
    // Once the node is up, so a usage error stays the only line printed.
    raise_open_files_limit();
    serve(server, api_listener, token).await
}

/// Opens the node; a configuration it refuses is a usage error.
async fn open(config: ServerConfig) -> Result<FileServer> {
    let data = config.data_dir.clone();
    match FileServer::open(config).await {
        Ok(server) => Ok(server),
        Err(ServerError::Config(why)) => bail!(UsageError(why)),
        Err(e) => Err(e).with_context(|| format!("cannot start the node in {}", data.display())),
    }
}

/// Serves the API on `listener` until a signal, then stops cleanly.
async fn serve(server: FileServer, listener: TcpListener, token: Option<String>) -> Result<()> {
    let api_addr = listener.local_addr().context("API address")?;
    // Listen for signals before saying we are up: a SIGTERM sent as soon
    // as the lines below appear must stop the node cleanly, not kill it.
    let stop_signal = shutdown_signal()?;
    // Scripts (and the tests) read these lines to find the node.
    println!("nexnet node {}", server.node_id());
    println!("  peers  {}", server.local_addr());
    println!("  api    http://{api_addr}");
    info!(node = %server.node_id(), peers = %server.local_addr(), api = %api_addr, "serving");

    let router = crate::api::router(server.clone(), token, api_addr);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut http = tokio::spawn(async move {
        let mut stop_rx = stop_rx;
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            })
            .await
    });
    tokio::select! {
        signal = stop_signal => {
            info!(%signal, "shutting down: finishing transfers in flight");
        }
        served = &mut http => {
            server.shutdown().await;
            return match served {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e).context("the API server failed"),
                Err(e) => Err(e).context("the API server task failed"),
            };
        }
    }
    let _ = stop_tx.send(true);
    if tokio::time::timeout(DRAIN, &mut http).await.is_err() {
        warn!("transfers still running after {DRAIN:?}; aborting them");
        http.abort();
    }
    // Uploads that did not finish leave no object (their temp files go);
    // the node closes its connections and releases its data directory.
    server.shutdown().await;
    info!("stopped");
    Ok(())
}

/// Raises the soft limit on open files (RLIMIT_NOFILE) to the hard limit,
/// and logs it. Every API client and every peer holds a socket, and the
/// soft limit is often 1024, which a thousand clients would exhaust; the
/// hard limit is what the administrator allows (as Go and nginx do).
#[cfg(unix)]
fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

    let show = |n: Option<u64>| n.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        debug!(open_files = %show(limit.current), "open files limit");
        return;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => info!(
            open_files = %show(limit.maximum),
            was = %show(limit.current),
            "raised the open files limit to the hard limit"
        ),
        Err(e) => warn!(
            open_files = %show(limit.current),
            hard = %show(limit.maximum),
            error = %e,
            "cannot raise the open files limit; past it, connections and file opens fail"
        ),
    }
}

#[cfg(not(unix))]
fn raise_open_files_limit() {}

/// Installs the SIGINT and SIGTERM handlers now; the future resolves with
/// the name of the first signal received.
fn shutdown_signal() -> Result<impl Future<Output = &'static str>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            "ctrl-c"
        })
    }
}
