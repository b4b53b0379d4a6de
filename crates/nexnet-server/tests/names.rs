//! File names: every operation refuses an invalid name (empty, too long, a
//! control character) and stores nothing; the longest valid name and
//! non-ASCII names work; an unknown name is `NotFound` for get, delete,
//! evict and `get_to_path` (which then leaves its target untouched).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use nexnet_server::ServerError;
use nexnet_testkit::{
    Pattern,
    mesh::{Mesh, assert_not_found, assert_reads, store_pattern},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_are_refused_and_unknown_names_are_not_found() {
    let nodes = Mesh::start(2, 2).await;
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
    let target = nodes.root().join("out.bin");
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
    nodes.shutdown().await;
}
