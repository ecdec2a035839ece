/* Test builds only: the x86 intrinsics of kernels_avx2.h and kernels_avx512.h from SIMDe (portable
 * C, header-only; Debian's libsimde-dev), so that the AVX-512 backend runs, emulated, on any x86-64
 * CPU. Included instead of <immintrin.h> when HBNN_SIMDE_X86 is defined, by xhbnn_avx512_simde.c
 * only (setup.py: HBNN_SIMDE_AVX512=1; `make test-avx512-emulated`). Never in a wheel.
 * Below, the intrinsics the kernels use that SIMDe 0.7.4 lacks, written out lane by lane from Intel's
 * definitions; each is defined only where SIMDe has no alias of that name (a later SIMDe's wins). */
#ifndef HBNN_SIMDE_X86_H
#define HBNN_SIMDE_X86_H

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <stdint.h>
#include <string.h>

#define HBNN_EMU static inline __attribute__((always_inline))

/* SIMDe names the mask types simde__mmaskN and gives them no native alias. */
typedef simde__mmask8 __mmask8;
typedef simde__mmask16 __mmask16;
typedef simde__mmask32 __mmask32;
typedef simde__mmask64 __mmask64;

/* Lane arrays of a vector and back (memcpy: no aliasing assumption, and GCC turns it into moves). */
#define HBNN_EMU_LANES(T, n, name, v) T name[n]; memcpy(name, &(v), sizeof name)
#define HBNN_EMU_VEC(V, name) V hbnn_emu_r_; memcpy(&hbnn_emu_r_, name, sizeof hbnn_emu_r_); return hbnn_emu_r_

/* Sign and zero extension: vpmovsx / vpmovzx. */
#define HBNN_EMU_CVT(NAME, V, SRC, TS, TD, n)                                                \
    HBNN_EMU V hbnn_emu_##NAME(SRC a)                                                        \
    {                                                                                        \
        HBNN_EMU_LANES(TS, n, s, a);                                                         \
        TD d[n];                                                                             \
        for (int t = 0; t < n; t++) d[t] = (TD)s[t];                                         \
        HBNN_EMU_VEC(V, d);                                                                  \
    }
#ifndef _mm512_cvtepi8_epi32
HBNN_EMU_CVT(mm512_cvtepi8_epi32, simde__m512i, simde__m128i, int8_t, int32_t, 16)
#define _mm512_cvtepi8_epi32(a) hbnn_emu_mm512_cvtepi8_epi32(a)
#endif
#ifndef _mm512_cvtepu8_epi32
HBNN_EMU_CVT(mm512_cvtepu8_epi32, simde__m512i, simde__m128i, uint8_t, int32_t, 16)
#define _mm512_cvtepu8_epi32(a) hbnn_emu_mm512_cvtepu8_epi32(a)
#endif
#ifndef _mm512_cvtepi16_epi32
HBNN_EMU_CVT(mm512_cvtepi16_epi32, simde__m512i, simde__m256i, int16_t, int32_t, 16)
#define _mm512_cvtepi16_epi32(a) hbnn_emu_mm512_cvtepi16_epi32(a)
#endif
#ifndef _mm512_cvtepu16_epi32
HBNN_EMU_CVT(mm512_cvtepu16_epi32, simde__m512i, simde__m256i, uint16_t, int32_t, 16)
#define _mm512_cvtepu16_epi32(a) hbnn_emu_mm512_cvtepu16_epi32(a)
#endif
#ifndef _mm512_cvtepu8_epi16
HBNN_EMU_CVT(mm512_cvtepu8_epi16, simde__m512i, simde__m256i, uint8_t, int16_t, 32)
#define _mm512_cvtepu8_epi16(a) hbnn_emu_mm512_cvtepu8_epi16(a)
#endif
/* vcvtdq2ps: int32 to float, rounded to nearest even (C's conversion in the default rounding mode) */
#ifndef _mm512_cvtepi32_ps
HBNN_EMU_CVT(mm512_cvtepi32_ps, simde__m512, simde__m512i, int32_t, float, 16)
#define _mm512_cvtepi32_ps(a) hbnn_emu_mm512_cvtepi32_ps(a)
#endif

/* Masked loads: lane t from memory where mask bit t is set, else 0; masked-off lanes are not read
 * (as the hardware's fault suppression: the kernels rely on it at row ends). */
#define HBNN_EMU_MASKZ_LOAD(NAME, V, T, M, n)                                                \
    HBNN_EMU V hbnn_emu_##NAME(M m, const void *p)                                           \
    {                                                                                        \
        T d[n];                                                                              \
        for (int t = 0; t < n; t++) {                                                        \
            d[t] = 0;                                                                        \
            if ((m >> t) & 1) memcpy(&d[t], (const char *)p + t * sizeof(T), sizeof(T));     \
        }                                                                                    \
        HBNN_EMU_VEC(V, d);                                                                  \
    }
