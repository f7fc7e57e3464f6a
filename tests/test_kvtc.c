/* kvtc CPU tests: the runner and the tests of the TurboQuant foundation.
 * make test   (or: cc -std=c99 -O2 -I. tests/test_kvtc.c -lm -o test_kvtc && ./test_kvtc [filter])
 * Prints one line per test and ends with "N passed, N failed, N skipped". */
#define KVTC_IMPLEMENTATION
#include "tests/test_common.h"

/* ---- status, version, rng ------------------------------------------------ */
static int test_status_strings(void) {
    int i, j;
    for (i = 0; i < KVTC_STATUS_COUNT; ++i) {
        const char *s = kvtc_status_string((kvtc_status)i);
        CHECK(s != NULL && s[0] != '\0' && strcmp(s, "unknown status") != 0);
        for (j = 0; j < i; ++j) CHECK(strcmp(s, kvtc_status_string((kvtc_status)j)) != 0);
    }
    CHECK(KVTC_OK == 0);
    CHECK(strcmp(kvtc_status_string(KVTC_STATUS_COUNT), "unknown status") == 0);
    CHECK(strcmp(kvtc_status_string((kvtc_status)-1), "unknown status") == 0);
    CHECK(strcmp(kvtc_version(), KVTC_VERSION_STRING) == 0);
    return T_PASS;
}

static int test_rng_golden(void) {
    /* first outputs from an independent splitmix64 + xoshiro256** implementation */
    static const uint64_t want0[3] = {0x99ec5f36cb75f2b4ULL, 0xbf6e1f784956452aULL, 0x1a5f849d4933e6e0ULL};
    static const uint64_t want1[3] = {0xbe6a36374160d49bULL, 0x214aaa0637a688c6ULL, 0xf69d16de9954d388ULL};
    kvtc_rng r;
    int i;
    kvtc_rng_seed(&r, 0);
    for (i = 0; i < 3; ++i) CHECK(kvtc_rng_u64(&r) == want0[i]);
    kvtc_rng_seed(&r, 12345);
    for (i = 0; i < 3; ++i) CHECK(kvtc_rng_u64(&r) == want1[i]);
    return T_PASS;
}

static int test_rng_distributions(void) {
    kvtc_rng r;
    int i, n = 400000, hist[7] = {0};
    double s1 = 0, s2 = 0, s4 = 0, u1 = 0;
    kvtc_rng_seed(&r, 7);
    for (i = 0; i < n; ++i) {
        double g = kvtc_rng_gaussian(&r);
        s1 += g;
        s2 += g * g;
        s4 += g * g * g * g;
        u1 += kvtc_rng_uniform(&r);
        hist[kvtc_rng_below(&r, 7)]++;
    }
    CHECK_NEAR(s1 / n, 0.0, 4.0 / sqrt(n));
    CHECK_NEAR(s2 / n, 1.0, 4.0 * sqrt(2.0 / n));
    CHECK_NEAR(s4 / n, 3.0, 4.0 * sqrt(96.0 / n));
    CHECK_NEAR(u1 / n, 0.5, 4.0 * sqrt(1.0 / 12 / n));
    for (i = 0; i < 7; ++i) CHECK_NEAR(hist[i], n / 7.0, 5.0 * sqrt(n / 7.0));
    CHECK(kvtc_rng_below(&r, 0) == 0 && kvtc_rng_below(&r, 1) == 0);
    for (i = 1; i < 2000; ++i) { /* kvtc's portable log against libm */
        double x = i * 0.000731 + 1e-9 * i * i;
        CHECK_NEAR(kvtc__log(x), log(x), 4e-16 * fabs(log(x)) + 1e-16);
    }
    CHECK_NEAR(kvtc__log(1e-300), log(1e-300), 1e-12);
    return T_PASS;
}

/* ---- half precision ------------------------------------------------------- */
/* Reference float -> binary16 by exhaustive nearest search in double. */
static uint16_t ref_f16(float x) {
    uint16_t best = 0, h;
    double bd = HUGE_VAL;
    unsigned i;
    if (x != x) return 0x7e00;
    for (i = 0; i < 0x7c00u; ++i) { /* positive finite halves */
        double v = kvtc_f16_to_f32((uint16_t)i), dd = fabs(fabs((double)x) - v);
        if (dd < bd || (dd == bd && (i & 1u) == 0)) {
            bd = dd;
            best = (uint16_t)i;
        }
    }
    /* beyond max half + half an ulp (65520) rounds to Inf */
    if (fabs((double)x) >= 65520.0) best = 0x7c00;
    h = (uint16_t)(best | (x < 0 || (x == 0 && 1 / x < 0) ? 0x8000u : 0u));
    return h;
}

