// SPDX-License-Identifier: GPL-2.0
/*
 * State of the objects as netlink attributes, and the notifications sent
 * to the "events" multicast group on every create/change/destroy.
 *
 * A notification carries the object's context, a notify header (type,
 * global sequence number) and the full info and statistics: listeners
 * work out what changed.  Sensitive fields are never put.
 */
#include <linux/slab.h>
#include <linux/string.h>
#include "bsr_int.h"

static atomic_t notify_seq = ATOMIC_INIT(0);
static atomic64_t notify_sent = ATOMIC64_INIT(0);
static atomic64_t notify_dropped = ATOMIC64_INIT(0);

u32 bsr_notify_seq(void)
{
	return atomic_read(&notify_seq);
}

void bsr_module_stats(struct bsr_module_stats *ms)
{
	ms->requests_allocated = bsr_requests_allocated();
	ms->notifications_sent = atomic64_read(&notify_sent);
	ms->notifications_dropped = atomic64_read(&notify_dropped);
}

int bsr_put_notify(struct sk_buff *skb, u32 type, u32 seq)
{
	struct bsr_notify n = { .type = type, .seq = seq };

	return bsr_struct_to_skb(&bsr_notify_desc, skb, &n, true);
}

static int put_ctx(struct sk_buff *skb, const struct bsr_ctx *ctx)
{
	return bsr_struct_to_skb(&bsr_ctx_desc, skb, ctx, true);
}

static void res_ctx(struct bsr_ctx *ctx, struct bsr_resource *res)
{
	memset(ctx, 0, sizeof(*ctx));
	strscpy(ctx->res_name, res->name, sizeof(ctx->res_name));
}

int bsr_put_resource(struct sk_buff *skb, struct bsr_resource *res)
{
	struct bsr_res_info ri = {};
	struct bsr_res_stats rs = {};
	struct bsr_device *dev;
	struct bsr_ctx ctx;
	u32 wo = BSR_WRITE_ORDERING_NONE;

	list_for_each_entry(dev, &res->devices, list) {
		u32 d = dev->disk_flushes ? BSR_WRITE_ORDERING_FLUSH :
					    BSR_WRITE_ORDERING_DRAIN;
		if (!dev->backing)
			continue;
		if (wo == BSR_WRITE_ORDERING_NONE || d < wo)
			wo = d;
	}
	res_ctx(&ctx, res);
	ri.role = res->role;
	ri.susp = res->susp;
	ri.write_ordering = wo;
	rs.write_ordering = wo;
	return put_ctx(skb, &ctx) ||
	       bsr_struct_to_skb(&bsr_res_info_desc, skb, &ri, true) ||
	       bsr_struct_to_skb(&bsr_res_stats_desc, skb, &rs, true);
}

static void hist_copy(u8 *out, u32 *len, const u64 *h)
{
	memcpy(out, h, BSR_LAT_BUCKETS * sizeof(*h));
	*len = BSR_LAT_BUCKETS * sizeof(*h);
}

static void device_stats(struct bsr_device *dev, struct bsr_device_stats *s)
{
	struct bsr_dev_stats *st = &dev->stats;
	struct bsr_dev_io_stats io;

	bsr_dev_io_stats(dev, &io);
	s->capacity = get_capacity(dev->disk);
	s->read_sectors = io.read_sectors;
	s->write_sectors = io.write_sectors;
	s->read_ios = io.read_ios;
	s->write_ios = io.write_ios;
	s->flush_ios = io.flush_ios;
	s->discard_ios = io.discard_ios;
	s->io_errors = atomic64_read(&st->io_errors);
	s->completed_ios = io.completed_ios;
	s->local_lat_ns = io.local_lat_ns;
	s->master_lat_ns = io.master_lat_ns;
	s->upper_pending = atomic_read(&st->upper_pending);
	s->lower_pending = atomic_read(&st->lower_pending);
	s->al_suspended = 0;
	s->blocked = dev->resource->susp;
	hist_copy(s->local_lat_hist, &s->local_lat_hist_len, io.local_hist);
	hist_copy(s->master_lat_hist, &s->master_lat_hist_len, io.master_hist);
	/* the backing disk cannot go away: detach needs bsr_cfg_mutex */
	if (dev->backing) {
		struct bsr_md_stats *ms = bsr_backing_stats(dev->backing);

		s->al_writes = atomic64_read(&ms->al_writes);
		s->bm_writes = atomic64_read(&ms->bm_writes);
		s->al_hits = atomic64_read(&ms->al_hits);
		s->al_misses = atomic64_read(&ms->al_misses);
		s->al_starving = atomic64_read(&ms->al_starving);
		s->al_used = bsr_al_used(dev->backing);
		s->out_of_sync = bsr_bm_oos_sectors_any(dev->backing);
	}
}

