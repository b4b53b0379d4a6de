//! `Fetch`: streaming a stored object to a peer that lacks it, and
//! `Corrupt`: that peer's report that the copy we sent failed verification.

use std::sync::Arc;

use bytes::BytesMut;
use nexnet_p2p::Peer;
use nexnet_store::Cid;
use tokio::io::AsyncWriteExt;
use tracing::{debug, warn};

use crate::{
    PeerFailure,
    node::Node,
    protocol::{Message, Refusal},
    transfer,
};

/// Answers a fetch: `Sending` and a stream with the object, or `Missing`.
pub(super) async fn fetch(
    node: &Arc<Node>,
    peer: &Peer<Message>,
    cid: Cid,
    transfer: u64,
) -> Message {
    if node.catalog.is_deleted(&cid) {
        node.tell_deleted(peer, cid);
        return Message::Missing;
    }
    // Waiting for a slot keeps this request unanswered, which the
    // transport bounds: a peer cannot start unlimited sends.
    let Some(slot) = node.budget.serving_slot(peer.node_id()).await else {
        return Message::Refused(Refusal::ShuttingDown);
    };
    let Ok(len) = node.store.len(&cid).await else {
        return Message::Missing;
    };
    node.budget.served(peer.node_id(), cid);
    let (n, peer) = (node.clone(), peer.clone());
    node.spawn(async move {
        if let Err(why) = send(&n, &peer, cid, transfer).await {
            debug!(%cid, %why, "serving an object stopped");
        }
        drop(slot);
    });
    Message::Sending { len }
}

/// Streams the object. The fetcher verifies every byte against the cid,
/// and tells us if our copy is bad (`Corrupt`): no need to hash it twice.
async fn send(
    node: &Node,
    peer: &Peer<Message>,
    cid: Cid,
    transfer: u64,
) -> Result<(), PeerFailure> {
    let stall = node.config.stall_timeout;
    let mut reader = node.store.read(&cid).await?;
    let mut out = peer.open_stream(Message::Object { transfer }).await?;
    let mut buf = BytesMut::new();
    loop {
        let chunk = transfer::read_chunk(&mut reader, &mut buf)
            .await
            .map_err(|e| {
                PeerFailure::from(crate::ServerError::io("read object", cid.to_hex(), e))
            })?;
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len() as u64;
        tokio::time::timeout(stall, out.write_chunk(chunk))
            .await
            .map_err(|_| PeerFailure::Stalled(stall))??;
        node.served_bytes
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    out.shutdown().await.map_err(PeerFailure::from)
}

/// A peer says the copy we sent it is bad: verify ours (which quarantines
/// it if so), but only for an object we did send that peer, once.
pub(in crate::node) fn corrupt(node: &Arc<Node>, peer: &Peer<Message>, cid: [u8; 20]) {
    let cid = Cid::from_bytes(cid);
    if !node.budget.take_served(peer.node_id(), cid) {
        debug!(peer = ?peer.node_id(), %cid, "ignoring a report about an object we did not send it");
        return;
    }
    let n = node.clone();
    node.spawn(async move {
        if let Err(e) = n.store.verify(&cid).await {
            warn!(%cid, error = %e, "a peer reported our copy bad");
        }
    });
}
