//! Five hosts on a real (virtual) network with faults: the mesh keeps every
//! file whole, reaches every host, and keeps deletes deleted.
//!
//! Each test builds its own network with `tests/netns/net.sh`: a "switch"
//! network namespace holding a bridge, and five host namespaces, each joined
//! to the bridge by a veth pair (its cable) and running `nexnet serve` on
//! 10.77.0.N:3000 with its API on the namespace's own loopback; the client
//! commands run inside the namespaces too (`ip netns exec`). Nothing is
//! created in the caller's namespace: all traffic stays on the test's own
//! network, which is deleted when the test ends, failed or not (a guard's
//! `Drop`; namespaces left by a killed run are swept at the next start).
//!
//! The faults (the kernel has no `netem`): random loss of TCP packets with
//! nftables (`numgen random mod 100 < N drop`) on two hosts; host 5 reaches
//! the others only through `tests/netns/delay_proxy.py`, a TCP proxy in the
//! switch namespace that delays every byte 20 ms each way (nftables rewrites
//! host 5's connections to the proxy and refuses any other TCP); a `tbf`
//! bandwidth cap on one host's switch port; and cables pulled
//! (`ip link set down` on the switch port) mid-transfer or for a while.
//!
//! - `big_file_reaches_every_host_despite_loss_latency_and_a_cut_link`:
//!   256 MiB put on host 1 reads back byte for byte on hosts 2–5; the cable
//!   of the holder serving a get is pulled in the middle of it, and the get
//!   completes from another holder.
//! - `partitioned_host_rejoins_with_its_replicas_and_without_deleted_files`:
//!   a holder is cut off; a store racing the cut misses its write quorum
//!   (exit 1) and is undone, listed nowhere; files stored meanwhile are complete to
//!   R = 3 copies by repair once it rejoins, and files deleted meanwhile
//!   (which it still held) do not come back on any host, not even after it
//!   restarts.
//!
//! Needs root, iproute2 (`ip`, `tc`), nftables (`nft`) and python3, so the
//! tests are `#[ignore]`d: a plain `cargo test` lists them as ignored, and
//! `cargo test --test netns -- --ignored` (as root) runs them, as `.ci/run`
//! does after installing the packages (see the README, "Tests that need
//! root"). Run that way without namespaces, they fail loudly.
//! `NEXNET_NETNS_LOG` sets the nodes' `RUST_LOG` (default `info`);
//! node logs are printed when a test fails, and copied to the directory
//! `NEXNET_NETNS_LOGS_TO` names, if set, when it passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use common::*;
use nexnet_testkit::Pattern;
use serde_json::Value;

const NET_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/netns/net.sh");
const PROXY_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/netns/delay_proxy.py");
/// Host N is `SUBNET.N`; the switch (and the delay proxy) `SUBNET.100`.
const SUBNET: &str = "10.77.0";
const SWITCH_IP: &str = "10.77.0.100";
/// Every node listens for peers on this port of its own namespace.
const PEER_PORT: u16 = 3000;
const HOSTS: usize = 5;
/// How long a network-level change may take to show: a silent peer is
/// dropped after 3 missed 5 s heartbeats, and redials back off to 30 s.
const NET_DEADLINE: Duration = Duration::from_secs(90);
/// How often network-level conditions are polled (each poll runs commands
/// in the namespaces).
const NET_POLL: Duration = Duration::from_millis(100);
/// The most one transfer command may take.
const TRANSFER_DEADLINE: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------
// The network
// ---------------------------------------------------------------------------

/// A network built by `net.sh up`; deleted (`net.sh down`) when dropped.
struct Net {
    name: String,
}

/// Fails, saying what is missing, unless this runs as root with the tools
/// the tests use on `PATH`.
fn check_prerequisites() {
    let on_path = |tool: &&str| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).is_file()))
    };
    let missing: Vec<&str> = ["ip", "tc", "nft", "python3"]
        .iter()
        .filter(|t| !on_path(t))
        .copied()
        .collect();
    let root = rustix::process::geteuid().is_root();
    assert!(
        root && missing.is_empty(),
        "\n\n!!! the multi-host tests need root, iproute2 (ip, tc), nftables (nft) and python3; \
         {}missing on PATH: {missing:?}.\n!!! See the README, \"Tests that need root\".\n",
        if root { "" } else { "not root; " }
    );
}

fn root_links() -> BTreeSet<String> {
    let out = run_within(ip(&["-o", "link", "show"]), DEADLINE);
    out.ok()
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .collect()
}

fn ip(args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(args).stdin(Stdio::null());
    c
}

