//! Flow-controlled streams over a connection.
//!
//! A stream's sender may have at most the receiver's window in flight; the
//! receiver grants more ([`Frame::credit`]) as its reader consumes bytes.
//! So a reader that stops reading stops its writer, and what a stream costs
//! in memory is bounded by the window, whatever its length.

use std::{
    collections::HashMap,
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll, Waker, ready},
};

use bytes::{Buf, Bytes};
use nexnet_codec::{Frame, MAX_DATA_PAYLOAD, ResetCode, StreamId};
use parking_lot::Mutex;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::mpsc,
};
use tokio_util::sync::{CancellationToken, PollSender};

/// What flows from the connection's reader to a [`RecvStream`].
#[derive(Debug)]
pub(crate) enum Chunk {
    Data(Bytes),
    End,
    Reset(ResetCode),
}

/// The sending side's view of a stream it writes.
#[derive(Debug, Default)]
pub(crate) struct OutState {
    credit: u64,
    reset: Option<ResetCode>,
    waker: Option<Waker>,
}

/// The receiving side's bookkeeping for a stream it reads.
#[derive(Debug)]
pub(crate) struct InStream {
    pub tx: mpsc::UnboundedSender<Chunk>,
    /// Bytes received and not yet credited back: never above the window
    /// for a peer that follows the rules.
    pub unacked: Arc<AtomicU64>,
}

/// The part of a connection that streams need, free of the message type.
#[derive(Debug)]
pub(crate) struct Link {
    /// Opens, data and ends, in order (bounded: this is the backpressure).
    pub data_tx: mpsc::Sender<Frame>,
    /// Credits and resets: never wait behind data. Bounded by design: at
    /// most a couple per window of data received, and one reset per stream.
    pub urgent_tx: mpsc::UnboundedSender<Frame>,
    pub out_streams: Mutex<HashMap<StreamId, Arc<Mutex<OutState>>>>,
    pub in_streams: Mutex<HashMap<StreamId, InStream>>,
    pub closed: CancellationToken,
    /// Our receive window (what we advertised).
    pub window: u32,
    /// The peer's receive window (the credit our streams start with).
    pub peer_window: u32,
}

impl Link {
    pub(crate) fn add_out_stream(&self, id: StreamId) -> Arc<Mutex<OutState>> {
        let state = Arc::new(Mutex::new(OutState {
            credit: u64::from(self.peer_window),
            ..OutState::default()
        }));
        self.out_streams.lock().insert(id, state.clone());
        state
    }

    /// Credit from the peer for one of our streams.
    pub(crate) fn grant(&self, id: StreamId, bytes: u32) {
        if let Some(state) = self.out_streams.lock().get(&id) {
            let mut state = state.lock();
            state.credit += u64::from(bytes);
            if let Some(w) = state.waker.take() {
                w.wake();
            }
        }
    }

    /// The peer reset one of our streams.
    pub(crate) fn reset_out(&self, id: StreamId, code: ResetCode) {
        if let Some(state) = self.out_streams.lock().remove(&id) {
            let mut state = state.lock();
            state.reset = Some(code);
            if let Some(w) = state.waker.take() {
                w.wake();
            }
        }
    }

    /// Wakes every writer so it sees the connection is gone.
    pub(crate) fn close_streams(&self) {
        for (_, state) in self.out_streams.lock().drain() {
            if let Some(w) = state.lock().waker.take() {
                w.wake();
            }
        }
        // Dropping the senders ends every reader with an error.
        self.in_streams.lock().clear();
    }
}

fn closed_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "connection closed")
}

/// The writing half of a stream: an [`AsyncWrite`]. Finish it with
/// `shutdown()`; dropped unfinished, it resets the stream so the reader sees
/// an error, never a silently short stream.
#[derive(Debug)]
pub struct SendStream {
    id: StreamId,
    link: Arc<Link>,
    sender: PollSender<Frame>,
    state: Arc<Mutex<OutState>>,
    finished: bool,
    /// Whether its open frame was queued (else a drop has nothing to reset).
    announced: bool,
}

