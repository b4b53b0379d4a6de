//! Repair: damaged or missing copies are found and replaced from the other
//! holders, and the bad ones kept aside in quarantine.
//!
//! - A tampered local copy is quarantined and replaced on `get`; a tampered
//!   peer copy is refused by the reader, reported, and quarantined on that
//!   peer; a repair pass quarantines and refetches a tampered copy.
//! - Bit rot (`repair_finds_and_replaces_every_rotten_object`): three nodes
//!   (R = 3, so every node holds every object) store 400 small files (0
//!   bytes to 192 KiB) and two multi-MiB ones. Then, on one node, damage is
//!   done straight to the object files, one kind per object in turn: a
//!   byte flipped in the middle, the file cut in half, a byte flipped in
//!   the 32-byte header, the file zeroed (same length), the file deleted.
//!   - A `get` on the damaged node still returns every damaged file intact:
//!     it verifies the local copy, moves a bad one to quarantine and
//!     fetches a good one from a peer.
//!   - 1% of the objects (rounded up), other ones, are damaged the same way
//!     and a repair pass runs on that node: its report counts exactly the
//!     damage (every object checked, the damaged files quarantined, every
//!     damaged or missing object fetched, nothing pushed, no problem), every
//!     object on the node hashes to its cid again, every file reads back
//!     intact, and nothing else was touched: the other objects on the node
//!     and every object on the other nodes are the same files as before
//!     (inode, length, mtime), and only the damaged copies are in
//!     quarantine. A second pass finds nothing to do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::{Read, Seek, SeekFrom, Write},
    os::unix::fs::MetadataExt,
    path::Path,
};

use futures::StreamExt;
use nexnet_server::{FileServer, placement};
use nexnet_store::{Cid, CidHasher};
use nexnet_testkit::{
    Pattern,
    mesh::{
        Mesh, assert_reads, eventually, file_objects, flip_a_byte, object_file, object_path,
        objects_dir, quarantine_dir, quarantined, store_pattern,
    },
};

const SMALL_FILES: u64 = 400;

// ---------------------------------------------------------------------------
// Tampered copies
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_local_copy_is_quarantined_and_replaced_on_get() {
    let nodes = Mesh::start(3, 3).await;
    let (seed, len) = (2001, 300_000);
    let receipt = store_pattern(&nodes[0], "tamper/local", seed, len).await;
    let cid = receipt.cid;

    let good = std::fs::read(object_file(&nodes[0], &cid).unwrap()).unwrap();
    let victim = &nodes[1];
    let path = object_file(victim, &cid).expect("node 1 holds a replica");
    let bad = flip_a_byte(&path);
    assert_ne!(bad, good);

    assert_reads(victim, "tamper/local", seed, len).await;

    // The damaged file was moved aside, and a good copy is in its place.
    let aside = quarantined(victim, &cid);
    assert_eq!(aside.len(), 1, "quarantine holds {aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), bad);
    assert_eq!(
        std::fs::read(object_file(victim, &cid).unwrap()).unwrap(),
        good
    );
    assert!(victim.has("tamper/local").await.unwrap());
    assert_eq!(victim.stats().objects, receipt.chunks + 1);
    // The others were not disturbed.
    for n in [&nodes[0], &nodes[2]] {
        assert!(quarantined(n, &cid).is_empty());
    }
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_peer_copy_is_refused_reported_and_quarantined_there() {
    let nodes = Mesh::start(3, 3).await;
    let (seed, len) = (2002, 200_000);
    let receipt = store_pattern(&nodes[0], "tamper/peer", seed, len).await;
    let cid = receipt.cid;

    // Damage the copy of the node node 0 asks first, then make node 0 fetch.
    let mut order = placement::holders(&cid, nodes.ids(), usize::MAX);
    order.retain(|n| *n != nodes[0].node_id());
    let bad_node = nodes.node(order[0]);
    let bad = flip_a_byte(&object_file(bad_node, &cid).unwrap());
    assert!(nodes[0].evict("tamper/peer").await.unwrap());

    assert_reads(&nodes[0], "tamper/peer", seed, len).await;
    assert!(nodes[0].has("tamper/peer").await.unwrap());

    // The node with the bad copy was told and moved it aside.
    eventually("the peer quarantines its bad copy", async || {
        object_file(bad_node, &cid).is_none() && quarantined(bad_node, &cid).len() == 1
    })
    .await;
    assert_eq!(std::fs::read(&quarantined(bad_node, &cid)[0]).unwrap(), bad);

    // A repair pass there brings a good copy back.
    let report = bad_node.repair().await;
    assert_eq!(report.fetched, 1, "{report:?}");
    assert!(bad_node.has("tamper/peer").await.unwrap());
    assert_reads(bad_node, "tamper/peer", seed, len).await;
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_quarantines_and_refetches_a_tampered_copy() {
    let nodes = Mesh::start(3, 3).await;
    let (seed, len) = (2003, 100_000);
    let receipt = store_pattern(&nodes[0], "tamper/repair", seed, len).await;
    let cid = receipt.cid;
    let bad = flip_a_byte(&object_file(&nodes[2], &cid).unwrap());

    let report = nodes[2].repair().await;
    assert_eq!(report.checked, 1, "{report:?}");
    assert_eq!(report.quarantined, 1, "{report:?}");
    assert_eq!(report.fetched, 1, "{report:?}");
    assert_eq!(report.problems, 0, "{report:?}");
    let aside = quarantined(&nodes[2], &cid);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), bad);
    assert_reads(&nodes[2], "tamper/repair", seed, len).await;

    // A second pass finds nothing to do.
    let report = nodes[2].repair().await;
    assert_eq!(
        (
            report.quarantined,
            report.fetched,
            report.pushed,
            report.problems
        ),
        (0, 0, 0, 0),
        "{report:?}"
    );
    nodes.shutdown().await;
}

// ---------------------------------------------------------------------------
// Bit rot
// ---------------------------------------------------------------------------

/// One version of a file: inode, length, mtime.
type Identity = (u64, u64, i64, i64);

/// Every object file under a node's `objects/`: cid hex → identity.
fn snapshot(node: &FileServer) -> BTreeMap<String, Identity> {
    let mut out = BTreeMap::new();
    let mut stack = vec![objects_dir(node)];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                out.insert(name, (m.ino(), m.len(), m.mtime(), m.mtime_nsec()));
            }
        }
    }
    out
}

