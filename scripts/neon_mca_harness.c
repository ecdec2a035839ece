/* llvm-mca harness for scripts/neon-mca: each function runs one register tile of the NEON xor GEMM
 * with the run length or block width fixed, so the compiler emits the loop a layer of that kind runs.
 * Builds against the current kernels and, for before/after figures, against the 2x2 per-word kernels
 * they replaced (no runs). Never linked into the package. */
#include "xhbnn.c"

#ifdef HBNN_NEON_RUN_MR
static inline __attribute__((always_inline)) void mca_runs(const hbnn_xor_args *g, int64_t run)
{
    hbnn_xor_args h = *g;
    h.L = 64;
    h.run = run;
    hbnn_neon_runs_tile(&h, 0, 0, HBNN_NEON_RUN_MR, HBNN_NEON_RUN_NR);
}
__attribute__((noinline)) void mca_inf_long(const hbnn_xor_args *g) { mca_runs(g, g->run); }
#if defined(__aarch64__)
static inline __attribute__((always_inline)) void mca_short(const hbnn_xor_args *g, int64_t run)
{
    hbnn_xor_args h = *g;
    h.run = run;
    hbnn_neon_short_runs_tile(&h, 0, 0, HBNN_NEON_RUN_MR, 4);
}
__attribute__((noinline)) void mca_inf_c128(const hbnn_xor_args *g) { mca_short(g, 2); }
__attribute__((noinline)) void mca_inf_c256(const hbnn_xor_args *g) { mca_short(g, 4); }
#else
/* armv7 runs the per-word loop for runs of 2 words (see hbnn_xor_gemm_neon) */
__attribute__((noinline)) void mca_inf_c128(const hbnn_xor_args *g)
{
    hbnn_neon_runs1_tile(g, 0, 0, HBNN_NEON_RUN1_MR, 4);
}
__attribute__((noinline)) void mca_inf_c256(const hbnn_xor_args *g) { mca_runs(g, 4); }
#endif
__attribute__((noinline)) void mca_64(const hbnn_xor_args *g)
{
    hbnn_neon_runs1_tile(g, 0, 0, HBNN_NEON_RUN1_MR, 4);
}
__attribute__((noinline)) void mca_16(const hbnn_xor_args *g)
{
    hbnn_neon_blocks_tile(g, 16, 1, 0, 0, HBNN_NEON_BLK_MR, HBNN_NEON_BLK_NR);
}
#else
/* the per-word kernels: every beta >= 64 ran the same loop */
__attribute__((noinline)) void mca_inf_long(const hbnn_xor_args *g) { hbnn_neon_xor_tile(g, 64, 2, 2, 0, 0); }
__attribute__((noinline)) void mca_inf_c128(const hbnn_xor_args *g) { hbnn_neon_xor_tile(g, 64, 2, 2, 0, 0); }
__attribute__((noinline)) void mca_inf_c256(const hbnn_xor_args *g) { hbnn_neon_xor_tile(g, 64, 2, 2, 0, 0); }
__attribute__((noinline)) void mca_64(const hbnn_xor_args *g) { hbnn_neon_xor_tile(g, 64, 2, 2, 0, 0); }
__attribute__((noinline)) void mca_16(const hbnn_xor_args *g) { hbnn_neon_xor_tile(g, 16, 2, 2, 0, 0); }
#endif

/* Integer scales (docs/DESIGN.md section 9): the int-xor block loop at 16-bit blocks, the int8 GEMM
 * (SMULL / SMLAL / SADALP) and, on aarch64, its SDOT variant. */
#ifdef HBNN_NEON_XINT_MR   /* the byte-level int-xor tile (the MLS one before it had no such macro) */
__attribute__((noinline)) void mca_int_xor16(const hbnn_xor_args *g)
{
    hbnn_neon_xor_int_tile(g, 16, HBNN_NEON_XINT_MR, HBNN_NEON_XINT_NR, 0, 0, (const int8_t *)g->aq,
                           (const uint8_t *)g->qlen, g->kwords);
}
#endif
#ifdef HBNN_NEON_INT8_GEMM
__attribute__((noinline)) void mca_int8(const hbnn_int8_args *g) { hbnn_neon_int8_tile(g, 2, HBNN_NEON_INT8_NR, 0, 0); }
#endif
#ifdef HBNN_HAVE_NEON_DOTPROD
__attribute__((noinline, target("arch=armv8.2-a+dotprod"))) void mca_int8_sdot(const hbnn_int8_args *g)
{
    hbnn_dot_int8_tile(g, HBNN_DOT_MR, HBNN_DOT_NR, 0, 0);
}
#endif
