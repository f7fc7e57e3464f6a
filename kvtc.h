/* kvtc.h - KV-cache compression for LLM inference, CPU reference.  v0.1.0
 *
 * kvtc compresses the key/value cache of transformer inference 4-20x and
 * attends over the compressed cache directly. This file is the whole C99
 * library and the reference (oracle) for the GPU kernels in kvtc_cuda.cuh.
 *
 *   Do this:
 *      #define KVTC_IMPLEMENTATION
 *   before you include this file in *one* C or C++ file to create the
 *   implementation. Other files include it plainly for the declarations.
 *
 *   cc  -std=c99 -O2 -I. my_engine.c -lm
 *   nvcc -std=c++17 -O3 -arch=sm_90 -I. my_engine.cu
 *
 *   The implementation includes "codebooks.h" (the embedded Lloyd-Max
 *   codebooks) from the include path unless KVTC_NO_CODEBOOKS is defined;
 *   without it every codebook is generated when a codec is created.
 *
 * Options (define before the implementation include):
 *   KVTC_STATIC                  every function static to this translation unit
 *   KVTC_MALLOC(sz,u)/KVTC_FREE(p,u)  allocator (both or neither); u is the
 *                                `alloc_user` of the params of the call
 *   KVTC_ASSERT(x)               internal invariants only (default assert)
 *   KVTC_NO_CODEBOOKS            do not include codebooks.h
 *
 * Sections (search for >>name): >>status >>rng >>half >>pack >>rotation
 * >>lloyd >>codec >>cache >>attn
 *
 * What it does
 *   TurboQuant ("TQ", data-oblivious): x -> norm n and unit u = x/n; rotate
 *   y = P u with a seeded random orthogonal P (randomized Hadamard or dense
 *   Haar); quantize each y_j with a b-bit Lloyd-Max codebook for the marginal
 *   of one coordinate of a uniform point on the sphere; pack. The "prod"
 *   variant adds a 1-bit QJL sketch of the residual that makes inner products
 *   unbiased. A per-group affine quantizer is the simple data-aware option for
 *   values. A reference decode attention reads a paged cache of such records.
 *
 * Error handling: every function that can fail returns kvtc_status (KVTC_OK
 * is 0) and writes results through out-parameters; kvtc_status_string()
 * explains a code. The library never prints, aborts or exits on bad input,
 * keeps no mutable global state, and allocates only in the *_create calls.
 * Infallible helpers (RNG, half conversions, kvtc_version) return values.
 *
 * Revisions
 *   0.1.0 (2026-11-23) first release: RNG, rotations, Lloyd-Max, TQ MSE/prod,
 *                      affine, paged cache, reference decode attention.
 *
 * License: MIT (see end of file).
 */
#ifndef KVTC_H_INCLUDED
#define KVTC_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#define KVTC_VERSION_MAJOR 0
#define KVTC_VERSION_MINOR 1
#define KVTC_VERSION_PATCH 0
#define KVTC_VERSION_STRING "0.1.0"
/* Version of every packed layout documented below; bumped when one changes. */
#define KVTC_FORMAT_VERSION 1

#define KVTC_MAX_HEAD_DIM 1024 /* largest supported head_dim */
#define KVTC_MAX_QJL_DIM 2048  /* largest supported QJL sketch size m */
#define KVTC_MAX_BITS 8        /* widest codebook index */

#if defined(__GNUC__) || defined(__clang__)
#define KVTC__UNUSED __attribute__((unused))
#else
#define KVTC__UNUSED
#endif

#if !defined(KVTC_DEF) && defined(KVTC_STATIC)
#define KVTC_DEF static KVTC__UNUSED /* private copy per translation unit */
#elif !defined(KVTC_DEF)
#define KVTC_DEF extern
#endif

