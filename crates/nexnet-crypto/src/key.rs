//! Data keys: generation, persistence with owner-only permissions, fingerprints.

use std::{
    fmt,
    fs::{self, File},
    io::{Read, Write},
    path::Path,
};

use rand::TryRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{CryptoError, Result};

/// Length of a data key in bytes (AES-256).
pub const KEY_LEN: usize = 32;

/// Length of a [`KeyId`] in bytes.
pub const KEY_ID_LEN: usize = 8;

/// A key file holds the key as hex and a newline; anything much longer is not a key file.
const KEY_FILE_MAX: u64 = 2 * KEY_LEN as u64 + 2;

/// Domain separation for the key fingerprint, so it can never equal any other
/// hash of the key.
const KEY_ID_DOMAIN: &[u8] = b"nexnet/key-id/v1\0";

/// The 32-byte AES-256 key that encrypts a node's objects.
///
/// It never shows its bytes: `Debug` prints only the [`KeyId`], and the memory
/// is zeroed when the key is dropped.
#[derive(Clone)]
pub struct DataKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
    id: KeyId,
}

impl DataKey {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(bytes.as_mut())?;
        Ok(Self::from_zeroizing(bytes))
    }

    /// A key from raw bytes (for callers that manage keys themselves).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self::from_zeroizing(Zeroizing::new(bytes))
    }

    fn from_zeroizing(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let id = KeyId::derive(&bytes);
        Self { bytes, id }
    }

    /// The key's public fingerprint.
    pub fn id(&self) -> KeyId {
        self.id
    }

    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// Loads a key file written by [`DataKey::save`].
    ///
    /// Refuses a file that group or others can read or write, and anything
    /// that is not exactly 64 hex digits (plus an optional newline).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        secret_file::load(path.as_ref()).map(Self::from_zeroizing)
    }

    /// Writes the key to a new file readable only by its owner (mode 0600).
    ///
    /// The file appears whole or not at all (temp file, fsync, rename), and an
    /// existing file is never overwritten.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        secret_file::save(path.as_ref(), &self.bytes)
    }

    /// Loads the key at `path`, or generates and saves a new one if there is none.
    pub fn load_or_generate(path: impl AsRef<Path>) -> Result<Self> {
        secret_file::load_or_generate(path.as_ref()).map(Self::from_zeroizing)
    }
}

/// Files that hold a 32-byte secret as 64 hex digits, readable only by
/// their owner: data keys, and any other secret a node keeps (a network
/// secret, say) under the same rules.
pub mod secret_file {
    use super::*;

