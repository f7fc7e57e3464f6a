/* kvtc_cuda.cuh - GPU kernels of kvtc and their host launchers.  v0.2.0
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
 * Records are bit-identical to kvtc.h's (same layout, same arithmetic in the
 * same order) for the Hadamard and NONE rotations; sums of squares are
 * reduced in another order, which can move a value across a rounding edge
 * with probability ~1e-9 per element. Bit-parity assumes the CPU build does
 * not contract a*b+c into fma (true for -std=c99/c11, or -ffp-contract=off).
 *
 * Sections: >>codec-upload >>compress >>decompress >>attention
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
 * stream. No host synchronisation, no host reads of device data: the launch
 * can be captured in a CUDA graph.
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
/* KVTC_OK if the tensor-core kernel serves this combination: TQ_MSE keys of 2, 4 or 8 bits and TQ_MSE
 * values of 2 or 4 bits with fp16 norms, head_dim 64, 128 or 256, gqa <= 8, block_size a multiple of 16. */
KVTC_DEF kvtc_status kvtc_cuda_attn_tensor_supported(const kvtc_cuda_codec *kc, const kvtc_cuda_codec *vc, int gqa,
                                                     int block_size);
/* The split count the launcher will use (a pure function of the codecs and *p). */
KVTC_DEF kvtc_status kvtc_cuda_attn_splits(const kvtc_cuda_codec *kc, const kvtc_cuda_codec *vc,
                                           const kvtc_cuda_attn_params *p, int *n_split);
/* Device workspace bytes for the split-K partials (0 when n_split is 1). */
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
 * and an exactly symmetric codebook of 1..4 bits (all of kvtc.h's are): L = D/16 lanes per vector, lane
 * li of a vector holding coordinates 16 li .. 16 li + 15, 32/L vectors per warp, grid-stride loop.
 * Sums of squares run as kvtc.h's chunk tree (a lane's 16 in order, then xor shuffles); the FWHT does
 * its stages h = 1..8 in registers and h = 16..D/2 by shuffles, each butterfly as the CPU computes it;
 * a coordinate's cell comes from a branch-free binary search over the 2^(bits-1) - 1 positive
 * boundaries in registers (the symmetric codebook gives the negative side; y <= 0 searches with the next
 * float up, so ties go down exactly as in kvtc.h); codes leave as one 2*bits-byte store per lane.
 * grid (min(vectors / vectors per block, 2048), 1 or 2 tensors), block 256; bits switch per tensor at run time.
 * <128>: see the resource table in bench/RESULTS.md. bytes per vector: 2 D in (fp16), D bits/8 + 2 out */
template <int L>
static __device__ __forceinline__ float kvtc__group_sum(float v) { /* kvtc.h's tree over the L chunk sums */
#pragma unroll
    for (int o = 1; o < L; o <<= 1) v = __fadd_rn(v, __shfl_xor_sync(KVTC__FULL, v, o));
    return v;
}

template <int D, int BITS>
static __device__ __forceinline__ void kvtc__compress_fast_body(const kvtc__args &a, const kvtc__dc &c, const float *s_mag) {
    constexpr int L = D / 16, VPW = 32 / L, M = 1 << (BITS - 1);
    const int lane = threadIdx.x & 31, li = lane & (L - 1), warps = blockDim.x >> 5;
    float P[M > 1 ? M - 1 : 1]; /* positive boundaries b[M], .., b[2M - 2]; b[M - 1] is 0 */
#pragma unroll
    for (int j = 0; j < M - 1; ++j) P[j] = __ldg(c.bnd + M + j);
    unsigned smask[4] = {0u, 0u, 0u, 0u}; /* bit e: coordinate 16 li + e changes sign in round r */
#pragma unroll
    for (int r = 0; r < 4; ++r)
        if (r < c.rounds)
#pragma unroll
            for (int e = 0; e < 16; ++e) smask[r] |= (__ldg(c.signs + r * D + 16 * li + e) < 0.0f ? 1u : 0u) << e;
    const long long stride = (long long)gridDim.x * warps * VPW;
    for (long long v0 = ((long long)blockIdx.x * warps + (threadIdx.x >> 5)) * VPW; v0 < a.n_vectors; v0 += stride) {
        const long long v = v0 + lane / L;
        /* ---- where the vector goes */
        bool valid = v < a.n_vectors, bad = false;
        long long page = 0;
        int off = 0;
        if (valid) {
            const unsigned token = kvtc__div((unsigned)v, a.div_heads), head = (unsigned)v - token * (unsigned)a.n_heads;
            const long long s64 = a.slots ? __ldg(a.slots + token) : (long long)token;
            valid = s64 != -1;
            bad = s64 < -1 || s64 >= a.n_slots;
            valid = valid && !bad;
            if (valid) {
                const unsigned blk = kvtc__div((unsigned)s64, a.div_bs);
                page = (long long)blk * a.n_heads + head;
                off = (int)((unsigned)s64 - blk * (unsigned)a.block_size);
            }
        }
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
#pragma unroll
            for (int o = 1; o < L; o <<= 1) {
                fin = fin && __shfl_xor_sync(KVTC__FULL, (int)fin, o);
                mx = fmaxf(mx, __shfl_xor_sync(KVTC__FULL, mx, o));
            }
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
            idx[e] = pos ? (unsigned)(M + mag) : (unsigned)(M - 1 - mag);
            if (c.corr > 0) {
                const float cm = s_mag[mag];
                chat = __fmaf_rn(cm, cm, chat);
            }
        }
        float want = norm;
        if (c.corr > 0) want = __fdiv_rn(norm, __fsqrt_rn(kvtc__group_sum<L>(chat)));
        /* ---- store: the norm, then this lane's 2*BITS bytes of codes */
        float readback = want;
        unsigned short h16 = 0;
        if (!c.norm32) {
            const __half hh = __float2half_rn(want);
            h16 = __half_as_ushort(hh);
            readback = __half2float(hh);
        }
        const bool range = !nonfinite && !zero && !isfinite(readback);
        const bool blank = nonfinite || zero || range;
        if (a.status && li == 0 && valid && (nonfinite || range))
            atomicOr(a.status, nonfinite ? KVTC_CUDA_FLAG_NONFINITE : KVTC_CUDA_FLAG_RANGE);
        if (a.status && li == 0 && bad) atomicOr(a.status, KVTC_CUDA_FLAG_BAD_SLOT);
        if (!valid) continue;
        unsigned char *pg = (unsigned char *)c.y + page * (long long)c.page_bytes;
        if (li == 0) {
            unsigned char *sc = pg + c.off_scales + (size_t)off * c.scale_bytes;
            if (c.norm32) *(unsigned *)sc = blank ? 0u : __float_as_uint(want);
            else *(unsigned short *)sc = blank ? (unsigned short)0 : h16;
        }
        unsigned char *cp = pg + c.off_codes + (size_t)off * c.code_bytes + 2 * BITS * li;
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
    __shared__ float s_mag[8]; /* centroid magnitudes c[M + j] */
    const kvtc__dc &c = a.t[blockIdx.y];
    const int M = 1 << (c.mse_bits - 1);
    if (threadIdx.x < M) s_mag[threadIdx.x] = __ldg(c.cent + M + threadIdx.x);
    __syncthreads();
    switch (c.mse_bits) {
    case 1: kvtc__compress_fast_body<D, 1>(a, c, s_mag); break;
    case 2: kvtc__compress_fast_body<D, 2>(a, c, s_mag); break;
    case 3: kvtc__compress_fast_body<D, 3>(a, c, s_mag); break;
    default: kvtc__compress_fast_body<D, 4>(a, c, s_mag); break;
    }
}

