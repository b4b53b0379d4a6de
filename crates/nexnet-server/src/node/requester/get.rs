//! Reading a file: its entry found, a verified copy of its object made
//! sure of here (the local one, or one fetched), then the plaintext
//! streamed from it.

use nexnet_crypto::name_id;
use tracing::{Instrument, info_span, warn};

use crate::{
    CatalogEntry, FileReader, Result, ServerError, check_name,
    node::{Node, is_corruption},
};

impl Node {
    /// Opens `name` for reading (see [`FileServer::get_with`](crate::FileServer::get_with)):
    /// `range` picks `(offset, len)` from the file's size, or `None` for all.
    pub(crate) async fn get_file(
        &self,
        name: &str,
        range: impl FnOnce(u64) -> Option<(u64, u64)>,
    ) -> Result<FileReader> {
        check_name(name)?;
        let name_id = name_id(name);
        async move {
            let entry = self
                .find_entry(name_id)
                .await
                .ok_or_else(|| ServerError::NotFound { name: name.into() })?;
            let file_len = entry.plain_len;
            let (offset, len) = range(file_len).unwrap_or((0, file_len));
            if offset > file_len || (offset == file_len && file_len > 0) {
                // Refused before anything is fetched.
                return Err(ServerError::RangeNotSatisfiable { offset, file_len });
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
