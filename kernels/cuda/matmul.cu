// Quantized weights × quantized activations (cpu::matmul::matmul): y[j·rows + r] = W[r]·x[j].
//
// Weights stay in their GGUF blocks in global memory (uploaded as the file stores them) and are
// decoded in registers. Activations are the Q8 blocks of block_q8_act, as the CPU quantizes
// them once per product for every quantized weight type; quantize_q8 (or the fused rmsnorm_q8
// and swiglu_q8) make them.
//
// The arithmetic per 32-element group is the CPU's (cpu/matmul/unpack.rs and scalar.rs): the
// weights decode to unsigned levels u with two (scale a, offset c) pairs, one per 16-element
// half, so that weight = a·u + c, and the group contributes
//     d_x · (a_lo·Σ_lo u·q + c_lo·Σ_lo q + a_hi·Σ_hi u·q + c_hi·Σ_hi q)
// with exact integer dots (__dp4a). Q8_0 uses its signed levels directly (a = d, c = 0), like the
// CPU's raw-q8 kernels. Only the order of the float sums over groups differs from the CPU.
//
// Layout: W is rows × cols, each row cols/block_elems blocks; x is [n][cols/32] block_q8_act;
// y is [n][rows] f32. With accumulate != 0 the kernels add into y (the residual connection the
// CPU does with add_assign), otherwise they overwrite it. cols is a multiple of the weight
// type's block size. The weight buffer must be 4-byte aligned (Q4_1, Q4_K and Q5_K read words).
//
// Launch (all products): block = 128 threads (4 warps, one output row each),
// grid = (ceil(rows / 4), ceil(n / MATMUL_COLS)) for matmul_*, (ceil(rows / 4), n) for matvec_*.
// Each lane takes groups lane, lane + 32, ... of its row; the decoded group is reused for every
// activation column of the tile, which is what makes matmul_* cheaper per column.

#define MATMUL_COLS 8
#define MATMUL_WARPS 4

// Little-endian u32 from two 2-byte aligned halves.
__device__ __forceinline__ int load_u32_a2(const u8* p) {
    const u16* h = (const u16*)p;
    return (int)((u32)h[0] | ((u32)h[1] << 16));
}

// One 32-element group of weights: w[k] packs the levels of elements 4k..4k+3 (k < 4: the low
// half, k ≥ 4: the high half), with weight = a·u + c per half.
struct Group {
    int w[8];
    float a_lo, c_lo, a_hi, c_hi;
};

struct Q4_0 {
    static constexpr int BLOCK_ELEMS = 32, BLOCK_BYTES = 18;
    __device__ static void decode(const u8* row, int g, Group& out) {
        const block_q4_0* b = (const block_q4_0*)(row + (i64)g * BLOCK_BYTES);
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const int word = load_u32_a2(b->qs + 4 * k);
            out.w[k] = word & 0x0F0F0F0F;
            out.w[4 + k] = (word >> 4) & 0x0F0F0F0F;
        }
        const float d = f16_to_f32(b->d);
        out.a_lo = out.a_hi = d;
        out.c_lo = out.c_hi = -8.0f * d;
    }
};

struct Q4_1 {
    static constexpr int BLOCK_ELEMS = 32, BLOCK_BYTES = 20;
    __device__ static void decode(const u8* row, int g, Group& out) {
        const block_q4_1* b = (const block_q4_1*)(row + (i64)g * BLOCK_BYTES);
        const int* qs = (const int*)b->qs;
#pragma unroll
        for (int k = 0; k < 4; ++k) {
            const int word = qs[k];
            out.w[k] = word & 0x0F0F0F0F;
            out.w[4 + k] = (word >> 4) & 0x0F0F0F0F;
        }
        out.a_lo = out.a_hi = f16_to_f32(b->d);
        out.c_lo = out.c_hi = f16_to_f32(b->m);
    }
};

// Fifth bits of four consecutive elements (bits 0..3 of `bits`) moved to bit 4 of their bytes.
__device__ __forceinline__ int fifth_bits(u32 bits) {
    return (int)(((bits & 1) << 4) | ((bits & 2) << 11) | ((bits & 4) << 18) | ((bits & 8) << 25));
}

// Q5_0 / Q5_1: Q4_0's nibbles with a fifth bit per element from qh (bit j for element j).
__device__ __forceinline__ void decode_q5_levels(const u8* qh_bytes, const u8* qs, Group& out) {
    const u32 qh = (u32)load_u32_a2(qh_bytes);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        const int word = load_u32_a2(qs + 4 * k);
        out.w[k] = (word & 0x0F0F0F0F) | fifth_bits(qh >> (4 * k));
        out.w[4 + k] = ((word >> 4) & 0x0F0F0F0F) | fifth_bits(qh >> (16 + 4 * k));
    }
}

