//! `nexnet serve`'s settings: one type read from flags, `NEXNET_*`
//! environment variables (clap's `env`) and `DIR/nexnet.toml` (serde), so
//! that each setting is declared once, and a flag wins over its variable,
//! the variable over the file, and the file over the default.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::Path,
    str::FromStr,
    time::Duration,
};

use anyhow::{Context, Result};
use clap::{Args, builder::BoolishValueParser};
use nexnet::server::ServerConfig;
use serde::{Deserialize, Deserializer};

use crate::UsageError;

const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 3000);
const DEFAULT_API: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5001);
/// The settings file a data directory may hold.
const CONFIG_FILE: &str = "nexnet.toml";

/// The node's settings. Each is a flag (`--write-quorum`), a variable
/// (`NEXNET_WRITE_QUORUM`) and a key of the file (`write_quorum`); `None`
/// where none of them says.
#[derive(Debug, Default, Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where peers connect [default: 0.0.0.0:3000]; they must prove the
    /// network secret.
    #[arg(long, value_name = "ADDR", env = "NEXNET_LISTEN")]
    listen: Option<SocketAddr>,
    /// The address peers should dial, if not the listen address.
    #[arg(long, value_name = "ADDR", env = "NEXNET_ADVERTISE")]
    advertise: Option<SocketAddr>,
    /// Where the HTTP API listens [default: 127.0.0.1:5001].
    #[arg(long, value_name = "ADDR", env = "NEXNET_API")]
    api: Option<SocketAddr>,
    /// A node to join through, HOST:PORT (repeat for more; the variable
    /// takes a comma-separated list).
    #[arg(
        long,
        value_name = "ADDR",
        env = "NEXNET_BOOTSTRAP",
        value_delimiter = ','
    )]
    bootstrap: Option<Vec<String>>,
    /// How many nodes hold each file [default: 3].
    #[arg(long, value_name = "N", env = "NEXNET_REPLICAS")]
    replicas: Option<usize>,
    /// How many holders must commit a store [default: every reachable one
    /// for the data, a majority of the name's holders for its entry].
    #[arg(long, value_name = "N", env = "NEXNET_WRITE_QUORUM")]
    write_quorum: Option<usize>,
    /// How many of a name's holders a read asks [default: a majority]; 1
    /// reads this node's own entry when it has one (available, maybe stale).
    #[arg(long, value_name = "N", env = "NEXNET_READ_QUORUM")]
    read_quorum: Option<usize>,
    /// Skip fsync (faster, not crash-safe); `NEXNET_FSYNC=false` and
    /// `fsync = false` in the file do the same.
    #[arg(
        long = "no-fsync",
        env = "NEXNET_FSYNC",
        num_args = 0,
        default_missing_value = "false",
        value_parser = BoolishValueParser::new()
    )]
    fsync: Option<bool>,
    /// Bearer token the API requires (needed to bind it off loopback).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "NEXNET_API_TOKEN",
        hide_env_values = true
    )]
    api_token: Option<String>,
    /// How often the repair pass runs, or `off` [default: 10m].
    #[arg(long, value_name = "DURATION", env = "NEXNET_REPAIR_INTERVAL")]
    #[serde(deserialize_with = "parsed")]
    repair_interval: Option<Every>,
    /// How often peers are pinged; a peer silent for three is taken for
    /// dead, which bounds how fast a get fails over [default: 5s].
    #[arg(long, value_name = "DURATION", env = "NEXNET_HEARTBEAT")]
    #[serde(deserialize_with = "parsed")]
    heartbeat: Option<Interval>,
    /// How long an unreachable member is redialled before it is forgotten,
    /// or `never` [default: 1day].
    #[arg(long, value_name = "DURATION", env = "NEXNET_FORGET_AFTER")]
    #[serde(deserialize_with = "parsed")]
    forget_after: Option<Every>,
    /// Bytes per chunk of new files: a power of two from 64K to 16M
    /// [default: 1M].
    #[arg(long, value_name = "SIZE", env = "NEXNET_CHUNK_SIZE")]
    #[serde(deserialize_with = "parsed")]
    chunk_size: Option<Bytes>,
    /// Bytes of chunks kept after reads of files this node does not hold,
    /// or 0 for none [default: 256M].
    #[arg(long, value_name = "SIZE", env = "NEXNET_CACHE_SIZE")]
    #[serde(deserialize_with = "parsed")]
    cache_size: Option<Bytes>,
}

