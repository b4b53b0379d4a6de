//! Membership and placement: a node lost and back (it gets the replica it
//! missed), a restarted node (same id, files and names; rejoins at its new
//! address, or is redialed at its old one), a member gone too long is
//! forgotten and placement moves on, and with five nodes and R = 2 every
//! object lives on exactly its two rendezvous holders.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeSet, time::Duration};

use nexnet_p2p::NodeId;
use nexnet_server::{FileServer, ServerError, placement};
use nexnet_store::StoreError;
use nexnet_testkit::mesh::{
    DEADLINE, Mesh, assert_not_found, assert_reads, eventually, node_config, object_file, restart,
    stop, store_pattern,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_misses_a_store_and_gets_the_replica_when_it_rejoins() {
    let mut nodes = Mesh::start_with(3, |root, i| {
        node_config(root, i).replication(3).write_quorum(2)
    })
    .await;
    store_pattern(&nodes[0], "loss/before", 3001, 150_000).await;

    let lost = nodes.pop().unwrap();
    let lost_id = lost.node_id();
    let config = stop(lost).await;
    nodes.eventually_peers(1, "the stopped node go").await;

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
        nodes.ids().into_iter().collect(),
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
    // Two files of one chunk each: two roots and two chunks.
    eventually(
        "the restarted node holds every chunk it missed",
        async || back.stats().objects == 4,
    )
    .await;
    nodes.push(back);
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_keeps_its_id_files_and_names_and_rejoins() {
    let mut nodes = Mesh::start(3, 3).await;
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
    // Four roots and their chunks (one each; 211,000 bytes is one chunk).
    assert_eq!(back.stats().objects, 8);
    assert_eq!(back.stats().files, 4);
    for (name, seed, len) in &files {
        assert_reads(&back, name, *seed, *len).await;
    }

    assert!(
        back.wait_for_peers(2, DEADLINE).await,
        "the restarted node did not reconnect"
    );
    nodes.eventually_peers(2, "the restarted node").await;
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
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_on_its_old_address_is_redialed_by_the_others() {
    let mut nodes = Mesh::start(3, 3).await;
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
            nodes.shutdown().await;
            return;
        }
        Err(e) => panic!("restart on {addr}: {e}"),
    };
    assert_eq!(back.node_id(), id);
    assert!(
        back.wait_for_peers(2, DEADLINE).await,
        "the others did not redial the restarted node"
    );
    nodes.eventually_peers(2, "the restarted node").await;
    assert_reads(&back, "redial/a", 15_001, 10_000).await;
    let receipt = store_pattern(&nodes[1], "redial/b", 15_002, 10_000).await;
    assert_eq!(receipt.committed.len(), 3, "{receipt:?}");
    assert!(back.has("redial/b").await.unwrap());
    nodes.push(back);
    nodes.shutdown().await;
}

/// A member unreachable for longer than `forget_after` is forgotten: no
/// longer redialed, no longer a holder in placement, so stores go to live
/// nodes only. When it comes back it is a member again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_gone_too_long_is_forgotten_and_placement_moves_on() {
    let forget = Duration::from_millis(300);
    let mut nodes = Mesh::start_with(3, |root, i| {
        let config = node_config(root, i).replication(2);
        match i {
            0 => config
                .forget_after(Some(forget))
                .max_redial_backoff(Duration::from_millis(50)),
            _ => config,
        }
    })
    .await;
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
        assert_eq!(holders, nodes.ids().into_iter().collect(), "{receipt:?}");
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
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_five_nodes_and_r2_each_object_lives_on_its_two_rendezvous_holders() {
    let nodes = Mesh::start(5, 2).await;
    let all = nodes.ids();
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
        assert_eq!(nodes.holding(name).await, expected, "{name}");
        let on_disk: BTreeSet<NodeId> = nodes
            .iter()
            .filter(|n| object_file(n, &receipt.cid).is_some())
            .map(FileServer::node_id)
            .collect();
        assert_eq!(on_disk, expected, "{name}: roots on disk");
        // Its root and each chunk on two nodes each (chunks where their own
        // cid places them).
        total += 2 * (receipt.chunks + 1);
    }
    let objects: u64 = nodes.iter().map(|n| n.stats().objects).sum();
    assert_eq!(objects, total, "objects in all");

    // A holder that lost its copy is sent one by the other holder's repair.
    let (name, receipt, i) = &stored[3];
    let [first, second] = receipt.holders[..] else {
        panic!("{receipt:?}")
    };
    assert!(nodes.node(first).evict(name).await.unwrap());
    let report = nodes.node(second).repair().await;
    assert_eq!(report.pushed, 1, "{report:?}");
    assert!(nodes.node(first).has(name).await.unwrap());
    assert_reads(nodes.node(first), name, 6000 + i, 3000 + 20_000 * i).await;

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
    nodes.shutdown().await;
}
