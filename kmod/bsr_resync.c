// SPDX-License-Identifier: GPL-2.0
/*
 * Bitmap exchange and resync between two bsr nodes (docs/protocol.md,
 * "Resync").
 *
 * The SyncSource drives everything.  It sends P_RS_SYNC_UUID, then both
 * sides send their bitmap slot for the other (P_RS_BITMAP, run-length
 * encoded) and OR what they receive into their own slot, so both walk the
 * same union.  A worker thread per connection ("bsr_s_...") then reads
 * each run of set bits (range-locked: an application write to the same
 * blocks goes before or after it, on the wire and on the peer) and sends
 * it as P_RS_DATA; the SyncTarget writes it (range-locked too) and acks on
 * the meta stream.  Bits are cleared on both sides as blocks land.  When
 * nothing is left the source sends P_RS_DONE with its UUIDs, which the
 * target takes over: both are UpToDate with the same current UUID.
 *
 * Who runs what: the connection thread receives data-stream packets
 * (bitmap pieces, resync writes, done), the meta thread the acks, the
 * worker sends (bitmaps, reads, done, progress), and an ordered workqueue
 * finishes peer requests (bio completion cannot sleep).  State visible to
 * users changes under bsr_cfg_mutex, taken by threads with a trylock loop
 * that gives up when the connection stops (bsr_receiver.c explains why).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <crypto/hash.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/slab.h>
#include <linux/workqueue.h>
#include "bsr_transport.h"
#include "bsr_peer_req.h"
#include "bsr_rs_int.h"

#define D BIT(BSR_STREAM_DATA)
#define M BIT(BSR_STREAM_META)
#define FIXED(type, s) { sizeof(type), sizeof(type), 0, s, true }
const struct bsr_pkt_rule bsr_rs_rules[P_RS_LAST - P_RS_FIRST + 1] = {
	[P_RS_SYNC_UUID - P_RS_FIRST] = FIXED(struct p_rs_sync_uuid, D),
	[P_RS_BITMAP - P_RS_FIRST] = {
		sizeof(struct p_rs_bitmap) + 1, BSR_MAX_PAYLOAD, 0, D, true },
	[P_RS_DATA - P_RS_FIRST] = {
		sizeof(struct p_data) + 512,
		sizeof(struct p_data) + BSR_MAX_BIO_SIZE,
		sizeof(struct p_data), D, true },
	[P_RS_WRITE_ACK - P_RS_FIRST] = FIXED(struct p_block_ack, M),
	[P_RS_NEG_ACK - P_RS_FIRST] = FIXED(struct p_block_ack, M),
	[P_RS_DONE - P_RS_FIRST] = FIXED(struct p_rs_uuids, D),
	[P_RS_SUSP - P_RS_FIRST] = FIXED(struct p_rs_susp, D),
	[P_RS_NEW_UUIDS - P_RS_FIRST] = FIXED(struct p_rs_uuids, D),
	[P_RS_WANT_SYNC - P_RS_FIRST] = FIXED(struct p_rs_susp, D),
	[P_OV_START - P_RS_FIRST] = FIXED(struct p_ov_start, D),
	[P_OV_DIGEST - P_RS_FIRST] = {
		sizeof(struct p_ov_digest) + 1,
		sizeof(struct p_ov_digest) + BSR_OV_MAX_BLOCKS * BSR_OV_MAX_DIGEST,
		0, D, true },
	[P_OV_RESULT - P_RS_FIRST] = FIXED(struct p_ov_result, M),
	[P_OV_DONE - P_RS_FIRST] = FIXED(struct p_ov_done, D),
};
#undef FIXED
#undef D
#undef M

/* Guards connection->rs for the netlink side (set and cleared here). */
static DEFINE_SPINLOCK(rs_conn_lock);

/* ------------------------------------------------------------ helpers */

bool rs_lock(struct bsr_net *n)
{
	while (!mutex_trylock(&bsr_cfg_mutex)) {
		if (bsr_should_stop(n))
			return false;
		usleep_range(2000, 5000);
	}
	return true;
}

/* With bsr_cfg_mutex: new replication state / peer disk, one event. */
static void rs_set_state(struct rs_vol *v, enum bsr_repl_state rs,
		  enum bsr_disk_state pds)
{
	struct bsr_peer_device *pd = v->pd;

	lockdep_assert_held(&bsr_cfg_mutex);
	if (pd->repl_state == rs && pd->peer_disk_state == pds)
		return;
	pd->repl_state = rs;
	pd->peer_disk_state = pds;
	bsr_notify_peer_device(pd, BSR_NOTIFY_TYPE_CHANGE);
}

bool rs_state(struct rs_vol *v, enum bsr_repl_state rs,
	      enum bsr_disk_state pds)
{
	if (!rs_lock(v->rc->n))
		return false;
	rs_set_state(v, rs, pds);
	mutex_unlock(&bsr_cfg_mutex);
	return true;
}

/* Entries a volume joining while Connected may append (see rs_nr()). */
#define RS_JOIN_SLACK	16

static u32 rs_nr(struct bsr_rs_conn *rc)
{
	/* pairs with bsr_rs_join(): the entries below are initialised */
	return smp_load_acquire(&rc->nr);
}

static struct rs_vol *rs_vol_of(struct bsr_rs_conn *rc, u16 volume)
{
	u32 i;

	for (i = 0; i < rs_nr(rc); i++)
		if (rc->vols[i].volume == volume)
			return &rc->vols[i];
	return NULL;
}

void rs_kick(struct bsr_rs_conn *rc)
{
	set_bit(RSC_KICK, &rc->flags);
	wake_up(&rc->waitq);
}

static u64 cap_sectors(struct rs_vol *v)
{
	return min_t(u64, bsr_dev_capacity(v->dev),
		     bsr_bm_bits(v->dev->backing) << 3);
}

/* ------------------------------------------------- the bitmap exchange */

static int put_varint(u8 *p, u64 x)
{
	int n = 0;

	do {
		p[n] = x & 0x7f;
		x >>= 7;
		if (x)
			p[n] |= 0x80;
		n++;
	} while (x);
	return n;
}

static int get_varint(const u8 *p, u32 len, u32 *pos, u64 *x)
{
	int shift = 0;

	*x = 0;
	while (*pos < len && shift < 64) {
		u8 c = p[(*pos)++];

		*x |= (u64)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return 0;
		shift += 7;
	}
	return -EPROTO;
}

