// Builds kvtc.h as C++ (C++11 and C++17): once normally, once with KVTC_STATIC
// in tests/compile_static.cpp, both linked with a declarations-only C unit.
#define KVTC_IMPLEMENTATION
#include "kvtc.h"

extern "C" int kvtc_decl_only_unit(void);
int kvtc_static_unit(void);

int main() {
    kvtc_codec_params p = kvtc_codec_params();
    kvtc_codec *c = nullptr;
    p.head_dim = 96;
    p.bits = 3;
    if (kvtc_codec_create(&p, &c) != KVTC_OK) return 1;
    kvtc_codec_destroy(c);
    return kvtc_decl_only_unit() + kvtc_static_unit();
}
