// SPDX-License-Identifier: GPL-2.0
/*
 * Online verify (docs/protocol.md, "Online verify"): compare the data of
 * a connected pair block by block without moving it.
 *
 * The VerifyS node walks its range on the resync worker, at the pace the
 * resync rate controller gives (bsr_rs_ctl.c), reading up to 256 KiB at a
 * time (range-locked, like a resync read).  When a read is done it sends
 * one digest per 4 KiB block (P_OV_DIGEST).  The VerifyT node reads the
 * same blocks, compares their digests and answers which blocks differ
 * (P_OV_RESULT).  Both sides mark those blocks out of sync in the bitmap
 * slot of the other, so that a resync (after disconnect/connect) moves
 * them.  Nothing is repaired by the verify itself, as with DRBD.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <crypto/hash.h>
#include <linux/highmem.h>
#include <linux/slab.h>
#include "bsr_rs_int.h"

#define OV_REQ_SECTORS	(BSR_OV_MAX_BLOCKS * (BSR_OV_BLOCK >> 9))

static const char *ov_name(struct rs_vol *v)
{
	return v->rc->n->res_name;
}

static u32 ov_blocks(u32 size)
{
	return DIV_ROUND_UP(size, BSR_OV_BLOCK);
}

/* One digest per 4 KiB block of @pr's pages into @out. */
static int ov_digest(struct crypto_shash *tfm, struct bsr_peer_req *pr,
		     u8 *out)
{
	SHASH_DESC_ON_STACK(desc, tfm);
	u32 ds = crypto_shash_digestsize(tfm), i, off = 0;
	int err = 0;

	desc->tfm = tfm;
	for (i = 0; i < ov_blocks(pr->size) && !err; i++) {
		u32 len = min_t(u32, BSR_OV_BLOCK, pr->size - off);
		struct page *pg = pr->pages[off >> PAGE_SHIFT];
		void *p = kmap_local_page(pg);

		err = crypto_shash_digest(desc, p + offset_in_page(off), len,
					  out + i * ds);
		kunmap_local(p);
		off += len;
	}
	shash_desc_zero(desc);
	return err;
}

static void ov_stats_begin(struct rs_vol *v, u64 start, u64 stop)
{
	struct bsr_rs_stats *st = &v->pd->rs_stats;

	atomic64_set(&st->total, stop - start);
	atomic64_set(&st->done, 0);
	atomic64_set(&st->paused_ms, 0);
	atomic64_set(&st->ov_mismatch, 0);
	v->started = jiffies;
	v->next_tick = jiffies;
	rs_controller_reset(v);
}

/* Mark the differing blocks of a range out of sync; log the runs. */
static void ov_mark(struct rs_vol *v, u64 sector, u32 size, u64 differ)
{
	u32 nblk = ov_blocks(size), i = 0, j;

	while (i < nblk) {
		u64 s;
		u32 nr;

		if (!(differ & BIT_ULL(i))) {
			i++;
			continue;
		}
		for (j = i; j < nblk && (differ & BIT_ULL(j)); j++)
			;
		s = sector + (u64)i * (BSR_OV_BLOCK >> 9);
		nr = min_t(u64, (u64)(j - i) * (BSR_OV_BLOCK >> 9),
			   sector + (size >> 9) - s);
		bsr_bm_set(v->dev->backing, v->slot, s, nr);
		atomic64_add(nr, &v->pd->rs_stats.ov_mismatch);
		pr_warn_ratelimited("%s/%u peer %u: online verify: out of sync: start=%llu, size=%u (sectors)\n",
				    ov_name(v), v->volume,
				    v->rc->n->peer_node_id, s, nr);
		i = j;
	}
}

/* --------------------------------------------------------- VerifyS */

/* Worker: tell the peer and start walking. */
int ov_begin(struct rs_vol *v)
{
	struct p_ov_start p = {};
	u64 cap = bsr_dev_capacity(v->dev);

	v->ov_stop = min(v->ov_stop ?: cap, cap);
	v->ov_pos = round_down(min(v->ov_pos, v->ov_stop), 8);
	clear_bit(RSV_OV_STOP, &v->flags);
	clear_bit(RSV_FAILED, &v->flags);
	p.start_sector = cpu_to_be64(v->ov_pos);
	p.stop_sector = cpu_to_be64(v->ov_stop);
	strscpy(p.alg, crypto_shash_alg_name(v->ov_tfm), sizeof(p.alg));
	v->role = RS_VERIFY_S;
	ov_stats_begin(v, v->ov_pos, v->ov_stop);
	pr_info("%s/%u peer %u: online verify (VerifyS, %s) of sectors %llu..%llu\n",
		ov_name(v), v->volume, v->rc->n->peer_node_id, p.alg,
		v->ov_pos, v->ov_stop);
	if (!rs_state(v, BSR_REPL_STATE_VERIFYS, v->pd->peer_disk_state))
		return -EINTR;
	return bsr_send(&v->rc->n->data, P_OV_START, v->volume, &p,
			sizeof(p));
}

