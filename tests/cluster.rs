//! Black-box tests of `nexnet-server`'s `FileServer`: meshes of real nodes on
//! loopback, with restarts, lost nodes, tampered objects, foreign keys and
//! concurrent clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeSet,
    fmt::Display,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use nexnet::{
    crypto::HEADER_LEN,
    p2p::NodeId,
    server::{FileServer, Receipt, ServerConfig, ServerError, placement},
    store::{Cid, StoreError},
};
use nexnet_testkit::{INTERESTING_SIZES, Pattern, digest_async_reader, pattern_digest};

/// How long an asynchronous condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(15);
/// How often it is checked meanwhile.
const POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// The settings of node `i` under `root`: its own data directory, the
/// mesh's shared data key and network secret, no fsync, no periodic repair.
fn node_config(root: &Path, i: usize) -> ServerConfig {
    ServerConfig::new(root.join(format!("node{i}")))
        .key_file(root.join("shared.key"))
        .secret_file(root.join("shared.secret"))
        .fsync(false)
        .repair_interval(None)
}

/// Opens one node per config, every one after the first bootstrapping from
/// the first, and waits until each sees all the others.
async fn start_mesh(configs: Vec<ServerConfig>) -> Vec<FileServer> {
    let n = configs.len();
    let mut nodes: Vec<FileServer> = Vec::with_capacity(n);
    for mut config in configs {
        if let Some(first) = nodes.first() {
            config = config.bootstrap(first.local_addr());
        }
        nodes.push(FileServer::open(config).await.unwrap());
    }
    for (i, node) in nodes.iter().enumerate() {
        assert!(
            node.wait_for_peers(n - 1, DEADLINE).await,
            "node {i} did not see its {} peers within {DEADLINE:?} (sees {})",
            n - 1,
            node.stats().peers
        );
    }
    nodes
}

/// `n` nodes under `root` with replication `r`.
async fn mesh(root: &Path, n: usize, r: usize) -> Vec<FileServer> {
    start_mesh(
        (0..n)
            .map(|i| node_config(root, i).replication(r))
            .collect(),
    )
    .await
}

/// Stops `node` and drops it (it must be the last clone), releasing its data
/// directory. Returns its settings, to restart it with.
async fn stop(node: FileServer) -> ServerConfig {
    let config = node.config().clone();
    node.shutdown().await;
    drop(node);
    config
}

/// Reopens a stopped node on its data directory (on a new port), joining
/// through `via`.
async fn restart(mut config: ServerConfig, via: SocketAddr) -> FileServer {
    config.bootstrap = vec![via];
    FileServer::open(config).await.unwrap()
}

async fn shutdown_all(nodes: &[FileServer]) {
    for n in nodes {
        n.shutdown().await;
    }
}

