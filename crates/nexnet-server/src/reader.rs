//! [`FileReader`]: the plaintext of a file, whole or a range of it,
//! streamed from verified chunks (or, for a file of the first format, from
//! its verified local object).

use std::{
    collections::VecDeque,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use nexnet_crypto::DecryptReader;
use nexnet_store::{Cid, ObjectReader};
use tokio::{
    io::{AsyncRead, AsyncReadExt, ReadBuf, Take},
    sync::mpsc,
    task::{AbortHandle, JoinHandle},
};

use crate::{
    Result, ServerError,
    manifest::Walk,
    node::{Manifests, Node},
};

/// Chunk fetches in flight per read: chunks from different holders at
/// once, 8 MiB at the default chunk size.
const GET_WINDOW: usize = 8;

/// The plaintext of a file.
///
/// It knows the file it reads (size, content id, where its bytes start),
/// so a caller that needs them (an HTTP handler's headers) does not look
/// the name up again. A chunked file is read by a task of the node's that
/// keeps a window of chunk fetches going ahead of the reader and releases
/// each chunk's plaintext only once the chunk has verified; dropping the
/// reader stops it.
pub struct FileReader {
    cid: Cid,
    inner: Inner,
    offset: u64,
    len: u64,
    file_len: u64,
}

enum Inner {
    // Boxed: the cipher state is large, and this variant is the rare one.
    Whole(Box<Take<DecryptReader<ObjectReader>>>),
    Chunks {
        rx: mpsc::Receiver<io::Result<Bytes>>,
        current: Bytes,
        /// Bytes still to come: a producer that ends early (shut down) is
        /// an error, never a short file.
        left: u64,
        task: AbortHandle,
    },
}

impl FileReader {
    /// `len` bytes of the file of `file_len` bytes in object `cid` (which
    /// is here and verified), from byte `offset`. An `offset` at or past
    /// the end of a non-empty file is refused; `len` is cut at the end.
    pub(crate) async fn open(
        node: &Node,
        cid: Cid,
        file_len: u64,
        offset: u64,
        len: u64,
    ) -> Result<Self> {
        check_range(offset, file_len)?;
        let len = len.min(file_len - offset);
        let object = node.store.read(&cid).await?;
        // CTR has random access: a range reads only its own bytes.
        let inner = DecryptReader::new_async_at(&node.key, object, offset)
            .await?
            .expect_len(file_len)
            .take(len);
        Ok(Self {
            cid,
            inner: Inner::Whole(Box::new(inner)),
            offset,
            len,
            file_len,
        })
    }

    /// `len` bytes from `offset` of the chunked file whose root is `cid`.
    pub(crate) fn chunked(
        node: Arc<Node>,
        cid: Cid,
        walk: Walk,
        offset: u64,
        len: u64,
    ) -> Result<Self> {
        let file_len = walk.root().plain_len;
        check_range(offset, file_len)?;
        let len = len.min(file_len - offset);
        let (tx, rx) = mpsc::channel(2);
        let n = node.clone();
        let task = node
            .spawn(async move {
                tokio::select! {
                    () = produce(&n, walk, offset, len, &tx) => {}
                    () = n.shutdown.cancelled() => {
                        let _ = tx.try_send(Err(io::Error::other(ServerError::Shutdown)));
                    }
                }
            })
            .abort_handle();
        Ok(Self {
            cid,
            inner: Inner::Chunks {
                rx,
                current: Bytes::new(),
                left: len,
                task,
            },
            offset,
            len,
            file_len,
        })
    }

    /// How many bytes this reader yields: the file's size, or the range's.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it yields nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where in the file its bytes start.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The whole file's size.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The file's id (an HTTP ETag).
    pub fn cid(&self) -> Cid {
        self.cid
    }
}

fn check_range(offset: u64, file_len: u64) -> Result<()> {
    if offset > file_len || (offset == file_len && file_len > 0) {
        return Err(ServerError::RangeNotSatisfiable { offset, file_len });
    }
    Ok(())
}

/// Fetches the chunks of `offset .. offset + len` with a window of fetches
/// in flight (each on a task of its own, so that they progress while the
/// reader is slow), and sends their plaintext in order.
async fn produce(
    node: &Arc<Node>,
    mut walk: Walk,
    offset: u64,
    len: u64,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) {
    let mut pending = Pending::default();
    let result = async {
        let root = *walk.root();
        let walk_cid = walk.cid();
        let mut keystream = node.key.keystream_for(&root.header)?;
        let chunks = root.chunks_for(offset, len);
        let (end, size) = (offset + len, u64::from(root.chunk_size));
        let mut next = chunks.start;
        loop {
            while pending.0.len() < GET_WINDOW && next < chunks.end {
                let chunk_len = root.chunk_len(next);
                let fetch = if next == root.chunk_count {
                    // The short tail, kept in the root.
                    let tail = Bytes::copy_from_slice(walk.tail());
                    node.spawn(async move { Ok(tail) })
                } else {
                    let cid = walk.chunk(next, &Manifests(node)).await?;
                    let n = node.clone();
                    node.spawn(async move { n.get_chunk(cid, chunk_len, true).await })
                };
                pending.0.push_back((next, fetch));
                next += 1;
            }
            let Some((index, fetch)) = pending.0.pop_front() else {
                return Ok::<_, ServerError>(());
            };
            let bytes = fetch.await.map_err(|e| {
                ServerError::io("fetch a chunk", "a node task", io::Error::other(e))
            })??;
            if bytes.len() as u64 != root.chunk_len(index) {
                return Err(ServerError::Manifest {
                    cid: walk_cid,
                    reason: "a chunk of another length than the manifest says",
                });
            }
            let start = index * size;
            let mut plain = BytesMut::from(&bytes[..]);
            keystream.seek(start)?;
            keystream.apply(&mut plain);
            let from = offset.saturating_sub(start) as usize;
            let to = (end - start).min(plain.len() as u64) as usize;
            let piece = plain.freeze().slice(from..to);
            if tx.send(Ok(piece)).await.is_err() {
                // The reader is gone.
                return Ok(());
            }
        }
    }
    .await;
    drop(pending);
    if let Err(e) = result {
        let _ = tx.send(Err(io::Error::other(e))).await;
    }
}

/// The chunk fetches a read has in flight, in order. Dropped (the read
/// ended, failed, or its task was stopped with the reader), it stops them:
/// a client gone costs no more transfers.
#[derive(Default)]
struct Pending(VecDeque<(u64, JoinHandle<Result<Bytes>>)>);

impl Drop for Pending {
    fn drop(&mut self) {
        for (_, fetch) in &self.0 {
            fetch.abort();
        }
    }
}

impl Drop for FileReader {
    fn drop(&mut self) {
        if let Inner::Chunks { task, .. } = &self.inner {
            task.abort();
        }
    }
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("cid", &self.cid)
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish()
    }
}

impl AsyncRead for FileReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Inner::Whole(r) => Pin::new(r.as_mut()).poll_read(cx, buf),
            Inner::Chunks {
                rx, current, left, ..
            } => {
                while current.is_empty() {
                    match rx.poll_recv(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(None) if *left == 0 => return Poll::Ready(Ok(())),
                        Poll::Ready(None) => {
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "the file's read stopped before its end",
                            )));
                        }
                        Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                        Poll::Ready(Some(Ok(piece))) => *current = piece,
                    }
                }
                let n = current.len().min(buf.remaining());
                buf.put_slice(&current.split_to(n));
                *left = left.saturating_sub(n as u64);
                Poll::Ready(Ok(()))
            }
        }
    }
}
