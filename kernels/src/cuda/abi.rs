//! What the kernels and their future launchers must agree on: the one struct that crosses the
//! boundary and the constants that fix launch geometry. The tests check them against the
//! `#define`s and `static_assert`s of the `.cu` sources.

use crate::cpu::sampling::SamplingParams;

/// Bytes of one Q8 activation block (`block_q8_act`: f32 scale, two i16 half sums, 32 i8).
pub const Q8_BLOCK_BYTES: usize = 40;
/// Output rows per block of the `matvec_*`/`matmul_*` kernels (one warp each).
pub const MATMUL_ROWS_PER_BLOCK: usize = 4;
/// Activation columns per block of the `matmul_*` kernels.
pub const MATMUL_COLS: usize = 8;
/// Keys per attention tile (one per lane while scoring).
pub const ATTN_TILE: usize = 32;
/// Largest GQA group (query heads per KV head) the attention kernels take.
pub const ATTN_MAX_GROUP: usize = 8;
/// Head sizes with attention entry points (`attn_*_hd64`, `attn_*_hd128`).
pub const ATTN_HEAD_DIMS: [usize; 2] = [64, 128];
/// Query rows (token × group head) per block of `attn_prefill_*`: `PREFILL_ROWS / group` tokens.
pub const PREFILL_ROWS: usize = 16;
/// Threads per block of `sample_tokens`.
pub const SAMPLE_THREADS: usize = 1024;

/// One Q8 activation block (`block_q8_act` in `kernels/cuda/common.cu`): what `quantize_q8`,
/// `rmsnorm_q8` and `swiglu_q8` write and the quantized products read, `[n][cols/32]` of them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Q8Block {
    /// `amax / 127` of the 32 values.
    pub d: f32,
    /// Σ of the codes `qs[..16]` and `qs[16..]`.
    pub sum_lo: i16,
    pub sum_hi: i16,
    pub qs: [i8; 32],
}

impl Q8Block {
    /// The block the CPU's matmul makes of these 32 activations (`cpu::matmul`'s quantizer),
    /// which the kernels reproduce bit for bit.
    pub fn quantize(x: &[f32; 32]) -> Self {
        let (qs, d, lo, hi) = crate::cpu::matmul::quantize_act_block(x);
        // |Σ of 16 codes| ≤ 16·127 fits an i16.
        Q8Block {
            d,
            sum_lo: lo as i16,
            sum_hi: hi as i16,
            qs,
        }
    }

    /// The block's f32 bits equal to another's, so that `-0.0`/`0.0` and NaN scales compare as
    /// the kernels wrote them.
    pub fn bitwise_eq(&self, other: &Self) -> bool {
        self.d.to_bits() == other.d.to_bits()
            && (self.sum_lo, self.sum_hi, self.qs) == (other.sum_lo, other.sum_hi, other.qs)
    }
}

// SAFETY: `#[repr(C)]` plain data without padding (4 + 2 + 2 + 32 = 40 bytes, checked by the
// tests and by a static_assert on the CUDA side); every bit pattern, zero included, is valid.
unsafe impl cudarc::driver::DeviceRepr for Q8Block {}
unsafe impl cudarc::driver::ValidAsZeroBits for Q8Block {}

/// Per-row parameters of `sample_tokens` and `apply_penalties`, laid out as `SampleParams` in
/// `kernels/cuda/sampling.cu`. The host fills one per sequence each step, from the same
/// [`SamplingParams`] and step counter the CPU sampler uses.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SampleRow {
    pub seed: u64,
    /// The sampler's step: how many tokens it drew before this one.
    pub step: u64,
    /// ≤ 0 selects greedy decoding (as does `top_k == 1`).
    pub temperature: f32,
    /// ≥ 1 disables top-p.
    pub top_p: f32,
    /// `min_p.ln()`, computed here so that the bound is the CPU's bit for bit; −∞ disables min-p.
    pub log_min_p: f32,
    pub repetition_penalty: f32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    /// 0 disables top-k.
    pub top_k: u32,
    pub reserved: u32,
}

impl SampleRow {
    /// The kernel parameters for draw number `step` of a sampler with parameters `p`.
    pub fn new(p: &SamplingParams, step: u64) -> Self {
        SampleRow {
            seed: p.seed,
            step,
            temperature: p.temperature,
            top_p: p.top_p,
            log_min_p: if p.min_p > 0.0 {
                p.min_p.ln()
            } else {
                f32::NEG_INFINITY
            },
            repetition_penalty: p.repetition_penalty,
            presence_penalty: p.presence_penalty,
            frequency_penalty: p.frequency_penalty,
            // Any k ≥ the vocabulary means "off" to both samplers.
            top_k: u32::try_from(p.top_k).unwrap_or(u32::MAX),
            reserved: 0,
        }
    }
}

