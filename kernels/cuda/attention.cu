// Causal grouped-query attention over the paged f16 KV cache (cpu::attention::attend_tile).
//
// Semantics as on the CPU: query head h reads KV head h / G (G = n_head / n_kv_head); a token
// at position p attends to cache positions 0..=p; the score of a key is (q·k)·scale, with the
// caller's scale (the model passes 1/sqrt(head_dim)); the output is Σ softmax(scores)·v. The
// softmax is computed online (running maximum m, sum l, unnormalised output o, rescaled when m
// grows) instead of over a stored row of scores, so results match the CPU to rounding, not
// bitwise.
//
// Cache layout and block table: see kv.cu. head_dim is a template parameter (entry points for
// 64 and 128); G ≤ ATT_MAX_GROUP.
//
// Work inside a warp is always split the same way: lane j scores key j of a tile of 32 keys
// (keys staged in shared memory, rows padded by one word so the 32 lanes hit 32 banks), then
// the tile's values are summed with each lane owning head_dim/32 consecutive dimensions.

#define ATT_TILE 32
#define ATT_WARPS 4
#define ATT_MAX_GROUP 8
#define PREFILL_ROWS 16

// Element offset of the cache row of `pos` for one kv head (kv.cu's layout).
__device__ __forceinline__ i64 kv_offset(const int* table_row, int pos, int page_size,
                                         int n_kv_head, int kv_head, int head_dim) {
    const int page = table_row[pos / page_size];
    return (((i64)page * n_kv_head + kv_head) * page_size + pos % page_size) * head_dim;
}

// Online-softmax state of one query row in one warp; m and l are uniform across the lanes, o
// holds the lane's DPL dimensions.
template <int DPL>
struct SoftmaxRow {
    float m, l, o[DPL];

    __device__ __forceinline__ void init() {
        m = NEG_INF;
        l = 0.0f;
#pragma unroll
        for (int i = 0; i < DPL; ++i) o[i] = 0.0f;
    }

    // Folds in one tile of scores (lane j: key j, NEG_INF when masked) and returns the lane's
    // key weight exp(s − m), by which the caller then adds that key's value row.
    __device__ __forceinline__ float add_tile(float s) {
        const float tile_max = warp_max(s);
        if (tile_max == NEG_INF) return 0.0f;  // nothing visible; also avoids exp(−inf + inf)
        const float m_new = fmaxf(m, tile_max);
        const float correction = expf(m - m_new);
        const float p = expf(s - m_new);
        l = l * correction + warp_sum(p);
#pragma unroll
        for (int i = 0; i < DPL; ++i) o[i] *= correction;
        m = m_new;
        return p;
    }
};

// o += p·v for the lane's DPL dimensions of a value row given as f16 pairs.
template <int DPL>
__device__ __forceinline__ void add_value(float (&o)[DPL], float p, const u32* pairs) {
#pragma unroll
    for (int i = 0; i < DPL / 2; ++i) {
        const u32 w = pairs[i];
        o[2 * i] += p * f16_to_f32((u16)(w & 0xFFFF));
        o[2 * i + 1] += p * f16_to_f32((u16)(w >> 16));
    }
}

// q·k for the query at `q` (shared memory, HD floats) and key row `k` (HD/2 f16 pairs).
template <int HD>
__device__ __forceinline__ float dot_key(const float* q, const u32* k) {
    float acc = 0.0f;
#pragma unroll 8
    for (int c = 0; c < HD / 2; ++c) {
        const u32 w = k[c];
        acc += q[2 * c] * f16_to_f32((u16)(w & 0xFFFF));
        acc += q[2 * c + 1] * f16_to_f32((u16)(w >> 16));
    }
    return acc;
}

// ---------------------------------------------------------------------------------------------
// Decode (one new token per sequence), split-K over the context ("Flash-Decoding").
//
// One block per (kv head, split, sequence) handles all G query heads of the group, so each key
// and value is read once per group. Split s covers positions [s·split_len, (s+1)·split_len)
// of the sequence's context 0..seq_lens[seq]; its 4 warps take interleaved tiles of 32
// positions and are merged at the end. The block writes, for each query head of the group, its
// split's unnormalised partial output and (m, l): part_o[((seq·n_head + h)·n_splits + s)·HD ..]
// and part_ml[(seq·n_head + h)·n_splits + s]. A split past the context exits at once and
// writes nothing, so the grid can be sized for the longest context (fixed shapes for CUDA
// graphs) at the cost of an empty block; attn_decode_combine merges the splits that cover the
// context and never reads the others.
//
// q: sequence seq's query heads at q + seq·q_stride, head h at h·HD (after RoPE).
// seq_lens[seq]: context length (the new token's position + 1, its K/V already appended).
// Launch: grid = (n_kv_head, n_splits, n_seqs), block = 128 threads.

