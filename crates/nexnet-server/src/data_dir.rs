//! A node's data directory: what is in it, and creating one.

use std::path::{Path, PathBuf};

use nexnet_crypto::{DataKey, secret_file};
use nexnet_p2p::NodeId;
use nexnet_store::AtomicFile;

use crate::{Result, ServerError};

/// The node id file, in the data directory.
pub const NODE_ID_FILE: &str = "node.id";
/// The data key file, in the data directory (unless configured elsewhere).
pub const KEY_FILE: &str = "data.key";
/// The network secret file, in the data directory (unless configured
/// elsewhere).
pub const SECRET_FILE: &str = "network.secret";

/// What [`init_data_dir`] made.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Initialized {
    /// The new node's id.
    pub node_id: NodeId,
    /// Its data key file.
    pub key_file: PathBuf,
    /// Its network secret file.
    pub secret_file: PathBuf,
}

/// Creates a node's data directory: a node id, a data key and a network
/// secret (owner-only files). With `key` or `secret`, those files are
/// checked and copied in instead, so that several nodes share them.
/// Refuses a directory that already holds a node.
pub fn init_data_dir(dir: &Path, key: Option<&Path>, secret: Option<&Path>) -> Result<Initialized> {
    let id_path = dir.join(NODE_ID_FILE);
    if std::fs::symlink_metadata(&id_path).is_ok() {
        return Err(ServerError::AlreadyInitialized { path: dir.into() });
    }
    std::fs::create_dir_all(dir).map_err(|e| ServerError::io("create data directory", dir, e))?;
    // Read the files to adopt first: a bad one leaves nothing behind.
    let adopted_key = key.map(DataKey::load).transpose()?;
    let adopted_secret = secret.map(secret_file::load).transpose()?;
    let key_file = dir.join(KEY_FILE);
    let secret_file_path = dir.join(SECRET_FILE);
    match adopted_key {
        Some(k) => k.save(&key_file)?,
        None => DataKey::generate()?.save(&key_file)?,
    }
    match adopted_secret {
        Some(s) => secret_file::save(&secret_file_path, &s)?,
        None => {
            secret_file::load_or_generate(&secret_file_path)?;
        }
    }
    let node_id = load_or_create_node_id(&id_path)?;
    Ok(Initialized {
        node_id,
        key_file,
        secret_file: secret_file_path,
    })
}

/// Reads the node id at `path`, or creates one.
pub(crate) fn load_or_create_node_id(path: &Path) -> Result<NodeId> {
    let read = |path: &Path| -> Result<NodeId> {
        let text = std::fs::read(path).map_err(|e| ServerError::io("read", path, e))?;
        let malformed = || ServerError::Catalog {
            path: path.into(),
            reason: "a node id file holds 64 hex digits".into(),
        };
        let text = std::str::from_utf8(text.get(..text.len().min(80)).unwrap_or(&[]))
            .map_err(|_| malformed())?;
        text.trim().parse().map_err(|_| malformed())
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.len() > 80 => Err(ServerError::Catalog {
            path: path.into(),
            reason: "too long for a node id file".into(),
        }),
        Ok(_) => read(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = NodeId::generate()?;
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            let mut file = AtomicFile::in_dir(dir, path)?;
            std::io::Write::write_all(file.file(), format!("{id}\n").as_bytes())
                .map_err(|e| ServerError::io("write", path, e))?;
            if file.commit_new()? {
                Ok(id)
            } else {
                // Another process created it first: its id wins.
                read(path)
            }
        }
        Err(e) => Err(ServerError::io("stat", path, e)),
    }
}
