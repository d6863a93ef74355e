// SPDX-License-Identifier: GPL-2.0
/*
 * Roles and disk states of a single node: primary/secondary, who may open
 * the device, new data generations, invalidate and outdate.
 */
#include <linux/blkdev.h>
#include "bsr_int.h"

static const char * const disk_state_names[] = {
	"Diskless", "Attaching", "Detaching", "Failed", "Negotiating",
	"Inconsistent", "Outdated", "DUnknown", "Consistent", "UpToDate",
};

static const char *ds_name(enum bsr_disk_state ds)
{
	return ds < ARRAY_SIZE(disk_state_names) ? disk_state_names[ds] : "?";
}

int bsr_set_disk_state(struct bsr_device *dev, enum bsr_disk_state ds)
{
	enum bsr_disk_state old = READ_ONCE(dev->disk_state);

	WRITE_ONCE(dev->disk_state, ds);
	if (old != ds)
		pr_info("%s: disk( %s -> %s )\n", dev->disk->disk_name,
			ds_name(old), ds_name(ds));
	bsr_notify_device(dev, BSR_NOTIFY_TYPE_CHANGE);
	return 0;
}

enum bsr_disk_state bsr_disk_state_from_md(struct bsr_backing *b)
{
	struct bsr_md_info md = {};

	bsr_backing_info(b, &md);
	if (!(md.flags & BSR_MDF_CONSISTENT))
		return BSR_DISK_STATE_INCONSISTENT;
	if (md.flags & BSR_MDF_WAS_UP_TO_DATE)
		return BSR_DISK_STATE_UPTODATE;
	return BSR_DISK_STATE_OUTDATED;
}

/*
 * The peer device of @dev on the connection after @pd's (the first one
 * when @pd is NULL), or NULL: walks @dev's peer devices in connection order.
 */
static struct bsr_peer_device *next_pd(struct bsr_device *dev,
				       struct bsr_peer_device *pd)
{
	struct list_head *head = &dev->resource->connections;
	struct bsr_connection *c;

	c = pd ? list_next_entry(pd->connection, list) :
		 list_first_entry(head, struct bsr_connection, list);
	for (; !list_entry_is_head(c, head, list); c = list_next_entry(c, list)) {
		pd = bsr_find_peer_device(c, dev->volume);
		if (pd)
			return pd;
	}
	return NULL;
}

#define for_each_peer_device(pd, dev) \
	for (pd = next_pd(dev, NULL); pd; pd = next_pd(dev, pd))

static int check_sync_target(struct bsr_device *dev, char *why, size_t whylen)
{
	struct bsr_peer_device *pd;

	for_each_peer_device(pd, dev) {
		if (!bsr_rs_is_target(pd))
			continue;
		snprintf(why, whylen,
			 "%s: State change failed: (-2) Need access to UpToDate data (volume %u is SyncTarget of peer %u: wait for the resync to finish)",
			 dev->resource->name, dev->volume, pd->connection->peer_node_id);
		return -ENODATA;
	}
	return 0;
}

/* One Primary at a time: a connected peer that is Primary refuses us. */
static int check_peer_primary(struct bsr_resource *res, char *why,
			      size_t whylen)
{
	struct bsr_connection *c;

	list_for_each_entry(c, &res->connections, list) {
		if (c->cstate != BSR_CONN_STATE_CONNECTED ||
		    c->peer_role != BSR_ROLE_PRIMARY)
			continue;
		snprintf(why, whylen,
			 "%s: State change failed: (-1) Multiple primaries not allowed (peer %u is Primary)",
			 res->name, c->peer_node_id);
		return -EBUSY;
	}
	return 0;
}

static int check_primary(struct bsr_resource *res, bool force,
			 char *why, size_t whylen)
{
	struct bsr_device *dev;
	int err;

	if (res->opts.target_only) {
		snprintf(why, whylen,
			 "%s: State change failed: this node is target-only",
			 res->name);
		return -EPERM;
	}
	err = check_peer_primary(res, why, whylen);
	if (err)
		return err;
	list_for_each_entry(dev, &res->devices, list) {
		enum bsr_disk_state ds = dev->disk_state;

		err = check_sync_target(dev, why, whylen);
		if (err)
			return err;
		if (ds == BSR_DISK_STATE_UPTODATE)
			continue;
		if (force && (ds == BSR_DISK_STATE_INCONSISTENT ||
			      ds == BSR_DISK_STATE_OUTDATED ||
			      ds == BSR_DISK_STATE_CONSISTENT))
			continue;
		snprintf(why, whylen,
			 "%s: State change failed: (-2) Need access to UpToDate data (volume %u is %s)",
			 res->name, dev->volume, ds_name(ds));
		return -ENODATA;
	}
	return 0;
}

