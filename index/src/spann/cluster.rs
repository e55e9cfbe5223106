//! The two build steps of a clustering index that decide where each vector lives.
//!
//! - [`hierarchical`]: hierarchical k-means. Any set larger than the leaf size is split by
//!   k-means into at most [`BRANCH`] parts, trained on a sample of the set and assigned in full,
//!   and the parts are split again until every one fits, so no primary cluster exceeds the leaf
//!   size and the number of centroids follows from n and that size (SPTAG's balanced k-means tree
//!   builds its heads the same top-down way).
//! - [`closure`]: SPANN's boundary replication. A vector joins every list whose centroid is
//!   within `(1 + eps)` of its nearest centroid's distance, at most `replicas` lists, skipping a
//!   list when the RNG rule says a centroid already chosen covers that direction
//!   (`rng_factor * d(c_chosen, c) <= d(x, c)`).
//! - [`soar`]: spilling by SOAR (Sun et al., "SOAR: Improved Indexing for Approximate Nearest
//!   Neighbor Search", NeurIPS 2023): a copy goes where its residual is nearly orthogonal to the
//!   residuals of the copies already placed, so that a query badly served by one copy (its
//!   direction parallel to that residual) is well served by another.
//!
//! Distances are squared L2 in the navigation space, as SPTAG computes them.

use crate::kmeans::{kmeans, l2sq, nearest};
use rayon::prelude::*;

/// Most parts one k-means split makes.
pub const BRANCH: usize = 32;
/// Lloyd rounds per split.
const ITERS: usize = 8;
/// Sample rows per centroid a split trains on.
const SAMPLE_PER_CENTROID: usize = 64;
/// Sets at least this large are assigned in parallel.
const PAR_ROWS: usize = 4096;

/// Clusters the `dim`-wide rows of `data` so that no cluster holds more than `leaf` rows.
/// Returns the centroids (the mean of each cluster's rows, `k * dim` floats) and each row's
/// cluster. `progress(rows placed)`.
pub fn hierarchical(
    data: &[f32],
    dim: usize,
    leaf: usize,
    seed: u64,
    progress: &dyn Fn(u64),
) -> (Vec<f32>, Vec<u32>) {
    let n = data.len() / dim;
    let leaf = leaf.max(1);
    let row = |i: u32| &data[i as usize * dim..(i as usize + 1) * dim];
    let mut centroids: Vec<f32> = Vec::new();
    let mut assign = vec![0u32; n];
    let mut placed = 0u64;
    let mut emit = |members: &[u32], centroids: &mut Vec<f32>| {
        let c = (centroids.len() / dim) as u32;
        let mut mean = vec![0f64; dim];
        for &i in members {
            assign[i as usize] = c;
            for (m, &x) in mean.iter_mut().zip(row(i)) {
                *m += x as f64;
            }
        }
        centroids.extend(mean.iter().map(|&m| (m / members.len() as f64) as f32));
        placed += members.len() as u64;
        progress(placed);
    };
    let mut stack: Vec<Vec<u32>> = vec![(0..n as u32).collect()];
    let mut splits = 0u64;
    while let Some(set) = stack.pop() {
        if set.len() <= leaf {
            if !set.is_empty() {
                emit(&set, &mut centroids);
            }
            continue;
        }
        let k = set.len().div_ceil(leaf).clamp(2, BRANCH);
        // Train on evenly spaced members.
        let take = (k * SAMPLE_PER_CENTROID).min(set.len());
        let mut sample = Vec::with_capacity(take * dim);
        for j in 0..take {
            sample.extend_from_slice(row(set[j * set.len() / take]));
        }
        splits += 1;
        let cent = kmeans(&sample, dim, k, ITERS, seed.wrapping_add(splits));
        let label = |&i: &u32| nearest(&cent, dim, row(i)).0 as u32;
        let labels: Vec<u32> = if set.len() >= PAR_ROWS {
            set.par_iter().map(label).collect()
        } else {
            set.iter().map(label).collect()
        };
        let mut parts = vec![Vec::new(); k];
        for (&i, &l) in set.iter().zip(&labels) {
            parts[l as usize].push(i);
        }
        if parts.iter().filter(|p| !p.is_empty()).count() < 2 {
            // k-means could not separate the set (duplicates): cut it in order instead.
            for chunk in set.chunks(leaf) {
                emit(chunk, &mut centroids);
            }
            continue;
        }
        // Depth first, smallest on top: the stack stays short.
        parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
        stack.extend(parts.into_iter().filter(|p| !p.is_empty()));
    }
    (centroids, assign)
}

