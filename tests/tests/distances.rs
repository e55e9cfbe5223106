//! SIMD kernels agree with the scalar reference; top-k selection and merge equal a full sort.

use proptest::prelude::*;
use quiver_index::distance::{scalar, Element};
use quiver_index::topk::{merge_topk, Neighbor, TopK};
use quiver_index::Metric;

fn close(a: f32, b: f64, scale: f64) -> bool {
    (a as f64 - b).abs() <= 1e-3 * scale.max(1.0)
}

fn check<T: Element>(a: &[T], b: &[T]) -> Result<(), TestCaseError> {
    let scale: f64 = a
        .iter()
        .chain(b)
        .map(|x| (x.to_f32() as f64).powi(2))
        .sum::<f64>();
    prop_assert!(
        close(T::l2sq(a, b), scalar::l2sq(a, b), scale),
        "l2sq {} vs {}",
        T::l2sq(a, b),
        scalar::l2sq(a, b)
    );
    prop_assert!(
        close(T::dot(a, b), scalar::dot(a, b), scale),
        "dot {} vs {}",
        T::dot(a, b),
        scalar::dot(a, b)
    );
    let c = T::cos_dist(a, b);
    prop_assert!(
        (c as f64 - scalar::cos_dist(a, b)).abs() < 2e-2,
        "cos {} vs {}",
        c,
        scalar::cos_dist(a, b)
    );
    for m in [Metric::L2, Metric::Ip] {
        prop_assert!(close(
            T::distance(m, a, b),
            scalar::distance(m, a, b),
            scale
        ));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn f32_simd_matches_scalar(v in proptest::collection::vec((-10.0f32..10.0, -10.0f32..10.0), 1..800)) {
        let (a, b): (Vec<f32>, Vec<f32>) = v.into_iter().unzip();
        check(&a, &b)?;
    }

    #[test]
    fn f16_simd_matches_scalar(v in proptest::collection::vec((-4.0f32..4.0, -4.0f32..4.0), 1..800)) {
        let a: Vec<half::f16> = v.iter().map(|x| half::f16::from_f32(x.0)).collect();
        let b: Vec<half::f16> = v.iter().map(|x| half::f16::from_f32(x.1)).collect();
        check(&a, &b)?;
    }

    #[test]
    fn i8_simd_matches_scalar(v in proptest::collection::vec((any::<i8>(), any::<i8>()), 1..800)) {
        let (a, b): (Vec<i8>, Vec<i8>) = v.into_iter().unzip();
        check(&a, &b)?;
    }

    #[test]
    fn u8_simd_matches_scalar(v in proptest::collection::vec((any::<u8>(), any::<u8>()), 1..800)) {
        let (a, b): (Vec<u8>, Vec<u8>) = v.into_iter().unzip();
        check(&a, &b)?;
    }

    #[test]
    fn topk_equals_sort(d in proptest::collection::vec(0u8..20, 0..300), k in 1usize..40) {
        // Few distinct distances: ties are common, and must break by ascending id.
        let mut t = TopK::new(k);
        for (i, &x) in d.iter().enumerate() { t.push(i as u32, x as f32); }
        let mut all: Vec<Neighbor> = d.iter().enumerate().map(|(i, &x)| Neighbor { id: i as u32, dist: x as f32 }).collect();
        all.sort_by(|a, b| a.dist.total_cmp(&b.dist).then(a.id.cmp(&b.id)));
        all.truncate(k);
        prop_assert_eq!(t.into_sorted_vec(), all);
    }

    #[test]
    fn merge_equals_sort_of_union(lists in proptest::collection::vec(proptest::collection::vec((0u32..500, 0u8..30), 0..50), 0..6), k in 1usize..60) {
        let lists: Vec<Vec<Neighbor>> = lists.into_iter().map(|l| {
            let mut v: Vec<Neighbor> = l.into_iter().map(|(id, d)| Neighbor { id, dist: d as f32 }).collect();
            v.sort_by(|a, b| a.cmp_key(b));
            v
        }).collect();
        let merged = merge_topk(&lists, k);
        let mut all: Vec<Neighbor> = lists.iter().flatten().copied().collect();
        all.sort_by(|a, b| a.cmp_key(b));
        let mut seen = std::collections::HashSet::new();
        let want: Vec<Neighbor> = all.into_iter().filter(|n| seen.insert(n.id)).take(k).collect();
        prop_assert_eq!(merged, want);
    }
}
