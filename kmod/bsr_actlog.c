// SPDX-License-Identifier: GPL-2.0
/*
 * bsr: the activity log -- which 4 MiB extents may have writes in flight.
 *
 * In memory: al_nr slots, a hash from extent to slot and a list of idle
 * slots (refcnt 0) in LRU order.  A write whose extents are all in the LRU
 * only takes references (al_lock).  A miss takes al_mutex, claims idle
 * slots (least recently used first), writes the bitmap blocks of the
 * extents it evicts, then one transaction naming the new extents plus a
 * rolling window of the whole LRU, and only then lets the write proceed.
 * Slots claimed but not yet on disk are "uncommitted": others that find
 * them wait for al_mutex, i.e. for that transaction.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/hash.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include "bsr_meta_int.h"

struct al_upd {
	u32 slot;
	u32 extent;
	u32 old;
};

static struct hlist_head *al_bucket(struct bsr_backing *b, u32 extent)
{
	return &b->al_hash[hash_32(extent, b->al_hash_bits)];
}

static struct bsr_al_slot *al_find(struct bsr_backing *b, u32 extent)
{
	struct bsr_al_slot *s;

	hlist_for_each_entry(s, al_bucket(b, extent), hash)
		if (s->extent == extent)
			return s;
	return NULL;
}

static void al_get(struct bsr_backing *b, struct bsr_al_slot *s)
{
	if (s->refcnt++ == 0) {
		list_del_init(&s->idle);
		b->al_idle_count--;
		b->al_used++;
	}
}

static bool al_put(struct bsr_backing *b, struct bsr_al_slot *s)
{
	if (--s->refcnt)
		return false;
	list_add_tail(&s->idle, &b->al_idle);
	b->al_idle_count++;
	b->al_used--;
	return true;
}

/* Every slot empty and idle.  Caller holds al_lock or owns @b alone. */
static void al_reset_lru(struct bsr_backing *b)
{
	u32 i;

	INIT_LIST_HEAD(&b->al_idle);
	for (i = 0; i < (1U << b->al_hash_bits); i++)
		INIT_HLIST_HEAD(&b->al_hash[i]);
	for (i = 0; i < b->al_nr; i++) {
		struct bsr_al_slot *s = &b->al_slots[i];

		INIT_HLIST_NODE(&s->hash);
		s->extent = BSR_AL_EMPTY;
		s->refcnt = 0;
		s->committed = true;
		list_add_tail(&s->idle, &b->al_idle);
	}
	b->al_idle_count = b->al_nr;
	b->al_used = 0;
	b->al_ctx_next = 0;
}

static int al_alloc(u32 n, struct bsr_al_slot **slots, struct hlist_head **hash,
		    unsigned int *bits)
{
	*bits = ilog2(roundup_pow_of_two(n));
	*slots = kvcalloc(n, sizeof(**slots), GFP_KERNEL);
	*hash = kvcalloc(1U << *bits, sizeof(**hash), GFP_KERNEL);
	if (*slots && *hash)
		return 0;
	kvfree(*slots);
	kvfree(*hash);
	return -ENOMEM;
}

int bsr_al_init(struct bsr_backing *b, u32 al_extents)
{
	int err = al_alloc(al_extents, &b->al_slots, &b->al_hash,
			   &b->al_hash_bits);

	if (err)
		return err;
	b->al_page = alloc_page(GFP_KERNEL);
	if (!b->al_page)
		return -ENOMEM;
	b->al_nr = al_extents;
	al_reset_lru(b);
	return 0;
}

void bsr_al_free(struct bsr_backing *b)
{
	kvfree(b->al_slots);
	kvfree(b->al_hash);
	if (b->al_page)
		__free_page(b->al_page);
	b->al_slots = NULL;
	b->al_hash = NULL;
	b->al_page = NULL;
}

static u64 al_block_offset(struct bsr_backing *b, u64 tr)
{
	return b->sb_offset + b->md.al_offset +
	       (tr % b->md.al_blocks) * BSR_MD_BLOCK;
}

