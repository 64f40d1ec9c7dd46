// SPDX-License-Identifier: GPL-2.0

#include <net/genetlink.h>
#include <net/netlink.h>
#include <net/sock.h>

void *rust_helper_nla_data(const struct nlattr *nla)
{
	return nla_data(nla);
}

int rust_helper_nla_len(const struct nlattr *nla)
{
	return nla_len(nla);
}

int rust_helper_nla_type(const struct nlattr *nla)
{
	return nla_type(nla);
}

int rust_helper_nla_parse_nested_deprecated(struct nlattr **tb, int maxtype,
					    const struct nlattr *nla,
					    const struct nla_policy *policy)
{
	return nla_parse_nested_deprecated(tb, maxtype, nla, policy, NULL);
}

int rust_helper_genl_parse_nested_reporting(struct nlattr **tb, int maxtype,
					     const struct nlattr *nla,
					     const struct nla_policy *policy,
					     struct genl_info *info)
{
	return nla_parse_nested_deprecated(tb, maxtype, nla, policy, info->extack);
}

int rust_helper_genl_dump_parse(struct netlink_callback *cb, struct nlattr **tb,
				int maxtype, const struct nla_policy *policy)
{
	return nlmsg_parse_deprecated(cb->nlh, GENL_HDRLEN, tb, maxtype, policy,
				      cb->extack);
}

u8 rust_helper_genl_dump_cmd(struct netlink_callback *cb)
{
	const struct genlmsghdr *hdr = nlmsg_data(cb->nlh);

	return hdr->cmd;
}

void *rust_helper_genl_dump_put(struct sk_buff *skb, struct netlink_callback *cb,
				u8 cmd)
{
	return genlmsg_put(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
			   genl_info_dump(cb)->family, NLM_F_MULTI, cmd);
}

struct net *rust_helper_genl_dump_net(struct netlink_callback *cb)
{
	return sock_net(cb->skb->sk);
}

struct net *rust_helper_genl_info_net(const struct genl_info *info)
{
	return genl_info_net(info);
}

struct sk_buff *rust_helper_genlmsg_new_goodsize(gfp_t flags)
{
	return genlmsg_new(NLMSG_GOODSIZE, flags);
}

void *rust_helper_genlmsg_put_reply(struct sk_buff *skb, struct genl_info *info,
				    const struct genl_family *family, u8 cmd)
{
	return genlmsg_put_reply(skb, info, family, 0, cmd);
}

void rust_helper_genlmsg_end(struct sk_buff *skb, void *hdr)
{
	genlmsg_end(skb, hdr);
}

void rust_helper_genlmsg_cancel(struct sk_buff *skb, void *hdr)
{
	genlmsg_cancel(skb, hdr);
}

int rust_helper_genlmsg_reply(struct sk_buff *skb, struct genl_info *info)
{
	return genlmsg_reply(skb, info);
}

void rust_helper_nlmsg_free(struct sk_buff *skb)
{
	nlmsg_free(skb);
}

struct nlattr *rust_helper_nla_nest_start_noflag(struct sk_buff *skb, int attrtype)
{
	return nla_nest_start_noflag(skb, attrtype);
}

int rust_helper_nla_nest_end(struct sk_buff *skb, struct nlattr *start)
{
	return nla_nest_end(skb, start);
}

void rust_helper_nla_nest_cancel(struct sk_buff *skb, struct nlattr *start)
{
	nla_nest_cancel(skb, start);
}

unsigned int rust_helper_skb_len(const struct sk_buff *skb)
{
	return skb->len;
}
