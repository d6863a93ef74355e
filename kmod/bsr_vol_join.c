// SPDX-License-Identifier: GPL-2.0
/*
 * Volumes that get their disk, or lose it, while a connection is already
 * Connected -- what "adjust" does when the configuration gains or loses a
 * volume of a replicating resource.
 *
 * The handshake describes the volumes there are when the connection comes
 * up.  A volume attached later is described by P_VOL_JOIN (its sizes and
 * UUIDs, the same facts as P_SIZES + P_UUIDS): each side sends one when
 * its disk is attached, or in answer to the peer's when its disk was
 * there before.  Whoever holds both decides with the handshake's rules for
 * that volume alone (bsr_hs_decide_one()), so both ends reach the same
 * decision; the peer device then starts as it would at connect time
 * (Established, or a resync).  The peer's P_VOL_JOIN for a volume that
 * does not exist here (yet) is kept until it is attached.
 *
 * Order on the data stream: the replication and resync state of the
 * volume exist before our P_VOL_JOIN leaves, and the peer device changes
 * state only after it left, so nothing the peer sends after deciding can
 * reach a volume we do not know.
 *
 * A detach sends P_VOL_LEAVE (if the peer has a disk of the volume): the
 * peer sees our disk as Diskless and marks what it writes out of sync for
 * us.  A P_VOL_LEAVE may cross our own detach and del-minor (adjust on
 * both nodes at once), so one for a volume we no longer have is ignored.
 * Neither touches the other volumes or the connection.  All of it runs
 * under bsr_cfg_mutex.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/slab.h>
#include "bsr_transport.h"

#define VJ_MAX_PENDING	64	/* the peer's joins we hold at once */

struct bsr_vol_join {
	struct list_head list;		/* on bsr_net.joins */
	u16 volume;
	bool sent;			/* our P_VOL_JOIN went out */
	bool got;			/* the peer's is in @peer */
	struct bsr_hs_vol me, peer;
};

static struct bsr_vol_join *vj_find(struct bsr_net *n, u16 volume)
{
	struct bsr_vol_join *j;

	list_for_each_entry(j, &n->joins, list)
		if (j->volume == volume)
			return j;
	return NULL;
}

static struct bsr_vol_join *vj_new(struct bsr_net *n, u16 volume)
{
	struct bsr_vol_join *j;

	if (n->nr_joins >= VJ_MAX_PENDING)
		return NULL;
	j = kzalloc(sizeof(*j), GFP_NOIO);
	if (!j)
		return NULL;
	j->volume = volume;
	list_add_tail(&j->list, &n->joins);
	n->nr_joins++;
	return j;
}

static void vj_free(struct bsr_net *n, struct bsr_vol_join *j)
{
	list_del(&j->list);
	n->nr_joins--;
	kfree(j);
}

/* A new connection (or none): exchanges of the last one are void. */
void bsr_vj_reset(struct bsr_net *n)
{
	struct bsr_vol_join *j, *t;

	list_for_each_entry_safe(j, t, &n->joins, list)
		vj_free(n, j);
}

static int send_join(struct bsr_net *n, struct bsr_vol_join *j)
{
	struct p_vol_join p;

	bsr_hs_put_vol(&j->me, &p.sizes, &p.uuids);
	j->sent = true;
	return bsr_send(&n->data, P_VOL_JOIN, j->volume, &p, sizeof(p));
}

/*
 * Both sides' facts are in @j: decide, make room for the volume in the
 * live connection, answer the peer if we have not spoken yet, then let the
 * peer device start.  A refused volume (split brain, unrelated data, too
 * small) stays Off on both sides; the other volumes go on.
 */
static int vj_finish(struct bsr_net *n, struct bsr_vol_join *j,
		     struct bsr_peer_device *pd)
{
	struct bsr_connection *c = n->conn;
	struct bsr_hs_result r;
	int err, serr = 0;

