/* tokenizer.h — SentencePiece BPE, read from a tokenizer.model file or
 * built from a vocabulary given as arrays (a GGUF file's).
 *
 * Encoding reproduces `spm_encode --output_format=id` (sentencepiece
 * 0.1.97) for BPE models with identity normalization (Gemma's settings):
 *   1. normalize: each invalid UTF-8 byte -> U+FFFD, each ' ' -> U+2581 "▁";
 *   2. split into symbols: a user-defined piece (longest match) is one frozen
 *      symbol, otherwise one UTF-8 character (by its lead byte);
 *   3. merge adjacent symbols, best piece score first (ties: leftmost), while
 *      the merged string is a piece;
 *   4. a final symbol that is no piece becomes its bytes (<0xXX>, byte fallback).
 * No BOS is added: callers add it (tokenizer_bos_id). */
#ifndef FACET_TOKENIZER_H
#define FACET_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "common/strbuf.h"

typedef enum {
    PIECE_NORMAL = 1,
    PIECE_UNKNOWN = 2,
    PIECE_CONTROL = 3,
    PIECE_USER_DEFINED = 4,
    PIECE_UNUSED = 5,
    PIECE_BYTE = 6,
} piece_type;

typedef struct tokenizer tokenizer;

typedef struct token_list {
    int32_t *ids;
    int n, cap;
} token_list;

void token_list_init(token_list *l);
void token_list_free(token_list *l);
void token_list_push(token_list *l, int32_t id);

/* Parses a serialized ModelProto (the fuzz target's entry point). */
tokenizer *tokenizer_parse(const uint8_t *data, size_t len, errbuf *err);
tokenizer *tokenizer_load(const char *path, errbuf *err);

/* A vocabulary as arrays: what a GGUF file's tokenizer.ggml.* keys hold
 * (model/gguf_tokenizer.c reads them). Types use SentencePiece's numbering
 * (piece_type), as GGUF's token_type does. */
typedef struct tokenizer_vocab {
    int n;                     /* pieces, ids 0..n-1 */
    const char *const *pieces; /* (n) piece bytes, not NUL-terminated */
    const size_t *piece_lens;  /* (n) */
    const float *scores;       /* (n) merge priority: the best-scoring merge goes first */
    const int32_t *types;      /* (n) piece_type */
    int bos_id, eos_id, pad_id; /* -1: none */
    int unk_id;                 /* the UNKNOWN piece's id (checked), or -1 to take whichever it is */
    bool add_dummy_prefix;      /* SentencePiece's option (GGUF: add_space_prefix); Gemma: false */
    bool user_defined_raw;      /* user-defined pieces are matched in the raw text, spaces as spaces (HF's
                                   added tokens, llama.cpp: Gemma 3's whitespace runs "  " in GGUF files);
                                   false: as SentencePiece does, after ' ' became ▁ */
} tokenizer_vocab;

/* The tokenizer tokenizer_parse builds from a ModelProto with these pieces
 * (BPE, identity normalization, spaces escaped as "▁"); byte fallback is on
 * when the vocabulary has byte pieces, and then all 256 must be there. The
 * arrays are copied. Inconsistent input (ids out of range, a byte piece not
 * <0xHH>, duplicates, no or two unknown pieces) is refused by name. */
tokenizer *tokenizer_from_vocab(const tokenizer_vocab *v, errbuf *err);
/* The same with Gemma's settings: no dummy prefix. */
tokenizer *tokenizer_from_pieces(int n, const char *const *pieces, const size_t *piece_lens, const float *scores,
                                 const int32_t *types, int bos_id, int eos_id, int unk_id, int pad_id, errbuf *err);
void tokenizer_free(tokenizer *tok);

int tokenizer_vocab_size(const tokenizer *tok);
int tokenizer_bos_id(const tokenizer *tok);
int tokenizer_eos_id(const tokenizer *tok);
/* Exact lookup of a piece of any type; -1 when absent. */
int tokenizer_piece_id(const tokenizer *tok, const char *piece);
const char *tokenizer_piece(const tokenizer *tok, int id, size_t *len);
piece_type tokenizer_piece_type(const tokenizer *tok, int id);

enum {
    /* Do not recognise user-defined pieces (<start_of_turn>, ...) in the
     * text: for user content, which must never inject control tokens. */
    ENCODE_PLAIN_TEXT = 1u << 0,
};

/* Appends the ids of text[0..len) to out. */
bool tokenizer_encode(const tokenizer *tok, const char *text, size_t len, unsigned flags,
                      token_list *out, errbuf *err);

/* The text of ids, as spm's DecodeIds renders it: control pieces vanish,
 * "▁" becomes ' ', byte pieces are joined and invalid UTF-8 becomes U+FFFD. */
bool tokenizer_decode(const tokenizer *tok, const int32_t *ids, int n, strbuf *out, errbuf *err);

/* Incremental detokenization for streaming: text is released only when it
 * is final, so a UTF-8 character split over byte pieces is never cut. The
 * concatenation of everything pushed and flushed equals tokenizer_decode. */
typedef struct detokenizer {
    const tokenizer *tok;
    uint8_t pending[4]; /* bytes of an unfinished character from byte pieces */
    int n_pending;
} detokenizer;

void detokenizer_init(detokenizer *d, const tokenizer *tok);
/* Appends the text that token `id` makes final. False for an id out of range. */
bool detokenizer_push(detokenizer *d, int32_t id, strbuf *out);
/* End of stream: releases what is pending (U+FFFD for an unfinished character). */
void detokenizer_flush(detokenizer *d, strbuf *out);

#endif
