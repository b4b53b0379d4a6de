// nexnet's wire format, independent of any transport: frames with a cheap
// `check` before `parse`, a tokio-util codec for them, postcard control
// messages generic over the application's message type, and the handshake
// encoding. The crate docs are its README.
#![doc = include_str!("../README.md")]

mod codec;
mod control;
mod error;
mod frame;
mod handshake;

pub use codec::FrameCodec;
pub use control::{Control, decode_message, encode_message};
pub use error::{CodecError, Result};
pub use frame::{FRAME_HEADER_LEN, Frame, FrameKind, MAX_DATA_PAYLOAD, ResetCode, StreamId};
pub use handshake::{
    Handshake, HandshakeCodec, Hello, MAGIC, MAX_HANDSHAKE_BODY, PROTOCOL_VERSION, Proof,
};
