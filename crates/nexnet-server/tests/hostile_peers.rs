//! A node facing a peer that knows the network secret but not the rules:
//! every odd request gets a typed refusal, nothing is stored, the node
//! carries on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use nexnet_crypto::{DataKey, name_id};
use nexnet_p2p::{
    Event, Events, NetworkSecret, NodeId, Peer, TcpTransport, Transport, TransportConfig,
};
use nexnet_store::Cid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use nexnet_server::{
    CatalogEntry, FileServer, PeerFailure, ServerConfig, ServerError, Tombstone,
    protocol::{MAX_LIST, MemberAddr, Message, Refusal},
};

struct Rogue {
    server: FileServer,
    peer: Peer<Message>,
    _transport: TcpTransport<Message>,
    events: Option<Events<Message>>,
    dir: tempfile::TempDir,
}

async fn rogue() -> Rogue {
    let dir = tempfile::tempdir().unwrap();
    let secret_path = dir.path().join("secret");
    let config = ServerConfig::new(dir.path().join("node"))
        .secret_file(&secret_path)
        .fsync(false)
        .repair_interval(None)
        .stall_timeout(Duration::from_millis(300));
    let server = FileServer::open(config).await.unwrap();
    let secret = nexnet_crypto::secret_file::load(&secret_path).unwrap();
    let tc = TransportConfig::new(
        NodeId::generate().unwrap(),
        NetworkSecret::from_bytes(*secret),
    );
    let (transport, events) = TcpTransport::bind("127.0.0.1:0".parse().unwrap(), tc)
        .await
        .unwrap();
    let peer = transport.dial(server.local_addr()).await.unwrap();
    Rogue {
        server,
        peer,
        _transport: transport,
        events: Some(events),
        dir,
    }
}

fn entry_for(bytes: &[u8]) -> CatalogEntry {
    let key = DataKey::generate().unwrap();
    let len = bytes.len() as u64;
    CatalogEntry::new(&key, "x", name_id("x"), Cid::of(bytes), len, len - 32).unwrap()
}

/// Whether the node's store holds `cid`: a file of that name somewhere
/// under its objects (the layout is the store's business).
fn holds(r: &Rogue, cid: &Cid) -> bool {
    fn find(dir: &std::path::Path, name: &str) -> bool {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let path = e.path();
                if path.is_dir() {
                    find(&path, name)
                } else {
                    e.file_name() == name
                }
            })
    }
    find(&r.dir.path().join("node/store/objects"), &cid.to_hex())
}

async fn ask(r: &Rogue, m: Message) -> Message {
    r.peer.request(m, Duration::from_secs(5)).await.unwrap()
}

