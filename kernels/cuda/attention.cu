// attention.cu — attention over the paged bf16 KV cache.
// Reference: kernels/cpu/ops_ref.c ref_attention (causal softmax(q kᵀ * scale) v
// over each sequence's positions [0, pos]; query head h reads kv head
// (head_begin + h) / group - kv_head_begin).
//
// Two kernels, chosen per sequence by the launcher:
//   prefill (n_tokens > 1): flash-attention style. A block owns 64 query rows
//     of one sequence and one head; K/V tiles of 32 positions go through
//     shared memory; S = Q Kᵀ and O += P V run on the tensor cores (WMMA,
//     bf16 in, fp32 accumulate); the softmax is online (running max and sum
//     per row), so a prompt chunk attends to everything cached before it.
//   decode (n_tokens == 1): a block owns one sequence, one kv head and one
//     part of the context (split-K), and computes all the query heads that
//     share that kv head, so with MQA the single K/V head is read once for
//     all of them. A combine kernel merges the parts with their (max, sum).
#include <mma.h>

#include "kernels/cuda/kernels.cuh"

using namespace nvcuda;

// Offset of (position j, kv head h) in a (n_blocks, K_r, block_size, hd) cache layer.
__device__ __forceinline__ size_t kv_pos_offset(const int32_t *table, int j, int h, int n_kv_heads, int block_size,
                                                int hd) {
    size_t block = (size_t)table[j / block_size];
    return ((block * n_kv_heads + (size_t)h) * block_size + (size_t)(j % block_size)) * hd;
}

// Copies rows [j0, j0 + rows) of one kv head's K and V into shared memory
// (ld elements apart), 16 bytes per thread per step; rows at or past end are
// zeros, so that 0 * garbage can never make a NaN.
__device__ __forceinline__ void load_kv_tile(bf16 *ks, bf16 *vs, int ld, const bf16 *k_cache, const bf16 *v_cache,
                                             const int32_t *table, int j0, int rows, int end, int kvh,
                                             const attn_shape &a) {
    int vecs = a.head_dim / 8; // uint4 = 8 bf16
    for (int e = threadIdx.x; e < rows * vecs; e += blockDim.x) {
        int r = e / vecs, c = e % vecs, j = j0 + r;
        uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
        if (j < end) {
            size_t off = kv_pos_offset(table, j, kvh, a.n_kv_heads, a.block_size, a.head_dim);
            kv = reinterpret_cast<const uint4 *>(k_cache + off)[c];
            vv = reinterpret_cast<const uint4 *>(v_cache + off)[c];
        }
        reinterpret_cast<uint4 *>(ks + (size_t)r * ld)[c] = kv;
        reinterpret_cast<uint4 *>(vs + (size_t)r * ld)[c] = vv;
    }
}

// ---- prefill ------------------------------------------------------------------------

#define PF_BQ ATTN_TILE_Q // query rows per block: 4 warps x 16
#define PF_BK 32          // positions per K/V tile: one per lane in the softmax
#define PF_WARPS 4
#define PF_LDS (PF_BK + 4) // padded leading dimensions against bank conflicts
#define PF_LDP (PF_BK + 8)

struct prefill_smem { // byte offsets into dynamic shared memory, each 128-aligned
    size_t q, k, v, o, s, p, total;
    int ldq, ldo; // bf16 rows of Q/K/V, fp32 rows of O
};

__host__ __device__ inline size_t align128(size_t x) { return (x + 127) & ~(size_t)127; }

__host__ __device__ inline prefill_smem prefill_layout(int hd) {
    prefill_smem L;
    L.ldq = hd + 8;
    L.ldo = hd + 4;
    L.q = 0;
    L.k = align128(L.q + (size_t)PF_BQ * L.ldq * 2);
    L.v = align128(L.k + (size_t)PF_BK * L.ldq * 2);
    L.o = align128(L.v + (size_t)PF_BK * L.ldq * 2);
    L.s = align128(L.o + (size_t)PF_BQ * L.ldo * 4);
    L.p = align128(L.s + (size_t)PF_BQ * PF_LDS * 4);
    L.total = align128(L.p + (size_t)PF_BQ * PF_LDP * 2);
    return L;
}

