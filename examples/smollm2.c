/* smollm2.c: SmolLM2-135M (Llama) in plain C99 on one CPU core, to measure KV-cache codecs on real keys and values: GGUF reader, BPE tokenizer, forward pass over a pluggable KV cache, perplexity / KL / top-1 of a test cache against the fp32 one, KV dump. */
/* build: cc -O2 -std=c99 -Wall -Wextra -pedantic -I. examples/smollm2.c -lm -o smollm2 */
/* run:   ./smollm2 --model models/SmolLM2-135M-Instruct.Q4_1.gguf --eval data/eval.txt --ctx 1024 --tokens 4096 --compare fp16 */
/*
 * Fetch the model first: scripts/fetch_model.sh (SmolLM2-135M-Instruct, GGUF, Q4_1).
 * Modes (one per run; --model PATH defaults to models/SmolLM2-135M-Instruct.Q4_1.gguf):
 *   --info                          metadata keys and tensor list of the GGUF file
 *   --prompt TEXT [--n N] [--chat]  greedy generation of N tokens (--chat wraps TEXT in the chat template)
 *   --eval FILE [--ctx C] [--tokens N] [--compare NAME[,NAME...]] [--batch B] [--calib FILE] [--calib-skip N]
 *                                   perplexity of the first N tokens of FILE over windows of C tokens;
 *                                   with --compare, each listed "test" cache runs side by side with the
 *                                   fp32 one (computed once) and the run reports, per test cache, its
 *                                   perplexity, mean KL(ref||test), top-1 agreement, and per layer the
 *                                   relative MSE of keys and values and how its attention compares with
 *                                   attention over the exact keys and values (output cosine, top-1/top-5 key)
 *                                   NAME: identity, fp16, q8, q4; a TurboQuant cache from kvtc_cfgs[]: tq8/4,
 *                                   tq4/4, tq4/4-nocorr, tq4/2, tq4/aff4, tq3/3, tq3/3-edge, tq2/2, prod4/4,
 *                                   prod3/3; a KVTC cache: kvtc-head-kKBvVB, kvtc-layer-kKBvVB (see
 *                                   kvtc_tc_rt), kvtc8x, kvtc16x. Any NAME takes suffixes -sinkS (first S
 *                                   positions of each window exact), -winW (the W positions nearest each
 *                                   query exact); a KVTC one -calN (N calibration tokens of --calib FILE,
 *                                   default data/calib.txt, from token --calib-skip on; default 2048)
 *   --tokens-of TEXT | --tokens-of-file FILE   token ids, one line, space-separated
 *   --logits TEXT FILE              last-position logits of TEXT, n_vocab float32 little-endian, to FILE
 *   --dump-kv FILE --text TXT [--dump-tokens N] [--dump-layers 0,1,15,29] [--dump-f32]
 *                                   post-RoPE keys and values of the first N tokens (data/README.md has the format)
 *
 * Numerics: weights are dequantized to fp32 once at load; all arithmetic is fp32 (log-softmax in double).
 * The KV cache seam (>>kvcache) is where a compressed cache plugs in: see kv_roundtrip_fn.
 * Sections: >>util >>gguf >>dequant >>model >>tokenizer >>kvcache >>forward >>modes >>main
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define KVTC_IMPLEMENTATION
#include "kvtc.h"

/* ------------------------------------------------------------------ >>util */

static void fail(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "smollm2: error: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* n * size bytes, overflow-checked; never returns NULL */
static void *xmalloc(size_t n, size_t size) {
    void *p;
    if (size != 0 && n > SIZE_MAX / size) fail("allocation of %zu x %zu bytes overflows", n, size);
    p = malloc(n * size != 0 ? n * size : 1);
    if (!p) fail("out of memory (%.1f MB)", (double)n * (double)size / 1e6);
    return p;
}

static void *xcalloc(size_t n, size_t size) {
    void *p;
    if (size != 0 && n > SIZE_MAX / size) fail("allocation of %zu x %zu bytes overflows", n, size);
    p = calloc(n ? n : 1, size ? size : 1);
    if (!p) fail("out of memory (%.1f MB)", (double)n * (double)size / 1e6);
    return p;
}

static double now_s(void) { return (double)clock() / CLOCKS_PER_SEC; }

/* whole file into memory (NUL-terminated for convenience); max_bytes caps what we accept */
static uint8_t *read_file(const char *path, size_t max_bytes, size_t *size_out) {
    FILE *f = fopen(path, "rb");
    long end = 0;
    uint8_t *buf;
    size_t size;
    if (!f) fail("cannot open %s: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0 || (end = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        fail("cannot determine the size of %s", path);
    if ((unsigned long)end > max_bytes) fail("%s is too large (%ld bytes, limit %zu)", path, end, max_bytes);
    size = (size_t)end;
    buf = (uint8_t *)xmalloc(size + 1, 1);
    if (size && fread(buf, 1, size, f) != size) fail("cannot read %s", path);
    fclose(f);
    buf[size] = 0;
    *size_out = size;
    return buf;
}

static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu, bits;
    float f;
    if (e == 0) {
        f = ldexpf((float)m, -24);
        return sign ? -f : f;
    }
    bits = e == 31 ? (sign | 0x7F800000u | (m << 13)) : (sign | ((e + 112u) << 23) | (m << 13));
    memcpy(&f, &bits, 4);
    return f;
}

/* round to nearest even; overflow to inf */
static uint16_t f32_to_f16(float f) {
    uint32_t x, sign, e, m, hm, rem;
    int32_t E;
    memcpy(&x, &f, 4);
    sign = (x >> 16) & 0x8000u;
    e = (x >> 23) & 0xFFu;
    m = x & 0x7FFFFFu;
    if (e == 0xFF) return (uint16_t)(sign | 0x7C00u | (m ? 0x200u : 0u));
    E = (int32_t)e - 112;
    if (E >= 31) return (uint16_t)(sign | 0x7C00u);
    if (E <= 0) {
        uint32_t shift, half;
        if (E < -10) return (uint16_t)sign;
        m |= 0x800000u;
        shift = (uint32_t)(14 - E);
        hm = m >> shift;
        rem = m & ((1u << shift) - 1u);
        half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (hm & 1u))) hm++;
        return (uint16_t)(sign | hm);
    }
    hm = sign | ((uint32_t)E << 10) | (m >> 13);
    rem = m & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (hm & 1u))) hm++;
    return (uint16_t)hm;
}

