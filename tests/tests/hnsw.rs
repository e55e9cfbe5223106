//! HNSW against brute force on seeded data: loaded (quantized walk) and mmap-served, every
//! metric and element type, allow-lists at 1% and 10%, scratch reuse across queries, and bad
//! input (dimension, NaN, k, build parameters, empty data, truncated and corrupt files).

use crate::{mean_recall, random_rows, synth};
use quiver_index::build::BuildInput;
use quiver_index::dataset::{write_matrix, Matrix, VecData};
use quiver_index::distance::Element;
use quiver_index::hnsw::{self, HnswParams};
use quiver_index::{open, IndexError, Metric, OpenOptions, SearchParams};
use quiver_storage::io::Backend;
use roaring::RoaringBitmap;
use std::path::{Path, PathBuf};

fn params(m: usize) -> HnswParams {
    HnswParams {
        m,
        ef_construction: 100,
        seed: 7,
    }
}

fn build_dir(dir: &Path, m: &Matrix, metric: Metric, p: &HnswParams) -> PathBuf {
    let out = dir.join(format!("hnsw-{metric}"));
    hnsw::build(&crate::write_input(dir, m, metric), p, &out, &|_, _, _| {}).expect("build");
    out
}

fn opts(backend: Backend) -> OpenOptions {
    OpenOptions {
        backend,
        ..Default::default()
    }
}

fn ef(ef: usize) -> SearchParams {
    SearchParams {
        ef: Some(ef),
        ..Default::default()
    }
}

#[test]
fn l2_recall_loaded_and_mmap_served_agree() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (rows, qs) = synth(5000, 32, false, 11);
    let dir = build_dir(
        tmp.path(),
        &Matrix::from_f32(32, rows.clone()),
        Metric::L2,
        &params(12),
    );
    let mut answers: Vec<Vec<Vec<u32>>> = Vec::new();
    for b in [Backend::Pread, Backend::Mmap] {
        let idx = open(&dir, &opts(b)).expect("open");
        assert_eq!(idx.manifest().kind, "hnsw");
        let lo = mean_recall::<f32>(idx.as_ref(), &rows, &qs, Metric::L2, &ef(16), None);
        let hi = mean_recall::<f32>(idx.as_ref(), &rows, &qs, Metric::L2, &ef(128), None);
        assert!(hi >= 0.98, "{b:?}: recall@10 at ef 128 = {hi}");
        assert!(hi >= lo, "{b:?}: a larger ef lost recall ({lo} -> {hi})");
        let mem: std::collections::HashMap<_, _> = idx.memory().into_iter().collect();
        match b {
            // Served in place, full precision.
            Backend::Mmap => assert_eq!(mem["level0_records"] + mem["sq8_codes"], 0, "{mem:?}"),
            // Loaded: records plus the 1-byte codes the walk uses.
            _ => {
                assert!(
                    mem["level0_records"] >= 5000 * (128 + 4 + 24 * 4),
                    "{mem:?}"
                );
                assert!(mem["sq8_codes"] >= 5000 * 32, "{mem:?}");
            }
        }
        answers.push(
            qs.chunks_exact(32)
                .map(|q| {
                    let (r, _) = idx.search(q, 10, &ef(64), None).expect("search");
                    r.iter().map(|n| n.id).collect()
                })
                .collect(),
        );
    }
    // The loaded index walks quantized codes and re-ranks, the mmap-served one walks full
    // precision: nearly the same answers, not necessarily identical.
    let same: usize = answers[0]
        .iter()
        .zip(&answers[1])
        .map(|(a, b)| a.iter().filter(|x| b.contains(x)).count())
        .sum();
    let total: usize = answers[0].iter().map(Vec::len).sum();
    assert!(
        same as f64 >= 0.97 * total as f64,
        "loaded and mmap-served share {same} of {total} ids"
    );
}

#[test]
fn inner_product_and_cosine() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (mut rows, qs) = synth(3000, 24, false, 12);
    for (i, r) in rows.chunks_exact_mut(24).enumerate() {
        let s = 0.5 + (i % 7) as f32 * 0.3;
        r.iter_mut().for_each(|x| *x *= s);
    }
    for metric in [Metric::Ip, Metric::Cosine] {
        let dir = build_dir(
            tmp.path(),
            &Matrix::from_f32(24, rows.clone()),
            metric,
            &params(16),
        );
        let idx = open(&dir, &opts(Backend::Pread)).expect("open");
        let mut stored = rows.clone();
        if metric == Metric::Cosine {
            stored
                .chunks_exact_mut(24)
                .for_each(quiver_index::distance::normalize);
        }
        let r = mean_recall::<f32>(idx.as_ref(), &stored, &qs, metric, &ef(200), None);
        assert!(r >= 0.9, "{metric}: recall@10 {r}");
    }
}

