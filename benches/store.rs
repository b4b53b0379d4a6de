//! Store throughput: streaming 256 MiB into the object store, with and
//! without fsync, and reading it back verified.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nexnet::store::{CasPath, ObjectStore, StoreConfig};
use tokio::io::{AsyncRead, ReadBuf};

const OBJECT: u64 = 256 << 20;

/// `len` bytes copied from a 1 MiB buffer; the first 8 bytes carry a counter
/// so every object is new (no dedup no-ops).
struct Source {
    data: Vec<u8>,
    pos: u64,
    len: u64,
}

impl Source {
    fn new(serial: u64, len: u64) -> Self {
        let mut data: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        data[..8].copy_from_slice(&serial.to_le_bytes());
        Self { data, pos: 0, len }
    }
}

impl AsyncRead for Source {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let at = (self.pos % self.data.len() as u64) as usize;
        let n = buf
            .remaining()
            .min(self.data.len() - at)
            .min((self.len - self.pos) as usize);
        buf.put_slice(&self.data[at..at + n]);
        self.pos += n as u64;
        Poll::Ready(Ok(()))
    }
}

fn write_256mib(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("store");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes(OBJECT));

    for fsync in [true, false] {
        let dir = tempfile::tempdir_in(std::env::var_os("NEXNET_BENCH_DIR").unwrap_or(".".into()))
            .unwrap();
        let store = rt
            .block_on(ObjectStore::open_with(
                dir.path(),
                StoreConfig::default().fsync(fsync),
                CasPath::default(),
            ))
            .unwrap();
        let mut serial = 0;
        let name = if fsync {
            "write_256MiB_fsync"
        } else {
            "write_256MiB_nofsync"
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    serial += 1;
                    let source = Source::new(serial, OBJECT);
                    let started = Instant::now();
                    let written = rt.block_on(store.write(source)).unwrap();
                    spent += started.elapsed();
                    // Not timed: keep the disk from filling up.
                    rt.block_on(store.delete(&written.cid)).unwrap();
                }
                spent
            })
        });
    }

    let dir =
        tempfile::tempdir_in(std::env::var_os("NEXNET_BENCH_DIR").unwrap_or(".".into())).unwrap();
    let store = rt
        .block_on(ObjectStore::open_with(
            dir.path(),
            StoreConfig::default().fsync(false),
            CasPath::default(),
        ))
        .unwrap();
    let cid = rt
        .block_on(store.write(Source::new(0, OBJECT)))
        .unwrap()
        .cid;
    group.bench_function("read_verified_256MiB", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut reader = store.read_verified(&cid).await.unwrap();
                tokio::io::copy(&mut reader, &mut tokio::io::sink())
                    .await
                    .unwrap();
            })
        })
    });
    group.finish();
}

criterion_group!(benches, write_256mib);
criterion_main!(benches);
