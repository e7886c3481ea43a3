//! x86-64 kernels.
//!
//! The weight decoders, the activation quantizer and the float path need AVX2+FMA+F16C and are
//! shared. The kernels that multiply bytes are generated once per ISA level by
//! [`isa_kernels!`]; the levels differ only in the 4-byte dot step (`vpdpbusd` from
//! AVX512-VNNI or AVX-VNNI, or AVX2's `vpmaddubsw` + `vpmaddwd`) and in the register tile.
//!
//! Every `unsafe` block in here does one of two things: raw-pointer reads inside buffers whose
//! sizes the caller has checked (stated at the function), or calls of `#[target_feature]`
//! functions from functions that enable the same features.

use super::act::{self, Act, BATCH_F, BATCH_Q, BlockSums, CG, DIRECT_F};
use super::unpack::{QK, UNPACK};
use super::{Batched, Kernels, Out, QMatrix, ROWBUF};
use crate::quant::TensorType;
use half::{bf16, f16};
use std::arch::x86_64::*;
use std::ops::Range;

// ---------------------------------------------------------------------------------------------
// Shared helpers (AVX2 + FMA + F16C).

/// `[f16(p), f16(p + 2), 0, 0]` as f32.
///
/// Safety: 4 readable bytes at `p`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn f16x2(p: *const u8) -> __m128 {
    // SAFETY: see the function's contract.
    let bits = unsafe { p.cast::<u32>().read_unaligned() };
    _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32))
}

/// The f16 at `p` as f32 in all four lanes.
///
/// Safety: 2 readable bytes at `p`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn f16_splat(p: *const u8) -> __m128 {
    // SAFETY: see the function's contract.
    let bits = unsafe { p.cast::<u16>().read_unaligned() };
    _mm_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// 32 nibbles from the 16 bytes at `p`: the low nibbles (elements 0..16), then the high ones.
///
/// Safety: 16 readable bytes at `p`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn nibbles(p: *const u8) -> __m256i {
    // SAFETY: see the function's contract.
    let lo = unsafe { _mm_loadu_si128(p.cast()) };
    let hi = _mm_srli_epi16(lo, 4);
    _mm256_and_si256(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(0x0F))
}

/// Byte `e` is 0x10 where bit `e` of `bits` is set, else 0 (the fifth bit of Q5 weights).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn fifth_bits(bits: u32) -> __m256i {
    #[rustfmt::skip]
    let spread = _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
        2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), spread);
    let select = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, select), select);
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}

/// Sum of the 8 lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// Lane 1 + lane 3 (the offset lanes of `[a·d, c·s_lo, a·d, c·s_hi]` products).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn odd_lanes_sum(v: __m128) -> f32 {
    let h = _mm_movehdup_ps(v);
    _mm_cvtss_f32(_mm_add_ss(h, _mm_movehl_ps(h, h)))
}

// ---------------------------------------------------------------------------------------------
// Weight decoders: one block at a time, in registers.

/// Decodes the weight blocks of one row into 32-element groups: 32 unsigned bytes `u` in element
/// order plus `[a_lo, c_lo, a_hi, c_hi]` (weight = a·u + c per 16-element half), the same form
/// as [`super::unpack`]. With `RAW` the bytes are signed weights and c = 0.
trait Decoder: Copy {
    /// 32-element groups per block.
    const GROUPS: usize;
    const RAW: bool = false;
    /// Calls `f(g, u, ac)` for each group `g` of block `blk`.
    ///
    /// Safety: `blk` is a block of the row the decoder was made for.
    unsafe fn block<F: FnMut(usize, __m256i, __m128)>(self, blk: usize, f: F);
}

/// Declares a decoder type holding the row's first byte.
macro_rules! decoder {
    ($($name:ident),*) => {$(
        #[derive(Clone, Copy)]
        struct $name(*const u8);
    )*};
}
decoder!(Q4_0Dec, Q4_1Dec, Q5_0Dec, Q4KDec, Q6KDec);

#[derive(Clone, Copy)]
struct Q8_0Dec<const RAW: bool>(*const u8);

/// A row already unpacked by [`super::unpack`] (used for the types without a register decoder).
#[derive(Clone, Copy)]
struct UnpackedDec {
    u: *const u8,
    ac: *const f32,
}

