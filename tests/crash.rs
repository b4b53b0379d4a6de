//! Crash safety of a real `nexnet serve`: a node with fsync on is killed
//! with SIGKILL at a random moment of a large store or of a delete,
//! restarted on the same data directory and checked, round after round.
//!
//! `crash_loop` runs `NEXNET_CRASH_ROUNDS` rounds (default 50) from a seeded
//! RNG (`NEXNET_CRASH_SEED` replays a run; the seed is printed). Each round
//! starts the node, stores a 16–48 MiB file (16–48 chunks) through a
//! hand-written HTTP/1.1 client (a new name or one that replaces a file,
//! sometimes with a smaller store running beside it) or deletes a file, and
//! kills the node before the first body byte, at a random byte of the body,
//! at a random moment between the last byte and the answer (the commit
//! window), or right after the acknowledgement. A model keeps, for every
//! name, the states it may be in: one once a store or delete was
//! acknowledged (201 / 200), two while an unacknowledged operation may or
//! may not have happened, resolved by what the restarted node shows. After
//! every restart:
//!
//! - every acknowledged file is listed with the acknowledged cid and reads
//!   back byte-identical (a full read whenever its cid changed; otherwise
//!   its root and chunks are re-hashed on disk), deleted files stay deleted
//!   (404), a store cut off before its last byte is never visible;
//! - every object file in the store sits at its place and hashes to its
//!   name; every catalog entry points at a root held locally whose manifest
//!   parses and gives the listed size, and every chunk it names is held
//!   locally with its length; the store's and the catalog's temp
//!   directories were swept, nothing was quarantined or set aside as
//!   damaged;
//! - an object no entry names (neither a listed root nor one of its chunks)
//!   stays until the collector removes it, and new ones appear only after a
//!   kill that cut a store after its first body byte (mid-body, in the
//!   commit window, or a side store): never after an acknowledged store, a
//!   delete, or a store cut before its body;
//! - the start-up sweep removes objects (of deleted files) only after a
//!   kill that cut a delete: an unanswered delete, or the removal of the
//!   version that a store cut in its commit window replaced.
//!
//! Now and then, and whenever the unnamed objects pile up, the collector
//! runs over the stopped node's data directory in-process, with no grace
//! period (`FileServer::repair`): it removes exactly the unnamed objects
//! and nothing any file needs, or none at all where its guards say so
//! (more of them than crash garbage comes to, or no file and no tombstone
//! beside them). At the end, a fresh put/get/rm works and leaves no object
//! behind, and the stopped node's data directory is opened in-process the
//! same way (`FileServer`, then `ObjectStore`): the same files, a repair
//! pass that collects the unnamed objects (unless a guard applies) and has
//! nothing else to do, every file read back whole, every object verified
//! and named by a file.
//!
//! `interrupted_delete_is_finished_at_restart` recreates, deterministically,
//! the state a kill leaves between a delete's tombstone and the removal of
//! the entry, the chunk and the root, and checks the restarted node removes
//! both objects, does not serve or list the deleted file, and that a new
//! store under the name works.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    fs,
    io::{self, BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use common::*;
use nexnet::{
    server::{FileServer, RepairReport, ServerConfig, manifest},
    store::{Cid, CidHasher, ObjectStore},
};
use nexnet_testkit::{Pattern, Rng, digest_async_reader, digest_reader, pattern_digest};
use serde_json::Value;

/// How long one HTTP exchange may block before the test fails.
const IO_DEADLINE: Duration = Duration::from_secs(60);
const MIB: u64 = 1024 * 1024;
/// The collector's guard: more unnamed objects that start a file (roots)
/// than this, and more than a tenth of the catalog's files, it keeps (they
/// look like a catalog restored from an old backup, not like crash
/// garbage). Unnamed chunks do not count: a cut store leaves many.
const COLLECTOR_TRUSTS: usize = 64;
/// The loop runs the collector whenever more unnamed objects than this
/// wait, well below the guard: one round leaves at most a 48 MiB store's
/// chunks and root and a side store's, so the guard seldom applies and the
/// collector's removals are checked in most runs.
const COLLECT_ABOVE: usize = 16;

fn env_u64(var: &str) -> Option<u64> {
    let v = std::env::var(var).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{var}={v:?} is not a number")),
    )
}

// ---------------------------------------------------------------------------
// A minimal HTTP/1.1 client over std TCP: the test decides at which byte of
// a request the node dies, which no ready-made client lets it do
// ---------------------------------------------------------------------------

fn connect(api: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(api)?;
    s.set_read_timeout(Some(IO_DEADLINE))?;
    s.set_write_timeout(Some(IO_DEADLINE))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Sends a request line and headers (`Connection: close`).
fn send_head(s: &mut TcpStream, method: &str, path: &str, body_len: Option<u64>) -> io::Result<()> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: nexnet\r\nConnection: close\r\n");
    if let Some(n) = body_len {
        head += &format!("Content-Type: application/octet-stream\r\nContent-Length: {n}\r\n");
    }
    head += "\r\n";
    s.write_all(head.as_bytes())
}

/// Reads a response's status line and headers; returns the status, the
/// `Content-Length` and the reader positioned at the body.
fn read_head(s: TcpStream) -> io::Result<(u16, Option<u64>, BufReader<TcpStream>)> {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, line.clone()))?;
    let mut len = None;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            return Ok((status, len, r));
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok();
            }
            if k.eq_ignore_ascii_case("transfer-encoding") {
                return Err(io::Error::new(io::ErrorKind::Unsupported, l.to_string()));
            }
        }
    }
}

