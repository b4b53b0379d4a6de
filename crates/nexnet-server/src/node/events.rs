//! The transport's events, each handed to the side of the protocol that
//! deals with it. Nothing here waits on anything slow: the work is spawned,
//! so one peer's request never delays another's.

use std::sync::Arc;

use nexnet_p2p::{Event, Events, Peer, RecvStream, ResetCode};
use nexnet_store::Cid;
use tracing::debug;

use super::{Node, membership, provider};
use crate::protocol::Message;

/// Dispatches the transport's events until it closes.
pub(super) async fn run(node: Arc<Node>, mut events: Events<Message>) {
    loop {
        let event = tokio::select! {
            () = node.shutdown.cancelled() => return,
            e = events.next() => match e {
                Some(e) => e,
                None => return,
            },
        };
        handle(&node, event);
    }
}

fn handle(node: &Arc<Node>, event: Event<Message>) {
    match event {
        Event::Connected(peer) => membership::connected(node, peer),
        Event::Disconnected { peer, reason } => membership::disconnected(node, peer, &reason),
        Event::Message { peer, message } => on_message(node, &peer, message),
        Event::Request {
            peer,
            message,
            responder,
        } => {
            let n = node.clone();
            node.spawn(async move {
                let answer = provider::answer(&n, &peer, message).await;
                let _ = responder.respond(answer).await;
            });
        }
        Event::Stream {
            peer,
            message,
            stream,
        } => on_stream(node, &peer, message, stream),
        _ => {}
    }
}

/// A message that needs no answer.
fn on_message(node: &Arc<Node>, peer: &Peer<Message>, message: Message) {
    match message {
        Message::Tombstones(list) => provider::delete::tombstones(node, peer, list),
        Message::Corrupt { cid } => provider::serve::corrupt(node, peer, cid),
        other => debug!(peer = ?peer.node_id(), kind = other.kind(), "ignoring a message"),
    }
}

/// A stream a peer opened.
fn on_stream(node: &Arc<Node>, peer: &Peer<Message>, message: Message, stream: RecvStream) {
    match message {
        Message::Replicate { transfer } => {
            provider::commit::receive_replica(node, peer, transfer, stream);
        }
        Message::Chunk { transfer, cid, len } => {
            provider::chunk::receive(node, peer, transfer, Cid::from_bytes(cid), len, stream);
        }
        Message::Object { transfer } => {
            // A fetch registered its consumer before asking; if it gave up
            // meanwhile, the send fails and the stream is refused.
            let unwanted = match node.fetches.waiting_producer(&(peer.node_id(), transfer)) {
                Some(tx) => tx.send(stream).err(),
                None => Some(stream),
            };
            if let Some(stream) = unwanted {
                stream.reset(ResetCode::Refused);
            }
        }
        other => {
            debug!(peer = ?peer.node_id(), kind = other.kind(), "refusing a stream");
            stream.reset(ResetCode::Refused);
        }
    }
}