static uint16_t rd16le(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32le(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64le(const uint8_t *p) { return (uint64_t)rd32le(p) | ((uint64_t)rd32le(p + 4) << 32); }
static void wr32le(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

typedef struct { int *v; size_t n, cap; } ivec;

static void ivec_push(ivec *a, int x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        int *v = (int *)xmalloc(cap, sizeof(int));
        if (a->n) memcpy(v, a->v, a->n * sizeof(int));
        free(a->v);
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
}

/* ------------------------------------------------------------------ >>gguf
 * GGUF v2/v3, little-endian. Every read goes through a cursor that checks the
 * bytes left first, so a truncated or corrupt file ends in fail(), never in an
 * out-of-bounds read. */

enum { GG_U8, GG_I8, GG_U16, GG_I16, GG_U32, GG_I32, GG_F32, GG_BOOL, GG_STR, GG_ARR, GG_U64, GG_I64, GG_F64 };
enum { T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q4_1 = 3, T_Q5_0 = 6, T_Q5_1 = 7, T_Q8_0 = 8, T_Q8_1 = 9,
       T_Q2_K = 10, T_Q3_K = 11, T_Q4_K = 12, T_Q5_K = 13, T_Q6_K = 14, T_Q8_K = 15, T_BF16 = 30 };

typedef struct { const uint8_t *p; size_t n, off; const char *what; } cursor;

static void cur_need(cursor *c, uint64_t k) {
    if (k > (uint64_t)(c->n - c->off))
        fail("GGUF file truncated or corrupt: %s needs %llu bytes at offset %zu, %zu left", c->what,
             (unsigned long long)k, c->off, c->n - c->off);
}
static void cur_skip(cursor *c, uint64_t k) { cur_need(c, k); c->off += (size_t)k; }
static uint32_t cur_u32(cursor *c) { uint32_t v; cur_need(c, 4); v = rd32le(c->p + c->off); c->off += 4; return v; }
static uint64_t cur_u64(cursor *c) { uint64_t v; cur_need(c, 8); v = rd64le(c->p + c->off); c->off += 8; return v; }
static void cur_str(cursor *c, const char **s, size_t *len) {
    uint64_t n = cur_u64(c);
    cur_need(c, n);
    *s = (const char *)(c->p + c->off);
    *len = (size_t)n;
    c->off += (size_t)n;
}

static size_t gg_scalar_bytes(uint32_t t) {
    switch (t) {
    case GG_U8: case GG_I8: case GG_BOOL: return 1;
    case GG_U16: case GG_I16: return 2;
    case GG_U32: case GG_I32: case GG_F32: return 4;
    case GG_U64: case GG_I64: case GG_F64: return 8;
    default: return 0;
    }
}

/* block size (elements) and bytes per block of a ggml tensor type; 0 if unknown */
static int type_layout(uint32_t t, uint32_t *blck, uint32_t *bytes) {
    static const struct { uint32_t t, blck, bytes; } tab[] = {
        {T_F32, 1, 4},     {T_F16, 1, 2},      {T_Q4_0, 32, 18},   {T_Q4_1, 32, 20},   {T_Q5_0, 32, 22},
        {T_Q5_1, 32, 24},  {T_Q8_0, 32, 34},   {T_Q8_1, 32, 36},   {T_Q2_K, 256, 84},  {T_Q3_K, 256, 110},
        {T_Q4_K, 256, 144}, {T_Q5_K, 256, 176}, {T_Q6_K, 256, 210}, {T_Q8_K, 256, 292}, {T_BF16, 1, 2}};
    size_t i;
    for (i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (tab[i].t == t) { *blck = tab[i].blck; *bytes = tab[i].bytes; return 1; }
    return 0;
}

static const char *type_name(uint32_t t) {
    switch (t) {
    case T_F32: return "F32"; case T_F16: return "F16"; case T_BF16: return "BF16";
    case T_Q4_0: return "Q4_0"; case T_Q4_1: return "Q4_1"; case T_Q5_0: return "Q5_0"; case T_Q5_1: return "Q5_1";
    case T_Q8_0: return "Q8_0"; case T_Q8_1: return "Q8_1"; case T_Q2_K: return "Q2_K"; case T_Q3_K: return "Q3_K";
    case T_Q4_K: return "Q4_K"; case T_Q5_K: return "Q5_K"; case T_Q6_K: return "Q6_K"; case T_Q8_K: return "Q8_K";
    default: return "?";
    }
}

typedef struct { const char *key; size_t key_len; uint32_t type, arr_type; uint64_t arr_n; size_t val; } gguf_kv;
typedef struct {
    const char *name; size_t name_len;
    uint32_t n_dims, type;
    uint64_t ne[4], offset, n_elem, n_bytes;
    const uint8_t *data;
} gguf_tensor;
typedef struct {
    uint8_t *buf; size_t size;
    uint32_t version, alignment;
    size_t n_kv, n_tensors, data_off;
    gguf_kv *kv;
    gguf_tensor *t;
} gguf;

static void gg_skip_value(cursor *c, uint32_t type, uint32_t *arr_type, uint64_t *arr_n) {
    const char *s;
    size_t len, sz;
    if (type == GG_STR) { cur_str(c, &s, &len); return; }
    if (type == GG_ARR) {
        uint32_t at = cur_u32(c);
        uint64_t n = cur_u64(c), i;
        *arr_type = at;
        *arr_n = n;
        if (at == GG_STR) {
            if (n > (c->n - c->off) / 8) fail("GGUF file truncated or corrupt: %s: string array of %llu entries exceeds the file", c->what, (unsigned long long)n);
            for (i = 0; i < n; i++) cur_str(c, &s, &len);
            return;
        }
        sz = gg_scalar_bytes(at);
        if (sz == 0) fail("GGUF corrupt or unsupported: %s: array of type %u", c->what, at);
        if (n > (c->n - c->off) / sz) fail("GGUF file truncated or corrupt: %s: array of %llu entries exceeds the file", c->what, (unsigned long long)n);
        cur_skip(c, n * sz);
        return;
    }
    sz = gg_scalar_bytes(type);
    if (sz == 0) fail("GGUF corrupt: %s: unknown value type %u", c->what, type);
    cur_skip(c, sz);
}

static void gguf_load(gguf *g, const char *path) {
    cursor c;
    uint64_t n_tensors, n_kv, i;
    size_t min_data;
    memset(g, 0, sizeof *g);
    g->buf = read_file(path, (size_t)1 << 34, &g->size);
    c.p = g->buf; c.n = g->size; c.off = 0; c.what = "header";
    cur_need(&c, 4);
    if (memcmp(g->buf, "GGUF", 4) != 0) fail("%s is not a GGUF file (bad magic)", path);
    c.off = 4;
    g->version = cur_u32(&c);
    if (g->version < 2 || g->version > 3) fail("unsupported GGUF version %u (need 2 or 3)", g->version);
    n_tensors = cur_u64(&c);
    n_kv = cur_u64(&c);
    /* each metadata pair takes >= 13 bytes, each tensor info >= 32: bound the counts by the file */
    if (n_kv > (c.n - c.off) / 13) fail("GGUF file truncated or corrupt: %llu metadata entries cannot fit in the file", (unsigned long long)n_kv);
    if (n_tensors > (c.n - c.off) / 32) fail("GGUF file truncated or corrupt: %llu tensors cannot fit in the file", (unsigned long long)n_tensors);
    g->n_kv = (size_t)n_kv;
    g->n_tensors = (size_t)n_tensors;
    g->kv = (gguf_kv *)xcalloc(g->n_kv, sizeof(gguf_kv));
    g->t = (gguf_tensor *)xcalloc(g->n_tensors, sizeof(gguf_tensor));
    for (i = 0; i < n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        c.what = "metadata key";
        cur_str(&c, &kv->key, &kv->key_len);
        c.what = "metadata value";
        kv->type = cur_u32(&c);
        kv->val = c.off;
        gg_skip_value(&c, kv->type, &kv->arr_type, &kv->arr_n);
        if (kv->type == GG_ARR) kv->val += 12; /* past element type and count: the first element */
    }
    for (i = 0; i < n_tensors; i++) {
        gguf_tensor *t = &g->t[i];
        uint32_t d, blck, bytes;
        c.what = "tensor info";
        cur_str(&c, &t->name, &t->name_len);
        t->n_dims = cur_u32(&c);
        if (t->n_dims < 1 || t->n_dims > 4) fail("GGUF corrupt: tensor %.*s has %u dims", (int)t->name_len, t->name, t->n_dims);
        t->n_elem = 1;
        for (d = 0; d < 4; d++) t->ne[d] = 1;
        for (d = 0; d < t->n_dims; d++) {
            t->ne[d] = cur_u64(&c);
            if (t->ne[d] == 0 || t->ne[d] > ((uint64_t)1 << 40) || t->n_elem > ((uint64_t)1 << 40) / t->ne[d])
                fail("GGUF corrupt: tensor %.*s has a bad shape", (int)t->name_len, t->name);
            t->n_elem *= t->ne[d];
        }
        t->type = cur_u32(&c);
        t->offset = cur_u64(&c);
        if (!type_layout(t->type, &blck, &bytes))
            fail("tensor %.*s has unknown type %u", (int)t->name_len, t->name, t->type);
        if (t->ne[0] % blck != 0)
            fail("GGUF corrupt: tensor %.*s: row of %llu is not a multiple of the %s block (%u)", (int)t->name_len,
                 t->name, (unsigned long long)t->ne[0], type_name(t->type), blck);
        t->n_bytes = t->n_elem / blck * bytes;
    }
    /* alignment of the data section */
    g->alignment = 32;
    for (i = 0; i < n_kv; i++) {
        if (g->kv[i].key_len == 17 && memcmp(g->kv[i].key, "general.alignment", 17) == 0) {
            if (g->kv[i].type != GG_U32) fail("GGUF corrupt: general.alignment is not u32");
            g->alignment = rd32le(g->buf + g->kv[i].val);
            if (g->alignment == 0 || g->alignment > 65536 || (g->alignment & (g->alignment - 1)))
                fail("GGUF corrupt: general.alignment %u is not a power of two", g->alignment);
        }
    }
    min_data = c.off;
    if (min_data > SIZE_MAX - g->alignment) fail("GGUF corrupt: header too large");
    g->data_off = (min_data + g->alignment - 1) / g->alignment * g->alignment;
    if (g->data_off > g->size) fail("GGUF file truncated: no tensor data (header ends at %zu, file has %zu bytes)", g->data_off, g->size);
    for (i = 0; i < n_tensors; i++) {
        gguf_tensor *t = &g->t[i];
        uint64_t room = (uint64_t)(g->size - g->data_off);
        if (t->offset % g->alignment != 0) fail("GGUF corrupt: tensor %.*s is misaligned", (int)t->name_len, t->name);
        if (t->offset > room || t->n_bytes > room - t->offset)
            fail("GGUF file truncated or corrupt: tensor %.*s (%llu bytes at data offset %llu) runs past the end of the file (%zu bytes)",
                 (int)t->name_len, t->name, (unsigned long long)t->n_bytes, (unsigned long long)t->offset, g->size);
        t->data = g->buf + g->data_off + (size_t)t->offset;
    }
}

static void gguf_free(gguf *g) { free(g->buf); free(g->kv); free(g->t); }

static const gguf_kv *gg_find(const gguf *g, const char *key) {
    size_t i, n = strlen(key);
    for (i = 0; i < g->n_kv; i++)
        if (g->kv[i].key_len == n && memcmp(g->kv[i].key, key, n) == 0) return &g->kv[i];
    return NULL;
}

/* integer metadata of any integer type; returns 0 if absent */
static int gg_get_int(const gguf *g, const char *key, int64_t *out) {
    const gguf_kv *kv = gg_find(g, key);
    const uint8_t *p;
    if (!kv) return 0;
    p = g->buf + kv->val;
    switch (kv->type) {
    case GG_U8: *out = p[0]; break;
    case GG_I8: *out = (int8_t)p[0]; break;
    case GG_U16: *out = rd16le(p); break;
    case GG_I16: *out = (int16_t)rd16le(p); break;
    case GG_U32: *out = rd32le(p); break;
    case GG_I32: *out = (int32_t)rd32le(p); break;
    case GG_U64: if (rd64le(p) > INT64_MAX) fail("metadata %s is out of range", key); *out = (int64_t)rd64le(p); break;
    case GG_I64: *out = (int64_t)rd64le(p); break;
    case GG_BOOL: *out = p[0] != 0; break;
    default: fail("metadata %s has type %u, expected an integer", key, kv->type);
    }
    return 1;
}

static int gg_get_f32(const gguf *g, const char *key, float *out) {
    const gguf_kv *kv = gg_find(g, key);
    if (!kv) return 0;
    if (kv->type == GG_F32) { uint32_t b = rd32le(g->buf + kv->val); memcpy(out, &b, 4); }
    else if (kv->type == GG_F64) { uint64_t b = rd64le(g->buf + kv->val); double d; memcpy(&d, &b, 8); *out = (float)d; }
    else fail("metadata %s has type %u, expected a float", key, kv->type);
    return 1;
}

static int gg_get_str(const gguf *g, const char *key, const char **s, size_t *len) {
    const gguf_kv *kv = gg_find(g, key);
    cursor c;
    if (!kv) return 0;
    if (kv->type != GG_STR) fail("metadata %s has type %u, expected a string", key, kv->type);
    c.p = g->buf; c.n = g->size; c.off = kv->val; c.what = key;
    cur_str(&c, s, len);
    return 1;
}

static int gg_str_is(const gguf *g, const char *key, const char *want) {
    const char *s;
    size_t n;
    return gg_get_str(g, key, &s, &n) && n == strlen(want) && memcmp(s, want, n) == 0;
}

static int64_t gg_need_int(const gguf *g, const char *key, int64_t lo, int64_t hi) {
    int64_t v;
    if (!gg_get_int(g, key, &v)) fail("model metadata lacks %s", key);
    if (v < lo || v > hi) fail("model metadata %s = %lld is out of the supported range [%lld, %lld]", key, (long long)v, (long long)lo, (long long)hi);
    return v;
}

static const gguf_tensor *gg_tensor(const gguf *g, const char *name) {
    size_t i, n = strlen(name);
    for (i = 0; i < g->n_tensors; i++)
        if (g->t[i].name_len == n && memcmp(g->t[i].name, name, n) == 0) return &g->t[i];
    return NULL;
}

static void gguf_print_info(const gguf *g) {
    size_t i;
    printf("GGUF v%u, %zu metadata entries, %zu tensors, alignment %u, data at %zu, file %zu bytes\n", g->version, g->n_kv,
           g->n_tensors, g->alignment, g->data_off, g->size);
    for (i = 0; i < g->n_kv; i++) {
        const gguf_kv *kv = &g->kv[i];
        char key[256];
        int64_t iv;
        float fv;
        snprintf(key, sizeof key, "%.*s", (int)(kv->key_len < 200 ? kv->key_len : 200), kv->key);
        printf("  %-44s ", key);
        if (kv->type == GG_STR) {
            const char *s;
            size_t n;
            gg_get_str(g, key, &s, &n);
            printf("str  \"%.*s\"%s\n", (int)(n < 60 ? n : 60), s, n > 60 ? "..." : "");
        } else if (kv->type == GG_ARR) {
            printf("arr  [%llu x type %u]\n", (unsigned long long)kv->arr_n, kv->arr_type);
        } else if (kv->type == GG_F32 || kv->type == GG_F64) {
            gg_get_f32(g, key, &fv);
            printf("f    %g\n", fv);
        } else {
            gg_get_int(g, key, &iv);
            printf("int  %lld\n", (long long)iv);
        }
    }
    for (i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->t[i];
        printf("  tensor %-28.*s %-5s [%llu", (int)t->name_len, t->name, type_name(t->type), (unsigned long long)t->ne[0]);
        if (t->n_dims > 1) printf(", %llu", (unsigned long long)t->ne[1]);
        printf("] %llu bytes\n", (unsigned long long)t->n_bytes);
    }
}

/* ------------------------------------------------------------------ >>dequant
 * ggml block formats (little-endian, fp16 scales):
 *   Q4_0: d,           16 bytes of nibbles: x[j] = (lo(q[j]) - 8) d, x[j+16] = (hi(q[j]) - 8) d
 *   Q4_1: d, m,        16 bytes of nibbles: x[j] = lo(q[j]) d + m,   x[j+16] = hi(q[j]) d + m
 *   Q8_0: d,           32 int8:             x[j] = q[j] d                                     */

static int dequant_supported(uint32_t t) {
    return t == T_F32 || t == T_F16 || t == T_BF16 || t == T_Q4_0 || t == T_Q4_1 || t == T_Q8_0;
}

/* n elements (a multiple of the type's block) from src to dst */
static void dequant_row(uint32_t type, const uint8_t *src, float *dst, size_t n) {
    size_t i, b;
    int j;
    switch (type) {
    case T_F32:
        for (i = 0; i < n; i++) { uint32_t v = rd32le(src + 4 * i); memcpy(&dst[i], &v, 4); }
        break;
    case T_F16:
        for (i = 0; i < n; i++) dst[i] = f16_to_f32(rd16le(src + 2 * i));
        break;
    case T_BF16:
        for (i = 0; i < n; i++) { uint32_t v = (uint32_t)rd16le(src + 2 * i) << 16; memcpy(&dst[i], &v, 4); }
        break;
    case T_Q4_0:
        for (b = 0; b < n / 32; b++, src += 18, dst += 32) {
            const float d = f16_to_f32(rd16le(src));
            for (j = 0; j < 16; j++) {
                dst[j] = (float)((src[2 + j] & 0x0F) - 8) * d;
                dst[j + 16] = (float)((src[2 + j] >> 4) - 8) * d;
            }
        }
        break;
    case T_Q4_1:
        for (b = 0; b < n / 32; b++, src += 20, dst += 32) {
            const float d = f16_to_f32(rd16le(src)), m = f16_to_f32(rd16le(src + 2));
            for (j = 0; j < 16; j++) {
                dst[j] = (float)(src[4 + j] & 0x0F) * d + m;
                dst[j + 16] = (float)(src[4 + j] >> 4) * d + m;
            }
        }
        break;
    case T_Q8_0:
        for (b = 0; b < n / 32; b++, src += 34, dst += 32) {
            const float d = f16_to_f32(rd16le(src));
            for (j = 0; j < 32; j++) dst[j] = (float)(int8_t)src[2 + j] * d;
        }
        break;
    default:
        fail("tensor type %s is not supported by this program", type_name(type));
    }
}

/* ------------------------------------------------------------------ >>model */

/* A weight matrix y = W x with W [n_out][n_in], stored dequantized in panels of
 * 8 output rows: w[(o / 8) * n_in * 8 + i * 8 + o % 8] (rows past n_out are 0),
 * so the matmul streams each panel once for a whole block of tokens. */
typedef struct { int n_in, n_out; float *w; } mat;

#define MAX_HEAD_DIM 256

typedef struct {
    float *attn_norm, *ffn_norm;
    mat wq, wk, wv, wo, wgate, wup, wdown;
} layer;

typedef struct {
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train;
    float rope_theta, eps;
    mat tok_embd;  /* [n_vocab][n_embd]: embedding rows, and the output head when tied */
    mat output;    /* the output head (a copy of tok_embd's pointer when tied) */
    int tied;
    float *out_norm;
    layer *layers;
} model;

static const gguf_tensor *need_tensor(const gguf *g, const char *name, uint64_t ne0, uint64_t ne1) {
    const gguf_tensor *t = gg_tensor(g, name);
    if (!t) fail("model lacks tensor %s", name);
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
        fail("tensor %s has shape [%llu, %llu, %llu, %llu], expected [%llu, %llu]", name, (unsigned long long)t->ne[0],
             (unsigned long long)t->ne[1], (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
             (unsigned long long)ne0, (unsigned long long)ne1);
    if (!dequant_supported(t->type)) fail("tensor %s has type %s, which this program cannot dequantize", name, type_name(t->type));
    return t;
}

static void mat_load(mat *m, const gguf *g, const char *name, int n_in, int n_out) {
    const gguf_tensor *t = need_tensor(g, name, (uint64_t)n_in, (uint64_t)n_out);
    size_t n_pan = ((size_t)n_out + 7) / 8, row_bytes = (size_t)(t->n_bytes / (uint64_t)n_out), o, i;
    float *row = (float *)xmalloc((size_t)n_in, sizeof(float));
    m->n_in = n_in;
    m->n_out = n_out;
    m->w = (float *)xcalloc(n_pan * 8, (size_t)n_in * sizeof(float));
    for (o = 0; o < (size_t)n_out; o++) {
        float *pan = m->w + (o / 8) * (size_t)n_in * 8 + o % 8;
        dequant_row(t->type, t->data + o * row_bytes, row, (size_t)n_in);
        for (i = 0; i < (size_t)n_in; i++) pan[i * 8] = row[i];
    }
    free(row);
}

static float *vec_load(const gguf *g, const char *name, int n) {
    const gguf_tensor *t = need_tensor(g, name, (uint64_t)n, 1);
    float *v = (float *)xmalloc((size_t)n, sizeof(float));
    dequant_row(t->type, t->data, v, (size_t)n);
    return v;
}

static void model_load(model *m, const gguf *g) {
    int64_t v;
    float f;
    int l, n_kv_dim;
    char name[96];
    const gguf_kv *tok = gg_find(g, "tokenizer.ggml.tokens");
    memset(m, 0, sizeof *m);
    if (!gg_str_is(g, "general.architecture", "llama")) fail("general.architecture is not \"llama\"");
    m->n_layer = (int)gg_need_int(g, "llama.block_count", 1, 512);
    m->n_embd = (int)gg_need_int(g, "llama.embedding_length", 8, 1 << 16);
    m->n_ff = (int)gg_need_int(g, "llama.feed_forward_length", 1, 1 << 18);
    m->n_head = (int)gg_need_int(g, "llama.attention.head_count", 1, 1024);
    m->n_head_kv = m->n_head;
    if (gg_get_int(g, "llama.attention.head_count_kv", &v)) m->n_head_kv = (int)gg_need_int(g, "llama.attention.head_count_kv", 1, m->n_head);
    m->n_ctx_train = (int)gg_need_int(g, "llama.context_length", 1, 1 << 24);
    if (m->n_embd % m->n_head != 0 || m->n_head % m->n_head_kv != 0) fail("unsupported head layout (%d heads, %d KV heads, width %d)", m->n_head, m->n_head_kv, m->n_embd);
    m->head_dim = m->n_embd / m->n_head;
    if (m->head_dim % 8 != 0 || m->head_dim > MAX_HEAD_DIM) fail("head dim %d is not supported (a multiple of 8, at most %d)", m->head_dim, MAX_HEAD_DIM);
    if (gg_get_int(g, "llama.rope.dimension_count", &v) && v != m->head_dim) fail("partial RoPE (%lld of %d dims) is not supported", (long long)v, m->head_dim);
    if (gg_find(g, "llama.rope.scaling.type") && !gg_str_is(g, "llama.rope.scaling.type", "none")) fail("RoPE scaling is not supported");
    m->rope_theta = 10000.0f;
    if (gg_get_f32(g, "llama.rope.freq_base", &f)) m->rope_theta = f;
    m->eps = 1e-5f;
    if (gg_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f)) m->eps = f;
    if (!(m->rope_theta > 1.0f) || !(m->eps > 0.0f && m->eps < 1.0f)) fail("bad RoPE base or RMSNorm epsilon in metadata");
    if (!tok || tok->type != GG_ARR || tok->arr_type != GG_STR || tok->arr_n < 256 || tok->arr_n > (1u << 24)) fail("tokenizer.ggml.tokens missing or malformed");
    m->n_vocab = (int)tok->arr_n;
    n_kv_dim = m->n_head_kv * m->head_dim;

    mat_load(&m->tok_embd, g, "token_embd.weight", m->n_embd, m->n_vocab);
    if (gg_tensor(g, "output.weight")) { mat_load(&m->output, g, "output.weight", m->n_embd, m->n_vocab); m->tied = 0; }
    else { m->output = m->tok_embd; m->tied = 1; }
    m->out_norm = vec_load(g, "output_norm.weight", m->n_embd);
    m->layers = (layer *)xcalloc((size_t)m->n_layer, sizeof(layer));
    for (l = 0; l < m->n_layer; l++) {
        layer *L = &m->layers[l];
#define NAME(s) (snprintf(name, sizeof name, "blk.%d." s, l), name)
        L->attn_norm = vec_load(g, NAME("attn_norm.weight"), m->n_embd);
        L->ffn_norm = vec_load(g, NAME("ffn_norm.weight"), m->n_embd);
        mat_load(&L->wq, g, NAME("attn_q.weight"), m->n_embd, m->n_embd);
        mat_load(&L->wk, g, NAME("attn_k.weight"), m->n_embd, n_kv_dim);
        mat_load(&L->wv, g, NAME("attn_v.weight"), m->n_embd, n_kv_dim);
        mat_load(&L->wo, g, NAME("attn_output.weight"), m->n_embd, m->n_embd);
        mat_load(&L->wgate, g, NAME("ffn_gate.weight"), m->n_embd, m->n_ff);
        mat_load(&L->wup, g, NAME("ffn_up.weight"), m->n_embd, m->n_ff);
        mat_load(&L->wdown, g, NAME("ffn_down.weight"), m->n_ff, m->n_embd);
#undef NAME
    }
}

static void model_free(model *m) {
    int l;
    for (l = 0; l < m->n_layer; l++) {
        layer *L = &m->layers[l];
        free(L->attn_norm); free(L->ffn_norm); free(L->wq.w); free(L->wk.w); free(L->wv.w); free(L->wo.w);
        free(L->wgate.w); free(L->wup.w); free(L->wdown.w);
    }
    free(m->layers);
    if (!m->tied) free(m->output.w);
    free(m->tok_embd.w);
    free(m->out_norm);
}

/* ------------------------------------------------------------------ >>tokenizer
 * GPT-2 byte-level BPE from the GGUF vocabulary and merges. Text is split into
 * control tokens (<|im_start|> ...), then pre-tokenized like the model's
 * tokenizer ("smollm" pre-tokenizer: every digit alone, then the GPT-2 regex
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ ),
 * each piece's bytes are mapped to the GPT-2 byte alphabet and merged by rank.
 * Unicode classes are exact for ASCII and approximate (tables below) elsewhere. */

typedef struct {
    int n_vocab, bos, eos;
    const char **text; int *len; int *type;   /* token strings (in the GGUF buffer), lengths, types */
    int *str_tab; size_t str_mask;            /* open addressing: string -> id */
    uint64_t *pair_key; int *pair_rank, *pair_out; size_t pair_mask;  /* (left, right) -> rank, merged id */
    int byte_tok[256];                         /* byte -> id of its one-character token, -1 if none */
    int cp_byte[324];                          /* GPT-2 alphabet code point -> byte (-1: none) */
    int *special; int n_special;               /* control tokens, longest first */
} tokenizer;

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    size_t i;
    for (i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull; x ^= x >> 33;
    return x;
}

static int vocab_find(const tokenizer *tk, const char *s, size_t n) {
    size_t h = (size_t)fnv1a(s, n) & tk->str_mask;
    for (;; h = (h + 1) & tk->str_mask) {
        int id = tk->str_tab[h];
        if (id < 0) return -1;
        if ((size_t)tk->len[id] == n && memcmp(tk->text[id], s, n) == 0) return id;
    }
}

static int pair_find(const tokenizer *tk, int a, int b, int *out) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t h = (size_t)mix64(key) & tk->pair_mask;
    for (;; h = (h + 1) & tk->pair_mask) {
        if (tk->pair_rank[h] < 0) return -1;
        if (tk->pair_key[h] == key) { *out = tk->pair_out[h]; return tk->pair_rank[h]; }
    }
}

static int utf8_put(uint32_t cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) { o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F)); return 3; }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F)); o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* decode one code point at s[0..n); invalid bytes come back as themselves (0x80..0xFF), length 1 */
static uint32_t utf8_get(const uint8_t *s, size_t n, int *len) {
    uint32_t c = s[0];
    int k, i;
    if (c < 0x80) { *len = 1; return c; }
    if ((c & 0xE0) == 0xC0) { k = 2; c &= 0x1F; }
    else if ((c & 0xF0) == 0xE0) { k = 3; c &= 0x0F; }
    else if ((c & 0xF8) == 0xF0) { k = 4; c &= 0x07; }
    else { *len = 1; return s[0]; }
    if ((size_t)k > n) { *len = 1; return s[0]; }
    for (i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) { *len = 1; return s[0]; }
        c = (c << 6) | (s[i] & 0x3F);
    }
    *len = k;
    return c;
}

