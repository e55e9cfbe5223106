//! Exact ground truth: streams the base file in chunks (so it may exceed RAM) and keeps a top-k
//! per query, in parallel over queries. Ties break by ascending row id.

use crate::dataset::{read_matrix, write_matrix, Matrix, VecData, VectorFileReader};
use crate::distance::Element;
use crate::error::{IndexError, Result};
use crate::flat::stored_bytes;
use crate::manifest::Manifest;
use crate::metric::{ElementType, Metric};
use crate::scan::scan_into;
use crate::topk::{Neighbor, TopK};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Base rows scanned per chunk.
const CHUNK_ROWS: usize = 65_536;

/// Computes the exact top-`k` of every query over the base file.
pub fn ground_truth(
    base: &Path,
    queries: &Path,
    k: usize,
    metric: Metric,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Vec<Vec<Neighbor>>> {
    let reader = VectorFileReader::open(base)?;
    let elem = reader
        .dtype()
        .element()
        .ok_or_else(|| IndexError::bad_file(base, "holds i32 ids, not vectors"))?;
    match elem {
        ElementType::F32 => run::<f32>(reader, queries, k, metric, progress),
        ElementType::F16 => run::<half::f16>(reader, queries, k, metric, progress),
        ElementType::I8 => run::<i8>(reader, queries, k, metric, progress),
        ElementType::U8 => run::<u8>(reader, queries, k, metric, progress),
    }
}

fn run<T: Element>(
    mut reader: VectorFileReader,
    queries: &Path,
    k: usize,
    metric: Metric,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<Vec<Vec<Neighbor>>> {
    let (n, dim) = (reader.rows(), reader.dim());
    if k == 0 || k > n {
        return Err(IndexError::InvalidArgument(format!(
            "k = {k} must be in 1..={n} (the base has {n} rows)"
        )));
    }
    let qm = read_matrix(queries)?;
    if qm.dim != dim {
        return Err(IndexError::Dimension {
            what: format!("queries in {}", queries.display()),
            expected: dim,
            got: qm.dim,
        });
    }
    // Prepare queries exactly as an index would (normalise for float cosine, convert type).
    let probe = Manifest {
        format_version: [1, 0],
        kind: "gt".into(),
        metric,
        element: T::TYPE,
        dim,
        n,
        string_ids: false,
        has_payloads: false,
        build_params: serde_json::Value::Null,
        files: vec![],
        created_by: String::new(),
    };
    let qf = qm.to_f32();
    let qs: Vec<Vec<T>> = qf
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, q)| {
            crate::contract::prepare_query::<T>(&probe, q, k)
                .map_err(|e| IndexError::bad_file(queries, format!("row {i}: {e}")))
        })
        .collect::<Result<_>>()?;
    let mut tops: Vec<TopK> = (0..qs.len()).map(|_| TopK::new(k)).collect();
    let mut first = 0u32;
    while let Some(chunk) = reader.read_chunk(CHUNK_ROWS)? {
        let bytes = stored_bytes(metric, &chunk)?;
        let rows: Vec<T> = bytemuck::pod_collect_to_vec(&bytes);
        tops.par_iter_mut().zip(qs.par_iter()).for_each(|(top, q)| {
            scan_into(metric, &rows, dim, first, q, None, top);
        });
        first += chunk.rows() as u32;
        progress(first as u64, n as u64);
    }
    Ok(tops.into_iter().map(TopK::into_sorted_vec).collect())
}

/// The distances file that goes with an ids file: `X.ibin` -> `X_dist.fbin`.
pub fn dist_path(ids_path: &Path) -> PathBuf {
    let stem = ids_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    ids_path.with_file_name(format!("{stem}_dist.fbin"))
}

/// Writes ids (`out`, i32) and distances (`out` with `_dist.fbin`) of ground truth.
pub fn write_ground_truth(out: &Path, gt: &[Vec<Neighbor>], k: usize) -> Result<()> {
    let mut ids = Vec::with_capacity(gt.len() * k);
    let mut dists = Vec::with_capacity(gt.len() * k);
    for row in gt {
        for j in 0..k {
            let nb = row.get(j).copied().unwrap_or(Neighbor {
                id: u32::MAX,
                dist: f32::INFINITY,
            });
            ids.push(nb.id as i32);
            dists.push(nb.dist);
        }
    }
    write_matrix(
        out,
        &Matrix {
            dim: k,
            data: VecData::I32(ids),
        },
    )?;
    write_matrix(
        &dist_path(out),
        &Matrix {
            dim: k,
            data: VecData::F32(dists),
        },
    )?;
    Ok(())
}
