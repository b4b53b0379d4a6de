//! One connection to a peer: a reader loop and a writer loop in one task,
//! and the [`Peer`] handle the application uses.

use std::{
    collections::HashMap,
    fmt,
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use std::io::IoSlice;

use bytes::Bytes;
use futures::StreamExt;
use nexnet_codec::{
    Control, Frame, FrameCodec, FrameKind, MAX_DATA_PAYLOAD, ResetCode, StreamId, decode_message,
    encode_message,
};
use serde::{Serialize, de::DeserializeOwned};
use tokio::{
    io::AsyncWriteExt,
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot},
    time::Instant,
};
use tokio_util::{
    codec::{Framed, FramedRead},
    sync::CancellationToken,
};
use tracing::{Instrument, debug, warn};

use crate::{
    NodeId, P2pError, Result, TransportConfig,
    handshake::{Remote, Role},
    limit::RateLimit,
    stream::{Chunk, InStream, Link, RecvStream, SendStream},
};

/// What an application's message type must be: postcard-serialisable and
/// sendable across tasks.
pub trait Message: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Message for T {}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Something that happened on the transport.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<M> {
    /// A peer finished the handshake (either side dialed).
    Connected(Peer<M>),
    /// A connection closed.
    Disconnected {
        /// The peer.
        peer: NodeId,
        /// Why (for logs and metrics).
        reason: String,
    },
    /// A message that expects no reply.
    Message {
        /// Who sent it.
        peer: Peer<M>,
        /// The message.
        message: M,
    },
    /// A request: answer it through `responder`.
    Request {
        /// Who asked.
        peer: Peer<M>,
        /// The request.
        message: M,
        /// Sends the response.
        responder: Responder<M>,
    },
    /// A stream the peer opened, described by `message`.
    Stream {
        /// Who opened it.
        peer: Peer<M>,
        /// What the stream is (the message given to `open_stream`).
        message: M,
        /// Its bytes.
        stream: RecvStream,
    },
}

/// Answers one request. Until it is used or dropped, the request counts
/// towards the peer's requests in flight.
pub struct Responder<M> {
    id: u64,
    conn: Arc<Conn<M>>,
    _slot: OwnedSemaphorePermit,
}

impl<M> fmt::Debug for Responder<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder").field("id", &self.id).finish()
    }
}

impl<M: Message> Responder<M> {
    /// Sends the response. Fails if the connection is gone.
    pub async fn respond(self, message: M) -> Result<()> {
        self.conn
            .send_control(Control::Response {
                id: self.id,
                body: message,
            })
            .await
    }
}

/// The connection state behind a [`Peer`].
pub(crate) struct Conn<M> {
    remote: Remote,
    role: Role,
    link: Arc<Link>,
    control_tx: mpsc::Sender<Frame>,
    pending: Mutex<HashMap<u64, oneshot::Sender<M>>>,
    next_request: AtomicU64,
    next_stream: AtomicU32,
    /// Held while a stream id is taken and its open frame queued.
    opening: tokio::sync::Mutex<()>,
    close_reason: Mutex<Option<String>>,
    /// Largest control message we send: what the peer said it accepts.
    max_payload: usize,
    /// Most streams the peer may have open towards us at once.
    max_streams: usize,
    /// Slots for our requests in flight to the peer.
    requests_out: Arc<Semaphore>,
    /// Slots for the peer's requests we have not answered yet.
    requests_in: Arc<Semaphore>,
}

impl<M: Message> Conn<M> {
    fn disconnected(&self) -> P2pError {
        P2pError::Disconnected {
            peer: self.remote.node_id,
            reason: lock(&self.close_reason)
                .clone()
                .unwrap_or_else(|| "closed".into()),
        }
    }

    async fn send_control(&self, control: Control<M>) -> Result<()> {
        let payload = control.encode()?;
        if payload.len() > self.max_payload {
            // The peer would drop the connection for it: refuse it here.
            return Err(P2pError::Protocol(
                nexnet_codec::CodecError::FrameTooLarge {
                    len: payload.len() as u64,
                    max: self.max_payload as u64,
                },
            ));
        }
        let frame = Frame::control(payload);
        tokio::select! {
            sent = self.control_tx.send(frame) => sent.map_err(|_| self.disconnected()),
            () = self.link.closed.cancelled() => Err(self.disconnected()),
        }
    }

