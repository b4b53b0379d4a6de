//! The object store: atomic streaming writes, verified reads, deletes that
//! touch exactly one object.

use std::{
    collections::HashSet,
    fs::{self, File},
    io,
    path::{Path, PathBuf},
    pin::pin,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use bytes::{Bytes, BytesMut};
use tempfile::TempPath;
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    task::{JoinHandle, spawn_blocking},
};
use tracing::{debug, info, warn};

use parking_lot::{Mutex, MutexGuard};

/// Whether [`ObjectStore::sync`] can flush the file system at once
/// (`syncfs(2)`), so that [`Durability::Deferred`] writes may skip their
/// fsyncs.
const CAN_SYNC_FS: bool = cfg!(target_os = "linux");

/// Background fsyncs of deferred objects running at once, at most.
const MAX_FLUSHING: usize = 64;

use crate::{
    CasPath, Cid, CidHasher, CidStream, ObjectReader, PathTransform, Result, StoreError,
    VerifiedReader,
    atomic::sync_dir,
    layout::{LAYOUT_FILE, checked_dir},
    walk::{self, walk},
};

/// When an object written whole ([`ObjectStore::write_bytes_expecting`],
/// [`ObjectStore::write_pieces_expecting`], [`ObjectStore::write_bytes_hashed`])
/// reaches the disk, in a store that fsyncs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// The file and the directories its rename touches are fsynced before
    /// the write returns.
    Now,
    /// The write returns once renamed into place (atomic against a process
    /// crash, like every write), and the file's data is flushed by a
    /// background fsync meanwhile; it is durable once a later
    /// [`ObjectStore::sync`] has returned (it waits for those fsyncs, then
    /// flushes every rename and directory with one `syncfs(2)`). A writer
    /// of many small objects then never waits on one object's flush. On
    /// systems without `syncfs` (anything but Linux) this is
    /// [`Durability::Now`].
    Deferred,
}

/// How an [`ObjectStore`] writes.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    fsync: bool,
    max_object_len: Option<u64>,
    buffer_size: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            fsync: true,
            max_object_len: None,
            buffer_size: 256 * 1024,
        }
    }
}

impl StoreConfig {
    /// Whether to fsync each object and the directories its rename touches
    /// before a write returns (default on). Off is still atomic against a
    /// process crash, but after a power loss or kernel crash an object may
    /// come back empty or cut short: run [`ObjectStore::verify`] over the
    /// store after such a restart.
    pub fn fsync(mut self, on: bool) -> Self {
        self.fsync = on;
        self
    }

    /// Refuse objects longer than `limit` bytes (default: no limit).
    pub fn max_object_len(mut self, limit: u64) -> Self {
        self.max_object_len = Some(limit);
        self
    }

    /// Bytes moved per step between the disk and the caller (default
    /// 256 KiB, clamped to 4 KiB..=16 MiB). This, not the object's size, is
    /// what a write or a read holds in memory.
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.buffer_size = bytes.clamp(4 << 10, 16 << 20);
        self
    }
}

/// What a successful write stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// The object's content id.
    pub cid: Cid,
    /// Its length in bytes.
    pub len: u64,
    /// False when an intact copy was already stored and the write was a
    /// no-op; true when this write's bytes were committed (a new object, or
    /// one replacing a damaged copy).
    pub created: bool,
}

/// How much a store holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Number of objects.
    pub objects: u64,
    /// Their total length in bytes.
    pub bytes: u64,
}

