/* bench_comm.h — `facet bench comm`: all-reduce over Gloo on loopback, ranks
 * as threads of one process, printed as nccl-tests prints its tables. */
#ifndef FACET_COMM_BENCH_COMM_H
#define FACET_COMM_BENCH_COMM_H

#include <stdbool.h>
#include <stddef.h>

/* argv[0] is the command's name; options follow (--help lists them).
 * Returns 0, 1 on a failed or wrong all-reduce, 2 on a usage error. */
int bench_comm_main(int argc, char **argv);

/* times (ranks, iters) seconds: the median over iterations of the slowest
 * rank's time (what both bench comm tables print); 0 when out of memory. */
double bench_comm_median_slowest(const double *times, int ranks, int iters);

/* The value of --name as a whole decimal number in [lo, hi]; false, with the
 * reason on stderr, if it is not one (both bench comm tables' options). */
bool bench_comm_parse_size(const char *name, const char *text, size_t lo, size_t hi, size_t *out);

#endif