static bool ov_issue(struct rs_vol *v)
{
	u64 budget = max_t(u64, round_down(v->budget, 8), 8);
	u32 nr = min3((u64)OV_REQ_SECTORS, v->ov_stop - v->ov_pos, budget);
	struct bsr_peer_req *pr;

	pr = bsr_peer_req_alloc(v->pd, v->ov_pos, nr << 9, true);
	if (!pr)
		return false;
	pr->dp_flags = RS_PR_OV_S;
	atomic_add(nr, &v->in_flight);
	if (rs_submit(v, pr, REQ_OP_READ)) {
		atomic_sub(nr, &v->in_flight);
		set_bit(RSV_FAILED, &v->flags);
		return false;
	}
	v->ov_pos += nr;
	v->budget -= min_t(u64, v->budget, nr);
	return true;
}

static void ov_source_done(struct rs_vol *v)
{
	struct bsr_rs_stats *st = &v->pd->rs_stats;
	bool stopped = v->ov_pos < v->ov_stop;
	u64 bad = atomic64_read(&st->ov_mismatch);
	struct p_ov_done p = {
		.mismatch = cpu_to_be64(bad),
		.flags = cpu_to_be32(stopped ? BSR_OVD_STOPPED : 0),
	};
	int err;

	err = bsr_send(&v->rc->n->data, P_OV_DONE, v->volume, &p, sizeof(p));
	ov_end(v);
	if (err || !rs_state(v, BSR_REPL_STATE_ESTABLISHED,
			     v->pd->peer_disk_state))
		bsr_net_fail(v->rc->n, BSR_CONN_STATE_NETWORKFAILURE);
}

/* Worker, while VerifyS. */
void ov_walk(struct rs_vol *v)
{
	bool stop = test_bit(RSV_OV_STOP, &v->flags) ||
		    test_bit(RSV_FAILED, &v->flags);

	if (time_after_eq(jiffies, v->next_tick)) {
		v->next_tick = jiffies + RS_TICK;
		v->budget = rs_controller(v);
	}
	while (!stop && v->budget && v->ov_pos < v->ov_stop &&
	       atomic_read(&v->in_flight) < RS_MAX_IN_FLIGHT)
		if (!ov_issue(v))
			break;
	if ((stop || v->ov_pos >= v->ov_stop) && !atomic_read(&v->in_flight))
		ov_source_done(v);
}

/* Done work: our read is in; send its digests. */
static void ov_source_read(struct rs_vol *v, struct bsr_peer_req *pr)
{
	u32 ds = crypto_shash_digestsize(v->ov_tfm);
	u32 len = sizeof(struct p_ov_digest) + ov_blocks(pr->size) * ds;
	struct p_ov_digest *p = kmalloc(len, GFP_NOIO);
	int err = -ENOMEM;

	if (p && !pr->status) {
		p->sector = cpu_to_be64(pr->sector);
		p->size = cpu_to_be32(pr->size);
		p->digest_size = cpu_to_be16(ds);
		p->pad = 0;
		err = ov_digest(v->ov_tfm, pr, (u8 *)(p + 1)) ?:
		      bsr_send(&v->rc->n->data, P_OV_DIGEST, v->volume, p, len);
	}
	kfree(p);
	if (!err)
		return;
	if (pr->status)
		pr_err_ratelimited("%s/%u peer %u: online verify: read error at sector %llu: stopping the verify\n",
				   ov_name(v), v->volume,
				   v->rc->n->peer_node_id, pr->sector);
	atomic_sub(pr->size >> 9, &v->in_flight);
	set_bit(RSV_FAILED, &v->flags);
}

