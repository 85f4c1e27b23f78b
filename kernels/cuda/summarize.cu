// summarize.cu — protocol/sample_rows.h's row summaries on the device. The
// reference is worker/dist_sampler.c summarize_row (dist_summarize_row), and
// the records must be the ones it makes, bit for bit where it copies or
// computes in fp32/double (tests/gpu/check_summarize.c):
//   - penalties (sampler_apply_penalties): repetition first, l > 0 ? l / rep :
//     l * rep, then l -= frequency * count + presence, each operation rounded
//     in fp32 as the host rounds it (the __f*_rn intrinsics: nvcc would
//     otherwise fuse the multiply and the adds);
//   - argmax_f32: the first index of the largest value, NaNs passed over (a
//     NaN at 0 stays the answer);
//   - Gumbel: (double)(penalized * inv_t) + gumbel_noise_dev(seed, position,
//     id), strictly larger wins, ties to the lower id; inv_t = 1.0f / T is
//     computed on the host, in fp32, like there;
//   - top-k candidates and top raw logits: block_top_k (block_select.cuh),
//     best first, ties to the lower id.
// Only sum exp(raw - max) differs: each term in double as sum_exp_f32_ref, in
// another order.
//
// Two kernels, one block per row: summarize_stats_kernel (penalized copy,
// (max, sum exp), best token, the record's head) and, when the layout has
// candidate slots, summarize_cands_kernel (the slots after the head).
#include <limits.h>
#include <math.h>
#include <string.h>

#include "kernels/cuda/block_select.cuh"
#include "kernels/cuda/summarize.cuh"

#define STATS_THREADS 512
#define CANDS_THREADS 1024

// One row's parameters as the kernels read them (64 bytes); all rows' seen tokens follow the m of them as
// {id, count} pairs (int2).
typedef struct summarize_row_meta {
    uint64_t seed;
    uint64_t position;    // of the new token: the noise key
    float inv_t;          // 1.0f / temperature (Gumbel and top-k rows), 1 otherwise
    float repetition;     // 1: off (a request's 0 means 1, as in sampler.c)
    float presence, frequency;
    int32_t mode;         // sample_mode
    int32_t top_k;        // the request's (top-k rows)
    int32_t top_logprobs; // best raw logits wanted
    int32_t seen_offset;  // this row's first pair
    int32_t seen_count;   // its pairs: the seen tokens inside the slice (none when the row has no penalties)
    int32_t pad[3];
} summarize_row_meta;
static_assert(sizeof(summarize_row_meta) % 16 == 0, "the seen pairs after the metas stay aligned");

// ---- the packed parameters (host) ----------------------------------------------------------------------

static size_t align16(size_t x) { return (x + 15) & ~(size_t)15; }

// protocol/sampling.c sampling_params_has_penalties (the module links no facet library): a row without them is
// left as it is, so its -0 logits stay -0.
static bool has_penalties(const sampling_params *p) {
    return p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f ||
           (p->repetition_penalty != 0.0f && p->repetition_penalty != 1.0f);
}

size_t summarize_meta_bytes(const sample_request *reqs, int m) {
    size_t pairs = 0;
    for (int r = 0; r < m; r++)
        if (has_penalties(&reqs[r].params) && reqs[r].seen.n > 0) pairs += (size_t)reqs[r].seen.n;
    return align16((size_t)m * sizeof(summarize_row_meta) + pairs * sizeof(int2));
}

static summarize_row_meta row_meta(const sample_request *q) {
    const sampling_params *p = &q->params;
    summarize_row_meta o;
    memset(&o, 0, sizeof o);
    o.seed = p->seed;
    o.position = q->position;
    o.mode = (int32_t)sample_mode_of(p);
    o.inv_t = o.mode == SAMPLE_GUMBEL || o.mode == SAMPLE_TOP_K ? 1.0f / p->temperature : 1.0f;
    o.repetition = p->repetition_penalty == 0.0f ? 1.0f : p->repetition_penalty;
    o.presence = p->presence_penalty;
    o.frequency = p->frequency_penalty;
    o.top_k = p->top_k;
    o.top_logprobs = q->top_logprobs;
    return o;
}

