//! A node's data directory across restarts, and damaged files in it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;

use nexnet_server::{FileServer, ServerConfig, ServerError};
use tokio::io::AsyncReadExt;

fn config(dir: &std::path::Path) -> ServerConfig {
    ServerConfig::new(dir).fsync(false).repair_interval(None)
}

#[tokio::test]
async fn identity_key_and_files_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = FileServer::open(config(dir.path())).await.unwrap();
    let (id, key) = (node.node_id(), node.key_id());
    node.store("kept.txt", &b"still here"[..]).await.unwrap();
    node.shutdown().await;
    drop(node);

    let node = FileServer::open(config(dir.path())).await.unwrap();
    assert_eq!((node.node_id(), node.key_id()), (id, key));
    let mut text = String::new();
    node.get("kept.txt")
        .await
        .unwrap()
        .read_to_string(&mut text)
        .await
        .unwrap();
    assert_eq!(text, "still here");
    let listed = node.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name.as_deref(), Some("kept.txt"));
    node.shutdown().await;
}

#[tokio::test]
async fn a_second_node_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = FileServer::open(config(dir.path())).await.unwrap();
    let err = FileServer::open(config(dir.path())).await.unwrap_err();
    assert!(matches!(err, ServerError::Store(_)), "{err}");
    node.shutdown().await;
}

#[tokio::test]
async fn damaged_catalog_records_are_moved_aside_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let node = FileServer::open(config(dir.path())).await.unwrap();
    node.store("good.txt", &b"good"[..]).await.unwrap();
    node.shutdown().await;
    drop(node);

    let entries = dir.path().join("catalog/entries");
    fs::write(
        entries.join("00112233445566778899aabbccddeeff"),
        b"\xff\xff garbage",
    )
    .unwrap();
    fs::write(entries.join("huge"), vec![7u8; 1 << 20]).unwrap();
    fs::write(dir.path().join("catalog/tombstones/not-a-cid"), b"").unwrap();

    let node = FileServer::open(config(dir.path())).await.unwrap();
    assert_eq!(node.list().await.unwrap().len(), 1);
    let damaged = fs::read_dir(dir.path().join("catalog/damaged"))
        .unwrap()
        .count();
    assert_eq!(damaged, 3);
    node.shutdown().await;
}

/// Objects no file names (a crash between a store's chunks and its entry)
/// are removed by the collector once older than the grace period; but
/// while damaged records sit in catalog/damaged, an unnamed object may be
/// part of a file whose record is damaged, so it is kept.
#[tokio::test]
async fn objects_no_file_names_are_collected_unless_records_are_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let collecting = || config(dir.path()).gc_grace(std::time::Duration::ZERO);
    let node = FileServer::open(config(dir.path())).await.unwrap();
    node.store("a.txt", &b"named"[..]).await.unwrap();
    node.store("b.txt", &b"loses its record"[..]).await.unwrap();
    // Young unnamed objects are never collected: a store may be in flight.
    assert_eq!(node.repair().await.collected, 0);
    node.shutdown().await;
    drop(node);
    let objects = || object_files(&dir.path().join("store"));
    // A root each: files shorter than 32 bytes are kept in their roots.
    assert_eq!(objects(), 2);

    // b's record damaged: its objects look unnamed, and are kept.
    let entries = dir.path().join("catalog/entries");
    let b = nexnet_crypto::name_id("b.txt");
    fs::write(entries.join(hex::encode(b.as_bytes())), b"\xff damaged").unwrap();
    let node = FileServer::open(collecting()).await.unwrap();
    assert_eq!(node.list().await.unwrap().len(), 1);
    assert_eq!(node.repair().await.collected, 0);
    node.shutdown().await;
    drop(node);
    assert_eq!(objects(), 2, "an object of a damaged record was removed");

    // Once someone has dealt with the damaged record, they go.
    fs::remove_dir_all(dir.path().join("catalog/damaged")).unwrap();
    let node = FileServer::open(collecting()).await.unwrap();
    assert_eq!(node.repair().await.collected, 1);
    assert_eq!(objects(), 1);
    let mut text = String::new();
    node.get("a.txt")
        .await
        .unwrap()
        .read_to_string(&mut text)
        .await
        .unwrap();
    assert_eq!(text, "named");
    node.shutdown().await;
}

