/* api.h — the public gRPC service facet.v1.Facet (Generate, Tokenize,
 * ModelInfo) and grpc.health.v1.Health (proto/facet/v1/generate.proto). A
 * front end: each handler's ctx is the frontend. */
#ifndef FACET_COORDINATOR_API_H
#define FACET_COORDINATOR_API_H

#include "coordinator/frontend.h"
#include "rpc/rpc.h"

void api_handle_generate(void *ctx, rpc_call *call, const ProtobufCMessage *request);
void api_handle_tokenize(void *ctx, rpc_call *call, const ProtobufCMessage *request);
void api_handle_model_info(void *ctx, rpc_call *call, const ProtobufCMessage *request);
void api_handle_health_check(void *ctx, rpc_call *call, const ProtobufCMessage *request);
void api_handle_health_watch(void *ctx, rpc_call *call, const ProtobufCMessage *request);

#endif
