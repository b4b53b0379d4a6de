//! The object store through its public API, on real temp directories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{fs, io, path::Path, sync::Arc};

use futures::TryStreamExt;
use nexnet_store::{
    CasPath, Cid, CustomPath, HashingReader, ObjectStore, StoreConfig, StoreError, Usage,
};
use nexnet_testkit::{INTERESTING_SIZES, Pattern, digest_async_reader, pattern_digest};
use tokio::io::AsyncReadExt;

async fn open(dir: &Path) -> ObjectStore {
    ObjectStore::open(dir).await.unwrap()
}

/// The Cid a pattern hashes to, computed independently of the store.
fn pattern_cid(seed: u64, len: u64) -> Cid {
    let mut r = HashingReader::new(Pattern::new(seed, len));
    io::copy(&mut r, &mut io::sink()).unwrap();
    r.finish().0
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn write_then_verified_read_at_every_interesting_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let mut expected_usage = Usage::default();
    for (seed, &size) in INTERESTING_SIZES.iter().enumerate() {
        let (seed, size) = (seed as u64, size as u64);
        let written = store.write(Pattern::new(seed, size)).await.unwrap();
        assert_eq!(written.cid, pattern_cid(seed, size), "size {size}");
        assert_eq!(written.len, size);
        assert!(written.created);
        expected_usage.objects += 1;
        expected_usage.bytes += size;

        assert!(store.has(&written.cid).await.unwrap());
        assert_eq!(store.len(&written.cid).await.unwrap(), size);
        let reader = store.read_verified(&written.cid).await.unwrap();
        assert_eq!(reader.len(), size);
        assert_eq!(
            digest_async_reader(reader).await.unwrap(),
            pattern_digest(seed, size)
        );
        let plain = store.read(&written.cid).await.unwrap();
        assert_eq!(
            digest_async_reader(plain).await.unwrap(),
            pattern_digest(seed, size)
        );
        store.verify(&written.cid).await.unwrap();
    }
    assert_eq!(store.usage(), expected_usage);
    assert!(
        files_under(&dir.path().join("tmp")).is_empty(),
        "no temp files left"
    );
}

#[tokio::test]
async fn objects_live_under_five_character_levels_named_by_their_cid() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let cid = store.write(&b"abc"[..]).await.unwrap().cid;
    assert_eq!(cid.to_string(), "a9993e364706816aba3e25717850c26c9cd0d89d");
    let expected = dir.path().join(
        "objects/a9993/e3647/06816/aba3e/25717/850c2/6c9cd/0d89d/a9993e364706816aba3e25717850c26c9cd0d89d",
    );
    assert_eq!(store.path_of(&cid).unwrap(), expected);
    assert_eq!(fs::read(expected).unwrap(), b"abc");
}

#[tokio::test]
async fn a_store_reopens_with_the_layout_it_was_created_with() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(CasPath::recorded_in(dir.path()).await.unwrap(), None);
    let shallow = CasPath::new(5, 2);
    let store = ObjectStore::open_with(dir.path(), StoreConfig::default(), shallow)
        .await
        .unwrap();
    let cid = store.write(&b"abc"[..]).await.unwrap().cid;
    let expected = dir
        .path()
        .join("objects/a9993/e3647/a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_eq!(store.path_of(&cid).unwrap(), expected);
    drop(store);

    assert_eq!(
        CasPath::recorded_in(dir.path()).await.unwrap(),
        Some(shallow)
    );
    // `open` takes the recorded depth, not its default, and finds it.
    let store = open(dir.path()).await;
    assert_eq!(store.path_of(&cid).unwrap(), expected);
    store.verify(&cid).await.unwrap();
    drop(store);
    // Asking for another layout explicitly is still refused.
    let err = ObjectStore::open_with(dir.path(), StoreConfig::default(), CasPath::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LayoutMismatch { .. }), "{err}");
}

