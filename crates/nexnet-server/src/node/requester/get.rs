//! Reading a file: its entry found, then its root manifest verified and its
//! chunks fetched and streamed (see [`FileReader`]); or, for a file of the
//! first format, a verified copy of its one object made sure of here and
//! streamed from it.

use std::sync::Arc;

use nexnet_crypto::name_id;
use tracing::{Instrument, info_span, warn};

use crate::{
    CatalogEntry, FileReader, Result, ServerError,
    catalog::Layout,
    check_name,
    manifest::{self, Walk},
    node::{Node, is_corruption},
};

impl Node {
    /// Opens `name` for reading (see [`FileServer::get_with`](crate::FileServer::get_with)):
    /// `range` picks `(offset, len)` from the file's size, or `None` for all.
    pub(crate) async fn get_file(
        self: &Arc<Self>,
        name: &str,
        range: impl FnOnce(u64) -> Option<(u64, u64)>,
    ) -> Result<FileReader> {
        check_name(name)?;
        let name_id = name_id(name);
        async move {
            let entry = self
                .find_entry(name_id, name)
                .await?
                .ok_or_else(|| ServerError::NotFound { name: name.into() })?;
            let file_len = entry.plain_len;
            let (offset, len) = range(file_len).unwrap_or((0, file_len));
            if offset > file_len || (offset == file_len && file_len > 0) {
                // Refused before anything is fetched.
                return Err(ServerError::RangeNotSatisfiable { offset, file_len });
            }
            if entry.layout == Layout::Chunked {
                let walk = self.open_manifest(&entry).await?;
                // A file under another key is refused now, not mid-read.
                self.key.keystream_for(&walk.root().header)?;
                return FileReader::chunked(self.clone(), entry.cid(), walk, offset, len);
            }
            self.ensure_local(&entry).await?;
            if self.catalog.get(&name_id).is_none() {
                self.catalog.put(entry.clone()).await?;
            }
            FileReader::open(self, entry.cid(), file_len, offset, len).await
        }
        .instrument(info_span!("get", %name_id))
        .await
    }

    /// The root manifest of `entry`'s file, verified, checked against the
    /// entry, ready to walk.
    pub(crate) async fn open_manifest(&self, entry: &CatalogEntry) -> Result<Walk> {
        let cid = entry.cid();
        let bytes = self.get_chunk(cid, entry.object_len, true).await?;
        let walk = Walk::new(cid, manifest::Node::parse(cid, &bytes)?)?;
        if walk.root().plain_len != entry.plain_len {
            return Err(ServerError::Manifest {
                cid,
                reason: "the manifest's length is not the entry's",
            });
        }
        Ok(walk)
    }

    /// Makes sure a verified copy of `entry`'s object is here: the local one
    /// if it verifies (a bad one is quarantined), else one fetched.
    pub(crate) async fn ensure_local(&self, entry: &CatalogEntry) -> Result<()> {
        let cid = entry.cid();
        if self.store.has(&cid).await? {
            match self.store.verify(&cid).await {
                Ok(()) => return Ok(()),
                Err(e) if is_corruption(&e) => {
                    warn!(%cid, error = %e, "local copy failed verification; fetching another");
                }
                // Gone since `has` (a concurrent get quarantined it, or an
                // evict): fetch like any missing copy.
                Err(nexnet_store::StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.fetch(entry).await
    }
}
