//! Moving objects between nodes: one sender feeding the same chunks to many
//! receivers at once, and the receiving end that writes a stream into the
//! store.

use std::{collections::HashMap, hash::Hash, time::Duration};

use bytes::{Bytes, BytesMut};
use futures::future::join_all;
use nexnet_p2p::{NodeId, Peer, RecvStream, ResetCode, SendStream};
use nexnet_store::{ObjectStore, ObjectWriter};
use parking_lot::{Mutex, MutexGuard};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    sync::oneshot,
};

use crate::{PeerFailure, ServerError, catalog::CatalogEntry, protocol::Message};

/// How much of an object is read, encrypted and sent at a time. The
/// transport cuts it into 64 KiB frames without copying.
pub(crate) const CHUNK: usize = 256 * 1024;

/// Reads up to [`CHUNK`] bytes: an empty chunk is the end.
pub(crate) async fn read_chunk(
    reader: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
) -> std::io::Result<Bytes> {
    buf.reserve(CHUNK);
    while buf.len() < CHUNK {
        if reader.read_buf(buf).await? == 0 {
            break;
        }
    }
    Ok(buf.split().freeze())
}

/// Pieces of a stream shorter than this are gathered by [`read_pieces`].
const MIN_PIECE: usize = 16 * 1024;

/// Why a stream did not carry exactly the bytes announced.
#[derive(Debug)]
pub(crate) enum Short {
    /// It did not end within this time: stalled, or trickling.
    Stalled(Duration),
    /// The stream broke (a reset says why).
    Broken(std::io::Error),
    /// It carried this many bytes (at least), not the length announced.
    Length(u64),
}

/// Reads a stream whole into memory as the pieces it arrived in: exactly
/// `len` bytes, a length the caller has bounded, within `limit` overall.
/// What is held grows with what arrives, never to a length only announced,
/// and nothing is copied: a receiver writes the pieces as they are
/// ([`ObjectStore::write_pieces_expecting`]). The limit is for the whole
/// read, not between pieces: a peer that trickles a byte at a time holds
/// the pieces (and whatever waits on them) no longer than one that stalls.
pub(crate) async fn read_pieces(
    stream: &mut RecvStream,
    len: u64,
    limit: Duration,
) -> Result<Vec<Bytes>, Short> {
    let read = async {
        let (mut pieces, mut small, mut got) = (Vec::new(), BytesMut::new(), 0u64);
        while let Some(piece) = stream.read_chunk().await.map_err(Short::Broken)? {
            got += piece.len() as u64;
            if got > len {
                return Err(Short::Length(got));
            }
            // Small pieces are gathered, so that a peer sending tiny frames
            // cannot make the list of pieces outweigh the bytes.
            if piece.len() < MIN_PIECE {
                small.extend_from_slice(&piece);
                continue;
            }
            if !small.is_empty() {
                pieces.push(small.split().freeze());
            }
            pieces.push(piece);
        }
        if got != len {
            return Err(Short::Length(got));
        }
        if !small.is_empty() {
            pieces.push(small.freeze());
        }
        Ok(pieces)
    };
    tokio::time::timeout(limit, read)
        .await
        .map_err(|_| Short::Stalled(limit))?
}

/// Like [`read_pieces`], for a reader that needs the bytes in one buffer
/// (to hash and decrypt a fetched chunk): gathered once, into a buffer of
/// exactly the length received.
pub(crate) async fn read_whole(
    stream: &mut RecvStream,
    len: u64,
    limit: Duration,
) -> Result<Bytes, Short> {
    let mut pieces = read_pieces(stream, len, limit).await?;
    if pieces.len() <= 1 {
        return Ok(pieces.pop().unwrap_or_default());
    }
    // Every piece has arrived: `len` bytes are here, not only announced.
    let mut whole = BytesMut::with_capacity(len as usize);
    for piece in pieces {
        whole.extend_from_slice(&piece);
    }
    Ok(whole.freeze())
}

/// A failure to tell the caller about: which node, and why.
pub(crate) type Failure = (NodeId, PeerFailure);

/// What [`Fanout::commit`] found.
#[derive(Debug, Default)]
pub(crate) struct Commits {
    /// The receivers that committed the object.
    pub committed: Vec<NodeId>,
    /// The ones that did not (earlier failures of the fan-out included).
    pub failures: Vec<Failure>,
    /// The newest entry for the name that a receiver answered with instead
    /// of committing: a newer store holds the name.
    pub newer: Option<CatalogEntry>,
}

struct Target {
    peer: Peer<Message>,
    stream: SendStream,
    transfer: u64,
}

