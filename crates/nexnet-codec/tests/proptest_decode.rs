//! Property tests of the wire decoders: the fast, always-run counterparts
//! of the `frame`, `handshake` and `control` fuzz targets (`fuzz/`).
//!
//! They prove that what a peer sends decodes the same however the socket
//! cuts it, that every decoded item is exactly the bytes it came from, that
//! corrupt input is refused with the error the format's rules call for (and
//! never a panic or a huge buffer), and that a handshake body or a message
//! is exactly one message, with nothing trailing. Inputs are valid
//! encodings, then corrupted, truncated and cut at random points, so that
//! every rule is reached in a few hundred cases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use bytes::BytesMut;
use nexnet_codec::{
    CodecError, Control, FRAME_HEADER_LEN, Frame, FrameCodec, FrameKind, Handshake, HandshakeCodec,
    Hello, MAGIC, MAX_DATA_PAYLOAD, MAX_HANDSHAKE_BODY, PROTOCOL_VERSION, Proof, ResetCode,
    StreamId, decode_message, encode_message,
};
use proptest::{collection::vec, prelude::*};
use serde::{Deserialize, Serialize};
use tokio_util::codec::Decoder;

/// What the codec reserves ahead of an incomplete frame (`codec.rs`).
const READ_AHEAD: usize = 4 * (MAX_DATA_PAYLOAD + FRAME_HEADER_LEN);

const KINDS: [FrameKind; 8] = [
    FrameKind::Control,
    FrameKind::Open,
    FrameKind::Data,
    FrameKind::End,
    FrameKind::Reset,
    FrameKind::Credit,
    FrameKind::Ping,
    FrameKind::Pong,
];

fn frame() -> impl Strategy<Value = Frame> {
    let stream = any::<u32>().prop_map(StreamId);
    prop_oneof![
        vec(any::<u8>(), 0..64).prop_map(|p| Frame::control(p.into())),
        (stream.clone(), vec(any::<u8>(), 0..32)).prop_map(|(s, p)| Frame::open(s, p.into())),
        (stream.clone(), vec(any::<u8>(), 0..600)).prop_map(|(s, p)| Frame::data(s, p.into())),
        stream.clone().prop_map(Frame::end),
        (stream.clone(), any::<u32>()).prop_map(|(s, c)| Frame::reset(s, ResetCode::from_u32(c))),
        (stream.clone(), any::<u32>()).prop_map(|(s, n)| Frame::credit(s, n)),
        any::<u64>().prop_map(Frame::ping),
        any::<u64>().prop_map(Frame::pong),
        // Any kind with any small payload: a credit of 3 bytes, say.
        (0..KINDS.len(), stream, vec(any::<u8>(), 0..12)).prop_map(|(k, stream, p)| Frame {
            kind: KINDS[k],
            stream,
            payload: p.into(),
        }),
    ]
}

fn encode(frames: &[Frame]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for f in frames {
        f.encode(&mut out);
    }
    out.to_vec()
}

/// Cuts `data` at the given sizes (cycled), as a socket might deliver it.
fn cut<'a>(data: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut rest = data;
    let mut out = Vec::new();
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.clamp(1, rest.len()));
        out.push(piece);
        rest = tail;
    }
    out
}

/// Changes some bytes and perhaps cuts the end off.
fn corrupt(mut bytes: Vec<u8>, changes: &[(usize, u8)], keep: Option<usize>) -> Vec<u8> {
    if !bytes.is_empty() {
        for &(at, value) in changes {
            let at = at % bytes.len();
            bytes[at] = value;
        }
    }
    if let Some(keep) = keep {
        bytes.truncate(keep % (bytes.len() + 1));
    }
    bytes
}

/// How decoding a whole stream ended.
#[derive(Debug, PartialEq)]
enum End {
    /// This many bytes were left, an incomplete frame.
    NeedMore(usize),
    /// This error.
    Error(String),
}

