//! Deleting: a node that was down during a delete drops its copy when it
//! returns (and repair does not bring it back), and a deleted name can be
//! stored again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use nexnet_testkit::{
    Pattern,
    mesh::{
        DEADLINE, Mesh, assert_not_found, assert_reads, eventually, object_file, restart, stop,
        store_pattern,
    },
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_was_down_during_a_delete_drops_its_copy_when_it_returns() {
    let mut nodes = Mesh::start(3, 3).await;
    let receipt = store_pattern(&nodes[0], "away/doomed", 5001, 90_000).await;
    assert_eq!(receipt.committed.len(), 3, "{receipt:?}");

    let away = nodes.pop().unwrap();
    let away_id = away.node_id();
    let config = stop(away).await;
    nodes.eventually_peers(1, "the stopped node go").await;

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
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_name_can_be_stored_again() {
    let nodes = Mesh::start(3, 3).await;
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
    nodes.shutdown().await;
}
