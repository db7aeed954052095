// OpenBLAS's choice of kernels, checked against this CPU.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

/// Makes OpenBLAS use kernels for this CPU when its run-time detection fell back to an old
/// core (Debian's OpenBLAS 0.3.21 takes CPUs newer than it, such as Sapphire and Emerald Rapids
/// Xeons, for "Prescott" and runs SSE3 kernels at a third of the speed): it re-runs OpenBLAS's
/// own initialisation with OPENBLAS_CORETYPE set to SkylakeX (AVX-512) or Haswell (AVX2 + FMA).
/// Left alone: a core OpenBLAS recognised, a user's own OPENBLAS_CORETYPE, and a BLAS that is
/// not a dynamic-architecture OpenBLAS. Call before the first BLAS call, from one thread.
/// Returns 1 when it changed the core, 0 otherwise.
int lm_blas_prepare(void);

/// The core OpenBLAS runs ("SkylakeX", "Haswell", "Prescott"; "unknown" for another BLAS),
/// and the core it detected by itself before `lm_blas_prepare` (the same when unchanged).
const char *lm_blas_core(void);
const char *lm_blas_detected_core(void);

/// This CPU's vector features, space-separated ("avx2 fma avx512f avx512bw avx512vl avx512dq
/// avx512vnni avx512bf16 …").
const char *lm_cpu_features(void);

#ifdef __cplusplus
}
#endif
