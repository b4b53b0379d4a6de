//! The reading side of a connection: what the peer's frames make us do.
//!
//! An [`Inbound`] runs on a connection's reader task and holds everything
//! only that task needs: the streams the peer has opened so far and the
//! bounds on how much work the peer may give us. Each frame becomes an event
//! for the application, bytes for a stream, or the reason the peer is dropped.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures::StreamExt;
use nexnet_codec::{
    Control, Frame, FrameCodec, FrameKind, MAX_DATA_PAYLOAD, ResetCode, StreamId, decode_message,
};
use parking_lot::Mutex;
use tokio::{
    net::tcp::OwnedReadHalf,
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    time::Instant,
};
use tokio_util::codec::FramedRead;
use tracing::{debug, warn};

use crate::{
    CloseReason, TransportConfig,
    connection::{Conn, Event, Message, Peer, Responder},
    handshake::Role,
    limit::RateLimit,
    stream::{Chunk, InStream, RecvStream},
};

pub(crate) type FrameStream = FramedRead<OwnedReadHalf, FrameCodec>;

/// `Err` is a protocol violation, with the reason the connection closes for.
type Verdict = Result<(), CloseReason>;

/// How many early resets a peer may have outstanding.
const MAX_EARLY_RESETS: usize = 1024;

/// Data payloads below this are copied out of the read buffer.
const SMALL_PAYLOAD: usize = 4096;

/// How often a reader that waits on our side (the application, a request
/// slot) tells the watchdog that the silence is not the peer's.
const STILL_HERE: Duration = Duration::from_millis(500);

/// The reader of one connection.
///
/// A peer sends messages, requests and stream openings at a bounded rate,
/// has a bounded number of requests unanswered and of streams open. Past the
/// first two bounds we stop reading from it for a while: its socket buffers
/// fill and it waits, while other peers are served as usual. Streams past
/// the third are refused.
pub(crate) struct Inbound<M> {
    conn: Arc<Conn<M>>,
    events: mpsc::Sender<Event<M>>,
    /// When the peer last sent a frame, as far as the watchdog is concerned.
    last_heard: Arc<Mutex<Instant>>,
    /// The highest stream id the peer has opened: ids only grow, so a frame
    /// for a lower id is for a stream already closed (and is dropped), while
    /// one for a higher id was never opened (a protocol error).
    highest: u32,
    /// Streams the peer reset before their open frame arrived (a reset may
    /// overtake the open, which waits in the data queue). Bounded.
    reset_early: HashSet<u32>,
    /// Most streams the peer may have open towards us at once.
    max_streams: usize,
    /// Slots for the peer's requests we have not answered yet.
    requests: Arc<Semaphore>,
    rate: Option<RateLimit>,
    /// Whether the slowdown was logged (once per connection is enough).
    warned: bool,
}

impl<M: Message> Inbound<M> {
    pub(crate) fn new(
        conn: Arc<Conn<M>>,
        events: mpsc::Sender<Event<M>>,
        config: &TransportConfig,
    ) -> Self {
        Self {
            conn,
            events,
            last_heard: Arc::new(Mutex::new(Instant::now())),
            highest: 0,
            reset_early: HashSet::new(),
            max_streams: config.max_streams,
            requests: Arc::new(Semaphore::new(config.max_pending_requests.max(1))),
            rate: RateLimit::new(config.message_rate),
            warned: false,
        }
    }

    /// The clock the watchdog reads, started now: the time since the
    /// handshake (the `Connected` event may have waited on the application)
    /// is not the peer's silence.
    pub(crate) fn last_heard(&self) -> Arc<Mutex<Instant>> {
        self.heard();
        self.last_heard.clone()
    }

    /// Reads frames until the peer closes the connection or breaks the
    /// protocol; returns why it ended.
    pub(crate) async fn run(mut self, mut frames: FrameStream) -> CloseReason {
        loop {
            let frame = match frames.next().await {
                None => return CloseReason::PeerClosed,
                Some(Err(e)) => {
                    warn!(error = %e, "dropping peer for a protocol error");
                    return CloseReason::read(e);
                }
                Some(Ok(frame)) => frame,
            };
            self.heard();
            if let Err(reason) = self.handle(frame).await {
                warn!(%reason, "dropping peer for a protocol error");
                return reason;
            }
        }
    }

