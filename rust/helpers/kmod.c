// SPDX-License-Identifier: GPL-2.0

#include <linux/kmod.h>

int rust_helper_request_module_name(const char *name)
{
	return request_module("%s", name);
}
