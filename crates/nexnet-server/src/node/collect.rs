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
use tokio::io::AsyncReadExt;

use crate::{
    Result,
    catalog::Layout,
    manifest,
    protocol::{MAX_LIST, Message},
};

/// More unnamed files (roots, whole objects) than this, and more than a
/// tenth of the catalog, is not what crashes and missed deletes leave but
/// what a catalog restored from an old backup does: then nothing is
/// removed.
const MAX_UNNAMED: usize = 64;

/// How long a referenced set answers peers' questions before it is rebuilt.
const REFERENCED_TTL: Duration = Duration::from_secs(60);

/// The objects this node's catalog names, built lately; one build at a
/// time (peers' questions during a build wait for it, not build again).
#[derive(Default)]
pub(crate) struct Referenced {
    last: Mutex<Option<(Instant, Arc<HashSet<Cid>>)>>,
    building: tokio::sync::Mutex<()>,
}

impl Node {
    /// Every object the files in this node's catalog consist of: roots (or
    /// whole objects), manifest nodes and chunks, as built within the last
    /// minute. Fails if a manifest cannot be read: then nothing can be
    /// said about what it names.
    pub(crate) async fn referenced(&self) -> Result<Arc<HashSet<Cid>>> {
        let fresh = |r: &Referenced| {
            r.last
                .lock()
                .as_ref()
                .filter(|(at, _)| at.elapsed() < REFERENCED_TTL)
                .map(|(_, set)| set.clone())
        };
        if let Some(set) = fresh(&self.referenced) {
            return Ok(set);
        }
        let _building = self.referenced.building.lock().await;
        if let Some(set) = fresh(&self.referenced) {
            return Ok(set);
        }
        let set = self.build_referenced().await?;
        *self.referenced.last.lock() = Some((Instant::now(), set.clone()));
        Ok(set)
    }

    async fn build_referenced(&self) -> Result<Arc<HashSet<Cid>>> {
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
        Ok(Arc::new(set))
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
        // Chunks a cut store left are many and expected; files no catalog
        // names are what a catalog lost or restored from an old backup
        // leaves (a store commits its root last, a delete drops it first).
        let mut files = 0usize;
        for cid in &candidates {
            files += usize::from(self.starts_a_file(cid).await);
        }
        if files > MAX_UNNAMED.max(self.catalog.len() / 10) {
            warn!(
                unnamed_files = files,
                unnamed_objects = candidates.len(),
                objects = total,
                "more files no catalog names than crashes leave (a catalog restored from an old backup?): keeping every object"
            );
            return Err("too many unnamed files".into());
        }
        // Every member is asked about every candidate first; then this
        // node's catalog is read once more, for what was named meanwhile.
        let mut unnamed = Vec::new();
        for batch in candidates.chunks(MAX_LIST) {
            let mut named = vec![false; batch.len()];
            let ask: Vec<[u8; 20]> = batch.iter().map(|c| *c.as_bytes()).collect();
            for peer in &peers {
                // A member may have to read its manifests to answer.
                let answer = peer
                    .request(Message::Referenced(ask.clone()), self.config.stall_timeout)
                    .await;
                let Ok(Message::HaveMany(bits)) = answer else {
                    return Err(format!("{:?} did not answer", peer.node_id()));
                };
                for (i, n) in named.iter_mut().enumerate() {
                    *n |= bits.get(i / 8).is_none_or(|b| b & (1 << (i % 8)) != 0);
                }
            }
            unnamed.extend(batch.iter().zip(named).filter(|(_, n)| !n).map(|(c, _)| *c));
        }
        let now = self.referenced_now().await.map_err(|e| e.to_string())?;
        let mut removed = 0;
        for cid in unnamed {
            if now.contains(&cid) || self.storing.lock().contains(&cid) {
                continue;
            }
            match self.store.delete(&cid).await {
                Ok(true) => removed += 1,
                Ok(false) => {}
                Err(e) => warn!(%cid, error = %e, "could not remove an object no file names"),
            }
        }
        Ok(removed)
    }

    /// Whether object `cid` here starts a file (see
    /// [`manifest::starts_a_file`]); unreadable counts as one.
    async fn starts_a_file(&self, cid: &Cid) -> bool {
        let Ok(mut reader) = self.store.read(cid).await else {
            return true;
        };
        let mut prefix = [0u8; 8];
        let mut got = 0;
        while got < prefix.len() {
            match reader.read(&mut prefix[got..]).await {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(_) => return true,
            }
        }
        manifest::starts_a_file(&prefix[..got])
    }

    /// The referenced set rebuilt now, not from the last minute's.
    async fn referenced_now(&self) -> Result<Arc<HashSet<Cid>>> {
        let _building = self.referenced.building.lock().await;
        let set = self.build_referenced().await?;
        *self.referenced.last.lock() = Some((Instant::now(), set.clone()));
        Ok(set)
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
