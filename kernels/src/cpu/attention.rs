//! Causal grouped-query attention over a key/value cache.
//!
//! Keys and values are stored one row per position, each row holding every KV head
//! (`n_kv_head · head_dim` floats). The query heads that share a KV head (a GQA group) are
//! processed together so that each cached row is read once per group, not once per query head.

/// Head geometry of one attention layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
}

impl AttentionShape {
    /// Query heads per KV head.
    pub fn group(&self) -> usize {
        self.n_head / self.n_kv_head
    }

    /// Floats in one cached row (all KV heads of one position).
    pub fn kv_dim(&self) -> usize {
        self.n_kv_head * self.head_dim
    }
}

/// Attention of one GQA group for one query position.
///
/// - `q`: the group's query heads, `group · head_dim` floats;
/// - `keys`, `values`: the cache, at least `n_ctx` rows of `shape.kv_dim()` floats;
/// - `kv_head`: which KV head of each row this group reads;
/// - `out`: `group · head_dim` floats;
/// - `scores`: scratch, resized as needed.
///
/// The query attends to cache positions `0..n_ctx` (the caller passes its own position + 1,
/// which makes it causal). Softmax is computed in f32 with the running maximum subtracted.
#[allow(clippy::too_many_arguments)]
pub fn attend_group(
    shape: AttentionShape,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    kv_head: usize,
    n_ctx: usize,
    scale: f32,
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        return unsafe {
            attend_group_avx2(shape, q, keys, values, kv_head, n_ctx, scale, out, scores)
        };
    }
    attend_group_generic(shape, q, keys, values, kv_head, n_ctx, scale, out, scores)
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DETECTED.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// The same code as [`attend_group_generic`], compiled with AVX2 and FMA enabled so the
/// inner loops vectorise to 256-bit FMAs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn attend_group_avx2(
    shape: AttentionShape,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    kv_head: usize,
    n_ctx: usize,
    scale: f32,
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    // SAFETY: this function only runs where AVX2 and FMA are available.
    let dot = |a: &[f32], b: &[f32]| unsafe { dot_avx2(a, b) };
    attend_with(
        dot, shape, q, keys, values, kv_head, n_ctx, scale, out, scores,
    )
}

/// f32 dot product with two 8-wide FMA accumulators; `a` and `b` have equal lengths.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    // SAFETY: every load reads 8 floats at i + 8 <= n (or i + 16 <= n) within both slices.
    unsafe {
        while i + 16 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i + 8)),
                _mm256_loadu_ps(pb.add(i + 8)),
                acc1,
            );
            i += 16;
        }
        if i + 8 <= n {
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
            i += 8;
        }
    }
    let sum = _mm256_add_ps(acc0, acc1);
    let quad = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps::<1>(sum));
    let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    let single = _mm_add_ss(pair, _mm_movehdup_ps(pair));
    let tail: f32 = a[i..n].iter().zip(&b[i..n]).map(|(x, y)| x * y).sum();
    _mm_cvtss_f32(single) + tail
}

#[allow(clippy::too_many_arguments)]
fn attend_group_generic(
    shape: AttentionShape,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    kv_head: usize,
    n_ctx: usize,
    scale: f32,
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    attend_with(
        dot, shape, q, keys, values, kv_head, n_ctx, scale, out, scores,
    )
}

/// Picks the fixed-size kernel for common head sizes.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_with(
    dot: impl Fn(&[f32], &[f32]) -> f32,
    shape: AttentionShape,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    kv_head: usize,
    n_ctx: usize,
    scale: f32,
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    match shape.head_dim {
        64 => attend_fixed::<64>(
            dot, shape, q, keys, values, kv_head, n_ctx, scale, out, scores,
        ),
        128 => attend_fixed::<128>(
            dot, shape, q, keys, values, kv_head, n_ctx, scale, out, scores,
        ),
        _ => attend_any(shape, q, keys, values, kv_head, n_ctx, scale, out, scores),
    }
}

/// [`attend_any`] for a compile-time head size: the dot products unroll completely and each
/// head's output accumulator lives in registers across the whole value pass.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_fixed<const HD: usize>(
    dot: impl Fn(&[f32], &[f32]) -> f32,
    shape: AttentionShape,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    kv_head: usize,
    n_ctx: usize,
    scale: f32,
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    let (stride, head_off) = (shape.kv_dim(), kv_head * HD);
    let row = |cache: &[f32], pos: usize| -> [f32; HD] {
        cache[pos * stride + head_off..][..HD]
            .try_into()
            .expect("HD-wide row")
    };
    let key = |pos: usize| &keys[pos * stride + head_off..][..HD];
    scores.clear();
    scores.resize(n_ctx, 0.0);
    for (qh, oh) in q.chunks_exact(HD).zip(out.chunks_exact_mut(HD)) {
        for (pos, s) in scores.iter_mut().enumerate() {
            *s = dot(qh, key(pos)) * scale;
        }
        softmax_in_place(scores);
        let mut acc = [0.0f32; HD];
        for (pos, &p) in scores.iter().enumerate() {
            let v = row(values, pos);
            for d in 0..HD {
                acc[d] += p * v[d];
            }
        }
        oh.copy_from_slice(&acc);
    }
}

