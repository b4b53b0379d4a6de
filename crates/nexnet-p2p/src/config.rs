//! How a transport behaves.

use std::{net::SocketAddr, time::Duration};

use crate::{NetworkSecret, NodeId};

/// Settings of a transport. `TransportConfig::new` gives sensible defaults;
/// change fields as needed.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TransportConfig {
    /// This node's id.
    pub node_id: NodeId,
    /// The network's shared secret.
    pub secret: NetworkSecret,
    /// The address peers should dial (default: the bound address).
    pub advertise: Option<SocketAddr>,
    /// Most connections at once, in and out (default 256).
    pub max_connections: usize,
    /// Most incoming handshakes in progress at once (default 64). Peers
    /// take a connection slot only once they have proved the secret, so
    /// strangers cannot crowd out members.
    pub max_handshakes: usize,
    /// Time allowed for connecting and the handshake (default 5 s).
    pub handshake_timeout: Duration,
    /// How often a connection is pinged (default 5 s).
    pub heartbeat_interval: Duration,
    /// Intervals without any frame from the peer before it is dropped (default 3).
    pub heartbeat_misses: u32,
    /// Bytes a peer may send on one of our streams before we grant more
    /// (default 1 MiB): what a stream costs us in memory at most.
    pub stream_window: u32,
    /// Largest frame payload accepted (default 1 MiB).
    pub max_payload: usize,
    /// Most streams a peer may have open towards us at once (default 64);
    /// more are refused with a reset. With `stream_window`, this bounds what
    /// one connection's streams can hold: 64 MiB by default.
    pub max_streams: usize,
    /// Events buffered for the application before connections wait (default 1024).
    pub event_capacity: usize,
    /// Most requests in flight on one connection in each direction (default
    /// 256). Ours wait for a slot before they are sent; a peer with this
    /// many requests unanswered is not read from until we answer one, so a
    /// flood of requests costs us a bounded amount of work and memory.
    pub max_pending_requests: usize,
    /// Messages, requests and stream openings a peer may send us per second
    /// (default 10,000, with bursts of as many). Past it the connection is
    /// read only as fast as the rate allows: a flooding peer slows itself
    /// down, not us. Zero means no limit.
    pub message_rate: u32,
}

impl TransportConfig {
    /// Defaults for a node with this id and secret.
    pub fn new(node_id: NodeId, secret: NetworkSecret) -> Self {
        Self {
            node_id,
            secret,
            advertise: None,
            max_connections: 256,
            max_handshakes: 64,
            handshake_timeout: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_misses: 3,
            stream_window: 1 << 20,
            max_payload: 1 << 20,
            max_streams: 64,
            event_capacity: 1024,
            max_pending_requests: 256,
            message_rate: 10_000,
        }
    }
}
