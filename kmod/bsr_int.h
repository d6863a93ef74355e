/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _BSR_INT_H
#define _BSR_INT_H

#include <linux/types.h>
#include "bsr_nl_gen.h"

#define BSR_VERSION "0.1.0"

int bsr_nl_init(void);
void bsr_nl_exit(void);

#endif /* _BSR_INT_H */
