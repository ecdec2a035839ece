/* The frame thread pool (threadpool.h): claim-in-order tiles, spin within a frame, sleep between. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#include "threadpool.h"

/* A worker that finished a frame spins this long for the next one before it sleeps (a camera loop
 * calls again within tens of microseconds; spinning longer would take the core from other work). */
#define HBNN_IDLE_SPIN_US 50.0
/* Waiting inside a frame (for the tiles an op depends on): spin this long, then yield the core on
 * every check, so a thread that shares its core with the one we wait for lets it run. */
#define HBNN_WAIT_SPIN_US 20.0
#define HBNN_CLOSED 0xffffffffu

struct hbnn_pool {
    /* hot words, each on its own cache line */
    uint64_t claim __attribute__((aligned(64)));  /* epoch << 32 | next frame tile (HBNN_CLOSED: none) */
    int64_t done __attribute__((aligned(64)));    /* tiles finished in this frame */
    uint32_t wake_seq __attribute__((aligned(64))); /* the epoch of the latest frame; futex word */
    int sleepers;
    int stop;
    int job_threads;
    const hbnn_pool_job *job;
    /* cold */
    uint32_t epoch __attribute__((aligned(64)));
    int nworkers;
    pid_t owner;                  /* after fork() the workers are gone: the child runs frames alone */
    pthread_t *tids;
#ifndef __linux__
    pthread_mutex_t lock;
    pthread_cond_t cond;
#endif
};

typedef struct {
    hbnn_pool *pool;
    int slot;
} hbnn_worker_arg;

double hbnn_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static inline void hbnn_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* Spin (then yield) until done >= target. */
static void hbnn_wait_done(hbnn_pool *pool, int64_t target)
{
    double deadline = 0.0;
    for (unsigned i = 1;; i++) {
        if (__atomic_load_n(&pool->done, __ATOMIC_ACQUIRE) >= target) return;
        hbnn_cpu_relax();
        if ((i & 255) == 0) {
            const double now = hbnn_now_us();
            if (deadline == 0.0) deadline = now + HBNN_WAIT_SPIN_US;
            else if (now > deadline) sched_yield();
        }
    }
}

/* Claim and run tiles of the frame of `epoch` until none is left; returns how many this thread ran.
 * The caller (slot 0) also times its tiles per op into sum_us / count. */
static int64_t hbnn_participate(hbnn_pool *pool, const hbnn_pool_job *job, uint32_t epoch, int slot,
                                double *sum_us, int64_t *count)
{
    const int64_t total = job->op_end[job->nops - 1];
    int op = 0;
    int64_t ran = 0;
    for (;;) {
        uint64_t c = __atomic_load_n(&pool->claim, __ATOMIC_ACQUIRE);
        int64_t idx;
        for (;;) {
            if ((uint32_t)(c >> 32) != epoch) return ran;
            idx = (int64_t)(c & 0xffffffffu);
            if (idx >= total) return ran;  /* all claimed (or the frame is closed) */
            if (__atomic_compare_exchange_n(&pool->claim, &c, c + 1, 1, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                break;
        }
        while (idx >= job->op_end[op]) op++;
        const int64_t first = op ? job->op_end[op - 1] : 0;
        hbnn_wait_done(pool, first);  /* every tile of the ops before this one */
        if (sum_us) {
            const double t0 = hbnn_now_us();
            job->run(job->ctx, op, idx - first, slot);
            sum_us[op] += hbnn_now_us() - t0;
            count[op]++;
        } else {
            job->run(job->ctx, op, idx - first, slot);
        }
        __atomic_fetch_add(&pool->done, 1, __ATOMIC_RELEASE);
        ran++;
    }
}

static void hbnn_sleep_while(hbnn_pool *pool, uint32_t seen)
{
#ifdef __linux__
    __atomic_fetch_add(&pool->sleepers, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&pool->wake_seq, __ATOMIC_SEQ_CST) == seen)
        syscall(SYS_futex, &pool->wake_seq, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
    __atomic_fetch_sub(&pool->sleepers, 1, __ATOMIC_SEQ_CST);
#else
    pthread_mutex_lock(&pool->lock);
    __atomic_fetch_add(&pool->sleepers, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&pool->wake_seq, __ATOMIC_SEQ_CST) == seen) pthread_cond_wait(&pool->cond, &pool->lock);
    __atomic_fetch_sub(&pool->sleepers, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&pool->lock);
#endif
}

static void hbnn_wake_all(hbnn_pool *pool)
{
    if (__atomic_load_n(&pool->sleepers, __ATOMIC_SEQ_CST) == 0) return;
#ifdef __linux__
    syscall(SYS_futex, &pool->wake_seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    pthread_mutex_lock(&pool->lock);
    pthread_cond_broadcast(&pool->cond);
    pthread_mutex_unlock(&pool->lock);
#endif
}

static void *hbnn_worker_main(void *p)
{
    hbnn_worker_arg arg = *(hbnn_worker_arg *)p;
    hbnn_pool *pool = arg.pool;
    free(p);
    uint32_t seen = 0;  /* the value at creation: a stop (or frame) published before we got here is seen */
    for (;;) {
        uint32_t seq = __atomic_load_n(&pool->wake_seq, __ATOMIC_ACQUIRE);
        if (seq == seen) {
            const double deadline = hbnn_now_us() + HBNN_IDLE_SPIN_US;
            for (unsigned i = 1; seq == seen; i++) {
                hbnn_cpu_relax();
                seq = __atomic_load_n(&pool->wake_seq, __ATOMIC_ACQUIRE);
                if ((i & 255) == 0 && seq == seen && hbnn_now_us() > deadline) {
                    hbnn_sleep_while(pool, seen);
                    seq = __atomic_load_n(&pool->wake_seq, __ATOMIC_ACQUIRE);
                }
            }
        }
        seen = seq;
        if (__atomic_load_n(&pool->stop, __ATOMIC_ACQUIRE)) return NULL;
        const hbnn_pool_job *job = __atomic_load_n(&pool->job, __ATOMIC_ACQUIRE);
        if (job && arg.slot < __atomic_load_n(&pool->job_threads, __ATOMIC_RELAXED))
            hbnn_participate(pool, job, seq, arg.slot, NULL, NULL);
    }
}

hbnn_pool *hbnn_pool_create(int threads)
{
    hbnn_pool *pool = NULL;
    if (posix_memalign((void **)&pool, 64, sizeof(*pool)) != 0) return NULL;
    memset(pool, 0, sizeof(*pool));
    pool->claim = HBNN_CLOSED;
    pool->owner = getpid();
#ifndef __linux__
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->cond, NULL);
#endif
    const int want = threads > 1 ? threads - 1 : 0;
    pool->tids = want ? (pthread_t *)calloc((size_t)want, sizeof(pthread_t)) : NULL;
    if (want && !pool->tids) {
        hbnn_pool_destroy(pool);
        return NULL;
    }
    /* workers take no signals: they stay with the thread that runs the Python handlers */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < want; i++) {
        hbnn_worker_arg *arg = (hbnn_worker_arg *)malloc(sizeof(*arg));
        if (!arg) break;
        arg->pool = pool;
        arg->slot = i + 1;
        if (pthread_create(&pool->tids[i], NULL, hbnn_worker_main, arg) != 0) {
            free(arg);
            break;
        }
        pool->nworkers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pool->nworkers < want) {
        hbnn_pool_destroy(pool);
        return NULL;
    }
    return pool;
}

