/* kvtc_cuda_tc.cuh - KVTC transform coding on the GPU (section >>tc-gpu of kvtc_cuda.cuh).  v0.2.0
 *
 * Build (compile check of this section alone; tests/test_tc_cuda.cu and bench/bench_tc_cuda.cu carry their own lines):
 *   nvcc -std=c++17 -O3 -arch=sm_90 -I. -x cu -DKVTC_IMPLEMENTATION -DKVTC_CUDA_IMPLEMENTATION -c kvtc_cuda_tc.cuh -o build/kvtc_cuda_tc.o
 *
 * Written to be pasted into kvtc_cuda.cuh as ">>tc-gpu": the first part holds
 * C-compatible declarations (kvtc.h, kvtc_cuda.cuh and the CUDA runtime
 * headers), the kernels and launcher bodies sit behind
 * KVTC_CUDA_IMPLEMENTATION (one .cu file of the program defines it, together
 * with KVTC_IMPLEMENTATION). Like the rest of kvtc_cuda.cuh: every launcher
 * takes a stream (last), returns kvtc_status, allocates nothing, never
 * synchronises or reads device memory on the host, and checks its launches;
 * device memory comes from the caller, sized by *_bytes() helpers. A
 * compress or decompress call is a fixed sequence of kernels on one stream
 * with no host round trip, so it can be captured in a CUDA graph.
 *
 * What runs where. Calibration and bit allocation stay on the CPU
 * (kvtc_tc_calibrate, kvtc_tc_create: once per budget). kvtc_cuda_tc_plan_init
 * uploads one coder per group: the basis rows of its active components (in
 * both orientations, in the operand format of the chosen GEMM), the mean,
 * per-component widths, bit offsets and sigmas, the N(0,1) codebooks and the
 * RoPE frequencies. Then, for a chunk of n tokens of one sequence, all groups
 * in each launch:
 *   compress   gather    tokens from the paged cache (block table), RoPE
 *                        removed from keys (double, as kvtc_rope_remove),
 *                        sink/window tokens straight into the record as fp16,
 *                        coded tokens centred (x - mu) into the GEMM operand;
 *              project   Z = (X - mu) V_active^T (tensor cores, see gemm);
 *              quantize  header and widths; UNIFORM components: per-chunk
 *                        min/max, lo and scale into the record's side data;
 *              pack      quantize (GAUSSIAN: codebook cell of z / sigma;
 *                        UNIFORM: the affine grid) and pack with the variable
 *                        widths straight into the record's index section;
 *              checksum  FNV-1a 64 of each record, computed in parallel (see
 *                        below), written last.
 *   decompress check     header fields, calibration id, widths, length and
 *                        the checksum of every record;
 *              unpack    indices -> dequantized coefficients;
 *              reconstruct X = Z V_active + mu (tensor cores);
 *              scatter   RoPE re-applied to keys (double, as kvtc_rope_apply),
 *                        written to the paged cache in its dtype.
 * kvtc_cuda_tc_encode / _decode are the same pipeline on flat float tensors
 * [n_groups][n_tokens][dim] (no RoPE, no cache): the GPU twins of
 * kvtc_tc_encode / kvtc_tc_decode, one record per group.
 *
 * Groups. A token vector of group g concatenates head_dim coordinates of
 * (kind, layer, head) parts: coordinate c = ((k * gl + l) * gh + h) * head_dim
 * + j, with k the kind (only K or only V, or K then V for KV_CONCAT), l and h
 * the layer and head inside the group (gl = group_layers, gh = group_heads).
 * Groups are numbered g = (kind * (n_layers/gl) + layer/gl) * (n_kv_heads/gh)
 * + head/gh (kind = 0 for KV_CONCAT). Per head: gl = gh = 1, SEPARATE
 * (p = head_dim); per layer: gh = n_kv_heads (p = n_kv_heads * head_dim); the
 * KVTC paper's grouping: gl = n_layers, gh = n_kv_heads, KV_CONCAT (p = 2 *
 * n_layers * n_kv_heads * head_dim). The coders of one plan must share
 * n_sink and n_window (resolved); dims all equal p; budgets, quantizers and
 * ranks may differ per group.
 *
 * Records are kvtc.h's chunk records (kvtc_tc_chunk_header), one per group,
 * at offsets kvtc_cuda_tc_record_offsets gives (each 16-byte aligned, in
 * group order, no other bytes between them but alignment padding), so the
 * CPU decodes GPU records and the GPU decodes CPU records placed there. The
 * GPU decoder needs records of the plan's own widths and quantizer and of the
 * call's n_tokens (else KVTC_ERR_UNSUPPORTED for that group); kvtc_tc_decode
 * takes any record of the calibration.
 *
 * gemm (the projection and the reconstruction):
 *   TF32X3 (default) tensor cores, mma.sync m16n8k8 tf32 with split operands:
 *          a = a_hi + a_lo, b = b_hi + b_lo (each tf32, a_hi = rna(a)),
 *          a.b ~ a_hi b_hi + a_hi b_lo + a_lo b_hi: about fp32 accuracy
 *          (relative error ~2^-21 per product), fp32 accumulation in another
 *          order than the CPU's, so a coefficient near a cell edge can land
 *          in the neighbouring cell (tests/test_tc_cuda.cu counts them).
 *   F16    tensor cores, mma.sync m16n8k16, fp16 operands (x - mu, z and the
 *          basis rounded to fp16, relative error 2^-11), fp32 accumulation:
 *          the fast one for large p. More cells differ from the CPU's (about
 *          3e-4 of them at widths <= 8; at 9..16-bit UNIFORM widths the cells
 *          are narrower than fp16's rounding and many differ, by small
 *          amounts). Limitation: a coded token with |x - mu| > 65504 becomes
 *          Inf in the fp16 operand, is not flagged, and spoils the UNIFORM
 *          ranges of its record: use F16 for data in fp16 range only.
 *   EXACT  CUDA cores, fp32, each sum in the CPU's order without fma
 *          (kvtc__gemm's): coefficients and reconstructions bit-identical to
 *          kvtc.h, records byte-identical given identical inputs (the RoPE
 *          cosines come from the GPU's libm: they may differ from the host's
 *          in the last bit, which changes a float once in ~10^9). Slow.
 * No cuBLAS or other library: the core path needs only the CUDA runtime.
 *
 * Measured (H200, bench/bench_tc_cuda.cu; 32 layers x 8 KV heads x 128, fp16,
 * 1024 tokens, 8x): per head (TF32X3) compress 1.99 ms + decompress 1.71 ms,
 * per layer (F16) 2.23 + 1.81 ms, against a 68 us device-to-device copy of the
 * chunk: the 2 ms target is not met yet. Where the time goes and what is next:
 * see the bench's per-stage table (gather, pack, unpack and scatter run 5-8x
 * above their memory floor: one thread per coordinate pair with 64-bit index
 * arithmetic; the tensor-core GEMM reaches 250-290 TFLOP/s at the paper's
 * shapes, about a third of cuBLAS, and much less at p = 128).
 *
 * Checksum. FNV-1a 64 is one serial chain, h = (h ^ b) * P; on a GPU it runs
 * as a parallel scan. The low 8 bits of h evolve on their own (l' = ((l ^ b)
 * * P) mod 256), and bit k of l' is bit k of (l ^ b) XOR a function of its
 * lower bits: eight rounds of a prefix-XOR scan over all bytes (4 KiB
 * segments, 128 threads each, segment carries from the parities of earlier
 * segments) give the low byte L_i before every byte. Then h ^ b_i = h + d_i
 * with d_i = (L_i ^ b_i) - L_i known, so h_N = P^N h_0 + sum_i d_i P^(N-i)
 * mod 2^64: a sum, reduced by blocks and one integer atomicAdd per block
 * (exact, so the order does not matter). Ten kernels, ~25 bytes of memory
 * traffic per record byte.
 *
 * Per-stage timing: pass a kvtc_cuda_tc_timing whose events the caller
 * created; the launcher records one event before the first and one after
 * each stage on its stream; kvtc_cuda_tc_timing_read gives the stage times
 * once they completed.
 *
 * Status of each record (optional int32 per group in device memory, written
 * by the last kernel): compress: KVTC_OK, KVTC_ERR_NONFINITE, KVTC_ERR_RANGE
 * exactly as kvtc_tc_encode returns them (the record is complete either
 * way), KVTC_ERR_ARG if a block-table entry was outside the cache (those
 * tokens read as zeros). decompress: KVTC_OK, or the code kvtc_tc_decode
 * would give (ERR_CORRUPT, ERR_VERSION, ERR_MISMATCH), or ERR_UNSUPPORTED as
 * above; a group that fails writes nothing to the cache (or to d_x), ERR_ARG
 * if a block-table entry was outside the cache (that token is skipped).
 */
#ifndef KVTC_CUDA_TC_CUH_INCLUDED
#define KVTC_CUDA_TC_CUH_INCLUDED

#include "kvtc_cuda.cuh"

#ifdef __cplusplus
extern "C" {
#endif

/* >>tc-gpu ---------------------------------------------------------------- */
typedef enum kvtc_cuda_tc_gemm {
    KVTC_CUDA_TC_GEMM_DEFAULT = 0, /* TF32X3 */
    KVTC_CUDA_TC_GEMM_TF32X3,      /* tensor cores, split tf32: ~fp32 accuracy */
    KVTC_CUDA_TC_GEMM_F16,         /* tensor cores, fp16 operands, fp32 accumulation */
    KVTC_CUDA_TC_GEMM_EXACT,       /* CUDA cores, the CPU's summation order: bit-identical */
    KVTC_CUDA_TC_GEMM_COUNT
} kvtc_cuda_tc_gemm;

typedef enum kvtc_cuda_tc_kv {
    KVTC_CUDA_TC_KV_DEFAULT = 0, /* SEPARATE */
    KVTC_CUDA_TC_KV_SEPARATE,    /* keys and values in separate groups (all K groups first) */
    KVTC_CUDA_TC_KV_CONCAT,      /* one vector [K parts | V parts] per group */
    KVTC_CUDA_TC_KV_COUNT
} kvtc_cuda_tc_kv;

/* Zero means default: `kvtc_cuda_tc_params g = {0}; g.head_dim = 128; g.n_layers = 32; g.n_kv_heads = 8;` */
typedef struct kvtc_cuda_tc_params {
    int head_dim;           /* required: even, 2..KVTC_MAX_HEAD_DIM */
    int n_layers;           /* required: layers in the cache, >= 1 */
    int n_kv_heads;         /* required: KV heads per layer, >= 1 */
    int group_layers;       /* layers per group, divides n_layers; 0 = 1 */
    int group_heads;        /* KV heads per group, divides n_kv_heads; 0 = 1 */
    kvtc_cuda_tc_kv kv;
    int keys_no_rope;       /* 1: the cache holds keys without RoPE (nothing to remove or re-apply) */
    kvtc_rope_params rope;  /* the keys' RoPE: style, rotary_dim, theta (its head_dim and n_heads are ignored) */
    kvtc_cuda_tc_gemm gemm;
} kvtc_cuda_tc_params;

/* A plan: the coders of all groups in device memory. Read-only for callers. */
typedef struct kvtc_cuda_tc {
    kvtc_cuda_tc_params params;   /* resolved */
    const kvtc_tc *const *tcs;    /* borrowed host coders, n_groups, in group order: must outlive the plan */
    int n_groups, dim;            /* groups and p */
    int rank_max, na_max, na_pad; /* largest rank and n_active; na_pad: n_active rows padded (multiple of 128) */
    int kp;                       /* p padded for the projection's k loop (multiple of 32 fp32 / 64 fp16) */
    int n_sink, n_window;         /* shared by all coders (KVTC_TC_NONE as 0) */
    int quant_uniform;            /* 1 if some group uses UNIFORM components */
    void *d_groups, *d_comps;     /* per group and per (group, active component) tables */
    unsigned char *d_widths;      /* [n_groups][rank_max] */
    float *d_mean;                /* [n_groups][dim] */
    double *d_inv_freq;           /* rotary_dim / 2 */
    float *d_cent, *d_bnd;        /* [8][256] and [8][255]: N(0,1) Lloyd-Max */
    void *d_v, *d_v_lo;           /* projection operand [n_groups][na_pad][kp] (d_v_lo: TF32X3 only) */
    void *d_vt, *d_vt_lo;         /* reconstruction operand [n_groups][dim][na_pad] */
} kvtc_cuda_tc;

/* One sequence's chunk in a paged cache: tokens start .. start + n_tokens - 1 of the sequence,
 * token i in page block_table[i / block_size] at offset i % block_size. Both caches are
 * [n_layers][n_blocks][block_size][n_kv_heads][head_dim] of dtype (vLLM's per-layer layout, layers
 * back to back). Compress reads them; decompress writes them. */
typedef struct kvtc_cuda_tc_cache {
    void *d_k, *d_v;
    kvtc_dtype dtype;              /* F16 (default), BF16 or F32 */
    int block_size, n_blocks;      /* tokens per page; pages per layer */
    const int32_t *d_block_table;  /* device: max_blocks page indices of the sequence */
    int max_blocks;
    int64_t start;                 /* sequence index of the chunk's first token, >= 0 */
    const int64_t *d_positions;    /* device: n_tokens RoPE positions; NULL = start + i */
} kvtc_cuda_tc_cache;

#define KVTC_CUDA_TC_MAX_STAGES 5
/* Per-stage timing: events[0 .. KVTC_CUDA_TC_MAX_STAGES] created by the caller (cudaEventCreate). */
typedef struct kvtc_cuda_tc_timing {
    cudaEvent_t events[KVTC_CUDA_TC_MAX_STAGES + 1];
    int n_stages; /* set by the launcher: stages recorded (events 0..n_stages) */
    int decompress; /* set by the launcher: 0 compress/encode, 1 decompress/decode */
} kvtc_cuda_tc_timing;

/* What each zero field of *p means. */
KVTC_DEF kvtc_status kvtc_cuda_tc_params_resolved(const kvtc_cuda_tc_params *p, kvtc_cuda_tc_params *out);
/* Groups and their dimension p for these parameters. */
KVTC_DEF kvtc_status kvtc_cuda_tc_groups(const kvtc_cuda_tc_params *p, int *n_groups, int *dim);
/* Device bytes of the plan, and of a temporary upload buffer kvtc_cuda_tc_plan_init needs (free it afterwards). */
KVTC_DEF kvtc_status kvtc_cuda_tc_plan_bytes(const kvtc_cuda_tc_params *p, const kvtc_tc *const *tcs, int n_groups,
                                             size_t *plan_bytes, size_t *upload_bytes);
/* Upload the coders into d_plan (16-byte aligned) on `stream`, through d_upload. */
KVTC_DEF kvtc_status kvtc_cuda_tc_plan_init(const kvtc_cuda_tc_params *p, const kvtc_tc *const *tcs, int n_groups,
                                            void *d_plan, size_t plan_bytes, void *d_upload, size_t upload_bytes,
                                            kvtc_cuda_tc *out, cudaStream_t stream);
/* Bytes of the record buffer for a chunk of n_tokens: every record, each at a 16-byte aligned offset. */
KVTC_DEF kvtc_status kvtc_cuda_tc_records_bytes(const kvtc_cuda_tc *plan, size_t n_tokens, size_t *bytes);
/* Offset and exact length (kvtc_tc_chunk_bytes) of each group's record; either array may be NULL. */
KVTC_DEF kvtc_status kvtc_cuda_tc_record_offsets(const kvtc_cuda_tc *plan, size_t n_tokens, size_t *offsets,
                                                 size_t *lengths, size_t count);
/* Device workspace bytes for compress/decompress/encode/decode of n_tokens (256-byte aligned pointer). */
KVTC_DEF kvtc_status kvtc_cuda_tc_workspace_bytes(const kvtc_cuda_tc *plan, size_t n_tokens, size_t *bytes);

/* Compress n_tokens of every group from the cache into d_records (16-byte aligned, records_bytes from
 * kvtc_cuda_tc_records_bytes). d_status (may be NULL): n_groups int32, the status of each record.
 * timing may be NULL. */
KVTC_DEF kvtc_status kvtc_cuda_tc_compress(const kvtc_cuda_tc *plan, const kvtc_cuda_tc_cache *cache, size_t n_tokens,
                                           void *d_records, size_t records_bytes, int32_t *d_status,
                                           void *d_workspace, size_t workspace_bytes, kvtc_cuda_tc_timing *timing,
                                           cudaStream_t stream);
/* Check and decompress the records back into the cache (same chunk description). */
KVTC_DEF kvtc_status kvtc_cuda_tc_decompress(const kvtc_cuda_tc *plan, const void *d_records, size_t records_bytes,
                                             size_t n_tokens, const kvtc_cuda_tc_cache *cache, int32_t *d_status,
                                             void *d_workspace, size_t workspace_bytes, kvtc_cuda_tc_timing *timing,
                                             cudaStream_t stream);
/* kvtc_tc_encode of d_x [n_groups][n_tokens][dim] floats, one record per group. */
KVTC_DEF kvtc_status kvtc_cuda_tc_encode(const kvtc_cuda_tc *plan, const float *d_x, size_t n_tokens, void *d_records,
                                         size_t records_bytes, int32_t *d_status, void *d_workspace,
                                         size_t workspace_bytes, kvtc_cuda_tc_timing *timing, cudaStream_t stream);
/* kvtc_tc_decode of every record into d_x [n_groups][n_tokens][dim] floats (x_count >= that). */
KVTC_DEF kvtc_status kvtc_cuda_tc_decode(const kvtc_cuda_tc *plan, const void *d_records, size_t records_bytes,
                                         size_t n_tokens, float *d_x, size_t x_count, int32_t *d_status,
                                         void *d_workspace, size_t workspace_bytes, kvtc_cuda_tc_timing *timing,
                                         cudaStream_t stream);
/* Stage times in ms (after the stream passed the launch): ms[0 .. t->n_stages-1]; n >= t->n_stages. */
KVTC_DEF kvtc_status kvtc_cuda_tc_timing_read(const kvtc_cuda_tc_timing *t, float *ms, int n);
/* Name of a stage ("gather", "project", ...); never NULL. */
KVTC_DEF const char *kvtc_cuda_tc_stage_name(int decompress, int stage);

#ifdef __cplusplus
}
#endif
#endif /* KVTC_CUDA_TC_CUH_INCLUDED */

