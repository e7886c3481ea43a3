//! Throughput of the quantized matmul kernels on SmolLM2-135M shapes.
//!
//! `cargo run --release -p textnlp-kernels --example matmul_bench [-- --all-isas | --model-only]`
//!
//! Prints GB/s of weights streamed for n = 1 (decode is memory-bound) and GOPS (2·rows·cols·n
//! per call) plus columns per second for n = 4, 16, 64, 512. Then the whole per-token set of
//! SmolLM2 matvecs (30 layers of Q4_1 q/k/v/o/gate/up/down + the Q8_0 LM head, every layer
//! with its own weights so nothing stays in cache) for decode (n = 1) and prefill (n = 512).

use std::time::{Duration, Instant};
use textnlp_kernels::TensorType;
use textnlp_kernels::cpu::matmul::{Isa, MatmulScratch, QMatrix, matmul_with_isa};
use textnlp_kernels::quant::reference::quantize_row;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Valid blocks of any type, quantized from random values (the kernels' speed does not
/// depend on the values).
fn random_weights(ty: TensorType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let rb = ty.row_bytes(cols as u64).unwrap() as usize;
    let mut data = vec![0u8; rows * rb];
    let mut row = vec![0.0f32; cols];
    for dst in data.chunks_exact_mut(rb) {
        row.iter_mut()
            .for_each(|v| *v = (rng.next() % 2001) as f32 / 1000.0 - 1.0);
        quantize_row(ty, &row, dst);
    }
    data
}

/// Median and best time per call of `f`, run for about `budget`.
fn time(budget: Duration, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 5 || (start.elapsed() < budget && samples.len() < 10_000) {
        let t = Instant::now();
        f();
        samples.push(t.elapsed().as_secs_f64());
    }
    samples.sort_by(f64::total_cmp);
    (samples[samples.len() / 2], samples[0])
}

fn bench_matrix(isa: Isa, name: &str, ty: TensorType, rows: usize, cols: usize) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let data = random_weights(ty, rows, cols, &mut rng);
    let w = QMatrix::new(ty, &data, rows, cols).unwrap();
    let mut scratch = MatmulScratch::default();
    for n in [1, 4, 16, 64, 512] {
        let x: Vec<f32> = (0..n * cols)
            .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5)
            .collect();
        let mut out = vec![0f32; n * rows];
        let (med, best) = time(Duration::from_millis(400), || {
            matmul_with_isa(isa, &w, &x, n, &mut out, &mut scratch)
        });
        let ops = 2.0 * (rows * cols * n) as f64;
        if n == 1 {
            println!(
                "  {isa:<10} {name:<22} n={n:<3} {:>8.1} µs  {:>6.1} GB/s (best {:.1})",
                med * 1e6,
                data.len() as f64 / med / 1e9,
                data.len() as f64 / best / 1e9,
            );
        } else {
            println!(
                "  {isa:<10} {name:<22} n={n:<3} {:>8.1} µs  {:>6.1} GOPS (best {:.1})  {:>8.0} cols/s",
                med * 1e6,
                ops / med / 1e9,
                ops / best / 1e9,
                n as f64 / med,
            );
        }
    }
}

/// SmolLM2-135M: 30 layers of (rows, cols) Q4_1 matrices, then the Q8_0 LM head.
const LAYER: [(usize, usize); 7] = [
    (576, 576),
    (192, 576),
    (192, 576),
    (576, 576),
    (1536, 576),
    (1536, 576),
    (576, 1536),
];

fn bench_model(isa: Isa) {
    let mut rng = Rng(42);
    let layers: Vec<Vec<(Vec<u8>, usize, usize)>> = (0..30)
        .map(|_| {
            let m =
                |&(r, c): &(usize, usize)| (random_weights(TensorType::Q4_1, r, c, &mut rng), r, c);
            LAYER.iter().map(m).collect()
        })
        .collect();
    let head = random_weights(TensorType::Q8_0, 49152, 576, &mut rng);
    let bytes: usize = layers.iter().flatten().map(|m| m.0.len()).sum::<usize>() + head.len();
    let mut scratch = MatmulScratch::default();
    for n in [1, 16, 64, 512] {
        let x: Vec<f32> = (0..n * 1536)
            .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5)
            .collect();
        let mut out = vec![0f32; n * 49152];
        let mut step = || {
            for layer in &layers {
                for (data, rows, cols) in layer {
                    let w = QMatrix::new(TensorType::Q4_1, data, *rows, *cols).unwrap();
                    let o = &mut out[..n * rows];
                    matmul_with_isa(isa, &w, &x[..n * cols], n, o, &mut scratch);
                }
            }
            let w = QMatrix::new(TensorType::Q8_0, &head, 49152, 576).unwrap();
            matmul_with_isa(isa, &w, &x[..n * 576], n, &mut out, &mut scratch);
        };
        let (med, best) = time(Duration::from_secs(2), &mut step);
        if n == 1 {
            println!(
                "  decode  n=1:   {:>7.2} ms/token (best {:.2})  {:>6.1} GB/s  {:>6.0} tok/s  [{} matmuls, {:.1} MB]",
                med * 1e3,
                best * 1e3,
                bytes as f64 / med / 1e9,
                1.0 / med,
                30 * LAYER.len() + 1,
                bytes as f64 / 1e6
            );
        } else {
            let params: usize = 30 * LAYER.iter().map(|(r, c)| r * c).sum::<usize>() + 49152 * 576;
            let gops = 2.0 * (params * n) as f64 / med / 1e9;
            println!(
                "  batch   n={n:<3}: {:>7.2} ms/step  (best {:.2})  {:>6.1} GOPS  {:>6.0} tok/s",
                med * 1e3,
                best * 1e3,
                gops,
                n as f64 / med
            );
        }
    }
}

fn main() {
    let all = std::env::args().any(|a| a == "--all-isas");
    let isas = if all {
        Isa::available()
    } else {
        vec![Isa::best()]
    };
    println!(
        "rayon threads: {}, ISA levels available: {:?}",
        rayon::current_num_threads(),
        Isa::available()
    );
    let model_only = std::env::args().any(|a| a == "--model-only");
    println!("single matrices:");
    for &isa in isas.iter().filter(|_| !model_only) {
        bench_matrix(isa, "Q4_1 576->1536 (up)", TensorType::Q4_1, 1536, 576);
        bench_matrix(isa, "Q4_1 1536->576 (down)", TensorType::Q4_1, 576, 1536);
        bench_matrix(isa, "Q8_0 576->49152 (head)", TensorType::Q8_0, 49152, 576);
    }
    println!("SmolLM2-135M matmuls per step ({}):", Isa::best());
    bench_model(Isa::best());
}
