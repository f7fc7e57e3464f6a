/* kvtc CPU tests of KVTC transform coding (>>rope >>eig >>calib >>alloc
 * >>varpack >>tc). A second translation unit of the test runner: public API
 * only; `make test` builds it with -DKVTC_TEST_TC into build/test_kvtc.
 * Filter with the runner's argument, e.g. ./build/test_kvtc tc_ */
#include "tests/test_common.h"

/* ---- shared helpers --------------------------------------------------------- */
static double *tc_alloc_d(size_t n) { return (double *)calloc(n ? n : 1, sizeof(double)); }
static float *tc_alloc_f(size_t n) { return (float *)calloc(n ? n : 1, sizeof(float)); }

/* ||A - V^T diag(w) V||_F / ||A||_F and max |V V^T - I| for rows of v. */
static void tc_eig_errors(const double *a, int n, const double *w, const double *v, double *rec, double *orth) {
    double num = 0.0, den = 0.0, worst = 0.0;
    int i, j, k;
    for (i = 0; i < n; ++i)
        for (j = 0; j < n; ++j) {
            double s = 0.0, o = 0.0;
            for (k = 0; k < n; ++k) {
                s += v[(size_t)k * n + i] * w[k] * v[(size_t)k * n + j];
                o += v[(size_t)i * n + k] * v[(size_t)j * n + k];
            }
            num += (a[(size_t)i * n + j] - s) * (a[(size_t)i * n + j] - s);
            den += a[(size_t)i * n + j] * a[(size_t)i * n + j];
            worst = fmax(worst, fabs(o - (i == j)));
        }
    *rec = den > 0.0 ? sqrt(num / den) : sqrt(num);
    *orth = worst;
}

/* Run kvtc_eig_sym with its own scratch. */
static kvtc_status tc_eig(const double *a, int n, double *w, double *v) {
    size_t bytes = 0;
    void *s;
    kvtc_status st = kvtc_eig_sym_scratch_bytes(n, &bytes);
    if (st != KVTC_OK) return st;
    s = malloc(bytes);
    st = kvtc_eig_sym(a, n, w, (size_t)n, v, (size_t)n * n, s, bytes);
    free(s);
    return st;
}

/* A = Q^T diag(lam) Q with a seeded Haar Q. */
static void tc_spd(double *a, int n, const double *lam, uint64_t seed) {
    double *q = tc_alloc_d((size_t)n * n);
    int i, j, k;
    kvtc_rotation_dense(seed, n, q, (size_t)n * n);
    for (i = 0; i < n; ++i)
        for (j = 0; j < n; ++j) {
            double s = 0.0;
            for (k = 0; k < n; ++k) s += q[(size_t)k * n + i] * lam[k] * q[(size_t)k * n + j];
            a[(size_t)i * n + j] = s;
        }
    free(q);
}

/* n rows of x = mu + sum_i sqrt(lam_i) g_i q_i (rows q_i of a Haar Q), so the
 * covariance is Q^T diag(lam) Q. If heavy, g_i is a unit-variance Laplace. */
static void tc_make_data(float *x, size_t n, int p, const double *lam, const float *mu, uint64_t qseed, uint64_t seed,
                         int heavy) {
    double *q = tc_alloc_d((size_t)p * p), *g = tc_alloc_d((size_t)p);
    kvtc_rng r;
    size_t t;
    int i, j;
    kvtc_rotation_dense(qseed, p, q, (size_t)p * p);
    kvtc_rng_seed(&r, seed);
    for (t = 0; t < n; ++t) {
        for (i = 0; i < p; ++i) {
            double v;
            if (heavy) {
                double u = kvtc_rng_uniform(&r) - 0.5;
                v = (u < 0 ? 1.0 : -1.0) * log(1.0 - 2.0 * fabs(u)) / sqrt(2.0);
            } else {
                v = kvtc_rng_gaussian(&r);
            }
            g[i] = v * sqrt(lam[i]);
        }
        for (j = 0; j < p; ++j) {
            double s = mu ? mu[j] : 0.0;
            for (i = 0; i < p; ++i) s += g[i] * q[(size_t)i * p + j];
            x[t * p + j] = (float)s;
        }
    }
    free(q);
    free(g);
}

static kvtc_tc_calib *tc_calibrate(const float *x, size_t n, int p, int rank, kvtc_tc_eig_method m) {
    kvtc_tc_calib_params cp;
    kvtc_tc_calib *c = NULL;
    memset(&cp, 0, sizeof cp);
    cp.dim = p;
    cp.rank = rank;
    cp.method = m;
    cp.seed = 5;
    if (kvtc_tc_calibrate(&cp, x, n, &c) != KVTC_OK) return NULL;
    return c;
}

static kvtc_tc *tc_coder(const kvtc_tc_calib *c, int budget, int max_bits, kvtc_tc_quantizer q, int sink, int window) {
    kvtc_tc_params tp;
    kvtc_tc *tc = NULL;
    memset(&tp, 0, sizeof tp);
    tp.budget_bits = budget;
    tp.max_bits = max_bits;
    tp.quantizer = q;
    tp.n_sink = sink;
    tp.n_window = window;
    if (kvtc_tc_create(&tp, c, &tc) != KVTC_OK) return NULL;
    return tc;
}

/* Encode + decode a chunk; returns the record (caller frees) or NULL. */
static uint8_t *tc_roundtrip(const kvtc_tc *tc, const float *x, size_t n, float *y, size_t *bytes, kvtc_status *enc) {
    size_t sb = 0;
    uint8_t *rec;
    void *scratch;
    if (kvtc_tc_chunk_bytes(tc, n, bytes) != KVTC_OK || kvtc_tc_scratch_bytes(tc, n, &sb) != KVTC_OK) return NULL;
    rec = (uint8_t *)malloc(*bytes);
    scratch = malloc(sb);
    *enc = kvtc_tc_encode(tc, x, n, rec, *bytes, scratch, sb);
    if ((*enc != KVTC_OK && *enc != KVTC_ERR_NONFINITE && *enc != KVTC_ERR_RANGE) ||
        kvtc_tc_decode(tc, rec, *bytes, y, n * (size_t)tc->calib->dim, scratch, sb) != KVTC_OK) {
        free(rec);
        rec = NULL;
    }
    free(scratch);
    return rec;
}

/* Mean squared error per token, and sum ||x||^2 per token about mu (for relative figures). */
static double tc_mse(const float *x, const float *y, size_t n, int p) {
    double e = 0.0;
    size_t i;
    for (i = 0; i < n * (size_t)p; ++i) e += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    return e / (double)n;
}

static double tc_mean_cosine(const float *x, const float *y, size_t n, int p) {
    double s = 0.0;
    size_t t;
    int j;
    for (t = 0; t < n; ++t) {
        double xy = 0.0, xx = 0.0, yy = 0.0;
        for (j = 0; j < p; ++j) {
            double a = x[t * p + j], b = y[t * p + j];
            xy += a * b;
            xx += a * a;
            yy += b * b;
        }
        s += xx > 0.0 && yy > 0.0 ? xy / sqrt(xx * yy) : (xx == yy);
    }
    return s / (double)n;
}

/* ---- eigendecomposition ---------------------------------------------------- */
static int test_tc_eig_known(void) {
    double a[16], w[4], v[16], rec, orth;
    int i, j;
    /* diagonal: eigenvalues sorted, eigenvectors the unit vectors */
    static const double diag[4] = {2.0, -1.0, 5.0, 0.5};
    memset(a, 0, sizeof a);
    for (i = 0; i < 4; ++i) a[i * 5] = diag[i];
    CHECK_OK(tc_eig(a, 4, w, v));
    CHECK(w[0] == 5.0 && w[1] == 2.0 && w[2] == 0.5 && w[3] == -1.0);
    CHECK(v[0 * 4 + 2] == 1.0 && v[1 * 4 + 0] == 1.0 && v[2 * 4 + 3] == 1.0 && v[3 * 4 + 1] == 1.0);
    /* 2 x 2 closed form */
    {
        static const double m[4][3] = {{3.0, 1.0, 2.0}, {1.0, 0.0, 1.0}, {-2.0, 1e-9, 7.0}, {4.0, -3.0, 4.0}};
        for (i = 0; i < 4; ++i) {
            double p = m[i][0], q = m[i][1], r = m[i][2], h = 0.5 * (p + r), s = sqrt(0.25 * (p - r) * (p - r) + q * q);
            a[0] = p, a[1] = q, a[2] = q, a[3] = r;
            CHECK_OK(tc_eig(a, 2, w, v));
            CHECK_NEAR(w[0], h + s, 1e-14 * (fabs(h) + s));
            CHECK_NEAR(w[1], h - s, 1e-14 * (fabs(h) + s));
            tc_eig_errors(a, 2, w, v, &rec, &orth);
            CHECK(rec < 1e-14 && orth < 1e-14);
            /* eigenvector of h + s is proportional to (q, h + s - p) (or (1, 0) if q = 0) */
            CHECK_NEAR(fabs(v[0] * (h + s - p) - v[1] * q), 0.0, 1e-12 * (fabs(q) + fabs(h + s - p)));
        }
    }
    /* n = 1, zero matrix, identity (repeated eigenvalues) */
    a[0] = -3.5;
    CHECK_OK(tc_eig(a, 1, w, v));
    CHECK(w[0] == -3.5 && v[0] == 1.0);
    memset(a, 0, sizeof a);
    CHECK_OK(tc_eig(a, 4, w, v));
    for (i = 0; i < 4; ++i) CHECK(w[i] == 0.0);
    for (i = 0; i < 4; ++i) a[i * 5] = 1.0;
    CHECK_OK(tc_eig(a, 4, w, v));
    tc_eig_errors(a, 4, w, v, &rec, &orth);
    CHECK(rec < 1e-15 && orth < 1e-15);
    /* bad inputs */
    a[5] = NAN;
    CHECK_ST(tc_eig(a, 4, w, v), KVTC_ERR_INPUT_NONFINITE);
    a[5] = INFINITY;
    CHECK_ST(tc_eig(a, 4, w, v), KVTC_ERR_INPUT_NONFINITE);
    {
        size_t bytes;
        double s[64];
        CHECK_ST(kvtc_eig_sym_scratch_bytes(0, &bytes), KVTC_ERR_DIM);
        CHECK_ST(kvtc_eig_sym_scratch_bytes(KVTC_TC_DENSE_MAX_DIM + 1, &bytes), KVTC_ERR_DIM);
        CHECK_ST(kvtc_eig_sym_scratch_bytes(4, NULL), KVTC_ERR_NULL);
        CHECK_ST(kvtc_eig_sym(a, 4, w, 4, v, 16, s, 10), KVTC_ERR_SMALL);
        CHECK_ST(kvtc_eig_sym(a, 4, w, 3, v, 16, s, sizeof s), KVTC_ERR_SMALL);
        CHECK_ST(kvtc_eig_sym(a, 4, w, 4, v, 15, s, sizeof s), KVTC_ERR_SMALL);
        CHECK_ST(kvtc_eig_sym(NULL, 4, w, 4, v, 16, s, sizeof s), KVTC_ERR_NULL);
        CHECK_ST(kvtc_eig_sym(a, 4, w, 4, v, 16, (char *)s + 4, sizeof s - 8), KVTC_ERR_ARG); /* misaligned */
    }
    (void)j;
    return T_PASS;
}

