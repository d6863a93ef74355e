// SPDX-License-Identifier: GPL-2.0
/*
 * bsr resources: named groups of volumes that share a role.
 */
#include <linux/slab.h>
#include <linux/string.h>
#include "bsr_int.h"

DEFINE_MUTEX(bsr_cfg_mutex);
LIST_HEAD(bsr_resources);
bool bsr_exiting;

struct bsr_resource *bsr_find_resource(const char *name)
{
	struct bsr_resource *res;

	lockdep_assert_held(&bsr_cfg_mutex);
	list_for_each_entry(res, &bsr_resources, list)
		if (!strcmp(res->name, name))
			return res;
	return NULL;
}

struct bsr_resource *bsr_create_resource(const char *name,
					 const struct bsr_res_opts *opts)
{
	struct bsr_resource *res;

	res = kzalloc(sizeof(*res), GFP_KERNEL);
	if (!res)
		return NULL;
	strscpy(res->name, name, sizeof(res->name));
	res->opts = *opts;
	res->role = BSR_ROLE_SECONDARY;
	spin_lock_init(&res->lock);
	init_waitqueue_head(&res->susp_wait);
	INIT_LIST_HEAD(&res->devices);
	INIT_LIST_HEAD(&res->connections);
	list_add_tail(&res->list, &bsr_resources);
	bsr_notify_resource(res, BSR_NOTIFY_TYPE_CREATE);
	return res;
}

/* The caller made sure no devices and no connections are left. */
void bsr_destroy_resource(struct bsr_resource *res)
{
	bsr_notify_resource(res, BSR_NOTIFY_TYPE_DESTROY);
	list_del(&res->list);
	kfree(res);
}

struct bsr_device *bsr_find_volume(struct bsr_resource *res, u32 volume)
{
	struct bsr_device *dev;

	list_for_each_entry(dev, &res->devices, list)
		if (dev->volume == volume)
			return dev;
	return NULL;
}

struct bsr_device *bsr_find_minor(u32 minor)
{
	struct bsr_resource *res;
	struct bsr_device *dev;

	lockdep_assert_held(&bsr_cfg_mutex);
	list_for_each_entry(res, &bsr_resources, list)
		list_for_each_entry(dev, &res->devices, list)
			if (dev->minor == minor)
				return dev;
	return NULL;
}

/* DRBD's down: secondary, disconnect all, detach all, del-minors, del-resource */
int bsr_down_resource(struct bsr_resource *res, char *why, size_t whylen)
{
	struct bsr_connection *conn, *tc;
	struct bsr_device *dev, *td;
	int err;

	err = bsr_set_secondary(res, why, whylen);
	if (err)
		return err;
	list_for_each_entry_safe(conn, tc, &res->connections, list)
		bsr_destroy_connection(conn);
	list_for_each_entry(dev, &res->devices, list) {
		if (!dev->backing)
			continue;
		err = bsr_detach(dev, false, why, whylen);
		if (err)
			return err;
	}
	list_for_each_entry_safe(dev, td, &res->devices, list) {
		err = bsr_destroy_device(dev, why, whylen);
		if (err)
			return err;
	}
	bsr_destroy_resource(res);
	return 0;
}

/* Module exit: nothing is open (open devices pin the module). */
void bsr_down_all(void)
{
	struct bsr_resource *res, *tmp;
	char why[128];

	mutex_lock(&bsr_cfg_mutex);
	bsr_exiting = true;
	list_for_each_entry_safe(res, tmp, &bsr_resources, list)
		if (bsr_down_resource(res, why, sizeof(why)))
			pr_err("%s\n", why);
	mutex_unlock(&bsr_cfg_mutex);
}