/* Send our slot for the peer as run lengths, in packets <= 64 KiB. */
static int rs_send_bitmap(struct rs_vol *v)
{
	struct bsr_backing *b = v->dev->backing;
	struct p_rs_bitmap *p = v->rc->bmbuf;
	u8 *runs = (u8 *)(p + 1);
	u32 room = BSR_MAX_PAYLOAD - sizeof(*p) - 10;
	u64 bits = bsr_bm_bits(b), pos = 0, start;
	int err;

	do {
		u32 len = 0;
		bool set = false;

		start = pos;
		while (pos < bits && len < room) {
			u64 next = bsr_bm_find(b, v->slot, pos, !set);

			len += put_varint(runs + len, next - pos);
			pos = next;
			set = !set;
		}
		if (!len)
			len = put_varint(runs, 0);
		p->start_bit = cpu_to_be64(start);
		p->end_bit = cpu_to_be64(pos);
		p->flags = cpu_to_be32(pos >= bits ? BSR_RSB_LAST : 0);
		p->pad = 0;
		err = bsr_send(&v->rc->n->data, P_RS_BITMAP, v->volume, p,
			       sizeof(*p) + len);
		if (err)
			return err;
		v->bm_pkts++;
	} while (pos < bits);
	return 0;
}

static int recv_bitmap(struct bsr_net *n, struct rs_vol *v,
		       struct bsr_pkt_hdr *h)
{
	struct p_rs_bitmap *p = n->data.rbuf;
	u32 len = be32_to_cpu(h->length) - sizeof(*p), at = 0;
	const u8 *runs = (u8 *)(p + 1);
	u64 pos = be64_to_cpu(p->start_bit), end = be64_to_cpu(p->end_bit);
	u64 bits, run;
	bool set = false;

	if (v->slot < 0 || test_bit(RSV_PEER_BM, &v->flags) ||
	    pos != v->bm_recv_next || end < pos)
		return bsr_proto_err(n, &n->data, "bitmap piece out of order", h);
	bits = bsr_bm_bits(v->dev->backing);
	while (at < len) {
		if (get_varint(runs, len, &at, &run) || run > end - pos)
			return bsr_proto_err(n, &n->data, "bad bitmap runs", h);
		if (set && run && pos < bits)
			bsr_bm_change_bits(v->dev->backing, v->slot, pos,
					   min(pos + run, bits), true);
		pos += run;
		set = !set;
	}
	if (pos != end)
		return bsr_proto_err(n, &n->data, "bitmap runs do not add up", h);
	v->bm_recv_next = end;
	if (be32_to_cpu(p->flags) & BSR_RSB_LAST) {
		set_bit(RSV_PEER_BM, &v->flags);
		rs_kick(v->rc);
	}
	return 0;
}

/* --------------------------------------------------- the sync protocol */

/* SyncSource, worker: adopt the sync UUID on the peer, send our bits. */
static int source_begin(struct rs_vol *v, bool full)
{
	struct bsr_backing *b = v->dev->backing;
	struct p_rs_sync_uuid p = {};
	u64 uuid;
	int err;

	if (full)
		bsr_bm_change_bits(b, v->slot, 0, bsr_bm_bits(b), true);
	err = bsr_md_sync_uuid(b, v->slot, &uuid);
	if (err)
		return err;
	v->role = RS_SOURCE;
	v->cursor = 0;
	v->bm_recv_next = 0;
	v->bm_pkts = 0;
	clear_bit(RSV_PEER_BM, &v->flags);
	clear_bit(RSV_SYNCING, &v->flags);
	if (!rs_state(v, full ? BSR_REPL_STATE_STARTINGSYNCS :
		      BSR_REPL_STATE_WFBITMAPS, BSR_DISK_STATE_INCONSISTENT))
		return -EINTR;
	p.uuid = cpu_to_be64(uuid);
	p.flags = cpu_to_be32(full ? BSR_RSF_FULL : 0);
	err = bsr_send(&v->rc->n->data, P_RS_SYNC_UUID, v->volume, &p,
		       sizeof(p));
	if (!err && rs_state(v, BSR_REPL_STATE_WFBITMAPS,
			     BSR_DISK_STATE_INCONSISTENT))
		err = rs_send_bitmap(v);
	return err;
}

/* SyncTarget, connection thread: P_RS_SYNC_UUID from the source. */
static int recv_sync_uuid(struct bsr_net *n, struct rs_vol *v,
			  struct bsr_pkt_hdr *h)
{
	struct p_rs_sync_uuid *p = n->data.rbuf;
	struct bsr_device *dev = v->dev;
	int err;

	if (v->slot < 0 || v->role != RS_NONE)
		return bsr_proto_err(n, &n->data, "resync start not expected", h);
	if (READ_ONCE(dev->resource->role) == BSR_ROLE_PRIMARY) {
		pr_err("%s/%u peer %u: refusing to become SyncTarget while Primary: it would need to read the blocks not yet synced from the peer, which bsr does not do\n",
		       n->res_name, v->volume, n->peer_node_id);
		return -ENOTRECOVERABLE;
	}
	err = bsr_md_become_target(dev->backing, v->slot,
				   be64_to_cpu(p->uuid));
	if (err)
		return err;
	if (be32_to_cpu(p->flags) & BSR_RSF_FULL)
		bsr_bm_change_bits(dev->backing, v->slot, 0,
				   bsr_bm_bits(dev->backing), true);
	v->role = RS_TARGET;
	v->bm_recv_next = 0;
	v->bm_pkts = 0;
	clear_bit(RSV_PEER_BM, &v->flags);
	clear_bit(RSV_SYNCING, &v->flags);
	if (!rs_lock(n))
		return -EINTR;
	bsr_set_disk_state(dev, BSR_DISK_STATE_INCONSISTENT);
	rs_set_state(v, BSR_REPL_STATE_WFBITMAPT, BSR_DISK_STATE_UPTODATE);
	mutex_unlock(&bsr_cfg_mutex);
	set_bit(RSV_SEND_BM, &v->flags);
	rs_kick(v->rc);
	return 0;
}