template <int HD>
__device__ __forceinline__ void attn_decode(const float* q, int q_stride, const u16* k_cache,
                                            const u16* v_cache, const int* block_table,
                                            int max_pages, const int* seq_lens, int page_size,
                                            int n_head, int n_kv_head, float scale,
                                            int split_len, float* part_o, float2* part_ml) {
    static_assert(HD % 64 == 0 && HD <= 128, "lanes own f16 pairs; tiles fit 48 KB");
    constexpr int DPL = HD / 32, WORDS = HD / 2;
    __shared__ float q_s[ATT_MAX_GROUP][HD];
    __shared__ union {
        u32 keys[ATT_WARPS][ATT_TILE][WORDS + 1];
        struct {
            float o[ATT_WARPS][ATT_MAX_GROUP][HD];
            float m[ATT_WARPS][ATT_MAX_GROUP];
            float l[ATT_WARPS][ATT_MAX_GROUP];
        } merge;
    } smem;

    const int kv_head = blockIdx.x, split = blockIdx.y, n_splits = gridDim.y, seq = blockIdx.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int group = n_head / n_kv_head;
    const int ctx = seq_lens[seq];
    const int start = split * split_len, end = min(ctx, start + split_len);
    if (start >= ctx) return;  // block-uniform: no barrier is skipped by part of the block
    const int* table_row = block_table + (i64)seq * max_pages;

    for (int i = threadIdx.x; i < group * HD; i += blockDim.x)
        q_s[i / HD][i % HD] = q[(i64)seq * q_stride + (i64)kv_head * group * HD + i];
    __syncthreads();

    SoftmaxRow<DPL> rows[ATT_MAX_GROUP];
#pragma unroll
    for (int g = 0; g < ATT_MAX_GROUP; ++g) rows[g].init();

    u32(*keys)[WORDS + 1] = smem.keys[warp];
    for (int t0 = start + warp * ATT_TILE; t0 < end; t0 += ATT_WARPS * ATT_TILE) {
        const int pos = t0 + lane;
        const bool visible = pos < end;
        const i64 row = visible ? kv_offset(table_row, pos, page_size, n_kv_head, kv_head, HD) : 0;
        const int n_keys = min(ATT_TILE, end - t0);
        // Stage the tile's keys: row by row, the warp reading each one contiguously.
        for (int j = 0; j < n_keys; ++j) {
            const u32* src = (const u32*)(k_cache + __shfl_sync(FULL_MASK, row, j));
            for (int c = lane; c < WORDS; c += 32) keys[j][c] = src[c];
        }
        __syncwarp();
        float p[ATT_MAX_GROUP];
#pragma unroll
        for (int g = 0; g < ATT_MAX_GROUP; ++g) {
            if (g < group) {
                const float s = visible ? dot_key<HD>(q_s[g], keys[lane]) * scale : NEG_INF;
                p[g] = rows[g].add_tile(s);
            }
        }
        for (int j = 0; j < n_keys; ++j) {
            const u32* v_row = (const u32*)(v_cache + __shfl_sync(FULL_MASK, row, j)) + lane * (DPL / 2);
#pragma unroll
            for (int g = 0; g < ATT_MAX_GROUP; ++g)
                if (g < group) add_value<DPL>(rows[g].o, __shfl_sync(FULL_MASK, p[g], j), v_row);
        }
        __syncwarp();  // the next tile overwrites keys
    }

    __syncthreads();  // the merge area overlays every warp's key tiles
#pragma unroll
    for (int g = 0; g < ATT_MAX_GROUP; ++g) {
        if (g < group) {
#pragma unroll
            for (int i = 0; i < DPL; ++i) smem.merge.o[warp][g][lane * DPL + i] = rows[g].o[i];
            if (lane == 0) {
                smem.merge.m[warp][g] = rows[g].m;
                smem.merge.l[warp][g] = rows[g].l;
            }
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < group * HD; i += blockDim.x) {
        const int g = i / HD, d = i % HD;
        float m = NEG_INF;
#pragma unroll
        for (int w = 0; w < ATT_WARPS; ++w) m = fmaxf(m, smem.merge.m[w][g]);
        float l = 0.0f, o = 0.0f;
#pragma unroll
        for (int w = 0; w < ATT_WARPS; ++w) {
            const float mw = smem.merge.m[w][g];
            const float weight = mw == NEG_INF ? 0.0f : expf(mw - m);
            l += smem.merge.l[w][g] * weight;
            o += smem.merge.o[w][g][d] * weight;
        }
        const i64 at = ((i64)seq * n_head + kv_head * group + g) * n_splits + split;
        part_o[at * HD + d] = o;
        if (d == 0) part_ml[at] = make_float2(m, l);
    }
}

#define DECODE_ENTRY(hd)                                                                         \
    extern "C" __global__ void __launch_bounds__(128) attn_decode_hd##hd(                        \
        const float* q, int q_stride, const u16* k_cache, const u16* v_cache,                    \
        const int* block_table, int max_pages, const int* seq_lens, int page_size, int n_head,   \
        int n_kv_head, float scale, int split_len, float* part_o, float2* part_ml) {             \
        attn_decode<hd>(q, q_stride, k_cache, v_cache, block_table, max_pages, seq_lens,         \
                        page_size, n_head, n_kv_head, scale, split_len, part_o, part_ml);        \
    }

