/* bench_comm.h — `facet bench comm`: all-reduce over Gloo on loopback, ranks
 * as threads of one process, printed as nccl-tests prints its tables. */
#ifndef FACET_COMM_BENCH_COMM_H
#define FACET_COMM_BENCH_COMM_H

/* argv[0] is the command's name; options follow (--help lists them).
 * Returns 0, 1 on a failed or wrong all-reduce, 2 on a usage error. */
int bench_comm_main(int argc, char **argv);

/* times (ranks, iters) seconds: the median over iterations of the slowest
 * rank's time (what both bench comm tables print); 0 when out of memory. */
double bench_comm_median_slowest(const double *times, int ranks, int iters);

#endif
