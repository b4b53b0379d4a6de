//! The HTTP API of `nexnet serve` (axum): files, peers, status, metrics.
//! Bodies stream both ways; nothing holds a whole file.

use std::{
    fmt::Write as _,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::UNIX_EPOCH,
};

use axum::{
    Json, Router,
    body::Body,
    extract::{FromRequestParts, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use futures::{StreamExt, TryStreamExt};
use nexnet::{
    crypto::CryptoError,
    server::{FileInfo, FileServer, ServerError},
    store::{Cid, StoreError},
};
use tokio_util::io::{ReaderStream, StreamReader};
use tracing::warn;

use crate::{
    range::{self, Ranged},
    wire::{DeleteJson, ErrorJson, FileJson, MissedJson, PeerJson, PutJson, StatusJson},
};

/// Counters for `/metrics`.
#[derive(Default)]
struct Metrics {
    puts: AtomicU64,
    gets: AtomicU64,
    deletes: AtomicU64,
    errors: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

struct Api {
    server: FileServer,
    token: Option<String>,
    addr: SocketAddr,
    metrics: Metrics,
}

type Shared = State<Arc<Api>>;

/// The API's routes, guarded by `token` when there is one.
pub fn router(server: FileServer, token: Option<String>, addr: SocketAddr) -> Router {
    let api = Arc::new(Api {
        server,
        token,
        addr,
        metrics: Metrics::default(),
    });
    Router::new()
        .route("/v1/files", get(list))
        .route(
            "/v1/files/{*name}",
            get(get_file)
                .head(head_file)
                .put(put_file)
                .delete(delete_file),
        )
        .route("/v1/peers", get(peers))
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(api.clone(), authorize))
        .with_state(api)
}

/// An error response: a status and a JSON body with a stable code.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<ServerError> for ApiError {
    fn from(e: ServerError) -> Self {
        let (status, code) = match &e {
            ServerError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            ServerError::InvalidName { .. } => (StatusCode::BAD_REQUEST, "invalid_name"),
            ServerError::RangeNotSatisfiable { .. } => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable")
            }
            ServerError::Quorum { .. } => (StatusCode::SERVICE_UNAVAILABLE, "quorum"),
            ServerError::NotStored { .. } => (StatusCode::SERVICE_UNAVAILABLE, "not_stored"),
            ServerError::NoReadQuorum { .. } => (StatusCode::SERVICE_UNAVAILABLE, "no_read_quorum"),
            ServerError::NotDurable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "not_durable"),
            ServerError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ServerError::DiskFull { .. } => (StatusCode::INSUFFICIENT_STORAGE, "disk_full"),
            ServerError::Source(_) => (StatusCode::BAD_REQUEST, "body"),
            ServerError::Crypto(CryptoError::KeyMismatch { .. }) => {
                (StatusCode::CONFLICT, "key_mismatch")
            }
            ServerError::Store(StoreError::TooLarge { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        Self::new(status, code, error_chain(&e))
    }
}

/// What precedes a file's name in its URL path (the route `/v1/files/{*name}`).
const FILES_PREFIX: &str = "/v1/files/";
/// The largest piece of a response body read at once.
const BODY_CHUNK: usize = 256 * 1024;

/// The file name a `/v1/files/{name}` request names, decoded from the raw
/// request path by [`nexnet::url_names::name_from_url_path`] (not by axum's
/// `Path`, so that the decoding is ours, fuzzed and shared with the
/// client's encoding). A bad name is a 400 `invalid_name`.
struct FileName(String);

impl FromRequestParts<Arc<Api>> for FileName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> ApiResult<Self> {
        // The router sends only paths that start with the prefix here; the
        // router is not nested, so the URI is the one the client sent.
        let raw = parts
            .uri
            .path()
            .strip_prefix(FILES_PREFIX)
            .unwrap_or_default();
        nexnet::url_names::name_from_url_path(raw)
            .map(Self)
            .map_err(|e| failed(api, e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorJson {
            error: self.message,
            code: self.code.into(),
        };
        (self.status, Json(body)).into_response()
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        // Some errors already print their cause; do not say it twice.
        let text = s.to_string();
        if !out.ends_with(&text) {
            let _ = write!(out, ": {text}");
        }
        source = s.source();
    }
    out
}

type ApiResult<T> = Result<T, ApiError>;

/// Counts failed requests; 5xx are logged.
fn failed(api: &Api, e: impl Into<ApiError>) -> ApiError {
    let e = e.into();
    api.metrics.errors.fetch_add(1, Ordering::Relaxed);
    if e.status.is_server_error() {
        warn!(code = e.code, error = %e.message, "request failed");
    }
    e
}

async fn authorize(State(api): Shared, request: Request, next: Next) -> Response {
    if let Some(token) = &api.token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, token)| token.trim());
        if !same(presented.as_bytes(), token.as_bytes()) {
            api.metrics.errors.fetch_add(1, Ordering::Relaxed);
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this API needs `Authorization: Bearer TOKEN`",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn node_list(nodes: &[nexnet::p2p::NodeId]) -> Vec<String> {
    nodes.iter().map(ToString::to_string).collect()
}

fn file_json(f: FileInfo) -> FileJson {
    FileJson {
        name: f.name,
        name_id: f.name_id.to_string(),
        cid: f.cid.to_hex(),
        size: f.size,
        replicas: node_list(&f.holders),
        created_ms: f.created_ms,
        local: f.local,
    }
}

async fn put_file(
    State(api): Shared,
    FileName(name): FileName,
    body: Body,
) -> ApiResult<(StatusCode, Json<PutJson>)> {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let receipt = api
        .server
        .store(&name, StreamReader::new(stream))
        .await
        .map_err(|e| failed(&api, e))?;
    api.metrics.puts.fetch_add(1, Ordering::Relaxed);
    api.metrics
        .bytes_in
        .fetch_add(receipt.plain_len, Ordering::Relaxed);
    let missed = receipt
        .missed
        .iter()
        .map(|(n, why)| MissedJson {
            node_id: n.to_string(),
            reason: why.to_string(),
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(PutJson {
            name,
            cid: receipt.cid.to_hex(),
            size: receipt.plain_len,
            chunks: receipt.chunks,
            replicas: node_list(&receipt.committed),
            holders: node_list(&receipt.holders),
            missed,
            copies: receipt.committed.len(),
            of: receipt.holders.len(),
        }),
    ))
}

fn file_headers(cid: Cid, len: u64) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(tag) = HeaderValue::from_str(&format!("\"{}\"", cid.to_hex())) {
        h.insert(header::ETAG, tag);
    }
    h
}

async fn head_file(
    State(api): Shared,
    FileName(name): FileName,
) -> ApiResult<(StatusCode, HeaderMap)> {
    let info = api.server.info(&name).await.map_err(|e| failed(&api, e))?;
    Ok((StatusCode::OK, file_headers(info.cid, info.size)))
}

async fn get_file(
    State(api): Shared,
    FileName(name): FileName,
    request_headers: HeaderMap,
) -> ApiResult<Response> {
    // One lookup: the range is resolved against the size the node finds,
    // before it fetches or verifies anything.
    let asked = request_headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    let mut status = StatusCode::OK;
    let choose = |file_len| match range::parse(asked, file_len) {
        Ranged::Whole => None,
        Ranged::Part { offset, len } => {
            status = StatusCode::PARTIAL_CONTENT;
            Some((offset, len))
        }
        // Past any end: the node refuses it with the file's size.
        Ranged::Unsatisfiable => Some((u64::MAX, 0)),
    };
    let reader = match api.server.get_with(&name, choose).await {
        Ok(reader) => reader,
        Err(ServerError::RangeNotSatisfiable { file_len, .. }) => {
            let mut e = failed(
                &api,
                ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range_not_satisfiable",
                    format!("the file has {file_len} bytes"),
                ),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{file_len}")) {
                e.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(e);
        }
        Err(e) => return Err(failed(&api, e)),
    };
    let file_len = reader.file_len();
    let mut headers = file_headers(reader.cid(), reader.len());
    if status == StatusCode::PARTIAL_CONTENT && !reader.is_empty() {
        let (offset, end) = (reader.offset(), reader.offset() + reader.len() - 1);
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {offset}-{end}/{file_len}")) {
            headers.insert(header::CONTENT_RANGE, v);
        }
    }
    api.metrics.gets.fetch_add(1, Ordering::Relaxed);
    let counter = api.clone();
    // A buffer the size of a small file, not 256 KiB for each of a thousand
    // clients reading 4 KiB files.
    let capacity = usize::try_from(reader.len()).map_or(BODY_CHUNK, |n| n.clamp(1, BODY_CHUNK));
    let body = ReaderStream::with_capacity(reader, capacity).inspect(move |chunk| {
        if let Ok(bytes) = chunk {
            counter
                .metrics
                .bytes_out
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
    });
    Ok((status, headers, Body::from_stream(body)).into_response())
}

async fn delete_file(State(api): Shared, FileName(name): FileName) -> ApiResult<Json<DeleteJson>> {
    let report = api
        .server
        .delete(&name)
        .await
        .map_err(|e| failed(&api, e))?;
    api.metrics.deletes.fetch_add(1, Ordering::Relaxed);
    Ok(Json(DeleteJson {
        name,
        cid: report.cid.to_hex(),
        confirmed: node_list(&report.confirmed),
        removed: node_list(&report.removed),
        pending: report
            .pending
            .iter()
            .map(|(n, why)| MissedJson {
                node_id: n.to_string(),
                reason: why.to_string(),
            })
            .collect(),
    }))
}

async fn list(State(api): Shared) -> ApiResult<Json<Vec<FileJson>>> {
    let files = api.server.list().await.map_err(|e| failed(&api, e))?;
    Ok(Json(files.into_iter().map(file_json).collect()))
}

async fn peers(State(api): Shared) -> Json<Vec<PeerJson>> {
    let list = api
        .server
        .members()
        .into_iter()
        .map(|m| PeerJson {
            node_id: m.node_id.to_string(),
            addr: m.addr.map(|a| a.to_string()),
            state: if m.connected {
                "connected"
            } else {
                "disconnected"
            }
            .into(),
            last_seen_ms: m
                .last_seen
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0),
        })
        .collect();
    Json(list)
}

