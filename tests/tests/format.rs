//! Block-file format: round trip, header/footer damage, truncation, and property tests feeding
//! random and mutated bytes to the parsers (errors, never panics).

use proptest::prelude::*;
use quiver_storage::format::{Header, FOOTER_BYTES};
use quiver_storage::io::{open_reader, Backend};
use quiver_storage::{BlockFile, BlockFileWriter, StorageError};
use std::path::Path;

fn write_sample(path: &Path) -> Vec<u8> {
    let mut w = BlockFileWriter::create(path, "sample").expect("create");
    let a: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    w.write_section("alpha", &a).expect("alpha");
    w.write_section("beta", b"hello").expect("beta");
    w.write_section("empty", b"").expect("empty");
    w.finish().expect("finish");
    std::fs::read(path).expect("read")
}

#[test]
fn sections_round_trip() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("s.qbf");
    write_sample(&p);
    let f = BlockFile::open(&p).expect("open");
    let r = open_reader(&f, Backend::Pread).expect("reader");
    let a: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    assert_eq!(f.read_section(r.as_ref(), "alpha").expect("alpha"), a);
    assert_eq!(
        f.read_section_range(r.as_ref(), "alpha", 4090, 10)
            .expect("range"),
        a[4090..4100].to_vec()
    );
    assert_eq!(f.read_section(r.as_ref(), "beta").expect("beta"), b"hello");
    assert!(f
        .read_section(r.as_ref(), "empty")
        .expect("empty")
        .is_empty());
    let e = f.section("gamma").expect_err("unknown section");
    assert!(e.to_string().contains("gamma"));
    assert!(
        f.read_section_range(r.as_ref(), "beta", 3, 10).is_err(),
        "range past the end"
    );
}

#[test]
fn wrong_magic_bad_footer_checksum_truncation_and_newer_major_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("s.qbf");
    let good = write_sample(&p);
    let open_with = |bytes: &[u8]| {
        std::fs::write(&p, bytes).expect("write");
        BlockFile::open(&p)
    };
    let mut b = good.clone();
    b[0] = b'X';
    let e = open_with(&b).expect_err("magic");
    assert!(matches!(e, StorageError::Corrupt { offset: 0, .. }), "{e}");
    assert!(e.to_string().contains("s.qbf"), "error names the file: {e}");

    // A section-table byte flipped: the footer checksum catches it.
    let mut b = good.clone();
    let table_at = b.len() - 4096;
    b[table_at + 3] ^= 1;
    let e = open_with(&b).expect_err("table");
    assert!(e.to_string().contains("checksum"), "{e}");

    // Cut the file: the footer is gone.
    let e = open_with(&good[..good.len() - 4096]).expect_err("truncated");
    assert!(
        matches!(
            e,
            StorageError::Corrupt { .. } | StorageError::Truncated { .. }
        ),
        "{e}"
    );
    let e = open_with(&good[..good.len() - 10]).expect_err("ragged");
    assert!(matches!(e, StorageError::Corrupt { .. }), "{e}");
    let e = open_with(&good[..20]).expect_err("tiny");
    assert!(matches!(e, StorageError::Truncated { .. }), "{e}");

    // A newer major version.
    let mut b = good.clone();
    b[8..10].copy_from_slice(&2u16.to_le_bytes());
    let e = open_with(&b).expect_err("major");
    assert!(
        matches!(e, StorageError::UnsupportedVersion { found_major: 2, .. }),
        "{e}"
    );
}

#[test]
fn a_corrupt_data_block_is_reported_with_file_and_offset_on_read_not_at_open() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("s.qbf");
    let mut b = write_sample(&p);
    b[2 * 4096 + 9] ^= 0xff; // block 2 = alpha's second block
    std::fs::write(&p, &b).expect("write");
    let f = BlockFile::open(&p).expect("open never reads data blocks");
    let r = open_reader(&f, Backend::Pread).expect("reader");
    assert!(
        f.read_section(r.as_ref(), "beta").is_ok(),
        "other sections still readable"
    );
    match f.read_section(r.as_ref(), "alpha") {
        Err(StorageError::Corrupt { path, offset, .. }) => {
            assert_eq!(path, p);
            assert_eq!(offset, 2 * 4096);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn header_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
        let _ = Header::decode(Path::new("x"), &bytes);
        let _ = Header::peek_block_size(Path::new("x"), &bytes);
    }

    #[test]
    fn open_of_mutated_files_errors_or_reads_consistently(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<Option<usize>>()) {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("m.qbf");
        let mut b = write_sample(&p);
        for (at, x) in flips {
            let i = at % b.len();
            b[i] ^= x | 1;
        }
        if let Some(c) = cut {
            b.truncate(c % (b.len() + 1));
        }
        std::fs::write(&p, &b).expect("write");
        if let Ok(f) = BlockFile::open(&p) {
            // Open passed: header/table intact, so sections are as written or reads fail cleanly.
            let r = open_reader(&f, Backend::Pread).expect("reader");
            for s in f.sections().to_vec() {
                let _ = f.read_section(r.as_ref(), &s.name);
            }
        }
    }

    #[test]
    fn random_files_never_open(bytes in proptest::collection::vec(any::<u8>(), 0..(3 * 4096 + FOOTER_BYTES))) {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("r.qbf");
        std::fs::write(&p, &bytes).expect("write");
        prop_assert!(BlockFile::open(&p).is_err());
    }
}