/* Both bitmaps are in: the union is what is left to do. */
static void sync_begins(struct rs_vol *v)
{
	struct bsr_rs_stats *st = &v->pd->rs_stats;
	u64 oos = bsr_bm_oos_sectors(v->dev->backing, v->slot);

	set_bit(RSV_SYNCING, &v->flags);
	atomic64_set(&st->total, oos);
	atomic64_set(&st->done, 0);
	atomic64_set(&st->paused_ms, 0);
	v->started = jiffies;
	rs_controller_reset(v);
	pr_info("%s/%u peer %u: %s: %llu KiB to sync (bitmap exchange: %u packets sent)\n",
		v->rc->n->res_name, v->volume, v->rc->n->peer_node_id,
		v->role == RS_SOURCE ? "SyncSource" : "SyncTarget", oos >> 1,
		v->bm_pkts);
	rs_state(v, v->role == RS_SOURCE ? BSR_REPL_STATE_SYNCSOURCE :
		 BSR_REPL_STATE_SYNCTARGET,
		 v->role == RS_SOURCE ? BSR_DISK_STATE_INCONSISTENT :
		 BSR_DISK_STATE_UPTODATE);
}

/* SyncSource, worker: every block is on the peer. */
static int source_done(struct rs_vol *v)
{
	struct bsr_backing *b = v->dev->backing;
	struct bsr_rs_stats *st = &v->pd->rs_stats;
	struct p_rs_uuids p = {};
	struct bsr_md_info md;
	unsigned long ms = jiffies_to_msecs(jiffies - v->started) -
			   (unsigned long)atomic64_read(&st->paused_ms);
	u64 kib = atomic64_read(&st->done) >> 1;
	int err, k;

	err = bsr_bm_write_dirty(b) ?: bsr_md_sync_done(b, v->slot);
	if (err)
		return err;
	bsr_backing_info(b, &md);
	p.current_uuid = cpu_to_be64(md.current_uuid);
	for (k = 0; k < 4; k++)
		p.history[k] = cpu_to_be64(md.history_uuids[k]);
	err = bsr_send(&v->rc->n->data, P_RS_DONE, v->volume, &p, sizeof(p));
	if (err)
		return err;
	v->role = RS_NONE;
	clear_bit(RSV_SYNCING, &v->flags);
	pr_info("%s/%u peer %u: resync done: %llu KiB in %lu ms (%llu KiB/s)\n",
		v->rc->n->res_name, v->volume, v->rc->n->peer_node_id, kib,
		ms, kib * 1000 / max(ms, 1UL));
	if (!rs_lock(v->rc->n))
		return -EINTR;
	v->pd->bitmap_uuid = 0;
	v->pd->peer_current_uuid = md.current_uuid;
	rs_set_state(v, BSR_REPL_STATE_ESTABLISHED, BSR_DISK_STATE_UPTODATE);
	mutex_unlock(&bsr_cfg_mutex);
	return 0;
}

/*
 * SyncSource, worker: an I/O error (a read here, or a write on the peer)
 * stopped the resync and nothing is in flight any more.  Both sides go
 * back to Established; the target stays Inconsistent and both keep the
 * bits that are left and the sync UUID, so the next connect resumes the
 * resync (bitmap-based).
 */
static int source_failed(struct rs_vol *v)
{
	struct p_rs_uuids p = { .flags = cpu_to_be32(BSR_RSD_FAILED) };
	u64 left = bsr_bm_oos_sectors(v->dev->backing, v->slot);
	int err;

	bsr_bm_write_dirty(v->dev->backing);
	err = bsr_send(&v->rc->n->data, P_RS_DONE, v->volume, &p, sizeof(p));
	if (err)
		return err;
	v->role = RS_NONE;
	clear_bit(RSV_SYNCING, &v->flags);
	clear_bit(RSV_FAILED, &v->flags);
	pr_err("%s/%u peer %u: resync stopped by an I/O error: %llu KiB left out of sync, the peer stays Inconsistent (disconnect and connect to resume it)\n",
	       v->rc->n->res_name, v->volume, v->rc->n->peer_node_id,
	       left >> 1);
	return rs_state(v, BSR_REPL_STATE_ESTABLISHED,
			BSR_DISK_STATE_INCONSISTENT) ? 0 : -EINTR;
}

static void read_uuids(const struct p_rs_uuids *p, u64 *cur, u64 *hist)
{
	int k;

	*cur = be64_to_cpu(p->current_uuid);
	for (k = 0; k < 4; k++)
		hist[k] = be64_to_cpu(p->history[k]);
}

/* Take the peer's UUIDs; we are UpToDate now (with the cfg mutex). */
static int become_uptodate(struct bsr_net *n, struct rs_vol *v,
			   const struct p_rs_uuids *p)
{
	struct bsr_backing *b = v->dev->backing;
	u64 cur, hist[4];
	int err;

	read_uuids(p, &cur, hist);
	bsr_bm_change_bits(b, v->slot, 0, bsr_bm_bits(b), false);
	err = bsr_bm_write_dirty(b) ?:
	      bsr_md_adopt_uuids(b, v->slot, cur, hist);
	if (err)
		return err;
	if (!rs_lock(n))
		return -EINTR;
	v->pd->bitmap_uuid = 0;
	v->pd->peer_current_uuid = cur;
	bsr_set_disk_state(v->dev, BSR_DISK_STATE_UPTODATE);
	rs_set_state(v, BSR_REPL_STATE_ESTABLISHED, BSR_DISK_STATE_UPTODATE);
	mutex_unlock(&bsr_cfg_mutex);
	return 0;
}

static int recv_done(struct bsr_net *n, struct rs_vol *v,
		     struct bsr_pkt_hdr *h)
{
	struct bsr_rs_stats *st = &v->pd->rs_stats;

	if (v->role != RS_TARGET || !test_bit(RSV_SYNCING, &v->flags))
		return bsr_proto_err(n, &n->data, "resync done not expected", h);
	v->role = RS_NONE;
	clear_bit(RSV_SYNCING, &v->flags);
	if (be32_to_cpu(((struct p_rs_uuids *)n->data.rbuf)->flags) &
	    BSR_RSD_FAILED) {
		bsr_bm_write_dirty(v->dev->backing);
		pr_err("%s/%u peer %u: resync stopped by an I/O error: %llu KiB left out of sync, this node stays Inconsistent (disconnect and connect to resume it)\n",
		       n->res_name, v->volume, n->peer_node_id,
		       bsr_bm_oos_sectors(v->dev->backing, v->slot) >> 1);
		return rs_state(v, BSR_REPL_STATE_ESTABLISHED,
				BSR_DISK_STATE_UPTODATE) ? 0 : -EINTR;
	}
	atomic64_set(&st->done, atomic64_read(&st->total));
	pr_info("%s/%u peer %u: resync done, this node is UpToDate\n",
		n->res_name, v->volume, n->peer_node_id);
	return become_uptodate(n, v, n->data.rbuf);
}

