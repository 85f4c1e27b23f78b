/* vocab_builder.h — makes a Gemma-like tokenizer.model for random-weight
 * models (facet make-model), since the real one is a gated download.
 *
 * Same settings as Gemma's (BPE, byte fallback, digits split, identity
 * normalization, whitespace kept), the same special ids (<pad>=0 <eos>=1
 * <bos>=2 <unk>=3, <start_of_turn>=106 <end_of_turn>=107), merges learned
 * from a small built-in text, then further merges of existing pieces until
 * the vocabulary has exactly `vocab_size` pieces (256 000 for 2b/7b). */
#ifndef FACET_VOCAB_BUILDER_H
#define FACET_VOCAB_BUILDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* The serialized ModelProto in *out (malloc'd). */
bool vocab_build_gemma_like(int vocab_size, uint8_t **out, size_t *out_len, errbuf *err);

#endif