fn elem_recall<T: Element>(rows: Vec<T>, qs: &[f32], dim: usize, data: VecData) {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = build_dir(tmp.path(), &Matrix { dim, data }, Metric::L2, &params(12));
    let idx = open(&dir, &opts(Backend::Mmap)).expect("open");
    assert_eq!(idx.manifest().element, T::TYPE);
    let r = mean_recall::<T>(idx.as_ref(), &rows, qs, Metric::L2, &ef(96), None);
    assert!(r >= 0.95, "{}: recall@10 {r}", T::TYPE);
}

#[test]
fn every_element_type() {
    let (rows, qs) = synth(2000, 16, false, 13);
    let h: Vec<half::f16> = rows.iter().map(|&x| half::f16::from_f32(x)).collect();
    elem_recall(h.clone(), &qs, 16, VecData::F16(h));
    let q = |x: f32, off: f32, lo: f32, hi: f32| (x * 60.0 + off).round().clamp(lo, hi);
    let i8s: Vec<i8> = rows
        .iter()
        .map(|&x| q(x, 0.0, -127.0, 127.0) as i8)
        .collect();
    let qi: Vec<f32> = qs.iter().map(|&x| q(x, 0.0, -127.0, 127.0)).collect();
    elem_recall(i8s.clone(), &qi, 16, VecData::I8(i8s));
    let u8s: Vec<u8> = rows
        .iter()
        .map(|&x| q(x, 128.0, 0.0, 255.0) as u8)
        .collect();
    let qu: Vec<f32> = qs.iter().map(|&x| q(x, 128.0, 0.0, 255.0)).collect();
    elem_recall(u8s.clone(), &qu, 16, VecData::U8(u8s));
    // A dimension whose vector bytes are not a multiple of 4 (the neighbor ids are padded to
    // stay u32-aligned).
    let (rows, qs) = synth(1500, 13, false, 18);
    let odd: Vec<u8> = rows
        .iter()
        .map(|&x| q(x, 128.0, 0.0, 255.0) as u8)
        .collect();
    let qo: Vec<f32> = qs.iter().map(|&x| q(x, 128.0, 0.0, 255.0)).collect();
    elem_recall(odd.clone(), &qo, 13, VecData::U8(odd));
}

#[test]
fn allow_lists_at_one_and_ten_percent() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (rows, qs) = synth(6000, 24, false, 14);
    let dir = build_dir(
        tmp.path(),
        &Matrix::from_f32(24, rows.clone()),
        Metric::L2,
        &params(12),
    );
    let idx = open(&dir, &opts(Backend::Pread)).expect("open");
    for (modulus, floor) in [(100u32, 0.9), (10, 0.9)] {
        // A scattered subset (every modulus-th id shifted by a hash-like stride).
        let allow: RoaringBitmap = (0..6000u32)
            .filter(|i| (i.wrapping_mul(2_654_435_761) >> 7) % modulus == 0)
            .collect();
        assert!(allow.len() >= 10);
        let r = mean_recall::<f32>(idx.as_ref(), &rows, &qs, Metric::L2, &ef(64), Some(&allow));
        assert!(r >= floor, "allow 1/{modulus}: recall@10 {r}");
        // Exactly k hits whenever at least k ids are allowed.
        for q in qs.chunks_exact(24).take(5) {
            let (got, _) = idx.search(q, 10, &ef(64), Some(&allow)).expect("search");
            assert_eq!(got.len(), 10, "allow 1/{modulus}");
        }
    }
    // Fewer allowed ids than k: all of them, nothing else.
    let few: RoaringBitmap = [3u32, 1500, 4999].into_iter().collect();
    let (got, _) = idx
        .search(&qs[..24], 10, &ef(64), Some(&few))
        .expect("search");
    let mut ids: Vec<u32> = got.iter().map(|n| n.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![3, 1500, 4999]);
}

#[test]
fn k_larger_than_n_and_repeated_queries() {
    let tmp = tempfile::tempdir().expect("tmp");
    let rows = random_rows(300, 8, 15);
    let dir = build_dir(
        tmp.path(),
        &Matrix::from_f32(8, rows),
        Metric::L2,
        &params(8),
    );
    let idx = open(&dir, &opts(Backend::Pread)).expect("open");
    // k > n returns every node once.
    let (all, _) = idx.search(&[0.0; 8], 500, &ef(1000), None).expect("k > n");
    let mut ids: Vec<u32> = all.iter().map(|n| n.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 300);
    // The visited set is reused between queries: the same query twice gives the same answer
    // and the same work, however many queries ran in between.
    let q = [0.25f32; 8];
    let first = idx.search(&q, 10, &ef(32), None).expect("search");
    // More searches than the 16-bit epoch has values, so the wrap-around path runs.
    for i in 0..70_000u32 {
        let (r, _) = idx
            .search(&[(i % 97) as f32 / 97.0; 8], 1, &ef(1), None)
            .expect("search");
        assert_eq!(r.len(), 1);
    }
    let again = idx.search(&q, 10, &ef(32), None).expect("search");
    assert_eq!(first, again);
}

