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

/// Attention of one GQA group for a tile of consecutive query positions of one sequence.
///
/// - `q`: `tokens · group · head_dim` floats: for each token, the group's query heads;
/// - `keys`, `values`: the cache, at least `first_ctx + tokens − 1` rows of `shape.kv_dim()`;
/// - `kv_head`: which KV head of each row this group reads;
/// - token `t` of the tile attends to cache positions `0..first_ctx + t` (the caller passes the
///   first token's position + 1, which makes it causal);
/// - `out`: like `q`; `scores`: scratch, resized as needed.
///
/// Each cached row is read once for the whole tile instead of once per token (prefill chunks
/// are otherwise bound by re-reading the cache). Every query's arithmetic — its dot products,
/// its softmax over exactly its own positions, its value sum in position order — is the same
/// whatever the tile, so a token's output does not depend on how its sequence was chunked.
/// Softmax is computed in f32 with the maximum subtracted.
#[allow(clippy::too_many_arguments)]
pub fn attend_tile(
    shape: AttentionShape,
    q: &[f32],
    keys: &[f16],
    values: &[f16],
    kv_head: usize,
    first_ctx: usize,
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
    let tile = Tile {
        group: shape.group(),
        first_ctx,
        scale,
    };
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        // SAFETY: the CPU supports AVX2, FMA and F16C (checked above).
        return unsafe { x86::attend(&rows, &tile, q, out, scores) };
    }
    attend_with(&rows, &tile, q, out, scores, dot_portable, axpy_portable)
}

/// The geometry of one [`attend_tile`] call.
struct Tile {
    group: usize,
    first_ctx: usize,
    scale: f32,
}

impl Tile {
    /// For queries of `width` floats in `q_len` floats: the number of query heads and of cache
    /// positions the tile reads, or `None` when it holds no token.
    fn span(&self, q_len: usize, width: usize) -> Option<(usize, usize)> {
        let heads = q_len / width;
        let tokens = heads / self.group;
        (tokens > 0).then(|| (heads, self.first_ctx + tokens - 1))
    }

    /// Query head `i` (of token i / group) attends to positions `0..ctx(i)`.
    fn ctx(&self, i: usize) -> usize {
        self.first_ctx + i / self.group
    }

