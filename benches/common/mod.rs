//! What the cluster benches share: a three-node mesh in this process, and
//! reading their settings and memory.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, time::Duration};

use nexnet::server::{FileServer, ServerConfig};

/// Three `FileServer`s under `dir` on loopback, sharing a key and network
/// secret, each seeing the other two.
pub async fn mesh(dir: &Path, fsync: bool) -> Vec<FileServer> {
    let key = dir.join("shared.key");
    let secret = dir.join("network.secret");
    let mut nodes: Vec<FileServer> = Vec::new();
    for i in 1..=3 {
        let mut config = ServerConfig::new(dir.join(format!("node{i}")))
            .key_file(&key)
            .secret_file(&secret)
            .fsync(fsync);
        if let Some(first) = nodes.first() {
            config = config.bootstrap(first.local_addr());
        }
        nodes.push(FileServer::open(config).await.unwrap());
    }
    for (i, node) in nodes.iter().enumerate() {
        assert!(
            node.wait_for_peers(2, Duration::from_secs(10)).await,
            "node {} did not see its 2 peers",
            i + 1
        );
    }
    nodes
}

/// `VmHWM` and `VmRSS` of this process, in KiB.
pub fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// A yes/no setting from the environment (`0`, `false`, `no`, `off`: no).
pub fn env_flag(name: &str, default: bool) -> bool {
    match std::env::var(name) {
        Ok(v) => !matches!(v.trim(), "0" | "false" | "no" | "off"),
        Err(_) => default,
    }
}
