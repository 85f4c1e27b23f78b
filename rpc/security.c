/* security.c — copies of rpc_security, owned by the servers and channels
 * that use them (the caller's strings may go away). */
#include <stdlib.h>

#include "common/alloc.h"
#include "rpc/rpc_impl.h"

static const char *dup_or_null(const char *s) { return s && *s ? xstrdup(s) : NULL; }

rpc_security *rpc_security_copy(const rpc_security *s) {
    if (!s) return NULL;
    rpc_security *c = xcalloc(1, sizeof *c);
    c->token = dup_or_null(s->token);
    c->ca_pem = dup_or_null(s->ca_pem);
    c->cert_pem = dup_or_null(s->cert_pem);
    c->key_pem = dup_or_null(s->key_pem);
    c->peer_name = dup_or_null(s->peer_name);
    return c;
}

void rpc_security_free(rpc_security *s) {
    if (!s) return;
    free((char *)s->token), free((char *)s->ca_pem), free((char *)s->cert_pem), free((char *)s->key_pem);
    free((char *)s->peer_name);
    free(s);
}
