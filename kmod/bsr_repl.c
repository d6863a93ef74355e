// SPDX-License-Identifier: GPL-2.0
/*
 * Replication of application writes between two bsr nodes.
 *
 * Primary side: bsr_req.c hands every write (with its range locked) to
 * bsr_repl_write(), which sends it as P_DATA to every live peer and keeps
 * an entry on the connection's transfer log until the peer has it on
 * disk: P_WRITE_ACK in protocol C, the P_BARRIER_ACK of its epoch in
 * protocols A and B (the Secondary sends no per-write P_WRITE_ACK there).
 * Protocol B and C requests hold a reference on the application request
 * until P_RECV_ACK resp. P_WRITE_ACK.  Writes that do not reach a peer
 * (not connected, peer disk unusable, connection lost before the ack,
 * P_NEG_ACK) are set out of sync in that peer's bitmap slot.
 *
 * Epochs (protocols A and B): once a write of the current epoch completed
 * to the application, the next write sent is preceded by P_BARRIER; an
 * epoch left open by an idle device is closed by barrier_work within a
 * jiffy.  A write of an epoch that is closed already closes nothing: every
 * write submitted after it completed is sent after that barrier anyway.
 * (Closing on every completion put a barrier, and a wait for the
 * Secondary's disk, in front of nearly every write at queue depth 32.)
 * The Secondary acks a barrier when every write before it is on its disk
 * and every failed one was answered with P_NEG_ACK.
 *
 * Secondary side: P_DATA is read into a peer request, enters the activity
 * log, is submitted range-locked (overlapping writes apply in arrival
 * order) and acked from a work item once the disk completed it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/slab.h>
#include <linux/bio.h>
#include <linux/uio.h>
#include <linux/blkdev.h>
#include <linux/delay.h>
#include "bsr_transport.h"
#include "bsr_peer_req.h"

#define MAX_TARGETS	BSR_REPL_MAX_TARGETS
#define NO_CLOSE	U64_MAX		/* rc->close_seq: no epoch to close */
#define JOIN_SLACK	16	/* volumes that may join a live connection */

/* A live (connected) peer of one device. */
struct bsr_repl_target {
	struct list_head list;		/* on dev->repl_targets */
	struct bsr_repl *rc;
	struct bsr_peer_device *pd;	/* NULL: its device was deleted */
	int slot;
};

/* A write sent to the peer, until the peer has it on disk. */
struct bsr_tl_ent {
	struct list_head list;		/* on rc->tl, in send order */
	u64 block_id;
	u32 epoch;
	struct bsr_peer_device *pd;
	struct bsr_req *req;		/* B/C: holds a reference until acked */
	sector_t sector;
	u32 size;
	int slot;
	u64 sent;			/* bsr_now_ns() */
};

struct bsr_repl {
	struct bsr_net *n;
	struct bsr_connection *conn;
	u32 proto;			/* 1 A, 2 B, 3 C */
	u32 max_epoch;
	unsigned long ko_jiffies;	/* 0: no ko-count */

	spinlock_t lock;		/* live, senders, tl */
	bool live;
	int senders;
	wait_queue_head_t wait;
	struct list_head tl;

	struct mutex send_lock;		/* epoch + order of P_DATA on the wire */
	u64 next_block_id;
	u32 epoch;
	u32 epoch_writes;
	u64 close_seq;			/* NO_CLOSE, or see maybe_barrier() */
	struct delayed_work barrier_work;	/* A/B: close an idle epoch */

	/* Secondary side */
	atomic_t rx_pending;		/* peer writes submitted, not acked */
	atomic_t rx_disk;		/* peer writes the disk has not completed */
	atomic_t rx_failed;		/* failed peer writes not yet neg-acked */
	u32 rx_epoch_writes;
	spinlock_t done_lock;
	struct list_head done;		/* peer requests the disk completed */
	struct work_struct ack_work;
	struct delayed_work ko_work;

	/*
	 * Entries [0, nr_targets) are valid; a volume that joins while
	 * Connected appends one (up to cap_targets) and publishes it with a
	 * release store, so that the connection thread may walk them
	 * without a lock.
	 */
	u32 nr_targets;
	u32 cap_targets;
	struct bsr_repl_target targets[];
};

static u32 nr_targets(struct bsr_repl *rc)
{
	/* pairs with bsr_repl_join(): the entries below are initialised */
	return smp_load_acquire(&rc->nr_targets);
}

static DEFINE_SPINLOCK(repl_conn_lock);	/* conn->repl */
static DECLARE_WAIT_QUEUE_HEAD(repl_acked_wq);	/* repl_pending hit 0 */

#define D BIT(BSR_STREAM_DATA)
#define M BIT(BSR_STREAM_META)
#define ACK_RULE { sizeof(struct p_block_ack), sizeof(struct p_block_ack), 0, M, true }
const struct bsr_pkt_rule bsr_repl_rules[P_REPL_LAST - P_DATA + 1] = {
	[P_DATA - P_DATA] = { sizeof(struct p_data),
			      sizeof(struct p_data) + BSR_MAX_BIO_SIZE,
			      sizeof(struct p_data), D, true },
	[P_BARRIER - P_DATA] = { sizeof(struct p_barrier),
				 sizeof(struct p_barrier), 0, D },
	[P_RECV_ACK - P_DATA] = ACK_RULE,
	[P_WRITE_ACK - P_DATA] = ACK_RULE,
	[P_NEG_ACK - P_DATA] = ACK_RULE,
	[P_BARRIER_ACK - P_DATA] = { sizeof(struct p_barrier_ack),
				     sizeof(struct p_barrier_ack), 0, M },
	[P_OUT_OF_SYNC - P_DATA] = { sizeof(struct p_block_desc),
				     sizeof(struct p_block_desc), 0, D, true },
};
#undef ACK_RULE
#undef D
#undef M

void bsr_repl_dev_init(struct bsr_device *dev)
{
	spin_lock_init(&dev->range_lock);
	INIT_LIST_HEAD(&dev->ranges);
	init_waitqueue_head(&dev->range_wait);
	INIT_LIST_HEAD(&dev->repl_targets);
}

