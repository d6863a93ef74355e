// SPDX-License-Identifier: GPL-2.0
/*
 * The local I/O path of a bsr device: every application bio is cloned to
 * the backing device.  Writes first enter the activity log.  When their
 * extents are already active (the common case) that costs a spinlock and
 * they go straight down; otherwise the AL may have to write a transaction
 * and wait for it, so they are handed to a per-device ordered workqueue
 * (no current->bio_list there, so the AL's own I/O is not held back behind
 * ours).  Reads go straight down.
 *
 * Once a peer is known (dev->repl_slots), every write takes the workqueue:
 * there it enters the AL, locks its range (overlapping writes are applied
 * in the same order here and on the peer), goes to the peers
 * (bsr_repl_write) and then down.  It completes to the application when
 * the local write is done and every peer reference (protocols B and C)
 * was put.  Without peers nothing of that is paid for.
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/log2.h>
#include "bsr_int.h"
#include "bsr_peer_req.h"

struct bsr_req {
	struct bsr_device *dev;
	struct bio *master;
	u64 start;			/* the application submitted it, ns */
	u64 lstart;			/* we submitted the clone, ns */
	unsigned long acct_start;	/* jiffies, for /proc/diskstats */
	sector_t sector;
	unsigned int nr_sectors;
	bool in_al;
	bool submitted;
	bool repl;			/* goes to the peers */
	bool locked;			/* range is locked */
	blk_status_t status;		/* of the local write (repl) */
	atomic_t ref;			/* repl: local I/O + waiting peers */
	struct bsr_range range;
	struct bsr_repl_stamp stamp;	/* repl: the epochs it was sent in */
	struct bio clone;		/* must be last: bio_set front_pad */
};

static DEFINE_PER_CPU(s64, reqs_live);

u64 bsr_requests_allocated(void)
{
	s64 sum = 0;
	int cpu;

	for_each_possible_cpu(cpu)
		sum += per_cpu(reqs_live, cpu);
	return max_t(s64, sum, 0);
}

/* @dev's I/O counters, summed over the CPUs. */
void bsr_dev_io_stats(struct bsr_device *dev, struct bsr_dev_io_stats *sum)
{
	const u64 *in;
	u64 *out = (u64 *)sum;
	size_t i, n = sizeof(*sum) / sizeof(u64);
	int cpu;

	memset(sum, 0, sizeof(*sum));
	for_each_possible_cpu(cpu) {
		in = (const u64 *)per_cpu_ptr(dev->stats.io, cpu);
		for (i = 0; i < n; i++)
			out[i] += READ_ONCE(in[i]);
	}
}

unsigned int bsr_req_front_pad(void)
{
	return offsetof(struct bsr_req, clone);
}

bool bsr_get_ldev(struct bsr_device *dev)
{
	bool ok;

	rcu_read_lock();
	ok = bsr_disk_usable(READ_ONCE(dev->disk_state)) &&
	     READ_ONCE(dev->backing);
	if (ok)
		atomic_inc(&dev->local_cnt);
	rcu_read_unlock();
	return ok;
}

/*
 * At queue depth 1 every request drops a count to zero: look for a waiter
 * before taking the wait queue's lock for nobody (wq_has_sleeper() orders
 * the count's update before the look, as wait_event() needs).
 */
static void dec_and_wake(atomic_t *cnt, struct wait_queue_head *wq)
{
	if (atomic_dec_and_test(cnt) && wq_has_sleeper(wq))
		wake_up_all(wq);
}

void bsr_put_ldev(struct bsr_device *dev)
{
	dec_and_wake(&dev->local_cnt, &dev->wait);
}

/* Called after the disk state stopped admitting new requests. */
void bsr_drain_ldev(struct bsr_device *dev)
{
	synchronize_rcu();
	wait_event(dev->wait, !atomic_read(&dev->local_cnt));
}

static unsigned int lat_bucket(u64 ns)
{
	u64 us = div_u64(ns, NSEC_PER_USEC);

	if (!us)
		return 0;
	return min_t(unsigned int, ilog2(us), BSR_LAT_BUCKETS - 1);
}

