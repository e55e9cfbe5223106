//! Byte layout of `graph.qbf` of an HNSW index (tables in docs/FORMAT.md).
//!
//! Sections: `meta` (64 bytes, [`HnswMeta`]); `base`, the level-0 records packed
//! `nodes_per_block` per block with the same record shape as DiskANN's nodes (vector | count u32
//! | M0 x u32 ids, padded to 4 bytes; [`Layout`]), a record never straddling a block so that an
//! mmap'd file is searched in place; `levels`, one byte per node; `upper`, for each node with
//! level >= 1 in id order and for each of its levels 1..=level, one slot of `count u32 | M x u32`.

use crate::diskann::Layout;
use crate::error::{IndexError, Result};
use crate::metric::{ElementType, Metric};
use std::path::Path;

/// Section holding [`HnswMeta`].
pub const META_SECTION: &str = "meta";
/// Section holding the level-0 records.
pub const BASE_SECTION: &str = "base";
/// Section holding one level byte per node.
pub const LEVELS_SECTION: &str = "levels";
/// Section holding the upper-level neighbor slots.
pub const UPPER_SECTION: &str = "upper";
/// Version of the meta record.
const META_VERSION: u32 = 1;
/// Bytes of the meta record.
pub const META_BYTES: usize = 64;

/// The graph file's self-description.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HnswMeta {
    /// Vector dimension.
    pub dim: usize,
    /// Stored element type.
    pub element: ElementType,
    /// Metric.
    pub metric: Metric,
    /// Nodes.
    pub n: u64,
    /// Neighbors per node above level 0.
    pub m: usize,
    /// Neighbors per node at level 0.
    pub m0: usize,
    /// ef_construction the graph was built with.
    pub ef_construction: usize,
    /// Entry point (a node of the top level).
    pub entry: u32,
    /// Top level.
    pub max_level: usize,
    /// Level-0 record placement.
    pub layout: Layout,
    /// Slots in the `upper` section.
    pub upper_slots: u64,
}

impl HnswMeta {
    /// Words (u32) per upper-level slot.
    pub fn slot_words(&self) -> usize {
        self.m + 1
    }

    /// The 64-byte little-endian record.
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
            self.m as u32,
            self.m0 as u32,
            self.ef_construction as u32,
            self.entry,
            self.max_level as u32,
            self.layout.node_len as u32,
            self.layout.nodes_per_block as u32,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&self.upper_slots.to_le_bytes());
        b.resize(META_BYTES, 0);
        b
    }

    /// Parses and cross-checks a meta record; `payload` is the file's usable bytes per block.
    pub fn decode(path: &Path, b: &[u8], payload: usize) -> Result<HnswMeta> {
        let bad = |what: String| IndexError::bad_file(path, format!("section meta: {what}"));
        if b.len() < META_BYTES {
            return Err(bad(format!("{} bytes, expected {META_BYTES}", b.len())));
        }
        let u = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(w)
        };
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
        let (dim, n) = (u(4) as usize, u64_at(16));
        let (m, m0) = (u(24) as usize, u(28) as usize);
        if dim == 0 || dim > crate::dataset::MAX_DIM {
            return Err(bad(format!("dim {dim} at offset 4 out of range")));
        }
        if !(2..=MAX_M).contains(&m) || !(m..=2 * MAX_M).contains(&m0) {
            return Err(bad(format!("M {m} / M0 {m0} at offset 24 out of range")));
        }
        let layout = Layout::new(dim, element, m0, payload)?;
        let stored = (u(44) as usize, u(48) as usize);
        if stored != (layout.node_len, layout.nodes_per_block) || layout.nodes_per_block == 0 {
            return Err(bad(format!(
                "layout (node_len, nodes/block) = {stored:?} at offset 44, recomputed {:?}",
                (layout.node_len, layout.nodes_per_block)
            )));
        }
        let (entry, max_level) = (u(36), u(40) as usize);
        if n == 0 || entry as u64 >= n || max_level > super::graph::MAX_LEVEL {
            return Err(bad(format!(
                "entry {entry} (n = {n}) or top level {max_level} out of range"
            )));
        }
        Ok(HnswMeta {
            dim,
            element,
            metric,
            n,
            m,
            m0,
            ef_construction: u(32) as usize,
            entry,
            max_level,
            layout,
            upper_slots: u64_at(52),
        })
    }
}

/// Largest M accepted.
pub const MAX_M: usize = 512;

/// The smallest block size (a power of two, at least 4 KiB) whose payload holds one record, so
/// records never straddle blocks.
pub fn block_size_for(node_len: usize) -> usize {
    let mut bs = 4096;
    while quiver_storage::format::payload_bytes(bs) < node_len {
        bs *= 2;
    }
    bs
}
