// SPDX-License-Identifier: GPL-2.0

#include <linux/skbuff.h>
#include <net/checksum.h>
#include <net/dst.h>
#include <net/icmp.h>
#include <net/ip.h>
#include <net/gre.h>
#include <net/ip_tunnels.h>
#include <net/route.h>
#include <net/udp.h>
#include <linux/icmpv6.h>
#include <linux/netfilter_ipv6.h>
#include <net/addrconf.h>
#include <net/gso.h>
#include <net/ip6_checksum.h>
#include <net/ip6_route.h>
#include <net/ipv6.h>

unsigned int rust_helper_dst_mtu(const struct dst_entry *dst)
{
	return dst_mtu(dst);
}

/*
 * Look up the IPv4 output route to @daddr (the next hop is @daddr itself, as
 * for a real server on a shared link); *@saddr gets the source address the
 * route selects. Returns a referenced route or an ERR_PTR.
 */
struct rtable *rust_helper_ip_route_output_v4(struct net *net, __be32 daddr,
					      __be32 *saddr, u8 tos)
{
	struct flowi4 fl4 = {
		.daddr = daddr,
		.saddr = *saddr,
		.flowi4_tos = tos & INET_DSCP_MASK,
		.flowi4_flags = FLOWI_FLAG_KNOWN_NH,
	};
	struct rtable *rt;

	rt = ip_route_output_key(net, &fl4);
	if (!IS_ERR(rt))
		*saddr = fl4.saddr;
	return rt;
}

/*
 * Look up the IPv6 output route to @daddr (as upstream IPVS does for a real
 * server: the next hop is @daddr itself); *@saddr gets the source address
 * the stack selects for it, *@cookie the route's validity cookie and *@local
 * whether it delivers to this host. Returns a referenced route or an ERR_PTR.
 */
struct dst_entry *rust_helper_ip6_route_output_ipvs(struct net *net,
						    const struct in6_addr *daddr,
						    struct in6_addr *saddr,
						    u32 *cookie, bool *local)
{
#if IS_ENABLED(CONFIG_IPV6)
	struct flowi6 fl6 = {
		.daddr = *daddr,
		.flowi6_flags = FLOWI_FLAG_KNOWN_NH,
	};
	struct dst_entry *dst;
	int err;

	dst = ip6_route_output(net, NULL, &fl6);
	err = dst->error;
	if (err)
		goto out_err;
	err = -EHOSTUNREACH;
	if (ipv6_addr_any(&fl6.saddr) &&
	    ipv6_dev_get_saddr(net, ip6_dst_idev(dst)->dev, &fl6.daddr, 0,
			       &fl6.saddr) < 0)
		goto out_err;
	*saddr = fl6.saddr;
	*cookie = rt6_get_cookie(dst_rt6_info(dst));
	*local = !!(dst->dev->flags & IFF_LOOPBACK);
	return dst;
out_err:
	dst_release(dst);
	return ERR_PTR(err);
#else
	return ERR_PTR(-EAFNOSUPPORT);
#endif
}

/* Whether a cached route is still valid (not obsoleted by a routing change, a PMTU
 * exception or its device going away); @cookie is an IPv6 route's. */
bool rust_helper_dst_check_cookie(struct dst_entry *dst, u32 cookie)
{
	return dst_check(dst, cookie) != NULL;
}

/* Whether the route's device is going down: such a route is not cached. */
bool rust_helper_dst_dev_is_down(struct dst_entry *dst)
{
	struct net_device *dev = READ_ONCE(dst->dev);

	return !dev || !netif_running(dev) || !netif_carrier_ok(dev);
}

/* Attach @dst to @skb in place of its route; the reference passes to @skb. */
void rust_helper_skb_set_dst(struct sk_buff *skb, struct dst_entry *dst)
{
	skb_dst_drop(skb);
	skb_dst_set(skb, dst);
}

struct sock *rust_helper_skb_get_sk(const struct sk_buff *skb)
{
	return skb->sk;
}

void rust_helper_skb_icmp_send(struct sk_buff *skb, int type, int code, __be32 info)
{
	icmp_send(skb, type, code, info);
}

