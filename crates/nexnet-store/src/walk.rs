//! Walking the objects directory: counting at open, and streaming `list`.

use std::{
    fs, io,
    path::{Path, PathBuf},
    pin::Pin,
    task::{Context, Poll},
};

use futures::Stream;
use tokio::sync::mpsc;
use tracing::warn;

use crate::{Cid, Result, StoreError, layout::cid_of_file};

/// Deeper than any sane layout: a tree this deep was not made by us, and is
/// not followed (which also bounds the open directory handles).
const MAX_DEPTH: usize = 64;

/// Whether a walk goes on.
pub(crate) enum Visit {
    Continue,
    Stop,
}

/// Calls `visit` with every object file (named by a valid Cid) below
/// `objects` and its length. Holds one open directory per level, nothing more.
pub(crate) fn walk(objects: &Path, mut visit: impl FnMut(Cid, u64) -> Visit) -> Result<()> {
    let read_dir =
        |dir: &Path| fs::read_dir(dir).map_err(|e| StoreError::io("read directory", dir, e));
    let mut stack = vec![(objects.to_path_buf(), read_dir(objects)?)];
    while let Some((dir, entries)) = stack.last_mut() {
        let Some(entry) = entries.next() else {
            stack.pop();
            continue;
        };
        let entry = entry.map_err(|e| StoreError::io("read directory", &*dir, e))?;
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            // Removed under our feet by a concurrent delete.
            continue;
        };
        if kind.is_dir() {
            if stack.len() >= MAX_DEPTH {
                warn!(dir = %path.display(), "object tree too deep; not descending");
                continue;
            }
            match fs::read_dir(&path) {
                Ok(entries) => stack.push((path, entries)),
                // Pruned by a concurrent delete.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("read directory", path, e)),
            }
        } else if kind.is_file()
            && let Some(cid) = cid_of_file(&path)
        {
            let len = match entry.metadata() {
                Ok(meta) => meta.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("stat", path, e)),
            };
            if let Visit::Stop = visit(cid, len) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A stream of every stored [`Cid`], fed by a directory walk on a blocking
/// thread through a small bounded channel. Dropping it stops the walk.
#[derive(Debug)]
pub struct CidStream {
    rx: mpsc::Receiver<Result<Cid>>,
}

impl CidStream {
    pub(crate) fn spawn(objects: PathBuf) -> Self {
        let (tx, rx) = mpsc::channel(256);
        tokio::task::spawn_blocking(move || {
            let walked = walk(&objects, |cid, _| match tx.blocking_send(Ok(cid)) {
                Ok(()) => Visit::Continue,
                Err(_) => Visit::Stop,
            });
            if let Err(e) = walked {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Self { rx }
    }
}

impl Stream for CidStream {
    type Item = Result<Cid>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