/*
 * A new Primary: its data moves on without the peers it is not connected
 * to (bitmap UUID); connected peers that are not UpToDate get a full
 * resync from it (primary --force on a fresh pair).
 */
static void primary_and_peers(struct bsr_device *dev)
{
	struct bsr_peer_device *pd;

	for_each_peer_device(pd, dev) {
		if (pd->repl_state == BSR_REPL_STATE_OFF)
			bsr_rs_diverge_unconnected(pd);
		else if (pd->peer_disk_state == BSR_DISK_STATE_INCONSISTENT)
			bsr_rs_request_sync(pd, true);
	}
}

/* primary --force: a volume that is not UpToDate becomes it, new data. */
static int force_up_to_date(struct bsr_device *dev, char *why, size_t whylen)
{
	int err;

	err = bsr_md_new_current_uuid(dev->backing, false);
	if (!err)
		err = bsr_md_change_flags(dev->backing, BSR_MDF_CONSISTENT |
					  BSR_MDF_WAS_UP_TO_DATE, 0);
	if (err) {
		snprintf(why, whylen, "%s: cannot write metadata of volume %u (%d)",
			 dev->resource->name, dev->volume, err);
		return err;
	}
	bsr_set_disk_state(dev, BSR_DISK_STATE_UPTODATE);
	return 0;
}

/*
 * primary --force on a Primary (like drbdadm's): volumes added since it
 * became Primary that are not UpToDate become it; connected peers that
 * are Inconsistent get a full resync from here.
 */
static int force_more(struct bsr_resource *res, char *why, size_t whylen)
{
	struct bsr_device *dev;
	int err;

	err = check_primary(res, true, why, whylen);
	if (err)
		return err;
	list_for_each_entry(dev, &res->devices, list) {
		if (dev->disk_state == BSR_DISK_STATE_UPTODATE || !dev->backing)
			continue;
		err = force_up_to_date(dev, why, whylen);
		if (err)
			return err;
		bsr_md_change_flags(dev->backing, BSR_MDF_PRIMARY_IND, 0);
		primary_and_peers(dev);
		pr_info("%s/%u: forced UpToDate (primary --force)\n", res->name,
			dev->volume);
	}
	return 0;
}

int bsr_set_primary(struct bsr_resource *res, bool force,
		    char *why, size_t whylen)
{
	struct bsr_device *dev;
	int err;

	if (res->role == BSR_ROLE_PRIMARY)
		return force ? force_more(res, why, whylen) : 0;
	err = check_primary(res, force, why, whylen);
	if (err)
		return err;
	list_for_each_entry(dev, &res->devices, list) {
		if (dev->disk_state == BSR_DISK_STATE_UPTODATE)
			continue;
		err = force_up_to_date(dev, why, whylen);
		if (err)
			return err;
	}
	list_for_each_entry(dev, &res->devices, list)
		bsr_md_change_flags(dev->backing, BSR_MDF_PRIMARY_IND, 0);
	list_for_each_entry(dev, &res->devices, list)
		primary_and_peers(dev);
	spin_lock_irq(&res->lock);
	res->role = BSR_ROLE_PRIMARY;
	spin_unlock_irq(&res->lock);
	pr_info("%s: role( Secondary -> Primary )%s\n", res->name,
		force ? " forced" : "");
	bsr_repl_send_state(res);
	bsr_notify_resource(res, BSR_NOTIFY_TYPE_CHANGE);
	return 0;
}

