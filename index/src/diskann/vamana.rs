//! Vamana graph construction (Subramanya et al., NeurIPS 2019) on f32 rows under squared L2.
//!
//! Every point is inserted by a greedy search from the medoid with list size L; the nodes the
//! search expanded, plus the point's current neighbors, are pruned with RobustPrune to at most R
//! out-edges; each kept neighbor gets the reverse edge, and is itself pruned once it exceeds
//! `SLACK * R` edges. Two passes over a random order: alpha = 1 (a sparse, well-connected base),
//! then the given alpha (long edges that shorten search paths). Insertions run in parallel, one
//! lock per adjacency list; a final sweep prunes any list still above R.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

/// A list may grow to `SLACK * R` reverse edges before it is pruned (fewer prunes while
/// building; the final sweep restores the bound).
const SLACK: f32 = 1.3;
/// Largest candidate pool RobustPrune considers.
const MAX_POOL: usize = 750;

/// Build knobs.
#[derive(Clone, Copy, Debug)]
pub struct VamanaParams {
    /// Maximum out-degree R.
    pub max_degree: usize,
    /// Build search list size L.
    pub build_list: usize,
    /// Pruning slack alpha of the second pass (>= 1).
    pub alpha: f32,
    /// Seed of the insertion order.
    pub seed: u64,
}

#[inline]
fn l2(a: &[f32], b: &[f32]) -> f32 {
    crate::distance::Element::l2sq(a, b)
}

/// The row closest to the mean of all rows: the search entry point.
pub fn medoid(data: &[f32], dim: usize) -> u32 {
    let n = data.len() / dim;
    let mut mean = vec![0f64; dim];
    for row in data.chunks_exact(dim) {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += x as f64;
        }
    }
    let mean: Vec<f32> = mean.iter().map(|&m| (m / n as f64) as f32).collect();
    data.par_chunks_exact(dim)
        .enumerate()
        .map(|(i, r)| (l2(r, &mean), i as u32))
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
        .map_or(0, |x| x.1)
}

/// Per-thread scratch of the build's greedy search: a generation-stamped visited array (no
/// clearing between searches) and the candidate list.
struct Scratch {
    stamp: Vec<u32>,
    gen: u32,
    cand: Vec<(f32, u32, bool)>,
    expanded: Vec<(f32, u32)>,
    nbrs: Vec<u32>,
}

impl Scratch {
    fn new(n: usize) -> Self {
        Scratch {
            stamp: vec![0; n],
            gen: 0,
            cand: Vec::new(),
            expanded: Vec::new(),
            nbrs: Vec::new(),
        }
    }

    fn next_gen(&mut self) {
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.gen = 1;
        }
    }
}

struct Builder<'a> {
    data: &'a [f32],
    dim: usize,
    /// `cap + 1` words per node: count, then ids. Written only under the node's lock, read
    /// without it (a list being rewritten may be seen half old, half new; every word is a valid
    /// id, which is all the greedy search needs). One flat array: one cache miss per list,
    /// where a `Mutex<Vec>` per node costs three dependent ones.
    adj: Vec<AtomicU32>,
    locks: Vec<Mutex<()>>,
    /// Longest a list may grow before it is pruned (`SLACK * R`).
    cap: usize,
    entry: u32,
    r: usize,
    l: usize,
}

