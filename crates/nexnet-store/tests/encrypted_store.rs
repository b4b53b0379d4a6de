//! The store holding encrypted objects, with crypto as a node uses them:
//! plaintext is encrypted on its way into the store, and verified and
//! decrypted on its way out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;

use nexnet_crypto::{CryptoError, DataKey, DecryptReader, EncryptReader, HEADER_LEN};
use nexnet_store::{ObjectStore, StoreError};
use nexnet_testkit::{INTERESTING_SIZES, Pattern, digest_async_reader, pattern_digest};
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn encrypted_round_trip_through_the_store_at_every_interesting_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path().join("store")).await.unwrap();
    let key = DataKey::generate().unwrap();
    for (seed, &size) in INTERESTING_SIZES.iter().enumerate() {
        let (seed, size) = (seed as u64, size as u64);
        let object = EncryptReader::new(&key, Pattern::new(seed, size)).unwrap();
        let written = store.write(object).await.unwrap();
        assert_eq!(written.len, HEADER_LEN as u64 + size);

        let verified = store.read_verified(&written.cid).await.unwrap();
        let plain = DecryptReader::new_async(&key, verified)
            .await
            .unwrap()
            .expect_len(size);
        assert_eq!(
            digest_async_reader(plain).await.unwrap(),
            pattern_digest(seed, size),
            "size {size}"
        );
    }
}

#[tokio::test]
async fn no_plaintext_reaches_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).await.unwrap();
    let key = DataKey::generate().unwrap();
    let marker = b"NEXNET-PLAINTEXT-MARKER-".repeat(4096);
    let written = store
        .write(EncryptReader::new(&key, &marker[..]).unwrap())
        .await
        .unwrap();
    let on_disk = fs::read(store.path_of(&written.cid).unwrap()).unwrap();
    assert!(
        !on_disk
            .windows(24)
            .any(|w| w == b"NEXNET-PLAINTEXT-MARKER-"),
        "the stored object must be ciphertext"
    );
}

#[tokio::test]
async fn a_flipped_ciphertext_byte_is_caught_before_it_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).await.unwrap();
    let key = DataKey::generate().unwrap();
    let good = store
        .write(EncryptReader::new(&key, Pattern::new(1, 100_000)).unwrap())
        .await
        .unwrap()
        .cid;
    let victim = store
        .write(EncryptReader::new(&key, Pattern::new(2, 100_000)).unwrap())
        .await
        .unwrap()
        .cid;
    let path = store.path_of(&victim).unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes[HEADER_LEN + 12_345] ^= 1;
    fs::write(&path, bytes).unwrap();

    let verified = store.read_verified(&victim).await.unwrap();
    let mut plain = DecryptReader::new_async(&key, verified).await.unwrap();
    let err = plain.read_to_end(&mut Vec::new()).await.unwrap_err();
    assert!(
        matches!(StoreError::from_io(&err), Some(StoreError::Corrupt { .. })),
        "{err}"
    );
    // What was stored before is intact.
    let verified = store.read_verified(&good).await.unwrap();
    let plain = DecryptReader::new_async(&key, verified).await.unwrap();
    assert_eq!(
        digest_async_reader(plain).await.unwrap(),
        pattern_digest(1, 100_000)
    );
}

#[tokio::test]
async fn another_key_gets_key_mismatch_not_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).await.unwrap();
    let mine = DataKey::generate().unwrap();
    let theirs = DataKey::generate().unwrap();
    let cid = store
        .write(EncryptReader::new(&mine, &b"for my eyes"[..]).unwrap())
        .await
        .unwrap()
        .cid;
    let reader = store.read_verified(&cid).await.unwrap();
    let err = DecryptReader::new_async(&theirs, reader).await.unwrap_err();
    assert!(
        matches!(err, CryptoError::KeyMismatch { expected, found } if expected == theirs.id() && found == mine.id()),
        "{err}"
    );
}

#[tokio::test]
async fn range_read_from_a_stored_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).await.unwrap();
    let key = DataKey::generate().unwrap();
    let size = 300_000u64;
    let cid = store
        .write(EncryptReader::new(&key, Pattern::new(9, size)).unwrap())
        .await
        .unwrap()
        .cid;
    let full = Pattern::to_vec(9, size as usize);
    for offset in [0u64, 1, 65_536, 299_999] {
        let reader = store.read(&cid).await.unwrap();
        let mut out = Vec::new();
        DecryptReader::new_async_at(&key, reader, offset)
            .await
            .unwrap()
            .expect_len(size)
            .read_to_end(&mut out)
            .await
            .unwrap();
        assert_eq!(out, full[offset as usize..], "offset {offset}");
    }
}

