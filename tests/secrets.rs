//! What a node keeps private, checked on real `nexnet serve` processes:
//!
//! - no plaintext at rest: after a file with a recognisable pattern (and a
//!   recognisable name) is stored on a three-node mesh and read back on
//!   another node, no file under any node's data directory — the
//!   originator's included — contains the pattern or the name, and no path
//!   does either;
//! - the data key and network secret are created owner-only, and a node
//!   refuses to start on a key or secret that others can read;
//! - no key or secret bytes appear in the logs, at `trace` level, in text
//!   or JSON, across a handshake, put, get, ls and rm.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use common::*;

/// Repeated to make the canary file; any 16 bytes of it are recognisable.
const CANARY: &[u8] = b"nexnet-plaintext-canary:0123456789abcdef|";
const NAME: &str = "plans/canary-report-7f3a.txt";

fn canary(len: usize) -> Vec<u8> {
    CANARY.iter().copied().cycle().take(len).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                todo.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out
}

#[test]
fn no_plaintext_at_rest_on_any_node() {
    let root = tempfile::tempdir().unwrap();
    let nodes = cluster(root.path(), 3, &[]);
    let big = root.path().join("big");
    let small = root.path().join("small");
    fs::write(&big, canary(3 << 20)).unwrap();
    fs::write(&small, canary(100)).unwrap();
    nodes[0].run(&["put", path_str(&big), "--name", NAME]).ok();
    nodes[0]
        .run(&["put", path_str(&small), "--name", "small-canary"])
        .ok();
    // Read back on another node (a fetch path of its own), to a file
    // outside every data directory.
    let out = root.path().join("out");
    nodes[1].run(&["get", NAME, "-o", path_str(&out)]).ok();
    assert!(fs::read(&out).unwrap() == canary(3 << 20));

    // The pattern at every offset modulo its period, and the name's
    // distinctive part.
    let needles: Vec<&[u8]> = (0..CANARY.len())
        .map(|i| &CANARY[i..(i + 16).min(CANARY.len())])
        .filter(|n| n.len() == 16)
        .chain([b"canary-report-7f3a".as_slice(), b"small-canary".as_slice()])
        .collect();
    let (mut scanned, mut bytes, mut objects) = (0, 0u64, 0);
    for node in &nodes {
        for path in files_under(&node.data) {
            let shown = path.display().to_string();
            assert!(!shown.contains("canary"), "a path names the file: {shown}");
            let data = fs::read(&path).unwrap();
            for needle in &needles {
                assert!(
                    !contains(&data, needle),
                    "{shown} holds {:?} in the clear",
                    String::from_utf8_lossy(needle)
                );
            }
            scanned += 1;
            bytes += data.len() as u64;
            // A whole chunk of the big file.
            if data.len() == 1 << 20 {
                objects += 1;
            }
        }
    }
    // Each node keeps an encrypted copy of the big file's three chunks:
    // the scan saw them.
    assert!(objects >= 9, "only {objects} whole chunks scanned");
    eprintln!("scanned {scanned} files, {bytes} bytes, on 3 nodes: no plaintext");
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn key_and_secret_are_owner_only_and_loose_modes_are_refused() {
    let (_root, dir) = node_dir();
    let key = dir.join(nexnet::server::KEY_FILE);
    let secret = dir.join(nexnet::server::SECRET_FILE);
    assert_eq!(mode(&key), 0o600, "data key");
    assert_eq!(mode(&secret), 0o600, "network secret");
    for file in [&key, &secret] {
        for loose in [0o644, 0o640, 0o604, 0o660] {
            fs::set_permissions(file, fs::Permissions::from_mode(loose)).unwrap();
            let out = run(&[
                "serve",
                "--data",
                path_str(&dir),
                "--listen",
                "127.0.0.1:0",
                "--api",
                "127.0.0.1:0",
            ]);
            // The node's logs may come first; the error is the last line.
            assert_eq!(out.code(), Some(1), "{out:#?}");
            let line = out.stderr.trim_end().lines().last().unwrap_or_default();
            assert!(line.starts_with("error: "), "{out:#?}");
            assert!(
                line.contains("chmod 600") && line.contains(path_str(file)),
                "mode {loose:o} on {}: {line}",
                file.display()
            );
        }
        fs::set_permissions(file, fs::Permissions::from_mode(0o600)).unwrap();
    }
    // Fixed: it starts.
    let node = Node::start(&dir, &[]);
    node.status();
}

/// The 32 bytes of a hex key or secret file.
fn secret_bytes(path: &Path) -> Vec<u8> {
    let text = fs::read_to_string(path).unwrap();
    let hex = text.trim();
    assert_eq!(hex.len(), 64, "{} is not 32 bytes of hex", path.display());
    (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Any 8 bytes of `secret`, as lower- and upper-case hex and raw: a log
/// that holds even part of it fails.
fn leaks(secret: &[u8]) -> Vec<Vec<u8>> {
    let hex = to_hex(secret);
    let mut out = Vec::new();
    for i in 0..=secret.len() - 8 {
        let part = &hex[2 * i..2 * i + 16];
        out.push(part.as_bytes().to_vec());
        out.push(part.to_uppercase().into_bytes());
        out.push(secret[i..i + 8].to_vec());
    }
    // Rust's Debug of a byte array: "[12, 34, ...".
    let debug = format!("{:?}", &secret[..8]);
    out.push(debug.trim_end_matches(']').as_bytes().to_vec());
    out
}

#[test]
fn no_key_or_secret_in_logs_at_any_level() {
    let root = tempfile::tempdir().unwrap();
    let first = root.path().join("node1");
    let second = root.path().join("node2");
    let said_by_init = [run(&["init", "--data", path_str(&first)]), {
        let key = first.join(nexnet::server::KEY_FILE);
        let secret = first.join(nexnet::server::SECRET_FILE);
        run(&[
            "init",
            "--data",
            path_str(&second),
            "--key-file",
            path_str(&key),
            "--secret-file",
            path_str(&secret),
        ])
    }];
    let start = |data: &Path, extra: &[&str]| {
        let mut cmd = nexnet();
        cmd.env("RUST_LOG", "trace")
            .args(["serve", "--data", path_str(data)])
            .args(["--listen", "127.0.0.1:0", "--api", "127.0.0.1:0"])
            .args(extra);
        Node::launch(cmd, data)
    };
    let a = start(&first, &[]);
    let bootstrap = a.peers.to_string();
    let b = start(
        &second,
        &["--bootstrap", &bootstrap, "--log-format", "json"],
    );
    a.wait_for_peers(1);
    b.wait_for_peers(1);
    let file = root.path().join("file");
    write_pattern(&file, 7, 300_000);
    a.run(&["put", path_str(&file), "--name", "f"]).ok();
    let out = root.path().join("out");
    b.run(&["get", "f", "-o", path_str(&out)]).ok();
    b.run(&["ls", "--json"]).ok();
    a.run(&["status"]).ok();
    b.run(&["rm", "f"]).ok();
    let logs = [a.log.clone(), b.log.clone()];
    drop((a, b));

    let mut checked = Vec::new();
    for log in &logs {
        let text = fs::read(log).unwrap();
        // The filter really let everything through (the code logs little
        // at trace, much at debug): the check covers every level.
        assert!(
            contains(&text, b" DEBUG ") || contains(&text, b"\"level\":\"DEBUG\""),
            "{} has no debug lines",
            log.display()
        );
        checked.push((log.display().to_string(), text));
    }
    for out in &said_by_init {
        checked.push(("init's output".into(), out.ok().as_bytes().to_vec()));
    }
    for (what, path) in [
        ("data key", first.join(nexnet::server::KEY_FILE)),
        ("network secret", first.join(nexnet::server::SECRET_FILE)),
    ] {
        let secret = secret_bytes(&path);
        for needle in leaks(&secret) {
            for (source, text) in &checked {
                assert!(
                    !contains(text, &needle),
                    "the {what} (or part of it) appears in {source}"
                );
            }
        }
    }
    let sizes: Vec<usize> = checked.iter().map(|(_, t)| t.len()).collect();
    eprintln!(
        "checked {} outputs ({sizes:?} bytes): no key or secret",
        checked.len()
    );
}
