//! Writer adapters: encrypt or decrypt what is written, in constant memory.
//!
//! A writer cannot transform the caller's `&[u8]` in place, so each adapter
//! copies at most [`WRITE_CHUNK`] bytes per call into a buffer of its own,
//! transforms them there, and hands them on before it accepts more.

use std::{
    io::{self, Write},
    pin::Pin,
    task::{Context, Poll, ready},
};

use pin_project_lite::pin_project;
use tokio::io::AsyncWrite;

use crate::{CryptoError, DataKey, HEADER_LEN, Keystream, ObjectHeader, Result};

/// The most a writer adapter buffers: 64 KiB.
pub const WRITE_CHUNK: usize = 64 * 1024;

/// Transformed bytes not yet accepted by the inner writer.
#[derive(Debug, Default)]
struct Pending {
    buf: Vec<u8>,
    pos: usize,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// Replaces the (drained) buffer with `data`, returning it for transformation.
    fn refill(&mut self, data: &[u8]) -> &mut [u8] {
        self.buf.clear();
        self.buf.extend_from_slice(data);
        self.pos = 0;
        &mut self.buf
    }

    fn poll_drain<W: AsyncWrite>(
        &mut self,
        mut inner: Pin<&mut W>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.is_empty() {
            let n = ready!(inner.as_mut().poll_write(cx, &self.buf[self.pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pos += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Drains, then flushes the inner writer.
    fn poll_flush<W: AsyncWrite>(
        &mut self,
        mut inner: Pin<&mut W>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(inner.as_mut(), cx))?;
        inner.poll_flush(cx)
    }

    /// Drains, then shuts the inner writer down.
    fn poll_shutdown<W: AsyncWrite>(
        &mut self,
        mut inner: Pin<&mut W>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(inner.as_mut(), cx))?;
        inner.poll_shutdown(cx)
    }

    /// Drains, then flushes the inner writer (synchronous).
    fn flush<W: Write>(&mut self, inner: &mut W) -> io::Result<()> {
        self.drain(inner)?;
        inner.flush()
    }

    fn drain<W: Write>(&mut self, inner: &mut W) -> io::Result<()> {
        if !self.is_empty() {
            inner.write_all(&self.buf[self.pos..])?;
            self.pos = self.buf.len();
        }
        Ok(())
    }
}

pin_project! {
    /// Writes an object to `inner`: the header, then the ciphertext of
    /// everything written to this adapter. Call `flush` (or `shutdown`) at the
    /// end so the last bytes reach `inner`.
    ///
    /// Implements [`Write`] (for `W: Write`) and [`AsyncWrite`] (for `W: AsyncWrite`).
    #[derive(Debug)]
    pub struct EncryptWriter<W> {
        #[pin]
        inner: W,
        header: ObjectHeader,
        keystream: Keystream,
        pending: Pending,
    }
}

impl<W> EncryptWriter<W> {
    /// Starts a new object under `key` with a fresh random IV.
    pub fn new(key: &DataKey, inner: W) -> Result<Self> {
        let (header, keystream) = key.begin_object()?;
        let pending = Pending {
            buf: header.encode().to_vec(),
            pos: 0,
        };
        Ok(Self {
            inner,
            header,
            keystream,
            pending,
        })
    }

    /// The header this object starts with.
    pub fn header(&self) -> &ObjectHeader {
        &self.header
    }

    /// Plaintext bytes accepted so far.
    pub fn plaintext_len(&self) -> u64 {
        self.keystream.position()
    }

    /// Gives back the inner writer (flush first, or buffered bytes are lost).
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.pending.drain(&mut self.inner)?;
        let n = data.len().min(WRITE_CHUNK);
        self.keystream.apply(self.pending.refill(&data[..n]));
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.pending.flush(&mut self.inner)
    }
}

impl<W: AsyncWrite> AsyncWrite for EncryptWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        // Only accept new bytes once the old ones are out: accepted bytes
        // must never be asked for again.
        ready!(this.pending.poll_drain(this.inner, cx))?;
        let n = data.len().min(WRITE_CHUNK);
        this.keystream.apply(this.pending.refill(&data[..n]));
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        this.pending.poll_flush(this.inner, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        this.pending.poll_shutdown(this.inner, cx)
    }
}

/// Where a [`DecryptWriter`] is in the object.
#[derive(Debug)]
enum Phase {
    /// Gathering the header; the key waits to be checked against it.
    Header {
        key: DataKey,
        bytes: [u8; HEADER_LEN],
        got: usize,
    },
    /// Boxed: the expanded AES key schedule is large, the other phases small.
    Body(Box<Keystream>),
    Failed(CryptoError),
}

pin_project! {
    /// Takes an object written to it and writes its plaintext to `inner`.
    ///
    /// The header is checked as soon as its 32 bytes have arrived: another
    /// key fails the write with [`CryptoError::KeyMismatch`] (inside an
    /// `io::Error`, see [`CryptoError::from_io`]) before any plaintext is
    /// written. Call `flush` (or `shutdown`) at the end; with
    /// [`expect_len`](Self::expect_len), `shutdown` also fails if the
    /// plaintext was cut short.
    ///
    /// Implements [`Write`] (for `W: Write`) and [`AsyncWrite`] (for `W: AsyncWrite`).
    #[derive(Debug)]
    pub struct DecryptWriter<W> {
        #[pin]
        inner: W,
        phase: Phase,
        expected_len: Option<u64>,
        pending: Pending,
    }
}

impl<W> DecryptWriter<W> {
    /// Decrypts the object written to it with `key`.
    pub fn new(key: &DataKey, inner: W) -> Self {
        Self {
            inner,
            phase: Phase::Header {
                key: key.clone(),
                bytes: [0; HEADER_LEN],
                got: 0,
            },
            expected_len: None,
            pending: Pending::default(),
        }
    }

