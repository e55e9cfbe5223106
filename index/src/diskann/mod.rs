//! DiskANN: a Vamana graph whose nodes (full-precision vector + neighbor list) live in 4 KiB
//! blocks on disk, navigated with product-quantized codes held in RAM (Subramanya et al.,
//! NeurIPS 2019).
//!
//! - **Navigation space.** The graph and the PQ codes are built on f32 rows under squared L2:
//!   rows as given for L2, normalised for cosine, and for inner product augmented with one extra
//!   coordinate `sqrt(M^2 - |x|^2)` (M = the largest norm) so that L2 order in the augmented space
//!   equals inner-product order (the MIPS-to-L2 reduction; queries get a 0 coordinate and are
//!   scaled to norm M, which keeps the order and puts them on the data's sphere).
//! - **Layout** ([`Layout`]): node `i` = stored vector, degree (u32), R neighbor ids (u32),
//!   padded to 4 bytes; several nodes per block when they fit, otherwise several blocks per node;
//!   the block and offset follow from the id. Blocks carry the storage layer's checksums.
//! - **Search** (`search.rs`): beam search; each round reads the W best unexpanded candidates (by
//!   PQ distance) as one batch, re-ranks with the exact distance of the vectors that arrived with
//!   the nodes. `search_batch` interleaves several queries so one thread keeps W x queries reads
//!   in flight. A hot set of nodes - the ones sample searches at open visit most - is copied
//!   into RAM (node records only, as DiskANN's node cache does); a block cache can sit behind it.

pub mod layout;
pub mod pq;
mod search;
pub mod vamana;

use crate::build::{finish_index_dir, open_input, prepare_out_dir, BuildInput};
use crate::contract::{OpenOptions, SearchParams, SearchStats, VectorIndex};
use crate::dataset::VectorFileReader;
use crate::distance::{normalize, Element};
use crate::error::{IndexError, Result};
use crate::flat::stored_bytes;
use crate::manifest::Manifest;
use crate::metric::Metric;
use crate::topk::Neighbor;
pub use layout::{GraphMeta, Layout, SlotMap};
use pq::Pq;
use quiver_storage::cache::{BlockCache, MaybeCached, MokaBlockCache};
use quiver_storage::io::{open_reader, BlockReader, ReadRequest};
use quiver_storage::{BlockFile, BlockFileWriter, StorageError};
use rayon::prelude::*;
use roaring::RoaringBitmap;
use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// The graph file (meta + nodes).
pub const GRAPH_FILE: &str = "graph.qbf";
/// The PQ file (codebooks + codes), loaded into RAM at open.
pub const PQ_FILE: &str = "pq.qbf";
/// Rows per chunk when streaming the data file.
const CHUNK_ROWS: usize = 65_536;

/// Default maximum degree R.
pub const DEFAULT_MAX_DEGREE: usize = 64;
/// Default build list L.
pub const DEFAULT_BUILD_LIST: usize = 100;
/// Default alpha.
pub const DEFAULT_ALPHA: f32 = 1.2;
/// Default search list L.
pub const DEFAULT_SEARCH_LIST: usize = 100;
/// Default beam width W.
pub const DEFAULT_BEAM_WIDTH: usize = 4;

/// `quiver build --kind diskann` parameters.
#[derive(Clone, Copy, Debug)]
pub struct DiskAnnParams {
    /// Maximum out-degree R.
    pub max_degree: usize,
    /// Build search list L.
    pub build_list: usize,
    /// RobustPrune slack of the second pass.
    pub alpha: f32,
    /// Bytes per PQ code (subspaces); `None` = dim / 4.
    pub pq_bytes: Option<usize>,
    /// Seed (PQ sample, insertion order).
    pub seed: u64,
}

impl Default for DiskAnnParams {
    fn default() -> Self {
        DiskAnnParams {
            max_degree: DEFAULT_MAX_DEGREE,
            build_list: DEFAULT_BUILD_LIST,
            alpha: DEFAULT_ALPHA,
            pq_bytes: None,
            seed: 42,
        }
    }
}

