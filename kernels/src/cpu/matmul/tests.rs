//! Tests of the matmul kernels: every ISA level this CPU has (plus the portable one) against
//! the f64 reference, for every tensor type.
//!
//! Tolerances:
//! * **tight**: against `matmul_reference` on the *same quantized activations* (`d·q`), the
//!   fast kernels differ only by f32 rounding (scales, partial sums): |Δ| ≤ 1e-4·Σ|w·x'|.
//! * **loose**: against `matmul_reference` on the original f32 activations. Rounding to the
//!   nearest code moves each activation by at most d/2 = amax/254 of its block, so
//!   |Δ| ≤ Σ_blocks (amax/254)·Σ|w| (plus the tight tolerance).

use super::act::{self, Act};
use super::*;
use crate::quant::reference::{dequantize_row, quantize_row};
use proptest::prelude::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Activations with per-block magnitudes from 1e-3 to 1e3 and some all-zero blocks.
fn activations(len: usize, rng: &mut Rng) -> Vec<f32> {
    let mut x = Vec::with_capacity(len);
    while x.len() < len {
        let scale = match rng.next() % 8 {
            0 => 0.0,
            k => 10f32.powi(k as i32 - 4),
        };
        x.extend((0..32).map(|_| rng.unit() * scale));
    }
    x.truncate(len);
    x
}