    fn close(&self, reason: impl Into<String>) {
        let mut slot = lock(&self.close_reason);
        if slot.is_none() {
            *slot = Some(reason.into());
        }
        drop(slot);
        self.link.closed.cancel();
    }
}

/// A connected peer. Cloning is cheap; all clones share the connection.
pub struct Peer<M> {
    conn: Arc<Conn<M>>,
}

impl<M> Clone for Peer<M> {
    fn clone(&self) -> Self {
        Self {
            conn: self.conn.clone(),
        }
    }
}

impl<M> fmt::Debug for Peer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("node_id", &self.conn.remote.node_id)
            .field("addr", &self.conn.remote.addr)
            .finish()
    }
}

impl<M: Message> Peer<M> {
    /// The peer's node id, proven by the handshake.
    pub fn node_id(&self) -> NodeId {
        self.conn.remote.node_id
    }

    /// The address the peer says it accepts connections on.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.conn.remote.listen_addr
    }

    /// The address of the connection's other end.
    pub fn remote_addr(&self) -> SocketAddr {
        self.conn.remote.addr
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.conn.link.closed.is_cancelled()
    }

    /// Sends a message that expects no reply.
    pub async fn send(&self, message: M) -> Result<()> {
        self.conn.send_control(Control::Notify(message)).await
    }

    /// Sends a request and waits for its response, at most `timeout`.
    ///
    /// At most `max_pending_requests` requests are in flight to one peer;
    /// more wait for a slot (within `timeout`), so an honest node never
    /// runs into the limit the peer enforces on its side.
    pub async fn request(&self, message: M, timeout: Duration) -> Result<M> {
        let id = self.conn.next_request.fetch_add(1, Ordering::Relaxed);
        let asked = async {
            // The semaphore is never closed; a failure would mean it was.
            let _slot = self
                .conn
                .requests_out
                .acquire()
                .await
                .map_err(|_| self.conn.disconnected())?;
            let (tx, rx) = oneshot::channel();
            lock(&self.conn.pending).insert(id, tx);
            self.conn
                .send_control(Control::Request { id, body: message })
                .await?;
            rx.await.map_err(|_| self.conn.disconnected())
        };
        let answer = tokio::time::timeout(timeout, asked).await;
        lock(&self.conn.pending).remove(&id);
        answer.map_err(|_| P2pError::Timeout {
            peer: self.node_id(),
            after: timeout,
        })?
    }

    /// Opens a stream described by `message`; the peer receives it as an
    /// [`Event::Stream`]. Write the bytes, then `shutdown()`.
    pub async fn open_stream(&self, message: M) -> Result<SendStream> {
        let conn = &self.conn;
        let payload = encode_message(&message)?;
        // Ids must reach the peer in increasing order, so taking an id and
        // queueing its open frame happen under one lock.
        let opening = conn.opening.lock().await;
        let n = conn.next_stream.fetch_add(1, Ordering::Relaxed);
        // Dialers number streams odd, listeners even; ids never wrap.
        let id = match conn.role {
            Role::Dialer => n.checked_mul(2).and_then(|n| n.checked_add(1)),
            Role::Listener => n.checked_mul(2).and_then(|n| n.checked_add(2)),
        }
        .map(StreamId)
        .ok_or(P2pError::StreamIdsExhausted {
            peer: conn.remote.node_id,
        })?;
        // Made before the await: if this future is dropped, so is the
        // stream, and its bookkeeping with it.
        let mut stream = SendStream::new(id, conn.link.clone(), conn.link.add_out_stream(id));
        let sent = tokio::select! {
            sent = conn.link.data_tx.send(Frame::open(id, payload)) => sent.is_ok(),
            () = conn.link.closed.cancelled() => false,
        };
        drop(opening);
        if sent {
            stream.announced();
            Ok(stream)
        } else {
            Err(conn.disconnected())
        }
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.conn.close("closed locally");
    }
}

