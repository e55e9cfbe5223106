//! HNSW construction (Malkov and Yashunin, TPAMI 2018, Algorithms 1 and 4): every node gets a
//! random level `floor(-ln(u) / ln(M))`; it is inserted by a greedy descent from the entry point
//! to its level, then, level by level, an ef_construction search whose result is cut to M
//! neighbors by the selection heuristic (a candidate is kept only if it is closer to the new node
//! than to every neighbor kept so far, which keeps edges in diverse directions). Each kept
//! neighbor gets the reverse edge; a list over its cap (M0 = 2M at level 0, M above) is cut back
//! with the same heuristic. Insertions run in parallel, one lock per node's lists.

use super::search::{greedy, search_layer, Cand, Graph, ScratchPool};
use crate::contract::SearchStats;
use crate::distance::Element;
use crate::error::Result;
use crate::metric::Metric;
use rayon::prelude::*;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

/// Highest level a node may get (a level above this is clamped).
pub const MAX_LEVEL: usize = 31;

/// Build knobs.
#[derive(Clone, Copy, Debug)]
pub struct GraphParams {
    /// Neighbors per node above level 0 (and per new node at every level).
    pub m: usize,
    /// Neighbors per node at level 0.
    pub m0: usize,
    /// Candidate list of the insertion searches.
    pub ef_construction: usize,
    /// Seed of the level draw.
    pub seed: u64,
}

/// The level of node `id`: `floor(-ln(u) * ml)`, u uniform in (0, 1] from a hash of seed and id
/// (deterministic, independent of insertion order).
pub fn random_level(seed: u64, id: u32, ml: f64) -> usize {
    let mut z = seed ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let u = ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    ((-u.ln() * ml).floor() as usize).min(MAX_LEVEL)
}

/// The graph under construction over rows held in RAM.
pub struct BuildGraph<'a, T: Element> {
    data: &'a [T],
    dim: usize,
    metric: Metric,
    p: GraphParams,
    /// Level of each node.
    pub levels: Vec<u8>,
    /// Level-0 lists, `m0 + 1` words per node: count, then ids. Written only under the node's
    /// lock; read without it (a list being rewritten can be seen half old, half new, but every
    /// word is a valid id, which is all a search needs).
    links0: Vec<AtomicU32>,
    /// Per node: serializes writers of its lists.
    locks: Vec<Mutex<()>>,
    /// `upper[id][level - 1]`: the lists of levels 1..=level (empty for level-0 nodes).
    upper: Vec<Mutex<Vec<Vec<u32>>>>,
    /// (entry point, its level).
    entry: RwLock<(u32, usize)>,
    /// Held by an insertion that raises the top level.
    top: Mutex<()>,
    scratch: ScratchPool,
}

impl<T: Element> Graph for BuildGraph<'_, T> {
    type Query = [T];

    #[inline]
    fn distance(&self, q: &[T], id: u32) -> Result<f32> {
        Ok(T::distance(self.metric, q, self.row(id)))
    }

    #[inline]
    fn prefetch(&self, id: u32) {
        crate::simd::prefetch(bytemuck::cast_slice(self.row(id)));
    }

    fn neighbors(&self, id: u32, level: usize, out: &mut Vec<u32>) -> Result<()> {
        out.clear();
        if level == 0 {
            self.read0(id, out);
        } else if let Some(l) = self.upper.get(id as usize) {
            let l = l.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(v) = l.get(level - 1) {
                out.extend_from_slice(v);
            }
        }
        Ok(())
    }
}

impl<'a, T: Element> BuildGraph<'a, T> {
    /// An empty graph over `data` (n rows of `dim`); levels are drawn here.
    pub fn new(data: &'a [T], dim: usize, metric: Metric, p: GraphParams) -> Self {
        let n = data.len() / dim;
        let ml = 1.0 / (p.m.max(2) as f64).ln();
        let levels: Vec<u8> = (0..n as u32)
            .map(|i| random_level(p.seed, i, ml) as u8)
            .collect();
        let upper = levels
            .iter()
            .map(|&l| Mutex::new((0..l as usize).map(|_| Vec::with_capacity(p.m)).collect()))
            .collect();
        BuildGraph {
            data,
            dim,
            metric,
            p,
            entry: RwLock::new((0, levels.first().copied().unwrap_or(0) as usize)),
            levels,
            links0: (0..n * (p.m0 + 1)).map(|_| AtomicU32::new(0)).collect(),
            locks: (0..n).map(|_| Mutex::new(())).collect(),
            upper,
            top: Mutex::new(()),
            scratch: ScratchPool::new(n),
        }
    }

    fn row(&self, id: u32) -> &[T] {
        let s = id as usize * self.dim;
        &self.data[s..s + self.dim]
    }

    fn dist(&self, a: u32, b: u32) -> f32 {
        T::distance(self.metric, self.row(a), self.row(b))
    }

    /// Inserts nodes 1..n in parallel (node 0 is the first entry point); `progress(done)`.
    pub fn build(&self, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
        let n = self.levels.len() as u32;
        let done = AtomicU64::new(1);
        (1..n)
            .into_par_iter()
            .with_min_len(64)
            .try_for_each(|id| -> Result<()> {
                self.insert(id)?;
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d.is_multiple_of(4096) {
                    progress(d);
                }
                Ok(())
            })?;
        progress(n as u64);
        Ok(())
    }

