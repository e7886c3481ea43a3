//! One GPU: a CUDA context, one compute stream, every kernel module loaded, and a checked
//! launch method per kernel.
//!
//! Each launch method checks what the host can see before launching — buffer lengths against
//! the shapes, `int` ranges, grid limits, the head sizes, GQA group sizes and alignments the
//! kernels require (`kernels/cuda/README.md`), and that every buffer belongs to this device's
//! context — and returns [`DeviceError::Invalid`] instead of launching. What it cannot see is
//! the *contents* of index buffers in device memory (positions, block tables, sequence lengths
//! and starts, token-to-sequence maps): those stay in device memory so that a captured
//! [`Graph`] can be replayed with new values, and the caller keeps them in range (each method
//! says how).
//!
//! Buffers are cudarc slices; a method takes any [`DevicePtr`] (a `CudaSlice` or a view into
//! one) so that, e.g., the K part of a fused QKV output is passed as `qkv.slice(off..)`.
//! Lengths are "at least": buffers sized for the largest batch can serve every smaller one,
//! which is what fixed-shape graphs need.
//!
//! Event tracking is disabled (one stream does all the work, so there is nothing to order, and
//! cudarc's per-launch events would break graph capture); work is ordered by the stream alone.

use super::abi::{
    ATTN_HEAD_DIMS, ATTN_MAX_GROUP, MATMUL_COLS, MATMUL_ROWS_PER_BLOCK, PREFILL_ROWS, Q8Block,
    SAMPLE_THREADS, SampleRow,
};
use super::{CompileError, Compiler, Kernel, Unavailable, probe};
use crate::cpu::attention::AttentionShape;
use crate::cpu::matmul::{QMatrix, ShapeError};
use crate::cpu::rope::RopeStyle;
use crate::quant::TensorType;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaGraph, CudaSlice, CudaStream, DevicePtr, DevicePtrMut,
    DeviceRepr, DeviceSlice, DriverError, LaunchConfig, PushKernelArg, ValidAsZeroBits, sys,
};
use half::f16;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Why a device could not be opened or a launch was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    #[error("no CUDA device {ordinal}: {reason}")]
    NoDevice { ordinal: usize, reason: String },
    #[error("CUDA driver error: {0}")]
    Driver(#[from] DriverError),
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Shape(#[from] ShapeError),
    #[error("{kernel}: {message}")]
    Invalid {
        kernel: &'static str,
        message: String,
    },
    #[error("the capture recorded no work")]
    EmptyGraph,
}

type Result<T> = std::result::Result<T, DeviceError>;

fn invalid(kernel: &'static str, message: impl Into<String>) -> DeviceError {
    DeviceError::Invalid {
        kernel,
        message: message.into(),
    }
}

/// The weight types the quantized products have kernels for.
pub const PRODUCT_TYPES: [TensorType; 8] = [
    TensorType::Q4_0,
    TensorType::Q4_1,
    TensorType::Q5_0,
    TensorType::Q5_1,
    TensorType::Q8_0,
    TensorType::Q4_K,
    TensorType::Q5_K,
    TensorType::Q6_K,
];

/// The (matvec, matmul) kernels for weights of type `ty`.
fn product_kernels(caller: &'static str, ty: TensorType) -> Result<(&'static str, &'static str)> {
    Ok(match ty {
        TensorType::Q4_0 => ("matvec_q4_0", "matmul_q4_0"),
        TensorType::Q4_1 => ("matvec_q4_1", "matmul_q4_1"),
        TensorType::Q5_0 => ("matvec_q5_0", "matmul_q5_0"),
        TensorType::Q5_1 => ("matvec_q5_1", "matmul_q5_1"),
        TensorType::Q8_0 => ("matvec_q8_0", "matmul_q8_0"),
        TensorType::Q4_K => ("matvec_q4_k", "matmul_q4_k"),
        TensorType::Q5_K => ("matvec_q5_k", "matmul_q5_k"),
        TensorType::Q6_K => ("matvec_q6_k", "matmul_q6_k"),
        other => return Err(invalid(caller, format!("no kernel for {other} weights"))),
    })
}

/// A GGUF weight matrix in device memory: the file's bytes of one tensor, `rows` rows of `cols`
/// elements, in one allocation of its own (so 4-byte aligned, as the products require).
pub struct DeviceWeights {
    ty: TensorType,
    rows: usize,
    cols: usize,
    data: CudaSlice<u8>,
}

impl DeviceWeights {
    pub fn ty(&self) -> TensorType {
        self.ty
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn bytes(&self) -> &CudaSlice<u8> {
        &self.data
    }
}

/// Geometry of a paged f16 KV cache (one layer: a K and a V buffer of
/// `n_pages · n_kv_head · page_size · head_dim` values, `[page][kv_head][slot][head_dim]`) and
/// of the block table that maps sequence positions to pages (`n_seqs` rows of `max_pages`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvLayout {
    pub n_pages: usize,
    pub n_kv_head: usize,
    pub page_size: usize,
    pub head_dim: usize,
    /// Rows of the block table (sequences a batch can hold).
    pub n_seqs: usize,
    /// Pages per sequence: the block table's row length.
    pub max_pages: usize,
}

impl KvLayout {
    /// Values in each of the K and V buffers.
    pub fn cache_len(&self) -> usize {
        self.n_pages * self.n_kv_head * self.page_size * self.head_dim
    }

    /// The longest context a sequence can have.
    pub fn max_context(&self) -> usize {
        self.max_pages * self.page_size
    }

    fn check(&self, kernel: &'static str) -> Result<()> {
        for (name, v) in [
            ("n_pages", self.n_pages),
            ("n_kv_head", self.n_kv_head),
            ("page_size", self.page_size),
            ("head_dim", self.head_dim),
            ("max_pages", self.max_pages),
        ] {
            if v == 0 {
                return Err(invalid(kernel, format!("KV layout: {name} is 0")));
            }
        }
        // Positions and sequence lengths are `int` in the kernels.
        int(kernel, "max context", self.max_context())?;
        Ok(())
    }
}

/// Rotary embedding of `n_heads` heads of `head_dim` per token row, rows `row_stride` apart.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeShape {
    pub style: RopeStyle,
    pub n_heads: usize,
    pub head_dim: usize,
    pub n_rot: usize,
    pub row_stride: usize,
    pub theta_base: f32,
}

