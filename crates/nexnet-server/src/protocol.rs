//! What nodes say to each other: the payloads of the transport's messages,
//! requests and stream openings.
//!
//! Public but hidden from the docs: tests, load generators and fuzz targets
//! speak the real protocol instead of a copy of it. It is not a stable API.
//!
//! Ids travel as raw bytes: a `[u8; 20]` cid or `[u8; 16]` name id cannot
//! be malformed, only unknown. Variants are encoded by position (postcard),
//! so new ones go last and none is ever removed or reordered.

use std::{fmt, net::SocketAddr};

use serde::{Deserialize, Serialize};

use crate::catalog::{CatalogEntry, Tombstone};

/// How many members or tombstones one message carries at most (a message
/// must fit the transport's maximum payload, 1 MiB by default).
pub const MAX_LIST: usize = 1024;

/// One node as another knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAddr {
    /// Its node id.
    pub node: [u8; 32],
    /// Where it accepts peers.
    pub addr: SocketAddr,
}

/// Every payload of the nexnet protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Request: the members I know; the response carries the other's.
    Members(Vec<MemberAddr>),
    /// Stream: an object to keep, committed by a later [`Message::Commit`].
    Replicate {
        /// Names the transfer for the `Commit` that follows.
        transfer: u64,
    },
    /// Request: commit the object of transfer `transfer` if its bytes hash
    /// to `entry`'s cid, and record the entry.
    Commit {
        /// The transfer whose stream carried the object.
        transfer: u64,
        /// The catalog entry to record.
        entry: CatalogEntry,
    },
    /// Response to `Commit`.
    Committed,
    /// Response of nodes of the first protocol release: a refusal as text.
    /// Still understood (shown as it is, never interpreted); never sent.
    /// Nodes now answer [`Message::Refused`].
    Failed(String),
    /// Request: your catalog entry for this name id, if any.
    Lookup {
        /// The name id.
        name: [u8; 16],
    },
    /// Response to `Lookup`.
    Entry(Option<CatalogEntry>),
    /// Request: send me this object on a stream opened with
    /// [`Message::Object`] and this transfer id.
    Fetch {
        /// The object.
        cid: [u8; 20],
        /// Names the stream that will carry it.
        transfer: u64,
    },
    /// Response to `Fetch`: the stream follows with this many bytes.
    Sending {
        /// The object's length.
        len: u64,
    },
    /// Response to `Fetch`: I do not have it.
    Missing,
    /// Stream: the object a `Fetch` asked for.
    Object {
        /// The transfer id of the `Fetch`.
        transfer: u64,
    },
    /// Request: do you hold this object?
    Has {
        /// The object.
        cid: [u8; 20],
    },
    /// Response to `Has`.
    Have(bool),
    /// Request: delete this object (stored under this name id).
    Delete {
        /// The object.
        cid: [u8; 20],
        /// The tombstone to keep.
        tombstone: Tombstone,
    },
    /// Response to `Delete`: whether a copy was there.
    Deleted {
        /// Whether a copy was there.
        had: bool,
    },
    /// Message: objects deleted, for a node that may have missed it.
    Tombstones(Vec<([u8; 20], Tombstone)>),
    /// Message: the copy you sent me of this object failed verification.
    Corrupt {
        /// The object.
        cid: [u8; 20],
    },
    /// Response to `Commit`: a newer store holds the entry's name (this
    /// entry), so the object was not kept.
    Superseded(CatalogEntry),
    /// Response: the request could not be carried out, and why.
    Refused(Refusal),
}

impl Message {
    /// The variant's name, for logs and errors (never the payload: entries
    /// carry sealed names, tombstone lists can be long).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Members(_) => "Members",
            Self::Replicate { .. } => "Replicate",
            Self::Commit { .. } => "Commit",
            Self::Committed => "Committed",
            Self::Failed(_) => "Failed",
            Self::Lookup { .. } => "Lookup",
            Self::Entry(_) => "Entry",
            Self::Fetch { .. } => "Fetch",
            Self::Sending { .. } => "Sending",
            Self::Missing => "Missing",
            Self::Object { .. } => "Object",
            Self::Has { .. } => "Has",
            Self::Have(_) => "Have",
            Self::Delete { .. } => "Delete",
            Self::Deleted { .. } => "Deleted",
            Self::Tombstones(_) => "Tombstones",
            Self::Corrupt { .. } => "Corrupt",
            Self::Superseded(_) => "Superseded",
            Self::Refused(_) => "Refused",
        }
    }
}

