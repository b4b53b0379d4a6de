//! What a peer may make this node do. Peers know the network secret, but a
//! buggy or hostile one must not be able to exhaust the node: the
//! transport bounds its requests in flight, its streams and its message
//! rate; here are the bounds on work that outlives a request or comes from
//! a message that needs no answer.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use nexnet_p2p::NodeId;
use nexnet_store::Cid;
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Objects sent to one peer at once, at most (the transport's default
/// number of streams a peer accepts from us).
pub(crate) const MAX_SERVING_PER_PEER: usize = 64;

/// How many recent (fetcher, object) pairs are remembered.
const SERVED_LOG: usize = 4096;

/// Tombstones received in messages and not applied yet, at most.
pub(crate) const MAX_QUEUED_TOMBSTONES: usize = 64 * 1024;

/// Bytes of chunks received into memory at once, across every peer (in
/// units of [`CHUNK_UNIT`]): 64 MiB, four chunks of the largest size.
const CHUNK_BUFFER_UNITS: usize = 1024;
const CHUNK_UNIT: u64 = 64 * 1024;

/// The share of those one peer may hold: half, so that a peer sending
/// slowly (or a byte at a time, until its read's time-out) cannot take the
/// room every other peer's stores need. An honest store keeps four chunks
/// in flight, 64 MiB at the largest size: it waits, and goes on.
const CHUNK_BUFFER_UNITS_PER_PEER: usize = CHUNK_BUFFER_UNITS / 2;

pub(crate) struct Budget {
    serving: Mutex<HashMap<NodeId, Arc<Semaphore>>>,
    served: Mutex<VecDeque<(NodeId, Cid)>>,
    tombstones: AtomicUsize,
    chunk_buffers: Arc<Semaphore>,
    peer_chunk_buffers: Mutex<HashMap<NodeId, Arc<Semaphore>>>,
}

/// `peer`'s semaphore in `map`, made with `permits` the first time.
fn per_peer(
    map: &Mutex<HashMap<NodeId, Arc<Semaphore>>>,
    peer: NodeId,
    permits: usize,
) -> Arc<Semaphore> {
    map.lock()
        .entry(peer)
        .or_insert_with(|| Arc::new(Semaphore::new(permits)))
        .clone()
}

/// Room for one chunk in memory: its peer's share and the node's.
pub(crate) struct ChunkRoom {
    _peer: OwnedSemaphorePermit,
    _node: OwnedSemaphorePermit,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            serving: Mutex::default(),
            served: Mutex::default(),
            tombstones: AtomicUsize::default(),
            chunk_buffers: Arc::new(Semaphore::new(CHUNK_BUFFER_UNITS)),
            peer_chunk_buffers: Mutex::default(),
        }
    }
}

impl Budget {
    /// Room to receive a chunk of `len` bytes from `peer` into memory,
    /// once enough of what others hold is released (the stream waits, and
    /// the sender with it). `None` for a length no chunk has.
    pub(crate) async fn chunk_buffer(&self, peer: NodeId, len: u64) -> Option<ChunkRoom> {
        if len > u64::from(crate::manifest::MAX_CHUNK_SIZE).max(crate::manifest::MAX_NODE_LEN) {
            return None;
        }
        let units = u32::try_from(len.div_ceil(CHUNK_UNIT).max(1)).ok()?;
        let share = per_peer(&self.peer_chunk_buffers, peer, CHUNK_BUFFER_UNITS_PER_PEER);
        // The peer's share first: a peer waiting on its own holds none of
        // the node's.
        let peer = share.acquire_many_owned(units).await.ok()?;
        let node = self
            .chunk_buffers
            .clone()
            .acquire_many_owned(units)
            .await
            .ok()?;
        Some(ChunkRoom {
            _peer: peer,
            _node: node,
        })
    }

    /// A slot for sending one object to `peer`, once one of its
    /// `MAX_SERVING_PER_PEER` is free.
    pub(crate) async fn serving_slot(&self, peer: NodeId) -> Option<OwnedSemaphorePermit> {
        let slots = per_peer(&self.serving, peer, MAX_SERVING_PER_PEER);
        slots.acquire_owned().await.ok()
    }