/// Sets up a connection after its handshake and runs it until it closes.
/// Returns the peer handle and the future that drives the connection.
pub(crate) fn start<M: Message>(
    framed: Framed<TcpStream, FrameCodec>,
    remote: Remote,
    role: Role,
    config: &TransportConfig,
    events: mpsc::Sender<Event<M>>,
    shutdown: CancellationToken,
) -> (Peer<M>, impl Future<Output = ()> + Send + 'static) {
    let (data_tx, data_rx) = mpsc::channel(4);
    let (urgent_tx, urgent_rx) = mpsc::unbounded_channel();
    let (control_tx, control_rx) = mpsc::channel(64);
    let link = Arc::new(Link {
        data_tx,
        urgent_tx,
        out_streams: Mutex::default(),
        in_streams: Mutex::default(),
        closed: shutdown.child_token(),
        window: config.stream_window,
        peer_window: remote.stream_window,
    });
    let peer_max_payload = remote.max_payload;
    let conn = Arc::new(Conn {
        remote,
        role,
        link,
        control_tx,
        pending: Mutex::default(),
        next_request: AtomicU64::new(1),
        next_stream: AtomicU32::new(0),
        opening: tokio::sync::Mutex::new(()),
        close_reason: Mutex::new(None),
        max_payload: peer_max_payload,
        max_streams: config.max_streams,
        requests_out: Arc::new(Semaphore::new(config.max_pending_requests.max(1))),
        requests_in: Arc::new(Semaphore::new(config.max_pending_requests.max(1))),
    });
    let peer = Peer { conn: conn.clone() };
    let queues = Queues {
        urgent: urgent_rx,
        control: control_rx,
        data: data_rx,
    };
    // Zero would make the heartbeat spin (and `interval` panic).
    let heartbeat = (
        config.heartbeat_interval.max(Duration::from_millis(10)),
        config.heartbeat_misses.max(1),
    );
    let span = tracing::info_span!(
        "connection",
        peer = ?conn.remote.node_id,
        addr = %conn.remote.addr
    );
    let rate = RateLimit::new(config.message_rate);
    let driver = drive(conn, framed, queues, events, heartbeat, rate, shutdown).instrument(span);
    (peer, driver)
}

struct Queues {
    urgent: mpsc::UnboundedReceiver<Frame>,
    control: mpsc::Receiver<Frame>,
    data: mpsc::Receiver<Frame>,
}

async fn drive<M: Message>(
    conn: Arc<Conn<M>>,
    framed: Framed<TcpStream, FrameCodec>,
    queues: Queues,
    events: mpsc::Sender<Event<M>>,
    (interval, misses): (Duration, u32),
    rate: Option<RateLimit>,
    shutdown: CancellationToken,
) {
    // Split the socket: frames are read through the codec (keeping whatever
    // the handshake already buffered), and written with vectored writes so a
    // data frame's payload is never copied into a write buffer.
    let parts = framed.into_parts();
    let (read_half, sink) = parts.io.into_split();
    let mut stream = FramedRead::new(read_half, parts.codec);
    stream.read_buffer_mut().extend_from_slice(&parts.read_buf);
    // One task reads, one writes, so the two directions use two cores; this
    // task watches them, and the peer's silence.
    let last_heard = Arc::new(Mutex::new(Instant::now()));
    let mut reader = tokio::spawn({
        let (conn, events, last_heard) = (conn.clone(), events.clone(), last_heard.clone());
        async move { read_loop(&conn, stream, &events, &last_heard, rate).await }.in_current_span()
    });
    let mut writer =
        tokio::spawn(write_loop(sink, queues, interval, interval * misses).in_current_span());
    let task_failed = |e: tokio::task::JoinError| format!("connection task failed: {e}");
    let (mut reader_done, mut writer_done) = (false, false);
    let reason = tokio::select! {
        r = &mut reader => {
            reader_done = true;
            r.unwrap_or_else(task_failed)
        }
        r = &mut writer => {
            writer_done = true;
            r.unwrap_or_else(task_failed)
        }
        r = watchdog(&last_heard, interval, misses) => r,
        () = conn.link.closed.cancelled() => lock(&conn.close_reason).clone().unwrap_or_else(|| "transport shut down".into()),
    };
    reader.abort();
    writer.abort();
    // Wait for both, so the socket is closed when this returns.
    if !reader_done {
        let _ = reader.await;
    }
    if !writer_done {
        let _ = writer.await;
    }
    conn.close(reason.clone());
    conn.link.close_streams();
    lock(&conn.pending).clear();
    debug!(%reason, "connection closed");
    let event = Event::Disconnected {
        peer: conn.remote.node_id,
        reason,
    };
    // A closing transport does not wait for an application that has stopped
    // taking events (close() waits for this task).
    tokio::select! {
        _ = events.send(event) => {}
        () = shutdown.cancelled() => {}
    }
}

