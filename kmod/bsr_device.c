// SPDX-License-Identifier: GPL-2.0
/*
 * bsr devices (volumes): the /dev/bsrN gendisk, attaching and detaching
 * the backing disk, size.
 */
#include <linux/blkdev.h>
#include <linux/slab.h>
#include "bsr_int.h"
#include "bsr_proto.h"

int bsr_major;

static const struct block_device_operations bsr_fops = {
	.owner = THIS_MODULE,
	.submit_bio = bsr_submit_bio,
	.open = bsr_dev_open,
	.release = bsr_dev_release,
};

int bsr_dev_init(void)
{
	int major = register_blkdev(0, "bsr");

	if (major < 0)
		return major;
	bsr_major = major;
	return 0;
}

void bsr_dev_exit(void)
{
	unregister_blkdev(bsr_major, "bsr");
}

sector_t bsr_dev_capacity(struct bsr_device *dev)
{
	return get_capacity(dev->disk);
}

/*
 * A Primary (or anyone who has it open) keeps the size, so that I/O fails
 * with EIO (no disk, no peer) rather than looking like the end of the
 * device; becoming Secondary or the next attach sets the size again.
 */
static void close_backing(struct bsr_device *dev)
{
	struct bsr_backing *b = dev->backing;
	unsigned long flags;
	int open;

	bsr_drain_ldev(dev);
	flush_workqueue(dev->submit_wq);
	WRITE_ONCE(dev->backing, NULL);
	if (dev->resource->role == BSR_ROLE_PRIMARY)
		bsr_md_change_flags(b, 0, BSR_MDF_PRIMARY_IND);
	bsr_backing_close(b);
	spin_lock_irqsave(&dev->resource->lock, flags);
	open = dev->open_cnt;
	spin_unlock_irqrestore(&dev->resource->lock, flags);
	if (!open && dev->resource->role != BSR_ROLE_PRIMARY)
		set_capacity_and_notify(dev->disk, 0);
	/* like drbdsetup show: a detached volume has no disk section */
	bsr_struct_set_defaults(&bsr_disk_conf_desc, &dev->disk_conf);
	bsr_set_disk_state(dev, BSR_DISK_STATE_DISKLESS);
}

static void dev_io_failed(struct bsr_device *dev)
{
	if (!dev->backing || dev->disk_state == BSR_DISK_STATE_DISKLESS)
		return;
	pr_err("%s: I/O error on the backing disk, detaching (on-io-error detach)\n",
	       dev->disk->disk_name);
	bsr_vj_detaching(dev, false, NULL, 0);
	bsr_set_disk_state(dev, BSR_DISK_STATE_FAILED);
	close_backing(dev);
}

static void dev_work_fn(struct work_struct *w)
{
	struct bsr_device *dev = container_of(w, struct bsr_device, dev_work);

	mutex_lock(&bsr_cfg_mutex);
	if (!dev->dying) {
		if (test_and_clear_bit(BSR_DW_IO_ERROR, &dev->work_bits))
			dev_io_failed(dev);
		if (test_and_clear_bit(BSR_DW_OPEN, &dev->work_bits))
			bsr_notify_device(dev, BSR_NOTIFY_TYPE_CHANGE);
	}
	mutex_unlock(&bsr_cfg_mutex);
}

/* Any context: the disk state change itself needs process context. */
void bsr_dev_io_error(struct bsr_device *dev)
{
	if (!test_and_set_bit(BSR_DW_IO_ERROR, &dev->work_bits)) {
		WRITE_ONCE(dev->disk_state, BSR_DISK_STATE_FAILED);
		schedule_work(&dev->dev_work);
	}
}

void bsr_dev_open_changed(struct bsr_device *dev)
{
	if (!test_and_set_bit(BSR_DW_OPEN, &dev->work_bits))
		schedule_work(&dev->dev_work);
}

static int alloc_disk(struct bsr_device *dev)
{
	struct gendisk *disk;
	int err;

	disk = blk_alloc_disk(NUMA_NO_NODE);
	if (!disk)
		return -ENOMEM;
	disk->major = bsr_major;
	disk->first_minor = dev->minor;
	disk->minors = 1;
	disk->fops = &bsr_fops;
	disk->private_data = dev;
	disk->flags |= GENHD_FL_NO_PART;
	snprintf(disk->disk_name, DISK_NAME_LEN, "bsr%u", dev->minor);
	set_capacity(disk, 0);
	blk_queue_write_cache(disk->queue, true, true);
	blk_queue_flag_set(QUEUE_FLAG_IO_STAT, disk->queue);
	blk_queue_flag_set(QUEUE_FLAG_NONROT, disk->queue);
	dev->disk = disk;
	err = add_disk(disk);
	if (err) {
		put_disk(disk);
		dev->disk = NULL;
	}
	return err;
}

static void free_device(struct bsr_device *dev)
{
	if (dev->submit_wq)
		destroy_workqueue(dev->submit_wq);
	bioset_exit(&dev->bio_set);
	free_percpu(dev->stats.io);
	kfree(dev);
}

