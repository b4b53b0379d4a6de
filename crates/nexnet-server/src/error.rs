//! The one error type of this crate.

use std::{io, path::PathBuf, sync::Arc, time::Duration};

use nexnet_crypto::CryptoError;
use nexnet_p2p::{NodeId, P2pError};
use nexnet_store::{Cid, StoreError};

use crate::protocol::Refusal;

/// What can go wrong in a node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// No node that could be asked has the file.
    #[error("file {name:?} not found")]
    NotFound {
        /// The name asked for.
        name: String,
    },

    /// The file is known, but no holder could deliver a verified copy.
    #[error("{cid}: no verified copy could be fetched ({})", describe(.attempts))]
    Unavailable {
        /// The object.
        cid: Cid,
        /// Every node asked, and why it did not deliver.
        attempts: Vec<(NodeId, PeerFailure)>,
    },

    /// Fewer nodes committed a store than the write quorum asks.
    #[error("{cid}: {} of {needed} required commits ({})", .committed.len(), describe(.failures))]
    Quorum {
        /// The object that was stored.
        cid: Cid,
        /// The write quorum.
        needed: usize,
        /// The nodes that committed it (it is readable from them).
        committed: Vec<NodeId>,
        /// The holders that did not, and why.
        failures: Vec<(NodeId, PeerFailure)>,
    },

    /// A store reached fewer nodes than its write quorum asks: what it
    /// wrote was removed again, and the name is as it was.
    #[error("{name:?} was not stored: {} of {needed} required commits ({}); the name is unchanged", .committed.len(), describe(.failures))]
    NotStored {
        /// The file's name.
        name: String,
        /// The object the store made (removed again).
        cid: Cid,
        /// The write quorum it missed.
        needed: usize,
        /// The nodes that had committed it.
        committed: Vec<NodeId>,
        /// The nodes that did not, and why.
        failures: Vec<(NodeId, PeerFailure)>,
    },

    /// Fewer of a name's holders answered than a read needs: the newest
    /// version could be on the others, so no answer is given (HTTP 503,
    /// not 404).
    #[error(
        "{name:?}: {answered} of the {needed} holders a read needs answered; try again when more nodes are reachable"
    )]
    NoReadQuorum {
        /// The name asked for.
        name: String,
        /// The read quorum.
        needed: usize,
        /// How many answered.
        answered: usize,
    },

    /// Nodes that took chunks of a store could not make them durable (the
    /// file is committed, but may have fewer copies than acknowledged after
    /// a crash of those nodes).
    #[error("chunks stored on {} node(s) may not be durable ({})", .failures.len(), describe(.failures))]
    NotDurable {
        /// The nodes whose `Sync` failed, and why.
        failures: Vec<(NodeId, PeerFailure)>,
    },

    /// A range that starts past the end of the file.
    #[error("range starts at byte {offset}, the file has {file_len}")]
    RangeNotSatisfiable {
        /// Where the range starts.
        offset: u64,
        /// The file's size.
        file_len: u64,
    },

    /// A manifest node that does not parse, or does not fit its tree.
    #[error("manifest {cid}: {reason}")]
    Manifest {
        /// The node.
        cid: Cid,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A file name that cannot be used.
    #[error("invalid name: {reason}")]
    InvalidName {
        /// Why.
        reason: &'static str,
    },

    /// `init` on a directory that already holds a node.
    #[error("{} already holds a node (its node.id exists); refusing to overwrite it", path.display())]
    AlreadyInitialized {
        /// The data directory.
        path: PathBuf,
    },

    /// A configuration that cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A catalog file is unreadable or damaged.
    #[error("catalog {path}: {reason}")]
    Catalog {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A file-system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Reading the caller's source failed.
    #[error("reading the source: {0}")]
    Source(#[source] io::Error),

    /// Keys, headers, decryption; `KeyMismatch` when the file was stored
    /// under another data key.
    #[error(transparent)]
    Crypto(#[from] CryptoError),

    /// The object store.
    #[error(transparent)]
    Store(#[from] StoreError),

    /// The transport.
    #[error(transparent)]
    P2p(#[from] P2pError),

    /// The node is shutting down.
    #[error("the node is shutting down")]
    Shutdown,

    /// A store failed because this node's disk is full (or its quota is
    /// used up); what it had written is removed. The source says which
    /// operation on which path failed.
    #[error("node {node}: disk full")]
    DiskFull {
        /// The node whose disk is full.
        node: NodeId,
        /// What failed.
        #[source]
        source: Box<ServerError>,
    },
}

/// This crate's result type.
pub type Result<T, E = ServerError> = std::result::Result<T, E>;

impl ServerError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Whether this error comes from a full disk or an exhausted quota
    /// (an I/O error of kind `StorageFull` or `QuotaExceeded` anywhere in
    /// its chain). Errors reading the caller's source never count.
    pub fn is_disk_full(&self) -> bool {
        if matches!(self, Self::Source(_)) {
            return false;
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<io::Error>()
                && matches!(
                    io.kind(),
                    io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
                )
            {
                return true;
            }
            cause = e.source();
        }
        false
    }

    /// Whether this is the data key refusing an object encrypted under
    /// another key.
    pub fn is_key_mismatch(&self) -> bool {
        matches!(self, Self::Crypto(CryptoError::KeyMismatch { .. }))
    }
}

/// Why one peer did not do what a store, fetch, delete or repair asked of
/// it. Carried by [`ServerError`] (and the reports) per node; the crate's
/// one error type stays [`ServerError`].
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerFailure {
    /// No connection to it was open.
    #[error("not connected")]
    NotConnected,
    /// It refused, and said why.
    #[error("{0}")]
    Refused(Refusal),
    /// It holds a newer store of the name.
    #[error("superseded by a newer store of this name")]
    Superseded,
    /// It does not have the object.
    #[error("does not have it")]
    Missing,
    /// It offered or sent another length than the entry's.
    #[error("offers {offered} bytes, the entry says {expected}")]
    WrongLength {
        /// What it offered or sent (at least).
        offered: u64,
        /// What the entry says.
        expected: u64,
    },
    /// Its bytes do not hash to the content id (it was told).
    #[error("its copy failed verification")]
    BadCopy,
    /// The object was deleted while it travelled: the tombstone wins.
    #[error("deleted while it travelled")]
    Deleted,
    /// It sent nothing for this long.
    #[error("stalled for {0:?}")]
    Stalled(Duration),
    /// The stream it should have opened never came, or broke.
    #[error("the object stream never came or was lost")]
    NoStream,
    /// It answered with a message that does not answer the request.
    #[error("unexpected answer {0}")]
    Unexpected(&'static str),
    /// The connection closed while we waited for it.
    #[error("the connection closed")]
    Disconnected,
    /// The connection failed.
    #[error(transparent)]
    Transport(Arc<P2pError>),
    /// The stream carrying the object failed (a reset says why).
    #[error(transparent)]
    Stream(Arc<io::Error>),
    /// Storing what it sent failed here.
    #[error("here: {0}")]
    Local(Arc<ServerError>),
}

impl From<P2pError> for PeerFailure {
    fn from(e: P2pError) -> Self {
        Self::Transport(Arc::new(e))
    }
}

impl From<io::Error> for PeerFailure {
    fn from(e: io::Error) -> Self {
        Self::Stream(Arc::new(e))
    }
}

impl From<ServerError> for PeerFailure {
    fn from(e: ServerError) -> Self {
        Self::Local(Arc::new(e))
    }
}

impl From<StoreError> for PeerFailure {
    fn from(e: StoreError) -> Self {
        Self::Local(Arc::new(e.into()))
    }
}

fn describe(list: &[(NodeId, PeerFailure)]) -> String {
    if list.is_empty() {
        return "no holder was reachable".into();
    }
    list.iter()
        .map(|(node, why)| format!("{node:?}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}
