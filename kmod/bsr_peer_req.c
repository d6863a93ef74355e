// SPDX-License-Identifier: GPL-2.0
/*
 * Range locks and peer requests (the contract is in bsr_peer_req.h).
 *
 * Range locks: every lock request, granted or not, sits on the device's
 * list in the order it was made.  A request is granted when no earlier
 * entry overlaps it, so overlapping I/O runs strictly in request order;
 * I/O that does not overlap never waits.  A blocked request marks the
 * range in its way ("waiting") so that its unlock wakes the waiters.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bio.h>
#include <linux/slab.h>
#include <linux/mm.h>
#include <linux/uio.h>
#include "bsr_transport.h"
#include "bsr_peer_req.h"

#define PR_LOCKED	BIT(0)
#define PR_LDEV		BIT(1)

static bool overlap(const struct bsr_range *a, sector_t sector, u32 nr)
{
	return nr && a->nr_sectors && a->sector < sector + nr &&
	       sector < a->sector + a->nr_sectors;
}

/* Under range_lock: marks and returns the first earlier overlapping one. */
static struct bsr_range *range_blocker(struct bsr_device *dev,
				       struct bsr_range *r)
{
	struct bsr_range *e;

	list_for_each_entry(e, &dev->ranges, list) {
		if (e == r)
			return NULL;
		if (overlap(e, r->sector, r->nr_sectors)) {
			e->waiting = true;
			return e;
		}
	}
	return NULL;
}

static bool range_granted(struct bsr_device *dev, struct bsr_range *r)
{
	unsigned long flags;
	bool ok;

	spin_lock_irqsave(&dev->range_lock, flags);
	ok = !range_blocker(dev, r);
	spin_unlock_irqrestore(&dev->range_lock, flags);
	return ok;
}

static void range_init(struct bsr_range *r, sector_t sector, u32 nr)
{
	INIT_LIST_HEAD(&r->list);
	r->sector = sector;
	r->nr_sectors = nr;
	r->waiting = false;
}

void bsr_range_lock(struct bsr_device *dev, struct bsr_range *r,
		    sector_t sector, u32 nr_sectors)
{
	unsigned long flags;
	bool blocked;

	range_init(r, sector, nr_sectors);
	spin_lock_irqsave(&dev->range_lock, flags);
	list_add_tail(&r->list, &dev->ranges);
	blocked = range_blocker(dev, r);
	spin_unlock_irqrestore(&dev->range_lock, flags);
	if (blocked)
		wait_event(dev->range_wait, range_granted(dev, r));
}

bool bsr_range_trylock(struct bsr_device *dev, struct bsr_range *r,
		       sector_t sector, u32 nr_sectors)
{
	struct bsr_range *e;
	unsigned long flags;

	range_init(r, sector, nr_sectors);
	spin_lock_irqsave(&dev->range_lock, flags);
	list_for_each_entry(e, &dev->ranges, list) {
		if (overlap(e, sector, nr_sectors)) {
			spin_unlock_irqrestore(&dev->range_lock, flags);
			return false;
		}
	}
	list_add_tail(&r->list, &dev->ranges);
	spin_unlock_irqrestore(&dev->range_lock, flags);
	return true;
}

void bsr_range_unlock(struct bsr_device *dev, struct bsr_range *r)
{
	unsigned long flags;
	bool wake;

	spin_lock_irqsave(&dev->range_lock, flags);
	list_del_init(&r->list);
	wake = r->waiting;
	spin_unlock_irqrestore(&dev->range_lock, flags);
	if (wake)
		wake_up_all(&dev->range_wait);
}

/* ------------------------------------------------------ peer requests */

struct bsr_peer_req *bsr_peer_req_alloc(struct bsr_peer_device *pd,
					sector_t sector, u32 size,
					bool with_data)
{
	struct bsr_peer_req *pr;
	u32 i;

	if (WARN_ON_ONCE(size > BSR_MAX_BIO_SIZE && with_data))
		return NULL;
	pr = kzalloc(sizeof(*pr), GFP_NOIO);
	if (!pr)
		return NULL;
	pr->pd = pd;
	pr->sector = sector;
	pr->size = size;
	INIT_LIST_HEAD(&pr->list);
	INIT_LIST_HEAD(&pr->range.list);
	if (!with_data || !size)
		return pr;
	pr->nr_pages = DIV_ROUND_UP(size, PAGE_SIZE);
	pr->pages = kcalloc(pr->nr_pages, sizeof(*pr->pages), GFP_NOIO);
	if (!pr->pages)
		goto fail;
	for (i = 0; i < pr->nr_pages; i++) {
		pr->pages[i] = alloc_page(GFP_NOIO);
		if (!pr->pages[i])
			goto fail;
	}
	return pr;
fail:
	bsr_peer_req_free(pr);
	return NULL;
}

