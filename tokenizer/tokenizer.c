/* tokenizer.c — building a tokenizer (from tokenizer.model or from arrays,
 * both through build_vocab) and SentencePiece BPE encoding. The algorithm
 * is described in tokenizer.h; decoding is in decode.c. */
#include "tokenizer/tokenizer_impl.h"
#include "common/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mapped_file.h"
#include "common/utf8.h"
#include "sentencepiece/sentencepiece_model.pb-c.h"

#define SPACE_MARK "\xE2\x96\x81" /* U+2581, SentencePiece's visible space */

/* ---- token lists -------------------------------------------------------- */

void token_list_init(token_list *l) { memset(l, 0, sizeof *l); }

void token_list_free(token_list *l) {
    free(l->ids);
    memset(l, 0, sizeof *l);
}

void token_list_push(token_list *l, int32_t id) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->ids = xrealloc(l->ids, (size_t)l->cap * sizeof *l->ids);
    }
    l->ids[l->n++] = id;
}

/* ---- string -> id hash maps (open addressing over the piece table) ------ */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void piece_map_init(piece_map *m, int expected) {
    uint32_t cap = 16;
    while (cap < (uint32_t)expected * 2 + 16) cap *= 2;
    m->slots = xmalloc(cap * sizeof *m->slots);
    for (uint32_t i = 0; i < cap; i++) m->slots[i] = -1;
    m->mask = cap - 1;
}

static int piece_map_find(const tokenizer *tok, const piece_map *m, const char *s, size_t n) {
    uint32_t i = (uint32_t)hash_bytes(s, n) & m->mask;
    for (;;) {
        int32_t id = m->slots[i];
        if (id < 0) return -1;
        const piece_rec *p = &tok->pieces[id];
        if (p->len == n && memcmp(p->text, s, n) == 0) return id;
        i = (i + 1) & m->mask;
    }
}

/* False if the string is already present. */
static bool piece_map_insert(tokenizer *tok, piece_map *m, int32_t id) {
    const piece_rec *p = &tok->pieces[id];
    if (piece_map_find(tok, m, p->text, p->len) >= 0) return false;
    uint32_t i = (uint32_t)hash_bytes(p->text, p->len) & m->mask;
    while (m->slots[i] >= 0) i = (i + 1) & m->mask;
    m->slots[i] = id;
    return true;
}

/* ---- trie of user-defined pieces (longest prefix match) ----------------- */

static int trie_new_node(tokenizer *tok, uint8_t byte) {
    if (tok->n_trie == tok->cap_trie) {
        tok->cap_trie = tok->cap_trie ? 2 * tok->cap_trie : 64;
        tok->trie = xrealloc(tok->trie, (size_t)tok->cap_trie * sizeof *tok->trie);
    }
    trie_node *n = &tok->trie[tok->n_trie];
    n->first_child = n->next_sibling = -1;
    n->byte = byte;
    n->terminal = false;
    return tok->n_trie++;
}

static void trie_insert(tokenizer *tok, const char *s, size_t len) {
    if (tok->n_trie == 0) trie_new_node(tok, 0);
    int node = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)s[i];
        int c = tok->trie[node].first_child;
        while (c >= 0 && tok->trie[c].byte != b) c = tok->trie[c].next_sibling;
        if (c < 0) {
            c = trie_new_node(tok, b);
            tok->trie[c].next_sibling = tok->trie[node].first_child;
            tok->trie[node].first_child = c;
        }
        node = c;
    }
    tok->trie[node].terminal = true;
}

/* Length of the longest user-defined piece that prefixes s, or 0. */
static size_t user_defined_match(const tokenizer *tok, const uint8_t *s, size_t len) {
    if (tok->n_trie == 0) return 0;
    size_t best = 0;
    int node = 0;
    for (size_t i = 0; i < len; i++) {
        int c = tok->trie[node].first_child;
        while (c >= 0 && tok->trie[c].byte != s[i]) c = tok->trie[c].next_sibling;
        if (c < 0) break;
        node = c;
        if (tok->trie[node].terminal) best = i + 1;
    }
    return best;
}

/* ---- building ----------------------------------------------------------- */

#define MAX_PIECES (1 << 24)
#define MAX_PIECE_BYTES (1u << 16)
#define DEFAULT_UNK_SURFACE " \xE2\x81\x87 " /* " ⁇ ", SentencePiece's default */

