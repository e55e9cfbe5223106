//! Byte layout of the DiskANN files (tables in docs/FORMAT.md).
//!
//! `graph.qbf` holds a 64-byte `meta` section ([`GraphMeta`]) and the `nodes` section. A node is
//! `vector (dim x element size) | degree u32 | R x u32 neighbor ids (unused slots 0)`, padded to a
//! multiple of 4 bytes ([`Layout::node_len`]). When a node fits in a block's payload
//! (block size - 4-byte checksum trailer), `nodes_per_block` nodes are packed per block and the
//! rest of the payload is zero; otherwise each node starts a block and spans `blocks_per_node`
//! blocks, its bytes continuing across the payloads. `pq.qbf` holds the codebooks and codes.

use super::pq::{Pq, CENTROIDS};
use crate::error::{IndexError, Result};
use crate::metric::{ElementType, Metric};
use quiver_storage::io::{open_reader, Backend};
use quiver_storage::{BlockFile, BlockFileWriter, StorageError};
use std::borrow::Cow;
use std::path::Path;

/// Section of `graph.qbf` holding [`GraphMeta`].
pub const META_SECTION: &str = "meta";
/// Section of `graph.qbf` holding the node blocks.
pub const NODES_SECTION: &str = "nodes";
/// Optional section of `graph.qbf`: u32 per slot, the node stored there (absent = identity).
pub const ORDER_SECTION: &str = "order";
/// Version of the meta record.
const META_VERSION: u32 = 1;
/// Bytes of the meta record.
pub const META_BYTES: usize = 64;

/// Where nodes sit in the `nodes` section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Bytes of the stored vector.
    pub vec_bytes: usize,
    /// Offset of the degree field: `vec_bytes` rounded up to 4, so the ids are u32-aligned.
    pub links_at: usize,
    /// Maximum degree R (neighbor slots per node).
    pub max_degree: usize,
    /// Bytes per node record (vector, degree, R ids, padding to 4).
    pub node_len: usize,
    /// Usable bytes per block.
    pub payload: usize,
    /// Nodes packed per block (0 when a node needs more than one block).
    pub nodes_per_block: usize,
    /// Blocks per node (1 when several nodes share a block).
    pub blocks_per_node: usize,
}

impl Layout {
    /// The layout for `dim` components of `elem`, degree `r`, `payload` usable bytes per block.
    pub fn new(dim: usize, elem: ElementType, r: usize, payload: usize) -> Result<Layout> {
        let vec_bytes = dim * elem.size();
        let links_at = vec_bytes.div_ceil(4) * 4;
        let node_len = links_at + 4 + 4 * r;
        if payload < 8 {
            return Err(IndexError::InvalidArgument(format!(
                "block payload of {payload} bytes is too small"
            )));
        }
        let (npb, bpn) = if node_len <= payload {
            (payload / node_len, 1)
        } else {
            (0, node_len.div_ceil(payload))
        };
        Ok(Layout {
            vec_bytes,
            links_at,
            max_degree: r,
            node_len,
            payload,
            nodes_per_block: npb,
            blocks_per_node: bpn,
        })
    }

    /// First block (relative to the section) and block count of the record at `slot`.
    pub fn blocks_of(&self, slot: u32) -> (u64, u32) {
        if self.nodes_per_block > 0 {
            (slot as u64 / self.nodes_per_block as u64, 1)
        } else {
            (
                slot as u64 * self.blocks_per_node as u64,
                self.blocks_per_node as u32,
            )
        }
    }

    /// Blocks that `n` nodes occupy.
    pub fn blocks_for(&self, n: u64) -> u64 {
        if self.nodes_per_block > 0 {
            n.div_ceil(self.nodes_per_block as u64)
        } else {
            n * self.blocks_per_node as u64
        }
    }

    /// Writes node `vector` + `nbrs` into `out` (`node_len` bytes).
    pub fn encode_node(&self, vector: &[u8], nbrs: &[u32], out: &mut [u8]) {
        out.fill(0);
        out[..self.vec_bytes].copy_from_slice(vector);
        let d = nbrs.len().min(self.max_degree);
        out[self.links_at..self.links_at + 4].copy_from_slice(&(d as u32).to_le_bytes());
        for (i, nb) in nbrs[..d].iter().enumerate() {
            let o = self.links_at + 4 + 4 * i;
            out[o..o + 4].copy_from_slice(&nb.to_le_bytes());
        }
    }

