//! The flat index against a scalar brute-force reference on seeded data: every metric and element
//! type, allow-lists, ids and payloads, and bad queries.

use crate::random_rows;
use quiver_index::build::BuildInput;
use quiver_index::dataset::{write_matrix, Matrix, VecData};
use quiver_index::distance::{normalize, Element};
use quiver_index::ids::ExternalIds;
use quiver_index::payloads::PayloadStore;
use quiver_index::{open, IndexError, Metric, OpenOptions, SearchParams, VectorIndex};
use quiver_storage::io::Backend;
use roaring::RoaringBitmap;
use std::path::Path;

fn build(dir: &Path, m: &Matrix, metric: Metric, ext: &str) -> Box<dyn VectorIndex> {
    let data = dir.join(format!("data.{ext}"));
    write_matrix(&data, m).expect("write");
    let out = dir.join(format!("idx-{metric}-{ext}"));
    let input = BuildInput {
        data,
        ids: None,
        payloads: None,
        metric,
    };
    quiver_index::flat::build(&input, &out, &|_| {}).expect("build");
    open(
        &out,
        &OpenOptions {
            backend: Backend::IoUring { queue_depth: 8 },
            cache_bytes: 0,
            hot_nodes: None,
        },
    )
    .expect("open")
}

/// recall@k of `got` against `want`, counting ties at the k-th distance as hits.
fn recall(got: &[quiver_index::Neighbor], want: &[(u32, f64)]) -> f64 {
    let kth = want.last().map_or(0.0, |w| w.1);
    let hits = got
        .iter()
        .filter(|g| (g.dist as f64) <= kth + 1e-4 * kth.abs().max(1.0))
        .count();
    hits as f64 / want.len() as f64
}

fn check_recall<T: Element>(
    idx: &dyn VectorIndex,
    stored: &[T],
    dim: usize,
    queries: &[f32],
    metric: Metric,
    allow: Option<&RoaringBitmap>,
) {
    let k = 10;
    let mut total = 0.0;
    let nq = queries.len() / dim;
    for q in queries.chunks_exact(dim) {
        let (got, stats) = idx
            .search(q, k, &SearchParams::default(), allow)
            .expect("search");
        let mut qf = q.to_vec();
        if metric == Metric::Cosine && T::TYPE.is_float() {
            normalize(&mut qf);
        }
        let qt: Vec<T> = qf
            .iter()
            .map(|&x| T::from_f32(x).expect("representable"))
            .collect();
        let want = crate::brute_force(metric, stored, dim, &qt, k, allow);
        if let Some(a) = allow {
            assert!(
                got.iter().all(|g| a.contains(g.id)),
                "results outside the allow-list"
            );
        }
        assert!(stats.distance_computations > 0);
        total += recall(&got, &want);
    }
    let r = total / nq as f64;
    assert!(r >= 0.999, "{metric} {:?}: recall {r}", T::TYPE);
}

#[test]
fn f32_recall_every_metric_with_and_without_allow_lists() {
    let dir = tempfile::tempdir().expect("tmp");
    let (n, dim) = (4000, 32);
    let rows = random_rows(n, dim, 1);
    // Unnormalised inner product: scale rows so norms differ widely.
    let rows: Vec<f32> = rows
        .chunks_exact(dim)
        .enumerate()
        .flat_map(|(i, r)| r.iter().map(move |x| x * (1.0 + (i % 7) as f32)))
        .collect();
    let queries = random_rows(50, dim, 2);
    let allow: RoaringBitmap = (0..n as u32).filter(|i| i % 10 == 3).collect();
    let sparse: RoaringBitmap = (0..n as u32).filter(|i| i % 100 == 1).collect();
    for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
        let idx = build(
            dir.path(),
            &Matrix::from_f32(dim, rows.clone()),
            metric,
            "fbin",
        );
        let mut stored = rows.clone();
        if metric == Metric::Cosine {
            stored.chunks_exact_mut(dim).for_each(normalize);
        }
        check_recall(idx.as_ref(), &stored, dim, &queries, metric, None);
        check_recall(idx.as_ref(), &stored, dim, &queries, metric, Some(&allow));
        check_recall(idx.as_ref(), &stored, dim, &queries, metric, Some(&sparse));
    }
}

#[test]
fn f16_i8_u8_recall() {
    let dir = tempfile::tempdir().expect("tmp");
    let (n, dim) = (3000, 24);
    let rows = random_rows(n, dim, 3);
    let queries = random_rows(30, dim, 4);
    let h: Vec<half::f16> = rows.iter().map(|&x| half::f16::from_f32(x)).collect();
    let i: Vec<i8> = rows.iter().map(|&x| (x * 120.0).round() as i8).collect();
    let u: Vec<u8> = rows
        .iter()
        .map(|&x| ((x + 1.0) * 120.0).round() as u8)
        .collect();
    let qi: Vec<f32> = queries.iter().map(|&x| (x * 120.0).round()).collect();
    let qu: Vec<f32> = queries
        .iter()
        .map(|&x| ((x + 1.0) * 120.0).round())
        .collect();
    for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
        let idx = build(
            dir.path(),
            &Matrix {
                dim,
                data: VecData::F16(h.clone()),
            },
            metric,
            "f16bin",
        );
        let mut stored = h.clone();
        if metric == Metric::Cosine {
            let mut f: Vec<f32> = h.iter().map(|x| x.to_f32()).collect();
            f.chunks_exact_mut(dim).for_each(normalize);
            stored = f.iter().map(|&x| half::f16::from_f32(x)).collect();
        }
        // Queries are converted to f16 by the index; the reference sees the same conversion.
        let qh: Vec<f32> = queries
            .iter()
            .map(|&x| half::f16::from_f32(x).to_f32())
            .collect();
        check_recall(idx.as_ref(), &stored, dim, &qh, metric, None);
        let idx = build(
            dir.path(),
            &Matrix {
                dim,
                data: VecData::I8(i.clone()),
            },
            metric,
            "i8bin",
        );
        check_recall(idx.as_ref(), &i, dim, &qi, metric, None);
        let idx = build(
            dir.path(),
            &Matrix {
                dim,
                data: VecData::U8(u.clone()),
            },
            metric,
            "u8bin",
        );
        check_recall(idx.as_ref(), &u, dim, &qu, metric, None);
    }
}

