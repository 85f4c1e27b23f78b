// gemm.cu — y = x · wᵀ through cuBLASLt: bf16 operands, fp32 accumulation
// and output. Reference: kernels/cpu/ops_ref.c ref_matmul.
//
// Layout: w is (rows, cols) row-major, which is column-major (cols, rows);
// x (n, cols) row-major is column-major (cols, n); y (n, rows) row-major is
// column-major (rows, n). So in cuBLAS's column-major terms
//   y (rows x n) = op_T(W: cols x rows) · x (cols x n),  m = rows, k = cols.
// The algorithm for a shape is chosen once by cuBLASLt's heuristic and kept.
#include <stdlib.h>

#include "kernels/cuda/kernels.cuh"

#define PLAN_SLOTS 4096 // open addressing; shapes beyond it are planned each call

typedef struct gemm_plan {
    int n, rows, cols; // n == 0: empty slot
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
} gemm_plan;

struct gemm_ctx {
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

bool gemm_bf16(gemm_ctx *g, float *y, const bf16 *x, const bf16 *w, int n, int rows, int cols, cudaStream_t s,
               errbuf *err) {
    if (n == 0) return true;
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
