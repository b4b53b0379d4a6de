//! Files as verified chunks: sizes and ranges around chunk boundaries, a
//! holder with one bad chunk, a read cut short and resumed, a holder lost
//! in the middle of a read, holders that offer a chunk and withhold it, a
//! holder that cannot make its chunks durable,
//! the read cache's budget, deep manifests,
//! deletes and repair of every chunk, the collector, and data directories
//! of the first format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use nexnet_crypto::secret_file;
use nexnet_p2p::{Event, Events, NetworkSecret, NodeId, TcpTransport, Transport, TransportConfig};
use nexnet_server::{
    FileServer, ServerError, placement,
    protocol::{Message, Refusal},
};
use nexnet_store::Cid;
use nexnet_testkit::{
    Pattern, digest_async_reader,
    mesh::{
        Mesh, assert_reads, chunk_objects, eventually, file_objects, flip_a_byte, node_config,
        object_file, quarantined, store_pattern,
    },
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KIB: u64 = 1024;

/// A mesh of `n` nodes with replication `r` and chunks of `chunk` bytes.
async fn mesh(n: usize, r: usize, chunk: u64) -> Mesh {
    Mesh::start_with(n, |root, i| {
        node_config(root, i)
            .replication(r)
            .chunk_size(chunk as u32)
            .hedge_delay(Duration::from_millis(300))
    })
    .await
}

/// The length of a chunk of the resume test's file (all are whole).
fn c_len(_: &Cid) -> u64 {
    64 * KIB
}

/// The bytes `[offset, offset + len)` of `name` on `node`, checked against
/// the pattern.
async fn assert_range(node: &FileServer, name: &str, seed: u64, size: u64, offset: u64, len: u64) {
    let mut reader = node.get_range(name, offset, len).await.unwrap();
    let want = len.min(size - offset);
    assert_eq!(reader.len(), want, "{name} {offset}+{len}");
    let mut got = Vec::new();
    reader.read_to_end(&mut got).await.unwrap();
    assert_eq!(got.len() as u64, want, "{name} {offset}+{len}");
    let expected: Vec<u8> = (0..want)
        .map(|i| Pattern::byte_at(seed, offset + i))
        .collect();
    assert!(got == expected, "{name} {offset}+{len}: wrong bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_and_ranges_around_chunk_boundaries() {
    for c in [64 * KIB, 128 * KIB] {
        let nodes = mesh(4, 2, c).await;
        for (k, size) in [0, 1, c - 1, c, c + 1, 2 * c, 8 * c + 17]
            .into_iter()
            .enumerate()
        {
            let name = format!("edge/{c}/{size}");
            let seed = 100 + k as u64;
            let receipt = store_pattern(&nodes[k % 4], &name, seed, size).await;
            assert_eq!(receipt.chunks, chunk_objects(size, c), "{receipt:?}");
            // Whole, on every node: holders of some chunks and of none.
            for n in nodes.iter() {
                assert_reads(n, &name, seed, size).await;
            }
            if size == 0 {
                continue;
            }
            let last = size - 1;
            let mut ranges = vec![(0, 1), (0, size), (last, 1), (last, 10), (size / 2, 3)];
            if size > c {
                ranges.extend([
                    (c - 1, 2),     // across the first boundary
                    (c, c),         // exactly the second chunk
                    (c - 1, c + 2), // a whole chunk and a byte each side
                    (c + 1, 5),     // inside the second
                    (0, c),         // exactly the first
                ]);
            }
            for (offset, len) in ranges.into_iter().filter(|(o, _)| *o < size) {
                let reader = &nodes[(k + 1) % 4];
                assert_range(reader, &name, seed, size, offset, len).await;
            }
        }
        nodes.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_with_one_bad_chunk_is_passed_over_for_that_chunk_only() {
    let c = 64 * KIB;
    let nodes = mesh(4, 2, c).await;
    let (seed, size) = (200, 12 * c + 5);
    let receipt = store_pattern(&nodes[0], "bad/chunk", seed, size).await;
    let holder = nodes
        .iter()
        .find(|n| object_file(n, &receipt.cid).is_some())
        .unwrap();
    let chunks = file_objects(holder, &receipt.cid);
    // Twelve chunks; the 5-byte tail is kept in the root.
    assert_eq!(chunks.len(), 12);
    let all = nodes.ids();
    let mut objects = chunks.clone();
    objects.push(receipt.cid);
    // The reader fetches what it does not hold; the chunk it fetches first
    // of a holder is damaged on that holder.
    let reader = &nodes[0];
    let holds = |c: &Cid| placement::holders(c, all.clone(), 2).contains(&reader.node_id());
    let fetched: Vec<Cid> = objects.iter().copied().filter(|c| !holds(c)).collect();
    let victim_chunk = *chunks[..12].iter().rev().find(|c| !holds(c)).unwrap();
    let mut order = placement::holders(&victim_chunk, all.clone(), usize::MAX);
    order.retain(|n| *n != reader.node_id());
    let bad = nodes.node(order[0]);
    let damaged = flip_a_byte(&object_file(bad, &victim_chunk).unwrap());

    let before = reader.stats().chunks_fetched;
    assert_reads(reader, "bad/chunk", seed, size).await;
    // What it lacks, each kept once (the bad copy was refused, the other
    // holder's kept).
    assert_eq!(reader.stats().chunks_fetched - before, fetched.len() as u64);
    eventually("the bad holder quarantines its copy", async || {
        quarantined(bad, &victim_chunk).len() == 1
    })
    .await;
    assert_eq!(
        std::fs::read(&quarantined(bad, &victim_chunk)[0]).unwrap(),
        damaged
    );
    // Nothing else on it was touched.
    for c in chunks.iter().filter(|c| **c != victim_chunk) {
        assert!(quarantined(bad, c).is_empty());
    }
    // A repair pass (by whichever node repairs the file) brings a good
    // copy back.
    for n in nodes.iter() {
        n.repair().await;
    }
    assert!(object_file(bad, &victim_chunk).is_some());
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_cut_short_and_retried_fetches_only_the_missing_chunks() {
    let c = 64 * KIB;
    let nodes = mesh(4, 2, c).await;
    let (seed, size) = (300, 40 * c);
    let receipt = store_pattern(&nodes[0], "resume/file", seed, size).await;
    let holder = nodes
        .iter()
        .find(|n| object_file(n, &receipt.cid).is_some())
        .unwrap();
    let mut objects = file_objects(holder, &receipt.cid);
    objects.push(receipt.cid);
    let reader = &nodes[0];
    let all = nodes.ids();
    let lacks: Vec<&Cid> = objects
        .iter()
        .filter(|c| !placement::holders(c, all.clone(), 2).contains(&reader.node_id()))
        .collect();
    let lacking = lacks.len() as u64;
    let cached: u64 = lacks
        .iter()
        .map(|c| {
            if **c == receipt.cid {
                receipt.object_len
            } else {
                c_len(c)
            }
        })
        .sum();

    // Read a quarter, then drop the reader (a client gone).
    let mut r = reader.get("resume/file").await.unwrap();
    let mut head = vec![0u8; (10 * c) as usize];
    r.read_exact(&mut head).await.unwrap();
    drop(r);
    let first = reader.stats().chunks_fetched;
    assert!(first > 0 && first < lacking, "{first} of {lacking}");

    // The retry reads everything, fetching each chunk once over both reads.
    assert_reads(reader, "resume/file", seed, size).await;
    assert_eq!(
        reader.stats().chunks_fetched,
        lacking,
        "{:?}",
        reader.stats()
    );
    // Kept in the cache (only what this node does not hold by placement),
    // within the default budget; and a third read fetches nothing.
    assert_eq!(reader.stats().cached_bytes, cached);
    assert_reads(reader, "resume/file", seed, size).await;
    assert_eq!(reader.stats().chunks_fetched, lacking);
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_lost_in_the_middle_of_a_read_does_not_stop_it() {
    let c = 64 * KIB;
    let mut nodes = mesh(5, 2, c).await;
    let (seed, size) = (400, 64 * c);
    store_pattern(&nodes[1], "lost/holder", seed, size).await;
    // Node 0 reads; node 4 goes away once a few chunks are in.
    let mut r = nodes[0].get("lost/holder").await.unwrap();
    let mut head = vec![0u8; (4 * c) as usize];
    r.read_exact(&mut head).await.unwrap();
    let gone = nodes.pop().unwrap();
    gone.shutdown().await;
    // The rest comes whole (its bytes are checked by the read below).
    let (len, _) = digest_async_reader(r).await.unwrap();
    assert_eq!(len, size - 4 * c);
    assert_reads(&nodes[0], "lost/holder", seed, size).await;
    nodes.shutdown().await;
}

/// How a withholding peer answers a `Fetch` after its `Sending`.
#[derive(Clone, Copy)]
enum Withhold {
    /// It never opens the stream.
    NoStream,
    /// It opens it and sends a byte every 50 ms.
    Trickle,
}

/// A peer that offers every chunk it is asked for (with the chunk size the
/// test uses) and then withholds it; it refuses anything else. Counts the
/// fetches it was asked.
async fn withholding_peer(mut events: Events<Message>, how: Withhold, asked: Arc<AtomicUsize>) {
    while let Some(event) = events.next().await {
        let Event::Request {
            peer,
            message,
            responder,
        } = event
        else {
            continue;
        };
        let answer = match message {
            Message::Members(_) => Message::Members(Vec::new()),
            Message::Fetch { transfer, .. } => {
                asked.fetch_add(1, Ordering::Relaxed);
                if let Withhold::Trickle = how {
                    tokio::spawn(async move {
                        let Ok(mut out) = peer.open_stream(Message::Object { transfer }).await
                        else {
                            return;
                        };
                        for _ in 0..64 * KIB {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            if out.write_all(&[0]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
                Message::Sending { len: 64 * KIB }
            }
            _ => Message::Refused(Refusal::Storage),
        };
        let _ = responder.respond(answer).await;
    }
}

/// A member that answers every fetch at once and then sends nothing, or a
/// byte at a time, is raced by the next holder: the read is whole and
/// right, well before the stall time-out would have ended its fetches.
async fn withholding_holder_is_raced(how: Withhold) {
    let c = 64 * KIB;
    let nodes = Mesh::start_with(3, |root, i| {
        node_config(root, i)
            .replication(2)
            .chunk_size(c as u32)
            .hedge_delay(Duration::from_millis(100))
            .stall_timeout(Duration::from_secs(600))
    })
    .await;
    let (seed, size) = (500, 64 * c);
    store_pattern(&nodes[1], "withheld", seed, size).await;
    // The peer joins the reader only: it ranks first for about a third of
    // the chunks the reader lacks ((2/3)^43 that it ranks first for none).
    let secret = secret_file::load(&nodes.root().join("shared.secret")).unwrap();
    let config = TransportConfig::new(
        NodeId::generate().unwrap(),
        NetworkSecret::from_bytes(*secret),
    );
    let (fake, events) = TcpTransport::<Message>::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    tokio::spawn(withholding_peer(events, how, asked.clone()));
    fake.dial(nodes[0].local_addr()).await.unwrap();
    eventually("the reader sees the withholding peer", async || {
        nodes[0].stats().peers == 3
    })
    .await;
    tokio::time::timeout(
        Duration::from_secs(60),
        assert_reads(&nodes[0], "withheld", seed, size),
    )
    .await
    .expect("the read waited on the withholding peer");
    assert!(
        asked.load(Ordering::Relaxed) > 0,
        "the withholding peer was never asked"
    );
    fake.close().await;
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_offers_a_chunk_and_never_sends_it_is_raced() {
    withholding_holder_is_raced(Withhold::NoStream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_trickles_a_chunk_is_raced() {
    withholding_holder_is_raced(Withhold::Trickle).await;
}

/// A member that takes every chunk and root it is sent, and then cannot
/// make them durable: the store says so (`NotDurable`, naming it), and the
/// file is committed and reads whole from the honest node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_cannot_sync_makes_the_store_say_so() {
    let c = 64 * KIB;
    let nodes = mesh(1, 2, c).await;
    let secret = secret_file::load(&nodes.root().join("shared.secret")).unwrap();
    let id = NodeId::generate().unwrap();
    let config = TransportConfig::new(id, NetworkSecret::from_bytes(*secret));
    let (fake, mut events) = TcpTransport::<Message>::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let synced = Arc::new(AtomicUsize::new(0));
    let asked = synced.clone();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                Event::Stream { mut stream, .. } => {
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
                    });
                }
                Event::Request {
                    message, responder, ..
                } => {
                    let answer = match message {
                        Message::Members(_) => Message::Members(Vec::new()),
                        Message::StoreChunk { .. }
                        | Message::Commit { .. }
                        | Message::PutEntry(_) => Message::Committed,
                        Message::Lookup { .. } => Message::Entry(None),
                        Message::Sync => {
                            asked.fetch_add(1, Ordering::Relaxed);
                            Message::Refused(Refusal::Storage)
                        }
                        _ => Message::Refused(Refusal::NotARequest),
                    };
                    let _ = responder.respond(answer).await;
                }
                _ => {}
            }
        }
    });
    fake.dial(nodes[0].local_addr()).await.unwrap();
    eventually("the node sees the member", async || {
        nodes[0].stats().peers == 1
    })
    .await;
    let (seed, size) = (900, 16 * c);
    let err = nodes[0]
        .store("unsynced", Pattern::new(seed, size))
        .await
        .unwrap_err();
    match &err {
        ServerError::NotDurable { failures } => {
            assert_eq!(failures.len(), 1, "{err}");
            assert_eq!(failures[0].0, id, "{err}");
        }
        other => panic!("expected NotDurable, got {other}"),
    }
    assert_eq!(
        synced.load(Ordering::Relaxed),
        1,
        "one Sync per node per store"
    );
    assert_reads(&nodes[0], "unsynced", seed, size).await;
    fake.close().await;
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_keeps_its_budget_and_never_evicts_a_placement_chunk() {
    let c = 64 * KIB;
    let budget = 3 * c;
    let nodes = Mesh::start_with(4, |root, i| {
        node_config(root, i)
            .replication(2)
            .chunk_size(c as u32)
            .cache_size(budget)
    })
    .await;
    let (seed, size) = (500, 24 * c);
    store_pattern(&nodes[1], "cache/file", seed, size).await;
    let reader = &nodes[0];
    let held_before = reader.stats().objects;
    for _ in 0..2 {
        assert_reads(reader, "cache/file", seed, size).await;
        let stats = reader.stats();
        assert!(stats.cached_bytes <= budget, "{stats:?}");
        assert!(stats.cached_bytes > 0, "{stats:?}");
        // The chunks it holds by placement are all still there.
        assert_eq!(stats.objects, held_before, "{stats:?}");
    }
    let cache_dir = reader.config().data_dir.join("cache");
    assert!(cache_dir.exists());
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_manifests_store_read_range_and_delete() {
    let c = 64 * KIB;
    let nodes = Mesh::start_with(3, |root, i| {
        node_config(root, i)
            .replication(2)
            .chunk_size(c as u32)
            .manifest_fanout(4)
    })
    .await;
    // 69 chunk objects (the 9-byte tail is in the root) with 4 ids a node:
    // a tree of depth 3.
    let (seed, size) = (600, 69 * c + 9);
    let receipt = store_pattern(&nodes[0], "deep/file", seed, size).await;
    assert_eq!(receipt.chunks, 69);
    for n in nodes.iter() {
        assert_reads(n, "deep/file", seed, size).await;
    }
    for (offset, len) in [(0, 1), (17 * c - 1, 3 * c), (size - 2, 2), (33 * c, c)] {
        assert_range(&nodes[2], "deep/file", seed, size, offset, len).await;
    }
    let stored: u64 = nodes.iter().map(|n| n.stats().objects).sum();
    // 69 chunks, 18 + 5 + 2 inner nodes and the root, each on 2 nodes.
    assert_eq!(stored, 2 * (69 + 25 + 1));
    nodes[1].delete("deep/file").await.unwrap();
    for n in nodes.iter() {
        assert_eq!(n.stats().objects, 0, "{:?}", n.stats());
        assert!(matches!(
            n.get("deep/file").await,
            Err(ServerError::NotFound { .. })
        ));
    }
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_restores_every_chunk_of_a_1024_chunk_file_after_a_node_is_wiped() {
    let c = 64 * KIB;
    let mut nodes = mesh(4, 2, c).await;
    let (seed, size) = (700, 1024 * c);
    let receipt = store_pattern(&nodes[0], "wiped/file", seed, size).await;
    let holder = nodes
        .iter()
        .find(|n| object_file(n, &receipt.cid).is_some())
        .unwrap();
    let mut objects = file_objects(holder, &receipt.cid);
    objects.push(receipt.cid);
    assert_eq!(objects.len(), 1025);

    // Node 3 loses its disk: stopped, its store removed, started again.
    let wiped = nodes.pop().unwrap();
    let config = nexnet_testkit::mesh::stop(wiped).await;
    std::fs::remove_dir_all(config.data_dir.join("store")).unwrap();
    std::fs::remove_dir_all(config.data_dir.join("catalog")).unwrap();
    let back = nexnet_testkit::mesh::restart(config, nodes[0].local_addr()).await;
    assert!(back.wait_for_peers(3, Duration::from_secs(20)).await);
    nodes.push(back);
    nodes.eventually_peers(3, "the wiped node").await;
    for n in nodes.iter() {
        n.repair().await;
    }
    let all = nodes.ids();
    let mut missing = Vec::new();
    for cid in &objects {
        for h in placement::holders(cid, all.clone(), 2) {
            if object_file(nodes.node(h), cid).is_none() {
                missing.push((*cid, h));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} copies missing: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_reads(&nodes[3], "wiped/file", seed, size).await;
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_removes_what_a_cut_store_left_and_nothing_named() {
    let c = 64 * KIB;
    let nodes = Mesh::start_with(3, |root, i| {
        node_config(root, i)
            .replication(2)
            .chunk_size(c as u32)
            .gc_grace(Duration::ZERO)
    })
    .await;
    let (seed, size) = (800, 9 * c + 1);
    store_pattern(&nodes[0], "gc/kept", seed, size).await;
    let named: u64 = nodes.iter().map(|n| n.stats().objects).sum();

    // A store whose source breaks after 200 chunks: those chunks are on
    // their holders, named by nothing, and more than a tenth of each
    // node's store (a guard against a lost catalog does not count them).
    let broken = tokio::io::AsyncReadExt::chain(Pattern::new(801, 200 * c), Broken);
    let err = nodes[1].store("gc/cut", broken).await.unwrap_err();
    assert!(matches!(err, ServerError::Source(_)), "{err}");
    // Passes until one finds nothing more (puts the failed store had in
    // flight may still land just after it returned).
    let mut collected = 0;
    for _ in 0..5 {
        let mut this_pass = 0;
        for n in nodes.iter() {
            this_pass += n.repair().await.collected;
        }
        collected += this_pass;
        if this_pass == 0 && collected > 0 {
            break;
        }
    }
    assert!(collected > 0, "the cut store left nothing to collect");
    let now: u64 = nodes.iter().map(|n| n.stats().objects).sum();
    assert_eq!(now, named);
    for n in nodes.iter() {
        assert_reads(n, "gc/kept", seed, size).await;
    }
    nodes.shutdown().await;
}

/// A source that fails.
struct Broken;

impl tokio::io::AsyncRead for Broken {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Err(std::io::Error::other("the upload broke")))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_removes_every_chunk_on_every_holder() {
    let c = 64 * KIB;
    let nodes = mesh(5, 3, c).await;
    for i in 0..4u64 {
        let name = format!("del/{i}");
        store_pattern(&nodes[i as usize], &name, 900 + i, (3 + 5 * i) * c + i).await;
    }
    assert!(nodes.iter().all(|n| n.stats().objects > 0));
    for i in 0..4u64 {
        nodes[(i as usize + 2) % 5]
            .delete(&format!("del/{i}"))
            .await
            .unwrap();
    }
    for n in nodes.iter() {
        assert_eq!(n.stats().objects, 0, "{:?}", n.stats());
    }
    nodes.shutdown().await;
}

/// A catalog record as the first release wrote it (no layout field).
#[derive(serde::Serialize)]
struct FirstReleaseEntry {
    name_id: [u8; 16],
    cid: [u8; 20],
    object_len: u64,
    plain_len: u64,
    created_ms: u64,
    sealed_name: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_of_the_first_format_reads_as_before() {
    let root = tempfile::tempdir().unwrap();
    let config = |i| node_config(root.path(), i).replication(2);
    // A node's directory, then a file written the way the first release
    // wrote it: one whole object, a record without a layout.
    FileServer::open(config(0)).await.unwrap().shutdown().await;
    let (seed, size) = (1000, 3 * 1024 * 1024 + 11);
    let key = nexnet_crypto::DataKey::load(root.path().join("shared.key")).unwrap();
    let dir = root.path().join("node0");
    let layout = nexnet_store::CasPath::recorded_in(&dir.join("store"))
        .await
        .unwrap()
        .unwrap();
    let store = nexnet_store::ObjectStore::open_with(
        dir.join("store"),
        nexnet_store::StoreConfig::default(),
        layout,
    )
    .await
    .unwrap();
    let plain = Pattern::to_vec(seed, size as usize);
    let mut object = Vec::new();
    std::io::Read::read_to_end(
        &mut nexnet_crypto::EncryptReader::new(&key, &plain[..]).unwrap(),
        &mut object,
    )
    .unwrap();
    let written = store.write(&object[..]).await.unwrap();
    drop(store);
    let mut sealed_name = Vec::new();
    std::io::Read::read_to_end(
        &mut nexnet_crypto::EncryptReader::new(&key, &b"old/file"[..]).unwrap(),
        &mut sealed_name,
    )
    .unwrap();
    let name_id = nexnet_crypto::name_id("old/file");
    let record = FirstReleaseEntry {
        name_id: *name_id.as_bytes(),
        cid: *written.cid.as_bytes(),
        object_len: object.len() as u64,
        plain_len: size,
        created_ms: 1,
        sealed_name,
    };
    std::fs::write(
        dir.join("catalog/entries")
            .join(hex::encode(name_id.as_bytes())),
        postcard::to_stdvec(&record).unwrap(),
    )
    .unwrap();

    // It opens, lists, reads whole and in ranges, here and on a new node
    // that fetches it; new files beside it are chunked; a delete removes it.
    let a = FileServer::open(config(0)).await.unwrap();
    let b = FileServer::open(config(1).bootstrap(a.local_addr()))
        .await
        .unwrap();
    assert!(b.wait_for_peers(1, Duration::from_secs(10)).await);
    assert_eq!(a.list().await.unwrap()[0].name.as_deref(), Some("old/file"));
    assert_eq!(a.list().await.unwrap()[0].cid, written.cid);
    for n in [&a, &b] {
        assert_reads(n, "old/file", seed, size).await;
        assert_range(n, "old/file", seed, size, (1 << 20) - 3, 10).await;
    }
    let new = store_pattern(&a, "new/file", 1001, 2 * 1024 * 1024).await;
    assert_eq!(new.chunks, 2);
    assert_reads(&b, "new/file", 1001, 2 * 1024 * 1024).await;
    b.delete("old/file").await.unwrap();
    for n in [&a, &b] {
        assert!(matches!(
            n.get("old/file").await,
            Err(ServerError::NotFound { .. })
        ));
        assert!(object_file(n, &written.cid).is_none());
    }
    a.shutdown().await;
    b.shutdown().await;
}