static void device_info(struct bsr_device *dev, struct bsr_device_info *di)
{
	struct bsr_md_info md;
	unsigned long flags;

	di->disk_state = READ_ONCE(dev->disk_state);
	spin_lock_irqsave(&dev->resource->lock, flags);
	di->open_count = dev->open_cnt;
	di->open_rw = dev->open_rw > 0;
	spin_unlock_irqrestore(&dev->resource->lock, flags);
	di->client = 0;
	di->meta_dev_idx = dev->disk_conf.meta_dev_idx;
	if (!dev->backing)
		return;
	strscpy(di->backing_dev, dev->disk_conf.backing_dev,
		sizeof(di->backing_dev));
	strscpy(di->meta_dev, dev->disk_conf.meta_dev, sizeof(di->meta_dev));
	memset(&md, 0, sizeof(md));
	bsr_backing_info(dev->backing, &md);
	di->current_uuid = md.current_uuid;
	di->device_uuid = md.device_uuid;
	memcpy(di->history_uuids, md.history_uuids, sizeof(md.history_uuids));
	di->history_uuids_len = sizeof(md.history_uuids);
	di->md_flags = md.flags;
	di->node_id = md.node_id;
	di->max_peers = md.max_peers;
	di->al_extents = md.al_extents;
	di->unclean_attach = md.unclean;
	di->al_replayed = md.al_replayed;
}

static void dev_ctx(struct bsr_ctx *ctx, struct bsr_device *dev)
{
	res_ctx(ctx, dev->resource);
	ctx->volume = dev->volume;
}

int bsr_put_device(struct sk_buff *skb, struct bsr_device *dev)
{
	struct bsr_device_info *di;
	struct bsr_device_stats *ds;
	struct bsr_ctx ctx;
	int err = -ENOMEM;

	di = kzalloc(sizeof(*di), GFP_KERNEL);
	ds = kzalloc(sizeof(*ds), GFP_KERNEL);
	if (!di || !ds)
		goto out;
	dev_ctx(&ctx, dev);
	device_info(dev, di);
	device_stats(dev, ds);
	err = put_ctx(skb, &ctx) ||
	      bsr_struct_to_skb(&bsr_device_info_desc, skb, di, true) ||
	      bsr_struct_to_skb(&bsr_device_stats_desc, skb, ds, true);
	if (err)
		err = -EMSGSIZE;
out:
	kfree(di);
	kfree(ds);
	return err;
}

static void conn_ctx(struct bsr_ctx *ctx, struct bsr_connection *c)
{
	res_ctx(ctx, c->resource);
	ctx->peer_node_id = c->peer_node_id;
	strscpy(ctx->conn_name, c->name, sizeof(ctx->conn_name));
}

int bsr_put_connection(struct sk_buff *skb, struct bsr_connection *c)
{
	struct bsr_conn_info ci = {
		.conn_state = c->cstate,
		.peer_role = c->peer_role,
		.agreed_proto = c->agreed_proto,
	};
	struct bsr_conn_stats cs = {
		.sent_bytes = atomic64_read(&c->sent_bytes),
		.recv_bytes = atomic64_read(&c->recv_bytes),
		.pings = atomic64_read(&c->pings),
		.reconnects = atomic64_read(&c->reconnects),
		.barriers = atomic64_read(&c->barriers),
	};
	struct bsr_ctx ctx;

	bsr_repl_conn_stats(c, &cs);
	conn_ctx(&ctx, c);
	return put_ctx(skb, &ctx) ||
	       bsr_struct_to_skb(&bsr_conn_info_desc, skb, &ci, true) ||
	       bsr_struct_to_skb(&bsr_conn_stats_desc, skb, &cs, true);
}

