//! Fetching an object this node lacks: from the holders placement names,
//! then every other member, keeping the first copy that verifies. A holder
//! whose copy fails is told (it quarantines it); one that stalls is left.

use nexnet_p2p::{Peer, RecvStream};
use nexnet_store::Cid;
use tracing::{debug, info};

use crate::{
    CatalogEntry, PeerFailure, Result, ServerError,
    node::{Node, is_corruption},
    placement,
    protocol::Message,
    transfer::{self, Failure},
};

impl Node {
    /// Fetches `entry`'s object into the local store, verified.
    pub(crate) async fn fetch(&self, entry: &CatalogEntry) -> Result<()> {
        let cid = entry.cid();
        let mut order = placement::holders(&cid, self.all_nodes(), usize::MAX);
        order.retain(|n| *n != self.id);
        let mut attempts: Vec<Failure> = Vec::new();
        for node in order {
            let Some(peer) = self.members.peer(&node) else {
                continue;
            };
            match self.fetch_from(&peer, entry).await {
                Ok(()) => {
                    info!(%cid, from = ?node, "fetched");
                    return Ok(());
                }
                Err(why) => {
                    debug!(%cid, from = ?node, %why, "fetch failed; trying the next node");
                    attempts.push((node, why));
                }
            }
        }
        Err(ServerError::Unavailable { cid, attempts })
    }

    async fn fetch_from(
        &self,
        peer: &Peer<Message>,
        entry: &CatalogEntry,
    ) -> std::result::Result<(), PeerFailure> {
        let cid = entry.cid();
        let expected = entry.object_len;
        let (_, stream) = self
            .ask_to_send(
                peer,
                cid,
                self.config.request_timeout,
                |n| n == expected,
                expected,
            )
            .await?;
        let stall = self.config.stall_timeout;
        let writer = transfer::receive(&self.store, stream, Some(entry.object_len), stall).await?;
        match writer.commit_expecting(cid).await {
            Ok(_) if self.catalog.is_deleted(&cid) => {
                // Deleted while it travelled: the tombstone wins.
                let _ = self.store.delete(&cid).await;
                Err(PeerFailure::Deleted)
            }
            Ok(_) => Ok(()),
            Err(e) if is_corruption(&e) => {
                // Its copy is bad: tell it, so it moves it aside.
                let _ = peer
                    .send(Message::Corrupt {
                        cid: *cid.as_bytes(),
                    })
                    .await;
                Err(PeerFailure::BadCopy)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Asks `peer` to send `cid` (`Fetch`), waiting `start` for its answer,
    /// and returns the length it offered, if `accept` takes it (else a
    /// wrong length against `expected`), and the stream that carries it.
    /// The wait for the stream ends when the peer's connection does.
    pub(crate) async fn ask_to_send(
        &self,
        peer: &Peer<Message>,
        cid: Cid,
        start: std::time::Duration,
        accept: impl Fn(u64) -> bool,
        expected: u64,
    ) -> std::result::Result<(u64, RecvStream), PeerFailure> {
        let transfer = self.next_transfer();
        // Before asking: the stream may come before the answer.
        let mut stream = self.fetches.awaiting((peer.node_id(), transfer));
        let ask = Message::Fetch {
            cid: *cid.as_bytes(),
            transfer,
        };
        let len = match peer.request(ask, start).await? {
            Message::Sending { len } if accept(len) => len,
            Message::Sending { len } => {
                return Err(PeerFailure::WrongLength {
                    offered: len,
                    expected,
                });
            }
            Message::Missing => return Err(PeerFailure::Missing),
            Message::Refused(why) => return Err(PeerFailure::Refused(why)),
            other => return Err(PeerFailure::Unexpected(other.kind())),
        };
        // It answered, then must open the stream: a peer killed in between
        // is noticed with its connection, not after the stall time-out.
        tokio::select! {
            got = stream.arrival(self.config.stall_timeout) => {
                got.map(|s| (len, s)).ok_or(PeerFailure::NoStream)
            }
            () = peer.closed() => Err(PeerFailure::Disconnected),
        }
    }
}