enum { CL_OTHER, CL_LETTER, CL_NUMBER, CL_SPACE };

static int in_ranges(uint32_t cp, const uint32_t (*r)[2], size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if (cp >= r[i][0] && cp <= r[i][1]) return 1;
    return 0;
}

static int cp_class(uint32_t cp) {
    static const uint32_t letters[][2] = {
        {0xAA, 0xAA}, {0xB5, 0xB5}, {0xBA, 0xBA}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x2C1}, {0x2C6, 0x2D1},
        {0x2E0, 0x2E4}, {0x2EC, 0x2EC}, {0x2EE, 0x2EE}, {0x370, 0x374}, {0x376, 0x377}, {0x37A, 0x37D},
        {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x3F5}, {0x3F7, 0x481}, {0x48A, 0x52F}, {0x531, 0x556},
        {0x560, 0x588}, {0x5D0, 0x5EA}, {0x5EF, 0x5F2}, {0x620, 0x64A}, {0x671, 0x6D3}, {0x904, 0x939},
        {0xE01, 0xE30}, {0x10A0, 0x10FF}, {0x1100, 0x11FF}, {0x1E00, 0x1FBC}, {0x2071, 0x2071}, {0x207F, 0x207F},
        {0x2090, 0x209C}, {0x2C00, 0x2CE4}, {0x3041, 0x3096}, {0x30A1, 0x30FA}, {0x3105, 0x312F},
        {0x3131, 0x318E}, {0x3400, 0x4DBF}, {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0xF900, 0xFAFF},
        {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0xFF66, 0xFFDC}};
    static const uint32_t numbers[][2] = {
        {0xB2, 0xB3}, {0xB9, 0xB9}, {0xBC, 0xBE}, {0x660, 0x669}, {0x6F0, 0x6F9}, {0x966, 0x96F}, {0xE50, 0xE59},
        {0x2070, 0x2070}, {0x2074, 0x2079}, {0x2080, 0x2089}, {0x2150, 0x2182}, {0x2185, 0x2189},
        {0x2460, 0x249B}, {0x24EA, 0x24FF}, {0x2776, 0x2793}, {0x3007, 0x3007}, {0x3021, 0x3029}, {0xFF10, 0xFF19}};
    static const uint32_t spaces[][2] = {
        {0x85, 0x85}, {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F},
        {0x205F, 0x205F}, {0x3000, 0x3000}};
    if (cp < 0x80) {
        if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return CL_LETTER;
        if (cp >= '0' && cp <= '9') return CL_NUMBER;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return CL_SPACE;
        return CL_OTHER;
    }
    if (in_ranges(cp, letters, sizeof letters / sizeof letters[0])) return CL_LETTER;
    if (in_ranges(cp, numbers, sizeof numbers / sizeof numbers[0])) return CL_NUMBER;
    if (in_ranges(cp, spaces, sizeof spaces / sizeof spaces[0])) return CL_SPACE;
    return CL_OTHER;
}

static void tokenizer_load(tokenizer *tk, const gguf *g, int n_vocab) {
    const gguf_kv *kv;
    cursor c;
    int i, n = 0, bs[256];
    size_t cap, k;
    int64_t v;
    memset(tk, 0, sizeof *tk);
    if (!gg_str_is(g, "tokenizer.ggml.model", "gpt2")) fail("tokenizer.ggml.model is not \"gpt2\" (byte-level BPE)");
    tk->n_vocab = n_vocab;
    tk->text = (const char **)xmalloc((size_t)n_vocab, sizeof(char *));
    tk->len = (int *)xmalloc((size_t)n_vocab, sizeof(int));
    tk->type = (int *)xmalloc((size_t)n_vocab, sizeof(int));
    kv = gg_find(g, "tokenizer.ggml.tokens");
    c.p = g->buf; c.n = g->size; c.off = kv->val; c.what = "tokenizer.ggml.tokens";
    for (i = 0; i < n_vocab; i++) {
        size_t len;
        cur_str(&c, &tk->text[i], &len);
        if (len > 4096) fail("token %d is implausibly long (%zu bytes)", i, len);
        tk->len[i] = (int)len;
        tk->type[i] = 1;
    }
    kv = gg_find(g, "tokenizer.ggml.token_type");
    if (kv) {
        if (kv->type != GG_ARR || (kv->arr_type != GG_I32 && kv->arr_type != GG_U32) || kv->arr_n != (uint64_t)n_vocab)
            fail("tokenizer.ggml.token_type malformed");
        for (i = 0; i < n_vocab; i++) tk->type[i] = (int)rd32le(g->buf + kv->val + 4 * (size_t)i);
    }
    for (cap = 1; cap < (size_t)n_vocab * 2; cap <<= 1) {}
    tk->str_mask = cap - 1;
    tk->str_tab = (int *)xmalloc(cap, sizeof(int));
    for (k = 0; k < cap; k++) tk->str_tab[k] = -1;
    for (i = 0; i < n_vocab; i++) {
        size_t h = (size_t)fnv1a(tk->text[i], (size_t)tk->len[i]) & tk->str_mask;
        if (vocab_find(tk, tk->text[i], (size_t)tk->len[i]) >= 0) continue;  /* duplicate: first wins */
        while (tk->str_tab[h] >= 0) h = (h + 1) & tk->str_mask;
        tk->str_tab[h] = i;
    }
    /* GPT-2 byte alphabet: printable bytes stand for themselves, the rest map to 256.. */
    for (i = 0; i < 324; i++) tk->cp_byte[i] = -1;
    for (i = 0; i < 256; i++) bs[i] = (i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF);
    for (i = 0; i < 256; i++) {
        uint32_t cp = bs[i] ? (uint32_t)i : (uint32_t)(256 + n++);
        char buf[4];
        int len = utf8_put(cp, buf);
        tk->cp_byte[cp] = i;
        tk->byte_tok[i] = vocab_find(tk, buf, (size_t)len);  /* -1: byte never seen in training */
    }
    /* merges "left right" -> rank */
    kv = gg_find(g, "tokenizer.ggml.merges");
    if (!kv || kv->type != GG_ARR || kv->arr_type != GG_STR) fail("tokenizer.ggml.merges missing or malformed");
    for (cap = 1; cap < (size_t)kv->arr_n * 2 + 2; cap <<= 1) {}
    tk->pair_mask = cap - 1;
    tk->pair_key = (uint64_t *)xmalloc(cap, sizeof(uint64_t));
    tk->pair_rank = (int *)xmalloc(cap, sizeof(int));
    tk->pair_out = (int *)xmalloc(cap, sizeof(int));
    for (k = 0; k < cap; k++) tk->pair_rank[k] = -1;
    c.off = kv->val; c.what = "tokenizer.ggml.merges";
    for (k = 0; k < kv->arr_n; k++) {
        const char *s;
        size_t len, sp;
        int a, b, out, dummy;
        char cat[8192];
        cur_str(&c, &s, &len);
        for (sp = 1; sp < len && s[sp] != ' '; sp++) {}
        if (sp >= len || len > sizeof cat) continue;
        a = vocab_find(tk, s, sp);
        b = vocab_find(tk, s + sp + 1, len - sp - 1);
        memcpy(cat, s, sp);
        memcpy(cat + sp, s + sp + 1, len - sp - 1);
        out = vocab_find(tk, cat, len - 1);
        if (a < 0 || b < 0 || out < 0 || pair_find(tk, a, b, &dummy) >= 0) continue;
        {
            uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
            size_t h = (size_t)mix64(key) & tk->pair_mask;
            while (tk->pair_rank[h] >= 0) h = (h + 1) & tk->pair_mask;
            tk->pair_key[h] = key;
            tk->pair_rank[h] = (int)k;
            tk->pair_out[h] = out;
        }
    }
    /* control and user-defined tokens are matched verbatim in the input, longest first */
    tk->special = (int *)xmalloc((size_t)n_vocab, sizeof(int));
    for (i = 0; i < n_vocab; i++)
        if ((tk->type[i] == 3 || tk->type[i] == 4) && tk->len[i] > 0) tk->special[tk->n_special++] = i;
    for (i = 1; i < tk->n_special; i++) {
        int x = tk->special[i], j = i;
        while (j > 0 && tk->len[tk->special[j - 1]] < tk->len[x]) { tk->special[j] = tk->special[j - 1]; j--; }
        tk->special[j] = x;
    }
    tk->bos = gg_get_int(g, "tokenizer.ggml.bos_token_id", &v) && v >= 0 && v < n_vocab ? (int)v : -1;
    tk->eos = gg_get_int(g, "tokenizer.ggml.eos_token_id", &v) && v >= 0 && v < n_vocab ? (int)v : -1;
}

static void tokenizer_free(tokenizer *tk) {
    free(tk->text); free(tk->len); free(tk->type); free(tk->str_tab);
    free(tk->pair_key); free(tk->pair_rank); free(tk->pair_out); free(tk->special);
}

/* BPE of one pre-tokenized piece; sym is scratch. A byte without a token of its
 * own cannot merge and is dropped from the output, as llama.cpp does. */
static void bpe_piece(const tokenizer *tk, const uint8_t *s, size_t n, ivec *sym, ivec *out) {
    size_t i;
    sym->n = 0;
    for (i = 0; i < n; i++) ivec_push(sym, tk->byte_tok[s[i]]);
    while (sym->n > 1) {
        int best = -1, best_out = 0, r, o;
        size_t bi = 0;
        for (i = 0; i + 1 < sym->n; i++) {
            if (sym->v[i] < 0 || sym->v[i + 1] < 0) continue;
            r = pair_find(tk, sym->v[i], sym->v[i + 1], &o);
            if (r >= 0 && (best < 0 || r < best)) { best = r; best_out = o; bi = i; }
        }
        if (best < 0) break;
        sym->v[bi] = best_out;
        memmove(sym->v + bi + 1, sym->v + bi + 2, (sym->n - bi - 2) * sizeof(int));
        sym->n--;
    }
    for (i = 0; i < sym->n; i++)
        if (sym->v[i] >= 0) ivec_push(out, sym->v[i]);
}

/* pre-tokenize text[0..n) (no control tokens inside) and BPE each piece; an
 * invalid UTF-8 byte becomes U+FFFD (EF BF BD), as in llama.cpp */
static void tokenize_plain(const tokenizer *tk, const uint8_t *text, size_t n, ivec *out) {
    size_t ncp = 0, i, a, b, n_bad = 0;
    uint32_t *cp;
    size_t *off;
    uint8_t *cl, *clean = NULL;
    ivec sym = {NULL, 0, 0};
    for (i = 0; i < n;) {
        int len;
        if (utf8_get(text + i, n - i, &len) >= 0x80 && len == 1) n_bad++;
        i += (size_t)len;
    }
    if (n_bad) {
        size_t o = 0;
        clean = (uint8_t *)xmalloc(n + 2 * n_bad + 1, 1);
        for (i = 0; i < n;) {
            int len;
            if (utf8_get(text + i, n - i, &len) >= 0x80 && len == 1) { clean[o++] = 0xEF; clean[o++] = 0xBF; clean[o++] = 0xBD; }
            else memcpy(clean + o, text + i, (size_t)len), o += (size_t)len;
            i += (size_t)len;
        }
        text = clean;
        n = o;
    }
    cp = (uint32_t *)xmalloc(n + 1, sizeof(uint32_t));
    off = (size_t *)xmalloc(n + 1, sizeof(size_t));
    cl = (uint8_t *)xmalloc(n + 1, 1);
    for (i = 0; i < n;) {
        int len;
        cp[ncp] = utf8_get(text + i, n - i, &len);
        cl[ncp] = (uint8_t)cp_class(cp[ncp]);
        off[ncp++] = i;
        i += (size_t)len;
    }
    off[ncp] = n;
    /* segments: each number code point alone; the GPT-2 regex runs inside the runs between them */
    for (a = 0; a < ncp;) {
        size_t end;
        if (cl[a] == CL_NUMBER) { bpe_piece(tk, text + off[a], off[a + 1] - off[a], &sym, out); a++; continue; }
        for (end = a; end < ncp && cl[end] != CL_NUMBER; end++) {}
        for (i = a; i < end; i = b) {
            uint32_t c = cp[i];
            int nx = i + 1 < end ? cl[i + 1] : -1;
            b = i + 1;
            if (c == '\'' && i + 1 < end) {
                uint32_t c1 = cp[i + 1], c2 = i + 2 < end ? cp[i + 2] : 0;
                if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') { b = i + 2; goto emit; }
                if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) { b = i + 3; goto emit; }
            }
            {
                int k = cl[i];
                size_t j = i;
                if (c == ' ' && nx != -1 && nx != CL_SPACE) { j = i + 1; k = cl[i + 1]; }
                if (k != CL_SPACE) {  /* ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+' */
                    while (j < end && cl[j] == k) j++;
                    b = j;
                    goto emit;
                }
            }
            /* whitespace: \s+(?!\S) leaves the last space to the next word; a lone one stands alone */
            for (b = i; b < end && cl[b] == CL_SPACE; b++) {}
            if (b < end && b - i > 1) b--;
        emit:
            bpe_piece(tk, text + off[i], off[b] - off[i], &sym, out);
        }
        a = end;
    }
    free(cp); free(off); free(cl); free(sym.v); free(clean);
}

/* text -> ids (no BOS: this model's GGUF sets add_bos_token = false); control tokens are parsed */
static void tokenize(const tokenizer *tk, const uint8_t *text, size_t n, ivec *out) {
    size_t i = 0, start = 0;
    int s;
    while (i < n) {
        int hit = -1;
        for (s = 0; s < tk->n_special; s++) {
            int id = tk->special[s];
            if ((size_t)tk->len[id] <= n - i && (uint8_t)tk->text[id][0] == text[i] && memcmp(tk->text[id], text + i, (size_t)tk->len[id]) == 0) { hit = id; break; }
        }
        if (hit < 0) { i++; continue; }
        if (i > start) tokenize_plain(tk, text + start, i - start, out);
        ivec_push(out, hit);
        i += (size_t)tk->len[hit];
        start = i;
    }
    if (n > start) tokenize_plain(tk, text + start, n - start, out);
}