	err = bsr_hs_decide_one(n, &j->me, &j->peer, c->resource->role,
				c->peer_role, &r);
	if (!err)
		err = bsr_repl_join(pd) ?: bsr_rs_join(pd);
	if (err)
		pr_warn("%s/%u peer %u: the volume is not replicated with this peer (%d); disconnect and connect to try again\n",
			n->res_name, j->volume, n->peer_node_id, err);
	if (!j->sent)
		serr = send_join(n, j);
	if (!err && !serr) {
		pd->peer_current_uuid = r.peer_uuid;
		pd->bitmap_uuid = r.bitmap_uuid;
		bsr_set_pd_state(pd, r.repl_state, r.peer_disk);
		bsr_rs_join_start(pd);
		pr_info("%s/%u peer %u: volume joined the connection\n",
			n->res_name, j->volume, n->peer_node_id);
	}
	vj_free(n, j);
	return serr;
}

/*
 * Our disk of @pd is there: tell the peer, or finish what it started.
 * Also for a disk attached while the handshake ran (bsr_receiver.c).
 */
int bsr_vj_local(struct bsr_net *n, struct bsr_peer_device *pd)
{
	u16 volume = pd->device->volume;
	struct bsr_vol_join *j = vj_find(n, volume);

	if (!j)
		j = vj_new(n, volume);
	if (!j || j->sent)
		return j ? 0 : -ENOMEM;
	bsr_hs_snapshot(n, pd, &j->me);
	if (j->got)
		return vj_finish(n, j, pd);
	return send_join(n, j);
}

/* bsr_cfg_mutex held: @dev was just attached. */
void bsr_vj_attached(struct bsr_device *dev)
{
	struct bsr_peer_device *pd;
	struct bsr_connection *c;
	struct bsr_net *n;
	int err;

	lockdep_assert_held(&bsr_cfg_mutex);
	list_for_each_entry(c, &dev->resource->connections, list) {
		/* writes while the peer is away, connecting or not, are marked */
		bsr_repl_track_peer(c);
		if (!c->net)
			continue;
		pd = bsr_find_peer_device(c, dev->volume);
		n = bsr_repl_pin(c);
		if (!n)
			continue;
		err = 0;
		if (pd && c->cstate == BSR_CONN_STATE_CONNECTED)
			err = bsr_vj_local(n, pd);
		if (err)
			bsr_net_fail(n, err == -ENOMEM ?
				     BSR_CONN_STATE_NETWORKFAILURE :
				     BSR_CONN_STATE_BROKENPIPE);
		bsr_repl_unpin(c);
	}
}

static int vj_leave(struct bsr_net *n, struct bsr_peer_device *pd)
{
	struct bsr_vol_join *j = vj_find(n, pd->device->volume);
	struct p_vol_leave p = {};
	/* a peer without a disk of it does not count on ours */
	bool told = pd->repl_state != BSR_REPL_STATE_OFF &&
		    bsr_disk_usable(pd->peer_disk_state);

	if (j && j->sent) {
		told = true;
		vj_free(n, j);
	}
	if (!told)
		return 0;
	if (pd->repl_state != BSR_REPL_STATE_OFF)
		bsr_set_pd_state(pd, BSR_REPL_STATE_ESTABLISHED,
			     pd->peer_disk_state);
	return bsr_send(&n->data, P_VOL_LEAVE, pd->device->volume, &p,
			sizeof(p));
}

/*
 * bsr_cfg_mutex held, the disk of @dev is about to go.  With @may_refuse
 * (an admin's detach) -EBUSY while a resync or verify of it runs.
 */
int bsr_vj_detaching(struct bsr_device *dev, bool may_refuse,
		     char *why, size_t whylen)
{
	struct bsr_peer_device *pd;
	struct bsr_connection *c;
	struct bsr_net *n;
	int err;

	lockdep_assert_held(&bsr_cfg_mutex);
	list_for_each_entry(c, &dev->resource->connections, list) {
		pd = bsr_find_peer_device(c, dev->volume);
		n = pd ? bsr_repl_pin(c) : NULL;
		if (!n)
			continue;
		if (bsr_rs_leave(pd) && may_refuse) {
			bsr_repl_unpin(c);
			snprintf(why, whylen,
				 "%s: a resync or verify with peer %s runs; wait for it, stop it or disconnect first",
				 dev->disk->disk_name, c->name);
			return -EBUSY;
		}
		err = vj_leave(n, pd);
		if (err)
			bsr_net_fail(n, BSR_CONN_STATE_BROKENPIPE);
		bsr_repl_unpin(c);
	}
	return 0;
}

