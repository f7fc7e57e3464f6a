/* Declarations-only translation unit, linked with compile_c99.c / compile_cpp.cpp. */
#include "kvtc.h"

#ifdef __cplusplus
extern "C"
#endif
int kvtc_decl_only_unit(void) {
    return kvtc_status_string(KVTC_OK)[0] == 'o' ? 0 : 1;
}
