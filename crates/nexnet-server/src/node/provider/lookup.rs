//! `Lookup` (this node's entry for a name) and `Has` (whether it holds an
//! object).

use nexnet_crypto::NameId;
use nexnet_p2p::Peer;
use nexnet_store::Cid;

use crate::{node::Node, protocol::Message};

/// Our entry for `name`, unless its object is deleted.
pub(super) fn lookup(node: &Node, name: NameId) -> Message {
    let entry = node
        .catalog
        .get(&name)
        .filter(|e| !node.catalog.is_deleted(&e.cid()));
    Message::Entry(entry)
}

/// Whether we hold `cid`. A peer that asks about a deleted object still
/// holds it (it missed the delete): it is sent the tombstone.
pub(super) async fn has(node: &Node, peer: &Peer<Message>, cid: Cid) -> Message {
    if node.catalog.is_deleted(&cid) {
        node.tell_deleted(peer, cid);
        return Message::Have(false);
    }
    Message::Have(node.store.has(&cid).await.unwrap_or(false))
}
