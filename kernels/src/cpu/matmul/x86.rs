//! x86-64 kernels.
//!
//! The weight decoders, the activation quantizer and the float path need AVX2+FMA+F16C and are
//! shared. The kernels that multiply bytes are generated once per ISA level by
//! [`isa_kernels!`]; the levels differ only in the 4-byte dot step (`vpdpbusd` from
//! AVX512-VNNI or AVX-VNNI, or AVX2's `vpmaddubsw` + `vpmaddwd`) and in the register tile.
//! Each level has two kernels with the same arithmetic per output column: `batched` unpacks
//! weight rows and runs register tiles with columns in the lanes; `direct_rows` (n ≤ 2) decodes
//! 8 rows in registers with rows in the lanes (see `rows8`).
//!
//! Every `unsafe` block in here does one of two things: raw-pointer reads inside buffers whose
//! sizes the caller has checked (stated at the function), or calls of `#[target_feature]`
//! functions from functions that enable the same features.

use super::act::{self, Act, BATCH_F, BATCH_Q, BlockSums, CG, DIRECT_F};
use super::unpack::{QK, UNPACK, Unpacked};
use super::{Batched, Kernels, Out, QMatrix, ROWBUF};
use crate::quant::TensorType;
use half::{bf16, f16};
use std::arch::x86_64::*;
use std::ops::Range;

// ---------------------------------------------------------------------------------------------
// Shared helpers (AVX2 + FMA + F16C).

/// The four f16 values at `p..p + 8` as f32 (a memory-operand `vcvtph2ps`). Decoders use
/// lane 0 (and 1); the other lanes are whatever bytes follow and are ignored.
///
/// Safety: 8 readable bytes at `p`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn f16x4(p: *const u8) -> __m128 {
    // SAFETY: see the function's contract.
    _mm_cvtph_ps(unsafe { _mm_loadl_epi64(p.cast()) })
}

/// 32 nibbles from the 16 bytes at `p`: the low nibbles (elements 0..16), then the high ones.
/// (Broadcast load plus a per-lane shift: no cross-lane shuffle.)
///
/// Safety: 16 readable bytes at `p`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn nibbles(p: *const u8) -> __m256i {
    // SAFETY: see the function's contract.
    let v = _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(p.cast()) });
    let v = _mm256_srlv_epi64(v, _mm256_setr_epi64x(0, 0, 4, 4));
    _mm256_and_si256(v, _mm256_set1_epi8(0x0F))
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

// ---------------------------------------------------------------------------------------------
// Weight decoders: one block at a time, in registers.

/// Decodes the weight blocks of one row into 32-element groups of 32 unsigned bytes `u` in
/// element order (the unpacked form of [`super::unpack`]), with their scales. Group g's weights
/// are
/// * `a_g·(u + K)` (symmetric types; K = 0 with `RAW`, where `u` holds signed bytes), or
/// * `a_g·u + c_g` when `AFFINE`,
/// * with `G16` the two 16-element halves have their own `a` (symmetric only).
trait Decoder: Copy {
    /// 32-element groups per block (1, or 8 for the K-quants).
    const GROUPS: usize;
    /// Bytes per block.
    const BYTES: usize;
    const K: i32 = 0;
    const AFFINE: bool = false;
    const G16: bool = false;
    const RAW: bool = false;
    /// The bytes of elements 16..32 hold 16·u (nibbles left in place, which saves a shift;
    /// only for dot steps exact up to 255, and not for unpacking).
    const HI16: bool = false;
    /// GROUPS = 8: the scales of the block's groups, in order: `AFFINE`:
    /// `[a0 c0 a1 c1 a2 c2 a3 c3]`, `[a4 c4 … a7 c7]`; `G16`: the 16 half scales.
    ///
    /// Safety: block `blk` is in the row.
    unsafe fn scales8(self, _blk: usize) -> [__m256; 2] {
        unreachable!("only for eight-group blocks")
    }
    /// GROUPS = 1: `[a, c, ?, ?]` of block `blk` (symmetric: `[a, ?, ?, ?]`); the unspecified
    /// lanes may hold anything, even NaN.
    ///
    /// Safety: `blk` is in the row.
    unsafe fn scales1(self, _blk: usize) -> __m128 {
        unreachable!("only for one-group blocks")
    }
    /// The scales of a block of 8 rows, one row per lane, as [`Decoder::scales_rows`] reads
    /// them (the groups' values come from [`Decoder::scale_rows`]).
    type RowScales: Copy;
    /// The scales of block `blk` of 8 rows; lane i's row starts `rows.0[i]` bytes after
    /// `self.row()`.
    ///
    /// Safety: block `blk` is in each of the 8 rows.
    unsafe fn scales_rows(self, rows: &RowOffsets, blk: usize) -> Self::RowScales;
    /// `[a, c]` of group `g`, half `h` (h = 0 without `G16`) of the 8 rows of `s`, one row per
    /// lane: bitwise the values that [`unpack_simd`] stores in `ac` for these rows.
    ///
    /// Safety: the CPU supports AVX2, FMA and F16C.
    unsafe fn scale_rows(s: &Self::RowScales, g: usize, h: usize) -> [__m256; 2];
    /// The row's first byte.
    fn row(self) -> *const u8;
    /// The bytes `u` of group `g` (< GROUPS) of block `blk`.
    ///
    /// Safety: `blk` is in the row.
    unsafe fn group(self, blk: usize, g: usize) -> __m256i;
}