static int test_tc_eig_random(void) {
    static const int sizes[] = {3, 17, 64, 150, 256};
    size_t si;
    for (si = 0; si < sizeof sizes / sizeof sizes[0]; ++si) {
        int n = sizes[si], i, kind;
        double *a = tc_alloc_d((size_t)n * n), *v = tc_alloc_d((size_t)n * n), *w = tc_alloc_d((size_t)n);
        double *lam = tc_alloc_d((size_t)n), rec, orth;
        kvtc_rng r;
        kvtc_rng_seed(&r, 100 + si);
        for (kind = 0; kind < (n > 200 ? 1 : 3); ++kind) {
            /* 0: random SPD; 1: decaying spectrum spanning 1e-12; 2: clusters of equal eigenvalues */
            for (i = 0; i < n; ++i)
                lam[i] = kind == 0 ? 0.1 + kvtc_rng_uniform(&r) : kind == 1 ? pow(1e-12, (double)i / n) : (double)(i % 3);
            tc_spd(a, n, lam, 7 + si * 3 + kind);
            CHECK_OK(tc_eig(a, n, w, v));
            tc_eig_errors(a, n, w, v, &rec, &orth);
            if (rec > 1e-10 || orth > 1e-10) printf("  n=%d kind=%d rec %.3g orth %.3g\n", n, kind, rec, orth);
            CHECK(rec < 1e-10 && orth < 1e-10);
            for (i = 0; i + 1 < n; ++i) CHECK(w[i] >= w[i + 1]);
            if (kind == 0) { /* eigenvalues match what was put in, to rounding */
                double maxl = 0.0;
                int j;
                for (i = 0; i < n; ++i) maxl = fmax(maxl, lam[i]);
                for (i = 0; i < n; ++i) { /* sort lam descending (insertion) */
                    for (j = i; j > 0 && lam[j] > lam[j - 1]; --j) {
                        double t = lam[j];
                        lam[j] = lam[j - 1];
                        lam[j - 1] = t;
                    }
                }
                for (i = 0; i < n; ++i) CHECK_NEAR(w[i], lam[i], 1e-12 * n * maxl);
            }
        }
        if (n == 256) printf("  n=256: reconstruction %.2g, orthogonality %.2g (relative, double)\n", rec, orth);
        free(a);
        free(v);
        free(w);
        free(lam);
    }
    return T_PASS;
}

/* ---- calibration -------------------------------------------------------------- */
static int test_tc_randomized_svd(void) {
    int p = 200, r = 20, i, j;
    size_t n = 2000;
    double *lam = tc_alloc_d((size_t)p), dense_e = 0.0, rand_e = 0.0, orth = 0.0;
    float *x = tc_alloc_f(n * p);
    kvtc_tc_calib *cd, *cr;
    kvtc_tc_calib_params cp, res;
    for (i = 0; i < p; ++i) lam[i] = pow(0.8, i) + 1e-4;
    tc_make_data(x, n, p, lam, NULL, 11, 12, 0);
    cd = tc_calibrate(x, n, p, 0, KVTC_TC_EIG_DENSE);
    memset(&cp, 0, sizeof cp);
    cp.dim = p;
    cp.rank = r;
    cp.method = KVTC_TC_EIG_RANDOMIZED;
    cp.seed = 99;
    CHECK_OK(kvtc_tc_calib_params_resolved(&cp, &res));
    CHECK(res.oversample == 16 && res.power_iters == 2);
    CHECK_OK(kvtc_tc_calibrate(&cp, x, n, &cr));
    CHECK(cd && cr && cd->rank == p && cr->rank == r);
    /* the randomized eigenvalues are Rayleigh quotients of C on the found
     * basis, so their sum is the energy it captures */
    for (i = 0; i < r; ++i) {
        dense_e += cd->eigenvalues[i];
        rand_e += cr->eigenvalues[i];
    }
    CHECK_NEAR(cr->total_variance, cd->total_variance, 1e-9 * cd->total_variance);
    for (i = 0; i < r; ++i)
        for (j = 0; j < r; ++j) {
            double s = 0.0;
            int k;
            for (k = 0; k < p; ++k) s += (double)cr->basis[i * p + k] * cr->basis[j * p + k];
            orth = fmax(orth, fabs(s - (i == j)));
        }
    printf("  p=%d rank %d: top-%d energy dense %.6f, randomized %.6f (rel. gap %.2e), orthogonality %.1e\n", p, r, r,
           dense_e, rand_e, (dense_e - rand_e) / dense_e, orth);
    CHECK((dense_e - rand_e) / dense_e < 1e-3 && rand_e <= dense_e * (1 + 1e-9));
    CHECK(orth < 1e-5);
    kvtc_tc_calib_destroy(cr);
    /* no power iterations: still a valid basis, captures less */
    cp.power_iters = -1;
    CHECK_OK(kvtc_tc_calibrate(&cp, x, n, &cr));
    rand_e = 0.0;
    for (i = 0; i < r; ++i) rand_e += cr->eigenvalues[i];
    printf("  without power iterations: rel. gap %.2e\n", (dense_e - rand_e) / dense_e);
    kvtc_tc_calib_destroy(cr);
    /* fewer vectors than columns (rank deficient): the basis stays orthonormal */
    cp.power_iters = 0;
    cp.rank = 30;
    CHECK_OK(kvtc_tc_calibrate(&cp, x, 10, &cr));
    orth = 0.0;
    for (i = 0; i < cr->rank; ++i)
        for (j = 0; j < cr->rank; ++j) {
            double s = 0.0;
            int k;
            for (k = 0; k < p; ++k) s += (double)cr->basis[i * p + k] * cr->basis[j * p + k];
            orth = fmax(orth, fabs(s - (i == j)));
        }
    CHECK(orth < 1e-5);
    for (i = 9; i < cr->rank; ++i) CHECK(cr->eigenvalues[i] < 1e-9 * cr->eigenvalues[0]); /* rank <= n - 1 */
    kvtc_tc_calib_destroy(cr);
    kvtc_tc_calib_destroy(cd);
    free(lam);
    free(x);
    return T_PASS;
}

static int test_tc_calib_dense(void) {
    /* mean and covariance against a float64 two-pass reference; truncation */
    int p = 24, i, j, k;
    size_t n = 500, t;
    float *x = tc_alloc_f(n * p), *z, *y;
    double *cov = tc_alloc_d((size_t)p * p), *mu = tc_alloc_d((size_t)p), *w = tc_alloc_d((size_t)p), *v = tc_alloc_d((size_t)p * p);
    kvtc_tc_calib *c, *c8;
    kvtc_rng r;
    kvtc_rng_seed(&r, 3);
    for (t = 0; t < n * p; ++t) x[t] = (float)(kvtc_rng_gaussian(&r) * (1 + (t % p)) + 100.0 * (t % 3)); /* large mean */
    for (t = 0; t < n; ++t)
        for (j = 0; j < p; ++j) mu[j] += x[t * p + j] / (double)n;
    for (t = 0; t < n; ++t)
        for (i = 0; i < p; ++i)
            for (j = 0; j < p; ++j) cov[i * p + j] += (x[t * p + i] - mu[i]) * (x[t * p + j] - mu[j]) / (double)(n - 1);
    CHECK_OK(tc_eig(cov, p, w, v));
    c = tc_calibrate(x, n, p, 0, KVTC_TC_EIG_DEFAULT);
    c8 = tc_calibrate(x, n, p, 8, KVTC_TC_EIG_DENSE);
    CHECK(c && c8 && c->rank == p && c8->rank == 8 && c->n_samples == n);
    for (j = 0; j < p; ++j) CHECK_NEAR(c->mean[j], mu[j], 1e-5 * fabs(mu[j]) + 1e-6);
    for (i = 0; i < p; ++i) {
        double dot = 0.0;
        CHECK_NEAR(c->eigenvalues[i], w[i], 1e-9 * w[0]);
        if (i < 8) CHECK(c8->eigenvalues[i] == c->eigenvalues[i]);
        for (k = 0; k < p; ++k) dot += c->basis[i * p + k] * v[i * p + k];
        CHECK_NEAR(fabs(dot), 1.0, 1e-5); /* same direction (eigenvalues are distinct here) */
    }
    {
        double tr = 0.0;
        for (i = 0; i < p; ++i) tr += cov[i * p + i];
        CHECK_NEAR(c->total_variance, tr, 1e-9 * tr);
        CHECK_NEAR(c8->total_variance, tr, 1e-9 * tr);
    }
    CHECK(c->id != c8->id && c->id != 0);
    /* full-rank project -> reconstruct is the identity (to float rounding) */
    z = tc_alloc_f(n * p);
    y = tc_alloc_f(n * p);
    CHECK_OK(kvtc_tc_calib_project(c, x, n, z, n * p));
    CHECK_OK(kvtc_tc_calib_reconstruct(c, z, n, y, n * p));
    for (t = 0; t < n * p; ++t) CHECK_NEAR(y[t], x[t], 1e-4 * (1 + fabs(x[t])));
    CHECK_ST(kvtc_tc_calib_project(c, x, n, z, n * p - 1), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_tc_calib_reconstruct(c8, z, n, y, n * p - 1), KVTC_ERR_SMALL);
    kvtc_tc_calib_destroy(c);
    kvtc_tc_calib_destroy(c8);
    free(x);
    free(z);
    free(y);
    free(cov);
    free(mu);
    free(w);
    free(v);
    return T_PASS;
}

