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
    /// Response: the request could not be carried out, and why. It travels
    /// where the first release put its refusal text, as a string, so that
    /// nodes of either release read each other (see [`Refusal`]).
    Refused(Refusal),
    /// Request: your catalog entry for this name id, if any.
    Lookup {
        /// The name id.
        name: [u8; 16],
    },
    /// Response to `Lookup`: the entry, if it is live. A node whose entry
    /// for the name a delete ended answers `Tombstones` with that delete's
    /// tombstone instead.
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
    /// Stream: a chunk or manifest node to keep, committed by a later
    /// [`Message::StoreChunk`]. Its id and length are known before it
    /// travels, so the receiver bounds and verifies as it writes.
    Chunk {
        /// Names the transfer for the `StoreChunk` that follows.
        transfer: u64,
        /// The chunk's cid.
        cid: [u8; 20],
        /// Its length.
        len: u64,
    },
    /// Request: commit the chunk of transfer `transfer`; answered with
    /// [`Message::Committed`] or a refusal.
    StoreChunk {
        /// The transfer whose stream carried it.
        transfer: u64,
        /// The chunk's cid.
        cid: [u8; 20],
    },
    /// Request: which of these objects do you hold? At most [`MAX_LIST`].
    HasMany(Vec<[u8; 20]>),
    /// Response to `HasMany`: bit `i` (least significant first in byte
    /// `i / 8`) says whether the `i`-th is held.
    HaveMany(Vec<u8>),
    /// Request: the file whose root is `root` is deleted (keep its
    /// tombstone) and these of its chunks and manifest nodes go. At most
    /// [`MAX_LIST`]. Answered with [`Message::Deleted`].
    DeleteChunks {
        /// The deleted file's root manifest.
        root: [u8; 20],
        /// The file's tombstone.
        tombstone: Tombstone,
        /// Its chunks and nodes this node holds by placement.
        cids: Vec<[u8; 20]>,
    },
    /// Request: which of these objects do the files in your catalog
    /// consist of? At most [`MAX_LIST`]; answered with
    /// [`Message::HaveMany`] (all set when it cannot tell).
    Referenced(Vec<[u8; 20]>),
    /// Request: make every chunk you committed so far durable (chunks are
    /// committed without their own fsyncs); answered with
    /// [`Message::Synced`] or a refusal. A store sends it to every node
    /// that took one of its chunks before it commits the root.
    Sync,
    /// Response to `Sync`.
    Synced,
    /// Request: record this catalog entry, whose name this node holds by
    /// placement (its root travels to the root's holders, placed by its
    /// cid). Answered with [`Message::Committed`],
    /// [`Message::Superseded`] with the newer entry that holds the name,
    /// or a refusal (`Deleted`: a tombstone ends it here).
    PutEntry(CatalogEntry),
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
            Self::Refused(_) => "Refused",
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
            Self::Chunk { .. } => "Chunk",
            Self::StoreChunk { .. } => "StoreChunk",
            Self::HasMany(_) => "HasMany",
            Self::HaveMany(_) => "HaveMany",
            Self::DeleteChunks { .. } => "DeleteChunks",
            Self::Referenced(_) => "Referenced",
            Self::Sync => "Sync",
            Self::Synced => "Synced",
            Self::PutEntry(_) => "PutEntry",
        }
    }
}

/// Why a node refused a request, typed so that the asker can act on it.
///
/// On the wire it is a string, where the first release sent its refusal
/// text: the reason in words, then a trailer with its code and numbers,
/// `the receiver's disk is full [refusal 7 0 0]`. A node of the first
/// release shows the string as it always did; this release reads the
/// trailer, and takes a string without one (or with a code it does not
/// know, from a newer node) as [`Refusal::Other`], shown as it came and
/// never interpreted.
#[derive(Clone, Debug, PartialEq, Eq)]
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

    /// A refusal this release cannot read: a newer node's code, or the
    /// words of a node of the first release.
    Other {
        /// The code, if the refusal had a trailer.
        code: Option<u16>,
        /// What it said.
        text: String,
    },
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
            Self::Other { text, .. } => f.write_str(text),
        }
    }
}

