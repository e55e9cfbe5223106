//! Vector file formats: round trips of every format, chunked streaming, and precise errors for
//! truncated, mis-dimensioned and NaN-bearing files; parsers never panic on random bytes.

use proptest::prelude::*;
use quiver_index::dataset::{read_matrix, write_matrix, Matrix, VecData, VectorFileReader};
use quiver_index::manifest::Manifest;
use std::path::Path;

fn sample(dtype: &str, rows: usize, dim: usize) -> Matrix {
    let n = rows * dim;
    let data = match dtype {
        "f32" => VecData::F32((0..n).map(|i| i as f32 * 0.5 - 3.0).collect()),
        "f16" => VecData::F16(
            (0..n)
                .map(|i| half::f16::from_f32(i as f32 * 0.25))
                .collect(),
        ),
        "i8" => VecData::I8((0..n).map(|i| (i % 256) as u8 as i8).collect()),
        "u8" => VecData::U8((0..n).map(|i| (i * 3 % 256) as u8).collect()),
        _ => VecData::I32((0..n).map(|i| i as i32 - 7).collect()),
    };
    Matrix { dim, data }
}

#[test]
fn every_format_round_trips_and_streams_in_chunks() {
    let dir = tempfile::tempdir().expect("tmp");
    let cases = [
        ("a.fvecs", "f32"),
        ("a.ivecs", "i32"),
        ("a.bvecs", "u8"),
        ("a.fbin", "f32"),
        ("a.ibin", "i32"),
        ("a.u8bin", "u8"),
        ("a.i8bin", "i8"),
        ("a.f16bin", "f16"),
        ("f.npy", "f32"),
        ("h.npy", "f16"),
        ("b.npy", "i8"),
        ("c.npy", "u8"),
        ("d.npy", "i32"),
    ];
    for (name, dt) in cases {
        let p = dir.path().join(name);
        let m = sample(dt, 1001, 7);
        write_matrix(&p, &m).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            read_matrix(&p).unwrap_or_else(|e| panic!("{name}: {e}")),
            m,
            "{name}"
        );
        let mut r = VectorFileReader::open(&p).expect("open");
        assert_eq!((r.rows(), r.dim()), (1001, 7), "{name}");
        let mut rows = 0;
        while let Some(c) = r.read_chunk(100).expect("chunk") {
            assert!(c.rows() <= 100);
            rows += c.rows();
        }
        assert_eq!(rows, 1001, "{name}");
    }
}

fn err_of(p: &Path) -> String {
    read_matrix(p).expect_err("must fail").to_string()
}

#[test]
fn truncated_and_misdimensioned_files_name_file_and_offset_or_row() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("t.fbin");
    write_matrix(&p, &sample("f32", 10, 4)).expect("write");
    let b = std::fs::read(&p).expect("read");
    std::fs::write(&p, &b[..b.len() - 3]).expect("cut");
    let e = err_of(&p);
    assert!(
        e.contains("t.fbin")
            && e.contains("truncated")
            && e.contains("row 9")
            && e.contains("offset 152"),
        "{e}"
    );

    // Header claims dim 5 for data written with dim 4.
    let mut b2 = b.clone();
    b2[4..8].copy_from_slice(&5i32.to_le_bytes());
    std::fs::write(&p, &b2).expect("write");
    let e = err_of(&p);
    assert!(
        e.contains("t.fbin") && (e.contains("truncated") || e.contains("dimension")),
        "{e}"
    );

    // fvecs with one row of another dimension.
    let f = dir.path().join("m.fvecs");
    write_matrix(&f, &sample("f32", 3, 4)).expect("write");
    let mut b = std::fs::read(&f).expect("read");
    let row2 = 2 * (4 + 16);
    b[row2..row2 + 4].copy_from_slice(&3i32.to_le_bytes());
    b.truncate(b.len() - 4);
    b.extend_from_slice(&[0; 4]); // keep the length a multiple of a row
    std::fs::write(&f, &b).expect("write");
    let e = err_of(&f);
    assert!(
        e.contains("m.fvecs") && e.contains("row 2") && e.contains("offset 40"),
        "{e}"
    );

    // Ragged fvecs.
    std::fs::write(&f, &b[..b.len() - 1]).expect("write");
    let e = err_of(&f);
    assert!(e.contains("m.fvecs") && e.contains("row 2"), "{e}");

    // Empty and unknown files.
    let empty = dir.path().join("e.fvecs");
    std::fs::write(&empty, b"").expect("write");
    assert!(err_of(&empty).contains("e.fvecs"));
    let unk = dir.path().join("x.csv");
    std::fs::write(&unk, b"1,2").expect("write");
    assert!(err_of(&unk).contains("extension"));
}

#[test]
fn nan_and_infinity_are_rejected_with_row_and_component() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("n.fbin");
    let mut m = sample("f32", 5, 3);
    if let VecData::F32(v) = &mut m.data {
        v[3 * 3 + 1] = f32::NAN;
    }
    write_matrix(&p, &m).expect("write");
    let e = err_of(&p);
    assert!(
        e.contains("n.fbin")
            && e.contains("row 3")
            && e.contains("component 1")
            && e.contains("NaN"),
        "{e}"
    );
    let h = dir.path().join("n.npy");
    let m = Matrix {
        dim: 2,
        data: VecData::F16(vec![half::f16::ONE, half::f16::INFINITY]),
    };
    write_matrix(&h, &m).expect("write");
    assert!(err_of(&h).contains("row 0"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn vector_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), ext in prop::sample::select(vec!["fbin", "ibin", "u8bin", "fvecs", "ivecs", "bvecs", "npy"])) {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join(format!("r.{ext}"));
        std::fs::write(&p, &bytes).expect("write");
        let _ = read_matrix(&p);
    }

    #[test]
    fn mutated_npy_headers_never_panic(flips in proptest::collection::vec((0usize..128, any::<u8>()), 1..6)) {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("m.npy");
        write_matrix(&p, &sample("f32", 4, 3)).expect("write");
        let mut b = std::fs::read(&p).expect("read");
        for (at, x) in flips { b[at] ^= x; }
        std::fs::write(&p, &b).expect("write");
        let _ = read_matrix(&p);
    }

    #[test]
    fn manifest_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Manifest::parse(Path::new("manifest.json"), &bytes);
    }

    #[test]
    fn mutated_manifests_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let good = std::fs::read(crate::fixtures_dir().join("flat-v1.0/manifest.json")).expect("fixture");
        let mut b = good.clone();
        for (at, x) in flips { let i = at % b.len(); b[i] ^= x; }
        let _ = Manifest::parse(Path::new("manifest.json"), &b);
    }
}

#[test]
fn manifest_from_a_newer_major_is_refused_clearly() {
    let good = std::fs::read_to_string(crate::fixtures_dir().join("flat-v1.0/manifest.json"))
        .expect("fixture");
    let newer = good.replacen(
        "\"format_version\": [\n    1,",
        "\"format_version\": [\n    2,",
        1,
    );
    assert_ne!(good, newer, "fixture layout changed; update this test");
    let e = Manifest::parse(Path::new("m.json"), newer.as_bytes()).expect_err("newer");
    assert!(
        e.to_string().contains("2.0") && e.to_string().contains("newer"),
        "{e}"
    );
    assert!(Manifest::parse(Path::new("m.json"), good.as_bytes()).is_ok());
}
