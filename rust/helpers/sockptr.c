// SPDX-License-Identifier: GPL-2.0

#include <linux/sockptr.h>

int rust_helper_copy_from_sockptr(void *dst, sockptr_t src, size_t size)
{
	return copy_from_sockptr(dst, src, size);
}