/// `rows` rows of logits, `vocab` values each, rows `stride` values apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogitRows {
    pub rows: usize,
    pub vocab: usize,
    pub stride: usize,
}

/// Decode attention for one new token of each of `n_seqs` sequences.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodeArgs {
    pub shape: AttentionShape,
    pub n_seqs: usize,
    /// Distance between two sequences' query rows (and output rows: `out_stride`), in floats.
    pub q_stride: usize,
    pub out_stride: usize,
    pub scale: f32,
}

/// Prefill attention for `total_tokens` query tokens of `n_seqs` sequences.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrefillArgs {
    pub shape: AttentionShape,
    pub n_seqs: usize,
    pub total_tokens: usize,
    /// An upper bound of any sequence's token count in `seq_start` (sizes the grid).
    pub max_seq_tokens: usize,
    pub q_stride: usize,
    pub out_stride: usize,
    pub scale: f32,
}

/// Scratch of split-K decode attention: each (sequence, query head, split)'s unnormalised
/// partial output and its `(m, l)`, merged by `attn_decode_combine`.
pub struct DecodeSplits {
    n_splits: usize,
    split_len: usize,
    max_rows: usize,
    head_dim: usize,
    part_o: CudaSlice<f32>,
    part_ml: CudaSlice<[f32; 2]>,
}

impl DecodeSplits {
    pub fn n_splits(&self) -> usize {
        self.n_splits
    }
    pub fn split_len(&self) -> usize {
        self.split_len
    }
}

/// A captured sequence of launches, replayed with [`Graph::launch`].
pub struct Graph {
    graph: CudaGraph,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph").finish_non_exhaustive()
    }
}

// SAFETY: a CUDA graph and its executable are driver handles usable from any thread whose
// context is current (`CudaGraph::launch` binds it first); `Graph` owns them exclusively and
// takes `&self` only to launch, so moving it to another thread (e.g. the engine's) is sound.
// It is not `Sync`: callers serialise launches, as they must for the buffers it writes.
unsafe impl Send for Graph {}

impl Graph {
    /// Replays the captured launches on the device's stream, with the kernel arguments of the
    /// capture: the same buffers, whose current contents (per-step scalars written with
    /// [`Device::write`] just before) the kernels read.
    ///
    /// # Safety
    /// Every buffer used by the captured launches must still be allocated: the graph holds raw
    /// device pointers, and a freed (or reused) buffer would be read and written anyway.
    pub unsafe fn launch(&self) -> Result<()> {
        Ok(self.graph.launch()?)
    }
}

/// A kernel argument, kept alive in a slice until the launch has read it.
enum Arg {
    Ptr(u64),
    Int(i32),
    Float(f32),
}

/// A size passed to a kernel as `int`.
fn int(kernel: &'static str, name: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| invalid(kernel, format!("{name} = {v} exceeds i32::MAX")))
}

/// `count` rows of `width` elements, `stride` apart: the elements a buffer must hold.
fn span(count: usize, stride: usize, width: usize) -> usize {
    if count == 0 {
        0
    } else {
        (count - 1) * stride + width
    }
}

fn need(kernel: &'static str, name: &str, have: usize, want: usize) -> Result<()> {
    if have < want {
        return Err(invalid(
            kernel,
            format!("{name} holds {have} elements, needs at least {want}"),
        ));
    }
    Ok(())
}

fn ensure(kernel: &'static str, ok: bool, message: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(invalid(kernel, message()))
    }
}

/// The GQA group of `shape`, checked against what the attention kernels support.
fn attention_group(kernel: &'static str, shape: &AttentionShape) -> Result<usize> {
    ensure(kernel, ATTN_HEAD_DIMS.contains(&shape.head_dim), || {
        format!(
            "head_dim {} is not one of {ATTN_HEAD_DIMS:?}",
            shape.head_dim
        )
    })?;
    ensure(
        kernel,
        shape.n_kv_head > 0 && shape.n_head.is_multiple_of(shape.n_kv_head),
        || {
            format!(
                "n_head {} is not a multiple of n_kv_head {}",
                shape.n_head, shape.n_kv_head
            )
        },
    )?;
    let group = shape.group();
    ensure(kernel, (1..=ATTN_MAX_GROUP).contains(&group), || {
        format!("GQA group {group} is not in 1..={ATTN_MAX_GROUP}")
    })?;
    Ok(group)
}

