//! HNSW (Malkov and Yashunin, TPAMI 2018): a hierarchy of proximity graphs searched from the top
//! level down, held in RAM or served from the page cache through mmap.
//!
//! - **Build** (`graph.rs`): random levels, the neighbor-selection heuristic, M links per new node
//!   and up to M0 = 2M at level 0, ef_construction; parallel insertion with one lock per node.
//! - **Layout** (`layout.rs`, docs/FORMAT.md): one block file; level-0 records (vector and
//!   neighbors together, never straddling a block) in `base`, levels and upper-level lists apart.
//! - **Open**: the upper levels always load into RAM (about n / M nodes); `base` loads into RAM,
//!   or with [`Backend::Mmap`] it is mapped and searched in place, each block checksum-verified
//!   on first touch; reads per query are then the thread's major page faults.
//! - **Search** (`search.rs`): greedy descent, then an ef-bounded best-first search of level 0 with
//!   a visited set and heaps reused between queries; `allow` is honoured (nodes outside it are
//!   traversed, never returned).

mod graph;
pub mod layout;
mod ram;
mod search;
mod sq8;

use crate::build::{finish_index_dir, open_input, prepare_out_dir, BuildInput};
use crate::contract::{
    check_batch, prepare_query, OpenOptions, SearchParams, SearchStats, VectorIndex,
};
use crate::diskann::Layout;
use crate::distance::Element;
use crate::error::{IndexError, Result};
use crate::flat::stored_bytes;
use crate::manifest::Manifest;
use crate::metric::ElementType;
use crate::topk::Neighbor;
pub use graph::{random_level, GraphParams};
use layout::{block_size_for, HnswMeta, BASE_SECTION, LEVELS_SECTION, META_SECTION, UPPER_SECTION};
use quiver_storage::io::{open_reader, thread_major_faults, Backend, MappedSection};
use quiver_storage::{BlockFile, BlockFileWriter};
pub use ram::RamHnsw;
use roaring::RoaringBitmap;
use search::{greedy, search_layer, Cand, Graph, ScratchPool};
use sq8::{CacheLine, Sq8, SqQuery};
use std::path::Path;
use std::time::Instant;

/// The graph file.
pub const GRAPH_FILE: &str = "graph.qbf";
/// Default M.
pub const DEFAULT_M: usize = 16;
/// Default ef_construction.
pub const DEFAULT_EF_CONSTRUCTION: usize = 200;
/// Default ef of a search.
pub const DEFAULT_EF: usize = 64;
/// Largest ef a search accepts.
pub const MAX_EF: usize = 100_000;
/// Rows per chunk when streaming the data file.
const CHUNK_ROWS: usize = 65_536;

/// `quiver build --kind hnsw` parameters.
#[derive(Clone, Copy, Debug)]
pub struct HnswParams {
    /// Neighbors per node (2M at level 0).
    pub m: usize,
    /// Candidate list of the insertion searches.
    pub ef_construction: usize,
    /// Seed of the level draw.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: DEFAULT_M,
            ef_construction: DEFAULT_EF_CONSTRUCTION,
            seed: 42,
        }
    }
}

/// Build phases reported to the progress callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading the data file.
    Load,
    /// Inserting nodes.
    Insert,
    /// Writing the graph file.
    Write,
}

