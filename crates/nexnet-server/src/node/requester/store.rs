//! Storing a file: one pass over the source (encrypt, hash, write here and
//! to the other holders at once when every node holds every object), then
//! a commit on every holder, the catalog entry, and the old version gone.

use std::sync::Arc;

use bytes::BytesMut;
use nexnet_crypto::{EncryptReader, name_id};
use nexnet_p2p::{NodeId, Peer};
use nexnet_store::{Cid, ObjectWriter};
use tokio::io::AsyncRead;
use tracing::{Instrument, info, info_span, warn};

use crate::{
    CatalogEntry, PeerFailure, Receipt, Result, ServerError,
    catalog::Put,
    check_name,
    node::Node,
    placement,
    protocol::Message,
    transfer::{self, Commits, Fanout},
};

/// A store whose bytes are all written, ready to be committed.
struct StoreTail {
    local: ObjectWriter,
    fanout: Fanout,
    entry: CatalogEntry,
    previous: Option<CatalogEntry>,
    /// Whether every node holds every object (the replicas were fed while
    /// the source was read).
    everyone_holds: bool,
    /// How many peers the early fan-out reached.
    early_reach: usize,
}

impl Node {
    /// Stores `source` under `name` (see [`FileServer::store`](crate::FileServer::store)).
    pub(crate) async fn store_file(
        self: &Arc<Self>,
        name: &str,
        source: impl AsyncRead + Unpin,
    ) -> Result<Receipt> {
        check_name(name)?;
        let name_id = name_id(name);
        let tail = self
            .write_file(name, source)
            .instrument(info_span!("store", %name_id))
            .await;
        let tail = tail.map_err(|e| self.name_disk_full(e))?;
        // Every byte is in. The rest runs on a task of the node's, so a
        // caller that gives up (a dropped HTTP request) cannot leave an
        // object without its catalog entry, or a name half replaced.
        let node = self.clone();
        let span = info_span!("store", %name_id);
        self.tasks
            .spawn(async move { node.finish_store(tail).await }.instrument(span))
            .await
            .map_err(|e| {
                ServerError::io("finish storing", "a node task", std::io::Error::other(e))
            })?
            .map_err(|e| self.name_disk_full(e))
    }

    /// Reads, encrypts and hashes the source into the local store (and the
    /// replicas, when every node holds every object).
    async fn write_file(
        self: &Arc<Self>,
        name: &str,
        source: impl AsyncRead + Unpin,
    ) -> Result<StoreTail> {
        let name_id = name_id(name);
        // The version this store replaces, wherever it is known: a node
        // that never saw the name must still remove the old object.
        let previous = self.find_entry(name_id).await;
        let everyone_holds = self.all_nodes().len() <= self.config.replication;
        let mut source = EncryptReader::new(&self.key, source)?;
        let mut local = self.store.begin().await?;
        // With no more nodes than replicas every node holds every object,
        // so the replicas can be fed while the source is read. Otherwise
        // placement needs the cid, known only at the end.
        let early_peers = if everyone_holds {
            self.members.peers()
        } else {
            Vec::new()
        };
        let early_reach = early_peers.len();
        let stall = self.config.stall_timeout;
        let mut fanout = Fanout::open(early_peers, || self.next_transfer(), stall).await;
        let mut buf = BytesMut::new();
        loop {
            let chunk = transfer::read_chunk(&mut source, &mut buf)
                .await
                .map_err(ServerError::Source)?;
            if chunk.is_empty() {
                break;
            }
            let (written, ()) = tokio::join!(local.write_chunk(chunk.clone()), fanout.send(&chunk));
            written?;
        }
        let plain_len = source.plaintext_len();
        let (cid, object_len) = (local.cid(), local.len());
        let mut entry = CatalogEntry::new(&self.key, name, name_id, cid, object_len, plain_len)?;
        // Later than the version it replaces, whatever the clocks say:
        // every node keeps the entry with the latest time.
        if let Some(p) = &previous {
            entry.created_ms = entry.created_ms.max(p.created_ms.saturating_add(1));
        }
        Ok(StoreTail {
            local,
            fanout,
            entry,
            previous,
            everyone_holds,
            early_reach,
        })
    }

    /// A store that failed for lack of space says so, and on which node:
    /// the caller may be talking to another node than the full one.
    fn name_disk_full(&self, e: ServerError) -> ServerError {
        if e.is_disk_full() && !matches!(e, ServerError::DiskFull { .. }) {
            ServerError::DiskFull {
                node: self.id,
                source: Box::new(e),
            }
        } else {
            e
        }
    }

