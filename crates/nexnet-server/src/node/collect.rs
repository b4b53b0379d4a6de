//! The collector: removes objects that no file names anywhere, chunks and
//! manifest nodes of a store cut short (a crash, a missed quorum), of a
//! version replaced or a file deleted while a holder was away, and whole
//! objects a crash left without their entry.
//!
//! An object goes only if (1) it is older than the grace period and no
//! store running on any member has put it (a store's chunks are named by
//! nothing until its root is committed, and a slow upload may outlast any
//! grace period); (2) no manifest of any catalog entry here
//! names it; and (3) every member answered that none of its entries' files
//! name it either. A member that cannot be asked, or records that failed to
//! load here, stop the pass: an object kept costs space, one removed
//! wrongly costs a file.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use futures::StreamExt;
use nexnet_store::Cid;
use parking_lot::Mutex;
use tracing::{debug, info, warn};

use super::{Manifests, Node};
use crate::{
    Result,
    catalog::Layout,
    protocol::{MAX_LIST, Message},
};

/// More unnamed objects than this, and more than a tenth of the store, is
/// not what crashes and missed deletes leave but what a catalog restored
/// from an old backup does: then nothing is removed.
const MAX_UNNAMED: usize = 64;

/// How long a referenced set answers peers' questions before it is rebuilt.
const REFERENCED_TTL: Duration = Duration::from_secs(60);

/// The objects this node's catalog names, built lately.
#[derive(Default)]
pub(crate) struct Referenced(Mutex<Option<(Instant, Arc<HashSet<Cid>>)>>);

impl Node {
    /// Every object the files in this node's catalog consist of: roots (or
    /// whole objects), manifest nodes and chunks. Fails if a manifest
    /// cannot be read: then nothing can be said about what it names.
    pub(crate) async fn referenced(&self) -> Result<Arc<HashSet<Cid>>> {
        if let Some((at, set)) = &*self.referenced.0.lock()
            && at.elapsed() < REFERENCED_TTL
        {
            return Ok(set.clone());
        }
        let mut set = HashSet::new();
        for entry in self.catalog.entries() {
            set.insert(entry.cid());
            if entry.layout != Layout::Chunked {
                continue;
            }
            let walk = self.open_manifest(&entry).await?;
            let mut ids = walk.ids();
            while let Some(id) = ids.next(&Manifests(self)).await? {
                set.insert(id.cid());
            }
        }
        let set = Arc::new(set);
        *self.referenced.0.lock() = Some((Instant::now(), set.clone()));
        Ok(set)
    }

    /// Answers a peer's `Referenced`: a bitmap of those this node's files
    /// name (all of them, if that cannot be known now).
    pub(crate) async fn answer_referenced(&self, cids: Vec<[u8; 20]>) -> Message {
        let n = cids.len().min(MAX_LIST);
        let set = match self.referenced().await {
            Ok(set) => set,
            Err(e) => {
                debug!(error = %e, "cannot tell what this node's files name; saying all");
                return Message::HaveMany(vec![0xff; n.div_ceil(8)]);
            }
        };
        let mut bits = vec![0u8; n.div_ceil(8)];
        for (i, cid) in cids.into_iter().take(MAX_LIST).enumerate() {
            let cid = Cid::from_bytes(cid);
            if set.contains(&cid)
                || self.storing.lock().contains(&cid)
                || self.catalog.damaged().is_some()
            {
                bits[i / 8] |= 1 << (i % 8);
            }
        }
        Message::HaveMany(bits)
    }

    /// One collection pass (see the module docs); returns how many objects
    /// it removed.
    pub(crate) async fn collect(&self) -> usize {
        match self.collect_inner().await {
            Ok(removed) => {
                if removed > 0 {
                    info!(removed, "removed objects no file names");
                }
                removed
            }
            Err(why) => {
                debug!(%why, "collection skipped");
                0
            }
        }
    }

    async fn collect_inner(&self) -> std::result::Result<usize, String> {
        if let Some(dir) = self.catalog.damaged() {
            return Err(format!(
                "catalog records failed to load (in {})",
                dir.display()
            ));
        }
        let ids = self.members.ids();
        let peers = self.members.peers();
        if peers.len() < ids.len() {
            return Err("a member is not connected".into());
        }
        if ids.is_empty() && self.catalog.len() == 0 && self.catalog.tombstones().is_empty() {
            return Err("an empty catalog beside a store (lost or not restored?)".into());
        }
        let referenced = self.referenced().await.map_err(|e| e.to_string())?;
        let grace = self.config.gc_grace;
        let (mut candidates, mut total) = (Vec::new(), 0usize);
        let mut listed = self.store.list();
        while let Some(cid) = listed.next().await {
            let cid = cid.map_err(|e| e.to_string())?;
            total += 1;
            if referenced.contains(&cid)
                || self.storing.lock().contains(&cid)
                || !self.older_than(&cid, grace).await
            {
                continue;
            }
            candidates.push(cid);
        }
        if candidates.len() > MAX_UNNAMED && candidates.len() > total / 10 {
            warn!(
                unnamed = candidates.len(),
                objects = total,
                "more objects no file names than crashes leave (a catalog restored from an old backup?): keeping them"
            );
            return Err("too many unnamed objects".into());
        }
        let mut removed = 0;
        for batch in candidates.chunks(MAX_LIST) {
            let mut named = vec![false; batch.len()];
            let ask: Vec<[u8; 20]> = batch.iter().map(|c| *c.as_bytes()).collect();
            for peer in &peers {
                let answer = peer
                    .request(
                        Message::Referenced(ask.clone()),
                        self.config.request_timeout,
                    )
                    .await;
                let Ok(Message::HaveMany(bits)) = answer else {
                    return Err(format!("{:?} did not answer", peer.node_id()));
                };
                for (i, n) in named.iter_mut().enumerate() {
                    *n |= bits.get(i / 8).is_none_or(|b| b & (1 << (i % 8)) != 0);
                }
            }
            // Named since the pass began (a store that just finished)?
            let now = self.referenced_now().await.map_err(|e| e.to_string())?;
            for (cid, named) in batch.iter().zip(named) {
                if named || now.contains(cid) || self.storing.lock().contains(cid) {
                    continue;
                }
                match self.store.delete(cid).await {
                    Ok(true) => removed += 1,
                    Ok(false) => {}
                    Err(e) => warn!(%cid, error = %e, "could not remove an object no file names"),
                }
            }
        }
        Ok(removed)
    }

    /// The referenced set rebuilt now, not from the last minute's.
    async fn referenced_now(&self) -> Result<Arc<HashSet<Cid>>> {
        *self.referenced.0.lock() = None;
        self.referenced().await
    }

    async fn older_than(&self, cid: &Cid, grace: Duration) -> bool {
        let Ok(path) = self.store.path_of(cid) else {
            return false;
        };
        let Ok(meta) = tokio::fs::metadata(&path).await else {
            return false;
        };
        meta.modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age >= grace)
    }
}
