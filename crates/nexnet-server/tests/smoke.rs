//! The whole flow on three nodes on loopback: store, evict the local copy,
//! fetch it back, read elsewhere, delete everywhere; once with a plain
//! buffer, then at every interesting size.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use nexnet_server::{FileServer, ServerError};
use nexnet_testkit::{
    INTERESTING_SIZES,
    mesh::{Mesh, assert_not_found, assert_reads, object_file, shared_config, store_pattern},
};
use tokio::io::AsyncReadExt;

async fn read_all(node: &FileServer, name: &str) -> Result<Vec<u8>, ServerError> {
    let mut out = Vec::new();
    node.get(name).await?.read_to_end(&mut out).await.unwrap();
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_fetch_read_elsewhere_delete() {
    // The defaults but for fsync (R = 3, periodic repair).
    let nodes = Mesh::start_with(3, |root, i| shared_config(root, i).fsync(false)).await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();

    let receipt = nodes[0].store("docs/a.bin", &data[..]).await.unwrap();
    assert_eq!(receipt.plain_len, data.len() as u64);
    assert_eq!(receipt.committed.len(), 3, "{receipt:?}");
    for n in &nodes {
        assert!(n.has("docs/a.bin").await.unwrap());
    }

    assert!(nodes[0].evict("docs/a.bin").await.unwrap());
    assert!(!nodes[0].has("docs/a.bin").await.unwrap());
    assert_eq!(read_all(&nodes[0], "docs/a.bin").await.unwrap(), data);
    assert!(nodes[0].has("docs/a.bin").await.unwrap());
    assert_eq!(read_all(&nodes[2], "docs/a.bin").await.unwrap(), data);

    let listed = nodes[1].list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name.as_deref(), Some("docs/a.bin"));

    let report = nodes[0].delete("docs/a.bin").await.unwrap();
    assert_eq!(report.confirmed.len(), 3);
    for n in &nodes {
        assert!(matches!(
            read_all(n, "docs/a.bin").await,
            Err(ServerError::NotFound { .. })
        ));
        assert_eq!(n.stats().objects, 0);
    }
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_evict_get_read_elsewhere_delete_at_every_interesting_size() {
    let nodes = Mesh::start(3, 3).await;
    let all = nodes.ids();

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
    nodes.shutdown().await;
}
