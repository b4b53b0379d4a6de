//! The one error type of this crate.

use std::{io, path::PathBuf};

use crate::Cid;

/// Everything that can go wrong in the object store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No object with this content id is stored.
    #[error("object {cid} not found")]
    NotFound {
        /// The missing object.
        cid: Cid,
    },

    /// A stored object no longer hashes to its content id. It has been moved
    /// to the quarantine folder and will not be served again.
    #[error("object {cid} is corrupt (its bytes hash to {actual}); moved to quarantine")]
    Corrupt {
        /// The object's content id.
        cid: Cid,
        /// What its bytes actually hash to.
        actual: Cid,
    },

    /// Bytes offered for a content id hash to something else; nothing was stored.
    #[error("content mismatch: expected {expected}, the bytes hash to {actual}")]
    HashMismatch {
        /// The content id the writer claimed.
        expected: Cid,
        /// What the bytes hash to.
        actual: Cid,
    },

    /// The object grew past the store's size limit; nothing was stored.
    #[error("object exceeds the store's limit of {limit} bytes")]
    TooLarge {
        /// The configured limit in bytes.
        limit: u64,
    },

    /// A string that is not a content id.
    #[error("invalid content id {input:?}: {reason}")]
    InvalidCid {
        /// The offending input (cut to 64 characters).
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The store's root exists but is not a directory.
    #[error("store root {path} is not a directory", path = path.display())]
    NotADirectory {
        /// The root given.
        path: PathBuf,
    },

    /// Another process has this store open.
    #[error("store {path} is in use by another process", path = path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },

    /// The path transform produced a path that leaves the objects directory.
    #[error("path transform gave {path} for {cid}, which is not a plain relative path", path = path.display())]
    BadLayout {
        /// The object.
        cid: Cid,
        /// The path the transform returned.
        path: PathBuf,
    },

    /// The store was created with another path transform.
    #[error("store layout is {found:?} (see {path}), but it was opened with {wanted:?}", path = path.display())]
    LayoutMismatch {
        /// The layout file.
        path: PathBuf,
        /// The layout the store was created with.
        found: String,
        /// The layout it was opened with.
        wanted: String,
    },

    /// Reading the caller's source stream failed; nothing was stored.
    #[error("reading the source: {0}")]
    Source(#[source] io::Error),

    /// An I/O error, with what we were doing and on which path.
    #[error("{op} {path}: {source}", path = path.display())]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A blocking file-system task died (it panicked or the runtime is shutting down).
    #[error("file-system task failed: {0}")]
    Task(String),
}

impl StoreError {
    /// Finds a `StoreError` carried inside an `io::Error` returned by one of
    /// this crate's readers.
    pub fn from_io(err: &io::Error) -> Option<&StoreError> {
        err.get_ref()?.downcast_ref::<StoreError>()
    }

    /// Unwraps a `StoreError` carried in an `io::Error`, or wraps the
    /// `io::Error` with what we were doing.
    pub(crate) fn from_io_owned(err: io::Error, op: &'static str, path: PathBuf) -> Self {
        if Self::from_io(&err).is_none() {
            return StoreError::Io {
                op,
                path,
                source: err,
            };
        }
        match err.into_inner().map(|inner| inner.downcast::<StoreError>()) {
            Some(Ok(store_err)) => *store_err,
            // Unreachable: `from_io` just found a StoreError inside.
            _ => StoreError::Task("an error was lost while unwrapping it".into()),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

impl From<tokio::task::JoinError> for StoreError {
    fn from(e: tokio::task::JoinError) -> Self {
        StoreError::Task(e.to_string())
    }
}

/// Result alias for this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