#ifdef __cplusplus
#define KVTC__RESTRICT __restrict
extern "C" {
#else
#define KVTC__RESTRICT restrict
#endif

/* >>status ----------------------------------------------------------------
 * One list generates the enum and kvtc_status_string(). Append-only. */
#define KVTC__STATUS_LIST(X)                                                   \
    X(OK, "ok")                                                                \
    X(ERR_NULL, "required pointer is NULL")                                    \
    X(ERR_DIM, "unsupported head_dim")                                         \
    X(ERR_BITS, "unsupported bit width")                                       \
    X(ERR_ARG, "invalid argument")                                             \
    X(ERR_OVERFLOW, "size computation overflows")                              \
    X(ERR_SMALL, "buffer too small")                                           \
    X(ERR_CORRUPT, "blob corrupt or truncated")                                \
    X(ERR_NOMEM, "allocation failed")                                          \
    X(ERR_NONFINITE, "input has NaN or Inf; those vectors were encoded as zero") \
    X(ERR_RANGE, "a norm or scale overflows its stored type; those vectors were encoded as zero") \
    X(ERR_UNSUPPORTED, "no kernel for this combination")                       \
    X(ERR_CUDA, "CUDA error")                                                  \
    X(ERR_NO_DEVICE, "no CUDA device")

#define KVTC__STATUS_ENUM(name, msg) KVTC_##name,
typedef enum kvtc_status { KVTC__STATUS_LIST(KVTC__STATUS_ENUM) KVTC_STATUS_COUNT } kvtc_status;
#undef KVTC__STATUS_ENUM

/* Message for a status code; never NULL ("unknown status" if out of range). */
KVTC_DEF const char *kvtc_status_string(kvtc_status s);
/* "MAJOR.MINOR.PATCH" of the implementation. */
KVTC_DEF const char *kvtc_version(void);

/* >>rng --------------------------------------------------------------------
 * xoshiro256** seeded through splitmix64: the same seed gives the same bits
 * everywhere. Gaussians use Marsaglia's polar method with kvtc's own log
 * built from + - * / only, so they are bit-identical on every IEEE-754
 * machine that does not contract a*b+c into fma (C99 mode, or -ffp-contract=off). */
typedef struct kvtc_rng {
    uint64_t s[4];
    double spare;  /* second Gaussian of the last polar pair */
    int has_spare;
} kvtc_rng;

KVTC_DEF void kvtc_rng_seed(kvtc_rng *r, uint64_t seed);
/* 64 uniform random bits. */
KVTC_DEF uint64_t kvtc_rng_u64(kvtc_rng *r);
/* Uniform double in [0, 1) with 53 random bits. */
KVTC_DEF double kvtc_rng_uniform(kvtc_rng *r);
/* Uniform integer in [0, n), unbiased (rejection); 0 if n == 0. */
KVTC_DEF uint64_t kvtc_rng_below(kvtc_rng *r, uint64_t n);
/* Standard normal N(0, 1). */
KVTC_DEF double kvtc_rng_gaussian(kvtc_rng *r);

/* >>half -------------------------------------------------------------------
 * IEEE binary16 and bfloat16 conversions, round to nearest even; overflow
 * gives +-Inf, NaN stays NaN (quiet), subnormals are exact. */
KVTC_DEF uint16_t kvtc_f32_to_f16(float x);
KVTC_DEF float kvtc_f16_to_f32(uint16_t h);
KVTC_DEF uint16_t kvtc_f32_to_bf16(float x);
KVTC_DEF float kvtc_bf16_to_f32(uint16_t h);

/* >>pack -------------------------------------------------------------------
 * Bit streams. Index i of width b occupies stream bits [i*b, i*b + b), least
 * significant bit first; stream bit k is bit (k % 8) of byte k / 8. Unused
 * high bits of the last byte are zero. Example: the eight 3-bit indices
 * 0,1,2,3,4,5,6,7 pack to the three bytes 88 c6 fa (hex). */

/* Bytes that n indices of `bits` (0..16) bits occupy: ceil(n*bits/8). */
KVTC_DEF kvtc_status kvtc_pack_bytes(size_t n, int bits, size_t *bytes);
/* Pack n indices of `bits` (1..16) bits; ERR_ARG if an index needs more bits. */
KVTC_DEF kvtc_status kvtc_pack(const uint16_t *idx, size_t n, int bits, void *out, size_t out_bytes);
/* Unpack n indices of `bits` (1..16) bits: the exact inverse of kvtc_pack. */
KVTC_DEF kvtc_status kvtc_unpack(const void *in, size_t in_bytes, size_t n, int bits, uint16_t *idx,
                                 size_t idx_count);

/* >>rotation ---------------------------------------------------------------
 * A seeded orthogonal P, applied to row vectors of head_dim floats:
 * "forward" y = P x, "transpose" x = P^T y.
 *
 * HADAMARD: `rounds` rounds of  signs -> permutation -> block FWHT.  Round r
 *   multiplies by random signs s_r, then (only when head_dim is not a power of
 *   two) gathers x'[i] = x[perm_r[i]] so the next blocks mix across the last
 *   ones, then applies the normalized fast Walsh-Hadamard transform to each
 *   block of `block` consecutive coordinates, `block` being the largest power
 *   of two dividing head_dim (80 = 5x16, 96 = 3x32, 192 = 3x64). Needs
 *   head_dim % 8 == 0. O(d log d).
 * DENSE: Haar-random orthogonal matrix, Householder QR of a Gaussian matrix
 *   with the sign fix Q <- Q diag(sign(R_ii)) (Mezzadri 2007); any head_dim.
 * NONE: identity.
 * Draw order from kvtc_rng_seed(seed): HADAMARD, per round, head_dim sign
 * draws (sign = top bit, 1 -> -1) then, when permuted, a Fisher-Yates
 * shuffle (i from head_dim-1 down to 1, j = kvtc_rng_below(i+1)); DENSE,
 * head_dim^2 Gaussians in row-major order. */
typedef enum kvtc_rotation_kind {
    KVTC_ROTATION_DEFAULT = 0, /* HADAMARD if head_dim % 8 == 0, else DENSE */
    KVTC_ROTATION_HADAMARD,
    KVTC_ROTATION_DENSE,
    KVTC_ROTATION_NONE,
    KVTC_ROTATION_COUNT
} kvtc_rotation_kind;

typedef struct kvtc_rotation {
    kvtc_rotation_kind kind;
    int head_dim;
    int rounds;       /* HADAMARD */
    int block;        /* HADAMARD: FWHT block size */
    uint64_t seed;
    float *signs;     /* HADAMARD: rounds x head_dim, each +1 or -1 */
    uint16_t *perm;   /* HADAMARD with block < head_dim: rounds x head_dim; else NULL */
    float *matrix;    /* DENSE: head_dim x head_dim, row-major, y_i = sum_j m[i*d+j] x_j */
} kvtc_rotation;

/* The dense Haar rotation in double, row-major head_dim x head_dim, into q
 * (q_count >= head_dim^2). head_dim in 2..KVTC_MAX_HEAD_DIM. */
KVTC_DEF kvtc_status kvtc_rotation_dense(uint64_t seed, int head_dim, double *q, size_t q_count);
/* Normalized fast Walsh-Hadamard transform in place; n a power of two <= 2^20. */
KVTC_DEF kvtc_status kvtc_fwht(float *x, int n);
/* Rotate n row vectors (x and y may be the same buffer). */
KVTC_DEF kvtc_status kvtc_rotation_apply(const kvtc_rotation *rot, const float *x, size_t n, float *y,
                                         size_t y_count);
/* Apply P^T to n row vectors (y and x may be the same buffer). */
KVTC_DEF kvtc_status kvtc_rotation_apply_t(const kvtc_rotation *rot, const float *y, size_t n, float *x,
                                           size_t x_count);
/* The explicit matrix of P in double (row-major, m_count >= head_dim^2). */
KVTC_DEF kvtc_status kvtc_rotation_matrix(const kvtc_rotation *rot, double *m, size_t m_count);

/* >>lloyd ------------------------------------------------------------------
 * Lloyd-Max codebook of 2^bits levels for one coordinate of a rotated unit
 * vector in R^head_dim:
 *   SPHERE:   the exact marginal, density ~ (1 - t^2)^((d-3)/2) on [-1, 1];
 *   GAUSSIAN: its large-d limit N(0, 1/d).
 * Cells are mass and first moment in closed form (regularized incomplete
 * beta / erfc), iterated from the f^(1/3) compander to a fixed point. The
 * codebook is symmetric: centroids ascending, boundaries the midpoints.
 * mse_unit is the expected ||u - u_hat||^2 of a uniformly random unit vector
 * (head_dim times the per-coordinate distortion) under the kind's density. */
typedef enum kvtc_codebook_kind {
    KVTC_CODEBOOK_DEFAULT = 0, /* SPHERE */
    KVTC_CODEBOOK_SPHERE,
    KVTC_CODEBOOK_GAUSSIAN,
    KVTC_CODEBOOK_COUNT
} kvtc_codebook_kind;

/* centroids: 2^bits floats; boundaries: 2^bits - 1 floats; mse_unit may be
 * NULL. head_dim 3..KVTC_MAX_HEAD_DIM, bits 1..8. Deterministic. */
KVTC_DEF kvtc_status kvtc_codebook_generate(kvtc_codebook_kind kind, int head_dim, int bits, float *centroids,
                                            size_t centroids_count, float *boundaries, size_t boundaries_count,
                                            double *mse_unit);

/* >>codec ------------------------------------------------------------------
 * Methods:
 *   TQ_MSE  : bits-bit codebook index per coordinate + one norm.
 *   TQ_PROD : (bits-1)-bit TQ_MSE + QJL: m sign bits of S r and ||r||, where
 *             r = y*n - s*c(idx) is the residual in the rotated domain and S a
 *             seeded m x head_dim N(0,1) matrix. Then (Zandieh et al. 2025)
 *               <q,x> ~ <q,x_hat> + ||r|| sqrt(pi/2)/m <S P q, sign(S r)>
 *             is unbiased. Sign bit 1 means (S r)_k >= 0.
 *   AFFINE  : no rotation; per group of g coordinates an fp16 scale and an
 *             fp16 minimum, x ~ min + q*scale, q in 0..2^bits-1.
 * "Norm" s (TQ): ||x|| or, with norm correction, ||x|| / ||c(idx)|| so the
 * decoded vector keeps the norm of x. Stored as fp16 (default: 2 bytes per
 * vector; norms above 65504 give ERR_RANGE, below ~6e-8 decode as zero) or fp32.
 *
 * Encoded layout of n vectors (a "page"; a paged cache is pages of block_size
 * vectors): sections, each starting at a 16-byte-aligned offset from the
 * page start, total rounded up to 16 (offsets from kvtc_codec_layout):
 *   codes  : n x code_bytes, code_bytes = ceil(head_dim * mse_bits / 8); the
 *            indices of vector i, bit-packed as in >>pack, from byte i*code_bytes
 *   scales : TQ: n norms (fp16 or fp32); AFFINE: n x groups x {fp16 scale, fp16 min}
 *   qjl    : TQ_PROD: n x ceil(m/8) bytes of sign bits (bit k as in >>pack)
 *   rnorms : TQ_PROD: n residual norms ||r|| (same type as the norms)
 * All multi-byte values little-endian. A zero vector (or a NaN/Inf or
 * out-of-range one, see ERR_NONFINITE/ERR_RANGE) is stored as all-zero bytes
 * and decodes to zeros. Records from untrusted sources decode to whatever
 * their bytes say (a NaN norm decodes to NaN); nothing is read out of bounds. */
typedef enum kvtc_method {
    KVTC_METHOD_DEFAULT = 0, /* TQ_MSE */
    KVTC_METHOD_TQ_MSE,
    KVTC_METHOD_TQ_PROD,
    KVTC_METHOD_AFFINE,
    KVTC_METHOD_COUNT
} kvtc_method;

typedef enum kvtc_norm_type {
    KVTC_NORM_DEFAULT = 0, /* FP16 */
    KVTC_NORM_FP16,
    KVTC_NORM_FP32,
    KVTC_NORM_COUNT
} kvtc_norm_type;

/* Zero means default: `kvtc_codec_params p = {0}; p.head_dim = 128; p.bits = 4;` */
typedef struct kvtc_codec_params {
    int head_dim;                /* required: 3..1024 (HADAMARD: multiple of 8) */
    int bits;                    /* required: TQ_MSE 1..8, TQ_PROD 2..8, AFFINE 1..8 */
    kvtc_method method;
    kvtc_rotation_kind rotation; /* TQ only; AFFINE never rotates */
    int rotation_rounds;         /* HADAMARD: 0 = 1 if head_dim is a power of two, else 2 */
    kvtc_codebook_kind codebook;
    kvtc_norm_type norm_type;
    int norm_correction;         /* 0 = default (on), 1 = on, -1 = off */
    int qjl_dim;                 /* TQ_PROD: m, 0 = head_dim; 1..KVTC_MAX_QJL_DIM */
    int group_size;              /* AFFINE: 0 = 32, 16 or 8 (largest dividing head_dim), else must divide it */
    uint64_t seed;               /* rotation seed; S uses a seed derived from it */
    void *alloc_user;            /* passed to KVTC_MALLOC/KVTC_FREE */
} kvtc_codec_params;

/* A created codec. Read-only for callers (the GPU side uploads its tables). */
typedef struct kvtc_codec {
    kvtc_codec_params params; /* resolved: no zero defaults left */
    int mse_bits;             /* width of each code: bits (TQ_MSE, AFFINE), bits-1 (TQ_PROD) */
    int n_groups;             /* AFFINE: head_dim / group_size */
    size_t code_bytes;        /* per vector */
    size_t scale_bytes;       /* per vector */
    size_t qjl_bytes;         /* per vector, TQ_PROD */
    size_t rnorm_bytes;       /* per vector, TQ_PROD */
    float centroids[1 << KVTC_MAX_BITS];        /* TQ: 2^mse_bits, ascending */
    float boundaries[(1 << KVTC_MAX_BITS) - 1]; /* TQ: 2^mse_bits - 1 */
    double codebook_mse_unit;
    kvtc_rotation rot;
    float *qjl; /* TQ_PROD: qjl_dim x head_dim, row-major */
} kvtc_codec;

/* Byte offsets of each section of n encoded vectors, and the total. */
typedef struct kvtc_layout {
    size_t codes, scales, qjl, rnorms, bytes;
} kvtc_layout;

/* What each zero field of *p means: the parameters a codec would use. */
KVTC_DEF kvtc_status kvtc_codec_params_resolved(const kvtc_codec_params *p, kvtc_codec_params *out);
/* Build the codebook, rotation and QJL matrix (allocates through KVTC_MALLOC). */
KVTC_DEF kvtc_status kvtc_codec_create(const kvtc_codec_params *p, kvtc_codec **out);
/* Free a codec from kvtc_codec_create (NULL is fine). */
KVTC_DEF void kvtc_codec_destroy(kvtc_codec *c);
/* Section offsets and total bytes of n encoded vectors. */
KVTC_DEF kvtc_status kvtc_codec_layout(const kvtc_codec *c, size_t n_vectors, kvtc_layout *out);
/* Total bytes of n encoded vectors (kvtc_codec_layout(...).bytes). */
KVTC_DEF kvtc_status kvtc_codec_encoded_bytes(const kvtc_codec *c, size_t n_vectors, size_t *bytes);
/* Encode n row vectors of head_dim floats. May return ERR_NONFINITE/ERR_RANGE
 * after encoding every vector (the offending ones as zero). */
KVTC_DEF kvtc_status kvtc_codec_encode(const kvtc_codec *c, const float *x, size_t n_vectors, void *out,
                                       size_t out_bytes);
/* Decode n vectors encoded by kvtc_codec_encode. */
KVTC_DEF kvtc_status kvtc_codec_decode(const kvtc_codec *c, const void *in, size_t in_bytes, size_t n_vectors,
                                       float *x, size_t x_count);
/* Estimates of <q, x_i> for n encoded vectors, straight from the codes (for
 * TQ_PROD with the QJL term). */
KVTC_DEF kvtc_status kvtc_codec_score(const kvtc_codec *c, const float *q, const void *in, size_t in_bytes,
                                      size_t n_vectors, float *scores, size_t scores_count);
/* Bits per coordinate of a stored vector, codes and norms/scales included. */
KVTC_DEF kvtc_status kvtc_codec_bits_per_coord(const kvtc_codec *c, double *bits);

/* >>cache ------------------------------------------------------------------
 * Paged cache: [n_blocks][n_kv_heads] pages, each the encoded layout of
 * block_size vectors (page_bytes = kvtc_codec_encoded_bytes(block_size), a
 * multiple of 16). Token slot = block * block_size + offset. Writes take
 * x as [n_tokens][n_kv_heads][head_dim] and slot_mapping[n_tokens]; a slot of
 * -1 skips the token. */
typedef struct kvtc_cache_params {
    int n_blocks;
    int block_size;
    int n_kv_heads;
} kvtc_cache_params;

/* Bytes of one page and of the whole cache. */
KVTC_DEF kvtc_status kvtc_cache_bytes(const kvtc_codec *c, const kvtc_cache_params *cp, size_t *page_bytes,
                                      size_t *cache_bytes);
/* Encode tokens into their slots. Same ERR_NONFINITE/ERR_RANGE rule as encode. */
KVTC_DEF kvtc_status kvtc_cache_write(const kvtc_codec *c, const kvtc_cache_params *cp, const float *x,
                                      size_t n_tokens, const int64_t *slot_mapping, void *cache,
                                      size_t cache_bytes);
/* Decode tokens from their slots into x [n_tokens][n_kv_heads][head_dim];
 * a slot of -1 gives zeros. */
KVTC_DEF kvtc_status kvtc_cache_read(const kvtc_codec *c, const kvtc_cache_params *cp, const void *cache,
                                     size_t cache_bytes, size_t n_tokens, const int64_t *slot_mapping, float *x,
                                     size_t x_count);

/* >>attn -------------------------------------------------------------------
 * Reference decode attention over compressed paged caches: one query token
 * per sequence, query head h reads KV head h / (n_q_heads / n_kv_heads).
 * Keys are scored in the rotated domain straight from their codes,
 *   s_i = scale * n_i * <P q, c(idx_i)>   (+ the QJL term for TQ_PROD),
 * softmax in double, values accumulated in the rotated domain and rotated
 * back once (AFFINE values are accumulated as decoded). Token t of sequence
 * b lives in block block_table[b*max_blocks_per_seq + t/block_size] at
 * offset t % block_size. A sequence of context length 0 outputs zeros. */
typedef struct kvtc_attn_params {
    kvtc_cache_params cache; /* shared by the K and V caches */
    int n_seqs;
    int n_q_heads;           /* a multiple of cache.n_kv_heads */
    int max_blocks_per_seq;  /* row length of block_table */
    float scale;             /* softmax scale; 0 = 1/sqrt(head_dim) */
} kvtc_attn_params;

/* q: [n_seqs][n_q_heads][head_dim]; out: the same shape. */
KVTC_DEF kvtc_status kvtc_attn_decode(const kvtc_codec *kc, const kvtc_codec *vc, const kvtc_attn_params *p,
                                      const float *q, const void *k_cache, size_t k_cache_bytes,
                                      const void *v_cache, size_t v_cache_bytes, const int32_t *block_table,
                                      const int32_t *context_lens, float *out, size_t out_count);

#ifdef __cplusplus
}
#endif
#endif /* KVTC_H_INCLUDED */

