/* panels.c — packing bf16 matrices into WEIGHT_PANELS (kernels/cpu/panels.h). */
#include "kernels/cpu/panels.h"

#include <string.h>

bool panels_fit(dtype dt, int cols) { return dt == DTYPE_BF16 && cols > 0 && cols % 2 == 0; }

size_t panels_bytes(int rows, int cols) {
    return (size_t)panels_groups(rows) * PANEL_ROWS * (size_t)cols * sizeof(bf16_t);
}

/* Row by row (each read front to back), each pair to its word in the group's lines */
void panels_pack(bf16_t *dst, const bf16_t *src, int rows, int cols) {
    int groups = panels_groups(rows), pairs = cols / 2;
    for (int r = 0; r < groups * PANEL_ROWS; r++) {
        bf16_t *d = dst + panels_index(cols, r, 0);
        const bf16_t *s = r < rows ? src + (size_t)r * cols : NULL;
        for (int j = 0; j < pairs; j++, d += 2 * PANEL_ROWS) {
            if (s) memcpy(d, s + 2 * j, 2 * sizeof *d);
            else d[0] = d[1] = 0;
        }
    }
}
