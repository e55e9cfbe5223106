//! SPANN and IVF-Flat against brute force on seeded data: every metric, backends and the cache,
//! the list cap and replication, pruning, allow-lists, k above n, batches, `vectors`, and bad
//! input (dimension, NaN, parameters, truncated and corrupt posting files).

use crate::{mean_recall, random_rows, synth};
use quiver_index::dataset::Matrix;
use quiver_index::spann::{self, ClusterKind, SpannParams};
use quiver_index::{open, Metric, OpenOptions, SearchParams, VectorIndex};
use quiver_storage::io::Backend;
use roaring::RoaringBitmap;
use std::path::{Path, PathBuf};

fn build(
    dir: &Path,
    rows: &[f32],
    dim: usize,
    metric: Metric,
    kind: ClusterKind,
    p: &SpannParams,
) -> PathBuf {
    let out = dir.join(format!("{}-{metric}", kind.name()));
    let input = crate::write_input(dir, &Matrix::from_f32(dim, rows.to_vec()), metric);
    spann::build(&input, kind, p, &out, &|_, _, _| {}).expect("build");
    out
}

fn opts(backend: Backend, cache_bytes: u64) -> OpenOptions {
    OpenOptions {
        backend,
        cache_bytes,
        hot_nodes: None,
    }
}

fn lists(n: usize) -> SearchParams {
    SearchParams {
        max_lists: Some(n),
        ..Default::default()
    }
}

/// Small lists, so that even a few thousand rows make hundreds of them; SPANN with SQ8 codes
/// (lists this short would otherwise keep full vectors).
fn small(kind: ClusterKind) -> SpannParams {
    SpannParams {
        max_list_bytes: 4096,
        sq8: Some(kind == ClusterKind::Spann),
        ..SpannParams::defaults(kind)
    }
}

/// A [`small`] SQ8 SPANN index over `n` seeded L2 rows, opened with pread: rows, queries, index.
fn small_spann(
    dir: &Path,
    n: usize,
    dim: usize,
    seed: u64,
) -> (Vec<f32>, Vec<f32>, Box<dyn VectorIndex>) {
    let (rows, qs) = synth(n, dim, false, seed);
    let kind = ClusterKind::Spann;
    let path = build(dir, &rows, dim, Metric::L2, kind, &small(kind));
    let idx = open(&path, &opts(Backend::Pread, 0)).expect("open");
    (rows, qs, idx)
}

fn build_param(dir: &Path, key: &str) -> serde_json::Value {
    let m = quiver_index::manifest::Manifest::read(dir).expect("manifest");
    m.build_params[key].clone()
}