/* ------------------------------------------------- out-of-sync marks */

static void mark_oos(struct bsr_device *dev, int slot, sector_t sector,
		     u32 nr)
{
	if (slot < 0 || !nr || !bsr_get_ldev(dev))
		return;
	bsr_bm_set(dev->backing, slot, sector, nr);
	bsr_put_ldev(dev);
}

/*
 * Remember the bitmap slot of every peer device of @conn, so that writes
 * done while it is not connected are marked for it.  Process context,
 * bsr_cfg_mutex held.
 */
void bsr_repl_track_peer(struct bsr_connection *conn)
{
	struct bsr_peer_device *pd;
	int slot;

	list_for_each_entry(pd, &conn->peer_devices, list) {
		struct bsr_device *dev = pd->device;

		if (!bsr_get_ldev(dev))
			continue;
		slot = bsr_bm_slot_assign(dev->backing, conn->peer_node_id);
		if (slot >= 0 && slot < BITS_PER_LONG)
			set_bit(slot, &dev->repl_slots);
		bsr_put_ldev(dev);
	}
}

/* ------------------------------------------------------ Primary side */

static bool target_usable(struct bsr_repl_target *t)
{
	return t->rc->live && bsr_disk_usable(READ_ONCE(t->pd->peer_disk_state));
}

/*
 * Pin the live targets of @dev (rc->senders), those whose peer disk is
 * usable or, with @any_disk, all of them; returns how many.
 */
static int pin_targets(struct bsr_device *dev, struct bsr_repl_target **out,
		       bool any_disk)
{
	struct bsr_repl_target *t;
	int nr = 0;

	spin_lock_irq(&dev->range_lock);
	list_for_each_entry(t, &dev->repl_targets, list) {
		if (nr == MAX_TARGETS)
			break;
		spin_lock(&t->rc->lock);
		if (any_disk ? t->rc->live : target_usable(t)) {
			t->rc->senders++;
			out[nr++] = t;
		}
		spin_unlock(&t->rc->lock);
	}
	spin_unlock_irq(&dev->range_lock);
	return nr;
}

/* Pin @rc as a sender if it is live. */
static bool pin_sender(struct bsr_repl *rc)
{
	bool live;

	spin_lock_irq(&rc->lock);
	live = rc->live;
	if (live)
		rc->senders++;
	spin_unlock_irq(&rc->lock);
	return live;
}

static void release_sender(struct bsr_repl *rc)
{
	spin_lock_irq(&rc->lock);
	if (!--rc->senders)
		wake_up_all(&rc->wait);
	spin_unlock_irq(&rc->lock);
}

/*
 * tcp-cork the data streams of @dev's peers around a batch of writes
 * (bsr_submit_work): their P_DATA packets share segments.
 */
void bsr_repl_cork(struct bsr_device *dev, bool on)
{
	struct bsr_repl_target *t[MAX_TARGETS];
	int i, n = pin_targets(dev, t, true);

	for (i = 0; i < n; i++) {
		if (t[i]->rc->n->nc.tcp_cork)
			bsr_stream_cork(&t[i]->rc->n->data, on);
		release_sender(t[i]->rc);
	}
}

static u32 bio_dp_flags(struct bio *bio, u32 proto)
{
	u32 f = proto == 3 ? BSR_DP_SEND_WRITE_ACK : 0;

	if (bio->bi_opf & REQ_FUA)
		f |= BSR_DP_FUA;
	if (bio->bi_opf & REQ_PREFLUSH)
		f |= BSR_DP_PREFLUSH;
	if (bio_op(bio) == REQ_OP_DISCARD)
		f |= BSR_DP_DISCARD;
	if (bio_op(bio) == REQ_OP_WRITE_ZEROES)
		f |= BSR_DP_ZEROES;
	if (proto == 2)
		f |= BSR_DP_SEND_RECV_ACK;
	return f;
}

static bool bio_has_payload(struct bio *bio)
{
	return bio_op(bio) == REQ_OP_WRITE && bio->bi_iter.bi_size;
}

/*
 * Close the current epoch when due: when it is full, or when a write of it
 * completed to the application (rc->close_seq: the resource's write_seq
 * then) and the write that follows, @seq, was submitted after that.  A
 * write submitted before the completion may still join the epoch.  @seq 0:
 * no write follows (barrier_work), close it if a close is pending.
 * rc->send_lock held.
 */
static int maybe_barrier(struct bsr_repl *rc, u64 seq)
{
	u64 cs = READ_ONCE(rc->close_seq);
	bool close = cs != NO_CLOSE && (!seq || seq > cs);
	struct p_barrier b;

	if (!rc->epoch_writes) {
		if (close)	/* nothing before it to order against */
			WRITE_ONCE(rc->close_seq, NO_CLOSE);
		return 0;
	}
	if (!close && rc->epoch_writes < rc->max_epoch)
		return 0;
	b.epoch = cpu_to_be32(rc->epoch);
	b.pad = 0;
	/* before sending: the ack may arrive before bsr_send() returns */
	WRITE_ONCE(rc->epoch, rc->epoch + 1);
	rc->epoch_writes = 0;
	WRITE_ONCE(rc->close_seq, NO_CLOSE);
	atomic64_inc(&rc->conn->barriers);
	/* with its write following: one segment for both */
	if (seq)
		return bsr_send_more(&rc->n->data, P_BARRIER, BSR_VOL_NONE,
				     &b, sizeof(b));
	return bsr_send(&rc->n->data, P_BARRIER, BSR_VOL_NONE, &b, sizeof(b));
}

/* Send @bio (submitted as @seq) to @t's peer; *@epoch: the epoch it went in. */
static int send_one(struct bsr_repl_target *t, struct bio *bio,
		    struct bsr_req *req, u64 seq, u32 *epoch)
{
	struct bsr_repl *rc = t->rc;
	struct bsr_peer_device *pd = t->pd;
	u32 size = bio->bi_iter.bi_size;
	u32 nr = size >> 9;
	struct iov_iter it;
	struct bsr_tl_ent *e;
	struct p_data p;
	int err;