void summarize_meta_pack(const sample_request *reqs, int m, int vocab_begin, int d, void *host) {
    summarize_row_meta *metas = (summarize_row_meta *)host;
    int2 *pairs = (int2 *)(metas + m);
    int n = 0;
    for (int r = 0; r < m; r++) {
        const sample_request *q = &reqs[r];
        metas[r] = row_meta(q);
        metas[r].seen_offset = n;
        if (has_penalties(&q->params))
            for (int i = 0; i < q->seen.n; i++) {
                int k = q->seen.ids[i] - vocab_begin; // as sampler_apply_penalties
                if (k >= 0 && k < d) pairs[n++] = make_int2(q->seen.ids[i], q->seen.counts[i]);
            }
        metas[r].seen_count = n - metas[r].seen_offset;
    }
    size_t used = (size_t)m * sizeof(summarize_row_meta) + (size_t)n * sizeof(int2);
    memset((unsigned char *)host + used, 0, summarize_meta_bytes(reqs, m) - used);
}

// ---- shared by both kernels ----------------------------------------------------------------------------

// Candidate slots a row fills (dist_sampler.c: min(top_k, d), then at most L.k), and top raw logits
// (sampler_top_ids: min(top_logprobs, L.t), at most d).
__device__ __forceinline__ int cand_count(const summarize_row_meta &q, int d, row_layout L) {
    if (q.mode != SAMPLE_TOP_K) return 0;
    int k = min(q.top_k, d);
    return max(0, min(k, L.k));
}

__device__ __forceinline__ int top_count(const summarize_row_meta &q, int d, row_layout L) {
    return max(0, min(min(q.top_logprobs, L.t), d));
}

// ---- summarize_stats_kernel -----------------------------------------------------------------------------

// The penalized logit, rounded step by step as sampler_apply_penalties rounds it.
__device__ __forceinline__ float penalized(float l, int count, const summarize_row_meta &q) {
    if (q.repetition != 1.0f) l = l > 0.0f ? __fdiv_rn(l, q.repetition) : __fmul_rn(l, q.repetition);
    if (count > 0) l = __fsub_rn(l, __fadd_rn(__fmul_rn(q.frequency, (float)count), q.presence));
    return l;
}

// argmax_f32's index from a block reduction's (the first index of the largest non-NaN value; INT_MAX when every
// value is NaN): the plain loop starts at 0 and so keeps 0 when x[0] is NaN.
__device__ __forceinline__ int argmax_of_reduced(int best, const float *x) {
    return best == INT_MAX || isnan(x[0]) ? 0 : best;
}

// Sum over the block, in double; the result is valid in thread 0. scratch: 32 doubles of shared memory.
__device__ __forceinline__ double block_sum_double(double v, double *scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < n_warps ? scratch[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v;
}

// Step 1: w = raw, and the index of raw's largest value (argmax_f32), valid in thread 0.
__device__ __forceinline__ int copy_and_argmax(const float *__restrict__ raw, float *__restrict__ w, int d,
                                               float *sv, int *si) {
    float best = -INFINITY;
    int best_i = INT_MAX;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float v = raw[c];
        w[c] = v;
        if (better(v, c, best, best_i)) best = v, best_i = c;
    }
    block_best(best, best_i, sv, si);
    return best_i;
}

// Step 2: the penalties on this row's seen tokens of the slice (each id once: no two threads write one logit).
__device__ __forceinline__ void penalize_seen(float *w, int vocab_begin, const summarize_row_meta &q,
                                              const int2 *__restrict__ pairs) {
    for (int i = threadIdx.x; i < q.seen_count; i += blockDim.x) {
        int2 p = pairs[q.seen_offset + i];
        int k = p.x - vocab_begin; // inside the slice: summarize_meta_pack dropped the others
        w[k] = penalized(w[k], p.y, q);
    }
}

