//! Portable kernels: integer dot products on unpacked rows, and f32 dots for float weights.

use super::act::{Act, DIRECT_F};
use super::unpack::{QK, UNPACK};
use super::{Out, QMatrix, ROWBUF, float_row};
use std::ops::Range;

/// Integer dot of one unpacked row (`u`, `ac`) with one column of the direct layout.
#[inline(always)]
pub(super) fn dot_unpacked(u: &[u8], ac: &[f32], q: &[i8], f: &[f32]) -> f32 {
    let mut acc = 0f32;
    let groups = u.chunks_exact(QK).zip(q.chunks_exact(QK));
    for ((u, q), (ac, f)) in groups.zip(ac.chunks_exact(4).zip(f.chunks_exact(DIRECT_F))) {
        // (Σ u·q, Σ q) over one 16-element half.
        let half = |h: usize| {
            let r = 16 * h..16 * h + 16;
            let uq = u[r.clone()]
                .iter()
                .zip(&q[r.clone()])
                .map(|(&u, &q)| u as i32 * q as i32);
            (
                uq.sum::<i32>() as f32,
                q[r].iter().map(|&q| q as i32).sum::<i32>() as f32,
            )
        };
        let ((lo, qlo), (hi, qhi)) = (half(0), half(1));
        acc += f[0] * (ac[0] * lo + ac[1] * qlo + ac[2] * hi + ac[3] * qhi);
    }
    acc
}

/// Rows `rows` of a quantized matrix against every column of the direct layout.
pub(super) fn direct_rows(w: &QMatrix, rows: Range<usize>, act: &Act, out: Out) {
    let (cols, nb) = (act.cols, act.cols / QK);
    UNPACK.with_borrow_mut(|buf| {
        buf.prepare(1, cols);
        for r in rows {
            buf.unpack(0, w.ty, w.row(r), cols, false);
            for j in 0..act.n {
                let q = &act.q[j * cols..(j + 1) * cols];
                let f = &act.f[j * nb * DIRECT_F..(j + 1) * nb * DIRECT_F];
                // SAFETY: j < n and r < rows; this task owns rows `rows`.
                unsafe { out.set(j, r, dot_unpacked(buf.u(), &buf.ac, q, f)) };
            }
        }
    });
}

/// Plain f32 dot with 8 independent partial sums.
#[inline(always)]
pub(super) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Rows `rows` of an F32/F16/BF16 matrix against the f32 columns `x`.
pub(super) fn float_rows(w: &QMatrix, rows: Range<usize>, x: &[f32], out: Out) {
    ROWBUF.with_borrow_mut(|buf| {
        buf.resize(w.cols, 0.0);
        for r in rows {
            float_row(w, r, buf);
            for j in 0..out.n {
                let d = dot_f32(buf, &x[j * w.cols..(j + 1) * w.cols]);
                // SAFETY: j < n and r < rows; this task owns rows `rows`.
                unsafe { out.set(j, r, d) };
            }
        }
    });
}
