//! Test fixtures shared by nexnet's crates (not published).
//!
//! Every data-path test iterates over [`INTERESTING_SIZES`], and draws its
//! bytes from [`Pattern`]: deterministic, position-dependent data that is
//! generated as it is read, so tests over many MiB hold no whole file.
//!
//! With the cargo feature `mesh`, the `mesh` module starts in-process meshes of
//! `nexnet_server::FileServer` nodes on loopback and checks what they store:
//! the fixture of `nexnet-server`'s tests and of the cluster benches.

use std::{
    io::{self, Read},
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, ReadBuf};

#[cfg(feature = "mesh")]
pub mod mesh;

/// 64 KiB: the chunk size of nexnet's data paths.
pub const CHUNK: usize = 64 * 1024;

/// Sizes at which data paths break: empty, one byte, around the AES block
/// (16), around the chunk, and a couple of multi-chunk files.
pub const INTERESTING_SIZES: &[usize] = &[
    0,
    1,
    15,
    16,
    17,
    CHUNK - 1,
    CHUNK,
    CHUNK + 1,
    1024 * 1024,
    8 * 1024 * 1024,
];

/// A deterministic stream of `len` bytes; two patterns with the same seed and
/// length produce the same bytes. Implements `Read` and `AsyncRead`.
#[derive(Clone, Debug)]
pub struct Pattern {
    seed: u64,
    pos: u64,
    len: u64,
}

impl Pattern {
    /// A pattern of `len` bytes drawn from `seed`.
    pub fn new(seed: u64, len: u64) -> Self {
        Self { seed, pos: 0, len }
    }

    /// The byte at `pos`.
    pub fn byte_at(seed: u64, pos: u64) -> u8 {
        Self::word(seed, pos / 8).to_le_bytes()[(pos % 8) as usize]
    }

    /// The 8-byte word `index` of the pattern: splitmix64 of seed and index.
    fn word(seed: u64, index: u64) -> u64 {
        let mut z = seed
            .wrapping_mul(0xd1b5_4a32_d192_ed03)
            .wrapping_add(index)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The whole pattern as a vector (for small sizes and assertions).
    pub fn to_vec(seed: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        Self::new(seed, len as u64).fill(&mut out);
        out
    }

    fn fill(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min((self.len - self.pos) as usize);
        let out = &mut out[..n];
        // A partial word up to the next 8-byte boundary of the stream...
        let head = ((8 - self.pos % 8) % 8).min(n as u64) as usize;
        for (i, b) in out[..head].iter_mut().enumerate() {
            *b = Self::byte_at(self.seed, self.pos + i as u64);
        }
        // ...then whole words (the fast path: generators run at memory
        // speed, so they do not dominate the benchmarks they feed)...
        let mut index = (self.pos + head as u64) / 8;
        let mut words = out[head..].chunks_exact_mut(8);
        for w in &mut words {
            w.copy_from_slice(&Self::word(self.seed, index).to_le_bytes());
            index += 1;
        }
        // ...and the bytes of the last partial word.
        let tail = words.into_remainder();
        let word = Self::word(self.seed, index).to_le_bytes();
        tail.copy_from_slice(&word[..tail.len()]);
        self.pos += n as u64;
        n
    }
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.fill(buf))
    }
}

impl AsyncRead for Pattern {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = this.fill(buf.initialize_unfilled());
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// Reads `reader` to the end in 64 KiB steps, returning the length and an
/// FNV-1a digest, so tests compare multi-MiB streams without holding them.
pub fn digest_reader(mut reader: impl Read) -> io::Result<(u64, u64)> {
    let mut buf = vec![0u8; CHUNK];
    let mut d = Digest::default();
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(d.finish());
        }
        d.update(&buf[..n]);
    }
}

