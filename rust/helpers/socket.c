// SPDX-License-Identifier: GPL-2.0

/*
 * Kernel UDP sockets for multicast senders and receivers (the IPVS sync
 * daemon's): the option settings userspace would make with setsockopt, done
 * on the kernel socket directly, as net/netfilter/ipvs/ip_vs_sync.c does.
 */

#include <linux/igmp.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/inetdevice.h>
#include <linux/kthread.h>
#include <linux/net.h>
#include <linux/netdevice.h>
#include <linux/uio.h>
#include <net/inet_sock.h>
#include <net/ipv6.h>
#include <linux/rtnetlink.h>
#include <net/sock.h>

static void rust_mcast_sockaddr(struct sockaddr_storage *ss, int *len, bool v6,
				const u8 *addr, u16 port)
{
	memset(ss, 0, sizeof(*ss));
	if (v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, addr, 16);
		*len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		memcpy(&s4->sin_addr, addr, 4);
		*len = sizeof(*s4);
	}
}

static void rust_sock_set_size(struct sock *sk, bool send, int val)
{
	lock_sock(sk);
	if (send) {
		val = min_t(u32, val, READ_ONCE(sysctl_wmem_max));
		val = min_t(int, val, INT_MAX / 2);
		sk->sk_userlocks |= SOCK_SNDBUF_LOCK;
		WRITE_ONCE(sk->sk_sndbuf, max_t(int, val * 2, SOCK_MIN_SNDBUF));
	} else {
		val = min_t(u32, val, READ_ONCE(sysctl_rmem_max));
		val = min_t(int, val, INT_MAX / 2);
		sk->sk_userlocks |= SOCK_RCVBUF_LOCK;
		WRITE_ONCE(sk->sk_rcvbuf, max_t(int, val * 2, SOCK_MIN_RCVBUF));
	}
	release_sock(sk);
}

/*
 * A UDP socket of family v6 ? AF_INET6 : AF_INET in `net` that sends to
 * <group, port> out of device `ifindex`: no loopback of its own messages,
 * multicast TTL/hop limit `ttl`, fragmentation allowed, send buffer of
 * `sock_size` (0: default), bound to the device's primary IPv4 address.
 */
int rust_helper_mcast_sock_sender(struct net *net, bool v6, const u8 *group, u16 port,
				  int ifindex, u8 ttl, int sock_size, struct socket **ret)
{
	struct sockaddr_storage ss;
	struct socket *sock;
	struct net_device *dev;
	struct sock *sk;
	int err, len;

	err = sock_create_kern(net, v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, IPPROTO_UDP, &sock);
	if (err)
		return err;
	sk = sock->sk;

	lock_sock(sk);
	inet_sk(sk)->mc_index = ifindex;
	WRITE_ONCE(inet_sk(sk)->mc_ttl, ttl);
	WRITE_ONCE(inet_sk(sk)->pmtudisc, IP_PMTUDISC_DONT);
	inet_assign_bit(MC_LOOP, sk, 0);
#if IS_ENABLED(CONFIG_IPV6)
	if (v6) {
		struct ipv6_pinfo *np = inet6_sk(sk);

		WRITE_ONCE(np->mcast_oif, ifindex);
		WRITE_ONCE(np->mcast_hops, ttl);
		WRITE_ONCE(np->pmtudisc, IPV6_PMTUDISC_DONT);
		inet6_assign_bit(MC6_LOOP, sk, 0);
	}
#endif
	release_sock(sk);

	if (sock_size > 0)
		rust_sock_set_size(sk, true, sock_size);

	if (!v6) {
		__be32 addr;

		dev = dev_get_by_index(net, ifindex);
		if (!dev) {
			err = -ENODEV;
			goto fail;
		}
		addr = inet_select_addr(dev, 0, RT_SCOPE_UNIVERSE);
		dev_put(dev);
		if (!addr) {
			err = -EADDRNOTAVAIL;
			goto fail;
		}
		rust_mcast_sockaddr(&ss, &len, false, (const u8 *)&addr, 0);
		err = kernel_bind(sock, (struct sockaddr *)&ss, len);
		if (err < 0)
			goto fail;
	}

	rust_mcast_sockaddr(&ss, &len, v6, group, port);
	err = kernel_connect(sock, (struct sockaddr *)&ss, len, 0);
	if (err < 0)
		goto fail;
	*ret = sock;
	return 0;
fail:
	sock_release(sock);
	return err;
}

