//! Name ids: how a file's name travels to peers without revealing it.

use std::fmt;

use md5::{Digest, Md5};

use crate::KeyId;

/// The MD5 of a file name. Peers see only this, never the name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameId([u8; 16]);

impl NameId {
    /// The id of `name` in the key's own namespace: MD5 of the key id then
    /// the name, so two data keys never share a name id for the same name.
    pub fn scoped(key: KeyId, name: &str) -> Self {
        Self(
            Md5::new()
                .chain_update(key.as_bytes())
                .chain_update(name.as_bytes())
                .finalize()
                .into(),
        )
    }

    /// A name id from its 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The id's bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// The name id of `name`: the MD5 of its UTF-8 bytes, shown as 32 hex digits.
pub fn name_id(name: &str) -> NameId {
    NameId(Md5::digest(name.as_bytes()).into())
}

impl fmt::Display for NameId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NameId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NameId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_id_is_md5_hex() {
        // RFC 1321 test vectors.
        assert_eq!(name_id("").to_string(), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            name_id("abc").to_string(),
            "900150983cd24fb0d6963f7d28e17f72"
        );
    }

    #[test]
    fn scoped_ids_differ_per_key() {
        let a = NameId::scoped(KeyId::from_bytes([1; 8]), "photos/cat.png");
        let b = NameId::scoped(KeyId::from_bytes([2; 8]), "photos/cat.png");
        assert_ne!(a, b);
        assert_ne!(a, name_id("photos/cat.png"));
    }
}