static int test_tc_calib_save_load(void) {
    int p = 16, rank = 12;
    size_t n = 200, bytes = 0, i, trunc_ok = 0, flip_ok = 0;
    float *x = tc_alloc_f(n * p);
    uint8_t *blob, *copy;
    kvtc_tc_calib *c, *l = NULL;
    kvtc_rng r;
    kvtc_rng_seed(&r, 4);
    test_gaussian_fill(&r, x, n * p);
    c = tc_calibrate(x, n, p, rank, KVTC_TC_EIG_DENSE);
    CHECK(c);
    CHECK_OK(kvtc_tc_calib_saved_bytes(c, &bytes));
    CHECK(bytes == KVTC_TC_CALIB_HEADER_BYTES + 8 * (size_t)rank + 4 * (size_t)p + 4 * (size_t)rank * p);
    blob = (uint8_t *)malloc(bytes);
    CHECK_ST(kvtc_tc_calib_save(c, blob, bytes - 1), KVTC_ERR_SMALL);
    CHECK_OK(kvtc_tc_calib_save(c, blob, bytes));
    CHECK(memcmp(blob, "KTCC", 4) == 0 && blob[4] == KVTC_TC_FORMAT_VERSION && blob[5] == 0 && blob[6] == 1);
    CHECK(kvtc_fnv1a64("a", 1, KVTC_FNV1A64_INIT) == 0xaf63dc4c8601ec8cULL); /* FNV-1a test vector */
    {   /* the checksum field is the id, and FNV-1a of the blob with it zeroed */
        uint64_t id = 0, h;
        for (i = 0; i < 8; ++i) id |= (uint64_t)blob[40 + i] << (8 * i);
        CHECK(id == c->id);
        copy = (uint8_t *)malloc(bytes);
        memcpy(copy, blob, bytes);
        memset(copy + 40, 0, 8);
        h = kvtc_fnv1a64(copy, bytes, KVTC_FNV1A64_INIT);
        CHECK(h == id);
        free(copy);
    }
    CHECK_OK(kvtc_tc_calib_load(blob, bytes, NULL, &l));
    CHECK(l->id == c->id && l->dim == p && l->rank == rank && l->n_samples == n);
    CHECK(l->total_variance == c->total_variance);
    CHECK(memcmp(l->eigenvalues, c->eigenvalues, sizeof(double) * rank) == 0);
    CHECK(memcmp(l->mean, c->mean, sizeof(float) * p) == 0);
    CHECK(memcmp(l->basis, c->basis, sizeof(float) * rank * p) == 0);
    kvtc_tc_calib_destroy(l);
    /* trailing bytes are ignored */
    copy = (uint8_t *)malloc(bytes + 7);
    memcpy(copy, blob, bytes);
    CHECK_OK(kvtc_tc_calib_load(copy, bytes + 7, NULL, &l));
    kvtc_tc_calib_destroy(l);
    free(copy);
    /* truncated at every length: a copy of exactly that many bytes, so an
     * out-of-bounds read would show under ASan */
    for (i = 0; i < bytes; ++i) {
        copy = (uint8_t *)malloc(i ? i : 1);
        memcpy(copy, blob, i);
        l = (kvtc_tc_calib *)blob;
        CHECK_ST(kvtc_tc_calib_load(copy, i, NULL, &l), KVTC_ERR_CORRUPT);
        CHECK(l == NULL);
        trunc_ok++;
        free(copy);
    }
    /* every byte flipped: never accepted */
    copy = (uint8_t *)malloc(bytes);
    for (i = 0; i < bytes; ++i) {
        kvtc_status st;
        memcpy(copy, blob, bytes);
        copy[i] ^= (uint8_t)(1u << (i % 8));
        st = kvtc_tc_calib_load(copy, bytes, NULL, &l);
        CHECK(st == KVTC_ERR_CORRUPT || st == KVTC_ERR_VERSION || st == KVTC_ERR_UNSUPPORTED);
        flip_ok++;
    }
    /* forged checksums: bad values are still caught */
    {
        static const struct { size_t off; uint8_t val; kvtc_status want; } cases[] = {
            {4, KVTC_TC_FORMAT_VERSION + 1, KVTC_ERR_VERSION}, /* another version */
            {6, 2, KVTC_ERR_UNSUPPORTED}, /* dtype */
            {7, 1, KVTC_ERR_CORRUPT},   /* flags */
            {12, 17, KVTC_ERR_CORRUPT}, /* rank > dim */
            {50, 1, KVTC_ERR_CORRUPT},  /* reserved */
            {35, 1, KVTC_ERR_CORRUPT},  /* payload_bytes */
            {64 + 7, 0xff, KVTC_ERR_CORRUPT}, /* eigenvalue 0 -> NaN */
            {64 + 8 * 12 + 3, 0x7f, KVTC_ERR_CORRUPT}, /* mean[0] -> Inf/NaN */
        };
        size_t k;
        for (k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
            uint64_t h;
            memcpy(copy, blob, bytes);
            copy[cases[k].off] = cases[k].val;
            if (cases[k].off == 64 + 8 * 12 + 3) copy[cases[k].off - 1] = 0xff;
            memset(copy + 40, 0, 8);
            h = kvtc_fnv1a64(copy, bytes, KVTC_FNV1A64_INIT);
            for (i = 0; i < 8; ++i) copy[40 + i] = (uint8_t)(h >> (8 * i));
            CHECK_ST(kvtc_tc_calib_load(copy, bytes, NULL, &l), cases[k].want);
        }
        /* eigenvalues not descending */
        memcpy(copy, blob, bytes);
        memcpy(copy + 64, blob + 72, 8);
        memcpy(copy + 72, blob + 64, 8);
        memset(copy + 40, 0, 8);
        {
            uint64_t h = kvtc_fnv1a64(copy, bytes, KVTC_FNV1A64_INIT);
            for (i = 0; i < 8; ++i) copy[40 + i] = (uint8_t)(h >> (8 * i));
        }
        CHECK_ST(kvtc_tc_calib_load(copy, bytes, NULL, &l), KVTC_ERR_CORRUPT);
    }
    printf("  blob %zu bytes: %zu truncations and %zu bit flips rejected\n", bytes, trunc_ok, flip_ok);
    CHECK_ST(kvtc_tc_calib_load(NULL, bytes, NULL, &l), KVTC_ERR_NULL);
    CHECK_ST(kvtc_tc_calib_load(blob, bytes, NULL, NULL), KVTC_ERR_NULL);
    CHECK_ST(kvtc_tc_calib_save(c, NULL, bytes), KVTC_ERR_NULL);
    free(copy);
    free(blob);
    kvtc_tc_calib_destroy(c);
    kvtc_tc_calib_destroy(NULL);
    free(x);
    return T_PASS;
}

