//! `ObjectWriter`: objects written piece by piece, as a replica arrives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;

use nexnet_store::{Cid, ObjectStore, StoreError};
use nexnet_testkit::{INTERESTING_SIZES, Pattern, digest_async_reader, pattern_digest};

fn pattern_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    Pattern::new(seed, len as u64).read_to_end(&mut v).unwrap();
    v
}

#[tokio::test]
async fn pieces_commit_to_the_cid_of_their_bytes_at_every_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).await.unwrap();
    for (seed, &size) in INTERESTING_SIZES.iter().enumerate() {
        let bytes = pattern_bytes(seed as u64, size);
        let mut writer = store.begin().await.unwrap();
        // Uneven pieces, as they arrive off a network.
        for piece in bytes.chunks(7919) {
            writer.write(piece).await.unwrap();
        }
        assert_eq!(writer.len(), size as u64);
        let written = writer.commit_expecting(Cid::of(&bytes)).await.unwrap();
        assert_eq!(written.len, size as u64);
        let reader = store.read_verified(&written.cid).await.unwrap();
        assert_eq!(
            digest_async_reader(reader).await.unwrap(),
            pattern_digest(seed as u64, size as u64),
            "size {size}"
        );
    }
}

#[tokio::test]
async fn a_wrong_cid_commits_nothing_and_a_dropped_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).await.unwrap();
    let mut writer = store.begin().await.unwrap();
    writer.write(b"replica bytes").await.unwrap();
    let wrong = Cid::of(b"something else");
    let err = writer.commit_expecting(wrong).await.unwrap_err();
    assert!(matches!(err, StoreError::HashMismatch { expected, .. } if expected == wrong));
    assert!(!store.has(&Cid::of(b"replica bytes")).await.unwrap());

    let mut writer = store.begin().await.unwrap();
    writer.write(b"abandoned half way").await.unwrap();
    drop(writer);
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
    assert_eq!(store.usage().objects, 0);
}
