/* kvtc_cuda.cuh's declarations as plain C (C99, -pedantic -Werror, with the CUDA include path): a C
 * program can call the launchers. Compile-only: nothing here runs. */
#include "kvtc_cuda.cuh"

int kvtc_cuda_decl_unit(void);
int kvtc_cuda_decl_unit(void) {
    kvtc_cuda_attn_params p = {0};
    kvtc_cuda_tc_params t = {0};
    p.kernel = KVTC_CUDA_ATTN_TENSOR;
    t.gemm = KVTC_CUDA_TC_GEMM_DEFAULT;
    return kvtc_cuda_attn_splits(NULL, NULL, &p, NULL) == KVTC_ERR_NULL && t.gemm == KVTC_CUDA_TC_GEMM_DEFAULT;
}