/* ---- RoPE ------------------------------------------------------------------------ */
static int test_tc_rope(void) {
    static const struct { kvtc_rope_style style; int hd, nh, rd; double theta; } cases[] = {
        {KVTC_ROPE_DEFAULT, 64, 1, 0, 0.0},         {KVTC_ROPE_HALF, 128, 3, 0, 500000.0},
        {KVTC_ROPE_INTERLEAVED, 64, 2, 0, 10000.0}, {KVTC_ROPE_HALF, 80, 1, 20, 10000.0},
        {KVTC_ROPE_INTERLEAVED, 96, 2, 32, 1e6},    {KVTC_ROPE_HALF, 2, 1, 0, 0.0}};
    static const int64_t pos[6] = {0, 1, 7, 4095, 131071, -5};
    size_t ci;
    for (ci = 0; ci < sizeof cases / sizeof cases[0]; ++ci) {
        kvtc_rope_params rp;
        int hd = cases[ci].hd, nh = cases[ci].nh, rd = cases[ci].rd ? cases[ci].rd : hd, t, h, k;
        double theta = cases[ci].theta ? cases[ci].theta : 10000.0, worst = 0.0, worst_id = 0.0;
        size_t nf = 6 * (size_t)nh * hd, i;
        float *x = tc_alloc_f(nf), *y = tc_alloc_f(nf);
        kvtc_rng r;
        memset(&rp, 0, sizeof rp);
        rp.head_dim = hd;
        rp.n_heads = cases[ci].nh;
        rp.style = cases[ci].style;
        rp.rotary_dim = cases[ci].rd;
        rp.theta = cases[ci].theta;
        kvtc_rng_seed(&r, 20 + ci);
        test_gaussian_fill(&r, x, nf);
        memcpy(y, x, nf * sizeof(float));
        CHECK_OK(kvtc_rope_apply(&rp, y, 6, pos));
        /* direct float64 formula */
        for (t = 0; t < 6; ++t)
            for (h = 0; h < nh; ++h) {
                const float *xv = x + ((size_t)t * nh + h) * hd;
                const float *yv = y + ((size_t)t * nh + h) * hd;
                for (k = 0; k < hd; ++k) {
                    double want;
                    if (k >= rd) {
                        want = xv[k];
                    } else {
                        int half = rd / 2, pair = cases[ci].style == KVTC_ROPE_INTERLEAVED ? k / 2 : k % half;
                        int first = cases[ci].style == KVTC_ROPE_INTERLEAVED ? k % 2 == 0 : k < half;
                        int other = cases[ci].style == KVTC_ROPE_INTERLEAVED ? (first ? k + 1 : k - 1)
                                                                              : (first ? k + half : k - half);
                        double ang = (double)pos[t] / pow(theta, 2.0 * pair / rd);
                        /* first of a pair: x cos - y sin; second: x sin + y cos (x = first) */
                        want = first ? xv[k] * cos(ang) - xv[other] * sin(ang) : xv[other] * sin(ang) + xv[k] * cos(ang);
                    }
                    worst = fmax(worst, fabs(yv[k] - want));
                }
            }
        CHECK_OK(kvtc_rope_remove(&rp, y, 6, pos));
        for (i = 0; i < nf; ++i) worst_id = fmax(worst_id, fabs(y[i] - x[i]));
        CHECK(worst < 2e-6 && worst_id < 4e-6);
        /* NULL positions = 0, 1, 2, ... */
        memcpy(y, x, nf * sizeof(float));
        {
            int64_t seq[6] = {0, 1, 2, 3, 4, 5};
            float *y2 = tc_alloc_f(nf);
            memcpy(y2, x, nf * sizeof(float));
            CHECK_OK(kvtc_rope_apply(&rp, y, 6, NULL));
            CHECK_OK(kvtc_rope_apply(&rp, y2, 6, seq));
            CHECK(memcmp(y, y2, nf * sizeof(float)) == 0);
            free(y2);
        }
        if (ci == 1) printf("  max |apply - float64 formula| %.2g, |remove(apply(x)) - x| %.2g\n", worst, worst_id);
        free(x);
        free(y);
    }
    {
        kvtc_rope_params rp;
        float x[8] = {0};
        memset(&rp, 0, sizeof rp);
        rp.head_dim = 7;
        CHECK_ST(kvtc_rope_apply(&rp, x, 1, NULL), KVTC_ERR_DIM);
        rp.head_dim = 0;
        CHECK_ST(kvtc_rope_apply(&rp, x, 1, NULL), KVTC_ERR_DIM);
        rp.head_dim = 8;
        rp.rotary_dim = 10;
        CHECK_ST(kvtc_rope_apply(&rp, x, 1, NULL), KVTC_ERR_ARG);
        rp.rotary_dim = 3;
        CHECK_ST(kvtc_rope_remove(&rp, x, 1, NULL), KVTC_ERR_ARG);
        rp.rotary_dim = 0;
        rp.theta = -1.0;
        CHECK_ST(kvtc_rope_apply(&rp, x, 1, NULL), KVTC_ERR_ARG);
        rp.theta = NAN;
        CHECK_ST(kvtc_rope_apply(&rp, x, 1, NULL), KVTC_ERR_ARG);
        rp.theta = 0.0;
        rp.style = (kvtc_rope_style)7;
        CHECK_ST(kvtc_rope_apply(&rp, x, 1, NULL), KVTC_ERR_ARG);
        rp.style = KVTC_ROPE_DEFAULT;
        rp.n_heads = -1;
        CHECK_ST(kvtc_rope_apply(&rp, x, 1, NULL), KVTC_ERR_ARG);
        rp.n_heads = 0;
        CHECK_ST(kvtc_rope_apply(&rp, NULL, 1, NULL), KVTC_ERR_NULL);
        CHECK_ST(kvtc_rope_apply(NULL, x, 1, NULL), KVTC_ERR_NULL);
        CHECK_OK(kvtc_rope_apply(&rp, NULL, 0, NULL));
        CHECK_ST(kvtc_rope_apply(&rp, x, (size_t)-1 / 4, NULL), KVTC_ERR_OVERFLOW);
    }
    return T_PASS;
}

/* ---- bit allocation -------------------------------------------------------- */
/* Exact minimum of sum lam_i 4^-b_i over sum b_i <= budget, 0 <= b_i <= max_bits, by DP. */
static double tc_dp_alloc(const double *lam, int n, int budget, int max_bits) {
    int cap = budget < n * max_bits ? budget : n * max_bits, i, b, k;
    double *cur = tc_alloc_d((size_t)cap + 1), *nxt = tc_alloc_d((size_t)cap + 1), best;
    for (b = 0; b <= cap; ++b) cur[b] = 0.0; /* no components: objective 0 with any bits left */
    for (i = 0; i < n; ++i) {
        for (b = 0; b <= cap; ++b) {
            double m = HUGE_VAL;
            for (k = 0; k <= max_bits && k <= b; ++k) {
                double v = ldexp(lam[i], -2 * k) + cur[b - k];
                if (v < m) m = v;
            }
            nxt[b] = m;
        }
        memcpy(cur, nxt, sizeof(double) * ((size_t)cap + 1));
    }
    best = cur[cap];
    free(cur);
    free(nxt);
    return best;
}

static int test_tc_bit_alloc(void) {
    uint8_t bits[64];
    double lam[64], obj, dp, worst = 0.0;
    unsigned char sbuf[64 * 16] = {0};
    void *scratch = (void *)(((uintptr_t)sbuf + 15) & ~(uintptr_t)15);
    size_t sb;
    kvtc_rng r;
    int inst, n_ties = 0, n_zero = 0, n_b0 = 0, n_full = 0, i;
    kvtc_rng_seed(&r, 77);
    for (inst = 0; inst < 1500; ++inst) {
        int n = 1 + (int)kvtc_rng_below(&r, 12), mb = 1 + (int)kvtc_rng_below(&r, 16), kind = inst % 5, sum = 0;
        int64_t budget = (int64_t)kvtc_rng_below(&r, (uint64_t)(n * mb + 4));
        static const double tie_vals[5] = {0.0, 1.0, 4.0, 0.25, 2.0};
        if (inst % 17 == 0) budget = 0;
        if (inst % 19 == 0) budget = (int64_t)n * mb + (int64_t)kvtc_rng_below(&r, 100);
        for (i = 0; i < n; ++i) {
            double u = kvtc_rng_uniform(&r);
            lam[i] = kind == 0 ? u : kind == 1 ? tie_vals[kvtc_rng_below(&r, 5)] /* ties, zeros, powers of 4 */
                   : kind == 2 ? (u < 0.4 ? 0.0 : u)                          /* zero eigenvalues */
                   : kind == 3 ? exp(60.0 * u - 30.0)                          /* wide dynamic range */
                               : pow(0.7, (double)i);                          /* decaying spectrum */
        }
        CHECK_OK(kvtc_bit_alloc_scratch_bytes(n, &sb));
        CHECK(sb <= sizeof sbuf - 16);
        CHECK_OK(kvtc_bit_alloc(lam, n, budget, mb, bits, 64, scratch, sb, &obj));
        for (i = 0; i < n; ++i) {
            CHECK(bits[i] <= mb);
            if (lam[i] == 0.0) CHECK(bits[i] == 0);
            sum += bits[i];
        }
        CHECK(sum <= budget);
        dp = tc_dp_alloc(lam, n, (int)budget, mb);
        if (fabs(obj - dp) > 1e-9 * fabs(dp)) printf("  instance %d: n=%d B=%d mb=%d greedy %.17g dp %.17g\n", inst, n, (int)budget, mb, obj, dp);
        CHECK(fabs(obj - dp) <= 1e-9 * fabs(dp));
        if (dp > 0) worst = fmax(worst, fabs(obj - dp) / dp);
        n_ties += kind == 1;
        n_zero += kind == 2 || kind == 1;
        n_b0 += budget == 0;
        n_full += budget >= (int64_t)n * mb;
    }
    printf("  greedy vs DP: 1500 random instances (%d with ties, %d with zero eigenvalues, %d with B = 0, %d with B >= p*b_max): max rel. diff %.1e\n",
           n_ties, n_zero, n_b0, n_full, worst);
    /* dim = 64, budget = 358, max_bits = 16 on a decaying spectrum with a tie */
    for (i = 0; i < 64; ++i) lam[i] = 50.0 * pow(0.9, (double)i) + 0.01;
    lam[10] = lam[11];
    CHECK_OK(kvtc_bit_alloc(lam, 64, 358, 16, bits, 64, scratch, sizeof sbuf - 16, &obj));
    dp = tc_dp_alloc(lam, 64, 358, 16);
    {
        int sum = 0;
        for (i = 0; i < 64; ++i) sum += bits[i];
        printf("  dim 64, B 358, b_max 16: greedy %.12g, DP %.12g, bits used %d, widths %d..%d\n", obj, dp, sum, bits[0], bits[63]);
        CHECK(sum == 358 && fabs(obj - dp) <= 1e-9 * dp && bits[10] >= bits[11]);
        for (i = 0; i + 1 < 64; ++i) CHECK(bits[i] >= bits[i + 1]); /* descending eigenvalues, descending widths */
    }
    /* deterministic ties: equal eigenvalues, lower index first */
    for (i = 0; i < 8; ++i) lam[i] = 1.0;
    CHECK_OK(kvtc_bit_alloc(lam, 8, 5, 4, bits, 8, scratch, sizeof sbuf - 16, &obj));
    for (i = 0; i < 8; ++i) CHECK(bits[i] == (i < 5));
    CHECK_OK(kvtc_bit_alloc(lam, 8, 11, 4, bits, 8, scratch, sizeof sbuf - 16, NULL));
    for (i = 0; i < 8; ++i) CHECK(bits[i] == 1 + (i < 3));
    /* bad inputs */
    CHECK_ST(kvtc_bit_alloc(lam, 8, -1, 4, bits, 8, scratch, sizeof sbuf - 16, &obj), KVTC_ERR_ARG);
    CHECK_ST(kvtc_bit_alloc(lam, 0, 5, 4, bits, 8, scratch, sizeof sbuf - 16, &obj), KVTC_ERR_DIM);
    CHECK_ST(kvtc_bit_alloc(lam, 8, 5, 0, bits, 8, scratch, sizeof sbuf - 16, &obj), KVTC_ERR_BITS);
    CHECK_ST(kvtc_bit_alloc(lam, 8, 5, 17, bits, 8, scratch, sizeof sbuf - 16, &obj), KVTC_ERR_BITS);
    CHECK_ST(kvtc_bit_alloc(lam, 8, 5, 4, bits, 7, scratch, sizeof sbuf - 16, &obj), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_bit_alloc(lam, 8, 5, 4, bits, 8, scratch, 8, &obj), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_bit_alloc(lam, 8, 5, 4, bits, 8, (char *)scratch + 1, 200, &obj), KVTC_ERR_ARG);
    CHECK_ST(kvtc_bit_alloc(NULL, 8, 5, 4, bits, 8, scratch, 200, &obj), KVTC_ERR_NULL);
    lam[3] = NAN;
    CHECK_ST(kvtc_bit_alloc(lam, 8, 5, 4, bits, 8, scratch, 200, &obj), KVTC_ERR_ARG);
    lam[3] = -1.0;
    CHECK_ST(kvtc_bit_alloc(lam, 8, 5, 4, bits, 8, scratch, 200, &obj), KVTC_ERR_ARG);
    return T_PASS;
}

