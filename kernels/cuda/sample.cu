// sample.cu — the sampling pieces on a rank's slice of the vocabulary.
// References: kernels/cpu/sample.c (argmax_f32, candidates_gumbel_pick,
// candidates_top_k, candidates_top_p) as worker/sampler.c uses them: the
// scaled logit is x * (1 / temperature) in fp32, the Gumbel noise and the
// comparison in double, ties to the lower vocab id.
#include <limits.h>

#include "kernels/cuda/block_select.cuh"
#include "kernels/cuda/kernels.cuh"

#define ARGMAX_THREADS 512
#define TOPK_THREADS 1024

// grid (n rows), block 512. argmax[r], gumbel[r]: global vocab ids.
__global__ void __launch_bounds__(ARGMAX_THREADS)
    argmax_kernel(int32_t *__restrict__ argmax, int32_t *__restrict__ gumbel, const float *__restrict__ x, int d,
                  int vocab_begin, float inv_t, uint64_t seed, const uint64_t *__restrict__ positions) {
    __shared__ float sv[32];
    __shared__ double sg[32];
    __shared__ int si[32];
    const float *row = x + (size_t)blockIdx.x * d;
    float best = -INFINITY;
    int best_i = INT_MAX;
    double gbest = -INFINITY;
    int gbest_i = INT_MAX;
    uint64_t pos = positions ? positions[blockIdx.x] : (uint64_t)blockIdx.x;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float v = row[c];
        if (better(v, c, best, best_i)) best = v, best_i = c;
        if (gumbel) {
            double g = (double)(v * inv_t) + gumbel_noise_dev(seed, pos, vocab_begin + c);
            if (better(g, c, gbest, gbest_i)) gbest = g, gbest_i = c;
        }
    }
    block_best(best, best_i, sv, si);
    if (threadIdx.x == 0) argmax[blockIdx.x] = vocab_begin + (best_i == INT_MAX ? 0 : best_i);
    if (gumbel) {
        __syncthreads();
        block_best(gbest, gbest_i, sg, si);
        if (threadIdx.x == 0) gumbel[blockIdx.x] = vocab_begin + (gbest_i == INT_MAX ? 0 : gbest_i);
    }
}

// grid (n rows), block 1024: the k best of the scaled row (block_top_k), sorted by rank, then the top_p prefix.
__global__ void __launch_bounds__(TOPK_THREADS)
    topk_kernel(int32_t *__restrict__ ids, float *__restrict__ vals, int32_t *__restrict__ n_kept,
                const float *__restrict__ x, int d, int vocab_begin, int k, float inv_t, float top_p) {
    __shared__ top_k_shared<TOPK_THREADS> sh;
    block_top_k(scaled_logit{x + (size_t)blockIdx.x * d, inv_t}, d, k, sh);
    // rank sort: candidate i goes where the number of better candidates says
    float *out_v = vals + (size_t)blockIdx.x * k;
    int32_t *out_i = ids + (size_t)blockIdx.x * k;
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
        int rank = top_k_rank(sh, k, i);
        out_v[rank] = sh.v[i];
        out_i[rank] = vocab_begin + sh.i[i];
    }
    __syncthreads();
    if (threadIdx.x == 0) { // candidates_top_p over the sorted list, in double
        int kept = k;
        if (top_p < 1.0f) {
            double max = out_v[0], total = 0.0, mass = 0.0;
            for (int i = 0; i < k; i++) total += exp((double)out_v[i] - max);
            for (int i = 0; i < k; i++) {
                mass += exp((double)out_v[i] - max) / total;
                if (mass >= (double)top_p) {
                    kept = i + 1;
                    break;
                }
            }
        }
        n_kept[blockIdx.x] = kept;
    }
}

bool launch_argmax(int32_t *argmax, int32_t *gumbel, const float *x, int n, int d, int vocab_begin, float temperature,
                   uint64_t seed, const uint64_t *positions, cudaStream_t s, errbuf *err) {
    if (n == 0) return true;
    if (gumbel && !(temperature > 0.0f)) return errbuf_set(err, "Gumbel-max sampling needs a temperature above 0");
    argmax_kernel<<<n, ARGMAX_THREADS, 0, s>>>(argmax, gumbel, x, d, vocab_begin, gumbel ? 1.0f / temperature : 1.0f,
                                               seed, positions);
    LAUNCH_TRY(argmax_kernel);
    return true;
}

bool launch_topk(int32_t *ids, float *vals, int32_t *n_kept, const float *x, int n, int d, int vocab_begin, int k,
                 float temperature, float top_p, cudaStream_t s, errbuf *err) {
    if (n == 0) return true;
    if (k < 1 || k > TOPK_MAX || k > d) return errbuf_set(err, "top-k: k = %d is not within [1, min(%d, %d)]", k, TOPK_MAX, d);
    if (!(temperature > 0.0f)) return errbuf_set(err, "top-k: the temperature must be above 0");
    topk_kernel<<<n, TOPK_THREADS, 0, s>>>(ids, vals, n_kept, x, d, vocab_begin, k, 1.0f / temperature, top_p);
    LAUNCH_TRY(topk_kernel);
    return true;
}