/// A content-addressed object store in a directory.
///
/// ```text
/// ROOT/LOCK          held while the store is open (one process at a time)
/// ROOT/objects/…     committed objects, placed by the path transform
/// ROOT/tmp/          writes in progress; swept when the store opens
/// ROOT/quarantine/   objects that failed verification, kept for inspection
/// ```
///
/// Cloning is cheap and clones share the store.
#[derive(Clone)]
pub struct ObjectStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    root: PathBuf,
    objects: PathBuf,
    tmp: PathBuf,
    quarantine: PathBuf,
    layout: Box<dyn PathTransform>,
    config: StoreConfig,
    /// Serialises commits, deletes and quarantines, which keeps `usage`
    /// exact and stops a delete from pruning a directory a commit is about
    /// to rename into.
    state: Mutex<State>,
    /// The background fsyncs of objects written with
    /// [`Durability::Deferred`] still running; [`ObjectStore::sync`] waits
    /// for them.
    flushing: Mutex<Vec<JoinHandle<()>>>,
    /// Room for those: a writer waits for one of [`MAX_FLUSHING`] before its
    /// deferred write returns, so a disk slower than the network slows the
    /// writer down instead of piling fsyncs (and open files) on the
    /// blocking pool.
    flush_room: Arc<tokio::sync::Semaphore>,
    /// The first of those that failed. It stays: after a failed fsync the
    /// kernel may have dropped the data, so no later sync can promise it.
    flush_failed: Mutex<Option<Arc<io::Error>>>,
    /// Held (with an OS lock) for as long as the store is open.
    _lock: File,
}

struct State {
    usage: Usage,
    /// Directories created whose entry in their parent may not be durable
    /// yet. A commit below one of them syncs its parent itself rather than
    /// trust that the commit which created it has already done so.
    unsynced: HashSet<PathBuf>,
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore")
            .field("root", &self.inner.root)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl ObjectStore {
    /// Opens (creating if needed) a store at `root` with the default
    /// configuration: an existing store with the [`CasPath`] it was created
    /// with (any width and depth), a new one with the default layout.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let layout = CasPath::recorded_in(&root).await?.unwrap_or_default();
        Self::open_with(root, StoreConfig::default(), layout).await
    }

