//! Distance kernels: simsimd behind a safe, typed API ([`Element`]), a scalar reference
//! ([`scalar`]) that tests and benchmarks compare against, and [`Element::distance`] that applies a
//! [`Metric`]'s "smaller is closer" convention.

use crate::metric::{ElementType, Metric};
use simsimd::SpatialSimilarity;

/// A vector component type with SIMD kernels.
pub trait Element: bytemuck::Pod + Send + Sync + PartialEq + std::fmt::Debug + 'static {
    /// The runtime tag of this type.
    const TYPE: ElementType;
    /// Squared L2 distance.
    fn l2sq(a: &[Self], b: &[Self]) -> f32;
    /// Dot product.
    fn dot(a: &[Self], b: &[Self]) -> f32;
    /// Cosine distance `1 - cos` (0 for a zero vector, as simsimd defines it).
    fn cos_dist(a: &[Self], b: &[Self]) -> f32;
    /// Widening conversion.
    fn to_f32(self) -> f32;
    /// Narrowing conversion; `None` if `v` is not exactly representable (integers) or not finite.
    fn from_f32(v: f32) -> Option<Self>;

    /// Distance under `metric`, smaller is closer. For float cosine the inputs must already be
    /// normalised (the index does this once at ingest and per query).
    #[inline]
    fn distance(metric: Metric, a: &[Self], b: &[Self]) -> f32 {
        match metric {
            Metric::L2 => Self::l2sq(a, b),
            Metric::Ip => -Self::dot(a, b),
            Metric::Cosine if Self::TYPE.is_float() => 1.0 - Self::dot(a, b),
            Metric::Cosine => Self::cos_dist(a, b),
        }
    }
}

// simsimd returns None only for unequal lengths; callers guarantee equal lengths (the index
// checks the dimension once per query), so None maps to NaN, which sorts last, rather than a panic.
#[inline]
fn f(d: Option<f64>) -> f32 {
    d.map_or(f32::NAN, |x| x as f32)
}

impl Element for f32 {
    const TYPE: ElementType = ElementType::F32;
    #[inline]
    fn l2sq(a: &[f32], b: &[f32]) -> f32 {
        f(<f32 as SpatialSimilarity>::l2sq(a, b))
    }
    #[inline]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        f(<f32 as SpatialSimilarity>::dot(a, b))
    }
    #[inline]
    fn cos_dist(a: &[f32], b: &[f32]) -> f32 {
        f(<f32 as SpatialSimilarity>::cos(a, b))
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(v: f32) -> Option<f32> {
        v.is_finite().then_some(v)
    }
}

/// Widens f16 to f32 in stack chunks and applies an additive f32 kernel per chunk. simsimd's f16
/// kernels accumulate in half precision on AVX-512-FP16 CPUs (measured relative error ~1e-3 on
/// 24-d vectors), too coarse for exact search and ground truth; the f32 kernels are exact to f32.
#[inline]
fn f16_chunked(a: &[half::f16], b: &[half::f16], kernel: impl Fn(&[f32], &[f32]) -> f32) -> f32 {
    use half::slice::HalfFloatSliceExt;
    const CHUNK: usize = 256;
    let (mut x, mut y) = ([0f32; CHUNK], [0f32; CHUNK]);
    let mut acc = 0f32;
    for (ca, cb) in a.chunks(CHUNK).zip(b.chunks(CHUNK)) {
        let n = ca.len().min(cb.len());
        ca[..n].convert_to_f32_slice(&mut x[..n]);
        cb[..n].convert_to_f32_slice(&mut y[..n]);
        acc += kernel(&x[..n], &y[..n]);
    }
    acc
}

