// SPDX-License-Identifier: GPL-2.0

#include <linux/capability.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>
#include <linux/netdevice.h>
#include <net/sock.h>

struct net *rust_helper_sock_net(const struct sock *sk)
{
	return sock_net(sk);
}

bool rust_helper_net_admin_capable(const struct net *net)
{
	return ns_capable(net->user_ns, CAP_NET_ADMIN);
}

struct proc_dir_entry *rust_helper_net_proc_dir(const struct net *net)
{
#ifdef CONFIG_PROC_FS
	return net->proc_net;
#else
	return NULL;
#endif
}

bool rust_helper_net_owned_by_init_user_ns(const struct net *net)
{
	return net->user_ns == &init_user_ns;
}

bool rust_helper_net_is_init(const struct net *net)
{
	return net_eq(net, &init_net);
}

bool rust_helper_net_has_device(struct net *net, const char *name)
{
	bool found;

	rcu_read_lock();
	found = dev_get_by_name_rcu(net, name) != NULL;
	rcu_read_unlock();
	return found;
}

void *rust_helper_net_generic(const struct net *net, unsigned int id)
{
	return net_generic(net, id);
}

/* The namespace of the device a netdevice notifier is told about. */
struct net *rust_helper_netdev_notifier_net(void *ptr)
{
	return dev_net(netdev_notifier_info_to_dev(ptr));
}
