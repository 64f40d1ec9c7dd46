// SPDX-License-Identifier: GPL-2.0

#include <linux/rcupdate.h>
#include <linux/sched.h>

void rust_helper_rcu_read_lock(void)
{
	rcu_read_lock();
}

void rust_helper_rcu_read_unlock(void)
{
	rcu_read_unlock();
}

void rust_helper_cond_resched(void)
{
	cond_resched();
}