    /// Requires the plaintext to be exactly `len` bytes: a byte past `len`
    /// fails the write that brings it, and `shutdown` fails if fewer came.
    pub fn expect_len(mut self, len: u64) -> Self {
        self.expected_len = Some(len);
        self
    }

    /// Plaintext bytes produced so far.
    pub fn plaintext_len(&self) -> u64 {
        match &self.phase {
            Phase::Body(keystream) => keystream.position(),
            _ => 0,
        }
    }

    /// Gives back the inner writer (flush first, or buffered bytes are lost).
    pub fn into_inner(self) -> W {
        self.inner
    }
}

/// Takes up to one chunk of `data` into `pending` as plaintext; returns how
/// many bytes of `data` were consumed.
fn accept_object_bytes(
    phase: &mut Phase,
    expected_len: Option<u64>,
    pending: &mut Pending,
    data: &[u8],
) -> io::Result<usize> {
    match phase {
        Phase::Failed(err) => Err(err.duplicate().into_io()),
        Phase::Header { key, bytes, got } => {
            let n = (HEADER_LEN - *got).min(data.len());
            bytes[*got..*got + n].copy_from_slice(&data[..n]);
            *got += n;
            if *got == HEADER_LEN {
                let opened = ObjectHeader::parse(bytes).and_then(|h| key.keystream_for(&h));
                *phase = match opened {
                    Ok(keystream) => Phase::Body(Box::new(keystream)),
                    Err(err) => {
                        let returned = err.duplicate().into_io();
                        *phase = Phase::Failed(err);
                        return Err(returned);
                    }
                };
            }
            Ok(n)
        }
        Phase::Body(keystream) => {
            let n = data.len().min(WRITE_CHUNK);
            let end = keystream.position() + n as u64;
            if let Some(expected) = expected_len
                && end > expected
            {
                let err = CryptoError::LengthMismatch {
                    expected,
                    actual: end,
                };
                let returned = err.duplicate().into_io();
                *phase = Phase::Failed(err);
                return Err(returned);
            }
            keystream.apply(pending.refill(&data[..n]));
            Ok(n)
        }
    }
}

/// Checks at the end that the whole plaintext arrived.
fn check_complete(phase: &mut Phase, expected_len: Option<u64>) -> io::Result<()> {
    let produced = match phase {
        Phase::Failed(err) => return Err(err.duplicate().into_io()),
        Phase::Header { got, .. } => {
            let err = CryptoError::HeaderTruncated {
                got: *got,
                needed: HEADER_LEN,
            };
            let returned = err.duplicate().into_io();
            *phase = Phase::Failed(err);
            return Err(returned);
        }
        Phase::Body(keystream) => keystream.position(),
    };
    match expected_len {
        Some(expected) if produced != expected => {
            let err = CryptoError::LengthMismatch {
                expected,
                actual: produced,
            };
            let returned = err.duplicate().into_io();
            *phase = Phase::Failed(err);
            Err(returned)
        }
        _ => Ok(()),
    }
}

impl<W: Write> Write for DecryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.pending.drain(&mut self.inner)?;
        accept_object_bytes(&mut self.phase, self.expected_len, &mut self.pending, data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.pending.flush(&mut self.inner)
    }
}

impl<W: Write> DecryptWriter<W> {
    /// Flushes, then checks that a whole object (and, with `expect_len`, the
    /// whole plaintext) was written: the synchronous `shutdown`.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush()?;
        check_complete(&mut self.phase, self.expected_len)?;
        Ok(self.inner)
    }
}

impl<W: AsyncWrite> AsyncWrite for DecryptWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        ready!(this.pending.poll_drain(this.inner, cx))?;
        Poll::Ready(accept_object_bytes(
            this.phase,
            *this.expected_len,
            this.pending,
            data,
        ))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        this.pending.poll_flush(this.inner, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        ready!(this.pending.poll_drain(this.inner.as_mut(), cx))?;
        check_complete(this.phase, *this.expected_len)?;
        this.inner.poll_shutdown(cx)
    }
}
