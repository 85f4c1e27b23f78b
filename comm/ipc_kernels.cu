// ipc_kernels.cu — the all-reduce kernels of the CUDA-IPC communicator. The
// design is in comm/comm_ipc.h, the shared layout in comm/ipc_kernels.h.
//
// Every launch is IPC_BLOCKS blocks of IPC_THREADS threads. Block b of a
// call reads `round` (the all-reduces it has completed) from this rank's
// region, uses staging buffer round % 2, and exchanges flags only with block
// b of every peer:
//
//   one-shot:  copy chunk b of buf into staging  -> exchange 2·round+1 ->
//              chunk b of buf = Σ over ranks of their chunk b (rank order)
//   two-shot:  copy chunk b of every other rank's slice into staging
//                                                -> exchange 2·round+1 ->
//              staging[own slice, chunk b] = Σ over ranks (rank order)
//                                                -> exchange 2·round+2 ->
//              chunk b of every slice s from rank s's staging into buf
//
// An exchange: __syncthreads (the block's stores are done); thread q (one
// per peer) fences at system scope and release-stores the flag into peer q's
// signal[rank][b], then polls its own signal[q][b] with acquire loads until
// it is >= the flag; __syncthreads again (the acquire, through the barrier,
// orders the peer's data before every thread's loads). Data loads and stores
// go through L2 only (.cg), so a peer's data never comes from a stale L1.
//
// Flags are monotonic and unique per (call, exchange): call #k (round k-1)
// signals 2k-1, and 2k in two-shot, so a peer already a call ahead (a larger
// flag) still satisfies ">=", and nothing is ever reset.
//
// Why two staging buffers are enough: a rank writes staging[p] again at call
// k+2 only after its whole kernel k+1 completed (stream order), and every
// block of kernel k+1 waited for flag 2(k+1)-1 from every peer; a peer's
// block raises that flag only inside its kernel k+1, i.e. after its whole
// kernel k — every read it made of this rank's staging[p] — completed. This
// holds whatever the partitions of calls k and k+2 (one-shot and two-shot
// cut the buffer differently), because it rests on whole kernels, not on
// blocks. It needs each rank's all-reduces of one communicator in one stream
// order (never two in flight on different streams) and the same n on every
// rank for the same call (same algorithm, same chunks).
//
// Never hang: a waiting thread bounds its wait by the timeout (%globaltimer)
// and watches the abort word (host memory: comm_abort, or a host that gave
// up) and the sticky word (another block failed); on failure the first block
// records (code, peer, block, flag) in the host words, sets the sticky word
// and exits, and every later launch of this communicator returns at once.
#include "comm/ipc_kernels.h"

static_assert(IPC_SCRATCH_OFFSET + sizeof(float) <= IPC_HEADER_BYTES, "the region's header overflows");
static_assert(IPC_CLOSED_OFFSET + 4 * IPC_MAX_RANKS <= IPC_SCRATCH_OFFSET, "closed[] overlaps the scratch float");
static_assert(IPC_HEADER_BYTES % 256 == 0, "staging buffers must stay 256-byte aligned");
static_assert(IPC_THREADS >= IPC_MAX_RANKS, "one thread per peer signals and waits");

