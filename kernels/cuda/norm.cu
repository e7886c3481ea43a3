// RMSNorm (cpu::norm::rms_norm): out = x / sqrt(mean(x²) + eps) · weight, one row per block.
//
// As on the CPU the sum of squares is accumulated in f64 (each f32 square is exact there) and
// the scale is computed in f64 and rounded once, so the scale, and then every output, equals
// the CPU's bit for bit unless the two f64 summation orders round to different f32 scales.
//
// Launch: grid = rows, block = any multiple of 32 up to 1024 threads (256 is a good choice).

__device__ float rms_scale(const float* x, int dim, float eps) {
    __shared__ double scratch[32];
    double sum = 0.0;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        const double v = (double)x[i];
        sum += v * v;
    }
    sum = block_reduce(sum, scratch, SumOp());
    return (float)(1.0 / sqrt(sum / (double)dim + (double)eps));
}

// x, out: [rows][dim] f32; weight: [dim] f32.
extern "C" __global__ void rmsnorm_f32(const float* x, const float* weight, float* out, int dim,
                                       float eps) {
    const i64 row = blockIdx.x;
    x += row * dim;
    out += row * dim;
    const float scale = rms_scale(x, dim, eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) out[i] = __fmul_rn(__fmul_rn(x[i], scale), weight[i]);
}

// The same, written directly as the Q8 activation blocks the quantized matmul consumes (what
// the CPU's matmul makes of rms_norm's output): out is [rows][dim/32] block_q8_act; dim is a
// multiple of 32. One warp per block of 32.
extern "C" __global__ void rmsnorm_q8(const float* x, const float* weight, block_q8_act* out,
                                      int dim, float eps) {
    const i64 row = blockIdx.x;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const int blocks = dim / 32;
    x += row * dim;
    out += row * blocks;
    const float scale = rms_scale(x, dim, eps);
    for (int b = warp; b < blocks; b += warps) {
        const int i = b * 32 + lane;
        quantize_block_warp(__fmul_rn(__fmul_rn(x[i], scale), weight[i]), out + b);
    }
}