/// The checks both attention launches share: the kernel for the head size (`names` for 64 and
/// 128), the GQA group, the KV layout against the shape, the batch (`n_seqs`, `out_stride`)
/// against the block table and the heads, and the K cache, V cache and block table lengths.
/// Returns the kernel's name, the group and the width of a token's heads.
fn check_attention(
    names: [&'static str; 2],
    shape: &AttentionShape,
    layout: &KvLayout,
    (n_seqs, out_stride): (usize, usize),
    [k_cache, v_cache, block_table]: [usize; 3],
) -> Result<(&'static str, usize, usize)> {
    let name = if shape.head_dim == 64 {
        names[0]
    } else {
        names[1]
    };
    let group = attention_group(name, shape)?;
    layout.check(name)?;
    let width = shape.n_head * shape.head_dim;
    ensure(
        name,
        layout.n_kv_head == shape.n_kv_head && layout.head_dim == shape.head_dim,
        || "the KV layout's heads differ from the attention shape's".into(),
    )?;
    ensure(name, n_seqs <= layout.n_seqs, || {
        format!("{n_seqs} sequences, block table has {}", layout.n_seqs)
    })?;
    ensure(name, out_stride >= width, || {
        format!("out_stride {out_stride} < n_head·head_dim {width}")
    })?;
    need(name, "k_cache", k_cache, layout.cache_len())?;
    need(name, "v_cache", v_cache, layout.cache_len())?;
    need(
        name,
        "block_table",
        block_table,
        layout.n_seqs * layout.max_pages,
    )?;
    Ok((name, group, width))
}

/// One GPU with every kernel loaded, and one stream that all work goes to.
pub struct Device {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: String,
    functions: HashMap<&'static str, CudaFunction>,
}

impl Device {
    /// Opens GPU `ordinal` and loads every kernel compiled for its compute capability, with the
    /// PTX cached under `ptx_cache`. Fails cleanly (no panic) where the CUDA libraries or the
    /// device are missing.
    pub fn new(ordinal: usize, ptx_cache: &Path) -> Result<Self> {
        probe()?;
        let no_device = |reason: String| DeviceError::NoDevice { ordinal, reason };
        let count = CudaContext::device_count().map_err(|e| no_device(e.to_string()))?;
        if usize::try_from(count).is_ok_and(|n| ordinal >= n) {
            return Err(no_device(format!("{count} device(s) present")));
        }
        let ctx = CudaContext::new(ordinal)?;
        // SAFETY: nothing has been allocated in this context through this handle yet; all work
        // goes to the one stream below, so cudarc's cross-stream events are not needed.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream()?;
        let (major, minor) = ctx.compute_capability()?;
        let arch = format!("compute_{major}{minor}");
        let compiler = Compiler::new().with_cache_dir(ptx_cache);
        let mut functions = HashMap::new();
        for kernel in Kernel::ALL {
            let module = ctx.load_module(compiler.compile(kernel, &arch)?.into())?;
            for &name in kernel.entry_points() {
                functions.insert(name, module.load_function(name)?);
            }
        }
        Ok(Device {
            ctx,
            stream,
            arch,
            functions,
        })
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The stream every launch, copy and capture of this device uses.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The GPU's name, e.g. `NVIDIA H100 80GB HBM3`.
    pub fn name(&self) -> Result<String> {
        Ok(self.ctx.name()?)
    }

    /// The NVRTC target the kernels were compiled for, e.g. `compute_90`.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// Waits for all work queued so far.
    pub fn synchronize(&self) -> Result<()> {
        Ok(self.stream.synchronize()?)
    }

    // ------------------------------------------------------------------------------------------
    // Memory

    /// A zeroed buffer of `len` elements.
    pub fn alloc_zeros<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<CudaSlice<T>> {
        Ok(self.stream.alloc_zeros(len)?)
    }

    /// A new buffer holding `data` (f32 activations, f16 caches, index arrays, [`SampleRow`]s).
    pub fn upload<T: DeviceRepr>(&self, data: &[T]) -> Result<CudaSlice<T>> {
        Ok(self.stream.clone_htod(data)?)
    }

    /// A new f16 buffer holding `data` rounded to nearest even (as the CPU's f16 caches).
    pub fn upload_f16(&self, data: &[f32]) -> Result<CudaSlice<f16>> {
        let halves: Vec<f16> = data.iter().map(|&v| f16::from_f32(v)).collect();
        self.upload(&halves)
    }

    /// Uploads one GGUF tensor's bytes as they are in the file (one copy), after checking that
    /// they hold exactly `rows` rows of `cols` elements of `ty`.
    pub fn upload_weights(
        &self,
        ty: TensorType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<DeviceWeights> {
        QMatrix::new(ty, bytes, rows, cols)?;
        let data = self.stream.clone_htod(bytes)?;
        let (ptr, _) = data.device_ptr(&self.stream);
        // cuMemAlloc aligns to at least 256 bytes; checked because the products read words.
        ensure("upload_weights", ptr.is_multiple_of(4), || {
            format!("allocation at {ptr:#x} is not 4-byte aligned")
        })?;
        Ok(DeviceWeights {
            ty,
            rows,
            cols,
            data,
        })
    }

    /// Copies `src` into the start of `dst` (stream-ordered: launches queued before see the old
    /// contents, launches and graph replays queued after see the new ones). This is how
    /// per-step scalars reach a [`Graph`].
    pub fn write<T: DeviceRepr>(&self, src: &[T], dst: &mut impl DevicePtrMut<T>) -> Result<()> {
        self.owned("write", dst)?;
        need("write", "destination", dst.len(), src.len())?;
        Ok(self.stream.memcpy_htod(src, dst)?)
    }

    /// The contents of `src` (waits for the work queued before).
    pub fn download<T: DeviceRepr>(&self, src: &impl DevicePtr<T>) -> Result<Vec<T>> {
        self.owned("download", src)?;
        Ok(self.stream.clone_dtoh(src)?)
    }

    /// Copies `src` into the start of `dst` (stream-ordered, on the device, and allowed inside
    /// a capture), e.g. to gather rows.
    pub fn copy<T>(&self, src: &impl DevicePtr<T>, dst: &mut impl DevicePtrMut<T>) -> Result<()> {
        self.owned("copy", src)?;
        self.owned("copy", dst)?;
        need("copy", "destination", dst.len(), src.len())?;
        Ok(self.stream.memcpy_dtod(src, dst)?)
    }

    /// Fills `dst` with the first `dst.len()` elements of `src`, waiting for the work queued
    /// before (so a step's results can be read into buffers that are kept between steps).
    pub fn download_into<T: DeviceRepr>(&self, src: &CudaSlice<T>, dst: &mut [T]) -> Result<()> {
        self.owned("download_into", src)?;
        need("download_into", "source", src.len(), dst.len())?;
        let src = src.slice(..dst.len());
        self.stream.memcpy_dtoh(&src, dst)?;
        self.synchronize()
    }

    /// Free and total device memory, in bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        Ok(self.ctx.mem_get_info()?)
    }

    /// Scratch for [`Device::attn_decode`]: `max_rows` (sequences × query heads) rows of
    /// `n_splits` splits of `split_len` positions.
    pub fn decode_splits(
        &self,
        max_rows: usize,
        head_dim: usize,
        n_splits: usize,
        split_len: usize,
    ) -> Result<DecodeSplits> {
        const K: &str = "decode_splits";
        ensure(K, n_splits > 0 && split_len > 0, || {
            "n_splits and split_len must be positive".into()
        })?;
        int(K, "split_len", split_len)?;
        int(K, "n_splits", n_splits)?;
        let parts = max_rows
            .checked_mul(n_splits)
            .ok_or_else(|| invalid(K, "size overflows"))?;
        Ok(DecodeSplits {
            n_splits,
            split_len,
            max_rows,
            head_dim,
            part_o: self.alloc_zeros(parts * head_dim)?,
            part_ml: self.alloc_zeros(parts)?,
        })
    }

    // ------------------------------------------------------------------------------------------
    // Graphs

    /// Records the launches `record` makes on this device into a graph instead of running
    /// them. Per-step values must be read by the kernels from device buffers (they all take
    /// positions, lengths and sampler steps that way); before each [`Graph::launch`], write the
    /// new values into those buffers with [`Device::write`]. Shapes are fixed at capture time,
    /// so capture with the largest batch the buffers are sized for (splits and blocks past the
    /// live data exit early). `record` must only launch: no allocation, copy or download.
    pub fn capture(&self, record: impl FnOnce(&Self) -> Result<()>) -> Result<Graph> {
        self.stream
            .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)?;
        let recorded = record(self);
        // The capture is always ended, so that the stream is usable again after an error.
        let ended = self.stream.end_capture(sys::CUgraphInstantiate_flags(0));
        recorded?;
        let graph = ended?.ok_or(DeviceError::EmptyGraph)?;
        graph.upload()?;
        Ok(Graph { graph })
    }

    // ------------------------------------------------------------------------------------------
    // Launch plumbing

    /// Refuses a buffer of another context (its pointer would be meaningless here).
    fn owned<T>(&self, kernel: &'static str, buf: &impl DeviceSlice<T>) -> Result<()> {
        ensure(kernel, **buf.stream().context() == *self.ctx, || {
            "buffer belongs to another CUDA context".into()
        })
    }

    fn ptr<T>(&self, kernel: &'static str, buf: &impl DevicePtr<T>) -> Result<Arg> {
        self.owned(kernel, buf)?;
        // The guard only records events, which are disabled on this context.
        let (ptr, _) = buf.device_ptr(&self.stream);
        Ok(Arg::Ptr(ptr))
    }

    fn ptr_mut<T>(&self, kernel: &'static str, buf: &mut impl DevicePtrMut<T>) -> Result<Arg> {
        self.owned(kernel, buf)?;
        let (ptr, _) = buf.device_ptr_mut(&self.stream);
        Ok(Arg::Ptr(ptr))
    }

    /// Launches `name` with `args`, which the caller has checked and lists in the order and
    /// with the types of the kernel's parameters. An empty grid launches nothing.
    fn launch(
        &self,
        name: &'static str,
        grid: (usize, usize, usize),
        block: usize,
        args: &[Arg],
    ) -> Result<()> {
        if grid.0 == 0 || grid.1 == 0 || grid.2 == 0 {
            return Ok(());
        }
        let dim = |v: usize, max: u32, axis: &str| {
            u32::try_from(v)
                .ok()
                .filter(|&v| v <= max)
                .ok_or_else(|| invalid(name, format!("grid {axis} = {v} exceeds {max}")))
        };
        let cfg = LaunchConfig {
            grid_dim: (
                dim(grid.0, i32::MAX as u32, "x")?,
                dim(grid.1, 65535, "y")?,
                dim(grid.2, 65535, "z")?,
            ),
            block_dim: (block as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let function = &self.functions[name];
        let mut builder = self.stream.launch_builder(function);
        for arg in args {
            match arg {
                Arg::Ptr(p) => builder.arg(p),
                Arg::Int(i) => builder.arg(i),
                Arg::Float(f) => builder.arg(f),
            };
        }
        // SAFETY: every wrapper passes the kernel's parameters in order with their C types
        // (pointers as u64, int as i32, float as f32), after checking that each buffer holds
        // every element the launch geometry makes the kernel touch.
        unsafe { builder.launch(cfg) }?;
        Ok(())
    }

    // ------------------------------------------------------------------------------------------
    // Kernels

    /// `rmsnorm_f32`: RMSNorm of `rows` rows of `weight.len()` values of `x` into `out`.
    pub fn rmsnorm_f32(
        &self,
        x: &impl DevicePtr<f32>,
        weight: &impl DevicePtr<f32>,
        out: &mut impl DevicePtrMut<f32>,
        rows: usize,
        eps: f32,
    ) -> Result<()> {
        const K: &str = "rmsnorm_f32";
        let dim = weight.len();
        ensure(K, dim > 0, || "empty weight".into())?;
        need(K, "x", x.len(), rows * dim)?;
        need(K, "out", out.len(), rows * dim)?;
        let args = [
            self.ptr(K, x)?,
            self.ptr(K, weight)?,
            self.ptr_mut(K, out)?,
            Arg::Int(int(K, "dim", dim)?),
            Arg::Float(eps),
        ];
        self.launch(K, (rows, 1, 1), 256, &args)
    }

    /// `rmsnorm_q8`: RMSNorm written as the Q8 activation blocks of the next product
    /// (`weight.len()` a multiple of 32; `out` holds `rows · dim/32` blocks).
    pub fn rmsnorm_q8(
        &self,
        x: &impl DevicePtr<f32>,
        weight: &impl DevicePtr<f32>,
        out: &mut impl DevicePtrMut<Q8Block>,
        rows: usize,
        eps: f32,
    ) -> Result<()> {
        const K: &str = "rmsnorm_q8";
        let dim = weight.len();
        ensure(K, dim > 0 && dim.is_multiple_of(32), || {
            format!("dim {dim} is not a positive multiple of 32")
        })?;
        need(K, "x", x.len(), rows * dim)?;
        need(K, "out", out.len(), rows * dim / 32)?;
        let args = [
            self.ptr(K, x)?,
            self.ptr(K, weight)?,
            self.ptr_mut(K, out)?,
            Arg::Int(int(K, "dim", dim)?),
            Arg::Float(eps),
        ];
        self.launch(K, (rows, 1, 1), 256, &args)
    }

    /// `rope_f32`: rotates, in place, the heads of `tokens` rows of `x` by each token's position
    /// `positions[t]` (negative: padding, left as is).
    pub fn rope(
        &self,
        x: &mut impl DevicePtrMut<f32>,
        positions: &impl DevicePtr<i32>,
        shape: &RopeShape,
        tokens: usize,
    ) -> Result<()> {
        const K: &str = "rope_f32";
        let RopeShape {
            n_heads,
            head_dim,
            n_rot,
            row_stride,
            ..
        } = *shape;
        ensure(
            K,
            n_rot.is_multiple_of(2) && n_rot <= head_dim && n_rot <= 512,
            || format!("n_rot {n_rot} must be even, ≤ head_dim {head_dim} and ≤ 512"),
        )?;
        // Rows must not overlap: the kernel's blocks write them concurrently.
        ensure(K, row_stride >= n_heads * head_dim, || {
            format!(
                "row_stride {row_stride} < n_heads·head_dim {}",
                n_heads * head_dim
            )
        })?;
        need(
            K,
            "x",
            x.len(),
            span(tokens, row_stride, n_heads * head_dim),
        )?;
        need(K, "positions", positions.len(), tokens)?;
        let args = [
            self.ptr_mut(K, x)?,
            self.ptr(K, positions)?,
            Arg::Int(int(K, "n_heads", n_heads)?),
            Arg::Int(int(K, "head_dim", head_dim)?),
            Arg::Int(int(K, "n_rot", n_rot)?),
            Arg::Int(int(K, "row_stride", row_stride)?),
            Arg::Float(shape.theta_base),
            Arg::Int(i32::from(shape.style == RopeStyle::Neox)),
        ];
        self.launch(K, (tokens, 1, 1), 128, &args)
    }

    /// `quantize_q8`: `n` rows of `cols` f32 (a multiple of 32) into `n · cols/32` Q8 blocks.
    pub fn quantize_q8(
        &self,
        x: &impl DevicePtr<f32>,
        out: &mut impl DevicePtrMut<Q8Block>,
        n: usize,
        cols: usize,
    ) -> Result<()> {
        const K: &str = "quantize_q8";
        ensure(K, cols.is_multiple_of(32), || {
            format!("cols {cols} is not a multiple of 32")
        })?;
        need(K, "x", x.len(), n * cols)?;
        need(K, "out", out.len(), n * cols / 32)?;
        let args = [
            self.ptr(K, x)?,
            self.ptr_mut(K, out)?,
            Arg::Int(int(K, "cols", cols)?),
        ];
        self.launch(K, (cols.div_ceil(256), n, 1), 256, &args)
    }

    /// `matvec_*`: `y[j·rows + r] (+)= W[r]·x[j]` for `n` activation columns, one column per
    /// block (the decode shape). `x` holds `n · cols/32` Q8 blocks, `y` `n · rows` floats;
    /// `accumulate` adds into `y` (a residual) instead of overwriting it.
    pub fn matvec(
        &self,
        w: &DeviceWeights,
        x: &impl DevicePtr<Q8Block>,
        y: &mut impl DevicePtrMut<f32>,
        n: usize,
        accumulate: bool,
    ) -> Result<()> {
        let (name, _) = product_kernels("matvec", w.ty)?;
        self.product(name, 1, w, x, y, n, accumulate)
    }

    /// `matmul_*`: [`Device::matvec`] with `MATMUL_COLS` columns per block, reusing each decoded
    /// weight group for all of them (prefill and batched decode).
    pub fn matmul(
        &self,
        w: &DeviceWeights,
        x: &impl DevicePtr<Q8Block>,
        y: &mut impl DevicePtrMut<f32>,
        n: usize,
        accumulate: bool,
    ) -> Result<()> {
        let (_, name) = product_kernels("matmul", w.ty)?;
        self.product(name, MATMUL_COLS, w, x, y, n, accumulate)
    }

    #[allow(clippy::too_many_arguments)]
    fn product(
        &self,
        name: &'static str,
        cols_per_block: usize,
        w: &DeviceWeights,
        x: &impl DevicePtr<Q8Block>,
        y: &mut impl DevicePtrMut<f32>,
        n: usize,
        accumulate: bool,
    ) -> Result<()> {
        // Whole blocks per row and the byte count were checked by upload_weights.
        need(name, "x", x.len(), n * w.cols / 32)?;
        need(name, "y", y.len(), n * w.rows)?;
        let args = [
            self.ptr(name, &w.data)?,
            self.ptr(name, x)?,
            self.ptr_mut(name, y)?,
            Arg::Int(int(name, "rows", w.rows)?),
            Arg::Int(int(name, "cols", w.cols)?),
            Arg::Int(int(name, "n", n)?),
            Arg::Int(i32::from(accumulate)),
        ];
        let grid = (
            w.rows.div_ceil(MATMUL_ROWS_PER_BLOCK),
            n.div_ceil(cols_per_block),
            1,
        );
        self.launch(name, grid, 32 * MATMUL_ROWS_PER_BLOCK, &args)
    }

    /// `swiglu_f32`: `out = silu(gate)·up` for `tokens` rows of `n_ff`; the inputs' rows are
    /// `in_stride` apart (with fused gate‖up rows pass `up = buf.slice(n_ff..)` and
    /// `in_stride = 2·n_ff`), the output's `out_stride`.
    #[allow(clippy::too_many_arguments)]
    pub fn swiglu_f32(
        &self,
        gate: &impl DevicePtr<f32>,
        up: &impl DevicePtr<f32>,
        in_stride: usize,
        out: &mut impl DevicePtrMut<f32>,
        out_stride: usize,
        tokens: usize,
        n_ff: usize,
    ) -> Result<()> {
        const K: &str = "swiglu_f32";
        ensure(K, out_stride >= n_ff, || {
            format!("out_stride {out_stride} < n_ff {n_ff}")
        })?;
        need(K, "gate", gate.len(), span(tokens, in_stride, n_ff))?;
        need(K, "up", up.len(), span(tokens, in_stride, n_ff))?;
        need(K, "out", out.len(), span(tokens, out_stride, n_ff))?;
        let args = [
            self.ptr(K, gate)?,
            self.ptr(K, up)?,
            Arg::Int(int(K, "in_stride", in_stride)?),
            self.ptr_mut(K, out)?,
            Arg::Int(int(K, "out_stride", out_stride)?),
            Arg::Int(int(K, "n_ff", n_ff)?),
        ];
        self.launch(K, (n_ff.div_ceil(256), tokens, 1), 256, &args)
    }

    /// `swiglu_q8`: [`Device::swiglu_f32`] written as `tokens · n_ff/32` Q8 blocks (the down
    /// projection's input); `n_ff` a multiple of 32.
    pub fn swiglu_q8(
        &self,
        gate: &impl DevicePtr<f32>,
        up: &impl DevicePtr<f32>,
        in_stride: usize,
        out: &mut impl DevicePtrMut<Q8Block>,
        tokens: usize,
        n_ff: usize,
    ) -> Result<()> {
        const K: &str = "swiglu_q8";
        ensure(K, n_ff.is_multiple_of(32), || {
            format!("n_ff {n_ff} is not a multiple of 32")
        })?;
        need(K, "gate", gate.len(), span(tokens, in_stride, n_ff))?;
        need(K, "up", up.len(), span(tokens, in_stride, n_ff))?;
        need(K, "out", out.len(), tokens * n_ff / 32)?;
        let args = [
            self.ptr(K, gate)?,
            self.ptr(K, up)?,
            Arg::Int(int(K, "in_stride", in_stride)?),
            self.ptr_mut(K, out)?,
            Arg::Int(int(K, "n_ff", n_ff)?),
        ];
        self.launch(K, (n_ff.div_ceil(256), tokens, 1), 256, &args)
    }

    /// `kv_append_f16`: stores `tokens` rows of K and V (token t's KV head h at
    /// `t·src_stride + h·head_dim`) as f16 into the paged caches, at position `positions[t]` of
    /// sequence `token_seq[t]` (negative positions are skipped).
    ///
    /// Contents the caller keeps in range: `token_seq[t] < layout.n_seqs`,
    /// `positions[t] < layout.max_context()`, and every page id in the block table rows used
    /// `< layout.n_pages`.
    #[allow(clippy::too_many_arguments)]
    pub fn kv_append(
        &self,
        layout: &KvLayout,
        k: &impl DevicePtr<f32>,
        v: &impl DevicePtr<f32>,
        src_stride: usize,
        tokens: usize,
        positions: &impl DevicePtr<i32>,
        token_seq: &impl DevicePtr<i32>,
        block_table: &impl DevicePtr<i32>,
        k_cache: &mut impl DevicePtrMut<f16>,
        v_cache: &mut impl DevicePtrMut<f16>,
    ) -> Result<()> {
        const K: &str = "kv_append_f16";
        layout.check(K)?;
        let row = layout.n_kv_head * layout.head_dim;
        need(K, "k", k.len(), span(tokens, src_stride, row))?;
        need(K, "v", v.len(), span(tokens, src_stride, row))?;
        need(K, "positions", positions.len(), tokens)?;
        need(K, "token_seq", token_seq.len(), tokens)?;
        need(
            K,
            "block_table",
            block_table.len(),
            layout.n_seqs * layout.max_pages,
        )?;
        need(K, "k_cache", k_cache.len(), layout.cache_len())?;
        need(K, "v_cache", v_cache.len(), layout.cache_len())?;
        let args = [
            self.ptr(K, k)?,
            self.ptr(K, v)?,
            Arg::Int(int(K, "src_stride", src_stride)?),
            self.ptr(K, positions)?,
            self.ptr(K, token_seq)?,
            self.ptr(K, block_table)?,
            Arg::Int(int(K, "max_pages", layout.max_pages)?),
            self.ptr_mut(K, k_cache)?,
            self.ptr_mut(K, v_cache)?,
            Arg::Int(int(K, "n_kv_head", layout.n_kv_head)?),
            Arg::Int(int(K, "head_dim", layout.head_dim)?),
            Arg::Int(int(K, "page_size", layout.page_size)?),
        ];
        self.launch(K, (tokens, layout.n_kv_head, 1), 128, &args)
    }

    /// Split-K decode attention (`attn_decode_hd{64,128}`, then `attn_decode_combine`): for each
    /// of `args.n_seqs` sequences, its one query token's heads (at `seq·q_stride`) attend to
    /// cache positions `0..seq_lens[seq]`; the result goes to `out` at `seq·out_stride`.
    ///
    /// `splits` must cover the longest possible context (`n_splits · split_len ≥
    /// layout.max_context()`), so that no position is silently left out. Contents the caller
    /// keeps in range: `1 ≤ seq_lens[s] ≤ layout.max_context()` and the page ids of the block
    /// table rows used `< layout.n_pages`.
    #[allow(clippy::too_many_arguments)]
    pub fn attn_decode(
        &self,
        args: &DecodeArgs,
        layout: &KvLayout,
        q: &impl DevicePtr<f32>,
        k_cache: &impl DevicePtr<f16>,
        v_cache: &impl DevicePtr<f16>,
        block_table: &impl DevicePtr<i32>,
        seq_lens: &impl DevicePtr<i32>,
        splits: &mut DecodeSplits,
        out: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        let shape = args.shape;
        let caches = [k_cache.len(), v_cache.len(), block_table.len()];
        let (name, _, width) = check_attention(
            ["attn_decode_hd64", "attn_decode_hd128"],
            &shape,
            layout,
            (args.n_seqs, args.out_stride),
            caches,
        )?;
        ensure(
            name,
            splits.head_dim == shape.head_dim && splits.max_rows >= args.n_seqs * shape.n_head,
            || "decode splits were made for another shape or fewer rows".into(),
        )?;
        ensure(
            name,
            splits.n_splits * splits.split_len >= layout.max_context(),
            || {
                format!(
                    "{} splits of {} positions do not cover the max context {}",
                    splits.n_splits,
                    splits.split_len,
                    layout.max_context()
                )
            },
        )?;
        need(name, "q", q.len(), span(args.n_seqs, args.q_stride, width))?;
        need(name, "seq_lens", seq_lens.len(), args.n_seqs)?;
        need(
            name,
            "out",
            out.len(),
            span(args.n_seqs, args.out_stride, width),
        )?;
        let decode = [
            self.ptr(name, q)?,
            Arg::Int(int(name, "q_stride", args.q_stride)?),
            self.ptr(name, k_cache)?,
            self.ptr(name, v_cache)?,
            self.ptr(name, block_table)?,
            Arg::Int(int(name, "max_pages", layout.max_pages)?),
            self.ptr(name, seq_lens)?,
            Arg::Int(int(name, "page_size", layout.page_size)?),
            Arg::Int(int(name, "n_head", shape.n_head)?),
            Arg::Int(int(name, "n_kv_head", shape.n_kv_head)?),
            Arg::Float(args.scale),
            Arg::Int(int(name, "split_len", splits.split_len)?),
            self.ptr_mut(name, &mut splits.part_o)?,
            self.ptr_mut(name, &mut splits.part_ml)?,
        ];
        let grid = (shape.n_kv_head, splits.n_splits, args.n_seqs);
        self.launch(name, grid, 128, &decode)?;
        const C: &str = "attn_decode_combine";
        let combine = [
            self.ptr(C, &splits.part_o)?,
            self.ptr(C, &splits.part_ml)?,
            Arg::Int(int(C, "n_splits", splits.n_splits)?),
            Arg::Int(int(C, "split_len", splits.split_len)?),
            self.ptr(C, seq_lens)?,
            Arg::Int(int(C, "head_dim", shape.head_dim)?),
            self.ptr_mut(C, out)?,
            Arg::Int(int(C, "out_stride", args.out_stride)?),
        ];
        self.launch(C, (shape.n_head, args.n_seqs, 1), shape.head_dim, &combine)
    }

    /// `attn_prefill_hd{64,128}`: causal attention of `args.total_tokens` query tokens (token
    /// t's heads at `t·q_stride`, output at `t·out_stride`), sequence s owning tokens
    /// `seq_start[s]..seq_start[s+1]` at positions `positions[t]`, their K/V already appended.
    ///
    /// Contents the caller keeps in range: `seq_start` ascending from 0 to at most
    /// `total_tokens` with no sequence longer than `args.max_seq_tokens`,
    /// `0 ≤ positions[t] < layout.max_context()`, and the page ids of the block table rows used
    /// `< layout.n_pages`.
    #[allow(clippy::too_many_arguments)]
    pub fn attn_prefill(
        &self,
        args: &PrefillArgs,
        layout: &KvLayout,
        q: &impl DevicePtr<f32>,
        seq_start: &impl DevicePtr<i32>,
        positions: &impl DevicePtr<i32>,
        k_cache: &impl DevicePtr<f16>,
        v_cache: &impl DevicePtr<f16>,
        block_table: &impl DevicePtr<i32>,
        out: &mut impl DevicePtrMut<f32>,
    ) -> Result<()> {
        let shape = args.shape;
        let caches = [k_cache.len(), v_cache.len(), block_table.len()];
        let (name, group, width) = check_attention(
            ["attn_prefill_hd64", "attn_prefill_hd128"],
            &shape,
            layout,
            (args.n_seqs, args.out_stride),
            caches,
        )?;
        need(
            name,
            "q",
            q.len(),
            span(args.total_tokens, args.q_stride, width),
        )?;
        need(name, "seq_start", seq_start.len(), args.n_seqs + 1)?;
        need(name, "positions", positions.len(), args.total_tokens)?;
        need(
            name,
            "out",
            out.len(),
            span(args.total_tokens, args.out_stride, width),
        )?;
        let launch_args = [
            self.ptr(name, q)?,
            Arg::Int(int(name, "q_stride", args.q_stride)?),
            self.ptr(name, seq_start)?,
            self.ptr(name, positions)?,
            self.ptr(name, k_cache)?,
            self.ptr(name, v_cache)?,
            self.ptr(name, block_table)?,
            Arg::Int(int(name, "max_pages", layout.max_pages)?),
            Arg::Int(int(name, "page_size", layout.page_size)?),
            Arg::Int(int(name, "n_head", shape.n_head)?),
            Arg::Int(int(name, "n_kv_head", shape.n_kv_head)?),
            Arg::Float(args.scale),
            self.ptr_mut(name, out)?,
            Arg::Int(int(name, "out_stride", args.out_stride)?),
        ];
        let tokens_per_block = PREFILL_ROWS / group;
        let grid = (
            args.max_seq_tokens.div_ceil(tokens_per_block),
            shape.n_kv_head,
            args.n_seqs,
        );
        self.launch(name, grid, 128, &launch_args)
    }

    /// `sample_tokens`: one token per row of logits into `out[r]`, with `params[r]` (greedy,
    /// or temperature with top-k/top-p/min-p and the CPU's seeded random stream). A stride of 0
    /// samples every row from the same logits.
    pub fn sample_tokens(
        &self,
        logits: &impl DevicePtr<f32>,
        rows: &LogitRows,
        params: &impl DevicePtr<SampleRow>,
        out: &mut impl DevicePtrMut<u32>,
    ) -> Result<()> {
        const K: &str = "sample_tokens";
        ensure(K, rows.vocab >= 1, || "empty vocabulary".into())?;
        need(
            K,
            "logits",
            logits.len(),
            span(rows.rows, rows.stride, rows.vocab),
        )?;
        need(K, "params", params.len(), rows.rows)?;
        need(K, "out", out.len(), rows.rows)?;
        let args = [
            self.ptr(K, logits)?,
            Arg::Int(int(K, "stride", rows.stride)?),
            Arg::Int(int(K, "vocab", rows.vocab)?),
            self.ptr(K, params)?,
            self.ptr_mut(K, out)?,
        ];
        self.launch(K, (rows.rows, 1, 1), SAMPLE_THREADS, &args)
    }

    /// `apply_penalties`: in place, before sampling, the repetition/presence/frequency
    /// penalties of `params[r]` for row r's distinct window tokens `ids[r·max_ids ..]` with
    /// their counts, `n_ids[r]` of them (clamped to `max_ids` by the kernel; ids outside the
    /// vocabulary are ignored).
    #[allow(clippy::too_many_arguments)]
    pub fn apply_penalties(
        &self,
        logits: &mut impl DevicePtrMut<f32>,
        rows: &LogitRows,
        params: &impl DevicePtr<SampleRow>,
        ids: &impl DevicePtr<u32>,
        counts: &impl DevicePtr<u32>,
        n_ids: &impl DevicePtr<i32>,
        max_ids: usize,
    ) -> Result<()> {
        const K: &str = "apply_penalties";
        // Rows written in place by concurrent blocks must not overlap.
        ensure(K, rows.vocab >= 1 && rows.stride >= rows.vocab, || {
            format!("stride {} < vocab {} (or empty)", rows.stride, rows.vocab)
        })?;
        need(
            K,
            "logits",
            logits.len(),
            span(rows.rows, rows.stride, rows.vocab),
        )?;
        need(K, "params", params.len(), rows.rows)?;
        need(K, "ids", ids.len(), rows.rows * max_ids)?;
        need(K, "counts", counts.len(), rows.rows * max_ids)?;
        need(K, "n_ids", n_ids.len(), rows.rows)?;
        let args = [
            self.ptr_mut(K, logits)?,
            Arg::Int(int(K, "stride", rows.stride)?),
            Arg::Int(int(K, "vocab", rows.vocab)?),
            self.ptr(K, params)?,
            self.ptr(K, ids)?,
            self.ptr(K, counts)?,
            self.ptr(K, n_ids)?,
            Arg::Int(int(K, "max_ids", max_ids)?),
        ];
        self.launch(K, (rows.rows, 1, 1), 128, &args)
    }
}
