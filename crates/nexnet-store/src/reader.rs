//! Readers of stored objects: plain, and verifying.

use std::{
    future::Future,
    io::{self, SeekFrom},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use pin_project_lite::pin_project;
use tokio::{
    fs::File,
    io::{AsyncRead, AsyncSeek, BufReader, ReadBuf},
    task::JoinHandle,
};

use crate::{Cid, CidHasher, StoreError, store::FileIdentity, store::Inner};

/// Opens `file` for streaming: tokio runs each file read as a blocking task,
/// so reads are gathered into `buffer_size` steps whatever the caller's
/// buffer (`tokio::io::copy` asks for 8 KiB at a time). A small object gets
/// a buffer of its own size, not `buffer_size`: a thousand readers of 4 KiB
/// files then hold 4 MiB, not 256.
pub(crate) fn buffered(file: File, len: u64, buffer_size: usize) -> BufReader<File> {
    BufReader::with_capacity(buffer_for(len, buffer_size), file)
}

/// The read buffer for an object of `len` bytes: its length, between 4 KiB
/// (never zero, which would make the buffer look like the end of the file)
/// and `buffer_size`.
fn buffer_for(len: u64, buffer_size: usize) -> usize {
    let floor = (4 << 10).min(buffer_size);
    usize::try_from(len).map_or(buffer_size, |len| len.clamp(floor, buffer_size))
}

pin_project! {
    /// A stored object opened for reading; also seekable, for range reads.
    #[derive(Debug)]
    pub struct ObjectReader {
        #[pin]
        file: BufReader<File>,
        len: u64,
    }
}

impl ObjectReader {
    pub(crate) fn new(file: File, len: u64, buffer_size: usize) -> Self {
        Self {
            file: buffered(file, len, buffer_size),
            len,
        }
    }

    /// The object's length when it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsyncRead for ObjectReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().file.poll_read(cx, buf)
    }
}

impl AsyncSeek for ObjectReader {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        self.project().file.start_seek(position)
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        self.project().file.poll_complete(cx)
    }
}

enum State {
    Reading(CidHasher),
    /// The bytes did not match; the object is being moved aside.
    Quarantining(JoinHandle<Result<(), StoreError>>, Cid),
    Failed(Cid),
    Verified,
}

pin_project! {
    /// A stored object that is hashed as it streams. The end of the stream is
    /// reported only if the bytes matched the content id; otherwise the last
    /// read fails with [`StoreError::Corrupt`] inside an `io::Error`
    /// (see [`StoreError::from_io`]) and the object is in quarantine.
    pub struct VerifiedReader {
        #[pin]
        file: BufReader<File>,
        len: u64,
        cid: Cid,
        identity: FileIdentity,
        store: Arc<Inner>,
        state: State,
    }
}

impl std::fmt::Debug for VerifiedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedReader")
            .field("cid", &self.cid)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl VerifiedReader {
    pub(crate) fn new(
        file: File,
        len: u64,
        cid: Cid,
        identity: FileIdentity,
        store: Arc<Inner>,
    ) -> Self {
        Self {
            file: buffered(file, len, store.buffer_size()),
            len,
            cid,
            identity,
            store,
            state: State::Reading(CidHasher::new()),
        }
    }

    /// The object's length when it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The content id being verified.
    pub fn cid(&self) -> Cid {
        self.cid
    }
}

impl AsyncRead for VerifiedReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut this = self.project();
        loop {
            match this.state {
                State::Reading(hasher) => {
                    let asked = buf.remaining();
                    let start = buf.filled().len();
                    ready!(this.file.as_mut().poll_read(cx, buf))?;
                    let fresh = &buf.filled()[start..];
                    if !fresh.is_empty() || asked == 0 {
                        hasher.update(fresh);
                        return Poll::Ready(Ok(()));
                    }
                    let (actual, _) = std::mem::take(hasher).finish();
                    if actual == *this.cid {
                        *this.state = State::Verified;
                        continue;
                    }
                    let store = this.store.clone();
                    let (cid, identity) = (*this.cid, *this.identity);
                    let job = tokio::task::spawn_blocking(move || store.quarantine(&cid, identity));
                    *this.state = State::Quarantining(job, actual);
                }
                State::Quarantining(job, actual) => {
                    match ready!(Pin::new(job).poll(cx)) {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::error!(cid = %this.cid, error = %e, "quarantine failed")
                        }
                        Err(e) => {
                            tracing::error!(cid = %this.cid, error = %e, "quarantine task failed")
                        }
                    }
                    *this.state = State::Failed(*actual);
                }
                State::Failed(actual) => {
                    let err = StoreError::Corrupt {
                        cid: *this.cid,
                        actual: *actual,
                    };
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, err)));
                }
                State::Verified => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::buffer_for;

    #[test]
    fn small_objects_get_small_buffers() {
        const BUF: usize = 256 << 10;
        assert_eq!(buffer_for(0, BUF), 4 << 10);
        assert_eq!(buffer_for(32 + 4096, BUF), 32 + 4096);
        assert_eq!(buffer_for(BUF as u64 + 1, BUF), BUF);
        assert_eq!(buffer_for(u64::MAX, BUF), BUF);
        // A configured buffer under the floor is kept as it is.
        assert_eq!(buffer_for(10, 1024), 1024);
    }
}