/* ======================================================================== */
#if defined(KVTC_CUDA_IMPLEMENTATION) && !defined(KVTC_CUDA_TC_IMPLEMENTATION_INCLUDED)
#define KVTC_CUDA_TC_IMPLEMENTATION_INCLUDED
#ifndef KVTC_CUDA_IMPLEMENTATION_INCLUDED
#error "kvtc_cuda_tc.cuh: the implementation needs kvtc_cuda.cuh's (it is included above with KVTC_CUDA_IMPLEMENTATION)"
#endif
#include <math.h>

/* >>tc-gpu
 * Shapes. A per group: [m][kp] (fp32, or fp16 for F16), the centred coded
 * tokens; Z: [m][na_pad] fp32; Z-hat: [m][na_pad] (fp32 or fp16); X-hat:
 * [m][dim] fp32. The tensor-core GEMM works on 32-bit words (one fp32/tf32
 * or two fp16 along k), tiles of 128 x BN x 32 words; rows past M or N are
 * zero-filled by cp.async, the k extent is padded with zeros in memory. */
#define KVTC__TCG_SEG 4096    /* checksum segment: 128 threads x 32 bytes */
#define KVTC__TCG_NA_ALIGN 128 /* n_active padding */
#define KVTC__TCG_LDS 36       /* shared-memory row stride of GEMM tiles, words: conflict-free fragment loads */
#define KVTC__TCG_NOUNI 0xffffu
#define KVTC__TCG_FNV_P 0x100000001b3ULL

typedef struct kvtc__tcg_group { /* per group, uploaded once */
    unsigned long long calib_id;
    int rank, na, row_bits, n_uniform;
    int quantizer, pad_;
} kvtc__tcg_group;

typedef struct kvtc__tcg_comp { /* per (group, active component), ascending component order */
    int bitpos;           /* first bit of the component in a token's row of indices */
    unsigned short width; /* 1..16 */
    unsigned short uidx;  /* ordinal among the record's UNIFORM components; KVTC__TCG_NOUNI for a codebook one */
    float sigma, inv_sigma;
} kvtc__tcg_comp;

typedef struct kvtc__tcg_call { /* per group and call, from kvtc__k_tcg_geom */
    unsigned long long rec, bytes, params, sink, window, idx, idx_bytes, seg0;
} kvtc__tcg_call;

typedef struct kvtc__tcg_geo {
    unsigned long long ns, nw, m, params, sink, window, idx, idx_bytes, bytes;
} kvtc__tcg_geo;

/* kvtc.h's record geometry (kvtc__tc_geom_of), on host and device alike. All terms fit 64 bits:
 * dim, rank <= 2^20, n < 2^32, row_bits <= 2^24. */
static __host__ __device__ __forceinline__ kvtc__tcg_geo kvtc__tcg_geom(unsigned long long dim, unsigned long long rank,
                                                                       unsigned long long nu, unsigned long long rb,
                                                                       unsigned long long n, unsigned long long n_sink,
                                                                       unsigned long long n_window) {
    kvtc__tcg_geo g;
    g.ns = n_sink < n ? n_sink : n;
    g.nw = n_window < n - g.ns ? n_window : n - g.ns;
    g.m = n - g.ns - g.nw;
    g.params = KVTC_TC_CHUNK_HEADER_BYTES + rank;
    g.sink = g.params + 8 * nu;
    g.window = g.sink + 2 * dim * g.ns;
    g.idx = g.window + 2 * dim * g.nw;
    g.idx_bytes = (g.m * rb + 7) / 8;
    g.bytes = g.idx + g.idx_bytes;
    return g;
}

/* Everything the kernels read, by value. */
struct kvtc__tcg_args {
    const kvtc__tcg_group *groups;
    const kvtc__tcg_comp *comps;
    const unsigned char *widths;
    const float *mean, *cent, *bnd;
    const double *inv_freq;
    int G, p, rank_max, na_pad, kp, mode;
    int hd, hs, rd_half, rd, style, rope, gl, gh, nlg, nhg, concat;
    long long n, ns, nw, m;
    const void *ck, *cv; /* compress: cache read */
    void *wk, *wv;       /* decompress: cache write */
    int dtype, bs, n_blocks, flat;
    long long start, layer_stride, tok_stride;
    const long long *positions;
    const int *block_table;
    double2 *rope_tab; /* [n][rd/2] (cos, sin) of every token's angles */
    const float *x_in;
    float *x_out;
    unsigned char *rec; /* records (decompress: only read) */
    kvtc__tcg_call *call;
    unsigned *tokflag, *gflag;
    unsigned long long *acc;
    int *gstat;
    void *A;      /* compress: the projection's A; decompress: X-hat (fp32) */
    void *Z;      /* compress: Z (fp32); decompress: Z-hat */
    float4 *cpar; /* (lo, scale, inv, qmax) per (group, active component) */
    unsigned char *L, *par;
    long long nseg;
    int *status;
};

struct kvtc__gemm_args {
    const unsigned *A, *B, *Blo; /* 32-bit words */
    long long sA, sB, sC, sBias; /* per-group strides: words, words, floats, floats */
    int lda, ldb, ldc, M, N, Kw, K_exact, n_by_na, k_by_na, epw;
    const kvtc__tcg_group *groups;
    float *C;
    const float *bias;
};

/* ---- host helpers ---------------------------------------------------------- */
static int kvtc__tcg_mul(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > (size_t)-1 / a) return 0;
    *out = a * b;
    return 1;
}
/* Reserve n bytes at *off (256-byte aligned); 0 on overflow. */
static int kvtc__tcg_take(size_t *off, size_t n, size_t *at) {
    size_t o = (*off + 255) & ~(size_t)255;
    if (o < *off || n > (size_t)-1 - o) return 0;
    *at = o;
    *off = o + n;
    return 1;
}
static int kvtc__tcg_epw(kvtc_cuda_tc_gemm g) { return g == KVTC_CUDA_TC_GEMM_F16 ? 2 : 1; }
static int kvtc__tcg_sink(const kvtc_tc *tc) { return tc->params.n_sink < 0 ? 0 : tc->params.n_sink; }
static int kvtc__tcg_window(const kvtc_tc *tc) { return tc->params.n_window < 0 ? 0 : tc->params.n_window; }
static unsigned long long kvtc__tcg_nuni(const kvtc_tc *tc) {
    unsigned long long nu = 0;
    int i;
    for (i = 0; i < tc->calib->rank; ++i)
        if (tc->widths[i] > 0 && (tc->params.quantizer == KVTC_TC_QUANT_UNIFORM || tc->widths[i] > 8)) ++nu;
    return nu;
}

