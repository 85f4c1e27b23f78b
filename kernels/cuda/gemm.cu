// gemm.cu — y = x · wᵀ: bf16 operands, fp32 accumulation and output.
// Reference: kernels/cpu/ops_ref.c ref_matmul.
//
// Two paths, chosen per call by the number of activation rows n:
//   n = 1 (decode of one sequence): a weight-streaming kernel, bound by
//     reading w once. Measured on an H200 against cuBLASLt on 7b's decode
//     weights (docs/PERFORMANCE.md): faster at n = 1 on all four, slower at n = 4.
//   otherwise: cuBLASLt.
//
// Layout: w is (rows, cols) row-major, which is column-major (cols, rows);
// x (n, cols) row-major is column-major (cols, n); y (n, rows) row-major is
// column-major (rows, n). So in cuBLAS's column-major terms
//   y (rows x n) = op_T(W: cols x rows) · x (cols x n),  m = rows, k = cols.
// The algorithm for a shape is chosen once by cuBLASLt's heuristic and kept.
#include <stdlib.h>

#include "kernels/cuda/kernels.cuh"

#define PLAN_SLOTS 4096 // open addressing; shapes beyond it are planned each call
#define SKINNY_WARPS 8  // output rows per block, a warp each
#define SKINNY_UNROLL 4 // 16-byte weight loads in flight per lane

// ---- the weight-streaming kernel (n = 1) ---------------------------------------------------

// acc += the dot product of 8 bf16 weights and 8 bf16 activations
__device__ __forceinline__ float dot8_bf16(uint4 w, uint4 x, float acc) {
    const __nv_bfloat162 *wp = reinterpret_cast<const __nv_bfloat162 *>(&w);
    const __nv_bfloat162 *xp = reinterpret_cast<const __nv_bfloat162 *>(&x);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 a = __bfloat1622float2(wp[i]), b = __bfloat1622float2(xp[i]);
        acc = fmaf(a.x, b.x, acc);
        acc = fmaf(a.y, b.y, acc);
    }
    return acc;
}

// y (rows) = w (rows, cols) · x (cols): grid ceil(rows / 8), block 256, a warp
// per output row. w is read once, 16 bytes per load with the streaming hint
// (nothing reuses it this step), SKINNY_UNROLL loads in flight per lane before
// any is used; x is small and stays in L1/L2. Requires cols % 8 == 0 and
// 16-byte aligned x and w. (Tried on H200s, docs/PERFORMANCE.md: one guarded
// loop instead of this unguarded one plus a tail reached 67% of copy bandwidth
// on 7b's down projection against 82%; split-K and PDL gained nothing end to end.)
__global__ void __launch_bounds__(SKINNY_WARPS * 32)
    skinny_gemm_kernel(float *__restrict__ y, const bf16 *__restrict__ x, const bf16 *__restrict__ w, int rows,
                       int cols) {
    const int row = blockIdx.x * SKINNY_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    const uint4 *wr = reinterpret_cast<const uint4 *>(w + (size_t)row * cols);
    const uint4 *xr = reinterpret_cast<const uint4 *>(x);
    const int vecs = cols / 8;
    float acc = 0.0f;
    int v = lane;
    for (; v + 32 * (SKINNY_UNROLL - 1) < vecs; v += 32 * SKINNY_UNROLL) {
        uint4 wv[SKINNY_UNROLL];
#pragma unroll
        for (int u = 0; u < SKINNY_UNROLL; u++) wv[u] = __ldcs(wr + v + 32 * u);
#pragma unroll
        for (int u = 0; u < SKINNY_UNROLL; u++) acc = dot8_bf16(wv[u], __ldg(xr + v + 32 * u), acc);
    }
    for (; v < vecs; v += 32) acc = dot8_bf16(__ldcs(wr + v), __ldg(xr + v), acc);
    acc = warp_sum(acc);
    if (lane == 0) y[row] = acc;
}

static bool skinny_fits(const bf16 *x, const bf16 *w, int cols) {
    return cols % 8 == 0 && (((uintptr_t)x | (uintptr_t)w) & 15) == 0;
}

static bool launch_skinny(float *y, const bf16 *x, const bf16 *w, int rows, int cols, cudaStream_t s, errbuf *err) {
    skinny_gemm_kernel<<<ceil_div(rows, SKINNY_WARPS), SKINNY_WARPS * 32, 0, s>>>(y, x, w, rows, cols);
    LAUNCH_TRY(skinny_gemm_kernel);
    return true;
}

// ---- cuBLASLt ----------------------------------------------------------------------------

typedef struct gemm_plan {
    int n, rows, cols; // n == 0: empty slot
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} gemm_plan;

struct gemm_ctx {
    bool skinny; // n = 1 goes to the weight-streaming kernel
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t desc;
    void *workspace;
    size_t workspace_bytes;
    gemm_plan *plans; // (PLAN_SLOTS)
};