/// A whole (small) response: status and body.
fn read_response(s: TcpStream) -> io::Result<(u16, Vec<u8>)> {
    let (status, len, r) = read_head(s)?;
    let mut body = Vec::new();
    match len {
        Some(n) => {
            r.take(n).read_to_end(&mut body)?;
            if body.len() as u64 != n {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        None => {
            let mut r = r;
            r.read_to_end(&mut body)?;
        }
    }
    Ok((status, body))
}

/// A request without a body to a live node; panics on I/O errors.
fn call(api: SocketAddr, method: &str, path: &str) -> (u16, Vec<u8>) {
    let exchange = || -> io::Result<(u16, Vec<u8>)> {
        let mut s = connect(api)?;
        send_head(&mut s, method, path, None)?;
        read_response(s)
    };
    exchange().unwrap_or_else(|e| panic!("{method} {path} on {api}: {e}"))
}

/// `GET /v1/files/NAME`: the status and, for a 200, the (length, digest)
/// of the body.
fn get_digest(api: SocketAddr, name: &str) -> (u16, Option<(u64, u64)>) {
    let exchange = || -> io::Result<(u16, Option<(u64, u64)>)> {
        let mut s = connect(api)?;
        send_head(&mut s, "GET", &format!("/v1/files/{name}"), None)?;
        let (status, len, r) = read_head(s)?;
        if status != 200 {
            return Ok((status, None));
        }
        let len = len.ok_or_else(|| io::Error::other("a file without Content-Length"))?;
        Ok((status, Some(digest_reader(r.take(len))?)))
    };
    exchange().unwrap_or_else(|e| panic!("GET {name} on {api}: {e}"))
}

/// Streams `len` bytes of `body` into `s`.
fn send_body(s: &mut TcpStream, body: &mut impl Read, len: u64) -> io::Result<()> {
    let copied = io::copy(&mut body.take(len), s)?;
    assert_eq!(copied, len);
    Ok(())
}

// ---------------------------------------------------------------------------
// Nodes
// ---------------------------------------------------------------------------

/// `nexnet serve` on ephemeral ports with fsync on (the default): unlike
/// `Node::start`, no `--no-fsync`, since acknowledged stores must survive.
fn serve(data: &Path) -> Node {
    let mut cmd = nexnet();
    cmd.args(["serve", "--data", path_str(data)]).args([
        "--listen",
        "127.0.0.1:0",
        "--api",
        "127.0.0.1:0",
    ]);
    Node::launch(cmd, data)
}

/// SIGKILL, and reap.
fn kill(node: &mut Node) {
    let _ = node.child.process.kill();
    node.child
        .wait_within(DEADLINE, "a node killed with SIGKILL");
}

// ---------------------------------------------------------------------------
// The model: what each name may hold
// ---------------------------------------------------------------------------

/// A file's content: a pattern of `len` bytes from `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Content {
    seed: u64,
    len: u64,
}

/// What a store or delete came to, as far as the client knows.
#[derive(Debug)]
enum Outcome {
    /// Acknowledged (201 for a store, with its cid; 200 for a delete).
    Acked(Option<String>),
    /// No answer: the node died first. It may or may not have happened.
    Unknown,
}

#[derive(Default)]
struct Model {
    /// Every name ever used, and the states it may be in now (`None`:
    /// absent). One state once known; two after an unacknowledged
    /// operation, until the restarted node shows which.
    files: BTreeMap<String, BTreeSet<Option<Content>>>,
    /// The cid a store's acknowledgement gave, until the name is checked.
    acked_cid: BTreeMap<String, String>,
    /// The cid each name was last read back under (full read, digest).
    read_back: BTreeMap<String, String>,
    digests: HashMap<Content, (u64, u64)>,
    /// What an unacknowledged operation would have left under a name.
    pending: BTreeMap<String, Option<Content>>,
}

impl Model {
    fn digest(&mut self, c: Content) -> (u64, u64) {
        *self
            .digests
            .entry(c)
            .or_insert_with(|| pattern_digest(c.seed, c.len))
    }

    fn live(&self) -> Vec<String> {
        self.files
            .iter()
            .filter(|(_, s)| s.iter().any(Option::is_some))
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn current(&self, name: &str) -> BTreeSet<Option<Content>> {
        self.files
            .get(name)
            .cloned()
            .unwrap_or_else(|| BTreeSet::from([None]))
    }

    /// A store of `c` under `name` came to `outcome`; `complete` says
    /// whether its last byte was sent.
    fn stored(&mut self, name: &str, c: Content, outcome: &Outcome, complete: bool) {
        match outcome {
            Outcome::Acked(cid) => {
                self.pending.remove(name);
                self.files.insert(name.into(), BTreeSet::from([Some(c)]));
                if let Some(cid) = cid {
                    self.acked_cid.insert(name.into(), cid.clone());
                }
            }
            // Cut off before its last byte: it cannot have happened.
            Outcome::Unknown if !complete => {
                self.files
                    .entry(name.into())
                    .or_insert_with(|| BTreeSet::from([None]));
            }
            Outcome::Unknown => {
                let mut states = self.current(name);
                states.insert(Some(c));
                self.files.insert(name.into(), states);
                self.pending.insert(name.into(), Some(c));
            }
        }
    }

    fn deleted(&mut self, name: &str, outcome: &Outcome) {
        let mut states = match outcome {
            Outcome::Acked(_) => {
                self.pending.remove(name);
                BTreeSet::new()
            }
            Outcome::Unknown => {
                self.pending.insert(name.into(), None);
                self.current(name)
            }
        };
        states.insert(None);
        self.files.insert(name.into(), states);
        self.acked_cid.remove(name);
    }
}

#[derive(Debug, Default)]
struct Stats {
    rounds: usize,
    kills_before_body: usize,
    kills_mid_body: usize,
    kills_after_last_byte: usize,
    /// ... of which the node had answered 201 before it died.
    answered_before_kill: usize,
    kills_after_ack: usize,
    kills_during_delete: usize,
    side_stores: usize,
    acked_stores: usize,
    acked_deletes: usize,
    /// Unacknowledged operations found to have happened after the restart.
    unacked_that_happened: usize,
    unacked_that_did_not: usize,
    /// Acknowledged files checked after a restart (each round, every one).
    acked_files_checked: usize,
    /// Full reads compared with their pattern's digest.
    full_reads: usize,
    /// Object files hashed on disk (each new file once, all at the end).
    objects_hashed: usize,
    /// Temp files found after a kill, before the restart swept them.
    temp_files_left_by_kills: usize,
    /// Objects no entry names that appeared after a kill (chunks, roots
    /// and replaced versions of cut stores) ...
    unnamed_left: usize,
    /// ... by what the kill before them cut short.
    unnamed_after: BTreeMap<String, usize>,
    /// The most of them waiting at once.
    unnamed_most: usize,
    /// Collector runs, the objects they removed, and the runs that kept
    /// them all, by why.
    collector_runs: usize,
    collected: usize,
    collector_kept_all: BTreeMap<&'static str, usize>,
    /// Objects of deleted files the node removed as it started ...
    swept_at_start: usize,
    /// ... by the delete the kill before them cut short.
    swept_after: BTreeMap<String, usize>,
    /// Empty directories seen in the object tree (distinct).
    empty_dirs: BTreeSet<PathBuf>,
    lost: usize,
}

/// What a round's kill cut short, for what it may leave in the store.
#[derive(Debug, Default)]
struct Cut {
    /// Stores cut after their first body byte: what they wrote so far (the
    /// chunks, perhaps the root; or, between the new entry and the old
    /// version's tombstone, the version replaced) no entry names.
    stores: Vec<&'static str>,
    /// Deletes cut after their tombstone (an unanswered delete, or the
    /// removal of the version a store cut in its commit window replaced):
    /// what is left of the file, the next start removes.
    deletes: Vec<&'static str>,
}

/// What `list` names, for messages and the stats.
fn describe(list: &[&str]) -> String {
    if list.is_empty() {
        "nothing".into()
    } else {
        list.join(" and ")
    }
}

// ---------------------------------------------------------------------------
// Looking at the data directory
// ---------------------------------------------------------------------------

/// Files in `dir` (0 if it does not exist).
fn entries_in(dir: &Path) -> Vec<PathBuf> {
    match fs::read_dir(dir) {
        Ok(list) => list.map(|e| e.unwrap().path()).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", dir.display()),
    }
}

/// The SHA-1 cid of a file's bytes, hex.
fn hash_file(path: &Path) -> String {
    let mut file = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut hasher = CidHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            return hasher.finish().0.to_hex();
        }
        hasher.update(&buf[..n]);
    }
}

