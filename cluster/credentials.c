#include "cluster/credentials.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mapped_file.h"
#include "protocol/protocol.h"

#define PEM_MAX (1u << 20)

static char *read_pem(const char *path, const char *what, errbuf *err) {
    char *text = file_read_all(path, NULL, PEM_MAX, err);
    if (!text) return errbuf_prefix(err, "%s", what), NULL;
    if (!strstr(text, "-----BEGIN ")) {
        free(text);
        errbuf_set(err, "%s %s is not PEM (no \"-----BEGIN\" line)", what, path);
        return NULL;
    }
    return text;
}

bool cluster_credentials_load(cluster_credentials *c, const char *who, const char *peer_name, errbuf *err) {
    bool have_token = false;
    if (!secret_load(c->token_file, CLUSTER_TOKEN_ENV, c->token, sizeof c->token, &have_token, err))
        return errbuf_prefix(err, "cluster token");
    int tls_given = (c->tls_ca != NULL) + (c->tls_cert != NULL) + (c->tls_key != NULL);
    if (tls_given != 0 && tls_given != 3)
        return errbuf_set(err, "mutual TLS needs all of --tls-ca, --tls-cert and --tls-key");
    if (tls_given == 3) {
        c->ca_pem = read_pem(c->tls_ca, "--tls-ca", err);
        c->cert_pem = c->ca_pem ? read_pem(c->tls_cert, "--tls-cert", err) : NULL;
        c->key_pem = c->cert_pem ? read_pem(c->tls_key, "--tls-key", err) : NULL;
        if (!c->key_pem) {
            cluster_credentials_free(c);
            return false;
        }
    }
    if (!have_token && c->make_token) {
        if (!secret_random(c->token, sizeof c->token, err)) return false;
        have_token = true;
    }
    c->any = have_token || tls_given == 3;
    if (!c->any && !c->insecure)
        return errbuf_set(err, "no cluster credentials: give --cluster-token-file FILE (or $%s), or --tls-ca, --tls-cert "
                               "and --tls-key (facet certs makes them); --insecure runs without, and then anyone who "
                               "reaches the ports can join the cluster and read every prompt",
                          CLUSTER_TOKEN_ENV);
    if (!c->any)
        log_warn("%s: INSECURE: --insecure: no cluster token, no TLS: any process that reaches this port can join the "
                 "cluster, read prompts and send commands",
                 who);
    c->sec = (rpc_security){.token = have_token ? c->token : NULL, .ca_pem = c->ca_pem, .cert_pem = c->cert_pem,
                           .key_pem = c->key_pem, .peer_name = peer_name};
    return true;
}

const rpc_security *cluster_credentials_security(const cluster_credentials *c) { return c->any ? &c->sec : NULL; }

void cluster_credentials_free(cluster_credentials *c) {
    if (c->key_pem) memset(c->key_pem, 0, strlen(c->key_pem));
    free(c->ca_pem), free(c->cert_pem), free(c->key_pem);
    c->ca_pem = c->cert_pem = c->key_pem = NULL;
    memset(c->token, 0, sizeof c->token);
}
