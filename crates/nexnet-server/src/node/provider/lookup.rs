//! `Lookup` (this node's entry for a name, or the delete that ended it)
//! and `Has` (whether it holds an object).

use nexnet_crypto::NameId;
use nexnet_p2p::Peer;
use nexnet_store::Cid;

use crate::{node::Node, protocol::Message};

/// Our entry for `name`; if a delete ended it, that delete's tombstone,
/// so that the asker goes past its version and drops what it ended.
pub(super) fn lookup(node: &Node, name: NameId) -> Message {
    if let Some(entry) = node.catalog.get(&name)
        && !node.catalog.is_dead(&entry)
    {
        return Message::Entry(Some(entry));
    }
    match node.catalog.death_of(&name) {
        Some((cid, t)) => Message::Tombstones(vec![(*cid.as_bytes(), t)]),
        None => Message::Entry(None),
    }
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