fn sh(args: &[&str]) -> Output {
    let mut c = Command::new("bash");
    c.arg(NET_SH).args(args).stdin(Stdio::null());
    run_within(c, Duration::from_secs(60))
}

impl Net {
    /// Creates `hosts` hosts and the switch, under a name no other run uses.
    fn up(hosts: usize) -> Net {
        static RUNS: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "nxt-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        );
        check_prerequisites();
        // Namespaces of runs that were killed before they could clean up.
        let swept = sh(&["sweep"]);
        if !swept.stderr.is_empty() {
            eprintln!("{}", swept.stderr.trim_end());
        }
        let before = root_links();
        let net = Net { name };
        let made = sh(&["up", &net.name, &hosts.to_string()]);
        assert!(
            made.status.success(),
            "\n\n!!! CANNOT CREATE NETWORK NAMESPACES: the multi-host tests need root, iproute2 \
             (ip, tc), nftables (nft) and python3.\n!!! `net.sh up` said: {}\n!!! See the \
             README, \"Tests that need root\".\n",
            made.stderr.trim_end()
        );
        assert_eq!(
            root_links(),
            before,
            "building the test network changed the caller's own interfaces"
        );
        net
    }

    fn host_ns(&self, i: usize) -> String {
        format!("{}-h{i}", self.name)
    }

    fn switch_ns(&self) -> String {
        format!("{}-sw", self.name)
    }

    #[track_caller]
    fn sh(&self, cmd: &str, i: usize, rest: &[&str]) -> String {
        let mut args = vec![cmd, &self.name];
        let i = i.to_string();
        args.push(&i);
        args.extend(rest);
        sh(&args).ok().trim().to_string()
    }

    /// Plugs host `i`'s cable in or pulls it out.
    #[track_caller]
    fn link(&self, i: usize, up: bool) {
        self.sh("link", i, &[if up { "up" } else { "down" }]);
    }

    /// Drops `pct`% of TCP packets in and out of host `i`, at random.
    #[track_caller]
    fn loss(&self, i: usize, pct: u32) {
        self.sh("loss", i, &[&pct.to_string()]);
    }

    /// Caps what host `i` receives (`Some("400mbit")`), or lifts the cap.
    #[track_caller]
    fn cap(&self, i: usize, rate: Option<&str>) {
        self.sh("rate", i, &[rate.unwrap_or("off")]);
    }

    /// Bytes host `i` has sent and received on its cable.
    #[track_caller]
    fn bytes(&self, i: usize) -> (u64, u64) {
        let out = self.sh("bytes", i, &[]);
        let mut n = out.split_whitespace().map(|s| s.parse().unwrap());
        (n.next().unwrap(), n.next().unwrap())
    }

    /// Packets host `i`'s rules dropped at random, and refused because they
    /// did not go through the proxy.
    #[track_caller]
    fn drops(&self, i: usize) -> (u64, u64) {
        let out = self.sh("drops", i, &[]);
        let mut n = out.split_whitespace().map(|s| s.parse().unwrap());
        (n.next().unwrap(), n.next().unwrap())
    }

    fn leftovers(&self) -> Vec<String> {
        let out = run_within(ip(&["netns", "list"]), DEADLINE);
        out.stdout
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|ns| ns.starts_with(&format!("{}-", self.name)))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = sh(&["down", &self.name]);
        let left = self.leftovers();
        if !left.is_empty() {
            if thread::panicking() {
                eprintln!("!!! could not delete network namespaces {left:?}");
            } else {
                panic!("could not delete network namespaces {left:?}");
            }
        }
    }
}

/// A command run inside namespace `ns`.
fn in_ns(ns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]);
    clean_env(&mut c);
    c.stdin(Stdio::null());
    c
}

// ---------------------------------------------------------------------------
// Hosts and the mesh
// ---------------------------------------------------------------------------

/// One host: its namespace and the `nexnet serve` running in it.
struct Host {
    i: usize,
    ns: String,
    /// The arguments of its `nexnet serve`.
    serve: Vec<String>,
    node: Node,
}

/// Starts `nexnet SERVE...` on `data` inside namespace `ns`.
#[track_caller]
fn launch(ns: &str, serve: &[String], data: &Path) -> Node {
    let mut cmd = in_ns(ns, BIN);
    cmd.args(serve).env(
        "RUST_LOG",
        std::env::var("NEXNET_NETNS_LOG").unwrap_or_else(|_| "info".into()),
    );
    Node::launch(cmd, data)
}

