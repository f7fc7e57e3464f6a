/* Fused decode attention timing, called from bench/bench_attn.py (which times fp16 SDPA in the same process).
 * nvcc -std=c++17 -O3 -arch=sm_90 -I. -shared -Xcompiler -fPIC bench/bench_attn_lib.cu -o build/libkvtc_bench_attn.so
 * Correctness is the GPU tests' job (tests/test_kvtc_cuda.cu); this fills the caches with random codes and
 * fp16 norms of 0.1, then times kvtc_cuda_attn_decode: 20 calls captured in one CUDA graph, CUDA events
 * around each graph launch, median of reps launches after 3 warm-ups (per-call time = launch time / 20). */
#define KVTC_IMPLEMENTATION
#define KVTC_CUDA_IMPLEMENTATION
#include "kvtc_cuda.cuh"
#include <algorithm>
#include <vector>

__global__ void fill_random(unsigned *p, size_t n, unsigned seed) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        unsigned h = (unsigned)i * 2654435761u ^ seed;
        h ^= h >> 13, h *= 0x5bd1e995u, h ^= h >> 15;
        p[i] = h;
    }
}
/* every 16-bit word of [from, to) of each page := fp16 0.1 */
__global__ void fill_scales(unsigned char *cache, size_t n_pages, size_t page, size_t from, size_t to) {
    size_t words = (to - from) / 2;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n_pages * words; i += (size_t)gridDim.x * blockDim.x)
        *(unsigned short *)(cache + (i / words) * page + from + 2 * (i % words)) = 0x2e66;
}

struct dev_codec {
    kvtc_codec *h = nullptr;
    kvtc_cuda_codec d;
    void *mem = nullptr;
    ~dev_codec() {
        kvtc_codec_destroy(h);
        cudaFree(mem);
    }
};

static int make(dev_codec &c, kvtc_method m, int dim, int bits, uint64_t seed) {
    kvtc_codec_params p;
    size_t bytes;
    memset(&p, 0, sizeof p);
    p.method = m, p.head_dim = dim, p.bits = bits, p.seed = seed;
    if (kvtc_codec_create(&p, &c.h) || kvtc_cuda_codec_bytes(c.h, &bytes) || cudaMalloc(&c.mem, bytes)) return 0;
    return kvtc_cuda_codec_init(c.h, c.mem, bytes, &c.d, 0) == KVTC_OK;
}

static void *cache_of(const dev_codec &c, const kvtc_cache_params &cp, size_t *total) {
    size_t page;
    void *p = nullptr;
    kvtc_layout l;
    if (kvtc_cache_bytes(c.h, &cp, &page, total) || cudaMalloc(&p, *total)) return nullptr;
    fill_random<<<4096, 256>>>((unsigned *)p, *total / 4, 12345u);
    kvtc_codec_layout(c.h, cp.block_size, &l);
    fill_scales<<<4096, 256>>>((unsigned char *)p, (size_t)cp.n_blocks * cp.n_kv_heads, page, l.scales, l.qjl);
    if (l.bytes > l.rnorms) fill_scales<<<4096, 256>>>((unsigned char *)p, (size_t)cp.n_blocks * cp.n_kv_heads, page, l.rnorms, l.bytes);
    return p;
}

/* Returns 0 on success; times in microseconds; bytes = compressed K+V bytes the context occupies, plus the
 * exact tokens' fp16 bytes. ctx compressed tokens per sequence, and n_exact exact fp16 tokens (values 0.1). */