static void account_done(struct bsr_req *req, struct bio *master)
{
	struct bsr_dev_io_stats __percpu *st = req->dev->stats.io;
	u64 now = bsr_now_ns();	/* one clock read for both latencies */
	u64 mlat = now > req->start ? now - req->start : 0;
	u64 llat = req->submitted && now > req->lstart ? now - req->lstart : 0;

	switch (bio_op(master)) {
	case REQ_OP_READ:
		this_cpu_inc(st->read_ios);
		this_cpu_add(st->read_sectors, req->nr_sectors);
		break;
	case REQ_OP_DISCARD:
	case REQ_OP_WRITE_ZEROES:
		this_cpu_inc(st->discard_ios);
		break;
	default:
		if (master->bi_opf & REQ_PREFLUSH)
			this_cpu_inc(st->flush_ios);
		if (req->nr_sectors) {
			this_cpu_inc(st->write_ios);
			this_cpu_add(st->write_sectors, req->nr_sectors);
		}
	}
	this_cpu_add(st->master_lat_ns, mlat);
	this_cpu_inc(st->master_hist[lat_bucket(mlat)]);
	if (req->submitted) {
		this_cpu_add(st->local_lat_ns, llat);
		this_cpu_inc(st->local_hist[lat_bucket(llat)]);
	}
	this_cpu_inc(st->completed_ios);
}

/* The application request is done: complete it and free the clone. */
static void req_finish(struct bsr_req *req)
{
	struct bsr_device *dev = req->dev;
	struct bio *master = req->master;

	if (req->repl) {
		master->bi_status = req->status;
		bsr_repl_write_done(dev, &req->stamp);
	}
	account_done(req, master);
	bio_end_io_acct(master, req->acct_start);
	bio_put(&req->clone);
	this_cpu_dec(reqs_live);
	bio_endio(master);
	bsr_put_ldev(dev);
	dec_and_wake(&dev->stats.upper_pending, &dev->wait);
}

void bsr_req_peer_get(struct bsr_req *req)
{
	atomic_inc(&req->ref);
}

void bsr_req_peer_put(struct bsr_req *req)
{
	if (atomic_dec_and_test(&req->ref))
		req_finish(req);
}

static void bsr_end_io(struct bio *clone)
{
	struct bsr_req *req = container_of(clone, struct bsr_req, clone);
	struct bsr_device *dev = req->dev;

	if (req->submitted)
		atomic_dec(&dev->stats.lower_pending);
	if (req->in_al)
		bsr_al_complete_io(dev->backing, req->sector, req->nr_sectors);
	if (clone->bi_status) {
		atomic64_inc(&dev->stats.io_errors);
		if (READ_ONCE(dev->io_error_detach))
			bsr_dev_io_error(dev);
	}
	if (!req->repl) {
		req->master->bi_status = clone->bi_status;
		req_finish(req);
		return;
	}
	req->status = clone->bi_status;
	if (req->locked)
		bsr_range_unlock(dev, &req->range);
	bsr_req_peer_put(req);
}

/* @now: the caller's clock read, 0 to read it here */
static void submit_local(struct bsr_req *req, u64 now)
{
	req->submitted = true;
	req->lstart = now ?: bsr_now_ns();
	atomic_inc(&req->dev->stats.lower_pending);
	submit_bio_noacct(&req->clone);
}

/* More than one write of @list goes to the peers. */
static bool batch_replicates(struct bio_list *list)
{
	struct bio *clone;
	int nr = 0;

	bio_list_for_each(clone, list)
		if (container_of(clone, struct bsr_req, clone)->repl && ++nr > 1)
			return true;
	return false;
}

/*
 * The replicated writes of one submit batch complete together at its end:
 * the application a completion wakes would otherwise preempt the worker at
 * its next mutex, and they would take turns for every write at queue
 * depth 32.  Completing them in a row lets the application reap them all
 * at once.
 */
#define HOLD_BATCH	32

struct held_reqs {
	struct bsr_req *req[HOLD_BATCH];
	unsigned int nr;
};

static void release_held(struct held_reqs *h)
{
	while (h->nr)
		bsr_req_peer_put(h->req[--h->nr]);
}

static void hold_req(struct held_reqs *h, struct bsr_req *req)
{
	if (h->nr == HOLD_BATCH)
		release_held(h);
	bsr_req_peer_get(req);
	h->req[h->nr++] = req;
}

