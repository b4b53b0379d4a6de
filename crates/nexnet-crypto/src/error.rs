//! The one error type of this crate.

use std::{io, path::PathBuf};

use crate::KeyId;

/// Everything that can go wrong while handling keys, headers and encrypted streams.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The object was encrypted under another data key.
    #[error("key mismatch: this key is {expected}, but the object was encrypted with key {found}")]
    KeyMismatch {
        /// Id of the key we hold.
        expected: KeyId,
        /// Id of the key named in the object header.
        found: KeyId,
    },

    /// Fewer bytes than a whole object header.
    #[error("object header truncated: got {got} of {needed} bytes")]
    HeaderTruncated {
        /// Bytes present.
        got: usize,
        /// Bytes a header needs.
        needed: usize,
    },

    /// The bytes do not start with the nexnet object magic.
    #[error("not a nexnet object: magic is {found:02x?}")]
    BadMagic {
        /// The first four bytes found.
        found: [u8; 4],
    },

    /// The header was written by a newer (or unknown) format version.
    #[error("unsupported object format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version in the header.
        found: u8,
        /// Version this build understands.
        supported: u8,
    },

    /// Reserved header bytes are set: a format we do not understand.
    #[error("object header has reserved bytes set: {found:02x?}")]
    ReservedBits {
        /// The reserved bytes found.
        found: [u8; 3],
    },

    /// The decrypted stream was not as long as the caller said it must be.
    #[error("plaintext length mismatch: expected {expected} bytes, stream has {actual}")]
    LengthMismatch {
        /// Length the caller expected.
        expected: u64,
        /// Length seen (a lower bound if the stream was longer).
        actual: u64,
    },

    /// A seek past what a CTR stream can address.
    #[error("cannot seek the keystream to byte offset {offset}")]
    SeekOutOfRange {
        /// The requested plaintext offset.
        offset: u64,
    },

    /// A key file is readable by group or others.
    #[error(
        "key file {path} has mode {mode:o}, readable by others; fix it with `chmod 600 {path}`",
        path = path.display()
    )]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// A key file that does not hold a key.
    #[error("key file {path} is malformed: {reason}", path = path.display())]
    KeyFileMalformed {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it (never any key bytes).
        reason: &'static str,
    },

    /// Refused to overwrite an existing key file.
    #[error("key file {path} already exists; refusing to overwrite it", path = path.display())]
    KeyFileExists {
        /// The key file.
        path: PathBuf,
    },

    /// The operating system's random number generator failed.
    #[error("OS random number generator failed: {0}")]
    Rng(String),

    /// An I/O error, with what we were doing and on which path.
    #[error("{op} {path}: {source}", path = path.display())]
    Io {
        /// What we were doing.
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// An I/O error on a stream (no path to name).
    #[error("stream I/O: {0}")]
    Stream(#[source] io::Error),
}

impl CryptoError {
    /// Finds a `CryptoError` carried inside an `io::Error` returned by one of
    /// this crate's readers.
    pub fn from_io(err: &io::Error) -> Option<&CryptoError> {
        err.get_ref()?.downcast_ref::<CryptoError>()
    }

    /// The same error again, for adapters that keep failing once they have
    /// failed (`io::Error` is not `Clone`, so I/O errors keep only their text).
    pub(crate) fn duplicate(&self) -> Self {
        match self {
            Self::KeyMismatch { expected, found } => Self::KeyMismatch {
                expected: *expected,
                found: *found,
            },
            Self::HeaderTruncated { got, needed } => Self::HeaderTruncated {
                got: *got,
                needed: *needed,
            },
            Self::BadMagic { found } => Self::BadMagic { found: *found },
            Self::UnsupportedVersion { found, supported } => Self::UnsupportedVersion {
                found: *found,
                supported: *supported,
            },
            Self::ReservedBits { found } => Self::ReservedBits { found: *found },
            Self::LengthMismatch { expected, actual } => Self::LengthMismatch {
                expected: *expected,
                actual: *actual,
            },
            other => Self::Stream(io::Error::other(other.to_string())),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        CryptoError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Wraps the error for return through `Read`/`AsyncRead`.
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            CryptoError::Stream(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;
