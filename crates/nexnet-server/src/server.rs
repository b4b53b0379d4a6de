//! [`FileServer`]: the public face of a node. Every operation is the
//! node's; this type only gives them their public shape and docs.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use nexnet_crypto::KeyId;
use nexnet_p2p::NodeId;
use nexnet_store::AtomicFile;
use tokio::io::{AsyncRead, AsyncWriteExt};

use crate::{
    DeleteReport, FileInfo, FileReader, MemberInfo, Receipt, RepairReport, Result, ServerConfig,
    ServerError, node::Node,
};

/// A node's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Objects stored here.
    pub objects: u64,
    /// Bytes they take.
    pub bytes: u64,
    /// Files in the catalog.
    pub files: usize,
    /// Members connected now.
    pub peers: usize,
    /// Members known, connected or not.
    pub members: usize,
    /// Bytes in the read cache (chunks of files this node does not hold).
    pub cached_bytes: u64,
    /// Chunks and manifest nodes fetched from peers since start.
    pub chunks_fetched: u64,
    /// Bytes of objects sent to peers that fetched them, since start.
    pub served_bytes: u64,
}

/// A running node: stores, replicates, fetches, verifies and deletes files
/// across its mesh. Cloning is cheap; clones share the node.
#[derive(Clone)]
pub struct FileServer {
    node: Arc<Node>,
}

impl std::fmt::Debug for FileServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileServer")
            .field("node", &self.node.id)
            .field("addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl FileServer {
    /// Opens the node on its data directory (creating its identity, data
    /// key, network secret, store and catalog on first start), starts
    /// listening and joins the mesh through the bootstrap peers.
    pub async fn open(config: ServerConfig) -> Result<Self> {
        Ok(Self {
            node: Node::start(config).await?,
        })
    }

    /// This node's id (kept across restarts).
    pub fn node_id(&self) -> NodeId {
        self.node.id
    }

    /// The address peers dial.
    pub fn local_addr(&self) -> SocketAddr {
        self.node.local_addr()
    }

    /// The fingerprint of the data key.
    pub fn key_id(&self) -> KeyId {
        self.node.key.id()
    }

    /// The node's settings.
    pub fn config(&self) -> &ServerConfig {
        &self.node.config
    }

    /// Stores `source` under `name`, replacing any file of that name.
    ///
    /// One pass over the source: it is encrypted once, hashed once, written
    /// to the local store, and the same chunks go to the other holders. If
    /// placement needs the content id first (more nodes than replicas), the
    /// replicas are sent from the local object once it is committed. Fails
    /// with [`ServerError::Quorum`] if fewer holders than the write quorum
    /// committed (the file is then readable from those that did).
    pub async fn store(&self, name: &str, source: impl AsyncRead + Unpin) -> Result<Receipt> {
        self.node.store_file(name, source).await
    }

    /// Stores the file at `path` under `name`.
    pub async fn store_path(&self, name: &str, path: impl AsRef<Path>) -> Result<Receipt> {
        let path = path.as_ref();
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| ServerError::io("open", path, e))?;
        self.store(name, file).await
    }

    /// Opens `name` for reading. The object is verified against its content
    /// id before a byte is returned: the local copy if it is good (a bad one
    /// is quarantined), otherwise the first copy a peer delivers that
    /// verifies, which is kept here. [`ServerError::NotFound`] if no node
    /// knows the name; a `KeyMismatch` if the file was stored under
    /// another data key. The reader knows the file's size and content id.
    pub async fn get(&self, name: &str) -> Result<FileReader> {
        self.node.get_file(name, |_| None).await
    }

    /// Like [`get`](Self::get), but `range` picks the part to read once the
    /// file's size is known (and before anything is fetched or verified):
    /// `None` for the whole file, or `Some((offset, len))` as in
    /// [`get_range`](Self::get_range). One lookup, where asking
    /// [`info`](Self::info) first would take two: what an HTTP range needs.
    pub async fn get_with(
        &self,
        name: &str,
        range: impl FnOnce(u64) -> Option<(u64, u64)>,
    ) -> Result<FileReader> {
        self.node.get_file(name, range).await
    }

    /// Like [`get`](Self::get), but yields only `len` bytes from byte
    /// `offset` of the file (fewer if the file ends first). Only the range
    /// is decrypted and read, after the whole object was verified. An
    /// `offset` at or past the end of a non-empty file is
    /// [`ServerError::RangeNotSatisfiable`].
    pub async fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<FileReader> {
        self.node.get_file(name, move |_| Some((offset, len))).await
    }

    /// Writes `name` to `path` (through a temp file and a rename, so `path`
    /// is the whole file or untouched). Returns the bytes written.
    pub async fn get_to_path(&self, name: &str, path: impl AsRef<Path>) -> Result<u64> {
        let path = path.as_ref();
        let mut reader = self.get(name).await?;
        let mut out = AtomicFile::beside(path)?;
        let temp = out.temp_path().to_path_buf();
        let handle = out
            .file()
            .try_clone()
            .map_err(|e| ServerError::io("write", &temp, e))?;
        let mut file = tokio::fs::File::from_std(handle);
        let n = tokio::io::copy(&mut reader, &mut file).await.map_err(|e| {
            match nexnet_crypto::CryptoError::from_io(&e) {
                Some(_) => ServerError::Source(e),
                None => ServerError::io("write", &temp, e),
            }
        })?;
        file.flush()
            .await
            .map_err(|e| ServerError::io("write", &temp, e))?;
        drop(file);
        tokio::task::spawn_blocking(move || out.commit())
            .await
            .map_err(|e| ServerError::io("write", &temp, std::io::Error::other(e)))??;
        Ok(n)
    }

    /// Deletes `name` on every node: each drops the object and its catalog
    /// entry, and keeps a tombstone so that a node that was away drops its
    /// copy when it reconnects instead of spreading it again.
    pub async fn delete(&self, name: &str) -> Result<DeleteReport> {
        self.node.delete_file(name).await
    }

    /// Drops this node's copy of `name`'s object but keeps the file in the
    /// catalog: the next [`get`](Self::get) fetches it from the mesh.
    /// Returns whether a copy was here.
    pub async fn evict(&self, name: &str) -> Result<bool> {
        self.node.evict(name).await
    }

    /// Whether this node holds `name`'s object itself.
    pub async fn has(&self, name: &str) -> Result<bool> {
        self.node.has_local(name).await
    }

    /// The files in this node's catalog, by name where the key allows.
    pub async fn list(&self) -> Result<Vec<FileInfo>> {
        self.node.list().await
    }

    /// What is known of `name` (here, or by the members that know it),
    /// without reading it.
    pub async fn info(&self, name: &str) -> Result<FileInfo> {
        self.node.info(name).await
    }

    /// The members of the mesh this node knows.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.node.members.snapshot()
    }

    /// Waits until `n` members are connected, for at most `within`.
    /// Returns whether they are.
    pub async fn wait_for_peers(&self, n: usize, within: Duration) -> bool {
        self.node.wait_for_peers(n, within).await
    }

    /// Objects, bytes, files and peers.
    pub fn stats(&self) -> Stats {
        self.node.stats()
    }

    /// Runs a full repair pass now (verifying every local object) and
    /// reports what it did.
    pub async fn repair(&self) -> RepairReport {
        self.node.repair().await
    }

    /// Stops the node: no new work, connections closed, every task
    /// finished, the data directory released.
    pub async fn shutdown(&self) {
        self.node.stop().await;
    }
}