/* ---- variable-width packing ---------------------------------------------------- */
static int test_tc_varpack(void) {
    uint16_t idx[40 * 20], back[40 * 20];
    uint8_t w[20], buf[2048];
    size_t need, rows, cols, i;
    kvtc_rng r;
    int trial;
    static const uint8_t ew[4] = {3, 0, 5, 1};
    static const uint16_t ex[8] = {5, 0, 17, 1, 2, 0, 30, 0};
    kvtc_rng_seed(&r, 8);
    for (trial = 0; trial < 400; ++trial) {
        size_t rb = 0, bit = 0, t, j;
        rows = kvtc_rng_below(&r, 40);
        cols = 1 + kvtc_rng_below(&r, 20);
        for (j = 0; j < cols; ++j) {
            w[j] = (uint8_t)(trial % 4 == 0 ? 0 : kvtc_rng_below(&r, 17));
            if (trial % 7 == 0) w[j] = (uint8_t)(1 + trial % 16); /* all equal */
            rb += w[j];
        }
        for (i = 0; i < rows * cols; ++i) idx[i] = (uint16_t)(kvtc_rng_u64(&r) & ((1u << w[i % cols]) - 1u));
        CHECK_OK(kvtc_pack_var_bytes(rows, w, cols, &need));
        CHECK(need == (rows * rb + 7) / 8);
        memset(buf, 0xAB, sizeof buf);
        CHECK_OK(kvtc_pack_var(idx, rows, w, cols, buf, need));
        CHECK(buf[need] == 0xAB);
        if ((rows * rb) % 8) CHECK((buf[need - 1] >> ((rows * rb) % 8)) == 0);
        for (t = 0; t < rows; ++t) /* the documented bit positions */
            for (j = 0; j < cols; ++j) {
                int b;
                for (b = 0; b < w[j]; ++b, ++bit)
                    CHECK(((buf[bit / 8] >> (bit % 8)) & 1u) == ((idx[t * cols + j] >> b) & 1u));
            }
        memset(back, 0xff, sizeof back);
        CHECK_OK(kvtc_unpack_var(buf, need, rows, w, cols, back, rows * cols));
        CHECK(rows == 0 || memcmp(idx, back, rows * cols * sizeof(uint16_t)) == 0);
        if (trial % 7 == 0 && rows * cols > 0) { /* equal widths: identical to kvtc_pack */
            uint8_t buf2[2048];
            CHECK_OK(kvtc_pack(idx, rows * cols, w[0], buf2, sizeof buf2));
            CHECK(memcmp(buf, buf2, need) == 0);
        }
    }
    CHECK_OK(kvtc_pack_var(ex, 2, ew, 4, buf, 3));
    printf("  widths {3,0,5,1}, rows {5,0,17,1} {2,0,30,0}: %02x %02x %02x\n", buf[0], buf[1], buf[2]);
    CHECK(buf[0] == 0x8d && buf[1] == 0xe5 && buf[2] == 0x01);
    CHECK_ST(kvtc_pack_var(ex, 2, ew, 4, buf, 2), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_unpack_var(buf, 2, 2, ew, 4, back, 8), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_unpack_var(buf, 3, 2, ew, 4, back, 7), KVTC_ERR_SMALL);
    w[0] = 2, w[1] = 0;
    idx[0] = 4, idx[1] = 0;
    CHECK_ST(kvtc_pack_var(idx, 1, w, 2, buf, 8), KVTC_ERR_ARG); /* 4 needs 3 bits */
    idx[0] = 0, idx[1] = 1;
    CHECK_ST(kvtc_pack_var(idx, 1, w, 2, buf, 8), KVTC_ERR_ARG); /* width 0 holds only 0 */
    w[1] = 17;
    CHECK_ST(kvtc_pack_var_bytes(1, w, 2, &need), KVTC_ERR_BITS);
    CHECK_ST(kvtc_pack_var_bytes(1, NULL, 2, &need), KVTC_ERR_NULL);
    w[1] = 16;
    CHECK_ST(kvtc_pack_var_bytes((size_t)-1 / 4, w, 2, &need), KVTC_ERR_OVERFLOW);
    return T_PASS;
}