// grid (m rows), block STATS_THREADS. Row r: raw = logits[r] (d), w = work[r] (d) = the penalized row; the head of
// record r (row_summary) = best token, (max, sum exp(raw - max)), and the slot counts the second kernel fills.
__global__ void __launch_bounds__(STATS_THREADS)
    summarize_stats_kernel(unsigned char *__restrict__ records, size_t record_bytes, const float *__restrict__ logits,
                           float *__restrict__ work, int d, int vocab_begin, row_layout L,
                           const summarize_row_meta *__restrict__ metas, const int2 *__restrict__ pairs) {
    __shared__ float s_raw_v[32], s_work_v[32];
    __shared__ int s_raw_i[32], s_work_i[32], s_gumbel_i[32];
    __shared__ double s_gumbel_v[32], s_sum[32];
    __shared__ int s_amax;
    const summarize_row_meta q = metas[blockIdx.x];
    const float *raw = logits + (size_t)blockIdx.x * d;
    float *w = work + (size_t)blockIdx.x * d;
    const bool gumbel = q.mode == SAMPLE_GUMBEL; // the same in the whole block: uniform around the syncs

    int amax = copy_and_argmax(raw, w, d, s_raw_v, s_raw_i);
    if (threadIdx.x == 0) s_amax = argmax_of_reduced(amax, raw);
    __syncthreads(); // w is the whole copy; s_amax is set
    penalize_seen(w, vocab_begin, q, pairs);
    __syncthreads(); // w is penalized

    // Step 3: one pass over raw and w
    const float raw_max = raw[s_amax];
    double sum = 0.0, g_best = -INFINITY;
    float w_best = -INFINITY;
    int w_best_i = INT_MAX, g_best_i = INT_MAX;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float v = w[c];
        sum += exp((double)raw[c] - (double)raw_max);
        if (better(v, c, w_best, w_best_i)) w_best = v, w_best_i = c;
        if (gumbel) { // dist_sampler.c: strictly larger than the best so far (-inf at first), in column order
            double g = __dadd_rn((double)__fmul_rn(v, q.inv_t), gumbel_noise_dev(q.seed, q.position, vocab_begin + c));
            if (g > g_best) g_best = g, g_best_i = c;
        }
    }
    sum = block_sum_double(sum, s_sum);
    block_best(w_best, w_best_i, s_work_v, s_work_i);
    if (gumbel) block_best(g_best, g_best_i, s_gumbel_v, s_gumbel_i);
    if (threadIdx.x != 0) return;

    int best = argmax_of_reduced(w_best_i, w);
    row_summary h;
    h.best_value = (double)w[best];
    if (gumbel) { // no value above -inf: the argmax stays, with -inf
        h.best_value = g_best;
        if (g_best_i != INT_MAX) best = g_best_i;
    }
    h.sumexp = sum;
    h.max = raw_max;
    h.best_raw = raw[best];
    h.best_id = vocab_begin + best;
    h.n_cand = cand_count(q, d, L);
    h.n_top = top_count(q, d, L);
    h.pad = 0;
    *(row_summary *)(records + (size_t)blockIdx.x * record_bytes) = h;
}

// ---- summarize_cands_kernel -----------------------------------------------------------------------------

// Slots [from, to) unused: zero, as dist_summarize_row leaves them.
__device__ __forceinline__ void zero_slots(cand_rec *c, int from, int to) {
    for (int j = from + threadIdx.x; j < to; j += blockDim.x) c[j] = cand_rec{0, 0.0f, 0.0f, 0};
}

