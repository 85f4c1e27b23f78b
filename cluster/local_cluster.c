#include "cluster/local_cluster.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster/device_args.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "protocol/protocol.h"

extern char **environ;

#define MAX_ARGS 32

/* The workers' environment: ours, with the cluster token set (built before
 * any fork: after one, only async-signal-safe calls until exec). */
static char **worker_environment(const char *token) {
    int n = 0;
    while (environ[n]) n++;
    char **envp = xcalloc((size_t)n + 2, sizeof *envp);
    int k = 0;
    size_t prefix = strlen(CLUSTER_TOKEN_ENV "=");
    for (int i = 0; i < n; i++)
        if (strncmp(environ[i], CLUSTER_TOKEN_ENV "=", prefix) != 0) envp[k++] = xstrdup(environ[i]);
    if (token) {
        size_t len = prefix + strlen(token) + 1;
        envp[k] = xmalloc(len);
        snprintf(envp[k++], len, "%s=%s", CLUSTER_TOKEN_ENV, token);
    }
    return envp;
}

static void free_environment(char **envp) {
    for (int i = 0; envp && envp[i]; i++) free(envp[i]);
    free(envp);
}

static pid_t spawn_worker(const local_cluster *lc) {
    char coord[64], threads[16], storage[3][32];
    snprintf(coord, sizeof coord, "127.0.0.1:%d", coordinator_cluster_port(lc->co));
    snprintf(threads, sizeof threads, "%d", lc->worker_threads);
    char *argv[MAX_ARGS] = {"facet", "worker", "--coordinator", coord, "--threads", threads,
                            "--model-root", (char *)lc->model_root};
    int argc = device_args_to_argv(&lc->dev, argv, 8, storage);
    if (lc->tls_files[0][0]) {
        argv[argc++] = "--tls-ca", argv[argc++] = (char *)lc->tls_files[0];
        argv[argc++] = "--tls-cert", argv[argc++] = (char *)lc->tls_files[1];
        argv[argc++] = "--tls-key", argv[argc++] = (char *)lc->tls_files[2];
    }
    if (lc->quiet) argv[argc++] = "--quiet";
    if (lc->allow_faults) argv[argc++] = "--allow-fault-injection";
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid != 0) return pid;
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the coordinator */
    execve("/proc/self/exe", argv, lc->envp);
    static const char msg[] = "facet: cannot start a worker process\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(127);
}

/* The cluster's credentials: certificates from tls_dir, and a token ($FACET_CLUSTER_TOKEN or a fresh random one). */
static bool make_credentials(local_cluster *lc, const char *tls_dir, errbuf *err) {
    char ca[4096], cert[4096], key[4096]; /* read by cluster_credentials_load, not kept */
    if (tls_dir) {
        snprintf(ca, sizeof ca, "%s/ca.pem", tls_dir);
        snprintf(cert, sizeof cert, "%s/coordinator.pem", tls_dir);
        snprintf(key, sizeof key, "%s/coordinator-key.pem", tls_dir);
        snprintf(lc->tls_files[0], sizeof lc->tls_files[0], "%s/ca.pem", tls_dir);
        snprintf(lc->tls_files[1], sizeof lc->tls_files[1], "%s/worker.pem", tls_dir);
        snprintf(lc->tls_files[2], sizeof lc->tls_files[2], "%s/worker-key.pem", tls_dir);
        lc->creds.tls_ca = ca, lc->creds.tls_cert = cert, lc->creds.tls_key = key;
    }
    lc->creds.make_token = true;
    bool ok = cluster_credentials_load(&lc->creds, "serve", FACET_ROLE_WORKER, err);
    lc->creds.tls_ca = lc->creds.tls_cert = lc->creds.tls_key = NULL;
    return ok;
}

