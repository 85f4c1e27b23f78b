/* test_cuda_module — the CUDA backend's packaging, on any machine: the
 * module built next to the executable loads with dlopen (its CUDA
 * libraries resolve), exports facet_cuda_api() of this binary's API version
 * with every entry filled, and its probe answers with a sentence. Without a
 * GPU, asking the engine for CUDA fails with that sentence instead of
 * crashing. (Whether the kernels compute the right thing is gpu_check's
 * business, on a GPU.) */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "kernels/cuda/api.h"
#include "worker/backend.h"
#include "worker/engine.h"


int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_cuda_module MODEL_DIR\n");
        return 2;
    }
    char path[PATH_MAX];
    CHECK(backend_cuda_module_path(path, sizeof path), "module path");
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CHECK(h != NULL, "dlopen %s: %s", path, dlerror());
    if (!h) return 1;
    facet_cuda_api_fn get = (facet_cuda_api_fn)dlsym(h, "facet_cuda_api");
    CHECK(get != NULL, "facet_cuda_api is exported");
    const cuda_api *api = get ? get() : NULL;
    CHECK(api && api->version == FACET_CUDA_API_VERSION, "API version %d, want %d", api ? api->version : -1,
          FACET_CUDA_API_VERSION);
    if (api) {
        /* every entry of the table is filled */
        const void *const *slot = (const void *const *)((const char *)api + offsetof(cuda_api, probe));
        size_t n = (sizeof *api - offsetof(cuda_api, probe)) / sizeof(void *);
        for (size_t i = 0; i < n; i++) CHECK(slot[i] != NULL, "table entry %zu is empty", i);
        char msg[256] = "";
        int gpus = api->probe(msg, sizeof msg);
        CHECK(gpus >= 0 && msg[0], "probe answers");
        printf("probe: %d GPU(s): %s\n", gpus, msg);
        if (gpus == 0) {
            engine_options eo = {.device = ENGINE_CUDA, .max_batch_tokens = 8, .block_size = 4, .n_blocks = 4};
            errbuf err;
            engine *e = engine_load(argv[1], 0, 1, &eo, &err);
            CHECK(e == NULL && strstr(err.msg, "CUDA backend is unavailable"), "a CUDA engine without a GPU: %s",
                  e ? "made one" : err.msg);
            if (!e) printf("a CUDA engine without a GPU: %s\n", err.msg);
            engine_free(e);
        }
    }
    dlclose(h);
    return CHECK_RESULT();
}
