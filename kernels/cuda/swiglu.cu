// SwiGLU (cpu::norm::swiglu): silu(gate) · up = gate / (1 + e^−gate) · up, with the CPU's
// rounding steps (libm-accurate exp, unfused division and product), so results are bitwise
// the CPU's wherever glibc's expf is correctly rounded.
//
// gate, up: token t's n_ff values at gate + t·in_stride and up + t·in_stride. With the gate and
// up projections fused into one matmul (rows gate‖up), pass up = gate + n_ff and
// in_stride = 2·n_ff; with two separate outputs, in_stride = n_ff.

__device__ __forceinline__ float swiglu_one(float g, float u) {
    return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, exp_f32(-g))), u);
}

// out: [tokens][out_stride] f32.
// Launch: grid = (ceil(n_ff / 256), tokens), block = 256 threads.
extern "C" __global__ void swiglu_f32(const float* gate, const float* up, int in_stride,
                                      float* out, int out_stride, int n_ff) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    const i64 t = blockIdx.y;
    if (i >= n_ff) return;
    out[t * out_stride + i] = swiglu_one(gate[t * in_stride + i], up[t * in_stride + i]);
}

// The same, written as the Q8 activation blocks of the down projection's input: out is
// [tokens][n_ff/32] block_q8_act; n_ff is a multiple of 32. One warp per block of 32.
// Launch: grid = (ceil(n_ff / 256), tokens), block = 256 threads.
extern "C" __global__ void swiglu_q8(const float* gate, const float* up, int in_stride,
                                     block_q8_act* out, int n_ff) {
    const int lane = threadIdx.x & 31;
    const int b = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const i64 t = blockIdx.y;
    const int blocks = n_ff / 32;
    if (b >= blocks) return;  // whole warps leave together
    const i64 i = t * in_stride + b * 32 + lane;
    quantize_block_warp(swiglu_one(gate[i], up[i]), out + t * blocks + b);
}