/* One transaction with @n (<= BSR_AL_MAX_UPDATES) updates.  Holds al_mutex. */
static int al_write_tr(struct bsr_backing *b, const struct al_upd *up, u32 n)
{
	struct bsr_al_disk_tr *t = page_address(b->al_page);
	u64 tr = b->al_tr_number + 1;
	u32 i, start, count;
	int err;

	lockdep_assert_held(&b->al_mutex);
	memset(t, 0, BSR_MD_BLOCK);
	t->magic = cpu_to_le32(BSR_AL_MAGIC);
	t->tr_number = cpu_to_le64(tr);
	t->n_updates = cpu_to_le32(n);
	t->al_extents = cpu_to_le32(b->al_nr);
	for (i = 0; i < n; i++) {
		t->updates[i].slot = cpu_to_le32(up[i].slot);
		t->updates[i].extent = cpu_to_le32(up[i].extent);
	}
	count = min_t(u32, b->al_nr, BSR_AL_CTX_PER_TR);
	spin_lock_irq(&b->al_lock);
	start = b->al_ctx_next;
	for (i = 0; i < count; i++)
		t->context[i] = cpu_to_le32(b->al_slots[(start + i) % b->al_nr].extent);
	spin_unlock_irq(&b->al_lock);
	t->ctx_start = cpu_to_le32(start);
	t->ctx_count = cpu_to_le32(count);
	t->crc = cpu_to_le32(bsr_md_crc(t, &t->crc));
	err = bsr_md_write(b, b->al_page, al_block_offset(b, tr), true);
	if (err) {
		pr_err("%s: activity log write failed: %d\n", b->meta_path, err);
		WRITE_ONCE(b->al_failed, true);
		wake_up_all(&b->al_wait);
		return err;
	}
	b->al_tr_number = tr;
	b->al_ctx_next = (start + count) % b->al_nr;
	atomic64_inc(&b->stats.al_writes);
	return 0;
}

/* Enough transactions for their context to cover every slot once. */
static int al_write_full(struct bsr_backing *b)
{
	u32 i, n = DIV_ROUND_UP(b->al_nr, BSR_AL_CTX_PER_TR);
	int err = 0;

	for (i = 0; i < n && !err; i++)
		err = al_write_tr(b, NULL, 0);
	return err;
}

/* Forget idle extents (their bitmap must be on disk).  Holds al_lock. */
static void al_drop_idle(struct bsr_backing *b)
{
	struct bsr_al_slot *s;

	list_for_each_entry(s, &b->al_idle, idle) {
		if (s->extent == BSR_AL_EMPTY)
			continue;
		hlist_del_init(&s->hash);
		s->extent = BSR_AL_EMPTY;
	}
}

/*
 * Write the bitmap, drop every idle extent and record the resulting LRU
 * completely, so that a later replay finds only extents still in use.
 */
int bsr_al_write_reset(struct bsr_backing *b)
{
	int err;

	mutex_lock(&b->al_mutex);
	err = bsr_bm_write_dirty(b);
	if (!err) {
		spin_lock_irq(&b->al_lock);
		al_drop_idle(b);
		spin_unlock_irq(&b->al_lock);
		err = READ_ONCE(b->al_updates) ? al_write_full(b) : 0;
	}
	mutex_unlock(&b->al_mutex);
	return err;
}

int bsr_al_resize(struct bsr_backing *b, u32 al_extents)
{
	struct bsr_al_slot *slots, *old_slots;
	struct hlist_head *hash, *old_hash;
	unsigned int bits;
	int err;

	err = al_alloc(al_extents, &slots, &hash, &bits);
	if (err)
		return err;
	mutex_lock(&b->al_mutex);
	err = bsr_bm_write_dirty(b);
	spin_lock_irq(&b->al_lock);
	if (!err && b->al_used)
		err = -EBUSY;
	if (err) {
		spin_unlock_irq(&b->al_lock);
		mutex_unlock(&b->al_mutex);
		kvfree(slots);
		kvfree(hash);
		return err;
	}
	old_slots = b->al_slots;
	old_hash = b->al_hash;
	b->al_slots = slots;
	b->al_hash = hash;
	b->al_hash_bits = bits;
	b->al_nr = al_extents;
	al_reset_lru(b);
	spin_unlock_irq(&b->al_lock);
	err = READ_ONCE(b->al_updates) ? al_write_full(b) : 0;
	mutex_unlock(&b->al_mutex);
	kvfree(old_slots);
	kvfree(old_hash);
	return err;
}

