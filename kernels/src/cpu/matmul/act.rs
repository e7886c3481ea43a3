//! Activation quantization, done once per matmul call: 8-bit blocks of 32 with an f32 scale
//! `d = amax/127`, `q = round(x/d)` (ties to even) and the block sums of `q`, as llama.cpp's
//! Q8_1 / Q8_K.
//!
//! Two layouts, holding bitwise the same codes and floats for a column (both come from
//! [`BlockSums::floats`] of the same blocks), so that every kernel can compute a column's
//! outputs with the same arithmetic whatever else is in the batch:
//! * **direct** (few columns): column `j`, block `b` has its 32 codes at `q[j·cols + 32b..]`
//!   and `[d, d·Σq, d·Σq[0..16], d·Σq[16..32]]` at `f[(j·nb + b)·4..]`.
//! * **batched** (many columns): columns are taken [`CG`] at a time and interleaved four codes
//!   at a time, so that a 32-bit lane of a 256-bit vector holds 4 consecutive codes of one
//!   column: group `g`, block `b`, step `k` (elements 4k..4k+4), column `l` sits at
//!   `q[(g·nb + b)·256 + 32k + 4l..]`. The floats of (g, b) are 4 vectors of 8 lanes (one per
//!   column): `d`, `d·Σq`, `d·Σq[0..16]`, `d·Σq[16..32]` at `f[(g·nb + b)·32..]`. Missing
//!   columns of the last group are zero.

use super::unpack::QK;

/// Columns per interleaved group of the batched layout (the 8 lanes of a 256-bit vector).
pub(super) const CG: usize = 8;
/// Floats per (column, block) in the direct layout.
pub(super) const DIRECT_F: usize = 4;
/// Bytes per (column group, block) in the batched layout.
pub(super) const BATCH_Q: usize = QK * CG;
/// Floats per (column group, block) in the batched layout.
pub(super) const BATCH_F: usize = DIRECT_F * CG;

/// Quantized activations in one of the two layouts, borrowed from the scratch.
#[derive(Clone, Copy)]
pub(super) struct Act<'a> {
    pub q: &'a [i8],
    pub f: &'a [f32],
    /// Number of real columns.
    pub n: usize,
    /// Elements per column.
    pub cols: usize,
}

/// The result of quantizing one block: scale and the sums of the two 16-element halves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct BlockSums {
    pub d: f32,
    pub lo: i32,
    pub hi: i32,
}

impl BlockSums {
    /// The block's floats in both layouts: `[d, d·Σq, d·Σq[0..16], d·Σq[16..32]]`.
    pub fn floats(self) -> [f32; DIRECT_F] {
        let d = self.d;
        [
            d,
            d * (self.lo + self.hi) as f32,
            d * self.lo as f32,
            d * self.hi as f32,
        ]
    }
}

/// The scale of a block with absolute maximum `amax`, and its inverse (0 for an all-zero block).
#[inline(always)]
pub(super) fn scale_of(amax: f32) -> (f32, f32) {
    let d = amax / 127.0;
    (d, if amax > 0.0 { 127.0 / amax } else { 0.0 })
}

/// Portable block quantizer; the definition the SIMD ones must match bit for bit.
#[inline(always)]
pub(super) fn quantize_block_scalar(x: &[f32; QK], q: &mut [i8; QK]) -> BlockSums {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let (d, id) = scale_of(amax);
    for (q, &v) in q.iter_mut().zip(x) {
        *q = (v * id).round_ties_even() as i8;
    }
    let sum = |q: &[i8]| q.iter().map(|&v| v as i32).sum::<i32>();
    BlockSums {
        d,
        lo: sum(&q[..16]),
        hi: sum(&q[16..]),
    }
}

/// Writes the direct layout: the columns are consecutive, so the blocks simply follow each
/// other (`x.len()` codes in `q`, `x.len() / 32 · 4` floats in `f`).
#[inline(always)]
pub(super) fn quantize_direct(
    x: &[f32],
    q: &mut [i8],
    f: &mut [f32],
    quant: impl Fn(&[f32; QK], &mut [i8; QK]) -> BlockSums,
) {
    let xb = x.chunks_exact(QK);
    for ((x, q), f) in xb
        .zip(q.chunks_exact_mut(QK))
        .zip(f.chunks_exact_mut(DIRECT_F))
    {
        let s = quant(x.try_into().unwrap(), q.try_into().unwrap());
        f.copy_from_slice(&s.floats());
    }
}

/// Writes column group `g` of the batched layout (`q`, `f` are that group's slices;
/// `x` holds all `n` columns).
#[inline(always)]
pub(super) fn quantize_batched_group(
    x: &[f32],
    n: usize,
    cols: usize,
    g: usize,
    q: &mut [i8],
    f: &mut [f32],
    quant: impl Fn(&[f32; QK], &mut [i8; QK]) -> BlockSums,
) {
    let nb = cols / QK;
    let zero = [0f32; QK];
    let mut tmp = [0i8; QK];
    for l in 0..CG {
        let j = g * CG + l;
        for b in 0..nb {
            let xs: &[f32; QK] = if j < n {
                x[j * cols + b * QK..][..QK].try_into().unwrap()
            } else {
                &zero
            };
            let s = quant(xs, &mut tmp);
            let qb = &mut q[b * BATCH_Q..(b + 1) * BATCH_Q];
            for (k, four) in tmp.chunks_exact(4).enumerate() {
                qb[32 * k + 4 * l..32 * k + 4 * l + 4].copy_from_slice(four);
            }
            let fb = &mut f[b * BATCH_F..(b + 1) * BATCH_F];
            for (i, v) in s.floats().into_iter().enumerate() {
                fb[i * CG + l] = v;
            }
        }
    }
}

/// Dequantizes the direct layout back to f32 (`d·q`), for tests: the exact activations the
/// integer kernels multiply with.
#[cfg(test)]
pub(super) fn dequantize_direct(act: &Act) -> Vec<f32> {
    let mut out = vec![0f32; act.n * act.cols];
    for (i, (o, q)) in out
        .chunks_exact_mut(QK)
        .zip(act.q.chunks_exact(QK))
        .enumerate()
    {
        let d = act.f[i * DIRECT_F];
        for (o, &q) in o.iter_mut().zip(q) {
            *o = d * q as f32;
        }
    }
    out
}
