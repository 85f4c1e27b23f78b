/* tokenizer_impl.h — the tokenizer's private state (shared by its .c files). */
#ifndef FACET_TOKENIZER_IMPL_H
#define FACET_TOKENIZER_IMPL_H

#include "tokenizer/tokenizer.h"

typedef struct piece_rec {
    const char *text; /* not NUL-terminated: (len) bytes inside the tokenizer's `text` */
    uint32_t len;
    float score;
    uint8_t type; /* piece_type */
} piece_rec;

typedef struct piece_map {
    int32_t *slots; /* piece ids, -1 = empty */
    uint32_t mask;
} piece_map;

typedef struct trie_node {
    int32_t first_child, next_sibling;
    uint8_t byte;
    bool terminal;
} trie_node;

/* Built by one function (tokenizer.c, build_tokenizer) whichever the
 * source: a tokenizer.model or a vocabulary as arrays. It owns all it holds. */
struct tokenizer {
    char *text; /* every piece's bytes, back to back */
    int n;
    piece_rec *pieces;  /* (n) */
    piece_map normal;   /* NORMAL, USER_DEFINED, UNUSED: what merges may form */
    piece_map reserved; /* UNKNOWN, CONTROL, BYTE */
    trie_node *trie;    /* user-defined pieces */
    int n_trie, cap_trie;
    int unk_id, bos_id, eos_id, pad_id;
    int byte_id[256];
    bool byte_fallback, add_dummy_prefix, escape_whitespaces;
    bool user_defined_raw; /* tokenizer_vocab's: a user-defined piece's spaces stay spaces */
    char *unk_surface; /* what decoding shows for the unknown piece */
};

#endif
