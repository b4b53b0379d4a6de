//! Fetching an object this node lacks: from the holders placement names,
//! then every other member, keeping the first copy that verifies. A holder
//! whose copy fails is told (it quarantines it); one that stalls is left.

use nexnet_p2p::{Peer, RecvStream};
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
        let transfer = self.next_transfer();
        let key = (peer.node_id(), transfer);
        let stream = self.fetches.consumer(key);
        let ask = Message::Fetch {
            cid: *cid.as_bytes(),
            transfer,
        };
        let offered = match peer.request(ask, self.config.request_timeout).await {
            Ok(Message::Sending { len }) if len == entry.object_len => Ok(()),
            Ok(Message::Sending { len }) => Err(PeerFailure::WrongLength {
                offered: len,
                expected: entry.object_len,
            }),
            Ok(Message::Missing) => Err(PeerFailure::Missing),
            Ok(Message::Refused(why)) => Err(PeerFailure::Refused(why)),
            Ok(other) => Err(PeerFailure::Unexpected(other.kind())),
            Err(e) => Err(e.into()),
        };
        if let Err(why) = offered {
            self.fetches.forget(&key);
            return Err(why);
        }
        let stream = self.await_stream(key, stream).await?;
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

    /// Waits for a fetch's stream, registered under `key` before asking.
    pub(crate) async fn await_stream(
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