KVTC_DEF kvtc_status kvtc_cuda_tc_params_resolved(const kvtc_cuda_tc_params *p, kvtc_cuda_tc_params *out) {
    kvtc_cuda_tc_params r;
    long long dim, groups;
    if (!p || !out) return KVTC_ERR_NULL;
    r = *p;
    if (r.head_dim < 2 || r.head_dim > KVTC_MAX_HEAD_DIM || r.head_dim % 2 != 0) return KVTC_ERR_DIM;
    if (r.n_layers < 1 || r.n_kv_heads < 1) return KVTC_ERR_ARG;
    if (r.group_layers == 0) r.group_layers = 1;
    if (r.group_heads == 0) r.group_heads = 1;
    if (r.group_layers < 1 || r.group_heads < 1 || r.n_layers % r.group_layers != 0 ||
        r.n_kv_heads % r.group_heads != 0)
        return KVTC_ERR_ARG;
    if (r.kv == KVTC_CUDA_TC_KV_DEFAULT) r.kv = KVTC_CUDA_TC_KV_SEPARATE;
    if ((int)r.kv < 0 || r.kv >= KVTC_CUDA_TC_KV_COUNT) return KVTC_ERR_ARG;
    if (r.gemm == KVTC_CUDA_TC_GEMM_DEFAULT) r.gemm = KVTC_CUDA_TC_GEMM_TF32X3;
    if ((int)r.gemm < 0 || r.gemm >= KVTC_CUDA_TC_GEMM_COUNT) return KVTC_ERR_ARG;
    if (r.keys_no_rope != 0 && r.keys_no_rope != 1) return KVTC_ERR_ARG;
    r.rope.head_dim = r.head_dim;
    r.rope.n_heads = 1;
    if (r.rope.style == KVTC_ROPE_DEFAULT) r.rope.style = KVTC_ROPE_HALF;
    if (r.rope.style != KVTC_ROPE_HALF && r.rope.style != KVTC_ROPE_INTERLEAVED) return KVTC_ERR_ARG;
    if (r.rope.rotary_dim == 0) r.rope.rotary_dim = r.head_dim;
    if (r.rope.rotary_dim < 2 || r.rope.rotary_dim > r.head_dim || r.rope.rotary_dim % 2 != 0) return KVTC_ERR_ARG;
    if (r.rope.theta == 0.0) r.rope.theta = 10000.0;
    if (!(r.rope.theta > 0.0) || !isfinite(r.rope.theta)) return KVTC_ERR_ARG;
    dim = (long long)(r.kv == KVTC_CUDA_TC_KV_CONCAT ? 2 : 1) * r.group_layers * r.group_heads * r.head_dim;
    if (dim > KVTC_TC_MAX_DIM) return KVTC_ERR_DIM;
    groups = (long long)(r.kv == KVTC_CUDA_TC_KV_CONCAT ? 1 : 2) * (r.n_layers / r.group_layers) *
             (r.n_kv_heads / r.group_heads);
    if (groups > 65535) return KVTC_ERR_ARG; /* grid z */
    *out = r;
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_cuda_tc_groups(const kvtc_cuda_tc_params *p, int *n_groups, int *dim) {
    kvtc_cuda_tc_params r;
    kvtc_status st;
    if (!n_groups || !dim) return KVTC_ERR_NULL;
    if ((st = kvtc_cuda_tc_params_resolved(p, &r)) != KVTC_OK) return st;
    *n_groups = (r.kv == KVTC_CUDA_TC_KV_CONCAT ? 1 : 2) * (r.n_layers / r.group_layers) * (r.n_kv_heads / r.group_heads);
    *dim = (r.kv == KVTC_CUDA_TC_KV_CONCAT ? 2 : 1) * r.group_layers * r.group_heads * r.head_dim;
    return KVTC_OK;
}

typedef struct kvtc__tcg_plan_layout {
    size_t groups, comps, widths, mean, inv_freq, cent, bnd, v, v_lo, vt, vt_lo, bytes, upload;
    int rank_max, na_max, na_pad, kp, n_sink, n_window, uniform;
} kvtc__tcg_plan_layout;

/* Checks the coders against the parameters and lays out the plan. */
static kvtc_status kvtc__tcg_plan_of(const kvtc_cuda_tc_params *p, const kvtc_tc *const *tcs, int n_groups,
                                     kvtc_cuda_tc_params *r, kvtc__tcg_plan_layout *L) {
    int G, dim, g, epw;
    size_t off = 0, a, b, es;
    kvtc_status st;
    if (!p || !tcs) return KVTC_ERR_NULL;
    if ((st = kvtc_cuda_tc_params_resolved(p, r)) != KVTC_OK) return st;
    if ((st = kvtc_cuda_tc_groups(r, &G, &dim)) != KVTC_OK) return st;
    if (n_groups != G) return KVTC_ERR_ARG;
    memset(L, 0, sizeof *L);
    for (g = 0; g < G; ++g) {
        const kvtc_tc *tc = tcs[g];
        if (!tc || !tc->calib || !tc->widths || !tc->sigma || (tc->n_active > 0 && !tc->basis_t)) return KVTC_ERR_NULL;
        if (tc->calib->dim != dim) return KVTC_ERR_DIM;
        if (tc->calib->rank < 1 || tc->calib->rank > dim || tc->n_active < 0 || tc->n_active > tc->calib->rank)
            return KVTC_ERR_ARG;
        if (g == 0) {
            L->n_sink = kvtc__tcg_sink(tc);
            L->n_window = kvtc__tcg_window(tc);
        } else if (kvtc__tcg_sink(tc) != L->n_sink || kvtc__tcg_window(tc) != L->n_window) {
            return KVTC_ERR_ARG; /* one m for all groups */
        }
        if (tc->calib->rank > L->rank_max) L->rank_max = tc->calib->rank;
        if (tc->n_active > L->na_max) L->na_max = tc->n_active;
        if (kvtc__tcg_nuni(tc) > 0) L->uniform = 1;
    }
    epw = kvtc__tcg_epw(r->gemm);
    L->na_pad = (L->na_max + KVTC__TCG_NA_ALIGN - 1) / KVTC__TCG_NA_ALIGN * KVTC__TCG_NA_ALIGN;
    if (L->na_pad == 0) L->na_pad = KVTC__TCG_NA_ALIGN;
    L->kp = (dim + 32 * epw - 1) / (32 * epw) * (32 * epw);
    es = r->gemm == KVTC_CUDA_TC_GEMM_F16 ? 2 : 4;
    if (!kvtc__tcg_take(&off, (size_t)G * sizeof(kvtc__tcg_group), &L->groups) ||
        !kvtc__tcg_mul((size_t)G * (size_t)L->na_pad, sizeof(kvtc__tcg_comp), &a) || !kvtc__tcg_take(&off, a, &L->comps) ||
        !kvtc__tcg_take(&off, (size_t)G * (size_t)L->rank_max, &L->widths) ||
        !kvtc__tcg_mul((size_t)G * (size_t)dim, sizeof(float), &a) || !kvtc__tcg_take(&off, a, &L->mean) ||
        !kvtc__tcg_take(&off, (size_t)(r->rope.rotary_dim / 2) * sizeof(double), &L->inv_freq) ||
        !kvtc__tcg_take(&off, 8 * 256 * sizeof(float), &L->cent) ||
        !kvtc__tcg_take(&off, 8 * 255 * sizeof(float), &L->bnd))
        return KVTC_ERR_OVERFLOW;
    if (!kvtc__tcg_mul((size_t)G * (size_t)L->na_pad, (size_t)L->kp, &a) || !kvtc__tcg_mul(a, es, &a) ||
        !kvtc__tcg_mul((size_t)G * (size_t)dim, (size_t)L->na_pad, &b) || !kvtc__tcg_mul(b, es, &b))
        return KVTC_ERR_OVERFLOW;
    if (!kvtc__tcg_take(&off, a, &L->v) || !kvtc__tcg_take(&off, b, &L->vt)) return KVTC_ERR_OVERFLOW;
    if (r->gemm == KVTC_CUDA_TC_GEMM_TF32X3) {
        if (!kvtc__tcg_take(&off, a, &L->v_lo) || !kvtc__tcg_take(&off, b, &L->vt_lo)) return KVTC_ERR_OVERFLOW;
    }
    L->bytes = off;
    if (!kvtc__tcg_mul((size_t)dim * (size_t)(L->na_max > 0 ? L->na_max : 1), sizeof(float), &L->upload))
        return KVTC_ERR_OVERFLOW;
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_cuda_tc_plan_bytes(const kvtc_cuda_tc_params *p, const kvtc_tc *const *tcs, int n_groups,
                                             size_t *plan_bytes, size_t *upload_bytes) {
    kvtc_cuda_tc_params r;
    kvtc__tcg_plan_layout L;
    kvtc_status st;
    if (!plan_bytes || !upload_bytes) return KVTC_ERR_NULL;
    if ((st = kvtc__tcg_plan_of(p, tcs, n_groups, &r, &L)) != KVTC_OK) return st;
    *plan_bytes = L.bytes;
    *upload_bytes = L.upload;
    return KVTC_OK;
}

/* ---- device helpers -------------------------------------------------------- */
static __device__ __forceinline__ unsigned kvtc__tcg_tf32(float x) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
    return r;
}
static __device__ __forceinline__ void kvtc__tcg_cp16(unsigned *dst, const void *src, int bytes) {
    unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(bytes) : "memory");
}
static __device__ __forceinline__ void kvtc__tcg_cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> static __device__ __forceinline__ void kvtc__tcg_cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }
static __device__ __forceinline__ void kvtc__tcg_mma_tf32(float *d, const unsigned *a, const unsigned *b) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
static __device__ __forceinline__ void kvtc__tcg_mma_f16(float *d, const unsigned *a, const unsigned *b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
static __device__ __forceinline__ unsigned kvtc__tcg_ld32(const unsigned char *p) {
    return (unsigned)p[0] | ((unsigned)p[1] << 8) | ((unsigned)p[2] << 16) | ((unsigned)p[3] << 24);
}
static __device__ __forceinline__ unsigned long long kvtc__tcg_ld64(const unsigned char *p) {
    return (unsigned long long)kvtc__tcg_ld32(p) | ((unsigned long long)kvtc__tcg_ld32(p + 4) << 32);
}
static __device__ __forceinline__ void kvtc__tcg_st32(unsigned char *p, unsigned v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}
static __device__ __forceinline__ unsigned long long kvtc__tcg_fnv_pow(unsigned long long e) {
    unsigned long long r = 1, b = KVTC__TCG_FNV_P;
    while (e) {
        if (e & 1) r *= b;
        b *= b;
        e >>= 1;
    }
    return r;
}
/* kvtc__quantize of kvtc.h: cells below y among 2^bits - 1 ascending boundaries. */
static __device__ __forceinline__ unsigned kvtc__tcg_cell(const float *bnd, int bits, float y) {
    unsigned lo = 0;
    for (unsigned step = 1u << (bits - 1); step > 0; step >>= 1)
        if (y > bnd[lo + step - 1]) lo += step;
    return lo;
}
/* (kind, layer, head) of part `part` of group g's vector. */
static __device__ __forceinline__ void kvtc__tcg_part(const kvtc__tcg_args &a, int g, int part, int *kind, int *layer,
                                                      int *head) {
    const int h = part % a.gh, rest = part / a.gh, l = rest % a.gl, k = rest / a.gl;
    int lgi, hgi, kd;
    if (a.concat) {
        kd = k;
        lgi = g / a.nhg;
        hgi = g % a.nhg;
    } else {
        const int per = a.nlg * a.nhg, r2 = g % per;
        kd = g / per;
        lgi = r2 / a.nhg;
        hgi = r2 % a.nhg;
    }
    *kind = kd;
    *layer = lgi * a.gl + l;
    *head = hgi * a.gh + h;
}
/* Coordinates (j0, j1) inside the head of pair slot `slot`, and whether it is a RoPE pair. */
static __device__ __forceinline__ int kvtc__tcg_slot(const kvtc__tcg_args &a, int kind, int slot, int *j0, int *j1) {
    if (kind == 0 && a.rope && !a.flat) {
        if (slot < a.rd_half) {
            *j0 = a.style == KVTC_ROPE_HALF ? slot : 2 * slot;
            *j1 = a.style == KVTC_ROPE_HALF ? slot + a.rd_half : 2 * slot + 1;
            return 1;
        }
        *j0 = a.rd + 2 * (slot - a.rd_half);
        *j1 = *j0 + 1;
        return 0;
    }
    *j0 = 2 * slot;
    *j1 = 2 * slot + 1;
    return 0;
}
/* kvtc.h's RoPE of one pair in double, rounded once to float (sign -1 removes, +1 applies); no fma.
 * cs = (cos a, sin a) of the token's angle a = pos * inv_freq (kvtc__k_tcg_rope_table). */
static __device__ __forceinline__ void kvtc__tcg_rope(double2 cs, double sign, float *v0, float *v1) {
    const double c = cs.x, s = sign * cs.y;
    const double x0 = (double)*v0, x1 = (double)*v1;
    *v0 = __double2float_rn(__dsub_rn(__dmul_rn(x0, c), __dmul_rn(x1, s)));
    *v1 = __double2float_rn(__dadd_rn(__dmul_rn(x0, s), __dmul_rn(x1, c)));
}

/* ---- upload ------------------------------------------------------------------ */
/* kvtc__k_tcg_prep_basis   (setup)   grid-stride, block 256
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 30 regs, no smem; 0 spills
 * Builds one group's V [na_pad][kp] and V^T [dim][na_pad] from the coder's basis_t [dim][na] in d_upload:
 * fp32 (EXACT), tf32 hi/lo (TF32X3) or fp16 (F16); zero padding. */
__global__ void __launch_bounds__(256) kvtc__k_tcg_prep_basis(const float *__restrict__ bt, int p, int na, int na_pad,
                                                              int kp, int mode, void *v, void *v_lo, void *vt,
                                                              void *vt_lo) {
    const long long nv = (long long)na_pad * kp, nt = (long long)p * na_pad, tot = nv > nt ? nv : nt;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < tot; i += (long long)gridDim.x * blockDim.x) {
        for (int which = 0; which < 2; ++which) {
            float val;
            long long e = i;
            void *dst = which ? vt : v, *dlo = which ? vt_lo : v_lo;
            if (which == 0) {
                if (i >= nv) continue;
                const int k = (int)(i / kp), c = (int)(i % kp);
                val = (k < na && c < p) ? bt[(long long)c * na + k] : 0.0f;
            } else {
                if (i >= nt) continue;
                const int c = (int)(i / na_pad), k = (int)(i % na_pad);
                val = k < na ? bt[(long long)c * na + k] : 0.0f;
            }
            if (mode == KVTC_CUDA_TC_GEMM_F16) {
                ((__half *)dst)[e] = __float2half_rn(val);
            } else if (mode == KVTC_CUDA_TC_GEMM_TF32X3) {
                const unsigned hi = kvtc__tcg_tf32(val);
                ((unsigned *)dst)[e] = hi;
                ((unsigned *)dlo)[e] = kvtc__tcg_tf32(val - __uint_as_float(hi));
            } else {
                ((float *)dst)[e] = val;
            }
        }
    }
}

/* ---- compress and decompress kernels ---------------------------------------- */
/* kvtc__k_tcg_geom   CPU twin: kvtc__tc_geom_of per record, then offsets
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 38 regs, 16400 B static smem; 0 spills
 * grid 1, block 1024: record geometry, 16-byte aligned offsets and checksum segments of every group
 * (block-wide scans, 1024 groups per round). */
__global__ void __launch_bounds__(1024) kvtc__k_tcg_geom(kvtc__tcg_args a) {
    __shared__ unsigned long long s_off[1024], s_seg[1024], s_carry[2];
    const int tid = threadIdx.x;
    if (tid == 0) s_carry[0] = s_carry[1] = 0;
    __syncthreads();
    for (int base = 0; base < a.G; base += 1024) {
        const int g = base + tid;
        unsigned long long al = 0, ns = 0;
        kvtc__tcg_geo geo;
        memset(&geo, 0, sizeof geo);
        if (g < a.G) {
            const kvtc__tcg_group gr = a.groups[g];
            geo = kvtc__tcg_geom((unsigned long long)a.p, (unsigned long long)gr.rank, (unsigned long long)gr.n_uniform,
                                 (unsigned long long)gr.row_bits, (unsigned long long)a.n, (unsigned long long)a.ns,
                                 (unsigned long long)a.nw);
            al = (geo.bytes + 15) & ~15ull;
            ns = (geo.bytes + KVTC__TCG_SEG - 1) / KVTC__TCG_SEG;
        }
        s_off[tid] = al;
        s_seg[tid] = ns;
        __syncthreads();
        for (int o = 1; o < 1024; o <<= 1) {
            const unsigned long long u = tid >= o ? s_off[tid - o] : 0, w = tid >= o ? s_seg[tid - o] : 0;
            __syncthreads();
            s_off[tid] += u;
            s_seg[tid] += w;
            __syncthreads();
        }
        if (g < a.G) {
            kvtc__tcg_call c;
            c.rec = s_carry[0] + s_off[tid] - al;
            c.seg0 = s_carry[1] + s_seg[tid] - ns;
            c.bytes = geo.bytes;
            c.params = geo.params;
            c.sink = geo.sink;
            c.window = geo.window;
            c.idx = geo.idx;
            c.idx_bytes = geo.idx_bytes;
            a.call[g] = c;
        }
        __syncthreads();
        if (tid == 1023) {
            s_carry[0] += s_off[1023];
            s_carry[1] += s_seg[1023];
        }
        __syncthreads();
    }
}

/* kvtc__k_tcg_rope_table   CPU twin: the angles of kvtc__rope
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 30 regs; 40-byte stack frame: libdevice cos/sin large-argument reduction (0 spill stores/loads); 0 spills
 * grid ceil(n * rotary_dim/2 / 256), block 256: (cos, sin) of pos * inv_freq[k] per token and pair, in double,
 * once per call instead of once per (layer, head, token, pair) (libdevice cos/sin: 40-byte stack frame for the
 * large-argument reduction, no spills). */