#[test]
fn recall_against_brute_force_for_both_kinds_and_every_backend() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dim = 32;
    let (rows, qs) = synth(6000, dim, false, 11);
    for kind in [ClusterKind::Spann, ClusterKind::Ivf] {
        let dir = build(tmp.path(), &rows, dim, Metric::L2, kind, &small(kind));
        // No list exceeds the cap: 4096 bytes / (4 + 128) = 31 f32 entries (IVF), or
        // 4096 / (4 + 32) = 113 SQ8 entries (SPANN here).
        let cap = build_param(&dir, "max_list_entries").as_u64().expect("cap");
        let codes = build_param(&dir, "list_codes");
        match kind {
            ClusterKind::Ivf => assert_eq!((cap, codes.as_str()), (31, Some("full"))),
            ClusterKind::Spann => assert_eq!((cap, codes.as_str()), (113, Some("sq8"))),
        }
        let max = build_param(&dir, "list_entries")["max"]
            .as_u64()
            .expect("max");
        assert!(max <= cap, "{kind:?}: list of {max} > cap {cap}");
        let rep = build_param(&dir, "replication").as_f64().expect("rep");
        match kind {
            ClusterKind::Ivf => assert_eq!(rep, 1.0),
            ClusterKind::Spann => assert!(rep > 1.2, "spann replicates boundary vectors: {rep}"),
        }
        let n_lists = build_param(&dir, "lists").as_u64().expect("lists") as usize;
        assert!(n_lists >= 6000 / 31, "{n_lists} lists");
        assert_eq!(
            dir.join(spann::VECTORS_FILE).exists(),
            kind == ClusterKind::Spann
        );
        if kind == ClusterKind::Spann {
            // Left to choose, SPANN keeps full vectors in lists this short (< 3 blocks).
            let auto = SpannParams {
                sq8: None,
                ..small(kind)
            };
            let sub = tmp.path().join("auto");
            std::fs::create_dir_all(&sub).expect("mkdir");
            let d2 = build(&sub, &rows, dim, Metric::L2, kind, &auto);
            let mean = build_param(&d2, "mean_full_list_bytes")
                .as_f64()
                .expect("mean");
            assert!(mean < 3.0 * 4092.0, "{mean}");
            assert_eq!(build_param(&d2, "list_codes").as_str(), Some("full"));
            assert!(!d2.join(spann::VECTORS_FILE).exists());
        }
        let mut first: Option<Vec<Vec<u32>>> = None;
        for (b, cache) in [
            (Backend::Pread, 0),
            (Backend::Mmap, 0),
            (Backend::IoUring { queue_depth: 16 }, 0),
            (Backend::IoUring { queue_depth: 16 }, 1 << 20),
        ] {
            let idx = open(&dir, &opts(b, cache)).expect("open");
            assert_eq!(idx.manifest().kind, kind.name());
            // More lists, more recall; every list probed is exact.
            let few = mean_recall::<f32>(idx.as_ref(), &rows, &qs, Metric::L2, &lists(2), None);
            let many = mean_recall::<f32>(idx.as_ref(), &rows, &qs, Metric::L2, &lists(24), None);
            assert!(
                many >= 0.9 && many >= few,
                "{kind:?} {b:?}: {few} -> {many}"
            );
            // Every list probed, and (SQ8 lists) 100 candidates re-ranked: exact.
            let all = SearchParams {
                max_lists: Some(n_lists),
                eps: Some(1e9),
                rerank: Some(100),
                ..Default::default()
            };
            let exact = mean_recall::<f32>(idx.as_ref(), &rows, &qs, Metric::L2, &all, None);
            assert!(
                exact > 0.999,
                "{kind:?}: every list probed is exact: {exact}"
            );
            let ids: Vec<Vec<u32>> = qs
                .chunks_exact(dim)
                .map(|q| {
                    let (r, s) = idx.search(q, 10, &lists(8), None).expect("search");
                    assert_eq!(r.len(), 10);
                    assert!(s.lists >= 1 && s.lists <= 8, "{s:?}");
                    assert!(s.rounds >= 1, "{s:?}");
                    if cache == 0 {
                        assert!(s.reads >= 1 && s.read_bytes >= 4096 * s.reads, "{s:?}");
                    }
                    // Replicated ids come back once.
                    let mut u: Vec<u32> = r.iter().map(|n| n.id).collect();
                    u.sort_unstable();
                    u.dedup();
                    assert_eq!(u.len(), r.len(), "duplicate ids");
                    r.iter().map(|n| n.id).collect()
                })
                .collect();
            match &first {
                None => first = Some(ids),
                Some(f) => assert_eq!(f, &ids, "{kind:?} {b:?} differs from pread"),
            }
        }
        // The cached reader serves a repeated query from RAM.
        let idx = open(&dir, &opts(Backend::Pread, 1 << 22)).expect("open");
        let q = &qs[..dim];
        let (_, cold) = idx.search(q, 10, &lists(8), None).expect("search");
        let (_, warm) = idx.search(q, 10, &lists(8), None).expect("search");
        assert!(
            cold.reads > 0 && warm.reads == 0 && warm.cache_hits == cold.reads + cold.cache_hits,
            "{cold:?} {warm:?}"
        );
    }
}

#[test]
fn cosine_and_inner_product_on_unnormalized_data() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dim = 24;
    let (mut rows, qs) = synth(4000, dim, false, 12);
    // Norms spread over 0.5x..2x, so inner product differs from cosine.
    for (i, r) in rows.chunks_exact_mut(dim).enumerate() {
        let s = 0.5 + 1.5 * (i % 7) as f32 / 6.0;
        r.iter_mut().for_each(|x| *x *= s);
    }
    for metric in [Metric::Cosine, Metric::Ip] {
        let dir = build(
            tmp.path(),
            &rows,
            dim,
            metric,
            ClusterKind::Spann,
            &small(ClusterKind::Spann),
        );
        let idx = open(&dir, &opts(Backend::Pread, 0)).expect("open");
        let stored: Vec<f32> = if metric == Metric::Cosine {
            let mut v = rows.clone();
            v.chunks_exact_mut(dim)
                .for_each(quiver_index::distance::normalize);
            v
        } else {
            rows.clone()
        };
        let r = mean_recall::<f32>(idx.as_ref(), &stored, &qs, metric, &lists(32), None);
        assert!(r >= 0.9, "{metric}: recall {r}");
    }
}

