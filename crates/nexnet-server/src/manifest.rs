//! Manifests: the tree of chunk ids that makes a file out of chunks.
//!
//! A file's ciphertext (one AES-256-CTR stream) is cut into chunks of a
//! fixed size; each chunk is an object. A manifest node lists up to
//! `fanout` ids: chunks at depth 0, nodes of the depth below otherwise. The
//! root also carries what a reader needs before any chunk: the object
//! header (key id and IV), the file's length, the chunk size and the
//! fan-out. The file's id is the root's cid, and every node is verified
//! against the id its parent holds, so the tree is a Merkle tree.
//!
//! Nothing holds a manifest whole: [`Builder`] keeps one open node per
//! level, [`Walk`] one loaded node per level (docs/DESIGN.md, "Files as
//! verified chunks").
//!
//! ```text
//! magic "NXMF" | version 1 | depth u8 | flags u16 (bit 0: root)
//! root only:   object header (32) | plain length u64 | chunk size u32 |
//!              fan-out u32 | chunk count u64
//! count u32 | count ids of 20 bytes
//! ```

use nexnet_crypto::{HEADER_LEN, ObjectHeader};
use nexnet_store::{CID_LEN, Cid};

use crate::{Result, ServerError};

const MAGIC: [u8; 4] = *b"NXMF";
const VERSION: u8 = 1;
const FLAG_ROOT: u16 = 1;
const PREFIX_LEN: usize = 8;
const ROOT_LEN: usize = HEADER_LEN + 8 + 4 + 4 + 8;
/// A last chunk shorter than this is kept in the root, not as an object:
/// two files' 1-byte tails share their cid with probability 1/256, and a
/// chunk must belong to one file only (a delete drops it). At 32 bytes two
/// chunks collide with probability 2^-256.
pub const MIN_CHUNK_OBJECT: u64 = 32;

/// The fan-out of new files: 16,384 ids (320 KiB) per node, so one node
/// covers 16 GiB of 1 MiB chunks and a root of depth 1 covers 256 TiB.
pub const FANOUT: u32 = 16 * 1024;
/// The default chunk size of new files.
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
/// The smallest chunk size a file may have.
pub const MIN_CHUNK_SIZE: u32 = 64 * 1024;
/// The largest chunk size a file may have.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;
/// No tree is deeper than this (depth 4 at the smallest fan-out covers
/// more chunks than a u64 of bytes holds at the largest).
const MAX_DEPTH: u8 = 4;
/// The smallest fan-out a manifest may declare (tests use small ones to
/// build deep trees from small files).
const MIN_FANOUT: u32 = 2;

/// The longest a manifest node can be: a root with a full list.
pub const MAX_NODE_LEN: u64 =
    (PREFIX_LEN + ROOT_LEN + 1 + MIN_CHUNK_OBJECT as usize + 4 + FANOUT as usize * CID_LEN) as u64;

/// What a root says about its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Root {
    /// Key id and IV of the file's keystream.
    pub header: ObjectHeader,
    /// The file's length.
    pub plain_len: u64,
    /// Bytes per chunk (the last one may be shorter).
    pub chunk_size: u32,
    /// Ids per node.
    pub fanout: u32,
    /// How many chunks the file has as objects (a short tail, kept in the
    /// root, is not one of them).
    pub chunk_count: u64,
}

impl Root {
    /// The length of chunk `index`.
    pub fn chunk_len(&self, index: u64) -> u64 {
        let start = index * u64::from(self.chunk_size);
        self.plain_len
            .saturating_sub(start)
            .min(u64::from(self.chunk_size))
    }

    /// The chunks that hold bytes `offset .. offset + len` (empty for none).
    pub fn chunks_for(&self, offset: u64, len: u64) -> std::ops::Range<u64> {
        if len == 0 || offset >= self.plain_len {
            return 0..0;
        }
        let c = u64::from(self.chunk_size);
        let end = offset.saturating_add(len).min(self.plain_len);
        offset / c..end.div_ceil(c)
    }

