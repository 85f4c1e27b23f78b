/* panels.c — packing bf16 matrices into WEIGHT_PANELS (kernels/cpu/panels.h). */
#include "kernels/cpu/panels.h"

#include <stdint.h>
#include <string.h>

bool panels_fit(dtype dt, int cols) { return dt == DTYPE_BF16 && cols > 0 && cols % 2 == 0; }

size_t panels_bytes(int rows, int cols) {
    return (size_t)panels_groups(rows) * PANEL_ROWS * (size_t)cols * sizeof(bf16_t);
}

/* Groups [g0, g1), line by line, each line written whole and in order: the
 * 16 rows' words of a column pair (16 reads going forward in 16 rows at once) */
static void pack_groups(bf16_t *dst, const bf16_t *src, int rows, int cols, int g0, int g1) {
    int pairs = cols / 2;
    uint32_t *d = (uint32_t *)(dst + panels_index(cols, g0 * PANEL_ROWS, 0));
    for (int g = g0; g < g1; g++) {
        const bf16_t *row[PANEL_ROWS];
        for (int r = 0; r < PANEL_ROWS; r++) {
            int i = g * PANEL_ROWS + r;
            row[r] = i < rows ? src + (size_t)i * cols : NULL;
        }
        for (int j = 0; j < pairs; j++, d += PANEL_ROWS)
            for (int r = 0; r < PANEL_ROWS; r++) {
                uint32_t word = 0; /* a padding row's */
                if (row[r]) memcpy(&word, row[r] + 2 * j, sizeof word);
                d[r] = word;
            }
    }
}

typedef struct {
    bf16_t *dst;
    const bf16_t *src;
    int rows, cols, groups_per_task;
} pack_job;

static void pack_task(void *p, int task, int thread) {
    (void)thread;
    const pack_job *j = p;
    int g0 = task * j->groups_per_task, g1 = g0 + j->groups_per_task, groups = panels_groups(j->rows);
    pack_groups(j->dst, j->src, j->rows, j->cols, g0, g1 < groups ? g1 : groups);
}

void panels_pack(threadpool *tp, bf16_t *dst, const bf16_t *src, int rows, int cols) {
    int groups = panels_groups(rows);
    if (!tp) {
        pack_groups(dst, src, rows, cols, 0, groups);
        return;
    }
    int per = groups / (4 * threadpool_size(tp));
    pack_job j = {dst, src, rows, cols, per < 1 ? 1 : per};
    threadpool_run(tp, (groups + j.groups_per_task - 1) / j.groups_per_task, pack_task, &j);
}
