//! Round trips and bad input through the public API of nexnet-crypto.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Cursor, Read};

use nexnet_crypto::{
    CryptoError, DataKey, DecryptReader, DecryptWriter, EncryptReader, EncryptWriter, HEADER_LEN,
    ObjectHeader,
};
use nexnet_testkit::{
    INTERESTING_SIZES, Pattern, digest_async_reader, digest_reader, pattern_digest,
};

fn encrypt_to_vec(key: &DataKey, plain: &[u8]) -> Vec<u8> {
    let mut object = Vec::new();
    EncryptReader::new(key, plain)
        .unwrap()
        .read_to_end(&mut object)
        .unwrap();
    object
}

#[test]
fn sync_round_trip_at_every_interesting_size() {
    let key = DataKey::generate().unwrap();
    for (seed, &size) in INTERESTING_SIZES.iter().enumerate() {
        let seed = seed as u64;
        let mut enc = EncryptReader::new(&key, Pattern::new(seed, size as u64)).unwrap();
        let mut object = Vec::new();
        enc.read_to_end(&mut object).unwrap();
        assert_eq!(object.len(), HEADER_LEN + size, "size {size}");
        assert_eq!(enc.plaintext_len(), size as u64);
        if size >= 16 {
            assert_ne!(
                &object[HEADER_LEN..HEADER_LEN + 16],
                &Pattern::to_vec(seed, 16)[..],
                "ciphertext must not be the plaintext"
            );
        }
        let dec = DecryptReader::new(&key, &object[..])
            .unwrap()
            .expect_len(size as u64);
        assert_eq!(
            digest_reader(dec).unwrap(),
            pattern_digest(seed, size as u64),
            "size {size}"
        );
    }
}

#[tokio::test]
async fn async_round_trip_at_every_interesting_size() {
    let key = DataKey::generate().unwrap();
    for (seed, &size) in INTERESTING_SIZES.iter().enumerate() {
        let seed = seed as u64;
        let mut object = Vec::new();
        let mut enc = EncryptReader::new(&key, Pattern::new(seed, size as u64)).unwrap();
        tokio::io::AsyncReadExt::read_to_end(&mut enc, &mut object)
            .await
            .unwrap();
        let dec = DecryptReader::new_async(&key, &object[..])
            .await
            .unwrap()
            .expect_len(size as u64);
        assert_eq!(
            digest_async_reader(dec).await.unwrap(),
            pattern_digest(seed, size as u64),
            "size {size}"
        );
    }
}

#[test]
fn sync_and_async_adapters_produce_the_same_object() {
    let key = DataKey::generate().unwrap();
    let plain = Pattern::to_vec(7, 100_000);
    let object = encrypt_to_vec(&key, &plain);
    let header = ObjectHeader::parse(&object).unwrap();
    // Same header, same keystream: the async decryptor must agree byte for byte.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let decrypted = rt.block_on(async {
        let mut out = Vec::new();
        let mut dec = DecryptReader::new_async(&key, &object[..]).await.unwrap();
        tokio::io::AsyncReadExt::read_to_end(&mut dec, &mut out)
            .await
            .unwrap();
        out
    });
    assert_eq!(decrypted, plain);
    assert_eq!(header.key_id, key.id());
}