/// Builds an HNSW index from `input` into `out`. `progress(phase, done, total)` reports work.
pub fn build(
    input: &BuildInput,
    params: &HnswParams,
    out: &Path,
    progress: &(dyn Fn(Phase, u64, u64) + Sync),
) -> Result<Manifest> {
    let (mut reader, elem, n, dim) = open_input(input)?;
    if !(2..=layout::MAX_M).contains(&params.m) {
        return Err(IndexError::InvalidArgument(format!(
            "--m {} must be in 2..={}",
            params.m,
            layout::MAX_M
        )));
    }
    if params.ef_construction == 0 || params.ef_construction > MAX_EF {
        return Err(IndexError::InvalidArgument(format!(
            "--ef-construction {} must be in 1..={MAX_EF}",
            params.ef_construction
        )));
    }
    prepare_out_dir(out)?;
    let mut bytes = Vec::with_capacity(n * dim * elem.size());
    while let Some(chunk) = reader.read_chunk(CHUNK_ROWS)? {
        bytes.extend_from_slice(&stored_bytes(input.metric, &chunk)?);
        progress(Phase::Load, reader.position() as u64, n as u64);
    }
    match elem {
        ElementType::F32 => build_typed::<f32>(input, params, out, &bytes, dim, progress),
        ElementType::F16 => build_typed::<half::f16>(input, params, out, &bytes, dim, progress),
        ElementType::I8 => build_typed::<i8>(input, params, out, &bytes, dim, progress),
        ElementType::U8 => build_typed::<u8>(input, params, out, &bytes, dim, progress),
    }
}

fn build_typed<T: Element>(
    input: &BuildInput,
    params: &HnswParams,
    out: &Path,
    bytes: &[u8],
    dim: usize,
    progress: &(dyn Fn(Phase, u64, u64) + Sync),
) -> Result<Manifest> {
    let t0 = Instant::now();
    let data: Vec<T> = bytemuck::pod_collect_to_vec(bytes);
    let n = data.len() / dim;
    let gp = GraphParams {
        m: params.m,
        m0: 2 * params.m,
        ef_construction: params.ef_construction,
        seed: params.seed,
    };
    let g = graph::BuildGraph::new(&data, dim, input.metric, gp);
    g.build(&|d| progress(Phase::Insert, d, n as u64))?;
    let t_graph = t0.elapsed().as_secs_f64();

    let node_len = Layout::new(dim, T::TYPE, gp.m0, usize::MAX / 2)?.node_len;
    let block_size = block_size_for(node_len);
    let mut w = BlockFileWriter::with_block_size(out.join(GRAPH_FILE), "hnsw.graph", block_size)?;
    let layout = Layout::new(dim, T::TYPE, gp.m0, w.payload_bytes())?;
    let (entry, max_level) = g.entry();
    let upper_slots: u64 = g.levels.iter().map(|&l| l as u64).sum();
    let meta = HnswMeta {
        dim,
        element: T::TYPE,
        metric: input.metric,
        n: n as u64,
        m: gp.m,
        m0: gp.m0,
        ef_construction: gp.ef_construction,
        entry,
        max_level,
        layout,
        upper_slots,
    };
    w.write_section(META_SECTION, &meta.encode())?;
    w.begin_section(BASE_SECTION)?;
    let mut rec = vec![0u8; layout.node_len];
    let mut upper: Vec<u8> = Vec::with_capacity(upper_slots as usize * (gp.m + 1) * 4);
    let mut slot = vec![0u32; gp.m + 1];
    let mut degree_sum = 0usize;
    for id in 0..n as u32 {
        let lists = g.lists(id);
        let v = &data[id as usize * dim..(id as usize + 1) * dim];
        let l0 = lists.first().map_or(&[][..], |l| &l[..]);
        degree_sum += l0.len();
        layout.encode_node(bytemuck::cast_slice(v), l0, &mut rec);
        w.write(&rec)?;
        if (id as usize + 1).is_multiple_of(layout.nodes_per_block) {
            w.pad_to_block()?;
        }
        for l in lists.iter().skip(1) {
            slot.fill(0);
            slot[0] = l.len().min(gp.m) as u32;
            for (s, &nb) in slot[1..].iter_mut().zip(l) {
                *s = nb;
            }
            upper.extend_from_slice(bytemuck::cast_slice(&slot));
        }
        if id.is_multiple_of(65_536) {
            progress(Phase::Write, id as u64, n as u64);
        }
    }
    w.pad_to_block()?;
    w.end_section()?;
    w.write_section(LEVELS_SECTION, &g.levels)?;
    w.write_section(UPPER_SECTION, &upper)?;
    w.finish()?;
    progress(Phase::Write, n as u64, n as u64);
    finish_index_dir(
        out,
        input,
        "hnsw",
        T::TYPE,
        dim,
        n,
        serde_json::json!({
            "m": gp.m, "m0": gp.m0, "ef_construction": gp.ef_construction, "seed": params.seed,
            "entry": entry, "max_level": max_level,
            "mean_degree_level0": degree_sum as f64 / n as f64,
            "seconds": {"graph": t_graph, "total": t0.elapsed().as_secs_f64()},
        }),
        vec![GRAPH_FILE.into()],
    )
}