    /// The first query head that sees position `pos` (all later ones do too).
    fn first(&self, pos: usize) -> usize {
        (pos + 1).saturating_sub(self.first_ctx) * self.group
    }
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
fn attend_with(
    rows: &CacheRows<'_>,
    tile: &Tile,
    q: &[f32],
    out: &mut [f32],
    scores: &mut Vec<f32>,
    dot: impl Fn(&[f32], &[f16]) -> f32,
    axpy: impl Fn(f32, &[f16], &mut [f32]),
) {
    let width = rows.width;
    let Some((heads, n_max)) = tile.span(q.len(), width) else {
        return;
    };
    let (ctx, first) = (|i| tile.ctx(i), |pos| tile.first(pos));
    scores.clear();
    scores.resize(heads * n_max, 0.0);
    for pos in 0..n_max {
        let key = rows.key(pos);
        for i in first(pos)..heads {
            scores[i * n_max + pos] = dot(&q[i * width..][..width], key) * tile.scale;
        }
    }
    for i in 0..heads {
        softmax_in_place(&mut scores[i * n_max..][..ctx(i)]);
    }
    out.fill(0.0);
    for pos in 0..n_max {
        let value = rows.value(pos);
        for i in first(pos)..heads {
            axpy(
                scores[i * n_max + pos],
                value,
                &mut out[i * width..][..width],
            );
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

    use super::{CacheRows, Tile, attend_with};

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
        tile: &Tile,
        q: &[f32],
        out: &mut [f32],
        scores: &mut Vec<f32>,
    ) {
        if rows.width.is_multiple_of(8) && rows.width <= MAX_WIDTH {
            // SAFETY: forwarded; the width suits the blocked kernel.
            return unsafe { attend_blocked(rows, tile, q, out, scores) };
        }
        // SAFETY (both closures): this function only runs where AVX2, FMA and F16C exist.
        let dot = |q: &[f32], k: &[f16]| unsafe { dot(q, k) };
        let axpy = |p: f32, v: &[f16], acc: &mut [f32]| unsafe { axpy(p, v, acc) };
        attend_with(rows, tile, q, out, scores, dot, axpy)
    }

    /// Keys per score block: one 8-lane vector of dot products per query.
    const KEYS: usize = 8;
    /// Positions per value block (converted once, then summed into every query of the tile).
    const VALUES: usize = 64;
    /// Widest head the blocked kernel takes (its value accumulators live in 16 registers).
    const MAX_WIDTH: usize = 128;

    /// [`attend_with`]'s algorithm with the cache converted to f32 once per block of rows for
    /// the whole tile: scores are computed 8 keys at a time per query (lane k = key k, reduced
    /// with a fixed `hadd` tree, no per-dot horizontal sum), values are summed into register
    /// accumulators in position order. A query's arithmetic depends only on its own inputs and
    /// the fixed block grid (blocks start at multiples of 8 and 64), never on the tile.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn attend_blocked(
        rows: &CacheRows<'_>,
        tile: &Tile,
        q: &[f32],
        out: &mut [f32],
        scores: &mut Vec<f32>,
    ) {
        let width = rows.width;
        let Some((heads, n_max)) = tile.span(q.len(), width) else {
            return;
        };
        let (ctx, first) = (|i| tile.ctx(i), |pos| tile.first(pos));
        // Scores, then the converted rows of the current block after them.
        let (score_len, buf_len) = (heads * n_max, VALUES * width);
        scores.clear();
        scores.resize(score_len + buf_len, 0.0);
        let (scores, buf) = scores.split_at_mut(score_len);
        let scale = _mm256_set1_ps(tile.scale);
        for blk in (0..n_max).step_by(KEYS) {
            let nk = KEYS.min(n_max - blk);
            // SAFETY: rows blk..blk+nk exist; buf holds KEYS rows of width floats.
            unsafe { convert_rows(|p| rows.key(p), blk, nk, width, buf) };
            buf[nk * width..KEYS * width].fill(0.0);
            for i in first(blk)..heads {
                // SAFETY: q holds `heads` rows of width floats; buf holds KEYS rows.
                let dots = unsafe { dot8(q.as_ptr().add(i * width), buf.as_ptr(), width) };
                let mut lanes = [0f32; KEYS];
                // SAFETY: `lanes` holds 8 floats.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_mul_ps(dots, scale)) };
                scores[i * n_max + blk..][..nk].copy_from_slice(&lanes[..nk]);
            }
        }
        for i in 0..heads {
            super::softmax_in_place(&mut scores[i * n_max..][..ctx(i)]);
        }
        out.fill(0.0);
        for blk in (0..n_max).step_by(VALUES) {
            let nv = VALUES.min(n_max - blk);
            // SAFETY: rows blk..blk+nv exist; buf holds VALUES rows.
            unsafe { convert_rows(|p| rows.value(p), blk, nv, width, buf) };
            for i in first(blk)..heads {
                let end = (blk + nv).min(ctx(i));
                let p = &scores[i * n_max + blk..i * n_max + end];
                // SAFETY: out holds `heads` rows of width; buf holds the block's rows.
                unsafe { accumulate(p, buf.as_ptr(), width, out.as_mut_ptr().add(i * width)) };
            }
        }
    }

    /// Rows `from..from + n` (via `row`) as f32, one after another, into `buf`.
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn convert_rows<'a>(
        row: impl Fn(usize) -> &'a [f16],
        from: usize,
        n: usize,
        width: usize,
        buf: &mut [f32],
    ) {
        for r in 0..n {
            let src = row(from + r);
            for c in (0..width).step_by(8) {
                // SAFETY: width is a multiple of 8, within the row and within buf's row r.
                unsafe {
                    _mm256_storeu_ps(
                        buf.as_mut_ptr().add(r * width + c),
                        load8(src.as_ptr().add(c)),
                    )
                };
            }
        }
    }