impl Host {
    /// Stops its node (SIGTERM, as an operator would) and starts it again
    /// on the same data directory.
    #[track_caller]
    fn restart(&mut self) {
        let stopped = Command::new("kill")
            .args(["-TERM", &self.node.pid()])
            .status()
            .unwrap();
        assert!(stopped.success(), "kill -TERM host {}", self.i);
        let status = self
            .node
            .child
            .wait_within(Duration::from_secs(60), &format!("host {}'s node", self.i));
        assert!(
            status.success(),
            "host {}'s node stopped with {status}",
            self.i
        );
        self.node = launch(&self.ns, &self.serve, &self.node.data.clone());
    }

    fn id(&self) -> &str {
        &self.node.id
    }

    /// `nexnet ARGS --api THIS`, inside the host's namespace.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = in_ns(&self.ns, BIN);
        c.args(args).args(["--api", &self.node.api()]);
        c
    }

    #[track_caller]
    fn run(&self, args: &[&str], within: Duration) -> Output {
        run_within(self.cmd(args), within)
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        self.run(args, DEADLINE).json()
    }

    /// The node ids this host is connected to now.
    #[track_caller]
    fn connected(&self) -> BTreeSet<String> {
        self.json(&["peers", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["state"] == "connected")
            .map(|p| p["node_id"].as_str().unwrap().to_string())
            .collect()
    }

    /// `ls --json`, by name.
    #[track_caller]
    fn files(&self) -> BTreeMap<String, Value> {
        self.json(&["ls", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["name"].as_str().unwrap().to_string(), f.clone()))
            .collect()
    }

    /// Starts `get NAME` to standard output, compared byte for byte with
    /// the pattern stored.
    fn start_get(&self, name: &str, seed: u64, len: u64) -> Getting {
        let mut cmd = self.cmd(&["get", name]);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = Reaped::new(cmd.spawn().unwrap());
        let out = child.process.stdout.take().unwrap();
        let mut err = child.process.stderr.take().unwrap();
        Getting {
            what: format!("get {name} on host {}", self.i),
            child,
            check: thread::spawn(move || same_as_pattern(out, seed, len)),
            stderr: thread::spawn(move || {
                let mut s = String::new();
                let _ = err.read_to_string(&mut s);
                s
            }),
            started: Instant::now(),
        }
    }

    /// Gets `name` and asserts it is the pattern stored; returns how long
    /// it took.
    #[track_caller]
    fn get_checked(&self, name: &str, seed: u64, len: u64) -> Duration {
        let getting = self.start_get(name, seed, len);
        let started = getting.started;
        getting.finish();
        started.elapsed()
    }
}

/// A `get` in progress.
struct Getting {
    what: String,
    child: Reaped,
    check: JoinHandle<Result<u64, String>>,
    stderr: JoinHandle<String>,
    started: Instant,
}

impl Getting {
    fn done(&mut self) -> bool {
        self.child.process.try_wait().unwrap().is_some()
    }

    /// Waits for it and asserts it delivered the whole file, byte for byte.
    #[track_caller]
    fn finish(mut self) -> ExitStatus {
        let status = self.child.wait_within(TRANSFER_DEADLINE, &self.what);
        let checked = self.check.join().unwrap();
        let stderr = self.stderr.join().unwrap();
        assert!(
            status.success(),
            "{} failed ({status}): {stderr}",
            self.what
        );
        assert_no_panic(&stderr);
        if let Err(why) = checked {
            panic!("{}: {why}", self.what);
        }
        status
    }
}

/// Reads `r` to its end and compares every byte with the pattern of `len`
/// bytes from `seed`.
fn same_as_pattern(mut r: impl Read, seed: u64, len: u64) -> Result<u64, String> {
    let mut expected = Pattern::new(seed, len);
    let (mut got, mut want) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut pos = 0u64;
    loop {
        let n = r.read(&mut got).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        let w = expected.read(&mut want[..n]).unwrap();
        if w < n {
            // The pattern reads in full until its end.
            return Err(format!("longer than the {len} bytes stored"));
        }
        // Slices compare with memcmp; a byte loop is slow in test builds.
        if got[..n] != want[..n] {
            let k = (0..n).find(|&k| got[k] != want[k]).unwrap_or(0);
            return Err(format!(
                "differs from what was stored at byte {}",
                pos + k as u64
            ));
        }
        pos += n as u64;
    }
    if pos == len {
        Ok(pos)
    } else {
        Err(format!("ended after {pos} of {len} bytes"))
    }
}

/// Polls `f` until it returns `Some`, for at most `within`.
#[track_caller]
fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "{what}: not within {within:?}");
        thread::sleep(NET_POLL);
    }
}

