// attention.cu — attention over the paged bf16 KV cache.
// Reference: kernels/cpu/ops_ref.c ref_attention (causal softmax(q kᵀ * scale) v
// over each sequence's positions [0, pos]; query head h reads kv head
// (head_begin + h) / group - kv_head_begin).
//
// Two kernels, chosen per sequence by the launcher:
//   prefill (n_tokens > 1): FlashAttention-2. A block owns 64 query rows of
//     one sequence and one head; K/V tiles of 64 positions go through shared
//     memory; S = Q Kᵀ and O += P V run on the tensor cores (mma.sync, bf16
//     in, fp32 accumulate, both in registers); the softmax is online (running
//     max and sum per row), so a prompt chunk attends to everything cached
//     before it.
//   decode (n_tokens == 1): a block owns one sequence, one kv head and one
//     part of the context (split-K), and computes all the query heads that
//     share that kv head, so with MQA the single K/V head is read once for
//     all of them. A combine kernel merges the parts with their (max, sum).
#include "kernels/cuda/kernels.cuh"

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
//
// FlashAttention-2 on mma.sync (m16n8k16, bf16 in, fp32 accumulate), with the
// PTX ISA's documented fragment layouts so that S and O stay in registers:
// lane = 4 g + t holds, of a 16 x 8 accumulator, rows g and g + 8, columns
// 2t and 2t + 1. A block owns 64 query rows of one sequence and one head
// (4 warps x 16 rows); K/V tiles of 64 positions stream through shared memory
// with cp.async: V(t) loads while S(t) = Q K(t)ᵀ runs, K(t+1) while O += P V(t).
// Registers at hd 256: O 16 x 256 fp32 = 128 per lane, S 16 x 64 = 32 per lane.

#define PF_BQ ATTN_TILE_Q // query rows per block: 4 warps x 16
#define PF_BK 64          // positions per K/V tile
#define PF_WARPS 4

// Shared memory: Q (64, hd), K (64, hd), V (64, hd) bf16, rows hd + 8 apart so
// the 8 rows an ldmatrix reads start 16 bytes apart in the banks.
__host__ __device__ constexpr int prefill_ld(int hd) { return hd + 8; }
__host__ __device__ constexpr size_t prefill_smem_bytes(int hd) {
    return (size_t)(PF_BQ + 2 * PF_BK) * prefill_ld(hd) * sizeof(bf16);
}

__device__ __forceinline__ uint32_t smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

// Four 8 x 8 bf16 matrices; lane i gives the address of row i % 8 of matrix i / 8.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
// d (16 x 8 fp32) += a (16 x 16 bf16, row) · b (16 x 8 bf16, col)
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// 16 bytes global -> shared without a register round trip; src_bytes 0 writes zeros.
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void *src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

// Starts copying positions [j0, j0 + 64) of one kv head (K or V) into a tile;
// positions at or past end become zeros, so 0 * garbage can never make a NaN.
template <int HD>
__device__ __forceinline__ void prefill_tile_async(bf16 *tile, const bf16 *cache, const int32_t *table, int j0, int end,
                                                   int kvh, const attn_shape &a) {
    constexpr int VECS = HD / 8; // 16-byte pieces per row
    for (int e = threadIdx.x; e < PF_BK * VECS; e += PF_WARPS * 32) {
        int r = e / VECS, c = e % VECS, j = j0 + r;
        const bf16 *src = cache;
        int bytes = 0;
        if (j < end) src = cache + kv_pos_offset(table, j, kvh, a.n_kv_heads, a.block_size, HD) + c * 8, bytes = 16;
        cp_async_16(smem_addr(tile + r * prefill_ld(HD) + c * 8), src, bytes);
    }
}

