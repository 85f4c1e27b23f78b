#include "worker/backend.h"

#include "kernels/cuda/api.h"

#include <dlfcn.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The path of module `name` in the executable's folder. */
static bool module_path(const char *name, char *out, size_t len) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return false;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return false;
    *slash = '\0';
    int m = snprintf(out, len, "%s/%s", exe, name);
    return m > 0 && (size_t)m < len;
}

bool backend_cuda_module_path(char *out, size_t len) { return module_path("libfacet_cuda.so", out, len); }

static pthread_mutex_t api_mu = PTHREAD_MUTEX_INITIALIZER;
static const cuda_api *api_loaded;
static char api_why[PATH_MAX + 256];

static void load_api(void) {
    char path[PATH_MAX];
    if (!backend_cuda_module_path(path, sizeof path)) {
        snprintf(api_why, sizeof api_why, "cannot locate the executable");
        return;
    }
    if (access(path, F_OK) != 0) {
        snprintf(api_why, sizeof api_why,
                 "this build has no CUDA backend (%s is absent: built with -DFACET_CUDA=OFF or without nvcc)", path);
        return;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL); /* kept open for the process's life */
    if (!h) {
        snprintf(api_why, sizeof api_why, "the CUDA backend cannot load: %s", dlerror());
        return;
    }
    facet_cuda_api_fn get = (facet_cuda_api_fn)dlsym(h, "facet_cuda_api");
    const cuda_api *api = get ? get() : NULL;
    if (!api || api->version != FACET_CUDA_API_VERSION) {
        snprintf(api_why, sizeof api_why, "%s is of another version (API %d, this binary needs %d): rebuild", path,
                 api ? api->version : -1, FACET_CUDA_API_VERSION);
        dlclose(h);
        return;
    }
    char msg[256];
    if (api->probe(msg, sizeof msg) < 1) {
        snprintf(api_why, sizeof api_why, "%s", msg);
        return; /* the module stays loaded: probing again would say the same */
    }
    api_loaded = api;
}

const cuda_api *backend_cuda_api(char *why, size_t why_len) {
    pthread_mutex_lock(&api_mu);
    static bool tried;
    if (!tried) load_api();
    tried = true;
    const cuda_api *api = api_loaded;
    pthread_mutex_unlock(&api_mu);
    if (!api && why_len > 0) { /* truncating copy (a path may be long) */
        size_t n = strlen(api_why) < why_len - 1 ? strlen(api_why) : why_len - 1;
        memcpy(why, api_why, n);
        why[n] = '\0';
    }
    return api;
}

bool backend_choose_device(const char *name, engine_device *out, char *note, size_t note_len, errbuf *err) {
    bool want_cuda = strcmp(name, "cuda") == 0, want_cpu = strcmp(name, "cpu") == 0;
    if (!want_cuda && !want_cpu && strcmp(name, "auto") != 0)
        return errbuf_set(err, "--device %s: choose cpu, cuda or auto", name);
    char why[ERRBUF_LEN] = "";
    const cuda_api *api = want_cpu ? NULL : backend_cuda_api(why, sizeof why);
    if (want_cuda && !api) return errbuf_set(err, "--device cuda: CUDA cannot start: %s", why);
    *out = api ? ENGINE_CUDA : ENGINE_CPU;
    if (api) {
        char msg[256];
        api->probe(msg, sizeof msg);
        snprintf(note, note_len, "using CUDA: %s", msg);
    } else if (want_cpu) {
        note[0] = '\0'; /* asked for: nothing to explain */
    } else {
        snprintf(note, note_len, "using the CPU: %s", why);
    }
    return true;
}

bool backend_apply_device(const device_choice *c, int rank, engine_options *eo, char *note, size_t note_len,
                          errbuf *err) {
    engine_device dev;
    if (!backend_choose_device(c->device ? c->device : "auto", &dev, note, note_len, err)) return false;
    eo->device = dev;
    eo->gpu_memory_utilization = c->gpu_memory_utilization;
    eo->no_cuda_graphs = c->no_cuda_graphs;
    eo->cuda_device = 0;
    if (dev == ENGINE_CUDA) {
        char why[ERRBUF_LEN];
        const cuda_api *api = backend_cuda_api(why, sizeof why);
        int count = api ? api->probe(why, sizeof why) : 1;
        eo->cuda_device = c->cuda_device >= 0 ? c->cuda_device : (count > 0 ? rank % count : 0);
    }
    return true;
}

/* ---- the NCCL module ------------------------------------------------------------ */

static pthread_mutex_t nccl_mu = PTHREAD_MUTEX_INITIALIZER;
static comm_nccl_create_fn nccl_create;
static char nccl_why[PATH_MAX + 256];

static void load_nccl(void) {
    char path[PATH_MAX];
    if (!module_path("libfacet_nccl.so", path, sizeof path)) {
        snprintf(nccl_why, sizeof nccl_why, "cannot locate the executable");
        return;
    }
    if (access(path, F_OK) != 0) {
        snprintf(nccl_why, sizeof nccl_why, "this build has no NCCL backend (%s is absent: built without NCCL)", path);
        return;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL); /* kept open for the process's life */
    if (!h) {
        snprintf(nccl_why, sizeof nccl_why, "the NCCL backend cannot load: %s", dlerror());
        return;
    }
    nccl_create = (comm_nccl_create_fn)dlsym(h, "comm_nccl_create");
    if (!nccl_create) {
        snprintf(nccl_why, sizeof nccl_why, "%s has no comm_nccl_create: rebuild", path);
        dlclose(h);
    }
}

comm_nccl_create_fn backend_nccl_create(char *why, size_t why_len) {
    pthread_mutex_lock(&nccl_mu);
    static bool tried;
    if (!tried) load_nccl();
    tried = true;
    comm_nccl_create_fn f = nccl_create;
    pthread_mutex_unlock(&nccl_mu);
    if (!f && why_len > 0) snprintf(why, why_len, "%.*s", (int)(why_len - 1), nccl_why);
    return f;
}
