//! In-process meshes of `nexnet_server::FileServer` nodes on loopback, for
//! tests and benches (cargo feature `mesh`).
//!
//! A [`Mesh`] owns a temp directory: node `i` keeps its data in `node{i}/`
//! and every node shares the data key `shared.key` and the network secret
//! `shared.secret` next to them (created by the first node). Node 0 listens
//! first and the others bootstrap from it; [`Mesh::start`] returns once
//! every node sees all the others. The mesh derefs to its `Vec<FileServer>`,
//! so `mesh[0]`, `mesh.pop()`, `mesh.push(node)` and `for n in &mesh` work.
//!
//! ```no_run
//! # async fn demo() {
//! use nexnet_testkit::mesh::{Mesh, assert_reads, store_pattern};
//!
//! let nodes = Mesh::start(3, 3).await; // 3 nodes, replication 3
//! store_pattern(&nodes[0], "docs/a.bin", 7, 100_000).await;
//! assert_reads(&nodes[2], "docs/a.bin", 7, 100_000).await;
//! nodes.shutdown().await;
//! # }
//! ```
//!
//! Besides starting meshes: stopping and restarting nodes on their data
//! directories ([`stop`], [`restart`]), waiting for a condition
//! ([`eventually`]), storing and checking [`Pattern`] files
//! ([`store_pattern`], [`assert_reads`], [`assert_not_found`]), and finding
//! and damaging the object files in a node's data directory
//! ([`object_file`], [`object_path`], [`quarantined`], [`flip_a_byte`]).
//!
//! Only the public API of `nexnet-server` is used; object paths follow the
//! data directory's documented layout (`store/objects`, `store/LAYOUT`,
//! `store/quarantine`). Every helper panics on failure: it fails the test
//! that called it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeSet,
    fmt::Display,
    net::SocketAddr,
    ops::{Deref, DerefMut},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use nexnet_crypto::HEADER_LEN;
use nexnet_p2p::NodeId;
use nexnet_server::{FileServer, Receipt, ServerConfig, ServerError};
use nexnet_store::Cid;
use tempfile::TempDir;

use crate::{Pattern, digest_async_reader, pattern_digest};

/// How long an asynchronous condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(15);
/// How often [`eventually`] checks its condition meanwhile.
pub const POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------

/// The settings of node `i` under `root` that make it a member of the mesh:
/// its own data directory `node{i}`, the shared data key and network secret.
/// Everything else is `ServerConfig`'s default (fsync on, periodic repair).
pub fn shared_config(root: &Path, i: usize) -> ServerConfig {
    ServerConfig::new(root.join(format!("node{i}")))
        .key_file(root.join("shared.key"))
        .secret_file(root.join("shared.secret"))
}

/// The settings tests use: [`shared_config`] with no fsync and no periodic
/// repair (a test runs `repair()` itself when it wants one).
pub fn node_config(root: &Path, i: usize) -> ServerConfig {
    shared_config(root, i).fsync(false).repair_interval(None)
}

// ---------------------------------------------------------------------------
// The mesh
// ---------------------------------------------------------------------------

/// Nodes on loopback in this process, and the temp directory that holds
/// their data (removed when the mesh is dropped).
pub struct Mesh {
    // Dropped in this order: the nodes before their directory.
    nodes: Vec<FileServer>,
    dir: TempDir,
}

impl Mesh {
    /// `n` nodes with [`node_config`] and replication `r`.
    pub async fn start(n: usize, r: usize) -> Self {
        Self::start_with(n, |root, i| node_config(root, i).replication(r)).await
    }

    /// `n` nodes with the settings `config(root, i)` gives node `i` (start
    /// from [`node_config`] or [`shared_config`]). Node 0 is opened first,
    /// the others bootstrap from it; returns once each node sees the other
    /// `n - 1` (within [`DEADLINE`]).
    pub async fn start_with(
        n: usize,
        mut config: impl FnMut(&Path, usize) -> ServerConfig,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes: Vec<FileServer> = Vec::with_capacity(n);
        for i in 0..n {
            let mut config = config(dir.path(), i);
            if let Some(first) = nodes.first() {
                config = config.bootstrap(first.local_addr());
            }
            let node = FileServer::open(config)
                .await
                .unwrap_or_else(|e| panic!("opening node {i}: {e}"));
            nodes.push(node);
        }
        for (i, node) in nodes.iter().enumerate() {
            assert!(
                node.wait_for_peers(n - 1, DEADLINE).await,
                "node {i} did not see its {} peers within {DEADLINE:?} (sees {})",
                n - 1,
                node.stats().peers
            );
        }
        Self { nodes, dir }
    }