int bsr_put_peer_device(struct sk_buff *skb, struct bsr_peer_device *pd)
{
	struct bsr_peer_device_info pi = {
		.repl_state = pd->repl_state,
		.peer_disk_state = pd->peer_disk_state,
		.resync_susp = pd->resync_susp,
		.bitmap_uuid = pd->bitmap_uuid,
		.peer_current_uuid = pd->peer_current_uuid,
	};
	struct bsr_peer_device_stats ps = {};
	struct bsr_device *dev = pd->device;
	struct bsr_ctx ctx;

	conn_ctx(&ctx, pd->connection);
	ctx.volume = dev->volume;
	if (dev->backing) {
		int slot = bsr_bm_slot(dev->backing,
				       pd->connection->peer_node_id);

		if (slot >= 0)
			ps.out_of_sync = bsr_bm_oos_sectors(dev->backing, slot);
	}
	bsr_rs_fill_stats(pd, &ps);
	bsr_repl_peer_stats(pd, &ps);
	return put_ctx(skb, &ctx) ||
	       bsr_struct_to_skb(&bsr_peer_device_info_desc, skb, &pi, true) ||
	       bsr_struct_to_skb(&bsr_peer_device_stats_desc, skb, &ps, true);
}

int bsr_put_path(struct sk_buff *skb, struct bsr_path *p)
{
	struct bsr_path_info pi = { .established = p->established };
	struct bsr_ctx ctx;

	conn_ctx(&ctx, p->connection);
	memcpy(ctx.my_addr, p->my_addr, p->my_addr_len);
	ctx.my_addr_len = p->my_addr_len;
	memcpy(ctx.peer_addr, p->peer_addr, p->peer_addr_len);
	ctx.peer_addr_len = p->peer_addr_len;
	return put_ctx(skb, &ctx) ||
	       bsr_struct_to_skb(&bsr_path_info_desc, skb, &pi, true);
}

static int put_config(struct sk_buff *skb, enum bsr_obj_kind kind, void *obj)
{
	struct bsr_ctx ctx;

	switch (kind) {
	case BSR_OBJ_RESOURCE:
		res_ctx(&ctx, obj);
		return put_ctx(skb, &ctx) ||
		       bsr_struct_to_skb(&bsr_res_opts_desc, skb,
					 &((struct bsr_resource *)obj)->opts,
					 true);
	case BSR_OBJ_DEVICE:
		dev_ctx(&ctx, obj);
		return put_ctx(skb, &ctx) ||
		       bsr_struct_to_skb(&bsr_disk_conf_desc, skb,
					 &((struct bsr_device *)obj)->disk_conf,
					 true);
	case BSR_OBJ_CONNECTION:
		conn_ctx(&ctx, obj);
		return put_ctx(skb, &ctx) ||
		       bsr_struct_to_skb(&bsr_net_conf_desc, skb,
					 &((struct bsr_connection *)obj)->net_conf,
					 true);
	case BSR_OBJ_PEER_DEVICE: {
		struct bsr_peer_device *pd = obj;

		conn_ctx(&ctx, pd->connection);
		ctx.volume = pd->device->volume;
		return put_ctx(skb, &ctx) ||
		       bsr_struct_to_skb(&bsr_peer_device_conf_desc, skb,
					 &pd->conf, true);
	}
	default:
		return -EINVAL;
	}
}

int bsr_put_object(struct sk_buff *skb, enum bsr_obj_kind kind, void *obj,
		   bool config)
{
	if (config)
		return put_config(skb, kind, obj) ? -EMSGSIZE : 0;
	switch (kind) {
	case BSR_OBJ_RESOURCE:
		return bsr_put_resource(skb, obj);
	case BSR_OBJ_DEVICE:
		return bsr_put_device(skb, obj);
	case BSR_OBJ_CONNECTION:
		return bsr_put_connection(skb, obj);
	case BSR_OBJ_PEER_DEVICE:
		return bsr_put_peer_device(skb, obj);
	case BSR_OBJ_PATH:
		return bsr_put_path(skb, obj);
	}
	return -EINVAL;
}

