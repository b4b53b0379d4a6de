//! A content-addressed object store on a local file system.
//!
//! Objects are named by their [`Cid`], the SHA-1 of their bytes, and placed
//! on disk by a pluggable [`PathTransform`] (by default the Cid cut into
//! 5-character directory levels). Writes stream into a temp file while
//! hashing, are fsynced and renamed into place, so a crash leaves a whole
//! object or none; reads can verify the bytes against the Cid as they stream
//! and move a corrupt object to quarantine. Nothing here holds a whole object
//! in memory.
//!
//! ```
//! use nexnet_store::ObjectStore;
//! use tokio::io::AsyncReadExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = ObjectStore::open(dir.path()).await?;
//!
//! let written = store.write(&b"hello, nexnet"[..]).await?;
//! assert_eq!(written.cid.to_string(), "4e24127502635a719bedde9e4b34e50b8b19f21e");
//!
//! let mut text = String::new();
//! store.read_verified(&written.cid).await?.read_to_string(&mut text).await?;
//! assert_eq!(text, "hello, nexnet");
//! # Ok(()) }
//! ```

mod cid;
mod error;
mod layout;
mod reader;
mod store;
mod walk;

pub use cid::{CID_HEX_LEN, CID_LEN, Cid, CidHasher, HashingReader, HashingWriter};
pub use error::{Result, StoreError};
pub use layout::{CasPath, PathTransform};
pub use reader::{ObjectReader, VerifiedReader};
pub use store::{ObjectStore, StoreConfig, Usage, Written};
pub use walk::CidStream;
