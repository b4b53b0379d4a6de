//! Streaming adapters: encrypt or decrypt any `Read` or `AsyncRead` with
//! constant memory. Each adapter works in place in the caller's buffer.

use std::{
    io::{self, Read, Seek, SeekFrom},
    pin::Pin,
    task::{Context, Poll, ready},
};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt, ReadBuf};

use crate::{CryptoError, DataKey, HEADER_LEN, Keystream, ObjectHeader, Result};

pin_project! {
    /// Turns a plaintext reader into an object: the header, then the ciphertext.
    ///
    /// Implements both [`Read`] (for `R: Read`) and [`AsyncRead`] (for
    /// `R: AsyncRead`).
    #[derive(Debug)]
    pub struct EncryptReader<R> {
        #[pin]
        inner: R,
        header: ObjectHeader,
        encoded: [u8; HEADER_LEN],
        header_sent: usize,
        keystream: Keystream,
    }
}

impl<R> EncryptReader<R> {
    /// Starts a new object under `key` with a fresh random IV.
    pub fn new(key: &DataKey, inner: R) -> Result<Self> {
        let (header, keystream) = key.begin_object()?;
        Ok(Self {
            inner,
            header,
            encoded: header.encode(),
            header_sent: 0,
            keystream,
        })
    }

    /// The header this object starts with.
    pub fn header(&self) -> &ObjectHeader {
        &self.header
    }

    /// Plaintext bytes encrypted so far.
    pub fn plaintext_len(&self) -> u64 {
        self.keystream.position()
    }

    /// Gives back the plaintext reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// Copies what is left of the header into `out`; returns how much.
fn emit_header(encoded: &[u8; HEADER_LEN], sent: &mut usize, out: &mut [u8]) -> usize {
    let rest = &encoded[*sent..];
    let n = rest.len().min(out.len());
    out[..n].copy_from_slice(&rest[..n]);
    *sent += n;
    n
}

impl<R: Read> Read for EncryptReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.header_sent < HEADER_LEN {
            return Ok(emit_header(&self.encoded, &mut self.header_sent, buf));
        }
        let n = self.inner.read(buf)?;
        self.keystream.apply(&mut buf[..n]);
        Ok(n)
    }
}

impl<R: AsyncRead> AsyncRead for EncryptReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if *this.header_sent < HEADER_LEN {
            let n = emit_header(this.encoded, this.header_sent, buf.initialize_unfilled());
            buf.advance(n);
            return Poll::Ready(Ok(()));
        }
        let start = buf.filled().len();
        ready!(this.inner.poll_read(cx, buf))?;
        this.keystream.apply(&mut buf.filled_mut()[start..]);
        Poll::Ready(Ok(()))
    }
}

pin_project! {
    /// Turns an object back into plaintext.
    ///
    /// Built by reading and checking the header first, so a wrong key is a
    /// [`CryptoError::KeyMismatch`] before any plaintext exists. Implements
    /// both [`Read`] and [`AsyncRead`]; errors found while streaming come
    /// back as `io::Error`s carrying a [`CryptoError`] (see
    /// [`CryptoError::from_io`]).
    #[derive(Debug)]
    pub struct DecryptReader<R> {
        #[pin]
        inner: R,
        keystream: Keystream,
        expected_len: Option<u64>,
        // Set once a length check fails: the inner reader has moved past
        // bytes the keystream has not, so nothing more may be decrypted.
        failed: Option<CryptoError>,
    }
}

impl<R> DecryptReader<R> {
    /// Wraps a reader positioned at the ciphertext byte that `keystream`'s
    /// position names (right after the header for position 0).
    pub fn from_parts(keystream: Keystream, inner: R) -> Self {
        Self {
            inner,
            keystream,
            expected_len: None,
            failed: None,
        }
    }

    /// Requires the whole plaintext to be exactly `len` bytes: a stream that
    /// ends early, or yields a byte past `len`, fails with
    /// [`CryptoError::LengthMismatch`] instead of ending quietly. This is how
    /// a truncated object is caught when the catalog knows the file's size.
    /// (A longer stream is noticed only by a caller that reads on to EOF.)
    /// After the error, every further read fails the same way.
    pub fn expect_len(mut self, len: u64) -> Self {
        self.expected_len = Some(len);
        self
    }

    /// Plaintext offset of the next byte to be produced.
    pub fn position(&self) -> u64 {
        self.keystream.position()
    }

