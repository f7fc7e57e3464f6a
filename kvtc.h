/* kvtc.h - KV-cache compression for LLM inference, CPU reference.  v1.0.0
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
 * >>lloyd >>codec >>cache >>attn >>rope >>eig >>calib >>alloc >>varpack >>tc
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
 *   1.0.0 (2026-12-01) TQ encoder norms in fp32 in a fixed reduction order, so
 *                      GPU records are byte-identical; kvtc_tc_encode zeroes
 *                      unused side data. kvtc_cuda.cuh: tensor-core attention,
 *                      fast compress, KVTC on the GPU; changed signatures.
 *   0.2.0 (2026-11-23) KVTC transform coding: RoPE, eigensolver, calibration
 *                      blobs, bit allocation, variable-width packing, chunks.
 *   0.1.0 (2026-11-23) first release: RNG, rotations, Lloyd-Max, TQ MSE/prod,
 *                      affine, paged cache, reference decode attention.
 *
 * License: MIT (see end of file).
 */
#ifndef KVTC_H_INCLUDED
#define KVTC_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#define KVTC_VERSION_MAJOR 1
#define KVTC_VERSION_MINOR 0
#define KVTC_VERSION_PATCH 0
#define KVTC_VERSION_STRING "1.0.0"
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
    X(ERR_NO_DEVICE, "no CUDA device")                                         \
    X(ERR_VERSION, "blob has an unsupported format version")                   \
    X(ERR_MISMATCH, "record was made with a different calibration")            \
    X(ERR_INPUT_NONFINITE, "input has NaN or Inf; nothing was computed")       \
    X(ERR_NO_CONVERGENCE, "an iteration did not converge")

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
 * offset t % block_size. A sequence with no tokens outputs zeros.
 *
 * Exact tokens: a sequence may also have uncompressed tokens (the attention
 * sinks, a recent window) that are read in the same softmax as its
 * compressed ones. Their keys and values are fp16 bit patterns,
 * exact_k / exact_v [n_seqs][n_kv_heads][max_exact][head_dim], keys as the
 * model stores them (after RoPE, not rotated); sequence b has exact_lens[b]
 * of them (0..max_exact: kvtc_attn_decode refuses other counts, the GPU,
 * which cannot check device data, clamps them). Softmax does not depend on
 * order, so a ring buffer of the last tokens serves as the window. A token
 * whose key or value holds a NaN or Inf is left out, as if masked. The
 * pointers are host memory for kvtc_attn_decode and device memory for
 * kvtc_cuda_attn_decode. */
typedef struct kvtc_attn_params {
    kvtc_cache_params cache; /* shared by the K and V caches */
    int n_seqs;
    int n_q_heads;           /* a multiple of cache.n_kv_heads */
    int max_blocks_per_seq;  /* row length of block_table */
    float scale;             /* softmax scale; 0 = 1/sqrt(head_dim) */
    int max_exact;           /* exact tokens per sequence at most; 0 = none (the three pointers are ignored) */
    const uint16_t *exact_k, *exact_v;
    const int32_t *exact_lens;
} kvtc_attn_params;

/* q: [n_seqs][n_q_heads][head_dim]; out: the same shape. */
KVTC_DEF kvtc_status kvtc_attn_decode(const kvtc_codec *kc, const kvtc_codec *vc, const kvtc_attn_params *p,
                                      const float *q, const void *k_cache, size_t k_cache_bytes,
                                      const void *v_cache, size_t v_cache_bytes, const int32_t *block_table,
                                      const int32_t *context_lens, float *out, size_t out_count);

/* ==========================================================================
 * KVTC transform coding (Staniszewski & Lancucki, "KV Cache Transform
 * Coding", ICLR 2026): a basis calibrated once per model, then per chunk of
 * tokens  Z = (X - mu) V^T,  per-component bit widths from a budget,
 * quantize, pack; decode  X_hat = Z_hat V + mu.  CPU reference.
 *
 *   kvtc_rope_*      remove / re-apply rotary position embeddings (keys are
 *                    calibrated and coded without RoPE: it mixes position
 *                    into the basis)
 *   kvtc_eig_sym     symmetric eigendecomposition (dense, p <= ~4096)
 *   kvtc_tc_calib_*  calibration: mean, covariance, eigenbasis (dense, or a
 *                    randomized range finder for large p); save / load
 *   kvtc_bit_alloc   optimal integer bit widths for a budget
 *   kvtc_pack_var    packing of rows of indices of varying widths
 *   kvtc_tc_*        a coder (calibration + budget + quantizer): chunk
 *                    records, encode, decode, sizes
 *
 * Vectors of dimension p are whatever the caller groups: one head (p =
 * head_dim), one layer's heads concatenated (p = n_kv_heads * head_dim), or
 * several layers' K and V concatenated. Calibrate and code with the same
 * grouping; the calibration's id ties each chunk record to it.
 * ======================================================================== */

/* >>rope -------------------------------------------------------------------
 * Rotary position embedding of a token vector of n_heads * head_dim floats
 * (heads concatenated). Pair k (k = 0 .. rotary_dim/2 - 1) of each head is
 *   HALF (Llama/GPT-NeoX in Hugging Face, "rotate_half"): coordinates
 *        (k, k + rotary_dim/2);
 *   INTERLEAVED (GPT-J, RoFormer, llama.cpp's default mode): (2k, 2k + 1);
 * and is rotated by the angle a = pos * theta^(-2k / rotary_dim):
 *   apply:  (x, y) -> (x cos a - y sin a, x sin a + y cos a)
 *   remove: (x, y) -> (x cos a + y sin a, -x sin a + y cos a)
 * Coordinates from rotary_dim to head_dim are left alone (partial RoPE).
 * Angles, cosines and sines are computed in double (models that compute them
 * in fp32 differ by about pos * 2^-24 rad); the rotation itself in double,
 * rounded once to float. No frequency scaling (YaRN, Llama-3.1 "llama3"). */
typedef enum kvtc_rope_style {
    KVTC_ROPE_DEFAULT = 0, /* HALF */
    KVTC_ROPE_HALF,
    KVTC_ROPE_INTERLEAVED,
    KVTC_ROPE_COUNT
} kvtc_rope_style;

/* Zero means default: `kvtc_rope_params r = {0}; r.head_dim = 64;` */
typedef struct kvtc_rope_params {
    int head_dim;          /* required: even, 2..KVTC_MAX_HEAD_DIM */
    int n_heads;           /* heads per token vector; 0 = 1 */
    kvtc_rope_style style;
    int rotary_dim;        /* rotated leading coordinates of each head, even; 0 = head_dim */
    double theta;          /* frequency base; 0 = 10000 */
} kvtc_rope_params;

/* Rotate n tokens of x ([n_tokens][n_heads][head_dim], in place) by their
 * positions; positions NULL means token t is at position t. */
KVTC_DEF kvtc_status kvtc_rope_apply(const kvtc_rope_params *p, float *x, size_t n_tokens, const int64_t *positions);
/* The inverse of kvtc_rope_apply (rotate by -angle). */
KVTC_DEF kvtc_status kvtc_rope_remove(const kvtc_rope_params *p, float *x, size_t n_tokens, const int64_t *positions);

/* >>eig --------------------------------------------------------------------
 * Symmetric eigendecomposition A = V^T diag(w) V of a dense n x n row-major
 * matrix (both triangles are read; they should agree): the matrix is scaled
 * by its largest |a_ij|, reduced to tridiagonal form by Householder
 * reflections, diagonalised by the implicit QL algorithm with Wilkinson-type
 * shifts (EISPACK tql2), and the reflections are applied back. Eigenvalues
 * descending in w; row k of v (n doubles) is the unit eigenvector of w[k],
 * its sign fixed so that its largest-magnitude entry (first one on ties) is
 * positive. O(n^3) time, every inner loop over contiguous rows. */

/* Scratch bytes kvtc_eig_sym needs for an n x n matrix: (n*n + 3n) doubles, 8-byte aligned. */
KVTC_DEF kvtc_status kvtc_eig_sym_scratch_bytes(int n, size_t *bytes);
/* n in 1..KVTC_TC_DENSE_MAX_DIM; w: n doubles; v: n*n doubles (may not alias a).
 * ERR_INPUT_NONFINITE if a has NaN/Inf, ERR_NO_CONVERGENCE if QL did not. */
KVTC_DEF kvtc_status kvtc_eig_sym(const double *a, int n, double *w, size_t w_count, double *v, size_t v_count,
                                  void *scratch, size_t scratch_bytes);

/* >>calib ------------------------------------------------------------------
 * Calibration from n_vectors rows of dim floats: the mean mu and the
 * covariance C = sum (x - mu)(x - mu)^T / (n - 1) accumulated in double,
 * then the top `rank` eigenpairs of C:
 *   DENSE: C formed explicitly (p^2 doubles), kvtc_eig_sym, truncated;
 *   RANDOMIZED (Halko, Martinsson & Tropp 2011, alg. 4.4 + 5.3): never forms
 *     C. Y = C Omega for a seeded Gaussian Omega of k = rank + oversample
 *     columns, `power_iters` rounds of Y = C orth(Y), Q = orth(Y), then the
 *     eigenpairs of the k x k matrix Q^T C Q give V = (Q U)^T; products with
 *     C stream over the data, two passes each. Memory O(p k), time
 *     O(n p k (power_iters + 2)). Orthonormalisation is Gram-Schmidt run
 *     twice; a column lost to rank deficiency is replaced by a fresh seeded
 *     Gaussian one, so the basis is always orthonormal.
 * Eigenvalues are clamped at 0, descending; basis rows orthonormal (float). */
#define KVTC_TC_FORMAT_VERSION 2    /* calibration blobs and chunk records (2: chunk checksum by pieces) */
#define KVTC_TC_MAX_DIM (1 << 20)   /* largest p */
#define KVTC_TC_DENSE_MAX_DIM 4096  /* largest p for DENSE and kvtc_eig_sym */
#define KVTC_TC_MAX_BITS 16         /* widest component */

typedef enum kvtc_tc_eig_method {
    KVTC_TC_EIG_DEFAULT = 0, /* DENSE if dim <= 1024, else RANDOMIZED */
    KVTC_TC_EIG_DENSE,
    KVTC_TC_EIG_RANDOMIZED,
    KVTC_TC_EIG_COUNT
} kvtc_tc_eig_method;

/* Zero means default: `kvtc_tc_calib_params c = {0}; c.dim = 128;` */
typedef struct kvtc_tc_calib_params {
    int dim;                   /* required: p, 1..KVTC_TC_MAX_DIM (DENSE: ..KVTC_TC_DENSE_MAX_DIM) */
    int rank;                  /* components kept; 0 = dim (DENSE), min(dim, 256) (RANDOMIZED) */
    kvtc_tc_eig_method method;
    int oversample;            /* RANDOMIZED: extra columns; 0 = 16 */
    int power_iters;           /* RANDOMIZED: 0 = 2, -1 = none, else 1..16 */
    uint64_t seed;             /* RANDOMIZED: Omega and refills; 0 is a valid seed */
    void *alloc_user;          /* passed to KVTC_MALLOC/KVTC_FREE */
} kvtc_tc_calib_params;

/* A calibration. Read-only for callers; one allocation. */
typedef struct kvtc_tc_calib {
    int dim, rank;
    uint64_t id;             /* FNV-1a 64 of its saved blob (the blob's checksum); chunk records carry it */
    uint64_t n_samples;      /* vectors it was computed from */
    double total_variance;   /* trace of C: sum of all dim eigenvalues, kept or not */
    double *eigenvalues;     /* rank, descending, >= 0 */
    float *mean;             /* dim */
    float *basis;            /* rank x dim, row-major; row i is the unit eigenvector of eigenvalues[i] */
    void *alloc_user;
} kvtc_tc_calib;

/* Calibration blob (all little-endian; bytes [0, 64) are this header, the
 * payload follows at byte 64 with no padding):
 *   f64 eigenvalues[rank] | f32 mean[dim] | f32 basis[rank][dim]
 * payload_bytes = 8 rank + 4 dim + 4 rank dim. checksum is FNV-1a 64
 * (kvtc_fnv1a64 from KVTC_FNV1A64_INIT) of the header_bytes + payload_bytes
 * bytes of the blob with the 8 checksum bytes taken as zero; it is also the
 * calibration id. Loading checks magic, version (else ERR_VERSION), dtype
 * (else ERR_UNSUPPORTED), flags and reserved == 0, 1 <= rank <= dim <=
 * KVTC_TC_MAX_DIM, payload_bytes against dim and rank, the length, the
 * checksum, and that every value is finite, eigenvalues >= 0 and descending
 * (else ERR_CORRUPT) before it allocates. The struct mirrors the bytes on a
 * little-endian machine. */
typedef struct kvtc_tc_calib_header {
    uint8_t magic[4];         /*  0: "KTCC" */
    uint16_t version;         /*  4: KVTC_TC_FORMAT_VERSION */
    uint8_t dtype;            /*  6: 1 = fp32 mean and basis (the only dtype) */
    uint8_t flags;            /*  7: 0 */
    uint32_t dim;             /*  8 */
    uint32_t rank;            /* 12 */
    uint64_t n_samples;       /* 16 */
    double total_variance;    /* 24: IEEE binary64 */
    uint64_t payload_bytes;   /* 32 */
    uint64_t checksum;        /* 40: FNV-1a 64, = calibration id */
    uint64_t reserved[2];     /* 48: 0 */
} kvtc_tc_calib_header;
#define KVTC_TC_CALIB_HEADER_BYTES 64

/* FNV-1a 64 (Fowler-Noll-Vo): h = (h ^ byte) * 0x100000001b3 over the bytes;
 * start from KVTC_FNV1A64_INIT, chain calls to hash pieces. */
#define KVTC_FNV1A64_INIT 0xcbf29ce484222325ULL
KVTC_DEF uint64_t kvtc_fnv1a64(const void *data, size_t bytes, uint64_t h);
#define KVTC_FNV1A64_PRIME 0x100000001b3ULL

/* Checksum of a chunk record of `bytes` bytes, its bytes [48, 56) (the
 * checksum field) taken as zero: the bytes are cut into pieces of
 * KVTC_TC_CHECKSUM_PIECE (the last one may be shorter), f_i = FNV-1a 64 of
 * piece i from KVTC_FNV1A64_INIT, and h = KVTC_FNV1A64_INIT, then
 * h = h * KVTC_FNV1A64_PRIME + f_i for each piece in order (mod 2^64). Like
 * FNV-1a of the whole record, it changes with any change of one piece; the
 * pieces let a GPU hash them in parallel and sum h = INIT P^n + sum f_i
 * P^(n-1-i) (kvtc_cuda.cuh). rec NULL hashes as zero bytes. */
#define KVTC_TC_CHECKSUM_PIECE 256
KVTC_DEF uint64_t kvtc_tc_record_checksum(const void *rec, size_t bytes);

/* What each zero field of *p means: the parameters calibration would use. */
KVTC_DEF kvtc_status kvtc_tc_calib_params_resolved(const kvtc_tc_calib_params *p, kvtc_tc_calib_params *out);
/* Calibrate from n_vectors rows of dim floats (n_vectors >= 2, else ERR_ARG;
 * NaN/Inf anywhere: ERR_INPUT_NONFINITE). Allocates through KVTC_MALLOC. */
KVTC_DEF kvtc_status kvtc_tc_calibrate(const kvtc_tc_calib_params *p, const float *x, size_t n_vectors,
                                       kvtc_tc_calib **out);
