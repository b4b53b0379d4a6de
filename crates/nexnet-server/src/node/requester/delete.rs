//! Deleting: a tombstone here first, then every member told. A member
//! that cannot be told now learns it when it reconnects, or when it next
//! asks about the object. A chunked file's manifest is read before its
//! root goes, and its chunks and nodes are then dropped on their holders,
//! in batches.

use std::{collections::HashMap, sync::Arc};

use nexnet_crypto::name_id;
use nexnet_p2p::NodeId;
use nexnet_store::Cid;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::{
    CatalogEntry, DeleteReport, PeerFailure, Result, ServerError,
    catalog::{Layout, Tombstone},
    check_name,
    manifest::Walk,
    node::{Manifests, Node},
    placement,
    protocol::{MAX_LIST, Message},
};

impl Node {
    /// Deletes `name` everywhere (see [`FileServer::delete`](crate::FileServer::delete)).
    pub(crate) async fn delete_file(self: &Arc<Self>, name: &str) -> Result<DeleteReport> {
        check_name(name)?;
        let name_id = name_id(name);
        // What a read would see (a read quorum of the name's holders: "not
        // found" only when they say so, 503 when too few answer), and past
        // every version any member knows, so that versions this node
        // missed die too, whatever their object.
        let read = self.find_entry(name_id, name).await?;
        let found = self.find_name(name_id).await;
        let entry = [read, found.entry]
            .into_iter()
            .flatten()
            .filter(|e| !self.catalog.is_dead(e))
            .reduce(|a, b| if b.is_newer_than(&a) { b } else { a })
            .ok_or_else(|| ServerError::NotFound { name: name.into() })?;
        let version = self.clock.next(found.latest);
        self.delete_file_everywhere(&entry, Tombstone::new(name_id, version))
            .instrument(info_span!("delete", %name_id))
            .await
    }

    /// Deletes `entry`'s file everywhere: its root (or object) with a
    /// tombstone, then its chunks and manifest nodes.
    pub(crate) async fn delete_file_everywhere(
        self: &Arc<Self>,
        entry: &CatalogEntry,
        tombstone: Tombstone,
    ) -> Result<DeleteReport> {
        let cid = entry.cid();
        let walk = match entry.layout {
            Layout::Whole => None,
            Layout::Chunked => match self.open_manifest(entry).await {
                Ok(walk) => Some(walk),
                Err(e) => {
                    warn!(%cid, error = %e, "the manifest of a deleted file cannot be read: its chunks stay where they are");
                    None
                }
            },
        };
        if let Some(walk) = walk {
            // Chunks first, while every manifest node is still there to be
            // read; each batch carries the tombstone.
            self.keep_tombstone(cid, tombstone).await?;
            self.delete_chunks(cid, tombstone, &walk).await;
        }
        self.delete_everywhere(cid, tombstone).await
    }

    /// Drops every chunk and node `walk` names on its holders, a batch per
    /// holder at a time, each with the file's tombstone.
    async fn delete_chunks(&self, root: Cid, tombstone: Tombstone, walk: &Walk) {
        let mut batches: HashMap<NodeId, Vec<[u8; 20]>> = HashMap::new();
        let all = self.all_nodes();
        let mut ids = walk.ids();
        let (mut removed, mut failed) = (0usize, 0usize);
        loop {
            let id = match ids.next(&Manifests(self)).await {
                Ok(Some(id)) => id.cid(),
                Ok(None) => break,
                Err(e) => {
                    warn!(%root, error = %e, "a manifest node of a deleted file cannot be read: chunks below it stay");
                    break;
                }
            };
            self.cache.remove(&id).await;
            for h in placement::holders(&id, all.clone(), self.config.replication) {
                if h == self.id {
                    match self.store.delete(&id).await {
                        Ok(had) => removed += usize::from(had),
                        Err(_) => failed += 1,
                    }
                    continue;
                }
                let batch = batches.entry(h).or_default();
                batch.push(*id.as_bytes());
                if batch.len() == MAX_LIST {
                    let cids = std::mem::take(batch);
                    failed += self.send_chunk_deletes(h, root, tombstone, cids).await;
                }
            }
        }
        for (h, cids) in batches {
            if !cids.is_empty() {
                failed += self.send_chunk_deletes(h, root, tombstone, cids).await;
            }
        }
        debug!(%root, removed, failed, "dropped a deleted file's chunks");
    }

    /// Asks `holder` to drop `cids`; returns how many it could not be told.
    async fn send_chunk_deletes(
        &self,
        holder: NodeId,
        root: Cid,
        tombstone: Tombstone,
        cids: Vec<[u8; 20]>,
    ) -> usize {
        let n = cids.len();
        let Some(peer) = self.members.peer(&holder) else {
            return n;
        };
        let ask = Message::DeleteChunks {
            root: *root.as_bytes(),
            tombstone,
            cids,
        };
        match peer.request(ask, self.config.request_timeout).await {
            Ok(Message::Deleted { .. }) => 0,
            _ => n,
        }
    }

    /// A name now points at a new object: the old one goes everywhere.
    pub(crate) async fn replace_old(self: &Arc<Self>, old: CatalogEntry) {
        let cid = old.cid();
        if self.catalog.references(&cid) {
            return;
        }
        if let Err(e) = self
            .delete_file_everywhere(&old, Tombstone::new(old.name_id(), old.created_ms))
            .await
        {
            warn!(%cid, error = %e, "could not remove a replaced object");
        }
    }

    async fn delete_everywhere(
        self: &Arc<Self>,
        cid: Cid,
        tombstone: Tombstone,
    ) -> Result<DeleteReport> {
        let had = self.apply_delete(cid, tombstone).await?;
        let mut report = DeleteReport {
            cid,
            confirmed: vec![self.id],
            removed: if had { vec![self.id] } else { Vec::new() },
            pending: Vec::new(),
        };
        let peers = self.members.peers();
        for m in self.members.ids() {
            if !peers.iter().any(|p| p.node_id() == m) {
                report.pending.push((m, PeerFailure::NotConnected));
            }
        }
        let timeout = self.config.request_timeout;
        let asked = futures::future::join_all(peers.into_iter().map(|p| async move {
            let delete = Message::Delete {
                cid: *cid.as_bytes(),
                tombstone,
            };
            (p.node_id(), p.request(delete, timeout).await)
        }))
        .await;
        for (node, answer) in asked {
            match answer {
                Ok(Message::Deleted { had }) => {
                    report.confirmed.push(node);
                    if had {
                        report.removed.push(node);
                    }
                }
                Ok(Message::Refused(why)) => report.pending.push((node, PeerFailure::Refused(why))),
                Ok(other) => report
                    .pending
                    .push((node, PeerFailure::Unexpected(other.kind()))),
                Err(e) => report.pending.push((node, e.into())),
            }
        }
        // A node that failed to answer may still be connected: it gets the
        // tombstone as a message too (and again whenever it asks about it).
        for (node, _) in &report.pending {
            if let Some(peer) = self.members.peer(node) {
                self.tell_deleted(&peer, cid);
            }
        }
        info!(%cid, confirmed = report.confirmed.len(), removed = report.removed.len(), "deleted");
        Ok(report)
    }
}
