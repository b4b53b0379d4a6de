#![doc = include_str!("../README.md")]

pub use nexnet_codec as codec;
pub use nexnet_crypto as crypto;
pub use nexnet_p2p as p2p;
pub use nexnet_server as server;
pub use nexnet_store as store;

pub mod size;
pub mod url_names;