/// Sends the tombstone of `cid`, and waits until the node has kept it (it
/// applies tombstones in the background).
async fn send_tombstone(r: &Rogue, cid: Cid, tombstone: Tombstone) {
    r.peer
        .send(Message::Tombstones(vec![(*cid.as_bytes(), tombstone)]))
        .await
        .unwrap();
    let path = r
        .dir
        .path()
        .join("node/catalog/tombstones")
        .join(cid.to_hex());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "tombstone never recorded"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_commit_without_a_stream_fails_and_stores_nothing() {
    let r = rogue().await;
    let answer = ask(
        &r,
        Message::Commit {
            transfer: 7,
            entry: entry_for(&[0u8; 40]),
        },
    )
    .await;
    assert!(
        matches!(answer, Message::Refused(Refusal::NoStream)),
        "{answer:?}"
    );
    assert_eq!(r.server.stats().objects, 0);
    assert_eq!(r.server.stats().files, 0);
}

#[tokio::test]
async fn a_replica_that_does_not_hash_to_its_cid_is_not_committed() {
    let r = rogue().await;
    let mut stream = r
        .peer
        .open_stream(Message::Replicate { transfer: 1 })
        .await
        .unwrap();
    stream.write_all(&[1u8; 40]).await.unwrap();
    stream.shutdown().await.unwrap();
    // Claims the bytes are something else.
    let answer = ask(
        &r,
        Message::Commit {
            transfer: 1,
            entry: entry_for(&[2u8; 40]),
        },
    )
    .await;
    assert!(
        matches!(answer, Message::Refused(Refusal::WrongHash)),
        "{answer:?}"
    );
    assert_eq!(r.server.stats().objects, 0);
    assert_eq!(r.server.stats().files, 0);
}

#[tokio::test]
async fn a_replica_of_a_deleted_object_is_refused() {
    let r = rogue().await;
    let bytes = [3u8; 40];
    send_tombstone(&r, Cid::of(&bytes), Tombstone::new(name_id("x"), 1)).await;
    let mut stream = r
        .peer
        .open_stream(Message::Replicate { transfer: 2 })
        .await
        .unwrap();
    stream.write_all(&bytes).await.unwrap();
    stream.shutdown().await.unwrap();
    let answer = ask(
        &r,
        Message::Commit {
            transfer: 2,
            entry: entry_for(&bytes),
        },
    )
    .await;
    assert!(
        matches!(answer, Message::Refused(Refusal::Deleted)),
        "{answer:?}"
    );
    assert_eq!(r.server.stats().objects, 0);
}

#[tokio::test]
async fn unknown_objects_unknown_names_and_stray_streams() {
    let r = rogue().await;
    let cid = *Cid::of(b"nothing").as_bytes();
    assert!(matches!(
        ask(&r, Message::Fetch { cid, transfer: 1 }).await,
        Message::Missing
    ));
    assert!(matches!(
        ask(&r, Message::Has { cid }).await,
        Message::Have(false)
    ));
    assert!(matches!(
        ask(&r, Message::Lookup { name: [9; 16] }).await,
        Message::Entry(None)
    ));
    assert!(matches!(
        ask(&r, Message::Committed).await,
        Message::Refused(Refusal::NotARequest)
    ));

    // An object stream nobody asked for is reset, whatever its size.
    let mut stray = r
        .peer
        .open_stream(Message::Object { transfer: 42 })
        .await
        .unwrap();
    let mut refused = false;
    for _ in 0..64 {
        if stray.write_all(&[0u8; 64 * 1024]).await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "a stray stream was accepted");
    assert_eq!(r.server.stats().objects, 0);
    // The connection carries on.
    assert!(matches!(
        ask(&r, Message::Has { cid }).await,
        Message::Have(false)
    ));
}

#[tokio::test]
async fn a_flood_of_members_is_bounded() {
    let r = rogue().await;
    let flood: Vec<MemberAddr> = (0..5000u32)
        .map(|i| {
            let mut node = [0u8; 32];
            node[..4].copy_from_slice(&i.to_be_bytes());
            MemberAddr {
                node,
                // Nothing listens there: dials fail and are retried later.
                addr: "127.0.0.1:9".parse().unwrap(),
            }
        })
        .collect();
    // The message itself may exceed what the transport carries; either
    // way the node stays up and learns at most MAX_LIST members.
    let _ = r
        .peer
        .request(Message::Members(flood), Duration::from_secs(5))
        .await;
    assert!(r.server.members().len() <= MAX_LIST + 1);
    assert!(matches!(
        ask(&r, Message::Has { cid: [0; 20] }).await,
        Message::Have(false)
    ));
}

/// A peer that knows the file, promises it, sends a little and then stalls
/// (or sends bytes that do not match): the get gives up on it after the
/// stall time-out with a typed error, never hangs.
async fn lying_holder(stall: bool) {
    let mut r = rogue().await;
    let object: Vec<u8> = (0..100u8).collect();
    let entry = entry_for(&object);
    let mut events = r.events.take().unwrap();
    let served = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(event) = events.next().await {
            if let Event::Request {
                message,
                responder,
                peer,
            } = event
            {
                match message {
                    Message::Lookup { .. } => {
                        responder
                            .respond(Message::Entry(Some(entry.clone())))
                            .await
                            .unwrap();
                    }
                    Message::Fetch { transfer, .. } => {
                        responder
                            .respond(Message::Sending { len: 100 })
                            .await
                            .unwrap();
                        let mut out = peer
                            .open_stream(Message::Object { transfer })
                            .await
                            .unwrap();
                        if stall {
                            out.write_all(&[0u8; 10]).await.unwrap();
                            held.push(out); // never finished, never dropped
                        } else {
                            out.write_all(&[0xAB; 100]).await.unwrap();
                            out.shutdown().await.unwrap();
                        }
                    }
                    Message::Members(_) => {
                        responder
                            .respond(Message::Members(Vec::new()))
                            .await
                            .unwrap();
                    }
                    _ => {
                        responder
                            .respond(Message::Refused(Refusal::NotARequest))
                            .await
                            .unwrap();
                    }
                }
            }
        }
    });
    assert!(r.server.wait_for_peers(1, Duration::from_secs(5)).await);
    let err = r.server.get("x").await.unwrap_err();
    match err {
        ServerError::Unavailable { attempts, .. } => {
            assert_eq!(attempts.len(), 1, "{attempts:?}");
            let why = &attempts[0].1;
            if stall {
                assert!(matches!(why, PeerFailure::Stalled(_)), "{why}");
            } else {
                assert!(matches!(why, PeerFailure::BadCopy), "{why}");
            }
        }
        other => panic!("expected Unavailable, got {other}"),
    }
    assert_eq!(r.server.stats().objects, 0, "nothing unverified is kept");
    served.abort();
}

