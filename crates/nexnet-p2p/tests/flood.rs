//! A member that floods: it knows the network secret, so it gets past the
//! handshake, then sends requests faster than they are answered, or
//! messages faster than its rate. The node holds at most its bounds of the
//! flooder's work, keeps the connection (the flooder only slows itself
//! down), and answers its other peers as usual meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use nexnet_p2p::{
    Event, Events, NetworkSecret, NodeId, Peer, Responder, TcpTransport, Transport, TransportConfig,
};
use serde::{Deserialize, Serialize};
use tokio::{sync::mpsc, time::timeout};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Msg {
    Work(u32),
    Done(u32),
    Note(u32),
}

async fn bind(secret: [u8; 32], tune: impl FnOnce(&mut TransportConfig)) -> Node {
    let mut config = TransportConfig::new(
        NodeId::generate().unwrap(),
        NetworkSecret::from_bytes(secret),
    );
    tune(&mut config);
    let (transport, events) = TcpTransport::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    Node { transport, events }
}

struct Node {
    transport: TcpTransport<Msg>,
    events: Events<Msg>,
}

/// What the target application saw, in order, with the means to answer.
enum Seen {
    Request(NodeId, u32, Responder<Msg>),
    Note(NodeId, u32),
}

/// Forwards the target's requests and notes to the test, unanswered.
fn record(mut events: Events<Msg>) -> mpsc::UnboundedReceiver<Seen> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let seen = match event {
                Event::Request {
                    peer,
                    message: Msg::Work(n),
                    responder,
                } => Seen::Request(peer.node_id(), n, responder),
                Event::Message {
                    peer,
                    message: Msg::Note(n),
                } => Seen::Note(peer.node_id(), n),
                _ => continue,
            };
            if tx.send(seen).is_err() {
                return;
            }
        }
    });
    rx
}

async fn next(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    timeout(WAIT, seen.recv())
        .await
        .expect("the target saw nothing")
        .expect("the target stopped")
}

async fn dial(from: &TcpTransport<Msg>, to: &TcpTransport<Msg>) -> Peer<Msg> {
    timeout(WAIT, from.dial(to.local_addr()))
        .await
        .unwrap()
        .unwrap()
}

/// While the flooder has `limit` requests unanswered, the target takes no
/// more of its requests; another peer is answered meanwhile; once the
/// target answers, the rest of the flood comes through and nothing is lost.
#[tokio::test]
async fn unanswered_requests_stop_the_flooder_not_the_node() {
    const LIMIT: usize = 8;
    const FLOOD: u32 = 200;
    let secret = *NodeId::generate().unwrap().as_bytes();
    let target = bind(secret, |c| c.max_pending_requests = LIMIT).await;
    // The flooder ignores the limit the protocol asks senders to keep.
    let flooder = bind(secret, |c| c.max_pending_requests = 10_000).await;
    let honest = bind(secret, |_| {}).await;
    let flooder_id = flooder.transport.local_id();
    let honest_id = honest.transport.local_id();
    let mut seen = record(target.events);

    let to_target = dial(&flooder.transport, &target.transport).await;
    let mut asked = Vec::new();
    for n in 0..FLOOD {
        let peer = to_target.clone();
        asked.push(tokio::spawn(async move {
            peer.request(Msg::Work(n), Duration::from_secs(60)).await
        }));
    }
    let mut held = Vec::new();
    while held.len() < LIMIT {
        match next(&mut seen).await {
            Seen::Request(from, n, responder) => {
                assert_eq!(from, flooder_id);
                held.push((n, responder));
            }
            Seen::Note(..) => unreachable!("the flooder sends no notes"),
        }
    }

    // The flooder is stuck, the honest peer is not.
    let to_target_honest = dial(&honest.transport, &target.transport).await;
    let answered = tokio::spawn(async move {
        to_target_honest
            .request(Msg::Work(7), Duration::from_secs(10))
            .await
    });
    match next(&mut seen).await {
        Seen::Request(from, n, responder) if from == honest_id => {
            responder.respond(Msg::Done(n)).await.unwrap();
        }
        Seen::Request(_, n, _) => panic!("flood request {n} past the limit of {LIMIT}"),
        Seen::Note(from, _) => panic!("note from {from:?} past the limit"),
    }
    assert_eq!(answered.await.unwrap().unwrap(), Msg::Done(7));
    assert!(
        seen.try_recv().is_err(),
        "the target took more of the flood"
    );

    // Answer everything: the rest of the flood comes through, each request
    // once; the connection survived.
    let mut taken = std::collections::BTreeSet::new();
    for (n, responder) in held.drain(..) {
        assert!(taken.insert(n));
        responder.respond(Msg::Done(n)).await.unwrap();
    }
    while taken.len() < FLOOD as usize {
        match next(&mut seen).await {
            Seen::Request(from, n, responder) => {
                assert_eq!(from, flooder_id);
                assert!(taken.insert(n), "request {n} delivered twice");
                responder.respond(Msg::Done(n)).await.unwrap();
            }
            Seen::Note(..) => unreachable!("the flooder sends no notes"),
        }
    }
    for (n, asked) in asked.into_iter().enumerate() {
        assert_eq!(asked.await.unwrap().unwrap(), Msg::Done(n as u32));
    }
    assert!(
        !to_target.is_closed(),
        "the flooder was slowed, not dropped"
    );
}

/// A dropped responder (a request the application decided not to answer)
/// frees its slot like an answer does.
#[tokio::test]
async fn a_dropped_responder_frees_its_slot() {
    let secret = *NodeId::generate().unwrap().as_bytes();
    let target = bind(secret, |c| c.max_pending_requests = 1).await;
    let client = bind(secret, |_| {}).await;
    let mut seen = record(target.events);
    let peer = dial(&client.transport, &target.transport).await;
    for n in 0..5 {
        let p = peer.clone();
        // Unanswered, so it times out on the requester's side.
        tokio::spawn(async move { p.request(Msg::Work(n), WAIT).await });
        // The target takes request n only if n - 1's slot is free again.
        match next(&mut seen).await {
            Seen::Request(_, got, responder) => {
                assert_eq!(got, n);
                drop(responder);
            }
            Seen::Note(..) => unreachable!(),
        }
    }
}

/// Messages past the rate are read at the rate: a burst of a second's
/// worth passes at once, the rest is spread out, nothing is lost, and the
/// connection stays up.
#[tokio::test]
async fn messages_past_the_rate_are_read_at_the_rate() {
    const RATE: u32 = 200;
    const SENT: u32 = 3 * RATE;
    let secret = *NodeId::generate().unwrap().as_bytes();
    let target = bind(secret, |c| c.message_rate = RATE).await;
    let flooder = bind(secret, |_| {}).await;
    let mut seen = record(target.events);
    let peer = dial(&flooder.transport, &target.transport).await;
    let start = Instant::now();
    for n in 0..SENT {
        peer.send(Msg::Note(n)).await.unwrap();
    }
    for n in 0..SENT {
        match next(&mut seen).await {
            Seen::Note(_, got) => assert_eq!(got, n),
            Seen::Request(..) => unreachable!(),
        }
    }
    // The first RATE passed on the burst; the other 2 × RATE needed at
    // least two seconds of refill (a lower bound: a slow machine only
    // makes it longer).
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "{SENT} messages at {RATE}/s were read in {took:?}"
    );
    assert!(!peer.is_closed());
}