/// Identifies one version of a file on disk, so an unchanged object is
/// hashed once.
type FileKey = (String, u64, u64, i64, i64);

/// Every object under `store/objects`, cid → length. Panics on a file that
/// is not an object at its place, or whose bytes do not hash to its name.
/// Files already hashed (same inode, length and mtime) are not re-read.
fn walk_objects(
    store: &Path,
    hashed: &mut HashSet<FileKey>,
    stats: &mut Stats,
) -> BTreeMap<String, u64> {
    let objects = store.join("objects");
    let mut found = BTreeMap::new();
    let mut stack = vec![objects.clone()];
    while let Some(dir) = stack.pop() {
        let list = entries_in(&dir);
        if list.is_empty() && dir != objects {
            stats.empty_dirs.insert(dir.clone());
        }
        for path in list {
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            assert!(
                meta.is_file() && name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit()),
                "{} is not an object file",
                path.display()
            );
            // The node's layout: the cid's first two 5-character levels.
            let levels: String = path
                .parent()
                .unwrap()
                .strip_prefix(&objects)
                .unwrap()
                .components()
                .map(|c| c.as_os_str().to_str().unwrap())
                .collect();
            assert_eq!(levels, name[..10], "{} is not at its place", path.display());
            let key = (
                name.clone(),
                meta.ino(),
                meta.len(),
                meta.mtime(),
                meta.mtime_nsec(),
            );
            if !hashed.contains(&key) {
                assert_eq!(
                    hash_file(&path),
                    name,
                    "{} does not hash to its name: a partial or damaged object is visible",
                    path.display()
                );
                stats.objects_hashed += 1;
                hashed.insert(key);
            }
            found.insert(name, meta.len());
        }
    }
    found
}

/// What `GET /v1/files` lists: name → (cid, size, local).
fn listing(api: SocketAddr) -> BTreeMap<String, (String, u64, bool)> {
    let (status, body) = call(api, "GET", "/v1/files");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let list: Value = serde_json::from_slice(&body).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let name = f["name"].as_str().expect("a name this node can read");
            (
                name.to_string(),
                (
                    f["cid"].as_str().unwrap().to_string(),
                    f["size"].as_u64().unwrap(),
                    f["local"].as_bool().unwrap(),
                ),
            )
        })
        .collect()
}

