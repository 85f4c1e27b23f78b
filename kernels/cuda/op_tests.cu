// op_tests.cu — each kernel on host buffers, for tests/gpu/gpu_check.c: the
// inputs go up, the outputs are poisoned (NaN bytes) on the device, the
// kernel runs once and its outputs come back, then it is timed over more
// runs (CUDA events, median). Also the two measured ceilings: device copy
// bandwidth and the bf16 GEMM rate.
#include <algorithm>
#include <stdlib.h>
#include <vector>

#include "kernels/cuda/kernels.cuh"
#include "kernels/cuda/summarize.cuh"

extern "C" {
#include "kernels/cuda/api.h"
}

// Device buffers of one test, freed together.
struct arena {
    std::vector<void *> ptrs;
    ~arena() {
        for (void *p : ptrs) cudaFree(p);
    }
    template <typename T> bool alloc(T **p, size_t count, errbuf *err) {
        CUDA_TRY(cudaMalloc((void **)p, count * sizeof(T) + 16));
        ptrs.push_back(*p);
        return true;
    }
    template <typename T> bool up(T **p, const T *host, size_t count, errbuf *err) {
        if (!alloc(p, count, err)) return false;
        CUDA_TRY(cudaMemcpy(*p, host, count * sizeof(T), cudaMemcpyHostToDevice));
        return true;
    }
    // host fp32 -> device bf16
    bool up_bf16(bf16 **p, const float *host, size_t count, errbuf *err) {
        float *tmp;
        if (!up(&tmp, host, count, err) || !alloc(p, count, err)) return false;
        if (!launch_f32_to_bf16(*p, tmp, count, 0, err)) return false;
        CUDA_TRY(cudaDeviceSynchronize());
        return true;
    }
    template <typename T> bool poisoned(T **p, size_t count, errbuf *err) {
        if (!alloc(p, count, err)) return false;
        CUDA_TRY(cudaMemset(*p, 0xff, count * sizeof(T))); // NaN in fp32 and bf16, -1 in int32
        return true;
    }
};

template <typename T> static bool down(T *host, const T *dev, size_t count, errbuf *err) {
    CUDA_TRY(cudaDeviceSynchronize());
    CUDA_TRY(cudaMemcpy(host, dev, count * sizeof(T), cudaMemcpyDeviceToHost));
    return true;
}

static bool down_bf16(float *host, const bf16 *dev, size_t count, arena &A, errbuf *err) {
    float *tmp;
    if (!A.alloc(&tmp, count, err) || !launch_bf16_to_f32(tmp, dev, count, 0, err)) return false;
    return down(host, tmp, count, err);
}