impl Decoder for Q4_0Dec {
    const GROUPS: usize = 1;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn block<F: FnMut(usize, __m256i, __m128)>(self, blk: usize, mut f: F) {
        // SAFETY: block `blk` (18 bytes) is inside the row.
        let (d, u) = unsafe {
            let p = self.0.add(18 * blk);
            (f16_splat(p), nibbles(p.add(2)))
        };
        f(0, u, _mm_mul_ps(d, _mm_setr_ps(1.0, -8.0, 1.0, -8.0)));
    }
}

impl Decoder for Q4_1Dec {
    const GROUPS: usize = 1;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn block<F: FnMut(usize, __m256i, __m128)>(self, blk: usize, mut f: F) {
        // SAFETY: block `blk` (20 bytes) is inside the row.
        let (dm, u) = unsafe {
            let p = self.0.add(20 * blk);
            (f16x2(p), nibbles(p.add(4)))
        };
        f(0, u, _mm_movelh_ps(dm, dm));
    }
}

impl Decoder for Q5_0Dec {
    const GROUPS: usize = 1;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn block<F: FnMut(usize, __m256i, __m128)>(self, blk: usize, mut f: F) {
        // SAFETY: block `blk` (22 bytes) is inside the row.
        let (d, qh, lo) = unsafe {
            let p = self.0.add(22 * blk);
            (f16_splat(p), p.add(2).cast::<u32>().read_unaligned(), nibbles(p.add(6)))
        };
        let u = _mm256_or_si256(lo, fifth_bits(qh));
        f(0, u, _mm_mul_ps(d, _mm_setr_ps(1.0, -16.0, 1.0, -16.0)));
    }
}

impl<const RAW: bool> Decoder for Q8_0Dec<RAW> {
    const GROUPS: usize = 1;
    const RAW: bool = RAW;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn block<F: FnMut(usize, __m256i, __m128)>(self, blk: usize, mut f: F) {
        // SAFETY: block `blk` (34 bytes) is inside the row.
        let (d, q) = unsafe {
            let p = self.0.add(34 * blk);
            (f16_splat(p), _mm256_loadu_si256(p.add(2).cast()))
        };
        if RAW {
            f(0, q, _mm_mul_ps(d, _mm_setr_ps(1.0, 0.0, 1.0, 0.0)));
        } else {
            let u = _mm256_xor_si256(q, _mm256_set1_epi8(-128));
            f(0, u, _mm_mul_ps(d, _mm_setr_ps(1.0, -128.0, 1.0, -128.0)));
        }
    }
}

/// The 6-bit scales (low 8 bytes) and mins (high 8 bytes) of a Q4_K/Q5_K block from its 12
/// packed bytes `w0 w1 w2` (little-endian words); see `get_scale_min_k4`.
#[inline(always)]
fn k4_scales_mins_packed(w0: u32, w1: u32, w2: u32) -> (u64, u64) {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const TOP2: u32 = 0x0303_0303;
    let sc_hi = (w2 & LOW4) | (((w0 >> 6) & TOP2) << 4);
    let mn_hi = ((w2 >> 4) & LOW4) | (((w1 >> 6) & TOP2) << 4);
    let sc = (w0 & LOW6) as u64 | (sc_hi as u64) << 32;
    let mn = (w1 & LOW6) as u64 | (mn_hi as u64) << 32;
    (sc, mn)
}

/// 8 unsigned bytes as 8 f32 lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn u8x8_to_f32(v: u64) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(v as i64)))
}

