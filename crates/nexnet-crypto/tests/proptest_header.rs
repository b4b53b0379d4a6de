//! Property tests of object decoding: the fast, always-run counterpart of
//! the `object_header` fuzz target (`fuzz/`).
//!
//! They prove that `ObjectHeader::parse` accepts exactly what the format
//! defines (magic, version 1, zero reserved bytes) and says which rule a
//! refused header breaks, and that `DecryptReader` turns any object of ours
//! into its plaintext however the reads are cut, refuses another key's
//! object before producing a byte, enforces `expect_len` without handing out
//! bytes past it, and starts `new_at` any offset. Headers are valid ones
//! with random bytes changed, so every rule is reached.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Cursor, Read};

use nexnet_crypto::{
    CryptoError, DataKey, DecryptReader, EncryptReader, FORMAT_VERSION, HEADER_LEN, KeyId, MAGIC,
    ObjectHeader,
};
use proptest::{collection::vec, prelude::*};

fn key() -> DataKey {
    DataKey::from_bytes([0x5a; 32])
}

/// A reader that returns at most the given sizes (cycled) per read.
struct Pieces<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.next % self.sizes.len()];
        self.next += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn pieces<'a>(data: &'a [u8], sizes: &[usize]) -> Pieces<'a> {
    Pieces {
        data,
        sizes: sizes.to_vec(),
        next: 0,
    }
}

/// Reads to the end or the first error, asking for `ask` bytes (cycled).
fn read_all(reader: &mut impl Read, ask: &[usize]) -> (Vec<u8>, Option<io::Error>) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 512];
    for &want in ask.iter().cycle() {
        match reader.read(&mut buf[..want]) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(e)),
        }
    }
    unreachable!("the cycle ends with the data")
}