/// Build phases reported to the progress callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading the data file into the navigation space.
    Load,
    /// Training PQ codebooks and encoding every row.
    Pq,
    /// Vamana pass 1 (alpha = 1).
    Pass1,
    /// Vamana pass 2 (alpha as given).
    Pass2,
    /// Writing the node blocks.
    Write,
}

/// Converts rows to the navigation space's first `dim` coordinates (f32; normalised for cosine).
pub(crate) fn nav_prefix(metric: Metric, chunk_f32: &mut [f32], dim: usize) {
    if metric == Metric::Cosine {
        chunk_f32.chunks_exact_mut(dim).for_each(normalize);
    }
}

/// Appends the MIPS augmentation coordinate: rows of `dim` become rows of `dim + 1` with
/// `sqrt(max_norm^2 - |x|^2)`. Returns the new matrix and `max_norm`.
pub(crate) fn augment_ip(rows: &[f32], dim: usize) -> (Vec<f32>, f32) {
    let norms: Vec<f32> = rows
        .chunks_exact(dim)
        .map(|r| r.iter().map(|x| x * x).sum::<f32>())
        .collect();
    let max = norms.iter().copied().fold(0f32, f32::max);
    let mut out = Vec::with_capacity(rows.len() / dim * (dim + 1));
    for (r, &n2) in rows.chunks_exact(dim).zip(&norms) {
        out.extend_from_slice(r);
        out.push((max - n2).max(0.0).sqrt());
    }
    (out, max.sqrt())
}

/// A query in the navigation space: f32, normalised for cosine, and for inner product scaled to
/// norm `ip_max_norm` with a 0 coordinate appended.
pub(crate) fn nav_query(metric: Metric, dim: usize, ip_max_norm: f32, q: &[f32]) -> Vec<f32> {
    let mut v = q.to_vec();
    nav_prefix(metric, &mut v, dim);
    if metric == Metric::Ip {
        // Scaling the query does not change the inner-product order, and at norm M it lies on
        // the sphere every augmented row lies on, where greedy search behaves as it does for a
        // data point instead of for a far-away query.
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            let s = ip_max_norm / norm;
            v.iter_mut().for_each(|x| *x *= s);
        }
        v.push(0.0);
    }
    v
}

