//! Shared by the process-level tests (`tests/*.rs` that run the `nexnet`
//! binary): running commands with a deadline, child processes that are
//! killed and reaped on drop, and `nexnet serve` nodes on loopback.
//!
//! Each test crate uses a different part of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeSet,
    fs::File,
    io::{BufRead, BufReader, Read, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    str::FromStr,
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use nexnet::p2p::NodeId;
use nexnet_testkit::{Pattern, digest_reader, pattern_digest};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_nexnet");
/// How long an asynchronous condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(15);
/// How often it is checked meanwhile.
pub const POLL: Duration = Duration::from_millis(25);

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

/// Removes what a command must not inherit from the developer's shell: any
/// `NEXNET_*` setting (an API address or token, a listen address, ...), and
/// any backtrace or log setting (so a panic would
/// show its `RUST_BACKTRACE` note, which the tests look for).
pub fn clean_env(c: &mut Command) -> &mut Command {
    // Every `NEXNET_*` variable is a setting of `nexnet serve` or of the
    // client commands (see the README's table), so none may leak in.
    let settings = std::env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| k.to_string_lossy().starts_with("NEXNET_"));
    for var in settings {
        c.env_remove(var);
    }
    for var in ["RUST_BACKTRACE", "RUST_LIB_BACKTRACE", "RUST_LOG"] {
        c.env_remove(var);
    }
    c
}

/// `nexnet` with a clean environment (see [`clean_env`]).
pub fn nexnet() -> Command {
    let mut c = Command::new(BIN);
    clean_env(&mut c);
    c.stdin(Stdio::null());
    c
}

/// A finished command.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert!(self.status.success(), "command failed: {self:#?}");
        &self.stdout
    }

    /// Asserts success and parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }

    /// Asserts exit code `code` with one `error: ...` line on stderr (and
    /// nothing that looks like a panic); returns that line.
    #[track_caller]
    pub fn fails(&self, code: i32) -> &str {
        assert_eq!(self.code(), Some(code), "wrong exit code: {self:#?}");
        assert_no_panic(&self.stderr);
        let line = self.stderr.trim_end();
        assert!(
            line.starts_with("error: ") && line.lines().count() == 1,
            "expected one `error: ...` line on stderr: {self:#?}"
        );
        line
    }
}

#[track_caller]
pub fn assert_no_panic(stderr: &str) {
    for bad in ["panicked", "RUST_BACKTRACE", "stack backtrace"] {
        assert!(!stderr.contains(bad), "stderr looks like a panic: {stderr}");
    }
}

/// Runs `cmd` to completion, for at most `within` (then kills it and fails).
#[track_caller]
pub fn run_within(cmd: Command, within: Duration) -> Output {
    run_reaped(cmd, within, false)
}

/// [`run_within`]; with `group`, the command runs in a process group of its
/// own, all of which is killed if it outlives `within` (for shell scripts
/// that start processes of their own).
#[track_caller]
pub fn run_reaped(mut cmd: Command, within: Duration, group: bool) -> Output {
    let shown = format!("{cmd:?}");
    if group {
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    }
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let mut child = Reaped {
        process: child,
        group,
    };
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(Box::new(child.process.stdout.take().unwrap()));
    let err = drain(Box::new(child.process.stderr.take().unwrap()));
    let status = child.wait_within(within, &shown);
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Runs `nexnet ARGS` (at most [`DEADLINE`]).
#[track_caller]
pub fn run(args: &[&str]) -> Output {
    let mut cmd = nexnet();
    cmd.args(args);
    run_within(cmd, DEADLINE)
}

/// A child process that is killed and reaped when dropped.
pub struct Reaped {
    pub process: Child,
    /// Whether it leads a process group, killed with it.
    pub group: bool,
}

impl Reaped {
    pub fn new(process: Child) -> Self {
        Self {
            process,
            group: false,
        }
    }

    /// Waits for the process to exit, for at most `within`.
    #[track_caller]
    pub fn wait_within(&mut self, within: Duration, what: &str) -> ExitStatus {
        let end = Instant::now() + within;
        loop {
            if let Some(status) = self.process.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < end,
                "{what} still running after {within:?}"
            );
            thread::sleep(POLL);
        }
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.group && matches!(self.process.try_wait(), Ok(None)) {
            let group = format!("-{}", self.process.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Polls `f` until it returns `Some`, for at most [`DEADLINE`].
#[track_caller]
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "{what}: not within {DEADLINE:?}");
        thread::sleep(POLL);
    }
}

/// Runs an async block (the HTTP client) on a runtime of its own.
pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Writes a [`Pattern`] of `len` bytes from `seed` to `path`, in chunks.
pub fn write_pattern(path: &Path, seed: u64, len: u64) {
    let mut file = std::io::BufWriter::new(File::create(path).unwrap());
    std::io::copy(&mut Pattern::new(seed, len), &mut file).unwrap();
    file.flush().unwrap();
}

/// Asserts `path` holds the pattern of `len` bytes from `seed`.
#[track_caller]
pub fn assert_pattern_file(path: &Path, seed: u64, len: u64) {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        digest_reader(BufReader::new(file)).unwrap(),
        pattern_digest(seed, len),
        "{} does not hold the file stored",
        path.display()
    );
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---------------------------------------------------------------------------
// Nodes
// ---------------------------------------------------------------------------

/// A temp root holding one initialised node's data directory, `root/node`.
#[track_caller]
pub fn node_dir() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("node");
    init(&dir, None);
    (root, dir)
}

