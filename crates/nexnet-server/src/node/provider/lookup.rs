//! `Lookup` (this node's entry for a name, or the delete that ended it),
//! `PutEntry` (record an entry whose name this node holds) and `Has`
//! (whether it holds an object).

use nexnet_crypto::NameId;
use nexnet_p2p::Peer;
use nexnet_store::Cid;

use tracing::debug;

use crate::{
    CatalogEntry,
    catalog::{Put, too_far_ahead},
    node::Node,
    protocol::{Message, Refusal},
};

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

/// Records `entry`, unless a newer one or a tombstone holds its name.
pub(super) async fn put_entry(node: &Node, entry: CatalogEntry) -> Message {
    if entry.check().is_err() || too_far_ahead(entry.created_ms) {
        return Message::Refused(Refusal::BadEntry);
    }
    node.clock.observe(entry.created_ms);
    let name = entry.name_id();
    match node.catalog.put(entry).await {
        Ok(Put::Added | Put::Replaced(_) | Put::Unchanged) => Message::Committed,
        Ok(Put::Deleted) => Message::Refused(Refusal::Deleted),
        Ok(Put::Superseded) => match node.catalog.get(&name) {
            Some(newer) => Message::Superseded(newer),
            None => Message::Refused(Refusal::Deleted),
        },
        Err(e) => {
            debug!(error = %e, "could not record an entry");
            Message::Refused(Refusal::Storage)
        }
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
