//! What operations tell their callers: a store's receipt, a delete's
//! report, a file's description, a repair pass's findings.

use nexnet_crypto::NameId;
use nexnet_p2p::NodeId;
use nexnet_store::Cid;

use crate::PeerFailure;

/// What a store did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Receipt {
    /// The file's id: its root manifest's content id.
    pub cid: Cid,
    /// Bytes of the root manifest.
    pub object_len: u64,
    /// Bytes of the file.
    pub plain_len: u64,
    /// How many chunks it was cut into.
    pub chunks: u64,
    /// The nodes placement chose to hold its root (and its catalog entry),
    /// best first.
    pub holders: Vec<NodeId>,
    /// The root's holders that committed it (this node too, if it is one);
    /// every chunk reached its write quorum.
    pub committed: Vec<NodeId>,
    /// The holders that did not, and why.
    pub missed: Vec<(NodeId, PeerFailure)>,
}

/// What a delete did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DeleteReport {
    /// The object deleted.
    pub cid: Cid,
    /// The nodes that confirmed the delete (this one included).
    pub confirmed: Vec<NodeId>,
    /// Of those, the ones that had a copy.
    pub removed: Vec<NodeId>,
    /// Members that could not be told now; they drop their copy when they
    /// reconnect.
    pub pending: Vec<(NodeId, PeerFailure)>,
}

/// A file as [`FileServer::list`](crate::FileServer::list) shows it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FileInfo {
    /// The name, if this node holds the key it was stored under.
    pub name: Option<String>,
    /// The name id.
    pub name_id: NameId,
    /// The object.
    pub cid: Cid,
    /// Bytes of the file.
    pub size: u64,
    /// When it was stored (ms since the Unix epoch).
    pub created_ms: u64,
    /// Whether this node holds the object itself.
    pub local: bool,
    /// The nodes placement names to hold it, best first.
    pub holders: Vec<NodeId>,
}

/// What a repair pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepairReport {
    /// Objects looked at.
    pub checked: usize,
    /// Local copies that failed verification and were quarantined.
    pub quarantined: usize,
    /// Objects fetched because this node should hold them and did not.
    pub fetched: usize,
    /// Replicas sent to holders that lacked them (and committed).
    pub pushed: usize,
    /// Problems met (a holder unreachable, a fetch that failed).
    pub problems: usize,
    /// Objects no file names, older than the grace period, removed by the
    /// collector (a full pass only).
    pub collected: usize,
}
