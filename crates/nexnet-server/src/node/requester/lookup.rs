//! Finding a name's catalog entry: ours, or the newest the members know,
//! and the newest version of the name anyone knows (a delete's included),
//! which a store or a delete must go past.

use futures::{StreamExt, stream::FuturesUnordered};
use nexnet_crypto::NameId;
use nexnet_p2p::Peer;
use nexnet_store::Cid;
use tracing::warn;

use crate::{
    CatalogEntry, Result, ServerError,
    catalog::{Tombstone, too_far_ahead},
    node::Node,
    placement,
    protocol::Message,
};

/// What this node and the members it reached know of a name.
pub(crate) struct Found {
    /// The newest live entry.
    pub entry: Option<CatalogEntry>,
    /// The newest version of the name seen, live or ended by a delete.
    pub latest: u64,
}

impl Node {
    /// The catalog entry for `name` a read uses: the newest among a read
    /// quorum of the name's holders (and this node's own entry), so that
    /// it is the last acknowledged version or a newer one. With a read
    /// quorum of 1, this node's own entry when it has one. A name none of
    /// them knows is looked for on every member (it may have been written
    /// under another membership). Fewer answers than the quorum is
    /// [`ServerError::NoReadQuorum`], never "not found".
    pub(crate) async fn find_entry(
        &self,
        name_id: NameId,
        name: &str,
    ) -> Result<Option<CatalogEntry>> {
        let local = self
            .catalog
            .get(&name_id)
            .filter(|e| !self.catalog.is_dead(e));
        let holders = placement::name_holders(&name_id, self.all_nodes(), self.config.replication);
        let needed = self.config.name_read_quorum(holders.len());
        // Availability first (`read_quorum = 1`, set by the operator): the
        // local entry. A quorum of one that meets every write (R = 2,
        // W = 2) is this node's only if it is one of the name's holders.
        let local_will_do =
            self.config.read_quorum == Some(1) || (needed == 1 && holders.contains(&self.id));
        if local_will_do && let Some(e) = local {
            return Ok(Some(e));
        }
        let asked: Vec<_> = holders
            .iter()
            .filter(|h| **h != self.id)
            .filter_map(|h| self.members.peer(h))
            .collect();
        let mut answered = usize::from(holders.contains(&self.id));
        let mut newest = local;
        let mut heard_of = newest.is_some();
        let mut asking = self.ask_lookup(name_id, asked);
        while answered < needed
            && let Some(answer) = asking.next().await
        {
            match answer {
                Ok(Message::Entry(found)) => {
                    answered += 1;
                    if let Some(entry) = found
                        && self.usable(name_id, &entry)
                    {
                        heard_of = true;
                        // A dead entry must not hide an older live one.
                        if !self.catalog.is_dead(&entry)
                            && newest.as_ref().is_none_or(|n| entry.is_newer_than(n))
                        {
                            newest = Some(entry);
                        }
                    }
                }
                Ok(Message::Tombstones(ended)) => {
                    answered += 1;
                    heard_of = true;
                    self.learn_deletes(name_id, ended).await;
                }
                _ => {}
            }
        }
        if answered < needed {
            return Err(ServerError::NoReadQuorum {
                name: name.into(),
                needed,
                answered,
            });
        }
        if !heard_of {
            return Ok(self.find_name(name_id).await.entry);
        }
        Ok(newest.filter(|e| !self.catalog.is_dead(e)))
    }

    /// Asks each of `peers` for its entry for `name`, all at once, each
    /// within the request time-out; the answers come as they arrive.
    fn ask_lookup(
        &self,
        name: NameId,
        peers: Vec<Peer<Message>>,
    ) -> impl futures::Stream<Item = nexnet_p2p::Result<Message>> + use<> {
        let timeout = self.config.request_timeout;
        let lookup = Message::Lookup {
            name: *name.as_bytes(),
        };
        peers
            .into_iter()
            .map(|p| {
                let lookup = lookup.clone();
                async move { p.request(lookup, timeout).await }
            })
            .collect::<FuturesUnordered<_>>()
    }

    /// Whether `entry`, a peer's answer about `name_id`, may be taken.
    fn usable(&self, name_id: NameId, entry: &CatalogEntry) -> bool {
        let ok =
            entry.name_id() == name_id && entry.check().is_ok() && !too_far_ahead(entry.created_ms);
        if ok {
            self.clock.observe(entry.created_ms);
        }
        ok
    }

    /// Applies the delete of `name_id` a peer answered a lookup with.
    async fn learn_deletes(&self, name_id: NameId, ended: Vec<([u8; 20], Tombstone)>) {
        for (cid, t) in ended.into_iter().take(1) {
            if t.name_id() != name_id || t.name_version.is_none() {
                continue;
            }
            let cid = Cid::from_bytes(cid);
            if let Err(e) = self.apply_delete(cid, t).await {
                warn!(%cid, error = %e, "could not apply a delete a member knew of");
            }
        }
    }

    /// Asks every member (and this node's catalog) what it knows of
    /// `name`: the newest entry wins, and a delete a member knows of ends
    /// every version at or below its own here too. A store or a delete
    /// starts from this, never from this node's entry alone, which may be
    /// stale (the node was away while the name changed).
    pub(crate) async fn find_name(&self, name: NameId) -> Found {
        let mut asking = self.ask_lookup(name, self.members.peers());
        // Every member answers (each within the request time-out) and the
        // newest entry wins: one that missed a replacement must not decide.
        // The newest live entry is the answer; every version seen, dead
        // ones too (a store undone where a node did not hear of it), is one
        // to go past.
        let mut answers: Vec<CatalogEntry> = self.catalog.get(&name).into_iter().collect();
        while let Some(answer) = asking.next().await {
            match answer {
                Ok(Message::Entry(Some(entry))) if self.usable(name, &entry) => answers.push(entry),
                Ok(Message::Tombstones(ended)) => self.learn_deletes(name, ended).await,
                _ => {}
            }
        }
        let dead = self.catalog.dead_version(&name).unwrap_or(0);
        let latest = answers.iter().map(|e| e.created_ms).fold(dead, u64::max);
        let entry = answers
            .into_iter()
            .filter(|e| !self.catalog.is_dead(e))
            .reduce(|a, b| if b.is_newer_than(&a) { b } else { a });
        Found { entry, latest }
    }
}
