// kernels.cuh — the launchers of kernels/cuda/, one file per op family.
// Each returns false with the CUDA error (file:line) in err when the launch
// fails; none synchronizes. Pointers are device pointers; shapes are
// row-major, one row per token, as in kernels/cpu/ops.h.
#ifndef FACET_KERNELS_CUDA_KERNELS_CUH
#define FACET_KERNELS_CUDA_KERNELS_CUH

#include "kernels/cuda/common.cuh"

// ---- embed.cu -------------------------------------------------------------------
// ops_ref.c ref_embed: out (n, d) fp32 = embed[tok - vocab_begin] * scale for
// tokens of this rank's slice (rows [0, vocab_rows)), 0 for the others.
bool launch_embed(float *out, const int32_t *tokens, int n, const bf16 *embed, int vocab_rows, int d,
                  int vocab_begin, float scale, cudaStream_t s, errbuf *err);

// ---- norm.cu ----------------------------------------------------------------------
// ops_ref.c ref_add + ref_rmsnorm, fused: for each output row r, with source
// row i = rows ? rows[r] : r:  v = x[i] + delta[i] (delta may be NULL);
// x[i] = v when write_x; out[r] (bf16) = v / sqrt(mean(v²) + eps) * w1p.
// x, delta (n, d) fp32; w1p (d) fp32 (1 + w); out (n_out, d) bf16.
bool launch_add_rmsnorm(float *x, const float *delta, const float *w1p, bf16 *out, const int32_t *rows, int n_out,
                        int d, float eps, bool write_x, cudaStream_t s, errbuf *err);

// ---- rope.cu ------------------------------------------------------------------------
// ops_ref.c ref_rope on q and k, then ref_kv_write, fused. qkv (n, stride)
// fp32, row t = [q (H_r*hd) | k (K_r*hd) | v (K_r*hd)]; q and k are rotated
// in place at pos[t]; k and v go to the bf16 caches (n_blocks, K_r,
// block_size, hd) at cache_slot[t] = block * block_size + pos % block_size.
bool launch_rope_kv(float *qkv, int n, int stride, int n_heads, int n_kv_heads, int hd, const int32_t *pos,
                    const int32_t *cache_slot, const float *inv_freq, bf16 *k_cache, bf16 *v_cache, int block_size,
                    cudaStream_t s, errbuf *err);

// ---- attention.cu ------------------------------------------------------------------
typedef struct attn_shape {
    int n_heads;       // H_r, query heads on this rank
    int n_kv_heads;    // K_r, kv heads held
    int head_dim;      // hd: 16, 32, 64, 128 or 256 (the prefill kernel is compiled for these)
    int head_begin;    // first global query head of this rank
    int group;         // H / K (global)
    int kv_head_begin; // first global kv head held
    int block_size;    // positions per KV block
    int q_stride;      // floats between two tokens' q rows
    float scale;       // 1 / sqrt(hd)
} attn_shape;

// One step's sequences, on the device. seqs[s] = {token_offset, n_tokens,
// start_pos, table_offset}: the sequence's block table is
// block_tables[table_offset ...]. Sequences with one new token go to the
// decode kernel (decode_seqs), the others to the prefill kernel in tiles of
// ATTN_TILE_Q query rows (prefill_tiles[i] = {seq, first row in the seq}).
#define ATTN_TILE_Q 64
typedef struct attn_step {
    const int4 *seqs;
    const int32_t *block_tables;
    const int2 *prefill_tiles;
    int n_tiles;
    const int32_t *decode_seqs;
    int n_decode;
    int n_splits;         // the decode kernel splits each context into this many parts
    float *partial_o;     // (n_decode, H_r, n_splits, hd) unnormalized outputs of the parts
    float *partial_ml;    // (n_decode, H_r, n_splits, 2) each part's (max, sum of exp)
} attn_step;