/* Free a calibration (NULL is fine). */
KVTC_DEF void kvtc_tc_calib_destroy(kvtc_tc_calib *c);
/* Bytes of the saved blob. */
KVTC_DEF kvtc_status kvtc_tc_calib_saved_bytes(const kvtc_tc_calib *c, size_t *bytes);
/* Write the blob (out_bytes >= kvtc_tc_calib_saved_bytes). */
KVTC_DEF kvtc_status kvtc_tc_calib_save(const kvtc_tc_calib *c, void *out, size_t out_bytes);
/* Check and load a blob (trailing bytes after it are ignored); allocates
 * through KVTC_MALLOC with alloc_user. ERR_CORRUPT/ERR_VERSION/... as above. */
KVTC_DEF kvtc_status kvtc_tc_calib_load(const void *in, size_t in_bytes, void *alloc_user, kvtc_tc_calib **out);
/* Z = (X - mu) V^T for n rows: z is n x rank. */
KVTC_DEF kvtc_status kvtc_tc_calib_project(const kvtc_tc_calib *c, const float *x, size_t n, float *z,
                                           size_t z_count);
/* X = Z V + mu for n rows of rank coefficients: x is n x dim. */
KVTC_DEF kvtc_status kvtc_tc_calib_reconstruct(const kvtc_tc_calib *c, const float *z, size_t n, float *x,
                                               size_t x_count);

/* >>alloc ------------------------------------------------------------------
 * Bit allocation: integer b_i minimising  sum_i lambda_i 4^(-b_i)  subject
 * to sum_i b_i <= budget, 0 <= b_i <= max_bits. One more bit on component i
 * gains lambda_i * 3/4 * 4^(-b_i), which falls as b_i grows, so handing bits
 * out one at a time to the largest gain is optimal (the objective is
 * separable and convex). A binary max-heap keyed by (gain, then lower index
 * first) makes it O(p + B log p) and deterministic; gains are exact powers-
 * of-4 multiples of 3/4 lambda_i, so equal lambdas tie exactly. It stops
 * early when every remaining gain is 0 (lambda_i = 0 never gets bits). */

/* Scratch bytes for n components: n ints + n doubles. */
KVTC_DEF kvtc_status kvtc_bit_alloc_scratch_bytes(int n, size_t *bytes);
/* lambda: n values >= 0 (finite); budget >= 0 (ERR_ARG if negative);
 * max_bits 1..16; bits: n outputs; objective (may be NULL) = the minimum.
 * Does not allocate. */
KVTC_DEF kvtc_status kvtc_bit_alloc(const double *lambda, int n, int64_t budget, int max_bits, uint8_t *bits,
                                    size_t bits_count, void *scratch, size_t scratch_bytes, double *objective);

/* >>varpack ----------------------------------------------------------------
 * Rows of indices with per-column widths w_0..w_{c-1} (each 0..16), one
 * LSB-first bit stream as in >>pack: with R = sum w_j, index (t, j) occupies
 * stream bits [t R + W_j, t R + W_j + w_j), W_j = w_0 + .. + w_{j-1}; stream
 * bit k is bit (k % 8) of byte k / 8; width-0 columns take no bits (and
 * unpack as 0); unused high bits of the last byte are zero. With every
 * width equal to b this is exactly kvtc_pack. Example: widths {3, 0, 5, 1},
 * two rows {5, 0, 17, 1}, {2, 0, 30, 0}: 9 bits per row, bytes 8d e2 03. */

/* Bytes of n_rows rows: ceil(n_rows * sum(widths) / 8). */
KVTC_DEF kvtc_status kvtc_pack_var_bytes(size_t n_rows, const uint8_t *widths, size_t n_cols, size_t *bytes);
/* idx: n_rows x n_cols; ERR_ARG if an index needs more bits than its width. */
KVTC_DEF kvtc_status kvtc_pack_var(const uint16_t *idx, size_t n_rows, const uint8_t *widths, size_t n_cols,
                                   void *out, size_t out_bytes);
/* The exact inverse of kvtc_pack_var. */
KVTC_DEF kvtc_status kvtc_unpack_var(const void *in, size_t in_bytes, size_t n_rows, const uint8_t *widths,
                                     size_t n_cols, uint16_t *idx, size_t idx_count);

/* >>tc ---------------------------------------------------------------------
 * A coder: a calibration (borrowed, must outlive the coder), the widths
 * kvtc_bit_alloc gives its eigenvalues for budget_bits per token, and a
 * quantizer. Component i with width b_i = 0 is dropped (decodes as 0, i.e.
 * the token decodes towards mu); otherwise:
 *   UNIFORM: per chunk, lo = min_t z_ti, hi = max_t z_ti over the chunk's
 *     coded tokens; stored as fp32 lo and fp32 scale = (hi - lo) / qmax,
 *     qmax = 2^b - 1 (the zero point of the usual affine form is -lo/scale).
 *     q = clamp(floor((z - lo) * (1/scale) + 0.5), 0, qmax) in fp32 against
 *     the stored values (q = 0 when scale = 0); z_hat = lo + q * scale.
 *     8 side bytes per coded component per chunk.
 *   GAUSSIAN: the b-bit Lloyd-Max codebook of N(0, 1) (kvtc_codebook_generate
 *     GAUSSIAN, head_dim 64, times 8) scaled by sigma_i = sqrt(lambda_i):
 *     q = the cell of z * (1/sigma_i) (fp32), z_hat = sigma_i * c_b[q]. No
 *     side bytes; assumes chunk coefficients follow the calibration. Widths
 *     above 8 fall back to UNIFORM (with its side bytes).
 * Expected squared error of component i: lambda_i * D(b_i), D(0) = 1; for
 * GAUSSIAN D(b) is the codebook's mse_unit (0.363, 0.118, 0.0345, 0.00950 at
 * b = 1..4); for UNIFORM it is about (range / (2^b - 1))^2 / 12 / lambda_i.
 * DEFAULT is GAUSSIAN: at equal record bytes, side data included, it had
 * the lower error in the measurement printed by tests/test_tc.c (test
 * "tc_quantizer_choice": p = 128, 1024-token chunks, 3x..20x; UNIFORM won
 * only at 3x on heavy-tailed data). On 1024 Gaussian samples a min/max
 * UNIFORM grid costs about 6.1, 0.39, 0.070 lambda_i at 1, 2, 3 bits
 * (GAUSSIAN: 0.363, 0.118, 0.0345): a 1-bit UNIFORM component is worse than
 * dropping it, which the allocator's lambda 4^-b model does not see, so
 * UNIFORM falls far behind from 8x on.
 *
 * A chunk of n tokens keeps its first s "sink" and last w "window" tokens
 * uncompressed (fp16), s = min(n_sink, n), w = min(n_window, n - s); the
 * other m = n - s - w tokens are coded. Encoding a token with NaN/Inf
 * stores it as all-zero coefficients (decodes to mu) or, if it is a sink or
 * window token, as zeros, and returns ERR_NONFINITE after coding the rest;
 * a sink/window value beyond fp16 range, or a uniform scale beyond fp32
 * range, is stored as zero and gives ERR_RANGE likewise. */
typedef enum kvtc_tc_quantizer {
    KVTC_TC_QUANT_DEFAULT = 0, /* GAUSSIAN */
    KVTC_TC_QUANT_UNIFORM,
    KVTC_TC_QUANT_GAUSSIAN,
    KVTC_TC_QUANT_COUNT
} kvtc_tc_quantizer;

#define KVTC_TC_NONE (-1) /* n_sink / n_window: no such tokens */

/* Zero means default: `kvtc_tc_params t = {0}; t.budget_bits = 256;` */
typedef struct kvtc_tc_params {
    int budget_bits;   /* B: bits per coded token over all components; 0 = 2 * dim, else 1..rank*max_bits (more is clipped) */
    int max_bits;      /* largest width of one component, 1..16; 0 = 8 */
    kvtc_tc_quantizer quantizer;
    int n_sink;        /* leading fp16 tokens per chunk; 0 = 4, KVTC_TC_NONE = none */
    int n_window;      /* trailing fp16 tokens per chunk; 0 = 128, KVTC_TC_NONE = none */
    void *alloc_user;  /* passed to KVTC_MALLOC/KVTC_FREE */
} kvtc_tc_params;

/* A created coder. Read-only for callers; one allocation. */
typedef struct kvtc_tc {
    kvtc_tc_params params;       /* resolved (no zero defaults left; KVTC_TC_NONE stays) */
    const kvtc_tc_calib *calib;  /* borrowed */
    int n_active;                /* components with width > 0 */
    int row_bits;                /* sum of widths: coded bits per token */
    double objective;            /* sum lambda_i 4^-b_i of the allocation */
    uint8_t *widths;             /* rank widths */
    int32_t *active;             /* n_active component indices, ascending */
    float *basis_t;              /* dim x n_active: column k is basis row active[k] */
    float *sigma;                /* rank: sqrt(eigenvalue) */
    float centroids[8][256];     /* [b-1]: N(0,1) Lloyd-Max, 2^b ascending */
    float boundaries[8][255];    /* [b-1]: 2^b - 1 */
    double codebook_mse[8];      /* [b-1]: D(b) per unit variance */
} kvtc_tc;

/* Chunk record (all little-endian; bytes [0, 64) are this header, then with
 * no padding):
 *   u8  widths[rank]                       b_i of every component, 0..16
 *   f32 {lo, scale}[n_uniform]             components with b_i > 0 that use
 *                                          UNIFORM (all of them for UNIFORM,
 *                                          those with b_i > 8 for GAUSSIAN),
 *                                          ascending component order
 *   f16 sink[n_sink][dim]                  tokens 0 .. n_sink-1
 *   f16 window[n_window][dim]              tokens n_tokens-n_window .. n_tokens-1
 *   indices                                the m = n_tokens - n_sink - n_window
 *                                          coded tokens, in order, as rows of
 *                                          kvtc_pack_var with the nonzero
 *                                          widths: ceil(m * row_bits / 8) bytes
 * record_bytes = 64 + rank + 8 n_uniform + 2 dim (n_sink + n_window)
 *                + ceil(m * row_bits / 8), exactly; checksum is
 * kvtc_tc_record_checksum of those bytes (the 8 checksum bytes taken as
 * zero). Decoding checks magic,
 * version (else ERR_VERSION), calib_id (else ERR_MISMATCH), every field and
 * the total length against the record before reading the payload, then the
 * checksum (ERR_CORRUPT). Values in a record whose checksum was forged
 * decode to whatever they say (NaN included) but never out of bounds. */
typedef struct kvtc_tc_chunk_header {
    uint8_t magic[4];       /*  0: "KTCR" */
    uint16_t version;       /*  4: KVTC_TC_FORMAT_VERSION */
    uint8_t quantizer;      /*  6: kvtc_tc_quantizer, UNIFORM or GAUSSIAN */
    uint8_t flags;          /*  7: 0 */
    uint32_t dim;           /*  8 */
    uint32_t rank;          /* 12 */
    uint32_t n_tokens;      /* 16 */
    uint32_t n_sink;        /* 20 */
    uint32_t n_window;      /* 24 */
    uint32_t row_bits;      /* 28: sum of widths */
    uint64_t calib_id;      /* 32 */
    uint64_t record_bytes;  /* 40 */
    uint64_t checksum;      /* 48 */
    uint64_t reserved;      /* 56: 0 */
} kvtc_tc_chunk_header;
#define KVTC_TC_CHUNK_HEADER_BYTES 64

/* What each zero field of *p means for this calibration. */
KVTC_DEF kvtc_status kvtc_tc_params_resolved(const kvtc_tc_params *p, const kvtc_tc_calib *calib,
                                             kvtc_tc_params *out);
/* Allocate bits and build the tables (allocates through KVTC_MALLOC). */
KVTC_DEF kvtc_status kvtc_tc_create(const kvtc_tc_params *p, const kvtc_tc_calib *calib, kvtc_tc **out);
/* Free a coder (NULL is fine); the calibration is not freed. */
KVTC_DEF void kvtc_tc_destroy(kvtc_tc *tc);
/* Exact bytes of the record of a chunk of n_tokens (1..2^32-1) tokens. */
KVTC_DEF kvtc_status kvtc_tc_chunk_bytes(const kvtc_tc *tc, size_t n_tokens, size_t *bytes);
/* fp16 bytes of the chunk (n_tokens * dim * 2) over its record bytes. */
KVTC_DEF kvtc_status kvtc_tc_ratio(const kvtc_tc *tc, size_t n_tokens, double *ratio);
/* Scratch for encoding a chunk of up to n_tokens tokens, or decoding any
 * record of up to n_tokens tokens made with this calibration:
 * n_tokens * rank * 6 bytes plus 64 dim + O(rank); 16-byte aligned. */
KVTC_DEF kvtc_status kvtc_tc_scratch_bytes(const kvtc_tc *tc, size_t n_tokens, size_t *bytes);
/* Encode n_tokens rows of dim floats into one record of exactly
 * kvtc_tc_chunk_bytes bytes. May return ERR_NONFINITE/ERR_RANGE after
 * writing a complete record (see above). */
KVTC_DEF kvtc_status kvtc_tc_encode(const kvtc_tc *tc, const float *x, size_t n_tokens, void *out, size_t out_bytes,
                                    void *scratch, size_t scratch_bytes);
/* Parse and check a record's header (not its payload or checksum):
 * magic, version, field ranges, and record_bytes <= in_bytes. */
KVTC_DEF kvtc_status kvtc_tc_chunk_info(const void *in, size_t in_bytes, kvtc_tc_chunk_header *out);
/* Decode a record into x (n_tokens x dim floats, x_count >= that), with a
 * coder of the same calibration (any budget or quantizer: records describe
 * themselves). */