impl Builder<'_> {
    fn row(&self, i: u32) -> &[f32] {
        &self.data[i as usize * self.dim..(i as usize + 1) * self.dim]
    }

    fn neighbors_into(&self, i: u32, out: &mut Vec<u32>) {
        out.clear();
        let w = self.cap + 1;
        let Some(words) = self.adj.get(i as usize * w..(i as usize + 1) * w) else {
            return;
        };
        let c = (words[0].load(Ordering::Acquire) as usize).min(self.cap);
        out.extend(words[1..=c].iter().map(|x| x.load(Ordering::Relaxed)));
    }

    /// Replaces node `i`'s list (the caller holds `locks[i]`): ids first, then the count.
    fn write_list(&self, i: u32, ids: &[u32]) {
        let w = self.cap + 1;
        let Some(words) = self.adj.get(i as usize * w..(i as usize + 1) * w) else {
            return;
        };
        let c = ids.len().min(self.cap);
        for (slot, &x) in words[1..=c].iter().zip(ids) {
            slot.store(x, Ordering::Relaxed);
        }
        words[0].store(c as u32, Ordering::Release);
    }

    fn lock(&self, i: u32) -> std::sync::MutexGuard<'_, ()> {
        self.locks[i as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Greedy search for `q` from the entry point; leaves the expanded nodes in `s.expanded`.
    fn greedy(&self, q: &[f32], s: &mut Scratch) {
        s.next_gen();
        s.cand.clear();
        s.expanded.clear();
        let e = self.entry;
        s.stamp[e as usize] = s.gen;
        s.cand.push((l2(q, self.row(e)), e, false));
        let mut i = 0;
        while i < s.cand.len() {
            if s.cand[i].2 {
                i += 1;
                continue;
            }
            s.cand[i].2 = true;
            let (d, node, _) = s.cand[i];
            s.expanded.push((d, node));
            let mut nbrs = std::mem::take(&mut s.nbrs);
            self.neighbors_into(node, &mut nbrs);
            // Unvisited neighbors only, their rows requested before any distance is computed
            // (the loads overlap instead of stalling one by one).
            nbrs.retain(|&nb| {
                let fresh = s.stamp[nb as usize] != s.gen;
                s.stamp[nb as usize] = s.gen;
                fresh
            });
            for &nb in &nbrs {
                crate::simd::prefetch(bytemuck::cast_slice(self.row(nb)));
            }
            let mut lowest = usize::MAX;
            for &nb in &nbrs {
                let dn = l2(q, self.row(nb));
                if s.cand.len() >= self.l && dn >= s.cand[s.cand.len() - 1].0 {
                    continue;
                }
                let pos = s.cand.partition_point(|c| c.0 < dn);
                s.cand.insert(pos, (dn, nb, false));
                s.cand.truncate(self.l);
                lowest = lowest.min(pos);
            }
            s.nbrs = nbrs;
            i = if lowest <= i { lowest } else { i + 1 };
        }
    }

    /// RobustPrune of `p` over `pool` (distances to `p`): at most R ids, increasing alpha from 1
    /// to `alpha` in steps of 1.2x so the list fills up before long edges are admitted.
    fn prune(&self, p: u32, pool: &mut Vec<(f32, u32)>, alpha: f32, out: &mut Vec<u32>) {
        pool.retain(|c| c.1 != p);
        pool.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        pool.dedup_by_key(|c| c.1);
        pool.truncate(MAX_POOL);
        for c in pool.iter() {
            crate::simd::prefetch(bytemuck::cast_slice(self.row(c.1)));
        }
        out.clear();
        let mut occlude = vec![0f32; pool.len()];
        // Exact duplicates (distance 0) would occlude each other after the first pick and become
        // unreachable; keep up to DUP_CAP of them, but no more, so a large group of duplicates
        // cannot use up every edge and become an island.
        let dup_cap = (self.r / 4).max(2);
        let mut dups_kept = 0usize;
        let mut cur = 1.0f32;
        loop {
            for i in 0..pool.len() {
                if out.len() >= self.r {
                    break;
                }
                if occlude[i] > cur {
                    continue;
                }
                occlude[i] = f32::MAX;
                let chosen = pool[i].1;
                out.push(chosen);
                if pool[i].0 <= 0.0 {
                    dups_kept += 1;
                }
                let crow = self.row(chosen);
                for j in i + 1..pool.len() {
                    if occlude[j] > alpha {
                        continue;
                    }
                    let djk = l2(crow, self.row(pool[j].1));
                    let f = if djk <= 0.0 {
                        if pool[j].0 <= 0.0 && dups_kept < dup_cap {
                            0.0
                        } else {
                            f32::MAX
                        }
                    } else {
                        pool[j].0 / djk
                    };
                    occlude[j] = occlude[j].max(f);
                }
            }
            if cur >= alpha || out.len() >= self.r {
                break;
            }
            cur = (cur * 1.2).min(alpha);
        }
    }

    fn insert(&self, p: u32, alpha: f32, s: &mut Scratch) {
        let q = self.row(p);
        self.greedy(q, s);
        let mut pool = std::mem::take(&mut s.expanded);
        let mut cur = Vec::new();
        self.neighbors_into(p, &mut cur);
        for &c in &cur {
            pool.push((l2(q, self.row(c)), c));
        }
        let mut kept = Vec::with_capacity(self.r);
        self.prune(p, &mut pool, alpha, &mut kept);
        {
            let _g = self.lock(p);
            self.write_list(p, &kept);
        }
        let mut list = Vec::with_capacity(self.cap + 1);
        for &j in &kept {
            let _g = self.lock(j);
            self.neighbors_into(j, &mut list);
            if list.contains(&p) {
                continue;
            }
            if list.len() < self.cap {
                list.push(p);
                self.write_list(j, &list);
                continue;
            }
            let jr = self.row(j);
            pool.clear();
            pool.extend(list.iter().map(|&c| (l2(jr, self.row(c)), c)));
            pool.push((l2(jr, q), p));
            let mut out = Vec::with_capacity(self.r);
            self.prune(j, &mut pool, alpha, &mut out);
            self.write_list(j, &out);
        }
        s.expanded = pool;
    }
}

