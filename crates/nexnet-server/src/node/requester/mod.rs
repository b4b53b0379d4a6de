//! The requester side: what this node asks of its peers on behalf of its
//! users. One file per operation; each is a method of [`Node`](super::Node)
//! that [`FileServer`](crate::FileServer) delegates to.

mod delete;
mod fetch;
mod get;
mod inventory;
mod lookup;
mod store;