static int recv_new_uuids(struct bsr_net *n, struct rs_vol *v,
			  struct bsr_pkt_hdr *h)
{
	struct p_rs_uuids *p = n->data.rbuf;

	if (v->slot < 0 || v->role != RS_NONE || !(be32_to_cpu(p->flags) & 1))
		return bsr_proto_err(n, &n->data, "new UUIDs not expected", h);
	pr_info("%s/%u peer %u: the peer started a new generation with a cleared bitmap: taking its UUIDs, no resync\n",
		n->res_name, v->volume, n->peer_node_id);
	return become_uptodate(n, v, p);
}

static int recv_susp(struct bsr_net *n, struct rs_vol *v)
{
	struct p_rs_susp *p = n->data.rbuf;
	u32 old;

	if (!rs_lock(n))
		return -EINTR;
	old = v->pd->resync_susp;
	if (be32_to_cpu(p->susp) & BSR_SUSP_USER)
		v->pd->resync_susp |= BSR_SUSP_PEER;
	else
		v->pd->resync_susp &= ~BSR_SUSP_PEER;
	if (old != v->pd->resync_susp)
		bsr_notify_peer_device(v->pd, BSR_NOTIFY_TYPE_CHANGE);
	mutex_unlock(&bsr_cfg_mutex);
	rs_kick(v->rc);
	return 0;
}

/* ------------------------------------------------------ data and acks */

/* The volume a peer request of ours belongs to. */
static struct rs_vol *pr_vol(struct bsr_peer_req *pr)
{
	if (pr->dp_flags & RS_PR_OV_T)
		return ((struct ov_treq *)pr->private)->v;
	return pr->private;
}

static void rs_io_done(struct bsr_peer_req *pr)
{
	struct rs_vol *v = pr_vol(pr);
	unsigned long irq;

	spin_lock_irqsave(&v->rc->lock, irq);
	list_add_tail(&pr->list, &v->rc->done_list);
	spin_unlock_irqrestore(&v->rc->lock, irq);
	queue_work(v->rc->wq, &v->rc->done_work);
}

static void finish_read(struct rs_vol *v, struct bsr_peer_req *pr)
{
	struct p_data p = {
		.sector = cpu_to_be64(pr->sector),
		.size = cpu_to_be32(pr->size),
	};
	int err = -EIO;

	if (!pr->status)
		err = bsr_send_peer_req(&v->rc->n->data,
					(enum bsr_packet)P_RS_DATA, &p,
					sizeof(p), pr);
	if (!err) {
		atomic64_add(pr->size >> 9, &v->pd->rs_stats.sent);
		return;
	}
	/* Not sent: the bits stay set; a read error ends this resync. */
	atomic_sub(pr->size >> 9, &v->in_flight);
	if (pr->status) {
		pr_err_ratelimited("%s/%u peer %u: resync: read error at sector %llu (%u bytes)\n",
				   v->rc->n->res_name, v->volume,
				   v->rc->n->peer_node_id,
				   (unsigned long long)pr->sector, pr->size);
		set_bit(RSV_FAILED, &v->flags);
	}
}

static void finish_write(struct rs_vol *v, struct bsr_peer_req *pr)
{
	struct p_block_ack a = {
		.sector = cpu_to_be64(pr->sector),
		.block_id = cpu_to_be64(pr->block_id),
		.size = cpu_to_be32(pr->size),
	};
	int cmd = P_RS_NEG_ACK;

	if (pr->status)
		pr_err_ratelimited("%s/%u peer %u: resync: write error at sector %llu (%u bytes)\n",
				   v->rc->n->res_name, v->volume,
				   v->rc->n->peer_node_id,
				   (unsigned long long)pr->sector, pr->size);
	if (!pr->status) {
		bsr_bm_clear(v->dev->backing, v->slot, pr->sector,
			     pr->size >> 9);
		atomic64_add(pr->size >> 9, &v->pd->rs_stats.done);
		cmd = P_RS_WRITE_ACK;
	}
	bsr_send(&v->rc->n->meta, (enum bsr_packet)cmd, v->volume, &a,
		 sizeof(a));
}

static void rs_done_work(struct work_struct *w)
{
	struct bsr_rs_conn *rc = container_of(w, struct bsr_rs_conn,
					      done_work);
	struct bsr_peer_req *pr;

	for (;;) {
		spin_lock_irq(&rc->lock);
		pr = list_first_entry_or_null(&rc->done_list,
					      struct bsr_peer_req, list);
		if (pr)
			list_del_init(&pr->list);
		spin_unlock_irq(&rc->lock);
		if (!pr)
			break;
		if (pr->dp_flags & (RS_PR_OV_S | RS_PR_OV_T))
			ov_read_done(pr);
		else if (pr->dp_flags & RS_PR_READ)
			finish_read(pr->private, pr);
		else
			finish_write(pr->private, pr);
		bsr_peer_req_free(pr);
		if (atomic_dec_and_test(&rc->pending_io))
			wake_up(&rc->waitq);
		rs_kick(rc);
	}
}

/*
 * Submit @pr with our completion (pr->private is @v unless the caller set
 * it); on failure @pr is freed (pr->private is the caller's).
 */
int rs_submit(struct rs_vol *v, struct bsr_peer_req *pr, enum req_op op)
{
	int err;

	if (!pr->private)
		pr->private = v;
	pr->done = rs_io_done;
	atomic_inc(&v->rc->pending_io);
	err = bsr_peer_req_submit(pr, op);
	if (err) {
		bsr_peer_req_free(pr);
		if (atomic_dec_and_test(&v->rc->pending_io))
			wake_up(&v->rc->waitq);
	}
	return err;
}

static int recv_data(struct bsr_net *n, struct rs_vol *v,
		     struct bsr_pkt_hdr *h)
{
	struct p_data *p = n->data.rbuf;
	u64 sector = be64_to_cpu(p->sector);
	u32 size = bsr_pkt_tail(h);
	struct bsr_peer_req *pr;
	int err;

	if (v->role != RS_TARGET || !test_bit(RSV_SYNCING, &v->flags))
		return bsr_proto_err(n, &n->data, "resync data not expected", h);
	if (size != be32_to_cpu(p->size) || size % 512 ||
	    sector + (size >> 9) > bsr_dev_capacity(v->dev))
		return bsr_proto_err(n, &n->data, "bad resync request", h);
	pr = bsr_peer_req_alloc(v->pd, sector, size, true);
	if (!pr)
		return -ENOMEM;
	pr->block_id = be64_to_cpu(p->block_id);
	err = bsr_peer_req_recv_data(n, pr);
	if (err) {
		bsr_peer_req_free(pr);
		return err;
	}
	atomic64_add(size >> 9, &n->conn->recv_bytes);
	return rs_submit(v, pr, REQ_OP_WRITE);
}

