/* kvtc_cuda.cuh - GPU kernels of kvtc and their host launchers.  v1.0.0
 *
 * The declarations below are plain C (they need kvtc.h and the CUDA runtime
 * headers), so a C program can call the launchers. The kernels and launcher
 * bodies sit behind KVTC_CUDA_IMPLEMENTATION, defined in one .cu file:
 *
 *   #define KVTC_IMPLEMENTATION        // kvtc.h's CPU code, once per program
 *   #define KVTC_CUDA_IMPLEMENTATION
 *   #include "kvtc_cuda.cuh"
 *
 *   nvcc -std=c++17 -O3 -arch=sm_90 -I. my_engine.cu
 *
 * Every launcher takes a stream (last), returns kvtc_status, allocates
 * nothing, never synchronises, and checks its launch. Device memory always
 * comes from the caller, sized by a *_bytes() helper.
 *
 * Records are byte-identical to kvtc.h's (same layout, same arithmetic in the
 * same order, kvtc.h's norms included) for the Hadamard, NONE and DENSE
 * rotations; only TQ_PROD's residual norm is summed in double in another
 * order, which can move it across a rounding edge with probability ~1e-9,
 * and the bulk fp16/bf16 compress (kvtc__k_compress_mma, launches of 8192
 * vectors or more) rotates with tensor cores: a coordinate within float
 * rounding of a cell boundary may take the other cell (~6e-7 of them).
 * Bit-parity assumes the CPU build does not contract a*b+c into fma (true for
 * gcc -std=c99/c11, or -ffp-contract=off).
 * Alignment: tensors and caches 16-byte aligned (cudaMalloc's are) take the
 * fast paths; others are served by the generic kernels.
 *
 * Sections: >>codec-upload >>compress >>compress-fast >>compress-mma >>decompress >>attention >>tc-gpu
 */
#ifndef KVTC_CUDA_CUH_INCLUDED
#define KVTC_CUDA_CUH_INCLUDED

#include <cuda_runtime_api.h>
#include "kvtc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element type of uncompressed tensors on the GPU. */
typedef enum kvtc_dtype {
    KVTC_DTYPE_DEFAULT = 0, /* F16 */
    KVTC_DTYPE_F16,
    KVTC_DTYPE_BF16,
    KVTC_DTYPE_F32,
    KVTC_DTYPE_COUNT
} kvtc_dtype;

/* Status bits a kernel ORs into an optional device word (see launchers). */
#define KVTC_CUDA_FLAG_NONFINITE 1u /* a vector had NaN/Inf: stored as zero */
#define KVTC_CUDA_FLAG_RANGE 2u     /* a norm/scale overflowed its type: stored as zero */
#define KVTC_CUDA_FLAG_BAD_SLOT 4u  /* a slot was < -1 or beyond the cache: token skipped */

/* A codec's tables in device memory. `meta` is the host codec's description
 * (parameters, sizes, codebook) with its table pointers cleared. */
typedef struct kvtc_cuda_codec {
    kvtc_codec meta;
    const float *d_centroids, *d_boundaries; /* 2^mse_bits, 2^mse_bits - 1 */
    const float *d_signs;                    /* HADAMARD: rounds x head_dim */
    const uint16_t *d_perm;                  /* HADAMARD, permuted: rounds x head_dim */
    const float *d_matrix, *d_matrix_t;      /* DENSE: P and P^T, row-major */
    const float *d_qjl_t;                    /* TQ_PROD: S^T, head_dim x qjl_dim (S itself follows it) */
} kvtc_cuda_codec;

/* Device bytes kvtc_cuda_codec_init needs for codec c's tables. */
KVTC_DEF kvtc_status kvtc_cuda_codec_bytes(const kvtc_codec *c, size_t *bytes);
/* Upload c's tables into d_mem (d_mem_bytes from kvtc_cuda_codec_bytes) on
 * `stream`; c may be destroyed once this returns. */
KVTC_DEF kvtc_status kvtc_cuda_codec_init(const kvtc_codec *c, void *d_mem, size_t d_mem_bytes, kvtc_cuda_codec *out,
                                          cudaStream_t stream);

/* Compress keys and values [n_tokens][n_kv_heads][head_dim] of `dtype` into
 * their paged caches at slot_mapping[token] (-1 = skip), keys with kc and
 * values with vc, in one launch. vc/d_v/d_v_cache may all be NULL (keys only).
 * d_status (may be NULL) receives KVTC_CUDA_FLAG_* bits. */
KVTC_DEF kvtc_status kvtc_cuda_cache_write(const kvtc_cuda_codec *kc, const kvtc_cuda_codec *vc,
                                           const kvtc_cache_params *cp, const void *d_k, const void *d_v,
                                           kvtc_dtype dtype, size_t n_tokens, const int64_t *d_slot_mapping,
                                           void *d_k_cache, size_t k_cache_bytes, void *d_v_cache,
                                           size_t v_cache_bytes, unsigned int *d_status, cudaStream_t stream);
/* Decompress tokens from their slots into d_out [n_tokens][n_kv_heads][head_dim]
 * of `dtype` (a slot of -1, or an invalid one, gives zeros). */
KVTC_DEF kvtc_status kvtc_cuda_cache_read(const kvtc_cuda_codec *c, const kvtc_cache_params *cp, const void *d_cache,
                                          size_t cache_bytes, size_t n_tokens, const int64_t *d_slot_mapping,
                                          void *d_out, kvtc_dtype dtype, size_t out_count, cudaStream_t stream);
/* Encode n vectors [n][head_dim] into the flat layout of kvtc_codec_encode. */
KVTC_DEF kvtc_status kvtc_cuda_encode(const kvtc_cuda_codec *c, const void *d_x, kvtc_dtype dtype, size_t n_vectors,
                                      void *d_out, size_t out_bytes, unsigned int *d_status, cudaStream_t stream);
/* Decode n vectors from the flat layout into d_x [n][head_dim] of `dtype`. */
KVTC_DEF kvtc_status kvtc_cuda_decode(const kvtc_cuda_codec *c, const void *d_in, size_t in_bytes, size_t n_vectors,
                                      void *d_x, kvtc_dtype dtype, size_t x_count, cudaStream_t stream);

/* >>attention
 * Fused paged decode attention over compressed caches (CPU twin:
 * kvtc_attn_decode). One query token per sequence; query head h reads KV head
 * h / (n_q_heads / n_kv_heads). Keys: TQ_MSE or TQ_PROD (qjl_dim <= 256);
 * values: TQ_MSE or AFFINE; head_dim <= 256, gqa <= 8. Scores are computed in
 * the rotated domain straight from the codes, values accumulated in the
 * rotated domain and rotated back once. The context is split over
 * n_split blocks per (sequence, KV head) when that fills the GPU better; the
 * partials are merged by their log-sum-exp in a second kernel on the same
 * stream. Exact tokens (p->attn.max_exact > 0: fp16 sinks and a recent
 * window, see kvtc_attn_params; device pointers here, 16-byte aligned,
 * head_dim a multiple of 8, max_exact <= 2,097,120) are scored by a third
 * small kernel in fp32, 32 tokens per block, and enter that merge as more
 * partials, so they share the softmax of the compressed tokens. Device
 * counts cannot be checked by the host: an exact_lens (or context_lens)
 * entry out of range is clamped to it. No host synchronisation, no
 * host reads of device data: the launch can be captured in a CUDA graph.
 * Two kernels. SCALAR computes in fp32 on the CUDA cores. TENSOR runs both
 * products on tensor cores (mma m16n8k16, fp32 accumulation): the query
 * group is the n = 8 side, 16 tokens of keys the m side; codes become fp16
 * centroids through a pair table in shared memory (one 32-bit entry per
 * pair of codes, replicated per lane so lookups never conflict); the
 * rotated query enters as an fp16 hi + lo pair (its rounding error ~2^-22);
 * centroids (relative error <= 2^-11) and softmax weights are fp16. Its
 * error against kvtc_attn_decode is measured by the GPU tests. */
typedef enum kvtc_cuda_attn_kernel {
    KVTC_CUDA_ATTN_DEFAULT = 0, /* TENSOR where kvtc_cuda_attn_tensor_supported says so, else SCALAR */
    KVTC_CUDA_ATTN_SCALAR,      /* fp32 CUDA-core kernel: every supported combination, fp32 throughout */
    KVTC_CUDA_ATTN_TENSOR,      /* tensor-core kernel (fp16 operands, fp32 accumulation); else ERR_UNSUPPORTED */
    KVTC_CUDA_ATTN_KERNEL_COUNT
} kvtc_cuda_attn_kernel;

typedef struct kvtc_cuda_attn_params {
    kvtc_attn_params attn; /* shapes and softmax scale, as for kvtc_attn_decode */
    int n_split;           /* context splits; 0 = from n_sms and the shapes */
    int n_sms;             /* SM count for the automatic split; 0 = 132 */
    kvtc_dtype q_dtype;    /* queries [n_seqs][n_q_heads][head_dim] */
    kvtc_dtype out_dtype;  /* output, same shape */
    kvtc_cuda_attn_kernel kernel;
    int rotated_output;    /* 1: leave the output in the value codec's rotated domain (out' = P_v out), so an
                              engine can fold P_v^T into its output projection; 0: out as kvtc_attn_decode */
} kvtc_cuda_attn_params;

/* KVTC_OK if the kernels support this pair of codecs and group size. */
KVTC_DEF kvtc_status kvtc_cuda_attn_supported(const kvtc_cuda_codec *kc, const kvtc_cuda_codec *vc, int gqa);
/* KVTC_OK if the tensor-core kernel serves this combination: TQ_MSE keys and values with fp16 norms,
 * (key bits, value bits) one of K4/V4, K4/V2, K2/V2, K8/V4 (KVTC__ATTN_TC_SET; KVTC_CUDA_MINIMAL builds
 * K4/V4 only), head_dim 64, 128 or 256, gqa <= 8, block_size a multiple of 16. kvtc_cuda_attn_decode
 * also needs both caches 16-byte aligned for it, and rotated, scaled query coordinates |P q * scale *
 * log2(e)| below 65504 (they enter as fp16 hi + lo parts); DEFAULT uses SCALAR otherwise. */
KVTC_DEF kvtc_status kvtc_cuda_attn_tensor_supported(const kvtc_cuda_codec *kc, const kvtc_cuda_codec *vc, int gqa,
                                                     int block_size);
/* The split count the launcher will use (a pure function of the codecs and *p). */
KVTC_DEF kvtc_status kvtc_cuda_attn_splits(const kvtc_cuda_codec *kc, const kvtc_cuda_codec *vc,
                                           const kvtc_cuda_attn_params *p, int *n_split);
/* Device workspace bytes for the partials: one per split, and one per 32 exact tokens of max_exact
 * (0 when there is only one part). */
KVTC_DEF kvtc_status kvtc_cuda_attn_workspace_bytes(const kvtc_cuda_codec *kc, const kvtc_cuda_codec *vc,
                                                    const kvtc_cuda_attn_params *p, size_t *bytes);
/* d_lse (may be NULL) receives the natural-log sum-exp of the scores per
 * (sequence, query head), for cascading. */
KVTC_DEF kvtc_status kvtc_cuda_attn_decode(const kvtc_cuda_codec *kc, const kvtc_cuda_codec *vc,
                                           const kvtc_cuda_attn_params *p, const void *d_q, const void *d_k_cache,
                                           size_t k_cache_bytes, const void *d_v_cache, size_t v_cache_bytes,
                                           const int32_t *d_block_table, const int32_t *d_context_lens, void *d_out,
                                           size_t out_count, float *d_lse, void *d_workspace, size_t workspace_bytes,
                                           cudaStream_t stream);

/* >>tc-gpu ----------------------------------------------------------------
 * KVTC transform coding on the GPU (CPU twins: kvtc_tc_encode / kvtc_tc_decode).
 *
 * Like the rest of kvtc_cuda.cuh: every launcher
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
 *              checksum  kvtc_tc_record_checksum of each record, by pieces in
 *                        parallel (see below), written last.
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
 * 1024 tokens, 8x): per head compress 0.72 ms + decompress 0.54 ms with F16,
 * 0.96 + 0.74 ms with TF32X3; per layer (F16) 0.98 + 0.89 ms; the paper's
 * grouping (p = 65,536, rank 4096, F16, 20x) 1.82 + 1.93 ms; a device-to-device
 * copy of the chunk takes 68 us. Where the time goes: see the bench's
 * per-stage table (pack takes 0.31-0.36 ms; the tensor-core GEMM reaches
 * 290-350 TFLOP/s at the paper's shapes, under half of cuBLAS, and much less
 * at p = 128, where K is 128).
 *
 * Checksum (kvtc_tc_record_checksum): one thread per 256-byte piece of every
 * record hashes it with FNV-1a 64 (a serial chain of 256 steps), and
 * h = INIT P^n + sum_j f_j P^(n-1-j) mod 2^64 is an integer sum, reduced by
 * warps and atomicAdd (exact, so the order does not matter). One read of
 * each byte.
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
#endif /* KVTC_CUDA_CUH_INCLUDED */

/* ======================================================================== */
#if defined(KVTC_CUDA_IMPLEMENTATION) && !defined(KVTC_CUDA_IMPLEMENTATION_INCLUDED)
#define KVTC_CUDA_IMPLEMENTATION_INCLUDED
#ifndef __CUDACC__
#error "KVTC_CUDA_IMPLEMENTATION needs nvcc (define it in a .cu file)"
#endif
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <string.h>

#ifndef KVTC_CUDA_LOG /* a program may define it to print failing calls */
#define KVTC_CUDA_LOG(call, err, file, line) ((void)0)
#endif
#define KVTC_CUDA_CHECK(call)                                                                                          \
    do {                                                                                                               \
        cudaError_t e_ = (call);                                                                                       \
        if (e_ != cudaSuccess) {                                                                                       \
            KVTC_CUDA_LOG(#call, e_, __FILE__, __LINE__);                                                              \
            return kvtc__from_cuda(e_);                                                                                \
        }                                                                                                              \
    } while (0)

static kvtc_status kvtc__from_cuda(cudaError_t e) {
    if (e == cudaErrorMemoryAllocation) return KVTC_ERR_NOMEM;
    if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) return KVTC_ERR_NO_DEVICE;
    return KVTC_ERR_CUDA;
}

/* >>codec-upload */
typedef struct kvtc__cuda_tables { /* byte offsets of each table in the device block */
    size_t centroids, boundaries, signs, perm, matrix, matrix_t, qjl, qjl_t, bytes;
} kvtc__cuda_tables;

static kvtc__cuda_tables kvtc__cuda_tables_of(const kvtc_codec *c) {
    kvtc__cuda_tables t;
    size_t d = (size_t)c->params.head_dim, off = 0, rounds = (size_t)c->rot.rounds;
#define KVTC__TAKE(field, n) (t.field = off, off += ((n) + 255) & ~(size_t)255)
    KVTC__TAKE(centroids, sizeof(float) << KVTC_MAX_BITS);
    KVTC__TAKE(boundaries, sizeof(float) << KVTC_MAX_BITS);
    KVTC__TAKE(signs, c->rot.signs ? rounds * d * sizeof(float) : 0);
    KVTC__TAKE(perm, c->rot.perm ? rounds * d * sizeof(uint16_t) : 0);
    KVTC__TAKE(matrix, c->rot.matrix ? d * d * sizeof(float) : 0);
    KVTC__TAKE(matrix_t, c->rot.matrix ? d * d * sizeof(float) : 0);
    KVTC__TAKE(qjl, c->qjl ? (size_t)c->params.qjl_dim * d * sizeof(float) : 0);
    KVTC__TAKE(qjl_t, c->qjl ? (size_t)c->params.qjl_dim * d * sizeof(float) : 0);
#undef KVTC__TAKE
    t.bytes = off;
    return t;
}

KVTC_DEF kvtc_status kvtc_cuda_codec_bytes(const kvtc_codec *c, size_t *bytes) {
    if (!c || !bytes) return KVTC_ERR_NULL;
    *bytes = kvtc__cuda_tables_of(c).bytes;
    return KVTC_OK;
}

/* rows x cols row-major src -> cols x rows row-major dst */
__global__ void kvtc__k_transpose(const float *__restrict__ src, int rows, int cols, float *__restrict__ dst) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (long long)rows * cols) dst[(i % cols) * rows + i / cols] = src[i];
}

static kvtc_status kvtc__cuda_upload_t(const float *host, int rows, int cols, unsigned char *d_plain, unsigned char *d_t,
                                       cudaStream_t stream) {
    size_t n = (size_t)rows * (size_t)cols;
    KVTC_CUDA_CHECK(cudaMemcpyAsync(d_plain, host, n * sizeof(float), cudaMemcpyHostToDevice, stream));
    kvtc__k_transpose<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>((const float *)d_plain, rows, cols, (float *)d_t);
    KVTC_CUDA_CHECK(cudaGetLastError());
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_cuda_codec_init(const kvtc_codec *c, void *d_mem, size_t d_mem_bytes,
                                                     kvtc_cuda_codec *out, cudaStream_t stream) {
    kvtc__cuda_tables t;
    unsigned char *base = (unsigned char *)d_mem;
    size_t d;
    if (!c || !d_mem || !out) return KVTC_ERR_NULL;
    t = kvtc__cuda_tables_of(c);
    if (d_mem_bytes < t.bytes) return KVTC_ERR_SMALL;
    d = (size_t)c->params.head_dim;
    memset(out, 0, sizeof(*out));
    out->meta = *c;
    out->meta.rot.signs = NULL;
    out->meta.rot.perm = NULL;
    out->meta.rot.matrix = NULL;
    out->meta.qjl = NULL;
    KVTC_CUDA_CHECK(cudaMemcpyAsync(base + t.centroids, c->centroids, sizeof(c->centroids), cudaMemcpyHostToDevice, stream));
    KVTC_CUDA_CHECK(cudaMemcpyAsync(base + t.boundaries, c->boundaries, sizeof(c->boundaries), cudaMemcpyHostToDevice, stream));
    out->d_centroids = (const float *)(base + t.centroids);
    out->d_boundaries = (const float *)(base + t.boundaries);
    if (c->rot.signs) {
        KVTC_CUDA_CHECK(cudaMemcpyAsync(base + t.signs, c->rot.signs, (size_t)c->rot.rounds * d * sizeof(float),
                                        cudaMemcpyHostToDevice, stream));
        out->d_signs = (const float *)(base + t.signs);
    }
    if (c->rot.perm) {
        KVTC_CUDA_CHECK(cudaMemcpyAsync(base + t.perm, c->rot.perm, (size_t)c->rot.rounds * d * sizeof(uint16_t),
                                        cudaMemcpyHostToDevice, stream));
        out->d_perm = (const uint16_t *)(base + t.perm);
    }
    if (c->rot.matrix) {
        kvtc_status st = kvtc__cuda_upload_t(c->rot.matrix, (int)d, (int)d, base + t.matrix, base + t.matrix_t, stream);
        if (st != KVTC_OK) return st;
        out->d_matrix = (const float *)(base + t.matrix);
        out->d_matrix_t = (const float *)(base + t.matrix_t);
    }
    if (c->qjl) {
        kvtc_status st = kvtc__cuda_upload_t(c->qjl, c->params.qjl_dim, (int)d, base + t.qjl, base + t.qjl_t, stream);
        if (st != KVTC_OK) return st;
        out->d_qjl_t = (const float *)(base + t.qjl_t);
    }
    return KVTC_OK;
}

/* ---- device view of one codec and one tensor ------------------------------ */
struct kvtc__dc {
    const float *cent, *bnd, *signs, *mat, *mat_t, *qjl_t;
    const uint16_t *perm;
    const void *x; /* input (compress) */
    void *y;       /* output: cache (compress) or tensor (decompress) */
    const void *cache_in;
    unsigned long long off_codes, off_scales, off_qjl, off_rnorms, page_bytes;
    unsigned long long code_bytes, scale_bytes, qjl_bytes, rnorm_bytes;
    int method, d, bits, mse_bits, norm32, corr, m, gs, rot, rounds, block;
    float fwht_scale;
    float inv2r; /* kvtc__mma_inv2r: 0 = not for kvtc__k_compress_mma */
    float bscale; /* kvtc__fast8_bscale: 8 bits in kvtc__k_compress_fast, else 0 */
    int cfast, dfast; /* kvtc__k_compress_fast (kvtc__compress_fast_ok or bscale) and kvtc__k_decompress_fast can run */
};

struct kvtc__fastdiv { /* n / d for 0 <= n < 2^31 (Granlund and Montgomery 1994, round-up multiplier) */
    unsigned mul;
    int shift;
};
static kvtc__fastdiv kvtc__fastdiv_of(unsigned d) {
    kvtc__fastdiv f;
    int l = 0;
    while ((1ull << l) < d) ++l;
    f.shift = l;
    f.mul = (unsigned)((((1ull << 32) * ((1ull << l) - d)) / d) + 1);
    return f;
}
static __device__ __forceinline__ unsigned kvtc__div(unsigned n, kvtc__fastdiv f) { return (__umulhi(n, f.mul) + n) >> f.shift; }

struct kvtc__args {
    kvtc__dc t[2];                 /* K (blockIdx.y = 0) and V (1) */
    const long long *slots;        /* NULL: slot = token (flat layout) */
    long long n_vectors;           /* n_tokens * n_heads, < 2^31 */
    int n_heads, block_size, dtype;
    kvtc__fastdiv div_heads, div_bs; /* by n_heads, by block_size */
    long long n_slots;             /* n_blocks * block_size, < 2^31 */
    unsigned int *status;
};

#define KVTC__FULL 0xffffffffu
#define KVTC__WARPS 4 /* vectors per 128-thread block, one warp each */

static __device__ __forceinline__ float kvtc__load(const void *p, long long i, int dtype) {
    if (dtype == KVTC_DTYPE_F32) return ((const float *)p)[i];
    if (dtype == KVTC_DTYPE_BF16) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    return __half2float(((const __half *)p)[i]);
}
static __device__ __forceinline__ void kvtc__store(void *p, long long i, int dtype, float v) {
    if (dtype == KVTC_DTYPE_F32) ((float *)p)[i] = v;
    else if (dtype == KVTC_DTYPE_BF16) ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
    else ((__half *)p)[i] = __float2half_rn(v);
}
static __device__ __forceinline__ double kvtc__warp_sum(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(KVTC__FULL, v, o);
    return v;
}
static __device__ __forceinline__ float kvtc__warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(KVTC__FULL, v, o));
    return v;
}
/* Store a norm as the CPU does; returns what a decoder reads back. Norms and
 * scales are stored as whole aligned words (the layout keeps them 2- or
 * 4-byte aligned): byte stores of a half's bits were seen to store its value. */
static __device__ __forceinline__ float kvtc__put_norm(unsigned char *p, int norm32, float v) {
    if (norm32) {
        *(unsigned *)p = __float_as_uint(v);
        return v;
    }
    __half h = __float2half_rn(v);
    *(unsigned short *)p = __half_as_ushort(h);
    return __half2float(h);
}
static __device__ __forceinline__ float kvtc__get_norm(const unsigned char *p, int norm32) {
    if (norm32) return __uint_as_float(*(const unsigned *)p);
    return __half2float(__ushort_as_half(*(const unsigned short *)p));
}

/* Element i = p*32 + lane of a vector lives in x[p] of lane `lane` (strided
 * layout: a block of 2^k <= 32 coordinates spans lanes, larger blocks span p). */

/* Normalized FWHT on each block of `block` coordinates, butterflies in the
 * CPU's order: stage h pairs (j, j+h) into (a+b, a-b). */
template <int EPL>
static __device__ __forceinline__ void kvtc__fwht(float (&x)[EPL], int block, float scale, int lane) {
    for (int h = 1; h < block && h < 32; h <<= 1) {
#pragma unroll
        for (int p = 0; p < EPL; ++p) {
            float o = __shfl_xor_sync(KVTC__FULL, x[p], h);
            x[p] = (lane & h) ? __fsub_rn(o, x[p]) : __fadd_rn(x[p], o);
        }
    }
#pragma unroll
    for (int hp = 1; hp < EPL; hp <<= 1)
        if ((hp << 5) < block) {
#pragma unroll
            for (int p = 0; p < EPL; ++p)
                if (!(p & hp) && (p | hp) < EPL) {
                    float a = x[p], b = x[p | hp];
                    x[p] = __fadd_rn(a, b);
                    x[p | hp] = __fsub_rn(a, b);
                }
        }
#pragma unroll
    for (int p = 0; p < EPL; ++p) x[p] = __fmul_rn(x[p], scale);
}

/* y = P x (forward) or x = P^T y; buf is this warp's shared scratch of EPL*32 floats. */
template <int EPL>
static __device__ void kvtc__rotate(const kvtc__dc &c, float (&x)[EPL], float *buf, int lane, bool transpose) {
    if (c.rot == KVTC_ROTATION_DENSE) {
        const float *m = transpose ? c.mat : c.mat_t; /* both read as [j][i], coalesced over i */
#pragma unroll
        for (int p = 0; p < EPL; ++p) buf[p * 32 + lane] = x[p];
        __syncwarp();
#pragma unroll
        for (int p = 0; p < EPL; ++p) {
            int i = p * 32 + lane;
            float acc = 0.0f;
            if (i < c.d)
                for (int j = 0; j < c.d; ++j) acc = __fadd_rn(acc, __fmul_rn(m[(size_t)j * c.d + i], buf[j]));
            x[p] = acc;
        }
        __syncwarp();
        return;
    }
    if (c.rot != KVTC_ROTATION_HADAMARD) return;
    for (int rr = 0; rr < c.rounds; ++rr) {
        int r = transpose ? c.rounds - 1 - rr : rr;
        const float *s = c.signs + (size_t)r * c.d;
        const uint16_t *perm = c.perm ? c.perm + (size_t)r * c.d : NULL;
        if (transpose) kvtc__fwht<EPL>(x, c.block, c.fwht_scale, lane);
        if (!transpose) {
#pragma unroll
            for (int p = 0; p < EPL; ++p)
                if (p * 32 + lane < c.d) x[p] = __fmul_rn(x[p], s[p * 32 + lane]);
        }
        if (perm) { /* forward gathers x'[i] = x[perm[i]]; the transpose scatters back */
#pragma unroll
            for (int p = 0; p < EPL; ++p) {
                int i = p * 32 + lane;
                if (i < c.d) buf[transpose ? perm[i] : i] = x[p];
            }
            __syncwarp();
#pragma unroll
            for (int p = 0; p < EPL; ++p) {
                int i = p * 32 + lane;
                if (i < c.d) x[p] = buf[transpose ? i : perm[i]];
            }
            __syncwarp();
        }
        if (!transpose) kvtc__fwht<EPL>(x, c.block, c.fwht_scale, lane);
        if (transpose) {
#pragma unroll
            for (int p = 0; p < EPL; ++p)
                if (p * 32 + lane < c.d) x[p] = __fmul_rn(x[p], s[p * 32 + lane]);
        }
    }
}

/* Pack this warp's indices idx[0..d) (width b) into `out` (nbytes), LSB-first. */
static __device__ __forceinline__ void kvtc__pack_warp(const unsigned char *idx, int d, int b, unsigned char *out,
                                                       int nbytes, int lane) {
    for (int B = lane; B < nbytes; B += 32) {
        int bit = B * 8, e0 = bit / b, e1 = min((bit + 7) / b, d - 1);
        unsigned v = 0;
        for (int e = e0; e <= e1; ++e) {
            int sh = e * b - bit;
            v |= sh >= 0 ? ((unsigned)idx[e] << sh) : ((unsigned)idx[e] >> -sh);
        }
        out[B] = (unsigned char)v;
    }
}

static __device__ __forceinline__ unsigned kvtc__dcode_at(const unsigned char *row, int nbytes, int j, int b) {
    int bit = j * b, byte = bit >> 3;
    unsigned v = row[byte];
    if (byte + 1 < nbytes) v |= (unsigned)row[byte + 1] << 8;
    return (v >> (bit & 7)) & ((1u << b) - 1u);
}

/* Pointers to the sections of one slot: codes, scales, qjl, rnorm. */
struct kvtc__slotp {
    unsigned char *codes, *scales, *qjl, *rnorm;
};
static __device__ __forceinline__ kvtc__slotp kvtc__dslot(const kvtc__dc &c, unsigned char *page, int off) {
    kvtc__slotp s;
    s.codes = page + c.off_codes + off * c.code_bytes;
    s.scales = page + c.off_scales + off * c.scale_bytes;
    s.qjl = page + c.off_qjl + off * c.qjl_bytes;
    s.rnorm = page + c.off_rnorms + off * c.rnorm_bytes;
    return s;
}
static __device__ void kvtc__dzero_slot(const kvtc__dc &c, kvtc__slotp s, int lane) {
    for (int i = lane; i < (int)c.code_bytes; i += 32) s.codes[i] = 0;
    for (int i = lane; i < (int)c.scale_bytes; i += 32) s.scales[i] = 0;
    for (int i = lane; i < (int)c.qjl_bytes; i += 32) s.qjl[i] = 0;
    for (int i = lane; i < (int)c.rnorm_bytes; i += 32) s.rnorm[i] = 0;
}

/* Where vector v (token * n_heads + head) lives: its page and slot, or false.
 * The launcher guarantees n_vectors and n_blocks * block_size < 2^31. */
static __device__ __forceinline__ bool kvtc__locate(const kvtc__args &a, int v, long long *page, int *off, bool *bad) {
    int token = v / a.n_heads, head = v - token * a.n_heads, blk, slot;
    long long s64 = a.slots ? a.slots[token] : token;
    *bad = false;
    if (s64 == -1) return false;
    if (s64 < 0 || s64 >= a.n_slots) {
        *bad = true;
        return false;
    }
    slot = (int)s64;
    blk = slot / a.block_size;
    *page = (long long)blk * a.n_heads + head;
    *off = slot - blk * a.block_size;
    return true;
}

/* kvtc__locate with the launcher's dividers (kvtc__args.div_heads, div_bs), for v < n_vectors, in two steps: the
 * slot of a token (a load a caller may issue early), then where the slot puts the token's vector of one head */
static __device__ __forceinline__ long long kvtc__slot_fast(const kvtc__args &a, unsigned token) {
    return a.slots ? __ldg(a.slots + token) : (long long)token;
}
static __device__ __forceinline__ bool kvtc__place_fast(const kvtc__args &a, unsigned head, long long s64, long long *page,
                                                        int *off, bool *bad) {
    *bad = s64 < -1 || s64 >= a.n_slots;
    if (s64 == -1 || *bad) return false;
    const unsigned blk = kvtc__div((unsigned)s64, a.div_bs);
    *page = (long long)((unsigned long long)blk * (unsigned)a.n_heads + head);
    *off = (int)((unsigned)s64 - blk * (unsigned)a.block_size);
    return true;
}
static __device__ __forceinline__ bool kvtc__locate_fast(const kvtc__args &a, unsigned v, long long *page, int *off,
                                                         bool *bad) {
    const unsigned token = kvtc__div(v, a.div_heads);
    return kvtc__place_fast(a, v - token * (unsigned)a.n_heads, kvtc__slot_fast(a, token), page, off, bad);
}

/* kvtc__tree_sumsq of kvtc.h for one warp's vector: element p*32 + lane of the vector is x[p] (or, with
 * idx, cent[idx[i]] with idx in shared memory). Chunks of 16 go through shared scratch buf (EPL*32
 * floats) to lanes (chunk k to lane k % 32), whose sums the xor tree adds in kvtc.h's order (adding
 * the zero sums of absent chunks changes nothing). */
template <int EPL>
static __device__ float kvtc__tree_sumsq_warp(const kvtc__dc &c, const float (&x)[EPL], const unsigned char *idx,
                                              const float *cent, float *buf, int lane) {
    constexpr int NCH = (EPL * 32 + 15) / 16;
    if (!idx) {
        __syncwarp();
#pragma unroll
        for (int p = 0; p < EPL; ++p) buf[p * 32 + lane] = x[p];
    }
    __syncwarp();
    float part[NCH > 32 ? 2 : 1];
#pragma unroll
    for (int r = 0; r < (NCH > 32 ? 2 : 1); ++r) {
        const int k = lane + 32 * r;
        float acc = 0.0f;
        for (int j = 16 * k; j < c.d && j < 16 * k + 16; ++j) {
            const float v = idx ? cent[idx[j]] : buf[j];
            acc = __fmaf_rn(v, v, acc);
        }
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) acc = __fadd_rn(acc, __shfl_xor_sync(KVTC__FULL, acc, o));
        part[r] = acc;
    }
    __syncwarp();
    return NCH > 32 ? __fadd_rn(part[0], part[NCH > 32 ? 1 : 0]) : part[0];
}

