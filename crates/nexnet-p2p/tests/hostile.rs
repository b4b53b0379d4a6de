//! Hostile peers on raw sockets: the listener drops each and keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::{BufMut, BytesMut};
use hmac::{Hmac, KeyInit, Mac};
use nexnet_codec::{
    FRAME_HEADER_LEN, Frame, Handshake, HandshakeCodec, Hello, PROTOCOL_VERSION, Proof, StreamId,
};
use nexnet_p2p::{
    CloseReason, CodecError, Event, Events, FrameKind, NetworkSecret, NodeId, TcpTransport,
    Transport, TransportConfig,
};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
    time::timeout,
};
use tokio_util::codec::Decoder;

type HmacSha256 = Hmac<Sha256>;

/// The most any single step of a test may take.
const WAIT: Duration = Duration::from_secs(5);

const LOOPBACK: &str = "127.0.0.1:0";

const DIALER_LABEL: &[u8] = b"nexnet/handshake/v1/dialer";
const LISTENER_LABEL: &[u8] = b"nexnet/handshake/v1/listener";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Msg {
    Ping(u64),
    Pong(u64),
}

/// A listener under attack, answering requests, and what else it emitted.
struct Target {
    transport: TcpTransport<Msg>,
    secret: [u8; 32],
    seen: mpsc::UnboundedReceiver<Event<Msg>>,
}

fn random32() -> [u8; 32] {
    *NodeId::generate().unwrap().as_bytes()
}

async fn bind(
    secret: [u8; 32],
    handshake_timeout: Option<Duration>,
) -> (TcpTransport<Msg>, Events<Msg>) {
    let mut config = TransportConfig::new(
        NodeId::generate().unwrap(),
        NetworkSecret::from_bytes(secret),
    );
    if let Some(after) = handshake_timeout {
        config.handshake_timeout = after;
    }
    TcpTransport::bind(LOOPBACK.parse().unwrap(), config)
        .await
        .unwrap()
}

/// Answers every `Ping(n)` request with `Pong(n + 1)`; forwards the rest.
fn serve(events: Events<Msg>) -> mpsc::UnboundedReceiver<Event<Msg>> {
    common::serve(events, |m| match m {
        Msg::Ping(n) => Some(Msg::Pong(n + 1)),
        Msg::Pong(_) => None,
    })
}

async fn target_with(handshake_timeout: Option<Duration>) -> Target {
    let secret = random32();
    let (transport, events) = bind(secret, handshake_timeout).await;
    Target {
        transport,
        secret,
        seen: serve(events),
    }
}

async fn target() -> Target {
    target_with(None).await
}

impl Target {
    fn addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    /// A normal transport with the same secret dials and gets an answer.
    async fn still_serves(&mut self) {
        let (client, _client_events) = bind(self.secret, None).await;
        let peer = timeout(WAIT, client.dial(self.addr()))
            .await
            .expect("dial timed out")
            .expect("a well-behaved peer is refused");
        let answer = peer.request(Msg::Ping(41), WAIT).await.unwrap();
        assert_eq!(answer, Msg::Pong(42));
        timeout(WAIT, client.close())
            .await
            .expect("client close hung");
    }