namespace {

// A waiting thread polls its flag (L2) every iteration, and every this many
// iterations also the abort word (host memory, a PCIe read), the sticky
// word and the clock: microseconds between checks.
constexpr unsigned kCheckEvery = 32;

// ---- memory-model primitives ---------------------------------------------------

__device__ __forceinline__ uint64_t global_ns() {
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

// The peer's region is device memory (its own GPU's or this one's): .sys scope
// covers both, and a peer in another process.
__device__ __forceinline__ void store_release_sys(uint64_t *p, uint64_t v) {
    asm volatile("st.release.sys.global.u64 [%0], %1;" ::"l"(__cvta_generic_to_global(p)), "l"(v) : "memory");
}

__device__ __forceinline__ uint64_t load_acquire_sys(const uint64_t *p) {
    uint64_t v;
    asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(__cvta_generic_to_global(p)) : "memory");
    return v;
}

// ---- the region ----------------------------------------------------------------

// l.base[q] by a chain of selects: indexing the kernel parameter with a
// run-time q would copy the whole struct to local memory.
__device__ __forceinline__ char *base_of(const ipc_launch &l, int q) {
    char *p = l.base[0];
#pragma unroll
    for (int i = 1; i < IPC_MAX_RANKS; i++)
        if (q == i) p = l.base[i];
    return p;
}

// signal[from][block] in the region at base (written by rank `from` only)
__device__ __forceinline__ uint64_t *signal_slot(char *base, int from, int block) {
    return reinterpret_cast<uint64_t *>(base + IPC_SIGNAL_OFFSET) + from * IPC_BLOCKS + block;
}

__device__ __forceinline__ unsigned int *sticky_word(char *base) {
    return reinterpret_cast<unsigned int *>(base + IPC_STICKY_OFFSET);
}

__device__ __forceinline__ uint64_t *round_slot(char *base, int block) {
    return reinterpret_cast<uint64_t *>(base + IPC_ROUNDS_OFFSET) + block;
}

// The staging buffer of `rank` that a call of this round uses.
__device__ __forceinline__ float *staging(const ipc_launch &l, int rank, uint64_t round) {
    return reinterpret_cast<float *>(base_of(l, rank) + IPC_HEADER_BYTES + (round & 1) * l.data_stride);
}

// ---- partitions ------------------------------------------------------------------

// Elements [lo, hi) of the buffer; lo <= hi, and lo a multiple of 4 unless
// the span is empty (then lo = hi = n), so that a 16-byte aligned buffer is
// aligned at lo too. The loops below never touch an element outside it.
struct span {
    size_t lo, hi;
};

__device__ __forceinline__ size_t round_up4(size_t x) { return (x + 3) & ~static_cast<size_t>(3); }
__device__ __forceinline__ size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

// One-shot: the buffer in IPC_BLOCKS chunks; block b owns chunk b.
__device__ __forceinline__ span oneshot_chunk(size_t n, int b) {
    const size_t per = round_up4((n + IPC_BLOCKS - 1) / IPC_BLOCKS);
    const size_t lo = min_size(n, per * b);
    return {lo, min_size(n, lo + per)};
}

// Two-shot: the buffer in `size` slices (slice s is reduced by rank s), each
// in IPC_BLOCKS chunks; block b owns chunk b of every slice.
__device__ __forceinline__ span twoshot_chunk(size_t n, int size, int slice, int b) {
    const size_t slice_len = round_up4((n + size - 1) / size);
    const size_t slice_lo = min_size(n, slice_len * slice), slice_hi = min_size(n, slice_lo + slice_len);
    const size_t per = round_up4((slice_len + IPC_BLOCKS - 1) / IPC_BLOCKS);
    const size_t lo = min_size(slice_hi, slice_lo + per * b);
    return {lo, min_size(slice_hi, lo + per)};
}

// ---- data movement ---------------------------------------------------------------

// dst = src over the span; float4 when vec (both pointers 16-byte aligned),
// then the tail one float at a time.
__device__ __forceinline__ void copy_span(float *dst, const float *src, span c, bool vec) {
    size_t i = c.lo;
    if (vec) {
        const size_t n4 = (c.hi - c.lo) / 4;
        const float4 *s4 = reinterpret_cast<const float4 *>(src + c.lo);
        float4 *d4 = reinterpret_cast<float4 *>(dst + c.lo);
        for (size_t v = threadIdx.x; v < n4; v += blockDim.x) __stcg(d4 + v, __ldcg(s4 + v));
        i += 4 * n4;
    }
    for (i += threadIdx.x; i < c.hi; i += blockDim.x) __stcg(dst + i, __ldcg(src + i));
}

__device__ __forceinline__ float4 add4(float4 a, float4 b) {
    return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

// dst = ((src[0] + src[1]) + src[2]) + ... + src[size-1] over the span: the
// same order on every rank and in both algorithms, hence the same bits.
// The loop over ranks is unrolled to IPC_MAX_RANKS, so src stays in registers.
__device__ __forceinline__ void sum_span(float *dst, const float *const *src, int size, span c, bool vec) {
    size_t i = c.lo;
    if (vec) {
        const size_t n4 = (c.hi - c.lo) / 4;
        for (size_t v = c.lo / 4 + threadIdx.x; v < c.lo / 4 + n4; v += blockDim.x) {
            float4 acc = __ldcg(reinterpret_cast<const float4 *>(src[0]) + v);
#pragma unroll
            for (int q = 1; q < IPC_MAX_RANKS; q++)
                if (q < size) acc = add4(acc, __ldcg(reinterpret_cast<const float4 *>(src[q]) + v));
            __stcg(reinterpret_cast<float4 *>(dst) + v, acc);
        }
        i += 4 * n4;
    }
    for (i += threadIdx.x; i < c.hi; i += blockDim.x) {
        float acc = __ldcg(src[0] + i);
#pragma unroll
        for (int q = 1; q < IPC_MAX_RANKS; q++)
            if (q < size) acc += __ldcg(src[q] + i);
        __stcg(dst + i, acc);
    }
}

// Every rank's contribution: this rank's straight from buf, the peers' from
// their staging buffers of this round.
__device__ __forceinline__ void contributions(const ipc_launch &l, uint64_t round, const float *buf,
                                              const float *src[IPC_MAX_RANKS]) {
#pragma unroll
    for (int q = 0; q < IPC_MAX_RANKS; q++)
        src[q] = q >= l.size ? nullptr : q == l.rank ? buf : staging(l, q, round);
}

// ---- failure ---------------------------------------------------------------------

// The first failure of this rank wins the sticky word and reports itself to
// the host: the details first, `code` last, each behind a system fence.
__device__ void record_failure(const ipc_launch &l, unsigned int code, int peer, uint64_t flag) {
    if (atomicCAS(sticky_word(base_of(l, l.rank)), 0u, code) != 0u) return;
    volatile ipc_host_words *h = l.host;
    h->peer = peer;
    h->block = static_cast<int32_t>(blockIdx.x);
    h->flag = flag;
    __threadfence_system();
    h->code = code;
    __threadfence_system();
}

// One thread waits until block blockIdx.x of `peer` has signalled at least
// `flag`. False: timed out or aborted (recorded), or another block of this
// rank failed (it recorded why).
__device__ bool wait_for_peer(const ipc_launch &l, int peer, uint64_t flag) {
    const uint64_t *slot = signal_slot(base_of(l, l.rank), peer, blockIdx.x);
    if (load_acquire_sys(slot) >= flag) return true;
    const volatile uint32_t *abort_word = &l.host->abort;
    const volatile unsigned int *sticky = sticky_word(base_of(l, l.rank));
    const uint64_t start = global_ns();
    for (unsigned spin = 1;; spin++) {
        if (load_acquire_sys(slot) >= flag) return true;
        if (spin % kCheckEvery != 0) continue;
        const uint64_t waited = global_ns() - start;
        const unsigned int code = *abort_word ? IPC_FAIL_ABORTED : waited >= l.timeout_ns ? IPC_FAIL_TIMEOUT : 0u;
        if (code) {
            record_failure(l, code, peer, flag);
            return false;
        }
        if (*sticky) return false;
    }
}

// ---- the block's protocol ----------------------------------------------------------

struct block_shared {
    uint64_t round;       // all-reduces this block has completed: this call is #round + 1
    unsigned int skip;    // the communicator failed earlier
    unsigned int failed;  // a wait of this call failed (written by any waiting thread)
};

// Every thread calls it first. False: this communicator failed earlier, and
// the block returns at once (the queued all-reduces after a failure cost
// nothing instead of a timeout each).
__device__ __forceinline__ bool begin(const ipc_launch &l, block_shared &sh) {
    if (threadIdx.x == 0) {
        char *me = base_of(l, l.rank);
        sh.skip = *reinterpret_cast<volatile unsigned int *>(sticky_word(me)) != 0u;
        sh.round = *round_slot(me, blockIdx.x);
        sh.failed = 0;
    }
    __syncthreads();
    return !sh.skip;
}

// Tells block blockIdx.x of every peer that this block has reached `flag`
// (its stores so far are visible), then waits until each of them has too.
// Every thread calls it; false: the block must return (the failure is
// recorded). Thread q < size handles peer q, so no signal waits on a wait.
__device__ __forceinline__ bool exchange(const ipc_launch &l, uint64_t flag, block_shared &sh) {
    __syncthreads();
    const int peer = static_cast<int>(threadIdx.x);
    if (peer < l.size && peer != l.rank) {
        __threadfence_system(); // cumulative: the block's stores (ordered by the barrier) before the flag
        store_release_sys(signal_slot(base_of(l, peer), l.rank, blockIdx.x), flag);
        if (!wait_for_peer(l, peer, flag)) *reinterpret_cast<volatile unsigned int *>(&sh.failed) = 1u;
    }
    __syncthreads();
    return *reinterpret_cast<volatile unsigned int *>(&sh.failed) == 0u;
}

// The call is complete for this block: the next launch is one round on.
__device__ __forceinline__ void finish(const ipc_launch &l, uint64_t round) {
    if (threadIdx.x == 0) *round_slot(base_of(l, l.rank), blockIdx.x) = round + 1;
}

// ---- the kernels -------------------------------------------------------------------

// (512, 2): at most 64 registers, so that an SM holds two blocks and the
// ranks sharing one GPU fit at once.
__global__ void __launch_bounds__(IPC_THREADS, 2) oneshot_kernel(const ipc_launch l, float *buf, size_t n, bool vec) {
    __shared__ block_shared sh;
    if (!begin(l, sh)) return;
    const uint64_t round = sh.round;
    const span chunk = oneshot_chunk(n, blockIdx.x);
    copy_span(staging(l, l.rank, round), buf, chunk, vec);
    if (!exchange(l, 2 * round + 1, sh)) return;
    const float *src[IPC_MAX_RANKS];
    contributions(l, round, buf, src);
    sum_span(buf, src, l.size, chunk, vec); // each thread reads buf[i] before it writes it
    finish(l, round);
}

__global__ void __launch_bounds__(IPC_THREADS, 2) twoshot_kernel(const ipc_launch l, float *buf, size_t n, bool vec) {
    __shared__ block_shared sh;
    if (!begin(l, sh)) return;
    const uint64_t round = sh.round;
    const int me = l.rank, size = l.size, b = static_cast<int>(blockIdx.x);
    float *mine = staging(l, me, round);
    // 1. chunk b of every other rank's slice, where that rank will read it
    for (int s = 0; s < size; s++)
        if (s != me) copy_span(mine, buf, twoshot_chunk(n, size, s, b), vec);
    if (!exchange(l, 2 * round + 1, sh)) return;
    // 2. chunk b of this rank's slice, summed over the ranks: only this rank
    //    reads its own slice, so the sum may land in its staging buffer
    const float *src[IPC_MAX_RANKS];
    contributions(l, round, buf, src);
    sum_span(mine, src, size, twoshot_chunk(n, size, me, b), vec);
    if (!exchange(l, 2 * round + 2, sh)) return;
    // 3. chunk b of every slice, from the rank that summed it
    for (int s = 0; s < size; s++) copy_span(buf, s == me ? mine : staging(l, s, round), twoshot_chunk(n, size, s, b), vec);
    finish(l, round);
}

} // namespace

extern "C" cudaError_t ipc_allreduce_launch(const ipc_launch *l, float *buf, size_t n, cudaStream_t stream) {
    ipc_launch params = *l;
    bool vec = (reinterpret_cast<uintptr_t>(buf) & 15u) == 0;
    void *args[] = {&params, &buf, &n, &vec};
    const void *kernel = n <= IPC_ONESHOT_MAX_BYTES / sizeof(float) ? reinterpret_cast<const void *>(oneshot_kernel)
                                                                    : reinterpret_cast<const void *>(twoshot_kernel);
    cudaError_t rc = cudaLaunchKernel(kernel, dim3(IPC_BLOCKS), dim3(IPC_THREADS), args, 0, stream);
    if (rc != cudaSuccess) (void)cudaGetLastError(); // reported here: not left for an unrelated later check
    return rc;
}

extern "C" cudaError_t ipc_blocks_per_sm(int *blocks) {
    int one = 0, two = 0;
    cudaError_t rc = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&one, oneshot_kernel, IPC_THREADS, 0);
    if (rc == cudaSuccess) rc = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&two, twoshot_kernel, IPC_THREADS, 0);
    *blocks = one < two ? one : two;
    return rc;
}
