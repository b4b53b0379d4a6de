//! The client commands: they talk to a node's HTTP API.

use std::{
    io::IsTerminal,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use nexnet::store::AtomicFile;
use reqwest::{Response, StatusCode, Url};
use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use crate::{
    UsageError,
    wire::{DeleteJson, ErrorJson, FileJson, PeerJson, PutJson, StatusJson},
};

/// Transfers above this size get a progress bar (on a terminal).
const PROGRESS_ABOVE: u64 = 4 * 1024 * 1024;

/// Which node to talk to.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The node's API address.
    #[arg(
        long,
        value_name = "ADDR",
        env = "NEXNET_API",
        default_value = "127.0.0.1:5001"
    )]
    api: String,
    /// The API's bearer token, if it requires one.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "NEXNET_API_TOKEN",
        hide_env_values = true
    )]
    api_token: Option<String>,
}

/// Stores a file.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The file to store; `-` reads standard input.
    path: PathBuf,
    /// The name to store it under [default: the file's name].
    #[arg(long)]
    name: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

/// Fetches a file.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The file's name.
    name: String,
    /// Write it here (whole or not at all) instead of to standard output.
    #[arg(short = 'o', long, value_name = "PATH")]
    output: Option<PathBuf>,
    #[command(flatten)]
    api: ApiArgs,
}

/// Deletes a file.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// The file's name.
    name: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

/// Lists files.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Print JSON: an array of {name, cid, size, replicas, ...}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

/// Lists peers.
#[derive(Debug, Args)]
pub struct PeersArgs {
    /// Print JSON: an array of {node_id, addr, state, last_seen_ms}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

/// Shows a node's status.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON: {node_id, listen, api, objects, bytes, peers, ...}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

/// A connection to one node's API.
struct Api {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    fn new(args: &ApiArgs) -> Result<Self> {
        let text = if args.api.contains("://") {
            args.api.clone()
        } else {
            format!("http://{}", args.api)
        };
        let base = Url::parse(&text)
            .ok()
            .filter(|u| u.scheme() == "http" && u.host().is_some())
            .ok_or_else(|| UsageError(format!("--api {}: expected HOST:PORT", args.api)))?;
        Ok(Self {
            base,
            token: args.api_token.clone(),
            http: reqwest::Client::new(),
        })
    }

    fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow!("{} cannot be a base URL", self.base))?
            .clear()
            .extend(segments);
        Ok(url)
    }

    /// The URL of file `name`: `/v1/files/` and the name percent-encoded by
    /// [`nexnet::url_names::url_path_for_name`], slashes included, which the
    /// node decodes with `nexnet::url_names::name_from_url_path`.
    fn file_url(&self, name: &str) -> Url {
        let mut url = self.base.clone();
        // Only unreserved characters and escapes: `set_path` keeps them as
        // they are (the name is checked, so never `.` or `..`).
        url.set_path(&format!(
            "/v1/files/{}",
            nexnet::url_names::url_path_for_name(name)
        ));
        url
    }

    fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        let r = self.http.request(method, url);
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends, turning a refused connection and an error status into one
    /// clear error.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Response> {
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow!(
                    "cannot reach the nexnet API at {}: is `nexnet serve` running there? (set --api or NEXNET_API)",
                    self.base
                )
            } else {
                anyhow!(e).context(format!("request to {} failed", self.base))
            }
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let (message, code) = match serde_json::from_str::<ErrorJson>(&body) {
            Ok(e) => (e.error, e.code),
            Err(_) => (body.trim().to_string(), String::new()),
        };
        let message = if message.is_empty() {
            status.to_string()
        } else {
            message
        };
        if code == "invalid_name" || status == StatusCode::UNAUTHORIZED {
            bail!(UsageError(message));
        }
        bail!("{message}")
    }

    async fn json<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T> {
        let url = self.url(segments)?;
        let response = self.send(self.request(reqwest::Method::GET, url)).await?;
        response
            .json()
            .await
            .with_context(|| format!("unexpected answer from {}", self.base))
    }
}

