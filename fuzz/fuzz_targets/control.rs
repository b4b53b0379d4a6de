//! Control messages from arbitrary bytes: `Control::<M>::decode` (the
//! payload of a control frame) and `decode_message::<M>` (the payload of a
//! stream's `Open` frame), with `M` the node's own protocol
//! (`nexnet_server::protocol::Message`: ids, lists, strings, options,
//! catalog entries, tombstones, refusals).
//!
//! Input: `[which, payload...]`; `which` picks the envelope.
//!
//! Invariants: no panic and no allocation beyond the input's size (libFuzzer's
//! `-malloc_limit_mb` catches a length prefix taken at its word); a decoded
//! message takes the whole payload (no trailing bytes), encodes back to at
//! most as many bytes (the same bytes when as many), and those decode to
//! the same message.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use nexnet_codec::{Control, decode_message, encode_message};
use nexnet_server::protocol::Message;

fuzz_target!(|data: &[u8]| {
    let ([which], payload) = common::split_control::<1>(data);
    if which % 2 == 0 {
        if let Ok(control) = Control::<Message>::decode(payload) {
            let again = control.encode().expect("a decoded message encodes");
            check_encoding(payload, &again);
            assert_eq!(Control::<Message>::decode(&again).ok(), Some(control));
        }
    } else if let Ok(message) = decode_message::<Message>(payload) {
        let (_, rest) = postcard::take_from_bytes::<Message>(payload).expect("it decoded");
        assert!(
            rest.is_empty(),
            "{} bytes after a stream header",
            rest.len()
        );
        let again = encode_message(&message).expect("a decoded message encodes");
        check_encoding(payload, &again);
        assert_eq!(decode_message::<Message>(&again).ok(), Some(message));
    }
});

/// `again`, the encoding of what `payload` decoded to, is the canonical
/// form: never longer (postcard accepts overlong varints, harmless here),
/// and equal whenever `payload` has no overlong varint (then only the
/// lengths can differ, and they are equal).
fn check_encoding(payload: &[u8], again: &[u8]) {
    assert!(
        again.len() <= payload.len(),
        "{} bytes decoded to a message of {} bytes",
        payload.len(),
        again.len()
    );
    if again.len() == payload.len() {
        assert_eq!(again, payload, "same length, other bytes");
    }
}