/// Polls `check` every [`POLL`] until it holds; fails the test with `what`
/// after [`DEADLINE`].
async fn eventually(what: impl Display, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Stores `len` bytes of pattern `seed` under `name`.
async fn store_pattern(node: &FileServer, name: &str, seed: u64, len: u64) -> Receipt {
    let receipt = node
        .store(name, Pattern::new(seed, len))
        .await
        .unwrap_or_else(|e| panic!("store {name:?} ({len} bytes): {e}"));
    assert_eq!(receipt.plain_len, len, "{receipt:?}");
    assert_eq!(receipt.object_len, len + HEADER_LEN as u64, "{receipt:?}");
    receipt
}

/// The (length, digest) of `name` read through `node`.
async fn read_digest(node: &FileServer, name: &str) -> Result<(u64, u64), ServerError> {
    let reader = node.get(name).await?;
    let len = reader.len();
    let got = digest_async_reader(reader)
        .await
        .unwrap_or_else(|e| panic!("reading {name:?}: {e}"));
    assert_eq!(got.0, len, "{name:?}: the reader announced {len} bytes");
    Ok(got)
}

/// Asserts that `node` reads `name` as pattern `seed` of `len` bytes.
async fn assert_reads(node: &FileServer, name: &str, seed: u64, len: u64) {
    match read_digest(node, name).await {
        Ok(got) => assert_eq!(
            got,
            pattern_digest(seed, len),
            "{name:?} read on {:?} has the wrong content",
            node.node_id()
        ),
        Err(e) => panic!("get {name:?} on {:?}: {e}", node.node_id()),
    }
}

/// Asserts that `node` answers `get(name)` with `NotFound`.
async fn assert_not_found(node: &FileServer, name: &str) {
    match node.get(name).await {
        Err(ServerError::NotFound { .. }) => {}
        Err(e) => panic!(
            "get {name:?} on {:?}: expected NotFound, got {e}",
            node.node_id()
        ),
        Ok(r) => panic!(
            "get {name:?} on {:?}: expected NotFound, got a file of {} bytes",
            node.node_id(),
            r.len()
        ),
    }
}

/// Every file under `dir` (recursively) whose name satisfies `pred`.
fn find_files(dir: &Path, pred: &dyn Fn(&str) -> bool, out: &mut Vec<PathBuf>) {
    let Ok(listing) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in listing.flatten() {
        let path = entry.path();
        let ty = entry.file_type().unwrap();
        if ty.is_dir() {
            find_files(&path, pred, out);
        } else if ty.is_file() && pred(&entry.file_name().to_string_lossy()) {
            out.push(path);
        }
    }
}

/// Where `node` keeps the object `cid` on disk, if it does.
fn object_file(node: &FileServer, cid: &Cid) -> Option<PathBuf> {
    let hex = cid.to_hex();
    let mut found = Vec::new();
    find_files(
        &node.config().data_dir.join("store").join("objects"),
        &|f| f == hex,
        &mut found,
    );
    assert!(found.len() <= 1, "{cid} is stored twice: {found:?}");
    found.pop()
}

/// The files `node` moved to quarantine for `cid`.
fn quarantined(node: &FileServer, cid: &Cid) -> Vec<PathBuf> {
    let hex = cid.to_hex();
    let mut found = Vec::new();
    find_files(
        &node.config().data_dir.join("store").join("quarantine"),
        &|f| f.starts_with(&hex),
        &mut found,
    );
    found
}

/// Flips one byte of the file at `path` (in the ciphertext, past the header)
/// and returns the damaged contents.
fn flip_a_byte(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.len() > HEADER_LEN,
        "{} is too short to damage",
        path.display()
    );
    let at = HEADER_LEN + (bytes.len() - HEADER_LEN) / 2;
    bytes[at] ^= 0x5a;
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(path, perms).unwrap();
    std::fs::write(path, &bytes).unwrap();
    bytes
}

/// The nodes among `nodes` that hold `name`'s object themselves.
async fn holding(nodes: &[FileServer], name: &str) -> BTreeSet<NodeId> {
    let mut out = BTreeSet::new();
    for n in nodes {
        if n.has(name).await.unwrap() {
            out.insert(n.node_id());
        }
    }
    out
}

fn ids(nodes: &[FileServer]) -> Vec<NodeId> {
    nodes.iter().map(FileServer::node_id).collect()
}

// ---------------------------------------------------------------------------
// 1. The whole flow at every interesting size
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_evict_get_read_elsewhere_delete_at_every_interesting_size() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = mesh(dir.path(), 3, 3).await;
    let all = ids(&nodes);

    for (i, &size) in INTERESTING_SIZES.iter().enumerate() {
        let (seed, len) = (1000 + i as u64, size as u64);
        let name = format!("sizes/{size}.bin");

        let receipt = store_pattern(&nodes[0], &name, seed, len).await;
        assert_eq!(receipt.committed.len(), 3, "size {size}: {receipt:?}");
        assert!(receipt.missed.is_empty(), "size {size}: {receipt:?}");
        assert_eq!(
            receipt.committed.iter().copied().collect::<BTreeSet<_>>(),
            all.iter().copied().collect(),
            "size {size}"
        );
        for n in &nodes {
            assert!(
                n.has(&name).await.unwrap(),
                "size {size}: not on {:?}",
                n.node_id()
            );
        }

        // Evict the local copy: the file stays known, the next get fetches.
        assert!(nodes[0].evict(&name).await.unwrap(), "size {size}");
        assert!(!nodes[0].has(&name).await.unwrap(), "size {size}");
        assert!(
            object_file(&nodes[0], &receipt.cid).is_none(),
            "size {size}"
        );
        assert!(
            !nodes[0].evict(&name).await.unwrap(),
            "size {size}: a second evict found a copy"
        );
        assert_reads(&nodes[0], &name, seed, len).await;
        assert!(
            nodes[0].has(&name).await.unwrap(),
            "size {size}: the fetched copy was not kept"
        );

        // Read elsewhere.
        assert_reads(&nodes[2], &name, seed, len).await;

        // Delete everywhere (from a different node each time).
        let report = nodes[i % 3].delete(&name).await.unwrap();
        assert_eq!(report.cid, receipt.cid, "size {size}");
        assert_eq!(report.confirmed.len(), 3, "size {size}: {report:?}");
        assert_eq!(report.removed.len(), 3, "size {size}: {report:?}");
        assert!(report.pending.is_empty(), "size {size}: {report:?}");
        for n in &nodes {
            assert_not_found(n, &name).await;
            assert!(!n.has(&name).await.unwrap(), "size {size}");
            assert_eq!(n.stats().objects, 0, "size {size}: {:?}", n.stats());
            assert_eq!(n.stats().files, 0, "size {size}: {:?}", n.stats());
            assert!(object_file(n, &receipt.cid).is_none(), "size {size}");
        }
    }
    shutdown_all(&nodes).await;
}