/// The byte offsets of 8 rows from the first one (i32 lanes; see [`super::DIRECT_MAX_ROW_BYTES`]).
struct RowOffsets(__m256i);

/// Byte `k` (< 4) of each 32-bit lane of `v`, zero-extended (`TOP`: moved to the top byte, the
/// others zero).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn dword_byte<const TOP: bool>(v: __m256i, k: usize) -> __m256i {
    let (k, none) = (k as i32, 0x80);
    // pshufb indexes bytes within 128-bit lanes: byte k of dword d is byte 4d + k.
    let at = |d: i32| {
        let b = 4 * d + k;
        if TOP {
            none | none << 8 | none << 16 | b << 24
        } else {
            b | none << 8 | none << 16 | none << 24
        }
    };
    let idx = _mm256_setr_epi32(at(0), at(1), at(2), at(3), at(0), at(1), at(2), at(3));
    _mm256_shuffle_epi8(v, idx)
}

/// The u32 at `p + offset` for the 8 row offsets (lanes).
///
/// Safety: 4 readable bytes at each of these addresses.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn gather_rows(p: *const u8, rows: &RowOffsets) -> __m256i {
    // SAFETY: see the function's contract.
    unsafe { _mm256_i32gather_epi32::<1>(p.cast(), rows.0) }
}

/// The f16 pairs in 8 u32 lanes as f32: the low halves, then the high halves.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn f16_pairs(v: __m256i) -> [__m256; 2] {
    #[rustfmt::skip]
    let split = _mm256_setr_epi8(
        0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
        0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
    );
    // [lo0..4 hi0..4 | lo4..8 hi4..8] → [lo0..8 | hi0..8]
    let v = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_shuffle_epi8(v, split));
    [
        _mm256_cvtph_ps(_mm256_castsi256_si128(v)),
        _mm256_cvtph_ps(_mm256_extracti128_si256::<1>(v)),
    ]
}

/// Q5_0 and Q5_1 decoders (holding the row's first byte).
#[derive(Clone, Copy)]
struct Q5_0Dec(*const u8);
#[derive(Clone, Copy)]
struct Q5_1Dec(*const u8);

/// Q4_0 and Q4_1 decoders, optionally with [`Decoder::HI16`].
#[derive(Clone, Copy)]
struct Q4_0Dec<const HI16: bool>(*const u8);
#[derive(Clone, Copy)]
struct Q4_1Dec<const HI16: bool>(*const u8);

/// The 32 values of a Q4 block from its 16 bytes at `p`; with `HI16` the high nibbles stay in
/// place (16·u).
///
/// Safety: 16 readable bytes at `p`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn q4_values<const HI16: bool>(p: *const u8) -> __m256i {
    if HI16 {
        // SAFETY: see the function's contract.
        let v = _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(p.cast()) });
        let (lo, hi) = (
            0x0F0F_0F0F_0F0F_0F0Fu64 as i64,
            0xF0F0_F0F0_F0F0_F0F0u64 as i64,
        );
        _mm256_and_si256(v, _mm256_setr_epi64x(lo, lo, hi, hi))
    } else {
        // SAFETY: see the function's contract.
        unsafe { nibbles(p) }
    }
}

#[derive(Clone, Copy)]
struct Q8<const RAW: bool>(*const u8);

#[derive(Clone, Copy)]
struct Q4KDec(*const u8);

#[derive(Clone, Copy)]
struct Q5KDec(*const u8);

#[derive(Clone, Copy)]
struct Q6KDec(*const u8);

/// `BYTES` and `row` of a decoder holding the row's first byte.
macro_rules! block_bytes {
    ($bytes:expr) => {
        const BYTES: usize = $bytes;

        fn row(self) -> *const u8 {
            self.0
        }
    };
}

/// `scales8`, `scales_rows` and `scale_rows` of a K-quant whose block starts with `d`, `dmin`
/// and the 12 bytes of packed 6-bit scales and mins (Q4_K, Q5_K).
macro_rules! k4_scales {
    () => {
        #[target_feature(enable = "avx2,fma,f16c")]
        #[inline]
        unsafe fn scales8(self, blk: usize) -> [__m256; 2] {
            // SAFETY: block `blk` (BYTES bytes) is in the row.
            unsafe { k4_scales8(self.0.add(Self::BYTES * blk)) }
        }
        #[target_feature(enable = "avx2,fma,f16c")]
        #[inline]
        unsafe fn scales_rows(self, rows: &RowOffsets, blk: usize) -> K4Rows {
            // SAFETY: block `blk` (BYTES bytes) is in each row.
            unsafe { k4_scales_rows(self.0.add(Self::BYTES * blk), rows) }
        }
        #[target_feature(enable = "avx2,fma,f16c")]
        #[inline]
        unsafe fn scale_rows(s: &K4Rows, g: usize, _: usize) -> [__m256; 2] {
            k4_scale_rows(s, g)
        }
    };
}