// Median time of `reps` runs of op (after one warm-up), on the default stream.
template <typename F> static bool time_op(F op, int reps, double *ms, errbuf *err) {
    if (reps <= 0) {
        *ms = 0;
        return true;
    }
    if (!op(err)) return false;
    cudaEvent_t a, b;
    CUDA_TRY(cudaEventCreate(&a));
    CUDA_TRY(cudaEventCreate(&b));
    std::vector<float> t((size_t)reps);
    bool ok = true;
    for (int i = 0; i < reps && ok; i++) {
        ok = cuda_check_at(cudaEventRecord(a, 0), "cudaEventRecord", __FILE__, __LINE__, err) && op(err) &&
             cuda_check_at(cudaEventRecord(b, 0), "cudaEventRecord", __FILE__, __LINE__, err) &&
             cuda_check_at(cudaEventSynchronize(b), "cudaEventSynchronize", __FILE__, __LINE__, err) &&
             cuda_check_at(cudaEventElapsedTime(&t[(size_t)i], a, b), "cudaEventElapsedTime", __FILE__, __LINE__, err);
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    if (!ok) return false;
    std::sort(t.begin(), t.end());
    *ms = t[(size_t)reps / 2];
    return true;
}

static bool t_add_rmsnorm(const cuda_op_shape *s, const float *x, const float *delta, const float *w1p, float *out,
                          float *x_out, int reps, double *ms, errbuf *err) {
    arena A;
    size_t nd = (size_t)s->n * s->d;
    float *dx, *dd = NULL, *dw;
    bf16 *dout;
    if (!A.up(&dx, x, nd, err) || (delta && !A.up(&dd, delta, nd, err)) || !A.up(&dw, w1p, (size_t)s->d, err) ||
        !A.poisoned(&dout, nd, err))
        return false;
    if (!launch_add_rmsnorm(dx, dd, dw, dout, NULL, s->n, s->d, s->eps, true, 0, err)) return false;
    if (!down_bf16(out, dout, nd, A, err) || !down(x_out, dx, nd, err)) return false;
    // the timed runs keep adding delta into x: the values drift, the bytes moved do not
    return time_op([&](errbuf *e) { return launch_add_rmsnorm(dx, dd, dw, dout, NULL, s->n, s->d, s->eps, true, 0, e); },
                   reps, ms, err);
}

static bool t_gemm(const cuda_op_shape *s, const float *x, const uint16_t *w, float *y, int reps, double *ms,
                   errbuf *err) {
    arena A;
    bf16 *dx, *dw;
    float *dy;
    if (!A.up_bf16(&dx, x, (size_t)s->n * s->cols, err) ||
        !A.up((uint16_t **)&dw, w, (size_t)s->rows * s->cols, err) || !A.poisoned(&dy, (size_t)s->n * s->rows, err))
        return false;
    gemm_ctx *g = gemm_create(32u << 20, err);
    if (!g) return false;
    if (s->cublas_only) gemm_use_skinny(g, false);
    bool ok = gemm_bf16(g, dy, dx, dw, s->n, s->rows, s->cols, 0, err) && down(y, dy, (size_t)s->n * s->rows, err) &&
              time_op([&](errbuf *e) { return gemm_bf16(g, dy, dx, dw, s->n, s->rows, s->cols, 0, e); }, reps, ms,
                      err);
    gemm_free(g);
    return ok;
}

static bool t_embed(const cuda_op_shape *s, const int32_t *tokens, const uint16_t *embed, float *out, int reps,
                    double *ms, errbuf *err) {
    arena A;
    int32_t *dt;
    bf16 *de;
    float *dout;
    if (!A.up(&dt, tokens, (size_t)s->n, err) || !A.up((uint16_t **)&de, embed, (size_t)s->rows * s->cols, err) ||
        !A.poisoned(&dout, (size_t)s->n * s->cols, err))
        return false;
    auto op = [&](errbuf *e) {
        return launch_embed(dout, dt, s->n, de, s->rows, s->cols, s->vocab_begin, s->scale, 0, e);
    };
    return op(err) && down(out, dout, (size_t)s->n * s->cols, err) && time_op(op, reps, ms, err);
}

static bool t_rope_kv(const cuda_op_shape *s, float *qkv, const int32_t *pos, const int32_t *cache_slot,
                      const float *inv_freq, float *k_cache, float *v_cache, int reps, double *ms, errbuf *err) {
    arena A;
    int stride = (s->heads + 2 * s->kv_heads) * s->head_dim;
    size_t cache = (size_t)s->n_blocks * s->kv_heads * s->block_size * s->head_dim;
    float *dq, *dinv;
    int32_t *dpos, *dslot;
    bf16 *dk, *dv;
    if (!A.up(&dq, qkv, (size_t)s->n * stride, err) || !A.up(&dpos, pos, (size_t)s->n, err) ||
        !A.up(&dslot, cache_slot, (size_t)s->n, err) || !A.up(&dinv, inv_freq, (size_t)s->head_dim / 2, err) ||
        !A.poisoned(&dk, cache, err) || !A.poisoned(&dv, cache, err))
        return false;
    auto op = [&](errbuf *e) {
        return launch_rope_kv(dq, s->n, stride, s->heads, s->kv_heads, s->head_dim, dpos, dslot, dinv, dk, dv,
                              s->block_size, 0, e);
    };
    if (!op(err) || !down(qkv, dq, (size_t)s->n * stride, err) || !down_bf16(k_cache, dk, cache, A, err) ||
        !down_bf16(v_cache, dv, cache, A, err))
        return false;
    return time_op(op, reps, ms, err);
}

static bool t_attention(const cuda_op_shape *s, const float *q, const float *k_cache, const float *v_cache,
                        const int32_t *seq_start_pos, const int32_t *seq_n_tokens, const int32_t *seq_token_offset,
                        const int32_t *block_tables, int n_seqs, int max_blocks_per_seq, float *out, int reps,
                        double *ms, errbuf *err) {
    arena A;
    size_t cache = (size_t)s->n_blocks * s->kv_heads * s->block_size * s->head_dim;
    size_t qd = (size_t)s->heads * s->head_dim;
    // the engine's packing (engine.cu plan_step): seqs, tiles, decode list
    std::vector<int4> seqs((size_t)n_seqs);
    std::vector<int2> tiles;
    std::vector<int32_t> decode;
    for (int i = 0; i < n_seqs; i++) {
        seqs[(size_t)i] = make_int4(seq_token_offset[i], seq_n_tokens[i], seq_start_pos[i], i * max_blocks_per_seq);
        if (seq_n_tokens[i] == 1) decode.push_back(i);
        else
            for (int r = 0; r < seq_n_tokens[i]; r += ATTN_TILE_Q) tiles.push_back(make_int2(i, r));
    }
    int sm = 0, dev = 0;
    CUDA_TRY(cudaGetDevice(&dev));
    CUDA_TRY(cudaDeviceGetAttribute(&sm, cudaDevAttrMultiProcessorCount, dev));
    int n_splits = attention_decode_splits((int)decode.size(), s->kv_heads, sm);
    size_t partial = decode.size() * (size_t)s->heads * n_splits;
    float *dq, *po, *pml;
    bf16 *dk, *dv, *dout;
    int4 *dseqs;
    int2 *dtiles = NULL;
    int32_t *ddecode = NULL, *dtables;
    if (!A.up(&dq, q, (size_t)s->n * qd, err) || !A.up_bf16(&dk, k_cache, cache, err) ||
        !A.up_bf16(&dv, v_cache, cache, err) || !A.up(&dseqs, seqs.data(), seqs.size(), err) ||
        (!tiles.empty() && !A.up(&dtiles, tiles.data(), tiles.size(), err)) ||
        (!decode.empty() && !A.up(&ddecode, decode.data(), decode.size(), err)) ||
        !A.up(&dtables, block_tables, (size_t)n_seqs * max_blocks_per_seq, err) ||
        !A.alloc(&po, partial * s->head_dim + 1, err) || !A.alloc(&pml, partial * 2 + 1, err) ||
        !A.poisoned(&dout, (size_t)s->n * qd, err) || !attention_init(err))
        return false;
    attn_shape a = {s->heads, s->kv_heads, s->head_dim, s->head_begin, s->group, s->kv_head_begin, s->block_size,
                    (int)qd, s->scale};
    attn_step st = {dseqs, dtables, dtiles, (int)tiles.size(), ddecode, (int)decode.size(), n_splits, po, pml};
    auto op = [&](errbuf *e) { return launch_attention(dout, dq, dk, dv, &a, &st, 0, e); };
    return op(err) && down_bf16(out, dout, (size_t)s->n * qd, A, err) && time_op(op, reps, ms, err);
}

static bool t_geglu(const cuda_op_shape *s, const float *gu, float *out, int reps, double *ms, errbuf *err) {
    arena A;
    float *dgu;
    bf16 *dout;
    if (!A.up(&dgu, gu, (size_t)s->n * 2 * s->d, err) || !A.poisoned(&dout, (size_t)s->n * s->d, err)) return false;
    auto op = [&](errbuf *e) { return launch_geglu(dout, dgu, s->n, s->d, 0, e); };
    return op(err) && down_bf16(out, dout, (size_t)s->n * s->d, A, err) && time_op(op, reps, ms, err);
}

static bool t_softcap(const cuda_op_shape *s, float *x, int reps, double *ms, errbuf *err) {
    arena A;
    size_t count = (size_t)s->n * s->d;
    float *dx;
    if (!A.up(&dx, x, count, err)) return false;
    auto op = [&](errbuf *e) { return launch_softcap(dx, count, s->cap, 0, e); };
    return op(err) && down(x, dx, count, err) && time_op(op, reps, ms, err);
}

static bool t_argmax(const cuda_op_shape *s, const float *x, int32_t *argmax, int32_t *gumbel, int reps, double *ms,
                     errbuf *err) {
    arena A;
    float *dx;
    int32_t *da, *dg;
    if (!A.up(&dx, x, (size_t)s->n * s->d, err) || !A.poisoned(&da, (size_t)s->n, err) ||
        !A.poisoned(&dg, (size_t)s->n, err))
        return false;
    auto op = [&](errbuf *e) {
        return launch_argmax(da, dg, dx, s->n, s->d, s->vocab_begin, s->temperature, s->seed, NULL, 0, e);
    };
    return op(err) && down(argmax, da, (size_t)s->n, err) && down(gumbel, dg, (size_t)s->n, err) &&
           time_op(op, reps, ms, err);
}

static bool t_topk(const cuda_op_shape *s, const float *x, int32_t *ids, float *vals, int32_t *n_kept, int reps,
                   double *ms, errbuf *err) {
    arena A;
    float *dx, *dv;
    int32_t *di, *dn;
    size_t nk = (size_t)s->n * s->k;
    if (!A.up(&dx, x, (size_t)s->n * s->d, err) || !A.poisoned(&di, nk, err) || !A.poisoned(&dv, nk, err) ||
        !A.poisoned(&dn, (size_t)s->n, err))
        return false;
    auto op = [&](errbuf *e) {
        return launch_topk(di, dv, dn, dx, s->n, s->d, s->vocab_begin, s->k, s->temperature, s->top_p, 0, e);
    };
    return op(err) && down(ids, di, nk, err) && down(vals, dv, nk, err) && down(n_kept, dn, (size_t)s->n, err) &&
           time_op(op, reps, ms, err);
}

// The parameters go up packed as the engine packs them; the records come back whole (heads and every slot).
static bool t_summarize(const cuda_op_shape *s, const float *x, const sample_request *reqs, row_layout L,
                        void *records, int reps, double *ms, errbuf *err) {
    arena A;
    size_t nd = (size_t)s->n * s->d, rec = (size_t)s->n * row_record_bytes(L);
    std::vector<unsigned char> meta(summarize_meta_bytes(reqs, s->n));
    summarize_meta_pack(reqs, s->n, s->vocab_begin, s->d, meta.data());
    float *dx, *dwork;
    unsigned char *dmeta, *drec;
    if (!A.up(&dx, x, nd, err) || !A.alloc(&dwork, nd, err) || !A.up(&dmeta, meta.data(), meta.size(), err) ||
        !A.poisoned(&drec, rec, err))
        return false;
    auto op = [&](errbuf *e) {
        return launch_summarize_rows(drec, dx, dwork, s->n, s->d, s->vocab_begin, L, dmeta, reqs, 0, e);
    };
    return op(err) && down((unsigned char *)records, drec, rec, err) && time_op(op, reps, ms, err);
}

// ---- ceilings ----------------------------------------------------------------------------------

static double copy_bandwidth_gbs(int device, errbuf *err) {
    const size_t bytes = (size_t)1 << 30; // far beyond any L2
    arena A;
    unsigned char *a, *b;
    double ms = 0;
    if (!cuda_check_at(cudaSetDevice(device), "cudaSetDevice", __FILE__, __LINE__, err) ||
        !A.alloc(&a, bytes, err) || !A.alloc(&b, bytes, err) ||
        !cuda_check_at(cudaMemset(a, 1, bytes), "cudaMemset", __FILE__, __LINE__, err) ||
        !time_op([&](errbuf *e) {
            return cuda_check_at(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0), "cudaMemcpyAsync",
                                 __FILE__, __LINE__, e);
        }, 20, &ms, err))
        return 0;
    return 2.0 * (double)bytes / (ms * 1e-3) / 1e9;
}

