//! Many streams on one connection: integrity, fairness with control
//! messages, and backpressure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use nexnet_p2p::{
    CloseReason, CodecError, Event, Events, NetworkSecret, NodeId, Peer, RecvStream, TcpTransport,
    Transport, TransportConfig,
};
use nexnet_testkit::{Pattern, digest_async_reader, pattern_digest};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Msg {
    Ping(u64),
    Pong(u64),
    Blob { seed: u64, len: u64 },
}

async fn node(
    config: impl FnOnce(&mut TransportConfig),
    secret: &NetworkSecret,
) -> (TcpTransport<Msg>, Events<Msg>) {
    let mut c = TransportConfig::new(NodeId::generate().unwrap(), secret.clone());
    config(&mut c);
    TcpTransport::bind("127.0.0.1:0".parse().unwrap(), c)
        .await
        .unwrap()
}

/// Answers pings, and hands every incoming stream to `streams`.
fn serve(events: Events<Msg>, streams: mpsc::UnboundedSender<(Msg, RecvStream)>) {
    let mut rest = common::serve(events, |m| match m {
        Msg::Ping(n) => Some(Msg::Pong(*n)),
        _ => None,
    });
    tokio::spawn(async move {
        while let Some(event) = rest.recv().await {
            if let Event::Stream {
                message, stream, ..
            } = event
            {
                let _ = streams.send((message, stream));
            }
        }
    });
}

async fn send_blob(peer: Peer<Msg>, seed: u64, len: u64) {
    let mut out = peer.open_stream(Msg::Blob { seed, len }).await.unwrap();
    let mut src = Pattern::new(seed, len);
    tokio::io::copy(&mut src, &mut out).await.unwrap();
    out.shutdown().await.unwrap();
}

