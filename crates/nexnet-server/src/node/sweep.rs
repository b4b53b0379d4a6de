//! The start-up sweep: objects nothing will ever read are removed before
//! the node takes part in the mesh, unless the catalog may be missing the
//! records that name them.

use std::collections::HashSet;

use futures::StreamExt;
use nexnet_store::{Cid, ObjectStore};
use tracing::{debug, info, warn};

use crate::catalog::Catalog;

/// Orphans are removed at start only while they number at most this many,
/// or at most a tenth of the store: a crash leaves one per store in flight,
/// while a catalog restored from an old backup would leave many.
const MAX_ORPHANS_REMOVED: usize = 64;

/// Removes, at start, objects that nothing will ever read:
///
/// - objects of deleted files (a delete cut off between its tombstone and
///   the object's removal), always: a tombstone is the delete's commit;
/// - orphans, objects no catalog entry names (a crash between an object's
///   commit and its entry, or a replacement cut off before the old version
///   went), unless the catalog may be missing records: records that failed
///   to load (an orphan may be a file's last copy, whose record someone
///   can still recover), a catalog with no history at all beside a store
///   full of objects (a lost or unrestored catalog), or more orphans than a
///   crash leaves ([`MAX_ORPHANS_REMOVED`]). Then they are kept, with a
///   warning.
///
/// Problems are logged, not fatal: an object left behind costs space, not
/// correctness (tests/crash.rs counts what is removed).
pub(super) async fn collect_orphans(store: &ObjectStore, catalog: &Catalog) {
    let named: HashSet<Cid> = catalog.entries().iter().map(|e| e.cid()).collect();
    let (mut total, mut orphans, mut deleted) = (0usize, Vec::new(), 0usize);
    let mut objects = store.list();
    while let Some(cid) = objects.next().await {
        let cid = match cid {
            Ok(cid) => cid,
            Err(e) => {
                warn!(error = %e, "listing objects for orphans stopped");
                return;
            }
        };
        total += 1;
        if named.contains(&cid) {
            continue;
        }
        if catalog.is_deleted(&cid) {
            match store.delete(&cid).await {
                Ok(true) => deleted += 1,
                Ok(false) => {}
                Err(e) => warn!(%cid, error = %e, "could not remove a deleted object"),
            }
        } else {
            orphans.push(cid);
        }
    }
    if deleted > 0 {
        info!(
            removed = deleted,
            "removed objects of deleted files (a delete cut off by a crash)"
        );
    }
    if orphans.is_empty() {
        return;
    }
    let kept = orphans.len();
    if let Some(dir) = catalog.damaged() {
        warn!(kept, damaged = %dir.display(), "catalog records failed to load: keeping objects no entry names until they are dealt with");
        return;
    }
    if catalog.len() == 0 && catalog.tombstones().is_empty() {
        warn!(
            kept,
            "the catalog is empty but the store is not (a catalog lost or not restored?): keeping objects no entry names"
        );
        return;
    }
    if kept > MAX_ORPHANS_REMOVED && kept > total / 10 {
        warn!(
            kept,
            objects = total,
            "more objects no entry names than a crash leaves (a catalog restored from an old backup?): keeping them"
        );
        return;
    }
    let (mut removed, mut failed) = (0usize, 0usize);
    for cid in orphans {
        match store.delete(&cid).await {
            Ok(true) => removed += 1,
            Ok(false) => {}
            Err(e) => {
                failed += 1;
                debug!(%cid, error = %e, "could not remove an orphan object");
            }
        }
    }
    if removed + failed > 0 {
        info!(
            removed,
            failed, "removed objects no file names (left by a crash)"
        );
    }
}