/// The cid the bytes of `path` hash to.
fn hash_file(path: &Path) -> Cid {
    let mut f = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h = CidHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return h.finish().0;
        }
        h.update(&buf[..n]);
    }
}

/// The files in a node's quarantine, by the cid they start with.
fn in_quarantine(node: &FileServer) -> BTreeSet<String> {
    fs::read_dir(quarantine_dir(node))
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.split('.').next().unwrap().to_string()
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Damage
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rot {
    FlipMiddle,
    Truncate,
    FlipHeader,
    Zero,
    Delete,
}

const KINDS: [Rot; 5] = [
    Rot::FlipMiddle,
    Rot::Truncate,
    Rot::FlipHeader,
    Rot::Zero,
    Rot::Delete,
];

fn flip(path: &Path, at: u64) {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x40]).unwrap();
}

fn rot(path: &Path, kind: Rot) {
    let len = fs::metadata(path).unwrap().len();
    match kind {
        Rot::FlipMiddle => flip(path, len / 2),
        Rot::FlipHeader => flip(path, 9),
        Rot::Truncate => fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(len / 2)
            .unwrap(),
        Rot::Zero => {
            let mut f = fs::OpenOptions::new().write(true).open(path).unwrap();
            std::io::copy(&mut std::io::repeat(0).take(len), &mut f).unwrap();
        }
        Rot::Delete => fs::remove_file(path).unwrap(),
    }
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

/// A stored file: its name, pattern seed and length, its root and chunks,
/// and the one of them the test damages.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stored {
    name: String,
    seed: u64,
    len: u64,
    objects: Vec<Cid>,
    cid: Cid,
}

