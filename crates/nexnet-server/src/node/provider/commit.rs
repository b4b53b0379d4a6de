//! Replication, provider side: a `Replicate` stream is written into an
//! uncommitted object, and the `Commit` request that follows (they meet in
//! [`Node::replicas`], whichever comes first) commits it if its bytes hash
//! to the entry's cid, and records the entry.

use std::sync::Arc;

use nexnet_p2p::{Peer, RecvStream};
use nexnet_store::ObjectWriter;
use tracing::{Instrument, debug, info_span, warn};

use crate::{
    CatalogEntry, PeerFailure, ServerError,
    catalog::{Layout, Put},
    node::{Node, TransferKey, is_corruption},
    protocol::{Message, Refusal},
    transfer,
};

/// Receives a replica stream on a task; the `Commit` takes the result.
pub(in crate::node) fn receive_replica(
    node: &Arc<Node>,
    peer: &Peer<Message>,
    transfer: u64,
    stream: RecvStream,
) {
    let key = (peer.node_id(), transfer);
    let result = node.replicas.producer(key);
    let n = node.clone();
    let span = info_span!("replica", from = ?peer.node_id(), transfer);
    node.tasks.spawn(
        async move {
            let stall = n.config.stall_timeout;
            let received = transfer::receive(&n.store, stream, None, stall).await;
            if let Err(why) = &received {
                debug!(%why, "replica stream failed");
            }
            let _ = result.send(received);
            // The commit request normally takes it at once; if it never
            // comes, do not keep the temp file.
            tokio::select! {
                () = tokio::time::sleep(stall) => {}
                () = n.shutdown.cancelled() => {}
            }
            n.replicas.forget(&key);
        }
        .instrument(span),
    );
}

/// Answers a `Commit`: `Committed`, `Superseded` with the newer entry, or
/// a refusal (and the tombstone, if the object was deleted).
pub(super) async fn commit(
    node: &Node,
    peer: &Peer<Message>,
    transfer: u64,
    entry: CatalogEntry,
) -> Message {
    let (cid, name) = (entry.cid(), entry.name_id());
    let refusal = match commit_replica(node, (peer.node_id(), transfer), entry).await {
        Ok(()) => return Message::Committed,
        Err(refusal) => refusal,
    };
    if node.catalog.is_deleted(&cid) {
        node.tell_deleted(peer, cid);
    }
    match node.catalog.get(&name) {
        Some(newer) if refusal == Refusal::Superseded => Message::Superseded(newer),
        _ => Message::Refused(refusal),
    }
}

/// Commits the replica that arrived on transfer `key` if its bytes hash to
/// `entry`'s cid, and records the entry.
async fn commit_replica(node: &Node, key: TransferKey, entry: CatalogEntry) -> Result<(), Refusal> {
    entry.check().map_err(|_| Refusal::BadEntry)?;
    if crate::catalog::too_far_ahead(entry.created_ms) {
        warn!(cid = %entry.cid(), version = entry.created_ms, "a peer's version is more than an hour ahead of this node's clock; refused");
        return Err(Refusal::BadEntry);
    }
    node.clock.observe(entry.created_ms);
    let writer = take_replica(node, key).await?;
    let cid = entry.cid();
    if node.catalog.is_deleted(&cid) {
        return Err(Refusal::Deleted);
    }
    if writer.len() != entry.object_len {
        return Err(Refusal::WrongLength {
            received: writer.len(),
            expected: entry.object_len,
        });
    }
    writer
        .commit_expecting(cid)
        .await
        .map_err(|e| refusal_for(&e.into()))?;
    let put = node.catalog.put(entry).await.map_err(|e| refusal_for(&e))?;
    if matches!(put, Put::Deleted) || node.catalog.is_deleted(&cid) {
        // The tombstone arrived while we committed: it wins.
        let _ = node.store.delete(&cid).await;
        return Err(Refusal::Deleted);
    }
    match put {
        // The name moved to a new object: the old one is dead here (its
        // originator also deletes it everywhere, with a tombstone).
        // A chunked one stays until its delete, which reads its manifest
        // first to find its chunks.
        Put::Replaced(old)
            if old.cid() != cid
                && old.layout == Layout::Whole
                && !node.catalog.references(&old.cid()) =>
        {
            let _ = node.store.delete(&old.cid()).await;
        }
        // A newer store holds the name: nothing will read this object, and
        // the answer (`Superseded`) tells the sender.
        Put::Superseded => {
            if !node.catalog.references(&cid) {
                let _ = node.store.delete(&cid).await;
            }
            return Err(Refusal::Superseded);
        }
        _ => {}
    }
    debug!(%cid, "replica committed");
    Ok(())
}

/// The replica that arrived (or arrives within the stall time-out) on
/// transfer `key`, written and not yet committed.
async fn take_replica(node: &Node, key: TransferKey) -> Result<ObjectWriter, Refusal> {
    let waiting = node.replicas.consumer(key);
    let received = tokio::time::timeout(node.config.stall_timeout, waiting).await;
    node.replicas.forget(&key);
    match received {
        Ok(Ok(Ok(writer))) => Ok(writer),
        // Keeping the bytes failed here (the disk, say); else the stream did.
        Ok(Ok(Err(PeerFailure::Local(e)))) => Err(refusal_for(&e)),
        Ok(Ok(Err(_))) => Err(Refusal::NoStream),
        Err(_) | Ok(Err(_)) => Err(Refusal::NoStream),
    }
}

/// What to tell the sender when keeping its replica failed here.
pub(super) fn refusal_for(e: &ServerError) -> Refusal {
    match e {
        e if e.is_disk_full() => Refusal::DiskFull,
        ServerError::Store(s) if is_corruption(s) => Refusal::WrongHash,
        _ => Refusal::Storage,
    }
}
