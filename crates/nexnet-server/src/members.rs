//! Who is in the mesh: every node this one has heard of, whether it is
//! connected now, when it was last seen, and whether it has shown it is a
//! node (answered a member exchange), which is what placement counts.

use std::{collections::HashMap, net::SocketAddr, time::SystemTime};

use nexnet_p2p::{NodeId, Peer};
use parking_lot::{Mutex, MutexGuard};

use crate::protocol::{MAX_LIST, MemberAddr, Message};

/// One member as [`FileServer::members`](crate::FileServer::members) shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberInfo {
    /// Its node id.
    pub node_id: NodeId,
    /// Where it accepts peers, if known.
    pub addr: Option<SocketAddr>,
    /// Whether a connection to it is open now.
    pub connected: bool,
    /// When a connection to it was last open (or it was first heard of).
    pub last_seen: SystemTime,
    /// Whether it answered a member exchange, so that placement counts it.
    pub proven: bool,
}

struct Member {
    addr: Option<SocketAddr>,
    last_seen: SystemTime,
    peer: Option<Peer<Message>>,
    redialing: bool,
    /// It answered a member exchange: a node, not a connection that
    /// completed the handshake and went (those never hold anything).
    proven: bool,
}

impl Member {
    fn live_peer(&self) -> Option<&Peer<Message>> {
        self.peer.as_ref().filter(|p| !p.is_closed())
    }
}

/// Where `peer` can be dialed: the address it advertised, except that a
/// node listening on all interfaces (0.0.0.0 or ::) advertises an address
/// nobody can dial; the address its connection came from is used instead.
fn dialable(peer: &Peer<Message>) -> Option<SocketAddr> {
    let mut addr = peer.listen_addr()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(peer.remote_addr().ip());
    }
    Some(addr)
}

/// The member list (see the module docs).
pub(crate) struct Members {
    local: NodeId,
    map: Mutex<HashMap<NodeId, Member>>,
}

impl Members {
    pub(crate) fn new(local: NodeId) -> Self {
        Self {
            local,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<NodeId, Member>> {
        self.map.lock()
    }

    /// A connection to `peer` opened (either side dialed).
    pub(crate) fn connected(&self, peer: &Peer<Message>) {
        let mut map = self.map();
        let m = map.entry(peer.node_id()).or_insert(Member {
            addr: None,
            last_seen: SystemTime::now(),
            peer: None,
            redialing: false,
            proven: false,
        });
        m.addr = dialable(peer).or(m.addr);
        m.last_seen = SystemTime::now();
        m.peer = Some(peer.clone());
    }

    /// A connection to `node` closed. Returns its address if it is now
    /// unreachable and nobody is redialing it yet (the caller does).
    pub(crate) fn disconnected(&self, node: NodeId) -> Option<SocketAddr> {
        let mut map = self.map();
        let m = map.get_mut(&node)?;
        if m.live_peer().is_some() {
            // Another connection to it is still open.
            return None;
        }
        m.peer = None;
        m.last_seen = SystemTime::now();
        if m.redialing {
            return None;
        }
        m.redialing = true;
        m.addr
    }

    /// Forgets `node` if it is still unreachable and was last seen more
    /// than `after` ago; returns whether it did.
    pub(crate) fn forget_if_gone(&self, node: NodeId, after: std::time::Duration) -> bool {
        let mut map = self.map();
        let gone = map.get(&node).is_some_and(|m| {
            m.live_peer().is_none() && m.last_seen.elapsed().is_ok_and(|since| since > after)
        });
        if gone {
            map.remove(&node);
        }
        gone
    }

    /// Redialing `node` stopped (it is connected, or we are shutting down).
    pub(crate) fn redial_done(&self, node: NodeId) {
        if let Some(m) = self.map().get_mut(&node) {
            m.redialing = false;
        }
    }

    /// Whether `node` is connected now.
    pub(crate) fn is_connected(&self, node: &NodeId) -> bool {
        self.map()
            .get(node)
            .is_some_and(|m| m.live_peer().is_some())
    }

    /// Adds the members a peer told us of, proven if the peer `vouched`
    /// for them (it proved itself, and lists only proven members). Returns
    /// the ones to dial (new, or known but neither connected nor being
    /// redialed).
    pub(crate) fn learn(&self, heard: &[MemberAddr], vouched: bool) -> Vec<(NodeId, SocketAddr)> {
        let mut map = self.map();
        let mut dial = Vec::new();
        for h in heard.iter().take(MAX_LIST) {
            let node = NodeId::from_bytes(h.node);
            if node == self.local {
                continue;
            }
            let m = map.entry(node).or_insert(Member {
                addr: Some(h.addr),
                last_seen: SystemTime::now(),
                peer: None,
                redialing: false,
                proven: false,
            });
            m.proven |= vouched;
            if m.live_peer().is_none() && !m.redialing {
                m.addr = Some(h.addr);
                m.redialing = true;
                dial.push((node, h.addr));
            }
        }
        dial
    }

    /// The open connection to `node`.
    pub(crate) fn peer(&self, node: &NodeId) -> Option<Peer<Message>> {
        self.map().get(node).and_then(|m| m.live_peer().cloned())
    }

    /// Every open connection, one per member.
    pub(crate) fn peers(&self) -> Vec<Peer<Message>> {
        self.map()
            .values()
            .filter_map(|m| m.live_peer().cloned())
            .collect()
    }

    /// `node` answered a member exchange: placement counts it from now on
    /// (until it is forgotten).
    pub(crate) fn prove(&self, node: NodeId) {
        if let Some(m) = self.map().get_mut(&node) {
            m.proven = true;
        }
    }

    /// How many proven members are connected now.
    pub(crate) fn proven_peers(&self) -> usize {
        self.map()
            .values()
            .filter(|m| m.proven && m.live_peer().is_some())
            .count()
    }

    /// Every proven member, connected or not: what placement counts (the
    /// ones that are down keep their place: their objects wait for them).
    /// A peer that completed the handshake and never answered a member
    /// exchange is not one.
    pub(crate) fn ids(&self) -> Vec<NodeId> {
        self.map()
            .iter()
            .filter(|(_, m)| m.proven)
            .map(|(n, _)| *n)
            .collect()
    }

    /// The proven members and their addresses, to tell a peer about.
    pub(crate) fn addrs(&self) -> Vec<MemberAddr> {
        self.map()
            .iter()
            .filter(|(_, m)| m.proven)
            .filter_map(|(n, m)| {
                m.addr.map(|addr| MemberAddr {
                    node: *n.as_bytes(),
                    addr,
                })
            })
            .take(MAX_LIST)
            .collect()
    }

    /// A snapshot for callers.
    pub(crate) fn snapshot(&self) -> Vec<MemberInfo> {
        let mut list: Vec<MemberInfo> = self
            .map()
            .iter()
            .map(|(n, m)| MemberInfo {
                node_id: *n,
                addr: m.addr,
                connected: m.live_peer().is_some(),
                last_seen: m.last_seen,
                proven: m.proven,
            })
            .collect();
        list.sort_by_key(|m| m.node_id);
        list
    }
}
