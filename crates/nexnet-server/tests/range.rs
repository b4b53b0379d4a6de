//! Byte ranges of a stored file: exactly the bytes asked for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use nexnet_server::{FileServer, ServerConfig, ServerError};
use nexnet_testkit::Pattern;
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn ranges_return_exactly_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let node = FileServer::open(ServerConfig::new(dir.path()).fsync(false))
        .await
        .unwrap();
    let (seed, size) = (11, (1 << 20) + 17);
    node.store("big", Pattern::new(seed, size)).await.unwrap();

    for (offset, len) in [
        (0, 1),
        (0, size),
        (1, 15),
        (15, 2),
        (16, 17),
        (65_535, 2),
        (65_536, 70_000),
        (1 << 20, 17),
        (size - 1, 1),
        (size - 5, 100), // runs past the end: clipped
    ] {
        let mut reader = node.get_range("big", offset, len).await.unwrap();
        let want = len.min(size - offset);
        assert_eq!(reader.len(), want);
        assert_eq!(reader.file_len(), size);
        let mut got = Vec::new();
        reader.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len() as u64, want, "range {offset}+{len}");
        for (i, b) in got.iter().enumerate() {
            assert_eq!(
                *b,
                Pattern::byte_at(seed, offset + i as u64),
                "range {offset}+{len}, byte {i}"
            );
        }
    }
    for offset in [size, size + 1, u64::MAX] {
        assert!(matches!(
            node.get_range("big", offset, 1).await,
            Err(ServerError::RangeNotSatisfiable { .. })
        ));
    }
    node.store("empty", &b""[..]).await.unwrap();
    let mut r = node.get_range("empty", 0, 10).await.unwrap();
    let mut got = Vec::new();
    r.read_to_end(&mut got).await.unwrap();
    assert!(got.is_empty());
    node.shutdown().await;
}
