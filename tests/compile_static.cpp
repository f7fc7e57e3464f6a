// A private KVTC_STATIC copy of the implementation beside the normal one.
#define KVTC_STATIC
#define KVTC_IMPLEMENTATION
#include "kvtc.h"

int kvtc_static_unit() { return kvtc_version()[0] == KVTC_VERSION_STRING[0] ? 0 : 1; }