/// A catalog that lost most of its records (restored from an old backup)
/// makes its files' objects look unnamed: the collector keeps them all.
#[tokio::test]
async fn the_collector_keeps_everything_when_most_records_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let node = FileServer::open(config(dir.path())).await.unwrap();
    for i in 0..80 {
        node.store(&format!("f{i}"), &b"a file of its own"[..])
            .await
            .unwrap();
    }
    node.shutdown().await;
    drop(node);
    let objects = || object_files(&dir.path().join("store"));
    assert_eq!(objects(), 80);
    let entries = dir.path().join("catalog/entries");
    for i in 0..70 {
        let id = nexnet_crypto::name_id(&format!("f{i}"));
        fs::remove_file(entries.join(hex::encode(id.as_bytes()))).unwrap();
    }
    let node = FileServer::open(config(dir.path()).gc_grace(std::time::Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(node.list().await.unwrap().len(), 10);
    assert_eq!(node.repair().await.collected, 0);
    node.shutdown().await;
    assert_eq!(
        objects(),
        80,
        "objects of files whose records were lost were removed"
    );
}

/// Object files under a store directory.
fn object_files(store: &std::path::Path) -> usize {
    object_paths(store).len()
}

#[tokio::test]
async fn a_malformed_node_id_file_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("node.id"), b"not hex\n").unwrap();
    let err = FileServer::open(config(dir.path())).await.unwrap_err();
    assert!(matches!(err, ServerError::Catalog { .. }), "{err}");
    fs::write(dir.path().join("node.id"), vec![b'a'; 4096]).unwrap();
    let err = FileServer::open(config(dir.path())).await.unwrap_err();
    assert!(matches!(err, ServerError::Catalog { .. }), "{err}");
}

#[tokio::test]
async fn bad_configurations_and_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        config(dir.path()).replication(0),
        config(dir.path()).replication(2).write_quorum(3),
        config(dir.path()).write_quorum(0),
    ] {
        let err = FileServer::open(bad).await.unwrap_err();
        assert!(matches!(err, ServerError::Config(_)), "{err}");
    }
    let node = FileServer::open(config(dir.path())).await.unwrap();
    for name in ["", "tab\there", &"x".repeat(2000)] {
        let err = node.store(name, &b"x"[..]).await.unwrap_err();
        assert!(
            matches!(err, ServerError::InvalidName { .. }),
            "{name:?}: {err}"
        );
    }
    assert!(matches!(
        node.get("never stored").await,
        Err(ServerError::NotFound { .. })
    ));
    node.shutdown().await;
}

#[tokio::test]
async fn init_creates_a_node_adopts_shared_files_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let first = nexnet_server::init_data_dir(&dir.path().join("a"), None, None).unwrap();
    let err = nexnet_server::init_data_dir(&dir.path().join("a"), None, None).unwrap_err();
    assert!(
        matches!(err, ServerError::AlreadyInitialized { .. }),
        "{err}"
    );

    // A second node adopts the first's key and secret: same key id, same
    // secret bytes, its own node id.
    let second = nexnet_server::init_data_dir(
        &dir.path().join("b"),
        Some(&first.key_file),
        Some(&first.secret_file),
    )
    .unwrap();
    assert_ne!(first.node_id, second.node_id);
    assert_eq!(
        fs::read(&first.secret_file).unwrap(),
        fs::read(&second.secret_file).unwrap()
    );
    let a = FileServer::open(config(&dir.path().join("a")))
        .await
        .unwrap();
    let b = FileServer::open(config(&dir.path().join("b")))
        .await
        .unwrap();
    assert_eq!(a.key_id(), b.key_id());
    assert_eq!(a.node_id(), first.node_id);
    a.shutdown().await;
    b.shutdown().await;

    // A bad file to adopt leaves nothing behind.
    let bad = dir.path().join("bad.key");
    fs::write(&bad, b"nonsense").unwrap();
    let err = nexnet_server::init_data_dir(&dir.path().join("c"), Some(&bad), None).unwrap_err();
    assert!(matches!(err, ServerError::Crypto(_)), "{err}");
    assert!(!dir.path().join("c/node.id").exists());
}

/// How many directory levels lie between `objects/` and the object file.
fn object_depth(dir: &std::path::Path, cid: &nexnet_store::Cid) -> usize {
    let mut stack = vec![(dir.join("store/objects"), 0)];
    while let Some((d, depth)) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push((p, depth + 1));
            } else if p.file_name().unwrap().to_str() == Some(&cid.to_hex()) {
                return depth;
            }
        }
    }
    panic!("object {cid} not found under {}", dir.display());
}

#[tokio::test]
async fn a_data_directory_keeps_the_object_layout_it_was_created_with() {
    // A new node puts objects two 5-character levels deep.
    let new = tempfile::tempdir().unwrap();
    let node = FileServer::open(config(new.path())).await.unwrap();
    let cid = node.store("a", &b"two levels"[..]).await.unwrap().cid;
    node.shutdown().await;
    drop(node);
    assert_eq!(object_depth(new.path(), &cid), 2);

    // A store created with the full-depth layout (as nodes made before
    // that choice were) is opened with it: its files stay readable and new
    // ones go where its layout says.
    let old = tempfile::tempdir().unwrap();
    drop(
        nexnet_store::ObjectStore::open_with(
            old.path().join("store"),
            nexnet_store::StoreConfig::default(),
            nexnet_store::CasPath::new(5, 8),
        )
        .await
        .unwrap(),
    );
    let node = FileServer::open(config(old.path())).await.unwrap();
    let cid = node.store("b", &b"eight levels"[..]).await.unwrap().cid;
    node.shutdown().await;
    drop(node);
    assert_eq!(object_depth(old.path(), &cid), 8);
    let node = FileServer::open(config(old.path())).await.unwrap();
    let mut text = String::new();
    node.get("b")
        .await
        .unwrap()
        .read_to_string(&mut text)
        .await
        .unwrap();
    assert_eq!(text, "eight levels");
    node.shutdown().await;
}

