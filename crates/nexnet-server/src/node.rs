//! A node's shared state, how it starts, and how it answers its peers.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use nexnet_crypto::{DataKey, secret_file};
use nexnet_p2p::{
    Event, Events, NetworkSecret, NodeId, Peer, RecvStream, ResetCode, TcpTransport, Transport,
    TransportConfig,
};
use nexnet_store::{CasPath, Cid, ObjectStore, ObjectWriter, StoreConfig, StoreError};
use tokio::sync::{Notify, oneshot, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::{
    Result, ServerConfig, ServerError,
    budget::Budget,
    catalog::{Catalog, Put, Tombstone},
    data_dir::{KEY_FILE, NODE_ID_FILE, SECRET_FILE},
    membership::Members,
    protocol::{MAX_LIST, Message},
    transfer::{self, Rendezvous},
};

/// The object layout of a new data directory: two 5-character levels,
/// `ab12c/34de5/<cid>`. The store's default goes all 8 levels deep, which
/// costs every object eight directories to create (and fsync) and to prune
/// again: small-file stores and deletes ran at less than half the speed
/// (docs/decisions.md, "Object layout of a node").
const NODE_LAYOUT: CasPath = CasPath::new(5, 2);

/// Why a replica was not kept when a newer store holds its name.
const SUPERSEDED: &str = "superseded by a newer store of this name";

/// Where a transfer's stream meets the request about it: (sender, transfer id).
pub(crate) type TransferKey = (NodeId, u64);

/// Everything a node's tasks share.
pub(crate) struct Node {
    pub config: ServerConfig,
    pub id: NodeId,
    pub key: DataKey,
    pub store: ObjectStore,
    pub catalog: Catalog,
    pub transport: TcpTransport<Message>,
    pub members: Members,
    /// Replicas received, waiting for the request that commits them.
    pub replicas: Rendezvous<TransferKey, std::result::Result<ObjectWriter, String>>,
    /// Fetches waiting for the stream that carries their object.
    pub fetches: Rendezvous<TransferKey, RecvStream>,
    next_transfer: AtomicU64,
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
    /// Wakes the repair task early (a peer connected).
    pub repair_soon: Notify,
    /// How many members are connected now.
    pub connected: watch::Sender<usize>,
    /// Bounds on what peers make this node do.
    pub budget: Arc<Budget>,
}

impl Node {
    /// Opens the data directory, binds the transport and starts the tasks.
    pub(crate) async fn start(config: ServerConfig) -> Result<Arc<Self>> {
        config.check()?;
        let dir = config.data_dir.clone();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| ServerError::io("create data directory", &dir, e))?;
        // The store locks the directory: a second node on it stops here.
        // A store keeps the layout it was created with; a new one gets the
        // node's (see `NODE_LAYOUT`).
        let store_dir = dir.join("store");
        let layout = CasPath::recorded_in(&store_dir)
            .await?
            .unwrap_or(NODE_LAYOUT);
        let store = ObjectStore::open_with(
            store_dir,
            StoreConfig::default().fsync(config.fsync),
            layout,
        )
        .await?;
        let (id, key, secret, catalog) = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || -> Result<_> {
                let dir = &config.data_dir;
                let id = crate::data_dir::load_or_create_node_id(&dir.join(NODE_ID_FILE))?;
                let key = DataKey::load_or_generate(
                    config
                        .key_file
                        .clone()
                        .unwrap_or_else(|| dir.join(KEY_FILE)),
                )?;
                let secret = secret_file::load_or_generate(
                    &config
                        .secret_file
                        .clone()
                        .unwrap_or_else(|| dir.join(SECRET_FILE)),
                )?;
                let catalog = Catalog::open(&dir.join("catalog"), config.fsync)?;
                Ok((id, key, NetworkSecret::from_bytes(*secret), catalog))
            })
            .await
            .map_err(|e| ServerError::io("open", &dir, std::io::Error::other(e)))??
        };
        // Before the transport binds, so no transfer is in flight.
        collect_orphans(&store, &catalog).await;
        let mut tc = TransportConfig::new(id, secret);
        tc.advertise = config.advertise;
        tc.heartbeat_interval = config.heartbeat_interval;
        let (transport, events) = TcpTransport::bind(config.listen, tc).await?;
        info!(node = ?id, addr = %transport.local_addr(), key = ?key.id(), files = catalog.len(), "node started");
        let node = Arc::new(Self {
            members: Members::new(id),
            config,
            id,
            key,
            store,
            catalog,
            transport,
            replicas: Rendezvous::new(),
            fetches: Rendezvous::new(),
            next_transfer: AtomicU64::new(1),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            repair_soon: Notify::new(),
            connected: watch::Sender::new(0),
            budget: Arc::default(),
        });
        let span = info_span!("node", id = ?id);
        node.tasks
            .spawn(run_events(node.clone(), events).instrument(span.clone()));
        node.tasks
            .spawn(crate::repair::run(node.clone()).instrument(span.clone()));
        for addr in node.config.bootstrap.clone() {
            node.tasks
                .spawn(redial(node.clone(), None, addr).instrument(span.clone()));
        }
        Ok(node)
    }

    pub(crate) fn next_transfer(&self) -> u64 {
        self.next_transfer.fetch_add(1, Ordering::Relaxed)
    }

    /// This node and every member it knows.
    pub(crate) fn all_nodes(&self) -> Vec<NodeId> {
        let mut all = self.members.ids();
        all.push(self.id);
        all
    }

    /// Drops `cid` here: tombstone first, so nothing brings it back, then
    /// the catalog entries naming it, then the object. Returns whether a
    /// copy was here.
    pub(crate) async fn apply_delete(&self, cid: Cid, tombstone: Tombstone) -> Result<bool> {
        self.catalog.tombstone(cid, tombstone).await?;
        Ok(self.store.delete(&cid).await?)
    }

    /// Commits a replica that arrived on transfer `key` if its bytes hash to
    /// `entry`'s cid, and records the entry.
    async fn commit_replica(
        &self,
        key: TransferKey,
        entry: crate::CatalogEntry,
    ) -> std::result::Result<(), String> {
        entry.check()?;
        let waiting = self.replicas.consumer(key);
        let received = tokio::time::timeout(self.config.stall_timeout, waiting).await;
        self.replicas.forget(&key);
        let writer = match received {
            Err(_) => return Err("the object stream never ended".into()),
            Ok(Err(_)) => return Err("the object stream was lost".into()),
            Ok(Ok(result)) => result?,
        };
        let cid = entry.cid();
        if self.catalog.is_deleted(&cid) {
            return Err(format!("{cid} was deleted"));
        }
        if writer.len() != entry.object_len {
            return Err(format!(
                "received {} bytes, the entry says {}",
                writer.len(),
                entry.object_len
            ));
        }
        writer
            .commit_expecting(cid)
            .await
            .map_err(|e| e.to_string())?;
        let put = self.catalog.put(entry).await.map_err(|e| e.to_string())?;
        if matches!(put, Put::Deleted) || self.catalog.is_deleted(&cid) {
            // The tombstone arrived while we committed: it wins.
            let _ = self.store.delete(&cid).await;
            return Err(format!("{cid} was deleted"));
        }
        match put {
            // The name moved to a new object: the old one is dead here (its
            // originator also deletes it everywhere, with a tombstone).
            Put::Replaced(old) if old.cid() != cid && !self.catalog.references(&old.cid()) => {
                let _ = self.store.delete(&old.cid()).await;
            }
            // A newer store holds the name: nothing will read this object,
            // and the answer (`Superseded`) tells the sender.
            Put::Superseded => {
                if !self.catalog.references(&cid) {
                    let _ = self.store.delete(&cid).await;
                }
                return Err(SUPERSEDED.into());
            }
            _ => {}
        }
        debug!(%cid, "replica committed");
        Ok(())
    }

    /// Streams a stored object to `peer` for its fetch `transfer`.
    async fn serve_object(&self, peer: Peer<Message>, cid: Cid, transfer: u64) {
        let result = async {
            // The fetcher verifies every byte against the cid, and tells us
            // if our copy is bad (`Corrupt`): no need to hash it twice.
            let mut reader = self.store.read(&cid).await.map_err(|e| e.to_string())?;
            let mut out = peer
                .open_stream(Message::Object { transfer })
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = bytes::BytesMut::new();
            loop {
                let chunk = transfer::read_chunk(&mut reader, &mut buf)
                    .await
                    .map_err(|e| e.to_string())?;
                if chunk.is_empty() {
                    break;
                }
                tokio::time::timeout(self.config.stall_timeout, out.write_chunk(chunk))
                    .await
                    .map_err(|_| "the fetcher stopped reading".to_string())?
                    .map_err(|e| e.to_string())?;
            }
            tokio::io::AsyncWriteExt::shutdown(&mut out)
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(reason) = result {
            debug!(%cid, %reason, "serving an object stopped");
        }
    }

    /// Answers one request from a peer.
    async fn answer(self: &Arc<Self>, peer: &Peer<Message>, request: Message) -> Message {
        match request {
            Message::Members(heard) => {
                self.dial_new(&heard);
                Message::Members(self.member_addrs())
            }
            Message::Commit { transfer, entry } => {
                let (cid, name) = (entry.cid(), entry.name_id());
                match self.commit_replica((peer.node_id(), transfer), entry).await {
                    Ok(()) => Message::Committed,
                    Err(why) => {
                        if self.catalog.is_deleted(&cid) {
                            self.tell_deleted(peer, cid);
                        }
                        match self.catalog.get(&name) {
                            Some(newer) if why == SUPERSEDED => Message::Superseded(newer),
                            _ => Message::Failed(why),
                        }
                    }
                }
            }
            Message::Lookup { name } => {
                let name = nexnet_crypto::NameId::from_bytes(name);
                Message::Entry(
                    self.catalog
                        .get(&name)
                        .filter(|e| !self.catalog.is_deleted(&e.cid())),
                )
            }
            Message::Fetch { cid, transfer } => {
                let cid = Cid::from_bytes(cid);
                if self.catalog.is_deleted(&cid) {
                    self.tell_deleted(peer, cid);
                    return Message::Missing;
                }
                // Waiting for a slot keeps this request unanswered, which
                // the transport bounds: a peer cannot start unlimited sends.
                let Some(slot) = self.budget.serving_slot(peer.node_id()).await else {
                    return Message::Failed("shutting down".into());
                };
                match self.store.len(&cid).await {
                    Ok(len) => {
                        self.budget.served(peer.node_id(), cid);
                        let (node, peer) = (self.clone(), peer.clone());
                        self.tasks.spawn(
                            async move {
                                node.serve_object(peer, cid, transfer).await;
                                drop(slot);
                            }
                            .in_current_span(),
                        );
                        Message::Sending { len }
                    }
                    Err(_) => Message::Missing,
                }
            }
            Message::Has { cid } => {
                let cid = Cid::from_bytes(cid);
                if self.catalog.is_deleted(&cid) {
                    // It asks because it still holds it: it missed the delete.
                    self.tell_deleted(peer, cid);
                    return Message::Have(false);
                }
                Message::Have(self.store.has(&cid).await.unwrap_or(false))
            }
            Message::Delete { cid, tombstone } => {
                match self.apply_delete(Cid::from_bytes(cid), tombstone).await {
                    Ok(had) => Message::Deleted { had },
                    Err(e) => Message::Failed(e.to_string()),
                }
            }
            other => Message::Failed(format!("not a request: {other:?}")),
        }
    }

    /// Sends `peer` the tombstone of `cid`: it still acts on a deleted
    /// object (it missed the delete, or the delete request failed).
    pub(crate) fn tell_deleted(&self, peer: &Peer<Message>, cid: Cid) {
        let Some(t) = self.catalog.tombstone_of(&cid) else {
            return;
        };
        let peer = peer.clone();
        self.tasks.spawn(
            async move {
                let _ = peer
                    .send(Message::Tombstones(vec![(*cid.as_bytes(), t)]))
                    .await;
            }
            .in_current_span(),
        );
    }

    /// This node and its members, as a peer exchange carries them.
    fn member_addrs(&self) -> Vec<crate::protocol::MemberAddr> {
        let mut list = self.members.addrs();
        let me = self.config.advertise.unwrap_or(self.transport.local_addr());
        list.insert(
            0,
            crate::protocol::MemberAddr {
                node: *self.id.as_bytes(),
                addr: me,
            },
        );
        list.truncate(MAX_LIST);
        list
    }

    /// Dials every member in `heard` we are not connected to.
    fn dial_new(self: &Arc<Self>, heard: &[crate::protocol::MemberAddr]) {
        for (node, addr) in self.members.learn(heard) {
            self.tasks
                .spawn(redial(self.clone(), Some(node), addr).in_current_span());
        }
    }

    fn publish_connected(&self) {
        let n = self.members.peers().len();
        self.connected.send_replace(n);
    }

    /// A peer connected: exchange member lists, hand it our tombstones, and
    /// let repair check whether it misses replicas.
    async fn greet(self: &Arc<Self>, peer: Peer<Message>) {
        let tombstones: Vec<_> = self
            .catalog
            .tombstones()
            .into_iter()
            .map(|(cid, t)| (*cid.as_bytes(), t))
            .collect();
        for batch in tombstones.chunks(MAX_LIST) {
            if peer
                .send(Message::Tombstones(batch.to_vec()))
                .await
                .is_err()
            {
                return;
            }
        }
        match peer
            .request(
                Message::Members(self.member_addrs()),
                self.config.request_timeout,
            )
            .await
        {
            Ok(Message::Members(heard)) => self.dial_new(&heard),
            Ok(other) => {
                warn!(peer = ?peer.node_id(), "unexpected answer to a member exchange: {other:?}")
            }
            Err(e) => debug!(peer = ?peer.node_id(), error = %e, "member exchange failed"),
        }
        self.repair_soon.notify_one();
    }

    async fn apply_tombstones(&self, list: Vec<([u8; 20], Tombstone)>) {
        for (cid, t) in list.into_iter().take(MAX_LIST) {
            let cid = Cid::from_bytes(cid);
            if self.catalog.is_deleted(&cid) {
                continue;
            }
            match self.apply_delete(cid, t).await {
                Ok(had) => info!(%cid, had, "applied a delete that happened while we were away"),
                Err(e) => warn!(%cid, error = %e, "could not apply a delete"),
            }
        }
    }
}