    /// The temp directory the nodes' data directories are in (a place for
    /// the test's own files too).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The node ids of the nodes now in the mesh, in order.
    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.iter().map(FileServer::node_id).collect()
    }

    /// The node with id `id`.
    pub fn node(&self, id: NodeId) -> &FileServer {
        self.nodes
            .iter()
            .find(|n| n.node_id() == id)
            .unwrap_or_else(|| panic!("no node {id:?} in the mesh"))
    }

    /// The nodes that hold `name`'s object themselves.
    pub async fn holding(&self, name: &str) -> BTreeSet<NodeId> {
        let mut out = BTreeSet::new();
        for n in &self.nodes {
            if n.has(name).await.unwrap() {
                out.insert(n.node_id());
            }
        }
        out
    }

    /// Waits until every node in the mesh has `peers` peers connected, as
    /// after a node stopped or came back; `what` completes "NODE sees ..."
    /// in the failure message (see [`eventually`]).
    pub async fn eventually_peers(&self, peers: usize, what: &str) {
        for n in &self.nodes {
            eventually(format!("{:?} sees {what}", n.node_id()), async || {
                n.stats().peers == peers
            })
            .await;
        }
    }

    /// Shuts every node in the mesh down (the directory goes when the mesh
    /// is dropped).
    pub async fn shutdown(&self) {
        for n in &self.nodes {
            n.shutdown().await;
        }
    }
}

impl Deref for Mesh {
    type Target = Vec<FileServer>;

    fn deref(&self) -> &Self::Target {
        &self.nodes
    }
}

impl DerefMut for Mesh {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.nodes
    }
}

impl<'a> IntoIterator for &'a Mesh {
    type Item = &'a FileServer;
    type IntoIter = std::slice::Iter<'a, FileServer>;

    fn into_iter(self) -> Self::IntoIter {
        self.nodes.iter()
    }
}

/// Stops `node` and drops it (it must be the last clone), releasing its data
/// directory. Returns its settings, to [`restart`] it with.
pub async fn stop(node: FileServer) -> ServerConfig {
    let config = node.config().clone();
    node.shutdown().await;
    drop(node);
    config
}

/// Reopens a stopped node on its data directory (on a new port), joining
/// through `via`. It is not waited for: see `wait_for_peers`.
pub async fn restart(mut config: ServerConfig, via: SocketAddr) -> FileServer {
    config.bootstrap = vec![via];
    FileServer::open(config).await.unwrap()
}

/// Polls `check` every [`POLL`] until it holds; fails the test with `what`
/// after [`DEADLINE`].
pub async fn eventually(what: impl Display, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

/// Stores `len` bytes of [`Pattern`] `seed` under `name` on `node`, and
/// checks the receipt's lengths and chunk count.
pub async fn store_pattern(node: &FileServer, name: &str, seed: u64, len: u64) -> Receipt {
    let receipt = node
        .store(name, Pattern::new(seed, len))
        .await
        .unwrap_or_else(|e| panic!("store {name:?} ({len} bytes): {e}"));
    assert_eq!(receipt.plain_len, len, "{receipt:?}");
    let chunk_size = u64::from(node.config().chunk_size);
    assert_eq!(
        receipt.chunks,
        chunk_objects(len, chunk_size),
        "{receipt:?}"
    );
    assert!(
        receipt.object_len <= nexnet_server::manifest::MAX_NODE_LEN,
        "{receipt:?}"
    );
    receipt
}

/// How many chunk objects a file of `len` bytes has at `chunk_size`: a
/// last chunk shorter than `MIN_CHUNK_OBJECT` is kept in the root.
pub fn chunk_objects(len: u64, chunk_size: u64) -> u64 {
    let tail = len % chunk_size;
    len / chunk_size + u64::from(tail >= nexnet_server::manifest::MIN_CHUNK_OBJECT)
}

/// The (length, digest) of `name` read through `node` (see
/// [`pattern_digest`]); checks the length the reader announced.
pub async fn read_digest(node: &FileServer, name: &str) -> Result<(u64, u64), ServerError> {
    let reader = node.get(name).await?;
    let len = reader.len();
    let got = digest_async_reader(reader)
        .await
        .unwrap_or_else(|e| panic!("reading {name:?}: {e}"));
    assert_eq!(got.0, len, "{name:?}: the reader announced {len} bytes");
    Ok(got)
}

/// Asserts that `node` reads `name` as pattern `seed` of `len` bytes.
pub async fn assert_reads(node: &FileServer, name: &str, seed: u64, len: u64) {
    match read_digest(node, name).await {
        Ok(got) => assert_eq!(
            got,
            pattern_digest(seed, len),
            "{name:?} read on {:?} has the wrong content",
            node.node_id()
        ),
        Err(e) => panic!("get {name:?} on {:?}: {e}", node.node_id()),
    }
}

/// Asserts that `node` answers `get(name)` with `NotFound`.
pub async fn assert_not_found(node: &FileServer, name: &str) {
    match node.get(name).await {
        Err(ServerError::NotFound { .. }) => {}
        Err(e) => panic!(
            "get {name:?} on {:?}: expected NotFound, got {e}",
            node.node_id()
        ),
        Ok(r) => panic!(
            "get {name:?} on {:?}: expected NotFound, got a file of {} bytes",
            node.node_id(),
            r.len()
        ),
    }
}

// ---------------------------------------------------------------------------
// Objects on disk
// ---------------------------------------------------------------------------

/// `store/objects` in `node`'s data directory.
pub fn objects_dir(node: &FileServer) -> PathBuf {
    node.config().data_dir.join("store").join("objects")
}

/// `store/quarantine` in `node`'s data directory.
pub fn quarantine_dir(node: &FileServer) -> PathBuf {
    node.config().data_dir.join("store").join("quarantine")
}

/// Where `node`'s store keeps `cid` under [`objects_dir`], whether it is
/// there or not: its hex cut into 5-character levels, as many as the
/// store's `LAYOUT` (`cas:5xDEPTH`) says, then the whole hex.
pub fn object_path(node: &FileServer, cid: &Cid) -> PathBuf {
    let layout_file = node.config().data_dir.join("store").join("LAYOUT");
    let layout = std::fs::read_to_string(&layout_file)
        .unwrap_or_else(|e| panic!("{}: {e}", layout_file.display()));
    let depth: usize = layout
        .trim_end()
        .strip_prefix("cas:5x")
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("unexpected layout {layout:?}"));
    let hex = cid.to_hex();
    let mut p = objects_dir(node);
    for level in hex.as_bytes().chunks(5).take(depth) {
        p.push(std::str::from_utf8(level).unwrap());
    }
    p.join(hex)
}