static bool parse_byte_piece(const char *s, size_t len, int *byte) {
    static const char hex[] = "0123456789ABCDEF";
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return false;
    const char *h = strchr(hex, s[3]), *l = strchr(hex, s[4]);
    if (!h || !l || !s[3] || !s[4]) return false;
    *byte = (int)((h - hex) * 16 + (l - hex));
    return true;
}

/* Copies every piece's bytes into tok->text and points the records there. */
static bool copy_pieces(tokenizer *tok, const tokenizer_vocab *v, errbuf *err) {
    size_t total = 0;
    for (int i = 0; i < v->n; i++) {
        if (v->piece_lens[i] == 0) return errbuf_set(err, "piece %d is empty", i);
        if (v->piece_lens[i] > MAX_PIECE_BYTES) return errbuf_set(err, "piece %d is over %u bytes", i, MAX_PIECE_BYTES);
        total += v->piece_lens[i]; /* at most 2^24 pieces of 2^16 bytes: no overflow */
    }
    tok->text = xmalloc(total + 1);
    tok->n = v->n;
    tok->pieces = xcalloc((size_t)tok->n, sizeof *tok->pieces);
    char *at = tok->text;
    for (int i = 0; i < v->n; i++) {
        piece_rec *p = &tok->pieces[i];
        memcpy(at, v->pieces[i], v->piece_lens[i]);
        p->text = at;
        p->len = (uint32_t)v->piece_lens[i];
        p->score = v->scores[i];
        if (v->types[i] < PIECE_NORMAL || v->types[i] > PIECE_BYTE)
            return errbuf_set(err, "piece %d has unknown type %d", i, (int)v->types[i]);
        p->type = (uint8_t)v->types[i];
        at += p->len;
    }
    return true;
}

/* Files piece i in its map and, by type, the trie, the unknown id or the
 * byte table. */
static bool index_piece(tokenizer *tok, int i, errbuf *err) {
    const piece_rec *p = &tok->pieces[i];
    bool normal = p->type == PIECE_NORMAL || p->type == PIECE_USER_DEFINED || p->type == PIECE_UNUSED;
    if (!piece_map_insert(tok, normal ? &tok->normal : &tok->reserved, i))
        return errbuf_set(err, "piece %d \"%.*s\" is defined twice", i, (int)(p->len > 40 ? 40 : p->len), p->text);
    if (p->type == PIECE_USER_DEFINED) trie_insert(tok, p->text, p->len);
    if (p->type == PIECE_UNKNOWN) {
        if (tok->unk_id >= 0) return errbuf_set(err, "more than one unknown piece (%d and %d)", tok->unk_id, i);
        tok->unk_id = i;
    }
    if (p->type == PIECE_BYTE) {
        int b;
        if (!tok->byte_fallback) return errbuf_set(err, "byte piece %d present although byte_fallback is off", i);
        if (!parse_byte_piece(p->text, p->len, &b))
            return errbuf_set(err, "byte piece %d is not of the form <0xHH>", i);
        tok->byte_id[b] = i;
    }
    return true;
}

/* The one builder, whatever the source: tok's options (byte_fallback,
 * add_dummy_prefix, escape_whitespaces, unk_surface) are set; this copies
 * and indexes the pieces and takes the special ids (already in range or
 * -1) from v. */
static bool build_vocab(tokenizer *tok, const tokenizer_vocab *v, errbuf *err) {
    if (v->n <= 0 || v->n > MAX_PIECES) return errbuf_set(err, "the vocabulary has %d pieces", v->n);
    if (!copy_pieces(tok, v, err)) return false;
    piece_map_init(&tok->normal, tok->n);
    piece_map_init(&tok->reserved, tok->n);
    tok->unk_id = -1;
    for (int b = 0; b < 256; b++) tok->byte_id[b] = -1;
    for (int i = 0; i < tok->n; i++)
        if (!index_piece(tok, i, err)) return false;
    if (tok->unk_id < 0) return errbuf_set(err, "no unknown piece is defined");
    if (tok->byte_fallback)
        for (int b = 0; b < 256; b++)
            if (tok->byte_id[b] < 0) return errbuf_set(err, "byte_fallback is on but piece <0x%02X> is missing", b);
    tok->bos_id = v->bos_id;
    tok->eos_id = v->eos_id;
    tok->pad_id = v->pad_id;
    return true;
}