#[test]
fn pruning_allow_lists_k_above_n_batches_and_vectors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dim = 16;
    let (rows, qs, idx) = small_spann(tmp.path(), 3000, dim, 13);
    // A tight eps probes fewer lists than the cap; a loose one reaches the cap.
    let q = &qs[..dim];
    let tight = SearchParams {
        max_lists: Some(32),
        eps: Some(0.0),
        ..Default::default()
    };
    let loose = SearchParams {
        eps: Some(1e9),
        ..tight.clone()
    };
    let (_, st) = idx.search(q, 10, &tight, None).expect("tight");
    let (_, sl) = idx.search(q, 10, &loose, None).expect("loose");
    assert!(st.lists < sl.lists && sl.lists == 32, "{st:?} {sl:?}");
    // 1% and 10% allow-lists: every hit allowed, exactly k, recall against filtered brute force.
    for every in [100u32, 10] {
        let allow: RoaringBitmap = (0..3000u32).filter(|i| i % every == 3).collect();
        let r = mean_recall::<f32>(
            idx.as_ref(),
            &rows,
            &qs,
            Metric::L2,
            &lists(8),
            Some(&allow),
        );
        assert!(r >= 0.9, "1/{every} allowed: recall {r}");
        for q in qs.chunks_exact(dim).take(5) {
            let (res, _) = idx
                .search(q, 10, &lists(8), Some(&allow))
                .expect("filtered");
            assert_eq!(res.len(), 10, "k hits when at least k are allowed");
        }
    }
    // Fewer allowed than k: all of them.
    let three: RoaringBitmap = [5u32, 900, 2999].into_iter().collect();
    let (res, _) = idx.search(q, 10, &lists(2), Some(&three)).expect("three");
    let mut got: Vec<u32> = res.iter().map(|n| n.id).collect();
    got.sort_unstable();
    assert_eq!(got, vec![5, 900, 2999]);
    // k > n: every vector, once.
    let (all, _) = idx.search(q, 5000, &lists(4), None).expect("k > n");
    let mut ids: Vec<u32> = all.iter().map(|n| n.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3000);
    // A batch answers as the queries one by one.
    let batch = idx
        .search_batch(&qs[..8 * dim], 10, &lists(8), None)
        .expect("batch");
    for (i, (r, _)) in batch.iter().enumerate() {
        let (one, _) = idx
            .search(&qs[i * dim..(i + 1) * dim], 10, &lists(8), None)
            .expect("one");
        assert_eq!(r, &one, "query {i}");
    }
    // vectors() returns the stored rows, in the order asked.
    let want = [2999u32, 0, 1234, 1234];
    let got = idx.vectors(&want).expect("vectors");
    for (j, &id) in want.iter().enumerate() {
        assert_eq!(
            &got[j * dim..(j + 1) * dim],
            &rows[id as usize * dim..(id as usize + 1) * dim]
        );
    }
    let every: Vec<u32> = (0..3000).collect();
    assert_eq!(idx.vectors(&every).expect("all"), rows);
    assert!(idx.vectors(&[3000]).is_err(), "id out of range");
}