/// Builds a DiskANN index from `input` into `out`. `progress(phase, done, total)` reports work.
pub fn build(
    input: &BuildInput,
    params: &DiskAnnParams,
    out: &Path,
    progress: &(dyn Fn(Phase, u64, u64) + Sync),
) -> Result<Manifest> {
    let t0 = Instant::now();
    let (mut reader, elem, n, dim) = open_input(input)?;
    let r = params.max_degree;
    if !(1..=1024).contains(&r) {
        return Err(IndexError::InvalidArgument(format!(
            "--max-degree {r} must be in 1..=1024"
        )));
    }
    if params.build_list == 0 {
        return Err(IndexError::InvalidArgument(
            "--build-list must be at least 1".into(),
        ));
    }
    if !(params.alpha >= 1.0 && params.alpha.is_finite()) {
        return Err(IndexError::InvalidArgument(format!(
            "--alpha {} must be a finite number >= 1",
            params.alpha
        )));
    }
    let nav_dim = if input.metric == Metric::Ip {
        dim + 1
    } else {
        dim
    };
    let pq_bytes = params.pq_bytes.unwrap_or((dim / 4).max(1));
    if pq_bytes == 0 || pq_bytes > nav_dim {
        return Err(IndexError::InvalidArgument(format!(
            "--pq-bytes {pq_bytes} must be in 1..={nav_dim} (one subspace per byte)"
        )));
    }
    prepare_out_dir(out)?;

    // 1. The navigation-space matrix (the only full copy of the data held in RAM).
    let mut nav: Vec<f32> = Vec::with_capacity(n * dim);
    while let Some(chunk) = reader.read_chunk(CHUNK_ROWS)? {
        let mut v = chunk.to_f32();
        nav_prefix(input.metric, &mut v, dim);
        nav.extend_from_slice(&v);
        progress(Phase::Load, reader.position() as u64, n as u64);
    }
    let mut ip_max_norm = 0.0;
    if input.metric == Metric::Ip {
        let (aug, m) = augment_ip(&nav, dim);
        nav = aug;
        ip_max_norm = m;
    }
    let t_load = t0.elapsed().as_secs_f64();

    // 2. PQ.
    progress(Phase::Pq, 0, 2);
    let pq = Pq::train(&nav, nav_dim, pq_bytes, params.seed);
    progress(Phase::Pq, 1, 2);
    let codes = pq.encode_all(&nav);
    progress(Phase::Pq, 2, 2);
    let t_pq = t0.elapsed().as_secs_f64() - t_load;

    // 3. The graph.
    let vp = vamana::VamanaParams {
        max_degree: r,
        build_list: params.build_list,
        alpha: params.alpha,
        seed: params.seed,
    };
    let (adj, medoid) = vamana::build(&nav, nav_dim, &vp, &|pass, done| {
        let ph = if pass == 1 {
            Phase::Pass1
        } else {
            Phase::Pass2
        };
        progress(ph, done, n as u64);
    });
    let t_graph = t0.elapsed().as_secs_f64() - t_load - t_pq;

    // 4. Record order: graph neighbors share blocks when several records fit in one.
    let mut w = BlockFileWriter::create(out.join(GRAPH_FILE), "diskann.graph")?;
    let layout = Layout::new(dim, elem, r, w.payload_bytes())?;
    let order = (layout.nodes_per_block > 1)
        .then(|| layout::pack_order(&nav, nav_dim, &adj, medoid, layout.nodes_per_block));
    drop(nav);

    // 5. Node blocks in slot order; the stored vectors are read again (no more than the
    // navigation matrix just freed).
    let meta = GraphMeta {
        dim,
        element: elem,
        metric: input.metric,
        n: n as u64,
        max_degree: r,
        medoid,
        nav_dim,
        ip_max_norm,
        pq_bytes,
        layout,
    };
    w.write_section(layout::META_SECTION, &meta.encode())?;
    if let Some(o) = &order {
        w.write_section(layout::ORDER_SECTION, bytemuck::cast_slice(o))?;
    }
    let mut stored = Vec::with_capacity(n * layout.vec_bytes);
    let mut reader = VectorFileReader::open(&input.data)?;
    while let Some(chunk) = reader.read_chunk(CHUNK_ROWS)? {
        stored.extend_from_slice(&stored_bytes(input.metric, &chunk)?);
    }
    if stored.len() != n * layout.vec_bytes {
        return Err(IndexError::bad_file(
            &input.data,
            "changed while the index was being built",
        ));
    }
    w.begin_section(layout::NODES_SECTION)?;
    let mut node = vec![0u8; layout.node_len];
    for slot in 0..n {
        let id = order.as_ref().map_or(slot, |o| o[slot] as usize);
        let v = &stored[id * layout.vec_bytes..(id + 1) * layout.vec_bytes];
        layout.encode_node(v, &adj[id], &mut node);
        w.write(&node)?;
        let row = slot + 1;
        if layout.nodes_per_block == 0 || row.is_multiple_of(layout.nodes_per_block) {
            w.pad_to_block()?;
        }
        if row.is_multiple_of(CHUNK_ROWS) || row == n {
            progress(Phase::Write, row as u64, n as u64);
        }
    }
    w.pad_to_block()?;
    w.end_section()?;
    w.finish()?;
    layout::write_pq(&out.join(PQ_FILE), &pq, &codes)?;
    let t_write = t0.elapsed().as_secs_f64() - t_load - t_pq - t_graph;
    let mean_degree = adj.iter().map(Vec::len).sum::<usize>() as f64 / n as f64;
    finish_index_dir(
        out,
        input,
        "diskann",
        elem,
        dim,
        n,
        serde_json::json!({
            "max_degree": r, "build_list": params.build_list, "alpha": params.alpha,
            "pq_bytes": pq_bytes, "seed": params.seed, "medoid": medoid,
            "mean_degree": mean_degree,
            "seconds": {"load": t_load, "pq": t_pq, "graph": t_graph, "write": t_write},
        }),
        vec![GRAPH_FILE.into(), PQ_FILE.into()],
    )
}