KVTC_DEF kvtc_status kvtc_tc_decode(const kvtc_tc *tc, const void *in, size_t in_bytes, float *x, size_t x_count,
                                    void *scratch, size_t scratch_bytes);

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
    int h = 1, i, j;
    float norm;
    if (n >= 8) { /* stages h = 1, 2, 4 as one 8-point butterfly per group: the same additions in
                   * the same order, so the same result, in 40% fewer instructions */
        for (i = 0; i < n; i += 8) {
            float *p = x + i;
            float b0 = p[0] + p[1], b1 = p[0] - p[1], b2 = p[2] + p[3], b3 = p[2] - p[3];
            float b4 = p[4] + p[5], b5 = p[4] - p[5], b6 = p[6] + p[7], b7 = p[6] - p[7];
            float c0 = b0 + b2, c2 = b0 - b2, c1 = b1 + b3, c3 = b1 - b3;
            float c4 = b4 + b6, c6 = b4 - b6, c5 = b5 + b7, c7 = b5 - b7;
            p[0] = c0 + c4, p[4] = c0 - c4, p[1] = c1 + c5, p[5] = c1 - c5;
            p[2] = c2 + c6, p[6] = c2 - c6, p[3] = c3 + c7, p[7] = c3 - c7;
        }
        h = 8;
    }
    for (; h < n; h <<= 1)
        for (i = 0; i < n; i += h << 1) {
            float *KVTC__RESTRICT lo = x + i, *KVTC__RESTRICT hi = x + i + h; /* disjoint halves */
            for (j = 0; j < h; ++j) {
                float a = lo[j], b = hi[j];
                lo[j] = a + b;
                hi[j] = a - b;
            }
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

/* Rotate n row vectors forward or back, after checking the arguments. */
static kvtc_status kvtc__rotation_batch(const kvtc_rotation *rot, const float *in, size_t n, float *out,
                                        size_t out_count, int transpose) {
    size_t need, v, d;
    if (!rot || (n && (!in || !out))) return KVTC_ERR_NULL;
    if (rot->head_dim < 2 || rot->head_dim > KVTC_MAX_HEAD_DIM) return KVTC_ERR_DIM;
    if (!kvtc__mul_size(n, (size_t)rot->head_dim, &need)) return KVTC_ERR_OVERFLOW;
    if (out_count < need) return KVTC_ERR_SMALL;
    d = (size_t)rot->head_dim;
    for (v = 0; v < n; ++v) kvtc__rotate_one(rot, in + v * d, out + v * d, transpose);
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_rotation_apply(const kvtc_rotation *rot, const float *x, size_t n, float *y,
                                         size_t y_count) {
    return kvtc__rotation_batch(rot, x, n, y, y_count, 0);
}

KVTC_DEF kvtc_status kvtc_rotation_apply_t(const kvtc_rotation *rot, const float *y, size_t n, float *x,
                                           size_t x_count) {
    return kvtc__rotation_batch(rot, y, n, x, x_count, 1);
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

/* Sum of squares in the order the GPU reduces it, so both get the same bits: fmaf over each chunk of
 * KVTC__SUM_CHUNK consecutive coordinates in order, then a pairwise tree over the chunk sums (zero-
 * padded to a power of two): level w adds sum[c + w] into sum[c] for c = 0, 2w, 4w, ...
 * With idx, the squares are of centroids[idx[j]] instead of x[j]. */
#define KVTC__SUM_CHUNK 16
static float kvtc__tree_sumsq(const float *x, const uint16_t *idx, const float *centroids, int d) {
    float part[KVTC_MAX_HEAD_DIM / KVTC__SUM_CHUNK];
    int n = (d + KVTC__SUM_CHUNK - 1) / KVTC__SUM_CHUNK, p2 = 1, c, j, w;
    while (p2 < n) p2 <<= 1;
    for (c = 0; c < p2; ++c) {
        float acc = 0.0f;
        for (j = c * KVTC__SUM_CHUNK; j < d && j < (c + 1) * KVTC__SUM_CHUNK; ++j) {
            const float v = idx ? centroids[idx[j]] : x[j];
            acc = fmaf(v, v, acc);
        }
        part[c] = acc; /* 0 for the padding chunks */
    }
    for (w = 1; w < p2; w <<= 1)
        for (c = 0; c < p2; c += 2 * w) part[c] = part[c] + part[c + w];
    return part[0];
}

/* Encode one vector into slot s. Returns KVTC_OK, ERR_NONFINITE or ERR_RANGE
 * (the slot then holds zeros). */
static kvtc_status kvtc__encode_one(const kvtc_codec *c, const float *x, kvtc__slot s) {
    const kvtc_codec_params *p = &c->params;
    int d = p->head_dim, j;
    for (j = 0; j < d; ++j)
        if (!isfinite(x[j])) {
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
        float y[KVTC_MAX_HEAD_DIM], ss = kvtc__tree_sumsq(x, NULL, NULL, d), mx = 0.0f, norm, inv, stored;
        uint16_t idx[KVTC_MAX_HEAD_DIM];
        int b = c->mse_bits, e = 0, scaled = !(ss >= 1e-30f && ss <= 3e38f);
        if (scaled) { /* tiny or huge: x times the power of two 2^-e that brings max |x_j| into [1, 2) first */
            for (j = 0; j < d; ++j) mx = fabsf(x[j]) > mx ? fabsf(x[j]) : mx;
            if (mx == 0.0f) {
                kvtc__zero_slot(c, s);
                return KVTC_OK;
            }
            e = ilogbf(mx);
        }
        for (j = 0; j < d; ++j) y[j] = scaled ? ldexpf(x[j], -e) : x[j];
        if (scaled) ss = kvtc__tree_sumsq(y, NULL, NULL, d);
        norm = sqrtf(ss);
        inv = 1.0f / norm; /* u = x * (1/n) in fp32 */
        for (j = 0; j < d; ++j) y[j] *= inv;
        if (scaled) norm = ldexpf(norm, e); /* may overflow: ERR_RANGE below */
        kvtc__rotate_one(&c->rot, y, y, 0);
        for (j = 0; j < d; ++j) idx[j] = (uint16_t)kvtc__quantize(c->boundaries, b, y[j]);
        stored = kvtc__store_norm(c, s.scales, p->norm_correction > 0 ? norm / sqrtf(kvtc__tree_sumsq(NULL, idx, c->centroids, d)) : norm);
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
    double acc[KVTC_MAX_HEAD_DIM], accx[KVTC_MAX_HEAD_DIM]; /* compressed values (rotated), exact values */
    float vrow[KVTC_MAX_HEAD_DIM];
    kvtc_status st;
    int b, h, gqa, j, vrot;
    size_t nx, x_seq, x_total;
    double scale;
    if (!kc || !vc || !p) return KVTC_ERR_NULL;
    d = (size_t)kc->params.head_dim;
    if (vc->params.head_dim != kc->params.head_dim) return KVTC_ERR_DIM;
    if (p->n_seqs < 0 || p->n_q_heads < 1 || p->max_blocks_per_seq < 0 || p->max_exact < 0 || p->cache.n_kv_heads < 1 ||
        p->n_q_heads % p->cache.n_kv_heads != 0)
        return KVTC_ERR_ARG;
    if ((st = kvtc_cache_bytes(kc, &p->cache, &k_page, &k_total)) != KVTC_OK) return st;
    if ((st = kvtc_cache_bytes(vc, &p->cache, &v_page, &v_total)) != KVTC_OK) return st;
    if (!kvtc__mul_size((size_t)p->n_seqs, (size_t)p->n_q_heads, &need) || !kvtc__mul_size(need, d, &need))
        return KVTC_ERR_OVERFLOW;
    nx = (size_t)p->max_exact; /* x_seq: exact-token elements per sequence */
    if (!kvtc__mul_size((size_t)p->cache.n_kv_heads, nx, &x_seq) || !kvtc__mul_size(x_seq, d, &x_seq) ||
        !kvtc__mul_size(x_seq, (size_t)p->n_seqs, &x_total))
        return KVTC_ERR_OVERFLOW;
    if (p->n_seqs == 0) return KVTC_OK;
    if (!q || !k_cache || !v_cache || !block_table || !context_lens || !out) return KVTC_ERR_NULL;
    if (nx && (!p->exact_k || !p->exact_v || !p->exact_lens)) return KVTC_ERR_NULL;
    if (k_cache_bytes < k_total || v_cache_bytes < v_total || out_count < need) return KVTC_ERR_SMALL;
    for (b = 0; b < p->n_seqs; ++b) {
        int32_t len = context_lens[b], nb, i;
        if (len < 0 || (int64_t)len > (int64_t)p->max_blocks_per_seq * p->cache.block_size) return KVTC_ERR_ARG;
        if (nx && (p->exact_lens[b] < 0 || p->exact_lens[b] > p->max_exact)) return KVTC_ERR_ARG;
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
        int32_t len = context_lens[b], n_exact = nx ? p->exact_lens[b] : 0;
        int64_t t, n_all = (int64_t)len + n_exact;
        for (h = 0; h < p->n_q_heads; ++h) {
            const float *qh = q + ((size_t)b * (size_t)p->n_q_heads + (size_t)h) * d;
            float *oh = out + ((size_t)b * (size_t)p->n_q_heads + (size_t)h) * d;
            size_t kvh = (size_t)(h / gqa);
            const uint16_t *xk = nx ? p->exact_k + (size_t)b * x_seq + kvh * nx * d : NULL;
            const uint16_t *xv = nx ? p->exact_v + (size_t)b * x_seq + kvh * nx * d : NULL;
            double m = -HUGE_VAL, l = 0.0;
            for (j = 0; j < (int)d; ++j) acc[j] = accx[j] = 0.0;
            kvtc__query_prepare(kc, qh, &qs);
            /* online softmax (Milakov & Gimelshein 2018) over the compressed tokens, then the exact ones */
            for (t = 0; t < n_all; ++t) {
                double s = 0.0, w;
                if (t < len) {
                    size_t blk = (size_t)block_table[(size_t)b * (size_t)p->max_blocks_per_seq + (size_t)(t / p->cache.block_size)];
                    size_t off = (size_t)(t % p->cache.block_size), page = blk * (size_t)p->cache.n_kv_heads + kvh;
                    kvtc__slot ks = kvtc__slot_at(kc, &kl, (const uint8_t *)k_cache + page * k_page, off);
                    kvtc__slot vs = kvtc__slot_at(vc, &vl, (const uint8_t *)v_cache + page * v_page, off);
                    s = scale * kvtc__score_one(kc, &qs, qh, ks);
                    kvtc__decode_one(vc, vs, vrow, vrot);
                } else {
                    const uint16_t *kr = xk + (size_t)(t - len) * d, *vr = xv + (size_t)(t - len) * d;
                    int finite = 1;
                    for (j = 0; j < (int)d; ++j) {
                        vrow[j] = kvtc_f16_to_f32(vr[j]);
                        s += (double)qh[j] * kvtc_f16_to_f32(kr[j]);
                        finite &= isfinite(vrow[j]) && isfinite(kvtc_f16_to_f32(kr[j]));
                    }
                    if (!finite) continue; /* masked */
                    s *= scale;
                }
                if (s > m) {
                    double corr = exp(m - s);
                    for (j = 0; j < (int)d; ++j) acc[j] *= corr, accx[j] *= corr;
                    l *= corr;
                    m = s;
                }
                w = exp(s - m);
                l += w;
                if (t < len)
                    for (j = 0; j < (int)d; ++j) acc[j] += w * vrow[j];
                else
                    for (j = 0; j < (int)d; ++j) accx[j] += w * vrow[j];
            }
            for (j = 0; j < (int)d; ++j) oh[j] = l > 0.0 ? (float)(acc[j] / l) : 0.0f;
            if (vrot && l > 0.0) kvtc__rotate_one(&vc->rot, oh, oh, 1);
            if (n_exact && l > 0.0)
                for (j = 0; j < (int)d; ++j) oh[j] = (float)((double)oh[j] + accx[j] / l);
        }
    }
    return KVTC_OK;
}

/* ==========================================================================
 * KVTC transform coding: >>rope >>eig >>calib >>alloc >>varpack >>tc
 * ======================================================================== */

/* Little-endian u32/u64/f64 stores and loads for the KVTC blobs. */
static void kvtc__tc_put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static uint32_t kvtc__tc_get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static void kvtc__tc_put_u64(uint8_t *p, uint64_t v) {
    kvtc__tc_put_u32(p, (uint32_t)v);
    kvtc__tc_put_u32(p + 4, (uint32_t)(v >> 32));
}
static uint64_t kvtc__tc_get_u64(const uint8_t *p) {
    return (uint64_t)kvtc__tc_get_u32(p) | ((uint64_t)kvtc__tc_get_u32(p + 4) << 32);
}
static void kvtc__tc_put_f64(uint8_t *p, double x) {
    uint64_t u;
    memcpy(&u, &x, 8);
    kvtc__tc_put_u64(p, u);
}
static double kvtc__tc_get_f64(const uint8_t *p) {
    uint64_t u = kvtc__tc_get_u64(p);
    double x;
    memcpy(&x, &u, 8);
    return x;
}
/* Round up to a multiple of 16 for scratch carving (callers bound sizes). */
static size_t kvtc__tc_up16(size_t a) { return (a + 15) & ~(size_t)15; }

/* >>rope */
static kvtc_status kvtc__rope(const kvtc_rope_params *p, float *x, size_t n_tokens, const int64_t *positions,
                              double sign) {
    double inv_freq[KVTC_MAX_HEAD_DIM / 2], theta;
    int hd, nh, rd, half, k, h;
    kvtc_rope_style style;
    size_t t, need, stride;
    if (!p) return KVTC_ERR_NULL;
    hd = p->head_dim;
    nh = p->n_heads == 0 ? 1 : p->n_heads;
    rd = p->rotary_dim == 0 ? hd : p->rotary_dim;
    theta = p->theta == 0.0 ? 10000.0 : p->theta;
    style = p->style == KVTC_ROPE_DEFAULT ? KVTC_ROPE_HALF : p->style;
    if (hd < 2 || hd > KVTC_MAX_HEAD_DIM || hd % 2 != 0) return KVTC_ERR_DIM;
    if (nh < 1 || rd < 2 || rd > hd || rd % 2 != 0) return KVTC_ERR_ARG;
    if (!(theta > 0.0) || !isfinite(theta)) return KVTC_ERR_ARG;
    if (style != KVTC_ROPE_HALF && style != KVTC_ROPE_INTERLEAVED) return KVTC_ERR_ARG;
    if (!kvtc__mul_size((size_t)nh, (size_t)hd, &stride) || !kvtc__mul_size(n_tokens, stride, &need))
        return KVTC_ERR_OVERFLOW;
    if (n_tokens == 0) return KVTC_OK;
    if (!x) return KVTC_ERR_NULL;
    half = rd / 2;
    for (k = 0; k < half; ++k) inv_freq[k] = pow(theta, -2.0 * (double)k / (double)rd);
    for (t = 0; t < n_tokens; ++t) {
        double pos = positions ? (double)positions[t] : (double)t;
        float *row = x + t * stride;
        for (k = 0; k < half; ++k) {
            double a = pos * inv_freq[k], c = cos(a), s = sign * sin(a);
            int i0 = style == KVTC_ROPE_HALF ? k : 2 * k, i1 = style == KVTC_ROPE_HALF ? k + half : 2 * k + 1;
            for (h = 0; h < nh; ++h) {
                float *v = row + (size_t)h * (size_t)hd;
                double x0 = v[i0], x1 = v[i1];
                v[i0] = (float)(x0 * c - x1 * s);
                v[i1] = (float)(x0 * s + x1 * c);
            }
        }
    }
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_rope_apply(const kvtc_rope_params *p, float *x, size_t n_tokens, const int64_t *positions) {
    return kvtc__rope(p, x, n_tokens, positions, 1.0);
}

KVTC_DEF kvtc_status kvtc_rope_remove(const kvtc_rope_params *p, float *x, size_t n_tokens, const int64_t *positions) {
    return kvtc__rope(p, x, n_tokens, positions, -1.0);
}

/* >>eig
 * Row-major throughout. Tridiagonalisation (LAPACK dsytd2 with full storage):
 * step k turns row/column k below the diagonal into (beta, 0, ..., 0) with
 * H_k = I - tau_k v v^T acting on indices k+1..n-1, v_0 = 1, and applies
 * A22 <- H A22 H = A22 - v w^T - w v^T, p = tau A22 v, w = p - tau/2 (p.v) v;
 * v is kept in row k. Then T = Q^T A Q with Q = H_0 H_1 ... H_{n-3}. QL works
 * on the rows of Z (row i = eigenvector i of T, initially I), and an
 * eigenvector of A is Q z = H_0 (H_1 (... H_{n-3} z)). */
static void kvtc__tridiag(double *a, int n, double *d, double *e, double *tau, double *pw) {
    int k, i, j;
    for (k = 0; k + 2 < n; ++k) {
        double *row = a + (size_t)k * n, *v = row + k + 1, alpha = v[0], xnorm2 = 0.0, beta, t, pv, kk;
        int m = n - k - 1;
        d[k] = row[k];
        for (i = 1; i < m; ++i) xnorm2 += v[i] * v[i];
        if (xnorm2 == 0.0) {
            tau[k] = 0.0;
            e[k] = alpha;
            continue;
        }
        beta = sqrt(alpha * alpha + xnorm2);
        if (alpha >= 0.0) beta = -beta;
        t = (beta - alpha) / beta;
        tau[k] = t;
        e[k] = beta;
        {
            double s = 1.0 / (alpha - beta);
            v[0] = 1.0;
            for (i = 1; i < m; ++i) v[i] *= s;
        }
        pv = 0.0;
        for (i = 0; i < m; ++i) { /* p = tau A22 v */
            const double *ai = a + (size_t)(k + 1 + i) * n + k + 1;
            double acc = 0.0;
            for (j = 0; j < m; ++j) acc += ai[j] * v[j];
            pw[i] = t * acc;
            pv += pw[i] * v[i];
        }
        kk = -0.5 * t * pv;
        for (i = 0; i < m; ++i) pw[i] += kk * v[i]; /* w */
        for (i = 0; i < m; ++i) {
            double *ai = a + (size_t)(k + 1 + i) * n + k + 1, vi = v[i], wi = pw[i];
            for (j = 0; j < m; ++j) ai[j] -= vi * pw[j] + wi * v[j];
        }
    }
    if (n >= 2) {
        d[n - 2] = a[(size_t)(n - 2) * n + n - 2];
        e[n - 2] = a[(size_t)(n - 2) * n + n - 1];
    }
    d[n - 1] = a[(size_t)(n - 1) * n + n - 1];
    e[n - 1] = 0.0;
}

/* Implicit QL on the tridiagonal (d, e), e[i] coupling i and i+1 (EISPACK
 * tql2 as in JAMA), rotating rows i, i+1 of z (n x n). Returns 0 if an
 * eigenvalue needs more than 60 iterations. */
static int kvtc__tql2(double *d, double *e, double *z, int n) {
    const double eps = 2.220446049250313e-16;
    double f = 0.0, tst1 = 0.0;
    int l, m, i, k;
    for (l = 0; l < n; ++l) {
        int iter = 0;
        tst1 = fmax(tst1, fabs(d[l]) + fabs(e[l]));
        m = l;
        while (m < n - 1 && !(fabs(e[m]) <= eps * tst1)) ++m;
        if (m > l) {
            do {
                double g = d[l], p, r, dl1, h, c = 1.0, c2 = 1.0, c3 = 1.0, el1, s = 0.0, s2 = 0.0;
                if (++iter > 60) return 0;
                p = (d[l + 1] - g) / (2.0 * e[l]);
                r = hypot(p, 1.0);
                if (p < 0) r = -r;
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                dl1 = d[l + 1];
                h = g - d[l];
                for (i = l + 2; i < n; ++i) d[i] -= h;
                f += h;
                p = d[m];
                el1 = e[l + 1];
                for (i = m - 1; i >= l; --i) {
                    double *zi = z + (size_t)i * n, *zi1 = zi + n;
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = hypot(p, e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    for (k = 0; k < n; ++k) {
                        double hk = zi1[k];
                        zi1[k] = s * zi[k] + c * hk;
                        zi[k] = c * zi[k] - s * hk;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
            } while (fabs(e[l]) > eps * tst1);
        }
        d[l] += f;
        e[l] = 0.0;
    }
    return 1;
}

KVTC_DEF kvtc_status kvtc_eig_sym_scratch_bytes(int n, size_t *bytes) {
    if (!bytes) return KVTC_ERR_NULL;
    if (n < 1 || n > KVTC_TC_DENSE_MAX_DIM) return KVTC_ERR_DIM;
    *bytes = ((size_t)n * (size_t)n + 3 * (size_t)n) * sizeof(double);
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_eig_sym(const double *a, int n, double *w, size_t w_count, double *v, size_t v_count,
                                  void *scratch, size_t scratch_bytes) {
    double *wa, *e, *tau, *pw, amax = 0.0;
    size_t need, nn, i;
    int j, k;
    kvtc_status st;
    if (!a || !w || !v || !scratch) return KVTC_ERR_NULL;
    if ((st = kvtc_eig_sym_scratch_bytes(n, &need)) != KVTC_OK) return st;
    nn = (size_t)n * (size_t)n;
    if (w_count < (size_t)n || v_count < nn || scratch_bytes < need) return KVTC_ERR_SMALL;
    if ((uintptr_t)scratch % sizeof(double) != 0) return KVTC_ERR_ARG;
    for (i = 0; i < nn; ++i) {
        if (!isfinite(a[i])) return KVTC_ERR_INPUT_NONFINITE;
        amax = fmax(amax, fabs(a[i]));
    }
    wa = (double *)scratch;
    e = wa + nn;
    tau = e + n;
    pw = tau + n;
    memset(v, 0, nn * sizeof(double));
    for (j = 0; j < n; ++j) v[(size_t)j * n + j] = 1.0;
    if (amax == 0.0) {
        for (j = 0; j < n; ++j) w[j] = 0.0;
        return KVTC_OK;
    }
    for (i = 0; i < nn; ++i) wa[i] = a[i] / amax;
    kvtc__tridiag(wa, n, w, e, tau, pw);
    if (!kvtc__tql2(w, e, v, n)) return KVTC_ERR_NO_CONVERGENCE;
    for (k = n - 3; k >= 0; --k) { /* rows of v <- H_k rows */
        const double *hv = wa + (size_t)k * n + k + 1;
        int m = n - k - 1, r;
        if (tau[k] == 0.0) continue;
        for (r = 0; r < n; ++r) {
            double *z = v + (size_t)r * n + k + 1, s = 0.0;
            for (j = 0; j < m; ++j) s += hv[j] * z[j];
            s *= tau[k];
            for (j = 0; j < m; ++j) z[j] -= s * hv[j];
        }
    }
    for (k = 0; k < n; ++k) { /* selection sort, descending; then the sign rule */
        int best = k, big = 0;
        double *vk = v + (size_t)k * n;
        for (j = k + 1; j < n; ++j)
            if (w[j] > w[best]) best = j;
        if (best != k) {
            double t = w[k], *vb = v + (size_t)best * n;
            w[k] = w[best];
            w[best] = t;
            for (j = 0; j < n; ++j) {
                t = vk[j];
                vk[j] = vb[j];
                vb[j] = t;
            }
        }
        for (j = 1; j < n; ++j)
            if (fabs(vk[j]) > fabs(vk[big])) big = j;
        if (vk[big] < 0.0)
            for (j = 0; j < n; ++j) vk[j] = -vk[j];
        w[k] *= amax;
    }
    return KVTC_OK;
}

/* >>calib */
KVTC_DEF uint64_t kvtc_fnv1a64(const void *data, size_t bytes, uint64_t h) {
    const uint8_t *p = (const uint8_t *)data;
    size_t i;
    for (i = 0; i < bytes; ++i) h = (h ^ p[i]) * KVTC_FNV1A64_PRIME;
    return h;
}

KVTC_DEF uint64_t kvtc_tc_record_checksum(const void *rec, size_t bytes) {
    const uint8_t *b = (const uint8_t *)rec;
    uint8_t first[KVTC_TC_CHECKSUM_PIECE];
    uint64_t h = KVTC_FNV1A64_INIT;
    size_t at, i;
    if (!rec) bytes = 0;
    for (at = 0; at < bytes; at += KVTC_TC_CHECKSUM_PIECE) {
        const size_t n = bytes - at < KVTC_TC_CHECKSUM_PIECE ? bytes - at : KVTC_TC_CHECKSUM_PIECE;
        const uint8_t *piece = b + at;
        if (at == 0) { /* the piece that holds the checksum field */
            memcpy(first, b, n);
            for (i = 48; i < 56 && i < n; ++i) first[i] = 0;
            piece = first;
        }
        h = h * KVTC_FNV1A64_PRIME + kvtc_fnv1a64(piece, n, KVTC_FNV1A64_INIT);
    }
    return h;
}

KVTC_DEF kvtc_status kvtc_tc_calib_params_resolved(const kvtc_tc_calib_params *p, kvtc_tc_calib_params *out) {
    kvtc_tc_calib_params r;
    if (!p || !out) return KVTC_ERR_NULL;
    r = *p;
    if (r.dim < 1 || r.dim > KVTC_TC_MAX_DIM) return KVTC_ERR_DIM;
    if (r.method == KVTC_TC_EIG_DEFAULT) r.method = r.dim <= 1024 ? KVTC_TC_EIG_DENSE : KVTC_TC_EIG_RANDOMIZED;
    if ((int)r.method < 0 || r.method >= KVTC_TC_EIG_COUNT) return KVTC_ERR_ARG;
    if (r.method == KVTC_TC_EIG_DENSE) {
        if (r.dim > KVTC_TC_DENSE_MAX_DIM) return KVTC_ERR_DIM;
        if (r.rank == 0) r.rank = r.dim;
        r.oversample = 0;
        r.power_iters = 0;
    } else {
        if (r.rank == 0) r.rank = r.dim < 256 ? r.dim : 256;
        if (r.oversample == 0) r.oversample = 16;
        if (r.oversample < 1 || r.oversample > 1024) return KVTC_ERR_ARG;
        if (r.power_iters == 0) r.power_iters = 2;
        if (r.power_iters < -1 || r.power_iters > 16) return KVTC_ERR_ARG;
        if (r.rank >= 1 && r.rank <= r.dim && r.rank + r.oversample > KVTC_TC_DENSE_MAX_DIM &&
            r.dim > KVTC_TC_DENSE_MAX_DIM)
            return KVTC_ERR_ARG; /* k = min(rank + oversample, dim) must fit kvtc_eig_sym */
    }
    if (r.rank < 1 || r.rank > r.dim) return KVTC_ERR_ARG;
    *out = r;
    return KVTC_OK;
}

/* Payload bytes of a calibration blob, or 0 on overflow. */
static size_t kvtc__calib_payload(size_t dim, size_t rank) {
    size_t a, b;
    if (!kvtc__mul_size(rank, dim, &a) || !kvtc__add_size(a, rank, &a) || !kvtc__add_size(a, rank, &a) ||
        !kvtc__add_size(a, dim, &a) || !kvtc__mul_size(a, 4, &b))
        return 0;
    return b; /* 8 rank + 4 dim + 4 rank dim */
}

/* One allocation: struct, eigenvalues, mean, basis. */
static kvtc_tc_calib *kvtc__calib_alloc(int dim, int rank, void *alloc_user) {
    size_t payload = kvtc__calib_payload((size_t)dim, (size_t)rank), total;
    kvtc_tc_calib *c;
    if (payload == 0 || !kvtc__add_size(payload, sizeof(kvtc_tc_calib), &total)) return NULL;
    c = (kvtc_tc_calib *)KVTC_MALLOC(total, alloc_user);
    if (!c) return NULL;
    memset(c, 0, sizeof(*c));
    c->dim = dim;
    c->rank = rank;
    c->alloc_user = alloc_user;
    c->eigenvalues = (double *)(c + 1);
    c->mean = (float *)(c->eigenvalues + rank);
    c->basis = c->mean + dim;
    return c;
}

KVTC_DEF void kvtc_tc_calib_destroy(kvtc_tc_calib *c) {
    if (c) KVTC_FREE(c, c->alloc_user);
}

/* The 64 header bytes of c's blob (checksum field zero). */
static void kvtc__calib_header(const kvtc_tc_calib *c, uint8_t *h) {
    memset(h, 0, KVTC_TC_CALIB_HEADER_BYTES);
    h[0] = 'K';
    h[1] = 'T';
    h[2] = 'C';
    h[3] = 'C';
    kvtc__put_u16(h + 4, KVTC_TC_FORMAT_VERSION);
    h[6] = 1; /* fp32 */
    kvtc__tc_put_u32(h + 8, (uint32_t)c->dim);
    kvtc__tc_put_u32(h + 12, (uint32_t)c->rank);
    kvtc__tc_put_u64(h + 16, c->n_samples);
    kvtc__tc_put_f64(h + 24, c->total_variance);
    kvtc__tc_put_u64(h + 32, (uint64_t)kvtc__calib_payload((size_t)c->dim, (size_t)c->rank));
}

/* Serialize c's payload to out (if not NULL) and return the FNV-1a 64 of
 * the whole blob with its checksum field zero. */
static uint64_t kvtc__calib_emit(const kvtc_tc_calib *c, uint8_t *out) {
    uint8_t h[KVTC_TC_CALIB_HEADER_BYTES], buf[256];
    uint64_t hash;
    size_t i, fill = 0, nb = (size_t)c->rank * (size_t)c->dim;
    kvtc__calib_header(c, h);
    hash = kvtc_fnv1a64(h, sizeof h, KVTC_FNV1A64_INIT);
    if (out) out += KVTC_TC_CALIB_HEADER_BYTES;
#define KVTC__EMIT_FLUSH()                                                                                             \
    do {                                                                                                               \
        hash = kvtc_fnv1a64(buf, fill, hash);                                                                          \
        if (out) {                                                                                                     \
            memcpy(out, buf, fill);                                                                                    \
            out += fill;                                                                                               \
        }                                                                                                              \
        fill = 0;                                                                                                      \
    } while (0)
    for (i = 0; i < (size_t)c->rank; ++i) {
        if (fill + 8 > sizeof buf) KVTC__EMIT_FLUSH();
        kvtc__tc_put_f64(buf + fill, c->eigenvalues[i]);
        fill += 8;
    }
    for (i = 0; i < (size_t)c->dim + nb; ++i) {
        if (fill + 4 > sizeof buf) KVTC__EMIT_FLUSH();
        kvtc__put_f32(buf + fill, i < (size_t)c->dim ? c->mean[i] : c->basis[i - (size_t)c->dim]);
        fill += 4;
    }
    KVTC__EMIT_FLUSH();
#undef KVTC__EMIT_FLUSH
    return hash;
}

KVTC_DEF kvtc_status kvtc_tc_calib_saved_bytes(const kvtc_tc_calib *c, size_t *bytes) {
    size_t payload;
    if (!c || !bytes) return KVTC_ERR_NULL;
    if (c->dim < 1 || c->dim > KVTC_TC_MAX_DIM || c->rank < 1 || c->rank > c->dim) return KVTC_ERR_DIM;
    payload = kvtc__calib_payload((size_t)c->dim, (size_t)c->rank);
    if (payload == 0 || !kvtc__add_size(payload, KVTC_TC_CALIB_HEADER_BYTES, bytes)) return KVTC_ERR_OVERFLOW;
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_tc_calib_save(const kvtc_tc_calib *c, void *out, size_t out_bytes) {
    size_t need;
    uint64_t hash;
    kvtc_status st;
    if (!out) return KVTC_ERR_NULL;
    if ((st = kvtc_tc_calib_saved_bytes(c, &need)) != KVTC_OK) return st;
    if (out_bytes < need) return KVTC_ERR_SMALL;
    kvtc__calib_header(c, (uint8_t *)out);
    hash = kvtc__calib_emit(c, (uint8_t *)out);
    kvtc__tc_put_u64((uint8_t *)out + 40, hash);
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_tc_calib_load(const void *in, size_t in_bytes, void *alloc_user, kvtc_tc_calib **out) {
    const uint8_t *b = (const uint8_t *)in, *pl;
    static const uint8_t zero8[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    uint64_t dim, rank, payload, hash, n_samples;
    double tv, prev = HUGE_VAL;
    size_t want, i, nb;
    kvtc_tc_calib *c;
    if (!out) return KVTC_ERR_NULL;
    *out = NULL;
    if (!in) return KVTC_ERR_NULL;
    if (in_bytes < KVTC_TC_CALIB_HEADER_BYTES) return KVTC_ERR_CORRUPT;
    if (b[0] != 'K' || b[1] != 'T' || b[2] != 'C' || b[3] != 'C') return KVTC_ERR_CORRUPT;
    if (kvtc__get_u16(b + 4) != KVTC_TC_FORMAT_VERSION) return KVTC_ERR_VERSION;
    if (b[6] != 1) return KVTC_ERR_UNSUPPORTED;
    if (b[7] != 0 || kvtc__tc_get_u64(b + 48) != 0 || kvtc__tc_get_u64(b + 56) != 0) return KVTC_ERR_CORRUPT;
    dim = kvtc__tc_get_u32(b + 8);
    rank = kvtc__tc_get_u32(b + 12);
    n_samples = kvtc__tc_get_u64(b + 16);
    tv = kvtc__tc_get_f64(b + 24);
    payload = kvtc__tc_get_u64(b + 32);
    if (dim < 1 || dim > KVTC_TC_MAX_DIM || rank < 1 || rank > dim) return KVTC_ERR_CORRUPT;
    want = kvtc__calib_payload((size_t)dim, (size_t)rank);
    if (want == 0 || payload != (uint64_t)want) return KVTC_ERR_CORRUPT;
    if (in_bytes - KVTC_TC_CALIB_HEADER_BYTES < want) return KVTC_ERR_CORRUPT;
    hash = kvtc_fnv1a64(b, 40, KVTC_FNV1A64_INIT);
    hash = kvtc_fnv1a64(zero8, 8, hash);
    hash = kvtc_fnv1a64(b + 48, KVTC_TC_CALIB_HEADER_BYTES - 48 + want, hash);
    if (hash != kvtc__tc_get_u64(b + 40)) return KVTC_ERR_CORRUPT;
    if (!isfinite(tv) || tv < 0.0) return KVTC_ERR_CORRUPT;
    pl = b + KVTC_TC_CALIB_HEADER_BYTES;
    for (i = 0; i < (size_t)rank; ++i) {
        double ev = kvtc__tc_get_f64(pl + 8 * i);
        if (!isfinite(ev) || ev < 0.0 || ev > prev) return KVTC_ERR_CORRUPT;
        prev = ev;
    }
    nb = (size_t)dim + (size_t)rank * (size_t)dim;
    for (i = 0; i < nb; ++i)
        if (!isfinite(kvtc__get_f32(pl + 8 * (size_t)rank + 4 * i))) return KVTC_ERR_CORRUPT;
    c = kvtc__calib_alloc((int)dim, (int)rank, alloc_user);
    if (!c) return KVTC_ERR_NOMEM;
    c->n_samples = n_samples;
    c->total_variance = tv;
    c->id = hash;
    for (i = 0; i < (size_t)rank; ++i) c->eigenvalues[i] = kvtc__tc_get_f64(pl + 8 * i);
    for (i = 0; i < (size_t)dim; ++i) c->mean[i] = kvtc__get_f32(pl + 8 * (size_t)rank + 4 * i);
    for (i = 0; i < (size_t)rank * (size_t)dim; ++i)
        c->basis[i] = kvtc__get_f32(pl + 8 * (size_t)rank + 4 * ((size_t)dim + i));
    *out = c;
    return KVTC_OK;
}

/* C (m x N) += A (m x K) B (K x N) in double, all row-major, blocked 4 x 4
 * x 256 like kvtc__gemm (for calibration: covariance and range finder).
 * upper: skip the 4 x 4 tiles wholly below the diagonal (C symmetric). */
static void kvtc__gemm_d(size_t m, size_t N, size_t K, const double *KVTC__RESTRICT A, size_t lda,
                         const double *KVTC__RESTRICT B, size_t ldb, double *KVTC__RESTRICT C, size_t ldc, int upper) {
    size_t k0, n0, t, k, q;
    for (k0 = 0; k0 < K; k0 += 256) {
        size_t k1 = K - k0 < 256 ? K : k0 + 256;
        for (n0 = 0; n0 < N; n0 += 4) {
            size_t w = N - n0 < 4 ? N - n0 : 4;
            for (t = 0; t < m; t += 4) {
                size_t rows = m - t < 4 ? m - t : 4;
                const double *a0 = A + t * lda, *a1 = a0 + (rows > 1 ? lda : 0), *a2 = a0 + (rows > 2 ? 2 * lda : 0),
                             *a3 = a0 + (rows > 3 ? 3 * lda : 0);
                double *c0p = C + t * ldc + n0, *c1p = c0p + (rows > 1 ? ldc : 0),
                       *c2p = c0p + (rows > 2 ? 2 * ldc : 0), *c3p = c0p + (rows > 3 ? 3 * ldc : 0);
                double c0[4] = {0, 0, 0, 0}, c1[4] = {0, 0, 0, 0}, c2[4] = {0, 0, 0, 0}, c3[4] = {0, 0, 0, 0};
                if (upper && n0 + w <= t) continue;
                if (w == 4) {
                    for (k = k0; k < k1; ++k) {
                        const double *b = B + k * ldb + n0;
                        double x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
                        for (q = 0; q < 4; ++q) {
                            c0[q] += x0 * b[q];
                            c1[q] += x1 * b[q];
                            c2[q] += x2 * b[q];
                            c3[q] += x3 * b[q];
                        }
                    }
                } else {
                    for (k = k0; k < k1; ++k) {
                        const double *b = B + k * ldb + n0;
                        double x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
                        for (q = 0; q < w; ++q) {
                            c0[q] += x0 * b[q];
                            c1[q] += x1 * b[q];
                            c2[q] += x2 * b[q];
                            c3[q] += x3 * b[q];
                        }
                    }
                }
                for (q = 0; q < w; ++q) { /* rows beyond m alias row t; each is written once */
                    if (rows > 3) c3p[q] += c3[q];
                    if (rows > 2) c2p[q] += c2[q];
                    if (rows > 1) c1p[q] += c1[q];
                    c0p[q] += c0[q];
                }
            }
        }
    }
}

/* Centre rows t0 .. t0+nt-1 of x into xb (nt x dim) and, if xbt, its transpose (dim x nt). */
static void kvtc__centre_block(const float *x, size_t t0, size_t nt, size_t d, const double *mean, double *xb,
                               double *xbt) {
    size_t t, i;
    for (t = 0; t < nt; ++t)
        for (i = 0; i < d; ++i) {
            double v = (double)x[(t0 + t) * d + i] - mean[i];
            xb[t * d + i] = v;
            if (xbt) xbt[i * nt + t] = v;
        }
}

#define KVTC__CAL_BLOCK 64 /* tokens per block of the calibration passes */

/* Y = C Q^T as rows: Y_j = C q_j = sum_t (xc_t . q_j) xc_t / (n - 1) for the
 * k rows q_j of q; qt is q transposed (dim x k). Work: xb (64 x dim),
 * b (64 x k), bt (k x 64) doubles. */
static void kvtc__cov_apply(const float *x, size_t n, int dim, const double *mean, const double *qt, int k, double *y,
                            double *xb, double *b, double *bt) {
    size_t t0, t, j, d = (size_t)dim, kk = (size_t)k;
    double inv = 1.0 / (double)(n - 1);
    memset(y, 0, kk * d * sizeof(double));
    for (t0 = 0; t0 < n; t0 += KVTC__CAL_BLOCK) {
        size_t nt = n - t0 < KVTC__CAL_BLOCK ? n - t0 : KVTC__CAL_BLOCK;
        kvtc__centre_block(x, t0, nt, d, mean, xb, NULL);
        memset(b, 0, nt * kk * sizeof(double));
        kvtc__gemm_d(nt, kk, d, xb, d, qt, kk, b, kk, 0); /* b = xb Q^T */
        for (t = 0; t < nt; ++t)
            for (j = 0; j < kk; ++j) bt[j * nt + t] = b[t * kk + j];
        kvtc__gemm_d(kk, d, nt, bt, nt, xb, d, y, d, 0); /* y += b^T xb */
    }
    for (t = 0; t < kk * d; ++t) y[t] *= inv;
}

/* Orthonormalise the k rows of y (k <= dim) in place: Gram-Schmidt, repeated
 * while a pass removes more than half the norm (Kahan-Parlett "twice is
 * enough"); a row that vanishes is redrawn from rng. */
static void kvtc__orth_rows(double *y, int k, int dim, kvtc_rng *rng) {
    int j, i, attempt, pass;
    size_t d = (size_t)dim;
    for (j = 0; j < k; ++j) {
        double *yj = y + (size_t)j * d, nrm = 0.0;
        for (attempt = 0; attempt < 32; ++attempt) {
            double start = 0.0, prev;
            for (i = 0; i < dim; ++i) start += yj[i] * yj[i];
            start = sqrt(start);
            prev = start;
            nrm = start;
            if (start > 0.0 && isfinite(start))
                for (pass = 0; pass < 4; ++pass) {
                    int jj;
                    for (jj = 0; jj < j; ++jj) {
                        const double *yi = y + (size_t)jj * d;
                        double s = 0.0;
                        for (i = 0; i < dim; ++i) s += yi[i] * yj[i];
                        for (i = 0; i < dim; ++i) yj[i] -= s * yi[i];
                    }
                    nrm = 0.0;
                    for (i = 0; i < dim; ++i) nrm += yj[i] * yj[i];
                    nrm = sqrt(nrm);
                    if (nrm >= 0.5 * prev || nrm <= 1e-13 * start) break;
                    prev = nrm;
                }
            if (nrm > 1e-13 * start && nrm > 0.0 && isfinite(nrm)) break;
            for (i = 0; i < dim; ++i) yj[i] = kvtc_rng_gaussian(rng); /* lost: redraw */
        }
        KVTC_ASSERT(nrm > 0.0);
        for (i = 0; i < dim; ++i) yj[i] /= nrm;
    }
}

/* Eigenpairs of a k x k symmetric matrix into w (k) and rows of u (k x k),
 * with scratch allocated here. */
static kvtc_status kvtc__eig_alloc(const double *a, int k, double *w, double *u, void *alloc_user) {
    size_t bytes;
    void *s;
    kvtc_status st = kvtc_eig_sym_scratch_bytes(k, &bytes);
    if (st != KVTC_OK) return st;
    s = KVTC_MALLOC(bytes, alloc_user);
    if (!s) return KVTC_ERR_NOMEM;
    st = kvtc_eig_sym(a, k, w, (size_t)k, u, (size_t)k * (size_t)k, s, bytes);
    KVTC_FREE(s, alloc_user);
    return st;
}

/* DENSE: C (dim x dim) in double, upper triangle accumulated over blocks of
 * 16 centred tokens, mirrored; then all eigenpairs. */
static kvtc_status kvtc__calib_dense(const kvtc_tc_calib_params *r, const float *x, size_t n, const double *mean,
                                     kvtc_tc_calib *c) {
    size_t d = (size_t)r->dim, t0, i, j, dd = d * d, tb = KVTC__CAL_BLOCK;
    double *cov, *vec, *w, *xb, *xbt, inv = 1.0 / (double)(n - 1), tr = 0.0;
    kvtc_status st;
    int k;
    cov = (double *)KVTC_MALLOC((2 * dd + d + 2 * tb * d) * sizeof(double), r->alloc_user);
    if (!cov) return KVTC_ERR_NOMEM;
    vec = cov + dd;
    w = vec + dd;
    xb = w + d;
    xbt = xb + tb * d;
    memset(cov, 0, dd * sizeof(double));
    for (t0 = 0; t0 < n; t0 += tb) { /* C += xb^T xb, block by block */
        size_t nt = n - t0 < tb ? n - t0 : tb;
        kvtc__centre_block(x, t0, nt, d, mean, xb, xbt);
        kvtc__gemm_d(d, d, nt, xbt, nt, xb, d, cov, d, 1);
    }
    for (i = 0; i < d; ++i) /* the upper triangle was accumulated */
        for (j = i; j < d; ++j) cov[j * d + i] = cov[i * d + j] = cov[i * d + j] * inv;
    for (i = 0; i < d; ++i) tr += cov[i * d + i];
    st = kvtc__eig_alloc(cov, r->dim, w, vec, r->alloc_user);
    if (st == KVTC_OK) {
        c->total_variance = tr;
        for (k = 0; k < r->rank; ++k) {
            c->eigenvalues[k] = w[k] > 0.0 ? w[k] : 0.0;
            for (i = 0; i < d; ++i) c->basis[(size_t)k * d + i] = (float)vec[(size_t)k * d + i];
        }
    }
    KVTC_FREE(cov, r->alloc_user);
    return st;
}

/* RANDOMIZED: see >>calib in the declarations. */
static kvtc_status kvtc__calib_randomized(const kvtc_tc_calib_params *r, const float *x, size_t n,
                                          const double *mean, kvtc_tc_calib *c) {
    size_t d = (size_t)r->dim, t0, t, i, kk, tb = KVTC__CAL_BLOCK;
    int k = r->rank + r->oversample, it, j, l;
    double *q, *y, *qt, *xb, *b, *bt, *s, *u, *w, tr = 0.0, inv = 1.0 / (double)(n - 1);
    kvtc_rng rng;
    kvtc_status st;
    if (k > r->dim) k = r->dim;
    kk = (size_t)k;
    q = (double *)KVTC_MALLOC((3 * kk * d + tb * d + 2 * tb * kk + 2 * kk * kk + kk) * sizeof(double), r->alloc_user);
    if (!q) return KVTC_ERR_NOMEM;
    y = q + kk * d;
    qt = y + kk * d;
    xb = qt + kk * d;
    b = xb + tb * d;
    bt = b + tb * kk;
    s = bt + tb * kk;
    u = s + kk * kk;
    w = u + kk * kk;
    kvtc_rng_seed(&rng, r->seed);
    for (i = 0; i < kk * d; ++i) y[i] = kvtc_rng_gaussian(&rng); /* Omega^T, row-major k x dim */
    kvtc__orth_rows(y, k, r->dim, &rng);
    for (it = 0; it <= (r->power_iters < 0 ? 0 : r->power_iters); ++it) {
        for (j = 0; j < k; ++j)
            for (i = 0; i < d; ++i) qt[i * kk + (size_t)j] = y[(size_t)j * d + i];
        kvtc__cov_apply(x, n, r->dim, mean, qt, k, y, xb, b, bt);
        kvtc__orth_rows(y, k, r->dim, &rng);
    }
    /* S = Q C Q^T with Q = rows of y; the trace of C on the same pass */
    for (j = 0; j < k; ++j)
        for (i = 0; i < d; ++i) qt[i * kk + (size_t)j] = y[(size_t)j * d + i];
    memset(s, 0, kk * kk * sizeof(double));
    for (t0 = 0; t0 < n; t0 += tb) {
        size_t nt = n - t0 < tb ? n - t0 : tb;
        kvtc__centre_block(x, t0, nt, d, mean, xb, NULL);
        for (i = 0; i < nt * d; ++i) tr += xb[i] * xb[i];
        memset(b, 0, nt * kk * sizeof(double));
        kvtc__gemm_d(nt, kk, d, xb, d, qt, kk, b, kk, 0);
        for (t = 0; t < nt; ++t)
            for (i = 0; i < kk; ++i) bt[i * nt + t] = b[t * kk + i];
        kvtc__gemm_d(kk, kk, nt, bt, nt, b, kk, s, kk, 1);
    }
    for (i = 0; i < kk; ++i)
        for (l = (int)i; l < k; ++l) s[(size_t)l * kk + i] = s[i * kk + (size_t)l] = s[i * kk + (size_t)l] * inv;
    st = kvtc__eig_alloc(s, k, w, u, r->alloc_user);
    if (st == KVTC_OK) { /* basis row j = sum_l u_jl q_l */
        c->total_variance = tr * inv;
        memset(qt, 0, (size_t)r->rank * d * sizeof(double));
        kvtc__gemm_d((size_t)r->rank, d, kk, u, kk, y, d, qt, d, 0);
        for (j = 0; j < r->rank; ++j) {
            c->eigenvalues[j] = w[j] > 0.0 ? w[j] : 0.0;
            for (i = 0; i < d; ++i) c->basis[(size_t)j * d + i] = (float)qt[(size_t)j * d + i];
        }
    }
    KVTC_FREE(q, r->alloc_user);
    return st;
}

KVTC_DEF kvtc_status kvtc_tc_calibrate(const kvtc_tc_calib_params *p, const float *x, size_t n_vectors,
                                       kvtc_tc_calib **out) {
    kvtc_tc_calib_params r;
    kvtc_tc_calib *c;
    double *mean;
    size_t total, t, i, d;
    kvtc_status st;
    if (!out) return KVTC_ERR_NULL;
    *out = NULL;
    if ((st = kvtc_tc_calib_params_resolved(p, &r)) != KVTC_OK) return st;
    if (!x) return KVTC_ERR_NULL;
    if (n_vectors < 2) return KVTC_ERR_ARG;
    d = (size_t)r.dim;
    if (!kvtc__mul_size(n_vectors, d, &total)) return KVTC_ERR_OVERFLOW;
    for (i = 0; i < total; ++i)
        if (!isfinite(x[i])) return KVTC_ERR_INPUT_NONFINITE;
    c = kvtc__calib_alloc(r.dim, r.rank, r.alloc_user);
    mean = (double *)KVTC_MALLOC(d * sizeof(double), r.alloc_user);
    if (!c || !mean) {
        if (c) KVTC_FREE(c, r.alloc_user);
        if (mean) KVTC_FREE(mean, r.alloc_user);
        return KVTC_ERR_NOMEM;
    }
    for (i = 0; i < d; ++i) mean[i] = 0.0;
    for (t = 0; t < n_vectors; ++t)
        for (i = 0; i < d; ++i) mean[i] += x[t * d + i];
    for (i = 0; i < d; ++i) {
        mean[i] /= (double)n_vectors;
        c->mean[i] = (float)mean[i];
    }
    c->n_samples = (uint64_t)n_vectors;
    st = r.method == KVTC_TC_EIG_DENSE ? kvtc__calib_dense(&r, x, n_vectors, mean, c)
                                       : kvtc__calib_randomized(&r, x, n_vectors, mean, c);
    KVTC_FREE(mean, r.alloc_user);
    if (st != KVTC_OK) {
        KVTC_FREE(c, r.alloc_user);
        return st;
    }
    c->id = kvtc__calib_emit(c, NULL);
    *out = c;
    return KVTC_OK;
}

/* Shared checks of project/reconstruct: n rows of `in_per` in, `out_per` out. */
static kvtc_status kvtc__calib_io(const kvtc_tc_calib *c, const void *in, size_t n, const void *out, size_t out_count,
                                  size_t out_per) {
    size_t need;
    if (!c) return KVTC_ERR_NULL;
    if (n && (!in || !out)) return KVTC_ERR_NULL;
    if (!kvtc__mul_size(n, out_per, &need)) return KVTC_ERR_OVERFLOW;
    if (out_count < need) return KVTC_ERR_SMALL;
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_tc_calib_project(const kvtc_tc_calib *c, const float *x, size_t n, float *z,
                                           size_t z_count) {
    size_t t, d;
    int i;
    kvtc_status st = kvtc__calib_io(c, x, n, z, z_count, c ? (size_t)c->rank : 0);
    if (st != KVTC_OK) return st;
    d = (size_t)c->dim;
    for (t = 0; t < n; ++t)
        for (i = 0; i < c->rank; ++i) {
            const float *v = c->basis + (size_t)i * d, *xt = x + t * d;
            double acc = 0.0;
            size_t j;
            for (j = 0; j < d; ++j) acc += ((double)xt[j] - c->mean[j]) * v[j];
            z[t * (size_t)c->rank + (size_t)i] = (float)acc;
        }
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_tc_calib_reconstruct(const kvtc_tc_calib *c, const float *z, size_t n, float *x,
                                               size_t x_count) {
    size_t t, d, j;
    int i;
    kvtc_status st = kvtc__calib_io(c, z, n, x, x_count, c ? (size_t)c->dim : 0);
    if (st != KVTC_OK) return st;
    d = (size_t)c->dim;
    for (t = 0; t < n; ++t) {
        float *xt = x + t * d;
        memcpy(xt, c->mean, d * sizeof(float));
        for (i = 0; i < c->rank; ++i) {
            const float *v = c->basis + (size_t)i * d;
            float zi = z[t * (size_t)c->rank + (size_t)i];
            for (j = 0; j < d; ++j) xt[j] += zi * v[j];
        }
    }
    return KVTC_OK;
}

/* >>alloc */
KVTC_DEF kvtc_status kvtc_bit_alloc_scratch_bytes(int n, size_t *bytes) {
    if (!bytes) return KVTC_ERR_NULL;
    if (n < 1 || n > KVTC_TC_MAX_DIM) return KVTC_ERR_DIM;
    *bytes = (size_t)n * (sizeof(double) + sizeof(int));
    return KVTC_OK;
}

/* Heap order: larger gain first, then lower index. */
static int kvtc__alloc_before(const double *gain, int a, int b) {
    return gain[a] > gain[b] || (gain[a] == gain[b] && a < b);
}

static void kvtc__alloc_sift(int *heap, int size, int pos, const double *gain) {
    int item = heap[pos];
    for (;;) {
        int child = 2 * pos + 1;
        if (child >= size) break;
        if (child + 1 < size && kvtc__alloc_before(gain, heap[child + 1], heap[child])) ++child;
        if (!kvtc__alloc_before(gain, heap[child], item)) break;
        heap[pos] = heap[child];
        pos = child;
    }
    heap[pos] = item;
}

KVTC_DEF kvtc_status kvtc_bit_alloc(const double *lambda, int n, int64_t budget, int max_bits, uint8_t *bits,
                                    size_t bits_count, void *scratch, size_t scratch_bytes, double *objective) {
    double *gain, obj = 0.0;
    int *heap, size = 0, i;
    int64_t left;
    size_t need;
    kvtc_status st;
    if (!lambda || !bits || !scratch) return KVTC_ERR_NULL;
    if ((st = kvtc_bit_alloc_scratch_bytes(n, &need)) != KVTC_OK) return st;
    if (budget < 0) return KVTC_ERR_ARG;
    if (max_bits < 1 || max_bits > KVTC_TC_MAX_BITS) return KVTC_ERR_BITS;
    if (bits_count < (size_t)n || scratch_bytes < need) return KVTC_ERR_SMALL;
    if ((uintptr_t)scratch % sizeof(double) != 0) return KVTC_ERR_ARG;
    for (i = 0; i < n; ++i)
        if (!(lambda[i] >= 0.0) || !isfinite(lambda[i])) return KVTC_ERR_ARG;
    gain = (double *)scratch;
    heap = (int *)(gain + n);
    for (i = 0; i < n; ++i) {
        bits[i] = 0;
        gain[i] = 0.75 * lambda[i];
        if (gain[i] > 0.0) heap[size++] = i;
    }
    for (i = size / 2 - 1; i >= 0; --i) kvtc__alloc_sift(heap, size, i, gain);
    left = budget;
    while (left > 0 && size > 0) {
        int top = heap[0];
        ++bits[top];
        --left;
        gain[top] *= 0.25;
        if (bits[top] >= max_bits || !(gain[top] > 0.0)) heap[0] = heap[--size];
        if (size > 0) kvtc__alloc_sift(heap, size, 0, gain);
    }
    for (i = 0; i < n; ++i) obj += ldexp(lambda[i], -2 * (int)bits[i]);
    if (objective) *objective = obj;
    return KVTC_OK;
}

/* >>varpack */
static void kvtc__pack_var_u16(const uint16_t *KVTC__RESTRICT idx, size_t n_rows, const uint8_t *KVTC__RESTRICT w,
                               size_t n_cols, uint8_t *KVTC__RESTRICT dst) {
    uint64_t acc = 0;
    int have = 0;
    size_t t, j;
    for (t = 0; t < n_rows; ++t) {
        const uint16_t *row = idx + t * n_cols;
        for (j = 0; j < n_cols; ++j) {
            acc |= (uint64_t)row[j] << have;
            have += w[j];
            if (have >= 32) {
                kvtc__tc_put_u32(dst, (uint32_t)acc);
                dst += 4;
                acc >>= 32;
                have -= 32;
            }
        }
    }
    while (have > 0) {
        *dst++ = (uint8_t)acc;
        acc >>= 8;
        have -= 8;
    }
}

/* Reads exactly ceil(n_rows * sum(w) / 8) bytes of src. */
static void kvtc__unpack_var_u16(const uint8_t *KVTC__RESTRICT src, size_t n_rows, const uint8_t *KVTC__RESTRICT w,
                                 size_t n_cols, size_t src_bytes, uint16_t *KVTC__RESTRICT idx) {
    uint64_t acc = 0;
    int have = 0;
    size_t t, j, pos = 0;
    for (t = 0; t < n_rows; ++t) {
        uint16_t *row = idx + t * n_cols;
        for (j = 0; j < n_cols; ++j) {
            int b = w[j];
            if (have < b) {
                if (have < 32 && src_bytes - pos >= 4) {
                    acc |= (uint64_t)kvtc__tc_get_u32(src + pos) << have;
                    pos += 4;
                    have += 32;
                } else {
                    while (have < b) {
                        acc |= (uint64_t)src[pos++] << have;
                        have += 8;
                    }
                }
            }
            row[j] = (uint16_t)(acc & ((1u << b) - 1u));
            acc >>= b;
            have -= b;
        }
    }
}

/* Sum of widths (each 0..16) into *row_bits. */
static kvtc_status kvtc__row_bits(const uint8_t *widths, size_t n_cols, size_t *row_bits) {
    size_t j, s = 0;
    for (j = 0; j < n_cols; ++j) {
        if (widths[j] > 16) return KVTC_ERR_BITS;
        s += widths[j]; /* <= 16 n_cols: n_cols rows of idx exist, so no overflow */
    }
    *row_bits = s;
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_pack_var_bytes(size_t n_rows, const uint8_t *widths, size_t n_cols, size_t *bytes) {
    size_t rb, nbits;
    kvtc_status st;
    if (!bytes || (n_cols && !widths)) return KVTC_ERR_NULL;
    if (n_cols > (size_t)-1 / 16) return KVTC_ERR_OVERFLOW;
    if ((st = kvtc__row_bits(widths, n_cols, &rb)) != KVTC_OK) return st;
    if (!kvtc__mul_size(n_rows, rb, &nbits)) return KVTC_ERR_OVERFLOW;
    *bytes = nbits / 8 + (nbits % 8 != 0);
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_pack_var(const uint16_t *idx, size_t n_rows, const uint8_t *widths, size_t n_cols,
                                   void *out, size_t out_bytes) {
    size_t need, count, i;
    kvtc_status st;
    if ((st = kvtc_pack_var_bytes(n_rows, widths, n_cols, &need)) != KVTC_OK) return st;
    if (!kvtc__mul_size(n_rows, n_cols, &count)) return KVTC_ERR_OVERFLOW;
    if (count == 0) return KVTC_OK;
    if (!idx || (need && !out)) return KVTC_ERR_NULL;
    if (out_bytes < need) return KVTC_ERR_SMALL;
    for (i = 0; i < count; ++i)
        if ((uint32_t)idx[i] >> widths[i % n_cols]) return KVTC_ERR_ARG;
    kvtc__pack_var_u16(idx, n_rows, widths, n_cols, (uint8_t *)out);
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_unpack_var(const void *in, size_t in_bytes, size_t n_rows, const uint8_t *widths,
                                     size_t n_cols, uint16_t *idx, size_t idx_count) {
    size_t need, count;
    kvtc_status st;
    if ((st = kvtc_pack_var_bytes(n_rows, widths, n_cols, &need)) != KVTC_OK) return st;
    if (!kvtc__mul_size(n_rows, n_cols, &count)) return KVTC_ERR_OVERFLOW;
    if (count == 0) return KVTC_OK;
    if (!idx || (need && !in)) return KVTC_ERR_NULL;
    if (in_bytes < need || idx_count < count) return KVTC_ERR_SMALL;
    kvtc__unpack_var_u16((const uint8_t *)in, n_rows, widths, n_cols, need, idx);
    return KVTC_OK;
}

/* >>tc
 * Stages (encode: project, fit, quantize, pack; decode: unpack, dequantize,
 * reconstruct) work on the n_active coded components of a chunk, described
 * by one kvtc__tc_comp each; matrices are token-major (m x n_active). */
#define KVTC__TC_BLOCK 16 /* tokens centred at a time by the projection */
typedef struct kvtc__tc_comp {
    float lo, scale, inv;       /* UNIFORM: z = lo + q scale, inv = 1/scale; GAUSSIAN: scale = sigma, inv = 1/sigma */
    float qmax;                 /* UNIFORM: 2^b - 1 */
    const float *centroids;     /* GAUSSIAN: N(0,1) codebook of b bits; NULL for UNIFORM */
    const float *boundaries;
    int width;
} kvtc__tc_comp;

/* Byte offsets of a chunk record's sections. */
typedef struct kvtc__tc_geom {
    size_t n_sink, n_window, m, n_uniform, widths, params, sink, window, idx, idx_bytes, bytes;
} kvtc__tc_geom;

/* Scratch layout for m coded tokens of na components, dim floats per token. */
typedef struct kvtc__tc_scratch {
    size_t comps, z, xc, active, idx, wact, bytes;
} kvtc__tc_scratch;

static int kvtc__tc_scratch_layout(size_t m, size_t na, size_t dim, kvtc__tc_scratch *s) {
    size_t mn, a, off = 0;
    if (!kvtc__mul_size(m, na, &mn)) return 0;
    s->comps = off;
    if (!kvtc__mul_size(na, sizeof(kvtc__tc_comp), &a) || !kvtc__add_size(off, a, &off) || !kvtc__align16(off, &off))
        return 0;
    s->z = off;
    if (!kvtc__mul_size(mn, sizeof(float), &a) || !kvtc__add_size(off, a, &off) || !kvtc__align16(off, &off)) return 0;
    s->xc = off;
    if (!kvtc__mul_size(dim, KVTC__TC_BLOCK * sizeof(float), &a) || !kvtc__add_size(off, a, &off) || !kvtc__align16(off, &off))
        return 0;
    s->active = off;
    if (!kvtc__mul_size(na, sizeof(int32_t), &a) || !kvtc__add_size(off, a, &off) || !kvtc__align16(off, &off))
        return 0;
    s->idx = off;
    if (!kvtc__mul_size(mn, sizeof(uint16_t), &a) || !kvtc__add_size(off, a, &off) || !kvtc__align16(off, &off))
        return 0;
    s->wact = off;
    if (!kvtc__add_size(off, na, &off) || !kvtc__align16(off, &off)) return 0;
    s->bytes = off;
    return 1;
}

static size_t kvtc__tc_count(int v) { return v < 0 ? 0 : (size_t)v; }

/* Record geometry for n tokens. widths: rank entries (validated <= 16). */
static kvtc_status kvtc__tc_geom_of(size_t dim, size_t rank, int quant, const uint8_t *widths, size_t row_bits,
                                    size_t n, size_t n_sink, size_t n_window, kvtc__tc_geom *g) {
    size_t i, a, off, nbits;
    g->n_sink = n_sink < n ? n_sink : n;
    g->n_window = n_window < n - g->n_sink ? n_window : n - g->n_sink;
    g->m = n - g->n_sink - g->n_window;
    g->n_uniform = 0;
    for (i = 0; i < rank; ++i)
        if (widths[i] > 0 && (quant == KVTC_TC_QUANT_UNIFORM || widths[i] > 8)) ++g->n_uniform;
    g->widths = KVTC_TC_CHUNK_HEADER_BYTES;
    if (!kvtc__add_size(g->widths, rank, &off)) return KVTC_ERR_OVERFLOW;
    g->params = off;
    if (!kvtc__mul_size(g->n_uniform, 8, &a) || !kvtc__add_size(off, a, &off)) return KVTC_ERR_OVERFLOW;
    g->sink = off;
    if (!kvtc__mul_size(g->n_sink, dim, &a) || !kvtc__mul_size(a, 2, &a) || !kvtc__add_size(off, a, &off))
        return KVTC_ERR_OVERFLOW;
    g->window = off;
    if (!kvtc__mul_size(g->n_window, dim, &a) || !kvtc__mul_size(a, 2, &a) || !kvtc__add_size(off, a, &off))
        return KVTC_ERR_OVERFLOW;
    g->idx = off;
    if (!kvtc__mul_size(g->m, row_bits, &nbits)) return KVTC_ERR_OVERFLOW;
    g->idx_bytes = nbits / 8 + (nbits % 8 != 0);
    if (!kvtc__add_size(off, g->idx_bytes, &off)) return KVTC_ERR_OVERFLOW;
    g->bytes = off;
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_tc_params_resolved(const kvtc_tc_params *p, const kvtc_tc_calib *calib,
                                             kvtc_tc_params *out) {
    kvtc_tc_params r;
    if (!p || !calib || !out) return KVTC_ERR_NULL;
    if (calib->dim < 1 || calib->dim > KVTC_TC_MAX_DIM || calib->rank < 1 || calib->rank > calib->dim)
        return KVTC_ERR_DIM;
    r = *p;
    if (r.max_bits == 0) r.max_bits = 8;
    if (r.max_bits < 1 || r.max_bits > KVTC_TC_MAX_BITS) return KVTC_ERR_BITS;
    if (r.budget_bits < 0) return KVTC_ERR_ARG;
    if (r.budget_bits == 0) r.budget_bits = 2 * calib->dim;
    if (r.quantizer == KVTC_TC_QUANT_DEFAULT) r.quantizer = KVTC_TC_QUANT_GAUSSIAN;
    if ((int)r.quantizer < 0 || r.quantizer >= KVTC_TC_QUANT_COUNT) return KVTC_ERR_ARG;
    if (r.n_sink == 0) r.n_sink = 4;
    if (r.n_window == 0) r.n_window = 128;
    if (r.n_sink < KVTC_TC_NONE || r.n_window < KVTC_TC_NONE) return KVTC_ERR_ARG;
    *out = r;
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_tc_create(const kvtc_tc_params *p, const kvtc_tc_calib *calib, kvtc_tc **out) {
    kvtc_tc_params r;
    kvtc_tc *tc;
    size_t rank, dim, ab, total, off_w, off_a, off_bt, off_s, a;
    void *tmp;
    uint8_t *w;
    int i, b, na = 0, rb = 0;
    double obj = 0.0;
    kvtc_status st;
    if (!out) return KVTC_ERR_NULL;
    *out = NULL;
    if ((st = kvtc_tc_params_resolved(p, calib, &r)) != KVTC_OK) return st;
    rank = (size_t)calib->rank;
    dim = (size_t)calib->dim;
    if ((st = kvtc_bit_alloc_scratch_bytes(calib->rank, &ab)) != KVTC_OK) return st;
    tmp = KVTC_MALLOC(ab + rank, r.alloc_user);
    if (!tmp) return KVTC_ERR_NOMEM;
    w = (uint8_t *)tmp + ab;
    st = kvtc_bit_alloc(calib->eigenvalues, calib->rank, r.budget_bits, r.max_bits, w, rank, tmp, ab, &obj);
    if (st != KVTC_OK) {
        KVTC_FREE(tmp, r.alloc_user);
        return st;
    }
    for (i = 0; i < calib->rank; ++i) {
        na += w[i] > 0;
        rb += w[i];
    }
    /* struct | basis_t (dim x na floats) | sigma (rank floats) | active (na int32) | widths (rank) */
    total = kvtc__tc_up16(sizeof(kvtc_tc));
    off_bt = total;
    if (!kvtc__mul_size(dim, (size_t)na, &a) || !kvtc__mul_size(a, sizeof(float), &a) || !kvtc__add_size(total, a, &total)) {
        KVTC_FREE(tmp, r.alloc_user);
        return KVTC_ERR_OVERFLOW;
    }
    off_s = total;
    total += rank * sizeof(float);
    off_a = total;
    total += (size_t)na * sizeof(int32_t);
    off_w = total;
    total += rank;
    tc = (kvtc_tc *)KVTC_MALLOC(total, r.alloc_user);
    if (!tc) {
        KVTC_FREE(tmp, r.alloc_user);
        return KVTC_ERR_NOMEM;
    }
    memset(tc, 0, sizeof(*tc));
    tc->params = r;
    tc->calib = calib;
    tc->n_active = na;
    tc->row_bits = rb;
    tc->objective = obj;
    tc->basis_t = (float *)((uint8_t *)tc + off_bt);
    tc->sigma = (float *)((uint8_t *)tc + off_s);
    tc->active = (int32_t *)((uint8_t *)tc + off_a);
    tc->widths = (uint8_t *)tc + off_w;
    memcpy(tc->widths, w, rank);
    KVTC_FREE(tmp, r.alloc_user);
    na = 0;
    for (i = 0; i < calib->rank; ++i) {
        tc->sigma[i] = (float)sqrt(calib->eigenvalues[i]);
        if (tc->widths[i] > 0) tc->active[na++] = i;
    }
    for (a = 0; a < dim; ++a)
        for (i = 0; i < na; ++i)
            tc->basis_t[a * (size_t)na + (size_t)i] = calib->basis[(size_t)tc->active[i] * dim + a];
    for (b = 1; b <= 8; ++b) { /* N(0, 1/64) codebooks times 8 (exact) = N(0, 1) */
        int n = 1 << b, j;
        st = kvtc_codebook_generate(KVTC_CODEBOOK_GAUSSIAN, 64, b, tc->centroids[b - 1], 256, tc->boundaries[b - 1],
                                    255, &tc->codebook_mse[b - 1]);
        if (st != KVTC_OK) {
            KVTC_FREE(tc, r.alloc_user);
            return st;
        }
        for (j = 0; j < n; ++j) tc->centroids[b - 1][j] *= 8.0f;
        for (j = 0; j + 1 < n; ++j) tc->boundaries[b - 1][j] *= 8.0f;
    }
    *out = tc;
    return KVTC_OK;
}

KVTC_DEF void kvtc_tc_destroy(kvtc_tc *tc) {
    if (tc) KVTC_FREE(tc, tc->params.alloc_user);
}

static kvtc_status kvtc__tc_geom_n(const kvtc_tc *tc, size_t n, kvtc__tc_geom *g) {
    if (n < 1 || n > 0xffffffffu) return KVTC_ERR_ARG;
    return kvtc__tc_geom_of((size_t)tc->calib->dim, (size_t)tc->calib->rank, tc->params.quantizer, tc->widths,
                            (size_t)tc->row_bits, n, kvtc__tc_count(tc->params.n_sink),
                            kvtc__tc_count(tc->params.n_window), g);
}

KVTC_DEF kvtc_status kvtc_tc_chunk_bytes(const kvtc_tc *tc, size_t n_tokens, size_t *bytes) {
    kvtc__tc_geom g;
    kvtc_status st;
    if (!tc || !bytes) return KVTC_ERR_NULL;
    if ((st = kvtc__tc_geom_n(tc, n_tokens, &g)) != KVTC_OK) return st;
    *bytes = g.bytes;
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_tc_ratio(const kvtc_tc *tc, size_t n_tokens, double *ratio) {
    size_t bytes;
    kvtc_status st;
    if (!ratio) return KVTC_ERR_NULL;
    if ((st = kvtc_tc_chunk_bytes(tc, n_tokens, &bytes)) != KVTC_OK) return st;
    *ratio = (double)n_tokens * (double)tc->calib->dim * 2.0 / (double)bytes;
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_tc_scratch_bytes(const kvtc_tc *tc, size_t n_tokens, size_t *bytes) {
    kvtc__tc_scratch s;
    if (!tc || !bytes) return KVTC_ERR_NULL;
    if (n_tokens < 1 || n_tokens > 0xffffffffu) return KVTC_ERR_ARG;
    if (!kvtc__tc_scratch_layout(n_tokens, (size_t)tc->calib->rank, (size_t)tc->calib->dim, &s))
        return KVTC_ERR_OVERFLOW;
    *bytes = s.bytes;
    return KVTC_OK;
}

/* C (m x N) = init + A (m x K) B (K x N), all row-major; row k of B starts
 * at B + (bidx ? bidx[k] : k) * ldb; init: N floats, or NULL for 0. Each
 * element is summed over k in increasing order (the floats of the plain
 * triple loop), in blocks of 4 rows x 8 columns x 256 k that -O2 turns into
 * SIMD (basic-block vectorisation). */
static void kvtc__gemm(size_t m, size_t N, size_t K, const float *KVTC__RESTRICT A, size_t lda,
                       const float *KVTC__RESTRICT B, size_t ldb, const int32_t *bidx, const float *init,
                       float *KVTC__RESTRICT C, size_t ldc) {
    size_t k0, n0, t, k, q;
    for (k0 = 0; k0 < K || k0 == 0; k0 += 256) {
        size_t k1 = K - k0 < 256 ? K : k0 + 256;
        for (n0 = 0; n0 < N; n0 += 8) {
            size_t w = N - n0 < 8 ? N - n0 : 8;
            for (t = 0; t < m; t += 4) {
                size_t rows = m - t < 4 ? m - t : 4;
                const float *a0 = A + t * lda, *a1 = a0 + (rows > 1 ? lda : 0), *a2 = a0 + (rows > 2 ? 2 * lda : 0),
                            *a3 = a0 + (rows > 3 ? 3 * lda : 0);
                float *c0p = C + t * ldc + n0, *c1p = c0p + (rows > 1 ? ldc : 0), *c2p = c0p + (rows > 2 ? 2 * ldc : 0),
                      *c3p = c0p + (rows > 3 ? 3 * ldc : 0);
                float c0[8], c1[8], c2[8], c3[8];
                for (q = 0; q < 8; ++q) {
                    if (q >= w) c0[q] = c1[q] = c2[q] = c3[q] = 0.0f;
                    else if (k0 == 0) c0[q] = c1[q] = c2[q] = c3[q] = init ? init[n0 + q] : 0.0f;
                    else c0[q] = c0p[q], c1[q] = c1p[q], c2[q] = c2p[q], c3[q] = c3p[q];
                }
                if (w == 8) {
                    for (k = k0; k < k1; ++k) {
                        const float *b = B + (bidx ? (size_t)bidx[k] : k) * ldb + n0;
                        float x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
                        for (q = 0; q < 8; ++q) {
                            c0[q] += x0 * b[q];
                            c1[q] += x1 * b[q];
                            c2[q] += x2 * b[q];
                            c3[q] += x3 * b[q];
                        }
                    }
                } else {
                    for (k = k0; k < k1; ++k) {
                        const float *b = B + (bidx ? (size_t)bidx[k] : k) * ldb + n0;
                        float x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
                        for (q = 0; q < w; ++q) {
                            c0[q] += x0 * b[q];
                            c1[q] += x1 * b[q];
                            c2[q] += x2 * b[q];
                            c3[q] += x3 * b[q];
                        }
                    }
                }
                for (q = 0; q < w; ++q) { /* rows beyond m alias row t: write those last-first so row t wins */
                    c3p[q] = c3[q];
                    c2p[q] = c2[q];
                    c1p[q] = c1[q];
                    c0p[q] = c0[q];
                }
            }
        }
        if (K == 0) break;
    }
}

/* Stage: z (m x na) = (x - mu) V_active^T, via rows of basis_t. A token with
 * NaN/Inf gets z = 0 and sets *nonfinite. xc: dim floats of work. */
static void kvtc__tc_project(const kvtc_tc *tc, const float *KVTC__RESTRICT x, size_t m, float *KVTC__RESTRICT z,
                             float *KVTC__RESTRICT xc, int *nonfinite) {
    size_t d = (size_t)tc->calib->dim, na = (size_t)tc->n_active, t0, t, j;
    const float *mu = tc->calib->mean;
    for (t0 = 0; t0 < m; t0 += KVTC__TC_BLOCK) { /* centre a block of tokens, then one GEMM */
        size_t nt = m - t0 < KVTC__TC_BLOCK ? m - t0 : KVTC__TC_BLOCK;
        for (t = 0; t < nt; ++t) {
            const float *xt = x + (t0 + t) * d;
            float *ct = xc + t * d, chk = 0.0f;
            for (j = 0; j < d; ++j) {
                ct[j] = xt[j] - mu[j];
                chk += xt[j] - xt[j]; /* 0 unless NaN or Inf */
            }
            if (chk != 0.0f) {
                *nonfinite = 1;
                memset(ct, 0, d * sizeof(float)); /* codes as z = 0 */
            }
        }
        kvtc__gemm(nt, na, d, xc, d, tc->basis_t, na, NULL, NULL, z + t0 * na, na);
    }
}

/* Stage: set up the components of the coder's own allocation; for UNIFORM
 * ones fit lo/scale to the chunk's z and store them at params (record).
 * Returns 1 if a scale overflowed fp32 (that component then decodes as 0). */
static int kvtc__tc_fit(const kvtc_tc *tc, const float *z, size_t m, kvtc__tc_comp *comps, uint8_t *params) {
    size_t na = (size_t)tc->n_active, k, t;
    int range = 0;
    for (k = 0; k < na; ++k) {
        kvtc__tc_comp *c = comps + k;
        int b = tc->widths[tc->active[k]];
        c->width = b;
        c->qmax = (float)((1u << b) - 1u);
        if (tc->params.quantizer == KVTC_TC_QUANT_GAUSSIAN && b <= 8) {
            c->scale = tc->sigma[tc->active[k]];
            c->inv = c->scale > 0.0f ? 1.0f / c->scale : 0.0f;
            c->lo = 0.0f;
            c->centroids = tc->centroids[b - 1];
            c->boundaries = tc->boundaries[b - 1];
        } else {
            float lo = m ? z[k] : 0.0f, hi = lo;
            double sc;
            for (t = 1; t < m; ++t) {
                float v = z[t * na + k];
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
            sc = ((double)hi - (double)lo) / (double)c->qmax;
            if (!(sc <= 3.4028234663852886e38)) {
                lo = 0.0f;
                sc = 0.0;
                range = 1;
            }
            c->lo = lo;
            c->scale = (float)sc;
            c->inv = c->scale > 0.0f ? 1.0f / c->scale : 0.0f;
            c->centroids = NULL;
            c->boundaries = NULL;
            kvtc__put_f32(params, c->lo);
            kvtc__put_f32(params + 4, c->scale);
            params += 8;
        }
    }
    return range;
}

/* Stage: idx (m x na) from z. */
static void kvtc__tc_quantize(const kvtc__tc_comp *comps, size_t na, const float *KVTC__RESTRICT z, size_t m,
                              uint16_t *KVTC__RESTRICT idx) {
    size_t t, k;
    for (t = 0; t < m; ++t) {
        const float *zt = z + t * na;
        uint16_t *it = idx + t * na;
        for (k = 0; k < na; ++k) {
            const kvtc__tc_comp *c = comps + k;
            if (c->centroids) {
                it[k] = (uint16_t)kvtc__quantize(c->boundaries, c->width, zt[k] * c->inv);
            } else {
                float q = floorf((zt[k] - c->lo) * c->inv + 0.5f);
                if (!(q > 0.0f)) q = 0.0f;
                if (q > c->qmax) q = c->qmax;
                it[k] = (uint16_t)q;
            }
        }
    }
}

/* Stage: z (m x na) from idx. */
static void kvtc__tc_dequantize(const kvtc__tc_comp *comps, size_t na, const uint16_t *KVTC__RESTRICT idx, size_t m,
                                float *KVTC__RESTRICT z) {
    size_t t, k;
    for (t = 0; t < m; ++t) {
        const uint16_t *it = idx + t * na;
        float *zt = z + t * na;
        for (k = 0; k < na; ++k) {
            const kvtc__tc_comp *c = comps + k;
            zt[k] = c->centroids ? c->scale * c->centroids[it[k]] : c->lo + (float)it[k] * c->scale;
        }
    }
}

/* Stage: x (m x dim) = mu + z V_active, z m x na; active: na component indices. */
static void kvtc__tc_reconstruct(const kvtc_tc_calib *cal, const int32_t *active, size_t na,
                                 const float *KVTC__RESTRICT z, size_t m, float *KVTC__RESTRICT x) {
    size_t d = (size_t)cal->dim;
    kvtc__gemm(m, d, na, z, na, cal->basis, d, active, cal->mean, x, d);
}

/* fp16 rows of the uncompressed tokens; returns the worst status. */
static kvtc_status kvtc__tc_put_f16_rows(const float *x, size_t n, size_t d, uint8_t *out) {
    kvtc_status worst = KVTC_OK;
    size_t t, j;
    for (t = 0; t < n; ++t) {
        const float *xt = x + t * d;
        uint8_t *o = out + t * d * 2;
        kvtc_status st = KVTC_OK;
        for (j = 0; j < d; ++j) {
            uint16_t h = kvtc_f32_to_f16(xt[j]);
            if (!isfinite(xt[j])) st = KVTC_ERR_NONFINITE;
            else if ((h & 0x7c00u) == 0x7c00u && st == KVTC_OK) st = KVTC_ERR_RANGE;
            kvtc__put_u16(o + 2 * j, h);
        }
        if (st != KVTC_OK) {
            memset(o, 0, d * 2);
            if (worst != KVTC_ERR_NONFINITE) worst = st;
        }
    }
    return worst;
}

KVTC_DEF kvtc_status kvtc_tc_encode(const kvtc_tc *tc, const float *x, size_t n_tokens, void *out, size_t out_bytes,
                                    void *scratch, size_t scratch_bytes) {
    kvtc__tc_geom g;
    kvtc__tc_scratch sl;
    kvtc_status st, worst = KVTC_OK;
    uint8_t *o = (uint8_t *)out, *sb = (uint8_t *)scratch, *wact;
    kvtc__tc_comp *comps;
    float *z;
    uint16_t *idx;
    size_t d, na, k;
    int nonfinite = 0;
    if (!tc || !x || !out || !scratch) return KVTC_ERR_NULL;
    if ((st = kvtc__tc_geom_n(tc, n_tokens, &g)) != KVTC_OK) return st;
    if (!kvtc__mul_size(n_tokens, (size_t)tc->calib->dim, &d)) return KVTC_ERR_OVERFLOW;
    d = (size_t)tc->calib->dim;
    na = (size_t)tc->n_active;
    if (!kvtc__tc_scratch_layout(g.m, na, d, &sl)) return KVTC_ERR_OVERFLOW;
    if (out_bytes < g.bytes || scratch_bytes < sl.bytes) return KVTC_ERR_SMALL;
    if ((uintptr_t)scratch % 16 != 0) return KVTC_ERR_ARG;
    comps = (kvtc__tc_comp *)(sb + sl.comps);
    z = (float *)(sb + sl.z);
    idx = (uint16_t *)(sb + sl.idx);
    wact = sb + sl.wact;
    memset(o, 0, KVTC_TC_CHUNK_HEADER_BYTES);
    o[0] = 'K';
    o[1] = 'T';
    o[2] = 'C';
    o[3] = 'R';
    kvtc__put_u16(o + 4, KVTC_TC_FORMAT_VERSION);
    o[6] = (uint8_t)tc->params.quantizer;
    kvtc__tc_put_u32(o + 8, (uint32_t)d);
    kvtc__tc_put_u32(o + 12, (uint32_t)tc->calib->rank);
    kvtc__tc_put_u32(o + 16, (uint32_t)n_tokens);
    kvtc__tc_put_u32(o + 20, (uint32_t)g.n_sink);
    kvtc__tc_put_u32(o + 24, (uint32_t)g.n_window);
    kvtc__tc_put_u32(o + 28, (uint32_t)tc->row_bits);
    kvtc__tc_put_u64(o + 32, tc->calib->id);
    kvtc__tc_put_u64(o + 40, (uint64_t)g.bytes);
    memcpy(o + g.widths, tc->widths, (size_t)tc->calib->rank);
    memset(o + g.params, 0, 8 * g.n_uniform); /* stays zero when no token is coded */
    st = kvtc__tc_put_f16_rows(x, g.n_sink, d, o + g.sink);
    if (st != KVTC_OK) worst = st;
    st = kvtc__tc_put_f16_rows(x + (n_tokens - g.n_window) * d, g.n_window, d, o + g.window);
    if (st != KVTC_OK && worst != KVTC_ERR_NONFINITE) worst = st;
    if (g.m > 0 && na > 0) {
        kvtc__tc_project(tc, x + g.n_sink * d, g.m, z, (float *)(sb + sl.xc), &nonfinite);
        if (kvtc__tc_fit(tc, z, g.m, comps, o + g.params) && worst == KVTC_OK) worst = KVTC_ERR_RANGE;
        kvtc__tc_quantize(comps, na, z, g.m, idx);
        for (k = 0; k < na; ++k) wact[k] = (uint8_t)comps[k].width;
        kvtc__pack_var_u16(idx, g.m, wact, na, o + g.idx);
    } else if (g.m > 0) {
        size_t t, j;
        for (t = 0; t < g.m; ++t) /* nothing coded, still report bad input */
            for (j = 0; j < d; ++j)
                if (!isfinite(x[(g.n_sink + t) * d + j])) nonfinite = 1;
    }
    if (nonfinite) worst = KVTC_ERR_NONFINITE;
    kvtc__tc_put_u64(o + 48, kvtc_tc_record_checksum(o, g.bytes));
    return worst;
}

KVTC_DEF kvtc_status kvtc_tc_chunk_info(const void *in, size_t in_bytes, kvtc_tc_chunk_header *out) {
    const uint8_t *b = (const uint8_t *)in;
    kvtc_tc_chunk_header h;
    if (!in || !out) return KVTC_ERR_NULL;
    if (in_bytes < KVTC_TC_CHUNK_HEADER_BYTES) return KVTC_ERR_CORRUPT;
    if (b[0] != 'K' || b[1] != 'T' || b[2] != 'C' || b[3] != 'R') return KVTC_ERR_CORRUPT;
    memcpy(h.magic, b, 4);
    h.version = kvtc__get_u16(b + 4);
    if (h.version != KVTC_TC_FORMAT_VERSION) return KVTC_ERR_VERSION;
    h.quantizer = b[6];
    h.flags = b[7];
    h.dim = kvtc__tc_get_u32(b + 8);
    h.rank = kvtc__tc_get_u32(b + 12);
    h.n_tokens = kvtc__tc_get_u32(b + 16);
    h.n_sink = kvtc__tc_get_u32(b + 20);
    h.n_window = kvtc__tc_get_u32(b + 24);
    h.row_bits = kvtc__tc_get_u32(b + 28);
    h.calib_id = kvtc__tc_get_u64(b + 32);
    h.record_bytes = kvtc__tc_get_u64(b + 40);
    h.checksum = kvtc__tc_get_u64(b + 48);
    h.reserved = kvtc__tc_get_u64(b + 56);
    if ((h.quantizer != KVTC_TC_QUANT_UNIFORM && h.quantizer != KVTC_TC_QUANT_GAUSSIAN) || h.flags != 0 ||
        h.reserved != 0)
        return KVTC_ERR_CORRUPT;
    if (h.dim < 1 || h.dim > KVTC_TC_MAX_DIM || h.rank < 1 || h.rank > h.dim || h.n_tokens < 1) return KVTC_ERR_CORRUPT;
    if ((uint64_t)h.n_sink + h.n_window > h.n_tokens || (uint64_t)h.row_bits > 16u * (uint64_t)h.rank)
        return KVTC_ERR_CORRUPT;
    if (h.record_bytes < (uint64_t)KVTC_TC_CHUNK_HEADER_BYTES + h.rank || h.record_bytes > (uint64_t)in_bytes)
        return KVTC_ERR_CORRUPT;
    *out = h;
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_tc_decode(const kvtc_tc *tc, const void *in, size_t in_bytes, float *x, size_t x_count,
                                    void *scratch, size_t scratch_bytes) {
    const uint8_t *b = (const uint8_t *)in, *widths, *params;
    const kvtc_tc_calib *cal;
    kvtc_tc_chunk_header h;
    kvtc__tc_geom g;
    kvtc__tc_scratch sl;
    kvtc__tc_comp *comps;
    int32_t *active;
    uint8_t *sb = (uint8_t *)scratch, *wact;
    size_t d, rank, rb, na = 0, need, i, t;
    kvtc_status st;
    if (!tc || !in || !x || !scratch) return KVTC_ERR_NULL;
    if ((st = kvtc_tc_chunk_info(in, in_bytes, &h)) != KVTC_OK) return st;
    cal = tc->calib;
    if (h.calib_id != cal->id) return KVTC_ERR_MISMATCH;
    if (h.dim != (uint32_t)cal->dim || h.rank != (uint32_t)cal->rank) return KVTC_ERR_CORRUPT;
    d = h.dim;
    rank = h.rank;
    widths = b + KVTC_TC_CHUNK_HEADER_BYTES; /* record_bytes >= 64 + rank, checked */
    if ((st = kvtc__row_bits(widths, rank, &rb)) != KVTC_OK) return KVTC_ERR_CORRUPT;
    if (rb != h.row_bits) return KVTC_ERR_CORRUPT;
    for (i = 0; i < rank; ++i) na += widths[i] > 0;
    if (kvtc__tc_geom_of(d, rank, h.quantizer, widths, rb, h.n_tokens, h.n_sink, h.n_window, &g) != KVTC_OK ||
        g.bytes != h.record_bytes || g.n_sink != h.n_sink || g.n_window != h.n_window)
        return KVTC_ERR_CORRUPT;
    if (kvtc_tc_record_checksum(b, g.bytes) != h.checksum) return KVTC_ERR_CORRUPT;
    if (!kvtc__mul_size((size_t)h.n_tokens, d, &need)) return KVTC_ERR_OVERFLOW;
    if (x_count < need) return KVTC_ERR_SMALL;
    if (!kvtc__tc_scratch_layout(g.m, na, d, &sl)) return KVTC_ERR_OVERFLOW;
    if (scratch_bytes < sl.bytes) return KVTC_ERR_SMALL;
    if ((uintptr_t)scratch % 16 != 0) return KVTC_ERR_ARG;
    comps = (kvtc__tc_comp *)(sb + sl.comps);
    active = (int32_t *)(sb + sl.active);
    wact = sb + sl.wact;
    for (i = 0; i < g.n_sink * d; ++i) x[i] = kvtc_f16_to_f32(kvtc__get_u16(b + g.sink + 2 * i));
    for (i = 0; i < g.n_window * d; ++i)
        x[((size_t)h.n_tokens - g.n_window) * d + i] = kvtc_f16_to_f32(kvtc__get_u16(b + g.window + 2 * i));
    if (g.m == 0) return KVTC_OK;
    params = b + g.params;
    na = 0;
    for (i = 0; i < rank; ++i) {
        int w = widths[i];
        kvtc__tc_comp *c;
        if (w == 0) continue;
        c = comps + na;
        active[na] = (int32_t)i;
        wact[na++] = (uint8_t)w;
        c->width = w;
        c->qmax = (float)((1u << w) - 1u);
        if (h.quantizer == KVTC_TC_QUANT_GAUSSIAN && w <= 8) {
            c->scale = tc->sigma[i];
            c->lo = 0.0f;
            c->inv = 0.0f;
            c->centroids = tc->centroids[w - 1];
            c->boundaries = tc->boundaries[w - 1];
        } else {
            c->lo = kvtc__get_f32(params);
            c->scale = kvtc__get_f32(params + 4);
            c->inv = 0.0f;
            c->centroids = NULL;
            c->boundaries = NULL;
            params += 8;
        }
    }
    {
        float *z = (float *)(sb + sl.z), *xm = x + g.n_sink * d;
        uint16_t *idx = (uint16_t *)(sb + sl.idx);
        if (na == 0) {
            for (t = 0; t < g.m; ++t) memcpy(xm + t * d, cal->mean, d * sizeof(float));
            return KVTC_OK;
        }
        kvtc__unpack_var_u16(b + g.idx, g.m, wact, na, g.idx_bytes, idx);
        kvtc__tc_dequantize(comps, na, idx, g.m, z);
        kvtc__tc_reconstruct(cal, active, na, z, g.m, xm);
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
  1.0.0 (2026-12-01) TurboQuant encoder: norm, unit vector and norm correction
                     in fp32 in a fixed reduction order (chunks of 16, then a
                     pairwise tree), with a power-of-two prescale for tiny or
                     huge vectors, so the GPU encoder gives the same bytes;
                     NaN/Inf checked per element. kvtc_tc_encode writes zeros
                     to the side data of a chunk that codes no token.
                     kvtc_cuda.cuh: tensor-core decode attention (kernel
                     choice, rotated output; kvtc_cuda_attn_splits and
                     _workspace_bytes take both codecs), a fast TQ compress
                     kernel, KVTC transform coding on the GPU (>>tc-gpu).
  0.2.0 (2026-11-23) KVTC transform coding on the CPU.
  0.1.0 (2026-11-23) first release.
*/