/* the bytes a token stands for, into buf (cap >= 4 * token length); returns the length */
static size_t detokenize(const tokenizer *tk, int id, char *buf) {
    const uint8_t *s = (const uint8_t *)tk->text[id];
    size_t n = (size_t)tk->len[id], i = 0, o = 0;
    if (tk->type[id] != 1) { memcpy(buf, s, n); return n; }
    while (i < n) {
        int len;
        uint32_t cp = utf8_get(s + i, n - i, &len);
        if (cp < 324 && tk->cp_byte[cp] >= 0) buf[o++] = (char)tk->cp_byte[cp];
        else { memcpy(buf + o, s + i, (size_t)len); o += (size_t)len; }
        i += (size_t)len;
    }
    return o;
}

/* ------------------------------------------------------------------ >>kvcache
 * The seam where a compressed KV cache plugs in. The forward pass hands every
 * new key (after RoPE) and value to kv_store(); attention reads them back
 * through kv_read(). The fp32 reference keeps the vectors as they are. A test
 * cache sets `roundtrip`, which kv_store() applies in place to each stored
 * token's keys, then its values (encode, then decode), so attention sees exactly
 * what a compressed cache would give back. A test cache also keeps the exact
 * vectors beside the decoded ones, for two things:
 *   - exact positions: the first n_sink positions of each window are never
 *     coded, and attention reads the exact key and value of every position
 *     within n_window of its query (query_pos - key_pos < n_window, the query's
 *     own position included), in the same softmax as the decoded others;
 *   - per-layer metrics (kv_layer_stats): the codec's relative error, and the
 *     attention of each query over the test cache against its attention over
 *     the exact keys and values of the same forward.
 * Layout: [layer][kv_head][pos][head_dim]. */

/* vec: one token's keys (is_key) or values at `layer`, n_head heads of d floats concatenated; replace
 * them by their decoded version. Returns 1 if it coded them, 0 if it left them exact. */
typedef int (*kv_roundtrip_fn)(int layer, int is_key, int pos, float *vec, int n_head, int d, void *user);
/* q: one token's n_head query heads at `layer`, before RoPE, heads concatenated (calibration statistics) */
typedef void (*kv_query_fn)(int layer, int pos, const float *q, int n_head, int d, void *user);

typedef struct {
    double err[2];       /* [0 = value, 1 = key]: sum over coded head vectors of |x - x'|^2 / |x|^2 */
    long n_err[2];       /* vectors in that sum */
    double cos;          /* sum over queries (token x query head) of cos(output, output over the exact cache) */
    long n_q;            /* queries */
    long top1, top5;     /* queries whose most-attended key / top-5 key set is the exact attention's */
    long top5_hits, top5_n; /* sums of keys common to the top-5 and the exact top-5 and of the set sizes (min(5, keys)) */
} kv_layer_stats;

typedef struct {
    int n_layer, n_kv_head, head_dim, n_ctx;
    int n_sink, n_window;        /* exact positions, see above; 0 = none */
    float *k, *v;                /* what attention reads: decoded vectors (exact for the reference) */
    float *kx, *vx;              /* exact vectors: test caches only, else == k, v */
    float *tok;                  /* one token's vectors, heads concatenated, for the roundtrip */
    kv_roundtrip_fn roundtrip;   /* NULL: identity (the fp32 reference) */
    void *user;
    kv_layer_stats *stats;       /* [n_layer], test caches only */
    kv_query_fn query;           /* NULL, or called with every query (calibration) */
    void *query_user;
} kv_cache;

static void kv_init(kv_cache *c, const model *m, int n_ctx, kv_roundtrip_fn rt, void *user, int n_sink, int n_window) {
    size_t n = (size_t)m->n_layer * (size_t)m->n_head_kv * (size_t)n_ctx;
    memset(c, 0, sizeof *c);
    c->n_layer = m->n_layer; c->n_kv_head = m->n_head_kv; c->head_dim = m->head_dim; c->n_ctx = n_ctx;
    c->n_sink = n_sink;
    c->n_window = n_window;
    c->k = (float *)xcalloc(n, (size_t)m->head_dim * sizeof(float));
    c->v = (float *)xcalloc(n, (size_t)m->head_dim * sizeof(float));
    c->kx = c->k;
    c->vx = c->v;
    c->roundtrip = rt;
    c->user = user;
    if (rt) {
        c->kx = (float *)xcalloc(n, (size_t)m->head_dim * sizeof(float));
        c->vx = (float *)xcalloc(n, (size_t)m->head_dim * sizeof(float));
        c->tok = (float *)xmalloc((size_t)m->n_head_kv * (size_t)m->head_dim, sizeof(float));
        c->stats = (kv_layer_stats *)xcalloc((size_t)m->n_layer, sizeof(kv_layer_stats));
    }
}

static void kv_free(kv_cache *c) {
    if (c->kx != c->k) { free(c->kx); free(c->vx); }
    free(c->k); free(c->v); free(c->tok); free(c->stats);
    c->k = c->v = c->kx = c->vx = c->tok = NULL;
    c->stats = NULL;
}

static size_t kv_index(const kv_cache *c, int layer, int kv_head, int pos) {
    return (((size_t)layer * (size_t)c->n_kv_head + (size_t)kv_head) * (size_t)c->n_ctx + (size_t)pos) * (size_t)c->head_dim;
}

/* k, v: [n_kv_head][head_dim] of the token at pos (k after RoPE) */
static void kv_store(kv_cache *c, int layer, int pos, const float *k, const float *v) {
    const int d = c->head_dim, H = c->n_kv_head;
    int h, i, kv;
    if (pos < 0 || pos >= c->n_ctx) fail("internal: KV position %d outside the cache (%d)", pos, c->n_ctx);
    for (kv = 1; kv >= 0; kv--) { /* keys, then values */
        const float *src = kv ? k : v;
        float *dec = kv ? c->k : c->v, *ex = kv ? c->kx : c->vx;
        int coded = 0;
        if (c->roundtrip && pos >= c->n_sink) {
            memcpy(c->tok, src, (size_t)H * (size_t)d * sizeof(float));
            coded = c->roundtrip(layer, kv, pos, c->tok, H, d, c->user);
        }
        for (h = 0; h < H; h++) {
            const float *x = src + (size_t)h * d, *y = c->tok + (size_t)h * d;
            memcpy(dec + kv_index(c, layer, h, pos), coded ? y : x, (size_t)d * sizeof(float));
            if (ex != dec) memcpy(ex + kv_index(c, layer, h, pos), x, (size_t)d * sizeof(float));
            if (coded) {
                double e = 0.0, n = 0.0;
                for (i = 0; i < d; i++) {
                    e += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
                    n += (double)x[i] * x[i];
                }
                if (n > 0.0) {
                    c->stats[layer].err[kv] += e / n;
                    c->stats[layer].n_err[kv]++;
                }
            }
        }
    }
}

/* keys (is_key) or values of one layer and KV head, [pos][head_dim] for the positions stored so far:
 * as decoded (what attention reads outside the exact positions), or exact */
static const float *kv_read(const kv_cache *c, int layer, int kv_head, int is_key) {
    return (is_key ? c->k : c->v) + kv_index(c, layer, kv_head, 0);
}
static const float *kv_read_exact(const kv_cache *c, int layer, int kv_head, int is_key) {
    return (is_key ? c->kx : c->vx) + kv_index(c, layer, kv_head, 0);
}

/* Test caches available from the command line, as roundtrip functions. */
static int rt_identity(int layer, int is_key, int pos, float *vec, int n_head, int d, void *user) {
    (void)layer; (void)is_key; (void)pos; (void)vec; (void)n_head; (void)d; (void)user;
    return 1;
}
static int rt_fp16(int layer, int is_key, int pos, float *vec, int n_head, int d, void *user) {
    int i;
    (void)layer; (void)is_key; (void)pos; (void)user;
    for (i = 0; i < n_head * d; i++) vec[i] = f16_to_f32(f32_to_f16(vec[i]));
    return 1;
}
/* symmetric absmax per head vector, 2^(bits-1)-1 levels each side; user points at an int bit count */
static int rt_absmax(int layer, int is_key, int pos, float *vec, int n_head, int d, void *user) {
    int h, i, q = (1 << (*(const int *)user - 1)) - 1;
    (void)layer; (void)is_key; (void)pos;
    for (h = 0; h < n_head; h++, vec += d) {
        float amax = 0.0f, s;
        for (i = 0; i < d; i++) amax = fabsf(vec[i]) > amax ? fabsf(vec[i]) : amax;
        if (amax == 0.0f) continue;
        s = amax / (float)q;
        for (i = 0; i < d; i++) vec[i] = s * (float)(int)lrintf(vec[i] / s);
    }
    return 1;
}

/* The test caches --compare can name: add a codec here (its roundtrip function and
 * the int its `user` pointer points at). */
static const struct { const char *name; kv_roundtrip_fn fn; int arg; } test_caches[] = {
    {"identity", rt_identity, 0},  /* must give KL 0 and 100% top-1: checks the side-by-side machinery */
    {"fp16", rt_fp16, 0},          /* an fp16 cache */
    {"q8", rt_absmax, 8},          /* naive per-vector absmax int8 */
    {"q4", rt_absmax, 4},          /* naive per-vector absmax int4 */
};

/* kvtc test caches: `--compare NAME` with a NAME from kvtc_cfgs. Keys are compressed as the model
 * stores them (after RoPE); with `edge`, the first and last layer stay exact. */
typedef struct {
    const char *name;
    kvtc_method km;
    int kb;
    kvtc_method vm;
    int vb, corr, edge; /* corr: 0 default (on), -1 off */
} kvtc_cfg;
static const kvtc_cfg kvtc_cfgs[] = {
    {"tq8/4", KVTC_METHOD_TQ_MSE, 8, KVTC_METHOD_TQ_MSE, 4, 0, 0},
    {"tq4/4", KVTC_METHOD_TQ_MSE, 4, KVTC_METHOD_TQ_MSE, 4, 0, 0},
    {"tq4/4-nocorr", KVTC_METHOD_TQ_MSE, 4, KVTC_METHOD_TQ_MSE, 4, -1, 0},
    {"tq4/2", KVTC_METHOD_TQ_MSE, 4, KVTC_METHOD_TQ_MSE, 2, 0, 0},
    {"tq4/aff4", KVTC_METHOD_TQ_MSE, 4, KVTC_METHOD_AFFINE, 4, 0, 0},
    {"tq3/3", KVTC_METHOD_TQ_MSE, 3, KVTC_METHOD_TQ_MSE, 3, 0, 0},
    {"tq3/3-edge", KVTC_METHOD_TQ_MSE, 3, KVTC_METHOD_TQ_MSE, 3, 0, 1},
    {"tq2/2", KVTC_METHOD_TQ_MSE, 2, KVTC_METHOD_TQ_MSE, 2, 0, 0},
    {"prod4/4", KVTC_METHOD_TQ_PROD, 4, KVTC_METHOD_TQ_MSE, 4, 0, 0},
    {"prod3/3", KVTC_METHOD_TQ_PROD, 3, KVTC_METHOD_TQ_MSE, 3, 0, 0},
};
typedef struct {
    const kvtc_cfg *cfg;
    kvtc_codec *k, *v;
    int n_layers;
} kvtc_rt;

static kvtc_codec *kvtc_make(kvtc_method m, int bits, int corr, int d, uint64_t seed) {
    kvtc_codec_params p;
    kvtc_codec *c = NULL;
    kvtc_status st;
    memset(&p, 0, sizeof p);
    p.head_dim = d, p.bits = bits, p.method = m, p.norm_correction = corr, p.seed = seed;
    if ((st = kvtc_codec_create(&p, &c)) != KVTC_OK) fail("kvtc_codec_create: %s", kvtc_status_string(st));
    return c;
}

static int rt_kvtc(int layer, int is_key, int pos, float *vec, int n_head, int d, void *user) {
    kvtc_rt *r = (kvtc_rt *)user;
    const kvtc_codec *c = is_key ? r->k : r->v;
    unsigned char rec[2048];
    size_t bytes;
    kvtc_status st;
    int h;
    (void)pos;
    if (r->cfg->edge && (layer == 0 || layer == r->n_layers - 1)) return 0;
    if ((st = kvtc_codec_encoded_bytes(c, 1, &bytes)) != KVTC_OK || bytes > sizeof rec)
        fail("kvtc: record size: %s", kvtc_status_string(st));
    for (h = 0; h < n_head; h++, vec += d) {
        st = kvtc_codec_encode(c, vec, 1, rec, bytes); /* NaN/Inf or out-of-range norms store zeros */
        if (st != KVTC_OK && st != KVTC_ERR_NONFINITE && st != KVTC_ERR_RANGE) fail("kvtc encode: %s", kvtc_status_string(st));
        if ((st = kvtc_codec_decode(c, rec, bytes, 1, vec, (size_t)d)) != KVTC_OK) fail("kvtc decode: %s", kvtc_status_string(st));
    }
    return 1;
}

/* KVTC test caches: PCA bases calibrated on the calibration text (keys with RoPE removed), greedy
 * bits per vector (kvtc_bit_alloc), Gaussian quantizer. Names: kvtc-GROUP-kKBvVB, GROUP `head` (a
 * basis per layer, KV head and K/V: p = head_dim) or `layer` (a basis per layer and K/V over all its
 * KV heads: p = n_kv_head * head_dim); KB and VB the bits per coordinate of a coded key and value
 * (budget round(KB * p) bits per vector; with a further -joint, the same total over all layers,
 * handed out by one allocation: kvtc_tc_budgets; with -qw, keys coded in the query metric:
 * kvtc_qw_setup); kvtc8x = kvtc-head-k2v2, kvtc16x = kvtc-head-k1v1. Each stored vector goes
 * through a one-token record (the Gaussian quantizer keeps no per-chunk data, so a token codes the
 * same alone as in a chunk); the bits printed are those of the library's record of a chunk of --ctx
 * tokens with the cache's sink and window tokens in fp16, every byte counted. */
typedef struct {
    int by_layer;          /* grouping: 0 per head, 1 per layer */
    int joint;             /* -joint: one allocation over all layers (kvtc_tc_budgets) */
    int qw;                /* -qw: keys coded in the query metric (kvtc_qw_setup) */
    float *qa, *qai;       /* -qw: [layer][kv_head][d][d], A and its inverse, row-major */
    double kbits, vbits;   /* bits per coordinate of a coded key / value */
    int n_cal;             /* calibration tokens (-calN; default 2048) */
    int n_grp, p;          /* groups per layer (n_kv_head or 1), their dimension */
    kvtc_tc_calib **calib; /* [layer][group][2 = key, value] */
    kvtc_tc **tc;
    kvtc_rope_params rope; /* for one group's vector */
    void *scratch;
    size_t scratch_bytes, rec_bytes;
    unsigned char *rec;
} kvtc_tc_rt;

/* x (group g of `layer`, p floats: p / d heads) = A x per head, A from a (r->qa or r->qai) */
static void kvtc_qw_apply(const float *a, const kvtc_tc_rt *r, int layer, int g, float *x, int d) {
    const int hpg = r->p / d, n_kv = r->n_grp * hpg;
    float y[MAX_HEAD_DIM];
    int b, i, j;
    for (b = 0; b < hpg; b++) {
        const float *A = a + ((size_t)layer * n_kv + (size_t)g * hpg + b) * (size_t)d * d;
        float *xb = x + (size_t)b * d;
        for (i = 0; i < d; i++) {
            double acc = 0.0;
            for (j = 0; j < d; j++) acc += (double)A[(size_t)i * d + j] * xb[j];
            y[i] = (float)acc;
        }
        memcpy(xb, y, (size_t)d * sizeof(float));
    }
}

static int rt_kvtc_tc(int layer, int is_key, int pos, float *vec, int n_head, int d, void *user) {
    kvtc_tc_rt *r = (kvtc_tc_rt *)user;
    int64_t p64 = pos;
    kvtc_status st;
    int g;
    (void)n_head;
    for (g = 0; g < r->n_grp; g++) {
        const kvtc_tc *tc = r->tc[((size_t)layer * r->n_grp + g) * 2 + (is_key ? 0 : 1)];
        float *x = vec + (size_t)g * r->p;
        if (is_key && kvtc_rope_remove(&r->rope, x, 1, &p64) != KVTC_OK) fail("kvtc_rope_remove");
        if (is_key && r->qw) kvtc_qw_apply(r->qa, r, layer, g, x, d);
        if ((st = kvtc_tc_encode(tc, x, 1, r->rec, r->rec_bytes, r->scratch, r->scratch_bytes)) != KVTC_OK)
            fail("kvtc_tc_encode: %s", kvtc_status_string(st));
        if ((st = kvtc_tc_decode(tc, r->rec, r->rec_bytes, x, (size_t)r->p, r->scratch, r->scratch_bytes)) != KVTC_OK)
            fail("kvtc_tc_decode: %s", kvtc_status_string(st));
        if (is_key && r->qw) kvtc_qw_apply(r->qai, r, layer, g, x, d);
        if (is_key && kvtc_rope_apply(&r->rope, x, 1, &p64) != KVTC_OK) fail("kvtc_rope_apply");
    }
    return 1;
}

