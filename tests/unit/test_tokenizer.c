/* Tokenizer behaviour beyond "equals spm_encode" (that comparison is
 * tests/cli/tokenizer_vs_spm.sh): round trips, streaming detokenization
 * that never emits half a character, byte fallback, user-defined pieces,
 * the chat template, and refusing garbage models. */
#define _GNU_SOURCE
#include <stdlib.h>

#include "check.h"
#include "common/mapped_file.h"
#include "common/utf8.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"
#include "sentencepiece/sentencepiece_model.pb-c.h"

static bool valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int c = utf8_valid_char_len((const uint8_t *)s + i, n - i);
        if (c == 0) return false;
        i += (size_t)c;
    }
    return true;
}

/* What a round trip gives back (SentencePiece's semantics): each invalid
 * byte becomes U+FFFD, and a literal "▁" comes back as a space (the
 * tokenizer's own space mark, so text cannot tell them apart). */
static void replace_invalid(const char *s, size_t n, strbuf *out) {
    for (size_t i = 0; i < n;) {
        int c = utf8_valid_char_len((const uint8_t *)s + i, n - i);
        if (c == 3 && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
            strbuf_append_char(out, ' ');
            i += 3;
        } else if (c == 0) {
            strbuf_append_str(out, UTF8_REPLACEMENT);
            i++;
        } else {
            strbuf_append(out, s + i, (size_t)c);
            i += (size_t)c;
        }
    }
}

static void test_round_trips(const tokenizer *tok, const char *corpus) {
    FILE *f = fopen(corpus, "rb");
    CHECK(f != NULL, "cannot open %s", corpus);
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int n_lines = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n') len--;
        n_lines++;
        token_list ids;
        token_list_init(&ids);
        errbuf err;
        CHECK(tokenizer_encode(tok, line, (size_t)len, 0, &ids, &err), "line %d: %s", n_lines, err.msg);
        strbuf whole, expect, streamed;
        strbuf_init(&whole), strbuf_init(&expect), strbuf_init(&streamed);
        CHECK(tokenizer_decode(tok, ids.ids, ids.n, &whole, &err), "decode: %s", err.msg);
        replace_invalid(line, (size_t)len, &expect);
        CHECK(whole.len == expect.len && memcmp(whole.data ? whole.data : "", expect.data ? expect.data : "", whole.len) == 0,
              "line %d: decode(encode(x)) != x", n_lines);
        /* streaming: every prefix released is whole characters */
        detokenizer d;
        detokenizer_init(&d, tok);
        bool always_whole = true;
        for (int i = 0; i < ids.n; i++) {
            detokenizer_push(&d, ids.ids[i], &streamed);
            always_whole = always_whole && valid_utf8(streamed.data ? streamed.data : "", streamed.len);
        }
        detokenizer_flush(&d, &streamed);
        CHECK(always_whole, "line %d: streaming released half a character", n_lines);
        CHECK(streamed.len == whole.len && memcmp(streamed.data ? streamed.data : "", whole.data ? whole.data : "", whole.len) == 0,
              "line %d: streamed text differs from decode", n_lines);
        token_list_free(&ids);
        strbuf_free(&whole), strbuf_free(&expect), strbuf_free(&streamed);
    }
    free(line);
    fclose(f);
    CHECK(n_lines > 100, "corpus too small: %d lines", n_lines);
}

static void test_pieces(const tokenizer *tok) {
    token_list ids;
    token_list_init(&ids);
    errbuf err;
    int sot = tokenizer_piece_id(tok, "<start_of_turn>");
    CHECK(sot >= 0 && tokenizer_piece_type(tok, sot) == PIECE_USER_DEFINED, "<start_of_turn> is user-defined");
    CHECK(tokenizer_bos_id(tok) == 2 && tokenizer_eos_id(tok) == 1, "Gemma special ids");
    const char *text = "x<start_of_turn>y";
    tokenizer_encode(tok, text, strlen(text), 0, &ids, &err);
    bool has = false;
    for (int i = 0; i < ids.n; i++) has |= ids.ids[i] == sot;
    CHECK(has, "user-defined piece not matched in text");
    ids.n = 0;
    tokenizer_encode(tok, text, strlen(text), ENCODE_PLAIN_TEXT, &ids, &err);
    has = false;
    for (int i = 0; i < ids.n; i++) has |= tokenizer_piece_type(tok, ids.ids[i]) == PIECE_USER_DEFINED;
    CHECK(!has, "plain text produced a user-defined piece");
    /* byte fallback: a character not in the vocabulary becomes its bytes */
    ids.n = 0;
    const char *rare = "\xF0\x9D\x84\x9E"; /* U+1D11E musical G clef */
    tokenizer_encode(tok, rare, 4, 0, &ids, &err);
    CHECK(ids.n == 4, "byte fallback gives %d ids (want 4)", ids.n);
    for (int i = 0; i < ids.n && i < 4; i++) {
        size_t len;
        const char *p = tokenizer_piece(tok, ids.ids[i], &len);
        char want[8];
        snprintf(want, sizeof want, "<0x%02X>", (uint8_t)rare[i]);
        CHECK(tokenizer_piece_type(tok, ids.ids[i]) == PIECE_BYTE && len == 6 && memcmp(p, want, 6) == 0, "byte %d", i);
    }
    /* streaming a 4-byte character arriving as four byte pieces */
    detokenizer d;
    detokenizer_init(&d, tok);
    strbuf out;
    strbuf_init(&out);
    for (int i = 0; i < 3; i++) {
        detokenizer_push(&d, ids.ids[i], &out);
        CHECK(out.len == 0, "released %zu bytes of an unfinished character", out.len);
    }
    detokenizer_push(&d, ids.ids[3], &out);
    CHECK(out.len == 4 && memcmp(out.data, rare, 4) == 0, "the character after its last byte");
    /* an unfinished character at the end of the stream becomes U+FFFD */
    strbuf_clear(&out);
    detokenizer_push(&d, ids.ids[0], &out);
    detokenizer_flush(&d, &out);
    CHECK(out.len == 3 && memcmp(out.data, UTF8_REPLACEMENT, 3) == 0, "flush of a partial character");
    CHECK(!detokenizer_push(&d, tokenizer_vocab_size(tok), &out), "out-of-range id accepted");
    CHECK_ERR(tokenizer_decode(tok, (int32_t[]){-1}, 1, &out, &err), err, "out of range");
    strbuf_free(&out);
    token_list_free(&ids);
}

