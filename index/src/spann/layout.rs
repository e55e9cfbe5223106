//! The bytes of `postings.qbf` (tables in docs/FORMAT.md): the meta section, the list directory
//! and the posting lists themselves.
//!
//! A list holds `count` entries as `count` u32 ids followed by `count` stored vectors, written
//! over the payloads of consecutive blocks (an entry may straddle a block boundary; the block
//! trailers are skipped). Every list starts on a block boundary, so one read of `n_blocks`
//! blocks fetches it whole.

use crate::error::{IndexError, Result};
use crate::metric::{ElementType, Metric};
use std::borrow::Cow;
use std::path::Path;

/// Meta section name.
pub const META_SECTION: &str = "meta";
/// Centroids (`n_lists * nav_dim` f32).
pub const CENTROIDS_SECTION: &str = "centroids";
/// The router graph over the centroids ([`crate::hnsw::RamHnsw::encode`]), when there is one.
pub const ROUTER_SECTION: &str = "router";
/// The list directory ([`ListInfo`] per list).
pub const LISTS_SECTION: &str = "lists";
/// Per vector: its primary list and position there (u32, u32).
pub const LOCATOR_SECTION: &str = "locator";
/// The posting lists.
pub const POSTINGS_SECTION: &str = "postings";

const META_VERSION: u32 = 1;
const META_BYTES: usize = 56;
/// Meta flag: the router section is present.
const FLAG_ROUTER: u32 = 1;
/// Meta flag: lists hold SQ8 codes (section `sq8`), full vectors are in `vectors.qbf`.
const FLAG_SQ8: u32 = 2;
/// The SQ8 quantizer: dim f32 offsets, then the step (f32).
pub const SQ8_SECTION: &str = "sq8";

/// What the meta section records.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpannMeta {
    /// Dimension of stored vectors.
    pub dim: usize,
    /// Stored element type.
    pub element: ElementType,
    /// Metric.
    pub metric: Metric,
    /// Vectors.
    pub n: u64,
    /// Posting lists (= centroids).
    pub n_lists: usize,
    /// Dimension of the navigation space (dim + 1 for inner product).
    pub nav_dim: usize,
    /// Bytes of one stored vector.
    pub vec_bytes: usize,
    /// Most entries one list may hold (the byte cap over the entry size).
    pub max_list_entries: usize,
    /// Inner product: the largest data norm (the query scale); 0 otherwise.
    pub ip_max_norm: f32,
    /// Most lists a vector was written to.
    pub replicas: usize,
    /// Whether an HNSW router over the centroids is stored.
    pub has_router: bool,
    /// Whether list entries hold SQ8 codes (one byte per dimension) instead of the vectors.
    pub sq8: bool,
}