DECODE_ENTRY(64)
DECODE_ENTRY(128)

// Merges the partials of each (sequence, query head) by their log-sum-exp, over the splits
// that cover its context 0..seq_lens[seq] (the others were not written):
// out = Σ_s e^(m_s − M)·o_s / Σ_s e^(m_s − M)·l_s with M = max_s m_s.
// out: sequence seq's heads at out + seq·out_stride, head h at h·head_dim.
// Launch: grid = (n_head, n_seqs), block = head_dim threads (≤ 1024).
extern "C" __global__ void attn_decode_combine(const float* part_o, const float2* part_ml,
                                               int n_splits, int split_len, const int* seq_lens,
                                               int head_dim, float* out, int out_stride) {
    const int h = blockIdx.x, n_head = gridDim.x, seq = blockIdx.y, d = threadIdx.x;
    if (d >= head_dim) return;
    const i64 first = ((i64)seq * n_head + h) * n_splits;
    const int used = min(n_splits, (seq_lens[seq] + split_len - 1) / split_len);
    float m = NEG_INF;
    for (int s = 0; s < used; ++s) m = fmaxf(m, part_ml[first + s].x);
    float l = 0.0f, o = 0.0f;
    for (int s = 0; s < used; ++s) {
        const float2 ml = part_ml[first + s];
        const float weight = ml.x == NEG_INF ? 0.0f : expf(ml.x - m);
        l += ml.y * weight;
        o += part_o[(first + s) * head_dim + d] * weight;
    }
    out[(i64)seq * out_stride + (i64)h * head_dim + d] = l > 0.0f ? o / l : 0.0f;
}

// ---------------------------------------------------------------------------------------------
// Prefill: many query tokens per sequence, FlashAttention-2 style. A block takes a tile of
// consecutive tokens of one sequence and all G query heads of one kv head: PREFILL_ROWS query
// rows (token-major, row = token·G + g, so PREFILL_ROWS / G tokens), 4 per warp — warps split
// the rows, never the keys, so no cross-warp reduction is needed. Key/value tiles of 32
// positions are staged in shared memory once for all rows; tiles past the tile's last position
// are never loaded and, inside the diagonal tile, keys after a row's position are masked.
//
// q, out: token t's query heads at q + t·q_stride (out + t·out_stride), head h at h·HD; the
// tokens of sequence s are seq_start[s] .. seq_start[s+1] (ascending, as the batch lists them);
// positions[t]: token t's position (its K/V already appended, like every earlier position).
// Launch: grid = (ceil(max tokens of a sequence / (PREFILL_ROWS / G)), n_kv_head, n_seqs),
// block = 128 threads.

