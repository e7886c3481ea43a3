// Token sampling (cpu::sampling::Sampler::sample), one block per row of logits.
//
// Semantics are the CPU's:
// - greedy (temperature ≤ 0 or top_k = 1): the largest logit, ties to the lowest id;
// - otherwise, with z = logit · (1/T), tokens are ranked by z descending (f32::total_cmp), ties
//   by ascending id. top-k keeps the first k of that ranking; top-p the shortest prefix whose
//   mass Σ e^(z − z_max), added in rank order, reaches top_p · Σ_all e^(z − z_max); min-p the
//   tokens with z ≥ z_max + ln(min_p). The kept set is the shortest of these prefixes (at
//   least one token), so a tie at the cut-off is split by id exactly as the CPU splits it.
// - the draw is Gumbel-max over the kept set: the token maximising z + g(seed, step, id), ties
//   to the larger z and then the lower id, with g from the CPU's counter-based stream. As on the
//   CPU, a token whose z is more than GUMBEL_MAX below the first-ranked token's score cannot win
//   and gets no noise drawn.
//
// Nothing is sorted: the cut-off of a prefix is found by bisection over the 2^32 order keys of
// z (order_key below): the largest key K whose prefix {key ≥ K} still satisfies the filter,
// then, inside K's tie group, by bisection over ids. Each step is one pass over the row with a
// deterministic block reduction, ≤ 32 + 32 + 16 passes in the worst case.
//
// Where the result can differ from the CPU (documented in kernels/cuda/README.md): top-p sums
// its mass with a tree reduction and CUDA's expf instead of the CPU's sequential glibc sum, so a
// nucleus whose cumulative mass lands within rounding of top_p · total may end one token
// earlier or later; and ln in the Gumbel noise is evaluated in double and rounded, which
// equals glibc's logf whenever that is correctly rounded. Everything else (z, z_max, the min-p
// bound, ranks, ties, the random stream) is bitwise the CPU's. NaN logits are not supported.
//
// Per-row parameters live in device memory (a CUDA graph replays the same pointers while the
// host rewrites step): see SampleRow in kernels/src/cuda/abi.rs, which mirrors SampleParams.

#define GUMBEL_MAX 18.0f
#define SAMPLE_THREADS 1024

struct SampleParams {
    u64 seed;
    u64 step;                  // the sampler's step counter for this draw
    float temperature;         // ≤ 0: greedy
    float top_p;               // ≥ 1: off
    float log_min_p;           // ln(min_p) as the CPU computes it (f32::ln); −inf: min-p off
    float repetition_penalty;  // used by apply_penalties
    float presence_penalty;
    float frequency_penalty;
    u32 top_k;  // 0: off
    u32 reserved;
};
static_assert(sizeof(SampleParams) == 48, "SampleParams mirrors abi.rs SampleRow");

// f32::total_cmp's order as unsigned integers: flip every bit of negatives, the sign of the rest.
__device__ __forceinline__ u32 order_key(float f) {
    const u32 b = __float_as_uint(f);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__device__ __forceinline__ float key_value(u32 k) {
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k);
}

// One row of the block: its logits and the temperature, giving every thread the same z.
struct Row {
    const float* logits;
    u32 n;
    float inv_t;
    __device__ __forceinline__ float z(u32 i) const { return __fmul_rn(logits[i], inv_t); }
};

struct SampleShared {
    u32 u[32];
    float f[32];
    u32 tie_len;
};

// Number of tokens with key ≥ k (k = 2^32 stands for "none": callers pass a u64).
__device__ u32 count_from(const Row& row, u64 k, SampleShared& sh) {
    u32 count = 0;
    for (u32 i = threadIdx.x; i < row.n; i += blockDim.x) count += order_key(row.z(i)) >= k;
    return block_reduce(count, sh.u, SumOp());
}

// Σ e^(z − z_max) over the tokens with key ≥ k. The same thread split and reduction tree for
// every k, so the result never decreases when k does (the bisection needs that).
__device__ float mass_from(const Row& row, u64 k, float z_max, SampleShared& sh) {
    float mass = 0.0f;
    for (u32 i = threadIdx.x; i < row.n; i += blockDim.x) {
        const float z = row.z(i);
        if (order_key(z) >= k) mass += expf(z - z_max);
    }
    return block_reduce(mass, sh.f, SumOp());
}

