//! What users do with files: store, get, delete.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::BytesMut;
use futures::{StreamExt, stream::FuturesUnordered};
use nexnet_crypto::{DecryptReader, EncryptReader, NameId, name_id};
use nexnet_p2p::{NodeId, Peer};
use nexnet_store::{Cid, ObjectReader};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::{
    CatalogEntry, Result, ServerError,
    catalog::{Put, Tombstone, check_name},
    node::{Node, await_stream, is_corruption},
    placement,
    protocol::Message,
    transfer::{self, Failure, Fanout},
};

/// What a store did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Receipt {
    /// The object's content id.
    pub cid: Cid,
    /// Bytes stored (header and ciphertext).
    pub object_len: u64,
    /// Bytes of the file.
    pub plain_len: u64,
    /// The nodes placement chose to hold it, best first.
    pub holders: Vec<NodeId>,
    /// The holders that committed it (this node too, if it is one).
    pub committed: Vec<NodeId>,
    /// The holders that did not, and why.
    pub missed: Vec<(NodeId, String)>,
}

/// A store whose bytes are all written, ready to be committed.
struct StoreTail {
    local: nexnet_store::ObjectWriter,
    fanout: Fanout,
    entry: CatalogEntry,
    previous: Option<CatalogEntry>,
    everyone_holds: bool,
    early_reach: usize,
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
    pub pending: Vec<(NodeId, String)>,
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

/// The plaintext of a file, streamed from its verified local object.
pub struct FileReader {
    inner: tokio::io::Take<DecryptReader<ObjectReader>>,
    len: u64,
    file_len: u64,
}

impl FileReader {
    /// How many bytes this reader yields: the file's size, or the range's.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it yields nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole file's size.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("len", &self.len)
            .finish()
    }
}