/// Sends one object to several nodes at once: every chunk goes to every
/// receiver that is still keeping up, and a receiver that fails or stalls
/// is dropped with its reason while the others carry on.
pub(crate) struct Fanout {
    targets: Vec<Target>,
    failures: Vec<Failure>,
    stall: Duration,
}

impl Fanout {
    /// A fan-out to nobody (the local copy is all there is).
    pub(crate) fn none(stall: Duration) -> Self {
        Self {
            targets: Vec::new(),
            failures: Vec::new(),
            stall,
        }
    }

    /// Opens a replica stream to each of `peers`; `next_transfer` hands out
    /// transfer ids.
    pub(crate) async fn open(
        peers: Vec<Peer<Message>>,
        mut next_transfer: impl FnMut() -> u64,
        stall: Duration,
    ) -> Self {
        let opening = peers.into_iter().map(|peer| {
            let transfer = next_transfer();
            async move {
                match tokio::time::timeout(stall, peer.open_stream(Message::Replicate { transfer }))
                    .await
                {
                    Ok(Ok(stream)) => Ok(Target {
                        peer,
                        stream,
                        transfer,
                    }),
                    Ok(Err(e)) => Err((peer.node_id(), e.into())),
                    Err(_) => Err((peer.node_id(), PeerFailure::Stalled(stall))),
                }
            }
        });
        let mut out = Self::none(stall);
        for opened in join_all(opening).await {
            match opened {
                Ok(t) => out.targets.push(t),
                Err(f) => out.failures.push(f),
            }
        }
        out
    }

    /// Sends `chunk` to every receiver still in the fan-out.
    pub(crate) async fn send(&mut self, chunk: &Bytes) {
        if self.targets.is_empty() {
            return;
        }
        let stall = self.stall;
        let sent = join_all(self.targets.iter_mut().map(|t| async move {
            match tokio::time::timeout(stall, t.stream.write_chunk(chunk.clone())).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(PeerFailure::from(e)),
                Err(_) => Err(PeerFailure::Stalled(stall)),
            }
        }))
        .await;
        let mut sent = sent.into_iter();
        self.targets.retain(|t| match sent.next() {
            Some(Err(why)) => {
                self.failures.push((t.peer.node_id(), why));
                false
            }
            _ => true,
        });
    }

    /// Ends every stream and asks each receiver to commit `entry`'s object.
    pub(crate) async fn commit(self, entry: &CatalogEntry, wait: Duration) -> Commits {
        let Self {
            targets, failures, ..
        } = self;
        let answers = join_all(targets.into_iter().map(|t| commit_one(t, entry, wait))).await;
        let mut out = Commits {
            failures,
            ..Commits::default()
        };
        for (node, answer) in answers {
            match answer {
                Ok(()) => out.committed.push(node),
                Err((why, newer)) => {
                    out.failures.push((node, why));
                    if let Some(n) = newer
                        && out.newer.as_ref().is_none_or(|m| n.is_newer_than(m))
                    {
                        out.newer = Some(n);
                    }
                }
            }
        }
        out
    }
}

/// Ends `t`'s stream and asks its receiver to commit; a refusal for a newer
/// store comes back with that store's entry.
async fn commit_one(
    mut t: Target,
    entry: &CatalogEntry,
    wait: Duration,
) -> (NodeId, Result<(), (PeerFailure, Option<CatalogEntry>)>) {
    let node = t.peer.node_id();
    if let Err(e) = t.stream.shutdown().await {
        return (node, Err((PeerFailure::from(e), None)));
    }
    let commit = Message::Commit {
        transfer: t.transfer,
        entry: entry.clone(),
    };
    let answer = match t.peer.request(commit, wait).await {
        Ok(Message::Committed) => Ok(()),
        Ok(Message::Refused(why)) => Err((PeerFailure::Refused(why), None)),
        Ok(Message::Superseded(newer)) if newer.supersedes(entry) => {
            Err((PeerFailure::Superseded, Some(newer)))
        }
        Ok(other) => Err((PeerFailure::Unexpected(other.kind()), None)),
        Err(e) => Err((e.into(), None)),
    };
    (node, answer)
}

