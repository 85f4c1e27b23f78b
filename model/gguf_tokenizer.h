/* gguf_tokenizer.h — the tokenizer held in a GGUF file's metadata.
 *
 * It lives in model/ (layer 2), not tokenizer/ (layer 1): it reads a GGUF
 * file, and the GGUF reader is model's; tokenizer/ only builds from arrays
 * (tokenizer_from_vocab), which this fills. */
#ifndef FACET_MODEL_GGUF_TOKENIZER_H
#define FACET_MODEL_GGUF_TOKENIZER_H

#include "model/gguf.h"
#include "tokenizer/tokenizer.h"

/* Builds the tokenizer from the file's keys:
 *   tokenizer.ggml.model          "llama" (SentencePiece); anything else is refused by name
 *   tokenizer.ggml.tokens         [string] pieces, ids 0..n-1
 *   tokenizer.ggml.scores         [f32]    the same length
 *   tokenizer.ggml.token_type     [i32]    the same length, SentencePiece's numbering
 *   tokenizer.ggml.bos_token_id, eos_token_id, unknown_token_id, padding_token_id
 *                                 u32 (any integer type that fits); absent: none
 *   tokenizer.ggml.add_space_prefix  bool; absent: true (llama.cpp's default
 *                                 for SentencePiece vocabularies); Gemma's files say false
 * The tokenizer copies what it keeps: the file may be closed after. */
tokenizer *tokenizer_from_gguf(const gguf_file *g, errbuf *err);

#endif
