//! Causal grouped-query attention over a key/value cache.
//!
//! Keys and values are stored one row per position, each row holding every KV head
//! (`n_kv_head · head_dim` values, f16). The query heads that share a KV head (a GQA group) are
//! processed together, so the group's cached rows stay hot in cache while its heads read them.

use half::f16;

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

    /// Values in one cached row (all KV heads of one position).
    pub fn kv_dim(&self) -> usize {
        self.n_kv_head * self.head_dim
    }
}

/// Attention of one GQA group for one query position.
///
/// - `q`: the group's query heads, `group · head_dim` floats;
/// - `keys`, `values`: the cache, at least `n_ctx` rows of `shape.kv_dim()` values;
/// - `kv_head`: which KV head of each row this group reads;
/// - `out`: `group · head_dim` floats;
/// - `scores`: scratch, resized as needed.
///
/// The query attends to cache positions `0..n_ctx` (the caller passes its own position + 1,
/// which makes it causal). Softmax is computed in f32 with the maximum subtracted.
#[allow(clippy::too_many_arguments)]
pub fn attend_group(
    shape: AttentionShape,
    q: &[f32],
    keys: &[f16],
    values: &[f16],
    kv_head: usize,
    n_ctx: usize,
    scale: f32,
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    let rows = CacheRows {
        keys,
        values,
        stride: shape.kv_dim(),
        offset: kv_head * shape.head_dim,
        width: shape.head_dim,
    };
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        // SAFETY: the CPU supports AVX2, FMA and F16C (checked above).
        return unsafe { x86::attend(&rows, q, n_ctx, scale, out, scores) };
    }
    attend_with(
        &rows,
        q,
        n_ctx,
        scale,
        out,
        scores,
        dot_portable,
        axpy_portable,
    )
}

/// One KV head's slice of every cached row.
struct CacheRows<'a> {
    keys: &'a [f16],
    values: &'a [f16],
    stride: usize,
    offset: usize,
    width: usize,
}

impl<'a> CacheRows<'a> {
    #[inline(always)]
    fn key(&self, pos: usize) -> &'a [f16] {
        &self.keys[pos * self.stride + self.offset..][..self.width]
    }

    #[inline(always)]
    fn value(&self, pos: usize) -> &'a [f16] {
        &self.values[pos * self.stride + self.offset..][..self.width]
    }
}

/// The algorithm, generic over the two inner loops (`dot(q, k)` and `acc += p · v`) so that
/// each instruction set supplies its own.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_with(
    rows: &CacheRows<'_>,
    q: &[f32],
    n_ctx: usize,
    scale: f32,
    out: &mut [f32],
    scores: &mut Vec<f32>,
    dot: impl Fn(&[f32], &[f16]) -> f32,
    axpy: impl Fn(f32, &[f16], &mut [f32]),
) {
    scores.clear();
    scores.resize(n_ctx, 0.0);
    for (qh, oh) in q
        .chunks_exact(rows.width)
        .zip(out.chunks_exact_mut(rows.width))
    {
        for (pos, s) in scores.iter_mut().enumerate() {
            *s = dot(qh, rows.key(pos)) * scale;
        }
        softmax_in_place(scores);
        oh.fill(0.0);
        for (pos, &p) in scores.iter().enumerate() {
            axpy(p, rows.value(pos), oh);
        }
    }
}

fn dot_portable(q: &[f32], k: &[f16]) -> f32 {
    q.iter().zip(k).map(|(a, b)| a * b.to_f32()).sum()
}

fn axpy_portable(p: f32, v: &[f16], acc: &mut [f32]) {
    for (a, b) in acc.iter_mut().zip(v) {
        *a += p * b.to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{CacheRows, attend_with};

    pub fn available() -> bool {
        static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *DETECTED.get_or_init(|| {
            is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        })
    }

    /// [`attend_with`] with 8-wide FMA loops that convert f16 with F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn attend(
        rows: &CacheRows<'_>,
        q: &[f32],
        n_ctx: usize,
        scale: f32,
        out: &mut [f32],
        scores: &mut Vec<f32>,
    ) {
        // SAFETY (both closures): this function only runs where AVX2, FMA and F16C exist.
        let dot = |q: &[f32], k: &[f16]| unsafe { dot(q, k) };
        let axpy = |p: f32, v: &[f16], acc: &mut [f32]| unsafe { axpy(p, v, acc) };
        attend_with(rows, q, n_ctx, scale, out, scores, dot, axpy)
    }

    /// Eight f16 values at `p` as f32.
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn load8(p: *const f16) -> __m256 {
        // SAFETY: the caller guarantees 8 readable values at p.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn dot(q: &[f32], k: &[f16]) -> f32 {
        let n = q.len().min(k.len());
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        // SAFETY: each step reads 8 (or 16) elements below n from both slices.
        unsafe {
            while i + 16 <= n {
                acc0 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(q.as_ptr().add(i)),
                    load8(k.as_ptr().add(i)),
                    acc0,
                );
                acc1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(q.as_ptr().add(i + 8)),
                    load8(k.as_ptr().add(i + 8)),
                    acc1,
                );
                i += 16;
            }
            if i + 8 <= n {
                acc0 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(q.as_ptr().add(i)),
                    load8(k.as_ptr().add(i)),
                    acc0,
                );
                i += 8;
            }
        }
        let sum = _mm256_add_ps(acc0, acc1);
        let quad = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps::<1>(sum));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        let single = _mm_add_ss(pair, _mm_movehdup_ps(pair));
        _mm_cvtss_f32(single) + super::dot_portable(&q[i..n], &k[i..n])
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn axpy(p: f32, v: &[f16], acc: &mut [f32]) {
        let n = acc.len().min(v.len());
        let scale = _mm256_set1_ps(p);
        let mut i = 0;
        // SAFETY: each step reads and writes 8 elements below n.
        unsafe {
            while i + 8 <= n {
                let a = acc.as_mut_ptr().add(i);
                _mm256_storeu_ps(
                    a,
                    _mm256_fmadd_ps(scale, load8(v.as_ptr().add(i)), _mm256_loadu_ps(a)),
                );
                i += 8;
            }
        }
        super::axpy_portable(p, &v[i..n], &mut acc[i..n]);
    }
}