/// What opens the trailer of a refusal on the wire.
const TRAILER: &str = " [refusal ";

impl Refusal {
    /// Its code and numbers, `None` for [`Refusal::Other`].
    fn code(&self) -> Option<(u16, u64, u64)> {
        Some(match self {
            Self::NoStream => (1, 0, 0),
            Self::Deleted => (2, 0, 0),
            Self::WrongLength { received, expected } => (3, *received, *expected),
            Self::WrongHash => (4, 0, 0),
            Self::BadEntry => (5, 0, 0),
            Self::Superseded => (6, 0, 0),
            Self::DiskFull => (7, 0, 0),
            Self::Storage => (8, 0, 0),
            Self::ShuttingDown => (9, 0, 0),
            Self::NotARequest => (10, 0, 0),
            Self::Other { .. } => return None,
        })
    }

    fn from_code(code: u16, a: u64, b: u64, text: &str) -> Self {
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
            other => Self::Other {
                code: Some(other),
                text: text.to_owned(),
            },
        }
    }

    /// The string it travels as.
    fn to_wire(&self) -> String {
        match self.code() {
            Some((code, a, b)) => format!("{self}{TRAILER}{code} {a} {b}]"),
            None => self.to_string(),
        }
    }

    /// Reads a refusal's string: the trailer if it has one, else words.
    fn from_wire(wire: String) -> Self {
        let parsed = wire
            .strip_suffix(']')
            .and_then(|w| w.rsplit_once(TRAILER))
            .and_then(|(text, trailer)| {
                let mut n = trailer.split(' ');
                let code = n.next()?.parse().ok()?;
                let (a, b) = (n.next()?.parse().ok()?, n.next()?.parse().ok()?);
                n.next()
                    .is_none()
                    .then(|| Self::from_code(code, a, b, text))
            });
        parsed.unwrap_or(Self::Other {
            code: None,
            text: wire,
        })
    }
}

impl Serialize for Refusal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_wire())
    }
}

impl<'de> Deserialize<'de> for Refusal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::from_wire)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The first release's `Message::Failed(String)`: same position.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum FirstRelease {
        Members(Vec<MemberAddr>),
        Replicate { transfer: u64 },
        Commit { transfer: u64, entry: CatalogEntry },
        Committed,
        Failed(String),
    }

    fn typed() -> Vec<Refusal> {
        vec![
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
        ]
    }

    #[test]
    fn every_refusal_survives_the_wire() {
        for r in typed() {
            let bytes = postcard::to_stdvec(&Message::Refused(r.clone())).unwrap();
            assert_eq!(
                postcard::from_bytes::<Message>(&bytes).unwrap(),
                Message::Refused(r)
            );
        }
    }

    #[test]
    fn a_first_release_node_reads_a_refusal_as_its_text() {
        for r in typed() {
            let bytes = postcard::to_stdvec(&Message::Refused(r.clone())).unwrap();
            match postcard::from_bytes::<FirstRelease>(&bytes).unwrap() {
                FirstRelease::Failed(text) => {
                    assert!(text.starts_with(&r.to_string()), "{text}");
                }
                other => panic!("read as {other:?}"),
            }
        }
    }

    #[test]
    fn words_and_unknown_codes_are_other_refusals_shown_as_they_came() {
        let old = postcard::to_stdvec(&FirstRelease::Failed("no room [here]".into())).unwrap();
        assert_eq!(
            postcard::from_bytes::<Message>(&old).unwrap(),
            Message::Refused(Refusal::Other {
                code: None,
                text: "no room [here]".into()
            })
        );
        let newer = Refusal::from_wire("a new reason [refusal 400 1 2]".into());
        assert_eq!(
            newer,
            Refusal::Other {
                code: Some(400),
                text: "a new reason".into()
            }
        );
        assert_eq!(newer.to_string(), "a new reason");
        for odd in [
            "x [refusal 3 1]",
            "x [refusal 3 1 2 3]",
            "x [refusal a 0 0]",
            "[refusal 1 0 0]",
        ] {
            assert!(
                matches!(
                    Refusal::from_wire(odd.into()),
                    Refusal::Other { code: None, .. }
                ),
                "{odd}"
            );
        }
    }
}
