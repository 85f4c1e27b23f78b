/* rpc_impl.h — shared between the rpc files. */
#ifndef FACET_RPC_IMPL_H
#define FACET_RPC_IMPL_H

#include <grpc/grpc.h>

#include "rpc/rpc.h"

gpr_timespec rpc_deadline_ms(int timeout_ms);

/* msg packed into a byte buffer for a SEND_MESSAGE op (the caller destroys it). */
grpc_byte_buffer *rpc_pack_message(const ProtobufCMessage *msg);
/* A received message's bytes, copied into malloc'd memory of *len bytes. */
uint8_t *rpc_byte_buffer_copy(grpc_byte_buffer *bb, size_t *len);

/* A deep copy of an rpc_security (NULL stays NULL; empty strings become NULL). */
rpc_security *rpc_security_copy(const rpc_security *s);
void rpc_security_free(rpc_security *s);

#endif
