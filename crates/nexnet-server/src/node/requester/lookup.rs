//! Finding a name's catalog entry: ours, or the newest the members know.

use futures::{StreamExt, stream::FuturesUnordered};
use nexnet_crypto::NameId;

use crate::{CatalogEntry, node::Node, protocol::Message};

impl Node {
    /// The catalog entry for `name`: ours, or the newest a member knows.
    pub(crate) async fn find_entry(&self, name: NameId) -> Option<CatalogEntry> {
        if let Some(e) = self.catalog.get(&name) {
            return Some(e);
        }
        let timeout = self.config.request_timeout;
        let lookup = Message::Lookup {
            name: *name.as_bytes(),
        };
        let mut asking: FuturesUnordered<_> = self
            .members
            .peers()
            .into_iter()
            .map(|p| {
                let lookup = lookup.clone();
                async move { p.request(lookup, timeout).await }
            })
            .collect();
        // Every member answers (each within the request time-out) and the
        // newest entry wins: one that missed a replacement must not decide.
        let mut newest: Option<CatalogEntry> = None;
        while let Some(answer) = asking.next().await {
            if let Ok(Message::Entry(Some(entry))) = answer
                && entry.name_id() == name
                && entry.check().is_ok()
                && !self.catalog.is_deleted(&entry.cid())
                && newest.as_ref().is_none_or(|n| entry.is_newer_than(n))
            {
                newest = Some(entry);
            }
        }
        newest
    }
}