bool local_cluster_start(local_cluster *lc, const coordinator_options *opt, const local_cluster_options *lo, errbuf *err) {
    memset(lc, 0, sizeof *lc);
    if (opt->tp + lo->standby > LOCAL_CLUSTER_MAX)
        return errbuf_set(err, "--tp %d with %d standbys: at most %d local workers", opt->tp, lo->standby, LOCAL_CLUSTER_MAX);
    if (lo->dev) lc->dev = *lo->dev;
    else device_args_default(&lc->dev);
    /* a device the workers cannot use is refused here, not by N workers exiting */
    engine_device kind;
    char note[ERRBUF_LEN];
    if (!backend_choose_device(lc->dev.device, &kind, note, sizeof note, err)) return false;
    if (!realpath(opt->model_dir, lc->model_root)) return errbuf_set(err, "%s: %s", opt->model_dir, strerror(errno));
    long cpus = sysconf(_SC_NPROCESSORS_ONLN); /* 0: the CPUs shared out among the workers */
    lc->worker_threads = lo->worker_threads > 0 ? lo->worker_threads : cpus / opt->tp > 0 ? (int)(cpus / opt->tp) : 1;
    lc->quiet = lo->quiet;
    lc->allow_faults = lo->allow_faults;
    if (!make_credentials(lc, lo->tls_dir, err)) return false;
    coordinator_options co = *opt;
    co.cluster_security = cluster_credentials_security(&lc->creds);
    lc->co = coordinator_start(&co, err);
    if (!lc->co) {
        cluster_credentials_free(&lc->creds);
        return false;
    }
    lc->envp = worker_environment(lc->creds.sec.token);
    lc->n_workers = opt->tp + lo->standby;
    for (int i = 0; i < lc->n_workers; i++) lc->pids[i] = spawn_worker(lc);
    return true;
}

static const char *exit_text(int status, char *buf, size_t len) {
    if (WIFSIGNALED(status)) snprintf(buf, len, "was killed by signal %d", WTERMSIG(status));
    else snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    return buf;
}

bool local_cluster_wait_ready(local_cluster *lc, int timeout_ms, errbuf *err) {
    double end = clock_now_s() + timeout_ms / 1e3;
    char why[ERRBUF_LEN] = "";
    while (clock_now_s() < end) {
        if (coordinator_ready(lc->co, why, sizeof why)) return true;
        if (coordinator_all_workers_failed(lc->co)) return errbuf_set(err, "no group can form: %s", why);
        for (int i = 0; i < lc->n_workers; i++) {
            int status;
            if (lc->pids[i] > 0 && waitpid(lc->pids[i], &status, WNOHANG) == lc->pids[i]) {
                char text[64];
                lc->pids[i] = 0;
                return errbuf_set(err, "worker process %d %s before the group formed (%s)", i, exit_text(status, text, sizeof text),
                                  why);
            }
        }
        usleep(20 * 1000);
    }
    return errbuf_set(err, "no serving group after %.0f s: %s", timeout_ms / 1e3, why);
}

void local_cluster_restart_dead(local_cluster *lc) {
    for (int i = 0; i < lc->n_workers; i++) {
        int status;
        if (lc->pids[i] > 0 && waitpid(lc->pids[i], &status, WNOHANG) == lc->pids[i]) {
            char text[64];
            log_warn("worker process %d (pid %d) %s: starting a new one", i, (int)lc->pids[i], exit_text(status, text, sizeof text));
            lc->pids[i] = spawn_worker(lc);
            lc->restarts++;
        }
    }
}

void local_cluster_stop(local_cluster *lc) {
    coordinator_drain(lc->co); /* requests end with "shutting down", not "worker lost" */
    for (int i = 0; i < lc->n_workers; i++)
        if (lc->pids[i] > 0) kill(lc->pids[i], SIGTERM);
    double end = clock_now_s() + 5.0;
    for (int i = 0; i < lc->n_workers; i++) {
        while (lc->pids[i] > 0) {
            if (waitpid(lc->pids[i], NULL, WNOHANG) == lc->pids[i]) break;
            if (clock_now_s() > end) {
                kill(lc->pids[i], SIGKILL);
                waitpid(lc->pids[i], NULL, 0);
                break;
            }
            usleep(10 * 1000);
        }
        lc->pids[i] = 0;
    }
    coordinator_stop(lc->co);
    lc->co = NULL;
    free_environment(lc->envp);
    lc->envp = NULL;
    cluster_credentials_free(&lc->creds);
}
