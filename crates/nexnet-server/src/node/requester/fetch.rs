//! Fetching an object this node lacks: from the holders placement names,
//! then every other member, keeping the first copy that verifies. A holder
//! whose copy fails is told (it quarantines it); one that stalls is left.

use nexnet_p2p::{Peer, RecvStream};
use nexnet_store::Cid;
use tokio::sync::oneshot;
use tracing::{debug, info};

use crate::{
    CatalogEntry, PeerFailure, Result, ServerError,
    node::{Node, TransferKey, is_corruption},
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
    pub(crate) async fn ask_to_send(
        &self,
        peer: &Peer<Message>,
        cid: Cid,
        start: std::time::Duration,
        accept: impl Fn(u64) -> bool,
        expected: u64,
    ) -> std::result::Result<(u64, RecvStream), PeerFailure> {
        let transfer = self.next_transfer();
        let key = (peer.node_id(), transfer);
        let stream = self.fetches.consumer(key);
        let ask = Message::Fetch {
            cid: *cid.as_bytes(),
            transfer,
        };
        let offered = match peer.request(ask, start).await {
            Ok(Message::Sending { len }) if accept(len) => Ok(len),
            Ok(Message::Sending { len }) => Err(PeerFailure::WrongLength {
                offered: len,
                expected,
            }),
            Ok(Message::Missing) => Err(PeerFailure::Missing),
            Ok(Message::Refused(why)) => Err(PeerFailure::Refused(why)),
            Ok(other) => Err(PeerFailure::Unexpected(other.kind())),
            Err(e) => Err(e.into()),
        };
        match offered {
            Ok(len) => Ok((len, self.await_stream(key, stream).await?)),
            Err(why) => {
                self.fetches.forget(&key);
                Err(why)
            }
        }
    }

    /// Waits for a fetch's stream, registered under `key` before asking.
    async fn await_stream(
        &self,
        key: TransferKey,
        rx: oneshot::Receiver<RecvStream>,
    ) -> std::result::Result<RecvStream, PeerFailure> {
        let got = tokio::time::timeout(self.config.stall_timeout, rx).await;
        self.fetches.forget(&key);
        match got {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(_)) | Err(_) => Err(PeerFailure::NoStream),
        }
    }
}