/*
 * Make the packet the inner packet (of protocol @inner_proto: IPPROTO_IPIP or
 * IPPROTO_IPV6) of a tunnel whose headers take @extra bytes besides the outer
 * IPv4 header (IPv6 if @outer_v6): headroom for them, GSO set up with
 * @gso_type, the inner headers marked.
 */
int rust_helper_skb_tunnel_prepare(struct sk_buff *skb, unsigned int extra,
				   int gso_type, bool outer_v6, u8 inner_proto)
{
	struct dst_entry *dst = skb_dst(skb);
	unsigned int headroom = (outer_v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr)) +
				extra + (dst ? LL_RESERVED_SPACE(dst->dev) : LL_MAX_HEADER);
	int err;

	err = skb_cow_head(skb, headroom);
	if (err)
		return err;
	err = iptunnel_handle_offloads(skb, gso_type);
	if (err)
		return err;
	skb->transport_header = skb->network_header;
	skb_set_inner_ipproto(skb, inner_proto);
	skb_set_inner_mac_header(skb, skb_inner_network_offset(skb));
	return 0;
}

/* skb_push of @len bytes the caller made room for; NULL if there is none. */
void *rust_helper_skb_push_checked(struct sk_buff *skb, unsigned int len)
{
	if (skb_headroom(skb) < len)
		return NULL;
	return skb_push(skb, len);
}

void rust_helper_skb_reset_transport_header(struct sk_buff *skb)
{
	skb_reset_transport_header(skb);
}

/* The outer IPv4 header of a tunnel: pushed, made the network header. */
int rust_helper_skb_push_ip_header(struct sk_buff *skb)
{
	if (skb_headroom(skb) < sizeof(struct iphdr))
		return -ENOMEM;
	skb_push(skb, sizeof(struct iphdr));
	skb_reset_network_header(skb);
	memset(&IPCB(skb)->opt, 0, sizeof(IPCB(skb)->opt));
	return 0;
}

/*
 * Whether the packet's checksum is left to the hardware; if so, where the
 * checksummed range starts, from @data, and where in it the checksum goes.
 */
bool rust_helper_skb_partial_csum(const struct sk_buff *skb, int *start,
				  u16 *offset)
{
	if (skb->ip_summed != CHECKSUM_PARTIAL)
		return false;
	*start = skb_checksum_start_offset(skb);
	*offset = skb->csum_offset;
	return true;
}

/* The checksum is the receiver's now (remote checksum offload). */
void rust_helper_skb_csum_to_remote(struct sk_buff *skb)
{
	if (!skb_is_gso(skb)) {
		skb->ip_summed = CHECKSUM_NONE;
		skb->encapsulation = 0;
	}
}

__be16 rust_helper_skb_udp_flow_src_port(struct net *net, struct sk_buff *skb)
{
	return udp_flow_src_port(net, skb, 0, 0, false);
}

/* The UDP checksum of the header at the transport header (none if @nocheck). */
void rust_helper_skb_udp_set_csum(struct sk_buff *skb, bool nocheck,
				  __be32 saddr, __be32 daddr)
{
	udp_set_csum(nocheck, skb, saddr, daddr, skb->len);
}

/* A GRE header (with a checksum if @csum) for an inner packet of @proto. */
int rust_helper_skb_push_gre_header(struct sk_buff *skb, bool csum, __be16 proto)
{
	IP_TUNNEL_DECLARE_FLAGS(flags) = { };
	int hlen;

	if (csum)
		__set_bit(IP_TUNNEL_CSUM_BIT, flags);
	hlen = gre_calc_hlen(flags);
	if (skb_headroom(skb) < hlen)
		return -ENOMEM;
	gre_build_header(skb, hlen, flags, proto, 0, 0);
	return 0;
}

/* The outer IPv6 header of a tunnel: pushed, made the network header. */
int rust_helper_skb_push_ipv6_header(struct sk_buff *skb)
{
#if IS_ENABLED(CONFIG_IPV6)
	if (skb_headroom(skb) < sizeof(struct ipv6hdr))
		return -ENOMEM;
	skb_push(skb, sizeof(struct ipv6hdr));
	skb_reset_network_header(skb);
	memset(IP6CB(skb), 0, sizeof(*IP6CB(skb)));
	return 0;
#else
	return -EAFNOSUPPORT;
#endif
}

