//! Three nodes on loopback: store, fetch back, read elsewhere, delete.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use nexnet_server::{FileServer, ServerConfig, ServerError};
use tokio::io::AsyncReadExt;

async fn mesh(dir: &std::path::Path, n: usize) -> Vec<FileServer> {
    let key = dir.join("shared.key");
    let secret = dir.join("shared.secret");
    let mut nodes: Vec<FileServer> = Vec::new();
    for i in 0..n {
        let mut config = ServerConfig::new(dir.join(format!("node{i}")))
            .key_file(&key)
            .secret_file(&secret)
            .fsync(false);
        if let Some(first) = nodes.first() {
            config = config.bootstrap(first.local_addr());
        }
        nodes.push(FileServer::open(config).await.unwrap());
    }
    for node in &nodes {
        assert!(node.wait_for_peers(n - 1, Duration::from_secs(10)).await);
    }
    nodes
}

async fn read_all(node: &FileServer, name: &str) -> Result<Vec<u8>, ServerError> {
    let mut out = Vec::new();
    node.get(name).await?.read_to_end(&mut out).await.unwrap();
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_fetch_read_elsewhere_delete() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = mesh(dir.path(), 3).await;
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
    for n in &nodes {
        n.shutdown().await;
    }
}
