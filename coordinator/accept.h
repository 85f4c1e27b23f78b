/* accept.h — a step's results applied to its sequences (scheduler lock held):
 * the K/V of every chunk is now cached; each sampled sequence gets its token
 * (appended unless it stops the sequence), the token's event (logprob, top
 * alternatives, logits when asked) and, at a stop token or max_tokens, its
 * end. */
#ifndef FACET_COORDINATOR_ACCEPT_H
#define FACET_COORDINATOR_ACCEPT_H

#include "coordinator/batching.h"
#include "facet/v1/worker.pb-c.h"

void accept_step_results(scheduler *s, const step_plan *plan, const Facet__V1__StepResponse *resp);

#endif