    async fn handle(&mut self, frame: Frame) -> Verdict {
        match frame.kind {
            FrameKind::Control => self.control(&frame).await,
            FrameKind::Open => self.open(&frame).await,
            FrameKind::Data => self.data(frame),
            FrameKind::End => self.end(frame.stream),
            FrameKind::Reset => self.reset(&frame),
            FrameKind::Credit => self.credit(&frame),
            FrameKind::Ping => self.ping(&frame),
            // A pong only shows the peer is alive, and `run` noted that.
            FrameKind::Pong => Ok(()),
        }
    }

    async fn control(&mut self, frame: &Frame) -> Verdict {
        match Control::<M>::decode(&frame.payload).map_err(CloseReason::codec)? {
            Control::Notify(message) => {
                self.notify(message).await;
                Ok(())
            }
            Control::Request { id, body } => self.request(id, body).await,
            Control::Response { id, body } => {
                self.response(id, body);
                Ok(())
            }
        }
    }

    async fn notify(&mut self, message: M) {
        self.pace().await;
        let peer = Peer::new(self.conn.clone());
        self.deliver(Event::Message { peer, message }).await;
    }

    async fn request(&mut self, id: u64, message: M) -> Verdict {
        self.pace().await;
        let slot = self.request_slot().await?;
        let event = Event::Request {
            peer: Peer::new(self.conn.clone()),
            message,
            responder: Responder::new(id, self.conn.clone(), slot),
        };
        self.deliver(event).await;
        Ok(())
    }