// ---------------------------------------------------------------------------
// 2. Tampered objects
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_local_copy_is_quarantined_and_replaced_on_get() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = mesh(dir.path(), 3, 3).await;
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
    assert_eq!(victim.stats().objects, 1);
    // The others were not disturbed.
    for n in [&nodes[0], &nodes[2]] {
        assert!(quarantined(n, &cid).is_empty());
    }
    shutdown_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_peer_copy_is_refused_reported_and_quarantined_there() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = mesh(dir.path(), 3, 3).await;
    let (seed, len) = (2002, 200_000);
    let receipt = store_pattern(&nodes[0], "tamper/peer", seed, len).await;
    let cid = receipt.cid;

    // Damage the copy of the node node 0 asks first, then make node 0 fetch.
    let mut order = placement::holders(&cid, ids(&nodes), usize::MAX);
    order.retain(|n| *n != nodes[0].node_id());
    let bad_node = nodes.iter().find(|n| n.node_id() == order[0]).unwrap();
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
    shutdown_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_quarantines_and_refetches_a_tampered_copy() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = mesh(dir.path(), 3, 3).await;
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
    shutdown_all(&nodes).await;
}

// ---------------------------------------------------------------------------
// 3. Losing a node, and getting it back
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_misses_a_store_and_gets_the_replica_when_it_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = mesh_w(dir.path(), 3, 3, 2).await;
    store_pattern(&nodes[0], "loss/before", 3001, 150_000).await;

    let lost = nodes.pop().unwrap();
    let lost_id = lost.node_id();
    let config = stop(lost).await;
    for n in &nodes {
        eventually(
            format!("{:?} sees the stopped node go", n.node_id()),
            async || n.stats().peers == 1,
        )
        .await;
    }

    // Reads still work, also one that must fetch with a holder down.
    assert!(nodes[0].evict("loss/before").await.unwrap());
    assert_reads(&nodes[0], "loss/before", 3001, 150_000).await;
    assert_reads(&nodes[1], "loss/before", 3001, 150_000).await;

    // A store reaches its quorum of 2 without the stopped node.
    let receipt = store_pattern(&nodes[1], "loss/during", 3002, 120_000).await;
    assert_eq!(receipt.holders.len(), 3, "{receipt:?}");
    assert!(receipt.holders.contains(&lost_id), "{receipt:?}");
    assert_eq!(
        receipt.committed.iter().copied().collect::<BTreeSet<_>>(),
        ids(&nodes).into_iter().collect(),
        "{receipt:?}"
    );
    assert_eq!(receipt.missed.len(), 1, "{receipt:?}");
    assert_eq!(receipt.missed[0].0, lost_id, "{receipt:?}");
    assert_reads(&nodes[0], "loss/during", 3002, 120_000).await;

    // Back on the same data directory, it rejoins and is sent the replica
    // it missed, by the repair pass its reconnection starts.
    let back = restart(config, nodes[0].local_addr()).await;
    assert_eq!(back.node_id(), lost_id);
    assert!(
        back.wait_for_peers(2, DEADLINE).await,
        "the restarted node did not reconnect"
    );
    eventually("the restarted node holds the file it missed", async || {
        back.has("loss/during").await.unwrap()
    })
    .await;
    assert_reads(&back, "loss/during", 3002, 120_000).await;
    assert_reads(&back, "loss/before", 3001, 150_000).await;
    assert_eq!(back.stats().objects, 2);
    nodes.push(back);
    shutdown_all(&nodes).await;
}