/* Calibration vectors: the exact keys (RoPE removed) and values of the first n_max tokens of the
 * calibration text, run through the model in windows of --ctx tokens; sample i sits at position
 * i % ctx of its window. x: [layer][2 = key, value][n_max][n_kv_head * head_dim]. */
typedef struct {
    size_t n_max, row;
    size_t *n;             /* [layer][2]: samples collected */
    float *x;
    kvtc_rope_params rope; /* a token's n_kv_head heads */
    int d, grp;            /* head_dim, query heads per KV head */
    double *qm;            /* [layer][kv_head][d][d]: sum of q q^T (q before RoPE) over the group's query heads, upper triangle */
    size_t *nq;            /* [layer]: tokens in it */
} calib_set;

static int rt_calib_collect(int layer, int is_key, int pos, float *vec, int n_head, int d, void *user) {
    calib_set *cs = (calib_set *)user;
    const size_t slot = (size_t)layer * 2 + (is_key ? 0 : 1);
    int64_t p64 = pos;
    float *dst;
    (void)n_head; (void)d;
    if (cs->n[slot] >= cs->n_max) return 0;
    dst = cs->x + (slot * cs->n_max + cs->n[slot]++) * cs->row;
    memcpy(dst, vec, cs->row * sizeof(float));
    if (is_key && kvtc_rope_remove(&cs->rope, dst, 1, &p64) != KVTC_OK) fail("kvtc_rope_remove");
    return 0;
}

static void rt_calib_query(int layer, int pos, const float *q, int n_head, int d, void *user) {
    calib_set *cs = (calib_set *)user;
    int h, i, j;
    (void)pos;
    if (cs->nq[layer] >= cs->n_max) return;
    cs->nq[layer]++;
    for (h = 0; h < n_head; h++) {
        double *mq = cs->qm + ((size_t)layer * (size_t)(n_head / cs->grp) + (size_t)(h / cs->grp)) * (size_t)d * d;
        const float *qh = q + (size_t)h * d;
        for (i = 0; i < d; i++)
            for (j = i; j < d; j++) mq[(size_t)i * d + j] += (double)qh[i] * qh[j];
    }
}

/* ------------------------------------------------------------------ >>forward */

typedef struct {
    int max_T, n_ctx;
    float *x, *xb, *xb2, *q, *k, *v, *att, *hb, *hb2, *scores, *scores_x, *rope_cs;
} scratch;

static void scratch_init(scratch *s, const model *m, int max_T, int n_ctx) {
    size_t T = (size_t)max_T, E = (size_t)m->n_embd, KV = (size_t)m->n_head_kv * (size_t)m->head_dim, F = (size_t)m->n_ff;
    int p, i, half = m->head_dim / 2;
    s->max_T = max_T;
    s->n_ctx = n_ctx;
    s->x = (float *)xmalloc(T * E, sizeof(float));
    s->xb = (float *)xmalloc(T * E, sizeof(float));
    s->xb2 = (float *)xmalloc(T * E, sizeof(float));
    s->q = (float *)xmalloc(T * E, sizeof(float));
    s->att = (float *)xmalloc(T * E, sizeof(float));
    s->k = (float *)xmalloc(T * KV, sizeof(float));
    s->v = (float *)xmalloc(T * KV, sizeof(float));
    s->hb = (float *)xmalloc(T * F, sizeof(float));
    s->hb2 = (float *)xmalloc(T * F, sizeof(float));
    s->scores = (float *)xmalloc((size_t)n_ctx, sizeof(float));
    s->scores_x = (float *)xmalloc((size_t)n_ctx, sizeof(float));
    /* RoPE table: angle pos * theta^(-2i/head_dim) for pair i, positions 0..n_ctx-1 */
    s->rope_cs = (float *)xmalloc((size_t)n_ctx * (size_t)half, 2 * sizeof(float));
    for (p = 0; p < n_ctx; p++)
        for (i = 0; i < half; i++) {
            double ang = (double)p * pow((double)m->rope_theta, -2.0 * i / (double)m->head_dim);
            s->rope_cs[((size_t)p * half + i) * 2] = (float)cos(ang);
            s->rope_cs[((size_t)p * half + i) * 2 + 1] = (float)sin(ang);
        }
}

static void scratch_free(scratch *s) {
    free(s->x); free(s->xb); free(s->xb2); free(s->q); free(s->att); free(s->k); free(s->v);
    free(s->hb); free(s->hb2); free(s->scores); free(s->scores_x); free(s->rope_cs);
}

/* y[t][o] = sum_i W[o][i] x[t][i] for T tokens; x [T][n_in], y [T][n_out] */
static void matmul(float *y, const float *x, const mat *m, int T) {
    const int n_in = m->n_in, n_out = m->n_out, n_pan = (n_out + 7) / 8;
    int p, t, i, k;
    for (p = 0; p < n_pan; p++) {
        const float *wp = m->w + (size_t)p * (size_t)n_in * 8;
        const int o0 = p * 8, no = n_out - o0 < 8 ? n_out - o0 : 8;
        for (t = 0; t + 4 <= T; t += 4) {
            const float *x0 = x + (size_t)t * n_in, *x1 = x0 + n_in, *x2 = x1 + n_in, *x3 = x2 + n_in;
            float a0[8], a1[8], a2[8], a3[8];
            for (k = 0; k < 8; k++) a0[k] = a1[k] = a2[k] = a3[k] = 0.0f;
            for (i = 0; i + 2 <= n_in; i += 2) {  /* two inputs a step: 8 outputs x 4 tokens, GCC -O2 vectorizes k */
                const float *w = wp + (size_t)i * 8, b0 = x0[i], b1 = x1[i], b2 = x2[i], b3 = x3[i];
                const float c0 = x0[i + 1], c1 = x1[i + 1], c2 = x2[i + 1], c3 = x3[i + 1];
                for (k = 0; k < 8; k++) {
                    a0[k] += b0 * w[k] + c0 * w[k + 8];
                    a1[k] += b1 * w[k] + c1 * w[k + 8];
                    a2[k] += b2 * w[k] + c2 * w[k + 8];
                    a3[k] += b3 * w[k] + c3 * w[k + 8];
                }
            }
            for (; i < n_in; i++) {
                const float *w = wp + (size_t)i * 8, b0 = x0[i], b1 = x1[i], b2 = x2[i], b3 = x3[i];
                for (k = 0; k < 8; k++) {
                    a0[k] += b0 * w[k];
                    a1[k] += b1 * w[k];
                    a2[k] += b2 * w[k];
                    a3[k] += b3 * w[k];
                }
            }
            for (k = 0; k < no; k++) {
                y[(size_t)t * n_out + o0 + k] = a0[k];
                y[(size_t)(t + 1) * n_out + o0 + k] = a1[k];
                y[(size_t)(t + 2) * n_out + o0 + k] = a2[k];
                y[(size_t)(t + 3) * n_out + o0 + k] = a3[k];
            }
        }
        for (; t < T; t++) {
            const float *x0 = x + (size_t)t * n_in;
            float a0[8];
            for (k = 0; k < 8; k++) a0[k] = 0.0f;
            for (i = 0; i < n_in; i++) {
                const float *w = wp + (size_t)i * 8, b0 = x0[i];
                for (k = 0; k < 8; k++) a0[k] += b0 * w[k];
            }
            for (k = 0; k < no; k++) y[(size_t)t * n_out + o0 + k] = a0[k];
        }
    }
}

static void rmsnorm(float *o, const float *x, const float *w, int n, float eps) {
    double ss = 0.0;
    float r;
    int i;
    for (i = 0; i < n; i++) ss += (double)x[i] * x[i];
    r = (float)(1.0 / sqrt(ss / n + eps));
    for (i = 0; i < n; i++) o[i] = x[i] * r * w[i];
}

/* rotate pairs (x[2i], x[2i+1]) by the angle of (pos, i): GGUF's llama layout ("normal" RoPE) */
static void rope(float *x, int n_heads, int hd, const float *cs) {
    int h, i;
    for (h = 0; h < n_heads; h++, x += hd)
        for (i = 0; i < hd / 2; i++) {
            const float c = cs[2 * i], s = cs[2 * i + 1], x0 = x[2 * i], x1 = x[2 * i + 1];
            x[2 * i] = x0 * c - x1 * s;
            x[2 * i + 1] = x0 * s + x1 * c;
        }
}