    /// How long the tail kept in the root is: the last chunk, when it is
    /// shorter than [`MIN_CHUNK_OBJECT`].
    pub fn tail_len(&self) -> u64 {
        let rest = self.plain_len % u64::from(self.chunk_size);
        if rest < MIN_CHUNK_OBJECT { rest } else { 0 }
    }

    /// How many chunks hold the file: the objects, and the tail if any.
    pub fn chunks_total(&self) -> u64 {
        self.plain_len.div_ceil(u64::from(self.chunk_size))
    }

    fn check(&self) -> std::result::Result<(), &'static str> {
        if !self.chunk_size.is_power_of_two()
            || !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size)
        {
            return Err("chunk size is not a power of two between 64 KiB and 16 MiB");
        }
        if !(MIN_FANOUT..=FANOUT).contains(&self.fanout) {
            return Err("fan-out out of range");
        }
        let objects = self.chunks_total() - u64::from(self.tail_len() > 0);
        if objects != self.chunk_count {
            return Err("chunk count does not match the length");
        }
        Ok(())
    }
}

/// One node of a manifest tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// 0: the ids are chunks; d: nodes of depth d - 1.
    pub depth: u8,
    /// Only the root carries it.
    pub root: Option<Root>,
    /// Ids in order.
    pub ids: Vec<Cid>,
    /// The root's tail: the ciphertext of a last chunk shorter than
    /// [`MIN_CHUNK_OBJECT`] (empty in other nodes).
    pub tail: Vec<u8>,
}

