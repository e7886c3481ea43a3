// Rotary position embeddings, in place (cpu::rope::Rope::apply).
//
// Pair i (i < n_rot/2) of every head rotates by the angle pos·θ_i, θ_i = base^(−2i/n_rot):
// - interleaved (neox = 0): dimensions (2i, 2i+1), GGUF `llama`;
// - NeoX (neox = 1): dimensions (i, i + n_rot/2), HF checkpoints and GGUF `qwen2`.
// Dimensions n_rot..head_dim are left as they are.
//
// The frequency, the angle and its sine and cosine are rounded to f32 at the same steps as the
// CPU (powf, pos as f32 · θ, sin_cos), with libm-accurate evaluation in double, and the rotation
// uses unfused products as the CPU does; __sinf/__cosf would be wrong for large angles.
//
// x: token t's heads at x + t·row_stride + h·head_dim for h < n_heads (so Q and K inside one
// fused QKV row are each a call with their own offset and n_heads).
// positions[t]: the token's position; a negative position marks a padding token (untouched).
// Launch: grid = tokens, block = 128 threads; n_rot ≤ 512.

#define ROPE_MAX_PAIRS 256

extern "C" __global__ void rope_f32(float* x, const int* positions, int n_heads, int head_dim,
                                    int n_rot, int row_stride, float theta_base, int neox) {
    __shared__ float cos_t[ROPE_MAX_PAIRS], sin_t[ROPE_MAX_PAIRS];
    const i64 t = blockIdx.x;
    const int pos = positions[t];
    if (pos < 0) return;
    const int half = n_rot / 2;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        const float exponent = __fdiv_rn(-2.0f * (float)i, (float)n_rot);
        const float freq = (float)pow((double)theta_base, (double)exponent);
        const float angle = __fmul_rn((float)pos, freq);
        double s, c;
        sincos((double)angle, &s, &c);
        sin_t[i] = (float)s;
        cos_t[i] = (float)c;
    }
    __syncthreads();
    x += t * row_stride;
    for (int k = threadIdx.x; k < n_heads * half; k += blockDim.x) {
        const int h = k / half, i = k % half;
        float* head = x + h * head_dim;
        const int a = neox ? i : 2 * i;
        const int b = neox ? i + half : 2 * i + 1;
        const float x0 = head[a], x1 = head[b], c = cos_t[i], s = sin_t[i];
        head[a] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
        head[b] = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
    }
}