static float dot(const float *a, const float *b, int n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i, k;
    for (i = 0; i + 8 <= n; i += 8)
        for (k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    for (; i < n; i++) acc[0] += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* Softmax attention of query q over keys 0..n-1, rows j < jx from K and V, rows j >= jx from Kx and Vx
 * (the exact ones); sc: the n scores, left as exp(s_j - max s); o: hd outputs. */
static void attend(const float *q, const float *K, const float *V, const float *Kx, const float *Vx, int n, int jx, int hd,
                   float scale, float *sc, float *o) {
    float mx = -INFINITY, inv, acc[MAX_HEAD_DIM];
    double sum = 0.0;
    int i, j, k;
    for (j = 0; j < n; j++) {
        sc[j] = dot(q, (j < jx ? K : Kx) + (size_t)j * hd, hd) * scale;
        mx = sc[j] > mx ? sc[j] : mx;
    }
    for (j = 0; j < n; j++) { sc[j] = expf(sc[j] - mx); sum += sc[j]; }
    inv = (float)(1.0 / sum);
    for (i = 0; i < hd; i++) acc[i] = 0.0f;
    for (j = 0; j < n; j++) {  /* a local accumulator, 8 lanes a step: GCC keeps it vectorized */
        const float p = sc[j] * inv, *vr = (j < jx ? V : Vx) + (size_t)j * hd;
        for (i = 0; i < hd; i += 8)
            for (k = 0; k < 8; k++) acc[i + k] += p * vr[i + k];
    }
    for (i = 0; i < hd; i++) o[i] = acc[i];
}

/* indices of the k (<= 5) largest of x[0..n), largest first, ties to the lower index */
static void top_k(const float *x, int n, int k, int *idx) {
    int j, i;
    for (i = 0; i < k; i++) idx[i] = -1;
    for (j = 0; j < n; j++) {
        if (idx[k - 1] >= 0 && !(x[j] > x[idx[k - 1]])) continue;
        for (i = k - 1; i > 0 && (idx[i - 1] < 0 || x[j] > x[idx[i - 1]]); i--) idx[i] = idx[i - 1];
        idx[i] = j;
    }
}

/* one query's attention over the test cache (output o, scores sc) against that over the exact cache */
static void attn_compare(kv_layer_stats *st, const float *o, const float *ox, const float *sc, const float *scx, int n, int hd) {
    double ab = 0.0, aa = 0.0, bb = 0.0;
    int ia[5], ib[5], k = n < 5 ? n : 5, i, j, hits = 0;
    for (i = 0; i < hd; i++) {
        ab += (double)o[i] * ox[i];
        aa += (double)o[i] * o[i];
        bb += (double)ox[i] * ox[i];
    }
    st->cos += aa > 0.0 && bb > 0.0 ? ab / sqrt(aa * bb) : (aa == bb ? 1.0 : 0.0);
    top_k(sc, n, k, ia);
    top_k(scx, n, k, ib);
    for (i = 0; i < k; i++)
        for (j = 0; j < k; j++) hits += ia[i] == ib[j];
    st->n_q++;
    st->top1 += ia[0] == ib[0];
    st->top5 += hits == k;
    st->top5_hits += hits;
    st->top5_n += k;
}

/* tokens[0..T) at positions pos0..pos0+T-1: stores their K/V in c and writes logits
 * [T][n_vocab] (all_logits) or [1][n_vocab] of the last token, if logits != NULL */
static void forward(const model *m, scratch *s, kv_cache *c, const int *tokens, int T, int pos0, float *logits, int all_logits) {
    const int E = m->n_embd, hd = m->head_dim, KV = m->n_head_kv * hd, F = m->n_ff, grp = m->n_head / m->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd);
    int l, t, h, i;
    if (T < 1 || T > s->max_T || pos0 < 0 || pos0 + T > s->n_ctx || pos0 + T > c->n_ctx) fail("internal: bad forward call (T %d at %d)", T, pos0);
    for (t = 0; t < T; t++) {
        const int id = tokens[t];
        const float *pan;
        if (id < 0 || id >= m->n_vocab) fail("token id %d out of range", id);
        pan = m->tok_embd.w + (size_t)(id / 8) * (size_t)E * 8 + id % 8;
        for (i = 0; i < E; i++) s->x[(size_t)t * E + i] = pan[(size_t)i * 8];
    }
    for (l = 0; l < m->n_layer; l++) {
        const layer *L = &m->layers[l];
        for (t = 0; t < T; t++) rmsnorm(s->xb + (size_t)t * E, s->x + (size_t)t * E, L->attn_norm, E, m->eps);
        matmul(s->q, s->xb, &L->wq, T);
        matmul(s->k, s->xb, &L->wk, T);
        matmul(s->v, s->xb, &L->wv, T);
        for (t = 0; t < T; t++) {
            const float *cs = s->rope_cs + (size_t)(pos0 + t) * hd;
            if (c->query) c->query(l, pos0 + t, s->q + (size_t)t * E, m->n_head, hd, c->query_user);
            rope(s->q + (size_t)t * E, m->n_head, hd, cs);
            rope(s->k + (size_t)t * KV, m->n_head_kv, hd, cs);
            kv_store(c, l, pos0 + t, s->k + (size_t)t * KV, s->v + (size_t)t * KV);
        }
        /* causal attention of each token over the cache, positions 0..pos: decoded keys and values, exact
         * ones for the last n_window positions; for a test cache, also over the exact ones, for the metrics */
        for (h = 0; h < m->n_head; h++) {
            const float *K = kv_read(c, l, h / grp, 1), *V = kv_read(c, l, h / grp, 0);
            const float *Kx = kv_read_exact(c, l, h / grp, 1), *Vx = kv_read_exact(c, l, h / grp, 0);
            for (t = 0; t < T; t++) {
                const int n = pos0 + t + 1, jx = n - c->n_window > 0 ? n - c->n_window : 0;
                const float *q = s->q + (size_t)t * E + (size_t)h * hd;
                float *o = s->att + (size_t)t * E + (size_t)h * hd, ox[MAX_HEAD_DIM];
                attend(q, K, V, Kx, Vx, n, c->n_window ? jx : n, hd, scale, s->scores, o);
                if (c->stats) {
                    if (c->n_window && jx == 0) { /* every key exact: the same attention */
                        attn_compare(&c->stats[l], o, o, s->scores, s->scores, n, hd);
                        continue;
                    }
                    attend(q, Kx, Vx, Kx, Vx, n, 0, hd, scale, s->scores_x, ox);
                    attn_compare(&c->stats[l], o, ox, s->scores, s->scores_x, n, hd);
                }
            }
        }
        matmul(s->xb2, s->att, &L->wo, T);
        for (i = 0; i < T * E; i++) s->x[i] += s->xb2[i];
        for (t = 0; t < T; t++) rmsnorm(s->xb + (size_t)t * E, s->x + (size_t)t * E, L->ffn_norm, E, m->eps);
        matmul(s->hb, s->xb, &L->wgate, T);
        matmul(s->hb2, s->xb, &L->wup, T);
        for (i = 0; i < T * F; i++) s->hb[i] = s->hb[i] / (1.0f + expf(-s->hb[i])) * s->hb2[i];
        matmul(s->xb2, s->hb, &L->wdown, T);
        for (i = 0; i < T * E; i++) s->x[i] += s->xb2[i];
    }
    if (!logits) return;
    if (all_logits) {
        for (t = 0; t < T; t++) rmsnorm(s->xb + (size_t)t * E, s->x + (size_t)t * E, m->out_norm, E, m->eps);
        matmul(logits, s->xb, &m->output, T);
    } else {
        rmsnorm(s->xb, s->x + (size_t)(T - 1) * E, m->out_norm, E, m->eps);
        matmul(logits, s->xb, &m->output, 1);
    }
}

/* ------------------------------------------------------------------ >>modes */

static int argmax(const float *x, int n) {
    int i, b = 0;
    for (i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* log-sum-exp of logits, in double */
static double logsumexp(const float *x, int n) {
    double mx = x[0], s = 0.0;
    int i;
    for (i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (i = 0; i < n; i++) s += exp((double)x[i] - mx);
    return mx + log(s);
}

/* KL(p||q) of the softmaxes of logits a (p) and b (q) */
static double kl_div(const float *a, const float *b, int n) {
    double la = logsumexp(a, n), lb = logsumexp(b, n), kl = 0.0;
    int i;
    for (i = 0; i < n; i++) {
        double lpa = (double)a[i] - la, lpb = (double)b[i] - lb;
        kl += exp(lpa) * (lpa - lpb);
    }
    return kl > 0.0 ? kl : 0.0;
}

static void text_tokens(const tokenizer *tk, const char *path, ivec *ids) {
    size_t n;
    uint8_t *buf = read_file(path, (size_t)64 << 20, &n);
    tokenize(tk, buf, n, ids);
    free(buf);
}

/* Run the model over n_max tokens of `path` from token `skip` on, in windows of ctx tokens, collecting
 * every layer's exact keys (RoPE removed) and values into cs. */
static void calib_collect(const model *m, const tokenizer *tk, calib_set *cs, const char *path, int skip, int n_max, int ctx,
                          int batch) {
    ivec ids = {NULL, 0, 0};
    kv_cache c;
    scratch s;
    int start, p, n;
    text_tokens(tk, path, &ids);
    n = (int)ids.n - skip;
    if (n < 2) fail("--calib: %s has %zu tokens, not enough after skipping %d", path, ids.n, skip);
    if (n > n_max) n = n_max;
    memset(cs, 0, sizeof *cs);
    cs->n_max = (size_t)n;
    cs->row = (size_t)m->n_head_kv * (size_t)m->head_dim;
    cs->rope.head_dim = m->head_dim;
    cs->rope.n_heads = m->n_head_kv;
    cs->rope.style = KVTC_ROPE_INTERLEAVED;
    cs->rope.theta = m->rope_theta;
    cs->n = (size_t *)xcalloc((size_t)m->n_layer * 2, sizeof(size_t));
    cs->x = (float *)xmalloc((size_t)m->n_layer * 2 * cs->n_max, cs->row * sizeof(float));
    cs->d = m->head_dim;
    cs->grp = m->n_head / m->n_head_kv;
    cs->qm = (double *)xcalloc((size_t)m->n_layer * (size_t)m->n_head_kv, (size_t)m->head_dim * (size_t)m->head_dim * sizeof(double));
    cs->nq = (size_t *)xcalloc((size_t)m->n_layer, sizeof(size_t));
    kv_init(&c, m, ctx, rt_calib_collect, cs, 0, 0);
    c.query = rt_calib_query;
    c.query_user = cs;
    scratch_init(&s, m, batch, ctx);
    for (start = 0; start < n; start += ctx)
        for (p = 0; p < ctx && start + p < n; p += batch) {
            int T = batch;
            if (T > ctx - p) T = ctx - p;
            if (T > n - start - p) T = n - start - p;
            forward(m, &s, &c, ids.v + skip + start + p, T, p, NULL, 0);
        }
    printf("calibration: %d tokens of %s from token %d, windows of %d\n", n, path, skip, ctx);
    kv_free(&c);
    scratch_free(&s);
    free(ids.v);
}

/* Per-vector budgets of r's coders, one K/V kind (kv: 0 keys, 1 values): round(bits * p) each or, with
 * r->joint, the greedy allocation of all layers' budgets at once over all their components, each
 * layer's eigenvalues divided by its mean squared norm E|x|^2 (so it minimises the sum of the layers'
 * relative errors); the per-layer greedy at the budget a layer gets there gives that layer the same
 * objective (the objective is separable). */
static void kvtc_tc_budgets(const kvtc_tc_rt *r, int n_layer, int kv, int *budget) {
    const int n = n_layer * r->n_grp, per = (int)lround((kv ? r->vbits : r->kbits) * r->p);
    double *lambda;
    uint8_t *w;
    void *scr;
    size_t sb;
    kvtc_status st;
    int k, i;
    for (k = 0; k < n; k++) budget[k] = per;
    if (!r->joint) return;
    lambda = (double *)xmalloc((size_t)n * (size_t)r->p, sizeof(double));
    w = (uint8_t *)xmalloc((size_t)n * (size_t)r->p, 1);
    for (k = 0; k < n; k++) {
        const kvtc_tc_calib *c = r->calib[(size_t)k * 2 + (size_t)kv];
        double msq = c->total_variance;
        for (i = 0; i < c->dim; i++) msq += (double)c->mean[i] * c->mean[i];
        for (i = 0; i < r->p; i++) lambda[(size_t)k * r->p + i] = i < c->rank && msq > 0.0 ? c->eigenvalues[i] / msq : 0.0;
    }
    if ((st = kvtc_bit_alloc_scratch_bytes(n * r->p, &sb)) != KVTC_OK) fail("kvtc_bit_alloc_scratch_bytes: %s", kvtc_status_string(st));
    scr = xmalloc(sb, 1);
    st = kvtc_bit_alloc(lambda, n * r->p, (int64_t)per * n, 8, w, (size_t)n * r->p, scr, sb, NULL);
    if (st != KVTC_OK) fail("kvtc_bit_alloc: %s", kvtc_status_string(st));
    for (k = 0; k < n; k++) {
        budget[k] = 0;
        for (i = 0; i < r->p; i++) budget[k] += w[(size_t)k * r->p + i];
        if (budget[k] < 1) budget[k] = 1; /* the library's smallest budget; counted in the record like any other */
    }
    free(scr);
    free(w);
    free(lambda);
}

/* -qw: the error of a coded pre-RoPE key e shifts the logit of a query q read at distance delta by
 * q^T R_delta e (R_delta: RoPE by delta), so its mean square is e^T M e with
 *   M = mean over the group's queries and over delta in [d0, ctx) of R_delta q q^T R_delta^T,
 * d0 the window (coded keys are read from that distance on); the queries are those of every token of
 * the run's calibration forward (the largest -calN of the run). With A = M^(1/2), coding A k under the
 * squared error minimises exactly that; A^-1 maps the decoded A k back. Pair i (coordinates 2i,
 * 2i+1) turns by delta w_i, R_i = c I + s J with J = [[0, -1], [1, 0]], so each 2x2 block of M is
 *   mean(R_i M_ij R_j^T) = E[c_i c_j] M_ij - E[c_i s_j] M_ij J + E[s_i c_j] J M_ij - E[s_i s_j] J M_ij J,
 * the four means over delta computed once. Eigenvalues of M below 1e-6 of the largest are raised to
 * it (directions no query reads; A^-1 stays bounded). */
static void kvtc_qw_setup(kvtc_tc_rt *r, const calib_set *cs, const model *m, int ctx, int d0) {
    const int d = m->head_dim, np = d / 2, n_kv = m->n_head_kv;
    double *e = (double *)xcalloc((size_t)np * np * 4, sizeof(double)); /* [i][j]: E[cc], E[cs], E[sc], E[ss] */
    double *om = (double *)xmalloc((size_t)np, sizeof(double));
    double *mm = (double *)xmalloc((size_t)d * d, sizeof(double)), *v = (double *)xmalloc((size_t)d * d, sizeof(double));
    double w[MAX_HEAD_DIM], c[MAX_HEAD_DIM / 2], sn[MAX_HEAD_DIM / 2];
    void *scr;
    size_t sb, k;
    int i, j, a, b, delta;
    kvtc_status st;
    if ((st = kvtc_eig_sym_scratch_bytes(d, &sb)) != KVTC_OK) fail("kvtc_eig_sym_scratch_bytes: %s", kvtc_status_string(st));
    scr = xmalloc(sb, 1);
    if (d0 > ctx - 1) d0 = ctx - 1;
    for (i = 0; i < np; i++) om[i] = pow((double)m->rope_theta, -2.0 * i / (double)d);
    for (delta = d0; delta < ctx; delta++) {
        for (i = 0; i < np; i++) c[i] = cos(delta * om[i]), sn[i] = sin(delta * om[i]);
        for (i = 0; i < np; i++)
            for (j = 0; j < np; j++) {
                double *ej = e + ((size_t)i * np + j) * 4;
                ej[0] += c[i] * c[j], ej[1] += c[i] * sn[j], ej[2] += sn[i] * c[j], ej[3] += sn[i] * sn[j];
            }
    }
    for (k = 0; k < (size_t)np * np * 4; k++) e[k] /= (double)(ctx - d0);
    r->qa = (float *)xmalloc((size_t)m->n_layer * n_kv, (size_t)d * d * sizeof(float));
    r->qai = (float *)xmalloc((size_t)m->n_layer * n_kv, (size_t)d * d * sizeof(float));
    for (k = 0; k < (size_t)m->n_layer * n_kv; k++) {
        const double *q = cs->qm + k * (size_t)d * d;
        double wmax;
        for (i = 0; i < np; i++)
            for (j = 0; j < np; j++) {
                const double *ej = e + ((size_t)i * np + j) * 4;
                /* the 2x2 block (i, j) of the query moment, from its upper triangle */
                double m00, m01, m10, m11, o[4];
                a = 2 * i, b = 2 * j;
                m00 = a <= b ? q[(size_t)a * d + b] : q[(size_t)b * d + a];
                m01 = a <= b + 1 ? q[(size_t)a * d + b + 1] : q[(size_t)(b + 1) * d + a];
                m10 = a + 1 <= b ? q[(size_t)(a + 1) * d + b] : q[(size_t)b * d + a + 1];
                m11 = a + 1 <= b + 1 ? q[(size_t)(a + 1) * d + b + 1] : q[(size_t)(b + 1) * d + a + 1];
                /* M, M J = [[m01, -m00], [m11, -m10]], J M = [[-m10, -m11], [m00, m01]], J M J = [[-m11, m10], [m01, -m00]] */
                o[0] = ej[0] * m00 - ej[1] * m01 + ej[2] * -m10 - ej[3] * -m11;
                o[1] = ej[0] * m01 - ej[1] * -m00 + ej[2] * -m11 - ej[3] * m10;
                o[2] = ej[0] * m10 - ej[1] * m11 + ej[2] * m00 - ej[3] * m01;
                o[3] = ej[0] * m11 - ej[1] * -m10 + ej[2] * m01 - ej[3] * -m00;
                mm[(size_t)a * d + b] = o[0], mm[(size_t)a * d + b + 1] = o[1];
                mm[(size_t)(a + 1) * d + b] = o[2], mm[(size_t)(a + 1) * d + b + 1] = o[3];
            }
        for (i = 0; i < d; i++) /* symmetrise against rounding */
            for (j = i + 1; j < d; j++) mm[(size_t)i * d + j] = mm[(size_t)j * d + i] = 0.5 * (mm[(size_t)i * d + j] + mm[(size_t)j * d + i]);
        if ((st = kvtc_eig_sym(mm, d, w, (size_t)d, v, (size_t)d * d, scr, sb)) != KVTC_OK) fail("kvtc_eig_sym: %s", kvtc_status_string(st));
        wmax = w[0] > 0.0 ? w[0] : 1.0;
        for (i = 0; i < d; i++) w[i] = w[i] > 1e-6 * wmax ? w[i] : 1e-6 * wmax;
        for (i = 0; i < d; i++)
            for (j = 0; j < d; j++) {
                double sa = 0.0, si = 0.0;
                for (a = 0; a < d; a++) {
                    const double vv = v[(size_t)a * d + i] * v[(size_t)a * d + j];
                    sa += sqrt(w[a]) * vv;
                    si += vv / sqrt(w[a]);
                }
                r->qa[k * (size_t)d * d + (size_t)i * d + j] = (float)sa;
                r->qai[k * (size_t)d * d + (size_t)i * d + j] = (float)si;
            }
    }
    free(scr);
    free(v);
    free(mm);
    free(om);
    free(e);
}

/* Calibrate r's bases from the first n_cal samples of cs, leaving out the positions < sink (they are
 * never coded), and build its coders; kb, vb: bits per coordinate of keys and values in the library's
 * record of a ctx-token chunk with sink and window tokens in fp16, every byte counted. */
static void kvtc_tc_build(kvtc_tc_rt *r, const calib_set *cs, const model *m, int ctx, int sink, int win, double *kb, double *vb) {
    const size_t n_slots = (size_t)m->n_layer * (size_t)r->n_grp * 2, n_cal = (size_t)r->n_cal < cs->n_max ? (size_t)r->n_cal : cs->n_max;
    float *buf = (float *)xmalloc(n_cal, (size_t)r->p * sizeof(float));
    int *budget = (int *)xmalloc(n_slots, sizeof(int));
    double bytes[2] = {0.0, 0.0};
    size_t k, i, n = 0, need;
    int b_min[2] = {1 << 30, 1 << 30}, b_max[2] = {0, 0};
    r->rope.head_dim = m->head_dim;
    r->rope.n_heads = r->p / m->head_dim;
    r->rope.style = KVTC_ROPE_INTERLEAVED;
    r->rope.theta = m->rope_theta;
    r->calib = (kvtc_tc_calib **)xcalloc(n_slots, sizeof(kvtc_tc_calib *));
    r->tc = (kvtc_tc **)xcalloc(n_slots, sizeof(kvtc_tc *));
    if (r->qw) kvtc_qw_setup(r, cs, m, ctx, win);
    for (k = 0; k < n_slots; k++) {
        const size_t layer = k / 2 / (size_t)r->n_grp, g = k / 2 % (size_t)r->n_grp, kv = k % 2;
        const float *src = cs->x + (layer * 2 + kv) * cs->n_max * cs->row + g * (size_t)r->p;
        kvtc_tc_calib_params cp;
        kvtc_status st;
        for (i = n = 0; i < n_cal && i < cs->n[layer * 2 + kv]; i++)
            if (i % (size_t)ctx >= (size_t)sink) {
                memcpy(buf + n * (size_t)r->p, src + i * cs->row, (size_t)r->p * sizeof(float));
                if (kv == 0 && r->qw) kvtc_qw_apply(r->qa, r, (int)layer, (int)g, buf + n * (size_t)r->p, m->head_dim);
                n++;
            }
        memset(&cp, 0, sizeof cp);
        cp.dim = r->p;
        if ((st = kvtc_tc_calibrate(&cp, buf, n, &r->calib[k])) != KVTC_OK) fail("kvtc_tc_calibrate: %s", kvtc_status_string(st));
    }
    /* budget[k] for slot k = (layer * n_grp + g) * 2 + kv */
    for (i = 0; i < 2; i++) {
        int *bk = (int *)xmalloc(n_slots / 2, sizeof(int));
        kvtc_tc_budgets(r, m->n_layer, (int)i, bk);
        for (k = 0; k < n_slots / 2; k++) {
            budget[k * 2 + i] = bk[k];
            if (bk[k] < b_min[i]) b_min[i] = bk[k];
            if (bk[k] > b_max[i]) b_max[i] = bk[k];
        }
        free(bk);
    }
    for (k = 0; k < n_slots; k++) {
        kvtc_tc_params tp;
        kvtc_tc *acc = NULL;
        kvtc_status st;
        memset(&tp, 0, sizeof tp);
        tp.budget_bits = budget[k];
        /* the chunk the bits are counted on: ctx tokens, sink and window tokens in fp16 */
        tp.n_sink = sink ? sink : KVTC_TC_NONE;
        tp.n_window = win ? win : KVTC_TC_NONE;
        if ((st = kvtc_tc_create(&tp, r->calib[k], &acc)) != KVTC_OK) fail("kvtc_tc_create: %s", kvtc_status_string(st));
        if ((st = kvtc_tc_chunk_bytes(acc, (size_t)ctx, &need)) != KVTC_OK) fail("kvtc_tc_chunk_bytes: %s", kvtc_status_string(st));
        bytes[k % 2] += (double)need;
        kvtc_tc_destroy(acc);
        /* the coder of the test cache: one-token records, no fp16 tokens in them */
        tp.n_sink = KVTC_TC_NONE;
        tp.n_window = KVTC_TC_NONE;
        if ((st = kvtc_tc_create(&tp, r->calib[k], &r->tc[k])) != KVTC_OK) fail("kvtc_tc_create: %s", kvtc_status_string(st));
        if ((st = kvtc_tc_scratch_bytes(r->tc[k], 1, &need)) != KVTC_OK) fail("kvtc_tc_scratch_bytes: %s", kvtc_status_string(st));
        if (need > r->scratch_bytes) r->scratch_bytes = need;
        if ((st = kvtc_tc_chunk_bytes(r->tc[k], 1, &need)) != KVTC_OK) fail("kvtc_tc_chunk_bytes: %s", kvtc_status_string(st));
        if (need > r->rec_bytes) r->rec_bytes = need;
    }
    r->scratch = xmalloc(r->scratch_bytes, 1);
    r->rec = (unsigned char *)xmalloc(r->rec_bytes, 1);
    *kb = 8.0 * bytes[0] / ((double)(n_slots / 2) * (double)ctx * r->p);
    *vb = 8.0 * bytes[1] / ((double)(n_slots / 2) * (double)ctx * r->p);
    printf("kvtc KVTC: %zu bases (%s x K/V, p = %d) from %zu vectors each, budgets %d..%d / %d..%d bits per key / value vector;"
           " keys %.3f, values %.3f bits per coordinate in %d-token chunks, %.2fx vs fp16, all bytes counted\n",
           n_slots, r->n_grp > 1 ? "layer x KV head" : "layer", r->p, n, b_min[0], b_max[0], b_min[1], b_max[1], *kb, *vb, ctx,
           32.0 / (*kb + *vb));
    if (r->joint) {
        printf("  budgets per basis, keys:");
        for (k = 0; k < n_slots; k += 2) printf(" %d", budget[k]);
        printf("\n  values:");
        for (k = 1; k < n_slots; k += 2) printf(" %d", budget[k]);
        printf("\n");
    }
    free(budget);
    free(buf);
}

static void kvtc_tc_free(kvtc_tc_rt *r, int n_layer) {
    size_t k, n_slots = (size_t)n_layer * (size_t)r->n_grp * 2;
    for (k = 0; k < n_slots && r->tc; k++) {
        kvtc_tc_destroy(r->tc[k]);
        kvtc_tc_calib_destroy(r->calib[k]);
    }
    free(r->tc);
    free(r->calib);
    free(r->scratch);
    free(r->rec);
    free(r->qa);
    free(r->qai);
    free(r);
}

/* One test cache of an eval: its roundtrip, its cache, its logits and its running statistics. */
typedef struct {
    char name[64];
    kv_roundtrip_fn rt;
    void *user;
    int bits;          /* the int a test_caches[] roundtrip reads */
    kvtc_rt *kr;       /* kvtc_cfgs[] caches */
    kvtc_tc_rt *kt;    /* KVTC caches */
    int sink, win;     /* exact positions (-sinkS, -winW) */
    double kb, vb;     /* bits per coordinate of a coded key / value (kvtc caches; 0 if not known) */
    double ekb, evb;   /* the same at a full --ctx cache, exact vectors counted as fp16 (KVTC: whole records) */
    kv_cache c;
    float *logits;
    double nll, kl_sum, kl_max;
    long n_agree;
} eval_test;

/* digits only, at least one, value in [0, 2^30) */
static int parse_suffix(const char *tok, size_t len, const char *key, int *out) {
    const size_t kl = strlen(key);
    size_t i;
    long v = 0;
    if (len <= kl || memcmp(tok, key, kl) != 0) return 0;
    for (i = kl; i < len; i++) {
        if (tok[i] < '0' || tok[i] > '9' || v > (1L << 26)) return 0;
        v = v * 10 + (tok[i] - '0');
    }
    *out = (int)v;
    return 1;
}

/* NAME = BASE[-sinkS][-winW][-calN] (suffixes in any order): exact positions and calibration tokens */
static void eval_test_setup(eval_test *t, const model *m, const char *name, int ctx) {
    char base[64];
    const char *p = name;
    size_t k, blen = 0;
    int n_cal = -1, edge = 0;
    double kb, vb;
    memset(t, 0, sizeof *t);
    if (strlen(name) >= sizeof t->name) fail("--compare: name too long: %s", name);
    strcpy(t->name, name);
    while (*p) {
        const size_t len = strcspn(p, "-");
        if (blen == 0 || !(parse_suffix(p, len, "sink", &t->sink) || parse_suffix(p, len, "win", &t->win) ||
                           parse_suffix(p, len, "cal", &n_cal))) {
            if (blen) base[blen++] = '-';
            memcpy(base + blen, p, len);
            blen += len;
        }
        p += len + (p[len] == '-');
    }
    base[blen] = 0;
    t->user = &t->bits;
    for (k = 0; k < sizeof test_caches / sizeof test_caches[0]; k++)
        if (strcmp(base, test_caches[k].name) == 0) { t->rt = test_caches[k].fn; t->bits = test_caches[k].arg; }
    for (k = 0; !t->rt && k < sizeof kvtc_cfgs / sizeof kvtc_cfgs[0]; k++)
        if (strcmp(base, kvtc_cfgs[k].name) == 0) {
            kvtc_rt *kr = (kvtc_rt *)xcalloc(1, sizeof *kr);
            kr->cfg = &kvtc_cfgs[k];
            /* fixed seeds, one codec for all keys and one for all values */
            kr->k = kvtc_make(kr->cfg->km, kr->cfg->kb, kr->cfg->corr, m->head_dim, 1);
            kr->v = kvtc_make(kr->cfg->vm, kr->cfg->vb, kr->cfg->corr, m->head_dim, 2);
            kr->n_layers = m->n_layer;
            if (kvtc_codec_bits_per_coord(kr->k, &t->kb) != KVTC_OK || kvtc_codec_bits_per_coord(kr->v, &t->vb) != KVTC_OK)
                fail("kvtc_codec_bits_per_coord");
            edge = kr->cfg->edge;
            t->rt = rt_kvtc;
            t->user = kr;
            t->kr = kr;
        }
    if (!t->rt) {
        kvtc_tc_rt *r = (kvtc_tc_rt *)xcalloc(1, sizeof *r);
        const char *spec = NULL;
        char *end;
        if (strcmp(base, "kvtc8x") == 0) spec = "k2v2";
        else if (strcmp(base, "kvtc16x") == 0) spec = "k1v1";
        else if (strncmp(base, "kvtc-head-", 10) == 0) spec = base + 10;
        else if (strncmp(base, "kvtc-layer-", 11) == 0) spec = base + 11, r->by_layer = 1;
        if (spec && spec[0] == 'k') {
            r->kbits = strtod(spec + 1, &end);
            if (*end == 'v') r->vbits = strtod(end + 1, &end);
            if (strncmp(end, "-joint", 6) == 0) r->joint = 1, end += 6;
            if (strcmp(end, "-qw") == 0) r->qw = 1, end += 3;
            if (*end || !(r->kbits > 0.0 && r->kbits <= 16.0 && r->vbits > 0.0 && r->vbits <= 16.0)) spec = NULL;
        } else {
            spec = NULL;
        }
        if (!spec) {
            free(r);
            fail("--compare: unknown test cache %s (see test_caches[], kvtc_cfgs[] and the KVTC names in the source)", name);
        }
        r->n_cal = n_cal >= 0 ? n_cal : 2048;
        r->n_grp = r->by_layer ? 1 : m->n_head_kv;
        r->p = r->by_layer ? m->n_head_kv * m->head_dim : m->head_dim;
        t->kb = r->kbits;
        t->vb = r->vbits;
        t->rt = rt_kvtc_tc;
        t->user = r;
        t->kt = r;
    } else if (n_cal >= 0) {
        fail("--compare %s: -cal applies to KVTC caches only", name);
    }
    if (t->sink + t->win > ctx) fail("--compare %s: sink and window exceed --ctx %d", name, ctx);
    /* bits at a full cache of ctx positions: exact positions (and edge layers) as fp16 */
    kb = ((t->sink + t->win) * 16.0 + (ctx - t->sink - t->win) * t->kb) / ctx;
    vb = ((t->sink + t->win) * 16.0 + (ctx - t->sink - t->win) * t->vb) / ctx;
    t->ekb = edge ? (2 * 16.0 + (m->n_layer - 2) * kb) / m->n_layer : kb;
    t->evb = edge ? (2 * 16.0 + (m->n_layer - 2) * vb) / m->n_layer : vb;
    if (t->kr)
        printf("kvtc %s: keys %.3f, values %.3f bits per coordinate (norms included), mean %.3f, %.2fx vs fp16;"
               " at a full %d-token cache, exact vectors as fp16: %.3f bits, %.2fx\n", name, t->kb, t->vb, 0.5 * (t->kb + t->vb),
               32.0 / (t->kb + t->vb), ctx, 0.5 * (t->ekb + t->evb), 32.0 / (t->ekb + t->evb));
}

static void eval_test_report(const eval_test *t, long n_pred, double nll_ref, int n_layer) {
    const double ppl = exp(t->nll / (double)n_pred), ppl_ref = exp(nll_ref / (double)n_pred);
    static const char *what[5] = {"K rel. MSE", "V rel. MSE", "attn cos", "attn top-1 %", "attn top-5 %"};
    double se[2] = {0.0, 0.0}, cos_min = 2.0, top1_min = 2.0, sum[3] = {0.0, 0.0, 0.0}, hits = 0.0, hn = 0.0;
    long sc[2] = {0, 0};
    int l, w, l_cos = 0, l_top1 = 0;
    printf("test cache %-12s ppl %.4f (%+.3f%%)  mean KL(ref||test) %.6g  max KL %.6g  top-1 agreement %.4f%%\n", t->name, ppl,
           100.0 * (ppl / ppl_ref - 1.0), t->kl_sum / (double)n_pred, t->kl_max, 100.0 * (double)t->n_agree / (double)n_pred);
    /* per layer: relative MSE = mean over coded head vectors of |x - x'|^2 / |x|^2 ("exact": none coded);
     * attention = mean over queries (token x query head) against attention over the exact cache */
    for (w = 0; w < 5; w++) {
        printf("  %s %-12s per layer:", t->name, what[w]);
        for (l = 0; l < n_layer; l++) {
            const kv_layer_stats *st = &t->c.stats[l];
            const double nq = st->n_q ? (double)st->n_q : 1.0;
            if (w < 2 && st->n_err[1 - w]) printf(" %.4f", st->err[1 - w] / (double)st->n_err[1 - w]);
            else if (w < 2) printf(" exact");
            else if (w == 2) printf(" %.5f", st->cos / nq);
            else printf(" %.2f", 100.0 * (double)(w == 3 ? st->top1 : st->top5) / nq);
        }
        printf("\n");
    }
    for (l = 0; l < n_layer; l++) {
        const kv_layer_stats *st = &t->c.stats[l];
        const double nq = st->n_q ? (double)st->n_q : 1.0;
        se[0] += st->err[1]; sc[0] += st->n_err[1];
        se[1] += st->err[0]; sc[1] += st->n_err[0];
        sum[0] += st->cos / nq / n_layer;
        sum[1] += (double)st->top1 / nq / n_layer;
        sum[2] += (double)st->top5 / nq / n_layer;
        hits += (double)st->top5_hits;
        hn += (double)st->top5_n;
        if (st->cos / nq < cos_min) cos_min = st->cos / nq, l_cos = l;
        if ((double)st->top1 / nq < top1_min) top1_min = (double)st->top1 / nq, l_top1 = l;
    }
    printf("  %s summary: rel. MSE K %.5f, V %.5f (all coded vectors); attention cos %.5f (worst: layer %d, %.5f),"
           " top-1 %.2f%% (worst: layer %d, %.2f%%), top-5 set %.2f%%, top-5 overlap %.2f%%\n", t->name,
           sc[0] ? se[0] / (double)sc[0] : 0.0, sc[1] ? se[1] / (double)sc[1] : 0.0, sum[0], l_cos, cos_min, 100.0 * sum[1], l_top1,
           100.0 * top1_min, 100.0 * sum[2], hn > 0.0 ? 100.0 * hits / hn : 100.0);
}

/* --compare A,B,C: the fp32 reference and every test cache run side by side over the same windows,
 * so the reference forward is computed once for all of them. KVTC caches share one calibration run. */
static void run_eval(const model *m, const tokenizer *tk, const char *path, int ctx, int n_tokens, const char *compare, int batch,
                     const char *calib_path, int calib_skip) {
    ivec ids = {NULL, 0, 0};
    kv_cache ref;
    scratch s;
    float *lr;
    double nll_ref = 0.0, t0, t_fwd = 0.0;
    long n_pred = 0, n_fwd = 0;
    int start, n_win = 0, V = m->n_vocab, n_test = 0, i, n_cal = 0;
    eval_test *tests = NULL;
    text_tokens(tk, path, &ids);
    if (ids.n < 2) fail("%s has fewer than 2 tokens", path);
    if ((size_t)n_tokens > ids.n) {
        fprintf(stderr, "smollm2: note: %s has only %zu tokens; evaluating all of them\n", path, ids.n);
        n_tokens = (int)ids.n;
    }
    if (compare) {
        const char *p = compare;
        char name[64];
        n_test = 1;
        for (p = compare; *p; p++) n_test += *p == ',';
        tests = (eval_test *)xcalloc((size_t)n_test, sizeof(eval_test));
        for (i = 0, p = compare; i < n_test; i++) {
            size_t len = strcspn(p, ",");
            if (len == 0 || len >= sizeof name) fail("--compare: bad list \"%s\"", compare);
            memcpy(name, p, len);
            name[len] = 0;
            eval_test_setup(&tests[i], m, name, ctx);
            if (tests[i].kt && tests[i].kt->n_cal > n_cal) n_cal = tests[i].kt->n_cal;
            p += len + (p[len] == ',');
        }
    }
    if (n_cal > 0) {
        calib_set cs;
        calib_collect(m, tk, &cs, calib_path, calib_skip, n_cal, ctx, batch);
        for (i = 0; i < n_test; i++)
            if (tests[i].kt) {
                printf("%s: ", tests[i].name);
                kvtc_tc_build(tests[i].kt, &cs, m, ctx, tests[i].sink, tests[i].win, &tests[i].ekb, &tests[i].evb);
            }
        free(cs.x);
        free(cs.n);
        free(cs.qm);
        free(cs.nq);
    }
    for (i = 0; i < n_test; i++) {
        kv_init(&tests[i].c, m, ctx, tests[i].rt, tests[i].user, tests[i].sink, tests[i].win);
        tests[i].logits = (float *)xmalloc((size_t)batch * (size_t)m->n_vocab, sizeof(float));
    }
    kv_init(&ref, m, ctx, NULL, NULL, 0, 0);
    scratch_init(&s, m, batch, ctx);
    lr = (float *)xmalloc((size_t)batch * (size_t)V, sizeof(float));
    for (start = 0; start + 1 < n_tokens; start += ctx) {
        const int len = n_tokens - start < ctx ? n_tokens - start : ctx;
        int p, j;
        n_win++;
        for (p = 0; p < len; p += batch) {
            const int T = len - p < batch ? len - p : batch;
            t0 = now_s();
            forward(m, &s, &ref, ids.v + start + p, T, p, lr, 1);
            for (i = 0; i < n_test; i++) forward(m, &s, &tests[i].c, ids.v + start + p, T, p, tests[i].logits, 1);
            t_fwd += now_s() - t0;
            n_fwd += T;
            for (j = 0; j < T && p + j + 1 < len; j++) {
                const int target = ids.v[start + p + j + 1];
                const float *a = lr + (size_t)j * V;
                const double lse_a = logsumexp(a, V);
                const int top_a = argmax(a, V);
                nll_ref += lse_a - a[target];
                for (i = 0; i < n_test; i++) {
                    eval_test *t = &tests[i];
                    const float *b = t->logits + (size_t)j * V;
                    double kl = kl_div(a, b, V);
                    t->nll += logsumexp(b, V) - b[target];
                    t->kl_sum += kl;
                    t->kl_max = kl > t->kl_max ? kl : t->kl_max;
                    t->n_agree += top_a == argmax(b, V);
                }
                n_pred++;
            }
        }
        fprintf(stderr, "  window %d: %d tokens, running ppl %.4f", n_win, len, exp(nll_ref / (double)n_pred));
        for (i = 0; i < n_test; i++) fprintf(stderr, ", %s %.4f", tests[i].name, exp(tests[i].nll / (double)n_pred));
        fprintf(stderr, "\n");
    }
    printf("eval %s: %d tokens, %d window(s) of up to %d, %ld predictions\n", path, n_tokens, n_win, ctx, n_pred);
    printf("ref  cache fp32:         ppl %.4f\n", exp(nll_ref / (double)n_pred));
    for (i = 0; i < n_test; i++) eval_test_report(&tests[i], n_pred, nll_ref, m->n_layer);
    if (n_test) {
        const double ppl_ref = exp(nll_ref / (double)n_pred);
        printf("| cache | K bits | V bits | bits/coord at a full %d-token cache | ratio vs fp16 | ppl | delta ppl | mean KL | top-1 |\n", ctx);
        for (i = 0; i < n_test; i++) {
            const eval_test *t = &tests[i];
            const double ppl = exp(t->nll / (double)n_pred);
            if (t->kb > 0.0)
                printf("| %s | %.2f | %.2f | %.3f | %.2fx | %.4f | %+.2f%% | %.4g | %.2f%% |\n", t->name, t->kb, t->vb,
                       0.5 * (t->ekb + t->evb), 32.0 / (t->ekb + t->evb), ppl, 100.0 * (ppl / ppl_ref - 1.0),
                       t->kl_sum / (double)n_pred, 100.0 * (double)t->n_agree / (double)n_pred);
            else
                printf("| %s | - | - | - | - | %.4f | %+.2f%% | %.4g | %.2f%% |\n", t->name, ppl, 100.0 * (ppl / ppl_ref - 1.0),
                       t->kl_sum / (double)n_pred, 100.0 * (double)t->n_agree / (double)n_pred);
        }
    }
    printf("forward speed: %.1f tokens/s (batch %d, %d cache%s, CPU time of one core)\n", (double)n_fwd * (1 + n_test) / t_fwd, batch,
           1 + n_test, n_test ? "s" : "");
    kv_free(&ref);
    scratch_free(&s);
    for (i = 0; i < n_test; i++) {
        eval_test *t = &tests[i];
        kv_free(&t->c);
        free(t->logits);
        if (t->kr) {
            kvtc_codec_destroy(t->kr->k);
            kvtc_codec_destroy(t->kr->v);
            free(t->kr);
        }
        if (t->kt) kvtc_tc_free(t->kt, m->n_layer);
    }
    free(tests);
    free(lr);
    free(ids.v);
}

static void run_generate(const model *m, const tokenizer *tk, const char *prompt, int n_gen, int chat, int batch) {
    ivec ids = {NULL, 0, 0};
    scratch s;
    kv_cache c;
    float *logits = (float *)xmalloc((size_t)m->n_vocab, sizeof(float));
    char *text = NULL, piece[16384];
    size_t plen = strlen(prompt);
    int p, i, n_ctx, n_prompt;
    double t0, t_prompt, t_gen;
    if (chat) {
        static const char pre[] = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\n";
        static const char post[] = "<|im_end|>\n<|im_start|>assistant\n";
        text = (char *)xmalloc(plen + sizeof pre + sizeof post, 1);
        memcpy(text, pre, sizeof pre - 1);
        memcpy(text + sizeof pre - 1, prompt, plen);
        memcpy(text + sizeof pre - 1 + plen, post, sizeof post);
    }
    tokenize(tk, (const uint8_t *)(text ? text : prompt), text ? strlen(text) : plen, &ids);
    if (ids.n == 0) fail("the prompt has no tokens");
    if (ids.n + (size_t)n_gen > (size_t)m->n_ctx_train) fail("prompt (%zu tokens) + --n %d exceeds the context (%d)", ids.n, n_gen, m->n_ctx_train);
    n_prompt = (int)ids.n;
    n_ctx = n_prompt + n_gen;
    kv_init(&c, m, n_ctx, NULL, NULL, 0, 0);
    scratch_init(&s, m, batch, n_ctx);
    t0 = now_s();
    for (p = 0; p < (int)ids.n; p += batch) {
        int T = (int)ids.n - p < batch ? (int)ids.n - p : batch;
        forward(m, &s, &c, ids.v + p, T, p, logits, 0);
    }
    t_prompt = now_s() - t0;
    fwrite(text ? text : prompt, 1, text ? strlen(text) : plen, stdout);
    fflush(stdout);
    t0 = now_s();
    for (i = 0; i < n_gen; i++) {
        int next = argmax(logits, m->n_vocab);
        if (next == tk->eos || next == 0) break;
        fwrite(piece, 1, detokenize(tk, next, piece), stdout);
        fflush(stdout);
        ivec_push(&ids, next);
        if (i + 1 < n_gen) forward(m, &s, &c, &next, 1, (int)ids.n - 1, logits, 0);
    }
    t_gen = now_s() - t0;
    printf("\n");
    fprintf(stderr, "smollm2: prompt %d tokens at %.1f tokens/s; generated %d tokens at %.1f tokens/s (CPU time, one core)\n", n_prompt,
            (double)n_prompt / (t_prompt > 0 ? t_prompt : 1e-9), i, (double)i / (t_gen > 0 ? t_gen : 1e-9));
    kv_free(&c);
    scratch_free(&s);
    free(logits);
    free(text);
    free(ids.v);
}

static void run_logits(const model *m, const tokenizer *tk, const char *prompt, const char *out_path, int batch) {
    ivec ids = {NULL, 0, 0};
    scratch s;
    kv_cache c;
    float *logits = (float *)xmalloc((size_t)m->n_vocab, sizeof(float));
    uint8_t *bytes = (uint8_t *)xmalloc((size_t)m->n_vocab, 4);
    FILE *f;
    int p, i;
    tokenize(tk, (const uint8_t *)prompt, strlen(prompt), &ids);
    if (ids.n == 0 || ids.n > (size_t)m->n_ctx_train) fail("the prompt has %zu tokens", ids.n);
    kv_init(&c, m, (int)ids.n, NULL, NULL, 0, 0);
    scratch_init(&s, m, batch, (int)ids.n);
    for (p = 0; p < (int)ids.n; p += batch) {
        int T = (int)ids.n - p < batch ? (int)ids.n - p : batch;
        forward(m, &s, &c, ids.v + p, T, p, logits, 0);
    }
    for (i = 0; i < m->n_vocab; i++) { uint32_t b; memcpy(&b, &logits[i], 4); wr32le(bytes + 4 * (size_t)i, b); }
    f = fopen(out_path, "wb");
    if (!f || fwrite(bytes, 4, (size_t)m->n_vocab, f) != (size_t)m->n_vocab || fclose(f) != 0) fail("cannot write %s", out_path);
    printf("%zu tokens; top-1 next token %d; %d logits written to %s\n", ids.n, argmax(logits, m->n_vocab), m->n_vocab, out_path);
    kv_free(&c);
    scratch_free(&s);
    free(bytes);
    free(logits);
    free(ids.v);
}

/* Format of a KV dump (all little-endian), documented in data/README.md:
 *   0 "KVTCKV01" | 8 u32 version = 1 | 12 u32 n_layers dumped | 16 u32 n_kv_heads | 20 u32 head_dim
 *  24 u32 n_tokens | 28 f32 rope theta | 32 u32 rope convention (0: pairs (2i, 2i+1)) | 36 u32 dtype (0 f32, 1 f16)
 *  40 u32 n_layers of the model | 44 u8 layer ids[16] (0xFF unused) | 60 u32 reserved = 0
 *  64 K [layer][token][kv_head][head_dim], then V with the same shape */
static void run_dump_kv(const model *m, const tokenizer *tk, const char *text_path, const char *out_path, int n_tok,
                        const int *layers, int n_layers, int as_f32, int batch) {
    ivec ids = {NULL, 0, 0};
    scratch s;
    kv_cache c;
    uint8_t hdr[64];
    FILE *f;
    int p, li, t, h, d, kv, esz = as_f32 ? 4 : 2;
    uint8_t *row = (uint8_t *)xmalloc((size_t)m->head_dim, 4);
    float theta = m->rope_theta;
    uint32_t tb;
    text_tokens(tk, text_path, &ids);
    if (ids.n < (size_t)n_tok) fail("%s has only %zu tokens, fewer than --dump-tokens %d", text_path, ids.n, n_tok);
    kv_init(&c, m, n_tok, NULL, NULL, 0, 0);
    scratch_init(&s, m, batch, n_tok);
    for (p = 0; p < n_tok; p += batch) forward(m, &s, &c, ids.v + p, n_tok - p < batch ? n_tok - p : batch, p, NULL, 0);
    memset(hdr, 0, sizeof hdr);
    memcpy(hdr, "KVTCKV01", 8);
    wr32le(hdr + 8, 1);
    wr32le(hdr + 12, (uint32_t)n_layers);
    wr32le(hdr + 16, (uint32_t)m->n_head_kv);
    wr32le(hdr + 20, (uint32_t)m->head_dim);
    wr32le(hdr + 24, (uint32_t)n_tok);
    memcpy(&tb, &theta, 4);
    wr32le(hdr + 28, tb);
    wr32le(hdr + 32, 0);
    wr32le(hdr + 36, as_f32 ? 0u : 1u);
    wr32le(hdr + 40, (uint32_t)m->n_layer);
    memset(hdr + 44, 0xFF, 16);
    for (li = 0; li < n_layers; li++) hdr[44 + li] = (uint8_t)layers[li];
    f = fopen(out_path, "wb");
    if (!f || fwrite(hdr, 1, 64, f) != 64) fail("cannot write %s", out_path);
    for (kv = 1; kv >= 0; kv--)
        for (li = 0; li < n_layers; li++)
            for (t = 0; t < n_tok; t++)
                for (h = 0; h < m->n_head_kv; h++) {
                    const float *v = kv_read(&c, layers[li], h, kv) + (size_t)t * m->head_dim;
                    for (d = 0; d < m->head_dim; d++) {
                        if (as_f32) { uint32_t b; memcpy(&b, &v[d], 4); wr32le(row + 4 * d, b); }
                        else { uint16_t b = f32_to_f16(v[d]); row[2 * d] = (uint8_t)b; row[2 * d + 1] = (uint8_t)(b >> 8); }
                    }
                    if (fwrite(row, (size_t)esz, (size_t)m->head_dim, f) != (size_t)m->head_dim) fail("cannot write %s", out_path);
                }
    if (fclose(f) != 0) fail("cannot write %s", out_path);
    printf("wrote %s: %d tokens of %s, %d layers, %d KV heads x %d, %s\n", out_path, n_tok, text_path, n_layers, m->n_head_kv,
           m->head_dim, as_f32 ? "f32" : "f16");
    kv_free(&c);
    scratch_free(&s);
    free(row);
    free(ids.v);
}

/* ------------------------------------------------------------------ >>main */

static int parse_int(const char *s, const char *flag, int lo, int hi) {
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) fail("%s wants an integer in [%d, %d], got \"%s\"", flag, lo, hi, s);
    return (int)v;
}

static void usage(void) {
    fprintf(stderr,
            "usage: smollm2 [--model PATH] MODE\n"
            "  --info\n"
            "  --prompt TEXT [--n 64] [--chat]\n"
            "  --eval FILE [--ctx 1024] [--tokens 4096] [--compare NAME[,NAME...]] [--batch 32] [--calib data/calib.txt]\n"
            "        [--calib-skip 0]   (NAME: identity|fp16|q8|q4|tq4/4|...|kvtc-layer-k2v2, each with optional -sinkS -winW -calN)\n"
            "  --tokens-of TEXT | --tokens-of-file FILE\n"
            "  --logits TEXT OUTFILE\n"
            "  --dump-kv OUTFILE --text FILE [--dump-tokens 1024] [--dump-layers 0,1,15,29] [--dump-f32]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *model_path = "models/SmolLM2-135M-Instruct.Q4_1.gguf", *prompt = NULL, *eval = NULL, *compare = NULL;
    const char *tokens_of = NULL, *tokens_file = NULL, *logits_text = NULL, *logits_out = NULL, *dump = NULL, *dump_text = NULL;
    const char *dump_layers = "0,1,15,29", *calib = "data/calib.txt";
    int calib_skip = 0, n_gen = 64, ctx = 1024, n_tokens = 4096, batch = 32, chat = 0, info = 0, dump_tokens = 1024, dump_f32 = 0, i, modes;
    gguf g;
    model m;
    tokenizer tk;
    double t0;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
#define ARG() (i + 1 < argc ? argv[++i] : (fail("%s needs a value", a), ""))
        if (!strcmp(a, "--model")) model_path = ARG();
        else if (!strcmp(a, "--info")) info = 1;
        else if (!strcmp(a, "--prompt")) prompt = ARG();
        else if (!strcmp(a, "--n")) n_gen = parse_int(ARG(), a, 0, 1 << 20);
        else if (!strcmp(a, "--chat")) chat = 1;
        else if (!strcmp(a, "--eval")) eval = ARG();
        else if (!strcmp(a, "--ctx")) ctx = parse_int(ARG(), a, 2, 1 << 20);
        else if (!strcmp(a, "--tokens")) n_tokens = parse_int(ARG(), a, 2, 1 << 28);
        else if (!strcmp(a, "--compare")) compare = ARG();
        else if (!strcmp(a, "--batch")) batch = parse_int(ARG(), a, 1, 512);
        else if (!strcmp(a, "--calib")) calib = ARG();
        else if (!strcmp(a, "--calib-skip")) calib_skip = parse_int(ARG(), a, 0, 1 << 28);
        else if (!strcmp(a, "--tokens-of")) tokens_of = ARG();
        else if (!strcmp(a, "--tokens-of-file")) tokens_file = ARG();
        else if (!strcmp(a, "--logits")) { logits_text = ARG(); logits_out = ARG(); }
        else if (!strcmp(a, "--dump-kv")) dump = ARG();
        else if (!strcmp(a, "--text")) dump_text = ARG();
        else if (!strcmp(a, "--dump-tokens")) dump_tokens = parse_int(ARG(), a, 1, 1 << 20);
        else if (!strcmp(a, "--dump-layers")) dump_layers = ARG();
        else if (!strcmp(a, "--dump-f32")) dump_f32 = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) usage();
        else { fprintf(stderr, "smollm2: unknown argument %s\n", a); usage(); }
#undef ARG
    }
    modes = info + !!prompt + !!eval + !!tokens_of + !!tokens_file + !!logits_text + !!dump;
    if (modes != 1) usage();

    t0 = now_s();
    gguf_load(&g, model_path);
    if (info) { gguf_print_info(&g); gguf_free(&g); return 0; }
    model_load(&m, &g);
    tokenizer_load(&tk, &g, m.n_vocab);
    fprintf(stderr, "smollm2: %s: %d layers, width %d, %d heads / %d KV heads x %d, ffn %d, vocab %d, rope theta %g, loaded in %.2f s\n",
            model_path, m.n_layer, m.n_embd, m.n_head, m.n_head_kv, m.head_dim, m.n_ff, m.n_vocab, m.rope_theta, now_s() - t0);
    if (ctx > m.n_ctx_train) fail("--ctx %d exceeds the model's context %d", ctx, m.n_ctx_train);

    if (tokens_of || tokens_file) {
        ivec ids = {NULL, 0, 0};
        size_t k;
        if (tokens_of) tokenize(&tk, (const uint8_t *)tokens_of, strlen(tokens_of), &ids);
        else text_tokens(&tk, tokens_file, &ids);
        for (k = 0; k < ids.n; k++) printf(k ? " %d" : "%d", ids.v[k]);
        printf("\n");
        free(ids.v);
    } else if (prompt) {
        run_generate(&m, &tk, prompt, n_gen, chat, batch);
    } else if (eval) {
        run_eval(&m, &tk, eval, ctx, n_tokens, compare, batch, calib, calib_skip);
    } else if (logits_text) {
        run_logits(&m, &tk, logits_text, logits_out, batch);
    } else if (dump) {
        int layers[16], n_layers = 0;
        const char *p = dump_layers;
        if (!dump_text) fail("--dump-kv needs --text FILE");
        while (*p) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || v < 0 || v >= m.n_layer || n_layers == 16) fail("--dump-layers: bad list \"%s\"", dump_layers);
            layers[n_layers++] = (int)v;
            p = *end == ',' ? end + 1 : end;
            if (*end && *end != ',') fail("--dump-layers: bad list \"%s\"", dump_layers);
        }
        if (n_layers == 0) fail("--dump-layers: empty list");
        run_dump_kv(&m, &tk, dump_text, dump, dump_tokens, layers, n_layers, dump_f32, batch);
    }
    tokenizer_free(&tk);
    model_free(&m);
    gguf_free(&g);
    return 0;
}
