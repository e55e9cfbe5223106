//! How many copies each vector gets (SOAR spilling) and what the lists hold (full vectors or SQ8
//! codes), chosen at build time from a cost estimate on vectors of the set used as queries.
//!
//! Why: the best choice depends on the data. On the well-separated synth100k a query finds 90%
//! of its neighbours in about 5 lists, so full-precision lists with 3 copies do best and the k
//! re-rank reads that SQ8 codes need would double the reads. On synth1m a query needs 20-40
//! lists, and SQ8 lists with 8 copies do best. A rule on list size alone (the RNG path's) cannot
//! tell these apart; counting lists for sampled queries can.
//!
//! How: [`SAMPLE`] vectors, evenly spaced, are the queries. Brute force finds each one's
//! 10 nearest other vectors. Those neighbours are placed with SOAR up to the most copies
//! allowed; SOAR is greedy, so the first r lists of that placement are the r-copy placement.
//! For every r, the estimate counts how many lists, nearest centroid first (the router's
//! order, as a search reads them), a query reads before 9 of its 10 neighbours are in one of
//! them: recall 0.9, the design point. Each (codes, r) is then priced as lists x the cost of one
//! list read, plus, with codes, the k re-rank reads. A read costs one IOPS slot up to
//! [`READ_BYTES_AT_IOPS`] and its bytes over that bandwidth above it (measured here with fio:
//! 80.7k IOPS at 4 KiB, 82.3k at 8 KiB, 65.3k at 16 KiB, so ~1 GB/s binds from ~12 KiB on).
//! The build takes the cheapest copy count under the list codes it has chosen (by list size,
//! see `build`): data vectors used as queries find their neighbours in fewer lists than real
//! queries that differ from the data (squad's questions against its passages: 2.5 lists
//! against 12 for recall 0.9), which makes the fixed k re-rank reads look too dear to decide
//! the codes on, while the copy count (fewer lists against bigger ones) is judged well: it
//! picked the fastest measured count on h100k (8) and squad (4). On synth100k 2 and 3 copies
//! tie in its estimate (6.15-6.17 reads) and builds have picked either (the router graph is
//! built in parallel, so placements differ slightly); 3 measured 10-25% faster.

use super::{cluster, Router, CLOSURE_CANDIDATES};
use crate::contract::SearchStats;
use crate::kmeans::l2sq;
use crate::topk::TopK;
use rayon::prelude::*;

/// Vectors used as queries.
pub const SAMPLE: usize = 200;
/// Neighbours per sampled query.
const K: usize = 10;
/// Neighbours (of [`K`]) that must be in a read list: recall 0.9.
const FOUND: usize = 9;
/// Most lists a sampled query reads before it counts as this many (a miss).
const MAX_LISTS: usize = 256;
/// Bytes one read can carry for the price of one IOPS slot on this disk (three 4 KiB blocks).
pub const READ_BYTES_AT_IOPS: f64 = 12_288.0;
/// Below this many vectors there is too little to sample: the most copies, codes by size.
pub const MIN_ROWS: usize = 1000;

/// One priced choice.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Choice {
    /// Copies per vector (the primary included).
    pub copies: usize,
    /// Lists hold SQ8 codes.
    pub sq8: bool,
    /// Mean lists a sampled query read for 9 of its 10 neighbours.
    pub lists: f64,
    /// Mean bytes of one list.
    pub list_bytes: f64,
    /// Estimated reads per query, in 4 KiB-read units.
    pub cost: f64,
}

/// What a list costs to read, in units of one 4 KiB read.
pub fn read_cost(bytes: f64) -> f64 {
    (bytes / READ_BYTES_AT_IOPS).max(1.0)
}

/// The inputs of the plan that describe the lists.
pub struct Shape {
    /// Most copies allowed (`--replicas`).
    pub max_copies: usize,
    /// Mean primaries per list (n / lists).
    pub primaries_per_list: f64,
    /// Bytes of a full-precision entry (id + vector) and of an SQ8 entry (id + codes).
    pub full_entry: usize,
    /// Bytes of an SQ8 entry; `None` when codes are not an option (integer vectors).
    pub sq8_entry: Option<usize>,
    /// Byte cap of a list.
    pub max_list_bytes: usize,
    /// Usable bytes of a block.
    pub payload: usize,
    /// Re-rank reads a query with codes pays (k).
    pub rerank_reads: f64,
    /// SOAR's lambda.
    pub lambda: f32,
}

