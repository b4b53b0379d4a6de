//! `nexnet serve`: a node and its HTTP API, until SIGINT or SIGTERM.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use nexnet::server::{FileServer, ServerConfig};
use serde::Deserialize;
use tracing::{debug, info, warn};

use crate::UsageError;

const DEFAULT_LISTEN: &str = "0.0.0.0:3000";
const DEFAULT_API: &str = "127.0.0.1:5001";
/// The settings file a data directory may hold; flags win over it.
const CONFIG_FILE: &str = "nexnet.toml";
/// How long a shutdown waits for HTTP transfers in flight.
const DRAIN: Duration = Duration::from_secs(30);

/// Runs a node.
#[derive(Debug, Args)]
#[command(after_help = "\
The API serves on loopback by default. Binding it to another address \
requires --api-token: every request must then carry \
`Authorization: Bearer TOKEN`.

Durations are written like 30s, 10m, 1h30m or 2days.

DIR/nexnet.toml may hold the same settings (listen, advertise, api, \
bootstrap, replicas, write_quorum, fsync, api_token, repair_interval, \
heartbeat, forget_after); flags win.")]
pub struct ServeArgs {
    /// The node's data directory (see `nexnet init`).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Where peers connect [default: 0.0.0.0:3000]; they must prove the
    /// network secret.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// The address peers should dial, if not the listen address.
    #[arg(long, value_name = "ADDR")]
    advertise: Option<SocketAddr>,
    /// Where the HTTP API listens [default: 127.0.0.1:5001].
    #[arg(long, value_name = "ADDR")]
    api: Option<SocketAddr>,
    /// A node to join through, HOST:PORT (repeat for more).
    #[arg(long, value_name = "ADDR")]
    bootstrap: Vec<String>,
    /// How many nodes hold each file [default: 3].
    #[arg(long, value_name = "N")]
    replicas: Option<usize>,
    /// How many holders must commit a store [default: every reachable one].
    #[arg(long, value_name = "N")]
    write_quorum: Option<usize>,
    /// Bearer token the API requires (needed to bind it off loopback).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "NEXNET_API_TOKEN",
        hide_env_values = true
    )]
    api_token: Option<String>,
    /// Skip fsync (faster, not crash-safe).
    #[arg(long)]
    no_fsync: bool,
    /// How often the repair pass runs, or `off` [default: 10m].
    #[arg(long, value_name = "DURATION", value_parser = parse_optional_duration)]
    repair_interval: Option<Every>,
    /// How often peers are pinged; a peer silent for three is taken for
    /// dead, which bounds how fast a get fails over [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    heartbeat: Option<Duration>,
    /// How long an unreachable member is redialled before it is forgotten,
    /// or `never` [default: 1day].
    #[arg(long, value_name = "DURATION", value_parser = parse_optional_duration)]
    forget_after: Option<Every>,
    /// Log format on standard error (`RUST_LOG` sets the level).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// `DIR/nexnet.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    advertise: Option<SocketAddr>,
    api: Option<SocketAddr>,
    #[serde(default)]
    bootstrap: Vec<String>,
    replicas: Option<usize>,
    write_quorum: Option<usize>,
    fsync: Option<bool>,
    api_token: Option<String>,
    repair_interval: Option<String>,
    heartbeat: Option<String>,
    forget_after: Option<String>,
}

/// A duration, or none (`off`, `never`).
#[derive(Clone, Copy, Debug)]
struct Every(Option<Duration>);

/// A positive duration of at most a year (`30s`, `10m`, `1h30m`, `2days`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration like 30s, 10m or 1day: {e}"))?;
    if d.is_zero() {
        return Err(format!("{text:?}: must be more than zero"));
    }
    if d > nexnet::server::MAX_DURATION {
        return Err(format!("{text:?}: must be at most 365days"));
    }
    Ok(d)
}

/// [`parse_duration`], or `off` / `never` for none.
fn parse_optional_duration(text: &str) -> Result<Every, String> {
    match text.trim() {
        "off" | "never" => Ok(Every(None)),
        other => parse_duration(other).map(|d| Every(Some(d))),
    }
}