/// The faults a mesh starts with.
#[derive(Default)]
struct Faults {
    /// (host, percent of TCP packets dropped in and out).
    loss: Vec<(usize, u32)>,
    /// A host that reaches the others only through the delay proxy, and the
    /// delay each way in milliseconds.
    remote: Option<(usize, u32)>,
    /// (host, cap on what it receives, as `tc` writes rates).
    cap: Option<(usize, &'static str)>,
}

/// Five hosts running a mesh. Dropping it kills the nodes and the proxy,
/// deletes their directories, then the network (fields drop in order).
struct Mesh {
    hosts: Vec<Host>,
    proxy: Option<Reaped>,
    proxy_log: Option<PathBuf>,
    /// The host behind the delay proxy.
    remote: Option<usize>,
    dir: tempfile::TempDir,
    net: Net,
}

impl Drop for Mesh {
    fn drop(&mut self) {
        // Kept for a developer who asked (the logs are printed anyway when
        // a test fails).
        let Some(to) = std::env::var_os("NEXNET_NETNS_LOGS_TO") else {
            return;
        };
        let to = PathBuf::from(to);
        let _ = std::fs::create_dir_all(&to);
        for h in &self.hosts {
            let name = format!("{}-h{}.log", self.net.name, h.i);
            let _ = std::fs::copy(&h.node.log, to.join(name));
        }
        if let Some(log) = &self.proxy_log {
            let _ = std::fs::copy(log, to.join(format!("{}-proxy.log", self.net.name)));
        }
    }
}

impl Mesh {
    /// Builds the network with `faults`, starts a node on every host and
    /// waits until each sees all the others.
    fn start(faults: Faults) -> Mesh {
        let started = Instant::now();
        let net = Net::up(HOSTS);
        let dir = tempfile::tempdir().unwrap();
        let mut mesh = Mesh {
            hosts: Vec::new(),
            proxy: None,
            proxy_log: None,
            remote: faults.remote.map(|(r, _)| r),
            dir,
            net,
        };
        for &(i, pct) in &faults.loss {
            mesh.net.loss(i, pct);
        }
        if let Some((i, rate)) = faults.cap {
            mesh.net.cap(i, Some(rate));
        }
        // The delay proxy listens on SWITCH_IP:3000+N for host N.
        let proxy_port = |n: usize| PEER_PORT + n as u16;
        if let Some((remote, delay_ms)) = faults.remote {
            let log = mesh.dir.path().join("proxy.log");
            let mut cmd = in_ns(&mesh.net.switch_ns(), "python3");
            cmd.args([PROXY_PY, "--delay-ms", &delay_ms.to_string()]);
            for n in 1..=HOSTS {
                cmd.arg(format!(
                    "{SWITCH_IP}:{}={SUBNET}.{n}:{PEER_PORT}",
                    proxy_port(n)
                ));
            }
            cmd.stdout(Stdio::piped())
                .stderr(std::fs::File::create(&log).unwrap());
            let mut proxy = Reaped::new(cmd.spawn().unwrap());
            let mut ready = String::new();
            BufReader::new(proxy.process.stdout.take().unwrap())
                .read_line(&mut ready)
                .unwrap();
            assert_eq!(
                ready.trim(),
                "ready",
                "the delay proxy did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            mesh.proxy = Some(proxy);
            mesh.proxy_log = Some(log);
            // The remote host's connections to host N go to the proxy's port
            // for N; nothing else gets in or out.
            let maps: Vec<String> = (1..=HOSTS)
                .filter(|&n| n != remote)
                .map(|n| format!("{SUBNET}.{n}:{PEER_PORT}={}", proxy_port(n)))
                .collect();
            let mut rest = vec![SWITCH_IP];
            rest.extend(maps.iter().map(String::as_str));
            mesh.net.sh("via", remote, &rest);
        }

        let first = mesh.dir.path().join("h1");
        for i in 1..=HOSTS {
            let data = mesh.dir.path().join(format!("h{i}"));
            init(&data, (i > 1).then_some(first.as_path()));
            let ns = mesh.net.host_ns(i);
            let mut serve: Vec<String> = ["serve", "--data", path_str(&data)]
                .into_iter()
                .map(String::from)
                .collect();
            serve.extend(["--listen".into(), format!("{SUBNET}.{i}:{PEER_PORT}")]);
            serve.extend(["--api", "127.0.0.1:0", "--no-fsync"].map(String::from));
            if i > 1 {
                serve.extend(["--bootstrap".into(), format!("{SUBNET}.1:{PEER_PORT}")]);
            }
            if faults.remote.is_some_and(|(r, _)| r == i) {
                serve.extend([
                    "--advertise".into(),
                    format!("{SWITCH_IP}:{}", proxy_port(i)),
                ]);
            }
            let node = launch(&ns, &serve, &data);
            mesh.hosts.push(Host { i, ns, serve, node });
        }
        mesh.wait_meshed();
        eprintln!(
            "netns: {HOSTS} hosts up and meshed in {:.1?}",
            started.elapsed()
        );
        mesh
    }

    /// Waits until every host is connected to every other.
    #[track_caller]
    fn wait_meshed(&self) {
        let all: BTreeSet<String> = self.hosts.iter().map(|h| h.id().to_string()).collect();
        for h in &self.hosts {
            let others: BTreeSet<String> = all.iter().filter(|id| *id != h.id()).cloned().collect();
            wait_for(
                &format!("host {} to connect to every other host", h.i),
                NET_DEADLINE,
                || (h.connected() == others).then_some(()),
            );
        }
    }

    fn host(&self, i: usize) -> &Host {
        &self.hosts[i - 1]
    }

    /// The host whose node has id `id`.
    #[track_caller]
    fn by_id(&self, id: &str) -> usize {
        self.hosts
            .iter()
            .find(|h| h.id() == id)
            .unwrap_or_else(|| panic!("no host has node id {id}"))
            .i
    }

    #[track_caller]
    fn hosts_of(&self, ids: &Value) -> BTreeSet<usize> {
        string_set(ids).iter().map(|id| self.by_id(id)).collect()
    }

    /// Writes the pattern of `len` bytes from `seed` to a file, stores it
    /// through host `on` and returns `put --json`.
    #[track_caller]
    fn put(&self, on: usize, name: &str, seed: u64, len: u64) -> Value {
        self.try_put(on, name, seed, len).json()
    }

    /// [`put`](Self::put), success or not.
    #[track_caller]
    fn try_put(&self, on: usize, name: &str, seed: u64, len: u64) -> Output {
        let src = self.dir.path().join(format!("src-{seed}"));
        write_pattern(&src, seed, len);
        let out = self.host(on).run(
            &["put", path_str(&src), "--name", name, "--json"],
            TRANSFER_DEADLINE,
        );
        std::fs::remove_file(&src).unwrap();
        out
    }

    /// The hosts whose stores hold an object named `cid` (looking at the
    /// files, not asking the nodes).
    fn hosts_storing(&self, cid: &str) -> BTreeSet<usize> {
        self.hosts
            .iter()
            .filter(|h| contains_file_named(&h.node.data.join("store"), cid))
            .map(|h| h.i)
            .collect()
    }

    /// A line of fault counters for the report.
    fn fault_counts(&self) -> String {
        let mut parts = Vec::new();
        for h in &self.hosts {
            let (lost, refused) = self.net.drops(h.i);
            if lost + refused > 0 {
                parts.push(format!(
                    "host {}: {lost} packets dropped at random, {refused} refused off-proxy",
                    h.i
                ));
            }
        }
        if let Some(r) = self.remote {
            let (sent, received) = self.net.bytes(r);
            parts.push(format!(
                "host {r} sent {} MiB and received {} MiB, all through the delay proxy",
                sent >> 20,
                received >> 20
            ));
        }
        parts.join("; ")
    }
}

fn contains_file_named(dir: &Path, name: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        if path.is_dir() {
            contains_file_named(&path, name)
        } else {
            e.file_name().to_str() == Some(name)
        }
    })
}

