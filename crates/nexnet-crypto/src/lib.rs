// Encryption for nexnet objects: streaming AES-256-CTR with a random IV per
// object (header + ciphertext), data keys that never leak, and name ids.
// The crate docs are its README.
#![doc = include_str!("../README.md")]

mod error;
mod header;
mod key;
mod keystream;
mod name;
mod stream;
mod writer;

pub use error::{CryptoError, Result};
pub use header::{FORMAT_VERSION, HEADER_LEN, IV_LEN, MAGIC, ObjectHeader};
pub use key::{DataKey, KEY_ID_LEN, KEY_LEN, KeyId, fill_random, secret_file};
pub use keystream::Keystream;
pub use name::{NameId, name_id};
pub use stream::{DecryptReader, EncryptReader};
pub use writer::{DecryptWriter, EncryptWriter, WRITE_CHUNK};
