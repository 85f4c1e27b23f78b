/* replay.c — runs a fuzz target without libFuzzer (for compilers that lack
 * it): every file given, then deterministic mutations of each (truncations,
 * byte flips, insertions). Under ASan/UBSan this finds the same class of
 * bug, with less reach than coverage-guided fuzzing. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return g_rng;
}

static long g_runs;

static void run(const uint8_t *data, size_t size) {
    /* a private copy, exactly sized, so ASan sees reads past the end */
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    LLVMFuzzerTestOneInput(copy, size);
    free(copy);
    g_runs++;
}

static void mutate_and_run(const uint8_t *data, size_t size, int n_mutations) {
    run(data, size);
    uint8_t *buf = malloc(size + 16);
    for (int m = 0; m < n_mutations; m++) {
        size_t n = size;
        memcpy(buf, data, size);
        switch (next() % 4) {
        case 0: n = size ? next() % size : 0; break; /* truncate */
        case 1: for (int k = 0; k < 4 && n; k++) buf[next() % n] ^= (uint8_t)(1u << (next() % 8)); break;
        case 2: for (int k = 0; k < 4 && n; k++) buf[next() % n] = (uint8_t)next(); break;
        case 3: if (n) { size_t at = next() % n; memmove(buf + at + 8, buf + at, n - at); for (int k = 0; k < 8; k++) buf[at + k] = (uint8_t)next(); n += 8; } break;
        }
        run(buf, n);
    }
    free(buf);
}

static void run_file(const char *path, int n_mutations) {
    FILE *f = fopen(path, "rb");
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (len < 0 || len > (64l << 20)) {
        fclose(f);
        return;
    }
    uint8_t *buf = malloc((size_t)len + 1);
    size_t got = fread(buf, 1, (size_t)len, f);
    fclose(f);
    mutate_and_run(buf, got, n_mutations);
    free(buf);
}

int main(int argc, char **argv) {
    int n_mutations = 200;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "-mutations=", 11) == 0) {
            n_mutations = atoi(argv[i] + 11);
            continue;
        }
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: no such file or directory\n", argv[i]);
            return 1;
        }
        if (S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *e;
            while (d && (e = readdir(d))) {
                if (e->d_name[0] == '.') continue;
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
                run_file(path, n_mutations);
            }
            if (d) closedir(d);
        } else {
            run_file(argv[i], n_mutations);
        }
    }
    printf("replay: %ld inputs ran without a crash\n", g_runs);
    return g_runs > 0 ? 0 : 1;
}