#[tokio::test]
async fn a_store_of_another_transform_is_not_opened_as_a_cas_path() {
    let dir = tempfile::tempdir().unwrap();
    let flat = CustomPath::new("flat", |_: &Cid| std::path::PathBuf::from("all"));
    drop(
        ObjectStore::open_with(dir.path(), StoreConfig::default(), flat)
            .await
            .unwrap(),
    );
    assert_eq!(CasPath::recorded_in(dir.path()).await.unwrap(), None);
    let err = ObjectStore::open(dir.path()).await.unwrap_err();
    assert!(matches!(err, StoreError::LayoutMismatch { .. }), "{err}");
    // Ids that only look like a CasPath's are not taken for one.
    for id in [
        "cas:5x",
        "cas:x2",
        "cas:05x2",
        "cas:5x2x1",
        "cas:5 x2",
        "cas:-1x2",
    ] {
        fs::write(dir.path().join("LAYOUT"), format!("{id}\n")).unwrap();
        assert_eq!(
            CasPath::recorded_in(dir.path()).await.unwrap(),
            None,
            "{id}"
        );
    }
}

#[tokio::test]
async fn a_custom_path_transform_is_used_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let flat = CustomPath::new("flat", |_: &Cid| std::path::PathBuf::from("all"));
    let store = ObjectStore::open_with(dir.path(), StoreConfig::default(), flat)
        .await
        .unwrap();
    let cid = store.write(&b"x"[..]).await.unwrap().cid;
    assert_eq!(
        store.path_of(&cid).unwrap(),
        dir.path().join("objects/all").join(cid.to_string())
    );
    let listed: Vec<Cid> = store.list().try_collect().await.unwrap();
    assert_eq!(listed, vec![cid]);
}

#[tokio::test]
async fn writing_an_existing_object_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let first = store.write(Pattern::new(1, 100_000)).await.unwrap();
    let path = store.path_of(&first.cid).unwrap();
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    let again = store.write(Pattern::new(1, 100_000)).await.unwrap();
    assert_eq!(again.cid, first.cid);
    assert!(!again.created);
    assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    assert_eq!(store.usage().objects, 1);
    let again = store
        .write_expecting(first.cid, Pattern::new(1, 100_000))
        .await
        .unwrap();
    assert!(!again.created);
    let err = store
        .write_expecting(first.cid, Pattern::new(99, 5))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::HashMismatch { .. }), "{err}");
    store.verify(&first.cid).await.unwrap();
}

#[tokio::test]
async fn a_damaged_copy_is_replaced_by_a_verified_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let cid = store.write(Pattern::new(1, 100_000)).await.unwrap().cid;
    let path = store.path_of(&cid).unwrap();
    // What a power loss without fsync can leave: the name, but no bytes.
    drop(store);
    fs::File::create(&path).unwrap();
    let store = open(dir.path()).await;
    let w = store
        .write_expecting(cid, Pattern::new(1, 100_000))
        .await
        .unwrap();
    assert_eq!((w.len, w.created), (100_000, true));
    store.verify(&cid).await.unwrap();
    assert_eq!(
        store.usage(),
        Usage {
            objects: 1,
            bytes: 100_000
        }
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_symlink_planted_in_the_tree_is_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let secret = dir.path().join("outside.txt");
    fs::write(&secret, b"not an object").unwrap();
    let cid = Cid::of(b"not an object");
    let path = store.path_of(&cid).unwrap();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&secret, &path).unwrap();
    assert!(!store.has(&cid).await.unwrap());
    assert!(matches!(
        store.read(&cid).await,
        Err(StoreError::NotFound { .. })
    ));
    // A real write of those bytes replaces the link with an object.
    let w = store.write(&b"not an object"[..]).await.unwrap();
    assert!(w.created);
    assert!(fs::symlink_metadata(&path).unwrap().is_file());
    assert_eq!(fs::read(&secret).unwrap(), b"not an object");
}

