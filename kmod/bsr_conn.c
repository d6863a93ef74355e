// SPDX-License-Identifier: GPL-2.0
/*
 * bsr connections (one per peer node), their network paths and the peer
 * devices (one per volume and connection).  Replication fills these in;
 * on their own they are configuration objects in state StandAlone/Off.
 */
#include <linux/slab.h>
#include <linux/string.h>
#include "bsr_int.h"

struct bsr_connection *bsr_find_connection(struct bsr_resource *res,
					   u32 peer_node_id)
{
	struct bsr_connection *c;

	list_for_each_entry(c, &res->connections, list)
		if (c->peer_node_id == peer_node_id)
			return c;
	return NULL;
}

struct bsr_connection *bsr_find_conn_name(struct bsr_resource *res,
					  const char *name)
{
	struct bsr_connection *c;

	list_for_each_entry(c, &res->connections, list)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

struct bsr_peer_device *bsr_create_peer_device(struct bsr_connection *conn,
					       struct bsr_device *dev)
{
	struct bsr_peer_device *pd, *pos;

	pd = kzalloc(sizeof(*pd), GFP_KERNEL);
	if (!pd)
		return NULL;
	pd->connection = conn;
	pd->device = dev;
	pd->repl_state = BSR_REPL_STATE_OFF;
	pd->peer_disk_state = BSR_DISK_STATE_DUNKNOWN;
	bsr_struct_set_defaults(&bsr_peer_device_conf_desc, &pd->conf);
	list_for_each_entry(pos, &conn->peer_devices, list)
		if (pos->device->volume > dev->volume)
			break;
	list_add_tail(&pd->list, &pos->list);
	bsr_notify_peer_device(pd, BSR_NOTIFY_TYPE_CREATE);
	return pd;
}

void bsr_destroy_peer_device(struct bsr_peer_device *pd)
{
	bsr_notify_peer_device(pd, BSR_NOTIFY_TYPE_DESTROY);
	list_del(&pd->list);
	kfree(pd);
}

struct bsr_peer_device *bsr_find_peer_device(struct bsr_connection *conn,
					     u32 volume)
{
	struct bsr_peer_device *pd;

	list_for_each_entry(pd, &conn->peer_devices, list)
		if (pd->device->volume == volume)
			return pd;
	return NULL;
}

struct bsr_connection *bsr_create_connection(struct bsr_resource *res,
					     u32 peer_node_id,
					     const char *name,
					     const struct bsr_net_conf *nc)
{
	struct bsr_connection *c, *pos;
	struct bsr_device *dev;

	c = kzalloc(sizeof(*c), GFP_KERNEL);
	if (!c)
		return NULL;
	c->resource = res;
	c->peer_node_id = peer_node_id;
	strscpy(c->name, name, sizeof(c->name));
	c->net_conf = *nc;
	c->cstate = BSR_CONN_STATE_STANDALONE;
	c->peer_role = BSR_ROLE_UNKNOWN;
	INIT_LIST_HEAD(&c->peer_devices);
	INIT_LIST_HEAD(&c->paths);
	list_for_each_entry(pos, &res->connections, list)
		if (pos->peer_node_id > peer_node_id)
			break;
	list_add_tail(&c->list, &pos->list);
	bsr_notify_connection(c, BSR_NOTIFY_TYPE_CREATE);
	list_for_each_entry(dev, &res->devices, list) {
		if (!bsr_create_peer_device(c, dev)) {
			bsr_destroy_connection(c);
			return NULL;
		}
	}
	return c;
}

void bsr_destroy_connection(struct bsr_connection *c)
{
	struct bsr_peer_device *pd, *tpd;
	struct bsr_path *p, *tp;

	if (c->cstate != BSR_CONN_STATE_STANDALONE || c->net)
		bsr_conn_disconnect(c, false);
	list_for_each_entry_safe(p, tp, &c->paths, list)
		bsr_destroy_path(p);
	list_for_each_entry_safe(pd, tpd, &c->peer_devices, list)
		bsr_destroy_peer_device(pd);
	bsr_notify_connection(c, BSR_NOTIFY_TYPE_DESTROY);
	list_del(&c->list);
	kfree(c);
}

static bool addr_eq(const u8 *a, u32 alen, const u8 *b, u32 blen)
{
	return alen == blen && !memcmp(a, b, alen);
}

struct bsr_path *bsr_find_path(struct bsr_connection *conn,
			       const struct bsr_ctx *ctx)
{
	struct bsr_path *p;

	list_for_each_entry(p, &conn->paths, list)
		if (addr_eq(p->my_addr, p->my_addr_len, ctx->my_addr,
			    ctx->my_addr_len) &&
		    addr_eq(p->peer_addr, p->peer_addr_len, ctx->peer_addr,
			    ctx->peer_addr_len))
			return p;
	return NULL;
}

struct bsr_path *bsr_create_path(struct bsr_connection *conn,
				 const struct bsr_ctx *ctx)
{
	struct bsr_path *p;

	p = kzalloc(sizeof(*p), GFP_KERNEL);
	if (!p)
		return NULL;
	p->connection = conn;
	memcpy(p->my_addr, ctx->my_addr, ctx->my_addr_len);
	p->my_addr_len = ctx->my_addr_len;
	memcpy(p->peer_addr, ctx->peer_addr, ctx->peer_addr_len);
	p->peer_addr_len = ctx->peer_addr_len;
	list_add_tail(&p->list, &conn->paths);
	bsr_notify_path(p, BSR_NOTIFY_TYPE_CREATE);
	return p;
}

void bsr_destroy_path(struct bsr_path *p)
{
	bsr_notify_path(p, BSR_NOTIFY_TYPE_DESTROY);
	list_del(&p->list);
	kfree(p);
}