static void al_release(struct bsr_backing *b, u32 first, u32 last)
{
	bool wake = false;
	unsigned long irq;
	u32 e;

	spin_lock_irqsave(&b->al_lock, irq);
	for (e = first; e <= last; e++) {
		struct bsr_al_slot *s = al_find(b, e);

		if (WARN_ON_ONCE(!s || !s->refcnt))
			continue;
		wake |= al_put(b, s);
	}
	spin_unlock_irqrestore(&b->al_lock, irq);
	/* an extent went idle (every request at queue depth 1): rarely awaited */
	if (wake && wq_has_sleeper(&b->al_wait))
		wake_up(&b->al_wait);
}

/* All extents present: take references.  Holds al_lock. */
static bool al_try_hit(struct bsr_backing *b, u32 first, u32 last,
		       bool *uncommitted)
{
	struct bsr_al_slot *s;
	u32 e;

	for (e = first; e <= last; e++)
		if (!al_find(b, e))
			return false;
	for (e = first; e <= last; e++) {
		s = al_find(b, e);
		al_get(b, s);
		*uncommitted |= !s->committed;
	}
	atomic64_add(last - first + 1, &b->stats.al_hits);
	return true;
}

/*
 * Claim slots for the missing extents of [first, last] and reference the
 * present ones.  Holds al_lock and al_mutex.  Returns the number of
 * updates, or -EAGAIN when too few slots are idle.
 */
static int al_claim(struct bsr_backing *b, u32 first, u32 last,
		    struct al_upd *up, u32 *missing)
{
	struct bsr_al_slot *s;
	u32 e;
	int n = 0;

	*missing = 0;
	for (e = first; e <= last; e++)
		*missing += !al_find(b, e);
	if (*missing > b->al_idle_count)
		return -EAGAIN;
	for (e = first; e <= last; e++) {
		s = al_find(b, e);
		if (s) {
			al_get(b, s);
			atomic64_inc(&b->stats.al_hits);
			continue;
		}
		s = list_first_entry(&b->al_idle, struct bsr_al_slot, idle);
		up[n].old = s->extent;
		if (s->extent != BSR_AL_EMPTY)
			hlist_del_init(&s->hash);
		s->extent = e;
		s->committed = false;
		hlist_add_head(&s->hash, al_bucket(b, e));
		al_get(b, s);
		up[n].slot = s - b->al_slots;
		up[n].extent = e;
		n++;
	}
	atomic64_add(n, &b->stats.al_misses);
	return n;
}

/* Evicted extents' bitmap blocks, then the transactions.  Holds al_mutex. */
static int al_commit(struct bsr_backing *b, struct al_upd *up, int n)
{
	int i, err = 0;

	if (READ_ONCE(b->al_updates)) {
		for (i = 0; i < n && !err; i++)
			if (up[i].old != BSR_AL_EMPTY)
				err = bsr_bm_write_extent(b, up[i].old);
		for (i = 0; i < n && !err; i += BSR_AL_MAX_UPDATES)
			err = al_write_tr(b, up + i,
					  min_t(int, n - i, BSR_AL_MAX_UPDATES));
	}
	if (err)
		return err;
	spin_lock_irq(&b->al_lock);
	for (i = 0; i < n; i++)
		b->al_slots[up[i].slot].committed = true;
	spin_unlock_irq(&b->al_lock);
	return 0;
}

