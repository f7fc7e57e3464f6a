# kvtc - build, test, demo and benchmarks.
#   make demo       compress the shipped real KV sample at several settings, print one table
#   make test       build every header (C99/C11/C++11/C++17, gcc and clang, nvcc compile-only),
#                   run the CPU tests plainly and under ASan+UBSan, and the GPU tests (SKIP without a GPU)
#   make bench      CPU benchmarks
#   make gpu-test   GPU tests (on a machine with an NVIDIA GPU, sm_90 by default), then compute-sanitizer
#                   memcheck and racecheck on their quick modes
#   make gpu-bench  GPU benchmarks (PyTorch for the fp16 SDPA baseline; cuBLAS, from the CUDA Toolkit, for the
#                   GEMM reference column of the KVTC bench)
CC ?= cc
CXX ?= c++
NVCC ?= nvcc
CUDA_ARCH ?= sm_90
B := build
WARN := -Wall -Wextra -Werror -pedantic
CFLAGS ?= -O2
SAN := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
HEADERS := kvtc.h codebooks.h
CUDA_INC ?= $(dir $(shell command -v $(NVCC) 2>/dev/null))../include
NVCC_FLAGS := -std=c++17 -O3 -arch=$(CUDA_ARCH) -I. -Xcompiler -Wall

.PHONY: all test demo bench compile-check codebooks check-codebooks gpu-test gpu-bench clean

all: $(B)/test_kvtc $(B)/demo

$(B):
	@mkdir -p $(B)

# ---- CPU tests ---------------------------------------------------------------
# tests/test_tc.c (KVTC transform coding) and tests/test_real.c (real SmolLM2 keys and values from
# data/smollm2_kv.bin) join the runner when present
TC_SRC := $(wildcard tests/test_tc.c)
REAL_SRC := $(wildcard tests/test_real.c)
TEST_SRC := tests/test_kvtc.c $(TC_SRC) $(REAL_SRC)
TEST_DEFS := $(if $(TC_SRC),-DKVTC_TEST_TC) $(if $(REAL_SRC),-DKVTC_TEST_REAL)
TEST_DEPS := $(TEST_SRC) tests/test_common.h $(HEADERS)

$(B)/test_kvtc: $(TEST_DEPS) | $(B)
	$(CC) -std=c99 $(CFLAGS) $(WARN) $(TEST_DEFS) -I. $(TEST_SRC) -lm -o $@

$(B)/test_kvtc_san: $(TEST_DEPS) | $(B)
	$(CC) -std=c99 $(SAN) -Wall -Wextra $(TEST_DEFS) -I. $(TEST_SRC) -lm -o $@

# ---- every header in every language ------------------------------------------
compile-check: $(HEADERS) | $(B)
	@set -e; for cc in gcc clang; do for std in c99 c11; do \
	  echo "$$cc -std=$$std"; \
	  $$cc -std=$$std $(WARN) -I. tests/compile_c99.c tests/compile_decl.c -lm -o $(B)/compile_$${cc}_$$std; \
	  ./$(B)/compile_$${cc}_$$std; done; done
	@set -e; for cxx in g++ clang++; do for std in c++11 c++17; do \
	  echo "$$cxx -std=$$std"; \
	  $$cxx -std=$$std $(WARN) -I. -c tests/compile_cpp.cpp -o $(B)/cpp_main.o; \
	  $$cxx -std=$$std $(WARN) -I. -c tests/compile_static.cpp -o $(B)/cpp_static.o; \
	  $$cxx -std=$$std $(WARN) -I. -x c++ -c tests/compile_decl.c -o $(B)/cpp_decl.o; \
	  $$cxx $(B)/cpp_main.o $(B)/cpp_static.o $(B)/cpp_decl.o -lm -o $(B)/compile_$${cxx}_$$std; \
	  ./$(B)/compile_$${cxx}_$$std; done; done
	@if command -v $(NVCC) >/dev/null; then echo "$(NVCC) -std=c++17 (compile only)"; \
	  $(NVCC) $(NVCC_FLAGS) -x cu -c tests/compile_c99.c -o $(B)/nvcc_kvtc.o; \
	else echo "nvcc not found: CUDA compile check not run"; exit 1; fi
	@set -e; for cc in gcc clang; do echo "kvtc_cuda.cuh declarations as C99, $$cc"; \
	  $$cc -std=c99 $(WARN) -I. -isystem $(CUDA_INC) -c tests/compile_cuda_decl.c -o $(B)/cuda_decl_$$cc.o; done