/* ---- from a tokenizer.model ---------------------------------------------- */

static bool check_specs(tokenizer *tok, const Sentencepiece__ModelProto *mp, errbuf *err) {
    const Sentencepiece__TrainerSpec *ts = mp->trainer_spec;
    int model_type = ts && ts->has_model_type ? ts->model_type : 1;
    if (model_type != 2) {
        static const char *names[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};
        return errbuf_set(err, "model_type %s is not supported (facet implements BPE, as Gemma uses)",
                          model_type >= 1 && model_type <= 4 ? names[model_type] : "unknown");
    }
    tok->byte_fallback = ts->has_byte_fallback && ts->byte_fallback;
    if (ts->has_treat_whitespace_as_suffix && ts->treat_whitespace_as_suffix)
        return errbuf_set(err, "treat_whitespace_as_suffix is not supported");
    const Sentencepiece__NormalizerSpec *ns = mp->normalizer_spec;
    tok->add_dummy_prefix = true; /* proto defaults */
    tok->escape_whitespaces = true;
    bool remove_extra = true;
    if (ns) {
        if (ns->has_precompiled_charsmap && ns->precompiled_charsmap.len > 0)
            return errbuf_set(err, "normalizer \"%.40s\" is not supported (Gemma uses identity)",
                              ns->name ? ns->name : "");
        if (ns->has_add_dummy_prefix) tok->add_dummy_prefix = ns->add_dummy_prefix;
        if (ns->has_escape_whitespaces) tok->escape_whitespaces = ns->escape_whitespaces;
        if (ns->has_remove_extra_whitespaces) remove_extra = ns->remove_extra_whitespaces;
    }
    if (remove_extra) return errbuf_set(err, "normalizer option remove_extra_whitespaces is not supported (Gemma keeps whitespace)");
    if (mp->denormalizer_spec && mp->denormalizer_spec->has_precompiled_charsmap &&
        mp->denormalizer_spec->precompiled_charsmap.len > 0)
        return errbuf_set(err, "a denormalizer is not supported");
    return true;
}

/* A special id from trainer_spec, if it names a piece (else -1, as spm). */
static int special_id(int n, bool has, int32_t id, int def) {
    int v = has ? id : def;
    return v >= 0 && v < n ? v : -1;
}

/* The proto's pieces as arrays pointing into it. */
typedef struct {
    tokenizer_vocab v;
    const char **pieces;
    size_t *lens;
    float *scores;
    int32_t *types;
} proto_vocab;

static void proto_vocab_make(proto_vocab *pv, const Sentencepiece__ModelProto *mp) {
    int n = (int)mp->n_pieces;
    const Sentencepiece__TrainerSpec *ts = mp->trainer_spec;
    pv->pieces = xcalloc((size_t)n, sizeof *pv->pieces);
    pv->lens = xcalloc((size_t)n, sizeof *pv->lens);
    pv->scores = xcalloc((size_t)n, sizeof *pv->scores);
    pv->types = xcalloc((size_t)n, sizeof *pv->types);
    for (int i = 0; i < n; i++) {
        const Sentencepiece__ModelProto__SentencePiece *sp = mp->pieces[i];
        pv->pieces[i] = (const char *)sp->piece.data;
        pv->lens[i] = sp->has_piece ? sp->piece.len : 0;
        pv->scores[i] = sp->score;
        pv->types[i] = sp->has_type ? sp->type : PIECE_NORMAL;
    }
    pv->v = (tokenizer_vocab){
        .n = n, .pieces = pv->pieces, .piece_lens = pv->lens, .scores = pv->scores, .types = pv->types,
        .bos_id = special_id(n, ts->has_bos_id, ts->bos_id, 1),
        .eos_id = special_id(n, ts->has_eos_id, ts->eos_id, 2),
        .pad_id = special_id(n, ts->has_pad_id, ts->pad_id, -1),
        .unk_id = -1, /* the UNKNOWN piece, wherever it is */
    };
}

static void proto_vocab_free(proto_vocab *pv) {
    free(pv->pieces);
    free(pv->lens);
    free(pv->scores);
    free(pv->types);
}