/// Refuses a name the node would refuse, before any transfer.
fn check_name(name: &str) -> Result<()> {
    nexnet::server::check_name(name).map_err(|e| {
        let shown: String = name.chars().take(40).collect();
        let more = if shown.len() < name.len() { "…" } else { "" };
        let why = match e {
            nexnet::server::ServerError::InvalidName { reason } => reason.to_string(),
            other => other.to_string(),
        };
        UsageError(format!("invalid name {shown:?}{more}: {why}")).into()
    })
}

fn progress(len: Option<u64>, verb: &str) -> ProgressBar {
    let big = len.is_none_or(|l| l > PROGRESS_ABOVE);
    if !big || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(l) => ProgressBar::new(l),
        None => ProgressBar::new_spinner(),
    };
    let template = format!(
        "{verb} {{bar:30}} {{binary_bytes}}/{{binary_total_bytes}} {{binary_bytes_per_sec}} {{eta}}"
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

pub async fn put(args: PutArgs) -> Result<()> {
    let api = Api::new(&args.api)?;
    let stdin = args.path.as_os_str() == "-";
    let name = match (&args.name, stdin) {
        (Some(n), _) => n.clone(),
        (None, true) => bail!(UsageError("reading standard input needs --name".into())),
        (None, false) => args
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                UsageError(format!(
                    "{} has no file name; pass --name",
                    args.path.display()
                ))
            })?,
    };
    check_name(&name)?;
    let (reader, len): (Box<dyn AsyncRead + Send + Unpin>, Option<u64>) = if stdin {
        (Box::new(tokio::io::stdin()), None)
    } else {
        let file = tokio::fs::File::open(&args.path)
            .await
            .with_context(|| format!("cannot open {}", args.path.display()))?;
        let meta = file
            .metadata()
            .await
            .with_context(|| format!("cannot read {}", args.path.display()))?;
        if !meta.is_file() {
            bail!("{} is not a regular file", args.path.display());
        }
        (Box::new(file), Some(meta.len()))
    };
    let bar = progress(len, "put");
    let counted = bar.clone();
    let stream = ReaderStream::with_capacity(reader, 256 * 1024).inspect(move |chunk| {
        if let Ok(bytes) = chunk {
            counted.inc(bytes.len() as u64);
        }
    });
    let url = api.file_url(&name);
    let mut request = api
        .request(reqwest::Method::PUT, url)
        .body(reqwest::Body::wrap_stream(stream));
    if let Some(len) = len {
        request = request.header(reqwest::header::CONTENT_LENGTH, len);
    }
    let response = api.send(request).await;
    bar.finish_and_clear();
    let receipt: PutJson = response?
        .json()
        .await
        .context("unexpected answer to the store")?;
    if args.json {
        println!("{}", serde_json::to_string(&receipt)?);
    } else {
        println!("stored {}", receipt.name);
        println!("  cid       {}", receipt.cid);
        println!("  size      {} bytes", receipt.size);
        println!("  replicas  {}", receipt.replicas.join(", "));
        println!("  copies    {} of {}", receipt.copies, receipt.of);
        for m in &receipt.missed {
            println!("  missed    {} ({})", m.node_id, m.reason);
        }
    }
    if receipt.copies < receipt.of {
        eprintln!(
            "warning: {} is stored with {} of {} copies; repair adds the rest when the missing holders are back",
            receipt.name, receipt.copies, receipt.of
        );
    }
    Ok(())
}

pub async fn get(args: GetArgs) -> Result<()> {
    let api = Api::new(&args.api)?;
    check_name(&args.name)?;
    let url = api.file_url(&args.name);
    let response = api.send(api.request(reqwest::Method::GET, url)).await?;
    let bar = progress(response.content_length(), "get");
    match &args.output {
        Some(path) => {
            let n = write_atomically(path, response, &bar).await;
            bar.finish_and_clear();
            n?;
        }
        None => {
            let mut out = tokio::io::stdout();
            let mut body = response.bytes_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.context("the transfer broke off")?;
                out.write_all(&chunk)
                    .await
                    .context("cannot write to standard output")?;
                bar.inc(chunk.len() as u64);
            }
            out.flush()
                .await
                .context("cannot write to standard output")?;
            bar.finish_and_clear();
        }
    }
    Ok(())
}