	e = kmalloc(sizeof(*e), GFP_NOIO);
	if (!e)
		return -ENOMEM;
	e->pd = pd;
	e->sector = bio->bi_iter.bi_sector;
	e->size = size;
	e->slot = t->slot;
	e->req = rc->proto >= 2 ? req : NULL;
	if (e->req)
		bsr_req_peer_get(req);

	mutex_lock(&rc->send_lock);
	err = maybe_barrier(rc, seq);
	e->block_id = ++rc->next_block_id;
	e->epoch = rc->epoch;
	*epoch = e->epoch;
	p.sector = cpu_to_be64(e->sector);
	p.block_id = cpu_to_be64(e->block_id);
	p.epoch = cpu_to_be32(rc->epoch);
	p.dp_flags = cpu_to_be32(bio_dp_flags(bio, rc->proto));
	p.size = cpu_to_be32(size);
	p.pad = 0;
	rc->epoch_writes++;
	e->sent = bsr_now_ns();
	spin_lock_irq(&rc->lock);
	list_add_tail(&e->list, &rc->tl);
	spin_unlock_irq(&rc->lock);
	atomic_inc(&pd->repl_pending);
	atomic64_add(nr, &rc->conn->ap_in_flight);
	if (!err) {
		if (bio_has_payload(bio)) {
			struct bvec_iter *bi = &bio->bi_iter;

			iov_iter_bvec(&it, ITER_SOURCE,
				      bio->bi_io_vec + bi->bi_idx,
				      bio->bi_vcnt - bi->bi_idx,
				      size + bi->bi_bvec_done);
			iov_iter_advance(&it, bi->bi_bvec_done);
		}
		err = bsr_send_data(&rc->n->data, P_DATA, pd->device->volume,
				    &p, sizeof(p), &it,
				    bio_has_payload(bio) ? size : 0);
	}
	mutex_unlock(&rc->send_lock);
	if (err) {
		/* the entry stays: bsr_repl_stop() marks it out of sync */
		bsr_net_fail(rc->n, BSR_CONN_STATE_NETWORKFAILURE);
		return err;
	}
	if (bio_op(bio) != REQ_OP_DISCARD && bio_op(bio) != REQ_OP_WRITE_ZEROES)
		atomic64_add(nr, &pd->repl_sent_sectors);
	return 0;
}

/*
 * Send @bio (a write whose range the caller holds locked) to every live
 * peer of @dev and mark it out of sync for every other known peer; @st
 * records the epochs it was sent in.  Process context.
 */
int bsr_repl_write(struct bsr_device *dev, struct bio *bio,
		   struct bsr_req *req, struct bsr_repl_stamp *st)
{
	struct bsr_repl_target *t[MAX_TARGETS];
	unsigned long done = 0, slots = READ_ONCE(dev->repl_slots);
	u32 nr = bio_sectors(bio);
	int i, n, slot;

	st->nr = 0;
	n = pin_targets(dev, t, false);
	for (i = 0; i < n; i++) {
		u32 epoch;

		if (!send_one(t[i], bio, req, st->seq, &epoch)) {
			st->rc[st->nr] = t[i]->rc;
			st->epoch[st->nr++] = epoch;
			if (t[i]->slot >= 0)
				__set_bit(t[i]->slot, &done);
		}
		release_sender(t[i]->rc);
	}
	for_each_set_bit(slot, &slots, BITS_PER_LONG)
		if (!test_bit(slot, &done))
			mark_oos(dev, slot, bio->bi_iter.bi_sector, nr);
	return 0;
}

/* The epoch @rc sent the write of @st in, or -1 when not sent there. */
static s64 stamp_epoch(const struct bsr_repl_stamp *st,
		       const struct bsr_repl *rc)
{
	int i;

	for (i = 0; i < st->nr; i++)
		if (st->rc[i] == rc)
			return st->epoch[i];
	return -1;
}

/*
 * A replicated write of @dev completes to the application (it has not
 * seen it yet): if it belongs to a connection's current epoch, a write
 * submitted from now on opens a new one there (or barrier_work closes it
 * if none comes).  The first pending close stands: its write_seq is the
 * lower bound.  Protocol C needs no barriers for ordering: its writes
 * complete only once on the peer's disk.
 */
void bsr_repl_write_done(struct bsr_device *dev,
			 const struct bsr_repl_stamp *st)
{
	struct bsr_repl_target *t;
	unsigned long flags;
	u64 now;

	if (!st->nr)
		return;
	now = atomic64_read(&dev->resource->write_seq);
	spin_lock_irqsave(&dev->range_lock, flags);
	list_for_each_entry(t, &dev->repl_targets, list) {
		struct bsr_repl *rc = t->rc;

		/* rc->epoch only grows: a stale read closes one epoch too many */
		if (rc->proto == 3 || stamp_epoch(st, rc) != READ_ONCE(rc->epoch))
			continue;
		cmpxchg64(&rc->close_seq, NO_CLOSE, now);
		queue_delayed_work(system_wq, &rc->barrier_work, 1);
	}
	spin_unlock_irqrestore(&dev->range_lock, flags);
}

/* Protocols A/B: the last epoch of a burst is closed once the device idles. */
static void barrier_work_fn(struct work_struct *w)
{
	struct bsr_repl *rc = container_of(to_delayed_work(w),
					   struct bsr_repl, barrier_work);
	int err;

	if (!pin_sender(rc))
		return;
	mutex_lock(&rc->send_lock);
	err = maybe_barrier(rc, 0);
	mutex_unlock(&rc->send_lock);
	if (err)
		bsr_net_fail(rc->n, BSR_CONN_STATE_NETWORKFAILURE);
	release_sender(rc);
}

/* ------------------------------------------------------- acks (meta) */