#[test]
fn bad_queries_and_parameters_get_clear_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dim = 8;
    let rows = random_rows(500, dim, 14);
    let dir = build(
        tmp.path(),
        &rows,
        dim,
        Metric::L2,
        ClusterKind::Ivf,
        &small(ClusterKind::Ivf),
    );
    let idx = open(&dir, &opts(Backend::Pread, 0)).expect("open");
    // IVF lists hold the vectors: vectors() finds them through the locator.
    let got = idx.vectors(&[499, 0]).expect("vectors");
    assert_eq!(&got[..dim], &rows[499 * dim..500 * dim]);
    assert_eq!(&got[dim..], &rows[..dim]);
    let e = idx.search(&[0.0; 9], 10, &lists(4), None).expect_err("dim");
    assert!(e.to_string().contains("expected 8"), "{e}");
    let mut nan = vec![0.0; dim];
    nan[3] = f32::NAN;
    let e = idx.search(&nan, 10, &lists(4), None).expect_err("nan");
    assert!(
        e.to_string().contains("component 3") || e.to_string().contains("index 3"),
        "{e}"
    );
    let e = idx
        .search(&[0.0; 8], 0, &lists(4), None)
        .expect_err("k = 0");
    assert!(e.to_string().contains("k = 0"), "{e}");
    let e = idx
        .search(&[0.0; 8], 10, &lists(0), None)
        .expect_err("0 lists");
    assert!(e.to_string().contains("at least 1"), "{e}");
    let bad_eps = SearchParams {
        eps: Some(-1.0),
        ..lists(4)
    };
    let e = idx.search(&[0.0; 8], 10, &bad_eps, None).expect_err("eps");
    assert!(e.to_string().contains("eps = -1"), "{e}");
    // A remote caller's rerank could otherwise ask for a candidate buffer of any size.
    let huge = SearchParams {
        rerank: Some(u32::MAX as usize),
        ..lists(4)
    };
    let e = idx.search(&[0.0; 8], 10, &huge, None).expect_err("rerank");
    assert!(
        e.to_string().contains("rerank 4294967295 exceeds 100000"),
        "{e}"
    );
    // Build parameters.
    let input = crate::write_input(tmp.path(), &Matrix::from_f32(dim, rows), Metric::L2);
    for (p, want) in [
        (
            SpannParams {
                replicas: Some(9),
                ..SpannParams::defaults(ClusterKind::Spann)
            },
            "--replicas 9",
        ),
        (
            SpannParams {
                max_list_bytes: 10,
                ..SpannParams::defaults(ClusterKind::Spann)
            },
            "--max-list-bytes 10",
        ),
        (
            SpannParams {
                closure_eps: f32::NAN,
                ..SpannParams::defaults(ClusterKind::Spann)
            },
            "--closure-eps",
        ),
        (
            SpannParams {
                rng_factor: Some(0.0),
                ..SpannParams::defaults(ClusterKind::Spann)
            },
            "--rng-factor 0",
        ),
        (
            SpannParams {
                leaf_size: Some(10_000),
                ..SpannParams::defaults(ClusterKind::Spann)
            },
            "--leaf-size 10000",
        ),
        (
            SpannParams {
                spill: spann::Spill::Soar(f32::NAN),
                ..SpannParams::defaults(ClusterKind::Spann)
            },
            "--soar-lambda NaN",
        ),
    ] {
        let e = spann::build(
            &input,
            ClusterKind::Spann,
            &p,
            &tmp.path().join("bad"),
            &|_, _, _| {},
        )
        .expect_err("refused");
        assert!(e.to_string().contains(want), "{e}");
    }
}