/// `nexnet init --data DIR`, adopting `shared`'s key and secret if given.
#[track_caller]
pub fn init(dir: &Path, shared: Option<&Path>) {
    let mut args = vec!["init", "--data", path_str(dir)];
    let (key, secret);
    if let Some(first) = shared {
        key = first.join(nexnet::server::KEY_FILE);
        secret = first.join(nexnet::server::SECRET_FILE);
        args.extend([
            "--key-file",
            path_str(&key),
            "--secret-file",
            path_str(&secret),
        ]);
    }
    run(&args).ok();
}

/// A running `nexnet serve`; killed (SIGKILL) and reaped when dropped.
pub struct Node {
    pub child: Reaped,
    pub data: PathBuf,
    pub id: String,
    pub peers: SocketAddr,
    pub api: SocketAddr,
    /// Its standard error (the logs), shown when a test fails.
    pub log: PathBuf,
}

impl Node {
    /// Starts `nexnet serve --data DIR` on ephemeral ports with `extra`
    /// flags, and reads the three lines it prints on stdout.
    #[track_caller]
    pub fn start(data: &Path, extra: &[&str]) -> Node {
        let mut cmd = nexnet();
        cmd.args(["serve", "--data", path_str(data)])
            .args([
                "--listen",
                "127.0.0.1:0",
                "--api",
                "127.0.0.1:0",
                "--no-fsync",
            ])
            .args(extra);
        Node::launch(cmd, data)
    }

    /// Runs `cmd`, a prepared `nexnet serve` on `data` (perhaps wrapped, as
    /// in `ip netns exec NS nexnet serve ...`), logging to a file beside
    /// `data`, and reads the three lines it prints on stdout.
    #[track_caller]
    pub fn launch(mut cmd: Command, data: &Path) -> Node {
        let log = data.with_extension(format!("{}.log", unique()));
        cmd.stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap());
        let mut child = Reaped::new(cmd.spawn().unwrap());
        // A thread reads stdout to its end, so the node never blocks on it.
        let (tx, rx) = mpsc::channel();
        let stdout = child.process.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let show_log = || std::fs::read_to_string(&log).unwrap_or_default();
        let mut lines = Vec::new();
        let end = Instant::now() + DEADLINE;
        while lines.len() < 3 {
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(e) => panic!(
                    "serve {} printed {lines:?} then {e:?}; its log:\n{}",
                    data.display(),
                    show_log()
                ),
            }
        }
        let field = |i: usize, prefix: &str| -> String {
            lines[i]
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("line {i} {:?} lacks {prefix:?}", lines[i]))
                .trim()
                .to_string()
        };
        let id = field(0, "nexnet node ");
        let peers = field(1, "  peers  ").parse().unwrap();
        let api = field(2, "  api    http://").parse().unwrap();
        assert!(NodeId::from_str(&id).is_ok(), "bad node id {id:?}");
        Node {
            child,
            data: data.to_path_buf(),
            id,
            peers,
            api,
            log,
        }
    }

    pub fn api(&self) -> String {
        self.api.to_string()
    }

    /// `nexnet ARGS --api THIS`.
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> Output {
        let api = self.api();
        let mut all = args.to_vec();
        all.extend(["--api", &api]);
        run(&all)
    }

    /// `status --json`.
    #[track_caller]
    pub fn status(&self) -> Value {
        self.run(&["status", "--json"]).json()
    }

    /// Waits until `n` peers are connected.
    #[track_caller]
    pub fn wait_for_peers(&self, n: u64) {
        eventually(&format!("node {} to see {n} peers", self.id), || {
            (self.status()["peers"].as_u64() == Some(n)).then_some(())
        });
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api)
    }

    pub fn pid(&self) -> String {
        self.child.process.id().to_string()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!(
                "--- log of node {} ({}) ---\n{log}",
                self.id,
                self.data.display()
            );
        }
        // `child` drops next: killed and reaped.
    }
}

/// A suffix no other node of this process uses (log file names).
pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// `n` nodes under `root` sharing node 1's key and secret, nodes 2.. joining
/// through node 1, each started with `extra`; returns once every node sees
/// all the others.
#[track_caller]
pub fn cluster(root: &Path, n: usize, extra: &[&str]) -> Vec<Node> {
    let first = root.join("node1");
    init(&first, None);
    let mut nodes = vec![Node::start(&first, extra)];
    let bootstrap = nodes[0].peers.to_string();
    for i in 2..=n {
        let dir = root.join(format!("node{i}"));
        init(&dir, Some(&first));
        let mut args = extra.to_vec();
        args.extend(["--bootstrap", &bootstrap]);
        nodes.push(Node::start(&dir, &args));
    }
    for node in &nodes {
        node.wait_for_peers(n as u64 - 1);
    }
    nodes
}

pub fn ids(nodes: &[Node]) -> BTreeSet<String> {
    nodes.iter().map(|n| n.id.clone()).collect()
}

pub fn string_set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}