int bsr_set_secondary(struct bsr_resource *res, char *why, size_t whylen)
{
	struct bsr_device *dev, *busy = NULL;

	if (res->role != BSR_ROLE_PRIMARY)
		return 0;
	spin_lock_irq(&res->lock);
	list_for_each_entry(dev, &res->devices, list)
		if (dev->open_cnt)
			busy = dev;
	if (!busy)
		res->role = BSR_ROLE_SECONDARY;
	spin_unlock_irq(&res->lock);
	if (busy) {
		snprintf(why, whylen,
			 "%s: State change failed: (-12) Device is held open by someone (%s)",
			 res->name, busy->disk->disk_name);
		return -EBUSY;
	}
	list_for_each_entry(dev, &res->devices, list)
		wait_event(dev->wait, !atomic_read(&dev->stats.upper_pending));
	if (bsr_repl_secondary_wait(res, why, whylen)) {
		spin_lock_irq(&res->lock);
		res->role = BSR_ROLE_PRIMARY;
		spin_unlock_irq(&res->lock);
		return -ETIMEDOUT;
	}
	list_for_each_entry(dev, &res->devices, list) {
		if (dev->backing)
			bsr_md_change_flags(dev->backing, 0,
					    BSR_MDF_PRIMARY_IND);
		else
			set_capacity_and_notify(dev->disk, 0);
	}
	pr_info("%s: role( Primary -> Secondary )\n", res->name);
	bsr_repl_send_state(res);
	bsr_notify_resource(res, BSR_NOTIFY_TYPE_CHANGE);
	return 0;
}

static int need_disk(struct bsr_device *dev, char *why, size_t whylen)
{
	if (dev->backing && bsr_disk_usable(dev->disk_state))
		return 0;
	snprintf(why, whylen, "%s: no disk attached", dev->disk->disk_name);
	return -ENODEV;
}

/*
 * "Skip the initial sync": both sides just created (Inconsistent, UUID
 * JC) and connected; new-current-uuid --clear-bitmap makes this node
 * UpToDate and the peer takes the new UUIDs (P_RS_NEW_UUIDS).
 */
static bool skip_initial_sync(struct bsr_device *dev)
{
	struct bsr_peer_device *pd;
	struct bsr_md_info md = {};
	bool any = false;

	bsr_backing_info(dev->backing, &md);
	if (md.current_uuid != 4 ||
	    dev->disk_state != BSR_DISK_STATE_INCONSISTENT)
		return false;
	for_each_peer_device(pd, dev)
		if (pd->repl_state == BSR_REPL_STATE_ESTABLISHED &&
		    pd->peer_current_uuid == 4)
			any = true;
	return any;
}

int bsr_new_c_uuid(struct bsr_device *dev, bool clear_bm,
		   char *why, size_t whylen)
{
	int err = need_disk(dev, why, whylen);
	struct bsr_peer_device *pd;
	bool skip;

	if (err)
		return err;
	skip = clear_bm && skip_initial_sync(dev);
	err = bsr_md_new_current_uuid(dev->backing, clear_bm);
	if (!err && skip)
		err = bsr_md_change_flags(dev->backing, BSR_MDF_CONSISTENT |
					  BSR_MDF_WAS_UP_TO_DATE, 0);
	if (err) {
		snprintf(why, whylen, "%s: cannot write metadata (%d)",
			 dev->disk->disk_name, err);
		return err;
	}
	bsr_notify_device(dev, BSR_NOTIFY_TYPE_CHANGE);
	if (!skip)
		return 0;
	pr_info("%s: new current UUID with a cleared bitmap: skipping the initial sync\n",
		dev->disk->disk_name);
	bsr_set_disk_state(dev, BSR_DISK_STATE_UPTODATE);
	for_each_peer_device(pd, dev) {
		if (pd->peer_current_uuid != 4 || bsr_rs_send_new_uuids(pd))
			continue;
		pd->peer_disk_state = BSR_DISK_STATE_UPTODATE;
		bsr_notify_peer_device(pd, BSR_NOTIFY_TYPE_CHANGE);
	}
	return 0;
}

static void set_all_bits(struct bsr_backing *b, int slot, sector_t cap)
{
	const unsigned int chunk = 1U << 30;
	sector_t s;

	for (s = 0; s < cap; s += chunk)
		bsr_bm_set(b, slot, s, min_t(sector_t, chunk, cap - s));
}

