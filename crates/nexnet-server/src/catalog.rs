//! The catalog: what a node knows about the files it holds.
//!
//! One small file per entry (`catalog/entries/<name id>`) and per tombstone
//! (`catalog/tombstones/<cid>`), each written whole or not at all (temp
//! file, fsync, rename, fsync of the directory). No log to replay, nothing
//! to compact; a damaged file is moved aside at start and reported.

use std::{
    collections::HashMap,
    fs,
    io::Read,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use nexnet_crypto::{DataKey, DecryptReader, EncryptReader, NameId};
use nexnet_store::{Cid, atomic};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::{MAX_NAME_LEN, Result, ServerError};

/// No catalog file is longer than this (a sealed name and a few numbers).
const MAX_RECORD_LEN: u64 = 4 * 1024;

/// What a node knows of one stored file: its object and sizes, and its name
/// sealed under the data key (peers without the key learn only the name id).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    name_id: [u8; 16],
    cid: [u8; 20],
    /// Bytes stored (header and ciphertext).
    pub object_len: u64,
    /// Bytes of the file itself.
    pub plain_len: u64,
    /// The entry's version: a hybrid logical clock in milliseconds since
    /// the Unix epoch, the storing node's clock unless a version it has
    /// seen (the one it replaces above all) is later, so that a store after
    /// another is newer whatever the two clocks say. A later entry for the
    /// same name replaces an earlier one.
    pub created_ms: u64,
    sealed_name: Vec<u8>,
    /// How the file's bytes are kept. Last, so that a record of the first
    /// release (which has no such field) fails to parse as this one and is
    /// read as the first release's record instead.
    pub layout: Layout,
}

/// How a file's bytes are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Layout {
    /// The first release's format: one object, header and ciphertext, whose
    /// cid is the entry's.
    Whole,
    /// Chunks of the ciphertext, listed by a manifest tree whose root's cid
    /// is the entry's (and whose root is `object_len` bytes).
    Chunked,
}

/// A catalog record of the first release, read from old data directories.
#[derive(Deserialize)]
struct EntryV1 {
    name_id: [u8; 16],
    cid: [u8; 20],
    object_len: u64,
    plain_len: u64,
    created_ms: u64,
    sealed_name: Vec<u8>,
}

impl From<EntryV1> for CatalogEntry {
    fn from(v: EntryV1) -> Self {
        Self {
            name_id: v.name_id,
            cid: v.cid,
            object_len: v.object_len,
            plain_len: v.plain_len,
            created_ms: v.created_ms,
            sealed_name: v.sealed_name,
            layout: Layout::Whole,
        }
    }
}

impl std::fmt::Debug for CatalogEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The sealed name is ciphertext: of no use in a log.
        f.debug_struct("CatalogEntry")
            .field("name_id", &self.name_id())
            .field("cid", &self.cid())
            .field("object_len", &self.object_len)
            .field("plain_len", &self.plain_len)
            .field("created_ms", &self.created_ms)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

impl CatalogEntry {
    /// An entry of the first format for `name`, stored as the whole object
    /// `cid`, created now, its name sealed under `key`. Nodes make these;
    /// the constructor is public for tests and fuzz seeds that speak the
    /// protocol.
    #[doc(hidden)]
    pub fn new(
        key: &DataKey,
        name: &str,
        name_id: NameId,
        cid: Cid,
        object_len: u64,
        plain_len: u64,
    ) -> Result<Self> {
        Self::with_layout(
            key,
            name,
            name_id,
            cid,
            object_len,
            plain_len,
            Layout::Whole,
        )
    }