static void tl_ent_done(struct bsr_repl *rc, struct bsr_tl_ent *e,
			bool in_sync)
{
	struct bsr_peer_device *pd = e->pd;

	if (!in_sync)
		mark_oos(pd->device, e->slot, e->sector, e->size >> 9);
	if (e->req)
		bsr_req_peer_put(e->req);
	atomic64_sub(e->size >> 9, &rc->conn->ap_in_flight);
	if (atomic_dec_and_test(&pd->repl_pending))
		wake_up_all(&repl_acked_wq);
	kfree(e);
}

/* @e reached the peer's disk (or failed there): count its round trip. */
static void tl_ent_acked(struct bsr_tl_ent *e)
{
	atomic64_add(bsr_ns_since(e->sent), &e->pd->repl_net_lat_ns);
	atomic64_inc(&e->pd->repl_acked_ios);
}

static struct bsr_tl_ent *tl_find(struct bsr_repl *rc, u64 id)
{
	struct bsr_tl_ent *e;

	list_for_each_entry(e, &rc->tl, list)
		if (e->block_id == id)
			return e;
	return NULL;
}

static int got_block_ack(struct bsr_repl *rc, struct bsr_pkt_hdr *h)
{
	struct p_block_ack *a = rc->n->meta.rbuf;
	u16 cmd = be16_to_cpu(h->command);
	struct bsr_req *req = NULL;
	struct bsr_tl_ent *e;

	spin_lock_irq(&rc->lock);
	e = tl_find(rc, be64_to_cpu(a->block_id));
	if (!e || e->sector != be64_to_cpu(a->sector) ||
	    e->size != be32_to_cpu(a->size) ||
	    e->pd->device->volume != be16_to_cpu(h->volume)) {
		spin_unlock_irq(&rc->lock);
		return bsr_proto_err(rc->n, &rc->n->meta,
				     "ack for no such write", h);
	}
	if (cmd == P_RECV_ACK) {
		if (rc->proto == 2) {
			req = e->req;
			e->req = NULL;
		}
		spin_unlock_irq(&rc->lock);
		if (req)
			bsr_req_peer_put(req);
		return 0;
	}
	list_del(&e->list);
	spin_unlock_irq(&rc->lock);
	tl_ent_acked(e);
	if (cmd == P_NEG_ACK)
		pr_warn_ratelimited("%s peer %u: peer failed to write %u bytes at sector %llu\n",
				    rc->n->res_name, rc->n->peer_node_id,
				    e->size, (unsigned long long)e->sector);
	tl_ent_done(rc, e, cmd == P_WRITE_ACK);
	return 0;
}

/*
 * Protocols A/B: P_BARRIER_ACK @epoch says every write of that epoch and
 * the ones before is on the peer's disk (a failed one was neg-acked first).
 */
static void tl_release_epochs(struct bsr_repl *rc, u32 epoch)
{
	struct bsr_tl_ent *e, *tmp;
	LIST_HEAD(done);

	spin_lock_irq(&rc->lock);
	list_for_each_entry_safe(e, tmp, &rc->tl, list) {
		if (e->epoch > epoch)
			break;
		list_move_tail(&e->list, &done);
	}
	spin_unlock_irq(&rc->lock);
	list_for_each_entry_safe(e, tmp, &done, list) {
		tl_ent_acked(e);
		tl_ent_done(rc, e, true);
	}
}

/* The live replication state of @c, pinned as a sender, or NULL. */
static struct bsr_repl *conn_repl_get(struct bsr_connection *c)
{
	struct bsr_repl *rc;
	bool live;

	spin_lock(&repl_conn_lock);
	rc = c->repl;
	live = rc && pin_sender(rc);
	spin_unlock(&repl_conn_lock);
	return live ? rc : NULL;
}

int bsr_repl_got_ack(struct bsr_net *n, struct bsr_pkt_hdr *h)
{
	struct bsr_repl *rc = n->conn->repl;
	struct p_barrier_ack *b;

	switch (be16_to_cpu(h->command)) {
	case P_RECV_ACK:
	case P_WRITE_ACK:
	case P_NEG_ACK:
		return got_block_ack(rc, h);
	case P_BARRIER_ACK:
		b = n->meta.rbuf;
		if (be32_to_cpu(b->epoch) >= READ_ONCE(rc->epoch))
			return bsr_proto_err(n, &n->meta,
					     "barrier ack for an open epoch", h);
		if (rc->proto < 3)
			tl_release_epochs(rc, be32_to_cpu(b->epoch));
		return 0;
	default:
		return bsr_proto_err(n, &n->meta,
				     "unexpected command while connected", h);
	}
}

/* ko-count: a peer that does not ack a write in time is dropped. */
static void ko_work_fn(struct work_struct *w)
{
	struct bsr_repl *rc = container_of(to_delayed_work(w),
					   struct bsr_repl, ko_work);
	struct bsr_tl_ent *e;
	bool late = false;

	spin_lock_irq(&rc->lock);
	e = list_first_entry_or_null(&rc->tl, struct bsr_tl_ent, list);
	if (e && rc->live)
		late = div_u64(bsr_ns_since(e->sent), NSEC_PER_MSEC) >
		       jiffies_to_msecs(rc->ko_jiffies);
	spin_unlock_irq(&rc->lock);
	if (late) {
		pr_warn("%s peer %u: write not acknowledged within timeout * ko-count, dropping the peer\n",
			rc->n->res_name, rc->n->peer_node_id);
		bsr_net_fail(rc->n, BSR_CONN_STATE_TIMEOUT);
		return;
	}
	schedule_delayed_work(&rc->ko_work, HZ / 2);
}

/* ---------------------------------------------------- Secondary side */

static int pd_slot(struct bsr_repl *rc, struct bsr_peer_device *pd)
{
	u32 i;

	for (i = 0; i < nr_targets(rc); i++)
		if (READ_ONCE(rc->targets[i].pd) == pd)
			return rc->targets[i].slot;
	return -1;
}

/*
 * Our disk failed a peer write: the range is out of sync with the peer on
 * this side too (the Primary marks it on P_NEG_ACK), and on-io-error
 * applies as for a local write.
 */