// grid (tiles, H_r), block 128. out (n, H_r*hd) bf16.
__global__ void __launch_bounds__(PF_WARPS * 32)
    attention_prefill_kernel(bf16 *__restrict__ out, const float *__restrict__ q, const bf16 *__restrict__ k_cache,
                             const bf16 *__restrict__ v_cache, attn_shape a, const int4 *__restrict__ seqs,
                             const int32_t *__restrict__ tables, const int2 *__restrict__ tiles) {
    extern __shared__ __align__(128) unsigned char smem[];
    const int hd = a.head_dim, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const prefill_smem L = prefill_layout(hd);
    bf16 *Qs = (bf16 *)(smem + L.q), *Ks = (bf16 *)(smem + L.k), *Vs = (bf16 *)(smem + L.v);
    float *Os = (float *)(smem + L.o), *Ss = (float *)(smem + L.s);
    bf16 *Ps = (bf16 *)(smem + L.p);

    const int2 tile = tiles[blockIdx.x];
    const int h = blockIdx.y;
    const int4 sq = seqs[tile.x]; // {token_offset, n_tokens, start_pos, table_offset}
    const int q0 = tile.y, nq = min(PF_BQ, sq.y - q0);
    const int first_pos = sq.z + q0, kv_len = first_pos + nq; // the last row sees positions [0, kv_len)
    const int kvh = (a.head_begin + h) / a.group - a.kv_head_begin;
    const int32_t *table = tables + sq.w;

    // Q tile (64, hd) in bf16; O = 0
    for (int e = threadIdx.x; e < PF_BQ * hd; e += blockDim.x) {
        int r = e / hd, c = e % hd;
        float v = r < nq ? q[(size_t)(sq.x + q0 + r) * a.q_stride + (size_t)h * hd + c] : 0.0f;
        Qs[(size_t)r * L.ldq + c] = f2bf(v);
        Os[(size_t)r * L.ldo + c] = 0.0f;
    }
    // running max and sum of this warp's 16 rows, the same in every lane
    float m[16], l[16];
#pragma unroll
    for (int i = 0; i < 16; i++) m[i] = -INFINITY, l[i] = 0.0f;
    const int row0 = warp * 16;

    for (int j0 = 0; j0 < kv_len; j0 += PF_BK) {
        __syncthreads(); // the previous tile's K/V are no longer read
        load_kv_tile(Ks, Vs, L.ldq, k_cache, v_cache, table, j0, PF_BK, kv_len, kvh, a);
        __syncthreads();

        // S (16, 32) = Q (16, hd) · Kᵀ (hd, 32) for this warp's rows
        for (int nf = 0; nf < PF_BK / 16; nf++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
            for (int k0 = 0; k0 < hd; k0 += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb; // Kᵀ: K rows are columns
                wmma::load_matrix_sync(fa, Qs + (size_t)row0 * L.ldq + k0, L.ldq);
                wmma::load_matrix_sync(fb, Ks + (size_t)nf * 16 * L.ldq + k0, L.ldq);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(Ss + (size_t)row0 * PF_LDS + nf * 16, acc, PF_LDS, wmma::mem_row_major);
        }
        __syncwarp();

        // online softmax, a row at a time, lane = position j0 + lane
#pragma unroll
        for (int i = 0; i < 16; i++) {
            int r = row0 + i, j = j0 + lane;
            float s = (j <= first_pos + r && j < kv_len) ? Ss[r * PF_LDS + lane] * a.scale : -INFINITY;
            float m_new = fmaxf(m[i], warp_max(s));
            float p = m_new == -INFINITY ? 0.0f : expf(s - m_new);
            float alpha = m_new == -INFINITY ? 1.0f : expf(m[i] - m_new);
            l[i] = l[i] * alpha + warp_sum(p);
            m[i] = m_new;
            Ps[r * PF_LDP + lane] = f2bf(p);
            for (int c = lane; c < hd; c += 32) Os[(size_t)r * L.ldo + c] *= alpha;
        }
        __syncwarp();

        // O (16, hd) += P (16, 32) · V (32, hd)
        for (int nf = 0; nf < hd / 16; nf++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            float *o = Os + (size_t)row0 * L.ldo + nf * 16;
            wmma::load_matrix_sync(acc, o, L.ldo, wmma::mem_row_major);
            for (int k0 = 0; k0 < PF_BK; k0 += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb;
                wmma::load_matrix_sync(fa, Ps + (size_t)row0 * PF_LDP + k0, PF_LDP);
                wmma::load_matrix_sync(fb, Vs + (size_t)k0 * L.ldq + nf * 16, L.ldq);
                wmma::mma_sync(acc, fa, fb, acc);
            }
            wmma::store_matrix_sync(o, acc, L.ldo, wmma::mem_row_major);
        }
        __syncwarp();
    }

    // out = O / l for the rows that exist
    const size_t out_stride = (size_t)gridDim.y * hd;
#pragma unroll
    for (int i = 0; i < 16; i++) {
        int r = row0 + i;
        if (r >= nq) break;
        float inv = 1.0f / l[i];
        bf16 *dst = out + (size_t)(sq.x + q0 + r) * out_stride + (size_t)h * hd;
        for (int c = lane; c < hd; c += 32) dst[c] = f2bf(Os[(size_t)r * L.ldo + c] * inv);
    }
}

// ---- decode -------------------------------------------------------------------------

#define DC_THREADS 128
#define DC_TILE 32                                    // positions per step: one per lane in the softmax
#define DC_ACC ((ATTN_MAX_GROUP * 256) / DC_THREADS) // outputs per thread: group x hd / threads

struct decode_smem {
    size_t q, k, v, p, total;
    int ld;
};

__host__ __device__ inline decode_smem decode_layout(int hd, int group) {
    decode_smem L;
    L.ld = hd + 8;
    L.q = 0;
    L.k = align128((size_t)group * hd * 4);
    L.v = align128(L.k + (size_t)DC_TILE * L.ld * 2);
    L.p = align128(L.v + (size_t)DC_TILE * L.ld * 2);
    L.total = align128(L.p + (size_t)group * DC_TILE * 4);
    return L;
}

// Local query heads [h0, h1) that read local kv head kvh.
__device__ __forceinline__ void heads_of_kv(const attn_shape &a, int kvh, int *h0, int *h1) {
    int g = a.kv_head_begin + kvh;
    *h0 = max(g * a.group - a.head_begin, 0);
    *h1 = min((g + 1) * a.group - a.head_begin, a.n_heads);
}

// grid (n_decode, K_r, n_splits), block 128. Writes the part's unnormalized
// output, max and sum for each query head of the group.
__global__ void __launch_bounds__(DC_THREADS)
    attention_decode_kernel(const float *__restrict__ q, const bf16 *__restrict__ k_cache,
                            const bf16 *__restrict__ v_cache, attn_shape a, const int4 *__restrict__ seqs,
                            const int32_t *__restrict__ tables, const int32_t *__restrict__ decode_seqs, int n_splits,
                            float *__restrict__ partial_o, float *__restrict__ partial_ml) {
    extern __shared__ __align__(128) unsigned char smem[];
    __shared__ float m_s[ATTN_MAX_GROUP], l_s[ATTN_MAX_GROUP], alpha_s[ATTN_MAX_GROUP];
    const int hd = a.head_dim, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int d = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
    int h0, h1;
    heads_of_kv(a, kvh, &h0, &h1);
    const int G = h1 - h0;
    if (G <= 0) return; // a replicated kv head none of this rank's query heads uses

    const int4 sq = seqs[decode_seqs[d]];
    const int ctx = sq.z + 1;
    const int per_split = ceil_div(ceil_div(ctx, n_splits), DC_TILE) * DC_TILE;
    const int s0 = split * per_split, s1 = min(ctx, s0 + per_split);
    float *ml = partial_ml + ((size_t)d * a.n_heads * n_splits) * 2;
    if (s0 >= s1) { // an empty part: the combine skips it
        if (threadIdx.x < G) {
            size_t i = (size_t)(h0 + threadIdx.x) * n_splits + split;
            ml[2 * i] = -INFINITY, ml[2 * i + 1] = 0.0f;
        }
        return;
    }

    const decode_smem L = decode_layout(hd, a.group);
    float *qs = (float *)(smem + L.q), *ps = (float *)(smem + L.p);
    bf16 *Ks = (bf16 *)(smem + L.k), *Vs = (bf16 *)(smem + L.v);
    const int32_t *table = tables + sq.w;
    for (int e = threadIdx.x; e < G * hd; e += blockDim.x)
        qs[e] = q[(size_t)sq.x * a.q_stride + (size_t)h0 * hd + e];
    if (threadIdx.x < G) m_s[threadIdx.x] = -INFINITY, l_s[threadIdx.x] = 0.0f;

    float acc[DC_ACC];
#pragma unroll
    for (int i = 0; i < DC_ACC; i++) acc[i] = 0.0f;

    for (int j0 = s0; j0 < s1; j0 += DC_TILE) {
        __syncthreads(); // the previous tile is no longer read; q and m_s are written
        load_kv_tile(Ks, Vs, L.ld, k_cache, v_cache, table, j0, DC_TILE, s1, kvh, a);
        __syncthreads();
        // scores: a warp per (head, position) pair, lanes across hd
        for (int pair = warp; pair < G * DC_TILE; pair += DC_THREADS / 32) {
            int g = pair / DC_TILE, jj = pair % DC_TILE;
            const float *qg = qs + g * hd;
            const bf16 *kr = Ks + (size_t)jj * L.ld;
            float dot = 0.0f;
            for (int c = lane * 2; c < hd; c += 64) {
                float2 kf = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(kr + c));
                dot += qg[c] * kf.x + qg[c + 1] * kf.y;
            }
            dot = warp_sum(dot);
            if (lane == 0) ps[g * DC_TILE + jj] = j0 + jj < s1 ? dot * a.scale : -INFINITY;
        }
        __syncthreads();
        // online softmax: a warp per head, lane = position
        for (int g = warp; g < G; g += DC_THREADS / 32) {
            float s = ps[g * DC_TILE + lane];
            float m_old = m_s[g];
            float m_new = fmaxf(m_old, warp_max(s));
            float p = s == -INFINITY ? 0.0f : expf(s - m_new);
            float alpha = m_old == -INFINITY ? 0.0f : expf(m_old - m_new);
            float sum = warp_sum(p);
            ps[g * DC_TILE + lane] = p;
            if (lane == 0) m_s[g] = m_new, l_s[g] = l_s[g] * alpha + sum, alpha_s[g] = alpha;
        }
        __syncthreads();
        // acc (g, c) = acc * alpha[g] + sum_j p[g][j] v[j][c]
#pragma unroll
        for (int i = 0; i < DC_ACC; i++) {
            int e = threadIdx.x + i * DC_THREADS;
            if (e < G * hd) {
                int g = e / hd, c = e % hd;
                float v = acc[i] * alpha_s[g];
                const float *pg = ps + g * DC_TILE;
                for (int jj = 0; jj < DC_TILE; jj++) v += pg[jj] * bf2f(Vs[(size_t)jj * L.ld + c]);
                acc[i] = v;
            }
        }
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < DC_ACC; i++) {
        int e = threadIdx.x + i * DC_THREADS;
        if (e < G * hd) {
            int g = e / hd, c = e % hd;
            partial_o[(((size_t)d * a.n_heads + h0 + g) * n_splits + split) * hd + c] = acc[i];
        }
    }
    if (threadIdx.x < G) {
        size_t i = (size_t)(h0 + threadIdx.x) * n_splits + split;
        ml[2 * i] = m_s[threadIdx.x], ml[2 * i + 1] = l_s[threadIdx.x];
    }
}