/// Weights of type `ty`: either quantized from f32 rows with the reference quantizers, or
/// random block bytes with sane f16 scales (reaches codes the quantizers never emit, such as
/// −128 in Q8_0 or a −128 Q6_K scale).
fn weights(ty: TensorType, rows: usize, cols: usize, raw: bool, rng: &mut Rng) -> Vec<u8> {
    let rb = ty.row_bytes(cols as u64).unwrap() as usize;
    let mut data = vec![0u8; rows * rb];
    if !raw || ty == TensorType::F32 {
        for row in data.chunks_exact_mut(rb) {
            let vals: Vec<f32> = (0..cols).map(|_| rng.unit() * 2.0).collect();
            quantize_row(ty, &vals, row);
        }
        return data;
    }
    data.iter_mut().for_each(|b| *b = rng.next() as u8);
    let f16_fields: &[usize] = match ty {
        TensorType::Q4_0 | TensorType::Q5_0 | TensorType::Q8_0 => &[0],
        TensorType::Q4_1 | TensorType::Q5_1 | TensorType::Q4_K | TensorType::Q5_K => &[0, 2],
        TensorType::Q6_K => &[208],
        _ => &[],
    };
    let (be, bb) = (ty.block_elems(), ty.block_bytes());
    if f16_fields.is_empty() {
        // F16 / BF16: random bytes may be NaN or huge; use real values instead.
        for row in data.chunks_exact_mut(rb) {
            let vals: Vec<f32> = (0..cols).map(|_| rng.unit()).collect();
            quantize_row(ty, &vals, row);
        }
        return data;
    }
    for block in data.chunks_exact_mut(bb) {
        for &at in f16_fields {
            let v = rng.unit() * 0.05;
            block[at..at + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
        }
    }
    let _ = be;
    data
}

/// The activations exactly as the integer kernels see them: quantized, then `d·q`.
fn quantized_activations(x: &[f32], n: usize, cols: usize) -> Vec<f32> {
    let mut q = vec![0i8; x.len()];
    let mut f = vec![0f32; x.len() / QK * act::DIRECT_F];
    act::quantize_direct(x, &mut q, &mut f, act::quantize_block_scalar);
    act::dequantize_direct(&Act {
        q: &q,
        f: &f,
        n,
        cols,
    })
}

fn dequantized(w: &QMatrix) -> Vec<f32> {
    let mut all = vec![0f32; w.rows * w.cols];
    for (r, row) in all.chunks_exact_mut(w.cols.max(1)).enumerate() {
        dequantize_row(w.ty, w.row(r), row);
    }
    all
}

/// Checks one ISA level on one matrix; returns a description of the first mismatch.
fn check(isa: Isa, w: &QMatrix, x: &[f32], n: usize) -> Result<(), String> {
    let (rows, cols) = (w.rows, w.cols);
    let mut got = vec![f32::NAN; n * rows];
    matmul_with_isa(isa, w, x, n, &mut got, &mut MatmulScratch::default());
    let float = w.ty.block_elems() == 1;
    let xq = if float {
        x.to_vec()
    } else {
        quantized_activations(x, n, cols)
    };
    let mut tight = vec![0f32; n * rows];
    matmul_reference(w, &xq, n, &mut tight);
    let mut loose = vec![0f32; n * rows];
    matmul_reference(w, x, n, &mut loose);
    let wd = dequantized(w);
    for j in 0..n {
        let (xj, xqj) = (&x[j * cols..(j + 1) * cols], &xq[j * cols..(j + 1) * cols]);
        for r in 0..rows {
            let wr = &wd[r * cols..(r + 1) * cols];
            let mag: f64 = wr.iter().zip(xqj).map(|(a, b)| (a * b).abs() as f64).sum();
            let mag_x: f64 = wr.iter().zip(xj).map(|(a, b)| (a * b).abs() as f64).sum();
            let rounding: f64 = if float {
                0.0
            } else {
                let blocks = wr.chunks_exact(QK).zip(xj.chunks_exact(QK));
                blocks
                    .map(|(wb, xb)| {
                        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
                        amax / 254.0 * wb.iter().map(|v| v.abs() as f64).sum::<f64>()
                    })
                    .sum()
            };
            let i = j * rows + r;
            let (g, t, l) = (got[i] as f64, tight[i] as f64, loose[i] as f64);
            let tol = 1e-4 * mag + 1e-30;
            if (g - t).abs() > tol || g.is_nan() {
                return Err(format!(
                    "{isa} {} {rows}x{cols} n={n} [{j},{r}]: {g} vs same-activation \
                     reference {t} (tol {tol:e})",
                    w.ty
                ));
            }
            let tol_l = rounding * 1.001 + 1e-4 * mag_x + 1e-30;
            if (g - l).abs() > tol_l {
                return Err(format!(
                    "{isa} {} {rows}x{cols} n={n} [{j},{r}]: {g} vs f32 \
                     reference {l} (tol {tol_l:e})",
                    w.ty
                ));
            }
        }
    }
    Ok(())
}

fn cols_for(ty: TensorType, blocks: usize, extra: usize) -> usize {
    match ty.block_elems() {
        1 => blocks * 32 + extra,
        be => blocks * be,
    }
}

fn check_all_isas(ty: TensorType, rows: usize, cols: usize, n: usize, raw: bool, seed: u64) {
    let mut rng = Rng(seed | 1);
    let data = weights(ty, rows, cols, raw, &mut rng);
    let w = QMatrix::new(ty, &data, rows, cols).unwrap();
    let x = activations(n * cols, &mut rng);
    for isa in Isa::available() {
        if let Err(e) = check(isa, &w, &x, n) {
            panic!("{e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Every type, every available ISA level: direct (n ≤ 2) and batched shapes with partial
    /// row tiles and partial column groups.
    #[test]
    fn fast_matches_reference(
        rows in 1..14usize,
        blocks in 1..21usize,
        extra in 0..9usize,
        n in 1..21usize,
        raw in any::<bool>(),
        seed in any::<u64>(),
    ) {
        for ty in TensorType::ALL {
            let blocks = if ty.block_elems() == 256 { blocks % 3 + 1 } else { blocks };
            check_all_isas(ty, rows, cols_for(ty, blocks, extra), n, raw, seed);
        }
    }
}

/// `activations` with some large outliers (as real activations have in a few channels).
fn activations_with_outliers(len: usize, rng: &mut Rng) -> Vec<f32> {
    let mut x = activations(len, rng);
    for v in x.iter_mut() {
        if rng.next().is_multiple_of(29) {
            *v = rng.unit() * 3e4;
        }
    }
    x
}

/// Column j of `matmul_with_isa(isa, w, x, n)` as bits, for every j < n.
fn columns(isa: Isa, w: &QMatrix, x: &[f32], n: usize) -> Vec<Vec<u32>> {
    let mut out = vec![f32::NAN; n * w.rows];
    matmul_with_isa(isa, w, x, n, &mut out, &mut MatmulScratch::default());
    out.chunks_exact(w.rows)
        .map(|c| c.iter().map(|v| v.to_bits()).collect())
        .collect()
}

/// Batch invariance: on every available level, column j's outputs are bitwise the same when
/// it is multiplied alone (n = 1, direct kernel), in a pair (n = 2, before or after the other
/// column) and among n = 3, 9, 17, 40 columns (batched kernel).
fn check_batch_invariance(ty: TensorType, rows: usize, cols: usize, raw: bool, seed: u64) {
    const N: usize = 40;
    let mut rng = Rng(seed | 1);
    let data = weights(ty, rows, cols, raw, &mut rng);
    let w = QMatrix::new(ty, &data, rows, cols).unwrap();
    let x = activations_with_outliers(N * cols, &mut rng);
    let col = |j: usize| &x[j * cols..(j + 1) * cols];
    for isa in Isa::available() {
        let alone: Vec<Vec<u32>> = (0..N)
            .map(|j| columns(isa, &w, col(j), 1).remove(0))
            .collect();
        let what = |how: &str, j: usize| format!("{isa} {ty} {rows}x{cols} column {j} {how}");
        for j in 0..N {
            let k = (j * 7 + 3) % N;
            let pair = [col(j), col(k)].concat();
            let got = columns(isa, &w, &pair, 2);
            assert!(got[0] == alone[j], "{}", what("as the first of 2", j));
            if k != j {
                assert!(got[1] == alone[k], "{}", what("as the second of 2", k));
            }
        }
        for n in [3, 9, 17, N] {
            let got = columns(isa, &w, &x[..n * cols], n);
            for (j, got) in got.iter().enumerate() {
                assert!(*got == alone[j], "{}", what(&format!("among {n}"), j));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Every quantized type: [`check_batch_invariance`] with row counts that are and are not
    /// multiples of 8 (the direct kernel's step).
    #[test]
    fn columns_are_batch_invariant(
        rows in prop::sample::select(&[1usize, 7, 8, 13, 64][..]),
        blocks in 1..5usize,
        raw in any::<bool>(),
        seed in any::<u64>(),
    ) {
        for ty in TensorType::ALL.into_iter().filter(|t| t.block_elems() > 1) {
            let blocks = if ty.block_elems() == 256 { blocks % 2 + 1 } else { blocks };
            check_batch_invariance(ty, rows, cols_for(ty, blocks, 0), raw, seed);
        }
    }
}

/// Batch invariance on shapes that split into several tasks (a partial last chunk of 8 rows),
/// column tiles and threads.
#[test]
fn large_shapes_are_batch_invariant() {
    check_batch_invariance(TensorType::Q4_1, 1003, 1536, false, 11);
    check_batch_invariance(TensorType::Q8_0, 517, 576, true, 12);
    check_batch_invariance(TensorType::Q6_K, 203, 512, true, 13);
}

/// Shapes large enough to split into several tasks, column tiles and threads.
#[test]
fn large_shapes_use_many_tasks() {
    check_all_isas(TensorType::Q4_1, 70, 1536, 200, false, 1);
    check_all_isas(TensorType::Q8_0, 300, 576, 1, true, 2);
    check_all_isas(TensorType::Q6_K, 300, 512, 2, true, 3);
    check_all_isas(TensorType::Q4_K, 67, 768, 37, true, 4);
    check_all_isas(TensorType::F16, 100, 200, 5, false, 5);
}

/// The SIMD activation quantizers are bit-identical to the portable one, in both layouts, and
/// both layouts hold bitwise the same codes and floats for each column.
#[test]
fn activation_quantizers_agree() {
    let mut rng = Rng(99);
    let (n, cols) = (11, 96);
    let x = activations(n * cols, &mut rng);
    let nb = cols / QK;
    let groups = n.div_ceil(act::CG);
    let run = |k: &Kernels| {
        let mut q = vec![0i8; n * cols];
        let mut f = vec![0f32; n * nb * act::DIRECT_F];
        // SAFETY: only available levels are passed.
        unsafe { (k.quantize_direct)(&x, &mut q, &mut f) };
        let mut bq = vec![0i8; groups * nb * act::BATCH_Q];
        let mut bf = vec![0f32; groups * nb * act::BATCH_F];
        for g in 0..groups {
            let (q, f) = (
                &mut bq[g * nb * act::BATCH_Q..(g + 1) * nb * act::BATCH_Q],
                &mut bf[g * nb * act::BATCH_F..(g + 1) * nb * act::BATCH_F],
            );
            // SAFETY: as above.
            unsafe { (k.quantize_group)(&x, n, cols, g, q, f) };
        }
        (q, f, bq, bf)
    };
    let want = run(Isa::Scalar.kernels());
    for isa in Isa::available() {
        assert!(run(isa.kernels()) == want, "{isa}");
    }
    let (q, f, bq, bf) = want;
    for j in 0..n {
        let (g, l) = (j / act::CG, j % act::CG);
        for b in 0..nb {
            let at = (g * nb + b) * act::BATCH_Q;
            for e in 0..QK {
                let batched = bq[at + 32 * (e / 4) + 4 * l + e % 4];
                assert_eq!(q[j * cols + b * QK + e], batched, "code {j} {b} {e}");
            }
            for i in 0..act::DIRECT_F {
                let batched = bf[(g * nb + b) * act::BATCH_F + i * act::CG + l];
                let direct = f[(j * nb + b) * act::DIRECT_F + i];
                assert_eq!(direct.to_bits(), batched.to_bits(), "float {j} {b} {i}");
            }
        }
    }
    // Round trip: |x − d·q| ≤ d/2 per element.
    let xq = quantized_activations(&x, n, cols);
    for (xb, qb) in x.chunks_exact(QK).zip(xq.chunks_exact(QK)) {
        let d = xb.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        for (a, b) in xb.iter().zip(qb) {
            assert!((a - b).abs() <= d * 0.5001, "{a} vs {b}");
        }
    }
}

#[test]
fn best_isa_is_the_fastest_available() {
    let available = Isa::available();
    assert_eq!(available[0], Isa::Scalar);
    if std::env::var("TEXTNLP_MATMUL_ISA").is_err() {
        assert_eq!(Isa::best(), *available.last().unwrap());
    }
}

#[test]
fn shape_errors() {
    let ty = TensorType::Q4_1;
    assert!(matches!(
        QMatrix::new(ty, &[0; 40], 2, 33),
        Err(ShapeError::PartialBlock { .. })
    ));
    assert!(matches!(
        QMatrix::new(ty, &[0; 39], 2, 32),
        Err(ShapeError::DataLength { .. })
    ));
    let e = QMatrix::new(ty, &[0; 41], 2, 32).unwrap_err().to_string();
    assert_eq!(e, "Q4_1: 2x32 needs 40 bytes, got 41");
    let w = QMatrix::new(ty, &[0; 40], 2, 32).unwrap();
    assert_eq!(w.row(1).len(), 20);
    assert!(QMatrix::new(TensorType::F32, &[0; 12], 1, 3).is_ok());
}

#[test]
fn empty_shapes() {
    let mut s = MatmulScratch::default();
    let data = [0u8; 40];
    let w = QMatrix::new(TensorType::Q4_1, &data, 2, 32).unwrap();
    matmul(&w, &[], 0, &mut [], &mut s);
    for ty in [TensorType::Q4_1, TensorType::F32] {
        let w0 = QMatrix::new(ty, &[], 3, 0).unwrap();
        for isa in Isa::available() {
            let mut out = [f32::NAN; 6];
            matmul_with_isa(isa, &w0, &[], 2, &mut out, &mut s);
            assert_eq!(out, [0.0; 6], "{isa}");
        }
    }
}

#[test]
#[should_panic(expected = "x must hold")]
fn wrong_activation_length_panics() {
    let data = [0u8; 40];
    let w = QMatrix::new(TensorType::Q4_1, &data, 2, 32).unwrap();
    matmul(
        &w,
        &[0.0; 31],
        1,
        &mut [0.0; 2],
        &mut MatmulScratch::default(),
    );
}

#[test]
fn dequantize_row_matches_reference() {
    let mut rng = Rng(5);
    for ty in TensorType::ALL {
        let cols = cols_for(ty, 1, 3);
        let data = weights(ty, 3, cols, true, &mut rng);
        let w = QMatrix::new(ty, &data, 3, cols).unwrap();
        let (mut a, mut b) = (vec![0f32; cols], vec![0f32; cols]);
        w.dequantize_row(2, &mut a);
        dequantize_row(ty, w.row(2), &mut b);
        assert_eq!(a, b, "{ty}");
    }
}

#[test]
#[should_panic(expected = "not a whole number of blocks")]
fn malformed_matrix_panics() {
    // Built without `QMatrix::new`: 33 columns of Q4_1 are not whole blocks.
    let data = [0u8; 40];
    let w = QMatrix {
        ty: TensorType::Q4_1,
        data: &data,
        rows: 1,
        cols: 33,
    };
    matmul(
        &w,
        &[0.0; 33],
        1,
        &mut [0.0; 1],
        &mut MatmulScratch::default(),
    );
}
