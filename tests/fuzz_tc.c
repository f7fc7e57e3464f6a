/* fuzz_tc.c: fuzz target for KVTC chunk-record decode and calibration-blob load (libFuzzer, or a plain replay main). */
/* build: cc -std=c99 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -I. tests/fuzz_tc.c -lm -o build/fuzz_tc */
/* run:   ./build/fuzz_tc [FILE...]   (no files: a built-in set of valid and mutated records and blobs)
 * libFuzzer: clang -std=c99 -O1 -g -DKVTC_LIBFUZZER -fsanitize=fuzzer,address,undefined -I. tests/fuzz_tc.c -lm \
 *              -o build/fuzz_tc_lf && ./build/fuzz_tc_lf -max_total_time=300 CORPUS_DIR
 *
 * Input: byte 0 selects what the rest is.
 *   bit 0: 0 = a calibration blob (kvtc_tc_calib_load), 1 = a chunk record (kvtc_tc_decode)
 *   bit 1: recompute the blob's/record's checksum first (reaches the field checks behind it)
 *   bit 2: record: write the fixture calibration's id into it (reaches the payload)
 * Records decode with coders of a fixed fixture calibration (p = 16). Any
 * status is fine; a crash, an out-of-bounds access (ASan) or undefined
 * behaviour (UBSan) is the failure. The plain main exits 0 when every
 * input ran, and prints how many were decoded and how many rejected. */
#define KVTC_IMPLEMENTATION
#include "kvtc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_DIM 16
#define FUZZ_MAX_TOKENS 512

typedef struct fuzz_fixture {
    kvtc_tc_calib *cal;
    kvtc_tc *tc;
    void *scratch;
    size_t scratch_bytes;
    float *x;
} fuzz_fixture;

static unsigned long fuzz_ok, fuzz_rejected;

/* The fixture: a calibration of seeded data and one coder (decode reads the
 * widths and quantizer from each record, so one coder serves them all). */
static fuzz_fixture *fuzz_get(void) {
    static fuzz_fixture f;
    static int ready;
    if (!ready) {
        kvtc_tc_calib_params cp;
        kvtc_tc_params tp;
        kvtc_rng r;
        size_t i, n = 400;
        float *x = (float *)malloc(sizeof(float) * n * FUZZ_DIM);
        kvtc_rng_seed(&r, 1);
        for (i = 0; i < n * FUZZ_DIM; ++i) x[i] = (float)(kvtc_rng_gaussian(&r) * (1.0 + (double)(i % FUZZ_DIM)));
        memset(&cp, 0, sizeof cp);
        cp.dim = FUZZ_DIM;
        memset(&tp, 0, sizeof tp);
        tp.budget_bits = 48;
        if (kvtc_tc_calibrate(&cp, x, n, &f.cal) != KVTC_OK || kvtc_tc_create(&tp, f.cal, &f.tc) != KVTC_OK ||
            kvtc_tc_scratch_bytes(f.tc, FUZZ_MAX_TOKENS, &f.scratch_bytes) != KVTC_OK)
            abort();
        free(x);
        f.scratch = malloc(f.scratch_bytes);
        f.x = (float *)malloc(sizeof(float) * FUZZ_MAX_TOKENS * FUZZ_DIM);
        ready = 1;
    }
    return &f;
}

static uint64_t fuzz_u64(const uint8_t *p) {
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}
static void fuzz_put_u64(uint8_t *p, uint64_t v) {
    int i;
    for (i = 0; i < 8; ++i) p[i] = (uint8_t)(v >> (8 * i));
}

/* The checksum of the first `len` bytes, stored at `at`: a calibration blob's (at 40: FNV-1a 64 with those 8
 * bytes as zero) or a chunk record's (at 48: kvtc_tc_record_checksum). */
