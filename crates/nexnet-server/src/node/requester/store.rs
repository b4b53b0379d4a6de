//! Storing a file: one pass over the source (read, encrypt, cut, hash),
//! each chunk put on its holders as soon as it is whole while the next is
//! read, a bounded window of them in flight; then the manifest's nodes,
//! the root last with the catalog entry, and the old version gone.

use std::{collections::BTreeSet, pin::pin, sync::Arc};

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, future::join_all, stream::FuturesUnordered};
use nexnet_crypto::name_id;
use nexnet_p2p::{NodeId, Peer};
use nexnet_store::{Cid, Durability};
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    task::JoinHandle,
};
use tracing::{Instrument, info, info_span, warn};

use crate::{
    CatalogEntry, PeerFailure, Receipt, Result, ServerError,
    catalog::{Layout, Put, Tombstone},
    check_name,
    manifest::{self, Builder},
    node::Node,
    placement,
    protocol::Message,
    transfer::{Commits, Fanout},
};

/// Chunks in flight at once: 4 MiB at the default size, so memory per
/// store is a few MiB whatever the file's size.
const STORE_WINDOW: usize = 4;

/// How many objects a store remembers, to remove them here if it fails:
/// 1.25 MiB of ids, a 64 GiB file at the default chunk size. What a larger
/// failed store leaves goes with the collector.
const MAX_REMEMBERED: usize = 64 * 1024;

/// A store whose chunks are all on their holders, ready to be committed.
struct StoreTail {
    name: String,
    root: Bytes,
    entry: CatalogEntry,
    previous: Option<CatalogEntry>,
    chunks: u64,
    /// The first chunk that missed its write quorum (it is stored, on
    /// fewer holders than asked).
    short: Option<ServerError>,
    /// What the store put (see [`Window::put`]).
    put: Vec<Cid>,
}

impl Drop for Window {
    fn drop(&mut self) {
        // A store that failed, or whose caller gave up: what it put is the
        // collector's to judge. (A store that got this far hands `put` on.)
        if let Some(node) = &self.node {
            node.done_storing(&self.put);
        }
    }
}

/// A chunk's put: the nodes that committed it, and `Some` the quorum
/// error if they are fewer than the quorum asks (but one at least).
type Put1 = JoinHandle<Result<Landed>>;
type Landed = (Vec<NodeId>, Option<ServerError>);

/// What the puts in flight found so far.
#[derive(Default)]
struct Window {
    puts: FuturesUnordered<Put1>,
    short: Option<ServerError>,
    /// The objects put so far (the first [`MAX_REMEMBERED`]), to remove
    /// if the store fails.
    put: Vec<Cid>,
    /// The node whose `storing` set holds `put`.
    node: Option<Arc<Node>>,
    /// Every node that committed a chunk: each must `Sync` before the
    /// root is committed.
    wrote: BTreeSet<NodeId>,
}

impl Window {
    /// Takes in one finished put; fails on a chunk nobody stored.
    fn took(
        &mut self,
        done: std::result::Result<Result<Landed>, tokio::task::JoinError>,
    ) -> Result<()> {
        let (committed, short) = done.map_err(|e| {
            ServerError::io("store a chunk", "a node task", std::io::Error::other(e))
        })??;
        self.wrote.extend(committed);
        if self.short.is_none() {
            self.short = short;
        }
        Ok(())
    }
}

impl Node {
    /// Stores `source` under `name` (see [`FileServer::store`](crate::FileServer::store)).
    pub(crate) async fn store_file(
        self: &Arc<Self>,
        name: &str,
        source: impl AsyncRead,
    ) -> Result<Receipt> {
        check_name(name)?;
        let name_id = name_id(name);
        let tail = self
            .write_chunks(name, source)
            .instrument(info_span!("store", %name_id))
            .await;
        let tail = tail.map_err(|e| self.name_disk_full(e))?;

        // Every chunk is in. The rest runs on a task of the node's, so a
        // caller that gives up (a dropped HTTP request) cannot leave a root
        // without its catalog entry, or a name half replaced.
        let node = self.clone();
        let span = info_span!("store", %name_id);
        self.tasks
            .spawn(
                async move {
                    let put = tail.put.clone();
                    let finished = node.clone().finish_store(tail).await;
                    node.done_storing(&put);
                    finished
                }
                .instrument(span),
            )
            .await
            .map_err(|e| {
                ServerError::io("finish storing", "a node task", std::io::Error::other(e))
            })?
            .map_err(|e| self.name_disk_full(e))
    }

