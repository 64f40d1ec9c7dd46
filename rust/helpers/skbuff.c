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

void rust_helper_ip_rt_put(struct rtable *rt)
{
	ip_rt_put(rt);
}

unsigned int rust_helper_rt_mtu(const struct rtable *rt)
{
	return dst_mtu(&rt->dst);
}

/* Whether a cached route is still valid (not obsoleted by a routing change, a PMTU
 * exception or its device going away). */
bool rust_helper_rt_dst_check(struct rtable *rt)
{
	return dst_check(&rt->dst, 0) != NULL;
}

/* Attach @rt to @skb in place of its route; the reference passes to @skb. */
void rust_helper_skb_set_rtable(struct sk_buff *skb, struct rtable *rt)
{
	skb_dst_drop(skb);
	skb_dst_set(skb, &rt->dst);
}

struct dst_entry *rust_helper_skb_dst(const struct sk_buff *skb)
{
	return skb_dst(skb);
}

/*
 * Attach the cached route @rt to @skb without a reference, in place of its
 * route; the caller holds the RCU read lock that keeps @rt alive.
 */
void rust_helper_skb_set_rtable_noref(struct sk_buff *skb, struct rtable *rt)
{
	skb_dst_drop(skb);
	skb_dst_set_noref(skb, &rt->dst);
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
 * Make room for and push an outer IPv4 header of an IP-in-IP tunnel in front of
 * the packet, which becomes the inner packet (for GSO too); the new network
 * header is left for the caller to fill in.
 */
/*
 * Make the packet the inner packet of a tunnel whose headers take @extra
 * bytes besides the outer IPv4 header: headroom for them, GSO set up with
 * @gso_type, the inner headers marked (an IPv4 packet inside).
 */
int rust_helper_skb_tunnel_prepare(struct sk_buff *skb, unsigned int extra,
				   int gso_type)
{
	struct dst_entry *dst = skb_dst(skb);
	unsigned int headroom = sizeof(struct iphdr) + extra +
				(dst ? LL_RESERVED_SPACE(dst->dev) : LL_MAX_HEADER);
	int err;

	err = skb_cow_head(skb, headroom);
	if (err)
		return err;
	err = iptunnel_handle_offloads(skb, gso_type);
	if (err)
		return err;
	skb->transport_header = skb->network_header;
	skb_set_inner_ipproto(skb, IPPROTO_IPIP);
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
