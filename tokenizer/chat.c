#include "tokenizer/chat.h"

#include <string.h>

int chat_end_of_turn_id(const tokenizer *tok) { return tokenizer_piece_id(tok, "<end_of_turn>"); }

/* One turn: <start_of_turn>{role}\n{text}<end_of_turn>\n */
static bool encode_turn(const tokenizer *tok, int sot, int eot, const char *role, const char *prefix,
                        size_t prefix_len, const chat_message *m, token_list *out, errbuf *err) {
    strbuf text;
    strbuf_init(&text);
    strbuf_append_str(&text, role);
    strbuf_append_char(&text, '\n');
    strbuf_append(&text, prefix, prefix_len);
    strbuf_append(&text, m->content, m->content_len);
    token_list_push(out, sot);
    bool ok = tokenizer_encode(tok, text.data, text.len, ENCODE_PLAIN_TEXT, out, err);
    strbuf_free(&text);
    if (!ok) return false;
    token_list_push(out, eot);
    return tokenizer_encode(tok, "\n", 1, 0, out, err);
}

bool chat_encode(const tokenizer *tok, const chat_message *msgs, int n, token_list *out, errbuf *err) {
    int sot = tokenizer_piece_id(tok, "<start_of_turn>");
    int eot = tokenizer_piece_id(tok, "<end_of_turn>");
    if (sot < 0 || eot < 0)
        return errbuf_set(err, "the tokenizer has no <start_of_turn>/<end_of_turn> pieces, so it cannot use the chat template");
    if (n == 0) return errbuf_set(err, "messages: at least one message is required");
    int bos = tokenizer_bos_id(tok);
    if (bos >= 0) token_list_push(out, bos);

    const chat_message *system = NULL;
    int first = 0;
    if (strcmp(msgs[0].role, "system") == 0) {
        system = &msgs[0];
        first = 1;
    }
    if (system && first == n) return errbuf_set(err, "messages: a system message must be followed by a user message");
    for (int i = first; i < n; i++) {
        const char *role = msgs[i].role;
        bool want_user = (i - first) % 2 == 0;
        if (strcmp(role, "assistant") == 0) role = "model";
        if (strcmp(role, want_user ? "user" : "model") != 0)
            return errbuf_set(err, "messages[%d]: role \"%s\" is out of place (roles must alternate user/assistant, starting with user)",
                              i, msgs[i].role);
        strbuf prefix;
        strbuf_init(&prefix);
        if (i == first && system) {
            strbuf_append(&prefix, system->content, system->content_len);
            strbuf_append_str(&prefix, "\n\n");
        }
        bool ok = encode_turn(tok, sot, eot, role, prefix.data ? prefix.data : "", prefix.len, &msgs[i], out, err);
        strbuf_free(&prefix);
        if (!ok) return false;
    }
    if ((n - first) % 2 == 0)
        return errbuf_set(err, "messages: the last message must be from the user");
    token_list_push(out, sot);
    return tokenizer_encode(tok, "model\n", 6, 0, out, err);
}
