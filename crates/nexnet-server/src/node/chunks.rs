//! Chunks and manifest nodes as a node moves them: small objects whose cid
//! and length are known before they travel, read and sent whole (a chunk is
//! at most 16 MiB, a manifest node 320 KiB), verified before use.
//!
//! The requester side puts a chunk on its holders ([`Node::put_chunk`]) and
//! gets one from wherever a verified copy is ([`Node::get_chunk`]); the
//! provider side's answers are in `provider::chunk`.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, future::join_all, stream::FuturesUnordered};
use nexnet_p2p::{NodeId, Peer};
use nexnet_store::{Cid, Durability, ObjectStore, StoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, warn};

use super::{Node, is_corruption};
use crate::{
    PeerFailure, Result, ServerError,
    manifest::{self, LoadNode},
    placement,
    protocol::Message,
    transfer::{self, Failure, Short},
};

/// Fetches of one chunk running at once: the first and one hedge.
const MAX_HEDGED: usize = 2;

/// Reads object `cid` of `len` bytes (with `exact` false, at most: a
/// manifest node) from `store` whole, and hashes it: `None` if it is not
/// there, has another length, or failed verification (it is then
/// quarantined).
pub(crate) async fn read_verified(
    store: &ObjectStore,
    cid: &Cid,
    len: u64,
    exact: bool,
) -> Result<Option<Bytes>> {
    let mut reader = match store.read(cid).await {
        Ok(r) => r,
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if exact && reader.len() != len {
        // Another length than the manifest says: damaged (a truncated
        // copy, say), which the store's own check quarantines.
        drop(reader);
        if let Err(e) = store.verify(cid).await
            && is_corruption(&e)
        {
            warn!(%cid, "local chunk of the wrong length; quarantined");
        }
        return Ok(None);
    }
    if reader.len() > len {
        // Longer than it can be: not this chunk (or a whole object of the
        // first format asked for as a manifest). A fetched copy replaces a
        // visibly damaged one.
        return Ok(None);
    }
    let mut buf = BytesMut::with_capacity(reader.len() as usize);
    reader
        .read_buf_exact(&mut buf)
        .await
        .map_err(|e| ServerError::io("read chunk", cid.to_hex(), e))?;
    if Cid::of(&buf) == *cid {
        return Ok(Some(buf.freeze()));
    }
    // The store quarantines what fails its own verification.
    match store.verify(cid).await {
        Err(e) if is_corruption(&e) => warn!(%cid, "local chunk failed verification; quarantined"),
        _ => warn!(%cid, "local chunk changed while read"),
    }
    Ok(None)
}

trait ReadExact {
    async fn read_buf_exact(&mut self, buf: &mut BytesMut) -> std::io::Result<()>;
}

impl<R: tokio::io::AsyncRead + Unpin> ReadExact for R {
    async fn read_buf_exact(&mut self, buf: &mut BytesMut) -> std::io::Result<()> {
        while buf.len() < buf.capacity() {
            if self.read_buf(buf).await? == 0 {
                break;
            }
        }
        Ok(())
    }
}

/// What a node does to load manifest nodes: from wherever a verified copy
/// is, like a chunk.
pub(crate) struct Manifests<'a>(pub &'a Node);

impl LoadNode for Manifests<'_> {
    async fn load(&self, cid: Cid) -> Result<manifest::Node> {
        let bytes = self.0.get_chunk(cid, manifest::MAX_NODE_LEN, false).await?;
        manifest::Node::parse(cid, &bytes)
    }
}

/// A reader's place in the line for one chunk's fetch; the last one out
/// (even one stopped half-way) removes the line.
struct Gate<'a> {
    node: &'a Node,
    cid: Cid,
    lock: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl Drop for Gate<'_> {
    fn drop(&mut self) {
        let mut fetching = self.node.fetching.lock();
        // Dropped under the map's lock, so that two gates leaving at once
        // cannot both see the other's reference.
        drop(self.lock.take());
        if fetching
            .get(&self.cid)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            fetching.remove(&self.cid);
        }
    }
}

/// Loads manifest nodes from what this node has, its store or its read
/// cache, never fetching (for what must not fetch: an evict, a delete).
pub(crate) struct LocalManifests<'a>(pub &'a Node);

impl LoadNode for LocalManifests<'_> {
    async fn load(&self, cid: Cid) -> Result<manifest::Node> {
        let max = manifest::MAX_NODE_LEN;
        let bytes = match read_verified(&self.0.store, &cid, max, false).await? {
            Some(bytes) => Some(bytes),
            None => self.0.cache.get(&cid, max, false).await,
        };
        match bytes {
            Some(bytes) => manifest::Node::parse(cid, &bytes),
            None => Err(ServerError::Store(StoreError::NotFound { cid })),
        }
    }
}

