//! Finding a name's catalog entry: ours, or the newest the members know,
//! and the newest version of the name anyone knows (a delete's included),
//! which a store or a delete must go past.

use futures::{StreamExt, stream::FuturesUnordered};
use nexnet_crypto::NameId;
use nexnet_store::Cid;
use tracing::warn;

use crate::{CatalogEntry, catalog::too_far_ahead, node::Node, protocol::Message};

/// What this node and the members it reached know of a name.
pub(crate) struct Found {
    /// The newest live entry.
    pub entry: Option<CatalogEntry>,
    /// The newest version of the name seen, live or ended by a delete.
    pub latest: u64,
}

impl Node {
    /// The catalog entry for `name`: ours, or the newest a member knows.
    pub(crate) async fn find_entry(&self, name: NameId) -> Option<CatalogEntry> {
        if let Some(e) = self.catalog.get(&name) {
            return Some(e);
        }
        self.find_name(name).await.entry
    }

    /// Asks every member (and this node's catalog) what it knows of
    /// `name`: the newest entry wins, and a delete a member knows of ends
    /// every version at or below its own here too. A store or a delete
    /// starts from this, never from this node's entry alone, which may be
    /// stale (the node was away while the name changed).
    pub(crate) async fn find_name(&self, name: NameId) -> Found {
        let timeout = self.config.request_timeout;
        let lookup = Message::Lookup {
            name: *name.as_bytes(),
        };
        let mut asking: FuturesUnordered<_> = self
            .members
            .peers()
            .into_iter()
            .map(|p| {
                let lookup = lookup.clone();
                async move { p.request(lookup, timeout).await }
            })
            .collect();
        // Every member answers (each within the request time-out) and the
        // newest entry wins: one that missed a replacement must not decide.
        let mut newest: Option<CatalogEntry> = None;
        while let Some(answer) = asking.next().await {
            match answer {
                Ok(Message::Entry(Some(entry)))
                    if entry.name_id() == name
                        && entry.check().is_ok()
                        && !too_far_ahead(entry.created_ms) =>
                {
                    self.clock.observe(entry.created_ms);
                    if newest.as_ref().is_none_or(|n| entry.is_newer_than(n)) {
                        newest = Some(entry);
                    }
                }
                Ok(Message::Tombstones(ended)) => {
                    for (cid, t) in ended.into_iter().take(1) {
                        if t.name_id() != name || t.name_version.is_none() {
                            continue;
                        }
                        let cid = Cid::from_bytes(cid);
                        if let Err(e) = self.apply_delete(cid, t).await {
                            warn!(%cid, error = %e, "could not apply a delete a member knew of");
                        }
                    }
                }
                _ => {}
            }
        }
        let local = self.catalog.get(&name);
        if let Some(e) = local
            && newest.as_ref().is_none_or(|n| e.is_newer_than(n))
        {
            newest = Some(e);
        }
        let dead = self.catalog.dead_version(&name).unwrap_or(0);
        let latest = newest.as_ref().map_or(0, |e| e.created_ms).max(dead);
        Found {
            entry: newest.filter(|e| !self.catalog.is_dead(e)),
            latest,
        }
    }
}