    /// An entry for `name` of `layout`: `cid` and `object_len` are the
    /// whole object's, or the root manifest's.
    #[doc(hidden)]
    pub fn with_layout(
        key: &DataKey,
        name: &str,
        name_id: NameId,
        cid: Cid,
        object_len: u64,
        plain_len: u64,
        layout: Layout,
    ) -> Result<Self> {
        let mut sealed_name = Vec::with_capacity(nexnet_crypto::HEADER_LEN + name.len());
        EncryptReader::new(key, name.as_bytes())?
            .read_to_end(&mut sealed_name)
            .map_err(ServerError::Source)?;
        Ok(Self {
            name_id: *name_id.as_bytes(),
            cid: *cid.as_bytes(),
            object_len,
            plain_len,
            created_ms: now_ms(),
            sealed_name,
            layout,
        })
    }

    /// The file's name id.
    pub fn name_id(&self) -> NameId {
        NameId::from_bytes(self.name_id)
    }

    /// The file's object.
    pub fn cid(&self) -> Cid {
        Cid::from_bytes(self.cid)
    }

    /// The file's name, if `key` is the key it was stored under.
    pub fn name(&self, key: &DataKey) -> Result<String> {
        let mut name = Vec::with_capacity(self.sealed_name.len());
        DecryptReader::new(key, &self.sealed_name[..])?
            .read_to_end(&mut name)
            .map_err(ServerError::Source)?;
        String::from_utf8(name).map_err(|_| ServerError::InvalidName {
            reason: "a stored name is not UTF-8",
        })
    }

    /// Whether this entry wins over `other` for the same name: the later
    /// store, and between stores of the same millisecond the larger cid,
    /// so that every node picks the same one whatever order they arrive in.
    pub(crate) fn is_newer_than(&self, other: &Self) -> bool {
        (self.created_ms, self.cid) > (other.created_ms, other.cid)
    }

    /// Whether this entry, a peer's answer `Superseded`, really replaces
    /// `entry`: the same name, well formed, and newer.
    pub(crate) fn supersedes(&self, entry: &Self) -> bool {
        self.name_id == entry.name_id && self.check().is_ok() && self.is_newer_than(entry)
    }

    /// Whether an entry from the network is plausible before it is kept.
    pub(crate) fn check(&self) -> std::result::Result<(), &'static str> {
        if self.sealed_name.len() > nexnet_crypto::HEADER_LEN + MAX_NAME_LEN {
            return Err("sealed name too long");
        }
        match self.layout {
            Layout::Whole => {
                if self.plain_len.checked_add(nexnet_crypto::HEADER_LEN as u64)
                    != Some(self.object_len)
                {
                    return Err("object and file sizes disagree");
                }
            }
            Layout::Chunked => {
                if self.object_len > crate::manifest::MAX_NODE_LEN {
                    return Err("manifest longer than any root");
                }
            }
        }
        Ok(())
    }
}

/// A deleted object: a node that comes back with a copy drops it. With a
/// `name_version`, also the death of its name at that version: every entry
/// of the name at or below it is dead, whatever its object, on every node
/// the tombstone reaches, and none is recorded again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    name_id: [u8; 16],
    /// When it was deleted (ms since the Unix epoch).
    pub deleted_ms: u64,
    /// The name's versions it ends: those at or below this one. `None` in
    /// records of earlier releases, which end their object only. Last, so
    /// that such a record fails to parse as this one (see `parse_tombstone`).
    pub name_version: Option<u64>,
}

/// A tombstone record of the releases before versioned deletes.
#[derive(Deserialize)]
struct TombstoneV1 {
    name_id: [u8; 16],
    deleted_ms: u64,
}

impl From<TombstoneV1> for Tombstone {
    fn from(v1: TombstoneV1) -> Self {
        Self {
            name_id: v1.name_id,
            deleted_ms: v1.deleted_ms,
            name_version: None,
        }
    }
}

impl Tombstone {
    /// A tombstone for an object stored under `name_id`, deleted now, that
    /// ends every version of the name up to `name_version`.
    pub fn new(name_id: NameId, name_version: u64) -> Self {
        Self {
            name_id: *name_id.as_bytes(),
            deleted_ms: now_ms(),
            name_version: Some(name_version),
        }
    }