/* bsr_cfg_mutex held: @dev (no disk, not open) is about to be deleted. */
int bsr_vj_forget(struct bsr_device *dev, char *why, size_t whylen)
{
	struct bsr_peer_device *pd;
	struct bsr_connection *c;
	int err;

	list_for_each_entry(c, &dev->resource->connections, list) {
		pd = bsr_find_peer_device(c, dev->volume);
		if (!pd)
			continue;
		err = bsr_repl_forget(pd, why, whylen);
		if (err)
			return err;
		bsr_rs_forget(pd);
	}
	return 0;
}

/* ------------------------------------------------ from the peer */

static int recv_join(struct bsr_net *n, struct bsr_pkt_hdr *h, u16 volume)
{
	struct bsr_peer_device *pd = bsr_find_peer_device(n->conn, volume);
	struct bsr_vol_join *j = vj_find(n, volume);
	const struct p_vol_join *p = n->data.rbuf;
	bool answer = j && j->sent;

	if ((j && j->got) ||
	    (!answer && pd && bsr_disk_usable(pd->peer_disk_state)))
		return bsr_proto_err(n, &n->data, "second P_VOL_JOIN for the volume", h);
	if (!j)
		j = vj_new(n, volume);
	if (!j)
		return bsr_proto_err(n, &n->data, "too many volumes joining at once", h);
	bsr_hs_get_sizes(&j->peer, &p->sizes);
	if (bsr_hs_get_uuids(&j->peer, volume, &p->uuids))
		return bsr_proto_err(n, &n->data, "bad disk state", h);
	j->got = true;
	if (!pd)
		return 0;	/* not configured here (yet) */
	if (!j->sent) {
		if (!pd->device->backing ||
		    !bsr_disk_usable(READ_ONCE(pd->device->disk_state)))
			return 0;	/* our attach will finish it */
		bsr_hs_snapshot(n, pd, &j->me);
	}
	return vj_finish(n, j, pd);
}

static int recv_leave(struct bsr_net *n, struct bsr_pkt_hdr *h, u16 volume)
{
	struct bsr_peer_device *pd = bsr_find_peer_device(n->conn, volume);
	struct bsr_vol_join *j = vj_find(n, volume);

	/* crossing our del-minor (both nodes ran adjust at once): no harm */
	if (!pd && !(j && j->got))
		return 0;
	if (j && j->got)
		vj_free(n, j);
	if (!pd || pd->repl_state == BSR_REPL_STATE_OFF)
		return 0;
	if (bsr_rs_leave(pd))
		return bsr_proto_err(n, &n->data, "P_VOL_LEAVE while a resync runs", h);
	bsr_set_pd_state(pd, BSR_REPL_STATE_ESTABLISHED, BSR_DISK_STATE_DISKLESS);
	pr_info("%s/%u peer %u: the peer detached its disk\n", n->res_name,
		volume, n->peer_node_id);
	return 0;
}

int bsr_vj_recv(struct bsr_net *n, struct bsr_pkt_hdr *h)
{
	u16 volume = be16_to_cpu(h->volume);
	int err;

	while (!mutex_trylock(&bsr_cfg_mutex)) {
		if (bsr_should_stop(n))
			return -EINTR;
		usleep_range(2000, 5000);
	}
	if (be16_to_cpu(h->command) == P_VOL_JOIN)
		err = recv_join(n, h, volume);
	else
		err = recv_leave(n, h, volume);
	mutex_unlock(&bsr_cfg_mutex);
	return err;
}
