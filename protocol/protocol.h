/* protocol.h — the version of facet's internal protocol (proto/facet/v1/
 * worker.proto). Both sides check it at registration: a worker of another
 * version is refused with a message naming both. Bump it on any change that
 * an older peer would misread. */
#ifndef FACET_PROTOCOL_PROTOCOL_H
#define FACET_PROTOCOL_PROTOCOL_H

/* 2: penalties, min_p, top logprobs in Step
 * 3: the cluster port and credentials, announced epochs, busy workers, InjectFault */
#define FACET_PROTOCOL_VERSION 3

/* The roles a cluster certificate names (common name and DNS subject
 * alternative name, docs/SECURITY.md): workers obey only a coordinator's,
 * the coordinator takes registrations only from a worker's. */
#define FACET_ROLE_COORDINATOR "facet-coordinator"
#define FACET_ROLE_WORKER "facet-worker"

/* The largest tensor-parallel group (ranks per group). */
#define FACET_MAX_TP 64

/* Method paths. */
#define RPC_COORD_REGISTER "/facet.v1.Coordinator/Register"
#define RPC_COORD_KV_SET "/facet.v1.Coordinator/KvSet"
#define RPC_COORD_KV_GET "/facet.v1.Coordinator/KvGet"
#define RPC_WORKER_LOAD "/facet.v1.Worker/Load"
#define RPC_WORKER_INIT_COMM "/facet.v1.Worker/InitComm"
#define RPC_WORKER_STEP "/facet.v1.Worker/Step"
#define RPC_WORKER_STEP_STREAM "/facet.v1.Worker/StepStream"
#define RPC_WORKER_ABORT "/facet.v1.Worker/Abort"
#define RPC_WORKER_HEALTH "/facet.v1.Worker/Health"
#define RPC_WORKER_INJECT_FAULT "/facet.v1.Worker/InjectFault"
#define RPC_FACET_GENERATE "/facet.v1.Facet/Generate"
#define RPC_FACET_TOKENIZE "/facet.v1.Facet/Tokenize"
#define RPC_FACET_MODEL_INFO "/facet.v1.Facet/ModelInfo"
#define RPC_HEALTH_CHECK "/grpc.health.v1.Health/Check"
#define RPC_HEALTH_WATCH "/grpc.health.v1.Health/Watch"

#endif
