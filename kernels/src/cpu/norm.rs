//! Normalisation and element-wise activation kernels.

/// RMSNorm of each `weight.len()`-wide row of `x` into `out`: `out = x / sqrt(mean(x²) + eps) · weight`.
///
/// The sum of squares is accumulated in f64, as ggml does, so long rows keep their precision.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let dim = weight.len();
    debug_assert_eq!(x.len(), out.len());
    for (row, out_row) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let sum_sq: f64 = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let scale = (1.0 / (sum_sq / dim as f64 + f64::from(eps)).sqrt()) as f32;
        for ((o, &v), &w) in out_row.iter_mut().zip(row).zip(weight) {
            *o = v * scale * w;
        }
    }
}

/// SwiGLU: `gate[i] = silu(gate[i]) · up[i]`, in place.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    debug_assert_eq!(gate.len(), up.len());
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// `acc += x`, element-wise (residual connections).
pub fn add_assign(acc: &mut [f32], x: &[f32]) {
    debug_assert_eq!(acc.len(), x.len());
    for (a, &v) in acc.iter_mut().zip(x) {
        *a += v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_unit_rms_and_weights() {
        let x = [3.0f32, 4.0, 0.0, 0.0, -3.0, -4.0, 0.0, 0.0];
        let w = [1.0f32, 2.0, 1.0, 1.0];
        let mut out = [0.0f32; 8];
        rms_norm(&x, &w, 0.0, &mut out);
        // mean(x²) = 25/4 per row, so scale = 0.4.
        assert_eq!(out, [1.2, 3.2, 0.0, 0.0, -1.2, -3.2, 0.0, 0.0]);
    }

    #[test]
    fn swiglu_matches_definition() {
        let mut g = [0.0f32, 1.0, -2.0];
        swiglu(&mut g, &[5.0, 2.0, 1.0]);
        let silu = |v: f32| v / (1.0 + (-v).exp());
        assert_eq!(g, [0.0, silu(1.0) * 2.0, silu(-2.0)]);
    }
}
