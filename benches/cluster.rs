//! A three-node mesh in one process, on loopback, with the defaults
//! (R = 3, fsync on): store throughput on node 1, remote get throughput on
//! node 1 after it evicted its copy, and the process's peak RSS.
//!
//! ```text
//! cargo bench --bench cluster                                # 64 MiB and 1 GiB
//! NEXNET_BENCH_SIZES=16,256 cargo bench --bench cluster      # sizes in MiB
//! NEXNET_BENCH_FSYNC=0 cargo bench --bench cluster           # fsync off
//! TMPDIR=/some/disk cargo bench --bench cluster              # where the nodes live
//!
//! # Peak RSS as the kernel reports it at exit ("Maximum resident set size"):
//! cargo bench --bench cluster --no-run    # prints: Executable ... (target/release/deps/cluster-HASH)
//! /usr/bin/time -v target/release/deps/cluster-HASH
//! ```
//!
//! Arguments are ignored (`cargo bench` passes `--bench`), so the shell
//! glob `/usr/bin/time -v target/release/deps/cluster-*` also works while
//! one build is there: the `cluster-HASH.d` it matches as well just becomes
//! an ignored argument.
//!
//! The file is `nexnet_testkit::Pattern`, generated as it is read, so the
//! process never holds it. Every row is one run. MB = 10^6 bytes.
//!
//! Rows, per size:
//! - `source`: draining the Pattern alone, and Pattern + FNV digest
//!   (`pattern_digest`): what the generator and the checker cost by
//!   themselves, for reading the rows below.
//! - `store`: `store()` on node 1 from a Pattern, until the receipt (every
//!   holder committed; 3 of 3 checked).
//! - `remote get + check`: node 1 evicts its copy, then `get()` (which
//!   fetches from node 2 or 3 and verifies before the first byte) and the
//!   reader drained through the testkit digest, compared with the
//!   pattern's.
//! - `remote get, drain`: the same, draining without a digest: the node's
//!   own speed.
//! - `local get, drain`: node 1 again, now holding the copy (verify, then
//!   decrypt).
//!
//! "first byte" is when `get()` returned: a remote get fetches and verifies
//! the whole object before that. Peak RSS is `VmHWM` from
//! `/proc/self/status`, the whole process's high-water mark so far (the
//! sizes run in the order given, so a later size's figure includes the
//! earlier ones).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::{env_flag, memory_kib, mesh};
use nexnet::server::{FileServer, ServerError};
use nexnet_testkit::{Pattern, digest_async_reader, pattern_digest};
use tokio::io::{AsyncRead, AsyncReadExt};

const SEED: u64 = 0x0063_6c75_7374_6572;
const NAME: &str = "bench/cluster.bin";
const STORE_TARGET: f64 = 300.0;
const GET_TARGET: f64 = 500.0;
const RSS_TARGET_KIB: u64 = 64 << 10;

/// One line of the results.
struct Row {
    mib: u64,
    step: &'static str,
    secs: f64,
    first_byte: Option<f64>,
    rate: f64,
    verified: &'static str,
    target: Option<f64>,
}

impl Row {
    fn new(mib: u64, step: &'static str, bytes: u64, secs: f64) -> Self {
        Self {
            mib,
            step,
            secs,
            first_byte: None,
            rate: bytes as f64 / secs.max(1e-9) / 1e6,
            verified: "-",
            target: None,
        }
    }

    fn print(&self) {
        let first = self.first_byte.map_or("-".into(), |s| format!("{s:.3}"));
        let target = match self.target {
            Some(t) if self.rate >= t => format!(">= {t:.0}  met"),
            Some(t) => format!(">= {t:.0}  MISSED"),
            None => String::new(),
        };
        println!(
            "{:>6}  {:<20} {:>8.3} {:>10} {:>8.0}  {:<8} {}",
            self.mib, self.step, self.secs, first, self.rate, self.verified, target
        );
    }
}

fn sizes_mib() -> Vec<u64> {
    match std::env::var("NEXNET_BENCH_SIZES") {
        Ok(v) => v
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("NEXNET_BENCH_SIZES: {s:?} is not a number of MiB"))
            })
            .collect(),
        Err(_) => vec![64, 1024],
    }
}

/// Reads `reader` to the end into one reused buffer; returns the bytes.
async fn drain(mut reader: impl AsyncRead + Unpin) -> u64 {
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0;
    loop {
        let n = reader.read(&mut buf).await.unwrap();
        if n == 0 {
            return total;
        }
        total += n as u64;
    }
}

/// Gets the file on `node` and drains it, through the digest and compared
/// with `check` if given.
async fn get(node: &FileServer, mib: u64, step: &'static str, check: Option<(u64, u64)>) -> Row {
    let started = Instant::now();
    let reader = node.get(NAME).await.unwrap();
    let first_byte = started.elapsed().as_secs_f64();
    let (len, verified) = match check {
        Some(expected) => {
            let got = digest_async_reader(reader).await.unwrap();
            assert_eq!(got, expected, "{step}: the bytes differ from the source");
            (got.0, "yes")
        }
        None => (drain(reader).await, "len only"),
    };
    let mut row = Row::new(mib, step, len, started.elapsed().as_secs_f64());
    assert_eq!(len, mib << 20, "{step}: length");
    row.first_byte = Some(first_byte);
    row.verified = verified;
    row
}