/// Every file under `dir` (recursively) whose name satisfies `pred`.
fn find_files(dir: &Path, pred: &dyn Fn(&str) -> bool, out: &mut Vec<PathBuf>) {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in listing.flatten() {
        let path = entry.path();
        let ty = entry.file_type().unwrap();
        if ty.is_dir() {
            find_files(&path, pred, out);
        } else if ty.is_file() && pred(&entry.file_name().to_string_lossy()) {
            out.push(path);
        }
    }
}

/// Where `node` keeps the object `cid` on disk, if it does: a search of
/// [`objects_dir`], which fails the test if it finds two.
pub fn object_file(node: &FileServer, cid: &Cid) -> Option<PathBuf> {
    let hex = cid.to_hex();
    let mut found = Vec::new();
    find_files(&objects_dir(node), &|f| f == hex, &mut found);
    assert!(found.len() <= 1, "{cid} is stored twice: {found:?}");
    found.pop()
}

/// The chunks and manifest nodes below the root `root` of a chunked file,
/// in tree order, read from `node`'s disk (which must hold the whole tree).
pub fn file_objects(node: &FileServer, root: &Cid) -> Vec<Cid> {
    use nexnet_server::manifest::Node;
    let read = |cid: &Cid| {
        let path = object_file(node, cid).unwrap_or_else(|| panic!("{cid} is not on the node"));
        Node::parse(*cid, &std::fs::read(path).unwrap()).unwrap()
    };
    let mut out = Vec::new();
    let mut stack = vec![read(root)];
    while let Some(n) = stack.pop() {
        for id in n.ids.iter().rev() {
            if n.depth > 0 {
                stack.push(read(id));
            }
        }
        out.extend(n.ids.iter().copied());
    }
    out
}

/// The files `node` moved to quarantine for `cid`.
pub fn quarantined(node: &FileServer, cid: &Cid) -> Vec<PathBuf> {
    let hex = cid.to_hex();
    let mut found = Vec::new();
    find_files(&quarantine_dir(node), &|f| f.starts_with(&hex), &mut found);
    found
}

/// Flips one byte of the object file at `path` (in the ciphertext, past the
/// header) and returns the damaged contents.
pub fn flip_a_byte(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.len() > HEADER_LEN,
        "{} is too short to damage",
        path.display()
    );
    let at = HEADER_LEN + (bytes.len() - HEADER_LEN) / 2;
    bytes[at] ^= 0x5a;
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(path, perms).unwrap();
    std::fs::write(path, &bytes).unwrap();
    bytes
}
