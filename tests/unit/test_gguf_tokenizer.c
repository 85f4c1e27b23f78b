/* The tokenizer in a GGUF file: built from tiny.gguf's tokenizer.ggml.*
 * arrays it is the tokenizer vocab.model (the same vocabulary as a
 * tokenizer.model) gives -- same pieces, types and special ids -- and it
 * encodes the texts of tiny.json to exactly the ids spm_encode gave.
 * Then small files written here: add_space_prefix honoured, and every
 * inconsistency (other tokenizer models, arrays of unequal length, wrong
 * types, ids out of range, malformed byte pieces) refused by name.
 *
 * usage: test_gguf_tokenizer tests/fixtures/gguf */
#include "test_gguf_fixture.h"

#include "model/gguf_tokenizer.h"

static bool same_ids(const token_list *l, const cJSON *ids) {
    if (l->n != cJSON_GetArraySize(ids)) return false;
    int i = 0;
    for (const cJSON *v = ids->child; v; v = v->next, i++)
        if (l->ids[i] != v->valueint) return false;
    return true;
}

static void check_same_vocabulary(const tokenizer *a, const tokenizer *b) {
    CHECK(tokenizer_vocab_size(a) == tokenizer_vocab_size(b), "%d pieces vs %d", tokenizer_vocab_size(a),
          tokenizer_vocab_size(b));
    CHECK(tokenizer_bos_id(a) == tokenizer_bos_id(b) && tokenizer_eos_id(a) == tokenizer_eos_id(b), "special ids");
    int differ = 0;
    for (int i = 0; i < tokenizer_vocab_size(a) && i < tokenizer_vocab_size(b); i++) {
        size_t la, lb;
        const char *pa = tokenizer_piece(a, i, &la), *pb = tokenizer_piece(b, i, &lb);
        if (la != lb || memcmp(pa, pb, la) != 0 || tokenizer_piece_type(a, i) != tokenizer_piece_type(b, i)) differ++;
    }
    CHECK(differ == 0, "%d pieces differ between the GGUF and the tokenizer.model", differ);
}

/* Every text of tiny.json: both tokenizers give spm_encode's ids, and the same text back. */
static void check_cases(const tokenizer *from_gguf, const tokenizer *from_model, const cJSON *cases) {
    int n = 0;
    for (const cJSON *c = cases->child; c; c = c->next, n++) {
        const char *hex = cJSON_GetObjectItem(c, "hex")->valuestring;
        const cJSON *want = cJSON_GetObjectItem(c, "ids");
        uint8_t *text = malloc(strlen(hex) / 2 + 1);
        size_t len = hex_decode(hex, text);
        token_list g, m;
        token_list_init(&g), token_list_init(&m);
        errbuf err;
        CHECK(tokenizer_encode(from_gguf, (const char *)text, len, 0, &g, &err), "case %d: %s", n, err.msg);
        CHECK(tokenizer_encode(from_model, (const char *)text, len, 0, &m, &err), "case %d: %s", n, err.msg);
        CHECK(same_ids(&g, want), "case %d (%s): the GGUF tokenizer's %d ids differ from spm_encode's", n, hex, g.n);
        CHECK(same_ids(&m, want), "case %d (%s): the tokenizer.model's %d ids differ from spm_encode's", n, hex, m.n);
        strbuf dg, dm;
        strbuf_init(&dg), strbuf_init(&dm);
        CHECK(tokenizer_decode(from_gguf, g.ids, g.n, &dg, &err) && tokenizer_decode(from_model, m.ids, m.n, &dm, &err) &&
                  dg.len == dm.len && memcmp(dg.data ? dg.data : "", dm.data ? dm.data : "", dg.len) == 0,
              "case %d: decoded texts differ", n);
        strbuf_free(&dg), strbuf_free(&dm);
        token_list_free(&g), token_list_free(&m);
        free(text);
    }
    printf("tokenizer: %d texts encode to spm_encode's ids from the GGUF arrays and from vocab.model\n", n);
}