/// On real 384-d embeddings the RNG rule at factor 1 keeps almost no replicas (centroids sit
/// about as far from each other as from their points); left to choose, the build loosens the
/// factor until a sample averages 2 copies, and that buys recall at an equal list budget.
#[test]
fn the_rng_factor_is_loosened_where_factor_one_keeps_no_replicas() {
    let Some(d) = crate::squad_dir() else {
        eprintln!("squad-minilm not found; skipping");
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let input = quiver_index::build::BuildInput {
        data: d.join("base.fbin"),
        ids: None,
        payloads: None,
        metric: Metric::L2,
    };
    let qm = quiver_index::dataset::read_matrix(&d.join("query.fbin")).expect("queries");
    let qs: Vec<f32> = qm.to_f32()[..300 * qm.dim].to_vec();
    let base = quiver_index::dataset::read_matrix(&d.join("base.fbin"))
        .expect("base")
        .to_f32();
    let mut out = Vec::new();
    for (name, f) in [("fixed", Some(1.0)), ("auto", None)] {
        let p = SpannParams {
            rng_factor: f,
            spill: spann::Spill::Rng,
            ..SpannParams::defaults(ClusterKind::Spann)
        };
        let dir = tmp.path().join(name);
        spann::build(&input, ClusterKind::Spann, &p, &dir, &|_, _, _| {}).expect("build");
        let rep = build_param(&dir, "replication").as_f64().expect("rep");
        let factor = build_param(&dir, "rng_factor").as_f64().expect("factor");
        let idx = open(&dir, &opts(Backend::Pread, 0)).expect("open");
        let r = mean_recall(idx.as_ref(), &base, &qs, Metric::L2, &lists(8), None);
        out.push((rep, factor, r));
    }
    let ((rep1, f1, r1), (rep, f, r)) = (out[0], out[1]);
    assert_eq!(f1, 1.0);
    assert!(rep1 < 1.5, "factor 1 keeps few replicas at 384-d: {rep1}");
    assert!(
        f > 1.0 && spann::RNG_LADDER.contains(&(f as f32)),
        "picked {f}"
    );
    assert!(rep >= 2.5, "the picked factor replicates: {rep}");
    assert!(
        r > r1 + 0.05,
        "recall at 8 lists: auto {r} vs factor 1 {r1}"
    );
}

#[test]
fn truncated_and_corrupt_posting_files_are_reported_with_file_and_offset() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dim = 16;
    let rows = random_rows(3000, dim, 15);
    let dir = build(
        tmp.path(),
        &rows,
        dim,
        Metric::L2,
        ClusterKind::Spann,
        &small(ClusterKind::Spann),
    );
    let file = dir.join(spann::POSTINGS_FILE);
    let good = std::fs::read(&file).expect("read");
    // A flipped byte in the postings (the last section before the footer, so inside the last
    // third of the file): open succeeds, the search that reads that list fails naming the file
    // and the offset.
    let mut bad = good.clone();
    let off = good.len() - good.len() / 5;
    bad[off] ^= 0x5a;
    std::fs::write(&file, &bad).expect("write");
    let idx = open(&dir, &opts(Backend::Pread, 0)).expect("open reads directory, not postings");
    let all = SearchParams {
        max_lists: Some(100_000),
        eps: Some(1e9),
        ..Default::default()
    };
    let e = idx
        .search(&rows[..dim], 10, &all, None)
        .expect_err("corrupt list read");
    let msg = e.to_string();
    assert!(
        msg.contains("postings.qbf") && msg.contains("offset"),
        "{msg}"
    );
    // Truncated: refused at open, naming the file.
    std::fs::write(&file, &good[..good.len() - 5000]).expect("write");
    let e = open(&dir, &opts(Backend::Pread, 0))
        .err()
        .expect("truncated");
    assert!(e.to_string().contains("postings.qbf"), "{e}");
    // The full-precision rows beside SQ8 lists: a flipped byte fails the re-rank that reads
    // it, naming vectors.qbf; truncated, it is refused at open.
    std::fs::write(&file, &good).expect("restore");
    let vfile = dir.join(spann::VECTORS_FILE);
    let vgood = std::fs::read(&vfile).expect("read");
    let mut vbad = vgood.clone();
    vbad[4096 + 100] ^= 0x5a;
    std::fs::write(&vfile, &vbad).expect("write");
    let idx = open(&dir, &opts(Backend::Pread, 0)).expect("open");
    let e = idx.vectors(&[0, 1, 2]).expect_err("corrupt row block");
    assert!(
        e.to_string().contains("vectors.qbf") && e.to_string().contains("offset"),
        "{e}"
    );
    std::fs::write(&vfile, &vgood[..vgood.len() - 5000]).expect("write");
    let e = open(&dir, &opts(Backend::Pread, 0))
        .err()
        .expect("truncated rows");
    assert!(e.to_string().contains("vectors.qbf"), "{e}");
    // Missing file.
    std::fs::remove_file(&file).expect("rm");
    let e = open(&dir, &opts(Backend::Pread, 0)).err().expect("missing");
    assert!(e.to_string().contains("postings.qbf"), "{e}");
}