void hbnn_pool_destroy(hbnn_pool *pool)
{
    if (!pool) return;
    if (pool->nworkers && pool->owner == getpid()) {
        __atomic_store_n(&pool->stop, 1, __ATOMIC_RELEASE);
        __atomic_store_n(&pool->wake_seq, pool->epoch + 1, __ATOMIC_SEQ_CST);
        hbnn_wake_all(pool);
        for (int i = 0; i < pool->nworkers; i++) pthread_join(pool->tids[i], NULL);
    }
#ifndef __linux__
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->cond);
#endif
    free(pool->tids);
    free(pool);
}

int hbnn_pool_size(const hbnn_pool *pool) { return pool ? pool->nworkers + 1 : 1; }

void hbnn_pool_run(hbnn_pool *pool, const hbnn_pool_job *job, int threads, hbnn_pool_stats *stats,
                   double *tile_us)
{
    const double t_start = hbnn_now_us();
    const int64_t total = job->op_end[job->nops - 1];
    double sum_us[job->nops > 0 ? job->nops : 1];
    int64_t count[job->nops > 0 ? job->nops : 1];
    memset(sum_us, 0, sizeof(sum_us));
    memset(count, 0, sizeof(count));
    int nt = threads < hbnn_pool_size(pool) ? threads : hbnn_pool_size(pool);
    if (nt > 1 && pool->owner != getpid()) nt = 1;
    int64_t ran = 0;
    if (nt <= 1) {
        /* the caller alone, in frame order: no atomics, no wake-up */
        int op = 0;
        for (int64_t idx = 0; idx < total; idx++) {
            while (idx >= job->op_end[op]) op++;
            const int64_t first = op ? job->op_end[op - 1] : 0;
            const double t0 = hbnn_now_us();
            job->run(job->ctx, op, idx - first, 0);
            sum_us[op] += hbnn_now_us() - t0;
            count[op]++;
        }
        ran = total;
    } else {
        /* publish the job, then open the frame's claims, then wake the workers (see threadpool.h) */
        const uint32_t epoch = pool->epoch + 1 ? pool->epoch + 1 : 1;
        pool->epoch = epoch;
        __atomic_store_n(&pool->job_threads, nt, __ATOMIC_RELAXED);
        __atomic_store_n(&pool->job, job, __ATOMIC_RELEASE);
        __atomic_store_n(&pool->done, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&pool->claim, (uint64_t)epoch << 32, __ATOMIC_RELEASE);
        __atomic_store_n(&pool->wake_seq, epoch, __ATOMIC_SEQ_CST);
        hbnn_wake_all(pool);
        ran = hbnn_participate(pool, job, epoch, 0, sum_us, count);
        hbnn_wait_done(pool, total);
        /* close: a worker still holding this job can claim nothing more, even after the next
         * frame publishes another job (claims check the epoch and the index together) */
        __atomic_store_n(&pool->claim, ((uint64_t)epoch << 32) | HBNN_CLOSED, __ATOMIC_RELEASE);
    }
    if (tile_us)
        for (int k = 0; k < job->nops; k++)
            if (count[k]) tile_us[k] = sum_us[k] / (double)count[k];
    if (stats) {
        stats->wall_us = hbnn_now_us() - t_start;
        stats->caller_tiles = ran;
    }
}