/// `n` nodes with replication `r` and write quorum `w`.
async fn mesh_w(root: &Path, n: usize, r: usize, w: usize) -> Vec<FileServer> {
    start_mesh(
        (0..n)
            .map(|i| node_config(root, i).replication(r).write_quorum(w))
            .collect(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_below_its_write_quorum_fails_with_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = mesh_w(dir.path(), 3, 3, 3).await;
    stop(nodes.pop().unwrap()).await;
    eventually("node 0 sees the stopped node go", async || {
        nodes[0].stats().peers == 1
    })
    .await;
    match nodes[0]
        .store("quorum/short", Pattern::new(3101, 5000))
        .await
    {
        Err(ServerError::Quorum {
            needed, committed, ..
        }) => {
            assert_eq!(needed, 3);
            assert_eq!(committed.len(), 2, "{committed:?}");
        }
        other => panic!("expected a Quorum error, got {other:?}"),
    }
    // What was committed is readable.
    assert_reads(&nodes[1], "quorum/short", 3101, 5000).await;
    shutdown_all(&nodes).await;
}

// ---------------------------------------------------------------------------
// 4. Restart
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_keeps_its_id_files_and_names_and_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = mesh(dir.path(), 3, 3).await;
    let files: Vec<(String, u64, u64)> = (0..4u64)
        .map(|i| (format!("restart/file-{i}"), 4000 + i, 1000 + 70_000 * i))
        .collect();
    for (i, (name, seed, len)) in files.iter().enumerate() {
        store_pattern(&nodes[i % 3], name, *seed, *len).await;
    }

    // Restart the node the others bootstrapped from.
    let first = nodes.remove(0);
    let id = first.node_id();
    let config = stop(first).await;
    let back = restart(config.clone(), nodes[0].local_addr()).await;
    assert_eq!(back.node_id(), id, "the node id changed across a restart");
    // A second node on the same data directory is refused while it runs.
    match FileServer::open(config).await {
        Err(ServerError::Store(StoreError::Locked { .. })) => {}
        other => panic!("a second node opened a data directory in use: {other:?}"),
    }

    let listed = back.list().await.unwrap();
    let names: Vec<Option<String>> = listed.iter().map(|f| f.name.clone()).collect();
    let expected: Vec<Option<String>> = files.iter().map(|f| Some(f.0.clone())).collect();
    assert_eq!(names, expected, "{listed:?}");
    for (info, (_, _, len)) in listed.iter().zip(&files) {
        assert_eq!(info.size, *len, "{info:?}");
        assert!(info.local, "{info:?}");
    }
    assert_eq!(back.stats().objects, 4);
    assert_eq!(back.stats().files, 4);
    for (name, seed, len) in &files {
        assert_reads(&back, name, *seed, *len).await;
    }

    assert!(
        back.wait_for_peers(2, DEADLINE).await,
        "the restarted node did not reconnect"
    );
    for n in &nodes {
        eventually(
            format!("{:?} sees the restarted node", n.node_id()),
            async || n.stats().peers == 2,
        )
        .await;
    }
    // The others know it at its new address, and count it once.
    for n in &nodes {
        let members = n.members();
        assert_eq!(members.len(), 2, "{members:?}");
        assert_eq!(n.stats().members, 2);
        let m = members.iter().find(|m| m.node_id == id).unwrap();
        assert!(m.connected, "{m:?}");
        assert_eq!(m.addr, Some(back.local_addr()), "{m:?}");
    }
    // And the mesh works with it: a new file reaches it.
    let receipt = store_pattern(&nodes[1], "restart/after", 4100, 10_000).await;
    assert_eq!(receipt.committed.len(), 3, "{receipt:?}");
    assert!(back.has("restart/after").await.unwrap());
    nodes.push(back);
    shutdown_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_on_its_old_address_is_redialed_by_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = mesh(dir.path(), 3, 3).await;
    store_pattern(&nodes[0], "redial/a", 15_001, 10_000).await;
    let node = nodes.pop().unwrap();
    let (id, addr) = (node.node_id(), node.local_addr());
    let mut config = stop(node).await.listen(addr);
    config.bootstrap.clear();
    // No bootstrap: the others must find it where it was. The port was
    // just freed; should anything else take it meanwhile, there is nothing
    // to test.
    let back = match FileServer::open(config).await {
        Ok(back) => back,
        Err(ServerError::P2p(e)) => {
            eprintln!("port {addr} was taken meanwhile ({e}); skipping");
            shutdown_all(&nodes).await;
            return;
        }
        Err(e) => panic!("restart on {addr}: {e}"),
    };
    assert_eq!(back.node_id(), id);
    assert!(
        back.wait_for_peers(2, DEADLINE).await,
        "the others did not redial the restarted node"
    );
    for n in &nodes {
        eventually(
            format!("{:?} sees the restarted node", n.node_id()),
            async || n.stats().peers == 2,
        )
        .await;
    }
    assert_reads(&back, "redial/a", 15_001, 10_000).await;
    let receipt = store_pattern(&nodes[1], "redial/b", 15_002, 10_000).await;
    assert_eq!(receipt.committed.len(), 3, "{receipt:?}");
    assert!(back.has("redial/b").await.unwrap());
    nodes.push(back);
    shutdown_all(&nodes).await;
}

// ---------------------------------------------------------------------------
// 5. A delete while a node is down
// ---------------------------------------------------------------------------

/// A member unreachable for longer than `forget_after` is forgotten: no
/// longer redialed, no longer a holder in placement, so stores go to live
/// nodes only. When it comes back it is a member again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_gone_too_long_is_forgotten_and_placement_moves_on() {
    let root = tempfile::tempdir().unwrap();
    let forget = Duration::from_millis(300);
    let mut configs: Vec<ServerConfig> = (0..3)
        .map(|i| node_config(root.path(), i).replication(2))
        .collect();
    configs[0] = configs[0]
        .clone()
        .forget_after(Some(forget))
        .max_redial_backoff(Duration::from_millis(50));
    let mut nodes = start_mesh(configs).await;
    let gone_id = nodes[2].node_id();
    let gone = stop(nodes.pop().unwrap()).await;
    eventually("node 0 forgets the stopped node", async || {
        nodes[0].members().iter().all(|m| m.node_id != gone_id)
    })
    .await;
    // Every store from node 0 now lands on the two live nodes, in full.
    for i in 0..8 {
        let receipt = store_pattern(&nodes[0], &format!("after-{i}"), i, 1000).await;
        let holders: BTreeSet<NodeId> = receipt.holders.iter().copied().collect();
        assert_eq!(holders, ids(&nodes).into_iter().collect(), "{receipt:?}");
        assert!(receipt.missed.is_empty(), "{receipt:?}");
    }
    // Back again: a member of node 0 once more.
    let back = restart(gone, nodes[1].local_addr()).await;
    eventually("node 0 knows the returning node again", async || {
        nodes[0]
            .members()
            .iter()
            .any(|m| m.node_id == gone_id && m.connected)
    })
    .await;
    nodes.push(back);
    shutdown_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_was_down_during_a_delete_drops_its_copy_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = mesh(dir.path(), 3, 3).await;
    let receipt = store_pattern(&nodes[0], "away/doomed", 5001, 90_000).await;
    assert_eq!(receipt.committed.len(), 3, "{receipt:?}");

    let away = nodes.pop().unwrap();
    let away_id = away.node_id();
    let config = stop(away).await;
    for n in &nodes {
        eventually(
            format!("{:?} sees the stopped node go", n.node_id()),
            async || n.stats().peers == 1,
        )
        .await;
    }

    let report = nodes[0].delete("away/doomed").await.unwrap();
    assert_eq!(report.confirmed.len(), 2, "{report:?}");
    assert!(
        report.pending.iter().any(|(n, _)| *n == away_id),
        "the stopped node is not pending: {report:?}"
    );
    for n in &nodes {
        assert_not_found(n, "away/doomed").await;
        assert_eq!(n.stats().objects, 0);
    }

    let back = restart(config, nodes[0].local_addr()).await;
    assert!(
        back.wait_for_peers(2, DEADLINE).await,
        "the restarted node did not reconnect"
    );
    eventually("the returning node drops its copy", async || {
        back.stats().objects == 0 && !back.has("away/doomed").await.unwrap()
    })
    .await;
    assert!(object_file(&back, &receipt.cid).is_none());
    nodes.push(back);

    for n in &nodes {
        assert_not_found(n, "away/doomed").await;
    }
    for n in &nodes {
        let report = n.repair().await;
        assert_eq!(report.pushed + report.fetched, 0, "{report:?}");
    }
    for n in &nodes {
        assert_not_found(n, "away/doomed").await;
        assert_eq!(n.stats().objects, 0, "{:?}: {:?}", n.node_id(), n.stats());
        assert_eq!(n.stats().files, 0, "{:?}: {:?}", n.node_id(), n.stats());
        assert!(object_file(n, &receipt.cid).is_none());
    }
    shutdown_all(&nodes).await;
}

