/* facet bench plot — several saved `facet bench serve --result-json` files
 * (one run each, or a sweep each) overlaid in one SVG: how two servers
 * compare on the same load. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/report.h"
#include "common/mapped_file.h"

#define MAX_FILES 6
#define MAX_POINTS 32

int bench_plot_main(int argc, char **argv) {
    const char *out = NULL, *title = "facet bench serve";
    const char *files[MAX_FILES];
    int n_files = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out = argv[++i];
        else if (strcmp(argv[i], "--title") == 0 && i + 1 < argc) title = argv[++i];
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: facet bench plot --out FILE.svg [--title TEXT] RESULT.json...\n\n"
                   "Overlays up to %d `facet bench serve --result-json` files (a run or a sweep each) in one SVG;\n"
                   "each file's \"label\" names its series.\n", MAX_FILES);
            return 0;
        } else if (argv[i][0] != '-' && n_files < MAX_FILES) files[n_files++] = argv[i];
        else {
            fprintf(stderr, "facet bench plot: unexpected argument %s (facet bench plot --help)\n", argv[i]);
            return 2;
        }
    }
    if (!out || n_files == 0) {
        fprintf(stderr, "facet bench plot: give --out FILE.svg and at least one result JSON\n");
        return 2;
    }
    bench_series s[MAX_FILES];
    double rates[MAX_FILES][MAX_POINTS];
    bench_metrics m[MAX_FILES][MAX_POINTS];
    cJSON *docs[MAX_FILES] = {0};
    errbuf err;
    bool ok = true;
    for (int f = 0; ok && f < n_files; f++) {
        size_t size;
        char *text = file_read_all(files[f], &size, (size_t)1 << 30, &err);
        if (!text) {
            ok = false;
            break;
        }
        docs[f] = cJSON_Parse(text);
        free(text);
        if (!docs[f]) {
            ok = errbuf_set(&err, "%s: not JSON", files[f]);
            break;
        }
        const cJSON *runs = docs[f];
        int n = cJSON_IsArray(runs) ? cJSON_GetArraySize(runs) : 1;
        if (n > MAX_POINTS) n = MAX_POINTS;
        for (int k = 0; ok && k < n; k++) {
            const cJSON *run = cJSON_IsArray(runs) ? cJSON_GetArrayItem(runs, k) : runs;
            ok = bench_metrics_from_json(run, &m[f][k], &rates[f][k], &err);
            if (!ok) errbuf_prefix(&err, "%s", files[f]);
        }
        const cJSON *label = cJSON_GetObjectItemCaseSensitive(cJSON_IsArray(runs) ? cJSON_GetArrayItem(runs, 0) : runs, "label");
        s[f] = (bench_series){cJSON_IsString(label) ? label->valuestring : files[f], n, rates[f], m[f]};
    }
    if (ok) ok = bench_plot_svg(out, title, s, n_files, &err);
    for (int f = 0; f < n_files; f++) cJSON_Delete(docs[f]);
    if (ok) return 0;
    fprintf(stderr, "facet bench plot: %s\n", err.msg);
    return 1;
}
