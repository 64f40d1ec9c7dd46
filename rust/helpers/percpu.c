// SPDX-License-Identifier: GPL-2.0

#include <linux/bottom_half.h>
#include <linux/cpumask.h>
#include <linux/percpu.h>
#include <linux/preempt.h>

void __percpu *rust_helper_alloc_percpu_zeroed(size_t size, size_t align, gfp_t gfp)
{
	return __alloc_percpu_gfp(size, align, gfp | __GFP_ZERO);
}

/*
 * Disable bottom halves, unless they are already (in a softirq, or after a
 * local_bh_disable() of the caller's), and return the local CPU's per-CPU
 * offset, which is what a per-CPU pointer is shifted by to address this CPU's
 * copy (as this_cpu_ptr() does); valid until bottom halves are enabled again.
 * *@disabled tells whether this call disabled them: only then must
 * rust_helper_local_bh_enable() follow.
 */
unsigned long rust_helper_local_bh_off_cpu_offset(bool *disabled)
{
	bool off = !softirq_count();

	*disabled = off;
	if (off)
		local_bh_disable();
#ifdef CONFIG_SMP
	return __my_cpu_offset;
#else
	return 0;
#endif
}

void rust_helper_local_bh_enable(void)
{
	local_bh_enable();
}