impl SendStream {
    pub(crate) fn new(id: StreamId, link: Arc<Link>, state: Arc<Mutex<OutState>>) -> Self {
        let sender = PollSender::new(link.data_tx.clone());
        Self {
            id,
            link,
            sender,
            state,
            finished: false,
            announced: false,
        }
    }

    pub(crate) fn announced(&mut self) {
        self.announced = true;
    }

    /// The stream's id on its connection.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Aborts the stream: the reader gets an error with `code`.
    pub fn reset(mut self, code: ResetCode) {
        self.finished = true;
        self.link.out_streams.lock().remove(&self.id);
        let _ = self.link.urgent_tx.send(Frame::reset(self.id, code));
    }

    fn check_open(&self) -> io::Result<()> {
        if self.link.closed.is_cancelled() {
            return Err(closed_error());
        }
        if let Some(code) = self.state.lock().reset {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                format!("stream reset by the peer: {code}"),
            ));
        }
        if self.finished {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "stream already finished",
            ));
        }
        Ok(())
    }
}

impl SendStream {
    /// Queues one data frame of at most `want` bytes, made by `take(n)` once
    /// credit and queue space for `n` bytes exist.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        want: usize,
        take: impl FnOnce(usize) -> Bytes,
    ) -> Poll<io::Result<usize>> {
        self.check_open()?;
        if want == 0 {
            return Poll::Ready(Ok(0));
        }
        ready!(self.sender.poll_reserve(cx)).map_err(|_| closed_error())?;
        let n = {
            let mut state = self.state.lock();
            if state.credit == 0 {
                // Registered under the lock the granting side takes, so a
                // credit cannot slip in between the check and the wait.
                state.waker = Some(cx.waker().clone());
                drop(state);
                self.sender.abort_send();
                // The connection may have closed while we registered.
                self.check_open()?;
                return Poll::Pending;
            }
            let n = want
                .min(MAX_DATA_PAYLOAD)
                .min(usize::try_from(state.credit).unwrap_or(usize::MAX));
            state.credit -= n as u64;
            n
        };
        let frame = Frame::data(self.id, take(n));
        self.sender.send_item(frame).map_err(|_| closed_error())?;
        Poll::Ready(Ok(n))
    }

    /// Sends `bytes` without copying them (the zero-copy counterpart of
    /// `write_all`): they are cut into frames that share its buffer.
    pub async fn write_chunk(&mut self, mut bytes: Bytes) -> io::Result<()> {
        std::future::poll_fn(|cx| {
            while !bytes.is_empty() {
                let len = bytes.len();
                ready!(self.poll_send(cx, len, |n| bytes.split_to(n)))?;
            }
            Poll::Ready(Ok(()))
        })
        .await
    }
}

impl AsyncWrite for SendStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, buf.len(), |n| Bytes::copy_from_slice(&buf[..n]))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Frames are queued for the connection's writer; there is nothing to
        // flush here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.finished {
            return Poll::Ready(Ok(()));
        }
        self.check_open()?;
        ready!(self.sender.poll_reserve(cx)).map_err(|_| closed_error())?;
        let id = self.id;
        self.sender
            .send_item(Frame::end(id))
            .map_err(|_| closed_error())?;
        self.finished = true;
        self.link.out_streams.lock().remove(&id);
        Poll::Ready(Ok(()))
    }
}

impl Drop for SendStream {
    fn drop(&mut self) {
        if !self.finished {
            self.link.out_streams.lock().remove(&self.id);
        }
        if !self.finished && self.announced {
            let _ = self
                .link
                .urgent_tx
                .send(Frame::reset(self.id, ResetCode::Cancelled));
        }
    }
}

