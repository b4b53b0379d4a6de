// The nexnet node: a FileServer that keeps encrypted, content-addressed
// files for its users and its peers, replicates them by rendezvous hashing,
// fetches and verifies what it lacks, deletes everywhere, and repairs.
// The crate docs are its README.
#![doc = include_str!("../README.md")]

mod budget;
mod catalog;
mod config;
mod data_dir;
mod error;
#[doc(hidden)]
pub mod manifest;
mod members;
mod names;
mod node;
pub mod placement;
#[doc(hidden)]
pub mod protocol;
mod reader;
mod reports;
mod server;
mod transfer;

pub use catalog::{CatalogEntry, Tombstone};
pub use config::{MAX_DURATION, ServerConfig};
pub use data_dir::{Initialized, KEY_FILE, NODE_ID_FILE, SECRET_FILE, init_data_dir};
pub use error::{PeerFailure, Result, ServerError};
pub use members::MemberInfo;
pub use names::{MAX_NAME_LEN, check_name};
pub use protocol::Refusal;
pub use reader::FileReader;
pub use reports::{DeleteReport, FileInfo, Receipt, RepairReport};
pub use server::{FileServer, Stats};
