//! Frames from arbitrary bytes: `Frame::check` + `Frame::parse` on the whole
//! input, and `FrameCodec` on the same bytes cut into arbitrary pieces.
//!
//! Input: `[limit, split, stream...]`. `limit` picks the payload limit,
//! `split` how the stream is cut (see `common::chunks`).
//!
//! Invariants:
//! - `check` answers `Some(total)` only for a whole frame within the limit,
//!   `None` only when the announced frame is valid so far but incomplete,
//!   and its errors are exactly the short, oversize and unknown-kind cases;
//! - a parsed frame re-encodes to exactly the bytes it was parsed from, and
//!   its fixed-size payload accessors succeed exactly on the right length;
//! - the codec, fed piece by piece, yields the same frames and the same
//!   error (or the same truncation at EOF) as the whole-buffer decode, and
//!   its buffer never grows past what the limit allows.
#![no_main]

mod common;

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use nexnet_codec::{
    CodecError, FRAME_HEADER_LEN, Frame, FrameCodec, FrameKind, MAX_DATA_PAYLOAD, ResetCode,
};
use tokio_util::codec::Decoder;

/// Payload limits to try, `Frame::check`'s directly and the codec's (which
/// clamps them to 64 KiB ..= 16 MiB).
const LIMITS: [usize; 8] = [0, 1, 8, 100, 4096, MAX_DATA_PAYLOAD, 1 << 20, 16 << 20];

/// What the codec reserves ahead of an incomplete frame (`codec.rs`).
const READ_AHEAD: usize = 4 * (MAX_DATA_PAYLOAD + FRAME_HEADER_LEN);

/// How a decode of a whole stream ended.
#[derive(Debug, PartialEq)]
enum End {
    /// These bytes were left over, an incomplete frame.
    NeedMore(usize),
    /// This error (its message).
    Error(String),
}

/// The frames of `stream` through `Frame::check` and `Frame::parse`, each
/// checked against the bytes it came from.
fn reference(stream: &[u8], max: usize) -> (Vec<Frame>, End) {
    let mut buf = BytesMut::from(stream);
    let mut frames = Vec::new();
    let mut at = 0;
    let end = loop {
        let rest = &stream[at..];
        assert_eq!(&buf[..], rest);
        let announced = rest
            .get(..4)
            .map(|p| u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize);
        match Frame::check(&buf, max) {
            Ok(Some(total)) => {
                let len = announced.expect("a whole frame has a prefix");
                assert_eq!(total, 4 + len);
                assert!(total >= FRAME_HEADER_LEN && total <= rest.len());
                assert!(total - FRAME_HEADER_LEN <= max);
                let frame = Frame::parse(&mut buf, total).expect("check accepted it");
                let wire = &rest[..total];
                assert_eq!(frame.wire_len(), total);
                assert_eq!(frame.header()[..], wire[..FRAME_HEADER_LEN]);
                assert_eq!(frame.kind as u8, wire[4]);
                assert_eq!(frame.stream.0.to_be_bytes()[..], wire[5..9]);
                assert_eq!(&frame.payload[..], &wire[FRAME_HEADER_LEN..]);
                let mut again = BytesMut::new();
                frame.encode(&mut again);
                assert_eq!(&again[..], wire, "re-encoding differs");
                check_payload(&frame);
                at += total;
                frames.push(frame);
            }
            Ok(None) => {
                if let Some(len) = announced {
                    assert!(len >= FRAME_HEADER_LEN - 4, "short frame accepted");
                    assert!(
                        len - (FRAME_HEADER_LEN - 4) <= max,
                        "oversize frame accepted"
                    );
                    assert!(4 + len > rest.len(), "a whole frame reported incomplete");
                    if let Some(&kind) = rest.get(4) {
                        assert!(kind <= 7, "unknown kind accepted");
                    }
                }
                break End::NeedMore(rest.len());
            }
            Err(e) => {
                let len = announced.expect("no error before a whole prefix");
                match &e {
                    CodecError::FrameTooShort { len: l } => {
                        assert_eq!(*l as usize, len);
                        assert!(len < FRAME_HEADER_LEN - 4);
                    }
                    CodecError::FrameTooLarge { len: l, .. } => {
                        assert_eq!(*l as usize, len);
                        assert!(len - (FRAME_HEADER_LEN - 4) > max);
                    }
                    CodecError::UnknownKind { kind } => {
                        assert_eq!(rest.get(4), Some(kind));
                        assert!(*kind > 7);
                    }
                    other => panic!("unexpected error {other:?}"),
                }
                // Nothing was consumed by the failed check.
                assert_eq!(buf.len(), rest.len());
                break End::Error(e.to_string());
            }
        }
    };
    (frames, end)
}

/// The fixed-size payloads are read exactly when their length is right.
fn check_payload(frame: &Frame) {
    let len = frame.payload.len();
    match frame.kind {
        FrameKind::Credit => assert_eq!(frame.credit_amount().is_ok(), len == 4),
        FrameKind::Reset => {
            let code = frame.reset_code();
            assert_eq!(code.is_ok(), len == 4);
            if let Ok(code) = code {
                assert_eq!(code.to_u32().to_be_bytes()[..], frame.payload[..]);
                assert_eq!(ResetCode::from_u32(code.to_u32()), code);
            }
        }
        FrameKind::Ping | FrameKind::Pong => {
            let nonce = frame.nonce();
            assert_eq!(nonce.is_ok(), len == 8);
            if let Ok(n) = nonce {
                assert_eq!(n.to_be_bytes()[..], frame.payload[..]);
            }
        }
        FrameKind::Control | FrameKind::Open | FrameKind::Data | FrameKind::End => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let ([limit, split], stream) = common::split_control::<2>(data);
    let max = LIMITS[usize::from(limit % 8)];

    // `Frame::check` and `Frame::parse` with the limit as it is.
    reference(stream, max);

    // The codec, fed piece by piece, against the same decode with its limit.
    let mut codec = FrameCodec::new(max);
    let cmax = codec.max_payload();
    assert_eq!(cmax, max.clamp(MAX_DATA_PAYLOAD, 16 << 20));
    let (want, want_end) = reference(stream, cmax);
    let mut want = want.into_iter();
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut end = None;
    'feed: for piece in common::chunks(stream, split) {
        buf.put_slice(piece);
        fed += piece.len();
        loop {
            let got = codec.decode(&mut buf);
            // The buffer holds the input and at most one announced frame
            // (within the limit) and the read-ahead, with BytesMut's growth.
            let bound = 4 * (fed + READ_AHEAD + cmax + FRAME_HEADER_LEN);
            assert!(
                buf.capacity() <= bound,
                "buffer of {} bytes after {fed} bytes in",
                buf.capacity()
            );
            match got {
                Ok(Some(frame)) => assert_eq!(Some(frame), want.next()),
                Ok(None) => break,
                Err(e) => {
                    end = Some(End::Error(e.to_string()));
                    break 'feed;
                }
            }
        }
    }
    let end = match end {
        Some(end) => end,
        None => {
            let left = buf.len();
            match codec.decode_eof(&mut buf) {
                Ok(Some(frame)) => panic!("a frame only at EOF: {frame:?}"),
                Ok(None) => {
                    assert_eq!(left, 0);
                    End::NeedMore(0)
                }
                Err(CodecError::Truncated { buffered }) => {
                    assert_eq!(buffered, left);
                    assert!(left > 0);
                    End::NeedMore(left)
                }
                Err(e) => panic!("unexpected error at EOF: {e:?}"),
            }
        }
    };
    assert_eq!(want.next(), None, "the codec missed frames");
    assert_eq!(end, want_end);
});
