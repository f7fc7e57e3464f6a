/* demo.c: kvtc on a real KV cache (SmolLM2-135M): size, error, attention and speed of each setting, one table. */
/* build: cc -std=c99 -O2 -Wall -Wextra -Werror -pedantic -I. examples/demo.c -lm -o build/demo */
/* run:   ./build/demo [kv.bin]   (default data/smollm2_kv.bin, format in data/README.md) */
#define KVTC_IMPLEMENTATION
#include "kvtc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(call) do { kvtc_status st_ = (call); if (st_ != KVTC_OK) { /* print the status, exit nonzero */   \
        fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, kvtc_status_string(st_)); exit(1); } } while (0)
#define MSE KVTC_METHOD_TQ_MSE
#define PROD KVTC_METHOD_TQ_PROD
#define AFF KVTC_METHOD_AFFINE
enum { BS = 16, STEP = 8 }; /* cache block size; one query every STEP positions */

typedef struct setting {
    const char *name;
    kvtc_method km, vm;
    int kb, vb, nc;  /* K and V bits; params.norm_correction */
    double tc_ratio; /* > 0: a KVTC row at this ratio vs fp16 */
} setting;
static const setting rows[] = {
    {"TQ 4 / TQ 4", MSE, MSE, 4, 4, 0, 0},     {"TQ 4 / TQ 2", MSE, MSE, 4, 2, 0, 0},
    {"TQ 3 / TQ 3", MSE, MSE, 3, 3, 0, 0},     {"TQ 2 / TQ 2", MSE, MSE, 2, 2, 0, 0},
    {"TQ 8 / TQ 4", MSE, MSE, 8, 4, 0, 0},     {"prod 4 / TQ 4", PROD, MSE, 4, 4, 0, 0},
    {"prod 3 / TQ 3", PROD, MSE, 3, 3, 0, 0},  {"TQ 4 / affine 4", MSE, AFF, 4, 4, 0, 0},
    {"TQ 4 / affine 2", MSE, AFF, 4, 2, 0, 0}, {"TQ 4 / TQ 4, no nc", MSE, MSE, 4, 4, -1, 0},
    {"KVTC ~8x", MSE, MSE, 0, 0, 0, 8.0},      {"KVTC ~16x", MSE, MSE, 0, 0, 0, 16.0},
};
typedef struct stats { /* sums; divided by n_vec (per K or V) or n_q when printed */
    double kbits, vbits, kmse, vmse, kcos, vcos, attn, top1, top5, n_vec, n_q, enc_s, dec_s;
} stats;

static int NL, NH, D, NT, HALF; /* layers, KV heads, head_dim, tokens; HALF = NT / 2 */
static double THETA;
static float *K, *V; /* [layer][token][head][dim], as in the file */
#define ROW ((size_t)NH * D)
#define AT(x, l, t) ((x) + ((size_t)(l) * NT + (size_t)(t)) * ROW)