void gemm_free(gemm_ctx *g) {
    if (!g) return;
    if (g->plans) {
        for (int i = 0; i < PLAN_SLOTS; i++) {
            gemm_plan *p = &g->plans[i];
            if (p->n == 0) continue;
            cublasLtMatrixLayoutDestroy(p->a);
            cublasLtMatrixLayoutDestroy(p->b);
            cublasLtMatrixLayoutDestroy(p->c);
        }
    }
    free(g->plans);
    if (g->desc) cublasLtMatmulDescDestroy(g->desc);
    if (g->lt) cublasLtDestroy(g->lt);
    cudaFree(g->workspace);
    free(g);
}

static bool gemm_init(gemm_ctx *g, size_t workspace_bytes, errbuf *err) {
    CUBLAS_TRY(cublasLtCreate(&g->lt));
    CUBLAS_TRY(cublasLtMatmulDescCreate(&g->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CUBLAS_TRY(cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_TRY(cublasLtMatmulDescSetAttribute(g->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    CUDA_TRY(cudaMalloc(&g->workspace, workspace_bytes));
    g->workspace_bytes = workspace_bytes;
    g->skinny = true;
    g->plans = (gemm_plan *)calloc(PLAN_SLOTS, sizeof *g->plans);
    if (!g->plans) return errbuf_set(err, "out of memory for the GEMM plan cache");
    return true;
}

gemm_ctx *gemm_create(size_t workspace_bytes, errbuf *err) {
    gemm_ctx *g = (gemm_ctx *)calloc(1, sizeof *g);
    if (!g) {
        errbuf_set(err, "out of memory");
        return NULL;
    }
    if (!gemm_init(g, workspace_bytes, err)) {
        gemm_free(g);
        return NULL;
    }
    return g;
}

static bool plan_make(gemm_ctx *g, gemm_plan *p, int n, int rows, int cols, errbuf *err) {
    CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, (uint64_t)cols, (uint64_t)rows, cols));
    CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, (uint64_t)cols, (uint64_t)n, cols));
    CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p->c, CUDA_R_32F, (uint64_t)rows, (uint64_t)n, rows));
    cublasLtMatmulPreference_t pref;
    CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&pref));
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    cublasStatus_t rc = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                             &g->workspace_bytes, sizeof g->workspace_bytes);
    if (rc == CUBLAS_STATUS_SUCCESS)
        rc = cublasLtMatmulAlgoGetHeuristic(g->lt, g->desc, p->a, p->b, p->c, p->c, pref, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    CUBLAS_TRY(rc);
    if (found == 0)
        return errbuf_set(err, "cuBLASLt has no algorithm for a bf16 GEMM of (%d x %d) by (%d x %d)ᵀ", n, cols, rows,
                          cols);
    p->algo = result.algo;
    p->n = n, p->rows = rows, p->cols = cols;
    return true;
}

static void plan_destroy(gemm_plan *p) {
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->c) cublasLtMatrixLayoutDestroy(p->c);
    memset(p, 0, sizeof *p);
}

// The cached plan for a shape, making it on first use; *tmp when the cache is full.
static gemm_plan *plan_get(gemm_ctx *g, int n, int rows, int cols, gemm_plan *tmp, errbuf *err) {
    uint32_t h = ((uint32_t)n * 2654435761u) ^ ((uint32_t)rows * 40503u) ^ ((uint32_t)cols * 2246822519u);
    for (int probe = 0; probe < 16; probe++) {
        gemm_plan *p = &g->plans[(h + (uint32_t)probe) % PLAN_SLOTS];
        if (p->n == n && p->rows == rows && p->cols == cols) return p;
        if (p->n == 0) {
            if (!plan_make(g, p, n, rows, cols, err)) {
                plan_destroy(p);
                return NULL;
            }
            return p;
        }
    }
    memset(tmp, 0, sizeof *tmp);
    if (!plan_make(g, tmp, n, rows, cols, err)) {
        plan_destroy(tmp);
        return NULL;
    }
    return tmp;
}

void gemm_use_skinny(gemm_ctx *g, bool on) { g->skinny = on; }

bool gemm_bf16(gemm_ctx *g, float *y, const bf16 *x, const bf16 *w, int n, int rows, int cols, cudaStream_t s,
               errbuf *err) {
    if (n == 0) return true;
    if (n == 1 && g->skinny && skinny_fits(x, w, cols)) return launch_skinny(y, x, w, rows, cols, s, err);
    gemm_plan tmp;
    gemm_plan *p = plan_get(g, n, rows, cols, &tmp, err);
    if (!p) return false;
    const float alpha = 1.0f, beta = 0.0f;
    cublasStatus_t rc = cublasLtMatmul(g->lt, g->desc, &alpha, w, p->a, x, p->b, &beta, y, p->c, y, p->c, &p->algo,
                                       g->workspace, g->workspace_bytes, s);
    if (p == &tmp) plan_destroy(&tmp);
    CUBLAS_TRY(rc);
    return true;
}
