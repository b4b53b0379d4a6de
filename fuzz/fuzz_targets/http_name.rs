//! File names in URLs: `name_from_url_path` (what `nexnet serve` does with
//! the path after `/v1/files/`) and `url_path_for_name` (what the client
//! puts there), both from the `nexnet` package's `url_names`.
//!
//! Input: arbitrary bytes, read as text (lossily when not UTF-8), used both
//! as a raw URL path and as a name.
//!
//! Invariants:
//! - decoding agrees with a decoder written here from the rules (`%` and two
//!   hex digits is a byte, anything else is itself; the bytes must be
//!   UTF-8; the name must pass `check_name`), refusing with `InvalidName`;
//! - a decoded name passes `check_name`, and its encoding decodes to it;
//! - any valid name encodes to unreserved characters and `%XX` only, which
//!   survive the client's URL building (`url::Url::set_path`) and the
//!   server's URI parsing (`http::Uri`) unchanged, and decode to the name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nexnet::url_names::{name_from_url_path, url_path_for_name};
use nexnet_server::{MAX_NAME_LEN, ServerError, check_name};

/// The decoding rules, spelled out independently: `None` for a malformed
/// escape, `Some(Err)` for bytes that are not UTF-8.
fn reference_decode(raw: &str) -> Option<Result<String, ()>> {
    let bytes = raw.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(String::from_utf8(out).map_err(|_| ()))
}

/// A valid name's trip through the client and the server.
fn check_encoding(name: &str) {
    let encoded = url_path_for_name(name);
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
        "{encoded:?}"
    );
    assert!(encoded.len() <= 3 * name.len());
    assert_eq!(name_from_url_path(&encoded).ok().as_deref(), Some(name));

    // The client: `Url::set_path` keeps it as it is.
    let path = format!("/v1/files/{encoded}");
    let mut url = url::Url::parse("http://127.0.0.1:5001/").expect("a base URL");
    url.set_path(&path);
    assert_eq!(url.path(), path, "the client's URL changed {name:?}");
    assert_eq!(url.query(), None);
    // The server: hyper's URI, then axum's route prefix.
    let uri: http::Uri = url.as_str().parse().expect("hyper takes the client's URL");
    assert_eq!(uri.path(), path);
    assert_eq!(
        name_from_url_path(uri.path().strip_prefix("/v1/files/").expect("the prefix"))
            .ok()
            .as_deref(),
        Some(name)
    );
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    // As a raw path.
    match name_from_url_path(&text) {
        Ok(name) => {
            assert_eq!(reference_decode(&text), Some(Ok(name.clone())));
            assert!(check_name(&name).is_ok());
            check_encoding(&name);
        }
        Err(ServerError::InvalidName { reason }) => {
            if text.len() <= 3 * MAX_NAME_LEN {
                match reference_decode(&text) {
                    None => assert!(reason.contains("hex digits"), "{reason}"),
                    Some(Err(())) => assert!(reason.contains("UTF-8"), "{reason}"),
                    Some(Ok(name)) => assert!(check_name(&name).is_err(), "{name:?}: {reason}"),
                }
            } else {
                assert!(reason.contains("1024"), "{reason}");
            }
        }
        Err(other) => panic!("{other:?}"),
    }

    // As a name.
    if check_name(&text).is_ok() {
        check_encoding(&text);
    } else {
        // An invalid name is refused however it is sent.
        assert!(name_from_url_path(&url_path_for_name(&text)).is_err());
    }
});
