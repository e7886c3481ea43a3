//! The Llama forward pass, composed from `textnlp-kernels` primitives.
//!
//! One call runs a batch of sequences together: every sequence contributes a chunk of tokens
//! (a prefill chunk or a single decode token), all tokens go through each weight matrix in one
//! matrix product, and attention reads each sequence's own cache. This is the step the engine
//! schedules.

use std::ops::Range;

use rayon::prelude::*;
use textnlp_kernels::TensorType;
use textnlp_kernels::cpu::attention::{AttentionShape, attend_tile};
use textnlp_kernels::cpu::matmul::{MatmulScratch, QMatrix, matmul};
use textnlp_kernels::cpu::norm::{add_assign, rms_norm, swiglu};
use textnlp_kernels::cpu::rope::Rope;
use textnlp_kernels::cpu::sampling::{Sampler, SamplingParams};

use super::ModelError;
use super::config::LlamaConfig;
#[cfg(feature = "cuda")]
use super::cuda::{CudaModel, DEVICE_STEP_TOKENS, Output, device_parts};
use super::gguf::GgufFile;
use super::kv_cache::KvCache;
#[cfg(feature = "cuda")]
use textnlp_kernels::cuda::SampleRow;

/// A weight matrix inside the mapped model file.
#[derive(Clone, Debug)]
pub(super) struct Weight {
    pub(super) ty: TensorType,
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) bytes: std::ops::Range<usize>,
}

#[derive(Debug)]
pub(super) struct Layer {
    pub(super) attn_norm: Vec<f32>,
    pub(super) ffn_norm: Vec<f32>,
    pub(super) wq: Weight,
    pub(super) wk: Weight,
    pub(super) wv: Weight,
    pub(super) wo: Weight,
    pub(super) w_gate: Weight,
    pub(super) w_up: Weight,
    pub(super) w_down: Weight,
}

/// Tokens per attention tile: consecutive positions of one sequence that read the cache once.
const ATTENTION_TILE: usize = 16;

/// The step's token rows split into tiles: runs of consecutive positions of one sequence, at
/// most [`ATTENTION_TILE`] long.
fn attention_tiles(token_pos: &[(usize, usize)]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start == token_pos.len() {
            return None;
        }
        let (seq, pos) = token_pos[start];
        let mut end = start + 1;
        while end < token_pos.len()
            && end - start < ATTENTION_TILE
            && token_pos[end] == (seq, pos + (end - start))
        {
            end += 1;
        }
        let tile = start..end;
        start = end;
        Some(tile)
    })
}

/// A loaded Llama-architecture model. Weights stay in the memory-mapped file; on the CUDA
/// backend ([`Llama::use_cuda`]) a copy also lives on the GPU, which then runs every step.
pub struct Llama {
    file: GgufFile,
    config: LlamaConfig,
    token_embd: Weight,
    output: Weight,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
    rope: Rope,
    #[cfg(feature = "cuda")]
    gpu: Option<super::cuda::CudaModel>,
}

/// Which logits a sequence wants back from a forward step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogitsFor {
    /// None (e.g. a prefill chunk that is not the last).
    None,
    /// The last token's (the next-token distribution).
    Last,
    /// Every token's (teacher-forced scoring, perplexity).
    All,
}

/// One sequence's part of a batched forward step.
pub struct SequenceStep<'a> {
    pub cache: &'a mut KvCache,
    pub tokens: &'a [u32],
    pub logits: LogitsFor,
}

/// One sequence's draw in [`Llama::forward_sampled`]: draw number `step` of the random
/// stream of a sampler with `params` (no penalties: they need the history).
#[derive(Clone, Copy, Debug)]
pub struct Draw {
    pub params: SamplingParams,
    pub step: u64,
}

/// Reusable activation buffers, so a decode step does not allocate.
#[derive(Default)]
pub struct Scratch {
    x: Vec<f32>,
    xn: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    /// (sequence index, position) of every token in the step.
    token_pos: Vec<(usize, usize)>,
    logit_rows: Vec<usize>,
    logits: Vec<f32>,
    tokens: Vec<u32>,
    matmul: MatmulScratch,
}