/// The closure rule's knobs.
#[derive(Clone, Copy, Debug)]
pub struct Closure {
    /// Most lists a vector joins, its primary included.
    pub replicas: usize,
    /// Slack eps1 on the nearest centroid's squared distance.
    pub eps: f32,
    /// RNG factor (infinity turns the rule off).
    pub rng_factor: f32,
}

/// SOAR spilling of one vector `x` whose primary list is `primary`, given `cands`, the nearest
/// centroids as (list, squared distance) closest first: `replicas - 1` extra lists, each the
/// candidate `c` that minimises `|r_c|^2 + lambda * sum_j (r_j . r_c)^2 / |r_j|^2`, where
/// `r_c = x - c` and the `r_j` are the residuals of the lists already chosen (the primary
/// first). With one spill this is the paper's spilled assignment loss; summing the penalty over
/// every chosen residual is how this extends it to several. Returns the lists with their squared
/// distances.
pub fn soar(
    x: &[f32],
    centroids: &[f32],
    dim: usize,
    primary: u32,
    cands: &[(u32, f32)],
    replicas: usize,
    lambda: f32,
) -> Vec<(u32, f32)> {
    let cent = |c: u32| &centroids[c as usize * dim..(c as usize + 1) * dim];
    let cs: Vec<(u32, f32)> = cands.iter().copied().filter(|c| c.0 != primary).collect();
    // Each candidate's residual, one row each.
    let mut res = Vec::with_capacity(cs.len() * dim);
    for &(c, _) in &cs {
        res.extend(x.iter().zip(cent(c)).map(|(a, b)| a - b));
    }
    let mut score: Vec<f32> = cs.iter().map(|c| c.1).collect();
    let penalise = |r: &[f32], score: &mut [f32]| {
        let n2: f32 = r.iter().map(|v| v * v).sum();
        if n2 > 0.0 {
            for (s, rc) in score.iter_mut().zip(res.chunks_exact(dim)) {
                let dot: f32 = r.iter().zip(rc).map(|(a, b)| a * b).sum();
                *s += lambda * dot * dot / n2;
            }
        }
    };
    let r0: Vec<f32> = x.iter().zip(cent(primary)).map(|(a, b)| a - b).collect();
    penalise(&r0, &mut score);
    let mut out = Vec::with_capacity(replicas.saturating_sub(1));
    while out.len() + 1 < replicas {
        let Some(j) = (0..cs.len())
            .filter(|&j| score[j].is_finite())
            .min_by(|&a, &b| score[a].total_cmp(&score[b]))
        else {
            break;
        };
        out.push(cs[j]);
        score[j] = f32::INFINITY;
        let rj = res[j * dim..(j + 1) * dim].to_vec();
        penalise(&rj, &mut score);
    }
    out
}