    /// Commits a store whose bytes are all written (see [`StoreTail`]).
    async fn finish_store(self: Arc<Self>, tail: StoreTail) -> Result<Receipt> {
        let entry = tail.entry.clone();
        let previous = tail.previous.clone();
        let cid = entry.cid();
        let holders = placement::holders(&cid, self.all_nodes(), self.config.replication);
        let self_holds = holders.contains(&self.id);
        let (commits, reachable) = self.commit_on_holders(tail, &holders, self_holds).await?;
        let (committed, missed) = tally(
            commits.committed,
            commits.failures,
            &holders,
            self.id,
            self_holds,
        );
        let needed = self.config.write_quorum.unwrap_or(reachable.max(1));
        // The entry goes in even on a non-holder, and even below the
        // quorum: the name now points at the new object (readable where it
        // landed), so the old one goes.
        self.record(entry.clone(), previous, commits.newer).await?;
        if committed.len() < needed {
            warn!(%cid, needed, committed = committed.len(), "store below its write quorum");
            return Err(ServerError::Quorum {
                cid,
                needed,
                committed,
                failures: missed,
            });
        }
        if !self_holds {
            // Placement put it elsewhere and enough holders have it.
            self.store.delete(&cid).await?;
        }
        info!(%cid, bytes = entry.plain_len, committed = committed.len(), "stored");
        Ok(Receipt {
            cid,
            object_len: entry.object_len,
            plain_len: entry.plain_len,
            holders,
            committed,
            missed,
        })
    }

    /// Commits the object here and on the other `holders`. Returns what
    /// they answered and how many holders were reachable when their part
    /// of the transfer began (this one included, if it is a holder).
    async fn commit_on_holders(
        &self,
        tail: StoreTail,
        holders: &[NodeId],
        self_holds: bool,
    ) -> Result<(Commits, usize)> {
        let StoreTail {
            local,
            fanout,
            entry,
            everyone_holds,
            early_reach,
            ..
        } = tail;
        let stall = self.config.stall_timeout;
        let self_holds = usize::from(self_holds);
        if everyone_holds {
            // Every node commits (and fsyncs) at the same time.
            let (local, remote) = tokio::join!(local.commit(), fanout.commit(&entry, stall));
            local?;
            return Ok((remote, self_holds + early_reach));
        }
        let remote: Vec<Peer<Message>> = holders
            .iter()
            .filter(|h| **h != self.id)
            .filter_map(|h| self.members.peer(h))
            .collect();
        let reachable = self_holds + remote.len();
        local.commit().await?;
        let mut fanout = Fanout::open(remote, || self.next_transfer(), stall).await;
        self.send_object(&entry.cid(), &mut fanout).await?;
        Ok((fanout.commit(&entry, stall).await, reachable))
    }

    /// Records `entry` (after a newer store a holder answered with, so this
    /// node agrees), and removes the versions it replaces everywhere.
    async fn record(
        self: &Arc<Self>,
        entry: CatalogEntry,
        previous: Option<CatalogEntry>,
        newer: Option<CatalogEntry>,
    ) -> Result<()> {
        let cid = entry.cid();
        if let Some(newer) = newer {
            self.catalog.put(newer).await?;
        }
        let replaced = match self.catalog.put(entry.clone()).await? {
            Put::Replaced(old) => Some(old),
            // A newer store of the name got here first: ours is dead, and
            // goes like any replaced version.
            Put::Superseded => Some(entry),
            Put::Added | Put::Unchanged | Put::Deleted => None,
        };
        let superseded = replaced.as_ref().is_some_and(|o| o.cid() == cid);
        let mut old: Vec<CatalogEntry> = previous.into_iter().chain(replaced).collect();
        if !superseded {
            old.retain(|o| o.cid() != cid);
        }
        old.dedup_by_key(|o| o.cid());
        for o in old {
            self.replace_old(o).await;
        }
        Ok(())
    }

    /// Streams the local object `cid` into `fanout`.
    pub(crate) async fn send_object(&self, cid: &Cid, fanout: &mut Fanout) -> Result<()> {
        let mut reader = self.store.read(cid).await?;
        let mut buf = BytesMut::new();
        loop {
            let chunk = transfer::read_chunk(&mut reader, &mut buf)
                .await
                .map_err(|e| ServerError::io("read object", cid.to_hex(), e))?;
            if chunk.is_empty() {
                return Ok(());
            }
            fanout.send(&chunk).await;
        }
    }
}

/// The holders that committed (this node first, if it holds the object)
/// and those that did not, with why: a holder no transfer reached was not
/// connected.
fn tally(
    mut committed: Vec<NodeId>,
    mut missed: Vec<(NodeId, PeerFailure)>,
    holders: &[NodeId],
    me: NodeId,
    self_holds: bool,
) -> (Vec<NodeId>, Vec<(NodeId, PeerFailure)>) {
    if self_holds {
        committed.insert(0, me);
    }
    committed.retain(|n| holders.contains(n));
    missed.retain(|(n, _)| holders.contains(n));
    for h in holders {
        if *h != me && !committed.contains(h) && !missed.iter().any(|(n, _)| n == h) {
            missed.push((*h, PeerFailure::NotConnected));
        }
    }
    (committed, missed)
}