/* >>compress
 * kvtc__k_compress<EPL>   CPU twin: kvtc_cache_write / kvtc_codec_encode
 * grid (ceil(n_vectors / 4), 1 or 2 tensors), block 128 (4 warps), one vector per warp
 * smem 4 * EPL * 160 B + 2 KiB tables; EPL=4: 80 regs, 0 spills @ sm_90, CUDA 13.0
 * measured bound: instruction issue (all 32 lanes repeat the per-vector scalar work), not HBM */
template <int EPL>
__global__ void __launch_bounds__(128, (EPL <= 4 ? 6 : 2)) kvtc__k_compress(const kvtc__args a) {
    __shared__ float s_cent[1 << KVTC_MAX_BITS], s_bnd[1 << KVTC_MAX_BITS];
    __shared__ float s_buf[KVTC__WARPS][EPL * 32];
    __shared__ unsigned char s_idx[KVTC__WARPS][EPL * 32];
    const kvtc__dc &c = a.t[blockIdx.y];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int v = blockIdx.x * KVTC__WARPS + warp;
    if (c.method != KVTC_METHOD_AFFINE)
        for (int i = threadIdx.x; i < (1 << c.mse_bits); i += blockDim.x) {
            s_cent[i] = c.cent[i];
            if (i + 1 < (1 << c.mse_bits)) s_bnd[i] = c.bnd[i];
        }
    __syncthreads();
    long long page;
    int off;
    bool bad;
    if (v >= a.n_vectors) return;
    if (!kvtc__locate(a, v, &page, &off, &bad)) {
        if (bad && lane == 0 && a.status) atomicOr(a.status, KVTC_CUDA_FLAG_BAD_SLOT);
        return;
    }
    kvtc__slotp s = kvtc__dslot(c, (unsigned char *)c.y + page * (long long)c.page_bytes, off);
    float x[EPL];
    bool finite = true;
#pragma unroll
    for (int p = 0; p < EPL; ++p) {
        int i = p * 32 + lane;
        x[p] = i < c.d ? kvtc__load(c.x, (long long)v * c.d + i, a.dtype) : 0.0f;
        finite = finite && isfinite(x[p]);
    }
    if (!__all_sync(KVTC__FULL, finite)) {
        kvtc__dzero_slot(c, s, lane);
        if (lane == 0 && a.status) atomicOr(a.status, KVTC_CUDA_FLAG_NONFINITE);
        return;
    }
    unsigned char *idx = s_idx[warp];
    float *buf = s_buf[warp];
    if (c.method == KVTC_METHOD_AFFINE) {
        const unsigned qmax = (1u << c.bits) - 1u;
        bool range_bad = false;
        /* group of element p*32+lane: lanes split into 32/gs groups per p, or gs/32 p's per group */
#pragma unroll
        for (int p = 0; p < EPL; ++p) {
            int i = p * 32 + lane;
            float lo = x[p], hi = x[p];
            if (c.gs <= 32) {
                for (int o = 1; o < c.gs; o <<= 1) {
                    lo = fminf(lo, __shfl_xor_sync(KVTC__FULL, lo, o));
                    hi = fmaxf(hi, __shfl_xor_sync(KVTC__FULL, hi, o));
                }
            } else {
                int p0 = (p * 32 / c.gs) * (c.gs / 32);
#pragma unroll
                for (int q = 0; q < EPL; ++q)
                    if (q >= p0 && q < p0 + c.gs / 32) lo = fminf(lo, x[q]), hi = fmaxf(hi, x[q]);
                for (int o = 1; o < 32; o <<= 1) {
                    lo = fminf(lo, __shfl_xor_sync(KVTC__FULL, lo, o));
                    hi = fmaxf(hi, __shfl_xor_sync(KVTC__FULL, hi, o));
                }
            }
            float mn = __half2float(__float2half_rn(lo));
            float scale = __half2float(__float2half_rn((float)(((double)hi - mn) / qmax)));
            if (i < c.d) {
                double q = scale > 0.0f ? floor(((double)x[p] - mn) / scale + 0.5) : 0.0;
                idx[i] = (unsigned char)(q < 0.0 ? 0 : q > qmax ? qmax : q);
                if (!isfinite(mn) || !isfinite(scale)) range_bad = true;
                if (i % c.gs == 0) /* {fp16 scale, fp16 min} as one little-endian word */
                    *(unsigned *)(s.scales + 4 * (i / c.gs)) = (unsigned)__half_as_ushort(__float2half_rn(scale)) |
                                                               ((unsigned)__half_as_ushort(__float2half_rn(mn)) << 16);
            }
        }
        if (__any_sync(KVTC__FULL, range_bad)) {
            kvtc__dzero_slot(c, s, lane);
            if (lane == 0 && a.status) atomicOr(a.status, KVTC_CUDA_FLAG_RANGE);
            return;
        }
        __syncwarp();
        kvtc__pack_warp(idx, c.d, c.bits, s.codes, (int)c.code_bytes, lane);
        return;
    }
    /* norm and unit vector exactly as kvtc.h computes them (kvtc__tree_sumsq's order; tiny or huge
     * vectors first scaled by a power of two) */
    float ss = kvtc__tree_sumsq_warp<EPL>(c, x, nullptr, nullptr, buf, lane);
    int e = 0;
    const bool scaled = !(ss >= 1e-30f && ss <= 3e38f);
    if (scaled) {
        float mx = 0.0f;
#pragma unroll
        for (int p = 0; p < EPL; ++p) mx = fmaxf(mx, fabsf(x[p]));
        mx = kvtc__warp_max(mx);
        if (mx == 0.0f) {
            kvtc__dzero_slot(c, s, lane);
            return;
        }
        e = ilogbf(mx);
#pragma unroll
        for (int p = 0; p < EPL; ++p) x[p] = ldexpf(x[p], -e);
        ss = kvtc__tree_sumsq_warp<EPL>(c, x, nullptr, nullptr, buf, lane);
    }
    float norm = __fsqrt_rn(ss);
    const float inv = __fdiv_rn(1.0f, norm);
#pragma unroll
    for (int p = 0; p < EPL; ++p) x[p] = __fmul_rn(x[p], inv);
    if (scaled) norm = ldexpf(norm, e);
    kvtc__rotate<EPL>(c, x, buf, lane, false);
    const int nb = (1 << c.mse_bits) - 1;
#pragma unroll
    for (int p = 0; p < EPL; ++p) {
        int i = p * 32 + lane;
        unsigned q = 0;
        for (int step = (nb + 1) >> 1; step > 0; step >>= 1)
            if (x[p] > s_bnd[q + step - 1]) q += step;
        if (i < c.d) idx[i] = (unsigned char)q;
    }
    __syncwarp();
    const float chat = c.corr > 0 ? kvtc__tree_sumsq_warp<EPL>(c, x, idx, s_cent, buf, lane) : 1.0f;
    float want = c.corr > 0 ? __fdiv_rn(norm, __fsqrt_rn(chat)) : norm, stored = 0.0f;
    if (lane == 0) stored = kvtc__put_norm(s.scales, c.norm32, want);
    stored = __shfl_sync(KVTC__FULL, stored, 0);
#ifdef KVTC_DEBUG
    if (v < 3 && lane == 0) printf("kvtc debug: v %d norm %.6g chat %.6g want %.6g stored %.6g\n", v, norm, chat, want, stored);
#endif
    if (!isfinite(stored)) {
        kvtc__dzero_slot(c, s, lane);
        if (lane == 0 && a.status) atomicOr(a.status, KVTC_CUDA_FLAG_RANGE);
        return;
    }
    __syncwarp();
    kvtc__pack_warp(idx, c.d, c.mse_bits, s.codes, (int)c.code_bytes, lane);
    if (c.method == KVTC_METHOD_TQ_PROD) {
        /* residual in the rotated domain against what a decoder rebuilds, then m sign bits of S r */
        double rr = 0.0;
#pragma unroll
        for (int p = 0; p < EPL; ++p) {
            int i = p * 32 + lane;
            if (i < c.d) {
                float r = (float)__dsub_rn(__dmul_rn((double)x[p], norm), __dmul_rn((double)stored, (double)s_cent[idx[i]]));
                buf[i] = r;
                rr += (double)r * (double)r;
            }
        }
        rr = kvtc__warp_sum(rr);
        __syncwarp();
        for (int k0 = 0; k0 < c.m; k0 += 32) {
            int k = k0 + lane;
            float acc = 0.0f;
            if (k < c.m)
                for (int j = 0; j < c.d; ++j) acc = __fadd_rn(acc, __fmul_rn(c.qjl_t[(size_t)j * c.m + k], buf[j]));
            unsigned bits = __ballot_sync(KVTC__FULL, k < c.m && acc >= 0.0f);
            if (lane < 4 && k0 / 8 + lane < (int)c.qjl_bytes) s.qjl[k0 / 8 + lane] = (unsigned char)(bits >> (8 * lane));
        }
        if (lane == 0 && !isfinite(kvtc__put_norm(s.rnorm, c.norm32, (float)sqrt(rr)))) {
            if (a.status) atomicOr(a.status, KVTC_CUDA_FLAG_RANGE);
            stored = NAN;
        }
        stored = __shfl_sync(KVTC__FULL, stored, 0);
        if (stored != stored) kvtc__dzero_slot(c, s, lane);
    }
}

/* >>compress-fast
 * kvtc__k_compress_fast<D>   CPU twin: kvtc_cache_write / kvtc_codec_encode (same bytes)
 * For TQ_MSE with one randomized-Hadamard block of size D = head_dim (64, 128, 256, 512; up to 4 rounds)
 * and an exactly symmetric codebook of 1..4 or 8 bits (all of kvtc.h's are): L = D/16 lanes per vector,
 * lane li of a vector holding coordinates 16 li .. 16 li + 15, 32/L vectors per warp, grid-stride loop.
 * Sums of squares run as kvtc.h's chunk tree (a lane's 16 in order, then xor shuffles); the FWHT does
 * its stages h = 1..8 in registers and h = 16..D/2 by shuffles, each butterfly as the CPU computes it;
 * a coordinate's cell comes from a branch-free binary search over the 2^(bits-1) - 1 positive
 * boundaries in registers, or at 8 bits from a bucket table in shared memory and one comparison
 * (kvtc__fast8_bscale) (the symmetric codebook gives the negative side; y <= 0 searches with the next
 * float up, so ties go down exactly as in kvtc.h); codes leave as one 2*bits-byte store per lane.
 * grid (min(vectors / vectors per block, 2048), 1 or 2 tensors), block 256; bits switch per tensor at run time.
 * every D: 128 regs, 48-byte stack, 48 bytes of spills @ sm_90, CUDA 13.0 (2 blocks/SM); measured bound:
 * latency and the ALU pipe, not HBM (bench/RESULTS.md). bytes per vector: 2 D in (fp16), D bits/8 + 2 out */
/* The bits a TQ slot stores for norm `want` (fp16 or fp32; 0 for a blank slot) and whether the slot is blank:
 * the input was non-finite or zero, or the norm overflows its type (*range). */
static __device__ __forceinline__ unsigned kvtc__norm_bits(const kvtc__dc &c, float want, bool nonfinite, bool zero,
                                                           bool *range, bool *blank) {
    float readback = want;
    unsigned bits = __float_as_uint(want);
    if (!c.norm32) {
        const __half hh = __float2half_rn(want);
        bits = __half_as_ushort(hh);
        readback = __half2float(hh);
    }
    *range = !nonfinite && !zero && !isfinite(readback);
    *blank = nonfinite || zero || *range;
    return *blank ? 0u : bits;
}
static __device__ __forceinline__ void kvtc__put_norm_bits(const kvtc__dc &c, unsigned char *pg, int off, unsigned bits) {
    unsigned char *sc = pg + c.off_scales + (size_t)off * c.scale_bytes;
    if (c.norm32) *(unsigned *)sc = bits;
    else *(unsigned short *)sc = (unsigned short)bits;
}
template <int L>
static __device__ __forceinline__ float kvtc__group_sum(float v) { /* kvtc.h's tree over the L chunk sums */
#pragma unroll
    for (int o = 1; o < L; o <<= 1) v = __fadd_rn(v, __shfl_xor_sync(KVTC__FULL, v, o));
    return v;
}

/* The unnormalized FWHT of a vector of 16 L coordinates, lane li of its L lanes holding [16 li, 16 li + 16):
 * 4 stages in registers, then log2 L across the lanes, in the CPU's butterfly order. Every lane shuffles. */
template <int L>
static __device__ __forceinline__ void kvtc__fwht_lanes(float (&x)[16], int li) {
#pragma unroll
    for (int h = 1; h < 16; h <<= 1)
#pragma unroll
        for (int e = 0; e < 16; ++e)
            if (!(e & h)) {
                const float p = x[e], q = x[e + h];
                x[e] = __fadd_rn(p, q);
                x[e + h] = __fsub_rn(p, q);
            }
#pragma unroll
    for (int o = 1; o < L; o <<= 1) {
        const float sg = (li & o) ? -1.0f : 1.0f; /* upper half: partner - own, exactly a - b */
#pragma unroll
        for (int e = 0; e < 16; ++e) x[e] = __fmaf_rn(x[e], sg, __shfl_xor_sync(KVTC__FULL, x[e], o));
    }
}

/* smask[r] bit e: whether coordinate 16 li + e changes sign in Hadamard round r (rounds past c.rounds: 0) */
template <int D>
static __device__ __forceinline__ void kvtc__lane_signs(const kvtc__dc &c, int li, unsigned (&smask)[4]) {
#pragma unroll
    for (int r = 0; r < 4; ++r) {
        smask[r] = 0u;
        if (r < c.rounds)
#pragma unroll
            for (int e = 0; e < 16; ++e) smask[r] |= (__ldg(c.signs + r * D + 16 * li + e) < 0.0f ? 1u : 0u) << e;
    }
}

#define KVTC__FAST_BUCKETS 1024u /* 8-bit cells in kvtc__k_compress_fast (kvtc__fast8_bscale) */
template <int D, int BITS>
static __device__ __forceinline__ void kvtc__compress_fast_body(const kvtc__args &a, const kvtc__dc &c, const float *s_mag,
                                                                const uint2 *s_bkt) {
    constexpr int L = D / 16, VPW = 32 / L, M = 1 << (BITS - 1);
    const int lane = threadIdx.x & 31, li = lane & (L - 1), warps = blockDim.x >> 5;
    float P[BITS <= 4 && M > 1 ? M - 1 : 1]; /* 1-4 bits: positive boundaries b[M], .., b[2M - 2]; b[M - 1] is 0 */
#pragma unroll
    for (int j = 0; j < (BITS <= 4 ? M - 1 : 0); ++j) P[j] = __ldg(c.bnd + M + j);
    unsigned smask[4]; /* bit e: coordinate 16 li + e changes sign in round r */
    kvtc__lane_signs<D>(c, li, smask);
    const long long stride = (long long)gridDim.x * warps * VPW;
    for (long long v0 = ((long long)blockIdx.x * warps + (threadIdx.x >> 5)) * VPW; v0 < a.n_vectors; v0 += stride) {
        const long long v = v0 + lane / L;
        /* ---- where the vector goes */
        bool bad = false;
        long long page = 0;
        int off = 0;
        const bool valid = v < a.n_vectors && kvtc__locate_fast(a, (unsigned)v, &page, &off, &bad);
        /* ---- 16 coordinates */
        float x[16];
        const long long base = v * D + 16 * li;
        if (!valid) {
#pragma unroll
            for (int e = 0; e < 16; ++e) x[e] = 0.0f;
        } else if (a.dtype == KVTC_DTYPE_F32) {
#pragma unroll
            for (int q = 0; q < 4; ++q) {
                const float4 f = __ldg((const float4 *)((const float *)c.x + base) + q);
                x[4 * q] = f.x, x[4 * q + 1] = f.y, x[4 * q + 2] = f.z, x[4 * q + 3] = f.w;
            }
        } else {
#pragma unroll
            for (int q = 0; q < 2; ++q) {
                const uint4 u = __ldg((const uint4 *)((const unsigned short *)c.x + base) + q);
                const unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
                for (int k = 0; k < 4; ++k) {
                    if (a.dtype == KVTC_DTYPE_BF16) {
                        x[8 * q + 2 * k] = __uint_as_float(w[k] << 16);
                        x[8 * q + 2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
                    } else {
                        const float2 f = __half22float2(*(const __half2 *)&w[k]);
                        x[8 * q + 2 * k] = f.x, x[8 * q + 2 * k + 1] = f.y;
                    }
                }
            }
        }
        /* ---- norm (kvtc.h's arithmetic; tiny, huge or non-finite vectors take the careful path) */
        float ss = 0.0f;
#pragma unroll
        for (int e = 0; e < 16; ++e) ss = __fmaf_rn(x[e], x[e], ss);
        ss = kvtc__group_sum<L>(ss);
        const bool slow = !(ss >= 1e-30f && ss <= 3e38f);
        bool nonfinite = false, zero = false;
        int ex = 0;
        if (__any_sync(KVTC__FULL, slow && valid)) {
            bool fin = true;
            float mx = 0.0f;
#pragma unroll
            for (int e = 0; e < 16; ++e) fin = fin && isfinite(x[e]), mx = fmaxf(mx, fabsf(x[e]));
            int all_fin = fin; /* every lane shuffles: no short-circuit around a full-mask shuffle */
#pragma unroll
            for (int o = 1; o < L; o <<= 1) {
                all_fin &= __shfl_xor_sync(KVTC__FULL, all_fin, o);
                mx = fmaxf(mx, __shfl_xor_sync(KVTC__FULL, mx, o));
            }
            fin = all_fin != 0;
            nonfinite = slow && !fin;
            zero = slow && fin && mx == 0.0f;
            const bool scale = slow && fin && mx > 0.0f;
            ex = scale ? ilogbf(mx) : 0;
            float s2 = 0.0f;
#pragma unroll
            for (int e = 0; e < 16; ++e) {
                x[e] = scale ? ldexpf(x[e], -ex) : x[e];
                s2 = __fmaf_rn(x[e], x[e], s2);
            }
            s2 = kvtc__group_sum<L>(s2);
            ss = scale ? s2 : ss;
        }
        float norm = __fsqrt_rn(ss);
        const float inv = __fdiv_rn(1.0f, norm);
#pragma unroll
        for (int e = 0; e < 16; ++e) x[e] = __fmul_rn(x[e], inv);
        if (ex) norm = ldexpf(norm, ex);
        /* ---- rotate: per round signs, then the FWHT over the whole vector, then its scale */
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            if (r >= c.rounds) break;
#pragma unroll
            for (int e = 0; e < 16; ++e) x[e] = __uint_as_float(__float_as_uint(x[e]) ^ (((smask[r] >> e) & 1u) << 31));
            kvtc__fwht_lanes<L>(x, li);
#pragma unroll
            for (int e = 0; e < 16; ++e) x[e] = __fmul_rn(x[e], c.fwht_scale);
        }
        /* ---- cells, and the squared norm of the centroids in kvtc.h's order */
        unsigned idx[16];
        float chat = 0.0f;
#pragma unroll
        for (int e = 0; e < 16; ++e) {
            const bool pos = x[e] > 0.0f;
            const float aa = fabsf(x[e]), av = pos ? aa : __uint_as_float(__float_as_uint(aa) + 1u); /* a >= b <=> next(a) > b */
            int mag = 0;
            if (M == 2) mag = av > P[0];
            if (M == 4) {
                const int c1 = av > P[1];
                mag = 2 * c1 + (av > (c1 ? P[2] : P[0]));
            }
            if (M == 8) {
                const int c1 = av > P[3], c2 = av > (c1 ? P[5] : P[1]);
                const float t3 = c1 ? (c2 ? P[6] : P[4]) : (c2 ? P[2] : P[0]);
                mag = 4 * c1 + 2 * c2 + (av > t3);
            }
            if (M == 128) { /* av's bucket holds the count of boundaries below it and at most one boundary */
                const uint2 bk = s_bkt[min(__float2uint_rz(__fmul_rn(av, c.bscale)), KVTC__FAST_BUCKETS - 1u)];
                mag = (int)bk.y + (av > __uint_as_float(bk.x));
            }
            idx[e] = pos ? (unsigned)(M + mag) : (unsigned)(M - 1 - mag);
            if (c.corr > 0) {
                const float cm = s_mag[mag];
                chat = __fmaf_rn(cm, cm, chat);
            }
        }
        float want = norm;
        if (c.corr > 0) want = __fdiv_rn(norm, __fsqrt_rn(kvtc__group_sum<L>(chat)));
        /* ---- store: the norm, then this lane's 2*BITS bytes of codes */
        bool range, blank;
        const unsigned nbits = kvtc__norm_bits(c, want, nonfinite, zero, &range, &blank);
        if (a.status && li == 0 && valid && (nonfinite || range))
            atomicOr(a.status, nonfinite ? KVTC_CUDA_FLAG_NONFINITE : KVTC_CUDA_FLAG_RANGE);
        if (a.status && li == 0 && bad) atomicOr(a.status, KVTC_CUDA_FLAG_BAD_SLOT);
        if (!valid) continue;
        unsigned char *pg = (unsigned char *)c.y + page * (long long)c.page_bytes;
        if (li == 0) kvtc__put_norm_bits(c, pg, off, nbits);
        unsigned char *cp = pg + c.off_codes + (size_t)off * c.code_bytes + 2 * BITS * li;
        if (BITS == 8) {
            unsigned w[4] = {0u, 0u, 0u, 0u};
#pragma unroll
            for (int e = 0; e < 16; ++e) w[e >> 2] |= idx[e] << (8 * (e & 3));
            *(uint4 *)cp = blank ? make_uint4(0u, 0u, 0u, 0u) : make_uint4(w[0], w[1], w[2], w[3]);
            continue;
        }
        unsigned long long bits = 0;
#pragma unroll
        for (int e = 0; e < 16; ++e) bits |= (unsigned long long)idx[e] << (BITS * e);
        if (blank) bits = 0;
        if (BITS == 4) *(uint2 *)cp = make_uint2((unsigned)bits, (unsigned)(bits >> 32));
        else if (BITS == 2) *(unsigned *)cp = (unsigned)bits;
        else if (BITS == 1) *(unsigned short *)cp = (unsigned short)bits;
        else {
            unsigned short *cp16 = (unsigned short *)cp; /* 6 bytes, 2-aligned */
            cp16[0] = (unsigned short)bits, cp16[1] = (unsigned short)(bits >> 16), cp16[2] = (unsigned short)(bits >> 32);
        }
    }
}

template <int D>
__global__ void __launch_bounds__(256) kvtc__k_compress_fast(const kvtc__args a) {
    __shared__ float s_mag[128];                   /* centroid magnitudes c[M + j] */
    __shared__ uint2 s_bkt[KVTC__FAST_BUCKETS]; /* 8 bits: {boundary bits (none: +inf), boundaries below} */
    __shared__ unsigned s_pb[128];                 /* 8 bits: the positive boundaries' buckets */
    const kvtc__dc &c = a.t[blockIdx.y];
    const int M = 1 << (c.mse_bits - 1);
    if (threadIdx.x < M) s_mag[threadIdx.x] = __ldg(c.cent + M + threadIdx.x);
    if (c.mse_bits == 8) { /* bucket k of av: [k, k + 1) / bscale (kvtc__fast8_bscale) */
        if (threadIdx.x < M - 1) s_pb[threadIdx.x] = __float2uint_rz(__fmul_rn(__ldg(c.bnd + M + threadIdx.x), c.bscale));
        __syncthreads();
        for (unsigned k = threadIdx.x; k < KVTC__FAST_BUCKETS; k += blockDim.x) {
            unsigned lo = 0; /* boundaries in lower buckets: a binary search over the sorted s_pb[0 .. 126] */
#pragma unroll
            for (unsigned step = 64; step > 0; step >>= 1) lo += lo + step - 1 < 127u && s_pb[lo + step - 1] < k ? step : 0u;
            s_bkt[k] = make_uint2(lo < 127u && s_pb[lo] == k ? __float_as_uint(__ldg(c.bnd + M + lo)) : 0x7f800000u, lo);
        }
    }
    __syncthreads();
    switch (c.mse_bits) {
    case 1: kvtc__compress_fast_body<D, 1>(a, c, s_mag, s_bkt); break;
    case 2: kvtc__compress_fast_body<D, 2>(a, c, s_mag, s_bkt); break;
    case 3: kvtc__compress_fast_body<D, 3>(a, c, s_mag, s_bkt); break;
    case 8: kvtc__compress_fast_body<D, 8>(a, c, s_mag, s_bkt); break;
    default: kvtc__compress_fast_body<D, 4>(a, c, s_mag, s_bkt); break;
    }
}

/* Whether codec c (1-4 bits, or max_bits = 8 for any width up to 8) can run kvtc__k_compress_fast: TQ_MSE,
 * one Hadamard block over the whole vector, an exactly symmetric codebook; checked on the host copy of its tables. */
static int kvtc__compress_fast_ok(const kvtc_codec *c, int max_bits = 4) {
    const int d = c->params.head_dim, b = c->mse_bits, nb = (1 << b) - 1;
    int k;
    if (c->params.method != KVTC_METHOD_TQ_MSE || c->params.rotation != KVTC_ROTATION_HADAMARD || c->rot.block != d ||
        c->rot.rounds < 1 || c->rot.rounds > 4 || b < 1 || b > max_bits || (d != 64 && d != 128 && d != 256 && d != 512))
        return 0;
    if (c->boundaries[(nb - 1) / 2] != 0.0f) return 0;
    for (k = 0; k < nb; ++k)
        if (c->boundaries[k] != -c->boundaries[nb - 1 - k]) return 0;
    for (k = 0; k <= nb; ++k)
        if (c->centroids[k] != -c->centroids[nb - k]) return 0;
    return 1;
}
/* 8 bits in kvtc__k_compress_fast: the cell of |y| is found from one of KVTC__FAST_BUCKETS buckets of
 * [0, 1.0625 b_max) by av * bscale (rounded down), which holds the number of positive boundaries below it and
 * at most one boundary, so one exact comparison finishes the search. bscale, or 0 when codec c cannot use
 * it (two positive boundaries would share a bucket); the buckets are computed with the kernel's float ops. */
static float kvtc__fast8_bscale(const kvtc_codec *c) {
    const int M = 128;
    float bs;
    unsigned prev = 0;
    int j;
    if (c->mse_bits != 8 || !kvtc__compress_fast_ok(c, 8)) return 0.0f;
    bs = (float)(KVTC__FAST_BUCKETS / (1.0625 * (double)c->boundaries[2 * M - 2]));
    for (j = 0; j < M - 1; ++j) {
        volatile float v = c->boundaries[M + j] * bs; /* one binary32 product, as __fmul_rn */
        const unsigned k = (unsigned)v;
        if (k >= KVTC__FAST_BUCKETS || (j && k == prev)) return 0.0f;
        prev = k;
    }
    return bs;
}

/* ---- shared device helpers: mma.sync, cp.async, shared loads on 32-bit addresses ---------------------
 * kvtc__mma16816: fragment layout with the tensor-core attention (>>attention). */
static __device__ __forceinline__ void kvtc__mma16816(float (&c)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                                                      unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
static __device__ __forceinline__ unsigned kvtc__lds(unsigned addr) { /* addr: shared window */
    unsigned v;
    asm("ld.shared.u32 %0, [%1];" : "=r"(v) : "r"(addr) : "memory"); /* stays between the block's barriers */
    return v;
}
/* N words at shared-window address p (16-byte aligned when N >= 4); like kvtc__lds, ordered by the barriers */
template <int N>
static __device__ __forceinline__ void kvtc__lds_words(unsigned p, unsigned (&w)[N]) {
    if (N == 1) {
        w[0] = kvtc__lds(p);
    } else if (N == 2) {
        asm("ld.shared.v2.u32 {%0, %1}, [%2];" : "=r"(w[0]), "=r"(w[1]) : "r"(p) : "memory");
    } else {
#pragma unroll
        for (int i = 0; i < N / 4; ++i)
            asm("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];"
                : "=r"(w[4 * i]), "=r"(w[4 * i + 1]), "=r"(w[4 * i + 2]), "=r"(w[4 * i + 3])
                : "r"(p + 16 * i)
                : "memory");
    }
}
template <int N>
static __device__ __forceinline__ void kvtc__cp_async(unsigned dst, const void *src) {
    static_assert(N == 4 || N == 8 || N % 16 == 0, "cp.async size");
    if (N == 4) asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src) : "memory");
    else if (N == 8) asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n" ::"r"(dst), "l"(src) : "memory");
    else
#pragma unroll
        for (int i = 0; i < N / 16; ++i)
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst + 16 * i), "l"((const char *)src + 16 * i)
                         : "memory");
}
static __device__ __forceinline__ void kvtc__cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
static __device__ __forceinline__ void kvtc__cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

/* >>compress-mma
 * kvtc__k_compress_mma<D, BF>   CPU twin: kvtc_cache_write / kvtc_codec_encode
 * fp16 (BF false) or bf16 input, D = 64, 128 or 256, TQ_MSE with one Hadamard round over the whole
 * vector, 1-4 bits, a codebook that kvtc__mma_inv2r accepts. A warp takes 16 vectors at a time (a group:
 * kvtc__mma_group);
 * cp.async brings them (16 rows of 2D bytes, the 16-byte pieces XOR-swizzled so the reads below are
 * free of bank conflicts) into a ring of KVTC__MMA_STAGES stages per warp. With g = lane / 4, t = lane
 * % 4, lane (g, t) owns rows g and g + 8 (one after the other, one row's registers at a time), coordinates
 * [W t, W t + W), W = D / 4: whole chunks of kvtc.h's sum tree, so the norm and the centroid sum add in
 * kvtc.h's order (the norm's coordinates made floats by mmas: kvtc__mma_sumsq_tc).
 * Rotation: H_D(s x) in one pass. A coordinate W t + 8 i + e (i < D / 32, e < 8) has inner bits {bit 0 of
 * e, bit 2 of e, t} and outer bits {bit 1 of e, i}: H_D = H_16 (inner) x H_{D/16} (outer). The inner part is
 * one m16n8k16 mma per (i, n-tile) and vector row (g, then g + 8), whose A fragment is the row's 16-byte
 * piece i as loaded, no moves: a0 = (c0, c1) and a2 = (c4, c5) are M-row g, a1 = (c2, c3) and a3 = (c6, c7)
 * M-row g + 8, each at k-slots {2t, 2t+1, 2t+8, 2t+9}. B = +-1 with the signs of the M-row-g coordinates
 * folded in, exact; the words of M-row g + 8 first change the signs where their coordinates' signs differ
 * from those two below (msk). Outputs: n-tile nt, column 2t + e' is coordinate bits t, 4 nt + e'. The outer
 * part is in-register butterflies: M-row g against g + 8 (bit 1), then over i. A lane ends with its
 * coordinates [W t, W t + W) of the row, output 8 i + 4 nt + 2 b1 + e' of its chunk.
 * Cells: s = sat(y sv + 1/2) with sv = fwht_scale / (2 R |x|) puts the codebook's boundaries b at
 * b / (2R) + 1/2; round(31 s) picks one of 32 buckets narrower than the least gap between boundaries,
 * and two shuffles give the bucket's boundary (2: none) and the cell below it. Unlike
 * kvtc__k_compress_fast this does not repeat kvtc.h's rounding (nor its division: sv takes a reciprocal
 * square root): a coordinate within float rounding of a boundary may take the other cell (rate in
 * bench/RESULTS.md, < 1e-5); everything else is the CPU's bytes. grid (min(groups / warps, one wave of
 * KVTC__MMA_SM_WARPS per SM), 1 or 2 tensors), block 32 KVTC__MMA_WARPS. */
#ifndef KVTC__MMA_WARPS
#define KVTC__MMA_WARPS 4 /* warps per block */
#endif
#ifndef KVTC__MMA_MIN_VECTORS
#define KVTC__MMA_MIN_VECTORS 8192 /* smaller launches (decode steps) take kvtc__k_compress_fast: less latency */
#endif
#ifndef KVTC__MMA_SM_WARPS
#define KVTC__MMA_SM_WARPS 16 /* warps per SM the registers are sized for at d <= 128 (128 registers) */
#endif
#ifndef KVTC__MMA_STAGES
#define KVTC__MMA_STAGES 2 /* groups of 16 vectors in flight per warp */
#endif