impl Node {
    /// Puts chunk `cid` on its holders (this node, if it is one, and the
    /// others at once). Returns the holders, those that committed, and
    /// those that did not with why.
    pub(crate) async fn put_chunk(
        self: &Arc<Self>,
        cid: Cid,
        bytes: Bytes,
    ) -> Result<(Vec<NodeId>, Vec<NodeId>, Vec<Failure>)> {
        let holders = placement::holders(&cid, self.all_nodes(), self.config.replication);
        let (mut committed, mut failures) = (Vec::new(), Vec::new());
        let remote: Vec<NodeId> = holders.iter().copied().filter(|h| *h != self.id).collect();
        let local = async {
            if holders.contains(&self.id) {
                Some(
                    self.store
                        .write_bytes_hashed(cid, bytes.clone(), Durability::Deferred)
                        .await,
                )
            } else {
                None
            }
        };
        let sends = join_all(remote.iter().map(|h| {
            let bytes = bytes.clone();
            async move {
                let Some(peer) = self.members.peer(h) else {
                    return (*h, Err(PeerFailure::NotConnected));
                };
                (*h, self.send_chunk(&peer, cid, bytes).await)
            }
        }));
        let (local, sent) = tokio::join!(local, sends);
        if let Some(local) = local {
            local?;
            committed.push(self.id);
            self.cache.remove(&cid).await;
        }
        for (node, answer) in sent {
            match answer {
                Ok(()) => committed.push(node),
                Err(why) => failures.push((node, why)),
            }
        }
        Ok((holders, committed, failures))
    }

    /// Sends chunk `cid` to `peer` and has it committed there.
    pub(crate) async fn send_chunk(
        &self,
        peer: &Peer<Message>,
        cid: Cid,
        bytes: Bytes,
    ) -> std::result::Result<(), PeerFailure> {
        let stall = self.config.stall_timeout;
        let transfer = self.next_transfer();
        let opening = Message::Chunk {
            transfer,
            cid: *cid.as_bytes(),
            len: bytes.len() as u64,
        };
        let sent = async {
            let mut stream = peer.open_stream(opening).await?;
            stream.write_chunk(bytes).await?;
            stream.shutdown().await?;
            Ok::<_, PeerFailure>(())
        };
        tokio::time::timeout(stall, sent)
            .await
            .map_err(|_| PeerFailure::Stalled(stall))??;
        let commit = Message::StoreChunk {
            transfer,
            cid: *cid.as_bytes(),
        };
        match peer.request(commit, stall).await? {
            Message::Committed => Ok(()),
            Message::Refused(why) => Err(PeerFailure::Refused(why)),
            other => Err(PeerFailure::Unexpected(other.kind())),
        }
    }

    /// Chunk (or manifest node) `cid`, verified: this node's copy, its
    /// cache's, or one fetched from the holders and then any other member.
    /// `len` is its exact length, or with `exact` false the most it may be.
    /// A holder that has not delivered within the hedge delay is raced by
    /// the next; one that fails or sends a bad copy is passed over for this
    /// chunk only. What a non-holder fetched
    /// goes into its cache.
    pub(crate) async fn get_chunk(&self, cid: Cid, len: u64, exact: bool) -> Result<Bytes> {
        if let Some(bytes) = read_verified(&self.store, &cid, len, exact).await? {
            return Ok(bytes);
        }
        if let Some(bytes) = self.cached(cid, len, exact).await {
            return Ok(bytes);
        }
        // One fetch per chunk at a time: readers of the same chunk (two gets
        // of one file, a retried get while the first one's fetches finish)
        // wait for it and take the copy it kept.
        let lock = self.fetching.lock().entry(cid).or_default().clone();
        let _gate = Gate {
            node: self,
            cid,
            lock: Some(lock.clone()),
        };
        // Released before the gate is dropped (locals drop in reverse).
        let _turn = lock.lock_owned().await;
        self.get_chunk_once(cid, len, exact).await
    }