static int al_begin_slow(struct bsr_backing *b, u32 first, u32 last)
{
	u32 span = last - first + 1;
	struct al_upd stack_up[8], *up = stack_up;
	unsigned int noio;
	u32 missing;
	int n, err = 0;

	if (span > ARRAY_SIZE(stack_up)) {
		noio = memalloc_noio_save();
		up = kvmalloc_array(span, sizeof(*up), GFP_KERNEL);
		memalloc_noio_restore(noio);
		if (!up)
			return -ENOMEM;
	}
	for (;;) {
		mutex_lock(&b->al_mutex);
		if (READ_ONCE(b->al_failed)) {
			err = -EIO;
			break;
		}
		spin_lock_irq(&b->al_lock);
		n = al_claim(b, first, last, up, &missing);
		spin_unlock_irq(&b->al_lock);
		if (n >= 0)
			break;
		mutex_unlock(&b->al_mutex);
		atomic64_inc(&b->stats.al_starving);
		wait_event(b->al_wait, READ_ONCE(b->al_idle_count) >= missing ||
				       READ_ONCE(b->al_failed));
	}
	if (!err) {
		err = al_commit(b, up, n);
		if (err)
			al_release(b, first, last);
	}
	mutex_unlock(&b->al_mutex);
	if (up != stack_up)
		kvfree(up);
	return err;
}

int bsr_al_begin_io(struct bsr_backing *b, sector_t sector, unsigned int nr)
{
	u32 first, last;
	bool uncommitted = false, hit;

	if (!nr)
		return 0;
	first = sector >> BSR_AL_EXT_SECT_SHIFT;
	last = (sector + nr - 1) >> BSR_AL_EXT_SECT_SHIFT;
	if (last - first + 1 > READ_ONCE(b->al_nr))
		return -EINVAL;
	if (READ_ONCE(b->al_failed))
		return -EIO;
	spin_lock_irq(&b->al_lock);
	hit = al_try_hit(b, first, last, &uncommitted);
	spin_unlock_irq(&b->al_lock);
	if (!hit)
		return al_begin_slow(b, first, last);
	if (uncommitted) {
		/* somebody's transaction for it is in flight: wait for it */
		mutex_lock(&b->al_mutex);
		mutex_unlock(&b->al_mutex);
		if (READ_ONCE(b->al_failed)) {
			al_release(b, first, last);
			return -EIO;
		}
	}
	return 0;
}

int bsr_al_begin_io_nowait(struct bsr_backing *b, sector_t sector,
			   unsigned int nr)
{
	u32 first, last, e;
	int err = 0;

	if (!nr)
		return 0;
	first = sector >> BSR_AL_EXT_SECT_SHIFT;
	last = (sector + nr - 1) >> BSR_AL_EXT_SECT_SHIFT;
	if (READ_ONCE(b->al_failed))
		return -EWOULDBLOCK;
	spin_lock_irq(&b->al_lock);
	for (e = first; e <= last && !err; e++) {
		struct bsr_al_slot *s = al_find(b, e);

		if (!s || !s->committed)
			err = -EWOULDBLOCK;
	}
	if (!err) {
		for (e = first; e <= last; e++)
			al_get(b, al_find(b, e));
		atomic64_add(last - first + 1, &b->stats.al_hits);
	}
	spin_unlock_irq(&b->al_lock);
	return err;
}

void bsr_al_complete_io(struct bsr_backing *b, sector_t sector,
			unsigned int nr)
{
	if (!nr)
		return;
	al_release(b, sector >> BSR_AL_EXT_SECT_SHIFT,
		   (sector + nr - 1) >> BSR_AL_EXT_SECT_SHIFT);
}

u32 bsr_al_used(struct bsr_backing *b)
{
	return READ_ONCE(b->al_used);
}

