//! TEMPORARY dev harness (CPU-time based, single thread). Run with RAYON_NUM_THREADS=1.
use textnlp_kernels::TensorType;
use textnlp_kernels::cpu::matmul::{Isa, MatmulScratch, QMatrix, matmul_with_isa};

fn cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split_whitespace().next().unwrap().parse().unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ty = TensorType::ALL.into_iter().find(|t| t.name() == args[1]).unwrap();
    let rows: usize = args[2].parse().unwrap();
    let cols: usize = args[3].parse().unwrap();
    let isa = match args.get(5).map(|s| s.as_str()) { Some("avx2") => Isa::Avx2, Some("avxvnni") => Isa::AvxVnni, Some("scalar") => Isa::Scalar, _ => Isa::best() };
    let mut s = 0x12345u64;
    let rb = ty.row_bytes(cols as u64).unwrap() as usize;
    let mut data: Vec<u8> = (0..rows * rb).map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s as u8 }).collect();
    // tame f16 fields (scale at 0 / 2 / 208): set to small values
    let fields: &[usize] = match ty { TensorType::Q6_K => &[208], TensorType::Q4_1 | TensorType::Q5_1 | TensorType::Q4_K | TensorType::Q5_K => &[0, 2], _ => &[0] };
    if ty.block_elems() > 1 { for b in data.chunks_exact_mut(ty.block_bytes()) { for &f in fields { b[f] = 0; b[f + 1] = 0x20; } } }
    let w = QMatrix::new(ty, &data, rows, cols).unwrap();
    let mut scratch = MatmulScratch::default();
    for n in args[4].split(',').map(|v| v.parse::<usize>().unwrap()) {
        let x: Vec<f32> = (0..n * cols).map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5).collect();
        let mut out = vec![0f32; n * rows];
        matmul_with_isa(isa, &w, &x, n, &mut out, &mut scratch);
        let mut best = u64::MAX;
        let mut tot = 0u64; let mut cnt = 0u64;
        let t0 = std::time::Instant::now();
        while t0.elapsed().as_millis() < 1000 || cnt < 3 {
            let c = cpu_ns();
            matmul_with_isa(isa, &w, &x, n, &mut out, &mut scratch);
            let d = cpu_ns() - c;
            best = best.min(d); tot += d; cnt += 1;
        }
        let mean = tot as f64 / cnt as f64;
        let ops = 2.0 * (rows * cols * n) as f64;
        let blocks = (rows * cols / 32) as f64 * n as f64;
        println!("{isa} {ty} {rows}x{cols} n={n}: cpu mean {:.1} µs best {:.1} µs | {:.2} GB/s(best) | {:.1} GOPS(best) | {:.3} ns/(block·col) best",
            mean / 1e3, best as f64 / 1e3, data.len() as f64 / best as f64, ops / best as f64, best as f64 / blocks);
    }
}
