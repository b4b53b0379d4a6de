//! Frames: what a connection carries after the handshake.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{CodecError, Result};

/// Bytes on the wire before a frame's payload: length (4), kind (1), stream (4).
pub const FRAME_HEADER_LEN: usize = 9;

/// The most payload a data frame may carry.
pub const MAX_DATA_PAYLOAD: usize = 64 * 1024;

/// Identifies a stream within one connection. The dialing side numbers its
/// streams odd, the accepting side even, so neither can collide with the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u32);

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a frame is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// A control message (postcard-encoded, see [`Control`](crate::Control)).
    Control = 0,
    /// Opens a stream; the payload is the control message that describes it.
    Open = 1,
    /// Bytes of a stream.
    Data = 2,
    /// The sender finished the stream cleanly.
    End = 3,
    /// The stream is aborted, with a [`ResetCode`].
    Reset = 4,
    /// The receiver grants the sender more bytes of the stream (u32).
    Credit = 5,
    /// Liveness probe (u64 nonce).
    Ping = 6,
    /// Answer to a ping (the same nonce).
    Pong = 7,
}

impl FrameKind {
    fn from_u8(kind: u8) -> Result<Self> {
        Ok(match kind {
            0 => Self::Control,
            1 => Self::Open,
            2 => Self::Data,
            3 => Self::End,
            4 => Self::Reset,
            5 => Self::Credit,
            6 => Self::Ping,
            7 => Self::Pong,
            kind => return Err(CodecError::UnknownKind { kind }),
        })
    }

    /// The kind's name, for errors and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Control => "control",
            Self::Open => "open",
            Self::Data => "data",
            Self::End => "end",
            Self::Reset => "reset",
            Self::Credit => "credit",
            Self::Ping => "ping",
            Self::Pong => "pong",
        }
    }
}

/// Why a stream was reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetCode {
    /// The sender gave up (its writer was dropped before finishing).
    Cancelled,
    /// The receiver does not want the rest.
    Refused,
    /// The peer broke the stream's rules (sent past its credit, say).
    ProtocolError,
    /// The node is shutting down.
    Shutdown,
    /// The receiver cannot keep what it is sent: its disk is full.
    StorageFull,
    /// A code this version does not know.
    Other(u32),
}

impl ResetCode {
    /// The code's wire value.
    pub const fn to_u32(self) -> u32 {
        match self {
            Self::Cancelled => 1,
            Self::Refused => 2,
            Self::ProtocolError => 3,
            Self::Shutdown => 4,
            Self::StorageFull => 5,
            Self::Other(code) => code,
        }
    }

    /// The code for a wire value.
    pub const fn from_u32(code: u32) -> Self {
        match code {
            1 => Self::Cancelled,
            2 => Self::Refused,
            3 => Self::ProtocolError,
            4 => Self::Shutdown,
            5 => Self::StorageFull,
            code => Self::Other(code),
        }
    }
}

impl fmt::Display for ResetCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cancelled => f.write_str("cancelled by the sender"),
            Self::Refused => f.write_str("refused by the receiver"),
            Self::ProtocolError => f.write_str("protocol error"),
            Self::Shutdown => f.write_str("node shutting down"),
            Self::StorageFull => f.write_str("the receiver's disk is full"),
            Self::Other(code) => write!(f, "code {code}"),
        }
    }
}

/// One frame: `len (u32, big-endian) | kind (u8) | stream id (u32) | payload`,
/// where `len` counts the kind, the stream id and the payload.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the frame is for.
    pub kind: FrameKind,
    /// The stream it belongs to (0 for connection-wide frames).
    pub stream: StreamId,
    /// The payload, whose meaning depends on `kind`.
    pub payload: Bytes,
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Payloads can be 64 KiB of file data: show the size, not the bytes.
        f.debug_struct("Frame")
            .field("kind", &self.kind)
            .field("stream", &self.stream.0)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

const CONNECTION: StreamId = StreamId(0);

impl Frame {
    /// A control message, already encoded.
    pub fn control(payload: Bytes) -> Self {
        Self {
            kind: FrameKind::Control,
            stream: CONNECTION,
            payload,
        }
    }

    /// Opens `stream`, described by an encoded control message.
    pub fn open(stream: StreamId, payload: Bytes) -> Self {
        Self {
            kind: FrameKind::Open,
            stream,
            payload,
        }
    }

    /// Bytes of `stream` (at most [`MAX_DATA_PAYLOAD`]).
    pub fn data(stream: StreamId, payload: Bytes) -> Self {
        Self {
            kind: FrameKind::Data,
            stream,
            payload,
        }
    }

