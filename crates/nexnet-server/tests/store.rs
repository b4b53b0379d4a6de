//! Storing: the write quorum a store needs (a store that misses it is
//! undone), and storing over a name (from
//! a holder or from a node that never saw the old version) replaces its
//! content everywhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use nexnet_server::ServerError;
use nexnet_testkit::{
    Pattern,
    mesh::{
        Mesh, assert_reads, eventually, node_config, object_file, read_digest, stop, store_pattern,
    },
    pattern_digest,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_below_its_write_quorum_fails_and_is_undone() {
    let mut nodes = Mesh::start_with(3, |root, i| {
        node_config(root, i).replication(3).write_quorum(3)
    })
    .await;
    stop(nodes.pop().unwrap()).await;
    eventually("node 0 sees the stopped node go", async || {
        nodes[0].stats().peers == 1
    })
    .await;
    match nodes[0]
        .store("quorum/short", Pattern::new(3101, 5000))
        .await
    {
        Err(ServerError::NotStored {
            name,
            needed,
            committed,
            ..
        }) => {
            assert_eq!(name, "quorum/short");
            assert_eq!(needed, 3);
            assert_eq!(committed.len(), 2, "{committed:?}");
        }
        other => panic!("expected NotStored, got {other:?}"),
    }
    // What the holders had committed was removed again: the name is not
    // there, on either node.
    for n in nodes.iter() {
        assert!(matches!(
            n.get("quorum/short").await,
            Err(ServerError::NotFound { .. })
        ));
        assert_eq!(n.stats().files, 0, "{:?}", n.stats());
    }
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storing_a_name_again_replaces_its_content_everywhere() {
    let nodes = Mesh::start(3, 3).await;
    let old = store_pattern(&nodes[0], "again/doc", 10_001, 40_000).await;
    let new = store_pattern(&nodes[1], "again/doc", 10_002, 30_000).await;
    assert_ne!(old.cid, new.cid);
    for n in &nodes {
        assert_reads(n, "again/doc", 10_002, 30_000).await;
        assert_eq!(n.stats().files, 1, "{:?}", n.stats());
        // The new root and chunk; the old ones are gone.
        assert_eq!(n.stats().objects, new.chunks + 1, "{:?}", n.stats());
        assert!(object_file(n, &old.cid).is_none());
    }
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwriting_a_name_from_a_node_that_never_saw_it_replaces_it_everywhere() {
    let nodes = Mesh::start(5, 2).await;
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
    nodes.shutdown().await;
    assert!(
        wrong.is_empty(),
        "after {:?} stored over \"over/doc\":\n{}",
        writer.node_id(),
        wrong.join("\n")
    );
}
