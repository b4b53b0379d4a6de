//! Where an object lives on disk: a pluggable path transform.

use std::path::{Component, Path, PathBuf};

use crate::{CID_HEX_LEN, Cid, Result, StoreError};

/// Maps a content id to the directory that holds its file, relative to the
/// store's `objects/` folder. The file itself is always named by the whole
/// Cid, which is what lets [`ObjectStore::list`](crate::ObjectStore::list)
/// find objects under any layout.
///
/// A store remembers the [`id`](PathTransform::id) of the transform it was
/// created with and refuses to open with another one.
pub trait PathTransform: Send + Sync + 'static {
    /// The directory for `cid`, a plain relative path (no `..`, no root).
    fn dir_of(&self, cid: &Cid) -> PathBuf;

    /// A short name for this layout, recorded in the store's `LAYOUT` file.
    /// Two transforms that place objects differently must have different ids.
    fn id(&self) -> String;
}

/// A transform from a closure and the id to record for it.
pub struct CustomPath<F> {
    id: String,
    dir_of: F,
}

impl<F> CustomPath<F>
where
    F: Fn(&Cid) -> PathBuf + Send + Sync + 'static,
{
    /// A layout called `id` that puts `cid` in `dir_of(cid)`.
    pub fn new(id: impl Into<String>, dir_of: F) -> Self {
        Self {
            id: id.into(),
            dir_of,
        }
    }
}

impl<F> PathTransform for CustomPath<F>
where
    F: Fn(&Cid) -> PathBuf + Send + Sync + 'static,
{
    fn dir_of(&self, cid: &Cid) -> PathBuf {
        (self.dir_of)(cid)
    }

    fn id(&self) -> String {
        format!("custom:{}", self.id)
    }
}

/// The default layout: the Cid's hex cut into `width`-character directory
/// levels, `depth` levels deep (`ab12c/34de5/…/<cid>`).
///
/// The default is 5 characters and all 8 levels of a 40-digit Cid, as the
/// design asks; shallower layouts (`CasPath::new(5, 2)`) spend fewer inodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CasPath {
    width: usize,
    depth: usize,
}

impl CasPath {
    /// Levels of `width` hex digits, at most `depth` of them (fewer if the
    /// Cid runs out). A zero width means one flat directory.
    pub const fn new(width: usize, depth: usize) -> Self {
        Self { width, depth }
    }
}

impl CasPath {
    /// The `CasPath` a store at `root` was created with, read from its
    /// `LAYOUT` file: `None` if there is no store there yet, or if it was
    /// created with another kind of transform (opening it with a `CasPath`
    /// then fails with [`StoreError::LayoutMismatch`], which names both).
    ///
    /// Lets a program open an existing store whatever depth it was created
    /// with, and pick its own layout only for a new one:
    /// `CasPath::recorded_in(&root).await?.unwrap_or(CasPath::new(5, 2))`.
    pub async fn recorded_in(root: impl AsRef<Path>) -> Result<Option<Self>> {
        let path = root.as_ref().join(LAYOUT_FILE);
        match tokio::fs::read_to_string(&path).await {
            Ok(id) => Ok(Self::from_id(id.trim_end())),
            // No store here (opening one says what is wrong, if anything).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(StoreError::io("read layout file", path, e)),
        }
    }

    /// The layout whose [`id`](PathTransform::id) is `id` (`cas:WxD`).
    fn from_id(id: &str) -> Option<Self> {
        let (width, depth) = id.strip_prefix("cas:")?.split_once('x')?;
        let layout = Self::new(width.parse().ok()?, depth.parse().ok()?);
        // Only an id this type prints is one of its layouts.
        (layout.id() == id).then_some(layout)
    }
}

impl Default for CasPath {
    fn default() -> Self {
        Self::new(5, CID_HEX_LEN / 5)
    }
}

impl PathTransform for CasPath {
    fn dir_of(&self, cid: &Cid) -> PathBuf {
        let hex = cid.to_hex();
        if self.width == 0 {
            return PathBuf::new();
        }
        hex.as_bytes()
            .chunks(self.width)
            .take(self.depth)
            // Hex digits are ASCII, so every chunk is valid UTF-8.
            .map(|level| String::from_utf8_lossy(level).into_owned())
            .collect()
    }

    fn id(&self) -> String {
        format!("cas:{}x{}", self.width, self.depth)
    }
}

/// The file in a store's root that records its layout's id.
pub(crate) const LAYOUT_FILE: &str = "LAYOUT";

/// Checks that a transform's output stays inside the objects directory.
pub(crate) fn checked_dir(transform: &dyn PathTransform, cid: &Cid) -> Result<PathBuf> {
    let dir = transform.dir_of(cid);
    if dir.components().all(|c| matches!(c, Component::Normal(_))) {
        Ok(dir)
    } else {
        Err(StoreError::BadLayout {
            cid: *cid,
            path: dir,
        })
    }
}

/// The file name of an object, if `name` is one.
pub(crate) fn cid_of_file(path: &Path) -> Option<Cid> {
    path.file_name()?.to_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout_cuts_the_whole_cid_into_fives() {
        let cid: Cid = "a9993e364706816aba3e25717850c26c9cd0d89d".parse().unwrap();
        assert_eq!(
            CasPath::default().dir_of(&cid),
            PathBuf::from("a9993/e3647/06816/aba3e/25717/850c2/6c9cd/0d89d")
        );
        assert_eq!(
            CasPath::new(5, 2).dir_of(&cid),
            PathBuf::from("a9993/e3647")
        );
        assert_eq!(CasPath::new(0, 3).dir_of(&cid), PathBuf::new());
    }

    #[test]
    fn escaping_layouts_are_refused() {
        let cid = Cid::of(b"x");
        let evil = CustomPath::new("evil", |_: &Cid| PathBuf::from("../outside"));
        assert!(matches!(
            checked_dir(&evil, &cid),
            Err(StoreError::BadLayout { .. })
        ));
        let abs = CustomPath::new("abs", |_: &Cid| PathBuf::from("/etc"));
        assert!(matches!(
            checked_dir(&abs, &cid),
            Err(StoreError::BadLayout { .. })
        ));
    }
}
