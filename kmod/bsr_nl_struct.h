/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Table-driven netlink structs: each nested attribute of the bsr family is
 * described by a bsr_struct_desc (generated from bsr/abi.py), and the
 * functions here fill defaults, parse and emit any of them.
 */
#ifndef _BSR_NL_STRUCT_H
#define _BSR_NL_STRUCT_H

#include <linux/types.h>
#include <net/netlink.h>
#include "include/uapi/linux/bsr_genl.h"

enum bsr_field_type {
	BSR_FT_U8,
	BSR_FT_U32,
	BSR_FT_S32,
	BSR_FT_U64,
	BSR_FT_STR,
	BSR_FT_BIN,
};

#define BSR_FF_REQUIRED		0x1	/* must be given on creation */
#define BSR_FF_SENSITIVE	0x2	/* never broadcast or dumped */
#define BSR_FF_INVARIANT	0x4	/* may not change after creation */

struct bsr_field_desc {
	const char *name;	/* as users spell it: al-extents */
	u16 attr;
	u8 type;		/* enum bsr_field_type */
	u8 flags;		/* BSR_FF_* */
	u16 offset;
	u16 size;
	u16 len_offset;		/* BSR_FT_BIN: offset of the u32 length */
	s64 min;
	u64 max;
	u64 def;
	const char *sdef;
	const char *msg_range;		/* static extack texts */
	const char *msg_required;
	const char *msg_invariant;
};

struct bsr_struct_desc {
	const char *name;
	u16 attr;		/* top-level BSR_A_* */
	u16 maxattr;
	u16 pad;
	const struct nla_policy *policy;
	const struct bsr_field_desc *fields;
	unsigned int nfields;
	size_t size;
};

void bsr_struct_set_defaults(const struct bsr_struct_desc *d, void *s);
int bsr_struct_from_attrs(const struct bsr_struct_desc *d, void *s,
			  struct nlattr *nla, struct netlink_ext_ack *extack,
			  bool change);
int bsr_struct_to_skb(const struct bsr_struct_desc *d, struct sk_buff *skb,
		      const void *s, bool exclude_sensitive);

#endif /* _BSR_NL_STRUCT_H */
