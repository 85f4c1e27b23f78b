#include "tokenizer/vocab_builder.h"
#include "common/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"
#include "sentencepiece/sentencepiece_model.pb-c.h"

extern const char VOCAB_CORPUS[];

#define SPACE_MARK "\xE2\x96\x81"
#define MAX_PIECE_BYTES 16
#define N_RESERVED 108 /* ids 0..107: specials, as in Gemma's vocabulary */

/* ---- a set of strings (for "is this piece taken?") ----------------------- */

typedef struct {
    char **keys;
    uint32_t mask;
    int n;
} string_set;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static void set_init(string_set *s, int expected) {
    uint32_t cap = 64;
    while (cap < (uint32_t)expected * 2) cap *= 2;
    s->keys = xcalloc(cap, sizeof *s->keys);
    s->mask = cap - 1;
    s->n = 0;
}

static void set_free(string_set *s) {
    for (uint32_t i = 0; i <= s->mask; i++) free(s->keys[i]);
    free(s->keys);
}

/* True if added (was absent). */
static bool set_add(string_set *s, const char *key) {
    uint32_t i = (uint32_t)fnv1a(key) & s->mask;
    while (s->keys[i]) {
        if (strcmp(s->keys[i], key) == 0) return false;
        i = (i + 1) & s->mask;
    }
    s->keys[i] = xstrdup(key);
    s->n++;
    return true;
}

/* ---- the growing list of normal pieces ---------------------------------- */

typedef struct {
    char **s;
    int n, cap;
} piece_list;

static int list_add(piece_list *l, const char *s, size_t len) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->s = xrealloc(l->s, (size_t)l->cap * sizeof *l->s);
    }
    l->s[l->n] = xstrndup(s, len);
    return l->n++;
}

/* ---- words of the corpus, as sequences of piece indices ------------------ */

typedef struct {
    int *sym;
    int n;
    int count;
    char *text; /* normalized word, for de-duplication */
} word;

typedef struct {
    word *w;
    int n, cap;
} word_list;

static int char_class(const char *s) {
    unsigned char c = (unsigned char)*s;
    if (c >= '0' && c <= '9') return 'd';
    if (c == '\n') return 'n';
    if (c < 0x80 && strchr(".,!?;:()\"{}<>/\\=$*+-'[]", c)) return 'p';
    return 'a';
}

static void add_word(word_list *wl, const char *s, size_t len) {
    for (int i = 0; i < wl->n; i++)
        if (strlen(wl->w[i].text) == len && memcmp(wl->w[i].text, s, len) == 0) {
            wl->w[i].count++;
            return;
        }
    if (wl->n == wl->cap) {
        wl->cap = wl->cap ? 2 * wl->cap : 256;
        wl->w = xrealloc(wl->w, (size_t)wl->cap * sizeof *wl->w);
    }
    wl->w[wl->n++] = (word){.count = 1, .text = xstrndup(s, len)};
}

/* Splits the normalized corpus the way SentencePiece's trainer does, in
 * spirit: "▁" starts a word, digits stand alone, punctuation and newline
 * runs are words of their own, whitespace runs are whitespace-only words. */
static void split_words(const char *norm, word_list *wl) {
    size_t i = 0, n = strlen(norm);
    while (i < n) {
        size_t start = i;
        if (strncmp(norm + i, SPACE_MARK, 3) == 0) {
            while (strncmp(norm + i, SPACE_MARK SPACE_MARK, 6) == 0) i += 3;
            if (i > start) { /* a whitespace run before the word */
                add_word(wl, norm + start, i - start);
                start = i;
            }
            i += 3;
            if (i >= n || char_class(norm + i) != 'a') {
                add_word(wl, norm + start, i - start);
                continue;
            }
        }
        int cls = char_class(norm + i);
        if (cls == 'd') {
            i++;
        } else {
            while (i < n && strncmp(norm + i, SPACE_MARK, 3) != 0 && char_class(norm + i) == cls)
                i += (size_t)utf8_lead_len((uint8_t)norm[i]);
        }
        add_word(wl, norm + start, i - start);
    }
}

static int find_piece(const piece_list *l, const char *s, size_t len) {
    for (int i = 0; i < l->n; i++)
        if (strlen(l->s[i]) == len && memcmp(l->s[i], s, len) == 0) return i;
    return -1;
}

/* Every word starts as its characters, each a piece. */
static void words_to_chars(word_list *wl, piece_list *pieces, string_set *taken) {
    for (int i = 0; i < wl->n; i++) {
        word *w = &wl->w[i];
        size_t len = strlen(w->text);
        w->sym = xmalloc(len * sizeof *w->sym);
        for (size_t k = 0; k < len;) {
            size_t c = (size_t)utf8_lead_len((uint8_t)w->text[k]);
            int id = find_piece(pieces, w->text + k, c);
            if (id < 0) {
                id = list_add(pieces, w->text + k, c);
                set_add(taken, pieces->s[id]);
            }
            w->sym[w->n++] = id;
            k += c;
        }
    }
}