#[tokio::test]
async fn reopening_with_another_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path()).await;
        store.write(&b"x"[..]).await.unwrap();
    }
    let err = ObjectStore::open_with(dir.path(), StoreConfig::default(), CasPath::new(2, 2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LayoutMismatch { .. }), "{err}");
    open(dir.path()).await;
}

#[tokio::test]
async fn write_expecting_commits_matching_bytes_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let keep = store.write(&b"already here"[..]).await.unwrap().cid;

    for (seed, &size) in INTERESTING_SIZES.iter().enumerate() {
        let (seed, size) = (seed as u64 + 100, size as u64);
        let cid = pattern_cid(seed, size);
        // The wrong bytes for this cid: nothing may be committed.
        let err = store
            .write_expecting(cid, Pattern::new(seed + 1, size + 1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::HashMismatch { expected, .. } if expected == cid),
            "{err}"
        );
        assert!(!store.has(&cid).await.unwrap());
        assert!(files_under(&dir.path().join("tmp")).is_empty());

        let w = store
            .write_expecting(cid, Pattern::new(seed, size))
            .await
            .unwrap();
        assert_eq!((w.cid, w.len, w.created), (cid, size, true));
    }
    store.verify(&keep).await.unwrap();
}

#[tokio::test]
async fn a_flipped_byte_is_caught_by_read_verified_and_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let neighbour = store.write(Pattern::new(2, 5000)).await.unwrap().cid;
    for &size in INTERESTING_SIZES.iter().filter(|&&s| s > 0) {
        let cid = store.write(Pattern::new(1, size as u64)).await.unwrap().cid;
        let path = store.path_of(&cid).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        bytes[size / 2] ^= 0x40;
        fs::write(&path, &bytes).unwrap();

        let mut reader = store.read_verified(&cid).await.unwrap();
        let err = reader.read_to_end(&mut Vec::new()).await.unwrap_err();
        match StoreError::from_io(&err) {
            Some(StoreError::Corrupt { cid: c, actual }) => {
                assert_eq!(*c, cid);
                assert_eq!(*actual, Cid::of(&bytes));
            }
            other => panic!("size {size}: expected Corrupt, got {other:?}"),
        }
        assert!(!path.exists(), "a corrupt object is not served again");
        assert!(matches!(
            store.read(&cid).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(!store.has(&cid).await.unwrap());
        let quarantined = files_under(&dir.path().join("quarantine"));
        assert!(
            quarantined.iter().any(|p| p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&cid.to_string())),
            "kept aside for inspection"
        );
    }
    store.verify(&neighbour).await.unwrap();
    assert_eq!(store.usage().objects, 1);
}

#[tokio::test]
async fn verify_reports_truncation_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let cid = store.write(Pattern::new(3, 70_000)).await.unwrap().cid;
    let path = store.path_of(&cid).unwrap();
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(1000).unwrap();
    let err = store.verify(&cid).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

