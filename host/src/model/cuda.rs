//! The Llama forward pass on one GPU, launched through our CUDA kernels
//! ([`textnlp_kernels::cuda`]).
//!
//! It is [`super::llama`]'s step kernel for kernel: the same batch of sequence chunks, the same
//! f16 keys and values, the same Q8 activation blocks the CPU products use. Only the embedding
//! lookup stays on the host (a row dequantized per token: a few KiB per step).
//!
//! - **Weights** are uploaded once, in their GGUF blocks (dequantized in registers).
//! - **KV cache:** one paged f16 K and V buffer per layer, [`PAGE_SIZE`] positions per page.
//!   A sequence's cache holds a [`DevicePages`] listing its pages; they go back to the pool when
//!   it is truncated or dropped. Page 0 is never handed out: padding rows of a batch point at it.
//! - **Decode steps as graphs:** a step where every sequence decodes one token is padded to a
//!   power of two and replayed from a CUDA graph captured for that size on first use. The
//!   per-step values (input rows, positions, block table, lengths) are written into the graph's
//!   buffers before each replay. Other steps (prefill chunks, mixed batches) launch the same
//!   kernels directly.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use half::f16;
use textnlp_kernels::cpu::attention::AttentionShape;
use textnlp_kernels::cuda::{
    ATTN_HEAD_DIMS, ATTN_MAX_GROUP, CudaSlice, DecodeArgs, DecodeSplits, Device, DeviceError,
    DeviceRepr, DeviceWeights, Graph, KvLayout, LogitRows, PRODUCT_TYPES, PrefillArgs, Q8Block,
    RopeShape, SampleRow,
};

use super::ModelError;
use super::config::LlamaConfig;
use super::llama::{Layer, Llama, SequenceStep, Weight};

/// Positions per KV page.
const PAGE_SIZE: usize = 16;
/// Splits of decode attention at most (together they cover the whole context; those past a
/// sequence's length cost an empty block each).
const MAX_SPLITS: usize = 32;
/// Positions per split at least.
const MIN_SPLIT_LEN: usize = 64;
/// Share of the GPU memory still free after the weights that the KV cache takes.
const KV_MEMORY_SHARE: f64 = 0.6;
/// KV positions at most, all sequences together (24 GiB for SmolLM2-135M).
const MAX_KV_TOKENS: usize = 1 << 20;
/// Tokens in one launch sequence at most: bounds the activation buffers and keeps every grid
/// within CUDA's limits (65,535 blocks in y, one row of tokens each in some kernels). Larger
/// steps run in parts ([`device_parts`]).
pub(super) const DEVICE_STEP_TOKENS: usize = 16_384;
/// Largest decode batch replayed from a graph (larger ones launch directly).
const MAX_GRAPH_BATCH: usize = 512;

/// Free pages of the device KV cache.
pub(crate) struct PagePool {
    free: Mutex<Vec<i32>>,
    /// Pages sequences can hold (all but the padding page).
    usable: usize,
}

impl PagePool {
    /// A pool of `n_pages` pages; page 0 is kept back as the padding page.
    fn new(n_pages: usize) -> Arc<Self> {
        // Handed out from the end of the list: low page ids first.
        Arc::new(PagePool {
            free: Mutex::new((1..n_pages as i32).rev().collect()),
            usable: n_pages.saturating_sub(1),
        })
    }

    fn free(&self) -> MutexGuard<'_, Vec<i32>> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The pages of one sequence's device KV cache, in position order.
pub struct DevicePages {
    pages: Vec<i32>,
    pool: Arc<PagePool>,
}

impl DevicePages {
    /// Takes pages until `positions` fit.
    fn reserve(&mut self, positions: usize) -> Result<(), ModelError> {
        let needed = positions.div_ceil(PAGE_SIZE);
        if needed <= self.pages.len() {
            return Ok(());
        }
        let mut free = self.pool.free();
        let missing = needed - self.pages.len();
        if missing > free.len() {
            return Err(ModelError::KvCacheFull {
                capacity: self.pool.usable * PAGE_SIZE,
            });
        }
        let at = free.len() - missing;
        // The list's end holds the lowest ids, last first.
        self.pages.extend(free.drain(at..).rev());
        Ok(())
    }

    pub(crate) fn ids(&self) -> &[i32] {
        &self.pages
    }

    /// Gives back the pages past the first `positions`.
    pub(crate) fn truncate(&mut self, positions: usize) {
        let keep = positions.div_ceil(PAGE_SIZE);
        if keep < self.pages.len() {
            self.pool.free().extend(self.pages.drain(keep..));
        }
    }
}

impl Drop for DevicePages {
    fn drop(&mut self) {
        self.truncate(0);
    }
}

impl std::fmt::Debug for DevicePages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevicePages")
            .field("pages", &self.pages.len())
            .finish()
    }
}

