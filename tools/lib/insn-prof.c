// SPDX-License-Identifier: GPL-2.0
/*
 * insn-prof: a QEMU TCG plugin that counts the guest kernel's executed
 * instructions by translation block, for exact per-function profiles of the
 * bench's workloads (tools/bench --insn): under TCG, perf's samples alias
 * with the sampling period (Documentation/testing.rst), instruction counts
 * do not.
 *
 *   qemu ... -plugin tools/lib/insn-prof.so,mark=0xADDR,out=PREFIX
 *
 * Every block at a kernel address (the upper half) gets an inline counter
 * that adds its instruction count each time it runs. Each time the guest
 * runs the instruction at `mark` (the entry of a function the guest calls to
 * mark a window: tools/bench uses ksys_sync, that is, sync(1)), the counters
 * so far are written to PREFIX.N (N = 0, 1, ...) as "address instructions"
 * lines, so that the difference of two files is what ran between two marks.
 *
 * The plugin API's declarations (QEMU 7.2, plugin API version 1) are made
 * here: Debian packages no qemu-plugin.h.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id,
	void (*cb)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb));
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb,
	void (*cb)(unsigned int vcpu, void *udata), enum qemu_plugin_cb_flags flags,
	void *udata);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb,
	enum qemu_plugin_op op, void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);

EXPORT int qemu_plugin_version = 1;

/* A block's counter: one per start address and length, which stay put. */
struct block {
	uint64_t vaddr;
	uint64_t n;
	uint64_t insns;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct block **slots;	/* open addressing, a power of two of them */
static size_t nslots, nused;
static uint64_t mark;
static const char *prefix = "insn-prof";
static unsigned int nsnap;

static size_t slot_of(uint64_t vaddr, uint64_t n, size_t mask)
{
	uint64_t h = (vaddr ^ (n << 48)) * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 20) & mask;
}

static bool grow(void)
{
	size_t n = nslots ? nslots * 2 : 1 << 16, i, j;
	struct block **s = calloc(n, sizeof(*s));

	if (!s)
		return false;
	for (i = 0; i < nslots; i++) {
		struct block *b = slots[i];

		if (!b)
			continue;
		for (j = slot_of(b->vaddr, b->n, n - 1); s[j]; j = (j + 1) & (n - 1))
			;
		s[j] = b;
	}
	free(slots);
	slots = s;
	nslots = n;
	return true;
}

/* The block of (vaddr, n), made if new; NULL if memory is short. Locked. */
static struct block *block_of(uint64_t vaddr, uint64_t n)
{
	size_t i;

	if ((nused + 1) * 2 > nslots && !grow())
		return NULL;
	for (i = slot_of(vaddr, n, nslots - 1); slots[i]; i = (i + 1) & (nslots - 1))
		if (slots[i]->vaddr == vaddr && slots[i]->n == n)
			return slots[i];
	slots[i] = calloc(1, sizeof(struct block));
	if (!slots[i])
		return NULL;
	slots[i]->vaddr = vaddr;
	slots[i]->n = n;
	nused++;
	return slots[i];
}

static void snapshot(unsigned int vcpu, void *udata)
{
	char path[4096];
	FILE *f;
	size_t i;

	(void)vcpu;
	(void)udata;
	pthread_mutex_lock(&lock);
	snprintf(path, sizeof(path), "%s.%u", prefix, nsnap++);
	f = fopen(path, "w");
	if (f) {
		for (i = 0; i < nslots; i++)
			if (slots[i] && slots[i]->insns)
				fprintf(f, "%" PRIx64 " %" PRIu64 "\n", slots[i]->vaddr,
					__atomic_load_n(&slots[i]->insns, __ATOMIC_RELAXED));
		fclose(f);
	}
	pthread_mutex_unlock(&lock);
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	uint64_t vaddr = qemu_plugin_tb_vaddr(tb);
	uint64_t n = qemu_plugin_tb_n_insns(tb);
	struct block *b;

	(void)id;
	if (vaddr < 0xffff800000000000ull)
		return;
	pthread_mutex_lock(&lock);
	b = block_of(vaddr, n);
	pthread_mutex_unlock(&lock);
	if (b)
		qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->insns, n);
	if (mark && vaddr == mark)
		qemu_plugin_register_vcpu_tb_exec_cb(tb, snapshot, QEMU_PLUGIN_CB_NO_REGS, NULL);
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
			       int argc, char **argv)
{
	int i;

	(void)info;
	for (i = 0; i < argc; i++) {
		if (!strncmp(argv[i], "mark=", 5))
			mark = strtoull(argv[i] + 5, NULL, 0);
		else if (!strncmp(argv[i], "out=", 4))
			prefix = argv[i] + 4;
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
	return 0;
}