/// An object of `key` for `plain`.
fn object(key: &DataKey, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    EncryptReader::new(key, plain)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `parse` against the header's definition, on headers with a few
    /// bytes changed and on cut-off ones.
    #[test]
    fn parse_follows_the_format(
        key_id in any::<[u8; 8]>(),
        iv in any::<[u8; 16]>(),
        changes in vec((0..HEADER_LEN + 8, any::<u8>()), 0..3),
        len in 0..HEADER_LEN + 8,
    ) {
        let header = ObjectHeader { key_id: KeyId::from_bytes(key_id), iv };
        let mut bytes = header.encode().to_vec();
        bytes.extend_from_slice(&[0xee; 8]);
        for (at, value) in changes {
            bytes[at] = value;
        }
        bytes.truncate(len);
        match (ObjectHeader::parse(&bytes), bytes.get(..HEADER_LEN)) {
            (Err(CryptoError::HeaderTruncated { got, needed }), None) => {
                prop_assert_eq!((got, needed), (bytes.len(), HEADER_LEN));
            }
            (Err(CryptoError::BadMagic { found }), Some(h)) => {
                prop_assert_eq!(&h[..4], &found[..]);
                prop_assert_ne!(found, MAGIC);
            }
            (Err(CryptoError::UnsupportedVersion { found, .. }), Some(h)) => {
                prop_assert_eq!(&h[..4], &MAGIC[..]);
                prop_assert_eq!(h[4], found);
                prop_assert_ne!(found, FORMAT_VERSION);
            }
            (Err(CryptoError::ReservedBits { found }), Some(h)) => {
                prop_assert_eq!((&h[..4], h[4]), (&MAGIC[..], FORMAT_VERSION));
                prop_assert_eq!(&h[5..8], &found[..]);
                prop_assert_ne!(found, [0; 3]);
            }
            (Ok(parsed), Some(h)) => {
                prop_assert_eq!(&parsed.encode()[..], h);
                prop_assert_eq!(&parsed.key_id.as_bytes()[..], &h[8..16]);
                prop_assert_eq!(&parsed.iv[..], &h[16..32]);
            }
            (other, h) => prop_assert!(false, "{:?} for {:?}", other, h),
        }
    }

    /// Our objects decrypt to their plaintext however the object's reader
    /// and the caller cut the reads.
    #[test]
    fn objects_decrypt_however_the_reads_are_cut(
        plain in vec(any::<u8>(), 0..2000),
        sizes in vec(1usize..100, 1..5),
        ask in vec(1usize..512, 1..5),
    ) {
        let key = key();
        let object = object(&key, &plain);
        let mut reader = DecryptReader::new(&key, pieces(&object, &sizes)).unwrap();
        let (out, error) = read_all(&mut reader, &ask);
        prop_assert!(error.is_none(), "{:?}", error);
        prop_assert_eq!(out, plain);
    }

    /// Any bytes after a header of ours are the ciphertext XOR the object's
    /// keystream; with another key's header nothing is decrypted.
    #[test]
    fn any_ciphertext_is_the_keystream_xor_and_other_keys_are_refused(
        iv in any::<[u8; 16]>(),
        ours in any::<bool>(),
        other_id in any::<[u8; 8]>(),
        ciphertext in vec(any::<u8>(), 0..600),
        sizes in vec(1usize..64, 1..4),
    ) {
        let key = key();
        let key_id = if ours { key.id() } else { KeyId::from_bytes(other_id) };
        let header = ObjectHeader { key_id, iv };
        let object = [&header.encode()[..], &ciphertext].concat();
        match DecryptReader::new(&key, pieces(&object, &sizes)) {
            Ok(mut reader) => {
                prop_assert_eq!(key_id, key.id());
                let mut plain = ciphertext.clone();
                key.keystream_for(&header).unwrap().apply(&mut plain);
                let (out, error) = read_all(&mut reader, &sizes);
                prop_assert!(error.is_none());
                prop_assert_eq!(out, plain);
            }
            Err(CryptoError::KeyMismatch { expected, found }) => {
                prop_assert_ne!(key_id, key.id());
                prop_assert_eq!((expected, found), (key.id(), key_id));
            }
            Err(e) => prop_assert!(false, "{}", e),
        }
    }

    /// `expect_len`: the right length reads to the end; any other fails
    /// with `LengthMismatch`, keeps failing, and never hands out a byte
    /// past the expected length.
    #[test]
    fn expect_len_catches_every_other_length(
        plain in vec(any::<u8>(), 0..700),
        expected in 0u64..800,
        ask in vec(1usize..300, 1..4),
    ) {
        let key = key();
        let object = object(&key, &plain);
        let mut reader = DecryptReader::new(&key, &object[..]).unwrap().expect_len(expected);
        let (out, error) = read_all(&mut reader, &ask);
        prop_assert!(out.len() as u64 <= expected);
        prop_assert_eq!(&out[..], &plain[..out.len()]);
        if expected == plain.len() as u64 {
            prop_assert!(error.is_none());
        } else {
            let error = error.expect("a length mismatch");
            let is_mismatch = matches!(
                CryptoError::from_io(&error),
                Some(CryptoError::LengthMismatch { expected: e, .. }) if *e == expected
            );
            prop_assert!(is_mismatch, "{}", error);
            prop_assert!(reader.read(&mut [0u8; 8]).is_err(), "a failed reader read again");
        }
    }

    /// `new_at` yields the plaintext from any offset on (nothing past the
    /// end).
    #[test]
    fn new_at_starts_at_any_offset(
        plain in vec(any::<u8>(), 0..700),
        offset in 0usize..800,
        ask in vec(1usize..300, 1..4),
    ) {
        let key = key();
        let object = object(&key, &plain);
        let mut reader = DecryptReader::new_at(&key, Cursor::new(&object[..]), offset as u64).unwrap();
        let (out, error) = read_all(&mut reader, &ask);
        prop_assert!(error.is_none());
        prop_assert_eq!(&out[..], &plain[offset.min(plain.len())..]);
    }
}
