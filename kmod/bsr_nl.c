// SPDX-License-Identifier: GPL-2.0
/*
 * bsr generic-netlink family: commands, dumps and the "events" group.
 *
 * Every mutating command answers with one message of the same command
 * whose header ret_code is 0 or -errno, with a reason in reply.info_text
 * on failure.  Malformed requests (policy, ranges) fail as netlink errors
 * with an extack message instead.  CONNECT starts the connection thread
 * (bsr_receiver.c) and returns; DISCONNECT stops it.  The resync commands
 * are not registered by this build: the kernel answers them with
 * -EOPNOTSUPP.
 */
#include <generated/utsrelease.h>
#include <crypto/hash.h>
#include <linux/slab.h>
#include <net/genetlink.h>
#include "bsr_int.h"
#include "bsr_proto.h"

#define WHY_LEN 256

enum need {
	NEED_NONE,
	NEED_RES,
	NEED_DEV,
	NEED_CONN,
	NEED_PD,
};

struct bsr_nlreq {
	struct genl_info *info;
	struct bsr_ctx ctx;
	u32 minor;
	struct bsr_resource *res;
	struct bsr_device *dev;
	struct bsr_connection *conn;
	struct bsr_peer_device *pd;
	char why[WHY_LEN];
};

struct bsr_handler {
	int (*fn)(struct bsr_nlreq *c);
	enum need need;
};

static const struct genl_multicast_group bsr_mcgrps[] = {
	{ .name = BSR_GENL_MCG_EVENTS, },
};

static struct nlattr *attr(struct bsr_nlreq *c, int a)
{
	return c->info->attrs[a];
}

/* Parse the optional struct @a into @s, over what @s holds already. */
static int parse(struct bsr_nlreq *c, const struct bsr_struct_desc *d,
		 void *s, bool change)
{
	struct nlattr *nla = attr(c, d->attr);

	if (!nla) {
		if (change)
			return 0;
		if (d == &bsr_disk_conf_desc || d == &bsr_new_minor_parms_desc ||
		    d == &bsr_new_peer_parms_desc) {
			snprintf(c->why, WHY_LEN, "%s is required", d->name);
			return -EINVAL;
		}
		return 0;
	}
	return bsr_struct_from_attrs(d, s, nla, c->info->extack, change);
}

static int nl_reply(struct bsr_nlreq *c, int ret)
{
	struct genl_info *info = c->info;
	struct bsr_genlmsghdr *hdr;
	struct bsr_reply *r;
	struct sk_buff *msg;
	int err = -EMSGSIZE;

	r = kzalloc(sizeof(*r), GFP_KERNEL);
	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg || !r) {
		err = -ENOMEM;
		goto fail;
	}
	hdr = genlmsg_put_reply(msg, info, &bsr_genl_family, 0,
				info->genlhdr->cmd);
	if (!hdr)
		goto fail;
	hdr->minor = c->minor;
	hdr->ret_code = ret;
	if (ret && !c->why[0])
		snprintf(c->why, sizeof(c->why), "error %d", ret);
	strscpy(r->info_text, c->why, sizeof(r->info_text));
	if (bsr_struct_to_skb(&bsr_reply_desc, msg, r, true))
		goto fail;
	genlmsg_end(msg, hdr);
	kfree(r);
	return genlmsg_reply(msg, info);
fail:
	nlmsg_free(msg);
	kfree(r);
	return err;
}

static int need_resource(struct bsr_nlreq *c)
{
	if (!c->ctx.res_name[0]) {
		snprintf(c->why, WHY_LEN, "no resource name given");
		return -EINVAL;
	}
	c->res = bsr_find_resource(c->ctx.res_name);
	if (!c->res) {
		snprintf(c->why, WHY_LEN, "%s: no such resource",
			 c->ctx.res_name);
		return -ENOENT;
	}
	return 0;
}

static int need_device(struct bsr_nlreq *c)
{
	u32 vol = c->ctx.volume == U32_MAX ? 0 : c->ctx.volume;
	int err;

	if (c->minor != BSR_MINOR_NONE) {
		c->dev = bsr_find_minor(c->minor);
		if (!c->dev) {
			snprintf(c->why, WHY_LEN, "minor %u: no such device",
				 c->minor);
			return -ENODEV;
		}
		c->res = c->dev->resource;
		return 0;
	}
	err = need_resource(c);
	if (err)
		return err;
	c->dev = bsr_find_volume(c->res, vol);
	if (!c->dev) {
		snprintf(c->why, WHY_LEN, "%s/%u: no such volume",
			 c->res->name, vol);
		return -ENODEV;
	}
	c->minor = c->dev->minor;
	return 0;
}

