//! [`RamHnsw`]: a small HNSW over f32 rows under squared L2, owned and held in RAM - the router
//! in front of a clustering index's centroids. It is built with the same construction as the
//! HNSW index ([`graph::BuildGraph`](super::graph::BuildGraph)) and stored as a flat link array
//! that [`encode`](RamHnsw::encode) and [`decode`](RamHnsw::decode) write into the owner's file.
//!
//! A loaded router may hold its rows as 8-bit codes ([`decode_quantized`](RamHnsw::decode_quantized)): a
//! quarter of the RAM, which for SPANN is most of the index's RAM. Each component is `lo_d +
//! step_d * code` with a per-dimension offset and step (transformer embeddings have a few
//! dimensions far wider than the rest, which one shared step would flatten), and distances are
//! squared L2 from the f32 query to the vector the code stands for.

use super::graph::{BuildGraph, GraphParams};
use super::search::{greedy, search_layer, Cand, Graph, ScratchPool};
use crate::contract::SearchStats;
use crate::distance::Element;
use crate::error::{IndexError, Result};
use crate::metric::Metric;
use std::borrow::Cow;
use std::path::Path;

/// The rows: as built, or as 8-bit codes.
enum Rows {
    F32(Vec<f32>),
    /// Row r, dimension d is `lo[d] + step[d] * codes[r * dim + d]`.
    Sq8 {
        lo: Vec<f32>,
        step: Vec<f32>,
        codes: Vec<u8>,
    },
}