/*
 * A UDP socket in `net` bound to <group, port> on device `ifindex` (address
 * reuse allowed) that has joined the group there, with a receive buffer of
 * `sock_size` (0: default).
 */
int rust_helper_mcast_sock_receiver(struct net *net, bool v6, const u8 *group, u16 port,
				    int ifindex, int sock_size, struct socket **ret)
{
	struct sockaddr_storage ss;
	struct socket *sock;
	struct sock *sk;
	int err, len;

	err = sock_create_kern(net, v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, IPPROTO_UDP, &sock);
	if (err)
		return err;
	sk = sock->sk;
	sk->sk_reuse = SK_CAN_REUSE;
	if (sock_size > 0)
		rust_sock_set_size(sk, false, sock_size);
	sk->sk_bound_dev_if = ifindex;

	rust_mcast_sockaddr(&ss, &len, v6, group, port);
	err = kernel_bind(sock, (struct sockaddr *)&ss, len);
	if (err < 0)
		goto fail;

	/* The group is joined under RTNL, and the socket lock inside it. */
	rtnl_lock();
	lock_sock(sk);
	if (v6) {
#if IS_ENABLED(CONFIG_IPV6)
		err = ipv6_sock_mc_join(sk, ifindex, (const struct in6_addr *)group);
#else
		err = -EAFNOSUPPORT;
#endif
	} else {
		struct ip_mreqn mreq;

		memset(&mreq, 0, sizeof(mreq));
		memcpy(&mreq.imr_multiaddr, group, 4);
		mreq.imr_ifindex = ifindex;
		err = ip_mc_join_group(sk, &mreq);
	}
	release_sock(sk);
	rtnl_unlock();
	if (err < 0)
		goto fail;
	*ret = sock;
	return 0;
fail:
	sock_release(sock);
	return err;
}

/* Sends one datagram without blocking: the length sent or a negative errno. */
int rust_helper_sock_send_nowait(struct socket *sock, const void *buf, size_t len)
{
	struct msghdr msg = { .msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL };
	struct kvec iov = { .iov_base = (void *)buf, .iov_len = len };

	return kernel_sendmsg(sock, &msg, &iov, 1, len);
}

/* Receives one datagram without blocking: its length or a negative errno. */
int rust_helper_sock_recv_nowait(struct socket *sock, void *buf, size_t len)
{
	struct msghdr msg = { NULL, };
	struct kvec iov = { .iov_base = buf, .iov_len = len };

	return kernel_recvmsg(sock, &msg, &iov, 1, len, MSG_DONTWAIT);
}

/*
 * From a kernel thread: sleeps until the socket can take a datagram (write)
 * or has one queued (!write), the thread is asked to stop, or `timeout`
 * jiffies passed.
 */
void rust_helper_sock_kthread_wait(struct socket *sock, bool write, long timeout)
{
	struct sock *sk = sock->sk;

	if (write)
		wait_event_interruptible_timeout(*sk_sleep(sk),
						 sock_writeable(sk) || kthread_should_stop(),
						 timeout);
	else
		wait_event_interruptible_timeout(*sk_sleep(sk),
						 !skb_queue_empty_lockless(&sk->sk_receive_queue) ||
						 kthread_should_stop(),
						 timeout);
}

/* The MTU of device `ifindex` of `net`, or a negative errno. */
int rust_helper_net_dev_mtu(struct net *net, int ifindex)
{
	struct net_device *dev;
	int mtu;

	rcu_read_lock();
	dev = dev_get_by_index_rcu(net, ifindex);
	mtu = dev ? READ_ONCE(dev->mtu) : -ENODEV;
	rcu_read_unlock();
	return mtu;
}

/* The index of device `name` of `net`, or a negative errno. */
int rust_helper_net_dev_ifindex(struct net *net, const char *name)
{
	struct net_device *dev;
	int ifindex;

	rcu_read_lock();
	dev = dev_get_by_name_rcu(net, name);
	ifindex = dev ? dev->ifindex : -ENODEV;
	rcu_read_unlock();
	return ifindex;
}
