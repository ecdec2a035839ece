/* A small persistent thread pool for whole-frame execution (see docs/DESIGN.md, "Frames").
 *
 * One call runs one frame: a sequence of ops, op k made of ntiles[k] independent tiles. Tiles are
 * claimed one at a time from a shared atomic counter, in order, by the caller and whichever workers
 * are awake; a tile of op k starts only when every tile of the ops before it is done. So a worker
 * that is late (asleep, or preempted by another process) simply claims nothing, and the frame never
 * waits for a thread that holds no tile. Each tile is run by exactly one thread.
 *
 * Workers spin briefly between the ops of one frame (with a backoff that yields the core) and sleep
 * between frames (futex on Linux, a condition variable elsewhere): a frame costs one wake-up.
 */
#ifndef HBNN_THREADPOOL_H
#define HBNN_THREADPOOL_H

#include <stdint.h>

typedef struct hbnn_pool hbnn_pool;

/* Run tile `tile` of op `op`; `slot` is the running thread's index (0 = the caller, 1.. = workers),
 * for per-thread scratch. */
typedef void (*hbnn_pool_tile_fn)(void *ctx, int op, int64_t tile, int slot);

typedef struct {
    hbnn_pool_tile_fn run;
    void *ctx;
    int nops;
    const int64_t *op_end;   /* cumulative tile counts: op k owns frame tiles [op_end[k-1], op_end[k]) */
} hbnn_pool_job;

/* What the caller saw of one frame, for load-aware thread use (the executor decides). */
typedef struct {
    double wall_us;          /* the whole frame */
    int64_t caller_tiles;    /* tiles the caller ran */
} hbnn_pool_stats;

/* A pool with threads - 1 workers (threads >= 1). NULL if a thread could not be started. */
hbnn_pool *hbnn_pool_create(int threads);
/* Stops and joins every worker. The pool must not be running a frame. */
void hbnn_pool_destroy(hbnn_pool *pool);
int hbnn_pool_size(const hbnn_pool *pool);
/* Run one frame on the caller and up to threads - 1 workers (threads <= 1: the caller alone, no
 * worker is woken). One frame at a time per pool: the caller serialises. `tile_us`, when not NULL,
 * receives per op the caller's own mean time per tile (unchanged for ops it ran no tile of). */
void hbnn_pool_run(hbnn_pool *pool, const hbnn_pool_job *job, int threads, hbnn_pool_stats *stats,
                   double *tile_us);

double hbnn_now_us(void);

#endif
