#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>

#include "common/args.h"
#include "cli/commands.h"
#include "tokenizer/tokenizer.h"
#include "model/checkpoint.h"

/* One line of stdin -> one line of ids, like `spm_encode --output_format=id`:
 * the '\n' ends the input and is not part of it ('\r' is kept). */
static bool tokenize_stream(const tokenizer *tok, FILE *in, FILE *out, unsigned flags, errbuf *err) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    token_list ids;
    token_list_init(&ids);
    bool ok = true;
    while (ok && (len = getline(&line, &cap, in)) >= 0) {
        if (len > 0 && line[len - 1] == '\n') len--;
        ids.n = 0;
        ok = tokenizer_encode(tok, line, (size_t)len, flags, &ids, err);
        for (int i = 0; ok && i < ids.n; i++) fprintf(out, i ? " %d" : "%d", ids.ids[i]);
        if (ok) fputc('\n', out);
    }
    free(line);
    token_list_free(&ids);
    return ok;
}

int cmd_tokenize(int argc, char **argv) {
    const char *tok_path = NULL, *model = NULL;
    bool plain = false;
    const arg_spec specs[] = {
        {"tokenizer", ARG_STRING, &tok_path, "a SentencePiece tokenizer.model", 0, 0, NULL},
        {"model", ARG_STRING, &model, "a checkpoint directory (its tokenizer.model) or a GGUF file", 0, 0, NULL},
        {"plain", ARG_FLAG, &plain, "do not recognise user-defined pieces such as <start_of_turn>", 0, 0, NULL},
    };
    static const arg_command cmd = {"tokenize", "facet tokenize (--tokenizer FILE | --model DIR) < text",
                   "Reads UTF-8 text from stdin, one input per line, and prints the token ids of each line\n"
                   "(space-separated, no BOS), as spm_encode --output_format=id does."};
    int rc = args_handle(&cmd, specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != ARGS_CONTINUE) return rc;
    errbuf err;
    if (!tok_path && !model) {
        fprintf(stderr, "facet tokenize: give --tokenizer FILE or --model DIR (or a .gguf file)\n");
        return 2;
    }
    tokenizer *tok = tok_path ? tokenizer_load(tok_path, &err) : model_open_tokenizer(model, &err);
    if (!tok) {
        fprintf(stderr, "facet tokenize: %s\n", err.msg);
        return 1;
    }
    bool ok = tokenize_stream(tok, stdin, stdout, plain ? ENCODE_PLAIN_TEXT : 0, &err);
    tokenizer_free(tok);
    if (!ok) {
        fprintf(stderr, "facet tokenize: %s\n", err.msg);
        return 1;
    }
    return 0;
}