impl Decoder for Q4KDec {
    const GROUPS: usize = 8;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn block<F: FnMut(usize, __m256i, __m128)>(self, blk: usize, mut f: F) {
        // Position of group g's (a, c) pair in `ac` below (unpacklo/unpackhi interleave lanes).
        const AT: [usize; 8] = [0, 2, 8, 10, 4, 6, 12, 14];
        // SAFETY (all blocks below): block `blk` (144 bytes) is inside the row.
        let p = unsafe { self.0.add(144 * blk) };
        let dm = unsafe { f16x2(p) };
        let w = |i: usize| unsafe { p.add(4 + 4 * i).cast::<u32>().read_unaligned() };
        let (sc, mn) = k4_scales_mins_packed(w(0), w(1), w(2));
        let a = _mm256_mul_ps(u8x8_to_f32(sc), _mm256_broadcastss_ps(dm));
        let dmin = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(dm), _mm256_set1_epi32(1));
        let c = _mm256_mul_ps(u8x8_to_f32(mn), _mm256_sub_ps(_mm256_setzero_ps(), dmin));
        let mut ac = [0f32; 16];
        // SAFETY: `ac` holds 16 floats.
        unsafe {
            _mm256_storeu_ps(ac.as_mut_ptr(), _mm256_unpacklo_ps(a, c));
            _mm256_storeu_ps(ac.as_mut_ptr().add(8), _mm256_unpackhi_ps(a, c));
        }
        // [a, c] duplicated into [a, c, a, c].
        let pair = |g: usize| unsafe { _mm_castpd_ps(_mm_loaddup_pd(ac.as_ptr().add(AT[g]).cast())) };
        let m4 = _mm256_set1_epi8(0x0F);
        for ch in 0..4 {
            let q = unsafe { _mm256_loadu_si256(p.add(16 + 32 * ch).cast()) };
            f(2 * ch, _mm256_and_si256(q, m4), pair(2 * ch));
            f(2 * ch + 1, _mm256_and_si256(_mm256_srli_epi16(q, 4), m4), pair(2 * ch + 1));
        }
    }
}

impl Decoder for Q6KDec {
    const GROUPS: usize = 8;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn block<F: FnMut(usize, __m256i, __m128)>(self, blk: usize, mut f: F) {
        // Position of group g's [a_lo, c_lo, a_hi, c_hi] in `ac` below.
        const AT: [usize; 8] = [0, 8, 4, 12, 16, 24, 20, 28];
        // SAFETY (all blocks below): block `blk` (210 bytes) is inside the row.
        let p = unsafe { self.0.add(210 * blk) };
        let d = _mm256_broadcastss_ps(unsafe { f16_splat(p.add(208)) });
        let sc = unsafe { _mm_loadu_si128(p.add(192).cast()) };
        let mut ac = [0f32; 32];
        for (i, s) in [sc, _mm_srli_si128(sc, 8)].into_iter().enumerate() {
            let a = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(s)), d);
            let c = _mm256_mul_ps(a, _mm256_set1_ps(-32.0));
            // SAFETY: `ac` holds 32 floats.
            unsafe {
                _mm256_storeu_ps(ac.as_mut_ptr().add(16 * i), _mm256_unpacklo_ps(a, c));
                _mm256_storeu_ps(ac.as_mut_ptr().add(16 * i + 8), _mm256_unpackhi_ps(a, c));
            }
        }
        let quad = |g: usize| unsafe { _mm_loadu_ps(ac.as_ptr().add(AT[g])) };
        let (m4, m2) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x30));
        let lo = |v| _mm256_and_si256(v, m4);
        let hi2 = |v| _mm256_and_si256(v, m2);
        for n in 0..2 {
            let (ql0, ql1, qh) = unsafe {
                (
                    _mm256_loadu_si256(p.add(64 * n).cast()),
                    _mm256_loadu_si256(p.add(64 * n + 32).cast()),
                    _mm256_loadu_si256(p.add(128 + 32 * n).cast()),
                )
            };
            let g = 4 * n;
            f(g, _mm256_or_si256(lo(ql0), hi2(_mm256_slli_epi16(qh, 4))), quad(g));
            f(g + 1, _mm256_or_si256(lo(ql1), hi2(_mm256_slli_epi16(qh, 2))), quad(g + 1));
            let (h0, h1) = (_mm256_srli_epi16(ql0, 4), _mm256_srli_epi16(ql1, 4));
            f(g + 2, _mm256_or_si256(lo(h0), hi2(qh)), quad(g + 2));
            f(g + 3, _mm256_or_si256(lo(h1), hi2(_mm256_srli_epi16(qh, 2))), quad(g + 3));
        }
    }
}

impl Decoder for UnpackedDec {
    const GROUPS: usize = 1;
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn block<F: FnMut(usize, __m256i, __m128)>(self, blk: usize, mut f: F) {
        // SAFETY: group `blk` is inside the unpacked row (32 bytes, 4 floats).
        let (u, ac) = unsafe {
            (_mm256_loadu_si256(self.u.add(QK * blk).cast()), _mm_loadu_ps(self.ac.add(4 * blk)))
        };
        f(0, u, ac);
    }
}