/* 1 / (2R) for kvtc__k_compress_mma's buckets, or 0 when codec c cannot use the kernel: R = 1.0625 x the
 * largest boundary, and 32 buckets of width 2R / 31 must each hold at most one boundary. */
static float kvtc__mma_inv2r(const kvtc_codec *c) {
    const int d = c->params.head_dim, nb = (1 << c->mse_bits) - 1;
    double bmax = 0.0, gmin = 1e30, r;
    int k;
    if (!kvtc__compress_fast_ok(c) || c->rot.rounds != 1 || (d != 64 && d != 128 && d != 256)) return 0.0f;
    for (k = 0; k < nb; ++k) {
        bmax = fmax(bmax, fabs((double)c->boundaries[k]));
        if (k) gmin = fmin(gmin, (double)c->boundaries[k] - c->boundaries[k - 1]);
    }
    r = bmax > 0.0 ? 1.0625 * bmax : 1.0;
    return 2.0 * r / 31.0 < 0.99 * gmin ? (float)(0.5 / r) : 0.0f;
}

static __device__ __forceinline__ void kvtc__cp_async16z(unsigned dst, const void *src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
template <bool BF>
static __device__ __forceinline__ void kvtc__mma_h(float (&c)[4], const unsigned (&x)[4], uint2 b) {
    if (BF)
        asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(x[0]), "r"(x[1]), "r"(x[2]), "r"(x[3]), "r"(b.x), "r"(b.y));
    else kvtc__mma16816(c, x[0], x[1], x[2], x[3], b.x, b.y);
}
template <bool BF>
static __device__ __forceinline__ float2 kvtc__pair_f32(unsigned w) {
    if (BF) return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xffff0000u));
    return __half22float2(*(const __half2 *)&w);
}
/* Byte offset of 16-byte piece p of row r in a stage (rows of 2D bytes): pieces XOR-swizzled within
 * their 128 bytes, so the 8 lanes of a quarter warp (rows 2q, 2q + 1, t = 0..3, pieces (D/32) t + i)
 * hit 8 different bank quads. */
template <int D>
static __device__ __forceinline__ unsigned kvtc__mma_piece(int r, int p) {
    return (unsigned)(r * 2 * D + 16 * (p ^ ((p >> 3) | ((r & 1) * (D / 64)))));
}
/* kvtc.h's tree over this lane's NQ chunk sums, then over the 4 lanes of a row (lanes ^1, ^2) */
template <int NQ>
static __device__ __forceinline__ float kvtc__mma_tree(float (&part)[NQ]) {
#pragma unroll
    for (int w = 1; w < NQ; w <<= 1)
#pragma unroll
        for (int q = 0; q < NQ; q += 2 * w) part[q] = __fadd_rn(part[q], part[q + w]);
    float v = part[0];
    v = __fadd_rn(v, __shfl_xor_sync(KVTC__FULL, v, 1));
    return __fadd_rn(v, __shfl_xor_sync(KVTC__FULL, v, 2));
}
/* SEG bytes of codes from w at p, in the widest stores p's alignment (that of SEG, at most 16) allows */
template <int SEG>
static __device__ __forceinline__ void kvtc__mma_store(unsigned char *p, const unsigned *w) {
    constexpr int AL = (SEG & -SEG) < 16 ? (SEG & -SEG) : 16;
#pragma unroll
    for (int o = 0; o < SEG; o += AL) {
        if (AL == 16) *(uint4 *)(p + o) = make_uint4(w[o / 4], w[o / 4 + 1], w[o / 4 + 2], w[o / 4 + 3]);
        else if (AL == 8) *(uint2 *)(p + o) = make_uint2(w[o / 4], w[o / 4 + 1]);
        else if (AL == 4) *(unsigned *)(p + o) = w[o / 4];
        else *(unsigned short *)(p + o) = (unsigned short)(w[o / 4] >> (8 * (o % 4)));
    }
}

/* kvtc.h's sum of squares of a row's coordinates times 2^-ex, from this lane's words w (coordinates W t + 2i, + 1),
 * over the row's 4 lanes */
template <int D, bool BF>
static __device__ __forceinline__ float kvtc__mma_sumsq(const unsigned (&w)[D / 8], int ex) {
    constexpr int NQ = D / 64; /* this lane's chunks of 16 */
    float part[NQ];
#pragma unroll
    for (int q = 0; q < NQ; ++q) {
        float acc = 0.0f;
#pragma unroll
        for (int i = 8 * q; i < 8 * q + 8; ++i) {
            const float2 p = kvtc__pair_f32<BF>(w[i]), f = make_float2(ldexpf(p.x, -ex), ldexpf(p.y, -ex));
            acc = __fmaf_rn(f.y, f.y, __fmaf_rn(f.x, f.x, acc));
        }
        part[q] = acc;
    }
    return kvtc__mma_tree<NQ>(part);
}
/* d = the m16n8k8 product of A = (a0, a1) and B = b, from zero */
template <bool BF>
static __device__ __forceinline__ void kvtc__mma_cvt(float (&d)[4], unsigned a0, unsigned a1, unsigned b) {
    if (BF)
        asm("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%7,%7,%7};\n"
            : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
            : "r"(a0), "r"(a1), "r"(b), "f"(0.0f));
    else
        asm("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%7,%7,%7};\n"
            : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
            : "r"(a0), "r"(a1), "r"(b), "f"(0.0f));
}
/* kvtc__mma_sumsq (ex = 0) of a row from its 16-byte pieces w as loaded, their fp16/bf16 pairs turned into floats
 * by two m16n8k8 mmas per piece instead of one conversion per coordinate: A = (c0 c1, c2 c3), then (c4 c5, c6 c7);
 * B = sel (kvtc__mma_sel: this lane's own k-slots 2t, 2t + 1 to columns 2t, 2t + 1), exactly (one product by 1
 * plus zeros; an Inf or NaN elsewhere in the row spoils the sum, and the careful path takes that row) */
template <int D, bool BF>
static __device__ __forceinline__ float kvtc__mma_sumsq_tc(const unsigned (&w)[D / 8], unsigned sel) {
    constexpr int NQ = D / 64;
    float part[NQ];
#pragma unroll
    for (int q = 0; q < NQ; ++q) part[q] = 0.0f;
#pragma unroll
    for (int i = 0; i < D / 32; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            float f[4];
            kvtc__mma_cvt<BF>(f, w[4 * i + 2 * h], w[4 * i + 2 * h + 1], sel);
#pragma unroll
            for (int e = 0; e < 4; ++e) part[i / 2] = __fmaf_rn(f[e], f[e], part[i / 2]);
        }
    return kvtc__mma_tree<NQ>(part);
}
/* the B word of kvtc__mma_sumsq_tc for lane (g, t): 1 at k-slot 2t for column g = 2t, at 2t + 1 for g = 2t + 1 */
template <bool BF>
static __device__ __forceinline__ unsigned kvtc__mma_sel(int g, int t) {
    const unsigned one = BF ? 0x3F80u : 0x3C00u;
    return (g == 2 * t ? one : 0u) | (g == 2 * t + 1 ? one << 16 : 0u);
}

/* The careful norm of a row whose sum of squares ss is tiny, huge or not finite, as kvtc__compress_fast_body
 * (the row's 4 lanes call it together): a non-finite or zero row is flagged, others rescaled by 2^-ex and
 * summed again. It reads this lane's words of the row again from the input (row: NULL past the group's last
 * row, as zeros); taking the registers by reference would put them on the stack every group. */
struct kvtc__mma_norm {
    float ss;
    int ex, nonfinite, zero;
};
template <int D, bool BF>
static __device__ __noinline__ kvtc__mma_norm kvtc__mma_careful(const uint4 *row, float ss) {
    constexpr int WW = D / 8;
    unsigned w[WW];
#pragma unroll
    for (int i = 0; i < WW / 4; ++i) {
        const uint4 q = row ? __ldg(row + i) : make_uint4(0u, 0u, 0u, 0u);
        w[4 * i] = q.x, w[4 * i + 1] = q.y, w[4 * i + 2] = q.z, w[4 * i + 3] = q.w;
    }
    const bool slow = !(ss >= 1e-30f && ss <= 3e38f);
    int fin = 1;
    float mx = 0.0f;
#pragma unroll
    for (int i = 0; i < WW; ++i) {
        const float2 f = kvtc__pair_f32<BF>(w[i]);
        fin &= isfinite(f.x) && isfinite(f.y);
        mx = fmaxf(mx, fmaxf(fabsf(f.x), fabsf(f.y)));
    }
#pragma unroll
    for (int o = 1; o < 4; o <<= 1) {
        fin &= __shfl_xor_sync(KVTC__FULL, fin, o);
        mx = fmaxf(mx, __shfl_xor_sync(KVTC__FULL, mx, o));
    }
    kvtc__mma_norm n;
    const bool scale = slow && fin && mx > 0.0f;
    n.nonfinite = slow && !fin;
    n.zero = slow && fin && mx == 0.0f;
    n.ex = scale ? ilogbf(mx) : 0;
    const float s2 = kvtc__mma_sumsq<D, BF>(w, n.ex);
    n.ss = scale ? s2 : ss;
    return n;
}

/* The launch's tokens and groups of kvtc__k_compress_mma, computed once per thread (n_vectors < 2^31: 32-bit
 * indices throughout). At d = 128 a group is 16 consecutive tokens of one head (tokens 16 (grp / n_heads) ..,
 * head grp % n_heads), so its records fill one page's slots in order; at d = 64 and 256, 16 consecutive
 * vectors. H100, 1M vectors, 4 bits (bench/RESULTS.md, 2026-12-07 07:20): head-major 212 -> 191 us at d = 128
 * (same run), but 124 us at d = 64 and 436 at d = 256, against 115 and 410 vector-major (05:28). */
struct kvtc__mma_geo {
    unsigned n_tok, n_groups;
};
template <int D>
static __device__ __forceinline__ kvtc__mma_geo kvtc__mma_geometry(const kvtc__args &a) {
    kvtc__mma_geo geo;
    geo.n_tok = (unsigned)a.n_vectors / (unsigned)a.n_heads;
    geo.n_groups = D == 128 ? ((geo.n_tok + 15) >> 4) * (unsigned)a.n_heads : ((unsigned)a.n_vectors + 15) >> 4;
    return geo;
}
/* Group grp: its first vector v0, the step between its rows' vectors, its rows (16, fewer in a last group),
 * and at d = 128 the token of row 0 and the head */
struct kvtc__mma_grp {
    unsigned v0, step, tok0, head;
    int rows;
};
template <int D>
static __device__ __forceinline__ kvtc__mma_grp kvtc__mma_group(const kvtc__args &a, const kvtc__mma_geo &geo, unsigned grp) {
    kvtc__mma_grp gr;
    if (D == 128) {
        const unsigned tb = kvtc__div(grp, a.div_heads), left = geo.n_tok - 16 * tb;
        gr.tok0 = 16 * tb, gr.head = grp - tb * (unsigned)a.n_heads;
        gr.v0 = gr.tok0 * (unsigned)a.n_heads + gr.head, gr.step = (unsigned)a.n_heads, gr.rows = left < 16 ? (int)left : 16;
    } else {
        const unsigned left = (unsigned)a.n_vectors - grp * 16;
        gr.v0 = grp * 16, gr.step = 1, gr.tok0 = gr.head = 0, gr.rows = left < 16 ? (int)left : 16;
    }
    return gr;
}
/* the token and head of row `row` of group gr */
template <int D>
static __device__ __forceinline__ void kvtc__mma_row(const kvtc__args &a, const kvtc__mma_grp &gr, int row, unsigned *token,
                                                     unsigned *head) {
    if (D == 128) {
        *token = gr.tok0 + row, *head = gr.head;
    } else {
        const unsigned v = gr.v0 + row;
        *token = kvtc__div(v, a.div_heads), *head = v - *token * (unsigned)a.n_heads;
    }
}
/* The slots of group grp's rows g and g + 8 (-1: no such row or group), loaded one group ahead of their use */
template <int D>
static __device__ __forceinline__ void kvtc__mma_slots(const kvtc__args &a, const kvtc__mma_geo &geo, unsigned grp, int g,
                                                       long long (&sl)[2]) {
    kvtc__mma_grp gr;
    gr.rows = 0;
    if (grp < geo.n_groups) gr = kvtc__mma_group<D>(a, geo, grp);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        unsigned token = 0, head;
        if (g + 8 * r < gr.rows) kvtc__mma_row<D>(a, gr, g + 8 * r, &token, &head);
        sl[r] = g + 8 * r < gr.rows ? kvtc__slot_fast(a, token) : -1;
    }
}
/* cp.async of group grp's rows into stage `stage` of this warp's ring, zeros past the last row; one commit
 * group even when there is nothing to copy */
template <int D>
static __device__ __forceinline__ void kvtc__mma_issue(const kvtc__args &a, const kvtc__dc &c, const kvtc__mma_geo &geo,
                                                       unsigned ring, unsigned grp, int stage) {
    constexpr int PR = D / 8; /* pieces per row */
    const int lane = threadIdx.x & 31;
    if (grp < geo.n_groups) {
        const kvtc__mma_grp gr = kvtc__mma_group<D>(a, geo, grp);
        const unsigned char *x = (const unsigned char *)c.x,
                            *src = x + (size_t)(gr.v0 + (lane / PR) * gr.step) * (2 * D) + 16 * (lane % PR);
        const size_t jstep = (size_t)gr.step * (32 / PR) * (2 * D); /* bytes between the rows of consecutive j */
        const unsigned dst = ring + stage * 32 * D;
        if (gr.rows == 16) /* all but a last partial group */
#pragma unroll
            for (int j = 0; j < D / 16; ++j)
                kvtc__cp_async<16>(dst + kvtc__mma_piece<D>((32 / PR) * j + lane / PR, lane % PR), src + j * jstep);
        else
#pragma unroll
            for (int j = 0; j < D / 16; ++j) {
                const int r = (32 / PR) * j + lane / PR;
                kvtc__cp_async16z(dst + kvtc__mma_piece<D>(r, lane % PR), r < gr.rows ? src + j * jstep : x, r < gr.rows ? 16 : 0);
            }
    }
    kvtc__cp_commit();
}

/* One tensor's groups for this warp (the kernel issued the ring's first KVTC__MMA_STAGES groups). Lane k holds
 * bucket k's boundary E (2: none) and the number LO of boundaries below it, and centroid CM of cell k. */
template <int D, int BITS, bool BF>
static __device__ __forceinline__ void kvtc__compress_mma_body(const kvtc__args &a, const kvtc__dc &c, const uint2 *s_b,
                                                               const unsigned (&msk)[D / 16], const kvtc__mma_geo &geo,
                                                               unsigned ring, float E, int LO, float CM) {
    constexpr int W = D / 4, WW = D / 8, PL = D / 32, NQ = W / 16, STAGE = 32 * D;
    constexpr int SEG = W * BITS / 8, CW = (SEG + 3) / 4;
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const float sq = __fmul_rn(c.inv2r, c.fwht_scale);
    const unsigned sel = kvtc__mma_sel<BF>(g, t);
    const unsigned gstride = gridDim.x * KVTC__MMA_WARPS, grp0 = blockIdx.x * KVTC__MMA_WARPS + (threadIdx.x >> 5);
    int stage = 0;
    long long sl[2]; /* the slots of the next rows to place */
    kvtc__mma_slots<D>(a, geo, grp0, g, sl);
    for (unsigned grp = grp0; grp < geo.n_groups; grp += gstride) {
        const kvtc__mma_grp gr = kvtc__mma_group<D>(a, geo, grp);
        kvtc__cp_wait<KVTC__MMA_STAGES - 1>();
        __syncwarp();
#pragma unroll
        for (int r = 0; r < 2; ++r) { /* vector rows g, then g + 8: one row's registers at a time */
            const int row = g + 8 * r;
            /* ---- where the row goes; after the last row, the next group's slot loads, which row 1's work hides */
            unsigned token, head = 0;
            bool bad = false;
            long long page = 0;
            int off = 0;
            if (row < gr.rows) kvtc__mma_row<D>(a, gr, row, &token, &head);
            const bool valid = row < gr.rows && kvtc__place_fast(a, head, sl[r], &page, &off, &bad);
            if (r == 1) kvtc__mma_slots<D>(a, geo, grp + gstride, g, sl);
            /* ---- this lane's words: xw[w] = coordinates W t + 2w, + 1; after the last row the stage takes a copy */
            unsigned xw[WW];
#pragma unroll
            for (int i = 0; i < PL; ++i) {
                unsigned w4[4];
                kvtc__lds_words<4>(ring + stage * STAGE + kvtc__mma_piece<D>(row, PL * t + i), w4);
#pragma unroll
                for (int k = 0; k < 4; ++k) xw[4 * i + k] = w4[k];
            }
            if (r == 1) {
                __syncwarp();
                kvtc__mma_issue<D>(a, c, geo, ring, grp + KVTC__MMA_STAGES * gstride, stage);
                stage = stage + 1 == KVTC__MMA_STAGES ? 0 : stage + 1;
            }
            /* ---- norm (kvtc.h's arithmetic and order; the careful path as in kvtc__compress_fast_body) */
            kvtc__mma_norm nm = {kvtc__mma_sumsq_tc<D, BF>(xw, sel), 0, 0, 0};
            if (__any_sync(KVTC__FULL, valid && !(nm.ss >= 1e-30f && nm.ss <= 3e38f)))
                nm = kvtc__mma_careful<D, BF>(row < gr.rows ? (const uint4 *)((const unsigned char *)c.x +
                                                                            (size_t)(gr.v0 + row * gr.step) * (2 * D)) + t * (D / 32)
                                                            : nullptr,
                                              nm.ss);
            float norm = __fsqrt_rn(nm.ss);
            /* y = H(s x) is not scaled: sv carries 2^-ex. It only picks cells (within float rounding of a boundary
             * either cell is allowed), so an approximate reciprocal square root does. */
            float sv = __fmul_rn(sq, rsqrtf(nm.ss));
            if (nm.ex) sv = ldexpf(sv, -nm.ex), norm = ldexpf(norm, nm.ex);
            /* ---- rotate (mma + butterflies), cells, codes, the centroids' chunk sums */
            unsigned code[CW];
            float cpart[NQ];
#pragma unroll
            for (int k = 0; k < CW; ++k) code[k] = 0u;
#pragma unroll
            for (int q = 0; q < NQ; ++q) cpart[q] = 0.0f;
            float acc[PL][2][4];
#pragma unroll
            for (int i = 0; i < PL; ++i) {
                const unsigned f[4] = {xw[4 * i], xw[4 * i + 1] ^ msk[2 * i], xw[4 * i + 2], xw[4 * i + 3] ^ msk[2 * i + 1]};
#pragma unroll
                for (int nt = 0; nt < 2; ++nt) {
                    acc[i][nt][0] = acc[i][nt][1] = acc[i][nt][2] = acc[i][nt][3] = 0.0f;
                    kvtc__mma_h<BF>(acc[i][nt], f, s_b[(2 * i + nt) * 32 + lane]);
                }
            }
#pragma unroll
            for (int i = 0; i < PL; ++i)
#pragma unroll
                for (int nt = 0; nt < 2; ++nt)
#pragma unroll
                    for (int e = 0; e < 2; ++e) { /* bit 1: M-row g (c0, c1) against g + 8 (c2, c3) */
                        const float p = acc[i][nt][e], m = acc[i][nt][2 + e];
                        acc[i][nt][e] = __fadd_rn(p, m);
                        acc[i][nt][2 + e] = __fsub_rn(p, m);
                    }
#pragma unroll
            for (int h = 1; h < PL; h <<= 1)
#pragma unroll
                for (int i = 0; i < PL; ++i)
                    if (!(i & h))
#pragma unroll
                        for (int nt = 0; nt < 2; ++nt)
#pragma unroll
                            for (int q = 0; q < 4; ++q) {
                                const float p = acc[i][nt][q], m = acc[i + h][nt][q];
                                acc[i][nt][q] = __fadd_rn(p, m);
                                acc[i + h][nt][q] = __fsub_rn(p, m);
                            }
#pragma unroll
            for (int i = 0; i < PL; ++i)
#pragma unroll
                for (int nt = 0; nt < 2; ++nt)
#pragma unroll
                    for (int q = 0; q < 4; ++q) {
                        const int o = 8 * i + 4 * nt + q, bit = BITS * o; /* q = 2 b1 + e' */
                        const float s = __saturatef(__fmaf_rn(acc[i][nt][q], sv, 0.5f));
                        const int kb = __float_as_int(__fmaf_rn(s, 31.0f, 8388608.0f)); /* low 5 bits: round(31 s) */
                        const float e = __shfl_sync(KVTC__FULL, E, kb);
                        /* + (s > e): both are non-negative floats (s >= +0), so their bits compare as integers */
                        const int idx = __shfl_sync(KVTC__FULL, LO, kb) +
                                        (int)((unsigned)(__float_as_int(e) - __float_as_int(s)) >> 31);
                        code[bit / 32] += (unsigned)idx << (bit % 32); /* fields are disjoint: one IMAD */
                        if (bit % 32 + BITS > 32) code[bit / 32 + 1] += (unsigned)idx >> (32 - bit % 32);
                        const float cm = __shfl_sync(KVTC__FULL, CM, idx); /* used with norm correction only */
                        cpart[o / 16] = __fmaf_rn(cm, cm, cpart[o / 16]);
                    }
            /* ---- store: the norm (lane t = 0), then SEG bytes of codes per lane */
            float want = norm;
            if (c.corr > 0) want = __fdiv_rn(norm, __fsqrt_rn(kvtc__mma_tree<NQ>(cpart)));
            bool range, blank;
            const unsigned nbits = kvtc__norm_bits(c, want, nm.nonfinite, nm.zero, &range, &blank);
            if (a.status && t == 0 && valid && (nm.nonfinite || range))
                atomicOr(a.status, nm.nonfinite ? KVTC_CUDA_FLAG_NONFINITE : KVTC_CUDA_FLAG_RANGE);
            if (a.status && t == 0 && bad) atomicOr(a.status, KVTC_CUDA_FLAG_BAD_SLOT);
            if (!valid) continue;
            unsigned char *pg = (unsigned char *)c.y + page * (long long)c.page_bytes;
            if (t == 0) kvtc__put_norm_bits(c, pg, off, nbits);
            if (blank)
#pragma unroll
                for (int k = 0; k < CW; ++k) code[k] = 0u;
            kvtc__mma_store<SEG>(pg + c.off_codes + (size_t)off * c.code_bytes + SEG * t, code);
        }
    }
}

template <int D, bool BF>
__global__ void __launch_bounds__(32 * KVTC__MMA_WARPS, (D <= 128 ? KVTC__MMA_SM_WARPS : 8) / KVTC__MMA_WARPS)
    kvtc__k_compress_mma(const kvtc__args a) {
    extern __shared__ __align__(16) unsigned char kvtc__smem_mma[];
    constexpr int PL = D / 32, W = D / 4;
    const kvtc__dc &c = a.t[blockIdx.y];
    uint2 *s_b = (uint2 *)kvtc__smem_mma; /* B fragments [i][n-tile][lane]: +-1 x the signs */
    const unsigned ring = (unsigned)__cvta_generic_to_shared(kvtc__smem_mma + PL * 2 * 32 * 8) +
                          (threadIdx.x >> 5) * KVTC__MMA_STAGES * 32 * D;
    const kvtc__mma_geo geo = kvtc__mma_geometry<D>(a);
#pragma unroll
    for (int s = 0; s < KVTC__MMA_STAGES; ++s) /* the first groups' copies overlap the tables' set-up */
        kvtc__mma_issue<D>(a, c, geo, ring, blockIdx.x * KVTC__MMA_WARPS + (threadIdx.x >> 5) + s * gridDim.x * KVTC__MMA_WARPS, s);
    constexpr int PER = PL * 2 * 32 / (32 * KVTC__MMA_WARPS); /* entries per thread; their signs load at once */
    float sg[PER][4], sm[PL][2][2][2];
#pragma unroll
    for (int i = 0; i < PER; ++i)
#pragma unroll
        for (int q = 0; q < 4; ++q) { /* k-slots 2t, 2t+1, 2t+8, 2t+9: coordinates W t + 8 i + {0, 1, 4, 5} */
            const int e = threadIdx.x + 32 * KVTC__MMA_WARPS * i;
            sg[i][q] = __ldg(c.signs + W * (e & 3) + 8 * (e >> 6) + (q & 1) + 4 * (q >> 1));
        }
    const int lane = threadIdx.x & 31, t = lane & 3;
#pragma unroll
    for (int i = 0; i < PL; ++i) /* this lane's coordinates W t + 8 i + 4 w + 2 b + h */
#pragma unroll
        for (int w = 0; w < 2; ++w)
#pragma unroll
            for (int b = 0; b < 2; ++b)
#pragma unroll
                for (int h = 0; h < 2; ++h) sm[i][w][b][h] = __ldg(c.signs + W * t + 8 * i + 4 * w + 2 * b + h);
#pragma unroll
    for (int i = 0; i < PER; ++i) {
        const int e = threadIdx.x + 32 * KVTC__MMA_WARPS * i, lt = e & 3, n = 8 * ((e >> 5) & 1) + ((e >> 2) & 7);
        unsigned h[4];
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            const int k = 2 * lt + (q & 1) + 8 * (q >> 1);
            const bool neg = (sg[i][q] < 0.0f) != (bool)(__popc(k & n) & 1);
            h[q] = BF ? (neg ? 0xBF80u : 0x3F80u) : (neg ? 0xBC00u : 0x3C00u);
        }
        s_b[e] = make_uint2(h[0] | h[1] << 16, h[2] | h[3] << 16);
    }
    unsigned msk[2 * PL]; /* sign bits to flip in the words of M-row g + 8: (c2, c3) and (c6, c7) of piece i */
#pragma unroll
    for (int i = 0; i < PL; ++i)
#pragma unroll
        for (int w = 0; w < 2; ++w)
            msk[2 * i + w] = ((sm[i][w][0][0] < 0.0f) != (sm[i][w][1][0] < 0.0f) ? 0x8000u : 0u) |
                             ((sm[i][w][0][1] < 0.0f) != (sm[i][w][1][1] < 0.0f) ? 0x80000000u : 0u);
    /* lane k's bucket (kvtc__compress_mma_body) from the codebook's nb boundaries */
    const int nb = (1 << c.mse_bits) - 1;
    float E = 2.0f, bnd[15];
    int LO = 0;
#pragma unroll
    for (int i = 0; i < 15; ++i) bnd[i] = i < nb ? __ldg(c.bnd + i) : 0.0f;
    const float CM = __ldg(c.cent + (lane & nb));
#pragma unroll
    for (int i = 0; i < 15; ++i) {
        const float sb = __saturatef(__fmaf_rn(bnd[i], c.inv2r, 0.5f));
        const int k = __float_as_int(__fmaf_rn(sb, 31.0f, 8388608.0f)) & 31;
        E = i < nb && k == lane ? sb : E;
        LO += i < nb && k < lane;
    }
    __syncthreads();
    switch (c.mse_bits) {
    case 1: kvtc__compress_mma_body<D, 1, BF>(a, c, s_b, msk, geo, ring, E, LO, CM); break;
    case 2: kvtc__compress_mma_body<D, 2, BF>(a, c, s_b, msk, geo, ring, E, LO, CM); break;
    case 3: kvtc__compress_mma_body<D, 3, BF>(a, c, s_b, msk, geo, ring, E, LO, CM); break;
    default: kvtc__compress_mma_body<D, 4, BF>(a, c, s_b, msk, geo, ring, E, LO, CM); break;
    }
}
/* dynamic shared memory of kvtc__k_compress_mma<D> */
static size_t kvtc__mma_smem(int d) {
    return (size_t)d / 32 * 2 * 32 * 8 + (size_t)KVTC__MMA_WARPS * KVTC__MMA_STAGES * 32 * d;
}

/* >>decompress
 * kvtc__k_decompress<EPL>   CPU twin: kvtc_cache_read / kvtc_codec_decode
 * grid (ceil(n_vectors / 4)), block 128, one vector per warp; EPL=4: 56 regs, 0 spills @ sm_90 */
template <int EPL>
__global__ void __launch_bounds__(128, (EPL <= 4 ? 6 : 2)) kvtc__k_decompress(const kvtc__args a) {
    __shared__ float s_cent[1 << KVTC_MAX_BITS];
    __shared__ float s_buf[KVTC__WARPS][EPL * 32];
    const kvtc__dc &c = a.t[0];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int v = blockIdx.x * KVTC__WARPS + warp;
    if (c.method != KVTC_METHOD_AFFINE)
        for (int i = threadIdx.x; i < (1 << c.mse_bits); i += blockDim.x) s_cent[i] = c.cent[i];
    __syncthreads();
    long long page;
    int off;
    bool bad;
    if (v >= a.n_vectors) return;
    float x[EPL];
    if (!kvtc__locate(a, v, &page, &off, &bad)) {
#pragma unroll
        for (int p = 0; p < EPL; ++p)
            if (p * 32 + lane < c.d) kvtc__store(c.y, (long long)v * c.d + p * 32 + lane, a.dtype, 0.0f);
        return;
    }
    kvtc__slotp s = kvtc__dslot(c, (unsigned char *)c.cache_in + page * (long long)c.page_bytes, off);
    if (c.method == KVTC_METHOD_AFFINE) {
#pragma unroll
        for (int p = 0; p < EPL; ++p) {
            int i = p * 32 + lane;
            if (i < c.d) {
                unsigned w = *(const unsigned *)(s.scales + 4 * (i / c.gs));
                float scale = __half2float(__ushort_as_half((unsigned short)(w & 0xffffu)));
                float mn = __half2float(__ushort_as_half((unsigned short)(w >> 16)));
                x[p] = __fadd_rn(mn, __fmul_rn((float)kvtc__dcode_at(s.codes, (int)c.code_bytes, i, c.bits), scale));
            }
        }
    } else {
        float n = kvtc__get_norm(s.scales, c.norm32);
#pragma unroll
        for (int p = 0; p < EPL; ++p) {
            int i = p * 32 + lane;
            x[p] = i < c.d ? __fmul_rn(n, s_cent[kvtc__dcode_at(s.codes, (int)c.code_bytes, i, c.mse_bits)]) : 0.0f;
        }
        kvtc__rotate<EPL>(c, x, s_buf[warp], lane, true);
    }
#pragma unroll
    for (int p = 0; p < EPL; ++p)
        if (p * 32 + lane < c.d) kvtc__store(c.y, (long long)v * c.d + p * 32 + lane, a.dtype, x[p]);
}

/* kvtc__k_decompress_fast<D>   CPU twin: kvtc_cache_read / kvtc_codec_decode
 * The codecs of kvtc__k_compress_fast (TQ_MSE, 1-4 rounds of Hadamard over the whole vector, D = 64 .. 512,
 * 1-4 bits), output 16-byte aligned. As there, L = D / 16 lanes take a vector and lane li owns coordinates
 * [16 li, 16 li + 16), here its 2 BITS bytes of codes: centroids (shared memory) times the norm, then for
 * each round, last first, the FWHT (4 stages in registers, log2 L across lanes), its scale and the round's
 * signs; 32 / L vectors per warp, grid-stride. A vector without a slot decodes to zeros. */
