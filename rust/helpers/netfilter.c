// SPDX-License-Identifier: GPL-2.0

#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <net/netfilter/nf_conntrack.h>
#include <net/dst.h>

void rust_helper_nf_reset_ct_untracked(struct sk_buff *skb)
{
#if IS_ENABLED(CONFIG_NF_CONNTRACK)
	nf_reset_ct(skb);
	nf_ct_set(skb, NULL, IP_CT_UNTRACKED);
#endif
}

/*
 * Sends on a packet that a hook forwards with its headers complete (rewritten
 * in place, sums included), as upstream's ip_vs_send_or_cont() does for
 * another host: untracked, no longer owned by a local socket, without receive
 * timestamp and receive-side full checksum, through the LOCAL_OUT hooks of
 * @pf to dst_output() on its attached route (dropped without one). Unlike
 * ip_local_out(), no length or header sum is recomputed.
 *
 * @passes is a hook function that accepts this packet unseen (the caller
 * marked it for that): if it is the only one at LOCAL_OUT, the hooks would
 * change nothing and the packet goes to dst_output() at once.
 */
void rust_helper_skb_send_prepared(struct net *net, struct sk_buff *skb, u8 pf,
				   nf_hookfn *passes)
{
	struct dst_entry *dst = skb_dst(skb);
	const struct nf_hook_entries *e = NULL;

	if (unlikely(!dst)) {
		kfree_skb(skb);
		return;
	}
#if IS_ENABLED(CONFIG_NF_CONNTRACK)
	nf_reset_ct(skb);
	nf_ct_set(skb, NULL, IP_CT_UNTRACKED);
#endif
	if (skb->dev) {
		skb_orphan(skb);
		skb_clear_tstamp(skb);
	}
	skb_forward_csum(skb);
	rcu_read_lock();
	if (pf == NFPROTO_IPV4)
		e = rcu_dereference(net->nf.hooks_ipv4[NF_INET_LOCAL_OUT]);
#if IS_ENABLED(CONFIG_IPV6)
	else if (pf == NFPROTO_IPV6)
		e = rcu_dereference(net->nf.hooks_ipv6[NF_INET_LOCAL_OUT]);
#endif
	if (e && e->num_hook_entries == 1 && e->hooks[0].hook == passes) {
		rcu_read_unlock();
		dst_output(net, NULL, skb);
		return;
	}
	rcu_read_unlock();
	NF_HOOK(pf, NF_INET_LOCAL_OUT, net, NULL, skb, NULL, dst->dev, dst_output);
}