/// Reads `count` incoming blobs concurrently and checks each against its pattern.
fn check_blobs(
    mut streams: mpsc::UnboundedReceiver<(Msg, RecvStream)>,
    count: usize,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut readers = Vec::new();
        for _ in 0..count {
            let (msg, stream) = streams.recv().await.unwrap();
            let Msg::Blob { seed, len } = msg else {
                panic!("unexpected {msg:?}")
            };
            readers.push(tokio::spawn(async move {
                assert_eq!(
                    digest_async_reader(stream).await.unwrap(),
                    pattern_digest(seed, len)
                );
            }));
        }
        for r in readers {
            r.await.unwrap();
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_64mib_streams_each_way_while_requests_keep_flowing() {
    const LEN: u64 = 64 << 20;
    let secret = NetworkSecret::generate().unwrap();
    let (a, a_events) = node(|_| {}, &secret).await;
    let (b, b_events) = node(|_| {}, &secret).await;
    let (a_tx, a_rx) = mpsc::unbounded_channel();
    let (b_tx, b_rx) = mpsc::unbounded_channel();
    serve(a_events, a_tx);
    serve(b_events, b_tx);

    let to_b = a.dial(b.local_addr()).await.unwrap();
    let to_a = loop {
        if let Some(p) = b.peers().into_iter().next() {
            break p;
        }
        tokio::task::yield_now().await;
    };

    let a_checks = check_blobs(a_rx, 3);
    let b_checks = check_blobs(b_rx, 3);
    let mut senders = Vec::new();
    for i in 0..3 {
        senders.push(tokio::spawn(send_blob(to_b.clone(), i, LEN)));
        senders.push(tokio::spawn(send_blob(to_a.clone(), 100 + i, LEN)));
    }

    // Request/responses complete while the streams run.
    let mut answered = 0u64;
    while !senders.iter().all(|s| s.is_finished()) {
        let n = answered;
        let answer = to_b
            .request(Msg::Ping(n), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(answer, Msg::Pong(n));
        answered += 1;
    }
    for s in senders {
        s.await.unwrap();
    }
    a_checks.await.unwrap();
    b_checks.await.unwrap();
    assert!(answered > 0, "requests were answered during the transfer");
}

#[tokio::test]
async fn a_reader_that_stops_reading_stops_its_writer() {
    const WINDOW: u32 = 256 * 1024;
    let secret = NetworkSecret::generate().unwrap();
    let (a, _a_events) = node(|_| {}, &secret).await;
    let (b, b_events) = node(|c| c.stream_window = WINDOW, &secret).await;
    let (b_tx, mut b_rx) = mpsc::unbounded_channel();
    serve(b_events, b_tx);

    let to_b = a.dial(b.local_addr()).await.unwrap();
    let mut out = to_b
        .open_stream(Msg::Blob { seed: 0, len: 0 })
        .await
        .unwrap();
    let (_, mut incoming) = b_rx.recv().await.unwrap();

    // Nobody reads on b. The writer gets as far as b's window and then waits.
    let chunk = vec![0x5au8; 16 * 1024];
    let mut accepted = 0u64;
    loop {
        match tokio::time::timeout(Duration::from_millis(300), out.write(&chunk)).await {
            Ok(n) => accepted += n.unwrap() as u64,
            Err(_) => break, // blocked: no credit left
        }
        assert!(
            accepted <= u64::from(WINDOW),
            "writer accepted {accepted} bytes, past the reader's window of {WINDOW}"
        );
    }
    assert_eq!(accepted, u64::from(WINDOW), "the whole window is usable");

    // Once the reader reads, the writer moves on, and every byte arrives.
    let reader = tokio::spawn(async move {
        let mut total = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = incoming.read(&mut buf).await.unwrap();
            if n == 0 {
                return total;
            }
            assert!(buf[..n].iter().all(|&b| b == 0x5a));
            total += n as u64;
        }
    });
    for _ in 0..64 {
        out.write_all(&chunk).await.unwrap();
    }
    out.shutdown().await.unwrap();
    assert_eq!(reader.await.unwrap(), accepted + 64 * chunk.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_streams_opened_at_once_all_arrive() {
    // Stream ids must reach the peer in order even when many tasks open
    // streams at the same moment.
    let secret = NetworkSecret::generate().unwrap();
    let (a, _a_events) = node(|_| {}, &secret).await;
    let (b, b_events) = node(|_| {}, &secret).await;
    let (b_tx, b_rx) = mpsc::unbounded_channel();
    serve(b_events, b_tx);
    let to_b = a.dial(b.local_addr()).await.unwrap();
    let checks = check_blobs(b_rx, 64);
    let senders: Vec<_> = (0..64)
        .map(|i| tokio::spawn(send_blob(to_b.clone(), 1000 + i, 20_000 + i)))
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    checks.await.unwrap();
    assert!(!to_b.is_closed());
}

#[tokio::test]
async fn a_mute_listener_times_out_and_a_closed_peer_is_noticed() {
    use tokio::net::TcpListener;
    // A "peer" that accepts and then never says a word: the dialer gives up
    // on the handshake. (A peer silent after the handshake is the watchdog's
    // case, in tests/hostile.rs.)
    let secret = NetworkSecret::generate().unwrap();
    let quick = |c: &mut TransportConfig| {
        c.heartbeat_interval = Duration::from_millis(100);
        c.heartbeat_misses = 3;
        c.handshake_timeout = Duration::from_millis(300);
    };
    let (a, mut a_events) = node(quick, &secret).await;
    let mute = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mute_addr = mute.local_addr().unwrap();
    let _held = tokio::spawn(async move {
        let (socket, _) = mute.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(socket);
    });
    let err = a.dial(mute_addr).await.unwrap_err();
    assert!(
        matches!(err, nexnet_p2p::P2pError::HandshakeTimeout { .. }),
        "{err}"
    );

    // Now a real peer whose transport is closed abruptly: the survivor
    // notices through its events.
    let (b, _b_events) = node(quick, &secret).await;
    let to_b = a.dial(b.local_addr()).await.unwrap();
    b.close().await;
    let reason = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Event::Disconnected { peer, reason }) = a_events.next().await {
                assert_eq!(peer, to_b.node_id());
                return reason;
            }
        }
    })
    .await
    .expect("the dead peer is noticed");
    // However the peer's end reached us: a clean close, a reset socket, or
    // a frame cut short.
    assert!(
        matches!(
            &reason,
            CloseReason::PeerClosed | CloseReason::Read(_) | CloseReason::Write(_)
        ) || matches!(&reason, CloseReason::Codec(e) if matches!(**e, CodecError::Truncated { .. })),
        "{reason:?}"
    );
    assert!(to_b.is_closed());
    // What waits on the peer ends with it, not with its own time-out.
    tokio::time::timeout(Duration::from_secs(1), to_b.closed())
        .await
        .expect("closed() resolves once the connection has closed");
}

