//! File names: what a valid name is.
//!
//! A name is UTF-8, 1 to [`MAX_NAME_LEN`] bytes, without control
//! characters, and neither `.` nor `..` ([`check_name`]). How a name
//! travels in an HTTP URL is the `nexnet` package's business (its
//! `url_names` module).

use crate::{Result, ServerError};

/// The longest file name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 1024;

/// Checks a file name the way every node does: UTF-8 (by type), 1 to 1024
/// bytes, no control characters, and not `.` or `..`. Clients can call it
/// to refuse a name before any transfer.
pub fn check_name(name: &str) -> Result<()> {
    let bad = |reason| Err(ServerError::InvalidName { reason });
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("longer than 1024 bytes");
    }
    if name.chars().any(char::is_control) {
        return bad("contains control characters");
    }
    // URLs resolve these as path steps, so no HTTP client could name them.
    if name == "." || name == ".." {
        return bad("\".\" and \"..\" are not names");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_say_why() {
        let long = "n".repeat(MAX_NAME_LEN + 1);
        for (name, why) in [
            ("", "empty"),
            ("\0", "control"),
            ("a\nb", "control"),
            ("\u{85}", "control"),
            (".", "are not names"),
            ("..", "are not names"),
            (&long, "1024"),
        ] {
            match check_name(name) {
                Err(ServerError::InvalidName { reason }) => {
                    assert!(reason.contains(why), "{name:?}: {reason}");
                }
                other => panic!("{name:?}: {other:?}"),
            }
        }
        let longest = "n".repeat(MAX_NAME_LEN);
        for name in ["...", "./x", "üñíçødé/日本語/🦀", &longest] {
            assert!(check_name(name).is_ok(), "{name:?}");
        }
    }
}
