/* gguf_config.h — a Gemma configuration (model/config.h) from the metadata
 * of a GGUF file: general.architecture gemma, gemma2 or gemma3, the shapes
 * under that prefix, the vocabulary from tokenizer.ggml.*. */
#ifndef FACET_MODEL_GGUF_CONFIG_H
#define FACET_MODEL_GGUF_CONFIG_H

#include "model/config.h"
#include "model/gguf.h"

bool gguf_gemma_config(const gguf_file *g, gemma_config *cfg, errbuf *err);

#endif
