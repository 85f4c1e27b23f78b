#include "coordinator/served_model.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "model/checkpoint.h"
#include "model/tensors.h"
#include "tokenizer/chat.h"

/* The name clients use: --served-model-name, else the directory's name (a
 * GGUF file's, without ".gguf"). */
static void set_name(served_model *m, const char *served_name) {
    if (served_name) {
        snprintf(m->name, sizeof m->name, "%s", served_name);
        return;
    }
    char dir[sizeof m->name];
    snprintf(dir, sizeof dir, "%s", m->dir);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') dir[--n] = '\0';
    if (n > 5 && strcmp(dir + n - 5, ".gguf") == 0) dir[n - 5] = '\0';
    const char *base = strrchr(dir, '/');
    snprintf(m->name, sizeof m->name, "%s", base ? base + 1 : dir);
}

bool served_model_load(served_model *m, const char *dir, const char *served_name, int tp, errbuf *err) {
    memset(m, 0, sizeof *m);
    m->dir = dir;
    m->created = time(NULL);
    set_name(m, served_name);
    char path[CHECKPOINT_PATH_MAX];
    if (!model_read_config(dir, &m->cfg, err)) return false;
    if (!tp_check(&m->cfg, tp, err)) return false;
    m->eos_id = m->cfg.eos_id;
    m->eot_id = -1;
    bool gguf = model_path_is_gguf(dir); /* a GGUF file holds its tokenizer */
    checkpoint_path(dir, "tokenizer.model", path, sizeof path);
    if (!gguf && access(path, F_OK) != 0) {
        log_warn("%s has no tokenizer.model: requests must give token ids", dir);
        return true;
    }
    m->tok = model_open_tokenizer(dir, err);
    if (!m->tok) return false;
    if (tokenizer_vocab_size(m->tok) > m->cfg.vocab_size) {
        errbuf_set(err, "%s: the tokenizer has %d pieces but vocab_size is %d", dir, tokenizer_vocab_size(m->tok),
                   m->cfg.vocab_size);
        served_model_free(m);
        return false;
    }
    m->eot_id = chat_end_of_turn_id(m->tok);
    return true;
}

void served_model_free(served_model *m) {
    tokenizer_free(m->tok);
    m->tok = NULL;
}