    /// Opens a store with a chosen configuration and path transform.
    ///
    /// Leftover temp files from an earlier crash are removed, and the store's
    /// usage is counted from what is on disk.
    pub async fn open_with(
        root: impl Into<PathBuf>,
        config: StoreConfig,
        layout: impl PathTransform,
    ) -> Result<Self> {
        let root = root.into();
        let layout: Box<dyn PathTransform> = Box::new(layout);
        let inner = spawn_blocking(move || Inner::open(root, config, layout)).await??;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Where the object `cid` lives (or would live) on disk.
    pub fn path_of(&self, cid: &Cid) -> Result<PathBuf> {
        self.inner.path_of(cid)
    }

    /// Streams `reader` into a new object and returns its content id.
    ///
    /// The bytes go to a temp file and are hashed on the way; the file is
    /// fsynced and renamed into place only once complete, so a crash leaves
    /// the whole object or nothing. Storing bytes that are already stored is
    /// a no-op (`created: false`), unless the copy on disk is visibly damaged
    /// (another length, or not a regular file): then the new, verified copy
    /// replaces it.
    #[tracing::instrument(name = "store.write", skip_all, fields(root = %self.inner.root.display()))]
    pub async fn write(&self, reader: impl AsyncRead) -> Result<Written> {
        self.write_inner(None, reader).await
    }

    /// Like [`write`](Self::write), but commits only if the bytes hash to
    /// `cid`; otherwise fails with [`StoreError::HashMismatch`] and leaves
    /// nothing behind. This is how replicas from peers are received.
    ///
    /// The source is always read and checked, even when `cid` is already
    /// stored (ask [`has`](Self::has) first to avoid the transfer): verified
    /// bytes are what lets a damaged local copy be replaced.
    #[tracing::instrument(name = "store.write_expecting", skip_all, fields(%cid))]
    pub async fn write_expecting(&self, cid: Cid, reader: impl AsyncRead) -> Result<Written> {
        self.write_inner(Some(cid), reader).await
    }

    async fn write_inner(&self, expected: Option<Cid>, reader: impl AsyncRead) -> Result<Written> {
        let mut reader = pin!(reader);
        let mut writer = self.begin().await?;
        let size = self.inner.config.buffer_size;
        let mut buf = BytesMut::new();
        loop {
            // A buffer is read while the previous one is being written; it
            // comes back to `buf` once the write is done with it.
            buf.reserve(size);
            let n = reader
                .read_buf(&mut buf)
                .await
                .map_err(StoreError::Source)?;
            if n == 0 {
                break;
            }
            writer.write_chunk(buf.split().freeze()).await?;
        }
        match expected {
            Some(cid) => writer.commit_expecting(cid).await,
            None => writer.commit().await,
        }
    }

    /// Stores `bytes`, held whole in memory (a chunk, a manifest node), as
    /// one object in one step on a blocking thread: hashed, written to a
    /// temp file, fsynced as `durability` says and renamed into place.
    /// Fails with [`StoreError::HashMismatch`], leaving nothing behind,
    /// unless the bytes hash to `cid`. One hand-off to the blocking pool
    /// instead of a writer's three: what makes small objects cheap.
    pub async fn write_bytes_expecting(
        &self,
        cid: Cid,
        bytes: Bytes,
        durability: Durability,
    ) -> Result<Written> {
        self.write_bytes_inner(cid, vec![bytes], true, durability)
            .await
    }

    /// Like [`write_bytes_expecting`](Self::write_bytes_expecting), for an
    /// object held as the pieces it arrived in (a chunk read off a peer's
    /// stream): hashed and written piece by piece, never gathered into one
    /// buffer.
    pub async fn write_pieces_expecting(
        &self,
        cid: Cid,
        pieces: Vec<Bytes>,
        durability: Durability,
    ) -> Result<Written> {
        self.write_bytes_inner(cid, pieces, true, durability).await
    }

    /// Like [`write_bytes_expecting`](Self::write_bytes_expecting), for
    /// bytes the caller has just hashed to `cid` itself (a node storing the
    /// chunks it cut): they are not hashed a second time. Bytes that do not
    /// hash to `cid` stored this way are an object that fails
    /// [`verify`](Self::verify), and are quarantined when it is run.
    pub async fn write_bytes_hashed(
        &self,
        cid: Cid,
        bytes: Bytes,
        durability: Durability,
    ) -> Result<Written> {
        self.write_bytes_inner(cid, vec![bytes], false, durability)
            .await
    }

    async fn write_bytes_inner(
        &self,
        cid: Cid,
        pieces: Vec<Bytes>,
        check: bool,
        durability: Durability,
    ) -> Result<Written> {
        let len: u64 = pieces.iter().map(|p| p.len() as u64).sum();
        if let Some(limit) = self.inner.config.max_object_len
            && len > limit
        {
            return Err(StoreError::TooLarge { limit });
        }
        let inner = self.inner.clone();
        let fsync = inner.config.fsync;
        let now = fsync && (durability == Durability::Now || !CAN_SYNC_FS);
        let (written, unsynced) = spawn_blocking(move || {
            if check {
                let mut hasher = CidHasher::new();
                for piece in &pieces {
                    hasher.update(piece);
                }
                let (actual, _) = hasher.finish();
                if actual != cid {
                    return Err(StoreError::HashMismatch {
                        expected: cid,
                        actual,
                    });
                }
            }
            // Checked again under the lock at commit; this spares the write.
            if inner.stored_as(&inner.path_of(&cid)?, len) {
                let written = Written {
                    cid,
                    len,
                    created: false,
                };
                return Ok((written, None));
            }
            let (file, temp) = tempfile::Builder::new()
                .prefix("w-")
                .tempfile_in(&inner.tmp)
                .map(tempfile::NamedTempFile::into_parts)
                .map_err(|e| StoreError::io("create temp file in", &inner.tmp, e))?;
            write_all_pieces(&file, &pieces).map_err(|e| StoreError::io("write", &*temp, e))?;
            if now {
                file.sync_all()
                    .map_err(|e| StoreError::io("fsync", &*temp, e))?;
            }
            let written = inner.commit(cid, len, temp, now)?;
            Ok((written, (fsync && !now).then_some(file)))
        })
        .await??;
        if let Some(file) = unsynced {
            // Deferred: the file's data is flushed in the background now,
            // overlapping whatever the caller does next, and `sync` waits
            // for it (then flushes the renames with one `syncfs`).
            let room = self.inner.flush_room.clone().acquire_owned().await.ok();
            let inner = self.inner.clone();
            let flush = spawn_blocking(move || {
                let _room = room;
                if let Err(e) = file.sync_data() {
                    warn!(error = %e, "fsync of a deferred object failed; the store can no longer promise durability");
                    inner.flush_failed.lock().get_or_insert(Arc::new(e));
                }
            });
            let mut flushing = self.inner.flushing.lock();
            flushing.retain(|f| !f.is_finished());
            flushing.push(flush);
        }
        Ok(written)
    }

    /// Makes every object written before it durable, those written with
    /// [`Durability::Deferred`] included: one `syncfs(2)` of the store's
    /// file system. Nothing to do in a store that does not fsync, or where
    /// deferred writes are synced at once.
    pub async fn sync(&self) -> Result<()> {
        if !self.inner.config.fsync || !CAN_SYNC_FS {
            return Ok(());
        }
        let flushing = std::mem::take(&mut *self.inner.flushing.lock());
        for flush in flushing {
            flush.await?;
        }
        if let Some(e) = self.inner.flush_failed.lock().clone() {
            return Err(StoreError::io(
                "fsync a deferred object in",
                &self.inner.objects,
                io::Error::new(e.kind(), e.to_string()),
            ));
        }
        let inner = self.inner.clone();
        spawn_blocking(move || inner.sync_fs()).await?
    }

    /// Starts an object written piece by piece, for callers that are handed
    /// bytes rather than a reader (a stream of chunks from a peer, a tee that
    /// feeds several destinations). Nothing is visible until a commit; a
    /// writer dropped before it leaves nothing behind.
    pub async fn begin(&self) -> Result<ObjectWriter> {
        let tmp_dir = self.inner.tmp.clone();
        let (file, temp) = spawn_blocking(move || {
            tempfile::Builder::new()
                .prefix("w-")
                .tempfile_in(&tmp_dir)
                .map(tempfile::NamedTempFile::into_parts)
                .map_err(|e| StoreError::io("create temp file in", &tmp_dir, e))
        })
        .await??;
        Ok(ObjectWriter {
            inner: self.inner.clone(),
            file: Some(file),
            writing: None,
            syncing: None,
            unsynced: 0,
            temp,
            hasher: CidHasher::new(),
        })
    }

    /// Opens an object for reading, unverified (see [`read_verified`](Self::read_verified)).
    pub async fn read(&self, cid: &Cid) -> Result<ObjectReader> {
        let (file, len) = self.open_object(cid).await?;
        Ok(ObjectReader::new(file, len, self.inner.buffer_size()))
    }

    /// Opens an object for reading, hashing as it streams: at the end of the
    /// stream a mismatch is an error carrying [`StoreError::Corrupt`], and the
    /// object is moved to quarantine so it is never served again.
    pub async fn read_verified(&self, cid: &Cid) -> Result<VerifiedReader> {
        let (file, len) = self.open_object(cid).await?;
        let identity = file_identity(&file).await;
        Ok(VerifiedReader::new(
            file,
            len,
            *cid,
            identity,
            self.inner.clone(),
        ))
    }

    /// Reads a whole object through [`read_verified`](Self::read_verified),
    /// discarding the bytes: `Ok` if it is intact, [`StoreError::Corrupt`]
    /// (and quarantined) if not.
    pub async fn verify(&self, cid: &Cid) -> Result<()> {
        let mut reader = self.read_verified(cid).await?;
        tokio::io::copy(&mut reader, &mut tokio::io::sink())
            .await
            .map_err(|e| StoreError::from_io_owned(e, "verify", self.inner.root.clone()))?;
        Ok(())
    }

    /// Whether `cid` is stored.
    pub async fn has(&self, cid: &Cid) -> Result<bool> {
        Ok(self.stored_len(cid).await?.is_some())
    }

    /// The length of a stored object.
    pub async fn len(&self, cid: &Cid) -> Result<u64> {
        self.stored_len(cid)
            .await?
            .ok_or(StoreError::NotFound { cid: *cid })
    }

    /// Removes exactly one object, then the directories its removal left
    /// empty. Returns whether it was there.
    #[tracing::instrument(name = "store.delete", skip(self))]
    pub async fn delete(&self, cid: &Cid) -> Result<bool> {
        let inner = self.inner.clone();
        let cid = *cid;
        spawn_blocking(move || inner.delete(&cid)).await?
    }

    /// Every stored content id, streamed from a directory walk (nothing is
    /// collected in memory). Order is unspecified.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn list(&self) -> CidStream {
        CidStream::spawn(self.inner.objects.clone())
    }