/* Counts of adjacent pairs, keyed by (a, b) piece indices. */
typedef struct {
    uint64_t *keys; /* (a << 32 | b) + 1; 0 = empty */
    int *counts;
    uint32_t mask;
} pair_counts;

static int *pair_slot(pair_counts *pc, int a, int b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    uint32_t i = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 40) & pc->mask;
    while (pc->keys[i] && pc->keys[i] != key) i = (i + 1) & pc->mask;
    pc->keys[i] = key;
    return &pc->counts[i];
}

/* One BPE training step: merge the most frequent adjacent pair (ties: the
 * pair of lowest piece indices, so the result is deterministic). */
static bool learn_one_merge(word_list *wl, piece_list *pieces, string_set *taken) {
    int total = 0;
    for (int i = 0; i < wl->n; i++) total += wl->w[i].n;
    uint32_t cap = 64;
    while (cap < (uint32_t)total * 2) cap *= 2;
    pair_counts pc = {xcalloc(cap, sizeof(uint64_t)), xcalloc(cap, sizeof(int)), cap - 1};
    int best_a = -1, best_b = -1, best_count = 1;
    for (int i = 0; i < wl->n; i++) {
        const word *w = &wl->w[i];
        for (int k = 0; k + 1 < w->n; k++) {
            int a = w->sym[k], b = w->sym[k + 1];
            if (strlen(pieces->s[a]) + strlen(pieces->s[b]) > MAX_PIECE_BYTES) continue;
            if (char_class(pieces->s[a]) == 'd' || char_class(pieces->s[b]) == 'd') continue;
            int *count = pair_slot(&pc, a, b);
            *count += w->count;
            if (*count > best_count || (*count == best_count && best_a >= 0 &&
                                        (a < best_a || (a == best_a && b < best_b)))) {
                best_a = a;
                best_b = b;
                best_count = *count;
            }
        }
    }
    free(pc.keys);
    free(pc.counts);
    if (best_a < 0) return false;
    char merged[2 * MAX_PIECE_BYTES + 1];
    snprintf(merged, sizeof merged, "%s%s", pieces->s[best_a], pieces->s[best_b]);
    if (!set_add(taken, merged)) return false;
    int id = list_add(pieces, merged, strlen(merged));
    for (int i = 0; i < wl->n; i++) {
        word *w = &wl->w[i];
        int out = 0;
        for (int k = 0; k < w->n; k++) {
            if (k + 1 < w->n && w->sym[k] == best_a && w->sym[k + 1] == best_b) {
                w->sym[out++] = id;
                k++;
            } else {
                w->sym[out++] = w->sym[k];
            }
        }
        w->n = out;
    }
    return true;
}

/* Further merges of existing pieces (a word piece + a continuation piece),
 * in a fixed order, until `want` pieces exist; later rounds also combine
 * the pieces earlier rounds made. */
static void add_synthetic_merges(piece_list *pieces, string_set *taken, int want) {
    while (pieces->n < want) {
        int base = pieces->n, before = pieces->n;
        for (long sum = 0; pieces->n < want && sum < 2L * base; sum++) {
            for (long i = sum - base + 1 > 0 ? sum - base + 1 : 0; i <= sum && i < base && pieces->n < want; i++) {
                long j = sum - i;
                const char *a = pieces->s[i], *b = pieces->s[j];
                if (strncmp(b, SPACE_MARK, 3) == 0 || char_class(a) != 'a' || char_class(b) != 'a') continue;
                if (strchr(a, '\n') || strchr(b, '\n') || strpbrk(a, "0123456789") || strpbrk(b, "0123456789")) continue;
                if (strlen(a) + strlen(b) > MAX_PIECE_BYTES) continue;
                char merged[2 * MAX_PIECE_BYTES + 1];
                snprintf(merged, sizeof merged, "%s%s", a, b);
                if (set_add(taken, merged)) list_add(pieces, merged, strlen(merged));
            }
        }
        if (pieces->n == before) return; /* nothing more can be made */
    }
}

/* ---- serialization ------------------------------------------------------ */

static Sentencepiece__ModelProto__SentencePiece *new_piece(const char *text, float score, int type) {
    Sentencepiece__ModelProto__SentencePiece *p = xmalloc(sizeof *p);
    sentencepiece__model_proto__sentence_piece__init(p);
    p->has_piece = 1;
    p->piece.data = (uint8_t *)xstrdup(text);
    p->piece.len = strlen(text);
    p->has_score = 1;
    p->score = score;
    if (type != 1) {
        p->has_type = 1;
        p->type = type;
    }
    return p;
}

static void reserved_piece_name(int id, char *out, size_t n) {
    static const char *fixed[] = {"<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<2mass>", "[@BOS@]"};
    if (id < 7) snprintf(out, n, "%s", fixed[id]);
    else if (id < 106) snprintf(out, n, "<unused%d>", id - 7);
    else snprintf(out, n, "%s", id == 106 ? "<start_of_turn>" : "<end_of_turn>");
}

