//! The start of a connection from arbitrary bytes: `HandshakeCodec` for the
//! two handshake messages (hello, proof), then `FrameCodec` on what is left
//! in the same buffer, as `nexnet-p2p`'s handshake does with
//! `Framed::map_codec`.
//!
//! Input: `[split, stream...]`; `split` cuts the stream into the pieces a
//! socket might deliver (see `common::chunks`).
//!
//! Invariants:
//! - each message comes with exactly the bytes it was decoded from (what
//!   the transcript MAC covers): the magic, this version, a length that
//!   matches and is at most `MAX_HANDSHAKE_BODY`;
//! - a body is exactly one message (no trailing bytes), and the message
//!   re-encodes (`to_wire`) to at most as many bytes, the same when as many,
//!   which decode to the same message;
//! - errors are exactly a foreign magic (as soon as a byte differs), another
//!   version, an oversize length, or a body that is not one message;
//! - fed piece by piece, the codecs see the same messages, frames and error
//!   as with the whole input at once.
#![no_main]

mod common;

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use nexnet_codec::{
    CodecError, Frame, FrameCodec, Handshake, HandshakeCodec, MAGIC, MAX_HANDSHAKE_BODY,
    PROTOCOL_VERSION,
};
use tokio_util::codec::Decoder;

/// What a connection's first bytes decode to.
#[derive(Debug, Default, PartialEq)]
struct Decoded {
    messages: Vec<(Handshake, Vec<u8>)>,
    frames: Vec<Frame>,
    /// The first error, as text.
    error: Option<String>,
}

/// Checks one handshake decode result against the bytes it saw.
fn check_message(
    result: &Result<Option<(Handshake, Vec<u8>)>, CodecError>,
    seen: &[u8],
    consumed: usize,
) {
    match result {
        Ok(Some((message, wire))) => {
            assert_eq!(wire.len(), consumed);
            assert_eq!(&seen[..consumed], &wire[..]);
            assert_eq!(wire[..4], MAGIC);
            assert_eq!(wire[4..6], PROTOCOL_VERSION.to_be_bytes());
            let len = usize::from(u16::from_be_bytes([wire[6], wire[7]]));
            assert_eq!(len + 8, wire.len());
            assert!(len <= MAX_HANDSHAKE_BODY);
            let (_, rest) = postcard::take_from_bytes::<Handshake>(&wire[8..]).expect("it decoded");
            assert!(
                rest.is_empty(),
                "{} bytes after a handshake body",
                rest.len()
            );
            // Re-encoded: never longer (postcard accepts overlong varints,
            // harmless as the MAC covers the bytes sent), the same bytes
            // when as long, and the same message.
            let canonical = message.to_wire().expect("a decoded message encodes");
            assert!(canonical.len() <= wire.len());
            if canonical.len() == wire.len() {
                assert_eq!(&canonical, wire);
            }
            let mut again = BytesMut::from(&canonical[..]);
            let (decoded, _) = HandshakeCodec
                .decode(&mut again)
                .expect("the canonical form decodes")
                .expect("whole");
            assert_eq!(&decoded, message);
        }
        Ok(None) => {
            assert_eq!(consumed, 0);
            let n = seen.len().min(4);
            assert_eq!(seen[..n], MAGIC[..n]);
            if seen.len() >= 8 {
                assert_eq!(seen[4..6], PROTOCOL_VERSION.to_be_bytes());
                let len = usize::from(u16::from_be_bytes([seen[6], seen[7]]));
                assert!(len <= MAX_HANDSHAKE_BODY);
                assert!(seen.len() < 8 + len);
            }
        }
        Err(e) => match e {
            CodecError::BadMagic { found } => {
                let n = seen.len().min(4);
                assert_ne!(seen[..n], MAGIC[..n]);
                assert_eq!(found[..n], seen[..n]);
            }
            CodecError::UnsupportedVersion { found, .. } => {
                assert_eq!(seen[..4], MAGIC);
                assert_eq!(found.to_be_bytes()[..], seen[4..6]);
                assert_ne!(*found, PROTOCOL_VERSION);
            }
            CodecError::FrameTooLarge { len, .. } => {
                assert_eq!(seen[..4], MAGIC);
                assert!(*len as usize > MAX_HANDSHAKE_BODY);
            }
            CodecError::Decode { .. } => {
                let len = usize::from(u16::from_be_bytes([seen[6], seen[7]]));
                assert!(seen.len() >= 8 + len);
            }
            other => panic!("unexpected error {other:?}"),
        },
    }
}

/// An error as text, without what depends on how much was read: a foreign
/// magic is refused at the first wrong byte, whatever follows.
fn describe(e: &CodecError) -> String {
    match e {
        CodecError::BadMagic { .. } => "bad magic".into(),
        e => e.to_string(),
    }
}

/// Decodes `pieces` as a connection's first bytes: up to two handshake
/// messages, then frames with the default limit.
fn decode(pieces: &[&[u8]]) -> Decoded {
    let mut out = Decoded::default();
    let mut buf = BytesMut::new();
    let mut frames = FrameCodec::default();
    for piece in pieces {
        buf.put_slice(piece);
        loop {
            if out.messages.len() < 2 {
                let seen = buf.to_vec();
                let before = buf.len();
                let result = HandshakeCodec.decode(&mut buf);
                check_message(&result, &seen, before - buf.len());
                match result {
                    Ok(Some(message)) => out.messages.push(message),
                    Ok(None) => break,
                    Err(e) => {
                        out.error = Some(describe(&e));
                        return out;
                    }
                }
            } else {
                let seen = buf.to_vec();
                match frames.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        let mut wire = BytesMut::new();
                        frame.encode(&mut wire);
                        assert_eq!(&seen[..wire.len()], &wire[..]);
                        out.frames.push(frame);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        out.error = Some(e.to_string());
                        return out;
                    }
                }
            }
        }
    }
    // What the connection's end says about the bytes left.
    let eof = if out.messages.len() < 2 {
        HandshakeCodec.decode_eof(&mut buf).map(|m| m.is_some())
    } else {
        frames.decode_eof(&mut buf).map(|f| f.is_some())
    };
    match eof {
        Ok(more) => assert!(!more && buf.is_empty(), "an item only at EOF"),
        Err(CodecError::Truncated { buffered }) => {
            assert!(buffered > 0);
            out.error = Some(format!("truncated with {buffered} bytes"));
        }
        Err(e) => panic!("unexpected error at EOF: {e:?}"),
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let ([split], stream) = common::split_control::<1>(data);
    let whole = decode(&[stream]);
    let pieces = decode(&common::chunks(stream, split));
    assert_eq!(pieces, whole);
});