// ---------------------------------------------------------------------------
// 1. 256 MiB to every host, over loss and latency, and a cable pulled mid-get
// ---------------------------------------------------------------------------

#[test]
#[ignore = "needs root, iproute2, nftables and python3: see README (Tests that need root)"]
fn big_file_reaches_every_host_despite_loss_latency_and_a_cut_link() {
    let mesh = Mesh::start(Faults {
        loss: vec![(2, 1), (4, 2)],
        remote: Some((5, 20)),
        cap: None,
    });
    const SEED: u64 = 256;
    const LEN: u64 = 256 << 20;
    // The getter's link is capped to this while a holder's cable is pulled,
    // so the get is surely still running when it is (50 MB/s).
    const GET_CAP: &str = "400mbit";
    // The cable is pulled once one host has sent the getter this much.
    const CUT_AFTER: u64 = 8 << 20;

    let t = Instant::now();
    let put = mesh.put(1, "big", SEED, LEN);
    let took = t.elapsed();
    let holders = mesh.hosts_of(&put["holders"]);
    eprintln!("netns: put of 256 MiB on host 1, root holders {holders:?}: {took:.1?}");
    assert_eq!(holders.len(), 3, "R = 3 holders: {put}");
    assert_eq!(
        mesh.hosts_of(&put["replicas"]),
        holders,
        "every holder committed the file's root: {put}"
    );

    // A get on a host that does not hold the file's root. Its chunks are
    // spread over all five hosts (three of them each), so the getter holds
    // some and fetches the rest from the four others at once; one of them
    // has its cable pulled mid-way, and its chunks come from the others.
    let g = (2..=HOSTS).find(|i| !holders.contains(i)).unwrap();
    mesh.net.cap(g, Some(GET_CAP));
    let servers: Vec<usize> = (1..=HOSTS).filter(|&h| h != g).collect();
    let sent = |h: usize| mesh.net.bytes(h).0;
    let base: BTreeMap<usize, u64> = servers.iter().map(|&h| (h, sent(h))).collect();
    let mut getting = mesh.host(g).start_get("big", SEED, LEN);
    let serving = wait_for("a host to send a part of the file", NET_DEADLINE, || {
        if getting.done() {
            return Some(None);
        }
        servers
            .iter()
            .map(|&h| (h, sent(h) - base[&h]))
            .find(|&(_, n)| n >= CUT_AFTER)
            .map(Some)
    });
    let Some((source, sent_before_cut)) = serving else {
        getting.finish();
        panic!("the get on host {g} ended before any host sent {CUT_AFTER} bytes");
    };
    mesh.net.link(source, false);
    let cut = Instant::now();
    assert!(
        !getting.done(),
        "the get on host {g} ended before host {source}'s cable was pulled"
    );
    let at_cut: BTreeMap<usize, u64> = servers.iter().map(|&h| (h, sent(h))).collect();
    getting.finish();
    let recovered = cut.elapsed();
    let total_from_source = sent(source) - base[&source];
    assert!(
        total_from_source < LEN,
        "host {source} sent {total_from_source} bytes: the whole file, not cut off mid-way"
    );
    // Several hosts served the getter: it drew on every holder at once, and
    // went on drawing on the others once one was gone.
    let before: BTreeMap<usize, u64> = servers
        .iter()
        .map(|&h| (h, (at_cut[&h] - base[&h]) >> 20))
        .collect();
    let after: BTreeMap<usize, u64> = servers
        .iter()
        .filter(|&&h| h != source)
        .map(|&h| (h, (sent(h) - at_cut[&h]) >> 20))
        .collect();
    assert!(
        before.values().filter(|&&m| m >= 1).count() >= 2,
        "the get drew on one host only before the cut: MiB per host {before:?}"
    );
    assert!(
        after.values().filter(|&&m| m >= 1).count() >= 2,
        "the get drew on fewer than two hosts after the cut: MiB per host {after:?}"
    );
    eprintln!(
        "netns: get on host {g}: MiB sent per host before the cut {before:?}, host {source}'s \
         cable pulled after {} MiB; after the cut {after:?}; the get finished {recovered:.1?} \
         after the cut",
        sent_before_cut >> 20
    );
    mesh.net.cap(g, None);
    mesh.net.link(source, true);
    // A host holds only its share of the chunks: it reads the rest from the
    // others once it has them back.
    mesh.wait_meshed();

    // Every other host reads the file back, byte for byte.
    for i in (2..=HOSTS).filter(|&i| i != g) {
        let took = mesh.host(i).get_checked("big", SEED, LEN);
        let how = if holders.contains(&i) {
            "a root holder"
        } else {
            "not a root holder"
        };
        eprintln!("netns: get of 256 MiB on host {i} ({how}): {took:.1?}");
    }
    // All of host 5's traffic went through the delay proxy (nothing else
    // gets in), and it holds or fetched the file: 256 MiB crossed it.
    let (_, received) = mesh.net.bytes(5);
    assert!(
        received >= LEN,
        "host 5 received only {received} bytes: the file did not reach it through the proxy"
    );
    eprintln!("netns: {}", mesh.fault_counts());
}

