//! The JSON the API serves and `--json` prints: one definition for both
//! sides, so they cannot drift. Field names are a stable interface
//! (documented in the README); new fields may be added, none removed.

use serde::{Deserialize, Serialize};

/// A stored file (`GET /v1/files`, `ls --json`).
#[derive(Debug, Serialize, Deserialize)]
pub struct FileJson {
    /// The name, or `null` on a node without the key it was stored under.
    pub name: Option<String>,
    /// The name id (MD5 of the name), hex.
    pub name_id: String,
    /// The file's id (its root manifest's content id), hex.
    pub cid: String,
    /// Bytes of the file.
    pub size: u64,
    /// The nodes that hold its root (placement), node ids in hex.
    pub replicas: Vec<String>,
    /// When it was stored, ms since the Unix epoch.
    pub created_ms: u64,
    /// Whether the node asked holds the object itself.
    pub local: bool,
}

/// What a store did (`PUT /v1/files/{name}`, `put --json`).
#[derive(Debug, Serialize, Deserialize)]
pub struct PutJson {
    /// The name stored.
    pub name: String,
    /// The content id, hex.
    pub cid: String,
    /// Bytes of the file.
    pub size: u64,
    /// How many chunks it was cut into.
    #[serde(default)]
    pub chunks: u64,
    /// The nodes that committed its root.
    pub replicas: Vec<String>,
    /// The nodes placement chose.
    pub holders: Vec<String>,
    /// Holders that did not commit, and why.
    pub missed: Vec<MissedJson>,
    /// How many copies were committed (`replicas`' length) ...
    #[serde(default)]
    pub copies: usize,
    /// ... of how many placement asks (R, or fewer in a smaller mesh).
    /// Fewer copies than this, but at least the write quorum, is a
    /// success: repair adds the rest when the missing holders return.
    #[serde(default)]
    pub of: usize,
}

/// A node that missed an operation.
#[derive(Debug, Serialize, Deserialize)]
pub struct MissedJson {
    /// Its node id.
    pub node_id: String,
    /// Why.
    pub reason: String,
}

/// What a delete did (`DELETE /v1/files/{name}`, `rm --json`).
#[derive(Debug, Serialize, Deserialize)]
pub struct DeleteJson {
    /// The name deleted.
    pub name: String,
    /// The object deleted, hex.
    pub cid: String,
    /// Nodes that confirmed.
    pub confirmed: Vec<String>,
    /// Nodes that had a copy.
    pub removed: Vec<String>,
    /// Nodes to be told when they reconnect.
    pub pending: Vec<MissedJson>,
}

/// A member (`GET /v1/peers`, `peers --json`).
#[derive(Debug, Serialize, Deserialize)]
pub struct PeerJson {
    /// Its node id, hex.
    pub node_id: String,
    /// Where it listens, if known.
    pub addr: Option<String>,
    /// `connected` or `disconnected`.
    pub state: String,
    /// When it was last connected, ms since the Unix epoch.
    pub last_seen_ms: u64,
}

/// A node's status (`GET /v1/status`, `status --json`).
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusJson {
    /// Its node id, hex.
    pub node_id: String,
    /// The peer address it advertises.
    pub listen: String,
    /// The API address.
    pub api: String,
    /// The data key's fingerprint.
    pub key_id: String,
    /// Objects stored.
    pub objects: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// Files in its catalog.
    pub files: usize,
    /// Members connected now.
    pub peers: usize,
    /// Members known.
    pub members: usize,
    /// The replication factor.
    pub replicas: usize,
    /// Bytes in the read cache.
    #[serde(default)]
    pub cached_bytes: u64,
    /// Chunks fetched from peers since start.
    #[serde(default)]
    pub chunks_fetched: u64,
    /// Bytes of objects sent to peers since start.
    #[serde(default)]
    pub served_bytes: u64,
}

/// The body of every error response.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorJson {
    /// What went wrong, with its causes.
    pub error: String,
    /// A stable code: `not_found`, `invalid_name`, `quorum`, ...
    pub code: String,
}