// ---------------------------------------------------------------------------------------------
// Activation quantization and float rows (ISA-independent beyond AVX2).

/// [`act::quantize_block_scalar`] with AVX2; bit-identical results.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn quantize_block(x: &[f32; QK], q: &mut [i8; QK]) -> BlockSums {
    // SAFETY: `x` holds 32 floats.
    let v: [__m256; 4] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * i)) });
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let m = v.iter().fold(_mm256_setzero_ps(), |m, &v| _mm256_max_ps(m, _mm256_and_ps(v, abs)));
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
    let (d, id) = act::scale_of(amax);
    // `cvtps` rounds to nearest, ties to even (the default MXCSR mode), as `round_ties_even`.
    let i: [__m256i; 4] = v.map(|v| _mm256_cvtps_epi32(_mm256_mul_ps(v, _mm256_set1_ps(id))));
    let packed = _mm256_packs_epi16(_mm256_packs_epi32(i[0], i[1]), _mm256_packs_epi32(i[2], i[3]));
    let ordered = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    // SAFETY: `q` holds 32 bytes.
    unsafe { _mm256_storeu_si256(q.as_mut_ptr().cast(), ordered) };
    let (lo, hi) = (_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
    let t = _mm256_hadd_epi32(lo, hi); // [lo01 lo23 hi01 hi23 | lo45 lo67 hi45 hi67]
    let t = _mm256_hadd_epi32(t, t); // [lo0123 hi0123 .. | lo4567 hi4567 ..]
    let t = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
    BlockSums { d, lo: _mm_cvtsi128_si32(t), hi: _mm_extract_epi32(t, 1) }
}

/// Direct-layout quantization (see [`act`]).
///
/// Safety: the CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_direct(x: &[f32], q: &mut [i8], f: &mut [f32]) {
    act::quantize_direct(x, q, f, |x, q| quantize_block(x, q));
}

/// Batched-layout quantization of one column group (see [`act`]).
///
/// Safety: the CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_group(x: &[f32], n: usize, cols: usize, g: usize, q: &mut [i8], f: &mut [f32]) {
    act::quantize_batched_group(x, n, cols, g, q, f, |x, q| quantize_block(x, q));
}

/// Converts row `r` of an F32/F16/BF16 matrix to f32.
#[target_feature(enable = "avx2,fma,f16c")]
fn float_row(w: &QMatrix, r: usize, out: &mut [f32]) {
    let src = w.row(r);
    match w.ty {
        TensorType::F32 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        TensorType::F16 | TensorType::BF16 => {
            let (o8, s16) = (out.chunks_exact_mut(8), src.chunks_exact(16));
            for (o, s) in o8.zip(s16) {
                // SAFETY: `s` holds 16 bytes, `o` 8 floats.
                unsafe {
                    let h = _mm_loadu_si128(s.as_ptr().cast());
                    let v = if w.ty == TensorType::F16 {
                        _mm256_cvtph_ps(h)
                    } else {
                        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
                    };
                    _mm256_storeu_ps(o.as_mut_ptr(), v);
                }
            }
            let done = out.len() / 8 * 8;
            for (o, c) in out[done..].iter_mut().zip(src[2 * done..].chunks_exact(2)) {
                let b = [c[0], c[1]];
                *o = if w.ty == TensorType::F16 {
                    f16::from_le_bytes(b).to_f32()
                } else {
                    bf16::from_le_bytes(b).to_f32()
                };
            }
        }
        _ => unreachable!("not a float type"),
    }
}

/// f32 dot product with FMA.
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 4];
    let (ca, cb) = (a.chunks_exact(32), b.chunks_exact(32));
    let tail = super::scalar::dot_f32(ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for (i, acc) in acc.iter_mut().enumerate() {
            // SAFETY: `x` and `y` hold 32 floats.
            let (x, y) = unsafe { (_mm256_loadu_ps(x.as_ptr().add(8 * i)), _mm256_loadu_ps(y.as_ptr().add(8 * i))) };
            *acc = _mm256_fmadd_ps(x, y, *acc);
        }
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    hsum(s) + tail
}

