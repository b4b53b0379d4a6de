//! What this node holds and knows, without asking anyone (but `info`,
//! which finds a name the way a get does): files, copies, counters.

use std::time::Duration;

use nexnet_crypto::name_id;

use crate::{
    CatalogEntry, FileInfo, Result, ServerError, Stats, catalog::Layout, check_name, node::Node,
    placement,
};

impl Node {
    /// Drops this node's copy of `name`'s object (see [`FileServer::evict`](crate::FileServer::evict)).
    pub(crate) async fn evict(&self, name: &str) -> Result<bool> {
        check_name(name)?;
        let Some(entry) = self.catalog.get(&name_id(name)) else {
            return Err(ServerError::NotFound { name: name.into() });
        };
        let root = entry.cid();
        let mut had = false;
        if entry.layout == Layout::Chunked {
            had |= self.drop_local_tree(root).await?;
        }
        had |= self.store.delete(&root).await?;
        Ok(had)
    }

    /// Whether this node holds `name`'s object itself.
    pub(crate) async fn has_local(&self, name: &str) -> Result<bool> {
        check_name(name)?;
        match self.catalog.get(&name_id(name)) {
            Some(entry) => Ok(self.store.has(&entry.cid()).await?),
            None => Ok(false),
        }
    }

    /// The files in this node's catalog, by name where the key allows.
    pub(crate) async fn list(&self) -> Result<Vec<FileInfo>> {
        let mut out = Vec::new();
        for e in self.catalog.entries() {
            out.push(self.file_info(&e).await?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.name_id.cmp(&b.name_id)));
        Ok(out)
    }

    /// What is known of `name`, here or by the members, without reading it.
    pub(crate) async fn info(&self, name: &str) -> Result<FileInfo> {
        check_name(name)?;
        match self.find_entry(name_id(name), name).await? {
            Some(e) => self.file_info(&e).await,
            None => Err(ServerError::NotFound { name: name.into() }),
        }
    }

    async fn file_info(&self, e: &CatalogEntry) -> Result<FileInfo> {
        let cid = e.cid();
        Ok(FileInfo {
            name: e.name(&self.key).ok(),
            name_id: e.name_id(),
            cid,
            size: e.plain_len,
            created_ms: e.created_ms,
            local: self.store.has(&cid).await?,
            holders: placement::holders(&cid, self.all_nodes(), self.config.replication),
        })
    }

    /// Objects, bytes, files and peers.
    pub(crate) fn stats(&self) -> Stats {
        let usage = self.store.usage();
        Stats {
            objects: usage.objects,
            bytes: usage.bytes,
            files: self.catalog.len(),
            peers: self.members.proven_peers(),
            members: self.members.ids().len(),
            cached_bytes: self.cache.used(),
            chunks_fetched: self
                .chunk_fetches
                .load(std::sync::atomic::Ordering::Relaxed),
            served_bytes: self.served_bytes.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Waits until `n` members are connected, for at most `within`.
    pub(crate) async fn wait_for_peers(&self, n: usize, within: Duration) -> bool {
        let mut rx = self.connected.subscribe();
        tokio::time::timeout(within, rx.wait_for(|c| *c >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}