static void peer_write_failed(struct bsr_repl *rc, struct bsr_peer_req *pr)
{
	struct bsr_device *dev = pr->pd->device;

	atomic64_inc(&dev->stats.io_errors);
	pr_warn_ratelimited("%s peer %u: write of %u bytes at sector %llu failed on the local disk\n",
			    rc->n->res_name, rc->n->peer_node_id, pr->size,
			    (unsigned long long)pr->sector);
	mark_oos(dev, pd_slot(rc, pr->pd), pr->sector, pr->size >> 9);
	if (READ_ONCE(dev->io_error_detach))
		bsr_dev_io_error(dev);
}

static void ack_work_fn(struct work_struct *w)
{
	struct bsr_repl *rc = container_of(w, struct bsr_repl, ack_work);
	struct bsr_peer_req *pr, *tmp;
	struct p_block_ack a;
	bool cork;
	LIST_HEAD(list);

	spin_lock_irq(&rc->done_lock);
	list_splice_init(&rc->done, &list);
	spin_unlock_irq(&rc->done_lock);
	/* a batch of acks leaves in as few segments as it fills */
	cork = rc->n->nc.tcp_cork && !list_is_singular(&list) &&
	       !list_empty(&list);
	if (cork)
		bsr_stream_cork(&rc->n->meta, true);
	list_for_each_entry_safe(pr, tmp, &list, list) {
		struct bsr_device *dev = pr->pd->device;

		if (pr->private)
			bsr_al_complete_io(dev->backing, pr->sector,
					   pr->size >> 9);
		if (pr->status && pr->private)
			peer_write_failed(rc, pr);
		a.sector = cpu_to_be64(pr->sector);
		a.block_id = cpu_to_be64(pr->block_id);
		a.size = cpu_to_be32(pr->size);
		a.pad = 0;
		if (pr->status)
			bsr_send(&rc->n->meta, P_NEG_ACK, dev->volume, &a,
				 sizeof(a));
		else if (pr->dp_flags & BSR_DP_SEND_WRITE_ACK)
			bsr_send(&rc->n->meta, P_WRITE_ACK, dev->volume, &a,
				 sizeof(a));
		if (pr->status && atomic_dec_and_test(&rc->rx_failed))
			wake_up_all(&rc->wait);
		atomic_dec(&pr->pd->repl_unacked);
		if (pr->private)
			bsr_put_ldev(dev);
		bsr_peer_req_free(pr);
		if (atomic_dec_and_test(&rc->rx_pending))
			wake_up_all(&rc->wait);
	}
	if (cork)
		bsr_stream_cork(&rc->n->meta, false);
}

/*
 * pr->done: bio completion context.  A barrier waits only for the disk
 * (rx_disk), not for the ack work, unless a write failed (rx_failed): its
 * P_NEG_ACK must precede the barrier's ack.  @rc lives while @pr is
 * unacked (bsr_repl_stop() waits for rx_pending), so the ack work is
 * queued before it can see @pr.
 */
static void peer_write_done(struct bsr_peer_req *pr)
{
	struct bsr_repl *rc = pr->pd->connection->repl;
	unsigned long flags;

	if (pr->status)
		atomic_inc(&rc->rx_failed);
	if (atomic_dec_and_test(&rc->rx_disk))
		wake_up_all(&rc->wait);
	spin_lock_irqsave(&rc->done_lock, flags);
	list_add_tail(&pr->list, &rc->done);
	queue_work(system_highpri_wq, &rc->ack_work);
	spin_unlock_irqrestore(&rc->done_lock, flags);
}

static struct bsr_peer_device *rc_pd(struct bsr_repl *rc, u16 vol)
{
	u32 i;

	for (i = 0; i < nr_targets(rc); i++) {
		struct bsr_peer_device *pd = READ_ONCE(rc->targets[i].pd);

		if (pd && pd->device->volume == vol)
			return pd;
	}
	return NULL;
}

static enum req_op dp_op(u32 f)
{
	if (f & BSR_DP_DISCARD)
		return REQ_OP_DISCARD;
	if (f & BSR_DP_ZEROES)
		return REQ_OP_WRITE_ZEROES;
	return REQ_OP_WRITE;
}

static int check_data(struct bsr_repl *rc, struct bsr_pkt_hdr *h,
		      struct bsr_peer_device *pd, u64 sector, u32 size, u32 f)
{
	bool nodata = f & (BSR_DP_DISCARD | BSR_DP_ZEROES);
	struct bsr_net *n = rc->n;

	if (!pd)
		return bsr_proto_err(n, &n->data, "write for an unknown volume", h);
	if (READ_ONCE(pd->device->resource->role) == BSR_ROLE_PRIMARY)
		return bsr_proto_err(n, &n->data, "write from the peer while this node is Primary", h);
	if (size & 511 || (!nodata && size > BSR_MAX_BIO_SIZE))
		return bsr_proto_err(n, &n->data, "bad write size", h);
	if (bsr_pkt_tail(h) != (nodata ? 0 : size))
		return bsr_proto_err(n, &n->data, "write size does not match the packet", h);
	if (sector + (size >> 9) > get_capacity(pd->device->disk) ||
	    sector + (size >> 9) < sector)
		return bsr_proto_err(n, &n->data, "write beyond the end of the device", h);
	return 0;
}

/* A peer write enters (@d = 1) or, never submitted, leaves (-1) the counts. */
static void rx_count(struct bsr_repl *rc, struct bsr_peer_device *pd, int d)
{
	atomic_add(d, &pd->repl_unacked);
	atomic_add(d, &rc->rx_pending);
	atomic_add(d, &rc->rx_disk);
}

/* Send a negative ack for a write that never reached our disk. */
static void neg_ack(struct bsr_repl *rc, struct bsr_peer_req *pr)
{
	pr->status = BLK_STS_IOERR;
	rx_count(rc, pr->pd, 1);
	peer_write_done(pr);
}