type FrameSink = OwnedWriteHalf;
type FrameStream = FramedRead<OwnedReadHalf, FrameCodec>;

/// Writes frames with vectored writes: headers and payloads go to the
/// socket straight from where they are, never copied into a write buffer.
async fn write_frames(sink: &mut FrameSink, frames: &[Frame]) -> std::io::Result<()> {
    let headers: Vec<[u8; nexnet_codec::FRAME_HEADER_LEN]> =
        frames.iter().map(Frame::header).collect();
    let mut slices: Vec<IoSlice<'_>> = headers
        .iter()
        .zip(frames)
        .flat_map(|(h, f)| [IoSlice::new(h), IoSlice::new(&f.payload)])
        .filter(|s| !s.is_empty())
        .collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        let n = sink.write_vectored(slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

async fn write_loop(
    mut sink: FrameSink,
    mut q: Queues,
    interval: Duration,
    stall_limit: Duration,
) -> String {
    let mut heartbeat = tokio::time::interval(interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut nonce = 0u64;
    loop {
        // Credits and resets first, then control messages, then data: a
        // control message waits for at most one batch of data frames.
        let frame = tokio::select! {
            biased;
            Some(f) = q.urgent.recv() => f,
            Some(f) = q.control.recv() => f,
            Some(f) = q.data.recv() => f,
            _ = heartbeat.tick() => {
                nonce += 1;
                Frame::ping(nonce)
            }
        };
        // Whatever else is ready goes out in the same system call, still in
        // priority order; a batch is bounded so control frames arriving
        // meanwhile wait for at most one batch.
        let mut batch = vec![frame];
        let mut bytes = batch[0].wire_len();
        while batch.len() < MAX_BATCH_FRAMES && bytes < MAX_BATCH_BYTES {
            let next = q
                .urgent
                .try_recv()
                .or_else(|_| q.control.try_recv())
                .or_else(|_| q.data.try_recv());
            let Ok(frame) = next else { break };
            bytes += frame.wire_len();
            batch.push(frame);
        }
        // A peer that stops reading would block this write forever: give it
        // as long as the watchdog gives a silent peer.
        match tokio::time::timeout(stall_limit, write_frames(&mut sink, &batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return format!("write failed: {e}"),
            Err(_) => return format!("the peer has not read for {stall_limit:?}"),
        }
    }
}

/// Ends the connection once the peer has been silent (no frame at all, not
/// even a pong) for `misses` heartbeat intervals. Separate from the writer, so
/// a write blocked on a dead peer cannot hide its death.
async fn watchdog(last_heard: &Mutex<Instant>, interval: Duration, misses: u32) -> String {
    loop {
        tokio::time::sleep(interval).await;
        let silent = lock(last_heard).elapsed();
        if silent > interval * misses {
            return format!("no frame from the peer for {silent:?}");
        }
    }
}

const MAX_BATCH_FRAMES: usize = 16;
const MAX_BATCH_BYTES: usize = 256 * 1024;

async fn read_loop<M: Message>(
    conn: &Arc<Conn<M>>,
    mut stream: FrameStream,
    events: &mpsc::Sender<Event<M>>,
    last_heard: &Mutex<Instant>,
    rate: Option<RateLimit>,
) -> String {
    let mut opened = Opened::default();
    let mut budget = Budget {
        rate,
        warned: false,
    };
    loop {
        let frame = match stream.next().await {
            None => return "the peer closed the connection".into(),
            Some(Err(e)) => {
                warn!(error = %e, "dropping peer for a protocol error");
                return format!("protocol error: {e}");
            }
            Some(Ok(frame)) => frame,
        };
        *lock(last_heard) = Instant::now();
        if let Err(reason) = handle(conn, frame, events, &mut opened, &mut budget, last_heard).await
        {
            warn!(%reason, "dropping peer for a protocol error");
            return reason;
        }
    }
}

/// What the reader knows of the streams the peer opened.
#[derive(Default)]
struct Opened {
    /// The highest stream id the peer has opened: ids only grow, so a frame
    /// for a lower id is for a stream already closed (and is dropped), while
    /// one for a higher id was never opened (a protocol error).
    highest: u32,
    /// Streams the peer reset before their open frame arrived (a reset may
    /// overtake the open, which waits in the data queue). Bounded.
    reset_early: std::collections::HashSet<u32>,
}

/// What a peer may still make us do: it sends messages, requests and
/// stream openings at a bounded rate, and has a bounded number of requests
/// unanswered. Past either bound we stop reading from it for a while: its
/// socket buffers fill and it waits, while other peers are served as usual.
struct Budget {
    rate: Option<RateLimit>,
    /// Whether the slowdown was logged (once per connection is enough).
    warned: bool,
}

impl Budget {
    fn flooding(&mut self, what: &str) {
        if !self.warned {
            self.warned = true;
            warn!("peer {what}; reading from it more slowly");
        }
    }

    /// Waits until the peer may send one more message.
    async fn pace(&mut self, last_heard: &Mutex<Instant>) {
        while let Some(wait) = self.rate.as_mut().and_then(RateLimit::take) {
            self.flooding("sends messages faster than its rate");
            tokio::time::sleep(wait).await;
            // Our pause, not the peer's silence.
            *lock(last_heard) = Instant::now();
        }
    }

    /// A slot for one more of the peer's requests, once one is free.
    async fn request_slot<M>(
        &mut self,
        conn: &Conn<M>,
        last_heard: &Mutex<Instant>,
    ) -> Result<OwnedSemaphorePermit, String> {
        let slots = &conn.requests_in;
        if let Ok(slot) = slots.clone().try_acquire_owned() {
            return Ok(slot);
        }
        self.flooding("has too many requests unanswered");
        loop {
            let wait =
                tokio::time::timeout(Duration::from_millis(500), slots.clone().acquire_owned());
            match wait.await {
                Ok(Ok(slot)) => return Ok(slot),
                Ok(Err(_)) => return Err("request slots closed".into()),
                Err(_) => *lock(last_heard) = Instant::now(),
            }
        }
    }
}

/// Hands an event to the application. While the application is slow to
/// take it, this connection is not reading, so the peer's silence is ours:
/// keep the watchdog from blaming the peer for it.
async fn deliver<M>(events: &mpsc::Sender<Event<M>>, event: Event<M>, last_heard: &Mutex<Instant>) {
    let mut send = std::pin::pin!(events.send(event));
    loop {
        match tokio::time::timeout(Duration::from_millis(500), &mut send).await {
            Ok(_) => return,
            Err(_) => *lock(last_heard) = Instant::now(),
        }
    }
}

/// How many early resets a peer may have outstanding.
const MAX_EARLY_RESETS: usize = 1024;

/// Data payloads below this are copied out of the read buffer.
const SMALL_PAYLOAD: usize = 4096;

fn peer_opened(role: Role, id: StreamId) -> bool {
    // The peer numbers its streams odd if it dialed (we listen), even if not.
    match role {
        Role::Listener => !id.0.is_multiple_of(2),
        Role::Dialer => id.0.is_multiple_of(2) && id.0 != 0,
    }
}

async fn handle<M: Message>(
    conn: &Arc<Conn<M>>,
    frame: Frame,
    events: &mpsc::Sender<Event<M>>,
    opened: &mut Opened,
    budget: &mut Budget,
    last_heard: &Mutex<Instant>,
) -> Result<(), String> {
    let link = &conn.link;
    let peer = || Peer { conn: conn.clone() };
    let id = frame.stream;
    match frame.kind {
        FrameKind::Control => {
            let control = Control::<M>::decode(&frame.payload).map_err(|e| e.to_string())?;
            let event = match control {
                Control::Notify(message) => {
                    budget.pace(last_heard).await;
                    Event::Message {
                        peer: peer(),
                        message,
                    }
                }
                Control::Request { id, body } => {
                    budget.pace(last_heard).await;
                    let slot = budget.request_slot(conn, last_heard).await?;
                    Event::Request {
                        peer: peer(),
                        message: body,
                        responder: Responder {
                            id,
                            conn: conn.clone(),
                            _slot: slot,
                        },
                    }
                }
                Control::Response { id, body } => {
                    if let Some(waiter) = lock(&conn.pending).remove(&id) {
                        let _ = waiter.send(body);
                    } else {
                        debug!(id, "response to a request no longer waited for");
                    }
                    return Ok(());
                }
            };
            deliver(events, event, last_heard).await;
        }
        FrameKind::Open => {
            if !peer_opened(conn.role, id) || id.0 <= opened.highest {
                return Err(format!("peer opened stream {id} out of turn"));
            }
            opened.highest = id.0;
            let message: M = decode_message(&frame.payload).map_err(|e| e.to_string())?;
            budget.pace(last_heard).await;
            if opened.reset_early.remove(&id.0) {
                debug!(%id, "stream cancelled before it opened");
                return Ok(());
            }
            if lock(&link.in_streams).len() >= conn.max_streams {
                // Refused, not fatal: the peer may retry once others end.
                debug!(%id, "too many open streams; refusing");
                let _ = link.urgent_tx.send(Frame::reset(id, ResetCode::Refused));
                return Ok(());
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let unacked = Arc::new(AtomicU64::new(0));
            lock(&link.in_streams).insert(
                id,
                InStream {
                    tx,
                    unacked: unacked.clone(),
                },
            );
            let stream = RecvStream::new(id, link.clone(), rx, unacked);
            let event = Event::Stream {
                peer: peer(),
                message,
                stream,
            };
            deliver(events, event, last_heard).await;
        }
        FrameKind::Data | FrameKind::End => {
            let mut streams = lock(&link.in_streams);
            let Some(stream) = streams.get(&id) else {
                drop(streams);
                return stale_or_unknown(conn.role, id, opened.highest, frame.kind);
            };
            if frame.kind == FrameKind::End {
                let _ = stream.tx.send(Chunk::End);
                streams.remove(&id);
                return Ok(());
            }
            if frame.payload.len() > MAX_DATA_PAYLOAD {
                return Err(format!(
                    "data frame of {} bytes on stream {id}, above {MAX_DATA_PAYLOAD}",
                    frame.payload.len()
                ));
            }
            let len = frame.payload.len() as u64;
            let unacked = stream.unacked.fetch_add(len, Ordering::AcqRel) + len;
            if unacked > u64::from(link.window) {
                return Err(format!(
                    "peer sent {unacked} bytes on stream {id}, past its credit of {}",
                    link.window
                ));
            }
            // A small payload is copied out, so it cannot keep a whole read
            // buffer alive while the window counts only its few bytes.
            let payload = if frame.payload.len() < SMALL_PAYLOAD {
                Bytes::copy_from_slice(&frame.payload)
            } else {
                frame.payload
            };
            let _ = stream.tx.send(Chunk::Data(payload));
        }
        FrameKind::Reset => {
            let code = frame.reset_code().map_err(|e| e.to_string())?;
            if peer_opened(conn.role, id) {
                if let Some(stream) = lock(&link.in_streams).remove(&id) {
                    let _ = stream.tx.send(Chunk::Reset(code));
                } else if id.0 > opened.highest {
                    if opened.reset_early.len() >= MAX_EARLY_RESETS {
                        return Err("too many resets for streams never opened".into());
                    }
                    opened.reset_early.insert(id.0);
                }
            } else {
                link.reset_out(id, code);
            }
        }
        FrameKind::Credit => {
            let bytes = frame.credit_amount().map_err(|e| e.to_string())?;
            link.grant(id, bytes);
        }
        FrameKind::Ping => {
            let nonce = frame.nonce().map_err(|e| e.to_string())?;
            // A peer flooding pings gets fewer pongs, not more of our memory.
            let _ = conn.control_tx.try_send(Frame::pong(nonce));
        }
        FrameKind::Pong => {}
    }
    Ok(())
}

fn stale_or_unknown(role: Role, id: StreamId, highest: u32, kind: FrameKind) -> Result<(), String> {
    if peer_opened(role, id) && id.0 <= highest {
        // A stream we already closed or refused: its last frames may still
        // have been on the way.
        Ok(())
    } else {
        Err(format!(
            "{} frame for stream {id}, which was never opened",
            kind.name()
        ))
    }
}
