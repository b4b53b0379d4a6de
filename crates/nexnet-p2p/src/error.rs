//! The one error type of this crate, and why a connection closes.

use std::{fmt, io, net::SocketAddr, sync::Arc, time::Duration};

use nexnet_codec::{CodecError, FrameKind, StreamId};
use tokio::task::JoinError;

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
        reason: CloseReason,
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

/// Why a connection closed: the `reason` of
/// [`Event::Disconnected`](crate::Event::Disconnected) and of
/// [`P2pError::Disconnected`]. Match on it; its `Display` is for logs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed the connection between two frames.
    PeerClosed,

    /// Reading from the socket failed.
    Read(Arc<io::Error>),

    /// Writing to the socket failed.
    Write(Arc<io::Error>),

    /// The peer's bytes broke the codec: a frame too large, too short,
    /// truncated or of an unknown kind, or a payload that does not decode.
    Codec(Arc<CodecError>),

    /// The peer opened a stream whose id is not its to use (wrong parity)
    /// or not above the last one it opened.
    OpenedOutOfTurn {
        /// The id of the open frame.
        stream: StreamId,
        /// The highest id the peer had opened before (0 if none).
        highest: StreamId,
    },

    /// The peer sent a data or end frame for a stream that was never opened.
    UnknownStream {
        /// The stream the frame named.
        stream: StreamId,
        /// The frame's kind.
        kind: FrameKind,
    },

    /// The peer reset more streams it had not opened yet than we keep
    /// track of.
    TooManyEarlyResets {
        /// How many such resets a peer may have outstanding.
        limit: usize,
    },

    /// A data frame larger than the protocol allows.
    DataTooLarge {
        /// The stream it was for.
        stream: StreamId,
        /// The payload's length.
        len: usize,
        /// The largest data payload allowed.
        max: usize,
    },

    /// The peer sent more on a stream than the credit we granted it.
    CreditExceeded {
        /// The stream concerned.
        stream: StreamId,
        /// Bytes received on it and not yet credited back.
        sent: u64,
        /// Our receive window: the most it may have in flight.
        window: u32,
    },

    /// No frame from the peer (not even a pong) for `misses` heartbeat
    /// intervals.
    Silent {
        /// How long the peer had been silent.
        silent: Duration,
        /// The heartbeat interval.
        interval: Duration,
        /// How many intervals of silence are allowed.
        misses: u32,
    },

    /// A write to the peer made no progress: it has stopped reading.
    WriteStalled {
        /// How long the write waited.
        after: Duration,
    },

    /// This side closed the connection ([`Peer::close`](crate::Peer::close)).
    LocalClose,

    /// The transport was shut down ([`Transport::close`](crate::Transport::close)).
    Shutdown,

    /// The connection's reader or writer task failed (it panicked).
    TaskFailed(Arc<JoinError>),

    /// The semaphore bounding the peer's requests in flight was closed
    /// (it never is: this would be a bug of this crate).
    RequestSlotsClosed,

    /// The connection is closing and why is not known yet: a call raced the
    /// connection's end. [`Event::Disconnected`](crate::Event::Disconnected)
    /// carries the reason.
    Closing,
}

impl CloseReason {
    /// Why a frame stream ended with `error`: an I/O error while reading,
    /// else bytes that break the codec.
    pub(crate) fn read(error: CodecError) -> Self {
        match error {
            CodecError::Io(e) => Self::Read(Arc::new(e)),
            other => Self::codec(other),
        }
    }

    pub(crate) fn codec(error: CodecError) -> Self {
        Self::Codec(Arc::new(error))
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PeerClosed => f.write_str("the peer closed the connection"),
            Self::Read(e) => write!(f, "read failed: {e}"),
            Self::Write(e) => write!(f, "write failed: {e}"),
            Self::Codec(e) => write!(f, "protocol error: {e}"),
            Self::OpenedOutOfTurn { stream, .. } => {
                write!(f, "peer opened stream {stream} out of turn")
            }
            Self::UnknownStream { stream, kind } => write!(
                f,
                "{} frame for stream {stream}, which was never opened",
                kind.name()
            ),
            Self::TooManyEarlyResets { .. } => {
                f.write_str("too many resets for streams never opened")
            }
            Self::DataTooLarge { stream, len, max } => write!(
                f,
                "data frame of {len} bytes on stream {stream}, above {max}"
            ),
            Self::CreditExceeded {
                stream,
                sent,
                window,
            } => write!(
                f,
                "peer sent {sent} bytes on stream {stream}, past its credit of {window}"
            ),
            Self::Silent { silent, .. } => write!(f, "no frame from the peer for {silent:?}"),
            Self::WriteStalled { after } => write!(f, "the peer has not read for {after:?}"),
            Self::LocalClose => f.write_str("closed locally"),
            Self::Shutdown => f.write_str("transport shut down"),
            Self::TaskFailed(e) => write!(f, "connection task failed: {e}"),
            Self::RequestSlotsClosed => f.write_str("request slots closed"),
            Self::Closing => f.write_str("closed"),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = P2pError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_read_as_the_old_strings() {
        fn shared<T: Send + Sync + Clone + 'static>() {}
        fn send_sync<T: Send + Sync + 'static>() {}
        shared::<CloseReason>();
        send_sync::<P2pError>();
        let cases = [
            (CloseReason::PeerClosed, "the peer closed the connection"),
            (
                CloseReason::OpenedOutOfTurn {
                    stream: StreamId(4),
                    highest: StreamId(6),
                },
                "peer opened stream 4 out of turn",
            ),
            (
                CloseReason::UnknownStream {
                    stream: StreamId(3),
                    kind: FrameKind::Data,
                },
                "data frame for stream 3, which was never opened",
            ),
            (
                CloseReason::CreditExceeded {
                    stream: StreamId(1),
                    sent: 11,
                    window: 10,
                },
                "peer sent 11 bytes on stream 1, past its credit of 10",
            ),
            (
                CloseReason::WriteStalled {
                    after: Duration::from_secs(15),
                },
                "the peer has not read for 15s",
            ),
            (
                CloseReason::read(CodecError::Truncated { buffered: 3 }),
                "protocol error: connection closed in the middle of a frame (3 bytes buffered)",
            ),
            (
                CloseReason::read(CodecError::Io(io::ErrorKind::ConnectionReset.into())),
                "read failed: connection reset",
            ),
            (CloseReason::LocalClose, "closed locally"),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text, "{reason:?}");
        }
    }
}