struct Q5_0 {
    static constexpr int BLOCK_ELEMS = 32, BLOCK_BYTES = 22;
    __device__ static void decode(const u8* row, int g, Group& out) {
        const block_q5_0* b = (const block_q5_0*)(row + (i64)g * BLOCK_BYTES);
        decode_q5_levels(b->qh, b->qs, out);
        const float d = f16_to_f32(b->d);
        out.a_lo = out.a_hi = d;
        out.c_lo = out.c_hi = -16.0f * d;
    }
};

struct Q5_1 {
    static constexpr int BLOCK_ELEMS = 32, BLOCK_BYTES = 24;
    __device__ static void decode(const u8* row, int g, Group& out) {
        const block_q5_1* b = (const block_q5_1*)(row + (i64)g * BLOCK_BYTES);
        decode_q5_levels(b->qh, b->qs, out);
        out.a_lo = out.a_hi = f16_to_f32(b->d);
        out.c_lo = out.c_hi = f16_to_f32(b->m);
    }
};

struct Q8_0 {
    static constexpr int BLOCK_ELEMS = 32, BLOCK_BYTES = 34;
    __device__ static void decode(const u8* row, int g, Group& out) {
        const block_q8_0* b = (const block_q8_0*)(row + (i64)g * BLOCK_BYTES);
#pragma unroll
        for (int k = 0; k < 8; ++k) out.w[k] = load_u32_a2((const u8*)b->qs + 4 * k);
        out.a_lo = out.a_hi = f16_to_f32(b->d);
        out.c_lo = out.c_hi = 0.0f;
    }
};

// Q4_K and Q5_K, sub-block `sub`: 6-bit scale and min (get_scale_min_k4) of the block's
// `scales`, as the pair (a, c) = (d·sc, −dmin·mn) of both halves.
__device__ __forceinline__ void k4_scale_min(const u8* s, int sub, u16 d, u16 dmin, Group& out) {
    int sc, mn;
    if (sub < 4) {
        sc = s[sub] & 63;
        mn = s[sub + 4] & 63;
    } else {
        sc = (s[sub + 4] & 0xF) | ((s[sub - 4] >> 6) << 4);
        mn = (s[sub + 4] >> 4) | ((s[sub] >> 6) << 4);
    }
    out.a_lo = out.a_hi = __fmul_rn(f16_to_f32(d), (float)sc);
    out.c_lo = out.c_hi = __fmul_rn(-f16_to_f32(dmin), (float)mn);
}

// Group g of 8 per block: sub-block g's levels are the low (g even) or high (g odd) nibbles of
// qs[32·(g/2) ..][..32].
struct Q4_K {
    static constexpr int BLOCK_ELEMS = 256, BLOCK_BYTES = 144;
    __device__ static void decode(const u8* row, int g, Group& out) {
        const block_q4_k* b = (const block_q4_k*)(row + (i64)(g >> 3) * BLOCK_BYTES);
        const int sub = g & 7;
        const int* qs = (const int*)(b->qs + 32 * (sub >> 1));
        const int shift = 4 * (sub & 1);
#pragma unroll
        for (int k = 0; k < 8; ++k) out.w[k] = (qs[k] >> shift) & 0x0F0F0F0F;
        k4_scale_min(b->scales, sub, b->d, b->dmin, out);
    }
};

// Q4_K's levels with a fifth bit: bit g of qh[l] for element l of sub-block g.
struct Q5_K {
    static constexpr int BLOCK_ELEMS = 256, BLOCK_BYTES = 176;
    __device__ static void decode(const u8* row, int g, Group& out) {
        const block_q5_k* b = (const block_q5_k*)(row + (i64)(g >> 3) * BLOCK_BYTES);
        const int sub = g & 7;
        const int* qs = (const int*)(b->qs + 32 * (sub >> 1));
        const int* qh = (const int*)b->qh;
        const int shift = 4 * (sub & 1);
#pragma unroll
        for (int k = 0; k < 8; ++k)
            out.w[k] = ((qs[k] >> shift) & 0x0F0F0F0F) | (((qh[k] >> sub) & 0x01010101) << 4);
        k4_scale_min(b->scales, sub, b->d, b->dmin, out);
    }
};

