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
