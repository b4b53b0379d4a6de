//! Content ids: the SHA-1 of an object's bytes, and hashers that compute it
//! while the bytes stream by.

use std::{
    fmt,
    io::{self, Read, Write},
    pin::Pin,
    str::FromStr,
    task::{Context, Poll, ready},
};

use pin_project_lite::pin_project;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::StoreError;

/// Length of a content id in bytes.
pub const CID_LEN: usize = 20;

/// Length of a content id written as hex.
pub const CID_HEX_LEN: usize = 2 * CID_LEN;

/// A content id: the SHA-1 of an object's stored bytes, written as 40
/// lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cid([u8; CID_LEN]);

impl Cid {
    /// The content id of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha1::digest(bytes).into())
    }

    /// A content id from its 20 bytes.
    pub const fn from_bytes(bytes: [u8; CID_LEN]) -> Self {
        Self(bytes)
    }

    /// The id's bytes.
    pub const fn as_bytes(&self) -> &[u8; CID_LEN] {
        &self.0
    }

    /// The id as 40 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl FromStr for Cid {
    type Err = StoreError;

    /// Accepts exactly 40 lowercase hex digits and nothing else.
    fn from_str(s: &str) -> Result<Self, StoreError> {
        let invalid = |reason| StoreError::InvalidCid {
            input: s.chars().take(64).collect(),
            reason,
        };
        if s.len() != CID_HEX_LEN {
            return Err(invalid("must be 40 hex digits"));
        }
        if !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid("must be lowercase hex digits only"));
        }
        let mut bytes = [0u8; CID_LEN];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| invalid("must be hex"))?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cid({self})")
    }
}

/// An incremental SHA-1 that ends in a [`Cid`] and counts the bytes it saw.
#[derive(Clone, Default)]
pub struct CidHasher {
    sha1: Sha1,
    len: u64,
}

impl CidHasher {
    /// A hasher that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha1.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The content id of everything fed, and its length.
    pub fn finish(self) -> (Cid, u64) {
        (Cid(self.sha1.finalize().into()), self.len)
    }
}

impl fmt::Debug for CidHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CidHasher").field("len", &self.len).finish()
    }
}

pin_project! {
    /// Wraps a reader (`Read` or `AsyncRead`) and hashes every byte read through it.
    #[derive(Debug)]
    pub struct HashingReader<R> {
        #[pin]
        inner: R,
        hasher: CidHasher,
    }
}

impl<R> HashingReader<R> {
    /// Starts hashing what is read from `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: CidHasher::new(),
        }
    }

    /// The content id and length of what was read so far, and the reader.
    pub fn finish(self) -> (Cid, u64, R) {
        let (cid, len) = self.hasher.finish();
        (cid, len, self.inner)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl<R: AsyncRead> AsyncRead for HashingReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let start = buf.filled().len();
        ready!(this.inner.poll_read(cx, buf))?;
        this.hasher.update(&buf.filled()[start..]);
        Poll::Ready(Ok(()))
    }
}

pin_project! {
    /// Wraps a writer (`Write` or `AsyncWrite`) and hashes every byte the
    /// inner writer accepted.
    #[derive(Debug)]
    pub struct HashingWriter<W> {
        #[pin]
        inner: W,
        hasher: CidHasher,
    }
}

impl<W> HashingWriter<W> {
    /// Starts hashing what is written to `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: CidHasher::new(),
        }
    }

    /// The content id and length of what was written so far, and the writer.
    pub fn finish(self) -> (Cid, u64, W) {
        let (cid, len) = self.hasher.finish();
        (cid, len, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: AsyncWrite> AsyncWrite for HashingWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let n = ready!(this.inner.poll_write(cx, buf))?;
        this.hasher.update(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_test_vectors() {
        // FIPS 180 examples.
        assert_eq!(
            Cid::of(b"").to_string(),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        assert_eq!(
            Cid::of(b"abc").to_string(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn parse_accepts_only_lowercase_hex_of_the_right_length() {
        let cid = Cid::of(b"abc");
        assert_eq!(cid.to_hex().parse::<Cid>().unwrap(), cid);
        for bad in [
            "",
            "abc",
            "A9993E364706816ABA3E25717850C26C9CD0D89D",
            "a9993e364706816aba3e25717850c26c9cd0d89",
            "a9993e364706816aba3e25717850c26c9cd0d89d0",
            "g9993e364706816aba3e25717850c26c9cd0d89d",
            " a9993e364706816aba3e25717850c26c9cd0d89",
            "../../../../../../../../etc/passwd/xxxxx",
            "é9993e364706816aba3e25717850c26c9cd0d89",
        ] {
            let err = bad.parse::<Cid>().unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidCid { .. }),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn invalid_cid_error_is_bounded() {
        let huge = "x".repeat(1 << 20);
        let err = huge.parse::<Cid>().unwrap_err();
        assert!(err.to_string().len() < 200);
    }

    #[test]
    fn hashing_reader_and_writer_agree_with_one_shot() {
        let data = nexnet_testkit::Pattern::to_vec(1, 100_000);
        let mut r = HashingReader::new(&data[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        let (cid, len, _) = r.finish();
        assert_eq!((cid, len), (Cid::of(&data), data.len() as u64));

        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data).unwrap();
        let (cid, len, out) = w.finish();
        assert_eq!((cid, len), (Cid::of(&data), data.len() as u64));
        assert_eq!(out, data);
    }

    proptest::proptest! {
        #[test]
        fn display_parse_round_trip(bytes in proptest::array::uniform20(proptest::num::u8::ANY)) {
            let cid = Cid::from_bytes(bytes);
            proptest::prop_assert_eq!(cid.to_string().parse::<Cid>().unwrap(), cid);
        }

        #[test]
        fn parse_never_panics(s in ".{0,80}") {
            let _ = s.parse::<Cid>();
        }
    }
}