static int need_connection(struct bsr_nlreq *c)
{
	int err = need_resource(c);

	if (err)
		return err;
	if (c->ctx.peer_node_id != U32_MAX)
		c->conn = bsr_find_connection(c->res, c->ctx.peer_node_id);
	else if (c->ctx.conn_name[0])
		c->conn = bsr_find_conn_name(c->res, c->ctx.conn_name);
	if (!c->conn) {
		snprintf(c->why, WHY_LEN, "%s: no such connection (peer-node-id %d%s%s)",
			 c->res->name, (int)c->ctx.peer_node_id,
			 c->ctx.conn_name[0] ? ", " : "", c->ctx.conn_name);
		return -ENOENT;
	}
	return 0;
}

static int need_peer_device(struct bsr_nlreq *c)
{
	u32 vol = c->ctx.volume == U32_MAX ? 0 : c->ctx.volume;
	int err = need_connection(c);

	if (err)
		return err;
	c->pd = bsr_find_peer_device(c->conn, vol);
	if (!c->pd) {
		snprintf(c->why, WHY_LEN, "%s: peer %u has no volume %u",
			 c->res->name, c->conn->peer_node_id, vol);
		return -ENODEV;
	}
	c->dev = c->pd->device;
	c->minor = c->dev->minor;
	return 0;
}

static int lookup(struct bsr_nlreq *c, enum need need)
{
	switch (need) {
	case NEED_RES:
		return need_resource(c);
	case NEED_DEV:
		return need_device(c);
	case NEED_CONN:
		return need_connection(c);
	case NEED_PD:
		return need_peer_device(c);
	default:
		return 0;
	}
}

/* ------------------------------------------------------------ resources */

static bool valid_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum(*s) && !strchr("_-.+", *s))
			return false;
	return true;
}

static int h_new_resource(struct bsr_nlreq *c)
{
	struct bsr_res_opts opts;
	int err;

	bsr_struct_set_defaults(&bsr_res_opts_desc, &opts);
	err = parse(c, &bsr_res_opts_desc, &opts, false);
	if (err)
		return err;
	if (!valid_name(c->ctx.res_name)) {
		snprintf(c->why, WHY_LEN,
			 "invalid resource name '%s' (letters, digits, _-.+)",
			 c->ctx.res_name);
		return -EINVAL;
	}
	if (bsr_find_resource(c->ctx.res_name)) {
		snprintf(c->why, WHY_LEN, "%s: resource exists",
			 c->ctx.res_name);
		return -EEXIST;
	}
	return bsr_create_resource(c->ctx.res_name, &opts) ? 0 : -ENOMEM;
}

static int h_del_resource(struct bsr_nlreq *c)
{
	if (!list_empty(&c->res->devices) ||
	    !list_empty(&c->res->connections)) {
		snprintf(c->why, WHY_LEN,
			 "%s: resource still has volumes or connections",
			 c->res->name);
		return -EBUSY;
	}
	bsr_destroy_resource(c->res);
	return 0;
}

static int h_resource_opts(struct bsr_nlreq *c)
{
	struct bsr_res_opts opts = c->res->opts;
	int err = parse(c, &bsr_res_opts_desc, &opts, true);

	if (err)
		return err;
	if (opts.target_only && c->res->role == BSR_ROLE_PRIMARY) {
		snprintf(c->why, WHY_LEN, "%s: target-only while Primary",
			 c->res->name);
		return -EBUSY;
	}
	c->res->opts = opts;
	bsr_notify_resource(c->res, BSR_NOTIFY_TYPE_CHANGE);
	return 0;
}

/* -------------------------------------------------------------- devices */