static void test_fixture(const char *dir, const cJSON *json) {
    char path[4096];
    errbuf err;
    snprintf(path, sizeof path, "%s/%s", dir, cJSON_GetObjectItem(json, "file")->valuestring);
    gguf_file *g = gguf_open(path, &err);
    CHECK(g != NULL, "%s", err.msg);
    if (!g) return;
    tokenizer *from_gguf = tokenizer_from_gguf(g, &err);
    CHECK(from_gguf != NULL, "tokenizer_from_gguf: %s", err.msg);
    gguf_close(g); /* the tokenizer keeps copies: the map is gone from here on */
    const cJSON *spec = cJSON_GetObjectItem(json, "tokenizer");
    snprintf(path, sizeof path, "%s/%s", dir, cJSON_GetObjectItem(spec, "model_file")->valuestring);
    tokenizer *from_model = tokenizer_load(path, &err);
    CHECK(from_model != NULL, "%s", err.msg);
    if (from_gguf && from_model) {
        CHECK(tokenizer_vocab_size(from_gguf) == cJSON_GetObjectItem(spec, "n")->valueint, "%d pieces",
              tokenizer_vocab_size(from_gguf));
        CHECK(tokenizer_bos_id(from_gguf) == cJSON_GetObjectItem(spec, "bos_id")->valueint &&
                  tokenizer_eos_id(from_gguf) == cJSON_GetObjectItem(spec, "eos_id")->valueint,
              "bos %d eos %d", tokenizer_bos_id(from_gguf), tokenizer_eos_id(from_gguf));
        CHECK(tokenizer_piece_id(from_gguf, "<start_of_turn>") >= 0 &&
                  tokenizer_piece_type(from_gguf, tokenizer_piece_id(from_gguf, "<start_of_turn>")) == PIECE_USER_DEFINED,
              "<start_of_turn> is user-defined");
        check_same_vocabulary(from_gguf, from_model);
        check_cases(from_gguf, from_model, cJSON_GetObjectItem(spec, "cases"));
    }
    tokenizer_free(from_gguf);
    tokenizer_free(from_model);
}

/* ---- small vocabularies in small files ----------------------------------- */

#define N_PIECES 9
/* "\342\226\201" is U+2581, SentencePiece's visible space */
static const char *const PIECES[N_PIECES] = {"<pad>", "<eos>", "<bos>", "<unk>", "a", "b", "ab", "\342\226\201",
                                             "\342\226\201ab"};
static const int32_t TYPES[N_PIECES] = {3, 3, 3, 2, 1, 1, 1, 1, 1};
static const float SCORES[N_PIECES] = {0, 0, 0, 0, -1, -2, -0.5f, -3, -0.1f};

/* What a vocabulary file holds; a negative count or id leaves the key out. */
typedef struct {
    const char *model; /* NULL: no key */
    int n_tokens, n_scores, n_types;
    gguf_value_type scores_type;
    int bos, unk;
    int add_space_prefix;           /* -1: no key */
    const char *piece4;             /* replaces piece 4 ("a") */
    int32_t type3, type4;           /* replace the types of <unk> and "a" when non-zero */
    bool bos_as_string;
} vocab_spec;

static vocab_spec default_spec(void) {
    return (vocab_spec){"llama", N_PIECES, N_PIECES, N_PIECES, GGUF_F32, 2, 3, 0, NULL, 0, 0, false};
}

static void write_vocab_file(const vocab_spec *s, strbuf *out) {
    strbuf kv;
    strbuf_init(&kv);
    int n_kv = 0;
    if (s->model) {
        put_key(&kv, "tokenizer.ggml.model", GGUF_STRING), put_str(&kv, s->model), n_kv++;
    }
    if (s->n_tokens >= 0) {
        put_key(&kv, "tokenizer.ggml.tokens", GGUF_ARRAY), put_u32(&kv, GGUF_STRING), put_u64(&kv, (uint64_t)s->n_tokens);
        for (int i = 0; i < s->n_tokens; i++) put_str(&kv, i == 4 && s->piece4 ? s->piece4 : PIECES[i % N_PIECES]);
        n_kv++;
    }
    put_key(&kv, "tokenizer.ggml.scores", GGUF_ARRAY), put_u32(&kv, s->scores_type), put_u64(&kv, (uint64_t)s->n_scores);
    for (int i = 0; i < s->n_scores; i++) {
        float f = SCORES[i % N_PIECES];
        uint32_t bits;
        memcpy(&bits, &f, 4);
        put_u32(&kv, s->scores_type == GGUF_F32 ? bits : (uint32_t)i);
    }
    n_kv++;
    put_key(&kv, "tokenizer.ggml.token_type", GGUF_ARRAY), put_u32(&kv, GGUF_I32), put_u64(&kv, (uint64_t)s->n_types);
    for (int i = 0; i < s->n_types; i++) {
        int32_t t = i == 3 && s->type3 ? s->type3 : i == 4 && s->type4 ? s->type4 : TYPES[i % N_PIECES];
        put_u32(&kv, (uint32_t)t);
    }
    n_kv++;
    if (s->bos_as_string) {
        put_key(&kv, "tokenizer.ggml.bos_token_id", GGUF_STRING), put_str(&kv, "2"), n_kv++;
    } else if (s->bos >= 0) {
        put_key(&kv, "tokenizer.ggml.bos_token_id", GGUF_U32), put_u32(&kv, (uint32_t)s->bos), n_kv++;
    }
    put_key(&kv, "tokenizer.ggml.eos_token_id", GGUF_U32), put_u32(&kv, 1), n_kv++;
    if (s->unk >= 0) {
        put_key(&kv, "tokenizer.ggml.unknown_token_id", GGUF_U32), put_u32(&kv, (uint32_t)s->unk), n_kv++;
    }
    if (s->add_space_prefix >= 0) {
        put_key(&kv, "tokenizer.ggml.add_space_prefix", GGUF_BOOL), strbuf_append_char(&kv, (char)s->add_space_prefix);
        n_kv++;
    }
    strbuf_init(out);
    put_header(out, 0, (uint64_t)n_kv);
    strbuf_append(out, kv.data, kv.len);
    strbuf_free(&kv);
}

