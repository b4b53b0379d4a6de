//! The one error type of this crate.

use std::{io, net::SocketAddr, time::Duration};

use nexnet_codec::CodecError;

use crate::NodeId;

/// What can go wrong between two nodes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum P2pError {
    /// Binding, dialing or another socket operation failed.
    #[error("{op} {addr}: {source}")]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The address concerned.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The peer's bytes broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] CodecError),

    /// The handshake did not finish in time.
    #[error("handshake with {addr} timed out after {after:?}")]
    HandshakeTimeout {
        /// The peer's address.
        addr: SocketAddr,
        /// The time-out.
        after: Duration,
    },

    /// The peer could not prove it knows the network secret.
    #[error("peer {addr} failed to prove the network secret")]
    WrongSecret {
        /// The peer's address.
        addr: SocketAddr,
    },

    /// The handshake reached ourselves.
    #[error("refusing a connection to ourselves ({addr})")]
    SelfConnection {
        /// The address dialed or accepted.
        addr: SocketAddr,
    },

    /// The handshake went wrong in another way.
    #[error("handshake with {addr} failed: {reason}")]
    Handshake {
        /// The peer's address.
        addr: SocketAddr,
        /// What went wrong.
        reason: &'static str,
    },

    /// The transport holds as many connections as it may.
    #[error("connection limit of {limit} reached")]
    TooManyConnections {
        /// The configured limit.
        limit: usize,
    },

    /// A request got no response in time.
    #[error("request to {peer} timed out after {after:?}")]
    Timeout {
        /// The peer asked.
        peer: NodeId,
        /// The time-out.
        after: Duration,
    },

    /// The connection to the peer is closed.
    #[error("connection to {peer} closed: {reason}")]
    Disconnected {
        /// The peer.
        peer: NodeId,
        /// Why it closed.
        reason: String,
    },

    /// The operating system's random number generator failed.
    #[error("OS random number generator failed: {0}")]
    Rng(String),

    /// Every stream id of this connection has been used.
    #[error("connection to {peer} has used all its stream ids; reconnect")]
    StreamIdsExhausted {
        /// The peer.
        peer: NodeId,
    },

    /// The transport is shut down.
    #[error("transport is shut down")]
    Shutdown,
}

/// Result alias for this crate.
pub type Result<T, E = P2pError> = std::result::Result<T, E>;
