//! Many small files on a three-node mesh in one process, on loopback, with
//! the defaults (R = 3, fsync on): stores per second on node 1, gets per
//! second on node 1 while it holds the files (local) and after it evicted
//! them (remote: each get fetches from node 2 or 3), deletes per second,
//! with 1 client and with 32 at once, and the process's peak RSS.
//!
//! ```text
//! cargo bench --bench small_files                            # 10,000 files of 4 KiB; 1 and 32 clients
//! NEXNET_BENCH_FILES=2000 cargo bench --bench small_files    # fewer files
//! NEXNET_BENCH_FILE_SIZE=65536 cargo bench --bench small_files
//! NEXNET_BENCH_CLIENTS=1,8,32,128 cargo bench --bench small_files
//! NEXNET_BENCH_FSYNC=0 cargo bench --bench small_files       # fsync off
//! TMPDIR=/some/disk cargo bench --bench small_files          # where the nodes live
//! ```
//!
//! Arguments are ignored (`cargo bench` passes `--bench`). Each client is a
//! task calling the `FileServer` API directly (no HTTP); the clients take
//! the next file from a shared counter until every file is done. Each
//! concurrency runs on its own set of names, so every store creates a new
//! file. A file is `nexnet_testkit::Pattern` bytes from its own seed, and
//! every get compares what it read with them. Every row is one run.
//!
//! Rows, per number of clients:
//! - `store`: `store()` on node 1, until the receipt (3 of 3 committed,
//!   checked for every file).
//! - `local get`: `get()` on node 1, which holds every file: verify the
//!   object, then decrypt; read to the end and compared.
//! - `remote get`: node 1 evicts its copies first (not timed), then
//!   `get()` fetches each object from node 2 or 3, verifies it, commits
//!   the copy (fsynced if fsync is on) and decrypts; compared.
//! - `delete`: `delete()` on node 1, confirmed by all 3 nodes (checked),
//!   which leaves a tombstone on each.
//!
//! Latencies are per operation (p50, p99, max), from the call to the end of
//! the read. Peak RSS is `VmHWM` from `/proc/self/status`, the whole
//! process's high-water mark (three nodes and the clients).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::{env_flag, memory_kib, mesh};
use nexnet::server::FileServer;
use nexnet_testkit::Pattern;
use tokio::io::AsyncReadExt;

const SEED: u64 = 0x736d_616c_6c00_0000;

/// One line of the results.
struct Row {
    clients: usize,
    step: &'static str,
    files: usize,
    secs: f64,
    bytes: u64,
    latencies: Vec<Duration>,
    verified: &'static str,
}

impl Row {
    fn print(&mut self) {
        self.latencies.sort_unstable();
        let pct = |p: f64| {
            let n = self.latencies.len();
            if n == 0 {
                return 0.0;
            }
            let i = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
            self.latencies[i].as_secs_f64() * 1e3
        };
        println!(
            "{:>7}  {:<11} {:>6} {:>8.2} {:>8.0} {:>7.1}  {:>7.2} {:>7.2} {:>7.1}  {}",
            self.clients,
            self.step,
            self.files,
            self.secs,
            self.files as f64 / self.secs.max(1e-9),
            self.bytes as f64 / self.secs.max(1e-9) / 1e6,
            pct(0.50),
            pct(0.99),
            pct(1.0),
            self.verified,
        );
    }
}

fn env_number(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}: {v:?} is not a number")),
        Err(_) => default,
    }
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: {s:?} is not a number"))
            })
            .collect(),
        Err(_) => default.to_vec(),
    }
}

/// The files of one concurrency level: names and seeds.
#[derive(Clone)]
struct Files {
    prefix: String,
    count: usize,
    size: usize,
}

impl Files {
    fn name(&self, i: usize) -> String {
        format!("{}/{i:05}.bin", self.prefix)
    }

    fn seed(&self, i: usize) -> u64 {
        SEED + i as u64
    }
}

/// Runs `op` on every file index with `clients` tasks at once; returns the
/// wall time and each operation's latency.
async fn run<F, Fut>(clients: usize, count: usize, op: F) -> (f64, Vec<Duration>)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (next, op) = (next.clone(), op.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return latencies;
                }
                let t = Instant::now();
                op(i).await;
                latencies.push(t.elapsed());
            }
        });
    }
    let mut all = Vec::with_capacity(count);
    while let Some(l) = tasks.join_next().await {
        all.extend(l.unwrap());
    }
    (started.elapsed().as_secs_f64(), all)
}

