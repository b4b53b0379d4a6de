//! Objects from arbitrary bytes: `ObjectHeader::parse` against the format's
//! definition, and `DecryptReader` (`new`, `new_at`, `expect_len`) over the
//! bytes delivered in arbitrary pieces.
//!
//! Input: `[flags, split, len0, len1, stream...]`. Bit 0 of `flags` makes
//! the stream's first 32 bytes a valid header for the fuzzing key (so that
//! decryption is reached without the fuzzer having to find the key id);
//! `split` cuts reads into pieces (see `common::chunks`); `len0..1` give the
//! length `expect_len` is told and the offset `new_at` starts at.
//!
//! Invariants:
//! - `parse` accepts exactly the 32-byte prefixes with the magic, version 1
//!   and zero reserved bytes, reports which rule a refused one breaks, and
//!   an accepted header encodes back to the same 32 bytes;
//! - `DecryptReader::new` fails as `parse` does, or with `KeyMismatch` for
//!   another key; otherwise it yields the ciphertext XOR the object's
//!   keystream, however the reads are cut;
//! - with `expect_len(n)`, a stream of another length fails with
//!   `LengthMismatch` (and keeps failing), never handing out more than `n`
//!   bytes; with the right length it reads to the end;
//! - `new_at(offset)` yields the plaintext from `offset` on.
#![no_main]

mod common;

use std::io::{self, Cursor, Read};

use libfuzzer_sys::fuzz_target;
use nexnet_crypto::{
    CryptoError, DataKey, DecryptReader, FORMAT_VERSION, HEADER_LEN, MAGIC, ObjectHeader,
};

/// A reader that hands out `data` in the given pieces.
#[derive(Debug)]
struct Pieces<'a> {
    pieces: std::vec::IntoIter<&'a [u8]>,
    current: &'a [u8],
}

impl<'a> Pieces<'a> {
    fn new(data: &'a [u8], split: u8) -> Self {
        Self {
            pieces: common::chunks(data, split).into_iter(),
            current: &[],
        }
    }
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.pieces.next() {
                Some(piece) => self.current = piece,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = &self.current[n..];
        Ok(n)
    }
}

/// `parse` against the header's definition.
fn check_parse(bytes: &[u8]) -> Result<ObjectHeader, String> {
    let parsed = ObjectHeader::parse(bytes);
    match (&parsed, bytes.get(..HEADER_LEN)) {
        (Err(CryptoError::HeaderTruncated { got, needed }), None) => {
            assert_eq!((*got, *needed), (bytes.len(), HEADER_LEN));
        }
        (Err(CryptoError::BadMagic { found }), Some(h)) => {
            assert_eq!(&h[..4], found);
            assert_ne!(*found, MAGIC);
        }
        (Err(CryptoError::UnsupportedVersion { found, supported }), Some(h)) => {
            assert_eq!(h[..4], MAGIC);
            assert_eq!((h[4], *supported), (*found, FORMAT_VERSION));
            assert_ne!(*found, FORMAT_VERSION);
        }
        (Err(CryptoError::ReservedBits { found }), Some(h)) => {
            assert_eq!((&h[..4], h[4]), (&MAGIC[..], FORMAT_VERSION));
            assert_eq!(&h[5..8], found);
            assert_ne!(*found, [0; 3]);
        }
        (Ok(header), Some(h)) => {
            assert_eq!(&header.encode()[..], h);
            assert_eq!(header.key_id.as_bytes()[..], h[8..16]);
            assert_eq!(header.iv[..], h[16..32]);
        }
        (other, h) => panic!("{other:?} for {h:?}"),
    }
    parsed.map_err(|e| e.to_string())
}

/// Reads to the end (or the first error) with read sizes from `split`.
fn read_all(reader: &mut impl Read, split: u8) -> (Vec<u8>, Option<io::Error>) {
    let sizes = [1usize, 7, 16, 100, 4096];
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    for i in usize::from(split).. {
        let want = sizes[i % sizes.len()];
        match reader.read(&mut buf[..want]) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(e)),
        }
    }
    unreachable!()
}

fuzz_target!(|data: &[u8]| {
    let ([flags, split, len0, len1], stream) = common::split_control::<4>(data);
    let key = DataKey::from_bytes([0x5a; 32]);
    let mut object = stream.to_vec();
    if flags & 1 == 1 && object.len() >= HEADER_LEN {
        object[..4].copy_from_slice(&MAGIC);
        object[4] = FORMAT_VERSION;
        object[5..8].fill(0);
        object[8..16].copy_from_slice(key.id().as_bytes());
    }
    let parsed = check_parse(&object);

    let reader = DecryptReader::new(&key, Pieces::new(&object, split));
    let header = match (parsed, reader) {
        (Err(parse_error), Err(e)) => {
            assert_eq!(parse_error, e.to_string());
            return;
        }
        (Ok(header), Err(CryptoError::KeyMismatch { expected, found })) => {
            assert_eq!((expected, found), (key.id(), header.key_id));
            assert_ne!(header.key_id, key.id());
            return;
        }
        (Ok(header), Ok(_)) => header,
        (parsed, reader) => panic!("parse: {parsed:?}, DecryptReader::new: {reader:?}"),
    };

    // The plaintext, from the keystream directly.
    let mut plain = object[HEADER_LEN..].to_vec();
    key.keystream_for(&header)
        .expect("the key matches")
        .apply(&mut plain);

    let mut reader = DecryptReader::new(&key, Pieces::new(&object, split)).expect("it did before");
    let (out, error) = read_all(&mut reader, split);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(out, plain);
    assert_eq!(reader.position(), plain.len() as u64);

    // `expect_len`: the right length reads to the end, any other fails.
    let expected = u64::from(u16::from_be_bytes([len0, len1])) % (plain.len() as u64 + 2);
    let mut reader = DecryptReader::new(&key, Pieces::new(&object, split))
        .expect("it did before")
        .expect_len(expected);
    let (out, error) = read_all(&mut reader, split);
    assert!(
        out.len() as u64 <= expected,
        "bytes past the expected length"
    );
    assert_eq!(out[..], plain[..out.len()]);
    if expected == plain.len() as u64 {
        assert!(error.is_none(), "{error:?}");
        assert_eq!(out, plain);
    } else {
        let error = error.expect("a length mismatch");
        assert!(
            matches!(
                CryptoError::from_io(&error),
                Some(CryptoError::LengthMismatch { expected: e, .. }) if *e == expected
            ),
            "expected a length mismatch"
        );
        // And it stays failed.
        assert!(reader.read(&mut [0u8; 16]).is_err());
    }

    // `new_at`: the plaintext from an offset on.
    let offset = usize::from(u16::from_be_bytes([len1, len0])) % (plain.len() + 2);
    let mut reader = DecryptReader::new_at(&key, Cursor::new(&object[..]), offset as u64)
        .expect("the header is valid");
    let (out, error) = read_all(&mut reader, split);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(out[..], plain[offset.min(plain.len())..]);
});
