//! Scalar reference (de)quantization for every [`TensorType`].
//!
//! These functions follow the block layouts and formulas of ggml (`ggml-common.h`,
//! `ggml-quants.c`) literally and favour clarity over speed. They define what the fast kernels
//! in [`crate::cpu::matmul`] must compute, and the quantizers build realistic blocks for tests
//! and benchmarks.
//!
//! # Preconditions
//!
//! Callers validate shapes: `dst.len()` (or `src.len()` for the quantizers) must be a whole
//! number of blocks, and the byte slice must hold exactly
//! `ty.row_bytes(elements)` bytes. The functions panic otherwise.

use super::TensorType;
use half::{bf16, f16};

/// Reads the little-endian f16 at byte `i` of `b` as f32.
#[inline]
pub(crate) fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

fn put_f16(b: &mut [u8], i: usize, v: f32) {
    b[i..i + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
}

#[inline]
pub(crate) fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn check_lengths(ty: TensorType, bytes: usize, elems: usize) {
    let expected = ty.row_bytes(elems as u64);
    assert!(
        expected == Some(bytes as u64),
        "{ty}: {elems} elements need {expected:?} bytes, got {bytes}"
    );
}

/// Dequantizes one row of `dst.len()` elements of type `ty` from `src`.
///
/// Precondition: `dst.len()` is a multiple of `ty.block_elems()` and
/// `src.len() == ty.row_bytes(dst.len())`; panics otherwise.
pub fn dequantize_row(ty: TensorType, src: &[u8], dst: &mut [f32]) {
    check_lengths(ty, src.len(), dst.len());
    match ty {
        TensorType::F32 => {
            for (o, c) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        TensorType::F16 => {
            for (o, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *o = f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        TensorType::BF16 => {
            for (o, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *o = bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        _ => {
            let block = block_dequantizer(ty);
            let (be, bb) = (ty.block_elems(), ty.block_bytes());
            for (b, o) in src.chunks_exact(bb).zip(dst.chunks_exact_mut(be)) {
                block(b, o);
            }
        }
    }
}

type BlockDequant = fn(&[u8], &mut [f32]);

fn block_dequantizer(ty: TensorType) -> BlockDequant {
    match ty {
        TensorType::Q4_0 => dequant_q4_0,
        TensorType::Q4_1 => dequant_q4_1,
        TensorType::Q5_0 => dequant_q5_0,
        TensorType::Q5_1 => dequant_q5_1,
        TensorType::Q8_0 => dequant_q8_0,
        TensorType::Q4_K => dequant_q4_k,
        TensorType::Q5_K => dequant_q5_k,
        TensorType::Q6_K => dequant_q6_k,
        TensorType::F32 | TensorType::F16 | TensorType::BF16 => unreachable!("not a block type"),
    }
}

/// Q4_0: `f16 d; u8 qs[16]`; element j = d·((qs[j]&15) − 8),
/// element j+16 = d·((qs[j]>>4) − 8).
fn dequant_q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for j in 0..16 {
        y[j] = d * ((b[2 + j] & 0xF) as i32 - 8) as f32;
        y[j + 16] = d * ((b[2 + j] >> 4) as i32 - 8) as f32;
    }
}

/// Q4_1: `f16 d; f16 m; u8 qs[16]`; value = d·q + m.
fn dequant_q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for j in 0..16 {
        y[j] = d * (b[4 + j] & 0xF) as f32 + m;
        y[j + 16] = d * (b[4 + j] >> 4) as f32 + m;
    }
}

/// The 5-bit values of a Q5_0/Q5_1 block: low nibbles from `qs`, fifth bits from `qh`.
#[inline]
pub(crate) fn q5_values(qh: u32, qs: &[u8]) -> [u8; 32] {
    let mut q = [0u8; 32];
    for j in 0..16 {
        let h0 = (((qh >> j) << 4) & 0x10) as u8;
        let h1 = ((qh >> (j + 12)) & 0x10) as u8;
        q[j] = (qs[j] & 0xF) | h0;
        q[j + 16] = (qs[j] >> 4) | h1;
    }
    q
}

/// Q5_0: `f16 d; u8 qh[4]; u8 qs[16]`; value = d·(q5 − 16).
fn dequant_q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    let q = q5_values(u32_at(b, 2), &b[6..22]);
    for (o, &q) in y.iter_mut().zip(&q) {
        *o = d * (q as i32 - 16) as f32;
    }
}

/// Q5_1: `f16 d; f16 m; u8 qh[4]; u8 qs[16]`; value = d·q5 + m.
fn dequant_q5_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let q = q5_values(u32_at(b, 4), &b[8..24]);
    for (o, &q) in y.iter_mut().zip(&q) {
        *o = d * q as f32 + m;
    }
}

/// Q8_0: `f16 d; i8 qs[32]`; value = d·q.
fn dequant_q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (o, &q) in y.iter_mut().zip(&b[2..34]) {
        *o = d * (q as i8) as f32;
    }
}

/// Unpacks the eight 6-bit (scale, min) pairs of a Q4_K/Q5_K block (`get_scale_min_k4`).
#[inline]
pub(crate) fn k4_scales_mins(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut mn) = ([0u8; 8], [0u8; 8]);
    for j in 0..8 {
        if j < 4 {
            sc[j] = s[j] & 63;
            mn[j] = s[j + 4] & 63;
        } else {
            sc[j] = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
            mn[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
    }
    (sc, mn)
}

/// Packs eight 6-bit (scale, min) pairs; the inverse of [`k4_scales_mins`].
fn pack_k4_scales_mins(sc: &[u8; 8], mn: &[u8; 8], s: &mut [u8]) {
    for j in 0..4 {
        s[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        s[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
        s[j + 8] = (sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4);
    }
}

/// Q4_K: `f16 d; f16 dmin; u8 scales[12]; u8 qs[128]`, 8 sub-blocks of 32:
/// value = d·sc·q − dmin·mn; chunk c of 64 takes low nibbles of qs[32c..] then high nibbles.
fn dequant_q4_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (sc, mn) = k4_scales_mins(&b[4..16]);
    for c in 0..4 {
        let q = &b[16 + 32 * c..48 + 32 * c];
        for (half, shift) in [(0, 0), (1, 4)] {
            let g = 2 * c + half;
            let (a, m) = (d * sc[g] as f32, dmin * mn[g] as f32);
            for l in 0..32 {
                y[32 * g + l] = a * ((q[l] >> shift) & 0xF) as f32 - m;
            }
        }
    }
}

/// Q5_K: `f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]`; like Q4_K with a fifth bit:
/// sub-block g takes bit g of qh[l].
fn dequant_q5_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (sc, mn) = k4_scales_mins(&b[4..16]);
    let qh = &b[16..48];
    for c in 0..4 {
        let q = &b[48 + 32 * c..80 + 32 * c];
        for (half, shift) in [(0, 0), (1, 4)] {
            let g = 2 * c + half;
            let (a, m) = (d * sc[g] as f32, dmin * mn[g] as f32);
            for l in 0..32 {
                let v = ((q[l] >> shift) & 0xF) | (((qh[l] >> g) & 1) << 4);
                y[32 * g + l] = a * v as f32 - m;
            }
        }
    }
}

/// The 6-bit value of element `e` (0..256) of a Q6_K block (`ql`, `qh` as stored).
fn q6_value(ql: &[u8], qh: &[u8], e: usize) -> u8 {
    let (n, k, l) = (e / 128, (e % 128) / 32, e % 32);
    let lo = ql[64 * n + l + 32 * (k & 1)];
    let lo = if k >= 2 { lo >> 4 } else { lo & 0xF };
    let hi = (qh[32 * n + l] >> (2 * k)) & 3;
    lo | (hi << 4)
}

/// Q6_K: `u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d`; value = d·sc[e/16]·(q6 − 32).
fn dequant_q6_k(b: &[u8], y: &mut [f32]) {
    let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
    let d = f16_at(b, 208);
    for (e, o) in y.iter_mut().enumerate() {
        let q = q6_value(ql, qh, e) as i32 - 32;
        *o = d * (sc[e / 16] as i8) as f32 * q as f32;
    }
}

/// Quantizes one row of `src.len()` elements into `dst` with simple reference quantizers
/// (round to nearest; per-block min/max or absolute-max scales, as ggml's `*_ref` ones).
///
/// Precondition: `src.len()` is a multiple of `ty.block_elems()` and
/// `dst.len() == ty.row_bytes(src.len())`; panics otherwise.
pub fn quantize_row(ty: TensorType, src: &[f32], dst: &mut [u8]) {
    check_lengths(ty, dst.len(), src.len());
    match ty {
        TensorType::F32 => {
            for (x, o) in src.iter().zip(dst.chunks_exact_mut(4)) {
                o.copy_from_slice(&x.to_le_bytes());
            }
        }
        TensorType::F16 => {
            for (x, o) in src.iter().zip(dst.chunks_exact_mut(2)) {
                o.copy_from_slice(&f16::from_f32(*x).to_le_bytes());
            }
        }
        TensorType::BF16 => {
            for (x, o) in src.iter().zip(dst.chunks_exact_mut(2)) {
                o.copy_from_slice(&bf16::from_f32(*x).to_le_bytes());
            }
        }
        _ => {
            let block = block_quantizer(ty);
            let (be, bb) = (ty.block_elems(), ty.block_bytes());
            for (x, o) in src.chunks_exact(be).zip(dst.chunks_exact_mut(bb)) {
                block(x, o);
            }
        }
    }
}

type BlockQuant = fn(&[f32], &mut [u8]);

fn block_quantizer(ty: TensorType) -> BlockQuant {
    match ty {
        TensorType::Q4_0 => |x, b| quant_sym_nibbles(x, b, 8),
        TensorType::Q4_1 => |x, b| quant_affine_32(x, b, 15),
        TensorType::Q5_0 => |x, b| quant_sym_nibbles(x, b, 16),
        TensorType::Q5_1 => |x, b| quant_affine_32(x, b, 31),
        TensorType::Q8_0 => quant_q8_0,
        TensorType::Q4_K => |x, b| quant_k_affine(x, b, false),
        TensorType::Q5_K => |x, b| quant_k_affine(x, b, true),
        TensorType::Q6_K => quant_q6_k,
        TensorType::F32 | TensorType::F16 | TensorType::BF16 => unreachable!("not a block type"),
    }
}

fn inv(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// Stores 32 values of 4 or 5 bits in the Q4/Q5 nibble order (plus `qh` for 5 bits).
fn pack_nibbles(q: &[u8; 32], qs: &mut [u8], qh: Option<&mut [u8]>) {
    for j in 0..16 {
        qs[j] = (q[j] & 0xF) | ((q[j + 16] & 0xF) << 4);
    }
    if let Some(qh) = qh {
        let mut h = 0u32;
        for (j, &v) in q.iter().enumerate() {
            h |= ((v >> 4) as u32 & 1) << j;
        }
        qh.copy_from_slice(&h.to_le_bytes());
    }
}

/// Q4_0 (`offset` 8) and Q5_0 (`offset` 16): d = x_maxabs / −offset, q = round(x/d) + offset.
fn quant_sym_nibbles(x: &[f32], b: &mut [u8], offset: i32) {
    let max = x
        .iter()
        .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
    let d = max / -(offset as f32);
    put_f16(b, 0, d);
    let id = inv(f16::from_f32(d).to_f32());
    let mut q = [0u8; 32];
    for (q, &v) in q.iter_mut().zip(x) {
        *q = ((v * id).round() as i32 + offset).clamp(0, 2 * offset - 1) as u8;
    }
    match offset {
        8 => pack_nibbles(&q, &mut b[2..18], None),
        _ => {
            let (qh, qs) = b[2..22].split_at_mut(4);
            pack_nibbles(&q, qs, Some(qh));
        }
    }
}

/// Q4_1 (`levels` 15) and Q5_1 (`levels` 31): d = (max − min)/levels, m = min.
fn quant_affine_32(x: &[f32], b: &mut [u8], levels: i32) {
    let min = x.iter().copied().fold(f32::INFINITY, f32::min);
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    put_f16(b, 0, (max - min) / levels as f32);
    put_f16(b, 2, min);
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let id = inv(d);
    let mut q = [0u8; 32];
    for (q, &v) in q.iter_mut().zip(x) {
        *q = ((v - m) * id).round().clamp(0.0, levels as f32) as u8;
    }
    match levels {
        15 => pack_nibbles(&q, &mut b[4..20], None),
        _ => {
            let (qh, qs) = b[4..24].split_at_mut(4);
            pack_nibbles(&q, qs, Some(qh));
        }
    }
}

/// Q8_0: d = maxabs/127, q = round(x/d).
fn quant_q8_0(x: &[f32], b: &mut [u8]) {
    let amax = x.iter().fold(0f32, |m, &v| m.max(v.abs()));
    put_f16(b, 0, amax / 127.0);
    let id = inv(f16_at(b, 0));
    for (o, &v) in b[2..34].iter_mut().zip(x) {
        *o = ((v * id).round().clamp(-127.0, 127.0) as i8) as u8;
    }
}

/// Q4_K / Q5_K: per sub-block of 32 a min/max range (min clipped to ≤ 0), its scale and
/// −min quantized to 6 bits against the super-block `d` and `dmin`.
fn quant_k_affine(x: &[f32], b: &mut [u8], five_bits: bool) {
    let levels = if five_bits { 31.0 } else { 15.0 };
    let mut scale = [0f32; 8];
    let mut neg_min = [0f32; 8];
    for (g, xs) in x.chunks_exact(32).enumerate() {
        let min = xs.iter().copied().fold(0f32, f32::min);
        let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        scale[g] = (max - min) / levels;
        neg_min[g] = -min;
    }
    let d = scale.iter().copied().fold(0f32, f32::max) / 63.0;
    let dmin = neg_min.iter().copied().fold(0f32, f32::max) / 63.0;
    put_f16(b, 0, d);
    put_f16(b, 2, dmin);
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (mut sc, mut mn) = ([0u8; 8], [0u8; 8]);
    for g in 0..8 {
        sc[g] = (scale[g] * inv(d)).round().clamp(0.0, 63.0) as u8;
        mn[g] = (neg_min[g] * inv(dmin)).round().clamp(0.0, 63.0) as u8;
    }
    pack_k4_scales_mins(&sc, &mn, &mut b[4..16]);
    let mut q = [0u8; 256];
    for (g, xs) in x.chunks_exact(32).enumerate() {
        let (a, m) = (d * sc[g] as f32, dmin * mn[g] as f32);
        for (q, &v) in q[32 * g..].iter_mut().zip(xs) {
            *q = ((v + m) * inv(a)).round().clamp(0.0, levels) as u8;
        }
    }
    let qs_at = if five_bits { 48 } else { 16 };
    for c in 0..4 {
        for l in 0..32 {
            let (lo, hi) = (q[64 * c + l], q[64 * c + 32 + l]);
            b[qs_at + 32 * c + l] = (lo & 0xF) | ((hi & 0xF) << 4);
        }
    }
    if five_bits {
        for l in 0..32 {
            b[16 + l] = (0..8).fold(0u8, |h, g| h | (((q[32 * g + l] >> 4) & 1) << g));
        }
    }
}

/// Q6_K: per sub-block of 16 a signed scale (value with the largest magnitude / −32), the
/// scales quantized to i8 against `d` = max|scale|/127, q = round(x/(d·sc)) + 32.
fn quant_q6_k(x: &[f32], b: &mut [u8]) {
    let mut scale = [0f32; 16];
    for (s, xs) in scale.iter_mut().zip(x.chunks_exact(16)) {
        let max = xs
            .iter()
            .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        *s = max / -32.0;
    }
    let d = scale.iter().fold(0f32, |m, s| m.max(s.abs())) / 127.0;
    put_f16(b, 208, d);
    let d = f16_at(b, 208);
    let mut q = [0u8; 256];
    for (i, xs) in x.chunks_exact(16).enumerate() {
        let sc = (scale[i] * inv(d)).round().clamp(-128.0, 127.0) as i8;
        b[192 + i] = sc as u8;
        let id = inv(d * sc as f32);
        for (q, &v) in q[16 * i..].iter_mut().zip(xs) {
            *q = ((v * id).round() as i32 + 32).clamp(0, 63) as u8;
        }
    }
    let (ql, rest) = b.split_at_mut(128);
    let qh = &mut rest[..64];
    for n in 0..2 {
        for l in 0..32 {
            let [q1, q2, q3, q4] = [0, 32, 64, 96].map(|o| q[128 * n + o + l]);
            ql[64 * n + l] = (q1 & 0xF) | ((q3 & 0xF) << 4);
            ql[64 * n + l + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4);
            qh[32 * n + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F16_HALF: [u8; 2] = [0x00, 0x38]; // 0.5
    const F16_ONE: [u8; 2] = [0x00, 0x3C]; // 1.0
    const F16_QUARTER: [u8; 2] = [0x00, 0x34]; // 0.25
    const F16_MINUS_ONE: [u8; 2] = [0x00, 0xBC]; // -1.0

    fn deq(ty: TensorType, block: &[u8]) -> Vec<f32> {
        let mut y = vec![0f32; ty.block_elems()];
        dequantize_row(ty, block, &mut y);
        y
    }

    #[test]
    fn float_types() {
        assert_eq!(deq(TensorType::F32, &1.5f32.to_le_bytes()), [1.5]);
        assert_eq!(deq(TensorType::F16, &[0x00, 0x3E]), [1.5]); // f16 0x3E00
        assert_eq!(deq(TensorType::BF16, &[0xC0, 0x3F]), [1.5]); // bf16 0x3FC0
        assert_eq!(deq(TensorType::BF16, &[0x80, 0xBF]), [-1.0]);
    }

    #[test]
    fn q4_0_block() {
        // d = 0.5; qs[j] = j | (15 − j) << 4 → y[j] = 0.5(j − 8), y[j+16] = 0.5(7 − j).
        let mut b = F16_HALF.to_vec();
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = deq(TensorType::Q4_0, &b);
        assert_eq!(
            [y[0], y[8], y[15], y[16], y[31]],
            [-4.0, 0.0, 3.5, 3.5, -4.0]
        );
        for j in 0..16 {
            assert_eq!(y[j], 0.5 * (j as f32 - 8.0));
            assert_eq!(y[j + 16], 0.5 * (7.0 - j as f32));
        }
    }

    #[test]
    fn q4_1_block() {
        // d = 0.5, m = −1; y[j] = 0.5·j − 1, y[j+16] = 0.5·(15 − j) − 1.
        let mut b = [F16_HALF, F16_MINUS_ONE].concat();
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = deq(TensorType::Q4_1, &b);
        assert_eq!([y[0], y[15], y[16], y[31]], [-1.0, 6.5, 6.5, -1.0]);
        for j in 0..16 {
            assert_eq!(y[j], 0.5 * j as f32 - 1.0);
            assert_eq!(y[j + 16], 0.5 * (15 - j) as f32 - 1.0);
        }
    }

    #[test]
    fn q5_0_block() {
        // d = 1; qh bit e = fifth bit of element e: bits 0 and 31 set.
        // qs[0] = 0x21: element 0 = (1 | 16) − 16 = 1, element 16 = 2 − 16 = −14;
        // other qs 0: element 31 = (0 | 16) − 16 = 0, the rest −16.
        let mut b = F16_ONE.to_vec();
        b.extend(0x8000_0001u32.to_le_bytes());
        b.extend([0x21].into_iter().chain([0u8; 15]));
        let y = deq(TensorType::Q5_0, &b);
        assert_eq!(
            [y[0], y[1], y[15], y[16], y[17], y[31]],
            [1.0, -16.0, -16.0, -14.0, -16.0, 0.0]
        );
    }

    #[test]
    fn q5_1_block() {
        // d = 0.5, m = 1; qh = 0xFFFF0000 (elements 16..32 get 16); qs[j] = j:
        // y[j] = 0.5·j + 1, y[j+16] = 0.5·16 + 1 = 9.
        let mut b = [F16_HALF, F16_ONE].concat();
        b.extend(0xFFFF_0000u32.to_le_bytes());
        b.extend(0..16u8);
        let y = deq(TensorType::Q5_1, &b);
        for j in 0..16 {
            assert_eq!(y[j], 0.5 * j as f32 + 1.0);
            assert_eq!(y[j + 16], 9.0);
        }
    }

    #[test]
    fn q8_0_block() {
        // d = 0.25, qs[i] = i − 16, except qs[31] = −128.
        let mut b = F16_QUARTER.to_vec();
        b.extend((0..31).map(|i| (i as i8 - 16) as u8).chain([0x80]));
        let y = deq(TensorType::Q8_0, &b);
        assert_eq!([y[0], y[16], y[30], y[31]], [-4.0, 0.0, 3.5, -32.0]);
    }

    /// sc = [1, 2, 3, 4, 17, 33, 48, 63], mn = [0, 1, 2, 3, 16, 20, 40, 63], packed by hand.
    const K_SCALES: [u8; 12] = [
        0x41, 0x82, 0xC3, 0xC4, 0x40, 0x41, 0x82, 0xC3, 0x01, 0x41, 0x80, 0xFF,
    ];

    #[test]
    fn k_scale_unpacking() {
        let (sc, mn) = k4_scales_mins(&K_SCALES);
        assert_eq!(sc, [1, 2, 3, 4, 17, 33, 48, 63]);
        assert_eq!(mn, [0, 1, 2, 3, 16, 20, 40, 63]);
        let mut packed = [0u8; 12];
        pack_k4_scales_mins(&sc, &mn, &mut packed);
        assert_eq!(packed, K_SCALES);
    }

    #[test]
    fn q4_k_block() {
        // d = 1, dmin = 0.5, every qs byte 0x53: even sub-blocks q = 3, odd ones q = 5.
        // y = d·sc·q − dmin·mn per sub-block of 32.
        let mut b = [F16_ONE, F16_HALF].concat();
        b.extend(K_SCALES);
        b.extend([0x53; 128]);
        let y = deq(TensorType::Q4_K, &b);
        let want = [3.0, 9.5, 8.0, 18.5, 43.0, 155.0, 124.0, 283.5];
        for (g, w) in want.iter().enumerate() {
            assert!(
                y[32 * g..32 * g + 32].iter().all(|v| v == w),
                "sub-block {g}"
            );
        }
    }

    #[test]
    fn q5_k_block() {
        // As Q4_K, plus qh[l] = 0b1010_1010: odd sub-blocks get 16 → q = 21.
        let mut b = [F16_ONE, F16_HALF].concat();
        b.extend(K_SCALES);
        b.extend([0xAA; 32]);
        b.extend([0x53; 128]);
        let y = deq(TensorType::Q5_K, &b);
        let want = [3.0, 41.5, 8.0, 82.5, 43.0, 683.0, 124.0, 1291.5];
        for (g, w) in want.iter().enumerate() {
            assert!(
                y[32 * g..32 * g + 32].iter().all(|v| v == w),
                "sub-block {g}"
            );
        }
    }

    #[test]
    fn q6_k_block() {
        // ql bytes 0x21, qh bytes 0xE4 (bits 2k..2k+2 = k): quarter k of each 128 has
        // q = 1, 17, 34, 50; scales[i] = i − 8; d = 0.5; y = d·sc[e/16]·(q − 32).
        let mut b = vec![0x21; 128];
        b.extend([0xE4; 64]);
        b.extend((0..16).map(|i| (i as i8 - 8) as u8));
        b.extend(F16_HALF);
        let y = deq(TensorType::Q6_K, &b);
        let spots = [
            (0, 124.0),
            (32, 45.0),
            (64, -4.0),
            (96, -18.0),
            (128, 0.0),
            (255, 63.0),
        ];
        for (e, v) in spots {
            assert_eq!(y[e], v, "element {e}");
        }
        for (e, &v) in y.iter().enumerate() {
            let q = [1.0, 17.0, 34.0, 50.0][(e % 128) / 32];
            assert_eq!(v, 0.5 * ((e / 16) as f32 - 8.0) * (q - 32.0), "element {e}");
        }
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let u = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                u * (1.0 + (i / 32 % 5) as f32)
            })
            .collect()
    }

    #[test]
    fn quantize_round_trip() {
        let cases = [
            (TensorType::F32, 0.0),
            (TensorType::F16, 1e-3),
            (TensorType::BF16, 5e-3),
            (TensorType::Q4_0, 0.12),
            (TensorType::Q4_1, 0.08),
            (TensorType::Q5_0, 0.06),
            (TensorType::Q5_1, 0.04),
            (TensorType::Q8_0, 0.01),
            (TensorType::Q4_K, 0.1),
            (TensorType::Q5_K, 0.05),
            (TensorType::Q6_K, 0.03),
        ];
        for (ty, tol) in cases {
            let x = pseudo_random(512, 7);
            let mut b = vec![0u8; ty.row_bytes(512).unwrap() as usize];
            quantize_row(ty, &x, &mut b);
            let mut y = vec![0f32; 512];
            dequantize_row(ty, &b, &mut y);
            let err: f32 = x.iter().zip(&y).map(|(a, b)| (a - b) * (a - b)).sum();
            let norm: f32 = x.iter().map(|a| a * a).sum();
            let rel = (err / norm).sqrt();
            assert!(rel <= tol, "{ty}: relative RMS error {rel} > {tol}");
        }
    }

    #[test]
    fn quantize_zero_blocks() {
        for ty in TensorType::ALL {
            let x = vec![0f32; 256];
            let mut b = vec![0u8; ty.row_bytes(256).unwrap() as usize];
            quantize_row(ty, &x, &mut b);
            let mut y = vec![1f32; 256];
            dequantize_row(ty, &b, &mut y);
            assert!(y.iter().all(|&v| v == 0.0), "{ty}");
        }
    }

    #[test]
    #[should_panic]
    fn length_mismatch_panics() {
        dequantize_row(TensorType::Q4_1, &[0u8; 19], &mut [0f32; 32]);
    }
}