/* The tokenizer of a spec's file, or NULL with err set. */
static tokenizer *vocab_tokenizer(const vocab_spec *s, errbuf *err) {
    strbuf file;
    write_vocab_file(s, &file);
    parsed p = parse_copy(file.data, file.len, err);
    strbuf_free(&file);
    CHECK(p.g != NULL, "a vocabulary file is refused: %s", err->msg);
    tokenizer *tok = p.g ? tokenizer_from_gguf(p.g, err) : NULL;
    parsed_free(&p);
    return tok;
}

/* "ab ab" as ids, with and without the dummy prefix */
static void check_encodes(const vocab_spec *s, const int32_t *want, int n_want, const char *what) {
    errbuf err;
    tokenizer *tok = vocab_tokenizer(s, &err);
    CHECK(tok != NULL, "%s: %s", what, err.msg);
    if (!tok) return;
    token_list ids;
    token_list_init(&ids);
    CHECK(tokenizer_encode(tok, "ab ab", 5, 0, &ids, &err), "%s: %s", what, err.msg);
    bool same = ids.n == n_want;
    for (int i = 0; same && i < n_want; i++) same = ids.ids[i] == want[i];
    CHECK(same, "%s: \"ab ab\" gives %d ids (%d %d ...)", what, ids.n, ids.n > 0 ? ids.ids[0] : -1,
          ids.n > 1 ? ids.ids[1] : -1);
    token_list_free(&ids);
    tokenizer_free(tok);
}

static void check_refused(const vocab_spec *s, const char *needle) {
    errbuf err;
    tokenizer *tok = vocab_tokenizer(s, &err);
    CHECK_ERR(tok != NULL, err, needle);
    if (!tok) printf("  refused: %s\n", err.msg);
    tokenizer_free(tok);
}

