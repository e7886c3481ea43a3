// Paged KV cache: append the new tokens' keys and values.
//
// The cache stores f16, as the CPU cache does (llama.cpp's default precision; the rounding is
// f32 → f16 to nearest even, bitwise as half's convert_from_f32_slice). Layout per layer, one
// buffer for keys and one for values:
//
//     cache[page][kv_head][slot][head_dim]          (f16 bits, u16)
//
// so one (page, kv head) is a contiguous run of page_size·head_dim values that attention reads
// in one sweep. Position p of sequence s lives in page block_table[s·max_pages + p / page_size],
// slot p % page_size. Positions and the table are read from device memory, so a captured CUDA
// graph stays valid from step to step.
//
// k, v: token t's kv head h at k + t·src_stride + h·head_dim (rows of the K and V projections,
// after RoPE on K). positions[t]: the token's cache position, negative for padding (skipped);
// token_seq[t]: its sequence, i.e. its row of block_table.
// Launch: grid = (tokens, n_kv_head), block = 128 threads.

extern "C" __global__ void kv_append_f16(const float* k, const float* v, int src_stride,
                                         const int* positions, const int* token_seq,
                                         const int* block_table, int max_pages, u16* k_cache,
                                         u16* v_cache, int n_kv_head, int head_dim,
                                         int page_size) {
    const i64 t = blockIdx.x;
    const int h = blockIdx.y;
    const int pos = positions[t];
    if (pos < 0) return;
    const int page = block_table[(i64)token_seq[t] * max_pages + pos / page_size];
    const i64 dst = (((i64)page * n_kv_head + h) * page_size + pos % page_size) * head_dim;
    const i64 src = t * src_stride + (i64)h * head_dim;
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        k_cache[dst + d] = f32_to_f16(k[src + d]);
        v_cache[dst + d] = f32_to_f16(v[src + d]);
    }
}