static int h_new_minor(struct bsr_nlreq *c)
{
	struct bsr_new_minor_parms p;
	struct bsr_device *dev;
	u32 vol = c->ctx.volume == U32_MAX ? 0 : c->ctx.volume;
	int err = parse(c, &bsr_new_minor_parms_desc, &p, false);

	if (err)
		return err;
	if (bsr_find_minor(p.minor)) {
		snprintf(c->why, WHY_LEN, "minor %u: already in use", p.minor);
		return -EEXIST;
	}
	if (bsr_find_volume(c->res, vol)) {
		snprintf(c->why, WHY_LEN, "%s/%u: volume exists",
			 c->res->name, vol);
		return -EEXIST;
	}
	dev = bsr_create_device(c->res, vol, p.minor, c->why, WHY_LEN);
	if (IS_ERR(dev))
		return PTR_ERR(dev);
	c->minor = dev->minor;
	return 0;
}

static int h_del_minor(struct bsr_nlreq *c)
{
	return bsr_destroy_device(c->dev, c->why, WHY_LEN);
}

static int h_attach(struct bsr_nlreq *c)
{
	struct bsr_disk_conf *dc;
	int err;

	dc = kmalloc(sizeof(*dc), GFP_KERNEL);
	if (!dc)
		return -ENOMEM;
	bsr_struct_set_defaults(&bsr_disk_conf_desc, dc);
	err = parse(c, &bsr_disk_conf_desc, dc, false);
	if (!err)
		err = bsr_attach(c->dev, dc, c->why, WHY_LEN);
	kfree(dc);
	return err;
}

static int h_detach(struct bsr_nlreq *c)
{
	struct bsr_detach_parms p = {};
	int err = parse(c, &bsr_detach_parms_desc, &p, false);

	if (!err)
		err = bsr_repl_may_detach(c->dev, c->why, WHY_LEN);
	return err ?: bsr_detach(c->dev, p.force, c->why, WHY_LEN);
}

static int h_disk_opts(struct bsr_nlreq *c)
{
	struct bsr_disk_conf *dc;
	int err;

	if (!c->dev->backing) {
		snprintf(c->why, WHY_LEN, "minor %u: no disk attached",
			 c->dev->minor);
		return -ENODEV;
	}
	dc = kmalloc(sizeof(*dc), GFP_KERNEL);
	if (!dc)
		return -ENOMEM;
	*dc = c->dev->disk_conf;
	err = parse(c, &bsr_disk_conf_desc, dc, true);
	if (!err && dc->disk_size != c->dev->disk_conf.disk_size) {
		snprintf(c->why, WHY_LEN, "use resize to change the size");
		err = -EINVAL;
	}
	if (!err)
		err = bsr_backing_set_conf(c->dev->backing, dc);
	if (!err) {
		bsr_set_disk_conf(c->dev, dc);
		bsr_notify_device(c->dev, BSR_NOTIFY_TYPE_CHANGE);
	}
	kfree(dc);
	return err;
}

static int h_resize(struct bsr_nlreq *c)
{
	struct bsr_resize_parms p = {};
	int err = parse(c, &bsr_resize_parms_desc, &p, false);

	return err ?: bsr_resize(c->dev, p.resize_size, p.resize_force,
				 c->why, WHY_LEN);
}

static int h_primary(struct bsr_nlreq *c)
{
	struct bsr_role_parms p = {};
	int err = parse(c, &bsr_role_parms_desc, &p, false);

	return err ?: bsr_set_primary(c->res, p.force, c->why, WHY_LEN);
}

static int h_secondary(struct bsr_nlreq *c)
{
	return bsr_set_secondary(c->res, c->why, WHY_LEN);
}

static int h_new_c_uuid(struct bsr_nlreq *c)
{
	struct bsr_new_c_uuid_parms p = {};
	int err = parse(c, &bsr_new_c_uuid_parms_desc, &p, false);

	return err ?: bsr_new_c_uuid(c->dev, p.clear_bm, c->why, WHY_LEN);
}

static int h_invalidate(struct bsr_nlreq *c)
{
	return bsr_invalidate(c->dev, c->why, WHY_LEN);
}

static int h_outdate(struct bsr_nlreq *c)
{
	return bsr_outdate(c->dev, c->why, WHY_LEN);
}

static int h_suspend_io(struct bsr_nlreq *c)
{
	bsr_set_susp(c->res, true);
	return 0;
}

static int h_resume_io(struct bsr_nlreq *c)
{
	bsr_set_susp(c->res, false);
	return 0;
}