/* A transaction block as read from disk: every count checked. */
static bool al_tr_valid(struct bsr_al_disk_tr *t, u64 *tr)
{
	u32 i, n = le32_to_cpu(t->n_updates), al = le32_to_cpu(t->al_extents);

	if (le32_to_cpu(t->magic) != BSR_AL_MAGIC ||
	    bsr_md_crc(t, &t->crc) != le32_to_cpu(t->crc))
		return false;
	if (n > BSR_AL_MAX_UPDATES || al < 1 || al > BSR_AL_EXTENTS_MAX ||
	    le32_to_cpu(t->ctx_count) > BSR_AL_CTX_PER_TR ||
	    le32_to_cpu(t->ctx_start) >= al)
		return false;
	for (i = 0; i < n; i++)
		if (le32_to_cpu(t->updates[i].slot) >= al)
			return false;
	*tr = le64_to_cpu(t->tr_number);
	return *tr != 0;
}

struct al_rebuild {
	u32 al;
	u32 ndef;
	u32 *ext;
	unsigned long *defined;
};

static void al_define(struct al_rebuild *r, u32 slot, u32 extent)
{
	if (__test_and_set_bit(slot, r->defined))
		return;
	r->ext[slot] = extent;
	r->ndef++;
}

/* Newest first: a slot is defined by the newest transaction naming it. */
static void al_apply_tr(struct al_rebuild *r, struct bsr_al_disk_tr *t)
{
	u32 i, start = le32_to_cpu(t->ctx_start);
	int u;

	for (u = le32_to_cpu(t->n_updates) - 1; u >= 0; u--)
		al_define(r, le32_to_cpu(t->updates[u].slot),
			  le32_to_cpu(t->updates[u].extent));
	for (i = 0; i < le32_to_cpu(t->ctx_count); i++)
		al_define(r, (start + i) % r->al, le32_to_cpu(t->context[i]));
}

static int al_rebuild(struct bsr_backing *b, struct page *page, u64 *trn,
		      u64 newest)
{
	struct bsr_al_disk_tr *t = page_address(page);
	struct al_rebuild r = {};
	u32 n = b->md.al_blocks, slot;
	u64 tr, got;
	int err;

	for (tr = newest; tr && trn[tr % n] == tr; tr--) {
		err = bsr_md_read(b, page, al_block_offset(b, tr));
		if (err)
			goto out;
		if (!al_tr_valid(t, &got) || got != tr)
			break;
		if (!r.al) {
			r.al = le32_to_cpu(t->al_extents);
			r.ext = kvcalloc(r.al, sizeof(u32), GFP_KERNEL);
			r.defined = bitmap_zalloc(r.al, GFP_KERNEL);
			err = -ENOMEM;
			if (!r.ext || !r.defined)
				goto out;
		} else if (le32_to_cpu(t->al_extents) != r.al) {
			break;
		}
		al_apply_tr(&r, t);
		if (r.ndef == r.al)
			break;
	}
	for_each_set_bit(slot, r.defined, r.al) {
		if (r.ext[slot] == BSR_AL_EMPTY)
			continue;
		bsr_bm_set_extent(b, r.ext[slot]);
		b->al_replayed++;
	}
	err = 0;
out:
	kvfree(r.ext);
	bitmap_free(r.defined);
	return err;
}

/*
 * Find the newest transaction (to continue numbering after it) and, with
 * @apply, mark every extent the log holds out of sync in every slot.
 */
int bsr_al_replay(struct bsr_backing *b, bool apply)
{
	u32 i, n = b->md.al_blocks;
	struct page *page;
	u64 *trn, tr, newest = 0;
	int err = 0;

	trn = kcalloc(n, sizeof(*trn), GFP_KERNEL);
	page = alloc_page(GFP_KERNEL);
	if (!trn || !page) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		err = bsr_md_read(b, page, al_block_offset(b, i));
		if (err)
			goto out;
		if (al_tr_valid(page_address(page), &tr) && tr % n == i) {
			trn[i] = tr;
			newest = max(newest, tr);
		}
	}
	b->al_tr_number = newest;
	if (apply && newest)
		err = al_rebuild(b, page, trn, newest);
out:
	if (page)
		__free_page(page);
	kfree(trn);
	return err;
}
