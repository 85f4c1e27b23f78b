/* rpc_impl.h — shared between the rpc files. */
#ifndef FACET_RPC_IMPL_H
#define FACET_RPC_IMPL_H

#include <grpc/grpc.h>

gpr_timespec rpc_deadline_ms(int timeout_ms);

#endif
