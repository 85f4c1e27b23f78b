/* commands.h — the subcommands of the facet binary. Each returns the
 * process exit status: 0 ok, 1 runtime error, 2 usage error. */
#ifndef FACET_CLI_COMMANDS_H
#define FACET_CLI_COMMANDS_H

#include "common/error.h"

#define FACET_VERSION "0.1.0"

int cmd_make_model(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_coordinator(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_certs(int argc, char **argv);

#endif