/// A duration from the flag, else from the settings file (key `key`).
fn setting<T>(
    flag: Option<T>,
    file: Option<&str>,
    key: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>> {
    match (flag, file) {
        (Some(v), _) => Ok(Some(v)),
        (None, Some(text)) => parse(text)
            .map(Some)
            .map_err(|why| UsageError(format!("{CONFIG_FILE}: {key}: {why}")).into()),
        (None, None) => Ok(None),
    }
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

fn read_settings(dir: &std::path::Path) -> Result<FileSettings> {
    let path = dir.join(CONFIG_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            toml::from_str(&text).map_err(|e| UsageError(format!("{}: {e}", path.display())).into())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileSettings::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

pub async fn run(args: ServeArgs) -> Result<()> {
    init_logs(args.log_format);
    if !args.data.join(nexnet::server::NODE_ID_FILE).exists() {
        return Err(UsageError(format!(
            "{} holds no node; create one with `nexnet init --data {}`",
            args.data.display(),
            args.data.display()
        ))
        .into());
    }
    let file = read_settings(&args.data)?;
    let parse = |s: &str| s.parse::<SocketAddr>().context("a built-in default");
    let listen = match args.listen.or(file.listen) {
        Some(a) => a,
        None => parse(DEFAULT_LISTEN)?,
    };
    let api = match args.api.or(file.api) {
        Some(a) => a,
        None => parse(DEFAULT_API)?,
    };
    let token = args.api_token.or(file.api_token).filter(|t| !t.is_empty());
    if !api.ip().is_loopback() && token.is_none() {
        return Err(UsageError(format!(
            "the API would listen on {api}, off loopback, without a token; pass --api-token"
        ))
        .into());
    }
    let mut config = ServerConfig::new(&args.data)
        .listen(listen)
        .fsync(!args.no_fsync && file.fsync.unwrap_or(true));
    let bootstrap = if args.bootstrap.is_empty() {
        file.bootstrap
    } else {
        args.bootstrap
    };
    for peer in &bootstrap {
        config.bootstrap.push(resolve(peer).await?);
    }
    if let Some(a) = args.advertise.or(file.advertise) {
        config = config.advertise(a);
    }
    if let Some(r) = args.replicas.or(file.replicas) {
        config = config.replication(r);
    }
    if let Some(w) = args.write_quorum.or(file.write_quorum) {
        config = config.write_quorum(w);
    }
    let repair = file.repair_interval.as_deref();
    if let Some(Every(every)) = setting(
        args.repair_interval,
        repair,
        "repair_interval",
        parse_optional_duration,
    )? {
        config = config.repair_interval(every);
    }
    if let Some(every) = setting(
        args.heartbeat,
        file.heartbeat.as_deref(),
        "heartbeat",
        parse_duration,
    )? {
        config = config.heartbeat_interval(every);
    }
    let forget = file.forget_after.as_deref();
    if let Some(Every(after)) = setting(
        args.forget_after,
        forget,
        "forget_after",
        parse_optional_duration,
    )? {
        config = config.forget_after(after);
    }

    let api_listener = tokio::net::TcpListener::bind(api)
        .await
        .with_context(|| format!("cannot listen for the API on {api}"))?;
    let api_addr = api_listener.local_addr().context("API address")?;
    let server = match FileServer::open(config).await {
        Ok(s) => s,
        Err(nexnet::server::ServerError::Config(why)) => bail!(UsageError(why)),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot start the node in {}", args.data.display()));
        }
    };
    // Once the node is up, so a usage error stays the only line printed.
    raise_open_files_limit();
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
        axum::serve(api_listener, router)
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

/// The first address `peer` (HOST:PORT) resolves to.
async fn resolve(peer: &str) -> Result<SocketAddr> {
    let mut addrs = tokio::net::lookup_host(peer)
        .await
        .map_err(|e| UsageError(format!("bootstrap {peer:?}: {e}")))?;
    addrs
        .next()
        .ok_or_else(|| UsageError(format!("bootstrap {peer:?}: no address")).into())
}

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