/// Writes an incoming object stream into an uncommitted object: the caller
/// commits it once it knows what the bytes must hash to. At most `limit`
/// bytes are accepted; a stream silent for `stall` is abandoned (dropping it
/// resets it, so the sender hears of it).
pub(crate) async fn receive(
    store: &ObjectStore,
    mut stream: RecvStream,
    limit: Option<u64>,
    stall: Duration,
) -> Result<ObjectWriter, PeerFailure> {
    let mut writer = store.begin().await?;
    // Frames arrive 64 KiB at a time; they are written CHUNK at a time.
    let (mut batch, mut batched, mut received) = (Vec::new(), 0, 0u64);
    loop {
        let chunk = match tokio::time::timeout(stall, stream.read_chunk()).await {
            Err(_) => return Err(PeerFailure::Stalled(stall)),
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(None)) => None,
            Ok(Ok(Some(chunk))) => Some(chunk),
        };
        let end = chunk.is_none();
        if let Some(chunk) = chunk {
            received += chunk.len() as u64;
            if let Some(limit) = limit
                && received > limit
            {
                return Err(PeerFailure::WrongLength {
                    offered: received,
                    expected: limit,
                });
            }
            batched += chunk.len();
            batch.push(chunk);
        }
        if end || batched >= CHUNK {
            let pieces = std::mem::take(&mut batch);
            batched = 0;
            if let Err(e) = writer.write_chunks(pieces).await {
                let e = ServerError::from(e);
                // Tell the sender why, so its error can name the cause.
                if e.is_disk_full() {
                    stream.reset(ResetCode::StorageFull);
                }
                return Err(e.into());
            }
        }
        if end {
            return Ok(writer);
        }
    }
}

enum Slot<T> {
    Waiting(oneshot::Sender<T>),
    Ready(oneshot::Receiver<T>),
}

/// Meeting points between two events that may arrive in either order (a
/// replica's stream and the request that commits it): whichever comes
/// first leaves its half of a channel for the other.
pub(crate) struct Rendezvous<K, T> {
    slots: Mutex<HashMap<K, Slot<T>>>,
}

impl<K: Hash + Eq + Copy, T> Rendezvous<K, T> {
    pub(crate) fn new() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<K, Slot<T>>> {
        self.slots.lock()
    }

    /// The producing side of `key`.
    pub(crate) fn producer(&self, key: K) -> oneshot::Sender<T> {
        let mut slots = self.slots();
        if let Some(Slot::Waiting(tx)) = slots.remove(&key) {
            return tx;
        }
        let (tx, rx) = oneshot::channel();
        slots.insert(key, Slot::Ready(rx));
        tx
    }

    /// The consuming side of `key`, as a place that is given up when it is
    /// dropped: answered, timed out, or its future dropped mid-way (a
    /// reader gone, a hedged fetch that lost), it never leaves a slot.
    pub(crate) fn awaiting(&self, key: K) -> Awaiting<'_, K, T> {
        Awaiting {
            rx: self.consumer(key),
            rendezvous: self,
            key,
        }
    }

    /// The consuming side of `key`.
    pub(crate) fn consumer(&self, key: K) -> oneshot::Receiver<T> {
        let mut slots = self.slots();
        if let Some(Slot::Ready(rx)) = slots.remove(&key) {
            return rx;
        }
        let (tx, rx) = oneshot::channel();
        slots.insert(key, Slot::Waiting(tx));
        rx
    }

    /// The producing side of `key` only if a consumer is already waiting
    /// (for meetings whose consumer always comes first, and may give up).
    pub(crate) fn waiting_producer(&self, key: &K) -> Option<oneshot::Sender<T>> {
        let mut slots = self.slots();
        match slots.remove(key) {
            Some(Slot::Waiting(tx)) => Some(tx),
            Some(ready) => {
                slots.insert(*key, ready);
                None
            }
            None => None,
        }
    }

    /// Drops whatever `key` left behind (its other side never came).
    pub(crate) fn forget(&self, key: &K) {
        self.slots().remove(key);
    }
}

/// A consumer's place at a [`Rendezvous`]; see [`Rendezvous::awaiting`].
pub(crate) struct Awaiting<'a, K: Hash + Eq + Copy, T> {
    rendezvous: &'a Rendezvous<K, T>,
    key: K,
    rx: oneshot::Receiver<T>,
}

impl<K: Hash + Eq + Copy, T> Awaiting<'_, K, T> {
    /// What the producer sends, within `limit`; `None` if it gave up or
    /// did not come in time.
    pub(crate) async fn arrival(&mut self, limit: Duration) -> Option<T> {
        tokio::time::timeout(limit, &mut self.rx).await.ok()?.ok()
    }
}

impl<K: Hash + Eq + Copy, T> Drop for Awaiting<'_, K, T> {
    fn drop(&mut self) {
        // Taken already if the producer came; then this removes nothing
        // (keys are never reused).
        self.rendezvous.forget(&self.key);
    }
}