impl Node {
    /// The node's bytes, as stored.
    pub fn encode(&self) -> Vec<u8> {
        let root_len = if self.root.is_some() { ROOT_LEN } else { 0 };
        let mut out = Vec::with_capacity(
            PREFIX_LEN + root_len + 1 + self.tail.len() + 4 + self.ids.len() * CID_LEN,
        );
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.depth);
        let flags = if self.root.is_some() { FLAG_ROOT } else { 0 };
        out.extend_from_slice(&flags.to_be_bytes());
        if let Some(r) = &self.root {
            out.extend_from_slice(&r.header.encode());
            out.extend_from_slice(&r.plain_len.to_be_bytes());
            out.extend_from_slice(&r.chunk_size.to_be_bytes());
            out.extend_from_slice(&r.fanout.to_be_bytes());
            out.extend_from_slice(&r.chunk_count.to_be_bytes());
            // Shorter than MIN_CHUNK_OBJECT: the builder's caller sees to it.
            out.push(u8::try_from(self.tail.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(&self.tail);
        }
        // At most FANOUT ids: the builder never makes a larger node.
        let count = u32::try_from(self.ids.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for id in &self.ids {
            out.extend_from_slice(id.as_bytes());
        }
        out
    }

    /// Parses a node of manifest `cid` (whose bytes were verified against
    /// it): every length is checked before anything is allocated.
    pub fn parse(cid: Cid, bytes: &[u8]) -> Result<Self> {
        Self::parse_inner(bytes).map_err(|reason| ServerError::Manifest { cid, reason })
    }

    fn parse_inner(bytes: &[u8]) -> std::result::Result<Self, &'static str> {
        let mut r = Cursor(bytes);
        if r.take(4)? != MAGIC {
            return Err("not a manifest");
        }
        if r.take(1)?[0] != VERSION {
            return Err("unknown manifest version");
        }
        let depth = r.take(1)?[0];
        if depth > MAX_DEPTH {
            return Err("manifest deeper than any file needs");
        }
        let flags = r.u16()?;
        if flags & !FLAG_ROOT != 0 {
            return Err("unknown manifest flags");
        }
        let mut tail = Vec::new();
        let root = if flags & FLAG_ROOT != 0 {
            let header =
                ObjectHeader::parse(r.take(HEADER_LEN)?).map_err(|_| "bad object header")?;
            let root = Root {
                header,
                plain_len: r.u64()?,
                chunk_size: r.u32()?,
                fanout: r.u32()?,
                chunk_count: r.u64()?,
            };
            root.check()?;
            let tail_len = u64::from(r.take(1)?[0]);
            if tail_len != root.tail_len() {
                return Err("the root's tail does not match its length");
            }
            tail = r.take(tail_len as usize)?.to_vec();
            Some(root)
        } else {
            None
        };
        let count = r.u32()?;
        if count > FANOUT {
            return Err("manifest node longer than the fan-out allows");
        }
        let count = count as usize;
        if r.0.len() != count * CID_LEN {
            return Err("manifest node length does not match its count");
        }
        let ids =
            r.0.chunks_exact(CID_LEN)
                .map(|c| {
                    let mut id = [0u8; CID_LEN];
                    id.copy_from_slice(c);
                    Cid::from_bytes(id)
                })
                .collect();
        let node = Self {
            depth,
            root,
            ids,
            tail,
        };
        if let Some(root) = &node.root {
            // The root's list must be exactly what its chunk count needs.
            let per_id = span(root.fanout, depth).ok_or("manifest too deep for its fan-out")?;
            let needed = root.chunk_count.div_ceil(per_id);
            if node.ids.len() as u64 != needed || node.ids.len() as u64 > u64::from(root.fanout) {
                return Err("root's id count does not match its chunk count");
            }
            if depth > 0 && root.chunk_count <= per_id {
                return Err("manifest deeper than its chunk count needs");
            }
        }
        Ok(node)
    }
}

/// Whether `prefix`, the first bytes of an object, start a file: a
/// manifest root, or an object of the first format (its header). A chunk
/// or a manifest node below a root is neither (a chunk's ciphertext starts
/// with a magic by chance once in 2^32).
pub fn starts_a_file(prefix: &[u8]) -> bool {
    if prefix.starts_with(&nexnet_crypto::MAGIC) {
        return true;
    }
    prefix.len() >= PREFIX_LEN
        && prefix[..4] == MAGIC
        && u16::from_be_bytes([prefix[6], prefix[7]]) & FLAG_ROOT != 0
}

/// How many chunks one id of a depth-`depth` node covers.
fn span(fanout: u32, depth: u8) -> Option<u64> {
    u64::from(fanout).checked_pow(u32::from(depth))
}

/// Checks that `child`, loaded as the node of depth `depth` whose first
/// chunk is `first` in the file `root` describes, is that node: its depth,
/// not a root, and exactly the ids the chunks it covers need. With the
/// root's own check, a walk of any tree then yields `chunk_count` chunks,
/// no more: a crafted node cannot make it endless.
fn check_child(
    root: &Root,
    child: &Node,
    depth: u8,
    first: u64,
) -> std::result::Result<(), &'static str> {
    if child.depth != depth || child.root.is_some() {
        return Err("manifest node of the wrong depth");
    }
    let per_id = span(root.fanout, depth).ok_or("manifest too deep for its fan-out")?;
    let covered = root
        .chunk_count
        .saturating_sub(first)
        .min(per_id.saturating_mul(u64::from(root.fanout)));
    if child.ids.len() as u64 != covered.div_ceil(per_id) {
        return Err("manifest node's id count does not match the chunks it covers");
    }
    Ok(())
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("manifest node cut short");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u16(&mut self) -> std::result::Result<u16, &'static str> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> std::result::Result<u32, &'static str> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }
    fn u64(&mut self) -> std::result::Result<u64, &'static str> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }
}

/// A node the builder closed: its id and bytes, to be stored.
#[derive(Debug)]
pub struct Closed {
    /// The node's cid.
    pub cid: Cid,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

impl Closed {
    fn of(node: &Node) -> Self {
        let bytes = node.encode();
        Self {
            cid: Cid::of(&bytes),
            bytes,
        }
    }
}

/// Builds a manifest tree as chunk ids arrive, holding one open node per
/// level: a full node is closed (handed back to be stored) when the next id
/// for its level comes.
#[derive(Debug)]
pub struct Builder {
    fanout: usize,
    levels: Vec<Vec<Cid>>,
}

impl Builder {
    /// A builder of nodes of at most `fanout` ids.
    pub fn new(fanout: u32) -> Self {
        Self {
            fanout: fanout.clamp(MIN_FANOUT, FANOUT) as usize,
            levels: vec![Vec::new()],
        }
    }