    /// The store that put `cids` has named them (or failed): the collector
    /// may judge them again.
    fn done_storing(&self, cids: &[Cid]) {
        let mut storing = self.storing.lock();
        for cid in cids {
            storing.remove(cid);
        }
    }

    /// Reads, encrypts and cuts the source, putting each chunk (and each
    /// manifest node the tree closes) on its holders. A store that fails
    /// here waits for the puts in flight, then removes what it wrote into
    /// this node's store: a failed store leaves nothing here (what other
    /// holders committed is named by no file, and goes with the collector).
    async fn write_chunks(
        self: &Arc<Self>,
        name: &str,
        source: impl AsyncRead,
    ) -> Result<StoreTail> {
        let mut window = Window::default();
        window.node = Some(self.clone());
        let written = self.cut_and_put(name, source, &mut window).await;
        if written.is_err() {
            while window.puts.next().await.is_some() {}
            for cid in &window.put {
                let _ = self.store.delete(cid).await;
            }
        }
        written.map(|mut tail| {
            tail.put = std::mem::take(&mut window.put);
            tail
        })
    }

    async fn cut_and_put(
        self: &Arc<Self>,
        name: &str,
        source: impl AsyncRead,
        in_flight: &mut Window,
    ) -> Result<StoreTail> {
        let name_id = name_id(name);
        // The version this store replaces, wherever it is known: a node
        // that never saw the name must still remove the old object, and
        // one that was away must not start from its stale entry.
        let found = self.find_name(name_id).await;
        let previous = found.entry;
        let (header, mut keystream) = self.key.begin_object()?;
        let chunk_size = self.config.chunk_size;
        let mut builder = Builder::new(self.config.manifest_fanout);
        let mut source = pin!(source);
        let (mut plain_len, mut chunks) = (0u64, 0u64);
        let mut tail = Vec::new();
        loop {
            let mut buf = BytesMut::with_capacity(chunk_size as usize);
            while buf.len() < buf.capacity() {
                if source
                    .read_buf(&mut buf)
                    .await
                    .map_err(ServerError::Source)?
                    == 0
                {
                    break;
                }
            }
            if buf.is_empty() {
                break;
            }
            let full = buf.len() == buf.capacity();
            plain_len += buf.len() as u64;
            keystream.apply(&mut buf);
            if !full && (buf.len() as u64) < manifest::MIN_CHUNK_OBJECT {
                // A short tail goes into the root (see `MIN_CHUNK_OBJECT`).
                tail = buf.to_vec();
                break;
            }
            chunks += 1;
            let bytes = buf.freeze();
            let cid = Cid::of(&bytes);
            for node in builder.push(cid) {
                self.put_windowed(in_flight, node.cid, node.bytes.into())
                    .await?;
            }
            self.put_windowed(in_flight, cid, bytes).await?;
            if !full {
                break;
            }
        }
        let root = manifest::Root {
            header,
            plain_len,
            chunk_size,
            fanout: self.config.manifest_fanout,
            chunk_count: chunks,
        };
        let mut nodes = builder.finish(root, tail);
        // The last node is the root; it goes with the catalog entry.
        let root = nodes.pop().ok_or(ServerError::Manifest {
            cid: Cid::of(&[]),
            reason: "the builder made no root",
        })?;
        for node in nodes {
            self.put_windowed(in_flight, node.cid, node.bytes.into())
                .await?;
        }
        while let Some(done) = in_flight.puts.next().await {
            in_flight.took(done)?;
        }
        // Chunks were committed without fsyncs of their own: one flush per
        // node that took any, before the root makes them a file.
        if let Some(unsynced) = self.sync_all(&in_flight.wrote).await?
            && in_flight.short.is_none()
        {
            in_flight.short = Some(unsynced);
        }
        let mut entry = CatalogEntry::with_layout(
            &self.key,
            name,
            name_id,
            root.cid,
            root.bytes.len() as u64,
            plain_len,
            Layout::Chunked,
        )?;
        // Later than every version of the name known, the one it replaces
        // and any delete, whatever the clocks say: every node keeps the
        // entry with the latest version.
        entry.created_ms = self.clock.next(found.latest);
        Ok(StoreTail {
            name: name.to_string(),
            root: root.bytes.into(),
            entry,
            previous,
            chunks,
            short: in_flight.short.take(),
            put: Vec::new(),
        })
    }

