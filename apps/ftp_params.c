// SPDX-License-Identifier: GPL-2.0
/*
 * The C side of the Rust ip_vs_ftp module: its `ports` module parameter, which the
 * Rust side reads through ip_vs_ftp_ports(). Everything else is in ftp_main.rs.
 */

#include <linux/module.h>
#include <linux/moduleparam.h>

#define IP_VS_APP_MAX_PORTS 8

static unsigned int ports_count = 1;
static unsigned short ports[IP_VS_APP_MAX_PORTS] = { 21, 0 };
module_param_array(ports, ushort, &ports_count, 0444);
MODULE_PARM_DESC(ports, "Ports to monitor for FTP control commands");

size_t ip_vs_ftp_ports(unsigned short *out, size_t max);

/* Copy the configured ports (at most @max) to @out; returns how many. */
size_t ip_vs_ftp_ports(unsigned short *out, size_t max)
{
	size_t i, n = min_t(size_t, ports_count, max);

	for (i = 0; i < n; i++)
		out[i] = ports[i];
	return n;
}