    fn insert(&self, id: u32) -> Result<()> {
        let level = self.levels[id as usize] as usize;
        let mut raise = None;
        if level > self.entry_point().1 {
            raise = Some(self.top.lock().unwrap_or_else(|e| e.into_inner()));
        }
        let (ep, top) = self.entry_point();
        let q = self.row(id);
        let mut stats = SearchStats::default();
        let mut s = self.scratch.take();
        let mut nbrs = Vec::new();
        let mut cur = Cand {
            d: T::distance(self.metric, q, self.row(ep)),
            id: ep,
        };
        for l in (level + 1..=top).rev() {
            cur = greedy(self, q, cur, l, &mut nbrs, &mut stats)?;
        }
        let mut entries = vec![cur];
        for l in (0..=level.min(top)).rev() {
            s.reset();
            let w = search_layer(
                self,
                q,
                &entries,
                self.p.ef_construction,
                l,
                None,
                &mut s,
                &mut stats,
            )?;
            let chosen = self.select(w.iter().filter(|c| c.id != id).copied().collect(), self.p.m);
            let ids: Vec<u32> = chosen.iter().map(|c| c.id).collect();
            if l == 0 {
                let _g = self.locks[id as usize]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                self.write0(id, &ids);
            } else {
                let mut mine = self.upper[id as usize]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if let Some(list) = mine.get_mut(l - 1) {
                    *list = ids;
                }
            }
            for c in &chosen {
                self.connect(c.id, id, c.d, l);
            }
            entries = w;
        }
        self.scratch.put(s);
        if level > top {
            if let Ok(mut e) = self.entry.write() {
                if level > e.1 {
                    *e = (id, level);
                }
            }
        }
        drop(raise);
        Ok(())
    }

    fn entry_point(&self) -> (u32, usize) {
        *self.entry.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The selection heuristic over `cands` (any order): closest first, a candidate is kept if
    /// no kept neighbor is closer to it than the base node is; at most `m`.
    fn select(&self, mut cands: Vec<Cand>, m: usize) -> Vec<Cand> {
        cands.sort_unstable();
        if cands.len() <= m {
            return cands;
        }
        let mut out: Vec<Cand> = Vec::with_capacity(m);
        for c in cands {
            if out.len() >= m {
                break;
            }
            if out.iter().all(|r| self.dist(c.id, r.id) >= c.d) {
                out.push(c);
            }
        }
        out
    }

    /// Adds the edge `from -> to` (distance `d`) at `level`, re-selecting when over the cap.
    fn connect(&self, from: u32, to: u32, d: f32, level: usize) {
        let reselect = |list: &[u32], cap: usize| -> Vec<u32> {
            let cands: Vec<Cand> = list
                .iter()
                .map(|&x| Cand {
                    d: self.dist(from, x),
                    id: x,
                })
                .chain(std::iter::once(Cand { d, id: to }))
                .collect();
            self.select(cands, cap).iter().map(|c| c.id).collect()
        };
        if level == 0 {
            let _g = self.locks[from as usize]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let mut list = Vec::with_capacity(self.p.m0);
            self.read0(from, &mut list);
            if list.contains(&to) {
                return;
            }
            if list.len() < self.p.m0 {
                list.push(to);
                self.write0(from, &list);
            } else {
                let kept = reselect(&list, self.p.m0);
                self.write0(from, &kept);
            }
            return;
        }
        let mut lists = self.upper[from as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some(list) = lists.get_mut(level - 1) else {
            return;
        };
        if list.contains(&to) {
            return;
        }
        if list.len() < self.p.m {
            list.push(to);
        } else {
            *list = reselect(list, self.p.m);
        }
    }

    /// Node `id`'s level-0 list into `out` (appended).
    fn read0(&self, id: u32, out: &mut Vec<u32>) {
        let w = self.p.m0 + 1;
        let Some(words) = self.links0.get(id as usize * w..(id as usize + 1) * w) else {
            return;
        };
        let c = (words[0].load(Ordering::Acquire) as usize).min(self.p.m0);
        out.extend(words[1..=c].iter().map(|x| x.load(Ordering::Relaxed)));
    }

    /// Replaces node `id`'s level-0 list (caller holds the node's lock): ids first, then the
    /// count, so a concurrent reader never sees a count beyond written ids of this list.
    fn write0(&self, id: u32, ids: &[u32]) {
        let w = self.p.m0 + 1;
        let Some(words) = self.links0.get(id as usize * w..(id as usize + 1) * w) else {
            return;
        };
        let c = ids.len().min(self.p.m0);
        for (slot, &x) in words[1..=c].iter().zip(ids) {
            slot.store(x, Ordering::Relaxed);
        }
        words[0].store(c as u32, Ordering::Release);
    }

    /// The entry point and top level after the build.
    pub fn entry(&self) -> (u32, usize) {
        self.entry_point()
    }

    /// Neighbor lists of `id`, level 0 first.
    pub fn lists(&self, id: u32) -> Vec<Vec<u32>> {
        let mut l0 = Vec::new();
        self.read0(id, &mut l0);
        let mut out = vec![l0];
        out.extend(
            self.upper[id as usize]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
        out
    }
}
