/* chat.h — Gemma's chat template.
 *
 *   <bos><start_of_turn>user\n{message}<end_of_turn>\n<start_of_turn>model\n
 *
 * Roles alternate user / model (OpenAI's "assistant" is Gemma's "model").
 * Gemma has no system role: a system message is folded into the first user
 * turn ("{system}\n\n{user}"). Message text is encoded as plain text, so a
 * user who types "<start_of_turn>" gets those characters, not the control
 * token. */
#ifndef FACET_CHAT_H
#define FACET_CHAT_H

#include "tokenizer/tokenizer.h"

typedef struct chat_message {
    const char *role; /* "system", "user", "assistant" or "model" */
    const char *content;
    size_t content_len;
} chat_message;

/* Appends the prompt ids for a conversation (ending with an open model turn). */
bool chat_encode(const tokenizer *tok, const chat_message *msgs, int n, token_list *out, errbuf *err);

/* The end-of-turn id (a stop token in chat mode), or -1 if the tokenizer has none. */
int chat_end_of_turn_id(const tokenizer *tok);

#endif