// SAFETY: `#[repr(C)]` plain data with no padding (8 + 8 + 6·4 + 2·4 = 48 bytes, checked by the
// tests and by a static_assert on the CUDA side), valid for any bit pattern the host writes.
unsafe impl cudarc::driver::DeviceRepr for SampleRow {}
// SAFETY: as above; all zeros is a valid (greedy) row.
unsafe impl cudarc::driver::ValidAsZeroBits for SampleRow {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cuda::Kernel;
    use std::mem::{offset_of, size_of};

    /// The value of `#define name value` in a kernel source.
    fn define(src: &str, name: &str) -> usize {
        src.lines()
            .find_map(|l| l.strip_prefix(&format!("#define {name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no numeric #define {name}"))
    }

    #[test]
    fn constants_match_the_sources() {
        let (matmul, attention) = (Kernel::Matmul.source(), Kernel::Attention.source());
        assert_eq!(define(matmul, "MATMUL_COLS"), MATMUL_COLS);
        assert_eq!(define(matmul, "MATMUL_WARPS"), MATMUL_ROWS_PER_BLOCK);
        assert_eq!(define(attention, "ATT_TILE"), ATTN_TILE);
        assert_eq!(define(attention, "ATT_MAX_GROUP"), ATTN_MAX_GROUP);
        assert_eq!(define(attention, "PREFILL_ROWS"), PREFILL_ROWS);
        assert_eq!(
            define(Kernel::Sampling.source(), "SAMPLE_THREADS"),
            SAMPLE_THREADS
        );
        assert!(crate::cuda::PRELUDE.contains("sizeof(block_q8_act) == 40"));
        assert_eq!(Q8_BLOCK_BYTES, 40);
        assert_eq!(size_of::<Q8Block>(), Q8_BLOCK_BYTES);
        assert_eq!(
            [
                offset_of!(Q8Block, sum_lo),
                offset_of!(Q8Block, sum_hi),
                offset_of!(Q8Block, qs)
            ],
            [4, 6, 8]
        );
        for hd in ATTN_HEAD_DIMS {
            for kind in ["DECODE", "PREFILL"] {
                assert!(attention.contains(&format!("{kind}_ENTRY({hd})")));
            }
        }
    }

    #[test]
    fn sample_row_layout_matches_the_kernel_struct() {
        assert_eq!(size_of::<SampleRow>(), 48);
        let offsets = [
            offset_of!(SampleRow, seed),
            offset_of!(SampleRow, step),
            offset_of!(SampleRow, temperature),
            offset_of!(SampleRow, top_p),
            offset_of!(SampleRow, log_min_p),
            offset_of!(SampleRow, repetition_penalty),
            offset_of!(SampleRow, presence_penalty),
            offset_of!(SampleRow, frequency_penalty),
            offset_of!(SampleRow, top_k),
            offset_of!(SampleRow, reserved),
        ];
        assert_eq!(offsets, [0, 8, 16, 20, 24, 28, 32, 36, 40, 44]);
        assert!(
            Kernel::Sampling
                .source()
                .contains("sizeof(SampleParams) == 48")
        );
    }

    #[test]
    fn q8_block_is_the_cpu_quantizer() {
        let x: [f32; 32] = std::array::from_fn(|i| (i as f32 - 10.0) * 0.37);
        let b = Q8Block::quantize(&x);
        assert_eq!(b.d, 21.0 * 0.37 / 127.0);
        assert_eq!(b.qs[31], 127);
        let sum = |q: &[i8]| q.iter().map(|&v| i16::from(v)).sum::<i16>();
        assert_eq!((b.sum_lo, b.sum_hi), (sum(&b.qs[..16]), sum(&b.qs[16..])));
        assert!(b.bitwise_eq(&b));
        assert_eq!(Q8Block::quantize(&[0.0; 32]), Q8Block::default());
    }

    #[test]
    fn sample_row_from_params() {
        let p = SamplingParams {
            temperature: 0.7,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.05,
            seed: 42,
            ..Default::default()
        };
        let row = SampleRow::new(&p, 3);
        assert_eq!((row.seed, row.step, row.top_k), (42, 3, 40));
        assert_eq!(row.log_min_p, 0.05f32.ln());
        let off = SampleRow::new(&SamplingParams::default(), 0);
        assert_eq!(off.log_min_p, f32::NEG_INFINITY);
        let huge = SamplingParams {
            top_k: usize::MAX,
            ..p
        };
        assert_eq!(SampleRow::new(&huge, 0).top_k, u32::MAX);
    }
}