/// [`digest_reader`] for async readers.
pub async fn digest_async_reader(mut reader: impl AsyncRead + Unpin) -> io::Result<(u64, u64)> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; CHUNK];
    let mut d = Digest::default();
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(d.finish());
        }
        d.update(&buf[..n]);
    }
}

/// The (length, digest) a [`Pattern`] of `len` bytes from `seed` reads to.
pub fn pattern_digest(seed: u64, len: u64) -> (u64, u64) {
    // Pattern never fails to read.
    digest_reader(Pattern::new(seed, len)).unwrap_or_default()
}

/// An FNV-1a-style fingerprint over a stream, four 64-bit lanes of 8-byte
/// words so it runs at memory speed (a byte-wise FNV-1a at ~0.5 GB/s would
/// dominate multi-GiB benchmarks). Words are aligned to the stream, not to
/// the reads, so the result does not depend on how the stream was cut. A
/// test-only fingerprint, not a security hash.
#[derive(Clone, Copy)]
struct Digest {
    len: u64,
    lanes: [u64; 4],
    tail: [u8; 32],
    tail_len: usize,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Default for Digest {
    fn default() -> Self {
        Self {
            len: 0,
            lanes: [FNV_OFFSET, FNV_OFFSET ^ 1, FNV_OFFSET ^ 2, FNV_OFFSET ^ 3],
            tail: [0; 32],
            tail_len: 0,
        }
    }
}

impl Digest {
    fn block(&mut self, block: &[u8]) {
        for (lane, word) in self.lanes.iter_mut().zip(block.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            *lane = (*lane ^ u64::from_le_bytes(w)).wrapping_mul(FNV_PRIME);
        }
    }

    fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.tail_len > 0 {
            let take = (32 - self.tail_len).min(bytes.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&bytes[..take]);
            self.tail_len += take;
            bytes = &bytes[take..];
            if self.tail_len < 32 {
                return;
            }
            let tail = self.tail;
            self.block(&tail);
            self.tail_len = 0;
        }
        let blocks = bytes.chunks_exact(32);
        let rest = blocks.remainder();
        for b in blocks {
            self.block(b);
        }
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    fn finish(self) -> (u64, u64) {
        let mut h = FNV_OFFSET;
        for x in self.lanes {
            h = (h ^ x).wrapping_mul(FNV_PRIME);
        }
        for &b in &self.tail[..self.tail_len] {
            h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        (self.len, h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_reads_the_same_whatever_the_read_size() {
        let whole = Pattern::to_vec(3, 1000);
        let mut pieces = Vec::new();
        let mut p = Pattern::new(3, 1000);
        let mut buf = [0u8; 7];
        loop {
            let n = p.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            pieces.extend_from_slice(&buf[..n]);
        }
        assert_eq!(pieces, whole);
        assert_eq!(whole[123], Pattern::byte_at(3, 123));
        assert_ne!(Pattern::to_vec(4, 1000), whole);
    }

    #[test]
    fn the_digest_does_not_depend_on_how_the_stream_is_cut() {
        let whole = Pattern::to_vec(5, 10_000);
        let mut one = Digest::default();
        one.update(&whole);
        for step in [1, 7, 31, 32, 33, 1000] {
            let mut cut = Digest::default();
            for piece in whole.chunks(step) {
                cut.update(piece);
            }
            assert_eq!(cut.finish(), one.finish(), "pieces of {step}");
        }
        let mut changed = whole.clone();
        changed[4321] ^= 1;
        let mut other = Digest::default();
        other.update(&changed);
        assert_ne!(other.finish(), one.finish());
        let mut swapped = whole.clone();
        swapped.swap(0, 8);
        let mut other = Digest::default();
        other.update(&swapped);
        assert_ne!(other.finish(), one.finish());
    }
}

/// A seeded splitmix64: random enough for fault schedules, small enough to
/// read, and a failing run replays from its seed.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True `p` times in a hundred.
    pub fn percent(&mut self, p: u64) -> bool {
        self.next_u64() % 100 < p
    }
}
