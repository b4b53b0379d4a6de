#![doc = include_str!("../README.md")]

pub use nexnet_crypto as crypto;
pub use nexnet_store as store;