// ---------------------------------------------------------------------------
// 6. Placement
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_five_nodes_and_r2_each_object_lives_on_its_two_rendezvous_holders() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = mesh(dir.path(), 5, 2).await;
    let all = ids(&nodes);
    let mut stored = Vec::new();
    for i in 0..10u64 {
        let name = format!("placed/{i}");
        let from = &nodes[(i as usize * 3) % 5];
        let receipt = store_pattern(from, &name, 6000 + i, 3000 + 20_000 * i).await;
        let expected = placement::holders(&receipt.cid, all.clone(), 2);
        assert_eq!(receipt.holders, expected, "{name}: {receipt:?}");
        assert_eq!(
            receipt.committed.iter().copied().collect::<BTreeSet<_>>(),
            expected.iter().copied().collect(),
            "{name}: {receipt:?}"
        );
        stored.push((name, receipt, i));
    }

    let mut total = 0;
    for (name, receipt, _) in &stored {
        let expected: BTreeSet<NodeId> = placement::holders(&receipt.cid, all.clone(), 2)
            .into_iter()
            .collect();
        assert_eq!(holding(&nodes, name).await, expected, "{name}");
        let on_disk: BTreeSet<NodeId> = nodes
            .iter()
            .filter(|n| object_file(n, &receipt.cid).is_some())
            .map(FileServer::node_id)
            .collect();
        assert_eq!(on_disk, expected, "{name}: objects on disk");
        total += 2;
    }
    let objects: u64 = nodes.iter().map(|n| n.stats().objects).sum();
    assert_eq!(objects, total, "objects in all");

    // A holder that lost its copy is sent one by the other holder's repair.
    let (name, receipt, i) = &stored[3];
    let [first, second] = receipt.holders[..] else {
        panic!("{receipt:?}")
    };
    let node = |id: NodeId| nodes.iter().find(|n| n.node_id() == id).unwrap();
    assert!(node(first).evict(name).await.unwrap());
    let report = node(second).repair().await;
    assert_eq!(report.pushed, 1, "{report:?}");
    assert!(node(first).has(name).await.unwrap());
    assert_reads(node(first), name, 6000 + i, 3000 + 20_000 * i).await;

    // Every node reads every file, holder or not.
    for (k, (name, _, i)) in stored.iter().enumerate() {
        assert_reads(&nodes[(k + 1) % 5], name, 6000 + i, 3000 + 20_000 * i).await;
    }

    // A delete from any node, holder or not, clears every copy.
    for (k, (name, _, _)) in stored.iter().enumerate() {
        nodes[(k + 2) % 5].delete(name).await.unwrap();
    }
    for n in &nodes {
        assert_eq!(n.stats().objects, 0, "{:?}: {:?}", n.node_id(), n.stats());
        assert_eq!(n.stats().files, 0, "{:?}: {:?}", n.node_id(), n.stats());
    }
    for (name, _, _) in &stored {
        assert_not_found(&nodes[4], name).await;
    }
    shutdown_all(&nodes).await;
}

