//! Model-sized shapes (the property tests use small ones): every ISA level against the reference.

use textnlp_kernels::TensorType;
use textnlp_kernels::cpu::matmul::{
    Isa, MatmulScratch, QMatrix, matmul_reference, matmul_with_isa,
};
use textnlp_kernels::quant::reference::quantize_row;

#[test]
fn model_sized_products_match_the_reference() {
    let shapes = [
        (TensorType::Q4_1, 64, 1536),
        (TensorType::Q4_1, 192, 576),
        (TensorType::Q4_1, 1536, 576),
        (TensorType::Q4_1, 576, 1536),
        (TensorType::Q8_0, 300, 576),
        (TensorType::Q8_0, 49152, 576),
    ];
    for (ty, rows, cols) in shapes {
        let w_f32: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let row_bytes = ty.row_bytes(cols as u64).unwrap() as usize;
        let mut data = vec![0u8; rows * row_bytes];
        for (src, dst) in w_f32
            .chunks_exact(cols)
            .zip(data.chunks_exact_mut(row_bytes))
        {
            quantize_row(ty, src, dst);
        }
        let w = QMatrix::new(ty, &data, rows, cols).unwrap();
        for (n, outliers) in [1, 2, 3, 5, 14, 40]
            .into_iter()
            .flat_map(|n| [(n, false), (n, true)])
        {
            // Real activations have a few huge channels; they set the 8-bit scale of their block.
            let x: Vec<f32> = (0..n * cols)
                .map(|i| match outliers && i % 97 == 0 {
                    true => 300.0,
                    false => ((i * 104729) % 3001) as f32 / 1500.0 - 1.0,
                })
                .collect();
            let mut want = vec![0.0; n * rows];
            matmul_reference(&w, &x, n, &mut want);
            let mut scalar = vec![0.0; n * rows];
            matmul_with_isa(
                Isa::Scalar,
                &w,
                &x,
                n,
                &mut scalar,
                &mut MatmulScratch::default(),
            );
            let scale = want.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
            let max_err = |got: &[f32], want: &[f32]| {
                got.iter()
                    .zip(want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max)
            };
            // Activation quantization error, against the f64 reference.
            let err = max_err(&scalar, &want);
            assert!(
                err <= 0.02 * scale,
                "{ty} {rows}x{cols} n={n}: scalar error {err} (scale {scale})"
            );
            // The same quantized activations on every level: only summation order differs.
            for isa in Isa::available() {
                let mut got = vec![0.0; n * rows];
                matmul_with_isa(isa, &w, &x, n, &mut got, &mut MatmulScratch::default());
                let err = max_err(&got, &scalar);
                assert!(
                    err <= 1e-4 * scale,
                    "{ty} {rows}x{cols} n={n} {isa:?}: differs from scalar by {err} (scale {scale})"
                );
                // Batch composition must not change a column's result.
                for j in 0..n {
                    let mut single = vec![0.0; rows];
                    let xj = &x[j * cols..][..cols];
                    matmul_with_isa(isa, &w, xj, 1, &mut single, &mut MatmulScratch::default());
                    let err = max_err(&single, &got[j * rows..][..rows]);
                    assert!(
                        err <= 1e-5 * scale,
                        "{ty} {rows}x{cols} n={n} {isa:?} column {j}: single vs batched differ by {err}"
                    );
                }
            }
        }
    }
}