const u8 bsr_ev_cmd[] = {
	[BSR_OBJ_RESOURCE] = BSR_CMD_EV_RESOURCE,
	[BSR_OBJ_DEVICE] = BSR_CMD_EV_DEVICE,
	[BSR_OBJ_CONNECTION] = BSR_CMD_EV_CONNECTION,
	[BSR_OBJ_PEER_DEVICE] = BSR_CMD_EV_PEER_DEVICE,
	[BSR_OBJ_PATH] = BSR_CMD_EV_PATH,
};

/* Build and multicast one notification; never called under a spinlock. */
static void notify(enum bsr_obj_kind kind, u32 minor, void *obj,
		   enum bsr_notify_type type)
{
	struct bsr_genlmsghdr *hdr;
	struct sk_buff *skb;
	u32 seq;
	int err;

	might_sleep();
	skb = genlmsg_new(NLMSG_GOODSIZE, GFP_NOIO);
	if (!skb)
		goto dropped;
	hdr = genlmsg_put(skb, 0, 0, &bsr_genl_family, 0, bsr_ev_cmd[kind]);
	if (!hdr)
		goto free;
	hdr->minor = minor;
	hdr->ret_code = 0;
	seq = atomic_inc_return(&notify_seq);
	if (bsr_put_notify(skb, type, seq) || bsr_put_object(skb, kind, obj, false))
		goto free;
	genlmsg_end(skb, hdr);
	err = genlmsg_multicast(&bsr_genl_family, skb, 0, 0, GFP_NOIO);
	if (err && err != -ESRCH)
		goto dropped;
	atomic64_inc(&notify_sent);
	return;
free:
	nlmsg_free(skb);
dropped:
	atomic64_inc(&notify_dropped);
}

void bsr_notify_resource(struct bsr_resource *res, enum bsr_notify_type t)
{
	notify(BSR_OBJ_RESOURCE, BSR_MINOR_NONE, res, t);
}

void bsr_notify_device(struct bsr_device *dev, enum bsr_notify_type t)
{
	notify(BSR_OBJ_DEVICE, dev->minor, dev, t);
}

void bsr_notify_connection(struct bsr_connection *c, enum bsr_notify_type t)
{
	notify(BSR_OBJ_CONNECTION, BSR_MINOR_NONE, c, t);
}

void bsr_notify_peer_device(struct bsr_peer_device *pd,
			    enum bsr_notify_type t)
{
	notify(BSR_OBJ_PEER_DEVICE, pd->device->minor, pd, t);
}

void bsr_notify_path(struct bsr_path *p, enum bsr_notify_type t)
{
	notify(BSR_OBJ_PATH, BSR_MINOR_NONE, p, t);
}

/*
 * "call helper" for a handler event of a peer device (DRBD's
 * split-brain, ...).  bsr runs no program itself: event consumers act on
 * it.  Sent from thread context without locks held.
 */
void bsr_notify_helper(struct bsr_connection *c, u32 volume,
		       const char *helper)
{
	struct bsr_helper_info hi = {};
	struct bsr_genlmsghdr *hdr;
	struct bsr_ctx ctx;
	struct sk_buff *skb;
	int err;

	might_sleep();
	skb = genlmsg_new(NLMSG_GOODSIZE, GFP_NOIO);
	if (!skb)
		goto dropped;
	hdr = genlmsg_put(skb, 0, 0, &bsr_genl_family, 0, BSR_CMD_EV_HELPER);
	if (!hdr)
		goto free;
	hdr->minor = BSR_MINOR_NONE;
	hdr->ret_code = 0;
	conn_ctx(&ctx, c);
	ctx.volume = volume;
	strscpy(hi.helper_name, helper, sizeof(hi.helper_name));
	if (bsr_put_notify(skb, BSR_NOTIFY_TYPE_CALL,
			   atomic_inc_return(&notify_seq)) ||
	    put_ctx(skb, &ctx) ||
	    bsr_struct_to_skb(&bsr_helper_info_desc, skb, &hi, true))
		goto free;
	genlmsg_end(skb, hdr);
	err = genlmsg_multicast(&bsr_genl_family, skb, 0, 0, GFP_NOIO);
	if (err && err != -ESRCH)
		goto dropped;
	atomic64_inc(&notify_sent);
	return;
free:
	nlmsg_free(skb);
dropped:
	atomic64_inc(&notify_dropped);
}
