/* ops.h — the CPU op table.
 *
 * Every op exists twice: ops_ref.c is plain single-threaded C, the
 * definition of correct; ops_fast.c is the same op with AVX2/FMA and the
 * thread pool (its bf16 matmul in panel_matmul.c, on weights the engine
 * packed into panels; on CPUs with AVX512_BF16, bf16dot.c's matmul, on
 * activations split into two bf16). tests/unit/test_kernels.c compares them
 * (fp32 tolerance: 1e-5 relative). The engine calls ops only through a table, chosen once at
 * start-up (cpu_ops_select), so a backend is a table of function pointers.
 *
 * Shapes: activations are row-major fp32, one row per token. Weight
 * matrices are (rows = out_features, cols = in_features), bf16 or fp32
 * row-major as in HF checkpoints (or bf16 in the AVX2 kernels' panels,
 * kernels/cpu/panels.h), or GGUF's quantized blocks (each row cols / block
 * elements blocks; kernels/cpu/quant.h computes with them). */
#ifndef FACET_KERNELS_CPU_OPS_H
#define FACET_KERNELS_CPU_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/threadpool.h"
#include "common/dtype.h"
#include "kernels/cpu/quant.h"

/* How a matrix's elements lie in memory. Checkpoints give WEIGHT_ROWS; the
 * engine converts bf16 matrices at load to the layout its op table's matmul
 * reads fastest (cpu_ops.bf16_layout). */
typedef enum weight_layout {
    WEIGHT_ROWS = 0, /* (rows, cols) row-major */
    WEIGHT_PANELS,   /* bf16 only: groups of 16 rows, column pairs interleaved (kernels/cpu/panels.h) */
} weight_layout;

typedef struct weight_matrix {
    dtype dtype; /* DTYPE_BF16, DTYPE_F32 or a quantized type (DTYPE_Q8_0, ...) */
    int rows, cols;
    const void *data; /* (rows, cols), laid out as layout says */
    weight_layout layout;
} weight_matrix;

/* One sequence's part of a batch, for attention. */
typedef struct attn_seq {
    int token_offset;          /* first row of this sequence in q/out */
    int n_tokens;              /* new tokens this step */
    int start_pos;             /* position of the first new token */
    const int32_t *block_table;/* KV blocks holding positions [0, start_pos + n_tokens) */
} attn_seq;

/* A paged KV cache layer: (n_blocks, n_kv_heads, block_size, head_dim) for K
 * and the same for V. Position p of a sequence lives in block
 * block_table[p / block_size], slot p % block_size. */
typedef struct kv_layer_view {
    float *k, *v;
    int block_size, n_kv_heads, head_dim;
} kv_layer_view;

/* How a rank's query heads attend (attention below). */
typedef struct attn_params {
    int n_heads;       /* query heads of this rank */
    int head_begin;    /* the global index of its first */
    int group;         /* query heads per kv head (H / K) */
    int kv_head_begin; /* the first kv head it holds */
    float scale;       /* scores = q·k * scale */
    float softcap;     /* scores -> softcap * tanh(scores / softcap) before the softmax (Gemma 2); 0: none */
    int window;        /* a query at position p sees keys at (p - window, p] (sliding layers); 0: all of [0, p] */
} attn_params;

typedef struct cpu_ops {
    const char *name;
    /* matmul multiplies bf16 weights by x split into two bf16 (the
     * AVX512_BF16 tables: hi + lo, kernels/cpu/bf16dot.h); otherwise by x */
    bool split_bf16_activations;
    /* the layout its matmul wants bf16 weights in (any layout is computed
     * correctly, this one fastest) */
    weight_layout bf16_layout;
    /* the int8 tables (cpu_ops_int8): the instruction set their matmul uses */
    quant_int8_isa int8_isa;

    /* y (n, w.rows) = x (n, w.cols) · wᵀ */
    void (*matmul)(threadpool *tp, float *y, const float *x, int n, const weight_matrix *w);

    /* y (n, d) = x / sqrt(mean(x²) + eps) * w1p; w1p is (1 + w), in fp32.
     * y may equal x. */
    void (*rmsnorm)(threadpool *tp, float *y, const float *x, const float *w1p, int n, int d, float eps);

    /* Rotates x (n, heads, head_dim) in place, rotate-half layout:
     * (a, b) = (x[i], x[i + hd/2]) -> (a cos - b sin, b cos + a sin), angle
     * pos[t] * inv_freq[i], with inv_freq (hd/2). */
    void (*rope)(threadpool *tp, float *x, int n, int heads, int head_dim, const int32_t *pos,
                 const float *inv_freq);

    /* g (n, f) = gelu_tanh(g) * u */
    void (*geglu)(threadpool *tp, float *g, const float *u, int n, int f);

    /* x (n, d) += y (n, d) */
    void (*add)(threadpool *tp, float *x, const float *y, int n, int d);

    /* out (n, d) = embed[tok - vocab_begin] * scale for tokens of this vocab
     * slice, 0 for others (their owner fills them; the all-reduce sums). */
    void (*embed)(threadpool *tp, float *out, const int32_t *tokens, int n, const weight_matrix *embed,
                  int vocab_begin, float scale);

    /* Writes k, v (n, n_kv_heads * head_dim) of new tokens into the cache. */
    void (*kv_write)(threadpool *tp, const kv_layer_view *kv, const float *k, const float *v,
                     const attn_seq *seqs, int n_seqs);

    /* out (n, n_heads * head_dim) = causal softmax(cap(q kᵀ * scale)) v over
     * each sequence's cached positions [0, pos] (or its window); query head h
     * reads kv head (head_begin + h) / group - kv_head_begin. */
    void (*attention)(threadpool *tp, float *out, const float *q, const kv_layer_view *kv,
                      const attn_seq *seqs, int n_seqs, const attn_params *p);
} cpu_ops;

const cpu_ops *cpu_ops_ref(void);
const cpu_ops *cpu_ops_fast(void);
/* cpu_ops_fast's table with kernels/cpu/bf16dot.c's matmul for bf16 weights
 * ("avx512bf16"), or the same kernel emulated over SIMDe
 * ("avx512bf16-emulated": slow, for checking its numbers on any CPU). */
const cpu_ops *cpu_ops_avx512bf16(bool emulated);
/* cpu_ops_fast's table with GGUF-quantized weights multiplied by activations
 * rounded to 8 bits (quant.h, kernels/cpu/quant_int8.c) on one instruction
 * set: "int8-avx2", "int8-avxvnni", "int8-avx512vnni", "int8-vnni-emulated"
 * (slow: for checking). llama.cpp's arithmetic: faster prefill, results
 * moved by the activations' rounding, so never the default. NULL for an
 * unknown set; the caller checks quant_int8_isa_runs. */
const cpu_ops *cpu_ops_int8(quant_int8_isa isa);
/* The fastest table this CPU supports, unless $FACET_CPU_KERNELS names one:
 * reference, avx2, avx512bf16 (where the CPU has it), avx512bf16-emulated,
 * int8 (the fastest int8 table here) or an int8 table by name.
 * A name the CPU cannot run is refused on stderr, once, and the default used. */
const cpu_ops *cpu_ops_select(void);
/* Whether the OS saves the opmask and zmm registers, which every EVEX
 * instruction needs, even on ymm (XCR0; the AVX-512 kernels ask it). */
bool cpu_os_saves_avx512_state(void);
/* Whether this CPU runs the AVX2 + FMA kernels (ops_fast.c, sample.c, quant_fast.c). */
bool cpu_has_avx2_fma(void);


#endif