/// Where the level-0 records live.
enum Base {
    /// Loaded and repacked at a stride of whole cache lines (record i at `i * stride`, each
    /// record starting a line, so a 512-byte vector spans 8 lines, not 9), every neighbor list
    /// checked once at load.
    Ram {
        lines: Vec<CacheLine>,
        stride: usize,
    },
    /// Served in place from the page cache.
    Mapped(MappedSection),
}

/// An open HNSW index over stored element type `T`.
pub struct HnswIndex<T: Element> {
    manifest: Manifest,
    meta: HnswMeta,
    base: Base,
    path: std::path::PathBuf,
    /// Per node, its first slot in `upper` (unused for level-0 nodes).
    upper_first: Vec<u32>,
    /// Upper-level slots, `m + 1` words each (count, ids).
    upper: Vec<u32>,
    /// Quantized base layer the search walks (loaded float indices only).
    sq8: Option<Sq8>,
    scratch: ScratchPool,
    _t: std::marker::PhantomData<T>,
}

impl<T: Element> HnswIndex<T> {
    fn open(dir: &Path, manifest: Manifest, opts: &OpenOptions) -> Result<Self> {
        let file = BlockFile::open(dir.join(GRAPH_FILE))?;
        let path = file.path().to_path_buf();
        let reader = open_reader(
            &file,
            match opts.backend {
                Backend::Mmap => Backend::Pread,
                b => b,
            },
        )?;
        let raw = file.read_section(reader.as_ref(), META_SECTION)?;
        let meta = HnswMeta::decode(&path, &raw, file.payload_bytes())?;
        if meta.dim != manifest.dim
            || meta.n != manifest.n as u64
            || meta.element != manifest.element
            || meta.metric != manifest.metric
            || meta.element != T::TYPE
        {
            return Err(IndexError::bad_file(
                &path,
                format!(
                    "graph meta (dim {}, n {}, {} {}) disagrees with the manifest (dim {}, n {}, {} {})",
                    meta.dim, meta.n, meta.element, meta.metric,
                    manifest.dim, manifest.n, manifest.element, manifest.metric
                ),
            ));
        }
        let n = meta.n as usize;
        let levels = file.read_section(reader.as_ref(), LEVELS_SECTION)?;
        if levels.len() != n {
            return Err(IndexError::bad_file(
                &path,
                format!("section levels holds {} bytes for {n} nodes", levels.len()),
            ));
        }
        let mut upper_first = vec![u32::MAX; n];
        let mut slots = 0u64;
        for (i, &l) in levels.iter().enumerate() {
            if l as usize > meta.max_level {
                return Err(IndexError::bad_file(
                    &path,
                    format!(
                        "node {i} has level {l} above the top level {}",
                        meta.max_level
                    ),
                ));
            }
            if l > 0 {
                upper_first[i] = u32::try_from(slots)
                    .map_err(|_| IndexError::bad_file(&path, "more than 2^32 upper-level slots"))?;
                slots += l as u64;
            }
        }
        if slots != meta.upper_slots || levels[meta.entry as usize] as usize != meta.max_level {
            return Err(IndexError::bad_file(
                &path,
                format!(
                    "levels imply {slots} upper slots (meta says {}) or the entry {} is not on \
                     the top level",
                    meta.upper_slots, meta.entry
                ),
            ));
        }
        let upper_raw = file.read_section(reader.as_ref(), UPPER_SECTION)?;
        let want = slots as usize * meta.slot_words() * 4;
        if upper_raw.len() != want {
            return Err(IndexError::bad_file(
                &path,
                format!(
                    "section upper holds {} bytes, levels imply {want}",
                    upper_raw.len()
                ),
            ));
        }
        let upper: Vec<u32> = bytemuck::pod_collect_to_vec(&upper_raw);
        for (s, sl) in upper.chunks_exact(meta.slot_words()).enumerate() {
            let c = sl[0] as usize;
            if c > meta.m || sl[1..=c].iter().any(|&x| x as u64 >= meta.n) {
                return Err(IndexError::bad_file(
                    &path,
                    format!("upper slot {s}: count {c} or a neighbor id out of range"),
                ));
            }
        }
        let blocks_needed = meta.n.div_ceil(meta.layout.nodes_per_block as u64);
        let sec = file.section(BASE_SECTION)?;
        if sec.n_blocks < blocks_needed {
            return Err(IndexError::bad_file(
                &path,
                format!(
                    "section base has {} blocks, {} nodes need {blocks_needed}",
                    sec.n_blocks, meta.n
                ),
            ));
        }
        let base = if opts.backend == Backend::Mmap {
            // SAFETY: index directories are immutable once built (written once by
            // BlockFileWriter::finish, never modified), so the map never changes under us.
            Base::Mapped(unsafe { MappedSection::open(&file, BASE_SECTION)? })
        } else {
            let raw = file.read_section(reader.as_ref(), BASE_SECTION)?;
            let l = &meta.layout;
            let stride = l.node_len.div_ceil(64) * 64;
            let mut lines = vec![CacheLine([0; 64]); n * stride / 64];
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut lines);
            for (id, rec) in bytes.chunks_exact_mut(stride).enumerate() {
                let rec = &mut rec[..l.node_len];
                let s =
                    (id / l.nodes_per_block) * l.payload + (id % l.nodes_per_block) * l.node_len;
                let src = raw.get(s..s + l.node_len).ok_or_else(|| {
                    IndexError::bad_file(&path, format!("node {id}: record outside section base"))
                })?;
                rec.copy_from_slice(src);
                l.neighbors(rec, meta.n, &path, (id as u32, id as u32))?;
            }
            Base::Ram { lines, stride }
        };
        let mut idx = HnswIndex {
            manifest,
            meta,
            base,
            path,
            upper_first,
            upper,
            sq8: None,
            scratch: ScratchPool::new(n),
            _t: std::marker::PhantomData,
        };
        if matches!(idx.base, Base::Ram { .. }) && T::TYPE.is_float() {
            let vb = idx.meta.layout.vec_bytes;
            let row = |i: usize, out: &mut [f32]| {
                if let Ok(r) = idx.record(i as u32) {
                    let v: Vec<T> = bytemuck::pod_collect_to_vec(&r[..vb]);
                    for (o, x) in out.iter_mut().zip(v) {
                        *o = x.to_f32();
                    }
                }
            };
            idx.sq8 = Some(Sq8::build(n, idx.meta.dim, &row));
        }
        Ok(idx)
    }

    /// Node `id`'s level-0 record.
    #[inline]
    fn record(&self, id: u32) -> Result<&[u8]> {
        let l = &self.meta.layout;
        let (block, within): (&[u8], usize) = match &self.base {
            Base::Ram { lines, stride } => (bytemuck::cast_slice(lines), id as usize * stride),
            Base::Mapped(m) => (
                m.block((id as usize / l.nodes_per_block) as u64)?,
                (id as usize % l.nodes_per_block) * l.node_len,
            ),
        };
        block.get(within..within + l.node_len).ok_or_else(|| {
            IndexError::bad_file(
                &self.path,
                format!("node {id}: record outside section base"),
            )
        })
    }

    /// Warms the page cache for a mmap-served index (no-op when loaded).
    pub fn will_need(&self) -> Result<()> {
        if let Base::Mapped(m) = &self.base {
            m.will_need()?;
        }
        Ok(())
    }

    fn search_one(
        &self,
        query: &[f32],
        k: usize,
        params: &SearchParams,
        allow: Option<&RoaringBitmap>,
    ) -> Result<(Vec<Neighbor>, SearchStats)> {
        let q = prepare_query::<T>(&self.manifest, query, k)?;
        let ef = params.ef.unwrap_or(DEFAULT_EF).max(k);
        if ef > MAX_EF {
            return Err(IndexError::InvalidArgument(format!(
                "ef {ef} exceeds {MAX_EF}"
            )));
        }
        let mapped = matches!(self.base, Base::Mapped(_));
        let faults0 = if mapped { thread_major_faults() } else { 0 };
        let metric = self.meta.metric;
        let mut stats = SearchStats::default();
        let mut found = if ef as u64 >= self.meta.n {
            // The search would visit (nearly) every node anyway: scan them all, which also finds
            // the rare node the selection heuristic left without in-edges.
            let mut top = crate::topk::TopK::new(k);
            for id in 0..self.meta.n as u32 {
                if allow.is_none_or(|a| a.contains(id)) {
                    top.push(id, self.exact(&q, id)?);
                    stats.distance_computations += 1;
                }
            }
            stats.rounds = 1;
            top.into_sorted_vec()
        } else {
            let nq = NavQuery {
                sq: self.sq8.as_ref().map(|sq| {
                    let f: Vec<f32> = q.iter().map(|x| x.to_f32()).collect();
                    sq.query(metric, &f)
                }),
                exact: q,
            };
            let mut s = self.scratch.take();
            let mut nbrs = Vec::new();
            let e = self.meta.entry;
            let mut cur = Cand {
                d: self.distance(&nq, e)?,
                id: e,
            };
            stats.distance_computations += 1;
            let mut walk = || -> Result<Vec<Cand>> {
                for l in (1..=self.meta.max_level).rev() {
                    cur = greedy(self, &nq, cur, l, &mut nbrs, &mut stats)?;
                }
                search_layer(self, &nq, &[cur], ef, 0, allow, &mut s, &mut stats)
            };
            let walked = walk();
            self.scratch.put(s);
            let mut walked = walked?;
            if self.sq8.is_some() {
                // Re-rank what the quantized walk kept with the full-precision vectors.
                for c in &walked {
                    if let Ok(r) = self.record(c.id) {
                        crate::simd::prefetch(&r[..self.meta.layout.vec_bytes]);
                    }
                }
                for c in walked.iter_mut() {
                    c.d = self.exact(&nq.exact, c.id)?;
                }
                stats.distance_computations += walked.len() as u64;
                walked.sort_unstable();
            }
            walked
                .into_iter()
                .map(|c| Neighbor {
                    id: c.id,
                    dist: c.d,
                })
                .collect()
        };
        found.truncate(k);
        if mapped {
            stats.reads = thread_major_faults().saturating_sub(faults0);
            stats.read_bytes = stats.reads * 4096;
        }
        Ok((found, stats))
    }

    /// Full-precision distance of node `id` to `q`.
    #[inline]
    fn exact(&self, q: &[T], id: u32) -> Result<f32> {
        let v = &self.record(id)?[..self.meta.layout.vec_bytes];
        Ok(match bytemuck::try_cast_slice::<u8, T>(v) {
            Ok(x) => T::distance(self.meta.metric, q, x),
            Err(_) => T::distance(
                self.meta.metric,
                q,
                &bytemuck::pod_collect_to_vec::<u8, T>(v),
            ),
        })
    }
}