/// Node records held in RAM: one arena of `node_len`-byte records and an id -> slot map.
#[derive(Default)]
struct HotNodes {
    node_len: usize,
    slots: std::collections::HashMap<u32, u32>,
    records: Vec<u8>,
}

impl HotNodes {
    fn len(&self) -> usize {
        self.slots.len()
    }

    fn insert(&mut self, id: u32, record: &[u8]) {
        let slot = self.slots.len() as u32;
        if self.slots.insert(id, slot).is_none() {
            self.records.extend_from_slice(&record[..self.node_len]);
        }
    }

    fn get(&self, id: u32) -> Option<&[u8]> {
        let s = *self.slots.get(&id)? as usize * self.node_len;
        self.records.get(s..s + self.node_len)
    }

    /// RAM held: records plus the map (key, value and one control byte per bucket).
    fn bytes(&self) -> u64 {
        (self.records.capacity() + self.slots.capacity() * 9) as u64
    }
}

/// An open DiskANN index over stored element type `T`.
pub struct DiskAnnIndex<T: Element> {
    manifest: Manifest,
    meta: GraphMeta,
    pq: Pq,
    codes: Vec<u8>,
    source: MaybeCached,
    /// Block number of the first node block.
    nodes_first_block: u64,
    block_size: usize,
    /// Which node each record slot holds (None: slot = id).
    order: Option<SlotMap>,
    /// The static hot set: node records held in RAM, searched before any read.
    hot: HotNodes,
    dynamic_cache_bytes: u64,
    /// Per-query search buffers returned by finished batches.
    bufs: std::sync::Mutex<Vec<search::QueryBufs>>,
    _t: std::marker::PhantomData<T>,
}

