//! Exact brute-force scanning: the kernel under the flat index and ground-truth generation.

use crate::distance::Element;
use crate::metric::Metric;
use crate::topk::{merge_topk, Neighbor, TopK};
use rayon::prelude::*;
use roaring::RoaringBitmap;

/// Rows per parallel task; below 2 tasks' worth a scan stays on the calling thread.
const ROWS_PER_TASK: usize = 16_384;

/// Offers rows `data[r]` (ids `first_id + r`) to `top`, skipping ids outside `allow`.
pub fn scan_into<T: Element>(
    metric: Metric,
    data: &[T],
    dim: usize,
    first_id: u32,
    query: &[T],
    allow: Option<&RoaringBitmap>,
    top: &mut TopK,
) -> u64 {
    let mut n = 0u64;
    for (r, row) in data.chunks_exact(dim).enumerate() {
        let id = first_id + r as u32;
        if allow.is_some_and(|a| !a.contains(id)) {
            continue;
        }
        top.push(id, T::distance(metric, query, row));
        n += 1;
    }
    n
}

/// The exact top-k of `query` over `data` (rows are ids 0..n), in parallel over row ranges when
/// the set is large. Returns the neighbors and the number of distances computed.
pub fn exact_topk<T: Element>(
    metric: Metric,
    data: &[T],
    dim: usize,
    query: &[T],
    k: usize,
    allow: Option<&RoaringBitmap>,
) -> (Vec<Neighbor>, u64) {
    let n = data.len() / dim;
    // A sparse allow-list is cheaper to walk than the whole set.
    if let Some(a) = allow {
        if (a.len() as usize) < n / 16 {
            let mut top = TopK::new(k);
            let mut computed = 0;
            for id in a.iter().take_while(|&id| (id as usize) < n) {
                let row = &data[id as usize * dim..(id as usize + 1) * dim];
                top.push(id, T::distance(metric, query, row));
                computed += 1;
            }
            return (top.into_sorted_vec(), computed);
        }
    }
    if n < 2 * ROWS_PER_TASK || rayon::current_num_threads() == 1 {
        let mut top = TopK::new(k);
        let c = scan_into(metric, data, dim, 0, query, allow, &mut top);
        return (top.into_sorted_vec(), c);
    }
    let parts: Vec<(Vec<Neighbor>, u64)> = data
        .par_chunks(ROWS_PER_TASK * dim)
        .enumerate()
        .map(|(i, chunk)| {
            let mut top = TopK::new(k);
            let c = scan_into(
                metric,
                chunk,
                dim,
                (i * ROWS_PER_TASK) as u32,
                query,
                allow,
                &mut top,
            );
            (top.into_sorted_vec(), c)
        })
        .collect();
    let computed = parts.iter().map(|p| p.1).sum();
    let lists: Vec<Vec<Neighbor>> = parts.into_iter().map(|p| p.0).collect();
    (merge_topk(&lists, k), computed)
}