    /// The record at `slot` inside `buf`, the bytes of the blocks
    /// [`blocks_of`](Self::blocks_of) names (trailers included): borrowed when it lies in one
    /// block, gathered otherwise.
    pub fn node_bytes<'a>(
        &self,
        buf: &'a [u8],
        slot: u32,
        block_size: usize,
    ) -> std::result::Result<Cow<'a, [u8]>, StorageError> {
        if self.nodes_per_block > 0 {
            let off = (slot as usize % self.nodes_per_block) * self.node_len;
            return buf
                .get(off..off + self.node_len)
                .map(Cow::Borrowed)
                .ok_or_else(|| short(buf.len(), off + self.node_len));
        }
        let mut v = Vec::with_capacity(self.blocks_per_node * self.payload);
        for b in 0..self.blocks_per_node {
            let blk = buf
                .get(b * block_size..b * block_size + self.payload)
                .ok_or_else(|| short(buf.len(), b * block_size + self.payload))?;
            v.extend_from_slice(blk);
        }
        v.truncate(self.node_len);
        Ok(Cow::Owned(v))
    }

    /// The neighbor ids of node `id`'s record (stored at `slot`), checked: degree <= R and every
    /// id < n. `path` and `slot` locate a corrupt record in the error.
    pub fn neighbors<'a>(
        &self,
        node: &'a [u8],
        n: u64,
        path: &Path,
        (id, slot): (u32, u32),
    ) -> std::result::Result<&'a [u32], StorageError> {
        let corrupt = |what: String| StorageError::Corrupt {
            path: path.to_path_buf(),
            offset: self.node_offset_hint(slot),
            what,
        };
        let d = u32::from_le_bytes(
            node[self.links_at..self.links_at + 4]
                .try_into()
                .map_err(|_| corrupt("node record too short".into()))?,
        ) as usize;
        if d > self.max_degree {
            return Err(corrupt(format!(
                "node {id}: degree {d} exceeds R = {}",
                self.max_degree
            )));
        }
        let raw = node
            .get(self.links_at + 4..self.links_at + 4 + 4 * d)
            .ok_or_else(|| corrupt(format!("node {id}: record shorter than its degree {d}")))?;
        let ids: &[u32] = bytemuck::try_cast_slice(raw)
            .map_err(|_| corrupt(format!("node {id}: misaligned neighbor list")))?;
        if let Some(bad) = ids.iter().find(|&&x| x as u64 >= n) {
            return Err(corrupt(format!("node {id}: neighbor id {bad} >= n = {n}")));
        }
        Ok(ids)
    }

    /// Offset of the record at `slot` within the nodes section's payload stream (for error
    /// messages).
    fn node_offset_hint(&self, slot: u32) -> u64 {
        let (b, _) = self.blocks_of(slot);
        let within = if self.nodes_per_block > 0 {
            (slot as usize % self.nodes_per_block) * self.node_len
        } else {
            0
        };
        b * (self.payload as u64 + 4) + within as u64
    }
}

fn short(have: usize, need: usize) -> StorageError {
    StorageError::InvalidArgument(format!(
        "node read returned {have} bytes, the record ends at {need}"
    ))
}

/// Which node each record slot holds, and back: the build places graph neighbors in the same
/// block ([`pack_order`]), so a node's offset is no longer its id.
#[derive(Debug, Default)]
pub struct SlotMap {
    /// Slot -> node id.
    pub id_at: Vec<u32>,
    /// Node id -> slot.
    pub slot_of: Vec<u32>,
}

impl SlotMap {
    /// Checks that `id_at` (the `order` section of `path`) is a permutation of 0..n.
    pub fn new(path: &Path, id_at: Vec<u32>, n: usize) -> Result<SlotMap> {
        if id_at.len() != n {
            return Err(IndexError::bad_file(
                path,
                format!("section order holds {} slots, n = {n}", id_at.len()),
            ));
        }
        let mut slot_of = vec![u32::MAX; n];
        for (slot, &id) in id_at.iter().enumerate() {
            match slot_of.get_mut(id as usize) {
                Some(s) if *s == u32::MAX => *s = slot as u32,
                _ => {
                    return Err(IndexError::bad_file(
                        path,
                        format!(
                            "section order: slot {slot} (byte {}) names node {id}, \
                             out of range or already placed",
                            4 * slot
                        ),
                    ))
                }
            }
        }
        Ok(SlotMap { id_at, slot_of })
    }

    /// RAM held.
    pub fn bytes(&self) -> u64 {
        4 * (self.id_at.capacity() + self.slot_of.capacity()) as u64
    }
}