/// `BYTES`, `row`, `scales1` and `scales_rows` of a 32-element block type with `d` (and `m`)
/// at byte 0.
macro_rules! scales32 {
    ($bytes:expr) => {
        block_bytes!($bytes);

        #[target_feature(enable = "avx2,fma,f16c")]
        #[inline]
        unsafe fn scales1(self, blk: usize) -> __m128 {
            // SAFETY: block blk is in the row (at least 8 bytes).
            unsafe { f16x4(self.0.add($bytes * blk)) }
        }

        type RowScales = [__m256; 2];

        #[target_feature(enable = "avx2,fma,f16c")]
        #[inline]
        unsafe fn scales_rows(self, rows: &RowOffsets, blk: usize) -> [__m256; 2] {
            // SAFETY: block blk (at least 4 bytes) is in each row.
            let [d, m] = f16_pairs(unsafe { gather_rows(self.0.add($bytes * blk), rows) });
            // As `unpacked_scales1`: c = m, or c = K·a.
            let c = if Self::AFFINE {
                m
            } else {
                _mm256_mul_ps(d, _mm256_set1_ps(Self::K as f32))
            };
            [d, c]
        }

        #[inline(always)]
        unsafe fn scale_rows(s: &[__m256; 2], _: usize, _: usize) -> [__m256; 2] {
            *s
        }
    };
}

impl<const HI16: bool> Decoder for Q4_0Dec<HI16> {
    const GROUPS: usize = 1;
    const K: i32 = -8;
    const HI16: bool = HI16;
    scales32!(18);
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn group(self, blk: usize, _: usize) -> __m256i {
        // SAFETY: block `blk` is in the row.
        unsafe { q4_values::<HI16>(self.0.add(Self::BYTES * blk + 2)) }
    }
}

impl<const HI16: bool> Decoder for Q4_1Dec<HI16> {
    const GROUPS: usize = 1;
    const AFFINE: bool = true;
    const HI16: bool = HI16;
    scales32!(20);
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn group(self, blk: usize, _: usize) -> __m256i {
        // SAFETY: block `blk` is in the row.
        unsafe { q4_values::<HI16>(self.0.add(Self::BYTES * blk + 4)) }
    }
}

/// The 5-bit values of a Q5_0/Q5_1 block from its `qh` word at `p` and `qs` at `p + 4`.
///
/// Safety: 20 readable bytes at `p`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn q5_values(p: *const u8) -> __m256i {
    // SAFETY: see the function's contract.
    let (qh, lo) = unsafe { (p.cast::<u32>().read_unaligned(), nibbles(p.add(4))) };
    _mm256_or_si256(lo, fifth_bits(qh))
}

impl Decoder for Q5_0Dec {
    const GROUPS: usize = 1;
    const K: i32 = -16;
    scales32!(22);
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn group(self, blk: usize, _: usize) -> __m256i {
        // SAFETY: block `blk` is in the row.
        unsafe { q5_values(self.0.add(Self::BYTES * blk + 2)) }
    }
}

impl Decoder for Q5_1Dec {
    const GROUPS: usize = 1;
    const AFFINE: bool = true;
    scales32!(24);
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn group(self, blk: usize, _: usize) -> __m256i {
        // SAFETY: block `blk` is in the row.
        unsafe { q5_values(self.0.add(Self::BYTES * blk + 4)) }
    }
}

impl<const RAW: bool> Decoder for Q8<RAW> {
    const GROUPS: usize = 1;
    const K: i32 = if RAW { 0 } else { -128 };
    const RAW: bool = RAW;
    scales32!(34);
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn group(self, blk: usize, _: usize) -> __m256i {
        // SAFETY: block `blk` is in the row.
        let q = unsafe { _mm256_loadu_si256(self.0.add(Self::BYTES * blk + 2).cast()) };
        // Without RAW: w + 128 = w ^ 0x80 as unsigned, K = −128.
        let flip = _mm256_set1_epi8(if RAW { 0 } else { -128 });
        _mm256_xor_si256(q, flip)
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

/// The (a, c) pairs of a Q4_K/Q5_K block at `p`: a = d·sc, c = −dmin·mn, interleaved.
///
/// Safety: 16 readable bytes at `p`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn k4_scales8(p: *const u8) -> [__m256; 2] {
    // SAFETY: see the function's contract.
    let (dm, w) = unsafe {
        let w = |i: usize| p.add(4 + 4 * i).cast::<u32>().read_unaligned();
        (f16x4(p), [w(0), w(1), w(2)])
    };
    let (sc, mn) = k4_scales_mins_packed(w[0], w[1], w[2]);
    let a = _mm256_mul_ps(u8x8_to_f32(sc), _mm256_broadcastss_ps(dm));
    let dmin = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(dm), _mm256_set1_epi32(1));
    let c = _mm256_mul_ps(u8x8_to_f32(mn), _mm256_sub_ps(_mm256_setzero_ps(), dmin));
    let (lo, hi) = (_mm256_unpacklo_ps(a, c), _mm256_unpackhi_ps(a, c));
    [
        _mm256_permute2f128_ps(lo, hi, 0x20),
        _mm256_permute2f128_ps(lo, hi, 0x31),
    ]
}

/// The scales of a Q4_K/Q5_K block of 8 rows (lanes): `d`, `0 − dmin`, and the 6-bit scales
/// and mins of groups 4i..4i + 4 in the bytes of `sc[i]`, `mn[i]`.
#[derive(Clone, Copy)]
struct K4Rows {
    d: __m256,
    neg_dmin: __m256,
    sc: [__m256i; 2],
    mn: [__m256i; 2],
}