int ov_got_result(struct bsr_net *n, struct rs_vol *v, struct bsr_pkt_hdr *h)
{
	struct p_ov_result *r = n->meta.rbuf;
	u32 size = be32_to_cpu(r->size), nr = size >> 9;

	if (v->role != RS_VERIFY_S || nr > atomic_read(&v->in_flight) ||
	    size > OV_REQ_SECTORS << 9)
		return bsr_proto_err(n, &n->meta, "verify result not expected", h);
	ov_mark(v, be64_to_cpu(r->sector), size, be64_to_cpu(r->differ));
	atomic64_add(nr, &v->pd->rs_stats.done);
	atomic64_add(nr, &v->acked);
	atomic_sub(nr, &v->in_flight);
	rs_kick(v->rc);
	return 0;
}

/* --------------------------------------------------------- VerifyT */

static int ov_target_start(struct bsr_net *n, struct rs_vol *v,
			   struct bsr_pkt_hdr *h)
{
	struct p_ov_start *p = n->data.rbuf;
	u64 start = be64_to_cpu(p->start_sector);
	u64 stop = be64_to_cpu(p->stop_sector);
	struct crypto_shash *tfm;

	if (v->role != RS_NONE || start > stop ||
	    stop > bsr_dev_capacity(v->dev))
		return bsr_proto_err(n, &n->data, "verify start not expected", h);
	p->alg[sizeof(p->alg) - 1] = 0;
	tfm = crypto_alloc_shash(p->alg, 0, 0);
	if (IS_ERR(tfm)) {
		pr_err("%s/%u peer %u: online verify: the peer's verify-alg %s is not available here (%ld)\n",
		       n->res_name, v->volume, n->peer_node_id, p->alg,
		       PTR_ERR(tfm));
		return PTR_ERR(tfm);
	}
	if (crypto_shash_digestsize(tfm) > BSR_OV_MAX_DIGEST) {
		crypto_free_shash(tfm);
		return bsr_proto_err(n, &n->data, "verify digest too large", h);
	}
	v->ov_tfm = tfm;
	v->ov_pos = start;
	v->ov_stop = stop;
	v->role = RS_VERIFY_T;
	ov_stats_begin(v, start, stop);
	pr_info("%s/%u peer %u: online verify (VerifyT, %s) of sectors %llu..%llu\n",
		n->res_name, v->volume, n->peer_node_id, p->alg, start, stop);
	return rs_state(v, BSR_REPL_STATE_VERIFYT, v->pd->peer_disk_state) ?
	       0 : -EINTR;
}

static int ov_target_digest(struct bsr_net *n, struct rs_vol *v,
			    struct bsr_pkt_hdr *h)
{
	struct p_ov_digest *p = n->data.rbuf;
	u64 sector = be64_to_cpu(p->sector);
	u32 size = be32_to_cpu(p->size), ds = be16_to_cpu(p->digest_size);
	u32 len = be32_to_cpu(h->length) - sizeof(*p);
	struct bsr_peer_req *pr;
	struct ov_treq *t;
	int err;

	if (v->role != RS_VERIFY_T)
		return bsr_proto_err(n, &n->data, "verify digest not expected", h);
	if (!size || size % 512 || size > OV_REQ_SECTORS << 9 || sector % 8 ||
	    sector + (size >> 9) > bsr_dev_capacity(v->dev) ||
	    ds != crypto_shash_digestsize(v->ov_tfm) ||
	    len != ov_blocks(size) * ds)
		return bsr_proto_err(n, &n->data, "bad verify digest", h);
	t = kmalloc(struct_size(t, digests, len), GFP_NOIO);
	pr = t ? bsr_peer_req_alloc(v->pd, sector, size, true) : NULL;
	if (!pr) {
		kfree(t);
		return -ENOMEM;
	}
	t->v = v;
	t->digest_size = ds;
	memcpy(t->digests, p + 1, len);
	pr->dp_flags = RS_PR_OV_T;
	pr->private = t;
	err = rs_submit(v, pr, REQ_OP_READ);
	if (err)
		kfree(t);
	return err;
}