static int recv_data(struct bsr_repl *rc, struct bsr_pkt_hdr *h)
{
	struct p_data *p = rc->n->data.rbuf;
	struct bsr_peer_device *pd = rc_pd(rc, be16_to_cpu(h->volume));
	u64 sector = be64_to_cpu(p->sector);
	u32 size = be32_to_cpu(p->size), f = be32_to_cpu(p->dp_flags);
	enum req_op op = dp_op(f);
	struct bsr_peer_req *pr;
	struct p_block_ack a;
	int err;

	err = check_data(rc, h, pd, sector, size, f);
	if (err)
		return err;
	pr = bsr_peer_req_alloc(pd, sector, size, op == REQ_OP_WRITE);
	if (!pr)
		return -ENOMEM;
	pr->block_id = be64_to_cpu(p->block_id);
	pr->dp_flags = f;
	pr->epoch = be32_to_cpu(p->epoch);
	pr->done = peer_write_done;
	err = bsr_peer_req_recv_data(rc->n, pr);
	if (err) {
		bsr_peer_req_free(pr);
		return err;
	}
	atomic64_add(size >> 9, &pd->repl_recv_sectors);
	rc->rx_epoch_writes++;
	if (f & BSR_DP_SEND_RECV_ACK) {
		a.sector = p->sector;
		a.block_id = p->block_id;
		a.size = p->size;
		a.pad = 0;
		err = bsr_send(&rc->n->meta, P_RECV_ACK, pd->device->volume,
			       &a, sizeof(a));
		if (err) {
			bsr_peer_req_free(pr);
			return err;
		}
	}
	if (!bsr_get_ldev(pd->device)) {
		neg_ack(rc, pr);
		return 0;
	}
	if (size && bsr_al_begin_io(pd->device->backing, sector, size >> 9)) {
		bsr_put_ldev(pd->device);
		neg_ack(rc, pr);
		return 0;
	}
	pr->private = size ? pd : NULL;
	if (!size)
		bsr_put_ldev(pd->device);
	rx_count(rc, pd, 1);
	err = bsr_peer_req_submit(pr, op);
	if (err) {
		rx_count(rc, pd, -1);
		if (pr->private) {
			bsr_al_complete_io(pd->device->backing, sector,
					   size >> 9);
			bsr_put_ldev(pd->device);
			pr->private = NULL;
		}
		neg_ack(rc, pr);
	}
	return 0;
}

static void flush_disks(struct bsr_repl *rc)
{
	u32 i;

	for (i = 0; i < nr_targets(rc); i++) {
		struct bsr_peer_device *pd = READ_ONCE(rc->targets[i].pd);
		struct bsr_device *dev = pd ? pd->device : NULL;

		if (!dev || !READ_ONCE(dev->disk_flushes) || !bsr_get_ldev(dev))
			continue;
		blkdev_issue_flush(bsr_backing_bdev(dev->backing));
		bsr_put_ldev(dev);
	}
}

static int recv_barrier(struct bsr_repl *rc, struct bsr_pkt_hdr *h)
{
	struct p_barrier *b = rc->n->data.rbuf;
	struct p_barrier_ack a = {
		.epoch = b->epoch,
		.set_size = cpu_to_be32(rc->rx_epoch_writes),
	};

	while (atomic_read(&rc->rx_disk) || atomic_read(&rc->rx_failed)) {
		if (bsr_should_stop(rc->n))
			return -EINTR;
		wait_event_timeout(rc->wait, !atomic_read(&rc->rx_disk) &&
				   !atomic_read(&rc->rx_failed), HZ / 10);
	}
	flush_disks(rc);
	rc->rx_epoch_writes = 0;
	return bsr_send(&rc->n->meta, P_BARRIER_ACK, BSR_VOL_NONE, &a,
			sizeof(a));
}

static int recv_oos(struct bsr_repl *rc, struct bsr_pkt_hdr *h)
{
	struct p_block_desc *d = rc->n->data.rbuf;
	struct bsr_peer_device *pd = rc_pd(rc, be16_to_cpu(h->volume));
	u64 sector = be64_to_cpu(d->sector);
	u32 size = be32_to_cpu(d->size);

	if (!pd || size & 511 ||
	    sector + (size >> 9) > get_capacity(pd->device->disk))
		return bsr_proto_err(rc->n, &rc->n->data, "bad out-of-sync range", h);
	mark_oos(pd->device, pd_slot(rc, pd), sector, size >> 9);
	return 0;
}

int bsr_repl_recv(struct bsr_net *n, struct bsr_pkt_hdr *h)
{
	struct bsr_repl *rc = n->conn->repl;

	switch (be16_to_cpu(h->command)) {
	case P_DATA:
		return recv_data(rc, h);
	case P_BARRIER:
		return recv_barrier(rc, h);
	case P_OUT_OF_SYNC:
		return recv_oos(rc, h);
	default:
		return bsr_proto_err(n, &n->data,
				     "unexpected command while connected", h);
	}
}

/* ------------------------------------------------------ start / stop */

static u32 count_pds(struct bsr_connection *c)
{
	struct bsr_peer_device *pd;
	u32 nr = 0;

	list_for_each_entry(pd, &c->peer_devices, list)
		nr++;
	return nr;
}

/* The bitmap slot of @t's peer on its device, -1 without a disk. */
static void target_slot(struct bsr_repl_target *t)
{
	struct bsr_peer_device *pd = t->pd;

	t->slot = -1;
	if (!bsr_get_ldev(pd->device))
		return;
	t->slot = bsr_bm_slot_assign(pd->device->backing,
				     pd->connection->peer_node_id);
	if (t->slot >= 0 && t->slot < BITS_PER_LONG)
		set_bit(t->slot, &pd->device->repl_slots);
	else
		t->slot = -1;
	bsr_put_ldev(pd->device);
}

static void init_target(struct bsr_repl *rc, struct bsr_repl_target *t,
			struct bsr_peer_device *pd)
{
	t->rc = rc;
	t->pd = pd;
	INIT_LIST_HEAD(&t->list);
	target_slot(t);
}