impl<T: Element> DiskAnnIndex<T> {
    fn open(dir: &Path, manifest: Manifest, opts: &OpenOptions) -> Result<Self> {
        let file = BlockFile::open(dir.join(GRAPH_FILE))?;
        let reader = open_reader(&file, opts.backend)?;
        let raw = file.read_section(reader.as_ref(), layout::META_SECTION)?;
        let meta = GraphMeta::decode(file.path(), &raw, file.payload_bytes())?;
        if meta.dim != manifest.dim
            || meta.n != manifest.n as u64
            || meta.element != manifest.element
            || meta.metric != manifest.metric
        {
            return Err(IndexError::bad_file(
                file.path(),
                format!(
                    "graph meta (dim {}, n {}, {} {}) disagrees with the manifest (dim {}, n {}, {} {})",
                    meta.dim, meta.n, meta.element, meta.metric,
                    manifest.dim, manifest.n, manifest.element, manifest.metric
                ),
            ));
        }
        if meta.element != T::TYPE {
            return Err(IndexError::bad_file(file.path(), "element type mismatch"));
        }
        let nodes = file.section(layout::NODES_SECTION)?;
        let need = meta.layout.blocks_for(meta.n);
        if nodes.n_blocks < need {
            return Err(IndexError::bad_file(
                file.path(),
                format!(
                    "section nodes has {} blocks, {} nodes need {need}",
                    nodes.n_blocks, meta.n
                ),
            ));
        }
        let order = if file
            .sections()
            .iter()
            .any(|s| s.name == layout::ORDER_SECTION)
        {
            let raw = file.read_section(reader.as_ref(), layout::ORDER_SECTION)?;
            let ids: Vec<u32> = bytemuck::pod_collect_to_vec(&raw);
            Some(SlotMap::new(file.path(), ids, meta.n as usize)?)
        } else {
            None
        };
        let (pq, codes) = layout::read_pq(&dir.join(PQ_FILE), meta.n as usize)?;
        if pq.dim != meta.nav_dim {
            return Err(IndexError::bad_file(
                dir.join(PQ_FILE),
                format!(
                    "PQ dimension {} differs from the graph's navigation dimension {}",
                    pq.dim, meta.nav_dim
                ),
            ));
        }
        let mut idx = DiskAnnIndex {
            manifest,
            meta,
            pq,
            codes,
            source: MaybeCached::Plain(reader.clone()),
            nodes_first_block: nodes.first_block,
            block_size: file.block_size(),
            order,
            hot: HotNodes::default(),
            dynamic_cache_bytes: 0,
            bufs: std::sync::Mutex::new(Vec::new()),
            _t: std::marker::PhantomData,
        };
        // Without an explicit hot-node count, half the budget holds the BFS hot set around the
        // medoid and the other half is the dynamic (TinyLFU) block cache.
        let (hot_nodes, dynamic) = match opts.hot_nodes {
            Some(n) => (n, opts.cache_bytes),
            None => (
                usize::try_from(opts.cache_bytes / 2 / idx.meta.layout.node_len as u64)
                    .unwrap_or(usize::MAX),
                opts.cache_bytes / 2,
            ),
        };
        idx.hot = idx.hot_set(dir, hot_nodes)?;
        if dynamic > 0 {
            let cache: Arc<dyn BlockCache> = Arc::new(MokaBlockCache::new(dynamic));
            idx.source = MaybeCached::new(reader, Some(&cache));
            idx.dynamic_cache_bytes = dynamic;
        }
        Ok(idx)
    }

    /// The record slot of node `id`.
    fn slot(&self, id: u32) -> u32 {
        self.order.as_ref().map_or(id, |o| o.slot_of[id as usize])
    }

    /// The node whose record sits at `slot`.
    fn id_at(&self, slot: u32) -> u32 {
        self.order.as_ref().map_or(slot, |o| o.id_at[slot as usize])
    }