/// `Frame::check` and `Frame::parse` over the whole stream, each frame
/// checked against its bytes and each error against the format's rules.
fn reference(stream: &[u8], max: usize) -> (Vec<Frame>, End) {
    let mut buf = BytesMut::from(stream);
    let mut frames = Vec::new();
    let mut at = 0;
    loop {
        let rest = &stream[at..];
        let announced = rest
            .get(..4)
            .map(|p| u32::from_be_bytes(p.try_into().unwrap()) as usize);
        match Frame::check(&buf, max) {
            Ok(Some(total)) => {
                let frame = Frame::parse(&mut buf, total).unwrap();
                assert!(frame.payload.len() <= max);
                assert_eq!(encode(std::slice::from_ref(&frame)), rest[..total]);
                check_accessors(&frame);
                at += total;
                frames.push(frame);
            }
            Ok(None) => {
                if let Some(len) = announced {
                    assert!(len >= 5 && len - 5 <= max && 4 + len > rest.len());
                }
                return (frames, End::NeedMore(rest.len()));
            }
            Err(e) => {
                let len = announced.unwrap();
                match &e {
                    CodecError::FrameTooShort { .. } => assert!(len < 5),
                    CodecError::FrameTooLarge { .. } => assert!(len - 5 > max),
                    CodecError::UnknownKind { kind } => assert!(*kind > 7 && rest[4] == *kind),
                    other => panic!("{other:?}"),
                }
                return (frames, End::Error(e.to_string()));
            }
        }
    }
}

fn check_accessors(frame: &Frame) {
    let len = frame.payload.len();
    match frame.kind {
        FrameKind::Credit => assert_eq!(frame.credit_amount().is_ok(), len == 4),
        FrameKind::Reset => assert_eq!(frame.reset_code().is_ok(), len == 4),
        FrameKind::Ping | FrameKind::Pong => assert_eq!(frame.nonce().is_ok(), len == 8),
        _ => {}
    }
}

/// The codec fed piece by piece: its frames and how it ended, with its
/// buffer checked against the limit after every call.
fn through_codec(pieces: &[&[u8]], codec: &mut FrameCodec) -> (Vec<Frame>, End) {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    for piece in pieces {
        buf.extend_from_slice(piece);
        fed += piece.len();
        loop {
            let got = codec.decode(&mut buf);
            let bound = 4 * (fed + READ_AHEAD + codec.max_payload() + FRAME_HEADER_LEN);
            assert!(buf.capacity() <= bound, "{} > {bound}", buf.capacity());
            match got {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => return (frames, End::Error(e.to_string())),
            }
        }
    }
    let left = buf.len();
    match codec.decode_eof(&mut buf) {
        Ok(None) => assert_eq!(left, 0),
        Ok(Some(f)) => panic!("a frame only at EOF: {f:?}"),
        Err(CodecError::Truncated { buffered }) => assert_eq!(buffered, left),
        Err(e) => panic!("{e:?}"),
    }
    (frames, End::NeedMore(left))
}

fn hello() -> impl Strategy<Value = Handshake> {
    let addr = prop_oneof![
        Just(None),
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| Some(SocketAddr::from((ip, port)))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| Some(SocketAddr::from((ip, port)))),
    ];
    (
        any::<[u8; 32]>(),
        addr,
        any::<[u8; 32]>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(node_id, listen_addr, nonce, max_payload, stream_window)| {
                Handshake::Hello(Hello {
                    node_id,
                    listen_addr,
                    nonce,
                    max_payload,
                    stream_window,
                })
            },
        )
}

fn handshake() -> impl Strategy<Value = Handshake> {
    prop_oneof![
        hello(),
        any::<[u8; 32]>().prop_map(|mac| Handshake::Proof(Proof { mac })),
    ]
}

/// What a connection's first bytes decode to: handshake messages with their
/// wire bytes, frames, and how it ended (`None`: cleanly).
type Start = (Vec<(Handshake, Vec<u8>)>, Vec<Frame>, Option<String>);

/// Decodes up to two handshake messages, then frames, as a connection
/// does; items are checked against the bytes they came from.
fn connection_start(pieces: &[&[u8]]) -> Start {
    let mut buf = BytesMut::new();
    let mut frames = FrameCodec::default();
    let (mut messages, mut got) = (Vec::new(), Vec::new());
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let seen = buf.to_vec();
            if messages.len() < 2 {
                match HandshakeCodec.decode(&mut buf) {
                    Ok(Some((message, wire))) => {
                        assert_eq!(seen[..wire.len()], wire[..]);
                        assert_eq!(wire[..4], MAGIC);
                        assert_eq!(wire[4..6], PROTOCOL_VERSION.to_be_bytes());
                        let len = usize::from(u16::from_be_bytes([wire[6], wire[7]]));
                        assert!(len <= MAX_HANDSHAKE_BODY && len + 8 == wire.len());
                        let canonical = message.to_wire().unwrap();
                        assert!(canonical.len() <= wire.len());
                        messages.push((message, wire));
                    }
                    Ok(None) => break,
                    Err(CodecError::BadMagic { .. }) => {
                        let n = seen.len().min(4);
                        assert_ne!(seen[..n], MAGIC[..n]);
                        return (messages, got, Some("bad magic".into()));
                    }
                    Err(e) => return (messages, got, Some(e.to_string())),
                }
            } else {
                match frames.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        assert_eq!(
                            encode(std::slice::from_ref(&frame)),
                            seen[..frame.wire_len()]
                        );
                        got.push(frame);
                    }
                    Ok(None) => break,
                    Err(e) => return (messages, got, Some(e.to_string())),
                }
            }
        }
    }
    (
        messages,
        got,
        (!buf.is_empty()).then(|| format!("{} bytes left", buf.len())),
    )
}