    /// Adds the next chunk id; returns the nodes this closed.
    pub fn push(&mut self, chunk: Cid) -> Vec<Closed> {
        let mut closed = Vec::new();
        self.push_at(0, chunk, &mut closed);
        closed
    }

    fn push_at(&mut self, level: usize, id: Cid, closed: &mut Vec<Closed>) {
        if self.levels.len() == level {
            self.levels.push(Vec::new());
        }
        if self.levels[level].len() == self.fanout {
            self.close(level, closed);
        }
        self.levels[level].push(id);
    }

    /// Closes the open node of `level` (not the root's), handing it back
    /// and its id to the level above, which may close in turn.
    fn close(&mut self, level: usize, closed: &mut Vec<Closed>) {
        let ids = std::mem::take(&mut self.levels[level]);
        let node = Closed::of(&Node {
            depth: depth_of(level),
            root: None,
            ids,
            tail: Vec::new(),
        });
        let up = node.cid;
        closed.push(node);
        self.push_at(level + 1, up, closed);
    }

    /// Closes every open node; the last one returned is the root, which
    /// keeps `tail` (see [`Root::tail_len`]).
    pub fn finish(mut self, root: Root, tail: Vec<u8>) -> Vec<Closed> {
        let mut closed = Vec::new();
        let mut level = 0;
        while level + 1 < self.levels.len() {
            if !self.levels[level].is_empty() {
                self.close(level, &mut closed);
            }
            level += 1;
        }
        let ids = std::mem::take(&mut self.levels[level]);
        closed.push(Closed::of(&Node {
            depth: depth_of(level),
            root: Some(root),
            ids,
            tail,
        }));
        closed
    }
}

fn depth_of(level: usize) -> u8 {
    // The builder's levels are bounded by the fan-out and u64 chunk counts.
    u8::try_from(level).unwrap_or(u8::MAX)
}

/// Where chunk ids are found: a walk from the root down, keeping one node
/// per level so that consecutive chunks cost no further loads.
#[derive(Debug)]
pub struct Walk {
    cid: Cid,
    root: Root,
    root_node: Node,
    /// Below the root: (first chunk it covers, node) per depth, root's
    /// child first.
    below: Vec<Option<(u64, Node)>>,
}

/// Something that loads a manifest node by cid, verified.
pub trait LoadNode {
    /// The node `cid` (its bytes checked against it, then parsed).
    fn load(&self, cid: Cid) -> impl Future<Output = Result<Node>> + Send;
}

impl Walk {
    /// A walk of the tree whose root is `root` (parsed from verified bytes).
    pub fn new(cid: Cid, root: Node) -> Result<Self> {
        let info = root.root.ok_or(ServerError::Manifest {
            cid,
            reason: "not a root",
        })?;
        Ok(Self {
            cid,
            root: info,
            below: vec![None; usize::from(root.depth)],
            root_node: root,
        })
    }

    /// What the root says about the file.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The root's cid.
    pub fn cid(&self) -> Cid {
        self.cid
    }

    /// The ciphertext of the file's short tail, kept in the root.
    pub fn tail(&self) -> &[u8] {
        &self.root_node.tail
    }

    /// A walk over the ids of every manifest node and chunk below the root.
    pub fn ids(&self) -> Ids {
        Ids {
            root: self.root,
            seen: std::collections::HashSet::new(),
            stack: vec![(self.root_node.clone(), 0, 0)],
        }
    }

