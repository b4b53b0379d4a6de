//! [`FileReader`]: the plaintext of a file, streamed from its verified
//! local object, whole or a range of it.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use nexnet_crypto::DecryptReader;
use nexnet_store::{Cid, ObjectReader};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf, Take};

use crate::{Result, ServerError, node::Node};

/// The plaintext of a file, streamed from its verified local object.
///
/// It knows the file it reads (size, content id, where its bytes start),
/// so a caller that needs them (an HTTP handler's headers) does not look
/// the name up again. It holds the object open, nothing of the node.
pub struct FileReader {
    cid: Cid,
    inner: Take<DecryptReader<ObjectReader>>,
    offset: u64,
    len: u64,
    file_len: u64,
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
        if offset > file_len || (offset == file_len && file_len > 0) {
            return Err(ServerError::RangeNotSatisfiable { offset, file_len });
        }
        let len = len.min(file_len - offset);
        let object = node.store.read(&cid).await?;
        // CTR has random access: a range reads only its own bytes.
        let inner = DecryptReader::new_async_at(&node.key, object, offset)
            .await?
            .expect_len(file_len)
            .take(len);
        Ok(Self {
            cid,
            inner,
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

    /// The content id of the object it reads (an HTTP ETag).
    pub fn cid(&self) -> Cid {
        self.cid
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
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}