/// Builds the graph over the `n x dim` rows of `data`. `progress(pass, done)` is called now and
/// then with the pass (1 or 2) and the points inserted in it. Returns the adjacency lists (each at
/// most `max_degree`) and the medoid.
pub fn build(
    data: &[f32],
    dim: usize,
    p: &VamanaParams,
    progress: &(dyn Fn(usize, u64) + Sync),
) -> (Vec<Vec<u32>>, u32) {
    let n = data.len() / dim;
    let entry = medoid(data, dim);
    let r = p.max_degree.max(1);
    let cap = ((r as f32 * SLACK) as usize).max(r);
    let b = Builder {
        data,
        dim,
        adj: (0..n * (cap + 1)).map(|_| AtomicU32::new(0)).collect(),
        locks: (0..n).map(|_| Mutex::new(())).collect(),
        cap,
        entry,
        r,
        l: p.build_list.max(p.max_degree).max(1),
    };
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(p.seed));
    let scratch: Mutex<Vec<Scratch>> = Mutex::new(Vec::new());
    for (pass, alpha) in [(1usize, 1.0f32), (2, p.alpha.max(1.0))] {
        let done = AtomicU64::new(0);
        order.par_chunks(256).for_each(|chunk| {
            // One scratch per worker at a time, reused across chunks (its visited array is n
            // entries, too big to allocate per chunk).
            let mut s = scratch
                .lock()
                .ok()
                .and_then(|mut v| v.pop())
                .unwrap_or_else(|| Scratch::new(n));
            for &i in chunk {
                b.insert(i, alpha, &mut s);
            }
            if let Ok(mut v) = scratch.lock() {
                v.push(s);
            }
            let d = done.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            progress(pass, d + chunk.len() as u64);
        });
    }
    // Lists above R (reverse edges added after their owner's last prune) are pruned now.
    let alpha = p.alpha.max(1.0);
    let adj: Vec<Vec<u32>> = (0..n as u32)
        .into_par_iter()
        .map_init(Vec::new, |pool, i| {
            let mut g = Vec::with_capacity(b.cap);
            b.neighbors_into(i, &mut g);
            if g.len() <= b.r {
                return g;
            }
            let row = b.row(i);
            pool.clear();
            pool.extend(g.iter().map(|&c| (l2(row, b.row(c)), c)));
            let mut out = Vec::with_capacity(b.r);
            b.prune(i, pool, alpha, &mut out);
            out
        })
        .collect();
    (adj, entry)
}