static void fuzz_reseal(uint8_t *b, size_t size, size_t at, uint64_t len) {
    if (size < 64 || len < 64 || len > size) return;
    memset(b + at, 0, 8);
    fuzz_put_u64(b + at, at == 48 ? kvtc_tc_record_checksum(b, (size_t)len)
                                  : kvtc_fnv1a64(b, (size_t)len, KVTC_FNV1A64_INIT));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_fixture *f = fuzz_get();
    uint8_t *b;
    size_t n;
    kvtc_status st;
    int mode;
    if (size < 1) return 0;
    mode = data[0];
    n = size - 1;
    b = (uint8_t *)malloc(n ? n : 1); /* exact size: ASan sees any overread */
    memcpy(b, data + 1, n);
    if (mode & 1) {
        if ((mode & 4) && n >= 40) fuzz_put_u64(b + 32, f->cal->id);
        if ((mode & 2) && n >= 64) fuzz_reseal(b, n, 48, fuzz_u64(b + 40));
        st = kvtc_tc_decode(f->tc, b, n, f->x, (size_t)FUZZ_MAX_TOKENS * FUZZ_DIM, f->scratch, f->scratch_bytes);
    } else {
        kvtc_tc_calib *c = NULL;
        if ((mode & 2) && n >= 64) fuzz_reseal(b, n, 40, 64 + fuzz_u64(b + 32));
        st = kvtc_tc_calib_load(b, n, NULL, &c);
        if (st == KVTC_OK) { /* a loaded calibration must be usable */
            kvtc_tc_params tp;
            kvtc_tc *tc = NULL;
            memset(&tp, 0, sizeof tp);
            tp.budget_bits = 8;
            if (kvtc_tc_create(&tp, c, &tc) == KVTC_OK) kvtc_tc_destroy(tc);
        }
        kvtc_tc_calib_destroy(c);
    }
    if ((int)st < 0 || st >= KVTC_STATUS_COUNT) abort(); /* not a status code */
    if (st == KVTC_OK) ++fuzz_ok;
    else ++fuzz_rejected;
    free(b);
    return 0;
}

#if !defined(KVTC_LIBFUZZER) && !defined(FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION)
/* Run one input: mode byte + bytes. */
static void fuzz_run(int mode, const uint8_t *bytes, size_t n) {
    uint8_t *in = (uint8_t *)malloc(n + 1);
    in[0] = (uint8_t)mode;
    memcpy(in + 1, bytes, n);
    LLVMFuzzerTestOneInput(in, n + 1);
    free(in);
}

/* Every truncation, every single-byte flip, and seeded random mutations of
 * one valid input, under each mode. */
static void fuzz_mutate(int kind, const uint8_t *valid, size_t n, uint64_t seed) {
    uint8_t *m = (uint8_t *)malloc(n);
    kvtc_rng r;
    size_t i, k;
    int mode;
    kvtc_rng_seed(&r, seed);
    for (mode = 0; mode < 8; mode += 2) {
        int md = kind | mode;
        if (kind == 0 && (mode & 4)) continue;
        fuzz_run(md, valid, n);
        for (i = 0; i < n; ++i) fuzz_run(md, valid, i);
        for (i = 0; i < n; ++i) {
            memcpy(m, valid, n);
            m[i] ^= (uint8_t)(1u << (kvtc_rng_u64(&r) & 7));
            fuzz_run(md, m, n);
            m[i] = (uint8_t)kvtc_rng_u64(&r);
            fuzz_run(md, m, n);
        }
        for (i = 0; i < 3000; ++i) {
            size_t flips = 1 + (size_t)kvtc_rng_below(&r, 8), len = n;
            memcpy(m, valid, n);
            for (k = 0; k < flips; ++k) m[kvtc_rng_below(&r, n)] = (uint8_t)kvtc_rng_u64(&r);
            if (i % 5 == 0) len = (size_t)kvtc_rng_below(&r, n + 1);
            if (i % 7 == 0 && n >= 64) { /* a header field set to an extreme */
                size_t at = 8 + 4 * (size_t)kvtc_rng_below(&r, 8);
                static const uint32_t ext[5] = {0, 1, 0x7fffffffu, 0xffffffffu, 0x10000u};
                uint32_t v = ext[kvtc_rng_below(&r, 5)];
                for (k = 0; k < 4; ++k) m[at + k] = (uint8_t)(v >> (8 * k));
            }
            fuzz_run(md, m, len);
        }
    }
    free(m);
}