impl Element for half::f16 {
    const TYPE: ElementType = ElementType::F16;
    #[inline]
    fn l2sq(a: &[Self], b: &[Self]) -> f32 {
        f16_chunked(a, b, <f32 as Element>::l2sq)
    }
    #[inline]
    fn dot(a: &[Self], b: &[Self]) -> f32 {
        f16_chunked(a, b, <f32 as Element>::dot)
    }
    #[inline]
    fn cos_dist(a: &[Self], b: &[Self]) -> f32 {
        let ab = Self::dot(a, b);
        let (aa, bb) = (Self::dot(a, a), Self::dot(b, b));
        if aa == 0.0 && bb == 0.0 {
            0.0
        } else if aa == 0.0 || bb == 0.0 {
            1.0
        } else {
            1.0 - ab / (aa.sqrt() * bb.sqrt())
        }
    }
    fn to_f32(self) -> f32 {
        self.to_f32()
    }
    fn from_f32(v: f32) -> Option<Self> {
        let h = half::f16::from_f32(v);
        (v.is_finite() && h.is_finite()).then_some(h)
    }
}

/// simsimd's own f16 kernels (half-precision accumulation on AVX-512-FP16), kept for the
/// benchmark that justifies [`Element`]'s f16 choice.
pub fn simsimd_f16_l2sq(a: &[half::f16], b: &[half::f16]) -> f32 {
    f(<simsimd::f16 as SpatialSimilarity>::l2sq(
        crate::simd::as_simsimd_f16(a),
        crate::simd::as_simsimd_f16(b),
    ))
}

impl Element for i8 {
    const TYPE: ElementType = ElementType::I8;
    #[inline]
    fn l2sq(a: &[i8], b: &[i8]) -> f32 {
        f(<i8 as SpatialSimilarity>::l2sq(a, b))
    }
    #[inline]
    fn dot(a: &[i8], b: &[i8]) -> f32 {
        f(<i8 as SpatialSimilarity>::dot(a, b))
    }
    #[inline]
    fn cos_dist(a: &[i8], b: &[i8]) -> f32 {
        f(<i8 as SpatialSimilarity>::cos(a, b))
    }
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn from_f32(v: f32) -> Option<i8> {
        (v.fract() == 0.0 && (-128.0..=127.0).contains(&v)).then_some(v as i8)
    }
}

impl Element for u8 {
    const TYPE: ElementType = ElementType::U8;
    #[inline]
    fn l2sq(a: &[u8], b: &[u8]) -> f32 {
        crate::simd::l2sq_u8(a, b) as f32
    }
    #[inline]
    fn dot(a: &[u8], b: &[u8]) -> f32 {
        crate::simd::dot_u8(a, b) as f32
    }
    #[inline]
    fn cos_dist(a: &[u8], b: &[u8]) -> f32 {
        crate::simd::cos_u8(a, b) as f32
    }
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn from_f32(v: f32) -> Option<u8> {
        (v.fract() == 0.0 && (0.0..=255.0).contains(&v)).then_some(v as u8)
    }
}

/// Normalises `v` to unit length in place (a zero vector is left as is).
pub fn normalize(v: &mut [f32]) {
    let n = <f32 as Element>::dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Scalar reference kernels, computed in f64: the ground truth for property tests and the
/// baseline in benchmarks.
pub mod scalar {
    use super::{Element, Metric};

    /// Squared L2.
    pub fn l2sq<T: Element>(a: &[T], b: &[T]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x.to_f32() as f64 - y.to_f32() as f64).powi(2))
            .sum()
    }

    /// Dot product.
    pub fn dot<T: Element>(a: &[T], b: &[T]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.to_f32() as f64 * y.to_f32() as f64)
            .sum()
    }

    /// Cosine distance `1 - cos`; 0 if either vector is zero (simsimd's convention).
    pub fn cos_dist<T: Element>(a: &[T], b: &[T]) -> f64 {
        let (ab, aa, bb) = (dot(a, b), dot(a, a), dot(b, b));
        if aa == 0.0 && bb == 0.0 {
            0.0
        } else if aa == 0.0 || bb == 0.0 {
            1.0
        } else {
            1.0 - ab / (aa.sqrt() * bb.sqrt())
        }
    }

    /// Distance under `metric` with the same conventions as [`Element::distance`].
    pub fn distance<T: Element>(metric: Metric, a: &[T], b: &[T]) -> f64 {
        match metric {
            Metric::L2 => l2sq(a, b),
            Metric::Ip => -dot(a, b),
            Metric::Cosine if T::TYPE.is_float() => 1.0 - dot(a, b),
            Metric::Cosine => cos_dist(a, b),
        }
    }
}