static void test_vocab_files(void) {
    vocab_spec s = default_spec();
    check_encodes(&s, (const int32_t[]){6, 8}, 2, "add_space_prefix false"); /* "ab", "▁ab" */
    s.add_space_prefix = 1;
    check_encodes(&s, (const int32_t[]){8, 8}, 2, "add_space_prefix true"); /* "▁ab", "▁ab" */
    s.add_space_prefix = -1;
    check_encodes(&s, (const int32_t[]){8, 8}, 2, "add_space_prefix absent (llama.cpp: true)");

    /* llama.cpp's converter writes <unk> as CONTROL (Gemma 3's file does):
     * unknown_token_id says which piece is the unknown one */
    s = default_spec(), s.type3 = PIECE_CONTROL;
    errbuf err;
    tokenizer *tok = vocab_tokenizer(&s, &err);
    strbuf text;
    strbuf_init(&text);
    bool decoded = tok && tokenizer_decode(tok, (const int32_t[]){3}, 1, &text, &err);
    CHECK(tok && tokenizer_piece_type(tok, 3) == PIECE_UNKNOWN, "a CONTROL <unk> named by unknown_token_id: %s",
          tok ? "not UNKNOWN" : err.msg);
    CHECK(decoded && text.data && strcmp(text.data, " \xE2\x81\x87 ") == 0, "<unk> decodes as \" \xE2\x81\x87 \"");
    strbuf_free(&text);
    tokenizer_free(tok);
    s.unk = -1;
    check_refused(&s, "no unknown piece is defined");

    s = default_spec(), s.model = "gpt2";
    check_refused(&s, "tokenizer.ggml.model is \"gpt2\": facet reads SentencePiece vocabularies (\"llama\") only");
    s = default_spec(), s.model = NULL;
    check_refused(&s, "key \"tokenizer.ggml.model\" is missing");
    s = default_spec(), s.n_tokens = -1;
    check_refused(&s, "key \"tokenizer.ggml.tokens\" is missing");
    s = default_spec(), s.n_scores = N_PIECES - 1;
    check_refused(&s, "tokenizer.ggml.scores has 8 entries but tokenizer.ggml.tokens has 9");
    s = default_spec(), s.n_types = N_PIECES + 1;
    check_refused(&s, "tokenizer.ggml.token_type has 10 entries but tokenizer.ggml.tokens has 9");
    s = default_spec(), s.n_tokens = s.n_scores = s.n_types = 0;
    check_refused(&s, "tokenizer.ggml.tokens is empty");
    s = default_spec(), s.scores_type = GGUF_I32;
    check_refused(&s, "key \"tokenizer.ggml.scores\" is an array of i32, not of f32");
    s = default_spec(), s.bos_as_string = true;
    check_refused(&s, "key \"tokenizer.ggml.bos_token_id\" is a string, not i32");
    s = default_spec(), s.bos = 99;
    check_refused(&s, "tokenizer.ggml.bos_token_id = 99 is out of range for 9 tokens");
    s = default_spec(), s.unk = 4;
    check_refused(&s, "GGUF vocabulary (tokenizer.ggml.tokens): unk_id 4 is not the unknown piece (piece 3 is)");
    s = default_spec(), s.type4 = 9;
    check_refused(&s, "piece 4 has unknown type 9");
    s = default_spec(), s.type4 = PIECE_UNKNOWN;
    check_refused(&s, "more than one unknown piece (3 and 4)");
    s = default_spec(), s.type4 = PIECE_NORMAL, s.piece4 = "b";
    check_refused(&s, "piece 5 \"b\" is defined twice");
    s = default_spec(), s.piece4 = "";
    check_refused(&s, "piece 4 is empty");
    s = default_spec(), s.piece4 = "<0xZZ>", s.type4 = PIECE_BYTE;
    check_refused(&s, "byte piece 4 is not of the form <0xHH>");
    s = default_spec(), s.piece4 = "<0x41>", s.type4 = PIECE_BYTE;
    check_refused(&s, "byte_fallback is on but piece <0x00> is missing");
}

/* tokenizer_from_pieces refuses what cannot be a vocabulary. */
static void test_from_pieces(void) {
    size_t lens[N_PIECES];
    for (int i = 0; i < N_PIECES; i++) lens[i] = strlen(PIECES[i]);
    errbuf err;
    tokenizer *tok = tokenizer_from_pieces(N_PIECES, PIECES, lens, SCORES, TYPES, 2, 1, 3, 0, &err);
    CHECK(tok != NULL && tokenizer_piece_id(tok, "ab") == 6, "from_pieces: %s", tok ? "" : err.msg);
    tokenizer_free(tok);
    CHECK_ERR(tokenizer_from_pieces(0, PIECES, lens, SCORES, TYPES, 2, 1, 3, 0, &err), err, "has 0 pieces");
    CHECK_ERR(tokenizer_from_pieces(-5, PIECES, lens, SCORES, TYPES, 2, 1, 3, 0, &err), err, "has -5 pieces");
    CHECK_ERR(tokenizer_from_pieces(N_PIECES, PIECES, lens, NULL, TYPES, 2, 1, 3, 0, &err), err, "lacks");
    CHECK_ERR(tokenizer_from_pieces(N_PIECES, PIECES, lens, SCORES, TYPES, 2, 9, 3, 0, &err), err,
              "eos_id 9 is out of range for 9 pieces");
    CHECK_ERR(tokenizer_from_pieces(N_PIECES, PIECES, lens, SCORES, TYPES, 2, 1, -2, 0, &err), err,
              "unk_id -2 is out of range");
    CHECK_ERR(tokenizer_from_pieces(N_PIECES, PIECES, lens, SCORES, TYPES, 2, 1, 3, 100, &err), err,
              "pad_id 100 is out of range");
    int32_t no_unk[N_PIECES];
    memcpy(no_unk, TYPES, sizeof no_unk);
    no_unk[3] = PIECE_CONTROL;
    CHECK_ERR(tokenizer_from_pieces(N_PIECES, PIECES, lens, SCORES, no_unk, 2, 1, -1, 0, &err), err,
              "no unknown piece is defined");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_gguf_tokenizer FIXTURE_DIR (tests/fixtures/gguf)\n");
        return 2;
    }
    cJSON *json = fixture_json(argv[1]);
    test_fixture(argv[1], json);
    test_vocab_files();
    test_from_pieces();
    cJSON_Delete(json);
    return CHECK_RESULT();
}