/* The UDP checksum of the header at the transport header, for IPv6 addresses. */
void rust_helper_skb_udp6_set_csum(struct sk_buff *skb, bool nocheck,
				   const struct in6_addr *saddr,
				   const struct in6_addr *daddr)
{
#if IS_ENABLED(CONFIG_IPV6)
	udp6_set_csum(nocheck, skb, saddr, daddr, skb->len);
#endif
}

void rust_helper_skb_ip_select_ident(struct net *net, struct sk_buff *skb)
{
	ip_select_ident(net, skb, NULL);
	skb->ignore_df = 1;
}

/*
 * The folded one's complement sum of the packet from @off bytes after the
 * network header to its end: 0 when a checksum covering that range is right,
 * the checksum to store when its field is zero.
 */
__sum16 rust_helper_skb_csum_fold_from(const struct sk_buff *skb, unsigned int off)
{
	int start = skb_network_offset(skb) + off;

	return csum_fold(skb_checksum(skb, start, skb->len - start, 0));
}

void rust_helper_skb_set_csum_unnecessary(struct sk_buff *skb)
{
	skb->ip_summed = CHECKSUM_UNNECESSARY;
}

/*
 * Drop the first @len bytes after the network header; what follows becomes the
 * packet, starting with its (new) network header, without IP options state.
 */
int rust_helper_skb_pull_network(struct sk_buff *skb, unsigned int len)
{
	int off = skb_network_offset(skb);

	if (off < 0 || !pskb_pull(skb, off + len))
		return -EINVAL;
	skb_reset_network_header(skb);
	memset(&IPCB(skb)->opt, 0, sizeof(IPCB(skb)->opt));
	return 0;
}

/* Learn a path MTU for the IPv4 flow of the packet's (network) header. */
void rust_helper_skb_update_pmtu_v4(struct sk_buff *skb, struct net *net, u32 mtu)
{
	ipv4_update_pmtu(skb, net, mtu, 0, 0);
}

/*
 * A received packet that a hook sends on from the local host: no longer owned
 * by a local socket found by early demux, no receive timestamp, and no
 * receive-side full checksum once it is changed.
 */
void rust_helper_skb_prepare_resend(struct sk_buff *skb)
{
	if (skb->dev) {
		skb_orphan(skb);
		skb_clear_tstamp(skb);
	}
	skb_forward_csum(skb);
}

/*
 * The IPv6 header chain of the packet at @off bytes after the network header
 * (0: the packet's own; else a quoted packet's): ipv6_find_hdr() up to the
 * transport header. Returns its protocol (negative errno if the chain is
 * truncated or bad); *@l4 gets its offset after the network header, *@fragoff
 * the fragment offset of a non-first fragment (0 otherwise), *@frag whether
 * a fragment header was seen.
 */
int rust_helper_skb_ipv6_find_hdr(const struct sk_buff *skb, unsigned int off,
				  unsigned int *l4, u16 *fragoff, bool *frag)
{
#if IS_ENABLED(CONFIG_IPV6)
	int noff = skb_network_offset(skb);
	unsigned int offset = off ? noff + off : 0;
	unsigned short fo = 0;
	int flags = 0, proto;

	if (noff < 0)
		return -EINVAL;
	proto = ipv6_find_hdr(skb, &offset, -1, &fo, &flags);
	if (proto < 0)
		return proto;
	/* A non-first fragment leaves the offset at its start (the header). */
	*l4 = offset - noff;
	*fragoff = fo;
	*frag = !!(flags & IP6_FH_F_FRAG);
	return proto;
#else
	return -EAFNOSUPPORT;
#endif
}

/*
 * Send an ICMPv6 error about the packet back to its source, as IPVS does:
 * a packet of a local sender (no device) is taken as received on loopback,
 * or, with @from_route, on its route's device (a hop limit running out).
 */
