/* check_summarize.h — gpu_check's check of the row summaries made on the
 * device (kernels/cuda/summarize.cu) against the host's, worker/
 * dist_sampler.c dist_summarize_row (check_summarize.c). */
#ifndef FACET_TESTS_GPU_CHECK_SUMMARIZE_H
#define FACET_TESTS_GPU_CHECK_SUMMARIZE_H

struct cuda_api;

/* Every sampling mode but SAMPLE_FULL on random logits with deliberate ties, then the refusals (min_p, top_p
 * alone, k above the device's limit). Prints one line per case; returns the number of cases that failed. */
int check_summarize(const struct cuda_api *api);

#endif
