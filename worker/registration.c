/* registration.c — the worker's lease with its coordinator: Register, sent
 * every heartbeat, says who it is, where it listens, what it holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "protocol/protocol.h"
#include "worker/worker_impl.h"

#define REGISTER_TIMEOUT_MS 2000

renew_next registration_renew(worker *w, uint32_t *heartbeat_ms, char *last_reason, size_t last_len) {
    char state[256];
    worker_get_state(w, state, sizeof state);
    Facet__V1__RegisterRequest req = FACET__V1__REGISTER_REQUEST__INIT;
    req.protocol_version = (uint32_t)w->opt.protocol_version;
    req.worker_id = w->id;
    req.address = w->address;
    req.device = "cpu";
    req.requested_rank = w->opt.rank;
    req.epoch = w->epoch;
    req.state = state;
    req.busy = atomic_load(&w->busy);
    uint8_t *resp = NULL;
    size_t n = 0;
    errbuf err;
    int code = rpc_unary(w->coordinator, RPC_COORD_REGISTER, &req.base, &resp, &n, REGISTER_TIMEOUT_MS, &err);
    if (code != RPC_OK) {
        /* it may come (back), or its operator fix the credentials: keep trying, saying so once */
        const char *hint = code == RPC_UNAUTHENTICATED || code == RPC_PERMISSION_DENIED
                               ? " (the coordinator refused this worker's credentials)"
                           : code == RPC_UNAVAILABLE && rpc_security_tls(w->opt.cluster_security)
                               ? " (with TLS: are the CA and certificates of the same cluster, and the coordinator's "
                                 "certificate for facet-coordinator? facet certs makes a matching set)"
                               : "";
        if (strcmp(last_reason, err.msg) != 0) log_warn("worker %s: cannot register: %s%s", w->id, err.msg, hint);
        snprintf(last_reason, last_len, "%s", err.msg);
        return RENEW_LATER;
    }
    Facet__V1__RegisterResponse *r = facet__v1__register_response__unpack(NULL, n, resp);
    free(resp);
    if (!r) return RENEW_LATER;
    renew_next next = RENEW_LATER;
    if (r->protocol_version != (uint32_t)w->opt.protocol_version) {
        log_warn("worker %s: refused: %s", w->id, r->reason && *r->reason ? r->reason : "protocol version mismatch");
        next = RENEW_STOP;
    } else if (!r->accepted) {
        if (strcmp(last_reason, r->reason) != 0) log_warn("worker %s: refused: %s", w->id, r->reason);
        snprintf(last_reason, last_len, "%s", r->reason);
    } else {
        if (last_reason[0]) {
            log_info("worker %s: registered with %s", w->id, w->opt.coordinator);
            next = RENEW_NOW;
        }
        last_reason[0] = '\0';
        if (r->heartbeat_ms > 0) *heartbeat_ms = r->heartbeat_ms;
        if (r->epoch > atomic_load(&w->vouched_epoch)) atomic_store(&w->vouched_epoch, r->epoch);
    }
    facet__v1__register_response__free_unpacked(r, NULL);
    return next;
}
