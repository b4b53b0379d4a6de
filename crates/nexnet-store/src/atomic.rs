//! Files that appear whole or not at all: written to a temp file on the
//! same file system, flushed, renamed into place, and the rename made
//! durable by syncing the directory. A node's catalog records and the files
//! a client downloads go through here, and the store's own commit (which
//! also counts usage and creates shard directories) syncs directories with
//! the same [`sync_dir`], so the sequence is written once.

use std::{
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
};

use tempfile::TempPath;

use crate::{Result, StoreError};

/// A file being written to a temp path, renamed over its destination by
/// [`commit`](Self::commit). Dropped uncommitted, the temp file is removed
/// and the destination is untouched.
#[derive(Debug)]
pub struct AtomicFile {
    file: File,
    temp: TempPath,
    dest: PathBuf,
    fsync: bool,
    /// Whether a directory that cannot be synced fails the commit.
    strict: bool,
}

impl AtomicFile {
    /// A file for `dest`, with its temp file in `dest`'s own directory and
    /// the mode any new file gets (0666 less the umask): it becomes the
    /// caller's file. Syncs before it renames, unless told otherwise. Once
    /// renamed the file is whole in place, so a directory that cannot be
    /// synced (no read permission on it, some network file systems) does
    /// not fail the commit.
    pub fn beside(dest: impl Into<PathBuf>) -> Result<Self> {
        let dest = dest.into();
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(".nexnet-");
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        Ok(Self {
            strict: false,
            ..Self::create(&builder, &dir, dest)?
        })
    }

    /// A file for `dest` whose temp file is made in `tmp_dir` (on the same
    /// file system; a crash leaves leftovers there, not beside `dest`),
    /// readable by the owner only.
    pub fn in_dir(tmp_dir: &Path, dest: impl Into<PathBuf>) -> Result<Self> {
        Self::create(&tempfile::Builder::new(), tmp_dir, dest.into())
    }

    fn create(builder: &tempfile::Builder<'_, '_>, dir: &Path, dest: PathBuf) -> Result<Self> {
        let (file, temp) = builder
            .tempfile_in(dir)
            .map_err(|e| StoreError::io("create temp file in", dir, e))?
            .into_parts();
        Ok(Self {
            file,
            temp,
            dest,
            fsync: true,
            strict: true,
        })
    }

    /// Whether [`commit`](Self::commit) syncs the file and its directory
    /// (on by default; off for tests and caches that can be rebuilt).
    pub fn fsync(mut self, on: bool) -> Self {
        self.fsync = on;
        self
    }

    /// The temp file, to write into (or to `try_clone` for async writes).
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Where the bytes are until the commit.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Makes the file its destination: sync, rename, sync the directory.
    pub fn commit(self) -> Result<()> {
        self.finish(false).map(drop)
    }

    /// Like [`commit`](Self::commit), but only if nothing is at the
    /// destination yet. Returns whether it was created: `false` (and the
    /// temp file removed) when something was there first, which wins.
    pub fn commit_new(self) -> Result<bool> {
        self.finish(true)
    }

    fn finish(mut self, new_only: bool) -> Result<bool> {
        let temp = self.temp.to_path_buf();
        self.file
            .flush()
            .and_then(|()| {
                if self.fsync {
                    self.file.sync_all()
                } else {
                    Ok(())
                }
            })
            .map_err(|e| StoreError::io("write", &temp, e))?;
        let placed = if new_only {
            self.temp.persist_noclobber(&self.dest)
        } else {
            self.temp.persist(&self.dest)
        };
        match placed {
            Ok(()) => {}
            Err(e) if new_only && e.error.kind() == io::ErrorKind::AlreadyExists => {
                return Ok(false);
            }
            Err(e) => return Err(StoreError::io("rename into", &self.dest, e.error)),
        }
        if !self.fsync {
            return Ok(true);
        }
        match sync_parent(&self.dest) {
            Err(e) if self.strict => Err(e),
            Err(e) => {
                tracing::debug!(error = %e, "the file is in place; its directory could not be synced");
                Ok(true)
            }
            Ok(()) => Ok(true),
        }
    }
}

/// Writes `bytes` to `dest` whole or not at all, through a temp file in
/// `tmp_dir` (see [`AtomicFile::in_dir`]).
pub fn write_file(tmp_dir: &Path, dest: &Path, bytes: &[u8], fsync: bool) -> Result<()> {
    let mut file = AtomicFile::in_dir(tmp_dir, dest)?.fsync(fsync);
    let temp = file.temp_path().to_path_buf();
    file.file()
        .write_all(bytes)
        .map_err(|e| StoreError::io("write", temp, e))?;
    file.commit()
}

/// Removes `path` (already gone is fine), and with `fsync` makes the
/// removal durable. Returns whether it was there.
pub fn remove_file(path: &Path, fsync: bool) -> Result<bool> {
    let had = match fs::remove_file(path) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(StoreError::io("remove", path, e)),
    };
    if fsync {
        sync_parent(path)?;
    }
    Ok(had)
}

/// Syncs the directory that holds `path`.
pub fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        // A bare file name: its directory is the current one.
        _ => sync_dir(Path::new(".")),
    }
}

/// Syncs `dir`, making the renames and removals in it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    match File::open(dir).and_then(|d| d.sync_all()) {
        Ok(()) => Ok(()),
        // A concurrent delete pruned it: nothing left to make durable.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io("fsync directory", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_file_appears_whole_on_commit_and_not_at_all_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        fs::write(&dest, b"old").unwrap();
        let mut f = AtomicFile::beside(&dest).unwrap();
        f.file().write_all(b"new bytes").unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        drop(f);
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file left"
        );
        let mut f = AtomicFile::beside(&dest).unwrap();
        f.file().write_all(b"new bytes").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new bytes");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn records_are_written_through_their_temp_dir_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let dest = dir.path().join("record");
        write_file(&tmp, &dest, b"abc", true).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"abc");
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
        assert!(remove_file(&dest, true).unwrap());
        assert!(!remove_file(&dest, true).unwrap());
    }

    #[test]
    fn a_new_only_commit_leaves_what_was_there_first() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let dest = dir.path().join("id");
        let mut first = AtomicFile::in_dir(&tmp, &dest).unwrap();
        first.file().write_all(b"first").unwrap();
        let mut second = AtomicFile::in_dir(&tmp, &dest).unwrap();
        second.file().write_all(b"second").unwrap();
        assert!(first.commit_new().unwrap());
        assert!(!second.commit_new().unwrap());
        assert_eq!(fs::read(&dest).unwrap(), b"first");
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0, "temp file left");
    }

    #[test]
    fn a_destination_in_a_missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("missing").join("file");
        let e = AtomicFile::beside(&dest).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
    }
}
