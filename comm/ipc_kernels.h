/* ipc_kernels.h — the device half of the CUDA-IPC communicator (comm/ipc.c):
 * the layout of the memory every rank shares, the words a rank's host and
 * its kernels share, and the launch of one all-reduce. Included by C
 * (ipc.c) and CUDA (ipc_kernels.cu); the design is in comm/comm_ipc.h. */
#ifndef FACET_COMM_IPC_KERNELS_H
#define FACET_COMM_IPC_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IPC_MAX_RANKS 8
/* Every launch of every rank has this grid: the per-block round counters of
 * all ranks advance in lockstep, and block b only ever meets block b of its
 * peers. Fewer blocks than SMs, so that the kernels of several ranks on one
 * GPU can all be resident at once (they spin waiting for each other). */
#define IPC_BLOCKS 32
#define IPC_THREADS 512
/* At most this many bytes: one-shot (every rank reads every peer's whole
 * buffer); above: two-shot (reduce-scatter, then all-gather). An untuned
 * default, in the range vLLM and TensorRT-LLM switch at. */
#define IPC_ONESHOT_MAX_BYTES (256 * 1024)

/* One rank's region (one cudaMalloc, zeroed before it is published), with
 * the same offsets on every rank:
 *   IPC_SIGNAL_OFFSET   uint64 signal[IPC_MAX_RANKS][IPC_BLOCKS]: signal[q][b]
 *                       is written only by rank q's block b (its latest flag)
 *   IPC_ROUNDS_OFFSET   uint64 rounds[IPC_BLOCKS]: all-reduces this rank's
 *                       block b has completed (written by that block only)
 *   IPC_STICKY_OFFSET   uint32: 0, or the code of this rank's first failure;
 *                       every later launch returns at once
 *   IPC_CLOSED_OFFSET   uint32 closed[IPC_MAX_RANKS]: closed[q] = 1 once rank
 *                       q will never touch this region again (teardown)
 *   IPC_SCRATCH_OFFSET  float: what the barrier all-reduces
 *   IPC_HEADER_BYTES    staging buffer 0 (max_floats floats), then buffer 1
 *                       at + ipc_data_stride(max_floats): calls of even and
 *                       odd round use one each */
#define IPC_SIGNAL_OFFSET 0
#define IPC_ROUNDS_OFFSET (IPC_SIGNAL_OFFSET + 8 * IPC_MAX_RANKS * IPC_BLOCKS)
#define IPC_STICKY_OFFSET (IPC_ROUNDS_OFFSET + 8 * IPC_BLOCKS)
#define IPC_CLOSED_OFFSET (IPC_STICKY_OFFSET + 64)
#define IPC_SCRATCH_OFFSET (IPC_CLOSED_OFFSET + 4 * IPC_MAX_RANKS + 32)
#define IPC_HEADER_BYTES 4096

/* Bytes from one staging buffer to the next: 256-byte aligned (float4
 * loads, and a whole number of cache lines). The caller has checked that
 * max_floats * 4 + 255 does not overflow. */
static inline size_t ipc_data_stride(size_t max_floats) { return (max_floats * sizeof(float) + 255) & ~(size_t)255; }

/* Why a kernel gave up (ipc_host_words.code and the sticky word). */
enum { IPC_OK = 0, IPC_FAIL_TIMEOUT = 1, IPC_FAIL_ABORTED = 2 };

/* Pinned host memory mapped into the device (cudaHostAllocMapped), one per
 * rank. The kernels read `abort` while they wait and report their first
 * failure in the fields after it, `code` last (behind a system fence); the
 * host reads them without a CUDA call, so a wait can watch them. */
typedef struct ipc_host_words {
    uint32_t abort;     /* host -> kernels: nonzero: stop waiting (comm_abort, or the host gave up) */
    uint32_t code;      /* kernels -> host: IPC_FAIL_*, 0 while nothing failed */
    int32_t peer;       /* the rank the failing block waited for */
    int32_t block;      /* ... and the block */
    uint64_t flag;      /* the signal it waited for: all-reduce #(flag + 1) / 2, exchange 2 - flag % 2 */
    /* host only: the sources and targets of the teardown's copies */
    uint32_t one;
    uint32_t closed[IPC_MAX_RANKS];
} ipc_host_words;

/* What every launch of one communicator passes (fixed at creation: nothing
 * in it changes per call, so a launch can be captured into a CUDA graph). */
typedef struct ipc_launch {
    char *base[IPC_MAX_RANKS]; /* every rank's region as mapped in this process; base[rank] is this rank's */
    ipc_host_words *host;      /* this rank's host words, as the device addresses them */
    size_t data_stride;        /* ipc_data_stride(max_floats) */
    uint64_t timeout_ns;       /* bound on every wait for a peer */
    int rank, size;            /* 2 <= size <= IPC_MAX_RANKS */
} ipc_launch;

/* Enqueues buf (n floats, device, 1 <= n <= max_floats) = the sum over the
 * ranks, in rank order, on stream. Returns the launch's own error. */
cudaError_t ipc_allreduce_launch(const ipc_launch *l, float *buf, size_t n, cudaStream_t stream);

/* How many blocks of the all-reduce kernels one SM of the current device
 * holds at once (the smaller of the two kernels' numbers). */
cudaError_t ipc_blocks_per_sm(int *blocks);

#ifdef __cplusplus
}
#endif

#endif