/// The reading half of a stream: an [`AsyncRead`] that ends cleanly only if
/// the sender finished the stream, and fails if it was reset or the
/// connection was lost.
#[derive(Debug)]
pub struct RecvStream {
    id: StreamId,
    link: Arc<Link>,
    rx: mpsc::UnboundedReceiver<Chunk>,
    current: Bytes,
    unacked: Arc<AtomicU64>,
    consumed: u64,
    end: Option<Result<(), ResetCode>>,
}

impl RecvStream {
    pub(crate) fn new(
        id: StreamId,
        link: Arc<Link>,
        rx: mpsc::UnboundedReceiver<Chunk>,
        unacked: Arc<AtomicU64>,
    ) -> Self {
        Self {
            id,
            link,
            rx,
            current: Bytes::new(),
            unacked,
            consumed: 0,
            end: None,
        }
    }

    /// The stream's id on its connection.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Refuses the rest of the stream: the sender's writes fail.
    pub fn reset(mut self, code: ResetCode) {
        self.end = Some(Err(code));
        self.link.in_streams.lock().remove(&self.id);
        let _ = self.link.urgent_tx.send(Frame::reset(self.id, code));
    }

    /// Grants the sender what was read, once it is worth a frame.
    fn credit(&mut self, n: usize) {
        self.consumed += n as u64;
        if self.consumed >= u64::from(self.link.window / 4).max(1) {
            self.unacked.fetch_sub(self.consumed, Ordering::AcqRel);
            // Fits: never more than the window, a u32.
            let grant = u32::try_from(self.consumed).unwrap_or(u32::MAX);
            let _ = self.link.urgent_tx.send(Frame::credit(self.id, grant));
            self.consumed = 0;
        }
    }
}

impl RecvStream {
    /// The next piece of the stream as it arrived, without copying it (the
    /// zero-copy counterpart of `read`); `None` at the clean end.
    pub async fn read_chunk(&mut self) -> io::Result<Option<Bytes>> {
        std::future::poll_fn(|cx| {
            if !ready!(self.poll_fill(cx))? {
                return Poll::Ready(Ok(None));
            }
            let chunk = std::mem::take(&mut self.current);
            self.credit(chunk.len());
            Poll::Ready(Ok(Some(chunk)))
        })
        .await
    }

    /// Makes `current` non-empty (`true`), or reports the clean end (`false`).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        loop {
            if !self.current.is_empty() {
                return Poll::Ready(Ok(true));
            }
            match self.end {
                Some(Ok(())) => return Poll::Ready(Ok(false)),
                Some(Err(code)) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        format!("stream reset: {code}"),
                    )));
                }
                None => {}
            }
            match ready!(self.rx.poll_recv(cx)) {
                Some(Chunk::Data(bytes)) => self.current = bytes,
                Some(Chunk::End) => self.end = Some(Ok(())),
                Some(Chunk::Reset(code)) => self.end = Some(Err(code)),
                None => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "connection closed before the stream ended",
                    )));
                }
            }
        }
    }
}

impl AsyncRead for RecvStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 || !ready!(self.poll_fill(cx))? {
            return Poll::Ready(Ok(()));
        }
        // Fill the caller's buffer from every chunk already here, not just
        // one frame's worth: fewer calls for a reader with a large buffer.
        loop {
            let n = self.current.len().min(buf.remaining());
            buf.put_slice(&self.current[..n]);
            self.current.advance(n);
            self.credit(n);
            if buf.remaining() == 0 {
                break;
            }
            match self.rx.try_recv() {
                Ok(Chunk::Data(bytes)) => self.current = bytes,
                Ok(Chunk::End) => {
                    self.end = Some(Ok(()));
                    break;
                }
                Ok(Chunk::Reset(code)) => {
                    // Reported on the next read; these bytes are delivered.
                    self.end = Some(Err(code));
                    break;
                }
                Err(_) => break,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        if self.end.is_none() && self.link.in_streams.lock().remove(&self.id).is_some() {
            let _ = self
                .link
                .urgent_tx
                .send(Frame::reset(self.id, ResetCode::Refused));
        }
    }
}