# codebooks.h must be exactly what the generator prints
$(B)/gen_codebooks: tools/gen_codebooks.c kvtc.h | $(B)
	$(CC) -std=c99 -O2 $(WARN) -I. $< -lm -o $@
codebooks: $(B)/gen_codebooks
	./$(B)/gen_codebooks > codebooks.h
check-codebooks: $(B)/gen_codebooks
	./$(B)/gen_codebooks | cmp - codebooks.h && echo "codebooks.h matches its generator"

# KVTC records and calibration blobs: replays built-in mutations under ASan+UBSan
$(B)/fuzz_tc: tests/fuzz_tc.c $(HEADERS) | $(B)
	$(CC) -std=c99 $(SAN) -Wall -Wextra -I. $< -lm -o $@

test: compile-check check-codebooks $(B)/test_kvtc $(B)/test_kvtc_san $(B)/fuzz_tc $(B)/test_kvtc_cuda $(B)/test_tc_cuda
	./$(B)/fuzz_tc
	@bash tests/run_all.sh ./$(B)/test_kvtc ./$(B)/test_kvtc_san ./$(B)/test_kvtc_cuda ./$(B)/test_tc_cuda

# ---- GPU ---------------------------------------------------------------------
$(B)/test_kvtc_cuda: tests/test_kvtc_cuda.cu kvtc_cuda.cuh $(TEST_DEPS) | $(B)
	$(NVCC) $(NVCC_FLAGS) tests/test_kvtc_cuda.cu -o $@
# KVTC on the GPU; KVTC_CUDA_MINIMAL trims the attention kernels it does not use, for compile time
$(B)/test_tc_cuda: tests/test_tc_cuda.cu kvtc_cuda.cuh $(TEST_DEPS) | $(B)
	$(NVCC) $(NVCC_FLAGS) -DKVTC_CUDA_MINIMAL tests/test_tc_cuda.cu -o $@
$(B)/bench_tc_cuda: bench/bench_tc_cuda.cu kvtc_cuda.cuh $(HEADERS) | $(B)
	$(NVCC) $(NVCC_FLAGS) -DKVTC_CUDA_MINIMAL -DBENCH_CUBLAS $< -lcublas -o $@
$(B)/bench_cuda_codec: bench/bench_cuda_codec.cu kvtc_cuda.cuh $(HEADERS) | $(B)
	$(NVCC) $(NVCC_FLAGS) $< -o $@

gpu-test: $(B)/test_kvtc_cuda $(B)/test_tc_cuda
	./$(B)/test_kvtc_cuda
	./$(B)/test_tc_cuda
	compute-sanitizer --tool memcheck --error-exitcode 1 ./$(B)/test_kvtc_cuda quick
	compute-sanitizer --tool racecheck --error-exitcode 1 ./$(B)/test_kvtc_cuda quick
	compute-sanitizer --tool memcheck --error-exitcode 1 ./$(B)/test_tc_cuda quick
	compute-sanitizer --tool racecheck --error-exitcode 1 ./$(B)/test_tc_cuda quick
$(B)/libkvtc_bench_attn.so: bench/bench_attn_lib.cu kvtc_cuda.cuh $(HEADERS) | $(B)
	$(NVCC) $(NVCC_FLAGS) -shared -Xcompiler -fPIC $< -o $@

gpu-bench: $(B)/bench_cuda_codec $(B)/libkvtc_bench_attn.so $(B)/bench_tc_cuda
	./$(B)/bench_cuda_codec
	python3 bench/bench_attn.py
	./$(B)/bench_tc_cuda

# ---- demo and benchmarks -----------------------------------------------------
$(B)/demo: examples/demo.c $(HEADERS) | $(B)
	$(CC) -std=c99 -O2 $(WARN) -I. $< -lm -o $@
demo: $(B)/demo
	./$(B)/demo

$(B)/bench_cpu: bench/bench_cpu.c $(HEADERS) | $(B)
	$(CC) -std=c99 -O2 -march=native $(WARN) -I. $< -lm -o $@
$(B)/bench_kvtc: bench/bench_kvtc.c $(HEADERS) | $(B)
	$(CC) -std=c99 -O2 -march=native $(WARN) -I. $< -lm -o $@
bench: $(B)/bench_cpu $(B)/bench_kvtc
	./$(B)/bench_cpu
	./$(B)/bench_kvtc

clean:
	rm -rf $(B)
