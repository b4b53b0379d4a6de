//! Property tests of content ids from text and bytes: the fast, always-run
//! counterpart of the `cid` fuzz target (`fuzz/`).
//!
//! They prove that `Cid::from_str` (what the API, the CLI and the store's
//! directory walk parse) accepts exactly 40 lowercase hex digits and gives
//! the same text back, that a refusal is an `InvalidCid` with a bounded
//! message, and that the `CasPath` layout cuts any Cid into plain relative
//! levels (no `..`, no root) that spell a prefix of it, under which the
//! object's file name parses back to the Cid. Inputs are Cids with a character
//! added, removed or replaced (by upper case, `g`, separators, non-ASCII),
//! as well as arbitrary text.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Component;

use nexnet_store::{CID_HEX_LEN, CasPath, Cid, PathTransform, StoreError};
use proptest::prelude::*;

fn is_cid(text: &str) -> bool {
    text.len() == CID_HEX_LEN && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn check_text(text: &str) -> Result<(), TestCaseError> {
    match text.parse::<Cid>() {
        Ok(cid) => {
            prop_assert!(is_cid(text), "{:?} accepted", text);
            prop_assert_eq!(cid.to_hex(), text);
            prop_assert_eq!(cid.to_string(), text);
        }
        Err(StoreError::InvalidCid { input, .. }) => {
            prop_assert!(!is_cid(text), "{:?} refused", text);
            prop_assert!(input.chars().count() <= 64);
        }
        Err(other) => prop_assert!(false, "{:?}: {}", text, other),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn near_misses_parse_exactly_when_they_are_cids(
        bytes in any::<[u8; 20]>(),
        edit in 0..4,
        at in 0..CID_HEX_LEN,
        c in "[0-9a-fA-Fg/. é]",
    ) {
        let mut text = Cid::from_bytes(bytes).to_hex();
        match edit {
            0 => {}
            1 => text.insert_str(at, &c),
            2 => {
                text.remove(at);
            }
            _ => text.replace_range(at..=at, &c),
        }
        check_text(&text)?;
    }

    #[test]
    fn arbitrary_text_parses_exactly_when_it_is_a_cid(text in ".{0,60}") {
        check_text(&text)?;
    }

    #[test]
    fn one_changed_digit_is_refused(
        bytes in any::<[u8; 20]>(),
        at in 0..CID_HEX_LEN,
        replacement in "[A-Zg-z./ ]",
    ) {
        let mut text = Cid::from_bytes(bytes).to_hex();
        text.replace_range(at..=at, &replacement);
        prop_assert!(text.parse::<Cid>().is_err(), "{}", text);
    }

    #[test]
    fn layouts_stay_inside_and_name_the_cid(
        bytes in any::<[u8; 20]>(),
        width in 0usize..48,
        depth in 0usize..48,
    ) {
        let cid = Cid::from_bytes(bytes);
        let hex = cid.to_hex();
        let dir = CasPath::new(width, depth).dir_of(&cid);
        let mut joined = String::new();
        for component in dir.components() {
            let Component::Normal(level) = component else {
                return Err(TestCaseError::fail(format!("{dir:?} leaves the objects directory")));
            };
            let level = level.to_str().unwrap();
            prop_assert!(!level.is_empty() && level.len() <= width);
            joined.push_str(level);
        }
        prop_assert!(hex.starts_with(&joined));
        prop_assert_eq!(joined.len(), (width * depth).min(CID_HEX_LEN));
        let file = dir.join(&hex);
        let name = file.file_name().and_then(|n| n.to_str()).unwrap();
        prop_assert_eq!(name.parse::<Cid>().unwrap(), cid);
    }
}
