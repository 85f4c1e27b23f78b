/* args.h — a small declarative command-line parser for the subcommands.
 * Options are "--name value" or "--name=value"; flags take no value. */
#ifndef FACET_COMMON_ARGS_H
#define FACET_COMMON_ARGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/error.h"

typedef enum { ARG_STRING, ARG_INT, ARG_U64, ARG_FLOAT, ARG_FLAG } arg_kind;

typedef struct arg_spec {
    const char *name; /* without the leading "--" */
    arg_kind kind;
    void *out;        /* const char **, int *, uint64_t *, float *, bool * */
    const char *help;
    double min, max;  /* range for numbers (ignored when min == max == 0) */
    bool *seen;       /* optional: set when given */
} arg_spec;

/* Parses argv[1..argc); false with a message naming the option on error.
 * "--help"/"-h" sets *help and returns true. */
bool args_parse(int argc, char **argv, const arg_spec *specs, int n_specs, bool *help, errbuf *err);
void args_usage(FILE *f, const char *usage, const char *summary, const arg_spec *specs, int n_specs);

/* A subcommand's whole front matter: parse, print usage on --help, print a
 * usage error as "facet NAME: message". Returns ARGS_CONTINUE when the
 * command should run, else the exit status (0 after --help, 2 on error). */
#define ARGS_CONTINUE (-1)
typedef struct arg_command {
    const char *name;    /* "generate" */
    const char *usage;   /* the synopsis line */
    const char *summary; /* what it does */
} arg_command;
int args_handle(const arg_command *cmd, const arg_spec *specs, int n_specs, int argc, char **argv);

#endif