fn status_json(api: &Api) -> StatusJson {
    let stats = api.server.stats();
    StatusJson {
        node_id: api.server.node_id().to_string(),
        listen: api.server.local_addr().to_string(),
        api: api.addr.to_string(),
        key_id: api.server.key_id().to_string(),
        objects: stats.objects,
        bytes: stats.bytes,
        files: stats.files,
        peers: stats.peers,
        members: stats.members,
        replicas: api.server.config().replication,
        cached_bytes: stats.cached_bytes,
        chunks_fetched: stats.chunks_fetched,
        served_bytes: stats.served_bytes,
    }
}

async fn status(State(api): Shared) -> Json<StatusJson> {
    Json(status_json(&api))
}

async fn metrics(State(api): Shared) -> impl IntoResponse {
    let s = status_json(&api);
    let m = &api.metrics;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let metrics: [(&str, &str, &str, u64); 14] = [
        (
            "nexnet_objects",
            "gauge",
            "Objects stored on this node.",
            s.objects,
        ),
        (
            "nexnet_bytes_stored",
            "gauge",
            "Bytes of objects stored on this node.",
            s.bytes,
        ),
        (
            "nexnet_files",
            "gauge",
            "Files in this node's catalog.",
            s.files as u64,
        ),
        (
            "nexnet_peers",
            "gauge",
            "Members connected now.",
            s.peers as u64,
        ),
        (
            "nexnet_members",
            "gauge",
            "Members known.",
            s.members as u64,
        ),
        (
            "nexnet_cached_bytes",
            "gauge",
            "Bytes of chunks in the read cache.",
            s.cached_bytes,
        ),
        (
            "nexnet_chunks_fetched_total",
            "counter",
            "Chunks and manifest nodes fetched from peers.",
            s.chunks_fetched,
        ),
        (
            "nexnet_peer_bytes_sent_total",
            "counter",
            "Bytes of objects sent to peers that fetched them.",
            s.served_bytes,
        ),
        (
            "nexnet_puts_total",
            "counter",
            "Files stored through the API.",
            load(&m.puts),
        ),
        (
            "nexnet_gets_total",
            "counter",
            "Files read through the API.",
            load(&m.gets),
        ),
        (
            "nexnet_deletes_total",
            "counter",
            "Files deleted through the API.",
            load(&m.deletes),
        ),
        (
            "nexnet_errors_total",
            "counter",
            "API requests that failed.",
            load(&m.errors),
        ),
        (
            "nexnet_bytes_received_total",
            "counter",
            "File bytes stored through the API.",
            load(&m.bytes_in),
        ),
        (
            "nexnet_bytes_sent_total",
            "counter",
            "File bytes sent by the API.",
            load(&m.bytes_out),
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in metrics {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
