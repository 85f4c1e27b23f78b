/* credentials.h — what proves a process belongs to the cluster
 * (docs/SECURITY.md): a shared cluster token, from a file or
 * $FACET_CLUSTER_TOKEN (never argv), and/or mutual TLS with certificates of
 * the cluster's CA (`facet certs` makes a CA and certificates for people
 * without a PKI). `facet coordinator` and `facet worker` refuse to start
 * without either unless told --insecure; `facet serve` makes a random token
 * its workers inherit through their environment. */
#ifndef FACET_CLUSTER_CREDENTIALS_H
#define FACET_CLUSTER_CREDENTIALS_H

#include <stdbool.h>

#include "common/args.h"
#include "common/secret.h"
#include "rpc/rpc.h"

#define CLUSTER_TOKEN_ENV "FACET_CLUSTER_TOKEN"

typedef struct cluster_credentials {
    /* options */
    const char *token_file;
    const char *tls_ca, *tls_cert, *tls_key; /* PEM files */
    bool insecure;
    bool make_token; /* no token given: make a random one (facet serve, with or without TLS) */
    /* loaded */
    char token[SECRET_MAX];
    char *ca_pem, *cert_pem, *key_pem;
    rpc_security sec;
    bool any; /* a token or TLS */
} cluster_credentials;

#define CLUSTER_CREDENTIAL_SPECS(c)                                                                                    \
    {"cluster-token-file", ARG_STRING, &(c).token_file,                                                                \
     "file holding the cluster token every coordinator and worker of the cluster shares (or $FACET_CLUSTER_TOKEN)", 0, 0, NULL}, \
    {"tls-ca", ARG_STRING, &(c).tls_ca, "mutual TLS: the cluster CA's certificate (PEM; facet certs makes one)", 0, 0, NULL},   \
    {"tls-cert", ARG_STRING, &(c).tls_cert, "mutual TLS: this process's certificate (PEM)", 0, 0, NULL},                      \
    {"tls-key", ARG_STRING, &(c).tls_key, "mutual TLS: this process's private key (PEM)", 0, 0, NULL},                        \
    {"insecure", ARG_FLAG, &(c).insecure, "run the cluster's RPC without a token or TLS: anyone who reaches the ports can join", 0, 0, NULL}

/* Reads what the options name. peer_name: the role the other side's
 * certificate must carry (TLS). With nothing given and not --insecure it
 * fails, saying what to give; with --insecure it warns loudly. */
bool cluster_credentials_load(cluster_credentials *c, const char *who, const char *peer_name, errbuf *err);
/* What servers and channels take; NULL when insecure. */
const rpc_security *cluster_credentials_security(const cluster_credentials *c);
void cluster_credentials_free(cluster_credentials *c);

/* facet certs: a CA, the coordinator's certificate (common name
 * facet-coordinator) and a worker certificate (facet-worker), P-256 keys,
 * written to dir as ca.pem, ca-key.pem, coordinator.pem, coordinator-key.pem,
 * worker.pem, worker-key.pem (keys mode 600). */
bool cluster_certs_make(const char *dir, int days, errbuf *err);

#endif
