//! The one error type of this crate.

use std::io;

/// What is wrong with bytes that claim to be nexnet protocol.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A frame longer than the negotiated maximum (checked before allocating).
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// The length the prefix announced.
        len: u64,
        /// The maximum allowed.
        max: u64,
    },

    /// A length prefix too small to hold a frame header.
    #[error("frame length {len} is shorter than a frame header")]
    FrameTooShort {
        /// The length the prefix announced.
        len: u32,
    },

    /// A frame kind this version does not know.
    #[error("unknown frame kind {kind:#04x}")]
    UnknownKind {
        /// The kind byte.
        kind: u8,
    },

    /// A frame whose payload does not fit its kind (a credit frame without
    /// its 4 bytes, say).
    #[error("malformed {kind} frame: {reason}")]
    BadPayload {
        /// The frame kind.
        kind: &'static str,
        /// What is wrong.
        reason: &'static str,
    },

    /// The stream ended in the middle of a frame.
    #[error("connection closed in the middle of a frame ({buffered} bytes buffered)")]
    Truncated {
        /// Bytes of the partial frame.
        buffered: usize,
    },

    /// The handshake did not start with the nexnet magic.
    #[error("not a nexnet peer: handshake magic is {found:02x?}")]
    BadMagic {
        /// The bytes found instead.
        found: [u8; 4],
    },

    /// The peer speaks a protocol version we do not.
    #[error("unsupported protocol version {found} (this build speaks {supported}; {})", if .found < .supported { "the peer must be upgraded" } else { "upgrade this node" })]
    UnsupportedVersion {
        /// The version the peer announced.
        found: u16,
        /// The version we speak.
        supported: u16,
    },

    /// A control message or handshake body that postcard cannot decode.
    #[error("cannot decode {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The postcard error.
        #[source]
        source: postcard::Error,
    },

    /// A value that postcard cannot encode (or that exceeds the frame limit).
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The postcard error.
        #[source]
        source: postcard::Error,
    },

    /// An I/O error from the underlying transport.
    #[error("transport I/O: {0}")]
    Io(#[from] io::Error),
}

/// Result alias for this crate.
pub type Result<T, E = CodecError> = std::result::Result<T, E>;