impl SpannMeta {
    /// The meta section's bytes.
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
            self.n_lists as u32,
            self.nav_dim as u32,
            self.vec_bytes as u32,
            self.max_list_entries as u32,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&self.ip_max_norm.to_le_bytes());
        b.extend_from_slice(&(self.replicas as u32).to_le_bytes());
        let flags =
            if self.has_router { FLAG_ROUTER } else { 0 } | if self.sq8 { FLAG_SQ8 } else { 0 };
        b.extend_from_slice(&flags.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b
    }

    /// Reads and checks the meta section (`path` names the file in errors).
    pub fn decode(path: &Path, b: &[u8]) -> Result<SpannMeta> {
        let bad = |what: String| IndexError::bad_file(path, format!("section meta: {what}"));
        if b.len() < META_BYTES {
            return Err(bad(format!("{} bytes, expected {META_BYTES}", b.len())));
        }
        let u = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        if u(0) != META_VERSION {
            return Err(bad(format!(
                "version {} (this build reads {META_VERSION})",
                u(0)
            )));
        }
        let element = ElementType::from_code(u(8))
            .ok_or_else(|| bad(format!("element code {} at offset 8", u(8))))?;
        let metric = Metric::from_code(u(12))
            .ok_or_else(|| bad(format!("metric code {} at offset 12", u(12))))?;
        let n = u64::from(u(16)) | (u64::from(u(20)) << 32);
        let dim = u(4) as usize;
        let m = SpannMeta {
            dim,
            element,
            metric,
            n,
            n_lists: u(24) as usize,
            nav_dim: u(28) as usize,
            vec_bytes: u(32) as usize,
            max_list_entries: u(36) as usize,
            ip_max_norm: f32::from_le_bytes([b[40], b[41], b[42], b[43]]),
            replicas: u(44) as usize,
            has_router: u(48) & FLAG_ROUTER != 0,
            sq8: u(48) & FLAG_SQ8 != 0,
        };
        if m.sq8 && !element.is_float() {
            return Err(bad(format!(
                "SQ8 codes (flags at offset 48) over {element} vectors"
            )));
        }
        if dim == 0 || dim > crate::dataset::MAX_DIM {
            return Err(bad(format!("dim {dim} at offset 4 out of range")));
        }
        if m.vec_bytes != dim * element.size() {
            return Err(bad(format!(
                "vector bytes {} at offset 32, {dim} x {element} is {}",
                m.vec_bytes,
                dim * element.size()
            )));
        }
        let want_nav = if metric == Metric::Ip { dim + 1 } else { dim };
        if m.nav_dim != want_nav {
            return Err(bad(format!(
                "navigation dim {} at offset 28, expected {want_nav}",
                m.nav_dim
            )));
        }
        if m.n_lists == 0 || m.n_lists as u64 > n.max(1) || m.max_list_entries == 0 {
            return Err(bad(format!(
                "{} lists of at most {} entries for {n} vectors (offsets 24, 36)",
                m.n_lists, m.max_list_entries
            )));
        }
        if !m.ip_max_norm.is_finite() || m.replicas == 0 {
            return Err(bad(format!(
                "ip norm {} or replicas {} (offsets 40, 44)",
                m.ip_max_norm, m.replicas
            )));
        }
        Ok(m)
    }

    /// Bytes of one list entry's vector part: the stored vector, or its SQ8 code.
    pub fn row_bytes(&self) -> usize {
        if self.sq8 {
            self.dim
        } else {
            self.vec_bytes
        }
    }

    /// Bytes of one entry (id + vector or code).
    pub fn entry_bytes(&self) -> usize {
        4 + self.row_bytes()
    }
}

/// Where one posting list lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListInfo {
    /// First block, relative to the postings section.
    pub first_block: u64,
    /// Blocks it spans.
    pub n_blocks: u32,
    /// Entries.
    pub count: u32,
}

/// Bytes of one directory entry.
pub const LIST_INFO_BYTES: usize = 16;

impl ListInfo {
    /// Appends the 16-byte entry.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.first_block.to_le_bytes());
        out.extend_from_slice(&self.n_blocks.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
    }

    /// Decodes the directory and checks it against the meta and the postings section's size:
    /// lists in order, not overlapping, inside the section, each large enough for its entries.
    pub fn decode_all(
        path: &Path,
        b: &[u8],
        meta: &SpannMeta,
        payload: usize,
        section_blocks: u64,
    ) -> Result<Vec<ListInfo>> {
        let bad = |what: String| IndexError::bad_file(path, format!("section lists: {what}"));
        if b.len() < meta.n_lists * LIST_INFO_BYTES {
            return Err(bad(format!("{} bytes for {} lists", b.len(), meta.n_lists)));
        }
        let mut out = Vec::with_capacity(meta.n_lists);
        let mut next = 0u64;
        for (i, e) in b
            .chunks_exact(LIST_INFO_BYTES)
            .take(meta.n_lists)
            .enumerate()
        {
            let l = ListInfo {
                first_block: u64::from_le_bytes(e[0..8].try_into().unwrap_or_default()),
                n_blocks: u32::from_le_bytes([e[8], e[9], e[10], e[11]]),
                count: u32::from_le_bytes([e[12], e[13], e[14], e[15]]),
            };
            let need = list_blocks(l.count as usize, meta.entry_bytes(), payload);
            if l.first_block != next
                || l.n_blocks as u64 != need
                || l.count as usize > meta.max_list_entries
            {
                return Err(bad(format!(
                    "list {i} at byte {}: {l:?}, expected first block {next}, {need} blocks, \
                     at most {} entries",
                    i * LIST_INFO_BYTES,
                    meta.max_list_entries
                )));
            }
            next += need;
            out.push(l);
        }
        if next > section_blocks {
            return Err(bad(format!(
                "lists need {next} blocks, the postings section has {section_blocks}"
            )));
        }
        Ok(out)
    }
}

