//! SIMD glue: simsimd's u8 kernels, which its Rust binding does not wrap. The C library compiled by
//! the `simsimd` crate exports them with run-time dispatch (AVX-512 / AVX2 / NEON / serial).

#[allow(non_camel_case_types)]
type simsimd_distance_t = f64;

extern "C" {
    fn simsimd_l2sq_u8(a: *const u8, b: *const u8, n: u64, d: *mut simsimd_distance_t);
    fn simsimd_dot_u8(a: *const u8, b: *const u8, n: u64, d: *mut simsimd_distance_t);
    fn simsimd_cos_u8(a: *const u8, b: *const u8, n: u64, d: *mut simsimd_distance_t);
}

macro_rules! u8_kernel {
    ($name:ident, $c:ident) => {
        /// simsimd kernel over equal-length u8 slices (panics in debug if lengths differ).
        pub fn $name(a: &[u8], b: &[u8]) -> f64 {
            let n = a.len().min(b.len());
            debug_assert_eq!(a.len(), b.len());
            let mut d: simsimd_distance_t = 0.0;
            // SAFETY: both pointers are valid for `n` reads (n <= each slice's length) and `d` is
            // a valid, writable f64; the C kernel reads only those bytes and writes only `d`.
            unsafe { $c(a.as_ptr(), b.as_ptr(), n as u64, &mut d) };
            d
        }
    };
}

u8_kernel!(l2sq_u8, simsimd_l2sq_u8);
u8_kernel!(dot_u8, simsimd_dot_u8);
u8_kernel!(cos_u8, simsimd_cos_u8);

/// Views `half::f16` components as simsimd's f16 type for its kernels.
pub fn as_simsimd_f16(a: &[half::f16]) -> &[simsimd::f16] {
    let bits: &[u16] = bytemuck::cast_slice(a);
    // SAFETY: simsimd::f16 is #[repr(transparent)] over u16 (as is half::f16), so the slice has
    // identical layout, length and alignment; the returned lifetime is tied to `a`.
    unsafe { std::slice::from_raw_parts(bits.as_ptr().cast::<simsimd::f16>(), bits.len()) }
}

/// Asks the CPU to pull the first cache lines (up to 1 KiB) of `bytes` toward L1: a hint
/// issued for a neighbor's vector before its distance is computed (no effect off x86_64).
#[inline]
pub fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        for off in (0..bytes.len().min(1024)).step_by(64) {
            // SAFETY: `off < bytes.len()`, so the pointer stays inside `bytes`; a prefetch is a
            // hint that never faults and reads nothing architecturally.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().add(off).cast()) };
        }
    }
}

/// Lanes of the SQ8 kernel's accumulators (two AVX2 registers; the compiler vectorizes the
/// lane loops, and separate lanes let it reorder the float sums).
const SQ_LANES: usize = 16;

#[inline(always)]
fn dot_sq8_body(q: &[f32], c: &[u8]) -> f32 {
    let mut acc = [0f32; SQ_LANES];
    let n = q.len().min(c.len());
    let full = n - n % SQ_LANES;
    for (qc, cc) in q[..full]
        .chunks_exact(SQ_LANES)
        .zip(c[..full].chunks_exact(SQ_LANES))
    {
        for l in 0..SQ_LANES {
            acc[l] += qc[l] * cc[l] as f32;
        }
    }
    for i in full..n {
        acc[0] += q[i] * c[i] as f32;
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_sq8_avx2(q: &[f32], c: &[u8]) -> f32 {
    dot_sq8_body(q, c)
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// `sum_i q_i c_i` over u8 codes (the code-dependent part of a quantized inner product).
#[inline]
pub fn dot_sq8(q: &[f32], c: &[u8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above), the only
        // requirement of calling a function compiled with those target features.
        return unsafe { dot_sq8_avx2(q, c) };
    }
    dot_sq8_body(q, c)
}
