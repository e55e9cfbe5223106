//! The `quiver` command end to end (through its library entry point): the README pipeline on a
//! small set, and bad input giving errors that name file and offset or row.

use quiver_cli::run_args;

fn q(args: &[&str]) -> anyhow::Result<()> {
    let mut v = vec!["quiver"];
    v.extend_from_slice(args);
    run_args(v)
}

#[test]
fn gen_gt_build_bench_inspect_pipeline() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().to_str().expect("utf8");
    q(&[
        "dataset",
        "gen",
        "--n",
        "3000",
        "--dim",
        "16",
        "--queries",
        "50",
        "--out",
        d,
    ])
    .expect("gen");
    q(&[
        "dataset",
        "gen",
        "--n",
        "3000",
        "--dim",
        "16",
        "--queries",
        "50",
        "--out",
        &format!("{d}/again"),
    ])
    .expect("gen again");
    assert_eq!(
        std::fs::read(format!("{d}/base.fbin")).expect("a"),
        std::fs::read(format!("{d}/again/base.fbin")).expect("b"),
        "deterministic from the seed"
    );
    q(&[
        "dataset",
        "gen",
        "--n",
        "100",
        "--dim",
        "16",
        "--queries",
        "50",
        "--skew",
        "zipf:1.2",
        "--out",
        &format!("{d}/zipf"),
    ])
    .expect("zipf");
    q(&[
        "dataset",
        "info",
        &format!("{d}/base.fbin"),
        "--sample",
        "50",
    ])
    .expect("info");
    q(&[
        "dataset",
        "gt",
        "--base",
        &format!("{d}/base.fbin"),
        "--queries",
        &format!("{d}/query.fbin"),
        "-k",
        "20",
        "--out",
        &format!("{d}/gt.ibin"),
    ])
    .expect("gt");
    assert!(std::path::Path::new(&format!("{d}/gt_dist.fbin")).exists());
    q(&[
        "build",
        "--kind",
        "flat",
        "--data",
        &format!("{d}/base.fbin"),
        "--out",
        &format!("{d}/flat"),
    ])
    .expect("build");
    q(&[
        "bench",
        "--index",
        &format!("{d}/flat"),
        "--queries",
        &format!("{d}/query.fbin"),
        "--gt",
        &format!("{d}/gt.ibin"),
        "-k",
        "10",
        "--json",
    ])
    .expect("bench");
    // The graph indices through the same commands, with their knobs.
    for (kind, knobs, bench) in [
        (
            "diskann",
            vec![
                "--max-degree",
                "16",
                "--build-list",
                "32",
                "--pq-bytes",
                "4",
            ],
            vec![
                "--backend",
                "uring",
                "--search-list",
                "20,40",
                "--hot-nodes",
                "100",
            ],
        ),
        (
            "hnsw",
            vec!["--m", "8", "--ef-construction", "40"],
            vec!["--backend", "mmap", "--ef", "16,32"],
        ),
    ] {
        let out = format!("{d}/{kind}");
        let data = format!("{d}/base.fbin");
        let mut b = vec!["build", "--kind", kind, "--data", &data, "--out", &out];
        b.extend(knobs);
        q(&b).unwrap_or_else(|e| panic!("build {kind}: {e:#}"));
        let (qf, gf) = (format!("{d}/query.fbin"), format!("{d}/gt.ibin"));
        let mut r = vec![
            "bench",
            "--index",
            &out,
            "--queries",
            &qf,
            "--gt",
            &gf,
            "--json",
        ];
        r.extend(bench);
        q(&r).unwrap_or_else(|e| panic!("bench {kind}: {e:#}"));
        q(&["inspect", &out, "--verify"]).unwrap_or_else(|e| panic!("inspect {kind}: {e:#}"));
    }
    q(&["inspect", &format!("{d}/flat"), "--verify"]).expect("inspect");
    // Corrupt one data block: inspect --verify names file and offset.
    let v = format!("{d}/flat/vectors.qbf");
    let mut b = std::fs::read(&v).expect("read");
    b[4096 * 3 + 5] ^= 1;
    std::fs::write(&v, &b).expect("write");
    let e = format!(
        "{:#}",
        q(&["inspect", &format!("{d}/flat"), "--verify"]).expect_err("corrupt")
    );
    assert!(
        e.contains("vectors.qbf") && e.contains("offset 12288"),
        "{e}"
    );
    let e = format!(
        "{:#}",
        q(&[
            "bench",
            "--index",
            &format!("{d}/flat"),
            "--queries",
            &format!("{d}/query.fbin"),
            "--gt",
            &format!("{d}/gt.ibin")
        ])
        .expect_err("corrupt at open")
    );
    assert!(e.contains("offset 12288"), "{e}");
}

#[test]
fn bad_input_errors_name_what_is_wrong() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().to_str().expect("utf8");
    q(&[
        "dataset",
        "gen",
        "--n",
        "200",
        "--dim",
        "8",
        "--queries",
        "10",
        "--out",
        d,
    ])
    .expect("gen");
    let e = format!(
        "{:#}",
        q(&[
            "build",
            "--data",
            &format!("{d}/missing.fbin"),
            "--out",
            &format!("{d}/x")
        ])
        .expect_err("missing")
    );
    assert!(e.contains("missing.fbin"), "{e}");
    let e = format!(
        "{:#}",
        q(&[
            "build",
            "--kind",
            "nope",
            "--data",
            &format!("{d}/base.fbin"),
            "--out",
            &format!("{d}/x")
        ])
        .expect_err("kind")
    );
    assert!(e.contains("nope"), "{e}");
    q(&[
        "dataset",
        "gen",
        "--n",
        "200",
        "--dim",
        "9",
        "--queries",
        "10",
        "--out",
        &format!("{d}/nine"),
    ])
    .expect("gen 9");
    let e = format!(
        "{:#}",
        q(&[
            "dataset",
            "gt",
            "--base",
            &format!("{d}/base.fbin"),
            "--queries",
            &format!("{d}/nine/query.fbin"),
            "-k",
            "5",
            "--out",
            &format!("{d}/g.ibin")
        ])
        .expect_err("dim")
    );
    assert!(e.contains("dimension 9, expected 8"), "{e}");
    let e = format!(
        "{:#}",
        q(&[
            "dataset",
            "gt",
            "--base",
            &format!("{d}/base.fbin"),
            "--queries",
            &format!("{d}/query.fbin"),
            "-k",
            "500",
            "--out",
            &format!("{d}/g.ibin")
        ])
        .expect_err("k > n")
    );
    assert!(e.contains("k = 500"), "{e}");
    let e = format!(
        "{:#}",
        q(&["inspect", &format!("{d}/nowhere")]).expect_err("no index")
    );
    assert!(e.contains("manifest.json"), "{e}");
    assert!(
        q(&[
            "bench",
            "--index",
            d,
            "--queries",
            "x",
            "--gt",
            "y",
            "--threads",
            "nope"
        ])
        .is_err(),
        "clap rejects bad numbers"
    );
}