/// Where full-precision rows sit in `vectors.qbf` (indices whose lists hold codes): whole rows
/// packed `per_block` to a block, or, for rows longer than a payload, each row starting a block
/// and spanning `blocks_per_row`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowLayout {
    /// Bytes of a row.
    pub row: usize,
    /// Rows per block (0 when a row spans blocks).
    pub per_block: usize,
    /// Blocks a row spans (1 when packed).
    pub blocks_per_row: usize,
}

impl RowLayout {
    /// The layout of `row`-byte rows in blocks of `payload` bytes.
    pub fn new(row: usize, payload: usize) -> RowLayout {
        let per_block = payload / row.max(1);
        RowLayout {
            row,
            per_block,
            blocks_per_row: if per_block > 0 {
                1
            } else {
                row.div_ceil(payload)
            },
        }
    }

    /// Blocks `n` rows take.
    pub fn blocks(&self, n: usize) -> u64 {
        if self.per_block > 0 {
            n.div_ceil(self.per_block) as u64
        } else {
            (n * self.blocks_per_row) as u64
        }
    }

    /// Row `id`'s first block (relative to the section) and block count.
    pub fn blocks_of(&self, id: u32) -> (u64, u32) {
        if self.per_block > 0 {
            (id as u64 / self.per_block as u64, 1)
        } else {
            (
                id as u64 * self.blocks_per_row as u64,
                self.blocks_per_row as u32,
            )
        }
    }

    /// Row `id`'s bytes in `buf`, the blocks [`blocks_of`](Self::blocks_of) names.
    pub fn row_bytes<'a>(
        &self,
        buf: &'a [u8],
        id: u32,
        block_size: usize,
        payload: usize,
    ) -> Result<Cow<'a, [u8]>> {
        if self.per_block > 0 {
            let off = (id as usize % self.per_block) * self.row;
            return buf
                .get(off..off + self.row)
                .map(Cow::Borrowed)
                .ok_or_else(|| {
                    IndexError::InvalidArgument(format!("row read returned {} bytes", buf.len()))
                });
        }
        list_bytes(buf, 1, self.row, block_size, payload)
    }
}

/// Blocks a list of `count` entries of `entry_bytes` spans.
pub fn list_blocks(count: usize, entry_bytes: usize, payload: usize) -> u64 {
    (count * entry_bytes).div_ceil(payload) as u64
}

/// A list's bytes (ids then vectors) from the blocks read for it: the payload of a one-block
/// list is borrowed, longer lists are gathered without their trailers.
pub fn list_bytes<'a>(
    buf: &'a [u8],
    count: usize,
    entry_bytes: usize,
    block_size: usize,
    payload: usize,
) -> Result<Cow<'a, [u8]>> {
    let len = count * entry_bytes;
    let short = || {
        IndexError::InvalidArgument(format!(
            "posting list read returned {} bytes, {len} needed",
            buf.len()
        ))
    };
    if len <= payload {
        return buf.get(..len).map(Cow::Borrowed).ok_or_else(short);
    }
    let mut v = Vec::with_capacity(len);
    for blk in buf.chunks(block_size) {
        let take = (len - v.len()).min(payload);
        v.extend_from_slice(blk.get(..take).ok_or_else(short)?);
        if v.len() == len {
            break;
        }
    }
    if v.len() != len {
        return Err(short());
    }
    Ok(Cow::Owned(v))
}