async fn one_size(nodes: &[FileServer], mib: u64) -> Vec<Row> {
    let len = mib << 20;
    let mut rows = Vec::new();

    // What the generator and the checker cost alone.
    let started = Instant::now();
    assert_eq!(drain(Pattern::new(SEED, len)).await, len);
    rows.push(Row::new(
        mib,
        "source: pattern",
        len,
        started.elapsed().as_secs_f64(),
    ));
    let started = Instant::now();
    let expected = tokio::task::spawn_blocking(move || pattern_digest(SEED, len))
        .await
        .unwrap();
    rows.push(Row::new(
        mib,
        "source: + digest",
        len,
        started.elapsed().as_secs_f64(),
    ));

    eprintln!("{mib} MiB: store...");
    let started = Instant::now();
    let receipt = nodes[0].store(NAME, Pattern::new(SEED, len)).await.unwrap();
    let mut row = Row::new(mib, "store", len, started.elapsed().as_secs_f64());
    assert_eq!(receipt.plain_len, len);
    assert_eq!(receipt.committed.len(), 3, "{receipt:?}");
    row.verified = "3/3 hold";
    row.target = Some(STORE_TARGET);
    rows.push(row);

    eprintln!("{mib} MiB: remote get + check...");
    assert!(nodes[0].evict(NAME).await.unwrap());
    let mut row = get(&nodes[0], mib, "remote get + check", Some(expected)).await;
    row.target = Some(GET_TARGET);
    rows.push(row);

    eprintln!("{mib} MiB: remote get, drain...");
    assert!(nodes[0].evict(NAME).await.unwrap());
    let mut row = get(&nodes[0], mib, "remote get, drain", None).await;
    row.target = Some(GET_TARGET);
    rows.push(row);

    eprintln!("{mib} MiB: local get, drain...");
    assert!(nodes[0].has(NAME).await.unwrap());
    rows.push(get(&nodes[0], mib, "local get, drain", None).await);

    // Clean up before the next size.
    let report = nodes[0].delete(NAME).await.unwrap();
    assert_eq!(report.confirmed.len(), 3, "{report:?}");
    for node in nodes {
        assert!(matches!(
            node.get(NAME).await,
            Err(ServerError::NotFound { .. })
        ));
        assert_eq!(node.stats().objects, 0);
    }
    rows
}

fn main() {
    // Arguments are ignored on purpose (see the top of the file).
    let fsync = env_flag("NEXNET_BENCH_FSYNC", true);
    let sizes = sizes_mib();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (rows, memory, baseline) = rt.block_on(async {
        let nodes = mesh(fsync).await;
        let baseline = memory_kib();
        let mut rows = Vec::new();
        let mut memory = Vec::new();
        for &mib in &sizes {
            rows.extend(one_size(&nodes, mib).await);
            memory.push((mib, memory_kib()));
        }
        nodes.shutdown().await;
        (rows, memory, baseline)
    });
    drop(rt);

    println!();
    println!(
        "three nodes in one process, loopback, R = 3, fsync {}, {} CPUs (one tokio worker each); MB = 10^6 bytes",
        if fsync { "on" } else { "off" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!(
        "{:>6}  {:<20} {:>8} {:>10} {:>8}  {:<8} target MB/s",
        "MiB", "step", "secs", "1st byte", "MB/s", "verified"
    );
    for row in &rows {
        row.print();
    }
    println!(
        "(\"+ check\" includes the testkit digest, which alone runs at the \"source: + digest\" rate; \
         \"1st byte\": when get() returned, after the fetch and verification)"
    );
    println!();
    println!(
        "peak RSS (VmHWM, whole process so far; target <= {} MiB)",
        RSS_TARGET_KIB >> 10
    );
    println!(
        "  mesh up, before any file:  VmHWM {:>8} KiB ({:.1} MiB), VmRSS {:>8} KiB",
        baseline.0,
        baseline.0 as f64 / 1024.0,
        baseline.1
    );
    for (mib, (hwm, rss)) in &memory {
        let verdict = if *hwm <= RSS_TARGET_KIB {
            "met"
        } else {
            "MISSED"
        };
        println!(
            "  after {mib:>5} MiB:           VmHWM {hwm:>8} KiB ({:.1} MiB), VmRSS {rss:>8} KiB  {verdict}",
            *hwm as f64 / 1024.0,
        );
    }
    let (hwm, _) = memory_kib();
    println!(
        "  at exit:                   VmHWM {hwm:>8} KiB ({:.1} MiB)",
        hwm as f64 / 1024.0
    );
}
