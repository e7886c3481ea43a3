//! Quantized matrix × activations products (`y = W·x` for GGUF weight matrices).

mod act;
mod scalar;
#[cfg(test)]
mod tests;
mod unpack;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::quant::{TensorType, reference};
use act::Act;
use std::cell::RefCell;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use unpack::QK;

/// A weight matrix in GGUF layout: `rows` rows, each `cols` elements of type `ty` (row-major,
/// blocks along a row).
#[derive(Clone, Copy)]
pub struct QMatrix<'a> {
    pub ty: TensorType,
    pub data: &'a [u8],
    pub rows: usize,
    pub cols: usize,
}

/// Why a byte slice cannot be viewed as a [`QMatrix`].
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error("{ty}: {cols} columns are not a whole number of {block}-element blocks")]
    PartialBlock {
        ty: TensorType,
        cols: usize,
        block: usize,
    },
    #[error("{ty}: {rows}x{cols} needs {expected} bytes, got {actual}")]
    DataLength {
        ty: TensorType,
        rows: usize,
        cols: usize,
        expected: u64,
        actual: usize,
    },
    #[error("{ty}: {rows}x{cols} is too large")]
    Overflow {
        ty: TensorType,
        rows: usize,
        cols: usize,
    },
}

impl std::fmt::Debug for QMatrix<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "QMatrix({} {}x{}, {} bytes)",
            self.ty,
            self.rows,
            self.cols,
            self.data.len()
        )
    }
}

impl<'a> QMatrix<'a> {
    /// Checks that `data` holds exactly rows*row_bytes(cols) bytes and cols is a whole number
    /// of blocks.
    pub fn new(
        ty: TensorType,
        data: &'a [u8],
        rows: usize,
        cols: usize,
    ) -> Result<Self, ShapeError> {
        let block = ty.block_elems();
        let row_bytes =
            ty.row_bytes(cols as u64)
                .ok_or(ShapeError::PartialBlock { ty, cols, block })?;
        let expected = row_bytes
            .checked_mul(rows as u64)
            .ok_or(ShapeError::Overflow { ty, rows, cols })?;
        if expected != data.len() as u64 {
            return Err(ShapeError::DataLength {
                ty,
                rows,
                cols,
                expected,
                actual: data.len(),
            });
        }
        Ok(Self {
            ty,
            data,
            rows,
            cols,
        })
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.cols / self.ty.block_elems() * self.ty.block_bytes()
    }

    /// The bytes of row `r`.
    pub fn row(&self, r: usize) -> &'a [u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }

    /// Dequantizes row r into out (len cols) — used for embedding lookups.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        reference::dequantize_row(self.ty, self.row(r), out);
    }
}

/// Reusable buffers for the quantized activations (so the hot path does not allocate).
#[derive(Default)]
pub struct MatmulScratch {
    q: Vec<i8>,
    f: Vec<f32>,
}

/// An instruction-set level of the kernels. [`matmul`] uses [`Isa::best`]; the others can be
/// forced with [`matmul_with_isa`] (tests, benchmarks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable integer code (no SIMD intrinsics).
    Scalar,
    /// AVX2 + FMA + F16C: `vpmaddubsw`/`vpmaddwd` integer dots.
    Avx2,
    /// AVX-VNNI: `vpdpbusd` (VEX), 16 vector registers.
    AvxVnni,
    /// AVX512-VNNI + AVX512VL: `vpdpbusd` on 256-bit vectors with 32 registers.
    Avx512Vnni,
}

