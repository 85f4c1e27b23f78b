/* tokenizer_impl.h — the tokenizer's private state (shared by its .c files). */
#ifndef FACET_TOKENIZER_IMPL_H
#define FACET_TOKENIZER_IMPL_H

#include "tokenizer/tokenizer.h"
#include "sentencepiece/sentencepiece_model.pb-c.h"

typedef struct piece_rec {
    const char *text; /* not NUL-terminated: (len) bytes owned by the proto */
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

struct tokenizer {
    Sentencepiece__ModelProto *proto;
    int n;
    piece_rec *pieces;  /* (n) */
    piece_map normal;   /* NORMAL, USER_DEFINED, UNUSED: what merges may form */
    piece_map reserved; /* UNKNOWN, CONTROL, BYTE */
    trie_node *trie;    /* user-defined pieces */
    int n_trie, cap_trie;
    int unk_id, bos_id, eos_id, pad_id;
    int byte_id[256];
    bool byte_fallback, add_dummy_prefix, escape_whitespaces;
    const char *unk_surface;
};

#endif