#[tokio::test]
async fn a_holder_that_stalls_is_abandoned() {
    lying_holder(true).await;
}

#[tokio::test]
async fn a_holder_that_sends_bad_bytes_is_abandoned() {
    lying_holder(false).await;
}

#[tokio::test]
async fn a_peer_asking_about_a_deleted_object_is_told_it_was_deleted() {
    let mut r = rogue().await;
    let cid = Cid::of(b"deleted elsewhere");
    let tombstone = Tombstone::new(name_id("x"), 1);
    send_tombstone(&r, cid, tombstone).await;
    // Asking whether it holds the object is what a node that missed the
    // delete does (its repair pass): the answer comes with the tombstone.
    assert!(matches!(
        ask(
            &r,
            Message::Has {
                cid: *cid.as_bytes()
            }
        )
        .await,
        Message::Have(false)
    ));
    let mut events = r.events.take().unwrap();
    let told = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.next().await {
                Some(Event::Message {
                    message: Message::Tombstones(list),
                    ..
                }) => return list,
                Some(_) => {}
                None => panic!("transport closed"),
            }
        }
    })
    .await
    .expect("no tombstone sent");
    // The same delete (its time is when the node learnt of it).
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].0, *cid.as_bytes());
    assert_eq!(
        (told[0].1.name_id(), told[0].1.name_version),
        (tombstone.name_id(), tombstone.name_version)
    );
}

/// How a lying member answers a fetch, in turn.
#[derive(Clone, Copy, Debug)]
enum Lie {
    /// Promises the object, then sends other bytes of the right length.
    WrongBytes,
    /// Promises the object, then ends the stream half way.
    Truncated,
    /// Said it committed the replica; now says it has none.
    Missing,
}