    /// Number of objects and bytes stored.
    pub fn usage(&self) -> Usage {
        self.inner.lock_state().usage
    }

    async fn stored_len(&self, cid: &Cid) -> Result<Option<u64>> {
        let path = self.inner.path_of(cid)?;
        // symlink_metadata: only a regular file is an object, never what a
        // link planted in the tree points to.
        match tokio::fs::symlink_metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("stat", path, e)),
        }
    }

    async fn open_object(&self, cid: &Cid) -> Result<(tokio::fs::File, u64)> {
        if self.stored_len(cid).await?.is_none() {
            return Err(StoreError::NotFound { cid: *cid });
        }
        let path = self.inner.path_of(cid)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound { cid: *cid });
            }
            Err(e) => return Err(StoreError::io("open", path, e)),
        };
        let len = file
            .metadata()
            .await
            .map_err(|e| StoreError::io("stat", &path, e))?
            .len();
        Ok((file, len))
    }
}

/// Identifies a file on disk (device, inode), so that quarantine moves the
/// very file that failed verification and never a good copy written since.
pub(crate) type FileIdentity = Option<(u64, u64)>;

/// Writes `pieces` to `file` with as few system calls as the kernel allows
/// (vectored), without gathering them into one buffer.
fn write_all_pieces(mut file: &File, pieces: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = pieces
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| io::IoSlice::new(p))
        .collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match io::Write::write_vectored(&mut file, rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(unix)]