    /// Forgets a peer's slots (it disconnected; transfers still running
    /// keep theirs until they end).
    pub(crate) fn forget(&self, peer: NodeId) {
        self.serving.lock().remove(&peer);
        self.peer_chunk_buffers.lock().remove(&peer);
    }

    /// Remembers that `peer` was sent `cid`: it may report the copy bad.
    pub(crate) fn served(&self, peer: NodeId, cid: Cid) {
        let mut log = self.served.lock();
        if log.len() >= SERVED_LOG {
            log.pop_front();
        }
        log.push_back((peer, cid));
    }

    /// Whether `peer` was sent `cid` recently; a report about it is taken
    /// once. Anything else is a report about bytes it never got from us,
    /// which would only make us re-read an object for nothing.
    pub(crate) fn take_served(&self, peer: NodeId, cid: Cid) -> bool {
        let mut log = self.served.lock();
        match log.iter().position(|&(p, c)| p == peer && c == cid) {
            Some(i) => {
                log.remove(i);
                true
            }
            None => false,
        }
    }

    /// Reserves room for `n` tombstones to apply; `None` if the queue is
    /// full. The reservation ends when the returned guard drops.
    pub(crate) fn queue_tombstones(self: &Arc<Self>, n: usize) -> Option<Queued> {
        let mut now = self.tombstones.load(Ordering::Relaxed);
        loop {
            let next = now.checked_add(n).filter(|&t| t <= MAX_QUEUED_TOMBSTONES)?;
            match self.tombstones.compare_exchange_weak(
                now,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(Queued {
                        budget: self.clone(),
                        n,
                    });
                }
                Err(seen) => now = seen,
            }
        }
    }
}

/// Tombstones waiting to be applied, counted until dropped.
pub(crate) struct Queued {
    budget: Arc<Budget>,
    n: usize,
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.budget.tombstones.fetch_sub(self.n, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn node() -> NodeId {
        NodeId::generate().unwrap()
    }

    #[test]
    fn a_report_counts_only_for_what_was_served_and_only_once() {
        let budget = Budget::default();
        let (a, b) = (node(), node());
        let cid = Cid::of(b"object");
        budget.served(a, cid);
        assert!(!budget.take_served(b, cid), "b was never sent it");
        assert!(!budget.take_served(a, Cid::of(b"other")));
        assert!(budget.take_served(a, cid));
        assert!(!budget.take_served(a, cid), "a second report is ignored");
    }

    #[test]
    fn the_served_log_is_bounded() {
        let budget = Budget::default();
        let a = node();
        let first = Cid::of(b"first");
        budget.served(a, first);
        for i in 0..SERVED_LOG as u32 {
            budget.served(a, Cid::of(&i.to_be_bytes()));
        }
        assert_eq!(budget.served.lock().len(), SERVED_LOG);
        assert!(!budget.take_served(a, first), "the oldest was forgotten");
    }

    #[test]
    fn the_tombstone_queue_is_bounded_and_released() {
        let budget = Arc::new(Budget::default());
        let held = budget.queue_tombstones(MAX_QUEUED_TOMBSTONES - 10).unwrap();
        assert!(budget.queue_tombstones(11).is_none());
        let ten = budget.queue_tombstones(10).unwrap();
        assert!(budget.queue_tombstones(1).is_none());
        drop(held);
        drop(ten);
        assert!(budget.queue_tombstones(MAX_QUEUED_TOMBSTONES).is_some());
        assert!(budget.queue_tombstones(usize::MAX).is_none());
    }

    #[tokio::test]
    async fn serving_slots_are_per_peer() {
        let budget = Budget::default();
        let (a, b) = (node(), node());
        let mut held = Vec::new();
        for _ in 0..MAX_SERVING_PER_PEER {
            held.push(budget.serving_slot(a).await.unwrap());
        }
        // a is out of slots; b is not.
        let more =
            tokio::time::timeout(std::time::Duration::from_millis(20), budget.serving_slot(a))
                .await;
        assert!(more.is_err(), "a got a slot past its limit");
        assert!(budget.serving_slot(b).await.is_some());
        held.pop();
        assert!(budget.serving_slot(a).await.is_some());
    }
}
