// SPDX-License-Identifier: GPL-2.0

#include <linux/bottom_half.h>
#include <linux/cpumask.h>
#include <linux/percpu.h>

void __percpu *rust_helper_alloc_percpu_zeroed(size_t size, size_t align, gfp_t gfp)
{
	return __alloc_percpu_gfp(size, align, gfp | __GFP_ZERO);
}

/*
 * Disable bottom halves and return the local CPU's per-CPU offset, which is
 * what a per-CPU pointer is shifted by to address this CPU's copy (as
 * this_cpu_ptr() does); valid until bottom halves are enabled again.
 */
unsigned long rust_helper_local_bh_disable_cpu_offset(void)
{
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