/// The record order (slot -> node id) that packs graph neighbors into the same block, so one
/// read brings a node and some of the neighbors a search is likely to expand next (the idea of
/// Starling's block shuffling, SIGMOD 2024). Blocks are filled greedily: seeds in BFS order from
/// the medoid; each seed's block takes its unplaced neighbors nearest to it first, then their
/// neighbors. `data` is the navigation matrix (`dim` per row).
pub fn pack_order(
    data: &[f32],
    dim: usize,
    adj: &[Vec<u32>],
    medoid: u32,
    nodes_per_block: usize,
) -> Vec<u32> {
    let n = adj.len();
    let row = |i: u32| &data[i as usize * dim..(i as usize + 1) * dim];
    // Seeds: BFS from the medoid, then anything it did not reach.
    let mut seeds = Vec::with_capacity(n);
    let mut seen = vec![false; n];
    seen[medoid as usize] = true;
    seeds.push(medoid);
    let mut head = 0;
    while head < seeds.len() {
        for &nb in &adj[seeds[head] as usize] {
            if !std::mem::replace(&mut seen[nb as usize], true) {
                seeds.push(nb);
            }
        }
        head += 1;
    }
    seeds.extend((0..n as u32).filter(|&i| !seen[i as usize]));
    drop(seen);
    let mut placed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    let mut cands: Vec<(f32, u32)> = Vec::new();
    for s in seeds {
        if std::mem::replace(&mut placed[s as usize], true) {
            continue;
        }
        // A seed whose neighborhood is all placed leaves its block short; the next seed fills
        // the rest, so every later block stays aligned.
        let start = order.len();
        let room = nodes_per_block - start % nodes_per_block;
        order.push(s);
        let mut next = start;
        while order.len() - start < room && next < order.len() {
            let u = order[next];
            next += 1;
            cands.clear();
            cands.extend(
                adj[u as usize]
                    .iter()
                    .filter(|&&v| !placed[v as usize])
                    .map(|&v| (crate::distance::Element::l2sq(row(s), row(v)), v)),
            );
            cands.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
            for &(_, v) in &cands {
                if order.len() - start == room {
                    break;
                }
                placed[v as usize] = true;
                order.push(v);
            }
        }
    }
    order
}

/// Magic of a remembered hot list (`hot-<count>.qhot`).
const HOT_MAGIC: &[u8; 4] = b"QHOT";

/// Reads a remembered hot list: `QHOT`, u32 version 1, u64 n, u64 count, count u32 ids, u32
/// crc32c of all before it. None when absent, damaged or not for this index (n, count, ids < n):
/// the caller then chooses again.
pub fn read_hot_list(path: &Path, n: usize, count: usize) -> Option<Vec<u32>> {
    let b = std::fs::read(path).ok()?;
    if b.len() != 28 + 4 * count || &b[..4] != HOT_MAGIC {
        return None;
    }
    let body = &b[..b.len() - 4];
    let sum = u32::from_le_bytes(b[b.len() - 4..].try_into().ok()?);
    let u64_at = |o: usize| {
        b.get(o..o + 8)
            .and_then(|x| x.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if crc32c::crc32c(body) != sum
        || b[4..8] != 1u32.to_le_bytes()
        || u64_at(8)? != n as u64
        || u64_at(16)? != count as u64
    {
        return None;
    }
    let ids: Vec<u32> = bytemuck::pod_collect_to_vec(&body[24..]);
    ids.iter().all(|&i| (i as usize) < n).then_some(ids)
}

/// Writes a hot list (format in [`read_hot_list`]) atomically.
pub fn write_hot_list(path: &Path, n: usize, ids: &[u32]) -> Result<()> {
    let mut b = Vec::with_capacity(28 + 4 * ids.len());
    b.extend_from_slice(HOT_MAGIC);
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&(n as u64).to_le_bytes());
    b.extend_from_slice(&(ids.len() as u64).to_le_bytes());
    b.extend_from_slice(bytemuck::cast_slice(ids));
    let sum = crc32c::crc32c(&b);
    b.extend_from_slice(&sum.to_le_bytes());
    quiver_storage::atomic::write_atomic(path, &b)?;
    Ok(())
}

/// The graph file's self-description.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GraphMeta {
    /// Dimension of stored vectors.
    pub dim: usize,
    /// Stored element type.
    pub element: ElementType,
    /// Metric.
    pub metric: Metric,
    /// Nodes.
    pub n: u64,
    /// R.
    pub max_degree: usize,
    /// Entry point.
    pub medoid: u32,
    /// Navigation-space dimension (dim, or dim + 1 for inner product).
    pub nav_dim: usize,
    /// Inner product: the largest data norm M of the augmentation (0 otherwise).
    pub ip_max_norm: f32,
    /// Bytes per PQ code.
    pub pq_bytes: usize,
    /// Node placement.
    pub layout: Layout,
}