    /// The clean end of `stream`.
    pub fn end(stream: StreamId) -> Self {
        Self {
            kind: FrameKind::End,
            stream,
            payload: Bytes::new(),
        }
    }

    /// Aborts `stream`.
    pub fn reset(stream: StreamId, code: ResetCode) -> Self {
        Self {
            kind: FrameKind::Reset,
            stream,
            payload: Bytes::copy_from_slice(&code.to_u32().to_be_bytes()),
        }
    }

    /// Grants `bytes` more of `stream` to the sender.
    pub fn credit(stream: StreamId, bytes: u32) -> Self {
        Self {
            kind: FrameKind::Credit,
            stream,
            payload: Bytes::copy_from_slice(&bytes.to_be_bytes()),
        }
    }

    /// A liveness probe.
    pub fn ping(nonce: u64) -> Self {
        Self {
            kind: FrameKind::Ping,
            stream: CONNECTION,
            payload: Bytes::copy_from_slice(&nonce.to_be_bytes()),
        }
    }

    /// The answer to a ping.
    pub fn pong(nonce: u64) -> Self {
        Self {
            kind: FrameKind::Pong,
            stream: CONNECTION,
            payload: Bytes::copy_from_slice(&nonce.to_be_bytes()),
        }
    }

    /// The bytes a credit frame grants.
    pub fn credit_amount(&self) -> Result<u32> {
        self.fixed::<4>().map(u32::from_be_bytes)
    }

    /// The code a reset frame carries.
    pub fn reset_code(&self) -> Result<ResetCode> {
        self.fixed::<4>()
            .map(|b| ResetCode::from_u32(u32::from_be_bytes(b)))
    }

    /// The nonce of a ping or pong.
    pub fn nonce(&self) -> Result<u64> {
        self.fixed::<8>().map(u64::from_be_bytes)
    }

    fn fixed<const N: usize>(&self) -> Result<[u8; N]> {
        self.payload
            .as_ref()
            .try_into()
            .map_err(|_| CodecError::BadPayload {
                kind: self.kind.name(),
                reason: "wrong payload length",
            })
    }

    /// Encoded length of this frame, prefix included.
    pub fn wire_len(&self) -> usize {
        FRAME_HEADER_LEN + self.payload.len()
    }

    /// Checks whether `src` starts with a whole frame, without allocating or
    /// parsing its payload: `Ok(Some(len))` gives the frame's total length,
    /// `Ok(None)` asks for more bytes.
    pub fn check(src: &[u8], max_payload: usize) -> Result<Option<usize>> {
        let Some(prefix) = src.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if (len as usize) < FRAME_HEADER_LEN - 4 {
            return Err(CodecError::FrameTooShort { len });
        }
        let payload = len as usize - (FRAME_HEADER_LEN - 4);
        if payload > max_payload {
            return Err(CodecError::FrameTooLarge {
                len: u64::from(len),
                max: (max_payload + FRAME_HEADER_LEN - 4) as u64,
            });
        }
        if let Some(&kind) = src.get(4) {
            FrameKind::from_u8(kind)?;
        }
        let total = 4 + len as usize;
        Ok((src.len() >= total).then_some(total))
    }

    /// Takes one whole frame of `total` bytes (as [`check`](Self::check)
    /// reported) off the front of `src`, without copying its payload.
    pub fn parse(src: &mut BytesMut, total: usize) -> Result<Self> {
        let mut frame = src.split_to(total);
        frame.advance(4);
        let kind = FrameKind::from_u8(frame.get_u8())?;
        let stream = StreamId(frame.get_u32());
        Ok(Self {
            kind,
            stream,
            payload: frame.freeze(),
        })
    }

    /// The 9 bytes that precede the payload on the wire: with the payload
    /// written after them (a vectored write, say), the frame is complete.
    pub fn header(&self) -> [u8; FRAME_HEADER_LEN] {
        // The payload limit keeps this far below u32::MAX (see FrameCodec).
        let len = (FRAME_HEADER_LEN - 4 + self.payload.len()) as u32;
        let mut out = [0u8; FRAME_HEADER_LEN];
        out[..4].copy_from_slice(&len.to_be_bytes());
        out[4] = self.kind as u8;
        out[5..].copy_from_slice(&self.stream.0.to_be_bytes());
        out
    }

    /// Appends the encoded frame to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(self.wire_len());
        dst.put_slice(&self.header());
        dst.put_slice(&self.payload);
    }
}
