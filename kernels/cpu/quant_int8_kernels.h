/* quant_int8_kernels.h — the int8 kernels of quant_int8.c, written once and
 * included once per instruction set: before each inclusion quant_int8.c
 * defines
 *   QI_NAME(f)   f with the set's suffix (f_avx2, f_avxvnni, ...)
 *   QI_TARGET    the target attribute of every function here
 *   QI_DOT4_BODY the statement that sets `r` (s32 × 8) from `u` (unsigned
 *                bytes) and `s` (signed bytes): lane k = Σ_{t<4} u[4k+t]·s[4k+t]
 * Everything else — the unpacking (quant_blocks.h), the order of the float
 * operations — is the same text for every set, so their results are the
 * same bits. No include guard: that is the point.
 *
 * The arithmetic, per 32-weight group g of a unit (quant_blocks.h), weight
 * row w, activation row i:
 *   isum = dot4(bytes of w's group, bytes of i's rounded activations)   (exact s32, 8 lanes)
 *   acc  = fma(float(isum), s_g ⊙ d_i, acc)                             s_g: w's lane scales, d_i: i's
 * then per unit acc = fma(m_v, sx_i, acc) for the min vectors, and y =
 * hsum8(acc). Q8_0's weights are signed, and vpmaddubsw / vpdpbusd want one
 * unsigned operand: those groups take |w| and sign(a, w) instead (the same
 * products). No saturation can occur: |w| ≤ 128 with |a| ≤ 127, or w ≤ 63
 * unsigned, keeps each pair within ±32 512 for vpmaddubsw's 16-bit sums. */

#define QI QI_TARGET
#define QI_INLINE QI_TARGET static inline __attribute__((always_inline))

QI_INLINE __m256i QI_NAME(dot4)(__m256i u, __m256i s) {
    __m256i r;
    QI_DOT4_BODY
    return r;
}

/* isum of one group: w's bytes (raw Q8_0 bytes when sgn) against a's */
QI_INLINE __m256i QI_NAME(group_isum)(bool sgn, __m256i wb, __m256i wabs, __m256i a) {
    return sgn ? QI_NAME(dot4)(wabs, _mm256_sign_epi8(a, wb)) : QI_NAME(dot4)(wb, a);
}

/* ---- decode: straight from the blocks ------------------------------------- */

QI_INLINE void QI_NAME(decode_row)(int type, const qi_job *j, const uint8_t *w, int i0, int MX, float *y) {
    const int G = groups_of(type), M = mins_of(type);
    const bool sgn = type == QUANT_Q8_0;
    const int8_t *aq[QI_DECODE_MX];
    const float *ad[QI_DECODE_MX], *sx[QI_DECODE_MX];
    __m256 acc[QI_DECODE_MX];
    for (int i = 0; i < MX; i++) {
        acc[i] = _mm256_setzero_ps();
        aq[i] = j->act.q + (size_t)(i0 + i) * j->act.q_stride;
        ad[i] = j->act.d + (size_t)(i0 + i) * j->act.d_stride;
        sx[i] = j->act.sx + (size_t)(i0 + i) * j->act.sx_stride;
    }
    for (int u = 0; u < j->m.units; u++, w += j->m.unit_bytes) {
        unit_head h;
        for (size_t o = 0; o < j->m.unit_bytes; o += 64) _mm_prefetch((const char *)w + QI_PREFETCH + o, _MM_HINT_T0);
        unit_begin(type, w, u == j->m.units - 1 ? j->m.last_unit_blocks : 2, &h);
#pragma GCC unroll 8
        for (int g = 0; g < G; g++) {
            __m256i wb = group_bytes(type, group_raw(type, w, &h, g));
            __m256i wabs = sgn ? _mm256_abs_epi8(wb) : wb;
            __m256 s = group_scale(type, &h, g);
#pragma GCC unroll 4
            for (int i = 0; i < MX; i++) {
                __m256i isum = QI_NAME(group_isum)(sgn, wb, wabs, _mm256_load_si256((const __m256i *)aq[i]));
                acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(s, _mm256_load_ps(ad[i])), acc[i]);
                aq[i] += 32;
                ad[i] += 8;
            }
        }
        add_min_terms(M, MX, &h, sx, acc);
    }
    for (int i = 0; i < MX; i++) y[(size_t)i * j->m.rows] = hsum8(acc[i]);
}