// Whether the kernels are compiled for this head size (else err names it).
bool attention_check_head_dim(int head_dim, errbuf *err);
// Raises the kernels' shared-memory limits; once per device, before any launch
// (and outside graph capture).
bool attention_init(errbuf *err);
// ops_ref.c ref_attention: out (n, H_r*hd) bf16 = causal softmax(q kᵀ * scale) v
// over each sequence's cached positions [0, pos]. q fp32 (rows q_stride apart).
bool launch_attention(bf16 *out, const float *q, const bf16 *k_cache, const bf16 *v_cache, const attn_shape *a,
                      const attn_step *st, cudaStream_t s, errbuf *err);
// The decode kernel's split count for n_decode sequences on a device with n_sm
// multiprocessors, so that the grid covers the chip about twice.
int attention_decode_splits(int n_decode, int n_kv_heads, int n_sm);
#define ATTN_MAX_SPLITS 32
#define ATTN_MAX_GROUP 16

// ---- activation.cu -----------------------------------------------------------------
// ops_ref.c ref_geglu: out (n, f) bf16 = gelu_tanh(gate) * up, gu (n, 2f) = [gate | up] fp32.
bool launch_geglu(bf16 *out, const float *gu, int n, int f, cudaStream_t s, errbuf *err);
// kernels/cpu/sample.c softcap_f32: x = cap * tanh(x / cap), in place.
bool launch_softcap(float *x, size_t count, float cap, cudaStream_t s, errbuf *err);

// ---- sample.cu ----------------------------------------------------------------------
// Per row of x (n, d), a slice of the vocabulary starting at vocab_begin:
// argmax[r] = the argmax (ties: lowest column) as in kernels/cpu/sample.c
// argmax_f32; gumbel[r] (when not NULL) = the vocab id maximising
// x * (1 / temperature) + gumbel_noise(seed, positions[r], id), as
// candidates_gumbel_pick over the whole row. Ids are global (vocab_begin + column).
bool launch_argmax(int32_t *argmax, int32_t *gumbel, const float *x, int n, int d, int vocab_begin, float temperature,
                   uint64_t seed, const uint64_t *positions, cudaStream_t s, errbuf *err);
// Per row: the k best of x * (1 / temperature), best first, ties to the lower id
// (candidates_top_k), then the top_p prefix (candidates_top_p): ids, vals (n, k)
// and n_kept (n). k <= TOPK_MAX.
#define TOPK_MAX 1024
bool launch_topk(int32_t *ids, float *vals, int32_t *n_kept, const float *x, int n, int d, int vocab_begin, int k,
                 float temperature, float top_p, cudaStream_t s, errbuf *err);

// ---- gemm.cu ------------------------------------------------------------------------
// y (n, rows) fp32 = x (n, cols) bf16 · wᵀ, w (rows, cols) bf16 row-major as in
// HF checkpoints (ops_ref.c ref_matmul), fp32 accumulation: a weight-streaming
// kernel for n = 1 (decode of one sequence), cuBLASLt otherwise (plans cached
// per shape).
typedef struct gemm_ctx gemm_ctx;
gemm_ctx *gemm_create(size_t workspace_bytes, errbuf *err);
void gemm_free(gemm_ctx *g);
// false sends n = 1 to cuBLASLt too (gpu_check times both paths); on by default.
void gemm_use_skinny(gemm_ctx *g, bool on);
bool gemm_bf16(gemm_ctx *g, float *y, const bf16 *x, const bf16 *w, int n, int rows, int cols, cudaStream_t s,
               errbuf *err);

// ---- convert.cu ----------------------------------------------------------------------
// Random weights on the device: bf16 values uniform in [-scale, scale), keyed by (seed, tensor id, index).
bool launch_fill_random_bf16(bf16 *w, size_t count, float scale, uint64_t seed, uint32_t tensor, cudaStream_t s,
                             errbuf *err);
bool launch_fill_f32(float *x, size_t count, float value, cudaStream_t s, errbuf *err);
bool launch_f32_to_bf16(bf16 *out, const float *in, size_t count, cudaStream_t s, errbuf *err);
bool launch_bf16_to_f32(float *out, const bf16 *in, size_t count, cudaStream_t s, errbuf *err);

#endif
