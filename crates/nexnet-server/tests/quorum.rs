//! Quorums that intersect: a name's entry is written to a majority of its
//! holders or the store is undone, and a read asks a majority of them, so
//! a read returns the last acknowledged version or a newer one; without
//! its quorum a read says so (503), never "not found".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use nexnet_server::{FileServer, ServerError};
use nexnet_testkit::{
    Pattern,
    mesh::{
        Mesh, assert_reads, eventually, node_config, object_file, restart, stop, store_pattern,
    },
};

/// Stops every node of `nodes` but the first, and waits until it sees
/// none; returns their settings.
async fn stop_all_but_first(nodes: &mut Mesh) -> Vec<nexnet_server::ServerConfig> {
    let mut stopped = Vec::new();
    while nodes.len() > 1 {
        stopped.push(stop(nodes.pop().unwrap()).await);
    }
    eventually("node 0 sees its peers go", async || {
        nodes[0].stats().peers == 0
    })
    .await;
    stopped
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_without_its_quorum_is_unavailable_not_not_found() {
    let mut nodes = Mesh::start(3, 3).await;
    store_pattern(&nodes[0], "quorum/read", 1, 70_000).await;
    stop_all_but_first(&mut nodes).await;

    // Node 0 holds the file, but alone it cannot tell whether a newer
    // version was written by the others.
    for result in [
        nodes[0].get("quorum/read").await.map(drop),
        nodes[0].info("quorum/read").await.map(drop),
        nodes[0].get("quorum/never-stored").await.map(drop),
    ] {
        match result {
            Err(ServerError::NoReadQuorum {
                needed, answered, ..
            }) => assert_eq!((needed, answered), (2, 1)),
            other => panic!("expected NoReadQuorum, got {other:?}"),
        }
    }
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_quorum_of_one_reads_the_local_entry() {
    let mut nodes = Mesh::start_with(3, |root, i| {
        node_config(root, i).replication(3).read_quorum(1)
    })
    .await;
    store_pattern(&nodes[0], "quorum/one", 2, 70_000).await;
    stop_all_but_first(&mut nodes).await;
    assert_reads(&nodes[0], "quorum/one", 2, 70_000).await;
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_misses_its_quorum_changes_nothing_anywhere() {
    let mut nodes = Mesh::start(3, 3).await;
    let v1 = store_pattern(&nodes[0], "quorum/write", 3, 70_000).await;
    let stopped = stop_all_but_first(&mut nodes).await;

    for (name, seed) in [("quorum/write", 4), ("quorum/new", 5)] {
        match nodes[0].store(name, Pattern::new(seed, 90_000)).await {
            Err(ServerError::NotStored {
                name: n, needed, ..
            }) => {
                assert_eq!(n, name);
                assert_eq!(needed, 2);
            }
            other => panic!("expected NotStored, got {other:?}"),
        }
    }

    // The others come back: the name holds the first version everywhere,
    // the new name is not there, and nothing of the failed stores is
    // listed.
    let first = nodes.pop().unwrap();
    let via = first.local_addr();
    let mut all = vec![first];
    for config in stopped {
        all.push(restart(config, via).await);
    }
    for n in &all {
        assert!(n.wait_for_peers(2, Duration::from_secs(10)).await);
    }
    for n in &all {
        assert_reads(n, "quorum/write", 3, 70_000).await;
        assert_eq!(n.info("quorum/write").await.unwrap().cid, v1.cid);
        assert!(matches!(
            n.get("quorum/new").await,
            Err(ServerError::NotFound { .. })
        ));
        let listed: Vec<_> = n.list().await.unwrap().into_iter().map(|f| f.cid).collect();
        assert!(listed.iter().all(|c| *c == v1.cid), "{listed:?}");
        assert!(object_file(n, &v1.cid).is_some());
    }
    for n in all {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_back_from_a_stop_reads_the_version_written_meanwhile() {
    let mut nodes = Mesh::start(3, 3).await;
    store_pattern(&nodes[0], "quorum/stale", 6, 40_000).await;
    let away = stop(nodes.pop().unwrap()).await;
    eventually("node 0 sees the stopped node go", async || {
        nodes[0].stats().peers == 1
    })
    .await;
    let v2 = store_pattern(&nodes[0], "quorum/stale", 7, 50_000).await;

    // Its own entry is the first version; its first read after it is back
    // asks a majority of the name's holders and gets the second.
    let back: FileServer = restart(away, nodes[0].local_addr()).await;
    assert!(back.wait_for_peers(2, Duration::from_secs(10)).await);
    assert_eq!(back.info("quorum/stale").await.unwrap().cid, v2.cid);
    assert_reads(&back, "quorum/stale", 7, 50_000).await;
    back.shutdown().await;
    nodes.shutdown().await;
}