// ---------------------------------------------------------------------------
// 7. Another data key
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_key_holds_replicas_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let nodes = start_mesh(vec![
        node_config(root, 0),
        node_config(root, 1),
        node_config(root, 2).key_file(root.join("other.key")),
    ])
    .await;
    assert_eq!(nodes[0].key_id(), nodes[1].key_id());
    assert_ne!(nodes[0].key_id(), nodes[2].key_id());

    let receipt = store_pattern(&nodes[0], "keys/secret.txt", 7001, 50_000).await;
    assert_eq!(receipt.committed.len(), 3, "{receipt:?}");
    assert!(nodes[2].has("keys/secret.txt").await.unwrap());

    match nodes[2].get("keys/secret.txt").await {
        Err(e) => assert!(e.is_key_mismatch(), "expected a key mismatch, got {e}"),
        Ok(_) => panic!("a node with another key opened the file"),
    }
    let listed = nodes[2].list().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].name, None, "{listed:?}");
    assert_eq!(listed[0].cid, receipt.cid);
    assert_eq!(listed[0].size, 50_000);
    assert!(listed[0].local);
    // The nodes with the key read it, and see its name.
    assert_reads(&nodes[1], "keys/secret.txt", 7001, 50_000).await;
    assert_eq!(
        nodes[1].list().await.unwrap()[0].name.as_deref(),
        Some("keys/secret.txt")
    );

    // The other way round: node 2's own file is opaque to the others.
    store_pattern(&nodes[2], "keys/other.txt", 7002, 20_000).await;
    assert_reads(&nodes[2], "keys/other.txt", 7002, 20_000).await;
    match nodes[0].get("keys/other.txt").await {
        Err(e) => assert!(e.is_key_mismatch(), "expected a key mismatch, got {e}"),
        Ok(_) => panic!("a node with another key opened the file"),
    }
    shutdown_all(&nodes).await;
}

