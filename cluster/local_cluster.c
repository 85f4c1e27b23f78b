#include "cluster/local_cluster.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "cluster/device_args.h"
#include "common/log.h"

static pid_t spawn_worker(const local_cluster *lc) {
    char coord[64], threads[16];
    snprintf(coord, sizeof coord, "127.0.0.1:%d", coordinator_grpc_port(lc->co));
    snprintf(threads, sizeof threads, "%d", lc->worker_threads);
    pid_t pid = fork();
    if (pid != 0) return pid;
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the coordinator */
    char *argv[16] = {"facet", "worker", "--coordinator", coord, "--threads", threads};
    char storage[3][32];
    int argc = device_args_to_argv(&lc->dev, argv, 6, storage);
    if (lc->quiet) argv[argc++] = "--quiet";
    argv[argc] = NULL;
    execv("/proc/self/exe", argv);
    fprintf(stderr, "facet: cannot start a worker: %s\n", strerror(errno));
    _exit(127);
}

bool local_cluster_start(local_cluster *lc, const coordinator_options *opt, int worker_threads, const device_choice *dev,
                         bool quiet, errbuf *err) {
    memset(lc, 0, sizeof *lc);
    if (dev) lc->dev = *dev;
    else device_args_default(&lc->dev);
    /* a device the workers cannot use is refused here, not by N workers exiting */
    engine_device kind;
    char note[ERRBUF_LEN];
    if (!backend_choose_device(lc->dev.device, &kind, note, sizeof note, err)) return false;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN); /* 0: the CPUs shared out among the workers */
    lc->worker_threads = worker_threads > 0 ? worker_threads : cpus / opt->tp > 0 ? (int)(cpus / opt->tp) : 1;
    lc->quiet = quiet;
    lc->co = coordinator_start(opt, err);
    if (!lc->co) return false;
    lc->n_workers = opt->tp;
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
}