static double gemm_tflops(int device, int m, int n, int k, errbuf *err) {
    arena A;
    bf16 *x, *w;
    float *y;
    double ms = 0;
    if (!cuda_check_at(cudaSetDevice(device), "cudaSetDevice", __FILE__, __LINE__, err) ||
        !A.alloc(&x, (size_t)m * k, err) || !A.alloc(&w, (size_t)n * k, err) || !A.alloc(&y, (size_t)m * n, err) ||
        !launch_fill_random_bf16(x, (size_t)m * k, 1.0f, 1, 1, 0, err) ||
        !launch_fill_random_bf16(w, (size_t)n * k, 1.0f, 1, 2, 0, err))
        return 0;
    gemm_ctx *g = gemm_create(32u << 20, err);
    if (!g) return 0;
    bool ok = time_op([&](errbuf *e) { return gemm_bf16(g, y, x, w, m, n, k, 0, e); }, 20, &ms, err);
    gemm_free(g);
    return ok ? 2.0 * m * n * (double)k / (ms * 1e-3) / 1e12 : 0;
}

void cuda_api_fill_tests(cuda_api *api) {
    api->test_add_rmsnorm = t_add_rmsnorm;
    api->test_gemm = t_gemm;
    api->test_embed = t_embed;
    api->test_rope_kv = t_rope_kv;
    api->test_attention = t_attention;
    api->test_geglu = t_geglu;
    api->test_softcap = t_softcap;
    api->test_argmax = t_argmax;
    api->test_topk = t_topk;
    api->test_summarize = t_summarize;
    api->copy_bandwidth_gbs = copy_bandwidth_gbs;
    api->gemm_tflops = gemm_tflops;
}