// grid (m rows), block CANDS_THREADS, after summarize_stats_kernel (w = the penalized rows). The L.k + L.t slots
// after record r's head: top-k rows' candidates by w * inv_t, best first, {id, w, raw}; then the row's best raw
// logits {id, raw, raw}; zeros in the slots a row does not fill.
__global__ void __launch_bounds__(CANDS_THREADS)
    summarize_cands_kernel(unsigned char *__restrict__ records, size_t record_bytes, const float *__restrict__ logits,
                           const float *__restrict__ work, int d, int vocab_begin, row_layout L,
                           const summarize_row_meta *__restrict__ metas) {
    __shared__ top_k_shared<CANDS_THREADS> sh;
    const summarize_row_meta q = metas[blockIdx.x];
    const float *raw = logits + (size_t)blockIdx.x * d, *w = work + (size_t)blockIdx.x * d;
    cand_rec *cands = (cand_rec *)(records + (size_t)blockIdx.x * record_bytes + sizeof(row_summary));
    const int k = cand_count(q, d, L), t = top_count(q, d, L); // the same in the whole block

    if (k > 0) {
        block_top_k(scaled_logit{w, q.inv_t}, d, k, sh);
        for (int j = threadIdx.x; j < k; j += blockDim.x) {
            int c = sh.i[j];
            cands[top_k_rank(sh, k, j)] = cand_rec{vocab_begin + c, w[c], raw[c], 0};
        }
    }
    zero_slots(cands, k, L.k);
    if (t > 0) { // block_top_k waits for the reads of the candidates above before it reuses sh
        block_top_k(plain_logit{raw}, d, t, sh);
        for (int j = threadIdx.x; j < t; j += blockDim.x) {
            int c = sh.i[j];
            cands[L.k + top_k_rank(sh, t, j)] = cand_rec{vocab_begin + c, raw[c], raw[c], 0};
        }
    }
    zero_slots(cands + L.k, t, L.t);
}

// ---- launch ------------------------------------------------------------------------------------------------

// What the kernels cannot do: whole rows (min_p, top_p alone), more slots than the shared memory holds.
static bool summarizable(const sample_request *reqs, int m, int d, row_layout L, errbuf *err) {
    if (d < 1) return errbuf_set(err, "row summaries: the vocabulary slice is empty");
    if (L.k < 0 || L.k > TOPK_MAX)
        return errbuf_set(err, "row summaries: %d top-k candidates per row is more than the device's %d", L.k, TOPK_MAX);
    if (L.t < 0 || L.t > SAMPLER_MAX_TOP_LOGPROBS)
        return errbuf_set(err, "row summaries: %d top log-probabilities per row is outside [0, %d]", L.t,
                          SAMPLER_MAX_TOP_LOGPROBS);
    for (int r = 0; r < m; r++)
        if (sample_mode_of(&reqs[r].params) == SAMPLE_FULL)
            return errbuf_set(err, "row summaries: row %d samples with min_p or top_p alone, which needs its whole row", r);
    return true;
}

bool launch_summarize_rows(void *records, const float *logits, float *work, int m, int d, int vocab_begin, row_layout L,
                           const void *meta, const sample_request *reqs_host, cudaStream_t s, errbuf *err) {
    if (m == 0) return true;
    if (!summarizable(reqs_host, m, d, L, err)) return false;
    const summarize_row_meta *metas = (const summarize_row_meta *)meta;
    const int2 *pairs = (const int2 *)(metas + m);
    unsigned char *rec = (unsigned char *)records;
    size_t bytes = row_record_bytes(L);
    summarize_stats_kernel<<<m, STATS_THREADS, 0, s>>>(rec, bytes, logits, work, d, vocab_begin, L, metas, pairs);
    LAUNCH_TRY(summarize_stats_kernel);
    if (L.k + L.t == 0) return true; // records are heads alone
    summarize_cands_kernel<<<m, CANDS_THREADS, 0, s>>>(rec, bytes, logits, work, d, vocab_begin, L, metas);
    LAUNCH_TRY(summarize_cands_kernel);
    return true;
}