/// Orphans are removed at start only while they number at most this many,
/// or at most a tenth of the store: a crash leaves one per store in flight,
/// while a catalog restored from an old backup would leave many.
const MAX_ORPHANS_REMOVED: usize = 64;

/// Removes, at start, objects that nothing will ever read:
///
/// - objects of deleted files (a delete cut off between its tombstone and
///   the object's removal), always: a tombstone is the delete's commit;
/// - orphans, objects no catalog entry names (a crash between an object's
///   commit and its entry, or a replacement cut off before the old version
///   went), unless the catalog may be missing records: records that failed
///   to load (an orphan may be a file's last copy, whose record someone
///   can still recover), a catalog with no history at all beside a store
///   full of objects (a lost or unrestored catalog), or more orphans than a
///   crash leaves ([`MAX_ORPHANS_REMOVED`]). Then they are kept, with a
///   warning.
///
/// Problems are logged, not fatal: an object left behind costs space, not
/// correctness (tests/crash.rs counts what is removed).
async fn collect_orphans(store: &ObjectStore, catalog: &Catalog) {
    use futures::StreamExt;
    let named: std::collections::HashSet<Cid> = catalog.entries().iter().map(|e| e.cid()).collect();
    let (mut total, mut orphans, mut deleted) = (0usize, Vec::new(), 0usize);
    let mut objects = store.list();
    while let Some(cid) = objects.next().await {
        let cid = match cid {
            Ok(cid) => cid,
            Err(e) => {
                warn!(error = %e, "listing objects for orphans stopped");
                return;
            }
        };
        total += 1;
        if named.contains(&cid) {
            continue;
        }
        if catalog.is_deleted(&cid) {
            match store.delete(&cid).await {
                Ok(true) => deleted += 1,
                Ok(false) => {}
                Err(e) => warn!(%cid, error = %e, "could not remove a deleted object"),
            }
        } else {
            orphans.push(cid);
        }
    }
    if deleted > 0 {
        info!(
            removed = deleted,
            "removed objects of deleted files (a delete cut off by a crash)"
        );
    }
    if orphans.is_empty() {
        return;
    }
    let kept = orphans.len();
    if let Some(dir) = catalog.damaged() {
        warn!(kept, damaged = %dir.display(), "catalog records failed to load: keeping objects no entry names until they are dealt with");
        return;
    }
    if catalog.len() == 0 && catalog.tombstones().is_empty() {
        warn!(
            kept,
            "the catalog is empty but the store is not (a catalog lost or not restored?): keeping objects no entry names"
        );
        return;
    }
    if kept > MAX_ORPHANS_REMOVED && kept > total / 10 {
        warn!(
            kept,
            objects = total,
            "more objects no entry names than a crash leaves (a catalog restored from an old backup?): keeping them"
        );
        return;
    }
    let (mut removed, mut failed) = (0usize, 0usize);
    for cid in orphans {
        match store.delete(&cid).await {
            Ok(true) => removed += 1,
            Ok(false) => {}
            Err(e) => {
                failed += 1;
                debug!(%cid, error = %e, "could not remove an orphan object");
            }
        }
    }
    if removed + failed > 0 {
        info!(
            removed,
            failed, "removed objects no file names (left by a crash)"
        );
    }
}