QI_INLINE void QI_NAME(decode_rows)(int type, const qi_job *j, int r0, int r1) {
    for (int r = r0; r < r1; r++) {
        const uint8_t *w = j->m.w + (size_t)r * j->m.row_bytes;
        for (int i = 0; i < j->n; i += QI_DECODE_MX) {
            float *y = j->y + (size_t)i * j->m.rows + r;
            switch (j->n - i < QI_DECODE_MX ? j->n - i : QI_DECODE_MX) {
            case 1: QI_NAME(decode_row)(type, j, w, i, 1, y); break;
            case 2: QI_NAME(decode_row)(type, j, w, i, 2, y); break;
            case 3: QI_NAME(decode_row)(type, j, w, i, 3, y); break;
            default: QI_NAME(decode_row)(type, j, w, i, 4, y); break;
            }
        }
    }
}

/* ---- prefill: a tile of unpacked rows, reused by every activation row ----- */

/* Units [u0, u1) of row w into tile: per unit, per group its 32 bytes and 8
 * lane scales (64 bytes), then the min vectors (32 bytes each). */
QI_INLINE void QI_NAME(tile_fill_row)(int type, const qi_job *j, const uint8_t *w, int u0, int u1, uint8_t *tile) {
    const int G = groups_of(type), M = mins_of(type);
    w += (size_t)u0 * j->m.unit_bytes;
    for (int u = u0; u < u1; u++, w += j->m.unit_bytes) {
        unit_head h;
        unit_begin(type, w, u == j->m.units - 1 ? j->m.last_unit_blocks : 2, &h);
#pragma GCC unroll 8
        for (int g = 0; g < G; g++, tile += 64) {
            _mm256_store_si256((__m256i *)tile, group_bytes(type, group_raw(type, w, &h, g)));
            _mm256_store_ps((float *)(tile + 32), group_scale(type, &h, g));
        }
        for (int m = 0; m < M; m++, tile += 32) _mm256_store_ps((float *)tile, h.mv[m]);
    }
}

/* acc[i][r] (in memory, 8 floats each, rows i acc_stride apart) continues
 * over nu units of MX activation rows × NW tile rows, in exactly
 * decode_row's order. act: the rows' prepared activations from the tile's
 * first unit on. */
