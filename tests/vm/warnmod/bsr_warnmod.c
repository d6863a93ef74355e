// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only module: loading it makes the kernel log a WARNING with a stack
 * trace, so the harness can prove that such a log line fails a test.
 */
#include <linux/module.h>
#include <linux/bug.h>

static bool warn_on_load = true;
module_param(warn_on_load, bool, 0444);
MODULE_PARM_DESC(warn_on_load, "emit a WARN() from module init (default yes)");

static int __init bsr_warnmod_init(void)
{
	WARN(warn_on_load, "bsr_warnmod: deliberate warning for the test harness\n");
	return 0;
}

static void __exit bsr_warnmod_exit(void)
{
}

module_init(bsr_warnmod_init);
module_exit(bsr_warnmod_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("bsr test harness: a module that warns on load");
