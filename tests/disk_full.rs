//! Full disks: a node whose object store sits on a small file system (a
//! 48 MiB tmpfs mounted over `DATA/store`) is asked to store a 64 MiB file.
//!
//! - `a_full_disk_fails_the_store_cleanly` (the originator's own disk):
//!   `nexnet put` exits 1 with one `error:` line naming the node (its id)
//!   and the cause ("No space left on device"); the API answers
//!   507 Insufficient Storage with code `disk_full`; afterwards the store's
//!   temp directory is empty, the file system's usage is back to what it
//!   was before the store, no object was added, the files stored earlier
//!   still read back whole, and a smaller store succeeds.
//! - `a_replica_with_a_full_disk_misses_the_store` (one of three nodes, R =
//!   3): the put fails with a quorum error naming that node and saying its
//!   disk is full (the replica resets the stream with a code for it), and
//!   is undone: the full node keeps no partial object and no chunk of it,
//!   keeps serving, no node lists or serves the file, and a store that fits
//!   then reaches all three.
//!
//! Mounting needs root, so the tests are `#[ignore]`d: a plain `cargo test`
//! lists them as ignored, and `cargo test --test disk_full -- --ignored` (as
//! root) runs them, as `.ci/run` does (see the README, "Tests that need
//! root"). Run that way without root, they fail with an explanation. Mounts
//! are undone by a guard, after the node on them is killed, whether the
//! test passes or not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use common::*;
use nexnet_testkit::Pattern;
use serde_json::Value;

const MIB: u64 = 1024 * 1024;
/// The small file system's size.
const DISK: &str = "48m";
/// The file that does not fit.
const TOO_BIG: u64 = 64 * MIB;

// ---------------------------------------------------------------------------
// A size-limited tmpfs, unmounted on drop
// ---------------------------------------------------------------------------

struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` on `dir` (created).
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let mut cmd = Command::new("mount");
        cmd.args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("nexnet-disk-full")
            .arg(dir);
        let out = run_within(cmd, DEADLINE);
        assert!(
            out.status.success(),
            "cannot mount a {size} tmpfs on {} ({}): this test needs root \
             (see the README, \"Tests that need root\")",
            dir.display(),
            out.stderr.trim()
        );
        Tmpfs { dir: dir.into() }
    }

    /// Bytes in use on the file system.
    fn used(&self) -> u64 {
        let mut cmd = Command::new("stat");
        cmd.args(["-f", "--format=%b %f %S"]).arg(&self.dir);
        let out = run_within(cmd, DEADLINE);
        let v: Vec<u64> = out
            .ok()
            .split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect();
        (v[0] - v[1]) * v[2]
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmount = |lazy: bool| {
            let mut cmd = Command::new("umount");
            if lazy {
                cmd.arg("-l");
            }
            cmd.arg(&self.dir).status().is_ok_and(|s| s.success())
        };
        if !unmount(false) && !unmount(true) {
            eprintln!("WARNING: could not unmount {}", self.dir.display());
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The names of the files directly in `dir`.
fn files_in(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Every object file name (cid) under `store/objects`.
fn objects(store: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![store.join("objects")];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// Puts a pattern file of `len` bytes from `seed` as `name` through `node`.
fn put(node: &Node, dir: &Path, name: &str, seed: u64, len: u64) -> Output {
    let file = dir.join(format!("{name}.src"));
    write_pattern(&file, seed, len);
    let out = node.run(&["put", path_str(&file), "--name", name]);
    fs::remove_file(&file).unwrap();
    out
}

/// Asserts `node` serves `name` as the pattern of `len` bytes from `seed`.
fn assert_reads(node: &Node, dir: &Path, name: &str, seed: u64, len: u64) {
    let out = dir.join(format!("{name}.out"));
    node.run(&["get", name, "-o", path_str(&out)]).ok();
    assert_pattern_file(&out, seed, len);
    fs::remove_file(&out).unwrap();
}

/// A `PUT` of `len` pattern bytes through plain HTTP: status and JSON body.
fn http_put(node: &Node, name: &str, len: u64) -> (u16, Value) {
    let url = node.url(&format!("/v1/files/{name}"));
    block_on(async {
        let body = tokio_util::io::ReaderStream::new(Pattern::new(9, len));
        let r = reqwest::Client::new()
            .put(&url)
            .header("content-length", len)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {url}: no answer: {e:?}"));
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("PUT {url}: {status} {text:?} is not JSON: {e}"));
        (status, json)
    })
}

/// After a failed store on the node whose disk filled: no temp file left,
/// the file system back to `used_before`, the same objects as
/// `objects_before` (the chunks it had written are removed again).
fn assert_nothing_left(
    disk: &Tmpfs,
    store: &Path,
    used_before: u64,
    objects_before: &BTreeSet<String>,
) {
    // The writer's temp file is unlinked when the store fails; its space
    // returns once the last write in flight lets go of it.
    eventually("the failed store's space to be returned", || {
        (files_in(&store.join("tmp")).is_empty() && disk.used() == used_before).then_some(())
    });
    assert_eq!(
        &objects(store),
        objects_before,
        "objects after the failed store"
    );
    assert!(files_in(&store.join("quarantine")).is_empty());
}

// ---------------------------------------------------------------------------
// The originator's own disk
// ---------------------------------------------------------------------------

#[test]
#[ignore = "needs root (it mounts a tmpfs): see README (Tests that need root)"]
fn a_full_disk_fails_the_store_cleanly() {
    let (root, data) = node_dir();
    let store = data.join("store");
    // Declared before the node, so dropped after it: killed, then unmounted.
    let disk = Tmpfs::mount(&store, DISK);
    let node = Node::start(&data, &[]);

    let earlier = [("a", 11, MIB), ("b", 12, 5 * MIB + 3), ("c", 13, 65_537)];
    for (name, seed, len) in earlier {
        put(&node, root.path(), name, seed, len).ok();
    }
    let used_before = disk.used();
    let objects_before = objects(&store);
    // Roots and chunks: 1 + 1, 1 + 5 (b's 3-byte tail is in its root),
    // 1 + 1.
    assert_eq!(objects_before.len(), 10);

    // Through the CLI: exit 1, one line naming the node and the cause.
    let out = put(&node, root.path(), "too-big", 14, TOO_BIG);
    let line = out.fails(1);
    println!("put of {TOO_BIG} bytes on a {DISK} store: {line}");
    assert!(
        line.contains(&node.id) && line.contains("No space left on device"),
        "the error should name the node ({}) and the cause: {line}",
        node.id
    );
    assert_nothing_left(&disk, &store, used_before, &objects_before);

    // Through HTTP: 507 with a stable code.
    let (status, body) = http_put(&node, "too-big", TOO_BIG);
    println!("PUT of {TOO_BIG} bytes: {status} {body}");
    assert_eq!(
        (status, body["code"].as_str()),
        (507, Some("disk_full")),
        "{body}"
    );
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains(&node.id) && message.contains("No space left on device"),
        "{message}"
    );
    assert_nothing_left(&disk, &store, used_before, &objects_before);

    // The node carries on: nothing listed for the failed name, the earlier
    // files read back whole, and a store that fits succeeds.
    let listed: Vec<Value> = node
        .run(&["ls", "--json"])
        .json()
        .as_array()
        .unwrap()
        .clone();
    let names: BTreeSet<&str> = listed.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, BTreeSet::from(["a", "b", "c"]));
    for (name, seed, len) in earlier {
        assert_reads(&node, root.path(), name, seed, len);
    }
    put(&node, root.path(), "fits", 15, 8 * MIB).ok();
    assert_reads(&node, root.path(), "fits", 15, 8 * MIB);
    assert_eq!(node.status()["files"].as_u64(), Some(4));
    drop(node);
    drop(disk);
}

// ---------------------------------------------------------------------------
// One replica's disk
// ---------------------------------------------------------------------------

#[test]
#[ignore = "needs root (it mounts a tmpfs): see README (Tests that need root)"]
fn a_replica_with_a_full_disk_misses_the_store() {
    let root = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (1..=3)
        .map(|i| root.path().join(format!("node{i}")))
        .collect();
    init(&dirs[0], None);
    init(&dirs[1], Some(&dirs[0]));
    init(&dirs[2], Some(&dirs[0]));
    let full_store = dirs[2].join("store");
    let disk = Tmpfs::mount(&full_store, DISK);
    let mut nodes = vec![Node::start(&dirs[0], &[])];
    let bootstrap = nodes[0].peers.to_string();
    for dir in &dirs[1..] {
        nodes.push(Node::start(dir, &["--bootstrap", &bootstrap]));
    }
    for n in &nodes {
        n.wait_for_peers(2);
    }
    let full = &nodes[2];

    put(&nodes[0], root.path(), "before", 21, 2 * MIB).ok();
    let objects_before = objects(&full_store);
    // The root and two chunks.
    assert_eq!(objects_before.len(), 3);

    let out = put(&nodes[0], root.path(), "too-big", 22, TOO_BIG);
    let line = out.fails(1);
    println!("put of {TOO_BIG} bytes with one replica on a {DISK} store: {line}");
    // The node is named (in the short form quorum errors use).
    let short = &full.id[..8];
    assert!(
        line.contains(short),
        "the error should name node {short}…: {line}"
    );
    // And the cause: the replica resets the stream saying its disk is full.
    assert!(
        line.contains("disk is full"),
        "the error should say why node {short}… missed it: {line}"
    );
    // The store is undone: nothing half written on the full replica, the
    // chunks that fit there removed again, and the name not there anywhere.
    eventually("the full replica's writes to end", || {
        files_in(&full_store.join("tmp")).is_empty().then_some(())
    });
    assert!(files_in(&full_store.join("quarantine")).is_empty());
    eventually(
        "the undone store's chunks to go from the full replica",
        || (objects(&full_store) == objects_before).then_some(()),
    );
    for node in &nodes {
        assert_reads(node, root.path(), "before", 21, 2 * MIB);
        let files: Value = node.run(&["ls", "--json"]).json();
        assert!(
            files
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["name"] != "too-big"),
            "too-big listed on {}: {files}",
            node.id
        );
        let out = root.path().join("too-big.out");
        let got = node.run(&["get", "too-big", "-o", path_str(&out)]);
        assert!(got.fails(1).contains("not found"), "{got:#?}");
    }
    // Its disk has room again, and a store that fits reaches all three.
    let receipt = {
        let file = root.path().join("fits.src");
        write_pattern(&file, 23, 4 * MIB);
        nodes[0]
            .run(&["put", path_str(&file), "--name", "fits", "--json"])
            .json()
    };
    assert_eq!(string_set(&receipt["replicas"]), ids(&nodes), "{receipt}");
    assert_reads(full, root.path(), "fits", 23, 4 * MIB);
    drop(nodes);
    drop(disk);
}