// grid (n_decode, H_r), block 128: out = sum_i e^(m_i - M) o_i / sum_i e^(m_i - M) l_i.
__global__ void attention_combine_kernel(bf16 *__restrict__ out, attn_shape a, const int4 *__restrict__ seqs,
                                         const int32_t *__restrict__ decode_seqs, int n_splits,
                                         const float *__restrict__ partial_o, const float *__restrict__ partial_ml) {
    const int d = blockIdx.x, h = blockIdx.y, hd = a.head_dim;
    const float *ml = partial_ml + ((size_t)d * a.n_heads + h) * n_splits * 2;
    const float *po = partial_o + ((size_t)d * a.n_heads + h) * n_splits * hd;
    float M = -INFINITY;
    for (int i = 0; i < n_splits; i++) M = fmaxf(M, ml[2 * i]);
    float L = 0.0f;
    for (int i = 0; i < n_splits; i++)
        if (ml[2 * i] != -INFINITY) L += expf(ml[2 * i] - M) * ml[2 * i + 1];
    const int4 sq = seqs[decode_seqs[d]];
    bf16 *dst = out + (size_t)sq.x * a.n_heads * hd + (size_t)h * hd;
    for (int c = threadIdx.x; c < hd; c += blockDim.x) {
        float v = 0.0f;
        for (int i = 0; i < n_splits; i++)
            if (ml[2 * i] != -INFINITY) v += expf(ml[2 * i] - M) * po[(size_t)i * hd + c];
        dst[c] = f2bf(v / L);
    }
}