    fn response(&self, id: u64, body: M) {
        let waiter = self.conn.pending.lock().remove(&id);
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(body);
            }
            None => debug!(id, "response to a request no longer waited for"),
        }
    }

    async fn open(&mut self, frame: &Frame) -> Verdict {
        let id = frame.stream;
        if !self.peer_opened(id) || id.0 <= self.highest {
            return Err(CloseReason::OpenedOutOfTurn {
                stream: id,
                highest: StreamId(self.highest),
            });
        }
        self.highest = id.0;
        let message: M = decode_message(&frame.payload).map_err(CloseReason::codec)?;
        self.pace().await;
        if self.reset_early.remove(&id.0) {
            debug!(%id, "stream cancelled before it opened");
            return Ok(());
        }
        let link = &self.conn.link;
        if link.in_streams.lock().len() >= self.max_streams {
            // Refused, not fatal: the peer may retry once others end.
            debug!(%id, "too many open streams; refusing");
            let _ = link.urgent_tx.send(Frame::reset(id, ResetCode::Refused));
            return Ok(());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let unacked = Arc::new(AtomicU64::new(0));
        let bookkeeping = InStream {
            tx,
            unacked: unacked.clone(),
        };
        link.in_streams.lock().insert(id, bookkeeping);
        let event = Event::Stream {
            peer: Peer::new(self.conn.clone()),
            message,
            stream: RecvStream::new(id, link.clone(), rx, unacked),
        };
        self.deliver(event).await;
        Ok(())
    }

    fn data(&self, frame: Frame) -> Verdict {
        let (id, payload) = (frame.stream, frame.payload);
        let link = &self.conn.link;
        let streams = link.in_streams.lock();
        let Some(stream) = streams.get(&id) else {
            return self.stale_or_unknown(id, FrameKind::Data);
        };
        if payload.len() > MAX_DATA_PAYLOAD {
            return Err(CloseReason::DataTooLarge {
                stream: id,
                len: payload.len(),
                max: MAX_DATA_PAYLOAD,
            });
        }
        let len = payload.len() as u64;
        let unacked = stream.unacked.fetch_add(len, Ordering::AcqRel) + len;
        if unacked > u64::from(link.window) {
            return Err(CloseReason::CreditExceeded {
                stream: id,
                sent: unacked,
                window: link.window,
            });
        }
        // A small payload is copied out, so it cannot keep a whole read
        // buffer alive while the window counts only its few bytes.
        let payload = if payload.len() < SMALL_PAYLOAD {
            Bytes::copy_from_slice(&payload)
        } else {
            payload
        };
        let _ = stream.tx.send(Chunk::Data(payload));
        Ok(())
    }

    fn end(&self, id: StreamId) -> Verdict {
        let Some(stream) = self.conn.link.in_streams.lock().remove(&id) else {
            return self.stale_or_unknown(id, FrameKind::End);
        };
        let _ = stream.tx.send(Chunk::End);
        Ok(())
    }

    fn reset(&mut self, frame: &Frame) -> Verdict {
        let (id, code) = (
            frame.stream,
            frame.reset_code().map_err(CloseReason::codec)?,
        );
        if !self.peer_opened(id) {
            self.conn.link.reset_out(id, code);
            return Ok(());
        }
        let stream = self.conn.link.in_streams.lock().remove(&id);
        if let Some(stream) = stream {
            let _ = stream.tx.send(Chunk::Reset(code));
        } else if id.0 > self.highest {
            if self.reset_early.len() >= MAX_EARLY_RESETS {
                return Err(CloseReason::TooManyEarlyResets {
                    limit: MAX_EARLY_RESETS,
                });
            }
            self.reset_early.insert(id.0);
        }
        Ok(())
    }

    fn credit(&self, frame: &Frame) -> Verdict {
        let bytes = frame.credit_amount().map_err(CloseReason::codec)?;
        self.conn.link.grant(frame.stream, bytes);
        Ok(())
    }

    fn ping(&self, frame: &Frame) -> Verdict {
        let nonce = frame.nonce().map_err(CloseReason::codec)?;
        // A peer flooding pings gets fewer pongs, not more of our memory.
        let _ = self.conn.control_tx.try_send(Frame::pong(nonce));
        Ok(())
    }

    fn peer_opened(&self, id: StreamId) -> bool {
        // The peer numbers its streams odd if it dialed (we listen), even if not.
        match self.conn.role {
            Role::Listener => !id.0.is_multiple_of(2),
            Role::Dialer => id.0.is_multiple_of(2) && id.0 != 0,
        }
    }

    fn stale_or_unknown(&self, id: StreamId, kind: FrameKind) -> Verdict {
        if self.peer_opened(id) && id.0 <= self.highest {
            // A stream we already closed or refused: its last frames may
            // still have been on the way.
            Ok(())
        } else {
            Err(CloseReason::UnknownStream { stream: id, kind })
        }
    }

    /// Resets the watchdog's clock: on every frame, and whenever we, not
    /// the peer, are why nothing is read.
    fn heard(&self) {
        *self.last_heard.lock() = Instant::now();
    }

    fn flooding(&mut self, what: &str) {
        if !self.warned {
            self.warned = true;
            warn!("peer {what}; reading from it more slowly");
        }
    }

    /// Waits until the peer may send one more message.
    async fn pace(&mut self) {
        while let Some(wait) = self.rate.as_mut().and_then(RateLimit::take) {
            self.flooding("sends messages faster than its rate");
            tokio::time::sleep(wait).await;
            self.heard();
        }
    }

    /// A slot for one more of the peer's requests, once one is free.
    async fn request_slot(&mut self) -> Result<OwnedSemaphorePermit, CloseReason> {
        let slots = self.requests.clone();
        if let Ok(slot) = slots.clone().try_acquire_owned() {
            return Ok(slot);
        }
        self.flooding("has too many requests unanswered");
        loop {
            match tokio::time::timeout(STILL_HERE, slots.clone().acquire_owned()).await {
                Ok(Ok(slot)) => return Ok(slot),
                Ok(Err(_)) => return Err(CloseReason::RequestSlotsClosed),
                Err(_) => self.heard(),
            }
        }
    }

    /// Hands an event to the application. While the application is slow to
    /// take it, this connection is not reading.
    async fn deliver(&self, event: Event<M>) {
        let mut send = std::pin::pin!(self.events.send(event));
        while tokio::time::timeout(STILL_HERE, &mut send).await.is_err() {
            self.heard();
        }
    }
}