__global__ void __launch_bounds__(256) kvtc__k_tcg_rope_table(kvtc__tcg_args a) {
    const long long i = (long long)blockIdx.x * 256 + threadIdx.x;
    if (i >= a.n * a.rd_half) return;
    const long long t = i / a.rd_half;
    const int k = (int)(i - t * a.rd_half);
    const double pos = a.positions ? (double)a.positions[t] : (double)(a.start + t);
    const double ang = __dmul_rn(pos, a.inv_freq[k]);
    a.rope_tab[i] = make_double2(cos(ang), sin(ang));
}

/* kvtc__k_tcg_gather   CPU twin: (caller's gather) + kvtc_rope_remove + kvtc_tc_encode's centring and fp16 rows
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 52 regs, no smem; 0 spills
 * grid (ceil(dim/2 / 256) or 1, ceil(n / tpb) capped at 65535 (strided), n_groups), block 256; one thread per
 * coordinate pair of a token (tpb tokens per block when dim/2 < 256). Keys: RoPE pairs in double.
 * Coded tokens: x - mu into A; sink/window tokens: fp16 into the record; NaN/Inf and fp16 overflow flagged per token. */
__global__ void __launch_bounds__(256) kvtc__k_tcg_gather(kvtc__tcg_args a, int tpb) {
    const int g = blockIdx.z, hp = a.p / 2;
    int lt, item;
    if (tpb > 1) {
        lt = threadIdx.x / hp;
        item = threadIdx.x - lt * hp;
        if (lt >= tpb) return;
    } else {
        lt = 0;
        item = blockIdx.x * 256 + threadIdx.x;
        if (item >= hp) return;
    }
    const int part = item / a.hs, slot = item - part * a.hs;
    int kind, layer, head, j0, j1;
    kvtc__tcg_part(a, g, part, &kind, &layer, &head);
    const int rot = kvtc__tcg_slot(a, kind, slot, &j0, &j1);
    const int c0 = part * a.hd + j0, c1 = part * a.hd + j1;
    const kvtc__tcg_call cl = a.call[g];
    unsigned char *rec = a.rec + cl.rec;
    const float mu0 = a.mean[(long long)g * a.p + c0], mu1 = a.mean[(long long)g * a.p + c1];
    const void *src = kind ? a.cv : a.ck;
    for (long long t = (long long)blockIdx.y * tpb + lt; t < a.n; t += (long long)gridDim.y * tpb) {
        float v0 = 0.0f, v1 = 0.0f;
        unsigned fl = 0;
        if (a.flat) {
            const float *x = a.x_in + ((long long)g * a.n + t) * a.p;
            v0 = x[c0];
            v1 = x[c1];
        } else {
            const long long tok = a.start + t;
            const int pg = a.block_table[tok / a.bs];
            if (pg < 0 || pg >= a.n_blocks) {
                fl = 4;
            } else {
                const long long base = (long long)layer * a.layer_stride +
                                       ((long long)pg * a.bs + tok % a.bs) * a.tok_stride + (long long)head * a.hd;
                v0 = kvtc__load(src, base + j0, a.dtype);
                v1 = kvtc__load(src, base + j1, a.dtype);
            }
            if (rot) kvtc__tcg_rope(a.rope_tab[t * a.rd_half + slot], -1.0, &v0, &v1);
        }
        if (!isfinite(v0) || !isfinite(v1)) fl |= 1;
        if (t < a.ns || t >= a.n - a.nw) {
            const unsigned short h0 = __half_as_ushort(__float2half_rn(v0)), h1 = __half_as_ushort(__float2half_rn(v1));
            if (!(fl & 1) && ((h0 & 0x7c00u) == 0x7c00u || (h1 & 0x7c00u) == 0x7c00u)) fl |= 2;
            unsigned char *row = rec + (t < a.ns ? cl.sink + (unsigned long long)t * a.p * 2
                                                 : cl.window + (unsigned long long)(t - (a.n - a.nw)) * a.p * 2);
            row[2 * c0] = (unsigned char)h0;
            row[2 * c0 + 1] = (unsigned char)(h0 >> 8);
            row[2 * c1] = (unsigned char)h1;
            row[2 * c1 + 1] = (unsigned char)(h1 >> 8);
        } else {
            const long long o = ((long long)g * a.m + (t - a.ns)) * a.kp;
            const float x0 = __fsub_rn(v0, mu0), x1 = __fsub_rn(v1, mu1);
            if (a.mode == KVTC_CUDA_TC_GEMM_F16) {
                ((__half *)a.A)[o + c0] = __float2half_rn(x0);
                ((__half *)a.A)[o + c1] = __float2half_rn(x1);
            } else {
                ((float *)a.A)[o + c0] = x0;
                ((float *)a.A)[o + c1] = x1;
            }
        }
        if (fl) {
            atomicOr(&a.tokflag[(long long)g * a.n + t], fl);
            atomicOr(&a.gflag[g], fl);
        }
    }
}

/* kvtc__k_tcg_padcols   grid-stride, block 256: zero A's columns dim..kp-1 (only when dim is not a multiple of the k tile).
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 30 regs, no smem; 0 spills */
__global__ void __launch_bounds__(256) kvtc__k_tcg_padcols(kvtc__tcg_args a) {
    const long long w = a.kp - a.p, tot = (long long)a.G * a.m * w;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < tot; i += (long long)gridDim.x * blockDim.x) {
        const long long row = i / w, c = a.p + i % w;
        if (a.mode == KVTC_CUDA_TC_GEMM_F16) ((__half *)a.A)[row * a.kp + c] = __float2half_rn(0.0f);
        else ((float *)a.A)[row * a.kp + c] = 0.0f;
    }
}

/* kvtc__k_tcg_gemm<MODE, WN>   CPU twin: kvtc__gemm (projection and reconstruction)
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): <0,4> (TF32X3) 141 regs, <1,4> (F16) 134 regs, 110592 B dynamic smem each; <1,8> (F16) 242 regs, 165888 B dynamic smem; 1 block/SM; 0 spills
 * grid (ceil(M/128), ceil(N/BN), n_groups), block 256 (8 warps as 2 x 4, warp tile 64 x 8 WN), BN = 32 WN,
 * tiles of 32 k-words through cp.async (MODE 0: 2 stages of A fp32 + B hi + B lo; MODE 1: 3 stages of A + B),
 * shared rows padded to 36 words (conflict-free fragment loads).
 * MODE 0 = TF32X3: A split into tf32 hi/lo in registers, B pre-split; 3 mma.m16n8k8 per fragment pair.
 * MODE 1 = F16: 1 mma.m16n8k16 per fragment pair. fp32 accumulators; C = acc (+ bias[n]). */
template <int MODE, int WN>
__global__ void __launch_bounds__(256) kvtc__k_tcg_gemm(kvtc__gemm_args a) {
    constexpr int BM = 128, BN = 32 * WN, NB = MODE == 0 ? 2 : 1, ST = MODE == 0 ? 2 : 3, LDS = KVTC__TCG_LDS;
    extern __shared__ __align__(16) unsigned kvtc__tcg_smem[];
    const int g = blockIdx.z, m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
    const int na = a.groups[g].na;
    const int N = a.n_by_na ? min(a.N, na) : a.N;
    if (n0 >= N) return;
    int Kw = a.Kw;
    if (a.k_by_na) Kw = min(Kw, (na + 32 * a.epw - 1) / (32 * a.epw) * 32);
    const int nk = Kw / 32;
    const unsigned *A = a.A + (long long)g * a.sA, *B = a.B + (long long)g * a.sB;
    const unsigned *Bl = MODE == 0 ? a.Blo + (long long)g * a.sB : B;
    unsigned *As = kvtc__tcg_smem, *Bs = As + ST * BM * LDS;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gq = lane >> 2, tq = lane & 3;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * (8 * WN);
    float acc[4][WN][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < WN; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;
    auto load = [&](int st, int kb) {
        const int k0 = kb * 32;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int c = tid + i * 256, r = c >> 3, q = (c & 7) * 4, gr = m0 + r;
            kvtc__tcg_cp16(As + (st * BM + r) * LDS + q, A + (long long)(gr < a.M ? gr : 0) * a.lda + k0 + q, gr < a.M ? 16 : 0);
        }
#pragma unroll
        for (int h = 0; h < NB; ++h) {
            const unsigned *src = h ? Bl : B;
#pragma unroll
            for (int i = 0; i < BN / 32; ++i) {
                const int c = tid + i * 256, r = c >> 3, q = (c & 7) * 4, gn = n0 + r;
                kvtc__tcg_cp16(Bs + ((st * NB + h) * BN + r) * LDS + q, src + (long long)(gn < N ? gn : 0) * a.ldb + k0 + q,
                           gn < N ? 16 : 0);
            }
        }
    };
#pragma unroll
    for (int s = 0; s < ST - 1; ++s) {
        if (s < nk) load(s, s);
        kvtc__tcg_cp_commit();
    }
    for (int kb = 0; kb < nk; ++kb) {
        kvtc__tcg_cp_wait<ST - 2>();
        __syncthreads();
        if (kb + ST - 1 < nk) load((kb + ST - 1) % ST, kb + ST - 1);
        kvtc__tcg_cp_commit();
        const int st = kb % ST;
        const unsigned *as = As + st * BM * LDS, *bs = Bs + st * NB * BN * LDS;
#pragma unroll
        for (int ks = 0; ks < 4; ++ks) {
            const int kk = ks * 8 + tq;
            unsigned af[4][4], bf[WN][2];
#pragma unroll
            for (int mi = 0; mi < 4; ++mi) {
                const unsigned *p0 = as + (wm + mi * 16 + gq) * LDS + kk;
                af[mi][0] = p0[0];
                af[mi][1] = p0[8 * LDS];
                af[mi][2] = p0[4];
                af[mi][3] = p0[8 * LDS + 4];
            }
#pragma unroll
            for (int ni = 0; ni < WN; ++ni) {
                const unsigned *q0 = bs + (wn + ni * 8 + gq) * LDS + kk;
                bf[ni][0] = q0[0];
                bf[ni][1] = q0[4];
            }
            if constexpr (MODE == 0) {
                unsigned bl[WN][2], ah[4][4], al[4][4];
#pragma unroll
                for (int ni = 0; ni < WN; ++ni) {
                    const unsigned *q0 = bs + (BN + wn + ni * 8 + gq) * LDS + kk;
                    bl[ni][0] = q0[0];
                    bl[ni][1] = q0[4];
                }
#pragma unroll
                for (int mi = 0; mi < 4; ++mi)
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const float x = __uint_as_float(af[mi][e]);
                        ah[mi][e] = kvtc__tcg_tf32(x);
                        al[mi][e] = kvtc__tcg_tf32(x - __uint_as_float(ah[mi][e]));
                    }
#pragma unroll
                for (int mi = 0; mi < 4; ++mi)
#pragma unroll
                    for (int ni = 0; ni < WN; ++ni) {
                        kvtc__tcg_mma_tf32(acc[mi][ni], al[mi], bf[ni]);
                        kvtc__tcg_mma_tf32(acc[mi][ni], ah[mi], bl[ni]);
                        kvtc__tcg_mma_tf32(acc[mi][ni], ah[mi], bf[ni]);
                    }
            } else {
#pragma unroll
                for (int mi = 0; mi < 4; ++mi)
#pragma unroll
                    for (int ni = 0; ni < WN; ++ni) kvtc__tcg_mma_f16(acc[mi][ni], af[mi], bf[ni]);
            }
        }
    }
    kvtc__tcg_cp_wait<0>();
    float *C = a.C + (long long)g * a.sC;
    const float *bias = a.bias ? a.bias + (long long)g * a.sBias : NULL;
#pragma unroll
    for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < WN; ++ni)
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
                const int row = m0 + wm + mi * 16 + gq + hh * 8;
                if (row >= a.M) continue;
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const int col = n0 + wn + ni * 8 + 2 * tq + e;
                    if (col < N) C[(long long)row * a.ldc + col] = acc[mi][ni][hh * 2 + e] + (bias ? bias[col] : 0.0f);
                }
            }
}

/* kvtc__k_tcg_gemm_exact   CPU twin: kvtc__gemm, bit for bit
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 48 regs, 8704 B static smem; 0 spills
 * grid (ceil(M/64), ceil(N/64), n_groups), block 256 (16 x 16 threads, 4 x 4 outputs each), k tiles of 16 in
 * shared memory; every output summed over k in increasing order as c = c + a*b (two roundings, no fma),
 * starting from bias[n] (reconstruction: mu) or 0, as kvtc.h does. */
__global__ void __launch_bounds__(256) kvtc__k_tcg_gemm_exact(kvtc__gemm_args a) {
    __shared__ float As[16][68], Bs[16][68];
    const int g = blockIdx.z, m0 = blockIdx.x * 64, n0 = blockIdx.y * 64, tid = threadIdx.x;
    const int na = a.groups[g].na;
    const int N = a.n_by_na ? min(a.N, na) : a.N;
    if (n0 >= N) return;
    const int K = a.k_by_na ? na : a.K_exact;
    const float *A = (const float *)a.A + (long long)g * a.sA, *B = (const float *)a.B + (long long)g * a.sB;
    const float *bias = a.bias ? a.bias + (long long)g * a.sBias : NULL;
    const int tx = tid & 15, ty = tid >> 4;
    float c[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int col = n0 + tx * 4 + j;
            c[i][j] = (bias && col < N) ? bias[col] : 0.0f;
        }
    for (int k0 = 0; k0 < K; k0 += 16) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int e = tid + i * 256, r = e >> 4, kq = e & 15;
            const bool kin = k0 + kq < K;
            As[kq][r] = (m0 + r < a.M && kin) ? A[(long long)(m0 + r) * a.lda + k0 + kq] : 0.0f;
            Bs[kq][r] = (n0 + r < N && kin) ? B[(long long)(n0 + r) * a.ldb + k0 + kq] : 0.0f;
        }
        __syncthreads();
        const int kmax = min(16, K - k0);
        for (int kk = 0; kk < kmax; ++kk) {
            float av[4], bv[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) av[i] = As[kk][ty * 4 + i];
#pragma unroll
            for (int j = 0; j < 4; ++j) bv[j] = Bs[kk][tx * 4 + j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) c[i][j] = __fadd_rn(c[i][j], __fmul_rn(av[i], bv[j]));
        }
        __syncthreads();
    }
    float *C = a.C + (long long)g * a.sC;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int row = m0 + ty * 4 + i;
        if (row >= a.M) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int col = n0 + tx * 4 + j;
            if (col < N) C[(long long)row * a.ldc + col] = c[i][j];
        }
    }
}