/// A member that says yes to everything — it "commits" every replica
/// without keeping it, claims every object — and lies when asked for one,
/// while it floods the node with requests. Gets on an honest node skip it
/// and read every file, intact, from the honest holder; the node stays up.
#[tokio::test]
async fn a_lying_flooding_member_is_passed_over() {
    const FILES: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let (key, secret) = (dir.path().join("key"), dir.path().join("secret"));
    let honest = |name: &str| {
        ServerConfig::new(dir.path().join(name))
            .key_file(&key)
            .secret_file(&secret)
            .replication(3)
            .fsync(false)
            .repair_interval(None)
            .stall_timeout(Duration::from_millis(500))
    };
    let a = FileServer::open(honest("a")).await.unwrap();
    let b = FileServer::open(honest("b").bootstrap(a.local_addr()))
        .await
        .unwrap();

    let secret = nexnet_crypto::secret_file::load(&secret).unwrap();
    let mut tc = TransportConfig::new(
        NodeId::generate().unwrap(),
        NetworkSecret::from_bytes(*secret),
    );
    // The liar keeps no limit of its own on what it asks.
    tc.max_pending_requests = 1 << 20;
    let (liar, mut events) = TcpTransport::<Message>::bind("127.0.0.1:0".parse().unwrap(), tc)
        .await
        .unwrap();
    let to_a = liar.dial(a.local_addr()).await.unwrap();
    let lies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let liar_task = {
        let lies = lies.clone();
        tokio::spawn(async move {
            let mut sizes = std::collections::HashMap::new();
            let mut turn = 0usize;
            while let Some(event) = events.next().await {
                match event {
                    Event::Stream {
                        mut stream,
                        message,
                        ..
                    } => {
                        if let Message::Chunk { cid, len, .. } = message {
                            sizes.insert(Cid::from_bytes(cid), len);
                        }
                        // A replica: read and forget it.
                        tokio::spawn(async move {
                            let mut sink = tokio::io::sink();
                            let _ = tokio::io::copy(&mut stream, &mut sink).await;
                        });
                    }
                    Event::Request {
                        peer,
                        message,
                        responder,
                    } => {
                        let answer = match message {
                            Message::Commit { entry, .. } => {
                                sizes.insert(entry.cid(), entry.object_len);
                                Message::Committed
                            }
                            Message::StoreChunk { .. } => Message::Committed,
                            Message::Sync => Message::Synced,
                            Message::Has { .. } => Message::Have(true),
                            Message::HasMany(cids) => {
                                Message::HaveMany(vec![0xff; cids.len().div_ceil(8)])
                            }
                            Message::Members(_) => Message::Members(Vec::new()),
                            Message::Lookup { .. } => Message::Entry(None),
                            Message::Fetch { cid, transfer } => {
                                let len = sizes.get(&Cid::from_bytes(cid)).copied().unwrap_or(64);
                                let lie = [Lie::WrongBytes, Lie::Truncated, Lie::Missing][turn % 3];
                                turn += 1;
                                lies.lock().unwrap().push(lie);
                                if let Lie::Missing = lie {
                                    Message::Missing
                                } else {
                                    tokio::spawn(async move {
                                        let Ok(mut out) =
                                            peer.open_stream(Message::Object { transfer }).await
                                        else {
                                            return;
                                        };
                                        let send = match lie {
                                            Lie::Truncated => len / 2,
                                            _ => len,
                                        };
                                        let junk = vec![0x5Au8; send as usize];
                                        let _ = out.write_all(&junk).await;
                                        let _ = out.shutdown().await;
                                    });
                                    Message::Sending { len }
                                }
                            }
                            _ => Message::Refused(Refusal::NotARequest),
                        };
                        let _ = responder.respond(answer).await;
                    }
                    _ => {}
                }
            }
        })
    };
    assert!(a.wait_for_peers(2, Duration::from_secs(10)).await);
    assert!(b.wait_for_peers(2, Duration::from_secs(10)).await);

    // Files stored on b go to a and to the liar, which "commits" them all.
    let mut files = Vec::new();
    for i in 0..FILES {
        let name = format!("file-{i}");
        let body: Vec<u8> = (0..10_000u32).map(|n| (n as u8) ^ (i as u8)).collect();
        let receipt = b.store(&name, &body[..]).await.unwrap();
        assert_eq!(receipt.holders.len(), 3, "{receipt:?}");
        assert!(a.evict(&name).await.unwrap());
        files.push((name, body, receipt.cid));
    }

    // The flood: requests far past the node's limit on unanswered ones,
    // and reports about objects it never sent the liar.
    let flood = {
        let to_a = to_a.clone();
        let cids: Vec<Cid> = files.iter().map(|f| f.2).collect();
        tokio::spawn(async move {
            let mut asked = tokio::task::JoinSet::new();
            for i in 0..5_000usize {
                let p = to_a.clone();
                let cid = *cids[i % cids.len()].as_bytes();
                asked.spawn(async move {
                    p.request(Message::Has { cid }, Duration::from_secs(60))
                        .await
                });
                let _ = to_a.send(Message::Corrupt { cid }).await;
            }
            while asked.join_next().await.is_some() {}
        })
    };

    // Meanwhile a, which has dropped its copies, gets every file.
    for (name, body, _) in &files {
        let mut got = Vec::new();
        a.get(name)
            .await
            .unwrap()
            .read_to_end(&mut got)
            .await
            .unwrap();
        assert!(got == *body, "{name} came back wrong");
    }
    let lies = lies.lock().unwrap().clone();
    assert!(
        !lies.is_empty(),
        "the liar was never asked: the test proved nothing"
    );
    eprintln!(
        "{} gets intact past {} lies ({lies:?}) and a flood of 5000 requests and 5000 reports",
        files.len(),
        lies.len()
    );
    flood.await.unwrap();
    // No copy was damaged by the reports, and a still answers.
    for (name, _, _) in &files {
        assert!(b.has(name).await.unwrap(), "{name}");
    }
    assert!(a.wait_for_peers(2, Duration::from_secs(1)).await);
    liar_task.abort();
    a.shutdown().await;
    b.shutdown().await;
}

/// Sends `bytes` as replica `transfer` and asks the node to commit `entry`.
async fn replicate(r: &Rogue, transfer: u64, bytes: &[u8], entry: CatalogEntry) -> Message {
    let mut stream = r
        .peer
        .open_stream(Message::Replicate { transfer })
        .await
        .unwrap();
    stream.write_all(bytes).await.unwrap();
    stream.shutdown().await.unwrap();
    ask(r, Message::Commit { transfer, entry }).await
}

