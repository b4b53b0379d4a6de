//! The start-up sweep: objects of deleted files are removed before the node
//! takes part in the mesh (a delete cut off between its tombstone and the
//! object's removal): a deleted root with the chunks and nodes its manifest
//! here names, or a whole object of the first format. A tombstone is the
//! delete's commit, so this needs no one else's word. Everything else no
//! file names (chunks of a store cut by a crash, say) is left to the
//! collector, which does ask (`collect`).

use futures::StreamExt;
use nexnet_store::{Cid, ObjectStore};
use tracing::{info, warn};

use crate::{
    catalog::Catalog,
    manifest::{self, LoadNode, Walk},
};

/// Loads manifest nodes from a store alone (the node is not up yet).
struct FromStore<'a>(&'a ObjectStore);

impl LoadNode for FromStore<'_> {
    async fn load(&self, cid: Cid) -> crate::Result<manifest::Node> {
        match super::chunks::read_verified(self.0, &cid, manifest::MAX_NODE_LEN, false).await? {
            Some(bytes) => manifest::Node::parse(cid, &bytes),
            None => Err(nexnet_store::StoreError::NotFound { cid }.into()),
        }
    }
}

/// The chunks and nodes below the deleted root `root` that are here.
async fn remove_tree(store: &ObjectStore, root: Cid) -> usize {
    let loader = FromStore(store);
    let Ok(node) = loader.load(root).await else {
        return 0;
    };
    let Ok(walk) = Walk::new(root, node) else {
        return 0;
    };
    let (mut ids, mut removed) = (walk.ids(), 0);
    while let Ok(Some(id)) = ids.next(&loader).await {
        if let Ok(true) = store.delete(&id.cid()).await {
            removed += 1;
        }
    }
    removed
}

/// Removes, at start, the objects whose cid has a tombstone here, and
/// what their manifests name.
pub(super) async fn remove_deleted(store: &ObjectStore, catalog: &Catalog) {
    if catalog.tombstones().is_empty() {
        return;
    }
    let mut deleted = 0usize;
    let mut objects = store.list();
    while let Some(cid) = objects.next().await {
        let cid = match cid {
            Ok(cid) => cid,
            Err(e) => {
                warn!(error = %e, "listing objects for deleted files stopped");
                return;
            }
        };
        if catalog.is_deleted(&cid) {
            deleted += remove_tree(store, cid).await;
            match store.delete(&cid).await {
                Ok(true) => deleted += 1,
                Ok(false) => {}
                Err(e) => warn!(%cid, error = %e, "could not remove a deleted object"),
            }
        }
    }
    if deleted > 0 {
        info!(
            removed = deleted,
            "removed objects of deleted files (a delete cut off by a crash)"
        );
    }
}