/* Whether codec c's compress can run kvtc__k_compress_fast: checked on the host copy of its tables. */
static int kvtc__compress_fast_ok(const kvtc_codec *c) {
    const int d = c->params.head_dim, b = c->mse_bits, nb = (1 << b) - 1;
    int k;
    if (c->params.method != KVTC_METHOD_TQ_MSE || c->params.rotation != KVTC_ROTATION_HADAMARD || c->rot.block != d ||
        c->rot.rounds < 1 || c->rot.rounds > 4 || b < 1 || b > 4 || (d != 64 && d != 128 && d != 256 && d != 512))
        return 0;
    if (c->boundaries[(nb - 1) / 2] != 0.0f) return 0;
    for (k = 0; k < nb; ++k)
        if (c->boundaries[k] != -c->boundaries[nb - 1 - k]) return 0;
    for (k = 0; k <= nb; ++k)
        if (c->centroids[k] != -c->centroids[nb - k]) return 0;
    return 1;
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

/* fast: every tensor's codec passes kvtc__compress_fast_ok and its input is 16-byte aligned */
static kvtc_status kvtc__launch(bool compress, int d, kvtc__args &a, int n_tensors, bool fast, cudaStream_t stream) {
    long long blocks = (a.n_vectors + KVTC__WARPS - 1) / KVTC__WARPS;
    dim3 grid((unsigned)blocks, (unsigned)n_tensors);
    if (a.n_vectors == 0) return KVTC_OK;
    if (a.n_vectors >= 0x7fffffffLL || a.n_slots >= 0x7fffffffLL) return KVTC_ERR_UNSUPPORTED; /* 32-bit indexing */
    a.div_heads = kvtc__fastdiv_of((unsigned)a.n_heads);
    a.div_bs = kvtc__fastdiv_of((unsigned)a.block_size);
    if (compress && fast) {
        const long long per_block = 8LL * (32 / (d / 16)); /* 8 warps of 32 / (d/16) vectors */
        const long long need = (a.n_vectors + per_block - 1) / per_block;
        dim3 fgrid((unsigned)(need < 2048 ? need : 2048), (unsigned)n_tensors); /* grid-stride beyond */
        switch (d) {
        case 64: kvtc__k_compress_fast<64><<<fgrid, 256, 0, stream>>>(a); break;
        case 128: kvtc__k_compress_fast<128><<<fgrid, 256, 0, stream>>>(a); break;
        case 256: kvtc__k_compress_fast<256><<<fgrid, 256, 0, stream>>>(a); break;
        default: kvtc__k_compress_fast<512><<<fgrid, 256, 0, stream>>>(a); break;
        }
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
                        kvtc__compress_fast_ok(&kc->meta) && !((size_t)d_k & 15) &&
                            (!vc || (kvtc__compress_fast_ok(&vc->meta) && !((size_t)d_v & 15))),
                        stream);
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
    return kvtc__launch(false, c->meta.params.head_dim, a, 1, false, stream);
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
    return kvtc__launch(true, c->meta.params.head_dim, a, 1, kvtc__compress_fast_ok(&c->meta) && !((size_t)d_x & 15), stream);
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
    return kvtc__launch(false, c->meta.params.head_dim, a, 1, false, stream);
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
    float *lse, *ws_o, *ws_lse; /* ws_*: split partials [seq][q head][split]([d]) */
    int n_q_heads, n_kv, gqa, block_size, max_blocks, n_blocks, n_split, blocks_per_split;
    int q_dtype, out_dtype, rotated_output;
    float scale_log2; /* softmax scale * log2(e): scores live in log2 units */
    /* tensor-core kernel: byte offsets of its shared-memory regions (see kvtc__attn_tc_layout) */
    unsigned tc_vlut, tc_ring, tc_q, tc_qf, tc_buf, tc_ml;
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

/* The end of both attention kernels: merge the 4 warps' partials (max M, sum L, unnormalized rotated
 * output in s_acc [warp][GMAX][D]) in a fixed order, then either rotate back and store the output and LSE,
 * or store this split's normalized partial and LSE (log2 units) for kvtc__k_attn_merge. */
template <int EPL>
static __device__ void kvtc__attn_finish(const kvtc__attn_args &a, const float *s_acc, const float *s_ml, float *s_buf,
                                         int G, int h, int b, int split, int warp, int lane) {
    const int D = EPL * 32, d = a.v.d;
    for (int g = warp; g < G; g += 4) {
        float M = -INFINITY, L = 0.0f, wgt[4];
        for (int w = 0; w < 4; ++w) M = fmaxf(M, s_ml[(w * KVTC__ATTN_GMAX + g) * 2]);
        for (int w = 0; w < 4; ++w) {
            const float mw = s_ml[(w * KVTC__ATTN_GMAX + g) * 2];
            wgt[w] = mw == -INFINITY ? 0.0f : exp2f(mw - M);
            L += s_ml[(w * KVTC__ATTN_GMAX + g) * 2 + 1] * wgt[w];
        }
        const float inv = L > 0.0f ? 1.0f / L : 0.0f;
        float *row = s_buf + warp * D; /* this head's rotated output, normalized */
        for (int i = lane; i < D; i += 32) {
            float o = 0.0f;
            for (int w = 0; w < 4; ++w) o += wgt[w] * s_acc[(w * KVTC__ATTN_GMAX + g) * D + i];
            row[i] = o * inv;
        }
        __syncwarp();
        const long long qh = (long long)b * a.n_q_heads + (long long)h * G + g;
        if (a.n_split == 1) {
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
            float *o = a.ws_o + (qh * a.n_split + split) * D;
            for (int i = lane; i < D; i += 32) o[i] = row[i];
            if (lane == 0) a.ws_lse[qh * a.n_split + split] = L > 0.0f ? M + log2f(L) : -INFINITY;
        }
        __syncwarp();
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
    kvtc__attn_finish<EPL>(a, s_acc, s_ml, s_buf, G, h, b, split, warp, lane);
}

/* kvtc__k_attn_merge<EPL>: split-K partials -> output. grid (n_q_heads, n_seqs), block 32. */
template <int EPL>
__global__ void __launch_bounds__(32) kvtc__k_attn_merge(const kvtc__attn_args a) {
    __shared__ float s_row[EPL * 32];
    const int lane = threadIdx.x, d = a.v.d, D = EPL * 32;
    const long long qh = (long long)blockIdx.y * a.n_q_heads + blockIdx.x;
    const float *lse = a.ws_lse + qh * a.n_split;
    float M = -INFINITY, L = 0.0f;
    for (int s = 0; s < a.n_split; ++s) M = fmaxf(M, lse[s]);
    for (int s = 0; s < a.n_split; ++s) L += lse[s] == -INFINITY ? 0.0f : exp2f(lse[s] - M);
    float x[EPL];
#pragma unroll
    for (int p = 0; p < EPL; ++p) {
        float o = 0.0f;
        for (int s = 0; s < a.n_split; ++s)
            if (lse[s] != -INFINITY) o += exp2f(lse[s] - M) * a.ws_o[(qh * a.n_split + s) * D + p * 32 + lane];
        x[p] = L > 0.0f ? o / L : 0.0f;
    }
    if (a.v.method != KVTC_METHOD_AFFINE && !a.rotated_output) kvtc__rotate<EPL>(a.v, x, s_row, lane, true);
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
static __device__ __forceinline__ void kvtc__mma16816(float (&c)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                                                      unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
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
 * e * 32 + lane for lane `lane`, so a warp's lookups never conflict on a bank. */
template <int B>
struct kvtc__pairs {
    static constexpr int entries = B == 8 ? 256 : 1 << (2 * B);
    static constexpr int words = entries * 32;
};
template <int B>
static __device__ void kvtc__pairs_fill(unsigned *lut, const float *cent) {
    /* entries * 8 is a multiple of the block's 128 threads: every lane runs every iteration */
    const float mine = B == 8 ? 0.0f : __ldg(cent + ((threadIdx.x & 31) & ((1 << B) - 1)));
    for (int i = threadIdx.x; i < kvtc__pairs<B>::entries * 8; i += blockDim.x) {
        const int e = i >> 3, mask = (1 << B) - 1;
        const unsigned v = B == 8 ? kvtc__half2_bits(__ldg(cent + e), 0.0f)
                                  : kvtc__half2_bits(__shfl_sync(KVTC__FULL, mine, e & mask), __shfl_sync(KVTC__FULL, mine, e >> B));
        ((uint4 *)lut)[i] = make_uint4(v, v, v, v); /* 4 of entry e's 32 lane copies */
    }
}
/* Byte offset in a pair table of the entry whose index is the `bits`-bit field of w at bit `pos`, for
 * lane offset lane4 = 4 * lane: (field << 7) | lane4, one shift and one lop3 (pos and bits are
 * constants once the callers' loops are unrolled). */
static __device__ __forceinline__ unsigned kvtc__lut_ofs(unsigned w, int pos, int bits, unsigned lane4) {
    const unsigned mask = ((1u << bits) - 1u) << 7;
    return ((pos <= 7 ? (w << (7 - pos)) : (w >> (pos - 7))) & mask) | lane4;
}
/* fp16 pair pi (coordinates 2 pi, 2 pi + 1) of the B-bit codes in w[], from this lane's column of the
 * table at lut. */
template <int B, int N>
static __device__ __forceinline__ unsigned kvtc__pair(const unsigned (&w)[N], int pi, const unsigned char *lut,
                                                      unsigned lane4) {
    if (B == 4) return *(const unsigned *)(lut + kvtc__lut_ofs(w[pi >> 2], 8 * (pi & 3), 8, lane4));
    if (B == 2) return *(const unsigned *)(lut + kvtc__lut_ofs(w[pi >> 3], 4 * (pi & 7), 4, lane4));
    /* B == 8: two single-code entries */
    return __byte_perm(*(const unsigned *)(lut + kvtc__lut_ofs(w[pi >> 1], 16 * (pi & 1), 8, lane4)),
                       *(const unsigned *)(lut + kvtc__lut_ofs(w[pi >> 1], 16 * (pi & 1) + 8, 8, lane4)), 0x5410u);
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

/* What a lane of the tensor-core kernel reads of one 16-token tile: a quarter of key rows g and g + 8
 * (coordinates t*D/4 .. +D/4), an eighth of value rows 2t, 2t+1, 2t+8, 2t+9 (coordinates g*D/8 .. +D/8),
 * and the key and value norms of rows g and g + 8. Each lane copies exactly these bytes into its own
 * slots of a stage of its warp's ring by cp.async (so no barrier is needed to read them back); pieces
 * under 4 bytes come as the aligned word that holds them. A stage is [field][32 lanes] so that a
 * warp's reads of one field are contiguous. */
__host__ __device__ constexpr int kvtc__tc_kl(int d, int kb) { return d * kb / 32 < 4 ? 4 : d * kb / 32; }
__host__ __device__ constexpr int kvtc__tc_vl(int d, int vb) { return d * vb / 64 < 4 ? 4 : d * vb / 64; }
/* bytes of one stage: K0, K1 [32][KL], V [4][32][VL], norms [4][32] words, mask [32] words */
__host__ __device__ constexpr int kvtc__tc_stage_bytes(int d, int kb, int vb) {
    return 64 * kvtc__tc_kl(d, kb) + 128 * kvtc__tc_vl(d, vb) + 512 + 128;
}
template <int D, int KB, int VB>
struct kvtc__tc_stage {
    static constexpr int KBYTES = D * KB / 32, VBYTES = D * VB / 64;  /* what a lane needs */
    static constexpr int KL = kvtc__tc_kl(D, KB), VL = kvtc__tc_vl(D, VB); /* what it copies */
    static constexpr int K0 = 0, K1 = 32 * KL, V = 64 * KL, NORM = 64 * KL + 128 * VL, OK = NORM + 512;
    static constexpr int BYTES = kvtc__tc_stage_bytes(D, KB, VB);
    static_assert(BYTES == OK + 128, "stage layout");
};
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

/* Start copying this lane's part of the tile at token offset `off` of physical block `blk` into stage sb
 * (a shared address); a bad block id marks the stage masked. */
template <int D, int KB, int VB>
static __device__ __forceinline__ void kvtc__tc_issue(const kvtc__attn_args &a, int blk, int off, int h, int g, int t,
                                                      int lane, unsigned sb) {
    typedef kvtc__tc_stage<D, KB, VB> S;
    const bool ok = blk >= 0 && blk < a.n_blocks;
    asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(sb + S::OK + 4 * lane), "r"((unsigned)ok) : "memory");
    if (!ok) return;
    const long long pg = (long long)blk * a.n_kv + h;
    const unsigned char *kp = a.kcache + pg * (long long)a.k.page_bytes, *vp = a.vcache + pg * (long long)a.v.page_bytes;
    const unsigned char *kc = kp + a.k.off_codes + (size_t)off * (D * KB / 8) + t * S::KBYTES;
    const unsigned char *vc = vp + a.v.off_codes + (size_t)off * (D * VB / 8) + ((g * S::VBYTES) & ~3);
    kvtc__cp_async<S::KL>(sb + S::K0 + lane * S::KL, kc + g * (D * KB / 8));
    kvtc__cp_async<S::KL>(sb + S::K1 + lane * S::KL, kc + (g + 8) * (D * KB / 8));
    const int rows[4] = {2 * t, 2 * t + 1, 2 * t + 8, 2 * t + 9};
#pragma unroll
    for (int u = 0; u < 4; ++u) kvtc__cp_async<S::VL>(sb + S::V + (u * 32 + lane) * S::VL, vc + rows[u] * (D * VB / 8));
    /* norms of rows g and g + 8: the aligned words that hold them */
    const size_t n0 = ((size_t)(off + g) * 2) & ~(size_t)3, n1 = ((size_t)(off + g + 8) * 2) & ~(size_t)3;
    kvtc__cp_async<4>(sb + S::NORM + 4 * lane, kp + a.k.off_scales + n0);
    kvtc__cp_async<4>(sb + S::NORM + 128 + 4 * lane, kp + a.k.off_scales + n1);
    kvtc__cp_async<4>(sb + S::NORM + 256 + 4 * lane, vp + a.v.off_scales + n0);
    kvtc__cp_async<4>(sb + S::NORM + 384 + 4 * lane, vp + a.v.off_scales + n1);
}

template <int D, int KB, int VB>
struct kvtc__tile {
    static constexpr int KW = kvtc__tc_stage<D, KB, VB>::KL / 4, VW = kvtc__tc_stage<D, KB, VB>::VL / 4;
    unsigned k0[KW], k1[KW], v[4][VW];
    float nk0, nk1, nv0, nv1;
    bool ok0, ok1; /* rows g and g + 8 hold tokens of the context */
};
template <int N>
static __device__ __forceinline__ void kvtc__lds_words(const unsigned char *p, unsigned (&w)[N]) {
    if (N == 1) {
        w[0] = *(const unsigned *)p;
    } else if (N == 2) {
        const uint2 v = *(const uint2 *)p;
        w[0] = v.x, w[1] = v.y;
    } else {
#pragma unroll
        for (int i = 0; i < N / 4; ++i) {
            const uint4 v = ((const uint4 *)p)[i];
            w[4 * i] = v.x, w[4 * i + 1] = v.y, w[4 * i + 2] = v.z, w[4 * i + 3] = v.w;
        }
    }
}
static __device__ __forceinline__ float kvtc__half_of(unsigned w, int hi) {
    return __half2float(__ushort_as_half((unsigned short)(hi ? w >> 16 : w & 0xffffu)));
}
/* Read this lane's part of a landed stage; n_valid = tokens of the context from the tile's first. */
template <int D, int KB, int VB>
static __device__ __forceinline__ void kvtc__tc_read(const unsigned char *sb, int off, int n_valid, int g, int lane,
                                                     kvtc__tile<D, KB, VB> &T) {
    typedef kvtc__tc_stage<D, KB, VB> S;
    const bool ok = *(const unsigned *)(sb + S::OK + 4 * lane) != 0u;
    kvtc__lds_words(sb + S::K0 + lane * S::KL, T.k0);
    kvtc__lds_words(sb + S::K1 + lane * S::KL, T.k1);
#pragma unroll
    for (int u = 0; u < 4; ++u) {
        kvtc__lds_words(sb + S::V + (u * 32 + lane) * S::VL, T.v[u]);
        if (S::VBYTES < 4) T.v[u][0] >>= ((g * S::VBYTES) & 3) * 8;
    }
    T.ok0 = ok && g < n_valid;
    T.ok1 = ok && g + 8 < n_valid;
    const unsigned *nw = (const unsigned *)(sb + S::NORM) + lane;
    const int o0 = (off + g) & 1, o1 = (off + g + 8) & 1;
    T.nk0 = T.ok0 ? kvtc__half_of(nw[0], o0) : 0.0f;
    T.nk1 = T.ok1 ? kvtc__half_of(nw[32], o1) : 0.0f;
    T.nv0 = T.ok0 ? kvtc__half_of(nw[64], o0) : 0.0f;
    T.nv1 = T.ok1 ? kvtc__half_of(nw[96], o1) : 0.0f;
}

static __device__ __forceinline__ float kvtc__max_over_g(float x) { /* over the 8 lanes of one t */
    x = fmaxf(x, __shfl_xor_sync(KVTC__FULL, x, 4));
    x = fmaxf(x, __shfl_xor_sync(KVTC__FULL, x, 8));
    return fmaxf(x, __shfl_xor_sync(KVTC__FULL, x, 16));
}

/* kvtc__k_attn_tc<D, KB, VB>   CPU twin: kvtc_attn_decode
 * grid (n_kv_heads, n_seqs, n_split), block 128 (4 warps); each warp takes every 4th 16-token tile of the
 * split through its own ring of KVTC__TC_STAGES cp.async stages (two tiles in flight while one computes).
 * Per tile and warp: scores S (16 tokens x 8 heads) = K Q'^T as D/16 k-steps of two mma each (query hi
 * and lo parts, into 4 accumulators so the chain is short); online softmax per head; the weights
 * p * n_v go through movmatrix into the B fragment of O'^T (D x 8) += V^T P^T, D/16 mma.
 * Softmax keeps two running maxima per head: of the score s (for the sum L) and of s + log2(n_v) (for
 * the fp16 weights, so the largest weighted term is 1 whatever the value norms are).
 * Coordinates: lane (g, t) holds key coordinates t*D/4 + 4s .. +3 of k-step s and value coordinates
 * g*D/8 + 2m, +1 of m-tile m, so every lane reads whole aligned chunks of each record.
 * smem (kvtc__attn_tc_layout_of): pair tables (32 KiB for 4 or 8 bits, 2 KiB for 2; one table when K and
 * V share a codebook), the rings (4 x 3 x 2.6 KiB at d = 128, 4 bits), both reused by the warp merge after
 * the loop, then queries and their fragments.
 * <128,4,4>: see the resource table in bench/RESULTS.md; target 3 blocks/SM (2 at d = 256).
 * bytes per token and KV head: D*KB/8 + 2 (K), D*VB/8 + 2 (V); bound: HBM bandwidth */
#ifndef KVTC__TC_STAGES /* cp.async stages per warp: STAGES - 1 tiles in flight while one computes */
#define KVTC__TC_STAGES 3
#endif
#define KVTC__TC_NONE (-1e30f) /* running maximum before any token: finite, below every real score */
template <int D, int KB, int VB>
__global__ void __launch_bounds__(128, D == 256 ? 2 : 3) kvtc__k_attn_tc(const kvtc__attn_args a) {
    static_assert(D == 64 || D == 128 || D == 256, "head_dim");
    static_assert((KB == 2 || KB == 4 || KB == 8) && (VB == 2 || VB == 4), "bits");
    constexpr int EPL = D / 32, NS = D / 16, QR = D <= 128, NST = KVTC__TC_STAGES; /* QR: query fragments in registers */
    typedef kvtc__tc_stage<D, KB, VB> Stage;
    extern __shared__ __align__(16) unsigned char kvtc__smem_tc[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int h = blockIdx.x, b = blockIdx.y, split = blockIdx.z, G = a.gqa;
    const unsigned char *klut = kvtc__smem_tc, *vlut = kvtc__smem_tc + a.tc_vlut; /* pair tables */
    const unsigned lane4 = 4u * lane;
    unsigned char *ring = kvtc__smem_tc + a.tc_ring + warp * NST * Stage::BYTES; /* this warp's stages */
    const unsigned ring_s = (unsigned)__cvta_generic_to_shared(ring);
    float *s_q = (float *)(kvtc__smem_tc + a.tc_q);    /* [8][D] rotated, scaled queries */
    uint4 *s_qf = (uint4 *)(kvtc__smem_tc + a.tc_qf); /* [NS][32]: lane's B fragments {hi b0, hi b1, lo b0, lo b1} */
    float *s_buf = (float *)(kvtc__smem_tc + a.tc_buf); /* [4][D] rotation scratch */
    float *s_ml = (float *)(kvtc__smem_tc + a.tc_ml);   /* [4][8][2] per-warp max, sum */
    float *s_acc = (float *)kvtc__smem_tc;              /* [4][8][D] after the loop, over the tables and rings */

    const int len = min(max(a.context_lens[b], 0), a.max_blocks * a.block_size);
    const int t_begin = split * a.blocks_per_split * a.block_size;
    const int t_end = min(len, t_begin + a.blocks_per_split * a.block_size);
    const int n_tiles = t_end > t_begin ? (t_end - t_begin + 15) >> 4 : 0;
    const int n_mine = n_tiles > warp ? (n_tiles - warp + 3) >> 2 : 0; /* this warp's tiles: warp + 4 j */
    const int *bt = a.block_table + (long long)b * a.max_blocks;
#define KVTC__TC_TOK(j) (t_begin + 16 * (warp + 4 * (j)))
#define KVTC__TC_BLK(j) ((j) < n_mine ? __ldg(bt + KVTC__TC_TOK(j) / a.block_size) : -1)
#define KVTC__TC_ISSUE(j, blk)                                                                                         \
    do {                                                                                                               \
        if ((j) < n_mine)                                                                                              \
            kvtc__tc_issue<D, KB, VB>(a, blk, KVTC__TC_TOK(j) % a.block_size, h, g, t, lane,                          \
                                      ring_s + ((j) % NST) * Stage::BYTES);                                            \
        kvtc__cp_commit();                                                                                             \
    } while (0)
    /* the first tiles' bytes start moving before the tables and queries are set up */
#pragma unroll
    for (int j = 0; j < NST - 1; ++j) KVTC__TC_ISSUE(j, KVTC__TC_BLK(j));

    kvtc__pairs_fill<KB>((unsigned *)kvtc__smem_tc, a.k.cent);
    if (a.tc_vlut) kvtc__pairs_fill<VB>((unsigned *)(kvtc__smem_tc + a.tc_vlut), a.v.cent);
    /* q' = P_k q * scale * log2(e) for each head of the group; heads G..7 are zero */
    for (int gq = warp; gq < 8; gq += 4) {
        if (gq < G) {
            const long long qoff = ((long long)b * a.n_q_heads + (long long)h * G + gq) * D;
            const char *qbase = (const char *)a.q + qoff * (a.q_dtype == KVTC_DTYPE_F32 ? 4 : 2);
            kvtc__rotate_row<EPL>(a.k, nullptr, qbase, a.q_dtype, false, s_buf + warp * D, a.scale_log2, s_q + gq * D,
                                  nullptr, 0, lane);
        } else {
            for (int i = lane; i < D; i += 32) s_q[gq * D + i] = 0.0f;
        }
    }
    __syncthreads();
    /* B fragments of Q'^T: k-step s, k 2t, 2t+1 -> coordinates t*D/4 + 4s, +1; k 2t+8, 2t+9 -> +2, +3 */
    for (int i = threadIdx.x; i < NS * 32; i += blockDim.x) {
        const int s = i >> 5, gg = (i & 31) >> 2, tt = i & 3;
        const float4 x = *(const float4 *)(s_q + gg * D + tt * (D / 4) + 4 * s);
        const float2 h01 = __half22float2(__floats2half2_rn(x.x, x.y)), h23 = __half22float2(__floats2half2_rn(x.z, x.w));
        s_qf[i] = make_uint4(kvtc__half2_bits(x.x, x.y), kvtc__half2_bits(x.z, x.w), kvtc__half2_bits(x.x - h01.x, x.y - h01.y),
                             kvtc__half2_bits(x.z - h23.x, x.w - h23.y));
    }
    __syncthreads();
    uint4 qreg[QR ? NS : 1];
    if (QR) {
#pragma unroll
        for (int s = 0; s < (QR ? NS : 1); ++s) qreg[s] = s_qf[s * 32 + lane];
    }

    float ms[2] = {KVTC__TC_NONE, KVTC__TC_NONE}, mv[2] = {KVTC__TC_NONE, KVTC__TC_NONE}, l[2] = {0.0f, 0.0f}, acc[NS][4];
#pragma unroll
    for (int m = 0; m < NS; ++m) acc[m][0] = acc[m][1] = acc[m][2] = acc[m][3] = 0.0f;
    int blk_next = KVTC__TC_BLK(NST - 1); /* block ids are read one iteration before their tile is issued */
    for (int j = 0; j < n_mine; ++j) {
        const int blk_after = KVTC__TC_BLK(j + NST);
        KVTC__TC_ISSUE(j + NST - 1, blk_next);
        kvtc__cp_wait<NST - 1>(); /* tile j's group has landed */
        kvtc__tile<D, KB, VB> cur;
        kvtc__tc_read<D, KB, VB>(ring + (j % NST) * Stage::BYTES, KVTC__TC_TOK(j) % a.block_size, t_end - KVTC__TC_TOK(j), g,
                                 lane, cur);
        /* ---- scores S[token][head] = n_k <K row, q'> (log2 units), rows g and g + 8, heads 2t, 2t + 1 */
        float sc[4][4];
#pragma unroll
        for (int u = 0; u < 4; ++u) sc[u][0] = sc[u][1] = sc[u][2] = sc[u][3] = 0.0f;
#pragma unroll
        for (int s = 0; s < NS; ++s) {
            const unsigned a0 = kvtc__pair<KB>(cur.k0, 2 * s, klut, lane4), a1 = kvtc__pair<KB>(cur.k1, 2 * s, klut, lane4);
            const unsigned a2 = kvtc__pair<KB>(cur.k0, 2 * s + 1, klut, lane4);
            const unsigned a3 = kvtc__pair<KB>(cur.k1, 2 * s + 1, klut, lane4);
            const uint4 qf = QR ? qreg[QR ? s : 0] : s_qf[s * 32 + lane];
            kvtc__mma16816(sc[2 * (s & 1)], a0, a1, a2, a3, qf.x, qf.y);
            kvtc__mma16816(sc[2 * (s & 1) + 1], a0, a1, a2, a3, qf.z, qf.w);
        }
#pragma unroll
        for (int e = 0; e < 4; ++e) sc[0][e] = (sc[0][e] + sc[2][e]) + (sc[1][e] + sc[3][e]);
        const float s0[2] = {cur.ok0 ? sc[0][0] * cur.nk0 : -INFINITY, cur.ok0 ? sc[0][1] * cur.nk0 : -INFINITY};
        const float s1[2] = {cur.ok1 ? sc[0][2] * cur.nk1 : -INFINITY, cur.ok1 ? sc[0][3] * cur.nk1 : -INFINITY};
        const float lv0 = cur.nv0 > 0.0f ? kvtc__lg2(cur.nv0) : -INFINITY, lv1 = cur.nv1 > 0.0f ? kvtc__lg2(cur.nv1) : -INFINITY;
        /* ---- online softmax: ms, l for the scores; mv for s + log2(n_v), the exponent of the weights.
         * The maxima start at the finite KVTC__TC_NONE, so no exponent is ever -inf - -inf. */
        float w0[2], w1[2], cv[2];
        bool grow = false;
#pragma unroll
        for (int jj = 0; jj < 2; ++jj) {
            const float ms_new = fmaxf(ms[jj], kvtc__max_over_g(fmaxf(s0[jj], s1[jj])));
            const float mv_new = fmaxf(mv[jj], kvtc__max_over_g(fmaxf(s0[jj] + lv0, s1[jj] + lv1)));
            l[jj] = l[jj] * kvtc__ex2(ms[jj] - ms_new) + (kvtc__ex2(s0[jj] - ms_new) + kvtc__ex2(s1[jj] - ms_new));
            ms[jj] = ms_new;
            cv[jj] = kvtc__ex2(mv[jj] - mv_new);
            grow |= mv_new != mv[jj];
            mv[jj] = mv_new;
            w0[jj] = kvtc__ex2(s0[jj] + lv0 - mv_new);
            w1[jj] = kvtc__ex2(s1[jj] + lv1 - mv_new);
        }
        if (__any_sync(KVTC__FULL, grow)) { /* a new maximum: rescale (rare after the first tiles) */
#pragma unroll
            for (int m = 0; m < NS; ++m) acc[m][0] *= cv[0], acc[m][1] *= cv[1], acc[m][2] *= cv[0], acc[m][3] *= cv[1];
        }
        /* ---- O'^T += V^T P^T: P^T's B fragment is the transpose of the weights' C layout */
        const unsigned pb0 = kvtc__trans8x8(kvtc__half2_bits(w0[0], w0[1]));
        const unsigned pb1 = kvtc__trans8x8(kvtc__half2_bits(w1[0], w1[1]));
#pragma unroll
        for (int m = 0; m < NS; ++m) {
            const unsigned hA = kvtc__pair<VB>(cur.v[0], m, vlut, lane4), hB = kvtc__pair<VB>(cur.v[1], m, vlut, lane4);
            const unsigned hC = kvtc__pair<VB>(cur.v[2], m, vlut, lane4), hD = kvtc__pair<VB>(cur.v[3], m, vlut, lane4);
            kvtc__mma16816(acc[m], __byte_perm(hA, hB, 0x5410u), __byte_perm(hA, hB, 0x7632u), __byte_perm(hC, hD, 0x5410u),
                           __byte_perm(hC, hD, 0x7632u), pb0, pb1);
        }
        blk_next = blk_after;
    }
    kvtc__cp_wait<0>();
#undef KVTC__TC_ISSUE
#undef KVTC__TC_BLK
#undef KVTC__TC_TOK
    /* ---- this warp's partials in the finishing layout: acc scaled from the mv to the ms reference */
    float f[2];
#pragma unroll
    for (int jj = 0; jj < 2; ++jj) {
        l[jj] += __shfl_xor_sync(KVTC__FULL, l[jj], 4);
        l[jj] += __shfl_xor_sync(KVTC__FULL, l[jj], 8);
        l[jj] += __shfl_xor_sync(KVTC__FULL, l[jj], 16);
        f[jj] = kvtc__ex2(mv[jj] - ms[jj]);
    }
    __syncthreads(); /* tables and rings are done with: the merge area overlays them */
    float *w_acc = s_acc + (warp * KVTC__ATTN_GMAX + 2 * t) * D + g * (D / 8);
#pragma unroll
    for (int m = 0; m < NS; ++m) {
        w_acc[2 * m] = acc[m][0] * f[0], w_acc[D + 2 * m] = acc[m][1] * f[1];
        w_acc[2 * m + 1] = acc[m][2] * f[0], w_acc[D + 2 * m + 1] = acc[m][3] * f[1];
    }
    if (g == 0)
#pragma unroll
        for (int jj = 0; jj < 2; ++jj)
            s_ml[(warp * KVTC__ATTN_GMAX + 2 * t + jj) * 2] = ms[jj], s_ml[(warp * KVTC__ATTN_GMAX + 2 * t + jj) * 2 + 1] = l[jj];
    __syncthreads();
    kvtc__attn_finish<EPL>(a, s_acc, s_ml, s_buf, G, h, b, split, warp, lane);
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

/* Shared-memory layout of kvtc__k_attn_tc: the pair tables and the 4 warps' rings from offset 0 (the warp
 * merge area overlays them after the loop), then the queries, the query fragments, rotation scratch,
 * per-warp max and sum. */
typedef struct kvtc__attn_tc_layout {
    unsigned vlut, ring, q, qf, buf, ml, bytes;
} kvtc__attn_tc_layout;
static unsigned kvtc__pairs_bytes(int bits) { return (unsigned)((bits == 8 ? 256 : 1 << (2 * bits)) * 32 * 4); }
static kvtc__attn_tc_layout kvtc__attn_tc_layout_of(int d, int kb, int vb, int share) {
    kvtc__attn_tc_layout l;
    const unsigned tables = kvtc__pairs_bytes(kb) + (share ? 0u : kvtc__pairs_bytes(vb));
    const unsigned front = tables + 4u * KVTC__TC_STAGES * (unsigned)kvtc__tc_stage_bytes(d, kb, vb);
    const unsigned merge = 4u * KVTC__ATTN_GMAX * d * 4u;
    l.vlut = share ? 0u : kvtc__pairs_bytes(kb);
    l.ring = tables;
    l.q = ((front > merge ? front : merge) + 15u) & ~15u;
    l.qf = l.q + KVTC__ATTN_GMAX * d * 4u;
    l.buf = l.qf + (unsigned)(d / 16) * 32u * 16u;
    l.ml = l.buf + 4u * d * 4u;
    l.bytes = l.ml + 4u * KVTC__ATTN_GMAX * 2u * 4u;
    return l;
}
/* K and V use the same pair table when their codebooks are equal. */
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
    return p->kernel != KVTC_CUDA_ATTN_SCALAR && a->cache.n_kv_heads > 0 && a->n_q_heads % a->cache.n_kv_heads == 0 &&
           kvtc_cuda_attn_tensor_supported(kc, vc, a->n_q_heads / a->cache.n_kv_heads, a->cache.block_size) == KVTC_OK;
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
        if (per_sm > (d == 256 ? 2 : 3)) per_sm = d == 256 ? 2 : 3;
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
    tc = kvtc__attn_uses_tc(kc, vc, p);
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
    a.blocks_per_split = (ap->max_blocks_per_seq + ns - 1) / ns;
    if (a.blocks_per_split < 1) a.blocks_per_split = 1;
    a.q_dtype = p->q_dtype == KVTC_DTYPE_DEFAULT ? KVTC_DTYPE_F16 : p->q_dtype;
    a.out_dtype = p->out_dtype == KVTC_DTYPE_DEFAULT ? KVTC_DTYPE_F16 : p->out_dtype;
    a.rotated_output = p->rotated_output;
    a.scale_log2 = (ap->scale != 0.0f ? ap->scale : (float)(1.0 / sqrt((double)kc->meta.params.head_dim))) * KVTC__LOG2E;
    if (ns > 1) {
        a.ws_o = (float *)d_workspace;
        a.ws_lse = a.ws_o + (size_t)ap->n_seqs * ap->n_q_heads * ns * (size_t)epl * 32;
    }
    {
        dim3 grid((unsigned)ap->cache.n_kv_heads, (unsigned)ap->n_seqs, (unsigned)ns);
        size_t smem = kvtc__attn_smem(epl, &kc->meta, &vc->meta);
        const int kb = kc->meta.mse_bits, vb = vc->meta.mse_bits, mse = kc->meta.params.method == KVTC_METHOD_TQ_MSE &&
                                                                       vc->meta.params.method == KVTC_METHOD_TQ_MSE &&
                                                                       kc->meta.params.head_dim == epl * 32;
        bool launched = false;
        if (tc) {
            const kvtc__attn_tc_layout lt = kvtc__attn_tc_layout_of(kc->meta.params.head_dim, kb, vb,
                                                                    kvtc__attn_tc_share(&kc->meta, &vc->meta));
            a.tc_vlut = lt.vlut, a.tc_ring = lt.ring, a.tc_q = lt.q, a.tc_qf = lt.qf, a.tc_buf = lt.buf, a.tc_ml = lt.ml;
#define KVTC__TC_LAUNCH(D_, KB_, VB_)                                                                                  \
    if (!launched && kc->meta.params.head_dim == (D_) && kb == (KB_) && vb == (VB_)) {                                  \
        KVTC_CUDA_CHECK(cudaFuncSetAttribute(kvtc__k_attn_tc<D_, KB_, VB_>, cudaFuncAttributeMaxDynamicSharedMemorySize, \
                                             (int)lt.bytes));                                                          \
        kvtc__k_attn_tc<D_, KB_, VB_><<<grid, 128, lt.bytes, stream>>>(a);                                             \
        KVTC_CUDA_CHECK(cudaGetLastError());                                                                           \
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
        if (ns > 1) {
            switch (epl) {
#define KVTC__MERGE_CASE(e)                                                                                            \
    case e:                                                                                                            \
        kvtc__k_attn_merge<e><<<dim3((unsigned)ap->n_q_heads, (unsigned)ap->n_seqs), 32, 0, stream>>>(a);             \
        break;
                KVTC__ATTN_EPL_LIST(KVTC__MERGE_CASE)
#undef KVTC__MERGE_CASE
            }
            KVTC_CUDA_CHECK(cudaGetLastError());
        }
    }
    return KVTC_OK;
}

#endif /* KVTC_CUDA_IMPLEMENTATION */