/// What the settings come to: the node's configuration and its API's.
pub struct Resolved {
    /// The node's configuration.
    pub node: ServerConfig,
    /// Where the API listens.
    pub api: SocketAddr,
    /// The bearer token the API requires, if any.
    pub token: Option<String>,
}

impl Settings {
    /// `DIR/nexnet.toml`; nothing set if there is no such file.
    pub fn from_file(dir: &Path) -> Result<Settings> {
        let path = dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        toml::from_str(&text).map_err(|e| file_error(&path, &text, e).into())
    }

    /// These settings, with what they leave unset taken from `fallback`.
    pub fn or(self, fallback: Settings) -> Settings {
        Settings {
            listen: self.listen.or(fallback.listen),
            advertise: self.advertise.or(fallback.advertise),
            api: self.api.or(fallback.api),
            bootstrap: self.bootstrap.or(fallback.bootstrap),
            replicas: self.replicas.or(fallback.replicas),
            write_quorum: self.write_quorum.or(fallback.write_quorum),
            read_quorum: self.read_quorum.or(fallback.read_quorum),
            fsync: self.fsync.or(fallback.fsync),
            api_token: self.api_token.or(fallback.api_token),
            repair_interval: self.repair_interval.or(fallback.repair_interval),
            heartbeat: self.heartbeat.or(fallback.heartbeat),
            forget_after: self.forget_after.or(fallback.forget_after),
            chunk_size: self.chunk_size.or(fallback.chunk_size),
            cache_size: self.cache_size.or(fallback.cache_size),
        }
    }

    /// The defaults filled in, the API checked (off loopback only with a
    /// token) and the bootstrap peers resolved.
    pub async fn resolve(self, data: &Path) -> Result<Resolved> {
        let api = self.api.unwrap_or(DEFAULT_API);
        let token = self.api_token.filter(|t| !t.is_empty());
        if !api.ip().is_loopback() && token.is_none() {
            return Err(UsageError(format!(
                "the API would listen on {api}, off loopback, without a token; pass --api-token"
            ))
            .into());
        }
        let mut node = ServerConfig::new(data)
            .listen(self.listen.unwrap_or(DEFAULT_LISTEN))
            .fsync(self.fsync.unwrap_or(true));
        node.advertise = self.advertise;
        for peer in self.bootstrap.unwrap_or_default() {
            node.bootstrap.push(resolve(&peer).await?);
        }
        node.replication = self.replicas.unwrap_or(node.replication);
        node.write_quorum = self.write_quorum.or(node.write_quorum);
        node.read_quorum = self.read_quorum.or(node.read_quorum);
        node.repair_interval = self.repair_interval.map_or(node.repair_interval, |e| e.0);
        node.heartbeat_interval = self.heartbeat.map_or(node.heartbeat_interval, |i| i.0);
        node.forget_after = self.forget_after.map_or(node.forget_after, |e| e.0);
        if let Some(Bytes(c)) = self.chunk_size {
            node.chunk_size = u32::try_from(c).map_err(|_| {
                UsageError(format!(
                    "chunk size {c}: must be a power of two from 64K to 16M"
                ))
            })?;
        }
        node.cache_size = self.cache_size.map_or(node.cache_size, |b| b.0);
        Ok(Resolved { node, api, token })
    }
}

/// A bad settings file, in one line that says where and names the setting
/// (toml's own message quotes the file's line over several lines, and
/// names the key only when it is not given the file's text).
fn file_error(path: &Path, text: &str, mut e: toml::de::Error) -> UsageError {
    let mut at = path.display().to_string();
    if let Some(span) = e.span() {
        let line = text.get(..span.start).unwrap_or(text).matches('\n').count() + 1;
        at.push_str(&format!(", line {line}"));
    }
    e.set_input(None);
    let shown = e.to_string();
    let key = shown
        .lines()
        .find_map(|l| l.strip_prefix("in `")?.strip_suffix('`'));
    let what = e.message();
    UsageError(match key {
        Some(key) => format!("{at}: {key}: {what}"),
        None => format!("{at}: {what}"),
    })
}