QI_INLINE void QI_NAME(tile_kernel)(int G, int M, bool sgn, int MX, int NW, const uint8_t *tile, size_t tile_stride,
                                    int nu, const qi_act *act, float *acc_mem, size_t acc_stride) {
    const size_t TU = (size_t)G * 64 + (size_t)M * 32;
    __m256 acc[QI_MX][QI_NW];
    for (int i = 0; i < MX; i++)
        for (int r = 0; r < NW; r++) acc[i][r] = _mm256_load_ps(acc_mem + i * acc_stride + r * 8);
    for (int u = 0; u < nu; u++) {
        const uint8_t *tu = tile + (size_t)u * TU;
        for (int g = 0; g < G; g++) {
            __m256i wb[QI_NW], wabs[QI_NW];
#pragma GCC unroll 2
            for (int r = 0; r < NW; r++) {
                wb[r] = _mm256_load_si256((const __m256i *)(tu + r * tile_stride + g * 64));
                wabs[r] = sgn ? _mm256_abs_epi8(wb[r]) : wb[r];
            }
            const size_t ug = (size_t)u * G + g;
#pragma GCC unroll 3
            for (int i = 0; i < MX; i++) {
                __m256i a = _mm256_load_si256((const __m256i *)(act->q + i * act->q_stride + ug * 32));
                __m256 d = _mm256_load_ps(act->d + i * act->d_stride + ug * 8);
#pragma GCC unroll 2
                for (int r = 0; r < NW; r++) {
                    __m256i isum = QI_NAME(group_isum)(sgn, wb[r], wabs[r], a);
                    __m256 s = _mm256_load_ps((const float *)(tu + r * tile_stride + g * 64 + 32));
                    acc[i][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(s, d), acc[i][r]);
                }
            }
        }
        for (int m = 0; m < M; m++)
#pragma GCC unroll 3
            for (int i = 0; i < MX; i++) {
                __m256 sxv = _mm256_load_ps(act->sx + i * act->sx_stride + ((size_t)u * M + m) * 8);
#pragma GCC unroll 2
                for (int r = 0; r < NW; r++)
                    acc[i][r] = _mm256_fmadd_ps(_mm256_load_ps((const float *)(tu + r * tile_stride + G * 64 + m * 32)),
                                                sxv, acc[i][r]);
            }
    }
    for (int i = 0; i < MX; i++)
        for (int r = 0; r < NW; r++) _mm256_store_ps(acc_mem + i * acc_stride + r * 8, acc[i][r]);
}

/* the register tile for mx ≤ QI_MX, nw ≤ QI_NW (edges get smaller ones),
 * with sgn a constant in each */
QI static void QI_NAME(tile_kernel_any)(int G, int M, bool sgn, int mx, int nw, const uint8_t *tile,
                                        size_t tile_stride, int nu, const qi_act *act, float *acc_mem,
                                        size_t acc_stride) {
#define QI_TILE_CASE(S, MX, NW)                                                                             \
    case (S) * 16 + (MX) * 4 + (NW):                                                                        \
        QI_NAME(tile_kernel)(G, M, S, MX, NW, tile, tile_stride, nu, act, acc_mem, acc_stride);            \
        break
    switch (sgn * 16 + mx * 4 + nw) {
        QI_TILE_CASE(0, 1, 1);
        QI_TILE_CASE(0, 1, 2);
        QI_TILE_CASE(0, 2, 1);
        QI_TILE_CASE(0, 2, 2);
        QI_TILE_CASE(0, 3, 1);
        QI_TILE_CASE(0, 3, 2);
        QI_TILE_CASE(1, 1, 1);
        QI_TILE_CASE(1, 1, 2);
        QI_TILE_CASE(1, 2, 1);
        QI_TILE_CASE(1, 2, 2);
        QI_TILE_CASE(1, 3, 1);
        QI_TILE_CASE(1, 3, 2);
    }
#undef QI_TILE_CASE
}

/* rows [r0, r1) (at most QI_TILE_ROWS) for the pass's activation rows, whose
 * accumulators stay in scratch across column chunks */
QI_INLINE void QI_NAME(prefill_rows)(int type, const qi_job *j, int r0, int r1, uint8_t *scratch) {
    const qlayout *L = layout_of(type);
    const int G = L->groups, M = L->mins, R = r1 - r0, n = j->n;
    const int chunk_units = qi_chunk_units(L);
    const size_t tile_stride = (size_t)chunk_units * qi_tile_unit_bytes(L), acc_stride = (size_t)R * 8;
    uint8_t *tile = scratch;
    float *acc = (float *)(scratch + (size_t)QI_TILE_ROWS * tile_stride);
    memset(acc, 0, (size_t)n * acc_stride * sizeof *acc);
    for (int u0 = 0; u0 < j->m.units; u0 += chunk_units) {
        int u1 = u0 + chunk_units < j->m.units ? u0 + chunk_units : j->m.units;
        for (int r = 0; r < R; r++)
            QI_NAME(tile_fill_row)(type, j, j->m.w + (size_t)(r0 + r) * j->m.row_bytes, u0, u1, tile + r * tile_stride);
        for (int i = 0; i < n; i += QI_MX) {
            qi_act a = j->act; /* rows i.., from unit u0 */
            a.q += (size_t)i * a.q_stride + (size_t)u0 * G * 32;
            a.d += (size_t)i * a.d_stride + (size_t)u0 * G * 8;
            a.sx += (size_t)i * a.sx_stride + (size_t)u0 * M * 8;
            int mx = n - i < QI_MX ? n - i : QI_MX;
            for (int r = 0; r < R; r += QI_NW)
                QI_NAME(tile_kernel_any)(G, M, L->q_signed, mx, R - r < QI_NW ? R - r : QI_NW, tile + r * tile_stride,
                                         tile_stride, u1 - u0, &a, acc + i * acc_stride + r * 8, acc_stride);
        }
    }
    for (int i = 0; i < n; i++)
        for (int r = 0; r < R; r++)
            j->y[(size_t)i * j->m.rows + r0 + r] = hsum8(_mm256_load_ps(acc + i * acc_stride + r * 8));
}