/* ======================================================================== */
#if defined(KVTC_IMPLEMENTATION) && !defined(KVTC_IMPLEMENTATION_INCLUDED)
#define KVTC_IMPLEMENTATION_INCLUDED

#include <math.h>
#include <string.h>

#if defined(KVTC_MALLOC) != defined(KVTC_FREE)
#error "define both KVTC_MALLOC(size, user) and KVTC_FREE(ptr, user), or neither"
#endif
#ifndef KVTC_MALLOC
#include <stdlib.h>
#define KVTC_MALLOC(sz, u) ((void)(u), malloc(sz))
#define KVTC_FREE(p, u) ((void)(u), free(p))
#endif
#ifndef KVTC_ASSERT
#include <assert.h>
#define KVTC_ASSERT(x) assert(x)
#endif

#ifndef KVTC_NO_CODEBOOKS
#include "codebooks.h"
#endif

#define KVTC__PI 3.14159265358979323846
#define KVTC__SQRT_PI_OVER_2 1.25331413731550025121

#ifdef __cplusplus
extern "C" {
#endif

/* >>status */
KVTC_DEF const char *kvtc_status_string(kvtc_status s) {
#define KVTC__STATUS_MSG(name, msg) msg,
    static const char *const msgs[] = {KVTC__STATUS_LIST(KVTC__STATUS_MSG)};
#undef KVTC__STATUS_MSG
    if ((int)s < 0 || (int)s >= (int)KVTC_STATUS_COUNT) return "unknown status";
    return msgs[s];
}

KVTC_DEF const char *kvtc_version(void) { return KVTC_VERSION_STRING; }

/* a * b into *out, or 0 if it overflows size_t. */
static KVTC__UNUSED int kvtc__mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > (size_t)-1 / a) return 0;
    *out = a * b;
    return 1;
}
static KVTC__UNUSED int kvtc__add_size(size_t a, size_t b, size_t *out) {
    if (b > (size_t)-1 - a) return 0;
    *out = a + b;
    return 1;
}
/* Round up to a multiple of 16, or 0 on overflow. */
static KVTC__UNUSED int kvtc__align16(size_t a, size_t *out) {
    if (a > (size_t)-1 - 15) return 0;
    *out = (a + 15) & ~(size_t)15;
    return 1;
}
static int kvtc__is_pow2(int n) { return n > 0 && (n & (n - 1)) == 0; }

/* >>rng
 * splitmix64 (Steele et al. 2014) expands the seed; xoshiro256** (Blackman &
 * Vigna 2018) generates. */
static uint64_t kvtc__splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static uint64_t kvtc__rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

KVTC_DEF void kvtc_rng_seed(kvtc_rng *r, uint64_t seed) {
    int i;
    if (!r) return;
    for (i = 0; i < 4; ++i) r->s[i] = kvtc__splitmix64(&seed);
    r->spare = 0.0;
    r->has_spare = 0;
}

KVTC_DEF uint64_t kvtc_rng_u64(kvtc_rng *r) {
    uint64_t *s = r->s, result = kvtc__rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = kvtc__rotl(s[3], 45);
    return result;
}

KVTC_DEF double kvtc_rng_uniform(kvtc_rng *r) { return (double)(kvtc_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

KVTC_DEF uint64_t kvtc_rng_below(kvtc_rng *r, uint64_t n) {
    uint64_t x, limit;
    if (n == 0) return 0;
    limit = (uint64_t)0 - ((uint64_t)0 - n) % n; /* largest multiple of n, mod 2^64 */
    do x = kvtc_rng_u64(r);
    while (limit != 0 && x >= limit);
    return x % n;
}

/* Natural log for x > 0 from + - * / only: x = m 2^e with m in [sqrt(1/2),
 * sqrt(2)), log m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172, by its series. */
static double kvtc__log(double x) {
    static const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    double s, s2, term, sum;
    int e = 0, k;
    while (x >= 1.4142135623730951) { x *= 0.5; ++e; }
    while (x < 0.7071067811865476) { x *= 2.0; --e; }
    s = (x - 1.0) / (x + 1.0);
    s2 = s * s;
    term = s;
    sum = 0.0;
    for (k = 1; k < 40; k += 2) { /* s^39/39 < 1e-32 */
        sum += term / (double)k;
        term *= s2;
    }
    return (double)e * ln2_lo + 2.0 * sum + (double)e * ln2_hi;
}

KVTC_DEF double kvtc_rng_gaussian(kvtc_rng *r) {
    double u, v, s, f;
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    do {
        u = 2.0 * kvtc_rng_uniform(r) - 1.0;
        v = 2.0 * kvtc_rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    f = sqrt(-2.0 * kvtc__log(s) / s); /* sqrt is correctly rounded in IEEE-754 */
    r->spare = v * f;
    r->has_spare = 1;
    return u * f;
}

/* >>half */
static uint32_t kvtc__f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}
static float kvtc__bits_f32(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

KVTC_DEF uint16_t kvtc_f32_to_f16(float x) {
    uint32_t u = kvtc__f32_bits(x), sign = (u >> 16) & 0x8000u, mant = u & 0x7fffffu;
    int e = (int)((u >> 23) & 0xff);
    if (e == 255) return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0u)); /* Inf or quiet NaN */
    e = e - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* subnormal half (or zero): shift the full significand */
        uint32_t m, shift, half, rest, q;
        if (e < -10) return (uint16_t)sign; /* below half the smallest subnormal */
        m = mant | 0x800000u;
        shift = (uint32_t)(14 - e);
        q = m >> shift;
        rest = m & ((1u << shift) - 1u);
        half = 1u << (shift - 1);
        if (rest > half || (rest == half && (q & 1u))) ++q;
        return (uint16_t)(sign | q);
    } else {
        uint32_t q = ((uint32_t)e << 10) | (mant >> 13), rest = mant & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (q & 1u))) ++q; /* may carry into Inf: correct */
        return (uint16_t)(sign | q);
    }
}

KVTC_DEF float kvtc_f16_to_f32(uint16_t h) {
    uint32_t sign = ((uint32_t)h & 0x8000u) << 16, e = ((uint32_t)h >> 10) & 0x1f, m = (uint32_t)h & 0x3ffu;
    if (e == 0) { /* zero or subnormal: m * 2^-24, exact in float */
        float f = (float)m * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    if (e == 31) return kvtc__bits_f32(sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0u));
    return kvtc__bits_f32(sign | ((e - 15 + 127) << 23) | (m << 13));
}

KVTC_DEF uint16_t kvtc_f32_to_bf16(float x) {
    uint32_t u = kvtc__f32_bits(x);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu)) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

KVTC_DEF float kvtc_bf16_to_f32(uint16_t h) { return kvtc__bits_f32((uint32_t)h << 16); }

/* >>pack */
KVTC_DEF kvtc_status kvtc_pack_bytes(size_t n, int bits, size_t *bytes) {
    size_t nbits;
    if (!bytes) return KVTC_ERR_NULL;
    if (bits < 0 || bits > 16) return KVTC_ERR_BITS;
    if (!kvtc__mul_size(n, (size_t)bits, &nbits)) return KVTC_ERR_OVERFLOW;
    *bytes = nbits / 8 + (nbits % 8 != 0);
    return KVTC_OK;
}

/* Write n indices of `bits` bits LSB-first from byte 0 of dst. */
static void kvtc__pack_u16(const uint16_t *KVTC__RESTRICT idx, size_t n, int bits, uint8_t *KVTC__RESTRICT dst) {
    uint32_t acc = 0;
    int have = 0;
    size_t i;
    for (i = 0; i < n; ++i) {
        acc |= (uint32_t)idx[i] << have;
        have += bits;
        while (have >= 8) {
            *dst++ = (uint8_t)acc;
            acc >>= 8;
            have -= 8;
        }
    }
    if (have > 0) *dst = (uint8_t)acc;
}

static void kvtc__unpack_u16(const uint8_t *KVTC__RESTRICT src, size_t n, int bits, uint16_t *KVTC__RESTRICT idx) {
    uint32_t acc = 0, mask = (1u << bits) - 1u;
    int have = 0;
    size_t i;
    for (i = 0; i < n; ++i) {
        while (have < bits) {
            acc |= (uint32_t)(*src++) << have;
            have += 8;
        }
        idx[i] = (uint16_t)(acc & mask);
        acc >>= bits;
        have -= bits;
    }
}

