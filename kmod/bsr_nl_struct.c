// SPDX-License-Identifier: GPL-2.0
/*
 * Generic helpers over the generated struct descriptors: defaults,
 * strict parsing with range checks, and serialisation into a message.
 */
#include <linux/string.h>
#include <net/genetlink.h>
#include "bsr_nl_struct.h"

/* NL_SET_ERR_MSG wants a literal; the descriptor texts are static too. */
static void set_err(struct netlink_ext_ack *extack, const struct nlattr *a,
		    const char *msg)
{
	if (!extack)
		return;
	extack->_msg = msg;
	extack->bad_attr = a;
}

static u64 field_get(const struct bsr_field_desc *f, const void *s)
{
	const void *p = s + f->offset;

	switch (f->type) {
	case BSR_FT_U8:
		return *(const u8 *)p;
	case BSR_FT_U32:
		return *(const u32 *)p;
	case BSR_FT_S32:
		return (u64)(s64)*(const s32 *)p;
	case BSR_FT_U64:
		return *(const u64 *)p;
	}
	return 0;
}

static void field_set(const struct bsr_field_desc *f, void *s, u64 v)
{
	void *p = s + f->offset;

	switch (f->type) {
	case BSR_FT_U8:
		*(u8 *)p = v;
		break;
	case BSR_FT_U32:
		*(u32 *)p = v;
		break;
	case BSR_FT_S32:
		*(s32 *)p = (s32)v;
		break;
	case BSR_FT_U64:
		*(u64 *)p = v;
		break;
	}
}

void bsr_struct_set_defaults(const struct bsr_struct_desc *d, void *s)
{
	unsigned int i;

	memset(s, 0, d->size);
	for (i = 0; i < d->nfields; i++) {
		const struct bsr_field_desc *f = &d->fields[i];

		if (f->type == BSR_FT_STR) {
			if (f->sdef)
				strscpy(s + f->offset, f->sdef, f->size);
		} else if (f->type != BSR_FT_BIN) {
			field_set(f, s, f->def);
		}
	}
}

static bool field_in_range(const struct bsr_field_desc *f, u64 v)
{
	if (f->type == BSR_FT_S32)
		return (s64)v >= f->min && (s64)v <= (s64)f->max;
	return v >= (u64)f->min && v <= f->max;
}

static u64 nla_get_field(const struct bsr_field_desc *f,
			 const struct nlattr *a)
{
	switch (f->type) {
	case BSR_FT_U8:
		return nla_get_u8(a);
	case BSR_FT_U32:
		return nla_get_u32(a);
	case BSR_FT_S32:
		return (u64)(s64)nla_get_s32(a);
	case BSR_FT_U64:
		return nla_get_u64(a);
	}
	return 0;
}

static int field_from_attr(const struct bsr_field_desc *f, void *s,
			   const struct nlattr *a,
			   struct netlink_ext_ack *extack)
{
	u64 v;

	switch (f->type) {
	case BSR_FT_STR:
		nla_strscpy(s + f->offset, a, f->size);
		return 0;
	case BSR_FT_BIN:
		memcpy(s + f->offset, nla_data(a), nla_len(a));
		*(u32 *)(s + f->len_offset) = nla_len(a);
		return 0;
	}
	v = nla_get_field(f, a);
	if (!field_in_range(f, v)) {
		set_err(extack, a, f->msg_range);
		return -ERANGE;
	}
	field_set(f, s, v);
	return 0;
}

/*
 * Parse the nested attribute @nla into @s.  Fields not present keep their
 * current value, so a caller fills defaults (creation) or the options in
 * force (change) first.  On error @s may be partially updated: callers
 * parse into a copy.
 */
int bsr_struct_from_attrs(const struct bsr_struct_desc *d, void *s,
			  struct nlattr *nla, struct netlink_ext_ack *extack,
			  bool change)
{
	struct nlattr **tb;
	unsigned int i;
	int err;

	tb = kcalloc(d->maxattr + 1, sizeof(*tb), GFP_KERNEL);
	if (!tb)
		return -ENOMEM;
	err = nla_parse_nested(tb, d->maxattr, nla, d->policy, extack);
	for (i = 0; !err && i < d->nfields; i++) {
		const struct bsr_field_desc *f = &d->fields[i];
		struct nlattr *a = tb[f->attr];

		if (!a) {
			if (!change && (f->flags & BSR_FF_REQUIRED)) {
				set_err(extack, nla, f->msg_required);
				err = -EINVAL;
			}
			continue;
		}
		if (change && (f->flags & BSR_FF_INVARIANT)) {
			set_err(extack, a, f->msg_invariant);
			err = -EINVAL;
			continue;
		}
		err = field_from_attr(f, s, a, extack);
	}
	kfree(tb);
	return err;
}

static int field_to_skb(const struct bsr_field_desc *f, struct sk_buff *skb,
			const void *s, u16 pad)
{
	const void *p = s + f->offset;

	switch (f->type) {
	case BSR_FT_U8:
		return nla_put_u8(skb, f->attr, *(const u8 *)p);
	case BSR_FT_U32:
		return nla_put_u32(skb, f->attr, *(const u32 *)p);
	case BSR_FT_S32:
		return nla_put_s32(skb, f->attr, *(const s32 *)p);
	case BSR_FT_U64:
		return nla_put_u64_64bit(skb, f->attr, field_get(f, s), pad);
	case BSR_FT_STR:
		return nla_put_string(skb, f->attr, p);
	case BSR_FT_BIN:
		return nla_put(skb, f->attr, *(const u32 *)(s + f->len_offset),
			       p);
	}
	return -EINVAL;
}

int bsr_struct_to_skb(const struct bsr_struct_desc *d, struct sk_buff *skb,
		      const void *s, bool exclude_sensitive)
{
	struct nlattr *nest;
	unsigned int i;

	nest = nla_nest_start(skb, d->attr);
	if (!nest)
		return -EMSGSIZE;
	for (i = 0; i < d->nfields; i++) {
		const struct bsr_field_desc *f = &d->fields[i];

		if (exclude_sensitive && (f->flags & BSR_FF_SENSITIVE))
			continue;
		if (field_to_skb(f, skb, s, d->pad)) {
			nla_nest_cancel(skb, nest);
			return -EMSGSIZE;
		}
	}
	nla_nest_end(skb, nest);
	return 0;
}