/* ---- one function per format, so each inlines its own unpacking ---------- */

#define QI_FORMAT_TASKS(SUFFIX, TYPE)                                                                      \
    QI static void QI_NAME(decode_task_##SUFFIX)(void *p, int task, int thread) {                         \
        (void)thread;                                                                                      \
        const qi_job *j = p;                                                                               \
        int r0 = task * j->rows_per_task, r1 = r0 + j->rows_per_task < j->m.rows ? r0 + j->rows_per_task : j->m.rows; \
        QI_NAME(decode_rows)(TYPE, j, r0, r1);                                                             \
    }                                                                                                      \
    QI static void QI_NAME(prefill_task_##SUFFIX)(void *p, int task, int thread) {                        \
        const qi_job *j = p;                                                                               \
        int r0 = task * QI_TILE_ROWS, r1 = r0 + QI_TILE_ROWS < j->m.rows ? r0 + QI_TILE_ROWS : j->m.rows;      \
        QI_NAME(prefill_rows)(TYPE, j, r0, r1, j->scratch + (size_t)thread * j->scratch_bytes);            \
    }

QI_FORMAT_TASKS(q4_0, QUANT_Q4_0)
QI_FORMAT_TASKS(q4_1, QUANT_Q4_1)
QI_FORMAT_TASKS(q5_0, QUANT_Q5_0)
QI_FORMAT_TASKS(q5_1, QUANT_Q5_1)
QI_FORMAT_TASKS(q8_0, QUANT_Q8_0)
QI_FORMAT_TASKS(q4_k, QUANT_Q4_K)
QI_FORMAT_TASKS(q5_k, QUANT_Q5_K)
QI_FORMAT_TASKS(q6_k, QUANT_Q6_K)
#undef QI_FORMAT_TASKS

static const qi_tasks QI_NAME(k_tasks)[] = {
    {QUANT_Q4_0, QI_NAME(decode_task_q4_0), QI_NAME(prefill_task_q4_0)},
    {QUANT_Q4_1, QI_NAME(decode_task_q4_1), QI_NAME(prefill_task_q4_1)},
    {QUANT_Q5_0, QI_NAME(decode_task_q5_0), QI_NAME(prefill_task_q5_0)},
    {QUANT_Q5_1, QI_NAME(decode_task_q5_1), QI_NAME(prefill_task_q5_1)},
    {QUANT_Q8_0, QI_NAME(decode_task_q8_0), QI_NAME(prefill_task_q8_0)},
    {QUANT_Q4_K, QI_NAME(decode_task_q4_k), QI_NAME(prefill_task_q4_k)},
    {QUANT_Q5_K, QI_NAME(decode_task_q5_k), QI_NAME(prefill_task_q5_k)},
    {QUANT_Q6_K, QI_NAME(decode_task_q6_k), QI_NAME(prefill_task_q6_k)},
    {-1, NULL, NULL},
};

#undef QI
#undef QI_INLINE
