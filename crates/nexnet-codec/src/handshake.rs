//! The handshake's encoding: what two nodes say before any frame.
//!
//! Each handshake message is `magic "NXNT" | version (u16) | length (u16) |
//! postcard body`. Magic and version come first and in the clear, so a
//! stranger or a node of another version is refused after six bytes.

use std::net::SocketAddr;

use bytes::{Buf, BufMut, BytesMut};
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Decoder, Encoder};

use crate::{CodecError, Result};

/// The first bytes of every nexnet connection.
pub const MAGIC: [u8; 4] = *b"NXNT";

/// The protocol version this build speaks. Version 2 made files chunks
/// listed by manifests; version 3 made tombstones end versions of a name.
/// A node of another version cannot take part.
pub const PROTOCOL_VERSION: u16 = 3;

/// The most a handshake message body may hold.
pub const MAX_HANDSHAKE_BODY: usize = 1024;

const PREFIX_LEN: usize = 8;

/// The first message each side sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's node id.
    pub node_id: [u8; 32],
    /// Where the sender accepts connections (None for a node that only dials).
    pub listen_addr: Option<SocketAddr>,
    /// A fresh random challenge for the other side's proof.
    pub nonce: [u8; 32],
    /// The largest frame payload the sender accepts.
    pub max_payload: u32,
    /// The credit each new stream starts with: bytes the sender of a stream
    /// may send before its receiver grants more.
    pub stream_window: u32,
}

/// The second message: proof that the sender knows the network secret,
/// bound to both hellos.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// A MAC over the transcript, keyed by the network secret.
    pub mac: [u8; 32],
}

/// A handshake message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Handshake {
    /// The opening message.
    Hello(Hello),
    /// The proof of the secret.
    Proof(Proof),
}

impl Handshake {
    /// The message's exact wire bytes (what a transcript MAC covers).
    pub fn to_wire(&self) -> Result<Vec<u8>> {
        let body = postcard::to_allocvec(self).map_err(|source| CodecError::Encode {
            what: "handshake",
            source,
        })?;
        if body.len() > MAX_HANDSHAKE_BODY {
            return Err(CodecError::FrameTooLarge {
                len: body.len() as u64,
                max: MAX_HANDSHAKE_BODY as u64,
            });
        }
        let mut out = Vec::with_capacity(PREFIX_LEN + body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        // Bounded by MAX_HANDSHAKE_BODY just above.
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }
}

/// Decodes handshake messages; yields each with its exact wire bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct HandshakeCodec;

impl Decoder for HandshakeCodec {
    type Item = (Handshake, Vec<u8>);
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>> {
        // Refuse a stranger as early as its first wrong byte.
        let seen = src.len().min(4);
        if src[..seen] != MAGIC[..seen] {
            let mut found = [0u8; 4];
            found[..seen].copy_from_slice(&src[..seen]);
            return Err(CodecError::BadMagic { found });
        }
        if src.len() < PREFIX_LEN {
            return Ok(None);
        }
        let version = u16::from_be_bytes([src[4], src[5]]);
        if version != PROTOCOL_VERSION {
            return Err(CodecError::UnsupportedVersion {
                found: version,
                supported: PROTOCOL_VERSION,
            });
        }
        let len = usize::from(u16::from_be_bytes([src[6], src[7]]));
        if len > MAX_HANDSHAKE_BODY {
            return Err(CodecError::FrameTooLarge {
                len: len as u64,
                max: MAX_HANDSHAKE_BODY as u64,
            });
        }
        if src.len() < PREFIX_LEN + len {
            return Ok(None);
        }
        let wire = src.split_to(PREFIX_LEN + len);
        let decode_err = |source| CodecError::Decode {
            what: "handshake",
            source,
        };
        // The body is exactly one message: nothing may trail it.
        let (message, rest) = postcard::take_from_bytes(&wire[PREFIX_LEN..]).map_err(decode_err)?;
        if !rest.is_empty() {
            return Err(decode_err(postcard::Error::DeserializeBadEncoding));
        }
        Ok(Some((message, wire.to_vec())))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>> {
        match self.decode(src)? {
            Some(item) => Ok(Some(item)),
            None if src.is_empty() => Ok(None),
            None => Err(CodecError::Truncated {
                buffered: src.remaining(),
            }),
        }
    }
}

impl Encoder<&Handshake> for HandshakeCodec {
    type Error = CodecError;

    fn encode(&mut self, message: &Handshake, dst: &mut BytesMut) -> Result<()> {
        dst.put_slice(&message.to_wire()?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Handshake {
        Handshake::Hello(Hello {
            node_id: [1; 32],
            listen_addr: Some("127.0.0.1:3000".parse().unwrap()),
            nonce: [2; 32],
            max_payload: 1 << 20,
            stream_window: 1 << 20,
        })
    }

    #[test]
    fn round_trip_with_wire_bytes() {
        let wire = hello().to_wire().unwrap();
        let mut buf = BytesMut::from(&wire[..]);
        let (msg, got_wire) = HandshakeCodec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(msg, hello());
        assert_eq!(got_wire, wire);
    }

    #[test]
    fn strangers_and_other_versions_are_refused_early() {
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        assert!(matches!(
            HandshakeCodec.decode(&mut buf),
            Err(CodecError::BadMagic { .. })
        ));
        // Even a single wrong first byte is enough.
        let mut buf = BytesMut::from(&b"X"[..]);
        assert!(HandshakeCodec.decode(&mut buf).is_err());

        let mut wire = hello().to_wire().unwrap();
        wire[5] = 99;
        let mut buf = BytesMut::from(&wire[..]);
        assert!(matches!(
            HandshakeCodec.decode(&mut buf),
            Err(CodecError::UnsupportedVersion {
                found: 99,
                supported: PROTOCOL_VERSION
            })
        ));
        // A node of an earlier release is told to upgrade.
        wire[5] = 2;
        let mut buf = BytesMut::from(&wire[..]);
        let old = HandshakeCodec.decode(&mut buf).unwrap_err();
        assert!(
            old.to_string().contains("the peer must be upgraded"),
            "{old}"
        );

        let mut wire = b"NXNT".to_vec();
        wire.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        wire.extend_from_slice(b"\xff\xff");
        let mut buf = BytesMut::from(&wire[..]);
        assert!(matches!(
            HandshakeCodec.decode(&mut buf),
            Err(CodecError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn bytes_after_the_message_in_a_body_are_refused() {
        // Found by the `handshake` fuzz target: the body's length counted
        // bytes that the message did not use, and they were ignored.
        let mut wire = hello().to_wire().unwrap();
        wire.extend_from_slice(b"junk");
        let len = u16::from_be_bytes([wire[6], wire[7]]) + 4;
        wire[6..8].copy_from_slice(&len.to_be_bytes());
        let mut buf = BytesMut::from(&wire[..]);
        assert!(matches!(
            HandshakeCodec.decode(&mut buf),
            Err(CodecError::Decode {
                what: "handshake",
                ..
            })
        ));
    }

    #[test]
    fn truncated_handshake_at_eof_is_an_error() {
        let wire = hello().to_wire().unwrap();
        let mut buf = BytesMut::from(&wire[..wire.len() - 3]);
        assert!(HandshakeCodec.decode(&mut buf).unwrap().is_none());
        assert!(matches!(
            HandshakeCodec.decode_eof(&mut buf),
            Err(CodecError::Truncated { .. })
        ));
    }
}