/// Every choice priced, cheapest first. `nav` holds the `nav_dim`-wide rows, `primary` each
/// row's list.
pub(super) fn plan(
    nav: &[f32],
    nav_dim: usize,
    primary: &[u32],
    router: &Router,
    s: &Shape,
) -> Vec<Choice> {
    let n = primary.len();
    let cent = router.centroids();
    let step = n.div_ceil(SAMPLE).max(1);
    let queries: Vec<usize> = (0..n).step_by(step).collect();
    let row = |i: usize| &nav[i * nav_dim..(i + 1) * nav_dim];
    // True neighbours of each sampled vector (itself excluded).
    let truth: Vec<Vec<u32>> = queries
        .par_iter()
        .map(|&q| {
            let mut top = TopK::new(K + 1);
            for i in 0..n {
                top.push(i as u32, l2sq(row(q), row(i)));
            }
            top.into_sorted_vec()
                .into_iter()
                .map(|x| x.id)
                .filter(|&id| id as usize != q)
                .take(K)
                .collect()
        })
        .collect();
    // Each neighbour's lists, primary first, then SOAR's spills in the order it picked them.
    let lists_of = |id: u32| -> Vec<u32> {
        let x = row(id as usize);
        let mut st = SearchStats::default();
        let cands = router.nearest(x, nav_dim, CLOSURE_CANDIDATES, CLOSURE_CANDIDATES, &mut st);
        let p = primary[id as usize];
        let spills = cluster::soar(x, cent, nav_dim, p, &cands, s.max_copies, s.lambda);
        std::iter::once(p)
            .chain(spills.into_iter().map(|c| c.0))
            .collect()
    };
    // Per query and copy count: lists read until FOUND neighbours are covered.
    let needed: Vec<Vec<usize>> = queries
        .par_iter()
        .zip(&truth)
        .map(|(&q, nbrs)| {
            let placed: Vec<Vec<u32>> = nbrs.iter().map(|&id| lists_of(id)).collect();
            let mut st = SearchStats::default();
            let order = router.nearest(row(q), nav_dim, MAX_LISTS, 2 * MAX_LISTS, &mut st);
            (1..=s.max_copies)
                .map(|r| {
                    let mut found = vec![false; placed.len()];
                    let mut count = 0;
                    for (read, &(l, _)) in order.iter().enumerate() {
                        for (f, ls) in found.iter_mut().zip(&placed) {
                            if !*f && ls.iter().take(r).any(|&x| x == l) {
                                *f = true;
                                count += 1;
                            }
                        }
                        if count >= FOUND.min(placed.len()) {
                            return read + 1;
                        }
                    }
                    MAX_LISTS
                })
                .collect()
        })
        .collect();
    let mut out = Vec::new();
    for r in 1..=s.max_copies {
        let lists =
            needed.iter().map(|v| v[r - 1] as f64).sum::<f64>() / needed.len().max(1) as f64;
        for (sq8, entry) in [(false, Some(s.full_entry)), (true, s.sq8_entry)] {
            let Some(entry) = entry else { continue };
            let cap = (s.max_list_bytes / entry).max(1) as f64;
            let entries = (s.primaries_per_list * r as f64).min(cap);
            // Whole blocks, as lists are stored.
            let bytes = (entries * entry as f64 / s.payload as f64).ceil() * s.payload as f64;
            let cost = lists * read_cost(bytes) + if sq8 { s.rerank_reads } else { 0.0 };
            out.push(Choice {
                copies: r,
                sq8,
                lists,
                list_bytes: bytes,
                cost,
            });
        }
    }
    out.sort_by(|a, b| a.cost.total_cmp(&b.cost));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_costs_one_slot_up_to_three_blocks_then_its_bytes() {
        assert_eq!(read_cost(4096.0), 1.0);
        assert_eq!(read_cost(READ_BYTES_AT_IOPS), 1.0);
        assert_eq!(read_cost(2.0 * READ_BYTES_AT_IOPS), 2.0);
    }
}
