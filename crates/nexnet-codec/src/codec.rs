//! `FrameCodec`: frames over any byte stream, with tokio-util's `Framed`.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::{CodecError, FRAME_HEADER_LEN, Frame, MAX_DATA_PAYLOAD, Result};

/// How much a decoder asks to read at once when a frame is incomplete.
const READ_AHEAD: usize = 4 * (MAX_DATA_PAYLOAD + FRAME_HEADER_LEN);

/// Encodes and decodes [`Frame`]s, refusing any frame whose payload exceeds
/// `max_payload`: the length prefix is checked before a byte is buffered
/// for it.
#[derive(Clone, Copy, Debug)]
pub struct FrameCodec {
    max_payload: usize,
}

impl FrameCodec {
    /// A codec for payloads of at most `max_payload` bytes (at least one
    /// full data frame, at most 16 MiB).
    pub fn new(max_payload: usize) -> Self {
        Self {
            max_payload: max_payload.clamp(MAX_DATA_PAYLOAD, 16 << 20),
        }
    }

    /// The largest payload this codec accepts.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }
}

impl Default for FrameCodec {
    /// Payloads up to 1 MiB: data frames are 64 KiB, control messages small.
    fn default() -> Self {
        Self::new(1 << 20)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>> {
        match Frame::check(src, self.max_payload)? {
            Some(total) => Frame::parse(src, total).map(Some),
            None => {
                // Reserve what the announced frame needs (already bounded by
                // `check`), and room to read a few frames ahead, so the read
                // loop neither grows the buffer in steps nor reads a frame
                // per system call.
                if src.len() >= 4 {
                    let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
                    src.reserve((4 + len - src.len()).max(READ_AHEAD));
                }
                Ok(None)
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(CodecError::Truncated {
                buffered: src.len(),
            }),
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<()> {
        if frame.payload.len() > self.max_payload {
            return Err(CodecError::FrameTooLarge {
                len: (frame.payload.len() + FRAME_HEADER_LEN - 4) as u64,
                max: (self.max_payload + FRAME_HEADER_LEN - 4) as u64,
            });
        }
        frame.encode(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes};

    use super::*;
    use crate::{FrameKind, ResetCode, StreamId};

    fn round_trip(frame: Frame) {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        codec.encode(frame.clone(), &mut buf).unwrap();
        assert_eq!(buf.len(), frame.wire_len());
        // Fed one byte at a time, it decodes exactly once, at the last byte.
        let mut partial = BytesMut::new();
        for (i, b) in buf.iter().enumerate() {
            partial.put_u8(*b);
            let got = codec.decode(&mut partial).unwrap();
            if i + 1 < buf.len() {
                assert!(got.is_none());
            } else {
                assert_eq!(got.unwrap(), frame);
            }
        }
        assert!(partial.is_empty());
    }

    #[test]
    fn every_kind_round_trips() {
        round_trip(Frame::control(Bytes::from_static(b"hello")));
        round_trip(Frame::open(StreamId(3), Bytes::from_static(b"get x")));
        round_trip(Frame::data(
            StreamId(3),
            Bytes::from(vec![7u8; MAX_DATA_PAYLOAD]),
        ));
        round_trip(Frame::data(StreamId(3), Bytes::new()));
        round_trip(Frame::end(StreamId(3)));
        round_trip(Frame::reset(StreamId(5), ResetCode::Cancelled));
        round_trip(Frame::credit(StreamId(5), 1 << 20));
        round_trip(Frame::ping(42));
        round_trip(Frame::pong(42));
    }

    #[test]
    fn payload_accessors() {
        assert_eq!(Frame::credit(StreamId(1), 77).credit_amount().unwrap(), 77);
        assert_eq!(
            Frame::reset(StreamId(1), ResetCode::Refused)
                .reset_code()
                .unwrap(),
            ResetCode::Refused
        );
        assert_eq!(Frame::ping(9).nonce().unwrap(), 9);
        let bad = Frame {
            kind: FrameKind::Credit,
            stream: StreamId(1),
            payload: Bytes::from_static(b"xy"),
        };
        assert!(matches!(
            bad.credit_amount(),
            Err(CodecError::BadPayload { .. })
        ));
    }

    #[test]
    fn an_oversize_prefix_is_refused_before_buffering() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 2][..]);
        let capacity = buf.capacity();
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::FrameTooLarge {
                len: 0xffff_ffff,
                ..
            })
        ));
        assert_eq!(buf.capacity(), capacity, "nothing reserved for it");
    }

    #[test]
    fn short_unknown_and_truncated_frames_are_errors() {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::from(&[0, 0, 0, 2, 2, 0][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::FrameTooShort { len: 2 })
        ));

        let mut buf = BytesMut::from(&[0, 0, 0, 5, 99][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::UnknownKind { kind: 99 })
        ));

        let mut buf = BytesMut::new();
        codec.encode(Frame::ping(1), &mut buf).unwrap();
        buf.truncate(buf.len() - 1);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(matches!(
            codec.decode_eof(&mut buf),
            Err(CodecError::Truncated { .. })
        ));
    }

    #[test]
    fn encoding_past_the_limit_is_refused() {
        let mut codec = FrameCodec::new(MAX_DATA_PAYLOAD);
        let big = Frame::control(Bytes::from(vec![0u8; MAX_DATA_PAYLOAD + 1]));
        assert!(matches!(
            codec.encode(big, &mut BytesMut::new()),
            Err(CodecError::FrameTooLarge { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_or_overallocate(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)
        ) {
            let mut codec = FrameCodec::new(MAX_DATA_PAYLOAD);
            let mut buf = BytesMut::from(&bytes[..]);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        proptest::prop_assert!(frame.payload.len() <= MAX_DATA_PAYLOAD);
                    }
                    Ok(None) | Err(_) => break,
                }
                proptest::prop_assert!(buf.capacity() <= 4096 + MAX_DATA_PAYLOAD + FRAME_HEADER_LEN);
            }
        }
    }
}