static int got_ack(struct bsr_net *n, struct rs_vol *v, struct bsr_pkt_hdr *h)
{
	struct p_block_ack *a = n->meta.rbuf;
	u64 sector = be64_to_cpu(a->sector);
	u32 nr = be32_to_cpu(a->size) >> 9;

	if (v->role != RS_SOURCE || nr > atomic_read(&v->in_flight))
		return bsr_proto_err(n, &n->meta, "resync ack not expected", h);
	if (be16_to_cpu(h->command) == P_RS_WRITE_ACK) {
		bsr_bm_clear(v->dev->backing, v->slot, sector, nr);
		atomic64_add(nr, &v->pd->rs_stats.done);
	} else {
		pr_warn_ratelimited("%s/%u peer %u: the peer failed to write resync data at sector %llu\n",
				    n->res_name, v->volume, n->peer_node_id,
				    sector);
		set_bit(RSV_FAILED, &v->flags);
	}
	atomic64_add(nr, &v->acked);
	atomic_sub(nr, &v->in_flight);
	rs_kick(v->rc);
	return 0;
}

/* ------------------------------------------------ the source's walk */

/* Read and send the next run of set bits; false when none is left. */
static bool issue_one(struct rs_vol *v, u64 *budget)
{
	struct bsr_backing *b = v->dev->backing;
	u64 bits = bsr_bm_bits(b), cap = cap_sectors(v);
	u64 bit = bsr_bm_find(b, v->slot, v->cursor, true), end, sector;
	struct bsr_peer_req *pr;
	u32 nr;

	if (bit >= bits)
		return false;
	sector = bit << 3;
	if (sector >= cap) {
		/* beyond the device: nothing to send, nothing to keep */
		bsr_bm_change_bits(b, v->slot, bit, bits, false);
		v->cursor = bits;
		return false;
	}
	end = bsr_bm_find(b, v->slot, bit, false);
	end = min3(end, bit + RS_MAX_REQ_BITS, bit + max_t(u64, *budget >> 3, 1));
	nr = min_t(u64, (end - bit) << 3, cap - sector);
	pr = bsr_peer_req_alloc(v->pd, sector, nr << 9, true);
	if (!pr)
		return false;
	pr->dp_flags = RS_PR_READ;
	atomic_add(nr, &v->in_flight);
	if (rs_submit(v, pr, REQ_OP_READ)) {
		atomic_sub(nr, &v->in_flight);
		set_bit(RSV_FAILED, &v->flags);
		return false;
	}
	v->cursor = end;
	*budget -= min_t(u64, *budget, nr);
	return true;
}

static void source_walk(struct rs_vol *v)
{
	struct bsr_backing *b = v->dev->backing;

	if (time_after_eq(jiffies, v->next_tick)) {
		v->next_tick = jiffies + RS_TICK;
		v->budget = rs_controller(v);
	}
	while (v->budget && atomic_read(&v->in_flight) < RS_MAX_IN_FLIGHT &&
	       !kthread_should_stop())
		if (!issue_one(v, &v->budget))
			break;
	if (v->cursor < bsr_bm_bits(b) && bsr_bm_find(b, v->slot, v->cursor,
						      true) < bsr_bm_bits(b))
		return;
	if (atomic_read(&v->in_flight))
		return;
	if (bsr_bm_oos_sectors(b, v->slot)) {
		v->cursor = 0;	/* set again behind us: another pass */
		return;
	}
	if (source_done(v))
		bsr_net_fail(v->rc->n, BSR_CONN_STATE_NETWORKFAILURE);
}

/* ---------------------------------------------------------- the worker */

static void track_pause(struct rs_vol *v)
{
	u32 susp = READ_ONCE(v->pd->resync_susp);
	bool paused = susp & (BSR_SUSP_USER | BSR_SUSP_PEER);
	bool source = v->role == RS_SOURCE;
	enum bsr_repl_state want;

	if ((susp & BSR_SUSP_USER) != v->sent_susp) {
		struct p_rs_susp p = { .susp = cpu_to_be32(susp & BSR_SUSP_USER) };

		v->sent_susp = susp & BSR_SUSP_USER;
		bsr_send(&v->rc->n->data, P_RS_SUSP, v->volume, &p, sizeof(p));
	}
	if (!test_bit(RSV_SYNCING, &v->flags))
		return;
	if (paused && !v->paused_since)
		v->paused_since = jiffies ?: 1;
	if (!paused && v->paused_since) {
		atomic64_add(jiffies_to_msecs(jiffies - v->paused_since),
			     &v->pd->rs_stats.paused_ms);
		v->paused_since = 0;
	}
	if (paused)
		want = source ? BSR_REPL_STATE_PAUSEDSYNCS :
				BSR_REPL_STATE_PAUSEDSYNCT;
	else
		want = source ? BSR_REPL_STATE_SYNCSOURCE :
				BSR_REPL_STATE_SYNCTARGET;
	if (READ_ONCE(v->pd->repl_state) != want)
		rs_state(v, want, source ? BSR_DISK_STATE_INCONSISTENT :
			 BSR_DISK_STATE_UPTODATE);
}

static void send_requests(struct rs_vol *v)
{
	struct p_rs_susp none = {};
	struct p_rs_uuids p = {};
	struct bsr_md_info md;
	int k;

	if (test_and_clear_bit(RSV_WANT_SYNC, &v->flags))
		bsr_send(&v->rc->n->data, P_RS_WANT_SYNC, v->volume, &none,
			 sizeof(none));
	if (test_and_clear_bit(RSV_NEW_UUIDS, &v->flags)) {
		bsr_backing_info(v->dev->backing, &md);
		p.current_uuid = cpu_to_be64(md.current_uuid);
		for (k = 0; k < 4; k++)
			p.history[k] = cpu_to_be64(md.history_uuids[k]);
		p.flags = cpu_to_be32(1);
		bsr_send(&v->rc->n->data, P_RS_NEW_UUIDS, v->volume, &p,
			 sizeof(p));
	}
}