/// Numerically stable softmax.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward per-head attention in f64, written independently of the kernel.
    fn naive(shape: AttentionShape, q: &[f32], k: &[f16], v: &[f16], n_ctx: usize) -> Vec<f32> {
        let hd = shape.head_dim;
        let mut out = vec![0.0; shape.n_head * hd];
        for h in 0..shape.n_head {
            let kvh = h / shape.group();
            let qh = &q[h * hd..][..hd];
            let s: Vec<f64> = (0..n_ctx)
                .map(|p| {
                    let kr = &k[p * shape.kv_dim() + kvh * hd..][..hd];
                    qh.iter()
                        .zip(kr)
                        .map(|(a, b)| *a as f64 * b.to_f64())
                        .sum::<f64>()
                        / (hd as f64).sqrt()
                })
                .collect();
            let m = s.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
            for p in 0..n_ctx {
                let w = (s[p] - m).exp() / z;
                let vr = &v[p * shape.kv_dim() + kvh * hd..][..hd];
                for d in 0..hd {
                    out[h * hd + d] += (w * vr[d].to_f64()) as f32;
                }
            }
        }
        out
    }

    /// Runs one kernel entry point over every group.
    fn run(
        shape: AttentionShape,
        q: &[f32],
        k: &[f16],
        v: &[f16],
        n_ctx: usize,
        portable: bool,
    ) -> Vec<f32> {
        let mut got = vec![0.0; q.len()];
        let mut scratch = Vec::new();
        let gq = shape.group() * shape.head_dim;
        let scale = 1.0 / (shape.head_dim as f32).sqrt();
        for kvh in 0..shape.n_kv_head {
            let (q, out) = (&q[kvh * gq..][..gq], &mut got[kvh * gq..][..gq]);
            if portable {
                let rows = CacheRows {
                    keys: k,
                    values: v,
                    stride: shape.kv_dim(),
                    offset: kvh * shape.head_dim,
                    width: shape.head_dim,
                };
                attend_with(
                    &rows,
                    q,
                    n_ctx,
                    scale,
                    out,
                    &mut scratch,
                    dot_portable,
                    axpy_portable,
                );
            } else {
                attend_group(shape, q, k, v, kvh, n_ctx, scale, out, &mut scratch);
            }
        }
        got
    }

    #[test]
    fn grouped_matches_naive_on_every_path() {
        // 20 exercises the scalar tails of the SIMD loops.
        for head_dim in [20, 64, 128] {
            let shape = AttentionShape {
                n_head: 6,
                n_kv_head: 2,
                head_dim,
            };
            let n_ctx = 37;
            let val =
                |i: usize, salt: usize| ((i * 7919 + salt * 104729) % 1000) as f32 / 500.0 - 1.0;
            let q: Vec<f32> = (0..shape.n_head * head_dim).map(|i| val(i, 1)).collect();
            let k: Vec<f16> = (0..n_ctx * shape.kv_dim())
                .map(|i| f16::from_f32(val(i, 2)))
                .collect();
            let v: Vec<f16> = (0..n_ctx * shape.kv_dim())
                .map(|i| f16::from_f32(val(i, 3)))
                .collect();
            let want = naive(shape, &q, &k, &v, n_ctx);
            for portable in [false, true] {
                let got = run(shape, &q, &k, &v, n_ctx, portable);
                for (a, b) in got.iter().zip(&want) {
                    assert!(
                        (a - b).abs() < 1e-5,
                        "head_dim {head_dim}, portable {portable}: {a} vs {b}"
                    );
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