/// Streams `response` into a temp file beside `path` and renames it into
/// place once complete: `path` is the whole file or untouched.
async fn write_atomically(path: &Path, response: Response, bar: &ProgressBar) -> Result<u64> {
    let expected = response.content_length();
    // Created as any new file would be (0666 less the umask), not
    // owner-only as temp files are: it becomes the file the user asked for.
    let mut out =
        AtomicFile::beside(path).with_context(|| format!("cannot create {}", path.display()))?;
    let temp = out.temp_path().to_path_buf();
    let handle = out
        .file()
        .try_clone()
        .with_context(|| format!("cannot write {}", temp.display()))?;
    let mut file = tokio::fs::File::from_std(handle);
    let mut body = response.bytes_stream();
    let mut written = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("the transfer broke off")?;
        file.write_all(&chunk)
            .await
            .with_context(|| format!("cannot write {}", temp.display()))?;
        written += chunk.len() as u64;
        bar.inc(chunk.len() as u64);
    }
    if let Some(expected) = expected
        && written != expected
    {
        bail!("the transfer broke off after {written} of {expected} bytes");
    }
    file.flush()
        .await
        .with_context(|| format!("cannot write {}", temp.display()))?;
    drop(file);
    tokio::task::spawn_blocking(move || out.commit())
        .await?
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok(written)
}

pub async fn rm(args: RmArgs) -> Result<()> {
    let api = Api::new(&args.api)?;
    check_name(&args.name)?;
    let url = api.file_url(&args.name);
    let report: DeleteJson = api
        .send(api.request(reqwest::Method::DELETE, url))
        .await?
        .json()
        .await
        .context("unexpected answer to the delete")?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "deleted {} ({} nodes confirmed, {} had a copy)",
            report.name,
            report.confirmed.len(),
            report.removed.len()
        );
        for p in &report.pending {
            println!("  later  {} ({})", p.node_id, p.reason);
        }
    }
    Ok(())
}

/// GETs `segments` from the node. With `json`, prints the answer as one
/// line of JSON and gives `None`; otherwise gives it, for a table.
async fn fetch<T: DeserializeOwned + Serialize>(
    args: &ApiArgs,
    json: bool,
    segments: &[&str],
) -> Result<Option<T>> {
    let answer: T = Api::new(args)?.json(segments).await?;
    if json {
        println!("{}", serde_json::to_string(&answer)?);
        return Ok(None);
    }
    Ok(Some(answer))
}

pub async fn ls(args: LsArgs) -> Result<()> {
    let Some(files) = fetch::<Vec<FileJson>>(&args.api, args.json, &["v1", "files"]).await? else {
        return Ok(());
    };
    println!("{:<40} {:>14}  {:<12}  REPLICAS", "NAME", "SIZE", "CID");
    for f in &files {
        let name = f.name.clone().unwrap_or_else(|| format!("<{}>", f.name_id));
        let prefix = |s: &str, n: usize| s.chars().take(n).collect::<String>();
        let short: Vec<String> = f.replicas.iter().map(|r| prefix(r, 8)).collect();
        println!(
            "{:<40} {:>14}  {:<12}  {}",
            name,
            f.size,
            prefix(&f.cid, 12),
            short.join(",")
        );
    }
    Ok(())
}

pub async fn peers(args: PeersArgs) -> Result<()> {
    let Some(peers) = fetch::<Vec<PeerJson>>(&args.api, args.json, &["v1", "peers"]).await? else {
        return Ok(());
    };
    println!(
        "{:<64}  {:<22}  {:<12}  LAST SEEN (ms since epoch)",
        "NODE", "ADDRESS", "STATE"
    );
    for p in &peers {
        println!(
            "{:<64}  {:<22}  {:<12}  {}",
            p.node_id,
            p.addr.as_deref().unwrap_or("-"),
            p.state,
            p.last_seen_ms
        );
    }
    Ok(())
}

pub async fn status(args: StatusArgs) -> Result<()> {
    let Some(s) = fetch::<StatusJson>(&args.api, args.json, &["v1", "status"]).await? else {
        return Ok(());
    };
    println!("node     {}", s.node_id);
    println!(
        "peers    {} ({} connected, {} known)",
        s.listen, s.peers, s.members
    );
    println!("api      http://{}", s.api);
    println!("key id   {}", s.key_id);
    println!("objects  {} ({} bytes)", s.objects, s.bytes);
    println!("files    {}", s.files);
    println!("replicas {}", s.replicas);
    Ok(())
}