impl AsyncRead for FileReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
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
        let span = info_span!("store", %name_id);
        async move {
            // The version this store replaces, wherever it is known: a node
            // that never saw the name must still remove the old object.
            let previous = self.find_entry(name_id).await;
            let r = self.config.replication;
            let everyone_holds = self.all_nodes().len() <= r;
            let mut source = EncryptReader::new(&self.key, source)?;
            let mut local = self.store.begin().await?;
            // With no more nodes than replicas every node holds every
            // object, so the replicas can be fed while the source is read.
            // Otherwise placement needs the cid, known only at the end.
            let early_peers = if everyone_holds {
                self.members.peers()
            } else {
                Vec::new()
            };
            let early_reach = early_peers.len();
            let mut fanout = Fanout::open(
                early_peers,
                || self.next_transfer(),
                self.config.stall_timeout,
            )
            .await;
            let mut buf = BytesMut::new();
            loop {
                let chunk = transfer::read_chunk(&mut source, &mut buf)
                    .await
                    .map_err(ServerError::Source)?;
                if chunk.is_empty() {
                    break;
                }
                let (written, ()) =
                    tokio::join!(local.write_chunk(chunk.clone()), fanout.send(&chunk));
                written?;
            }
            let plain_len = source.plaintext_len();
            let (cid, object_len) = (local.cid(), local.len());
            let mut entry =
                CatalogEntry::new(&self.key, name, name_id, cid, object_len, plain_len)?;
            // Later than the version it replaces, whatever the clocks say:
            // every node keeps the entry with the latest time.
            if let Some(p) = &previous {
                entry.created_ms = entry.created_ms.max(p.created_ms.saturating_add(1));
            }
            // Every byte is in. The rest runs on a task of the node's, so a
            // caller that gives up (a dropped HTTP request) cannot leave an
            // object without its catalog entry, or a name half replaced.
            let node = self.clone();
            let finish = StoreTail {
                local,
                fanout,
                entry,
                previous,
                everyone_holds,
                early_reach,
            };
            self.tasks
                .spawn(async move { node.finish_store(finish).await }.in_current_span())
                .await
                .map_err(|e| {
                    ServerError::io("finish storing", "a node task", std::io::Error::other(e))
                })?
        }
        .instrument(span)
        .await
        .map_err(|e| self.name_disk_full(e))
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
        let StoreTail {
            local,
            mut fanout,
            entry,
            previous,
            everyone_holds,
            early_reach,
        } = tail;
        let (cid, object_len, plain_len) = (entry.cid(), entry.object_len, entry.plain_len);
        let r = self.config.replication;
        let holders = placement::holders(&cid, self.all_nodes(), r);
        let remote: Vec<Peer<Message>> = holders
            .iter()
            .filter(|h| **h != self.id)
            .filter_map(|h| self.members.peer(h))
            .collect();
        let stall = self.config.stall_timeout;
        let (mut committed, mut missed, newer) = if everyone_holds {
            // Every node commits (and fsyncs) at the same time.
            let (local, remote) = tokio::join!(local.commit(), fanout.commit(&entry, stall));
            local?;
            remote
        } else {
            local.commit().await?;
            fanout = Fanout::open(remote.clone(), || self.next_transfer(), stall).await;
            self.send_object(&cid, &mut fanout).await?;
            fanout.commit(&entry, stall).await
        };
        let self_holds = holders.contains(&self.id);
        if self_holds {
            committed.insert(0, self.id);
        }
        committed.retain(|n| holders.contains(n));
        missed.retain(|(n, _)| holders.contains(n));
        for h in &holders {
            if *h != self.id && !committed.contains(h) && !missed.iter().any(|(n, _)| n == h) {
                missed.push((*h, "not connected".into()));
            }
        }
        // The holders reachable when their part of the transfer began.
        let reachable = usize::from(self_holds)
            + if everyone_holds {
                early_reach
            } else {
                remote.len()
            };
        let needed = self.config.write_quorum.unwrap_or(reachable.max(1));
        // The entry goes in even on a non-holder: it can still resolve
        // the name, and a delete reaches it like every other node. The
        // name now points at the new object, so the old one goes, even if
        // the quorum is missed (the new one is readable where it landed).
        if let Some(newer) = newer {
            // A holder refused ours for a newer store of the name: take it,
            // so that this node agrees (ours is then the one replaced).
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
        info!(%cid, bytes = plain_len, committed = committed.len(), "stored");
        Ok(Receipt {
            cid,
            object_len,
            plain_len,
            holders,
            committed,
            missed,
        })
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

    /// The catalog entry for `name`: ours, or the first a member knows.
    pub(crate) async fn find_entry(&self, name: NameId) -> Option<CatalogEntry> {
        if let Some(e) = self.catalog.get(&name) {
            return Some(e);
        }
        let mut asking: FuturesUnordered<_> = self
            .members
            .peers()
            .into_iter()
            .map(|p| async move {
                p.request(
                    Message::Lookup {
                        name: *name.as_bytes(),
                    },
                    self.config.request_timeout,
                )
                .await
            })
            .collect();
        // Every member answers (each within the request time-out) and the
        // newest entry wins: one that missed a replacement must not decide.
        let mut newest: Option<CatalogEntry> = None;
        while let Some(answer) = asking.next().await {
            if let Ok(Message::Entry(Some(entry))) = answer
                && entry.name_id() == name
                && entry.check().is_ok()
                && !self.catalog.is_deleted(&entry.cid())
                && newest.as_ref().is_none_or(|n| entry.is_newer_than(n))
            {
                newest = Some(entry);
            }
        }
        newest
    }

    /// Opens `name` for reading (see [`FileServer::get`](crate::FileServer::get)).
    pub(crate) async fn get_file(
        &self,
        name: &str,
        range: Option<(u64, u64)>,
    ) -> Result<FileReader> {
        check_name(name)?;
        let name_id = name_id(name);
        let span = info_span!("get", %name_id);
        async move {
            let not_found = || ServerError::NotFound { name: name.into() };
            let entry = self.find_entry(name_id).await.ok_or_else(not_found)?;
            let file_len = entry.plain_len;
            let (offset, len) = match range {
                None => (0, file_len),
                Some((offset, _)) if offset > file_len || (offset == file_len && file_len > 0) => {
                    return Err(ServerError::RangeNotSatisfiable { offset, file_len });
                }
                Some((offset, len)) => (offset, len.min(file_len - offset)),
            };
            let cid = entry.cid();
            self.ensure_local(&entry).await?;
            if self.catalog.get(&name_id).is_none() {
                self.catalog.put(entry.clone()).await?;
            }
            let object = self.store.read(&cid).await?;
            // CTR has random access: a range reads only its own bytes.
            let inner = DecryptReader::new_async_at(&self.key, object, offset)
                .await?
                .expect_len(file_len)
                .take(len);
            Ok(FileReader {
                inner,
                len,
                file_len,
            })
        }
        .instrument(span)
        .await
    }

    /// Makes sure a verified copy of `entry`'s object is here: the local one
    /// if it verifies (a bad one is quarantined), else one fetched.
    pub(crate) async fn ensure_local(&self, entry: &CatalogEntry) -> Result<()> {
        let cid = entry.cid();
        if self.store.has(&cid).await? {
            match self.store.verify(&cid).await {
                Ok(()) => return Ok(()),
                Err(e) if is_corruption(&e) => {
                    warn!(%cid, error = %e, "local copy failed verification; fetching another");
                }
                // Gone since `has` (a concurrent get quarantined it, or an
                // evict): fetch like any missing copy.
                Err(nexnet_store::StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.fetch(entry).await
    }

    /// Fetches `entry`'s object from the holders placement names, then from
    /// every other member, keeping the first copy that verifies.
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
    ) -> std::result::Result<(), String> {
        let cid = entry.cid();
        let transfer = self.next_transfer();
        let key = (peer.node_id(), transfer);
        let stream = self.fetches.consumer(key);
        let asked = peer
            .request(
                Message::Fetch {
                    cid: *cid.as_bytes(),
                    transfer,
                },
                self.config.request_timeout,
            )
            .await;
        match asked {
            Ok(Message::Sending { len }) if len == entry.object_len => {}
            Ok(Message::Sending { len }) => {
                self.fetches.forget(&key);
                return Err(format!(
                    "offers {len} bytes, the entry says {}",
                    entry.object_len
                ));
            }
            Ok(Message::Missing) => {
                self.fetches.forget(&key);
                return Err("does not have it".into());
            }
            Ok(other) => {
                self.fetches.forget(&key);
                return Err(format!("unexpected answer {other:?}"));
            }
            Err(e) => {
                self.fetches.forget(&key);
                return Err(e.to_string());
            }
        }
        let stream = await_stream(self, key, stream).await?;
        let writer = transfer::receive(
            &self.store,
            stream,
            Some(entry.object_len),
            self.config.stall_timeout,
        )
        .await?;
        match writer.commit_expecting(cid).await {
            Ok(_) if self.catalog.is_deleted(&cid) => {
                // Deleted while it travelled: the tombstone wins.
                let _ = self.store.delete(&cid).await;
                Err(format!("{cid} was deleted"))
            }
            Ok(_) => Ok(()),
            Err(e) => {
                if is_corruption(&e) {
                    // Its copy is bad: tell it, so it moves it aside.
                    let _ = peer
                        .send(Message::Corrupt {
                            cid: *cid.as_bytes(),
                        })
                        .await;
                }
                Err(e.to_string())
            }
        }
    }

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
                report.pending.push((m, "not connected".into()));
            }
        }
        let asked = futures::future::join_all(peers.into_iter().map(|p| async move {
            let answer = p
                .request(
                    Message::Delete {
                        cid: *cid.as_bytes(),
                        tombstone,
                    },
                    self.config.request_timeout,
                )
                .await;
            (p.node_id(), answer)
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
                Ok(Message::Failed(why)) => report.pending.push((node, why)),
                Ok(other) => report
                    .pending
                    .push((node, format!("unexpected answer {other:?}"))),
                Err(e) => report.pending.push((node, e.to_string())),
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