/// How many objects of deleted files the node removed as it started, from
/// its log line `removed objects of deleted files ... removed=N`.
fn deleted_objects_swept_at_start(node: &Node) -> usize {
    let log = fs::read_to_string(&node.log).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains("removed objects of deleted files"))
        .filter_map(|l| {
            l.split(" removed=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum()
}

/// Where the node keeps object `cid` (see `walk_objects`).
fn object_path(store: &Path, cid: &str) -> PathBuf {
    store
        .join("objects")
        .join(&cid[..5])
        .join(&cid[5..10])
        .join(cid)
}

/// Checks that `name`'s entry (`cid`, `size`, `local` as listed) points at
/// a root held here whose manifest parses and gives `size`, and that every
/// chunk it names is held here with its length. Returns the chunks' cids.
fn check_entry(
    store: &Path,
    objects: &BTreeMap<String, u64>,
    name: &str,
    (cid, size, local): (&str, u64, bool),
) -> Vec<String> {
    assert!(
        local && objects.contains_key(cid),
        "the entry of {name:?} points at {cid}, which is not held locally \
         (listed as local: {local})"
    );
    let bytes = fs::read(object_path(store, cid)).unwrap();
    let node = manifest::Node::parse(cid.parse::<Cid>().unwrap(), &bytes)
        .unwrap_or_else(|e| panic!("the root {cid} of {name:?} does not parse: {e}"));
    let root = node
        .root
        .unwrap_or_else(|| panic!("{cid}, the entry of {name:?}, is not a manifest root"));
    assert_eq!(
        root.plain_len, size,
        "the root of {name:?} ({cid}) gives another length than the listing"
    );
    // The node runs with the default: every file here is many chunks.
    assert_eq!(
        root.chunk_size,
        manifest::DEFAULT_CHUNK_SIZE,
        "the chunk size of {name:?}"
    );
    let chunk = u64::from(root.chunk_size);
    // A last chunk shorter than MIN_CHUNK_OBJECT is kept in the root.
    let tail = size % chunk;
    let count = size / chunk + u64::from(tail >= manifest::MIN_CHUNK_OBJECT);
    assert_eq!(
        node.tail.len() as u64,
        if tail < manifest::MIN_CHUNK_OBJECT {
            tail
        } else {
            0
        },
        "the tail of {name:?}"
    );
    // Up to 16,384 chunks (every file here) a root lists the chunks itself.
    assert_eq!(
        (node.depth, root.chunk_count, node.ids.len() as u64),
        (0, count, count),
        "the manifest of {name:?} ({size} bytes): depth, chunk count, ids"
    );
    (0..count)
        .zip(&node.ids)
        .map(|(i, id)| {
            let id = id.to_hex();
            let len = (size - i * chunk).min(chunk);
            assert_eq!(
                objects.get(&id),
                Some(&len),
                "chunk {i} of {name:?} ({id}) is not held locally with its {len} bytes"
            );
            id
        })
        .collect()
}

/// What a restarted node holds, as `check_node` found it.
struct Seen {
    /// Files listed.
    files: usize,
    /// The listed files' roots and chunks.
    named: BTreeSet<String>,
    /// Every other object.
    unnamed: BTreeSet<String>,
}

/// Checks a freshly restarted node against the model (see the file's
/// docs) and resolves what unacknowledged operations came to.
fn check_node(
    node: &Node,
    model: &mut Model,
    stats: &mut Stats,
    hashed: &mut HashSet<FileKey>,
    read_everything: bool,
) -> Seen {
    let data = &node.data;
    // The temp files of interrupted writes were swept at start.
    for dir in ["store/tmp", "catalog/tmp"] {
        let left = entries_in(&data.join(dir));
        assert!(left.is_empty(), "{dir} not swept at start: {left:?}");
    }
    for dir in ["store/quarantine", "catalog/damaged"] {
        let there = entries_in(&data.join(dir));
        assert!(there.is_empty(), "nothing should be in {dir}: {there:?}");
    }
    let store = data.join("store");
    let objects = walk_objects(&store, hashed, stats);
    let listed = listing(node.api);
    let mut named = BTreeSet::new();

    for (name, (cid, size, local)) in &listed {
        let states = model
            .files
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{name:?} is listed but was never stored"));
        named.extend(check_entry(&store, &objects, name, (cid, *size, *local)));
        named.insert(cid.clone());
        if let Some(acked) = model.acked_cid.remove(name) {
            assert_eq!(
                cid, &acked,
                "{name:?} is listed with another cid than acknowledged"
            );
        }
        let known = states.len() == 1;
        if known {
            stats.acked_files_checked += 1;
        }
        if known && !read_everything && model.read_back.get(name) == Some(cid) {
            // Read back whole under this cid before, and the root and every
            // chunk it names still hash to their names: the same bytes.
            continue;
        }
        let (status, got) = get_digest(node.api, name);
        assert_eq!(status, 200, "GET {name:?}");
        stats.full_reads += 1;
        let got = got.unwrap();
        let candidates: Vec<Content> = states.iter().flatten().copied().collect();
        let matched = candidates
            .into_iter()
            .find(|c| c.len == *size && model.digest(*c) == got)
            .unwrap_or_else(|| {
                panic!(
                    "{name:?} ({size} bytes) reads as none of the versions it may hold: {states:?}"
                )
            });
        if let Some(would) = model.pending.remove(name) {
            if would == Some(matched) {
                stats.unacked_that_happened += 1;
            } else {
                stats.unacked_that_did_not += 1;
            }
        }
        model
            .files
            .insert(name.clone(), BTreeSet::from([Some(matched)]));
        model.read_back.insert(name.clone(), cid.clone());
    }

    let names: Vec<String> = model.files.keys().cloned().collect();
    for name in names {
        if listed.contains_key(&name) {
            continue;
        }
        let states = &model.files[&name];
        if !states.contains(&None) {
            stats.lost += 1;
            panic!("{name:?} was acknowledged ({states:?}) but is gone");
        }
        if let Some(would) = model.pending.remove(&name) {
            if would.is_none() {
                stats.unacked_that_happened += 1;
            } else {
                stats.unacked_that_did_not += 1;
            }
        }
        let (status, _) = get_digest(node.api, &name);
        assert_eq!(
            status, 404,
            "{name:?} is not listed, yet GET answers {status}"
        );
        model.files.insert(name.clone(), BTreeSet::from([None]));
        model.read_back.remove(&name);
        model.acked_cid.remove(&name);
    }

    let unnamed = objects
        .into_keys()
        .filter(|cid| !named.contains(cid))
        .collect();
    Seen {
        files: listed.len(),
        named,
        unnamed,
    }
}

/// Checks what a restart found against what the last round's kill `cut`:
/// the objects of deleted files it `swept`, and `now`, the objects no entry
/// names, against those that waited before (`unnamed`, which it updates).
fn check_leftovers(
    when: &str,
    cut: &Cut,
    swept: usize,
    unnamed: &mut BTreeSet<String>,
    now: &BTreeSet<String>,
    stats: &mut Stats,
) {
    assert!(
        swept == 0 || !cut.deletes.is_empty(),
        "{when}: {swept} objects of deleted files were removed at start, though the last \
         kill cut no delete (it cut {})",
        describe(&cut.stores)
    );
    if swept > 0 {
        stats.swept_at_start += swept;
        *stats.swept_after.entry(describe(&cut.deletes)).or_default() += swept;
    }
    // Only the collector removes them, and the node's waits out a grace
    // period longer than this test.
    let gone: Vec<&String> = unnamed.difference(now).collect();
    assert!(
        gone.is_empty(),
        "{when}: objects no entry names went without a collector run: {gone:?}"
    );
    let new: Vec<&String> = now.difference(unnamed).collect();
    assert!(
        new.is_empty() || !cut.stores.is_empty(),
        "{when}: {} objects no entry names appeared, though the last kill cut no store \
         (it cut {}): {new:?}",
        new.len(),
        describe(&cut.deletes)
    );
    if !new.is_empty() {
        stats.unnamed_left += new.len();
        *stats
            .unnamed_after
            .entry(describe(&cut.stores))
            .or_default() += new.len();
    }
    stats.unnamed_most = stats.unnamed_most.max(now.len());
    unnamed.clone_from(now);
}

/// Why the collector, on the stopped single node at `data` holding `files`
/// files, would keep all of the `unnamed` objects, if it would.
fn collector_keeps_all(
    data: &Path,
    files: usize,
    unnamed: &BTreeSet<String>,
) -> Option<&'static str> {
    let store = data.join("store");
    let roots = unnamed
        .iter()
        .filter(|cid| {
            let mut prefix = Vec::new();
            fs::File::open(object_path(&store, cid))
                .and_then(|f| f.take(8).read_to_end(&mut prefix))
                .map_or(true, |_| nexnet::server::manifest::starts_a_file(&prefix))
        })
        .count();
    if roots > COLLECTOR_TRUSTS.max(files / 10) {
        return Some("more unnamed files than its guard trusts to be crash garbage");
    }
    // No member, no entry, no tombstone: a catalog lost beside its store
    // looks just the same.
    if files == 0 && entries_in(&data.join("catalog/tombstones")).is_empty() {
        return Some("an empty catalog beside a store");
    }
    None
}

/// Opens the stopped node's data directory in-process with no grace period
/// (every unnamed object is old enough) and runs a full repair pass.
fn repair_in_process(data: &Path) -> RepairReport {
    block_on(async {
        let server = FileServer::open(
            ServerConfig::new(data)
                .repair_interval(None)
                .gc_grace(Duration::ZERO),
        )
        .await
        .unwrap();
        let report = server.repair().await;
        server.shutdown().await;
        report
    })
}

/// Runs the collector over the stopped node's data directory, holding
/// `seen.files` files, and checks it removed exactly the objects no entry
/// names (or, where one of its guards applies, none) and nothing else.
fn collect_stopped(
    data: &Path,
    seen: &Seen,
    unnamed: &mut BTreeSet<String>,
    hashed: &mut HashSet<FileKey>,
    stats: &mut Stats,
) {
    let refused = collector_keeps_all(data, seen.files, unnamed);
    let to_collect = if refused.is_some() { 0 } else { unnamed.len() };
    let report = repair_in_process(data);
    assert_eq!(
        (
            report.checked,
            report.quarantined,
            report.fetched,
            report.problems,
            report.collected
        ),
        (seen.files, 0, 0, 0, to_collect),
        "a repair pass over {} unnamed objects (kept: {refused:?}): {report:?}",
        unnamed.len()
    );
    stats.collector_runs += 1;
    stats.collected += report.collected;
    if let Some(why) = refused {
        *stats.collector_kept_all.entry(why).or_default() += 1;
    } else {
        unnamed.clear();
    }
    let left: BTreeSet<String> = walk_objects(&data.join("store"), hashed, stats)
        .into_keys()
        .collect();
    let expected: BTreeSet<String> = seen.named.union(unnamed).cloned().collect();
    assert_eq!(
        left, expected,
        "the objects after a collector run (kept: {refused:?})"
    );
}

// ---------------------------------------------------------------------------
// Operations, each ending with the node killed
// ---------------------------------------------------------------------------

/// When the node dies during a store.
#[derive(Clone, Copy, Debug)]
enum StoreKill {
    /// Headers sent, no body byte.
    BeforeBody,
    /// After this many body bytes.
    MidBody(u64),
    /// This long after the last body byte (in the commit window).
    AfterLastByte(Duration),
    /// As soon as the 201 is read.
    AfterAck,
}

/// When the node dies during a delete.
#[derive(Clone, Copy, Debug)]
enum DeleteKill {
    /// This long after the request was sent.
    After(Duration),
    AfterAck,
}

/// A `201` body's cid.
fn created_cid(status: u16, body: &[u8], name: &str) -> String {
    let text = String::from_utf8_lossy(body);
    assert_eq!(status, 201, "PUT {name:?}: {text}");
    let put: Value = serde_json::from_slice(body).unwrap();
    put["cid"].as_str().unwrap().to_string()
}

/// Stores `c` under `name` and kills the node at `when`. Returns what the
/// client learnt, whether the whole body went out, and (for an answer) how
/// long after the last byte it came.
fn store_then_kill(
    node: &mut Node,
    name: &str,
    c: Content,
    when: StoreKill,
) -> (Outcome, bool, Option<Duration>) {
    let mut s = connect(node.api).unwrap();
    send_head(&mut s, "PUT", &format!("/v1/files/{name}"), Some(c.len)).unwrap();
    let mut body = Pattern::new(c.seed, c.len);
    match when {
        StoreKill::BeforeBody => {
            kill(node);
            return (Outcome::Unknown, false, None);
        }
        StoreKill::MidBody(at) => {
            send_body(&mut s, &mut body, at).unwrap();
            kill(node);
            return (Outcome::Unknown, false, None);
        }
        _ => send_body(&mut s, &mut body, c.len).unwrap(),
    }
    let last_byte = Instant::now();
    match when {
        StoreKill::AfterLastByte(delay) => {
            // Not a synchronisation: the kill lands at a random moment of
            // the commit (fsync, rename, catalog), whatever it is doing.
            thread::sleep(delay);
            kill(node);
            // The node may have answered before it died.
            match read_response(s) {
                Ok((status, body)) => {
                    let cid = created_cid(status, &body, name);
                    (Outcome::Acked(Some(cid)), true, None)
                }
                Err(_) => (Outcome::Unknown, true, None),
            }
        }
        StoreKill::AfterAck => {
            let (status, body) = read_response(s).unwrap();
            let took = last_byte.elapsed();
            kill(node);
            let cid = created_cid(status, &body, name);
            (Outcome::Acked(Some(cid)), true, Some(took))
        }
        _ => unreachable!(),
    }
}

/// A whole store on its own connection, for a side store running beside
/// the main one; the node may die under it.
fn store_whole(api: SocketAddr, name: String, c: Content) -> Outcome {
    let attempt = || -> io::Result<(u16, Vec<u8>)> {
        let mut s = connect(api)?;
        send_head(&mut s, "PUT", &format!("/v1/files/{name}"), Some(c.len))?;
        send_body(&mut s, &mut Pattern::new(c.seed, c.len), c.len)?;
        read_response(s)
    };
    match attempt() {
        Ok((status, body)) => Outcome::Acked(Some(created_cid(status, &body, &name))),
        Err(_) => Outcome::Unknown,
    }
}

fn delete_then_kill(node: &mut Node, name: &str, when: DeleteKill) -> Outcome {
    let mut s = connect(node.api).unwrap();
    send_head(&mut s, "DELETE", &format!("/v1/files/{name}"), None).unwrap();
    match when {
        DeleteKill::After(delay) => {
            // As above: a random moment, not a synchronisation.
            thread::sleep(delay);
            kill(node);
            match read_response(s) {
                Ok((status, body)) => {
                    assert_eq!(
                        status,
                        200,
                        "DELETE {name:?}: {}",
                        String::from_utf8_lossy(&body)
                    );
                    Outcome::Acked(None)
                }
                Err(_) => Outcome::Unknown,
            }
        }
        DeleteKill::AfterAck => {
            let (status, body) = read_response(s).unwrap();
            assert_eq!(
                status,
                200,
                "DELETE {name:?}: {}",
                String::from_utf8_lossy(&body)
            );
            kill(node);
            Outcome::Acked(None)
        }
    }
}

/// Temp files a dead node left (the next start must sweep them).
fn temp_files(data: &Path) -> usize {
    entries_in(&data.join("store/tmp")).len() + entries_in(&data.join("catalog/tmp")).len()
}

// ---------------------------------------------------------------------------
// The loop
// ---------------------------------------------------------------------------

#[test]
fn crash_loop() {
    let seed = env_u64("NEXNET_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let rounds = env_u64("NEXNET_CRASH_ROUNDS").unwrap_or(50) as usize;
    println!(
        "crash loop: seed {seed} (NEXNET_CRASH_SEED={seed} repeats its random choices), {rounds} rounds"
    );
    eprintln!("crash loop: seed {seed}, {rounds} rounds");
    let started = Instant::now();
    let mut rng = Rng(seed);

    let (root, data) = node_dir();
    let mut model = Model::default();
    let mut stats = Stats::default();
    let mut hashed = HashSet::new();
    let mut next_name = 0u64;
    // How long a store takes from its last byte to its answer; kills in
    // the commit window are drawn from 0 to 1.5 times this.
    let mut commit_time = Duration::from_millis(60);
    // What the last round's kill cut short.
    let mut cut = Cut::default();
    // The objects no entry names, from one restart to the next: only the
    // collector may remove them.
    let mut unnamed = BTreeSet::new();

    for round in 0..rounds {
        stats.rounds += 1;
        let mut node = serve(&data);
        let seen = check_node(&node, &mut model, &mut stats, &mut hashed, false);
        let swept = deleted_objects_swept_at_start(&node);
        let when = format!("round {round}");
        check_leftovers(&when, &cut, swept, &mut unnamed, &seen.unnamed, &mut stats);

        // The collector, over what the kills left, before its guard would
        // keep them all. Drawn every round, so the choices that follow do
        // not depend on what the kills left.
        let now_and_then = rng.percent(25);
        if !unnamed.is_empty() && (unnamed.len() > COLLECT_ABOVE || now_and_then) {
            eprintln!(
                "round {round}: collector over {} unnamed objects",
                unnamed.len()
            );
            kill(&mut node);
            collect_stopped(&data, &seen, &mut unnamed, &mut hashed, &mut stats);
            node = serve(&data);
            let swept = deleted_objects_swept_at_start(&node);
            assert_eq!(
                swept, 0,
                "{when}: objects of deleted files swept at the start after a collector run"
            );
        }

        cut = Cut::default();
        // A side store runs beside the main operation now and then.
        let side = rng.percent(25).then(|| {
            let name = format!("crash/side-{}", rng.range(0, 3));
            let c = Content {
                seed: rng.next_u64(),
                len: rng.range(64 * 1024, 8 * MIB),
            };
            let api = node.api;
            let n = name.clone();
            (name, c, thread::spawn(move || store_whole(api, n, c)))
        });

        let live = model.live();
        let big_live: Vec<&String> = live.iter().filter(|n| n.starts_with("crash/big")).collect();
        if !big_live.is_empty() && rng.percent(15) {
            let name = big_live[rng.range(0, big_live.len() as u64 - 1) as usize].clone();
            let when = if rng.percent(30) {
                DeleteKill::AfterAck
            } else {
                DeleteKill::After(Duration::from_micros(rng.range(0, 20_000)))
            };
            eprintln!("round {round}: delete {name:?}, kill {when:?}");
            let outcome = delete_then_kill(&mut node, &name, when);
            match &outcome {
                Outcome::Acked(_) => stats.acked_deletes += 1,
                Outcome::Unknown => {
                    stats.kills_during_delete += 1;
                    cut.deletes.push("an unanswered delete");
                }
            }
            model.deleted(&name, &outcome);
        } else {
            // Replace a file (always once five are live), or a new name.
            let name = if !big_live.is_empty() && (big_live.len() >= 5 || rng.percent(50)) {
                big_live[rng.range(0, big_live.len() as u64 - 1) as usize].clone()
            } else {
                next_name += 1;
                format!("crash/big-{next_name}")
            };
            let replaces = model.current(&name).iter().any(Option::is_some);
            let c = Content {
                seed: rng.next_u64(),
                len: rng.range(16 * MIB, 48 * MIB),
            };
            let when = match rng.range(0, 99) {
                0..10 => StoreKill::BeforeBody,
                10..45 => StoreKill::MidBody(rng.range(1, c.len - 1)),
                45..75 => {
                    let most = commit_time.as_micros() as u64 * 3 / 2;
                    StoreKill::AfterLastByte(Duration::from_micros(rng.range(0, most)))
                }
                _ => StoreKill::AfterAck,
            };
            eprintln!(
                "round {round}: store {name:?} ({} bytes), kill {when:?}",
                c.len
            );
            let (outcome, complete, took) = store_then_kill(&mut node, &name, c, when);
            if let Some(took) = took {
                commit_time = took;
            }
            let unanswered = matches!(outcome, Outcome::Unknown);
            match when {
                // No body byte: nothing to write.
                StoreKill::BeforeBody => stats.kills_before_body += 1,
                StoreKill::MidBody(_) => {
                    stats.kills_mid_body += 1;
                    cut.stores.push("a store cut mid-body");
                }
                StoreKill::AfterLastByte(_) => {
                    stats.kills_after_last_byte += 1;
                    if unanswered {
                        cut.stores.push("a store cut after its last byte");
                        if replaces {
                            cut.deletes
                                .push("the removal of the version a store cut after its last byte replaced");
                        }
                    } else {
                        stats.answered_before_kill += 1;
                    }
                }
                StoreKill::AfterAck => stats.kills_after_ack += 1,
            }
            if !unanswered {
                stats.acked_stores += 1;
            }
            model.stored(&name, c, &outcome, complete);
        }

        if let Some((name, c, handle)) = side {
            stats.side_stores += 1;
            let replaces = model.current(&name).iter().any(Option::is_some);
            let outcome = handle.join().unwrap();
            eprintln!(
                "round {round}: side store {name:?} ({} bytes): {outcome:?}",
                c.len
            );
            if matches!(outcome, Outcome::Acked(_)) {
                stats.acked_stores += 1;
            } else {
                // It may have been anywhere, its commit included.
                cut.stores.push("an unanswered side store");
                if replaces {
                    cut.deletes
                        .push("the removal of the version an unanswered side store replaced");
                }
            }
            model.stored(&name, c, &outcome, true);
        }
        stats.temp_files_left_by_kills += temp_files(&data);
    }

    // The last restart: everything read back whole, and the node works.
    let node = serve(&data);
    let seen = check_node(&node, &mut model, &mut stats, &mut hashed, true);
    let swept = deleted_objects_swept_at_start(&node);
    check_leftovers(
        "the last restart",
        &cut,
        swept,
        &mut unnamed,
        &seen.unnamed,
        &mut stats,
    );
    let fresh = root.path().join("fresh.bin");
    write_pattern(&fresh, 7, 3 * MIB + 5);
    node.run(&["put", path_str(&fresh), "--name", "crash/fresh"])
        .ok();
    let out = root.path().join("fresh.out");
    node.run(&["get", "crash/fresh", "-o", path_str(&out)]).ok();
    assert_pattern_file(&out, 7, 3 * MIB + 5);
    node.run(&["rm", "crash/fresh"]).ok();
    assert_eq!(get_digest(node.api, "crash/fresh").0, 404);
    drop(node);
    // An acknowledged store and delete leave nothing behind.
    let left: BTreeSet<String> = walk_objects(&data.join("store"), &mut hashed, &mut stats)
        .into_keys()
        .collect();
    let held: BTreeSet<String> = seen.named.union(&unnamed).cloned().collect();
    assert_eq!(left, held, "the objects after a fresh put and rm");

    // The stopped node's data directory, opened in-process.
    let live: BTreeMap<String, Content> = model
        .files
        .iter()
        .filter_map(|(n, s)| Some((n.clone(), (*s.first()?)?)))
        .collect();
    // Past one of its guards the collector keeps every unnamed object, by
    // design: then it must remove none, and they are all still there after.
    let refused = collector_keeps_all(&data, live.len(), &unnamed);
    let to_collect = if refused.is_some() { 0 } else { unnamed.len() };
    let verified: BTreeSet<String> = block_on(async {
        let server = FileServer::open(
            ServerConfig::new(&data)
                .repair_interval(None)
                .gc_grace(Duration::ZERO),
        )
        .await
        .unwrap();
        let files = server.list().await.unwrap();
        let names: BTreeMap<String, u64> = files
            .iter()
            .map(|f| (f.name.clone().unwrap(), f.size))
            .collect();
        let expected: BTreeMap<String, u64> =
            live.iter().map(|(n, c)| (n.clone(), c.len)).collect();
        assert_eq!(names, expected, "the catalog opened in-process");
        // Nothing to repair (deleted files' objects whose delete was cut
        // off were removed as the node started); only the unnamed objects
        // to collect.
        let report = server.repair().await;
        assert_eq!(
            (
                report.checked,
                report.quarantined,
                report.fetched,
                report.problems,
                report.collected
            ),
            (live.len(), 0, 0, 0, to_collect),
            "a repair pass over the restarted node, {} unnamed objects of {} \
             (kept: {refused:?}): {report:?}",
            unnamed.len(),
            held.len()
        );
        for (name, c) in &live {
            let reader = server.get(name).await.unwrap();
            let got = digest_async_reader(reader).await.unwrap();
            assert_eq!(got, model.digest(*c), "{name:?} read in-process");
        }
        server.shutdown().await;
        drop(server);

        let store = ObjectStore::open(data.join("store")).await.unwrap();
        let mut cids = BTreeSet::new();
        let mut list = store.list();
        while let Some(cid) = futures::StreamExt::next(&mut list).await {
            let cid = cid.unwrap();
            store.verify(&cid).await.unwrap();
            cids.insert(cid.to_hex());
        }
        cids
    });
    stats.collector_runs += 1;
    stats.collected += to_collect;
    if let Some(why) = refused {
        *stats.collector_kept_all.entry(why).or_default() += 1;
    } else {
        unnamed.clear();
    }
    let expected: BTreeSet<String> = seen.named.union(&unnamed).cloned().collect();
    assert_eq!(
        verified, expected,
        "objects in the store after the repair pass (kept: {refused:?})"
    );

    assert_eq!(stats.lost, 0);
    println!(
        "crash loop: seed {seed}: {} rounds, one kill -9 each ({} before the body, {} mid-body, \
         {} after the last byte ({} of which answered first), {} right after the ack, \
         {} during a delete, {} after an acknowledged delete); {} side stores; \
         {} stores and {} deletes acknowledged; unacknowledged operations: {} happened, \
         {} did not; {} acknowledged-file checks, {} full reads; {} object files hashed, \
         {} objects verified in-process at the end; {} temp files left by kills \
         (all swept at restart); {} objects no entry names left by kills (at most {} at once), \
         after: {:?}; {} collector runs removed {} (runs that kept them all, by why: {:?}); \
         {} objects of deleted files removed at restarts, after: {:?}; \
         {} empty directories seen; lost: {}; \
         took {:.1?}",
        stats.rounds,
        stats.kills_before_body,
        stats.kills_mid_body,
        stats.kills_after_last_byte,
        stats.answered_before_kill,
        stats.kills_after_ack,
        stats.kills_during_delete,
        stats.acked_deletes,
        stats.side_stores,
        stats.acked_stores,
        stats.acked_deletes,
        stats.unacked_that_happened,
        stats.unacked_that_did_not,
        stats.acked_files_checked,
        stats.full_reads,
        stats.objects_hashed,
        verified.len(),
        stats.temp_files_left_by_kills,
        stats.unnamed_left,
        stats.unnamed_most,
        stats.unnamed_after,
        stats.collector_runs,
        stats.collected,
        stats.collector_kept_all,
        stats.swept_at_start,
        stats.swept_after,
        stats.empty_dirs.len(),
        stats.lost,
        started.elapsed(),
    );
}

// ---------------------------------------------------------------------------
// A delete cut off between its tombstone and the rest
// ---------------------------------------------------------------------------

/// The one file in `dir`.
fn only_file(dir: &Path) -> PathBuf {
    let list = entries_in(dir);
    assert_eq!(list.len(), 1, "{}: {list:?}", dir.display());
    list.into_iter().next().unwrap()
}

/// The path of every object file under `store/objects`.
fn object_files(data: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![data.join("store/objects")];
    while let Some(dir) = stack.pop() {
        for p in entries_in(&dir) {
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn interrupted_delete_is_finished_at_restart() {
    let (root, data) = node_dir();
    let mut node = serve(&data);
    let file = root.path().join("victim");
    write_pattern(&file, 3, 100_000);
    node.run(&["put", path_str(&file)]).ok();

    // What a delete removes after writing its tombstone: the entry, the
    // chunk and the root. Keep copies, delete, and put them back while the
    // node is down: the state of a kill right after the tombstone was
    // written.
    let entry = only_file(&data.join("catalog/entries"));
    let objects: Vec<(PathBuf, Vec<u8>)> = object_files(&data)
        .into_iter()
        .map(|p| {
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    let paths: Vec<&PathBuf> = objects.iter().map(|(p, _)| p).collect();
    assert_eq!(paths.len(), 2, "a root and one chunk: {paths:?}");
    let saved_entry = fs::read(&entry).unwrap();
    node.run(&["rm", "victim"]).ok();
    kill(&mut node);
    assert!(!entries_in(&data.join("catalog/tombstones")).is_empty());
    assert!(object_files(&data).is_empty(), "{:?}", object_files(&data));
    fs::write(&entry, saved_entry).unwrap();
    for (path, bytes) in &objects {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    // The start finishes the delete: the root is tombstoned, and its
    // manifest names the chunk.
    let node = serve(&data);
    assert_eq!(
        deleted_objects_swept_at_start(&node),
        2,
        "objects of the deleted file removed at start"
    );
    assert!(object_files(&data).is_empty(), "{:?}", object_files(&data));
    // The deleted file stays deleted: not listed, not served.
    let listed = listing(node.api);
    assert!(
        !listed.contains_key("victim"),
        "a file whose delete wrote its tombstone is listed again: {listed:?}"
    );
    assert_eq!(get_digest(node.api, "victim").0, 404);

    // The name can be used again, and deleted again.
    write_pattern(&file, 4, 200_000);
    node.run(&["put", path_str(&file)]).ok();
    let (status, got) = get_digest(node.api, "victim");
    assert_eq!((status, got), (200, Some(pattern_digest(4, 200_000))));
    node.run(&["rm", "victim"]).ok();
    assert!(listing(node.api).is_empty(), "deleted twice, still listed");
    assert_eq!(get_digest(node.api, "victim").0, 404);
    drop(node);

    // The second delete left nothing either; a repair pass (collector
    // included, with no grace period) finds nothing left to do.
    assert!(object_files(&data).is_empty(), "{:?}", object_files(&data));
    let report = repair_in_process(&data);
    assert_eq!(
        (report.checked, report.problems, report.collected),
        (0, 0, 0),
        "{report:?}"
    );
    assert!(object_files(&data).is_empty(), "{:?}", object_files(&data));
}