#ifndef _mm512_maskz_loadu_ps
HBNN_EMU_MASKZ_LOAD(mm512_maskz_loadu_ps, simde__m512, float, __mmask16, 16)
#define _mm512_maskz_loadu_ps(m, p) hbnn_emu_mm512_maskz_loadu_ps(m, p)
#endif
#ifndef _mm256_maskz_loadu_ps
HBNN_EMU_MASKZ_LOAD(mm256_maskz_loadu_ps, simde__m256, float, __mmask8, 8)
#define _mm256_maskz_loadu_ps(m, p) hbnn_emu_mm256_maskz_loadu_ps(m, p)
#endif
#ifndef _mm512_maskz_loadu_epi64
HBNN_EMU_MASKZ_LOAD(mm512_maskz_loadu_epi64, simde__m512i, int64_t, __mmask8, 8)
#define _mm512_maskz_loadu_epi64(m, p) hbnn_emu_mm512_maskz_loadu_epi64(m, p)
#endif
#ifndef _mm512_maskz_loadu_epi16
HBNN_EMU_MASKZ_LOAD(mm512_maskz_loadu_epi16, simde__m512i, int16_t, __mmask32, 32)
#define _mm512_maskz_loadu_epi16(m, p) hbnn_emu_mm512_maskz_loadu_epi16(m, p)
#endif
#ifndef _mm512_maskz_loadu_epi8
HBNN_EMU_MASKZ_LOAD(mm512_maskz_loadu_epi8, simde__m512i, int8_t, __mmask64, 64)
#define _mm512_maskz_loadu_epi8(m, p) hbnn_emu_mm512_maskz_loadu_epi8(m, p)
#endif

/* Masked stores: lane t to memory where mask bit t is set; other memory untouched. */
#define HBNN_EMU_MASK_STORE(NAME, V, T, M, n)                                                \
    HBNN_EMU void hbnn_emu_##NAME(void *p, M m, V v)                                         \
    {                                                                                        \
        HBNN_EMU_LANES(T, n, s, v);                                                          \
        for (int t = 0; t < n; t++)                                                          \
            if ((m >> t) & 1) memcpy((char *)p + t * sizeof(T), &s[t], sizeof(T));           \
    }
#ifndef _mm512_mask_storeu_ps
HBNN_EMU_MASK_STORE(mm512_mask_storeu_ps, simde__m512, float, __mmask16, 16)
#define _mm512_mask_storeu_ps(p, m, v) hbnn_emu_mm512_mask_storeu_ps(p, m, v)
#endif
#ifndef _mm256_mask_storeu_ps
HBNN_EMU_MASK_STORE(mm256_mask_storeu_ps, simde__m256, float, __mmask8, 8)
#define _mm256_mask_storeu_ps(p, m, v) hbnn_emu_mm256_mask_storeu_ps(p, m, v)
#endif

/* Horizontal sums, in the order of GCC's own definitions (avx512fintrin.h, __MM512_REDUCE_OP): the
 * 256-bit halves lane by lane, then the 128-bit halves, then lanes (0, 2) and (1, 3), then the two.
 * For floats the order decides the rounding, so this matches a native GCC build bit for bit. The
 * int32 sums wrap, as the instructions do (computed in uint32). */
#ifndef _mm512_reduce_add_ps
HBNN_EMU float hbnn_emu_mm512_reduce_add_ps(simde__m512 a)
{
    HBNN_EMU_LANES(float, 16, v, a);
    float t3[8], t6[4];
    for (int t = 0; t < 8; t++) t3[t] = v[8 + t] + v[t];
    for (int t = 0; t < 4; t++) t6[t] = t3[4 + t] + t3[t];
    const float t8_0 = t6[0] + t6[2], t8_1 = t6[1] + t6[3];
    return t8_0 + t8_1;
}
#define _mm512_reduce_add_ps(a) hbnn_emu_mm512_reduce_add_ps(a)
#endif
#ifndef _mm512_reduce_add_epi32
HBNN_EMU int32_t hbnn_emu_mm512_reduce_add_epi32(simde__m512i a)
{
    HBNN_EMU_LANES(uint32_t, 16, v, a);
    uint32_t t3[8], t6[4];
    for (int t = 0; t < 8; t++) t3[t] = v[8 + t] + v[t];
    for (int t = 0; t < 4; t++) t6[t] = t3[4 + t] + t3[t];
    const uint32_t sum = (t6[0] + t6[2]) + (t6[1] + t6[3]);
    int32_t r;
    memcpy(&r, &sum, sizeof r);
    return r;
}
#define _mm512_reduce_add_epi32(a) hbnn_emu_mm512_reduce_add_epi32(a)
#endif

#endif
