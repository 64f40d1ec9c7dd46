// SPDX-License-Identifier: GPL-2.0

#include <linux/jiffies.h>
#include <linux/timer.h>

void rust_helper_timer_setup(struct timer_list *timer,
			     void (*func)(struct timer_list *), unsigned int flags)
{
	timer_setup(timer, func, flags);
}

u64 rust_helper_get_jiffies_64(void)
{
	return get_jiffies_64();
}