/// Squared L2 from `q` (already less the offsets `lo`) to the row `code` stands for.
#[inline]
fn sq8_l2(q: &[f32], step: &[f32], code: &[u8]) -> f32 {
    // Eight lanes so the compiler vectorises the f32 reduction.
    let mut acc = [0f32; 8];
    let (qc, sc, cc) = (
        q.chunks_exact(8),
        step.chunks_exact(8),
        code.chunks_exact(8),
    );
    let tail: f32 = qc
        .remainder()
        .iter()
        .zip(sc.remainder())
        .zip(cc.remainder())
        .map(|((&a, &s), &c)| (a - s * c as f32).powi(2))
        .sum();
    for ((a, s), c) in qc.zip(sc).zip(cc) {
        for i in 0..8 {
            let d = a[i] - s[i] * c[i] as f32;
            acc[i] += d * d;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// 8-bit codes of the `dim`-wide rows of `data`, each dimension's range in 255 steps.
fn quantize(data: &[f32], dim: usize) -> Rows {
    let (mut lo, mut hi) = (vec![f32::INFINITY; dim], vec![f32::NEG_INFINITY; dim]);
    for r in data.chunks_exact(dim) {
        for ((l, h), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(r) {
            *l = l.min(x);
            *h = h.max(x);
        }
    }
    let step: Vec<f32> = lo
        .iter()
        .zip(&hi)
        .map(|(&l, &h)| {
            let s = (h - l) / 255.0;
            if s > 0.0 && s.is_finite() {
                s
            } else {
                1.0
            }
        })
        .collect();
    lo.iter_mut()
        .filter(|l| !l.is_finite())
        .for_each(|l| *l = 0.0);
    let codes: Vec<u8> = data
        .chunks_exact(dim)
        .flat_map(|r| {
            r.iter()
                .zip(&lo)
                .zip(&step)
                .map(|((&x, &l), &s)| ((x - l) / s).round().clamp(0.0, 255.0) as u8)
        })
        .collect();
    Rows::Sq8 { lo, step, codes }
}

/// An HNSW graph over rows it owns.
pub struct RamHnsw {
    rows: Rows,
    dim: usize,
    /// Per node: where its lists start in `links` (n + 1 entries).
    offsets: Vec<u32>,
    /// Per node: for each level 0..=top, a count then that many ids.
    links: Vec<u32>,
    /// Level of each node.
    levels: Vec<u8>,
    entry: (u32, usize),
    scratch: ScratchPool,
}

impl Graph for RamHnsw {
    type Query = [f32];

    /// `q` is the query as [`search`](RamHnsw::search) prepared it (less `lo` for codes).
    #[inline]
    fn distance(&self, q: &[f32], id: u32) -> Result<f32> {
        let s = id as usize * self.dim;
        Ok(match &self.rows {
            Rows::F32(d) => f32::l2sq(q, &d[s..s + self.dim]),
            Rows::Sq8 { step, codes, .. } => sq8_l2(q, step, &codes[s..s + self.dim]),
        })
    }

    #[inline]
    fn prefetch(&self, id: u32) {
        let s = id as usize * self.dim;
        match &self.rows {
            Rows::F32(d) => crate::simd::prefetch(bytemuck::cast_slice(&d[s..s + self.dim])),
            Rows::Sq8 { codes, .. } => crate::simd::prefetch(&codes[s..s + self.dim]),
        }
    }

    fn neighbors(&self, id: u32, level: usize, out: &mut Vec<u32>) -> Result<()> {
        out.clear();
        let mut at = self.offsets[id as usize] as usize;
        for l in 0..=self.levels[id as usize] as usize {
            let c = self.links[at] as usize;
            if l == level {
                out.extend_from_slice(&self.links[at + 1..at + 1 + c]);
                break;
            }
            at += 1 + c;
        }
        Ok(())
    }
}

impl RamHnsw {
    /// Builds the graph over the `dim`-wide rows of `data` (M = `m`, 2M at level 0).
    pub fn build(data: Vec<f32>, dim: usize, m: usize, ef_construction: usize, seed: u64) -> Self {
        let n = data.len() / dim;
        let p = GraphParams {
            m,
            m0: 2 * m,
            ef_construction,
            seed,
        };
        let (levels, offsets, links, entry) = {
            let g = BuildGraph::new(&data, dim, Metric::L2, p);
            // A failed insertion only leaves a node with fewer links; the build reports none.
            if let Err(e) = g.build(&|_| {}) {
                log::warn!("router graph build: {e}");
            }
            let mut offsets = Vec::with_capacity(n + 1);
            let mut links = Vec::new();
            for id in 0..n as u32 {
                offsets.push(links.len() as u32);
                for list in g.lists(id) {
                    links.push(list.len() as u32);
                    links.extend_from_slice(&list);
                }
            }
            offsets.push(links.len() as u32);
            (g.levels.clone(), offsets, links, g.entry())
        };
        RamHnsw {
            scratch: ScratchPool::new(n),
            rows: Rows::F32(data),
            dim,
            offsets,
            links,
            levels,
            entry,
        }
    }

    /// The rows, `dim` floats each; `None` for a graph over codes
    /// ([`decode_quantized`](Self::decode_quantized)).
    pub fn data(&self) -> Option<&[f32]> {
        match &self.rows {
            Rows::F32(d) => Some(d),
            Rows::Sq8 { .. } => None,
        }
    }

    /// `q` as [`Graph::distance`] takes it (as given for f32 rows).
    fn prepare<'q>(&self, q: &'q [f32]) -> Cow<'q, [f32]> {
        match &self.rows {
            Rows::F32(_) => Cow::Borrowed(q),
            Rows::Sq8 { lo, .. } => Cow::Owned(q.iter().zip(lo).map(|(&x, &l)| x - l).collect()),
        }
    }

    /// Squared L2 from `q` to every row, in id order.
    pub fn distances_to_all(&self, q: &[f32]) -> Vec<f32> {
        let q = self.prepare(q);
        (0..self.len() as u32)
            .map(|id| self.distance(&q, id).unwrap_or(f32::INFINITY))
            .collect()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// The `k` nodes nearest to `q` (squared L2, closest first) from an `ef`-wide search.
    pub fn search(
        &self,
        q: &[f32],
        k: usize,
        ef: usize,
        stats: &mut SearchStats,
    ) -> Vec<(u32, f32)> {
        if self.is_empty() {
            return Vec::new();
        }
        let (ep, top) = self.entry;
        let q = &*self.prepare(q);
        let mut nbrs = Vec::new();
        let mut s = self.scratch.take();
        let res = (|| -> Result<Vec<Cand>> {
            let mut cur = Cand {
                d: self.distance(q, ep)?,
                id: ep,
            };
            for l in (1..=top).rev() {
                cur = greedy(self, q, cur, l, &mut nbrs, stats)?;
            }
            search_layer(self, q, &[cur], ef.max(k), 0, None, &mut s, stats)
        })();
        self.scratch.put(s);
        // The in-RAM graph's distance never fails.
        let mut out: Vec<(u32, f32)> = res
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.id, c.d))
            .collect();
        out.truncate(k);
        out
    }

    /// RAM held: rows, links, offsets, levels and the visited marks of one search.
    pub fn bytes(&self) -> u64 {
        let rows = match &self.rows {
            Rows::F32(d) => d.len() * 4,
            Rows::Sq8 { lo, step, codes } => codes.len() + 4 * (lo.len() + step.len()),
        };
        (rows + self.links.len() * 4 + self.offsets.len() * 4 + self.levels.len() * 3) as u64
    }

    /// The graph without its rows: entry (u32), top level (u32), n (u32), levels (n bytes padded
    /// to 4), offsets (n + 1 u32), links (u32).
    pub fn encode(&self) -> Vec<u8> {
        let n = self.levels.len();
        let mut out =
            Vec::with_capacity(12 + n.next_multiple_of(4) + 4 * (n + 1 + self.links.len()));
        out.extend_from_slice(&self.entry.0.to_le_bytes());
        out.extend_from_slice(&(self.entry.1 as u32).to_le_bytes());
        out.extend_from_slice(&(n as u32).to_le_bytes());
        out.extend_from_slice(&self.levels);
        out.resize(12 + n.next_multiple_of(4), 0);
        out.extend_from_slice(bytemuck::cast_slice(&self.offsets));
        out.extend_from_slice(bytemuck::cast_slice(&self.links));
        out
    }

    /// Reads what [`encode`](Self::encode) wrote, over `data` (rows of `dim`), checking every
    /// count, offset and id against the sizes (`path` names the file in errors).
    pub fn decode(path: &Path, b: &[u8], data: Vec<f32>, dim: usize) -> Result<Self> {
        let n = data.len() / dim;
        Self::decode_links(path, b, n, dim, Rows::F32(data))
    }

    /// As [`decode`](Self::decode), holding 8-bit codes of `data` and not `data` itself, which
    /// the caller can free: a quarter of the rows' RAM, for distances off by up to half a step
    /// per component.
    pub fn decode_quantized(path: &Path, b: &[u8], data: &[f32], dim: usize) -> Result<Self> {
        Self::decode_links(path, b, data.len() / dim, dim, quantize(data, dim))
    }

    fn decode_links(path: &Path, b: &[u8], n: usize, dim: usize, rows: Rows) -> Result<Self> {
        let bad = |what: String| IndexError::bad_file(path, format!("router graph: {what}"));
        let word = |at: usize| -> Result<u32> {
            b.get(at..at + 4)
                .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                .ok_or_else(|| bad(format!("truncated at byte {at} of {}", b.len())))
        };
        let (ep, top, count) = (word(0)?, word(4)? as usize, word(8)? as usize);
        if count != n || (n > 0 && ep as usize >= n) {
            return Err(bad(format!("{count} nodes (entry {ep}) for {n} centroids")));
        }
        let lv_end = 12 + n.next_multiple_of(4);
        let levels = b
            .get(12..12 + n)
            .ok_or_else(|| bad("levels truncated".into()))?
            .to_vec();
        let rest = b
            .get(lv_end..)
            .ok_or_else(|| bad("offsets truncated".into()))?;
        if rest.len() < 4 * (n + 1) || rest.len() % 4 != 0 {
            return Err(bad(format!("{} bytes of offsets and links", rest.len())));
        }
        let words: Vec<u32> = bytemuck::pod_collect_to_vec(rest);
        let (offsets, links) = (words[..n + 1].to_vec(), words[n + 1..].to_vec());
        // Walk every node's lists: counts in bounds, ids below n, lists ending at the next offset.
        for id in 0..n {
            let mut at = offsets[id] as usize;
            let lv = levels[id] as usize;
            if lv > super::graph::MAX_LEVEL || (id as u32 == ep && lv != top) {
                return Err(bad(format!("node {id} has level {lv}")));
            }
            for _ in 0..=lv {
                let c = *links
                    .get(at)
                    .ok_or_else(|| bad(format!("node {id}: lists run past the end")))?
                    as usize;
                let ids = links
                    .get(at + 1..at + 1 + c)
                    .ok_or_else(|| bad(format!("node {id}: list of {c} runs past the end")))?;
                if let Some(x) = ids.iter().find(|&&x| x as usize >= n) {
                    return Err(bad(format!("node {id} links to {x} (n = {n})")));
                }
                at += 1 + c;
            }
            if at != offsets[id + 1] as usize {
                return Err(bad(format!(
                    "node {id}: lists end at {at}, next starts at {}",
                    offsets[id + 1]
                )));
            }
        }
        if offsets[n] as usize != links.len() {
            return Err(bad(format!(
                "{} link words, offsets say {}",
                links.len(),
                offsets[n]
            )));
        }
        Ok(RamHnsw {
            scratch: ScratchPool::new(n),
            rows,
            dim,
            offsets,
            links,
            levels,
            entry: (ep, top),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nearest_and_round_trips() {
        let dim = 8;
        let n = 2000;
        let data: Vec<f32> = (0..n * dim)
            .map(|i| ((i * 7919) % 1013) as f32 / 101.0)
            .collect();
        let g = RamHnsw::build(data.clone(), dim, 8, 64, 1);
        let mut hits = 0;
        for qi in (0..n).step_by(97) {
            let q = &data[qi * dim..(qi + 1) * dim];
            let mut st = SearchStats::default();
            let r = g.search(q, 1, 32, &mut st);
            hits += usize::from(r.first().is_some_and(|&(_, d)| d == 0.0));
        }
        assert!(hits >= 20, "self found {hits}/21");
        let enc = g.encode();
        let back = RamHnsw::decode(Path::new("t"), &enc, data.clone(), dim).expect("decode");
        let mut st = SearchStats::default();
        assert_eq!(
            back.search(&data[..dim], 5, 32, &mut st),
            g.search(&data[..dim], 5, 32, &mut st)
        );
        // A damaged link is refused, naming the node.
        let mut bad = enc.clone();
        let last = bad.len() - 4;
        bad[last..].copy_from_slice(&(n as u32 + 5).to_le_bytes());
        let e = RamHnsw::decode(Path::new("t"), &bad, data, dim)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("router graph: node"), "{e}");
    }

    #[test]
    fn quantized_rows_find_the_same_nearest_in_a_quarter_of_the_ram() {
        // 40 dims (not a multiple of the 8 lanes), one dimension 10x wider than the others, as
        // transformer embeddings have: one shared step would leave the others 25 levels.
        let (dim, n) = (40, 3000);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let data: Vec<f32> = (0..n * dim)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let u = (x >> 40) as f32 / (1u64 << 24) as f32;
                if i % dim == 3 {
                    10.0 * u
                } else {
                    u
                }
            })
            .collect();
        let g = RamHnsw::build(data.clone(), dim, 8, 64, 1);
        // The same links over codes (a parallel build is not repeatable link for link).
        let q8 =
            RamHnsw::decode_quantized(Path::new("t"), &g.encode(), &data, dim).expect("decode");
        assert!(q8.data().is_none());
        // f32 rows out; codes, offsets and steps in.
        assert_eq!(g.bytes() - q8.bytes(), (3 * n * dim - 8 * dim) as u64);
        let (mut same, mut total) = (0, 0);
        for qi in (0..n).step_by(31) {
            let q: Vec<f32> = data[qi * dim..(qi + 1) * dim]
                .iter()
                .map(|x| x + 0.01)
                .collect();
            let mut st = SearchStats::default();
            let exact = g.search(&q, 10, 64, &mut st);
            let approx = q8.search(&q, 10, 64, &mut st);
            same += approx
                .iter()
                .filter(|a| exact.iter().any(|e| e.0 == a.0))
                .count();
            total += exact.len();
            // Each distance is to the rounded row: within half a step per component.
            let all = q8.distances_to_all(&q);
            for &(id, d) in &approx {
                assert_eq!(all[id as usize], d);
                let r = &data[id as usize * dim..(id as usize + 1) * dim];
                let true_d = f32::l2sq(&q, r);
                // Half a step per component: 39 of 1/255, one of 10/255.
                let tol = 0.5 * (39.0f32 + 100.0).sqrt() / 255.0;
                assert!((d.sqrt() - true_d.sqrt()).abs() <= tol, "{d} vs {true_d}");
            }
        }
        assert!(
            same * 100 >= total * 90,
            "{same} of {total} neighbours kept"
        );
    }
}