/// SPANN's closure assignment of one vector `x` whose primary list is `primary`, given
/// `cands`, the nearest centroids as (list, squared distance) closest first. Returns the extra
/// lists it joins with their distances (at most `replicas - 1`, the primary excluded).
pub fn closure(
    x: &[f32],
    centroids: &[f32],
    dim: usize,
    primary: u32,
    cands: &[(u32, f32)],
    rule: Closure,
) -> Vec<(u32, f32)> {
    let Closure {
        replicas,
        eps,
        rng_factor,
    } = rule;
    let cent = |c: u32| &centroids[c as usize * dim..(c as usize + 1) * dim];
    let d_primary = l2sq(x, cent(primary));
    let d1 = cands.first().map_or(d_primary, |c| c.1.min(d_primary));
    let limit = (1.0 + eps) * d1;
    let mut chosen: Vec<u32> = vec![primary];
    let mut out = Vec::new();
    for &(c, d) in cands {
        if chosen.len() >= replicas || d > limit {
            break;
        }
        if c == primary {
            continue;
        }
        // RNG rule: a chosen centroid nearer to c than x is already covers c's direction.
        if chosen
            .iter()
            .any(|&s| rng_factor * l2sq(cent(s), cent(c)) <= d)
        {
            continue;
        }
        chosen.push(c);
        out.push((c, d));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soar_spills_to_the_centroid_whose_residual_is_orthogonal() {
        // x at the origin, primary centroid at (1, 0): residual (-1, 0). Two candidates at the
        // same distance: (-1.1, 0) has a residual parallel to the primary's, (0, 1.1) one
        // orthogonal to it. Nearest-centroid spilling would take the parallel one (listed
        // first); SOAR takes the orthogonal one, then the parallel one.
        let cent = [1.0, 0.0, -1.1, 0.0, 0.0, 1.1];
        let x = [0.0, 0.0];
        let cands = [(0u32, 1.0f32), (1, 1.21), (2, 1.21)];
        let got = soar(&x, &cent, 2, 0, &cands, 2, 1.0);
        assert_eq!(got, vec![(2, 1.21)]);
        let got = soar(&x, &cent, 2, 0, &cands, 3, 1.0);
        assert_eq!(got, vec![(2, 1.21), (1, 1.21)]);
        // Lambda 0 is plain nearest-first spilling; never more lists than candidates.
        assert_eq!(soar(&x, &cent, 2, 0, &cands, 2, 0.0), vec![(1, 1.21)]);
        assert_eq!(soar(&x, &cent, 2, 0, &cands, 8, 1.0).len(), 2);
    }

    #[test]
    fn no_cluster_exceeds_the_leaf_and_every_row_is_placed() {
        let dim = 4;
        let n = 5000;
        // Skewed: half the rows in one tight blob, the rest spread.
        let data: Vec<f32> = (0..n * dim)
            .map(|i| {
                let r = i / dim;
                if r % 2 == 0 {
                    ((i * 31) % 7) as f32 * 0.01
                } else {
                    ((i * 7919) % 1009) as f32 / 10.0
                }
            })
            .collect();
        let (cent, assign) = hierarchical(&data, dim, 40, 3, &|_| {});
        let k = cent.len() / dim;
        let mut sizes = vec![0usize; k];
        for &a in &assign {
            sizes[a as usize] += 1;
        }
        assert!(sizes.iter().all(|&s| (1..=40).contains(&s)), "{sizes:?}");
        assert!(k >= n / 40, "{k} clusters");
        // Centroids are their members' means.
        let c0: Vec<usize> = (0..n).filter(|&i| assign[i] == 0).collect();
        let mean0 = c0.iter().map(|&i| data[i * dim]).sum::<f32>() / c0.len() as f32;
        assert!((mean0 - cent[0]).abs() < 1e-3, "{mean0} vs {}", cent[0]);
        // All-identical rows are cut by order.
        let same = vec![1.0f32; 100 * dim];
        let (c, a) = hierarchical(&same, dim, 10, 1, &|_| {});
        assert_eq!(c.len() / dim, 10);
        assert!(a.iter().all(|&x| x < 10));
    }

    fn rule(replicas: usize, eps: f32, rng_factor: f32) -> Closure {
        Closure {
            replicas,
            eps,
            rng_factor,
        }
    }

    #[test]
    fn closure_applies_eps_cap_and_rng_rule() {
        // 1-d (padded to 2) centroids at 0, 1, 1.1 and -1; x at 0.5.
        let cent = [0.0f32, 0.0, 1.0, 0.0, 1.1, 0.0, -1.0, 0.0];
        let x = [0.5f32, 0.0];
        let mut cands: Vec<(u32, f32)> = (0..4u32)
            .map(|c| (c, l2sq(&x, &cent[c as usize * 2..c as usize * 2 + 2])))
            .collect();
        cands.sort_by(|a, b| a.1.total_cmp(&b.1));
        // Centroid 1 (0.25) ties the primary 0: joined. 2 (0.36) is covered by 1 (d 0.01 <=
        // 0.36); -1 (2.25) is beyond eps = 1.
        assert_eq!(
            closure(&x, &cent, 2, 0, &cands, rule(8, 1.0, 1.0)),
            vec![(1, 0.25)]
        );
        // An infinite factor turns the RNG rule off: 2 joins too.
        assert_eq!(
            closure(&x, &cent, 2, 0, &cands, rule(8, 1.0, f32::INFINITY)),
            vec![(1, 0.25), (2, l2sq(&x, &cent[4..6]))]
        );
        // The cap counts the primary.
        assert_eq!(
            closure(&x, &cent, 2, 0, &cands, rule(1, 9.0, f32::INFINITY)),
            vec![]
        );
    }
}
