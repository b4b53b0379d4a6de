//! Objects written whole (`write_bytes_expecting`, `write_bytes_hashed`,
//! `write_pieces_expecting`), fsynced at once or deferred to one `sync`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use nexnet_store::{CasPath, Cid, Durability, ObjectStore, StoreConfig, StoreError};
use nexnet_testkit::{INTERESTING_SIZES, Pattern, digest_async_reader, pattern_digest};

#[tokio::test]
async fn whole_objects_read_back_at_every_size_either_way_they_are_made_durable() {
    for fsync in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open_with(
            dir.path(),
            StoreConfig::default().fsync(fsync),
            CasPath::new(5, 2),
        )
        .await
        .unwrap();
        for (seed, &size) in INTERESTING_SIZES.iter().enumerate() {
            for durability in [Durability::Now, Durability::Deferred] {
                let bytes = Bytes::from(Pattern::to_vec(seed as u64, size));
                let cid = Cid::of(&bytes);
                let first = store
                    .write_bytes_expecting(cid, bytes.clone(), durability)
                    .await
                    .unwrap();
                // Once per content, whichever way it came first.
                assert_eq!(first.created, durability == Durability::Now);
                let again = store
                    .write_bytes_hashed(cid, bytes.clone(), durability)
                    .await
                    .unwrap();
                assert!(!again.created);
                assert_eq!(store.len(&cid).await.unwrap(), size as u64);
                store.verify(&cid).await.unwrap();
            }
        }
        store.sync().await.unwrap();
        assert_eq!(store.usage().objects, INTERESTING_SIZES.len() as u64);
    }
}

#[tokio::test]
async fn bytes_that_are_not_their_cid_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).await.unwrap();
    let bytes = Bytes::from_static(b"not what the cid says");
    let wrong = Cid::of(b"something else");
    for durability in [Durability::Now, Durability::Deferred] {
        let err = store
            .write_bytes_expecting(wrong, bytes.clone(), durability)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::HashMismatch { .. }), "{err}");
    }
    assert!(!store.has(&wrong).await.unwrap());
    assert_eq!(store.usage().objects, 0);
    store.sync().await.unwrap();
}

/// Cuts `bytes` into pieces of the sizes in `cuts`, cycling, as a stream
/// from a peer arrives.
fn pieces(bytes: &Bytes, cuts: &[usize]) -> Vec<Bytes> {
    let (mut out, mut at) = (Vec::new(), 0);
    for &cut in cuts.iter().cycle() {
        if at == bytes.len() {
            break;
        }
        let end = (at + cut).min(bytes.len());
        out.push(bytes.slice(at..end));
        at = end;
    }
    out
}

#[tokio::test]
async fn objects_written_as_pieces_read_back_as_one_at_every_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open_with(dir.path(), StoreConfig::default(), CasPath::new(5, 2))
        .await
        .unwrap();
    for (seed, &size) in INTERESTING_SIZES.iter().enumerate() {
        let bytes = Bytes::from(Pattern::to_vec(seed as u64, size));
        let cid = Cid::of(&bytes);
        // Frames of the transport's size, and odd ones that cross them.
        let cuts: &[usize] = if seed % 2 == 0 {
            &[65536]
        } else {
            &[1, 4095, 65537, 17]
        };
        let written = store
            .write_pieces_expecting(cid, pieces(&bytes, cuts), Durability::Deferred)
            .await
            .unwrap();
        assert!(written.created);
        assert_eq!(written.len, size as u64);
        let read = store.read(&cid).await.unwrap();
        assert_eq!(
            digest_async_reader(read).await.unwrap(),
            pattern_digest(seed as u64, size as u64)
        );
        store.verify(&cid).await.unwrap();
    }
    store.sync().await.unwrap();
}

#[tokio::test]
async fn pieces_that_are_not_their_cid_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open(dir.path()).await.unwrap();
    let bytes = Bytes::from(Pattern::to_vec(7, 200_000));
    let cid = Cid::of(&bytes);
    let mut altered = pieces(&bytes, &[65536]);
    // One piece of another stream: the right length, the wrong bytes.
    altered[1] = Bytes::from(Pattern::to_vec(8, 65536));
    let err = store
        .write_pieces_expecting(cid, altered, Durability::Deferred)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::HashMismatch { .. }), "{err}");
    assert!(!store.has(&cid).await.unwrap());
    assert_eq!(store.usage().objects, 0);
}
