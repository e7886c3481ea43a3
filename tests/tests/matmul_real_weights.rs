//! The matmul kernels on the real model's weights: a column's result must not depend on how
//! many other columns share the product (the engine batches unrelated requests together).

use textnlp_host::model::gguf::GgufFile;
use textnlp_kernels::cpu::matmul::{Isa, MatmulScratch, QMatrix, matmul_with_isa};

#[test]
fn single_and_batched_columns_agree_on_real_weights() {
    let file = GgufFile::open(&textnlp_host::paths::default_model()).expect("model");
    for name in [
        "blk.0.ffn_gate.weight",
        "blk.0.ffn_down.weight",
        "blk.5.attn_q.weight",
        "token_embd.weight",
    ] {
        let t = file.tensor(name).unwrap();
        let (cols, rows) = (t.info.dims[0] as usize, t.info.dims[1] as usize);
        let w = QMatrix::new(t.info.ty, t.data, rows, cols).unwrap();
        let n = 5;
        // Activation-like inputs: mostly small, a few large channels.
        let x: Vec<f32> = (0..n * cols)
            .map(|i| {
                if i % cols == 17 {
                    40.0
                } else {
                    ((i * 104729) % 3001) as f32 / 1500.0 - 1.0
                }
            })
            .collect();
        for isa in Isa::available() {
            let mut batched = vec![0.0; n * rows];
            matmul_with_isa(isa, &w, &x, n, &mut batched, &mut MatmulScratch::default());
            for j in 0..n {
                let mut single = vec![0.0; rows];
                matmul_with_isa(
                    isa,
                    &w,
                    &x[j * cols..][..cols],
                    1,
                    &mut single,
                    &mut MatmulScratch::default(),
                );
                let scale = single.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
                let worst = single
                    .iter()
                    .zip(&batched[j * rows..][..rows])
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    worst <= 1e-5 * scale,
                    "{name} {isa:?} column {j}: differs by {worst}"
                );
            }
        }
    }
}