#[tokio::test]
async fn an_older_store_of_a_name_is_answered_with_the_newer_entry_and_not_kept() {
    let r = rogue().await;
    let (older_bytes, newer_bytes) = ([4u8; 40], [5u8; 40]);
    let mut older = entry_for(&older_bytes);
    let mut newer = entry_for(&newer_bytes);
    newer.created_ms = 2_000_000;
    older.created_ms = 1_000_000;

    assert!(matches!(
        replicate(&r, 1, &newer_bytes, newer.clone()).await,
        Message::Committed
    ));
    // The older store arrives second: the node keeps the newer entry, drops
    // the older object, and says which entry holds the name.
    let answer = replicate(&r, 2, &older_bytes, older.clone()).await;
    match answer {
        Message::Superseded(e) => assert_eq!(e.cid(), newer.cid()),
        other => panic!("expected Superseded, got {other:?}"),
    }
    assert_eq!(r.server.stats().objects, 1);
    assert_eq!(r.server.stats().files, 1);
    assert!(holds(&r, &newer.cid()));
    assert!(!holds(&r, &older.cid()));

    // Stores of the same millisecond: the larger cid wins, whichever order.
    older.created_ms = newer.created_ms;
    let answer = replicate(&r, 3, &older_bytes, older.clone()).await;
    let (winner, loser) = if older.cid().as_bytes() > newer.cid().as_bytes() {
        (&older, &newer)
    } else {
        (&newer, &older)
    };
    if winner.cid() == older.cid() {
        assert!(matches!(answer, Message::Committed), "{answer:?}");
    } else {
        assert!(matches!(answer, Message::Superseded(_)), "{answer:?}");
    }
    assert_eq!(r.server.info("x").await.unwrap().cid, winner.cid());
    assert!(!holds(&r, &loser.cid()));
}

