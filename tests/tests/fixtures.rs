//! Frozen fixtures of every released format version. A format change that breaks reading them
//! fails here. Regenerate only on purpose:
//! `QUIVER_REGEN_FIXTURES=1 cargo test fixtures -- --test-threads=1` (other fixture tests read
//! what the regeneration writes).

use crate::fixtures_dir;
use quiver_index::build::BuildInput;
use quiver_index::dataset::{read_matrix, write_matrix, Matrix};
use quiver_index::ids::ExternalIds;
use quiver_index::payloads::PayloadStore;
use quiver_index::{open, Metric, OpenOptions, SearchParams};
use quiver_storage::io::{open_reader, Backend};
use quiver_storage::{BlockFile, BlockFileWriter};

fn fixture_rows() -> Vec<f32> {
    (0..20 * 8)
        .map(|i| ((i * 37 % 101) as f32) / 10.0 - 5.0)
        .collect()
}

fn regen() {
    let d = fixtures_dir();
    std::fs::create_dir_all(&d).expect("dir");
    let mut w = BlockFileWriter::create(d.join("blockfile-v1.0.qbf"), "fixture").expect("create");
    w.write_section("greeting", b"quiver block file v1.0")
        .expect("s");
    let big: Vec<u8> = (0..9000u32).map(|i| (i % 251) as u8).collect();
    w.write_section("ramp", &big).expect("s");
    w.finish().expect("finish");
    let data = d.join("flat-v1.0-data.fbin");
    write_matrix(&data, &Matrix::from_f32(8, fixture_rows())).expect("data");
    let ids = d.join("flat-v1.0-ids.txt");
    std::fs::write(
        &ids,
        (0..20).map(|i| format!("doc-{i}\n")).collect::<String>(),
    )
    .expect("ids");
    let pl = d.join("flat-v1.0-payloads.jsonl");
    std::fs::write(
        &pl,
        (0..20)
            .map(|i| format!("{{\"text\":\"chunk {i}\"}}\n"))
            .collect::<String>(),
    )
    .expect("payloads");
    let out = d.join("flat-v1.0");
    let _ = std::fs::remove_dir_all(&out);
    let input = BuildInput {
        data,
        ids: Some(ids),
        payloads: Some(pl),
        metric: Metric::L2,
    };
    quiver_index::flat::build(&input, &out, &|_| {}).expect("build");
    let out = d.join("diskann-v1.0");
    let _ = std::fs::remove_dir_all(&out);
    let p = quiver_index::diskann::DiskAnnParams {
        max_degree: 4,
        build_list: 8,
        alpha: 1.2,
        pq_bytes: Some(2),
        seed: 1,
    };
    quiver_index::diskann::build(&input, &p, &out, &|_, _, _| {}).expect("build diskann");
}

#[test]
fn block_file_v1_0_fixture_reads() {
    if std::env::var_os("QUIVER_REGEN_FIXTURES").is_some() {
        regen();
    }
    let f = BlockFile::open(fixtures_dir().join("blockfile-v1.0.qbf")).expect("fixture opens");
    assert_eq!(
        (f.header().major, f.header().minor, f.header().kind.as_str()),
        (1, 0, "fixture")
    );
    let r = open_reader(&f, Backend::Pread).expect("reader");
    assert_eq!(
        f.read_section(r.as_ref(), "greeting").expect("greeting"),
        b"quiver block file v1.0"
    );
    let ramp = f.read_section(r.as_ref(), "ramp").expect("ramp");
    assert_eq!(
        ramp,
        (0..9000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>()
    );
}

#[test]
fn flat_index_v1_0_fixture_opens_and_searches() {
    let d = fixtures_dir();
    let dir = d.join("flat-v1.0");
    let idx = open(&dir, &OpenOptions::default()).expect("fixture index opens");
    let m = idx.manifest();
    assert_eq!(
        (m.kind.as_str(), m.dim, m.n, m.format_version),
        ("flat", 8, 20, [1, 0])
    );
    let rows = read_matrix(&d.join("flat-v1.0-data.fbin"))
        .expect("data")
        .to_f32();
    assert_eq!(rows, fixture_rows(), "fixture data is frozen");
    let (res, _) = idx
        .search(&rows[8 * 7..8 * 8], 1, &SearchParams::default(), None)
        .expect("search");
    assert_eq!(res[0].id, 7);
    assert_eq!(res[0].dist, 0.0);
    let ids = ExternalIds::read(&dir, 20, true).expect("ids");
    assert_eq!(ids.strings.as_ref().map(|s| s[7].as_str()), Some("doc-7"));
    assert_eq!(ids.ids[7], quiver_index::ids::string_id("doc-7"));
    let p = PayloadStore::open(&dir).expect("payloads");
    assert_eq!(p.get(7).expect("payload")["text"], "chunk 7");
}

#[test]
fn diskann_v1_0_fixture_opens_and_searches() {
    let d = fixtures_dir();
    let dir = d.join("diskann-v1.0");
    let rows = read_matrix(&d.join("flat-v1.0-data.fbin"))
        .expect("data")
        .to_f32();
    for backend in [Backend::Pread, Backend::IoUring { queue_depth: 4 }] {
        let opts = OpenOptions {
            backend,
            cache_bytes: 0,
            hot_nodes: None,
        };
        let idx = open(&dir, &opts).expect("fixture index opens");
        let m = idx.manifest();
        assert_eq!(
            (m.kind.as_str(), m.dim, m.n, m.format_version),
            ("diskann", 8, 20, [1, 0])
        );
        assert_eq!(m.build_params["max_degree"], 4);
        assert_eq!(m.build_params["pq_bytes"], 2);
        // Every stored row finds itself at distance 0 (the exact re-rank reads the vector
        // from the node block), whatever the PQ navigation's error.
        let sp = SearchParams {
            search_list: Some(20),
            ..Default::default()
        };
        for (i, r) in rows.chunks_exact(8).enumerate() {
            let (res, s) = idx.search(r, 1, &sp, None).expect("search");
            assert_eq!((res[0].id, res[0].dist), (i as u32, 0.0), "row {i}");
            assert!(s.reads > 0);
        }
    }
    let f = BlockFile::open(dir.join("graph.qbf")).expect("graph");
    assert_eq!(f.header().kind, "diskann.graph");
    let meta = f.section("meta").expect("meta");
    assert_eq!(meta.len, 64);
}
