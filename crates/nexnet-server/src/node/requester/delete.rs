//! Deleting: a tombstone here first, then every member told. A member
//! that cannot be told now learns it when it reconnects, or when it next
//! asks about the object.

use std::sync::Arc;

use nexnet_crypto::name_id;
use nexnet_store::Cid;
use tracing::{Instrument, info, info_span, warn};

use crate::{
    CatalogEntry, DeleteReport, PeerFailure, Result, ServerError, catalog::Tombstone, check_name,
    node::Node, protocol::Message,
};

impl Node {
    /// Deletes `name` everywhere (see [`FileServer::delete`](crate::FileServer::delete)).
    pub(crate) async fn delete_file(self: &Arc<Self>, name: &str) -> Result<DeleteReport> {
        check_name(name)?;
        let name_id = name_id(name);
        let entry = self
            .find_entry(name_id)
            .await
            .ok_or_else(|| ServerError::NotFound { name: name.into() })?;
        self.delete_everywhere(entry.cid(), Tombstone::new(name_id))
            .instrument(info_span!("delete", %name_id))
            .await
    }

    /// A name now points at a new object: the old one goes everywhere.
    pub(crate) async fn replace_old(self: &Arc<Self>, old: CatalogEntry) {
        let cid = old.cid();
        if self.catalog.references(&cid) {
            return;
        }
        if let Err(e) = self
            .delete_everywhere(cid, Tombstone::new(old.name_id()))
            .await
        {
            warn!(%cid, error = %e, "could not remove a replaced object");
        }
    }

    async fn delete_everywhere(
        self: &Arc<Self>,
        cid: Cid,
        tombstone: Tombstone,
    ) -> Result<DeleteReport> {
        let had = self.apply_delete(cid, tombstone).await?;
        let mut report = DeleteReport {
            cid,
            confirmed: vec![self.id],
            removed: if had { vec![self.id] } else { Vec::new() },
            pending: Vec::new(),
        };
        let peers = self.members.peers();
        for m in self.members.ids() {
            if !peers.iter().any(|p| p.node_id() == m) {
                report.pending.push((m, PeerFailure::NotConnected));
            }
        }
        let timeout = self.config.request_timeout;
        let asked = futures::future::join_all(peers.into_iter().map(|p| async move {
            let delete = Message::Delete {
                cid: *cid.as_bytes(),
                tombstone,
            };
            (p.node_id(), p.request(delete, timeout).await)
        }))
        .await;
        for (node, answer) in asked {
            match answer {
                Ok(Message::Deleted { had }) => {
                    report.confirmed.push(node);
                    if had {
                        report.removed.push(node);
                    }
                }
                Ok(Message::Refused(why)) => report.pending.push((node, PeerFailure::Refused(why))),
                Ok(other) => report
                    .pending
                    .push((node, PeerFailure::Unexpected(other.kind()))),
                Err(e) => report.pending.push((node, e.into())),
            }
        }
        // A node that failed to answer may still be connected: it gets the
        // tombstone as a message too (and again whenever it asks about it).
        for (node, _) in &report.pending {
            if let Some(peer) = self.members.peer(node) {
                self.tell_deleted(&peer, cid);
            }
        }
        info!(%cid, confirmed = report.confirmed.len(), removed = report.removed.len(), "deleted");
        Ok(report)
    }
}
