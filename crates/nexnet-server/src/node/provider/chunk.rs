//! Chunks, provider side: a `Chunk` stream is written into an uncommitted
//! object and the `StoreChunk` request that follows commits it if its
//! bytes hash to the cid, without an fsync of its own; `Sync` makes what
//! was committed durable; `HasMany` says which of a batch are here;
//! `DeleteChunks` keeps a deleted file's tombstone and drops its chunks.

use std::sync::Arc;

use nexnet_p2p::{Peer, RecvStream, ResetCode};
use nexnet_store::{Cid, Durability};
use tracing::debug;

use super::commit::refusal_for;
use crate::{
    ServerError,
    catalog::Tombstone,
    node::Node,
    protocol::{MAX_LIST, Message, Refusal},
    transfer::{self, Short},
};

/// Receives a `Chunk` stream on a task: whole into memory (within the
/// node's budget for chunk buffers, at most its announced length), then
/// stored in one step if it hashes to its cid. The `StoreChunk` request
/// that follows takes the outcome.
pub(in crate::node) fn receive(
    node: &Arc<Node>,
    peer: &Peer<Message>,
    transfer: u64,
    cid: Cid,
    len: u64,
    mut stream: RecvStream,
) {
    let key = (peer.node_id(), transfer);
    let result = node.chunk_puts.producer(key);
    let (n, peer_id) = (node.clone(), peer.node_id());
    node.spawn(async move {
        let stall = n.config.stall_timeout;
        let stored = async {
            let _room = n
                .budget
                .chunk_buffer(peer_id, len)
                .await
                .ok_or(Refusal::WrongLength {
                    received: len,
                    expected: u64::from(crate::manifest::MAX_CHUNK_SIZE),
                })?;
            let pieces = transfer::read_pieces(&mut stream, len, stall)
                .await
                .map_err(|short| match short {
                    Short::Length(received) => Refusal::WrongLength {
                        received,
                        expected: len,
                    },
                    Short::Stalled(_) | Short::Broken(_) => Refusal::NoStream,
                })?;
            match n
                .store
                .write_pieces_expecting(cid, pieces, Durability::Deferred)
                .await
            {
                Ok(_) => Ok(()),
                Err(e) => {
                    let e = ServerError::from(e);
                    if e.is_disk_full() {
                        stream.reset(ResetCode::StorageFull);
                    }
                    Err(refusal_for(&e))
                }
            }
        }
        .await;
        if let Err(why) = &stored {
            debug!(%cid, %why, "a chunk was not stored");
        }
        let _ = result.send(stored);
        // The request normally takes it at once; if it never comes, do not
        // keep the slot.
        tokio::select! {
            () = tokio::time::sleep(stall) => {}
            () = n.shutdown.cancelled() => {}
        }
        n.chunk_puts.forget(&key);
    });
}

/// Answers a `StoreChunk`: `Committed`, or a refusal.
pub(super) async fn store(node: &Node, peer: &Peer<Message>, transfer: u64, cid: Cid) -> Message {
    let mut waiting = node.chunk_puts.awaiting((peer.node_id(), transfer));
    match waiting.arrival(node.config.stall_timeout).await {
        Some(Ok(())) => {
            // Ours by placement now: the cache's copy, if any, is spare.
            node.cache.remove(&cid).await;
            Message::Committed
        }
        Some(Err(refusal)) => Message::Refused(refusal),
        None => Message::Refused(Refusal::NoStream),
    }
}

/// Answers `Sync`: every chunk committed here so far made durable.
pub(super) async fn sync(node: &Node) -> Message {
    match node.store.sync().await {
        Ok(()) => Message::Synced,
        Err(e) => {
            let e = ServerError::from(e);
            debug!(error = %e, "could not make chunks durable");
            Message::Refused(refusal_for(&e))
        }
    }
}

/// Answers `HasMany` with a bitmap.
pub(super) async fn has_many(node: &Node, cids: Vec<[u8; 20]>) -> Message {
    let mut bits = vec![0u8; cids.len().min(MAX_LIST).div_ceil(8)];
    for (i, cid) in cids.into_iter().take(MAX_LIST).enumerate() {
        if node.store.has(&Cid::from_bytes(cid)).await.unwrap_or(false) {
            bits[i / 8] |= 1 << (i % 8);
        }
    }
    Message::HaveMany(bits)
}

/// Answers `DeleteChunks`: the tombstone kept first, so that nothing
/// brings the file back, then the chunks dropped.
pub(super) async fn delete(
    node: &Node,
    root: Cid,
    tombstone: Tombstone,
    cids: Vec<[u8; 20]>,
) -> Message {
    if let Err(e) = node.keep_tombstone(root, tombstone).await {
        debug!(%root, error = %e, "could not keep a tombstone");
        return Message::Refused(Refusal::Storage);
    }
    let mut had = false;
    for cid in cids.into_iter().take(MAX_LIST) {
        let cid = Cid::from_bytes(cid);
        match node.store.delete(&cid).await {
            Ok(h) => had |= h,
            Err(e) => {
                debug!(%cid, error = %e, "could not remove a deleted chunk");
                return Message::Refused(Refusal::Storage);
            }
        }
        node.cache.remove(&cid).await;
    }
    Message::Deleted { had }
}