/* ---------------------------------------------------------- connections */

static int h_new_peer(struct bsr_nlreq *c)
{
	struct bsr_new_peer_parms p;
	struct bsr_connection *conn;
	struct bsr_net_conf *nc;
	int err;

	err = parse(c, &bsr_new_peer_parms_desc, &p, false);
	if (err)
		return err;
	if (p.peer_node_id == c->res->opts.node_id) {
		snprintf(c->why, WHY_LEN, "%s: peer-node-id %u is this node",
			 c->res->name, p.peer_node_id);
		return -EINVAL;
	}
	if (bsr_find_connection(c->res, p.peer_node_id) ||
	    (c->ctx.conn_name[0] &&
	     bsr_find_conn_name(c->res, c->ctx.conn_name))) {
		snprintf(c->why, WHY_LEN, "%s: peer %u (%s) exists",
			 c->res->name, p.peer_node_id, c->ctx.conn_name);
		return -EEXIST;
	}
	nc = kmalloc(sizeof(*nc), GFP_KERNEL);
	if (!nc)
		return -ENOMEM;
	bsr_struct_set_defaults(&bsr_net_conf_desc, nc);
	err = parse(c, &bsr_net_conf_desc, nc, false);
	if (!err) {
		conn = bsr_create_connection(c->res, p.peer_node_id,
					     c->ctx.conn_name, nc);
		if (conn)
			/* from now on writes are marked out of sync for it */
			bsr_repl_track_peer(conn);
		else
			err = -ENOMEM;
	}
	kfree(nc);
	return err;
}

static int h_del_peer(struct bsr_nlreq *c)
{
	bsr_destroy_connection(c->conn);
	return 0;
}

static bool addr_ok(const u8 *a, u32 len)
{
	u16 family;

	if (len < sizeof(family))
		return false;
	memcpy(&family, a, sizeof(family));
	return (family == AF_INET && len >= sizeof(struct sockaddr_in)) ||
	       (family == AF_INET6 && len >= sizeof(struct sockaddr_in6));
}

static int h_new_path(struct bsr_nlreq *c)
{
	if (!addr_ok(c->ctx.my_addr, c->ctx.my_addr_len) ||
	    !addr_ok(c->ctx.peer_addr, c->ctx.peer_addr_len)) {
		snprintf(c->why, WHY_LEN,
			 "%s: a path needs an ipv4 or ipv6 my-addr and peer-addr",
			 c->res->name);
		return -EINVAL;
	}
	if (bsr_find_path(c->conn, &c->ctx)) {
		snprintf(c->why, WHY_LEN, "%s: path exists", c->res->name);
		return -EEXIST;
	}
	return bsr_create_path(c->conn, &c->ctx) ? 0 : -ENOMEM;
}

static int h_del_path(struct bsr_nlreq *c)
{
	struct bsr_path *p = bsr_find_path(c->conn, &c->ctx);

	if (!p) {
		snprintf(c->why, WHY_LEN, "%s: no such path", c->res->name);
		return -ENOENT;
	}
	if (p->established) {
		snprintf(c->why, WHY_LEN,
			 "%s: the connection uses this path; disconnect first",
			 c->res->name);
		return -EBUSY;
	}
	bsr_destroy_path(p);
	return 0;
}

static int h_connect(struct bsr_nlreq *c)
{
	struct bsr_connect_parms p = {};
	int err = parse(c, &bsr_connect_parms_desc, &p, false);

	return err ?: bsr_conn_connect(c->conn, genl_info_net(c->info),
				       p.discard_my_data, c->why, WHY_LEN);
}

static int h_disconnect(struct bsr_nlreq *c)
{
	struct bsr_disconnect_parms p = {};
	int err = parse(c, &bsr_disconnect_parms_desc, &p, false);

	if (!err)
		bsr_conn_disconnect(c->conn, p.force);
	return err;
}

static int h_net_opts(struct bsr_nlreq *c)
{
	struct bsr_net_conf *nc;
	int err;

	nc = kmalloc(sizeof(*nc), GFP_KERNEL);
	if (!nc)
		return -ENOMEM;
	*nc = c->conn->net_conf;
	err = parse(c, &bsr_net_conf_desc, nc, true);
	if (!err) {
		c->conn->net_conf = *nc;
		bsr_notify_connection(c->conn, BSR_NOTIFY_TYPE_CHANGE);
	}
	kfree(nc);
	return err;
}