    /// Puts `cid` on its holders on a task of its own, once fewer than
    /// [`STORE_WINDOW`] are in flight (the first failure ends the store).
    async fn put_windowed(
        self: &Arc<Self>,
        in_flight: &mut Window,
        cid: Cid,
        bytes: Bytes,
    ) -> Result<()> {
        while in_flight.puts.len() >= STORE_WINDOW {
            if let Some(done) = in_flight.puts.next().await {
                in_flight.took(done)?;
            }
        }
        if in_flight.put.len() < MAX_REMEMBERED {
            in_flight.put.push(cid);
            self.storing.lock().insert(cid);
        }
        let node = self.clone();
        in_flight
            .puts
            .push(self.spawn(async move { node.put_with_quorum(cid, bytes).await }));
        Ok(())
    }

    /// Puts one chunk on its holders. Fewer commits than the write quorum
    /// asks are reported (the store goes on, and fails at the end, as a
    /// store of the first release did); none at all fail the store now.
    async fn put_with_quorum(self: Arc<Self>, cid: Cid, bytes: Bytes) -> Result<Landed> {
        let (holders, committed, failures) = self.put_chunk(cid, bytes).await?;
        let (committed, missed) = tally(committed, failures, &holders, self.id, false);
        let wrote = committed.clone();
        let reachable = committed.len()
            + missed
                .iter()
                .filter(|(_, why)| !matches!(why, PeerFailure::NotConnected))
                .count();
        let needed = self.config.write_quorum.unwrap_or(reachable.max(1));
        if committed.len() >= needed {
            return Ok((wrote, None));
        }
        warn!(%cid, needed, committed = committed.len(), "chunk below its write quorum");
        let short = ServerError::Quorum {
            cid,
            needed,
            committed,
            failures: missed,
        };
        if matches!(&short, ServerError::Quorum { committed, .. } if committed.is_empty()) {
            return Err(short);
        }
        Ok((wrote, Some(short)))
    }

