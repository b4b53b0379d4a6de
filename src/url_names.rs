//! File names in the HTTP API's URLs (`/v1/files/{name}`): the `nexnet`
//! binary's client encodes them and its API decodes them with these.
//!
//! In a URL path a name is percent-encoded: [`url_path_for_name`] encodes
//! every byte that is not an RFC 3986 unreserved character (`A-Z a-z 0-9 -
//! . _ ~`), slashes included, and [`name_from_url_path`] decodes what a
//! client sent (raw slashes as well as `%2F`), refusing a malformed escape
//! or bytes that are not UTF-8 instead of guessing. What a valid name is
//! stays with the node: [`check_name`].
//!
//! ```
//! use nexnet::url_names::{name_from_url_path, url_path_for_name};
//!
//! let name = "photos/cat 100%.jpg";
//! let encoded = url_path_for_name(name);
//! assert_eq!(encoded, "photos%2Fcat%20100%25.jpg");
//! assert_eq!(name_from_url_path(&encoded).unwrap(), name);
//! // A client may leave the slashes as they are.
//! assert_eq!(name_from_url_path("photos/cat%20100%25.jpg").unwrap(), name);
//! assert!(name_from_url_path("100%").is_err());
//! ```

use nexnet_server::{MAX_NAME_LEN, Result, ServerError, check_name};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Every byte but the RFC 3986 unreserved characters is escaped.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The name a URL path names: `raw` is the path after `/v1/files/`, still
/// percent-encoded, as the request line carried it. Fails with
/// [`ServerError::InvalidName`] on a `%` not followed by two hex digits, on
/// bytes that are not UTF-8 once decoded, and on any name [`check_name`]
/// refuses. `+` is a plus sign, not a space.
pub fn name_from_url_path(raw: &str) -> Result<String> {
    let bad = |reason| Err(ServerError::InvalidName { reason });
    // Each name byte takes at most three characters: refuse a huge path
    // before decoding it.
    if raw.len() > 3 * MAX_NAME_LEN {
        return bad("longer than 1024 bytes");
    }
    // `percent_decode_str` would keep a malformed escape as it is.
    let mut rest = raw.as_bytes();
    while let Some(at) = rest.iter().position(|&b| b == b'%') {
        match rest.get(at + 1..) {
            Some([hi, lo, tail @ ..]) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                rest = tail;
            }
            _ => return bad("a % that is not followed by two hex digits"),
        }
    }
    let Ok(name) = percent_decode_str(raw).decode_utf8() else {
        return bad("not UTF-8 once percent-decoded");
    };
    check_name(&name)?;
    Ok(name.into_owned())
}

/// The URL path that names `name`, to put after `/v1/files/`: every byte
/// but `A-Z a-z 0-9 - . _ ~` percent-encoded, so that `/`, `%`, `?`, `#`,
/// spaces and non-ASCII characters survive any HTTP client or proxy.
/// [`name_from_url_path`] gives the name back. `.` and `..` (which
/// [`check_name`] refuses) would still be read as path steps by URL
/// parsers.
pub fn url_path_for_name(name: &str) -> String {
    utf8_percent_encode(name, ESCAPED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(raw: &str) -> &'static str {
        match name_from_url_path(raw) {
            Err(ServerError::InvalidName { reason }) => reason,
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    #[test]
    fn names_that_need_escaping_round_trip() {
        for name in [
            "plain.txt",
            "dir/sub dir/a file.bin",
            "100%",
            "%41",
            "what?#fragment",
            "a+b=c&d;e,f",
            "üñíçødé/日本語/🦀",
            "back\\slash",
            "~user/.hidden/../x",
            "...",
            "./x",
            &"n".repeat(MAX_NAME_LEN),
        ] {
            let encoded = url_path_for_name(name);
            assert!(
                encoded
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
                "{name:?} -> {encoded:?}"
            );
            assert_eq!(name_from_url_path(&encoded).unwrap(), name, "{encoded}");
        }
        assert_eq!(url_path_for_name("a b/c%d?e#f"), "a%20b%2Fc%25d%3Fe%23f");
    }

    #[test]
    fn raw_slashes_plus_signs_and_lowercase_escapes_are_accepted() {
        assert_eq!(
            name_from_url_path("dir/sub%20dir/a").unwrap(),
            "dir/sub dir/a"
        );
        assert_eq!(name_from_url_path("a+b").unwrap(), "a+b");
        assert_eq!(name_from_url_path("%c3%a9").unwrap(), "é");
        assert_eq!(name_from_url_path("%C3%A9").unwrap(), "é");
    }

    #[test]
    fn malformed_paths_are_invalid_names() {
        for raw in ["%", "a%", "a%2", "%zz", "%%41", "%2g", "%+1", "%é1"] {
            assert!(invalid(raw).contains("hex digits"), "{raw:?}");
        }
        for raw in ["%ff", "%c3", "%c3%28", "%ed%a0%80"] {
            assert!(invalid(raw).contains("UTF-8"), "{raw:?}");
        }
        assert_eq!(invalid(""), "empty");
        assert!(invalid("%00").contains("control"));
        assert!(invalid("a%0Ab").contains("control"));
        assert!(invalid("%2E").contains("are not names"));
        assert!(invalid("%2e%2E").contains("are not names"));
        assert!(invalid(&"n".repeat(MAX_NAME_LEN + 1)).contains("1024"));
        assert!(invalid(&"%41".repeat(MAX_NAME_LEN + 1)).contains("1024"));
        assert!(invalid(&"x".repeat(1 << 20)).contains("1024"));
        // 1024 bytes, each sent as an escape: the longest valid path.
        let longest = "%41".repeat(MAX_NAME_LEN);
        assert_eq!(
            name_from_url_path(&longest).unwrap(),
            "A".repeat(MAX_NAME_LEN)
        );
    }
}
