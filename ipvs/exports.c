// SPDX-License-Identifier: GPL-2.0
/*
 * The C side of the Rust ip_vs module: symbols exported to scheduler and
 * persistence-engine modules, and the conn_tab_bits module parameter.
 * Everything else is in ip_vs_core.rs.
 */

#include <linux/log2.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

/* Implemented in Rust (ip_vs_core.rs, sched.rs); the argument is a struct SchedulerOps (abi.rs). */
int ip_vs_register_scheduler(const void *ops);
void ip_vs_unregister_scheduler(const void *ops);
EXPORT_SYMBOL_GPL(ip_vs_register_scheduler);
EXPORT_SYMBOL_GPL(ip_vs_unregister_scheduler);

/* Implemented in Rust (ip_vs_core.rs, app.rs); the argument is a struct AppOps (app_abi.rs). */
int ip_vs_register_app(const void *ops, struct module *owner, const unsigned short *ports, size_t n);
void ip_vs_unregister_app(const void *ops);
EXPORT_SYMBOL_GPL(ip_vs_register_app);
EXPORT_SYMBOL_GPL(ip_vs_unregister_app);

#ifdef CONFIG_IP_VS_TAB_BITS
#define IP_VS_DEFAULT_TAB_BITS CONFIG_IP_VS_TAB_BITS
#else
#define IP_VS_DEFAULT_TAB_BITS 12
#endif

static int conn_tab_bits = IP_VS_DEFAULT_TAB_BITS;
module_param(conn_tab_bits, int, 0444);
MODULE_PARM_DESC(conn_tab_bits, "Set connections' hash size");

int ip_vs_conn_tab_bits_param(void);

/*
 * The bucket array (8 bytes a bucket) may use at most 1/64 of RAM, and the range is
 * 8..27 bits.
 */
int ip_vs_conn_tab_bits_param(void)
{
	int ram_bits = order_base_2(totalram_pages()) + PAGE_SHIFT;
	int max = clamp(ram_bits - 3 - 6, 8, 27);

	return clamp(conn_tab_bits, 8, max);
}

/* Implemented in Rust (pe.rs); the argument is a struct PeOps (pe_abi.rs). */
int ip_vs_register_pe(const void *ops);
void ip_vs_unregister_pe(const void *ops);
EXPORT_SYMBOL_GPL(ip_vs_register_pe);
EXPORT_SYMBOL_GPL(ip_vs_unregister_pe);