#[test]
fn wrong_key_is_refused_before_any_plaintext() {
    let key = DataKey::generate().unwrap();
    let other = DataKey::generate().unwrap();
    let object = encrypt_to_vec(&key, b"secret");
    match DecryptReader::new(&other, &object[..]) {
        Err(CryptoError::KeyMismatch { expected, found }) => {
            assert_eq!(expected, other.id());
            assert_eq!(found, key.id());
        }
        other => panic!("expected KeyMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn wrong_key_is_refused_async() {
    let key = DataKey::generate().unwrap();
    let object = encrypt_to_vec(&key, b"secret");
    let err = DecryptReader::new_async(&DataKey::generate().unwrap(), &object[..])
        .await
        .unwrap_err();
    assert!(matches!(err, CryptoError::KeyMismatch { .. }), "{err}");
}

#[test]
fn truncated_header_is_a_typed_error() {
    let key = DataKey::generate().unwrap();
    let object = encrypt_to_vec(&key, b"hello");
    for cut in [0, 1, 4, HEADER_LEN - 1] {
        let err = DecryptReader::new(&key, &object[..cut]).unwrap_err();
        assert!(
            matches!(err, CryptoError::HeaderTruncated { got, .. } if got == cut),
            "{err}"
        );
    }
}

#[test]
fn foreign_bytes_are_not_an_object() {
    let key = DataKey::generate().unwrap();
    let err = DecryptReader::new(&key, &b"GIF89a this is not a nexnet object.."[..]).unwrap_err();
    assert!(matches!(err, CryptoError::BadMagic { .. }), "{err}");
}

#[test]
fn truncated_or_extended_body_fails_the_length_check() {
    let key = DataKey::generate().unwrap();
    let plain = Pattern::to_vec(3, 70_000);
    let object = encrypt_to_vec(&key, &plain);

    let short = &object[..object.len() - 1];
    let mut out = Vec::new();
    let err = DecryptReader::new(&key, short)
        .unwrap()
        .expect_len(plain.len() as u64)
        .read_to_end(&mut out)
        .unwrap_err();
    match CryptoError::from_io(&err) {
        Some(CryptoError::LengthMismatch { expected, actual }) => {
            assert_eq!(*expected, plain.len() as u64);
            assert_eq!(*actual, plain.len() as u64 - 1);
        }
        other => panic!("expected LengthMismatch, got {other:?}"),
    }

    let mut long = object.clone();
    long.push(0);
    let err = DecryptReader::new(&key, &long[..])
        .unwrap()
        .expect_len(plain.len() as u64)
        .read_to_end(&mut Vec::new())
        .unwrap_err();
    assert!(matches!(
        CryptoError::from_io(&err),
        Some(CryptoError::LengthMismatch { .. })
    ));
}

#[test]
fn flipped_ciphertext_byte_flips_exactly_that_plaintext_byte() {
    // CTR is malleable: this is why integrity is the content id's job
    // (nexnet-store's read_verified catches the same flip).
    let key = DataKey::generate().unwrap();
    let plain = Pattern::to_vec(4, 1000);
    let mut object = encrypt_to_vec(&key, &plain);
    object[HEADER_LEN + 500] ^= 0x01;
    let mut out = Vec::new();
    DecryptReader::new(&key, &object[..])
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    let diffs: Vec<_> = (0..plain.len()).filter(|&i| out[i] != plain[i]).collect();
    assert_eq!(diffs, vec![500]);
}

#[test]
fn decrypting_from_an_offset_equals_the_same_slice_of_a_full_decryption() {
    let key = DataKey::generate().unwrap();
    let plain = Pattern::to_vec(5, 3 * 65_536 + 123);
    let object = encrypt_to_vec(&key, &plain);
    for offset in [
        0usize,
        1,
        15,
        16,
        17,
        65_535,
        65_536,
        65_537,
        plain.len() - 1,
        plain.len(),
    ] {
        let mut out = Vec::new();
        DecryptReader::new_at(&key, Cursor::new(&object), offset as u64)
            .unwrap()
            .expect_len(plain.len() as u64)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, plain[offset..], "offset {offset}");
    }
}

#[tokio::test]
async fn async_decrypting_from_an_offset() {
    let key = DataKey::generate().unwrap();
    let plain = Pattern::to_vec(6, 200_000);
    let object = encrypt_to_vec(&key, &plain);
    for offset in [0usize, 17, 65_536, 199_999] {
        let mut out = Vec::new();
        let mut dec = DecryptReader::new_async_at(&key, Cursor::new(&object), offset as u64)
            .await
            .unwrap();
        tokio::io::AsyncReadExt::read_to_end(&mut dec, &mut out)
            .await
            .unwrap();
        assert_eq!(out, plain[offset..], "offset {offset}");
    }
}

#[test]
fn same_plaintext_twice_gives_different_objects() {
    let key = DataKey::generate().unwrap();
    let a = encrypt_to_vec(&key, b"same bytes");
    let b = encrypt_to_vec(&key, b"same bytes");
    assert_ne!(a, b, "a fresh IV per object");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip_any_bytes_any_read_size(
        plain in proptest::collection::vec(proptest::num::u8::ANY, 0..5000),
        step in 1usize..300,
    ) {
        let key = DataKey::from_bytes([9; 32]);
        let mut enc = EncryptReader::new(&key, &plain[..]).unwrap();
        let mut object = Vec::new();
        let mut buf = vec![0u8; step];
        loop {
            let n = enc.read(&mut buf).unwrap();
            if n == 0 { break; }
            object.extend_from_slice(&buf[..n]);
        }
        let mut out = Vec::new();
        let mut dec = DecryptReader::new(&key, &object[..]).unwrap().expect_len(plain.len() as u64);
        loop {
            let n = dec.read(&mut buf).unwrap();
            if n == 0 { break; }
            out.extend_from_slice(&buf[..n]);
        }
        proptest::prop_assert_eq!(out, plain);
    }

    #[test]
    fn decrypting_garbage_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let key = DataKey::from_bytes([1; 32]);
        if let Ok(mut r) = DecryptReader::new(&key, &bytes[..]) {
            let _ = r.read_to_end(&mut Vec::new());
        }
    }
}

/// An async writer that takes at most 7 bytes a call and says Pending every
/// other call: the worst inner writer an adapter must cope with.
struct Trickle {
    out: Vec<u8>,
    stall: bool,
}