/* Runs on dev->submit_wq: activity log, then down to the backing disk. */
void bsr_submit_work(struct work_struct *w)
{
	struct bsr_device *dev = container_of(w, struct bsr_device,
					      submit_work);
	struct held_reqs held = { .nr = 0 };
	struct blk_plug plug;
	struct bio_list list;
	struct bio *clone;
	bool cork;
	int err;

	spin_lock_irq(&dev->submit_lock);
	list = dev->submit_list;
	bio_list_init(&dev->submit_list);
	spin_unlock_irq(&dev->submit_lock);

	cork = batch_replicates(&list);
	if (cork)
		bsr_repl_cork(dev, true);
	blk_start_plug(&plug);
	while ((clone = bio_list_pop(&list))) {
		struct bsr_req *req = container_of(clone, struct bsr_req, clone);

		err = req->nr_sectors ? bsr_al_begin_io(dev->backing,
				req->sector, req->nr_sectors) : 0;
		if (err) {
			clone->bi_status = errno_to_blk_status(err);
			bsr_end_io(clone);
			continue;
		}
		req->in_al = req->nr_sectors;
		if (req->repl) {
			bsr_range_lock(dev, &req->range, req->sector,
				       req->nr_sectors);
			req->locked = true;
			bsr_repl_write(dev, req->master, req, &req->stamp);
			hold_req(&held, req);
		}
		submit_local(req, 0);
	}
	blk_finish_plug(&plug);
	if (cork)
		bsr_repl_cork(dev, false);
	release_held(&held);
}

static void fail_bio(struct bsr_device *dev, struct bio *bio)
{
	atomic64_inc(&dev->stats.io_errors);
	bio_io_error(bio);
}

/* disk-flushes=no: the admin says the backing disk needs no flushes. */
static bool strip_flush(struct bsr_device *dev, struct bio *bio)
{
	if (!(bio->bi_opf & REQ_PREFLUSH) || READ_ONCE(dev->disk_flushes))
		return false;
	bio->bi_opf &= ~REQ_PREFLUSH;
	if (bio_sectors(bio) || bio_op(bio) != REQ_OP_WRITE)
		return false;
	this_cpu_inc(dev->stats.io->flush_ios);
	bio_endio(bio);
	return true;
}

static void queue_submit(struct bsr_device *dev, struct bio *clone)
{
	spin_lock_irq(&dev->submit_lock);
	bio_list_add(&dev->submit_list, clone);
	spin_unlock_irq(&dev->submit_lock);
	queue_work(dev->submit_wq, &dev->submit_work);
}

void bsr_submit_bio(struct bio *bio)
{
	struct bsr_device *dev = bio->bi_bdev->bd_disk->private_data;
	struct bsr_resource *res = dev->resource;
	struct bsr_req *req;
	struct bio *clone;
	u64 start = bsr_now_ns();
	bool repl = op_is_write(bio_op(bio)) && READ_ONCE(dev->repl_slots);

	if (repl) {
		/* one write must fit one P_DATA packet */
		bio = bio_split_to_limits(bio);
		if (!bio)
			return;
	}
	if (READ_ONCE(res->susp))
		wait_event(res->susp_wait, !READ_ONCE(res->susp));
	if (!bsr_get_ldev(dev)) {
		fail_bio(dev, bio);
		return;
	}
	if (strip_flush(dev, bio)) {
		bsr_put_ldev(dev);
		return;
	}
	clone = bio_alloc_clone(bsr_backing_bdev(dev->backing), bio, GFP_NOIO,
				&dev->bio_set);
	if (!clone) {
		bsr_put_ldev(dev);
		fail_bio(dev, bio);
		return;
	}
	this_cpu_inc(reqs_live);
	atomic_inc(&dev->stats.upper_pending);
	req = container_of(clone, struct bsr_req, clone);
	req->dev = dev;
	req->master = bio;
	req->start = start;
	req->sector = bio->bi_iter.bi_sector;
	req->nr_sectors = bio_sectors(bio);
	req->in_al = false;
	req->submitted = false;
	req->repl = repl;
	req->locked = false;
	req->stamp.nr = 0;
	req->acct_start = bio_start_io_acct(bio);
	clone->bi_end_io = bsr_end_io;
	clone->bi_private = req;

	if (repl) {
		atomic_set(&req->ref, 1);
		req->stamp.seq = atomic64_inc_return(&res->write_seq);
		queue_submit(dev, clone);
		return;
	}
	if (op_is_write(bio_op(bio)) && req->nr_sectors) {
		if (!bsr_al_begin_io_nowait(dev->backing, req->sector,
					    req->nr_sectors)) {
			req->in_al = true;
			submit_local(req, start);
			return;
		}
		queue_submit(dev, clone);
		return;
	}
	submit_local(req, start);
}