static int h_peer_device_opts(struct bsr_nlreq *c)
{
	struct bsr_peer_device_conf pc = c->pd->conf;
	int err = parse(c, &bsr_peer_device_conf_desc, &pc, true);

	if (err)
		return err;
	c->pd->conf = pc;
	bsr_notify_peer_device(c->pd, BSR_NOTIFY_TYPE_CHANGE);
	return 0;
}

static int set_resync_susp(struct bsr_nlreq *c, bool on)
{
	u32 old = c->pd->resync_susp;

	if (on)
		c->pd->resync_susp |= BSR_SUSP_USER;
	else
		c->pd->resync_susp &= ~BSR_SUSP_USER;
	if (old != c->pd->resync_susp)
		bsr_notify_peer_device(c->pd, BSR_NOTIFY_TYPE_CHANGE);
	return 0;
}

static int h_pause_sync(struct bsr_nlreq *c)
{
	return set_resync_susp(c, true);
}

static int h_resume_sync(struct bsr_nlreq *c)
{
	return set_resync_susp(c, false);
}

/* invalidate-remote: this node becomes SyncSource of every block. */
static int h_inval_peer(struct bsr_nlreq *c)
{
	if (c->dev->disk_state != BSR_DISK_STATE_UPTODATE) {
		snprintf(c->why, WHY_LEN,
			 "%s: State change failed: (-2) Need access to UpToDate data",
			 c->dev->disk->disk_name);
		return -ENODATA;
	}
	if (c->conn->peer_role == BSR_ROLE_PRIMARY) {
		snprintf(c->why, WHY_LEN,
			 "%s: State change failed: the peer is Primary and cannot become SyncTarget",
			 c->dev->disk->disk_name);
		return -EBUSY;
	}
	if (bsr_rs_request_sync(c->pd, true)) {
		snprintf(c->why, WHY_LEN,
			 "%s: State change failed: (-15) Need a connection to start verify or resync (peer %u is not Connected and idle)",
			 c->dev->disk->disk_name, c->conn->peer_node_id);
		return -ENOTCONN;
	}
	return 0;
}

/* verify: this node becomes VerifyS of [start, stop) (0 = the end). */
static int h_start_ov(struct bsr_nlreq *c)
{
	struct bsr_start_ov_parms p = {};
	const char *alg = c->conn->net_conf.verify_alg;
	const char *disk = c->dev->disk->disk_name;
	struct crypto_shash *tfm;
	int err = parse(c, &bsr_start_ov_parms_desc, &p, false);

	if (err)
		return err;
	if (!alg[0]) {
		snprintf(c->why, WHY_LEN,
			 "%s: State change failed: (-14) Need a verify algorithm to start online verify (set verify-alg in the net options, e.g. verify-alg crc32c)",
			 disk);
		return -EINVAL;
	}
	if (p.ov_stop_sector && p.ov_stop_sector <= p.ov_start_sector) {
		snprintf(c->why, WHY_LEN,
			 "%s: the stop sector %llu is not after the start sector %llu",
			 disk, p.ov_stop_sector, p.ov_start_sector);
		return -EINVAL;
	}
	tfm = crypto_alloc_shash(alg, 0, 0);
	if (IS_ERR(tfm)) {
		snprintf(c->why, WHY_LEN,
			 "%s: verify-alg %s: no such hash in this kernel (%ld)",
			 disk, alg, PTR_ERR(tfm));
		return PTR_ERR(tfm);
	}
	if (crypto_shash_digestsize(tfm) > BSR_OV_MAX_DIGEST) {
		crypto_free_shash(tfm);
		snprintf(c->why, WHY_LEN, "%s: verify-alg %s: digest too large",
			 disk, alg);
		return -EINVAL;
	}
	if (bsr_rs_verify_start(c->pd, tfm, p.ov_start_sector,
				p.ov_stop_sector)) {
		snprintf(c->why, WHY_LEN,
			 "%s: State change failed: (-15) Need a connection to start verify or resync (peer %u is not Connected and idle)",
			 disk, c->conn->peer_node_id);
		return -ENOTCONN;
	}
	return 0;
}

