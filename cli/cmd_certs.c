/* facet certs: a CA and certificates for one cluster's mutual TLS
 * (docs/SECURITY.md), for people without a PKI of their own. */
#include <stdio.h>

#include "cli/commands.h"
#include "cluster/credentials.h"
#include "common/args.h"

int cmd_certs(int argc, char **argv) {
    const char *out = NULL;
    int days = 365;
    const arg_spec specs[] = {
        {"out", ARG_STRING, &out, "directory to write ca.pem, coordinator.pem, worker.pem and their -key.pem files (required)", 0, 0, NULL},
        {"days", ARG_INT, &days, "validity in days (default 365)", 1, 36500, NULL},
    };
    static const arg_command cmd = {"certs", "facet certs --out DIR [--days N]",
                                    "Makes a cluster CA and the coordinator's and workers' certificates for mutual TLS."};
    int rc = args_handle(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    if (!out) {
        fprintf(stderr, "facet certs: --out DIR is required\n");
        return 2;
    }
    errbuf err;
    if (!cluster_certs_make(out, days, &err)) {
        fprintf(stderr, "facet certs: %s\n", err.msg);
        return 1;
    }
    printf("facet certs: wrote %s/{ca,coordinator,worker}.pem and their -key.pem files (keys mode 600), valid %d days\n",
           out, days);
    printf("  coordinator: --tls-ca %s/ca.pem --tls-cert %s/coordinator.pem --tls-key %s/coordinator-key.pem\n", out, out, out);
    printf("  workers:     --tls-ca %s/ca.pem --tls-cert %s/worker.pem --tls-key %s/worker-key.pem\n", out, out, out);
    printf("  serve:       --tls-dir %s   (keep ca-key.pem offline: it signs new members)\n", out);
    return 0;
}
