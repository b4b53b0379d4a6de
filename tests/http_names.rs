//! File names through the whole HTTP path, end to end: names with the
//! characters a URL treats specially (`%`, `?`, `#`, `/`, `+`, `&`, `\`,
//! quotes, brackets, spaces, dots, non-ASCII) are stored, listed, read and
//! deleted under exactly that name by the `nexnet` client, and read by
//! plain HTTP with slashes encoded or not; malformed URL paths (a `%`
//! without two hex digits, bytes that are not UTF-8, control characters,
//! `.` and `..` spelled as escapes) get `400 invalid_name` from the node.
//!
//! One real `nexnet serve` on loopback (ephemeral ports, a temp data
//! directory), driven by the CLI, by reqwest, and by raw HTTP requests
//! written on a `TcpStream` so that no client library rewrites the path.
//! The node is killed and reaped when the test ends, failing or not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{
    collections::BTreeSet,
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use common::*;
use nexnet::url_names::url_path_for_name;
use serde_json::Value;

const NAMES: [&str; 9] = [
    "100% sure?.txt",
    "a#b",
    "dir/sub dir/x+y=z&w;v",
    "üñíçødé/日本語/🦀.bin",
    "back\\slash",
    "quote\"'<>`{}|^[]!$()*,:@",
    "...",
    "~tilde/./dot/../dotdot",
    "%41%2F",
];

/// Sends one raw HTTP/1.1 request for `path` and returns the status code
/// and the body.
fn raw_request(node: &Node, method: &str, path: &str) -> (u16, String) {
    let mut conn = TcpStream::connect(node.api).unwrap();
    conn.set_read_timeout(Some(DEADLINE)).unwrap();
    let body = if method == "PUT" { "x" } else { "" };
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        node.api,
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[test]
fn awkward_names_round_trip_through_the_cli_and_http() {
    let (root, dir) = node_dir();
    let node = Node::start(&dir, &[]);
    for (i, name) in NAMES.iter().enumerate() {
        let file = root.path().join(format!("file{i}"));
        write_pattern(&file, i as u64, 1000 + i as u64);
        let put = node
            .run(&["put", path_str(&file), "--name", name, "--json"])
            .json();
        assert_eq!(put["name"], *name, "{put}");
    }

    let ls = node.run(&["ls", "--json"]).json();
    let listed: BTreeSet<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, NAMES.into_iter().collect(), "{ls}");

    let out = root.path().join("out");
    for (i, name) in NAMES.iter().enumerate() {
        node.run(&["get", name, "-o", path_str(&out)]).ok();
        assert_pattern_file(&out, i as u64, 1000 + i as u64);
    }

    // Plain HTTP: the client's encoding, and the same with raw slashes
    // (as curl users write them), name the same file.
    block_on(async {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap();
        for (i, name) in NAMES.iter().enumerate() {
            let encoded = url_path_for_name(name);
            let mut paths = vec![encoded.clone()];
            // A client resolves `.` and `..` steps in a path with raw slashes.
            if !name.split('/').any(|step| step == "." || step == "..") {
                paths.push(encoded.replace("%2F", "/"));
            }
            for path in paths {
                let url = node.url(&format!("/v1/files/{path}"));
                let r = http.head(&url).send().await.unwrap();
                assert_eq!(r.status(), 200, "HEAD {url} ({name:?})");
                assert_eq!(
                    r.headers()["content-length"].to_str().unwrap(),
                    (1000 + i).to_string(),
                    "HEAD {url} ({name:?})"
                );
            }
        }
    });

    for name in NAMES {
        let rm = node.run(&["rm", name, "--json"]).json();
        assert_eq!(rm["name"], name, "{rm}");
    }
    assert_eq!(node.run(&["ls", "--json"]).json(), serde_json::json!([]));
}

#[test]
fn malformed_url_paths_are_invalid_names() {
    let (_root, dir) = node_dir();
    let node = Node::start(&dir, &[]);
    for path in [
        "%", "a%2", "%zz", "%%41", "%ff", "%c3%28", "%00", "x%0Ay", "%7F", "%2E", "%2e%2E",
    ] {
        for method in ["GET", "HEAD", "PUT", "DELETE"] {
            let (status, body) = raw_request(&node, method, &format!("/v1/files/{path}"));
            assert_eq!(status, 400, "{method} {path}: {body}");
            if method != "HEAD" {
                let e: Value = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("{method} {path}: {e}: {body:?}"));
                assert_eq!(e["code"], "invalid_name", "{method} {path}: {e}");
            }
        }
    }
    // Nothing was stored by the refused PUTs.
    assert_eq!(node.run(&["ls", "--json"]).json(), serde_json::json!([]));
    // And a well-formed one next to them works.
    let (status, body) = raw_request(&node, "PUT", "/v1/files/ok%20name");
    assert_eq!(status, 201, "{body}");
    let ls = node.run(&["ls", "--json"]).json();
    assert_eq!(ls[0]["name"], "ok name", "{ls}");
}