/* ---- chunk coding ---------------------------------------------------------------- */
static int test_tc_chunk_basics(void) {
    int p = 32, i, j;
    size_t n_cal = 4000, n = 300, bytes, bytes2, sb, t;
    double lam[32];
    float mu[32], *xc = tc_alloc_f(n_cal * 32), *x = tc_alloc_f(n * 32), *y = tc_alloc_f(n * 32), *y2 = tc_alloc_f(n * 32);
    kvtc_tc_calib *cal, *cal2;
    kvtc_tc *tc, *tc2, *tcu, *other;
    kvtc_tc_chunk_header h;
    kvtc_tc_params rp;
    kvtc_status st;
    uint8_t *rec, *rec2;
    void *scratch;
    for (i = 0; i < p; ++i) {
        lam[i] = 3.0 * pow(0.85, i);
        mu[i] = (float)(0.5 * i - 3.0);
    }
    tc_make_data(xc, n_cal, p, lam, mu, 1, 2, 0);
    tc_make_data(x, n, p, lam, mu, 1, 3, 0);
    cal = tc_calibrate(xc, n_cal, p, 0, KVTC_TC_EIG_DEFAULT);
    CHECK(cal);
    tc = tc_coder(cal, 64, 0, KVTC_TC_QUANT_DEFAULT, 0, 0);
    CHECK(tc);
    CHECK_OK(kvtc_tc_params_resolved(&tc->params, cal, &rp));
    CHECK(rp.budget_bits == 64 && rp.max_bits == 8 && rp.quantizer == KVTC_TC_QUANT_GAUSSIAN && rp.n_sink == 4 &&
          rp.n_window == 128);
    CHECK(tc->row_bits == 64);
    /* the record size is the documented formula */
    CHECK_OK(kvtc_tc_chunk_bytes(tc, n, &bytes));
    CHECK(bytes == 64 + (size_t)p + 2 * (size_t)p * (4 + 128) + ((n - 132) * 64 + 7) / 8);
    rec = tc_roundtrip(tc, x, n, y, &bytes, &st);
    CHECK(rec && st == KVTC_OK);
    CHECK_OK(kvtc_tc_chunk_info(rec, bytes, &h));
    CHECK(h.version == KVTC_TC_FORMAT_VERSION && h.quantizer == KVTC_TC_QUANT_GAUSSIAN && h.dim == (uint32_t)p &&
          h.rank == (uint32_t)p && h.n_tokens == n && h.n_sink == 4 && h.n_window == 128 && h.row_bits == 64 &&
          h.calib_id == cal->id && h.record_bytes == bytes);
    /* sink and window tokens come back as fp16 */
    for (t = 0; t < n; ++t)
        if (t < 4 || t >= n - 128)
            for (j = 0; j < p; ++j) CHECK(y[t * p + j] == kvtc_f16_to_f32(kvtc_f32_to_f16(x[t * p + j])));
    /* deterministic */
    rec2 = tc_roundtrip(tc, x, n, y2, &bytes2, &st);
    CHECK(rec2 && bytes2 == bytes && memcmp(rec, rec2, bytes) == 0);
    free(rec2);
    /* records describe themselves: a coder with another budget and quantizer
     * of the same calibration decodes them identically */
    tc2 = tc_coder(cal, 200, 12, KVTC_TC_QUANT_UNIFORM, KVTC_TC_NONE, KVTC_TC_NONE);
    CHECK(tc2);
    CHECK_OK(kvtc_tc_scratch_bytes(tc2, n, &sb));
    scratch = malloc(sb + 16);
    CHECK_OK(kvtc_tc_decode(tc2, rec, bytes, y2, n * p, scratch, sb));
    CHECK(memcmp(y, y2, n * p * sizeof(float)) == 0);
    /* and the UNIFORM record with widths above 8 */
    tcu = tc_coder(cal, 280, 12, KVTC_TC_QUANT_GAUSSIAN, KVTC_TC_NONE, KVTC_TC_NONE);
    CHECK(tcu && tcu->widths[0] > 8);
    free(rec);
    rec = tc_roundtrip(tcu, x, n, y, &bytes, &st);
    CHECK(rec && st == KVTC_OK);
    {
        size_t nu = 0;
        for (i = 0; i < p; ++i) nu += tcu->widths[i] > 8;
        CHECK(bytes == 64 + (size_t)p + 8 * nu + (n * 280 + 7) / 8);
        printf("  GAUSSIAN B=280 b_max=12: %zu components above 8 bits fall back to UNIFORM; rel. error %.2e\n", nu,
               tc_mse(x, y, n, p) / cal->total_variance);
    }
    CHECK_OK(kvtc_tc_decode(tc2, rec, bytes, y2, n * p, scratch, sb));
    CHECK(memcmp(y, y2, n * p * sizeof(float)) == 0);
    /* another calibration: ERR_MISMATCH */
    cal2 = tc_calibrate(xc, n_cal / 2, p, 0, KVTC_TC_EIG_DEFAULT);
    other = tc_coder(cal2, 64, 0, KVTC_TC_QUANT_DEFAULT, 0, 0);
    CHECK(other && cal2->id != cal->id);
    CHECK_ST(kvtc_tc_decode(other, rec, bytes, y2, n * p, scratch, sb), KVTC_ERR_MISMATCH);
    /* short outputs */
    CHECK_ST(kvtc_tc_decode(tc2, rec, bytes, y2, n * p - 1, scratch, sb), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_tc_decode(tc2, rec, bytes, y2, n * p, scratch, 64), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_tc_decode(tc2, rec, bytes, y2, n * p, (char *)scratch + 8, sb), KVTC_ERR_ARG); /* misaligned */
    CHECK_ST(kvtc_tc_encode(tcu, x, n, rec, bytes - 1, scratch, sb), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_tc_encode(tcu, x, 0, rec, bytes, scratch, sb), KVTC_ERR_ARG);
    CHECK_ST(kvtc_tc_encode(tcu, NULL, n, rec, bytes, scratch, sb), KVTC_ERR_NULL);
    free(rec);
    /* fewer tokens than sink + window: all fp16 */
    rec = tc_roundtrip(tc, x, 100, y, &bytes, &st);
    CHECK(rec && st == KVTC_OK);
    CHECK(bytes == 64 + (size_t)p + 2 * (size_t)p * 100);
    for (t = 0; t < 100 * (size_t)p; ++t) CHECK(y[t] == kvtc_f16_to_f32(kvtc_f32_to_f16(x[t])));
    free(rec);
    /* NaN in a coded token: ERR_NONFINITE, that token decodes to mu; in a
     * sink token: zeros. A sink value beyond fp16: ERR_RANGE, zeros. */
    x[10 * p + 3] = NAN;
    rec = tc_roundtrip(tc, x, n, y, &bytes, &st);
    CHECK(rec && st == KVTC_ERR_NONFINITE);
    { /* z = 0 up to the codebook cell next to 0 (|centroid| <= 0.8 sigma) */
        double dd = 0.0;
        for (j = 0; j < p; ++j) dd += (y[10 * p + j] - mu[j]) * (y[10 * p + j] - mu[j]);
        CHECK(dd < 0.7 * cal->total_variance);
    }
    free(rec);
    x[10 * p + 3] = 0.0f;
    x[1 * p + 5] = INFINITY;
    rec = tc_roundtrip(tc, x, n, y, &bytes, &st);
    CHECK(rec && st == KVTC_ERR_NONFINITE);
    for (j = 0; j < p; ++j) CHECK(y[1 * p + j] == 0.0f);
    free(rec);
    x[1 * p + 5] = 1e6f;
    rec = tc_roundtrip(tc, x, n, y, &bytes, &st);
    CHECK(rec && st == KVTC_ERR_RANGE);
    for (j = 0; j < p; ++j) CHECK(y[1 * p + j] == 0.0f);
    free(rec);
    x[1 * p + 5] = 0.0f;
    /* truncated calibration (rank < dim) codes too; dropped energy is counted */
    {
        kvtc_tc_calib *c8 = tc_calibrate(xc, n_cal, p, 8, KVTC_TC_EIG_DENSE);
        kvtc_tc *t8 = tc_coder(c8, 48, 0, KVTC_TC_QUANT_DEFAULT, KVTC_TC_NONE, KVTC_TC_NONE);
        double rest = 0.0;
        CHECK(c8 && t8);
        for (i = 8; i < p; ++i) rest += cal->eigenvalues[i];
        rec = tc_roundtrip(t8, x, n, y, &bytes, &st);
        CHECK(rec && st == KVTC_OK);
        CHECK(tc_mse(x, y, n, p) > 0.8 * rest);
        free(rec);
        kvtc_tc_destroy(t8);
        kvtc_tc_calib_destroy(c8);
    }
    free(scratch);
    kvtc_tc_destroy(tc);
    kvtc_tc_destroy(tc2);
    kvtc_tc_destroy(tcu);
    kvtc_tc_destroy(other);
    kvtc_tc_destroy(NULL);
    kvtc_tc_calib_destroy(cal);
    kvtc_tc_calib_destroy(cal2);
    free(xc);
    free(x);
    free(y);
    free(y2);
    return T_PASS;
}

