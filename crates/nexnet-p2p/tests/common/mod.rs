//! Shared by the integration tests: a node's event loop for tests.
#![allow(dead_code)]

use nexnet_p2p::{Event, Events, Message};
use tokio::sync::mpsc;

/// Runs `events` the way an application should: each request is answered
/// on a task of its own with what `answer` gives for it, and every other
/// event (and any request `answer` declines) is handed to the returned
/// receiver.
pub fn serve<M: Message>(
    mut events: Events<M>,
    answer: impl Fn(&M) -> Option<M> + Send + 'static,
) -> mpsc::UnboundedReceiver<Event<M>> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let declined = match event {
                Event::Request {
                    peer,
                    message,
                    responder,
                } => match answer(&message) {
                    Some(reply) => {
                        tokio::spawn(responder.respond(reply));
                        continue;
                    }
                    None => Event::Request {
                        peer,
                        message,
                        responder,
                    },
                },
                other => other,
            };
            let _ = tx.send(declined);
        }
    });
    rx
}
