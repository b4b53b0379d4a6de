//! Data keys: a node with another key holds the replicas it is sent but
//! cannot read them (a key mismatch, not garbage), and lists them without
//! a name; the nodes with the key read them as usual, and the other way
//! round.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use nexnet_testkit::mesh::{Mesh, assert_reads, node_config, store_pattern};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_key_holds_replicas_it_cannot_read() {
    let nodes = Mesh::start_with(3, |root, i| match i {
        2 => node_config(root, i).key_file(root.join("other.key")),
        _ => node_config(root, i),
    })
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
    nodes.shutdown().await;
}
