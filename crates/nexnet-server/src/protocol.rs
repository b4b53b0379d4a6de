//! What nodes say to each other: the payloads of the transport's messages,
//! requests and stream openings.
//!
//! Ids travel as raw bytes: a `[u8; 20]` cid or `[u8; 16]` name id cannot
//! be malformed, only unknown.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::catalog::{CatalogEntry, Tombstone};

/// How many members or tombstones one message carries at most (a message
/// must fit the transport's maximum payload, 1 MiB by default).
pub(crate) const MAX_LIST: usize = 1024;

/// One node as another knows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct MemberAddr {
    pub node: [u8; 32],
    pub addr: SocketAddr,
}

/// Every payload of the nexnet protocol.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Message {
    /// Request: the members I know; the response carries the other's.
    Members(Vec<MemberAddr>),
    /// Stream: an object to keep, committed by a later [`Message::Commit`].
    Replicate { transfer: u64 },
    /// Request: commit the object of transfer `transfer` if its bytes hash
    /// to `entry`'s cid, and record the entry.
    Commit { transfer: u64, entry: CatalogEntry },
    /// Response to `Commit`.
    Committed,
    /// Response: the request could not be carried out, and why.
    Failed(String),
    /// Request: your catalog entry for this name id, if any.
    Lookup { name: [u8; 16] },
    /// Response to `Lookup`.
    Entry(Option<CatalogEntry>),
    /// Request: send me this object on a stream opened with
    /// [`Message::Object`] and this transfer id.
    Fetch { cid: [u8; 20], transfer: u64 },
    /// Response to `Fetch`: the stream follows with this many bytes.
    Sending { len: u64 },
    /// Response to `Fetch`: I do not have it.
    Missing,
    /// Stream: the object a `Fetch` asked for.
    Object { transfer: u64 },
    /// Request: do you hold this object?
    Has { cid: [u8; 20] },
    /// Response to `Has`.
    Have(bool),
    /// Request: delete this object (stored under this name id).
    Delete { cid: [u8; 20], tombstone: Tombstone },
    /// Response to `Delete`: whether a copy was there.
    Deleted { had: bool },
    /// Message: objects deleted, for a node that may have missed it.
    Tombstones(Vec<([u8; 20], Tombstone)>),
    /// Message: the copy you sent me of this object failed verification.
    Corrupt { cid: [u8; 20] },
    /// Response to `Commit`: a newer store holds the entry's name (this
    /// entry), so the object was not kept. Last, so that the variants
    /// before it keep their wire numbers.
    Superseded(CatalogEntry),
}