static void test_chat(const tokenizer *tok) {
    token_list ids;
    token_list_init(&ids);
    errbuf err;
    chat_message msgs[3] = {{"system", "Be brief.", 9}, {"user", "Hi <start_of_turn>", 18}, {"assistant", "Hello", 5}};
    CHECK(!chat_encode(tok, msgs, 3, &ids, &err), "a conversation ending with the assistant was accepted");
    ids.n = 0;
    bool ok = chat_encode(tok, msgs, 2, &ids, &err);
    CHECK(ok, "%s", err.msg);
    int sot = tokenizer_piece_id(tok, "<start_of_turn>"), eot = tokenizer_piece_id(tok, "<end_of_turn>");
    int n_sot = 0, n_eot = 0;
    for (int i = 0; i < ids.n; i++) n_sot += ids.ids[i] == sot, n_eot += ids.ids[i] == eot;
    CHECK(ids.n > 4 && ids.ids[0] == 2 && ids.ids[1] == sot, "starts with <bos><start_of_turn>");
    CHECK(n_sot == 2 && n_eot == 1, "user text injected a control token (%d start, %d end)", n_sot, n_eot);
    strbuf text;
    strbuf_init(&text);
    tokenizer_decode(tok, ids.ids, ids.n, &text, &err);
    const char *want = "<start_of_turn>user\nBe brief.\n\nHi <start_of_turn><end_of_turn>\n<start_of_turn>model\n";
    CHECK(text.data && strcmp(text.data, want) == 0, "chat text:\n%s", text.data ? text.data : "");
    chat_message bad[1] = {{"model", "x", 1}};
    ids.n = 0;
    CHECK_ERR(chat_encode(tok, bad, 1, &ids, &err), err, "role");
    strbuf_free(&text);
    token_list_free(&ids);
}

/* A model that fails to load must say why, never crash. */
static void test_garbage(const char *good_path) {
    errbuf err;
    CHECK_ERR(tokenizer_parse((const uint8_t *)"\xff\xff\xff\xff garbage", 13, &err) != NULL, err, "not a SentencePiece model");
    CHECK_ERR(tokenizer_parse((const uint8_t *)"", 0, &err) != NULL, err, "pieces");
    CHECK_ERR(tokenizer_load("/nonexistent/tokenizer.model", &err) != NULL, err, "/nonexistent/tokenizer.model");
    mapped_file mf;
    CHECK(mapped_file_open(&mf, good_path, &err), "%s", err.msg);
    tokenizer *t = tokenizer_parse(mf.data, mf.size / 2, &err); /* truncated */
    CHECK(t == NULL, "a truncated model loaded");
    tokenizer_free(t);
    /* unigram, and a model without its unknown piece */
    Sentencepiece__ModelProto *mp = sentencepiece__model_proto__unpack(NULL, mf.size, mf.data);
    CHECK(mp != NULL, "unpack");
    mapped_file_close(&mf);
    if (!mp) return;
    uint8_t *buf = malloc(sentencepiece__model_proto__get_packed_size(mp) + 16);
    mp->trainer_spec->model_type = 1;
    size_t n = sentencepiece__model_proto__pack(mp, buf);
    CHECK_ERR(tokenizer_parse(buf, n, &err) != NULL, err, "UNIGRAM");
    mp->trainer_spec->model_type = 2;
    mp->pieces[3]->type = 1; /* <unk> made normal */
    n = sentencepiece__model_proto__pack(mp, buf);
    CHECK_ERR(tokenizer_parse(buf, n, &err) != NULL, err, "unknown piece");
    mp->pieces[3]->type = 2;
    mp->pieces[10]->piece.len = 0;
    n = sentencepiece__model_proto__pack(mp, buf);
    CHECK_ERR(tokenizer_parse(buf, n, &err) != NULL, err, "empty");
    free(buf);
    sentencepiece__model_proto__free_unpacked(mp, NULL);
}

int main(int argc, char **argv) {
    CHECK(argc == 3, "usage: test_tokenizer MODEL CORPUS");
    if (argc != 3) return CHECK_RESULT();
    errbuf err;
    tokenizer *tok = tokenizer_load(argv[1], &err);
    CHECK(tok != NULL, "%s", err.msg);
    if (!tok) return CHECK_RESULT();
    test_round_trips(tok, argv[2]);
    test_pieces(tok);
    test_chat(tok);
    test_garbage(argv[1]);
    tokenizer_free(tok);
    return CHECK_RESULT();
}
