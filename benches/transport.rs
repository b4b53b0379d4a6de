//! Transport throughput and latency over loopback, next to a raw TCP copy of
//! the same size measured in the same run.
//!
//! ```text
//! cargo bench --bench transport                 # 1 GiB
//! NEXNET_BENCH_MIB=256 cargo bench --bench transport
//! ```
//!
//! Prints: one stream, four concurrent streams, raw `TcpStream` copy (all in
//! MB/s), and request/response round-trip times (p50, p99) measured while a
//! stream saturates the connection.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use nexnet::p2p::{
    Event, Events, NetworkSecret, NodeId, Peer, TcpTransport, Transport, TransportConfig,
};
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Msg {
    Ping(u64),
    Pong(u64),
    /// A stream; `true` when both ends use the zero-copy chunk calls.
    Blob(bool),
}

const CHUNK: usize = 256 * 1024;

async fn write_zeros(mut w: impl AsyncWriteExt + Unpin, len: u64) {
    let buf = vec![0u8; CHUNK];
    let mut left = len;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        w.write_all(&buf[..n]).await.unwrap();
        left -= n as u64;
    }
    w.shutdown().await.unwrap();
}

async fn drain(mut r: impl AsyncReadExt + Unpin) -> u64 {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        let n = r.read(&mut buf).await.unwrap();
        if n == 0 {
            return total;
        }
        total += n as u64;
    }
}

async fn raw_tcp(len: u64) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        drain(s).await
    });
    let started = Instant::now();
    let s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    write_zeros(s, len).await;
    assert_eq!(server.await.unwrap(), len);
    len as f64 / started.elapsed().as_secs_f64() / 1e6
}

/// A receiving node that drains every stream and answers pings; returns the
/// sender's peer handle.
async fn pair() -> (
    TcpTransport<Msg>,
    TcpTransport<Msg>,
    Peer<Msg>,
    tokio::sync::mpsc::UnboundedReceiver<u64>,
) {
    let secret = NetworkSecret::generate().unwrap();
    let config = |s: &NetworkSecret| TransportConfig::new(NodeId::generate().unwrap(), s.clone());
    let (a, mut a_events): (TcpTransport<Msg>, Events<Msg>) =
        TcpTransport::bind("127.0.0.1:0".parse().unwrap(), config(&secret))
            .await
            .unwrap();
    let (b, mut b_events) = TcpTransport::bind("127.0.0.1:0".parse().unwrap(), config(&secret))
        .await
        .unwrap();
    let (done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = a_events.next().await {
            if let Event::Disconnected { reason, .. } = event {
                eprintln!("sender side: connection closed: {reason}");
            }
        }
    });
    tokio::spawn(async move {
        while let Some(event) = b_events.next().await {
            match event {
                Event::Stream {
                    stream,
                    message: Msg::Blob(zero_copy),
                    ..
                } => {
                    let done = done_tx.clone();
                    tokio::spawn(async move {
                        let total = if zero_copy {
                            let mut stream = stream;
                            let mut total = 0;
                            while let Some(chunk) = stream.read_chunk().await.unwrap() {
                                total += chunk.len() as u64;
                            }
                            total
                        } else {
                            drain(stream).await
                        };
                        let _ = done.send(total);
                    });
                }
                Event::Request {
                    message: Msg::Ping(n),
                    responder,
                    ..
                } => {
                    tokio::spawn(responder.respond(Msg::Pong(n)));
                }
                Event::Disconnected { reason, .. } => {
                    eprintln!("receiver side: connection closed: {reason}");
                }
                _ => {}
            }
        }
    });
    let peer = a.dial(b.local_addr()).await.unwrap();
    (a, b, peer, done_rx)
}

async fn streams(
    peer: &Peer<Msg>,
    done: &mut tokio::sync::mpsc::UnboundedReceiver<u64>,
    count: u64,
    len: u64,
    zero_copy: bool,
) -> f64 {
    let started = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..count {
        let peer = peer.clone();
        senders.push(tokio::spawn(async move {
            let mut out = peer.open_stream(Msg::Blob(zero_copy)).await.unwrap();
            if zero_copy {
                let chunk = bytes::Bytes::from(vec![0u8; CHUNK]);
                let mut left = len / count;
                while left > 0 {
                    let n = left.min(CHUNK as u64) as usize;
                    out.write_chunk(chunk.slice(..n)).await.unwrap();
                    left -= n as u64;
                }
                out.shutdown().await.unwrap();
            } else {
                write_zeros(out, len / count).await;
            }
        }));
    }
    let mut total = 0;
    for _ in 0..count {
        total += done.recv().await.unwrap();
    }
    for s in senders {
        s.await.unwrap();
    }
    assert_eq!(total, len / count * count);
    total as f64 / started.elapsed().as_secs_f64() / 1e6
}

async fn rtt_under_load(
    peer: &Peer<Msg>,
    done: &mut tokio::sync::mpsc::UnboundedReceiver<u64>,
    len: u64,
) -> (Duration, Duration, usize) {
    let sender = {
        let peer = peer.clone();
        tokio::spawn(async move {
            let out = peer.open_stream(Msg::Blob(false)).await.unwrap();
            write_zeros(out, len).await;
        })
    };
    let mut samples = Vec::new();
    let mut n = 0;
    while !sender.is_finished() {
        let t = Instant::now();
        peer.request(Msg::Ping(n), Duration::from_secs(5))
            .await
            .unwrap();
        samples.push(t.elapsed());
        n += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    sender.await.unwrap();
    done.recv().await.unwrap();
    samples.sort();
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    (pct(0.5), pct(0.99), samples.len())
}

fn main() {
    let mib: u64 = std::env::var("NEXNET_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let len = mib << 20;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (_a, _b, peer, mut done) = pair().await;
        // Warm up the connection and the allocator.
        streams(&peer, &mut done, 1, 64 << 20, false).await;
        eprintln!("raw TCP...");
        let raw = raw_tcp(len).await;
        eprintln!("one stream...");
        let one = streams(&peer, &mut done, 1, len, false).await;
        eprintln!("four streams...");
        let four = streams(&peer, &mut done, 4, len, false).await;
        eprintln!("one stream, zero-copy...");
        let one_zc = streams(&peer, &mut done, 1, len, true).await;
        eprintln!("four streams, zero-copy...");
        let four_zc = streams(&peer, &mut done, 4, len, true).await;
        eprintln!("raw TCP again...");
        let raw2 = raw_tcp(len).await;
        eprintln!("round trips under load...");
        let (p50, p99, count) = rtt_under_load(&peer, &mut done, len).await;
        let raw = raw.max(raw2);
        println!("transport over loopback, {mib} MiB per run");
        println!("  raw TcpStream copy       {raw:8.0} MB/s (best of two, before and after)");
        println!("  one stream               {one:8.0} MB/s  ({:.2}x raw)  AsyncWrite/AsyncRead", one / raw);
        println!("  four concurrent streams  {four:8.0} MB/s  ({:.2}x raw)", four / raw);
        println!("  one stream, zero-copy    {one_zc:8.0} MB/s  ({:.2}x raw)  write_chunk/read_chunk", one_zc / raw);
        println!("  four streams, zero-copy  {four_zc:8.0} MB/s  ({:.2}x raw)", four_zc / raw);
        println!("  request/response RTT during a saturating stream: p50 {p50:?}, p99 {p99:?} ({count} requests)");
    });
}
