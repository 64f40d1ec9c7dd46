// SPDX-License-Identifier: GPL-2.0

#include <linux/kthread.h>
#include <linux/sched.h>

/*
 * Creates and starts a kernel thread named `name` (no format expansion) and
 * returns it with a reference held, so that kthread_stop() stays valid even if
 * the thread function returned on its own; or an ERR_PTR.
 */
struct task_struct *rust_helper_kthread_run_get(int (*fn)(void *), void *data,
						const char *name)
{
	struct task_struct *t = kthread_create(fn, data, "%s", name);

	if (IS_ERR(t))
		return t;
	get_task_struct(t);
	wake_up_process(t);
	return t;
}

/*
 * Sleeps (interruptibly, not counted in the load average) for at most
 * `timeout` jiffies, until woken or asked to stop. The state is set before
 * `cond` is looked at, so a wake-up after a false `cond` is not lost.
 */
void rust_helper_kthread_sleep_unless(bool (*cond)(const void *), const void *arg,
				      long timeout)
{
	set_current_state(TASK_INTERRUPTIBLE);
	if (kthread_should_stop() || cond(arg)) {
		__set_current_state(TASK_RUNNING);
		return;
	}
	schedule_timeout(timeout);
	__set_current_state(TASK_RUNNING);
}
