//! What the cluster benches share: a three-node mesh in this process (the
//! testkit's `mesh` fixture), and reading their settings and memory.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use nexnet_testkit::mesh::{Mesh, shared_config};

/// Three `FileServer`s on loopback in a temp directory (`TMPDIR`), sharing
/// a key and network secret, each seeing the other two; the defaults (R =
/// 3, periodic repair) but for `fsync`.
pub async fn mesh(fsync: bool) -> Mesh {
    Mesh::start_with(3, |root, i| shared_config(root, i).fsync(fsync)).await
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
