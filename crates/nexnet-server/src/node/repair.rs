//! Repair: bring every chunk, manifest node and object back to R verified
//! copies.
//!
//! The periodic pass first verifies every local object (a damaged one is
//! quarantined, and so becomes missing); the pass that runs when a peer
//! connects only checks who has what. Then a pass walks the catalog. For
//! each file's root (or first-format object) it holds, a node asks the
//! other holders placement names whether they have it, and, if it is the
//! first holder in placement order that has a copy, sends it with the
//! catalog entry to the holders that lack it; a holder without a good copy
//! fetches one. The first reachable holder of a chunked file's root then
//! walks its manifest and checks every chunk and node in batches
//! ("which of these 1,024 do you hold", answered with a bitmap), putting a
//! verified copy on each holder that lacks one. Objects of deleted files
//! have no catalog entry and are not repaired.

use std::{collections::HashMap, sync::Arc};

use bytes::BytesMut;
use futures::StreamExt;
use nexnet_p2p::{NodeId, Peer};
use nexnet_store::{Cid, Durability};
use tracing::{Instrument, debug, info, info_span, warn};

use super::{Manifests, Node, is_corruption};
use crate::{
    CatalogEntry, RepairReport, Result, ServerError,
    catalog::{Layout, Put},
    manifest, placement,
    protocol::{MAX_LIST, Message},
    transfer::{self, Fanout},
};