/// A query as the stored graph compares it: the element-typed vector and, when the base layer
/// is quantized, its code-space form.
struct NavQuery<T> {
    exact: Vec<T>,
    sq: Option<SqQuery>,
}

impl<T: Element> Graph for HnswIndex<T> {
    type Query = NavQuery<T>;

    #[inline]
    fn distance(&self, q: &NavQuery<T>, id: u32) -> Result<f32> {
        match (&self.sq8, &q.sq) {
            (Some(sq), Some(qs)) => Ok(sq.distance(qs, id)),
            _ => self.exact(&q.exact, id),
        }
    }

    fn neighbors(&self, id: u32, level: usize, out: &mut Vec<u32>) -> Result<()> {
        out.clear();
        if level == 0 {
            let r = self.record(id)?;
            let l = &self.meta.layout;
            match self.base {
                // Checked once at load.
                Base::Ram { .. } => {
                    let words: &[u32] = bytemuck::try_cast_slice(&r[l.links_at..]).unwrap_or(&[]);
                    if let Some((&d, ids)) = words.split_first() {
                        out.extend_from_slice(&ids[..(d as usize).min(ids.len())]);
                    }
                }
                Base::Mapped(_) => {
                    out.extend_from_slice(l.neighbors(r, self.meta.n, &self.path, (id, id))?);
                }
            }
            return Ok(());
        }
        let first = self
            .upper_first
            .get(id as usize)
            .copied()
            .unwrap_or(u32::MAX);
        if first == u32::MAX {
            return Ok(());
        }
        let w = self.meta.slot_words();
        let s = (first as usize + level - 1) * w;
        if let Some(slot) = self.upper.get(s..s + w) {
            out.extend_from_slice(&slot[1..=slot[0] as usize]);
        }
        Ok(())
    }