tokenizer *tokenizer_parse(const uint8_t *data, size_t len, errbuf *err) {
    Sentencepiece__ModelProto *mp = sentencepiece__model_proto__unpack(NULL, len, data);
    if (!mp) {
        errbuf_set(err, "not a SentencePiece model (protobuf parse failed)");
        return NULL;
    }
    tokenizer *tok = xcalloc(1, sizeof *tok);
    proto_vocab pv = {0};
    bool ok = false;
    if (mp->n_pieces == 0 || mp->n_pieces > MAX_PIECES) {
        errbuf_set(err, "the model has %zu pieces", mp->n_pieces);
        goto out;
    }
    if (!check_specs(tok, mp, err)) goto out;
    proto_vocab_make(&pv, mp);
    ok = build_vocab(tok, &pv.v, err);
    tok->unk_surface = xstrdup(mp->trainer_spec->unk_surface ? mp->trainer_spec->unk_surface : DEFAULT_UNK_SURFACE);
out:
    proto_vocab_free(&pv);
    sentencepiece__model_proto__free_unpacked(mp, NULL); /* the tokenizer copied what it keeps */
    if (!ok) {
        tokenizer_free(tok);
        return NULL;
    }
    return tok;
}

tokenizer *tokenizer_load(const char *path, errbuf *err) {
    mapped_file mf;
    if (!mapped_file_open(&mf, path, err)) return NULL;
    tokenizer *tok = tokenizer_parse(mf.data, mf.size, err);
    mapped_file_close(&mf);
    if (!tok) errbuf_prefix(err, "%s", path);
    return tok;
}

/* ---- from arrays ---------------------------------------------------------- */

static bool check_special_id(const char *what, int id, int n, errbuf *err) {
    if (id >= -1 && id < n) return true;
    return errbuf_set(err, "%s %d is out of range for %d pieces", what, id, n);
}

tokenizer *tokenizer_from_vocab(const tokenizer_vocab *v, errbuf *err) {
    if (v->n <= 0 || v->n > MAX_PIECES) {
        errbuf_set(err, "the vocabulary has %d pieces (1 to %d allowed)", v->n, MAX_PIECES);
        return NULL;
    }
    if (!v->pieces || !v->piece_lens || !v->scores || !v->types) {
        errbuf_set(err, "the vocabulary lacks its pieces, lengths, scores or types");
        return NULL;
    }
    if (!check_special_id("bos_id", v->bos_id, v->n, err) || !check_special_id("eos_id", v->eos_id, v->n, err) ||
        !check_special_id("unk_id", v->unk_id, v->n, err) || !check_special_id("pad_id", v->pad_id, v->n, err))
        return NULL;
    tokenizer *tok = xcalloc(1, sizeof *tok);
    /* what a tokenizer.model of Gemma's says: identity normalization with
     * spaces escaped; byte fallback exactly when there are byte pieces */
    for (int i = 0; i < v->n; i++) tok->byte_fallback |= v->types[i] == PIECE_BYTE;
    tok->add_dummy_prefix = v->add_dummy_prefix;
    tok->escape_whitespaces = true;
    tok->user_defined_raw = v->user_defined_raw;
    tok->unk_surface = xstrdup(DEFAULT_UNK_SURFACE);
    if (!build_vocab(tok, v, err)) goto fail;
    if (v->unk_id >= 0 && v->unk_id != tok->unk_id) {
        errbuf_set(err, "unk_id %d is not the unknown piece (piece %d is)", v->unk_id, tok->unk_id);
        goto fail;
    }
    return tok;
fail:
    tokenizer_free(tok);
    return NULL;
}

tokenizer *tokenizer_from_pieces(int n, const char *const *pieces, const size_t *piece_lens, const float *scores,
                                 const int32_t *types, int bos_id, int eos_id, int unk_id, int pad_id, errbuf *err) {
    tokenizer_vocab v = {
        .n = n, .pieces = pieces, .piece_lens = piece_lens, .scores = scores, .types = types,
        .bos_id = bos_id, .eos_id = eos_id, .unk_id = unk_id, .pad_id = pad_id, .add_dummy_prefix = false,
    };
    return tokenizer_from_vocab(&v, err);
}

