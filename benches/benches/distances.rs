//! Distance-kernel throughput per metric on 384-d and 768-d f32 / f16 / i8 / u8 vectors: the
//! simsimd-backed [`Element`] kernels against the scalar reference (and simsimd's own f16 kernel,
//! which Quiver does not use for accuracy reasons; see `distance.rs`).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use quiver_index::distance::{scalar, simsimd_f16_l2sq, Element};
use quiver_index::Metric;
use rand::{Rng, SeedableRng};

fn vecs(dim: usize) -> (Vec<f32>, Vec<f32>) {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(dim as u64);
    (
        (0..dim).map(|_| r.random_range(-1.0..1.0)).collect(),
        (0..dim).map(|_| r.random_range(-1.0..1.0)).collect(),
    )
}

fn bench_type<T: Element>(c: &mut Criterion, name: &str, conv: impl Fn(f32) -> T) {
    for dim in [384usize, 768] {
        let (a, b) = vecs(dim);
        let a: Vec<T> = a.into_iter().map(&conv).collect();
        let b: Vec<T> = b.into_iter().map(&conv).collect();
        let mut g = c.benchmark_group(format!("{name}-{dim}"));
        g.throughput(Throughput::Elements(1));
        for m in [Metric::L2, Metric::Ip, Metric::Cosine] {
            g.bench_function(format!("{m}/simd"), |bn| {
                bn.iter(|| T::distance(m, black_box(&a), black_box(&b)))
            });
            g.bench_function(format!("{m}/scalar"), |bn| {
                bn.iter(|| scalar::distance(m, black_box(&a), black_box(&b)))
            });
        }
        g.finish();
    }
}

fn distances(c: &mut Criterion) {
    bench_type::<f32>(c, "f32", |x| x);
    bench_type::<half::f16>(c, "f16", half::f16::from_f32);
    bench_type::<i8>(c, "i8", |x| (x * 127.0) as i8);
    bench_type::<u8>(c, "u8", |x| ((x + 1.0) * 127.0) as u8);
    for dim in [384usize, 768] {
        let (a, b) = vecs(dim);
        let a: Vec<half::f16> = a.into_iter().map(half::f16::from_f32).collect();
        let b: Vec<half::f16> = b.into_iter().map(half::f16::from_f32).collect();
        c.bench_function(&format!("f16-{dim}/l2/simsimd-native-f16"), |bn| {
            bn.iter(|| simsimd_f16_l2sq(black_box(&a), black_box(&b)))
        });
    }
}

/// criterion's macros emit a public, undocumented fn; keep it in a private module.
mod group {
    use super::*;
    criterion_group!(benches, distances);
}
criterion_main!(group::benches);