/// A message shaped like the node's protocol (ids, lists, strings, options).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Msg {
    Members(Vec<([u8; 32], SocketAddr)>),
    Fetch { cid: [u8; 20], transfer: u64 },
    Failed(String),
    Entry(Option<(u64, Vec<u8>)>),
    Have(bool),
    Missing,
}

fn msg() -> impl Strategy<Value = Msg> {
    let addr = (any::<[u8; 4]>(), any::<u16>()).prop_map(SocketAddr::from);
    prop_oneof![
        vec((any::<[u8; 32]>(), addr), 0..4).prop_map(Msg::Members),
        (any::<[u8; 20]>(), any::<u64>()).prop_map(|(cid, transfer)| Msg::Fetch { cid, transfer }),
        ".{0,20}".prop_map(Msg::Failed),
        proptest::option::of((any::<u64>(), vec(any::<u8>(), 0..40))).prop_map(Msg::Entry),
        any::<bool>().prop_map(Msg::Have),
        Just(Msg::Missing),
    ]
}

fn control() -> impl Strategy<Value = Control<Msg>> {
    prop_oneof![
        msg().prop_map(Control::Notify),
        (any::<u64>(), msg()).prop_map(|(id, body)| Control::Request { id, body }),
        (any::<u64>(), msg()).prop_map(|(id, body)| Control::Response { id, body }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Valid frames decode to themselves however the stream is cut.
    #[test]
    fn frames_decode_the_same_however_the_stream_is_cut(
        frames in vec(frame(), 0..10),
        sizes in vec(1usize..80, 1..8),
    ) {
        let wire = encode(&frames);
        let mut codec = FrameCodec::default();
        let (got, end) = through_codec(&cut(&wire, &sizes), &mut codec);
        prop_assert_eq!(got, frames);
        prop_assert_eq!(end, End::NeedMore(0));
    }

    /// Corrupt and truncated streams: the codec, fed in pieces, agrees with
    /// `check` + `parse` on the whole stream, frame for frame and error for
    /// error, under every payload limit.
    #[test]
    fn corrupt_streams_fail_the_same_way_in_pieces_and_whole(
        frames in vec(frame(), 1..6),
        changes in vec((any::<usize>(), any::<u8>()), 0..4),
        keep in proptest::option::of(any::<usize>()),
        sizes in vec(1usize..40, 1..6),
        limit in prop_oneof![Just(0usize), Just(8), Just(100), Just(MAX_DATA_PAYLOAD), Just(16 << 20)],
    ) {
        let stream = corrupt(encode(&frames), &changes, keep);
        // `check` with the limit as it is, then the codec's clamped limit.
        reference(&stream, limit);
        let mut codec = FrameCodec::new(limit);
        let (want, want_end) = reference(&stream, codec.max_payload());
        let (got, end) = through_codec(&cut(&stream, &sizes), &mut codec);
        prop_assert_eq!(got, want);
        prop_assert_eq!(end, want_end);
    }

    /// A huge length prefix is refused from its four bytes, with nothing
    /// reserved for it.
    #[test]
    fn oversize_prefixes_are_refused_before_buffering(
        len in (1u32 << 20) + 6..=u32::MAX,
        tail in vec(any::<u8>(), 0..16),
    ) {
        let mut buf = BytesMut::from(&len.to_be_bytes()[..]);
        buf.extend_from_slice(&tail);
        let capacity = buf.capacity();
        let got = FrameCodec::default().decode(&mut buf);
        prop_assert!(matches!(got, Err(CodecError::FrameTooLarge { .. })), "{:?}", got);
        prop_assert_eq!(buf.capacity(), capacity);
    }

    /// Hellos and proofs, then frames, through one buffer as a connection
    /// reads them: the same messages with their exact wire bytes, however
    /// the bytes arrive.
    #[test]
    fn handshakes_then_frames_decode_however_cut(
        first in hello(),
        second in handshake(),
        frames in vec(frame(), 0..4),
        sizes in vec(1usize..60, 1..6),
    ) {
        let wires = [first.to_wire().unwrap(), second.to_wire().unwrap()];
        let stream = [&wires[0][..], &wires[1], &encode(&frames)].concat();
        let (messages, got, end) = connection_start(&cut(&stream, &sizes));
        prop_assert_eq!(messages, vec![(first, wires[0].clone()), (second, wires[1].clone())]);
        prop_assert_eq!(got, frames);
        prop_assert_eq!(end, None);
    }

    /// Corrupt handshakes: the pieces agree with the whole, and a decoded
    /// message is always exactly the bytes it came from.
    #[test]
    fn corrupt_handshakes_decode_the_same_in_pieces(
        first in hello(),
        second in handshake(),
        changes in vec((any::<usize>(), any::<u8>()), 1..4),
        keep in proptest::option::of(any::<usize>()),
        sizes in vec(1usize..30, 1..6),
    ) {
        let stream = [first.to_wire().unwrap(), second.to_wire().unwrap()].concat();
        let stream = corrupt(stream, &changes, keep);
        let whole = connection_start(&[&stream]);
        let pieces = connection_start(&cut(&stream, &sizes));
        prop_assert_eq!(pieces, whole);
    }

    /// A handshake body is one message: any bytes after it, counted in the
    /// length, are refused.
    #[test]
    fn handshake_bodies_with_trailing_bytes_are_refused(
        message in handshake(),
        junk in vec(any::<u8>(), 1..32),
    ) {
        let mut wire = message.to_wire().unwrap();
        wire.extend_from_slice(&junk);
        let len = u16::try_from(wire.len() - 8).unwrap();
        wire[6..8].copy_from_slice(&len.to_be_bytes());
        let got = HandshakeCodec.decode(&mut BytesMut::from(&wire[..]));
        prop_assert!(matches!(got, Err(CodecError::Decode { .. })), "{:?}", got);
    }

    /// Control envelopes and stream headers round-trip, and anything after
    /// the message is refused.
    #[test]
    fn messages_round_trip_and_refuse_trailing_bytes(
        c in control(),
        m in msg(),
        junk in vec(any::<u8>(), 1..8),
    ) {
        let bytes = c.encode().unwrap();
        prop_assert_eq!(Control::<Msg>::decode(&bytes).unwrap(), c);
        prop_assert!(Control::<Msg>::decode(&[&bytes[..], &junk].concat()).is_err());
        let bytes = encode_message(&m).unwrap();
        prop_assert_eq!(decode_message::<Msg>(&bytes).unwrap(), m);
        prop_assert!(decode_message::<Msg>(&[&bytes[..], &junk].concat()).is_err());
    }

    /// Corrupt messages either fail or decode to a message whose encoding
    /// is no longer than the input (no trailing bytes kept, nothing
    /// invented) and decodes to the same message.
    #[test]
    fn corrupt_messages_decode_to_what_they_encode(
        c in control(),
        changes in vec((any::<usize>(), any::<u8>()), 1..4),
        keep in proptest::option::of(any::<usize>()),
    ) {
        let bytes = corrupt(c.encode().unwrap().to_vec(), &changes, keep);
        if let Ok(decoded) = Control::<Msg>::decode(&bytes) {
            let again = decoded.encode().unwrap();
            prop_assert!(again.len() <= bytes.len());
            prop_assert_eq!(Control::<Msg>::decode(&again).unwrap(), decoded);
        }
        if let Ok(decoded) = decode_message::<Msg>(&bytes) {
            let again = encode_message(&decoded).unwrap();
            prop_assert!(again.len() <= bytes.len());
            prop_assert_eq!(decode_message::<Msg>(&again).unwrap(), decoded);
        }
    }
}

#[test]
fn a_frame_that_is_all_header_is_empty() {
    let wire = encode(&[Frame::end(StreamId(9))]);
    assert_eq!(wire.len(), FRAME_HEADER_LEN);
    let (frames, end) = reference(&wire, 0);
    assert_eq!(frames, vec![Frame::end(StreamId(9))]);
    assert_eq!(end, End::NeedMore(0));
    assert!(Frame::check(&wire, 0).unwrap().is_some());
}
