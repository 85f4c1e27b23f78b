#include "worker/backend.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The module's entry point (kernels/cuda/backend.cu). */
typedef int (*cuda_probe_fn)(char *msg, size_t msg_len);

static bool module_path(char *out, size_t len) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return false;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return false;
    *slash = '\0';
    int m = snprintf(out, len, "%s/libfacet_cuda.so", exe);
    return m > 0 && (size_t)m < len;
}

int backend_cuda_probe(char *why, size_t why_len) {
    char path[PATH_MAX];
    if (!module_path(path, sizeof path)) {
        snprintf(why, why_len, "cannot locate the executable");
        return 0;
    }
    if (access(path, F_OK) != 0) {
        snprintf(why, why_len, "this build has no CUDA backend (%s is absent: built with -DFACET_CUDA=OFF or without nvcc)", path);
        return 0;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(why, why_len, "the CUDA backend cannot load: %s", dlerror());
        return 0;
    }
    cuda_probe_fn probe = (cuda_probe_fn)dlsym(h, "facet_cuda_probe");
    if (!probe) {
        snprintf(why, why_len, "%s lacks facet_cuda_probe", path);
        dlclose(h);
        return 0;
    }
    int n = probe(why, why_len);
    dlclose(h);
    return n;
}