#[tokio::test]
async fn a_delete_ends_every_version_of_the_name_at_or_below_its_own_whatever_the_object() {
    let r = rogue().await;
    let (kept_bytes, later_bytes) = ([6u8; 40], [7u8; 40]);
    let mut kept = entry_for(&kept_bytes);
    kept.created_ms = 1_000_000;
    assert!(matches!(
        replicate(&r, 1, &kept_bytes, kept.clone()).await,
        Message::Committed
    ));

    // A delete of another object of the name (a version this node never
    // had), at a version above the one held here.
    let other = Cid::of(b"a version stored elsewhere");
    let tombstone = Tombstone::new(name_id("x"), 1_500_000);
    send_tombstone(&r, other, tombstone).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while r.server.stats().files != 0 || holds(&r, &kept.cid()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the older version stayed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A lookup is answered with the delete, so the asker goes past it.
    match ask(
        &r,
        Message::Lookup {
            name: *name_id("x").as_bytes(),
        },
    )
    .await
    {
        // (Its time is when this node learnt of it: the horizon runs
        // from there.)
        Message::Tombstones(t) => {
            assert_eq!(t.len(), 1, "{t:?}");
            assert_eq!(t[0].0, *other.as_bytes());
            assert_eq!(t[0].1.name_version, tombstone.name_version);
            assert_eq!(t[0].1.name_id(), tombstone.name_id());
        }
        other => panic!("expected the tombstone, got {other:?}"),
    }
    // The ended version offered again (a late replica, a repair push) is
    // refused and not kept; a later version is.
    let answer = replicate(&r, 2, &kept_bytes, kept.clone()).await;
    assert!(
        matches!(answer, Message::Refused(Refusal::Deleted)),
        "{answer:?}"
    );
    assert!(!holds(&r, &kept.cid()));
    let mut later = entry_for(&later_bytes);
    later.created_ms = 1_500_001;
    assert!(matches!(
        replicate(&r, 3, &later_bytes, later.clone()).await,
        Message::Committed
    ));
    assert_eq!(r.server.info("x").await.unwrap().cid, later.cid());
}

#[tokio::test]
async fn a_tombstone_of_one_version_spares_the_entry_that_wins_the_tie_and_far_future_versions_are_refused()
 {
    let r = rogue().await;
    // Two stores of the same version: the larger cid wins the name. A
    // tombstone ending the loser (a replace's) must not end the winner.
    let (one, two) = ([8u8; 40], [9u8; 40]);
    let (mut a, mut b) = (entry_for(&one), entry_for(&two));
    a.created_ms = 3_000_000;
    b.created_ms = 3_000_000;
    let (winner, winner_bytes, loser) = if a.cid().as_bytes() > b.cid().as_bytes() {
        (a, one, b)
    } else {
        (b, two, a)
    };
    assert!(matches!(
        replicate(&r, 1, &winner_bytes, winner.clone()).await,
        Message::Committed
    ));
    let tombstone = Tombstone::new(name_id("x"), loser.created_ms);
    send_tombstone(&r, loser.cid(), tombstone).await;
    assert_eq!(r.server.info("x").await.unwrap().cid, winner.cid());
    assert!(holds(&r, &winner.cid()));

    // A version two hours ahead of the node's clock would put the name
    // out of reach of every store until then: refused.
    let ahead_bytes = [10u8; 40];
    let mut ahead = entry_for(&ahead_bytes);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    ahead.created_ms = now + 2 * 60 * 60 * 1000;
    let answer = replicate(&r, 2, &ahead_bytes, ahead.clone()).await;
    assert!(
        matches!(answer, Message::Refused(Refusal::BadEntry)),
        "{answer:?}"
    );
    assert_eq!(r.server.info("x").await.unwrap().cid, winner.cid());
    assert!(!holds(&r, &ahead.cid()));
}

/// Sends `bytes` on a `Chunk` stream announcing `cid` and `len`, and asks
/// for it to be stored.
async fn put_chunk(r: &Rogue, transfer: u64, cid: Cid, len: u64, bytes: &[u8]) -> Message {
    let mut stream = r
        .peer
        .open_stream(Message::Chunk {
            transfer,
            cid: *cid.as_bytes(),
            len,
        })
        .await
        .unwrap();
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    ask(
        r,
        Message::StoreChunk {
            transfer,
            cid: *cid.as_bytes(),
        },
    )
    .await
}

#[tokio::test]
async fn chunks_that_lie_about_their_length_or_hash_are_not_stored() {
    let r = rogue().await;
    let bytes = vec![7u8; 100_000];
    let cid = Cid::of(&bytes);
    // Longer and shorter than announced, another hash, a length no chunk
    // has, and a commit without a stream: refused, nothing kept.
    let cases = [
        (cid, 50_000, &bytes[..]),
        (cid, 200_000, &bytes[..]),
        (Cid::of(b"other"), 100_000, &bytes[..]),
        (cid, u64::MAX, &bytes[..]),
    ];
    for (i, (c, len, b)) in cases.into_iter().enumerate() {
        let answer = put_chunk(&r, i as u64 + 1, c, len, b).await;
        assert!(
            matches!(answer, Message::Refused(_)),
            "case {i}: {answer:?}"
        );
    }
    let answer = ask(
        &r,
        Message::StoreChunk {
            transfer: 99,
            cid: *cid.as_bytes(),
        },
    )
    .await;
    assert!(
        matches!(answer, Message::Refused(Refusal::NoStream)),
        "{answer:?}"
    );
    assert_eq!(r.server.stats().objects, 0);
    // The honest one is kept.
    let answer = put_chunk(&r, 100, cid, bytes.len() as u64, &bytes).await;
    assert!(matches!(answer, Message::Committed), "{answer:?}");
    assert!(holds(&r, &cid));
}

#[tokio::test]
async fn batched_questions_are_bounded() {
    let r = rogue().await;
    let many: Vec<[u8; 20]> = (0..5000u32)
        .map(|i| *Cid::of(&i.to_be_bytes()).as_bytes())
        .collect();
    for ask_many in [
        Message::HasMany(many.clone()),
        Message::Referenced(many.clone()),
    ] {
        match ask(&r, ask_many).await {
            Message::HaveMany(bits) => assert!(bits.len() <= MAX_LIST / 8, "{}", bits.len()),
            other => panic!("{other:?}"),
        }
    }
    // A batch of chunk deletes is cut at MAX_LIST, and answered (members
    // are trusted with deletes: the tombstone is kept).
    let root = Cid::of(b"root");
    let answer = ask(
        &r,
        Message::DeleteChunks {
            root: *root.as_bytes(),
            tombstone: nexnet_server::Tombstone::new(name_id("x"), 1),
            cids: many,
        },
    )
    .await;
    assert!(
        matches!(answer, Message::Deleted { had: false }),
        "{answer:?}"
    );
}
