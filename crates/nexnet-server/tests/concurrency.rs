//! Concurrency: 32 clients storing and reading at once (R = 3 and R = 2),
//! and many gets at once of one file on a node that must fetch it, or whose
//! copy is damaged (every reader gets the right bytes, one good copy is
//! left, each damaged one quarantined once).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use nexnet_server::{FileServer, placement};
use nexnet_store::Cid;
use nexnet_testkit::{
    mesh::{Mesh, assert_reads, flip_a_byte, object_file, quarantined, read_digest, store_pattern},
    pattern_digest,
};

async fn concurrent_stores_and_reads(r: usize, seed_base: u64) {
    let nodes = Mesh::start(3, r).await;
    let tasks: Vec<_> = (0..32u64)
        .map(|i| {
            let writer = nodes[i as usize % 3].clone();
            let reader = nodes[(i as usize + 1) % 3].clone();
            // A few KiB up to 2 MiB.
            let len = 3 * 1024 + (i * i * i * 2_000) % (2 * 1024 * 1024 - 3 * 1024);
            let seed = seed_base + i;
            tokio::spawn(async move {
                let name = format!("concurrent/{i}");
                let receipt = store_pattern(&writer, &name, seed, len).await;
                assert_eq!(receipt.committed.len(), r, "{name}: {receipt:?}");
                assert_reads(&reader, &name, seed, len).await;
                (name, receipt.cid, receipt.chunks)
            })
        })
        .collect();
    let mut stored = Vec::new();
    for t in tasks {
        stored.push(t.await.unwrap());
    }
    let cids: BTreeSet<Cid> = stored.iter().map(|(_, cid, _)| *cid).collect();
    assert_eq!(cids.len(), 32);
    // Every placement holder has its copy (a reader that fetched one keeps
    // it too).
    let all = nodes.ids();
    for (name, cid, _) in &stored {
        let held = nodes.holding(name).await;
        for h in placement::holders(cid, all.clone(), r) {
            assert!(
                held.contains(&h),
                "{name}: holder {h:?} lacks it ({held:?})"
            );
        }
    }
    if r == 3 {
        // Every node holds every root and every chunk, nothing else.
        let objects: u64 = stored.iter().map(|(_, _, chunks)| chunks + 1).sum();
        for n in &nodes {
            assert_eq!(n.stats().files, 32, "{:?}", n.stats());
            assert_eq!(n.stats().objects, objects, "{:?}", n.stats());
            assert_eq!(n.stats().cached_bytes, 0, "{:?}", n.stats());
        }
    }
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_stores_and_reads_r3() {
    concurrent_stores_and_reads(3, 8000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_stores_and_reads_r2() {
    concurrent_stores_and_reads(2, 8100).await;
}

/// Runs `get(name)` on `node` from `n` tasks at once; every one must read
/// pattern `seed` of `len` bytes.
async fn concurrent_reads(node: &FileServer, name: &'static str, n: usize, seed: u64, len: u64) {
    let readers: Vec<_> = (0..n)
        .map(|_| {
            let node = node.clone();
            tokio::spawn(async move { read_digest(&node, name).await })
        })
        .collect();
    let mut failures = Vec::new();
    for r in readers {
        match r.await.unwrap() {
            Ok(d) => assert_eq!(d, pattern_digest(seed, len), "{name:?}: wrong content"),
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} concurrent gets of {name:?} failed: {failures:#?}",
        failures.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gets_on_a_node_without_a_copy() {
    let nodes = Mesh::start(3, 3).await;
    let (seed, len) = (14_001, 700_000);
    let receipt = store_pattern(&nodes[0], "many/evicted", seed, len).await;
    assert!(nodes[1].evict("many/evicted").await.unwrap());
    assert_eq!(nodes[1].stats().objects, 0, "{:?}", nodes[1].stats());
    concurrent_reads(&nodes[1], "many/evicted", 8, seed, len).await;
    // A holder keeps what it fetched: its root and chunks, once each.
    assert!(nodes[1].has("many/evicted").await.unwrap());
    assert_eq!(
        nodes[1].stats().objects,
        receipt.chunks + 1,
        "{:?}",
        nodes[1].stats()
    );
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gets_on_a_node_with_a_damaged_copy() {
    let nodes = Mesh::start(3, 3).await;
    let (seed, len) = (14_002, 300_000);
    let receipt = store_pattern(&nodes[0], "many/damaged", seed, len).await;
    let good = std::fs::read(object_file(&nodes[0], &receipt.cid).unwrap()).unwrap();
    // Several rounds: the readers race each other differently every time.
    for round in 1..=20 {
        flip_a_byte(&object_file(&nodes[2], &receipt.cid).unwrap());
        concurrent_reads(&nodes[2], "many/damaged", 8, seed, len).await;
        assert_eq!(
            std::fs::read(object_file(&nodes[2], &receipt.cid).unwrap()).unwrap(),
            good,
            "round {round}: the copy left in place is not the good one"
        );
        assert_eq!(quarantined(&nodes[2], &receipt.cid).len(), round);
        assert_eq!(
            nodes[2].stats().objects,
            receipt.chunks + 1,
            "{:?}",
            nodes[2].stats()
        );
    }
    nodes.shutdown().await;
}