/* Done work: our read is in; compare and answer. */
static void ov_target_read(struct ov_treq *t, struct bsr_peer_req *pr)
{
	struct rs_vol *v = t->v;
	u32 nblk = ov_blocks(pr->size), i;
	struct p_ov_result r = {
		.sector = cpu_to_be64(pr->sector),
		.size = cpu_to_be32(pr->size),
	};
	u64 differ = 0;
	u8 *mine = kmalloc_array(nblk, t->digest_size, GFP_NOIO);

	if (pr->status)
		pr_err_ratelimited("%s/%u peer %u: online verify: read error at sector %llu: counted as out of sync\n",
				   ov_name(v), v->volume,
				   v->rc->n->peer_node_id, pr->sector);
	if (!mine || pr->status || ov_digest(v->ov_tfm, pr, mine)) {
		differ = nblk == 64 ? ~0ULL : BIT_ULL(nblk) - 1;
	} else {
		for (i = 0; i < nblk; i++)
			if (memcmp(mine + i * t->digest_size,
				   t->digests + i * t->digest_size,
				   t->digest_size))
				differ |= BIT_ULL(i);
	}
	kfree(mine);
	ov_mark(v, pr->sector, pr->size, differ);
	atomic64_add(pr->size >> 9, &v->pd->rs_stats.done);
	r.differ = cpu_to_be64(differ);
	bsr_send(&v->rc->n->meta, P_OV_RESULT, v->volume, &r, sizeof(r));
}

void ov_read_done(struct bsr_peer_req *pr)
{
	if (pr->dp_flags & RS_PR_OV_T) {
		struct ov_treq *t = pr->private;

		ov_target_read(t, pr);
		kfree(t);
		pr->private = NULL;
		return;
	}
	ov_source_read(pr->private, pr);
}

static int ov_target_done(struct bsr_net *n, struct rs_vol *v,
			  struct bsr_pkt_hdr *h)
{
	struct p_ov_done *p = n->data.rbuf;

	if (v->role == RS_VERIFY_S) {
		/* stop-verify on the VerifyT node */
		if (be32_to_cpu(p->flags) & BSR_OVD_STOP) {
			set_bit(RSV_OV_STOP, &v->flags);
			rs_kick(v->rc);
		}
		return 0;
	}
	if (v->role != RS_VERIFY_T)
		return bsr_proto_err(n, &n->data, "verify done not expected", h);
	if (be32_to_cpu(p->flags) & BSR_OVD_STOPPED)
		v->ov_pos = 0;
	else
		v->ov_pos = v->ov_stop;
	ov_end(v);
	return rs_state(v, BSR_REPL_STATE_ESTABLISHED,
			v->pd->peer_disk_state) ? 0 : -EINTR;
}

int ov_recv(struct bsr_net *n, struct rs_vol *v, struct bsr_pkt_hdr *h)
{
	switch (be16_to_cpu(h->command)) {
	case P_OV_START:
		return ov_target_start(n, v, h);
	case P_OV_DIGEST:
		return ov_target_digest(n, v, h);
	default:
		return ov_target_done(n, v, h);
	}
}

/* Worker, VerifyT: stop-verify was asked for here. */
void ov_send_stop(struct rs_vol *v)
{
	struct p_ov_done p = { .flags = cpu_to_be32(BSR_OVD_STOP) };

	if (v->role == RS_VERIFY_T)
		bsr_send(&v->rc->n->data, P_OV_DONE, v->volume, &p, sizeof(p));
}

/*
 * Either side, when the verify ends (done, stopped or the connection
 * lost): the log line, the bitmap to disk, the digest freed.
 */
void ov_end(struct rs_vol *v)
{
	struct bsr_rs_stats *st = &v->pd->rs_stats;
	u64 kib = atomic64_read(&st->ov_mismatch) >> 1;
	unsigned long ms = jiffies_to_msecs(jiffies - v->started);
	u64 done = atomic64_read(&st->done);

	if (v->ov_pos >= v->ov_stop && done >= atomic64_read(&st->total))
		pr_info("%s/%u peer %u: online verify done: %llu KiB out of sync (%llu KiB compared in %lu ms)\n",
			ov_name(v), v->volume, v->rc->n->peer_node_id, kib,
			done >> 1, ms);
	else
		pr_info("%s/%u peer %u: online verify stopped after %llu KiB: %llu KiB out of sync\n",
			ov_name(v), v->volume, v->rc->n->peer_node_id,
			done >> 1, kib);
	if (kib)
		pr_info("%s/%u peer %u: the blocks found out of sync are marked in the bitmap: disconnect and connect to resync them\n",
			ov_name(v), v->volume, v->rc->n->peer_node_id);
	bsr_bm_write_dirty(v->dev->backing);
	crypto_free_shash(v->ov_tfm);
	v->ov_tfm = NULL;
	v->role = RS_NONE;
}