/// Damages the objects of `targets` on `node`, one kind after the other;
/// returns the kinds used.
fn damage(node: &FileServer, targets: &[&Stored]) -> Vec<Rot> {
    targets
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let kind = KINDS[i % KINDS.len()];
            let path = object_path(node, &f.cid);
            rot(&path, kind);
            if kind != Rot::Delete {
                assert_ne!(hash_file(&path), f.cid, "{kind:?} left {:?} intact", f.name);
            }
            kind
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_finds_and_replaces_every_rotten_object() {
    let nodes = Mesh::start(3, 3).await;

    // 400 small files and two multi-MiB ones, stored through every node.
    let mut plan: Vec<(String, u64, u64)> = (0..SMALL_FILES)
        .map(|i| {
            let len = match i % 8 {
                0 => [0, 1, 15, 16, 17][(i / 8 % 5) as usize],
                _ => i * 487 % (192 * 1024),
            };
            (format!("rot/small-{i:03}"), 1000 + i, len)
        })
        .collect();
    plan.push(("rot/big-1".into(), 1, 3 * 1024 * 1024 + 1));
    plan.push(("rot/big-2".into(), 2, 6 * 1024 * 1024 + 7));
    let nodes_ref = &nodes;
    let mut files: Vec<Stored> = futures::stream::iter(plan.into_iter().enumerate())
        .map(|(i, (name, seed, len))| async move {
            let receipt = nodes_ref[i % 3]
                .store(&name, Pattern::new(seed, len))
                .await
                .unwrap_or_else(|e| panic!("store {name:?}: {e}"));
            assert_eq!(receipt.committed.len(), 3, "{name:?}: {receipt:?}");
            let mut objects = vec![receipt.cid];
            objects.extend(file_objects(&nodes_ref[0], &receipt.cid));
            // The damage goes to a chunk (a middle one for the big files)
            // or to the root, by turns.
            let cid = match objects.len() {
                1 => objects[0],
                k if k > 2 => objects[k / 2],
                _ => objects[i % 2],
            };
            Stored {
                name,
                seed,
                len,
                objects,
                cid,
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let cids: BTreeSet<String> = files
        .iter()
        .flat_map(|f| f.objects.iter().map(Cid::to_hex))
        .collect();
    let objects_total: usize = files.iter().map(|f| f.objects.len()).sum();
    assert_eq!(cids.len(), objects_total, "every chunk is its own object");

    let victim = &nodes[1];
    let before: Vec<BTreeMap<String, Identity>> = nodes.iter().map(snapshot).collect();
    for (i, s) in before.iter().enumerate() {
        assert_eq!(
            s.keys().cloned().collect::<BTreeSet<_>>(),
            cids,
            "objects on node {i}"
        );
    }
    let n = files.len();
    // Damage spread over the files (the big ones included), never twice
    // the same object; only objects with bytes past the header, so a flip
    // in the middle is not one in the header.
    let mut candidates: Vec<&Stored> = files.iter().filter(|f| f.len >= 64).collect();
    let bigs: Vec<&Stored> = files
        .iter()
        .filter(|f| f.name.starts_with("rot/big"))
        .collect();
    candidates.retain(|f| !f.name.starts_with("rot/big"));
    let stride = candidates.len() / 11;
    let mut pick = (0..).map(|k| candidates[(k * stride + 3) % candidates.len()]);

    // 1. A get on the damaged node returns the right bytes.
    let mut first: Vec<&Stored> = vec![bigs[0]];
    first.extend(pick.by_ref().take(KINDS.len() - 1));
    let kinds = damage(victim, &first);
    for f in &first {
        assert_reads(victim, &f.name, f.seed, f.len).await;
        assert_eq!(
            hash_file(&object_path(victim, &f.cid)),
            f.cid,
            "{:?} fixed",
            f.name
        );
    }
    let first_rotten: BTreeSet<String> = first
        .iter()
        .zip(&kinds)
        .filter(|(_, k)| **k != Rot::Delete)
        .map(|(f, _)| f.cid.to_hex())
        .collect();
    assert_eq!(
        in_quarantine(victim),
        first_rotten,
        "quarantine after the gets"
    );

    // 2. 1% of the objects (rounded up), others, and a repair pass.
    let count = n.div_ceil(100);
    let mut second: Vec<&Stored> = vec![bigs[1]];
    second.extend(pick.take(count - 1));
    assert!(second.iter().all(|f| !first.contains(f)));
    let kinds = damage(victim, &second);
    let rotten = kinds.iter().filter(|k| **k != Rot::Delete).count();
    println!(
        "{n} objects per node; damaged on one node: {} for gets ({:?}), then {count} = 1% for repair ({kinds:?})",
        first.len(),
        KINDS
    );
    let mid = snapshot(victim);
    let report = victim.repair().await;
    println!("repair: {report:?}");
    assert_eq!(
        (
            report.checked,
            report.quarantined,
            report.fetched,
            report.pushed,
            report.problems
        ),
        (n, rotten, count, 0, 0),
        "the repair report should count exactly the damage: {report:?}"
    );

    // Every object on the node is whole again, and every file reads back.
    let after = snapshot(victim);
    assert_eq!(after.keys().cloned().collect::<BTreeSet<_>>(), cids);
    for f in &files {
        for cid in &f.objects {
            assert_eq!(hash_file(&object_path(victim, cid)), *cid, "{:?}", f.name);
        }
    }
    let mut all_rotten = first_rotten.clone();
    all_rotten.extend(
        second
            .iter()
            .zip(&kinds)
            .filter(|(_, k)| **k != Rot::Delete)
            .map(|(f, _)| f.cid.to_hex()),
    );
    assert_eq!(
        in_quarantine(victim),
        all_rotten,
        "quarantine after the repair"
    );
    // (`stats().objects` is not checked: the store's usage counter counts
    // a file deleted behind its back until the next start, so it reads
    // n + the deleted ones here; see the report of issue 6.)
    println!(
        "objects on disk after repair: {}; the node's counter says {}",
        after.len(),
        victim.stats().objects
    );

    // Nothing else was touched: the repair rewrote only the damaged
    // objects, and no other node rewrote or quarantined anything.
    let damaged: BTreeSet<String> = second.iter().map(|f| f.cid.to_hex()).collect();
    for (cid, id) in &after {
        if damaged.contains(cid) {
            continue;
        }
        assert_eq!(
            Some(id),
            mid.get(cid),
            "object {cid} was rewritten by the repair"
        );
    }
    for (i, node) in nodes.iter().enumerate() {
        if i == 1 {
            continue;
        }
        assert_eq!(snapshot(node), before[i], "objects on node {i} changed");
        assert!(in_quarantine(node).is_empty(), "quarantine on node {i}");
    }

    // Reads on the repaired node are served from its own (new) copies.
    for f in &files {
        assert_reads(victim, &f.name, f.seed, f.len).await;
    }
    assert_eq!(snapshot(victim), after, "a read re-fetched an object");

    // A second pass finds nothing to do.
    let again = victim.repair().await;
    assert_eq!(
        (
            again.checked,
            again.quarantined,
            again.fetched,
            again.pushed,
            again.problems
        ),
        (n, 0, 0, 0, 0),
        "{again:?}"
    );
    nodes.shutdown().await;
}