    #[inline]
    fn prefetch_links(&self, id: u32) {
        if let Ok(r) = self.record(id) {
            crate::simd::prefetch(&r[self.meta.layout.links_at..]);
        }
    }

    #[inline]
    fn prefetch(&self, id: u32) {
        if let Some(sq) = &self.sq8 {
            crate::simd::prefetch(sq.code(id));
        } else if let Ok(r) = self.record(id) {
            crate::simd::prefetch(&r[..self.meta.layout.vec_bytes]);
        }
    }
}

impl<T: Element> VectorIndex for HnswIndex<T> {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        params: &SearchParams,
        allow: Option<&RoaringBitmap>,
    ) -> Result<(Vec<Neighbor>, SearchStats)> {
        check_batch(self.meta.dim, query)?;
        self.search_one(query, k, params, allow)
    }

    fn default_grid(&self) -> Vec<SearchParams> {
        [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]
            .iter()
            .map(|&ef| SearchParams {
                ef: Some(ef),
                ..Default::default()
            })
            .collect()
    }

    fn memory(&self) -> Vec<(&'static str, u64)> {
        let base = match &self.base {
            Base::Ram { lines, .. } => (lines.len() * 64) as u64,
            Base::Mapped(_) => 0,
        };
        vec![
            ("level0_records", base),
            (
                "upper_levels",
                ((self.upper.len() + self.upper_first.len()) * 4) as u64,
            ),
            ("sq8_codes", self.sq8.as_ref().map_or(0, Sq8::bytes)),
        ]
    }

    fn vectors(&self, ids: &[u32]) -> Result<Vec<f32>> {
        crate::contract::check_ids(ids, self.manifest.n)?;
        let vb = self.meta.layout.vec_bytes;
        let mut out = Vec::with_capacity(ids.len() * self.meta.dim);
        for &id in ids {
            let v: Vec<T> = bytemuck::pod_collect_to_vec(&self.record(id)?[..vb]);
            out.extend(v.into_iter().map(|x| x.to_f32()));
        }
        Ok(out)
    }
}

/// Opens an HNSW index directory whose manifest has been read.
pub fn open(dir: &Path, m: Manifest, opts: &OpenOptions) -> Result<Box<dyn VectorIndex>> {
    crate::contract::open_typed!(HnswIndex::open, dir, m, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_geometric_law() {
        let ml = 1.0 / (16f64).ln();
        let n = 200_000u32;
        let mut count = [0usize; 8];
        for i in 0..n {
            count[random_level(7, i, ml).min(7)] += 1;
        }
        // P(level >= 1) = 1/M, P(level >= 2) = 1/M^2.
        let above1 = (n as usize - count[0]) as f64 / n as f64;
        let above2 = (n as usize - count[0] - count[1]) as f64 / n as f64;
        assert!((above1 - 1.0 / 16.0).abs() < 0.005, "{above1}");
        assert!((above2 - 1.0 / 256.0).abs() < 0.001, "{above2}");
    }
}