#[tokio::test]
async fn streams_past_the_limit_are_refused_and_the_rest_carry_on() {
    let secret = NetworkSecret::generate().unwrap();
    let (a, _a_events) = node(|_| {}, &secret).await;
    let (b, b_events) = node(|c| c.max_streams = 2, &secret).await;
    let (b_tx, mut b_rx) = mpsc::unbounded_channel();
    serve(b_events, b_tx);
    let to_b = a.dial(b.local_addr()).await.unwrap();

    // Two streams are accepted and held open; the third is refused.
    let mut held = Vec::new();
    for seed in 0..2 {
        let mut out = to_b.open_stream(Msg::Blob { seed, len: 3 }).await.unwrap();
        out.write_all(b"abc").await.unwrap();
        held.push(out);
    }
    let mut refused = to_b
        .open_stream(Msg::Blob { seed: 9, len: 0 })
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Err(e) = refused.write_all(&[0u8; 1024]).await {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the refused stream's writer learns of it");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");

    // The accepted streams are intact and the connection is healthy.
    for mut out in held {
        out.shutdown().await.unwrap();
    }
    for _ in 0..2 {
        let (_, mut stream) = b_rx.recv().await.unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"abc");
    }
    assert_eq!(
        to_b.request(Msg::Ping(5), Duration::from_secs(5))
            .await
            .unwrap(),
        Msg::Pong(5)
    );
}

#[tokio::test]
async fn strangers_cannot_take_the_connection_slots() {
    use tokio::net::TcpStream;
    let secret = NetworkSecret::generate().unwrap();
    let (b, b_events) = node(
        |c| {
            c.max_connections = 1;
            c.max_handshakes = 4;
        },
        &secret,
    )
    .await;
    let (b_tx, _b_rx) = mpsc::unbounded_channel();
    serve(b_events, b_tx);
    // Idle strangers, connected but never speaking.
    let mut strangers = Vec::new();
    for _ in 0..3 {
        strangers.push(TcpStream::connect(b.local_addr()).await.unwrap());
    }
    // A member still gets the one connection slot.
    let (a, _a_events) = node(|_| {}, &secret).await;
    let to_b = a.dial(b.local_addr()).await.unwrap();
    assert_eq!(
        to_b.request(Msg::Ping(1), Duration::from_secs(5))
            .await
            .unwrap(),
        Msg::Pong(1)
    );
    drop(strangers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_every_interesting_size_arrives_intact() {
    let secret = NetworkSecret::generate().unwrap();
    let (a, _a_events) = node(|_| {}, &secret).await;
    let (b, b_events) = node(|_| {}, &secret).await;
    let (b_tx, mut b_rx) = mpsc::unbounded_channel();
    serve(b_events, b_tx);
    let to_b = a.dial(b.local_addr()).await.unwrap();
    for (seed, &size) in nexnet_testkit::INTERESTING_SIZES.iter().enumerate() {
        let (seed, size) = (seed as u64, size as u64);
        let sender = tokio::spawn(send_blob(to_b.clone(), seed, size));
        let (msg, stream) = b_rx.recv().await.unwrap();
        assert_eq!(msg, Msg::Blob { seed, len: size });
        assert_eq!(
            digest_async_reader(stream).await.unwrap(),
            pattern_digest(seed, size),
            "size {size}"
        );
        sender.await.unwrap();

        // And through the zero-copy calls.
        let mut out = to_b
            .open_stream(Msg::Blob { seed, len: size })
            .await
            .unwrap();
        let bytes = bytes::Bytes::from(Pattern::to_vec(seed, size as usize));
        let writer = tokio::spawn(async move {
            out.write_chunk(bytes).await.unwrap();
            out.shutdown().await.unwrap();
        });
        let (_, mut stream) = b_rx.recv().await.unwrap();
        let mut got = Vec::new();
        while let Some(chunk) = stream.read_chunk().await.unwrap() {
            assert!(chunk.len() <= 64 * 1024, "frames are at most 64 KiB");
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, Pattern::to_vec(seed, size as usize), "size {size}");
        writer.await.unwrap();
    }
}