template <int D, int BITS>
static __device__ __forceinline__ void kvtc__decompress_fast_body(const kvtc__args &a, const kvtc__dc &c, const float *s_cent) {
    constexpr int L = D / 16, VPW = 32 / L;
    const int lane = threadIdx.x & 31, li = lane & (L - 1), warps = blockDim.x >> 5;
    unsigned smask[4]; /* bit e: coordinate 16 li + e changes sign in round r */
    kvtc__lane_signs<D>(c, li, smask);
    const long long stride = (long long)gridDim.x * warps * VPW;
    for (long long v0 = ((long long)blockIdx.x * warps + (threadIdx.x >> 5)) * VPW; v0 < a.n_vectors; v0 += stride) {
        const long long v = v0 + lane / L;
        bool bad = false;
        long long page = 0;
        int off = 0;
        const bool valid = v < a.n_vectors && kvtc__locate_fast(a, (unsigned)v, &page, &off, &bad);
        float x[16];
        if (valid) {
            const unsigned char *pg = (const unsigned char *)c.cache_in + page * (long long)c.page_bytes;
            const float n = kvtc__get_norm(pg + c.off_scales + (size_t)off * c.scale_bytes, c.norm32);
            const unsigned char *cp = pg + c.off_codes + (size_t)off * c.code_bytes + 2 * BITS * li;
            unsigned long long bits;
            if (BITS == 4) {
                const uint2 u = *(const uint2 *)cp;
                bits = u.x | (unsigned long long)u.y << 32;
            } else if (BITS == 2) bits = *(const unsigned *)cp;
            else if (BITS == 1) bits = *(const unsigned short *)cp;
            else { /* 6 bytes, 2-aligned */
                const unsigned short *cp16 = (const unsigned short *)cp;
                bits = cp16[0] | (unsigned long long)cp16[1] << 16 | (unsigned long long)cp16[2] << 32;
            }
#pragma unroll
            for (int e = 0; e < 16; ++e) x[e] = __fmul_rn(n, s_cent[(bits >> (BITS * e)) & ((1u << BITS) - 1u)]);
        } else {
#pragma unroll
            for (int e = 0; e < 16; ++e) x[e] = 0.0f;
        }
#pragma unroll
        for (int rr = 0; rr < 4; ++rr) { /* every lane shuffles, with or without a vector */
            if (rr >= c.rounds) break;
            unsigned sm = 0u; /* round c.rounds - 1 - rr's signs, picked without indexing the array */
#pragma unroll
            for (int k = 0; k < 4; ++k) sm = k == c.rounds - 1 - rr ? smask[k] : sm;
            kvtc__fwht_lanes<L>(x, li);
#pragma unroll
            for (int e = 0; e < 16; ++e)
                x[e] = __uint_as_float(__float_as_uint(__fmul_rn(x[e], c.fwht_scale)) ^ (((sm >> e) & 1u) << 31));
        }
        if (v >= a.n_vectors) continue;
        if (!valid)
#pragma unroll
            for (int e = 0; e < 16; ++e) x[e] = 0.0f; /* not -0 from a sign flip */
        const long long base = v * D + 16 * li;
        if (a.dtype == KVTC_DTYPE_F32) {
#pragma unroll
            for (int q = 0; q < 4; ++q)
                ((float4 *)((float *)c.y + base))[q] = make_float4(x[4 * q], x[4 * q + 1], x[4 * q + 2], x[4 * q + 3]);
        } else {
            unsigned w[8];
#pragma unroll
            for (int k = 0; k < 8; ++k) {
                if (a.dtype == KVTC_DTYPE_BF16) {
                    const __nv_bfloat162 h = __floats2bfloat162_rn(x[2 * k], x[2 * k + 1]);
                    w[k] = *(const unsigned *)&h;
                } else {
                    const __half2 h = __floats2half2_rn(x[2 * k], x[2 * k + 1]);
                    w[k] = *(const unsigned *)&h;
                }
            }
            uint4 *y = (uint4 *)((unsigned short *)c.y + base);
            y[0] = make_uint4(w[0], w[1], w[2], w[3]);
            y[1] = make_uint4(w[4], w[5], w[6], w[7]);
        }
    }
}
template <int D>
__global__ void __launch_bounds__(256) kvtc__k_decompress_fast(const kvtc__args a) {
    __shared__ float s_cent[16];
    const kvtc__dc &c = a.t[0];
    if ((int)threadIdx.x < (1 << c.mse_bits)) s_cent[threadIdx.x] = __ldg(c.cent + threadIdx.x);
    __syncthreads();
    switch (c.mse_bits) {
    case 1: kvtc__decompress_fast_body<D, 1>(a, c, s_cent); break;
    case 2: kvtc__decompress_fast_body<D, 2>(a, c, s_cent); break;
    case 3: kvtc__decompress_fast_body<D, 3>(a, c, s_cent); break;
    default: kvtc__decompress_fast_body<D, 4>(a, c, s_cent); break;
    }
}

/* ---- launchers --------------------------------------------------------------- */
/* Fill the device view of codec c for pages of `block_size` slots. */
static kvtc_status kvtc__dc_of(const kvtc_cuda_codec *cc, int block_size, kvtc__dc *o) {
    const kvtc_codec *c = &cc->meta;
    kvtc_layout l;
    kvtc_status st = kvtc_codec_layout(c, (size_t)block_size, &l);
    if (st != KVTC_OK) return st;
    memset(o, 0, sizeof(*o));
    o->cent = cc->d_centroids;
    o->bnd = cc->d_boundaries;
    o->signs = cc->d_signs;
    o->perm = cc->d_perm;
    o->mat = cc->d_matrix;
    o->mat_t = cc->d_matrix_t;
    o->qjl_t = cc->d_qjl_t;
    o->off_codes = l.codes;
    o->off_scales = l.scales;
    o->off_qjl = l.qjl;
    o->off_rnorms = l.rnorms;
    o->page_bytes = l.bytes;
    o->code_bytes = c->code_bytes;
    o->scale_bytes = c->scale_bytes;
    o->qjl_bytes = c->qjl_bytes;
    o->rnorm_bytes = c->rnorm_bytes;
    o->method = c->params.method;
    o->d = c->params.head_dim;
    o->bits = c->params.bits;
    o->mse_bits = c->mse_bits;
    o->norm32 = c->params.norm_type == KVTC_NORM_FP32;
    o->corr = c->params.norm_correction;
    o->m = c->params.qjl_dim;
    o->gs = c->params.group_size;
    o->rot = c->params.rotation;
    o->rounds = c->rot.rounds;
    o->block = c->rot.block;
    o->fwht_scale = (float)(1.0 / sqrt((double)c->rot.block)); /* the CPU's kvtc__fwht_f constant */
    o->inv2r = kvtc__mma_inv2r(c);
    o->bscale = kvtc__fast8_bscale(c);
    o->dfast = kvtc__compress_fast_ok(c);
    o->cfast = o->dfast || o->bscale > 0.0f;
    if (!o->cent || (o->rot == KVTC_ROTATION_HADAMARD && !o->signs) || (o->rot == KVTC_ROTATION_DENSE && !o->mat) ||
        (o->method == KVTC_METHOD_TQ_PROD && !o->qjl_t) || (c->rot.block < c->params.head_dim && o->rot == KVTC_ROTATION_HADAMARD && !o->perm))
        return KVTC_ERR_ARG; /* not initialised by kvtc_cuda_codec_init */
    if (o->method == KVTC_METHOD_AFFINE && !(32 % o->gs == 0 || o->gs % 32 == 0))
        return KVTC_ERR_UNSUPPORTED; /* groups must tile the warp's lanes */
    return KVTC_OK;
}

/* Elements per lane the kernels are built for: ceil(head_dim / 32) rounded up. */
#define KVTC__EPL_LIST(X) X(1) X(2) X(3) X(4) X(6) X(8) X(16) X(32)
static int kvtc__epl_for(int d) {
    int need = (d + 31) / 32;
#define KVTC__EPL_PICK(e) if (need <= e) return e;
    KVTC__EPL_LIST(KVTC__EPL_PICK)
#undef KVTC__EPL_PICK
    return 0;
}