static struct bsr_repl *alloc_repl(struct bsr_net *n)
{
	struct bsr_connection *c = n->conn;
	struct bsr_peer_device *pd;
	struct bsr_repl *rc;
	u32 i = 0;

	while (!mutex_trylock(&bsr_cfg_mutex)) {
		if (bsr_should_stop(n))
			return ERR_PTR(-EINTR);
		usleep_range(5000, 10000);
	}
	i = count_pds(c) + JOIN_SLACK;
	rc = kzalloc(struct_size(rc, targets, i), GFP_NOIO);
	if (!rc) {
		mutex_unlock(&bsr_cfg_mutex);
		return ERR_PTR(-ENOMEM);
	}
	rc->cap_targets = i;
	rc->close_seq = NO_CLOSE;
	i = 0;
	list_for_each_entry(pd, &c->peer_devices, list)
		init_target(rc, &rc->targets[i++], pd);
	rc->nr_targets = i;
	mutex_unlock(&bsr_cfg_mutex);
	return rc;
}

int bsr_repl_start(struct bsr_net *n)
{
	struct bsr_repl *rc = alloc_repl(n);
	u32 i;

	if (IS_ERR(rc))
		return PTR_ERR(rc);
	rc->n = n;
	rc->conn = n->conn;
	rc->proto = n->nc.wire_protocol;
	rc->max_epoch = n->nc.max_epoch_size ?: 1;
	rc->ko_jiffies = n->nc.ko_count ?
		bsr_ds_to_jiffies(n->nc.timeout) * n->nc.ko_count : 0;
	spin_lock_init(&rc->lock);
	init_waitqueue_head(&rc->wait);
	INIT_LIST_HEAD(&rc->tl);
	mutex_init(&rc->send_lock);
	rc->epoch = 1;
	spin_lock_init(&rc->done_lock);
	INIT_LIST_HEAD(&rc->done);
	INIT_WORK(&rc->ack_work, ack_work_fn);
	INIT_DELAYED_WORK(&rc->ko_work, ko_work_fn);
	INIT_DELAYED_WORK(&rc->barrier_work, barrier_work_fn);
	rc->live = true;

	spin_lock(&repl_conn_lock);
	n->conn->repl = rc;
	spin_unlock(&repl_conn_lock);
	for (i = 0; i < rc->nr_targets; i++) {
		struct bsr_device *dev = rc->targets[i].pd->device;

		spin_lock_irq(&dev->range_lock);
		list_add_tail(&rc->targets[i].list, &dev->repl_targets);
		spin_unlock_irq(&dev->range_lock);
	}
	if (rc->ko_jiffies)
		schedule_delayed_work(&rc->ko_work, HZ / 2);
	return 0;
}

void bsr_repl_stop(struct bsr_net *n)
{
	struct bsr_repl *rc = n->conn->repl;
	struct bsr_tl_ent *e, *tmp;
	u64 lost = 0;
	u32 i;

	if (!rc)
		return;
	spin_lock_irq(&rc->lock);
	rc->live = false;
	spin_unlock_irq(&rc->lock);
	for (i = 0; i < nr_targets(rc); i++) {
		struct bsr_peer_device *pd = READ_ONCE(rc->targets[i].pd);
		struct bsr_device *dev;

		if (!pd)
			continue;
		dev = pd->device;
		spin_lock_irq(&dev->range_lock);
		list_del_init(&rc->targets[i].list);
		spin_unlock_irq(&dev->range_lock);
	}
	cancel_delayed_work_sync(&rc->ko_work);
	/* no target lists it any more: bsr_repl_write_done() cannot requeue */
	cancel_delayed_work_sync(&rc->barrier_work);
	/* senders fail fast: the sockets are shut down by now */
	wait_event(rc->wait, !READ_ONCE(rc->senders));
	/* peer writes still on our disk: let them finish and be acked */
	wait_event(rc->wait, !atomic_read(&rc->rx_pending));
	flush_work(&rc->ack_work);

	spin_lock(&repl_conn_lock);
	n->conn->repl = NULL;
	spin_unlock(&repl_conn_lock);
	list_for_each_entry_safe(e, tmp, &rc->tl, list) {
		list_del(&e->list);
		lost += e->size >> 9;
		tl_ent_done(rc, e, false);
	}
	if (lost)
		pr_info("%s peer %u: %llu KiB not acknowledged by the peer marked out of sync\n",
			n->res_name, n->peer_node_id,
			(unsigned long long)lost / 2);
	wake_up_all(&repl_acked_wq);
	kfree(rc);
}

/* ------------------------------------------- admin waits, role, stats */

static u32 conn_pending(struct bsr_connection *c)
{
	struct bsr_peer_device *pd;
	u32 nr = 0;

	list_for_each_entry(pd, &c->peer_devices, list)
		nr += atomic_read(&pd->repl_pending);
	return nr;
}

static unsigned long drain_timeout(struct bsr_connection *c)
{
	unsigned long t = bsr_ds_to_jiffies(c->net_conf.timeout) *
			  max(c->net_conf.ko_count, 1U);

	return min(t, 10UL * HZ);
}

/* disconnect without --force: give in-flight writes a chance to be acked */
void bsr_repl_drain(struct bsr_connection *conn)
{
	lockdep_assert_held(&bsr_cfg_mutex);
	if (conn->cstate != BSR_CONN_STATE_CONNECTED)
		return;
	wait_event_timeout(repl_acked_wq, !conn_pending(conn),
			   drain_timeout(conn));
}

int bsr_repl_secondary_wait(struct bsr_resource *res, char *why,
			    size_t whylen)
{
	struct bsr_connection *c;

	lockdep_assert_held(&bsr_cfg_mutex);
	list_for_each_entry(c, &res->connections, list) {
		u32 left;

		if (wait_event_timeout(repl_acked_wq, !conn_pending(c) ||
				       !READ_ONCE(c->repl), drain_timeout(c)))
			continue;
		left = conn_pending(c);
		if (left) {
			snprintf(why, whylen,
				 "secondary: %u writes not yet acknowledged by peer %s",
				 left, c->name);
			return -ETIMEDOUT;
		}
	}
	return 0;
}