static void vol_step(struct rs_vol *v)
{
	int err = 0;

	if (v->slot < 0)
		return;
	send_requests(v);
	if (v->role == RS_NONE && test_and_clear_bit(RSV_START, &v->flags))
		err = source_begin(v, test_and_clear_bit(RSV_FULL, &v->flags));
	if (!err && v->role == RS_NONE &&
	    test_and_clear_bit(RSV_OV_START, &v->flags))
		err = ov_begin(v);
	if (!err && test_and_clear_bit(RSV_OV_ASK_STOP, &v->flags))
		ov_send_stop(v);
	if (!err && test_and_clear_bit(RSV_SEND_BM, &v->flags))
		err = rs_send_bitmap(v);
	if (err) {
		bsr_net_fail(v->rc->n, BSR_CONN_STATE_NETWORKFAILURE);
		return;
	}
	if ((v->role == RS_SOURCE || v->role == RS_TARGET) &&
	    !test_bit(RSV_SYNCING, &v->flags) &&
	    test_bit(RSV_PEER_BM, &v->flags) && !test_bit(RSV_SEND_BM, &v->flags))
		sync_begins(v);
	track_pause(v);
	if (v->role == RS_SOURCE && test_bit(RSV_SYNCING, &v->flags) &&
	    !v->paused_since && !test_bit(RSV_FAILED, &v->flags))
		source_walk(v);
	if (v->role == RS_SOURCE && test_bit(RSV_SYNCING, &v->flags) &&
	    test_bit(RSV_FAILED, &v->flags) && !atomic_read(&v->in_flight) &&
	    source_failed(v))
		bsr_net_fail(v->rc->n, BSR_CONN_STATE_NETWORKFAILURE);
	if (v->role == RS_VERIFY_S)
		ov_walk(v);
}

static bool active(struct rs_vol *v)
{
	return v->role != RS_NONE;
}

static void periodic(struct bsr_rs_conn *rc)
{
	bool progress = time_after_eq(jiffies, rc->next_progress);
	bool bm_write = time_after_eq(jiffies, rc->next_bm_write);
	u32 i;

	if (bm_write) {
		rc->next_bm_write = jiffies + 5 * HZ;
		for (i = 0; i < rs_nr(rc); i++)
			if (rc->vols[i].slot >= 0 && active(&rc->vols[i]))
				bsr_bm_write_dirty(rc->vols[i].dev->backing);
	}
	if (!progress)
		return;
	rc->next_progress = jiffies + HZ;
	for (i = 0; i < rs_nr(rc); i++) {
		if (!active(&rc->vols[i]) || !rs_lock(rc->n))
			continue;
		bsr_notify_peer_device(rc->vols[i].pd, BSR_NOTIFY_TYPE_CHANGE);
		mutex_unlock(&bsr_cfg_mutex);
	}
}

static int rs_worker(void *arg)
{
	struct bsr_rs_conn *rc = arg;
	u32 i;

	while (!kthread_should_stop()) {
		clear_bit(RSC_KICK, &rc->flags);
		for (i = 0; i < rs_nr(rc); i++)
			vol_step(&rc->vols[i]);
		periodic(rc);
		wait_event_interruptible_timeout(rc->waitq, kthread_should_stop() ||
						 test_bit(RSC_KICK, &rc->flags),
						 RS_TICK / 2);
	}
	return 0;
}

/* ------------------------------------------------ connection lifetime */

static void vol_act_on_state(struct rs_vol *v);

static int setup_vol(struct bsr_net *n, struct rs_vol *v,
		     struct bsr_peer_device *pd)
{
	struct bsr_device *dev = pd->device;

	v->pd = pd;
	v->dev = dev;
	v->volume = dev->volume;
	v->slot = -1;
	v->sent_susp = 0;
	if (!dev->backing || !bsr_disk_usable(dev->disk_state))
		return 0;
	v->slot = bsr_bm_slot_assign(dev->backing, n->peer_node_id);
	if (v->slot < 0) {
		pr_warn("%s/%u peer %u: no bitmap slot (%d): no resync\n",
			n->res_name, v->volume, n->peer_node_id, v->slot);
		return 0;
	}
	vol_act_on_state(v);
	return 0;
}

/* What the handshake decided for @v's peer device, as worker flags. */
static void vol_act_on_state(struct rs_vol *v)
{
	switch (v->pd->repl_state) {
	case BSR_REPL_STATE_STARTINGSYNCS:
		set_bit(RSV_FULL, &v->flags);
		fallthrough;
	case BSR_REPL_STATE_WFBITMAPS:
		set_bit(RSV_START, &v->flags);
		break;
	case BSR_REPL_STATE_WFBITMAPT:
		/* waits for the source's P_RS_SYNC_UUID */
		break;
	default:
		break;
	}
}

static struct bsr_rs_conn *alloc_rc(struct bsr_net *n)
{
	struct bsr_connection *c = n->conn;
	struct bsr_peer_device *pd;
	struct bsr_rs_conn *rc;
	u32 count = 0;

	list_for_each_entry(pd, &c->peer_devices, list)
		count++;
	count += RS_JOIN_SLACK;
	rc = kvzalloc(struct_size(rc, vols, count), GFP_KERNEL);
	if (!rc)
		return NULL;
	rc->bmbuf = kvmalloc(BSR_MAX_PAYLOAD, GFP_KERNEL);
	rc->wq = alloc_ordered_workqueue("bsr_rs_%s", WQ_MEM_RECLAIM,
					 n->res_name);
	if (!rc->bmbuf || !rc->wq) {
		if (rc->wq)
			destroy_workqueue(rc->wq);
		kvfree(rc->bmbuf);
		kvfree(rc);
		return NULL;
	}
	rc->n = n;
	rc->cap = count;
	return rc;
}

int bsr_rs_start(struct bsr_net *n)
{
	struct bsr_connection *c = n->conn;
	struct bsr_peer_device *pd;
	struct bsr_rs_conn *rc;
	struct task_struct *t;
	u32 i = 0;

	if (!rs_lock(n))
		return -EINTR;
	rc = alloc_rc(n);
	if (!rc) {
		mutex_unlock(&bsr_cfg_mutex);
		return -ENOMEM;
	}
	spin_lock_init(&rc->lock);
	init_waitqueue_head(&rc->waitq);
	INIT_LIST_HEAD(&rc->done_list);
	INIT_WORK(&rc->done_work, rs_done_work);
	list_for_each_entry(pd, &c->peer_devices, list) {
		rc->vols[i].rc = rc;
		setup_vol(n, &rc->vols[i], pd);
		i++;
	}
	rc->nr = i;
	spin_lock(&rs_conn_lock);
	c->rs = rc;
	spin_unlock(&rs_conn_lock);
	mutex_unlock(&bsr_cfg_mutex);
	t = kthread_run(rs_worker, rc, "bsr_s_%.8s_%u", n->res_name,
			n->peer_node_id);
	if (IS_ERR(t))
		return PTR_ERR(t);
	get_task_struct(t);
	rc->worker = t;
	return 0;
}