// ---------------------------------------------------------------------------
// 8. Concurrency
// ---------------------------------------------------------------------------

async fn concurrent_stores_and_reads(r: usize, seed_base: u64) {
    let dir = tempfile::tempdir().unwrap();
    let nodes = mesh(dir.path(), 3, r).await;
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
                (name, receipt.cid)
            })
        })
        .collect();
    let mut stored = Vec::new();
    for t in tasks {
        stored.push(t.await.unwrap());
    }
    let cids: BTreeSet<Cid> = stored.iter().map(|(_, cid)| *cid).collect();
    assert_eq!(cids.len(), 32);
    // Every placement holder has its copy (a reader that fetched one keeps
    // it too).
    let all = ids(&nodes);
    for (name, cid) in &stored {
        let held = holding(&nodes, name).await;
        for h in placement::holders(cid, all.clone(), r) {
            assert!(
                held.contains(&h),
                "{name}: holder {h:?} lacks it ({held:?})"
            );
        }
    }
    if r == 3 {
        for n in &nodes {
            assert_eq!(n.stats().files, 32, "{:?}", n.stats());
            assert_eq!(n.stats().objects, 32, "{:?}", n.stats());
        }
    }
    shutdown_all(&nodes).await;
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
    let dir = tempfile::tempdir().unwrap();
    let nodes = mesh(dir.path(), 3, 3).await;
    let (seed, len) = (14_001, 700_000);
    store_pattern(&nodes[0], "many/evicted", seed, len).await;
    assert!(nodes[1].evict("many/evicted").await.unwrap());
    concurrent_reads(&nodes[1], "many/evicted", 8, seed, len).await;
    assert!(nodes[1].has("many/evicted").await.unwrap());
    assert_eq!(nodes[1].stats().objects, 1, "{:?}", nodes[1].stats());
    shutdown_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_gets_on_a_node_with_a_damaged_copy() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = mesh(dir.path(), 3, 3).await;
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
        assert_eq!(nodes[2].stats().objects, 1, "{:?}", nodes[2].stats());
    }
    shutdown_all(&nodes).await;
}

// ---------------------------------------------------------------------------
// 9. Bad arguments
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_are_refused_and_unknown_names_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = mesh(dir.path(), 2, 2).await;
    let long = "n".repeat(2000);
    for bad in ["", long.as_str(), "tab\there"] {
        let invalid = |r: Result<(), ServerError>, op: &str| match r {
            Err(ServerError::InvalidName { .. }) => {}
            other => panic!(
                "{op} {:?}: expected InvalidName, got {other:?}",
                bad.get(..20)
            ),
        };
        invalid(nodes[0].store(bad, &b"x"[..]).await.map(drop), "store");
        invalid(nodes[0].get(bad).await.map(drop), "get");
        invalid(nodes[0].delete(bad).await.map(drop), "delete");
        invalid(nodes[0].evict(bad).await.map(drop), "evict");
        invalid(nodes[0].has(bad).await.map(drop), "has");
    }
    assert_eq!(nodes[0].stats().objects, 0);
    assert_eq!(nodes[1].stats().files, 0);

    // The longest name allowed works, as does a non-ASCII one.
    let longest = "é".repeat(512);
    store_pattern(&nodes[0], &longest, 9001, 100).await;
    assert_reads(&nodes[1], &longest, 9001, 100).await;
    assert_eq!(
        nodes[1].list().await.unwrap()[0].name.as_deref(),
        Some(longest.as_str())
    );

    // get_to_path writes the whole file, or leaves the target untouched.
    let target = dir.path().join("out.bin");
    let n = nodes[1].get_to_path(&longest, &target).await.unwrap();
    assert_eq!(n, 100);
    assert_eq!(std::fs::read(&target).unwrap(), Pattern::to_vec(9001, 100));
    std::fs::write(&target, b"old").unwrap();
    match nodes[1].get_to_path("no/such/file", &target).await {
        Err(ServerError::NotFound { .. }) => {}
        other => panic!("get_to_path of an unknown name: {other:?}"),
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"old");

    for n in &nodes {
        assert_not_found(n, "no/such/file").await;
        match n.delete("no/such/file").await {
            Err(ServerError::NotFound { .. }) => {}
            other => panic!("delete of an unknown name: {other:?}"),
        }
        match n.evict("no/such/file").await {
            Err(ServerError::NotFound { .. }) => {}
            other => panic!("evict of an unknown name: {other:?}"),
        }
        assert!(!n.has("no/such/file").await.unwrap());
    }
    shutdown_all(&nodes).await;
}