    /// Gives back the object reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// Decrypts `buf` (the bytes just read; `asked` is how many were asked for)
/// and enforces the expected length. A failure is remembered in `failed`.
fn decrypt_chunk(
    keystream: &mut Keystream,
    expected_len: Option<u64>,
    failed: &mut Option<CryptoError>,
    buf: &mut [u8],
    asked: usize,
) -> io::Result<()> {
    let start = keystream.position();
    let end = start + buf.len() as u64;
    if let Some(expected) = expected_len {
        let at_eof = buf.is_empty() && asked > 0;
        if end > expected || (at_eof && end < expected) {
            *failed = Some(CryptoError::LengthMismatch {
                expected,
                actual: end,
            });
            return Err(sticky(failed));
        }
    }
    keystream.apply(buf);
    Ok(())
}

/// The error a failed reader keeps returning.
fn sticky(failed: &Option<CryptoError>) -> io::Error {
    match failed {
        Some(err) => err.duplicate().into_io(),
        None => io::Error::other("decryption stream failed"),
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed.is_some() {
            return Err(sticky(&self.failed));
        }
        let asked = buf.len();
        let n = self.inner.read(buf)?;
        if let Err(e) = decrypt_chunk(
            &mut self.keystream,
            self.expected_len,
            &mut self.failed,
            &mut buf[..n],
            asked,
        ) {
            // Never leave ciphertext where the caller may take it for plaintext.
            buf[..n].fill(0);
            return Err(e);
        }
        Ok(n)
    }
}

impl<R: AsyncRead> AsyncRead for DecryptReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if this.failed.is_some() {
            return Poll::Ready(Err(sticky(this.failed)));
        }
        let asked = buf.remaining();
        let start = buf.filled().len();
        ready!(this.inner.poll_read(cx, buf))?;
        if let Err(e) = decrypt_chunk(
            this.keystream,
            *this.expected_len,
            this.failed,
            &mut buf.filled_mut()[start..],
            asked,
        ) {
            // Never leave ciphertext where the caller may take it for plaintext.
            buf.filled_mut()[start..].fill(0);
            buf.set_filled(start);
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(()))
    }
}

impl<R: Read> DecryptReader<R> {
    /// Reads and checks the header, leaving `inner` at the first ciphertext byte.
    pub fn new(key: &DataKey, mut inner: R) -> Result<Self> {
        let mut buf = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            match inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CryptoError::Stream(e)),
            }
        }
        let keystream = key.keystream_for(&ObjectHeader::parse(&buf[..got])?)?;
        Ok(Self::from_parts(keystream, inner))
    }
}

impl<R: Read + Seek> DecryptReader<R> {
    /// Decrypts from plaintext byte `offset` of the object that `inner`
    /// holds, reading only the header and the bytes from `offset` on.
    pub fn new_at(key: &DataKey, mut inner: R, offset: u64) -> Result<Self> {
        inner.rewind().map_err(CryptoError::Stream)?;
        let mut reader = Self::new(key, inner)?;
        reader.keystream.seek(offset)?;
        reader
            .inner
            .seek(SeekFrom::Current(offset_i64(offset)?))
            .map_err(CryptoError::Stream)?;
        Ok(reader)
    }
}

impl<R: AsyncRead + Unpin> DecryptReader<R> {
    /// [`DecryptReader::new`] for async readers.
    pub async fn new_async(key: &DataKey, mut inner: R) -> Result<Self> {
        let mut buf = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            match inner.read(&mut buf[got..]).await {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CryptoError::Stream(e)),
            }
        }
        let keystream = key.keystream_for(&ObjectHeader::parse(&buf[..got])?)?;
        Ok(Self::from_parts(keystream, inner))
    }
}

impl<R: AsyncRead + AsyncSeek + Unpin> DecryptReader<R> {
    /// [`DecryptReader::new_at`] for async readers.
    pub async fn new_async_at(key: &DataKey, mut inner: R, offset: u64) -> Result<Self> {
        inner.rewind().await.map_err(CryptoError::Stream)?;
        let mut reader = Self::new_async(key, inner).await?;
        reader.keystream.seek(offset)?;
        reader
            .inner
            .seek(SeekFrom::Current(offset_i64(offset)?))
            .await
            .map_err(CryptoError::Stream)?;
        Ok(reader)
    }
}

fn offset_i64(offset: u64) -> Result<i64> {
    i64::try_from(offset).map_err(|_| CryptoError::SeekOutOfRange { offset })
}