#[tokio::test]
async fn missing_objects_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let cid = Cid::of(b"never stored");
    assert!(matches!(store.read(&cid).await, Err(StoreError::NotFound { cid: c }) if c == cid));
    assert!(matches!(
        store.read_verified(&cid).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.len(&cid).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(!store.has(&cid).await.unwrap());
    assert!(!store.delete(&cid).await.unwrap());
}

#[tokio::test]
async fn delete_removes_exactly_one_object_and_prunes_empty_directories() {
    let dir = tempfile::tempdir().unwrap();
    // Two levels of two characters: objects easily share directories.
    let store = ObjectStore::open_with(dir.path(), StoreConfig::default(), CasPath::new(1, 2))
        .await
        .unwrap();
    let mut cids = Vec::new();
    for seed in 0..64 {
        cids.push(store.write(Pattern::new(seed, 10)).await.unwrap().cid);
    }
    // Find two objects that share their first-level directory.
    let (a, b) = cids
        .iter()
        .flat_map(|a| cids.iter().map(move |b| (*a, *b)))
        .find(|(a, b)| a != b && a.to_string()[..1] == b.to_string()[..1])
        .unwrap();
    let a_dir = store.path_of(&a).unwrap().parent().unwrap().to_path_buf();

    assert!(store.delete(&a).await.unwrap());
    assert!(!store.has(&a).await.unwrap());
    assert!(store.has(&b).await.unwrap(), "neighbour untouched");
    store.verify(&b).await.unwrap();
    let first_level = dir.path().join("objects").join(&a.to_string()[..1]);
    assert!(first_level.is_dir(), "still holds the neighbour");
    if a.to_string()[..2] != b.to_string()[..2] {
        assert!(
            !a_dir.exists() || !files_under(&a_dir).is_empty(),
            "empty dir pruned"
        );
    }
    assert_eq!(store.usage().objects, 63);

    for cid in &cids {
        store.delete(cid).await.unwrap();
    }
    assert_eq!(store.usage(), Usage::default());
    assert_eq!(
        fs::read_dir(dir.path().join("objects")).unwrap().count(),
        0,
        "every directory pruned"
    );
}

#[tokio::test]
async fn list_streams_every_object_and_ignores_strangers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let mut expected = Vec::new();
    for seed in 0..300 {
        expected.push(store.write(Pattern::new(seed, 3)).await.unwrap().cid);
    }
    fs::write(dir.path().join("objects/not-a-cid.txt"), b"x").unwrap();
    let mut listed: Vec<Cid> = store.list().try_collect().await.unwrap();
    listed.sort();
    expected.sort();
    expected.dedup();
    assert_eq!(listed, expected);

    // Dropping the stream early stops the walk without error.
    let mut partial = store.list();
    assert!(partial.try_next().await.unwrap().is_some());
    drop(partial);
}

#[tokio::test]
async fn reopening_keeps_objects_and_recounts_usage() {
    let dir = tempfile::tempdir().unwrap();
    let cid;
    let usage;
    {
        let store = open(dir.path()).await;
        cid = store.write(Pattern::new(1, 1 << 20)).await.unwrap().cid;
        store.write(&b"small"[..]).await.unwrap();
        usage = store.usage();
    }
    let store = open(dir.path()).await;
    assert_eq!(store.usage(), usage);
    store.verify(&cid).await.unwrap();
}

#[tokio::test]
async fn leftover_temp_files_are_swept_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        open(dir.path()).await;
    }
    // What a crash in the middle of a write leaves behind.
    fs::write(dir.path().join("tmp/w-crashed"), vec![7u8; 4096]).unwrap();
    let store = open(dir.path()).await;
    assert!(files_under(&dir.path().join("tmp")).is_empty());
    assert_eq!(store.usage(), Usage::default());
}

#[tokio::test]
async fn a_second_open_of_the_same_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path()).await;
    let err = ObjectStore::open(dir.path()).await.unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
}

#[tokio::test]
async fn a_root_that_is_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    fs::write(&file, b"I am not a directory").unwrap();
    let err = ObjectStore::open(&file).await.unwrap_err();
    assert!(matches!(err, StoreError::NotADirectory { .. }), "{err}");
    assert_eq!(fs::read(&file).unwrap(), b"I am not a directory");
}

#[tokio::test]
async fn an_object_over_the_limit_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::default().max_object_len(1 << 20);
    let store = ObjectStore::open_with(dir.path(), config, CasPath::default())
        .await
        .unwrap();
    let keep = store.write(Pattern::new(1, 1 << 20)).await.unwrap().cid;
    let err = store
        .write(Pattern::new(2, (1 << 20) + 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::TooLarge { limit } if limit == 1 << 20),
        "{err}"
    );
    assert!(files_under(&dir.path().join("tmp")).is_empty());
    assert_eq!(store.usage().objects, 1);
    store.verify(&keep).await.unwrap();
}

/// A source that fails after some bytes, like a dropped upload.
struct FailingSource(Pattern);