/// Any head size (the reference shape of the algorithm).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_any(
    shape: AttentionShape,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    kv_head: usize,
    n_ctx: usize,
    scale: f32,
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    let (hd, group, stride) = (shape.head_dim, shape.group(), shape.kv_dim());
    let head_off = kv_head * hd;
    scores.clear();
    scores.resize(group * n_ctx, 0.0);

    for pos in 0..n_ctx {
        let k = &keys[pos * stride + head_off..][..hd];
        for (g, qh) in q.chunks_exact(hd).enumerate() {
            scores[g * n_ctx + pos] = dot(qh, k) * scale;
        }
    }
    for row in scores.chunks_exact_mut(n_ctx) {
        softmax_in_place(row);
    }
    out.fill(0.0);
    for pos in 0..n_ctx {
        let v = &values[pos * stride + head_off..][..hd];
        for (g, oh) in out.chunks_exact_mut(hd).enumerate() {
            axpy(scores[g * n_ctx + pos], v, oh);
        }
    }
}

/// Numerically stable softmax.
#[inline(always)]
pub fn softmax_in_place(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    x.iter_mut().for_each(|v| *v *= inv);
}

/// f32 dot product with eight independent accumulators (vectorizes well).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y += a · x`.
#[inline(always)]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward per-head attention, written independently of the grouped kernel.
    fn naive(shape: AttentionShape, q: &[f32], k: &[f32], v: &[f32], n_ctx: usize) -> Vec<f32> {
        let hd = shape.head_dim;
        let mut out = vec![0.0; shape.n_head * hd];
        for h in 0..shape.n_head {
            let kvh = h / shape.group();
            let qh = &q[h * hd..][..hd];
            let s: Vec<f64> = (0..n_ctx)
                .map(|p| {
                    let kr = &k[p * shape.kv_dim() + kvh * hd..][..hd];
                    qh.iter().zip(kr).map(|(a, b)| (a * b) as f64).sum::<f64>() / (hd as f64).sqrt()
                })
                .collect();
            let m = s.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
            for p in 0..n_ctx {
                let w = (s[p] - m).exp() / z;
                let vr = &v[p * shape.kv_dim() + kvh * hd..][..hd];
                for d in 0..hd {
                    out[h * hd + d] += (w * vr[d] as f64) as f32;
                }
            }
        }
        out
    }

    type AttendFn =
        fn(AttentionShape, &[f32], &[f32], &[f32], usize, usize, f32, &mut [f32], &mut Vec<f32>);

    #[test]
    fn grouped_matches_naive() {
        // 16 takes the any-size path; 64 and 128 the fixed-size ones.
        for head_dim in [16, 64, 128] {
            let shape = AttentionShape {
                n_head: 6,
                n_kv_head: 2,
                head_dim,
            };
            let n_ctx = 37;
            let val =
                |i: usize, salt: usize| ((i * 7919 + salt * 104729) % 1000) as f32 / 500.0 - 1.0;
            let q: Vec<f32> = (0..shape.n_head * head_dim).map(|i| val(i, 1)).collect();
            let k: Vec<f32> = (0..n_ctx * shape.kv_dim()).map(|i| val(i, 2)).collect();
            let v: Vec<f32> = (0..n_ctx * shape.kv_dim()).map(|i| val(i, 3)).collect();
            let want = naive(shape, &q, &k, &v, n_ctx);
            let scale = 1.0 / (head_dim as f32).sqrt();
            // The dispatched (SIMD where available) and the portable paths.
            let paths: [AttendFn; 3] = [attend_group, attend_group_generic, attend_any];
            for attend in paths {
                let mut got = vec![0.0; want.len()];
                let mut scratch = Vec::new();
                let gq = shape.group() * head_dim;
                for kvh in 0..shape.n_kv_head {
                    let q = &q[kvh * gq..][..gq];
                    let out = &mut got[kvh * gq..][..gq];
                    attend(shape, q, &k, &v, kvh, n_ctx, scale, out, &mut scratch);
                }
                for (a, b) in got.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-5, "head_dim {head_dim}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_values() {
        let mut x = [1000.0f32, 1001.0, 999.0];
        softmax_in_place(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[1] > x[0] && x[0] > x[2]);
    }
}
