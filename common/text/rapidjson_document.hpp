// RapidJSON's DOM, included so that clang's UBSan does not stop on RapidJSON 1.1's own pointer
// arithmetic: its internal stack starts as a null pointer and `Reserve` adds to it before the first
// allocation ("applying non-zero offset to null pointer", stack.h:117), on every document. The
// attribute covers RapidJSON's functions only; our code stays fully checked. GCC's UBSan does not
// report this, so only clang builds (the fuzz preset) need it.
#pragma once

#if defined(__clang__)
#pragma clang attribute push(__attribute__((no_sanitize("pointer-overflow"))), apply_to = function)
#endif
#include <rapidjson/document.h>
#if defined(__clang__)
#pragma clang attribute pop
#endif