/// [`Decoder::scales_rows`] of Q4_K/Q5_K blocks starting at `p` (the first row's block).
///
/// Safety: 16 readable bytes at `p + offset` for each row offset.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn k4_scales_rows(p: *const u8, rows: &RowOffsets) -> K4Rows {
    // SAFETY: see the function's contract.
    let (dm, w0, w1, w2) = unsafe {
        let w = |at: usize| gather_rows(p.add(at), rows);
        (w(0), w(4), w(8), w(12))
    };
    let [d, dmin] = f16_pairs(dm);
    // As `k4_scales_mins_packed`, with the top 2 bits of w0, w1 moved by 2 within each byte.
    let and = |v, m: u32| _mm256_and_si256(v, _mm256_set1_epi32(m as i32));
    let (low6, low4, top2) = (0x3f3f_3f3f, 0x0f0f_0f0f, 0x3030_3030);
    let hi = |lo4, w| _mm256_or_si256(and(lo4, low4), and(_mm256_srli_epi32::<2>(w), top2));
    K4Rows {
        d,
        neg_dmin: _mm256_sub_ps(_mm256_setzero_ps(), dmin),
        sc: [and(w0, low6), hi(w2, w0)],
        mn: [and(w1, low6), hi(_mm256_srli_epi32::<4>(w2), w1)],
    }
}

/// [`Decoder::scale_rows`] of Q4_K/Q5_K: a = d·sc, c = (0 − dmin)·mn as in [`k4_scales8`].
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn k4_scale_rows(s: &K4Rows, g: usize) -> [__m256; 2] {
    let v = |b: &[__m256i; 2]| _mm256_cvtepi32_ps(dword_byte::<false>(b[g / 4], g % 4));
    [
        _mm256_mul_ps(v(&s.sc), s.d),
        _mm256_mul_ps(v(&s.mn), s.neg_dmin),
    ]
}

/// Group g of a Q4_K/Q5_K block from the 32 bytes `q` it shares with group g ^ 1: their low
/// nibbles for even g, the high ones for odd g.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn k_nibbles(q: __m256i, g: usize) -> __m256i {
    let q = if g % 2 == 1 {
        _mm256_srli_epi16::<4>(q)
    } else {
        q
    };
    _mm256_and_si256(q, _mm256_set1_epi8(0x0F))
}

impl Decoder for Q4KDec {
    const GROUPS: usize = 8;
    block_bytes!(144);
    type RowScales = K4Rows;
    const AFFINE: bool = true;
    k4_scales!();
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn group(self, blk: usize, g: usize) -> __m256i {
        // SAFETY: block `blk` (144 bytes) is in the row.
        let q =
            unsafe { _mm256_loadu_si256(self.0.add(Self::BYTES * blk + 16 + 32 * (g / 2)).cast()) };
        k_nibbles(q, g)
    }
}

impl Decoder for Q5KDec {
    const GROUPS: usize = 8;
    block_bytes!(176);
    type RowScales = K4Rows;
    const AFFINE: bool = true;
    k4_scales!();
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn group(self, blk: usize, g: usize) -> __m256i {
        // SAFETY: block `blk` (176 bytes) is in the row.
        let (qh, q) = unsafe {
            let p = self.0.add(Self::BYTES * blk);
            (
                _mm256_loadu_si256(p.add(16).cast()),
                _mm256_loadu_si256(p.add(48 + 32 * (g / 2)).cast()),
            )
        };
        // 0x10 where bit g of qh[l] is set.
        let bit = _mm256_set1_epi8(1 << g);
        let set = _mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit);
        _mm256_or_si256(
            k_nibbles(q, g),
            _mm256_and_si256(set, _mm256_set1_epi8(0x10)),
        )
    }
}

impl Decoder for Q6KDec {
    const GROUPS: usize = 8;
    block_bytes!(210);
    const K: i32 = -32;
    const G16: bool = true;
    type RowScales = (__m256, [__m256i; 4]);
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn scales8(self, blk: usize) -> [__m256; 2] {
        // SAFETY: block `blk` (210 bytes) is in the row.
        let (d, sc) = unsafe {
            let p = self.0.add(Self::BYTES * blk);
            let bits = p.add(208).cast::<u16>().read_unaligned();
            (
                _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)),
                _mm_loadu_si128(p.add(192).cast()),
            )
        };
        let d = _mm256_broadcastss_ps(d);
        let a = |s| _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(s)), d);
        [a(sc), a(_mm_srli_si128(sc, 8))]
    }
    /// `d` and the 16 signed scales (4 per vector).
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn scales_rows(self, rows: &RowOffsets, blk: usize) -> (__m256, [__m256i; 4]) {
        // SAFETY: block `blk` (210 bytes, d at 208..210) is in each row.
        unsafe {
            let w = |at: usize| gather_rows(self.0.add(Self::BYTES * blk + at), rows);
            (f16_pairs(w(206))[1], [w(192), w(196), w(200), w(204)])
        }
    }
    /// a = d·sc (sc signed) as in `scales8`, c = K·a as in `unpacked_scales8`.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn scale_rows((d, sc): &(__m256, [__m256i; 4]), g: usize, h: usize) -> [__m256; 2] {
        let i = 2 * g + h;
        let sc = _mm256_srai_epi32::<24>(dword_byte::<true>(sc[i / 4], i % 4));
        let a = _mm256_mul_ps(_mm256_cvtepi32_ps(sc), *d);
        [a, _mm256_mul_ps(a, _mm256_set1_ps(Self::K as f32))]
    }
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn group(self, blk: usize, g: usize) -> __m256i {
        // Group g = 4n + k: the low nibbles of ql[64n..64n + 64] (k = 0, 1) or their high
        // nibbles (k = 2, 3), with the bits 2k, 2k + 1 of qh[32n..32n + 32] on top.
        let (n, k) = (g / 4, g % 4);
        // SAFETY: block `blk` (210 bytes) is in the row.
        let (ql, qh) = unsafe {
            let p = self.0.add(Self::BYTES * blk);
            (
                _mm256_loadu_si256(p.add(64 * n + 32 * (k % 2)).cast()),
                _mm256_loadu_si256(p.add(128 + 32 * n).cast()),
            )
        };
        let ql = if k >= 2 {
            _mm256_srli_epi16::<4>(ql)
        } else {
            ql
        };
        let qh = match k {
            0 => _mm256_slli_epi16::<4>(qh),
            1 => _mm256_slli_epi16::<2>(qh),
            2 => qh,
            _ => _mm256_srli_epi16::<2>(qh),
        };
        _mm256_or_si256(
            _mm256_and_si256(ql, _mm256_set1_epi8(0x0F)),
            _mm256_and_si256(qh, _mm256_set1_epi8(0x30)),
        )
    }
}