    /// Has every node in `wrote` (this one included) make the chunks it
    /// committed durable; `Some` the nodes that could not. This node's own
    /// failure fails the store.
    async fn sync_all(&self, wrote: &BTreeSet<NodeId>) -> Result<Option<ServerError>> {
        let stall = self.config.stall_timeout;
        let local = async {
            if wrote.contains(&self.id) {
                self.store.sync().await
            } else {
                Ok(())
            }
        };
        let remote = join_all(wrote.iter().filter(|n| **n != self.id).map(|n| async move {
            let Some(peer) = self.members.peer(n) else {
                return Some((*n, PeerFailure::NotConnected));
            };
            match peer.request(Message::Sync, stall).await {
                Ok(Message::Synced) => None,
                Ok(Message::Refused(why)) => Some((*n, PeerFailure::Refused(why))),
                Ok(other) => Some((*n, PeerFailure::Unexpected(other.kind()))),
                Err(e) => Some((*n, e.into())),
            }
        }));
        let (local, remote) = tokio::join!(local, remote);
        local?;
        let failures: Vec<_> = remote.into_iter().flatten().collect();
        if failures.is_empty() {
            return Ok(None);
        }
        warn!(
            nodes = failures.len(),
            "chunks may not be durable on every holder"
        );
        Ok(Some(ServerError::NotDurable { failures }))
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

    /// Commits the root with the catalog entry on the root's holders (see
    /// [`StoreTail`]), and records the entry here.
    async fn finish_store(self: Arc<Self>, tail: StoreTail) -> Result<Receipt> {
        let StoreTail {
            name,
            root,
            entry,
            previous,
            chunks,
            short,
            put,
        } = tail;
        let cid = entry.cid();
        if let Some(ServerError::Quorum {
            needed,
            committed,
            failures,
            ..
        }) = short
        {
            // A chunk below its write quorum: nothing names the file yet,
            // so the name is as it was; what was put goes again.
            warn!(%cid, needed, committed = committed.len(), "a chunk below its write quorum; the store is abandoned");
            self.discard(entry.name_id(), &put).await;
            return Err(ServerError::NotStored {
                name,
                cid,
                needed,
                committed,
                failures,
            });
        }
        let all = self.all_nodes();
        let holders = placement::holders(&cid, all.clone(), self.config.replication);
        let self_holds = holders.contains(&self.id);
        let names = placement::name_holders(&entry.name_id(), all, self.config.replication);
        let (root_commits, named) = tokio::join!(
            self.commit_root(&entry, root, &holders, self_holds),
            self.put_entry(&entry, &names),
        );
        let (commits, reachable) = match root_commits {
            Ok(done) => done,
            Err(e) => {
                // The name's holders may have recorded the entry already.
                self.retract(&entry, previous, &names, &put).await;
                return Err(e);
            }
        };
        let (committed, missed) = tally(
            commits.committed,
            commits.failures,
            &holders,
            self.id,
            self_holds,
        );
        let needed = self.config.write_quorum.unwrap_or(reachable.max(1));
        let (recorded, unrecorded, newer_entry) = named;
        let names_needed = self.config.name_write_quorum(names.len());
        let newer = [commits.newer, newer_entry]
            .into_iter()
            .flatten()
            .max_by(|a, b| {
                if a.is_newer_than(b) {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Less
                }
            });
        if committed.len() < needed || recorded.len() < names_needed {
            let (needed, committed, failures) = if committed.len() < needed {
                (needed, committed, missed)
            } else {
                (names_needed, recorded, unrecorded)
            };
            warn!(%cid, needed, committed = committed.len(), "store below its write quorum; undone");
            self.retract(&entry, previous, &names, &put).await;
            return Err(ServerError::NotStored {
                name,
                cid,
                needed,
                committed,
                failures,
            });
        }
        self.record(entry.clone(), previous, newer).await?;
        if let Some(short) = short {
            return Err(short);
        }
        info!(%cid, bytes = entry.plain_len, chunks, committed = committed.len(), "stored");
        Ok(Receipt {
            cid,
            object_len: entry.object_len,
            plain_len: entry.plain_len,
            chunks,
            holders,
            committed,
            missed,
        })
    }

    /// Records `entry` on the name's holders (this node's own record comes
    /// with [`Self::record`]). Returns those that recorded it or hold a
    /// newer version (either way a read quorum finds this version or
    /// later), those that did not and why, and the newest entry answered.
    async fn put_entry(
        &self,
        entry: &CatalogEntry,
        names: &[NodeId],
    ) -> (
        Vec<NodeId>,
        Vec<(NodeId, PeerFailure)>,
        Option<CatalogEntry>,
    ) {
        let timeout = self.config.request_timeout;
        let answers = join_all(names.iter().filter(|n| **n != self.id).map(|n| async move {
            let Some(peer) = self.members.peer(n) else {
                return (*n, Err(PeerFailure::NotConnected));
            };
            let answer = match peer
                .request(Message::PutEntry(entry.clone()), timeout)
                .await
            {
                Ok(Message::Committed) => Ok(None),
                Ok(Message::Superseded(newer)) if newer.supersedes(entry) => Ok(Some(newer)),
                Ok(Message::Refused(why)) => Err(PeerFailure::Refused(why)),
                Ok(other) => Err(PeerFailure::Unexpected(other.kind())),
                Err(e) => Err(e.into()),
            };
            (*n, answer)
        }))
        .await;
        let mut recorded: Vec<NodeId> = names.iter().filter(|n| **n == self.id).copied().collect();
        let (mut failures, mut newest) = (Vec::new(), None::<CatalogEntry>);
        for (n, answer) in answers {
            match answer {
                Ok(newer) => {
                    recorded.push(n);
                    if let Some(e) = newer
                        && newest.as_ref().is_none_or(|m| e.is_newer_than(m))
                    {
                        newest = Some(e);
                    }
                }
                Err(why) => failures.push((n, why)),
            }
        }
        (recorded, failures, newest)
    }

    /// Removes the chunks and manifest nodes `put` of a store that failed
    /// before its root, here and on their holders, with a tombstone of the
    /// objects only (what a store put beyond the ids it remembers goes
    /// with the collector).
    async fn discard(&self, name_id: nexnet_crypto::NameId, put: &[Cid]) {
        let Some(first) = put.first() else {
            return;
        };
        let all = self.all_nodes();
        let mut batches: std::collections::HashMap<NodeId, Vec<[u8; 20]>> = Default::default();
        for cid in put {
            for h in placement::holders(cid, all.clone(), self.config.replication) {
                if h == self.id {
                    let _ = self.store.delete(cid).await;
                } else {
                    batches.entry(h).or_default().push(*cid.as_bytes());
                }
            }
        }
        let tombstone = Tombstone::of_object(name_id);
        let timeout = self.config.request_timeout;
        for (h, cids) in batches {
            let Some(peer) = self.members.peer(&h) else {
                continue;
            };
            for batch in cids.chunks(crate::protocol::MAX_LIST) {
                let ask = Message::DeleteChunks {
                    root: *first.as_bytes(),
                    tombstone,
                    cids: batch.to_vec(),
                };
                if peer.request(ask, timeout).await.is_err() {
                    break;
                }
            }
        }
    }

    /// Undoes a store that missed its write quorum: its object goes
    /// everywhere with a tombstone of the object only (not of the name),
    /// and the version it was to replace is recorded again on the name's
    /// holders that took the new one in its place.
    async fn retract(
        self: &Arc<Self>,
        entry: &CatalogEntry,
        previous: Option<CatalogEntry>,
        names: &[NodeId],
        put: &[Cid],
    ) {
        let tombstone = Tombstone::of_object(entry.name_id());
        if let Err(e) = self.delete_file_everywhere(entry, tombstone).await {
            warn!(cid = %entry.cid(), error = %e, "could not remove all of a store that missed its quorum");
        }
        // What the walk of its manifest could not reach (no root holder
        // committed), by the ids the store remembers.
        self.discard(entry.name_id(), put).await;
        let Some(previous) = previous else {
            return;
        };
        if let Err(e) = self.catalog.put(previous.clone()).await {
            warn!(error = %e, "could not record the version a failed store was to replace");
        }
        let _ = self.put_entry(&previous, names).await;
    }

    /// Commits the root here (if this node holds it) and on the other
    /// `holders`, each recording the entry. Returns what they answered and
    /// how many holders were reachable (this one included, if it is one).
    async fn commit_root(
        &self,
        entry: &CatalogEntry,
        root: Bytes,
        holders: &[NodeId],
        self_holds: bool,
    ) -> Result<(Commits, usize)> {
        let stall = self.config.stall_timeout;
        let remote: Vec<Peer<Message>> = holders
            .iter()
            .filter(|h| **h != self.id)
            .filter_map(|h| self.members.peer(h))
            .collect();
        let reachable = usize::from(self_holds) + remote.len();
        let remote = async {
            let mut fanout = Fanout::open(remote, || self.next_transfer(), stall).await;
            fanout.send(&root).await;
            fanout.commit(entry, stall).await
        };
        let local = async {
            if self_holds {
                self.store
                    .write_bytes_hashed(entry.cid(), root.clone(), Durability::Now)
                    .await
                    .map(drop)
            } else {
                Ok(())
            }
        };
        let (local, remote) = tokio::join!(local, remote);
        local?;
        Ok((remote, reachable))
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
