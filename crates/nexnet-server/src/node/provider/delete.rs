//! `Delete` (drop an object now) and `Tombstones` (deletes a node missed,
//! sent when it connects or when it acts on a deleted object).

use std::sync::Arc;

use nexnet_p2p::Peer;
use nexnet_store::Cid;
use tracing::{info, warn};

use crate::{
    catalog::Tombstone,
    node::Node,
    protocol::{MAX_LIST, Message, Refusal},
};

/// Applies a delete a peer asks for.
pub(super) async fn delete(node: &Node, cid: Cid, tombstone: Tombstone) -> Message {
    match node.apply_delete(cid, tombstone).await {
        Ok(had) => Message::Deleted { had },
        Err(e) => {
            warn!(%cid, error = %e, "could not apply a peer's delete");
            Message::Refused(if e.is_disk_full() {
                Refusal::DiskFull
            } else {
                Refusal::Storage
            })
        }
    }
}

/// Applies the tombstones a peer sent, on a task. A node that misses these
/// learns them again when it asks about the objects (its repair pass), so
/// when too many wait already, dropping them loses nothing.
pub(in crate::node) fn tombstones(
    node: &Arc<Node>,
    peer: &Peer<Message>,
    list: Vec<([u8; 20], Tombstone)>,
) {
    let Some(queued) = node.budget.queue_tombstones(list.len()) else {
        warn!(peer = ?peer.node_id(), n = list.len(), "too many tombstones waiting; dropping these");
        return;
    };
    let n = node.clone();
    node.spawn(async move {
        apply(&n, list).await;
        drop(queued);
    });
}

async fn apply(node: &Node, list: Vec<([u8; 20], Tombstone)>) {
    for (cid, t) in list.into_iter().take(MAX_LIST) {
        let cid = Cid::from_bytes(cid);
        // Known and applied: nothing to do. Known but the object still
        // here (a `DeleteChunks` kept the tombstone of a root this node
        // holds, and the root's own delete never came), or known ending
        // fewer versions of the name (a replace's, and now a delete's):
        // apply it now.
        let known = node.catalog.tombstone_of(&cid);
        if known.is_some_and(|k| k.name_version >= t.name_version)
            && !node.store.has(&cid).await.unwrap_or(true)
        {
            continue;
        }
        match node.apply_delete(cid, t).await {
            Ok(had) => info!(%cid, had, "applied a delete that happened while we were away"),
            Err(e) => warn!(%cid, error = %e, "could not apply a delete"),
        }
    }
}