static int h_stop_ov(struct bsr_nlreq *c)
{
	bsr_rs_verify_stop(c->pd);	/* nothing running: nothing to stop */
	return 0;
}

static int h_down(struct bsr_nlreq *c)
{
	return bsr_down_resource(c->res, c->why, WHY_LEN);
}

static const struct bsr_handler handlers[BSR_CMD_MAX + 1] = {
	[BSR_CMD_NEW_RESOURCE] = { h_new_resource, NEED_NONE },
	[BSR_CMD_DEL_RESOURCE] = { h_del_resource, NEED_RES },
	[BSR_CMD_RESOURCE_OPTS] = { h_resource_opts, NEED_RES },
	[BSR_CMD_NEW_MINOR] = { h_new_minor, NEED_RES },
	[BSR_CMD_DEL_MINOR] = { h_del_minor, NEED_DEV },
	[BSR_CMD_ATTACH] = { h_attach, NEED_DEV },
	[BSR_CMD_DETACH] = { h_detach, NEED_DEV },
	[BSR_CMD_DISK_OPTS] = { h_disk_opts, NEED_DEV },
	[BSR_CMD_RESIZE] = { h_resize, NEED_DEV },
	[BSR_CMD_PRIMARY] = { h_primary, NEED_RES },
	[BSR_CMD_SECONDARY] = { h_secondary, NEED_RES },
	[BSR_CMD_NEW_C_UUID] = { h_new_c_uuid, NEED_DEV },
	[BSR_CMD_NEW_PEER] = { h_new_peer, NEED_RES },
	[BSR_CMD_DEL_PEER] = { h_del_peer, NEED_CONN },
	[BSR_CMD_NEW_PATH] = { h_new_path, NEED_CONN },
	[BSR_CMD_DEL_PATH] = { h_del_path, NEED_CONN },
	[BSR_CMD_CONNECT] = { h_connect, NEED_CONN },
	[BSR_CMD_DISCONNECT] = { h_disconnect, NEED_CONN },
	[BSR_CMD_NET_OPTS] = { h_net_opts, NEED_CONN },
	[BSR_CMD_PEER_DEVICE_OPTS] = { h_peer_device_opts, NEED_PD },
	[BSR_CMD_INVALIDATE] = { h_invalidate, NEED_DEV },
	[BSR_CMD_PAUSE_SYNC] = { h_pause_sync, NEED_PD },
	[BSR_CMD_RESUME_SYNC] = { h_resume_sync, NEED_PD },
	[BSR_CMD_INVAL_PEER] = { h_inval_peer, NEED_PD },
	[BSR_CMD_START_OV] = { h_start_ov, NEED_PD },
	[BSR_CMD_STOP_OV] = { h_stop_ov, NEED_PD },
	[BSR_CMD_SUSPEND_IO] = { h_suspend_io, NEED_RES },
	[BSR_CMD_RESUME_IO] = { h_resume_io, NEED_RES },
	[BSR_CMD_OUTDATE] = { h_outdate, NEED_DEV },
	[BSR_CMD_DOWN] = { h_down, NEED_RES },
};

static int bsr_nl_doit(struct sk_buff *skb, struct genl_info *info)
{
	const struct bsr_handler *h = &handlers[info->genlhdr->cmd];
	struct bsr_genlmsghdr *uh = info->userhdr;
	struct bsr_nlreq *c;
	int err;

	c = kzalloc(sizeof(*c), GFP_KERNEL);
	if (!c)
		return -ENOMEM;
	c->info = info;
	c->minor = uh->minor;
	c->ctx.volume = U32_MAX;
	c->ctx.peer_node_id = U32_MAX;
	if (info->attrs[BSR_A_CTX]) {
		err = bsr_struct_from_attrs(&bsr_ctx_desc, &c->ctx,
					    info->attrs[BSR_A_CTX],
					    info->extack, true);
		if (err)
			goto out;
	}
	mutex_lock(&bsr_cfg_mutex);
	err = bsr_exiting ? -ESHUTDOWN : lookup(c, h->need);
	if (!err) {
		c->why[0] = 0;
		err = h->fn(c);
	}
	mutex_unlock(&bsr_cfg_mutex);
	/* a struct that did not parse is a netlink error, not a reply */
	if (err && info->extack->_msg && !c->why[0])
		goto out;
	err = nl_reply(c, err);
out:
	kfree(c);
	return err;
}

