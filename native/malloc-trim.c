// glibc's malloc_trim(0) for Perch (runtime/base/malloc-trim.ts; docs/reliability.md "Memory after
// a burst"). After the never-reading attack glibc's main heap keeps free memory under a few live
// blocks near its top, which only malloc_trim gives back: it walks every arena and returns their
// free pages to the kernel. No npm package exposes it, so this is the project's own addon, on
// Node-API alone (node_api.h: one binary for every Node version). Built by native/build.mjs.
//   trim() -> boolean: malloc_trim(0)'s result (true if memory was given back).
//   available: true when built against glibc; on any other C library (musl, macOS) the addon
//   still loads, trim() calls nothing and returns false.
#include <node_api.h>
#ifdef __GLIBC__
#include <malloc.h>
#define PERCH_HAS_MALLOC_TRIM 1
#else
#define PERCH_HAS_MALLOC_TRIM 0
#endif

static napi_value Trim(napi_env env, napi_callback_info info) {
  (void)info;
  int released = 0;
#if PERCH_HAS_MALLOC_TRIM
  released = malloc_trim(0);
#endif
  napi_value result;
  if (napi_get_boolean(env, released != 0, &result) != napi_ok) return NULL;
  return result;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_value fn, available;
  if (napi_create_function(env, "trim", NAPI_AUTO_LENGTH, Trim, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "trim", fn) != napi_ok) return NULL;
  if (napi_get_boolean(env, PERCH_HAS_MALLOC_TRIM, &available) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "available", available) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