    /// The id of chunk `index`, loading the nodes on its path not loaded
    /// yet.
    pub async fn chunk(&mut self, index: u64, loader: &impl LoadNode) -> Result<Cid> {
        let fanout = self.root.fanout;
        let mut node = &self.root_node;
        let mut first = 0u64;
        for level in 0..self.below.len() {
            let per_id = span(fanout, node.depth).unwrap_or(u64::MAX);
            let slot = (index - first) / per_id;
            let child_first = first + slot * per_id;
            let id = *node
                .ids
                .get(usize::try_from(slot).unwrap_or(usize::MAX))
                .ok_or(ServerError::Manifest {
                    cid: self.cid,
                    reason: "chunk index past the manifest",
                })?;
            let cached = matches!(&self.below[level], Some((f, _)) if *f == child_first);
            if !cached {
                let child = loader.load(id).await?;
                check_child(&self.root, &child, node.depth - 1, child_first)
                    .map_err(|reason| ServerError::Manifest { cid: id, reason })?;
                // Deeper cached nodes belong to the old path.
                for b in &mut self.below[level..] {
                    *b = None;
                }
                self.below[level] = Some((child_first, child));
            }
            first = child_first;
            // Just set or matched above.
            node = match &self.below[level] {
                Some((_, n)) => n,
                None => unreachable!("the level was just loaded"),
            };
        }
        let slot = usize::try_from(index - first).unwrap_or(usize::MAX);
        node.ids.get(slot).copied().ok_or(ServerError::Manifest {
            cid: self.cid,
            reason: "chunk index past the manifest",
        })
    }
}

/// Every id a tree names below its root, in tree order: a node's id comes
/// once the node is loaded (so its copies may go at once), one node per
/// level held.
#[derive(Debug)]
pub struct Ids {
    root: Root,
    /// The manifest nodes met so far: an honest tree never names one twice
    /// (its chunks are ciphertext at different offsets), and a crafted one
    /// that does, to name 2^48 chunks with four objects, is refused at the
    /// first repeat. A walk is then bounded by the nodes actually stored.
    seen: std::collections::HashSet<Cid>,
    /// Per level: the node, its next id, the first chunk it covers.
    stack: Vec<(Node, usize, u64)>,
}

/// One id of a tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Id {
    /// A chunk.
    Chunk(Cid),
    /// A manifest node below the root.
    Node(Cid),
}

impl Id {
    /// The object's cid.
    pub fn cid(&self) -> Cid {
        match self {
            Self::Chunk(c) | Self::Node(c) => *c,
        }
    }
}

