/* kv_store.h — the key-value store workers rendezvous through
 * (facet.v1.Coordinator KvSet / KvGet): Gloo's peer addresses, later NCCL's
 * unique id. Keys of a group are prefixed with its epoch ("epoch-7/..."),
 * and a new group drops the keys of older epochs. */
#ifndef FACET_COORDINATOR_KV_STORE_H
#define FACET_COORDINATOR_KV_STORE_H

#include <stdint.h>

#include "rpc/rpc.h"

typedef struct kv_store kv_store;

kv_store *kv_store_create(void);
void kv_store_free(kv_store *s);
/* Forgets every "epoch-N/" key with N < epoch. */
void kv_store_drop_before_epoch(kv_store *s, uint64_t epoch);

/* The RPC handlers (ctx: the store). */
void kv_store_handle_set(void *ctx, rpc_call *call, const ProtobufCMessage *request);
void kv_store_handle_get(void *ctx, rpc_call *call, const ProtobufCMessage *request);

#endif