/// A setting the file holds as text (`heartbeat = "5s"`), parsed as its
/// flag is.
fn parsed<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = String>,
{
    let text = String::deserialize(d)?;
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

/// A positive duration of at most a year (`30s`, `10m`, `1h30m`, `2days`).
#[derive(Clone, Copy, Debug)]
struct Interval(Duration);

/// An [`Interval`], or none (`off`, `never`).
#[derive(Clone, Copy, Debug)]
struct Every(Option<Duration>);

impl FromStr for Interval {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let d = humantime::parse_duration(text.trim())
            .map_err(|e| format!("{text:?} is not a duration like 30s, 10m or 1day: {e}"))?;
        if d.is_zero() {
            return Err(format!("{text:?}: must be more than zero"));
        }
        if d > nexnet::server::MAX_DURATION {
            return Err(format!("{text:?}: must be at most 365days"));
        }
        Ok(Interval(d))
    }
}

impl FromStr for Every {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "off" | "never" => Ok(Every(None)),
            other => other.parse().map(|Interval(d)| Every(Some(d))),
        }
    }
}

/// A number of bytes: plain, or with a K, M, G or T suffix (powers of
/// 1024; `KiB`, `MB` and the like are read the same way).
#[derive(Clone, Copy, Debug)]
struct Bytes(u64);

impl FromStr for Bytes {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        nexnet::size::parse_size(text).map(Bytes)
    }
}

/// The first address `peer` (HOST:PORT) resolves to.
async fn resolve(peer: &str) -> Result<SocketAddr> {
    let mut addrs = tokio::net::lookup_host(peer)
        .await
        .map_err(|e| UsageError(format!("bootstrap {peer:?}: {e}")))?;
    addrs
        .next()
        .ok_or_else(|| UsageError(format!("bootstrap {peer:?}: no address")).into())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser};

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        settings: Settings,
    }

    /// The settings these flags give, whatever the environment holds.
    fn flags(args: &[&str]) -> Settings {
        let matches = Command::command()
            .mut_args(|a| a.env(None))
            .get_matches_from(std::iter::once("serve").chain(args.iter().copied()));
        Command::from_arg_matches(&matches).unwrap().settings
    }

    fn file(text: &str) -> std::result::Result<Settings, String> {
        toml::from_str(text).map_err(|e| file_error(Path::new("nexnet.toml"), text, e).0)
    }

    #[test]
    fn sizes_take_units_and_refuse_nonsense() {
        for (text, n) in [
            ("65536", 65536),
            ("64K", 65536),
            ("1M", 1 << 20),
            ("16MiB", 16 << 20),
            ("2g", 2 << 30),
        ] {
            assert_eq!(text.parse::<Bytes>().unwrap().0, n, "{text}");
        }
        for bad in ["", "M", "1X", "-1", "99999999999999T"] {
            assert!(bad.parse::<Bytes>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_flag_wins_over_the_file_and_the_file_over_the_default() {
        let from_file =
            file("replicas = 2\nheartbeat = \"1s\"\nfsync = false\nbootstrap = [\"a:1\"]").unwrap();
        let merged = flags(&["--replicas", "4", "--bootstrap", "b:2,c:3"]).or(from_file);
        assert_eq!(merged.replicas, Some(4));
        assert_eq!(merged.bootstrap, Some(vec!["b:2".into(), "c:3".into()]));
        assert_eq!(merged.heartbeat.map(|i| i.0), Some(Duration::from_secs(1)));
        assert_eq!(merged.fsync, Some(false));
        assert_eq!(merged.listen, None);
        assert_eq!(flags(&[]).fsync, None);
        assert_eq!(flags(&["--no-fsync"]).fsync, Some(false));
    }

    #[test]
    fn bad_values_in_the_file_name_the_setting_and_the_line() {
        let e = file("replicas = 2\nforget_after = \"soon\"").unwrap_err();
        assert!(
            e.starts_with("nexnet.toml, line 2: forget_after: \"soon\" is not a duration"),
            "{e}"
        );
        assert_eq!(
            file("repair_interval = \"off\"")
                .unwrap()
                .repair_interval
                .map(|e| e.0),
            Some(None)
        );
        let e = file("heartbeat = \"never\"").unwrap_err();
        assert!(e.contains("heartbeat"), "{e}");
        let e = file("replicas = \"x\"").unwrap_err();
        assert!(e.contains("replicas: invalid type"), "{e}");
        let e = file("bogus = 1").unwrap_err();
        assert!(e.contains("unknown field `bogus`"), "{e}");
    }
}