/* Connection lost while Primary: our data moves on without the peer. */
static void diverge(struct bsr_net *n, struct rs_vol *v)
{
	struct bsr_device *dev = v->dev;

	if (v->slot < 0 || READ_ONCE(dev->resource->role) != BSR_ROLE_PRIMARY)
		return;
	if (bsr_md_diverge(dev->backing, v->slot) == 1)
		pr_info("%s/%u peer %u: new data generation without the peer (bitmap UUID kept)\n",
			n->res_name, v->volume, n->peer_node_id);
}

void bsr_rs_stop(struct bsr_net *n)
{
	struct bsr_connection *c = n->conn;
	struct bsr_rs_conn *rc = c->rs;
	u32 i;

	if (!rc)
		return;
	spin_lock(&rs_conn_lock);
	c->rs = NULL;
	spin_unlock(&rs_conn_lock);
	if (rc->worker) {
		kthread_stop(rc->worker);
		put_task_struct(rc->worker);
	}
	wait_event(rc->waitq, !atomic_read(&rc->pending_io));
	flush_workqueue(rc->wq);
	destroy_workqueue(rc->wq);
	for (i = 0; i < rs_nr(rc); i++) {
		struct rs_vol *v = &rc->vols[i];

		if (v->slot < 0)
			continue;
		if (v->paused_since)
			atomic64_add(jiffies_to_msecs(jiffies - v->paused_since),
				     &v->pd->rs_stats.paused_ms);
		if (v->role == RS_VERIFY_S || v->role == RS_VERIFY_T)
			ov_end(v);
		else if (v->role != RS_NONE)
			pr_info("%s/%u peer %u: resync interrupted, %llu KiB left\n",
				n->res_name, v->volume, n->peer_node_id,
				bsr_bm_oos_sectors(v->dev->backing, v->slot) >> 1);
		bsr_bm_write_dirty(v->dev->backing);
		crypto_free_shash(v->ov_tfm);	/* verify asked for, not begun */
		diverge(n, v);
	}
	kvfree(rc->bmbuf);
	kvfree(rc);
}

int bsr_rs_recv(struct bsr_net *n, struct bsr_pkt_hdr *h)
{
	struct bsr_rs_conn *rc = n->conn->rs;
	struct rs_vol *v = rc ? rs_vol_of(rc, be16_to_cpu(h->volume)) : NULL;

	if (!v || v->slot < 0)
		return bsr_proto_err(n, &n->data, "resync packet for a volume without disk", h);
	switch (be16_to_cpu(h->command)) {
	case P_RS_SYNC_UUID:
		return recv_sync_uuid(n, v, h);
	case P_RS_BITMAP:
		return recv_bitmap(n, v, h);
	case P_RS_DATA:
		return recv_data(n, v, h);
	case P_RS_DONE:
		return recv_done(n, v, h);
	case P_RS_SUSP:
		return recv_susp(n, v);
	case P_RS_NEW_UUIDS:
		return recv_new_uuids(n, v, h);
	case P_OV_START:
	case P_OV_DIGEST:
	case P_OV_DONE:
		return ov_recv(n, v, h);
	case P_RS_WANT_SYNC:
		if (v->role != RS_NONE)
			return 0;
		set_bit(RSV_FULL, &v->flags);
		set_bit(RSV_START, &v->flags);
		rs_kick(rc);
		return 0;
	default:
		return bsr_proto_err(n, &n->data, "unexpected command while connected", h);
	}
}

int bsr_rs_got_ack(struct bsr_net *n, struct bsr_pkt_hdr *h)
{
	struct bsr_rs_conn *rc = n->conn->rs;
	struct rs_vol *v = rc ? rs_vol_of(rc, be16_to_cpu(h->volume)) : NULL;

	if (!v || v->slot < 0)
		return bsr_proto_err(n, &n->meta, "resync ack for a volume without disk", h);
	switch (be16_to_cpu(h->command)) {
	case P_RS_WRITE_ACK:
	case P_RS_NEG_ACK:
		return got_ack(n, v, h);
	case P_OV_RESULT:
		return ov_got_result(n, v, h);
	default:
		return bsr_proto_err(n, &n->meta, "unexpected command while connected", h);
	}
}

/* ---------------------------------------------- requests from netlink */

/* With bsr_cfg_mutex: the idle, connected resync volume of @pd. */
static struct rs_vol *rs_idle_vol(struct bsr_peer_device *pd)
{
	struct bsr_rs_conn *rc;
	struct rs_vol *v = NULL;

	lockdep_assert_held(&bsr_cfg_mutex);
	spin_lock(&rs_conn_lock);
	rc = pd->connection->rs;
	if (rc)
		v = rs_vol_of(rc, pd->device->volume);
	spin_unlock(&rs_conn_lock);
	if (!v || v->slot < 0 || v->role != RS_NONE ||
	    pd->repl_state != BSR_REPL_STATE_ESTABLISHED)
		return NULL;
	return v;
}

int bsr_rs_request_sync(struct bsr_peer_device *pd, bool full)
{
	struct rs_vol *v = rs_idle_vol(pd);

	if (!v)
		return -ENOTCONN;
	if (full)
		set_bit(RSV_FULL, &v->flags);
	set_bit(RSV_START, &v->flags);
	rs_kick(v->rc);
	return 0;
}

int bsr_rs_request_target(struct bsr_peer_device *pd)
{
	struct rs_vol *v = rs_idle_vol(pd);

	if (!v)
		return -ENOTCONN;
	set_bit(RSV_WANT_SYNC, &v->flags);
	rs_kick(v->rc);
	return 0;
}

int bsr_rs_send_new_uuids(struct bsr_peer_device *pd)
{
	struct rs_vol *v = rs_idle_vol(pd);

	if (!v)
		return -ENOTCONN;
	set_bit(RSV_NEW_UUIDS, &v->flags);
	rs_kick(v->rc);
	return 0;
}