    /// Node `id`'s record in `buf`, the blocks [`request`](Self::request) read.
    fn record<'a>(
        &self,
        buf: &'a [u8],
        id: u32,
    ) -> std::result::Result<Cow<'a, [u8]>, StorageError> {
        self.meta
            .layout
            .node_bytes(buf, self.slot(id), self.block_size)
    }

    /// The read that fetches node `id`.
    fn request(&self, id: u32) -> ReadRequest {
        let (first, n) = self.meta.layout.blocks_of(self.slot(id));
        let b = self.nodes_first_block + first;
        ReadRequest::blocks(b, n).unwrap_or(ReadRequest::block(b))
    }

    /// The static hot set: the `max_nodes` nodes that searches visit most
    /// ([`choose_hot`](Self::choose_hot)), their records copied into RAM. The choice is
    /// remembered in `dir/hot-<max_nodes>.qhot` (see [`layout::read_hot_list`]), so only the
    /// first open pays for the sample searches; where the directory is read-only it is
    /// recomputed at every open.
    fn hot_set(&self, dir: &Path, max_nodes: usize) -> Result<HotNodes> {
        let layout = self.meta.layout;
        let n = self.meta.n as usize;
        let max_nodes = max_nodes.min(n);
        let mut hot = HotNodes {
            node_len: layout.node_len,
            ..Default::default()
        };
        if max_nodes == 0 {
            return Ok(hot);
        }
        let path = dir.join(format!("hot-{max_nodes}.qhot"));
        let mut chosen = match layout::read_hot_list(&path, n, max_nodes) {
            Some(c) => c,
            None => {
                let c = self.choose_hot(max_nodes)?;
                if let Err(e) = layout::write_hot_list(&path, n, &c) {
                    log::warn!("hot set not remembered ({e}); the next open samples again");
                }
                c
            }
        };
        // Copy their records.
        chosen.sort_unstable();
        for batch in chosen.chunks(4096) {
            let reqs: Vec<ReadRequest> = batch.iter().map(|&id| self.request(id)).collect();
            self.reader().read_batch(&reqs, &mut |i, buf| {
                let node = self.record(buf, batch[i])?;
                hot.insert(batch[i], &node);
                Ok(())
            })?;
        }
        hot.records.shrink_to_fit();
        hot.slots.shrink_to_fit();
        Ok(hot)
    }

    /// The `max_nodes` (<= n) nodes that searches visit most. Visits are counted over sample
    /// searches - the vectors of evenly spaced nodes as queries, one per 2 hot nodes (at least
    /// 256, at most 50,000), L = 40 - the way DiskANN picks its cache from sample queries; ties
    /// and any remainder follow BFS order from the medoid.
    fn choose_hot(&self, max_nodes: usize) -> Result<Vec<u32>> {
        let n = self.meta.n as usize;
        let layout = self.meta.layout;
        // 1. Sample searches, a chunk at a time (temporaries at open are O(chunk), plus 2 bytes
        // of visit count per node: the allocator tends to keep what open frees, and it would
        // show in the index's RSS).
        let samples = (max_nodes / 2).clamp(256.min(n), 50_000.min(n));
        let dim = self.meta.dim;
        let sp = SearchParams {
            search_list: Some(40),
            beam_width: Some(DEFAULT_BEAM_WIDTH),
            ..Default::default()
        };
        let mut counts = vec![0u16; n];
        let all: Vec<u32> = (0..samples).map(|i| (i * n / samples) as u32).collect();
        for ids in all.chunks(256) {
            let mut queries = vec![0f32; ids.len() * dim];
            let reqs: Vec<ReadRequest> = ids.iter().map(|&id| self.request(id)).collect();
            self.reader().read_batch(&reqs, &mut |i, buf| {
                let node = self.record(buf, ids[i])?;
                let v: Vec<T> = bytemuck::pod_collect_to_vec(&node[..layout.vec_bytes]);
                for (o, x) in queries[i * dim..(i + 1) * dim].iter_mut().zip(v) {
                    *o = x.to_f32();
                }
                Ok(())
            })?;
            let traced = queries
                .par_chunks(dim * 8)
                .map(|qs| search::run_traced(self, qs, 10, &sp, None, true))
                .collect::<Result<Vec<_>>>()?;
            for (_, _, t) in traced.into_iter().flatten() {
                for id in t {
                    let c = &mut counts[id as usize];
                    *c = c.saturating_add(1);
                }
            }
        }
        // 2. BFS order from the medoid ranks ties and fills the rest.
        let bfs = self.bfs_order(max_nodes)?;
        let rank: std::collections::HashMap<u32, u32> = bfs
            .iter()
            .enumerate()
            .map(|(r, &id)| (id, r as u32))
            .collect();
        let mut chosen: Vec<u32> = (0..n as u32).filter(|&i| counts[i as usize] > 0).collect();
        chosen.sort_unstable_by_key(|&i| {
            (
                std::cmp::Reverse(counts[i as usize]),
                rank.get(&i).copied().unwrap_or(u32::MAX),
                i,
            )
        });
        chosen.truncate(max_nodes);
        drop(counts);
        let mut taken: RoaringBitmap = chosen.iter().copied().collect();
        for &id in &bfs {
            if chosen.len() >= max_nodes {
                break;
            }
            if taken.insert(id) {
                chosen.push(id);
            }
        }
        Ok(chosen)
    }

    /// The first `max_nodes` nodes in BFS order from the medoid.
    fn bfs_order(&self, max_nodes: usize) -> Result<Vec<u32>> {
        let layout = self.meta.layout;
        let mut out = Vec::with_capacity(max_nodes);
        let mut seen = RoaringBitmap::new();
        let mut frontier = vec![self.meta.medoid];
        seen.insert(self.meta.medoid);
        let path = self.reader().path().to_path_buf();
        while !frontier.is_empty() && out.len() < max_nodes {
            frontier.truncate(max_nodes - out.len());
            let mut next = Vec::new();
            let reqs: Vec<ReadRequest> = frontier.iter().map(|&id| self.request(id)).collect();
            self.reader().read_batch(&reqs, &mut |i, buf| {
                let id = frontier[i];
                let node = self.record(buf, id)?;
                for &nb in layout.neighbors(&node, self.meta.n, &path, (id, self.slot(id)))? {
                    if seen.insert(nb) {
                        next.push(nb);
                    }
                }
                Ok(())
            })?;
            out.extend_from_slice(&frontier);
            frontier = next;
        }
        Ok(out)
    }

    /// The reader searches go through (the cached one when a cache is configured).
    fn reader(&self) -> &dyn BlockReader {
        self.source.reader()
    }

    /// Nodes held in RAM at open (the static hot set).
    pub fn hot_nodes(&self) -> usize {
        self.hot.len()
    }

    /// The query in the navigation space.
    fn nav_query(&self, q: &[f32]) -> Vec<f32> {
        nav_query(self.meta.metric, self.meta.dim, self.meta.ip_max_norm, q)
    }
}