// ---- launcher -----------------------------------------------------------------------

int attention_decode_splits(int n_decode, int n_kv_heads, int n_sm) {
    int blocks = n_decode * n_kv_heads;
    int s = blocks > 0 ? ceil_div(2 * n_sm, blocks) : 1;
    return s < 1 ? 1 : s > ATTN_MAX_SPLITS ? ATTN_MAX_SPLITS : s;
}

static bool check_shape(const attn_shape *a, errbuf *err) {
    if (a->head_dim % 16 != 0 || a->head_dim > 256)
        return errbuf_set(err, "attention: head_dim %d is not a multiple of 16 up to 256", a->head_dim);
    if (a->group > ATTN_MAX_GROUP)
        return errbuf_set(err, "attention: %d query heads per kv head (at most %d)", a->group, ATTN_MAX_GROUP);
    return true;
}

bool attention_init(errbuf *err) {
    // the largest shapes check_shape allows: hd 256, 16 heads per kv head
    CUDA_TRY(cudaFuncSetAttribute(attention_prefill_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  (int)prefill_layout(256).total));
    CUDA_TRY(cudaFuncSetAttribute(attention_decode_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  (int)decode_layout(256, ATTN_MAX_GROUP).total));
    return true;
}

bool launch_attention(bf16 *out, const float *q, const bf16 *k_cache, const bf16 *v_cache, const attn_shape *a,
                      const attn_step *st, cudaStream_t s, errbuf *err) {
    if (!check_shape(a, err)) return false;
    if (st->n_tiles > 0) {
        size_t bytes = prefill_layout(a->head_dim).total;
        attention_prefill_kernel<<<dim3(st->n_tiles, a->n_heads), PF_WARPS * 32, bytes, s>>>(
            out, q, k_cache, v_cache, *a, st->seqs, st->block_tables, st->prefill_tiles);
        LAUNCH_TRY(attention_prefill_kernel);
    }
    if (st->n_decode > 0) {
        size_t bytes = decode_layout(a->head_dim, a->group).total;
        attention_decode_kernel<<<dim3(st->n_decode, a->n_kv_heads, st->n_splits), DC_THREADS, bytes, s>>>(
            q, k_cache, v_cache, *a, st->seqs, st->block_tables, st->decode_seqs, st->n_splits, st->partial_o,
            st->partial_ml);
        LAUNCH_TRY(attention_decode_kernel);
        attention_combine_kernel<<<dim3(st->n_decode, a->n_heads), 128, 0, s>>>(
            out, *a, st->seqs, st->decode_seqs, st->n_splits, st->partial_o, st->partial_ml);
        LAUNCH_TRY(attention_combine_kernel);
    }
    return true;
}