/// Dispatches the transport's events until it closes.
async fn run_events(node: Arc<Node>, mut events: Events<Message>) {
    loop {
        let event = tokio::select! {
            () = node.shutdown.cancelled() => return,
            e = events.next() => match e {
                Some(e) => e,
                None => return,
            },
        };
        handle_event(&node, event);
    }
}

/// Handles one event without waiting on anything slow: the work is spawned,
/// so one peer's request never delays another's.
fn handle_event(node: &Arc<Node>, event: Event<Message>) {
    match event {
        Event::Connected(peer) => {
            node.members.connected(&peer);
            node.publish_connected();
            let n = node.clone();
            node.tasks
                .spawn(async move { n.greet(peer).await }.in_current_span());
        }
        Event::Disconnected { peer, reason } => {
            debug!(?peer, %reason, "peer disconnected");
            let redial_addr = node.members.disconnected(peer);
            node.budget.forget(peer);
            node.publish_connected();
            if let Some(addr) = redial_addr
                && !node.shutdown.is_cancelled()
            {
                node.tasks
                    .spawn(redial(node.clone(), Some(peer), addr).in_current_span());
            }
        }
        Event::Message { message, peer } => match message {
            Message::Tombstones(list) => {
                // A node that misses these learns them again when it asks
                // about the objects (its repair pass), so when too many
                // wait already, dropping them loses nothing.
                let Some(queued) = node.budget.queue_tombstones(list.len()) else {
                    warn!(peer = ?peer.node_id(), n = list.len(), "too many tombstones waiting; dropping these");
                    return;
                };
                let n = node.clone();
                node.tasks.spawn(
                    async move {
                        n.apply_tombstones(list).await;
                        drop(queued);
                    }
                    .in_current_span(),
                );
            }
            Message::Corrupt { cid } => {
                let (n, cid) = (node.clone(), Cid::from_bytes(cid));
                if !node.budget.take_served(peer.node_id(), cid) {
                    debug!(peer = ?peer.node_id(), %cid, "ignoring a report about an object we did not send it");
                    return;
                }
                node.tasks.spawn(
                    async move {
                        // verify() quarantines a copy that fails.
                        if let Err(e) = n.store.verify(&cid).await {
                            warn!(%cid, error = %e, "a peer reported our copy bad");
                        }
                    }
                    .in_current_span(),
                );
            }
            other => debug!(peer = ?peer.node_id(), "ignoring message {other:?}"),
        },
        Event::Request {
            peer,
            message,
            responder,
        } => {
            let n = node.clone();
            node.tasks.spawn(
                async move {
                    let answer = n.answer(&peer, message).await;
                    let _ = responder.respond(answer).await;
                }
                .in_current_span(),
            );
        }
        Event::Stream {
            peer,
            message,
            stream,
        } => match message {
            Message::Replicate { transfer } => {
                let key = (peer.node_id(), transfer);
                let result = node.replicas.producer(key);
                let n = node.clone();
                let span = info_span!("replica", from = ?peer.node_id(), transfer);
                node.tasks.spawn(
                    async move {
                        let received =
                            transfer::receive(&n.store, stream, None, n.config.stall_timeout).await;
                        if let Err(why) = &received {
                            debug!(%why, "replica stream failed");
                        }
                        let _ = result.send(received);
                        // The commit request normally takes it at once; if
                        // it never comes, do not keep the temp file.
                        tokio::select! {
                            () = tokio::time::sleep(n.config.stall_timeout) => {}
                            () = n.shutdown.cancelled() => {}
                        }
                        n.replicas.forget(&key);
                    }
                    .instrument(span),
                );
            }
            Message::Object { transfer } => {
                // A fetch registered its consumer before asking; if it gave
                // up meanwhile, the send fails and the stream is refused.
                let key = (peer.node_id(), transfer);
                let unwanted = match node.fetches.waiting_producer(&key) {
                    Some(tx) => tx.send(stream).err(),
                    None => Some(stream),
                };
                if let Some(stream) = unwanted {
                    stream.reset(ResetCode::Refused);
                }
            }
            other => {
                debug!(peer = ?peer.node_id(), "refusing a stream for {other:?}");
                stream.reset(ResetCode::Refused);
            }
        },
        _ => {}
    }
}

