//! A node: the state its tasks share, and the two sides of its protocol.
//!
//! - [`start`]: opening the data directory, binding the transport, spawning
//!   the tasks.
//! - [`events`]: the transport's events, dispatched to the sides below.
//! - [`provider`]: what this node answers its peers (commit a replica,
//!   serve an object, lookups, deletes and tombstones).
//! - [`requester`]: what it asks of them on behalf of its users (store,
//!   get, fetch, find a name, delete).
//! - [`membership`]: greeting peers, exchanging member lists, redialing.
//! - [`repair`]: bringing every object back to R verified copies.
//! - [`sweep`]: the start-up removal of objects of deleted files.
//! - [`collect`]: the removal of objects no file names anywhere.
//! - [`chunks`] and [`cache`]: chunks put, got and kept for reads.
//!
//! Everything here works on [`Node`], and this file imports none of its
//! submodules: `start` reaches `events`, `membership`, `repair` and
//! `sweep`; `events` reaches `provider` and `membership`; `provider`
//! reaches `membership` (a member exchange is a request). The requester
//! side adds methods to [`Node`] that `repair` calls too (a repair fetches
//! and replaces like a user's request does).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use nexnet_crypto::DataKey;
use nexnet_p2p::{NodeId, Peer, RecvStream, TcpTransport, Transport};
use nexnet_store::{Cid, ObjectStore, ObjectWriter, StoreError};
use tokio::sync::{Notify, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{Instrument, info, warn};

use crate::{
    PeerFailure, Result, ServerConfig,
    budget::Budget,
    catalog::{Catalog, Tombstone},
    members::Members,
    protocol::Message,
    transfer::Rendezvous,
};

mod cache;
mod chunks;
mod collect;
mod events;
mod membership;
mod provider;
mod repair;
mod requester;
mod start;
mod sweep;

pub(crate) use chunks::{LocalManifests, Manifests};

/// Where a transfer's stream meets the request about it: (sender, transfer id).
pub(crate) type TransferKey = (NodeId, u64);

/// Everything a node's tasks share.
pub(crate) struct Node {
    pub config: ServerConfig,
    pub id: NodeId,
    pub key: DataKey,
    pub store: ObjectStore,
    pub catalog: Catalog,
    pub transport: TcpTransport<Message>,
    pub members: Members,
    /// Replicas received, waiting for the request that commits them.
    pub replicas: Rendezvous<TransferKey, std::result::Result<ObjectWriter, PeerFailure>>,
    /// Chunks received, waiting for the request that asks how it went.
    pub chunk_puts: Rendezvous<TransferKey, std::result::Result<(), crate::Refusal>>,
    /// Fetches waiting for the stream that carries their object.
    pub fetches: Rendezvous<TransferKey, RecvStream>,
    next_transfer: AtomicU64,
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
    /// Wakes the repair task early (a peer connected).
    pub repair_soon: Notify,
    /// How many members are connected now.
    pub connected: watch::Sender<usize>,
    /// Bounds on what peers make this node do.
    pub budget: Arc<Budget>,
    /// Chunks read here that this node does not hold by placement.
    pub cache: cache::Cache,
    /// Objects that stores running here have put and not yet named with a
    /// committed root: the collector leaves them alone whatever their age.
    pub storing: parking_lot::Mutex<std::collections::HashSet<Cid>>,
    /// Chunks being fetched now, each behind its own gate.
    pub fetching: parking_lot::Mutex<std::collections::HashMap<Cid, Arc<tokio::sync::Mutex<()>>>>,
    /// Chunks and manifest nodes fetched from peers, ever.
    pub chunk_fetches: AtomicU64,
    /// Bytes of objects streamed to peers (`Stats::served_bytes`).
    pub served_bytes: AtomicU64,
    /// What this node's files consist of, for the collector's questions.
    pub referenced: collect::Referenced,
    /// Where versions of names come from.
    pub clock: crate::catalog::Clock,
}

impl Node {
    pub(crate) fn next_transfer(&self) -> u64 {
        self.next_transfer.fetch_add(1, Ordering::Relaxed)
    }

    /// The address peers dial.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.config.advertise.unwrap_or(self.transport.local_addr())
    }

    /// This node and every member it knows.
    pub(crate) fn all_nodes(&self) -> Vec<NodeId> {
        let mut all = self.members.ids();
        all.push(self.id);
        all
    }

    /// Drops `cid` here: tombstone first, so nothing brings it back, then
    /// the catalog entries naming it, then the object. Returns whether a
    /// copy was here.
    pub(crate) async fn apply_delete(&self, cid: Cid, tombstone: Tombstone) -> Result<bool> {
        self.keep_tombstone(cid, tombstone).await?;
        let had = self.drop_local_tree(cid).await?;
        Ok(self.store.delete(&cid).await? || had)
    }

    /// Keeps `tombstone` in the catalog, and drops here the objects of the
    /// other versions of the name it ended (versions the deleting node did
    /// not know of: each is named by no file any more).
    pub(crate) async fn keep_tombstone(&self, cid: Cid, mut tombstone: Tombstone) -> Result<()> {
        // Its horizon runs from when this node learnt of it, not from a
        // time another clock wrote (one far behind would have it collected
        // at once, one far ahead never).
        tombstone.deleted_ms = crate::catalog::now_ms();
        if let Some(v) = tombstone.name_version {
            if crate::catalog::too_far_ahead(v) {
                // Kept for its object only: as a version of the name, it
                // would end every store for as long as its clock is ahead.
                warn!(%cid, version = v, "a tombstone's version is more than an hour ahead of this node's clock; it ends its object only");
                tombstone.name_version = None;
            } else {
                self.clock.observe(v);
            }
        }
        for ended in self.catalog.tombstone(cid, tombstone).await? {
            let old = ended.cid();
            if self.catalog.references(&old) {
                continue;
            }
            info!(%old, name_id = %ended.name_id(), "a delete ended a version of the name held here");
            self.drop_local_tree(old).await?;
            self.store.delete(&old).await?;
        }
        Ok(())
    }

    /// Drops the chunks and manifest nodes below `root` that are here, in
    /// the store and the read cache, as far as the manifest here (or in
    /// the cache) tells; nothing is fetched to be dropped. A node that
    /// holds chunks of the file but not its root learns of them from the
    /// deleting node, or leaves them to the collector. The root itself
    /// leaves the cache; the caller drops it from the store.
    pub(crate) async fn drop_local_tree(&self, root: Cid) -> Result<bool> {
        use crate::manifest::{LoadNode, Walk};
        let local = LocalManifests(self);
        let mut had = false;
        if let Ok(node) = local.load(root).await
            && node.root.is_some()
        {
            let mut ids = Walk::new(root, node)?.ids();
            while let Ok(Some(id)) = ids.next(&local).await {
                had |= self.store.delete(&id.cid()).await?;
                self.cache.remove(&id.cid()).await;
            }
        }
        self.cache.remove(&root).await;
        Ok(had)
    }

    /// Sends `peer` the tombstone of `cid`: it still acts on a deleted
    /// object (it missed the delete, or the delete request failed).
    pub(crate) fn tell_deleted(&self, peer: &Peer<Message>, cid: Cid) {
        let Some(t) = self.catalog.tombstone_of(&cid) else {
            return;
        };
        let peer = peer.clone();
        self.spawn(async move {
            let _ = peer
                .send(Message::Tombstones(vec![(*cid.as_bytes(), t)]))
                .await;
        });
    }

    /// Runs `work` on a task of the node's, in the caller's span: it
    /// finishes before the node shuts down, and no caller waits on it.
    pub(crate) fn spawn<F>(&self, work: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tasks.spawn(work.in_current_span())
    }

    /// Stops the node: no new work, connections closed, every task
    /// finished (the data directory is released with the last reference).
    pub(crate) async fn stop(&self) {
        self.shutdown.cancel();
        self.transport.close().await;
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Whether a store error means the local copy is bad (and was moved aside).
pub(crate) fn is_corruption(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Corrupt { .. } | StoreError::HashMismatch { .. }
    )
}
