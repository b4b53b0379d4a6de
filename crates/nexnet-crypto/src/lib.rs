//! Encryption for nexnet objects: streaming AES-256-CTR with a random IV per
//! object, data keys that never leak, and name ids.
//!
//! An object is a 32-byte [`ObjectHeader`] (magic, version, key id, IV)
//! followed by the AES-256-CTR ciphertext of the file. The readers here
//! encrypt or decrypt any [`std::io::Read`] or [`tokio::io::AsyncRead`] in
//! constant memory, and decryption can start at any byte offset.
//!
//! ```
//! use std::io::Read;
//! use nexnet_crypto::{DataKey, DecryptReader, EncryptReader};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = DataKey::generate()?;
//! let mut object = Vec::new();
//! EncryptReader::new(&key, &b"hello, nexnet"[..])?.read_to_end(&mut object)?;
//!
//! let mut plain = String::new();
//! DecryptReader::new(&key, &object[..])?.read_to_string(&mut plain)?;
//! assert_eq!(plain, "hello, nexnet");
//!
//! // Another key is told apart before any plaintext is produced.
//! let other = DataKey::generate()?;
//! assert!(DecryptReader::new(&other, &object[..]).is_err());
//! # Ok(()) }
//! ```
//!
//! CTR mode is malleable: integrity comes from the content id of the stored
//! object (see `nexnet-store`) and from the plaintext length
//! ([`DecryptReader::expect_len`]), not from this crate.

mod error;
mod header;
mod key;
mod keystream;
mod name;
mod stream;

pub use error::{CryptoError, Result};
pub use header::{FORMAT_VERSION, HEADER_LEN, IV_LEN, MAGIC, ObjectHeader};
pub use key::{DataKey, KEY_ID_LEN, KEY_LEN, KeyId, fill_random};
pub use keystream::Keystream;
pub use name::{NameId, name_id};
pub use stream::{DecryptReader, EncryptReader};