impl tokio::io::AsyncRead for FailingSource {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.0).poll_read(cx, buf);
        if buf.filled().len() == before {
            return std::task::Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "peer went away",
            )));
        }
        polled
    }
}

#[tokio::test]
async fn a_failing_source_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let err = store
        .write(FailingSource(Pattern::new(1, 300_000)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Source(_)), "{err}");
    assert!(files_under(&dir.path().join("tmp")).is_empty());
    assert!(files_under(&dir.path().join("objects")).is_empty());
}

#[tokio::test]
async fn a_cancelled_write_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    // A source that never ends, cancelled by a time-out after it has started.
    let forever = tokio::io::repeat(0xab);
    let result =
        tokio::time::timeout(std::time::Duration::from_millis(50), store.write(forever)).await;
    assert!(result.is_err(), "the infinite write cannot finish");
    assert!(files_under(&dir.path().join("tmp")).is_empty());
    assert_eq!(store.usage(), Usage::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_writers_of_distinct_and_identical_objects() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()).await);
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let store = store.clone();
        // 8 distinct objects, and 8 writers of one shared object.
        let seed = if i < 8 { i } else { 1000 };
        tasks.push(tokio::spawn(async move {
            let w = store.write(Pattern::new(seed, 1 << 20)).await.unwrap();
            (seed, w)
        }));
    }
    let mut created_shared = 0;
    for t in tasks {
        let (seed, w) = t.await.unwrap();
        assert_eq!(w.cid, pattern_cid(seed, 1 << 20));
        if seed == 1000 && w.created {
            created_shared += 1;
        }
    }
    assert_eq!(
        created_shared, 1,
        "exactly one writer created the shared object"
    );
    let listed: Vec<Cid> = store.list().try_collect().await.unwrap();
    assert_eq!(listed.len(), 9);
    for cid in &listed {
        store.verify(cid).await.unwrap();
    }
    assert_eq!(
        store.usage(),
        Usage {
            objects: 9,
            bytes: 9 << 20
        }
    );
    assert!(files_under(&dir.path().join("tmp")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_during_deletes_and_rewrites_see_whole_objects_or_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()).await);
    let cid = store.write(Pattern::new(5, 1 << 20)).await.unwrap().cid;
    let expected = pattern_digest(5, 1 << 20);

    let churn = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..30 {
                store.delete(&cid).await.unwrap();
                store.write(Pattern::new(5, 1 << 20)).await.unwrap();
            }
        })
    };
    let mut reads = 0;
    while !churn.is_finished() {
        match store.read_verified(&cid).await {
            Ok(r) => {
                assert_eq!(digest_async_reader(r).await.unwrap(), expected);
                reads += 1;
            }
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    churn.await.unwrap();
    assert!(store.has(&cid).await.unwrap());
    assert!(reads > 0 || store.verify(&cid).await.is_ok());
    assert!(files_under(&dir.path().join("quarantine")).is_empty());
}

#[tokio::test]
async fn without_fsync_writes_are_still_atomic_and_correct() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectStore::open_with(
        dir.path(),
        StoreConfig::default().fsync(false),
        CasPath::default(),
    )
    .await
    .unwrap();
    for (seed, &size) in INTERESTING_SIZES.iter().enumerate() {
        let w = store
            .write(Pattern::new(seed as u64, size as u64))
            .await
            .unwrap();
        assert_eq!(w.cid, pattern_cid(seed as u64, size as u64));
        store.verify(&w.cid).await.unwrap();
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    #[test]
    fn round_trip_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..20_000)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = ObjectStore::open_with(dir.path(), StoreConfig::default().fsync(false), CasPath::default()).await.unwrap();
            let w = store.write(&bytes[..]).await.unwrap();
            assert_eq!(w.cid, Cid::of(&bytes));
            let mut out = Vec::new();
            store.read_verified(&w.cid).await.unwrap().read_to_end(&mut out).await.unwrap();
            assert_eq!(out, bytes);
        });
    }
}