/// The repair task: a pass every interval, and a lighter one whenever a
/// peer connects (it may be back with missing replicas).
pub(super) async fn run(node: Arc<Node>) {
    let mut tick = node.config.repair_interval.map(|every| {
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        let verify = tokio::select! {
            () = node.shutdown.cancelled() => return,
            _ = async { match tick.as_mut() { Some(t) => t.tick().await, None => std::future::pending().await } } => true,
            () = node.repair_soon.notified() => false,
        };
        let report = pass(&node, verify)
            .instrument(info_span!("repair", verify))
            .await;
        if report.quarantined + report.fetched + report.pushed + report.problems + report.collected
            > 0
        {
            info!(?report, "repair pass");
        }
    }
}

impl Node {
    /// A full repair pass now, verifying every local object (see
    /// [`FileServer::repair`](crate::FileServer::repair)).
    pub(crate) async fn repair(self: &Arc<Self>) -> RepairReport {
        pass(self, true).await
    }
}

/// One pass over the catalog.
async fn pass(node: &Arc<Node>, verify: bool) -> RepairReport {
    let mut report = RepairReport::default();
    if verify {
        verify_all(node, &mut report).await;
    }
    for entry in node.catalog.entries() {
        if node.shutdown.is_cancelled() {
            break;
        }
        report.checked += 1;
        push_entry(node, &entry, &mut report).await;
        let mut repaired = repair_one(node, &entry, &mut report).await;
        if repaired.is_ok() && entry.layout == Layout::Chunked {
            repaired = repair_chunks(node, &entry, &mut report).await;
        }
        if let Err(e) = repaired {
            report.problems += 1;
            debug!(cid = %entry.cid(), error = %e, "repair of a file failed");
        }
    }
    if verify && !node.shutdown.is_cancelled() {
        report.collected = node.collect().await;
    }
    match node
        .catalog
        .collect_tombstones(node.config.tombstone_horizon)
        .await
    {
        Ok(0) => {}
        Ok(n) => info!(tombstones = n, "collected tombstones past their horizon"),
        Err(e) => warn!(error = %e, "could not collect old tombstones"),
    }
    report
}

/// Puts `entry` on the name's other holders that are connected, if this
/// node is one of them: a holder that was away when the name was written,
/// or that took the place of a forgotten one, gets it back from whichever
/// holder has it, and reads find a majority. (Every holder pushes what it
/// has: the first one may be the very one that lacks it. A holder that has
/// the entry answers `Committed` at once.)
async fn push_entry(node: &Arc<Node>, entry: &CatalogEntry, report: &mut RepairReport) {
    let names =
        placement::name_holders(&entry.name_id(), node.all_nodes(), node.config.replication);
    if !names.contains(&node.id) {
        return;
    }
    let timeout = node.config.request_timeout;
    for peer in names
        .iter()
        .filter(|h| **h != node.id)
        .filter_map(|h| node.members.peer(h))
    {
        match peer
            .request(Message::PutEntry(entry.clone()), timeout)
            .await
        {
            Ok(Message::Committed) => {}
            // The name moved on while this node was not looking: take the
            // newer entry, and the old version goes, as after a store.
            Ok(Message::Superseded(newer)) if newer.supersedes(entry) => {
                if let Ok(Put::Replaced(old)) = node.catalog.put(newer).await {
                    node.replace_old(old).await;
                }
                return;
            }
            Ok(Message::Refused(why)) => {
                debug!(name_id = %entry.name_id(), to = ?peer.node_id(), %why, "a name holder refused an entry");
            }
            _ => report.problems += 1,
        }
    }
}

/// Verifies every local object, quarantining the damaged ones.
async fn verify_all(node: &Node, report: &mut RepairReport) {
    let mut listed = node.store.list();
    while let Some(cid) = listed.next().await {
        if node.shutdown.is_cancelled() {
            return;
        }
        let Ok(cid) = cid else { return };
        match node.store.verify(&cid).await {
            Ok(()) => {}
            Err(e) if is_corruption(&e) => {
                warn!(%cid, "local copy failed verification; quarantined");
                report.quarantined += 1;
            }
            Err(e) => debug!(%cid, error = %e, "could not verify an object"),
        }
    }
}

/// Brings back every chunk and manifest node of `entry`'s file that this
/// node holds by placement and lacks; and, if it is the first reachable
/// holder of the root, puts them back on every other holder too.
async fn repair_chunks(
    node: &Arc<Node>,
    entry: &CatalogEntry,
    report: &mut RepairReport,
) -> Result<()> {
    let root = entry.cid();
    let holders = placement::holders(&root, node.all_nodes(), node.config.replication);
    if !holders.contains(&node.id) {
        return Ok(());
    }
    let first = holders
        .iter()
        .find(|h| **h == node.id || node.members.peer(h).is_some());
    let everywhere = first == Some(&node.id);
    let walk = node.open_manifest(entry).await?;
    let mut ids = walk.ids();
    let mut batch = Vec::with_capacity(MAX_LIST);
    loop {
        let next = ids.next(&Manifests(node)).await?;
        if let Some(id) = next {
            batch.push(id.cid());
        }
        if batch.len() == MAX_LIST || (next.is_none() && !batch.is_empty()) {
            repair_batch(node, &batch, everywhere, report).await?;
            batch.clear();
        }
        if next.is_none() {
            return Ok(());
        }
    }
}

/// Asks every holder of the objects in `batch` which it has (one request
/// per holder), and puts a verified copy where one is missing; with
/// `everywhere` false, only here.
async fn repair_batch(
    node: &Arc<Node>,
    batch: &[Cid],
    everywhere: bool,
    report: &mut RepairReport,
) -> Result<()> {
    let all = node.all_nodes();
    let mut asks: HashMap<NodeId, Vec<usize>> = HashMap::new();
    for (i, cid) in batch.iter().enumerate() {
        for h in placement::holders(cid, all.clone(), node.config.replication) {
            asks.entry(h).or_default().push(i);
        }
    }
    let mut lacking: Vec<Vec<NodeId>> = vec![Vec::new(); batch.len()];
    for (holder, which) in asks {
        if holder == node.id {
            for i in which {
                if !node.store.has(&batch[i]).await? {
                    lacking[i].push(holder);
                }
            }
            continue;
        }
        let Some(peer) = node.members.peer(&holder).filter(|_| everywhere) else {
            continue;
        };
        let cids = which.iter().map(|i| *batch[*i].as_bytes()).collect();
        let answer = peer
            .request(Message::HasMany(cids), node.config.request_timeout)
            .await;
        let Ok(Message::HaveMany(bits)) = answer else {
            report.problems += 1;
            continue;
        };
        for (k, i) in which.into_iter().enumerate() {
            let has = bits.get(k / 8).is_some_and(|b| b & (1 << (k % 8)) != 0);
            if !has {
                lacking[i].push(holder);
            }
        }
    }
    let most = u64::from(manifest::MAX_CHUNK_SIZE).max(manifest::MAX_NODE_LEN);
    // Where chunks went (committed without fsyncs): synced once at the end.
    let mut pushed_to: Vec<Peer<Message>> = Vec::new();
    for (cid, lacking) in batch.iter().zip(lacking) {
        if lacking.is_empty() {
            continue;
        }
        let bytes = match node.get_chunk(*cid, most, false).await {
            Ok(b) => b,
            Err(e) => {
                warn!(%cid, error = %e, "no verified copy of a chunk to repair from");
                report.problems += 1;
                continue;
            }
        };
        for h in lacking {
            let put = if h == node.id {
                // `get_chunk` keeps what a holder fetches or finds in its
                // cache; a copy it could not keep is written here.
                if !node.store.has(cid).await? {
                    node.store
                        .write_bytes_hashed(*cid, bytes.clone(), Durability::Now)
                        .await?;
                }
                report.fetched += 1;
                Ok(())
            } else if let Some(peer) = node.members.peer(&h) {
                let sent = node.send_chunk(&peer, *cid, bytes.clone()).await;
                if sent.is_ok() {
                    report.pushed += 1;
                    if !pushed_to.iter().any(|p| p.node_id() == h) {
                        pushed_to.push(peer);
                    }
                }
                sent
            } else {
                Ok(())
            };
            if let Err(why) = put {
                report.problems += 1;
                debug!(%cid, to = ?h, %why, "repair could not place a chunk");
            }
        }
    }
    // What a fetch kept here, too.
    node.store.sync().await?;
    for peer in pushed_to {
        let synced = peer.request(Message::Sync, node.config.stall_timeout).await;
        if !matches!(synced, Ok(Message::Synced)) {
            report.problems += 1;
            debug!(to = ?peer.node_id(), "repair could not make its pushed chunks durable");
        }
    }
    Ok(())
}

/// Puts `entry`'s object (a whole object, or a chunked file's root) where
/// it is missing: fetched here if this node holds it by placement, pushed
/// by its first holder to the others. (A full pass has verified every
/// local object before, in `verify_all`.)
async fn repair_one(
    node: &Arc<Node>,
    entry: &CatalogEntry,
    report: &mut RepairReport,
) -> Result<()> {
    let cid = entry.cid();
    if node.catalog.is_deleted(&cid) {
        return Ok(());
    }
    let holders = placement::holders(&cid, node.all_nodes(), node.config.replication);
    if !node.store.has(&cid).await? {
        if !holders.contains(&node.id) {
            return Ok(());
        }
        node.fetch(entry).await?;
        report.fetched += 1;
    }
    // Who among the other holders has it? The first holder (in placement
    // order) with a copy is the one that sends it, so holders do not all
    // push the same object at once.
    let mut pusher = None;
    let mut lacking: Vec<Peer<Message>> = Vec::new();
    for h in &holders {
        if *h == node.id {
            pusher.get_or_insert(node.id);
            continue;
        }
        let Some(peer) = node.members.peer(h) else {
            continue;
        };
        match peer
            .request(
                Message::Has {
                    cid: *cid.as_bytes(),
                },
                node.config.request_timeout,
            )
            .await
        {
            Ok(Message::Have(true)) => {
                pusher.get_or_insert(*h);
            }
            Ok(Message::Have(false)) => lacking.push(peer),
            _ => report.problems += 1,
        }
    }
    // A non-holder with the only reachable copy sends it too.
    if lacking.is_empty() || pusher.is_some_and(|p| p != node.id) {
        return Ok(());
    }
    let mut fanout =
        Fanout::open(lacking, || node.next_transfer(), node.config.stall_timeout).await;
    send_object(node, &cid, &mut fanout).await?;
    let commits = fanout.commit(entry, node.config.stall_timeout).await;
    report.pushed += commits.committed.len();
    report.problems += commits.failures.len();
    for (n, why) in commits.failures {
        debug!(%cid, to = ?n, %why, "repair could not place a replica");
    }
    // A holder has a newer store of the name: this entry is stale here.
    // Taking the newer one replaces it, and its object goes everywhere, so
    // the next pass does not push it again.
    if let Some(newer) = commits.newer
        && let Put::Replaced(old) = node.catalog.put(newer).await?
    {
        node.replace_old(old).await;
    }
    Ok(())
}

/// Streams the local object `cid` into `fanout`.
async fn send_object(node: &Node, cid: &Cid, fanout: &mut Fanout) -> Result<()> {
    let mut reader = node.store.read(cid).await?;
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