/* Valid records of the fixture calibration in several configurations. */
static void fuzz_builtin(void) {
    fuzz_fixture *f = fuzz_get();
    static const struct { int budget, max_bits, sink, window; kvtc_tc_quantizer q; size_t n; } cfg[] = {
        {48, 0, 0, 0, KVTC_TC_QUANT_DEFAULT, 150},                  /* 4 sink + 128 window + 18 coded */
        {40, 0, 2, 3, KVTC_TC_QUANT_UNIFORM, 30},
        {120, 12, KVTC_TC_NONE, KVTC_TC_NONE, KVTC_TC_QUANT_GAUSSIAN, 20}, /* widths > 8: UNIFORM fallback */
        {5, 0, 1, KVTC_TC_NONE, KVTC_TC_QUANT_GAUSSIAN, 9},
        {256, 16, KVTC_TC_NONE, 1, KVTC_TC_QUANT_UNIFORM, 6},
    };
    float x[400 * FUZZ_DIM];
    size_t ci, i, bytes, sb;
    kvtc_rng r;
    kvtc_rng_seed(&r, 2);
    for (i = 0; i < sizeof x / sizeof x[0]; ++i) x[i] = (float)(kvtc_rng_gaussian(&r) * 2.0);
    for (ci = 0; ci < sizeof cfg / sizeof cfg[0]; ++ci) {
        kvtc_tc_params tp;
        kvtc_tc *tc;
        uint8_t *rec;
        void *scratch;
        memset(&tp, 0, sizeof tp);
        tp.budget_bits = cfg[ci].budget;
        tp.max_bits = cfg[ci].max_bits;
        tp.n_sink = cfg[ci].sink;
        tp.n_window = cfg[ci].window;
        tp.quantizer = cfg[ci].q;
        if (kvtc_tc_create(&tp, f->cal, &tc) != KVTC_OK || kvtc_tc_chunk_bytes(tc, cfg[ci].n, &bytes) != KVTC_OK ||
            kvtc_tc_scratch_bytes(tc, cfg[ci].n, &sb) != KVTC_OK)
            abort();
        rec = (uint8_t *)malloc(bytes);
        scratch = malloc(sb);
        if (kvtc_tc_encode(tc, x, cfg[ci].n, rec, bytes, scratch, sb) != KVTC_OK) abort();
        fuzz_mutate(1, rec, bytes, 100 + ci);
        free(rec);
        free(scratch);
        kvtc_tc_destroy(tc);
    }
    {
        uint8_t *blob;
        if (kvtc_tc_calib_saved_bytes(f->cal, &bytes) != KVTC_OK) abort();
        blob = (uint8_t *)malloc(bytes);
        if (kvtc_tc_calib_save(f->cal, blob, bytes) != KVTC_OK) abort();
        fuzz_mutate(0, blob, bytes, 200);
        free(blob);
    }
}

int main(int argc, char **argv) {
    int i;
    if (argc < 2) {
        fuzz_builtin();
    } else {
        for (i = 1; i < argc; ++i) {
            FILE *fp = fopen(argv[i], "rb");
            uint8_t *buf;
            long len;
            if (!fp || fseek(fp, 0, SEEK_END) != 0 || (len = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0) {
                fprintf(stderr, "fuzz_tc: cannot read %s\n", argv[i]);
                return 2;
            }
            buf = (uint8_t *)malloc((size_t)len + 1);
            if (fread(buf, 1, (size_t)len, fp) != (size_t)len) {
                fprintf(stderr, "fuzz_tc: cannot read %s\n", argv[i]);
                return 2;
            }
            fclose(fp);
            LLVMFuzzerTestOneInput(buf, (size_t)len);
            free(buf);
        }
    }
    printf("fuzz_tc: %lu inputs, %lu decoded or loaded, %lu rejected, no crash\n", fuzz_ok + fuzz_rejected, fuzz_ok,
           fuzz_rejected);
    return 0;
}
#endif
