/* Shared by the kvtc CPU test files: the test-case type and CHECK macros. */
#ifndef KVTC_TEST_COMMON_H
#define KVTC_TEST_COMMON_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kvtc.h"

enum { T_PASS = 0, T_FAIL = 1, T_SKIP = 2 };
typedef struct test_case {
    const char *name;
    int (*fn)(void);
} test_case;

#define CHECK(c)                                                                                                       \
    do {                                                                                                               \
        if (!(c)) {                                                                                                    \
            printf("  %s:%d: %s\n", __FILE__, __LINE__, #c);                                                           \
            return T_FAIL;                                                                                             \
        }                                                                                                              \
    } while (0)
#define CHECK_ST(call, want)                                                                                           \
    do {                                                                                                               \
        kvtc_status st_ = (call);                                                                                      \
        if (st_ != (want)) {                                                                                           \
            printf("  %s:%d: %s -> %s, want %s\n", __FILE__, __LINE__, #call, kvtc_status_string(st_),                 \
                   kvtc_status_string(want));                                                                          \
            return T_FAIL;                                                                                             \
        }                                                                                                              \
    } while (0)
#define CHECK_OK(call) CHECK_ST(call, KVTC_OK)
/* |a - b| <= tol, printing both on failure */
#define CHECK_NEAR(a, b, tol)                                                                                          \
    do {                                                                                                               \
        double a_ = (a), b_ = (b), t_ = (tol);                                                                         \
        if (!(fabs(a_ - b_) <= t_)) {                                                                                  \
            printf("  %s:%d: %s = %.10g, %s = %.10g, tol %.3g\n", __FILE__, __LINE__, #a, a_, #b, b_, t_);             \
            return T_FAIL;                                                                                             \
        }                                                                                                              \
    } while (0)

/* Fill n floats with N(0, 1) from a seeded generator. */
static KVTC__UNUSED void test_gaussian_fill(kvtc_rng *r, float *x, size_t n) {
    size_t i;
    for (i = 0; i < n; ++i) x[i] = (float)kvtc_rng_gaussian(r);
}

/* Normalize each of n rows of d floats to unit length. */
static KVTC__UNUSED void test_normalize_rows(float *x, size_t n, int d) {
    size_t i;
    int j;
    for (i = 0; i < n; ++i) {
        double s = 0.0;
        for (j = 0; j < d; ++j) s += (double)x[i * d + j] * x[i * d + j];
        s = 1.0 / sqrt(s);
        for (j = 0; j < d; ++j) x[i * d + j] = (float)(x[i * d + j] * s);
    }
}

#endif