/// Every object file under a store directory, by path.
fn object_paths(store: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![store.join("objects")];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[tokio::test]
async fn unnamed_objects_are_kept_when_the_catalog_may_be_missing_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let entries = dir.path().join("catalog/entries");
    let collecting = || config(dir.path()).gc_grace(std::time::Duration::ZERO);
    let node = FileServer::open(config(dir.path())).await.unwrap();
    for i in 0..70 {
        node.store(&format!("f{i}"), format!("file {i}").as_bytes())
            .await
            .unwrap();
    }
    // A delete cut off after its tombstone: its root is back (a file this
    // short is its root alone).
    node.store("gone", &b"deleted"[..]).await.unwrap();
    let before_delete = object_paths(&store);
    let bytes_before: std::collections::HashMap<_, _> = before_delete
        .iter()
        .map(|p| (p.clone(), fs::read(p).unwrap()))
        .collect();
    node.delete("gone").await.unwrap();
    let after_delete = object_paths(&store);
    let deleted: Vec<_> = before_delete
        .iter()
        .filter(|p| !after_delete.contains(p))
        .collect();
    assert_eq!(deleted.len(), 1);
    let saved: Vec<&Vec<u8>> = deleted.iter().map(|p| &bytes_before[*p]).collect();
    node.shutdown().await;
    drop(node);
    for (p, bytes) in deleted.iter().zip(&saved) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }
    assert_eq!(object_paths(&store).len(), 71);

    // At start the root goes (its tombstone is here), even beside a damaged
    // record: a tombstone needs no one else's word.
    let damaged = entries.join("00112233445566778899aabbccddeeff");
    fs::write(&damaged, b"\xff damaged").unwrap();
    let node = FileServer::open(collecting()).await.unwrap();
    assert_eq!(
        object_paths(&store).len(),
        70,
        "the deleted file's objects stay"
    );
    assert!(deleted.iter().all(|p| !p.exists()));
    assert_eq!(node.repair().await.collected, 0);
    node.shutdown().await;
    drop(node);
    fs::remove_dir_all(dir.path().join("catalog/damaged")).unwrap();

    // 66 of 70 records gone (a catalog restored from an old backup): more
    // unnamed objects than a crash leaves, so they are kept.
    let mut records: Vec<_> = fs::read_dir(&entries)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    records.sort();
    let lost = dir.path().join("lost-records");
    fs::create_dir_all(&lost).unwrap();
    for r in &records[..66] {
        fs::rename(r, lost.join(r.file_name().unwrap())).unwrap();
    }
    let node = FileServer::open(collecting()).await.unwrap();
    assert_eq!(node.list().await.unwrap().len(), 4);
    assert_eq!(node.repair().await.collected, 0);
    node.shutdown().await;
    drop(node);
    assert_eq!(
        object_paths(&store).len(),
        70,
        "objects of lost records were removed"
    );

    // No catalog at all beside a full store: everything is kept.
    fs::remove_dir_all(dir.path().join("catalog")).unwrap();
    let node = FileServer::open(collecting()).await.unwrap();
    assert!(node.list().await.unwrap().is_empty());
    assert_eq!(node.repair().await.collected, 0);
    node.shutdown().await;
    drop(node);
    assert_eq!(
        object_paths(&store).len(),
        70,
        "a lost catalog cost the store"
    );

    // The records come back: every file reads again.
    fs::remove_dir_all(dir.path().join("catalog")).unwrap();
    fs::create_dir_all(&entries).unwrap();
    for r in &records {
        let name = r.file_name().unwrap();
        let from = if lost.join(name).exists() {
            lost.join(name)
        } else {
            continue;
        };
        fs::rename(from, r).unwrap();
    }
    let node = FileServer::open(config(dir.path())).await.unwrap();
    let listed = node.list().await.unwrap();
    assert_eq!(listed.len(), 66);
    for file in listed {
        let name = file.name.unwrap();
        let mut text = String::new();
        node.get(&name)
            .await
            .unwrap()
            .read_to_string(&mut text)
            .await
            .unwrap();
        assert_eq!(text, format!("file {}", &name[1..]));
    }
    node.shutdown().await;
}