impl tokio::io::AsyncWrite for Trickle {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.stall = !self.stall;
        if self.stall {
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        let n = buf.len().min(7);
        self.out.extend_from_slice(&buf[..n]);
        std::task::Poll::Ready(Ok(n))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[test]
fn sync_writers_round_trip_at_every_interesting_size() {
    use std::io::Write;
    let key = DataKey::generate().unwrap();
    for (seed, &size) in INTERESTING_SIZES.iter().enumerate() {
        let plain = Pattern::to_vec(seed as u64, size);
        let mut enc = EncryptWriter::new(&key, Vec::new()).unwrap();
        // Odd write sizes cross every block and chunk boundary.
        for piece in plain.chunks(70_001) {
            enc.write_all(piece).unwrap();
        }
        enc.flush().unwrap();
        assert_eq!(enc.plaintext_len(), size as u64);
        let object = enc.into_inner();
        assert_eq!(object.len(), HEADER_LEN + size);

        let mut dec = DecryptWriter::new(&key, Vec::new()).expect_len(size as u64);
        for piece in object.chunks(9_999) {
            dec.write_all(piece).unwrap();
        }
        assert_eq!(dec.finish().unwrap(), plain, "size {size}");
    }
}

#[tokio::test]
async fn async_writers_round_trip_through_a_trickling_writer() {
    use tokio::io::AsyncWriteExt;
    let key = DataKey::generate().unwrap();
    for (seed, &size) in INTERESTING_SIZES
        .iter()
        .enumerate()
        .filter(|(_, s)| **s <= 1 << 20)
    {
        let plain = Pattern::to_vec(seed as u64, size);
        let mut enc = EncryptWriter::new(
            &key,
            Trickle {
                out: Vec::new(),
                stall: false,
            },
        )
        .unwrap();
        enc.write_all(&plain).await.unwrap();
        enc.shutdown().await.unwrap();
        let object = enc.into_inner().out;

        let mut dec = DecryptWriter::new(
            &key,
            Trickle {
                out: Vec::new(),
                stall: false,
            },
        )
        .expect_len(size as u64);
        dec.write_all(&object).await.unwrap();
        dec.shutdown().await.unwrap();
        assert_eq!(dec.into_inner().out, plain, "size {size}");
    }
}

#[test]
fn decrypt_writer_refuses_another_key_before_writing_plaintext() {
    use std::io::Write;
    let key = DataKey::generate().unwrap();
    let object = encrypt_to_vec(&key, b"secret");
    let other = DataKey::generate().unwrap();
    let mut dec = DecryptWriter::new(&other, Vec::new());
    let err = dec.write_all(&object).unwrap_err();
    assert!(
        matches!(
            CryptoError::from_io(&err),
            Some(CryptoError::KeyMismatch { .. })
        ),
        "{err}"
    );
    // It keeps failing, and nothing was written.
    assert!(dec.write(b"more").is_err());
    assert!(dec.into_inner().is_empty());
}

#[test]
fn decrypt_writer_catches_cut_and_overlong_objects() {
    use std::io::Write;
    let key = DataKey::generate().unwrap();
    let object = encrypt_to_vec(&key, &Pattern::to_vec(1, 1000));

    let mut dec = DecryptWriter::new(&key, Vec::new()).expect_len(1000);
    dec.write_all(&object[..object.len() - 1]).unwrap();
    let err = dec.finish().unwrap_err();
    assert!(matches!(
        CryptoError::from_io(&err),
        Some(CryptoError::LengthMismatch {
            expected: 1000,
            actual: 999
        })
    ));

    let mut dec = DecryptWriter::new(&key, Vec::new()).expect_len(999);
    let err = dec.write_all(&object).unwrap_err();
    assert!(matches!(
        CryptoError::from_io(&err),
        Some(CryptoError::LengthMismatch { .. })
    ));

    let mut dec = DecryptWriter::new(&key, Vec::new());
    dec.write_all(&object[..10]).unwrap();
    let err = dec.finish().unwrap_err();
    assert!(matches!(
        CryptoError::from_io(&err),
        Some(CryptoError::HeaderTruncated { got: 10, .. })
    ));
}

#[test]
fn a_failed_length_check_stays_failed() {
    let key = DataKey::generate().unwrap();
    let object = encrypt_to_vec(&key, &Pattern::to_vec(2, 100));
    let mut dec = DecryptReader::new(&key, &object[..])
        .unwrap()
        .expect_len(10);
    let mut buf = [0u8; 64];
    assert!(dec.read(&mut buf).is_err());
    assert_eq!(buf, [0u8; 64], "no ciphertext left in the caller's buffer");
    assert!(
        dec.read(&mut buf).is_err(),
        "a retry must not decrypt at the wrong offset"
    );
}