/// Every kind of bad input, one after another, against one store: each gets
/// its typed error, and after each every object stored before still reads
/// back verified and decrypts to the right bytes.
#[tokio::test]
async fn bad_input_never_damages_what_is_stored() {
    use nexnet_store::{Cid, StoreConfig};

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = ObjectStore::open_with(
        &root,
        StoreConfig::default().max_object_len(2 << 20),
        nexnet_store::CasPath::default(),
    )
    .await
    .unwrap();
    let key = DataKey::generate().unwrap();
    let mut kept = Vec::new();
    for (seed, &size) in INTERESTING_SIZES
        .iter()
        .enumerate()
        .filter(|(_, s)| **s <= 1 << 20)
    {
        let (seed, size) = (seed as u64, size as u64);
        let cid = store
            .write(EncryptReader::new(&key, Pattern::new(seed, size)).unwrap())
            .await
            .unwrap()
            .cid;
        kept.push((cid, seed, size));
    }
    let victim = store
        .write(EncryptReader::new(&key, Pattern::new(500, 100_000)).unwrap())
        .await
        .unwrap()
        .cid;
    let all_intact = || async {
        for &(cid, seed, size) in &kept {
            let reader = store.read_verified(&cid).await.unwrap();
            let plain = DecryptReader::new_async(&key, reader)
                .await
                .unwrap()
                .expect_len(size);
            assert_eq!(
                digest_async_reader(plain).await.unwrap(),
                pattern_digest(seed, size)
            );
        }
    };

    // Wrong key.
    let other = DataKey::generate().unwrap();
    let reader = store.read(&kept[3].0).await.unwrap();
    assert!(matches!(
        DecryptReader::new_async(&other, reader).await,
        Err(CryptoError::KeyMismatch { .. })
    ));
    all_intact().await;

    // A truncated header and a foreign object, offered as replicas.
    let short = b"NXOB\x01";
    let cid = Cid::of(short);
    store.write_expecting(cid, &short[..]).await.unwrap();
    let reader = store.read(&cid).await.unwrap();
    assert!(matches!(
        DecryptReader::new_async(&key, reader).await,
        Err(CryptoError::HeaderTruncated { got: 5, .. })
    ));
    store.delete(&cid).await.unwrap();
    all_intact().await;

    // Bytes that do not match the cid they are offered under.
    let err = store
        .write_expecting(kept[0].0, Pattern::new(77, 100))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::HashMismatch { .. }));
    let err = store
        .write_expecting(Cid::of(b"x"), &b"y"[..])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::HashMismatch { .. }));
    all_intact().await;

    // An absurd size.
    let err = store.write(Pattern::new(1, 3 << 20)).await.unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }));
    all_intact().await;

    // Invalid content ids from a user or a peer.
    for bad in ["", "../../etc/passwd", &"A".repeat(40), &"0".repeat(41)] {
        assert!(matches!(
            bad.parse::<Cid>(),
            Err(StoreError::InvalidCid { .. })
        ));
    }
    all_intact().await;

    // A missing object.
    assert!(matches!(
        store.read_verified(&Cid::of(b"absent")).await,
        Err(StoreError::NotFound { .. })
    ));
    all_intact().await;

    // A truncated body on disk: caught by verification, quarantined, and
    // nothing else is touched.
    let path = store.path_of(&victim).unwrap();
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(HEADER_LEN as u64 + 10).unwrap();
    assert!(matches!(
        store.verify(&victim).await,
        Err(StoreError::Corrupt { .. })
    ));
    all_intact().await;

    // A second process on the same root, and a root that is a file.
    assert!(matches!(
        ObjectStore::open(&root).await,
        Err(StoreError::Locked { .. })
    ));
    let file_root = dir.path().join("not-a-dir");
    fs::write(&file_root, b"x").unwrap();
    assert!(matches!(
        ObjectStore::open(&file_root).await,
        Err(StoreError::NotADirectory { .. })
    ));
    all_intact().await;
}
