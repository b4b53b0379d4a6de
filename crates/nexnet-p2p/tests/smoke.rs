//! Two transports on loopback: handshake, messages, requests, streams, close.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{net::SocketAddr, time::Duration};

use nexnet_p2p::{
    CloseReason, Event, Events, NetworkSecret, NodeId, P2pError, Peer, TcpTransport, Transport,
    TransportConfig,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Msg {
    Hello(String),
    Ping(u64),
    Pong(u64),
    Upload { name: String, len: u64 },
}

const LOOPBACK: &str = "127.0.0.1:0";

async fn node(secret: &NetworkSecret) -> (TcpTransport<Msg>, Events<Msg>) {
    let config = TransportConfig::new(NodeId::generate().unwrap(), secret.clone());
    TcpTransport::bind(LOOPBACK.parse().unwrap(), config)
        .await
        .unwrap()
}

/// Answers every request `Ping(n)` with `Pong(n + 1)`, and records the rest.
fn serve(events: Events<Msg>) -> tokio::sync::mpsc::UnboundedReceiver<Event<Msg>> {
    common::serve(events, |m| match m {
        Msg::Ping(n) => Some(Msg::Pong(n + 1)),
        _ => None,
    })
}

#[tokio::test]
async fn two_nodes_handshake_talk_stream_and_close() {
    let secret = NetworkSecret::generate().unwrap();
    let (a, a_events) = node(&secret).await;
    let (b, b_events) = node(&secret).await;
    let mut a_seen = serve(a_events);
    let mut b_seen = serve(b_events);

    let to_b: Peer<Msg> = a.dial(b.local_addr()).await.unwrap();
    assert_eq!(to_b.node_id(), b.local_id());
    assert_eq!(to_b.listen_addr(), Some(b.local_addr()));

    // Both sides learn of the connection.
    let Some(Event::Connected(to_a)) = b_seen.recv().await else {
        panic!("b did not see a connect");
    };
    assert_eq!(to_a.node_id(), a.local_id());
    assert!(matches!(a_seen.recv().await, Some(Event::Connected(_))));

    // A one-way message.
    to_b.send(Msg::Hello("hi b".into())).await.unwrap();
    match b_seen.recv().await {
        Some(Event::Message { message, peer }) => {
            assert_eq!(message, Msg::Hello("hi b".into()));
            assert_eq!(peer.node_id(), a.local_id());
        }
        other => panic!("expected a message, got {other:?}"),
    }

    // Requests both ways find their callers.
    for n in 0..10 {
        let answer = to_b
            .request(Msg::Ping(n), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(answer, Msg::Pong(n + 1));
        let answer = to_a
            .request(Msg::Ping(n * 10), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(answer, Msg::Pong(n * 10 + 1));
    }

    // A stream, described by the message that opens it.
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut out = to_b
        .open_stream(Msg::Upload {
            name: "file".into(),
            len: payload.len() as u64,
        })
        .await
        .unwrap();
    let sender = {
        let payload = payload.clone();
        tokio::spawn(async move {
            out.write_all(&payload).await.unwrap();
            out.shutdown().await.unwrap();
        })
    };
    match b_seen.recv().await {
        Some(Event::Stream {
            message,
            mut stream,
            ..
        }) => {
            assert_eq!(
                message,
                Msg::Upload {
                    name: "file".into(),
                    len: payload.len() as u64
                }
            );
            let mut got = Vec::new();
            stream.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, payload);
        }
        other => panic!("expected a stream, got {other:?}"),
    }
    sender.await.unwrap();

    // Closing one side tells the other.
    to_b.close();
    loop {
        match b_seen.recv().await {
            Some(Event::Disconnected { peer, .. }) => {
                assert_eq!(peer, a.local_id());
                break;
            }
            Some(_) => continue,
            None => panic!("b's events ended"),
        }
    }
    assert!(matches!(
        to_b.send(Msg::Hello("late".into())).await,
        Err(P2pError::Disconnected {
            reason: CloseReason::LocalClose,
            ..
        })
    ));
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_request_nobody_answers_times_out() {
    let secret = NetworkSecret::generate().unwrap();
    let (a, _a_events) = node(&secret).await;
    let (b, mut b_events) = node(&secret).await;
    // b reads its events but never answers.
    tokio::spawn(async move { while b_events.next().await.is_some() {} });
    let to_b = a.dial(b.local_addr()).await.unwrap();
    let err = to_b
        .request(Msg::Hello("anyone?".into()), Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, P2pError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn a_wrong_secret_and_a_self_dial_are_refused() {
    let (a, _ae) = node(&NetworkSecret::generate().unwrap()).await;
    let (b, _be) = node(&NetworkSecret::generate().unwrap()).await;
    let err = a.dial(b.local_addr()).await.unwrap_err();
    assert!(
        matches!(
            err,
            P2pError::WrongSecret { .. } | P2pError::Handshake { .. } | P2pError::Protocol(_)
        ),
        "{err}"
    );
    let err = a.dial(a.local_addr()).await.unwrap_err();
    assert!(matches!(err, P2pError::SelfConnection { .. }), "{err}");
    assert!(a.peers().is_empty());
}

#[tokio::test]
async fn a_dropped_unfinished_writer_is_an_error_for_the_reader() {
    let secret = NetworkSecret::generate().unwrap();
    let (a, _ae) = node(&secret).await;
    let (b, b_events) = node(&secret).await;
    let mut b_seen = serve(b_events);
    let to_b = a.dial(b.local_addr()).await.unwrap();
    let mut out = to_b
        .open_stream(Msg::Upload {
            name: "half".into(),
            len: 100,
        })
        .await
        .unwrap();
    out.write_all(&[1u8; 50]).await.unwrap();
    loop {
        match b_seen.recv().await {
            Some(Event::Stream { mut stream, .. }) => {
                let mut first = [0u8; 50];
                stream.read_exact(&mut first).await.unwrap();
                // The writer goes away without finishing.
                drop(out);
                let err = stream.read_to_end(&mut Vec::new()).await.unwrap_err();
                assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
                break;
            }
            Some(_) => continue,
            None => panic!("events ended"),
        }
    }
    // The connection itself carries on.
    to_b.send(Msg::Hello("still here".into())).await.unwrap();
}

#[tokio::test]
async fn dialing_nothing_fails_promptly() {
    let secret = NetworkSecret::generate().unwrap();
    let (a, _ae) = node(&secret).await;
    // Bind and drop a listener to get a port nobody listens on.
    let free: SocketAddr = {
        let l = std::net::TcpListener::bind(LOOPBACK).unwrap();
        l.local_addr().unwrap()
    };
    let err = a.dial(free).await.unwrap_err();
    assert!(matches!(err, P2pError::Io { .. }), "{err}");
}