void bsr_peer_req_free(struct bsr_peer_req *pr)
{
	struct bsr_device *dev = pr->pd->device;
	u32 i;

	if (pr->held & PR_LOCKED)
		bsr_range_unlock(dev, &pr->range);
	if (pr->held & PR_LDEV)
		bsr_put_ldev(dev);
	for (i = 0; pr->pages && i < pr->nr_pages; i++)
		if (pr->pages[i])
			__free_page(pr->pages[i]);
	kfree(pr->pages);
	kfree(pr);
}

/* The bytes of page @i that belong to @pr. */
static u32 page_len(struct bsr_peer_req *pr, u32 i)
{
	return min_t(u32, PAGE_SIZE, pr->size - i * PAGE_SIZE);
}

/* The pages of @pr as a bio_vec array (kfree() it), NULL without memory. */
static struct bio_vec *pr_bvecs(struct bsr_peer_req *pr)
{
	struct bio_vec *bv;
	u32 i;

	bv = kcalloc(max(pr->nr_pages, 1U), sizeof(*bv), GFP_NOIO);
	if (!bv)
		return NULL;
	for (i = 0; i < pr->nr_pages; i++)
		bvec_set_page(&bv[i], pr->pages[i], page_len(pr, i), 0);
	return bv;
}

int bsr_peer_req_recv_data(struct bsr_net *n, struct bsr_peer_req *pr)
{
	struct bio_vec *bv;
	int err;

	if (!pr->nr_pages)
		return 0;
	bv = pr_bvecs(pr);
	if (!bv)
		return -ENOMEM;
	err = bsr_recv_bvec(&n->data, bv, pr->nr_pages, pr->size,
			    bsr_ds_to_jiffies(n->nc.timeout));
	kfree(bv);
	return err;
}

static void peer_req_endio(struct bio *bio)
{
	struct bsr_peer_req *pr = bio->bi_private;

	pr->status = bio->bi_status;
	bio_put(bio);
	pr->done(pr);
}

static blk_opf_t pr_opf(struct bsr_peer_req *pr, enum req_op op)
{
	blk_opf_t opf = op;

	if (op == REQ_OP_READ)
		return opf;
	if (pr->dp_flags & BSR_DP_FUA)
		opf |= REQ_FUA;
	if (pr->dp_flags & BSR_DP_PREFLUSH)
		opf |= REQ_PREFLUSH;
	if (op == REQ_OP_WRITE)
		opf |= REQ_SYNC;
	return opf;
}

int bsr_peer_req_submit(struct bsr_peer_req *pr, enum req_op op)
{
	struct bsr_device *dev = pr->pd->device;
	struct bio *bio;
	u32 i;

	if (!bsr_get_ldev(dev))
		return -ENODEV;
	pr->held |= PR_LDEV;
	bsr_range_lock(dev, &pr->range, pr->sector, pr->size >> 9);
	pr->held |= PR_LOCKED;
	bio = bio_alloc(bsr_backing_bdev(dev->backing), pr->nr_pages,
			pr_opf(pr, op), GFP_NOIO);
	bio->bi_iter.bi_sector = pr->sector;
	bio->bi_private = pr;
	bio->bi_end_io = peer_req_endio;
	if (op == REQ_OP_DISCARD || op == REQ_OP_WRITE_ZEROES)
		bio->bi_iter.bi_size = pr->size;
	for (i = 0; i < pr->nr_pages; i++)
		__bio_add_page(bio, pr->pages[i], page_len(pr, i), 0);
	submit_bio_noacct(bio);
	return 0;
}

int bsr_send_peer_req(struct bsr_stream *st, enum bsr_packet cmd,
		      const void *head, u32 head_len,
		      struct bsr_peer_req *pr)
{
	u32 len = pr->pages ? pr->size : 0;
	struct bio_vec *bv;
	struct iov_iter it;
	int err;

	bv = pr_bvecs(pr);
	if (!bv)
		return -ENOMEM;
	iov_iter_bvec(&it, ITER_SOURCE, bv, pr->nr_pages, len);
	err = bsr_send_data(st, cmd, pr->pd->device->volume, head, head_len,
			    &it, len);
	kfree(bv);
	return err;
}
