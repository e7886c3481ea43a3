// Shared prelude of every kernel file. The Rust side (kernels/src/cuda/) prepends it to each
// file before compiling with NVRTC, because NVRTC has no headers on its search path: no
// cuda_fp16.h, no stdint.h, no math.h macros. Everything a kernel needs from outside is here.
//
// Numerics policy: these kernels mirror the CPU reference in kernels/src/cpu and
// kernels/src/quant. Where the CPU result is reproducible bit for bit (element-wise maths, the
// activation quantizer, the sampler's random stream) the kernels spell out the rounding steps
// with __fmul_rn/__fadd_rn/... so that NVRTC's default FMA contraction cannot merge them; and
// where the CPU calls libm (expf, logf, powf, sinf, cosf) they evaluate in double and round
// once, which gives the correctly rounded f32 result that glibc returns in all but rare cases.

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef short i16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

static_assert(sizeof(u16) == 2 && sizeof(u32) == 4 && sizeof(u64) == 8, "type sizes");

#define NEG_INF __int_as_float(0xff800000)
#define FULL_MASK 0xffffffffu

// ---------------------------------------------------------------------------------------------
// Half precision without cuda_fp16.h: IEEE binary16 bits in a u16, converted by PTX `cvt`
// (round to nearest even, as half::f16::from_f32; widening is exact).

__device__ __forceinline__ float f16_to_f32(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ u16 f32_to_f16(float f) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

// libm-accurate single-precision functions (see the numerics policy above).
__device__ __forceinline__ float exp_f32(float x) { return (float)exp((double)x); }
__device__ __forceinline__ float ln_f32(float x) { return (float)log((double)x); }

// ---------------------------------------------------------------------------------------------
// Reductions. Butterfly (xor) shuffles leave the bitwise same result in every lane, because
// both partners of each step add the same two values; the block versions combine the warps'
// results in a fixed order. So every reduction here is deterministic and uniform across the
// threads that receive it, which the sampler's bisection relies on.

struct SumOp {
    template <typename T>
    __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};

struct MaxOp {
    __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
    __device__ __forceinline__ u32 operator()(u32 a, u32 b) const { return a > b ? a : b; }
};

struct MinOp {
    __device__ __forceinline__ u32 operator()(u32 a, u32 b) const { return a < b ? a : b; }
};

template <typename T, typename Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(FULL_MASK, v, offset));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) { return warp_reduce(v, SumOp()); }
__device__ __forceinline__ float warp_max(float v) { return warp_reduce(v, MaxOp()); }

// Every thread of the block receives the result. `scratch` is 32 elements of shared memory; the
// block size is a multiple of 32; all threads must call (it synchronises the block).
template <typename T, typename Op>
__device__ T block_reduce(T v, T* scratch, Op op) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_reduce(v, op);
    __syncthreads();  // a previous call may still be reading scratch
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = scratch[0];
    for (int w = 1; w < warps; ++w) v = op(v, scratch[w]);
    return v;
}

// ---------------------------------------------------------------------------------------------
// The CPU sampler's random stream (cpu::sampling::uniform): a SplitMix64-style hash of
// (seed, step, token id), so a token's noise depends on nothing else. Bit-exact: integer
// arithmetic, then a 23-bit value that f32 represents exactly.

__device__ __forceinline__ float rng_uniform(u64 seed, u64 step, u32 id) {
    u64 x = seed ^ (step * 0x9E3779B97F4A7C15ull) ^ ((u64)id * 0xD1B54A32D192ED03ull);
#pragma unroll
    for (int round = 0; round < 2; ++round) {
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
        x ^= x >> 31;
    }
    return ((float)(x >> 41) + 0.5f) * (1.0f / 8388608.0f);
}

// Standard Gumbel noise −ln(−ln u), rounded at the same two steps as the CPU's gumbel().
__device__ __forceinline__ float gumbel_noise(u64 seed, u64 step, u32 id) {
    const float u = rng_uniform(seed, step, id);
    return -ln_f32(-ln_f32(u));
}