    /// A tombstone for an object stored under `name_id`, deleted now, that
    /// ends no version of the name but the entries naming the object: how
    /// a store that missed its quorum is undone.
    pub(crate) fn of_object(name_id: NameId) -> Self {
        Self {
            name_id: *name_id.as_bytes(),
            deleted_ms: now_ms(),
            name_version: None,
        }
    }

    /// The name the object was stored under.
    pub fn name_id(&self) -> NameId {
        NameId::from_bytes(self.name_id)
    }
}

/// A hybrid logical clock: wall-clock milliseconds, never behind a version
/// this node has seen, never the same twice. Versions of a name that one
/// node makes after seeing another's are newer than it, whatever the two
/// wall clocks say.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    last: std::sync::atomic::AtomicU64,
}

impl Clock {
    /// A version later than every one seen, and than `after`.
    pub(crate) fn next(&self, after: u64) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        let floor = after.max(now_ms().saturating_sub(1));
        let mut last = self.last.load(Relaxed);
        loop {
            let next = last.max(floor).saturating_add(1);
            match self
                .last
                .compare_exchange_weak(last, next, Relaxed, Relaxed)
            {
                Ok(_) => return next,
                Err(now) => last = now,
            }
        }
    }

    /// Remembers a version seen (an entry or a tombstone from a peer).
    pub(crate) fn observe(&self, version: u64) {
        self.last
            .fetch_max(version, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How far ahead of this node's clock a version from a peer may be. A
/// version is a time: one from far in the future (a peer's wrong clock, or
/// a hostile member) would put the name out of every later store's reach.
pub(crate) const MAX_AHEAD_MS: u64 = 60 * 60 * 1000;

/// Whether `version`, from a peer, is further ahead of this node's clock
/// than [`MAX_AHEAD_MS`].
pub(crate) fn too_far_ahead(version: u64) -> bool {
    version > now_ms().saturating_add(MAX_AHEAD_MS)
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[derive(Default)]
struct State {
    entries: HashMap<NameId, CatalogEntry>,
    tombstones: HashMap<Cid, Tombstone>,
    /// Per name, the newest (version, cid) a tombstone ended: entries at
    /// or below it, in the order of [`CatalogEntry::is_newer_than`], are
    /// dead. The cid breaks ties as between entries, so that a tombstone
    /// ending one entry never ends another of the same version that wins
    /// over it.
    dead: HashMap<NameId, (u64, [u8; 20])>,
}

impl State {
    fn add_tombstone(&mut self, cid: Cid, t: Tombstone) {
        if let Some(v) = t.name_version {
            let dead = self.dead.entry(t.name_id()).or_default();
            *dead = (*dead).max((v, *cid.as_bytes()));
        }
        self.tombstones.insert(cid, t);
    }

    /// Whether a tombstone ends `entry`.
    fn is_dead(&self, entry: &CatalogEntry) -> bool {
        self.tombstones.contains_key(&entry.cid())
            || self
                .dead
                .get(&entry.name_id())
                .is_some_and(|dead| (entry.created_ms, entry.cid) <= *dead)
    }
}

/// What [`Catalog::put`] did with an entry.
#[derive(Debug)]
pub(crate) enum Put {
    /// Recorded; the name was new here.
    Added,
    /// Recorded in place of this older entry for the name.
    Replaced(CatalogEntry),
    /// Already recorded.
    Unchanged,
    /// Not recorded: a newer entry holds the name.
    Superseded,
    /// Not recorded: its object was deleted.
    Deleted,
}

/// The catalog of one node (see the module docs).
pub(crate) struct Catalog {
    entries_dir: PathBuf,
    tombstones_dir: PathBuf,
    tmp_dir: PathBuf,
    damaged: Option<PathBuf>,
    fsync: bool,
    state: Mutex<State>,
    /// Orders file writes with the in-memory updates that follow them.
    writes: tokio::sync::Mutex<()>,
}

impl Catalog {
    /// Opens (creating) the catalog under `dir`, loading every record.
    pub(crate) fn open(dir: &Path, fsync: bool) -> Result<Self> {
        let entries_dir = dir.join("entries");
        let tombstones_dir = dir.join("tombstones");
        let tmp_dir = dir.join("tmp");
        let damaged_dir = dir.join("damaged");
        for d in [dir, &entries_dir, &tombstones_dir, &tmp_dir, &damaged_dir] {
            fs::create_dir_all(d).map_err(|e| ServerError::io("create directory", d, e))?;
        }
        // Leftovers of writes cut short by a crash.
        if let Ok(leftovers) = fs::read_dir(&tmp_dir) {
            for e in leftovers.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
        let mut state = State::default();
        let mut refused = load_records(&entries_dir, &damaged_dir, parse_entry, |file, entry| {
            (hex::encode(entry.name_id) == file && entry.check().is_ok()).then(|| {
                state.entries.insert(entry.name_id(), entry);
            })
        })?;
        refused += load_records(
            &tombstones_dir,
            &damaged_dir,
            parse_tombstone,
            |file, t: Tombstone| {
                let cid: Cid = file.parse().ok()?;
                state.add_tombstone(cid, t);
                Some(())
            },
        )?;
        // A delete writes its tombstone first, then removes the entries
        // naming the cid. A crash in between leaves entries for a deleted
        // object, which a later delete would never remove (the tombstone
        // is already there): finish that delete now (tests/crash.rs,
        // `interrupted_delete_is_finished_at_restart`).
        let dead: Vec<NameId> = state
            .entries
            .iter()
            .filter(|(_, e)| state.is_dead(e))
            .map(|(n, _)| *n)
            .collect();
        let finish = !dead.is_empty();
        for name in dead {
            let path = entries_dir.join(hex::encode(name.as_bytes()));
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ServerError::io("remove", &path, e)),
            }
            warn!(path = %path.display(), "removed the entry of an object deleted before a crash");
            state.entries.remove(&name);
        }
        if finish && fsync {
            fs::File::open(&entries_dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| ServerError::io("fsync", &entries_dir, e))?;
        }
        // Records refused now (even if moving them aside failed) or set
        // aside by an earlier start and not yet dealt with.
        let damaged = refused > 0
            || fs::read_dir(&damaged_dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true);
        Ok(Self {
            entries_dir,
            tombstones_dir,
            tmp_dir,
            damaged: damaged.then_some(damaged_dir),
            fsync,
            state: Mutex::new(state),
            writes: tokio::sync::Mutex::new(()),
        })
    }

    /// Where damaged records were moved aside, if there are any: their
    /// objects are named by nothing readable, but may still be wanted.
    pub(crate) fn damaged(&self) -> Option<&Path> {
        self.damaged.as_deref()
    }

    pub(crate) fn get(&self, name: &NameId) -> Option<CatalogEntry> {
        self.state.lock().entries.get(name).cloned()
    }

    pub(crate) fn entries(&self) -> Vec<CatalogEntry> {
        self.state.lock().entries.values().cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.state.lock().entries.len()
    }

    pub(crate) fn is_deleted(&self, cid: &Cid) -> bool {
        self.state.lock().tombstones.contains_key(cid)
    }

    /// Whether a tombstone here ends `entry` (its object, or its version).
    pub(crate) fn is_dead(&self, entry: &CatalogEntry) -> bool {
        self.state.lock().is_dead(entry)
    }

    /// The highest version of `name` a tombstone here ended.
    pub(crate) fn dead_version(&self, name: &NameId) -> Option<u64> {
        self.state.lock().dead.get(name).map(|(v, _)| *v)
    }

    /// The tombstone that ended the highest version of `name` here, and
    /// the object it names.
    pub(crate) fn death_of(&self, name: &NameId) -> Option<(Cid, Tombstone)> {
        let state = self.state.lock();
        let cid = Cid::from_bytes(state.dead.get(name)?.1);
        state.tombstones.get(&cid).map(|t| (cid, *t))
    }

    pub(crate) fn tombstone_of(&self, cid: &Cid) -> Option<Tombstone> {
        self.state.lock().tombstones.get(cid).copied()
    }

    pub(crate) fn tombstones(&self) -> Vec<(Cid, Tombstone)> {
        self.state
            .lock()
            .tombstones
            .iter()
            .map(|(c, t)| (*c, *t))
            .collect()
    }

    /// Whether some entry still names `cid` (another name may share it).
    pub(crate) fn references(&self, cid: &Cid) -> bool {
        self.state.lock().entries.values().any(|e| e.cid() == *cid)
    }

    /// Records `entry` unless its object was deleted or a newer entry holds
    /// its name (see [`Put`]).
    pub(crate) async fn put(&self, entry: CatalogEntry) -> Result<Put> {
        let _w = self.writes.lock().await;
        {
            let state = self.state.lock();
            if state.is_dead(&entry) {
                return Ok(Put::Deleted);
            }
            if let Some(old) = state.entries.get(&entry.name_id()) {
                if *old == entry {
                    return Ok(Put::Unchanged);
                }
                if old.is_newer_than(&entry) {
                    return Ok(Put::Superseded);
                }
            }
        }
        let bytes = postcard::to_stdvec(&entry).map_err(|e| ServerError::Catalog {
            path: self.entries_dir.clone(),
            reason: e.to_string(),
        })?;
        let path = self.entries_dir.join(hex::encode(entry.name_id));
        self.write_file(&path, &bytes).await?;
        Ok(
            match self.state.lock().entries.insert(entry.name_id(), entry) {
                Some(old) => Put::Replaced(old),
                None => Put::Added,
            },
        )
    }

    /// Records that `cid` was deleted (and, with a `name_version`, that its
    /// name died at that version), and drops every entry the tombstone
    /// ends. Returns the entries dropped whose object is another one: a
    /// version of the name this node held and the deleting node did not
    /// know of, whose object goes too.
    pub(crate) async fn tombstone(
        &self,
        cid: Cid,
        tombstone: Tombstone,
    ) -> Result<Vec<CatalogEntry>> {
        let _w = self.writes.lock().await;
        let known = self.state.lock().tombstones.get(&cid).copied();
        // A later delete of the same object may end later versions.
        let newer = match known {
            None => true,
            Some(k) => tombstone.name_version > k.name_version,
        };
        if newer {
            let bytes = postcard::to_stdvec(&tombstone).map_err(|e| ServerError::Catalog {
                path: self.tombstones_dir.clone(),
                reason: e.to_string(),
            })?;
            self.write_file(&self.tombstones_dir.join(cid.to_hex()), &bytes)
                .await?;
            self.state.lock().add_tombstone(cid, tombstone);
        }
        let ended: Vec<CatalogEntry> = {
            let state = self.state.lock();
            state
                .entries
                .values()
                .filter(|e| state.is_dead(e))
                .cloned()
                .collect()
        };
        let mut others = Vec::new();
        for entry in ended {
            let path = self.entries_dir.join(hex::encode(entry.name_id));
            self.remove_file(&path).await?;
            self.state.lock().entries.remove(&entry.name_id());
            if entry.cid() != cid {
                others.push(entry);
            }
        }
        Ok(others)
    }

    /// Drops the tombstones of deletes older than `horizon`; returns how
    /// many. What they ended is gone from every node that was reachable
    /// meanwhile (see `ServerConfig::tombstone_horizon`).
    pub(crate) async fn collect_tombstones(&self, horizon: std::time::Duration) -> Result<usize> {
        let _w = self.writes.lock().await;
        let cutoff =
            now_ms().saturating_sub(u64::try_from(horizon.as_millis()).unwrap_or(u64::MAX));
        let old: Vec<Cid> = self
            .state
            .lock()
            .tombstones
            .iter()
            .filter(|(_, t)| t.deleted_ms < cutoff)
            .map(|(c, _)| *c)
            .collect();
        for cid in &old {
            self.remove_file(&self.tombstones_dir.join(cid.to_hex()))
                .await?;
            let mut state = self.state.lock();
            state.tombstones.remove(cid);
        }
        if !old.is_empty() {
            // The names' deaths, from the tombstones that are left.
            let mut state = self.state.lock();
            let left: Vec<(Cid, Tombstone)> =
                state.tombstones.iter().map(|(c, t)| (*c, *t)).collect();
            state.dead.clear();
            for (cid, t) in left {
                state.add_tombstone(cid, t);
            }
        }
        Ok(old.len())
    }

    async fn write_file(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let (tmp_dir, path, bytes, fsync) = (
            self.tmp_dir.clone(),
            path.to_path_buf(),
            bytes.to_vec(),
            self.fsync,
        );
        blocking(move || Ok(atomic::write_file(&tmp_dir, &path, &bytes, fsync)?)).await
    }

    async fn remove_file(&self, path: &Path) -> Result<()> {
        let (path, fsync) = (path.to_path_buf(), self.fsync);
        blocking(move || Ok(atomic::remove_file(&path, fsync).map(drop)?)).await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServerError::io("run", "catalog", std::io::Error::other(e)))?
}

/// Loads every record file in `dir`; one that cannot be read or parsed, or
/// that `keep` refuses, is moved to `damaged` and reported, never fatal.
/// Returns how many were refused.
fn load_records<T>(
    dir: &Path,
    damaged: &Path,
    parse: fn(&[u8]) -> std::result::Result<T, String>,
    mut keep: impl FnMut(&str, T) -> Option<()>,
) -> Result<usize> {
    let listing = fs::read_dir(dir).map_err(|e| ServerError::io("list", dir, e))?;
    let mut refused = 0;
    for item in listing {
        let item = item.map_err(|e| ServerError::io("list", dir, e))?;
        let path = item.path();
        let file = item.file_name().to_string_lossy().into_owned();
        let parsed = read_record(&path)
            .and_then(|b| parse(&b))
            .and_then(|record: T| {
                keep(&file, record).ok_or_else(|| "does not match its file name".to_string())
            });
        if let Err(reason) = parsed {
            refused += 1;
            warn!(path = %path.display(), %reason, "moving a damaged catalog record aside");
            if let Err(e) = fs::rename(&path, damaged.join(&file)) {
                warn!(path = %path.display(), error = %e, "could not move a damaged record aside; left in place");
            }
        }
    }
    Ok(refused)
}

fn read_record(path: &Path) -> std::result::Result<Vec<u8>, String> {
    let meta = fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_RECORD_LEN {
        return Err(format!("{} bytes, longer than any record", meta.len()));
    }
    fs::read(path).map_err(|e| e.to_string())
}

/// A record as stored now (`T`), or as an earlier release stored it
/// (`Old`: the same fields but the last ones, so that it fails to parse as
/// `T` for want of bytes). Bytes left over after either are damage.
fn parse_either<T, Old>(bytes: &[u8]) -> std::result::Result<T, String>
where
    T: serde::de::DeserializeOwned,
    Old: serde::de::DeserializeOwned + Into<T>,
{
    let (record, rest) = match postcard::take_from_bytes::<T>(bytes) {
        Ok(parsed) => parsed,
        Err(_) => {
            let (old, rest) = postcard::take_from_bytes::<Old>(bytes).map_err(|e| e.to_string())?;
            (old.into(), rest)
        }
    };
    if !rest.is_empty() {
        return Err("trailing bytes after the record".into());
    }
    Ok(record)
}

/// A tombstone as stored now, or as releases before versioned deletes
/// stored it (those end their object only).
fn parse_tombstone(bytes: &[u8]) -> std::result::Result<Tombstone, String> {
    parse_either::<Tombstone, TombstoneV1>(bytes)
}

/// A catalog entry as stored now, or as the first release stored it.
fn parse_entry(bytes: &[u8]) -> std::result::Result<CatalogEntry, String> {
    parse_either::<CatalogEntry, EntryV1>(bytes)
}
