/* certs.c — `facet certs`: a small PKI for one cluster, made with OpenSSL's
 * libcrypto. The certificates name a role, not a host (common name and DNS
 * subject alternative name "facet-coordinator" or "facet-worker"): channels
 * verify the role (gRPC's target name override), so pods and machines can
 * change addresses without new certificates. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/credentials.h"
#include "model/make_model.h"
#include "protocol/protocol.h"

static bool ssl_fail(errbuf *err, const char *what) {
    unsigned long e = ERR_get_error();
    char msg[256];
    ERR_error_string_n(e, msg, sizeof msg);
    return errbuf_set(err, "%s: %s", what, e ? msg : "failed");
}

static bool add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext) return false;
    bool ok = X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

/* A certificate for key, with common name cn, signed by (issuer, issuer_key);
 * issuer NULL: self-signed, a CA. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, int days, errbuf *err) {
    X509 *x = X509_new();
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    bool ok = x && X509_set_version(x, 2) && RAND_bytes(serial, sizeof serial) == 1;
    serial[0] &= 0x7f; /* positive */
    ok = ok && (bn = BN_bin2bn(serial, sizeof serial, NULL)) && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    ok = ok && X509_gmtime_adj(X509_getm_notBefore(x), -3600) && X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400);
    ok = ok && X509_set_pubkey(x, key);
    X509_NAME *name = ok ? X509_get_subject_name(x) : NULL;
    ok = ok && X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"facet", -1, -1, 0) &&
         X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    ok = ok && X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509 *signer = issuer ? issuer : x;
    ok = ok && add_ext(x, signer, NID_subject_key_identifier, "hash");
    if (issuer) {
        char san[128];
        snprintf(san, sizeof san, "DNS:%s", cn);
        ok = ok && add_ext(x, signer, NID_basic_constraints, "critical,CA:FALSE") &&
             add_ext(x, signer, NID_key_usage, "critical,digitalSignature,keyEncipherment") &&
             add_ext(x, signer, NID_ext_key_usage, "serverAuth,clientAuth") &&
             add_ext(x, signer, NID_subject_alt_name, san) && add_ext(x, signer, NID_authority_key_identifier, "keyid");
    } else {
        ok = ok && add_ext(x, signer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
             add_ext(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
    }
    ok = ok && X509_sign(x, issuer ? issuer_key : key, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(x);
        ssl_fail(err, cn);
        return NULL;
    }
    return x;
}

static bool write_pem(const char *dir, const char *name, X509 *cert, EVP_PKEY *key, errbuf *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return errbuf_set(err, "cannot write %s: %s", path, strerror(errno));
    if (key) chmod(path, 0600); /* before any secret byte is in it */
    bool ok = cert ? PEM_write_X509(f, cert) == 1 : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;
    ok = fclose(f) == 0 && ok;
    return ok ? true : errbuf_set(err, "cannot write %s", path);
}

bool cluster_certs_make(const char *dir, int days, errbuf *err) {
    if (!make_dirs(dir, err)) return false;
    EVP_PKEY *keys[3] = {EVP_EC_gen("P-256"), EVP_EC_gen("P-256"), EVP_EC_gen("P-256")};
    X509 *certs[3] = {NULL, NULL, NULL};
    const char *roles[3] = {"facet-cluster-ca", FACET_ROLE_COORDINATOR, FACET_ROLE_WORKER};
    const char *files[3] = {"ca", "coordinator", "worker"};
    bool ok = keys[0] && keys[1] && keys[2];
    if (!ok) ssl_fail(err, "EC key generation");
    for (int i = 0; ok && i < 3; i++) {
        certs[i] = make_cert(keys[i], roles[i], i ? certs[0] : NULL, keys[0], days, err);
        ok = certs[i] != NULL;
    }
    for (int i = 0; ok && i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.pem", files[i]);
        ok = write_pem(dir, name, certs[i], NULL, err);
        snprintf(name, sizeof name, "%s-key.pem", files[i]);
        ok = ok && write_pem(dir, name, NULL, keys[i], err);
    }
    for (int i = 0; i < 3; i++) X509_free(certs[i]), EVP_PKEY_free(keys[i]);
    return ok;
}