async fn file_identity(file: &tokio::fs::File) -> FileIdentity {
    use std::os::unix::fs::MetadataExt;
    file.metadata().await.ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
async fn file_identity(_file: &tokio::fs::File) -> FileIdentity {
    None
}

#[cfg(unix)]
fn path_identity(path: &Path) -> FileIdentity {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn path_identity(_path: &Path) -> FileIdentity {
    None
}

impl Inner {
    fn open(root: PathBuf, config: StoreConfig, layout: Box<dyn PathTransform>) -> Result<Self> {
        match fs::metadata(&root) {
            Ok(meta) if !meta.is_dir() => return Err(StoreError::NotADirectory { path: root }),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("stat store root", root, e)),
        }
        let objects = root.join("objects");
        let tmp = root.join("tmp");
        let quarantine = root.join("quarantine");
        for dir in [&root, &objects, &tmp, &quarantine] {
            fs::create_dir_all(dir).map_err(|e| StoreError::io("create directory", dir, e))?;
        }

        let lock_path = root.join("LOCK");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::io("open lock file", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked { path: lock_path });
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(StoreError::io("lock", lock_path, e));
            }
        }
        check_layout(&root, &*layout)?;
        if config.fsync {
            sync_dir(&root)?;
            if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }

        let swept = sweep(&tmp);
        if swept > 0 {
            info!(swept, dir = %tmp.display(), "removed temp files left by an interrupted write");
        }

        let mut usage = Usage::default();
        walk(&objects, |_, len| {
            usage.objects += 1;
            usage.bytes += len;
            walk::Visit::Continue
        })?;
        debug!(root = %root.display(), objects = usage.objects, bytes = usage.bytes, "store opened");

        Ok(Self {
            root,
            objects,
            tmp,
            quarantine,
            layout,
            config,
            state: Mutex::new(State {
                usage,
                unsynced: HashSet::new(),
            }),
            flushing: Mutex::new(Vec::new()),
            flush_room: Arc::new(tokio::sync::Semaphore::new(MAX_FLUSHING)),
            flush_failed: Mutex::new(None),
            _lock: lock,
        })
    }

    pub(crate) fn buffer_size(&self) -> usize {
        self.config.buffer_size
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    fn path_of(&self, cid: &Cid) -> Result<PathBuf> {
        let dir = checked_dir(&*self.layout, cid)?;
        Ok(self.objects.join(dir).join(cid.to_hex()))
    }

    /// Whether `dest` holds an object of `len` bytes: a regular file of
    /// that length is taken as the object (verification is `verify`'s
    /// job); anything else there cannot be it and is replaced.
    fn stored_as(&self, dest: &Path, len: u64) -> bool {
        fs::symlink_metadata(dest).is_ok_and(|m| m.is_file() && m.len() == len)
    }

    /// One `syncfs(2)` of the file system under `objects/`; the
    /// directories created until now are then durable.
    #[cfg(target_os = "linux")]
    fn sync_fs(&self) -> Result<()> {
        let synced: Vec<PathBuf> = self.lock_state().unsynced.iter().cloned().collect();
        let dir =
            File::open(&self.objects).map_err(|e| StoreError::io("open", &self.objects, e))?;
        rustix::fs::syncfs(&dir).map_err(|e| StoreError::io("syncfs", &self.objects, e.into()))?;
        let mut state = self.lock_state();
        for d in synced {
            state.unsynced.remove(&d);
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn sync_fs(&self) -> Result<()> {
        Ok(())
    }

    fn commit(&self, cid: Cid, len: u64, temp: TempPath, sync: bool) -> Result<Written> {
        let dest = self.path_of(&cid)?;
        let dir = dest.parent().unwrap_or(&self.objects).to_path_buf();
        let mut state = self.lock_state();
        // The bytes in `temp` hash to `cid`.
        let counted = match fs::symlink_metadata(&dest) {
            Ok(meta) if meta.is_file() && meta.len() == len => {
                drop(state);
                debug!(%cid, "already stored");
                drop(temp);
                return Ok(Written {
                    cid,
                    len,
                    created: false,
                });
            }
            Ok(meta) if meta.is_file() => {
                warn!(%cid, on_disk = meta.len(), len, "replacing a damaged copy");
                Some(meta.len())
            }
            Ok(_) => {
                warn!(%cid, "replacing something that is not an object file");
                None
            }
            Err(_) => None,
        };
        let created_dirs = self.create_dirs(&dir)?;
        state.unsynced.extend(created_dirs);
        temp.persist(&dest)
            .map_err(|e| StoreError::io("rename into", &dest, e.error))?;
        let usage = &mut state.usage;
        match counted {
            Some(old_len) => usage.bytes = usage.bytes.saturating_sub(old_len) + len,
            None => {
                usage.objects += 1;
                usage.bytes += len;
            }
        }
        drop(state);

        if sync {
            // Make the rename durable: the object's directory, then every
            // ancestor whose own entry may not have reached the disk yet
            // (whoever created it).
            sync_dir(&dir)?;
            self.sync_unsynced_ancestors(&dir)?;
        }
        debug!(%cid, len, "committed");
        Ok(Written {
            cid,
            len,
            created: true,
        })
    }

    /// Syncs the parent of each not-yet-durable directory from `dir` up to
    /// `objects/`, deepest first, and marks them durable.
    fn sync_unsynced_ancestors(&self, dir: &Path) -> Result<()> {
        let pending: Vec<PathBuf> = {
            let state = self.lock_state();
            dir.ancestors()
                .take_while(|d| *d != self.objects)
                .filter(|d| state.unsynced.contains(*d))
                .map(Path::to_path_buf)
                .collect()
        };
        for d in pending {
            if let Some(parent) = d.parent() {
                sync_dir(parent)?;
            }
            self.lock_state().unsynced.remove(&d);
        }
        Ok(())
    }

    /// Creates `dir` and its missing ancestors below `objects`; returns the
    /// ones it made, outermost first.
    fn create_dirs(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let mut missing = Vec::new();
        let mut cur = dir;
        while cur != self.objects && fs::symlink_metadata(cur).is_err() {
            missing.push(cur.to_path_buf());
            cur = match cur.parent() {
                Some(p) => p,
                None => break,
            };
        }
        missing.reverse();
        for d in &missing {
            match fs::create_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(StoreError::io("create directory", d, e)),
            }
        }
        Ok(missing)
    }

    fn delete(&self, cid: &Cid) -> Result<bool> {
        let path = self.path_of(cid)?;
        let mut state = self.lock_state();
        let len = match fs::symlink_metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(StoreError::io("stat", path, e)),
        };
        fs::remove_file(&path).map_err(|e| StoreError::io("remove", &path, e))?;
        state.usage.objects = state.usage.objects.saturating_sub(1);
        state.usage.bytes = state.usage.bytes.saturating_sub(len);
        let survivor = self.prune(&path, &mut state);
        drop(state);
        if self.config.fsync {
            sync_dir(&survivor)?;
        }
        debug!(%cid, "deleted");
        Ok(true)
    }

    /// Removes the now-empty directories above `path`, stopping at the first
    /// that still holds anything (a neighbour's object, say). Returns the
    /// deepest directory left.
    fn prune(&self, path: &Path, state: &mut State) -> PathBuf {
        let mut cur = path.parent();
        while let Some(dir) = cur {
            if dir == self.objects || !dir.starts_with(&self.objects) {
                return dir.to_path_buf();
            }
            // remove_dir refuses a non-empty directory, which is what keeps
            // neighbours safe.
            if fs::remove_dir(dir).is_err() {
                return dir.to_path_buf();
            }
            state.unsynced.remove(dir);
            cur = dir.parent();
        }
        self.objects.clone()
    }

    /// Moves a corrupt object aside, unless the file at its path is no
    /// longer the one that was read.
    pub(crate) fn quarantine(&self, cid: &Cid, identity: FileIdentity) -> Result<()> {
        let path = self.path_of(cid)?;
        let mut state = self.lock_state();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return Ok(());
        };
        if identity.is_some() && path_identity(&path) != identity {
            return Ok(());
        }
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dest = self.quarantine.join(format!("{cid}.{stamp}"));
        fs::rename(&path, &dest).map_err(|e| StoreError::io("quarantine", &path, e))?;
        state.usage.objects = state.usage.objects.saturating_sub(1);
        state.usage.bytes = state.usage.bytes.saturating_sub(meta.len());
        self.prune(&path, &mut state);
        drop(state);
        warn!(%cid, to = %dest.display(), "corrupt object moved to quarantine");
        Ok(())
    }
}