    /// Waits for the event `pick` selects, skipping others.
    async fn wait_for<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(Event<Msg>) -> Option<T>,
    ) -> T {
        timeout(WAIT, async {
            loop {
                let event = self.seen.recv().await.expect("listener events ended");
                if let Some(found) = pick(event) {
                    return found;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("listener never emitted {what}"))
    }

    async fn wait_connected(&mut self, id: NodeId) {
        self.wait_for("Connected", |e| match e {
            Event::Connected(peer) if peer.node_id() == id => Some(()),
            _ => None,
        })
        .await;
    }

    async fn wait_disconnected(&mut self, id: NodeId) -> CloseReason {
        let reason = self
            .wait_for("Disconnected", |e| match e {
                Event::Disconnected { peer, reason } if peer == id => Some(reason),
                _ => None,
            })
            .await;
        assert!(
            self.transport.peers().iter().all(|p| p.node_id() != id),
            "the hostile peer is still listed"
        );
        reason
    }

    async fn close(self) {
        timeout(WAIT, self.transport.close())
            .await
            .expect("listener close hung");
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect timed out")
        .unwrap()
}

/// Reads until the listener closes the socket (EOF or a reset), at most `within`.
async fn expect_closed_within(stream: &mut TcpStream, within: Duration) {
    let mut sink = [0u8; 4096];
    timeout(within, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the listener did not close the hostile connection");
}

async fn expect_closed(stream: &mut TcpStream) {
    expect_closed_within(stream, WAIT).await;
}

fn hello_wire(node_id: [u8; 32]) -> Vec<u8> {
    Handshake::Hello(Hello {
        node_id,
        listen_addr: None,
        nonce: random32(),
        max_payload: 1 << 20,
        stream_window: 1 << 20,
    })
    .to_wire()
    .unwrap()
}

fn mac(key: &[u8; 32], label: &[u8], transcript: &[u8]) -> HmacSha256 {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap();
    mac.update(label);
    mac.update(transcript);
    mac
}

async fn read_handshake(stream: &mut TcpStream, buf: &mut BytesMut) -> (Handshake, Vec<u8>) {
    loop {
        if let Some(item) = HandshakeCodec.decode(buf).unwrap() {
            return item;
        }
        let n = timeout(WAIT, stream.read_buf(buf))
            .await
            .expect("listener silent during the handshake")
            .unwrap();
        assert!(n > 0, "listener closed during the handshake");
    }
}

/// Runs the dialer's side of the handshake by hand, proving `key`. Returns
/// the socket, our node id, and whether the listener's proof verified
/// under `key`.
async fn raw_handshake(addr: SocketAddr, key: &[u8; 32]) -> (TcpStream, NodeId, bool) {
    let mut stream = connect(addr).await;
    let id = random32();
    let my_wire = hello_wire(id);
    stream.write_all(&my_wire).await.unwrap();

    let mut buf = BytesMut::new();
    let (theirs, their_wire) = read_handshake(&mut stream, &mut buf).await;
    assert!(matches!(theirs, Handshake::Hello(_)), "{theirs:?}");
    // The listener proves itself before checking our proof: read it first,
    // so that closing on a bad proof cannot discard it.
    let (theirs, _) = read_handshake(&mut stream, &mut buf).await;
    let Handshake::Proof(their_proof) = theirs else {
        panic!("expected a proof, got {theirs:?}");
    };

    let transcript = [my_wire, their_wire].concat();
    let listener_ok = mac(key, LISTENER_LABEL, &transcript)
        .verify_slice(&their_proof.mac)
        .is_ok();
    let mut proof = [0u8; 32];
    proof.copy_from_slice(&mac(key, DIALER_LABEL, &transcript).finalize().into_bytes());
    let wire = Handshake::Proof(Proof { mac: proof }).to_wire().unwrap();
    stream.write_all(&wire).await.unwrap();
    (stream, NodeId::from_bytes(id), listener_ok)
}

/// A connection that completed a correct handshake with the target.
async fn authenticated(target: &mut Target) -> (TcpStream, NodeId) {
    let (stream, id, listener_ok) = raw_handshake(target.addr(), &target.secret).await;
    assert!(listener_ok, "the listener's proof does not verify");
    target.wait_connected(id).await;
    (stream, id)
}

/// Sends `bytes` on an authenticated connection (then ends it, if `eof`)
/// and returns why the target dropped it, having checked that the target
/// closed the socket and still serves a member afterwards.
async fn dropped_for(bytes: &[u8], eof: bool) -> CloseReason {
    let mut target = target().await;
    let (mut stream, id) = authenticated(&mut target).await;
    stream.write_all(bytes).await.unwrap();
    if eof {
        stream.shutdown().await.unwrap();
    }
    expect_closed(&mut stream).await;
    let reason = target.wait_disconnected(id).await;
    target.still_serves().await;
    target.close().await;
    reason
}

/// Sends raw bytes instead of a handshake and expects to be dropped.
async fn refused_before_handshake(bytes: &[u8]) {
    let mut target = target().await;
    let mut stream = connect(target.addr()).await;
    stream.write_all(bytes).await.unwrap();
    expect_closed(&mut stream).await;
    assert!(target.transport.peers().is_empty());
    target.still_serves().await;
    target.close().await;
}

#[tokio::test]
async fn garbage_instead_of_a_handshake_is_dropped() {
    refused_before_handshake(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn wrong_magic_is_dropped() {
    let mut wire = hello_wire(random32());
    wire[..4].copy_from_slice(b"NXNU");
    refused_before_handshake(&wire).await;
}

#[tokio::test]
async fn wrong_protocol_version_is_dropped() {
    let mut wire = hello_wire(random32());
    assert_eq!(wire[4..6], PROTOCOL_VERSION.to_be_bytes());
    wire[4..6].copy_from_slice(&(PROTOCOL_VERSION + 1).to_be_bytes());
    refused_before_handshake(&wire).await;
}

#[tokio::test]
async fn a_wrong_secret_is_dropped() {
    let mut target = target().await;
    let wrong = random32();
    assert_ne!(wrong, target.secret);
    let (mut stream, _id, listener_ok) = raw_handshake(target.addr(), &wrong).await;
    assert!(
        !listener_ok,
        "the listener's proof verified under another secret"
    );
    expect_closed(&mut stream).await;
    assert!(target.transport.peers().is_empty());
    target.still_serves().await;
    target.close().await;
}

/// Connects, sends `bytes` (maybe none), stalls, and expects the handshake
/// time-out (300 ms, well below the 5 s default) to drop the connection.
async fn stalled_handshake(bytes: &[u8]) {
    let mut target = target_with(Some(Duration::from_millis(300))).await;
    let mut stream = connect(target.addr()).await;
    let start = Instant::now();
    stream.write_all(bytes).await.unwrap();
    expect_closed_within(&mut stream, Duration::from_secs(3)).await;
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(200),
        "dropped after {elapsed:?}, before the time-out"
    );
    assert!(target.transport.peers().is_empty());
    target.still_serves().await;
    target.close().await;
}

#[tokio::test]
async fn a_silent_connection_is_dropped_after_the_handshake_timeout() {
    stalled_handshake(&[]).await;
}

#[tokio::test]
async fn half_a_hello_is_dropped_after_the_handshake_timeout() {
    let wire = hello_wire(random32());
    stalled_handshake(&wire[..wire.len() / 2]).await;
}

#[tokio::test]
async fn a_frame_announcing_4_gib_is_dropped() {
    let mut bytes = BytesMut::new();
    bytes.put_u32(u32::MAX);
    bytes.put_u8(2);
    bytes.put_u32(1);
    bytes.put_slice(&[0u8; 64]);
    let reason = dropped_for(&bytes, false).await;
    assert!(
        matches!(&reason, CloseReason::Codec(e) if matches!(**e, CodecError::FrameTooLarge { .. })),
        "{reason:?}"
    );
}

#[tokio::test]
async fn a_truncated_frame_then_eof_is_dropped() {
    let mut bytes = BytesMut::new();
    Frame::ping(7).encode(&mut bytes);
    assert_eq!(bytes.len(), FRAME_HEADER_LEN + 8);
    let reason = dropped_for(&bytes[..bytes.len() - 3], true).await;
    assert!(
        matches!(&reason, CloseReason::Codec(e) if matches!(**e, CodecError::Truncated { .. })),
        "{reason:?}"
    );
}

#[tokio::test]
async fn data_for_a_stream_never_opened_is_dropped() {
    let mut target = target().await;
    // 1: numbered as ours (the dialer's) but never opened; 2: numbered as
    // the listener's, which opened nothing.
    for stream_id in [1, 2] {
        let (mut stream, id) = authenticated(&mut target).await;
        let mut bytes = BytesMut::new();
        Frame::data(StreamId(stream_id), bytes::Bytes::from_static(b"unasked")).encode(&mut bytes);
        stream.write_all(&bytes).await.unwrap();
        expect_closed(&mut stream).await;
        let reason = target.wait_disconnected(id).await;
        assert!(
            matches!(
                reason,
                CloseReason::UnknownStream { stream, kind: FrameKind::Data }
                    if stream == StreamId(stream_id)
            ),
            "{reason:?}"
        );
        target.still_serves().await;
    }
    target.close().await;
}

#[tokio::test]
async fn a_frame_of_unknown_kind_is_dropped() {
    let mut bytes = BytesMut::new();
    bytes.put_u32(5 + 4);
    bytes.put_u8(99);
    bytes.put_u32(0);
    bytes.put_slice(b"????");
    let reason = dropped_for(&bytes, false).await;
    assert!(
        matches!(&reason, CloseReason::Codec(e) if matches!(**e, CodecError::UnknownKind { kind: 99 })),
        "{reason:?}"
    );
}

#[tokio::test]
async fn a_peer_silent_after_the_handshake_is_dropped_by_the_watchdog() {
    let secret = random32();
    let mut config = TransportConfig::new(
        NodeId::generate().unwrap(),
        NetworkSecret::from_bytes(secret),
    );
    config.heartbeat_interval = Duration::from_millis(100);
    config.heartbeat_misses = 3;
    let (transport, events) = TcpTransport::bind(LOOPBACK.parse().unwrap(), config)
        .await
        .unwrap();
    let mut target = Target {
        transport,
        secret,
        seen: serve(events),
    };
    let (mut stream, id, _) = raw_handshake(target.addr(), &secret).await;
    target.wait_connected(id).await;
    // From here on say nothing, not even a pong, and keep the socket open.
    let reason = target.wait_disconnected(id).await;
    assert!(
        matches!(
            reason,
            CloseReason::Silent { silent, interval, misses: 3 }
                if interval == Duration::from_millis(100) && silent > interval * 3
        ),
        "{reason:?}"
    );
    expect_closed(&mut stream).await;
    target.still_serves().await;
    target.close().await;
}

#[tokio::test]
async fn a_stream_opened_twice_is_dropped() {
    let open = nexnet_codec::encode_message(&Msg::Ping(0)).unwrap();
    let mut bytes = BytesMut::new();
    Frame::open(StreamId(1), open.clone()).encode(&mut bytes);
    Frame::open(StreamId(1), open).encode(&mut bytes);
    let reason = dropped_for(&bytes, false).await;
    assert!(
        matches!(
            reason,
            CloseReason::OpenedOutOfTurn {
                stream: StreamId(1),
                highest: StreamId(1)
            }
        ),
        "{reason:?}"
    );
}

#[tokio::test]
async fn data_past_the_credit_is_dropped() {
    let window = TransportConfig::new(
        NodeId::generate().unwrap(),
        NetworkSecret::generate().unwrap(),
    )
    .stream_window;
    let mut bytes = BytesMut::new();
    Frame::open(
        StreamId(1),
        nexnet_codec::encode_message(&Msg::Ping(0)).unwrap(),
    )
    .encode(&mut bytes);
    // The whole window in full frames, then one byte more.
    let full = bytes::Bytes::from(vec![0u8; nexnet_codec::MAX_DATA_PAYLOAD]);
    let mut sent = 0u64;
    while sent < u64::from(window) {
        Frame::data(StreamId(1), full.clone()).encode(&mut bytes);
        sent += full.len() as u64;
    }
    Frame::data(StreamId(1), bytes::Bytes::from_static(b"!")).encode(&mut bytes);
    let reason = dropped_for(&bytes, false).await;
    assert!(
        matches!(
            reason,
            CloseReason::CreditExceeded { stream: StreamId(1), sent: s, window: w }
                if s == sent + 1 && w == window
        ),
        "{reason:?}"
    );
}