/* ----------------------------------------------------------- read-only */

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
	bsr_module_stats(&ms);

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

/*
 * Dumps walk every object in a fixed order (resource, its devices, its
 * connections with their peer devices and paths) and emit those of the
 * kinds asked for; cb->args[0] is the index to resume from.
 */
struct walk {
	struct sk_buff *skb;
	struct netlink_callback *cb;
	u8 cmd;
	unsigned int kinds;		/* BIT(enum bsr_obj_kind) */
	bool config, initial;
	const char *res_filter;
	long idx, start, total;
	bool full;
};

static int emit(struct walk *w, enum bsr_obj_kind kind, void *obj, u32 minor)
{
	struct bsr_genlmsghdr *hdr;
	u8 cmd = w->initial ? bsr_ev_cmd[kind] : w->cmd;
	u32 type = BSR_NOTIFY_TYPE_EXISTS;

	hdr = genlmsg_put(w->skb, NETLINK_CB(w->cb->skb).portid,
			  w->cb->nlh->nlmsg_seq, &bsr_genl_family,
			  NLM_F_MULTI, cmd);
	if (!hdr)
		return -EMSGSIZE;
	hdr->minor = minor;
	hdr->ret_code = 0;
	if (w->initial && w->idx < w->total - 1)
		type |= BSR_NOTIFY_CONTINUES;
	if ((w->initial && bsr_put_notify(w->skb, type, bsr_notify_seq())) ||
	    bsr_put_object(w->skb, kind, obj, w->config)) {
		genlmsg_cancel(w->skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(w->skb, hdr);
	return 0;
}

/* Returns false once the message buffer is full. */
static bool visit(struct walk *w, enum bsr_obj_kind kind, void *obj, u32 minor)
{
	if (!(w->kinds & BIT(kind)))
		return true;
	if (w->idx >= w->start && w->skb) {
		if (emit(w, kind, obj, minor)) {
			w->full = true;
			return false;
		}
	}
	w->idx++;
	return true;
}

static bool walk_connection(struct walk *w, struct bsr_connection *conn)
{
	struct bsr_peer_device *pd;
	struct bsr_path *p;

	if (!visit(w, BSR_OBJ_CONNECTION, conn, BSR_MINOR_NONE))
		return false;
	list_for_each_entry(pd, &conn->peer_devices, list)
		if (!visit(w, BSR_OBJ_PEER_DEVICE, pd, pd->device->minor))
			return false;
	if (w->config)
		return true;
	list_for_each_entry(p, &conn->paths, list)
		if (!visit(w, BSR_OBJ_PATH, p, BSR_MINOR_NONE))
			return false;
	return true;
}

static void walk_all(struct walk *w)
{
	struct bsr_resource *res;
	struct bsr_connection *conn;
	struct bsr_device *dev;

	list_for_each_entry(res, &bsr_resources, list) {
		if (w->res_filter && strcmp(w->res_filter, res->name))
			continue;
		if (!visit(w, BSR_OBJ_RESOURCE, res, BSR_MINOR_NONE))
			return;
		list_for_each_entry(dev, &res->devices, list)
			if (!visit(w, BSR_OBJ_DEVICE, dev, dev->minor))
				return;
		list_for_each_entry(conn, &res->connections, list)
			if (!walk_connection(w, conn))
				return;
	}
}

static int initial_done(struct walk *w)
{
	struct bsr_genlmsghdr *hdr;

	hdr = genlmsg_put(w->skb, NETLINK_CB(w->cb->skb).portid,
			  w->cb->nlh->nlmsg_seq, &bsr_genl_family,
			  NLM_F_MULTI, BSR_CMD_EV_INITIAL_DONE);
	if (!hdr)
		return -EMSGSIZE;
	hdr->minor = BSR_MINOR_NONE;
	hdr->ret_code = 0;
	if (bsr_put_notify(w->skb, BSR_NOTIFY_TYPE_EXISTS, bsr_notify_seq())) {
		genlmsg_cancel(w->skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(w->skb, hdr);
	return 0;
}

static int bsr_nl_dumpit(struct sk_buff *skb, struct netlink_callback *cb)
{
	const struct genl_dumpit_info *di = genl_dumpit_info(cb);
	u8 cmd = di->op.cmd;
	struct bsr_ctx *ctx = NULL;
	struct walk w = {
		.skb = skb, .cb = cb, .cmd = cmd, .start = cb->args[0],
	};
	int err = 0;

	switch (cmd) {
	case BSR_CMD_GET_RESOURCES:
		w.kinds = BIT(BSR_OBJ_RESOURCE);
		break;
	case BSR_CMD_GET_DEVICES:
		w.kinds = BIT(BSR_OBJ_DEVICE);
		break;
	case BSR_CMD_GET_CONNECTIONS:
		w.kinds = BIT(BSR_OBJ_CONNECTION);
		break;
	case BSR_CMD_GET_PEER_DEVICES:
		w.kinds = BIT(BSR_OBJ_PEER_DEVICE);
		break;
	case BSR_CMD_GET_PATHS:
		w.kinds = BIT(BSR_OBJ_PATH);
		break;
	case BSR_CMD_GET_CONFIG:
		w.kinds = ~0U & ~BIT(BSR_OBJ_PATH);
		w.config = true;
		break;
	case BSR_CMD_GET_INITIAL_STATE:
		w.kinds = ~0U;
		w.initial = true;
		break;
	default:
		return -EOPNOTSUPP;
	}
	if (di->attrs && di->attrs[BSR_A_CTX]) {
		ctx = kzalloc(sizeof(*ctx), GFP_KERNEL);
		if (!ctx)
			return -ENOMEM;
		err = bsr_struct_from_attrs(&bsr_ctx_desc, ctx,
					    di->attrs[BSR_A_CTX], cb->extack,
					    true);
		if (err)
			goto out;
		if (ctx->res_name[0])
			w.res_filter = ctx->res_name;
	}
	mutex_lock(&bsr_cfg_mutex);
	if (w.initial) {
		struct walk count = w;

		count.skb = NULL;
		walk_all(&count);
		w.total = count.idx;
	}
	walk_all(&w);
	mutex_unlock(&bsr_cfg_mutex);
	if (!w.full && w.initial && w.idx == w.total && w.start <= w.total) {
		if (initial_done(&w))
			w.full = true;
		else
			w.idx++;
	}
	cb->args[0] = w.idx;
	err = skb->len;
out:
	kfree(ctx);
	return err;
}

#define DOIT(c) { .cmd = BSR_CMD_##c, .doit = bsr_nl_doit, \
		  .flags = GENL_ADMIN_PERM }
#define DUMP(c) { .cmd = BSR_CMD_##c, .dumpit = bsr_nl_dumpit }

static const struct genl_small_ops bsr_genl_ops[] = {
	{
		.cmd = BSR_CMD_GET_VERSION,
		.doit = bsr_nl_get_version,
	},
	DOIT(NEW_RESOURCE), DOIT(DEL_RESOURCE), DOIT(RESOURCE_OPTS),
	DOIT(NEW_MINOR), DOIT(DEL_MINOR), DOIT(ATTACH), DOIT(DETACH),
	DOIT(DISK_OPTS), DOIT(RESIZE), DOIT(PRIMARY), DOIT(SECONDARY),
	DOIT(NEW_C_UUID), DOIT(NEW_PEER), DOIT(DEL_PEER), DOIT(NEW_PATH),
	DOIT(DEL_PATH), DOIT(CONNECT), DOIT(DISCONNECT), DOIT(NET_OPTS),
	DOIT(PEER_DEVICE_OPTS),
	DOIT(INVALIDATE), DOIT(PAUSE_SYNC), DOIT(RESUME_SYNC), DOIT(INVAL_PEER),
	DOIT(START_OV), DOIT(STOP_OV),
	DOIT(SUSPEND_IO), DOIT(RESUME_IO), DOIT(OUTDATE), DOIT(DOWN),
	DUMP(GET_RESOURCES), DUMP(GET_DEVICES), DUMP(GET_CONNECTIONS),
	DUMP(GET_PEER_DEVICES), DUMP(GET_PATHS), DUMP(GET_INITIAL_STATE),
	DUMP(GET_CONFIG),
};

struct genl_family bsr_genl_family __ro_after_init = {
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
