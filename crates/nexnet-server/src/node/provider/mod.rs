//! The provider side: what this node answers its peers. One file per
//! request, and [`answer`] the short match that hands each to its file.

use std::sync::Arc;

use nexnet_crypto::NameId;
use nexnet_p2p::Peer;
use nexnet_store::Cid;

use super::{Node, membership};
use crate::protocol::{Message, Refusal};

pub(super) mod chunk;
pub(super) mod commit;
pub(super) mod delete;
pub(super) mod lookup;
pub(super) mod serve;

/// Answers one request from `peer`.
pub(super) async fn answer(node: &Arc<Node>, peer: &Peer<Message>, request: Message) -> Message {
    match request {
        Message::Members(heard) => membership::exchange(node, &heard),
        Message::Commit { transfer, entry } => commit::commit(node, peer, transfer, entry).await,
        Message::Lookup { name } => lookup::lookup(node, NameId::from_bytes(name)),
        Message::PutEntry(entry) => lookup::put_entry(node, entry).await,
        Message::Has { cid } => lookup::has(node, peer, Cid::from_bytes(cid)).await,
        Message::Fetch { cid, transfer } => {
            serve::fetch(node, peer, Cid::from_bytes(cid), transfer).await
        }
        Message::Delete { cid, tombstone } => {
            delete::delete(node, Cid::from_bytes(cid), tombstone).await
        }
        Message::StoreChunk { transfer, cid } => {
            chunk::store(node, peer, transfer, Cid::from_bytes(cid)).await
        }
        Message::HasMany(cids) => chunk::has_many(node, cids).await,
        Message::DeleteChunks {
            root,
            tombstone,
            cids,
        } => chunk::delete(node, Cid::from_bytes(root), tombstone, cids).await,
        Message::Referenced(cids) => node.answer_referenced(cids).await,
        Message::Sync => chunk::sync(node).await,
        _ => Message::Refused(Refusal::NotARequest),
    }
}