// ---------------------------------------------------------------------------
// Beyond the brief: storing over a name, and storing after a delete
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storing_a_name_again_replaces_its_content_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = mesh(dir.path(), 3, 3).await;
    let old = store_pattern(&nodes[0], "again/doc", 10_001, 40_000).await;
    let new = store_pattern(&nodes[1], "again/doc", 10_002, 30_000).await;
    assert_ne!(old.cid, new.cid);
    for n in &nodes {
        assert_reads(n, "again/doc", 10_002, 30_000).await;
        assert_eq!(n.stats().files, 1, "{:?}", n.stats());
        assert_eq!(n.stats().objects, 1, "{:?}", n.stats());
        assert!(object_file(n, &old.cid).is_none());
    }
    shutdown_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_name_can_be_stored_again() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = mesh(dir.path(), 3, 3).await;
    store_pattern(&nodes[0], "reuse/a", 11_001, 20_000).await;
    nodes[0].delete("reuse/a").await.unwrap();
    assert_not_found(&nodes[0], "reuse/a").await;

    // The user uploads the very same file again, under the same name.
    let receipt = nodes[0]
        .store("reuse/a", Pattern::new(11_001, 20_000))
        .await;
    let receipt = receipt.unwrap_or_else(|e| panic!("storing a deleted name again: {e}"));
    assert_eq!(receipt.committed.len(), 3, "{receipt:?}");
    for n in &nodes {
        assert_reads(n, "reuse/a", 11_001, 20_000).await;
    }
    shutdown_all(&nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwriting_a_name_from_a_node_that_never_saw_it_replaces_it_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = mesh(dir.path(), 5, 2).await;
    let old = store_pattern(&nodes[0], "over/doc", 13_001, 30_000).await;
    // A node that neither stored nor holds the first version stores the
    // second under the same name.
    let writer = nodes
        .iter()
        .skip(1)
        .find(|n| !old.holders.contains(&n.node_id()))
        .unwrap();
    let new = store_pattern(writer, "over/doc", 13_002, 20_000).await;
    assert_ne!(old.cid, new.cid);

    // Every node reads the second version, and the first is gone.
    let (want, stale) = (
        pattern_digest(13_002, 20_000),
        pattern_digest(13_001, 30_000),
    );
    let mut wrong = Vec::new();
    for n in &nodes {
        // (Looked at before the read, which may fetch and keep a copy.)
        let old_object = object_file(n, &old.cid).is_some();
        let read = read_digest(n, "over/doc").await;
        if read.as_ref().ok() != Some(&want) || old_object {
            let read = match read {
                Ok(d) if d == want => "the new version".to_string(),
                Ok(d) if d == stale => "the replaced version".to_string(),
                Ok(d) => format!("unknown bytes {d:?}"),
                Err(e) => format!("error {e}"),
            };
            wrong.push(format!(
                "{:?} (old holder: {}, new holder: {}) reads {read}, keeps the old object: {old_object}",
                n.node_id(),
                old.holders.contains(&n.node_id()),
                new.holders.contains(&n.node_id()),
            ));
        }
    }
    shutdown_all(&nodes).await;
    assert!(
        wrong.is_empty(),
        "after {:?} stored over \"over/doc\":\n{}",
        writer.node_id(),
        wrong.join("\n")
    );
}