// Number of tokens with key == k and id ≤ c.
__device__ u32 count_tied(const Row& row, u32 k, u32 c, SampleShared& sh) {
    u32 count = 0;
    for (u32 i = threadIdx.x; i <= c && i < row.n; i += blockDim.x) count += order_key(row.z(i)) == k;
    return block_reduce(count, sh.u, SumOp());
}

// The largest key in [lo, hi] for which holds(key) is true, given that holds(lo) is and that
// holds is monotone (true below some key, false above).
template <typename Holds>
__device__ u32 largest_key(u32 lo, u32 hi, Holds holds) {
    while (lo < hi) {
        const u32 mid = (u32)(((u64)lo + hi + 1) / 2);
        if (holds(mid)) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

// The cut-off of the first `len` ranked tokens: they are the tokens with key > *key, plus those
// with key == *key and id ≤ *last_id.
__device__ void prefix_cutoff(const Row& row, u32 len, u32 min_key, u32 max_key, u32* key,
                              u32* last_id, SampleShared& sh) {
    *key = largest_key(min_key, max_key, [&](u32 k) { return count_from(row, k, sh) >= len; });
    const u32 above = count_from(row, (u64)*key + 1, sh);
    const u32 tied = count_from(row, *key, sh) - above;
    const u32 take = len - above;  // 1 ≤ take ≤ tied
    if (take == tied) {
        *last_id = row.n;
        return;
    }
    u32 lo = 0, hi = row.n - 1;  // the smallest id c with count_tied(c) ≥ take
    while (lo < hi) {
        const u32 mid = (lo + hi) / 2;
        if (count_tied(row, *key, mid, sh) >= take) hi = mid;
        else lo = mid + 1;
    }
    *last_id = lo;
}

// Length of the top-p prefix: the first ranked tokens whose mass reaches target.
__device__ u32 top_p_len(const Row& row, float z_max, float target, u32 min_key, u32 max_key,
                         SampleShared& sh) {
    const u32 key = largest_key(min_key, max_key, [&](u32 k) { return mass_from(row, k, z_max, sh) >= target; });
    const float above_mass = mass_from(row, (u64)key + 1, z_max, sh);
    const u32 above = count_from(row, (u64)key + 1, sh);
    const u32 tied = count_from(row, key, sh) - above;
    // The tie group is added one token at a time, as the CPU's running sum does.
    if (threadIdx.x == 0) {
        const float e = expf(key_value(key) - z_max);
        float mass = above_mass;
        u32 take = tied;
        for (u32 i = 1; i <= tied; ++i) {
            mass += e;
            if (mass >= target) {
                take = i;
                break;
            }
        }
        sh.tie_len = take;
    }
    __syncthreads();
    return above + sh.tie_len;
}

struct Candidate {
    float v;  // z + Gumbel noise
    u32 key;  // order key of z
    u32 id;

    __device__ __forceinline__ bool beats(const Candidate& o) const {
        return v > o.v || (v == o.v && (key > o.key || (key == o.key && id < o.id)));
    }
};

__device__ __forceinline__ Candidate shfl_candidate(const Candidate& c, int offset) {
    Candidate o;
    o.v = __shfl_xor_sync(FULL_MASK, c.v, offset);
    o.key = __shfl_xor_sync(FULL_MASK, c.key, offset);
    o.id = __shfl_xor_sync(FULL_MASK, c.id, offset);
    return o;
}

// logits: row r at logits + r·logits_stride, vocab values; params[r]; out_tokens[r] receives the
// sampled id. Launch: grid = rows, block = SAMPLE_THREADS (1024) threads.
extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS)
    sample_tokens(const float* logits, int logits_stride, int vocab, const SampleParams* params,
                  u32* out_tokens) {
    __shared__ SampleShared sh;
    __shared__ Candidate best_of_warp[SAMPLE_THREADS / 32];
    const i64 r = blockIdx.x;
    const SampleParams p = params[r];
    const u32 n = (u32)vocab;
    const float* l = logits + r * logits_stride;

    if (p.temperature <= 0.0f || p.top_k == 1) {
        // Greedy: the first maximum (IEEE comparison, as cpu::sampling::argmax).
        float best = NEG_INF;
        u32 best_id = n;
        for (u32 i = threadIdx.x; i < n; i += blockDim.x)
            if (best_id == n || l[i] > best) best = l[i], best_id = i;
        const float top = block_reduce(best, sh.f, MaxOp());
        const u32 id = block_reduce(best == top ? best_id : n, sh.u, MinOp());
        if (threadIdx.x == 0) out_tokens[r] = id;
        return;
    }

    const Row row{l, n, 1.0f / p.temperature};
    // The first-ranked token (largest key, lowest id) and the smallest key.
    u32 top_key = 0, top_id = n, min_key = 0xFFFFFFFFu;
    for (u32 i = threadIdx.x; i < n; i += blockDim.x) {
        const u32 k = order_key(row.z(i));
        if (top_id == n || k > top_key) top_key = k, top_id = i;
        min_key = min(min_key, k);
    }
    const u32 max_key = block_reduce(top_key, sh.u, MaxOp());
    top_id = block_reduce(top_key == max_key ? top_id : n, sh.u, MinOp());
    min_key = block_reduce(min_key, sh.u, MinOp());
    const float z_max = key_value(max_key);

    // The length of the kept prefix: the shortest of the active filters'.
    u32 len = (p.top_k == 0 || p.top_k >= n) ? n : p.top_k;
    if (p.log_min_p != NEG_INF) {
        const float bound = z_max + p.log_min_p;
        u32 count = 0;
        for (u32 i = threadIdx.x; i < n; i += blockDim.x) count += row.z(i) >= bound;
        len = min(len, block_reduce(count, sh.u, SumOp()));
    }
    if (p.top_p < 1.0f) {
        const float target = p.top_p * mass_from(row, min_key, z_max, sh);
        len = min(len, top_p_len(row, z_max, target, min_key, max_key, sh));
    }
    len = max(len, 1u);
    u32 cut_key = 0, last_id = n;
    if (len < n) prefix_cutoff(row, len, min_key, max_key, &cut_key, &last_id, sh);

    // Gumbel-max over the kept tokens, seeded with the first-ranked one (always kept).
    const Candidate top{z_max + gumbel_noise(p.seed, p.step, top_id), max_key, top_id};
    const float cut = top.v - GUMBEL_MAX;
    Candidate best{NEG_INF, 0, n};
    if (threadIdx.x == 0) best = top;
    for (u32 i = threadIdx.x; i < n; i += blockDim.x) {
        const float z = row.z(i);
        const u32 k = order_key(z);
        const bool kept = k > cut_key || (k == cut_key && i <= last_id);
        if (i == top_id || !(z > cut) || !kept) continue;
        const Candidate c{z + gumbel_noise(p.seed, p.step, i), k, i};
        if (c.beats(best)) best = c;
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        const Candidate o = shfl_candidate(best, offset);
        if (o.beats(best)) best = o;
    }
    if ((threadIdx.x & 31) == 0) best_of_warp[threadIdx.x >> 5] = best;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); ++w)
            if (best_of_warp[w].beats(best)) best = best_of_warp[w];
        out_tokens[r] = best.id;
    }
}