impl GraphMeta {
    /// The 64-byte little-endian record (see docs/FORMAT.md).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(META_BYTES);
        for v in [
            META_VERSION,
            self.dim as u32,
            self.element.code(),
            self.metric.code(),
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&self.n.to_le_bytes());
        for v in [
            self.max_degree as u32,
            self.layout.node_len as u32,
            self.layout.nodes_per_block as u32,
            self.layout.blocks_per_node as u32,
            self.medoid,
            self.nav_dim as u32,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&self.ip_max_norm.to_le_bytes());
        b.extend_from_slice(&(self.pq_bytes as u32).to_le_bytes());
        b.resize(META_BYTES, 0);
        b
    }

    /// Parses and cross-checks a meta record; `payload` is the file's usable bytes per block.
    pub fn decode(path: &Path, b: &[u8], payload: usize) -> Result<GraphMeta> {
        let bad = |what: String| IndexError::bad_file(path, format!("section meta: {what}"));
        if b.len() < META_BYTES {
            return Err(bad(format!("{} bytes, expected {META_BYTES}", b.len())));
        }
        let u = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        if u(0) != META_VERSION {
            return Err(bad(format!(
                "meta version {} (this build reads {META_VERSION})",
                u(0)
            )));
        }
        let element = ElementType::from_code(u(8))
            .ok_or_else(|| bad(format!("element code {} at offset 8", u(8))))?;
        let metric = Metric::from_code(u(12))
            .ok_or_else(|| bad(format!("metric code {} at offset 12", u(12))))?;
        let n = u64::from_le_bytes(b[16..24].try_into().map_err(|_| bad("n".into()))?);
        let (dim, r) = (u(4) as usize, u(24) as usize);
        if dim == 0 || dim > crate::dataset::MAX_DIM || !(1..=1024).contains(&r) {
            return Err(bad(format!("dim {dim} or R {r} out of range")));
        }
        let layout = Layout::new(dim, element, r, payload)?;
        let stored = (u(28) as usize, u(32) as usize, u(36) as usize);
        if stored
            != (
                layout.node_len,
                layout.nodes_per_block,
                layout.blocks_per_node,
            )
        {
            return Err(bad(format!(
                "layout (node_len, nodes/block, blocks/node) = {stored:?} at offset 28, \
                 recomputed {:?}",
                (
                    layout.node_len,
                    layout.nodes_per_block,
                    layout.blocks_per_node
                )
            )));
        }
        let medoid = u(40);
        if n == 0 || medoid as u64 >= n {
            return Err(bad(format!("medoid {medoid} not below n = {n}")));
        }
        let nav_dim = u(44) as usize;
        let want_nav = if metric == Metric::Ip { dim + 1 } else { dim };
        if nav_dim != want_nav {
            return Err(bad(format!(
                "navigation dimension {nav_dim}, expected {want_nav}"
            )));
        }
        Ok(GraphMeta {
            dim,
            element,
            metric,
            n,
            max_degree: r,
            medoid,
            nav_dim,
            ip_max_norm: f32::from_le_bytes([b[48], b[49], b[50], b[51]]),
            pq_bytes: u(52) as usize,
            layout,
        })
    }
}

/// Writes `pq.qbf`: `meta` (u32 nav_dim, u32 m, u32 centroids = 256, u32 0, then m + 1 u32
/// subspace offsets), `center` (nav_dim f32), `codebooks` (f32, subspace after subspace, each
/// 256 x width), `codes` (n x m u8).
pub fn write_pq(path: &Path, pq: &Pq, codes: &[u8]) -> Result<()> {
    let mut w = BlockFileWriter::create(path, "diskann.pq")?;
    let mut meta: Vec<u32> = vec![pq.dim as u32, pq.m() as u32, CENTROIDS as u32, 0];
    meta.extend(pq.offsets.iter().map(|&o| o as u32));
    w.write_section("meta", bytemuck::cast_slice(&meta))?;
    w.write_section("center", bytemuck::cast_slice(&pq.center))?;
    w.write_section("codebooks", bytemuck::cast_slice(&pq.codebooks))?;
    w.write_section("codes", codes)?;
    w.finish()?;
    Ok(())
}

