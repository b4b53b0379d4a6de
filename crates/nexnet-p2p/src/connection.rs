//! One connection to a peer: the [`Peer`] handle the application uses, and
//! the task that drives the connection. That task runs the reader (`Inbound`,
//! in `inbound.rs`), the writer and a watchdog on the peer's silence.

use std::{
    collections::HashMap,
    fmt,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use std::io::IoSlice;

use nexnet_codec::{Control, Frame, FrameCodec, StreamId, encode_message};
use parking_lot::Mutex;
use serde::{Serialize, de::DeserializeOwned};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpStream, tcp::OwnedWriteHalf},
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot},
    time::Instant,
};
use tokio_util::{
    codec::{Framed, FramedRead},
    sync::CancellationToken,
};
use tracing::{Instrument, debug};

use crate::{
    CloseReason, NodeId, P2pError, Result, TransportConfig,
    handshake::{Remote, Role},
    inbound::Inbound,
    stream::{Link, RecvStream, SendStream},
};

/// What an application's message type must be: postcard-serialisable and
/// sendable across tasks.
pub trait Message: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Message for T {}

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
        /// Why it closed.
        reason: CloseReason,
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
    pub(crate) fn new(id: u64, conn: Arc<Conn<M>>, slot: OwnedSemaphorePermit) -> Self {
        Self {
            id,
            conn,
            _slot: slot,
        }
    }

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
    pub(crate) role: Role,
    pub(crate) link: Arc<Link>,
    pub(crate) control_tx: mpsc::Sender<Frame>,
    /// Our requests in flight, by id, each with its waiting caller.
    pub(crate) pending: Mutex<HashMap<u64, oneshot::Sender<M>>>,
    next_request: AtomicU64,
    next_stream: AtomicU32,
    /// Held while a stream id is taken and its open frame queued.
    opening: tokio::sync::Mutex<()>,
    close_reason: Mutex<Option<CloseReason>>,
    /// Largest control message we send: what the peer said it accepts.
    max_payload: usize,
    /// Slots for our requests in flight to the peer.
    requests_out: Arc<Semaphore>,
}

impl<M: Message> Conn<M> {
    fn disconnected(&self) -> P2pError {
        let recorded = self.close_reason.lock().clone();
        let reason = recorded.unwrap_or_else(|| {
            // Only the transport's shutdown cancels the connection's token
            // without recording a reason (`close` records one first).
            if self.link.closed.is_cancelled() {
                CloseReason::Shutdown
            } else {
                CloseReason::Closing
            }
        });
        P2pError::Disconnected {
            peer: self.remote.node_id,
            reason,
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

    fn close(&self, reason: CloseReason) {
        let mut slot = self.close_reason.lock();
        if slot.is_none() {
            *slot = Some(reason);
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

impl<M> Peer<M> {
    pub(crate) fn new(conn: Arc<Conn<M>>) -> Self {
        Self { conn }
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

    /// Resolves once the connection has closed (at once if it has): what
    /// a wait for something only this peer can send selects on, so that a
    /// peer gone ends the wait rather than its time-out.
    pub async fn closed(&self) {
        self.conn.link.closed.cancelled().await;
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
            self.conn.pending.lock().insert(id, tx);
            self.conn
                .send_control(Control::Request { id, body: message })
                .await?;
            rx.await.map_err(|_| self.conn.disconnected())
        };
        let answer = tokio::time::timeout(timeout, asked).await;
        self.conn.pending.lock().remove(&id);
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
        self.conn.close(CloseReason::LocalClose);
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
        requests_out: Arc::new(Semaphore::new(config.max_pending_requests.max(1))),
    });
    let peer = Peer::new(conn.clone());
    let inbound = Inbound::new(conn.clone(), events.clone(), config);
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
    let driver = drive(conn, framed, queues, inbound, events, heartbeat, shutdown).instrument(span);
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
    inbound: Inbound<M>,
    events: mpsc::Sender<Event<M>>,
    (interval, misses): (Duration, u32),
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
    let last_heard = inbound.last_heard();
    let mut reader = tokio::spawn(inbound.run(stream).in_current_span());
    let mut writer =
        tokio::spawn(write_loop(sink, queues, interval, interval * misses).in_current_span());
    let task_failed = |e| CloseReason::TaskFailed(Arc::new(e));
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
        () = conn.link.closed.cancelled() => {
            conn.close_reason.lock().clone().unwrap_or(CloseReason::Shutdown)
        }
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
    conn.pending.lock().clear();
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
) -> CloseReason {
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
            Ok(Err(e)) => return CloseReason::Write(Arc::new(e)),
            Err(_) => return CloseReason::WriteStalled { after: stall_limit },
        }
    }
}

/// Ends the connection once the peer has been silent (no frame at all, not
/// even a pong) for `misses` heartbeat intervals. Separate from the writer, so
/// a write blocked on a dead peer cannot hide its death.
async fn watchdog(last_heard: &Mutex<Instant>, interval: Duration, misses: u32) -> CloseReason {
    loop {
        tokio::time::sleep(interval).await;
        let silent = last_heard.lock().elapsed();
        if silent > interval * misses {
            return CloseReason::Silent {
                silent,
                interval,
                misses,
            };
        }
    }
}

const MAX_BATCH_FRAMES: usize = 16;
const MAX_BATCH_BYTES: usize = 256 * 1024;
