/* Builds kvtc.h as C (C99 and C11, gcc and clang, -Wall -Wextra -Werror -pedantic)
 * together with tests/compile_decl.c, a second translation unit that includes
 * only the declarations, so duplicate or missing symbols fail to link. */
#define KVTC_IMPLEMENTATION
#include "kvtc.h"
#include "kvtc.h" /* a second include is harmless */

int kvtc_decl_only_unit(void);

int main(void) {
    kvtc_codec_params p = {0};
    kvtc_codec *c = 0;
    p.head_dim = 64;
    p.bits = 4;
    if (kvtc_codec_create(&p, &c) != KVTC_OK) return 1;
    kvtc_codec_destroy(c);
    return kvtc_decl_only_unit();
}