KVTC_DEF kvtc_status kvtc_pack(const uint16_t *idx, size_t n, int bits, void *out, size_t out_bytes) {
    size_t need, i;
    kvtc_status st;
    if (bits < 1 || bits > 16) return KVTC_ERR_BITS;
    if ((st = kvtc_pack_bytes(n, bits, &need)) != KVTC_OK) return st;
    if (n == 0) return KVTC_OK;
    if (!idx || !out) return KVTC_ERR_NULL;
    if (out_bytes < need) return KVTC_ERR_SMALL;
    for (i = 0; i < n; ++i)
        if ((uint32_t)idx[i] >> bits) return KVTC_ERR_ARG;
    kvtc__pack_u16(idx, n, bits, (uint8_t *)out);
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_unpack(const void *in, size_t in_bytes, size_t n, int bits, uint16_t *idx,
                                 size_t idx_count) {
    size_t need;
    kvtc_status st;
    if (bits < 1 || bits > 16) return KVTC_ERR_BITS;
    if ((st = kvtc_pack_bytes(n, bits, &need)) != KVTC_OK) return st;
    if (n == 0) return KVTC_OK;
    if (!idx || !in) return KVTC_ERR_NULL;
    if (in_bytes < need || idx_count < n) return KVTC_ERR_SMALL;
    kvtc__unpack_u16((const uint8_t *)in, n, bits, idx);
    return KVTC_OK;
}

/* Index j (of `bits` <= 8 bits) of a packed row; reads only bytes of the row. */
static unsigned kvtc__code_at(const uint8_t *row, size_t row_bytes, int j, int bits) {
    size_t bit = (size_t)j * (size_t)bits, byte = bit >> 3;
    unsigned v = row[byte];
    if (byte + 1 < row_bytes) v |= (unsigned)row[byte + 1] << 8;
    return (v >> (bit & 7)) & ((1u << bits) - 1u);
}

/* >>rotation */
static void kvtc__fwht_f(float *x, int n) {
    int h, i, j;
    float norm;
    for (h = 1; h < n; h <<= 1)
        for (i = 0; i < n; i += h << 1)
            for (j = i; j < i + h; ++j) {
                float a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
    norm = (float)(1.0 / sqrt((double)n));
    for (i = 0; i < n; ++i) x[i] *= norm;
}

static void kvtc__fwht_d(double *x, int n) {
    int h, i, j;
    double norm = 1.0 / sqrt((double)n);
    for (h = 1; h < n; h <<= 1)
        for (i = 0; i < n; i += h << 1)
            for (j = i; j < i + h; ++j) {
                double a = x[j], b = x[j + h];
                x[j] = a + b;
                x[j + h] = a - b;
            }
    for (i = 0; i < n; ++i) x[i] *= norm;
}

KVTC_DEF kvtc_status kvtc_fwht(float *x, int n) {
    if (!x) return KVTC_ERR_NULL;
    if (!kvtc__is_pow2(n) || n > (1 << 20)) return KVTC_ERR_DIM;
    kvtc__fwht_f(x, n);
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_rotation_dense(uint64_t seed, int head_dim, double *q, size_t q_count) {
    double tau[KVTC_MAX_HEAD_DIM], rsign[KVTC_MAX_HEAD_DIM];
    kvtc_rng rng;
    int d = head_dim, i, j, k;
    if (!q) return KVTC_ERR_NULL;
    if (d < 2 || d > KVTC_MAX_HEAD_DIM) return KVTC_ERR_DIM;
    if (q_count < (size_t)d * (size_t)d) return KVTC_ERR_SMALL;
    kvtc_rng_seed(&rng, seed);
    for (i = 0; i < d * d; ++i) q[i] = kvtc_rng_gaussian(&rng);
    /* Householder QR in place (LAPACK dgeqr2): H_k = I - tau_k v v^T with
     * v_k = 1 and v_i (i > k) stored below the diagonal; R_kk = beta. */
    for (k = 0; k < d; ++k) {
        double xnorm = 0.0, alpha = q[k * d + k], beta;
        for (i = k + 1; i < d; ++i) xnorm += q[i * d + k] * q[i * d + k];
        if (xnorm == 0.0) { /* already reduced (probability zero for Gaussians) */
            tau[k] = 0.0;
            rsign[k] = alpha < 0.0 ? -1.0 : 1.0;
            continue;
        }
        beta = sqrt(alpha * alpha + xnorm);
        if (alpha >= 0.0) beta = -beta;
        tau[k] = (beta - alpha) / beta;
        rsign[k] = beta < 0.0 ? -1.0 : 1.0;
        for (i = k + 1; i < d; ++i) q[i * d + k] /= alpha - beta;
        for (j = k + 1; j < d; ++j) {
            double w = q[k * d + j];
            for (i = k + 1; i < d; ++i) w += q[i * d + k] * q[i * d + j];
            w *= tau[k];
            q[k * d + j] -= w;
            for (i = k + 1; i < d; ++i) q[i * d + j] -= w * q[i * d + k];
        }
    }
    /* Form Q = H_0 H_1 ... H_{d-1} in place, last reflector first (dorg2r). */
    for (k = d - 1; k >= 0; --k) {
        for (j = k + 1; j < d; ++j) { /* apply H_k to columns already formed */
            double w = q[k * d + j];
            for (i = k + 1; i < d; ++i) w += q[i * d + k] * q[i * d + j];
            w *= tau[k];
            q[k * d + j] -= w;
            for (i = k + 1; i < d; ++i) q[i * d + j] -= w * q[i * d + k];
        }
        for (i = k + 1; i < d; ++i) q[i * d + k] *= -tau[k];
        q[k * d + k] = 1.0 - tau[k];
        for (i = 0; i < k; ++i) q[i * d + k] = 0.0;
    }
    /* Haar sign fix: Q <- Q diag(sign(R_kk)). */
    for (i = 0; i < d; ++i)
        for (k = 0; k < d; ++k) q[i * d + k] *= rsign[k];
    return KVTC_OK;
}

/* One rotation of one vector, in float; forward (P) or transpose (P^T). */
static void kvtc__rotate_one(const kvtc_rotation *rot, const float *x, float *y, int transpose) {
    float tmp[KVTC_MAX_HEAD_DIM];
    int d = rot->head_dim, i, j, r;
    if (rot->kind == KVTC_ROTATION_NONE) {
        if (y != x) memcpy(y, x, (size_t)d * sizeof(float));
        return;
    }
    if (rot->kind == KVTC_ROTATION_DENSE) {
        const float *m = rot->matrix;
        for (i = 0; i < d; ++i) {
            float acc = 0.0f;
            if (!transpose)
                for (j = 0; j < d; ++j) acc += m[(size_t)i * d + j] * x[j];
            else
                for (j = 0; j < d; ++j) acc += m[(size_t)j * d + i] * x[j];
            tmp[i] = acc;
        }
        memcpy(y, tmp, (size_t)d * sizeof(float));
        return;
    }
    if (y != x) memcpy(y, x, (size_t)d * sizeof(float));
    if (!transpose) {
        for (r = 0; r < rot->rounds; ++r) {
            const float *s = rot->signs + (size_t)r * d;
            for (i = 0; i < d; ++i) y[i] *= s[i];
            if (rot->perm) {
                const uint16_t *p = rot->perm + (size_t)r * d;
                for (i = 0; i < d; ++i) tmp[i] = y[p[i]];
                memcpy(y, tmp, (size_t)d * sizeof(float));
            }
            for (i = 0; i < d; i += rot->block) kvtc__fwht_f(y + i, rot->block);
        }
    } else {
        for (r = rot->rounds - 1; r >= 0; --r) {
            const float *s = rot->signs + (size_t)r * d;
            for (i = 0; i < d; i += rot->block) kvtc__fwht_f(y + i, rot->block);
            if (rot->perm) {
                const uint16_t *p = rot->perm + (size_t)r * d;
                for (i = 0; i < d; ++i) tmp[p[i]] = y[i];
                memcpy(y, tmp, (size_t)d * sizeof(float));
            }
            for (i = 0; i < d; ++i) y[i] *= s[i];
        }
    }
}

static kvtc_status kvtc__rotation_check(const kvtc_rotation *rot, const float *in, size_t n, const float *out,
                                        size_t out_count) {
    size_t need;
    if (!rot || (n && (!in || !out))) return KVTC_ERR_NULL;
    if (rot->head_dim < 2 || rot->head_dim > KVTC_MAX_HEAD_DIM) return KVTC_ERR_DIM;
    if (!kvtc__mul_size(n, (size_t)rot->head_dim, &need)) return KVTC_ERR_OVERFLOW;
    if (out_count < need) return KVTC_ERR_SMALL;
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_rotation_apply(const kvtc_rotation *rot, const float *x, size_t n, float *y,
                                         size_t y_count) {
    size_t v, d;
    kvtc_status st = kvtc__rotation_check(rot, x, n, y, y_count);
    if (st != KVTC_OK) return st;
    d = (size_t)rot->head_dim;
    for (v = 0; v < n; ++v) kvtc__rotate_one(rot, x + v * d, y + v * d, 0);
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_rotation_apply_t(const kvtc_rotation *rot, const float *y, size_t n, float *x,
                                           size_t x_count) {
    size_t v, d;
    kvtc_status st = kvtc__rotation_check(rot, y, n, x, x_count);
    if (st != KVTC_OK) return st;
    d = (size_t)rot->head_dim;
    for (v = 0; v < n; ++v) kvtc__rotate_one(rot, y + v * d, x + v * d, 1);
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_rotation_matrix(const kvtc_rotation *rot, double *m, size_t m_count) {
    double col[KVTC_MAX_HEAD_DIM], tmp[KVTC_MAX_HEAD_DIM];
    int d, i, j, r;
    if (!rot || !m) return KVTC_ERR_NULL;
    d = rot->head_dim;
    if (d < 2 || d > KVTC_MAX_HEAD_DIM) return KVTC_ERR_DIM;
    if (m_count < (size_t)d * (size_t)d) return KVTC_ERR_SMALL;
    if (rot->kind == KVTC_ROTATION_DENSE) return kvtc_rotation_dense(rot->seed, d, m, m_count);
    for (j = 0; j < d; ++j) { /* column j = P e_j */
        for (i = 0; i < d; ++i) col[i] = (i == j) ? 1.0 : 0.0;
        if (rot->kind == KVTC_ROTATION_HADAMARD) {
            for (r = 0; r < rot->rounds; ++r) {
                for (i = 0; i < d; ++i) col[i] *= (double)rot->signs[(size_t)r * d + i];
                if (rot->perm) {
                    for (i = 0; i < d; ++i) tmp[i] = col[rot->perm[(size_t)r * d + i]];
                    memcpy(col, tmp, (size_t)d * sizeof(double));
                }
                for (i = 0; i < d; i += rot->block) kvtc__fwht_d(col + i, rot->block);
            }
        }
        for (i = 0; i < d; ++i) m[(size_t)i * d + j] = col[i];
    }
    return KVTC_OK;
}

/* Bytes of the tables of a rotation (signs, perm, matrix). */
static size_t kvtc__rotation_table_bytes(kvtc_rotation_kind kind, int d, int rounds, int permuted) {
    if (kind == KVTC_ROTATION_DENSE) return (size_t)d * (size_t)d * sizeof(float);
    if (kind == KVTC_ROTATION_HADAMARD)
        return (size_t)rounds * (size_t)d * (sizeof(float) + (permuted ? sizeof(uint16_t) : 0));
    return 0;
}

/* Fill a rotation's tables from its seed into `mem` (size from
 * kvtc__rotation_table_bytes). DENSE needs `work`: d*d doubles. */
static kvtc_status kvtc__rotation_build(kvtc_rotation *rot, void *mem, double *work) {
    int d = rot->head_dim, i, r;
    rot->signs = NULL;
    rot->perm = NULL;
    rot->matrix = NULL;
    if (rot->kind == KVTC_ROTATION_DENSE) {
        kvtc_status st = kvtc_rotation_dense(rot->seed, d, work, (size_t)d * (size_t)d);
        if (st != KVTC_OK) return st;
        rot->matrix = (float *)mem;
        for (i = 0; i < d * d; ++i) rot->matrix[i] = (float)work[i];
    } else if (rot->kind == KVTC_ROTATION_HADAMARD) {
        kvtc_rng rng;
        kvtc_rng_seed(&rng, rot->seed);
        rot->signs = (float *)mem;
        if (rot->block < d) rot->perm = (uint16_t *)(rot->signs + (size_t)rot->rounds * d);
        for (r = 0; r < rot->rounds; ++r) {
            float *s = rot->signs + (size_t)r * d;
            for (i = 0; i < d; ++i) s[i] = (kvtc_rng_u64(&rng) >> 63) ? -1.0f : 1.0f;
            if (rot->perm) {
                uint16_t *p = rot->perm + (size_t)r * d;
                for (i = 0; i < d; ++i) p[i] = (uint16_t)i;
                for (i = d - 1; i > 0; --i) {
                    int j = (int)kvtc_rng_below(&rng, (uint64_t)i + 1);
                    uint16_t t = p[i];
                    p[i] = p[j];
                    p[j] = t;
                }
            }
        }
    }
    return KVTC_OK;
}

/* >>lloyd
 * For the symmetric densities below we work on the positive half: cells
 * [t_i, t_{i+1}) with t_0 = 0 (even level counts) and the last one open.
 *   GAUSSIAN N(0, s^2): mass = (erfc(a/(s sqrt2)) - erfc(b/(s sqrt2))) / 2,
 *     first moment = s/sqrt(2 pi) (exp(-a^2/2s^2) - exp(-b^2/2s^2)).
 *   SPHERE, f(t) = (1-t^2)^k / B(1/2, k+1), k = (d-3)/2: with x = t^2 the mass
 *     of [a, b] is (I_{b^2} - I_{a^2}) / 2, I the regularized incomplete beta
 *     with parameters (1/2, k+1); the first moment is
 *     ((1-a^2)^(k+1) - (1-b^2)^(k+1)) / (2 (k+1) B(1/2, k+1)). */
typedef struct kvtc__dist {
    kvtc_codebook_kind kind;
    double sigma;       /* 1/sqrt(d) */
    double p, q;        /* incomplete beta parameters (1/2, (d-1)/2) */
    double lbeta;       /* log B(p, q) */
} kvtc__dist;

/* Continued fraction of the incomplete beta (modified Lentz; Numerical
 * Recipes 6.4). Converges quickly for x < (p+1)/(p+q+2). */
static double kvtc__betacf(double p, double q, double x) {
    const double tiny = 1e-300;
    double c = 1.0, d = 1.0 - (p + q) * x / (p + 1.0), h, del, aa;
    int m;
    if (fabs(d) < tiny) d = tiny;
    d = 1.0 / d;
    h = d;
    for (m = 1; m <= 10000; ++m) {
        double m2 = 2.0 * m;
        aa = m * (q - m) * x / ((p - 1.0 + m2) * (p + m2));
        d = 1.0 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1.0 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        h *= d * c;
        aa = -(p + m) * (p + q + m) * x / ((p + m2) * (p + 1.0 + m2));
        d = 1.0 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1.0 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        del = d * c;
        h *= del;
        if (fabs(del - 1.0) < 1e-16) break;
    }
    return h;
}

/* Upper tail 1 - I_x(p, q), accurate also when it is tiny. */
static double kvtc__beta_upper(const kvtc__dist *ds, double x) {
    double p = ds->p, q = ds->q, front;
    if (x <= 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    front = exp(p * log(x) + q * log1p(-x) - ds->lbeta);
    if (x < (p + 1.0) / (p + q + 2.0)) return 1.0 - front * kvtc__betacf(p, q, x) / p;
    return front * kvtc__betacf(q, p, 1.0 - x) / q;
}

/* P(|T| >= t) for t >= 0: twice the one-sided tail, in (0, 1]. */
static double kvtc__tail2(const kvtc__dist *ds, double t) {
    if (ds->kind == KVTC_CODEBOOK_GAUSSIAN) return erfc(t / (ds->sigma * 1.4142135623730951));
    if (t >= 1.0) return 0.0;
    return kvtc__beta_upper(ds, t * t);
}

/* Integral of t f(t) over [t, inf) for t >= 0. */
static double kvtc__moment_tail(const kvtc__dist *ds, double t) {
    if (ds->kind == KVTC_CODEBOOK_GAUSSIAN) {
        double z = t / ds->sigma;
        return ds->sigma / sqrt(2.0 * KVTC__PI) * exp(-0.5 * z * z);
    }
    if (t >= 1.0) return 0.0;
    /* (1-t^2)^(k+1) / (2 (k+1) B(1/2, k+1)), k+1 = q */
    return exp(ds->q * log1p(-t * t) - ds->lbeta) / (2.0 * ds->q);
}

/* Inverse of the standard normal upper tail by bisection (init only). */
static double kvtc__normal_upper_inv(double prob) {
    double lo = 0.0, hi = 40.0;
    int it;
    for (it = 0; it < 200; ++it) {
        double mid = 0.5 * (lo + hi);
        if (0.5 * erfc(mid / 1.4142135623730951) > prob) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* Density f(t) for t >= 0. */
static double kvtc__density(const kvtc__dist *ds, double t) {
    if (ds->kind == KVTC_CODEBOOK_GAUSSIAN) {
        double z = t / ds->sigma;
        return exp(-0.5 * z * z) / (ds->sigma * sqrt(2.0 * KVTC__PI));
    }
    if (t >= 1.0) return 0.0;
    return exp((ds->q - 1.0) * log1p(-t * t) - ds->lbeta); /* (1-t^2)^k / B(1/2, k+1) */
}

/* One Newton step on the Lloyd fixed point c = g(c), where g maps centroids
 * to the centroids of the cells between their midpoints. With t_i the
 * boundaries, dg_i/dt_i = f(t_i)(g_i - t_i)/m_i and dg_i/dt_{i+1} =
 * f(t_{i+1})(t_{i+1} - g_i)/m_i, and t_i = (c_{i-1} + c_i)/2, so I - dg/dc is
 * tridiagonal. Writes c and returns 1, or returns 0 (c untouched) when the
 * step would leave the centroids unordered or outside the support. */
static int kvtc__lloyd_newton(const kvtc__dist *ds, int h, double *c, const double *t, const double *g,
                              const double *mass) {
    double lo[1 << (KVTC_MAX_BITS - 1)], di[1 << (KVTC_MAX_BITS - 1)], up[1 << (KVTC_MAX_BITS - 1)];
    double rhs[1 << (KVTC_MAX_BITS - 1)], nc[1 << (KVTC_MAX_BITS - 1)];
    int i;
    for (i = 0; i < h; ++i) {
        double dlow = 0.0, dup = 0.0;
        if (mass[i] <= 0.0) return 0;
        if (i > 0) dlow = kvtc__density(ds, t[i]) * (g[i] - t[i]) / mass[i];
        if (i + 1 < h) dup = kvtc__density(ds, t[i + 1]) * (t[i + 1] - g[i]) / mass[i];
        lo[i] = -0.5 * dlow;
        di[i] = 1.0 - 0.5 * (dlow + dup);
        up[i] = -0.5 * dup;
        rhs[i] = g[i] - c[i];
    }
    for (i = 1; i < h; ++i) { /* Thomas algorithm */
        double w;
        if (di[i - 1] == 0.0) return 0;
        w = lo[i] / di[i - 1];
        di[i] -= w * up[i - 1];
        rhs[i] -= w * rhs[i - 1];
    }
    if (di[h - 1] == 0.0) return 0;
    nc[h - 1] = rhs[h - 1] / di[h - 1];
    for (i = h - 2; i >= 0; --i) nc[i] = (rhs[i] - up[i] * nc[i + 1]) / di[i];
    for (i = 0; i < h; ++i) {
        nc[i] += c[i];
        if (!(nc[i] > (i ? nc[i - 1] : 0.0))) return 0;
    }
    if (ds->kind == KVTC_CODEBOOK_SPHERE && !(nc[h - 1] < 1.0)) return 0;
    for (i = 0; i < h; ++i) c[i] = nc[i];
    return 1;
}

KVTC_DEF kvtc_status kvtc_codebook_generate(kvtc_codebook_kind kind, int head_dim, int bits, float *centroids,
                                            size_t centroids_count, float *boundaries, size_t boundaries_count,
                                            double *mse_unit) {
    double c[1 << (KVTC_MAX_BITS - 1)], t[(1 << (KVTC_MAX_BITS - 1)) + 1], scale = 1.0, moment_sum = 0.0;
    double tail_m[(1 << (KVTC_MAX_BITS - 1)) + 1], tail_p[(1 << (KVTC_MAX_BITS - 1)) + 1];
    kvtc__dist ds;
    int n, h, i, it;
    if (kind == KVTC_CODEBOOK_DEFAULT) kind = KVTC_CODEBOOK_SPHERE;
    if (kind != KVTC_CODEBOOK_SPHERE && kind != KVTC_CODEBOOK_GAUSSIAN) return KVTC_ERR_ARG;
    if (head_dim < 3 || head_dim > KVTC_MAX_HEAD_DIM) return KVTC_ERR_DIM;
    if (bits < 1 || bits > KVTC_MAX_BITS) return KVTC_ERR_BITS;
    if (!centroids || !boundaries) return KVTC_ERR_NULL;
    n = 1 << bits;
    h = n / 2;
    if (centroids_count < (size_t)n || boundaries_count < (size_t)(n - 1)) return KVTC_ERR_SMALL;
    ds.kind = kind;
    ds.sigma = 1.0 / sqrt((double)head_dim);
    ds.p = 0.5;
    ds.q = 0.5 * (head_dim - 1);
    ds.lbeta = lgamma(ds.p) + lgamma(ds.q) - lgamma(ds.p + ds.q);
    /* Start from the f^(1/3) compander; for a Gaussian its points are the
     * quantiles of N(0, 3 s^2). Shrink into (0, 1) for small-d spheres. */
    for (i = 0; i < h; ++i) c[i] = ds.sigma * sqrt(3.0) * kvtc__normal_upper_inv((h - i - 0.5) / (double)n);
    if (kind == KVTC_CODEBOOK_SPHERE && c[h - 1] > 0.9) scale = 0.9 / c[h - 1];
    for (i = 0; i < h; ++i) c[i] *= scale;
    t[0] = 0.0;
    t[h] = 2.0; /* beyond the support of both densities' computations */
    for (it = 0; it < 1000; ++it) {
        double g[1 << (KVTC_MAX_BITS - 1)], mass[1 << (KVTC_MAX_BITS - 1)], change = 0.0;
        for (i = 1; i < h; ++i) t[i] = 0.5 * (c[i - 1] + c[i]);
        for (i = 0; i <= h; ++i) {
            tail_m[i] = (i == h) ? 0.0 : kvtc__moment_tail(&ds, t[i]);
            tail_p[i] = (i == h) ? 0.0 : kvtc__tail2(&ds, t[i]);
        }
        for (i = 0; i < h; ++i) { /* Lloyd map: centroid of each cell of the positive half */
            mass[i] = 0.5 * (tail_p[i] - tail_p[i + 1]);
            g[i] = (mass[i] > 0.0) ? (tail_m[i] - tail_m[i + 1]) / mass[i] : c[i];
            change = fmax(change, fabs(g[i] - c[i]));
        }
        if (change <= 1e-13 * ds.sigma) break;
        if (!kvtc__lloyd_newton(&ds, h, c, t, g, mass))
            for (i = 0; i < h; ++i) c[i] = g[i];
    }
    for (i = 1; i < h; ++i) t[i] = 0.5 * (c[i - 1] + c[i]);
    for (i = 0; i < h; ++i) {
        double mom = (i + 1 < h ? kvtc__moment_tail(&ds, t[i]) - kvtc__moment_tail(&ds, t[i + 1])
                                : kvtc__moment_tail(&ds, t[i]));
        moment_sum += c[i] * mom;
    }
    for (i = 0; i < h; ++i) {
        centroids[h + i] = (float)c[i];
        centroids[h - 1 - i] = (float)-c[i];
    }
    boundaries[h - 1] = 0.0f;
    for (i = 1; i < h; ++i) {
        boundaries[h - 1 + i] = (float)t[i];
        boundaries[h - 1 - i] = (float)-t[i];
    }
    /* per coordinate: E t^2 - sum over cells c_i * (moment of cell), both halves;
     * E t^2 = 1/d for both densities */
    if (mse_unit) *mse_unit = (double)head_dim * (1.0 / head_dim - 2.0 * moment_sum);
    return KVTC_OK;
}

/* >>codec */
static int kvtc__default_group(int d) {
    if (d % 32 == 0) return 32;
    if (d % 16 == 0) return 16;
    if (d % 8 == 0) return 8;
    return d;
}

KVTC_DEF kvtc_status kvtc_codec_params_resolved(const kvtc_codec_params *p, kvtc_codec_params *out) {
    kvtc_codec_params r;
    int d;
    if (!p || !out) return KVTC_ERR_NULL;
    r = *p;
    d = r.head_dim;
    if (d < 3 || d > KVTC_MAX_HEAD_DIM) return KVTC_ERR_DIM;
    if (r.method == KVTC_METHOD_DEFAULT) r.method = KVTC_METHOD_TQ_MSE;
    if ((int)r.method < 0 || r.method >= KVTC_METHOD_COUNT) return KVTC_ERR_ARG;
    if (r.bits < (r.method == KVTC_METHOD_TQ_PROD ? 2 : 1) || r.bits > KVTC_MAX_BITS) return KVTC_ERR_BITS;
    if (r.method == KVTC_METHOD_AFFINE) r.rotation = KVTC_ROTATION_NONE;
    if (r.rotation == KVTC_ROTATION_DEFAULT) r.rotation = (d % 8 == 0) ? KVTC_ROTATION_HADAMARD : KVTC_ROTATION_DENSE;
    if ((int)r.rotation < 0 || r.rotation >= KVTC_ROTATION_COUNT) return KVTC_ERR_ARG;
    if (r.rotation == KVTC_ROTATION_HADAMARD) {
        if (d % 8 != 0) return KVTC_ERR_DIM;
        if (r.rotation_rounds == 0) r.rotation_rounds = kvtc__is_pow2(d) ? 1 : 2;
        if (r.rotation_rounds < 1 || r.rotation_rounds > 8) return KVTC_ERR_ARG;
    } else {
        r.rotation_rounds = 0;
    }
    if (r.codebook == KVTC_CODEBOOK_DEFAULT) r.codebook = KVTC_CODEBOOK_SPHERE;
    if ((int)r.codebook < 0 || r.codebook >= KVTC_CODEBOOK_COUNT) return KVTC_ERR_ARG;
    if (r.norm_type == KVTC_NORM_DEFAULT) r.norm_type = KVTC_NORM_FP16;
    if ((int)r.norm_type < 0 || r.norm_type >= KVTC_NORM_COUNT) return KVTC_ERR_ARG;
    if (r.norm_correction == 0) r.norm_correction = 1;
    if (r.norm_correction != 1 && r.norm_correction != -1) return KVTC_ERR_ARG;
    if (r.method == KVTC_METHOD_TQ_PROD) {
        if (r.qjl_dim == 0) r.qjl_dim = d;
        if (r.qjl_dim < 1 || r.qjl_dim > KVTC_MAX_QJL_DIM) return KVTC_ERR_ARG;
    } else {
        r.qjl_dim = 0;
    }
    if (r.method == KVTC_METHOD_AFFINE) {
        if (r.group_size == 0) r.group_size = kvtc__default_group(d);
        if (r.group_size < 1 || d % r.group_size != 0) return KVTC_ERR_ARG;
    } else {
        r.group_size = 0;
    }
    *out = r;
    return KVTC_OK;
}

/* The codebook for (kind, d, bits): embedded if codebooks.h has it, else generated. */
static kvtc_status kvtc__codebook_get(kvtc_codebook_kind kind, int d, int bits, float *cent, float *bnd,
                                      double *mse_unit) {
#ifndef KVTC_NO_CODEBOOKS
    size_t i;
    if (kind == KVTC_CODEBOOK_SPHERE)
        for (i = 0; i < sizeof(kvtc_codebook_table) / sizeof(kvtc_codebook_table[0]); ++i) {
            const kvtc_codebook_entry *e = &kvtc_codebook_table[i];
            if (e->head_dim == d && e->bits == bits) {
                memcpy(cent, e->centroids, sizeof(float) << bits);
                memcpy(bnd, e->boundaries, sizeof(float) * (((size_t)1 << bits) - 1));
                *mse_unit = e->mse_unit;
                return KVTC_OK;
            }
        }
#endif
    return kvtc_codebook_generate(kind, d, bits, cent, (size_t)1 << bits, bnd, ((size_t)1 << bits) - 1, mse_unit);
}

KVTC_DEF kvtc_status kvtc_codec_create(const kvtc_codec_params *p, kvtc_codec **out) {
    kvtc_codec_params r;
    kvtc_codec *c;
    size_t rot_bytes, qjl_bytes = 0, total;
    double *work = NULL;
    kvtc_status st;
    int d, permuted;
    if (!out) return KVTC_ERR_NULL;
    *out = NULL;
    if ((st = kvtc_codec_params_resolved(p, &r)) != KVTC_OK) return st;
    d = r.head_dim;
    permuted = r.rotation == KVTC_ROTATION_HADAMARD && !kvtc__is_pow2(d);
    rot_bytes = kvtc__rotation_table_bytes(r.rotation, d, r.rotation_rounds, permuted);
    if (r.method == KVTC_METHOD_TQ_PROD) qjl_bytes = (size_t)r.qjl_dim * (size_t)d * sizeof(float);
    total = sizeof(kvtc_codec) + rot_bytes + qjl_bytes; /* all bounded by the limits above */
    c = (kvtc_codec *)KVTC_MALLOC(total, r.alloc_user);
    if (!c) return KVTC_ERR_NOMEM;
    memset(c, 0, sizeof(*c));
    c->params = r;
    c->mse_bits = r.method == KVTC_METHOD_TQ_PROD ? r.bits - 1 : r.bits;
    c->code_bytes = ((size_t)d * (size_t)c->mse_bits + 7) / 8;
    if (r.method == KVTC_METHOD_AFFINE) {
        c->n_groups = d / r.group_size;
        c->scale_bytes = (size_t)c->n_groups * 4;
    } else {
        size_t nb = r.norm_type == KVTC_NORM_FP32 ? 4 : 2;
        c->scale_bytes = nb;
        if (r.method == KVTC_METHOD_TQ_PROD) {
            c->qjl_bytes = ((size_t)r.qjl_dim + 7) / 8;
            c->rnorm_bytes = nb;
        }
        st = kvtc__codebook_get(r.codebook, d, c->mse_bits, c->centroids, c->boundaries, &c->codebook_mse_unit);
        if (st != KVTC_OK) goto fail;
    }
    c->rot.kind = r.rotation;
    c->rot.head_dim = d;
    c->rot.rounds = r.rotation_rounds;
    c->rot.block = d;
    if (r.rotation == KVTC_ROTATION_HADAMARD) c->rot.block = d & -d; /* largest power of two dividing d */
    c->rot.seed = r.seed;
    if (r.rotation == KVTC_ROTATION_DENSE) {
        work = (double *)KVTC_MALLOC((size_t)d * (size_t)d * sizeof(double), r.alloc_user);
        if (!work) {
            st = KVTC_ERR_NOMEM;
            goto fail;
        }
    }
    st = kvtc__rotation_build(&c->rot, (unsigned char *)c + sizeof(kvtc_codec), work);
    if (work) KVTC_FREE(work, r.alloc_user);
    if (st != KVTC_OK) goto fail;
    if (r.method == KVTC_METHOD_TQ_PROD) {
        kvtc_rng rng;
        size_t i, count = (size_t)r.qjl_dim * (size_t)d;
        uint64_t s = r.seed ^ 0x514a4c2d4b565443ULL; /* "QJL-KVTC": S is independent of P */
        kvtc_rng_seed(&rng, kvtc__splitmix64(&s));
        c->qjl = (float *)((unsigned char *)c + sizeof(kvtc_codec) + rot_bytes);
        for (i = 0; i < count; ++i) c->qjl[i] = (float)kvtc_rng_gaussian(&rng);
    }
    *out = c;
    return KVTC_OK;
fail:
    KVTC_FREE(c, r.alloc_user);
    return st;
}

KVTC_DEF void kvtc_codec_destroy(kvtc_codec *c) {
    if (c) KVTC_FREE(c, c->params.alloc_user);
}

KVTC_DEF kvtc_status kvtc_codec_layout(const kvtc_codec *c, size_t n, kvtc_layout *out) {
    size_t a, off = 0;
    if (!c || !out) return KVTC_ERR_NULL;
    out->codes = 0;
    if (!kvtc__mul_size(n, c->code_bytes, &a) || !kvtc__align16(a, &off)) return KVTC_ERR_OVERFLOW;
    out->scales = off;
    if (!kvtc__mul_size(n, c->scale_bytes, &a) || !kvtc__add_size(off, a, &off) || !kvtc__align16(off, &off))
        return KVTC_ERR_OVERFLOW;
    out->qjl = off;
    if (!kvtc__mul_size(n, c->qjl_bytes, &a) || !kvtc__add_size(off, a, &off) || !kvtc__align16(off, &off))
        return KVTC_ERR_OVERFLOW;
    out->rnorms = off;
    if (!kvtc__mul_size(n, c->rnorm_bytes, &a) || !kvtc__add_size(off, a, &off) || !kvtc__align16(off, &off))
        return KVTC_ERR_OVERFLOW;
    out->bytes = off;
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_codec_encoded_bytes(const kvtc_codec *c, size_t n_vectors, size_t *bytes) {
    kvtc_layout l;
    kvtc_status st;
    if (!bytes) return KVTC_ERR_NULL;
    if ((st = kvtc_codec_layout(c, n_vectors, &l)) != KVTC_OK) return st;
    *bytes = l.bytes;
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_codec_bits_per_coord(const kvtc_codec *c, double *bits) {
    if (!c || !bits) return KVTC_ERR_NULL;
    *bits = 8.0 * (double)(c->code_bytes + c->scale_bytes + c->qjl_bytes + c->rnorm_bytes) / c->params.head_dim;
    return KVTC_OK;
}

/* Little-endian scalar stores and loads. */
static void kvtc__put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static uint16_t kvtc__get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static void kvtc__put_f32(uint8_t *p, float x) {
    uint32_t u = kvtc__f32_bits(x);
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}
static float kvtc__get_f32(const uint8_t *p) {
    return kvtc__bits_f32((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24));
}

/* Store a norm in the codec's type; returns the value a decoder will read,
 * or a non-finite value if it overflowed. */
static float kvtc__store_norm(const kvtc_codec *c, uint8_t *p, float v) {
    if (c->params.norm_type == KVTC_NORM_FP32) {
        kvtc__put_f32(p, v);
        return v;
    } else {
        uint16_t h = kvtc_f32_to_f16(v);
        kvtc__put_u16(p, h);
        return kvtc_f16_to_f32(h);
    }
}
static float kvtc__load_norm(const kvtc_codec *c, const uint8_t *p) {
    return c->params.norm_type == KVTC_NORM_FP32 ? kvtc__get_f32(p) : kvtc_f16_to_f32(kvtc__get_u16(p));
}

/* Cell of y: the number of boundaries strictly below y (branch-free binary
 * search over 2^bits - 1 sorted boundaries). A y on a boundary goes down. */
static unsigned kvtc__quantize(const float *bnd, int bits, float y) {
    unsigned lo = 0, step;
    for (step = 1u << (bits - 1); step > 0; step >>= 1)
        if (y > bnd[lo + step - 1]) lo += step;
    return lo;
}

/* Pointers to the sections of slot `slot` in a page laid out by l. */
typedef struct kvtc__slot {
    uint8_t *codes, *scales, *qjl, *rnorm;
} kvtc__slot;

static kvtc__slot kvtc__slot_at(const kvtc_codec *c, const kvtc_layout *l, const void *page, size_t slot) {
    kvtc__slot s;
    uint8_t *base = (uint8_t *)page;
    s.codes = base + l->codes + slot * c->code_bytes;
    s.scales = base + l->scales + slot * c->scale_bytes;
    s.qjl = base + l->qjl + slot * c->qjl_bytes;
    s.rnorm = base + l->rnorms + slot * c->rnorm_bytes;
    return s;
}

static void kvtc__zero_slot(const kvtc_codec *c, kvtc__slot s) {
    memset(s.codes, 0, c->code_bytes);
    memset(s.scales, 0, c->scale_bytes);
    memset(s.qjl, 0, c->qjl_bytes);
    memset(s.rnorm, 0, c->rnorm_bytes);
}

/* Encode one vector into slot s. Returns KVTC_OK, ERR_NONFINITE or ERR_RANGE
 * (the slot then holds zeros). */
static kvtc_status kvtc__encode_one(const kvtc_codec *c, const float *x, kvtc__slot s) {
    const kvtc_codec_params *p = &c->params;
    int d = p->head_dim, j;
    double ss = 0.0;
    for (j = 0; j < d; ++j) ss += (double)x[j] * (double)x[j];
    if (!(ss <= 1.79e308)) { /* NaN or Inf somewhere (finite floats cannot overflow ss) */
        kvtc__zero_slot(c, s);
        return KVTC_ERR_NONFINITE;
    }
    if (p->method == KVTC_METHOD_AFFINE) {
        unsigned qmax = (1u << p->bits) - 1u;
        uint8_t codes[KVTC_MAX_HEAD_DIM];
        int g, gs = p->group_size;
        uint16_t idx16[KVTC_MAX_HEAD_DIM];
        for (g = 0; g < c->n_groups; ++g) {
            const float *xg = x + g * gs;
            float lo = xg[0], hi = xg[0], scale, mn;
            for (j = 1; j < gs; ++j) {
                lo = xg[j] < lo ? xg[j] : lo;
                hi = xg[j] > hi ? xg[j] : hi;
            }
            /* Store fp16 min and scale first; quantize against the stored values. */
            mn = kvtc_f16_to_f32(kvtc_f32_to_f16(lo));
            scale = kvtc_f16_to_f32(kvtc_f32_to_f16((float)(((double)hi - mn) / qmax)));
            if (!isfinite(mn) || !isfinite(scale)) {
                kvtc__zero_slot(c, s);
                return KVTC_ERR_RANGE;
            }
            kvtc__put_u16(s.scales + 4 * g, kvtc_f32_to_f16(scale));
            kvtc__put_u16(s.scales + 4 * g + 2, kvtc_f32_to_f16(mn));
            for (j = 0; j < gs; ++j) {
                double q = scale > 0.0f ? floor(((double)xg[j] - mn) / scale + 0.5) : 0.0;
                codes[g * gs + j] = (uint8_t)(q < 0.0 ? 0 : q > qmax ? qmax : q);
            }
        }
        for (j = 0; j < d; ++j) idx16[j] = codes[j];
        kvtc__pack_u16(idx16, (size_t)d, p->bits, s.codes);
        return KVTC_OK;
    } else {
        float y[KVTC_MAX_HEAD_DIM];
        uint16_t idx[KVTC_MAX_HEAD_DIM];
        double norm = sqrt(ss), chat = 0.0, inv;
        float stored;
        int b = c->mse_bits;
        if (norm == 0.0) {
            kvtc__zero_slot(c, s);
            return KVTC_OK;
        }
        inv = 1.0 / norm; /* u = x * (1/n) in double: the GPU encoder computes exactly this */
        for (j = 0; j < d; ++j) y[j] = (float)((double)x[j] * inv);
        kvtc__rotate_one(&c->rot, y, y, 0);
        for (j = 0; j < d; ++j) {
            double cj;
            idx[j] = (uint16_t)kvtc__quantize(c->boundaries, b, y[j]);
            cj = c->centroids[idx[j]];
            chat += cj * cj;
        }
        stored = kvtc__store_norm(c, s.scales, (float)(p->norm_correction > 0 ? norm / sqrt(chat) : norm));
        if (!isfinite(stored)) {
            kvtc__zero_slot(c, s);
            return KVTC_ERR_RANGE;
        }
        kvtc__pack_u16(idx, (size_t)d, b, s.codes);
        if (p->method == KVTC_METHOD_TQ_PROD) {
            /* residual in the rotated domain against what a decoder rebuilds */
            float r[KVTC_MAX_HEAD_DIM];
            double rr = 0.0;
            int k, m = p->qjl_dim;
            for (j = 0; j < d; ++j) {
                r[j] = (float)((double)y[j] * norm - (double)stored * c->centroids[idx[j]]);
                rr += (double)r[j] * r[j];
            }
            memset(s.qjl, 0, c->qjl_bytes);
            for (k = 0; k < m; ++k) {
                const float *srow = c->qjl + (size_t)k * d;
                float acc = 0.0f;
                for (j = 0; j < d; ++j) acc += srow[j] * r[j];
                if (acc >= 0.0f) s.qjl[k >> 3] |= (uint8_t)(1u << (k & 7));
            }
            if (!isfinite(kvtc__store_norm(c, s.rnorm, (float)sqrt(rr)))) {
                kvtc__zero_slot(c, s);
                return KVTC_ERR_RANGE;
            }
        }
        return KVTC_OK;
    }
}

/* Decode slot s; for TQ into the rotated domain (rotated = 1) or back out. */
static void kvtc__decode_one(const kvtc_codec *c, kvtc__slot s, float *x, int rotated) {
    const kvtc_codec_params *p = &c->params;
    int d = p->head_dim, j;
    if (p->method == KVTC_METHOD_AFFINE) {
        int g, gs = p->group_size;
        for (g = 0; g < c->n_groups; ++g) {
            float scale = kvtc_f16_to_f32(kvtc__get_u16(s.scales + 4 * g));
            float mn = kvtc_f16_to_f32(kvtc__get_u16(s.scales + 4 * g + 2));
            for (j = 0; j < gs; ++j) {
                int jj = g * gs + j;
                x[jj] = mn + (float)kvtc__code_at(s.codes, c->code_bytes, jj, p->bits) * scale;
            }
        }
    } else {
        float n = kvtc__load_norm(c, s.scales);
        for (j = 0; j < d; ++j) x[j] = n * c->centroids[kvtc__code_at(s.codes, c->code_bytes, j, c->mse_bits)];
        if (!rotated) kvtc__rotate_one(&c->rot, x, x, 1);
    }
}

/* Check a codec call on n vectors of `bytes` encoded bytes. */
static kvtc_status kvtc__check_io(const kvtc_codec *c, size_t n, size_t bytes, size_t floats, size_t per_vec_floats,
                                  kvtc_layout *l) {
    size_t need;
    kvtc_status st;
    if ((st = kvtc_codec_layout(c, n, l)) != KVTC_OK) return st;
    if (bytes < l->bytes) return KVTC_ERR_SMALL;
    if (!kvtc__mul_size(n, per_vec_floats, &need)) return KVTC_ERR_OVERFLOW;
    if (floats < need) return KVTC_ERR_SMALL;
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_codec_encode(const kvtc_codec *c, const float *x, size_t n_vectors, void *out,
                                       size_t out_bytes) {
    kvtc_layout l;
    kvtc_status st, worst = KVTC_OK;
    size_t i, d;
    if (!c) return KVTC_ERR_NULL;
    if (n_vectors && (!x || !out)) return KVTC_ERR_NULL;
    d = (size_t)c->params.head_dim;
    if ((st = kvtc__check_io(c, n_vectors, out_bytes, (size_t)-1, d, &l)) != KVTC_OK) return st;
    if (n_vectors) memset(out, 0, l.bytes); /* padding bytes are zero */
    for (i = 0; i < n_vectors; ++i) {
        st = kvtc__encode_one(c, x + i * d, kvtc__slot_at(c, &l, out, i));
        if (st != KVTC_OK) worst = st;
    }
    return worst;
}

KVTC_DEF kvtc_status kvtc_codec_decode(const kvtc_codec *c, const void *in, size_t in_bytes, size_t n_vectors,
                                       float *x, size_t x_count) {
    kvtc_layout l;
    kvtc_status st;
    size_t i, d;
    if (!c) return KVTC_ERR_NULL;
    if (n_vectors && (!x || !in)) return KVTC_ERR_NULL;
    d = (size_t)c->params.head_dim;
    if ((st = kvtc__check_io(c, n_vectors, in_bytes, x_count, d, &l)) != KVTC_OK) return st;
    for (i = 0; i < n_vectors; ++i) kvtc__decode_one(c, kvtc__slot_at(c, &l, in, i), x + i * d, 0);
    return KVTC_OK;
}

/* Per-query state for scoring codes: P q, and S P q for TQ_PROD. */
typedef struct kvtc__qstate {
    float qr[KVTC_MAX_HEAD_DIM];
    float sq[KVTC_MAX_QJL_DIM];
} kvtc__qstate;

static void kvtc__query_prepare(const kvtc_codec *c, const float *q, kvtc__qstate *qs) {
    int d = c->params.head_dim, k, j;
    kvtc__rotate_one(&c->rot, q, qs->qr, 0);
    for (k = 0; k < c->params.qjl_dim; ++k) {
        const float *srow = c->qjl + (size_t)k * d;
        double acc = 0.0;
        for (j = 0; j < d; ++j) acc += (double)srow[j] * qs->qr[j];
        qs->sq[k] = (float)acc;
    }
}

/* Estimate of <q, x> for slot s, in double. */
static double kvtc__score_one(const kvtc_codec *c, const kvtc__qstate *qs, const float *q, kvtc__slot s) {
    const kvtc_codec_params *p = &c->params;
    int d = p->head_dim, j, k;
    double acc = 0.0;
    if (p->method == KVTC_METHOD_AFFINE) {
        float x[KVTC_MAX_HEAD_DIM];
        kvtc__decode_one(c, s, x, 0);
        for (j = 0; j < d; ++j) acc += (double)q[j] * x[j];
        return acc;
    }
    for (j = 0; j < d; ++j) acc += (double)qs->qr[j] * c->centroids[kvtc__code_at(s.codes, c->code_bytes, j, c->mse_bits)];
    acc *= kvtc__load_norm(c, s.scales);
    if (p->method == KVTC_METHOD_TQ_PROD) {
        double dot = 0.0, rn = kvtc__load_norm(c, s.rnorm);
        for (k = 0; k < p->qjl_dim; ++k) dot += ((s.qjl[k >> 3] >> (k & 7)) & 1u) ? qs->sq[k] : -qs->sq[k];
        acc += rn * KVTC__SQRT_PI_OVER_2 / p->qjl_dim * dot;
    }
    return acc;
}

KVTC_DEF kvtc_status kvtc_codec_score(const kvtc_codec *c, const float *q, const void *in, size_t in_bytes,
                                      size_t n_vectors, float *scores, size_t scores_count) {
    kvtc_layout l;
    kvtc_status st;
    kvtc__qstate qs;
    size_t i;
    if (!c || !q) return KVTC_ERR_NULL;
    if (n_vectors && (!in || !scores)) return KVTC_ERR_NULL;
    if ((st = kvtc__check_io(c, n_vectors, in_bytes, scores_count, 1, &l)) != KVTC_OK) return st;
    kvtc__query_prepare(c, q, &qs);
    for (i = 0; i < n_vectors; ++i) scores[i] = (float)kvtc__score_one(c, &qs, q, kvtc__slot_at(c, &l, in, i));
    return KVTC_OK;
}

/* >>cache */
KVTC_DEF kvtc_status kvtc_cache_bytes(const kvtc_codec *c, const kvtc_cache_params *cp, size_t *page_bytes,
                                      size_t *cache_bytes) {
    size_t pb, pages, total;
    kvtc_status st;
    if (!c || !cp || !page_bytes || !cache_bytes) return KVTC_ERR_NULL;
    if (cp->n_blocks < 0 || cp->block_size < 1 || cp->n_kv_heads < 1) return KVTC_ERR_ARG;
    if ((st = kvtc_codec_encoded_bytes(c, (size_t)cp->block_size, &pb)) != KVTC_OK) return st;
    if (!kvtc__mul_size((size_t)cp->n_blocks, (size_t)cp->n_kv_heads, &pages) || !kvtc__mul_size(pages, pb, &total))
        return KVTC_ERR_OVERFLOW;
    *page_bytes = pb;
    *cache_bytes = total;
    return KVTC_OK;
}

/* Check a cache access of n tokens; fills the page layout and page size. */
static kvtc_status kvtc__cache_check(const kvtc_codec *c, const kvtc_cache_params *cp, const void *cache,
                                     size_t cache_bytes, size_t n_tokens, const int64_t *slots, const float *x,
                                     size_t x_count, kvtc_layout *l, size_t *page_bytes) {
    size_t total, need, t;
    kvtc_status st;
    if (!c || !cp) return KVTC_ERR_NULL;
    if ((st = kvtc_cache_bytes(c, cp, page_bytes, &total)) != KVTC_OK) return st;
    if (n_tokens && (!cache || !slots || !x)) return KVTC_ERR_NULL;
    if (cache_bytes < total) return KVTC_ERR_SMALL;
    if (!kvtc__mul_size(n_tokens, (size_t)cp->n_kv_heads, &need) ||
        !kvtc__mul_size(need, (size_t)c->params.head_dim, &need))
        return KVTC_ERR_OVERFLOW;
    if (x_count < need) return KVTC_ERR_SMALL;
    for (t = 0; t < n_tokens; ++t)
        if (slots[t] < -1 || (slots[t] >= 0 && slots[t] / cp->block_size >= cp->n_blocks)) return KVTC_ERR_ARG;
    return kvtc_codec_layout(c, (size_t)cp->block_size, l);
}

KVTC_DEF kvtc_status kvtc_cache_write(const kvtc_codec *c, const kvtc_cache_params *cp, const float *x,
                                      size_t n_tokens, const int64_t *slot_mapping, void *cache,
                                      size_t cache_bytes) {
    kvtc_layout l;
    size_t page_bytes, t, d;
    kvtc_status st, worst = KVTC_OK;
    int h;
    st = kvtc__cache_check(c, cp, cache, cache_bytes, n_tokens, slot_mapping, x, (size_t)-1, &l, &page_bytes);
    if (st != KVTC_OK) return st;
    d = (size_t)c->params.head_dim;
    for (t = 0; t < n_tokens; ++t) {
        int64_t slot = slot_mapping[t];
        size_t block, off;
        if (slot < 0) continue;
        block = (size_t)(slot / cp->block_size);
        off = (size_t)(slot % cp->block_size);
        for (h = 0; h < cp->n_kv_heads; ++h) {
            uint8_t *page = (uint8_t *)cache + (block * (size_t)cp->n_kv_heads + (size_t)h) * page_bytes;
            st = kvtc__encode_one(c, x + (t * (size_t)cp->n_kv_heads + (size_t)h) * d, kvtc__slot_at(c, &l, page, off));
            if (st != KVTC_OK) worst = st;
        }
    }
    return worst;
}

KVTC_DEF kvtc_status kvtc_cache_read(const kvtc_codec *c, const kvtc_cache_params *cp, const void *cache,
                                     size_t cache_bytes, size_t n_tokens, const int64_t *slot_mapping, float *x,
                                     size_t x_count) {
    kvtc_layout l;
    size_t page_bytes, t, d;
    kvtc_status st;
    int h;
    st = kvtc__cache_check(c, cp, cache, cache_bytes, n_tokens, slot_mapping, x, x_count, &l, &page_bytes);
    if (st != KVTC_OK) return st;
    d = (size_t)c->params.head_dim;
    for (t = 0; t < n_tokens; ++t) {
        int64_t slot = slot_mapping[t];
        for (h = 0; h < cp->n_kv_heads; ++h) {
            float *xv = x + (t * (size_t)cp->n_kv_heads + (size_t)h) * d;
            size_t block, off;
            const uint8_t *page;
            if (slot < 0) {
                memset(xv, 0, d * sizeof(float));
                continue;
            }
            block = (size_t)(slot / cp->block_size);
            off = (size_t)(slot % cp->block_size);
            page = (const uint8_t *)cache + (block * (size_t)cp->n_kv_heads + (size_t)h) * page_bytes;
            kvtc__decode_one(c, kvtc__slot_at(c, &l, page, off), xv, 0);
        }
    }
    return KVTC_OK;
}

/* >>attn */
KVTC_DEF kvtc_status kvtc_attn_decode(const kvtc_codec *kc, const kvtc_codec *vc, const kvtc_attn_params *p,
                                      const float *q, const void *k_cache, size_t k_cache_bytes,
                                      const void *v_cache, size_t v_cache_bytes, const int32_t *block_table,
                                      const int32_t *context_lens, float *out, size_t out_count) {
    kvtc_layout kl, vl;
    size_t k_page, v_page, k_total, v_total, need, d;
    kvtc__qstate qs;
    double acc[KVTC_MAX_HEAD_DIM];
    float vrow[KVTC_MAX_HEAD_DIM];
    kvtc_status st;
    int b, h, gqa, j, vrot;
    double scale;
    if (!kc || !vc || !p) return KVTC_ERR_NULL;
    d = (size_t)kc->params.head_dim;
    if (vc->params.head_dim != kc->params.head_dim) return KVTC_ERR_DIM;
    if (p->n_seqs < 0 || p->n_q_heads < 1 || p->max_blocks_per_seq < 0 || p->n_q_heads % p->cache.n_kv_heads != 0)
        return KVTC_ERR_ARG;
    if ((st = kvtc_cache_bytes(kc, &p->cache, &k_page, &k_total)) != KVTC_OK) return st;
    if ((st = kvtc_cache_bytes(vc, &p->cache, &v_page, &v_total)) != KVTC_OK) return st;
    if (!kvtc__mul_size((size_t)p->n_seqs, (size_t)p->n_q_heads, &need) || !kvtc__mul_size(need, d, &need))
        return KVTC_ERR_OVERFLOW;
    if (p->n_seqs == 0) return KVTC_OK;
    if (!q || !k_cache || !v_cache || !block_table || !context_lens || !out) return KVTC_ERR_NULL;
    if (k_cache_bytes < k_total || v_cache_bytes < v_total || out_count < need) return KVTC_ERR_SMALL;
    for (b = 0; b < p->n_seqs; ++b) {
        int32_t len = context_lens[b], nb, i;
        if (len < 0 || (int64_t)len > (int64_t)p->max_blocks_per_seq * p->cache.block_size) return KVTC_ERR_ARG;
        nb = (int32_t)(((int64_t)len + p->cache.block_size - 1) / p->cache.block_size);
        for (i = 0; i < nb; ++i) {
            int32_t blk = block_table[(size_t)b * (size_t)p->max_blocks_per_seq + (size_t)i];
            if (blk < 0 || blk >= p->cache.n_blocks) return KVTC_ERR_ARG;
        }
    }
    kvtc_codec_layout(kc, (size_t)p->cache.block_size, &kl);
    kvtc_codec_layout(vc, (size_t)p->cache.block_size, &vl);
    scale = p->scale != 0.0f ? (double)p->scale : 1.0 / sqrt((double)d);
    gqa = p->n_q_heads / p->cache.n_kv_heads;
    vrot = vc->params.method != KVTC_METHOD_AFFINE;
    for (b = 0; b < p->n_seqs; ++b) {
        int32_t len = context_lens[b], t;
        for (h = 0; h < p->n_q_heads; ++h) {
            const float *qh = q + ((size_t)b * (size_t)p->n_q_heads + (size_t)h) * d;
            float *oh = out + ((size_t)b * (size_t)p->n_q_heads + (size_t)h) * d;
            size_t kvh = (size_t)(h / gqa);
            double m = -HUGE_VAL, l = 0.0;
            for (j = 0; j < (int)d; ++j) acc[j] = 0.0;
            kvtc__query_prepare(kc, qh, &qs);
            /* online softmax (Milakov & Gimelshein 2018) */
            for (t = 0; t < len; ++t) {
                size_t blk = (size_t)block_table[(size_t)b * (size_t)p->max_blocks_per_seq + (size_t)(t / p->cache.block_size)];
                size_t off = (size_t)(t % p->cache.block_size), page = blk * (size_t)p->cache.n_kv_heads + kvh;
                kvtc__slot ks = kvtc__slot_at(kc, &kl, (const uint8_t *)k_cache + page * k_page, off);
                kvtc__slot vs = kvtc__slot_at(vc, &vl, (const uint8_t *)v_cache + page * v_page, off);
                double s = scale * kvtc__score_one(kc, &qs, qh, ks), corr, w;
                if (s > m) {
                    corr = exp(m - s);
                    for (j = 0; j < (int)d; ++j) acc[j] *= corr;
                    l *= corr;
                    m = s;
                }
                w = exp(s - m);
                l += w;
                kvtc__decode_one(vc, vs, vrow, vrot);
                for (j = 0; j < (int)d; ++j) acc[j] += w * vrow[j];
            }
            for (j = 0; j < (int)d; ++j) oh[j] = len > 0 ? (float)(acc[j] / l) : 0.0f;
            if (vrot && len > 0) kvtc__rotate_one(&vc->rot, oh, oh, 1);
        }
    }
    return KVTC_OK;
}

#ifdef __cplusplus
}
#endif
#endif /* KVTC_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
MIT License

Copyright (c) 2026 the kvtc authors

Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
Revision history
  0.1.0 (2026-11-23) first release.
*/