// ---------------------------------------------------------------------------
// 2. A host cut off: stores and deletes meanwhile, repair when it is back
// ---------------------------------------------------------------------------

#[test]
#[ignore = "needs root, iproute2, nftables and python3: see README (Tests that need root)"]
fn partitioned_host_rejoins_with_its_replicas_and_without_deleted_files() {
    let mut mesh = Mesh::start(Faults {
        loss: vec![(1, 1), (3, 2)],
        remote: Some((5, 20)),
        cap: Some((2, "100mbit")),
    });
    // The host cut off, and the hosts that store and delete meanwhile.
    const CUT: usize = 3;
    const WRITER: usize = 1;
    const DELETER: usize = 4;
    let cut_id = mesh.host(CUT).id().to_string();
    let sizes: [u64; 4] = [64 * 1024 + 1, 1 << 20, 1, 300_000];
    struct Stored {
        name: String,
        seed: u64,
        len: u64,
        cid: String,
        holders: BTreeSet<usize>,
    }
    let mut seed = 1000;
    // Stores files under `prefix` on `on` until `held` of them have the
    // cut-off host among their holders (at most 30, so a placement that
    // never picks it fails rather than loops). Every holder commits, but
    // the host cut off if it is `away`.
    let mut store_until = |prefix: &str, on: usize, held: usize, away: bool| -> Vec<Stored> {
        let mut files: Vec<Stored> = Vec::new();
        while files.iter().filter(|f| f.holders.contains(&CUT)).count() < held {
            assert!(files.len() < 30, "host {CUT} was never a holder");
            seed += 1;
            let len = sizes[files.len() % sizes.len()];
            let name = format!("{prefix}/{}", files.len());
            let put = mesh.put(on, &name, seed, len);
            let holders = mesh.hosts_of(&put["holders"]);
            let mut expected = holders.clone();
            if away {
                expected.remove(&CUT);
            }
            assert_eq!(holders.len(), 3, "R = 3 holders: {put}");
            assert_eq!(mesh.hosts_of(&put["replicas"]), expected, "{name}: {put}");
            files.push(Stored {
                name,
                seed,
                len,
                cid: put["cid"].as_str().unwrap().to_string(),
                holders,
            });
        }
        files
    };

    // Before the cut: files, some of which the cut-off host will hold when
    // they are deleted.
    let before = store_until("before", WRITER, 2, false);
    let (doomed, kept): (Vec<&Stored>, Vec<&Stored>) =
        before.iter().partition(|f| f.holders.contains(&CUT));
    for f in &before {
        assert_eq!(
            mesh.hosts_storing(&f.cid),
            f.holders,
            "{} is stored on its 3 holders",
            f.name
        );
    }

    // Pull host 3's cable; the others notice when its heartbeats stop.
    mesh.net.link(CUT, false);
    let t = Instant::now();
    // Stores racing the cut, before anyone noticed: host 3 cannot commit,
    // so a store it should hold (its root or a chunk) misses its write
    // quorum (every holder that was reachable), says so (exit 1) and is
    // undone: the name is as it was, nowhere listed or served. Each store
    // of a new name first waits for host 3's silence on its lookup (the
    // request time-out), so they are started at once, well inside the time
    // the others take to notice: placement (by content id) makes host 3 a
    // holder of any one of them with probability 3/5.
    const RACERS: u64 = 8;
    let outputs: Vec<(String, u64, Output)> = std::thread::scope(|scope| {
        let mesh = &mesh;
        let racers: Vec<_> = (0..RACERS)
            .map(|k| {
                scope.spawn(move || {
                    let (name, seed) = (format!("racing/{k}"), 5000 + k);
                    let out = mesh.try_put(WRITER, &name, seed, 100_000);
                    (name, seed, out)
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|r| r.join().expect("a racing store panicked"))
            .collect()
    });
    let written = mesh.host(WRITER).files();
    let mut failed = Vec::new();
    for (name, _seed, out) in outputs {
        if out.code() == Some(0) {
            let entry = &written[&name];
            let holders = mesh.hosts_of(&entry["replicas"]);
            assert!(
                !holders.contains(&CUT),
                "{name} succeeded though host {CUT} holds its root"
            );
            out.json();
            continue;
        }
        assert_eq!(out.code(), Some(1), "{name}: {out:?}");
        assert_no_panic(&out.stderr);
        assert!(
            out.stderr.contains(&cut_id[..8]) && out.stderr.contains("not stored"),
            "{name} failed for another reason than host {CUT}: {}",
            out.stderr
        );
        assert!(!written.contains_key(&name), "{name} failed and is listed");
        eprintln!(
            "netns: a store racing the cut failed after {:.1?}: {}",
            t.elapsed(),
            out.stderr.trim_end()
        );
        failed.push(name);
    }
    assert!(
        !failed.is_empty(),
        "host {CUT} was a holder of no racing store"
    );
    for h in mesh.hosts.iter().filter(|h| h.i != CUT) {
        wait_for(
            &format!("host {} to notice host {CUT} is gone", h.i),
            NET_DEADLINE,
            || (!h.connected().contains(&cut_id)).then_some(()),
        );
    }
    eprintln!(
        "netns: host {CUT} cut off; every other host noticed within {:.1?}",
        t.elapsed()
    );

    // Meanwhile: new files (some of which host 3 should hold) ...
    let during = store_until("during", WRITER, 2, true);
    for f in &during {
        let expected: BTreeSet<usize> = f.holders.iter().copied().filter(|&h| h != CUT).collect();
        assert_eq!(
            mesh.hosts_storing(&f.cid),
            expected,
            "{} is on its holders that are reachable",
            f.name
        );
    }
    // ... and deletes of files host 3 still holds.
    for f in &doomed {
        let rm = mesh.host(DELETER).json(&["rm", &f.name, "--json"]);
        let pending: BTreeSet<usize> = rm["pending"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| mesh.by_id(p["node_id"].as_str().unwrap()))
            .collect();
        assert!(
            pending.contains(&CUT),
            "the delete of {} says host {CUT} is still to be told: {rm}",
            f.name
        );
    }
    // Host 3, cut off, still has them: what could come back.
    let stale = mesh.host(CUT).files();
    for f in &doomed {
        assert_eq!(
            stale.get(&f.name).map(|e| e["local"].clone()),
            Some(Value::Bool(true)),
            "host {CUT} (cut off) still holds {}",
            f.name
        );
    }

    // Plug it back in.
    mesh.net.link(CUT, true);
    let t = Instant::now();
    mesh.wait_meshed();
    eprintln!(
        "netns: host {CUT} back; mesh whole again after {:.1?}",
        t.elapsed()
    );

    // Repair brings every file back to its 3 holders: the ones stored while
    // host 3 was away reach it.
    let t = Instant::now();
    for f in kept.iter().copied().chain(&during) {
        wait_for(
            &format!("{} to be on its holders {:?}", f.name, f.holders),
            NET_DEADLINE,
            || (mesh.hosts_storing(&f.cid) == f.holders).then_some(()),
        );
    }
    let restored = during.iter().filter(|f| f.holders.contains(&CUT)).count();
    eprintln!(
        "netns: repair gave host {CUT} the {restored} files stored while it was away within {:.1?}",
        t.elapsed()
    );
    let listed = mesh.host(CUT).files();
    for f in during.iter().filter(|f| f.holders.contains(&CUT)) {
        assert_eq!(
            listed.get(&f.name).map(|e| e["local"].clone()),
            Some(Value::Bool(true)),
            "host {CUT} lists {} as its own",
            f.name
        );
    }

    // The deleted files stay deleted, after the repair passes that ran when
    // host 3 came back: no host lists, serves or stores them ...
    let deleted = doomed.iter().map(|f| (f.name.as_str(), f.cid.as_str()));
    assert_deleted_everywhere(&mesh, &deleted.clone().collect::<Vec<_>>());
    // ... nor once host 3 restarted (its catalog is read from disk again,
    // and every node runs a repair pass when it reconnects).
    let t = Instant::now();
    mesh.hosts[CUT - 1].restart();
    mesh.wait_meshed();
    eprintln!(
        "netns: host {CUT} restarted; mesh whole again after {:.1?}",
        t.elapsed()
    );
    for f in kept.iter().copied().chain(&during) {
        wait_for(
            &format!("{} to be on its holders {:?}", f.name, f.holders),
            NET_DEADLINE,
            || (mesh.hosts_storing(&f.cid) == f.holders).then_some(()),
        );
    }
    assert_deleted_everywhere(&mesh, &deleted.collect::<Vec<_>>());
    // And every other file reads back whole on the host that was away; the
    // stores that failed racing the cut are listed nowhere.
    for f in kept.iter().copied().chain(&during) {
        mesh.host(CUT).get_checked(&f.name, f.seed, f.len);
    }
    for h in &mesh.hosts {
        let listed = h.files();
        for name in &failed {
            assert!(
                !listed.contains_key(name),
                "host {} lists {name}, whose store failed",
                h.i
            );
        }
    }
    eprintln!(
        "netns: {} files stored, {} deleted while host {CUT} was away; {}",
        during.len(),
        doomed.len(),
        mesh.fault_counts()
    );
}

/// No host lists, serves or stores any of `deleted` (name, cid).
#[track_caller]
fn assert_deleted_everywhere(mesh: &Mesh, deleted: &[(&str, &str)]) {
    for &(name, cid) in deleted {
        let storing = mesh.hosts_storing(cid);
        assert!(
            storing.is_empty(),
            "{name} (deleted) is back in the stores of hosts {storing:?}"
        );
        for h in &mesh.hosts {
            assert!(
                !h.files().contains_key(name),
                "host {} lists {name} after it was deleted",
                h.i
            );
            let got = h.run(&["get", name], DEADLINE);
            assert_eq!(got.code(), Some(1), "get {name} on host {}: {got:?}", h.i);
            assert!(
                got.stderr.contains("not found"),
                "get {name} on host {}: {}",
                h.i,
                got.stderr
            );
        }
    }
}