/// Rows `rows` of an F32/F16/BF16 matrix against the f32 columns `x`.
///
/// Safety: the CPU supports AVX2, FMA and F16C; `rows` are rows of `w`, owned by this task.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn float_rows(w: &QMatrix, rows: Range<usize>, x: &[f32], out: Out) {
    ROWBUF.with_borrow_mut(|buf| {
        buf.resize(w.cols, 0.0);
        for r in rows {
            float_row(w, r, buf);
            for (j, xj) in x.chunks_exact(w.cols).enumerate() {
                // SAFETY: j < n and r < rows; this task owns rows `rows`.
                unsafe { out.set(j, r, dot_f32(buf, xj)) };
            }
        }
    });
}

/// acc + Σ of 4 products u8 × i8 per 32-bit lane, AVX2 only. `vpmaddubsw` saturates its i16
/// pair sums, which cannot happen for bytes ≤ 128 against codes in −127..=127.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn dot4_avx2(acc: __m256i, u: __m256i, x: __m256i) -> __m256i {
    let pairs = _mm256_maddubs_epi16(u, x);
    _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
}

/// What the batched micro-kernel reads: unpacked rows starting at row `r0`, and the outputs.
struct Tiles<'a> {
    u: *const u8,
    ac: *const f32,
    cols: usize,
    r0: usize,
    act: &'a Act<'a>,
    out: Out,
}

// ---------------------------------------------------------------------------------------------
// Per-ISA kernels.