impl Scratch {
    /// The logits the last successful [`Llama::forward`] returned (a GPU's
    /// [`Llama::forward_sampled`] leaves them as they were: its logits stay on the device).
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// The tokens the last successful [`Llama::forward_sampled`] returned.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }
}

impl Llama {
    /// Loads the model in `file`, checking every tensor's presence, type and shape.
    pub fn load(file: GgufFile) -> Result<Self, ModelError> {
        let config = LlamaConfig::from_metadata(file.metadata())?;
        let c = &config;
        let (d, kv, ff) = (c.n_embd, c.kv_dim(), c.n_ff);
        let token_embd = weight(&file, "token_embd.weight", c.n_vocab, d)?;
        let output = match file.tensor_info("output.weight") {
            Some(_) => weight(&file, "output.weight", c.n_vocab, d)?,
            None => token_embd.clone(), // tied embeddings
        };
        let layers = (0..c.n_layer)
            .map(|i| {
                let w = |name: &str, rows, cols| {
                    weight(&file, &format!("blk.{i}.{name}.weight"), rows, cols)
                };
                Ok(Layer {
                    attn_norm: vector(&file, &format!("blk.{i}.attn_norm.weight"), d)?,
                    ffn_norm: vector(&file, &format!("blk.{i}.ffn_norm.weight"), d)?,
                    wq: w("attn_q", d, d)?,
                    wk: w("attn_k", kv, d)?,
                    wv: w("attn_v", kv, d)?,
                    wo: w("attn_output", d, d)?,
                    w_gate: w("ffn_gate", ff, d)?,
                    w_up: w("ffn_up", ff, d)?,
                    w_down: w("ffn_down", d, ff)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let output_norm = vector(&file, "output_norm.weight", d)?;
        let rope = Rope::new(c.rope_style, c.head_dim, c.rope_dims, c.rope_base);
        Ok(Llama {
            file,
            config,
            token_embd,
            output,
            output_norm,
            layers,
            rope,
            #[cfg(feature = "cuda")]
            gpu: None,
        })
    }

    /// Moves the forward pass to GPU 0: uploads the weights, allocates the KV cache and loads
    /// the kernels (PTX cached under `ptx_cache`). On error the model stays on the CPU.
    #[cfg(feature = "cuda")]
    pub fn use_cuda(&mut self, ptx_cache: &std::path::Path) -> Result<(), ModelError> {
        self.gpu = Some(super::cuda::CudaModel::new(self, ptx_cache)?);
        Ok(())
    }

    /// The backend the forward pass runs on.
    pub fn backend(&self) -> super::Backend {
        #[cfg(feature = "cuda")]
        if self.gpu.is_some() {
            return super::Backend::Cuda;
        }
        super::Backend::Cpu
    }

    /// Whether [`Llama::forward_sampled`] samples on the device (saving the transfer of every
    /// sequence's logits); on the CPU it is no faster than sampling the logits.
    pub fn samples_on_device(&self) -> bool {
        self.backend() == super::Backend::Cuda
    }

    /// What runs the forward pass: `cpu`, or `cuda` and the GPU's name.
    pub fn device_description(&self) -> String {
        #[cfg(feature = "cuda")]
        if let Some(gpu) = &self.gpu {
            return format!("cuda: {}", gpu.device_name());
        }
        self.backend().name().to_owned()
    }

    /// KV positions the GPU's cache is sure to hold for up to `sequences` sequences together
    /// (`None` on the CPU, where caches grow in host memory).
    pub fn device_kv_budget(&self, sequences: usize) -> Option<usize> {
        #[cfg(feature = "cuda")]
        if let Some(gpu) = &self.gpu {
            return Some(gpu.kv_budget(sequences));
        }
        let _ = sequences;
        None
    }

    #[cfg(feature = "cuda")]
    pub(super) fn layers(&self) -> &[Layer] {
        &self.layers
    }

    #[cfg(feature = "cuda")]
    pub(super) fn output(&self) -> &Weight {
        &self.output
    }

    #[cfg(feature = "cuda")]
    pub(super) fn output_norm(&self) -> &[f32] {
        &self.output_norm
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The underlying file (metadata such as the tokenizer lives there).
    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    /// A fresh, empty cache for one sequence, on this model's backend.
    pub fn new_cache(&self) -> KvCache {
        #[cfg(feature = "cuda")]
        if let Some(gpu) = &self.gpu {
            return KvCache::on_device(&self.config, gpu.new_pages());
        }
        KvCache::new(&self.config)
    }

    /// `out = W · x` for `n` tokens; `out` is resized to `n × rows`.
    fn project(
        &self,
        w: &Weight,
        x: &[f32],
        n: usize,
        out: &mut Vec<f32>,
        scratch: &mut MatmulScratch,
    ) {
        matmul(&self.mat(w), x, n, resized(out, n * w.rows), scratch);
    }

    fn mat(&self, w: &Weight) -> QMatrix<'_> {
        QMatrix {
            ty: w.ty,
            data: &self.file.bytes()[w.bytes.clone()],
            rows: w.rows,
            cols: w.cols,
        }
    }

    /// Runs one batched step. Returns the requested logits, `n_vocab` floats per row, in batch
    /// order (for each sequence: nothing, its last token's row, or one row per token).
    ///
    /// Inputs are checked before any cache is touched: an error leaves every cache unchanged.
    pub fn forward<'s>(
        &self,
        batch: &mut [SequenceStep<'_>],
        s: &'s mut Scratch,
    ) -> Result<&'s [f32], ModelError> {
        #[cfg(feature = "cuda")]
        if let Some(gpu) = &self.gpu {
            self.forward_on_gpu(gpu, batch, None, s)?;
            return Ok(&s.logits);
        }
        self.prepare(batch, s)?;
        self.forward_on_cpu(batch, s);
        Ok(&s.logits)
    }

    /// Runs one batched step and samples a token for each sequence that wants its last token's
    /// logits, with the next of `draws` (one per such sequence, in batch order; the others want
    /// none). On a GPU the sampling kernel runs there, so only the tokens come back (not
    /// `n_vocab` logits per sequence).
    pub fn forward_sampled<'s>(
        &self,
        batch: &mut [SequenceStep<'_>],
        draws: &[Draw],
        s: &'s mut Scratch,
    ) -> Result<&'s [u32], ModelError> {
        let sampling = batch.iter().filter(|q| q.logits == LogitsFor::Last).count();
        if draws.len() != sampling
            || batch.iter().any(|seq| seq.logits == LogitsFor::All)
            || draws.iter().any(|d| d.params.has_penalties())
        {
            return Err(ModelError::InvalidDraws);
        }
        #[cfg(feature = "cuda")]
        if let Some(gpu) = &self.gpu {
            let rows: Vec<_> = draws
                .iter()
                .map(|d| textnlp_kernels::cuda::SampleRow::new(&d.params, d.step))
                .collect();
            self.forward_on_gpu(gpu, batch, Some(&rows), s)?;
            return Ok(&s.tokens);
        }
        self.prepare(batch, s)?;
        self.forward_on_cpu(batch, s);
        let n_vocab = self.config.n_vocab;
        s.tokens.clear();
        for (row, d) in s.logits.chunks_exact_mut(n_vocab).zip(draws) {
            s.tokens
                .push(Sampler::at_step(d.params, d.step).sample(row, &[]));
        }
        Ok(&s.tokens)
    }

    /// The step on the GPU: logits into `s.logits`, or with `draws` (one per sequence, each
    /// wanting its last logits) a sampled token per sequence into `s.tokens`. A step with more
    /// tokens than one launch sequence takes runs in parts, in batch order (chunks of a long
    /// sequence one after the other), once the whole batch has been checked.
    #[cfg(feature = "cuda")]
    fn forward_on_gpu(
        &self,
        gpu: &CudaModel,
        batch: &mut [SequenceStep<'_>],
        draws: Option<&[SampleRow]>,
        s: &mut Scratch,
    ) -> Result<(), ModelError> {
        let lens: Vec<usize> = batch.iter().map(|seq| seq.tokens.len()).collect();
        let parts = device_parts(&lens, DEVICE_STEP_TOKENS);
        if let [_] = parts[..] {
            return self.gpu_part(gpu, batch, draws.unwrap_or_default(), draws.is_some(), s);
        }
        self.check_batch(batch)?;
        let (mut logits, mut tokens) = (Vec::new(), Vec::new());
        let mut next_draw = draws.unwrap_or_default().iter();
        for part in parts {
            let mut entries = part.iter().peekable();
            let mut sub = Vec::with_capacity(part.len());
            let mut part_draws = Vec::new();
            for (i, seq) in batch.iter_mut().enumerate() {
                let Some((_, range)) = entries.next_if(|(j, _)| *j == i) else {
                    continue;
                };
                let last = range.end == seq.tokens.len();
                let logits = match seq.logits {
                    LogitsFor::All => LogitsFor::All,
                    LogitsFor::Last if last => LogitsFor::Last,
                    _ => LogitsFor::None,
                };
                if draws.is_some() && logits == LogitsFor::Last {
                    part_draws.extend(next_draw.next());
                }
                sub.push(SequenceStep {
                    cache: &mut *seq.cache,
                    tokens: &seq.tokens[range.clone()],
                    logits,
                });
            }
            self.gpu_part(gpu, &mut sub, &part_draws, draws.is_some(), s)?;
            logits.extend_from_slice(&s.logits);
            tokens.extend_from_slice(&s.tokens);
        }
        (s.logits, s.tokens) = (logits, tokens);
        Ok(())
    }

    /// One launch sequence on the GPU (see [`Llama::forward_on_gpu`]).
    #[cfg(feature = "cuda")]
    fn gpu_part(
        &self,
        gpu: &CudaModel,
        batch: &mut [SequenceStep<'_>],
        draws: &[SampleRow],
        sample: bool,
        s: &mut Scratch,
    ) -> Result<(), ModelError> {
        self.prepare(batch, s)?;
        let out = if sample {
            Output::Tokens {
                draws,
                tokens: &mut s.tokens,
            }
        } else {
            Output::Logits(&mut s.logits)
        };
        gpu.forward(batch, &s.x, &s.logit_rows, out)?;
        commit(batch);
        Ok(())
    }

    /// Checks the batch, lays out its token rows and looks up their embeddings.
    fn prepare(&self, batch: &[SequenceStep<'_>], s: &mut Scratch) -> Result<(), ModelError> {
        self.check_batch(batch)?;
        s.token_pos.clear();
        s.logit_rows.clear();
        for (i, seq) in batch.iter().enumerate() {
            let start = seq.cache.len();
            let first_row = s.token_pos.len();
            s.token_pos
                .extend((0..seq.tokens.len()).map(|j| (i, start + j)));
            match seq.logits {
                LogitsFor::None => {}
                LogitsFor::Last => s.logit_rows.push(s.token_pos.len() - 1),
                LogitsFor::All => s.logit_rows.extend(first_row..s.token_pos.len()),
            }
        }
        self.embed(batch, s.token_pos.len(), s);
        Ok(())
    }

    fn forward_on_cpu(&self, batch: &mut [SequenceStep<'_>], s: &mut Scratch) {
        let n = s.token_pos.len();
        for (l, layer) in self.layers.iter().enumerate() {
            self.attention_block(l, layer, batch, s);
            self.feed_forward_block(layer, n, s);
        }
        commit(batch);
        self.output_logits(self.config.n_embd, s);
    }

    fn check_batch(&self, batch: &[SequenceStep<'_>]) -> Result<(), ModelError> {
        let c = &self.config;
        for seq in batch {
            if let Some(&id) = seq.tokens.iter().find(|&&t| t as usize >= c.n_vocab) {
                return Err(ModelError::TokenOutOfRange {
                    id,
                    n_vocab: c.n_vocab,
                });
            }
            let needed = seq.cache.len() + seq.tokens.len();
            if needed > c.context_length {
                return Err(ModelError::ContextOverflow {
                    needed,
                    context_length: c.context_length,
                });
            }
            if seq.tokens.is_empty() && seq.logits != LogitsFor::None {
                return Err(ModelError::EmptyStep);
            }
            if seq.cache.is_on_device() != (self.backend() == super::Backend::Cuda) {
                return Err(ModelError::CacheBackend);
            }
        }
        Ok(())
    }

    fn embed(&self, batch: &[SequenceStep<'_>], n: usize, s: &mut Scratch) {
        let d = self.config.n_embd;
        s.x.resize(n * d, 0.0);
        let embd = self.mat(&self.token_embd);
        let tokens = batch.iter().flat_map(|seq| seq.tokens.iter());
        for (row, &t) in s.x.chunks_exact_mut(d).zip(tokens) {
            embd.dequantize_row(t as usize, row);
        }
    }

    fn attention_block(
        &self,
        l: usize,
        layer: &Layer,
        batch: &mut [SequenceStep<'_>],
        s: &mut Scratch,
    ) {
        let c = &self.config;
        let (d, kv, n) = (c.n_embd, c.kv_dim(), s.token_pos.len());
        rms_norm(&s.x, &layer.attn_norm, c.rms_eps, resized(&mut s.xn, n * d));
        self.project(&layer.wq, &s.xn, n, &mut s.q, &mut s.matmul);
        self.project(&layer.wk, &s.xn, n, &mut s.k, &mut s.matmul);
        self.project(&layer.wv, &s.xn, n, &mut s.v, &mut s.matmul);
        for (t, &(_, pos)) in s.token_pos.iter().enumerate() {
            self.rope.apply(&mut s.q[t * d..][..d], pos);
            self.rope.apply(&mut s.k[t * kv..][..kv], pos);
        }
        let mut row = 0;
        for seq in batch.iter_mut() {
            let rows = row..row + seq.tokens.len();
            seq.cache.append(
                l,
                &s.k[rows.start * kv..rows.end * kv],
                &s.v[rows.start * kv..rows.end * kv],
            );
            row = rows.end;
        }

        let shape = AttentionShape {
            n_head: c.n_head,
            n_kv_head: c.n_head_kv,
            head_dim: c.head_dim,
        };
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        let group_width = shape.group() * c.head_dim;
        let caches: Vec<&KvCache> = batch.iter().map(|seq| &*seq.cache).collect();
        let (q, token_pos) = (&s.q, &s.token_pos);
        // Work items: (tile of consecutive tokens of one sequence, KV head), in parallel.
        let work: Vec<(Range<usize>, usize)> = attention_tiles(token_pos)
            .flat_map(|rows| (0..c.n_head_kv).map(move |h| (rows.clone(), h)))
            .collect();
        let outputs: Vec<Vec<f32>> = work
            .par_iter()
            .map_init(
                || (Vec::new(), Vec::new()),
                |(scores, q_tile), (rows, kv_head)| {
                    let (seq, pos) = token_pos[rows.start];
                    let cache = caches[seq].layer(l);
                    q_tile.clear();
                    for t in rows.clone() {
                        q_tile
                            .extend_from_slice(&q[t * d + kv_head * group_width..][..group_width]);
                    }
                    let mut out = vec![0.0; q_tile.len()];
                    attend_tile(
                        shape,
                        q_tile,
                        &cache.keys,
                        &cache.values,
                        *kv_head,
                        pos + 1,
                        scale,
                        &mut out,
                        scores,
                    );
                    out
                },
            )
            .collect();
        let attn = resized(&mut s.attn, n * d);
        for ((rows, kv_head), out) in work.iter().zip(&outputs) {
            for (t, o) in rows.clone().zip(out.chunks_exact(group_width)) {
                attn[t * d + kv_head * group_width..][..group_width].copy_from_slice(o);
            }
        }
        self.project(&layer.wo, &s.attn, n, &mut s.proj, &mut s.matmul);
        add_assign(&mut s.x, &s.proj);
    }

    fn feed_forward_block(&self, layer: &Layer, n: usize, s: &mut Scratch) {
        let c = &self.config;
        let d = c.n_embd;
        rms_norm(&s.x, &layer.ffn_norm, c.rms_eps, resized(&mut s.xn, n * d));
        self.project(&layer.w_gate, &s.xn, n, &mut s.gate, &mut s.matmul);
        self.project(&layer.w_up, &s.xn, n, &mut s.up, &mut s.matmul);
        swiglu(&mut s.gate, &s.up);
        self.project(&layer.w_down, &s.gate, n, &mut s.proj, &mut s.matmul);
        add_assign(&mut s.x, &s.proj);
    }

    fn output_logits(&self, d: usize, s: &mut Scratch) {
        let rows = s.logit_rows.len();
        let xn = resized(&mut s.xn, rows * d);
        for (dst, &r) in xn.chunks_exact_mut(d).zip(&s.logit_rows) {
            dst.copy_from_slice(&s.x[r * d..][..d]);
        }
        // Normalise in place: rms_norm reads and writes different buffers, so go through `proj`.
        let normed = resized(&mut s.proj, rows * d);
        rms_norm(xn, &self.output_norm, self.config.rms_eps, normed);
        let logits = resized(&mut s.logits, rows * self.config.n_vocab);
        matmul(&self.mat(&self.output), normed, rows, logits, &mut s.matmul);
    }
}

/// Marks every sequence's step as stored in its cache.
fn commit(batch: &mut [SequenceStep<'_>]) {
    for seq in batch.iter_mut() {
        seq.cache.commit(seq.tokens.len());
    }
}

/// Resizes a scratch buffer (keeping its allocation) and returns it.
fn resized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buf.resize(len, 0.0);
    &mut buf[..]
}

/// Looks up a 2-D weight (`ne = [cols, rows]`).
fn weight(file: &GgufFile, name: &str, rows: usize, cols: usize) -> Result<Weight, ModelError> {
    locate(file, name, &[cols as u64, rows as u64], rows, cols)
}

/// Reads a 1-D tensor (norm weights) as f32.
fn vector(file: &GgufFile, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
    let w = locate(file, name, &[len as u64], 1, len)?;
    let mut out = vec![0.0; len];
    QMatrix {
        ty: w.ty,
        data: &file.bytes()[w.bytes],
        rows: 1,
        cols: len,
    }
    .dequantize_row(0, &mut out);
    Ok(out)
}

/// Finds a tensor, checks its dimensions, and that its bytes hold `rows × cols` of its type.
fn locate(
    file: &GgufFile,
    name: &str,
    dims: &[u64],
    rows: usize,
    cols: usize,
) -> Result<Weight, ModelError> {
    let tensor = file
        .tensor(name)
        .ok_or_else(|| ModelError::MissingTensor(name.to_owned()))?;
    if tensor.info.dims != dims {
        return Err(ModelError::TensorShape {
            name: name.to_owned(),
            expected: dims.to_vec(),
            found: tensor.info.dims.clone(),
        });
    }
    QMatrix::new(tensor.info.ty, tensor.data, rows, cols).map_err(|e| ModelError::TensorData {
        name: name.to_owned(),
        reason: e.to_string(),
    })?;
    // The parser checked that data_offset + offset + n_bytes lies inside the file.
    let start = (file.data_offset() + tensor.info.offset) as usize;
    Ok(Weight {
        ty: tensor.info.ty,
        rows,
        cols,
        bytes: start..start + tensor.data.len(),
    })
}
