//! Frames and handshakes through `Framed` over an in-memory duplex pipe.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use nexnet_codec::{
    CodecError, Control, Frame, FrameCodec, Handshake, HandshakeCodec, Hello, MAX_DATA_PAYLOAD,
    Proof, ResetCode, StreamId,
};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{Framed, FramedRead};

#[tokio::test]
async fn frames_cross_a_pipe_in_order() {
    let (a, b) = tokio::io::duplex(8 * 1024);
    let mut tx = Framed::new(a, FrameCodec::default());
    let mut rx = Framed::new(b, FrameCodec::default());
    let sent = vec![
        Frame::control(Control::Request { id: 1, body: 5u32 }.encode().unwrap()),
        Frame::open(StreamId(1), Bytes::from_static(b"file")),
        Frame::data(StreamId(1), Bytes::from(vec![0xab; MAX_DATA_PAYLOAD])),
        Frame::data(StreamId(1), Bytes::from_static(b"tail")),
        Frame::end(StreamId(1)),
        Frame::reset(StreamId(3), ResetCode::Refused),
        Frame::credit(StreamId(1), 65_536),
        Frame::ping(1),
        Frame::pong(1),
    ];
    let expected = sent.clone();
    let writer = tokio::spawn(async move {
        for f in sent {
            tx.send(f).await.unwrap();
        }
    });
    for want in expected {
        assert_eq!(rx.next().await.unwrap().unwrap(), want);
    }
    writer.await.unwrap();
}

#[tokio::test]
async fn handshake_then_frames_on_one_connection() {
    let (a, b) = tokio::io::duplex(4096);
    let hello = Handshake::Hello(Hello {
        node_id: [7; 32],
        listen_addr: None,
        nonce: [8; 32],
        max_payload: 1 << 20,
        stream_window: 1 << 20,
    });
    let proof = Handshake::Proof(Proof { mac: [9; 32] });
    let mut tx = Framed::new(a, HandshakeCodec);
    tx.send(&hello).await.unwrap();
    tx.send(&proof).await.unwrap();
    // Switch the same connection to frames, keeping anything buffered.
    let mut tx = tx.map_codec(|_| FrameCodec::default());
    tx.send(Frame::ping(5)).await.unwrap();

    let mut rx = Framed::new(b, HandshakeCodec);
    assert_eq!(rx.next().await.unwrap().unwrap().0, hello);
    assert_eq!(rx.next().await.unwrap().unwrap().0, proof);
    let mut rx = rx.map_codec(|_| FrameCodec::default());
    assert_eq!(rx.next().await.unwrap().unwrap(), Frame::ping(5));
}

#[tokio::test]
async fn hostile_bytes_end_in_typed_errors() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("4 GiB length", vec![0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 1]),
        ("unknown kind", vec![0, 0, 0, 5, 0x42, 0, 0, 0, 0]),
        ("too short", vec![0, 0, 0, 1, 2]),
        (
            "truncated then EOF",
            vec![0, 0, 0, 20, 2, 0, 0, 0, 1, 1, 2, 3],
        ),
    ];
    for (name, bytes) in cases {
        let (mut a, b) = tokio::io::duplex(1024);
        a.write_all(&bytes).await.unwrap();
        drop(a);
        let mut rx = FramedRead::new(b, FrameCodec::default());
        let got = rx.next().await.unwrap();
        let err = got.expect_err(name);
        assert!(
            matches!(
                err,
                CodecError::FrameTooLarge { .. }
                    | CodecError::UnknownKind { .. }
                    | CodecError::FrameTooShort { .. }
                    | CodecError::Truncated { .. }
            ),
            "{name}: {err}"
        );
    }
}

#[test]
fn reset_codes_keep_their_wire_values() {
    // The values are the protocol: a peer of another version reads them.
    let known = [
        (ResetCode::Cancelled, 1),
        (ResetCode::Refused, 2),
        (ResetCode::ProtocolError, 3),
        (ResetCode::Shutdown, 4),
        (ResetCode::StorageFull, 5),
    ];
    for (code, wire) in known {
        assert_eq!(code.to_u32(), wire);
        assert_eq!(ResetCode::from_u32(wire), code);
        let frame = Frame::reset(StreamId(9), code);
        assert_eq!(frame.reset_code().unwrap(), code);
    }
    assert_eq!(ResetCode::from_u32(77), ResetCode::Other(77));
    assert_eq!(ResetCode::Other(77).to_u32(), 77);
}