static uint8_t *pack_model(const piece_list *normal, int vocab_size, size_t *out_len) {
    Sentencepiece__ModelProto mp;
    sentencepiece__model_proto__init(&mp);
    mp.n_pieces = (size_t)vocab_size;
    mp.pieces = xcalloc(mp.n_pieces, sizeof *mp.pieces);
    int k = 0;
    for (int id = 0; id < N_RESERVED; id++) {
        char name[32];
        reserved_piece_name(id, name, sizeof name);
        int type = id == 3 ? 2 : (id >= 106 ? 4 : 3); /* UNKNOWN, USER_DEFINED, CONTROL */
        mp.pieces[k++] = new_piece(name, 0.0f, type);
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        mp.pieces[k++] = new_piece(name, 0.0f, 6);
    }
    for (int i = 0; i < normal->n && k < vocab_size; i++) mp.pieces[k++] = new_piece(normal->s[i], (float)-i, 1);

    Sentencepiece__TrainerSpec ts;
    sentencepiece__trainer_spec__init(&ts);
    ts.has_model_type = 1, ts.model_type = 2; /* BPE */
    ts.has_vocab_size = 1, ts.vocab_size = vocab_size;
    ts.has_byte_fallback = 1, ts.byte_fallback = 1;
    ts.has_split_digits = 1, ts.split_digits = 1;
    ts.has_allow_whitespace_only_pieces = 1, ts.allow_whitespace_only_pieces = 1;
    ts.has_unk_id = 1, ts.unk_id = 3;
    ts.has_bos_id = 1, ts.bos_id = 2;
    ts.has_eos_id = 1, ts.eos_id = 1;
    ts.has_pad_id = 1, ts.pad_id = 0;
    ts.unk_piece = "<unk>", ts.bos_piece = "<bos>", ts.eos_piece = "<eos>", ts.pad_piece = "<pad>";
    Sentencepiece__NormalizerSpec ns;
    sentencepiece__normalizer_spec__init(&ns);
    ns.name = "identity";
    ns.has_add_dummy_prefix = 1, ns.add_dummy_prefix = 0;
    ns.has_remove_extra_whitespaces = 1, ns.remove_extra_whitespaces = 0;
    ns.has_escape_whitespaces = 1, ns.escape_whitespaces = 1;
    mp.trainer_spec = &ts;
    mp.normalizer_spec = &ns;

    *out_len = sentencepiece__model_proto__get_packed_size(&mp);
    uint8_t *buf = xmalloc(*out_len);
    sentencepiece__model_proto__pack(&mp, buf);
    for (size_t i = 0; i < mp.n_pieces; i++) {
        free(mp.pieces[i]->piece.data);
        free(mp.pieces[i]);
    }
    free(mp.pieces);
    return buf;
}

bool vocab_build_gemma_like(int vocab_size, uint8_t **out, size_t *out_len, errbuf *err) {
    /* normalize the corpus: ' ' -> ▁ */
    size_t n = strlen(VOCAB_CORPUS);
    char *norm = xmalloc(3 * n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (VOCAB_CORPUS[i] == ' ') {
            memcpy(norm + k, SPACE_MARK, 3);
            k += 3;
        } else {
            norm[k++] = VOCAB_CORPUS[i];
        }
    }
    norm[k] = '\0';

    word_list words = {0};
    piece_list pieces = {0};
    string_set taken;
    set_init(&taken, vocab_size);
    split_words(norm, &words);
    words_to_chars(&words, &pieces, &taken);

    int budget = vocab_size - N_RESERVED - 256; /* normal pieces */
    bool ok = budget >= pieces.n;
    if (!ok) {
        errbuf_set(err, "vocab_size %d is too small for a Gemma-like tokenizer (needs at least %d)", vocab_size,
                   N_RESERVED + 256 + pieces.n);
    } else {
        int n_chars = pieces.n;
        while (pieces.n < budget && learn_one_merge(&words, &pieces, &taken)) {}
        /* Order by score: learned merges first (most frequent best), then chars. */
        piece_list ordered = {0};
        for (int i = n_chars; i < pieces.n; i++) list_add(&ordered, pieces.s[i], strlen(pieces.s[i]));
        for (int i = 0; i < n_chars; i++) list_add(&ordered, pieces.s[i], strlen(pieces.s[i]));
        add_synthetic_merges(&ordered, &taken, budget);
        if (ordered.n < budget) {
            ok = errbuf_set(err, "could not make %d distinct pieces", budget);
        } else {
            *out = pack_model(&ordered, vocab_size, out_len);
        }
        for (int i = 0; i < ordered.n; i++) free(ordered.s[i]);
        free(ordered.s);
    }
    for (int i = 0; i < pieces.n; i++) free(pieces.s[i]);
    free(pieces.s);
    for (int i = 0; i < words.n; i++) {
        free(words.w[i].sym);
        free(words.w[i].text);
    }
    free(words.w);
    set_free(&taken);
    free(norm);
    return ok;
}
