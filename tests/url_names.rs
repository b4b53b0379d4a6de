//! Property tests of file names in URLs (`nexnet::url_names`): the fast,
//! always-run counterpart of the `http_name` fuzz target (`fuzz/`).
//!
//! They prove that any valid name, whatever characters it holds (`/`, `%`,
//! `?`, `#`, spaces, `+`, dots, any Unicode), survives `url_path_for_name`
//! (the client) then `name_from_url_path` (the node), with slashes encoded
//! or not; that the encoding uses only characters no HTTP client or proxy
//! rewrites; that decoding follows the rules spelled out independently here
//! (`%` + two hex digits is a byte, anything else is itself, the bytes must
//! be UTF-8, the name must pass `check_name`), refusing anything else with
//! `InvalidName`; and that an invalid name is refused however it is sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use nexnet::{
    server::{MAX_NAME_LEN, ServerError, check_name},
    url_names::{name_from_url_path, url_path_for_name},
};
use proptest::prelude::*;

/// The decoding rules: `None` for a malformed escape, `Some(Err)` for bytes
/// that are not UTF-8.
fn reference_decode(raw: &str) -> Option<Result<String, ()>> {
    let bytes = raw.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(String::from_utf8(out).map_err(|_| ()))
}

/// `encoded` with the hex digits of its escapes in lower case.
fn lower_escapes(encoded: &str) -> String {
    let mut out = String::new();
    let mut rest = encoded;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        out.push('%');
        out.push_str(&rest[at + 1..at + 3].to_ascii_lowercase());
        rest = &rest[at + 3..];
    }
    out + rest
}

/// Names with the characters that need care in a URL.
fn name() -> impl Strategy<Value = String> {
    "([a-zA-Z0-9/%?#+ .~_&=;:@!$'()*,\\[\\]{}|^`\"<>\\\\-]|\\PC){1,30}"
        .prop_filter("a valid name", |n| check_name(n).is_ok())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_names_survive_the_trip(name in name()) {
        let encoded = url_path_for_name(&name);
        prop_assert!(
            encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
            "{:?}", encoded
        );
        prop_assert_eq!(name_from_url_path(&encoded).unwrap(), name.clone());
        // As curl sends it: slashes left as they are.
        let slashes = encoded.replace("%2F", "/");
        prop_assert_eq!(name_from_url_path(&slashes).unwrap(), name.clone());
        // Escapes in lower case are the same bytes.
        let lower = lower_escapes(&encoded);
        prop_assert_eq!(name_from_url_path(&lower).unwrap(), name);
    }

    #[test]
    fn decoding_follows_the_rules(
        raw in "([a-zA-Z0-9/+ .é]|%[0-9a-fA-F]{0,2}|%[g-zG-Z]|%[89a-fA-F][0-9a-fA-F]){0,24}",
    ) {
        match name_from_url_path(&raw) {
            Ok(name) => {
                prop_assert_eq!(reference_decode(&raw), Some(Ok(name.clone())));
                prop_assert!(check_name(&name).is_ok());
                prop_assert_eq!(name_from_url_path(&url_path_for_name(&name)).unwrap(), name);
            }
            Err(ServerError::InvalidName { reason }) => match reference_decode(&raw) {
                None => prop_assert!(reason.contains("hex digits"), "{}", reason),
                Some(Err(())) => prop_assert!(reason.contains("UTF-8"), "{}", reason),
                Some(Ok(name)) => prop_assert!(check_name(&name).is_err(), "{:?}: {}", name, reason),
            },
            Err(other) => prop_assert!(false, "{}", other),
        }
    }

    #[test]
    fn invalid_names_are_refused_however_sent(
        prefix in "[a-z/%]{0,5}",
        bad in prop_oneof![
            Just("\u{0}".to_string()),
            Just("\n".to_string()),
            Just("\u{7f}".to_string()),
            Just("\u{85}".to_string()),
            Just("x".repeat(MAX_NAME_LEN + 1)),
        ],
    ) {
        let name = format!("{prefix}{bad}");
        prop_assert!(check_name(&name).is_err());
        let refused = matches!(
            name_from_url_path(&url_path_for_name(&name)),
            Err(ServerError::InvalidName { .. })
        );
        prop_assert!(refused);
    }
}

#[test]
fn dot_names_are_refused_in_every_spelling() {
    for raw in [".", "..", "%2E", "%2e", "%2E%2E", ".%2e", "%2e."] {
        assert!(
            matches!(
                name_from_url_path(raw),
                Err(ServerError::InvalidName { .. })
            ),
            "{raw}"
        );
    }
    // Longer runs of dots are names like any other.
    assert_eq!(name_from_url_path("...").unwrap(), "...");
}
