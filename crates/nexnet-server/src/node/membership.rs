//! Who is in the mesh, kept up to date: a peer that connects is greeted
//! (tombstones, then member lists exchanged, so a node that joins through
//! one member meets them all), and a member that is lost is redialed with
//! back-off until it returns or has been gone for `forget_after`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use nexnet_p2p::{CloseReason, NodeId, Peer, Transport};
use tracing::{debug, info, warn};

use super::Node;
use crate::protocol::{MAX_LIST, MemberAddr, Message};

/// A connection opened (either side dialed).
pub(super) fn connected(node: &Arc<Node>, peer: Peer<Message>) {
    node.members.connected(&peer);
    publish_connected(node);
    let n = node.clone();
    node.spawn(async move { greet(&n, peer).await });
}

/// A connection closed: redial the member unless another connection to it
/// is open or someone redials it already.
pub(super) fn disconnected(node: &Arc<Node>, peer: NodeId, reason: &CloseReason) {
    debug!(?peer, %reason, "peer disconnected");
    let redial_addr = node.members.disconnected(peer);
    node.budget.forget(peer);
    publish_connected(node);
    if let Some(addr) = redial_addr
        && !node.shutdown.is_cancelled()
    {
        node.spawn(redial(node.clone(), Some(peer), addr));
    }
}

/// Answers a peer's member list with ours, and dials those it told us of.
pub(super) fn exchange(node: &Arc<Node>, heard: &[MemberAddr]) -> Message {
    dial_new(node, heard, false);
    Message::Members(member_addrs(node))
}

fn publish_connected(node: &Node) {
    let n = node.members.proven_peers();
    node.connected.send_replace(n);
}

/// A peer connected: hand it our tombstones, exchange member lists, and
/// let repair check whether it misses replicas.
async fn greet(node: &Arc<Node>, peer: Peer<Message>) {
    let tombstones: Vec<_> = node
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
    let asked = Message::Members(member_addrs(node));
    match peer.request(asked, node.config.request_timeout).await {
        Ok(Message::Members(heard)) => {
            // A member that proved itself vouches for the members it
            // lists (it lists only proven ones): placement counts them at
            // once, so a node that just started places as the others do.
            node.members.prove(peer.node_id());
            dial_new(node, &heard, true);
            publish_connected(node);
        }
        Ok(other) => {
            warn!(peer = ?peer.node_id(), kind = other.kind(), "unexpected answer to a member exchange")
        }
        Err(e) => debug!(peer = ?peer.node_id(), error = %e, "member exchange failed"),
    }
    node.repair_soon.notify_one();
}

/// This node and its members, as a peer exchange carries them.
fn member_addrs(node: &Node) -> Vec<MemberAddr> {
    let mut list = node.members.addrs();
    let me = MemberAddr {
        node: *node.id.as_bytes(),
        addr: node.local_addr(),
    };
    list.insert(0, me);
    list.truncate(MAX_LIST);
    list
}

/// Dials every member in `heard` we are not connected to.
fn dial_new(node: &Arc<Node>, heard: &[MemberAddr], vouched: bool) {
    for (member, addr) in node.members.learn(heard, vouched) {
        node.spawn(redial(node.clone(), Some(member), addr));
    }
}

/// Keeps dialing `addr` with exponential back-off and jitter until a
/// connection is up (to `target`, if known) or the node shuts down.
pub(super) async fn redial(node: Arc<Node>, target: Option<NodeId>, addr: SocketAddr) {
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
        tokio::select! {
            () = tokio::time::sleep(jittered(backoff)) => {}
            () = node.shutdown.cancelled() => break,
        }
        backoff = (backoff * 2).min(node.config.max_redial_backoff);
    }
    if let Some(t) = target {
        node.members.redial_done(t);
    }
}

/// 75% to 125% of `backoff`, so restarted nodes do not dial in step.
fn jittered(backoff: Duration) -> Duration {
    let mut r = [0u8; 1];
    let _ = nexnet_crypto::fill_random(&mut r);
    backoff.mul_f64(0.75 + f64::from(r[0]) / 510.0)
}