/// Gets every file on `node` with `clients` at once, comparing the bytes.
async fn get_all(node: &FileServer, files: &Files, clients: usize) -> (f64, Vec<Duration>) {
    let (node, files2) = (node.clone(), files.clone());
    run(clients, files.count, move |i| {
        let (node, files) = (node.clone(), files2.clone());
        async move {
            let mut reader = node.get(&files.name(i)).await.unwrap();
            let mut got = Vec::with_capacity(files.size);
            reader.read_to_end(&mut got).await.unwrap();
            assert!(
                got == Pattern::to_vec(files.seed(i), files.size),
                "{}: the bytes differ from the source",
                files.name(i)
            );
        }
    })
    .await
}

async fn one_level(nodes: &[FileServer], files: &Files, clients: usize) -> Vec<Row> {
    let (count, size) = (files.count, files.size as u64);
    let row = |step, (secs, latencies): (f64, Vec<Duration>), verified| Row {
        clients,
        step,
        files: count,
        secs,
        bytes: count as u64 * size,
        latencies,
        verified,
    };
    let mut rows = Vec::new();

    eprintln!("{clients} clients: store {count} files...");
    let (node, f) = (nodes[0].clone(), files.clone());
    let timed = run(clients, count, move |i| {
        let (node, files) = (node.clone(), f.clone());
        async move {
            let source = Pattern::new(files.seed(i), files.size as u64);
            let receipt = node.store(&files.name(i), source).await.unwrap();
            assert_eq!(receipt.committed.len(), 3, "{receipt:?}");
        }
    })
    .await;
    rows.push(row("store", timed, "3/3 hold"));

    eprintln!("{clients} clients: local get...");
    let timed = get_all(&nodes[0], files, clients).await;
    rows.push(row("local get", timed, "bytes"));

    eprintln!("{clients} clients: evict on node 1, then remote get...");
    for i in 0..count {
        assert!(nodes[0].evict(&files.name(i)).await.unwrap());
    }
    let timed = get_all(&nodes[0], files, clients).await;
    rows.push(row("remote get", timed, "bytes"));
    assert!(nodes[0].has(&files.name(0)).await.unwrap());

    eprintln!("{clients} clients: delete...");
    let (node, f) = (nodes[0].clone(), files.clone());
    let timed = run(clients, count, move |i| {
        let (node, files) = (node.clone(), f.clone());
        async move {
            let report = node.delete(&files.name(i)).await.unwrap();
            assert_eq!(report.confirmed.len(), 3, "{report:?}");
        }
    })
    .await;
    rows.push(row("delete", timed, "3/3 gone"));
    for node in nodes {
        assert_eq!(node.stats().objects, 0, "objects left after the deletes");
    }
    rows
}

fn main() {
    // Arguments are ignored on purpose (see the top of the file).
    let fsync = env_flag("NEXNET_BENCH_FSYNC", true);
    let count = env_number("NEXNET_BENCH_FILES", 10_000);
    let size = env_number("NEXNET_BENCH_FILE_SIZE", 4096);
    let levels = env_list("NEXNET_BENCH_CLIENTS", &[1, 32]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut rows, peaks) = rt.block_on(async {
        let nodes = mesh(fsync).await;
        let mut rows = Vec::new();
        let mut peaks = vec![("mesh up", memory_kib().0)];
        for &clients in &levels {
            let files = Files {
                prefix: format!("small/c{clients}"),
                count,
                size,
            };
            rows.extend(one_level(&nodes, &files, clients).await);
            peaks.push(("", memory_kib().0));
        }
        nodes.shutdown().await;
        (rows, peaks)
    });
    drop(rt);

    println!();
    println!(
        "three nodes in one process, loopback, R = 3, fsync {}, {count} files of {size} bytes, \
         {} CPUs (one tokio worker each); MB = 10^6 bytes of file",
        if fsync { "on" } else { "off" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!(
        "{:>7}  {:<11} {:>6} {:>8} {:>8} {:>7}  {:>7} {:>7} {:>7}  verified",
        "clients", "step", "files", "secs", "files/s", "MB/s", "p50 ms", "p99 ms", "max ms"
    );
    for row in &mut rows {
        row.print();
    }
    println!();
    for (i, (what, kib)) in peaks.iter().enumerate() {
        let what = if i == 0 {
            what.to_string()
        } else {
            format!("after {} clients", levels[i - 1])
        };
        println!(
            "peak RSS (VmHWM, whole process so far), {what}: {kib} KiB ({:.1} MiB)",
            *kib as f64 / 1024.0
        );
    }
}