// Group g of 8 per block: half n = g/4 of the block, quarter k = g%4 of that half. Its 6-bit
// levels are nibble k/2 of ql[64n + 32·(k%2) ..] with bits 2k..2k+1 of qh[32n ..] on top; the
// two 16-element halves have their own signed scales.
struct Q6_K {
    static constexpr int BLOCK_ELEMS = 256, BLOCK_BYTES = 210;
    __device__ static void decode(const u8* row, int g, Group& out) {
        const block_q6_k* b = (const block_q6_k*)(row + (i64)(g >> 3) * BLOCK_BYTES);
        const int sub = g & 7, n = sub >> 2, k = sub & 3;
        const u8* ql = b->ql + 64 * n + 32 * (k & 1);
        const u8* qh = b->qh + 32 * n;
        const int lo_shift = 4 * (k >> 1), hi_shift = 2 * k;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const int lo = (load_u32_a2(ql + 4 * i) >> lo_shift) & 0x0F0F0F0F;
            const int hi = (load_u32_a2(qh + 4 * i) >> hi_shift) & 0x03030303;
            out.w[i] = lo | (hi << 4);
        }
        const float d = f16_to_f32(b->d);
        out.a_lo = __fmul_rn(d, (float)b->scales[2 * sub]);
        out.a_hi = __fmul_rn(d, (float)b->scales[2 * sub + 1]);
        out.c_lo = -32.0f * out.a_lo;
        out.c_hi = -32.0f * out.a_hi;
    }
};

__device__ __forceinline__ float group_dot(const Group& w, const block_q8_act* x) {
    const int* q = (const int*)x->qs;
    int lo = 0, hi = 0;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        lo = __dp4a(w.w[k], q[k], lo);
        hi = __dp4a(w.w[4 + k], q[4 + k], hi);
    }
    return x->d * (w.a_lo * (float)lo + w.c_lo * (float)x->sum_lo + w.a_hi * (float)hi +
                   w.c_hi * (float)x->sum_hi);
}

template <typename W, int COLS>
__device__ __forceinline__ void qmatmul(const u8* w, const block_q8_act* x, float* y, int rows,
                                        int cols, int n, int accumulate) {
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * MATMUL_WARPS + (threadIdx.x >> 5);
    const int j0 = blockIdx.y * COLS;
    if (row >= rows) return;
    const int groups = cols / 32;
    const u8* w_row = w + (i64)row * (cols / W::BLOCK_ELEMS) * W::BLOCK_BYTES;
    float acc[COLS];
#pragma unroll
    for (int c = 0; c < COLS; ++c) acc[c] = 0.0f;
    for (int g = lane; g < groups; g += 32) {
        Group wg;
        W::decode(w_row, g, wg);
#pragma unroll
        for (int c = 0; c < COLS; ++c)
            if (j0 + c < n) acc[c] += group_dot(wg, x + (i64)(j0 + c) * groups + g);
    }
#pragma unroll
    for (int c = 0; c < COLS; ++c) {
        const float sum = warp_sum(acc[c]);
        if (lane == c && j0 + c < n) {
            float* out = y + (i64)(j0 + c) * rows + row;
            *out = accumulate ? *out + sum : sum;
        }
    }
}

#define QMATMUL_ENTRIES(name, W)                                                              \
    extern "C" __global__ void __launch_bounds__(128)                                         \
        matvec_##name(const u8* w, const block_q8_act* x, float* y, int rows, int cols, int n, \
                      int accumulate) {                                                       \
        qmatmul<W, 1>(w, x, y, rows, cols, n, accumulate);                                    \
    }                                                                                         \
    extern "C" __global__ void __launch_bounds__(128)                                         \
        matmul_##name(const u8* w, const block_q8_act* x, float* y, int rows, int cols, int n, \
                      int accumulate) {                                                       \
        qmatmul<W, MATMUL_COLS>(w, x, y, rows, cols, n, accumulate);                          \
    }

QMATMUL_ENTRIES(q4_0, Q4_0)
QMATMUL_ENTRIES(q4_1, Q4_1)
QMATMUL_ENTRIES(q5_0, Q5_0)
QMATMUL_ENTRIES(q5_1, Q5_1)
QMATMUL_ENTRIES(q8_0, Q8_0)
QMATMUL_ENTRIES(q4_k, Q4_K)
QMATMUL_ENTRIES(q5_k, Q5_K)
QMATMUL_ENTRIES(q6_k, Q6_K)

// Quantizes f32 activations (n rows of cols, cols a multiple of 32) into [n][cols/32]
// block_q8_act, bitwise as the CPU does at the start of every product. One warp per block.
// Launch: grid = (ceil(cols / 256), n), block = 256 threads.
extern "C" __global__ void quantize_q8(const float* x, block_q8_act* out, int cols) {
    const int lane = threadIdx.x & 31;
    const int b = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const i64 j = blockIdx.y;
    const int blocks = cols / 32;
    if (b >= blocks) return;  // whole warps leave together
    quantize_block_warp(x[j * cols + b * 32 + lane], out + j * blocks + b);
}