// grid (H_r, tiles), block 128; tiles run last first, the causally heaviest.
// out (n, H_r*hd) bf16.
template <int HD>
__global__ void __launch_bounds__(PF_WARPS * 32, 2)
    attention_prefill_kernel(bf16 *__restrict__ out, const float *__restrict__ q, const bf16 *__restrict__ k_cache,
                             const bf16 *__restrict__ v_cache, attn_shape a, const int4 *__restrict__ seqs,
                             const int32_t *__restrict__ tables, const int2 *__restrict__ tiles) {
    constexpr int LD = prefill_ld(HD), O_TILES = HD / 8, S_TILES = PF_BK / 8;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Qs = (bf16 *)smem, *Ks = Qs + PF_BQ * LD, *Vs = Ks + PF_BK * LD;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;

    const int h = blockIdx.x;
    const int2 tile = tiles[gridDim.y - 1 - blockIdx.y];
    const int4 sq = seqs[tile.x]; // {token_offset, n_tokens, start_pos, table_offset}
    const int q0 = tile.y, nq = min(PF_BQ, sq.y - q0);
    const int first_pos = sq.z + q0, kv_len = first_pos + nq; // the last row sees positions [0, kv_len)
    const int kvh = (a.head_begin + h) / a.group - a.kv_head_begin;
    const int32_t *table = tables + sq.w;

    prefill_tile_async<HD>(Ks, k_cache, table, 0, kv_len, kvh, a);
    cp_async_commit();
    // Q tile (64, hd) fp32 -> bf16 while K(0) is in flight; rows past the chunk are zeros
    for (int e = threadIdx.x; e < PF_BQ * HD / 4; e += PF_WARPS * 32) {
        int r = e / (HD / 4), c = e % (HD / 4) * 4;
        float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (r < nq) v = *reinterpret_cast<const float4 *>(q + (size_t)(sq.x + q0 + r) * a.q_stride + (size_t)h * HD + c);
        uint2 packed = make_uint2(pack_bf16x2(v.x, v.y), pack_bf16x2(v.z, v.w));
        *reinterpret_cast<uint2 *>(Qs + r * LD + c) = packed;
    }

    // This warp's rows row0 .. row0 + 15; this lane's rows row0 + g and row0 + g + 8, which see
    // positions up to lim[0] and lim[1] (their own position, and never past the chunk).
    const int row0 = warp * 16;
    const int lim[2] = {min(first_pos + row0 + g, kv_len - 1), min(first_pos + row0 + g + 8, kv_len - 1)};
    const float scale_log2 = a.scale * 1.4426950408889634f; // softmax in base 2: exp(x) = exp2(x log2 e)
    float o[O_TILES][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
    for (int n = 0; n < O_TILES; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    // ldmatrix row addresses: Q as the A operand; K (rows = positions) as B of two n8 tiles per
    // load; V transposed as B of two n8 tiles of hd per load
    const uint32_t q_addr = smem_addr(Qs + (row0 + (lane & 15)) * LD + (lane >> 4) * 8);
    const uint32_t k_addr = smem_addr(Ks + ((lane & 7) + ((lane >> 4) << 3)) * LD + ((lane >> 3) & 1) * 8);
    const uint32_t v_addr = smem_addr(Vs + (lane & 15) * LD + (lane >> 4) * 8);

    const int n_tiles = ceil_div(kv_len, PF_BK);
    for (int kt = 0; kt < n_tiles; kt++) {
        const int j0 = kt * PF_BK;
        cp_async_wait_all();
        __syncthreads(); // K(kt) (and Q) are in; every warp is done with V(kt - 1)
        prefill_tile_async<HD>(Vs, v_cache, table, j0, kv_len, kvh, a);
        cp_async_commit();

        // S (16, 64) = Q (16, hd) · K(kt)ᵀ
        float sc[S_TILES][4];
#pragma unroll
        for (int n = 0; n < S_TILES; n++) sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.0f;
#pragma unroll
        for (int k = 0; k < HD / 16; k++) {
            uint32_t qa[4];
            ldmatrix_x4(qa, q_addr + k * 32);
#pragma unroll
            for (int n = 0; n < S_TILES; n += 2) {
                uint32_t kb[4];
                ldmatrix_x4(kb, k_addr + (uint32_t)(n * 8 * LD + k * 16) * 2);
                mma_bf16_16816(sc[n], qa, kb[0], kb[1]);
                mma_bf16_16816(sc[n + 1], qa, kb[2], kb[3]);
            }
        }
        // causal mask, only in tiles that reach past this warp's first row
        if (j0 + PF_BK - 1 > first_pos + row0) {
#pragma unroll
            for (int n = 0; n < S_TILES; n++)
#pragma unroll
                for (int c = 0; c < 4; c++)
                    if (j0 + n * 8 + 2 * t4 + (c & 1) > lim[c >> 1]) sc[n][c] = -INFINITY;
        }
        // online softmax per row: the 4 lanes of a quad hold one row's 64 scores
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float mx = -INFINITY;
#pragma unroll
            for (int n = 0; n < S_TILES; n++) mx = fmaxf(mx, fmaxf(sc[n][2 * r], sc[n][2 * r + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float m_new = fmaxf(m[r], mx * scale_log2);
            const float base = m_new == -INFINITY ? 0.0f : m_new; // a row with nothing visible yet
            const float alpha = exp2f(m[r] - base);
            m[r] = m_new;
            float sum = 0.0f;
#pragma unroll
            for (int n = 0; n < S_TILES; n++) {
                sc[n][2 * r] = exp2f(fmaf(sc[n][2 * r], scale_log2, -base));
                sc[n][2 * r + 1] = exp2f(fmaf(sc[n][2 * r + 1], scale_log2, -base));
                sum += sc[n][2 * r] + sc[n][2 * r + 1];
            }
            l[r] = l[r] * alpha + sum; // this lane's part of the row sum; the quad adds up at the end
#pragma unroll
            for (int n = 0; n < O_TILES; n++) o[n][2 * r] *= alpha, o[n][2 * r + 1] *= alpha;
        }

        cp_async_wait_all();
        __syncthreads(); // V(kt) is in; every warp is done with K(kt)
        if (kt + 1 < n_tiles) prefill_tile_async<HD>(Ks, k_cache, table, j0 + PF_BK, kv_len, kvh, a);
        cp_async_commit();

        // O (16, hd) += P (16, 64) · V(kt) (64, hd); P's A fragments are S's accumulators, in bf16
#pragma unroll
        for (int kk = 0; kk < PF_BK / 16; kk++) {
            const uint32_t pa[4] = {pack_bf16x2(sc[2 * kk][0], sc[2 * kk][1]), pack_bf16x2(sc[2 * kk][2], sc[2 * kk][3]),
                                    pack_bf16x2(sc[2 * kk + 1][0], sc[2 * kk + 1][1]),
                                    pack_bf16x2(sc[2 * kk + 1][2], sc[2 * kk + 1][3])};
#pragma unroll
            for (int n = 0; n < O_TILES; n += 2) {
                uint32_t vb[4];
                ldmatrix_x4_trans(vb, v_addr + (uint32_t)(kk * 16 * LD + n * 8) * 2);
                mma_bf16_16816(o[n], pa, vb[0], vb[1]);
                mma_bf16_16816(o[n + 1], pa, vb[2], vb[3]);
            }
        }
    }

    // out = O / l for the rows that exist
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float sum = l[r];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        const int row = row0 + g + 8 * r;
        if (row >= nq) continue;
        const float inv = 1.0f / sum;
        bf16 *dst = out + (size_t)(sq.x + q0 + row) * a.n_heads * HD + (size_t)h * HD + 2 * t4;
#pragma unroll
        for (int n = 0; n < O_TILES; n++)
            *reinterpret_cast<__nv_bfloat162 *>(dst + n * 8) = __floats2bfloat162_rn(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
    }
}

// ---- decode -------------------------------------------------------------------------

#define DC_THREADS 128
#define DC_TILE 32                                    // positions per step: one per lane in the softmax
#define DC_ACC ((ATTN_MAX_GROUP * 256) / DC_THREADS) // outputs per thread: group x hd / threads

__host__ __device__ inline size_t align128(size_t x) { return (x + 127) & ~(size_t)127; }

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

// The prefill kernel is compiled for these head sizes (Gemma: 256; the tiny preset: 64; test fixtures: 16).
#define PREFILL_HEAD_DIMS(X) X(16) X(32) X(64) X(128) X(256)

bool attention_check_head_dim(int head_dim, errbuf *err) {
    switch (head_dim) {
#define CASE(HD) case HD:
        PREFILL_HEAD_DIMS(CASE)
#undef CASE
        return true;
    default: return errbuf_set(err, "the CUDA attention kernels take head_dim 16, 32, 64, 128 or 256, not %d", head_dim);
    }
}

static bool check_shape(const attn_shape *a, errbuf *err) {
    if (!attention_check_head_dim(a->head_dim, err)) return false;
    if (a->group > ATTN_MAX_GROUP)
        return errbuf_set(err, "attention: %d query heads per kv head (at most %d)", a->group, ATTN_MAX_GROUP);
    return true;
}

bool attention_init(errbuf *err) {
    // the largest shapes check_shape allows: each prefill head size, and hd 256 with 16 heads per kv head
#define RAISE(HD)                                                                                                      \
    CUDA_TRY(cudaFuncSetAttribute(attention_prefill_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,         \
                                  (int)prefill_smem_bytes(HD)));
    PREFILL_HEAD_DIMS(RAISE)
#undef RAISE
    CUDA_TRY(cudaFuncSetAttribute(attention_decode_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  (int)decode_layout(256, ATTN_MAX_GROUP).total));
    return true;
}

static bool launch_prefill(bf16 *out, const float *q, const bf16 *k_cache, const bf16 *v_cache, const attn_shape *a,
                           const attn_step *st, cudaStream_t s, errbuf *err) {
    dim3 grid(a->n_heads, st->n_tiles);
    switch (a->head_dim) {
#define LAUNCH(HD)                                                                                                     \
    case HD:                                                                                                           \
        attention_prefill_kernel<HD><<<grid, PF_WARPS * 32, prefill_smem_bytes(HD), s>>>(                              \
            out, q, k_cache, v_cache, *a, st->seqs, st->block_tables, st->prefill_tiles);                              \
        break;
        PREFILL_HEAD_DIMS(LAUNCH)
#undef LAUNCH
    }
    LAUNCH_TRY(attention_prefill_kernel);
    return true;
}

bool launch_attention(bf16 *out, const float *q, const bf16 *k_cache, const bf16 *v_cache, const attn_shape *a,
                      const attn_step *st, cudaStream_t s, errbuf *err) {
    if (!check_shape(a, err)) return false;
    if (st->n_tiles > 0 && !launch_prefill(out, q, k_cache, v_cache, a, st, s, err)) return false;
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
