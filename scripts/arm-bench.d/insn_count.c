/* QEMU TCG plugin: how many times each translation block (TB) ran, with its instructions.
 *
 *   qemu-aarch64 -plugin ./insn_count.so,out=COUNTS.txt ...
 *
 * One inline 64-bit add per executed TB (no callback, so emulation stays fast); a TB's
 * instructions are recorded once, at translation. Counts are per TB, not per vCPU: run the
 * guest single-threaded (the inline add is not atomic across vCPU threads).
 *
 * Output, for every TB that ran at least once:
 *   T <vaddr hex> <executions> <n instructions>
 *   I <vaddr hex> <opcode bytes hex, memory order> <QEMU's disassembly>     (n lines)
 * A TB is keyed by its start address and its code bytes, so code unloaded and replaced at the
 * same address gets its own record. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu-plugin-v1.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

struct insn_rec {
    uint64_t vaddr;
    uint8_t size;
    uint8_t bytes[16];
    char *disas;
};

struct tb_rec {
    uint64_t count;          /* the inline counter: first member, never moves */
    uint64_t vaddr;
    uint64_t code_hash;
    size_t n;
    struct insn_rec *insns;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct tb_rec **table;   /* open addressing; records are separately allocated */
static size_t table_size, table_used;
static char *out_path;

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h;
}

static uint64_t tb_code_hash(struct qemu_plugin_tb *tb, size_t n)
{
    uint64_t h = n;
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        const uint8_t *data = qemu_plugin_insn_data(insn);
        size_t size = qemu_plugin_insn_size(insn);
        for (size_t j = 0; j < size; j++) {
            h = mix(h, data[j]);
        }
    }
    return h;
}

static struct tb_rec **slot(uint64_t vaddr, uint64_t code_hash)
{
    size_t i = (size_t)mix(vaddr, code_hash) & (table_size - 1);
    while (table[i] && !(table[i]->vaddr == vaddr && table[i]->code_hash == code_hash)) {
        i = (i + 1) & (table_size - 1);
    }
    return &table[i];
}

static void grow(void)
{
    struct tb_rec **old = table;
    size_t old_size = table_size;
    table_size = old_size ? old_size * 2 : 1 << 16;
    table = calloc(table_size, sizeof(*table));
    if (!table) {
        abort();
    }
    for (size_t i = 0; i < old_size; i++) {
        if (old[i]) {
            *slot(old[i]->vaddr, old[i]->code_hash) = old[i];
        }
    }
    free(old);
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    uint64_t vaddr = qemu_plugin_tb_vaddr(tb);
    uint64_t code_hash = tb_code_hash(tb, n);

    pthread_mutex_lock(&lock);
    if (2 * (table_used + 1) > table_size) {
        grow();
    }
    struct tb_rec **s = slot(vaddr, code_hash);
    if (!*s) {
        struct tb_rec *rec = calloc(1, sizeof(*rec));
        rec->vaddr = vaddr;
        rec->code_hash = code_hash;
        rec->n = n;
        rec->insns = calloc(n ? n : 1, sizeof(*rec->insns));
        for (size_t i = 0; i < n; i++) {
            struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
            struct insn_rec *r = &rec->insns[i];
            size_t size = qemu_plugin_insn_size(insn);
            r->vaddr = qemu_plugin_insn_vaddr(insn);
            r->size = (uint8_t)(size < sizeof(r->bytes) ? size : sizeof(r->bytes));
            memcpy(r->bytes, qemu_plugin_insn_data(insn), r->size);
            r->disas = qemu_plugin_insn_disas(insn);
        }
        *s = rec;
        table_used++;
    }
    /* A retranslated TB (after a code-cache flush) adds to the same counter. */
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &(*s)->count, 1);
    pthread_mutex_unlock(&lock);
}

static void at_exit(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    FILE *out = fopen(out_path, "w");
    if (!out) {
        qemu_plugin_outs("insn_count: cannot open the out= file\n");
        return;
    }
    for (size_t i = 0; i < table_size; i++) {
        struct tb_rec *rec = table[i];
        if (!rec || !rec->count) {
            continue;
        }
        fprintf(out, "T %" PRIx64 " %" PRIu64 " %zu\n", rec->vaddr, rec->count, rec->n);
        for (size_t k = 0; k < rec->n; k++) {
            struct insn_rec *r = &rec->insns[k];
            fprintf(out, "I %" PRIx64 " ", r->vaddr);
            for (size_t j = 0; j < r->size; j++) {
                fprintf(out, "%02x", r->bytes[j]);
            }
            /* one line per instruction: QEMU's text never has a newline, but be safe */
            const char *d = r->disas ? r->disas : "";
            fputc(' ', out);
            for (; *d; d++) {
                fputc(*d == '\n' || *d == '\r' ? ' ' : *d, out);
            }
            fputc('\n', out);
        }
    }
    fclose(out);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                                           char **argv)
{
    if (info->system_emulation) {
        qemu_plugin_outs("insn_count: user-mode emulation only\n");
        return -1;
    }
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            out_path = strdup(argv[i] + 4);
        }
    }
    if (!out_path) {
        qemu_plugin_outs("insn_count: expected an out=PATH argument\n");
        return -1;
    }
    grow();
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