void tokenizer_free(tokenizer *tok) {
    if (!tok) return;
    free(tok->text);
    free(tok->pieces);
    free(tok->normal.slots);
    free(tok->reserved.slots);
    free(tok->trie);
    free(tok->unk_surface);
    free(tok);
}

int tokenizer_vocab_size(const tokenizer *tok) { return tok->n; }
int tokenizer_bos_id(const tokenizer *tok) { return tok->bos_id; }
int tokenizer_eos_id(const tokenizer *tok) { return tok->eos_id; }

int tokenizer_piece_id(const tokenizer *tok, const char *piece) {
    size_t n = strlen(piece);
    int id = piece_map_find(tok, &tok->reserved, piece, n);
    return id >= 0 ? id : piece_map_find(tok, &tok->normal, piece, n);
}

const char *tokenizer_piece(const tokenizer *tok, int id, size_t *len) {
    if (id < 0 || id >= tok->n) return NULL;
    if (len) *len = tok->pieces[id].len;
    return tok->pieces[id].text;
}

piece_type tokenizer_piece_type(const tokenizer *tok, int id) {
    return id >= 0 && id < tok->n ? (piece_type)tok->pieces[id].type : 0;
}

/* ---- encoding ----------------------------------------------------------- */

/* Step 1: invalid bytes -> U+FFFD, ' ' -> ▁, user-defined pieces kept as is
 * (their spaces escaped too, as SentencePiece does, unless user_defined_raw). */
static void normalize(const tokenizer *tok, const uint8_t *s, size_t len, unsigned flags, strbuf *out) {
    if (tok->add_dummy_prefix && len > 0) strbuf_append_str(out, SPACE_MARK);
    size_t i = 0;
    while (i < len) {
        size_t n = (flags & ENCODE_PLAIN_TEXT) ? 0 : user_defined_match(tok, s + i, len - i);
        bool keep_spaces = n > 0 && tok->user_defined_raw; /* a user-defined piece matched in the raw text */
        const uint8_t *chunk = s + i;
        if (n == 0) {
            int c = utf8_valid_char_len(s + i, len - i);
            if (c == 0) {
                strbuf_append_str(out, UTF8_REPLACEMENT);
                i += 1;
                continue;
            }
            n = (size_t)c;
        }
        for (size_t k = 0; k < n; k++) {
            if (chunk[k] == ' ' && tok->escape_whitespaces && !keep_spaces)
                strbuf_append_str(out, SPACE_MARK);
            else
                strbuf_append_char(out, (char)chunk[k]);
        }
        i += n;
    }
}

typedef struct {
    uint32_t start, len; /* bytes of the normalized text; len 0 = merged away */
    int32_t prev, next;
    bool frozen;         /* a user-defined piece: never merged */
} symbol;

typedef struct {
    int32_t left, right;
    float score;
    uint32_t size; /* merged length when queued: detects stale entries */
} merge_candidate;

typedef struct {
    merge_candidate *v;
    int n, cap;
} merge_heap;

/* Best first: higher score, then smaller left index. */
static bool candidate_before(const merge_candidate *a, const merge_candidate *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(merge_heap *h, merge_candidate c) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->v = xrealloc(h->v, (size_t)h->cap * sizeof *h->v);
    }
    int i = h->n++;
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (!candidate_before(&c, &h->v[parent])) break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = c;
}

static merge_candidate heap_pop(merge_heap *h) {
    merge_candidate top = h->v[0], last = h->v[--h->n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && candidate_before(&h->v[c + 1], &h->v[c])) c++;
        if (!candidate_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0) h->v[i] = last;
    return top;
}

typedef struct {
    const tokenizer *tok;
    const char *text; /* normalized */
    symbol *sym;
    merge_heap heap;
    unsigned flags;
    /* UNUSED pieces are merged like others, then split back (resegment):
     * remember how each was formed. Keyed by piece id; last write wins, as
     * in SentencePiece. */
    int32_t *unused_left_len; /* (n_pieces) or NULL until needed */
} bpe_state;