/// Records the layout a store was created with, and refuses to open it with
/// another: objects would be listed, but not found where `read` looks.
fn check_layout(root: &Path, layout: &dyn PathTransform) -> Result<()> {
    let path = root.join(LAYOUT_FILE);
    let wanted = layout.id();
    match fs::read_to_string(&path) {
        Ok(found) if found.trim_end() == wanted => Ok(()),
        Ok(found) => Err(StoreError::LayoutMismatch {
            path,
            found: found.trim_end().chars().take(64).collect(),
            wanted,
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::write(&path, format!("{wanted}\n"))
            .map_err(|e| StoreError::io("write layout file", &path, e)),
        Err(e) => Err(StoreError::io("read layout file", path, e)),
    }
}

/// Removes what interrupted writes left in `tmp/`. A leftover that cannot be
/// removed is logged and left: it wastes space but hides no object.
fn sweep(tmp: &Path) -> usize {
    let Ok(entries) = fs::read_dir(tmp) else {
        return 0;
    };
    let mut swept = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match removed {
            Ok(()) => swept += 1,
            Err(e) => warn!(path = %path.display(), error = %e, "cannot remove temp file"),
        }
    }
    swept
}

/// An object being written piece by piece (from [`ObjectStore::begin`]):
/// hashed as it is written into a temp file, committed under its content id
/// by [`commit`](Self::commit) or, for bytes that must match a known id,
/// [`commit_expecting`](Self::commit_expecting). Dropped uncommitted, its
/// temp file is deleted.
///
/// A chunk is hashed on the caller's task, while its bytes are still in
/// that core's cache, and written by tokio's blocking pool while the caller
/// goes on: hashing and disk writes overlap. (Hashing in the blocking pool
/// instead measured 10-20% slower: the bytes change cores first.) With fsync
/// on, written data is flushed to disk in the background every
/// [`EARLY_SYNC_BYTES`] as the object grows, so the fsync at commit only
/// waits for the last few MiB rather than the whole object.
pub struct ObjectWriter {
    inner: Arc<Inner>,
    /// `None` while a write in flight holds it.
    file: Option<File>,
    writing: Option<JoinHandle<(File, io::Result<()>)>>,
    syncing: Option<JoinHandle<io::Result<()>>>,
    unsynced: u64,
    // Dropping it (an error, or a caller that gives up) deletes the file.
    temp: TempPath,
    hasher: CidHasher,
}

/// How much an [`ObjectWriter`] writes between two background flushes.
pub const EARLY_SYNC_BYTES: u64 = 16 * 1024 * 1024;

impl std::fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("temp", &self.temp)
            .field("len", &self.hasher.len())
            .finish_non_exhaustive()
    }
}