// Repetition, presence and frequency penalties, in place, before sample_tokens
// (Sampler::apply_penalties): for each distinct token of the penalty window with its number of
// occurrences — ids[r·max_ids + i], counts[r·max_ids + i] for i < n_ids[r], built by the host
// from the sequence's history as the CPU builds them — a positive logit is divided by the
// repetition penalty, another multiplied, then presence + frequency·count is subtracted, with
// the CPU's rounding steps. Ids outside the vocabulary are ignored.
// Launch: grid = rows, block = 128 threads.
extern "C" __global__ void apply_penalties(float* logits, int logits_stride, int vocab,
                                           const SampleParams* params, const u32* ids,
                                           const u32* counts, const int* n_ids, int max_ids) {
    const i64 r = blockIdx.x;
    const SampleParams p = params[r];
    if (p.repetition_penalty == 1.0f && p.presence_penalty == 0.0f && p.frequency_penalty == 0.0f)
        return;
    // Clamped so that a count written past the row's capacity cannot read another row's ids.
    const int n = min(n_ids[r], max_ids);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const u32 id = ids[r * max_ids + i];
        if (id >= (u32)vocab) continue;
        float* logit = logits + r * logits_stride + id;
        float v = *logit;
        v = v > 0.0f ? __fdiv_rn(v, p.repetition_penalty) : __fmul_rn(v, p.repetition_penalty);
        const float penalty =
            __fadd_rn(p.presence_penalty, __fmul_rn(p.frequency_penalty, (float)counts[r * max_ids + i]));
        *logit = __fsub_rn(v, penalty);
    }
}