/// Why a node refused a request: a code on the wire, so that the asker can
/// act on it (and a newer node can add codes an older one shows as
/// [`Refusal::Unknown`] instead of failing to decode the answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "WireRefusal", into = "WireRefusal")]
#[non_exhaustive]
pub enum Refusal {
    /// The replica's stream never came, broke, or did not end in time.
    NoStream,
    /// The object was deleted (a tombstone names it here).
    Deleted,
    /// The replica's length is not the entry's.
    WrongLength {
        /// Bytes received.
        received: u64,
        /// Bytes the entry says.
        expected: u64,
    },
    /// The replica's bytes do not hash to the entry's cid.
    WrongHash,
    /// The entry fails its own checks (lengths, ids).
    BadEntry,
    /// A newer store holds the name (sent when the newer entry itself could
    /// not be, normally [`Message::Superseded`] carries it).
    Superseded,
    /// The refusing node's disk is full.
    DiskFull,
    /// The refusing node's storage failed otherwise (its log says how).
    Storage,
    /// The refusing node is shutting down.
    ShuttingDown,
    /// The message is not a request this node answers.
    NotARequest,
    /// A code this version does not know (from a newer node).
    Unknown(u16),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoStream => f.write_str("the object stream never came or did not end"),
            Self::Deleted => f.write_str("the object was deleted"),
            Self::WrongLength { received, expected } => {
                write!(f, "received {received} bytes, the entry says {expected}")
            }
            Self::WrongHash => f.write_str("the bytes do not hash to the content id"),
            Self::BadEntry => f.write_str("the catalog entry is malformed"),
            Self::Superseded => f.write_str("superseded by a newer store of this name"),
            Self::DiskFull => f.write_str("the receiver's disk is full"),
            Self::Storage => f.write_str("the receiver's storage failed"),
            Self::ShuttingDown => f.write_str("the node is shutting down"),
            Self::NotARequest => f.write_str("not a request"),
            Self::Unknown(code) => write!(f, "refused (code {code}, from a newer node)"),
        }
    }
}

/// A refusal as it travels: a code and two numbers (only `WrongLength`
/// uses them), so that unknown codes still decode.
#[derive(Clone, Copy, Serialize, Deserialize)]
struct WireRefusal(u16, u64, u64);

impl From<Refusal> for WireRefusal {
    fn from(r: Refusal) -> Self {
        let code = match r {
            Refusal::NoStream => 1,
            Refusal::Deleted => 2,
            Refusal::WrongLength { received, expected } => return Self(3, received, expected),
            Refusal::WrongHash => 4,
            Refusal::BadEntry => 5,
            Refusal::Superseded => 6,
            Refusal::DiskFull => 7,
            Refusal::Storage => 8,
            Refusal::ShuttingDown => 9,
            Refusal::NotARequest => 10,
            Refusal::Unknown(code) => code,
        };
        Self(code, 0, 0)
    }
}

impl From<WireRefusal> for Refusal {
    fn from(WireRefusal(code, a, b): WireRefusal) -> Self {
        match code {
            1 => Self::NoStream,
            2 => Self::Deleted,
            3 => Self::WrongLength {
                received: a,
                expected: b,
            },
            4 => Self::WrongHash,
            5 => Self::BadEntry,
            6 => Self::Superseded,
            7 => Self::DiskFull,
            8 => Self::Storage,
            9 => Self::ShuttingDown,
            10 => Self::NotARequest,
            other => Self::Unknown(other),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_refusal_survives_the_wire_and_unknown_codes_decode() {
        let all = [
            Refusal::NoStream,
            Refusal::Deleted,
            Refusal::WrongLength {
                received: 7,
                expected: u64::MAX,
            },
            Refusal::WrongHash,
            Refusal::BadEntry,
            Refusal::Superseded,
            Refusal::DiskFull,
            Refusal::Storage,
            Refusal::ShuttingDown,
            Refusal::NotARequest,
            Refusal::Unknown(999),
        ];
        for r in all {
            let bytes = postcard::to_stdvec(&Message::Refused(r)).unwrap();
            match postcard::from_bytes::<Message>(&bytes).unwrap() {
                Message::Refused(back) => assert_eq!(back, r),
                other => panic!("decoded as {}", other.kind()),
            }
        }
        let future = postcard::to_stdvec(&WireRefusal(40_000, 1, 2)).unwrap();
        assert_eq!(
            postcard::from_bytes::<Refusal>(&future).unwrap(),
            Refusal::Unknown(40_000)
        );
    }

    #[test]
    fn old_variants_keep_their_wire_numbers() {
        // A node of the first release sends `Failed` as variant 4 and
        // `Superseded` as 17: both must still decode as such.
        let failed = postcard::to_stdvec(&Message::Failed("x".into())).unwrap();
        assert_eq!(failed[0], 4);
        let refused = postcard::to_stdvec(&Message::Refused(Refusal::Deleted)).unwrap();
        assert_eq!(refused[0], 18);
    }
}