/// 8 groups' scales (as from `scales8`) in the unpacked form `[a_lo, c_lo, a_hi, c_hi]` per
/// group (32 floats).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn unpacked_scales8<D: Decoder>(v: [__m256; 2]) -> [__m256; 4] {
    let k = D::K as f32;
    // Source lanes of two consecutive groups' quadruples, and the factors (c = K·a unless
    // affine).
    let (lo, hi, f) = if D::AFFINE {
        ([0, 1, 0, 1, 2, 3, 2, 3], [4, 5, 4, 5, 6, 7, 6, 7], [1.0; 2])
    } else {
        debug_assert!(D::G16, "symmetric 8-group blocks have 16-element halves");
        ([0, 0, 1, 1, 2, 2, 3, 3], [4, 4, 5, 5, 6, 6, 7, 7], [1.0, k])
    };
    let fs = _mm256_setr_ps(f[0], f[1], f[0], f[1], f[0], f[1], f[0], f[1]);
    let pick = |v, i: [i32; 8]| {
        let idx = _mm256_setr_epi32(i[0], i[1], i[2], i[3], i[4], i[5], i[6], i[7]);
        _mm256_mul_ps(_mm256_permutevar8x32_ps(v, idx), fs)
    };
    [
        pick(v[0], lo),
        pick(v[0], hi),
        pick(v[1], lo),
        pick(v[1], hi),
    ]
}

/// One block's scales (as from `scales1`) in the unpacked form `[a, c, a, c]`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn unpacked_scales1<D: Decoder>(s: __m128) -> __m128 {
    let k = D::K as f32;
    if D::AFFINE {
        _mm_permute_ps(s, 0b01_00_01_00)
    } else {
        _mm_mul_ps(_mm_permute_ps(s, 0), _mm_setr_ps(1.0, k, 1.0, k))
    }
}