// ---------------------------------------------------------------------------------------------
// GGUF weight blocks (ggml-common.h layouts; f16 fields as u16 bits). Every field is at most
// 2-byte aligned, so the structs have no padding and match the file bytes; a tensor's blocks are
// only as aligned as their size allows (Q4_0, Q5_0, Q8_0 and Q6_K blocks: 2 bytes).

struct block_q4_0 {  // value = d·(q − 8); element j: qs[j] & 15, element j+16: qs[j] >> 4
    u16 d;
    u8 qs[16];
};
struct block_q4_1 {  // value = d·q + m
    u16 d;
    u16 m;
    u8 qs[16];
};
struct block_q5_0 {  // value = d·(q5 − 16); q5 = nibble of qs (as Q4_0) | bit j of qh << 4
    u16 d;
    u8 qh[4];
    u8 qs[16];
};
struct block_q5_1 {  // value = d·q5 + m (q5 as Q5_0)
    u16 d;
    u16 m;
    u8 qh[4];
    u8 qs[16];
};
struct block_q8_0 {  // value = d·q
    u16 d;
    i8 qs[32];
};
struct block_q4_k {  // 8 sub-blocks of 32: value = d·sc·q − dmin·mn (6-bit sc, mn in scales)
    u16 d;
    u16 dmin;
    u8 scales[12];
    u8 qs[128];
};
struct block_q5_k {  // Q4_K with a fifth bit: sub-block g takes bit g of qh[l]
    u16 d;
    u16 dmin;
    u8 scales[12];
    u8 qh[32];
    u8 qs[128];
};
struct block_q6_k {  // 16 sub-blocks of 16: value = d·scales[e/16]·(q6 − 32)
    u8 ql[128];
    u8 qh[64];
    i8 scales[16];
    u16 d;
};

static_assert(sizeof(block_q4_0) == 18, "block_q4_0");
static_assert(sizeof(block_q4_1) == 20, "block_q4_1");
static_assert(sizeof(block_q5_0) == 22, "block_q5_0");
static_assert(sizeof(block_q5_1) == 24, "block_q5_1");
static_assert(sizeof(block_q8_0) == 34, "block_q8_0");
static_assert(sizeof(block_q5_k) == 176, "block_q5_k");
static_assert(sizeof(block_q4_k) == 144, "block_q4_k");
static_assert(sizeof(block_q6_k) == 210, "block_q6_k");

// Activations quantized for the integer matmul, as the CPU's act.rs does once per product:
// 32 values, f32 scale d = amax/127, q = round-half-even(x·127/amax), and the sums of q over
// the two 16-element halves (the CPU keeps them as d·Σq floats; the kernels multiply the
// integers by the weights' offsets in the same expression).
struct block_q8_act {
    float d;
    i16 sum_lo;
    i16 sum_hi;
    i8 qs[32];
};
static_assert(sizeof(block_q8_act) == 40, "block_q8_act");

// Quantizes the 32 values held one per lane (lane = element) into `out`; the whole warp calls.
// Bit-exact with act::quantize_block_scalar: the same divisions (IEEE, no fast math), a plain
// product and round-half-even.
__device__ __forceinline__ void quantize_block_warp(float x, block_q8_act* out) {
    const int lane = threadIdx.x & 31;
    const float amax = warp_max(fabsf(x));
    const float d = amax / 127.0f;
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    const int q = __float2int_rn(__fmul_rn(x, inv));
    const int sum_lo = warp_reduce(lane < 16 ? q : 0, SumOp());
    const int sum_hi = warp_reduce(lane < 16 ? 0 : q, SumOp());
    out->qs[lane] = (i8)q;
    if (lane == 0) {
        out->d = d;
        out->sum_lo = (i16)sum_lo;
        out->sum_hi = (i16)sum_hi;
    }
}