impl ObjectWriter {
    /// Appends `bytes` (copied; see [`write_chunk`](Self::write_chunk)).
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.write_chunk(Bytes::copy_from_slice(bytes)).await
    }

    /// Appends `bytes` without copying them; fails with
    /// [`StoreError::TooLarge`] past the store's limit.
    pub async fn write_chunk(&mut self, bytes: Bytes) -> Result<()> {
        self.write_chunks(vec![bytes]).await
    }

    /// Appends several pieces in one write (fewer hand-offs to the blocking
    /// pool for callers that receive small pieces, such as 64 KiB frames).
    pub async fn write_chunks(&mut self, pieces: Vec<Bytes>) -> Result<()> {
        let mut added = 0;
        for piece in &pieces {
            self.hasher.update(piece);
            added += piece.len() as u64;
        }
        if added == 0 {
            return Ok(());
        }
        if let Some(limit) = self.inner.config.max_object_len
            && self.hasher.len() > limit
        {
            return Err(StoreError::TooLarge { limit });
        }
        let file = self.settle().await?;
        self.unsynced += added;
        if self.inner.config.fsync && self.unsynced >= EARLY_SYNC_BYTES {
            self.start_early_sync(&file)?;
        }
        self.writing = Some(spawn_blocking(move || {
            let written = pieces
                .iter()
                .try_for_each(|p| io::Write::write_all(&mut &file, p));
            (file, written)
        }));
        Ok(())
    }

    /// Waits for the write in flight and takes the file back.
    async fn settle(&mut self) -> Result<File> {
        if let Some(writing) = self.writing.take() {
            let (file, written) = writing.await?;
            written.map_err(|e| StoreError::io("write", &*self.temp, e))?;
            self.file = Some(file);
        }
        // Invariant: the file is either here or held by the write in
        // flight, which `writing` tracks and was just joined.
        self.file
            .take()
            .ok_or_else(|| StoreError::Task("object file lost".into()))
    }

    /// Flushes what is written so far in the background, unless the last
    /// flush is still running.
    fn start_early_sync(&mut self, file: &File) -> Result<()> {
        if self.syncing.as_ref().is_some_and(|s| !s.is_finished()) {
            return Ok(());
        }
        let clone = file
            .try_clone()
            .map_err(|e| StoreError::io("open", &*self.temp, e))?;
        self.syncing = Some(spawn_blocking(move || clone.sync_data()));
        self.unsynced = 0;
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// The content id of what was written so far (the object's, once the
    /// last byte is in): lets a caller announce it before the commit's
    /// fsync is done.
    pub fn cid(&self) -> Cid {
        self.hasher.clone().finish().0
    }

    /// Makes the object durable and visible under the content id of what
    /// was written.
    pub async fn commit(self) -> Result<Written> {
        self.commit_inner(None).await
    }

    /// Like [`commit`](Self::commit), but only if what was written hashes to
    /// `cid`; otherwise [`StoreError::HashMismatch`] and nothing is kept.
    pub async fn commit_expecting(self, cid: Cid) -> Result<Written> {
        self.commit_inner(Some(cid)).await
    }

    async fn commit_inner(mut self, expected: Option<Cid>) -> Result<Written> {
        let file = self.settle().await?;
        let (cid, len) = self.hasher.clone().finish();
        if let Some(expected) = expected
            && expected != cid
        {
            return Err(StoreError::HashMismatch {
                expected,
                actual: cid,
            });
        }
        if let Some(syncing) = self.syncing.take() {
            syncing
                .await?
                .map_err(|e| StoreError::io("fsync", &*self.temp, e))?;
        }
        let Self { inner, temp, .. } = self;
        spawn_blocking(move || {
            if inner.config.fsync {
                file.sync_all()
                    .map_err(|e| StoreError::io("fsync", &*temp, e))?;
            }
            drop(file);
            let sync = inner.config.fsync;
            inner.commit(cid, len, temp, sync)
        })
        .await?
    }
}
