//! Who a node is, and the secret that admits it to a network.

use std::{fmt, str::FromStr};

use rand::TryRng;
use zeroize::Zeroizing;

use crate::{P2pError, Result};

/// Fills `buf` from the operating system's random number generator.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<()> {
    rand::rngs::SysRng
        .try_fill_bytes(buf)
        .map_err(|e| P2pError::Rng(e.to_string()))
}

fn random32() -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    fill_random(&mut out)?;
    Ok(out)
}

/// A node's identity: 32 random bytes, chosen once and kept by the node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId([u8; 32]);

impl NodeId {
    /// A fresh random id from the OS RNG.
    pub fn generate() -> Result<Self> {
        random32().map(Self)
    }

    /// An id from its bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The id's bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Eight hex digits tell nodes apart in logs.
        write!(f, "NodeId({}…)", &hex::encode(&self.0[..4]))
    }
}

impl FromStr for NodeId {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        if s.len() != 64 {
            return Err("a node id is 64 hex digits");
        }
        hex::decode_to_slice(s, &mut bytes).map_err(|_| "a node id is 64 hex digits")?;
        Ok(Self(bytes))
    }
}

/// The shared secret every node of a network holds; the handshake proves it
/// without sending it. Never shown by `Debug`, wiped on drop.
#[derive(Clone)]
pub struct NetworkSecret(Zeroizing<[u8; 32]>);

impl NetworkSecret {
    /// A fresh random secret from the OS RNG.
    pub fn generate() -> Result<Self> {
        random32().map(|bytes| Self(Zeroizing::new(bytes)))
    }

    /// A secret from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for NetworkSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NetworkSecret(<redacted>)")
    }
}