/// SOAR (the default spill) against spilling to the nearest centroids, at the same number of
/// copies: SOAR's copies sit where the primary's residual is most orthogonal, which finds more
/// of a query's neighbours in the same number of lists. The build also records its plan: the
/// copies it picked (up to 8), cheapest estimate first.
#[test]
fn soar_copies_find_more_neighbours_than_nearest_centroid_copies() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (dim, n) = (128, 20_000);
    let mut p = quiver_index::synth::SynthParams::defaults(n, dim, 5);
    p.normalize = false;
    let mx = quiver_index::synth::Mixture::new(p);
    let rows = mx.base(n);
    let qs = mx.queries(400, quiver_index::synth::QuerySkew::Uniform);
    let input = crate::write_input(tmp.path(), &Matrix::from_f32(dim, rows.clone()), Metric::L2);
    // The default build plans its copies and records the plan.
    let plan_dir = tmp.path().join("plan");
    let planned = SpannParams {
        sq8: Some(false),
        ..SpannParams::defaults(ClusterKind::Spann)
    };
    spann::build(
        &input,
        ClusterKind::Spann,
        &planned,
        &plan_dir,
        &|_, _, _| {},
    )
    .expect("plan");
    assert_eq!(build_param(&plan_dir, "spill"), "soar");
    let copies = build_param(&plan_dir, "copies").as_u64().expect("copies") as usize;
    assert!(
        (2..=spann::MAX_REPLICAS).contains(&copies),
        "picked {copies} copies"
    );
    let plan = build_param(&plan_dir, "plan");
    let rows_of_plan = plan.as_array().expect("plan");
    let costs: Vec<f64> = rows_of_plan
        .iter()
        .map(|c| c["cost"].as_f64().expect("cost"))
        .collect();
    assert!(
        !costs.is_empty() && costs.windows(2).all(|w| w[0] <= w[1]),
        "{plan}"
    );
    // The pick is the cheapest row under the codes asked for (full vectors here).
    let first_full = rows_of_plan
        .iter()
        .find(|c| c["sq8"] == false)
        .expect("a full-vector row");
    assert_eq!(first_full["copies"].as_u64(), Some(copies as u64), "{plan}");
    let rep = build_param(&plan_dir, "replication").as_f64().expect("rep");
    assert!((rep - copies as f64).abs() < 0.01, "{rep} vs {copies}");
    // SOAR and nearest-centroid spilling (RNG rule off, no distance limit), 4 copies each.
    let soar_dir = tmp.path().join("soar");
    let soar = SpannParams {
        replicas: Some(4),
        ..planned
    };
    spann::build(&input, ClusterKind::Spann, &soar, &soar_dir, &|_, _, _| {}).expect("soar");
    let near_dir = tmp.path().join("near");
    let near = SpannParams {
        replicas: Some(4),
        sq8: Some(false),
        spill: spann::Spill::Rng,
        rng_factor: Some(f32::INFINITY),
        closure_eps: 1e9,
        ..SpannParams::defaults(ClusterKind::Spann)
    };
    spann::build(&input, ClusterKind::Spann, &near, &near_dir, &|_, _, _| {}).expect("near");
    for dir in [&soar_dir, &near_dir] {
        let rep = build_param(dir, "replication").as_f64().expect("rep");
        assert!((rep - 4.0).abs() < 0.05, "{}: {rep} copies", dir.display());
    }
    let recall = |dir: &Path| {
        let idx = open(dir, &opts(Backend::Pread, 0)).expect("open");
        mean_recall(idx.as_ref(), &rows, &qs, Metric::L2, &lists(8), None)
    };
    let (r_soar, r_near) = (recall(&soar_dir), recall(&near_dir));
    // Measured: 4 copies, recall at 8 lists 0.880 against 0.859.
    assert!(
        r_soar > r_near + 0.01,
        "{copies} copies: soar {r_soar} vs nearest {r_near}"
    );
}

#[test]
fn rerank_zero_returns_the_same_ids_with_code_estimates_and_no_row_reads() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dim = 32;
    let (rows, qs, idx) = small_spann(tmp.path(), 4000, dim, 5);
    let approx = SearchParams {
        rerank: Some(0),
        ..lists(8)
    };
    let (mut saved, mut worst) = (0u64, 0f32);
    for q in qs.chunks_exact(dim) {
        let (exact, se) = idx.search(q, 10, &lists(8), None).expect("search");
        let (est, sa) = idx.search(q, 10, &approx, None).expect("search");
        // Re-ranking exactly k candidates only orders them: the same ids either way.
        let mut a: Vec<u32> = exact.iter().map(|n| n.id).collect();
        let mut b: Vec<u32> = est.iter().map(|n| n.id).collect();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
        // The lists are the same reads; the rows are not read at all.
        assert_eq!(sa.lists, se.lists);
        assert!(sa.reads < se.reads, "{sa:?} vs {se:?}");
        saved += se.reads - sa.reads;
        // Each estimate is the distance to the rounded row: within a few percent here.
        for n in &est {
            let r = &rows[n.id as usize * dim..(n.id as usize + 1) * dim];
            let d: f32 = r.iter().zip(q).map(|(x, y)| (x - y) * (x - y)).sum();
            worst = worst.max((n.dist - d).abs() / d.max(1e-6));
        }
        assert!(est.windows(2).all(|w| w[0].dist <= w[1].dist), "sorted");
    }
    assert!(saved >= 5 * (qs.len() / dim) as u64, "{saved} reads saved");
    assert!(worst < 0.05, "worst relative error {worst}");
}
