//! The CUDA backend's GPU-free half: our kernel sources (`kernels/cuda/*.cu`), their
//! compilation to PTX with NVRTC, an on-disk PTX cache, and the layouts the kernels share with
//! Rust.
//!
//! [`Device`] opens a GPU, loads every kernel for its compute capability and launches them
//! through checked methods; [`Device::capture`] records launches into a replayable [`Graph`].
//!
//! Nothing here needs CUDA to build: cudarc loads `libcuda` and `libnvrtc` with `dlopen` on
//! first use. Its first real call panics when a library is missing, so callers check with
//! [`probe`] (or [`nvrtc_available`] for compiling only) before anything else.
//!
//! The kernels mirror the CPU reference ([`crate::cpu`], [`crate::quant`]): the same block
//! layouts, RoPE layouts, attention semantics and sampling algorithm with the same random
//! stream. `kernels/cuda/README.md` lists what each one computes, how to launch it, and where its
//! results can differ from the CPU's.

mod abi;
mod compile;
mod device;

pub use abi::{
    ATTN_HEAD_DIMS, ATTN_MAX_GROUP, ATTN_TILE, MATMUL_COLS, MATMUL_ROWS_PER_BLOCK, PREFILL_ROWS,
    Q8_BLOCK_BYTES, Q8Block, SAMPLE_THREADS, SampleRow,
};
/// Device buffers, as the launch methods take them.
pub use cudarc::driver::{CudaSlice, DeviceRepr};

pub use compile::{CompileError, Compiler, Ptx, nvrtc_version};
pub use device::{
    DecodeArgs, DecodeSplits, Device, DeviceError, DeviceWeights, Graph, KvLayout, LogitRows,
    PRODUCT_TYPES, PrefillArgs, RopeShape,
};

/// Why the CUDA backend cannot run on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("the CUDA driver library (libcuda.so.1) was not found: no NVIDIA driver installed")]
    Driver,
    #[error(
        "the NVRTC library (libnvrtc.so.13) was not found: add CUDA 13's lib64 directory, or \
         the nvidia-cuda-nvrtc wheel's nvidia/cu13/lib, to LD_LIBRARY_PATH"
    )]
    Nvrtc,
}

/// Checks that the CUDA driver and NVRTC libraries can be loaded, without calling into either
/// (cudarc's first call into a missing library panics instead of returning an error).
pub fn probe() -> Result<(), Unavailable> {
    // SAFETY: `is_culib_present` only tries to dlopen the library's candidate file names and
    // closes it again; no symbol is resolved or called.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(Unavailable::Driver);
    }
    if !nvrtc_available() {
        return Err(Unavailable::Nvrtc);
    }
    Ok(())
}

/// Whether NVRTC can be loaded (enough to compile kernels; no GPU or driver needed).
pub fn nvrtc_available() -> bool {
    // SAFETY: as in `probe`: a dlopen probe only.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// The shared prelude that is compiled in front of every kernel file (NVRTC has no headers, so
/// typedefs, half conversions, reductions, the RNG and the block structs live here).
pub const PRELUDE: &str = include_str!("../../cuda/common.cu");

/// One kernel source file of `kernels/cuda/`, compiled as one NVRTC program (with [`PRELUDE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Norm,
    Rope,
    Matmul,
    Swiglu,
    Kv,
    Attention,
    Sampling,
}

impl Kernel {
    pub const ALL: [Kernel; 7] = [
        Self::Norm,
        Self::Rope,
        Self::Matmul,
        Self::Swiglu,
        Self::Kv,
        Self::Attention,
        Self::Sampling,
    ];

    /// The file name under `kernels/cuda/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Norm => "norm.cu",
            Self::Rope => "rope.cu",
            Self::Matmul => "matmul.cu",
            Self::Swiglu => "swiglu.cu",
            Self::Kv => "kv.cu",
            Self::Attention => "attention.cu",
            Self::Sampling => "sampling.cu",
        }
    }

    /// The file's own source (without the prelude).
    pub fn source(self) -> &'static str {
        match self {
            Self::Norm => include_str!("../../cuda/norm.cu"),
            Self::Rope => include_str!("../../cuda/rope.cu"),
            Self::Matmul => include_str!("../../cuda/matmul.cu"),
            Self::Swiglu => include_str!("../../cuda/swiglu.cu"),
            Self::Kv => include_str!("../../cuda/kv.cu"),
            Self::Attention => include_str!("../../cuda/attention.cu"),
            Self::Sampling => include_str!("../../cuda/sampling.cu"),
        }
    }

    /// What NVRTC compiles: the prelude, then the file, each with a `#line` directive so that
    /// compiler messages name the real file and line.
    pub fn program(self) -> String {
        format!(
            "#line 1 \"common.cu\"\n{PRELUDE}\n#line 1 \"{}\"\n{}",
            self.file_name(),
            self.source()
        )
    }

    /// The `extern "C"` kernels the file defines: the names to load from its module.
    pub fn entry_points(self) -> &'static [&'static str] {
        match self {
            Self::Norm => &["rmsnorm_f32", "rmsnorm_q8"],
            Self::Rope => &["rope_f32"],
            Self::Matmul => &[
                "matvec_q4_0",
                "matmul_q4_0",
                "matvec_q4_1",
                "matmul_q4_1",
                "matvec_q5_0",
                "matmul_q5_0",
                "matvec_q5_1",
                "matmul_q5_1",
                "matvec_q8_0",
                "matmul_q8_0",
                "matvec_q4_k",
                "matmul_q4_k",
                "matvec_q5_k",
                "matmul_q5_k",
                "matvec_q6_k",
                "matmul_q6_k",
                "quantize_q8",
            ],
            Self::Swiglu => &["swiglu_f32", "swiglu_q8"],
            Self::Kv => &["kv_append_f16"],
            Self::Attention => &[
                "attn_decode_hd64",
                "attn_decode_hd128",
                "attn_decode_combine",
                "attn_prefill_hd64",
                "attn_prefill_hd128",
            ],
            Self::Sampling => &["sample_tokens", "apply_penalties"],
        }
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.file_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_include_nothing() {
        // NVRTC has no headers; an #include would only fail at run time on the GPU machine.
        for src in Kernel::ALL.map(Kernel::source).into_iter().chain([PRELUDE]) {
            assert!(!src.contains("#include"));
        }
    }

    #[test]
    fn probes_do_not_panic_without_cuda() {
        let _ = probe();
        let _ = nvrtc_available();
    }
}
