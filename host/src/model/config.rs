//! Hyper-parameters of a Llama-architecture model, read from GGUF metadata.

use textnlp_kernels::cpu::rope::RopeStyle;

use super::ModelError;
use super::gguf::Metadata;

/// Everything the forward pass needs to know about a model's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub architecture: String,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub n_vocab: usize,
    pub context_length: usize,
    pub rope_dims: usize,
    pub rope_base: f32,
    pub rope_style: RopeStyle,
    pub rms_eps: f32,
}

/// Architectures whose GGUF tensors follow the Llama block layout, with their RoPE pairing
/// (`llama` files had Q/K permuted to Meta's interleaved layout by the converter).
const SUPPORTED: &[(&str, RopeStyle)] = &[("llama", RopeStyle::Interleaved)];

impl LlamaConfig {
    pub fn from_metadata(meta: &Metadata) -> Result<Self, ModelError> {
        let arch = meta.get_str("general.architecture")?.to_owned();
        let rope_style = SUPPORTED
            .iter()
            .find(|(name, _)| *name == arch)
            .map(|&(_, style)| style)
            .ok_or_else(|| ModelError::UnsupportedArchitecture(arch.clone()))?;
        let key = |k: &str| format!("{arch}.{k}");
        let uint = |k: &str| -> Result<usize, ModelError> { Ok(to_usize(meta.get_uint(&key(k))?)) };

        let n_embd = uint("embedding_length")?;
        let n_head = uint("attention.head_count")?;
        let n_head_kv = match meta.opt_uint(&key("attention.head_count_kv"))? {
            Some(n) => to_usize(n),
            None => n_head,
        };
        let head_dim = match meta.opt_uint(&key("attention.key_length"))? {
            Some(n) => to_usize(n),
            None if n_head > 0 => n_embd / n_head,
            None => 0,
        };
        let n_vocab = match meta.opt_uint(&key("vocab_size"))? {
            Some(n) => to_usize(n),
            None => meta.get_str_array("tokenizer.ggml.tokens")?.len(),
        };
        let config = LlamaConfig {
            n_embd,
            n_layer: uint("block_count")?,
            n_head,
            n_head_kv,
            head_dim,
            n_ff: uint("feed_forward_length")?,
            n_vocab,
            context_length: uint("context_length")?,
            rope_dims: match meta.opt_uint(&key("rope.dimension_count"))? {
                Some(n) => to_usize(n),
                None => head_dim,
            },
            rope_base: meta.opt_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0),
            rope_style,
            rms_eps: meta.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
            architecture: arch,
        };
        config.validate()?;
        Ok(config)
    }

    /// Rejects shapes the forward pass cannot run, before any weight is touched.
    fn validate(&self) -> Result<(), ModelError> {
        let bad = |what: &str| Err(ModelError::InvalidConfig(what.to_owned()));
        if [
            self.n_embd,
            self.n_layer,
            self.n_head,
            self.n_head_kv,
            self.head_dim,
            self.n_ff,
        ]
        .contains(&0)
            || self.n_vocab == 0
            || self.context_length == 0
        {
            return bad("a dimension is zero");
        }
        if !self.n_head.is_multiple_of(self.n_head_kv) {
            return bad("head_count is not a multiple of head_count_kv");
        }
        if self.n_head.checked_mul(self.head_dim) != Some(self.n_embd) {
            return bad("head_count × key_length differs from embedding_length");
        }
        if !self.rope_dims.is_multiple_of(2) || self.rope_dims > self.head_dim {
            return bad("rope.dimension_count must be even and at most the head size");
        }
        if !(self.rope_base.is_finite() && self.rope_base > 0.0) {
            return bad("rope.freq_base must be positive");
        }
        if !(self.rms_eps.is_finite() && self.rms_eps >= 0.0) {
            return bad("layer_norm_rms_epsilon must be non-negative");
        }
        Ok(())
    }

    /// Floats per cached position per layer (keys or values).
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

/// Sizes larger than the address space are clamped; the shape checks against the tensors
/// then reject them with a precise message.
fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