impl Isa {
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::AvxVnni, Isa::Avx512Vnni];

    /// Whether this CPU can run the level.
    pub fn is_available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let base = || {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            };
            match self {
                Isa::Scalar => true,
                Isa::Avx2 => base(),
                Isa::AvxVnni => base() && is_x86_feature_detected!("avxvnni"),
                Isa::Avx512Vnni => {
                    base()
                        && is_x86_feature_detected!("avx512f")
                        && is_x86_feature_detected!("avx512vl")
                        && is_x86_feature_detected!("avx512vnni")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Isa::Scalar
        }
    }

    /// The levels this CPU can run, slowest first.
    pub fn available() -> Vec<Isa> {
        Self::ALL.into_iter().filter(|i| i.is_available()).collect()
    }

    /// The level [`matmul`] uses: the fastest available one, unless the environment variable
    /// `TEXTNLP_MATMUL_ISA` names another available one (`scalar`, `avx2`, `avxvnni`,
    /// `avx512vnni`). Decided once per process.
    pub fn best() -> Isa {
        dispatched().isa
    }

    fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512Vnni => "avx512vnni",
        }
    }

    /// The kernel table. Only available levels may run its functions.
    fn kernels(self) -> &'static Kernels {
        match self {
            Isa::Scalar => &SCALAR,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => &x86::avx2::KERNELS,
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => &x86::avxvnni::KERNELS,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => &x86::avx512vnni::KERNELS,
            #[cfg(not(target_arch = "x86_64"))]
            _ => &SCALAR,
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The kernel table chosen once per process.
fn dispatched() -> &'static Kernels {
    static CHOICE: OnceLock<&'static Kernels> = OnceLock::new();
    CHOICE.get_or_init(|| {
        let forced = std::env::var("TEXTNLP_MATMUL_ISA").ok();
        let forced = Isa::ALL
            .into_iter()
            .find(|i| forced.as_deref() == Some(i.name()));
        let best = Isa::ALL.into_iter().rev().find(|i| i.is_available());
        forced
            .filter(|i| i.is_available())
            .or(best)
            .unwrap_or(Isa::Scalar)
            .kernels()
    })
}

/// The functions of one ISA level. All are `unsafe`: they may only run on a CPU that has the
/// level (see [`Isa::is_available`]), with arguments laid out as documented in `act`.
struct Kernels {
    isa: Isa,
    /// Quantizes `x` into the direct layout (`q`, `f`).
    quantize_direct: QuantizeDirect,
    /// Quantizes column group `g` of `x` (n, cols) into the batched layout (that group's q, f).
    quantize_group: QuantizeGroup,
    /// Rows × all columns, direct layout. Where there is a batched kernel, a column's outputs
    /// are bitwise the batched kernel's (same integer dots, same float steps in the same order).
    direct_rows: unsafe fn(&QMatrix, Range<usize>, &Act, Out),
    /// Rows × column groups, batched layout (levels with a register-tiled kernel).
    batched: Option<Batched>,
    /// Rows of a float matrix × all f32 columns.
    float_rows: unsafe fn(&QMatrix, Range<usize>, &[f32], Out),
}

/// `(x, q, f)`: see `act::quantize_direct`.
type QuantizeDirect = unsafe fn(&[f32], &mut [i8], &mut [f32]);
/// `(x, n, cols, g, q, f)`: see `act::quantize_batched_group`.
type QuantizeGroup = unsafe fn(&[f32], usize, usize, usize, &mut [i8], &mut [f32]);

struct Batched {
    run: unsafe fn(&QMatrix, Range<usize>, Range<usize>, &Act, Out),
    /// Rows per register tile (row chunks are multiples of it).
    tile_rows: usize,
}

fn scalar_quantize_direct(x: &[f32], q: &mut [i8], f: &mut [f32]) {
    act::quantize_direct(x, q, f, act::quantize_block_scalar);
}

fn scalar_quantize_group(x: &[f32], n: usize, cols: usize, g: usize, q: &mut [i8], f: &mut [f32]) {
    act::quantize_batched_group(x, n, cols, g, q, f, act::quantize_block_scalar);
}

static SCALAR: Kernels = Kernels {
    isa: Isa::Scalar,
    quantize_direct: scalar_quantize_direct,
    quantize_group: scalar_quantize_group,
    direct_rows: scalar::direct_rows,
    batched: None,
    float_rows: scalar::float_rows,
};

