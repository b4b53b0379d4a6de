//! Content ids from arbitrary text and bytes: `Cid::from_str` (what the
//! API, the CLI and the store's directory walk parse), `Cid::from_bytes`
//! (what arrives from peers), and the default `CasPath` layout.
//!
//! Input: `[width, depth, rest...]`; `rest` is parsed as text (when UTF-8)
//! and its first 20 bytes are a Cid's bytes.
//!
//! Invariants:
//! - `from_str` accepts exactly 40 lowercase hex digits, and then `to_hex`
//!   and `Display` give the same text back; a refusal is `InvalidCid` with
//!   a bounded message;
//! - any 20 bytes print as 40 lowercase hex digits that parse back;
//! - `CasPath::new(width, depth)` cuts the hex into plain relative levels
//!   (no `..`, no root) whose concatenation is a prefix of it, and the
//!   object's file name, as the store's directory walk reads it, parses
//!   back to the Cid.
#![no_main]

mod common;

use std::path::Component;

use libfuzzer_sys::fuzz_target;
use nexnet_store::{CID_HEX_LEN, CID_LEN, CasPath, Cid, PathTransform, StoreError};

fn check_text(text: &str) {
    let is_cid =
        text.len() == CID_HEX_LEN && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    match text.parse::<Cid>() {
        Ok(cid) => {
            assert!(is_cid, "{text:?} accepted");
            assert_eq!(cid.to_hex(), text);
            assert_eq!(cid.to_string(), text);
            assert_eq!(format!("{cid:?}"), format!("Cid({text})"));
        }
        Err(StoreError::InvalidCid { input, .. }) => {
            assert!(!is_cid, "{text:?} refused");
            assert!(input.chars().count() <= 64, "error carries the whole input");
        }
        Err(other) => panic!("{text:?}: {other:?}"),
    }
}

fn check_layout(cid: &Cid, width: u8, depth: u8) {
    let hex = cid.to_hex();
    let layout = CasPath::new(usize::from(width % 48), usize::from(depth % 48));
    let dir = layout.dir_of(cid);
    let mut joined = String::new();
    for component in dir.components() {
        let Component::Normal(level) = component else {
            panic!("{dir:?} leaves the objects directory");
        };
        let level = level.to_str().expect("hex is UTF-8");
        assert!(!level.is_empty() && level.len() <= usize::from(width % 48));
        joined.push_str(level);
    }
    assert!(hex.starts_with(&joined), "{dir:?} is not a cut of {hex}");
    let expected = (usize::from(width % 48) * usize::from(depth % 48)).min(CID_HEX_LEN);
    assert_eq!(joined.len(), expected);
    let file = dir.join(&hex);
    assert_eq!(
        file.file_name()
            .and_then(|n| n.to_str())
            .map(str::parse::<Cid>)
            .and_then(Result::ok),
        Some(*cid)
    );
    assert!(layout.id().starts_with("cas:"));
}

fuzz_target!(|data: &[u8]| {
    let ([width, depth], rest) = common::split_control::<2>(data);
    if let Ok(text) = std::str::from_utf8(rest) {
        check_text(text);
    }
    let mut bytes = [0u8; CID_LEN];
    let n = rest.len().min(CID_LEN);
    bytes[..n].copy_from_slice(&rest[..n]);
    let cid = Cid::from_bytes(bytes);
    assert_eq!(cid.as_bytes(), &bytes);
    let hex = cid.to_hex();
    assert_eq!(hex.len(), CID_HEX_LEN);
    assert_eq!(hex.parse::<Cid>().ok(), Some(cid));
    check_layout(&cid, width, depth);
    // The same text with one character upper-cased is refused.
    if let Some(at) = hex.find(|c: char| c.is_ascii_lowercase()) {
        let mut upper = hex.clone();
        upper[at..=at].make_ascii_uppercase();
        assert!(upper.parse::<Cid>().is_err());
    }
});
