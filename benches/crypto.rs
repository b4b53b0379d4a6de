//! Crypto throughput: AES-256-CTR through the streaming adapters, SHA-1 (the
//! content id) and MD5 (name ids). Compare with `openssl speed` through
//! `benches/compare-openssl.sh`, which runs both in one sitting.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::{
    hint::black_box,
    io::{self, Read},
    pin::Pin,
    task::{Context, Poll},
};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use md5::Digest;
use nexnet::{
    crypto::{DataKey, DecryptReader, EncryptReader},
    store::CidHasher,
};
use tokio::io::{AsyncRead, ReadBuf};

const SIZES: [(usize, &str); 2] = [(64 * 1024, "64KiB"), (1024 * 1024, "1MiB")];

/// An endless source that leaves the caller's buffer as it is: each read
/// "produces" the bytes already in the buffer. Like `openssl speed`, which
/// encrypts one buffer in place over and over, this measures the adapter and
/// the cipher and nothing else.
struct InPlace;

impl Read for InPlace {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
}

impl AsyncRead for InPlace {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = buf.remaining();
        buf.initialize_unfilled();
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// An endless source that copies from a 1 MiB buffer: what reading a file
/// from the page cache looks like.
struct Copying {
    data: Vec<u8>,
    pos: usize,
}

impl Copying {
    fn new() -> Self {
        Self {
            data: (0..1 << 20)
                .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
            pos: 0,
        }
    }
}

impl Read for Copying {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos = (self.pos + n) % self.data.len();
        Ok(n)
    }
}

/// Reads exactly one buffer's worth (after the 32-byte header on the first call).
fn read_buffer(reader: &mut impl Read, buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        filled += reader.read(&mut buf[filled..]).unwrap();
    }
}

fn aes_ctr(c: &mut Criterion) {
    let key = DataKey::generate().unwrap();
    let mut group = c.benchmark_group("aes256ctr");
    for (size, label) in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0u8; size];

        let (_, mut keystream) = key.begin_object().unwrap();
        group.bench_function(BenchmarkId::new("keystream_apply", label), |b| {
            b.iter(|| keystream.apply(black_box(&mut buf)))
        });

        let mut enc = EncryptReader::new(&key, InPlace).unwrap();
        group.bench_function(BenchmarkId::new("encrypt_read", label), |b| {
            b.iter(|| read_buffer(&mut enc, black_box(&mut buf)))
        });

        let (header, _) = key.begin_object().unwrap();
        let mut dec = DecryptReader::from_parts(key.keystream_for(&header).unwrap(), InPlace);
        group.bench_function(BenchmarkId::new("decrypt_read", label), |b| {
            b.iter(|| read_buffer(&mut dec, black_box(&mut buf)))
        });

        let mut enc = EncryptReader::new(&key, Copying::new()).unwrap();
        group.bench_function(BenchmarkId::new("encrypt_read_copying", label), |b| {
            b.iter(|| read_buffer(&mut enc, black_box(&mut buf)))
        });

        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut enc = EncryptReader::new(&key, InPlace).unwrap();
        group.bench_function(BenchmarkId::new("encrypt_async_read", label), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut filled = 0;
                    while filled < buf.len() {
                        filled += tokio::io::AsyncReadExt::read(&mut enc, &mut buf[filled..])
                            .await
                            .unwrap();
                    }
                })
            })
        });
    }
    group.finish();
}

fn hashes(c: &mut Criterion) {
    let mut group = c.benchmark_group("hash");
    for (size, label) in SIZES {
        let buf: Vec<u8> = (0..size).map(|i| i as u8).collect();
        group.throughput(Throughput::Bytes(size as u64));
        let mut sha1 = CidHasher::new();
        group.bench_function(BenchmarkId::new("sha1", label), |b| {
            b.iter(|| sha1.update(black_box(&buf)))
        });
        let mut md5 = md5::Md5::new();
        group.bench_function(BenchmarkId::new("md5", label), |b| {
            b.iter(|| md5.update(black_box(&buf)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("name_id");
    group.bench_function("photos/2026/cat.png", |b| {
        b.iter(|| nexnet::crypto::name_id(black_box("photos/2026/cat.png")))
    });
    group.finish();
}

criterion_group!(benches, aes_ctr, hashes);
criterion_main!(benches);
