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
mod files;
mod membership;
mod names;
mod node;
pub mod placement;
mod protocol;
mod repair;
mod server;
mod transfer;

pub use catalog::{CatalogEntry, Tombstone};
pub use config::{MAX_DURATION, ServerConfig};
pub use data_dir::{Initialized, KEY_FILE, NODE_ID_FILE, SECRET_FILE, init_data_dir};
pub use error::{Result, ServerError};
pub use files::{DeleteReport, FileInfo, FileReader, Receipt};
pub use membership::MemberInfo;
pub use names::{MAX_NAME_LEN, check_name};
pub use repair::RepairReport;
pub use server::{FileServer, Stats};
