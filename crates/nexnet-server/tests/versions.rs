//! Versions of a name: a delete ends every version at or below its own,
//! whatever the object, on every node it reaches, including versions the
//! deleting node never saw; a store goes past every version it can find.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use nexnet_server::FileServer;
use nexnet_testkit::mesh::{
    Mesh, assert_not_found, assert_reads, eventually, node_config, restart, stop, store_pattern,
};

const NAME: &str = "versions/name";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_ends_a_version_the_deleting_node_never_saw() {
    // Available first (quorums of one): a node cut off from the others
    // still takes stores, which is how versions diverge.
    let mut nodes = Mesh::start_with(3, |root, i| {
        node_config(root, i)
            .replication(3)
            .write_quorum(1)
            .read_quorum(1)
    })
    .await;
    store_pattern(&nodes[0], NAME, 1, 20_000).await;

    // Node 2 alone stores version 2 (its own single copy), unseen by 0 and 1.
    let x = nodes.pop().unwrap();
    let b = nodes.pop().unwrap();
    let a = nodes.pop().unwrap();
    let (a_config, b_config) = (stop(a).await, stop(b).await);
    eventually("node 2 is alone", async || x.stats().peers == 0).await;
    store_pattern(&x, NAME, 2, 30_000).await;
    let x_config = stop(x).await;

    // 0 and 1 come back without it, still holding version 1, and delete
    // the name: all they know of is version 1.
    let a = FileServer::open(a_config).await.unwrap();
    let b = restart(b_config, a.local_addr()).await;
    assert!(a.wait_for_peers(1, Duration::from_secs(10)).await);
    assert_reads(&a, NAME, 1, 20_000).await;
    let report = a.delete(NAME).await.unwrap();
    assert_eq!(report.confirmed.len(), 2, "{report:?}");

    // Node 2 returns with version 2: the delete ends it there too, and
    // nothing brings it back, not repair, not its own pushes.
    let x = restart(x_config, a.local_addr()).await;
    let nodes = [a, b, x];
    for n in &nodes {
        assert!(n.wait_for_peers(2, Duration::from_secs(10)).await);
    }
    eventually("node 2 drops the version the delete ended", async || {
        !nodes[2].has(NAME).await.unwrap() && nodes[2].stats().files == 0
    })
    .await;
    for n in &nodes {
        n.repair().await;
    }
    for n in &nodes {
        n.repair().await;
        assert_not_found(n, NAME).await;
        assert_eq!(n.stats().files, 0);
    }

    // A store after the delete is a newer version, and lives.
    store_pattern(&nodes[2], NAME, 3, 10_000).await;
    for n in &nodes {
        assert_reads(n, NAME, 3, 10_000).await;
    }
    for n in nodes {
        n.shutdown().await;
    }
}

/// A tombstone record as releases before versioned deletes wrote it.
#[derive(serde::Serialize)]
struct EarlierTombstone {
    name_id: [u8; 16],
    deleted_ms: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstone_of_an_earlier_release_ends_its_object_only() {
    let root = tempfile::tempdir().unwrap();
    let config = || node_config(root.path(), 0);
    let node = FileServer::open(config()).await.unwrap();
    store_pattern(&node, NAME, 4, 5_000).await;
    node.shutdown().await;
    drop(node);

    // An earlier release deleted another object stored under the same
    // name, after this one (a replace's tombstone, say): its record has no
    // version of the name, and must not end the entry kept here.
    let gone = nexnet_store::Cid::of(b"an object deleted by an earlier release");
    let record = EarlierTombstone {
        name_id: *nexnet_crypto::name_id(NAME).as_bytes(),
        deleted_ms: u64::MAX / 2,
    };
    let tombstones = root.path().join("node0/catalog/tombstones");
    std::fs::write(
        tombstones.join(gone.to_hex()),
        postcard::to_stdvec(&record).unwrap(),
    )
    .unwrap();

    let node = FileServer::open(config()).await.unwrap();
    assert_reads(&node, NAME, 4, 5_000).await;
    assert_eq!(node.stats().files, 1);
    assert!(
        tombstones.join(gone.to_hex()).exists(),
        "the record was set aside"
    );
    node.shutdown().await;
}

/// The tombstones a node keeps, by file.
fn tombstones(node: &FileServer) -> usize {
    std::fs::read_dir(node.config().data_dir.join("catalog/tombstones"))
        .unwrap()
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_are_collected_after_their_horizon_and_kept_before() {
    let root = tempfile::tempdir().unwrap();
    let short =
        FileServer::open(node_config(root.path(), 0).tombstone_horizon(Duration::from_millis(200)))
            .await
            .unwrap();
    let long = FileServer::open(node_config(root.path(), 1)).await.unwrap();
    for n in [&short, &long] {
        store_pattern(n, NAME, 8, 3_000).await;
        n.delete(NAME).await.unwrap();
        assert!(tombstones(n) > 0);
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    for n in [&short, &long] {
        n.repair().await;
    }
    assert_eq!(tombstones(&short), 0, "past the horizon: collected");
    assert!(tombstones(&long) > 0, "within the horizon (30 days): kept");
    // The name is free again, and stays deleted where it was.
    assert_not_found(&short, NAME).await;
    store_pattern(&short, NAME, 9, 3_000).await;
    assert_reads(&short, NAME, 9, 3_000).await;
    assert_not_found(&long, NAME).await;
    short.shutdown().await;
    long.shutdown().await;
}
