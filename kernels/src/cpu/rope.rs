//! Rotary position embeddings.
//!
//! Two layouts rotate different pairs of a head's dimensions:
//! - [`RopeStyle::Interleaved`] rotates `(x[2i], x[2i+1])`: GGUF `llama` files, whose Q/K rows
//!   the converter permuted back to Meta's layout;
//! - [`RopeStyle::Neox`] rotates `(x[i], x[i + n_rot/2])`: HF checkpoints, GGUF `qwen2`, ...
//!
//! Mixing them up produces fluent-looking garbage, so the style is always explicit.

/// Which dimension pairs are rotated together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    Interleaved,
    Neox,
}

/// Precomputed inverse frequencies for one model.
#[derive(Clone, Debug)]
pub struct Rope {
    style: RopeStyle,
    head_dim: usize,
    /// `base^(-2i/n_rot)` for `i < n_rot/2`.
    inv_freq: Vec<f32>,
}

impl Rope {
    /// `n_rot` leading dimensions of each `head_dim`-wide head are rotated (`n_rot` even, ≤ head_dim).
    pub fn new(style: RopeStyle, head_dim: usize, n_rot: usize, base: f32) -> Self {
        assert!(
            n_rot.is_multiple_of(2) && n_rot <= head_dim,
            "invalid rope dims"
        );
        let inv_freq = (0..n_rot / 2)
            .map(|i| base.powf(-2.0 * i as f32 / n_rot as f32))
            .collect();
        Rope {
            style,
            head_dim,
            inv_freq,
        }
    }

    /// Rotates every head in `x` (a concatenation of heads) for position `pos`.
    pub fn apply(&self, x: &mut [f32], pos: usize) {
        let half = self.inv_freq.len();
        for head in x.chunks_exact_mut(self.head_dim) {
            for (i, &f) in self.inv_freq.iter().enumerate() {
                let (sin, cos) = (pos as f32 * f).sin_cos();
                let (a, b) = match self.style {
                    RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                    RopeStyle::Neox => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * cos - x1 * sin;
                head[b] = x0 * sin + x1 * cos;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_zero_is_identity() {
        let rope = Rope::new(RopeStyle::Interleaved, 4, 4, 10000.0);
        let mut x = [1.0, 2.0, 3.0, 4.0];
        rope.apply(&mut x, 0);
        assert_eq!(x, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn styles_rotate_different_pairs() {
        // With base 1 every frequency is 1, so each pair rotates by `pos` radians.
        let (s, c) = 1.0f32.sin_cos();
        let mut inter = [1.0, 0.0, 0.0, 1.0];
        Rope::new(RopeStyle::Interleaved, 4, 4, 1.0).apply(&mut inter, 1);
        assert_eq!(inter, [c, s, -s, c]);
        let mut neox = [1.0, 0.0, 0.0, 1.0];
        Rope::new(RopeStyle::Neox, 4, 4, 1.0).apply(&mut neox, 1);
        // Pairs are (0,2) and (1,3).
        assert_eq!(neox, [c, -s, s, c]);
    }

    #[test]
    fn rotation_preserves_pair_norms() {
        let rope = Rope::new(RopeStyle::Interleaved, 8, 8, 100000.0);
        let mut x: Vec<f32> = (0..16).map(|i| i as f32 - 7.5).collect();
        let before: Vec<f32> = x.chunks(2).map(|p| p[0] * p[0] + p[1] * p[1]).collect();
        rope.apply(&mut x, 1234);
        for (p, b) in x.chunks(2).zip(before) {
            assert!((p[0] * p[0] + p[1] * p[1] - b).abs() < 1e-3 * b.max(1.0));
        }
    }
}