    /// Lane k: dot(q, row k of the 8 rows at `keys`), each `width` floats.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn dot8(q: *const f32, keys: *const f32, width: usize) -> __m256 {
        let mut acc = [_mm256_setzero_ps(); KEYS];
        for c in (0..width).step_by(8) {
            // SAFETY: the caller guarantees width floats at q and 8 rows of width at keys.
            unsafe {
                let qv = _mm256_loadu_ps(q.add(c));
                for (k, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(qv, _mm256_loadu_ps(keys.add(k * width + c)), *a);
                }
            }
        }
        let h01 = _mm256_hadd_ps(acc[0], acc[1]);
        let h23 = _mm256_hadd_ps(acc[2], acc[3]);
        let h45 = _mm256_hadd_ps(acc[4], acc[5]);
        let h67 = _mm256_hadd_ps(acc[6], acc[7]);
        let h0123 = _mm256_hadd_ps(h01, h23);
        let h4567 = _mm256_hadd_ps(h45, h67);
        // Lanes 0..4: rows 0..4 over columns 0..4 of each 8 (low 128) and 4..8 (high 128).
        let lo = _mm256_permute2f128_ps::<0x20>(h0123, h4567);
        let hi = _mm256_permute2f128_ps::<0x31>(h0123, h4567);
        _mm256_add_ps(lo, hi)
    }

    /// out += Σ_j p[j] · row j of `values` (rows of `width` floats), in order of j.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn accumulate(p: &[f32], values: *const f32, width: usize, out: *mut f32) {
        let vectors = width / 8;
        // SAFETY (whole body): out holds width floats; values holds p.len() rows of width.
        unsafe {
            let mut acc = [_mm256_setzero_ps(); MAX_WIDTH / 8];
            for (v, a) in acc.iter_mut().enumerate().take(vectors) {
                *a = _mm256_loadu_ps(out.add(8 * v));
            }
            for (j, &pj) in p.iter().enumerate() {
                let pv = _mm256_set1_ps(pj);
                let row = values.add(j * width);
                for (v, a) in acc.iter_mut().enumerate().take(vectors) {
                    *a = _mm256_fmadd_ps(pv, _mm256_loadu_ps(row.add(8 * v)), *a);
                }
            }
            for (v, a) in acc.iter().enumerate().take(vectors) {
                _mm256_storeu_ps(out.add(8 * v), *a);
            }
        }
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

    /// Runs one kernel entry point over every group of one query position.
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
                let tile = Tile {
                    group: shape.group(),
                    first_ctx: n_ctx,
                    scale,
                };
                attend_with(
                    &rows,
                    &tile,
                    q,
                    out,
                    &mut scratch,
                    dot_portable,
                    axpy_portable,
                );
            } else {
                attend_tile(shape, q, k, v, kvh, n_ctx, scale, out, &mut scratch);
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
    fn a_tile_gives_each_token_exactly_its_single_token_result() {
        let shape = AttentionShape {
            n_head: 9,
            n_kv_head: 3,
            head_dim: 64,
        };
        let (gq, scale) = (shape.group() * shape.head_dim, 0.125);
        let n_rows = 70;
        let val = |i: usize, salt: usize| ((i * 7919 + salt * 104729) % 1000) as f32 / 250.0 - 2.0;
        let k: Vec<f16> = (0..n_rows * shape.kv_dim())
            .map(|i| f16::from_f32(val(i, 2)))
            .collect();
        let v: Vec<f16> = (0..n_rows * shape.kv_dim())
            .map(|i| f16::from_f32(val(i, 3)))
            .collect();
        let mut scratch = Vec::new();
        for (first_ctx, tokens) in [(1, 1), (1, 16), (5, 7), (40, 31), (70, 1)] {
            for kvh in 0..shape.n_kv_head {
                let q: Vec<f32> = (0..tokens * gq).map(|i| val(i, 10 + kvh)).collect();
                let mut tiled = vec![0.0; q.len()];
                attend_tile(
                    shape,
                    &q,
                    &k,
                    &v,
                    kvh,
                    first_ctx,
                    scale,
                    &mut tiled,
                    &mut scratch,
                );
                for t in 0..tokens {
                    let mut alone = vec![0.0; gq];
                    let qt = &q[t * gq..][..gq];
                    attend_tile(
                        shape,
                        qt,
                        &k,
                        &v,
                        kvh,
                        first_ctx + t,
                        scale,
                        &mut alone,
                        &mut scratch,
                    );
                    let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&tiled[t * gq..][..gq]),
                        bits(&alone),
                        "ctx {first_ctx}, token {t}"
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