#[test]
fn bad_queries_are_rejected_precisely() {
    let dir = tempfile::tempdir().expect("tmp");
    let idx = build(
        dir.path(),
        &Matrix::from_f32(8, random_rows(100, 8, 5)),
        Metric::L2,
        "fbin",
    );
    let p = SearchParams::default();
    let e = idx.search(&[0.0; 7], 5, &p, None).expect_err("dim");
    assert!(
        matches!(
            e,
            IndexError::Dimension {
                expected: 8,
                got: 7,
                ..
            }
        ),
        "{e}"
    );
    let mut q = vec![0.0; 8];
    q[3] = f32::NAN;
    let e = idx.search(&q, 5, &p, None).expect_err("nan");
    assert!(matches!(e, IndexError::NonFinite { index: 3, .. }), "{e}");
    assert!(idx.search(&[0.0; 8], 0, &p, None).is_err(), "k = 0");
    assert!(
        idx.search(&[0.0; 8], 1_000_000, &p, None).is_err(),
        "oversized k"
    );
    let (r, _) = idx.search(&[0.0; 8], 500, &p, None).expect("k > n");
    assert_eq!(r.len(), 100, "k > n returns every vector");
    let empty = RoaringBitmap::new();
    assert!(idx
        .search(&[0.0; 8], 5, &p, Some(&empty))
        .expect("empty allow")
        .0
        .is_empty());
    let i8idx = build(
        dir.path(),
        &Matrix {
            dim: 8,
            data: VecData::I8(vec![1; 80]),
        },
        Metric::L2,
        "i8bin",
    );
    assert!(
        i8idx.search(&[0.5; 8], 1, &p, None).is_err(),
        "0.5 is not an i8"
    );
}

#[test]
fn ids_and_payloads_are_stored_and_validated() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d.fbin");
    write_matrix(&data, &Matrix::from_f32(4, random_rows(5, 4, 6))).expect("write");
    let ids = dir.path().join("ids.txt");
    std::fs::write(&ids, "10\n20\n30\n40\n50\n").expect("ids");
    let pl = dir.path().join("p.jsonl");
    std::fs::write(
        &pl,
        "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n{\"a\":4}\n{\"text\":\"five\"}\n",
    )
    .expect("pl");
    let out = dir.path().join("idx");
    let input = BuildInput {
        data: data.clone(),
        ids: Some(ids.clone()),
        payloads: Some(pl.clone()),
        metric: Metric::L2,
    };
    let m = quiver_index::flat::build(&input, &out, &|_| {}).expect("build");
    assert!(!m.string_ids && m.has_payloads);
    assert_eq!(
        ExternalIds::read(&out, 5, false).expect("ids").ids,
        vec![10, 20, 30, 40, 50]
    );
    assert_eq!(
        PayloadStore::open(&out)
            .expect("payloads")
            .get(4)
            .expect("p")["text"],
        "five"
    );

    let bad = |ids_text: &str, pl_text: &str, want: &str| {
        std::fs::write(&ids, ids_text).expect("ids");
        std::fs::write(&pl, pl_text).expect("pl");
        let out = dir.path().join(format!("bad-{}", want.len()));
        let input = BuildInput {
            data: data.clone(),
            ids: Some(ids.clone()),
            payloads: Some(pl.clone()),
            metric: Metric::L2,
        };
        let e = quiver_index::flat::build(&input, &out, &|_| {})
            .expect_err(want)
            .to_string();
        assert!(e.contains(want), "{e} should mention {want}");
    };
    let ok_pl = "{}\n{}\n{}\n{}\n{}\n";
    bad("1\n2\n3\n", ok_pl, "3 ids for 5 vectors");
    bad("1\n2\n3\n2\n5\n", ok_pl, "line 4: id duplicates line 2");
    bad(
        "1\n2\n3\n4\n5\n",
        "{}\n[1]\n{}\n{}\n{}\n",
        "line 2: not a JSON object",
    );
    bad("1\n2\n3\n4\n5\n", "{}\n{}\n{oops\n{}\n{}\n", "line 3");
}

#[test]
fn every_backend_opens_the_same_index() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("d.fbin");
    let rows = random_rows(500, 16, 8);
    write_matrix(&data, &Matrix::from_f32(16, rows.clone())).expect("write");
    let out = dir.path().join("idx");
    quiver_index::flat::build(
        &BuildInput {
            data,
            ids: None,
            payloads: None,
            metric: Metric::L2,
        },
        &out,
        &|_| {},
    )
    .expect("build");
    let q = &rows[16 * 42..16 * 43];
    for backend in [
        Backend::Pread,
        Backend::Mmap,
        Backend::IoUring { queue_depth: 32 },
    ] {
        let idx = open(
            &out,
            &OpenOptions {
                backend,
                cache_bytes: 0,
                hot_nodes: None,
            },
        )
        .expect("open");
        let (r, _) = idx
            .search(q, 3, &SearchParams::default(), None)
            .expect("search");
        assert_eq!(r[0].id, 42, "{backend:?}");
    }
}