#[test]
fn bad_queries_and_parameters_get_clear_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let rows = random_rows(400, 8, 16);
    let dir = build_dir(
        tmp.path(),
        &Matrix::from_f32(8, rows.clone()),
        Metric::L2,
        &params(8),
    );
    let idx = open(&dir, &opts(Backend::Pread)).expect("open");
    assert!(matches!(
        idx.search(&[0.0; 7], 10, &ef(10), None),
        Err(IndexError::Dimension {
            expected: 8,
            got: 7,
            ..
        })
    ));
    let mut q = vec![0.0f32; 8];
    q[5] = f32::INFINITY;
    assert!(matches!(
        idx.search(&q, 10, &ef(10), None),
        Err(IndexError::NonFinite { index: 5, .. })
    ));
    assert!(idx.search(&[0.0; 8], 0, &ef(10), None).is_err());
    let e = idx
        .search(&[0.0; 8], 10, &ef(10_000_000), None)
        .expect_err("ef too large");
    assert!(e.to_string().contains("ef"), "{e}");

    // Build parameters and empty data are refused before anything is written.
    let data = tmp.path().join("ok.fbin");
    write_matrix(&data, &Matrix::from_f32(8, rows)).expect("write");
    let input = |data: PathBuf| BuildInput {
        data,
        ids: None,
        payloads: None,
        metric: Metric::L2,
    };
    for (p, what) in [
        (HnswParams { m: 1, ..params(8) }, "--m"),
        (
            HnswParams {
                ef_construction: 0,
                ..params(8)
            },
            "--ef-construction",
        ),
    ] {
        let out = tmp.path().join("bad");
        let e = hnsw::build(&input(data.clone()), &p, &out, &|_, _, _| {}).expect_err(what);
        assert!(e.to_string().contains(what), "{e}");
        assert!(!out.join("manifest.json").exists());
    }
    let empty = tmp.path().join("empty.fbin");
    write_matrix(&empty, &Matrix::from_f32(8, Vec::new())).expect("write");
    let e = hnsw::build(
        &input(empty),
        &params(8),
        &tmp.path().join("e"),
        &|_, _, _| {},
    )
    .expect_err("empty");
    assert!(e.to_string().contains("empty"), "{e}");
}

#[test]
fn truncated_and_corrupt_graph_files_are_reported() {
    let tmp = tempfile::tempdir().expect("tmp");
    let rows = random_rows(3000, 16, 17);
    let dir = build_dir(
        tmp.path(),
        &Matrix::from_f32(16, rows),
        Metric::L2,
        &params(8),
    );
    let graph = dir.join(hnsw::GRAPH_FILE);
    let good = std::fs::read(&graph).expect("read");

    // Truncated: refused at open, naming the file.
    std::fs::write(&graph, &good[..good.len() / 2]).expect("write");
    for b in [Backend::Pread, Backend::Mmap] {
        let e = open(&dir, &opts(b)).err().expect("truncated graph opens");
        assert!(e.to_string().contains("graph.qbf"), "{e}");
    }

    // One flipped byte in a level-0 block: loading reads every block and refuses; mmap serving
    // opens, then the first search that touches the block reports file and offset.
    let mut bad = good.clone();
    let block = 4096 * 3 + 100;
    bad[block] ^= 0x5a;
    std::fs::write(&graph, &bad).expect("write");
    let e = open(&dir, &opts(Backend::Pread))
        .err()
        .expect("corrupt graph loads");
    assert!(e.to_string().contains("checksum"), "{e}");
    let idx = open(&dir, &opts(Backend::Mmap)).expect("mmap open checks headers only");
    let mut saw = None;
    for i in 0..200 {
        let q: Vec<f32> = (0..16)
            .map(|d| ((i * 16 + d) as f32 * 0.37).sin())
            .collect();
        if let Err(e) = idx.search(&q, 10, &ef(400), None) {
            saw = Some(e.to_string());
            break;
        }
    }
    let msg = saw.expect("no search touched the corrupt block");
    assert!(msg.contains("graph.qbf") && msg.contains("12288"), "{msg}");
}
