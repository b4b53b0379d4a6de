//! Repair: bring every object back to R verified copies.
//!
//! A pass walks the catalog. For each object it holds, a node checks its
//! copy (on the periodic pass), asks the other holders placement names
//! whether they have it, and, if it is the first holder in placement order
//! that has a copy, sends it to the holders that lack it. A holder without
//! a good copy fetches one. The periodic pass verifies every local object;
//! the pass that runs when a peer connects only checks who has what.
//! Objects of deleted files have no catalog entry and are not repaired;
//! the start-up sweep removes any a crash left behind.

use std::sync::Arc;

use nexnet_p2p::Peer;
use tracing::{Instrument, debug, info, info_span, warn};

use super::{Node, is_corruption};
use crate::{
    CatalogEntry, RepairReport, Result, catalog::Put, placement, protocol::Message,
    transfer::Fanout,
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
        if report.quarantined + report.fetched + report.pushed + report.problems > 0 {
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
    for entry in node.catalog.entries() {
        if node.shutdown.is_cancelled() {
            break;
        }
        report.checked += 1;
        if let Err(e) = repair_one(node, &entry, verify, &mut report).await {
            report.problems += 1;
            debug!(cid = %entry.cid(), error = %e, "repair of an object failed");
        }
    }
    report
}

async fn repair_one(
    node: &Arc<Node>,
    entry: &CatalogEntry,
    verify: bool,
    report: &mut RepairReport,
) -> Result<()> {
    let cid = entry.cid();
    if node.catalog.is_deleted(&cid) {
        return Ok(());
    }
    let holders = placement::holders(&cid, node.all_nodes(), node.config.replication);
    let mut local = node.store.has(&cid).await?;
    if local
        && verify
        && let Err(e) = node.store.verify(&cid).await
    {
        if !is_corruption(&e) {
            return Err(e.into());
        }
        warn!(%cid, "local copy failed verification; quarantined");
        report.quarantined += 1;
        local = false;
    }
    if !local {
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
    node.send_object(&cid, &mut fanout).await?;
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