struct bsr_device *bsr_create_device(struct bsr_resource *res, u32 volume,
				     u32 minor, char *why, size_t whylen)
{
	struct bsr_connection *c;
	struct bsr_device *dev, *pos;
	int err;

	dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	if (!dev)
		return ERR_PTR(-ENOMEM);
	dev->resource = res;
	dev->volume = volume;
	dev->minor = minor;
	dev->disk_state = BSR_DISK_STATE_DISKLESS;
	bsr_struct_set_defaults(&bsr_disk_conf_desc, &dev->disk_conf);
	dev->disk_flushes = true;
	atomic_set(&dev->local_cnt, 0);
	init_waitqueue_head(&dev->wait);
	spin_lock_init(&dev->submit_lock);
	bio_list_init(&dev->submit_list);
	INIT_WORK(&dev->submit_work, bsr_submit_work);
	INIT_WORK(&dev->dev_work, dev_work_fn);
	bsr_repl_dev_init(dev);
	err = -ENOMEM;
	dev->stats.io = alloc_percpu(struct bsr_dev_io_stats);
	if (!dev->stats.io)
		goto fail;
	err = bioset_init(&dev->bio_set, BIO_POOL_SIZE, bsr_req_front_pad(), 0);
	if (err)
		goto fail;
	err = -ENOMEM;
	dev->submit_wq = alloc_ordered_workqueue("bsr%u_submit",
						 WQ_MEM_RECLAIM, minor);
	if (!dev->submit_wq)
		goto fail;
	err = alloc_disk(dev);
	if (err)
		goto fail;
	list_for_each_entry(pos, &res->devices, list)
		if (pos->volume > volume)
			break;
	list_add_tail(&dev->list, &pos->list);
	bsr_notify_device(dev, BSR_NOTIFY_TYPE_CREATE);
	list_for_each_entry(c, &res->connections, list)
		if (!bsr_create_peer_device(c, dev))
			pr_warn("%s: no memory for a peer device\n",
				dev->disk->disk_name);
	return dev;
fail:
	snprintf(why, whylen, "minor %u: cannot create the block device (%d)",
		 minor, err);
	free_device(dev);
	return ERR_PTR(err);
}

/*
 * Called with bsr_cfg_mutex held; drops it for a moment to wait for the
 * device's work item, after the device was unlinked (nobody finds it).
 */
int bsr_destroy_device(struct bsr_device *dev, char *why, size_t whylen)
{
	struct bsr_connection *c;
	struct bsr_peer_device *pd;
	unsigned long flags;
	int open, err;

	if (dev->backing) {
		snprintf(why, whylen, "%s: still attached, detach first",
			 dev->disk->disk_name);
		return -EBUSY;
	}
	spin_lock_irqsave(&dev->resource->lock, flags);
	open = dev->open_cnt;
	if (!open)
		dev->dying = true;
	spin_unlock_irqrestore(&dev->resource->lock, flags);
	if (open) {
		snprintf(why, whylen, "%s: device is held open by someone",
			 dev->disk->disk_name);
		return -EBUSY;
	}
	err = bsr_vj_forget(dev, why, whylen);
	if (err) {
		dev->dying = false;
		return err;
	}
	list_for_each_entry(c, &dev->resource->connections, list) {
		pd = bsr_find_peer_device(c, dev->volume);
		if (pd)
			bsr_destroy_peer_device(pd);
	}
	bsr_notify_device(dev, BSR_NOTIFY_TYPE_DESTROY);
	list_del(&dev->list);
	del_gendisk(dev->disk);
	mutex_unlock(&bsr_cfg_mutex);
	cancel_work_sync(&dev->dev_work);
	mutex_lock(&bsr_cfg_mutex);
	put_disk(dev->disk);
	free_device(dev);
	return 0;
}

static void set_limits(struct bsr_device *dev, struct block_device *bdev)
{
	struct request_queue *q = dev->disk->queue;
	struct request_queue *bq = bdev_get_queue(bdev);

	blk_queue_logical_block_size(q, bdev_logical_block_size(bdev));
	blk_queue_physical_block_size(q, bdev_physical_block_size(bdev));
	blk_queue_io_min(q, bdev_io_min(bdev));
	blk_queue_io_opt(q, bdev_io_opt(bdev));
	/* a replicated write must fit one P_DATA packet */
	blk_queue_max_hw_sectors(q, min(queue_max_hw_sectors(bq),
					BSR_MAX_BIO_SIZE >> 9));
	blk_queue_max_discard_sectors(q, min(bdev_max_discard_sectors(bdev),
					     BSR_MAX_DISCARD >> 9));
	q->limits.discard_granularity = bq->limits.discard_granularity;
	blk_queue_max_write_zeroes_sectors(q, min(bdev_write_zeroes_sectors(bdev),
						  BSR_MAX_DISCARD >> 9));
	blk_queue_write_cache(q, bdev_write_cache(bdev), bdev_fua(bdev));
}

