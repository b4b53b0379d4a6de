//! The sans-I/O core: an AES-256-CTR keystream positioned in an object.

use std::fmt;

use cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};

use crate::{CryptoError, DataKey, IV_LEN, ObjectHeader, Result, key::fill_random};

/// AES-256 in CTR mode with the whole 16-byte block as a big-endian counter.
type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// The keystream of one object, applied in place to bytes as they stream by.
///
/// Encryption and decryption are the same operation in CTR mode. Everything
/// that moves object bytes (the readers in this crate, or a server fanning
/// chunks out to several peers) is built on [`Keystream::apply`].
pub struct Keystream {
    cipher: Aes256Ctr,
}

impl Keystream {
    fn new(key: &DataKey, iv: &[u8; IV_LEN]) -> Self {
        Self {
            cipher: Aes256Ctr::new(key.expose().into(), iv.into()),
        }
    }

    /// XORs the keystream into `buf` and advances by `buf.len()` bytes.
    ///
    /// # Panics
    ///
    /// Never in practice: only after 2^132 bytes of one object, where the
    /// 128-bit counter would wrap.
    pub fn apply(&mut self, buf: &mut [u8]) {
        self.cipher.apply_keystream(buf);
    }

    /// Moves to plaintext byte `offset`, so that decryption can start in the
    /// middle of an object (range reads).
    pub fn seek(&mut self, offset: u64) -> Result<()> {
        self.cipher
            .try_seek(offset)
            .map_err(|_| CryptoError::SeekOutOfRange { offset })
    }

    /// The plaintext byte offset the next [`apply`](Self::apply) starts at.
    pub fn position(&self) -> u64 {
        self.cipher.current_pos()
    }
}

impl fmt::Debug for Keystream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keystream")
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

impl DataKey {
    /// Starts a new object: a header with a fresh random IV, and its keystream.
    pub fn begin_object(&self) -> Result<(ObjectHeader, Keystream)> {
        let mut iv = [0u8; IV_LEN];
        fill_random(&mut iv)?;
        let header = ObjectHeader {
            key_id: self.id(),
            iv,
        };
        Ok((header, Keystream::new(self, &iv)))
    }

    /// The keystream of an existing object, once its header names this key.
    pub fn keystream_for(&self, header: &ObjectHeader) -> Result<Keystream> {
        if header.key_id != self.id() {
            return Err(CryptoError::KeyMismatch {
                expected: self.id(),
                found: header.key_id,
            });
        }
        Ok(Keystream::new(self, &header.iv))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seek_matches_a_slice_of_the_full_keystream() {
        let key = DataKey::generate().unwrap();
        let (header, mut full) = key.begin_object().unwrap();
        let mut whole = vec![0u8; 4096];
        full.apply(&mut whole);
        for offset in [0u64, 1, 15, 16, 17, 1000, 4095] {
            let mut ks = key.keystream_for(&header).unwrap();
            ks.seek(offset).unwrap();
            assert_eq!(ks.position(), offset);
            let mut part = vec![0u8; 4096 - offset as usize];
            ks.apply(&mut part);
            assert_eq!(part, whole[offset as usize..], "offset {offset}");
        }
    }

    #[test]
    fn each_object_gets_a_fresh_iv() {
        let key = DataKey::generate().unwrap();
        let (a, _) = key.begin_object().unwrap();
        let (b, _) = key.begin_object().unwrap();
        assert_ne!(a.iv, b.iv);
        assert_eq!(a.key_id, key.id());
    }

    #[test]
    fn matches_the_nist_sp800_38a_aes256_ctr_vector() {
        // NIST SP 800-38A, F.5.5 CTR-AES256.Encrypt, first block.
        let key: [u8; 32] =
            hex::decode("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
                .unwrap()
                .try_into()
                .unwrap();
        let iv: [u8; 16] = hex::decode("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
            .unwrap()
            .try_into()
            .unwrap();
        let key = DataKey::from_bytes(key);
        let header = ObjectHeader {
            key_id: key.id(),
            iv,
        };
        let mut block = hex::decode("6bc1bee22e409f96e93d7e117393172a").unwrap();
        key.keystream_for(&header).unwrap().apply(&mut block);
        assert_eq!(hex::encode(block), "601ec313775789a5b7a7f504bbf3d228");
    }
}
