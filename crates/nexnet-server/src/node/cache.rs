//! The read cache: chunks a node fetched for its users but does not hold
//! by placement, kept in a store of their own (`DATA_DIR/cache`) under a
//! byte budget and evicted least recently used.
//!
//! A separate store makes the cache's one invariant structural: a chunk
//! this node holds by placement lives in the main store and is never
//! evicted; only what is here can be. The cache is not fsynced (losing it
//! costs a refetch) and is rebuilt from its directory at start.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use futures::StreamExt;
use nexnet_store::{CasPath, Cid, Durability, ObjectStore, StoreConfig};
use parking_lot::Mutex;
use tracing::debug;

use crate::Result;

/// The chunks in the cache, by recency. Invariant: `bytes` is the sum of
/// the sizes in `by_cid`, and `by_tick` holds each cid of `by_cid` once,
/// under its tick.
#[derive(Default)]
struct Lru {
    by_cid: HashMap<Cid, (u64, u64)>,
    by_tick: BTreeMap<u64, Cid>,
    tick: u64,
    bytes: u64,
}

impl Lru {
    fn touch(&mut self, cid: &Cid) -> bool {
        let Some((_, tick)) = self.by_cid.get_mut(cid) else {
            return false;
        };
        self.by_tick.remove(tick);
        self.tick += 1;
        *tick = self.tick;
        self.by_tick.insert(self.tick, *cid);
        true
    }

    fn insert(&mut self, cid: Cid, size: u64) {
        if self.touch(&cid) {
            return;
        }
        self.tick += 1;
        self.by_cid.insert(cid, (size, self.tick));
        self.by_tick.insert(self.tick, cid);
        self.bytes += size;
    }

    fn remove(&mut self, cid: &Cid) {
        if let Some((size, tick)) = self.by_cid.remove(cid) {
            self.by_tick.remove(&tick);
            self.bytes -= size;
        }
    }

    /// The least recently used chunks to drop for the rest to fit `budget`.
    fn over(&mut self, budget: u64) -> Vec<Cid> {
        let mut out = Vec::new();
        while self.bytes > budget {
            let Some((_, cid)) = self.by_tick.pop_first() else {
                break;
            };
            if let Some((size, _)) = self.by_cid.remove(&cid) {
                self.bytes -= size;
            }
            out.push(cid);
        }
        out
    }
}

/// See the module docs.
pub(crate) struct Cache {
    store: ObjectStore,
    budget: u64,
    lru: Mutex<Lru>,
}

impl Cache {
    /// Opens the cache under `dir`, taking in what an earlier run left.
    pub(crate) async fn open(dir: std::path::PathBuf, budget: u64) -> Result<Self> {
        let settings = StoreConfig::default().fsync(false);
        let store = ObjectStore::open_with(dir, settings, CasPath::new(5, 2)).await?;
        let cache = Self {
            store,
            budget,
            lru: Mutex::default(),
        };
        let mut listed = cache.store.list();
        while let Some(cid) = listed.next().await {
            let Ok(cid) = cid else { break };
            if let Ok(len) = cache.store.len(&cid).await {
                cache.lru.lock().insert(cid, len);
            }
        }
        cache.trim().await;
        Ok(cache)
    }

    /// The cached chunk `cid`, verified (a damaged one is dropped).
    pub(crate) async fn get(&self, cid: &Cid, len: u64, exact: bool) -> Option<Bytes> {
        if !self.lru.lock().touch(cid) {
            return None;
        }
        match super::chunks::read_verified(&self.store, cid, len, exact).await {
            Ok(Some(bytes)) => Some(bytes),
            _ => {
                self.lru.lock().remove(cid);
                let _ = self.store.delete(cid).await;
                None
            }
        }
    }

    /// Keeps `bytes` (verified to be `cid`) unless the budget is zero, and
    /// evicts what no longer fits.
    pub(crate) async fn put(&self, cid: Cid, bytes: Bytes) {
        let len = bytes.len() as u64;
        if len > self.budget {
            return;
        }
        match self
            .store
            .write_bytes_hashed(cid, bytes, Durability::Now)
            .await
        {
            Ok(_) => self.lru.lock().insert(cid, len),
            Err(e) => debug!(%cid, error = %e, "could not cache a chunk"),
        }
        self.trim().await;
    }

    /// Drops `cid` if it is cached (its file was deleted, or this node now
    /// holds it by placement).
    pub(crate) async fn remove(&self, cid: &Cid) {
        self.lru.lock().remove(cid);
        let _ = self.store.delete(cid).await;
    }

    /// Bytes cached now.
    pub(crate) fn used(&self) -> u64 {
        self.lru.lock().bytes
    }

    async fn trim(&self) {
        let drop = self.lru.lock().over(self.budget);
        for cid in drop {
            let _ = self.store.delete(&cid).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_goes_first_and_the_sum_is_kept() {
        let mut lru = Lru::default();
        let ids: Vec<Cid> = (0u8..4).map(|i| Cid::of(&[i])).collect();
        for id in &ids {
            lru.insert(*id, 10);
        }
        assert!(lru.touch(&ids[0]));
        assert_eq!(lru.over(25), vec![ids[1], ids[2]]);
        assert_eq!(lru.bytes, 20);
        lru.remove(&ids[3]);
        assert_eq!(lru.bytes, 10);
        assert_eq!(lru.over(0), vec![ids[0]]);
        assert!(lru.by_tick.is_empty() && lru.by_cid.is_empty());
    }
}
