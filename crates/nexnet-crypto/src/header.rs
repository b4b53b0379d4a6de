//! The object header that precedes every encrypted object.

use crate::{CryptoError, KEY_ID_LEN, KeyId, Result};

/// Magic bytes that start every nexnet object.
pub const MAGIC: [u8; 4] = *b"NXOB";

/// The object format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Length of the CTR initial counter block.
pub const IV_LEN: usize = 16;

/// Length of an encoded [`ObjectHeader`].
pub const HEADER_LEN: usize = 32;

/// What precedes the ciphertext in an object.
///
/// ```text
/// offset  len  field
///      0    4  magic "NXOB"
///      4    1  format version (1)
///      5    3  reserved, zero
///      8    8  key id (fingerprint of the data key)
///     16   16  IV: the initial AES-256-CTR counter block (random per object)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectHeader {
    /// Which data key encrypted the object.
    pub key_id: KeyId,
    /// The random initial counter block.
    pub iv: [u8; IV_LEN],
}

impl ObjectHeader {
    /// Encodes the header into its fixed 32-byte form.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4] = FORMAT_VERSION;
        out[8..16].copy_from_slice(self.key_id.as_bytes());
        out[16..32].copy_from_slice(&self.iv);
        out
    }

    /// Parses the header at the start of `bytes`; extra bytes are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let Some(bytes) = bytes.get(..HEADER_LEN) else {
            return Err(CryptoError::HeaderTruncated {
                got: bytes.len(),
                needed: HEADER_LEN,
            });
        };
        let magic: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if magic != MAGIC {
            return Err(CryptoError::BadMagic { found: magic });
        }
        if bytes[4] != FORMAT_VERSION {
            return Err(CryptoError::UnsupportedVersion {
                found: bytes[4],
                supported: FORMAT_VERSION,
            });
        }
        let reserved = [bytes[5], bytes[6], bytes[7]];
        if reserved != [0; 3] {
            return Err(CryptoError::ReservedBits { found: reserved });
        }
        let mut key_id = [0u8; KEY_ID_LEN];
        key_id.copy_from_slice(&bytes[8..16]);
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&bytes[16..32]);
        Ok(Self {
            key_id: KeyId::from_bytes(key_id),
            iv,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ObjectHeader {
        ObjectHeader {
            key_id: KeyId::from_bytes([1, 2, 3, 4, 5, 6, 7, 8]),
            iv: [9; IV_LEN],
        }
    }

    #[test]
    fn encode_parse_round_trip() {
        let h = sample();
        assert_eq!(ObjectHeader::parse(&h.encode()).unwrap(), h);
    }

    #[test]
    fn every_short_prefix_is_truncated() {
        let bytes = sample().encode();
        for len in 0..HEADER_LEN {
            let err = ObjectHeader::parse(&bytes[..len]).unwrap_err();
            assert!(
                matches!(err, CryptoError::HeaderTruncated { got, needed: HEADER_LEN } if got == len),
                "{err}"
            );
        }
    }

    #[test]
    fn foreign_magic_future_version_and_reserved_bits_are_refused() {
        let mut b = sample().encode();
        b[0] = b'X';
        assert!(matches!(
            ObjectHeader::parse(&b),
            Err(CryptoError::BadMagic { .. })
        ));

        let mut b = sample().encode();
        b[4] = FORMAT_VERSION + 1;
        assert!(matches!(
            ObjectHeader::parse(&b),
            Err(CryptoError::UnsupportedVersion {
                found: 2,
                supported: 1
            })
        ));

        let mut b = sample().encode();
        b[6] = 1;
        assert!(matches!(
            ObjectHeader::parse(&b),
            Err(CryptoError::ReservedBits { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = ObjectHeader::parse(&bytes);
        }
    }
}