    async fn get_chunk_once(&self, cid: Cid, len: u64, exact: bool) -> Result<Bytes> {
        if let Some(bytes) = read_verified(&self.store, &cid, len, exact).await? {
            return Ok(bytes);
        }
        if let Some(bytes) = self.cached(cid, len, exact).await {
            return Ok(bytes);
        }
        let nodes = self.all_nodes();
        let holders = placement::holders(&cid, nodes.clone(), self.config.replication);
        let mut order = placement::holders(&cid, nodes, usize::MAX);
        order.retain(|n| *n != self.id);
        let mut peers = order.iter().filter_map(|n| self.members.peer(n));
        let mut attempts: Vec<Failure> = Vec::new();
        // Hedged: the next node is asked when the last one asked has not
        // delivered within the hedge delay (with at most `MAX_HEDGED`
        // fetches running, so that a loaded mesh is not asked for every
        // late chunk over and over), or has failed; every fetch asked goes
        // on until one delivers, and the rest are then dropped.
        let mut running = FuturesUnordered::new();
        let fetch = |peer: Peer<Message>| async move {
            let got = self.fetch_chunk(&peer, cid, len, exact).await;
            (peer.node_id(), got)
        };
        loop {
            if running.is_empty() {
                match peers.next() {
                    Some(peer) => running.push(fetch(peer)),
                    None => break,
                }
            }
            let hedge = tokio::time::sleep(self.config.hedge_delay);
            let (node, got) = tokio::select! {
                Some(done) = running.next() => done,
                () = hedge, if running.len() < MAX_HEDGED => {
                    if let Some(peer) = peers.next() {
                        running.push(fetch(peer));
                    }
                    continue;
                }
            };
            match got {
                Ok(bytes) => {
                    drop(running);
                    self.keep_fetched(cid, &holders, bytes.clone()).await;
                    return Ok(bytes);
                }
                Err(why) => {
                    debug!(%cid, from = ?node, %why, "chunk fetch failed; trying the next node");
                    attempts.push((node, why));
                    if let Some(peer) = peers.next() {
                        running.push(fetch(peer));
                    }
                }
            }
        }
        Err(ServerError::Unavailable { cid, attempts })
    }

    /// The cache's copy of `cid`, moved into the store if this node holds
    /// it by placement now (the members changed since it was cached).
    async fn cached(&self, cid: Cid, len: u64, exact: bool) -> Option<Bytes> {
        let bytes = self.cache.get(&cid, len, exact).await?;
        let holders = placement::holders(&cid, self.all_nodes(), self.config.replication);
        if holders.contains(&self.id) {
            // At once: no store's `Sync` follows a read.
            match self
                .store
                .write_bytes_hashed(cid, bytes.clone(), Durability::Now)
                .await
            {
                Ok(_) => self.cache.remove(&cid).await,
                Err(e) => debug!(%cid, error = %e, "could not keep a cached chunk"),
            }
        }
        Some(bytes)
    }

    /// Keeps a fetched chunk: in the store if it is ours by placement (a
    /// copy lost here), else in the cache.
    async fn keep_fetched(&self, cid: Cid, holders: &[NodeId], bytes: Bytes) {
        if holders.contains(&self.id) {
            // Deferred: its fsync starts at once in the background instead
            // of holding up the read (an fsync per chunk in line held a
            // whole GET to the disk's fsync rate). A copy a crash takes
            // before that fsync is found short or bad when read or
            // repaired, and fetched again; no one was promised it
            // (docs/DESIGN.md, "Copies kept by a read").
            if let Err(e) = self
                .store
                .write_bytes_hashed(cid, bytes, Durability::Deferred)
                .await
            {
                debug!(%cid, error = %e, "could not keep a fetched chunk");
            }
        } else {
            self.cache.put(cid, bytes).await;
        }
        // Counted once kept: a read stopped before that fetches it again.
        self.chunk_fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Asks `peer` for `cid` and reads it whole, verified: an answer within
    /// the request time-out, then the whole chunk within the stall
    /// time-out (a peer that trickles is left like one that stalls).
    async fn fetch_chunk(
        &self,
        peer: &Peer<Message>,
        cid: Cid,
        len: u64,
        exact: bool,
    ) -> std::result::Result<Bytes, PeerFailure> {
        let accept = |n: u64| n == len || (!exact && n <= len);
        let (n, mut stream) = self
            .ask_to_send(peer, cid, self.config.request_timeout, accept, len)
            .await?;
        // Bounded by the length checked above.
        let buf = transfer::read_whole(&mut stream, n, self.config.stall_timeout)
            .await
            .map_err(|short| match short {
                Short::Length(got) => PeerFailure::WrongLength {
                    offered: got,
                    expected: n,
                },
                Short::Stalled(d) => PeerFailure::Stalled(d),
                Short::Broken(e) => e.into(),
            })?;
        if Cid::of(&buf) != cid {
            // Its copy is bad: tell it, so it moves it aside.
            let _ = peer
                .send(Message::Corrupt {
                    cid: *cid.as_bytes(),
                })
                .await;
            return Err(PeerFailure::BadCopy);
        }
        Ok(buf)
    }
}
