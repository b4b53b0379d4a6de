// A content-addressed object store: SHA-1 content ids, atomic streaming
// writes into a sharded directory tree, verified reads with quarantine.
// The crate docs are its README.
#![doc = include_str!("../README.md")]

pub mod atomic;
mod cid;
mod error;
mod layout;
mod reader;
mod store;
mod walk;

pub use atomic::AtomicFile;
pub use cid::{CID_HEX_LEN, CID_LEN, Cid, CidHasher, HashingReader, HashingWriter};
pub use error::{Result, StoreError};
pub use layout::{CasPath, CustomPath, PathTransform};
pub use reader::{ObjectReader, VerifiedReader};
pub use store::{
    Durability, EARLY_SYNC_BYTES, ObjectStore, ObjectWriter, StoreConfig, Usage, Written,
};
pub use walk::CidStream;