impl<T: Element> VectorIndex for DiskAnnIndex<T> {
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
        let mut out = self.search_batch(query, k, params, allow)?;
        out.pop()
            .ok_or_else(|| IndexError::InvalidArgument("no query given".into()))
    }

    fn search_batch(
        &self,
        queries: &[f32],
        k: usize,
        params: &SearchParams,
        allow: Option<&RoaringBitmap>,
    ) -> Result<Vec<(Vec<Neighbor>, SearchStats)>> {
        search::run(self, queries, k, params, allow)
    }

    fn interleaves(&self) -> bool {
        true
    }

    fn default_grid(&self) -> Vec<SearchParams> {
        [10, 20, 30, 40, 50, 70, 100, 150, 200, 300]
            .iter()
            .map(|&l| SearchParams {
                search_list: Some(l),
                beam_width: Some(DEFAULT_BEAM_WIDTH),
                ..Default::default()
            })
            .collect()
    }

    fn memory(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("pq_codes", self.codes.len() as u64),
            ("pq_codebooks", self.pq.bytes()),
            ("hot_nodes", self.hot.bytes()),
            ("slot_map", self.order.as_ref().map_or(0, SlotMap::bytes)),
            ("dynamic_cache_budget", self.dynamic_cache_bytes),
        ]
    }

    fn vectors(&self, ids: &[u32]) -> Result<Vec<f32>> {
        crate::contract::check_ids(ids, self.manifest.n)?;
        let (dim, vb) = (self.meta.dim, self.meta.layout.vec_bytes);
        let mut out = vec![0f32; ids.len() * dim];
        for (c, chunk) in ids.chunks(1024).enumerate() {
            let reqs: Vec<ReadRequest> = chunk.iter().map(|&id| self.request(id)).collect();
            self.reader().read_batch(&reqs, &mut |i, buf| {
                let node = self.record(buf, chunk[i])?;
                let v: Vec<T> = bytemuck::pod_collect_to_vec(&node[..vb]);
                let at = (c * 1024 + i) * dim;
                for (o, x) in out[at..at + dim].iter_mut().zip(v) {
                    *o = x.to_f32();
                }
                Ok(())
            })?;
        }
        Ok(out)
    }
}

/// Opens a DiskANN index directory whose manifest has been read.
pub fn open(dir: &Path, m: Manifest, opts: &OpenOptions) -> Result<Box<dyn VectorIndex>> {
    crate::contract::open_typed!(DiskAnnIndex::open, dir, m, opts)
}