    /// Reads the secret at `path`; refuses loose permissions, anything but
    /// a regular file, and anything but 64 hex digits (and a newline).
    pub fn load(path: &Path) -> Result<Zeroizing<[u8; KEY_LEN]>> {
        // Check before opening: opening a FIFO would block until a writer came.
        let meta = fs::metadata(path).map_err(|e| CryptoError::io("stat key file", path, e))?;
        if !meta.is_file() {
            return Err(CryptoError::KeyFileMalformed {
                path: path.into(),
                reason: "not a regular file",
            });
        }
        check_owner_only(path, &meta)?;
        let file = File::open(path).map_err(|e| CryptoError::io("open key file", path, e))?;

        let mut text = Zeroizing::new(Vec::with_capacity(KEY_FILE_MAX as usize + 1));
        file.take(KEY_FILE_MAX + 1)
            .read_to_end(&mut text)
            .map_err(|e| CryptoError::io("read key file", path, e))?;
        let malformed = |reason| CryptoError::KeyFileMalformed {
            path: path.into(),
            reason,
        };
        if text.len() as u64 > KEY_FILE_MAX {
            return Err(malformed("longer than a key"));
        }
        let hex_part = text.strip_suffix(b"\n").unwrap_or(&text);
        let hex_part = hex_part.strip_suffix(b"\r").unwrap_or(hex_part);
        if hex_part.len() != 2 * KEY_LEN {
            return Err(malformed("expected 64 hex digits"));
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        hex::decode_to_slice(hex_part, bytes.as_mut())
            .map_err(|_| malformed("expected 64 hex digits"))?;
        Ok(bytes)
    }

    /// Writes `secret` to a new owner-only file: whole or not at all (temp
    /// file, fsync, rename), never over an existing file.
    pub fn save(path: &Path, secret: &[u8; KEY_LEN]) -> Result<()> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        // tempfile creates its files with mode 0600 on Unix.
        let mut tmp = tempfile::Builder::new()
            .prefix(".key-")
            .tempfile_in(dir)
            .map_err(|e| CryptoError::io("create key file in", dir, e))?;
        // Hex digits and a newline, in a buffer that is wiped when dropped
        // (a growing String would leave copies behind in freed memory).
        let mut text = Zeroizing::new([b'\n'; 2 * KEY_LEN + 1]);
        hex::encode_to_slice(secret, &mut text[..2 * KEY_LEN]).map_err(|_| {
            CryptoError::KeyFileMalformed {
                path: path.into(),
                reason: "key does not fit its hex form",
            }
        })?;
        tmp.write_all(text.as_ref())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| CryptoError::io("write key file", tmp.path(), e))?;
        tmp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                CryptoError::KeyFileExists { path: path.into() }
            } else {
                CryptoError::io("persist key file", path, e.error)
            }
        })?;
        if let Ok(d) = File::open(dir) {
            // Best effort: the rename is durable once the directory is synced.
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Loads the secret at `path`, or creates one from the OS RNG if there
    /// is none (a concurrent creator wins and its secret is returned).
    pub fn load_or_generate(path: &Path) -> Result<Zeroizing<[u8; KEY_LEN]>> {
        match fs::symlink_metadata(path) {
            Ok(_) => load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut secret = Zeroizing::new([0u8; KEY_LEN]);
                fill_random(secret.as_mut())?;
                match save(path, &secret) {
                    Ok(()) => Ok(secret),
                    // Someone else created it first: theirs wins.
                    Err(CryptoError::KeyFileExists { .. }) => load(path),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(CryptoError::io("stat key file", path, e)),
        }
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey").field("id", &self.id).finish()
    }
}

impl PartialEq for DataKey {
    /// Compares every byte whatever the first difference, so the time taken
    /// says nothing about where two keys differ.
    fn eq(&self, other: &Self) -> bool {
        self.bytes
            .iter()
            .zip(other.bytes.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl Eq for DataKey {}

#[cfg(unix)]
fn check_owner_only(path: &Path, meta: &fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CryptoError::KeyFilePermissions {
            path: path.into(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner_only(_path: &Path, _meta: &fs::Metadata) -> Result<()> {
    Ok(())
}

/// Fills `buf` from the operating system's random number generator.
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    rand::rngs::SysRng
        .try_fill_bytes(buf)
        .map_err(|e| CryptoError::Rng(e.to_string()))
}

/// A short public fingerprint of a [`DataKey`]: the first 8 bytes of
/// SHA-256 over a domain tag and the key. It names a key without revealing it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    fn derive(key: &[u8; KEY_LEN]) -> Self {
        let digest = Sha256::new()
            .chain_update(KEY_ID_DOMAIN)
            .chain_update(key)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self(id)
    }

    /// A key id from its bytes (as read from an object header).
    pub const fn from_bytes(bytes: [u8; KEY_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// The id's bytes.
    pub const fn as_bytes(&self) -> &[u8; KEY_ID_LEN] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = DataKey::from_bytes([0xab; KEY_LEN]);
        let shown = format!("{key:?}");
        assert!(!shown.contains("abab"), "{shown}");
        assert!(shown.contains(&key.id().to_string()));
    }

    #[test]
    fn key_ids_differ_between_keys() {
        let a = DataKey::generate().unwrap();
        let b = DataKey::generate().unwrap();
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id(), DataKey::from_bytes(*a.expose()).id());
    }

    #[test]
    fn save_then_load_round_trips_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.key");
        let key = DataKey::generate().unwrap();
        key.save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(DataKey::load(&path).unwrap(), key);
    }

    #[test]
    fn save_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.key");
        let first = DataKey::generate().unwrap();
        first.save(&path).unwrap();
        let err = DataKey::generate().unwrap().save(&path).unwrap_err();
        assert!(matches!(err, CryptoError::KeyFileExists { .. }), "{err}");
        assert_eq!(DataKey::load(&path).unwrap(), first, "original key kept");
    }

    #[cfg(unix)]
    #[test]
    fn load_refuses_loose_permissions_and_says_how_to_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.key");
        DataKey::generate().unwrap().save(&path).unwrap();
        for mode in [0o640, 0o604, 0o644, 0o660] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = DataKey::load(&path).unwrap_err();
            assert!(
                matches!(err, CryptoError::KeyFilePermissions { mode: m, .. } if m == mode),
                "{err}"
            );
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }

    #[test]
    fn load_rejects_malformed_files() {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in [
            ("short", b"abcd\n".to_vec()),
            ("not-hex", vec![b'z'; 64]),
            ("long", vec![b'a'; 4096]),
            ("empty", Vec::new()),
        ] {
            let path = dir.path().join(name);
            fs::write(&path, &body).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            }
            let err = DataKey::load(&path).unwrap_err();
            assert!(
                matches!(err, CryptoError::KeyFileMalformed { .. }),
                "{name}: {err}"
            );
        }
        let err = DataKey::load(dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, CryptoError::Io { .. }), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.key");
        let status = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let err = DataKey::load(&path).unwrap_err();
        assert!(matches!(err, CryptoError::KeyFileMalformed { .. }), "{err}");
    }

    #[test]
    fn load_or_generate_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.key");
        let a = DataKey::load_or_generate(&path).unwrap();
        let b = DataKey::load_or_generate(&path).unwrap();
        assert_eq!(a, b);
    }
}