/* Invalidated while connected: the first UpToDate peer syncs to us. */
static void request_full_sync(struct bsr_device *dev)
{
	struct bsr_peer_device *pd;

	for_each_peer_device(pd, dev)
		if (pd->peer_disk_state == BSR_DISK_STATE_UPTODATE &&
		    !bsr_rs_request_target(pd))
			return;
}

int bsr_invalidate(struct bsr_device *dev, char *why, size_t whylen)
{
	struct bsr_md_info md = {};
	sector_t cap;
	int err = need_disk(dev, why, whylen);
	u32 slot;

	if (err)
		return err;
	if (dev->resource->role == BSR_ROLE_PRIMARY) {
		snprintf(why, whylen,
			 "%s: Refusing to invalidate a Primary: its data is in use",
			 dev->disk->disk_name);
		return -EBUSY;
	}
	bsr_backing_info(dev->backing, &md);
	cap = bsr_backing_capacity(dev->backing);
	for (slot = 0; slot < md.max_peers; slot++)
		set_all_bits(dev->backing, slot, cap);
	err = bsr_bm_write_dirty(dev->backing);
	if (!err)
		err = bsr_md_change_flags(dev->backing, 0, BSR_MDF_CONSISTENT |
					  BSR_MDF_WAS_UP_TO_DATE);
	if (err) {
		snprintf(why, whylen, "%s: cannot write metadata (%d)",
			 dev->disk->disk_name, err);
		return err;
	}
	bsr_set_disk_state(dev, BSR_DISK_STATE_INCONSISTENT);
	request_full_sync(dev);
	return 0;
}

int bsr_outdate(struct bsr_device *dev, char *why, size_t whylen)
{
	int err = need_disk(dev, why, whylen);

	if (err)
		return err;
	if (dev->resource->role == BSR_ROLE_PRIMARY) {
		snprintf(why, whylen,
			 "%s: State change failed: (-7) Refusing to be Outdated while Primary",
			 dev->disk->disk_name);
		return -EBUSY;
	}
	if (dev->disk_state != BSR_DISK_STATE_UPTODATE &&
	    dev->disk_state != BSR_DISK_STATE_CONSISTENT)
		return 0;
	err = bsr_md_change_flags(dev->backing, 0, BSR_MDF_WAS_UP_TO_DATE);
	if (err) {
		snprintf(why, whylen, "%s: cannot write metadata (%d)",
			 dev->disk->disk_name, err);
		return err;
	}
	bsr_set_disk_state(dev, BSR_DISK_STATE_OUTDATED);
	return 0;
}

void bsr_set_susp(struct bsr_resource *res, bool susp)
{
	WRITE_ONCE(res->susp, susp);
	if (!susp)
		wake_up_all(&res->susp_wait);
	bsr_notify_resource(res, BSR_NOTIFY_TYPE_CHANGE);
}

/* Like DRBD: only a Primary may be opened, read-only or not. */
int bsr_dev_open(struct block_device *bdev, fmode_t mode)
{
	struct bsr_device *dev = bdev->bd_disk->private_data;
	struct bsr_resource *res = dev->resource;
	unsigned long flags;
	int err = 0;

	spin_lock_irqsave(&res->lock, flags);
	if (dev->dying) {
		err = -ENXIO;
	} else if (res->role != BSR_ROLE_PRIMARY) {
		err = -EMEDIUMTYPE;
	} else {
		dev->open_cnt++;
		if (mode & FMODE_WRITE)
			dev->open_rw++;
	}
	spin_unlock_irqrestore(&res->lock, flags);
	if (err == -EMEDIUMTYPE)
		pr_warn_ratelimited("%s: not Primary, refusing open%s\n",
				    bdev->bd_disk->disk_name,
				    (mode & FMODE_WRITE) ? " for write" : "");
	if (!err)
		bsr_dev_open_changed(dev);
	return err;
}

void bsr_dev_release(struct gendisk *disk, fmode_t mode)
{
	struct bsr_device *dev = disk->private_data;
	unsigned long flags;

	spin_lock_irqsave(&dev->resource->lock, flags);
	dev->open_cnt--;
	if (mode & FMODE_WRITE)
		dev->open_rw--;
	spin_unlock_irqrestore(&dev->resource->lock, flags);
	bsr_dev_open_changed(dev);
}