static void maybe_queue_merge(bpe_state *st, int32_t left, int32_t right) {
    if (left < 0 || right < 0 || st->sym[left].frozen || st->sym[right].frozen) return;
    uint32_t start = st->sym[left].start, len = st->sym[left].len + st->sym[right].len;
    int id = piece_map_find(st->tok, &st->tok->normal, st->text + start, len);
    if (id < 0) return;
    const piece_rec *p = &st->tok->pieces[id];
    if ((st->flags & ENCODE_PLAIN_TEXT) && p->type == PIECE_USER_DEFINED) return;
    heap_push(&st->heap, (merge_candidate){left, right, p->score, len});
    if (p->type == PIECE_UNUSED) {
        if (!st->unused_left_len) {
            st->unused_left_len = xmalloc((size_t)st->tok->n * sizeof *st->unused_left_len);
            for (int i = 0; i < st->tok->n; i++) st->unused_left_len[i] = -1;
        }
        st->unused_left_len[id] = (int32_t)st->sym[left].len;
    }
}

static void emit_bytes(const tokenizer *tok, const char *s, uint32_t len, token_list *out) {
    for (uint32_t i = 0; i < len; i++) token_list_push(out, tok->byte_id[(uint8_t)s[i]]);
}

/* Step 4 for one final symbol: its id, split back if UNUSED, bytes if unknown. */
static bool emit_symbol(bpe_state *st, const char *s, uint32_t len, token_list *out, errbuf *err) {
    const tokenizer *tok = st->tok;
    int id = piece_map_find(tok, &tok->reserved, s, len);
    if (id < 0) id = piece_map_find(tok, &tok->normal, s, len);
    if (id >= 0 && tok->pieces[id].type == PIECE_UNUSED && st->unused_left_len &&
        st->unused_left_len[id] > 0) {
        uint32_t l = (uint32_t)st->unused_left_len[id];
        return emit_symbol(st, s, l, out, err) && emit_symbol(st, s + l, len - l, out, err);
    }
    if (id >= 0 && tok->pieces[id].type == PIECE_CONTROL)
        return errbuf_set(err, "the text contains \"%.*s\", which is a control piece", (int)len, s);
    if (id < 0 || id == tok->unk_id) {
        if (tok->byte_fallback)
            emit_bytes(tok, s, len, out);
        else
            token_list_push(out, tok->unk_id);
        return true;
    }
    token_list_push(out, id);
    return true;
}

/* Steps 2-4 over normalized text. */
static bool bpe_encode(const tokenizer *tok, const char *text, size_t len, unsigned flags,
                       token_list *out, errbuf *err) {
    bpe_state st = {.tok = tok, .text = text, .flags = flags};
    st.sym = xmalloc((len + 1) * sizeof *st.sym);
    int32_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t m = (flags & ENCODE_PLAIN_TEXT) ? 0 : user_defined_match(tok, (const uint8_t *)text + i, len - i);
        bool frozen = m > 0;
        if (!frozen) {
            m = (size_t)utf8_lead_len((uint8_t)text[i]);
            if (m > len - i) m = len - i;
        }
        st.sym[n] = (symbol){(uint32_t)i, (uint32_t)m, n - 1, -1, frozen};
        if (n > 0) st.sym[n - 1].next = n;
        n++;
        i += m;
    }
    for (int32_t i = 1; i < n; i++) maybe_queue_merge(&st, i - 1, i);

    while (st.heap.n > 0) {
        merge_candidate top = heap_pop(&st.heap);
        symbol *l = &st.sym[top.left], *r = &st.sym[top.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != top.size) continue; /* stale */
        l->len += r->len;
        l->next = r->next;
        if (r->next >= 0) st.sym[r->next].prev = top.left;
        r->len = 0;
        maybe_queue_merge(&st, l->prev, top.left);
        maybe_queue_merge(&st, top.left, l->next);
    }

    bool ok = true;
    for (int32_t i = n > 0 ? 0 : -1; ok && i >= 0; i = st.sym[i].next)
        ok = emit_symbol(&st, text + st.sym[i].start, st.sym[i].len, out, err);
    free(st.sym);
    free(st.heap.v);
    free(st.unused_left_len);
    return ok;
}

bool tokenizer_encode(const tokenizer *tok, const char *text, size_t len, unsigned flags,
                      token_list *out, errbuf *err) {
    strbuf norm;
    strbuf_init(&norm);
    normalize(tok, (const uint8_t *)text, len, flags, &norm);
    bool ok = bpe_encode(tok, norm.data ? norm.data : "", norm.len, flags, out, err);
    strbuf_free(&norm);
    return ok;
}
