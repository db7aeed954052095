// OpenBLAS's choice of kernels, checked against this CPU (see blas_core.h).
#define _GNU_SOURCE
#include "blas_core.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

typedef char *(*corename_fn)(void);
typedef void (*void_fn)(void);

static char detected[32] = "unknown";

static const char *current_core(void) {
    corename_fn name = (corename_fn)dlsym(RTLD_DEFAULT, "openblas_get_corename");
    return name ? name() : "unknown";
}

/// Cores OpenBLAS 0.3.21 picks on its own for CPUs it knows, with AVX2 kernels or better.
static int modern(const char *core) {
    static const char *names[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", NULL};
    for (int i = 0; names[i]; i++)
        if (strcmp(core, names[i]) == 0) return 1;
    return 0;
}

static int has_avx512(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

int lm_blas_prepare(void) {
    const char *core = current_core();
    strncpy(detected, core, sizeof detected - 1);
    if (getenv("OPENBLAS_CORETYPE") || modern(core)) return 0;
    const char *want = has_avx512() ? "SkylakeX"
                     : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? "Haswell" : NULL;
    void_fn quit = (void_fn)dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit");
    void_fn init = (void_fn)dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init");
    if (!want || !quit || !init) return 0;
    // OpenBLAS reads OPENBLAS_CORETYPE when it initialises; the variable is removed again so
    // that processes this one starts detect for themselves.
    setenv("OPENBLAS_CORETYPE", want, 1);
    quit();
    init();
    unsetenv("OPENBLAS_CORETYPE");
    return strcmp(current_core(), want) == 0;
}

const char *lm_blas_core(void) { return current_core(); }
const char *lm_blas_detected_core(void) { return detected; }

const char *lm_cpu_features(void) {
    static char out[256];
    if (out[0]) return out;
    // __builtin_cpu_supports takes string literals only: one table row per feature.
#define FEATURE(name) {name, __builtin_cpu_supports(name)}
    const struct { const char *name; int has; } features[] = {
        FEATURE("sse4.2"), FEATURE("avx"), FEATURE("avx2"), FEATURE("fma"), FEATURE("f16c"),
        FEATURE("avx512f"), FEATURE("avx512bw"), FEATURE("avx512vl"), FEATURE("avx512dq"),
        FEATURE("avx512vnni"), FEATURE("avx512bf16"), FEATURE("avx512fp16"), FEATURE("amx-tile"),
    };
#undef FEATURE
    size_t n = 0;
    for (size_t i = 0; i < sizeof features / sizeof features[0]; i++) {
        if (!features[i].has) continue;
        size_t len = strlen(features[i].name);
        if (n + len + 2 >= sizeof out) break;
        if (n) out[n++] = ' ';
        memcpy(out + n, features[i].name, len);
        n += len;
    }
    out[n] = 0;
    return out;
}
