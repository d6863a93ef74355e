// SPDX-License-Identifier: GPL-2.0
/*
 * bsr: Block Sync & Replication -- module entry points.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <net/genetlink.h>
#include "bsr_int.h"

static int __init bsr_init(void)
{
	int err;

	err = bsr_dev_init();
	if (err)
		return err;
	err = bsr_nl_init();
	if (err) {
		bsr_dev_exit();
		return err;
	}
	pr_info("version %s (abi %d) loaded, block major %d\n", BSR_VERSION,
		BSR_ABI_VERSION, bsr_major);
	return 0;
}

static void __exit bsr_exit(void)
{
	bsr_down_all();
	bsr_nl_exit();
	bsr_dev_exit();
	pr_info("unloaded\n");
}

module_init(bsr_init);
module_exit(bsr_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("bsr: Block Sync & Replication");
MODULE_VERSION(BSR_VERSION);
MODULE_ALIAS_GENL_FAMILY(BSR_GENL_NAME);