extern "C" int kvtc_bench_attn(int batch, int n_q, int n_kv, int d, int ctx, int kmethod, int kbits, int vmethod,
                               int vbits, int kernel, int n_split, int n_exact, int reps, double *us, double *p10, double *p90,
                               double *bytes, int *splits, int *used_tensor) {
    dev_codec kc, vc;
    if (!make(kc, (kvtc_method)kmethod, d, kbits, 1) || !make(vc, (kvtc_method)vmethod, d, vbits, 2)) return 1;
    const int bs = 16, max_blocks = (ctx + bs - 1) / bs;
    kvtc_cuda_attn_params p;
    memset(&p, 0, sizeof p);
    p.attn.cache.block_size = bs;
    p.attn.cache.n_kv_heads = n_kv;
    p.attn.cache.n_blocks = batch * max_blocks;
    p.attn.n_seqs = batch;
    p.attn.n_q_heads = n_q;
    p.attn.max_blocks_per_seq = max_blocks;
    p.q_dtype = KVTC_DTYPE_F16;
    p.out_dtype = KVTC_DTYPE_F16;
    cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    p.n_sms = prop.multiProcessorCount;
    p.kernel = (kvtc_cuda_attn_kernel)kernel;
    p.n_split = n_split; /* 0: the library's choice */
    const size_t x_bytes = (size_t)batch * n_kv * n_exact * d * 2;
    void *dxk = nullptr, *dxv = nullptr, *dxl = nullptr;
    if (n_exact > 0) {
        std::vector<int> xl(batch, n_exact);
        if (cudaMalloc(&dxk, x_bytes) || cudaMalloc(&dxv, x_bytes) || cudaMalloc(&dxl, batch * 4)) return 4;
        fill_scales<<<256, 256>>>((unsigned char *)dxk, 1, 0, 0, x_bytes);
        fill_scales<<<256, 256>>>((unsigned char *)dxv, 1, 0, 0, x_bytes);
        cudaMemcpy(dxl, xl.data(), batch * 4, cudaMemcpyHostToDevice);
        p.attn.max_exact = n_exact;
        p.attn.exact_k = (const uint16_t *)dxk, p.attn.exact_v = (const uint16_t *)dxv, p.attn.exact_lens = (const int *)dxl;
    }
    if (kvtc_cuda_attn_supported(&kc.d, &vc.d, n_q / n_kv)) return 2;
    *used_tensor = kernel != KVTC_CUDA_ATTN_SCALAR && kvtc_cuda_attn_tensor_supported(&kc.d, &vc.d, n_q / n_kv, bs) == KVTC_OK;
    size_t ktot, vtot, ws;
    void *kcache = cache_of(kc, p.attn.cache, &ktot), *vcache = cache_of(vc, p.attn.cache, &vtot);
    if (!kcache || !vcache) return 3;
    std::vector<int> bt((size_t)batch * max_blocks), lens(batch, ctx);
    for (size_t i = 0; i < bt.size(); ++i) bt[i] = (int)i;
    void *dbt, *dl, *dq, *dout, *dws = nullptr;
    kvtc_cuda_attn_workspace_bytes(&kc.d, &vc.d, &p, &ws);
    kvtc_cuda_attn_splits(&kc.d, &vc.d, &p, splits);
    if (cudaMalloc(&dbt, bt.size() * 4) || cudaMalloc(&dl, batch * 4) || cudaMalloc(&dq, (size_t)batch * n_q * d * 2) ||
        cudaMalloc(&dout, (size_t)batch * n_q * d * 2) || (ws && cudaMalloc(&dws, ws)))
        return 4;
    cudaMemcpy(dbt, bt.data(), bt.size() * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dl, lens.data(), batch * 4, cudaMemcpyHostToDevice);
    fill_random<<<256, 256>>>((unsigned *)dq, (size_t)batch * n_q * d / 2, 7u);
    fill_scales<<<256, 256>>>((unsigned char *)dq, 1, 0, 0, (size_t)batch * n_q * d * 2); /* q := 0.1 */
    /* INNER calls captured in one CUDA graph, so launch overhead does not count; median over reps graph launches */
    const int INNER = 20;
    cudaStream_t stream;
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    cudaEvent_t e0, e1;
    kvtc_status st = KVTC_OK;
    if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) || cudaEventCreate(&e0) || cudaEventCreate(&e1)) return 4;
    if (cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal)) return 4;
    for (int i = 0; i < INNER && st == KVTC_OK; ++i)
        st = kvtc_cuda_attn_decode(&kc.d, &vc.d, &p, dq, kcache, ktot, vcache, vtot, (const int *)dbt, (const int *)dl,
                                   dout, (size_t)batch * n_q * d, nullptr, dws, ws, stream);
    if (cudaStreamEndCapture(stream, &graph) || st != KVTC_OK || cudaGraphInstantiate(&exec, graph, 0)) return 5;
    std::vector<double> t;
    for (int i = 0; i < reps + 3; ++i) {
        float ms;
        cudaEventRecord(e0, stream);
        cudaGraphLaunch(exec, stream);
        cudaEventRecord(e1, stream);
        cudaEventSynchronize(e1);
        cudaEventElapsedTime(&ms, e0, e1);
        if (i >= 3) t.push_back(ms * 1e3 / INNER);
    }
    cudaGraphExecDestroy(exec), cudaGraphDestroy(graph), cudaStreamDestroy(stream), cudaEventDestroy(e0), cudaEventDestroy(e1);
    std::sort(t.begin(), t.end());
    if (st != KVTC_OK || cudaDeviceSynchronize() != cudaSuccess || t.empty()) return 5;
    *us = t[t.size() / 2], *p10 = t[t.size() / 10], *p90 = t[t.size() * 9 / 10];
    *bytes = (double)(ktot + vtot) * ((double)ctx / (max_blocks * bs)) + 2.0 * x_bytes;
    cudaFree(kcache), cudaFree(vcache), cudaFree(dbt), cudaFree(dl), cudaFree(dq), cudaFree(dout), cudaFree(dws);
    cudaFree(dxk), cudaFree(dxv), cudaFree(dxl);
    return 0;
}