/* Byte i (0..63) of a record header; the checksum (48..55) is written last. */
static __device__ __forceinline__ unsigned char kvtc__tcg_hdr_byte(int i, const kvtc__tcg_args &a,
                                                                    const kvtc__tcg_group &gr, unsigned long long bytes) {
    unsigned long long w;
    switch (i >> 3) {
    case 0: w = 0x5243544bull | (1ull << 32) | ((unsigned long long)gr.quantizer << 48); break; /* "KTCR", 1, q, 0 */
    case 1: w = (unsigned long long)a.p | ((unsigned long long)gr.rank << 32); break;
    case 2: w = (unsigned long long)a.n | ((unsigned long long)a.ns << 32); break;
    case 3: w = (unsigned long long)a.nw | ((unsigned long long)gr.row_bits << 32); break;
    case 4: w = gr.calib_id; break;
    case 5: w = bytes; break;
    default: w = 0; break;
    }
    return (unsigned char)(w >> (8 * (i & 7)));
}

/* kvtc__k_tcg_fit   CPU twin: kvtc__tc_fit + the header of kvtc_tc_encode
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 32 regs, 2048 B static smem; 0 spills
 * grid (na_pad / 32, n_groups), block 256 (32 components x 8 token lanes). Block x = 0 also writes the
 * header, the widths and zero rows for sink/window tokens that had NaN/Inf or overflowed fp16.
 * UNIFORM components: min/max over the coded tokens (z = 0 for NaN/Inf tokens), lo and scale
 * in fp32 as kvtc.h computes them, into the record and into cpar for the packer. */
__global__ void __launch_bounds__(256) kvtc__k_tcg_fit(kvtc__tcg_args a) {
    __shared__ float s_lo[8][32], s_hi[8][32];
    const int g = blockIdx.y, tid = threadIdx.x;
    const kvtc__tcg_group gr = a.groups[g];
    const kvtc__tcg_call cl = a.call[g];
    unsigned char *rec = a.rec + cl.rec;
    if (blockIdx.x == 0) {
        if (tid < 64) rec[tid] = kvtc__tcg_hdr_byte(tid, a, gr, cl.bytes);
        for (int i = tid; i < gr.rank; i += 256) rec[KVTC_TC_CHUNK_HEADER_BYTES + i] = a.widths[(long long)g * a.rank_max + i];
        if (a.m == 0) /* kvtc_tc_encode leaves them unwritten; zeros here */
            for (int i = tid; i < 8 * gr.n_uniform; i += 256) rec[cl.params + i] = 0;
        for (long long tt = 0; tt < a.ns + a.nw; ++tt) {
            const long long t = tt < a.ns ? tt : a.n - a.nw + (tt - a.ns);
            if (a.tokflag[(long long)g * a.n + t] & 3u) {
                unsigned char *row = rec + (t < a.ns ? cl.sink + (unsigned long long)t * a.p * 2
                                                     : cl.window + (unsigned long long)(t - (a.n - a.nw)) * a.p * 2);
                for (long long i = tid; i < 2LL * a.p; i += 256) row[i] = 0;
            }
        }
    }
    if (a.m == 0 || blockIdx.x * 32 >= gr.na) return;
    const int j = blockIdx.x * 32 + (tid & 31), r0 = tid >> 5;
    const bool act = j < gr.na;
    kvtc__tcg_comp c;
    memset(&c, 0, sizeof c);
    if (act) c = a.comps[(long long)g * a.na_pad + j];
    const bool uni = act && c.uidx != KVTC__TCG_NOUNI;
    if (__syncthreads_or(uni)) {
        float lo = INFINITY, hi = -INFINITY;
        if (uni) {
            const float *z = (const float *)a.Z + (long long)g * a.m * a.na_pad + j;
            const unsigned *fl = a.tokflag + (long long)g * a.n + a.ns;
            for (long long t = r0; t < a.m; t += 8) {
                const float v = (fl[t] & 1u) ? 0.0f : z[t * a.na_pad];
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
        }
        s_lo[r0][tid & 31] = lo;
        s_hi[r0][tid & 31] = hi;
        __syncthreads();
        if (uni && r0 == 0) {
            for (int r = 1; r < 8; ++r) {
                lo = s_lo[r][tid] < lo ? s_lo[r][tid] : lo;
                hi = s_hi[r][tid] > hi ? s_hi[r][tid] : hi;
            }
        }
        if (uni && r0 == 0) {
            const float qmax = (float)((1u << c.width) - 1u);
            double sc = ((double)hi - (double)lo) / (double)qmax;
            if (!(sc <= 3.4028234663852886e38)) {
                lo = 0.0f;
                sc = 0.0;
                atomicOr(&a.gflag[g], 2u);
            }
            const float scale = (float)sc, inv = scale > 0.0f ? 1.0f / scale : 0.0f;
            unsigned char *pp = rec + cl.params + 8ull * c.uidx;
            kvtc__tcg_st32(pp, __float_as_uint(lo));
            kvtc__tcg_st32(pp + 4, __float_as_uint(scale));
            a.cpar[(long long)g * a.na_pad + j] = make_float4(lo, scale, inv, qmax);
        }
    }
}

/* kvtc__k_tcg_pack   CPU twin: kvtc__tc_quantize + kvtc__pack_var_u16
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 32 regs, 8160 B static smem (codebook boundaries); 0 spills
 * grid (ceil(max words / 256), n_groups), block 256: one thread per 32-bit word of a record's index stream
 * (stream bits [32w, 32w + 32)); it finds the first field by binary search over the components' bit offsets,
 * quantizes every field that touches the word (codebook boundaries in shared memory) and writes the
 * word's bytes (the last word only up to the stream's end). */
__global__ void __launch_bounds__(256) kvtc__k_tcg_pack(kvtc__tcg_args a) {
    __shared__ float s_bnd[8 * 255];
    for (int i = threadIdx.x; i < 8 * 255; i += 256) s_bnd[i] = a.bnd[i];
    __syncthreads();
    const int g = blockIdx.y;
    const kvtc__tcg_group gr = a.groups[g];
    const long long R = gr.row_bits, nbits = a.m * R, w = (long long)blockIdx.x * 256 + threadIdx.x;
    if (R == 0 || w * 32 >= nbits) return;
    const kvtc__tcg_call cl = a.call[g];
    const kvtc__tcg_comp *comps = a.comps + (long long)g * a.na_pad;
    const float4 *cp = a.cpar + (long long)g * a.na_pad;
    const float *Z = (const float *)a.Z + (long long)g * a.m * a.na_pad;
    const unsigned *fl = a.tokflag + (long long)g * a.n + a.ns;
    const long long s0 = w * 32;
    long long t = s0 / R;
    const int off = (int)(s0 - t * R);
    int lo = 0, hi = gr.na - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if (comps[mid].bitpos <= off) lo = mid;
        else hi = mid - 1;
    }
    int j = lo, pos = comps[j].bitpos - off;
    unsigned long long word = 0;
    while (pos < 32) {
        const kvtc__tcg_comp c = comps[j];
        const float z = (fl[t] & 1u) ? 0.0f : Z[t * a.na_pad + j];
        unsigned q;
        if (c.uidx != KVTC__TCG_NOUNI) {
            const float4 pr = cp[j];
            float f = floorf(__fadd_rn(__fmul_rn(__fsub_rn(z, pr.x), pr.z), 0.5f));
            if (!(f > 0.0f)) f = 0.0f;
            if (f > pr.w) f = pr.w;
            q = (unsigned)f;
        } else {
            q = kvtc__tcg_cell(s_bnd + (c.width - 1) * 255, c.width, __fmul_rn(z, c.inv_sigma));
        }
        if (pos >= 0) word |= (unsigned long long)q << pos;
        else word |= (unsigned long long)q >> (-pos);
        pos += c.width;
        if (++j == gr.na) {
            j = 0;
            if (++t >= a.m) break;
        }
    }
    unsigned char *dst = a.rec + cl.rec + cl.idx + 4 * w;
    const long long left = (long long)cl.idx_bytes - 4 * w;
    const int nb = left < 4 ? (int)left : 4;
    for (int b = 0; b < nb; ++b) dst[b] = (unsigned char)(word >> (8 * b));
}

/* Byte j (0..15) of a 16-byte chunk. */
static __device__ __forceinline__ unsigned kvtc__tcg_u4_byte(const uint4 &v, int j) {
    const unsigned w = j < 4 ? v.x : j < 8 ? v.y : j < 12 ? v.z : v.w;
    return (w >> (8 * (j & 3))) & 0xffu;
}

/* kvtc__k_tcg_fnv<LEVEL>   CPU twin: kvtc__tc_checksum (FNV-1a 64 with the checksum field as zero)
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 30-38 regs, 16-48 B static smem; 0 spills
 * grid (checksum segments of all records), block 128: thread i owns bytes [32i, 32i + 32) of its 4 KiB segment.
 * LEVEL 0..7: finalize bit LEVEL-1 of the low-byte trajectory L (segment carry = initial bit XOR the
 * parities of the earlier segments of the record), then bit LEVEL by a block prefix-XOR scan from 0;
 * LEVEL 8: finalize bit 7, then add sum_i d_i P^(N - i) of the segment to the record's accumulator. */
template <int LEVEL>
__global__ void __launch_bounds__(128) kvtc__k_tcg_fnv(kvtc__tcg_args a) {
    __shared__ unsigned s_w[4];
    __shared__ unsigned long long s_sum[4];
    const long long seg = blockIdx.x;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    int lo = 0, hi = a.G - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if ((long long)a.call[mid].seg0 <= seg) lo = mid;
        else hi = mid - 1;
    }
    const int g = lo;
    const kvtc__tcg_call cl = a.call[g];
    const long long N = (long long)cl.bytes, rel0 = (seg - (long long)cl.seg0) * KVTC__TCG_SEG + 32LL * tid;
    const int nv = rel0 >= N ? 0 : (N - rel0 < 32 ? (int)(N - rel0) : 32);
    const unsigned char *bp = a.rec + cl.rec + rel0;
    unsigned char *lp = a.L + cl.rec + rel0;
    uint4 b0 = make_uint4(0, 0, 0, 0), b1 = b0, l0 = b0, l1 = b0;
    if (nv > 0) {
        b0 = *(const uint4 *)bp;
        if (LEVEL > 0) l0 = *(const uint4 *)lp;
    }
    if (nv > 16) {
        b1 = *(const uint4 *)(bp + 16);
        if (LEVEL > 0) l1 = *(const uint4 *)(lp + 16);
    }
    if (rel0 == 32) { b1.x = 0; b1.y = 0; } /* bytes 48..55: the checksum, hashed as zero */
    if (LEVEL > 0) {
        const int kk = LEVEL > 0 ? LEVEL - 1 : 0;
        unsigned x = 0;
        for (long long i = (long long)cl.seg0 + tid; i < seg; i += 128) x ^= a.par[(long long)kk * a.nseg + i];
        x = __reduce_xor_sync(KVTC__FULL, x & 1u);
        if (lane == 0) s_w[warp] = x;
        __syncthreads();
        const unsigned carry = ((0x25u >> kk) & 1u) ^ s_w[0] ^ s_w[1] ^ s_w[2] ^ s_w[3];
        __syncthreads();
        if (carry) {
            const unsigned f = 0x01010101u << kk;
            l0.x ^= f; l0.y ^= f; l0.z ^= f; l0.w ^= f;
            l1.x ^= f; l1.y ^= f; l1.z ^= f; l1.w ^= f;
        }
    }
    if (LEVEL < 8) {
        unsigned e = 0;
#pragma unroll
        for (int q = 0; q < 32; ++q) {
            const unsigned bq = q < 16 ? kvtc__tcg_u4_byte(b0, q) : kvtc__tcg_u4_byte(b1, q - 16);
            const unsigned lq = q < 16 ? kvtc__tcg_u4_byte(l0, q) : kvtc__tcg_u4_byte(l1, q - 16);
            const unsigned x = (lq ^ bq) & ((1u << LEVEL) - 1u);
            const unsigned bit = ((bq >> LEVEL) ^ ((x * 0xb3u) >> LEVEL)) & 1u;
            if (q < nv) e |= bit << q;
        }
        const unsigned par = __popc(e) & 1u, bal = __ballot_sync(KVTC__FULL, par);
        if (lane == 0) s_w[warp] = __popc(bal) & 1u;
        __syncthreads();
        unsigned carry = __popc(bal & ((1u << lane) - 1u)) & 1u;
        for (int w2 = 0; w2 < warp; ++w2) carry ^= s_w[w2];
        if (tid == 0) a.par[(long long)LEVEL * a.nseg + seg] = (unsigned char)(s_w[0] ^ s_w[1] ^ s_w[2] ^ s_w[3]);
        unsigned inc = e;
        inc ^= inc << 1;
        inc ^= inc << 2;
        inc ^= inc << 4;
        inc ^= inc << 8;
        inc ^= inc << 16;
        unsigned ex = inc << 1;
        if (carry) ex = ~ex;
        /* bit LEVEL of L is still 0 (level 0: L starts from 0) */
        unsigned lw[8] = {l0.x, l0.y, l0.z, l0.w, l1.x, l1.y, l1.z, l1.w};
#pragma unroll
        for (int q = 0; q < 32; ++q)
            if ((ex >> q) & 1u) lw[q >> 2] |= 1u << (8 * (q & 3) + LEVEL);
        if (nv > 0) *(uint4 *)lp = make_uint4(lw[0], lw[1], lw[2], lw[3]);
        if (nv > 16) *(uint4 *)(lp + 16) = make_uint4(lw[4], lw[5], lw[6], lw[7]);
    } else {
        unsigned long long sum = 0;
        if (nv > 0) {
            unsigned long long Q = kvtc__tcg_fnv_pow((unsigned long long)(N - (rel0 + nv - 1)));
#pragma unroll
            for (int q = 31; q >= 0; --q) {
                if (q < nv) {
                    const unsigned bq = q < 16 ? kvtc__tcg_u4_byte(b0, q) : kvtc__tcg_u4_byte(b1, q - 16);
                    const unsigned lq = q < 16 ? kvtc__tcg_u4_byte(l0, q) : kvtc__tcg_u4_byte(l1, q - 16);
                    const long long d = (long long)(lq ^ bq) - (long long)lq;
                    sum += (unsigned long long)d * Q;
                    Q *= KVTC__TCG_FNV_P;
                }
            }
        }
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(KVTC__FULL, sum, o);
        if (lane == 0) s_sum[warp] = sum;
        __syncthreads();
        if (tid == 0) atomicAdd(&a.acc[g], s_sum[0] + s_sum[1] + s_sum[2] + s_sum[3]);
    }
}