/// Reads `pq.qbf` into RAM, checking every size against `n` and the meta record.
/// The file is read once, sequentially, so it always goes through pread.
pub fn read_pq(path: &Path, n: usize) -> Result<(Pq, Vec<u8>)> {
    let file = BlockFile::open(path)?;
    let reader = open_reader(&file, Backend::Pread)?;
    let bad = |what: String| IndexError::bad_file(path, what);
    let meta_raw = file.read_section(reader.as_ref(), "meta")?;
    if meta_raw.len() < 16 || meta_raw.len() % 4 != 0 {
        return Err(bad(format!("section meta holds {} bytes", meta_raw.len())));
    }
    let meta: Vec<u32> = bytemuck::pod_collect_to_vec(&meta_raw);
    let (dim, m, cents) = (meta[0] as usize, meta[1] as usize, meta[2] as usize);
    if cents != CENTROIDS || m == 0 || m > dim || meta.len() != 4 + m + 1 {
        return Err(bad(format!(
            "section meta: dim {dim}, m {m}, centroids {cents} inconsistent"
        )));
    }
    let offsets: Vec<usize> = meta[4..].iter().map(|&o| o as usize).collect();
    if offsets[0] != 0 || offsets[m] != dim || offsets.windows(2).any(|w| w[0] >= w[1]) {
        return Err(bad(format!(
            "section meta: bad subspace offsets {offsets:?}"
        )));
    }
    let center: Vec<f32> =
        bytemuck::pod_collect_to_vec(&file.read_section(reader.as_ref(), "center")?);
    let books: Vec<f32> =
        bytemuck::pod_collect_to_vec(&file.read_section(reader.as_ref(), "codebooks")?);
    let codes = file.read_section(reader.as_ref(), "codes")?;
    if center.len() != dim || books.len() != dim * CENTROIDS || codes.len() != n * m {
        return Err(bad(format!(
            "sizes: center {} (want {dim}), codebooks {} (want {}), codes {} (want {})",
            center.len(),
            books.len(),
            dim * CENTROIDS,
            codes.len(),
            n * m
        )));
    }
    if let Some(i) = center.iter().chain(&books).position(|x| !x.is_finite()) {
        return Err(bad(format!("non-finite codebook value at float {i}")));
    }
    Ok((
        Pq {
            dim,
            offsets,
            center,
            codebooks: books,
        },
        codes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_order_is_a_permutation_that_colocates_neighbors() {
        // A ring of 1,000 points on a line: each node's neighbors are its two sides.
        let n = 1000u32;
        let data: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let adj: Vec<Vec<u32>> = (0..n)
            .map(|i| vec![(i + 1) % n, (i + n - 1) % n, (i + 500) % n])
            .collect();
        let order = pack_order(&data, 1, &adj, 0, 4);
        let map = SlotMap::new(Path::new("t"), order.clone(), n as usize).expect("permutation");
        assert_eq!(map.slot_of[order[17] as usize], 17);
        // Most blocks hold a run of consecutive points (the near neighbors, not the far chord).
        let tight = order
            .chunks(4)
            .filter(|b| {
                let (lo, hi) = (b.iter().min(), b.iter().max());
                matches!((lo, hi), (Some(lo), Some(hi)) if hi - lo <= 4)
            })
            .count();
        assert!(tight >= 200, "only {tight} of 250 blocks are runs");
    }

    #[test]
    fn hot_list_round_trips_and_refuses_damage_or_another_index() {
        let d = tempfile::tempdir().expect("tmp");
        let p = d.path().join("hot-3.qhot");
        write_hot_list(&p, 100, &[5, 1, 99]).expect("write");
        assert_eq!(read_hot_list(&p, 100, 3), Some(vec![5, 1, 99]));
        assert_eq!(read_hot_list(&p, 50, 3), None, "another index's n");
        assert_eq!(read_hot_list(&p, 100, 4), None, "another count");
        let mut b = std::fs::read(&p).expect("read");
        b[25] ^= 1;
        std::fs::write(&p, &b).expect("write");
        assert_eq!(read_hot_list(&p, 100, 3), None, "checksum");
        assert_eq!(read_hot_list(&d.path().join("none.qhot"), 100, 3), None);
    }

    #[test]
    fn slot_map_rejects_a_repeated_or_out_of_range_node() {
        let e = SlotMap::new(Path::new("g.qbf"), vec![0, 2, 2], 3).expect_err("repeated");
        assert!(
            e.to_string().contains("slot 2 (byte 8) names node 2"),
            "{e}"
        );
        let e = SlotMap::new(Path::new("g.qbf"), vec![0, 1, 7], 3).expect_err("out of range");
        assert!(e.to_string().contains("node 7"), "{e}");
        assert!(SlotMap::new(Path::new("g.qbf"), vec![0, 1], 3).is_err());
    }
}
