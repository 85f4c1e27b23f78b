// summarize.cuh — the row summaries of protocol/sample_rows.h made on the
// device (summarize.cu), so that only they leave it: worker/dist_sampler.c
// decides from them exactly as from the ones dist_summarize_row makes on the
// host. The engine packs each chunk's sampling parameters into pinned memory,
// sends them up with one copy, and launches; nothing here synchronizes.
#ifndef FACET_KERNELS_CUDA_SUMMARIZE_CUH
#define FACET_KERNELS_CUDA_SUMMARIZE_CUH

#include "kernels/cuda/common.cuh"

extern "C" {
#include "protocol/sample_rows.h"
}

// Bytes of the packed per-row parameters + seen-token lists of m rows (for one upload); a multiple of 16.
size_t summarize_meta_bytes(const sample_request *reqs, int m);
// Packs them into host memory of that size (pinned memory in the engine), for rows of a slice [vocab_begin,
// vocab_begin + d): seen tokens outside the slice are dropped here (the bytes they would have taken are zeroed).
void summarize_meta_pack(const sample_request *reqs, int m, int vocab_begin, int d, void *host);
// records (device, m * row_record_bytes(L)) = the summaries of logits (device, (m, d)) for the m rows whose packed
// parameters are at meta (device, 16-byte aligned). work: device scratch of m * d floats (the penalized rows).
// False (nothing launched) when a row is SAMPLE_FULL or L.k > TOPK_MAX or L.t > SAMPLER_MAX_TOP_LOGPROBS.
// reqs_host (m) is read only for those checks; the kernels read meta.
bool launch_summarize_rows(void *records, const float *logits, float *work, int m, int d, int vocab_begin, row_layout L,
                           const void *meta, const sample_request *reqs_host, cudaStream_t s, errbuf *err);

#endif