static void die(const char *path, const char *why) {
    fprintf(stderr, "%s: %s\n", path, why);
    exit(1);
}
static uint32_t u32le(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static float f32le(const unsigned char *p) {
    uint32_t u = u32le(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) die("demo", "out of memory");
    return p;
}
static double secs(clock_t since) { return (double)(clock() - since) / CLOCKS_PER_SEC; }

/* Read and check a KVTCKV01 file (header h) into K and V as fp32. */
static void load(const char *path, unsigned char *h) {
    FILE *f = fopen(path, "rb");
    uint32_t nl, nh, d, nt;
    size_t n, esz, got, i;
    unsigned char *raw;
    if (!f) die(path, "cannot open (run from the repository root, or give the path as argv[1])");
    if (fread(h, 1, 64, f) != 64) die(path, "truncated: shorter than its 64-byte header");
    if (memcmp(h, "KVTCKV01", 8) != 0) die(path, "bad magic: not a KVTCKV01 KV sample");
    nl = u32le(h + 12), nh = u32le(h + 16), d = u32le(h + 20), nt = u32le(h + 24), THETA = f32le(h + 28);
    if (u32le(h + 8) != 1 || u32le(h + 32) != 0 || u32le(h + 36) > 1 || !(THETA > 0))
        die(path, "need version 1, RoPE convention 0, dtype 0 or 1, theta > 0");
    if (nl < 1 || nl > 16 || nh < 1 || d < 8 || d % 2 || nh > 1024 / d || nt < 2 * STEP || nt > 65536)
        die(path, "need 1..16 layers, even head_dim >= 8, n_kv_heads * head_dim <= 1024, 16..65536 tokens");
    NL = (int)nl, NH = (int)nh, D = (int)d, NT = (int)nt, HALF = NT / 2;
    esz = u32le(h + 36) ? 2 : 4;
    n = (size_t)NL * NT * ROW; /* <= 2^30 */
    raw = (unsigned char *)xmalloc(2 * n * esz);
    K = (float *)xmalloc(2 * n * sizeof(float)), V = K + n;
    got = fread(raw, 1, 2 * n * esz, f);
    if (got != 2 * n * esz) {
        fprintf(stderr, "%s: truncated: %zu of %zu payload bytes\n", path, got, 2 * n * esz);
        exit(1);
    }
    if (fgetc(f) != EOF) die(path, "longer than its header says");
    fclose(f);
    for (i = 0; i < 2 * n; ++i) {
        K[i] = esz == 2 ? kvtc_f16_to_f32((uint16_t)(raw[2 * i] | raw[2 * i + 1] << 8)) : f32le(raw + 4 * i);
        if (!isfinite(K[i])) die(path, "payload has NaN or Inf");
    }
    free(raw);
}

/* Sum ||x - y||^2 / ||x||^2 and the cosine over the head vectors of tokens HALF.. of one layer. */
static void add_err(const float *x, const float *y, double *mse, double *cos, double *n) {
    size_t i, j;
    for (i = (size_t)HALF * NH; i < (size_t)NT * NH; ++i) {
        double e = 0, xx = 0, yy = 0, xy = 0;
        for (j = 0; j < (size_t)D; ++j) {
            double a = x[i * D + j], b = y[i * D + j];
            e += (a - b) * (a - b), xx += a * a, yy += b * b, xy += a * b;
        }
        if (xx == 0) continue;
        *mse += e / xx;
        *cos += yy > 0 ? xy / sqrt(xx * yy) : 0;
        *n += 1;
    }
}

/* Indices of the 5 largest of s[0..n), largest first. */
static void top5(const double *s, int n, int *top) {
    int i, j, k = 0;
    for (i = 0; i < n; ++i) {
        if (k < 5) j = k++;
        else if (s[i] > s[top[4]]) j = 4;
        else continue;
        for (; j > 0 && s[top[j - 1]] < s[i]; --j) top[j] = top[j - 1];
        top[j] = i;
    }
}

/* softmax(q.k_i / sqrt(D)) . v over i < len for one head (k, v strided by ROW); scores into s. */
static void attend(const float *q, const float *k, const float *v, int len, float *o, double *s) {
    double m = -HUGE_VAL, l = 0, acc[1024] = {0};
    int i, j;
    for (i = 0; i < len; ++i) {
        double dot = 0;
        for (j = 0; j < D; ++j) dot += (double)q[j] * k[(size_t)i * ROW + j];
        s[i] = dot / sqrt((double)D);
        if (s[i] > m) m = s[i];
    }
    for (i = 0; i < len; ++i) {
        double w = exp(s[i] - m);
        l += w;
        for (j = 0; j < D; ++j) acc[j] += w * v[(size_t)i * ROW + j];
    }
    for (j = 0; j < D; ++j) o[j] = (float)(acc[j] / l);
}

/* One query of head h of layer l: output o and scores s from the compressed cache vs the original. */
static void compare(stats *r, const float *q, int l, int h, int len, const float *o, const double *s, double *sref) {
    float oref[1024];
    int top[5], tref[5], i, j, hit = 0, n5 = len < 5 ? len : 5;
    double e = 0, nn = 0;
    attend(q, AT(K, l, 0) + (size_t)h * D, AT(V, l, 0) + (size_t)h * D, len, oref, sref);
    for (j = 0; j < D; ++j) {
        e += (o[j] - oref[j]) * (o[j] - oref[j]), nn += oref[j] * oref[j];
    }
    top5(sref, len, tref);
    top5(s, len, top);
    for (i = 0; i < n5; ++i)
        for (j = 0; j < n5; ++j) hit += top[i] == tref[j];
    r->attn += sqrt(e / nn), r->top1 += top[0] == tref[0], r->top5 += hit == n5, r->n_q += 1;
}

static kvtc_codec *codec(kvtc_method m, int bits, int nc) {
    kvtc_codec_params p = {0};
    kvtc_codec *c = NULL;
    p.head_dim = D, p.bits = bits, p.method = m, p.norm_correction = nc;
    CHECK(kvtc_codec_create(&p, &c));
    return c;
}

/* A TurboQuant/affine row: per layer a paged K and V cache, read back, and kvtc_attn_decode over it. */
static void run_tq(const setting *st, stats *r, float *dec, double *s, double *sref) {
    kvtc_codec *kc = codec(st->km, st->kb, st->nc), *vc = codec(st->vm, st->vb, st->nc);
    kvtc_attn_params ap;
    int nb = (NT + BS - 1) / BS, nq = (NT - HALF + STEP - 1) / STEP, l, i, h, t, j;
    size_t kpage, vpage, kbytes, vbytes;
    int64_t *slots = (int64_t *)xmalloc((size_t)NT * sizeof(int64_t));
    int32_t *bt = (int32_t *)xmalloc((size_t)nq * nb * 4), *lens = (int32_t *)xmalloc((size_t)nq * 4);
    float *q = (float *)xmalloc(nq * ROW * 4), *out = (float *)xmalloc(nq * ROW * 4), sc[BS];
    unsigned char *kcache, *vcache;
    clock_t c0;
    memset(&ap, 0, sizeof ap); /* scale 0: 1/sqrt(head_dim); no exact tokens */
    ap.cache.block_size = BS;
    ap.cache.n_blocks = nb, ap.cache.n_kv_heads = NH, ap.n_seqs = nq, ap.n_q_heads = NH, ap.max_blocks_per_seq = nb;
    CHECK(kvtc_cache_bytes(kc, &ap.cache, &kpage, &kbytes));
    CHECK(kvtc_cache_bytes(vc, &ap.cache, &vpage, &vbytes));
    CHECK(kvtc_codec_bits_per_coord(kc, &r->kbits));
    CHECK(kvtc_codec_bits_per_coord(vc, &r->vbits));
    kcache = (unsigned char *)xmalloc(kbytes), vcache = (unsigned char *)xmalloc(vbytes);
    for (t = 0; t < NT; ++t) slots[t] = t;
    for (i = 0; i < nq * nb; ++i) bt[i] = i % nb; /* every query reads the same sequence */
    for (l = 0; l < NL; ++l) {
        c0 = clock();
        CHECK(kvtc_cache_write(kc, &ap.cache, AT(K, l, 0), (size_t)NT, slots, kcache, kbytes));
        CHECK(kvtc_cache_write(vc, &ap.cache, AT(V, l, 0), (size_t)NT, slots, vcache, vbytes));
        r->enc_s += secs(c0);
        c0 = clock();
        CHECK(kvtc_cache_read(kc, &ap.cache, kcache, kbytes, (size_t)NT, slots, dec, NT * ROW));
        r->dec_s += secs(c0);
        add_err(AT(K, l, 0), dec, &r->kmse, &r->kcos, &r->n_vec);
        c0 = clock();
        CHECK(kvtc_cache_read(vc, &ap.cache, vcache, vbytes, (size_t)NT, slots, dec, NT * ROW));
        r->dec_s += secs(c0);
        add_err(AT(V, l, 0), dec, &r->vmse, &r->vcos, &r->n_vec);
        for (i = 0; i < nq; ++i) { /* sequence i: positions 0..t, query of head h = the key of head h at t */
            lens[i] = HALF + i * STEP + 1;
            memcpy(q + i * ROW, AT(K, l, lens[i] - 1), ROW * sizeof(float));
        }
        CHECK(kvtc_attn_decode(kc, vc, &ap, q, kcache, kbytes, vcache, vbytes, bt, lens, out, nq * ROW));
        for (i = 0; i < nq; ++i)
            for (h = 0; h < NH; ++h) {
                const float *qh = q + i * ROW + (size_t)h * D;
                for (t = 0; t < lens[i]; t += BS) { /* the scores it used, straight from the codes, page by page */
                    CHECK(kvtc_codec_score(kc, qh, kcache + ((size_t)t / BS * NH + h) * kpage, kpage, BS, sc, BS));
                    for (j = 0; j < BS && t + j < lens[i]; ++j) s[t + j] = sc[j] / sqrt((double)D);
                }
                compare(r, qh, l, h, lens[i], out + i * ROW + (size_t)h * D, s, sref);
            }
    }
    kvtc_codec_destroy(kc), kvtc_codec_destroy(vc);
    free(slots), free(bt), free(lens), free(q), free(out), free(kcache), free(vcache);
}

/* The coder with the largest budget whose chunk of n tokens is >= `ratio` times smaller than fp16. */
static kvtc_tc *tc_coder(const kvtc_tc_calib *cal, size_t n, double ratio) {
    kvtc_tc_params p = {0};
    kvtc_tc *tc = NULL;
    int lo = 1, hi = cal->rank * 8;
    double got;
    p.n_sink = p.n_window = KVTC_TC_NONE;
    while (lo < hi) {
        p.budget_bits = (lo + hi + 1) / 2;
        CHECK(kvtc_tc_create(&p, cal, &tc));
        CHECK(kvtc_tc_ratio(tc, n, &got));
        kvtc_tc_destroy(tc);
        if (got >= ratio) lo = p.budget_bits;
        else hi = p.budget_bits - 1;
    }
    p.budget_bits = lo;
    CHECK(kvtc_tc_create(&p, cal, &tc));
    return tc;
}

/* Code one layer's x as chunks [0, HALF) and [HALF, NT) and decode into y; keys lose RoPE first. */
static void tc_roundtrip(const kvtc_tc *tc, const kvtc_rope_params *rope, const float *x, float *y, float *tmp,
                         stats *r, double *bits) {
    size_t b0, b1, sb, n1 = (size_t)(NT - HALF);
    unsigned char *rec;
    void *scratch;
    clock_t c0;
    CHECK(kvtc_tc_chunk_bytes(tc, (size_t)HALF, &b0));
    CHECK(kvtc_tc_chunk_bytes(tc, n1, &b1));
    CHECK(kvtc_tc_scratch_bytes(tc, n1, &sb));
    rec = (unsigned char *)xmalloc(b0 + b1), scratch = xmalloc(sb);
    c0 = clock();
    memcpy(tmp, x, NT * ROW * sizeof(float));
    if (rope) CHECK(kvtc_rope_remove(rope, tmp, (size_t)NT, NULL));
    CHECK(kvtc_tc_encode(tc, tmp, (size_t)HALF, rec, b0, scratch, sb));
    CHECK(kvtc_tc_encode(tc, tmp + HALF * ROW, n1, rec + b0, b1, scratch, sb));
    r->enc_s += secs(c0);
    c0 = clock();
    CHECK(kvtc_tc_decode(tc, rec, b0, y, HALF * ROW, scratch, sb));
    CHECK(kvtc_tc_decode(tc, rec + b0, b1, y + HALF * ROW, n1 * ROW, scratch, sb));
    if (rope) CHECK(kvtc_rope_apply(rope, y, (size_t)NT, NULL));
    r->dec_s += secs(c0);
    *bits += 8.0 * (double)(b0 + b1) / ((double)NT * ROW) / NL;
    free(rec), free(scratch);
}

/* A KVTC row: per layer, calibrate K (RoPE removed) and V on tokens [0, HALF), then code every token. */
static void run_tc(const setting *st, stats *r, float *kd, float *vd, float *tmp, double *s, double *sref) {
    kvtc_tc_calib_params cp = {0};
    kvtc_rope_params rp = {0};
    float o[1024];
    int l, t, h;
    cp.dim = (int)ROW;
    rp.head_dim = D, rp.n_heads = NH, rp.style = KVTC_ROPE_INTERLEAVED, rp.theta = THETA; /* llama.cpp's RoPE */
    for (l = 0; l < NL; ++l) {
        kvtc_tc_calib *ck, *cv;
        kvtc_tc *tk, *tv;
        memcpy(tmp, AT(K, l, 0), HALF * ROW * sizeof(float));
        CHECK(kvtc_rope_remove(&rp, tmp, (size_t)HALF, NULL));
        CHECK(kvtc_tc_calibrate(&cp, tmp, (size_t)HALF, &ck));
        CHECK(kvtc_tc_calibrate(&cp, AT(V, l, 0), (size_t)HALF, &cv));
        tk = tc_coder(ck, (size_t)HALF, st->tc_ratio), tv = tc_coder(cv, (size_t)HALF, st->tc_ratio);
        tc_roundtrip(tk, &rp, AT(K, l, 0), kd, tmp, r, &r->kbits);
        tc_roundtrip(tv, NULL, AT(V, l, 0), vd, tmp, r, &r->vbits);
        add_err(AT(K, l, 0), kd, &r->kmse, &r->kcos, &r->n_vec);
        add_err(AT(V, l, 0), vd, &r->vmse, &r->vcos, &r->n_vec);
        for (t = HALF; t < NT; t += STEP)
            for (h = 0; h < NH; ++h) {
                const float *q = AT(K, l, t) + (size_t)h * D;
                attend(q, kd + (size_t)h * D, vd + (size_t)h * D, t + 1, o, s);
                compare(r, q, l, h, t + 1, o, s, sref);
            }
        kvtc_tc_destroy(tk), kvtc_tc_destroy(tv);
        kvtc_tc_calib_destroy(ck), kvtc_tc_calib_destroy(cv);
    }
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "data/smollm2_kv.bin";
    unsigned char h[64];
    float *kd, *vd, *tmp;
    double *s, *sref, mvec;
    size_t i;
    int j;
    load(path, h);
    kd = (float *)xmalloc(NT * ROW * 4), vd = (float *)xmalloc(NT * ROW * 4), tmp = (float *)xmalloc(NT * ROW * 4);
    s = (double *)xmalloc((size_t)NT * 8), sref = (double *)xmalloc((size_t)NT * 8);
    mvec = 2.0 * NL * NT * NH / 1e6; /* K and V head vectors, millions */
    printf("kvtc %s, %s%s: layers", kvtc_version(), path,
           strcmp(path, "data/smollm2_kv.bin") ? "" : " (SmolLM2-135M-Instruct over data/calib.txt)");
    for (j = 0; j < NL; ++j) printf(" %d", h[44 + j]);
    printf(" of %u, %d KV heads, d = %d, %d tokens, RoPE theta %g, %s\n\n", u32le(h + 40), NH, D, NT, THETA,
           u32le(h + 36) ? "fp16" : "fp32");
    printf("%-19s %6s %6s %6s %9s %9s %7s %7s %8s %6s %6s %8s %8s\n", "K / V", "K b/c", "V b/c", "ratio", "K relMSE",
           "V relMSE", "K cos", "V cos", "attn err", "top-1", "top-5", "enc Mv/s", "dec Mv/s");
    for (i = 0; i < sizeof rows / sizeof rows[0]; ++i) {
        stats r;
        double nv;
        memset(&r, 0, sizeof r);
        if (rows[i].tc_ratio > 0) run_tc(&rows[i], &r, kd, vd, tmp, s, sref);
        else run_tq(&rows[i], &r, kd, s, sref);
        nv = r.n_vec / 2; /* add_err counted K and V */
        printf("%-19s %6.3f %6.3f %5.2fx %9.3e %9.3e %7.4f %7.4f %8.4f %6.3f %6.3f %8.2f %8.2f\n", rows[i].name,
               r.kbits, r.vbits, 32.0 / (r.kbits + r.vbits), r.kmse / nv, r.vmse / nv, r.kcos / nv, r.vcos / nv,
               r.attn / r.n_q, r.top1 / r.n_q, r.top5 / r.n_q, mvec / r.enc_s, mvec / r.dec_s);
        fflush(stdout);
    }
    printf("\nb/c: stored bits per coordinate (norms, scales, QJL, KVTC headers included); ratio = 16 / mean b/c;\n");
    printf("relMSE = ||x-x^||^2/||x||^2 and cos: means over the head vectors of tokens %d..%d. attn: query = the key"
           " at t (t = %d, %d, ..),\n", HALF, NT - 1, HALF, HALF + STEP);
    printf("causal softmax over 0..t; err = ||o-o_ref||/||o_ref||; top-1/top-5: the argmax / top-5 set of the weights"
           " is fp16's. TQ rows: kvtc_attn_decode.\n");
    printf("KVTC: per layer (p = %d), calibrated on tokens 0..%d, 2 chunks of %d, no fp16 sink/window tokens."
           " Speed: one core.\n", (int)ROW, HALF - 1, HALF);
    free(K), free(kd), free(vd), free(tmp), free(s), free(sref);
    return 0;
}