/* kvtc__k_tcg_fnv_final   grid ceil(n_groups / 128), block 128: h = P^N h0 + acc. Compress: store it and
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 24 regs; 0 spills
 * each record's status; decompress: compare with the record's (ERR_CORRUPT if different). */
__global__ void __launch_bounds__(128) kvtc__k_tcg_fnv_final(kvtc__tcg_args a, int decompress) {
    const int g = blockIdx.x * 128 + threadIdx.x;
    if (g >= a.G) return;
    const kvtc__tcg_call cl = a.call[g];
    const unsigned long long h = kvtc__tcg_fnv_pow(cl.bytes) * KVTC_FNV1A64_INIT + a.acc[g];
    unsigned char *p = a.rec + cl.rec + 48;
    if (!decompress) {
        kvtc__tcg_st32(p, (unsigned)h);
        kvtc__tcg_st32(p + 4, (unsigned)(h >> 32));
        const unsigned f = a.gflag[g];
        if (a.status)
            a.status[g] = (f & 1u) ? KVTC_ERR_NONFINITE : (f & 2u) ? KVTC_ERR_RANGE : (f & 4u) ? KVTC_ERR_ARG : KVTC_OK;
    } else if (a.gstat[g] == KVTC_OK && kvtc__tcg_ld64(p) != h) {
        a.gstat[g] = KVTC_ERR_CORRUPT;
    }
}

/* kvtc__k_tcg_check   CPU twin: kvtc_tc_chunk_info + the checks of kvtc_tc_decode
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 39 regs; 0 spills
 * grid ceil(n_groups / 128), block 128, one thread per record: header fields, calibration id, widths
 * (each <= 16, summing to row_bits), the length; then what this plan can decode (its own widths and
 * quantizer, this call's n_tokens): else ERR_UNSUPPORTED. The checksum follows (kvtc__k_tcg_fnv*). */
static __device__ int kvtc__tcg_check_one(const kvtc__tcg_args &a, int g) {
    const kvtc__tcg_call cl = a.call[g];
    const kvtc__tcg_group gr = a.groups[g];
    const unsigned char *b = a.rec + cl.rec;
    if (b[0] != 'K' || b[1] != 'T' || b[2] != 'C' || b[3] != 'R') return KVTC_ERR_CORRUPT;
    if ((b[4] | (b[5] << 8)) != KVTC_TC_FORMAT_VERSION) return KVTC_ERR_VERSION;
    const unsigned q = b[6];
    if ((q != KVTC_TC_QUANT_UNIFORM && q != KVTC_TC_QUANT_GAUSSIAN) || b[7] != 0 || kvtc__tcg_ld64(b + 56) != 0)
        return KVTC_ERR_CORRUPT;
    const unsigned dim = kvtc__tcg_ld32(b + 8), rank = kvtc__tcg_ld32(b + 12), nt = kvtc__tcg_ld32(b + 16);
    if (dim < 1 || dim > KVTC_TC_MAX_DIM || rank < 1 || rank > dim || nt < 1) return KVTC_ERR_CORRUPT;
    const unsigned ns = kvtc__tcg_ld32(b + 20), nw = kvtc__tcg_ld32(b + 24), rb = kvtc__tcg_ld32(b + 28);
    if ((unsigned long long)ns + nw > nt || (unsigned long long)rb > 16ull * rank) return KVTC_ERR_CORRUPT;
    const unsigned long long rbytes = kvtc__tcg_ld64(b + 40);
    if (rbytes < (unsigned long long)KVTC_TC_CHUNK_HEADER_BYTES + rank || rbytes > cl.bytes) return KVTC_ERR_CORRUPT;
    if (kvtc__tcg_ld64(b + 32) != gr.calib_id) return KVTC_ERR_MISMATCH;
    if (dim != (unsigned)a.p || rank != (unsigned)gr.rank) return KVTC_ERR_CORRUPT;
    unsigned sum = 0, nu = 0, bad = 0, diff = 0;
    const unsigned char *w = b + KVTC_TC_CHUNK_HEADER_BYTES, *pw = a.widths + (long long)g * a.rank_max;
    for (unsigned i = 0; i < rank; ++i) {
        const unsigned x = w[i];
        bad |= x > 16;
        sum += x;
        nu += x > 0 && (q == KVTC_TC_QUANT_UNIFORM || x > 8);
        diff |= x ^ pw[i];
    }
    if (bad || sum != rb) return KVTC_ERR_CORRUPT;
    if (kvtc__tcg_geom(dim, rank, nu, rb, nt, ns, nw).bytes != rbytes) return KVTC_ERR_CORRUPT;
    if (diff || q != (unsigned)gr.quantizer || nt != (unsigned long long)a.n || ns != (unsigned long long)a.ns ||
        nw != (unsigned long long)a.nw)
        return KVTC_ERR_UNSUPPORTED;
    return KVTC_OK;
}

__global__ void __launch_bounds__(128) kvtc__k_tcg_check(kvtc__tcg_args a) {
    const int g = blockIdx.x * 128 + threadIdx.x;
    if (g < a.G) a.gstat[g] = kvtc__tcg_check_one(a, g);
}

/* kvtc__k_tcg_unpack   CPU twin: kvtc__unpack_var_u16 + kvtc__tc_dequantize
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 30 regs; 0 spills
 * grid (na_pad / 128, min(m, 65535) strided, n_groups), block 128: one thread per (token, component);
 * fields read bytewise (<= 3 bytes), lo/scale from the record; zeros for padding and failed records. */
__global__ void __launch_bounds__(128) kvtc__k_tcg_unpack(kvtc__tcg_args a) {
    const int g = blockIdx.z, j = blockIdx.x * 128 + threadIdx.x;
    const kvtc__tcg_group gr = a.groups[g];
    const kvtc__tcg_call cl = a.call[g];
    const bool ok = a.gstat[g] == KVTC_OK && j < gr.na;
    kvtc__tcg_comp c;
    memset(&c, 0, sizeof c);
    float lo = 0.0f, sc = 0.0f;
    const unsigned char *rec = a.rec + cl.rec, *idx = rec + cl.idx;
    if (ok) {
        c = a.comps[(long long)g * a.na_pad + j];
        if (c.uidx != KVTC__TCG_NOUNI) {
            lo = __uint_as_float(kvtc__tcg_ld32(rec + cl.params + 8ull * c.uidx));
            sc = __uint_as_float(kvtc__tcg_ld32(rec + cl.params + 8ull * c.uidx + 4));
        }
    }
    const float *cent = a.cent + (c.width >= 1 && c.width <= 8 ? (c.width - 1) * 256 : 0);
    const long long nb = (long long)cl.idx_bytes;
    for (long long t = blockIdx.y; t < a.m; t += gridDim.y) {
        float v = 0.0f;
        if (ok) {
            const long long pos = t * gr.row_bits + c.bitpos, by = pos >> 3;
            unsigned bits = idx[by];
            if (by + 1 < nb) bits |= (unsigned)idx[by + 1] << 8;
            if (by + 2 < nb) bits |= (unsigned)idx[by + 2] << 16;
            const unsigned qv = (bits >> (pos & 7)) & ((1u << c.width) - 1u);
            v = c.uidx != KVTC__TCG_NOUNI ? __fadd_rn(lo, __fmul_rn((float)qv, sc)) : __fmul_rn(c.sigma, cent[qv]);
        }
        const long long o = ((long long)g * a.m + t) * a.na_pad + j;
        if (a.mode == KVTC_CUDA_TC_GEMM_F16) ((__half *)a.Z)[o] = __float2half_rn(v);
        else ((float *)a.Z)[o] = v;
    }
}

/* kvtc__k_tcg_scatter   CPU twin: kvtc_tc_decode's copy-out + kvtc_rope_apply + the caller's scatter
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 48 regs; 0 spills
 * grid and threads as kvtc__k_tcg_gather: coded tokens from X-hat, sink/window tokens from the record's
 * fp16 rows; keys get RoPE back (double); written to the cache in its dtype (or to d_x). Failed records
 * write nothing. */
__global__ void __launch_bounds__(256) kvtc__k_tcg_scatter(kvtc__tcg_args a, int tpb) {
    const int g = blockIdx.z, hp = a.p / 2;
    if (a.gstat[g] != KVTC_OK) return;
    int lt, item;
    if (tpb > 1) {
        lt = threadIdx.x / hp;
        item = threadIdx.x - lt * hp;
        if (lt >= tpb) return;
    } else {
        lt = 0;
        item = blockIdx.x * 256 + threadIdx.x;
        if (item >= hp) return;
    }
    const int part = item / a.hs, slot = item - part * a.hs;
    int kind, layer, head, j0, j1;
    kvtc__tcg_part(a, g, part, &kind, &layer, &head);
    const int rot = kvtc__tcg_slot(a, kind, slot, &j0, &j1);
    const int c0 = part * a.hd + j0, c1 = part * a.hd + j1;
    const kvtc__tcg_call cl = a.call[g];
    const unsigned char *rec = a.rec + cl.rec;
    void *dst = kind ? a.wv : a.wk;
    for (long long t = (long long)blockIdx.y * tpb + lt; t < a.n; t += (long long)gridDim.y * tpb) {
        float v0, v1;
        if (t < a.ns || t >= a.n - a.nw) {
            const unsigned char *row = rec + (t < a.ns ? cl.sink + (unsigned long long)t * a.p * 2
                                                       : cl.window + (unsigned long long)(t - (a.n - a.nw)) * a.p * 2);
            v0 = __half2float(__ushort_as_half((unsigned short)(row[2 * c0] | (row[2 * c0 + 1] << 8))));
            v1 = __half2float(__ushort_as_half((unsigned short)(row[2 * c1] | (row[2 * c1 + 1] << 8))));
        } else {
            const float *x = (const float *)a.A + ((long long)g * a.m + (t - a.ns)) * a.p;
            v0 = x[c0];
            v1 = x[c1];
        }
        if (a.flat) {
            float *x = a.x_out + ((long long)g * a.n + t) * a.p;
            x[c0] = v0;
            x[c1] = v1;
            continue;
        }
        const long long tok = a.start + t;
        const int pg = a.block_table[tok / a.bs];
        if (pg < 0 || pg >= a.n_blocks) {
            atomicOr(&a.gflag[g], 4u);
            continue;
        }
        if (rot) kvtc__tcg_rope(a.rope_tab[t * a.rd_half + slot], 1.0, &v0, &v1);
        const long long base = (long long)layer * a.layer_stride + ((long long)pg * a.bs + tok % a.bs) * a.tok_stride +
                               (long long)head * a.hd;
        kvtc__store(dst, base + j0, a.dtype, v0);
        kvtc__store(dst, base + j1, a.dtype, v1);
    }
}

/* kvtc__k_tcg_status   grid ceil(n_groups / 128), block 128: decompress statuses.
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 12 regs; 0 spills */
__global__ void __launch_bounds__(128) kvtc__k_tcg_status(kvtc__tcg_args a) {
    const int g = blockIdx.x * 128 + threadIdx.x;
    if (g >= a.G || !a.status) return;
    const int st = a.gstat[g];
    a.status[g] = st != KVTC_OK ? st : (a.gflag[g] & 4u) ? KVTC_ERR_ARG : KVTC_OK;
}