/// Unpacks one row (`nblk` blocks) with a register decoder into `u` / `ac` (the same result as
/// [`super::unpack::unpack_row`], much faster).
///
/// Safety: `u` and `ac` hold the row's `32·G` bytes and `4·G` floats (G = nblk·GROUPS); the
/// decoder has no `HI16`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack_simd<D: Decoder>(dec: D, nblk: usize, u: *mut u8, ac: *mut f32) {
    for blk in 0..nblk {
        // Prefetch about 1 KB ahead (rows are consecutive, so this runs into the next ones).
        let ahead = dec.row().wrapping_add(blk * D::BYTES + PREFETCH_AHEAD);
        _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
        for g in 0..D::GROUPS {
            // SAFETY: block blk is in the row; group blk·GROUPS + g is inside the buffers.
            unsafe {
                let v = dec.group(blk, g);
                _mm256_storeu_si256(u.add(QK * (blk * D::GROUPS + g)).cast(), v);
            }
        }
        if D::GROUPS == 1 {
            // SAFETY: block blk is in the row.
            let v = unpacked_scales1::<D>(unsafe { dec.scales1(blk) });
            // SAFETY: its 4 floats are inside `ac`.
            unsafe { _mm_storeu_ps(ac.add(4 * blk), v) };
        } else {
            // SAFETY: block blk is in the row.
            let v = unpacked_scales8::<D>(unsafe { dec.scales8(blk) });
            for (i, v) in v.into_iter().enumerate() {
                // SAFETY: its 32 floats are inside `ac`.
                unsafe { _mm256_storeu_ps(ac.add(32 * blk + 8 * i), v) };
            }
        }
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
    let m = v.iter().fold(_mm256_setzero_ps(), |m, &v| {
        _mm256_max_ps(m, _mm256_and_ps(v, abs))
    });
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
    let (d, id) = act::scale_of(amax);
    // `cvtps` rounds to nearest, ties to even (the default MXCSR mode), as `round_ties_even`.
    let i: [__m256i; 4] = v.map(|v| _mm256_cvtps_epi32(_mm256_mul_ps(v, _mm256_set1_ps(id))));
    let packed = _mm256_packs_epi16(
        _mm256_packs_epi32(i[0], i[1]),
        _mm256_packs_epi32(i[2], i[3]),
    );
    let ordered = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    // SAFETY: `q` holds 32 bytes.
    unsafe { _mm256_storeu_si256(q.as_mut_ptr().cast(), ordered) };
    let (lo, hi) = (_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
    let t = _mm256_hadd_epi32(lo, hi); // [lo01 lo23 hi01 hi23 | lo45 lo67 hi45 hi67]
    let t = _mm256_hadd_epi32(t, t); // [lo0123 hi0123 .. | lo4567 hi4567 ..]
    let t = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
    BlockSums {
        d,
        lo: _mm_cvtsi128_si32(t),
        hi: _mm_extract_epi32(t, 1),
    }
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
            let (x, y) = unsafe {
                (
                    _mm256_loadu_ps(x.as_ptr().add(8 * i)),
                    _mm256_loadu_ps(y.as_ptr().add(8 * i)),
                )
            };
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

/// How far ahead (bytes) the unpacking prefetches weights.
const PREFETCH_AHEAD: usize = 1024;

/// How far ahead (rows) the direct kernel prefetches weights.
const PREFETCH_ROWS: usize = 8;

/// The sums of 8 rows' integer dots (row i in lane i) over elements 0..16 (lanes 0..4 of
/// `v[i]`) and over elements 16..32 (lanes 4..8).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn row_sums(v: [__m256i; 8]) -> [__m256i; 2] {
    let h = |a, b| _mm256_hadd_epi32(a, b);
    // [rows 0..4 over elements 0..16 | rows 0..4 over 16..32], and the same for rows 4..8.
    let a = h(h(v[0], v[1]), h(v[2], v[3]));
    let b = h(h(v[4], v[5]), h(v[6], v[7]));
    [
        _mm256_permute2x128_si256::<0x20>(a, b),
        _mm256_permute2x128_si256::<0x31>(a, b),
    ]
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
        mod $name:ident for $isa:ident, features = $feat:literal, dot4 = $dot4:path,
        exact_u8 = $exact:literal,
        tile = ($R:literal, $C:literal)
    ) => {
        $(#[$doc])*
        pub(super) mod $name {
            use super::*;

            /// Whether the dot step takes weight bytes up to 255 (else Q8_0 uses the sign trick).
            const EXACT_U8: bool = $exact;
            /// Q8_0 as raw signed bytes (sign trick) where bytes up to 255 are not exact.
            const RAW_Q8: bool = !EXACT_U8;
            /// Q4 high nibbles left in place (16·u) where bytes up to 255 are exact.
            const HI16: bool = EXACT_U8;

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

            /// `init` + the integer dot of one weight group with one activation block.
            #[target_feature(enable = $feat)]
            #[inline]
            fn dot_group<const RAW: bool>(init: __m256i, u: __m256i, x: __m256i) -> __m256i {
                if RAW {
                    dot4(init, _mm256_abs_epi8(u), _mm256_sign_epi8(x, u))
                } else {
                    dot4(init, u, x)
                }
            }

            /// 8 weight rows (`decs`, at `rows` from the first; `nblk` blocks each), one per
            /// lane, against NC columns of the direct layout from column `j`.
            ///
            /// For each (row, column) this is exactly the arithmetic of the batched
            /// micro-kernel [`micro`], only with rows in the lanes instead of columns: per
            /// group (and half with G16), in order, the integer dot of the same bytes (the
            /// unpacked form; exact, and with the same byte pairs for `vpmaddubsw`, whose
            /// saturation these ranges never reach), then
            /// `acc = fma(cvt(idot), a·d, acc); acc = fma(c, s, acc)` with the a, c that
            /// [`unpack_simd`] stores (from [`Decoder::scale_rows`]) and the d, s of the
            /// batched layout (the direct layout holds the same floats). So a column's outputs
            /// do not depend on which path, or which other columns, computed them.
            ///
            /// Safety: the rows hold `nblk` blocks; the activations hold columns j..j+NC of
            /// the rows' length.
            #[target_feature(enable = $feat)]
            unsafe fn rows8<D: Decoder, const NC: usize>(
                decs: &[D; 8],
                rows: &RowOffsets,
                nblk: usize,
                act: &Act,
                j: usize,
            ) -> [__m256; NC] {
                let ng = nblk * D::GROUPS;
                let cols = ng * QK;
                // SAFETY: columns j..j+NC of `cols` elements are in the activations (this
                // holds for all the reads through q, f below).
                let (q, f) = unsafe {
                    (
                        act.q.as_ptr().add(j * cols),
                        act.f.as_ptr().add(j * ng * DIRECT_F),
                    )
                };
                let mut acc = [_mm256_setzero_ps(); NC];
                // Rows lie one after the other: prefetch the rows PREFETCH_ROWS further on at
                // the pace this walks the current ones. A single core keeps too few misses in
                // flight to stream from DRAM at full speed on its own.
                let ahead = decs[0].row().wrapping_add(PREFETCH_ROWS * nblk * D::BYTES);
                let per_blk = PREFETCH_ROWS * D::BYTES;
                for blk in 0..nblk {
                    let pf = ahead.wrapping_add(blk * per_blk);
                    for line in (0..per_blk).step_by(64) {
                        _mm_prefetch::<_MM_HINT_T0>(pf.wrapping_add(line).cast());
                    }
                    // SAFETY: block blk is in each row.
                    let s = unsafe { decs[0].scales_rows(rows, blk) };
                    for g in 0..D::GROUPS {
                        let gi = blk * D::GROUPS + g;
                        // SAFETY: group gi of column j + c.
                        let x: [__m256i; NC] = std::array::from_fn(|c| unsafe {
                            _mm256_loadu_si256(q.add(c * cols + gi * QK).cast())
                        });
                        // dots[c][i]: row i against column j + c.
                        let mut dots = [[_mm256_setzero_si256(); 8]; NC];
                        for (i, dec) in decs.iter().enumerate() {
                            // SAFETY: block blk is in the row.
                            let u = unsafe { dec.group(blk, g) };
                            for (dots, &x) in dots.iter_mut().zip(&x) {
                                let zero = _mm256_setzero_si256();
                                dots[i] = if D::RAW {
                                    dot_group::<true>(zero, u, x)
                                } else {
                                    dot_group::<false>(zero, u, x)
                                };
                            }
                        }
                        for (c, acc) in acc.iter_mut().enumerate() {
                            let [lo, hi] = row_sums(dots[c]);
                            // f: [d, s, s_lo, s_hi] of group gi of column j + c.
                            // SAFETY: as above.
                            let fp = unsafe { f.add((c * ng + gi) * DIRECT_F) };
                            // SAFETY: as above.
                            let at = |i: usize| _mm256_set1_ps(unsafe { *fp.add(i) });
                            let dx = at(0);
                            let mut step = |idot, [a, cc]: [__m256; 2], s| {
                                let v = _mm256_cvtepi32_ps(idot);
                                *acc = _mm256_fmadd_ps(v, _mm256_mul_ps(a, dx), *acc);
                                *acc = _mm256_fmadd_ps(cc, s, *acc);
                            };
                            // SAFETY: the module's features include AVX2, FMA and F16C.
                            let ac = |h| unsafe { D::scale_rows(&s, g, h) };
                            if D::G16 {
                                step(lo, ac(0), at(2));
                                step(hi, ac(1), at(3));
                            } else {
                                // HI16: `hi` summed 16·u (exactly; ≤ 240 per byte).
                                let hi = if D::HI16 { _mm256_srai_epi32::<4>(hi) } else { hi };
                                step(_mm256_add_epi32(lo, hi), ac(0), at(1));
                            }
                        }
                    }
                }
                acc
            }

            /// Rows `rows` of a quantized matrix against every column of the direct layout:
            /// 8 rows (one per lane) × 2 or 1 columns at a time, see [`rows8`].
            ///
            /// Safety: the CPU supports the module's features; `act` is the direct layout of
            /// `w.cols`-element columns; `rows` are rows of `w` owned by this task.
            #[target_feature(enable = $feat)]
            unsafe fn direct_rows(w: &QMatrix, rows: Range<usize>, act: &Act, out: Out) {
                let row = |r: usize| w.row(r).as_ptr();
                let (a, o) = (act, out);
                // SAFETY: forwarded contract; the decoders read rows of `w`.
                unsafe {
                    match w.ty {
                        TensorType::Q4_0 => {
                            direct_typed(w, rows, a, o, |r| Q4_0Dec::<HI16>(row(r)))
                        }
                        TensorType::Q4_1 => {
                            direct_typed(w, rows, a, o, |r| Q4_1Dec::<HI16>(row(r)))
                        }
                        TensorType::Q5_0 => direct_typed(w, rows, a, o, |r| Q5_0Dec(row(r))),
                        TensorType::Q5_1 => direct_typed(w, rows, a, o, |r| Q5_1Dec(row(r))),
                        TensorType::Q8_0 => {
                            direct_typed(w, rows, a, o, |r| Q8::<RAW_Q8>(row(r)))
                        }
                        TensorType::Q4_K => direct_typed(w, rows, a, o, |r| Q4KDec(row(r))),
                        TensorType::Q5_K => direct_typed(w, rows, a, o, |r| Q5KDec(row(r))),
                        TensorType::Q6_K => direct_typed(w, rows, a, o, |r| Q6KDec(row(r))),
                        TensorType::F32 | TensorType::F16 | TensorType::BF16 => {
                            unreachable!("float matrices take the f32 path")
                        }
                    }
                }
            }

            /// [`direct_rows`] for one decoder type. A last chunk of fewer than 8 rows repeats
            /// its last row in the spare lanes (which are not stored): lanes do not interact.
            ///
            /// Safety: as [`direct_rows`].
            #[target_feature(enable = $feat)]
            unsafe fn direct_typed<D: Decoder>(
                w: &QMatrix,
                rows: Range<usize>,
                act: &Act,
                out: Out,
                dec: impl Fn(usize) -> D,
            ) {
                let (nblk, rb) = (w.cols / w.ty.block_elems(), w.row_bytes());
                for r in rows.clone().step_by(8) {
                    let valid = (rows.end - r).min(8);
                    let lane = |i: usize| i.min(valid - 1);
                    let decs = std::array::from_fn(|i| dec(r + lane(i)));
                    // Fits: 7·rb ≤ i32::MAX (see DIRECT_MAX_ROW_BYTES).
                    let off: [i32; 8] = std::array::from_fn(|i| (lane(i) * rb) as i32);
                    // SAFETY: `off` holds 8 i32.
                    let offs = RowOffsets(unsafe { _mm256_loadu_si256(off.as_ptr().cast()) });
                    let mut j = 0;
                    while j < act.n {
                        let mut lanes = [[0f32; 8]; 2];
                        let nc = (act.n - j).min(2);
                        // SAFETY: forwarded contract, columns j..j+nc exist; `lanes` holds
                        // 2 × 8 floats.
                        unsafe {
                            let v: &[__m256] = if nc == 2 {
                                &rows8::<D, 2>(&decs, &offs, nblk, act, j)
                            } else {
                                &rows8::<D, 1>(&decs, &offs, nblk, act, j)
                            };
                            for (l, &v) in lanes.iter_mut().zip(v) {
                                _mm256_storeu_ps(l.as_mut_ptr(), v);
                            }
                        }
                        for (c, l) in lanes[..nc].iter().enumerate() {
                            // SAFETY: j + c < n, r + valid ≤ rows.end, owned by this task.
                            unsafe { out.set_rows(j + c, r, &l[..valid]) };
                        }
                        j += nc;
                    }
                }
            }

            /// Unpacks rows `rows` of `w` into `buf`.
            ///
            /// Safety: the CPU supports the module's features; `rows` are rows of `w`.
            #[target_feature(enable = $feat)]
            unsafe fn unpack_rows(w: &QMatrix, rows: Range<usize>, buf: &mut Unpacked, raw: bool) {
                let (cols, n) = (w.cols, w.cols / w.ty.block_elems());
                buf.prepare(rows.len(), cols);
                for (i, r) in rows.enumerate() {
                    let p = w.row(r).as_ptr();
                    // SAFETY: slot i holds `cols` bytes and `cols / 8` floats; the decoders read
                    // row r of `w`.
                    unsafe {
                        let u = buf.u_mut().as_mut_ptr().add(i * cols);
                        let ac = buf.ac.as_mut_ptr().add(i * cols / QK * 4);
                        match w.ty {
                            TensorType::Q4_0 => unpack_simd(Q4_0Dec::<false>(p), n, u, ac),
                            TensorType::Q4_1 => unpack_simd(Q4_1Dec::<false>(p), n, u, ac),
                            TensorType::Q5_0 => unpack_simd(Q5_0Dec(p), n, u, ac),
                            TensorType::Q5_1 => unpack_simd(Q5_1Dec(p), n, u, ac),
                            TensorType::Q8_0 if raw => unpack_simd(Q8::<true>(p), n, u, ac),
                            TensorType::Q8_0 => unpack_simd(Q8::<false>(p), n, u, ac),
                            TensorType::Q4_K => unpack_simd(Q4KDec(p), n, u, ac),
                            TensorType::Q5_K => unpack_simd(Q5KDec(p), n, u, ac),
                            TensorType::Q6_K => unpack_simd(Q6KDec(p), n, u, ac),
                            TensorType::F32 | TensorType::F16 | TensorType::BF16 => {
                                unreachable!("float matrices take the f32 path")
                            }
                        }
                    }
                }
            }

            /// Rows `rows` × column groups `groups` of the batched layout: unpack the rows,
            /// then run the register-tiled micro-kernel over the tiles.
            ///
            /// Safety: the CPU supports the module's features; `act` is the batched layout of
            /// `w.cols`-element columns holding `groups`; `rows` are rows of `w`; this task owns
            /// the outputs of `rows` × `groups`.
            #[target_feature(enable = $feat)]
            unsafe fn batched(
                w: &QMatrix,
                rows: Range<usize>,
                groups: Range<usize>,
                act: &Act,
                out: Out,
            ) {
                let raw = w.ty == TensorType::Q8_0 && RAW_Q8;
                UNPACK.with_borrow_mut(|buf| {
                    // SAFETY: forwarded contract.
                    unsafe { unpack_rows(w, rows.clone(), buf, raw) };
                    let (u, ac) = (buf.u().as_ptr(), buf.ac.as_ptr());
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
                        // Two integer chains per (row, group), even and odd steps: the
                        // `vpdpbusd` latency would otherwise bound small tiles.
                        let mut idot = [[[_mm256_setzero_si256(); 2]; C]; R];
                        for k in h * steps..(h + 1) * steps {
                            let x: [__m256i; C] = std::array::from_fn(|c| {
                                // SAFETY: step k of block b of group c.
                                unsafe {
                                    _mm256_loadu_si256(q.add(c * qg + b * BATCH_Q + 32 * k).cast())
                                }
                            });
                            for (rr, idot) in idot.iter_mut().enumerate() {
                                let at = rr * cols + b * QK + 4 * k;
                                // SAFETY: bytes 4k..4k+4 of group b of unpacked row rr.
                                let w4 = unsafe { u.add(at).cast::<i32>().read_unaligned() };
                                let wb = _mm256_set1_epi32(w4);
                                for (idot, &x) in idot.iter_mut().zip(&x) {
                                    let next = if RAW {
                                        dot4(idot[0], _mm256_abs_epi8(wb), _mm256_sign_epi8(x, wb))
                                    } else {
                                        dot4(idot[0], wb, x)
                                    };
                                    *idot = [idot[1], next];
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
                                let [i0, i1] = idot[rr][c];
                                let v = _mm256_cvtepi32_ps(_mm256_add_epi32(i0, i1));
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