static int test_half_conversions(void) {
    unsigned i;
    kvtc_rng r;
    /* every half survives half -> float -> half */
    for (i = 0; i < 65536u; ++i) {
        float f = kvtc_f16_to_f32((uint16_t)i);
        uint16_t back = kvtc_f32_to_f16(f);
        if ((i & 0x7c00u) == 0x7c00u && (i & 0x3ffu)) CHECK(f != f && (back & 0x7c00u) == 0x7c00u && (back & 0x3ffu));
        else CHECK(back == i);
    }
    CHECK(kvtc_f16_to_f32(0x3c00) == 1.0f && kvtc_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(kvtc_f16_to_f32(0x0001) == 5.9604644775390625e-8f);
    CHECK(kvtc_f32_to_f16(65519.0f) == 0x7bff && kvtc_f32_to_f16(65520.0f) == 0x7c00);
    CHECK(kvtc_f32_to_f16(1e30f) == 0x7c00 && kvtc_f32_to_f16(-1e30f) == 0xfc00);
    CHECK(kvtc_f32_to_f16(1e-30f) == 0 && kvtc_f32_to_f16(2.98023224e-8f) == 0);   /* tie to even: 0 */
    CHECK(kvtc_f32_to_f16(2.98023252e-8f) == 1);                                  /* just above the tie */
    CHECK(kvtc_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00);                          /* tie down to even */
    CHECK(kvtc_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02);                          /* tie up to even */
    /* random floats against the exhaustive reference, and against the
     * compiler's _Float16 where it has one */
    kvtc_rng_seed(&r, 3);
    for (i = 0; i < 300; ++i) {
        float x = (float)(kvtc_rng_gaussian(&r) * pow(2.0, (double)(int)kvtc_rng_below(&r, 44) - 28));
        CHECK(kvtc_f32_to_f16(x) == ref_f16(x));
    }
#if defined(__FLT16_MAX__) && !defined(__cplusplus) && !defined(__STRICT_ANSI__)
    for (i = 0; i < 2000000u; ++i) {
        uint32_t u = (uint32_t)kvtc_rng_u64(&r);
        float x;
        _Float16 h;
        uint16_t hb;
        memcpy(&x, &u, 4);
        if (x != x) continue;
        h = (_Float16)x;
        memcpy(&hb, &h, 2);
        CHECK(kvtc_f32_to_f16(x) == hb);
    }
#endif
    /* bfloat16: round to nearest even on the top 16 bits */
    CHECK(kvtc_f32_to_bf16(1.0f) == 0x3f80 && kvtc_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(kvtc_f32_to_bf16(1.00390625f) == 0x3f80); /* tie to even */
    CHECK(kvtc_f32_to_bf16(1.01171875f) == 0x3f82); /* tie to even (up) */
    {
        float nanf_ = kvtc_bf16_to_f32(kvtc_f32_to_bf16(kvtc_f16_to_f32(0x7e00)));
        CHECK(nanf_ != nanf_);
    }
    return T_PASS;
}

/* ---- packing -------------------------------------------------------------- */
static int test_pack_roundtrip(void) {
    uint16_t idx[200], back[200];
    uint8_t buf[512];
    kvtc_rng r;
    int bits;
    size_t n, i, need;
    static const uint16_t example[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    kvtc_rng_seed(&r, 11);
    for (bits = 1; bits <= 16; ++bits)
        for (n = 0; n <= 67; ++n) {
            for (i = 0; i < n; ++i) idx[i] = (uint16_t)(kvtc_rng_u64(&r) & ((1u << bits) - 1u));
            CHECK_OK(kvtc_pack_bytes(n, bits, &need));
            CHECK(need == (n * bits + 7) / 8);
            memset(buf, 0xAB, sizeof buf);
            CHECK_OK(kvtc_pack(idx, n, bits, buf, need));
            CHECK(need == 0 || buf[need] == 0xAB); /* nothing written past the end */
            if (n * bits % 8) CHECK((buf[need - 1] >> (n * bits % 8)) == 0); /* zero padding */
            for (i = 0; i < n * bits; ++i) { /* bit i of the stream is bit (i%8) of byte i/8 */
                unsigned want = (idx[i / bits] >> (i % bits)) & 1u;
                CHECK(((buf[i / 8] >> (i % 8)) & 1u) == want);
            }
            CHECK_OK(kvtc_unpack(buf, need, n, bits, back, n));
            CHECK(n == 0 || memcmp(idx, back, n * sizeof(uint16_t)) == 0);
        }
    CHECK_OK(kvtc_pack(example, 8, 3, buf, 3));
    CHECK(buf[0] == 0x88 && buf[1] == 0xc6 && buf[2] == 0xfa);
    CHECK_ST(kvtc_pack(example, 8, 3, buf, 2), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_pack(example, 8, 2, buf, 8), KVTC_ERR_ARG); /* 4..7 need 3 bits */
    CHECK_ST(kvtc_pack(example, 8, 0, buf, 8), KVTC_ERR_BITS);
    CHECK_ST(kvtc_pack(example, 8, 17, buf, 8), KVTC_ERR_BITS);
    CHECK_ST(kvtc_pack(NULL, 8, 3, buf, 8), KVTC_ERR_NULL);
    CHECK_ST(kvtc_unpack(buf, 2, 8, 3, back, 8), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_unpack(buf, 3, 8, 3, back, 7), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_pack_bytes((size_t)-1 / 2, 16, &need), KVTC_ERR_OVERFLOW);
    CHECK_OK(kvtc_pack_bytes(5, 0, &need));
    CHECK(need == 0);
    return T_PASS;
}

/* ---- rotations ------------------------------------------------------------ */
static kvtc_codec *make_codec(kvtc_method m, int d, int bits, kvtc_rotation_kind rot, int rounds, uint64_t seed) {
    kvtc_codec_params p;
    kvtc_codec *c = NULL;
    memset(&p, 0, sizeof p);
    p.method = m;
    p.head_dim = d;
    p.bits = bits;
    p.rotation = rot;
    p.rotation_rounds = rounds;
    p.seed = seed;
    if (kvtc_codec_create(&p, &c) != KVTC_OK) return NULL;
    return c;
}

/* max |M M^T - I| of a d x d row-major double matrix */
static double orth_error(const double *m, int d) {
    double worst = 0.0;
    int i, j, k;
    for (i = 0; i < d; ++i)
        for (j = 0; j < d; ++j) {
            double s = 0.0;
            for (k = 0; k < d; ++k) s += m[i * d + k] * m[j * d + k];
            s -= (i == j);
            worst = fabs(s) > worst ? fabs(s) : worst;
        }
    return worst;
}

static int test_rotation_orthogonal(void) {
    static const struct { kvtc_rotation_kind kind; int d, rounds; } cases[] = {
        {KVTC_ROTATION_HADAMARD, 64, 1},  {KVTC_ROTATION_HADAMARD, 128, 1}, {KVTC_ROTATION_HADAMARD, 128, 3},
        {KVTC_ROTATION_HADAMARD, 80, 2},  {KVTC_ROTATION_HADAMARD, 96, 2},  {KVTC_ROTATION_HADAMARD, 192, 2},
        {KVTC_ROTATION_HADAMARD, 512, 1}, {KVTC_ROTATION_DENSE, 3, 0},      {KVTC_ROTATION_DENSE, 64, 0},
        {KVTC_ROTATION_DENSE, 100, 0},    {KVTC_ROTATION_DENSE, 128, 0},    {KVTC_ROTATION_NONE, 64, 0}};
    size_t ci;
    for (ci = 0; ci < sizeof cases / sizeof cases[0]; ++ci) {
        int d = cases[ci].d, i, j;
        kvtc_codec *c = make_codec(KVTC_METHOD_TQ_MSE, d, 4, cases[ci].kind, cases[ci].rounds, 42 + ci);
        kvtc_codec *c2 = make_codec(KVTC_METHOD_TQ_MSE, d, 4, cases[ci].kind, cases[ci].rounds, 42 + ci);
        double *m = (double *)malloc(sizeof(double) * d * d);
        float *e = (float *)malloc(sizeof(float) * d * d), *y = (float *)malloc(sizeof(float) * d * d);
        double ferr = 0.0;
        CHECK(c && c2 && m && e && y);
        CHECK(c->rot.kind == cases[ci].kind);
        CHECK_OK(kvtc_rotation_matrix(&c->rot, m, (size_t)d * d));
        CHECK(orth_error(m, d) < 1e-12);
        /* float path: P applied to e_j equals column j of the double matrix */
        for (i = 0; i < d * d; ++i) e[i] = (i / d == i % d) ? 1.0f : 0.0f;
        CHECK_OK(kvtc_rotation_apply(&c->rot, e, (size_t)d, y, (size_t)d * d));
        for (j = 0; j < d; ++j)
            for (i = 0; i < d; ++i) ferr = fmax(ferr, fabs(y[j * d + i] - m[i * d + j]));
        CHECK(ferr < 1e-5);
        /* P^T P = I in float, in place */
        CHECK_OK(kvtc_rotation_apply_t(&c->rot, y, (size_t)d, y, (size_t)d * d));
        for (i = 0; i < d * d; ++i) CHECK_NEAR(y[i], e[i], 1e-5);
        /* deterministic: a second codec from the same seed has identical tables */
        if (c->rot.signs) CHECK(memcmp(c->rot.signs, c2->rot.signs, sizeof(float) * c->rot.rounds * d) == 0);
        if (c->rot.perm) CHECK(memcmp(c->rot.perm, c2->rot.perm, 2 * (size_t)c->rot.rounds * d) == 0);
        if (c->rot.matrix) CHECK(memcmp(c->rot.matrix, c2->rot.matrix, sizeof(float) * d * d) == 0);
        if (cases[ci].kind == KVTC_ROTATION_HADAMARD) /* permuted exactly when the blocks are smaller than d */
            CHECK((d == (d & -d)) == (c->rot.block == d && !c->rot.perm) && c->rot.block == (d & -d));
        free(m);
        free(e);
        free(y);
        kvtc_codec_destroy(c);
        kvtc_codec_destroy(c2);
    }
    return T_PASS;
}

static int test_fwht_explicit(void) {
    int n, i, j;
    for (n = 1; n <= 256; n *= 2) {
        float x[256], y[256];
        kvtc_rng r;
        kvtc_rng_seed(&r, (uint64_t)n);
        test_gaussian_fill(&r, x, (size_t)n);
        memcpy(y, x, sizeof(float) * n);
        CHECK_OK(kvtc_fwht(y, n));
        for (i = 0; i < n; ++i) { /* Sylvester: H_ij = (-1)^popcount(i & j) / sqrt(n) */
            double s = 0.0;
            for (j = 0; j < n; ++j) {
                int bits = i & j, par = 0;
                while (bits) par ^= 1, bits &= bits - 1;
                s += (par ? -1.0 : 1.0) * x[j];
            }
            CHECK_NEAR(y[i], s / sqrt((double)n), 1e-5);
        }
    }
    {
        float x[12];
        CHECK_ST(kvtc_fwht(x, 12), KVTC_ERR_DIM);
        CHECK_ST(kvtc_fwht(NULL, 8), KVTC_ERR_NULL);
    }
    return T_PASS;
}

static int test_rotation_dense_haar(void) {
    /* Without the sign fix, Householder QR makes Q's diagonal skewed; with it,
     * Q is Haar and E[Q_00] = E[tr Q] = 0. */
    double q[64], s00 = 0.0, str = 0.0;
    int k, n = 2000, i;
    for (k = 0; k < n; ++k) {
        CHECK_OK(kvtc_rotation_dense((uint64_t)k, 8, q, 64));
        s00 += q[0];
        for (i = 0; i < 8; ++i) str += q[i * 9];
    }
    CHECK_NEAR(s00 / n, 0.0, 4.0 * sqrt(1.0 / 8 / n));
    CHECK_NEAR(str / n, 0.0, 4.0 * sqrt(1.0 / n));
    CHECK_OK(kvtc_rotation_dense(1, 2, q, 4));
    CHECK(orth_error(q, 2) < 1e-14);
    CHECK_ST(kvtc_rotation_dense(1, 1, q, 64), KVTC_ERR_DIM);
    CHECK_ST(kvtc_rotation_dense(1, 8, q, 63), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_rotation_dense(1, 8, NULL, 64), KVTC_ERR_NULL);
    return T_PASS;
}

/* ---- codebooks ------------------------------------------------------------ */
/* MSE per coordinate of a codebook under the density, and max |centroid -
 * conditional mean| by composite Simpson integration (independent of the
 * closed forms in kvtc.h). */
static void numeric_cell_check(kvtc_codebook_kind kind, int d, const float *c, const float *b, int n, double *mse,
                               double *cond_err) {
    int steps = 400000, i, cell = 0;
    double lo = -1.0, hi = 1.0, h, sigma = 1.0 / sqrt((double)d), k = 0.5 * (d - 3), z = 0.0;
    double mass[256] = {0}, mom[256] = {0}, err = 0.0;
    if (kind == KVTC_CODEBOOK_GAUSSIAN || d > 50) lo = -12 * sigma, hi = 12 * sigma; /* tails beyond: < 1e-32 */
    h = (hi - lo) / steps;
    for (i = 0; i <= steps; ++i) {
        double t = lo + i * h, w = (i == 0 || i == steps) ? 1 : (i % 2 ? 4 : 2), f;
        f = kind == KVTC_CODEBOOK_GAUSSIAN ? exp(-0.5 * t * t / (sigma * sigma)) : (1 - t * t > 0 ? pow(1 - t * t, k) : 0);
        while (cell < n - 1 && t > b[cell]) ++cell;
        while (cell > 0 && t <= b[cell - 1]) --cell;
        z += w * f;
        err += w * f * (t - c[cell]) * (t - c[cell]);
        mass[cell] += w * f;
        mom[cell] += w * f * t;
    }
    *mse = err / z;
    *cond_err = 0.0;
    for (i = 0; i < n; ++i)
        if (mass[i] > 1e-12 * z) *cond_err = fmax(*cond_err, fabs(mom[i] / mass[i] - c[i]) / sigma);
}

static int test_codebook_properties(void) {
    static const int dims[] = {3, 5, 16, 64, 96, 128, 512};
    size_t di;
    int kind, bits, i;
    for (kind = KVTC_CODEBOOK_SPHERE; kind <= KVTC_CODEBOOK_GAUSSIAN; ++kind)
        for (di = 0; di < sizeof dims / sizeof dims[0]; ++di)
            for (bits = 1; bits <= 8; ++bits) {
                float c[256], b[255];
                double mse, num_mse, cond;
                int d = dims[di], n = 1 << bits;
                CHECK_OK(kvtc_codebook_generate((kvtc_codebook_kind)kind, d, bits, c, 256, b, 255, &mse));
                for (i = 0; i < n; ++i) CHECK(c[i] == -c[n - 1 - i]);
                for (i = 0; i + 1 < n; ++i) {
                    CHECK(c[i] < b[i] && b[i] < c[i + 1]);
                    CHECK_NEAR(b[i], 0.5 * ((double)c[i] + c[i + 1]), 1e-7 * fabs(c[n - 1]));
                }
                if (kind == KVTC_CODEBOOK_SPHERE) CHECK(c[n - 1] < 1.0f);
                if (bits <= 6 && (d <= 16 || d == 128)) { /* independent numeric check (slow) */
                    numeric_cell_check((kvtc_codebook_kind)kind, d, c, b, n, &num_mse, &cond);
                    CHECK_NEAR(num_mse * d, mse, 1e-4 * mse);
                    CHECK(cond < 1e-4); /* cells are resolved to the grid step, <= 6e-5 sigma */
                }
            }
    /* b = 1 in closed form: c = E|t|; SPHERE E|t| = G(d/2) / (sqrt(pi) G((d+1)/2)) */
    for (di = 0; di < sizeof dims / sizeof dims[0]; ++di) {
        float c[2], b[1];
        double mse, d = dims[di], et = exp(lgamma(d / 2) - lgamma((d + 1) / 2)) / sqrt(3.14159265358979323846);
        CHECK_OK(kvtc_codebook_generate(KVTC_CODEBOOK_SPHERE, dims[di], 1, c, 2, b, 1, &mse));
        CHECK_NEAR(c[1], et, 1e-6 * et);
        CHECK_NEAR(mse, 1.0 - d * et * et, 1e-6);
        CHECK_OK(kvtc_codebook_generate(KVTC_CODEBOOK_GAUSSIAN, dims[di], 1, c, 2, b, 1, &mse));
        CHECK_NEAR(c[1], sqrt(2.0 / 3.14159265358979323846 / d), 1e-6 * c[1]);
        CHECK_NEAR(mse, 1.0 - 2.0 / 3.14159265358979323846, 1e-9);
    }
    /* the figures the issue asks for (exact marginal, d = 128) */
    {
        static const double want[4] = {0.361, 0.116, 0.0340, 0.00932};
        for (bits = 1; bits <= 4; ++bits) {
            float c[16], b[15];
            double mse;
            CHECK_OK(kvtc_codebook_generate(KVTC_CODEBOOK_SPHERE, 128, bits, c, 16, b, 15, &mse));
            CHECK_NEAR(mse, want[bits - 1], 0.005 * want[bits - 1]);
        }
    }
    {
        float c[16], b[15];
        CHECK_ST(kvtc_codebook_generate(KVTC_CODEBOOK_SPHERE, 2, 2, c, 16, b, 15, NULL), KVTC_ERR_DIM);
        CHECK_ST(kvtc_codebook_generate(KVTC_CODEBOOK_SPHERE, 64, 9, c, 16, b, 15, NULL), KVTC_ERR_BITS);
        CHECK_ST(kvtc_codebook_generate(KVTC_CODEBOOK_SPHERE, 64, 0, c, 16, b, 15, NULL), KVTC_ERR_BITS);
        CHECK_ST(kvtc_codebook_generate(KVTC_CODEBOOK_SPHERE, 64, 4, c, 15, b, 15, NULL), KVTC_ERR_SMALL);
        CHECK_ST(kvtc_codebook_generate(KVTC_CODEBOOK_SPHERE, 64, 4, c, 16, b, 14, NULL), KVTC_ERR_SMALL);
        CHECK_ST(kvtc_codebook_generate(KVTC_CODEBOOK_SPHERE, 64, 4, NULL, 16, b, 15, NULL), KVTC_ERR_NULL);
        CHECK_ST(kvtc_codebook_generate((kvtc_codebook_kind)9, 64, 4, c, 16, b, 15, NULL), KVTC_ERR_ARG);
    }
    return T_PASS;
}

static int test_codebooks_h_matches_generator(void) {
    size_t i;
    CHECK(sizeof kvtc_codebook_table / sizeof kvtc_codebook_table[0] == 28);
    for (i = 0; i < sizeof kvtc_codebook_table / sizeof kvtc_codebook_table[0]; ++i) {
        const kvtc_codebook_entry *e = &kvtc_codebook_table[i];
        float c[16], b[15];
        double mse;
        int n = 1 << e->bits;
        CHECK_OK(kvtc_codebook_generate(KVTC_CODEBOOK_SPHERE, e->head_dim, e->bits, c, 16, b, 15, &mse));
        CHECK(memcmp(c, e->centroids, sizeof(float) * n) == 0);
        CHECK(memcmp(b, e->boundaries, sizeof(float) * (n - 1)) == 0);
        CHECK(mse == e->mse_unit);
    }
    return T_PASS;
}

/* ---- TurboQuant MSE ------------------------------------------------------- */
/* Mean ||u - u_hat||^2 over n random unit vectors. */
static double measure_mse(kvtc_codec *c, size_t n, uint64_t seed) {
    int d = c->params.head_dim;
    size_t bytes = 0, i, chunk = 4096, done;
    float *x = (float *)malloc(sizeof(float) * chunk * d), *y = (float *)malloc(sizeof(float) * chunk * d);
    void *enc;
    double err = 0.0;
    kvtc_rng r;
    kvtc_codec_encoded_bytes(c, chunk, &bytes);
    enc = malloc(bytes);
    kvtc_rng_seed(&r, seed);
    for (done = 0; done < n; done += chunk) {
        size_t m = n - done < chunk ? n - done : chunk;
        test_gaussian_fill(&r, x, m * d);
        test_normalize_rows(x, m, d);
        if (kvtc_codec_encode(c, x, m, enc, bytes) != KVTC_OK || kvtc_codec_decode(c, enc, bytes, m, y, m * d) != KVTC_OK) {
            err = HUGE_VAL;
            break;
        }
        for (i = 0; i < m * d; ++i) err += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    }
    free(x);
    free(y);
    free(enc);
    return err / n;
}

static kvtc_codec *make_mse_codec(int d, int bits, kvtc_codebook_kind cb, int corr, kvtc_norm_type nt) {
    kvtc_codec_params p;
    kvtc_codec *c = NULL;
    memset(&p, 0, sizeof p);
    p.head_dim = d;
    p.bits = bits;
    p.codebook = cb;
    p.norm_correction = corr;
    p.norm_type = nt;
    p.seed = 99;
    return kvtc_codec_create(&p, &c) == KVTC_OK ? c : NULL;
}

static int test_tq_mse_table(void) {
    /* exact-marginal optimum (d = 128 from the issue; 64 and 96 from the
     * generator, checked against numeric integration above) and the
     * Gaussian-limit figures, within 1.5% */
    static const double exact128[4] = {0.361, 0.116, 0.0340, 0.00932};
    static const double gauss[4] = {0.363, 0.1175, 0.0345, 0.0095};
    static const int dims[3] = {64, 96, 128};
    int di, bits;
    for (di = 0; di < 3; ++di)
        for (bits = 1; bits <= 4; ++bits) {
            int d = dims[di];
            size_t n = d == 128 ? 200000 : 50000;
            kvtc_codec *c = make_mse_codec(d, bits, KVTC_CODEBOOK_SPHERE, -1, KVTC_NORM_FP32);
            kvtc_codec *g = make_mse_codec(d, bits, KVTC_CODEBOOK_GAUSSIAN, -1, KVTC_NORM_FP32);
            double m, mg;
            CHECK(c && g);
            m = measure_mse(c, n, 1000 + bits);
            mg = measure_mse(g, n / 4, 2000 + bits);
            printf("  d=%3d b=%d  exact %.5f (theory %.5f)  gaussian-codebook %.5f\n", d, bits, m,
                   c->codebook_mse_unit, mg);
            CHECK_NEAR(m, c->codebook_mse_unit, 0.015 * c->codebook_mse_unit);
            /* the Gaussian codebook's own (model) MSE is the Gaussian-limit figure;
             * on true sphere coordinates it does no better than the exact one */
            CHECK_NEAR(g->codebook_mse_unit, gauss[bits - 1], 0.015 * gauss[bits - 1]);
            CHECK(mg >= m * (1.0 - 0.01));
            if (d == 128) CHECK_NEAR(m, exact128[bits - 1], 0.015 * exact128[bits - 1]);
            kvtc_codec_destroy(c);
            kvtc_codec_destroy(g);
        }
    {   /* at small d the marginal is far from Gaussian and the exact codebook wins */
        kvtc_codec *c = make_mse_codec(8, 3, KVTC_CODEBOOK_SPHERE, -1, KVTC_NORM_FP32);
        kvtc_codec *g = make_mse_codec(8, 3, KVTC_CODEBOOK_GAUSSIAN, -1, KVTC_NORM_FP32);
        double m = measure_mse(c, 100000, 5), mg = measure_mse(g, 100000, 5);
        printf("  d=  8 b=3  exact %.5f  gaussian-codebook %.5f\n", m, mg);
        CHECK(m < 0.97 * mg);
        CHECK_NEAR(m, c->codebook_mse_unit, 0.015 * c->codebook_mse_unit);
        kvtc_codec_destroy(c);
        kvtc_codec_destroy(g);
    }
    return T_PASS;
}

static int test_tq_mse_variants(void) {
    /* dense rotation, non-power-of-two dims, 5..8 bits, fp16 norms and norm
     * correction all stay near the codebook's optimum */
    static const struct { int d, bits; kvtc_rotation_kind rot; int corr; kvtc_norm_type nt; double slack; } cases[] = {
        {128, 4, KVTC_ROTATION_DENSE, -1, KVTC_NORM_FP32, 0.02},   {80, 3, KVTC_ROTATION_HADAMARD, -1, KVTC_NORM_FP32, 0.02},
        {192, 2, KVTC_ROTATION_HADAMARD, -1, KVTC_NORM_FP32, 0.02}, {100, 3, KVTC_ROTATION_DEFAULT, -1, KVTC_NORM_FP32, 0.02},
        {128, 8, KVTC_ROTATION_HADAMARD, -1, KVTC_NORM_FP32, 0.03}, {128, 5, KVTC_ROTATION_HADAMARD, -1, KVTC_NORM_FP32, 0.02},
        {128, 4, KVTC_ROTATION_HADAMARD, -1, KVTC_NORM_FP16, 0.02}, {128, 4, KVTC_ROTATION_HADAMARD, 1, KVTC_NORM_FP16, 0.06},
        {128, 2, KVTC_ROTATION_HADAMARD, 1, KVTC_NORM_FP32, 0.15}};
    size_t ci;
    for (ci = 0; ci < sizeof cases / sizeof cases[0]; ++ci) {
        kvtc_codec_params p;
        kvtc_codec *c = NULL;
        double m;
        memset(&p, 0, sizeof p);
        p.head_dim = cases[ci].d;
        p.bits = cases[ci].bits;
        p.rotation = cases[ci].rot;
        p.norm_correction = cases[ci].corr;
        p.norm_type = cases[ci].nt;
        CHECK_OK(kvtc_codec_create(&p, &c));
        m = measure_mse(c, 20000, 77 + ci);
        printf("  d=%3d b=%d rot=%d corr=%+d norm=%s  mse %.6f (codebook %.6f)\n", p.head_dim, p.bits,
               c->params.rotation, c->params.norm_correction, p.norm_type == KVTC_NORM_FP16 ? "fp16" : "fp32", m,
               c->codebook_mse_unit);
        CHECK(m <= c->codebook_mse_unit * (1.0 + cases[ci].slack));
        CHECK(m >= c->codebook_mse_unit * (1.0 - 0.03));
        kvtc_codec_destroy(c);
    }
    return T_PASS;
}

static int test_tq_norm_correction(void) {
    /* with correction the decoded vector keeps ||x|| (to fp16 rounding) */
    int d = 128, i, j, bits;
    float x[8 * 128], y[8 * 128];
    uint8_t enc[2048];
    kvtc_rng r;
    kvtc_rng_seed(&r, 5);
    for (bits = 1; bits <= 4; ++bits) {
        kvtc_codec *c = make_mse_codec(d, bits, KVTC_CODEBOOK_SPHERE, 1, KVTC_NORM_FP16);
        CHECK(c);
        test_gaussian_fill(&r, x, 8 * (size_t)d);
        for (i = 0; i < 8 * d; ++i) x[i] *= 3.0f;
        CHECK_OK(kvtc_codec_encode(c, x, 8, enc, sizeof enc));
        CHECK_OK(kvtc_codec_decode(c, enc, sizeof enc, 8, y, 8 * (size_t)d));
        for (i = 0; i < 8; ++i) {
            double nx = 0, ny = 0;
            for (j = 0; j < d; ++j) nx += (double)x[i * d + j] * x[i * d + j], ny += (double)y[i * d + j] * y[i * d + j];
            CHECK_NEAR(sqrt(ny), sqrt(nx), 1e-3 * sqrt(nx));
        }
        kvtc_codec_destroy(c);
    }
    return T_PASS;
}

static int test_tq_edge_values(void) {
    int d = 96, i;
    float x[4 * 96], y[4 * 96];
    uint8_t enc[4096], enc2[4096];
    kvtc_codec *c16 = make_mse_codec(d, 4, KVTC_CODEBOOK_SPHERE, 0, KVTC_NORM_FP16);
    kvtc_codec *c32 = make_mse_codec(d, 4, KVTC_CODEBOOK_SPHERE, 0, KVTC_NORM_FP32);
    kvtc_rng r;
    size_t bytes;
    CHECK(c16 && c32);
    kvtc_rng_seed(&r, 8);
    CHECK_OK(kvtc_codec_encoded_bytes(c16, 4, &bytes));
    CHECK(bytes <= sizeof enc && bytes % 16 == 0);
    /* rows: zero, 1e30 scale, 1e-30 scale, ordinary */
    test_gaussian_fill(&r, x, 4 * (size_t)d);
    for (i = 0; i < d; ++i) x[i] = 0.0f, x[d + i] *= 1e29f, x[2 * d + i] *= 1e-31f;
    CHECK_OK(kvtc_codec_encode(c32, x, 4, enc, sizeof enc));
    CHECK_OK(kvtc_codec_decode(c32, enc, sizeof enc, 4, y, 4 * (size_t)d));
    for (i = 0; i < d; ++i) {
        CHECK(y[i] == 0.0f);
        CHECK_NEAR(y[d + i], x[d + i], 0.5e29 * 2.5);  /* same relative error as unit vectors */
        CHECK_NEAR(y[2 * d + i], x[2 * d + i], 0.5e-31 * 2.5);
        CHECK_NEAR(y[3 * d + i], x[3 * d + i], 1.5);
    }
    /* fp16 norms: 1e30 overflows (ERR_RANGE, record zero), 1e-30 underflows to a zero vector */
    CHECK_ST(kvtc_codec_encode(c16, x, 4, enc, sizeof enc), KVTC_ERR_RANGE);
    CHECK_OK(kvtc_codec_decode(c16, enc, sizeof enc, 4, y, 4 * (size_t)d));
    for (i = 0; i < d; ++i) CHECK(y[d + i] == 0.0f && y[2 * d + i] == 0.0f && fabs(y[3 * d + i] - x[3 * d + i]) < 1.5);
    /* NaN and Inf: ERR_NONFINITE, that row zero, the others exact as without it */
    CHECK_OK(kvtc_codec_encode(c32, x, 4, enc2, sizeof enc2));
    x[5] = NAN;
    x[3 * d - 1] = -INFINITY;
    CHECK_ST(kvtc_codec_encode(c32, x, 4, enc, sizeof enc), KVTC_ERR_NONFINITE);
    CHECK_OK(kvtc_codec_decode(c32, enc, sizeof enc, 4, y, 4 * (size_t)d));
    for (i = 0; i < d; ++i) CHECK(y[i] == 0.0f && y[2 * d + i] == 0.0f);
    {   /* rows 1 and 3 are byte-identical to the encoding without the bad rows */
        kvtc_layout l;
        CHECK_OK(kvtc_codec_layout(c32, 4, &l));
        for (i = 1; i < 4; i += 2) {
            CHECK(memcmp(enc + i * c32->code_bytes, enc2 + i * c32->code_bytes, c32->code_bytes) == 0);
            CHECK(memcmp(enc + l.scales + 4 * i, enc2 + l.scales + 4 * i, 4) == 0);
        }
    }
    kvtc_codec_destroy(c16);
    kvtc_codec_destroy(c32);
    return T_PASS;
}

static int test_codec_layout_and_determinism(void) {
    static const int dims[] = {64, 80, 96, 128, 192, 256, 512};
    size_t di;
    int bits, m;
    for (di = 0; di < sizeof dims / sizeof dims[0]; ++di)
        for (m = KVTC_METHOD_TQ_MSE; m <= KVTC_METHOD_AFFINE; ++m)
            for (bits = (m == KVTC_METHOD_TQ_PROD ? 2 : 1); bits <= 8; bits += 3) {
                int d = dims[di], n = 5;
                kvtc_codec *a = make_codec((kvtc_method)m, d, bits, KVTC_ROTATION_DEFAULT, 0, 3);
                kvtc_codec *b = make_codec((kvtc_method)m, d, bits, KVTC_ROTATION_DEFAULT, 0, 3);
                kvtc_layout l;
                float *x = (float *)malloc(sizeof(float) * n * d), *y = (float *)malloc(sizeof(float) * n * d);
                uint8_t *e1, *e2;
                kvtc_rng r;
                double bpc;
                CHECK(a && b && x && y);
                CHECK_OK(kvtc_codec_layout(a, (size_t)n, &l));
                CHECK(l.codes == 0 && l.scales % 16 == 0 && l.qjl % 16 == 0 && l.rnorms % 16 == 0 && l.bytes % 16 == 0);
                CHECK(l.scales >= n * a->code_bytes && l.qjl >= l.scales + n * a->scale_bytes);
                CHECK(l.bytes >= l.rnorms + n * a->rnorm_bytes && l.bytes < l.rnorms + n * a->rnorm_bytes + 16);
                CHECK(a->code_bytes == ((size_t)d * a->mse_bits + 7) / 8);
                CHECK_OK(kvtc_codec_bits_per_coord(a, &bpc));
                if (m == KVTC_METHOD_AFFINE) /* fp16 scale and min per group */
                    CHECK_NEAR(bpc, bits + 32.0 / a->params.group_size, 8.0 / d);
                else /* codes, a 2-byte norm, and for prod m sign bits and a 2-byte residual norm */
                    CHECK_NEAR(bpc, bits + (m == KVTC_METHOD_TQ_PROD ? 32.0 : 16.0) / d, 8.0 / d);
                e1 = (uint8_t *)malloc(l.bytes);
                e2 = (uint8_t *)malloc(l.bytes);
                kvtc_rng_seed(&r, (uint64_t)(d * 100 + bits));
                test_gaussian_fill(&r, x, (size_t)n * d);
                CHECK_OK(kvtc_codec_encode(a, x, (size_t)n, e1, l.bytes));
                CHECK_OK(kvtc_codec_encode(b, x, (size_t)n, e2, l.bytes));
                CHECK(memcmp(e1, e2, l.bytes) == 0);
                CHECK_OK(kvtc_codec_decode(a, e1, l.bytes, (size_t)n, y, (size_t)n * d));
                CHECK_ST(kvtc_codec_decode(a, e1, l.bytes - 1, (size_t)n, y, (size_t)n * d), KVTC_ERR_SMALL);
                CHECK_ST(kvtc_codec_encode(a, x, (size_t)n, e1, l.bytes - 1), KVTC_ERR_SMALL);
                CHECK_ST(kvtc_codec_decode(a, e1, l.bytes, (size_t)n, y, (size_t)n * d - 1), KVTC_ERR_SMALL);
                free(e1);
                free(e2);
                free(x);
                free(y);
                kvtc_codec_destroy(a);
                kvtc_codec_destroy(b);
            }
    return T_PASS;
}

/* ---- affine --------------------------------------------------------------- */
static int test_affine(void) {
    static const int bits_list[] = {1, 2, 3, 4, 8};
    size_t bi;
    int d = 128, n = 64, i, g;
    for (bi = 0; bi < sizeof bits_list / sizeof bits_list[0]; ++bi) {
        int bits = bits_list[bi];
        kvtc_codec *c = make_codec(KVTC_METHOD_AFFINE, d, bits, KVTC_ROTATION_DEFAULT, 0, 0);
        float x[64 * 128], y[64 * 128];
        uint8_t enc[64 * 256];
        kvtc_rng r;
        CHECK(c && c->params.group_size == 32 && c->params.rotation == KVTC_ROTATION_NONE);
        kvtc_rng_seed(&r, (uint64_t)bits);
        test_gaussian_fill(&r, x, (size_t)n * d);
        for (i = 0; i < d; ++i) x[i] = 0.25f;          /* constant groups */
        for (i = 0; i < d; ++i) x[d + i] = (float)i;   /* a ramp */
        CHECK_OK(kvtc_codec_encode(c, x, (size_t)n, enc, sizeof enc));
        CHECK_OK(kvtc_codec_decode(c, enc, sizeof enc, (size_t)n, y, (size_t)n * d));
        for (i = 0; i < d; ++i) CHECK(y[i] == 0.25f);
        for (i = 0; i < n; ++i)
            for (g = 0; g < 4; ++g) {
                float lo = 1e30f, hi = -1e30f;
                int j;
                for (j = 0; j < 32; ++j) {
                    float v = x[i * d + g * 32 + j];
                    lo = v < lo ? v : lo;
                    hi = v > hi ? v : hi;
                }
                /* half a step, plus fp16 rounding of min and scale */
                for (j = 0; j < 32; ++j)
                    CHECK_NEAR(y[i * d + g * 32 + j], x[i * d + g * 32 + j],
                               0.5 * (hi - lo) / ((1 << bits) - 1) * 1.01 + 2e-3 * (fabs(lo) + fabs(hi)) + 1e-6);
            }
        kvtc_codec_destroy(c);
    }
    {
        kvtc_codec_params p;
        kvtc_codec *c = NULL;
        memset(&p, 0, sizeof p);
        p.method = KVTC_METHOD_AFFINE;
        p.head_dim = 96;
        p.bits = 4;
        p.group_size = 40;
        CHECK_ST(kvtc_codec_create(&p, &c), KVTC_ERR_ARG);
        p.group_size = 0;
        CHECK_OK(kvtc_codec_create(&p, &c));
        CHECK(c->params.group_size == 32);
        kvtc_codec_destroy(c);
        p.head_dim = 80;
        CHECK_OK(kvtc_codec_create(&p, &c));
        CHECK(c->params.group_size == 16);
        kvtc_codec_destroy(c);
    }
    return T_PASS;
}

/* ---- QJL inner products --------------------------------------------------- */
/* Mean and variance of (estimate - truth) over n pairs (q, k) with k unit and
 * q = k + noise, plus the least-squares slope of estimate on truth. */
static int qjl_stats(kvtc_method m, int bits, int qjl_dim, size_t n, uint64_t seed, double *mean, double *var,
                     double *slope) {
    kvtc_codec_params p;
    kvtc_codec *c = NULL;
    int d = 128, j;
    size_t i, bytes = 0;
    float k[128], q[128], score;
    uint8_t enc[1024];
    double s1 = 0, s2 = 0, sxy = 0, sxx = 0;
    kvtc_rng r;
    memset(&p, 0, sizeof p);
    p.method = m;
    p.head_dim = d;
    p.bits = bits;
    p.qjl_dim = qjl_dim;
    p.norm_correction = -1;
    p.norm_type = KVTC_NORM_FP32;
    kvtc_rng_seed(&r, seed);
    for (i = 0; i < n; ++i) {
        double truth = 0, e;
        if (i % 500 == 0) { /* unbiased over the draw of P and S: a fresh codec every 500 pairs */
            kvtc_codec_destroy(c);
            p.seed = seed * 1000003u + i;
            if (kvtc_codec_create(&p, &c) != KVTC_OK || kvtc_codec_encoded_bytes(c, 1, &bytes) != KVTC_OK) return 0;
        }
        test_gaussian_fill(&r, k, (size_t)d);
        test_normalize_rows(k, 1, d);
        for (j = 0; j < d; ++j) q[j] = k[j] * 4.0f + (float)kvtc_rng_gaussian(&r) * 0.3f;
        for (j = 0; j < d; ++j) truth += (double)q[j] * k[j];
        if (kvtc_codec_encode(c, k, 1, enc, bytes) != KVTC_OK || kvtc_codec_score(c, q, enc, bytes, 1, &score, 1) != KVTC_OK)
            return 0;
        e = score - truth;
        s1 += e;
        s2 += e * e;
        sxy += score * truth;
        sxx += truth * truth;
    }
    *mean = s1 / n;
    *var = s2 / n - *mean * *mean;
    *slope = sxy / sxx;
    kvtc_codec_destroy(c);
    return 1;
}

static int test_qjl_unbiased(void) {
    double mean, var, slope, v64, v128, v256, mm, vm, sm;
    size_t n = 100000;
    CHECK(qjl_stats(KVTC_METHOD_TQ_PROD, 3, 128, n, 1, &mean, &var, &slope));
    printf("  prod b=3 m=128: mean err %.2e (3 SE = %.2e), var %.4f, slope %.4f\n", mean, 3 * sqrt(var / n), var, slope);
    CHECK(fabs(mean) <= 3.0 * sqrt(var / n));
    CHECK_NEAR(slope, 1.0, 0.01);
    v128 = var;
    CHECK(qjl_stats(KVTC_METHOD_TQ_PROD, 3, 64, 30000, 2, &mean, &v64, &slope));
    CHECK(qjl_stats(KVTC_METHOD_TQ_PROD, 3, 256, 30000, 3, &mean, &v256, &slope));
    printf("  variance m=64 %.4f, m=128 %.4f, m=256 %.4f (ratios %.2f, %.2f)\n", v64, v128, v256, v64 / v128, v128 / v256);
    CHECK(v64 / v128 > 1.6 && v64 / v128 < 2.5);
    CHECK(v128 / v256 > 1.6 && v128 / v256 < 2.5);
    /* the MSE-only estimator at the same code width is biased by its mse: E[<q,x_hat>] ~ (1 - mse) <q,x> */
    CHECK(qjl_stats(KVTC_METHOD_TQ_MSE, 2, 0, 30000, 4, &mm, &vm, &sm));
    printf("  mse-only b=2: mean err %.4f, slope %.4f (1 - mse = %.4f)\n", mm, sm, 1.0 - 0.116);
    CHECK(fabs(mm) > 10.0 * sqrt(vm / 30000));
    CHECK_NEAR(sm, 1.0 - 0.116, 0.01);
    return T_PASS;
}

/* ---- paged cache and attention ------------------------------------------- */
static int test_cache_write_read(void) {
    kvtc_codec *c = make_codec(KVTC_METHOD_TQ_PROD, 64, 4, KVTC_ROTATION_DEFAULT, 0, 9);
    kvtc_cache_params cp;
    size_t page, total, t;
    int n_tokens = 13, h, j;
    int64_t slots[13];
    float x[13 * 2 * 64], y[13 * 2 * 64], ref[2 * 64];
    uint8_t *cache, rec[512];
    kvtc_rng r;
    CHECK(c);
    cp.n_blocks = 5;
    cp.block_size = 4;
    cp.n_kv_heads = 2;
    CHECK_OK(kvtc_cache_bytes(c, &cp, &page, &total));
    CHECK(page % 16 == 0 && total == page * 10);
    cache = (uint8_t *)calloc(1, total);
    kvtc_rng_seed(&r, 4);
    test_gaussian_fill(&r, x, sizeof x / sizeof x[0]);
    for (t = 0; t < (size_t)n_tokens; ++t) slots[t] = (int64_t)((t * 7) % 20);
    slots[3] = -1;
    CHECK_OK(kvtc_cache_write(c, &cp, x, (size_t)n_tokens, slots, cache, total));
    CHECK_OK(kvtc_cache_read(c, &cp, cache, total, (size_t)n_tokens, slots, y, sizeof y / sizeof y[0]));
    for (t = 0; t < (size_t)n_tokens; ++t) {
        if (slots[t] < 0) {
            for (j = 0; j < 2 * 64; ++j) CHECK(y[t * 128 + j] == 0.0f);
            continue;
        }
        /* the same as encoding the token's heads on their own */
        for (h = 0; h < 2; ++h) {
            size_t rb;
            CHECK_OK(kvtc_codec_encoded_bytes(c, 1, &rb));
            CHECK_OK(kvtc_codec_encode(c, x + t * 128 + h * 64, 1, rec, rb));
            CHECK_OK(kvtc_codec_decode(c, rec, rb, 1, ref + h * 64, 64));
        }
        CHECK(memcmp(ref, y + t * 128, sizeof ref) == 0);
    }
    /* bad slots and sizes */
    slots[0] = 20;
    CHECK_ST(kvtc_cache_write(c, &cp, x, (size_t)n_tokens, slots, cache, total), KVTC_ERR_ARG);
    slots[0] = -2;
    CHECK_ST(kvtc_cache_read(c, &cp, cache, total, (size_t)n_tokens, slots, y, sizeof y / sizeof y[0]), KVTC_ERR_ARG);
    slots[0] = 0;
    CHECK_ST(kvtc_cache_write(c, &cp, x, (size_t)n_tokens, slots, cache, total - 1), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_cache_read(c, &cp, cache, total, (size_t)n_tokens, slots, y, sizeof y / sizeof y[0] - 1), KVTC_ERR_SMALL);
    cp.block_size = 0;
    CHECK_ST(kvtc_cache_bytes(c, &cp, &page, &total), KVTC_ERR_ARG);
    free(cache);
    kvtc_codec_destroy(c);
    return T_PASS;
}

/* Attention in double over given keys/values [len][d], scores optionally given. */
static void ref_attention(const float *q, const float *k, const float *v, const double *scores_in, int len, int d,
                          double scale, double *out) {
    double m = -HUGE_VAL, l = 0.0, *s = (double *)malloc(sizeof(double) * (len > 0 ? len : 1));
    int t, j;
    for (j = 0; j < d; ++j) out[j] = 0.0;
    for (t = 0; t < len; ++t) {
        double dot = 0.0;
        if (scores_in) dot = scores_in[t];
        else
            for (j = 0; j < d; ++j) dot += (double)q[j] * k[(size_t)t * d + j];
        s[t] = dot * scale;
        m = s[t] > m ? s[t] : m;
    }
    for (t = 0; t < len; ++t) l += exp(s[t] - m);
    for (t = 0; t < len; ++t)
        for (j = 0; j < d; ++j) out[j] += exp(s[t] - m) / l * v[(size_t)t * d + j];
    free(s);
}

/* QJL-corrected scores of keys [len] of one head against q, computed from the
 * explicit double rotation matrix and the stored sign bits (independent of
 * kvtc's scoring path). */
static void prod_scores(const kvtc_codec *kc, const double *pm, const float *qv, const float *kdec_h,
                        const uint8_t *kcache, size_t kpage, const int32_t *bt_row, int n_kv, int h, int bs, int len,
                        double *scores) {
    int d = kc->params.head_dim, m = kc->params.qjl_dim, t, j, k;
    double pq[KVTC_MAX_HEAD_DIM], sq[KVTC_MAX_QJL_DIM];
    kvtc_layout kl;
    kvtc_codec_layout(kc, (size_t)bs, &kl);
    for (j = 0; j < d; ++j) {
        pq[j] = 0.0;
        for (k = 0; k < d; ++k) pq[j] += pm[j * d + k] * qv[k];
    }
    for (k = 0; k < m; ++k) {
        sq[k] = 0.0;
        for (j = 0; j < d; ++j) sq[k] += (double)kc->qjl[(size_t)k * d + j] * pq[j];
    }
    for (t = 0; t < len; ++t) {
        const uint8_t *pg = kcache + ((size_t)bt_row[t / bs] * n_kv + h) * kpage;
        size_t off = (size_t)(t % bs);
        double dot = 0.0, sdot = 0.0, rn;
        for (j = 0; j < d; ++j) dot += (double)qv[j] * kdec_h[(size_t)t * d + j];
        for (k = 0; k < m; ++k) sdot += ((pg[kl.qjl + off * kc->qjl_bytes + k / 8] >> (k % 8)) & 1) ? sq[k] : -sq[k];
        rn = kvtc_f16_to_f32((uint16_t)(pg[kl.rnorms + off * 2] | pg[kl.rnorms + off * 2 + 1] << 8));
        scores[t] = dot + rn * sqrt(3.14159265358979323846 / 2) / m * sdot;
    }
}

/* Reference attention against float64 attention over the decoded vectors.
 * With n_exact > 0 each sequence also has up to n_exact exact fp16 tokens
 * (one with a NaN key element, one with an Inf value element: both must be
 * masked); the reference
 * appends them to the decoded ones. Returns the worst relative error (or -1
 * on a setup failure); *err_orig is the worst relative error against
 * attention over the uncompressed vectors. */
static double attn_case(kvtc_method km, int kbits, kvtc_method vm, int vbits, int d, int n_kv, int gqa, uint64_t seed,
                        int n_exact, double *err_orig) {
    enum { N_SEQS = 5, BS = 16, MAXB = 3, NBLK = 16, T = MAXB * BS, NX = 6 };
    static const int32_t lens[N_SEQS] = {1, 17, 32, 0, 45}, xlens_all[N_SEQS] = {2, 0, 6, 3, 1};
    int32_t xlens[N_SEQS];
    int n_q = n_kv * gqa, b, h, t, j, i;
    size_t per_x = (size_t)NX * n_kv * d;
    uint16_t *xk = (uint16_t *)malloc(sizeof(uint16_t) * N_SEQS * per_x), *xv = (uint16_t *)malloc(sizeof(uint16_t) * N_SEQS * per_x);
    kvtc_codec *kc = make_codec(km, d, kbits, KVTC_ROTATION_DEFAULT, 0, seed);
    kvtc_codec *vc = make_codec(vm, d, vbits, KVTC_ROTATION_DEFAULT, 0, seed + 1);
    kvtc_attn_params ap;
    size_t kpage, vpage, ktot, vtot, nq = (size_t)N_SEQS * n_q * d, per_seq = (size_t)T * n_kv * d;
    int32_t block_table[N_SEQS * MAXB], perm[NBLK];
    uint8_t *kcache, *vcache;
    float *q = (float *)malloc(sizeof(float) * nq), *out = (float *)malloc(sizeof(float) * nq);
    float *ko = (float *)malloc(sizeof(float) * N_SEQS * per_seq), *vo = (float *)malloc(sizeof(float) * N_SEQS * per_seq);
    float *kd = (float *)malloc(sizeof(float) * N_SEQS * per_seq), *vd = (float *)malloc(sizeof(float) * N_SEQS * per_seq);
    float *kh[4]; /* one head's rows: decoded K, decoded V, original K, original V */
    double *pm = (double *)malloc(sizeof(double) * d * d), ref[KVTC_MAX_HEAD_DIM], refo[KVTC_MAX_HEAD_DIM];
    double scores[T + NX], worst = 0.0, worst_o = 0.0;
    kvtc_rng r;
    if (!kc || !vc || n_exact > NX) return -1.0;
    for (i = 0; i < 4; ++i) kh[i] = (float *)malloc(sizeof(float) * (T + NX) * d);
    memset(&ap, 0, sizeof ap);
    ap.cache.n_blocks = NBLK;
    ap.cache.block_size = BS;
    ap.cache.n_kv_heads = n_kv;
    ap.n_seqs = N_SEQS;
    ap.n_q_heads = n_q;
    ap.max_blocks_per_seq = MAXB;
    kvtc_cache_bytes(kc, &ap.cache, &kpage, &ktot);
    kvtc_cache_bytes(vc, &ap.cache, &vpage, &vtot);
    kcache = (uint8_t *)calloc(1, ktot);
    vcache = (uint8_t *)calloc(1, vtot);
    kvtc_rotation_matrix(&kc->rot, pm, (size_t)d * d);
    kvtc_rng_seed(&r, seed);
    for (i = 0; i < NBLK; ++i) perm[i] = i;
    for (i = NBLK - 1; i > 0; --i) { /* non-contiguous block tables */
        int jj = (int)kvtc_rng_below(&r, (uint64_t)i + 1), tmp = perm[i];
        perm[i] = perm[jj];
        perm[jj] = tmp;
    }
    for (i = 0; i < N_SEQS * MAXB; ++i) block_table[i] = perm[i];
    test_gaussian_fill(&r, q, nq);
    test_gaussian_fill(&r, ko, N_SEQS * per_seq);
    test_gaussian_fill(&r, vo, N_SEQS * per_seq);
    for (i = 0; i < (int)(N_SEQS * per_seq); ++i) ko[i] += (i % d == 3) ? 6.0f : 0.0f; /* an outlier channel */
    for (b = 0; b < N_SEQS; ++b) xlens[b] = xlens_all[b] < n_exact ? xlens_all[b] : n_exact;
    for (i = 0; i < (int)(N_SEQS * per_x); ++i) { /* exact tokens, [seq][kv head][NX][d] */
        xk[i] = kvtc_f32_to_f16((float)(1.5 * kvtc_rng_gaussian(&r) + (i % d == 3 ? 6.0 : 0.0)));
        xv[i] = kvtc_f32_to_f16((float)kvtc_rng_gaussian(&r));
    }
    xk[(size_t)2 * per_x + (size_t)1 * d] = 0x7e00;     /* sequence 2, head 0, exact token 1: NaN key element */
    xv[(size_t)0 * per_x + (size_t)1 * d + 5] = 0x7c00; /* sequence 0, head 0, exact token 1: Inf value element */
    ap.max_exact = n_exact;
    ap.exact_k = xk, ap.exact_v = xv, ap.exact_lens = xlens;
    for (b = 0; b < N_SEQS; ++b) {
        int64_t slots[T];
        for (t = 0; t < T; ++t) slots[t] = t < lens[b] ? (int64_t)block_table[b * MAXB + t / BS] * BS + t % BS : -1;
        if (kvtc_cache_write(kc, &ap.cache, ko + b * per_seq, T, slots, kcache, ktot) != KVTC_OK ||
            kvtc_cache_write(vc, &ap.cache, vo + b * per_seq, T, slots, vcache, vtot) != KVTC_OK ||
            kvtc_cache_read(kc, &ap.cache, kcache, ktot, T, slots, kd + b * per_seq, per_seq) != KVTC_OK ||
            kvtc_cache_read(vc, &ap.cache, vcache, vtot, T, slots, vd + b * per_seq, per_seq) != KVTC_OK)
            return -1.0;
    }
    if (kvtc_attn_decode(kc, vc, &ap, q, kcache, ktot, vcache, vtot, block_table, lens, out, nq) != KVTC_OK) return -1.0;
    for (b = 0; b < N_SEQS; ++b)
        for (h = 0; h < n_kv; ++h) {
            /* gather head h: decoded K, decoded V, original K, original V */
            const float *src[4];
            int n_all = lens[b];
            src[0] = kd + b * per_seq, src[1] = vd + b * per_seq, src[2] = ko + b * per_seq, src[3] = vo + b * per_seq;
            for (i = 0; i < 4; ++i)
                for (t = 0; t < lens[b]; ++t)
                    for (j = 0; j < d; ++j) kh[i][t * d + j] = src[i][((size_t)t * n_kv + h) * d + j];
            for (t = 0; t < xlens[b]; ++t) { /* the exact tokens follow, unless masked */
                const uint16_t *kr = xk + b * per_x + ((size_t)h * NX + t) * d, *vr = xv + b * per_x + ((size_t)h * NX + t) * d;
                if (h == 0 && t == 1 && (b == 2 || b == 0)) continue; /* masked */
                for (j = 0; j < d; ++j) {
                    kh[0][n_all * d + j] = kh[2][n_all * d + j] = kvtc_f16_to_f32(kr[j]);
                    kh[1][n_all * d + j] = kh[3][n_all * d + j] = kvtc_f16_to_f32(vr[j]);
                }
                ++n_all;
            }
            for (i = 0; i < gqa; ++i) {
                const float *qv = q + ((size_t)b * n_q + h * gqa + i) * d, *o = out + ((size_t)b * n_q + h * gqa + i) * d;
                double nrm = 0.0, e = 0.0, eo = 0.0;
                if (n_all == 0) {
                    for (j = 0; j < d; ++j)
                        if (o[j] != 0.0f) return -1.0;
                    continue;
                }
                if (km == KVTC_METHOD_TQ_PROD) {
                    prod_scores(kc, pm, qv, kh[0], kcache, kpage, block_table + b * MAXB, n_kv, h, BS, lens[b], scores);
                    for (t = lens[b]; t < n_all; ++t)
                        for (scores[t] = 0.0, j = 0; j < d; ++j) scores[t] += (double)qv[j] * kh[0][t * d + j];
                }
                ref_attention(qv, kh[0], kh[1], km == KVTC_METHOD_TQ_PROD ? scores : NULL, n_all, d,
                              1.0 / sqrt((double)d), ref);
                ref_attention(qv, kh[2], kh[3], NULL, n_all, d, 1.0 / sqrt((double)d), refo);
                for (j = 0; j < d; ++j) {
                    nrm += refo[j] * refo[j];
                    e += (o[j] - ref[j]) * (o[j] - ref[j]);
                    eo += (o[j] - refo[j]) * (o[j] - refo[j]);
                }
                if (worst == worst && !(sqrt(e / nrm) <= worst)) worst = sqrt(e / nrm); /* a NaN sticks */
                worst_o = fmax(worst_o, sqrt(eo / nrm));
            }
        }
    *err_orig = worst_o;
    for (i = 0; i < 4; ++i) free(kh[i]);
    free(q), free(out), free(ko), free(vo), free(kd), free(vd), free(pm), free(kcache), free(vcache), free(xk), free(xv);
    kvtc_codec_destroy(kc);
    kvtc_codec_destroy(vc);
    return worst;
}

static int test_attention_reference(void) {
    static const struct { kvtc_method km; int kb; kvtc_method vm; int vb, d, n_kv, gqa; } cases[] = {
        {KVTC_METHOD_TQ_MSE, 4, KVTC_METHOD_TQ_MSE, 4, 128, 2, 4},  {KVTC_METHOD_TQ_MSE, 8, KVTC_METHOD_TQ_MSE, 4, 64, 3, 3},
        {KVTC_METHOD_TQ_PROD, 4, KVTC_METHOD_TQ_MSE, 2, 128, 1, 8}, {KVTC_METHOD_TQ_MSE, 3, KVTC_METHOD_AFFINE, 4, 96, 2, 1},
        {KVTC_METHOD_TQ_MSE, 4, KVTC_METHOD_TQ_MSE, 3, 80, 1, 7},   {KVTC_METHOD_TQ_MSE, 2, KVTC_METHOD_TQ_MSE, 2, 100, 2, 2}};
    size_t ci;
    int nx;
    for (nx = 0; nx <= 6; nx += 6) /* without and with exact tokens */
        for (ci = 0; ci < sizeof cases / sizeof cases[0]; ++ci) {
            double eo = 0.0, e = attn_case(cases[ci].km, cases[ci].kb, cases[ci].vm, cases[ci].vb, cases[ci].d,
                                           cases[ci].n_kv, cases[ci].gqa, 100 + ci, nx, &eo);
            printf("  K%s%d/V%s%d d=%d gqa=%d exact<=%d: vs float64 over decoded %.2g; rel. error vs uncompressed %.4f\n",
                   cases[ci].km == KVTC_METHOD_TQ_PROD ? "prod" : "", cases[ci].kb,
                   cases[ci].vm == KVTC_METHOD_AFFINE ? "aff" : "", cases[ci].vb, cases[ci].d, cases[ci].gqa, nx, e, eo);
            CHECK(e >= 0.0 && e < 1e-5);
        }
    return T_PASS;
}

/* ---- bad inputs ------------------------------------------------------------ */
static int test_bad_inputs(void) {
    kvtc_codec_params p, r;
    kvtc_codec *c = NULL;
    float x[128] = {0}, y[128];
    uint8_t buf[256];
    size_t bytes;
    kvtc_attn_params ap;
    int32_t bt[2] = {0, 1}, lens[1] = {3};
    static const struct { kvtc_method m; int d, bits; kvtc_rotation_kind rot; int rounds, corr, qjl, group; kvtc_status want; } bad[] = {
        {KVTC_METHOD_TQ_MSE, 2, 4, KVTC_ROTATION_DEFAULT, 0, 0, 0, 0, KVTC_ERR_DIM},
        {KVTC_METHOD_TQ_MSE, 1025, 4, KVTC_ROTATION_DEFAULT, 0, 0, 0, 0, KVTC_ERR_DIM},
        {KVTC_METHOD_TQ_MSE, -8, 4, KVTC_ROTATION_DEFAULT, 0, 0, 0, 0, KVTC_ERR_DIM},
        {KVTC_METHOD_TQ_MSE, 100, 4, KVTC_ROTATION_HADAMARD, 0, 0, 0, 0, KVTC_ERR_DIM},
        {KVTC_METHOD_TQ_MSE, 64, 0, KVTC_ROTATION_DEFAULT, 0, 0, 0, 0, KVTC_ERR_BITS},
        {KVTC_METHOD_TQ_MSE, 64, 9, KVTC_ROTATION_DEFAULT, 0, 0, 0, 0, KVTC_ERR_BITS},
        {KVTC_METHOD_TQ_PROD, 64, 1, KVTC_ROTATION_DEFAULT, 0, 0, 0, 0, KVTC_ERR_BITS},
        {KVTC_METHOD_AFFINE, 64, 9, KVTC_ROTATION_DEFAULT, 0, 0, 0, 0, KVTC_ERR_BITS},
        {(kvtc_method)17, 64, 4, KVTC_ROTATION_DEFAULT, 0, 0, 0, 0, KVTC_ERR_ARG},
        {KVTC_METHOD_TQ_MSE, 64, 4, (kvtc_rotation_kind)9, 0, 0, 0, 0, KVTC_ERR_ARG},
        {KVTC_METHOD_TQ_MSE, 64, 4, KVTC_ROTATION_HADAMARD, 9, 0, 0, 0, KVTC_ERR_ARG},
        {KVTC_METHOD_TQ_MSE, 64, 4, KVTC_ROTATION_HADAMARD, -1, 0, 0, 0, KVTC_ERR_ARG},
        {KVTC_METHOD_TQ_MSE, 64, 4, KVTC_ROTATION_DEFAULT, 0, 2, 0, 0, KVTC_ERR_ARG},
        {KVTC_METHOD_TQ_PROD, 64, 4, KVTC_ROTATION_DEFAULT, 0, 0, -1, 0, KVTC_ERR_ARG},
        {KVTC_METHOD_TQ_PROD, 64, 4, KVTC_ROTATION_DEFAULT, 0, 0, 4096, 0, KVTC_ERR_ARG},
        {KVTC_METHOD_AFFINE, 64, 4, KVTC_ROTATION_DEFAULT, 0, 0, 0, 48, KVTC_ERR_ARG},
        {KVTC_METHOD_AFFINE, 64, 4, KVTC_ROTATION_DEFAULT, 0, 0, 0, -4, KVTC_ERR_ARG}};
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        memset(&p, 0, sizeof p);
        p.method = bad[i].m;
        p.head_dim = bad[i].d;
        p.bits = bad[i].bits;
        p.rotation = bad[i].rot;
        p.rotation_rounds = bad[i].rounds;
        p.norm_correction = bad[i].corr;
        p.qjl_dim = bad[i].qjl;
        p.group_size = bad[i].group;
        c = (kvtc_codec *)&p; /* must be reset to NULL on failure */
        CHECK_ST(kvtc_codec_create(&p, &c), bad[i].want);
        CHECK(c == NULL);
        CHECK_ST(kvtc_codec_params_resolved(&p, &r), bad[i].want);
    }
    CHECK_ST(kvtc_codec_create(NULL, &c), KVTC_ERR_NULL);
    memset(&p, 0, sizeof p);
    p.head_dim = 64;
    p.bits = 4;
    CHECK_ST(kvtc_codec_create(&p, NULL), KVTC_ERR_NULL);
    CHECK_OK(kvtc_codec_params_resolved(&p, &r));
    CHECK(r.method == KVTC_METHOD_TQ_MSE && r.rotation == KVTC_ROTATION_HADAMARD && r.rotation_rounds == 1 &&
          r.codebook == KVTC_CODEBOOK_SPHERE && r.norm_type == KVTC_NORM_FP16 && r.norm_correction == 1);
    CHECK_OK(kvtc_codec_create(&p, &c));
    CHECK_ST(kvtc_codec_encode(c, NULL, 1, buf, sizeof buf), KVTC_ERR_NULL);
    CHECK_ST(kvtc_codec_encode(c, x, 1, NULL, sizeof buf), KVTC_ERR_NULL);
    CHECK_ST(kvtc_codec_encode(NULL, x, 1, buf, sizeof buf), KVTC_ERR_NULL);
    CHECK_OK(kvtc_codec_encode(c, NULL, 0, NULL, 0)); /* nothing to do */
    CHECK_ST(kvtc_codec_encoded_bytes(c, (size_t)-1 / 8, &bytes), KVTC_ERR_OVERFLOW);
    CHECK_ST(kvtc_codec_encode(c, x, (size_t)-1 / 8, buf, sizeof buf), KVTC_ERR_OVERFLOW);
    CHECK_ST(kvtc_codec_decode(c, buf, sizeof buf, (size_t)-1 / 8, y, 64), KVTC_ERR_OVERFLOW);
    CHECK_ST(kvtc_codec_score(c, NULL, buf, sizeof buf, 1, y, 1), KVTC_ERR_NULL);
    CHECK_ST(kvtc_codec_score(c, x, buf, sizeof buf, 1, y, 0), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_codec_bits_per_coord(c, NULL), KVTC_ERR_NULL);
    /* attention arguments */
    memset(&ap, 0, sizeof ap);
    ap.cache.n_blocks = 2;
    ap.cache.block_size = 4;
    ap.cache.n_kv_heads = 1;
    ap.n_seqs = 1;
    ap.n_q_heads = 2;
    ap.max_blocks_per_seq = 2;
    {
        size_t pb, tot;
        uint8_t *cache;
        float q[128] = {0}, o[128];
        CHECK_OK(kvtc_cache_bytes(c, &ap.cache, &pb, &tot));
        cache = (uint8_t *)calloc(1, tot);
        CHECK_OK(kvtc_attn_decode(c, c, &ap, q, cache, tot, cache, tot, bt, lens, o, 128));
        CHECK_ST(kvtc_attn_decode(c, c, &ap, q, cache, tot - 1, cache, tot, bt, lens, o, 128), KVTC_ERR_SMALL);
        CHECK_ST(kvtc_attn_decode(c, c, &ap, q, cache, tot, cache, tot, bt, lens, o, 127), KVTC_ERR_SMALL);
        CHECK_ST(kvtc_attn_decode(c, c, &ap, NULL, cache, tot, cache, tot, bt, lens, o, 128), KVTC_ERR_NULL);
        lens[0] = 9; /* beyond max_blocks_per_seq * block_size */
        CHECK_ST(kvtc_attn_decode(c, c, &ap, q, cache, tot, cache, tot, bt, lens, o, 128), KVTC_ERR_ARG);
        lens[0] = -1;
        CHECK_ST(kvtc_attn_decode(c, c, &ap, q, cache, tot, cache, tot, bt, lens, o, 128), KVTC_ERR_ARG);
        lens[0] = 8;
        bt[1] = 2; /* block out of range */
        CHECK_ST(kvtc_attn_decode(c, c, &ap, q, cache, tot, cache, tot, bt, lens, o, 128), KVTC_ERR_ARG);
        bt[1] = 1;
        { /* exact tokens: a negative capacity, missing pointers, a count beyond the capacity */
            uint16_t xk[2 * 64] = {0}, xv[2 * 64] = {0};
            int32_t xl[1] = {2};
            ap.max_exact = -1;
            CHECK_ST(kvtc_attn_decode(c, c, &ap, q, cache, tot, cache, tot, bt, lens, o, 128), KVTC_ERR_ARG);
            ap.max_exact = 2;
            CHECK_ST(kvtc_attn_decode(c, c, &ap, q, cache, tot, cache, tot, bt, lens, o, 128), KVTC_ERR_NULL);
            ap.exact_k = xk, ap.exact_v = xv, ap.exact_lens = xl;
            CHECK_OK(kvtc_attn_decode(c, c, &ap, q, cache, tot, cache, tot, bt, lens, o, 128));
            xl[0] = 3;
            CHECK_ST(kvtc_attn_decode(c, c, &ap, q, cache, tot, cache, tot, bt, lens, o, 128), KVTC_ERR_ARG);
            ap.max_exact = 0; /* the pointers are then ignored */
            CHECK_OK(kvtc_attn_decode(c, c, &ap, q, cache, tot, cache, tot, bt, lens, o, 128));
        }
        ap.n_q_heads = 3;
        ap.cache.n_kv_heads = 2;
        CHECK_ST(kvtc_attn_decode(c, c, &ap, q, cache, tot, cache, tot, bt, lens, o, 128), KVTC_ERR_ARG);
        free(cache);
    }
    kvtc_codec_destroy(c);
    kvtc_codec_destroy(NULL);
    return T_PASS;
}

/* ---- runner ---------------------------------------------------------------- */
#ifdef KVTC_TEST_TC
extern const test_case tc_tests[];
extern const size_t tc_tests_count;
#endif
#ifdef KVTC_TEST_REAL
extern const test_case real_tests[];
extern const size_t real_tests_count;
#endif

static const test_case tests[] = {
    {"status_strings", test_status_strings},
    {"rng_golden", test_rng_golden},
    {"rng_distributions", test_rng_distributions},
    {"half_conversions", test_half_conversions},
    {"pack_roundtrip", test_pack_roundtrip},
    {"rotation_orthogonal", test_rotation_orthogonal},
    {"fwht_explicit", test_fwht_explicit},
    {"rotation_dense_haar", test_rotation_dense_haar},
    {"codebook_properties", test_codebook_properties},
    {"codebooks_h_matches_generator", test_codebooks_h_matches_generator},
    {"tq_mse_table", test_tq_mse_table},
    {"tq_mse_variants", test_tq_mse_variants},
    {"tq_norm_correction", test_tq_norm_correction},
    {"tq_edge_values", test_tq_edge_values},
    {"codec_layout_and_determinism", test_codec_layout_and_determinism},
    {"affine", test_affine},
    {"qjl_unbiased", test_qjl_unbiased},
    {"cache_write_read", test_cache_write_read},
    {"attention_reference", test_attention_reference},
    {"bad_inputs", test_bad_inputs},
};

static void run_one(const test_case *t, const char *filter, int *pass, int *fail, int *skip) {
    int r;
    if (filter && !strstr(t->name, filter)) return;
    printf("%s\n", t->name);
    fflush(stdout);
    r = t->fn();
    printf("  %s\n", r == T_PASS ? "PASS" : r == T_SKIP ? "SKIP" : "FAIL");
    *(r == T_PASS ? pass : r == T_SKIP ? skip : fail) += 1;
}

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    int pass = 0, fail = 0, skip = 0;
    size_t i;
    for (i = 0; i < sizeof tests / sizeof tests[0]; ++i) run_one(&tests[i], filter, &pass, &fail, &skip);
#ifdef KVTC_TEST_TC
    for (i = 0; i < tc_tests_count; ++i) run_one(&tc_tests[i], filter, &pass, &fail, &skip);
#endif
#ifdef KVTC_TEST_REAL
    for (i = 0; i < real_tests_count; ++i) run_one(&real_tests[i], filter, &pass, &fail, &skip);
#endif
    printf("%d passed, %d failed, %d skipped\n", pass, fail, skip);
    return fail > 0;
}