void rust_helper_skb_icmpv6_send(struct sk_buff *skb, struct net *net, u8 type,
				 u8 code, u32 info, bool from_route)
{
#if IS_ENABLED(CONFIG_IPV6)
	if (from_route && skb_dst(skb))
		skb->dev = skb_dst(skb)->dev;
	else if (!skb->dev)
		skb->dev = net->loopback_dev;
	icmpv6_send(skb, type, code, info);
#endif
}

/* The route to the packet's destination failed: tell its sender (dst_link_failure). */
void rust_helper_skb_link_failure(struct sk_buff *skb)
{
	if (!skb->dev && skb_dst(skb))
		skb->dev = skb_dst(skb)->dev;
	if (skb_dst(skb))
		dst_link_failure(skb);
}

/* Whether the packet arrived on a device other than loopback. */
bool rust_helper_skb_from_remote_dev(const struct sk_buff *skb)
{
	return skb->dev && !(skb->dev->flags & IFF_LOOPBACK);
}

/* Whether an IPv6 packet's attached route delivers to this host. */
bool rust_helper_skb_route6_is_local(const struct sk_buff *skb)
{
	struct dst_entry *dst = skb_dst(skb);

	return dst && dst->dev && (dst->dev->flags & IFF_LOOPBACK);
}

/* Whether a (GSO or plain) packet fits @mtu, as ip_vs_exceeds_mtu() sees it. */
bool rust_helper_skb_fits_mtu(const struct sk_buff *skb, unsigned int mtu)
{
	if (skb->len <= mtu)
		return true;
	return skb_is_gso(skb) && skb_gso_validate_network_len(skb, mtu);
}

/* The largest fragment of a reassembled IPv6 packet (0 if it was not one). */
u16 rust_helper_skb_frag_max_size6(const struct sk_buff *skb)
{
#if IS_ENABLED(CONFIG_IPV6)
	return IP6CB(skb)->frag_max_size;
#else
	return 0;
#endif
}

/* Send an IPv6 packet on its attached route, through LOCAL_OUT. */
int rust_helper_skb_ip6_local_out(struct net *net, struct sk_buff *skb)
{
#if IS_ENABLED(CONFIG_IPV6)
	return ip6_local_out(net, skb->sk, skb);
#else
	kfree_skb(skb);
	return -EAFNOSUPPORT;
#endif
}

/* Re-route a locally changed IPv6 packet (ip6_route_me_harder). */
int rust_helper_skb_ip6_route_me_harder(struct net *net, struct sk_buff *skb)
{
#if IS_ENABLED(CONFIG_IPV6)
	return ip6_route_me_harder(net, skb->sk, skb);
#else
	return -EAFNOSUPPORT;
#endif
}

/* The transport checksum of an IPv6 packet from @off after the network header, with
 * the pseudo header of @saddr, @daddr and @proto: folded, ready to store. */
__sum16 rust_helper_skb_csum_ipv6(const struct sk_buff *skb, unsigned int off,
				  const struct in6_addr *saddr,
				  const struct in6_addr *daddr, u8 proto)
{
	int start = skb_network_offset(skb) + off;
	unsigned int len = skb->len - start;

	return csum_ipv6_magic(saddr, daddr, len, proto,
			       skb_checksum(skb, start, len, 0));
}

/*
 * Make @skb linear and private, then give it @len bytes from data on: grown at
 * the tail (zero-filled; the head is reallocated when it has too little
 * tailroom) or trimmed. The checksum state is the caller's to fix.
 */
int rust_helper_skb_resize_linear(struct sk_buff *skb, unsigned int len)
{
	unsigned int old;

	if (skb_ensure_writable(skb, skb->len))
		return -ENOMEM;
	old = skb->len;
	if (len > old) {
		unsigned int grow = len - old;

		if (skb_tailroom(skb) < grow &&
		    pskb_expand_head(skb, 0, grow - skb_tailroom(skb), GFP_ATOMIC))
			return -ENOMEM;
		memset(skb_put(skb, grow), 0, grow);
	} else if (len < old) {
		__skb_trim(skb, len);
	}
	return 0;
}