int bsr_repl_may_detach(struct bsr_device *dev, char *why, size_t whylen)
{
	struct bsr_resource *res = dev->resource;
	struct bsr_connection *c;

	lockdep_assert_held(&bsr_cfg_mutex);
	if (res->role != BSR_ROLE_PRIMARY || !READ_ONCE(dev->open_cnt))
		return 0;	/* nobody's I/O depends on the disk */
	list_for_each_entry(c, &res->connections, list) {
		if (c->cstate != BSR_CONN_STATE_CONNECTED)
			continue;
		snprintf(why, whylen,
			 "cannot detach while Primary and connected to peer %s; disconnect first",
			 c->name);
		return -EBUSY;
	}
	return 0;
}

/* Tell every connected peer our (new) role. */
void bsr_repl_send_state(struct bsr_resource *res)
{
	struct p_state st = { .role = cpu_to_be32(res->role) };
	struct bsr_connection *c;
	struct bsr_repl *rc;

	lockdep_assert_held(&bsr_cfg_mutex);
	list_for_each_entry(c, &res->connections, list) {
		rc = conn_repl_get(c);
		if (!rc)
			continue;
		if (bsr_send(&rc->n->data, P_STATE, BSR_VOL_NONE, &st,
			     sizeof(st)))
			bsr_net_fail(rc->n, BSR_CONN_STATE_NETWORKFAILURE);
		release_sender(rc);
	}
}

void bsr_repl_peer_stats(struct bsr_peer_device *pd,
			 struct bsr_peer_device_stats *ps)
{
	ps->sent_sectors += atomic64_read(&pd->repl_sent_sectors);
	ps->repl_sent_sectors = atomic64_read(&pd->repl_sent_sectors);
	ps->received_sectors += atomic64_read(&pd->repl_recv_sectors);
	ps->pending = atomic_read(&pd->repl_pending);
	ps->unacked = atomic_read(&pd->repl_unacked);
	ps->acked_ios = atomic64_read(&pd->repl_acked_ios);
	ps->net_lat_ns = atomic64_read(&pd->repl_net_lat_ns);
}

void bsr_repl_conn_stats(struct bsr_connection *c, struct bsr_conn_stats *cs)
{
	cs->ap_in_flight = atomic64_read(&c->ap_in_flight);
}

/* ------------------------------------- volumes joining while Connected */

static struct bsr_repl_target *find_target(struct bsr_repl *rc,
					   struct bsr_peer_device *pd)
{
	u32 i;

	for (i = 0; i < nr_targets(rc); i++)
		if (rc->targets[i].pd == pd)
			return &rc->targets[i];
	return NULL;
}

/* The live connection of @c pinned (its streams stay up), or NULL. */
struct bsr_net *bsr_repl_pin(struct bsr_connection *c)
{
	struct bsr_repl *rc = conn_repl_get(c);

	return rc ? rc->n : NULL;
}

void bsr_repl_unpin(struct bsr_connection *c)
{
	release_sender(c->repl);
}

/*
 * With bsr_cfg_mutex: @pd (its device just got a disk) takes part in the
 * live connection: a target for its writes, a bitmap slot.  Its writes go
 * out once the peer's disk is known (target_usable()).
 */
int bsr_repl_join(struct bsr_peer_device *pd)
{
	struct bsr_repl *rc = conn_repl_get(pd->connection);
	struct bsr_device *dev = pd->device;
	struct bsr_repl_target *t;
	int err = 0;
	u32 nr;

	lockdep_assert_held(&bsr_cfg_mutex);
	if (!rc)
		return -ENOTCONN;
	t = find_target(rc, pd);
	nr = rc->nr_targets;
	if (t) {
		target_slot(t);
	} else if (nr < rc->cap_targets) {
		t = &rc->targets[nr];
		init_target(rc, t, pd);
		spin_lock_irq(&dev->range_lock);
		list_add_tail(&t->list, &dev->repl_targets);
		spin_unlock_irq(&dev->range_lock);
		/* pairs with nr_targets(): publish the initialised entry */
		smp_store_release(&rc->nr_targets, nr + 1);
	} else {
		err = -ENOSPC;
	}
	release_sender(rc);
	return err;
}

/*
 * With bsr_cfg_mutex, before @pd is freed (its device is deleted; it has
 * no disk and nobody has it open).  Writes still in flight to or from
 * the peer get a moment to be acknowledged; -EBUSY if they are not.
 */
int bsr_repl_forget(struct bsr_peer_device *pd, char *why, size_t whylen)
{
	struct bsr_connection *c = pd->connection;
	unsigned long left = drain_timeout(c);
	struct bsr_repl_target *t;
	struct bsr_repl *rc;

	lockdep_assert_held(&bsr_cfg_mutex);
	left = wait_event_timeout(repl_acked_wq,
				  !atomic_read(&pd->repl_pending), left);
	while (atomic_read(&pd->repl_unacked) && left) {
		msleep(20);
		left -= min(left, msecs_to_jiffies(20));
	}
	if (atomic_read(&pd->repl_pending) || atomic_read(&pd->repl_unacked)) {
		snprintf(why, whylen,
			 "volume %u: writes exchanged with peer %s are not acknowledged yet",
			 pd->device->volume, c->name);
		return -EBUSY;
	}
	rc = conn_repl_get(c);
	if (!rc) {
		if (!READ_ONCE(c->repl))
			return 0;
		snprintf(why, whylen,
			 "volume %u: the connection to peer %s is going down, try again",
			 pd->device->volume, c->name);
		return -EAGAIN;
	}
	t = find_target(rc, pd);
	if (t) {
		spin_lock_irq(&pd->device->range_lock);
		list_del_init(&t->list);
		spin_unlock_irq(&pd->device->range_lock);
		WRITE_ONCE(t->pd, NULL);
	}
	release_sender(rc);
	return 0;
}
