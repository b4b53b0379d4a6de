// A small peer-to-peer layer: authenticated TCP connections between nodes,
// each carrying messages, request/response pairs and many flow-controlled
// streams at once. Built on nexnet-codec's frames. The crate docs are its
// README.
#![doc = include_str!("../README.md")]

mod config;
mod connection;
mod error;
mod handshake;
mod identity;
mod inbound;
mod limit;
mod stream;
mod transport;

pub use config::TransportConfig;
pub use connection::{Event, Message, Peer, Responder};
pub use error::{CloseReason, P2pError, Result};
pub use identity::{NetworkSecret, NodeId};
pub use nexnet_codec::{CodecError, FrameKind, ResetCode, StreamId};
pub use stream::{RecvStream, SendStream};
pub use transport::{Events, TcpTransport, Transport};