thread_local! {
    /// Per-thread f32 row for the float path.
    static ROWBUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Row `r` of a float matrix as f32.
fn float_row(w: &QMatrix, r: usize, out: &mut [f32]) {
    reference::dequantize_row(w.ty, w.row(r), out);
}

/// The shape checks every entry point makes (the fields of [`QMatrix`] are public, so it may
/// not have come from [`QMatrix::new`]); the kernels rely on them.
fn check_args(w: &QMatrix, x: &[f32], n: usize, out: &[f32]) {
    assert!(
        w.cols.is_multiple_of(w.ty.block_elems()) && w.data.len() >= w.rows * w.row_bytes(),
        "matmul: {w:?} is not a whole number of blocks per row, or its data is too short"
    );
    assert_eq!(x.len(), n * w.cols, "matmul: x must hold n*cols values");
    assert_eq!(out.len(), n * w.rows, "matmul: out must hold n*rows values");
}

/// The output matrix, written by tasks that own disjoint rows (or row × column-group tiles).
#[derive(Clone, Copy)]
struct Out {
    ptr: *mut f32,
    rows: usize,
    n: usize,
}
// SAFETY: tasks write disjoint elements (see `Out::set`), and `run_tasks` joins them before
// the `&mut [f32]` the pointer came from is used again.
unsafe impl Send for Out {}
// SAFETY: as above.
unsafe impl Sync for Out {}

impl Out {
    /// Stores out[j·rows + r].
    ///
    /// Safety: j < n, r < rows, and no other thread writes that element concurrently.
    #[inline(always)]
    unsafe fn set(self, j: usize, r: usize, v: f32) {
        debug_assert!(j < self.n && r < self.rows);
        // SAFETY: see the function's contract.
        unsafe { *self.ptr.add(j * self.rows + r) = v };
    }

    /// Stores `v` at out[j·rows + r ..][..v.len()] (rows r.. of column j).
    ///
    /// Safety: j < n, r + v.len() ≤ rows, and no other thread writes those elements
    /// concurrently.
    #[inline(always)]
    unsafe fn set_rows(self, j: usize, r: usize, v: &[f32]) {
        debug_assert!(j < self.n && r + v.len() <= self.rows);
        // SAFETY: see the function's contract.
        unsafe {
            std::ptr::copy_nonoverlapping(v.as_ptr(), self.ptr.add(j * self.rows + r), v.len())
        };
    }
}

/// Largest n served by the direct kernels (8 rows × 1 or 2 columns, natural layout); above it
/// the register-tiled batched kernel is faster.
const DIRECT_MAX_N: usize = 2;
/// Rows per direct-kernel step (row chunks of the direct path are multiples of it).
const DIRECT_ROWS: usize = 8;
/// Longest row (bytes) of the direct kernels: they address the rows of a step by i32 offsets.
/// Longer rows take the batched kernels, whose arithmetic per column is the same.
const DIRECT_MAX_ROW_BYTES: usize = i32::MAX as usize / DIRECT_ROWS;
/// Rough work (≈ bytes touched) under which a task is not worth handing to another thread.
const MIN_TASK_WORK: usize = 48 << 10;
/// Batched layout: activation bytes per column tile (kept in L2 while the rows stream).
const ACT_TILE_BYTES: usize = 192 << 10;
/// Batched layout: unpacked weight bytes per task (kept in L1/L2).
const UNPACK_TASK_BYTES: usize = 16 << 10;

/// out[j*w.rows + r] = dot(row r of W, x[j*w.cols .. (j+1)*w.cols]) for j in 0..n.
///
/// Activations are quantized ONCE per call (8-bit, 32-element blocks with an f32 scale
/// d = amax/127, q = round(x/d), plus the per-block sums of q, as llama.cpp's Q8_1/Q8_K do),
/// then reused for every row. F32/F16/BF16 weights use f32 dots instead. Parallel over all
/// cores (rayon global pool), splitting rows into chunks; for large n also columns into tiles.
///
/// Batch-invariant: on one ISA level, column j's outputs are bitwise the same whatever `n` is
/// and whatever the other columns hold (every path does a column's arithmetic in the same
/// order), so a sequence computes the same whether it runs alone or in a batch.
///
/// Panics when `x.len() != n * w.cols` or `out.len() != n * w.rows`.
pub fn matmul(w: &QMatrix, x: &[f32], n: usize, out: &mut [f32], scratch: &mut MatmulScratch) {
    run(dispatched(), w, x, n, out, scratch);
}

/// [`matmul`] with a given ISA level (for tests and benchmarks). Panics when the CPU lacks it.
pub fn matmul_with_isa(
    isa: Isa,
    w: &QMatrix,
    x: &[f32],
    n: usize,
    out: &mut [f32],
    scratch: &mut MatmulScratch,
) {
    assert!(
        isa.is_available(),
        "matmul: this CPU cannot run the {isa} kernels"
    );
    run(isa.kernels(), w, x, n, out, scratch);
}

fn run(k: &Kernels, w: &QMatrix, x: &[f32], n: usize, out: &mut [f32], s: &mut MatmulScratch) {
    check_args(w, x, n, out);
    if n == 0 || w.rows == 0 {
        return;
    }
    if w.cols == 0 {
        out.fill(0.0);
        return;
    }
    let out = Out {
        ptr: out.as_mut_ptr(),
        rows: w.rows,
        n,
    };
    if w.ty.block_elems() == 1 {
        let chunk = rows_per_task(w.rows, w.row_bytes() + n * w.cols * 4, 4);
        // SAFETY: `k` belongs to an available level; each task owns its rows.
        run_row_chunks(w.rows, chunk, &|rows| unsafe {
            (k.float_rows)(w, rows, x, out)
        });
        return;
    }
    match &k.batched {
        Some(b) if n > DIRECT_MAX_N || w.row_bytes() > DIRECT_MAX_ROW_BYTES => {
            run_batched(k, b, w, x, n, out, s)
        }
        _ => run_direct(k, w, x, n, out, s),
    }
}

fn run_direct(k: &Kernels, w: &QMatrix, x: &[f32], n: usize, out: Out, s: &mut MatmulScratch) {
    s.q.resize(x.len(), 0);
    s.f.resize(x.len() / QK * act::DIRECT_F, 0.0);
    // SAFETY: `k` belongs to an available level; the buffers have the direct layout's sizes.
    unsafe { (k.quantize_direct)(x, &mut s.q, &mut s.f) };
    let act = Act {
        q: &s.q,
        f: &s.f,
        n,
        cols: w.cols,
    };
    let chunk = rows_per_task(w.rows, w.row_bytes() + n * w.cols / 2, DIRECT_ROWS);
    // SAFETY: as above; each task owns its rows.
    run_row_chunks(w.rows, chunk, &|rows| unsafe {
        (k.direct_rows)(w, rows, &act, out)
    });
}

fn run_batched(
    k: &Kernels,
    b: &Batched,
    w: &QMatrix,
    x: &[f32],
    n: usize,
    out: Out,
    s: &mut MatmulScratch,
) {
    let (cols, nb) = (w.cols, w.cols / QK);
    let groups = n.div_ceil(act::CG);
    let (gq, gf) = (nb * act::BATCH_Q, nb * act::BATCH_F);
    s.q.resize(groups * gq, 0);
    s.f.resize(groups * gf, 0.0);
    let (qp, fp) = (SyncPtr(s.q.as_mut_ptr()), SyncPtr(s.f.as_mut_ptr()));
    let per = (MIN_TASK_WORK / (act::CG * cols * 4).max(1)).max(1);
    run_row_chunks(groups, per, &|gs| {
        for g in gs {
            // SAFETY: group g's slices are disjoint between tasks and inside the buffers;
            // `k` belongs to an available level.
            unsafe {
                let q = std::slice::from_raw_parts_mut(qp.get().add(g * gq), gq);
                let f = std::slice::from_raw_parts_mut(fp.get().add(g * gf), gf);
                (k.quantize_group)(x, n, cols, g, q, f);
            }
        }
    });
    let act = Act {
        q: &s.q,
        f: &s.f,
        n,
        cols,
    };

    // Column tiles of whole groups whose activations stay in L2; row chunks whose unpacked
    // weights stay in L1/L2, enough of them to feed every thread several tasks.
    let tile = (ACT_TILE_BYTES / (act::CG * cols).max(1)).clamp(1, groups);
    let ntiles = groups.div_ceil(tile);
    let tile = groups.div_ceil(ntiles);
    let want = (4 * rayon::current_num_threads()).div_ceil(ntiles);
    let by_cache = (UNPACK_TASK_BYTES / cols.max(1)).max(1);
    let chunk = by_cache
        .min(w.rows.div_ceil(want))
        .max(1)
        .next_multiple_of(b.tile_rows);
    let nchunks = w.rows.div_ceil(chunk);
    run_tasks(nchunks * ntiles, &|t| {
        let (rc, tc) = (t / ntiles, t % ntiles);
        let rows = rc * chunk..((rc + 1) * chunk).min(w.rows);
        let gs = tc * tile..((tc + 1) * tile).min(groups);
        // SAFETY: `k` belongs to an available level; each task owns its rows × groups tile.
        unsafe { (b.run)(w, rows, gs, &act, out) };
    });
}

/// A raw pointer that tasks use for disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct SyncPtr<T>(*mut T);
// SAFETY: users only touch disjoint parts, and `run_tasks` joins them.
unsafe impl<T> Send for SyncPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SyncPtr<T> {}

impl<T> SyncPtr<T> {
    fn get(self) -> *mut T {
        self.0
    }
}

/// Rows per task: at least `align` and about [`MIN_TASK_WORK`] of work, at most 4 tasks per
/// thread.
fn rows_per_task(rows: usize, row_work: usize, align: usize) -> usize {
    let threads = rayon::current_num_threads();
    let max_tasks = if threads > 1 { 4 * threads } else { 1 };
    let tasks = (rows.saturating_mul(row_work) / MIN_TASK_WORK).clamp(1, max_tasks);
    rows.div_ceil(tasks).next_multiple_of(align)
}

/// Runs `f` on consecutive ranges of `chunk` items covering `0..total`, in parallel.
fn run_row_chunks(total: usize, chunk: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
    run_tasks(total.div_ceil(chunk), &|t| {
        f(t * chunk..((t + 1) * chunk).min(total))
    });
}

/// Runs `task(i)` for i in 0..ntasks on the calling thread plus up to threads − 1 rayon
/// workers, which claim indices from a shared counter.
///
/// The caller works too and then waits only for tasks that were claimed: it never waits for
/// a helper to start, so a busy or sleeping pool costs at most the spawn. Helpers that start
/// late find no index left and return without touching the task.
fn run_tasks(ntasks: usize, task: &(dyn Fn(usize) + Sync)) {
    let threads = rayon::current_num_threads();
    if ntasks <= 1 || threads <= 1 {
        (0..ntasks).for_each(task);
        return;
    }
    let set = Arc::new(TaskSet::new(ntasks, task));
    for _ in 1..threads.min(ntasks) {
        let set = Arc::clone(&set);
        rayon::spawn(move || set.work());
    }
    set.work();
    set.wait();
}

/// Shared state of one [`run_tasks`] call.
struct TaskSet {
    next: AtomicUsize,
    done: AtomicUsize,
    panicked: AtomicBool,
    ntasks: usize,
    /// The caller's closure with its lifetime erased; see [`TaskSet::new`].
    task: *const (dyn Fn(usize) + Sync + 'static),
}

// SAFETY: `task` points to a `Sync` closure, called only as described in `TaskSet::new`.
unsafe impl Send for TaskSet {}
// SAFETY: as above.
unsafe impl Sync for TaskSet {}

impl TaskSet {
    fn new(ntasks: usize, task: &(dyn Fn(usize) + Sync)) -> Self {
        let task: *const (dyn Fn(usize) + Sync + '_) = task;
        // SAFETY: only the lifetime changes. `task` is called only for a claimed index
        // (`next` < ntasks), and `run_tasks` returns only when `done` reaches ntasks, i.e.
        // after every claimed call returned; later claims see next ≥ ntasks and return.
        let task = unsafe {
            std::mem::transmute::<
                *const (dyn Fn(usize) + Sync + '_),
                *const (dyn Fn(usize) + Sync + 'static),
            >(task)
        };
        let (next, done, panicked) = (
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicBool::new(false),
        );
        Self {
            next,
            done,
            panicked,
            ntasks,
            task,
        }
    }

    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.ntasks {
                return;
            }
            // SAFETY: i was claimed, so the caller of `run_tasks` is still waiting (see `new`).
            let call = || unsafe { (*self.task)(i) };
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).is_err() {
                self.panicked.store(true, Ordering::Relaxed);
            }
            self.done.fetch_add(1, Ordering::Release);
        }
    }

    fn wait(&self) {
        let mut spins = 0u32;
        while self.done.load(Ordering::Acquire) < self.ntasks {
            if spins < 1 << 12 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
        assert!(
            !self.panicked.load(Ordering::Relaxed),
            "matmul: a worker task panicked"
        );
    }
}

/// The activation quantizer of every product, for one block of 32 values: the codes, the scale
/// `d` and the sums of the codes over the two 16-element halves. The CUDA kernels that write
/// Q8 activation blocks must reproduce it bit for bit.
#[cfg(feature = "cuda")]
pub(crate) fn quantize_act_block(x: &[f32; 32]) -> ([i8; 32], f32, i32, i32) {
    let mut q = [0i8; 32];
    let sums = act::quantize_block_scalar(x, &mut q);
    (q, sums.d, sums.lo, sums.hi)
}

/// Slow reference: dequantize each row with quant::reference and dot in f64. For tests only
/// but public.
pub fn matmul_reference(w: &QMatrix, x: &[f32], n: usize, out: &mut [f32]) {
    check_args(w, x, n, out);
    let mut row = vec![0f32; w.cols];
    for r in 0..w.rows {
        w.dequantize_row(r, &mut row);
        for j in 0..n {
            let xs = &x[j * w.cols..(j + 1) * w.cols];
            let dot: f64 = row.iter().zip(xs).map(|(&a, &b)| a as f64 * b as f64).sum();
            out[j * w.rows + r] = dot as f32;
        }
    }
}