macro_rules! isa_kernels {
    (
        $(#[$doc:meta])*
        mod $name:ident for $isa:ident, features = $feat:literal, dot4 = $dot4:path, exact_u8 = $exact:literal,
        tile = ($R:literal, $C:literal)
    ) => {
        $(#[$doc])*
        pub(super) mod $name {
            use super::*;

            /// Whether the dot step takes weight bytes up to 255 (else Q8_0 uses the sign trick).
            const EXACT_U8: bool = $exact;

            pub(in super::super) static KERNELS: Kernels = Kernels {
                isa: super::super::Isa::$isa,
                quantize_direct: super::quantize_direct,
                quantize_group: super::quantize_group,
                direct_rows,
                batched: Some(Batched { run: batched, tile_rows: $R }),
                float_rows: super::float_rows,
            };

            #[target_feature(enable = $feat)]
            #[inline]
            fn dot4(acc: __m256i, u: __m256i, x: __m256i) -> __m256i {
                $dot4(acc, u, x)
            }

            /// The integer dot of one weight group with one activation block.
            #[target_feature(enable = $feat)]
            #[inline]
            fn dot_group<const RAW: bool>(u: __m256i, x: __m256i) -> __m256i {
                let zero = _mm256_setzero_si256();
                if RAW {
                    dot4(zero, _mm256_abs_epi8(u), _mm256_sign_epi8(x, u))
                } else {
                    dot4(zero, u, x)
                }
            }

            /// One weight row (`nblk` blocks of `dec`) against NC columns of the direct layout
            /// at `q`/`f` (column strides `qs` codes and `fs` floats).
            ///
            /// Safety: the activation buffers hold NC columns of the row's length.
            #[target_feature(enable = $feat)]
            unsafe fn direct<D: Decoder, const NC: usize>(
                dec: D,
                nblk: usize,
                q: *const i8,
                f: *const f32,
                qs: usize,
                fs: usize,
            ) -> [f32; NC] {
                let mut acc = [_mm256_setzero_ps(); NC];
                let mut off = [_mm_setzero_ps(); NC];
                let spread = _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2);
                for blk in 0..nblk {
                    let step = |g: usize, u: __m256i, ac: __m128| {
                        let gi = blk * D::GROUPS + g;
                        for c in 0..NC {
                            // SAFETY: group gi of column c is inside the activations.
                            let (x, xf) = unsafe {
                                (
                                    _mm256_loadu_si256(q.add(c * qs + gi * QK).cast()),
                                    _mm_loadu_ps(f.add(c * fs + gi * DIRECT_F)),
                                )
                            };
                            let idot = if D::RAW {
                                dot_group::<true>(u, x)
                            } else {
                                dot_group::<false>(u, x)
                            };
                            // [a_lo·d, c_lo·s_lo, a_hi·d, c_hi·s_hi]
                            let prod = _mm_mul_ps(ac, xf);
                            let scale =
                                _mm256_permutevar8x32_ps(_mm256_castps128_ps256(prod), spread);
                            acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(idot), scale, acc[c]);
                            off[c] = _mm_add_ps(off[c], prod);
                        }
                    };
                    // SAFETY: blk < nblk, the row's block count.
                    unsafe { dec.block(blk, step) };
                }
                std::array::from_fn(|c| hsum(acc[c]) + odd_lanes_sum(off[c]))
            }

            /// Computes and stores output columns j..j+NC of row r.
            ///
            /// Safety: as [`direct`]; row r is owned by this task.
            #[target_feature(enable = $feat)]
            unsafe fn direct_store<D: Decoder, const NC: usize>(
                dec: D,
                cols: usize,
                r: usize,
                j: usize,
                act: &Act,
                out: Out,
            ) {
                let fs = cols / QK * DIRECT_F;
                // SAFETY: columns j..j+NC exist in the direct layout (checked by the caller).
                let v = unsafe {
                    let (q, f) = (act.q.as_ptr().add(j * cols), act.f.as_ptr().add(j * fs));
                    direct::<D, NC>(dec, cols / (QK * D::GROUPS), q, f, cols, fs)
                };
                for (c, v) in v.into_iter().enumerate() {
                    // SAFETY: j + c < n, r < rows, and this task owns row r.
                    unsafe { out.set(j + c, r, v) };
                }
            }

            /// Rows `rows` against all direct-layout columns, 4 columns at a time.
            ///
            /// Safety: as [`direct_rows`].
            #[target_feature(enable = $feat)]
            unsafe fn direct_typed<D: Decoder>(
                cols: usize,
                rows: Range<usize>,
                act: &Act,
                out: Out,
                dec: impl Fn(usize) -> D,
            ) {
                for r in rows {
                    let dec = dec(r);
                    let mut j = 0;
                    while j < act.n {
                        let m = (act.n - j).min(4);
                        // SAFETY: j + m ≤ n.
                        unsafe {
                            match m {
                                1 => direct_store::<D, 1>(dec, cols, r, j, act, out),
                                2 => direct_store::<D, 2>(dec, cols, r, j, act, out),
                                3 => direct_store::<D, 3>(dec, cols, r, j, act, out),
                                _ => direct_store::<D, 4>(dec, cols, r, j, act, out),
                            }
                        }
                        j += m;
                    }
                }
            }

            /// Rows `rows` of a quantized matrix against every column of the direct layout.
            ///
            /// Safety: the CPU supports the module's features; `act` is the direct layout of
            /// `w.cols`-element columns; `rows` are rows of `w` owned by this task.
            #[target_feature(enable = $feat)]
            unsafe fn direct_rows(w: &QMatrix, rows: Range<usize>, act: &Act, out: Out) {
                let row = |r: usize| w.row(r).as_ptr();
                let cols = w.cols;
                // SAFETY: forwarded contract; the decoders read rows of `w`.
                unsafe {
                    match w.ty {
                        TensorType::Q4_0 => direct_typed(cols, rows, act, out, |r| Q4_0Dec(row(r))),
                        TensorType::Q4_1 => direct_typed(cols, rows, act, out, |r| Q4_1Dec(row(r))),
                        TensorType::Q5_0 => direct_typed(cols, rows, act, out, |r| Q5_0Dec(row(r))),
                        TensorType::Q8_0 => direct_typed(cols, rows, act, out, |r| {
                            Q8_0Dec::<{ !EXACT_U8 }>(row(r))
                        }),
                        TensorType::Q4_K => direct_typed(cols, rows, act, out, |r| Q4KDec(row(r))),
                        TensorType::Q6_K => direct_typed(cols, rows, act, out, |r| Q6KDec(row(r))),
                        _ => direct_unpacked(w, rows, act, out),
                    }
                }
            }

            /// The direct path for types without a register decoder: unpack, then dot.
            ///
            /// Safety: as [`direct_rows`].
            #[target_feature(enable = $feat)]
            unsafe fn direct_unpacked(w: &QMatrix, rows: Range<usize>, act: &Act, out: Out) {
                UNPACK.with_borrow_mut(|buf| {
                    buf.prepare(1, w.cols);
                    for r in rows {
                        buf.unpack(0, w.ty, w.row(r), w.cols, false);
                        let dec = UnpackedDec { u: buf.u.as_ptr(), ac: buf.ac.as_ptr() };
                        // SAFETY: forwarded contract; `dec` reads the unpacked row r.
                        unsafe { direct_typed(w.cols, r..r + 1, act, out, |_| dec) };
                    }
                });
            }

            /// Rows `rows` × column groups `groups` of the batched layout: unpack the rows,
            /// then run the register-tiled micro-kernel over the tiles.
            ///
            /// Safety: the CPU supports the module's features; `act` is the batched layout of
            /// `w.cols`-element columns holding `groups`; `rows` are rows of `w`; this task owns
            /// the outputs of `rows` × `groups`.
            #[target_feature(enable = $feat)]
            unsafe fn batched(w: &QMatrix, rows: Range<usize>, groups: Range<usize>, act: &Act, out: Out) {
                let raw = w.ty == TensorType::Q8_0 && !EXACT_U8;
                UNPACK.with_borrow_mut(|buf| {
                    buf.prepare(rows.len(), w.cols);
                    for (i, r) in rows.clone().enumerate() {
                        buf.unpack(i, w.ty, w.row(r), w.cols, raw);
                    }
                    let (u, ac) = (buf.u.as_ptr(), buf.ac.as_ptr());
                    let t = Tiles { u, ac, cols: w.cols, r0: rows.start, act, out };
                    // SAFETY: forwarded contract.
                    unsafe {
                        match (w.ty == TensorType::Q6_K, raw) {
                            (true, _) => tiles::<true, false>(&t, rows, groups),
                            (false, true) => tiles::<false, true>(&t, rows, groups),
                            (false, false) => tiles::<false, false>(&t, rows, groups),
                        }
                    }
                });
            }

            /// Walks the (R rows × C groups) tiles, with 1-row / 1-group tiles at the edges.
            ///
            /// Safety: as [`batched`].
            #[target_feature(enable = $feat)]
            unsafe fn tiles<const G16: bool, const RAW: bool>(
                t: &Tiles,
                rows: Range<usize>,
                groups: Range<usize>,
            ) {
                let mut g = groups.start;
                while g < groups.end {
                    let gw = if groups.end - g >= $C { $C } else { 1 };
                    let mut r = rows.start;
                    while r < rows.end {
                        let rh = if rows.end - r >= $R { $R } else { 1 };
                        // SAFETY: r + rh ≤ rows.end and g + gw ≤ groups.end.
                        unsafe {
                            match (rh, gw) {
                                ($R, $C) => tile::<$R, $C, G16, RAW>(t, r, g),
                                ($R, _) => tile::<$R, 1, G16, RAW>(t, r, g),
                                (_, $C) => tile::<1, $C, G16, RAW>(t, r, g),
                                _ => tile::<1, 1, G16, RAW>(t, r, g),
                            }
                        }
                        r += rh;
                    }
                    g += gw;
                }
            }

            /// Rows r..r+R × groups g..g+C: compute and store the existing columns.
            ///
            /// Safety: as [`batched`], for this tile.
            #[target_feature(enable = $feat)]
            unsafe fn tile<const R: usize, const C: usize, const G16: bool, const RAW: bool>(
                t: &Tiles,
                r: usize,
                g: usize,
            ) {
                let nb = t.cols / QK;
                let i = r - t.r0;
                // SAFETY: unpacked rows i..i+R and activation groups g..g+C exist.
                let acc = unsafe {
                    let u = t.u.add(i * t.cols);
                    let ac = t.ac.add(i * nb * 4);
                    let q = t.act.q.as_ptr().add(g * nb * BATCH_Q);
                    let f = t.act.f.as_ptr().add(g * nb * BATCH_F);
                    micro::<R, C, G16, RAW>(u, ac, q, f, t.cols)
                };
                for (dr, accs) in acc.iter().enumerate() {
                    for (dg, v) in accs.iter().enumerate() {
                        let mut lanes = [0f32; CG];
                        // SAFETY: `lanes` holds 8 floats.
                        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *v) };
                        for (l, &v) in lanes.iter().enumerate() {
                            let j = (g + dg) * CG + l;
                            if j < t.act.n {
                                // SAFETY: j < n, r + dr < rows, owned by this task.
                                unsafe { t.out.set(j, r + dr, v) };
                            }
                        }
                    }
                }
            }

            /// The register-tiled micro-kernel: R unpacked rows × C column groups (8 columns
            /// each) over the whole row. Each step broadcasts 4 weight bytes of a row to all
            /// lanes and multiplies them with 4 codes of 8 columns, so a 32-bit lane of the
            /// integer accumulator is one (row, column) dot and needs no horizontal reduction.
            /// The scales are applied once per group of 32 (16 with G16).
            ///
            /// Safety: R unpacked rows at `u`/`ac` (row strides `cols` bytes and `cols/8`
            /// floats) and C activation groups at `q`/`f`.
            #[target_feature(enable = $feat)]
            #[inline]
            unsafe fn micro<const R: usize, const C: usize, const G16: bool, const RAW: bool>(
                u: *const u8,
                ac: *const f32,
                q: *const i8,
                f: *const f32,
                cols: usize,
            ) -> [[__m256; C]; R] {
                let nb = cols / QK;
                let (acn, qg, fg) = (nb * 4, nb * BATCH_Q, nb * BATCH_F);
                let halves = if G16 { 2 } else { 1 };
                let steps = 8 / halves;
                let mut acc = [[_mm256_setzero_ps(); C]; R];
                for b in 0..nb {
                    for h in 0..halves {
                        let mut idot = [[_mm256_setzero_si256(); C]; R];
                        for k in h * steps..(h + 1) * steps {
                            // SAFETY: step k of block b of groups 0..C.
                            let x: [__m256i; C] = std::array::from_fn(|c| unsafe {
                                _mm256_loadu_si256(q.add(c * qg + b * BATCH_Q + 32 * k).cast())
                            });
                            for (rr, idot) in idot.iter_mut().enumerate() {
                                // SAFETY: bytes 4k..4k+4 of group b of unpacked row rr.
                                let w4 = unsafe { u.add(rr * cols + b * QK + 4 * k).cast::<i32>().read_unaligned() };
                                let wb = _mm256_set1_epi32(w4);
                                for (idot, &x) in idot.iter_mut().zip(&x) {
                                    *idot = if RAW {
                                        dot4(*idot, _mm256_abs_epi8(wb), _mm256_sign_epi8(x, wb))
                                    } else {
                                        dot4(*idot, wb, x)
                                    };
                                }
                            }
                        }
                        // f: [d; s; s_lo; s_hi] × 8 columns per (group, block).
                        let s_at = if G16 { (2 + h) * CG } else { CG };
                        for c in 0..C {
                            // SAFETY: block b of activation group c.
                            let (dx, s) = unsafe {
                                let fp = f.add(c * fg + b * BATCH_F);
                                (_mm256_loadu_ps(fp), _mm256_loadu_ps(fp.add(s_at)))
                            };
                            for rr in 0..R {
                                // SAFETY: group b of unpacked row rr.
                                let (a, cc) = unsafe {
                                    let p = ac.add(rr * acn + 4 * b + 2 * h);
                                    (*p, *p.add(1))
                                };
                                let scale = _mm256_mul_ps(_mm256_set1_ps(a), dx);
                                let v = _mm256_cvtepi32_ps(idot[rr][c]);
                                acc[rr][c] = _mm256_fmadd_ps(v, scale, acc[rr][c]);
                                acc[rr][c] = _mm256_fmadd_ps(_mm256_set1_ps(cc), s, acc[rr][c]);
                            }
                        }
                    }
                }
                acc
            }
        }
    };
}

isa_kernels! {
    /// AVX512-VNNI at 256 bits (`vpdpbusd ymm`), with the 32 vector registers of AVX512VL.
    mod avx512vnni for Avx512Vnni, features = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni",
    dot4 = _mm256_dpbusd_epi32, exact_u8 = true, tile = (4, 2)
}

isa_kernels! {
    /// AVX-VNNI (`vpdpbusd` with VEX encoding, 16 registers).
    mod avxvnni for AvxVnni, features = "avx2,fma,f16c,avxvnni",
    dot4 = _mm256_dpbusd_avx_epi32, exact_u8 = true, tile = (2, 2)
}

isa_kernels! {
    /// AVX2 + FMA: `vpmaddubsw` + `vpmaddwd`.
    mod avx2 for Avx2, features = "avx2,fma,f16c",
    dot4 = dot4_avx2, exact_u8 = false, tile = (2, 2)
}