/* With bsr_cfg_mutex; @tfm is ours from here on, also on error. */
int bsr_rs_verify_start(struct bsr_peer_device *pd, struct crypto_shash *tfm,
			u64 start, u64 stop)
{
	struct rs_vol *v = rs_idle_vol(pd);

	if (!v || test_bit(RSV_OV_START, &v->flags)) {
		crypto_free_shash(tfm);
		return -ENOTCONN;
	}
	v->ov_tfm = tfm;
	v->ov_pos = start;
	v->ov_stop = stop;
	set_bit(RSV_OV_START, &v->flags);
	rs_kick(v->rc);
	return 0;
}

/* With bsr_cfg_mutex: 0, or -ENOENT when no verify runs with @pd. */
int bsr_rs_verify_stop(struct bsr_peer_device *pd)
{
	struct bsr_rs_conn *rc;
	struct rs_vol *v = NULL;

	lockdep_assert_held(&bsr_cfg_mutex);
	spin_lock(&rs_conn_lock);
	rc = pd->connection->rs;
	if (rc)
		v = rs_vol_of(rc, pd->device->volume);
	spin_unlock(&rs_conn_lock);
	if (!v)
		return -ENOENT;
	if (test_and_clear_bit(RSV_OV_START, &v->flags)) {
		crypto_free_shash(v->ov_tfm);
		v->ov_tfm = NULL;
		return 0;
	}
	if (pd->repl_state == BSR_REPL_STATE_VERIFYS)
		set_bit(RSV_OV_STOP, &v->flags);
	else if (pd->repl_state == BSR_REPL_STATE_VERIFYT)
		set_bit(RSV_OV_ASK_STOP, &v->flags);
	else
		return -ENOENT;
	rs_kick(v->rc);
	return 0;
}

void bsr_rs_diverge_unconnected(struct bsr_peer_device *pd)
{
	struct bsr_device *dev = pd->device;
	int slot;

	lockdep_assert_held(&bsr_cfg_mutex);
	if (pd->repl_state != BSR_REPL_STATE_OFF || !dev->backing)
		return;
	slot = bsr_bm_slot_assign(dev->backing, pd->connection->peer_node_id);
	if (slot >= 0 && bsr_md_diverge(dev->backing, slot) == 1)
		pr_info("%s/%u peer %u: new data generation without the peer (bitmap UUID kept)\n",
			dev->resource->name, dev->volume,
			pd->connection->peer_node_id);
}

bool bsr_rs_is_target(struct bsr_peer_device *pd)
{
	switch (pd->repl_state) {
	case BSR_REPL_STATE_STARTINGSYNCT:
	case BSR_REPL_STATE_WFBITMAPT:
	case BSR_REPL_STATE_SYNCTARGET:
	case BSR_REPL_STATE_PAUSEDSYNCT:
		return true;
	default:
		return false;
	}
}

void bsr_rs_fill_stats(struct bsr_peer_device *pd,
		       struct bsr_peer_device_stats *ps)
{
	struct bsr_rs_stats *st = &pd->rs_stats;

	ps->rs_total = atomic64_read(&st->total);
	ps->rs_done = min_t(u64, atomic64_read(&st->done), ps->rs_total);
	ps->rs_sent_sectors = atomic64_read(&st->sent);
	ps->rs_paused_ms = atomic64_read(&st->paused_ms);
	ps->ov_mismatch = atomic64_read(&st->ov_mismatch);
}

/* ------------------------------------- volumes joining while Connected */

/* With bsr_cfg_mutex: the resync state of @pd's connection, or NULL. */
static struct bsr_rs_conn *pd_rc(struct bsr_peer_device *pd)
{
	struct bsr_rs_conn *rc;

	lockdep_assert_held(&bsr_cfg_mutex);
	spin_lock(&rs_conn_lock);
	rc = pd->connection->rs;
	spin_unlock(&rs_conn_lock);
	return rc;
}

/*
 * @pd got its disk on a live connection: an entry with a bitmap slot,
 * idle until bsr_rs_join_start() (after the decision is in pd).
 */
int bsr_rs_join(struct bsr_peer_device *pd)
{
	struct bsr_rs_conn *rc = pd_rc(pd);
	struct rs_vol *v;
	u32 nr;

	if (!rc)
		return -ENOTCONN;
	v = rs_vol_of(rc, pd->device->volume);
	if (v) {	/* it was there at connect time, or joined before */
		if (active(v))
			return -EBUSY;
		v->flags = 0;
		return setup_vol(rc->n, v, pd);
	}
	nr = rc->nr;
	if (nr >= rc->cap)
		return -ENOSPC;
	v = &rc->vols[nr];
	v->rc = rc;
	setup_vol(rc->n, v, pd);
	/* pairs with rs_nr(): publish the initialised entry */
	smp_store_release(&rc->nr, nr + 1);
	return 0;
}

/* The decision is in @pd: start the resync it asks for, if any. */
void bsr_rs_join_start(struct bsr_peer_device *pd)
{
	struct bsr_rs_conn *rc = pd_rc(pd);
	struct rs_vol *v = rc ? rs_vol_of(rc, pd->device->volume) : NULL;

	if (!v || v->slot < 0)
		return;
	vol_act_on_state(v);
	rs_kick(rc);
}

/*
 * @pd's disk goes away (still attached now): no more resync with the
 * peer for it.  -EBUSY while a resync or verify runs or is about to.
 */
int bsr_rs_leave(struct bsr_peer_device *pd)
{
	struct bsr_rs_conn *rc = pd_rc(pd);
	struct rs_vol *v = rc ? rs_vol_of(rc, pd->device->volume) : NULL;

	if (!v || v->slot < 0)
		return 0;
	if (active(v) || test_bit(RSV_START, &v->flags) ||
	    test_bit(RSV_OV_START, &v->flags))
		return -EBUSY;
	if (v->dev->backing)
		bsr_bm_write_dirty(v->dev->backing);
	WRITE_ONCE(v->slot, -1);
	v->flags = 0;
	return 0;
}

/* @pd is about to be freed: its entry is never found again. */
void bsr_rs_forget(struct bsr_peer_device *pd)
{
	struct bsr_rs_conn *rc = pd_rc(pd);
	struct rs_vol *v = rc ? rs_vol_of(rc, pd->device->volume) : NULL;

	if (!v)
		return;
	WRITE_ONCE(v->slot, -1);
	WRITE_ONCE(v->volume, BSR_VOL_NONE);
	v->pd = NULL;
	v->dev = NULL;
}