template <int D, bool BF>
static kvtc_status kvtc__mma_launch(const kvtc__args &a, dim3 grid, cudaStream_t stream) {
    const size_t smem = kvtc__mma_smem(D);
    KVTC_CUDA_CHECK(cudaFuncSetAttribute(kvtc__k_compress_mma<D, BF>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    kvtc__k_compress_mma<D, BF><<<grid, 32 * KVTC__MMA_WARPS, smem, stream>>>(a);
    KVTC_CUDA_CHECK(cudaGetLastError());
    return KVTC_OK;
}

/* aligned: every tensor's input and output are 16-byte aligned. Then fp16 and bf16 inputs of at least
 * KVTC__MMA_MIN_VECTORS vectors whose codecs kvtc__mma_inv2r accepts take kvtc__k_compress_mma; else, where
 * every codec can (kvtc__dc.cfast, dfast), kvtc__k_compress_fast or kvtc__k_decompress_fast; else the generic
 * kernels. */
static kvtc_status kvtc__launch(bool compress, int d, kvtc__args &a, int n_tensors, bool aligned, cudaStream_t stream) {
    const bool fast = aligned && (compress ? a.t[0].cfast && (n_tensors < 2 || a.t[1].cfast)
                                           : a.t[0].dfast && (n_tensors < 2 || a.t[1].dfast));
    long long blocks = (a.n_vectors + KVTC__WARPS - 1) / KVTC__WARPS;
    dim3 grid((unsigned)blocks, (unsigned)n_tensors);
    if (a.n_vectors == 0) return KVTC_OK;
    if (a.n_vectors >= 0x7fffffffLL || a.n_slots >= 0x7fffffffLL) return KVTC_ERR_UNSUPPORTED; /* 32-bit indexing */
    a.div_heads = kvtc__fastdiv_of((unsigned)a.n_heads);
    a.div_bs = kvtc__fastdiv_of((unsigned)a.block_size);
    if (compress && aligned && a.n_vectors >= KVTC__MMA_MIN_VECTORS && a.dtype != KVTC_DTYPE_F32 && a.t[0].inv2r > 0.0f &&
        (n_tensors < 2 || a.t[1].inv2r > 0.0f)) {
        const long long groups = (a.n_vectors + 15) / 16, need = (groups + KVTC__MMA_WARPS - 1) / KVTC__MMA_WARPS;
        int dev = 0, sms = 0;
        KVTC_CUDA_CHECK(cudaGetDevice(&dev));
        KVTC_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
        const long long per_sm = (d <= 128 ? KVTC__MMA_SM_WARPS : 8) / KVTC__MMA_WARPS; /* its launch bounds */
        const dim3 mgrid((unsigned)(need < per_sm * sms ? need : per_sm * sms), (unsigned)n_tensors);
        const bool bf = a.dtype == KVTC_DTYPE_BF16;
        switch (d) {
        case 64: return bf ? kvtc__mma_launch<64, true>(a, mgrid, stream) : kvtc__mma_launch<64, false>(a, mgrid, stream);
        case 128: return bf ? kvtc__mma_launch<128, true>(a, mgrid, stream) : kvtc__mma_launch<128, false>(a, mgrid, stream);
        default: return bf ? kvtc__mma_launch<256, true>(a, mgrid, stream) : kvtc__mma_launch<256, false>(a, mgrid, stream);
        }
    }
    if (fast) {
        const long long per_block = 8LL * (32 / (d / 16)); /* 8 warps of 32 / (d/16) vectors */
        const long long need = (a.n_vectors + per_block - 1) / per_block;
        dim3 fgrid((unsigned)(need < 2048 ? need : 2048), (unsigned)n_tensors); /* grid-stride beyond */
#define KVTC__FAST_CASE(D_)                                                                                            \
    if (compress) kvtc__k_compress_fast<D_><<<fgrid, 256, 0, stream>>>(a);                                             \
    else kvtc__k_decompress_fast<D_><<<fgrid, 256, 0, stream>>>(a);                                                    \
    break;
        switch (d) {
        case 64: KVTC__FAST_CASE(64)
        case 128: KVTC__FAST_CASE(128)
        case 256: KVTC__FAST_CASE(256)
        default: KVTC__FAST_CASE(512)
        }
#undef KVTC__FAST_CASE
        KVTC_CUDA_CHECK(cudaGetLastError());
        return KVTC_OK;
    }
    switch (kvtc__epl_for(d)) {
#define KVTC__EPL_CASE(e)                                                                                              \
    case e:                                                                                                            \
        if (compress) kvtc__k_compress<e><<<grid, 128, 0, stream>>>(a);                                                \
        else kvtc__k_decompress<e><<<grid, 128, 0, stream>>>(a);                                                       \
        break;
        KVTC__EPL_LIST(KVTC__EPL_CASE)
#undef KVTC__EPL_CASE
    default:
        return KVTC_ERR_UNSUPPORTED;
    }
    KVTC_CUDA_CHECK(cudaGetLastError());
    return KVTC_OK;
}

/* Shared checks of the cache launchers (sizes, counts, overflow); fills the
 * device view `which` of *a and the addressing fields. */
static kvtc_status kvtc__cuda_cache_args(const kvtc_cuda_codec *c, const kvtc_cache_params *cp, size_t cache_bytes,
                                         size_t n_tokens, const int64_t *d_slot_mapping, kvtc_dtype dtype,
                                         kvtc__args *a, int which) {
    size_t page, total, n;
    kvtc_status st;
    if ((int)dtype < 0 || dtype >= KVTC_DTYPE_COUNT) return KVTC_ERR_ARG;
    if ((st = kvtc_cache_bytes(&c->meta, cp, &page, &total)) != KVTC_OK) return st;
    if (cache_bytes < total) return KVTC_ERR_SMALL;
    n = (size_t)cp->n_kv_heads * (size_t)c->meta.params.head_dim; /* both small and positive */
    if (n_tokens > ((size_t)1 << 62) / n) return KVTC_ERR_OVERFLOW;
    a->slots = (const long long *)d_slot_mapping;
    a->n_vectors = (long long)n_tokens * cp->n_kv_heads;
    a->n_heads = cp->n_kv_heads;
    a->block_size = cp->block_size;
    a->n_slots = (long long)cp->n_blocks * cp->block_size;
    a->dtype = dtype == KVTC_DTYPE_DEFAULT ? KVTC_DTYPE_F16 : dtype;
    return kvtc__dc_of(c, cp->block_size, &a->t[which]);
}

KVTC_DEF kvtc_status kvtc_cuda_cache_write(const kvtc_cuda_codec *kc, const kvtc_cuda_codec *vc,
                                           const kvtc_cache_params *cp, const void *d_k, const void *d_v,
                                           kvtc_dtype dtype, size_t n_tokens, const int64_t *d_slot_mapping,
                                           void *d_k_cache, size_t k_cache_bytes, void *d_v_cache,
                                           size_t v_cache_bytes, unsigned int *d_status, cudaStream_t stream) {
    kvtc__args a;
    kvtc_status st;
    if (!kc || !cp) return KVTC_ERR_NULL;
    memset(&a, 0, sizeof(a));
    if ((st = kvtc__cuda_cache_args(kc, cp, k_cache_bytes, n_tokens, d_slot_mapping, dtype, &a, 0)) != KVTC_OK) return st;
    if (vc) {
        if (vc->meta.params.head_dim != kc->meta.params.head_dim) return KVTC_ERR_DIM;
        if ((st = kvtc__cuda_cache_args(vc, cp, v_cache_bytes, n_tokens, d_slot_mapping, dtype, &a, 1)) != KVTC_OK)
            return st;
    }
    if (n_tokens == 0) return KVTC_OK;
    if (!d_k || !d_slot_mapping || !d_k_cache || (vc && (!d_v || !d_v_cache))) return KVTC_ERR_NULL;
    a.t[0].x = d_k;
    a.t[0].y = d_k_cache;
    a.t[1].x = d_v;
    a.t[1].y = d_v_cache;
    a.status = d_status;
    return kvtc__launch(true, kc->meta.params.head_dim, a, vc ? 2 : 1,
                        !((((size_t)d_k | (size_t)d_k_cache) | (vc ? ((size_t)d_v | (size_t)d_v_cache) : 0)) & 15), stream);
}

KVTC_DEF kvtc_status kvtc_cuda_cache_read(const kvtc_cuda_codec *c, const kvtc_cache_params *cp,
                                          const void *d_cache, size_t cache_bytes, size_t n_tokens,
                                          const int64_t *d_slot_mapping, void *d_out, kvtc_dtype dtype,
                                          size_t out_count, cudaStream_t stream) {
    kvtc__args a;
    kvtc_status st;
    if (!c || !cp) return KVTC_ERR_NULL;
    memset(&a, 0, sizeof(a));
    if ((st = kvtc__cuda_cache_args(c, cp, cache_bytes, n_tokens, d_slot_mapping, dtype, &a, 0)) != KVTC_OK) return st;
    if (out_count < n_tokens * (size_t)cp->n_kv_heads * (size_t)c->meta.params.head_dim) return KVTC_ERR_SMALL;
    if (n_tokens == 0) return KVTC_OK;
    if (!d_cache || !d_slot_mapping || !d_out) return KVTC_ERR_NULL;
    a.t[0].cache_in = d_cache;
    a.t[0].y = d_out;
    return kvtc__launch(false, c->meta.params.head_dim, a, 1, !(((size_t)d_cache | (size_t)d_out) & 15), stream);
}

/* The flat layout of n vectors is one page of n slots with one head. */
static kvtc_status kvtc__cuda_flat(const kvtc_cuda_codec *c, size_t n, size_t bytes, kvtc_dtype dtype, kvtc__args *a) {
    kvtc_status st;
    size_t need;
    if (!c) return KVTC_ERR_NULL;
    if ((int)dtype < 0 || dtype >= KVTC_DTYPE_COUNT) return KVTC_ERR_ARG;
    if (n > 0x7fffffffu) return KVTC_ERR_OVERFLOW;
    if ((st = kvtc_codec_encoded_bytes(&c->meta, n, &need)) != KVTC_OK) return st;
    if (bytes < need) return KVTC_ERR_SMALL;
    memset(a, 0, sizeof(*a));
    if ((st = kvtc__dc_of(c, (int)(n ? n : 1), &a->t[0])) != KVTC_OK) return st;
    a->n_vectors = (long long)n;
    a->n_heads = 1;
    a->block_size = (int)(n ? n : 1);
    a->n_slots = (long long)(n ? n : 1);
    a->dtype = dtype == KVTC_DTYPE_DEFAULT ? KVTC_DTYPE_F16 : dtype;
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_cuda_encode(const kvtc_cuda_codec *c, const void *d_x, kvtc_dtype dtype,
                                                 size_t n_vectors, void *d_out, size_t out_bytes, unsigned int *d_status,
                                                 cudaStream_t stream) {
    kvtc__args a;
    kvtc_status st = kvtc__cuda_flat(c, n_vectors, out_bytes, dtype, &a);
    if (st != KVTC_OK || n_vectors == 0) return st;
    if (!d_x || !d_out) return KVTC_ERR_NULL;
    /* padding bytes are zero, as on the CPU */
    KVTC_CUDA_CHECK(cudaMemsetAsync(d_out, 0, (size_t)a.t[0].page_bytes, stream));
    a.t[0].x = d_x;
    a.t[0].y = d_out;
    a.status = d_status;
    return kvtc__launch(true, c->meta.params.head_dim, a, 1, !(((size_t)d_x | (size_t)d_out) & 15), stream);
}

KVTC_DEF kvtc_status kvtc_cuda_decode(const kvtc_cuda_codec *c, const void *d_in, size_t in_bytes,
                                                 size_t n_vectors, void *d_x, kvtc_dtype dtype, size_t x_count,
                                                 cudaStream_t stream) {
    kvtc__args a;
    kvtc_status st = kvtc__cuda_flat(c, n_vectors, in_bytes, dtype, &a);
    if (st != KVTC_OK || n_vectors == 0) return st;
    if (!d_in || !d_x) return KVTC_ERR_NULL;
    if (x_count < n_vectors * (size_t)c->meta.params.head_dim) return KVTC_ERR_SMALL;
    a.t[0].cache_in = d_in;
    a.t[0].y = d_x;
    return kvtc__launch(false, c->meta.params.head_dim, a, 1, !(((size_t)d_in | (size_t)d_x) & 15), stream);
}

/* >>attention */
#define KVTC__ATTN_GMAX 8   /* query heads per KV head */
#define KVTC__ATTN_MMAX 256 /* QJL sketch rows */
#define KVTC__LOG2E 1.4426950408889634f

struct kvtc__attn_args {
    kvtc__dc k, v;
    const void *q;
    const unsigned char *kcache, *vcache;
    const int *block_table, *context_lens;
    void *out;
    float *lse, *ws_o, *ws_lse; /* ws_*: partials [seq][q head][part]([d]): n_split splits, then the exact tokens' */
    const unsigned short *xk, *xv; /* exact tokens (fp16) [seq][kv head][max_exact][d], and their counts */
    const int *x_lens;
    int n_q_heads, n_kv, gqa, block_size, max_blocks, n_blocks, n_split, blocks_per_split, max_exact, n_part;
    int q_dtype, out_dtype, rotated_output;
    float scale_log2; /* softmax scale * log2(e): scores live in log2 units */
    /* tensor-core kernel: byte offsets of its shared-memory regions (see kvtc__attn_tc_layout), 16-token
     * tiles per block and n / tpb, bytes of one physical block of K and of V (all KV heads) */
    unsigned tc_klut, tc_vlut, tc_ring, tc_q, tc_qf, tc_buf, tc_ml;
    int tpb;
    kvtc__fastdiv div_tpb;
    unsigned k_blk_bytes, v_blk_bytes; /* < 2^32 (kvtc__attn_uses_tc) */
};

static __device__ __forceinline__ void kvtc__cp_async4(void *smem_dst, const void *gmem_src) {
    unsigned d = (unsigned)__cvta_generic_to_shared(smem_dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(d), "l"(gmem_src));
}

static __device__ __forceinline__ float kvtc__warp_sumf(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(KVTC__FULL, v, o);
    return v;
}

/* Start moving the bytes [p, p + bytes) into L1, one 128-byte line per lane and step, for loads well after
 * it (the merge kernel asks before its dependency wait; issued beside the loads it would serve, it did
 * not help: bench/RESULTS.md, 2026-12-07 08:10-08:50). */
static __device__ __forceinline__ void kvtc__prefetch_l1(const void *p, size_t bytes, int lane) {
    const unsigned long long end = (unsigned long long)p + bytes;
    for (unsigned long long at = ((unsigned long long)p & ~127ull) + 128ull * lane; at < end; at += 32ull * 128ull)
        asm volatile("prefetch.global.L1 [%0];\n" ::"l"(at));
}
/* The tables a Hadamard rotation of codec c reads (kvtc__rotate), into L1. */
static __device__ __forceinline__ void kvtc__prefetch_rotation(const kvtc__dc &c, int lane) {
    if (c.rot != KVTC_ROTATION_HADAMARD) return;
    kvtc__prefetch_l1(c.signs, (size_t)c.rounds * c.d * sizeof(float), lane);
    if (c.perm) kvtc__prefetch_l1(c.perm, (size_t)c.rounds * c.d * sizeof(uint16_t), lane);
}

/* Rotate row `row` (head_dim floats in shared memory, or `src` of dtype) by
 * codec c forward or back, one warp, into dst (shared or global of dtype). */
template <int EPL>
static __device__ void kvtc__rotate_row(const kvtc__dc &c, const float *src_f, const void *src, int src_dtype,
                                        bool transpose, float *buf, float mul, float *dst_f, void *dst, int dst_dtype,
                                        int lane) {
    float x[EPL];
#pragma unroll
    for (int p = 0; p < EPL; ++p) {
        int i = p * 32 + lane;
        x[p] = i < c.d ? (src_f ? src_f[i] : kvtc__load(src, i, src_dtype)) : 0.0f;
    }
    kvtc__rotate<EPL>(c, x, buf, lane, transpose);
#pragma unroll
    for (int p = 0; p < EPL; ++p) {
        int i = p * 32 + lane;
        if (i < c.d) {
            if (dst_f) dst_f[i] = x[p] * mul;
            else kvtc__store(dst, i, dst_dtype, x[p] * mul);
        }
    }
}

/* The end of both attention kernels: merge the NW warps' partials (max M, sum L, unnormalized rotated
 * output in s_acc [warp][GMAX][RS]) in a fixed order, then either rotate back and store the output and LSE,
 * or store this split's normalized partial and LSE (log2 units) for kvtc__k_attn_merge. */
template <int EPL, int NW, int RS = EPL * 32> /* RS: row stride of s_acc, floats */
static __device__ void kvtc__attn_finish(const kvtc__attn_args &a, const float *s_acc, const float *s_ml, float *s_buf,
                                         int G, int h, int b, int split, int warp, int lane) {
    const int D = EPL * 32, d = a.v.d;
    for (int g = warp; g < G; g += NW) {
        float M = -INFINITY, L = 0.0f, wgt[NW];
        for (int w = 0; w < NW; ++w) M = fmaxf(M, s_ml[(w * KVTC__ATTN_GMAX + g) * 2]);
        for (int w = 0; w < NW; ++w) {
            const float mw = s_ml[(w * KVTC__ATTN_GMAX + g) * 2];
            wgt[w] = mw == -INFINITY ? 0.0f : exp2f(mw - M);
            L += s_ml[(w * KVTC__ATTN_GMAX + g) * 2 + 1] * wgt[w];
        }
        const float inv = L > 0.0f ? 1.0f / L : 0.0f;
        float *row = s_buf + warp * D; /* this head's rotated output, normalized */
        for (int i = lane; i < D; i += 32) {
            float o = 0.0f;
            for (int w = 0; w < NW; ++w) o += wgt[w] * s_acc[(w * KVTC__ATTN_GMAX + g) * RS + i];
            row[i] = o * inv;
        }
        __syncwarp();
        const long long qh = (long long)b * a.n_q_heads + (long long)h * G + g;
        if (a.n_part == 1) {
            const float lse = L > 0.0f ? (M + log2f(L)) * 0.6931471805599453f : -INFINITY;
            char *obase = (char *)a.out + qh * d * (a.out_dtype == KVTC_DTYPE_F32 ? 4 : 2);
            if (a.v.method == KVTC_METHOD_AFFINE || a.rotated_output) {
                for (int i = lane; i < d; i += 32) kvtc__store(obase, i, a.out_dtype, row[i]);
            } else {
                float tmp[EPL]; /* copy out first: the rotation reuses row as scratch */
#pragma unroll
                for (int p = 0; p < EPL; ++p) tmp[p] = p * 32 + lane < d ? row[p * 32 + lane] : 0.0f;
                __syncwarp();
                kvtc__rotate<EPL>(a.v, tmp, row, lane, true);
#pragma unroll
                for (int p = 0; p < EPL; ++p)
                    if (p * 32 + lane < d) kvtc__store(obase, p * 32 + lane, a.out_dtype, tmp[p]);
            }
            if (a.lse && lane == 0) a.lse[qh] = lse;
        } else {
            float *o = a.ws_o + (qh * a.n_part + split) * D;
            for (int i = lane; i < D; i += 32) o[i] = row[i];
            if (lane == 0) a.ws_lse[qh * a.n_part + split] = L > 0.0f ? M + log2f(L) : -INFINITY;
        }
        __syncwarp();
    }
}

/* kvtc__k_attn_exact<EPL>: the partials of a sequence's exact (fp16) tokens, KVTC__EXACT_CHUNK tokens
 * per block, stored as parts n_split + chunk for kvtc__k_attn_merge. grid (n_kv_heads, n_seqs,
 * ceil(max_exact / CHUNK)), block 128, dynamic smem kvtc__attn_exact_smem. The block stages the chunk's
 * keys and values in shared memory with every 16-byte load in flight at once (rows of d/2 + 1 words: an
 * odd stride, so lane = token reads its key row without bank conflicts); each warp serves query heads
 * warp, warp + 4: lane t scores token t in fp32 (log2 units), then lane = output dims accumulates the
 * values. The output is accumulated in the plain domain and rotated forward into the value codec's
 * domain, where the compressed parts live. A token with a non-finite key or value element is skipped
 * (kvtc.h does the same). Counts outside 0..max_exact are clamped (the host cannot check device data).
 * Needs head_dim % 8 == 0 and 16-byte aligned exact_k / exact_v (the launcher checks). */
#define KVTC__EXACT_CHUNK 32
#define KVTC__EXACT_MAX (65535 * KVTC__EXACT_CHUNK) /* max_exact: chunks are grid z */
static __device__ __forceinline__ bool kvtc__f16x2_finite(unsigned w) { /* exponent bits all ones: NaN or Inf */
    return (w & 0x7c00u) != 0x7c00u && (w & 0x7c000000u) != 0x7c000000u;
}
template <int EPL>
__global__ void __launch_bounds__(128) kvtc__k_attn_exact(const kvtc__attn_args a) {
    extern __shared__ unsigned kvtc__smem_x[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, h = blockIdx.x, b = blockIdx.y, chunk = blockIdx.z;
    const int d = a.v.d, D = EPL * 32, RW = d / 2 + 1, R16 = d / 8; /* words per staged row, 16-byte words per row */
    unsigned *s_k = kvtc__smem_x, *s_v = s_k + KVTC__EXACT_CHUNK * RW, *s_ok = s_v + KVTC__EXACT_CHUNK * RW;
    float *s_q = (float *)(s_ok + KVTC__EXACT_CHUNK); /* [gqa][D] queries, later each head's rotation scratch */
    const int n = min(max(a.x_lens[b], 0), a.max_exact), t0 = chunk * KVTC__EXACT_CHUNK;
    const int nc = min(max(n - t0, 0), KVTC__EXACT_CHUNK), n16 = nc * R16; /* this chunk's tokens, its 16-byte words */
    const long long row0 = ((long long)b * a.n_kv + h) * a.max_exact + t0;
    const uint4 *xk = (const uint4 *)(a.xk + row0 * d), *xv = (const uint4 *)(a.xv + row0 * d);
    uint4 kw[EPL], vw[EPL]; /* CHUNK * D / 8 / 128 = EPL 16-byte words per thread and tensor at most */
#pragma unroll
    for (int r = 0; r < EPL; ++r) {
        const int i = r * 128 + threadIdx.x;
        if (i < n16) kw[r] = __ldg(xk + i), vw[r] = __ldg(xv + i);
    }
    if (threadIdx.x < KVTC__EXACT_CHUNK) s_ok[threadIdx.x] = 1u;
    for (int i = threadIdx.x; i < a.gqa * D; i += blockDim.x) {
        const int g = i / D, j = i % D;
        const long long qh = (long long)b * a.n_q_heads + (long long)h * a.gqa + g;
        s_q[i] = j < d ? kvtc__load(a.q, qh * d + j, a.q_dtype) * a.scale_log2 : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < EPL; ++r) {
        const int i = r * 128 + threadIdx.x;
        if (i < n16) {
            const int t = i / R16;
            unsigned *ks = s_k + t * RW + 4 * (i % R16), *vs = s_v + t * RW + 4 * (i % R16);
            ks[0] = kw[r].x, ks[1] = kw[r].y, ks[2] = kw[r].z, ks[3] = kw[r].w;
            vs[0] = vw[r].x, vs[1] = vw[r].y, vs[2] = vw[r].z, vs[3] = vw[r].w;
            if (!(kvtc__f16x2_finite(kw[r].x) && kvtc__f16x2_finite(kw[r].y) && kvtc__f16x2_finite(kw[r].z) &&
                  kvtc__f16x2_finite(kw[r].w) && kvtc__f16x2_finite(vw[r].x) && kvtc__f16x2_finite(vw[r].y) &&
                  kvtc__f16x2_finite(vw[r].z) && kvtc__f16x2_finite(vw[r].w)))
                atomicAnd(&s_ok[t], 0u);
        }
    }
    __syncthreads();
    for (int g = warp; g < a.gqa; g += 4) {
        const long long qh = (long long)b * a.n_q_heads + (long long)h * a.gqa + g;
        float *q = s_q + g * D;
        float s = -INFINITY;
        if (lane < nc && s_ok[lane]) {
            const unsigned *kr = s_k + lane * RW;
            float acc0 = 0.0f, acc1 = 0.0f;
#pragma unroll 8
            for (int w = 0; w < d / 2; ++w) {
                const float2 kf = __half22float2(*(const __half2 *)&kr[w]);
                acc0 = fmaf(q[2 * w], kf.x, acc0);
                acc1 = fmaf(q[2 * w + 1], kf.y, acc1);
            }
            s = acc0 + acc1;
        }
        const float M = kvtc__warp_max(s);
        const float wgt = s == -INFINITY ? 0.0f : exp2f(s - M);
        const float L = kvtc__warp_sumf(wgt);
        float x[EPL];
#pragma unroll
        for (int p = 0; p < EPL; ++p) x[p] = 0.0f;
        for (int t = 0; t < nc; ++t) {
            const float wt = __shfl_sync(KVTC__FULL, wgt, t);
            if (wt == 0.0f) continue; /* masked (its value may be NaN/Inf: 0 * Inf is NaN); uniform over the warp */
            const __half *vr = (const __half *)(s_v + t * RW);
#pragma unroll
            for (int p = 0; p < EPL; ++p)
                if (p * 32 + lane < d) x[p] = fmaf(wt, __half2float(vr[p * 32 + lane]), x[p]);
        }
#pragma unroll
        for (int p = 0; p < EPL; ++p) x[p] = L > 0.0f ? x[p] / L : 0.0f;
        __syncwarp();
        if (a.v.method != KVTC_METHOD_AFFINE) kvtc__rotate<EPL>(a.v, x, q, lane, false);
        const int part = a.n_split + chunk;
        float *o = a.ws_o + (qh * a.n_part + part) * D;
#pragma unroll
        for (int p = 0; p < EPL; ++p) o[p * 32 + lane] = p * 32 + lane < d ? x[p] : 0.0f;
        if (lane == 0) a.ws_lse[qh * a.n_part + part] = L > 0.0f ? M + log2f(L) : -INFINITY;
    }
}

/* kvtc__k_attn<EPL, KB, VB, GQ>   CPU twin: kvtc_attn_decode
 * grid (n_kv_heads, n_seqs, n_split), block 128 (4 warps); dynamic smem (kvtc__attn_smem, ~37 KiB
 * at d=128 K4/V4). Each warp takes 32 tokens per step: cp.async stages their K and V records into
 * padded shared rows; scores with lane = token; values with lane = EPL output dims.
 * <4,4,4,4>: 106 regs, <4,0,0,0>: 110 regs, 0 spills @ sm_90, CUDA 13.0; 4 blocks/SM.
 * bytes per token and KV head: d*kb/8 + 2 (K), d*vb/8 + 2 (V); measured bound: instruction issue */
template <int EPL, int KB, int VB, int GQ>
__global__ void __launch_bounds__(128, 4) kvtc__k_attn(const kvtc__attn_args a) {
    extern __shared__ float smem[];
    /* KB, VB, GQ: key bits, value bits, group size fixed at compile time (0 = read from a; the
     * specialized kernels also need TQ_MSE on both sides and head_dim == EPL * 32), so the
     * unpacking loops unroll into constant shifts */
    const int D = EPL * 32, G = GQ ? GQ : a.gqa, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int h = blockIdx.x, b = blockIdx.y, split = blockIdx.z, d = KB ? D : a.k.d;
    float *s_q = smem;                                   /* [GMAX][D] rotated, scaled queries */
    float *s_sq = s_q + KVTC__ATTN_GMAX * D;             /* [GMAX][MMAX] S q' (TQ_PROD) */
    float *s_ktab = s_sq + KVTC__ATTN_GMAX * KVTC__ATTN_MMAX; /* key centroids */
    float *s_vtab = s_ktab + 256;                        /* value centroids */
    float *s_buf = s_vtab + 256;                         /* [4][D] rotation scratch */
    float *s_ml = s_buf + 4 * D;                         /* [4][GMAX][2] per-warp max, sum */
    float *s_acc = s_ml + 4 * KVTC__ATTN_GMAX * 2;       /* [4][GMAX][D] per-warp accumulators after the
                                                            loop; per-warp staging rows during it */
    for (int i = threadIdx.x; i < 256; i += 128) {
        if (a.k.method != KVTC_METHOD_AFFINE && i < (1 << a.k.mse_bits)) s_ktab[i] = a.k.cent[i];
        if (a.v.method != KVTC_METHOD_AFFINE && i < (1 << a.v.mse_bits)) s_vtab[i] = a.v.cent[i];
    }
    /* rotate each query head of the group once: q' = P_k q * scale * log2(e) */
    for (int g = warp; g < G; g += 4) {
        const long long qoff = ((long long)b * a.n_q_heads + (long long)h * G + g) * d;
        const char *qbase = (const char *)a.q + qoff * (a.q_dtype == KVTC_DTYPE_F32 ? 4 : 2);
        kvtc__rotate_row<EPL>(a.k, nullptr, qbase, a.q_dtype, false, s_buf + warp * D, a.scale_log2, s_q + g * D,
                              nullptr, 0, lane);
    }
    __syncthreads();
    if (a.k.method == KVTC_METHOD_TQ_PROD) /* S q' for the QJL term, coalesced over rows of S^T */
        for (int g = warp; g < G; g += 4)
            for (int k = lane; k < a.k.m; k += 32) {
                float acc = 0.0f;
                for (int j = 0; j < d; ++j) acc = fmaf(a.k.qjl_t[(size_t)j * a.k.m + k], s_q[g * D + j], acc);
                s_sq[g * KVTC__ATTN_MMAX + k] = acc;
            }
    __syncthreads();

    const int len = min(max(a.context_lens[b], 0), a.max_blocks * a.block_size);
    const int t_begin = split * a.blocks_per_split * a.block_size;
    const int t_end = min(len, t_begin + a.blocks_per_split * a.block_size);
    const int *bt = a.block_table + (long long)b * a.max_blocks;
    const int kw = (int)(a.k.code_bytes >> 2), vw = (int)(a.v.code_bytes >> 2), vsw = (int)(a.v.scale_bytes >> 2);
    const int kst = kw | 1, vst = vw | 1, vsst = vsw | 1; /* odd row strides: lane-per-row reads are conflict-free */
    unsigned *s_stage = (unsigned *)s_acc + warp * 32 * (kst + vst + vsst + KVTC__ATTN_GMAX);
    unsigned *s_krow = s_stage + lane * kst, *s_vrows = s_stage + 32 * kst, *s_vscs = s_vrows + 32 * vst;
    float *s_w = (float *)(s_vscs + 32 * vsst); /* [32 tokens][GMAX]: p times the value norm */
    const float qjl_c = 1.2533141373155003f / (float)(a.k.m > 0 ? a.k.m : 1); /* sqrt(pi/2) / m */
    float m_run[KVTC__ATTN_GMAX], l_run[KVTC__ATTN_GMAX], acc[KVTC__ATTN_GMAX][EPL];
#pragma unroll
    for (int g = 0; g < KVTC__ATTN_GMAX; ++g) {
        m_run[g] = -INFINITY, l_run[g] = 0.0f;
#pragma unroll
        for (int e = 0; e < EPL; ++e) acc[g][e] = 0.0f;
    }
    for (int t0 = t_begin + warp * 32; t0 < t_end; t0 += 128) {
        /* ---- stage this lane's token: K and V codes (and affine scales) by cp.async */
        const int t = t0 + lane, slot = t % a.block_size;
        bool valid = t < t_end;
        const unsigned char *kpage = nullptr, *vpage = nullptr;
        if (valid) {
            const int blk = bt[t / a.block_size];
            valid = blk >= 0 && blk < a.n_blocks; /* a bad table entry masks the token */
            if (valid) {
                kpage = a.kcache + ((long long)blk * a.n_kv + h) * a.k.page_bytes;
                vpage = a.vcache + ((long long)blk * a.n_kv + h) * a.v.page_bytes;
                const unsigned *ksrc = (const unsigned *)(kpage + a.k.off_codes + slot * a.k.code_bytes);
                const unsigned *vsrc = (const unsigned *)(vpage + a.v.off_codes + slot * a.v.code_bytes);
                const unsigned *ssrc = (const unsigned *)(vpage + a.v.off_scales + slot * a.v.scale_bytes);
                for (int w = 0; w < kw; ++w) kvtc__cp_async4(s_krow + w, ksrc + w);
                for (int w = 0; w < vw; ++w) kvtc__cp_async4(s_vrows + lane * vst + w, vsrc + w);
                if (a.v.method == KVTC_METHOD_AFFINE)
                    for (int w = 0; w < vsw; ++w) kvtc__cp_async4(s_vscs + lane * vsst + w, ssrc + w);
            }
        }
        asm volatile("cp.async.commit_group;\n" ::);
        float nk = 0.0f, nv = 1.0f;
        if (valid) {
            nk = kvtc__get_norm(kpage + a.k.off_scales + slot * a.k.scale_bytes, a.k.norm32);
            if (a.v.method != KVTC_METHOD_AFFINE) nv = kvtc__get_norm(vpage + a.v.off_scales + slot * a.v.scale_bytes, a.v.norm32);
        }
        asm volatile("cp.async.wait_group 0;\n" ::);
        __syncwarp();
        /* ---- scores: lane = token, codes from this lane's staged row */
        float s[KVTC__ATTN_GMAX];
#pragma unroll
        for (int g = 0; g < KVTC__ATTN_GMAX; ++g) s[g] = 0.0f;
        if (valid) {
            unsigned long long win = 0;
            int have = 0, wi = 0;
            const int kb = KB ? KB : a.k.mse_bits;
            const unsigned mask = (1u << kb) - 1u;
#pragma unroll(KB ? EPL * 8 : 1)
            for (int j = 0; j < d; j += 4) {
                float cv[4];
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    if (have < kb) {
                        win |= (unsigned long long)s_krow[wi++] << have;
                        have += 32;
                    }
                    cv[e] = s_ktab[(unsigned)win & mask];
                    win >>= kb;
                    have -= kb;
                }
#pragma unroll
                for (int g = 0; g < KVTC__ATTN_GMAX; ++g)
                    if (g < G) {
                        const float4 q4 = *(const float4 *)(s_q + g * D + j);
                        s[g] = fmaf(q4.w, cv[3], fmaf(q4.z, cv[2], fmaf(q4.y, cv[1], fmaf(q4.x, cv[0], s[g]))));
                    }
            }
#pragma unroll
            for (int g = 0; g < KVTC__ATTN_GMAX; ++g) s[g] *= nk;
            if (!KB && a.k.method == KVTC_METHOD_TQ_PROD) {
                const unsigned char *sg = kpage + a.k.off_qjl + slot * a.k.qjl_bytes;
                const float rn = kvtc__get_norm(kpage + a.k.off_rnorms + slot * a.k.rnorm_bytes, a.k.norm32) * qjl_c;
                float qd[KVTC__ATTN_GMAX];
#pragma unroll
                for (int g = 0; g < KVTC__ATTN_GMAX; ++g) qd[g] = 0.0f;
                for (int k = 0; k < a.k.m; ++k) {
                    const bool pos = (sg[k >> 3] >> (k & 7)) & 1u;
#pragma unroll
                    for (int g = 0; g < KVTC__ATTN_GMAX; ++g)
                        if (g < G) qd[g] += pos ? s_sq[g * KVTC__ATTN_MMAX + k] : -s_sq[g * KVTC__ATTN_MMAX + k];
                }
#pragma unroll
                for (int g = 0; g < KVTC__ATTN_GMAX; ++g) s[g] = fmaf(rn, qd[g], s[g]);
            }
        }
        /* ---- online softmax over this warp's 32 tokens (log2 domain); p * value norm to shared */
#pragma unroll
        for (int g = 0; g < KVTC__ATTN_GMAX; ++g) {
            if (g >= G) break;
            const float sg = valid ? s[g] : -INFINITY;
            const float mx = kvtc__warp_max(sg), m_new = fmaxf(m_run[g], mx);
            const float corr = m_new == -INFINITY ? 1.0f : exp2f(m_run[g] - m_new);
            const float p = valid ? exp2f(sg - m_new) : 0.0f;
            l_run[g] = l_run[g] * corr + kvtc__warp_sumf(p);
            m_run[g] = m_new;
            s_w[lane * KVTC__ATTN_GMAX + g] = p * nv;
#pragma unroll
            for (int e = 0; e < EPL; ++e) acc[g][e] *= corr;
        }
        __syncwarp();
        /* ---- values: lane = dims [lane*EPL, lane*EPL + EPL), token by token from the staged rows */
        const int n_here = min(32, t_end - t0), vb = VB ? VB : a.v.method == KVTC_METHOD_AFFINE ? a.v.bits : a.v.mse_bits;
        const int bit0 = lane * EPL * vb, wi0 = bit0 >> 5, sh0 = bit0 & 31;
        const bool in_range = lane * EPL < d;
        const unsigned vmask = (1u << vb) - 1u;
        for (int u = 0; u < n_here; ++u) {
            const unsigned *row = s_vrows + u * vst;
            unsigned long long win = 0;
            if (in_range) {
                win = (unsigned long long)row[wi0] >> sh0;
                if (sh0 + EPL * vb > 32 && (VB || wi0 + 1 < vw)) win |= (unsigned long long)row[wi0 + 1] << (32 - sh0);
                if (sh0 + EPL * vb > 64 && (VB || wi0 + 2 < vw)) win |= (unsigned long long)row[wi0 + 2] << (64 - sh0);
            }
            float val[EPL];
            if (!VB && a.v.method == KVTC_METHOD_AFFINE) { /* a lane's dims may straddle two groups */
#pragma unroll
                for (int e = 0; e < EPL; ++e) {
                    const int i = lane * EPL + e;
                    const unsigned sw = s_vscs[u * vsst + (i < d ? i / a.v.gs : 0)];
                    const float sc = __half2float(__ushort_as_half((unsigned short)(sw & 0xffffu)));
                    const float mn = __half2float(__ushort_as_half((unsigned short)(sw >> 16)));
                    val[e] = mn + (float)((unsigned)(win >> (e * vb)) & vmask) * sc;
                }
            } else {
#pragma unroll
                for (int e = 0; e < EPL; ++e) val[e] = s_vtab[(unsigned)(win >> (e * vb)) & vmask];
            }
#pragma unroll
            for (int g = 0; g < KVTC__ATTN_GMAX; ++g)
                if (g < G) {
                    const float w = s_w[u * KVTC__ATTN_GMAX + g];
#pragma unroll
                    for (int e = 0; e < EPL; ++e) acc[g][e] = fmaf(w, val[e], acc[g][e]);
                }
        }
        __syncwarp();
    }
    __syncthreads(); /* the staging area becomes the merge area below */
    /* ---- merge the 4 warps in a fixed order */
#pragma unroll
    for (int g = 0; g < KVTC__ATTN_GMAX; ++g) {
        if (g >= G) break;
#pragma unroll
        for (int e = 0; e < EPL; ++e) s_acc[(warp * KVTC__ATTN_GMAX + g) * D + lane * EPL + e] = acc[g][e];
        if (lane == 0) s_ml[(warp * KVTC__ATTN_GMAX + g) * 2] = m_run[g], s_ml[(warp * KVTC__ATTN_GMAX + g) * 2 + 1] = l_run[g];
    }
    __syncthreads();
    kvtc__attn_finish<EPL, 4>(a, s_acc, s_ml, s_buf, G, h, b, split, warp, lane);
}

/* Programmatic dependent launch (sm_90, CUDA Programming Guide, "Programmatic Dependent Launch"): the merge
 * kernel is launched with cudaLaunchAttributeProgrammaticStreamSerialization, so its blocks may become resident
 * once every block of the kernel before it has triggered (or exited); griddepcontrol.wait then holds them until
 * that kernel has completed and its writes are visible. The launch latency leaves the critical path. Both are
 * no-ops without the attribute, and compiled out below sm_90. */
static __device__ __forceinline__ void kvtc__pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}
static __device__ __forceinline__ void kvtc__pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

/* kvtc__k_attn_merge<EPL>: the n_part partials of each query head -> output. grid (n_q_heads, n_seqs), block
 * 32 KVTC__MERGE_WARPS, launched as a programmatic dependent of the kernel before it (kvtc__pdl_wait; the
 * tensor-core kernel triggers after its loop). Warp w sums parts w U .. w U + U - 1, then those NW U further
 * on, ...: the rows of its first U parts are loaded before the parts' largest LSE is known, so the partials
 * are about one L2 round trip away (one warp reading the parts in turn took 4 us at batch 1 / 4K; this, 3). The warps' sums are
 * added in warp order; warp 0 rotates back and stores. */
#define KVTC__MERGE_WARPS 4
template <int EPL>
__global__ void __launch_bounds__(32 * KVTC__MERGE_WARPS) kvtc__k_attn_merge(const kvtc__attn_args a) {
    constexpr int NW = KVTC__MERGE_WARPS, U = 4, D = EPL * 32;
    __shared__ float s_sum[NW][D], s_l[NW];
    const int warp = (int)threadIdx.x >> 5, lane = (int)threadIdx.x & 31, d = a.v.d, n = a.n_part;
    const long long qh = (long long)blockIdx.y * a.n_q_heads + blockIdx.x;
    if (warp == 0 && a.v.method != KVTC_METHOD_AFFINE && !a.rotated_output) kvtc__prefetch_rotation(a.v, lane);
    kvtc__pdl_wait(); /* the partials are complete and visible */
    const float *lse = a.ws_lse + qh * n, *wo = a.ws_o + qh * n * D + lane;
    float r[U][EPL];
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
        for (int p = 0; p < EPL; ++p) r[u][p] = warp * U + u < n ? wo[(warp * U + u) * D + p * 32] : 0.0f;
    float M = -INFINITY, L = 0.0f, x[EPL];
    for (int s = lane; s < n; s += 32) M = fmaxf(M, lse[s]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) M = fmaxf(M, __shfl_xor_sync(KVTC__FULL, M, o));
#pragma unroll
    for (int p = 0; p < EPL; ++p) x[p] = 0.0f;
    for (int s0 = warp * U; s0 < n; s0 += NW * U) {
        if (s0 != warp * U) /* the first group's rows are loaded */
#pragma unroll
            for (int u = 0; u < U; ++u)
#pragma unroll
                for (int p = 0; p < EPL; ++p) r[u][p] = s0 + u < n ? wo[(s0 + u) * D + p * 32] : 0.0f;
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const float ls = s0 + u < n ? lse[s0 + u] : -INFINITY, w = ls == -INFINITY ? 0.0f : exp2f(ls - M);
            L += w;
            if (w != 0.0f)
#pragma unroll
                for (int p = 0; p < EPL; ++p) x[p] += w * r[u][p];
        }
    }
#pragma unroll
    for (int p = 0; p < EPL; ++p) s_sum[warp][p * 32 + lane] = x[p];
    if (lane == 0) s_l[warp] = L;
    __syncthreads();
    if (warp) return;
    L = 0.0f;
    for (int w = 0; w < NW; ++w) L += s_l[w];
#pragma unroll
    for (int p = 0; p < EPL; ++p) {
        float o = 0.0f;
        for (int w = 0; w < NW; ++w) o += s_sum[w][p * 32 + lane];
        x[p] = L > 0.0f ? o / L : 0.0f;
    }
    __syncwarp();
    if (a.v.method != KVTC_METHOD_AFFINE && !a.rotated_output) kvtc__rotate<EPL>(a.v, x, &s_sum[1][0], lane, true);
    char *obase = (char *)a.out + qh * d * (a.out_dtype == KVTC_DTYPE_F32 ? 4 : 2);
#pragma unroll
    for (int p = 0; p < EPL; ++p)
        if (p * 32 + lane < d) kvtc__store(obase, p * 32 + lane, a.out_dtype, x[p]);
    if (a.lse && lane == 0) a.lse[qh] = L > 0.0f ? (M + log2f(L)) * 0.6931471805599453f : -INFINITY;
}

/* ---- tensor-core decode attention ---------------------------------------------
 * mma.sync m16n8k16 with fp16 inputs and fp32 accumulators. With g = lane / 4 and t = lane % 4
 * (PTX ISA, "Matrix Fragments for mma.m16n8k16"): A (16 x 16) a0 = (row g, k 2t..2t+1),
 * a1 = (g + 8, 2t..), a2 = (g, 2t+8..), a3 = (g + 8, 2t+8..); B (16 x 8) b0 = (k 2t..2t+1, col g),
 * b1 = (k 2t+8.., col g); C (16 x 8) c0, c1 = (row g, cols 2t, 2t+1), c2, c3 = (row g + 8, same).
 * Each 32-bit register holds two fp16, the lower k (or column) in the low half. */
/* Transpose of an 8 x 8 fp16 matrix held as thread i = row i / 4, columns 2(i % 4), 2(i % 4) + 1. */
static __device__ __forceinline__ unsigned kvtc__trans8x8(unsigned x) {
    unsigned y;
    asm("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
    return y;
}
static __device__ __forceinline__ unsigned kvtc__half2_bits(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *(const unsigned *)&h;
}

/* Pair table of a B-bit codebook in shared memory: for B = 2 and 4, entry e = (code of the first of two
 * consecutive coordinates) | (code of the second) << B holds both centroids as fp16 (first in the low
 * half); for B = 8 entry e holds centroid e in the low half. Every entry is stored 32 times, word
 * e * 64 + lane for lane `lane` (a row of 256 bytes per entry: the key table in bytes 0-127, the value
 * table, unless K and V share it, in bytes 128-255), so a warp's lookups never conflict on a bank (16
 * copies, two lanes to a copy, measured 25% slower at batch 8 / 32K; 8 copies 47%), and an 8-bit index is
 * placed into a lane's address by one byte permute (kvtc__lut_ofs). */
template <int B>
struct kvtc__pairs {
    static constexpr int entries = B == 8 ? 256 : 1 << (2 * B);
};
template <int B>
static __device__ __forceinline__ float kvtc__pairs_mine(const float *cent) { /* this lane's centroid, for kvtc__pairs_fill */
    return B == 8 ? 0.0f : __ldg(cent + ((threadIdx.x & 31) & ((1 << B) - 1)));
}
template <int B>
static __device__ void kvtc__pairs_fill(unsigned *lut, const float *cent, float mine) {
    /* entries * 8 is a multiple of 32: each warp runs every iteration or none */
    for (int i = threadIdx.x; i < kvtc__pairs<B>::entries * 8; i += blockDim.x) {
        const int e = i >> 3, mask = (1 << B) - 1;
        const unsigned v = B == 8 ? kvtc__half2_bits(__ldg(cent + e), 0.0f)
                                  : kvtc__half2_bits(__shfl_sync(KVTC__FULL, mine, e & mask), __shfl_sync(KVTC__FULL, mine, e >> B));
        ((uint4 *)lut)[e * 16 + (i & 7)] = make_uint4(v, v, v, v); /* 4 of entry e's 32 lane copies */
    }
}
/* Byte offset, in a pair table, of this lane's copy of the entry whose index is the `bits`-bit field of w
 * at bit `pos`: field * 256 + 4 * lane. An 8-bit field is a byte of w, which one prmt puts into byte 1
 * of 4 * lane (bits 8-15 of the offset); the table's address is uniform across the warp and the load
 * adds it (ld.shared [R + UR]). A 4-bit field is masked in place in its byte (the byte moved down once
 * for both of its fields) and scaled and placed by one mad on the FMA pipe: the integer ALU pipe runs at
 * half rate and was what limited the loop (pos and bits are constants once the callers' loops are
 * unrolled). */
struct kvtc__lane_lut {
    const unsigned char *tab; /* the table (shared memory) */
    unsigned lane4;           /* 4 * lane */
    unsigned m256, m16; /* 256 and 16, which the compiler must not see as constants (it would turn x * 2^k + c into ALU ops) */
};
static __device__ __forceinline__ unsigned kvtc__lut_ofs(unsigned w, int pos, int bits, const kvtc__lane_lut &t) {
    if (bits == 8) return __byte_perm(w, t.lane4, 0x7604u | (unsigned)((pos >> 3) << 4));
    const unsigned u = pos >= 8 ? w >> (pos & ~7) : w; /* bits == 4 */
    return (pos & 7) ? (u & 0xf0u) * t.m16 + t.lane4 : (u & 0xfu) * t.m256 + t.lane4;
}
/* fp16 pair pi (coordinates 2 pi, 2 pi + 1) of the B-bit codes in w[], from this lane's column of the
 * table that t addresses. */
template <int B, int N>
static __device__ __forceinline__ unsigned kvtc__pair(const unsigned (&w)[N], int pi, const kvtc__lane_lut &t) {
#define KVTC__LUT(o) (*(const unsigned *)(t.tab + (o))) /* a plain load: the barriers order it */
    if (B == 4) return KVTC__LUT(kvtc__lut_ofs(w[pi >> 2], 8 * (pi & 3), 8, t));
    if (B == 2) return KVTC__LUT(kvtc__lut_ofs(w[pi >> 3], 4 * (pi & 7), 4, t));
    /* B == 8: two single-code entries */
    return __byte_perm(KVTC__LUT(kvtc__lut_ofs(w[pi >> 1], 16 * (pi & 1), 8, t)),
                       KVTC__LUT(kvtc__lut_ofs(w[pi >> 1], 16 * (pi & 1) + 8, 8, t)), 0x5410u);
#undef KVTC__LUT
}
/* Codes of two tokens a and b (B = 2 or 4 bits, consecutive coordinates) -> pair-table indices of
 * (a, b) at one coordinate: e holds those of the even coordinates, o of the odd ones, in the places
 * kvtc__pair reads coordinate pair pi from. */
template <int B>
static __device__ __forceinline__ void kvtc__interleave(unsigned a, unsigned b, unsigned &e, unsigned &o) {
    const unsigned lo = B == 4 ? 0x0f0f0f0fu : 0x33333333u;
    e = (a & lo) | ((b << B) & ~lo);
    o = ((a >> B) & lo) | (b & ~lo);
}
static __device__ __forceinline__ float kvtc__ex2(float x) { /* 2^x, -inf -> 0, results below 2^-126 -> 0 */
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
static __device__ __forceinline__ float kvtc__lg2(float x) {
    float y;
    asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* Tuning knobs of the tensor-core kernel, for benchmarking variants (bench/RESULTS.md has the ones
 * measured); the tests run the defaults. */
#ifndef KVTC__TC_STAGES /* cp.async stages per warp: STAGES - 1 tiles in flight while one computes */
#define KVTC__TC_STAGES 3
#endif
#ifndef KVTC__TC_W /* warps per block at head_dim D: they share the block's pair tables (d = 256 with 8: too much shared memory) */
#define KVTC__TC_W(D) ((D) <= 128 ? 8 : 4)
#endif
#ifndef KVTC__TC_QREG /* query fragments in registers (d <= 128) rather than shared memory */
#define KVTC__TC_QREG 1
#endif
#ifndef KVTC__TC_MINB /* resident blocks per SM the registers are budgeted for (launch bounds) */
#define KVTC__TC_MINB(D) (KVTC__TC_W(D) > 4 ? ((D) == 256 ? 1 : 2) : ((D) == 256 ? 2 : 3))
#endif

/* What a lane of the tensor-core kernel reads of one 16-token tile: a quarter of key rows g and g + 8
 * (coordinates t*D/4 .. +D/4), an eighth of value rows 2t, 2t+1, 2t+8, 2t+9 (coordinates g*D/8 .. +D/8),
 * and the key and value norms of rows g and g + 8. Each lane copies exactly its codes into its own
 * slots of a stage of its warp's ring by cp.async (so no barrier is needed to read them back); pieces
 * under 4 bytes come as the aligned word that holds them. A stage is [field][32 lanes] so that a
 * warp's reads of one field are contiguous. The tile's 16 key and 16 value norms (two 16-byte-aligned
 * pieces of 32 bytes: sections of a page are 16-aligned) are copied by lanes 0-3, 16 bytes each, and
 * read by every lane; each lane reads back the mask word of the stage it wrote itself. Every field starts
 * on a 128-byte boundary of the stage and no piece crosses one, so a ring may also live in the upper
 * halves of the pair tables' 256-byte rows (kvtc__tc_slots). */
__host__ __device__ constexpr int kvtc__tc_kl(int d, int kb) { return d * kb / 32 < 4 ? 4 : d * kb / 32; }
__host__ __device__ constexpr int kvtc__tc_vl(int d, int vb) { return d * vb / 64 < 4 ? 4 : d * vb / 64; }
/* bytes of one stage: K0, K1 [32][KL], V [4][32][VL], norms [2][16] fp16 (K, V), mask [32] words; a stage
 * in the tables' free halves pads the norms to 128 bytes (kvtc__tc_slots) */
__host__ __device__ constexpr int kvtc__tc_stage_bytes(int d, int kb, int vb) {
    return 64 * kvtc__tc_kl(d, kb) + 128 * kvtc__tc_vl(d, vb) + 64 + 128;
}
__host__ __device__ constexpr int kvtc__tc_stage_bytes_in(int d, int kb, int vb) {
    return kvtc__tc_stage_bytes(d, kb, vb) + 64;
}
/* Rows of the pair tables (kvtc__pairs_fill). The upper halves of rows h0.. are free (h0 = 0 when keys and
 * values share one table, else the value table's rows), and the rings of the first kvtc__tc_hole_warps
 * warps live there. */
__host__ __device__ constexpr int kvtc__tc_rows_of(int bits) { return bits == 2 ? 16 : 256; }
__host__ __device__ constexpr int kvtc__tc_rows(int kb, int vb) {
    return kvtc__tc_rows_of(kb) > kvtc__tc_rows_of(vb) ? kvtc__tc_rows_of(kb) : kvtc__tc_rows_of(vb);
}
__host__ __device__ constexpr int kvtc__tc_h0(int vb, int share) { return share ? 0 : kvtc__tc_rows_of(vb); }
__host__ __device__ constexpr int kvtc__tc_hole_warps(int d, int kb, int vb, int share, int warps, int stages) {
    return 128 * (kvtc__tc_rows(kb, vb) - kvtc__tc_h0(vb, share)) / (stages * kvtc__tc_stage_bytes_in(d, kb, vb)) < warps
               ? 128 * (kvtc__tc_rows(kb, vb) - kvtc__tc_h0(vb, share)) / (stages * kvtc__tc_stage_bytes_in(d, kb, vb))
               : warps;
}
template <int D, int KB, int VB>
struct kvtc__tc_stage {
    static constexpr int KBYTES = D * KB / 32, VBYTES = D * VB / 64;  /* what a lane needs */
    static constexpr int KL = kvtc__tc_kl(D, KB), VL = kvtc__tc_vl(D, VB); /* what it copies */
    static constexpr int K0 = 0, K1 = 32 * KL, V = 64 * KL, NORM = 64 * KL + 128 * VL;
    static constexpr int OK = NORM + 64, OK_IN = NORM + 128; /* mask words: after the tables, in their halves */
    static constexpr int BYTES = kvtc__tc_stage_bytes(D, KB, VB), BYTES_IN = kvtc__tc_stage_bytes_in(D, KB, VB);
    static_assert(BYTES == OK + 128 && BYTES_IN == OK_IN + 128, "stage layout");
    static_assert(BYTES_IN % 128 == 0 && NORM % 128 == 0, "stages in the tables' halves: 128-byte fields");
};
/* x's value from here on is unknown to the compiler, so it stays in a register rather than being recomputed */
static __device__ __forceinline__ void kvtc__opaque(unsigned &x) { asm volatile("" : "+r"(x)); }
static __device__ __forceinline__ void kvtc__opaque(const unsigned char *&p) { asm volatile("" : "+l"(p)); }
/* Where this lane's slots of its warp's stage 0 are (byte offsets in the kernel's shared memory) and the
 * stride between stages. The ring follows the tables, or (warps below kvtc__tc_hole_warps) lives in the
 * upper halves of the table rows from h0: ring byte x then sits at 256 h0 + 2 (x - x % 128) + 128 + x % 128. */
struct kvtc__tc_slots {
    unsigned k0, k1, v, vstep, nw, nr, ok, stage; /* v: value row u at v + u * vstep; nw: norm copy, nr: norm reads */
};
template <int D, int KB, int VB, bool SH>
static __device__ __forceinline__ kvtc__tc_slots kvtc__tc_slots_of(unsigned ring_after, int warp, int g, int lane) {
    typedef kvtc__tc_stage<D, KB, VB> S;
    constexpr int HW = kvtc__tc_hole_warps(D, KB, VB, SH, KVTC__TC_W(D), KVTC__TC_STAGES);
    constexpr unsigned H0 = 256u * kvtc__tc_h0(VB, SH);
    const bool in = warp < HW;
    const unsigned m = in ? 2u : 1u, base = in ? H0 + 2u * warp * KVTC__TC_STAGES * S::BYTES_IN
                                               : ring_after + (unsigned)(warp - HW) * KVTC__TC_STAGES * S::BYTES;
    auto at = [&](unsigned x) { return base + (in ? 2u * (x & ~127u) + 128u + (x & 127u) : x); };
    kvtc__tc_slots o;
    o.k0 = at(S::K0 + lane * S::KL), o.k1 = at(S::K1 + lane * S::KL);
    o.v = at(S::V + lane * S::VL), o.vstep = m * 32u * S::VL;
    o.nw = at(S::NORM + 16 * (lane & 3)), o.nr = at(S::NORM) + 2u * g, o.ok = at((in ? S::OK_IN : S::OK) + 4 * lane);
    o.stage = in ? 2u * S::BYTES_IN : S::BYTES;
    return o;
}

/* This lane's fixed source addresses in page 0 of its KV head h (kvtc__tc_issue adds the tile's page and
 * token offset): key codes of row g, value codes of row 2t, and for lanes 0-3 a half of the key (0, 1) or
 * value (2, 3) norms. */
struct kvtc__tc_src {
    const unsigned char *k, *v, *n;
};
template <int D, int KB, int VB>
static __device__ __forceinline__ kvtc__tc_src kvtc__tc_src_of(const kvtc__attn_args &a, int h, int g, int t, int lane) {
    typedef kvtc__tc_stage<D, KB, VB> S;
    const unsigned char *kp = a.kcache + (long long)h * (long long)a.k.page_bytes;
    const unsigned char *vp = a.vcache + (long long)h * (long long)a.v.page_bytes;
    kvtc__tc_src s;
    s.k = kp + a.k.off_codes + g * (D * KB / 8) + t * S::KBYTES;
    s.v = vp + a.v.off_codes + 2 * t * (D * VB / 8) + ((g * S::VBYTES) & ~3);
    s.n = (lane < 2 ? kp + a.k.off_scales : vp + a.v.off_scales) + 16 * (lane & 1); /* lanes 0-3 (kvtc__tc_issue) */
    return s;
}
/* Start copying this lane's part of the tile at token offset `off` (a multiple of 16) of physical block
 * `blk` into the stage at shared address sb + the slots o; a bad block id marks the stage masked. */
template <int D, int KB, int VB>
static __device__ __forceinline__ void kvtc__tc_issue(const kvtc__attn_args &a, const kvtc__tc_src &src, int blk, int off,
                                                      int lane, unsigned sb, const kvtc__tc_slots &o) {
    typedef kvtc__tc_stage<D, KB, VB> S;
    constexpr int KROW = D * KB / 8, VROW = D * VB / 8;
    const bool ok = blk >= 0 && blk < a.n_blocks;
    asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(sb + o.ok), "r"((unsigned)ok) : "memory");
    if (!ok) return;
    const unsigned long long kb = (unsigned long long)(unsigned)blk * a.k_blk_bytes,
                             vb = (unsigned long long)(unsigned)blk * a.v_blk_bytes;
    const unsigned char *kc = src.k + (kb + (unsigned)(off * KROW)), *vc = src.v + (vb + (unsigned)(off * VROW));
    kvtc__cp_async<S::KL>(sb + o.k0, kc);
    kvtc__cp_async<S::KL>(sb + o.k1, kc + 8 * KROW);
    constexpr int rows[4] = {0, 1, 8, 9}; /* value rows 2t, 2t + 1, 2t + 8, 2t + 9 */
#pragma unroll
    for (int u = 0; u < 4; ++u) kvtc__cp_async<S::VL>(sb + o.v + u * o.vstep, vc + rows[u] * VROW);
    if (lane < 4) kvtc__cp_async<16>(sb + o.nw, src.n + (lane < 2 ? kb : vb) + 2 * off);
}

template <int D, int KB, int VB>
struct kvtc__tile {
    static constexpr int KW = kvtc__tc_stage<D, KB, VB>::KL / 4, VW = kvtc__tc_stage<D, KB, VB>::VL / 4;
    unsigned k0[KW], k1[KW], v[4][VW];
    float nk0, nk1, nv0, nv1;
    bool ok0, ok1; /* rows g and g + 8 hold tokens of the context */
};
static __device__ __forceinline__ float kvtc__lds_half(unsigned p) {
    unsigned short h;
    asm("ld.shared.u16 %0, [%1];" : "=h"(h) : "r"(p) : "memory");
    return __half2float(__ushort_as_half(h));
}
/* Read this lane's part of a landed stage (at sb + the slots o); n_valid = tokens of the context from the
 * tile's first. */
template <int D, int KB, int VB>
static __device__ __forceinline__ void kvtc__tc_read(unsigned sb, const kvtc__tc_slots &o, int n_valid, int g,
                                                     kvtc__tile<D, KB, VB> &T) {
    typedef kvtc__tc_stage<D, KB, VB> S;
    const bool ok = kvtc__lds(sb + o.ok) != 0u;
    kvtc__lds_words(sb + o.k0, T.k0);
    kvtc__lds_words(sb + o.k1, T.k1);
#pragma unroll
    for (int u = 0; u < 4; ++u) {
        kvtc__lds_words(sb + o.v + u * o.vstep, T.v[u]);
        if (S::VBYTES < 4) T.v[u][0] >>= ((g * S::VBYTES) & 3) * 8;
    }
    T.ok0 = ok && g < n_valid;
    T.ok1 = ok && g + 8 < n_valid;
    const unsigned nh = sb + o.nr; /* key norms of tokens g and g + 8, then value norms (fp16) */
    T.nk0 = T.ok0 ? kvtc__lds_half(nh) : 0.0f;
    T.nk1 = T.ok1 ? kvtc__lds_half(nh + 16) : 0.0f;
    T.nv0 = T.ok0 ? kvtc__lds_half(nh + 32) : 0.0f;
    T.nv1 = T.ok1 ? kvtc__lds_half(nh + 48) : 0.0f;
}

static __device__ __forceinline__ float kvtc__max_over_g(float x) { /* over the 8 lanes of one t */
    x = fmaxf(x, __shfl_xor_sync(KVTC__FULL, x, 4));
    x = fmaxf(x, __shfl_xor_sync(KVTC__FULL, x, 8));
    return fmaxf(x, __shfl_xor_sync(KVTC__FULL, x, 16));
}

/* kvtc__k_attn_tc<D, KB, VB>   CPU twin: kvtc_attn_decode
 * grid (n_kv_heads, n_seqs, n_split), block 32 W (W = KVTC__TC_W(D): 8 warps, 4 at d = 256); each warp takes every
 * W-th 16-token tile of the split through its own ring of KVTC__TC_STAGES cp.async stages (two tiles in
 * flight while one computes; lanes 0-3 copy the tile's norms for the whole warp, so a __syncwarp follows
 * each wait).
 * Per tile and warp: scores S (16 tokens x 8 heads) = K Q'^T as D/16 k-steps of NB = ceil(G / 4) mma each:
 * the 8 columns of query block nb are the fp16 hi parts of heads 4 nb .. 4 nb + 3 and then their lo parts
 * (q' - hi), so one mma scores 4 heads to fp32 accuracy and a shuffle adds the halves (two accumulators
 * per block, so the chain is short); online softmax per head; the weights
 * p * n_v go through movmatrix into the B fragment of O'^T (D x 8) += V^T P^T, D/16 mma.
 * Softmax keeps one reference maximum per head, of s + log2(n_v) (the fp16 weights' exponent, so the
 * weighted terms stay <= 2^KVTC__TC_SLACK whatever the value norms are); the sum L is kept against it too.
 * Coordinates: lane (g, t) holds key coordinates t*D/4 + 4s .. +3 of k-step s and value coordinates
 * g*D/8 + 2m, +1 of m-tile m, so every lane reads whole aligned chunks of each record.
 * smem (kvtc__attn_tc_layout_of): pair tables in rows of 256 bytes (64 KiB for 4 or 8 bits, 4 KiB for 2;
 * keys in the lower halves, values in the upper ones unless SH: K and V share a codebook), the rings
 * (W x 3 x 2.25 KiB at d = 128, 4 bits) in the free upper halves where they fit (kvtc__tc_slots), all
 * reused by the warp merge after the loop, then queries and their fragments.
 * The loop body is 406 SASS instructions per tile at <128,4,4,SH,1>, 352 of them outside the rare rescale
 * (396 without SH, 445 with two query blocks; 419 with two mma per k-step for every gqa and an exact
 * running maximum; 475 when a lookup was a byte extract and a mad): a
 * lookup is one prmt and one ld.shared (kvtc__lut_ofs), the copies use per-lane base pointers and
 * immediate offsets (kvtc__tc_src) that are computed once (kvtc__opaque).
 * regs @ sm_90, CUDA 13.0, 0 spills: d = 128: 120-128 (the cap of 2 blocks of 8 warps); d = 64: 87-111;
 * d = 256: 165-194. smem <128,4,4,SH>: 2 blocks/SM of 8 warps (d = 256: 2 of 4).
 * bytes per token and KV head: D*KB/8 + 2 (K), D*VB/8 + 2 (V); measured bound: instruction issue and
 * latency (half the issue slots busy, bench/RESULTS.md), not HBM bandwidth */
#define KVTC__TC_NONE (-1e30f) /* running maximum before any token: finite, below every real score */
#define KVTC__TC_RS(d) ((d) + 4) /* row stride (floats) of the warps' partials after the loop */
#ifndef KVTC__TC_SLACK /* log2 headroom of the reference maximum: weights up to 2^8, far below fp16's 65504 */
#define KVTC__TC_SLACK 8.0f
#endif
template <int D, int KB, int VB, bool SH, int NB>
__global__ void __launch_bounds__(32 * KVTC__TC_W(D), KVTC__TC_MINB(D)) kvtc__k_attn_tc(const kvtc__attn_args a) {
    static_assert(D == 64 || D == 128 || D == 256, "head_dim");
    static_assert((KB == 2 || KB == 4 || KB == 8) && (VB == 2 || VB == 4), "bits");
    static_assert(NB == 1 || NB == 2, "query blocks: gqa <= 4 or <= 8");
    /* QR: query fragments in registers; W: warps */
    constexpr int EPL = D / 32, NS = D / 16, QR = D <= 128 && KVTC__TC_QREG, NST = KVTC__TC_STAGES, W = KVTC__TC_W(D);
    static_assert(NST >= 2, "stages: the tile being read and the one being copied");
    typedef kvtc__tc_stage<D, KB, VB> Stage;
    extern __shared__ __align__(16) unsigned char kvtc__smem_tc[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int h = blockIdx.x, b = blockIdx.y, split = blockIdx.z, G = a.gqa;
    /* the pair tables, at the constant offsets 0 and (unless SH) 128: lookups are ld.shared [R + UR + imm] */
    const unsigned m256 = 256u | (a.tc_vlut & 0x80000000u); /* 256, opaque to the compiler (kvtc__lane_lut) */
    const kvtc__lane_lut lane4k = {kvtc__smem_tc, 4u * lane, m256, m256 >> 4};
    const kvtc__lane_lut lane4v = {kvtc__smem_tc + (SH ? 0 : 128), 4u * lane, m256, m256 >> 4};
    kvtc__tc_slots slots = kvtc__tc_slots_of<D, KB, VB, SH>(a.tc_ring, warp, g, lane); /* this warp's stages */
    /* computed once: left to itself the compiler recomputes them in the loop once registers are free */
    kvtc__opaque(slots.k0), kvtc__opaque(slots.k1), kvtc__opaque(slots.v), kvtc__opaque(slots.vstep);
    kvtc__opaque(slots.nw), kvtc__opaque(slots.nr), kvtc__opaque(slots.ok), kvtc__opaque(slots.stage);
    /* the rings' base, through tc_klut (0): left to itself the compiler shares one register between this and
     * the tables' base, which then no longer folds into the lookups' ld.shared [R + UR] */
    const unsigned smem_s = (unsigned)__cvta_generic_to_shared(kvtc__smem_tc + a.tc_klut);
    float *s_q = (float *)(kvtc__smem_tc + a.tc_q);    /* [8][D] rotated, scaled queries */
    uint2 *s_qf = (uint2 *)(kvtc__smem_tc + a.tc_qf); /* [NB][NS][32]: lane's B fragments {b0, b1} */
    float *s_buf = (float *)(kvtc__smem_tc + a.tc_buf); /* [W][D] rotation scratch */
    float *s_ml = (float *)(kvtc__smem_tc + a.tc_ml);   /* [W][8][2] per-warp max, sum */
    float *s_acc = (float *)kvtc__smem_tc;              /* [W][8][KVTC__TC_RS(D)] after the loop, over the tables and rings */

    /* Every global input of the prologue is loaded before any of them is used: the codebooks, this warp's
     * first query head and the rotation's signs here, the context length and block table below (read in
     * turn, one round trip after another, they took 3.4 us at batch 1 / 4K) */
    const float kmine = kvtc__pairs_mine<KB>(a.k.cent), vmine = SH ? 0.0f : kvtc__pairs_mine<VB>(a.v.cent);
    const long long q0 = (long long)b * a.n_q_heads + (long long)h * G; /* the group's first query head */
    const bool one_round = a.k.rot == KVTC_ROTATION_HADAMARD && a.k.rounds == 1 && !a.k.perm; /* P = H S */
    float qx[EPL], qs[EPL];
#pragma unroll
    for (int p = 0; p < EPL; ++p) {
        qx[p] = warp < G ? kvtc__load(a.q, (q0 + warp) * D + p * 32 + lane, a.q_dtype) : 0.0f;
        qs[p] = one_round ? __ldg(a.k.signs + p * 32 + lane) : 0.0f;
    }
    if (warp == 0 && a.n_part == 1 && !a.rotated_output) kvtc__prefetch_rotation(a.v, lane); /* kvtc__attn_finish */
    const int len = min(max(a.context_lens[b], 0), a.max_blocks * a.block_size);
    const int t_begin = split * a.blocks_per_split * a.block_size;
    const int t_end = min(len, t_begin + a.blocks_per_split * a.block_size);
    const int n_tiles = t_end > t_begin ? (t_end - t_begin + 15) >> 4 : 0;
    const int n_mine = n_tiles > warp ? (n_tiles - warp + W - 1) / W : 0; /* this warp's tiles: warp + W j */
    const int *bt = a.block_table + (long long)b * a.max_blocks;
    /* tile j of this warp is tile (t_begin / 16 + warp + W j) of the sequence: block tile / tpb, token offset
     * 16 (tile % tpb) in it (tpb = block_size / 16 tiles per block; a split starts on a block boundary) */
    kvtc__tc_src src = kvtc__tc_src_of<D, KB, VB>(a, h, g, t, lane);
    kvtc__opaque(src.k), kvtc__opaque(src.v), kvtc__opaque(src.n); /* as the slots */
    /* (it_blk, it_tile): block index and tile in that block of the next tile to look up; a warp's tiles are W
     * apart, which is st_blk blocks and st_tile tiles */
    const unsigned tile0 = (unsigned)(t_begin >> 4) + (unsigned)warp, tpb = (unsigned)a.tpb;
    const unsigned st_blk = (unsigned)W / tpb, st_tile = (unsigned)W - st_blk * tpb;
    unsigned it_blk = kvtc__div(tile0, a.div_tpb), it_tile = tile0 - it_blk * tpb;
#define KVTC__TC_TOK(j) (t_begin + 16 * (warp + W * (j)))
#define KVTC__TC_NEXT(j, blk, off) /* tile j's block id and token offset; the iterator moves to tile j + 1 */         \
    do {                                                                                                               \
        blk = it_blk < (unsigned)a.max_blocks ? __ldg(bt + it_blk) : -1; /* not waiting for n_mine */                 \
        off = 16 * (int)it_tile;                                                                                       \
        it_tile += st_tile, it_blk += st_blk;                                                                          \
        if (it_tile >= tpb) it_tile -= tpb, ++it_blk;                                                                  \
    } while (0)
#define KVTC__TC_ISSUE(j, blk, off, sb) /* tile j into the stage at shared address sb */                               \
    do {                                                                                                               \
        if ((j) < n_mine) kvtc__tc_issue<D, KB, VB>(a, src, blk, off, lane, sb, slots);                                \
        kvtc__cp_commit();                                                                                             \
    } while (0)
    /* the first NST tiles' block ids are read before the context length is used (no branch between the
     * loads), and the first tiles' bytes start moving before the tables and queries are set up */
    int blk0[NST], off0[NST];
#pragma unroll
    for (int j = 0; j < NST; ++j) KVTC__TC_NEXT(j, blk0[j], off0[j]);
#pragma unroll
    for (int j = 0; j < NST - 1; ++j) KVTC__TC_ISSUE(j, blk0[j], off0[j], smem_s + j * slots.stage);

    kvtc__pairs_fill<KB>((unsigned *)kvtc__smem_tc, a.k.cent, kmine);
    if (!SH) kvtc__pairs_fill<VB>((unsigned *)(kvtc__smem_tc + 128), a.v.cent, vmine);
    /* q' = P_k q * scale * log2(e) for each head of the group; heads G..7 are zero */
    for (int gq = warp; gq < 8; gq += W) {
        if (gq != warp) /* a second head of this warp (gqa > warps) */
#pragma unroll
            for (int p = 0; p < EPL; ++p) qx[p] = gq < G ? kvtc__load(a.q, (q0 + gq) * D + p * 32 + lane, a.q_dtype) : 0.0f;
        if (gq < G && one_round) { /* kvtc__rotate's forward Hadamard round with the signs loaded above */
#pragma unroll
            for (int p = 0; p < EPL; ++p) qx[p] = __fmul_rn(qx[p], qs[p]);
            kvtc__fwht<EPL>(qx, a.k.block, a.k.fwht_scale, lane);
        } else if (gq < G) {
            kvtc__rotate<EPL>(a.k, qx, s_buf + warp * D, lane, false);
        }
#pragma unroll
        for (int p = 0; p < EPL; ++p) s_q[gq * D + p * 32 + lane] = qx[p] * a.scale_log2;
    }
    __syncthreads();
    /* B fragments of Q'^T, block nb, k-step s: column n is head 4 nb + n % 4, its hi part for n < 4, else its
     * lo part; k 2t, 2t+1 -> coordinates t*D/4 + 4s, +1; k 2t+8, 2t+9 -> +2, +3 */
    for (int i = threadIdx.x; i < NB * NS * 32; i += blockDim.x) {
        const int nb = i / (NS * 32), s = (i >> 5) % NS, gg = (i & 31) >> 2, tt = i & 3;
        const float4 x = *(const float4 *)(s_q + (4 * nb + (gg & 3)) * D + tt * (D / 4) + 4 * s);
        const float2 h01 = __half22float2(__floats2half2_rn(x.x, x.y)), h23 = __half22float2(__floats2half2_rn(x.z, x.w));
        s_qf[i] = gg < 4 ? make_uint2(kvtc__half2_bits(x.x, x.y), kvtc__half2_bits(x.z, x.w))
                         : make_uint2(kvtc__half2_bits(x.x - h01.x, x.y - h01.y), kvtc__half2_bits(x.z - h23.x, x.w - h23.y));
    }
    __syncthreads();
    uint2 qreg[QR ? NB * NS : 1];
    if (QR) {
#pragma unroll
        for (int i = 0; i < (QR ? NB * NS : 1); ++i) qreg[i] = s_qf[i * 32 + lane];
    }

    float mv[2] = {KVTC__TC_NONE, KVTC__TC_NONE}, l[2] = {0.0f, 0.0f}, acc[NS][4];
#pragma unroll
    for (int m = 0; m < NS; ++m) acc[m][0] = acc[m][1] = acc[m][2] = acc[m][3] = 0.0f;
    int blk_next = blk0[NST - 1], off_next = off0[NST - 1]; /* block ids are read one iteration before their tile is issued */
    /* stage offsets: tile j is read from stage j % NST, and tile j + NST - 1 refills the one read before */
    unsigned rd = 0u, wr = (NST - 1) * slots.stage;
    const unsigned ring_bytes = NST * slots.stage;
    for (int j = 0; j < n_mine; ++j) {
        int blk_after, off_after;
        KVTC__TC_NEXT(j + NST, blk_after, off_after);
        kvtc__cp_wait<NST - 2>(); /* tile j's group has landed */
        __syncwarp(); /* lanes 0-3 copied the norms every lane reads; the stage refilled next was read last time */
        KVTC__TC_ISSUE(j + NST - 1, blk_next, off_next, smem_s + wr);
        kvtc__tile<D, KB, VB> cur;
        kvtc__tc_read<D, KB, VB>(smem_s + rd, slots, t_end - KVTC__TC_TOK(j), g, cur);
        wr = rd;
        rd = rd + slots.stage == ring_bytes ? 0u : rd + slots.stage;
        /* ---- scores S[token][head] = n_k <K row, q'> (log2 units), rows g and g + 8, heads 2t, 2t + 1 */
        float sc[NB][2][4] = {};
#pragma unroll
        for (int s = 0; s < NS; ++s) {
            const unsigned a0 = kvtc__pair<KB>(cur.k0, 2 * s, lane4k), a1 = kvtc__pair<KB>(cur.k1, 2 * s, lane4k);
            const unsigned a2 = kvtc__pair<KB>(cur.k0, 2 * s + 1, lane4k);
            const unsigned a3 = kvtc__pair<KB>(cur.k1, 2 * s + 1, lane4k);
#pragma unroll
            for (int nb = 0; nb < NB; ++nb) {
                const uint2 qf = QR ? qreg[QR ? nb * NS + s : 0] : s_qf[(nb * NS + s) * 32 + lane];
                kvtc__mma16816(sc[nb][s & 1], a0, a1, a2, a3, qf.x, qf.y);
            }
        }
        /* lane t holds the hi (t < 2) or lo halves of heads 4 nb + 2 (t % 2), +1, and lane t ^ 2 the other
         * halves; lane t's heads 2t, 2t + 1 are those of block t / 2. With NB = 1 (gqa <= 4) lanes t >= 2
         * get heads 2 (t - 2), +1 again as their "heads 2t, 2t + 1", which do not exist; their outputs are
         * never stored. */
        float sf[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const float x0 = sc[0][0][e] + sc[0][1][e], x1 = sc[NB - 1][0][e] + sc[NB - 1][1][e];
            const bool upper = t >= 2;
            sf[e] = (upper ? x1 : x0) + __shfl_xor_sync(KVTC__FULL, upper ? x0 : x1, 2);
        }
        const float s0[2] = {cur.ok0 ? sf[0] * cur.nk0 : -INFINITY, cur.ok0 ? sf[1] * cur.nk0 : -INFINITY};
        const float s1[2] = {cur.ok1 ? sf[2] * cur.nk1 : -INFINITY, cur.ok1 ? sf[3] * cur.nk1 : -INFINITY};
        const float lv0 = cur.nv0 > 0.0f ? kvtc__lg2(cur.nv0) : -INFINITY, lv1 = cur.nv1 > 0.0f ? kvtc__lg2(cur.nv1) : -INFINITY;
        /* ---- online softmax with one reference maximum per head: m of s + max(log2 n_v, -25), the
         * exponent of the weights p n_v. m moves only when a score passes m + KVTC__TC_SLACK (a vote, no
         * shuffles; then m becomes the exact maximum and the sums are rescaled), so the fp16 weights stay
         * <= 2^SLACK. A nonzero fp16 norm is >= 2^-24, so the terms 2^(s - m) of the sum l stay
         * <= 2^(25 + SLACK) (and a zero norm cannot push them up). m starts at the finite KVTC__TC_NONE,
         * so no exponent is ever -inf - -inf. */
        float top[2], w0[2], w1[2];
        bool grow = false;
#pragma unroll
        for (int jj = 0; jj < 2; ++jj) {
            top[jj] = fmaxf(s0[jj] + fmaxf(lv0, -25.0f), s1[jj] + fmaxf(lv1, -25.0f));
            grow |= top[jj] > mv[jj] + KVTC__TC_SLACK;
        }
        if (__any_sync(KVTC__FULL, grow)) { /* a new maximum: rescale (rare after the first tiles) */
            float cv[2];
#pragma unroll
            for (int jj = 0; jj < 2; ++jj) {
                const float mv_new = fmaxf(mv[jj], kvtc__max_over_g(top[jj]));
                cv[jj] = kvtc__ex2(mv[jj] - mv_new);
                l[jj] *= cv[jj];
                mv[jj] = mv_new;
            }
#pragma unroll
            for (int m = 0; m < NS; ++m) acc[m][0] *= cv[0], acc[m][1] *= cv[1], acc[m][2] *= cv[0], acc[m][3] *= cv[1];
        }
#pragma unroll
        for (int jj = 0; jj < 2; ++jj) {
            const float e0 = kvtc__ex2(s0[jj] - mv[jj]), e1 = kvtc__ex2(s1[jj] - mv[jj]);
            l[jj] += e0 + e1;
            w0[jj] = e0 * cur.nv0; /* 2^(s + log2 n_v - m) <= 2^SLACK */
            w1[jj] = e1 * cur.nv1;
        }
        /* ---- O'^T += V^T P^T: P^T's B fragment is the transpose of the weights' C layout. V^T's A fragment
         * pairs two tokens at one coordinate: the codes of rows (2t, 2t + 1) and (2t + 8, 2t + 9) are
         * interleaved into pair-table indices, one word of even and one of odd coordinates per word. */
        const unsigned pb0 = kvtc__trans8x8(kvtc__half2_bits(w0[0], w0[1]));
        const unsigned pb1 = kvtc__trans8x8(kvtc__half2_bits(w1[0], w1[1]));
        unsigned ve[2][kvtc__tile<D, KB, VB>::VW], vo[2][kvtc__tile<D, KB, VB>::VW];
#pragma unroll
        for (int r = 0; r < 2; ++r)
#pragma unroll
            for (int w = 0; w < kvtc__tile<D, KB, VB>::VW; ++w)
                kvtc__interleave<VB>(cur.v[2 * r][w], cur.v[2 * r + 1][w], ve[r][w], vo[r][w]);
#pragma unroll
        for (int m = 0; m < NS; ++m)
            kvtc__mma16816(acc[m], kvtc__pair<VB>(ve[0], m, lane4v), kvtc__pair<VB>(vo[0], m, lane4v),
                           kvtc__pair<VB>(ve[1], m, lane4v), kvtc__pair<VB>(vo[1], m, lane4v), pb0, pb1);
        blk_next = blk_after, off_next = off_after;
    }
    kvtc__cp_wait<0>();
    kvtc__pdl_trigger(); /* the merge kernel's blocks may launch now (they wait for this grid's end) */
#undef KVTC__TC_ISSUE
#undef KVTC__TC_NEXT
#undef KVTC__TC_TOK
    /* ---- this warp's partials in the finishing layout */
#pragma unroll
    for (int jj = 0; jj < 2; ++jj) {
        l[jj] += __shfl_xor_sync(KVTC__FULL, l[jj], 4);
        l[jj] += __shfl_xor_sync(KVTC__FULL, l[jj], 8);
        l[jj] += __shfl_xor_sync(KVTC__FULL, l[jj], 16);
    }
    __syncthreads(); /* tables and rings are done with: the merge area overlays them */
    /* rows of KVTC__TC_RS floats: lane (g, t) stores coordinates g D/8 + 2m .. + 3 of heads 2t and 2t + 1
     * as 16-byte words, at most two lanes of a quarter warp on one bank (rows of D floats and 4-byte
     * stores put 16 lanes on one bank) */
    float *w_acc = s_acc + (warp * KVTC__ATTN_GMAX + 2 * t) * KVTC__TC_RS(D) + g * (D / 8);
#pragma unroll
    for (int m = 0; m < NS; m += 2) {
        *(float4 *)(w_acc + 2 * m) = make_float4(acc[m][0], acc[m][2], acc[m + 1][0], acc[m + 1][2]);
        *(float4 *)(w_acc + KVTC__TC_RS(D) + 2 * m) = make_float4(acc[m][1], acc[m][3], acc[m + 1][1], acc[m + 1][3]);
    }
    if (g == 0)
#pragma unroll
        for (int jj = 0; jj < 2; ++jj)
            s_ml[(warp * KVTC__ATTN_GMAX + 2 * t + jj) * 2] = mv[jj], s_ml[(warp * KVTC__ATTN_GMAX + 2 * t + jj) * 2 + 1] = l[jj];
    __syncthreads();
    kvtc__attn_finish<EPL, W, KVTC__TC_RS(D)>(a, s_acc, s_ml, s_buf, G, h, b, split, warp, lane);
}

/* The tensor-core kernels built: (head_dim, key bits, value bits). */
#ifndef KVTC__ATTN_TC_SET
#ifdef KVTC_CUDA_MINIMAL
#define KVTC__ATTN_TC_SET(X) X(128, 4, 4) X(64, 4, 4)
#else
#define KVTC__ATTN_TC_SET(X)                                                                                           \
    X(64, 4, 4) X(64, 4, 2) X(64, 2, 2) X(64, 8, 4) X(128, 4, 4) X(128, 4, 2) X(128, 2, 2) X(128, 8, 4) X(256, 4, 4)       \
    X(256, 4, 2) X(256, 2, 2) X(256, 8, 4)
#endif
#endif

#define KVTC__ATTN_EPL_LIST(X) X(2) X(3) X(4) X(6) X(8)
/* Compile-time specializations (EPL = head_dim / 32, key bits, value bits, gqa) of the common
 * configurations; every other supported combination runs the generic kernel of its EPL. */
#ifndef KVTC__ATTN_FAST_SET
#ifdef KVTC_CUDA_MINIMAL
#define KVTC__ATTN_FAST_SET(X) X(4, 4, 4, 4)
#else
#define KVTC__ATTN_FAST_SET(X) X(4, 4, 4, 4) X(4, 4, 2, 4) X(4, 2, 2, 4) X(4, 8, 4, 4) X(4, 3, 3, 4) X(2, 4, 4, 3) X(3, 4, 4, 4)
#endif
#endif

static int kvtc__attn_epl(int d) {
    int need = (d + 31) / 32;
#define KVTC__EPL_PICK(e) if (need <= e) return e;
    KVTC__ATTN_EPL_LIST(KVTC__EPL_PICK)
#undef KVTC__EPL_PICK
    return 0;
}

/* Dynamic shared memory of kvtc__k_attn: queries, S q', tables, rotation
 * scratch, per-warp max/sum, then a region used first for the per-warp
 * staging rows and then for the per-warp accumulators. */
static size_t kvtc__attn_smem(int epl, const kvtc_codec *k, const kvtc_codec *v) {
    size_t D = (size_t)epl * 32, kst = (k->code_bytes / 4) | 1, vst = (v->code_bytes / 4) | 1, vsst = (v->scale_bytes / 4) | 1;
    size_t stage = 4 * 32 * (kst + vst + vsst + KVTC__ATTN_GMAX), accs = 4 * KVTC__ATTN_GMAX * D;
    return sizeof(float) * (KVTC__ATTN_GMAX * D + KVTC__ATTN_GMAX * KVTC__ATTN_MMAX + 512 + 4 * D + 4 * KVTC__ATTN_GMAX * 2 +
                            (stage > accs ? stage : accs));
}

/* Dynamic shared memory of kvtc__k_attn_exact: staged keys and values, the queries, the token flags. */
static size_t kvtc__attn_exact_smem(int d, int gqa) {
    return sizeof(unsigned) * (2u * KVTC__EXACT_CHUNK * (unsigned)(d / 2 + 1) + (unsigned)gqa * (unsigned)kvtc__attn_epl(d) * 32u +
                               KVTC__EXACT_CHUNK);
}

KVTC_DEF kvtc_status kvtc_cuda_attn_supported(const kvtc_cuda_codec *kc, const kvtc_cuda_codec *vc, int gqa) {
    const kvtc_codec_params *k, *v;
    if (!kc || !vc) return KVTC_ERR_NULL;
    k = &kc->meta.params, v = &vc->meta.params;
    if (k->head_dim != v->head_dim) return KVTC_ERR_DIM;
    if (!kvtc__attn_epl(k->head_dim)) return KVTC_ERR_UNSUPPORTED;
    if (k->method == KVTC_METHOD_AFFINE || (k->method == KVTC_METHOD_TQ_PROD && k->qjl_dim > KVTC__ATTN_MMAX))
        return KVTC_ERR_UNSUPPORTED;
    if (v->method == KVTC_METHOD_TQ_PROD) return KVTC_ERR_UNSUPPORTED;
    if (kvtc__attn_epl(k->head_dim) * vc->meta.mse_bits > 64) return KVTC_ERR_UNSUPPORTED; /* value window */
    if (kvtc__attn_smem(kvtc__attn_epl(k->head_dim), &kc->meta, &vc->meta) > 200 * 1024) return KVTC_ERR_UNSUPPORTED;
    if (kc->meta.code_bytes % 4 || vc->meta.code_bytes % 4) return KVTC_ERR_UNSUPPORTED; /* 32-bit code words */
    if (gqa < 1 || gqa > KVTC__ATTN_GMAX) return KVTC_ERR_UNSUPPORTED;
    return KVTC_OK;
}

/* Shared-memory layout of kvtc__k_attn_tc: the pair tables and the W warps' rings from offset 0 (the warp
 * merge area overlays them after the loop), then the queries, the query fragments, rotation scratch,
 * per-warp max and sum. The tables share rows of 256 bytes, one per entry: keys in bytes 0-127, values
 * in 128-255 (kvtc__pairs_fill), at constant offsets so that a lookup is one prmt and one load. */
typedef struct kvtc__attn_tc_layout {
    unsigned klut, vlut, ring, q, qf, buf, ml, bytes;
} kvtc__attn_tc_layout;
static kvtc__attn_tc_layout kvtc__attn_tc_layout_of(int d, int kb, int vb, int share) {
    kvtc__attn_tc_layout l;
    const unsigned tables = 256u * (unsigned)kvtc__tc_rows(kb, vb);
    const int w = KVTC__TC_W(d), outside = w - kvtc__tc_hole_warps(d, kb, vb, share, w, KVTC__TC_STAGES);
    const unsigned front = tables + (unsigned)(outside * KVTC__TC_STAGES * kvtc__tc_stage_bytes(d, kb, vb));
    const unsigned merge = (unsigned)w * KVTC__ATTN_GMAX * KVTC__TC_RS(d) * 4u;
    l.klut = 0u, l.vlut = share ? 0u : 128u;
    l.ring = tables;
    l.q = ((front > merge ? front : merge) + 15u) & ~15u;
    l.qf = l.q + KVTC__ATTN_GMAX * d * 4u;
    l.buf = l.qf + (unsigned)(d / 16) * 32u * 16u;
    l.ml = l.buf + (unsigned)w * d * 4u;
    l.bytes = l.ml + (unsigned)w * KVTC__ATTN_GMAX * 2u * 4u;
    return l;
}
/* Launch kvtc__k_attn_tc, with one pair table for K and V when they share a codebook (needs KB == VB). */
template <int D, int KB, int VB, bool SH, int NB>
static cudaError_t kvtc__attn_tc_run(dim3 grid, unsigned smem, const kvtc__attn_args &a, cudaStream_t stream) {
    void (*const kern)(kvtc__attn_args) = kvtc__k_attn_tc<D, KB, VB, SH, NB>;
    const cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    kern<<<grid, 32 * KVTC__TC_W(D), smem, stream>>>(a);
    return cudaGetLastError();
}
/* one query block for gqa <= 4, two for up to 8 (kvtc__k_attn_tc) */
template <int D, int KB, int VB>
static cudaError_t kvtc__attn_tc_launch(int share, dim3 grid, unsigned smem, const kvtc__attn_args &a, cudaStream_t stream) {
    const bool two = a.gqa > 4;
    if constexpr (KB == VB) {
        if (share)
            return two ? kvtc__attn_tc_run<D, KB, VB, true, 2>(grid, smem, a, stream)
                       : kvtc__attn_tc_run<D, KB, VB, true, 1>(grid, smem, a, stream);
    }
    return two ? kvtc__attn_tc_run<D, KB, VB, false, 2>(grid, smem, a, stream)
               : kvtc__attn_tc_run<D, KB, VB, false, 1>(grid, smem, a, stream);
}
/* K and V use the same pair table when their codebooks are equal (kvtc__k_attn_tc<.., SH = true>). */
static int kvtc__attn_tc_share(const kvtc_codec *k, const kvtc_codec *v) {
    return k->mse_bits == v->mse_bits && memcmp(k->centroids, v->centroids, sizeof(float) << k->mse_bits) == 0;
}
KVTC_DEF kvtc_status kvtc_cuda_attn_tensor_supported(const kvtc_cuda_codec *kc, const kvtc_cuda_codec *vc, int gqa,
                                                     int block_size) {
    const kvtc_codec_params *k, *v;
    int d, kb, vb, built = 0;
    if (!kc || !vc) return KVTC_ERR_NULL;
    k = &kc->meta.params, v = &vc->meta.params;
    if (k->head_dim != v->head_dim) return KVTC_ERR_DIM;
    if (k->method != KVTC_METHOD_TQ_MSE || v->method != KVTC_METHOD_TQ_MSE || k->norm_type != KVTC_NORM_FP16 ||
        v->norm_type != KVTC_NORM_FP16 || gqa < 1 || gqa > KVTC__ATTN_GMAX || block_size < 16 || block_size % 16)
        return KVTC_ERR_UNSUPPORTED;
    d = k->head_dim, kb = kc->meta.mse_bits, vb = vc->meta.mse_bits;
#define KVTC__TC_BUILT(D_, KB_, VB_) built |= d == (D_) && kb == (KB_) && vb == (VB_);
    KVTC__ATTN_TC_SET(KVTC__TC_BUILT)
#undef KVTC__TC_BUILT
    return built ? KVTC_OK : KVTC_ERR_UNSUPPORTED;
}

/* Whether kvtc_cuda_attn_decode runs the tensor-core kernel for these arguments. */
static int kvtc__attn_uses_tc(const kvtc_cuda_codec *kc, const kvtc_cuda_codec *vc, const kvtc_cuda_attn_params *p) {
    const kvtc_attn_params *a = &p->attn;
    size_t kpage, vpage, total;
    return p->kernel != KVTC_CUDA_ATTN_SCALAR && a->cache.n_kv_heads > 0 && a->n_q_heads % a->cache.n_kv_heads == 0 &&
           kvtc_cuda_attn_tensor_supported(kc, vc, a->n_q_heads / a->cache.n_kv_heads, a->cache.block_size) == KVTC_OK &&
           kvtc_cache_bytes(&kc->meta, &a->cache, &kpage, &total) == KVTC_OK &&
           kvtc_cache_bytes(&vc->meta, &a->cache, &vpage, &total) == KVTC_OK &&
           (kpage > vpage ? kpage : vpage) <= 0xffffffffu / (size_t)a->cache.n_kv_heads; /* a block's bytes: 32 bits */
}

KVTC_DEF kvtc_status kvtc_cuda_attn_splits(const kvtc_cuda_codec *kc, const kvtc_cuda_codec *vc,
                                           const kvtc_cuda_attn_params *p, int *n_split) {
    const kvtc_attn_params *a;
    int sms, work, want;
    if (!kc || !vc || !p || !n_split) return KVTC_ERR_NULL;
    a = &p->attn;
    if (a->n_seqs < 0 || a->max_blocks_per_seq < 0 || a->cache.n_kv_heads < 1 || a->cache.block_size < 1 || p->n_split < 0)
        return KVTC_ERR_ARG;
    if (p->n_split > 0) {
        *n_split = p->n_split < a->max_blocks_per_seq ? p->n_split : (a->max_blocks_per_seq > 0 ? a->max_blocks_per_seq : 1);
        return KVTC_OK;
    }
    sms = p->n_sms > 0 ? p->n_sms : 132;
    work = a->n_seqs * a->cache.n_kv_heads;
    if (work < 1) work = 1;
    if (kvtc__attn_uses_tc(kc, vc, p)) {
        /* one wave of long blocks (each fills its tables once): as many splits as leave every (sequence, KV
         * head) with the same number of resident blocks, but at least 16 tiles of 16 tokens per split */
        const int d = kc->meta.params.head_dim;
        const kvtc__attn_tc_layout lt = kvtc__attn_tc_layout_of(d, kc->meta.mse_bits, vc->meta.mse_bits,
                                                                kvtc__attn_tc_share(&kc->meta, &vc->meta));
        int per_sm = (int)((227u * 1024u) / lt.bytes), tiles = (int)(((long long)a->max_blocks_per_seq * a->cache.block_size) / 16);
        if (per_sm > KVTC__TC_MINB(d)) per_sm = KVTC__TC_MINB(d);
        if (per_sm < 1) per_sm = 1;
        want = sms * per_sm / work;
        if (want > tiles / 16) want = tiles / 16;
    } else {
        /* about 16 blocks per SM (several waves, so the last one idles little), but
         * at least 32 pages per split (measured: fewer make the merge dominate) */
        want = work >= 16 * sms ? 1 : (16 * sms + work - 1) / work;
        if (want > a->max_blocks_per_seq / 32) want = a->max_blocks_per_seq / 32;
    }
    *n_split = want < 1 ? 1 : want;
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_cuda_attn_workspace_bytes(const kvtc_cuda_codec *kc, const kvtc_cuda_codec *vc,
                                                    const kvtc_cuda_attn_params *p, size_t *bytes) {
    int ns, epl;
    kvtc_status st;
    if (!kc || !vc || !p || !bytes) return KVTC_ERR_NULL;
    if ((st = kvtc_cuda_attn_splits(kc, vc, p, &ns)) != KVTC_OK) return st;
    epl = kvtc__attn_epl(kc->meta.params.head_dim);
    if (!epl) return KVTC_ERR_UNSUPPORTED;
    if (p->attn.max_exact < 0) return KVTC_ERR_ARG;
    if (p->attn.max_exact > KVTC__EXACT_MAX) return KVTC_ERR_UNSUPPORTED;
    ns += (p->attn.max_exact + KVTC__EXACT_CHUNK - 1) / KVTC__EXACT_CHUNK; /* the exact tokens' partials */
    *bytes = ns == 1 ? 0 : (size_t)p->attn.n_seqs * (size_t)p->attn.n_q_heads * (size_t)ns * ((size_t)epl * 32 + 1) * sizeof(float);
    return KVTC_OK;
}

KVTC_DEF kvtc_status kvtc_cuda_attn_decode(const kvtc_cuda_codec *kc, const kvtc_cuda_codec *vc,
                                           const kvtc_cuda_attn_params *p, const void *d_q, const void *d_k_cache,
                                           size_t k_cache_bytes, const void *d_v_cache, size_t v_cache_bytes,
                                           const int32_t *d_block_table, const int32_t *d_context_lens, void *d_out,
                                           size_t out_count, float *d_lse, void *d_workspace, size_t workspace_bytes,
                                           cudaStream_t stream) {
    kvtc__attn_args a;
    const kvtc_attn_params *ap;
    size_t kpage, vpage, ktot, vtot, ws;
    kvtc_status st;
    int epl, ns, tc;
    if (!kc || !vc || !p) return KVTC_ERR_NULL;
    ap = &p->attn;
    if (ap->n_q_heads < 1 || ap->cache.n_kv_heads < 1 || ap->n_q_heads % ap->cache.n_kv_heads) return KVTC_ERR_ARG;
    if ((st = kvtc_cuda_attn_supported(kc, vc, ap->n_q_heads / ap->cache.n_kv_heads)) != KVTC_OK) return st;
    if ((int)p->kernel < 0 || p->kernel >= KVTC_CUDA_ATTN_KERNEL_COUNT || (p->rotated_output != 0 && p->rotated_output != 1))
        return KVTC_ERR_ARG;
    tc = kvtc__attn_uses_tc(kc, vc, p) && !(((size_t)d_k_cache | (size_t)d_v_cache) & 15); /* 16-byte cp.async */
    if (p->kernel == KVTC_CUDA_ATTN_TENSOR && !tc) return KVTC_ERR_UNSUPPORTED;
    if ((int)p->q_dtype < 0 || p->q_dtype >= KVTC_DTYPE_COUNT || (int)p->out_dtype < 0 || p->out_dtype >= KVTC_DTYPE_COUNT)
        return KVTC_ERR_ARG;
    if ((st = kvtc_cache_bytes(&kc->meta, &ap->cache, &kpage, &ktot)) != KVTC_OK) return st;
    if ((st = kvtc_cache_bytes(&vc->meta, &ap->cache, &vpage, &vtot)) != KVTC_OK) return st;
    if ((st = kvtc_cuda_attn_workspace_bytes(kc, vc, p, &ws)) != KVTC_OK) return st;
    if ((st = kvtc_cuda_attn_splits(kc, vc, p, &ns)) != KVTC_OK) return st;
    if (k_cache_bytes < ktot || v_cache_bytes < vtot || workspace_bytes < ws) return KVTC_ERR_SMALL;
    if ((size_t)ap->n_seqs * ap->n_q_heads * kc->meta.params.head_dim > out_count) return KVTC_ERR_SMALL;
    if ((long long)ap->max_blocks_per_seq * ap->cache.block_size >= 0x7fffffffLL) return KVTC_ERR_UNSUPPORTED;
    if (ap->n_seqs == 0) return KVTC_OK;
    if (!d_q || !d_k_cache || !d_v_cache || !d_block_table || !d_context_lens || !d_out || (ws && !d_workspace))
        return KVTC_ERR_NULL;
    if (ap->max_exact > 0) { /* the exact tokens are read as 16-byte words */
        if (!ap->exact_k || !ap->exact_v || !ap->exact_lens) return KVTC_ERR_NULL;
        if (kc->meta.params.head_dim % 8 || (((size_t)ap->exact_k | (size_t)ap->exact_v) & 15)) return KVTC_ERR_UNSUPPORTED;
    }
    memset(&a, 0, sizeof(a));
    if ((st = kvtc__dc_of(kc, ap->cache.block_size, &a.k)) != KVTC_OK) return st;
    if ((st = kvtc__dc_of(vc, ap->cache.block_size, &a.v)) != KVTC_OK) return st;
    epl = kvtc__attn_epl(kc->meta.params.head_dim);
    a.q = d_q;
    a.kcache = (const unsigned char *)d_k_cache;
    a.vcache = (const unsigned char *)d_v_cache;
    a.block_table = d_block_table;
    a.context_lens = d_context_lens;
    a.out = d_out;
    a.lse = d_lse;
    a.n_q_heads = ap->n_q_heads;
    a.n_kv = ap->cache.n_kv_heads;
    a.gqa = ap->n_q_heads / ap->cache.n_kv_heads;
    a.block_size = ap->cache.block_size;
    a.max_blocks = ap->max_blocks_per_seq;
    a.n_blocks = ap->cache.n_blocks;
    a.n_split = ns;
    a.n_part = ns + (ap->max_exact + KVTC__EXACT_CHUNK - 1) / KVTC__EXACT_CHUNK;
    a.max_exact = ap->max_exact;
    a.xk = ap->exact_k, a.xv = ap->exact_v, a.x_lens = ap->exact_lens;
    a.blocks_per_split = (ap->max_blocks_per_seq + ns - 1) / ns;
    if (a.blocks_per_split < 1) a.blocks_per_split = 1;
    if ((long long)ns * a.blocks_per_split * ap->cache.block_size >= 0x7fffffffLL) return KVTC_ERR_UNSUPPORTED; /* int tokens */
    a.q_dtype = p->q_dtype == KVTC_DTYPE_DEFAULT ? KVTC_DTYPE_F16 : p->q_dtype;
    a.out_dtype = p->out_dtype == KVTC_DTYPE_DEFAULT ? KVTC_DTYPE_F16 : p->out_dtype;
    a.rotated_output = p->rotated_output;
    a.scale_log2 = (ap->scale != 0.0f ? ap->scale : (float)(1.0 / sqrt((double)kc->meta.params.head_dim))) * KVTC__LOG2E;
    if (a.n_part > 1) {
        a.ws_o = (float *)d_workspace;
        a.ws_lse = a.ws_o + (size_t)ap->n_seqs * ap->n_q_heads * a.n_part * (size_t)epl * 32;
    }
    {
        dim3 grid((unsigned)ap->cache.n_kv_heads, (unsigned)ap->n_seqs, (unsigned)ns);
        size_t smem = kvtc__attn_smem(epl, &kc->meta, &vc->meta);
        const int kb = kc->meta.mse_bits, vb = vc->meta.mse_bits, mse = kc->meta.params.method == KVTC_METHOD_TQ_MSE &&
                                                                       vc->meta.params.method == KVTC_METHOD_TQ_MSE &&
                                                                       kc->meta.params.head_dim == epl * 32;
        bool launched = false;
        if (tc) {
            const int share = kvtc__attn_tc_share(&kc->meta, &vc->meta);
            const kvtc__attn_tc_layout lt = kvtc__attn_tc_layout_of(kc->meta.params.head_dim, kb, vb, share);
            a.tc_klut = lt.klut, a.tc_vlut = lt.vlut, a.tc_ring = lt.ring, a.tc_q = lt.q, a.tc_qf = lt.qf, a.tc_buf = lt.buf, a.tc_ml = lt.ml;
            a.tpb = ap->cache.block_size / 16;
            a.div_tpb = kvtc__fastdiv_of((unsigned)a.tpb);
            a.k_blk_bytes = (unsigned)((size_t)ap->cache.n_kv_heads * (size_t)a.k.page_bytes);
            a.v_blk_bytes = (unsigned)((size_t)ap->cache.n_kv_heads * (size_t)a.v.page_bytes);
#define KVTC__TC_LAUNCH(D_, KB_, VB_)                                                                                  \
    if (!launched && kc->meta.params.head_dim == (D_) && kb == (KB_) && vb == (VB_)) {                                  \
        KVTC_CUDA_CHECK((kvtc__attn_tc_launch<D_, KB_, VB_>(share, grid, lt.bytes, a, stream)));                       \
        launched = true;                                                                                               \
    }
            KVTC__ATTN_TC_SET(KVTC__TC_LAUNCH)
#undef KVTC__TC_LAUNCH
        }
        /* specialized kernels: (EPL, key bits, value bits, gqa); then the generic one per EPL */
#define KVTC__ATTN_LAUNCH(e, KB, VB, GQ)                                                                               \
    if (!launched && epl == e && (!(KB) || (mse && kb == (KB) && vb == (VB) && a.gqa == (GQ)))) {                      \
        KVTC_CUDA_CHECK(cudaFuncSetAttribute(kvtc__k_attn<e, KB, VB, GQ>, cudaFuncAttributeMaxDynamicSharedMemorySize,   \
                                             (int)smem));                                                              \
        kvtc__k_attn<e, KB, VB, GQ><<<grid, 128, smem, stream>>>(a);                                                   \
        KVTC_CUDA_CHECK(cudaGetLastError());                                                                           \
        launched = true;                                                                                               \
    }
        KVTC__ATTN_FAST_SET(KVTC__ATTN_LAUNCH)
#define KVTC__ATTN_GENERIC(e) KVTC__ATTN_LAUNCH(e, 0, 0, 0)
        KVTC__ATTN_EPL_LIST(KVTC__ATTN_GENERIC)
#undef KVTC__ATTN_GENERIC
#undef KVTC__ATTN_LAUNCH
        if (!launched) return KVTC_ERR_UNSUPPORTED;
        if (a.max_exact > 0) {
            const size_t xs = kvtc__attn_exact_smem(kc->meta.params.head_dim, a.gqa);
            const dim3 xgrid((unsigned)a.n_kv, (unsigned)ap->n_seqs, (unsigned)(a.n_part - ns));
            switch (epl) {
#define KVTC__EXACT_CASE(e)                                                                                            \
    case e:                                                                                                            \
        KVTC_CUDA_CHECK(cudaFuncSetAttribute(kvtc__k_attn_exact<e>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)xs)); \
        kvtc__k_attn_exact<e><<<xgrid, 128, xs, stream>>>(a);                                                           \
        break;
                KVTC__ATTN_EPL_LIST(KVTC__EXACT_CASE)
#undef KVTC__EXACT_CASE
            }
            KVTC_CUDA_CHECK(cudaGetLastError());
        }
        if (a.n_part > 1) {
            void (*merge)(kvtc__attn_args) = nullptr;
            cudaLaunchConfig_t cfg = {};
            cudaLaunchAttribute pdl = {};
            int dev, major;
            switch (epl) {
#define KVTC__MERGE_CASE(e)                                                                                            \
    case e: merge = kvtc__k_attn_merge<e>; break;
                KVTC__ATTN_EPL_LIST(KVTC__MERGE_CASE)
#undef KVTC__MERGE_CASE
            }
            KVTC_CUDA_CHECK(cudaGetDevice(&dev));
            KVTC_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
            cfg.gridDim = dim3((unsigned)ap->n_q_heads, (unsigned)ap->n_seqs);
            cfg.blockDim = dim3(32 * KVTC__MERGE_WARPS);
            cfg.stream = stream;
            pdl.id = cudaLaunchAttributeProgrammaticStreamSerialization;
            pdl.val.programmaticStreamSerializationAllowed = 1;
            cfg.attrs = &pdl;
            cfg.numAttrs = major >= 9 ? 1 : 0; /* programmatic dependent launch: sm_90 and later */
            KVTC_CUDA_CHECK(cudaLaunchKernelEx(&cfg, merge, a));
            KVTC_CUDA_CHECK(cudaGetLastError());
        }
    }
    return KVTC_OK;
}


/* >>tc-gpu
 * Shapes. A per group: [m][kp] (fp32, or fp16 for F16), the centred coded
 * tokens; Z: [m][na_pad] fp32; Z-hat: [m][na_pad] (fp32 or fp16); X-hat:
 * [m][dim] fp32. The tensor-core GEMM works on 32-bit words (one fp32/tf32
 * or two fp16 along k), tiles of 128 x BN x 32 words; rows past M or N are
 * zero-filled by cp.async, the k extent is padded with zeros in memory. */
#define KVTC__TCG_PW 1024     /* index-stream words per pack / unpack block */
#ifndef KVTC__TCG_VEC4
#define KVTC__TCG_VEC4 1      /* 0: gather and scatter one pair per thread always (for benchmarks) */
#endif
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
    unsigned long long rec, bytes, params, sink, window, idx, idx_bytes, piece0; /* piece0: first checksum piece */
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
    long long *rows;   /* [n] cache row (block * block_size + offset) of every token, -1 for a bad block id */
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
    long long npieces; /* checksum pieces of all records */
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
    kvtc__cp_async16z((unsigned)__cvta_generic_to_shared(dst), src, bytes);
}
/* ldmatrix.x4: four 8 x 8 b16 tiles (8 rows of 16 bytes each), row addresses from lanes 0-7, 8-15, 16-23, 24-31;
 * lane l receives word l % 4 of row l / 4 of each tile: the mma.sync fragment layout, for fp16 pairs and tf32 alike. */
static __device__ __forceinline__ void kvtc__tcg_ldsm4(unsigned *r, const unsigned *p) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
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
 * grid 1, block 1024: record geometry, 16-byte aligned offsets and checksum pieces of every group
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
            ns = (geo.bytes + KVTC_TC_CHECKSUM_PIECE - 1) / KVTC_TC_CHECKSUM_PIECE;
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
            c.piece0 = s_carry[1] + s_seg[tid] - ns;
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

/* kvtc__k_tcg_rows   grid ceil(n / 256), block 256: the cache row of every token of the call (block table
 * lookup and division once per token, not once per layer, head and coordinate pair).
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 20 regs, no smem; 0 spills */
__global__ void __launch_bounds__(256) kvtc__k_tcg_rows(kvtc__tcg_args a) {
    const long long t = (long long)blockIdx.x * 256 + threadIdx.x;
    if (t >= a.n) return;
    const long long tok = a.start + t;
    const int pg = a.block_table[tok / a.bs];
    a.rows[t] = pg < 0 || pg >= a.n_blocks ? -1 : (long long)pg * a.bs + tok % a.bs;
}

/* Four values of a dtype at element i (a multiple of 4, the pointer 16-byte aligned): one access of 8 bytes
 * (fp16/bf16) or 16 bytes (fp32). Conversions as kvtc__load / kvtc__store (round to nearest even). */
static __device__ __forceinline__ void kvtc__tcg_ld4(const void *p, long long i, int dtype, float *v) {
    if (dtype == KVTC_DTYPE_F32) {
        const float4 x = __ldg((const float4 *)((const float *)p + i));
        v[0] = x.x, v[1] = x.y, v[2] = x.z, v[3] = x.w;
        return;
    }
    const uint2 w = __ldg((const uint2 *)((const unsigned short *)p + i));
    const unsigned short h[4] = {(unsigned short)w.x, (unsigned short)(w.x >> 16), (unsigned short)w.y,
                                 (unsigned short)(w.y >> 16)};
#pragma unroll
    for (int k = 0; k < 4; ++k)
        v[k] = dtype == KVTC_DTYPE_BF16 ? __uint_as_float((unsigned)h[k] << 16) : __half2float(__ushort_as_half(h[k]));
}
static __device__ __forceinline__ void kvtc__tcg_st4(void *p, long long i, int dtype, const float *v) {
    if (dtype == KVTC_DTYPE_F32) {
        *(float4 *)((float *)p + i) = make_float4(v[0], v[1], v[2], v[3]);
        return;
    }
    unsigned short h[4];
#pragma unroll
    for (int k = 0; k < 4; ++k)
        h[k] = dtype == KVTC_DTYPE_BF16 ? __bfloat16_as_ushort(__float2bfloat16_rn(v[k]))
                                        : __half_as_ushort(__float2half_rn(v[k]));
    *(uint2 *)((unsigned short *)p + i) = make_uint2(h[0] | (unsigned)h[1] << 16, h[2] | (unsigned)h[3] << 16);
}
/* E (1 or 4) coordinate pairs of a head row at element base: pair e is (j0 + e s, j1 + e s), s = 1 when split
 * (RoPE half style: j1 = j0 + rotary_dim/2), else s = 2 and j1 = j0 + 1 (8 consecutive values for E = 4). */
template <int E>
static __device__ __forceinline__ void kvtc__tcg_ld_pairs(const void *p, long long base, int j0, int j1, bool split,
                                                          int dtype, float *v0, float *v1) {
    if (E == 1) {
        v0[0] = kvtc__load(p, base + j0, dtype);
        v1[0] = kvtc__load(p, base + j1, dtype);
    } else if (split) {
        kvtc__tcg_ld4(p, base + j0, dtype, v0);
        kvtc__tcg_ld4(p, base + j1, dtype, v1);
    } else {
        float t[8];
        kvtc__tcg_ld4(p, base + j0, dtype, t);
        kvtc__tcg_ld4(p, base + j0 + 4, dtype, t + 4);
#pragma unroll
        for (int e = 0; e < E; ++e) v0[e] = t[2 * e], v1[e] = t[2 * e + 1];
    }
}
template <int E>
static __device__ __forceinline__ void kvtc__tcg_st_pairs(void *p, long long base, int j0, int j1, bool split,
                                                          int dtype, const float *v0, const float *v1) {
    if (E == 1) {
        kvtc__store(p, base + j0, dtype, v0[0]);
        kvtc__store(p, base + j1, dtype, v1[0]);
    } else if (split) {
        kvtc__tcg_st4(p, base + j0, dtype, v0);
        kvtc__tcg_st4(p, base + j1, dtype, v1);
    } else {
        float t[8];
#pragma unroll
        for (int e = 0; e < E; ++e) t[2 * e] = v0[e], t[2 * e + 1] = v1[e];
        kvtc__tcg_st4(p, base + j0, dtype, t);
        kvtc__tcg_st4(p, base + j0 + 4, dtype, t + 4);
    }
}
/* The thread's token row within its block and its first pair slot (E slots per thread) of group blockIdx.z;
 * false past the group's columns. Shared by kvtc__k_tcg_gather and kvtc__k_tcg_scatter. */
template <int E>
static __device__ __forceinline__ bool kvtc__tcg_item(const kvtc__tcg_args &a, int tpb, int *lt, int *part, int *slot) {
    const int per_tok = a.p / (2 * E), per_part = a.hs / E;
    int item;
    if (tpb > 1) {
        *lt = threadIdx.x / per_tok;
        item = threadIdx.x - *lt * per_tok;
        if (*lt >= tpb) return false;
    } else {
        *lt = 0;
        item = blockIdx.x * 256 + threadIdx.x;
        if (item >= per_tok) return false;
    }
    *part = item / per_part;
    *slot = (item - *part * per_part) * E;
    return true;
}

/* kvtc__k_tcg_gather<E>   CPU twin: (caller's gather) + kvtc_rope_remove + kvtc_tc_encode's centring and fp16 rows
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): <1> 48 regs, <4> 78 regs, no smem; 0 spills
 * grid (ceil(dim/(2E) / 256) or 1, ceil(n / tpb) capped at 65535 (strided), n_groups), block 256; one thread per
 * E coordinate pairs of a token (tpb tokens per block when dim/(2E) < 256); E = 4 (8- and 16-byte loads and
 * stores) where the launcher allows: head_dim % 8 == 0, rotary_dim/2 % 4 == 0, 16-byte aligned pointers.
 * Keys: RoPE pairs in double. Coded tokens: x - mu into A; sink/window tokens: fp16 into the record; NaN/Inf
 * and fp16 overflow flagged per token. */
template <int E>
__global__ void __launch_bounds__(256) kvtc__k_tcg_gather(kvtc__tcg_args a, int tpb) {
    const int g = blockIdx.z;
    int lt, part, slot, kind, layer, head, j0, j1;
    if (!kvtc__tcg_item<E>(a, tpb, &lt, &part, &slot)) return;
    kvtc__tcg_part(a, g, part, &kind, &layer, &head);
    const int rot = kvtc__tcg_slot(a, kind, slot, &j0, &j1);
    const bool split = rot && a.style == KVTC_ROPE_HALF;
    const int s = E == 1 || split ? 1 : 2;
    const kvtc__tcg_call cl = a.call[g];
    unsigned char *rec = a.rec + cl.rec;
    const int adt = a.mode == KVTC_CUDA_TC_GEMM_F16 ? KVTC_DTYPE_F16 : KVTC_DTYPE_F32;
    float mu0[E], mu1[E];
    kvtc__tcg_ld_pairs<E>(a.mean, (long long)g * a.p + part * a.hd, j0, j1, split, KVTC_DTYPE_F32, mu0, mu1);
    const void *src = kind ? a.cv : a.ck;
    const long long lbase = (long long)layer * a.layer_stride + (long long)head * a.hd;
    for (long long t = (long long)blockIdx.y * tpb + lt; t < a.n; t += (long long)gridDim.y * tpb) {
        float v0[E], v1[E];
        unsigned fl = 0;
#pragma unroll
        for (int e = 0; e < E; ++e) v0[e] = v1[e] = 0.0f;
        if (a.flat) {
            kvtc__tcg_ld_pairs<E>(a.x_in, ((long long)g * a.n + t) * a.p + part * a.hd, j0, j1, split,
                                  KVTC_DTYPE_F32, v0, v1);
        } else {
            const long long row = a.rows[t];
            if (row < 0) fl = 4;
            else kvtc__tcg_ld_pairs<E>(src, lbase + row * a.tok_stride, j0, j1, split, a.dtype, v0, v1);
            if (rot) {
#pragma unroll
                for (int e = 0; e < E; ++e) kvtc__tcg_rope(a.rope_tab[t * a.rd_half + slot + e], -1.0, &v0[e], &v1[e]);
            }
        }
#pragma unroll
        for (int e = 0; e < E; ++e)
            if (!isfinite(v0[e]) || !isfinite(v1[e])) fl |= 1;
        if (t < a.ns || t >= a.n - a.nw) {
            unsigned char *row = rec + (t < a.ns ? cl.sink + (unsigned long long)t * a.p * 2
                                                 : cl.window + (unsigned long long)(t - (a.n - a.nw)) * a.p * 2);
#pragma unroll
            for (int e = 0; e < E; ++e) {
                const int c0 = part * a.hd + j0 + e * s, c1 = part * a.hd + j1 + e * s;
                const unsigned short h0 = __half_as_ushort(__float2half_rn(v0[e]));
                const unsigned short h1 = __half_as_ushort(__float2half_rn(v1[e]));
                if (!(fl & 1) && ((h0 & 0x7c00u) == 0x7c00u || (h1 & 0x7c00u) == 0x7c00u)) fl |= 2;
                row[2 * c0] = (unsigned char)h0;
                row[2 * c0 + 1] = (unsigned char)(h0 >> 8);
                row[2 * c1] = (unsigned char)h1;
                row[2 * c1 + 1] = (unsigned char)(h1 >> 8);
            }
        } else {
#pragma unroll
            for (int e = 0; e < E; ++e) v0[e] = __fsub_rn(v0[e], mu0[e]), v1[e] = __fsub_rn(v1[e], mu1[e]);
            kvtc__tcg_st_pairs<E>(a.A, ((long long)g * a.m + (t - a.ns)) * a.kp + part * a.hd, j0, j1, split, adt,
                                  v0, v1);
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
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): <0,4> (TF32X3) 138 regs, 110592 B dynamic smem, 1 block/SM;
 * <0,2> (TF32X3, N <= 128) 80 regs, 73728 B; <1,2> (F16, N <= 128) 64 regs, 82944 B; <1,8> (F16) 220 regs, 165888 B,
 * 1 block/SM; 0 spills. Fragments by ldmatrix.x4 (kvtc__tcg_ldsm4). Each thread's copy sources are set
 * once per block; a k-tile's copies go out after its first k-step's mma (<1,8>: 271 SASS instructions per
 * k-tile, 128 of them mma).
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
    /* This thread's copy sources: chunk i of a stage is tile row r0 + 32 i, words q .. q + 3 of the k-tile.
     * Rows past the matrix read nothing (src-size 0) from the address of a row that exists. Byte offsets
     * of the chunks from the first fit 32 bits (the launcher bounds lda and ldb). */
    const int r0 = tid >> 3, q = (tid & 7) * 4;
    const char *pa = (const char *)(A + (long long)(m0 + r0 < a.M ? m0 + r0 : 0) * a.lda + q);
    const char *pb = (const char *)(B + (long long)(n0 + r0 < N ? n0 + r0 : 0) * a.ldb + q);
    const char *pbl = (const char *)(Bl + (long long)(n0 + r0 < N ? n0 + r0 : 0) * a.ldb + q);
    unsigned oa[4], ob[BN / 32], va = 0, vb = 0; /* offsets; bit i: chunk i's row exists */
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const bool in = m0 + r0 + 32 * i < a.M;
        oa[i] = in ? (unsigned)(32 * i) * (unsigned)a.lda * 4u : 0u, va |= (unsigned)in << i;
    }
#pragma unroll
    for (int i = 0; i < BN / 32; ++i) {
        const bool in = n0 + r0 + 32 * i < N;
        ob[i] = in ? (unsigned)(32 * i) * (unsigned)a.ldb * 4u : 0u, vb |= (unsigned)in << i;
    }
    auto load = [&](int st, int kb) {
        const long long k0 = kb * 128; /* bytes */
#pragma unroll
        for (int i = 0; i < 4; ++i)
            kvtc__tcg_cp16(As + (st * BM + r0 + 32 * i) * LDS + q, pa + k0 + oa[i], (va >> i & 1u) ? 16 : 0);
#pragma unroll
        for (int h = 0; h < NB; ++h)
#pragma unroll
            for (int i = 0; i < BN / 32; ++i)
                kvtc__tcg_cp16(Bs + ((st * NB + h) * BN + r0 + 32 * i) * LDS + q, (h ? pbl : pb) + k0 + ob[i],
                               (vb >> i & 1u) ? 16 : 0);
    };
#pragma unroll
    for (int s = 0; s < ST - 1; ++s) {
        if (s < nk) load(s, s);
        kvtc__tcg_cp_commit();
    }
    for (int kb = 0; kb < nk; ++kb) {
        kvtc__tcg_cp_wait<ST - 2>();
        __syncthreads();
        const int st = kb % ST;
        const unsigned *as = As + st * BM * LDS, *bs = Bs + st * NB * BN * LDS;
#pragma unroll
        for (int ks = 0; ks < 4; ++ks) {
            if (ks == 1) { /* the next stage's copies go out after the first k-step's mma are issued */
                if (kb + ST - 1 < nk) load((kb + ST - 1) % ST, kb + ST - 1);
                kvtc__tcg_cp_commit();
            }
            unsigned af[4][4], bf[WN][2];
#pragma unroll
            for (int mi = 0; mi < 4; ++mi) /* a0..a3: rows +0/+8, words +0/+4 */
                kvtc__tcg_ldsm4(af[mi], as + (wm + mi * 16 + (lane & 15)) * LDS + ks * 8 + (lane >> 4) * 4);
#pragma unroll
            for (int ni = 0; ni < WN; ni += 2) { /* b0, b1 of n-blocks ni and ni + 1 */
                unsigned r[4];
                kvtc__tcg_ldsm4(r, bs + (wn + ni * 8 + (lane & 7) + (lane >> 4) * 8) * LDS + ks * 8 + ((lane >> 3) & 1) * 4);
                bf[ni][0] = r[0], bf[ni][1] = r[1], bf[ni + 1][0] = r[2], bf[ni + 1][1] = r[3];
            }
            if constexpr (MODE == 0) {
                unsigned bl[WN][2], ah[4][4], al[4][4];
#pragma unroll
                for (int ni = 0; ni < WN; ni += 2) {
                    unsigned r[4];
                    kvtc__tcg_ldsm4(r, bs + (BN + wn + ni * 8 + (lane & 7) + (lane >> 4) * 8) * LDS + ks * 8 +
                                           ((lane >> 3) & 1) * 4);
                    bl[ni][0] = r[0], bl[ni][1] = r[1], bl[ni + 1][0] = r[2], bl[ni + 1][1] = r[3];
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
    /* (col, col + 1) as one float2 store */
    const bool pairs = ((a.ldc | (int)(a.sC & 1)) & 1) == 0 && ((size_t)a.C & 7) == 0;
#pragma unroll
    for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < WN; ++ni)
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
                const int row = m0 + wm + mi * 16 + gq + hh * 8, col = n0 + wn + ni * 8 + 2 * tq;
                if (row >= a.M || col >= N) continue;
                float *c = C + (long long)row * a.ldc + col;
                const float v0 = acc[mi][ni][hh * 2] + (bias ? bias[col] : 0.0f);
                if (col + 1 < N) {
                    const float v1 = acc[mi][ni][hh * 2 + 1] + (bias ? bias[col + 1] : 0.0f);
                    if (pairs) *(float2 *)c = make_float2(v0, v1);
                    else c[0] = v0, c[1] = v1;
                } else {
                    c[0] = v0;
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
    case 0: /* "KTCR", version, quantizer, flags 0 */
        w = 0x5243544bull | ((unsigned long long)KVTC_TC_FORMAT_VERSION << 32) | ((unsigned long long)gr.quantizer << 48);
        break;
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

/* Index of the field (token t, active component j), f = t * na + j, that holds bit `bit` of a record's index stream. */
static __device__ long long kvtc__tcg_field_at(const kvtc__tcg_comp *comps, int na, long long R, long long bit) {
    const long long t = bit / R;
    const int off = (int)(bit - t * R);
    int lo = 0, hi = na - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if (comps[mid].bitpos <= off) lo = mid;
        else hi = mid - 1;
    }
    return t * na + lo;
}

/* Threads of a pack / unpack block: jw of them per row (the power of two in 32..256 that covers na, capped),
 * 256 / jw rows at a time; thread (row ro, column js) takes components js, js + jw, .. of rows ro, ro + 256/jw, ..
 * of the block's rows, so a component's parameters are read once per thread and a warp's lanes read or write
 * consecutive components of one row (coalesced). */
static __device__ __forceinline__ int kvtc__tcg_jw(int na) { return na > 128 ? 256 : na > 64 ? 128 : na > 32 ? 64 : 32; }

/* kvtc__k_tcg_pack   CPU twin: kvtc__tc_quantize + kvtc__pack_var_u16
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 40 regs, 12272 B static smem (boundaries, the block's words); 0 spills
 * grid (ceil(max words / KVTC__TCG_PW), n_groups), block 256: a block owns KVTC__TCG_PW 32-bit words of a
 * record's index stream, bits [b0, b1): rows rf..rl, from the field that holds bit b0 (component jf of row
 * rf) to the one that holds bit b1 - 1 (jl of row rl). Threads as kvtc__tcg_jw; each field is quantized
 * (codebook boundaries in shared memory) and ORed into the block's words in shared memory, which are then
 * stored (the last word only up to the stream's end). A field cut by b1 is completed by the next block.
 * Bit offsets are 32-bit from row rf: a block spans 32 Kbit, so |pos0 + r * R| < 2^26 (R <= 2^24). */
__global__ void __launch_bounds__(256) kvtc__k_tcg_pack(kvtc__tcg_args a) {
    __shared__ float s_bnd[8 * 255];
    __shared__ unsigned s_w[KVTC__TCG_PW];
    __shared__ long long s_f[2];
    const int g = blockIdx.y, tid = threadIdx.x;
    const kvtc__tcg_group gr = a.groups[g];
    const long long R = gr.row_bits, nbits = a.m * R, b0 = (long long)blockIdx.x * (32 * KVTC__TCG_PW);
    if (R == 0 || b0 >= nbits) return;
    const long long b1 = nbits - b0 < 32 * KVTC__TCG_PW ? nbits : b0 + 32 * KVTC__TCG_PW;
    const kvtc__tcg_call cl = a.call[g];
    const int na = gr.na, jw = kvtc__tcg_jw(na), rs = 256 / jw, js = tid % jw, ro = tid / jw;
    const kvtc__tcg_comp *comps = a.comps + (long long)g * a.na_pad;
    const float4 *cp = a.cpar + (long long)g * a.na_pad;
    for (int i = tid; i < 8 * 255; i += 256) s_bnd[i] = a.bnd[i];
    for (int i = tid; i < KVTC__TCG_PW; i += 256) s_w[i] = 0;
    if (tid < 2) s_f[tid] = kvtc__tcg_field_at(comps, na, R, tid ? b1 - 1 : b0);
    __syncthreads();
    const long long rf = s_f[0] / na, rl = s_f[1] / na;
    const int jf = (int)(s_f[0] - rf * na), jl = (int)(s_f[1] - rl * na), nr = (int)(rl - rf) + 1;
    const int pos0 = (int)(rf * R - b0), Ri = (int)R, ld = a.na_pad;
    const float *Z = (const float *)a.Z + ((long long)g * a.m + rf) * ld;
    const unsigned *fl = a.tokflag + (long long)g * a.n + a.ns + rf;
    for (int j = (nr == 1 ? jf : 0) + js; j <= (nr == 1 ? jl : na - 1); j += jw) {
        const kvtc__tcg_comp c = comps[j];
        const bool uni = c.uidx != KVTC__TCG_NOUNI;
        float4 pr = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (uni) pr = cp[j];
        const float *bnd = uni ? s_bnd : s_bnd + (c.width - 1) * 255; /* codebook widths are 1..8 */
        for (int r = ro; r < nr; r += rs) {
            if ((r == 0 && j < jf) || (r == nr - 1 && j > jl)) continue;
            const float z = (fl[r] & 1u) ? 0.0f : Z[(long long)r * ld + j];
            unsigned q;
            if (uni) {
                float v = floorf(__fadd_rn(__fmul_rn(__fsub_rn(z, pr.x), pr.z), 0.5f));
                if (!(v > 0.0f)) v = 0.0f;
                if (v > pr.w) v = pr.w;
                q = (unsigned)v;
            } else {
                q = kvtc__tcg_cell(bnd, c.width, __fmul_rn(z, c.inv_sigma));
            }
            const int pos = pos0 + r * Ri + c.bitpos;
            if (pos < 0) {
                atomicOr(&s_w[0], q >> -pos);
            } else {
                const int wi = pos >> 5, sh = pos & 31;
                atomicOr(&s_w[wi], q << sh);
                if (sh + c.width > 32 && wi + 1 < KVTC__TCG_PW) atomicOr(&s_w[wi + 1], q >> (32 - sh));
            }
        }
    }
    __syncthreads();
    const long long w0 = b0 / 32, left = (long long)cl.idx_bytes - 4 * w0;
    unsigned char *dst = a.rec + cl.rec + cl.idx + 4 * w0;
    for (int i = tid; i < (int)((b1 - b0 + 31) / 32); i += 256) {
        const unsigned word = s_w[i];
        const int nb = left - 4 * i < 4 ? (int)(left - 4 * i) : 4;
        for (int b = 0; b < nb; ++b) dst[4 * i + b] = (unsigned char)(word >> (8 * b));
    }
}

/* kvtc__k_tcg_fnv   CPU twin: kvtc_tc_record_checksum (but its KVTC_FNV1A64_INIT * P^n term: kvtc__k_tcg_fnv_final)
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 32 regs, no smem; 0 spills
 * grid ceil(pieces of all records / 256), block 256: thread i hashes checksum piece i of the call, FNV-1a 64 of
 * its <= 256 bytes in order (the checksum field as zero), and adds f * P^(n-1-j) to its record's acc (piece j
 * of n). A warp whose pieces share one record sums them first: one atomicAdd. Decompress: records that failed
 * the checks are skipped. Records start 16-byte aligned with their padding to 16 bytes in the buffer, so every
 * piece is read as whole 16-byte words. */
__global__ void __launch_bounds__(256) kvtc__k_tcg_fnv(kvtc__tcg_args a, int decompress) {
    const long long pc = (long long)blockIdx.x * 256 + threadIdx.x;
    const int lane = threadIdx.x & 31;
    int g = -1;
    unsigned long long v = 0;
    if (pc < a.npieces) {
        int lo = 0, hi = a.G - 1;
        while (lo < hi) { /* the record of piece pc: every record has at least one piece */
            const int mid = (lo + hi + 1) >> 1;
            if ((long long)a.call[mid].piece0 <= pc) lo = mid;
            else hi = mid - 1;
        }
        g = lo;
        if (decompress && a.gstat[g] != KVTC_OK) g = -1;
    }
    if (g >= 0) {
        const kvtc__tcg_call cl = a.call[g];
        const long long j = pc - (long long)cl.piece0, r0 = j * KVTC_TC_CHECKSUM_PIECE;
        const long long np = ((long long)cl.bytes + KVTC_TC_CHECKSUM_PIECE - 1) / KVTC_TC_CHECKSUM_PIECE;
        const int nb = (long long)cl.bytes - r0 < KVTC_TC_CHECKSUM_PIECE ? (int)((long long)cl.bytes - r0)
                                                                         : KVTC_TC_CHECKSUM_PIECE;
        const uint4 *src = (const uint4 *)(a.rec + cl.rec + r0);
        unsigned long long h = KVTC_FNV1A64_INIT;
        for (int q0 = 0; q0 < nb; q0 += 64) { /* four words in flight, then their 64 bytes in order */
            uint4 w[4];
#pragma unroll
            for (int k = 0; k < 4; ++k) w[k] = q0 + 16 * k < nb ? src[q0 / 16 + k] : make_uint4(0, 0, 0, 0);
            if (j == 0 && q0 == 0) w[3].x = w[3].y = 0; /* bytes 48..55: the checksum field */
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                const unsigned u[4] = {w[k].x, w[k].y, w[k].z, w[k].w};
#pragma unroll
                for (int q = 0; q < 16; ++q)
                    if (q0 + 16 * k + q < nb) h = (h ^ ((u[q >> 2] >> (8 * (q & 3))) & 0xffu)) * KVTC__TCG_FNV_P;
            }
        }
        v = h * kvtc__tcg_fnv_pow((unsigned long long)(np - 1 - j));
    }
    const int g0 = __shfl_sync(KVTC__FULL, g, 0);
    if (__all_sync(KVTC__FULL, g == g0)) {
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(KVTC__FULL, v, o);
        if (lane == 0 && g0 >= 0) atomicAdd(&a.acc[g0], v);
    } else if (g >= 0) {
        atomicAdd(&a.acc[g], v);
    }
}

/* kvtc__k_tcg_fnv_final   grid ceil(n_groups / 128), block 128: h = P^n h0 + acc (n pieces). Compress: store it and
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 24 regs; 0 spills
 * each record's status; decompress: compare with the record's (ERR_CORRUPT if different). */
__global__ void __launch_bounds__(128) kvtc__k_tcg_fnv_final(kvtc__tcg_args a, int decompress) {
    const int g = blockIdx.x * 128 + threadIdx.x;
    if (g >= a.G) return;
    const kvtc__tcg_call cl = a.call[g];
    const unsigned long long np = (cl.bytes + KVTC_TC_CHECKSUM_PIECE - 1) / KVTC_TC_CHECKSUM_PIECE;
    const unsigned long long h = kvtc__tcg_fnv_pow(np) * KVTC_FNV1A64_INIT + a.acc[g];
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
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 32 regs; 0 spills
 * grid ceil(n_groups / 4), block 128, one warp per record (lanes stride over the widths): header fields, calibration id, widths
 * (each <= 16, summing to row_bits), the length; then what this plan can decode (its own widths and
 * quantizer, this call's n_tokens): else ERR_UNSUPPORTED. The checksum follows (kvtc__k_tcg_fnv*). */
static __device__ int kvtc__tcg_check_one(const kvtc__tcg_args &a, int g, int lane) {
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
    for (unsigned i = lane; i < rank; i += 32) { /* every return above is the same for the whole warp */
        const unsigned x = w[i];
        bad |= x > 16;
        sum += x;
        nu += x > 0 && (q == KVTC_TC_QUANT_UNIFORM || x > 8);
        diff |= x ^ pw[i];
    }
    sum = __reduce_add_sync(KVTC__FULL, sum); /* rank <= 2^20 widths of <= 255: no overflow */
    nu = __reduce_add_sync(KVTC__FULL, nu);
    bad = __reduce_or_sync(KVTC__FULL, bad);
    diff = __reduce_or_sync(KVTC__FULL, diff);
    if (bad || sum != rb) return KVTC_ERR_CORRUPT;
    if (kvtc__tcg_geom(dim, rank, nu, rb, nt, ns, nw).bytes != rbytes) return KVTC_ERR_CORRUPT;
    if (diff || q != (unsigned)gr.quantizer || nt != (unsigned long long)a.n || ns != (unsigned long long)a.ns ||
        nw != (unsigned long long)a.nw)
        return KVTC_ERR_UNSUPPORTED;
    return KVTC_OK;
}

__global__ void __launch_bounds__(128) kvtc__k_tcg_check(kvtc__tcg_args a) {
    const int g = blockIdx.x * 4 + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (g >= a.G) return; /* warp-uniform */
    const int st = kvtc__tcg_check_one(a, g, lane);
    if (lane == 0) a.gstat[g] = st;
}

/* kvtc__k_tcg_unpack   CPU twin: kvtc__unpack_var_u16 + kvtc__tc_dequantize
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): 39 regs, 12320 B static smem (centroids, the block's words); 0 spills
 * grid (ceil(max words / KVTC__TCG_PW), n_groups), block 256: a block owns the fields whose first bit lies in
 * its KVTC__TCG_PW words of the index stream, bits [b0, b1). It loads those words and the next one into
 * shared memory (coalesced byte loads); threads as kvtc__tcg_jw (a component's lo/scale or sigma read once
 * per thread, coalesced stores of Z-hat), the N(0,1) centroids in shared memory. The padding columns
 * na..na_pad-1 of the rows that start in its words are zeroed. Records that failed the checks give zeros
 * (kvtc__k_tcg_scatter writes nothing for them). Bit offsets in 32 bits as in kvtc__k_tcg_pack. */
__global__ void __launch_bounds__(256) kvtc__k_tcg_unpack(kvtc__tcg_args a) {
    __shared__ float s_cent[8 * 256];
    __shared__ unsigned s_w[KVTC__TCG_PW + 1];
    __shared__ long long s_f[2];
    const int g = blockIdx.y, tid = threadIdx.x;
    const kvtc__tcg_group gr = a.groups[g];
    const long long R = gr.row_bits, nbits = a.m * R, b0 = (long long)blockIdx.x * (32 * KVTC__TCG_PW);
    if (R == 0 || b0 >= nbits) return;
    const long long b1 = nbits - b0 < 32 * KVTC__TCG_PW ? nbits : b0 + 32 * KVTC__TCG_PW;
    const kvtc__tcg_call cl = a.call[g];
    const bool ok = a.gstat[g] == KVTC_OK; /* a failed record's fields become zeros */
    const int na = gr.na, jw = kvtc__tcg_jw(na), rs = 256 / jw, js = tid % jw, ro = tid / jw;
    const kvtc__tcg_comp *comps = a.comps + (long long)g * a.na_pad;
    const unsigned char *rec = a.rec + cl.rec, *idx = rec + cl.idx + b0 / 8;
    const long long nb = (long long)cl.idx_bytes - b0 / 8;
    for (int i = tid; i < 8 * 256; i += 256) s_cent[i] = a.cent[i];
    unsigned char *sb = (unsigned char *)s_w;
    for (int i = tid; i < 4 * (KVTC__TCG_PW + 1); i += 256) sb[i] = ok && i < nb ? idx[i] : 0;
    if (tid < 2) {
        long long f = kvtc__tcg_field_at(comps, na, R, tid ? b1 - 1 : b0);
        if (tid == 0) {
            const long long t = f / na;
            if (t * R + comps[f - t * na].bitpos < b0) ++f;
        }
        s_f[tid] = f;
    }
    __syncthreads();
    const long long rf = s_f[0] / na, rl = s_f[1] / na;
    const int jf = (int)(s_f[0] - rf * na), jl = (int)(s_f[1] - rl * na), nr = (int)(rl - rf) + 1;
    const int pos0 = (int)(rf * R - b0), Ri = (int)R, ld = a.na_pad;
    const long long zb = ((long long)g * a.m + rf) * ld;
    for (int j = (nr == 1 ? jf : 0) + js; j <= (nr == 1 ? jl : na - 1); j += jw) {
        const kvtc__tcg_comp c = comps[j];
        const bool uni = c.uidx != KVTC__TCG_NOUNI;
        float lo = 0.0f, sc = c.sigma;
        if (uni && ok) {
            lo = __uint_as_float(kvtc__tcg_ld32(rec + cl.params + 8ull * c.uidx));
            sc = __uint_as_float(kvtc__tcg_ld32(rec + cl.params + 8ull * c.uidx + 4));
        }
        const float *cent = uni ? s_cent : s_cent + (c.width - 1) * 256; /* codebook widths are 1..8 */
        const unsigned mask = (1u << c.width) - 1u;
        for (int r = ro; r < nr; r += rs) {
            if ((r == 0 && j < jf) || (r == nr - 1 && j > jl)) continue;
            const int pos = pos0 + r * Ri + c.bitpos, wi = pos >> 5, sh = pos & 31;
            unsigned bits = s_w[wi] >> sh;
            if (sh) bits |= s_w[wi + 1] << (32 - sh);
            const unsigned qv = bits & mask;
            const float v = !ok ? 0.0f : uni ? __fadd_rn(lo, __fmul_rn((float)qv, sc)) : __fmul_rn(sc, cent[qv]);
            const long long o = zb + (long long)r * ld + j;
            if (a.mode == KVTC_CUDA_TC_GEMM_F16) ((__half *)a.Z)[o] = __float2half_rn(v);
            else ((float *)a.Z)[o] = v;
        }
    }
    /* rows t with t * R in [b0, b1): their padding columns */
    const int pad = a.na_pad - na;
    const long long pr0 = (b0 + R - 1) / R, pnr = (b1 - 1) / R + 1 - pr0;
    for (long long i = tid; i < pnr * pad; i += 256) {
        const long long o = ((long long)g * a.m + pr0 + i / pad) * a.na_pad + na + i % pad;
        if (a.mode == KVTC_CUDA_TC_GEMM_F16) ((__half *)a.Z)[o] = __float2half_rn(0.0f);
        else ((float *)a.Z)[o] = 0.0f;
    }
}

/* kvtc__k_tcg_scatter<E>   CPU twin: kvtc_tc_decode's copy-out + kvtc_rope_apply + the caller's scatter
 * resources (nvcc 13.0, -arch=sm_90 --resource-usage): <1> 40 regs, <4> 60 regs; 0 spills
 * grid and threads as kvtc__k_tcg_gather<E>: coded tokens from X-hat, sink/window tokens from the record's
 * fp16 rows; keys get RoPE back (double); written to the cache in its dtype (or to d_x). Failed records
 * write nothing. */
template <int E>
__global__ void __launch_bounds__(256) kvtc__k_tcg_scatter(kvtc__tcg_args a, int tpb) {
    const int g = blockIdx.z;
    if (a.gstat[g] != KVTC_OK) return;
    int lt, part, slot, kind, layer, head, j0, j1;
    if (!kvtc__tcg_item<E>(a, tpb, &lt, &part, &slot)) return;
    kvtc__tcg_part(a, g, part, &kind, &layer, &head);
    const int rot = kvtc__tcg_slot(a, kind, slot, &j0, &j1);
    const bool split = rot && a.style == KVTC_ROPE_HALF;
    const int s = E == 1 || split ? 1 : 2;
    const kvtc__tcg_call cl = a.call[g];
    const unsigned char *rec = a.rec + cl.rec;
    void *dst = kind ? a.wv : a.wk;
    const long long lbase = (long long)layer * a.layer_stride + (long long)head * a.hd;
    for (long long t = (long long)blockIdx.y * tpb + lt; t < a.n; t += (long long)gridDim.y * tpb) {
        float v0[E], v1[E];
        if (t < a.ns || t >= a.n - a.nw) {
            const unsigned char *row = rec + (t < a.ns ? cl.sink + (unsigned long long)t * a.p * 2
                                                       : cl.window + (unsigned long long)(t - (a.n - a.nw)) * a.p * 2);
#pragma unroll
            for (int e = 0; e < E; ++e) {
                const int c0 = part * a.hd + j0 + e * s, c1 = part * a.hd + j1 + e * s;
                v0[e] = __half2float(__ushort_as_half((unsigned short)(row[2 * c0] | (row[2 * c0 + 1] << 8))));
                v1[e] = __half2float(__ushort_as_half((unsigned short)(row[2 * c1] | (row[2 * c1 + 1] << 8))));
            }
        } else {
            kvtc__tcg_ld_pairs<E>(a.A, ((long long)g * a.m + (t - a.ns)) * a.p + part * a.hd, j0, j1, split,
                                  KVTC_DTYPE_F32, v0, v1);
        }
        if (a.flat) {
            kvtc__tcg_st_pairs<E>(a.x_out, ((long long)g * a.n + t) * a.p + part * a.hd, j0, j1, split,
                                  KVTC_DTYPE_F32, v0, v1);
            continue;
        }
        const long long row = a.rows[t];
        if (row < 0) {
            atomicOr(&a.gflag[g], 4u);
            continue;
        }
        if (rot) {
#pragma unroll
            for (int e = 0; e < E; ++e) kvtc__tcg_rope(a.rope_tab[t * a.rd_half + slot + e], 1.0, &v0[e], &v1[e]);
        }
        kvtc__tcg_st_pairs<E>(dst, lbase + row * a.tok_stride, j0, j1, split, a.dtype, v0, v1);
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
    size_t call, flags, flags_bytes, tokflag, gflag, acc, gstat, cpar, A, Z, rope, rows, bytes, rec_total;
    long long npieces, max_words, m, ns, nw;
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
        w->npieces += (long long)((geo.bytes + KVTC_TC_CHECKSUM_PIECE - 1) / KVTC_TC_CHECKSUM_PIECE);
        if (words > w->max_words) w->max_words = words;
        w->m = (long long)geo.m;
        w->ns = (long long)geo.ns;
        w->nw = (long long)geo.nw;
    }
    if (w->npieces > 0x7fffffffLL) return KVTC_ERR_OVERFLOW;
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
    if (!kvtc__tcg_mul(n, (size_t)(plan->params.rope.rotary_dim / 2) * 16, &a) || !kvtc__tcg_take(&off, a, &w->rope))
        return KVTC_ERR_OVERFLOW;
    if (!kvtc__tcg_mul(n, 8, &a) || !kvtc__tcg_take(&off, a, &w->rows)) return KVTC_ERR_OVERFLOW;
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
    /* the GEMM's 32-bit copy offsets (kvtc__k_tcg_gemm) */
    if (mode != KVTC_CUDA_TC_GEMM_EXACT && (ga.lda > (1 << 22) || ga.ldb > (1 << 22))) return KVTC_ERR_UNSUPPORTED;
    if (mode == KVTC_CUDA_TC_GEMM_EXACT) {
        const dim3 grid((unsigned)((m + 63) / 64), (unsigned)((ga.N + 63) / 64), (unsigned)plan->n_groups);
        kvtc__k_tcg_gemm_exact<<<grid, 256, 0, stream>>>(ga);
    } else if (mode == KVTC_CUDA_TC_GEMM_TF32X3 && ga.N <= 128) { /* p = 128: BN = 64 for two blocks per SM */
        const int smem = (2 * 128 + 2 * 2 * 64) * KVTC__TCG_LDS * 4;
        const dim3 grid((unsigned)((m + 127) / 128), (unsigned)((ga.N + 63) / 64), (unsigned)plan->n_groups);
        KVTC_CUDA_CHECK(cudaFuncSetAttribute(kvtc__k_tcg_gemm<0, 2>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        kvtc__k_tcg_gemm<0, 2><<<grid, 256, smem, stream>>>(ga);
    } else if (mode == KVTC_CUDA_TC_GEMM_TF32X3) {
        const int smem = (2 * 128 + 2 * 2 * 128) * KVTC__TCG_LDS * 4;
        const dim3 grid((unsigned)((m + 127) / 128), (unsigned)((ga.N + 127) / 128), (unsigned)plan->n_groups);
        KVTC_CUDA_CHECK(cudaFuncSetAttribute(kvtc__k_tcg_gemm<0, 4>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        kvtc__k_tcg_gemm<0, 4><<<grid, 256, smem, stream>>>(ga);
    } else if (ga.N <= 128) {
        const int smem = (3 * 128 + 3 * 64) * KVTC__TCG_LDS * 4;
        const dim3 grid((unsigned)((m + 127) / 128), (unsigned)((ga.N + 63) / 64), (unsigned)plan->n_groups);
        KVTC_CUDA_CHECK(cudaFuncSetAttribute(kvtc__k_tcg_gemm<1, 2>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
        kvtc__k_tcg_gemm<1, 2><<<grid, 256, smem, stream>>>(ga);
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
    int tpb, hp, vec4;
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
    a.rope_tab = (double2 *)(ws + w.rope);
    a.rows = (long long *)(ws + w.rows);
    a.npieces = w.npieces;
    a.status = d_status;
    { /* kvtc__k_tcg_gather<4> / scatter<4>: 4 pairs (8 coordinates) per thread, 8- or 16-byte accesses */
        const uintptr_t al = (uintptr_t)plan->d_mean | (uintptr_t)(flat ? (decompress ? (const void *)x_out : x_in)
                                                                         : (const void *)cache->d_k) |
                             (uintptr_t)(flat ? NULL : cache->d_v);
        vec4 = KVTC__TCG_VEC4 && r->head_dim % 8 == 0 && (!a.rope || a.rd_half % 4 == 0) && plan->kp % 4 == 0 &&
               al % 16 == 0;
    }
    hp = plan->dim / (vec4 ? 8 : 2); /* threads per token */
    tpb = hp < 256 ? 256 / hp : 1;
    gx = tpb > 1 ? 1u : (unsigned)((hp + 255) / 256);
    { /* about 4096 blocks in all: each thread strides over several tokens, so its per-column setup (group,
       * slot, mean, record offsets) is paid once for all of them */
        const long long rows = ((long long)n_tokens + tpb - 1) / tpb;
        const long long want = (4096 + (long long)gx * a.G - 1) / ((long long)gx * a.G);
        gy = (unsigned)(rows < want ? rows : (want < 65535 ? want : 65535));
        if (gy < 1) gy = 1;
    }
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
    if (!flat) {
        kvtc__k_tcg_rows<<<(unsigned)((a.n + 255) / 256), 256, 0, stream>>>(a);
        KVTC__TCG_LAUNCHED();
    }
    if (!decompress) {
        if (vec4) kvtc__k_tcg_gather<4><<<dim3(gx, gy, (unsigned)a.G), 256, 0, stream>>>(a, tpb);
        else kvtc__k_tcg_gather<1><<<dim3(gx, gy, (unsigned)a.G), 256, 0, stream>>>(a, tpb);
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
            kvtc__k_tcg_pack<<<dim3((unsigned)((w.max_words + KVTC__TCG_PW - 1) / KVTC__TCG_PW), (unsigned)a.G), 256, 0,
                               stream>>>(a);
            KVTC__TCG_LAUNCHED();
        }
        KVTC__TCG_MARK(4);
    }
    {
        const unsigned np = (unsigned)((w.npieces + 255) / 256), gg = (unsigned)((a.G + 127) / 128);
        if (decompress) {
            kvtc__k_tcg_check<<<(unsigned)((a.G + 3) / 4), 128, 0, stream>>>(a);
            KVTC__TCG_LAUNCHED();
        }
        kvtc__k_tcg_fnv<<<np, 256, 0, stream>>>(a, decompress);
        KVTC__TCG_LAUNCHED();
        kvtc__k_tcg_fnv_final<<<gg, 128, 0, stream>>>(a, decompress);
        KVTC__TCG_LAUNCHED();
        if (!decompress) {
            KVTC__TCG_MARK(5);
            return KVTC_OK;
        }
        KVTC__TCG_MARK(1);
        if (w.m > 0 && w.max_words > 0) {
            kvtc__k_tcg_unpack<<<dim3((unsigned)((w.max_words + KVTC__TCG_PW - 1) / KVTC__TCG_PW), (unsigned)a.G), 256, 0,
                                 stream>>>(a);
            KVTC__TCG_LAUNCHED();
        }
        KVTC__TCG_MARK(2);
        if (w.m > 0 && (st = kvtc__tcg_gemm(plan, &w, ws, 0, stream)) != KVTC_OK) return st;
        KVTC__TCG_MARK(3);
        if (vec4) kvtc__k_tcg_scatter<4><<<dim3(gx, gy, (unsigned)a.G), 256, 0, stream>>>(a, tpb);
        else kvtc__k_tcg_scatter<1><<<dim3(gx, gy, (unsigned)a.G), 256, 0, stream>>>(a, tpb);
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
