/* served_model.h — what the coordinator knows of the model it serves: the
 * configuration (context length, vocabulary, special ids), the tokenizer,
 * and the name clients use. Loaded once at start from the checkpoint
 * directory; read-only afterwards, so any thread may read it unlocked. */
#ifndef FACET_COORDINATOR_SERVED_MODEL_H
#define FACET_COORDINATOR_SERVED_MODEL_H

#include <time.h>

#include "common/error.h"
#include "model/config.h"
#include "tokenizer/tokenizer.h"

typedef struct served_model {
    const char *dir;    /* the checkpoint directory workers load */
    gemma_config cfg;
    tokenizer *tok;     /* NULL when the checkpoint has no tokenizer.model (token ids only) */
    int eos_id, eot_id; /* eot_id: <end_of_turn>, -1 without one */
    char name[256];     /* what clients call it: --served-model-name, else the directory's name */
    time_t created;
} served_model;

/* Reads config.json and tokenizer.model from dir; checks that tp divides the model. */
bool served_model_load(served_model *m, const char *dir, const char *served_name, int tp, errbuf *err);
void served_model_free(served_model *m);

#endif