template <int HD>
__device__ __forceinline__ void attn_prefill(const float* q, int q_stride, const int* seq_start,
                                             const int* positions, const u16* k_cache,
                                             const u16* v_cache, const int* block_table,
                                             int max_pages, int page_size, int n_head,
                                             int n_kv_head, float scale, float* out,
                                             int out_stride) {
    static_assert(HD % 64 == 0 && HD <= 128, "lanes own f16 pairs; tiles fit 48 KB");
    constexpr int DPL = HD / 32, WORDS = HD / 2, ROWS_PER_WARP = PREFILL_ROWS / ATT_WARPS;
    __shared__ float q_s[PREFILL_ROWS][HD];
    __shared__ u32 keys[ATT_TILE][WORDS + 1];
    __shared__ u32 values[ATT_TILE][WORDS];
    __shared__ i64 row_at[ATT_TILE];
    __shared__ int row_pos[PREFILL_ROWS];

    const int kv_head = blockIdx.y, seq = blockIdx.z;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int group = n_head / n_kv_head, tokens_per_block = PREFILL_ROWS / group;
    const int first = seq_start[seq] + blockIdx.x * tokens_per_block;
    const int n_tokens = min(tokens_per_block, seq_start[seq + 1] - first);
    if (n_tokens <= 0) return;
    const int n_rows = n_tokens * group;
    const int* table_row = block_table + (i64)seq * max_pages;

    for (int i = threadIdx.x; i < n_rows * HD; i += blockDim.x) {
        const int r = i / HD, d = i % HD, t = first + r / group, g = r % group;
        q_s[r][d] = q[(i64)t * q_stride + (i64)(kv_head * group + g) * HD + d];
    }
    for (int r = threadIdx.x; r < n_rows; r += blockDim.x) row_pos[r] = positions[first + r / group];
    __syncthreads();
    int ctx = 0;  // one past the last position any row of the block sees
    for (int r = 0; r < n_rows; ++r) ctx = max(ctx, row_pos[r] + 1);

    SoftmaxRow<DPL> rows[ROWS_PER_WARP];
#pragma unroll
    for (int i = 0; i < ROWS_PER_WARP; ++i) rows[i].init();

    for (int t0 = 0; t0 < ctx; t0 += ATT_TILE) {
        const int n_keys = min(ATT_TILE, ctx - t0);
        if (threadIdx.x < n_keys)
            row_at[threadIdx.x] =
                kv_offset(table_row, t0 + threadIdx.x, page_size, n_kv_head, kv_head, HD);
        __syncthreads();
        for (int i = threadIdx.x; i < n_keys * WORDS; i += blockDim.x) {
            const int j = i / WORDS, c = i % WORDS;
            keys[j][c] = ((const u32*)(k_cache + row_at[j]))[c];
            values[j][c] = ((const u32*)(v_cache + row_at[j]))[c];
        }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < ROWS_PER_WARP; ++i) {
            const int r = warp + ATT_WARPS * i;
            if (r >= n_rows) continue;  // uniform across the warp
            const bool visible = lane < n_keys && t0 + lane <= row_pos[r];
            const float s = visible ? dot_key<HD>(q_s[r], keys[lane]) * scale : NEG_INF;
            const float p = rows[i].add_tile(s);
            for (int j = 0; j < n_keys; ++j)
                add_value<DPL>(rows[i].o, __shfl_sync(FULL_MASK, p, j), values[j] + lane * (DPL / 2));
        }
        __syncthreads();  // the next tile overwrites keys, values and row_at
    }

#pragma unroll
    for (int i = 0; i < ROWS_PER_WARP; ++i) {
        const int r = warp + ATT_WARPS * i;
        if (r >= n_rows) continue;
        const int t = first + r / group, g = r % group;
        float* dst = out + (i64)t * out_stride + (i64)(kv_head * group + g) * HD + lane * DPL;
        const float inv = rows[i].l > 0.0f ? 1.0f / rows[i].l : 0.0f;
#pragma unroll
        for (int k = 0; k < DPL; ++k) dst[k] = rows[i].o[k] * inv;
    }
}

#define PREFILL_ENTRY(hd)                                                                         \
    extern "C" __global__ void __launch_bounds__(128) attn_prefill_hd##hd(                        \
        const float* q, int q_stride, const int* seq_start, const int* positions,                 \
        const u16* k_cache, const u16* v_cache, const int* block_table, int max_pages,            \
        int page_size, int n_head, int n_kv_head, float scale, float* out, int out_stride) {      \
        attn_prefill<hd>(q, q_stride, seq_start, positions, k_cache, v_cache, block_table,        \
                         max_pages, page_size, n_head, n_kv_head, scale, out, out_stride);        \
    }

PREFILL_ENTRY(64)
PREFILL_ENTRY(128)