/// Keeps dialing `addr` with exponential back-off and jitter until a
/// connection is up (to `node`, if known) or the node shuts down.
pub(crate) async fn redial(node: Arc<Node>, target: Option<NodeId>, addr: SocketAddr) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if node.shutdown.is_cancelled() {
            break;
        }
        if let Some(t) = target
            && node.members.is_connected(&t)
        {
            break;
        }
        match node.transport.dial(addr).await {
            Ok(peer) => {
                debug!(peer = ?peer.node_id(), %addr, "dialed");
                break;
            }
            Err(e) => {
                if let (Some(t), Some(after)) = (target, node.config.forget_after)
                    && node.members.forget_if_gone(t, after)
                {
                    info!(peer = ?t, %addr, ?after, "forgot a member unreachable for too long");
                    return;
                }
                debug!(%addr, error = %e, ?backoff, "dial failed; will retry")
            }
        }
        // 75% to 125% of the back-off, so restarted nodes do not dial in step.
        let mut r = [0u8; 1];
        let _ = nexnet_crypto::fill_random(&mut r);
        let wait = backoff.mul_f64(0.75 + f64::from(r[0]) / 510.0);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = node.shutdown.cancelled() => break,
        }
        backoff = (backoff * 2).min(node.config.max_redial_backoff);
    }
    if let Some(t) = target {
        node.members.redial_done(t);
    }
}

/// Waits for a fetch's stream, registered under `key` before asking.
pub(crate) async fn await_stream(
    node: &Node,
    key: TransferKey,
    rx: oneshot::Receiver<RecvStream>,
) -> std::result::Result<RecvStream, String> {
    let got = tokio::time::timeout(node.config.stall_timeout, rx).await;
    node.fetches.forget(&key);
    match got {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(_)) => Err("the object stream was lost".into()),
        Err(_) => Err("the object stream never came".into()),
    }
}

/// Whether a store error means the local copy is bad (and was moved aside).
pub(crate) fn is_corruption(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Corrupt { .. } | StoreError::HashMismatch { .. }
    )
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