struct DeviceLayer {
    attn_norm: CudaSlice<f32>,
    ffn_norm: CudaSlice<f32>,
    wq: DeviceWeights,
    wk: DeviceWeights,
    wv: DeviceWeights,
    wo: DeviceWeights,
    w_gate: DeviceWeights,
    w_up: DeviceWeights,
    w_down: DeviceWeights,
}

type Buf<T> = CudaSlice<T>;

/// Activations and per-step index arrays, sized for `tokens` rows of `seqs` sequences and
/// `rows` rows of logits. Graphs hold their addresses, so they are only ever replaced together
/// with the graphs.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Capacity {
    tokens: usize,
    seqs: usize,
    rows: usize,
}

impl Capacity {
    fn holds(&self, need: &Capacity) -> bool {
        self.tokens >= need.tokens && self.seqs >= need.seqs && self.rows >= need.rows
    }
}

struct Activations {
    capacity: Capacity,
    /// The residual stream, `tokens × n_embd`.
    x: Buf<f32>,
    /// Q8 input of the next product (`tokens × max(n_embd, n_ff) / 32` blocks).
    act: Buf<Q8Block>,
    /// Normalised rows whose logits are wanted, gathered (`rows × n_embd / 32` blocks).
    head_in: Buf<Q8Block>,
    q: Buf<f32>,
    k: Buf<f32>,
    v: Buf<f32>,
    attn: Buf<f32>,
    gate: Buf<f32>,
    up: Buf<f32>,
    logits: Buf<f32>,
    /// Sampler parameters and sampled tokens, one per logits row.
    draws: Buf<SampleRow>,
    sampled: Buf<u32>,
    positions: Buf<i32>,
    token_seq: Buf<i32>,
    seq_start: Buf<i32>,
    seq_lens: Buf<i32>,
    block_table: Buf<i32>,
    splits: DecodeSplits,
}

/// The step's per-token and per-sequence values, built on the host and written to the device.
#[derive(Default)]
struct StepInputs {
    positions: Vec<i32>,
    token_seq: Vec<i32>,
    seq_start: Vec<i32>,
    seq_lens: Vec<i32>,
    block_table: Vec<i32>,
    x: Vec<f32>,
    /// One per logits row when the step samples on the device, else empty.
    draws: Vec<SampleRow>,
}

/// What one step runs: `tokens` rows of `seqs` sequences, `rows` rows of logits.
struct Plan {
    tokens: usize,
    seqs: usize,
    rows: usize,
    /// Every sequence has one token: split-K decode attention instead of the tiled prefill.
    decode: bool,
    max_seq_tokens: usize,
    /// Rows whose logits are wanted, when they are not simply all rows in order.
    gather: Option<Vec<usize>>,
    /// Sample a token from each row of logits.
    sample: bool,
}

/// What a step gives back.
pub(super) enum Output<'a> {
    /// The logits rows.
    Logits(&'a mut Vec<f32>),
    /// A token per logits row, drawn on the device with `draws[row]`.
    Tokens {
        draws: &'a [SampleRow],
        tokens: &'a mut Vec<u32>,
    },
}

/// Everything a step mutates, behind one lock: the engine runs one step at a time anyway.
struct Work {
    /// Decode graphs by (padded batch size, samples on the device). Declared first so that
    /// graphs go before the buffers whose addresses they hold.
    graphs: HashMap<(usize, bool), Graph>,
    bufs: Option<Activations>,
    k_cache: Vec<Buf<f16>>,
    v_cache: Vec<Buf<f16>>,
    inputs: StepInputs,
}

/// The model's weights and KV cache on one GPU, and the step that runs on them.
pub(crate) struct CudaModel {
    /// First, so that its graphs and buffers are dropped before the device's modules.
    work: Mutex<Work>,
    device: Device,
    config: LlamaConfig,
    layers: Vec<DeviceLayer>,
    output_norm: Buf<f32>,
    output: DeviceWeights,
    /// Block-table geometry; `n_seqs` is set per step from the buffers' capacity.
    max_pages: usize,
    n_pages: usize,
    pool: Arc<PagePool>,
}