impl Ids {
    /// The next id, or `None` at the end.
    pub async fn next(&mut self, loader: &impl LoadNode) -> Result<Option<Id>> {
        loop {
            let Some((node, next, first)) = self.stack.last_mut() else {
                return Ok(None);
            };
            let Some(id) = node.ids.get(*next).copied() else {
                self.stack.pop();
                continue;
            };
            let slot = *next as u64;
            *next += 1;
            if node.depth == 0 {
                return Ok(Some(Id::Chunk(id)));
            }
            if !self.seen.insert(id) {
                return Err(ServerError::Manifest {
                    cid: id,
                    reason: "a manifest node named twice in one tree",
                });
            }
            let depth = node.depth - 1;
            let per_id = span(self.root.fanout, node.depth).unwrap_or(u64::MAX);
            let child_first = first.saturating_add(slot.saturating_mul(per_id));
            let child = loader.load(id).await?;
            check_child(&self.root, &child, depth, child_first)
                .map_err(|reason| ServerError::Manifest { cid: id, reason })?;
            self.stack.push((child, 0, child_first));
            return Ok(Some(Id::Node(id)));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use nexnet_crypto::KeyId;

    use super::*;

    struct Mem(HashMap<Cid, Vec<u8>>);

    impl LoadNode for Mem {
        async fn load(&self, cid: Cid) -> Result<Node> {
            let bytes = self.0.get(&cid).expect("stored");
            assert_eq!(Cid::of(bytes), cid);
            Node::parse(cid, bytes)
        }
    }

    fn root(chunks: u64, fanout: u32) -> Root {
        Root {
            header: ObjectHeader {
                key_id: KeyId::from_bytes([7; 8]),
                iv: [9; 16],
            },
            plain_len: chunks * u64::from(MIN_CHUNK_SIZE),
            chunk_size: MIN_CHUNK_SIZE,
            fanout,
            chunk_count: chunks,
        }
    }

    fn build(chunks: u64, fanout: u32) -> (Mem, Cid, Vec<Cid>) {
        let mut b = Builder::new(fanout);
        let mut store = HashMap::new();
        let ids: Vec<Cid> = (0..chunks).map(|i| Cid::of(&i.to_be_bytes())).collect();
        for id in &ids {
            for c in b.push(*id) {
                store.insert(c.cid, c.bytes);
            }
        }
        let mut last = None;
        for c in b.finish(root(chunks, fanout), Vec::new()) {
            last = Some(c.cid);
            store.insert(c.cid, c.bytes);
        }
        (Mem(store), last.expect("a root"), ids)
    }

    #[tokio::test]
    async fn every_chunk_is_found_at_every_depth() {
        for (chunks, fanout) in [
            (0, 4),
            (1, 4),
            (4, 4),
            (5, 4),
            (16, 4),
            (17, 4),
            (70, 4),
            (9, 2),
        ] {
            let (mem, root_cid, ids) = build(chunks, fanout);
            let root_node = mem.load(root_cid).await.expect("root parses");
            let mut walk = Walk::new(root_cid, root_node).expect("a root");
            assert_eq!(walk.root().chunk_count, chunks);
            for (i, id) in ids.iter().enumerate() {
                assert_eq!(
                    walk.chunk(i as u64, &mem).await.expect("found"),
                    *id,
                    "{chunks}/{fanout}/{i}"
                );
            }
            // Out of order too (a range after a range).
            if chunks > 2 {
                assert_eq!(walk.chunk(1, &mem).await.expect("found"), ids[1]);
            }
            let (mut seen, mut nodes) = (Vec::new(), 0);
            let mut all = walk.ids();
            while let Some(id) = all.next(&mem).await.expect("walks") {
                match id {
                    Id::Chunk(c) => seen.push(c),
                    Id::Node(_) => nodes += 1,
                }
            }
            assert_eq!(seen, ids, "{chunks}/{fanout}");
            assert_eq!(mem.0.len() - 1, nodes);
        }
    }

    #[test]
    fn a_file_of_up_to_fanout_chunks_has_one_node() {
        let (mem, _, _) = build(16, 16);
        assert_eq!(mem.0.len(), 1);
        let (mem, _, _) = build(17, 16);
        assert_eq!(mem.0.len(), 3);
    }

    #[test]
    fn chunk_ranges() {
        let r = Root {
            plain_len: 3 * 65536 + 17,
            ..root(4, 4)
        };
        assert_eq!(r.chunks_for(0, 1), 0..1);
        assert_eq!(r.chunks_for(65535, 2), 0..2);
        assert_eq!(r.chunks_for(65536, 65536), 1..2);
        assert_eq!(r.chunks_for(0, u64::MAX), 0..4);
        assert_eq!(r.chunks_for(3 * 65536 + 16, 100), 3..4);
        assert_eq!(r.chunks_for(r.plain_len, 1), 0..0);
        assert_eq!(r.chunk_len(3), 17);
        assert_eq!(r.chunk_len(2), 65536);
    }

    #[tokio::test]
    async fn a_child_with_more_ids_than_its_chunks_need_is_refused() {
        // 5 chunks at fan-out 4: a full child of 4, then one of 1. A
        // crafted second child of 4 (or a first child of 3) would walk
        // chunks the root does not count.
        let chunk = |i: u64| Cid::of(&i.to_be_bytes());
        let leaf = |ids: std::ops::Range<u64>| Node {
            depth: 0,
            root: None,
            ids: ids.map(chunk).collect(),
            tail: Vec::new(),
        };
        for (first, second, ok) in [(0..4, 4..5, true), (0..4, 4..8, false), (0..3, 4..5, false)] {
            let (a, b) = (leaf(first).encode(), leaf(second).encode());
            let top = Node {
                depth: 1,
                root: Some(root(5, 4)),
                ids: vec![Cid::of(&a), Cid::of(&b)],
                tail: Vec::new(),
            }
            .encode();
            let top_cid = Cid::of(&top);
            let mem = Mem(HashMap::from([
                (Cid::of(&a), a),
                (Cid::of(&b), b),
                (top_cid, top),
            ]));
            let mut walk =
                Walk::new(top_cid, mem.load(top_cid).await.expect("root")).expect("a root");
            let mut all = walk.ids();
            let mut walked = Ok(0);
            while let Ok(n) = walked {
                match all.next(&mem).await {
                    Ok(Some(_)) => walked = Ok(n + 1),
                    Ok(None) => break,
                    Err(e) => walked = Err(e),
                }
            }
            assert_eq!(walked.is_ok(), ok, "{walked:?}");
            let mut found = true;
            for i in 0..5 {
                found &= walk.chunk(i, &mem).await.is_ok();
            }
            assert_eq!(found, ok);
        }
    }

    #[tokio::test]
    async fn a_tree_that_names_one_node_twice_is_refused() {
        // 8 chunks at fan-out 4, both halves the same node: every count
        // fits, and the second mention is what gives it away.
        let leaf = Node {
            depth: 0,
            root: None,
            ids: (0..4u64).map(|i| Cid::of(&i.to_be_bytes())).collect(),
            tail: Vec::new(),
        }
        .encode();
        let top = Node {
            depth: 1,
            root: Some(root(8, 4)),
            ids: vec![Cid::of(&leaf), Cid::of(&leaf)],
            tail: Vec::new(),
        }
        .encode();
        let top_cid = Cid::of(&top);
        let mem = Mem(HashMap::from([(Cid::of(&leaf), leaf), (top_cid, top)]));
        let walk = Walk::new(top_cid, mem.load(top_cid).await.expect("root")).expect("a root");
        let mut all = walk.ids();
        let mut chunks = 0;
        let err = loop {
            match all.next(&mem).await {
                Ok(Some(Id::Chunk(_))) => chunks += 1,
                Ok(Some(Id::Node(_))) => {}
                Ok(None) => panic!("walked a repeated node"),
                Err(e) => break e,
            }
        };
        assert_eq!(chunks, 4);
        assert!(err.to_string().contains("named twice"), "{err}");
    }

    #[test]
    fn roots_and_whole_objects_start_files_and_other_nodes_do_not() {
        let (mem, root_cid, _) = build(70, 4);
        for (cid, bytes) in &mem.0 {
            assert_eq!(starts_a_file(bytes), *cid == root_cid);
        }
        let header = ObjectHeader {
            key_id: KeyId::from_bytes([7; 8]),
            iv: [9; 16],
        };
        assert!(starts_a_file(&header.encode()));
        assert!(!starts_a_file(b"NXMF"));
        assert!(!starts_a_file(&[0; 64]));
    }

    #[test]
    fn hostile_nodes_are_refused_not_panicked_on() {
        let (mem, root_cid, _) = build(5, 4);
        let good = mem.0[&root_cid].clone();
        for cut in 0..good.len() {
            assert!(Node::parse(root_cid, &good[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = good.clone();
        long.extend_from_slice(&[0; 20]);
        assert!(Node::parse(root_cid, &long).is_err());
        let mut huge = good.clone();
        let count_at = PREFIX_LEN + ROOT_LEN + 1;
        huge[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Node::parse(root_cid, &huge).is_err());
        let mut deep = good.clone();
        deep[5] = 200;
        assert!(Node::parse(root_cid, &deep).is_err());
        let mut bad_size = good;
        bad_size[PREFIX_LEN + HEADER_LEN + 8..PREFIX_LEN + HEADER_LEN + 12]
            .copy_from_slice(&1000u32.to_be_bytes());
        assert!(Node::parse(root_cid, &bad_size).is_err());
    }
}
