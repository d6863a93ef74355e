// SPDX-License-Identifier: GPL-2.0
/*
 * bsr generic-netlink family: commands and the "events" multicast group.
 */
#include <generated/utsrelease.h>
#include <net/genetlink.h>
#include "bsr_int.h"

static struct genl_family bsr_genl_family;

static const struct genl_multicast_group bsr_mcgrps[] = {
	{ .name = BSR_GENL_MCG_EVENTS, },
};

static int bsr_nl_get_version(struct sk_buff *skb, struct genl_info *info)
{
	struct bsr_version_info vi = {
		.abi_version = BSR_ABI_VERSION,
		.proto_min = BSR_PROTO_VERSION_MIN,
		.proto_max = BSR_PROTO_VERSION_MAX,
	};
	struct bsr_module_stats ms = {};
	struct bsr_genlmsghdr *hdr;
	struct sk_buff *msg;

	strscpy(vi.version, BSR_VERSION, sizeof(vi.version));
	strscpy(vi.build, UTS_RELEASE, sizeof(vi.build));

	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &bsr_genl_family, 0,
				BSR_CMD_GET_VERSION);
	if (!hdr)
		goto nla_put_failure;
	hdr->minor = BSR_MINOR_NONE;
	hdr->ret_code = 0;
	if (bsr_struct_to_skb(&bsr_version_info_desc, msg, &vi, true) ||
	    bsr_struct_to_skb(&bsr_module_stats_desc, msg, &ms, true))
		goto nla_put_failure;
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);

nla_put_failure:
	nlmsg_free(msg);
	return -EMSGSIZE;
}

static const struct genl_small_ops bsr_genl_ops[] = {
	{
		.cmd = BSR_CMD_GET_VERSION,
		.doit = bsr_nl_get_version,
	},
};

static struct genl_family bsr_genl_family __ro_after_init = {
	.name = BSR_GENL_NAME,
	.version = BSR_GENL_VERSION,
	.hdrsize = NLA_ALIGN(sizeof(struct bsr_genlmsghdr)),
	.maxattr = BSR_A_MAX,
	.policy = bsr_genl_policy,
	.netnsok = true,
	.module = THIS_MODULE,
	.small_ops = bsr_genl_ops,
	.n_small_ops = ARRAY_SIZE(bsr_genl_ops),
	.resv_start_op = BSR_CMD_MAX + 1,
	.mcgrps = bsr_mcgrps,
	.n_mcgrps = ARRAY_SIZE(bsr_mcgrps),
};

int bsr_nl_init(void)
{
	return genl_register_family(&bsr_genl_family);
}

void bsr_nl_exit(void)
{
	genl_unregister_family(&bsr_genl_family);
}