impl CudaModel {
    /// Opens GPU 0, uploads `model`'s weights and allocates the KV cache in the memory left.
    pub(super) fn new(model: &Llama, ptx_cache: &Path) -> Result<Self, ModelError> {
        let c = model.config().clone();
        check_shapes(&c)?;
        let device = Device::new(0, ptx_cache)?;
        let bytes = model.file().bytes();
        let upload = |name: String, w: &Weight| -> Result<DeviceWeights, ModelError> {
            if !PRODUCT_TYPES.contains(&w.ty) {
                let supported = PRODUCT_TYPES.map(|t| t.to_string()).join(", ");
                return Err(ModelError::NoDeviceKernel {
                    name,
                    ty: w.ty,
                    supported,
                });
            }
            Ok(device.upload_weights(w.ty, w.rows, w.cols, &bytes[w.bytes.clone()])?)
        };
        let layers = model
            .layers()
            .iter()
            .enumerate()
            .map(|(i, l): (usize, &Layer)| {
                let w = |name: &str, weight| upload(format!("blk.{i}.{name}.weight"), weight);
                Ok(DeviceLayer {
                    attn_norm: device.upload(&l.attn_norm)?,
                    ffn_norm: device.upload(&l.ffn_norm)?,
                    wq: w("attn_q", &l.wq)?,
                    wk: w("attn_k", &l.wk)?,
                    wv: w("attn_v", &l.wv)?,
                    wo: w("attn_output", &l.wo)?,
                    w_gate: w("ffn_gate", &l.w_gate)?,
                    w_up: w("ffn_up", &l.w_up)?,
                    w_down: w("ffn_down", &l.w_down)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let output = upload("output.weight".into(), model.output())?;
        let output_norm = device.upload(model.output_norm())?;

        let max_pages = c.context_length.div_ceil(PAGE_SIZE);
        let page_bytes = 2 * c.n_layer * c.kv_dim() * PAGE_SIZE * size_of::<f16>();
        let (free, _) = device.memory()?;
        let fit = (free as f64 * KV_MEMORY_SHARE) as usize / page_bytes;
        let n_pages = fit.min(MAX_KV_TOKENS / PAGE_SIZE + 1);
        if n_pages < max_pages + 1 {
            return Err(ModelError::KvCacheFull {
                capacity: n_pages.saturating_sub(1) * PAGE_SIZE,
            });
        }
        let cache_len = n_pages * c.kv_dim() * PAGE_SIZE;
        let k_cache = (0..c.n_layer)
            .map(|_| device.alloc_zeros(cache_len))
            .collect::<Result<Vec<_>, _>>()?;
        let v_cache = (0..c.n_layer)
            .map(|_| device.alloc_zeros(cache_len))
            .collect::<Result<Vec<_>, _>>()?;
        let pool = PagePool::new(n_pages);
        tracing::info!(
            "backend: cuda ({}, KV cache of {} positions in {} MiB)",
            device.arch(),
            (n_pages - 1) * PAGE_SIZE,
            (n_pages * page_bytes) >> 20
        );
        Ok(CudaModel {
            device,
            config: c,
            layers,
            output_norm,
            output,
            max_pages,
            n_pages,
            pool,
            work: Mutex::new(Work {
                graphs: HashMap::new(),
                bufs: None,
                k_cache,
                v_cache,
                inputs: StepInputs::default(),
            }),
        })
    }

    /// The GPU's name.
    pub(super) fn device_name(&self) -> String {
        self.device
            .name()
            .unwrap_or_else(|e| format!("unnamed GPU ({e})"))
    }

    /// An empty page list for a new sequence.
    pub(super) fn new_pages(&self) -> DevicePages {
        DevicePages {
            pages: Vec::new(),
            pool: Arc::clone(&self.pool),
        }
    }

    /// Positions the KV cache is sure to hold for up to `sequences` sequences together (each
    /// may leave part of its last page unused).
    pub(super) fn kv_budget(&self, sequences: usize) -> usize {
        self.pool.usable.saturating_sub(sequences) * PAGE_SIZE
    }

    /// Runs one batched step. `x` holds every token's embedding row (in batch order),
    /// `logit_rows` the rows whose logits are wanted; `out` says whether they come back as
    /// logits (`n_vocab` floats each) or as a token sampled from each.
    ///
    /// The caller has checked the batch (token ids, context lengths, each cache on this
    /// backend) and commits the caches' lengths afterwards.
    pub(super) fn forward(
        &self,
        batch: &mut [SequenceStep<'_>],
        x: &[f32],
        logit_rows: &[usize],
        out: Output<'_>,
    ) -> Result<(), ModelError> {
        for seq in batch.iter_mut() {
            let needed = seq.cache.len() + seq.tokens.len();
            seq.cache
                .device_pages()
                .ok_or(ModelError::CacheBackend)?
                .reserve(needed)?;
        }
        let tokens = x.len() / self.config.n_embd;
        if tokens == 0 {
            match out {
                Output::Logits(logits) => logits.clear(),
                Output::Tokens { tokens, .. } => tokens.clear(),
            }
            return Ok(());
        }
        let decode = batch.iter().all(|s| s.tokens.len() == 1) && batch.len() <= MAX_GRAPH_BATCH;
        let in_order = logit_rows.iter().copied().eq(0..tokens);
        let draws = match &out {
            Output::Logits(_) => &[][..],
            Output::Tokens { draws, .. } => draws,
        };
        let seqs: Vec<SeqView<'_>> = batch
            .iter()
            .map(|seq| SeqView {
                cached: seq.cache.len(),
                tokens: seq.tokens.len(),
                pages: seq.cache.device_page_ids(),
            })
            .collect();
        let mut work = self.work.lock().unwrap_or_else(PoisonError::into_inner);
        let work = &mut *work;
        if decode && in_order {
            // Padded to a power of two, so that a handful of graphs serve every batch size.
            let padded = batch.len().next_power_of_two();
            work.inputs.decode(&seqs, x, padded, self.max_pages);
            work.inputs.push_draws(draws, padded);
            let plan = Plan {
                tokens: padded,
                seqs: padded,
                rows: padded,
                decode: true,
                max_seq_tokens: 1,
                gather: None,
                sample: !draws.is_empty(),
            };
            self.reserve(work, &plan)?;
            self.write_inputs(work)?;
            let key = (padded, plan.sample);
            if !work.graphs.contains_key(&key) {
                let graph = self
                    .device
                    .capture(|device| self.record(device, work, &plan))?;
                work.graphs.insert(key, graph);
            }
            // SAFETY: the graph was captured on `work`'s current buffers (`reserve` drops every
            // graph before it replaces them), and they live as long as `work` does.
            unsafe { work.graphs[&key].launch()? };
        } else {
            let max_seq_tokens = work.inputs.general(&seqs, x, self.max_pages);
            let plan = Plan {
                tokens: work.inputs.positions.len(),
                seqs: seqs.len(),
                rows: logit_rows.len(),
                decode: false,
                max_seq_tokens,
                gather: (!in_order).then(|| logit_rows.to_vec()),
                sample: !draws.is_empty(),
            };
            work.inputs.push_draws(draws, plan.rows);
            self.reserve(work, &plan)?;
            self.write_inputs(work)?;
            self.record(&self.device, work, &plan)?;
        }
        let bufs = work.bufs.as_ref().expect("reserved above");
        match out {
            Output::Logits(logits) => {
                logits.resize(logit_rows.len() * self.config.n_vocab, 0.0);
                self.read_back(&bufs.logits, logits)?;
            }
            Output::Tokens { tokens, .. } => {
                tokens.resize(logit_rows.len(), 0);
                self.read_back(&bufs.sampled, tokens)?;
            }
        }
        Ok(())
    }

    /// Waits for the step and copies the first `dst.len()` values of `src` into `dst`.
    fn read_back<T: DeviceRepr>(&self, src: &Buf<T>, dst: &mut [T]) -> Result<(), DeviceError> {
        if dst.is_empty() {
            // Nothing to read, but the step must still be complete before it counts.
            self.device.synchronize()
        } else {
            self.device.download_into(src, dst)
        }
    }

    /// Makes the activation buffers big enough for `plan`, growing them (and dropping every
    /// graph, which holds the old addresses) when they are too small.
    fn reserve(&self, work: &mut Work, plan: &Plan) -> Result<(), DeviceError> {
        let need = Capacity {
            tokens: plan.tokens,
            seqs: plan.seqs,
            rows: plan.rows,
        };
        let old = work.bufs.as_ref().map(|b| b.capacity);
        if old.is_some_and(|old| old.holds(&need)) {
            return Ok(());
        }
        let old = old.unwrap_or(Capacity {
            tokens: 0,
            seqs: 0,
            rows: 0,
        });
        let grown = Capacity {
            tokens: need.tokens.max(old.tokens).next_power_of_two(),
            seqs: need.seqs.max(old.seqs).next_power_of_two(),
            rows: need.rows.max(old.rows).max(1).next_power_of_two(),
        };
        work.graphs.clear();
        work.bufs = None;
        work.bufs = Some(self.allocate(grown)?);
        Ok(())
    }

    fn allocate(&self, capacity: Capacity) -> Result<Activations, DeviceError> {
        let c = &self.config;
        let (d, kv, ff, dev) = (c.n_embd, c.kv_dim(), c.n_ff, &self.device);
        let max_context = self.max_pages * PAGE_SIZE;
        let split_len = max_context.div_ceil(MAX_SPLITS).max(MIN_SPLIT_LEN);
        let Capacity { tokens, seqs, rows } = capacity;
        Ok(Activations {
            capacity,
            x: dev.alloc_zeros(tokens * d)?,
            act: dev.alloc_zeros(tokens * d.max(ff) / 32)?,
            head_in: dev.alloc_zeros(rows * d / 32)?,
            q: dev.alloc_zeros(tokens * d)?,
            k: dev.alloc_zeros(tokens * kv)?,
            v: dev.alloc_zeros(tokens * kv)?,
            attn: dev.alloc_zeros(tokens * d)?,
            gate: dev.alloc_zeros(tokens * ff)?,
            up: dev.alloc_zeros(tokens * ff)?,
            logits: dev.alloc_zeros(rows * c.n_vocab)?,
            draws: dev.alloc_zeros(rows)?,
            sampled: dev.alloc_zeros(rows)?,
            positions: dev.alloc_zeros(tokens)?,
            token_seq: dev.alloc_zeros(tokens)?,
            seq_start: dev.alloc_zeros(seqs + 1)?,
            seq_lens: dev.alloc_zeros(seqs)?,
            block_table: dev.alloc_zeros(seqs * self.max_pages)?,
            // Only decode steps (at most MAX_GRAPH_BATCH sequences) use the splits.
            splits: dev.decode_splits(
                seqs.min(MAX_GRAPH_BATCH) * c.n_head,
                c.head_dim,
                max_context.div_ceil(split_len),
                split_len,
            )?,
        })
    }

    /// Copies the step's inputs into the activation buffers (stream-ordered before the step).
    fn write_inputs(&self, work: &mut Work) -> Result<(), DeviceError> {
        let (dev, i) = (&self.device, &work.inputs);
        let b = work.bufs.as_mut().expect("reserved before");
        dev.write(&i.x, &mut b.x)?;
        dev.write(&i.positions, &mut b.positions)?;
        dev.write(&i.token_seq, &mut b.token_seq)?;
        dev.write(&i.seq_start, &mut b.seq_start)?;
        dev.write(&i.seq_lens, &mut b.seq_lens)?;
        dev.write(&i.block_table, &mut b.block_table)?;
        dev.write(&i.draws, &mut b.draws)
    }

    fn layout(&self, seqs: usize) -> KvLayout {
        let c = &self.config;
        KvLayout {
            n_pages: self.n_pages,
            n_kv_head: c.n_head_kv,
            page_size: PAGE_SIZE,
            head_dim: c.head_dim,
            n_seqs: seqs,
            max_pages: self.max_pages,
        }
    }

    /// Launches (or, inside a capture, records) every kernel of the step.
    fn record(&self, dev: &Device, work: &mut Work, plan: &Plan) -> Result<(), DeviceError> {
        let c = &self.config;
        let (d, kv, ff, n, eps) = (c.n_embd, c.kv_dim(), c.n_ff, plan.tokens, c.rms_eps);
        let b = work.bufs.as_mut().expect("reserved before");
        let layout = self.layout(b.capacity.seqs);
        let shape = AttentionShape {
            n_head: c.n_head,
            n_kv_head: c.n_head_kv,
            head_dim: c.head_dim,
        };
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        let rope_q = RopeShape {
            style: c.rope_style,
            n_heads: c.n_head,
            head_dim: c.head_dim,
            n_rot: c.rope_dims,
            row_stride: d,
            theta_base: c.rope_base,
        };
        let rope_k = RopeShape {
            n_heads: c.n_head_kv,
            row_stride: kv,
            ..rope_q
        };
        let caches = work.k_cache.iter_mut().zip(work.v_cache.iter_mut());
        for (l, (k_cache, v_cache)) in self.layers.iter().zip(caches) {
            dev.rmsnorm_q8(&b.x, &l.attn_norm, &mut b.act, n, eps)?;
            product(dev, &l.wq, &b.act, &mut b.q, n, false)?;
            product(dev, &l.wk, &b.act, &mut b.k, n, false)?;
            product(dev, &l.wv, &b.act, &mut b.v, n, false)?;
            dev.rope(&mut b.q, &b.positions, &rope_q, n)?;
            dev.rope(&mut b.k, &b.positions, &rope_k, n)?;
            dev.kv_append(
                &layout,
                &b.k,
                &b.v,
                kv,
                n,
                &b.positions,
                &b.token_seq,
                &b.block_table,
                k_cache,
                v_cache,
            )?;
            if plan.decode {
                let args = DecodeArgs {
                    shape,
                    n_seqs: n,
                    q_stride: d,
                    out_stride: d,
                    scale,
                };
                dev.attn_decode(
                    &args,
                    &layout,
                    &b.q,
                    k_cache,
                    v_cache,
                    &b.block_table,
                    &b.seq_lens,
                    &mut b.splits,
                    &mut b.attn,
                )?;
            } else {
                let args = PrefillArgs {
                    shape,
                    n_seqs: plan.seqs,
                    total_tokens: n,
                    max_seq_tokens: plan.max_seq_tokens,
                    q_stride: d,
                    out_stride: d,
                    scale,
                };
                dev.attn_prefill(
                    &args,
                    &layout,
                    &b.q,
                    &b.seq_start,
                    &b.positions,
                    k_cache,
                    v_cache,
                    &b.block_table,
                    &mut b.attn,
                )?;
            }
            dev.quantize_q8(&b.attn, &mut b.act, n, d)?;
            product(dev, &l.wo, &b.act, &mut b.x, n, true)?;
            dev.rmsnorm_q8(&b.x, &l.ffn_norm, &mut b.act, n, eps)?;
            product(dev, &l.w_gate, &b.act, &mut b.gate, n, false)?;
            product(dev, &l.w_up, &b.act, &mut b.up, n, false)?;
            dev.swiglu_q8(&b.gate, &b.up, ff, &mut b.act, n, ff)?;
            product(dev, &l.w_down, &b.act, &mut b.x, n, true)?;
        }
        dev.rmsnorm_q8(&b.x, &self.output_norm, &mut b.act, n, eps)?;
        match &plan.gather {
            None => product(dev, &self.output, &b.act, &mut b.logits, n, false)?,
            Some(rows) => {
                // One copy per run of consecutive rows.
                let width = d / 32;
                let mut i = 0;
                while i < rows.len() {
                    let run = 1 + rows[i + 1..]
                        .iter()
                        .zip(rows[i]..)
                        .take_while(|&(&r, prev)| r == prev + 1)
                        .count();
                    let src = b.act.slice(rows[i] * width..(rows[i] + run) * width);
                    dev.copy(&src, &mut b.head_in.slice_mut(i * width..(i + run) * width))?;
                    i += run;
                }
                product(
                    dev,
                    &self.output,
                    &b.head_in,
                    &mut b.logits,
                    rows.len(),
                    false,
                )?;
            }
        }
        if plan.sample {
            let rows = LogitRows {
                rows: plan.rows,
                vocab: c.n_vocab,
                stride: c.n_vocab,
            };
            dev.sample_tokens(&b.logits, &rows, &b.draws, &mut b.sampled)?;
        }
        Ok(())
    }
}

/// What the step's inputs need of one sequence.
struct SeqView<'a> {
    /// Positions already in its cache.
    cached: usize,
    /// Tokens it feeds in this step.
    tokens: usize,
    /// Its pages, covering `cached + tokens` positions.
    pages: &'a [i32],
}

impl StepInputs {
    /// Inputs of a decode step (one token per sequence) padded to `padded` rows: padding rows
    /// have position −1 (no RoPE, no KV append), length 1, the padding page and zero input.
    fn decode(&mut self, seqs: &[SeqView<'_>], x: &[f32], padded: usize, max_pages: usize) {
        let pad = padded - seqs.len();
        let width = x.len() / seqs.len().max(1);
        self.clear();
        for (i, seq) in seqs.iter().enumerate() {
            self.positions.push(seq.cached as i32);
            self.token_seq.push(i as i32);
            self.seq_lens.push(seq.cached as i32 + 1);
            push_block_row(seq.pages, max_pages, &mut self.block_table);
        }
        self.positions.extend(std::iter::repeat_n(-1, pad));
        self.token_seq
            .extend((seqs.len()..padded).map(|i| i as i32));
        self.seq_lens.extend(std::iter::repeat_n(1, pad));
        self.block_table
            .extend(std::iter::repeat_n(0, pad * max_pages));
        self.seq_start.extend(0..=padded as i32);
        self.x.extend_from_slice(x);
        self.x.extend(std::iter::repeat_n(0.0, pad * width));
    }

    /// Inputs of a general step (prefill chunks, mixed batches): one row per token. Returns
    /// the most tokens any sequence feeds.
    fn general(&mut self, seqs: &[SeqView<'_>], x: &[f32], max_pages: usize) -> usize {
        self.clear();
        self.seq_start.push(0);
        for (i, seq) in seqs.iter().enumerate() {
            let (start, n) = (seq.cached, seq.tokens);
            self.positions.extend((start..start + n).map(|p| p as i32));
            self.token_seq.extend(std::iter::repeat_n(i as i32, n));
            self.seq_lens.push((start + n) as i32);
            self.seq_start.push(self.positions.len() as i32);
            push_block_row(seq.pages, max_pages, &mut self.block_table);
        }
        self.x.extend_from_slice(x);
        seqs.iter().map(|s| s.tokens).max().unwrap_or(0).max(1)
    }

    /// The step's draws, padded with greedy rows to `rows` (none when it does not sample).
    fn push_draws(&mut self, draws: &[SampleRow], rows: usize) {
        if !draws.is_empty() {
            self.draws.extend_from_slice(draws);
            self.draws.resize(rows, SampleRow::default());
        }
    }

    fn clear(&mut self) {
        self.draws.clear();
        self.positions.clear();
        self.token_seq.clear();
        self.seq_start.clear();
        self.seq_lens.clear();
        self.block_table.clear();
        self.x.clear();
    }
}

/// A step of sequences feeding `lens` tokens, split into parts of at most `cap` tokens, in
/// order: each part lists (sequence, its token range in this part); whole sequences where they
/// fit, a long one in chunks across parts.
pub(super) fn device_parts(lens: &[usize], cap: usize) -> Vec<Vec<(usize, Range<usize>)>> {
    let mut parts = vec![Vec::new()];
    let mut room = cap;
    for (i, &len) in lens.iter().enumerate() {
        let mut start = 0;
        loop {
            if room == 0 && start < len {
                parts.push(Vec::new());
                room = cap;
            }
            let take = (len - start).min(room);
            parts
                .last_mut()
                .expect("never empty")
                .push((i, start..start + take));
            (room, start) = (room - take, start + take);
            if start == len {
                break;
            }
        }
    }
    parts
}

/// One block-table row: the sequence's pages, then the padding page.
fn push_block_row(pages: &[i32], max_pages: usize, table: &mut Vec<i32>) {
    table.extend_from_slice(pages);
    table.extend(std::iter::repeat_n(0, max_pages - pages.len()));
}

/// Refuses shapes the kernels do not support, before anything is uploaded.
fn check_shapes(c: &LlamaConfig) -> Result<(), ModelError> {
    let unsupported = |what: String| Err(ModelError::NoDeviceShape(what));
    if !ATTN_HEAD_DIMS.contains(&c.head_dim) {
        return unsupported(format!(
            "head size {} (not one of {ATTN_HEAD_DIMS:?})",
            c.head_dim
        ));
    }
    if c.n_head_kv == 0
        || !c.n_head.is_multiple_of(c.n_head_kv)
        || c.n_head / c.n_head_kv > ATTN_MAX_GROUP
    {
        return unsupported(format!(
            "{} query heads over {} KV heads (groups of at most {ATTN_MAX_GROUP})",
            c.n_head, c.n_head_kv
        ));
    }
    if !c.n_embd.is_multiple_of(32) || !c.n_ff.is_multiple_of(32) {
        return unsupported(format!(
            "widths {} and {} (both must be multiples of 32)",
            c.n_embd, c.n_ff
        ));
    }
    if c.rope_dims > 512 {
        return unsupported(format!("{} rotary dimensions (at most 512)", c.rope_dims));
    }
    Ok(())
}

/// `y (+)= W · x` for `n` activation rows: the one-column kernel for a single row (it keeps
/// more of the GPU busy on a single stream), the many-column one otherwise.
fn product(
    dev: &Device,
    w: &DeviceWeights,
    x: &Buf<Q8Block>,
    y: &mut Buf<f32>,
    n: usize,
    accumulate: bool,
) -> Result<(), DeviceError> {
    if n == 1 {
        dev.matvec(w, x, y, n, accumulate)
    } else {
        dev.matmul(w, x, y, n, accumulate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages(pool: &Arc<PagePool>) -> DevicePages {
        DevicePages {
            pages: Vec::new(),
            pool: Arc::clone(pool),
        }
    }

    #[test]
    fn pages_come_from_the_pool_and_go_back_on_truncate_and_drop() {
        let pool = PagePool::new(5); // pages 1..=4 usable, 0 kept back
        let mut a = pages(&pool);
        a.reserve(17).unwrap(); // 2 pages
        assert_eq!(a.ids(), [1, 2]);
        a.reserve(32).unwrap(); // still 2
        assert_eq!(a.ids().len(), 2);
        let mut b = pages(&pool);
        b.reserve(20).unwrap();
        assert!(!b.ids().contains(&0) && !b.ids().iter().any(|p| a.ids().contains(p)));
        // Exhausted: a clear error, and nothing taken.
        let mut c = pages(&pool);
        let err = c.reserve(1).unwrap_err();
        assert!(
            matches!(err, ModelError::KvCacheFull { capacity: 64 }),
            "{err:?}"
        );
        assert!(c.ids().is_empty());
        a.truncate(16);
        assert_eq!(a.ids(), [1]);
        drop(b);
        c.reserve(48).unwrap();
        assert_eq!(c.ids().len(), 3);
        assert_eq!(pool.free().len(), 0);
        drop((a, c));
        assert_eq!(pool.free().len(), 4);
    }

    #[test]
    fn decode_inputs_pad_to_rows_that_touch_nothing() {
        let seqs = [
            SeqView {
                cached: 5,
                tokens: 1,
                pages: &[3],
            },
            SeqView {
                cached: 16,
                tokens: 1,
                pages: &[1, 2],
            },
            SeqView {
                cached: 0,
                tokens: 1,
                pages: &[4],
            },
        ];
        let x: Vec<f32> = (0..6).map(|i| i as f32 + 1.0).collect(); // width 2
        let mut inputs = StepInputs::default();
        inputs.decode(&seqs, &x, 4, 3);
        assert_eq!(inputs.positions, [5, 16, 0, -1]);
        assert_eq!(inputs.seq_lens, [6, 17, 1, 1]);
        assert_eq!(inputs.token_seq, [0, 1, 2, 3]);
        assert_eq!(inputs.block_table, [3, 0, 0, 1, 2, 0, 4, 0, 0, 0, 0, 0]);
        assert_eq!(inputs.x, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0, 0.0]);
        inputs.push_draws(&[SampleRow::default(); 3], 4);
        assert_eq!(inputs.draws.len(), 4);
    }

    #[test]
    fn general_inputs_lay_out_every_token_of_every_sequence() {
        let seqs = [
            SeqView {
                cached: 0,
                tokens: 3,
                pages: &[1],
            },
            // Feeds nothing this step (wants no logits).
            SeqView {
                cached: 7,
                tokens: 0,
                pages: &[2],
            },
            SeqView {
                cached: 15,
                tokens: 2,
                pages: &[3, 4],
            },
        ];
        let mut inputs = StepInputs::default();
        let longest = inputs.general(&seqs, &[0.0; 10], 2);
        assert_eq!(longest, 3);
        assert_eq!(inputs.positions, [0, 1, 2, 15, 16]);
        assert_eq!(inputs.token_seq, [0, 0, 0, 2, 2]);
        assert_eq!(inputs.seq_start, [0, 3, 3, 5]);
        assert_eq!(inputs.seq_lens, [3, 7, 17]);
        assert_eq!(inputs.block_table, [1, 0, 2, 0, 3, 4]);
        inputs.push_draws(&[], 5);
        assert!(inputs.draws.is_empty());
    }

    #[test]
    fn long_steps_are_split_in_order_without_losing_a_token() {
        assert_eq!(
            device_parts(&[3, 0, 2], 8),
            [vec![(0, 0..3), (1, 0..0), (2, 0..2)]]
        );
        let parts = device_parts(&[5, 12, 1, 0], 6);
        assert_eq!(
            parts,
            [
                vec![(0, 0..5), (1, 0..1)],
                vec![(1, 1..7)],
                vec![(1, 7..12), (2, 0..1), (3, 0..0)],
            ]
        );
        // Every part within the cap, every token once, in order.
        let lens = [7usize, 30, 1, 16, 2];
        let parts = device_parts(&lens, 16);
        for part in &parts {
            assert!(part.iter().map(|(_, r)| r.len()).sum::<usize>() <= 16);
        }
        for (i, &len) in lens.iter().enumerate() {
            let ranges: Vec<_> = parts.iter().flatten().filter(|(j, _)| *j == i).collect();
            assert_eq!(ranges.first().unwrap().1.start, 0);
            assert_eq!(ranges.last().unwrap().1.end, len);
            assert!(ranges.windows(2).all(|w| w[0].1.end == w[1].1.start));
        }
    }

    #[test]
    fn shapes_without_kernels_are_refused_before_any_upload() {
        let smollm = LlamaConfig {
            architecture: "llama".into(),
            n_embd: 576,
            n_layer: 30,
            n_head: 9,
            n_head_kv: 3,
            head_dim: 64,
            n_ff: 1536,
            n_vocab: 49152,
            context_length: 8192,
            rope_dims: 64,
            rope_base: 100_000.0,
            rope_style: textnlp_kernels::cpu::rope::RopeStyle::Interleaved,
            rms_eps: 1e-5,
        };
        check_shapes(&smollm).unwrap();
        let refused = |c: LlamaConfig, says: &str| {
            let err = check_shapes(&c).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        };
        refused(
            LlamaConfig {
                head_dim: 80,
                ..smollm.clone()
            },
            "head size 80",
        );
        refused(
            LlamaConfig {
                n_head: 18,
                n_head_kv: 1,
                ..smollm.clone()
            },
            "groups of at most 8",
        );
        refused(
            LlamaConfig {
                n_ff: 1540,
                ..smollm.clone()
            },
            "multiples of 32",
        );
    }
}