void bsr_set_disk_conf(struct bsr_device *dev, const struct bsr_disk_conf *dc)
{
	dev->disk_conf = *dc;
	WRITE_ONCE(dev->disk_flushes, dc->disk_flushes);
	WRITE_ONCE(dev->io_error_detach,
		   dc->on_io_error == BSR_ON_IO_ERROR_DETACH);
}

static int check_md(struct bsr_device *dev, struct bsr_backing *b,
		    const struct bsr_disk_conf *dc, char *why, size_t whylen)
{
	struct bsr_md_info md = {};
	sector_t cap = bsr_backing_capacity(b);

	bsr_backing_info(b, &md);
	if (md.node_id != dev->resource->opts.node_id) {
		snprintf(why, whylen,
			 "%s: metadata on %s belongs to node-id %u, this node is %u",
			 dev->disk->disk_name, dc->backing_dev, md.node_id,
			 dev->resource->opts.node_id);
		return -EINVAL;
	}
	if (dc->disk_size > cap) {
		snprintf(why, whylen,
			 "%s: size %llu sectors exceeds the usable %llu of %s",
			 dev->disk->disk_name, dc->disk_size,
			 (unsigned long long)cap, dc->backing_dev);
		return -ENOSPC;
	}
	return 0;
}

int bsr_attach(struct bsr_device *dev, const struct bsr_disk_conf *dc,
	       char *why, size_t whylen)
{
	struct bsr_backing *b;
	sector_t size;
	int err;

	if (dev->disk_state != BSR_DISK_STATE_DISKLESS) {
		snprintf(why, whylen, "%s: already attached",
			 dev->disk->disk_name);
		return -EBUSY;
	}
	bsr_set_disk_state(dev, BSR_DISK_STATE_ATTACHING);
	b = bsr_backing_open(dc, dev, why, whylen);
	if (IS_ERR(b)) {
		bsr_set_disk_state(dev, BSR_DISK_STATE_DISKLESS);
		return PTR_ERR(b);
	}
	err = check_md(dev, b, dc, why, whylen);
	if (err) {
		bsr_backing_close(b);
		bsr_set_disk_state(dev, BSR_DISK_STATE_DISKLESS);
		return err;
	}
	size = dc->disk_size ?: bsr_backing_capacity(b);
	set_limits(dev, bsr_backing_bdev(b));
	bsr_set_disk_conf(dev, dc);
	clear_bit(BSR_DW_IO_ERROR, &dev->work_bits);
	WRITE_ONCE(dev->backing, b);
	set_capacity_and_notify(dev->disk, size);
	if (dev->resource->role == BSR_ROLE_PRIMARY)
		bsr_md_change_flags(b, BSR_MDF_PRIMARY_IND, 0);
	bsr_set_disk_state(dev, bsr_disk_state_from_md(b));
	bsr_vj_attached(dev);
	return 0;
}

int bsr_detach(struct bsr_device *dev, bool force, char *why, size_t whylen)
{
	unsigned long flags;
	int open, err;

	if (!dev->backing) {
		snprintf(why, whylen, "%s: not attached", dev->disk->disk_name);
		return -EALREADY;
	}
	spin_lock_irqsave(&dev->resource->lock, flags);
	open = dev->open_cnt;
	spin_unlock_irqrestore(&dev->resource->lock, flags);
	if (open && dev->resource->role == BSR_ROLE_PRIMARY && !force) {
		snprintf(why, whylen,
			 "%s: Primary and in use; detaching would fail all I/O (use --force)",
			 dev->disk->disk_name);
		return -EBUSY;
	}
	err = bsr_vj_detaching(dev, true, why, whylen);
	if (err)
		return err;
	bsr_set_disk_state(dev, BSR_DISK_STATE_DETACHING);
	close_backing(dev);
	return 0;
}

int bsr_resize(struct bsr_device *dev, u64 size, bool force,
	       char *why, size_t whylen)
{
	sector_t cap, cur;

	if (!dev->backing) {
		snprintf(why, whylen, "%s: no disk attached", dev->disk->disk_name);
		return -ENODEV;
	}
	cap = bsr_backing_capacity(dev->backing);
	cur = get_capacity(dev->disk);
	if (size > cap) {
		snprintf(why, whylen,
			 "%s: requested %llu sectors, the backing disk has %llu",
			 dev->disk->disk_name, size, (unsigned long long)cap);
		return -ENOSPC;
	}
	if ((size ?: cap) < cur && !force) {
		snprintf(why, whylen,
			 "%s: shrinking from %llu to %llu sectors loses data (use --force)",
			 dev->disk->disk_name, (unsigned long long)cur,
			 (unsigned long long)(size ?: cap));
		return -EINVAL;
	}
	dev->disk_conf.disk_size = size;
	set_capacity_and_notify(dev->disk, size ?: cap);
	bsr_notify_device(dev, BSR_NOTIFY_TYPE_CHANGE);
	return 0;
}