/* A little-endian fp32 of a record. */
static float tc_get_f32(const uint8_t *p) {
    uint32_t u = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Expected squared error of the UNIFORM quantizer (lo, scale, b bits) on
 * N(0, var), by the midpoint rule over +-9 sigma. */
static double tc_uniform_distortion(double lo, double scale, int b, double var) {
    double s = sqrt(var), qmax = (double)((1u << b) - 1u), h = 18.0 * s / 6000, acc = 0.0;
    int i;
    for (i = 0; i < 6000; ++i) {
        double z = -9.0 * s + (i + 0.5) * h, q = scale > 0 ? floor((z - lo) / scale + 0.5) : 0.0, e;
        q = q < 0 ? 0 : q > qmax ? qmax : q;
        e = z - (lo + q * scale);
        acc += e * e * exp(-0.5 * z * z / var);
    }
    return acc * h / sqrt(2.0 * 3.14159265358979323846 * var);
}

static int test_tc_predicted_error(void) {
    /* Gaussian data with a known covariance: measured error per token against
     * sum_i lambda_i D(b_i). Tolerance 6%: the chunk has 4096 tokens, so the
     * measured mean has ~1-2% sampling error at these budgets; the
     * calibration (12000 vectors) estimates lambda_i and the basis to ~1%. */
    static const int budgets[] = {16, 32, 64, 128, 192, 320};
    int p = 64, i, bi, q;
    size_t n_cal = 12000, n = 4096, bytes, nb = sizeof budgets / sizeof budgets[0];
    double lam[64], prev[2] = {HUGE_VAL, HUGE_VAL};
    float mu[64], *xc = tc_alloc_f(n_cal * 64), *x = tc_alloc_f(n * 64), *y = tc_alloc_f(n * 64);
    kvtc_tc_calib *cal;
    kvtc_status st;
    for (i = 0; i < p; ++i) {
        lam[i] = 4.0 * pow(0.92, i) + 0.02;
        mu[i] = (float)sin(i);
    }
    tc_make_data(xc, n_cal, p, lam, mu, 31, 32, 0);
    tc_make_data(x, n, p, lam, mu, 31, 33, 0);
    cal = tc_calibrate(xc, n_cal, p, 0, KVTC_TC_EIG_DEFAULT);
    CHECK(cal);
    printf("  p=64, 4096 tokens, trace %.3f; error per token, measured / predicted:\n", cal->total_variance);
    printf("  %6s %10s %21s %21s\n", "B", "bits/coord", "GAUSSIAN", "UNIFORM");
    for (bi = 0; bi < (int)nb; ++bi) {
        double meas[2], pred[2];
        for (q = 0; q < 2; ++q) {
            kvtc_tc_quantizer qk = q == 0 ? KVTC_TC_QUANT_GAUSSIAN : KVTC_TC_QUANT_UNIFORM;
            kvtc_tc *tc = tc_coder(cal, budgets[bi], 8, qk, KVTC_TC_NONE, KVTC_TC_NONE);
            uint8_t *rec;
            const uint8_t *params;
            CHECK(tc);
            rec = tc_roundtrip(tc, x, n, y, &bytes, &st);
            CHECK(rec && st == KVTC_OK);
            meas[q] = tc_mse(x, y, n, p);
            pred[q] = 0.0;
            params = rec + 64 + p;
            for (i = 0; i < p; ++i) {
                int b = tc->widths[i];
                double l = cal->eigenvalues[i];
                if (b == 0) pred[q] += l;
                else if (qk == KVTC_TC_QUANT_GAUSSIAN) pred[q] += l * tc->codebook_mse[b - 1];
                else {
                    float lo = tc_get_f32(params), sc = tc_get_f32(params + 4);
                    params += 8;
                    pred[q] += tc_uniform_distortion(lo, sc, b, l);
                }
            }
            CHECK_NEAR(meas[q], pred[q], 0.06 * pred[q]);
            CHECK(meas[q] < prev[q]); /* falls as the budget grows */
            prev[q] = meas[q];
            free(rec);
            kvtc_tc_destroy(tc);
        }
        printf("  %6d %10.3f %10.4f / %8.4f %10.4f / %8.4f\n", budgets[bi], budgets[bi] / (double)p, meas[0], pred[0],
               meas[1], pred[1]);
    }
    kvtc_tc_calib_destroy(cal);
    free(xc);
    free(x);
    free(y);
    return T_PASS;
}

/* Largest budget whose record of n tokens has ratio >= target (0 if none). */
static int tc_budget_for_ratio(const kvtc_tc_calib *cal, kvtc_tc_quantizer q, int max_bits, int sink, int window,
                               size_t n, double target) {
    int lo = 0, hi = cal->rank * max_bits;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        double ratio = 0.0;
        kvtc_tc *tc = tc_coder(cal, mid, max_bits, q, sink, window);
        if (tc) kvtc_tc_ratio(tc, n, &ratio);
        kvtc_tc_destroy(tc);
        if (ratio >= target) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

static int test_tc_quantizer_choice(void) {
    /* The two quantizers at equal record bytes (side data, header and widths
     * included): for each target ratio each gets the largest budget that
     * reaches it. Chunks of 1024 tokens, no sink/window tokens, p = 128,
     * decaying spectrum; Gaussian and heavy-tailed (Laplace) coefficients. */
    static const double ratios[] = {3.0, 4.0, 8.0, 16.0, 20.0};
    int p = 128, i, ri, dist, gauss_wins = 0, rows = 0;
    size_t n_cal = 4096, n = 1024, bytes;
    double lam[128];
    float *xc = tc_alloc_f(n_cal * 128), *x = tc_alloc_f(n * 128), *y = tc_alloc_f(n * 128);
    kvtc_status st;
    for (i = 0; i < p; ++i) lam[i] = pow((double)(i + 1), -1.5) + 1e-3;
    for (dist = 0; dist < 2; ++dist) {
        kvtc_tc_calib *cal;
        tc_make_data(xc, n_cal, p, lam, NULL, 41, 42, dist);
        tc_make_data(x, n, p, lam, NULL, 41, 43, dist);
        cal = tc_calibrate(xc, n_cal, p, 0, KVTC_TC_EIG_DEFAULT);
        CHECK(cal);
        printf("  %s coefficients, p=128, 1024-token chunks, relative error sum|x-x^|^2/sum|x-mu|^2 at equal bytes:\n",
               dist ? "Laplace" : "Gaussian");
        printf("  %6s | %8s %10s | %8s %10s | %s\n", "ratio", "B unif", "err unif", "B gauss", "err gauss", "lower");
        for (ri = 0; ri < (int)(sizeof ratios / sizeof ratios[0]); ++ri) {
            double err[2], got[2];
            int b[2], q;
            for (q = 0; q < 2; ++q) {
                kvtc_tc_quantizer qk = q == 0 ? KVTC_TC_QUANT_UNIFORM : KVTC_TC_QUANT_GAUSSIAN;
                kvtc_tc *tc;
                uint8_t *rec;
                b[q] = tc_budget_for_ratio(cal, qk, 8, KVTC_TC_NONE, KVTC_TC_NONE, n, ratios[ri]);
                tc = tc_coder(cal, b[q], 8, qk, KVTC_TC_NONE, KVTC_TC_NONE);
                CHECK(tc);
                rec = tc_roundtrip(tc, x, n, y, &bytes, &st);
                CHECK(rec && st == KVTC_OK);
                kvtc_tc_ratio(tc, n, &got[q]);
                CHECK(got[q] >= ratios[ri]);
                err[q] = tc_mse(x, y, n, p) / cal->total_variance;
                free(rec);
                kvtc_tc_destroy(tc);
            }
            printf("  %6.1f | %8d %10.3e | %8d %10.3e | %s\n", ratios[ri], b[0], err[0], b[1], err[1],
                   err[1] <= err[0] ? "GAUSSIAN" : "UNIFORM");
            if (dist == 0) {
                gauss_wins += err[1] <= err[0];
                ++rows;
            }
        }
        kvtc_tc_calib_destroy(cal);
    }
    /* the default (GAUSSIAN) must be the better one on Gaussian data */
    CHECK(gauss_wins == rows);
    free(xc);
    free(x);
    free(y);
    return T_PASS;
}

static int test_tc_ratio_table(void) {
    /* Ratio vs fp16 (every byte counted) and reconstruction quality with the
     * default quantizer; p = 128, decaying spectrum plus a mean. */
    static const double targets[] = {4.0, 8.0, 16.0, 20.0};
    int p = 128, i, ti, pass;
    size_t n_cal = 4096, n = 1024, bytes;
    double lam[128];
    float mu[128], *xc = tc_alloc_f(n_cal * 128), *x = tc_alloc_f(4096 * 128), *y = tc_alloc_f(4096 * 128);
    kvtc_tc_calib *cal;
    kvtc_status st;
    for (i = 0; i < p; ++i) {
        lam[i] = pow((double)(i + 1), -1.5) + 1e-3;
        mu[i] = (float)(0.3 * cos(0.7 * i));
    }
    tc_make_data(xc, n_cal, p, lam, mu, 51, 52, 0);
    tc_make_data(x, 4096, p, lam, mu, 51, 53, 0);
    cal = tc_calibrate(xc, n_cal, p, 0, KVTC_TC_EIG_DEFAULT);
    CHECK(cal);
    for (pass = 0; pass < 2; ++pass) {
        int sink = pass ? 0 : KVTC_TC_NONE, window = pass ? 0 : KVTC_TC_NONE;
        size_t nt = pass ? 4096 : n;
        printf("  %s, %zu-token chunks:\n", pass ? "sink 4 + window 128 fp16 tokens (defaults)" : "no sink/window tokens", nt);
        printf("  | target | budget B | bits/coord | ratio  | rel. MSE  | cosine   |\n");
        printf("  |--------|----------|------------|--------|-----------|----------|\n");
        for (ti = 0; ti < 4; ++ti) {
            int b = tc_budget_for_ratio(cal, KVTC_TC_QUANT_DEFAULT, 8, sink, window, nt, targets[ti]);
            kvtc_tc *tc = tc_coder(cal, b, 8, KVTC_TC_QUANT_DEFAULT, sink, window);
            uint8_t *rec;
            double ratio, rel, cosv;
            CHECK(tc);
            rec = tc_roundtrip(tc, x, nt, y, &bytes, &st);
            CHECK(rec && st == KVTC_OK);
            CHECK_OK(kvtc_tc_ratio(tc, nt, &ratio));
            CHECK(ratio >= targets[ti] && ratio == (double)(nt * p * 2) / bytes);
            rel = tc_mse(x, y, nt, p) / cal->total_variance;
            cosv = tc_mean_cosine(x, y, nt, p);
            printf("  | %5.0fx | %8d | %10.3f | %5.2fx | %9.3e | %8.5f |\n", targets[ti], b, 16.0 / ratio, ratio, rel, cosv);
            if (pass == 0) CHECK(cosv > (ti < 2 ? 0.95 : 0.85));
            free(rec);
            kvtc_tc_destroy(tc);
        }
    }
    kvtc_tc_calib_destroy(cal);
    free(xc);
    free(x);
    free(y);
    return T_PASS;
}

static int test_tc_record_checksum(void) {
    /* Values from an independent implementation of the definition (Python, big
     * integers mod 2^64) on bytes (131 i + 29 floor(i / 256) + 7) mod 256:
     * each piece boundary, records shorter than the checksum field and a
     * short last piece. */
    static const struct { size_t n; uint64_t h; } want[] = {
        {0, 0xcbf29ce484222325ULL}, {1, 0x5ec777990c036aa5ULL}, {50, 0x6413ef358630bd4cULL},
        {56, 0x23e967e5f3493b24ULL}, {64, 0xb442e1c701cced24ULL}, {255, 0xc6defa5b21568a82ULL},
        {256, 0xea9ea41e7722d024ULL}, {257, 0x7dc49d10f62927dfULL}, {1000, 0x71b2f2f467c2b155ULL},
        {4099, 0x8f2d7fa5aa49bfdaULL},
    };
    uint8_t *b = (uint8_t *)malloc(4099);
    size_t i, k;
    for (i = 0; i < 4099; ++i) b[i] = (uint8_t)((i * 131 + (i >> 8) * 29 + 7) & 0xff);
    for (k = 0; k < sizeof want / sizeof want[0]; ++k) CHECK(kvtc_tc_record_checksum(b, want[k].n) == want[k].h);
    CHECK(kvtc_tc_record_checksum(NULL, 100) == KVTC_FNV1A64_INIT);
    /* the checksum field does not count; every other byte does, in every piece */
    {
        const uint64_t h = kvtc_tc_record_checksum(b, 4099);
        for (i = 48; i < 56; ++i) b[i] ^= 0x5a;
        CHECK(kvtc_tc_record_checksum(b, 4099) == h);
        for (i = 0; i < 4099; i += 97) {
            if (i >= 48 && i < 56) continue;
            b[i] ^= 1;
            CHECK(kvtc_tc_record_checksum(b, 4099) != h);
            b[i] ^= 1;
        }
        /* two pieces swapped */
        for (i = 0; i < 256; ++i) {
            const uint8_t t = b[256 + i];
            b[256 + i] = b[512 + i];
            b[512 + i] = t;
        }
        CHECK(kvtc_tc_record_checksum(b, 4099) != h);
    }
    free(b);
    return T_PASS;
}

/* Recompute a record's checksum after an edit. */
static void tc_reseal(uint8_t *rec, size_t bytes) {
    uint64_t h;
    int i;
    if (bytes < 64) return;
    h = kvtc_tc_record_checksum(rec, bytes);
    for (i = 0; i < 8; ++i) rec[48 + i] = (uint8_t)(h >> (8 * i));
}

static int test_tc_bad_inputs(void) {
    int p = 16, i;
    size_t n_cal = 300, n = 40, bytes, sb, off, rejected = 0, decoded = 0;
    double lam[16];
    float *xc = tc_alloc_f(n_cal * 16), *x = tc_alloc_f(n * 16), *y = tc_alloc_f(n * 16);
    kvtc_tc_calib_params cp;
    kvtc_tc_calib *cal, *bad = NULL;
    kvtc_tc_params tp;
    kvtc_tc *tc = NULL;
    kvtc_status st;
    uint8_t *rec, *copy;
    void *scratch;
    kvtc_rng r;
    for (i = 0; i < p; ++i) lam[i] = pow(0.7, i);
    tc_make_data(xc, n_cal, p, lam, NULL, 61, 62, 0);
    tc_make_data(x, n, p, lam, NULL, 61, 63, 0);
    /* calibration arguments */
    memset(&cp, 0, sizeof cp);
    CHECK_ST(kvtc_tc_calibrate(&cp, xc, n_cal, &bad), KVTC_ERR_DIM); /* p = 0 */
    cp.dim = -3;
    CHECK_ST(kvtc_tc_calibrate(&cp, xc, n_cal, &bad), KVTC_ERR_DIM);
    cp.dim = KVTC_TC_MAX_DIM + 1;
    CHECK_ST(kvtc_tc_calibrate(&cp, xc, n_cal, &bad), KVTC_ERR_DIM);
    cp.dim = 2000;
    cp.method = KVTC_TC_EIG_DENSE;
    CHECK_OK(kvtc_tc_calib_params_resolved(&cp, &cp));
    cp.dim = 5000;
    cp.rank = 0;
    CHECK_ST(kvtc_tc_calibrate(&cp, xc, n_cal, &bad), KVTC_ERR_DIM); /* DENSE above its limit */
    memset(&cp, 0, sizeof cp);
    cp.dim = p;
    CHECK_ST(kvtc_tc_calibrate(&cp, xc, 1, &bad), KVTC_ERR_ARG); /* fewer vectors than needed */
    CHECK_ST(kvtc_tc_calibrate(&cp, xc, 0, &bad), KVTC_ERR_ARG);
    CHECK_ST(kvtc_tc_calibrate(&cp, NULL, n_cal, &bad), KVTC_ERR_NULL);
    CHECK_ST(kvtc_tc_calibrate(&cp, xc, n_cal, NULL), KVTC_ERR_NULL);
    cp.rank = p + 1;
    CHECK_ST(kvtc_tc_calibrate(&cp, xc, n_cal, &bad), KVTC_ERR_ARG);
    cp.rank = -1;
    CHECK_ST(kvtc_tc_calibrate(&cp, xc, n_cal, &bad), KVTC_ERR_ARG);
    cp.rank = 0;
    cp.method = (kvtc_tc_eig_method)9;
    CHECK_ST(kvtc_tc_calibrate(&cp, xc, n_cal, &bad), KVTC_ERR_ARG);
    cp.method = KVTC_TC_EIG_RANDOMIZED;
    cp.oversample = -2;
    CHECK_ST(kvtc_tc_calibrate(&cp, xc, n_cal, &bad), KVTC_ERR_ARG);
    cp.oversample = 0;
    cp.power_iters = 17;
    CHECK_ST(kvtc_tc_calibrate(&cp, xc, n_cal, &bad), KVTC_ERR_ARG);
    cp.power_iters = 0;
    cp.method = KVTC_TC_EIG_DEFAULT;
    xc[77] = NAN;
    bad = (kvtc_tc_calib *)xc;
    CHECK_ST(kvtc_tc_calibrate(&cp, xc, n_cal, &bad), KVTC_ERR_INPUT_NONFINITE);
    CHECK(bad == NULL);
    xc[77] = -INFINITY;
    CHECK_ST(kvtc_tc_calibrate(&cp, xc, n_cal, &bad), KVTC_ERR_INPUT_NONFINITE);
    xc[77] = 0.0f;
    CHECK_OK(kvtc_tc_calibrate(&cp, xc, n_cal, &cal));
    /* coder arguments */
    memset(&tp, 0, sizeof tp);
    tp.budget_bits = -1;
    CHECK_ST(kvtc_tc_create(&tp, cal, &tc), KVTC_ERR_ARG); /* negative budget */
    tp.budget_bits = 10;
    tp.max_bits = 17;
    CHECK_ST(kvtc_tc_create(&tp, cal, &tc), KVTC_ERR_BITS);
    tp.max_bits = -1;
    CHECK_ST(kvtc_tc_create(&tp, cal, &tc), KVTC_ERR_BITS);
    tp.max_bits = 0;
    tp.quantizer = (kvtc_tc_quantizer)5;
    CHECK_ST(kvtc_tc_create(&tp, cal, &tc), KVTC_ERR_ARG);
    tp.quantizer = KVTC_TC_QUANT_DEFAULT;
    tp.n_sink = -2;
    CHECK_ST(kvtc_tc_create(&tp, cal, &tc), KVTC_ERR_ARG);
    tp.n_sink = 2;
    tp.n_window = 3;
    CHECK_ST(kvtc_tc_create(&tp, NULL, &tc), KVTC_ERR_NULL);
    CHECK_ST(kvtc_tc_create(NULL, cal, &tc), KVTC_ERR_NULL);
    CHECK_OK(kvtc_tc_create(&tp, cal, &tc));
    CHECK_ST(kvtc_tc_chunk_bytes(tc, 0, &bytes), KVTC_ERR_ARG);
    CHECK_ST(kvtc_tc_scratch_bytes(tc, 0, &sb), KVTC_ERR_ARG);
    /* a record of 40 tokens: 2 sink, 3 window, 35 coded */
    CHECK_OK(kvtc_tc_chunk_bytes(tc, n, &bytes));
    CHECK_OK(kvtc_tc_scratch_bytes(tc, n, &sb));
    rec = (uint8_t *)malloc(bytes);
    scratch = malloc(sb);
    CHECK_OK(kvtc_tc_encode(tc, x, n, rec, bytes, scratch, sb));
    CHECK_OK(kvtc_tc_decode(tc, rec, bytes, y, n * p, scratch, sb));
    /* truncated at every byte offset: an exact-size heap copy each time */
    for (off = 0; off < bytes; ++off) {
        copy = (uint8_t *)malloc(off ? off : 1);
        memcpy(copy, rec, off);
        st = kvtc_tc_decode(tc, copy, off, y, n * p, scratch, sb);
        CHECK(st == KVTC_ERR_CORRUPT);
        ++rejected;
        free(copy);
    }
    /* every byte flipped (each bit position in turn): an error, never OK */
    copy = (uint8_t *)malloc(bytes);
    for (off = 0; off < bytes; ++off) {
        memcpy(copy, rec, bytes);
        copy[off] ^= (uint8_t)(1u << (off % 8));
        st = kvtc_tc_decode(tc, copy, bytes, y, n * p, scratch, sb);
        CHECK(st == KVTC_ERR_CORRUPT || st == KVTC_ERR_VERSION || st == KVTC_ERR_MISMATCH);
        ++rejected;
    }
    /* flipped bytes with the checksum forged: the decoder must validate the
     * fields itself (or decode the garbage safely) */
    kvtc_rng_seed(&r, 64);
    for (off = 0; off < bytes * 4; ++off) {
        size_t k, flips = 1 + off % 3;
        memcpy(copy, rec, bytes);
        for (k = 0; k < flips; ++k) {
            size_t at = off < bytes ? off : (size_t)kvtc_rng_below(&r, bytes);
            copy[at] = off < bytes ? (uint8_t)(copy[at] ^ 0xff) : (uint8_t)kvtc_rng_u64(&r);
        }
        tc_reseal(copy, bytes);
        st = kvtc_tc_decode(tc, copy, bytes, y, n * p, scratch, sb);
        if (st == KVTC_OK) ++decoded;
        else ++rejected;
    }
    /* header fields set to extremes, resealed */
    {
        static const size_t fields[] = {8, 12, 16, 20, 24, 28};
        static const uint32_t vals[] = {0, 1, 0xffffffffu, 0x80000000u, 16, 17};
        size_t fi, vi;
        for (fi = 0; fi < sizeof fields / sizeof fields[0]; ++fi)
            for (vi = 0; vi < sizeof vals / sizeof vals[0]; ++vi) {
                memcpy(copy, rec, bytes);
                for (i = 0; i < 4; ++i) copy[fields[fi] + i] = (uint8_t)(vals[vi] >> (8 * i));
                tc_reseal(copy, bytes);
                st = kvtc_tc_decode(tc, copy, bytes, y, n * p, scratch, sb);
                if (st == KVTC_OK) ++decoded;
                else ++rejected;
            }
        memcpy(copy, rec, bytes); /* record_bytes beyond the buffer */
        copy[40] = (uint8_t)(bytes + 1);
        copy[41] = (uint8_t)((bytes + 1) >> 8);
        tc_reseal(copy, bytes);
        CHECK_ST(kvtc_tc_decode(tc, copy, bytes, y, n * p, scratch, sb), KVTC_ERR_CORRUPT);
        memcpy(copy, rec, bytes); /* the previous version (its checksum was FNV-1a 64 of the whole record) */
        copy[4] = KVTC_TC_FORMAT_VERSION - 1;
        CHECK_ST(kvtc_tc_decode(tc, copy, bytes, y, n * p, scratch, sb), KVTC_ERR_VERSION);
    }
    printf("  record %zu bytes: %zu mutations rejected, %zu forged ones decoded safely\n", bytes, rejected, decoded);
    CHECK_ST(kvtc_tc_decode(tc, NULL, bytes, y, n * p, scratch, sb), KVTC_ERR_NULL);
    CHECK_ST(kvtc_tc_decode(NULL, rec, bytes, y, n * p, scratch, sb), KVTC_ERR_NULL);
    CHECK_ST(kvtc_tc_chunk_info(rec, 10, NULL), KVTC_ERR_NULL);
    free(copy);
    free(rec);
    free(scratch);
    kvtc_tc_destroy(tc);
    kvtc_tc_calib_destroy(cal);
    free(xc);
    free(x);
    free(y);
    return T_PASS;
}

const test_case tc_tests[] = {
    {"tc_eig_known", test_tc_eig_known},
    {"tc_eig_random", test_tc_eig_random},
    {"tc_randomized_svd", test_tc_randomized_svd},
    {"tc_calib_dense", test_tc_calib_dense},
    {"tc_calib_save_load", test_tc_calib_save_load},
    {"tc_rope", test_tc_rope},
    {"tc_bit_alloc", test_tc_bit_alloc},
    {"tc_varpack", test_tc_varpack},
    {"tc_chunk_basics", test_tc_chunk_basics},
    {"tc_predicted_error", test_tc_predicted_error},
    {"tc_quantizer_choice", test_tc_quantizer_choice},
    {"tc_ratio_table", test_tc_ratio_table},
    {"tc_record_checksum", test_tc_record_checksum},
    {"tc_bad_inputs", test_tc_bad_inputs},
};
const size_t tc_tests_count = sizeof tc_tests / sizeof tc_tests[0];