/* ---- host side: plan, records, workspace, launchers -------------------------- */
static kvtc_status kvtc__tcg_upload(const kvtc_cuda_tc_params *r, const kvtc_tc *const *tcs, int G, int dim,
                                    const kvtc__tcg_plan_layout *L, unsigned char *base, void *d_upload, void *stage,
                                    cudaStream_t stream) {
    kvtc__tcg_group *gh = (kvtc__tcg_group *)stage;
    kvtc__tcg_comp *ch = (kvtc__tcg_comp *)stage;
    const size_t es = r->gemm == KVTC_CUDA_TC_GEMM_F16 ? 2 : 4;
    const int half = r->rope.rotary_dim / 2;
    int g, k;
    for (g = 0; g < G; ++g) {
        const kvtc_tc *tc = tcs[g];
        const int na = tc->n_active;
        int bit = 0, u = 0;
        memset(ch, 0, (size_t)L->na_pad * sizeof(kvtc__tcg_comp));
        for (k = 0; k < na; ++k) {
            const int i = tc->active[k], w = tc->widths[i];
            ch[k].bitpos = bit;
            ch[k].width = (unsigned short)w;
            ch[k].uidx = (tc->params.quantizer == KVTC_TC_QUANT_UNIFORM || w > 8) ? (unsigned short)u++ : KVTC__TCG_NOUNI;
            ch[k].sigma = tc->sigma[i];
            ch[k].inv_sigma = tc->sigma[i] > 0.0f ? 1.0f / tc->sigma[i] : 0.0f;
            bit += w;
        }
        if (u > 0xfffe || bit != tc->row_bits) return KVTC_ERR_ARG;
        KVTC_CUDA_CHECK(cudaMemcpyAsync(base + L->comps + (size_t)g * L->na_pad * sizeof(kvtc__tcg_comp), ch,
                                        (size_t)L->na_pad * sizeof(kvtc__tcg_comp), cudaMemcpyHostToDevice, stream));
        KVTC_CUDA_CHECK(cudaMemcpyAsync(base + L->mean + (size_t)g * dim * sizeof(float), tc->calib->mean,
                                        (size_t)dim * sizeof(float), cudaMemcpyHostToDevice, stream));
        KVTC_CUDA_CHECK(cudaMemcpyAsync(base + L->widths + (size_t)g * L->rank_max, tc->widths, (size_t)tc->calib->rank,
                                        cudaMemcpyHostToDevice, stream));
        if (na > 0) {
            const size_t nv = (size_t)L->na_pad * L->kp, nt = (size_t)dim * L->na_pad, tot = nv > nt ? nv : nt;
            const size_t blocks = (tot + 255) / 256 < ((size_t)1 << 20) ? (tot + 255) / 256 : ((size_t)1 << 20);
            KVTC_CUDA_CHECK(cudaMemcpyAsync(d_upload, tc->basis_t, (size_t)dim * na * sizeof(float),
                                            cudaMemcpyHostToDevice, stream));
            kvtc__k_tcg_prep_basis<<<(unsigned)blocks, 256, 0, stream>>>(
                (const float *)d_upload, dim, na, L->na_pad, L->kp, (int)r->gemm, base + L->v + g * nv * es,
                L->v_lo ? base + L->v_lo + g * nv * es : NULL, base + L->vt + g * nt * es,
                L->vt_lo ? base + L->vt_lo + g * nt * es : NULL);
            KVTC_CUDA_CHECK(cudaGetLastError());
        }
    }
    for (g = 0; g < G; ++g) {
        const kvtc_tc *tc = tcs[g];
        memset(&gh[g], 0, sizeof gh[g]);
        gh[g].calib_id = tc->calib->id;
        gh[g].rank = tc->calib->rank;
        gh[g].na = tc->n_active;
        gh[g].row_bits = tc->row_bits;
        gh[g].n_uniform = (int)kvtc__tcg_nuni(tc);
        gh[g].quantizer = (int)tc->params.quantizer;
    }
    KVTC_CUDA_CHECK(cudaMemcpyAsync(base + L->groups, gh, (size_t)G * sizeof(kvtc__tcg_group), cudaMemcpyHostToDevice, stream));
    {
        double *f = (double *)stage;
        for (k = 0; k < half; ++k) f[k] = pow(r->rope.theta, -2.0 * (double)k / (double)r->rope.rotary_dim);
        KVTC_CUDA_CHECK(cudaMemcpyAsync(base + L->inv_freq, f, (size_t)half * sizeof(double), cudaMemcpyHostToDevice, stream));
    }
    KVTC_CUDA_CHECK(cudaMemcpyAsync(base + L->cent, tcs[0]->centroids, sizeof(tcs[0]->centroids), cudaMemcpyHostToDevice, stream));
    KVTC_CUDA_CHECK(cudaMemcpyAsync(base + L->bnd, tcs[0]->boundaries, sizeof(tcs[0]->boundaries), cudaMemcpyHostToDevice, stream));
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_cuda_tc_plan_init(const kvtc_cuda_tc_params *p, const kvtc_tc *const *tcs, int n_groups,
                                            void *d_plan, size_t plan_bytes, void *d_upload, size_t upload_bytes,
                                            kvtc_cuda_tc *out, cudaStream_t stream) {
    kvtc_cuda_tc_params r;
    kvtc__tcg_plan_layout L;
    kvtc_status st;
    int G = 0, dim = 0;
    size_t sb;
    void *stage;
    unsigned char *base = (unsigned char *)d_plan;
    if (!d_plan || !d_upload || !out) return KVTC_ERR_NULL;
    if ((st = kvtc__tcg_plan_of(p, tcs, n_groups, &r, &L)) != KVTC_OK) return st;
    if (plan_bytes < L.bytes || upload_bytes < L.upload) return KVTC_ERR_SMALL;
    if ((uintptr_t)d_plan % 256 != 0 || (uintptr_t)d_upload % 16 != 0) return KVTC_ERR_ARG;
    kvtc_cuda_tc_groups(&r, &G, &dim);
    sb = (size_t)G * sizeof(kvtc__tcg_group);
    if ((size_t)L.na_pad * sizeof(kvtc__tcg_comp) > sb) sb = (size_t)L.na_pad * sizeof(kvtc__tcg_comp);
    if ((size_t)(r.rope.rotary_dim / 2) * sizeof(double) > sb) sb = (size_t)(r.rope.rotary_dim / 2) * sizeof(double);
    KVTC_CUDA_CHECK(cudaMemsetAsync(d_plan, 0, L.bytes, stream));
    stage = KVTC_MALLOC(sb, tcs[0]->params.alloc_user);
    if (!stage) return KVTC_ERR_NOMEM;
    st = kvtc__tcg_upload(&r, tcs, G, dim, &L, base, d_upload, stage, stream); /* pageable copies are staged on return */
    KVTC_FREE(stage, tcs[0]->params.alloc_user);
    if (st != KVTC_OK) return st;
    memset(out, 0, sizeof *out);
    out->params = r;
    out->tcs = tcs;
    out->n_groups = G;
    out->dim = dim;
    out->rank_max = L.rank_max;
    out->na_max = L.na_max;
    out->na_pad = L.na_pad;
    out->kp = L.kp;
    out->n_sink = L.n_sink;
    out->n_window = L.n_window;
    out->quant_uniform = L.uniform;
    out->d_groups = base + L.groups;
    out->d_comps = base + L.comps;
    out->d_widths = base + L.widths;
    out->d_mean = (float *)(base + L.mean);
    out->d_inv_freq = (double *)(base + L.inv_freq);
    out->d_cent = (float *)(base + L.cent);
    out->d_bnd = (float *)(base + L.bnd);
    out->d_v = base + L.v;
    out->d_v_lo = L.v_lo ? base + L.v_lo : NULL;
    out->d_vt = base + L.vt;
    out->d_vt_lo = L.vt_lo ? base + L.vt_lo : NULL;
    return KVTC_OK;
}

static kvtc__tcg_geo kvtc__tcg_host_geo(const kvtc_cuda_tc *plan, int g, size_t n) {
    const kvtc_tc *tc = plan->tcs[g];
    return kvtc__tcg_geom((unsigned long long)plan->dim, (unsigned long long)tc->calib->rank, kvtc__tcg_nuni(tc),
                          (unsigned long long)tc->row_bits, (unsigned long long)n, (unsigned long long)plan->n_sink,
                          (unsigned long long)plan->n_window);
}

typedef struct kvtc__tcg_ws {
    size_t call, flags, flags_bytes, tokflag, gflag, acc, gstat, cpar, A, Z, L, par, rope, bytes, rec_total;
    long long nseg, max_words, m, ns, nw;
} kvtc__tcg_ws;

static kvtc_status kvtc__tcg_ws_of(const kvtc_cuda_tc *plan, size_t n, kvtc__tcg_ws *w) {
    const size_t G = (size_t)plan->n_groups, es = plan->params.gemm == KVTC_CUDA_TC_GEMM_F16 ? 2 : 4;
    size_t off = 0, a, b, gm;
    int g;
    if (n < 1 || n > 0xffffffffu) return KVTC_ERR_ARG;
    memset(w, 0, sizeof *w);
    for (g = 0; g < plan->n_groups; ++g) {
        const kvtc__tcg_geo geo = kvtc__tcg_host_geo(plan, g, n);
        const long long words = (long long)((geo.m * (unsigned long long)plan->tcs[g]->row_bits + 31) / 32);
        if (geo.bytes > (size_t)-1 / 2 || w->rec_total > (size_t)-1 / 2) return KVTC_ERR_OVERFLOW;
        w->rec_total += (size_t)((geo.bytes + 15) & ~15ull);
        w->nseg += (long long)((geo.bytes + KVTC__TCG_SEG - 1) / KVTC__TCG_SEG);
        if (words > w->max_words) w->max_words = words;
        w->m = (long long)geo.m;
        w->ns = (long long)geo.ns;
        w->nw = (long long)geo.nw;
    }
    if (w->nseg > 0x7fffffffLL) return KVTC_ERR_OVERFLOW;
    if (!kvtc__tcg_mul(G, (size_t)w->m, &gm)) return KVTC_ERR_OVERFLOW;
    if (!kvtc__tcg_take(&off, G * sizeof(kvtc__tcg_call), &w->call)) return KVTC_ERR_OVERFLOW;
    if (!kvtc__tcg_mul(G * 4, n, &a)) return KVTC_ERR_OVERFLOW;
    w->flags_bytes = ((a + 7) & ~(size_t)7) + G * 8 + G * 8;
    if (!kvtc__tcg_take(&off, w->flags_bytes, &w->flags)) return KVTC_ERR_OVERFLOW;
    w->tokflag = w->flags;
    w->gflag = w->flags + ((a + 7) & ~(size_t)7);
    w->acc = w->gflag + G * 8;
    if (!kvtc__tcg_take(&off, G * 4, &w->gstat)) return KVTC_ERR_OVERFLOW;
    if (!kvtc__tcg_mul(G * (size_t)plan->na_pad, 16, &a) || !kvtc__tcg_take(&off, a, &w->cpar)) return KVTC_ERR_OVERFLOW;
    if (!kvtc__tcg_mul(gm, (size_t)plan->kp * es, &a) || !kvtc__tcg_mul(gm, (size_t)plan->dim * 4, &b))
        return KVTC_ERR_OVERFLOW;
    if (!kvtc__tcg_take(&off, a > b ? a : b, &w->A)) return KVTC_ERR_OVERFLOW;
    if (!kvtc__tcg_mul(gm, (size_t)plan->na_pad * 4, &a) || !kvtc__tcg_take(&off, a, &w->Z)) return KVTC_ERR_OVERFLOW;
    if (!kvtc__tcg_take(&off, w->rec_total, &w->L)) return KVTC_ERR_OVERFLOW;
    if (!kvtc__tcg_take(&off, 8 * (size_t)w->nseg, &w->par)) return KVTC_ERR_OVERFLOW;
    if (!kvtc__tcg_mul(n, (size_t)(plan->params.rope.rotary_dim / 2) * 16, &a) || !kvtc__tcg_take(&off, a, &w->rope))
        return KVTC_ERR_OVERFLOW;
    w->bytes = off;
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_cuda_tc_records_bytes(const kvtc_cuda_tc *plan, size_t n_tokens, size_t *bytes) {
    kvtc__tcg_ws w;
    kvtc_status st;
    if (!plan || !bytes || !plan->tcs) return KVTC_ERR_NULL;
    if ((st = kvtc__tcg_ws_of(plan, n_tokens, &w)) != KVTC_OK) return st;
    *bytes = w.rec_total;
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_cuda_tc_record_offsets(const kvtc_cuda_tc *plan, size_t n_tokens, size_t *offsets,
                                                 size_t *lengths, size_t count) {
    size_t off = 0;
    int g;
    if (!plan || !plan->tcs) return KVTC_ERR_NULL;
    if (n_tokens < 1 || n_tokens > 0xffffffffu) return KVTC_ERR_ARG;
    if ((offsets || lengths) && count < (size_t)plan->n_groups) return KVTC_ERR_SMALL;
    for (g = 0; g < plan->n_groups; ++g) {
        const kvtc__tcg_geo geo = kvtc__tcg_host_geo(plan, g, n_tokens);
        if (offsets) offsets[g] = off;
        if (lengths) lengths[g] = (size_t)geo.bytes;
        off += (size_t)((geo.bytes + 15) & ~15ull);
    }
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_cuda_tc_workspace_bytes(const kvtc_cuda_tc *plan, size_t n_tokens, size_t *bytes) {
    kvtc__tcg_ws w;
    kvtc_status st;
    if (!plan || !bytes || !plan->tcs) return KVTC_ERR_NULL;
    if ((st = kvtc__tcg_ws_of(plan, n_tokens, &w)) != KVTC_OK) return st;
    *bytes = w.bytes;
    return KVTC_OK;
}

KVTC_DEF const char *kvtc_cuda_tc_stage_name(int decompress, int stage) {
    static const char *const c[KVTC_CUDA_TC_MAX_STAGES] = {"gather", "project", "quantize", "pack", "checksum"};
    static const char *const d[KVTC_CUDA_TC_MAX_STAGES] = {"check", "unpack", "reconstruct", "scatter", "-"};
    if (stage < 0 || stage >= KVTC_CUDA_TC_MAX_STAGES) return "-";
    return decompress ? d[stage] : c[stage];
}

KVTC_DEF kvtc_status kvtc_cuda_tc_timing_read(const kvtc_cuda_tc_timing *t, float *ms, int n) {
    int i;
    if (!t || !ms) return KVTC_ERR_NULL;
    if (t->n_stages < 0 || t->n_stages > KVTC_CUDA_TC_MAX_STAGES) return KVTC_ERR_ARG;
    if (n < t->n_stages) return KVTC_ERR_SMALL;
    for (i = 0; i < t->n_stages; ++i) KVTC_CUDA_CHECK(cudaEventElapsedTime(&ms[i], t->events[i], t->events[i + 1]));
    return KVTC_OK;
}

/* One of the two GEMMs for all groups. proj: Z = A V^T; else X-hat = Z-hat V_t^T + mu. */
static kvtc_status kvtc__tcg_gemm(const kvtc_cuda_tc *plan, const kvtc__tcg_ws *w, unsigned char *ws, int proj,
                                  cudaStream_t stream) {
    kvtc__gemm_args ga;
    const int mode = (int)plan->params.gemm, epw = kvtc__tcg_epw(plan->params.gemm);
    const long long m = w->m;
    memset(&ga, 0, sizeof ga);
    ga.groups = (const kvtc__tcg_group *)plan->d_groups;
    ga.M = (int)m;
    ga.epw = epw;
    if (proj) {
        ga.A = (const unsigned *)(ws + w->A);
        ga.B = (const unsigned *)plan->d_v;
        ga.Blo = (const unsigned *)plan->d_v_lo;
        ga.lda = ga.ldb = plan->kp / epw;
        ga.sA = m * (plan->kp / epw);
        ga.sB = (long long)plan->na_pad * (plan->kp / epw);
        ga.N = plan->na_pad;
        ga.Kw = plan->kp / epw;
        ga.K_exact = plan->dim;
        ga.n_by_na = 1;
        ga.C = (float *)(ws + w->Z);
        ga.sC = m * plan->na_pad;
        ga.ldc = plan->na_pad;
    } else {
        ga.A = (const unsigned *)(ws + w->Z);
        ga.B = (const unsigned *)plan->d_vt;
        ga.Blo = (const unsigned *)plan->d_vt_lo;
        ga.lda = ga.ldb = plan->na_pad / epw;
        ga.sA = m * (plan->na_pad / epw);
        ga.sB = (long long)plan->dim * (plan->na_pad / epw);
        ga.N = plan->dim;
        ga.Kw = plan->na_pad / epw;
        ga.k_by_na = 1;
        ga.C = (float *)(ws + w->A);
        ga.sC = m * plan->dim;
        ga.ldc = plan->dim;
        ga.bias = plan->d_mean;
        ga.sBias = plan->dim;
    }
    if (m > 0x7fffffffLL - 128) return KVTC_ERR_UNSUPPORTED;
    if (mode == KVTC_CUDA_TC_GEMM_EXACT) {
        const dim3 grid((unsigned)((m + 63) / 64), (unsigned)((ga.N + 63) / 64), (unsigned)plan->n_groups);
        kvtc__k_tcg_gemm_exact<<<grid, 256, 0, stream>>>(ga);
    } else if (mode == KVTC_CUDA_TC_GEMM_TF32X3) {
        const int smem = (2 * 128 + 2 * 2 * 128) * KVTC__TCG_LDS * 4;
        const dim3 grid((unsigned)((m + 127) / 128), (unsigned)((ga.N + 127) / 128), (unsigned)plan->n_groups);
        KVTC_CUDA_CHECK(cudaFuncSetAttribute(kvtc__k_tcg_gemm<0, 4>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        kvtc__k_tcg_gemm<0, 4><<<grid, 256, smem, stream>>>(ga);
    } else if (ga.N <= 128) {
        const int smem = (3 * 128 + 3 * 128) * KVTC__TCG_LDS * 4;
        const dim3 grid((unsigned)((m + 127) / 128), (unsigned)((ga.N + 127) / 128), (unsigned)plan->n_groups);
        KVTC_CUDA_CHECK(cudaFuncSetAttribute(kvtc__k_tcg_gemm<1, 4>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        kvtc__k_tcg_gemm<1, 4><<<grid, 256, smem, stream>>>(ga);
    } else {
        const int smem = (3 * 128 + 3 * 256) * KVTC__TCG_LDS * 4;
        const dim3 grid((unsigned)((m + 127) / 128), (unsigned)((ga.N + 255) / 256), (unsigned)plan->n_groups);
        KVTC_CUDA_CHECK(cudaFuncSetAttribute(kvtc__k_tcg_gemm<1, 8>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        kvtc__k_tcg_gemm<1, 8><<<grid, 256, smem, stream>>>(ga);
    }
    KVTC_CUDA_CHECK(cudaGetLastError());
    return KVTC_OK;
}

#define KVTC__TCG_MARK(i)                                                                                              \
    do {                                                                                                               \
        if (timing) KVTC_CUDA_CHECK(cudaEventRecord(timing->events[i], stream));                                       \
    } while (0)
#define KVTC__TCG_LAUNCHED() KVTC_CUDA_CHECK(cudaGetLastError())

/* The whole compress (decompress = 0) or decompress (1) sequence; flat: d_x instead of the cache. */
static kvtc_status kvtc__tcg_run(const kvtc_cuda_tc *plan, int decompress, const kvtc_cuda_tc_cache *cache,
                                 const float *x_in, float *x_out, size_t x_count, size_t n_tokens,
                                 const void *d_records, size_t records_bytes, int32_t *d_status, void *d_workspace,
                                 size_t workspace_bytes, kvtc_cuda_tc_timing *timing, cudaStream_t stream) {
    kvtc__tcg_ws w;
    kvtc__tcg_args a;
    kvtc_status st;
    unsigned char *ws = (unsigned char *)d_workspace;
    const int flat = cache == NULL;
    const kvtc_cuda_tc_params *r;
    int tpb, hp;
    unsigned gx, gy;
    if (!plan || !plan->tcs || !d_records || !d_workspace) return KVTC_ERR_NULL;
    if (flat && !(decompress ? (const void *)x_out : (const void *)x_in)) return KVTC_ERR_NULL;
    if ((st = kvtc__tcg_ws_of(plan, n_tokens, &w)) != KVTC_OK) return st;
    r = &plan->params;
    if (!flat) {
        if (!cache->d_k || !cache->d_v || !cache->d_block_table) return KVTC_ERR_NULL;
        if ((int)cache->dtype < 0 || cache->dtype >= KVTC_DTYPE_COUNT) return KVTC_ERR_ARG;
        if (cache->block_size < 1 || cache->n_blocks < 1 || cache->max_blocks < 1 || cache->start < 0) return KVTC_ERR_ARG;
        if ((cache->start + (long long)n_tokens - 1) / cache->block_size >= cache->max_blocks) return KVTC_ERR_ARG;
    } else if (decompress && x_count / (size_t)plan->n_groups / (size_t)plan->dim < n_tokens) {
        return KVTC_ERR_SMALL;
    }
    if (records_bytes < w.rec_total || workspace_bytes < w.bytes) return KVTC_ERR_SMALL;
    if ((uintptr_t)d_records % 16 != 0 || (uintptr_t)d_workspace % 256 != 0) return KVTC_ERR_ARG;
    memset(&a, 0, sizeof a);
    a.groups = (const kvtc__tcg_group *)plan->d_groups;
    a.comps = (const kvtc__tcg_comp *)plan->d_comps;
    a.widths = plan->d_widths;
    a.mean = plan->d_mean;
    a.cent = plan->d_cent;
    a.bnd = plan->d_bnd;
    a.inv_freq = plan->d_inv_freq;
    a.G = plan->n_groups;
    a.p = plan->dim;
    a.rank_max = plan->rank_max;
    a.na_pad = plan->na_pad;
    a.kp = plan->kp;
    a.mode = (int)r->gemm;
    a.hd = r->head_dim;
    a.hs = r->head_dim / 2;
    a.rd = r->rope.rotary_dim;
    a.rd_half = r->rope.rotary_dim / 2;
    a.style = (int)r->rope.style;
    a.rope = !r->keys_no_rope;
    a.gl = r->group_layers;
    a.gh = r->group_heads;
    a.nlg = r->n_layers / r->group_layers;
    a.nhg = r->n_kv_heads / r->group_heads;
    a.concat = r->kv == KVTC_CUDA_TC_KV_CONCAT;
    a.n = (long long)n_tokens;
    a.ns = w.ns;
    a.nw = w.nw;
    a.m = w.m;
    a.flat = flat;
    if (!flat) {
        a.ck = cache->d_k;
        a.cv = cache->d_v;
        a.wk = cache->d_k;
        a.wv = cache->d_v;
        a.dtype = cache->dtype == KVTC_DTYPE_DEFAULT ? KVTC_DTYPE_F16 : (int)cache->dtype;
        a.bs = cache->block_size;
        a.n_blocks = cache->n_blocks;
        a.start = cache->start;
        a.positions = (const long long *)cache->d_positions;
        a.block_table = cache->d_block_table;
        a.tok_stride = (long long)r->n_kv_heads * r->head_dim;
        a.layer_stride = (long long)cache->n_blocks * cache->block_size * a.tok_stride;
    }
    a.x_in = x_in;
    a.x_out = x_out;
    a.rec = (unsigned char *)d_records; /* decompress only reads it */
    a.call = (kvtc__tcg_call *)(ws + w.call);
    a.tokflag = (unsigned *)(ws + w.tokflag);
    a.gflag = (unsigned *)(ws + w.gflag);
    a.acc = (unsigned long long *)(ws + w.acc);
    a.gstat = (int *)(ws + w.gstat);
    a.A = ws + w.A;
    a.Z = ws + w.Z;
    a.cpar = (float4 *)(ws + w.cpar);
    a.L = ws + w.L;
    a.par = ws + w.par;
    a.rope_tab = (double2 *)(ws + w.rope);
    a.nseg = w.nseg;
    a.status = d_status;
    hp = plan->dim / 2;
    tpb = hp < 256 ? 256 / hp : 1;
    gx = tpb > 1 ? 1u : (unsigned)((hp + 255) / 256);
    gy = (unsigned)(((long long)n_tokens + tpb - 1) / tpb < 65535 ? ((long long)n_tokens + tpb - 1) / tpb : 65535);
    if (timing) {
        timing->n_stages = decompress ? 4 : 5;
        timing->decompress = decompress;
    }
    KVTC__TCG_MARK(0);
    KVTC_CUDA_CHECK(cudaMemsetAsync(ws + w.flags, 0, w.flags_bytes, stream));
    kvtc__k_tcg_geom<<<1, 1024, 0, stream>>>(a);
    KVTC__TCG_LAUNCHED();
    if (!flat && a.rope) {
        kvtc__k_tcg_rope_table<<<(unsigned)((a.n * a.rd_half + 255) / 256), 256, 0, stream>>>(a);
        KVTC__TCG_LAUNCHED();
    }
    if (!decompress) {
        kvtc__k_tcg_gather<<<dim3(gx, gy, (unsigned)a.G), 256, 0, stream>>>(a, tpb);
        KVTC__TCG_LAUNCHED();
        if (plan->kp > plan->dim && w.m > 0) {
            const long long tot = (long long)a.G * w.m * (plan->kp - plan->dim);
            kvtc__k_tcg_padcols<<<(unsigned)((tot + 255) / 256 < 65535 * 16 ? (tot + 255) / 256 : 65535 * 16), 256, 0, stream>>>(a);
            KVTC__TCG_LAUNCHED();
        }
        KVTC__TCG_MARK(1);
        if (w.m > 0 && plan->na_max > 0 && (st = kvtc__tcg_gemm(plan, &w, ws, 1, stream)) != KVTC_OK) return st;
        KVTC__TCG_MARK(2);
        kvtc__k_tcg_fit<<<dim3((unsigned)(plan->na_pad / 32), (unsigned)a.G), 256, 0, stream>>>(a);
        KVTC__TCG_LAUNCHED();
        KVTC__TCG_MARK(3);
        if (w.m > 0 && w.max_words > 0) {
            kvtc__k_tcg_pack<<<dim3((unsigned)((w.max_words + 255) / 256), (unsigned)a.G), 256, 0, stream>>>(a);
            KVTC__TCG_LAUNCHED();
        }
        KVTC__TCG_MARK(4);
    }
    {
        const unsigned ns = (unsigned)w.nseg, gg = (unsigned)((a.G + 127) / 128);
        if (decompress) {
            kvtc__k_tcg_check<<<gg, 128, 0, stream>>>(a);
            KVTC__TCG_LAUNCHED();
        }
        kvtc__k_tcg_fnv<0><<<ns, 128, 0, stream>>>(a);
        kvtc__k_tcg_fnv<1><<<ns, 128, 0, stream>>>(a);
        kvtc__k_tcg_fnv<2><<<ns, 128, 0, stream>>>(a);
        kvtc__k_tcg_fnv<3><<<ns, 128, 0, stream>>>(a);
        kvtc__k_tcg_fnv<4><<<ns, 128, 0, stream>>>(a);
        kvtc__k_tcg_fnv<5><<<ns, 128, 0, stream>>>(a);
        kvtc__k_tcg_fnv<6><<<ns, 128, 0, stream>>>(a);
        kvtc__k_tcg_fnv<7><<<ns, 128, 0, stream>>>(a);
        kvtc__k_tcg_fnv<8><<<ns, 128, 0, stream>>>(a);
        KVTC__TCG_LAUNCHED();
        kvtc__k_tcg_fnv_final<<<gg, 128, 0, stream>>>(a, decompress);
        KVTC__TCG_LAUNCHED();
        if (!decompress) {
            KVTC__TCG_MARK(5);
            return KVTC_OK;
        }
        KVTC__TCG_MARK(1);
        if (w.m > 0) {
            const dim3 grid((unsigned)(plan->na_pad / 128), (unsigned)(w.m < 65535 ? w.m : 65535), (unsigned)a.G);
            kvtc__k_tcg_unpack<<<grid, 128, 0, stream>>>(a);
            KVTC__TCG_LAUNCHED();
        }
        KVTC__TCG_MARK(2);
        if (w.m > 0 && (st = kvtc__tcg_gemm(plan, &w, ws, 0, stream)) != KVTC_OK) return st;
        KVTC__TCG_MARK(3);
        kvtc__k_tcg_scatter<<<dim3(gx, gy, (unsigned)a.G), 256, 0, stream>>>(a, tpb);
        KVTC__TCG_LAUNCHED();
        kvtc__k_tcg_status<<<gg, 128, 0, stream>>>(a);
        KVTC__TCG_LAUNCHED();
        KVTC__TCG_MARK(4);
    }
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_cuda_tc_compress(const kvtc_cuda_tc *plan, const kvtc_cuda_tc_cache *cache, size_t n_tokens,
                                           void *d_records, size_t records_bytes, int32_t *d_status,
                                           void *d_workspace, size_t workspace_bytes, kvtc_cuda_tc_timing *timing,
                                           cudaStream_t stream) {
    if (!cache) return KVTC_ERR_NULL;
    return kvtc__tcg_run(plan, 0, cache, NULL, NULL, 0, n_tokens, d_records, records_bytes, d_status, d_workspace,
                         workspace_bytes, timing, stream);
}

KVTC_DEF kvtc_status kvtc_cuda_tc_decompress(const kvtc_cuda_tc *plan, const void *d_records, size_t records_bytes,
                                             size_t n_tokens, const kvtc_cuda_tc_cache *cache, int32_t *d_status,
                                             void *d_workspace, size_t workspace_bytes, kvtc_cuda_tc_timing *timing,
                                             cudaStream_t stream) {
    if (!cache) return KVTC_ERR_NULL;
    return kvtc__tcg_run(plan, 1, cache, NULL, NULL, 0, n_tokens, d_records, records_bytes, d_status, d_workspace,
                         workspace_bytes, timing, stream);
}

KVTC_DEF kvtc_status kvtc_cuda_tc_encode(const kvtc_cuda_tc *plan, const float *d_x, size_t n_tokens, void *d_records,
                                         size_t records_bytes, int32_t *d_status, void *d_workspace,
                                         size_t workspace_bytes, kvtc_cuda_tc_timing *timing, cudaStream_t stream) {
    if (!d_x) return KVTC_ERR_NULL;
    return kvtc__tcg_run(plan, 0, NULL, d_x, NULL, 0, n_tokens, d_records, records_bytes, d_status, d_workspace,
                         workspace_bytes, timing, stream);
}

KVTC_DEF kvtc_status kvtc_cuda_tc_decode(const kvtc_cuda_tc *plan, const void *d_records, size_t records_bytes,
                                         size_t n_tokens, float *d_x, size_t x_count, int32_t *d_status,
                                         void *d_workspace, size_t workspace_bytes, kvtc_cuda_tc_timing *timing,
                                         cudaStream_t stream) {
    if (!d_x) return KVTC_ERR_NULL;
    return kvtc__tcg_run(plan, 1, NULL, NULL, d_x, x_count, n_tokens, d_records, records_bytes, d_status, d_workspace,
                         workspace_bytes, timing, stream);
}
#undef KVTC__TCG_MARK
#undef KVTC__TCG_LAUNCHED

#endif /* KVTC_CUDA_IMPLEMENTATION */
